/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/* Socket interface of the "mqttq" TCP ULP (mqttq.ko): options, cmsgs and records. */
#ifndef MQTTQ_UAPI_H
#define MQTTQ_UAPI_H

/*
 * Life of an offloaded connection (docs/kmod.md has the details):
 *
 *   fd = socket(AF_INET or AF_INET6, SOCK_STREAM, 0); connect(fd, ...);
 *   write CONNECT, read CONNACK                       (userspace, as usual)
 *   setsockopt(fd, SOL_TCP, TCP_ULP, "mqttq", 5);     attach: socket idle
 *   setsockopt(fd, SOL_MQTTQ, MQTTQ_SESSION, &s, sizeof(s));  session runs
 *   sendmsg(fd, {cmsg MQTTQ_CMSG_PUBLISH, iov = topic|payload|props})
 *   recvmsg(fd) -> one struct mqttq_rec (+ data) per call
 *   close(fd)   -> session lingers for linger_s when it has unacked state
 *
 * Between attach and MQTTQ_SESSION, sendmsg fails with ENOTCONN and
 * recvmsg with ENOTCONN (nonblocking) while inbound bytes stay in TCP.
 * Raw writes (sendmsg without an mqttq control message) fail with EINVAL:
 * after attach the kernel owns the byte stream.
 */

#include <linux/types.h>

/* Socket option level of the module (setsockopt/getsockopt and cmsg_level). */
#define SOL_MQTTQ 0x4d51

/* Options at SOL_MQTTQ. */
#define MQTTQ_SESSION 1	   /* set once: struct mqttq_session; get: the effective values */
#define MQTTQ_STATS 2	   /* get: struct mqttq_sess_stats */
#define MQTTQ_FILTER_FD 3  /* set: int BPF_PROG_TYPE_SOCKET_FILTER fd, -1 = remove */
#define MQTTQ_DISCONNECT 4 /* set: __u8 v5 reason code (0 on 3.1.1): DISCONNECT, end, no linger */
#define MQTTQ_RELEASE 5	   /* set: __u16 pids[1..64]: send the PUBRELs held (MQTTQ_SF_OUTBOX) */

/*
 * MQTTQ_FILTER_FD program verdicts. The program sees one skb holding the
 * whole inbound PUBLISH packet from its fixed header at offset 0 (read it
 * with bpf_skb_load_bytes / ld_abs). 0 = no subscription matches: the
 * message is acknowledged as the protocol requires, then dropped and
 * counted in filter_drops. 1..0xfffffffe = the matching filter's id, put
 * in the record's filter_id. MQTTQ_FILTER_UNDECIDED = deliver, let
 * userspace match (also used when the kernel could not run the program).
 */
#define MQTTQ_FILTER_UNDECIDED 0xffffffffu

/* "Use the module default" (/sys/module/mqttq/parameters/) in a field. */
#define MQTTQ_DEFAULT 0xffffffffu
#define MQTTQ_DEFAULT8 0xffu

#define MQTTQ_V311 4
#define MQTTQ_V5 5

enum mqttq_ack_policy {
	MQTTQ_ACK_ON_RECEIPT = 0,  /* PUBACK/PUBREC as soon as the kernel parsed the PUBLISH */
	MQTTQ_ACK_ON_DELIVERY = 1, /* only once recvmsg copied the MESSAGE record out */
};

enum mqttq_completion {
	MQTTQ_COMPLETE_EACH = 0,     /* one MQTTQ_REC_PUB_DONE record per message */
	MQTTQ_COMPLETE_COALESCE = 1, /* MQTTQ_REC_PUB_DONE_RUN records, batched wakeups */
};

/*
 * MQTTQ_SESSION: session parameters and the limits negotiated in CONNACK.
 * Fields marked (D) take MQTTQ_DEFAULT / MQTTQ_DEFAULT8 for the module
 * parameter of the same name. `size` is sizeof(struct mqttq_session) as
 * the caller knows it; the kernel accepts shorter (older) structs and
 * zero-extends them, and rejects a longer one whose extra bytes are not 0.
 */
