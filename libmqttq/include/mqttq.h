/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Public API of libmqttq: an io_uring MQTT 3.1.1/5.0 client with an optional kernel QoS offload. */
#ifndef MQTTQ_H
#define MQTTQ_H

/*
 * Conventions
 *   - Every call that can fail returns 0 (or a count) on success and a
 *     negative error on failure: -errno, or a protocol error
 *     MQTTQ_E_* (below -4096). mqttq_strerror() names both.
 *     mqttq_errmsg() gives a sentence about the last failure of a client.
 *   - Handles are opaque. Option and property structs are plain data the
 *     caller fills after mqttq_opts_init(); strings are NUL-terminated
 *     UTF-8 and are copied by the call that takes them.
 *
 * Threading
 *   A struct mqttq is not internally locked: use each client from one
 *   thread at a time. By default that is the thread that first called
 *   mqttq_connect() (the io_uring is bound to it); with
 *   MQTTQ_OPT_ANY_THREAD in opts.flags any thread may, serialised by the
 *   caller. mqttq_new() and mqttq_publish() before the first connect may
 *   run in another thread. Different
 *   clients are independent and may run in different threads concurrently.
 *   No callback ever runs on a library-owned thread (there is none), except
 *   the log hook, which runs inside the call that logs.
 *
 * Event loop
 *   The library does nothing in the background. Work happens inside
 *   mqttq_wait() (and the _sync helpers): it submits batched sends,
 *   reaps io_uring completions, runs timers (keepalive, retransmit,
 *   reconnect) and returns events. To sit in another loop, poll
 *   mqttq_fd() for POLLIN and call mqttq_wait(q, ev, n, 0) when it is
 *   readable, and at the latest after mqttq_next_timeout_ms() ms.
 *   mqttq_publish() only queues; the bytes leave at the next
 *   mqttq_wait() or mqttq_flush(), coalesced with every other publish made
 *   since (one send, one io_uring_enter).
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MQTTQ_VERSION_MAJOR 0
#define MQTTQ_VERSION_MINOR 1
#define MQTTQ_VERSION_PATCH 0
#define MQTTQ_VERSION_STRING "0.1.0"
/* (major << 16) | (minor << 8) | patch, comparable with MQTTQ_VERSION_NUM(). */
#define MQTTQ_VERSION_NUM(a, b, c) (((a) << 16) | ((b) << 8) | (c))
#define MQTTQ_VERSION MQTTQ_VERSION_NUM(MQTTQ_VERSION_MAJOR, MQTTQ_VERSION_MINOR, \
					MQTTQ_VERSION_PATCH)

/* Version of the library actually loaded (MQTTQ_VERSION of its build). */
unsigned int mqttq_version(void);
const char *mqttq_version_string(void);

struct mqttq;

/* Protocol versions (the values on the wire). */
#define MQTTQ_V311 4
#define MQTTQ_V5 5

/*
 * Protocol errors: a broker sent something malformed or out of protocol,
 * or a keepalive ran out. Same numbering as the protocol core's MQC_E_*.
 */
enum mqttq_proto_err {
	MQTTQ_E_BASE = 4096,
	MQTTQ_E_VARINT,		/* remaining length longer than 4 bytes */
	MQTTQ_E_TOO_BIG,	/* packet over the Maximum Packet Size */
	MQTTQ_E_FLAGS,		/* reserved fixed-header flags set */
	MQTTQ_E_QOS3,		/* QoS 3 */
	MQTTQ_E_DUP_QOS0,	/* DUP on a QoS 0 PUBLISH */
	MQTTQ_E_PID0,		/* packet identifier 0 */
	MQTTQ_E_TOPIC_WILD,	/* wildcard in a PUBLISH topic */
	MQTTQ_E_TOPIC_EMPTY,	/* empty topic without alias */
	MQTTQ_E_UTF8,		/* ill-formed UTF-8 */
	MQTTQ_E_UTF8_NUL,	/* U+0000 in a string */
	MQTTQ_E_UTF8_SURROGATE,	/* surrogate code point in a string */
	MQTTQ_E_PROP_DUP,	/* property given twice */
	MQTTQ_E_PROP_UNKNOWN,	/* unknown property */
	MQTTQ_E_PROP_WRONG,	/* property not allowed in this packet */
	MQTTQ_E_PROP_VALUE,	/* property value out of range */
	MQTTQ_E_SHORT,		/* length field past the end of the packet */
	MQTTQ_E_TRAILING,	/* bytes after the last field */
	MQTTQ_E_TYPE,		/* reserved packet type */
	MQTTQ_E_REASON,		/* reason code invalid for the packet */
	MQTTQ_E_PROTOCOL,	/* packet breaks the protocol state */
	MQTTQ_E_UNKNOWN_PID,	/* ack for an identifier not in flight */
	MQTTQ_E_ALIAS,		/* bad topic alias */
	MQTTQ_E_KEEPALIVE,	/* nothing received within the keepalive bound */
	MQTTQ_E_MAX
};

