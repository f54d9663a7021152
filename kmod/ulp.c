// SPDX-License-Identifier: GPL-2.0
/* The "mqttq" TCP upper-layer protocol: the protocol core on a connected socket, in the kernel. */

#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/hashtable.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uio.h>
#include <linux/workqueue.h>
#include <net/inet_common.h>
#include <net/inet_connection_sock.h>
#include <net/sock.h>
#include <net/strparser.h>
#include <net/tcp.h>

#include "compat.h"
#include "mqc.h"
#include "mqttq_kmod.h"
#include "mqttq_uapi.h"

#define MQTTQ_TXB_CAP 2048	 /* small control packets are packed into chunks this big */
#define MQTTQ_COAL_MS 2		 /* longest a coalesced completion waits for its wakeup */
#define MQTTQ_COAL_MAX 64	 /* completions per reader wakeup at most */
#define MQTTQ_MIN_BYTES 4096	 /* smallest max_bytes a session may ask for */
#define MQTTQ_SUB_CODES MQC_MAX_TOPICS

enum { MQTTQ_F_TICK };

/*
 * A record type userspace never sees: a filtered-out message that must be
 * acknowledged on delivery, in order, once the records before it are read.
 */
#define MQTTQ_REC_ACK_ONLY 0

/* One record waiting for recvmsg; buf holds struct mqttq_rec then its data. */
struct mqttq_krec {
	struct list_head node;
	u32 acct;
	u32 pad;
	u8 buf[] __aligned(8);
};

/* A chunk of bytes waiting for TCP. */
struct mqttq_txb {
	struct list_head node;
	u32 len, off, cap, acct;
	u8 data[];
};

/* An outbound PUBLISH owned by the session until the core completes it. */
struct mqttq_omsg {
	struct mqc_msg m;
	struct list_head node;
	struct mqttq_krec *done; /* its completion record, allocated up front */
	struct mqttq_krec *rec;	 /* MQTTQ_SF_OUTBOX QoS 2: its PUBREC record, likewise */
	u32 acct;
	u8 buf[];
};

/* A SUBSCRIBE/UNSUBSCRIBE awaiting its acknowledgement. */
struct mqttq_subreq {
	struct list_head node;
	u64 token;
	bool unsub;
	struct mqttq_krec *rec; /* room for MQTTQ_SUB_CODES codes */
};

struct mqttq_ctx;

/* Protocol state that may outlive its TCP connection (linger/resume). */
struct mqttq_sess {
	struct mqc_session core;
	struct mqc_config cfg;
	struct mqttq_ctx *ctx;	/* attached socket; NULL while lingering */
	struct mqc_msg **slots;
	u8 *in2;
	u16 *ackq;
	struct list_head msgs;	/* every mqttq_omsg the core holds */
	size_t msg_bytes;
	u64 key;
	struct hlist_node hnode;
	bool hashed;
	struct delayed_work expire;
	u32 linger_s, max_bytes;
	u8 completion;
	u16 last_inflight;
	u64 last_acks, last_pubrel, last_retx, last_ka, last_perr;
};

/* Per-socket state: the attachment to TCP and the record queue. */
struct mqttq_ctx {
	struct sock *sk;
	struct proto *base_prot;
	const struct proto_ops *base_ops;
	void (*saved_data_ready)(struct sock *sk);
	void (*saved_write_space)(struct sock *sk);
	void (*saved_state_change)(struct sock *sk);
	struct strparser strp;
	struct mqttq_sess *sess;
	u8 state;		/* enum mqttq_sess_state */
	bool dying, eof, direct, shut_pending, want_in, want_out;
	bool room;		/* what poll reports as EPOLLOUT; poll must not touch sess */
	bool close_pending, local_disc, resumed;
	int err;
	struct mqc_close closing;
	struct list_head recs;
	u32 nrecs;
	size_t rec_bytes;
	struct list_head txq;
	size_t tx_bytes;
	struct list_head subs;
	struct work_struct work;
	struct timer_list timer;
	unsigned long flags;
	u32 coal_pending, coal_batch;
	u64 coal_since;
	struct sk_buff *held;	/* a packet waiting for record memory */
	u8 *scratch;
	size_t scratch_cap;
	u8 *rxbuf;
	size_t rxbuf_cap;
	struct bpf_prog *filter;
	const u8 *cur_pkt;
	u32 cur_len;
	struct mqttq_krec *closed_rec;
	u8 ack_policy;
	struct mqttq_sess_stats st;
};

/* list_last_entry_or_null() is not in 6.1 */
#define mqttq_last(head, type, member) \
	(list_empty(head) ? NULL : list_last_entry(head, type, member))

static struct workqueue_struct *mqttq_wq;

static DEFINE_SPINLOCK(mqttq_tbl_lock);
static DEFINE_HASHTABLE(mqttq_tbl, 6);

static struct proto mqttq_prot4, mqttq_prot6;
static struct proto_ops mqttq_ops4, mqttq_ops6;
static const struct proto *mqttq_base6;
static DEFINE_MUTEX(mqttq_prot6_lock);

static u64 mqttq_now(void)
{
	return ktime_to_ms(ktime_get());
}

static struct mqttq_ctx *mqttq_ctx(const struct sock *sk)
{
	return (__force struct mqttq_ctx *)rcu_dereference_protected(
		inet_csk(sk)->icsk_ulp_data, true);
}

static gfp_t mqttq_gfp(const struct mqttq_ctx *ctx)
{
	return ctx->direct ? GFP_KERNEL : GFP_ATOMIC;
}

static void mqttq_hold(size_t n)
{
	atomic64_add(n, &mqttq_stats.bytes_held);
}

static void mqttq_unhold(size_t n)
{
	atomic64_sub(n, &mqttq_stats.bytes_held);
}

/* ---- records ---------------------------------------------------------- */

static struct mqttq_rec *mqttq_hdr(struct mqttq_krec *k)
{
	return (struct mqttq_rec *)k->buf;
}

static struct mqttq_krec *mqttq_rec_alloc(u16 type, u32 dlen, gfp_t gfp)
{
	size_t size = sizeof(struct mqttq_krec) + sizeof(struct mqttq_rec) + dlen;
	struct mqttq_krec *k = kmalloc(size, gfp | __GFP_NOWARN);
	struct mqttq_rec *r;

	if (!k)
		return NULL;
	k->acct = size;
	r = mqttq_hdr(k);
	memset(r, 0, sizeof(*r));
	r->type = type;
	r->len = sizeof(*r) + dlen;
	return k;
}

static void mqttq_rec_queue(struct mqttq_ctx *ctx, struct mqttq_krec *k)
{
	list_add_tail(&k->node, &ctx->recs);
	ctx->nrecs++;
	ctx->rec_bytes += k->acct;
	mqttq_hold(k->acct);
}

static void mqttq_rec_unqueue(struct mqttq_ctx *ctx, struct mqttq_krec *k)
{
	list_del(&k->node);
	ctx->nrecs--;
	ctx->rec_bytes -= k->acct;
	mqttq_unhold(k->acct);
	kfree(k);
}

/* ---- transmit ---------------------------------------------------------- */

static int mqttq_send_raw(struct mqttq_ctx *ctx, const u8 *buf, u32 len, int flags)
{
	struct kvec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL | flags };

	iov_iter_kvec(&msg.msg_iter, ITER_SOURCE, &iov, 1, len);
	return tcp_sendmsg_locked(ctx->sk, &msg, len);
}

static void mqttq_txb_free(struct mqttq_ctx *ctx, struct mqttq_txb *b)
{
	list_del(&b->node);
	ctx->tx_bytes -= b->acct;
	mqttq_unhold(b->acct);
	kfree(b);
}

static void mqttq_tx_purge(struct mqttq_ctx *ctx)
{
	struct mqttq_txb *b, *t;

	list_for_each_entry_safe(b, t, &ctx->txq, node)
		mqttq_txb_free(ctx, b);
}

static int mqttq_txq_append(struct mqttq_ctx *ctx, const u8 *buf, u32 len)
{
	struct mqttq_txb *b = mqttq_last(&ctx->txq, struct mqttq_txb, node);
	u32 cap;

	if (b && b->cap - b->len >= len) {
		memcpy(b->data + b->len, buf, len);
		b->len += len;
		return 0;
	}
	cap = max_t(u32, len, MQTTQ_TXB_CAP - sizeof(*b));
	b = kmalloc(sizeof(*b) + cap, mqttq_gfp(ctx) | __GFP_NOWARN);
	if (!b)
		return -ENOMEM;
	b->len = len;
	b->off = 0;
	b->cap = cap;
	b->acct = sizeof(*b) + cap;
	memcpy(b->data, buf, len);
	list_add_tail(&b->node, &ctx->txq);
	ctx->tx_bytes += b->acct;
	mqttq_hold(b->acct);
	return 0;
}

/*
 * Bytes for the peer. Process context holding the socket lock may hand
 * them to TCP at once; softirq (strparser, timers) may not call into
 * tcp_sendmsg, so they wait in txq for the work item.
 */
static int mqttq_tx(struct mqttq_ctx *ctx, const u8 *buf, u32 len)
{
	if (ctx->direct && list_empty(&ctx->txq)) {
		int ret = mqttq_send_raw(ctx, buf, len, 0);

		if (ret == (int)len)
			return 0;
		if (ret < 0 && ret != -EAGAIN)
			return ret;
		if (ret > 0) {
			buf += ret;
			len -= ret;
		}
	}
	return mqttq_txq_append(ctx, buf, len);
}

