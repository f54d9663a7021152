// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The core's QoS session engine: packet identifiers, in-flight windows, acks, resends and keepalive. */
#include "mqc_int.h"

#define NIL 0xffff		/* end of an order list */
#define DUP_BIT 0x08
#define RL_MAX 268435455u

#ifdef __KERNEL__
#define mqc_noinline noinline
#else
#define mqc_noinline __attribute__((__noinline__))
#endif

static bool v5(const struct mqc_session *s)
{
	return s->cfg.version == MQC_V5;
}

/* ---- transport and closing -------------------------------------------------- */

static void fail_subreqs(struct mqc_session *s)
{
	u32 i;

	for (i = 0; i < MQC_MAX_SUBREQ; i++) {
		struct mqc_subreq *r = &s->subreq[i];

		if (!r->pid)
			continue;
		r->pid = 0;
		if (s->ops->sub_done)
			s->ops->sub_done(s->ctx, r->token, NULL, 0);
	}
}

static void go_down(struct mqc_session *s)
{
	s->connected = 0;
	s->ping_outstanding = 0;
	fail_subreqs(s);
}

/*
 * End the session: optionally tell a v5 peer why (best effort: the
 * transport may be what failed), then report through ops->closed.
 * Returns err so callers can `return close_session(...)`.
 */
static int close_session(struct mqc_session *s, int err, u8 send_reason, u8 peer_reason,
			 bool by_peer)
{
	struct mqc_close c;

	if (!s->connected)
		return err;
	if (send_reason && v5(s)) {
		u8 d[3] = { MQC_DISCONNECT << 4, 1, send_reason };

		s->ops->send(s->ctx, d, sizeof(d));
	}
	go_down(s);
	c.err = err;
	c.reason = by_peer ? peer_reason : send_reason;
	c.by_peer = by_peer;
	s->ops->closed(s->ctx, &c);
	return err;
}

/* Bad peer input: count it and close with the v5 reason that names it. */
static int proto_error(struct mqc_session *s, int err)
{
	u8 reason;

	s->n_proto_err++;
	switch (err) {
	case -MQC_E_TOO_BIG:
		reason = 0x95;	/* Packet too large */
		break;
	case -MQC_E_ALIAS:
		reason = 0x94;	/* Topic Alias invalid */
		break;
	case -MQC_E_PROTOCOL:
	case -MQC_E_UNKNOWN_PID:
	case -MQC_E_TYPE:
		reason = 0x82;	/* Protocol Error */
		break;
	default:
		reason = 0x81;	/* Malformed Packet */
		break;
	}
	return close_session(s, err, reason, 0, false);
}

static int tx(struct mqc_session *s, const u8 *buf, u32 len, u64 now)
{
	int err = s->ops->send(s->ctx, buf, len);

	if (err)
		return close_session(s, err < 0 ? err : -EIO, 0, 0, false);
	s->last_tx = now;
	return 0;
}

static int tx_msg(struct mqc_session *s, struct mqc_msg *m, u64 now)
{
	int err = s->ops->send_msg(s->ctx, m);

	if (err)
		return close_session(s, err < 0 ? err : -EIO, 0, 0, false);
	s->last_tx = now;
	m->sent_at = now;
	return 0;
}

/* PUBACK/PUBREC/PUBREL/PUBCOMP; on v5 the reason byte only when it is not 0. */
static int tx_ack(struct mqc_session *s, u8 type, u16 pid, u8 reason, u64 now)
{
	u8 b[5];

	b[0] = (u8)(type << 4 | (type == MQC_PUBREL ? 2 : 0));
	b[1] = 2;
	b[2] = (u8)(pid >> 8);
	b[3] = (u8)pid;
	if (reason && v5(s)) {
		b[1] = 3;
		b[4] = reason;
	}
	return tx(s, b, 2u + b[1], now);
}

/* ---- outbound slots and order lists ---------------------------------------- */

static struct mqc_msg *inflight_msg(const struct mqc_session *s, u16 pid)
{
	struct mqc_msg *m = s->slots[pid % s->nslots];

	return m && m->pid == pid && m->state != MQC_ST_FREE ? m : NULL;
}

static bool subreq_has(const struct mqc_session *s, u16 pid)
{
	u32 i;

	for (i = 0; i < MQC_MAX_SUBREQ; i++)
		if (s->subreq[i].pid == pid)
			return true;
	return false;
}

static u16 pid_after(u16 pid)
{
	return pid == 0xffff ? 1 : pid + 1;
}

/*
 * A PUBLISH identifier whose slot (pid % nslots) is free and that no
 * SUBSCRIBE holds. Completions are mostly in order, so the first candidate
 * is nearly always it. Without a wrap nslots consecutive candidates cover
 * every slot; the wrap 65535 -> 1 skips 0 and breaks the residue sequence,
 * so up to nslots before it and nslots after it (plus the few SUBSCRIBE
 * identifiers) may be needed.
 */
static u16 pick_pub_pid(struct mqc_session *s)
{
	u32 tries = 2u * s->nslots + MQC_MAX_SUBREQ + 1;
	u16 pid = s->next_pid;

	while (tries--) {
		u16 cand = pid;

		pid = pid_after(pid);
		if (!s->slots[cand % s->nslots] && !subreq_has(s, cand)) {
			s->next_pid = pid;
			return cand;
		}
	}
	return 0;
}

/*
 * A SUBSCRIBE identifier: any value not in flight; it takes no slot. With
 * user_flows the caller picks PUBLISH identifiers, so SUBSCRIBE keeps to the
 * top MQC_MAX_SUBREQ values, where a caller that avoids them never meets it.
 */