struct mqttq_session {
	__u32 size;
	__u8 version;	      /* MQTTQ_V311 or MQTTQ_V5 (what CONNECT said) */
	__u8 ack_policy;      /* (D) enum mqttq_ack_policy */
	__u8 completion;      /* (D) enum mqttq_completion */
	__u8 session_present; /* CONNACK Session Present: resume the lingering session */
	__u16 keepalive_s;    /* the CONNECT Keep Alive; 0 = none */
	__u16 window;	      /* 0 = module default: outbound QoS 1/2 in flight (1..65535) */
	__u16 recv_max;	      /* 0 = 65535: our Receive Maximum (what CONNECT said on v5) */
	__u16 flags;	      /* MQTTQ_SF_*; other bits 0 */
	__u32 max_packet_in;  /* our Maximum Packet Size, 0 = 268435460 (protocol max) */
	__u32 retry_ms;	      /* (D) 3.1.1 resend interval, 0 = off; ignored on v5 */
	__u32 linger_s;	      /* (D) how long state outlives the TCP connection, 0 = not */
	__u32 max_bytes;      /* (D) kernel memory the session may hold */
	__u64 key;	      /* session identity for resume (e.g. client id hash); 0 = none */

	/* From CONNACK; 0 = absent/unlimited as in struct mqc_limits. */
	__u32 max_packet_out;  /* server's Maximum Packet Size */
	__u16 receive_max;     /* server's Receive Maximum (v5), 0 = 65535 */
	__u16 topic_alias_max; /* server's Topic Alias Maximum (v5) */
	__u16 server_keepalive; /* Server Keep Alive (v5), 0 = absent */
	__u8 max_qos;		/* Maximum QoS, MQTTQ_DEFAULT8 = absent (2) */
	__u8 retain_available;	/* 0/1, MQTTQ_DEFAULT8 = absent (1) */
	__u8 wildcard_sub_available;
	__u8 sub_id_available;
	__u8 shared_sub_available;
	__u8 pad[5];
};

/*
 * MQTTQ_SF_OUTBOX: the caller keeps a crash-safe log of its flows and owns
 * their identifiers and states, so it can log each step before the wire
 * sees it. QoS 1/2 publishes carry mqttq_pub.pid (EBUSY when in flight,
 * held by a SUBSCRIBE, or when an in-flight one has the same pid % window;
 * SUBSCRIBE uses the top four identifiers, 65532..65535); a PUBREC is a
 * MQTTQ_REC_PUBREC record and its PUBREL leaves only on MQTTQ_RELEASE;
 * mqttq_pub.state puts a restored flow back. The session never lingers and
 * is never resumed: `key` must be 0 and linger_s is ignored, so the log is
 * the one place state survives the socket.
 */
#define MQTTQ_SF_OUTBOX 0x0001

/* MQTTQ_STATS: one session's counters (the global ones are in /sys/kernel/mqttq/). */
struct mqttq_sess_stats {
	__u64 published;	/* messages accepted by sendmsg */
	__u64 completed;	/* outbound flows finished with reason < 0x80 */
	__u64 refused;		/* outbound flows the peer refused (v5 reason >= 0x80) */
	__u64 delivered;	/* MESSAGE records queued */
	__u64 acks_in_kernel;	/* PUBACK/PUBREC/PUBREL/PUBCOMP handled without userspace */
	__u64 pubrel_sent;
	__u64 retransmits;
	__u64 keepalive_timeouts;
	__u64 filter_drops;
	__u64 protocol_errors;
	__u64 bytes_held;	/* kernel memory held by the session now */
	__u64 records;		/* records queued now */
	__u64 wakeups;		/* times readers/writers were woken */
	__u32 inflight;		/* outbound QoS 1/2 awaiting their final ack */
	__u32 quota;		/* publishes the window accepts now */
	__u32 state;		/* enum mqttq_sess_state */
	__u32 resumed;		/* 1 when this socket took over a lingering session */
};