/* Names any value a mqttq call returned (-errno or -MQTTQ_E_*); never NULL. */
const char *mqttq_strerror(int err);

/* ---- options ---------------------------------------------------------- */

/* A v5 user property (name, value), both UTF-8 strings. */
struct mqttq_user_prop {
	const char *name;
	const char *value;
};

/* v5 PUBLISH / will properties. Zeroed = none. Ignored on 3.1.1. */
struct mqttq_pub_props {
	uint32_t message_expiry;	/* seconds; used when has_message_expiry */
	uint8_t has_message_expiry;
	uint8_t payload_format;		/* 0 bytes, 1 UTF-8; sent when has_payload_format */
	uint8_t has_payload_format;
	const char *content_type;	/* NULL = absent */
	const char *response_topic;	/* NULL = absent; no wildcards */
	const void *correlation_data;	/* NULL = absent */
	size_t correlation_len;
	const struct mqttq_user_prop *user;
	unsigned int nuser;
};

struct mqttq_will {
	const char *topic;
	const void *payload;
	size_t payload_len;
	int qos;
	int retain;
	uint32_t delay_interval;	/* v5 Will Delay Interval, seconds */
	const struct mqttq_pub_props *props; /* v5 will properties, or NULL */
};

/* Engine selection (MQTTQ_OFFLOAD=auto|on|off in the environment overrides DEFAULT). */
enum mqttq_offload {
	MQTTQ_OFFLOAD_DEFAULT = 0,	/* the environment, else AUTO */
	MQTTQ_OFFLOAD_AUTO,		/* the kernel module when loaded, else userspace */
	MQTTQ_OFFLOAD_ON,		/* the module or fail with -ENOPROTOOPT */
	MQTTQ_OFFLOAD_OFF,		/* always the userspace engine */
};

enum mqttq_engine_kind {
	MQTTQ_ENGINE_NONE = 0,		/* not connected yet */
	MQTTQ_ENGINE_USERSPACE,		/* protocol core in this process */
	MQTTQ_ENGINE_OFFLOAD,		/* protocol core in mqttq.ko (TCP ULP) */
};

/* What a full offline queue does with one more publish. */
enum mqttq_overflow {
	MQTTQ_OVERFLOW_REJECT = 0,	/* mqttq_publish() returns -ENOBUFS */
	MQTTQ_OVERFLOW_DROP_QOS0,	/* drop the oldest queued QoS 0 (counted, evented); else reject */
};

enum mqttq_log_level { MQTTQ_LOG_ERR = 3, MQTTQ_LOG_WARN = 4, MQTTQ_LOG_INFO = 6,
		       MQTTQ_LOG_DEBUG = 7 };

struct mqttq_opts {
	/*
	 * Brokers, tried in turn on every (re)connect: "mqtt://host:port",
	 * "host:port" or "host" (port 1883). Used when nurls > 0; otherwise
	 * host/port. IPv6 literals in brackets: "mqtt://[::1]:1883".
	 */
	const char *const *urls;
	unsigned int nurls;
	const char *host;		/* default "127.0.0.1" */
	uint16_t port;			/* default 1883 */

	int version;			/* MQTTQ_V311 or MQTTQ_V5 (default) */
	const char *client_id;		/* NULL/"": server-assigned (v5) or generated (3.1.1) */
	const char *username;		/* NULL = none */
	const void *password;		/* NULL = none */
	size_t password_len;
	int clean;			/* clean session (3.1.1) / clean start (5.0); default 1 */
	uint32_t session_expiry;	/* v5 Session Expiry Interval, seconds */
	uint16_t keepalive_s;		/* default 60; 0 = off */
	const struct mqttq_will *will;	/* NULL = no will */

	/*
	 * Outbound QoS 1/2 in flight; v5 caps it by the server's Receive
	 * Maximum. Default 20, mosquitto's max_inflight_messages: on 3.1.1,
	 * which cannot announce a limit, mosquitto drops QoS 2 beyond it.
	 */
	uint16_t window;
	/*
	 * Our Receive Maximum. Default 65535: mosquitto 2.0.11 frees its QoS 2
	 * send quota at PUBREC rather than PUBCOMP, so a smaller value makes
	 * the (strict) core end the session with 0x93 under load.
	 */
	uint16_t receive_max;
	uint32_t max_packet_in;		/* our Maximum Packet Size; default 1 MiB */
	uint32_t retry_ms;		/* 3.1.1 in-session resend interval; default 0 = only on reconnect */