static u16 pick_sub_pid(struct mqc_session *s)
{
	u32 tries = 2u * s->nslots + MQC_MAX_SUBREQ + 1;
	u16 pid = s->next_pid;

	if (s->cfg.user_flows) {
		for (pid = 0xffff - MQC_MAX_SUBREQ + 1; pid; pid++)
			if (!inflight_msg(s, pid) && !subreq_has(s, pid))
				return pid;
		return 0;
	}

	while (tries--) {
		u16 cand = pid;

		pid = pid_after(pid);
		if (!inflight_msg(s, cand) && !subreq_has(s, cand)) {
			s->next_pid = pid;
			return cand;
		}
	}
	return 0;
}

/* Past PUBREC (PUBREL sent or held for the caller): the PUBREL list. */
static bool past_rec(u8 state)
{
	return state == MQC_ST_WAIT_COMP || state == MQC_ST_WAIT_RELEASE;
}

static u16 *list_head(struct mqc_session *s, u8 state)
{
	return past_rec(state) ? &s->rel_head : &s->pub_head;
}

static u16 *list_tail(struct mqc_session *s, u8 state)
{
	return past_rec(state) ? &s->rel_tail : &s->pub_tail;
}

static void list_add(struct mqc_session *s, struct mqc_msg *m)
{
	u16 idx = m->pid % s->nslots;
	u16 *head = list_head(s, m->state), *tail = list_tail(s, m->state);

	m->next = NIL;
	m->prev = *tail;
	if (*tail != NIL)
		s->slots[*tail]->next = idx;
	else
		*head = idx;
	*tail = idx;
}

static void list_del(struct mqc_session *s, struct mqc_msg *m)
{
	u16 *head = list_head(s, m->state), *tail = list_tail(s, m->state);

	if (m->prev != NIL)
		s->slots[m->prev]->next = m->next;
	else
		*head = m->next;
	if (m->next != NIL)
		s->slots[m->next]->prev = m->prev;
	else
		*tail = m->prev;
}

static void set_quota(struct mqc_session *s)
{
	s->quota = s->window > s->inflight ? s->window - s->inflight : 0;
}

/* The flow of m ended: free its identifier and slot, then hand it back. */
static void finish(struct mqc_session *s, struct mqc_msg *m, u8 reason)
{
	list_del(s, m);
	s->slots[m->pid % s->nslots] = NULL;
	m->state = MQC_ST_FREE;
	s->inflight--;
	set_quota(s);
	s->ops->complete(s->ctx, m, reason);
}

static void write_pid(struct mqc_msg *m)
{
	m->buf[m->pid_off] = (u8)(m->pid >> 8);
	m->buf[m->pid_off + 1] = (u8)m->pid;
}

/* ---- session lifetime --------------------------------------------------------- */

int mqc_session_init(struct mqc_session *s, const struct mqc_config *cfg,
		     const struct mqc_ops *ops, void *ctx, struct mqc_msg **slots, u8 *in2,
		     u16 *ackq)
{
	u32 i;

	if (!s || !cfg || !ops || !slots || !in2 || !ops->send || !ops->send_msg ||
	    !ops->complete || !ops->deliver || !ops->closed)
		return -EINVAL;
	if ((cfg->version != MQC_V311 && cfg->version != MQC_V5) || !cfg->window ||
	    !cfg->recv_max || cfg->ack_policy > MQC_ACK_ON_DELIVERY ||
	    (cfg->ack_policy == MQC_ACK_ON_DELIVERY && !ackq) || cfg->user_flows > 1 ||
	    (cfg->user_flows && !ops->pubrec))
		return -EINVAL;
	mqc_memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->ops = ops;
	s->ctx = ctx;
	s->slots = slots;
	s->nslots = cfg->window;
	s->in2 = in2;
	s->ackq = ackq;
	s->next_pid = 1;
	s->pub_head = s->pub_tail = s->rel_head = s->rel_tail = NIL;
	for (i = 0; i < s->nslots; i++)
		slots[i] = NULL;
	mqc_memset(in2, 0, MQC_IN2_BYTES);
	s->window = cfg->window;
	set_quota(s);
	return 0;
}

int mqc_restore(struct mqc_session *s, struct mqc_msg *m)
{
	u16 idx;

	if (s->connected)
		return -EISCONN;
	if (!m || !m->buf || !m->pid || m->pid_off < 2 || m->pid_off + 2 > m->len)
		return -EINVAL;
	if (!((m->state == MQC_ST_WAIT_ACK && m->qos == 1) ||
	      ((m->state == MQC_ST_WAIT_REC || m->state == MQC_ST_WAIT_COMP) && m->qos == 2)))
		return -EINVAL;
	idx = m->pid % s->nslots;
	if (s->slots[idx] || subreq_has(s, m->pid))
		return -EBUSY;
	s->slots[idx] = m;
	write_pid(m);
	list_add(s, m);
	s->inflight++;
	set_quota(s);
	s->next_pid = pid_after(m->pid);
	return 0;
}

/* Resend with session state on both sides: PUBRELs first (older flows), then PUBLISHes. */
static int resend_all(struct mqc_session *s, u64 now)
{
	u16 i;
	int err;

	for (i = s->rel_head; i != NIL && s->connected; i = s->slots[i]->next) {
		struct mqc_msg *m = s->slots[i];

		if (m->state == MQC_ST_WAIT_RELEASE)
			continue; /* its PUBREL leaves with mqc_release() */
		err = tx_ack(s, MQC_PUBREL, m->pid, 0, now);
		if (err)
			return err;
		m->sent_at = now;
		s->n_pubrel++;
		s->n_retransmit++;
	}
	for (i = s->pub_head; i != NIL && s->connected; i = s->slots[i]->next) {
		struct mqc_msg *m = s->slots[i];

		m->buf[0] |= DUP_BIT;
		err = tx_msg(s, m, now);
		if (err)
			return err;
		s->n_retransmit++;
	}
	return 0;
}

