// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The offload engine: after CONNACK the socket is handed to mqttq.ko (TCP ULP); publishes go by sendmsg, results come back as records. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "mqttq_uapi.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define UD(q, op) (((u64)(q)->gen << 8) | (op))

/* SUBSCRIBE takes the top identifiers of an MQTTQ_SF_OUTBOX session */
#define OBO_PID_MAX 65531

int mq_off_init(struct mqttq *q)
{
	q->off_map_n = 2u * q->o.window + 256;
	q->off_map = calloc(q->off_map_n, sizeof(*q->off_map));
	q->obo_slot = calloc(q->o.window, sizeof(*q->obo_slot));
	q->obo_next = 1;
	q->off_seq = 1;
	return q->off_map && q->obo_slot ? 0 : -ENOMEM;
}

void mq_off_fini(struct mqttq *q)
{
	free(q->off_map);
	free(q->obo_slot);
	q->off_map = NULL;
	q->obo_slot = NULL;
}

/*
 * With the outbox the kernel session runs MQTTQ_SF_OUTBOX: we choose each
 * identifier and log it before the PUBLISH can leave, and a PUBREL leaves
 * only once its REL record is written (docs/design.md).
 */
static bool obo(const struct mqttq *q)
{
	return q->ob_fd >= 0;
}

/* An identifier whose slot (pid % window, as in the kernel's table) is free; 0 = none. */
static u16 obo_pick(const struct mqttq *q)
{
	u32 w = q->o.window;
	u16 pid = q->obo_next;

	for (u32 tries = 2 * w + 1; tries--; pid = pid >= OBO_PID_MAX ? 1 : pid + 1)
		if (!q->obo_slot[pid % w])
			return pid;
	return 0;
}

static void obo_forget(struct mqttq *q, struct mq_msg *mm)
{
	if (mm->m.pid && q->obo_slot[mm->m.pid % q->o.window] == mm)
		q->obo_slot[mm->m.pid % q->o.window] = NULL;
}

/* Sends the PUBRELs whose REL records are now in the file (per the fsync policy). */
static void obo_flush_rel(struct mqttq *q)
{
	if (!q->obo_nrel)
		return;
	mq_outbox_sync(q, false);
	if (q->fd >= 0 && setsockopt(q->fd, SOL_MQTTQ, MQTTQ_RELEASE, q->obo_rel,
				     q->obo_nrel * sizeof(q->obo_rel[0])))
		mq_log(q, MQTTQ_LOG_DEBUG, "MQTTQ_RELEASE: %s", strerror(errno));
	q->obo_nrel = 0;
}

/*
 * CONNACK must be read without consuming a byte more: whatever follows it
 * belongs to the kernel session. Peek, frame, then take exactly CONNACK.
 */
void mq_off_arm_peek(struct mqttq *q)
{
	struct io_uring_sqe *sqe;

	if (q->peek_armed || q->fd < 0)
		return;
	sqe = mq_get_sqe(q);
	if (!sqe)
		return;
	io_uring_prep_recv(sqe, q->fd, q->peek, sizeof(q->peek), MSG_PEEK);
	io_uring_sqe_set_data64(sqe, UD(q, MQ_OP_PEEK));
	q->peek_armed = true;
	q->peek_again = false;
}

static void off_arm_records(struct mqttq *q)
{
	struct io_uring_sqe *sqe;
	u32 room = q->rx_cap - q->rx_len;

	if (q->off_recv_armed || q->fd < 0 || q->engine != MQTTQ_ENGINE_OFFLOAD ||
	    q->state != MQ_ST_UP)
		return;
	/* one record per recv; it must fit whole */
	if (room < q->o.max_packet_in + sizeof(struct mqttq_rec))
		return;
	sqe = mq_get_sqe(q);
	if (!sqe)
		return;
	io_uring_prep_recv(sqe, q->fd, q->rx + q->rx_len, room, MSG_TRUNC);
	io_uring_sqe_set_data64(sqe, UD(q, MQ_OP_RECREC));
	q->off_recv_armed = true;
}

