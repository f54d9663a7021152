/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* The protocol core's contract: MQTT 3.1.1/5.0 codec and QoS session engine shared by mqttq.ko and libmqttq. */
#ifndef MQC_H
#define MQC_H

/*
 * The core is freestanding: no libc beyond compiler builtins, no allocation,
 * no locks, no clock, no I/O. The caller (kernel glue or the library) owns
 * every byte of storage and feeds events in:
 *   - mqc_input()       one complete MQTT control packet from the peer,
 *   - mqc_tick()        the current time, whenever mqc_deadline() is due,
 *   - mqc_publish() and friends: application requests.
 * Actions come out through struct mqc_ops callbacks, synchronously, from
 * inside those calls: bytes to send, completions, deliveries. Timer
 * deadlines are read back with mqc_deadline(). Time is a caller-chosen
 * monotonic clock in milliseconds.
 *
 * Callbacks run in the caller's context (softirq in the kernel): they must
 * not sleep and must not re-enter the same session.
 */
#include "mqc_compat.h"

#define MQC_V311 4
#define MQC_V5 5

/* Control packet types (fixed header high nibble). */
enum mqc_type {
	MQC_CONNECT = 1,
	MQC_CONNACK = 2,
	MQC_PUBLISH = 3,
	MQC_PUBACK = 4,
	MQC_PUBREC = 5,
	MQC_PUBREL = 6,
	MQC_PUBCOMP = 7,
	MQC_SUBSCRIBE = 8,
	MQC_SUBACK = 9,
	MQC_UNSUBSCRIBE = 10,
	MQC_UNSUBACK = 11,
	MQC_PINGREQ = 12,
	MQC_PINGRESP = 13,
	MQC_DISCONNECT = 14,
	MQC_AUTH = 15,
};

/*
 * Codec errors. Each malformed-input case has its own code so tests and
 * users can tell them apart; all are negative and outside the -errno range
 * used elsewhere (they start at -4096 - 1). mqc_strerror() names them.
 */
enum mqc_err {
	MQC_E_BASE = 4096,
	MQC_E_VARINT,		/* remaining length longer than 4 bytes */
	MQC_E_TOO_BIG,		/* packet over the negotiated Maximum Packet Size */
	MQC_E_FLAGS,		/* reserved fixed-header flag bits set */
	MQC_E_QOS3,		/* QoS value 3 */
	MQC_E_DUP_QOS0,		/* DUP set on a QoS 0 PUBLISH */
	MQC_E_PID0,		/* packet identifier 0 where one is required */
	MQC_E_TOPIC_WILD,	/* wildcard in a PUBLISH topic */
	MQC_E_TOPIC_EMPTY,	/* empty PUBLISH topic without a v5 topic alias */
	MQC_E_UTF8,		/* ill-formed UTF-8 (overlong, > U+10FFFF, bad continuation) */
	MQC_E_UTF8_NUL,		/* U+0000 in a string */
	MQC_E_UTF8_SURROGATE,	/* U+D800..U+DFFF in a string */
	MQC_E_PROP_DUP,		/* property given twice where only one is allowed */
	MQC_E_PROP_UNKNOWN,	/* unknown property identifier */
	MQC_E_PROP_WRONG,	/* property not allowed in this packet type */
	MQC_E_PROP_VALUE,	/* property value out of range (e.g. Receive Maximum 0) */
	MQC_E_SHORT,		/* a length field runs past the end of its packet */
	MQC_E_TRAILING,		/* bytes left over after the last field */
	MQC_E_TYPE,		/* reserved packet type 0, or AUTH on 3.1.1 */
	MQC_E_REASON,		/* reason code not valid for this packet */
	MQC_E_PROTOCOL,		/* well-formed packet that breaks the protocol state */
	MQC_E_UNKNOWN_PID,	/* ack for a packet identifier not in flight */
	MQC_E_ALIAS,		/* topic alias 0, over the maximum, or unknown */
	MQC_E_KEEPALIVE,	/* no PINGRESP (or any packet) within the keepalive bound */
	MQC_E_MAX
};