/* Socket lock held, process context. */
static void mqttq_flush(struct mqttq_ctx *ctx)
{
	struct sock *sk = ctx->sk;
	struct mqttq_txb *b;

	while ((b = list_first_entry_or_null(&ctx->txq, struct mqttq_txb, node))) {
		bool more = !list_is_last(&b->node, &ctx->txq);
		int ret = mqttq_send_raw(ctx, b->data + b->off, b->len - b->off,
					 more ? MSG_MORE : 0);

		if (ret == -EAGAIN || ret == 0)
			break;	/* sk_write_space brings us back */
		if (ret < 0) {
			/* The connection is gone; state_change ends the session. */
			mqttq_tx_purge(ctx);
			break;
		}
		b->off += ret;
		if (b->off < b->len)
			break;
		mqttq_txb_free(ctx, b);
	}
	if (ctx->shut_pending && list_empty(&ctx->txq)) {
		ctx->shut_pending = false;
		WRITE_ONCE(sk->sk_shutdown, sk->sk_shutdown | SEND_SHUTDOWN);
		ctx->base_prot->shutdown(sk, SEND_SHUTDOWN); /* tcp_shutdown is not exported */
	}
}

/* ---- sessions ---------------------------------------------------------- */

static void mqttq_omsg_free(struct mqttq_sess *s, struct mqttq_omsg *om)
{
	list_del(&om->node);
	s->msg_bytes -= om->acct;
	mqttq_unhold(om->acct);
	kfree(om->done);
	kfree(om->rec);
	kvfree(om);
}

/* Fold the core's counters into the global and per-socket ones. */
static void mqttq_sess_sync(struct mqttq_sess *s)
{
	struct mqttq_ctx *ctx = s->ctx;
	struct mqc_session *c = &s->core;
	u64 d;

	atomic64_add((s64)c->inflight - (s64)s->last_inflight, &mqttq_stats.inflight);
	s->last_inflight = c->inflight;

#define MQTTQ_SYNC(field, last, gstat, cstat)                  \
	do {                                                   \
		d = c->field - s->last;                        \
		s->last = c->field;                            \
		if (d) {                                       \
			atomic64_add(d, &mqttq_stats.gstat);   \
			if (ctx)                               \
				ctx->st.cstat += d;            \
		}                                              \
	} while (0)
	MQTTQ_SYNC(n_acks, last_acks, acks_in_kernel, acks_in_kernel);
	MQTTQ_SYNC(n_pubrel, last_pubrel, pubrel_sent, pubrel_sent);
	MQTTQ_SYNC(n_retransmit, last_retx, retransmits, retransmits);
	MQTTQ_SYNC(n_keepalive_timeout, last_ka, keepalive_timeouts, keepalive_timeouts);
	MQTTQ_SYNC(n_proto_err, last_perr, protocol_errors, protocol_errors);
#undef MQTTQ_SYNC
}

static void mqttq_sess_free(struct mqttq_sess *s)
{
	struct mqttq_omsg *om, *t;

	list_for_each_entry_safe(om, t, &s->msgs, node)
		mqttq_omsg_free(s, om);
	atomic64_sub(s->last_inflight, &mqttq_stats.inflight);
	kvfree(s->slots);
	kvfree(s->in2);
	kvfree(s->ackq);
	atomic64_dec(&mqttq_stats.sessions);
	kfree(s);
}

static void mqttq_sess_expire(struct work_struct *w)
{
	struct mqttq_sess *s = container_of(to_delayed_work(w), struct mqttq_sess, expire);

	spin_lock_bh(&mqttq_tbl_lock);
	if (s->ctx || !s->hashed) {
		/* taken over by a new socket, or being freed by module exit */
		spin_unlock_bh(&mqttq_tbl_lock);
		return;
	}
	hash_del(&s->hnode);
	s->hashed = false;
	spin_unlock_bh(&mqttq_tbl_lock);
	mqttq_sess_free(s);
}

/*
 * The socket lets go of its session: keep it for linger_s when it can be
 * resumed, otherwise free it. Any context; the table lock is a bh lock.
 */
static void mqttq_sess_detach(struct mqttq_ctx *ctx, bool linger)
{
	struct mqttq_sess *s = ctx->sess;

	if (!s)
		return;
	mqttq_sess_sync(s);
	ctx->sess = NULL;
	mqc_disconnected(&s->core);
	spin_lock_bh(&mqttq_tbl_lock);
	s->ctx = NULL;
	if (linger && s->hashed && s->linger_s) {
		queue_delayed_work(mqttq_wq, &s->expire, (unsigned long)s->linger_s * HZ);
		spin_unlock_bh(&mqttq_tbl_lock);
		return;
	}
	if (s->hashed) {
		hash_del(&s->hnode);
		s->hashed = false;
	}
	spin_unlock_bh(&mqttq_tbl_lock);
	mqttq_sess_free(s);
}

static void mqttq_subs_free(struct mqttq_ctx *ctx)
{
	struct mqttq_subreq *r, *t;

	list_for_each_entry_safe(r, t, &ctx->subs, node) {
		list_del(&r->node);
		kfree(r->rec);
		kfree(r);
	}
}

/*
 * End the session: the CLOSED record (allocated when the session started,
 * so it cannot fail) is the last one queued; every later call returns err.
 */
static void mqttq_end(struct mqttq_ctx *ctx, int err, int detail, u8 reason, u16 rflags,
		      bool linger, bool shut)
{
	struct mqttq_krec *k = ctx->closed_rec;
	struct mqttq_rec *r;

	if (ctx->state != MQTTQ_ST_RUNNING)
		return;
	ctx->state = MQTTQ_ST_CLOSED;
	ctx->err = err;
	strp_pause(&ctx->strp);
	strp_stop(&ctx->strp);
	mqttq_timer_delete(&ctx->timer);
	ctx->coal_pending = 0;
	if (linger && ctx->sess && ctx->sess->hashed && ctx->sess->linger_s)
		rflags |= MQTTQ_RF_LINGER;
	mqttq_sess_detach(ctx, linger);
	mqttq_subs_free(ctx);
	ctx->closed_rec = NULL;
	if (k) {
		r = mqttq_hdr(k);
		r->err = err;
		r->detail = detail;
		r->reason = reason;
		r->flags = rflags;
		mqttq_rec_queue(ctx, k);
	}
	ctx->want_in = true;
	ctx->want_out = true;
	if (shut) {
		ctx->shut_pending = true;
		queue_work(mqttq_wq, &ctx->work);
	}
}

/* ---- core callbacks ---------------------------------------------------- */

static int mqttq_cb_send(void *p, const u8 *buf, u32 len)
{
	struct mqttq_sess *s = p;

	if (!s->ctx || s->ctx->state != MQTTQ_ST_RUNNING)
		return -ENOTCONN;
	return mqttq_tx(s->ctx, buf, len);
}

static int mqttq_cb_send_msg(void *p, struct mqc_msg *m)
{
	return mqttq_cb_send(p, m->buf, m->len);
}

static void mqttq_cb_complete(void *p, struct mqc_msg *m, u8 reason)
{
	struct mqttq_sess *s = p;
	struct mqttq_omsg *om = container_of(m, struct mqttq_omsg, m);
	struct mqttq_ctx *ctx = s->ctx;
	struct mqttq_krec *k = om->done, *tail;
	struct mqttq_rec *r, *tr;

	om->done = NULL;
	if (ctx) {
		if (reason < 0x80)
			ctx->st.completed++;
		else
			ctx->st.refused++;
	}
	if (!ctx || ctx->state != MQTTQ_ST_RUNNING || !k)
		goto out_free;
	r = mqttq_hdr(k);
	r->token = m->token;
	r->reason = reason;
	r->qos = m->qos;
	r->count = 1;
	if (s->completion == MQTTQ_COMPLETE_COALESCE) {
		r->type = MQTTQ_REC_PUB_DONE_RUN;
		tail = mqttq_last(&ctx->recs, struct mqttq_krec, node);
		tr = tail ? mqttq_hdr(tail) : NULL;
		if (tr && tr->type == MQTTQ_REC_PUB_DONE_RUN && tr->reason == reason &&
		    tr->count < U32_MAX && tr->token + tr->count == m->token) {
			tr->count++;
		} else {
			mqttq_rec_queue(ctx, k);
			k = NULL;
		}
		if (!ctx->coal_pending)
			ctx->coal_since = mqttq_now();
		ctx->coal_pending++;
	} else {
		mqttq_rec_queue(ctx, k);
		k = NULL;
		ctx->want_in = true;
	}
out_free:
	kfree(k);
	mqttq_omsg_free(s, om);
}

static u32 mqttq_filter_run(struct mqttq_ctx *ctx)
{
	struct sk_buff *skb;
	u32 v;

	skb = alloc_skb(ctx->cur_len, GFP_ATOMIC | __GFP_NOWARN);
	if (!skb)
		return MQTTQ_FILTER_UNDECIDED;
	skb_put_data(skb, ctx->cur_pkt, ctx->cur_len);
	/* process context too (strparser work, recvmsg): the filter's map updates rely on RCU */
	rcu_read_lock();
	v = bpf_prog_run_clear_cb(ctx->filter, skb);
	rcu_read_unlock();
	consume_skb(skb);
	return v;
}

