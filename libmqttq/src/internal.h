/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Private state of a libmqttq client shared by the library's source files. */
#ifndef MQTTQ_INTERNAL_H
#define MQTTQ_INTERNAL_H

#include <liburing.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../core/mqc.h"
#include "mqttq.h"

#define MQ_API __attribute__((visibility("default")))
#define MQ_HIDDEN __attribute__((visibility("hidden")))

#define MQ_MAX_URLS 16
#define MQ_MAX_REQ 32		/* outstanding (UN)SUBSCRIBE requests */
#define MQ_NCLASS 24		/* buffer size classes 64 B .. 512 MiB */
#define MQ_ALIAS_SLOTS 256	/* topic alias candidate table (power of 2) */

/* One publish owned by the library from mqttq_publish() to its completion. */
struct mq_msg {
	struct mqc_msg m;
	struct mq_msg *next;	/* pending FIFO / free list */
	u8 *buf;
	u32 cap;
	u8 cls;			/* buffer size class */
	u8 sync;		/* completion goes to the _sync waiter, not an event */
	u8 aliasable;		/* v5 without properties: may go out with a topic alias */
	u8 in_core;
	u8 wal_rel;		/* outbox holds its PUBREC (QoS 2 at PUBREL) */
	u8 ob_state;		/* offload + outbox: enum mqttq_pub_state to hand m.pid over in */
	u32 topic_off, topic_len;
	u32 payload_off, payload_len;
	/* offload engine: the sendmsg that hands it to mqttq.ko, kept until PUB_DONE */
	u64 off_seq;		/* kernel token; 0 = not with the kernel */
	u64 wal_seq;		/* outbox record; 0 = not in the outbox */
	u32 props_off, props_len;
	struct msghdr mh;
	struct iovec iov[3];
	u64 cmsg[8];		/* CMSG_SPACE(sizeof(struct mqttq_pub)), aligned */
};

struct mq_url {
	char host[256];
	char port[8];
};

struct mq_req {
	u64 core_token;		/* 0 = slot free */
	u64 user_token;
	u8 unsub;
	u8 sync;
	u32 n;
};

/* An event plus storage for what its pointers reference. */
struct mq_ev {
	struct mqttq_event ev;
	u8 codes[MQC_MAX_TOPICS];
	u8 in_rx;		/* points into the receive accumulator */
};

struct mq_txbuf {
	u8 *p;
	u32 len, cap, off;	/* off: bytes of a partial send already done */
};

struct mq_alias {
	u32 hash;
	u16 alias;		/* 0 = candidate only */
	u16 hits;
	u16 len;
	u32 epoch;
	char *topic;		/* owned copy; allocated once per slot */
	u32 topic_cap;
};

enum mq_state {
	MQ_ST_IDLE = 0,		/* not started */
	MQ_ST_CONNECTING,	/* TCP connect in flight */
	MQ_ST_WAIT_CONNACK,
	MQ_ST_UP,
	MQ_ST_BACKOFF,		/* waiting to reconnect */
	MQ_ST_CLOSED,		/* user disconnect or no retry */
};

struct mqttq {
	struct mqttq_opts o;
	/* owned copies of option strings */
	char *client_id;
	char *username;
	u8 *password;
	struct mq_url urls[MQ_MAX_URLS];
	unsigned int nurls, url_idx;
	struct mq_url redirect;	/* v5 Server Reference to try next */
	bool have_redirect;
	u8 *connect_pkt;	/* CONNECT for reconnects (clean flag patched) */
	u32 connect_len;
	u32 connect_flags_off;

	struct io_uring ring;
	bool ring_ok;
	bool ring_deferred;	/* DEFER_TASKRUN: completions run only when we enter */
	bool ring_disabled;	/* created R_DISABLED, enabled by the first connect */
	struct io_uring_buf_ring *br;
	u8 *rbufs;
	u32 rbuf_size, rbuf_count;
	size_t br_len;