/* Negotiated from CONNACK; 0 in a field means "not limited" / default. */
struct mqc_limits {
	u32 max_packet_size;	/* server's Maximum Packet Size, 0 = protocol maximum */
	u16 receive_max;	/* server's Receive Maximum, 0 = 65535 */
	u16 topic_alias_max;	/* server's Topic Alias Maximum */
	u16 server_keepalive;	/* Server Keep Alive, 0 = absent (use ours) */
	u8 max_qos;		/* Maximum QoS, 2 when absent */
	u8 retain_available;	/* 1 when absent */
	u8 wildcard_sub_available;
	u8 sub_id_available;
	u8 shared_sub_available;
};

enum mqc_ack_policy {
	MQC_ACK_ON_RECEIPT = 0,	/* PUBACK/PUBREC as soon as the PUBLISH is parsed */
	MQC_ACK_ON_DELIVERY = 1, /* only after mqc_delivered(): unread means unacked */
};

struct mqc_config {
	u8 version;		/* MQC_V311 or MQC_V5 */
	u8 ack_policy;		/* enum mqc_ack_policy */
	u16 keepalive_s;	/* from CONNECT; 0 = no keepalive */
	u16 window;		/* local cap on outbound QoS 1/2 in flight (3.1.1 window) */
	u16 recv_max;		/* our Receive Maximum: inbound QoS 1/2 unacked at once */
	u32 max_packet_in;	/* our Maximum Packet Size, 0 = protocol maximum */
	u32 retry_ms;		/* 3.1.1 only: in-session resend interval, 0 = off */
	/*
	 * 1 = the caller owns the flows' identifiers and states (crash-safe
	 * outbox above a kernel session): QoS 1/2 go in with
	 * mqc_publish_pid(), a PUBREC only reports through ops->pubrec and
	 * the PUBREL waits for mqc_release(), SUBSCRIBE identifiers come
	 * from the top MQC_MAX_SUBREQ values. 0 = the engine owns them.
	 */
	u8 user_flows;
};

/*
 * A QoS 1/2 (or QoS 0) outbound message. The caller allocates it and the
 * encoded PUBLISH in buf, and keeps both alive until the ops->complete
 * callback hands it back. The engine writes the packet identifier at
 * buf[pid_off] and sets the DUP bit in buf[0] on resend.
 */
struct mqc_msg {
	u8 *buf;
	u32 len;
	u32 pid_off;		/* offset of the 2-byte packet identifier in buf */
	u64 token;		/* application's 64-bit token, returned in completion */
	u8 qos;
	/* Engine-private below; the caller must not touch them. */
	u8 state;
	u16 pid;
	u16 prev, next;		/* order lists, indices into the slot table */
	u64 sent_at;
};

/* An inbound application message, valid only during ops->deliver. */
struct mqc_inmsg {
	const u8 *topic;
	u16 topic_len;
	const u8 *payload;
	u32 payload_len;
	const u8 *props;	/* v5 properties, raw; see mqc_prop_next() */
	u32 props_len;
	u16 pid;		/* 0 for QoS 0 */
	u8 qos;
	u8 retain;
	u8 dup;
};

/* Why a session ended, reported through ops->closed. */
struct mqc_close {
	int err;		/* MQC_E_* (negative) or -errno */
	u8 reason;		/* v5 reason code sent or received in DISCONNECT */
	u8 by_peer;		/* 1 when the peer sent DISCONNECT */
};