/* The server has no session: PUBREL'd flows are done, the rest start again. */
static int restart_all(struct mqc_session *s, u64 now)
{
	u16 i;
	int err;

	while (s->rel_head != NIL)
		finish(s, s->slots[s->rel_head], 0);
	for (i = s->pub_head; i != NIL && s->connected; i = s->slots[i]->next) {
		struct mqc_msg *m = s->slots[i];

		m->buf[0] &= (u8)~DUP_BIT;
		err = tx_msg(s, m, now);
		if (err)
			return err;
	}
	return 0;
}

int mqc_connected(struct mqc_session *s, const struct mqc_limits *lim, bool session_present,
		  u64 now)
{
	u32 rm;

	if (s->connected)
		return -EISCONN;
	mqc_memset(&s->lim, 0, sizeof(s->lim));
	if (lim && v5(s))
		s->lim = *lim;
	if (!lim || !v5(s)) {
		s->lim.max_qos = 2;
		s->lim.retain_available = 1;
		s->lim.wildcard_sub_available = 1;
		s->lim.sub_id_available = 1;
		s->lim.shared_sub_available = 1;
	}
	rm = s->lim.receive_max ? s->lim.receive_max : 0xffff;
	s->window = (u16)(rm < s->cfg.window ? rm : s->cfg.window);
	s->ka_s = s->lim.server_keepalive ? s->lim.server_keepalive : s->cfg.keepalive_s;
	s->connected = 1;
	s->ping_outstanding = 0;
	s->last_tx = s->last_rx = now;
	s->retry_at = now + s->cfg.retry_ms;
	if (!session_present) {
		/* MQTT-3.2.2-5 (v5 3.2.2-4): no server session, so none inbound either */
		mqc_memset(s->in2, 0, MQC_IN2_BYTES);
		s->ackq_head = s->ackq_len = 0;
		s->in_unacked = 0;
	}
	set_quota(s);
	return session_present ? resend_all(s, now) : restart_all(s, now);
}

void mqc_disconnected(struct mqc_session *s)
{
	go_down(s);
}

int mqc_disconnect(struct mqc_session *s, u8 reason, u64 now)
{
	u8 d[3] = { MQC_DISCONNECT << 4, 0, reason };
	int err;

	if (!s->connected)
		return -ENOTCONN;
	if (v5(s) && reason)
		d[1] = 1;
	err = s->ops->send(s->ctx, d, 2u + d[1]);
	go_down(s);
	return err;
}

/* ---- outbound publish ------------------------------------------------------------ */

int mqc_publish(struct mqc_session *s, struct mqc_msg *m, u64 now)
{
	u16 pid;
	int err;

	if (!s->connected)
		return -ENOTCONN;
	if (!m || !m->buf || m->len < 2 || m->qos > 2)
		return -EINVAL;
	if (m->qos > s->lim.max_qos)
		return -EINVAL;
	if (s->lim.max_packet_size && m->len > s->lim.max_packet_size)
		return -EMSGSIZE;
	if (!m->qos) {
		/* 4.9.0: QoS 0 is never held back by the window */
		m->state = MQC_ST_FREE;
		err = s->ops->send_msg(s->ctx, m);
		if (err)
			return close_session(s, err < 0 ? err : -EIO, 0, 0, false);
		s->last_tx = now;
		s->ops->complete(s->ctx, m, 0);
		return 0;
	}
	if (m->pid_off < 2 || m->pid_off + 2 > m->len || s->cfg.user_flows)
		return -EINVAL;
	if (!s->quota) /* MQTT-4.9.0-2 / 3.3.4-7 */
		return -EAGAIN;
	pid = pick_pub_pid(s);
	if (!pid)
		return -EAGAIN;
	m->pid = pid;
	m->state = m->qos == 1 ? MQC_ST_WAIT_ACK : MQC_ST_WAIT_REC;
	write_pid(m);
	m->buf[0] &= (u8)~DUP_BIT;
	s->slots[pid % s->nslots] = m;
	list_add(s, m);
	if (!s->inflight)
		s->retry_at = now + s->cfg.retry_ms;
	s->inflight++;
	set_quota(s);
	tx_msg(s, m, now);
	return 0;
}

int mqc_publish_pid(struct mqc_session *s, struct mqc_msg *m, u64 now)
{
	u8 st;

	if (!s->connected)
		return -ENOTCONN;
	if (!s->cfg.user_flows || !m || !m->buf || !m->pid || m->qos < 1 || m->qos > 2 ||
	    m->pid_off < 2 || m->pid_off + 2 > m->len)
		return -EINVAL;
	st = m->state;
	if (!(st == MQC_ST_FREE || (st == MQC_ST_WAIT_ACK && m->qos == 1) ||
	      ((st == MQC_ST_WAIT_REC || st == MQC_ST_WAIT_COMP) && m->qos == 2)))
		return -EINVAL;
	if (m->qos > s->lim.max_qos)
		return -EINVAL;
	if (s->lim.max_packet_size && m->len > s->lim.max_packet_size)
		return -EMSGSIZE;
	if (s->slots[m->pid % s->nslots] || subreq_has(s, m->pid))
		return -EBUSY;
	if (!s->quota)
		return -EAGAIN;
	if (st == MQC_ST_FREE) {
		m->state = m->qos == 1 ? MQC_ST_WAIT_ACK : MQC_ST_WAIT_REC;
		m->buf[0] &= (u8)~DUP_BIT;
	} else if (st != MQC_ST_WAIT_COMP) {
		m->buf[0] |= DUP_BIT; /* 4.4.0-1: a resend on the server's session */
	}
	write_pid(m);
	s->slots[m->pid % s->nslots] = m;
	list_add(s, m);
	if (!s->inflight)
		s->retry_at = now + s->cfg.retry_ms;
	s->inflight++;
	set_quota(s);
	/* like mqc_publish: on a send failure the flow stays accepted, closed has run */
	if (st == MQC_ST_WAIT_COMP) {
		/* the server took the message at PUBREC: only the PUBREL may go again */
		m->sent_at = now;
		s->n_pubrel++;
		tx_ack(s, MQC_PUBREL, m->pid, 0, now);
	} else {
		tx_msg(s, m, now);
	}
	return 0;
}