static int mqttq_cb_deliver(void *p, const struct mqc_inmsg *im)
{
	struct mqttq_sess *s = p;
	struct mqttq_ctx *ctx = s->ctx;
	struct mqttq_krec *k;
	struct mqttq_rec *r;
	u32 fid = 0;
	u8 *d;

	if (!ctx || ctx->state != MQTTQ_ST_RUNNING)
		return -ENOTCONN;
	if (ctx->filter && ctx->cur_pkt) {
		fid = mqttq_filter_run(ctx);
		if (!fid) {
			ctx->st.filter_drops++;
			atomic64_inc(&mqttq_stats.filter_drops);
			/* still acknowledged as the protocol requires */
			if (im->qos && ctx->ack_policy == MQTTQ_ACK_ON_DELIVERY) {
				k = mqttq_rec_alloc(MQTTQ_REC_ACK_ONLY, 0, mqttq_gfp(ctx));
				if (!k)
					return -ENOMEM; /* unacknowledged: resent on resume */
				mqttq_hdr(k)->pid = im->pid;
				mqttq_hdr(k)->qos = im->qos;
				mqttq_rec_queue(ctx, k);
			}
			return 0;
		}
	}
	k = mqttq_rec_alloc(MQTTQ_REC_MESSAGE, (u32)im->topic_len + im->payload_len + im->props_len,
			    mqttq_gfp(ctx));
	if (!k)
		return -ENOMEM;
	r = mqttq_hdr(k);
	r->topic_len = im->topic_len;
	r->payload_len = im->payload_len;
	r->props_len = im->props_len;
	r->pid = im->pid;
	r->qos = im->qos;
	r->filter_id = fid;
	r->flags = (im->retain ? MQTTQ_RF_RETAIN : 0) | (im->dup ? MQTTQ_RF_DUP : 0);
	d = (u8 *)(r + 1);
	memcpy(d, im->topic, im->topic_len);
	memcpy(d + im->topic_len, im->payload, im->payload_len);
	memcpy(d + im->topic_len + im->payload_len, im->props, im->props_len);
	mqttq_rec_queue(ctx, k);
	ctx->st.delivered++;
	ctx->want_in = true;
	return 0;
}

static void mqttq_cb_sub_done(void *p, u64 token, const u8 *codes, u32 n)
{
	struct mqttq_sess *s = p;
	struct mqttq_ctx *ctx = s->ctx;
	struct mqttq_subreq *q;
	struct mqttq_rec *r;

	if (!ctx || ctx->state != MQTTQ_ST_RUNNING)
		return;
	list_for_each_entry(q, &ctx->subs, node) {
		if (q->token != token)
			continue;
		list_del(&q->node);
		r = mqttq_hdr(q->rec);
		r->type = q->unsub ? MQTTQ_REC_UNSUBACK : MQTTQ_REC_SUBACK;
		r->token = token;
		/* n == 0: the request died with the connection */
		n = codes ? min_t(u32, n, MQTTQ_SUB_CODES) : 0;
		r->count = n;
		r->len = sizeof(*r) + n;
		if (n)
			memcpy(r + 1, codes, n);
		mqttq_rec_queue(ctx, q->rec);
		kfree(q);
		ctx->want_in = true;
		return;
	}
}

/* MQTTQ_SF_OUTBOX: the PUBREL waits until userspace has logged this record. */
static void mqttq_cb_pubrec(void *p, struct mqc_msg *m)
{
	struct mqttq_sess *s = p;
	struct mqttq_omsg *om = container_of(m, struct mqttq_omsg, m);
	struct mqttq_ctx *ctx = s->ctx;
	struct mqttq_krec *k = om->rec;
	struct mqttq_rec *r;

	om->rec = NULL;
	if (!ctx || ctx->state != MQTTQ_ST_RUNNING || !k) {
		kfree(k);
		return;
	}
	r = mqttq_hdr(k);
	r->token = m->token;
	r->pid = m->pid;
	r->qos = m->qos;
	r->count = 1;
	mqttq_rec_queue(ctx, k);
	ctx->want_in = true;
}

static void mqttq_cb_closed(void *p, const struct mqc_close *c)
{
	struct mqttq_sess *s = p;
	struct mqttq_ctx *ctx = s->ctx;

	if (!ctx || ctx->close_pending)
		return;
	/* Ending frees the session: not from inside the core. */
	ctx->close_pending = true;
	ctx->closing = *c;
}

static const struct mqc_ops mqttq_core_ops = {
	.send = mqttq_cb_send,
	.send_msg = mqttq_cb_send_msg,
	.complete = mqttq_cb_complete,
	.deliver = mqttq_cb_deliver,
	.sub_done = mqttq_cb_sub_done,
	.closed = mqttq_cb_closed,
	.pubrec = mqttq_cb_pubrec,
};

/* ---- after every core call --------------------------------------------- */

static void mqttq_arm(struct mqttq_ctx *ctx)
{
	u64 dl = ctx->sess ? mqc_deadline(&ctx->sess->core) : ~0ULL;
	u64 now = mqttq_now();
	unsigned long exp;

	if (ctx->coal_pending)
		dl = min_t(u64, dl, ctx->coal_since + MQTTQ_COAL_MS);
	if (dl == ~0ULL)
		return;
	exp = jiffies + 1 + (dl > now ? msecs_to_jiffies(min_t(u64, dl - now, 1U << 30)) : 0);
	if (!timer_pending(&ctx->timer) || time_before(exp, ctx->timer.expires))
		mod_timer(&ctx->timer, exp);
}

static void mqttq_fail(struct mqttq_ctx *ctx, int err)
{
	if (!ctx->close_pending) {
		ctx->close_pending = true;
		ctx->closing.err = err;
		ctx->closing.reason = 0;
		ctx->closing.by_peer = 0;
	}
}

/* Acknowledge filtered-out messages that no unread record precedes. */
static void mqttq_drain_acks(struct mqttq_ctx *ctx)
{
	struct mqttq_krec *k;

	while ((k = list_first_entry_or_null(&ctx->recs, struct mqttq_krec, node)) &&
	       mqttq_hdr(k)->type == MQTTQ_REC_ACK_ONLY) {
		if (ctx->sess && ctx->state == MQTTQ_ST_RUNNING)
			mqc_delivered(&ctx->sess->core, mqttq_hdr(k)->pid, mqttq_hdr(k)->qos);
		mqttq_rec_unqueue(ctx, k);
	}
}

static void mqttq_after_core(struct mqttq_ctx *ctx)
{
	struct mqttq_sess *s = ctx->sess;
	struct mqc_close c;

	/* internal records go even when the session has ended: never to userspace */
	mqttq_drain_acks(ctx);
	if (!s)
		return;
	mqttq_sess_sync(s);
	if (!ctx->close_pending) {
		mqttq_arm(ctx);
		return;
	}
	ctx->close_pending = false;
	c = ctx->closing;
	if (ctx->local_disc) {
		mqttq_end(ctx, -ESHUTDOWN, c.err, c.reason, 0, false, true);
	} else if (c.by_peer) {
		mqttq_end(ctx, -ECONNRESET, c.err, c.reason, MQTTQ_RF_BY_PEER, true, true);
	} else if (c.err == -MQC_E_KEEPALIVE) {
		mqttq_end(ctx, -ETIMEDOUT, c.err, c.reason, 0, true, true);
	} else if (c.err <= -MQC_E_BASE) {
		mqttq_end(ctx, -EPROTO, c.err, c.reason, 0, false, true);
	} else {
		/* transport trouble: the state is fine, keep it for resume */
		mqttq_end(ctx, c.err ? c.err : -ECONNRESET, c.err, c.reason, 0, true, false);
	}
}

/* Socket lock (or bh lock in softirq) held. */
static bool mqttq_room(const struct mqttq_ctx *ctx, u32 thresh)
{
	const struct mqttq_sess *s = ctx->sess;

	if (ctx->state != MQTTQ_ST_RUNNING || !s)
		return true; /* let the caller see the error */
	if (s->msg_bytes >= s->max_bytes || ctx->tx_bytes >= s->max_bytes ||
	    ctx->rec_bytes >= s->max_bytes)
		return false;
	return s->core.quota >= thresh || !s->core.inflight;
}

static u32 mqttq_out_thresh(const struct mqttq_ctx *ctx)
{
	const struct mqttq_sess *s = ctx->sess;

	return s && s->completion == MQTTQ_COMPLETE_COALESCE ? ctx->coal_batch : 1;
}

/* Decide the wakeups a batch of events earned; coalescing happens here. */
static void mqttq_settle(struct mqttq_ctx *ctx)
{
	struct mqttq_sess *s = ctx->sess;
	bool room;

	if (ctx->coal_pending &&
	    (ctx->coal_pending >= ctx->coal_batch || !s || !s->core.inflight ||
	     mqttq_now() >= ctx->coal_since + MQTTQ_COAL_MS)) {
		ctx->coal_pending = 0;
		ctx->want_in = true;
	}
	room = mqttq_room(ctx, mqttq_out_thresh(ctx));
	/*
	 * Writers are woken when room appears, not per free slot. Pairs with
	 * poll: it queues itself on sk_wq before reading ctx->room, and
	 * mqttq_wake's skwq_has_sleeper() orders this store before its check.
	 */
	if (room && !ctx->room)
		ctx->want_out = true;
	WRITE_ONCE(ctx->room, room);
}