struct mqc_ops {
	/*
	 * Bytes of a control packet the engine built (PUBACK, PUBREC, PUBREL,
	 * PUBCOMP, PINGREQ, SUBSCRIBE, DISCONNECT ...). The buffer is only
	 * valid during the call: copy it. Return 0, or -errno to have the
	 * engine treat the transport as broken. SUBSCRIBE and UNSUBSCRIBE,
	 * which can be large, are emitted in several calls (the engine holds
	 * no buffer for them): successive calls are contiguous stream bytes.
	 */
	int (*send)(void *ctx, const u8 *buf, u32 len);
	/*
	 * An outbound PUBLISH to put on the wire: first send, or a resend
	 * (buf[0] has DUP set). The buffer stays valid until completion.
	 */
	int (*send_msg)(void *ctx, struct mqc_msg *m);
	/*
	 * The message's flow ended: reason 0 = success (PUBACK/PUBCOMP, or QoS
	 * 0 handed to the transport), a v5 reason code >= 0x80 = refused by
	 * the peer. Called exactly once per accepted message; the caller may
	 * free m and its buffer from here.
	 */
	void (*complete)(void *ctx, struct mqc_msg *m, u8 reason);
	/*
	 * An inbound message for the application. Return 0 to accept; under
	 * MQC_ACK_ON_DELIVERY the caller later calls mqc_delivered(). A
	 * negative return (no room) leaves the message unacknowledged: for
	 * QoS 1/2 the peer resends it on the next connection.
	 */
	int (*deliver)(void *ctx, const struct mqc_inmsg *im);
	/* SUBACK/UNSUBACK: per-filter reason codes for request token. */
	void (*sub_done)(void *ctx, u64 token, const u8 *codes, u32 n);
	/* The session must end (protocol error, keepalive, DISCONNECT). */
	void (*closed)(void *ctx, const struct mqc_close *c);
	/*
	 * cfg.user_flows only (required then): the peer PUBRECed m; its
	 * PUBREL leaves when the caller calls mqc_release().
	 */
	void (*pubrec)(void *ctx, struct mqc_msg *m);
};

/* Per-session state; the caller allocates it and two tables. */
struct mqc_session {
	struct mqc_config cfg;
	struct mqc_limits lim;
	const struct mqc_ops *ops;
	void *ctx;

	struct mqc_msg **slots;	/* outbound in-flight table, nslots entries */
	u16 nslots;
	u16 inflight;		/* QoS 1/2 messages holding a slot */
	u16 quota;		/* send quota: min(window, receive_max) - inflight */
	u16 next_pid;
	u16 pub_head, pub_tail;	/* awaiting PUBACK/PUBREC, in send order */
	u16 rel_head, rel_tail;	/* awaiting PUBCOMP, in PUBREC order */

	u8 *in2;		/* inbound QoS 2 bitmap: 8192 bytes, 1 bit a pid */
	u16 *ackq;		/* inbound acks pending delivery, recv_max entries */
	u16 ackq_head, ackq_len;
	u16 in_unacked;		/* inbound QoS 1/2 not yet acknowledged */

	u8 connected;
	u8 ping_outstanding;
	u64 last_tx, last_rx;	/* ms, for keepalive */
	u64 ping_sent;

	/* counters, read by sysfs / mqttq-stat */
	u64 n_acks, n_pubrel, n_retransmit, n_keepalive_timeout, n_proto_err;

	/* Engine-private below. */
	u16 window;		/* effective: min(cfg.window, lim.receive_max) */
	u16 ka_s;		/* effective keepalive: Server Keep Alive or ours */
	u64 retry_at;		/* 3.1.1 retry: no in-flight message is due before this */
	/*
	 * SUBSCRIBE/UNSUBSCRIBE awaiting SUBACK/UNSUBACK. They share the
	 * packet identifier space with PUBLISH but never take a publish slot.
	 */
#define MQC_MAX_SUBREQ 4
	struct mqc_subreq {
		u64 token;
		u16 pid;	/* 0 = free */
		u16 n;		/* filters, so the ack's code count can be checked */
		u8 type;	/* MQC_SUBSCRIBE or MQC_UNSUBSCRIBE */
	} subreq[MQC_MAX_SUBREQ];
};

/*
 * Sizes of the caller-provided tables for a config: slots holds
 * cfg->window pointers; in2 is MQC_IN2_BYTES; ackq holds cfg->recv_max u16.
 */
#define MQC_IN2_BYTES 8192