	int fd;
	u32 gen;		/* connection generation, in every SQE's user_data */
	enum mq_state state;
	bool recv_armed;
	bool send_inflight;
	bool connect_inflight;
	bool timer_armed;
	u64 timer_at;
	struct __kernel_timespec timer_ts;
	u64 state_deadline;	/* connect timeout / backoff end */
	u32 backoff_ms;
	int engine;

	/* receive accumulator: fixed, never moves while events point into it */
	u8 *rx;
	u32 rx_cap, rx_len, rx_off;
	u16 *held_bid;		/* recv buffers waiting for room in rx */
	u32 *held_len;
	u32 nheld;
	bool rx_eof;
	int rx_err;

	struct mq_txbuf tx[2];	/* tx[cur] fills while tx[!cur] is on the wire */
	int tx_cur;
	u32 tx_soft;
	u32 tx_batched;		/* QoS 1/2 PUBLISH/PUBREL in tx[cur], not on the wire yet */
	bool rx_since_ack;	/* bytes arrived since we last forced a TCP ACK */
	u32 hold_need;		/* acks the held batch waits for */
	bool tx_urgent;		/* tx[cur] holds something that must not wait for acks */

	/* the protocol core */
	struct mqc_session s;
	struct mqc_msg **slots;
	u8 *in2;
	u16 *ackq;
	struct mqc_limits lim;
	bool closing;		/* core asked to close */
	struct mqc_close close_info;

	/* message pool */
	struct mq_msg *msgs;
	u32 nmsgs;
	struct mq_msg *free_msgs;
	void *free_bufs[MQ_NCLASS];
	u64 mem_bytes, mem_cap;
	/* pending FIFO: accepted, not yet in the core */
	struct mq_msg *pend_head, *pend_tail;
	u32 pend_n;
	u64 pend_bytes;

	/* events */
	struct mq_ev *evq;
	u32 evq_cap, evq_head, evq_len;

	struct mq_req req[MQ_MAX_REQ];
	u64 req_seq;

	/* sync waiters */
	int sync_pub_done;
	int sync_pub_res;
	int sync_sub_done;
	u8 *sync_codes;
	u32 sync_ncodes;

	/* topic aliases, reset every connection */
	struct mq_alias alias[MQ_ALIAS_SLOTS];
	u16 alias_next, alias_max;
	u32 alias_epoch;

	/* offload engine */
	bool want_offload;
	bool peek_armed, peek_again, off_recv_armed;
	u64 peek_at;
	u8 peek[512];
	u64 off_seq;		/* next kernel token */
	struct mq_msg **off_map;	/* off_seq % off_map_n -> message with the kernel */
	u32 off_map_n, off_out, off_out_qos;
	u32 off_batch;		/* sendmsg SQEs in flight */
	struct mq_msg *off_retry_head, *off_retry_tail;
	struct mq_msg *off_batch_head, *off_batch_tail;	/* sendmsg SQEs in flight, in order */
	/* offload + outbox (MQTTQ_SF_OUTBOX): identifiers are ours, PUBRELs wait for the log */
	struct mq_msg **obo_slot;	/* pid % window -> message holding that identifier */
	u16 obo_next;
	bool obo_taken;		/* restored flows moved from the in-process core */
	u32 obo_nrel;
	u16 obo_rel[64];	/* PUBRELs to release once their REL records are written */

	/* crash-safe outbox */
	const char *ob_path_arg;
	char *ob_path;
	int ob_fd;
	u8 *ob_buf;		/* records not written yet */
	size_t ob_len, ob_cap;
	u64 ob_size, ob_seq, ob_synced;
	u32 ob_live, ob_dead, ob_restored;
	bool ob_dirty;

	/* local filters */
	struct mqf_set *filters;
	struct mqf_mgr *mqf;	/* eBPF filter manager, NULL when it could not load */
	bool mqf_tried;
	int mqf_sock;		/* socket in the sockmap, -1 none */
	unsigned int filter_flags;
	bool filter_logged;

	struct mqttq_stats st;
	u32 rand_state;
	bool debug;
	bool rx_popped;		/* an event into rx went out in this mqttq_wait */
	struct sockaddr_storage addr;
	char errmsg[256];
};