int mqc_release(struct mqc_session *s, u16 pid, u64 now)
{
	struct mqc_msg *m = pid ? inflight_msg(s, pid) : NULL;

	if (!m || m->state != MQC_ST_WAIT_RELEASE)
		return -ENOENT;
	m->state = MQC_ST_WAIT_COMP; /* same list, same place */
	m->sent_at = now;
	if (!s->connected)
		return -ENOTCONN;
	s->n_pubrel++;
	/* a failed send closed the session; the PUBREL goes again on resume */
	tx_ack(s, MQC_PUBREL, pid, 0, now);
	return 0;
}

/* ---- inbound acks ------------------------------------------------------------------ */

/* The ack's identifier and v5 reason (3.1.1 acks are exactly 2 bytes). */
static int parse_ack(const struct mqc_session *s, u8 type, const u8 *b, u32 n, u16 *pid,
		     u8 *reason)
{
	*reason = 0;
	if (n < 2)
		return -MQC_E_SHORT;
	*pid = (u16)(b[0] << 8 | b[1]);
	if (!*pid)
		return -MQC_E_PID0;
	if (!v5(s))
		return n == 2 ? 0 : -MQC_E_TRAILING;
	if (n >= 3) {
		*reason = b[2];
		if (!mqc_reason_ok(type, *reason))
			return -MQC_E_REASON;
	}
	if (n >= 4) {
		u32 plen;
		int k = mqc_varint_get(b + 3, n - 3, &plen);

		if (k < 0)
			return k;
		if (plen > n - 3 - (u32)k)
			return -MQC_E_SHORT;
		if (plen < n - 3 - (u32)k)
			return -MQC_E_TRAILING;
		return mqc_props_parse(b + 3 + k, plen, type, NULL, NULL);
	}
	return 0;
}

/*
 * An ack for an identifier not in the state it answers. On 3.1.1 with
 * in-session retry the peer may answer both copies of a resent PUBLISH,
 * so a stray ack there is dropped; otherwise it is a protocol error.
 */
static int stray_ack(struct mqc_session *s, struct mqc_msg *m)
{
	if (m)
		return proto_error(s, -MQC_E_PROTOCOL);
	if (!v5(s) && s->cfg.retry_ms)
		return 0;
	return proto_error(s, -MQC_E_UNKNOWN_PID);
}

static bool in2_test(const struct mqc_session *s, u16 pid)
{
	return s->in2[pid >> 3] & (1u << (pid & 7));
}

static void in2_set(struct mqc_session *s, u16 pid, bool on)
{
	if (on)
		s->in2[pid >> 3] |= (u8)(1u << (pid & 7));
	else
		s->in2[pid >> 3] &= (u8)~(1u << (pid & 7));
}

static int ackq_find(const struct mqc_session *s, u16 pid)
{
	u32 i;

	for (i = 0; i < s->ackq_len; i++)
		if (s->ackq[(s->ackq_head + i) % s->cfg.recv_max] == pid)
			return (int)i;
	return -1;
}

static mqc_noinline int in_ack(struct mqc_session *s, u8 type, const u8 *b, u32 n, u64 now)
{
	struct mqc_msg *m;
	u16 pid;
	u8 reason;
	int err = parse_ack(s, type, b, n, &pid, &reason);

	if (err)
		return proto_error(s, err);
	s->n_acks++;
	if (type == MQC_PUBREL) {
		if (!in2_test(s, pid)) {
			/*
			 * Our PUBCOMP was lost with the last connection: answer
			 * again (MQTT-4.3.3-11/-12); v5 says we hold no state.
			 */
			return tx_ack(s, MQC_PUBCOMP, pid, 0x92, now);
		}
		if (s->cfg.ack_policy == MQC_ACK_ON_DELIVERY && ackq_find(s, pid) >= 0)
			return proto_error(s, -MQC_E_PROTOCOL); /* PUBREL before our PUBREC */
		in2_set(s, pid, false);
		s->in_unacked--;
		return tx_ack(s, MQC_PUBCOMP, pid, 0, now);
	}
	m = inflight_msg(s, pid);
	switch (type) {
	case MQC_PUBACK:
		if (!m || m->state != MQC_ST_WAIT_ACK)
			return stray_ack(s, m);
		finish(s, m, reason >= 0x80 ? reason : 0);
		return 0;
	case MQC_PUBREC:
		if (m && m->state == MQC_ST_WAIT_RELEASE)
			return 0; /* a resent PUBREC: the release is already pending */
		if (m && m->state == MQC_ST_WAIT_COMP) {
			/* our PUBREL crossed a resent PUBREC: answer it again */
			s->n_pubrel++;
			return tx_ack(s, MQC_PUBREL, pid, 0, now);
		}
		if (!m || m->state != MQC_ST_WAIT_REC)
			return stray_ack(s, m);
		if (reason >= 0x80) {	/* v5 4.3.3: the flow ends here, no PUBREL */
			finish(s, m, reason);
			return 0;
		}
		list_del(s, m);
		m->state = s->cfg.user_flows ? MQC_ST_WAIT_RELEASE : MQC_ST_WAIT_COMP;
		list_add(s, m);
		m->sent_at = now;
		if (s->cfg.user_flows) {
			s->ops->pubrec(s->ctx, m);
			return 0;
		}
		s->n_pubrel++;
		return tx_ack(s, MQC_PUBREL, pid, 0, now);
	default: /* PUBCOMP */
		if (!m || m->state != MQC_ST_WAIT_COMP)
			return stray_ack(s, m);
		finish(s, m, reason >= 0x80 ? reason : 0);
		return 0;
	}
}