int mqc_session_init(struct mqc_session *s, const struct mqc_config *cfg,
		     const struct mqc_ops *ops, void *ctx, struct mqc_msg **slots, u8 *in2,
		     u16 *ackq);

/*
 * The transport is up and CONNACK was accepted (by the caller or by
 * mqc_input). With session_present, every unacknowledged PUBLISH (DUP=1)
 * and PUBREL is resent with its original identifier, PUBLISHes in their
 * original send order, PUBRELs in PUBREC order (4.4.0-1, 4.6.0-1/-3).
 * Without it the server has no state: messages still awaiting PUBACK or
 * PUBREC are sent again as new flows (DUP clear), and messages already at
 * PUBREL are complete, since the server took ownership at PUBREC.
 */
/*
 * Returns 0, -EISCONN, or the -errno of a failed resend (ops->closed has
 * then run). lim may be NULL (3.1.1, or a v5 CONNACK without properties);
 * on 3.1.1 Maximum QoS and Receive Maximum are ignored. When the server's
 * Receive Maximum is below the number of messages already in flight, all
 * of them are still resent and new QoS 1/2 publishes wait (-EAGAIN).
 */
int mqc_connected(struct mqc_session *s, const struct mqc_limits *lim, bool session_present,
		  u64 now);
/*
 * The transport dropped: stop timers, keep in-flight state for resume.
 * Pending SUBSCRIBE/UNSUBSCRIBE requests end with sub_done(codes NULL, n 0).
 * ops->closed is not called (the caller knows).
 */
void mqc_disconnected(struct mqc_session *s);

/*
 * Accept m for sending. Returns 0 (sent or handed on), -EAGAIN when the
 * window or Receive Maximum is full (nothing changed; retry after a
 * completion), -ENOTCONN when not connected (caller queues it), -EMSGSIZE
 * over the server's Maximum Packet Size, -EINVAL for QoS above the
 * server's maximum. QoS 0 completes immediately after the send.
 * The engine picks the packet identifier (never one in flight, MQTT-2.2.1-3)
 * and writes it at buf[pid_off]. If the transport fails during the send, a
 * QoS 1/2 message stays accepted (0 is returned, ops->closed has run) and is
 * resent on resume; a QoS 0 message is not accepted and the -errno returned.
 */
int mqc_publish(struct mqc_session *s, struct mqc_msg *m, u64 now);

/*
 * Restore an in-flight message after a process restart (crash-safe
 * outbox): m->pid and m->state (MQC_ST_WAIT_ACK, MQC_ST_WAIT_REC,
 * MQC_ST_WAIT_COMP) say where its flow was. Call before mqc_connected().
 */
enum mqc_state {
	MQC_ST_FREE = 0,
	MQC_ST_WAIT_ACK,	/* QoS 1: PUBLISH sent, awaiting PUBACK */
	MQC_ST_WAIT_REC,	/* QoS 2: PUBLISH sent, awaiting PUBREC */
	MQC_ST_WAIT_COMP,	/* QoS 2: PUBREL sent, awaiting PUBCOMP */
	MQC_ST_WAIT_RELEASE,	/* QoS 2, cfg.user_flows: PUBREC in, PUBREL held for mqc_release() */
};
/*
 * Restore in original send order (WAIT_COMP ones in PUBREC order): that is
 * the order they are resent in. The slot is pid % cfg.window, so restore
 * with the same window the messages were sent with. Returns 0, -EISCONN,
 * -EINVAL (state/qos/pid), -EBUSY (slot or identifier taken).
 */
int mqc_restore(struct mqc_session *s, struct mqc_msg *m);

/*
 * cfg.user_flows: accept a QoS 1/2 message whose identifier the caller
 * chose (m->pid) while connected. m->state MQC_ST_FREE starts a new flow
 * (PUBLISH, DUP clear); MQC_ST_WAIT_ACK/WAIT_REC resume a restored one
 * (PUBLISH with DUP, the server has a session); MQC_ST_WAIT_COMP resumes
 * one past PUBREC (PUBREL, never the PUBLISH). Errors as mqc_publish(),
 * plus -EINVAL (not user_flows, pid 0, state/qos mismatch) and -EBUSY
 * (pid in flight, held by a SUBSCRIBE, or its slot pid % window taken).
 */