static void mqttq_wake(struct mqttq_ctx *ctx)
{
	struct sock *sk = ctx->sk;
	struct socket_wq *wq;
	__poll_t m = 0;

	if (ctx->want_in)
		m |= EPOLLIN | EPOLLRDNORM;
	if (ctx->want_out)
		m |= EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
	if (!m)
		return;
	ctx->want_in = false;
	ctx->want_out = false;
	rcu_read_lock();
	wq = rcu_dereference(sk->sk_wq);
	if (skwq_has_sleeper(wq)) {
		ctx->st.wakeups++;
		wake_up_interruptible_sync_poll(&wq->wait, m);
	}
	if (m & EPOLLIN)
		sk_wake_async(sk, SOCK_WAKE_WAITD, POLL_IN);
	if (m & EPOLLOUT)
		sk_wake_async(sk, SOCK_WAKE_SPACE, POLL_OUT);
	rcu_read_unlock();
}

/* Process context with the socket lock: may call into TCP directly. */
static void mqttq_enter(struct mqttq_ctx *ctx)
{
	ctx->direct = true;
}

static void mqttq_leave(struct mqttq_ctx *ctx)
{
	/* flush first: what TCP takes is room for QoS 0 */
	mqttq_flush(ctx);
	mqttq_settle(ctx);
	mqttq_wake(ctx);
	ctx->direct = false;
}

/* ---- receive path ------------------------------------------------------ */

static int mqttq_strp_parse(struct strparser *strp, struct sk_buff *skb)
{
	struct mqttq_ctx *ctx = container_of(strp, struct mqttq_ctx, strp);
	struct strp_msg *rxm = strp_msg(skb);
	u8 hdr[5];
	u32 n = min_t(u32, sizeof(hdr), skb->len - rxm->offset);
	int ret;

	if (skb_copy_bits(skb, rxm->offset, hdr, n))
		return -EINVAL;
	ret = mqc_frame_len(hdr, n, ctx->sess ? ctx->sess->cfg.max_packet_in : 0);
	if (ret == 0 && n == sizeof(hdr))
		return -MQC_E_VARINT;
	return ret;
}

static void mqttq_rcv_one(struct mqttq_ctx *ctx, struct sk_buff *skb)
{
	struct strp_msg *rxm = strp_msg(skb);
	u32 len = rxm->full_len;
	const u8 *pkt;
	int ret;

	if (skb_headlen(skb) >= rxm->offset + len) {
		pkt = skb->data + rxm->offset;
	} else {
		if (ctx->rxbuf_cap < len) {
			u8 *nb = kmalloc(len, mqttq_gfp(ctx) | __GFP_NOWARN);

			if (!nb) {
				consume_skb(skb);
				mqttq_fail(ctx, -ENOMEM);
				mqttq_after_core(ctx);
				return;
			}
			kfree(ctx->rxbuf);
			ctx->rxbuf = nb;
			ctx->rxbuf_cap = len;
		}
		if (skb_copy_bits(skb, rxm->offset, ctx->rxbuf, len)) {
			consume_skb(skb);
			mqttq_fail(ctx, -EPROTO);
			mqttq_after_core(ctx);
			return;
		}
		pkt = ctx->rxbuf;
	}
	ctx->cur_pkt = pkt;
	ctx->cur_len = len;
	ret = mqc_input(&ctx->sess->core, pkt, len, mqttq_now());
	ctx->cur_pkt = NULL;
	consume_skb(skb);
	if (ret < 0)
		mqttq_fail(ctx, ret);
	mqttq_after_core(ctx);
}

static void mqttq_strp_rcv(struct strparser *strp, struct sk_buff *skb)
{
	struct mqttq_ctx *ctx = container_of(strp, struct mqttq_ctx, strp);

	if (ctx->state != MQTTQ_ST_RUNNING || !ctx->sess) {
		consume_skb(skb);
		return;
	}
	/*
	 * Out of record memory, or the peer does not read what we owe it:
	 * stop reading until the application (or the peer) catches up.
	 */
	if ((ctx->nrecs && ctx->rec_bytes + strp_msg(skb)->full_len > ctx->sess->max_bytes) ||
	    ctx->tx_bytes > ctx->sess->max_bytes) {
		ctx->held = skb;
		strp_pause(strp);
		return;
	}
	mqttq_rcv_one(ctx, skb);
}

static int mqttq_strp_done(struct strparser *strp, int err)
{
	struct mqttq_ctx *ctx = container_of(strp, struct mqttq_ctx, strp);

	if (!list_empty(&ctx->txq) || ctx->shut_pending) {
		if (in_interrupt())
			queue_work(mqttq_wq, &ctx->work);
		else
			mqttq_flush(ctx);
	}
	mqttq_settle(ctx);
	mqttq_wake(ctx);
	return err;
}

static void mqttq_strp_abort(struct strparser *strp, int err)
{
	struct mqttq_ctx *ctx = container_of(strp, struct mqttq_ctx, strp);

	strp->stopped = 1;
	atomic64_inc(&mqttq_stats.protocol_errors);
	ctx->st.protocol_errors++;
	mqttq_end(ctx, -EPROTO, err, 0, 0, false, true);
	mqttq_wake(ctx);
}

/* TCP saw FIN/RST: first take what is queued, then end the session. */
static void mqttq_eof(struct mqttq_ctx *ctx)
{
	bool partial;

	if (!ctx->strp.stopped && !ctx->strp.paused)
		__strp_unpause(&ctx->strp);
	if (ctx->state != MQTTQ_ST_RUNNING || ctx->held)
		return;
	ctx->eof = false;
	partial = ctx->strp.skb_head || tcp_inq(ctx->sk) > 0;
	if (partial) {
		atomic64_inc(&mqttq_stats.protocol_errors);
		ctx->st.protocol_errors++;
	}
	mqttq_end(ctx, partial ? -EPROTO : -ECONNRESET, partial ? -MQC_E_SHORT : -ECONNRESET,
		  0, 0, true, false);
}

static void mqttq_data_ready(struct sock *sk)
{
	struct mqttq_ctx *ctx = mqttq_ctx(sk);

	if (ctx && ctx->state == MQTTQ_ST_RUNNING)
		strp_data_ready(&ctx->strp);
}

static void mqttq_write_space(struct sock *sk)
{
	struct mqttq_ctx *ctx = mqttq_ctx(sk);

	/* TCP writability is ours, not the application's: it waits on the window. */
	if (ctx && (!list_empty(&ctx->txq) || ctx->shut_pending)) {
		if (sk->sk_socket)
			clear_bit(SOCK_NOSPACE, &sk->sk_socket->flags);
		queue_work(mqttq_wq, &ctx->work);
	}
}

static void mqttq_state_change(struct sock *sk)
{
	struct mqttq_ctx *ctx = mqttq_ctx(sk);

	if (ctx && ctx->state == MQTTQ_ST_RUNNING && sk->sk_state != TCP_ESTABLISHED) {
		ctx->eof = true;
		queue_work(mqttq_wq, &ctx->work);
	}
	if (ctx)
		ctx->saved_state_change(sk);
}

static void mqttq_timer_fn(struct timer_list *t)
{
	struct mqttq_ctx *ctx = timer_container_of(ctx, t, timer);

	set_bit(MQTTQ_F_TICK, &ctx->flags);
	queue_work(mqttq_wq, &ctx->work);
}

static void mqttq_unhold_rx(struct mqttq_ctx *ctx);

static void mqttq_work(struct work_struct *w)
{
	struct mqttq_ctx *ctx = container_of(w, struct mqttq_ctx, work);
	struct sock *sk = ctx->sk;
	int ret;

	lock_sock(sk);
	if (ctx->dying)
		goto out_unlock;
	mqttq_enter(ctx);
	if (ctx->state == MQTTQ_ST_RUNNING && ctx->eof && !ctx->held)
		mqttq_eof(ctx);
	if (test_and_clear_bit(MQTTQ_F_TICK, &ctx->flags) && ctx->state == MQTTQ_ST_RUNNING) {
		ret = mqc_tick(&ctx->sess->core, mqttq_now());
		if (ret < 0)
			mqttq_fail(ctx, ret);
		mqttq_after_core(ctx);
	}
	if (ctx->held) {
		/* reading stopped for the transmit queue: it may have drained */
		mqttq_flush(ctx);
		mqttq_unhold_rx(ctx);
	}
	mqttq_leave(ctx);
out_unlock:
	release_sock(sk);
}

/* ---- recvmsg ------------------------------------------------------------ */

static void mqttq_unhold_rx(struct mqttq_ctx *ctx)
{
	struct sk_buff *skb = ctx->held;

	if (!skb || ctx->state != MQTTQ_ST_RUNNING)
		return;
	if (ctx->nrecs && ctx->rec_bytes + strp_msg(skb)->full_len > ctx->sess->max_bytes / 2)
		return;
	if (ctx->tx_bytes > ctx->sess->max_bytes / 2)
		return;
	ctx->held = NULL;
	mqttq_rcv_one(ctx, skb);
	if (ctx->state == MQTTQ_ST_RUNNING && !ctx->held)
		__strp_unpause(&ctx->strp);
	if (ctx->eof)
		queue_work(mqttq_wq, &ctx->work);
}

