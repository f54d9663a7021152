// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The libmqttq client: public API, io_uring transport and the glue feeding bytes and time to the protocol core. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "../core/mqc_int.h"
#include "match.h"
#include "mqf.h"

#define container_of(p, t, m) ((t *)((char *)(p) - offsetof(t, m)))

enum { OP_CONNECT = 1, OP_SEND, OP_RECV, OP_TIMER, OP_IGNORE };
#define UD(q, op) (((u64)(q)->gen << 8) | (op))
#define UD_TIMER ((u64)OP_TIMER)
#define BGID 7

_Static_assert((int)MQTTQ_E_KEEPALIVE == (int)MQC_E_KEEPALIVE, "protocol error numbering follows the core");
_Static_assert((int)MQTTQ_E_MAX == (int)MQC_E_MAX, "protocol error numbering follows the core");

static __thread char new_errmsg[256];

/* ---- small helpers ------------------------------------------------------ */

u64 mq_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mq_log(struct mqttq *q, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!q->o.log && !q->debug)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (q->o.log)
		q->o.log(q->o.log_ctx, level, buf);
	else
		fprintf(stderr, "mqttq: %s\n", buf);
}

int mq_err(struct mqttq *q, int err, const char *fmt, ...)
{
	char *dst = q ? q->errmsg : new_errmsg;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, 256, fmt, ap);
	va_end(ap);
	if (q)
		mq_log(q, MQTTQ_LOG_DEBUG, "error %d: %s", err, dst);
	return err;
}

static u32 mq_rand(struct mqttq *q)
{
	/* xorshift: jitter only needs to decorrelate clients, not be secret */
	u32 x = q->rand_state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	q->rand_state = x ? x : 0x9e3779b9u;
	return x;
}

MQ_API unsigned int mqttq_version(void)
{
	return MQTTQ_VERSION;
}

MQ_API const char *mqttq_version_string(void)
{
	return MQTTQ_VERSION_STRING;
}

MQ_API const char *mqttq_strerror(int err)
{
	static __thread char buf[96];

	if (err <= -MQC_E_BASE - 1 && err > -MQC_E_MAX)
		return mqc_strerror(err);
	if (err == 0)
		return "success";
	if (err < 0 && err > -4096) {
		snprintf(buf, sizeof(buf), "%s", strerror(-err));
		return buf;
	}
	snprintf(buf, sizeof(buf), "unknown error %d", err);
	return buf;
}

MQ_API const char *mqttq_errmsg(const struct mqttq *q)
{
	return q ? q->errmsg : new_errmsg;
}

/* ---- events ------------------------------------------------------------- */

u32 mq_evq_free(const struct mqttq *q)
{
	return q->evq_cap - q->evq_len;
}

struct mq_ev *mq_evq_push(struct mqttq *q, int type)
{
	struct mq_ev *e;

	if (q->evq_len == q->evq_cap) {
		/* Callers keep a margin; getting here is a library bug, so say it loudly. */
		mq_log(q, MQTTQ_LOG_ERR, "event queue overflow (type %d)", type);
		return NULL;
	}
	e = &q->evq[(q->evq_head + q->evq_len++) % q->evq_cap];
	memset(&e->ev, 0, sizeof(e->ev));
	e->in_rx = 0;
	e->ev.type = type;
	return e;
}

/* Room the core may fill from one call: a CONNACK resume can complete a whole window. */
u32 mq_ev_margin(const struct mqttq *q)
{
	return q->o.window + 8;
}

/* ---- transmit ----------------------------------------------------------- */

static int tx_append(struct mqttq *q, const u8 *p, u32 len)
{
	struct mq_txbuf *t = &q->tx[q->tx_cur];

	if (t->len + len > t->cap) {
		u32 cap = t->cap * 2;
		u8 *n;

		while (cap < t->len + len)
			cap *= 2;
		n = realloc(t->p, cap);
		if (!n)
			return -ENOMEM;
		t->p = n;
		t->cap = cap;
	}
	memcpy(t->p + t->len, p, len);
	t->len += len;
	return 0;
}

struct io_uring_sqe *mq_get_sqe(struct mqttq *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	if (!sqe) {
		q->st.enters++;
		io_uring_submit(&q->ring);
		sqe = io_uring_get_sqe(&q->ring);
	}
	return sqe;
}