static u64 session_key(const struct mqttq *q)
{
	u64 h = 1469598103934665603ull;

	for (const char *p = q->client_id; *p; p++)
		h = (h ^ (u8)*p) * 1099511628211ull;
	return h ? h : 1;
}

/* Puts messages the kernel no longer has back at the head of the queue, in order. */
static void off_requeue_all(struct mqttq *q)
{
	struct mq_msg *list = NULL, **tail = &list, *last = NULL;
	u64 lo = ~0ull;

	/* oldest first: walk tokens in order from the smallest outstanding one */
	for (u32 i = 0; i < q->off_map_n; i++)
		if (q->off_map[i] && q->off_map[i]->off_seq < lo)
			lo = q->off_map[i]->off_seq;
	for (u64 t = lo; lo != ~0ull && t < q->off_seq; t++) {
		struct mq_msg *mm = q->off_map[t % q->off_map_n];

		if (!mm || mm->off_seq != t)
			continue;
		q->off_map[t % q->off_map_n] = NULL;
		mm->off_seq = 0;
		mm->in_core = 0;
		*tail = mm;
		tail = &mm->next;
		last = mm;
		q->pend_n++;
		q->pend_bytes += mm->m.len;
	}
	if (!list)
		return;
	*tail = q->pend_head;
	if (!q->pend_head)
		q->pend_tail = last;
	q->pend_head = list;
	q->off_out = q->off_out_qos = 0;
	q->st.inflight = 0;
}

/*
 * The first outbox session on the kernel: flows mq_outbox_open restored
 * into the in-process core move to the head of the queue, in log order,
 * keeping their identifiers. That core is not used by this engine.
 */