static int mqttq_wait_rec(struct mqttq_ctx *ctx, long *timeo)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);
	struct sock *sk = ctx->sk;
	int err = 0;

	ctx->direct = false;
	add_wait_queue(sk_sleep(sk), &wait);
	while (list_empty(&ctx->recs) && ctx->state == MQTTQ_ST_RUNNING) {
		if (!*timeo) {
			err = -EAGAIN;
			break;
		}
		if (signal_pending(current)) {
			err = sock_intr_errno(*timeo);
			break;
		}
		sk_wait_event(sk, timeo,
			      !list_empty(&ctx->recs) || ctx->state != MQTTQ_ST_RUNNING, &wait);
	}
	remove_wait_queue(sk_sleep(sk), &wait);
	ctx->direct = true;
	return err;
}

static int mqttq_recvmsg(struct sock *sk, struct msghdr *msg, size_t len, int flags,
			 int *addr_len)
{
	struct mqttq_ctx *ctx = mqttq_ctx(sk);
	struct mqttq_krec *k;
	struct mqttq_rec *r;
	long timeo;
	size_t n;
	int ret;

	if (flags & MSG_ERRQUEUE)
		return ctx->base_prot->recvmsg(sk, msg, len, flags, addr_len);
	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	timeo = sock_rcvtimeo(sk, flags & MSG_DONTWAIT);
	lock_sock(sk);
	mqttq_enter(ctx);
	if (ctx->state == MQTTQ_ST_IDLE) {
		ret = -ENOTCONN;
		goto out;
	}
	/* an ACK_ONLY record at the head is the kernel's own, whatever the state */
	mqttq_drain_acks(ctx);
	if (list_empty(&ctx->recs) && ctx->state == MQTTQ_ST_RUNNING) {
		ret = mqttq_wait_rec(ctx, &timeo);
		if (ret)
			goto out;
	}
	k = list_first_entry_or_null(&ctx->recs, struct mqttq_krec, node);
	if (!k) {
		ret = ctx->err ? ctx->err : -ENOTCONN;
		goto out;
	}
	r = mqttq_hdr(k);
	n = min_t(size_t, len, r->len);
	if (copy_to_iter(k->buf, n, &msg->msg_iter) != n) {
		ret = -EFAULT;
		goto out;
	}
	if (n < r->len)
		msg->msg_flags |= MSG_TRUNC;
	ret = (flags & MSG_TRUNC) ? r->len : n;
	if (flags & MSG_PEEK)
		goto out;
	if (r->type == MQTTQ_REC_MESSAGE && r->qos && ctx->sess &&
	    ctx->ack_policy == MQTTQ_ACK_ON_DELIVERY && ctx->state == MQTTQ_ST_RUNNING) {
		/* -ENOENT: already acknowledged along with a later one */
		mqc_delivered(&ctx->sess->core, r->pid, r->qos);
	}
	mqttq_rec_unqueue(ctx, k);
	mqttq_after_core(ctx);
	mqttq_unhold_rx(ctx);
out:
	mqttq_leave(ctx);
	release_sock(sk);
	return ret;
}

/* ---- sendmsg ------------------------------------------------------------ */

static int mqttq_scratch(struct mqttq_ctx *ctx, size_t n)
{
	u8 *p;

	if (ctx->scratch_cap >= n)
		return 0;
	p = kvmalloc(n, GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	kvfree(ctx->scratch);
	ctx->scratch = p;
	ctx->scratch_cap = n;
	return 0;
}

static bool mqttq_pub_ready(struct mqttq_ctx *ctx, u8 qos, size_t need)
{
	struct mqttq_sess *s = ctx->sess;

	if (ctx->state != MQTTQ_ST_RUNNING || !s)
		return true;
	if (s->msg_bytes && s->msg_bytes + need > s->max_bytes)
		return false;
	/*
	 * QoS 0 has no window: what TCP has not taken yet bounds it, and
	 * unread completion records bound every QoS (read them, or coalesce).
	 */
	if (ctx->tx_bytes >= s->max_bytes || ctx->rec_bytes >= s->max_bytes)
		return false;
	return !qos || s->core.quota > 0;
}

static int mqttq_wait_room(struct mqttq_ctx *ctx, u8 qos, size_t need, long *timeo)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);
	struct sock *sk = ctx->sk;
	int err = 0;

	ctx->direct = false;
	add_wait_queue(sk_sleep(sk), &wait);
	while (!mqttq_pub_ready(ctx, qos, need)) {
		if (!*timeo) {
			err = -EAGAIN;
			break;
		}
		if (signal_pending(current)) {
			err = sock_intr_errno(*timeo);
			break;
		}
		sk_wait_event(sk, timeo, mqttq_pub_ready(ctx, qos, need), &wait);
	}
	remove_wait_queue(sk_sleep(sk), &wait);
	ctx->direct = true;
	if (!err && ctx->state != MQTTQ_ST_RUNNING)
		err = ctx->err;
	return err;
}

static int mqttq_publish(struct mqttq_ctx *ctx, struct msghdr *msg, size_t size,
			 const struct mqttq_pub *req, long *timeo)
{
	struct mqttq_sess *s = ctx->sess;
	struct mqc_props props = {};
	struct mqc_pub pub = {};
	struct mqttq_omsg *om;
	size_t need = size + 16;
	u32 pid_off = 0;
	bool outbox = s->cfg.user_flows;
	int n, ret;

	if (req->qos > 2 || req->retain > 1 || req->pad[0] || req->pad[1] || req->pad[2])
		return -EINVAL;
	/* with the outbox, every QoS 1/2 flow carries the identifier the caller logged */
	if ((outbox && req->qos) ? (!req->pid || req->state > MQTTQ_PUB_WAIT_COMP) :
				   (req->pid || req->state))
		return -EINVAL;
	if ((u64)req->topic_len + req->props_len > size)
		return -EINVAL;
	if ((req->props_len || req->topic_alias) && s->cfg.version != MQC_V5)
		return -EINVAL;
	if (size > INT_MAX - 64 || need > s->max_bytes)
		return -EMSGSIZE;
	for (;;) {
		ret = mqttq_wait_room(ctx, req->qos, need, timeo);
		if (ret)
			return ret;
		s = ctx->sess;
		/* after the wait: another sender may have used the scratch buffer */
		ret = mqttq_scratch(ctx, size);
		if (ret)
			return ret;
		if (!iov_iter_count(&msg->msg_iter) && size)
			return -EFAULT;
		break;
	}
	if (copy_from_iter(ctx->scratch, size, &msg->msg_iter) != size)
		return -EFAULT;
	pub.topic.p = ctx->scratch;
	pub.topic.len = req->topic_len;
	pub.payload.p = ctx->scratch + req->topic_len;
	pub.payload.len = size - req->topic_len - req->props_len;
	pub.qos = req->qos;
	pub.retain = req->retain;
	pub.pid = req->qos ? 1 : 0;
	pub.topic_alias = req->topic_alias;
	if (req->props_len) {
		props.raw.p = ctx->scratch + size - req->props_len;
		props.raw.len = req->props_len;
		pub.props = &props;
	}
	ret = mqc_topic_check(pub.topic.p, pub.topic.len, req->topic_alias != 0);
	if (ret)
		return -EINVAL;
	n = mqc_publish_size(s->cfg.version, &pub);
	if (n < 0)
		return n == -EMSGSIZE ? -EMSGSIZE : -EINVAL;
	om = kvmalloc(sizeof(*om) + n, GFP_KERNEL);
	if (!om)
		return -ENOMEM;
	om->done = mqttq_rec_alloc(MQTTQ_REC_PUB_DONE, 0, GFP_KERNEL);
	om->rec = outbox && req->qos == 2 ? mqttq_rec_alloc(MQTTQ_REC_PUBREC, 0, GFP_KERNEL) :
					    NULL;
	if (!om->done || (outbox && req->qos == 2 && !om->rec)) {
		ret = -ENOMEM;
		goto err_free_rec;
	}
	ret = mqc_encode_publish(s->cfg.version, &pub, om->buf, n, &pid_off);
	if (ret < 0)
		goto err_free_rec;
	memset(&om->m, 0, sizeof(om->m));
	om->m.buf = om->buf;
	om->m.len = ret;
	om->m.pid_off = pid_off;
	om->m.token = req->token;
	om->m.qos = req->qos;
	om->m.pid = req->pid;
	om->m.state = req->state; /* enum mqttq_pub_state matches the core's */
	om->acct = sizeof(*om) + n;
	list_add_tail(&om->node, &s->msgs);
	s->msg_bytes += om->acct;
	mqttq_hold(om->acct);
	if (outbox && req->qos)
		ret = mqc_publish_pid(&s->core, &om->m, mqttq_now());
	else
		ret = mqc_publish(&s->core, &om->m, mqttq_now());
	if (ret < 0) {
		mqttq_omsg_free(s, om);
		mqttq_after_core(ctx);
		return ret;
	}
	/* om may be gone already: QoS 0 completes inside mqc_publish */
	ctx->st.published++;
	mqttq_after_core(ctx);
	return size;

err_free_rec:
	kfree(om->done);
	kfree(om->rec);
	kvfree(om);
	return ret;
}