/* Puts the filled buffer on the wire when none is in flight: one SQE per batch. */
static void tx_kick(struct mqttq *q)
{
	struct io_uring_sqe *sqe;
	struct mq_txbuf *t;
	int idx;

	if (q->send_inflight || q->fd < 0 || q->engine == MQTTQ_ENGINE_OFFLOAD ||
	    (q->state != MQ_ST_UP && q->state != MQ_ST_WAIT_CONNACK))
		return;
	if (!q->tx[q->tx_cur].len)
		return;
	if (!q->tx_urgent && q->state == MQ_ST_UP) {
		/*
		 * Batching: while more than half the window is on the wire, acks
		 * are bound to come back; hold new QoS 1/2 traffic until they do,
		 * so both we and the broker handle many packets per wakeup
		 * instead of ping-ponging a few at a time.
		 */
		u32 win = q->o.window, on_wire;

		if (q->lim.receive_max && q->lim.receive_max < win)
			win = q->lim.receive_max;
		on_wire = q->st.inflight > q->tx_batched ? q->st.inflight - q->tx_batched : 0;
		if (on_wire > win / 2 && q->tx[q->tx_cur].len < q->tx_soft) {
			q->hold_need = on_wire - win / 2;
			/*
			 * No data of ours will carry the TCP ACK now, and a broker
			 * with Nagle on holds its next acks until it sees one: send
			 * the ACK at once rather than after the delayed-ACK timer.
			 */
			if (q->rx_since_ack) {
				int one = 1;

				setsockopt(q->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
				q->rx_since_ack = false;
			}
			return;
		}
	}
	/* identifiers reach the disk before the PUBLISHes carrying them leave */
	mq_outbox_sync(q, false);
	sqe = mq_get_sqe(q);
	if (!sqe)
		return;
	idx = q->tx_cur;
	q->tx_cur ^= 1;
	q->tx[q->tx_cur].len = 0;
	q->tx[q->tx_cur].off = 0;
	q->tx_urgent = false;
	q->tx_batched = 0;
	q->hold_need = 0;
	t = &q->tx[idx];
	t->off = 0;
	io_uring_prep_send(sqe, q->fd, t->p, t->len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(q, OP_SEND) | ((u64)idx << 4));
	q->send_inflight = true;
	q->st.sends++;
}

/* ---- core callbacks ------------------------------------------------------ */

static int cb_send(void *ctx, const u8 *buf, u32 len)
{
	struct mqttq *q = ctx;

	/*
	 * A PUBREL continues one of our own flows and can ride with the next
	 * batch; anything else (acks of inbound messages, PINGREQ, SUBSCRIBE,
	 * DISCONNECT) goes out at the next kick.
	 */
	if (len && (buf[0] >> 4) == MQC_PUBREL) {
		q->tx_batched++;
		u32 rl;
		int w = mqc_varint_get(buf + 1, len - 1, &rl);

		/* PUBREL: fixed header, remaining length, then the identifier */
		if (w > 0 && (u32)w + 3 <= len)
			mq_outbox_rel(q, (u16)(buf[1 + w] << 8 | buf[2 + w]));
	} else
		q->tx_urgent = true;
	return tx_append(q, buf, len);
}

static u32 alias_hash(const u8 *s, u32 len)
{
	u32 h = 2166136261u;

	while (len--)
		h = (h ^ *s++) * 16777619u;
	return h ? h : 1;
}

/*
 * Picks a topic alias for a publish on this connection: 0 = send the topic,
 * else the alias; *known tells whether the server already has it. A topic
 * earns an alias on its second use, so one-off topics do not burn slots.
 */
static u16 alias_pick(struct mqttq *q, const u8 *topic, u32 len, bool *known)
{
	u32 h = alias_hash(topic, len);
	struct mq_alias *a = &q->alias[h & (MQ_ALIAS_SLOTS - 1)];

	*known = false;
	if (a->epoch == q->alias_epoch && a->hash == h && a->len == len &&
	    !memcmp(a->topic, topic, len)) {
		if (a->alias) {
			*known = true;
			return a->alias;
		}
		if (q->alias_next > q->alias_max)
			return 0;
		a->alias = q->alias_next++;
		return a->alias;
	}
	if (a->epoch == q->alias_epoch && a->alias)
		return 0; /* slot owned by another aliased topic this connection */
	if (a->topic_cap < len) {
		char *n = realloc(a->topic, len ? len : 1);

		if (!n)
			return 0;
		a->topic = n;
		a->topic_cap = len;
	}
	memcpy(a->topic, topic, len);
	a->len = len;
	a->hash = h;
	a->alias = 0;
	a->epoch = q->alias_epoch;
	return 0;
}

static int cb_send_msg(void *ctx, struct mqc_msg *m)
{
	struct mqttq *q = ctx;
	struct mq_msg *mm = container_of(m, struct mq_msg, m);
	struct mqc_pub p;
	struct mq_txbuf *t;
	bool known;
	u16 alias;
	int n;

	if (m->buf[0] & 0x08)
		q->st.retransmits++;
	if (m->qos)
		q->tx_batched++;
	else
		q->tx_urgent = true;
	if (!mm->aliasable || !q->alias_max)
		return tx_append(q, m->buf, m->len);
	alias = alias_pick(q, mm->buf + mm->topic_off, mm->topic_len, &known);
	if (!alias)
		return tx_append(q, m->buf, m->len);
	/* Re-encode straight into the batch: the stored copy keeps the full topic for resends. */
	memset(&p, 0, sizeof(p));
	p.topic.p = mm->buf + mm->topic_off;
	p.topic.len = known ? 0 : mm->topic_len;
	p.payload.p = mm->buf + mm->payload_off;
	p.payload.len = mm->payload_len;
	p.qos = (m->buf[0] >> 1) & 3;
	p.retain = m->buf[0] & 1;
	p.dup = (m->buf[0] >> 3) & 1;
	p.pid = p.qos ? (u16)(m->buf[m->pid_off] << 8 | m->buf[m->pid_off + 1]) : 0;
	p.topic_alias = alias;
	n = mqc_publish_size(MQC_V5, &p);
	if (n < 0)
		return tx_append(q, m->buf, m->len);
	if (tx_append(q, m->buf, 0))
		return -ENOMEM;
	t = &q->tx[q->tx_cur];
	if (t->len + n > t->cap) {
		u8 *nb = realloc(t->p, (t->len + n) * 2);

		if (!nb)
			return -ENOMEM;
		t->p = nb;
		t->cap = (t->len + n) * 2;
	}
	n = mqc_encode_publish(MQC_V5, &p, t->p + t->len, t->cap - t->len, NULL);
	if (n < 0)
		return tx_append(q, m->buf, m->len);
	t->len += n;
	if (known)
		q->st.alias_hits++;
	return 0;
}

void mq_complete(void *ctx, struct mqc_msg *m, u8 reason)
{
	struct mqttq *q = ctx;
	struct mq_msg *mm = container_of(m, struct mq_msg, m);
	struct mq_ev *e;

	if (mm->in_core && m->qos)
		q->st.inflight--;
	if (reason >= 0x80)
		q->st.refused++;
	else
		q->st.completed++;
	mq_outbox_done(q, mm);
	if (mm->sync) {
		q->sync_pub_done = 1;
		q->sync_pub_res = reason;
	} else {
		e = mq_evq_push(q, MQTTQ_EV_PUBLISHED);
		if (e) {
			e->ev.token = m->token;
			e->ev.reason = reason;
		}
	}
	mq_msg_put(q, mm);
}

static void decode_msg_props(const struct mqc_inmsg *im, struct mqttq_msg_props *mp)
{
	struct mqc_str cur = { im->props, im->props_len };
	struct mqc_prop pr;

	mp->raw = im->props;
	mp->raw_len = im->props_len;
	while (im->props_len && mqc_prop_next(&cur, &pr) == 1) {
		switch (pr.id) {
		case MQC_P_MESSAGE_EXPIRY:
			mp->message_expiry = pr.num;
			mp->has_message_expiry = 1;
			break;
		case MQC_P_PAYLOAD_FORMAT:
			mp->payload_format = pr.num;
			break;
		case MQC_P_SUBSCRIPTION_ID:
			if (!mp->subscription_id)
				mp->subscription_id = pr.num;
			break;
		case MQC_P_CONTENT_TYPE:
			mp->content_type = (const char *)pr.str.p;
			mp->content_type_len = pr.str.len;
			break;
		case MQC_P_RESPONSE_TOPIC:
			mp->response_topic = (const char *)pr.str.p;
			mp->response_topic_len = pr.str.len;
			break;
		case MQC_P_CORRELATION_DATA:
			mp->correlation_data = pr.str.p;
			mp->correlation_len = pr.str.len;
			break;
		}
	}
}

int mq_deliver(void *ctx, const struct mqc_inmsg *im)
{
	struct mqttq *q = ctx;
	u32 fid = 0;
	struct mq_ev *e;

	q->st.received++;
	if (q->filters && mqf_set_count(q->filters)) {
		fid = mqf_set_match(q->filters, (const char *)im->topic, im->topic_len);
		if (!fid && !(q->filter_flags & MQTTQ_FILTER_DELIVER_UNMATCHED)) {
			q->st.filtered++;
			return 0;
		}
	}
	e = mq_evq_push(q, MQTTQ_EV_MESSAGE);
	if (!e)
		return -ENOSPC;
	e->in_rx = 1;
	e->ev.msg.topic = (const char *)im->topic;
	e->ev.msg.topic_len = im->topic_len;
	e->ev.msg.payload = im->payload;
	e->ev.msg.payload_len = im->payload_len;
	e->ev.msg.qos = im->qos;
	e->ev.msg.retain = im->retain;
	e->ev.msg.dup = im->dup;
	e->ev.msg.filter_id = fid;
	decode_msg_props(im, &e->ev.msg.props);
	return 0;
}

struct mq_req *mq_req_find(struct mqttq *q, u64 core_token)
{
	for (int i = 0; i < MQ_MAX_REQ; i++)
		if (q->req[i].core_token == core_token)
			return &q->req[i];
	return NULL;
}

static void cb_sub_done(void *ctx, u64 token, const u8 *codes, u32 n)
{
	struct mqttq *q = ctx;
	struct mq_req *r = mq_req_find(q, token);
	struct mq_ev *e;

	if (!r || !token)
		return;
	if (n > MQC_MAX_TOPICS)
		n = MQC_MAX_TOPICS;
	if (r->sync) {
		if (q->sync_codes && codes)
			memcpy(q->sync_codes, codes, n < r->n ? n : r->n);
		q->sync_ncodes = n;
		q->sync_sub_done = 1;
	} else {
		e = mq_evq_push(q, r->unsub ? MQTTQ_EV_UNSUBSCRIBED : MQTTQ_EV_SUBSCRIBED);
		if (e) {
			/* the core ends pending requests with no codes when the link drops */
			if (!codes)
				e->ev.err = -ENOTCONN;
			else
				memcpy(e->codes, codes, n);
			e->ev.codes = e->codes;
			e->ev.ncodes = n;
			e->ev.token = r->user_token;
		}
	}
	r->core_token = 0;
}

static void cb_closed(void *ctx, const struct mqc_close *c)
{
	struct mqttq *q = ctx;

	if (!q->closing) {
		q->closing = true;
		q->close_info = *c;
	}
}

static const struct mqc_ops core_ops = {
	.send = cb_send,
	.send_msg = cb_send_msg,
	.complete = mq_complete,
	.deliver = mq_deliver,
	.sub_done = cb_sub_done,
	.closed = cb_closed,
};

/* ---- connection --------------------------------------------------------- */

void mq_reconnect(struct mqttq *q, int err, u8 reason, bool by_peer, bool retry);

/* Drops the socket; in-flight state stays in the core for the next session. */
static void conn_drop(struct mqttq *q)
{
	if (q->state == MQ_ST_UP && q->engine == MQTTQ_ENGINE_USERSPACE)
		mqc_disconnected(&q->s);
	mq_off_dropped(q);
	if (q->mqf_sock >= 0) {
		mqf_sock_detach(q->mqf, q->mqf_sock);
		q->mqf_sock = -1;
	}
	q->st.filter_in_kernel = 0;
	if (q->fd >= 0) {
		/* shutdown ends the multishot receive and any send; close drops our reference */
		shutdown(q->fd, SHUT_RDWR);
		close(q->fd);
		q->fd = -1;
	}
	q->gen++;
	q->recv_armed = false;
	q->connect_inflight = false;
	q->tx[q->tx_cur].len = 0;
	q->tx_urgent = false;
	q->tx_batched = 0;
	q->rx_eof = false;
	q->rx_err = 0;
	q->closing = false;
	/* Stale bytes must not be parsed as the next session's; reset once no event points there. */
	q->rx_off = q->rx_len;
	q->alias_epoch++;
}

static bool refusal_is_final(int version, u8 rc)
{
	if (version == MQC_V311)
		return rc == 1 || rc == 2 || rc == 4 || rc == 5;
	/* v5: retrying cannot fix bad credentials, identifiers or protocol */
	return rc == 0x81 || rc == 0x82 || rc == 0x84 || rc == 0x85 || rc == 0x86 ||
	       rc == 0x87 || rc == 0x8a || rc == 0x8c || rc == 0x90 || rc == 0x95;
}

static int resolve(struct mqttq *q, const struct mq_url *u, struct sockaddr_storage *ss,
		   socklen_t *sl)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	int r;

	hints.ai_flags |= AI_NUMERICHOST;
	r = getaddrinfo(u->host, u->port, &hints, &res);
	if (r == EAI_NONAME) {
		hints.ai_flags &= ~AI_NUMERICHOST;
		r = getaddrinfo(u->host, u->port, &hints, &res);
	}
	if (r)
		return mq_err(q, -EHOSTUNREACH, "cannot resolve %s: %s", u->host, gai_strerror(r));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sl = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int start_connect(struct mqttq *q)
{
	struct sockaddr_storage ss;
	struct io_uring_sqe *sqe;
	const struct mq_url *u;
	socklen_t sl = 0;
	int one = 1, r, fd;

	if (q->have_redirect) {
		u = &q->redirect;
		q->have_redirect = false;
	} else {
		u = &q->urls[q->url_idx % q->nurls];
		q->url_idx++;
	}
	mq_log(q, MQTTQ_LOG_INFO, "connecting to %s:%s", u->host, u->port);
	r = resolve(q, u, &ss, &sl);
	if (r)
		return r;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mq_err(q, -errno, "socket: %s", strerror(errno));
	/* We coalesce ourselves; Nagle would only add latency to the last packet of a batch. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sqe = mq_get_sqe(q);
	if (!sqe) {
		close(fd);
		return -EBUSY;
	}
	q->fd = fd;
	q->addr = ss;
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&q->addr, sl);
	io_uring_sqe_set_data64(sqe, UD(q, OP_CONNECT));
	q->connect_inflight = true;
	q->state = MQ_ST_CONNECTING;
	q->state_deadline = mq_now_ms() + q->o.connect_timeout_ms;
	q->engine = q->want_offload ? MQTTQ_ENGINE_NONE : MQTTQ_ENGINE_USERSPACE;
	q->st.enters++;
	io_uring_submit(&q->ring);
	return 0;
}

void mq_reconnect(struct mqttq *q, int err, u8 reason, bool by_peer, bool retry)
{
	struct mq_ev *e;
	u32 d;

	conn_drop(q);
	q->st.disconnects++;
	retry = retry && !q->o.no_reconnect && q->state != MQ_ST_CLOSED;
	e = mq_evq_push(q, MQTTQ_EV_DISCONNECTED);
	if (e) {
		e->ev.err = err;
		e->ev.reason = reason;
		e->ev.by_peer = by_peer;
		e->ev.will_retry = retry;
	}
	if (!retry) {
		q->state = MQ_ST_CLOSED;
		return;
	}
	/* Exponential backoff with +-50% jitter so a fleet does not reconnect in lockstep. */
	d = q->backoff_ms;
	d = d / 2 + mq_rand(q) % (d + 1);
	q->backoff_ms = q->backoff_ms * 2 > q->o.reconnect_max_ms ? q->o.reconnect_max_ms :
								      q->backoff_ms * 2;
	if (q->have_redirect)
		d = 0;
	q->state = MQ_ST_BACKOFF;
	q->state_deadline = mq_now_ms() + d;
	mq_log(q, MQTTQ_LOG_INFO, "disconnected (%s, reason 0x%02x); retry in %u ms",
	       mqttq_strerror(err), reason, d);
}

static void fill_pub_props(struct mqc_props *pp, const struct mqttq_pub_props *in)
{
	memset(pp, 0, sizeof(*pp));
	if (!in)
		return;
	if (in->has_message_expiry) {
		pp->present |= 1ull << MQC_P_MESSAGE_EXPIRY;
		pp->message_expiry = in->message_expiry;
	}
	if (in->has_payload_format) {
		pp->present |= 1ull << MQC_P_PAYLOAD_FORMAT;
		pp->payload_format = in->payload_format;
	}
	if (in->content_type) {
		pp->present |= 1ull << MQC_P_CONTENT_TYPE;
		pp->content_type.p = (const u8 *)in->content_type;
		pp->content_type.len = strlen(in->content_type);
	}
	if (in->response_topic) {
		pp->present |= 1ull << MQC_P_RESPONSE_TOPIC;
		pp->response_topic.p = (const u8 *)in->response_topic;
		pp->response_topic.len = strlen(in->response_topic);
	}
	if (in->correlation_data) {
		pp->present |= 1ull << MQC_P_CORRELATION_DATA;
		pp->correlation_data.p = in->correlation_data;
		pp->correlation_data.len = in->correlation_len;
	}
}

static int send_connect(struct mqttq *q)
{
	struct mqc_connect c;
	struct mqc_props cp, wp;
	struct mqc_will w;
	u8 buf[512];
	u8 *p = buf;
	int n, r;

	memset(&c, 0, sizeof(c));
	c.version = q->o.version;
	/* v5 reconnects resume the session the first CONNECT started. */
	c.clean = q->o.clean && (q->o.version == MQC_V311 || !q->st.connects);
	c.keepalive = q->o.keepalive_s;
	c.client_id.p = (const u8 *)q->client_id;
	c.client_id.len = strlen(q->client_id);
	if (q->username) {
		c.username.p = (const u8 *)q->username;
		c.username.len = strlen(q->username);
	}
	if (q->password) {
		c.password.p = q->password;
		c.password.len = q->o.password_len;
	}
	memset(&cp, 0, sizeof(cp));
	if (q->o.version == MQC_V5) {
		if (q->o.session_expiry) {
			cp.present |= 1ull << MQC_P_SESSION_EXPIRY;
			cp.session_expiry = q->o.session_expiry;
		}
		cp.present |= 1ull << MQC_P_RECEIVE_MAX;
		cp.receive_max = q->o.receive_max;
		cp.present |= 1ull << MQC_P_MAX_PACKET_SIZE;
		cp.max_packet_size = q->o.max_packet_in;
		c.props = &cp;
	}
	if (q->o.will) {
		const struct mqttq_will *ow = q->o.will;

		memset(&w, 0, sizeof(w));
		w.topic.p = (const u8 *)ow->topic;
		w.topic.len = strlen(ow->topic);
		w.payload.p = ow->payload;
		w.payload.len = ow->payload_len;
		w.qos = ow->qos;
		w.retain = !!ow->retain;
		if (q->o.version == MQC_V5) {
			fill_pub_props(&wp, ow->props);
			if (ow->delay_interval) {
				wp.present |= 1ull << MQC_P_WILL_DELAY;
				wp.will_delay = ow->delay_interval;
			}
			w.props = &wp;
		}
		c.will = &w;
	}
	n = mqc_encode_connect(&c, buf, sizeof(buf));
	if (n == -ENOSPC) {
		n = mqc_encode_connect(&c, q->rx, q->rx_cap);
		p = q->rx;
	}
	if (n < 0)
		return mq_err(q, n, "cannot encode CONNECT: %s", mqttq_strerror(n));
	r = tx_append(q, p, n);
	return r;
}

static void arm_recv(struct mqttq *q)
{
	struct io_uring_sqe *sqe;

	if (q->recv_armed || q->fd < 0)
		return;
	sqe = mq_get_sqe(q);
	if (!sqe)
		return;
	io_uring_prep_recv_multishot(sqe, q->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, UD(q, OP_RECV));
	q->recv_armed = true;
}

static void on_connack(struct mqttq *q, const u8 *pkt, u32 len)
{
	struct mqc_packet *p = calloc(1, sizeof(*p));
	const struct mqc_props *pr;
	struct mq_ev *e;
	int r;

	if (!p) {
		mq_reconnect(q, -ENOMEM, 0, false, true);
		return;
	}
	r = mqc_decode(q->o.version, pkt, len, q->o.max_packet_in, p);
	if (r == 0 && p->type != MQC_CONNACK)
		r = -MQC_E_PROTOCOL;
	if (r) {
		mq_err(q, r, "bad CONNACK: %s", mqttq_strerror(r));
		q->st.proto_errors++;
		free(p);
		mq_reconnect(q, r, 0, false, true);
		return;
	}
	pr = &p->connack.props;
	if (p->connack.reason) {
		u8 rc = p->connack.reason;

		mq_err(q, -ECONNREFUSED, "broker refused the connection: reason 0x%02x", rc);
		if (q->o.version == MQC_V5 && (rc == 0x9c || rc == 0x9d) &&
		    (pr->present & (1ull << MQC_P_SERVER_REFERENCE)) &&
		    pr->server_reference.len < 256) {
			char ref[256];

			memcpy(ref, pr->server_reference.p, pr->server_reference.len);
			ref[pr->server_reference.len] = 0;
			if (!mq_parse_url(ref, &q->redirect)) {
				q->have_redirect = true;
				mq_log(q, MQTTQ_LOG_INFO, "server reference: %s", ref);
			}
		}
		free(p);
		mq_reconnect(q, -ECONNREFUSED, rc, false,
				   !refusal_is_final(q->o.version, rc) || q->have_redirect);
		return;
	}
	memset(&q->lim, 0, sizeof(q->lim));
	q->lim.max_qos = 2;
	q->lim.retain_available = 1;
	q->lim.wildcard_sub_available = 1;
	q->lim.sub_id_available = 1;
	q->lim.shared_sub_available = 1;
	if (q->o.version == MQC_V5) {
		if (pr->present & (1ull << MQC_P_MAX_PACKET_SIZE))
			q->lim.max_packet_size = pr->max_packet_size;
		if (pr->present & (1ull << MQC_P_RECEIVE_MAX))
			q->lim.receive_max = pr->receive_max;
		if (pr->present & (1ull << MQC_P_TOPIC_ALIAS_MAX))
			q->lim.topic_alias_max = pr->topic_alias_max;
		if (pr->present & (1ull << MQC_P_SERVER_KEEPALIVE))
			q->lim.server_keepalive = pr->server_keepalive;
		if (pr->present & (1ull << MQC_P_MAX_QOS))
			q->lim.max_qos = pr->max_qos;
		if (pr->present & (1ull << MQC_P_RETAIN_AVAILABLE))
			q->lim.retain_available = pr->retain_available;
		if (pr->present & (1ull << MQC_P_WILDCARD_SUB_AVAILABLE))
			q->lim.wildcard_sub_available = pr->wildcard_sub_available;
		if (pr->present & (1ull << MQC_P_SUB_ID_AVAILABLE))
			q->lim.sub_id_available = pr->sub_id_available;
		if (pr->present & (1ull << MQC_P_SHARED_SUB_AVAILABLE))
			q->lim.shared_sub_available = pr->shared_sub_available;
		if ((pr->present & (1ull << MQC_P_ASSIGNED_CLIENT_ID)) &&
		    pr->assigned_client_id.len) {
			char *id = malloc(pr->assigned_client_id.len + 1);

			if (id) {
				memcpy(id, pr->assigned_client_id.p, pr->assigned_client_id.len);
				id[pr->assigned_client_id.len] = 0;
				free(q->client_id);
				q->client_id = id;
			}
		}
	}
	q->alias_max = q->lim.topic_alias_max < q->o.topic_alias_max ? q->lim.topic_alias_max :
									 q->o.topic_alias_max;
	q->alias_next = 1;
	q->alias_epoch++;
	q->state = MQ_ST_UP;
	q->backoff_ms = q->o.reconnect_min_ms;
	q->st.connects++;
	e = mq_evq_push(q, MQTTQ_EV_CONNECTED);
	if (e)
		e->ev.session_present = p->connack.session_present;
	mq_on_connack_ok(q, p->connack.session_present);
	free(p);
}

/* CONNACK accepted: start the engine the options asked for. */
void mq_on_connack_ok(struct mqttq *q, bool session_present)
{
	int r;

	if (q->want_offload) {
		r = mq_off_attach(q, session_present);
		if (!r) {
			mq_log(q, MQTTQ_LOG_INFO, "offload engine: session runs in mqttq.ko");
			return;
		}
		if (q->o.offload == MQTTQ_OFFLOAD_ON) {
			mq_reconnect(q, -ENOPROTOOPT, 0, false, false);
			return;
		}
		if (q->obo_taken) {
			/*
			 * The outbox's flows and identifiers are with this engine
			 * now; the in-process core would give them new ones.
			 */
			mq_reconnect(q, r, 0, false, true);
			return;
		}
		/* auto: the socket is still plain TCP, so the core takes over here */
		mq_log(q, MQTTQ_LOG_WARN, "offload failed (%s), using the userspace engine",
		       q->errmsg);
		q->want_offload = false;
	}
	q->engine = MQTTQ_ENGINE_USERSPACE;
	arm_recv(q);
	r = mqc_connected(&q->s, &q->lim, session_present, mq_now_ms());
	if (r < 0) {
		mq_err(q, r, "session resume failed: %s", mqttq_strerror(r));
		mq_reconnect(q, r, 0, false, true);
	}
}

/* v5 DISCONNECT may carry a Server Reference the next attempt should follow. */
static void peek_disconnect(struct mqttq *q, const u8 *pkt, u32 len)
{
	struct mqc_packet *p;
	const struct mqc_str *sr;

	if (q->o.version != MQC_V5)
		return;
	p = calloc(1, sizeof(*p));
	if (!p)
		return;
	if (!mqc_decode(MQC_V5, pkt, len, q->o.max_packet_in, p) &&
	    (p->props.present & (1ull << MQC_P_SERVER_REFERENCE))) {
		char ref[256];

		sr = &p->props.server_reference;
		if (sr->len < sizeof(ref)) {
			memcpy(ref, sr->p, sr->len);
			ref[sr->len] = 0;
			if (!mq_parse_url(ref, &q->redirect))
				q->have_redirect = true;
		}
	}
	free(p);
}

/* ---- receive ------------------------------------------------------------ */

static u32 rx_pinned(const struct mqttq *q)
{
	u32 n = 0;

	for (u32 i = 0; i < q->evq_len; i++)
		n += q->evq[(q->evq_head + i) % q->evq_cap].in_rx;
	return n;
}

static void rx_compact(struct mqttq *q)
{
	/* an armed record receive (offload) writes at a fixed address in rx */
	if (q->rx_popped || q->off_recv_armed || rx_pinned(q))
		return;
	if (q->rx_off) {
		memmove(q->rx, q->rx + q->rx_off, q->rx_len - q->rx_off);
		q->rx_len -= q->rx_off;
		q->rx_off = 0;
	}
}

static void buf_recycle(struct mqttq *q, u16 bid)
{
	io_uring_buf_ring_add(q->br, q->rbufs + (size_t)bid * q->rbuf_size, q->rbuf_size, bid,
			      io_uring_buf_ring_mask(q->rbuf_count), 0);
	io_uring_buf_ring_advance(q->br, 1);
}

/* Copies held receive buffers into the accumulator, in arrival order, while they fit. */
static void rx_unhold(struct mqttq *q)
{
	u32 i = 0;

	while (i < q->nheld && q->rx_len + q->held_len[i] <= q->rx_cap) {
		memcpy(q->rx + q->rx_len, q->rbufs + (size_t)q->held_bid[i] * q->rbuf_size,
		       q->held_len[i]);
		q->rx_len += q->held_len[i];
		buf_recycle(q, q->held_bid[i]);
		i++;
	}
	if (i) {
		memmove(q->held_bid, q->held_bid + i, (q->nheld - i) * sizeof(*q->held_bid));
		memmove(q->held_len, q->held_len + i, (q->nheld - i) * sizeof(*q->held_len));
		q->nheld -= i;
	}
}

static void on_recv(struct mqttq *q, struct io_uring_cqe *cqe, bool stale)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		u16 bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

		if (stale || cqe->res <= 0) {
			buf_recycle(q, bid);
		} else {
			q->st.bytes_rx += cqe->res;
			q->st.recvs++;
			q->rx_since_ack = true;
			if (!q->nheld && q->rx_len + cqe->res <= q->rx_cap) {
				memcpy(q->rx + q->rx_len, q->rbufs + (size_t)bid * q->rbuf_size,
				       cqe->res);
				q->rx_len += cqe->res;
				buf_recycle(q, bid);
			} else {
				/* No room: keep the buffer; the ring running dry stops the socket. */
				q->held_bid[q->nheld] = bid;
				q->held_len[q->nheld++] = cqe->res;
			}
		}
	}
	if (stale)
		return;
	if (!more)
		q->recv_armed = false;
	if (cqe->res == 0)
		q->rx_eof = true;
	else if (cqe->res < 0 && cqe->res != -ENOBUFS)
		q->rx_err = cqe->res;
}