static int obo_take_restored(struct mqttq *q)
{
	struct mq_msg **v, *list = NULL, **tail = &list, *last = NULL;
	struct mqc_config cfg = q->s.cfg;
	const struct mqc_ops *ops = q->s.ops;
	u32 n = 0;

	q->obo_taken = true;
	v = calloc(q->nmsgs, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (u32 i = 0; i < q->nmsgs; i++)
		if (q->msgs[i].buf && q->msgs[i].in_core && q->msgs[i].m.pid)
			v[n++] = &q->msgs[i];
	/* insertion sort by log sequence: n is at most the window */
	for (u32 i = 1; i < n; i++)
		for (u32 j = i; j && v[j - 1]->wal_seq > v[j]->wal_seq; j--) {
			struct mq_msg *t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	for (u32 i = 0; i < n; i++) {
		struct mq_msg *mm = v[i];

		mm->in_core = 0;
		q->st.inflight--;
		q->obo_slot[mm->m.pid % q->o.window] = mm;
		*tail = mm;
		tail = &mm->next;
		last = mm;
		q->pend_n++;
		q->pend_bytes += mm->m.len;
	}
	free(v);
	if (list) {
		*tail = q->pend_head;
		if (!q->pend_head)
			q->pend_tail = last;
		q->pend_head = list;
	}
	return mqc_session_init(&q->s, &cfg, ops, q, q->s.slots, q->s.in2, q->s.ackq);
}

/*
 * A fresh MQTTQ_SF_OUTBOX session (there is no take-over): every flow we
 * hold an identifier for goes back in at the state the log knows. With the
 * server's session, past PUBREC only the PUBREL may go again (a PUBLISH
 * with that identifier could be a new message once the server has
 * PUBCOMPed); without it, such a flow is done and the rest start over.
 */
static void obo_resume(struct mqttq *q, bool session_present)
{
	struct mq_msg **pp = &q->pend_head, *prev = NULL;

	if (q->off_retry_head) {
		q->off_retry_tail->next = q->pend_head;
		if (!q->pend_head)
			q->pend_tail = q->off_retry_tail;
		q->pend_head = q->off_retry_head;
		q->off_retry_head = q->off_retry_tail = NULL;
	}
	for (u32 left = q->pend_n; *pp && left; left--) {
		struct mq_msg *mm = *pp;
		u8 st;

		if (!mm->m.qos || !mm->m.pid) {
			prev = mm;
			pp = &mm->next;
			continue;
		}
		st = mm->wal_rel ? MQTTQ_PUB_WAIT_COMP :
		     mm->m.qos == 1 ? MQTTQ_PUB_WAIT_ACK : MQTTQ_PUB_WAIT_REC;
		if (!session_present && st == MQTTQ_PUB_WAIT_COMP) {
			*pp = mm->next;
			if (q->pend_tail == mm)
				q->pend_tail = prev;
			q->pend_n--;
			q->pend_bytes -= mm->m.len;
			mm->next = NULL;
			obo_forget(q, mm);
			mq_complete(q, &mm->m, 0);
			continue;
		}
		mm->ob_state = session_present ? st : MQTTQ_PUB_NEW;
		q->obo_slot[mm->m.pid % q->o.window] = mm;
		prev = mm;
		pp = &mm->next;
	}
	q->st.queued = q->pend_n;
	q->st.queued_bytes = q->pend_bytes;
}

int mq_off_attach(struct mqttq *q, bool session_present)
{
	struct mqttq_session s;
	struct mqttq_sess_stats st;
	socklen_t sl = sizeof(st);

	if (setsockopt(q->fd, SOL_TCP, TCP_ULP, "mqttq", 5))
		return mq_err(q, -errno, "attaching the mqttq ULP: %s", strerror(errno));
	memset(&s, 0, sizeof(s));
	s.size = sizeof(s);
	s.version = q->o.version;
	s.ack_policy = MQTTQ_ACK_ON_RECEIPT;
	s.completion = MQTTQ_COMPLETE_COALESCE;
	s.session_present = session_present;
	s.keepalive_s = q->o.keepalive_s;
	s.window = q->o.window;
	s.recv_max = q->o.receive_max;
	s.max_packet_in = q->o.max_packet_in;
	s.retry_ms = q->o.retry_ms;
	s.linger_s = MQTTQ_DEFAULT;
	s.max_bytes = MQTTQ_DEFAULT;
	s.key = session_key(q);
	s.max_packet_out = q->lim.max_packet_size;
	s.receive_max = q->lim.receive_max;
	s.topic_alias_max = 0; /* aliases are not used through the kernel */
	s.server_keepalive = q->lim.server_keepalive;
	s.max_qos = q->lim.max_qos;
	s.retain_available = q->lim.retain_available;
	s.wildcard_sub_available = q->lim.wildcard_sub_available;
	s.sub_id_available = q->lim.sub_id_available;
	s.shared_sub_available = q->lim.shared_sub_available;
	if (obo(q)) {
		/* the outbox is the one recovery path: nothing lingers to be taken over */
		s.flags = MQTTQ_SF_OUTBOX;
		s.key = 0;
		s.linger_s = 0;
	}
	if (setsockopt(q->fd, SOL_MQTTQ, MQTTQ_SESSION, &s, sizeof(s)))
		return mq_err(q, -errno, "MQTTQ_SESSION: %s", strerror(errno));
	if (obo(q) && !q->obo_taken && obo_take_restored(q))
		return mq_err(q, -ENOMEM, "outbox: taking over the restored flows");
	{
		int pfd = mq_filter_prog_fd(q);

		/* the module runs the same eBPF filter on each PUBLISH it parses */
		if (pfd >= 0 && !(q->filter_flags & MQTTQ_FILTER_DELIVER_UNMATCHED)) {
			if (setsockopt(q->fd, SOL_MQTTQ, MQTTQ_FILTER_FD, &pfd, sizeof(pfd)))
				mq_log(q, MQTTQ_LOG_INFO, "MQTTQ_FILTER_FD: %s", strerror(errno));
			else
				q->st.filter_in_kernel = 1;
		}
	}
	memset(&st, 0, sizeof(st));
	if (getsockopt(q->fd, SOL_MQTTQ, MQTTQ_STATS, &st, &sl) || !st.resumed)
		off_requeue_all(q); /* no lingering kernel state: we resend what we hold */
	if (obo(q))
		obo_resume(q, session_present);
	q->engine = MQTTQ_ENGINE_OFFLOAD;
	q->off_recv_armed = false;
	off_arm_records(q);
	return 0;
}

static struct mq_msg *off_take(struct mqttq *q, u64 token)
{
	struct mq_msg *mm = q->off_map[token % q->off_map_n];

	if (!mm || mm->off_seq != token)
		return NULL;
	q->off_map[token % q->off_map_n] = NULL;
	mm->off_seq = 0;
	q->off_out--;
	if (mm->m.qos) {
		q->off_out_qos--;
		q->st.inflight--;
	}
	return mm;
}

static void off_record(struct mqttq *q, const struct mqttq_rec *r, const u8 *data, u32 dlen)
{
	struct mq_msg *mm;
	struct mq_req *rq;
	struct mq_ev *e;

	switch (r->type) {
	case MQTTQ_REC_PUB_DONE:
		mm = off_take(q, r->token);
		if (mm) {
			mm->in_core = 0; /* counters were settled by off_take */
			obo_forget(q, mm);
			mq_complete(q, &mm->m, r->reason);
		}
		break;
	case MQTTQ_REC_PUB_DONE_RUN:
		for (u32 i = 0; i < r->count; i++) {
			mm = off_take(q, r->token + i);
			if (mm) {
				mm->in_core = 0;
				obo_forget(q, mm);
				mq_complete(q, &mm->m, r->reason);
			}
		}
		break;
	case MQTTQ_REC_PUBREC:
		mm = q->off_map[r->token % q->off_map_n];
		if (!mm || mm->off_seq != r->token || mm->m.pid != r->pid)
			break;
		/* the REL record first: its PUBREL leaves with the next obo_flush_rel */
		mq_outbox_rel_msg(q, mm);
		q->obo_rel[q->obo_nrel++] = r->pid;
		if (q->obo_nrel == sizeof(q->obo_rel) / sizeof(q->obo_rel[0]))
			obo_flush_rel(q);
		break;
	case MQTTQ_REC_MESSAGE: {
		struct mqc_inmsg im;

		if ((u64)r->topic_len + r->payload_len + r->props_len > dlen)
			break;
		memset(&im, 0, sizeof(im));
		im.topic = data;
		im.topic_len = r->topic_len;
		im.payload = data + r->topic_len;
		im.payload_len = r->payload_len;
		im.props = data + r->topic_len + r->payload_len;
		im.props_len = r->props_len;
		im.qos = r->qos;
		im.pid = r->pid;
		im.retain = !!(r->flags & MQTTQ_RF_RETAIN);
		im.dup = !!(r->flags & MQTTQ_RF_DUP);
		mq_deliver(q, &im);
		break;
	}
	case MQTTQ_REC_SUBACK:
	case MQTTQ_REC_UNSUBACK:
		rq = mq_req_find(q, r->token);
		if (!rq || !r->token)
			break;
		if (rq->sync) {
			if (q->sync_codes)
				memcpy(q->sync_codes, data, r->count < rq->n ? r->count : rq->n);
			q->sync_ncodes = r->count;
			q->sync_sub_done = 1;
		} else {
			e = mq_evq_push(q, rq->unsub ? MQTTQ_EV_UNSUBSCRIBED : MQTTQ_EV_SUBSCRIBED);
			if (e) {
				u32 n = r->count < MQC_MAX_TOPICS ? r->count : MQC_MAX_TOPICS;

				memcpy(e->codes, data, n < dlen ? n : dlen);
				e->ev.codes = e->codes;
				e->ev.ncodes = n;
				e->ev.token = rq->user_token;
			}
		}
		rq->core_token = 0;
		break;
	case MQTTQ_REC_CLOSED:
		if (r->detail <= -MQC_E_BASE - 1) {
			q->st.proto_errors++;
			mq_err(q, r->detail, "kernel session ended: %s", mqttq_strerror(r->detail));
		}
		mq_reconnect(q, r->detail ? r->detail : r->err, r->reason,
			     !!(r->flags & MQTTQ_RF_BY_PEER), true);
		break;
	default:
		break;
	}
}

/* Parses whole records in rx while the event queue has room. */
void mq_off_progress(struct mqttq *q)
{
	while (q->engine == MQTTQ_ENGINE_OFFLOAD && q->state == MQ_ST_UP &&
	       q->rx_len - q->rx_off >= sizeof(struct mqttq_rec) &&
	       mq_evq_free(q) > mq_ev_margin(q)) {
		struct mqttq_rec r;
		const u8 *p = q->rx + q->rx_off;

		memcpy(&r, p, sizeof(r));
		if (r.len < sizeof(r) || r.len > q->rx_len - q->rx_off) {
			mq_reconnect(q, -EPROTO, 0, false, true);
			return;
		}
		q->rx_off += r.len;
		off_record(q, &r, p + sizeof(r), r.len - sizeof(r));
	}
	obo_flush_rel(q);
	/* retried messages go first, in their order */
	if (q->off_retry_head) {
		q->off_retry_tail->next = q->pend_head;
		if (!q->pend_head)
			q->pend_tail = q->off_retry_tail;
		q->pend_head = q->off_retry_head;
		q->off_retry_head = q->off_retry_tail = NULL;
	}
	off_arm_records(q);
}

/* Hands queued publishes to the kernel: one linked batch of sendmsg SQEs at a time. */
void mq_off_pump(struct mqttq *q)
{
	struct io_uring_sqe *sqe, *last = NULL;
	u32 win = q->o.window;

	if (q->off_batch || q->state != MQ_ST_UP || q->engine != MQTTQ_ENGINE_OFFLOAD)
		return;
	if (q->lim.receive_max && q->lim.receive_max < win)
		win = q->lim.receive_max;
	while (q->pend_head && q->off_out < q->off_map_n &&
	       mq_evq_free(q) > mq_ev_margin(q) + q->off_batch &&
	       (!q->pend_head->m.qos || q->off_out_qos < win) && q->off_batch < 64) {
		struct mq_msg *mm = q->pend_head;
		struct mqttq_pub *pub;
		struct cmsghdr *c;

		u16 pid = mm->m.pid;

		if (q->off_map[q->off_seq % q->off_map_n])
			break; /* token slot still taken by an old one */
		if (obo(q) && mm->m.qos && !pid && !(pid = obo_pick(q)))
			break; /* every identifier slot is held: wait for a completion */
		/* with the outbox no SQE may be submitted before the PID records are written */
		if (obo(q) && !io_uring_sq_space_left(&q->ring))
			break;
		sqe = mq_get_sqe(q);
		if (!sqe)
			break;
		if (obo(q) && mm->m.qos && !mm->m.pid) {
			mm->m.pid = pid;
			mm->ob_state = MQTTQ_PUB_NEW;
			q->obo_slot[pid % q->o.window] = mm;
			q->obo_next = pid >= OBO_PID_MAX ? 1 : pid + 1;
			mq_outbox_pid(q, mm);
		}
		q->pend_head = mm->next;
		if (!q->pend_head)
			q->pend_tail = NULL;
		q->pend_n--;
		q->pend_bytes -= mm->m.len;
		mm->next = NULL;
		mm->off_seq = q->off_seq++;
		q->off_map[mm->off_seq % q->off_map_n] = mm;
		q->off_out++;
		if (mm->m.qos) {
			q->off_out_qos++;
			q->st.inflight++;
		}
		mm->in_core = 1;
		memset(&mm->mh, 0, sizeof(mm->mh));
		memset(mm->cmsg, 0, sizeof(mm->cmsg));
		mm->iov[0].iov_base = mm->buf + mm->topic_off;
		mm->iov[0].iov_len = mm->topic_len;
		mm->iov[1].iov_base = mm->buf + mm->payload_off;
		mm->iov[1].iov_len = mm->payload_len;
		mm->iov[2].iov_base = mm->buf + mm->props_off;
		mm->iov[2].iov_len = mm->props_len;
		mm->mh.msg_iov = mm->iov;
		mm->mh.msg_iovlen = 3;
		mm->mh.msg_control = mm->cmsg;
		mm->mh.msg_controllen = CMSG_SPACE(sizeof(struct mqttq_pub));
		c = CMSG_FIRSTHDR(&mm->mh);
		c->cmsg_level = SOL_MQTTQ;
		c->cmsg_type = MQTTQ_CMSG_PUBLISH;
		c->cmsg_len = CMSG_LEN(sizeof(struct mqttq_pub));
		pub = (struct mqttq_pub *)CMSG_DATA(c);
		pub->token = mm->off_seq;
		pub->qos = mm->m.qos;
		pub->retain = mm->buf[0] & 1;
		pub->topic_len = mm->topic_len;
		pub->props_len = mm->props_len;
		if (obo(q) && mm->m.qos) {
			pub->pid = mm->m.pid;
			pub->state = mm->ob_state;
		}
		io_uring_prep_sendmsg(sqe, q->fd, &mm->mh, MSG_NOSIGNAL);
		/* the batch is a chain so the kernel takes them in our order */
		sqe->flags |= IOSQE_IO_LINK;
		io_uring_sqe_set_data64(sqe, UD(q, MQ_OP_OFFSEND));
		last = sqe;
		/* the CQE finds its message through this FIFO */
		mm->next = NULL;
		if (!q->off_batch_head)
			q->off_batch_head = mm;
		else
			q->off_batch_tail->next = mm;
		q->off_batch_tail = mm;
		q->off_batch++;
		q->st.sends++;
	}
	if (last)
		last->flags &= ~IOSQE_IO_LINK;
	/* identifiers reach the disk before the PUBLISHes carrying them leave */
	if (last && obo(q))
		mq_outbox_sync(q, false);
	q->st.queued = q->pend_n;
	q->st.queued_bytes = q->pend_bytes;
}

void mq_off_cqe(struct mqttq *q, struct io_uring_cqe *cqe, int op, bool stale)
{
	switch (op) {
	case MQ_OP_PEEK: {
		int n, r;
		u8 buf[512];

		if (stale)
			break;
		q->peek_armed = false;
		if (cqe->res <= 0) {
			q->rx_err = cqe->res ? cqe->res : -ECONNRESET;
			q->rx_eof = !cqe->res;
			break;
		}
		n = mqc_frame_len(q->peek, cqe->res, sizeof(q->peek));
		if (n < 0 || (n == 0 && cqe->res == sizeof(q->peek))) {
			mq_reconnect(q, n < 0 ? n : -MQC_E_TOO_BIG, 0, false, true);
			break;
		}
		if (n == 0 || n > cqe->res) {
			/* CONNACK not complete yet: look again shortly */
			q->peek_again = true;
			q->peek_at = mq_now_ms() + 2;
			break;
		}
		r = recv(q->fd, buf, n, MSG_WAITALL);
		if (r != n) {
			mq_reconnect(q, r < 0 ? -errno : -ECONNRESET, 0, false, true);
			break;
		}
		memcpy(q->rx + q->rx_len, buf, n);
		q->rx_len += n;
		break;
	}
	case MQ_OP_RECREC:
		if (stale)
			break;
		q->off_recv_armed = false;
		if (cqe->res <= 0) {
			if (cqe->res != -EAGAIN && cqe->res != -EINTR) {
				q->rx_err = cqe->res ? cqe->res : -ECONNRESET;
				q->rx_eof = !cqe->res;
			}
			break;
		}
		if ((u32)cqe->res > q->rx_cap - q->rx_len) {
			mq_reconnect(q, -EMSGSIZE, 0, false, true); /* truncated record */
			break;
		}
		q->st.recvs++;
		q->st.bytes_rx += cqe->res;
		q->rx_len += cqe->res;
		break;
	case MQ_OP_OFFSEND: {
		struct mq_msg *mm = q->off_batch_head;

		if (!mm)
			break;
		q->off_batch_head = mm->next;
		if (!q->off_batch_head)
			q->off_batch_tail = NULL;
		mm->next = NULL;
		q->off_batch--;
		if (cqe->res >= 0) {
			q->st.bytes_tx += cqe->res;
			break;
		}
		/* not accepted: take it back from the token map */
		if (!off_take(q, mm->off_seq))
			break;
		mm->in_core = 0;
		if (cqe->res == -EMSGSIZE || cqe->res == -EINVAL || cqe->res == -EBUSY) {
			mq_err(q, cqe->res, "kernel refused a publish: %s", strerror(-cqe->res));
			obo_forget(q, mm);
			mq_fail_msg(q, mm, cqe->res);
			break;
		}
		/* connection trouble or a broken chain: retry it first, in order */
		if (q->off_retry_tail)
			q->off_retry_tail->next = mm;
		else
			q->off_retry_head = mm;
		q->off_retry_tail = mm;
		q->pend_n++;
		q->pend_bytes += mm->m.len;
		break;
	}
	default:
		break;
	}
}

/* The socket is gone; messages stay mapped for a resume of the lingering kernel session. */
void mq_off_dropped(struct mqttq *q)
{
	q->peek_armed = q->peek_again = q->off_recv_armed = false;
}

int mq_off_subscribe(struct mqttq *q, const struct mqc_sub *subs, unsigned int n, u32 sub_id,
		     u64 token, bool unsub)
{
	u64 ctl[8] = { 0 };
	u8 *buf, *p;
	size_t len = 0;
	struct iovec iov;
	struct msghdr mh = { 0 };
	struct cmsghdr *c;
	struct mqttq_sub_req *s;
	ssize_t r;

	for (unsigned int i = 0; i < n; i++)
		len += sizeof(struct mqttq_filter) + subs[i].filter_len;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	p = buf;
	for (unsigned int i = 0; i < n; i++) {
		struct mqttq_filter f = { .options = subs[i].options, .len = subs[i].filter_len };

		memcpy(p, &f, sizeof(f));
		memcpy(p + sizeof(f), subs[i].filter, subs[i].filter_len);
		p += sizeof(f) + subs[i].filter_len;
	}
	iov.iov_base = buf;
	iov.iov_len = len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl;
	mh.msg_controllen = CMSG_SPACE(sizeof(struct mqttq_sub_req));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_MQTTQ;
	c->cmsg_type = unsub ? MQTTQ_CMSG_UNSUBSCRIBE : MQTTQ_CMSG_SUBSCRIBE;
	c->cmsg_len = CMSG_LEN(sizeof(struct mqttq_sub_req));
	s = (struct mqttq_sub_req *)CMSG_DATA(c);
	s->token = token;
	s->sub_id = sub_id;
	s->count = n;
	r = sendmsg(q->fd, &mh, MSG_NOSIGNAL);
	free(buf);
	return r < 0 ? -errno : 0;
}

int mq_off_disconnect(struct mqttq *q, u8 reason)
{
	if (setsockopt(q->fd, SOL_MQTTQ, MQTTQ_DISCONNECT, &reason, sizeof(reason)))
		return -errno;
	return 0;
}