static int mqttq_subscribe(struct mqttq_ctx *ctx, struct msghdr *msg, size_t size,
			   const struct mqttq_sub_req *req, bool unsub)
{
	struct mqttq_sess *s = ctx->sess;
	struct mqttq_subreq *q;
	struct mqc_sub *subs;
	size_t off = 0;
	u32 i;
	int ret;

	if (!req->count || req->count > MQTTQ_SUB_CODES || req->pad || size > 65536 * 65)
		return -EINVAL;
	ret = mqttq_scratch(ctx, size);
	if (ret)
		return ret;
	if (copy_from_iter(ctx->scratch, size, &msg->msg_iter) != size)
		return -EFAULT;
	subs = kcalloc(req->count, sizeof(*subs), GFP_KERNEL);
	if (!subs)
		return -ENOMEM;
	for (i = 0; i < req->count; i++) {
		struct mqttq_filter f;

		if (size - off < sizeof(f)) {
			ret = -EINVAL;
			goto out_free_subs;
		}
		memcpy(&f, ctx->scratch + off, sizeof(f));
		off += sizeof(f);
		if (f.pad || !f.len || size - off < f.len) {
			ret = -EINVAL;
			goto out_free_subs;
		}
		subs[i].filter = ctx->scratch + off;
		subs[i].filter_len = f.len;
		subs[i].options = f.options;
		off += f.len;
	}
	if (off != size) {
		ret = -EINVAL;
		goto out_free_subs;
	}
	q = kzalloc(sizeof(*q), GFP_KERNEL);
	if (!q) {
		ret = -ENOMEM;
		goto out_free_subs;
	}
	q->rec = mqttq_rec_alloc(MQTTQ_REC_SUBACK, MQTTQ_SUB_CODES, GFP_KERNEL);
	if (!q->rec) {
		kfree(q);
		ret = -ENOMEM;
		goto out_free_subs;
	}
	q->token = req->token;
	q->unsub = unsub;
	list_add_tail(&q->node, &ctx->subs);
	if (unsub)
		ret = mqc_unsubscribe(&s->core, subs, req->count, req->token, mqttq_now());
	else
		ret = mqc_subscribe(&s->core, subs, req->count, req->sub_id, req->token,
				    mqttq_now());
	if (ret < 0 && ctx->sess) {
		list_del(&q->node);
		kfree(q->rec);
		kfree(q);
	}
	mqttq_after_core(ctx);
	if (ret >= 0)
		ret = size;
out_free_subs:
	kfree(subs);
	return ret;
}

static int mqttq_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
{
	struct mqttq_ctx *ctx = mqttq_ctx(sk);
	long timeo = sock_sndtimeo(sk, msg->msg_flags & MSG_DONTWAIT);
	union {
		struct mqttq_pub pub;
		struct mqttq_sub_req sub;
	} req;
	struct cmsghdr *cmsg;
	int type = 0, ret;

	if (msg->msg_flags & ~(MSG_DONTWAIT | MSG_NOSIGNAL | MSG_EOR | MSG_MORE))
		return -EOPNOTSUPP;
	for_each_cmsghdr(cmsg, msg) {
		size_t want;

		if (!CMSG_OK(msg, cmsg))
			return -EINVAL;
		if (cmsg->cmsg_level != SOL_MQTTQ)
			return -EINVAL;
		if (type)
			return -EINVAL; /* one request per call */
		type = cmsg->cmsg_type;
		if (type == MQTTQ_CMSG_PUBLISH)
			want = sizeof(req.pub);
		else if (type == MQTTQ_CMSG_SUBSCRIBE || type == MQTTQ_CMSG_UNSUBSCRIBE)
			want = sizeof(req.sub);
		else
			return -EINVAL;
		if (cmsg->cmsg_len != CMSG_LEN(want))
			return -EINVAL;
		memcpy(&req, CMSG_DATA(cmsg), want);
	}
	if (!type)
		return -EINVAL; /* the byte stream belongs to the kernel now */

	lock_sock(sk);
	mqttq_enter(ctx);
	if (ctx->state == MQTTQ_ST_IDLE)
		ret = -ENOTCONN;
	else if (ctx->state != MQTTQ_ST_RUNNING)
		ret = ctx->err;
	else if (type == MQTTQ_CMSG_PUBLISH)
		ret = mqttq_publish(ctx, msg, size, &req.pub, &timeo);
	else
		ret = mqttq_subscribe(ctx, msg, size, &req.sub, type == MQTTQ_CMSG_UNSUBSCRIBE);
	mqttq_leave(ctx);
	release_sock(sk);
	return ret;
}

/* ---- poll ---------------------------------------------------------------- */

static __poll_t mqttq_poll(struct file *file, struct socket *sock, poll_table *wait)
{
	struct sock *sk = sock->sk;
	struct mqttq_ctx *ctx = mqttq_ctx(sk);
	__poll_t mask = ctx->base_ops->poll(file, sock, wait);
	u8 state = READ_ONCE(ctx->state);

	/* TCP bytes are the kernel's: readiness is about records and the window. */
	mask &= ~(EPOLLIN | EPOLLRDNORM | EPOLLRDBAND | EPOLLPRI | EPOLLOUT | EPOLLWRNORM |
		  EPOLLWRBAND);
	if (!list_empty_careful(&ctx->recs) || state == MQTTQ_ST_CLOSED)
		mask |= EPOLLIN | EPOLLRDNORM;
	if (state == MQTTQ_ST_CLOSED) {
		mask |= EPOLLOUT | EPOLLWRNORM;
	} else if (state == MQTTQ_ST_RUNNING) {
		if (READ_ONCE(ctx->room))
			mask |= EPOLLOUT | EPOLLWRNORM;
	}
	return mask;
}

/* ---- setsockopt / getsockopt ------------------------------------------- */

static struct mqttq_sess *mqttq_sess_new(const struct mqc_config *cfg)
{
	struct mqttq_sess *s = kzalloc(sizeof(*s), GFP_KERNEL);

	if (!s)
		return NULL;
	s->slots = kvcalloc(cfg->window, sizeof(*s->slots), GFP_KERNEL);
	s->in2 = kvzalloc(MQC_IN2_BYTES, GFP_KERNEL);
	s->ackq = kvcalloc(cfg->recv_max, sizeof(*s->ackq), GFP_KERNEL);
	if (!s->slots || !s->in2 || !s->ackq)
		goto err_free_tables;
	s->cfg = *cfg;
	INIT_LIST_HEAD(&s->msgs);
	INIT_DELAYED_WORK(&s->expire, mqttq_sess_expire);
	if (mqc_session_init(&s->core, &s->cfg, &mqttq_core_ops, s, s->slots, s->in2, s->ackq))
		goto err_free_tables;
	atomic64_inc(&mqttq_stats.sessions);
	return s;

err_free_tables:
	kvfree(s->slots);
	kvfree(s->in2);
	kvfree(s->ackq);
	kfree(s);
	return NULL;
}

static int mqttq_copy_session(struct mqttq_session *u, sockptr_t optval, unsigned int optlen)
{
	unsigned int min = offsetof(struct mqttq_session, max_packet_out);
	unsigned int i;
	u8 b;

	if (optlen < min || optlen > 4096)
		return -EINVAL;
	memset(u, 0, sizeof(*u));
	if (copy_from_sockptr(u, optval, min_t(unsigned int, optlen, sizeof(*u))))
		return -EFAULT;
	for (i = sizeof(*u); i < optlen; i++) {
		if (copy_from_sockptr_offset(&b, optval, i, 1))
			return -EFAULT;
		if (b)
			return -E2BIG;
	}
	if (u->size != optlen)
		return -EINVAL;
	if (optlen < sizeof(*u)) {
		/* older caller: CONNACK limits absent */
		u->max_qos = MQTTQ_DEFAULT8;
		u->retain_available = MQTTQ_DEFAULT8;
		u->wildcard_sub_available = MQTTQ_DEFAULT8;
		u->sub_id_available = MQTTQ_DEFAULT8;
		u->shared_sub_available = MQTTQ_DEFAULT8;
	}
	return 0;
}

static u8 mqttq_avail(u8 v)
{
	return v == MQTTQ_DEFAULT8 ? 1 : v;
}