/* ---- inbound PUBLISH ----------------------------------------------------------------- */

static void ackq_push(struct mqc_session *s, u16 pid)
{
	s->ackq[(s->ackq_head + s->ackq_len) % s->cfg.recv_max] = pid;
	s->ackq_len++;
}

static mqc_noinline int in_publish(struct mqc_session *s, u8 flags, const u8 *b, u32 n, u64 now)
{
	struct mqc_inmsg im;
	u32 pos, tlen;
	bool dup = flags & DUP_BIT;
	int err;

	im.qos = (flags >> 1) & 3;
	im.retain = flags & 1;
	im.dup = dup;
	im.pid = 0;
	im.props = NULL;
	im.props_len = 0;
	if (n < 2)
		return proto_error(s, -MQC_E_SHORT);
	tlen = (u32)b[0] << 8 | b[1];
	pos = 2 + tlen;
	if (pos > n || (im.qos && n - pos < 2))
		return proto_error(s, -MQC_E_SHORT);
	im.topic = b + 2;
	im.topic_len = (u16)tlen;
	if (im.qos) {
		im.pid = (u16)(b[pos] << 8 | b[pos + 1]);
		pos += 2;
		if (!im.pid)
			return proto_error(s, -MQC_E_PID0);
	}
	if (v5(s)) {
		u32 plen;
		u64 seen;
		int k = mqc_varint_get(b + pos, n - pos, &plen);

		if (k < 0)
			return proto_error(s, k);
		pos += (u32)k;
		if (plen > n - pos)
			return proto_error(s, -MQC_E_SHORT);
		err = mqc_props_parse(b + pos, plen, MQC_PUBLISH, NULL, &seen);
		if (err)
			return proto_error(s, err);
		/* we never grant a Topic Alias Maximum, so any alias is invalid */
		if (seen & (1ull << MQC_P_TOPIC_ALIAS))
			return proto_error(s, -MQC_E_ALIAS);
		im.props = b + pos;
		im.props_len = plen;
		pos += plen;
	}
	err = mqc_topic_check(im.topic, tlen, false);
	if (err)
		return proto_error(s, err);
	im.payload = b + pos;
	im.payload_len = n - pos;

	if (!im.qos) {
		s->ops->deliver(s->ctx, &im);
		return 0;
	}
	if (im.qos == 1 && in2_test(s, im.pid))
		return proto_error(s, -MQC_E_PROTOCOL); /* identifier held by a QoS 2 flow */
	if (im.qos == 2 && in2_test(s, im.pid)) {
		/* MQTT-4.3.3-2: a duplicate is acknowledged again, never delivered again */
		if (s->cfg.ack_policy == MQC_ACK_ON_DELIVERY && ackq_find(s, im.pid) >= 0)
			return 0;
		s->n_acks++;
		return tx_ack(s, MQC_PUBREC, im.pid, 0, now);
	}
	if (dup && s->cfg.ack_policy == MQC_ACK_ON_DELIVERY && ackq_find(s, im.pid) >= 0)
		return 0;	/* QoS 1 resend of one the application has not read yet */
	if (v5(s) && s->in_unacked >= s->cfg.recv_max) {
		s->n_proto_err++;	/* MQTT-3.3.4-9 */
		return close_session(s, -MQC_E_PROTOCOL, 0x93, 0, false);
	}
	if (s->cfg.ack_policy == MQC_ACK_ON_DELIVERY && s->ackq_len >= s->cfg.recv_max)
		return 0;	/* 3.1.1: no room to remember the ack; the peer resends */
	if (s->ops->deliver(s->ctx, &im) < 0)
		return 0;	/* unacknowledged: the peer resends it on resume */
	if (im.qos == 2) {
		in2_set(s, im.pid, true);
		s->in_unacked++;
	}
	if (s->cfg.ack_policy == MQC_ACK_ON_DELIVERY) {
		if (im.qos == 1)
			s->in_unacked++;
		ackq_push(s, im.pid);
		return 0;
	}
	s->n_acks++;
	return tx_ack(s, im.qos == 1 ? MQC_PUBACK : MQC_PUBREC, im.pid, 0, now);
}

int mqc_delivered(struct mqc_session *s, u16 pid, u8 qos)
{
	int at;

	if (s->cfg.ack_policy != MQC_ACK_ON_DELIVERY || qos > 2)
		return -EINVAL;
	if (!qos)
		return 0;
	at = ackq_find(s, pid);
	if (at < 0)
		return -ENOENT;
	if ((qos == 2) != in2_test(s, pid))
		return -EINVAL;
	while (at-- >= 0) {
		u16 p = s->ackq[s->ackq_head];
		bool q2 = in2_test(s, p);

		s->ackq_head = (u16)((s->ackq_head + 1) % s->cfg.recv_max);
		s->ackq_len--;
		if (!q2)
			s->in_unacked--;
		if (s->connected) {
			s->n_acks++;
			tx_ack(s, q2 ? MQC_PUBREC : MQC_PUBACK, p, 0, s->last_tx);
		}
	}
	return 0;
}