	/* Offline/pending queue: publishes not yet handed to the session. */
	uint32_t queue_max_msgs;	/* default 4096 */
	uint64_t queue_max_bytes;	/* default 16 MiB */
	int overflow;			/* enum mqttq_overflow */

	/* Reconnect: delay doubles from min to max, then +-50% jitter. */
	int no_reconnect;		/* 1: a lost connection stays lost */
	uint32_t reconnect_min_ms;	/* default 100 */
	uint32_t reconnect_max_ms;	/* default 30000 */
	uint32_t connect_timeout_ms;	/* TCP connect + CONNACK; default 10000 */

	uint16_t topic_alias_max;	/* v5 outbound aliases to use at most (server's max caps it); default 16, 0 = off */

	int offload;			/* enum mqttq_offload */

	/*
	 * Crash-safe outbox: an append-only log of accepted QoS 1/2 publishes
	 * (NULL = none). mqttq_new() replays it: unfinished messages are
	 * resent (with DUP and their identifier once they had one), a torn or
	 * corrupt tail is cut off with a warning and counted in
	 * stats.outbox_corrupt. Both engines; on the offload engine the kernel
	 * session takes identifiers and PUBRELs from the library
	 * (MQTTQ_SF_OUTBOX) so they are logged first, and never lingers.
	 */
	const char *outbox_path;
	int outbox_fsync;		/* 0: durable before mqttq_publish returns; N: fdatasync every N ms */

	/* Diagnostics: defaults to stderr when MQTTQ_DEBUG is set, else silence. */
	void (*log)(void *ctx, int level, const char *msg);
	void *log_ctx;

	uint64_t flags;			/* MQTTQ_OPT_* */
	uint64_t reserved[7];		/* zero */
};

/*
 * opts.flags: allow the client to be driven from different threads (still
 * one at a time). Without it the io_uring is bound to the thread that
 * first calls mqttq_connect() (IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN,
 * which saves a wakeup per completion); calls from another thread then
 * fail with -EEXIST.
 */
#define MQTTQ_OPT_ANY_THREAD 0x1

/* Fills defaults. Always call it before setting fields. */
void mqttq_opts_init(struct mqttq_opts *o);

/* ---- lifecycle -------------------------------------------------------- */

/*
 * Creates a client (allocates every pool it will use; sets up the ring).
 * No network I/O yet. Returns 0 and *out, or -errno (-EINVAL for bad
 * options, with mqttq_errmsg(NULL) saying which).
 */
int mqttq_new(struct mqttq **out, const struct mqttq_opts *o);
/* Closes the socket without DISCONNECT (the will fires) and frees everything. */
void mqttq_destroy(struct mqttq *q);

/*
 * Starts connecting; MQTTQ_EV_CONNECTED arrives from mqttq_wait(). With
 * reconnect on, failures are retried behind the scenes and reported as
 * MQTTQ_EV_DISCONNECTED events. -ENOPROTOOPT when offload is ON and the
 * module is missing.
 */
int mqttq_connect(struct mqttq *q);
/* mqttq_connect() then wait for CONNACK: 0, -ECONNREFUSED (see mqttq_errmsg), -ETIMEDOUT. */
int mqttq_connect_sync(struct mqttq *q, int timeout_ms);
/*
 * Graceful end: flushes queued bytes, sends DISCONNECT with v5 reason
 * (0 = normal, 4 = with will), closes. No reconnect after it.
 */
int mqttq_disconnect(struct mqttq *q, uint8_t reason);

/* Sentence about the last failure on q (or of mqttq_new when q is NULL); "" if none. */
const char *mqttq_errmsg(const struct mqttq *q);

/* ---- publish ---------------------------------------------------------- */

#define MQTTQ_RETAIN 0x1		/* flags: retain */
#define MQTTQ_NO_ALIAS 0x2		/* flags: never use a topic alias for this one */

/*
 * Queues a publish. Returns 0: accepted; exactly one MQTTQ_EV_PUBLISHED
 * with this token will follow (reason 0 = done, >= 0x80 refused by the
 * broker, or err < 0 when dropped). Errors before accepting:
 *   -EINVAL invalid topic / QoS / property (UTF-8, wildcard)
 *   -EMSGSIZE over the server's Maximum Packet Size
 *   -ENOTSUP retain on a server without Retain Available, QoS over its max
 *   -ENOBUFS offline queue full (policy REJECT, or no QoS 0 to drop)
 *   -ESHUTDOWN after mqttq_disconnect()
 * Accepted QoS 1/2 publishes survive reconnects until acknowledged.
 */