static int mqttq_set_session(struct mqttq_ctx *ctx, sockptr_t optval, unsigned int optlen)
{
	struct mqttq_defaults d;
	struct mqttq_session u;
	struct mqc_config cfg = {};
	struct mqc_limits lim = {};
	struct mqttq_sess *s = NULL, *it;
	u32 linger, max_bytes, retry;
	u8 completion;
	int ret;

	ret = mqttq_copy_session(&u, optval, optlen);
	if (ret)
		return ret;
	mqttq_get_defaults(&d);
	if (u.version != MQC_V311 && u.version != MQC_V5)
		return -EINVAL;
	cfg.version = u.version;
	cfg.ack_policy = u.ack_policy == MQTTQ_DEFAULT8 ? d.ack_policy : u.ack_policy;
	completion = u.completion == MQTTQ_DEFAULT8 ? d.completion : u.completion;
	if (cfg.ack_policy > MQTTQ_ACK_ON_DELIVERY || completion > MQTTQ_COMPLETE_COALESCE ||
	    (u.flags & ~MQTTQ_SF_OUTBOX) || u.session_present > 1)
		return -EINVAL;
	/* the outbox is the one recovery path: no lingering state a take-over could resend */
	if ((u.flags & MQTTQ_SF_OUTBOX) && u.key)
		return -EINVAL;
	cfg.user_flows = !!(u.flags & MQTTQ_SF_OUTBOX);
	if (u.max_qos != MQTTQ_DEFAULT8 && u.max_qos > 2)
		return -EINVAL;
	cfg.keepalive_s = d.keepalive_s ? min_t(u32, d.keepalive_s, 65535) : u.keepalive_s;
	cfg.window = u.window ? u.window : clamp_t(u32, d.window, 1, 65535);
	cfg.recv_max = u.recv_max ? u.recv_max : 65535;
	retry = u.retry_ms == MQTTQ_DEFAULT ? d.retry_ms : u.retry_ms;
	cfg.retry_ms = u.version == MQC_V311 ? retry : 0;
	linger = u.linger_s == MQTTQ_DEFAULT ? d.linger_s : u.linger_s;
	if (cfg.user_flows)
		linger = 0;
	max_bytes = u.max_bytes == MQTTQ_DEFAULT ? d.max_bytes : u.max_bytes;
	if (max_bytes < MQTTQ_MIN_BYTES)
		return -EINVAL;
	/* a packet must fit the record memory, and strparser's limit is sk_rcvbuf */
	cfg.max_packet_in = u.max_packet_in ? min(u.max_packet_in, max_bytes) : max_bytes;

	lim.max_packet_size = u.max_packet_out;
	lim.receive_max = u.receive_max;
	lim.topic_alias_max = u.topic_alias_max;
	lim.server_keepalive = u.server_keepalive;
	lim.max_qos = u.max_qos == MQTTQ_DEFAULT8 ? 2 : u.max_qos;
	lim.retain_available = mqttq_avail(u.retain_available);
	lim.wildcard_sub_available = mqttq_avail(u.wildcard_sub_available);
	lim.sub_id_available = mqttq_avail(u.sub_id_available);
	lim.shared_sub_available = mqttq_avail(u.shared_sub_available);

	ctx->closed_rec = mqttq_rec_alloc(MQTTQ_REC_CLOSED, 0, GFP_KERNEL);
	if (!ctx->closed_rec) {
		ret = -ENOMEM;
		goto err_free_ctx_bufs;
	}

	if (u.key) {
		spin_lock_bh(&mqttq_tbl_lock);
		hash_for_each_possible(mqttq_tbl, it, hnode, u.key) {
			if (it->key != u.key)
				continue;
			if (it->ctx) {
				spin_unlock_bh(&mqttq_tbl_lock);
				ret = -EBUSY;
				goto err_free_ctx_bufs;
			}
			if (it->cfg.version != cfg.version) {
				spin_unlock_bh(&mqttq_tbl_lock);
				ret = -EINVAL;
				goto err_free_ctx_bufs;
			}
			it->ctx = ctx;
			s = it;
			break;
		}
		spin_unlock_bh(&mqttq_tbl_lock);
		if (s) {
			/* the expiry work sees s->ctx set and leaves it alone */
			cancel_delayed_work_sync(&s->expire);
			ctx->resumed = true;
		}
	}
	if (!s) {
		s = mqttq_sess_new(&cfg);
		if (!s) {
			ret = -ENOMEM;
			goto err_free_ctx_bufs;
		}
		s->key = u.key;
		s->ctx = ctx;
		if (u.key) {
			spin_lock_bh(&mqttq_tbl_lock);
			hash_for_each_possible(mqttq_tbl, it, hnode, u.key) {
				if (it->key == u.key) {
					/* raced with another socket creating the same key */
					spin_unlock_bh(&mqttq_tbl_lock);
					mqttq_sess_free(s);
					ret = -EBUSY;
					goto err_free_ctx_bufs;
				}
			}
			hash_add(mqttq_tbl, &s->hnode, u.key);
			s->hashed = true;
			spin_unlock_bh(&mqttq_tbl_lock);
		}
	}
	/* what is not in the core's tables may change on resume */
	s->linger_s = linger;
	s->max_bytes = max_bytes;
	s->completion = completion;
	ctx->ack_policy = s->cfg.ack_policy;
	ctx->sess = s;
	ctx->state = MQTTQ_ST_RUNNING;
	ctx->coal_batch = clamp_t(u32, min_t(u32, s->cfg.window,
					     lim.receive_max ? lim.receive_max : 65535) / 2,
				  1, MQTTQ_COAL_MAX);
	ret = mqc_connected(&s->core, &lim, u.session_present, mqttq_now());
	if (ret < 0)
		mqttq_fail(ctx, ret);
	mqttq_after_core(ctx);
	/* whatever the peer sent after CONNACK is waiting in TCP */
	if (ctx->state == MQTTQ_ST_RUNNING)
		__strp_unpause(&ctx->strp);
	return 0;

err_free_ctx_bufs:
	kfree(ctx->closed_rec);
	ctx->closed_rec = NULL;
	return ret;
}

static int mqttq_set_filter(struct mqttq_ctx *ctx, sockptr_t optval, unsigned int optlen)
{
	struct bpf_prog *prog = NULL, *old;
	int fd;

	if (optlen != sizeof(fd))
		return -EINVAL;
	if (copy_from_sockptr(&fd, optval, sizeof(fd)))
		return -EFAULT;
	if (fd >= 0) {
		prog = bpf_prog_get_type(fd, BPF_PROG_TYPE_SOCKET_FILTER);
		if (IS_ERR(prog))
			return PTR_ERR(prog);
	} else if (fd != -1) {
		return -EBADF;
	}
	old = ctx->filter;
	ctx->filter = prog;
	if (old)
		bpf_prog_put(old);
	return 0;
}

/* The PUBRELs userspace held back until their records were logged; in order, stop at a bad one. */
static int mqttq_release(struct mqttq_ctx *ctx, sockptr_t optval, unsigned int optlen)
{
	u16 pids[64];
	unsigned int i;
	int ret = 0;

	if (!optlen || optlen % 2 || optlen > sizeof(pids))
		return -EINVAL;
	if (ctx->state != MQTTQ_ST_RUNNING)
		return ctx->state == MQTTQ_ST_IDLE ? -ENOTCONN : ctx->err;
	if (!ctx->sess->cfg.user_flows)
		return -EINVAL;
	if (copy_from_sockptr(pids, optval, optlen))
		return -EFAULT;
	for (i = 0; i < optlen / 2 && !ret && ctx->state == MQTTQ_ST_RUNNING; i++)
		ret = mqc_release(&ctx->sess->core, pids[i], mqttq_now());
	mqttq_after_core(ctx);
	return ret == -ENOTCONN ? 0 : ret;
}

static int mqttq_setsockopt(struct sock *sk, int level, int optname, sockptr_t optval,
			    unsigned int optlen)
{
	struct mqttq_ctx *ctx = mqttq_ctx(sk);
	u8 reason;
	int ret;

	if (level != SOL_MQTTQ)
		return ctx->base_prot->setsockopt(sk, level, optname, optval, optlen);
	lock_sock(sk);
	mqttq_enter(ctx);
	switch (optname) {
	case MQTTQ_SESSION:
		ret = ctx->state == MQTTQ_ST_IDLE ? mqttq_set_session(ctx, optval, optlen) :
						    -EISCONN;
		break;
	case MQTTQ_FILTER_FD:
		ret = mqttq_set_filter(ctx, optval, optlen);
		break;
	case MQTTQ_RELEASE:
		ret = mqttq_release(ctx, optval, optlen);
		break;
	case MQTTQ_DISCONNECT:
		ret = -EINVAL;
		if (optlen != 1)
			break;
		ret = -EFAULT;
		if (copy_from_sockptr(&reason, optval, 1))
			break;
		ret = ctx->state == MQTTQ_ST_RUNNING ? 0 : -ENOTCONN;
		if (ret)
			break;
		ctx->local_disc = true;
		ret = mqc_disconnect(&ctx->sess->core, reason, mqttq_now());
		mqttq_fail(ctx, ret < 0 ? ret : 0);
		mqttq_after_core(ctx);
		ret = 0;
		break;
	default:
		ret = -ENOPROTOOPT;
	}
	mqttq_leave(ctx);
	release_sock(sk);
	return ret;
}