/* ---- inbound SUBACK / UNSUBACK, CONNACK ---------------------------------------- */

static mqc_noinline int in_suback(struct mqc_session *s, u8 type, const u8 *b, u32 n)
{
	struct mqc_subreq *r = NULL;
	u32 i, pos = 2;
	u16 pid;
	u64 token;
	int err;

	if (n < 2)
		return proto_error(s, -MQC_E_SHORT);
	pid = (u16)(b[0] << 8 | b[1]);
	if (!pid)
		return proto_error(s, -MQC_E_PID0);
	if (type == MQC_UNSUBACK && !v5(s) && n != 2)
		return proto_error(s, -MQC_E_TRAILING);
	if (v5(s)) {
		u32 plen;
		int k = mqc_varint_get(b + pos, n - pos, &plen);

		if (k < 0)
			return proto_error(s, k);
		pos += (u32)k;
		if (plen > n - pos)
			return proto_error(s, -MQC_E_SHORT);
		err = mqc_props_parse(b + pos, plen, type, NULL, NULL);
		if (err)
			return proto_error(s, err);
		pos += plen;
	}
	for (i = pos; i < n; i++)
		if (v5(s) ? !mqc_reason_ok(type, b[i]) : !(b[i] <= 2 || b[i] == 0x80))
			return proto_error(s, -MQC_E_REASON);
	for (i = 0; i < MQC_MAX_SUBREQ; i++)
		if (s->subreq[i].pid == pid)
			r = &s->subreq[i];
	if (!r || r->type + 1 != type)
		return proto_error(s, r ? -MQC_E_PROTOCOL : -MQC_E_UNKNOWN_PID);
	/* one code per filter (3.1.1 UNSUBACK has none) */
	if (!(type == MQC_UNSUBACK && !v5(s)) && n - pos != r->n)
		return proto_error(s, -MQC_E_PROTOCOL);
	token = r->token;
	r->pid = 0;
	if (s->ops->sub_done)
		s->ops->sub_done(s->ctx, token, n > pos ? b + pos : NULL, n - pos);
	return 0;
}

/*
 * CONNACK body: flags, return code and limits. The property block is left
 * in *props for the caller to validate, so the two property walks do not
 * nest (stack depth).
 */
static mqc_noinline int in_connack(struct mqc_session *s, const u8 *b, u32 n,
				   struct mqc_limits *lim, u8 *sp, u8 *rc, struct mqc_str *props)
{
	struct mqc_str cur;
	struct mqc_prop pr;
	int err;

	if (n < 2)
		return -MQC_E_SHORT;
	if (b[0] & 0xfe)
		return -MQC_E_FLAGS;
	*sp = b[0] & 1;
	*rc = b[1];
	mqc_memset(lim, 0, sizeof(*lim));
	lim->max_qos = 2;
	lim->retain_available = 1;
	lim->wildcard_sub_available = 1;
	lim->sub_id_available = 1;
	lim->shared_sub_available = 1;
	props->p = NULL;
	props->len = 0;
	if (!v5(s)) {
		if (n != 2)
			return -MQC_E_TRAILING;
		return *rc > 5 ? -MQC_E_REASON : 0;
	}
	if (!mqc_reason_ok(MQC_CONNACK, *rc))
		return -MQC_E_REASON;
	{
		u32 plen;
		int k = mqc_varint_get(b + 2, n - 2, &plen);

		if (k < 0)
			return k;
		if (plen != n - 2 - (u32)k)
			return plen > n - 2 - (u32)k ? -MQC_E_SHORT : -MQC_E_TRAILING;
		props->p = b + 2 + k;
		props->len = plen;
	}
	cur = *props;
	while ((err = mqc_prop_next(&cur, &pr)) == 1) {
		switch (pr.id) {
		case MQC_P_MAX_PACKET_SIZE:
			lim->max_packet_size = pr.num;
			break;
		case MQC_P_RECEIVE_MAX:
			lim->receive_max = (u16)pr.num;
			break;
		case MQC_P_TOPIC_ALIAS_MAX:
			lim->topic_alias_max = (u16)pr.num;
			break;
		case MQC_P_SERVER_KEEPALIVE:
			lim->server_keepalive = (u16)pr.num;
			break;
		case MQC_P_MAX_QOS:
			lim->max_qos = (u8)pr.num;
			break;
		case MQC_P_RETAIN_AVAILABLE:
			lim->retain_available = (u8)pr.num;
			break;
		case MQC_P_WILDCARD_SUB_AVAILABLE:
			lim->wildcard_sub_available = (u8)pr.num;
			break;
		case MQC_P_SUB_ID_AVAILABLE:
			lim->sub_id_available = (u8)pr.num;
			break;
		case MQC_P_SHARED_SUB_AVAILABLE:
			lim->shared_sub_available = (u8)pr.num;
			break;
		default:
			break;
		}
	}
	return err;
}