/* Log through the user's hook, or stderr with MQTTQ_DEBUG. */
MQ_HIDDEN void mq_log(struct mqttq *q, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
MQ_HIDDEN int mq_err(struct mqttq *q, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
MQ_HIDDEN int mq_parse_url(const char *s, struct mq_url *u);
MQ_HIDDEN u64 mq_now_ms(void);

/* shared by client.c and offload.c */
MQ_HIDDEN u32 mq_evq_free(const struct mqttq *q);
MQ_HIDDEN struct mq_ev *mq_evq_push(struct mqttq *q, int type);
MQ_HIDDEN u32 mq_ev_margin(const struct mqttq *q);
MQ_HIDDEN struct io_uring_sqe *mq_get_sqe(struct mqttq *q);
MQ_HIDDEN void mq_complete(void *ctx, struct mqc_msg *m, u8 reason);
MQ_HIDDEN int mq_deliver(void *ctx, const struct mqc_inmsg *im);
MQ_HIDDEN void mq_reconnect(struct mqttq *q, int err, u8 reason, bool by_peer, bool retry);
MQ_HIDDEN void mq_fail_msg(struct mqttq *q, struct mq_msg *mm, int err);
MQ_HIDDEN struct mq_req *mq_req_find(struct mqttq *q, u64 core_token);
MQ_HIDDEN struct mq_req *mq_req_new(struct mqttq *q);
MQ_HIDDEN void mq_pend_push(struct mqttq *q, struct mq_msg *mm);
MQ_HIDDEN void mq_on_connack_ok(struct mqttq *q, bool session_present);
MQ_HIDDEN int mq_filter_prog_fd(struct mqttq *q);

/* crash-safe outbox (outbox.c) */
MQ_HIDDEN int mq_outbox_open(struct mqttq *q);
MQ_HIDDEN void mq_outbox_close(struct mqttq *q);
MQ_HIDDEN int mq_outbox_add(struct mqttq *q, struct mq_msg *mm);
MQ_HIDDEN void mq_outbox_pid(struct mqttq *q, struct mq_msg *mm);
MQ_HIDDEN void mq_outbox_rel(struct mqttq *q, u16 pid);
MQ_HIDDEN void mq_outbox_rel_msg(struct mqttq *q, struct mq_msg *mm);
MQ_HIDDEN void mq_outbox_done(struct mqttq *q, struct mq_msg *mm);
MQ_HIDDEN int mq_outbox_sync(struct mqttq *q, bool force);

/* offload engine (offload.c) */
enum { MQ_OP_PEEK = 8, MQ_OP_OFFSEND, MQ_OP_RECREC };
MQ_HIDDEN int mq_off_init(struct mqttq *q);
MQ_HIDDEN void mq_off_fini(struct mqttq *q);
MQ_HIDDEN void mq_off_arm_peek(struct mqttq *q);
MQ_HIDDEN void mq_off_cqe(struct mqttq *q, struct io_uring_cqe *cqe, int op, bool stale);
MQ_HIDDEN int mq_off_attach(struct mqttq *q, bool session_present);
MQ_HIDDEN void mq_off_progress(struct mqttq *q);
MQ_HIDDEN void mq_off_pump(struct mqttq *q);
MQ_HIDDEN void mq_off_dropped(struct mqttq *q);
MQ_HIDDEN int mq_off_subscribe(struct mqttq *q, const struct mqc_sub *subs, unsigned int n,
			       u32 sub_id, u64 token, bool unsub);
MQ_HIDDEN int mq_off_disconnect(struct mqttq *q, u8 reason);

/* message pool */
MQ_HIDDEN int mq_pool_init(struct mqttq *q);
MQ_HIDDEN void mq_pool_fini(struct mqttq *q);
MQ_HIDDEN struct mq_msg *mq_msg_get(struct mqttq *q, u32 size);
MQ_HIDDEN void mq_msg_put(struct mqttq *q, struct mq_msg *mm);

#endif /* MQTTQ_INTERNAL_H */