static int mqttq_getsockopt(struct sock *sk, int level, int optname, char __user *optval,
			    int __user *optlen)
{
	struct mqttq_ctx *ctx = mqttq_ctx(sk);
	struct mqttq_sess_stats st;
	struct mqttq_session u = {};
	const void *src;
	int len, n;

	if (level != SOL_MQTTQ)
		return ctx->base_prot->getsockopt(sk, level, optname, optval, optlen);
	if (get_user(len, optlen))
		return -EFAULT;
	if (len < 0)
		return -EINVAL;
	lock_sock(sk);
	switch (optname) {
	case MQTTQ_STATS:
		if (ctx->sess)
			mqttq_sess_sync(ctx->sess);
		st = ctx->st;
		st.records = ctx->nrecs;
		st.bytes_held =
			ctx->rec_bytes + ctx->tx_bytes + (ctx->sess ? ctx->sess->msg_bytes : 0);
		st.inflight = ctx->sess ? ctx->sess->core.inflight : 0;
		st.quota = ctx->sess ? ctx->sess->core.quota : 0;
		st.state = ctx->state;
		st.resumed = ctx->resumed;
		src = &st;
		n = sizeof(st);
		break;
	case MQTTQ_SESSION:
		if (!ctx->sess) {
			release_sock(sk);
			return -ENOTCONN;
		}
		u.size = sizeof(u);
		u.version = ctx->sess->cfg.version;
		u.ack_policy = ctx->sess->cfg.ack_policy;
		u.completion = ctx->sess->completion;
		u.flags = ctx->sess->cfg.user_flows ? MQTTQ_SF_OUTBOX : 0;
		u.keepalive_s = ctx->sess->cfg.keepalive_s;
		u.window = ctx->sess->cfg.window;
		u.recv_max = ctx->sess->cfg.recv_max;
		u.max_packet_in = ctx->sess->cfg.max_packet_in;
		u.retry_ms = ctx->sess->cfg.retry_ms;
		u.linger_s = ctx->sess->linger_s;
		u.max_bytes = ctx->sess->max_bytes;
		u.key = ctx->sess->key;
		u.max_packet_out = ctx->sess->core.lim.max_packet_size;
		u.receive_max = ctx->sess->core.lim.receive_max;
		u.topic_alias_max = ctx->sess->core.lim.topic_alias_max;
		u.server_keepalive = ctx->sess->core.lim.server_keepalive;
		u.max_qos = ctx->sess->core.lim.max_qos;
		u.retain_available = ctx->sess->core.lim.retain_available;
		u.wildcard_sub_available = ctx->sess->core.lim.wildcard_sub_available;
		u.sub_id_available = ctx->sess->core.lim.sub_id_available;
		u.shared_sub_available = ctx->sess->core.lim.shared_sub_available;
		src = &u;
		n = sizeof(u);
		break;
	default:
		release_sock(sk);
		return -ENOPROTOOPT;
	}
	release_sock(sk);
	len = min(len, n);
	if (copy_to_user(optval, src, len) || put_user(len, optlen))
		return -EFAULT;
	return 0;
}

/* ---- attach / close ----------------------------------------------------- */

static void mqttq_ctx_free(struct mqttq_ctx *ctx)
{
	struct mqttq_krec *k, *t;

	list_for_each_entry_safe(k, t, &ctx->recs, node)
		mqttq_rec_unqueue(ctx, k);
	mqttq_tx_purge(ctx);
	mqttq_subs_free(ctx);
	kfree_skb(ctx->held);
	if (ctx->filter)
		bpf_prog_put(ctx->filter);
	kfree(ctx->closed_rec);
	kvfree(ctx->scratch);
	kfree(ctx->rxbuf);
	kfree(ctx);
}

static void mqttq_close(struct sock *sk, long timeout)
{
	struct mqttq_ctx *ctx = mqttq_ctx(sk);
	struct proto *prot = ctx->base_prot;

	lock_sock(sk);
	mqttq_enter(ctx);
	mqttq_flush(ctx);
	/* closing without MQTTQ_DISCONNECT is a dropped connection: linger */
	mqttq_end(ctx, -ECONNABORTED, -ECONNABORTED, 0, 0, true, false);
	ctx->dying = true;
	ctx->direct = false;
	strp_stop(&ctx->strp);
	write_lock_bh(&sk->sk_callback_lock);
	sk->sk_data_ready = ctx->saved_data_ready;
	sk->sk_write_space = ctx->saved_write_space;
	sk->sk_state_change = ctx->saved_state_change;
	write_unlock_bh(&sk->sk_callback_lock);
	WRITE_ONCE(sk->sk_prot, prot);
	release_sock(sk);

	/* nothing re-arms these once dying is set and the callbacks are restored */
	mqttq_timer_delete_sync(&ctx->timer);
	cancel_work_sync(&ctx->work);
	strp_done(&ctx->strp);
	rcu_assign_pointer(inet_csk(sk)->icsk_ulp_data, NULL);
	mqttq_ctx_free(ctx);
	prot->close(sk, timeout);
}

static void mqttq_build(struct proto *prot, struct proto_ops *ops, const struct proto *base,
			const struct proto_ops *base_ops)
{
	*prot = *base;
	*ops = *base_ops;
	prot->sendmsg = mqttq_sendmsg;
	prot->recvmsg = mqttq_recvmsg;
	prot->close = mqttq_close;
	prot->setsockopt = mqttq_setsockopt;
	prot->getsockopt = mqttq_getsockopt;
	ops->poll = mqttq_poll;
	/* every way to the raw byte stream goes through recvmsg/sendmsg */
	ops->splice_read = NULL;
	ops->mmap = sock_no_mmap;
	mqttq_compat_no_sendpage(prot, ops);
}

static int mqttq_ulp_attach(struct sock *sk)
{
	struct strp_callbacks cb = {
		.parse_msg = mqttq_strp_parse,
		.rcv_msg = mqttq_strp_rcv,
		.read_sock_done = mqttq_strp_done,
		.abort_parser = mqttq_strp_abort,
	};
	struct proto *prot;
	struct proto_ops *ops;
	struct mqttq_ctx *ctx;
	int err;

	if (!sk->sk_socket)
		return -EINVAL;
	if (sk->sk_state != TCP_ESTABLISHED)
		return -ENOTCONN;
	if (sk->sk_user_data)
		return -EBUSY; /* sockmap and friends own the callbacks */
	if (sk->sk_family == AF_INET) {
		if (sk->sk_prot != &tcp_prot)
			return -EBUSY;
		prot = &mqttq_prot4;
		ops = &mqttq_ops4;
	} else if (sk->sk_family == AF_INET6) {
		mutex_lock(&mqttq_prot6_lock);
		if (!mqttq_base6) {
			mqttq_build(&mqttq_prot6, &mqttq_ops6, sk->sk_prot, sk->sk_socket->ops);
			mqttq_base6 = sk->sk_prot;
		}
		mutex_unlock(&mqttq_prot6_lock);
		if (sk->sk_prot != mqttq_base6)
			return -EBUSY;
		prot = &mqttq_prot6;
		ops = &mqttq_ops6;
	} else {
		return -EAFNOSUPPORT;
	}

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return -ENOMEM;
	err = strp_init(&ctx->strp, sk, &cb);
	if (err) {
		kfree(ctx);
		return err;
	}
	ctx->sk = sk;
	ctx->base_prot = sk->sk_prot;
	ctx->base_ops = sk->sk_socket->ops;
	INIT_LIST_HEAD(&ctx->recs);
	INIT_LIST_HEAD(&ctx->txq);
	INIT_LIST_HEAD(&ctx->subs);
	INIT_WORK(&ctx->work, mqttq_work);
	timer_setup(&ctx->timer, mqttq_timer_fn, 0);
	ctx->state = MQTTQ_ST_IDLE;
	ctx->coal_batch = 1;

	rcu_assign_pointer(inet_csk(sk)->icsk_ulp_data, ctx);
	write_lock_bh(&sk->sk_callback_lock);
	ctx->saved_data_ready = sk->sk_data_ready;
	ctx->saved_write_space = sk->sk_write_space;
	ctx->saved_state_change = sk->sk_state_change;
	sk->sk_data_ready = mqttq_data_ready;
	sk->sk_write_space = mqttq_write_space;
	sk->sk_state_change = mqttq_state_change;
	write_unlock_bh(&sk->sk_callback_lock);
	WRITE_ONCE(sk->sk_prot, prot);
	sk->sk_socket->ops = ops;
	return 0;
}

/* Reached from socket destruction; close has normally freed everything. */
static void mqttq_ulp_release(struct sock *sk)
{
	struct mqttq_ctx *ctx = mqttq_ctx(sk);

	if (!ctx)
		return;
	rcu_assign_pointer(inet_csk(sk)->icsk_ulp_data, NULL);
	strp_stop(&ctx->strp);
	mqttq_ctx_free(ctx);
}

static struct tcp_ulp_ops mqttq_ulp_ops __read_mostly = {
	.name = "mqttq",
	.owner = THIS_MODULE,
	.init = mqttq_ulp_attach,
	.release = mqttq_ulp_release,
};

int mqttq_ulp_init(void)
{
	mqttq_wq = alloc_workqueue("mqttq", WQ_UNBOUND, 0);
	if (!mqttq_wq)
		return -ENOMEM;
	mqttq_build(&mqttq_prot4, &mqttq_ops4, &tcp_prot, &inet_stream_ops);
	tcp_register_ulp(&mqttq_ulp_ops);
	return 0;
}

void mqttq_ulp_exit(void)
{
	struct mqttq_sess *s;
	struct hlist_node *t;
	HLIST_HEAD(dead);
	int bkt;

	/* attached sockets hold a module reference: only lingering sessions remain */
	tcp_unregister_ulp(&mqttq_ulp_ops);
	spin_lock_bh(&mqttq_tbl_lock);
	hash_for_each_safe(mqttq_tbl, bkt, t, s, hnode) {
		hash_del(&s->hnode);
		s->hashed = false;
		hlist_add_head(&s->hnode, &dead);
	}
	spin_unlock_bh(&mqttq_tbl_lock);
	hlist_for_each_entry_safe(s, t, &dead, hnode) {
		hlist_del(&s->hnode);
		cancel_delayed_work_sync(&s->expire);
		mqttq_sess_free(s);
	}
	destroy_workqueue(mqttq_wq);
}

MODULE_ALIAS_TCP_ULP("mqttq");