static mqc_noinline int before_connack(struct mqc_session *s, const u8 *pkt, u32 len, u64 now)
{
	struct mqc_limits lim;
	struct mqc_close c;
	struct mqc_str props;
	u32 rl;
	u8 sp = 0, rc = 0;
	int k, err;

	if ((pkt[0] >> 4) != MQC_CONNACK)
		return -ENOTCONN;
	k = mqc_varint_get(pkt + 1, len - 1, &rl);
	if (k < 0)
		err = k;
	else if (pkt[0] & 0x0f)
		err = -MQC_E_FLAGS;
	else if (rl != len - 1 - (u32)k)
		err = rl > len - 1 - (u32)k ? -MQC_E_SHORT : -MQC_E_TRAILING;
	else
		err = in_connack(s, pkt + 1 + k, rl, &lim, &sp, &rc, &props);
	if (!err && props.p) /* the whole block again, for placement and duplicates */
		err = mqc_props_parse(props.p, props.len, MQC_CONNACK, NULL, NULL);
	if (!err && rc && sp) /* MQTT-3.2.2-4 (3.1.1), MQTT-3.2.2-6 (5.0) */
		err = -MQC_E_PROTOCOL;
	if (!err && rc) {
		c.err = -ECONNREFUSED;
		c.reason = rc;
		c.by_peer = 1;
		s->ops->closed(s->ctx, &c);
		return -ECONNREFUSED;
	}
	if (!err)
		return mqc_connected(s, &lim, sp, now);
	s->n_proto_err++;
	c.err = err;
	c.reason = 0;
	c.by_peer = 0;
	s->ops->closed(s->ctx, &c);
	return err;
}

/* ---- input dispatch -------------------------------------------------------------------- */

/* A v5 server says why it closes (3.1.1 servers only drop the connection). */
static mqc_noinline int in_disconnect(struct mqc_session *s, const u8 *b, u32 n)
{
	u8 reason = 0;
	u32 plen;
	int k, err;

	if (n && !v5(s))
		return proto_error(s, -MQC_E_TRAILING);
	if (n) {
		reason = b[0];
		if (!mqc_reason_ok(MQC_DISCONNECT, reason))
			return proto_error(s, -MQC_E_REASON);
		if (n > 1) {
			k = mqc_varint_get(b + 1, n - 1, &plen);
			if (k < 0)
				return proto_error(s, k);
			if (plen != n - 1 - (u32)k)
				return proto_error(s, plen > n - 1 - (u32)k ? -MQC_E_SHORT :
									-MQC_E_TRAILING);
			err = mqc_props_parse(b + 1 + k, plen, MQC_DISCONNECT, NULL, NULL);
			if (err)
				return proto_error(s, err);
		}
	}
	return close_session(s, -ECONNRESET, 0, reason, true);
}