/* Frames and feeds complete packets to the core while there is room for their events. */
static void rx_parse(struct mqttq *q)
{
	u64 now = mq_now_ms();

	while (q->fd >= 0 && q->rx_off < q->rx_len && mq_evq_free(q) > mq_ev_margin(q) &&
	       q->engine != MQTTQ_ENGINE_OFFLOAD) {
		u8 *pkt = q->rx + q->rx_off;
		u32 avail = q->rx_len - q->rx_off;
		int n = mqc_frame_len(pkt, avail, q->o.max_packet_in);

		if (n == 0 || (n > 0 && (u32)n > avail)) {
			if (n > 0 && (u32)n > q->rx_cap) {
				n = -MQC_E_TOO_BIG;
			} else {
				if (q->rx_off && !q->rx_popped && !rx_pinned(q))
					rx_compact(q);
				break;
			}
		}
		if (n < 0) {
			q->st.proto_errors++;
			mq_err(q, n, "malformed packet from broker: %s", mqttq_strerror(n));
			if (q->state == MQ_ST_UP) {
				q->closing = false;
				/* let the core say DISCONNECT with its reason before we drop */
				mqc_input(&q->s, pkt, avail, now);
			}
			mq_reconnect(q, n, 0, false, true);
			return;
		}
		q->rx_off += n;
		if (q->state == MQ_ST_WAIT_CONNACK) {
			on_connack(q, pkt, n);
			continue;
		}
		if ((pkt[0] >> 4) == MQC_DISCONNECT)
			peek_disconnect(q, pkt, n);
		int r = mqc_input(&q->s, pkt, n, now);

		if (r < 0 && !q->closing) {
			q->closing = true;
			q->close_info.err = r;
			q->close_info.reason = 0;
			q->close_info.by_peer = 0;
		}
		if (q->closing) {
			struct mqc_close c = q->close_info;

			if (c.err <= -MQC_E_BASE - 1) {
				q->st.proto_errors++;
				mq_err(q, c.err, "connection ended: %s", mqttq_strerror(c.err));
			}
			/* push the core's DISCONNECT out before the socket goes */
			if (q->tx[q->tx_cur].len && !q->send_inflight)
				send(q->fd, q->tx[q->tx_cur].p, q->tx[q->tx_cur].len,
				     MSG_DONTWAIT | MSG_NOSIGNAL);
			mq_reconnect(q, c.err ? c.err : -ECONNRESET, c.reason, c.by_peer,
					   true);
			return;
		}
	}
}