enum mqttq_sess_state {
	MQTTQ_ST_IDLE = 0,   /* attached, MQTTQ_SESSION not set yet */
	MQTTQ_ST_RUNNING = 1,
	MQTTQ_ST_CLOSED = 2, /* ended: CLOSED record queued, calls return the error */
};

/*
 * sendmsg control messages, cmsg_level SOL_MQTTQ. Exactly one per
 * sendmsg; the iovec carries the data described by it.
 */
#define MQTTQ_CMSG_PUBLISH 1
#define MQTTQ_CMSG_SUBSCRIBE 2
#define MQTTQ_CMSG_UNSUBSCRIBE 3

/*
 * MQTTQ_CMSG_PUBLISH. iovec = topic (topic_len bytes) | payload | v5
 * properties (props_len bytes: the property block's contents, without its
 * length prefix; 0 on 3.1.1). sendmsg returns the iovec length once the
 * message is accepted; its outcome comes later as a PUB_DONE(_RUN) record
 * with `token`. QoS 0 completes when handed to TCP.
 * Errors: EAGAIN (window, Receive Maximum or max_bytes full, nonblocking or
 * SO_SNDTIMEO expired), EMSGSIZE (over the server's Maximum Packet Size),
 * EINVAL (bad QoS/topic/lengths, QoS over the server's Maximum QoS),
 * ENOTCONN (no session yet), the session's error once it ended.
 */
struct mqttq_pub {
	__u64 token;	   /* the caller's; sequential tokens coalesce, see PUB_DONE_RUN */
	__u8 qos;	   /* 0, 1 or 2 */
	__u8 retain;	   /* 0 or 1 */
	__u16 topic_len;
	__u32 props_len;
	__u16 topic_alias; /* v5, 0 = none */
	__u16 pid;	   /* MQTTQ_SF_OUTBOX, QoS 1/2: the packet identifier; else 0 */
	__u8 state;	   /* MQTTQ_SF_OUTBOX: enum mqttq_pub_state; else 0 */
	__u8 pad[3];
};

/*
 * Where a flow put back with MQTTQ_SF_OUTBOX stands. A restored flow
 * resumes the server's session (send it only after a CONNACK with Session
 * Present): WAIT_ACK/WAIT_REC resend the PUBLISH with DUP, WAIT_COMP sends
 * the PUBREL and never the PUBLISH.
 */
enum mqttq_pub_state {
	MQTTQ_PUB_NEW = 0,	 /* a new flow: PUBLISH, DUP clear */
	MQTTQ_PUB_WAIT_ACK = 1,	 /* QoS 1, PUBLISH sent before */
	MQTTQ_PUB_WAIT_REC = 2,	 /* QoS 2, PUBLISH sent before, no PUBREC logged */
	MQTTQ_PUB_WAIT_COMP = 3, /* QoS 2, PUBREC seen (and logged) */
};

/*
 * MQTTQ_CMSG_SUBSCRIBE / MQTTQ_CMSG_UNSUBSCRIBE: iovec = `count` entries,
 * each a struct mqttq_filter followed by `len` filter bytes (no padding
 * between entries). The packet identifier comes from the kernel's space;
 * the answer is a SUBACK / UNSUBACK record with `token`.
 */
struct mqttq_sub_req {
	__u64 token;
	__u32 sub_id; /* v5 Subscription Identifier, 0 = none */
	__u16 count;  /* 1..64 */
	__u16 pad;
};

struct mqttq_filter {
	__u8 options; /* QoS | no local << 2 | retain as published << 3 | retain handling << 4 */
	__u8 pad;
	__u16 len;    /* host order */
};