int mqc_input(struct mqc_session *s, const u8 *pkt, u32 len, u64 now)
{
	const u8 *b;
	u32 n, rl;
	u8 type, flags;
	int k, err;

	if (!pkt || len < 2)
		return s->connected ? proto_error(s, -MQC_E_SHORT) : -ENOTCONN;
	if (!s->connected)
		return before_connack(s, pkt, len, now);
	type = pkt[0] >> 4;
	flags = pkt[0] & 0x0f;
	k = mqc_frame_len(pkt, len, s->cfg.max_packet_in);
	if (k < 0)
		return proto_error(s, k);
	if ((u32)k != len)
		return proto_error(s, !k || (u32)k > len ? -MQC_E_SHORT : -MQC_E_TRAILING);
	s->last_rx = now;
	mqc_varint_get(pkt + 1, len - 1, &rl);
	b = pkt + (len - rl);
	n = rl;
	if (!type || (type == MQC_AUTH && !v5(s)))
		return proto_error(s, -MQC_E_TYPE);
	err = mqc_check_flags(type, flags);
	if (err)
		return proto_error(s, err);
	switch (type) {
	case MQC_PUBLISH:
		return in_publish(s, flags, b, n, now);
	case MQC_PUBACK:
	case MQC_PUBREC:
	case MQC_PUBREL:
	case MQC_PUBCOMP:
		return in_ack(s, type, b, n, now);
	case MQC_SUBACK:
	case MQC_UNSUBACK:
		return in_suback(s, type, b, n);
	case MQC_PINGRESP:
		if (n)
			return proto_error(s, -MQC_E_TRAILING);
		s->ping_outstanding = 0;
		return 0;
	case MQC_DISCONNECT:
		return in_disconnect(s, b, n);
	default:
		/*
		 * CONNACK twice, a server sending CONNECT/SUBSCRIBE/
		 * UNSUBSCRIBE/PINGREQ, or AUTH (this engine does no enhanced
		 * authentication after CONNACK).
		 */
		return proto_error(s, -MQC_E_PROTOCOL);
	}
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------ */

/* A small staging buffer: large filters go to ops->send directly. */
struct emit {
	struct mqc_session *s;
	u64 now;
	u32 n;
	int err;
	u8 buf[64];
};

static void emit_flush(struct emit *e)
{
	if (e->n && !e->err)
		e->err = tx(e->s, e->buf, e->n, e->now);
	e->n = 0;
}

static void emit(struct emit *e, const u8 *p, u32 len)
{
	if (e->err)
		return;
	if (len > sizeof(e->buf) - e->n) {
		emit_flush(e);
		if (len > sizeof(e->buf)) {
			if (!e->err)
				e->err = tx(e->s, p, len, e->now);
			return;
		}
	}
	mqc_memcpy(e->buf + e->n, p, len);
	e->n += len;
}

static int sub_request(struct mqc_session *s, u8 type, const struct mqc_sub *subs, u32 n,
		       u32 sub_id, u64 token, u64 now)
{
	struct mqc_subreq *r = NULL;
	struct emit e;
	u8 hdr[16];
	u32 i, rl, plen, h = 0;
	u16 pid;

	if (!s->connected)
		return -ENOTCONN;
	if (!subs || !n || n > 0xffff || (sub_id && (!v5(s) || sub_id > RL_MAX)))
		return -EINVAL;
	plen = sub_id ? 1 + mqc_varint_put(NULL, sub_id) : 0;
	rl = 2 + (v5(s) ? 1 + plen : 0);
	for (i = 0; i < n; i++) {
		u8 o = subs[i].options;

		if (!subs[i].filter || mqc_filter_check(subs[i].filter, subs[i].filter_len))
			return -EINVAL;
		if (type == MQC_SUBSCRIBE &&
		    ((o & 3) == 3 || (!v5(s) && (o & 0xfc)) ||
		     (v5(s) && ((o & 0xc0) || (o >> 4) == 3))))
			return -EINVAL;
		rl += 2u + subs[i].filter_len + (type == MQC_SUBSCRIBE);
		if (rl > RL_MAX)
			return -EMSGSIZE;
	}
	if (s->lim.max_packet_size && 1 + mqc_varint_put(NULL, rl) + rl > s->lim.max_packet_size)
		return -EMSGSIZE;
	for (i = 0; i < MQC_MAX_SUBREQ && !r; i++)
		if (!s->subreq[i].pid)
			r = &s->subreq[i];
	if (!r)
		return -EAGAIN;
	pid = pick_sub_pid(s);
	if (!pid)
		return -EAGAIN;
	r->pid = pid;
	r->token = token;
	r->n = (u16)n;
	r->type = type;

	hdr[h++] = (u8)(type << 4 | 2);
	h += mqc_varint_put(hdr + h, rl);
	hdr[h++] = (u8)(pid >> 8);
	hdr[h++] = (u8)pid;
	if (v5(s)) {
		hdr[h++] = (u8)plen;
		if (sub_id) {
			hdr[h++] = MQC_P_SUBSCRIPTION_ID;
			h += mqc_varint_put(hdr + h, sub_id);
		}
	}
	e.s = s;
	e.now = now;
	e.n = 0;
	e.err = 0;
	emit(&e, hdr, h);
	for (i = 0; i < n; i++) {
		u8 l[2] = { (u8)(subs[i].filter_len >> 8), (u8)subs[i].filter_len };

		emit(&e, l, 2);
		emit(&e, subs[i].filter, subs[i].filter_len);
		if (type == MQC_SUBSCRIBE)
			emit(&e, &subs[i].options, 1);
	}
	emit_flush(&e);
	/* on a send failure the session closed and fail_subreqs() reported it */
	return 0;
}

int mqc_subscribe(struct mqc_session *s, const struct mqc_sub *subs, u32 n, u32 sub_id,
		  u64 token, u64 now)
{
	return sub_request(s, MQC_SUBSCRIBE, subs, n, sub_id, token, now);
}

int mqc_unsubscribe(struct mqc_session *s, const struct mqc_sub *subs, u32 n, u64 token,
		    u64 now)
{
	return sub_request(s, MQC_UNSUBSCRIBE, subs, n, 0, token, now);
}

/* ---- timers ------------------------------------------------------------------------------- */

static bool retry_on(const struct mqc_session *s)
{
	return !v5(s) && s->cfg.retry_ms && s->inflight;
}

static u64 ping_dead_at(const struct mqc_session *s)
{
	u64 from = s->last_rx > s->ping_sent ? s->last_rx : s->ping_sent;

	return from + MQC_PING_GRACE_MS((u64)s->ka_s * 1000);
}

u64 mqc_deadline(const struct mqc_session *s)
{
	u64 t = ~0ull;

	if (!s->connected)
		return t;
	if (s->ka_s)
		t = s->ping_outstanding ? ping_dead_at(s) : s->last_tx + (u64)s->ka_s * 1000;
	if (retry_on(s) && s->retry_at < t)
		t = s->retry_at;
	return t;
}

/* 3.1.1 in-session resend of everything unacknowledged for retry_ms. */
static int retry_due(struct mqc_session *s, u64 now)
{
	u64 next = ~0ull;
	u16 i;
	int err;

	for (i = s->rel_head; i != NIL && s->connected; i = s->slots[i]->next) {
		struct mqc_msg *m = s->slots[i];

		if (m->state == MQC_ST_WAIT_RELEASE)
			continue;
		if (m->sent_at + s->cfg.retry_ms <= now) {
			err = tx_ack(s, MQC_PUBREL, m->pid, 0, now);
			if (err)
				return err;
			m->sent_at = now;
			s->n_pubrel++;
			s->n_retransmit++;
		}
		if (m->sent_at + s->cfg.retry_ms < next)
			next = m->sent_at + s->cfg.retry_ms;
	}
	for (i = s->pub_head; i != NIL && s->connected; i = s->slots[i]->next) {
		struct mqc_msg *m = s->slots[i];

		if (m->sent_at + s->cfg.retry_ms <= now) {
			m->buf[0] |= DUP_BIT;
			err = tx_msg(s, m, now);
			if (err)
				return err;
			s->n_retransmit++;
		}
		if (m->sent_at + s->cfg.retry_ms < next)
			next = m->sent_at + s->cfg.retry_ms;
	}
	s->retry_at = next == ~0ull ? now + s->cfg.retry_ms : next;
	return 0;
}

int mqc_tick(struct mqc_session *s, u64 now)
{
	u64 ka_ms = (u64)s->ka_s * 1000;
	int err;

	if (!s->connected)
		return 0;
	if (ka_ms && s->ping_outstanding && now >= ping_dead_at(s)) {
		s->n_keepalive_timeout++;
		return close_session(s, -MQC_E_KEEPALIVE, 0, 0, false);
	}
	if (retry_on(s) && now >= s->retry_at) {
		err = retry_due(s, now);
		if (err)
			return err;
	}
	if (ka_ms && !s->ping_outstanding && now >= s->last_tx + ka_ms) {
		static const u8 ping[2] = { MQC_PINGREQ << 4, 0 };

		err = tx(s, ping, 2, now);
		if (err)
			return err;
		s->ping_outstanding = 1;
		s->ping_sent = now;
	}
	return 0;
}