/* ---- pending queue ------------------------------------------------------ */

void mq_pend_push(struct mqttq *q, struct mq_msg *mm)
{
	mm->next = NULL;
	if (q->pend_tail)
		q->pend_tail->next = mm;
	else
		q->pend_head = mm;
	q->pend_tail = mm;
	q->pend_n++;
	q->pend_bytes += mm->m.len;
	q->st.queued = q->pend_n;
	q->st.queued_bytes = q->pend_bytes;
}

void mq_fail_msg(struct mqttq *q, struct mq_msg *mm, int err)
{
	struct mq_ev *e;

	mq_outbox_done(q, mm);
	if (mm->sync) {
		q->sync_pub_done = 1;
		q->sync_pub_res = err;
	} else {
		e = mq_evq_push(q, MQTTQ_EV_PUBLISHED);
		if (e) {
			e->ev.token = mm->m.token;
			e->ev.err = err;
		}
	}
	mq_msg_put(q, mm);
}

/* Hands queued publishes to the session while the window, the batch and the event queue allow. */
static void pump(struct mqttq *q)
{
	u64 now = 0;

	if (q->engine == MQTTQ_ENGINE_OFFLOAD) {
		mq_off_pump(q);
		return;
	}
	while (q->pend_head && q->state == MQ_ST_UP &&
	       q->tx[q->tx_cur].len < q->tx_soft && mq_evq_free(q) > mq_ev_margin(q)) {
		struct mq_msg *mm = q->pend_head, *next = mm->next;
		u32 len = mm->m.len;
		u8 qos = mm->m.qos;
		int r;

		if (!now)
			now = mq_now_ms();
		mm->in_core = 1;
		if (mm->m.qos)
			q->st.inflight++;
		r = mqc_publish(&q->s, &mm->m, now);
		if (r == -EAGAIN || r == -ENOTCONN) {
			mm->in_core = 0;
			if (mm->m.qos)
				q->st.inflight--;
			break;
		}
		/* QoS 0 completes (and goes back to the pool) inside mqc_publish: use saved fields */
		q->pend_head = next;
		if (!next)
			q->pend_tail = NULL;
		q->pend_n--;
		q->pend_bytes -= len;
		if (r < 0) {
			mm->in_core = 0;
			if (mm->m.qos)
				q->st.inflight--;
			mq_err(q, r, "publish rejected by session limits: %s", mqttq_strerror(r));
			mq_fail_msg(q, mm, r);
		} else if (qos) {
			mq_outbox_pid(q, mm); /* its identifier, for mqc_restore after a crash */
		}
		if (q->closing)
			break;
	}
	q->st.queued = q->pend_n;
	q->st.queued_bytes = q->pend_bytes;
}

/* ---- the loop ----------------------------------------------------------- */

static void on_cqe(struct mqttq *q, struct io_uring_cqe *cqe)
{
	u64 ud = io_uring_cqe_get_data64(cqe);
	int op = ud & 0xf;
	bool stale = (ud >> 8) != (q->gen & 0xffffffffffffffull);

	switch (op) {
	case OP_RECV:
		on_recv(q, cqe, stale);
		break;
	case OP_SEND: {
		int idx = (ud >> 4) & 1;
		struct mq_txbuf *t = &q->tx[idx];

		if (stale || cqe->res <= 0) {
			t->len = t->off = 0;
			q->send_inflight = false;
			if (!stale && cqe->res < 0)
				q->rx_err = cqe->res;
			break;
		}
		q->st.bytes_tx += cqe->res;
		t->off += cqe->res;
		if (t->off < t->len) {
			struct io_uring_sqe *sqe = mq_get_sqe(q);

			if (sqe) {
				io_uring_prep_send(sqe, q->fd, t->p + t->off, t->len - t->off,
						   MSG_NOSIGNAL);
				io_uring_sqe_set_data64(sqe, ud);
				break;
			}
			q->rx_err = -EBUSY;
		}
		t->len = t->off = 0;
		q->send_inflight = false;
		break;
	}
	case OP_CONNECT:
		if (stale)
			break;
		q->connect_inflight = false;
		if (cqe->res < 0) {
			mq_err(q, cqe->res, "connect: %s", strerror(-cqe->res));
			mq_reconnect(q, cqe->res, 0, false, true);
			break;
		}
		q->state = MQ_ST_WAIT_CONNACK;
		if (send_connect(q)) {
			mq_reconnect(q, -EINVAL, 0, false, false);
			break;
		}
		if (q->want_offload) {
			mq_off_arm_peek(q); /* read CONNACK and not a byte more */
		} else {
			/* sockmap mode must start before the first byte arrives */
			if (q->mqf && mqf_set_count(q->filters) &&
			    !(q->filter_flags & MQTTQ_FILTER_DELIVER_UNMATCHED)) {
				int r = mqf_sock_attach(q->mqf, q->fd);

				if (!r) {
					q->mqf_sock = q->fd;
					q->st.filter_in_kernel = 1;
				} else {
					mq_log(q, MQTTQ_LOG_INFO, "sockmap attach: %s", strerror(-r));
				}
			}
			arm_recv(q);
		}
		tx_kick(q);
		break;
	case OP_TIMER:
		q->timer_armed = false;
		break;
	case MQ_OP_PEEK:
	case MQ_OP_OFFSEND:
	case MQ_OP_RECREC:
		mq_off_cqe(q, cqe, op, stale);
		break;
	default:
		break;
	}
}

static u64 next_deadline(struct mqttq *q)
{
	u64 d = ~0ull;

	if (q->state == MQ_ST_UP && q->engine == MQTTQ_ENGINE_USERSPACE)
		d = mqc_deadline(&q->s);
	else if (q->peek_again)
		d = q->peek_at;
	else if (q->state == MQ_ST_CONNECTING || q->state == MQ_ST_WAIT_CONNACK ||
		 q->state == MQ_ST_BACKOFF)
		d = q->state_deadline;
	return d;
}

static void run_timers(struct mqttq *q)
{
	u64 now = mq_now_ms();

	if (q->peek_again && now >= q->peek_at)
		mq_off_arm_peek(q);
	if (q->state == MQ_ST_UP && q->engine == MQTTQ_ENGINE_USERSPACE &&
	    mqc_deadline(&q->s) <= now) {
		mqc_tick(&q->s, now);
		if (q->closing) {
			struct mqc_close c = q->close_info;

			if (c.err == -MQC_E_KEEPALIVE)
				mq_err(q, c.err, "keepalive: no answer from the broker");
			mq_reconnect(q, c.err ? c.err : -ETIMEDOUT, c.reason, c.by_peer, true);
		}
	} else if ((q->state == MQ_ST_CONNECTING || q->state == MQ_ST_WAIT_CONNACK) &&
		   now >= q->state_deadline) {
		mq_err(q, -ETIMEDOUT, "no CONNACK within %u ms", q->o.connect_timeout_ms);
		mq_reconnect(q, -ETIMEDOUT, 0, false, true);
	} else if (q->state == MQ_ST_BACKOFF && now >= q->state_deadline) {
		int r = start_connect(q);

		if (r)
			mq_reconnect(q, r, 0, false, true);
	}
}