int mqttq_publish(struct mqttq *q, const char *topic, const void *payload, size_t len, int qos,
		  unsigned int flags, const struct mqttq_pub_props *props, uint64_t token);
/* Publish and wait for its completion: 0, the broker's reason (> 0), or -errno. */
int mqttq_publish_sync(struct mqttq *q, const char *topic, const void *payload, size_t len,
		       int qos, unsigned int flags, const struct mqttq_pub_props *props,
		       int timeout_ms);
/* Push queued bytes to the kernel now (one io_uring_enter); does not wait. */
int mqttq_flush(struct mqttq *q);

/* ---- subscribe -------------------------------------------------------- */

struct mqttq_sub {
	const char *filter;
	uint8_t qos;
	uint8_t no_local;		/* v5 */
	uint8_t retain_as_published;	/* v5 */
	uint8_t retain_handling;	/* v5: 0 send, 1 send if new, 2 don't send */
};

/*
 * Subscribes n filters (1..64) in one SUBSCRIBE; sub_id is the v5
 * Subscription Identifier (0 = none). MQTTQ_EV_SUBSCRIBED with token and
 * one code per filter follows. -ENOTCONN when not connected, -EINVAL bad
 * filter/QoS/option, -ENOTSUP sub id on a server without them.
 */
int mqttq_subscribe(struct mqttq *q, const struct mqttq_sub *subs, unsigned int n,
		    uint32_t sub_id, uint64_t token);
int mqttq_unsubscribe(struct mqttq *q, const char *const *filters, unsigned int n,
		      uint64_t token);
/* Blocking forms; codes[n] receives the per-filter SUBACK/UNSUBACK codes. */
int mqttq_subscribe_sync(struct mqttq *q, const struct mqttq_sub *subs, unsigned int n,
			 uint32_t sub_id, uint8_t *codes, int timeout_ms);
int mqttq_unsubscribe_sync(struct mqttq *q, const char *const *filters, unsigned int n,
			   uint8_t *codes, int timeout_ms);

/* ---- events ----------------------------------------------------------- */

enum mqttq_event_type {
	MQTTQ_EV_CONNECTED = 1,		/* session_present; limits readable via mqttq_limits() */
	MQTTQ_EV_DISCONNECTED,		/* err: why; reason: v5 code; will_retry */
	MQTTQ_EV_PUBLISHED,		/* token, reason (0 ok), err (<0: dropped/failed) */
	MQTTQ_EV_MESSAGE,		/* msg */
	MQTTQ_EV_SUBSCRIBED,		/* token, codes/ncodes */
	MQTTQ_EV_UNSUBSCRIBED,		/* token, codes/ncodes (3.1.1: none, ncodes 0) */
};

/* v5 properties of a received message, decoded; raw block for the rest. */
struct mqttq_msg_props {
	uint32_t message_expiry;
	uint8_t has_message_expiry;
	uint8_t payload_format;
	uint32_t subscription_id;	/* first one, 0 = none */
	const char *content_type;	/* not NUL-terminated; NULL = absent */
	size_t content_type_len;
	const char *response_topic;
	size_t response_topic_len;
	const void *correlation_data;
	size_t correlation_len;
	const void *raw;		/* whole property block (user properties etc.) */
	size_t raw_len;
};

struct mqttq_message {
	const char *topic;		/* NOT NUL-terminated */
	size_t topic_len;
	const void *payload;
	size_t payload_len;
	uint8_t qos, retain, dup;
	uint32_t filter_id;		/* id of the local filter that matched (mqttq_filter_add), 0 none */
	struct mqttq_msg_props props;
};

/*
 * One event. Pointers inside stay valid until the next mqttq_wait() or
 * _sync call on the same client.
 */
struct mqttq_event {
	int type;			/* enum mqttq_event_type */
	int err;			/* 0, -errno or -MQTTQ_E_* */
	uint8_t reason;			/* v5 reason code (PUBACK, DISCONNECT, CONNACK ...) */
	uint8_t session_present;	/* CONNECTED */
	uint8_t will_retry;		/* DISCONNECTED: a reconnect is scheduled */
	uint8_t by_peer;		/* DISCONNECTED: broker sent DISCONNECT */
	uint64_t token;			/* PUBLISHED, (UN)SUBSCRIBED */
	const uint8_t *codes;		/* (UN)SUBSCRIBED: reason per filter */
	unsigned int ncodes;
	struct mqttq_message msg;	/* MESSAGE */
};