int mqc_publish_pid(struct mqc_session *s, struct mqc_msg *m, u64 now);

/*
 * cfg.user_flows: send the PUBREL ops->pubrec announced for pid. Returns 0,
 * -ENOENT (no flow of pid is waiting for its release), -ENOTCONN (released
 * anyway: the PUBREL goes out on resume).
 */
int mqc_release(struct mqc_session *s, u16 pid, u64 now);

/*
 * One complete control packet from the peer (frame it with mqc_frame_len).
 * Returns 0, or the negative error the session was closed with (ops->closed
 * has run: bad input is MQC_E_*, with a v5 DISCONNECT sent first; a peer's
 * DISCONNECT is -ECONNRESET with by_peer set). While not connected only
 * CONNACK is accepted (it calls mqc_connected(), or closes with
 * -ECONNREFUSED and the return code); anything else is -ENOTCONN.
 */
int mqc_input(struct mqc_session *s, const u8 *pkt, u32 len, u64 now);

/*
 * Under MQC_ACK_ON_DELIVERY: the application has read inbound pid. Acks
 * leave in arrival order, so this acknowledges pid and every message that
 * arrived before it and is still unacknowledged (delivery is in order).
 * Returns 0, -ENOENT (not pending), -EINVAL (qos does not match, or policy
 * is on receipt). While disconnected the ack is dropped: the peer resends
 * the PUBLISH on resume and the engine then acknowledges it (QoS 2 without
 * delivering it again).
 */
int mqc_delivered(struct mqc_session *s, u16 pid, u8 qos);

/*
 * Keepalive (effective K = Server Keep Alive when given, else
 * cfg.keepalive_s): a PINGREQ goes out when nothing was sent for K seconds;
 * the connection is dead (ops->closed, MQC_E_KEEPALIVE) when neither the
 * PINGRESP nor any other packet arrived within MQC_PING_GRACE_MS(K * 1000)
 * of the PINGREQ, i.e. 1.5 x K after the last send.
 */
#define MQC_PING_GRACE_MS(ka_ms) ((ka_ms) / 2)

/* Timers: the next time mqc_tick() must run (U64_MAX-like ~0ULL = none). */
u64 mqc_deadline(const struct mqc_session *s);
int mqc_tick(struct mqc_session *s, u64 now);

/* Subscribe/unsubscribe through the session's identifier space. */
struct mqc_sub {
	const u8 *filter;
	u16 filter_len;
	u8 options;		/* QoS | no local << 2 | RAP << 3 | retain handling << 4 */
};
/*
 * Subscribe returns 0, -ENOTCONN, -EINVAL (bad filter/options, sub_id on
 * 3.1.1 or over 268435455), -EMSGSIZE, -EAGAIN (MQC_MAX_SUBREQ requests
 * already pending). The result comes through ops->sub_done.
 */
int mqc_subscribe(struct mqc_session *s, const struct mqc_sub *subs, u32 n, u32 sub_id,
		  u64 token, u64 now);
int mqc_unsubscribe(struct mqc_session *s, const struct mqc_sub *subs, u32 n, u64 token,
		    u64 now);
/*
 * Send DISCONNECT (v5 reason) and end the session cleanly: in-flight state
 * is kept as with mqc_disconnected(); ops->closed is not called.
 */
int mqc_disconnect(struct mqc_session *s, u8 reason, u64 now);

/*
 * Framing: total length of the packet at buf (header included), 0 when more
 * bytes are needed to know, or a negative MQC_E_* (bad varint, over max).
 */
int mqc_frame_len(const u8 *buf, u32 len, u32 max);

const char *mqc_strerror(int err);

#include "mqc_codec.h"

#endif /* MQC_H */