/* Keeps an io_uring timeout armed for the next deadline so mqttq_fd() wakes for timers. */
static void arm_timer(struct mqttq *q, u64 at)
{
	struct io_uring_sqe *sqe;
	u64 now = mq_now_ms(), d;

	if (at == ~0ull || (q->timer_armed && q->timer_at <= at))
		return;
	sqe = mq_get_sqe(q);
	if (!sqe)
		return;
	d = at > now ? at - now : 0;
	q->timer_ts.tv_sec = d / 1000;
	q->timer_ts.tv_nsec = (d % 1000) * 1000000;
	if (q->timer_armed)
		io_uring_prep_timeout_update(sqe, &q->timer_ts, UD_TIMER, 0);
	else
		io_uring_prep_timeout(sqe, &q->timer_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, q->timer_armed ? (u64)OP_IGNORE : UD_TIMER);
	q->timer_armed = true;
	q->timer_at = at;
}

static void reap(struct mqttq *q)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&q->ring, head, cqe) {
		on_cqe(q, cqe);
		n++;
	}
	io_uring_cq_advance(&q->ring, n);
}

/* After CQEs: parse, handle transport loss, feed the session, send. */
static void progress(struct mqttq *q)
{
	if (q->closing && q->fd >= 0) {
		struct mqc_close c = q->close_info;

		mq_reconnect(q, c.err ? c.err : -ECONNRESET, c.reason, c.by_peer, true);
	}
	rx_compact(q);
	rx_unhold(q);
	rx_parse(q);
	mq_off_progress(q);
	if (q->fd >= 0 && !q->nheld && (q->rx_eof || q->rx_err) &&
	    (q->state == MQ_ST_UP || q->state == MQ_ST_WAIT_CONNACK)) {
		int err = q->rx_err ? q->rx_err : -ECONNRESET;

		mq_err(q, err, "connection lost: %s", strerror(-err));
		mq_reconnect(q, err, 0, false, true);
	}
	if (q->state == MQ_ST_UP && q->engine == MQTTQ_ENGINE_USERSPACE && !q->recv_armed &&
	    !q->nheld)
		arm_recv(q);
	pump(q);
	tx_kick(q);
}

typedef bool (*stop_fn)(struct mqttq *q);

/* Runs the client until stop() or timeout_ms (-1 forever) elapses. */
static int run(struct mqttq *q, int timeout_ms, stop_fn stop)
{
	u64 end = timeout_ms < 0 ? ~0ull : mq_now_ms() + timeout_ms;
	bool entered = false;

	if (q->ring_disabled) /* never connected: nothing can arrive */
		return stop(q) ? 0 : -ETIMEDOUT;
	for (;;) {
		struct __kernel_timespec ts;
		struct io_uring_cqe *cqe;
		unsigned int wait_nr;
		u64 now, d;
		int r;

		reap(q);
		run_timers(q);
		progress(q);
		if (stop(q))
			return 0;
		now = mq_now_ms();
		if (now >= end) {
			q->st.enters++;
			if (q->ring_deferred && !entered) {
				/* deferred completions only run inside the kernel: one pass for them */
				io_uring_submit_and_get_events(&q->ring);
				entered = true;
				continue;
			}
			io_uring_submit(&q->ring);
			return -ETIMEDOUT;
		}
		d = next_deadline(q);
		arm_timer(q, d);
		if (d > end)
			d = end;
		d = d > now ? d - now : 0;
		ts.tv_sec = d / 1000;
		ts.tv_nsec = (d % 1000) * 1000000;
		/*
		 * Holding a batch for acks: each receive completion carries at
		 * least one ack, so sleep until enough completions could have
		 * freed the window instead of waking for every one; the short
		 * timeout covers acks arriving coalesced in fewer completions.
		 */
		wait_nr = 1;
		if (q->hold_need > 1 && q->tx[q->tx_cur].len && q->send_inflight == false) {
			/* 8 and 200 us measured best against mosquitto (bench/lib) */
			wait_nr = q->hold_need > 8 ? 8 : q->hold_need;
			if (d > 1) {
				ts.tv_sec = 0;
				ts.tv_nsec = 200000;
			}
		}
		q->st.enters++;
		q->st.waits++;
		r = io_uring_submit_and_wait_timeout(&q->ring, &cqe, wait_nr, &ts, NULL);
		entered = true;
		if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			return mq_err(q, r, "io_uring: %s", strerror(-r));
	}
}

/* ---- lifecycle ---------------------------------------------------------- */