/*
 * Runs the client and copies up to max events into ev. Waits up to
 * timeout_ms (0 = don't block, -1 = forever) for the first one. Returns
 * the number of events (0 on timeout) or -errno (-EINVAL bad args).
 */
int mqttq_wait(struct mqttq *q, struct mqttq_event *ev, unsigned int max, int timeout_ms);
/* Iterates v5 user properties of a message: 1 and name/value, 0 at end, <0 malformed. */
int mqttq_user_prop_next(const struct mqttq_message *m, size_t *cursor, const char **name,
			 size_t *name_len, const char **value, size_t *value_len);

/* A descriptor that polls readable when mqttq_wait() has work (the io_uring fd). */
int mqttq_fd(const struct mqttq *q);
/* Milliseconds until mqttq_wait() must run for timers; -1 = none pending. */
int mqttq_next_timeout_ms(struct mqttq *q);

/* ---- local (eBPF) topic filters ------------------------------------- */

/*
 * Local filters select which received messages become events; each
 * message is tagged with the id of the matching filter. With no filter
 * installed, every message is delivered (filter_id 0). Filter syntax is
 * MQTT's (+, #). -EINVAL bad filter or id 0, -EEXIST id in use, -ENOENT
 * unknown id on remove. Runs as an eBPF program when available, else in
 * process (logged once with MQTTQ_DEBUG).
 */
int mqttq_filter_add(struct mqttq *q, const char *filter, uint32_t id);
int mqttq_filter_remove(struct mqttq *q, uint32_t id);
#define MQTTQ_FILTER_DELIVER_UNMATCHED 0x1 /* debug: unmatched messages delivered with id 0 */
int mqttq_filter_flags(struct mqttq *q, unsigned int flags);

/* ---- introspection ---------------------------------------------------- */

/* enum mqttq_engine_kind of the current/last connection. */
int mqttq_engine(const struct mqttq *q);
const char *mqttq_engine_name(int engine);
/* Client id in use (the server-assigned one after a v5 CONNACK assigned it). */
const char *mqttq_client_id(const struct mqttq *q);
/* Non-zero while a session is established. */
int mqttq_is_connected(const struct mqttq *q);

/* Limits of the current session, from CONNACK (0 = unlimited/absent). */
struct mqttq_limits {
	uint32_t max_packet_size;
	uint16_t receive_max;
	uint16_t topic_alias_max;
	uint16_t server_keepalive;
	uint8_t max_qos;
	uint8_t retain_available;
	uint8_t wildcard_sub_available;
	uint8_t sub_id_available;
	uint8_t shared_sub_available;
};
int mqttq_limits(const struct mqttq *q, struct mqttq_limits *out);

struct mqttq_stats {
	uint64_t published;		/* accepted by mqttq_publish */
	uint64_t completed;		/* PUBLISHED events with reason 0 */
	uint64_t refused;		/* PUBLISHED with a reason >= 0x80 */
	uint64_t dropped;		/* dropped by the overflow policy */
	uint64_t rejected;		/* mqttq_publish -ENOBUFS */
	uint64_t received;		/* messages from the broker */
	uint64_t filtered;		/* received but matched no local filter */
	uint64_t queued;		/* now in the offline/pending queue */
	uint64_t queued_bytes;
	uint64_t inflight;		/* now in the session (QoS 1/2 awaiting acks) */
	uint64_t connects;		/* CONNACKs accepted */
	uint64_t disconnects;
	uint64_t retransmits;		/* resent PUBLISH/PUBREL */
	uint64_t alias_hits;		/* publishes sent with an alias only */
	uint64_t bytes_tx, bytes_rx;
	uint64_t sends;			/* send operations (one per batch) */
	uint64_t enters;		/* io_uring_enter calls */
	uint64_t proto_errors;
	uint64_t outbox_corrupt;	/* torn/corrupt outbox records skipped */
	uint64_t mem_bytes;		/* message buffer memory held */
	uint64_t recvs;			/* receive completions (one per burst of bytes) */
	uint64_t waits;			/* times mqttq_wait() slept in the kernel */
	uint64_t filter_in_kernel;	/* 1: the eBPF filter drops unmatched QoS 0 before us */
};
/* Copies min(size, sizeof) bytes of counters (ABI-safe across versions). */
int mqttq_stats(const struct mqttq *q, struct mqttq_stats *st, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* MQTTQ_H */