/*
 * recvmsg: every call returns exactly one record: this header followed by
 * rec.len - sizeof(struct mqttq_rec) data bytes. A buffer shorter than the
 * record gets its first bytes, MSG_TRUNC in msg_flags, and the rest of the
 * record is discarded (datagram semantics; with MSG_TRUNC in flags the
 * return value is the full length). MSG_PEEK leaves the record queued.
 * Works with io_uring IORING_OP_RECVMSG, multishot and provided buffers.
 */
struct mqttq_rec {
	__u16 type;	    /* enum mqttq_rec_type */
	__u16 flags;	    /* MQTTQ_RF_* */
	__u32 len;	    /* whole record, header included */
	__u64 token;	    /* PUB_DONE(_RUN): (first) token; SUBACK/UNSUBACK: request token */
	__u32 count;	    /* PUB_DONE_RUN: tokens token..token+count-1; (UN)SUBACK: codes */
	__s32 err;	    /* CLOSED: -errno the socket now returns */
	__u32 payload_len;  /* MESSAGE */
	__u32 props_len;    /* MESSAGE: v5 property block contents */
	__u32 filter_id;    /* MESSAGE: BPF filter verdict (0 without a filter) */
	__s32 detail;	    /* CLOSED: the core's code (MQC_E_*, negative) or -errno */
	__u16 topic_len;    /* MESSAGE */
	__u16 pid;	    /* MESSAGE: packet identifier (0 for QoS 0) */
	__u8 reason;	    /* PUB_DONE(_RUN): v5 reason, >= 0x80 refused; CLOSED: DISCONNECT */
	__u8 qos;	    /* MESSAGE, PUB_DONE */
	__u8 pad[2];
};

enum mqttq_rec_type {
	/* One outbound flow ended: token, reason, qos. */
	MQTTQ_REC_PUB_DONE = 1,
	/*
	 * Coalesced completions (MQTTQ_COMPLETE_COALESCE): tokens token ..
	 * token + count - 1 all ended with `reason`. A completion extends the
	 * newest queued, unread run when its token is that run's token + count
	 * and its reason is the same; anything else starts a new record. So a
	 * library that numbers tokens sequentially gets one record per burst.
	 */
	MQTTQ_REC_PUB_DONE_RUN = 2,
	/* Inbound PUBLISH: data = topic | payload | props; qos, pid, flags RETAIN/DUP. */
	MQTTQ_REC_MESSAGE = 3,
	/* SUBACK / UNSUBACK: data = `count` reason codes. */
	MQTTQ_REC_SUBACK = 4,
	MQTTQ_REC_UNSUBACK = 5,
	/*
	 * The session ended (protocol error, keepalive timeout, DISCONNECT,
	 * TCP closed). Always the last record; after it recvmsg and sendmsg
	 * fail with -err (EPROTO malformed/out-of-protocol input, ETIMEDOUT
	 * keepalive, ECONNRESET peer closed or DISCONNECTed, ESHUTDOWN after
	 * MQTTQ_DISCONNECT). flags has MQTTQ_RF_BY_PEER for a peer DISCONNECT.
	 */
	MQTTQ_REC_CLOSED = 6,
	/*
	 * MQTTQ_SF_OUTBOX: the server PUBRECed the QoS 2 flow `token` (pid).
	 * Its PUBREL waits for MQTTQ_RELEASE with pid; its PUB_DONE(_RUN)
	 * comes after the PUBCOMP.
	 */
	MQTTQ_REC_PUBREC = 7,
};

#define MQTTQ_RF_RETAIN 0x0001
#define MQTTQ_RF_DUP 0x0002
#define MQTTQ_RF_BY_PEER 0x0004
#define MQTTQ_RF_LINGER 0x0008 /* CLOSED: the session's state lingers for resume */

/* Largest record header + topic + payload + props the kernel produces for max_packet_in. */
#define MQTTQ_REC_MAX(max_packet_in) (sizeof(struct mqttq_rec) + (max_packet_in))

#endif /* MQTTQ_UAPI_H */