MQ_API void mqttq_opts_init(struct mqttq_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->host = "127.0.0.1";
	o->port = 1883;
	o->version = MQTTQ_V5;
	o->clean = 1;
	o->keepalive_s = 60;
	o->window = 20;
	o->receive_max = 65535;
	o->max_packet_in = 1 << 20;
	o->queue_max_msgs = 4096;
	o->queue_max_bytes = 16 << 20;
	o->reconnect_min_ms = 100;
	o->reconnect_max_ms = 30000;
	o->connect_timeout_ms = 10000;
	o->topic_alias_max = 16;
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int check_opts(const struct mqttq_opts *o)
{
	if (o->version != MQTTQ_V311 && o->version != MQTTQ_V5)
		return mq_err(NULL, -EINVAL, "version must be 4 (3.1.1) or 5");
	if (!o->window || !o->receive_max)
		return mq_err(NULL, -EINVAL, "window and receive_max must be at least 1");
	if (o->max_packet_in && o->max_packet_in < 128)
		return mq_err(NULL, -EINVAL, "max_packet_in below 128 bytes");
	if (o->nurls > MQ_MAX_URLS)
		return mq_err(NULL, -EINVAL, "at most %d broker URLs", MQ_MAX_URLS);
	if (o->reconnect_min_ms == 0 || o->reconnect_max_ms < o->reconnect_min_ms)
		return mq_err(NULL, -EINVAL, "reconnect bounds: need 0 < min <= max");
	if (o->will) {
		if (!o->will->topic || o->will->qos < 0 || o->will->qos > 2 ||
		    mqc_topic_check((const u8 *)o->will->topic, strlen(o->will->topic), false))
			return mq_err(NULL, -EINVAL, "invalid will topic or QoS");
	}
	if (o->client_id && mqc_utf8_check((const u8 *)o->client_id, strlen(o->client_id)))
		return mq_err(NULL, -EINVAL, "client id is not valid UTF-8");
	if (o->overflow != MQTTQ_OVERFLOW_REJECT && o->overflow != MQTTQ_OVERFLOW_DROP_QOS0)
		return mq_err(NULL, -EINVAL, "unknown overflow policy");
	if (o->outbox_path && !*o->outbox_path)
		return mq_err(NULL, -EINVAL, "empty outbox path");
	return 0;
}

MQ_API int mqttq_new(struct mqttq **out, const struct mqttq_opts *o)
{
	struct io_uring_buf_reg reg;
	struct mqttq *q;
	const char *env;
	int r;

	if (!out || !o)
		return mq_err(NULL, -EINVAL, "NULL argument");
	*out = NULL;
	r = check_opts(o);
	if (r)
		return r;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->o = *o;
	q->fd = -1;
	q->ob_fd = -1;
	q->ob_path_arg = o->outbox_path;
	q->mqf_sock = -1;
	q->debug = getenv("MQTTQ_DEBUG") != NULL;
	if (!q->o.max_packet_in)
		q->o.max_packet_in = 1 << 20;
	q->o.will = NULL;
	r = -ENOMEM;
	if (o->nurls) {
		for (unsigned int i = 0; i < o->nurls; i++) {
			r = mq_parse_url(o->urls[i], &q->urls[i]);
			if (r) {
				mq_err(NULL, r, "bad broker URL '%s'", o->urls[i]);
				goto err_free;
			}
		}
		q->nurls = o->nurls;
	} else {
		snprintf(q->urls[0].host, sizeof(q->urls[0].host), "%s",
			 o->host ? o->host : "127.0.0.1");
		snprintf(q->urls[0].port, sizeof(q->urls[0].port), "%u", o->port ? o->port : 1883);
		q->nurls = 1;
	}
	env = getenv("MQTTQ_OFFLOAD");
	if (q->o.offload == MQTTQ_OFFLOAD_DEFAULT && env) {
		if (!strcmp(env, "on"))
			q->o.offload = MQTTQ_OFFLOAD_ON;
		else if (!strcmp(env, "off"))
			q->o.offload = MQTTQ_OFFLOAD_OFF;
		else if (!strcmp(env, "auto"))
			q->o.offload = MQTTQ_OFFLOAD_AUTO;
		else {
			r = mq_err(NULL, -EINVAL, "MQTTQ_OFFLOAD must be auto, on or off");
			goto err_free;
		}
	}
	r = -ENOMEM;
	q->rand_state = (u32)mq_now_ms() ^ (u32)getpid() * 2654435761u ^ (u32)(uintptr_t)q;
	if (o->client_id && *o->client_id) {
		q->client_id = strdup(o->client_id);
	} else if (o->version == MQTTQ_V311) {
		q->client_id = malloc(32);
		if (q->client_id)
			snprintf(q->client_id, 32, "mqttq-%x-%08x", getpid(), mq_rand(q));
	} else {
		q->client_id = strdup("");
	}
	q->username = dup_str(o->username);
	if (o->password) {
		q->password = malloc(o->password_len ? o->password_len : 1);
		if (q->password)
			memcpy(q->password, o->password, o->password_len);
	}
	if (!q->client_id || (o->username && !q->username) || (o->password && !q->password))
		goto err_free;
	if (o->will) {
		struct mqttq_will *w = calloc(1, sizeof(*w));
		struct mqttq_pub_props *wp = NULL;

		if (!w)
			goto err_free;
		*w = *o->will;
		w->topic = strdup(o->will->topic);
		if (o->will->payload_len) {
			void *pl = malloc(o->will->payload_len);

			if (pl)
				memcpy(pl, o->will->payload, o->will->payload_len);
			w->payload = pl;
		}
		if (o->will->props) {
			wp = calloc(1, sizeof(*wp));
			if (wp) {
				*wp = *o->will->props;
				wp->content_type = dup_str(o->will->props->content_type);
				wp->response_topic = dup_str(o->will->props->response_topic);
				if (o->will->props->correlation_data) {
					void *cd = malloc(o->will->props->correlation_len + 1);

					if (cd)
						memcpy(cd, o->will->props->correlation_data,
						       o->will->props->correlation_len);
					wp->correlation_data = cd;
				}
				wp->user = NULL;
				wp->nuser = 0;
			}
		}
		w->props = wp;
		q->o.will = w;
	}
	q->o.urls = NULL;
	q->o.host = NULL;
	q->o.client_id = NULL;
	q->o.username = NULL;
	q->o.password = NULL;
	q->o.outbox_path = NULL;
	q->backoff_ms = q->o.reconnect_min_ms;

	/* pools and tables: everything the steady state needs is allocated here */
	q->nmsgs = q->o.window + q->o.queue_max_msgs + 16;
	q->mem_cap = 2 * q->o.queue_max_bytes + (u64)q->o.window * 4096;
	r = mq_pool_init(q);
	if (r)
		goto err_free;
	q->evq_cap = 2u * q->o.window + 1024;
	q->evq = calloc(q->evq_cap, sizeof(*q->evq));
	q->slots = calloc(q->o.window, sizeof(*q->slots));
	q->in2 = calloc(1, MQC_IN2_BYTES);
	q->ackq = calloc(q->o.receive_max, sizeof(u16));
	q->rbuf_size = 16384;
	q->rbuf_count = 32;
	q->rx_cap = q->o.max_packet_in + q->rbuf_size;
	q->rx = malloc(q->rx_cap);
	q->held_bid = calloc(q->rbuf_count, sizeof(*q->held_bid));
	q->held_len = calloc(q->rbuf_count, sizeof(*q->held_len));
	q->rbufs = malloc((size_t)q->rbuf_size * q->rbuf_count);
	q->tx_soft = 64 * 1024;
	for (int i = 0; i < 2; i++) {
		q->tx[i].cap = 2 * q->tx_soft;
		q->tx[i].p = malloc(q->tx[i].cap);
		if (!q->tx[i].p)
			goto err_free;
	}
	q->filters = mqf_set_new();
	if (mq_off_init(q))
		goto err_free;
	if (!q->evq || !q->slots || !q->in2 || !q->ackq || !q->rx || !q->held_bid ||
	    !q->held_len || !q->rbufs || !q->filters)
		goto err_free;

	struct mqc_config cfg = {
		.version = q->o.version,
		.ack_policy = MQC_ACK_ON_RECEIPT,
		.keepalive_s = q->o.keepalive_s,
		.window = q->o.window,
		.recv_max = q->o.receive_max,
		.max_packet_in = q->o.max_packet_in,
		.retry_ms = q->o.retry_ms,
	};
	r = mqc_session_init(&q->s, &cfg, &core_ops, q, q->slots, q->in2, q->ackq);
	if (r) {
		mq_err(NULL, r, "session init: %s", mqttq_strerror(r));
		goto err_free;
	}
	if (q->ob_path_arg) {
		r = mq_outbox_open(q);
		q->ob_path_arg = NULL;
		if (r)
			goto err_free;
	}

	/*
	 * DEFER_TASKRUN: completions are processed only when we wait for
	 * them, so a burst of acks costs one wakeup, not one each. It needs a
	 * single submitting thread: the ring starts disabled and is bound to
	 * the thread of the first mqttq_connect(). COOP_TASKRUN is the
	 * fallback for older kernels or MQTTQ_OPT_ANY_THREAD.
	 */
	r = -EINVAL;
	if (!(q->o.flags & MQTTQ_OPT_ANY_THREAD)) {
		r = io_uring_queue_init(256, &q->ring,
					IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
						IORING_SETUP_R_DISABLED);
		if (!r)
			q->ring_deferred = q->ring_disabled = true;
	}
	if (r == -EINVAL)
		r = io_uring_queue_init(256, &q->ring, IORING_SETUP_COOP_TASKRUN);
	if (r == -EINVAL)
		r = io_uring_queue_init(256, &q->ring, 0);
	if (r) {
		mq_err(NULL, r, "io_uring_queue_init: %s", strerror(-r));
		goto err_free;
	}
	q->ring_ok = true;
	q->br_len = q->rbuf_count * sizeof(struct io_uring_buf);
	q->br = mmap(NULL, q->br_len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (q->br == MAP_FAILED) {
		q->br = NULL;
		r = -ENOMEM;
		goto err_free;
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)q->br;
	reg.ring_entries = q->rbuf_count;
	reg.bgid = BGID;
	r = io_uring_register_buf_ring(&q->ring, &reg, 0);
	if (r) {
		mq_err(NULL, r, "io_uring_register_buf_ring: %s (kernel 5.19+ needed)",
		       strerror(-r));
		goto err_free;
	}
	io_uring_buf_ring_init(q->br);
	for (u32 i = 0; i < q->rbuf_count; i++)
		io_uring_buf_ring_add(q->br, q->rbufs + (size_t)i * q->rbuf_size, q->rbuf_size, i,
				      io_uring_buf_ring_mask(q->rbuf_count), i);
	io_uring_buf_ring_advance(q->br, q->rbuf_count);
	*out = q;
	return 0;

err_free:
	if (r == -ENOMEM)
		mq_err(NULL, r, "out of memory");
	mqttq_destroy(q);
	return r;
}

static void mq_dump(struct mqttq *q, const char *when)
{
	mq_log(q, MQTTQ_LOG_DEBUG,
	       "%s: state %d fd %d recv_armed %d send_inflight %d tx %u/%u rx %u/%u held %u "
	       "evq %u inflight %llu queued %u in_unacked %u",
	       when,	       q->state, q->fd, q->recv_armed, q->send_inflight, q->tx[0].len, q->tx[1].len,
	       q->rx_off, q->rx_len, q->nheld, q->evq_len, (unsigned long long)q->st.inflight,
	       q->pend_n, q->s.in_unacked);
}

MQ_API void mqttq_destroy(struct mqttq *q)
{
	if (!q)
		return;
	mq_dump(q, "destroy");
	if (q->fd >= 0) {
		shutdown(q->fd, SHUT_RDWR);
		close(q->fd);
	}
	if (q->ring_ok)
		io_uring_queue_exit(&q->ring);
	if (q->br)
		munmap(q->br, q->br_len);
	if (q->o.will) {
		struct mqttq_will *w = (struct mqttq_will *)q->o.will;

		free((void *)w->topic);
		free((void *)w->payload);
		if (w->props) {
			free((void *)w->props->content_type);
			free((void *)w->props->response_topic);
			free((void *)w->props->correlation_data);
			free((void *)w->props);
		}
		free(w);
	}
	for (int i = 0; i < MQ_ALIAS_SLOTS; i++)
		free(q->alias[i].topic);
	mq_outbox_close(q);
	mq_pool_fini(q);
	mq_off_fini(q);
	if (q->mqf)
		mqf_close(q->mqf);
	mqf_set_free(q->filters);
	free(q->tx[0].p);
	free(q->tx[1].p);
	free(q->rbufs);
	free(q->held_bid);
	free(q->held_len);
	free(q->rx);
	free(q->ackq);
	free(q->in2);
	free(q->slots);
	free(q->evq);
	free(q->client_id);
	free(q->username);
	free(q->password);
	free(q);
}

int mq_offload_probe(struct mqttq *q);

int mq_offload_probe(struct mqttq *q)
{
	bool loaded = access("/sys/module/mqttq", F_OK) == 0;

	if (q->o.offload == MQTTQ_OFFLOAD_ON && !loaded)
		return mq_err(q, -ENOPROTOOPT,
			      "offload required (MQTTQ_OFFLOAD=on) but mqttq.ko is not loaded; "
			      "run 'modprobe mqttq' or use MQTTQ_OFFLOAD=auto");
	q->want_offload = loaded && q->o.offload != MQTTQ_OFFLOAD_OFF;
	return 0;
}

MQ_API int mqttq_connect(struct mqttq *q)
{
	int r;

	if (!q)
		return -EINVAL;
	if (q->state != MQ_ST_IDLE && q->state != MQ_ST_CLOSED)
		return mq_err(q, -EALREADY, "already connecting or connected");
	r = mq_offload_probe(q);
	if (r)
		return r;
	if (q->ring_disabled) {
		/* liburing 2.3 declares io_uring_enable_rings() but does not export it */
		r = syscall(__NR_io_uring_register, q->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
			    NULL, 0);
		if (r)
			return mq_err(q, -errno, "enabling the io_uring: %s", strerror(errno));
		q->ring_disabled = false;
	}
	q->backoff_ms = q->o.reconnect_min_ms;
	r = start_connect(q);
	if (r) {
		if (q->o.no_reconnect)
			return r;
		mq_reconnect(q, r, 0, false, true);
	}
	return 0;
}

static bool stop_connected(struct mqttq *q)
{
	return q->state == MQ_ST_UP || q->state == MQ_ST_CLOSED ||
	       (q->state == MQ_ST_BACKOFF && q->errmsg[0]);
}

MQ_API int mqttq_connect_sync(struct mqttq *q, int timeout_ms)
{
	int r;

	if (!q)
		return -EINVAL;
	q->errmsg[0] = 0;
	r = mqttq_connect(q);
	if (r)
		return r;
	r = run(q, timeout_ms, stop_connected);
	if (q->state == MQ_ST_UP)
		return 0;
	if (r == -ETIMEDOUT)
		return mq_err(q, -ETIMEDOUT, "no connection within %d ms", timeout_ms);
	/* the failure's DISCONNECTED event stays queued for mqttq_wait() */
	for (u32 i = 0; i < q->evq_len; i++) {
		struct mq_ev *e = &q->evq[(q->evq_head + i) % q->evq_cap];

		if (e->ev.type == MQTTQ_EV_DISCONNECTED)
			return e->ev.err ? e->ev.err : -ECONNREFUSED;
	}
	return -ECONNREFUSED;
}

static bool stop_tx_drained(struct mqttq *q)
{
	return q->fd < 0 || (!q->send_inflight && !q->tx[q->tx_cur].len);
}

MQ_API int mqttq_disconnect(struct mqttq *q, uint8_t reason)
{
	if (!q)
		return -EINVAL;
	mq_dump(q, "disconnect");
	if (q->state == MQ_ST_UP) {
		pump(q);
		if (q->engine == MQTTQ_ENGINE_OFFLOAD) {
			mq_off_disconnect(q, reason);
		} else {
			mqc_disconnect(&q->s, reason, mq_now_ms());
			tx_kick(q);
			run(q, 2000, stop_tx_drained);
		}
	}
	q->state = MQ_ST_CLOSED;
	conn_drop(q);
	return 0;
}

/* ---- publish ------------------------------------------------------------ */

static int check_pub_props(struct mqttq *q, const struct mqttq_pub_props *p)
{
	if (!p)
		return 0;
	if (p->content_type &&
	    mqc_utf8_check((const u8 *)p->content_type, strlen(p->content_type)))
		return mq_err(q, -EINVAL, "content type is not valid UTF-8");
	if (p->response_topic &&
	    mqc_topic_check((const u8 *)p->response_topic, strlen(p->response_topic), false))
		return mq_err(q, -EINVAL, "response topic invalid (UTF-8, empty or wildcard)");
	if (p->has_payload_format && p->payload_format > 1)
		return mq_err(q, -EINVAL, "payload format must be 0 or 1");
	if (p->nuser > 64)
		return mq_err(q, -EINVAL, "at most 64 user properties");
	for (unsigned int i = 0; i < p->nuser; i++) {
		const struct mqttq_user_prop *u = &p->user[i];

		if (!u->name || !u->value || mqc_utf8_check((const u8 *)u->name, strlen(u->name)) ||
		    mqc_utf8_check((const u8 *)u->value, strlen(u->value)))
			return mq_err(q, -EINVAL, "user property %u invalid", i);
	}
	return 0;
}

/* Frees room in a full queue by the configured policy: 0 when there is room now. */
static int make_room(struct mqttq *q, u32 len)
{
	struct mq_msg *prev = NULL, *mm;

	while (q->pend_n >= q->o.queue_max_msgs || q->pend_bytes + len > q->o.queue_max_bytes) {
		if (q->o.overflow != MQTTQ_OVERFLOW_DROP_QOS0 || !mq_evq_free(q))
			return -ENOBUFS;
		for (prev = NULL, mm = q->pend_head; mm && mm->m.qos; prev = mm, mm = mm->next)
			;
		if (!mm)
			return -ENOBUFS;
		if (prev)
			prev->next = mm->next;
		else
			q->pend_head = mm->next;
		if (q->pend_tail == mm)
			q->pend_tail = prev;
		q->pend_n--;
		q->pend_bytes -= mm->m.len;
		q->st.dropped++;
		mq_fail_msg(q, mm, -ENOBUFS);
	}
	return 0;
}

/* Width of the remaining-length field of a packet whose total length is n. */
static u32 varint_width(u32 n)
{
	if (n - 2 <= 127)
		return 1;
	if (n - 3 <= 16383)
		return 2;
	if (n - 4 <= 2097151)
		return 3;
	return 4;
}

static int publish(struct mqttq *q, const char *topic, const void *payload, size_t len, int qos,
		   unsigned int flags, const struct mqttq_pub_props *props, uint64_t token,
		   bool sync)
{
	struct mqc_user_prop up[64];
	struct mqc_props pp;
	struct mqc_pub p;
	struct mq_msg *mm;
	size_t tlen;
	int n, r;
	u32 pid_off = 0;

	if (!q || !topic || (len && !payload))
		return -EINVAL;
	if (q->state == MQ_ST_CLOSED && q->st.connects)
		return mq_err(q, -ESHUTDOWN, "client disconnected");
	if (qos < 0 || qos > 2)
		return mq_err(q, -EINVAL, "QoS %d is not 0, 1 or 2", qos);
	tlen = strlen(topic);
	if (tlen > 65535)
		return mq_err(q, -EINVAL, "topic longer than 65535 bytes");
	r = mqc_topic_check((const u8 *)topic, tlen, false);
	if (r)
		return mq_err(q, -EINVAL, "invalid topic: %s", mqttq_strerror(r));
	if (len > 268435455)
		return mq_err(q, -EMSGSIZE, "payload over the protocol maximum");
	r = check_pub_props(q, props);
	if (r)
		return r;
	if (q->st.connects) {
		if (qos > q->lim.max_qos)
			return mq_err(q, -ENOTSUP, "QoS %d over the server's Maximum QoS %d", qos,
				      q->lim.max_qos);
		if ((flags & MQTTQ_RETAIN) && !q->lim.retain_available)
			return mq_err(q, -ENOTSUP, "server has no Retain Available");
	}
	memset(&p, 0, sizeof(p));
	p.topic.p = (const u8 *)topic;
	p.topic.len = tlen;
	p.payload.p = payload;
	p.payload.len = len;
	p.qos = qos;
	p.retain = !!(flags & MQTTQ_RETAIN);
	p.pid = qos ? 1 : 0;
	if (q->o.version == MQC_V5 && props) {
		fill_pub_props(&pp, props);
		p.props = &pp;
		for (unsigned int i = 0; i < props->nuser; i++) {
			up[i].name.p = (const u8 *)props->user[i].name;
			up[i].name.len = strlen(props->user[i].name);
			up[i].value.p = (const u8 *)props->user[i].value;
			up[i].value.len = strlen(props->user[i].value);
		}
		p.user = up;
		p.nuser = props->nuser;
	}
	n = mqc_publish_size(q->o.version, &p);
	if (n < 0)
		return mq_err(q, n == -EINVAL ? -EINVAL : n, "cannot encode PUBLISH: %s",
			      mqttq_strerror(n));
	if (q->lim.max_packet_size && (u32)n > q->lim.max_packet_size)
		return mq_err(q, -EMSGSIZE, "PUBLISH of %d bytes over the server's maximum %u", n,
			      q->lim.max_packet_size);
	if ((u64)n > q->o.queue_max_bytes)
		return mq_err(q, -EMSGSIZE, "PUBLISH of %d bytes over queue_max_bytes", n);
	r = make_room(q, n);
	if (r) {
		q->st.rejected++;
		return mq_err(q, r, "offline queue full (%u messages, %llu bytes)", q->pend_n,
			      (unsigned long long)q->pend_bytes);
	}
	mm = mq_msg_get(q, n);
	if (!mm) {
		q->st.rejected++;
		return mq_err(q, -ENOBUFS, "message pool exhausted");
	}
	n = mqc_encode_publish(q->o.version, &p, mm->buf, mm->cap, &pid_off);
	if (n < 0) {
		mq_msg_put(q, mm);
		return mq_err(q, n, "cannot encode PUBLISH: %s", mqttq_strerror(n));
	}
	memset(&mm->m, 0, sizeof(mm->m));
	mm->m.buf = mm->buf;
	mm->m.len = n;
	mm->m.pid_off = pid_off;
	mm->m.token = token;
	mm->m.qos = qos;
	mm->sync = sync;
	mm->aliasable = q->o.version == MQC_V5 && !props && !(flags & MQTTQ_NO_ALIAS);
	mm->payload_len = len;
	mm->payload_off = n - len;
	mm->topic_len = tlen;
	/* fixed header byte + remaining-length varint + 2-byte topic length */
	mm->topic_off = 1 + varint_width(n) + 2;
	/* where the v5 property block's contents sit, for the offload engine's iovec */
	mm->props_off = mm->payload_off;
	mm->props_len = 0;
	if (q->o.version == MQC_V5) {
		u32 at = mm->topic_off + tlen + (qos ? 2 : 0), plen = 0;
		int w = mqc_varint_get(mm->buf + at, mm->payload_off - at, &plen);

		/* the core just encoded this block: a bad length here is our bug */
		if (w < 0) {
			mq_msg_put(q, mm);
			return mq_err(q, w, "internal: PUBLISH property length");
		}
		mm->props_off = at + w;
		mm->props_len = plen;
	}
	r = mq_outbox_add(q, mm);
	if (r) {
		mq_msg_put(q, mm);
		return mq_err(q, r, "outbox append: %s", strerror(-r));
	}
	q->st.published++;
	mq_pend_push(q, mm);
	pump(q);
	return 0;
}

MQ_API int mqttq_publish(struct mqttq *q, const char *topic, const void *payload, size_t len,
			 int qos, unsigned int flags, const struct mqttq_pub_props *props,
			 uint64_t token)
{
	return publish(q, topic, payload, len, qos, flags, props, token, false);
}

MQ_API int mqttq_flush(struct mqttq *q)
{
	int r;

	if (!q)
		return -EINVAL;
	pump(q);
	tx_kick(q);
	if (q->ring_disabled)
		return 0;
	q->st.enters++;
	r = io_uring_submit(&q->ring);
	return r < 0 ? r : 0;
}

static bool stop_pub(struct mqttq *q)
{
	return q->sync_pub_done;
}

MQ_API int mqttq_publish_sync(struct mqttq *q, const char *topic, const void *payload, size_t len,
			      int qos, unsigned int flags, const struct mqttq_pub_props *props,
			      int timeout_ms)
{
	int r;

	if (!q)
		return -EINVAL;
	if (q->sync_pub_done < 0)
		return -EBUSY;
	q->sync_pub_done = 0;
	r = publish(q, topic, payload, len, qos, flags, props, 0, true);
	if (r)
		return r;
	q->rx_popped = false;
	r = run(q, timeout_ms, stop_pub);
	if (!q->sync_pub_done) {
		/* still accepted: its completion will surface as an ordinary event */
		for (u32 i = 0; i < q->nmsgs; i++)
			if (q->msgs[i].buf && q->msgs[i].sync)
				q->msgs[i].sync = 0;
		return mq_err(q, -ETIMEDOUT, "publish not completed within %d ms", timeout_ms);
	}
	q->sync_pub_done = 0;
	return q->sync_pub_res;
}

/* ---- subscribe ---------------------------------------------------------- */

struct mq_req *mq_req_new(struct mqttq *q)
{
	for (int i = 0; i < MQ_MAX_REQ; i++)
		if (!q->req[i].core_token) {
			q->req[i].core_token = ++q->req_seq;
			return &q->req[i];
		}
	return NULL;
}

static int subscribe(struct mqttq *q, const struct mqttq_sub *subs, unsigned int n,
		     uint32_t sub_id, uint64_t token, bool sync, bool unsub,
		     const char *const *filters)
{
	struct mqc_sub cs[MQC_MAX_TOPICS];
	struct mq_req *rq;
	int r;

	if (!q || !n || n > MQC_MAX_TOPICS || (!unsub && !subs) || (unsub && !filters))
		return mq_err(q, -EINVAL, "need 1..64 filters");
	if (q->state != MQ_ST_UP)
		return mq_err(q, -ENOTCONN, "not connected");
	if (sub_id > 268435455)
		return mq_err(q, -EINVAL, "subscription identifier over 268435455");
	if (sub_id && (q->o.version != MQC_V5 || !q->lim.sub_id_available))
		return mq_err(q, -ENOTSUP, "server has no subscription identifiers");
	for (unsigned int i = 0; i < n; i++) {
		const char *f = unsub ? filters[i] : subs[i].filter;
		size_t fl;

		if (!f)
			return mq_err(q, -EINVAL, "filter %u is NULL", i);
		fl = strlen(f);
		if (!fl || fl > 65535 || !mqf_filter_valid(f, fl) ||
		    mqc_utf8_check((const u8 *)f, fl))
			return mq_err(q, -EINVAL, "invalid topic filter '%s'", f);
		cs[i].filter = (const u8 *)f;
		cs[i].filter_len = fl;
		cs[i].options = 0;
		if (!unsub) {
			const struct mqttq_sub *s = &subs[i];

			if (s->qos > 2 || s->retain_handling > 2 || s->no_local > 1 ||
			    s->retain_as_published > 1)
				return mq_err(q, -EINVAL, "filter %u: bad QoS or option", i);
			cs[i].options = s->qos;
			if (q->o.version == MQC_V5)
				cs[i].options |= s->no_local << 2 | s->retain_as_published << 3 |
						 s->retain_handling << 4;
		}
	}
	rq = mq_req_new(q);
	if (!rq)
		return mq_err(q, -EBUSY, "too many (un)subscribe requests in flight");
	rq->user_token = token;
	rq->unsub = unsub;
	rq->sync = sync;
	rq->n = n;
	if (q->engine == MQTTQ_ENGINE_OFFLOAD)
		r = mq_off_subscribe(q, cs, n, sub_id, rq->core_token, unsub);
	else if (unsub)
		r = mqc_unsubscribe(&q->s, cs, n, rq->core_token, mq_now_ms());
	else
		r = mqc_subscribe(&q->s, cs, n, sub_id, rq->core_token, mq_now_ms());
	if (r < 0) {
		rq->core_token = 0;
		if (r == -EAGAIN)
			r = -EBUSY;
		return mq_err(q, r, "(un)subscribe: %s", mqttq_strerror(r));
	}
	return 0;
}

MQ_API int mqttq_subscribe(struct mqttq *q, const struct mqttq_sub *subs, unsigned int n,
			   uint32_t sub_id, uint64_t token)
{
	return subscribe(q, subs, n, sub_id, token, false, false, NULL);
}

MQ_API int mqttq_unsubscribe(struct mqttq *q, const char *const *filters, unsigned int n,
			     uint64_t token)
{
	return subscribe(q, NULL, n, 0, token, false, true, filters);
}

static bool stop_sub(struct mqttq *q)
{
	return q->sync_sub_done || q->state != MQ_ST_UP;
}

static int sub_sync(struct mqttq *q, const struct mqttq_sub *subs, unsigned int n, uint32_t sub_id,
		    const char *const *filters, uint8_t *codes, int timeout_ms)
{
	int r;

	q->sync_sub_done = 0;
	q->sync_codes = codes;
	r = subscribe(q, subs, n, sub_id, 0, true, filters != NULL, filters);
	if (r)
		return r;
	q->rx_popped = false;
	run(q, timeout_ms, stop_sub);
	q->sync_codes = NULL;
	if (!q->sync_sub_done) {
		for (int i = 0; i < MQ_MAX_REQ; i++)
			q->req[i].sync = 0;
		return q->state != MQ_ST_UP ? mq_err(q, -ENOTCONN, "connection lost") :
					      mq_err(q, -ETIMEDOUT, "no SUBACK in %d ms", timeout_ms);
	}
	return 0;
}

MQ_API int mqttq_subscribe_sync(struct mqttq *q, const struct mqttq_sub *subs, unsigned int n,
				uint32_t sub_id, uint8_t *codes, int timeout_ms)
{
	if (!q || !subs)
		return -EINVAL;
	return sub_sync(q, subs, n, sub_id, NULL, codes, timeout_ms);
}

MQ_API int mqttq_unsubscribe_sync(struct mqttq *q, const char *const *filters, unsigned int n,
				  uint8_t *codes, int timeout_ms)
{
	if (!q || !filters)
		return -EINVAL;
	return sub_sync(q, NULL, n, 0, filters, codes, timeout_ms);
}

/* ---- events out --------------------------------------------------------- */

static bool stop_events(struct mqttq *q)
{
	return q->evq_len > 0;
}

MQ_API int mqttq_wait(struct mqttq *q, struct mqttq_event *ev, unsigned int max, int timeout_ms)
{
	unsigned int n = 0;
	int r;

	if (!q || !ev || !max)
		return -EINVAL;
	q->rx_popped = false;
	r = run(q, q->evq_len ? 0 : timeout_ms, stop_events);
	if (r && r != -ETIMEDOUT)
		return r;
	while (n < max && q->evq_len) {
		struct mq_ev *e = &q->evq[q->evq_head];

		ev[n++] = e->ev;
		if (e->in_rx)
			q->rx_popped = true;
		e->in_rx = 0;
		q->evq_head = (q->evq_head + 1) % q->evq_cap;
		q->evq_len--;
	}
	/* room was made: let queued work move before the caller comes back */
	pump(q);
	tx_kick(q);
	mq_outbox_sync(q, false);
	if (io_uring_sq_ready(&q->ring) && !q->ring_disabled) {
		q->st.enters++;
		io_uring_submit(&q->ring);
	}
	return n;
}

MQ_API int mqttq_user_prop_next(const struct mqttq_message *m, size_t *cursor, const char **name,
				size_t *name_len, const char **value, size_t *value_len)
{
	struct mqc_str cur;
	struct mqc_prop pr;
	int r;

	if (!m || !cursor)
		return -EINVAL;
	for (;;) {
		if (*cursor >= m->props.raw_len)
			return 0;
		cur.p = (const u8 *)m->props.raw + *cursor;
		cur.len = m->props.raw_len - *cursor;
		r = mqc_prop_next(&cur, &pr);
		if (r <= 0)
			return r;
		*cursor = m->props.raw_len - cur.len;
		if (pr.id == MQC_P_USER_PROPERTY) {
			*name = (const char *)pr.str.p;
			*name_len = pr.str.len;
			*value = (const char *)pr.str2.p;
			*value_len = pr.str2.len;
			return 1;
		}
	}
}

MQ_API int mqttq_fd(const struct mqttq *q)
{
	return q ? q->ring.ring_fd : -EINVAL;
}

MQ_API int mqttq_next_timeout_ms(struct mqttq *q)
{
	u64 d, now;

	if (!q)
		return -EINVAL;
	if (q->evq_len || q->pend_head || q->tx[q->tx_cur].len)
		return 0;
	d = next_deadline(q);
	if (d == ~0ull)
		return -1;
	now = mq_now_ms();
	return d > now ? (d - now > 0x7fffffff ? 0x7fffffff : (int)(d - now)) : 0;
}

/* ---- filters ------------------------------------------------------------ */

/* Loads the eBPF filter manager once; without it the reference matcher does all the work. */
static void filter_load(struct mqttq *q)
{
	int r;

	if (q->mqf_tried)
		return;
	q->mqf_tried = true;
	r = mqf_open(&q->mqf, 0);
	if (r) {
		q->mqf = NULL;
		mq_log(q, MQTTQ_LOG_INFO,
		       "eBPF topic filter unavailable (%s): matching in process with the "
		       "reference matcher", strerror(-r));
		return;
	}
	mq_log(q, MQTTQ_LOG_INFO, "eBPF topic filter loaded");
}

int mq_filter_prog_fd(struct mqttq *q)
{
	if (!q->mqf || !mqf_set_count(q->filters))
		return -1;
	return mqf_prog_fd(q->mqf);
}

MQ_API int mqttq_filter_add(struct mqttq *q, const char *filter, uint32_t id)
{
	size_t len;
	int r;

	if (!q || !filter)
		return -EINVAL;
	filter_load(q);
	len = strlen(filter);
	r = mqf_set_add(q->filters, filter, len, id);
	if (r)
		return mq_err(q, r, "filter '%s' id %u: %s", filter, id, strerror(-r));
	if (q->mqf) {
		r = mqf_add(q->mqf, filter, len, id);
		if (!r) {
			r = mqf_commit(q->mqf);
			if (r)
				mqf_remove(q->mqf, id);
		}
		if (r) {
			mqf_set_remove(q->filters, id);
			return mq_err(q, r, "eBPF filter '%s': %s", filter, strerror(-r));
		}
	}
	return 0;
}

MQ_API int mqttq_filter_remove(struct mqttq *q, uint32_t id)
{
	int r;

	if (!q)
		return -EINVAL;
	r = mqf_set_remove(q->filters, id);
	if (r)
		return mq_err(q, r, "no filter with id %u", id);
	if (q->mqf && !mqf_remove(q->mqf, id))
		mqf_commit(q->mqf);
	return 0;
}

MQ_API int mqttq_filter_flags(struct mqttq *q, unsigned int flags)
{
	if (!q || (flags & ~MQTTQ_FILTER_DELIVER_UNMATCHED))
		return -EINVAL;
	q->filter_flags = flags;
	/* the kernel would drop what this mode wants to see */
	if ((flags & MQTTQ_FILTER_DELIVER_UNMATCHED) && q->mqf_sock >= 0) {
		mqf_sock_detach(q->mqf, q->mqf_sock);
		q->mqf_sock = -1;
		q->st.filter_in_kernel = 0;
	}
	return 0;
}

/* ---- introspection ------------------------------------------------------ */

MQ_API int mqttq_engine(const struct mqttq *q)
{
	return q ? q->engine : -EINVAL;
}

MQ_API const char *mqttq_engine_name(int engine)
{
	switch (engine) {
	case MQTTQ_ENGINE_USERSPACE:
		return "userspace";
	case MQTTQ_ENGINE_OFFLOAD:
		return "offload";
	default:
		return "none";
	}
}

MQ_API const char *mqttq_client_id(const struct mqttq *q)
{
	return q ? q->client_id : NULL;
}

MQ_API int mqttq_is_connected(const struct mqttq *q)
{
	return q && q->state == MQ_ST_UP;
}

MQ_API int mqttq_limits(const struct mqttq *q, struct mqttq_limits *out)
{
	if (!q || !out)
		return -EINVAL;
	if (!q->st.connects)
		return -ENOTCONN;
	out->max_packet_size = q->lim.max_packet_size;
	out->receive_max = q->lim.receive_max;
	out->topic_alias_max = q->lim.topic_alias_max;
	out->server_keepalive = q->lim.server_keepalive;
	out->max_qos = q->lim.max_qos;
	out->retain_available = q->lim.retain_available;
	out->wildcard_sub_available = q->lim.wildcard_sub_available;
	out->sub_id_available = q->lim.sub_id_available;
	out->shared_sub_available = q->lim.shared_sub_available;
	return 0;
}

MQ_API int mqttq_stats(const struct mqttq *q, struct mqttq_stats *st, size_t size)
{
	struct mqttq_stats s;

	if (!q || !st)
		return -EINVAL;
	s = q->st;
	s.retransmits = q->st.retransmits;
	s.mem_bytes = q->mem_bytes;
	memcpy(st, &s, size < sizeof(s) ? size : sizeof(s));
	return 0;
}
