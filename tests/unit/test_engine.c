// SPDX-License-Identifier: GPL-2.0 OR MIT
/* cmocka tests of the core's QoS session engine, one per normative statement, both protocol versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mqc.h"

#define NMSG 512
#define WIN 16
#define RMAX 8

/* ---- fixture: a fake transport recording everything the engine does ---------------- */

struct done {
	struct mqc_msg *m;
	u8 reason;
};

struct got {
	u16 pid;
	u8 qos, dup;
	char topic[32];
	char payload[32];
};

struct fx {
	struct mqc_session s;
	struct mqc_ops ops;
	struct mqc_msg *slots[WIN];
	u8 in2[MQC_IN2_BYTES];
	u16 ackq[RMAX];

	u8 out[1 << 16];	/* everything sent, as one byte stream */
	u32 out_len, out_rd;
	int send_calls;
	int fail_send;		/* fail the Nth send from now (1 = next) */

	struct done done[NMSG];
	int ndone;
	struct got got[NMSG];
	int ngot;
	int deliver_ret;

	struct mqc_close close;
	int nclosed;

	u64 sub_token;
	u8 sub_codes[8];
	int sub_n, nsub_done;

	struct mqc_msg msg[NMSG];
	u8 mbuf[NMSG][64];
	int nmsg;
	u64 now;
};

static struct fx F;

static int fail_now(struct fx *f)
{
	return f->fail_send && --f->fail_send == 0;
}

static int cb_send(void *ctx, const u8 *buf, u32 len)
{
	struct fx *f = ctx;

	f->send_calls++;
	if (fail_now(f))
		return -EPIPE;
	assert_true(f->out_len + len <= sizeof(f->out));
	memcpy(f->out + f->out_len, buf, len);
	f->out_len += len;
	return 0;
}

static int cb_send_msg(void *ctx, struct mqc_msg *m)
{
	return cb_send(ctx, m->buf, m->len);
}

static void cb_complete(void *ctx, struct mqc_msg *m, u8 reason)
{
	struct fx *f = ctx;

	assert_true(f->ndone < NMSG);
	f->done[f->ndone].m = m;
	f->done[f->ndone].reason = reason;
	f->ndone++;
}

static int cb_deliver(void *ctx, const struct mqc_inmsg *im)
{
	struct fx *f = ctx;
	struct got *g;

	if (f->deliver_ret)
		return f->deliver_ret;
	assert_true(f->ngot < NMSG);
	g = &f->got[f->ngot++];
	g->pid = im->pid;
	g->qos = im->qos;
	g->dup = im->dup;
	snprintf(g->topic, sizeof(g->topic), "%.*s", im->topic_len, im->topic);
	snprintf(g->payload, sizeof(g->payload), "%.*s", (int)im->payload_len, im->payload);
	return 0;
}

static void cb_sub_done(void *ctx, u64 token, const u8 *codes, u32 n)
{
	struct fx *f = ctx;

	f->nsub_done++;
	f->sub_token = token;
	f->sub_n = (int)n;
	if (codes)
		memcpy(f->sub_codes, codes, n < 8 ? n : 8);
}

static void cb_closed(void *ctx, const struct mqc_close *c)
{
	struct fx *f = ctx;

	f->nclosed++;
	f->close = *c;
}

static struct fx *fx_init(u8 version, u16 window, u8 policy, u16 ka, u32 retry)
{
	struct fx *f = &F;
	struct mqc_config cfg = {
		.version = version,
		.ack_policy = policy,
		.keepalive_s = ka,
		.window = window,
		.recv_max = RMAX,
		.retry_ms = retry,
	};

	memset(f, 0, sizeof(*f));
	f->ops.send = cb_send;
	f->ops.send_msg = cb_send_msg;
	f->ops.complete = cb_complete;
	f->ops.deliver = cb_deliver;
	f->ops.sub_done = cb_sub_done;
	f->ops.closed = cb_closed;
	f->now = 1000;
	assert_int_equal(mqc_session_init(&f->s, &cfg, &f->ops, f, f->slots, f->in2, f->ackq), 0);
	return f;
}

static struct fx *fx_up(u8 version, u16 window, u8 policy)
{
	struct fx *f = fx_init(version, window, policy, 0, 0);

	assert_int_equal(mqc_connected(&f->s, NULL, false, f->now), 0);
	return f;
}

/* A QoS qos message with a real encoded PUBLISH for topic "t/<i>". */
static struct mqc_msg *mk(struct fx *f, u8 qos)
{
	int i = f->nmsg++;
	struct mqc_msg *m = &f->msg[i];
	char topic[16];
	struct mqc_pub p = { 0 };
	int n;

	assert_true(i < NMSG);
	snprintf(topic, sizeof(topic), "t/%d", i);
	p.topic.p = (const u8 *)topic;
	p.topic.len = (u32)strlen(topic);
	p.payload.p = (const u8 *)"x";
	p.payload.len = 1;
	p.qos = qos;
	p.pid = qos ? 0xffff : 0; /* placeholder, the engine writes the real one */
	memset(m, 0, sizeof(*m));
	n = mqc_encode_publish(f->s.cfg.version, &p, f->mbuf[i], sizeof(f->mbuf[i]), &m->pid_off);
	assert_true(n > 0);
	m->buf = f->mbuf[i];
	m->len = (u32)n;
	m->qos = qos;
	m->token = (u64)i;
	return m;
}

static struct mqc_msg *pub(struct fx *f, u8 qos)
{
	struct mqc_msg *m = mk(f, qos);

	assert_int_equal(mqc_publish(&f->s, m, f->now), 0);
	return m;
}

/* Next packet the engine sent, decoded with the codec (which checks it strictly). */
static bool next_pkt(struct fx *f, struct mqc_packet *p)
{
	int n;

	if (f->out_rd == f->out_len)
		return false;
	n = mqc_frame_len(f->out + f->out_rd, f->out_len - f->out_rd, 0);
	assert_true(n > 0 && (u32)n <= f->out_len - f->out_rd);
	assert_int_equal(mqc_decode(f->s.cfg.version, f->out + f->out_rd, (u32)n, 0, p), 0);
	f->out_rd += (u32)n;
	return true;
}

static void expect_pkt(struct fx *f, u8 type, u16 pid, struct mqc_packet *p)
{
	assert_true(next_pkt(f, p));
	assert_int_equal(p->type, type);
	if (pid)
		assert_int_equal(p->pid, pid);
}

static void expect_none(struct fx *f)
{
	struct mqc_packet p;

	if (next_pkt(f, &p))
		fail_msg("unexpected packet type %u pid %u", p.type, p.pid);
}

static int feed(struct fx *f, const struct mqc_packet *p)
{
	u8 b[512];
	int n = mqc_encode(f->s.cfg.version, p, b, sizeof(b));

	assert_true(n > 0);
	return mqc_input(&f->s, b, (u32)n, f->now);
}

static int feed_ack(struct fx *f, u8 type, u16 pid, u8 reason)
{
	struct mqc_packet p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.pid = pid;
	p.reason = reason;
	return feed(f, &p);
}

static int feed_pub(struct fx *f, u8 qos, u16 pid, bool dup, const char *payload)
{
	struct mqc_packet p;

	memset(&p, 0, sizeof(p));
	p.type = MQC_PUBLISH;
	p.publish.topic.p = (const u8 *)"in/x";
	p.publish.topic.len = 4;
	p.publish.payload.p = (const u8 *)payload;
	p.publish.payload.len = (u32)strlen(payload);
	p.publish.qos = qos;
	p.publish.pid = pid;
	p.publish.dup = dup;
	return feed(f, &p);
}

static int feed_raw(struct fx *f, const u8 *b, u32 n)
{
	return mqc_input(&f->s, b, n, f->now);
}

static bool inflight(const struct fx *f, u16 pid)
{
	u32 i;

	for (i = 0; i < f->s.nslots; i++)
		if (f->slots[i] && f->slots[i]->pid == pid && f->slots[i]->state)
			return true;
	return false;
}

static const u8 versions[] = { MQC_V311, MQC_V5 };
#define EACH_VERSION(v) for (size_t vi_ = 0; vi_ < 2 && ((v) = versions[vi_], 1); vi_++)

/* ---- packet identifiers ---------------------------------------------------------- */

/* MQTT-2.3.1-2 (v5 2.2.1-3): a new packet gets an identifier not in flight; through wrap. */
static void test_MQTT_2_3_1_2_pid_not_reused(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_msg *live[WIN], *idle[WIN];
		int nlive = 0, nidle = 0, round, i, j, wraps = 0;
		unsigned int seed = 12345;
		u16 prev = 0;

		for (i = 0; i < WIN; i++)
			idle[nidle++] = mk(f, 1);
		for (round = 0; round < 140000; round++) {
			struct mqc_packet p;
			int k;

			while (nidle) {
				struct mqc_msg *m = idle[--nidle];

				assert_int_equal(mqc_publish(&f->s, m, f->now), 0);
				assert_int_not_equal(m->pid, 0);
				wraps += m->pid < prev;
				prev = m->pid;
				for (j = 0; j < nlive; j++)
					assert_int_not_equal(live[j]->pid, m->pid);
				/* the identifier on the wire is the one the engine holds */
				expect_pkt(f, MQC_PUBLISH, m->pid, &p);
				live[nlive++] = m;
			}
			assert_int_equal(mqc_publish(&f->s, mk(f, 1), f->now), -EAGAIN);
			f->nmsg--;
			/* complete a random one, out of order */
			seed = seed * 1103515245 + 12345;
			k = (int)((seed >> 16) % (unsigned int)nlive);
			assert_int_equal(feed_ack(f, MQC_PUBACK, live[k]->pid, 0), 0);
			idle[nidle++] = live[k];
			live[k] = live[--nlive];
			f->out_len = f->out_rd = 0;
			f->ndone = 0;
		}
		assert_int_equal(f->nclosed, 0);
		/* the identifiers wrapped past 65535 (twice) */
		assert_true(wraps >= 2);
	}
}

/* MQTT-2.3.1-1: QoS > 0 packets carry a non-zero identifier, even across the wrap. */
static void test_MQTT_2_3_1_1_pid_nonzero_across_wrap(void **st)
{
	struct fx *f = fx_up(MQC_V311, 1, 0);
	u16 last = 0;
	int i;

	for (i = 0; i < 65536; i++) {
		struct mqc_msg *m = &f->msg[0];

		f->nmsg = 0;
		mk(f, 1);
		assert_int_equal(mqc_publish(&f->s, m, f->now), 0);
		assert_int_not_equal(m->pid, 0);
		assert_int_equal(m->buf[m->pid_off] << 8 | m->buf[m->pid_off + 1], m->pid);
		if (last && last != 0xffff)
			assert_int_equal(m->pid, last + 1);
		if (last == 0xffff)
			assert_int_equal(m->pid, 1);
		last = m->pid;
		assert_int_equal(feed_ack(f, MQC_PUBACK, m->pid, 0), 0);
		assert_int_equal(f->ndone, 1);
		f->out_len = f->out_rd = 0;
		f->ndone = 0;
	}
	assert_int_equal(last, 1);
}

/* SUBSCRIBE shares the identifier space with PUBLISH but takes no publish slot. */
static void test_MQTT_2_3_1_2_subscribe_shares_pid_space(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, 4, 0);
		struct mqc_sub sub = { (const u8 *)"a/#", 3, 1 };
		struct mqc_packet p;
		u16 spid;
		int i;

		assert_int_equal(mqc_subscribe(&f->s, &sub, 1, 0, 77, f->now), 0);
		expect_pkt(f, MQC_SUBSCRIBE, 0, &p);
		spid = p.pid;
		for (i = 0; i < 4; i++) {
			struct mqc_msg *m = pub(f, 1);

			assert_int_not_equal(m->pid, spid);
			expect_pkt(f, MQC_PUBLISH, m->pid, &p);
		}
		/* the full publish window did not block or take the SUBSCRIBE's identifier */
		assert_int_equal(mqc_publish(&f->s, mk(f, 1), f->now), -EAGAIN);
		/* cycle identifiers through the whole space: spid is never handed out */
		for (i = 0; i < 70000; i++) {
			struct mqc_msg *m = f->s.slots[f->s.pub_head];
			u16 old = m->pid;

			assert_int_equal(feed_ack(f, MQC_PUBACK, old, 0), 0);
			assert_int_equal(mqc_publish(&f->s, m, f->now), 0);
			assert_int_not_equal(m->pid, spid);
			f->out_len = f->out_rd = 0;
			f->ndone = 0;
		}
		assert_int_equal(f->nclosed, 0);
		assert_int_equal(f->nsub_done, 0);
	}
}

/* ---- QoS 1 and QoS 2 sender ------------------------------------------------------- */

/* MQTT-4.3.2-1: QoS 1 PUBLISH stays unacknowledged until its PUBACK. */
static void test_MQTT_4_3_2_1_qos1_until_puback(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_msg *m = pub(f, 1);
		struct mqc_packet p;

		expect_pkt(f, MQC_PUBLISH, m->pid, &p);
		assert_int_equal(p.publish.qos, 1);
		assert_int_equal(p.publish.dup, 0);
		assert_int_equal(f->ndone, 0);
		assert_int_equal(f->s.inflight, 1);
		assert_int_equal(feed_ack(f, MQC_PUBACK, m->pid, 0), 0);
		assert_int_equal(f->ndone, 1);
		assert_ptr_equal(f->done[0].m, m);
		assert_int_equal(f->done[0].reason, 0);
		assert_int_equal(f->s.inflight, 0);
		assert_int_equal(m->state, MQC_ST_FREE);
		expect_none(f);
	}
}

/* MQTT-4.3.3-1 (3.1.1 4.3.3): PUBREC answered with PUBREL; PUBCOMP completes. */
static void test_MQTT_4_3_3_1_qos2_sender_flow(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_msg *m = pub(f, 2);
		struct mqc_packet p;

		expect_pkt(f, MQC_PUBLISH, m->pid, &p);
		assert_int_equal(p.publish.qos, 2);
		assert_int_equal(feed_ack(f, MQC_PUBREC, m->pid, 0), 0);
		expect_pkt(f, MQC_PUBREL, m->pid, &p);
		assert_int_equal(p.flags, 2);
		assert_int_equal(f->ndone, 0);
		assert_int_equal(m->state, MQC_ST_WAIT_COMP);
		assert_int_equal(feed_ack(f, MQC_PUBCOMP, m->pid, 0), 0);
		assert_int_equal(f->ndone, 1);
		assert_int_equal(f->done[0].reason, 0);
		assert_int_equal(f->s.n_pubrel, 1);
		expect_none(f);
	}
}

static int npubrec;

static void cb_pubrec(void *ctx, struct mqc_msg *m)
{
	npubrec++;
}

/* cfg.user_flows (the outbox over a kernel session): the caller's pids, PUBREL held for mqc_release. */
static void test_user_flows_pid_and_held_pubrel(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_init(v, WIN, 0, 0, 0);
		struct mqc_config cfg = f->s.cfg;
		struct mqc_msg *m1, *m2, *m3, *m4;
		struct mqc_packet p;

		cfg.user_flows = 1;
		assert_int_equal(mqc_session_init(&f->s, &cfg, &f->ops, f, f->slots, f->in2,
						  f->ackq), -EINVAL); /* no ops->pubrec */
		f->ops.pubrec = cb_pubrec;
		npubrec = 0;
		assert_int_equal(mqc_session_init(&f->s, &cfg, &f->ops, f, f->slots, f->in2,
						  f->ackq), 0);
		assert_int_equal(mqc_connected(&f->s, NULL, true, f->now), 0);
		m1 = mk(f, 1);
		assert_int_equal(mqc_publish(&f->s, m1, f->now), -EINVAL);
		m1->pid = 7;
		assert_int_equal(mqc_publish_pid(&f->s, m1, f->now), 0);
		expect_pkt(f, MQC_PUBLISH, 7, &p);
		assert_int_equal(p.publish.dup, 0);
		m2 = mk(f, 2);
		m2->pid = 7;
		assert_int_equal(mqc_publish_pid(&f->s, m2, f->now), -EBUSY);
		m2->pid = 7 + WIN; /* same slot */
		assert_int_equal(mqc_publish_pid(&f->s, m2, f->now), -EBUSY);
		m2->pid = 9;
		assert_int_equal(mqc_publish_pid(&f->s, m2, f->now), 0);
		expect_pkt(f, MQC_PUBLISH, 9, &p);
		assert_int_equal(mqc_release(&f->s, 9, f->now), -ENOENT);
		assert_int_equal(feed_ack(f, MQC_PUBREC, 9, 0), 0);
		assert_int_equal(npubrec, 1);
		assert_int_equal(m2->state, MQC_ST_WAIT_RELEASE);
		assert_int_equal(feed_ack(f, MQC_PUBREC, 9, 0), 0); /* resent: still held */
		assert_int_equal(npubrec, 1);
		expect_none(f);
		assert_int_equal(mqc_release(&f->s, 9, f->now), 0);
		expect_pkt(f, MQC_PUBREL, 9, &p);
		assert_int_equal(mqc_release(&f->s, 9, f->now), -ENOENT);
		assert_int_equal(feed_ack(f, MQC_PUBCOMP, 9, 0), 0);
		assert_int_equal(f->ndone, 1);
		assert_ptr_equal(f->done[0].m, m2);
		/* restored flows: WAIT_COMP sends only PUBREL, WAIT_REC the PUBLISH with DUP */
		m3 = mk(f, 2);
		m3->pid = 11;
		m3->state = MQC_ST_WAIT_COMP;
		assert_int_equal(mqc_publish_pid(&f->s, m3, f->now), 0);
		expect_pkt(f, MQC_PUBREL, 11, &p);
		expect_none(f);
		m4 = mk(f, 2);
		m4->pid = 12;
		m4->state = MQC_ST_WAIT_REC;
		assert_int_equal(mqc_publish_pid(&f->s, m4, f->now), 0);
		expect_pkt(f, MQC_PUBLISH, 12, &p);
		assert_int_equal(p.publish.dup, 1);
		/* a state that does not fit the QoS */
		m4 = mk(f, 1);
		m4->pid = 13;
		m4->state = MQC_ST_WAIT_COMP;
		assert_int_equal(mqc_publish_pid(&f->s, m4, f->now), -EINVAL);
		assert_int_equal(f->nclosed, 0);
	}
}

/* A PUBREC repeated after our PUBREL is answered with PUBREL again, never PUBLISH. */
static void test_MQTT_4_3_3_1_duplicate_pubrec_gets_pubrel(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_msg *m = pub(f, 2);
		struct mqc_packet p;

		expect_pkt(f, MQC_PUBLISH, m->pid, &p);
		assert_int_equal(feed_ack(f, MQC_PUBREC, m->pid, 0), 0);
		expect_pkt(f, MQC_PUBREL, m->pid, &p);
		assert_int_equal(feed_ack(f, MQC_PUBREC, m->pid, 0), 0);
		expect_pkt(f, MQC_PUBREL, m->pid, &p);
		expect_none(f);
		assert_int_equal(f->nclosed, 0);
	}
}

/* v5 4.3.3 / 3.4.2.1: PUBREC >= 0x80 ends the flow as a failure, with no PUBREL. */
static void test_v5_4_3_3_pubrec_error_ends_flow(void **st)
{
	struct fx *f = fx_up(MQC_V5, WIN, 0);
	struct mqc_msg *m = pub(f, 2);
	struct mqc_packet p;
	u16 pid = m->pid;

	expect_pkt(f, MQC_PUBLISH, pid, &p);
	assert_int_equal(feed_ack(f, MQC_PUBREC, pid, 0x87), 0);
	expect_none(f);
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->done[0].reason, 0x87);
	assert_int_equal(f->s.inflight, 0);
	assert_false(inflight(f, pid));
	/* the flow is over: a PUBCOMP for it now is an error */
	assert_int_equal(feed_ack(f, MQC_PUBCOMP, pid, 0), -MQC_E_UNKNOWN_PID);
}

/* v5 3.4.2.1: PUBACK >= 0x80 completes with that reason; success codes complete with 0. */
static void test_v5_3_4_2_1_puback_reason_reported(void **st)
{
	struct fx *f = fx_up(MQC_V5, WIN, 0);
	struct mqc_msg *a = pub(f, 1), *b = pub(f, 1);

	assert_int_equal(feed_ack(f, MQC_PUBACK, a->pid, 0x97), 0);
	assert_int_equal(feed_ack(f, MQC_PUBACK, b->pid, 0x10), 0);
	assert_int_equal(f->ndone, 2);
	assert_ptr_equal(f->done[0].m, a);
	assert_int_equal(f->done[0].reason, 0x97);
	assert_ptr_equal(f->done[1].m, b);
	assert_int_equal(f->done[1].reason, 0);
}

/* QoS 0 is handed to the transport and completes at once; it takes no identifier. */
static void test_MQTT_4_3_1_qos0_completes_on_send(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_msg *m = pub(f, 0);
		struct mqc_packet p;

		expect_pkt(f, MQC_PUBLISH, 0, &p);
		assert_int_equal(p.publish.qos, 0);
		assert_int_equal(f->ndone, 1);
		assert_int_equal(f->s.inflight, 0);
		assert_int_equal(m->state, MQC_ST_FREE);
	}
}

/* ---- flow control ------------------------------------------------------------------ */

/* v5 MQTT-4.9.0-2: no QoS 1/2 PUBLISH beyond the server's Receive Maximum. */
static void test_v5_4_9_0_2_quota_blocks_publish(void **st)
{
	struct fx *f = fx_init(MQC_V5, WIN, 0, 0, 0);
	struct mqc_limits lim = { .receive_max = 2, .max_qos = 2 };
	struct mqc_msg *a, *b, *c;

	assert_int_equal(mqc_connected(&f->s, &lim, false, f->now), 0);
	a = pub(f, 1);
	b = pub(f, 2);
	c = mk(f, 1);
	assert_int_equal(mqc_publish(&f->s, c, f->now), -EAGAIN);
	assert_int_equal(c->state, MQC_ST_FREE);
	/* PUBREC does not return quota; PUBCOMP does (4.9) */
	assert_int_equal(feed_ack(f, MQC_PUBREC, b->pid, 0), 0);
	assert_int_equal(mqc_publish(&f->s, c, f->now), -EAGAIN);
	assert_int_equal(feed_ack(f, MQC_PUBCOMP, b->pid, 0), 0);
	assert_int_equal(mqc_publish(&f->s, c, f->now), 0);
	assert_int_equal(mqc_publish(&f->s, mk(f, 2), f->now), -EAGAIN);
	assert_int_equal(feed_ack(f, MQC_PUBACK, a->pid, 0), 0);
	assert_int_equal(mqc_publish(&f->s, mk(f, 2), f->now), 0);
	assert_int_equal(f->s.inflight, 2);
}

/* v5 3.3.4-8 (4.9): QoS 0 PUBLISH is sent while the window is full. */
static void test_v5_3_3_4_8_qos0_not_blocked_by_full_window(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, 2, 0);
		struct mqc_packet p;

		pub(f, 1);
		pub(f, 2);
		assert_int_equal(mqc_publish(&f->s, mk(f, 1), f->now), -EAGAIN);
		expect_pkt(f, MQC_PUBLISH, 0, &p);
		expect_pkt(f, MQC_PUBLISH, 0, &p);
		pub(f, 0);
		expect_pkt(f, MQC_PUBLISH, 0, &p);
		assert_int_equal(p.publish.qos, 0);
		assert_int_equal(f->ndone, 1);
	}
}

/* Acks for inbound messages are never held back by a full outbound window. */
static void test_v5_4_9_0_acks_not_blocked_by_full_window(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, 1, 0);
		struct mqc_packet p;

		pub(f, 1);
		expect_pkt(f, MQC_PUBLISH, 0, &p);
		assert_int_equal(feed_pub(f, 1, 9, false, "a"), 0);
		expect_pkt(f, MQC_PUBACK, 9, &p);
		assert_int_equal(feed_pub(f, 2, 10, false, "b"), 0);
		expect_pkt(f, MQC_PUBREC, 10, &p);
		assert_int_equal(feed_ack(f, MQC_PUBREL, 10, 0), 0);
		expect_pkt(f, MQC_PUBCOMP, 10, &p);
	}
}

/* 3.1.1 has no Receive Maximum: cfg.window caps QoS 1/2 in flight. */
static void test_MQTT_3_1_1_local_window_caps_inflight(void **st)
{
	struct fx *f = fx_up(MQC_V311, 3, 0);
	struct mqc_limits lim = { .receive_max = 1 }; /* ignored on 3.1.1 */
	int i;

	mqc_disconnected(&f->s);
	assert_int_equal(mqc_connected(&f->s, &lim, false, f->now), 0);
	for (i = 0; i < 3; i++)
		pub(f, 1 + (i & 1));
	assert_int_equal(mqc_publish(&f->s, mk(f, 1), f->now), -EAGAIN);
	assert_int_equal(f->s.inflight, 3);
}

/* v5 3.2.2.3.4 / 3.3.4: QoS above the server's Maximum QoS is refused. */
static void test_v5_3_2_2_3_4_max_qos_enforced(void **st)
{
	struct fx *f = fx_init(MQC_V5, WIN, 0, 0, 0);
	struct mqc_limits lim = { .max_qos = 1 };

	assert_int_equal(mqc_connected(&f->s, &lim, false, f->now), 0);
	assert_int_equal(mqc_publish(&f->s, mk(f, 2), f->now), -EINVAL);
	assert_int_equal(mqc_publish(&f->s, mk(f, 1), f->now), 0);
}

/* v5 3.2.2.3.6 MQTT-3.2.2-15: nothing larger than the server's Maximum Packet Size. */
static void test_v5_3_2_2_15_max_packet_size(void **st)
{
	struct fx *f = fx_init(MQC_V5, WIN, 0, 0, 0);
	struct mqc_limits lim = { .max_qos = 2, .max_packet_size = 8 };
	struct mqc_sub sub = { (const u8 *)"a/very/long/filter", 18, 0 };

	assert_int_equal(mqc_connected(&f->s, &lim, false, f->now), 0);
	assert_int_equal(mqc_publish(&f->s, mk(f, 1), f->now), -EMSGSIZE);
	assert_int_equal(mqc_subscribe(&f->s, &sub, 1, 0, 1, f->now), -EMSGSIZE);
	assert_int_equal(f->out_len, 0);
}

/* ---- QoS 1 and QoS 2 receiver ------------------------------------------------------- */

/* MQTT-4.3.2-2 (receiver): QoS 1 delivered and answered with PUBACK of the same id. */
static void test_MQTT_4_3_2_2_inbound_qos1_puback(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_packet p;

		assert_int_equal(feed_pub(f, 1, 321, false, "hi"), 0);
		assert_int_equal(f->ngot, 1);
		assert_string_equal(f->got[0].topic, "in/x");
		assert_string_equal(f->got[0].payload, "hi");
		assert_int_equal(f->got[0].pid, 321);
		expect_pkt(f, MQC_PUBACK, 321, &p);
		expect_none(f);
	}
}

/* MQTT-4.3.3-2: a QoS 2 PUBLISH is delivered once; the resend only gets PUBREC again. */
static void test_MQTT_4_3_3_2_no_duplicate_delivery(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_packet p;

		assert_int_equal(feed_pub(f, 2, 5, false, "once"), 0);
		expect_pkt(f, MQC_PUBREC, 5, &p);
		assert_int_equal(feed_pub(f, 2, 5, true, "once"), 0);
		expect_pkt(f, MQC_PUBREC, 5, &p);
		/* across a reconnect with session: still not delivered again */
		mqc_disconnected(&f->s);
		assert_int_equal(mqc_connected(&f->s, NULL, true, f->now), 0);
		assert_int_equal(feed_pub(f, 2, 5, true, "once"), 0);
		expect_pkt(f, MQC_PUBREC, 5, &p);
		assert_int_equal(f->ngot, 1);
		assert_int_equal(feed_ack(f, MQC_PUBREL, 5, 0), 0);
		expect_pkt(f, MQC_PUBCOMP, 5, &p);
		assert_int_equal(p.reason, 0);
		/* after PUBCOMP the identifier starts a new message (MQTT-4.3.3-3) */
		assert_int_equal(feed_pub(f, 2, 5, false, "again"), 0);
		assert_int_equal(f->ngot, 2);
		assert_string_equal(f->got[1].payload, "again");
		assert_int_equal(f->nclosed, 0);
	}
}

/* PUBREL for an identifier we hold no state for: PUBCOMP anyway (v5: reason 0x92). */
static void test_MQTT_4_3_3_pubrel_unknown_gets_pubcomp(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_packet p;

		assert_int_equal(feed_ack(f, MQC_PUBREL, 77, 0), 0);
		expect_pkt(f, MQC_PUBCOMP, 77, &p);
		assert_int_equal(p.reason, v == MQC_V5 ? 0x92 : 0);
		assert_int_equal(f->nclosed, 0);
	}
}

/* MQTT-4.6.0-2/-4: acks leave in arrival order, also when given on delivery. */
static void test_MQTT_4_6_0_2_acks_in_arrival_order(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, MQC_ACK_ON_DELIVERY);
		struct mqc_packet p;

		assert_int_equal(feed_pub(f, 1, 30, false, "a"), 0);
		assert_int_equal(feed_pub(f, 2, 31, false, "b"), 0);
		assert_int_equal(feed_pub(f, 1, 32, false, "c"), 0);
		assert_int_equal(feed_pub(f, 0, 0, false, "d"), 0);
		assert_int_equal(f->ngot, 4);
		/* unread means unacked */
		expect_none(f);
		assert_int_equal(mqc_delivered(&f->s, 30, 1), 0);
		expect_pkt(f, MQC_PUBACK, 30, &p);
		expect_none(f);
		/* reading the third acknowledges the second first */
		assert_int_equal(mqc_delivered(&f->s, 32, 1), 0);
		expect_pkt(f, MQC_PUBREC, 31, &p);
		expect_pkt(f, MQC_PUBACK, 32, &p);
		expect_none(f);
		assert_int_equal(mqc_delivered(&f->s, 31, 2), -ENOENT);
		assert_int_equal(feed_ack(f, MQC_PUBREL, 31, 0), 0);
		expect_pkt(f, MQC_PUBCOMP, 31, &p);
	}
}

/* Under ack-on-delivery, a resend of a message not yet read is neither delivered nor acked. */
static void test_MQTT_4_3_3_2_unread_resend_not_redelivered(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, MQC_ACK_ON_DELIVERY);
		struct mqc_packet p;

		assert_int_equal(feed_pub(f, 2, 40, false, "q2"), 0);
		assert_int_equal(feed_pub(f, 1, 41, false, "q1"), 0);
		mqc_disconnected(&f->s);
		assert_int_equal(mqc_connected(&f->s, NULL, true, f->now), 0);
		assert_int_equal(feed_pub(f, 2, 40, true, "q2"), 0);
		assert_int_equal(feed_pub(f, 1, 41, true, "q1"), 0);
		assert_int_equal(f->ngot, 2);
		expect_none(f);
		assert_int_equal(mqc_delivered(&f->s, 40, 2), 0);
		expect_pkt(f, MQC_PUBREC, 40, &p);
		assert_int_equal(mqc_delivered(&f->s, 41, 2), -EINVAL); /* wrong QoS */
		assert_int_equal(mqc_delivered(&f->s, 41, 1), 0);
		expect_pkt(f, MQC_PUBACK, 41, &p);
	}
}

/* A refused delivery (no room) is not acknowledged, so the peer resends it. */
static void test_MQTT_4_3_3_refused_delivery_not_acked(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_packet p;

		f->deliver_ret = -ENOBUFS;
		assert_int_equal(feed_pub(f, 1, 50, false, "a"), 0);
		assert_int_equal(feed_pub(f, 2, 51, false, "b"), 0);
		expect_none(f);
		f->deliver_ret = 0;
		/* the QoS 2 identifier was not marked received: the resend is delivered */
		assert_int_equal(feed_pub(f, 2, 51, true, "b"), 0);
		assert_int_equal(f->ngot, 1);
		expect_pkt(f, MQC_PUBREC, 51, &p);
	}
}

/* v5 MQTT-3.3.4-9: more unacknowledged QoS 1/2 than our Receive Maximum is 0x93. */
static void test_v5_3_3_4_9_receive_max_exceeded(void **st)
{
	struct fx *f = fx_up(MQC_V5, WIN, MQC_ACK_ON_DELIVERY);
	struct mqc_packet p;
	int i;

	for (i = 0; i < RMAX; i++)
		assert_int_equal(feed_pub(f, 1 + (i & 1), (u16)(100 + i), false, "x"), 0);
	assert_int_equal(f->nclosed, 0);
	assert_int_equal(feed_pub(f, 1, 200, false, "x"), -MQC_E_PROTOCOL);
	assert_int_equal(f->nclosed, 1);
	assert_int_equal(f->close.reason, 0x93);
	expect_pkt(f, MQC_DISCONNECT, 0, &p);
	assert_int_equal(p.reason, 0x93);
	assert_int_equal(f->s.n_proto_err, 1);
	assert_int_equal(f->ngot, RMAX);
}

/* Receive Maximum counts QoS 2 until PUBREL even when acked on receipt. */
static void test_v5_3_3_4_9_qos2_counts_until_pubrel(void **st)
{
	struct fx *f = fx_up(MQC_V5, WIN, 0);
	int i;

	for (i = 0; i < RMAX; i++)
		assert_int_equal(feed_pub(f, 2, (u16)(100 + i), false, "x"), 0);
	assert_int_equal(feed_ack(f, MQC_PUBREL, 100, 0), 0);
	assert_int_equal(feed_pub(f, 2, 300, false, "x"), 0);
	assert_int_equal(f->nclosed, 0);
	assert_int_equal(feed_pub(f, 1, 301, false, "x"), -MQC_E_PROTOCOL);
	assert_int_equal(f->close.reason, 0x93);
}

/* A QoS 1 PUBLISH reusing an identifier held by an unfinished inbound QoS 2 flow. */
static void test_MQTT_2_3_1_4_inbound_pid_in_use(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);

		assert_int_equal(feed_pub(f, 2, 60, false, "x"), 0);
		assert_int_equal(feed_pub(f, 1, 60, false, "y"), -MQC_E_PROTOCOL);
		assert_int_equal(f->close.err, -MQC_E_PROTOCOL);
		assert_int_equal(f->ngot, 1);
	}
}

/* v5 MQTT-3.3.2-7/3.2.2.3.8: we grant no Topic Alias Maximum, so an alias is 0x94. */
static void test_v5_3_3_2_7_inbound_topic_alias_rejected(void **st)
{
	struct fx *f = fx_up(MQC_V5, WIN, 0);
	struct mqc_packet p;

	memset(&p, 0, sizeof(p));
	p.type = MQC_PUBLISH;
	p.publish.topic.p = (const u8 *)"a";
	p.publish.topic.len = 1;
	p.publish.topic_alias = 1;
	assert_int_equal(feed(f, &p), -MQC_E_ALIAS);
	assert_int_equal(f->close.reason, 0x94);
	assert_int_equal(f->ngot, 0);
}

/* v5 MQTT-3.1.2-24 analogue: inbound over our Maximum Packet Size is 0x95. */
static void test_v5_3_1_2_24_inbound_too_big(void **st)
{
	struct fx *f = fx_init(MQC_V5, WIN, 0, 0, 0);
	struct mqc_packet p;

	f->s.cfg.max_packet_in = 16;
	assert_int_equal(mqc_connected(&f->s, NULL, false, f->now), 0);
	assert_int_equal(feed_pub(f, 0, 0, false, "0123456789abcdef"), -MQC_E_TOO_BIG);
	assert_int_equal(f->close.reason, 0x95);
	expect_pkt(f, MQC_DISCONNECT, 0, &p);
	assert_int_equal(p.reason, 0x95);
	assert_int_equal(f->ngot, 0);
}

/* ---- session resume ------------------------------------------------------------------ */

/* MQTT-4.6.0-1 / 4.4.0-1: resend unacknowledged PUBLISH in send order, original ids, DUP. */
static void test_MQTT_4_6_0_1_resend_in_order(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_msg *m[4];
		struct mqc_packet p;
		int i;

		for (i = 0; i < 4; i++)
			m[i] = pub(f, 1 + (i & 1));
		/* one finished, one at PUBREL: neither is a PUBLISH to resend */
		assert_int_equal(feed_ack(f, MQC_PUBACK, m[2]->pid, 0), 0);
		assert_int_equal(feed_ack(f, MQC_PUBREC, m[1]->pid, 0), 0);
		mqc_disconnected(&f->s);
		f->out_len = f->out_rd = 0;
		assert_int_equal(mqc_publish(&f->s, mk(f, 1), f->now), -ENOTCONN);
		assert_int_equal(mqc_connected(&f->s, NULL, true, f->now), 0);
		expect_pkt(f, MQC_PUBREL, m[1]->pid, &p);
		expect_pkt(f, MQC_PUBLISH, m[0]->pid, &p);
		assert_int_equal(p.publish.dup, 1);
		assert_int_equal(p.publish.qos, 1);
		expect_pkt(f, MQC_PUBLISH, m[3]->pid, &p);
		assert_int_equal(p.publish.dup, 1);
		assert_int_equal(p.publish.qos, 2);
		expect_none(f);
		assert_int_equal(f->s.n_retransmit, 3);
	}
}

/* v5 MQTT-4.4.0-1 / MQTT-4.3.3-1: after PUBREL only PUBREL is resent, never the PUBLISH. */
static void test_v5_4_4_0_1_resend_pubrel_not_publish(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_msg *m = pub(f, 2);
		struct mqc_packet p;
		int round;

		assert_int_equal(feed_ack(f, MQC_PUBREC, m->pid, 0), 0);
		for (round = 0; round < 3; round++) {
			mqc_disconnected(&f->s);
			f->out_len = f->out_rd = 0;
			assert_int_equal(mqc_connected(&f->s, NULL, true, f->now), 0);
			expect_pkt(f, MQC_PUBREL, m->pid, &p);
			expect_none(f);
		}
		assert_int_equal(feed_ack(f, MQC_PUBCOMP, m->pid, 0), 0);
		assert_int_equal(f->ndone, 1);
	}
}

/* MQTT-4.6.0-3: PUBRELs are resent in the order their PUBRECs arrived. */
static void test_MQTT_4_6_0_3_pubrel_resend_in_pubrec_order(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_msg *m[3];
		struct mqc_packet p;
		int i;

		for (i = 0; i < 3; i++)
			m[i] = pub(f, 2);
		assert_int_equal(feed_ack(f, MQC_PUBREC, m[2]->pid, 0), 0);
		assert_int_equal(feed_ack(f, MQC_PUBREC, m[0]->pid, 0), 0);
		assert_int_equal(feed_ack(f, MQC_PUBREC, m[1]->pid, 0), 0);
		mqc_disconnected(&f->s);
		f->out_len = f->out_rd = 0;
		assert_int_equal(mqc_connected(&f->s, NULL, true, f->now), 0);
		expect_pkt(f, MQC_PUBREL, m[2]->pid, &p);
		expect_pkt(f, MQC_PUBREL, m[0]->pid, &p);
		expect_pkt(f, MQC_PUBREL, m[1]->pid, &p);
		expect_none(f);
	}
}

/* MQTT-3.2.2-5 (v5 3.2.2-4): no server session: PUBREL'd flows complete, the rest restart. */
static void test_MQTT_3_2_2_5_no_session_restarts(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_msg *a = pub(f, 1), *b = pub(f, 2), *c = pub(f, 2);
		struct mqc_packet p;

		assert_int_equal(feed_ack(f, MQC_PUBREC, b->pid, 0), 0);
		assert_int_equal(feed_pub(f, 2, 9, false, "in"), 0);
		mqc_disconnected(&f->s);
		f->out_len = f->out_rd = 0;
		assert_int_equal(mqc_connected(&f->s, NULL, false, f->now), 0);
		assert_int_equal(f->ndone, 1);
		assert_ptr_equal(f->done[0].m, b);
		assert_int_equal(f->done[0].reason, 0);
		expect_pkt(f, MQC_PUBLISH, a->pid, &p);
		assert_int_equal(p.publish.dup, 0);
		expect_pkt(f, MQC_PUBLISH, c->pid, &p);
		assert_int_equal(p.publish.dup, 0);
		expect_none(f);
		/* inbound state went with the session: pid 9 is a new message */
		assert_int_equal(feed_pub(f, 2, 9, false, "in"), 0);
		assert_int_equal(f->ngot, 2);
	}
}

/* Crash-safe outbox: restored flows resume with their identifiers and states. */
static void test_MQTT_4_4_0_1_restore_then_resume(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_init(v, WIN, 0, 0, 0);
		struct mqc_msg *a = mk(f, 1), *b = mk(f, 2), *c = mk(f, 2);
		struct mqc_packet p;

		a->pid = 100;
		a->state = MQC_ST_WAIT_ACK;
		b->pid = 200;
		b->state = MQC_ST_WAIT_COMP;
		c->pid = 300;
		c->state = MQC_ST_WAIT_REC;
		assert_int_equal(mqc_restore(&f->s, a), 0);
		assert_int_equal(mqc_restore(&f->s, b), 0);
		assert_int_equal(mqc_restore(&f->s, c), 0);
		assert_int_equal(mqc_connected(&f->s, NULL, true, f->now), 0);
		expect_pkt(f, MQC_PUBREL, 200, &p);
		expect_pkt(f, MQC_PUBLISH, 100, &p);
		assert_int_equal(p.publish.dup, 1);
		expect_pkt(f, MQC_PUBLISH, 300, &p);
		assert_int_equal(p.publish.dup, 1);
		expect_none(f);
		/* a new publish never takes a restored identifier */
		assert_int_not_equal(pub(f, 1)->pid, 100);
		assert_int_equal(feed_ack(f, MQC_PUBACK, 100, 0), 0);
		assert_int_equal(feed_ack(f, MQC_PUBCOMP, 200, 0), 0);
		assert_int_equal(feed_ack(f, MQC_PUBREC, 300, 0), 0);
		assert_int_equal(f->ndone, 2);
		assert_int_equal(f->nclosed, 0);
	}
}

static void test_restore_rejects_inconsistent(void **st)
{
	struct fx *f = fx_init(MQC_V5, WIN, 0, 0, 0);
	struct mqc_msg *a = mk(f, 1), *b = mk(f, 1), *c = mk(f, 2);

	a->pid = 5;
	a->state = MQC_ST_WAIT_REC; /* QoS 1 cannot wait for PUBREC */
	assert_int_equal(mqc_restore(&f->s, a), -EINVAL);
	a->state = MQC_ST_WAIT_ACK;
	a->pid = 0;
	assert_int_equal(mqc_restore(&f->s, a), -EINVAL);
	a->pid = 5;
	assert_int_equal(mqc_restore(&f->s, a), 0);
	b->pid = 5 + WIN; /* same slot */
	b->state = MQC_ST_WAIT_ACK;
	assert_int_equal(mqc_restore(&f->s, b), -EBUSY);
	assert_int_equal(mqc_connected(&f->s, NULL, true, f->now), 0);
	c->pid = 6;
	c->state = MQC_ST_WAIT_REC;
	assert_int_equal(mqc_restore(&f->s, c), -EISCONN);
}

/* ---- 3.1.1 in-session retry, v5 none ------------------------------------------------- */

static void test_MQTT_4_4_v311_retry_resends_dup(void **st)
{
	struct fx *f = fx_init(MQC_V311, WIN, 0, 0, 500);
	struct mqc_msg *a, *b;
	struct mqc_packet p;

	assert_int_equal(mqc_connected(&f->s, NULL, false, f->now), 0);
	a = pub(f, 1);
	b = pub(f, 2);
	assert_int_equal(feed_ack(f, MQC_PUBREC, b->pid, 0), 0);
	f->out_len = f->out_rd = 0;
	assert_true(mqc_deadline(&f->s) <= f->now + 500);
	assert_int_equal(mqc_tick(&f->s, f->now + 499), 0);
	expect_none(f);
	f->now += 500;
	assert_int_equal(mqc_tick(&f->s, f->now), 0);
	expect_pkt(f, MQC_PUBREL, b->pid, &p);
	expect_pkt(f, MQC_PUBLISH, a->pid, &p);
	assert_int_equal(p.publish.dup, 1);
	expect_none(f);
	assert_int_equal(f->s.n_retransmit, 2);
	/* the peer may answer both copies: the second PUBACK is dropped quietly */
	assert_int_equal(feed_ack(f, MQC_PUBACK, a->pid, 0), 0);
	assert_int_equal(feed_ack(f, MQC_PUBACK, a->pid, 0), 0);
	assert_int_equal(f->nclosed, 0);
	assert_int_equal(f->ndone, 1);
}

/* v5 MQTT-4.4.0-1: no resend on a live connection, whatever retry_ms says. */
static void test_v5_4_4_0_1_no_resend_on_live_connection(void **st)
{
	struct fx *f = fx_init(MQC_V5, WIN, 0, 0, 500);

	assert_int_equal(mqc_connected(&f->s, NULL, false, f->now), 0);
	pub(f, 1);
	f->out_len = f->out_rd = 0;
	assert_int_equal(mqc_deadline(&f->s), ~0ull);
	assert_int_equal(mqc_tick(&f->s, f->now + 100000), 0);
	expect_none(f);
	assert_int_equal(f->s.n_retransmit, 0);
}

/* ---- keepalive ----------------------------------------------------------------------- */

/* MQTT-3.1.2-23: PINGREQ when nothing was sent for the keepalive; PINGRESP keeps it up. */
static void test_MQTT_3_1_2_23_pingreq_after_idle(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_init(v, WIN, 0, 10, 0);
		struct mqc_packet p;
		u64 t0 = f->now;
		int i;

		assert_int_equal(mqc_connected(&f->s, NULL, false, t0), 0);
		assert_int_equal(mqc_deadline(&f->s), t0 + 10000);
		assert_int_equal(mqc_tick(&f->s, t0 + 9999), 0);
		expect_none(f);
		for (i = 1; i <= 5; i++) {
			u64 t = t0 + (u64)i * 10000;

			assert_int_equal(mqc_deadline(&f->s), t);
			assert_int_equal(mqc_tick(&f->s, t), 0);
			expect_pkt(f, MQC_PINGREQ, 0, &p);
			assert_int_equal(mqc_deadline(&f->s), t + MQC_PING_GRACE_MS(10000));
			f->now = t + 100;
			assert_int_equal(feed_raw(f, (const u8 *)"\xd0\x00", 2), 0);
			assert_int_equal(mqc_tick(&f->s, t + MQC_PING_GRACE_MS(10000)), 0);
			expect_none(f);
		}
		assert_int_equal(f->nclosed, 0);
	}
}

/* Traffic we send postpones the PINGREQ. */
static void test_MQTT_3_1_2_23_traffic_defers_ping(void **st)
{
	struct fx *f = fx_init(MQC_V5, WIN, 0, 10, 0);
	struct mqc_packet p;

	assert_int_equal(mqc_connected(&f->s, NULL, false, f->now), 0);
	f->now += 6000;
	pub(f, 0);
	expect_pkt(f, MQC_PUBLISH, 0, &p);
	assert_int_equal(mqc_tick(&f->s, 1000 + 10000), 0);
	expect_none(f);
	assert_int_equal(mqc_deadline(&f->s), f->now + 10000);
	assert_int_equal(mqc_tick(&f->s, f->now + 10000), 0);
	expect_pkt(f, MQC_PINGREQ, 0, &p);
}

/* No PINGRESP within the grace (1.5 x keepalive after the last send): dead. */
static void test_MQTT_3_1_2_24_dead_without_pingresp(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_init(v, WIN, 0, 4, 0);
		struct mqc_packet p;
		u64 t0 = f->now;

		assert_int_equal(mqc_connected(&f->s, NULL, false, t0), 0);
		assert_int_equal(mqc_tick(&f->s, t0 + 4000), 0);
		expect_pkt(f, MQC_PINGREQ, 0, &p);
		assert_int_equal(mqc_tick(&f->s, t0 + 5999), 0);
		assert_int_equal(f->nclosed, 0);
		assert_int_equal(mqc_tick(&f->s, t0 + 6000), -MQC_E_KEEPALIVE);
		assert_int_equal(f->nclosed, 1);
		assert_int_equal(f->close.err, -MQC_E_KEEPALIVE);
		assert_int_equal(f->s.n_keepalive_timeout, 1);
		assert_int_equal(mqc_deadline(&f->s), ~0ull);
	}
}

/* Any packet from the peer after the PINGREQ shows it is alive. */
static void test_MQTT_3_1_2_24_any_packet_extends(void **st)
{
	struct fx *f = fx_init(MQC_V311, WIN, 0, 4, 0);
	struct mqc_packet p;
	u64 t0 = f->now;

	assert_int_equal(mqc_connected(&f->s, NULL, false, t0), 0);
	assert_int_equal(mqc_tick(&f->s, t0 + 4000), 0);
	expect_pkt(f, MQC_PINGREQ, 0, &p);
	f->now = t0 + 5000;
	assert_int_equal(feed_pub(f, 0, 0, false, "x"), 0);
	assert_int_equal(mqc_tick(&f->s, t0 + 6000), 0);
	assert_int_equal(f->nclosed, 0);
	assert_int_equal(mqc_tick(&f->s, t0 + 7000), -MQC_E_KEEPALIVE);
}

/* v5 3.2.2.3.14: Server Keep Alive replaces ours. */
static void test_v5_3_2_2_21_server_keepalive_used(void **st)
{
	struct fx *f = fx_init(MQC_V5, WIN, 0, 60, 0);
	struct mqc_limits lim = { .server_keepalive = 5, .max_qos = 2 };
	struct mqc_packet p;

	assert_int_equal(mqc_connected(&f->s, &lim, false, f->now), 0);
	assert_int_equal(mqc_deadline(&f->s), f->now + 5000);
	assert_int_equal(mqc_tick(&f->s, f->now + 5000), 0);
	expect_pkt(f, MQC_PINGREQ, 0, &p);
}

static void test_keepalive_zero_means_no_timer(void **st)
{
	struct fx *f = fx_up(MQC_V311, WIN, 0);

	assert_int_equal(mqc_deadline(&f->s), ~0ull);
	assert_int_equal(mqc_tick(&f->s, 1ull << 40), 0);
	expect_none(f);
}

/* ---- bad peer input ------------------------------------------------------------------- */

static void test_MQTT_4_8_0_1_unknown_puback_closes(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_packet p;

		assert_int_equal(feed_ack(f, MQC_PUBACK, 1234, 0), -MQC_E_UNKNOWN_PID);
		assert_int_equal(f->nclosed, 1);
		assert_int_equal(f->close.err, -MQC_E_UNKNOWN_PID);
		assert_int_equal(f->s.n_proto_err, 1);
		if (v == MQC_V5) {
			expect_pkt(f, MQC_DISCONNECT, 0, &p);
			assert_int_equal(p.reason, 0x82);
		}
		expect_none(f);
		assert_int_equal(feed_ack(f, MQC_PUBACK, 1, 0), -ENOTCONN);
	}
}

static void test_MQTT_4_8_0_1_ack_of_wrong_kind(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_msg *m = pub(f, 2);

		assert_int_equal(feed_ack(f, MQC_PUBACK, m->pid, 0), -MQC_E_PROTOCOL);
		assert_int_equal(f->ndone, 0);
		f = fx_up(v, WIN, 0);
		m = pub(f, 1);
		assert_int_equal(feed_ack(f, MQC_PUBREC, m->pid, 0), -MQC_E_PROTOCOL);
		f = fx_up(v, WIN, 0);
		m = pub(f, 2);
		assert_int_equal(feed_ack(f, MQC_PUBCOMP, m->pid, 0), -MQC_E_PROTOCOL);
	}
}

struct bad_in {
	const char *name;
	u8 version;
	const u8 *b;
	u32 n;
	int err;
};

#define BAD(nm, v, e, ...) { nm, v, (const u8[]){ __VA_ARGS__ }, sizeof((const u8[]){ __VA_ARGS__ }), e }

static const struct bad_in bad_inputs[] = {
	BAD("engine_varint_5_bytes", MQC_V5, -MQC_E_VARINT, 0x30, 0xff, 0xff, 0xff, 0xff, 0x01),
	BAD("engine_reserved_type_0", MQC_V311, -MQC_E_TYPE, 0x00, 0x00),
	BAD("engine_auth_on_311", MQC_V311, -MQC_E_TYPE, 0xf0, 0x00),
	BAD("engine_puback_flags", MQC_V311, -MQC_E_FLAGS, 0x42, 0x02, 0x00, 0x01),
	BAD("engine_pubrel_flags", MQC_V5, -MQC_E_FLAGS, 0x60, 0x02, 0x00, 0x01),
	BAD("engine_qos3", MQC_V5, -MQC_E_QOS3, 0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01),
	BAD("engine_dup_qos0", MQC_V311, -MQC_E_DUP_QOS0, 0x38, 0x03, 0x00, 0x01, 'a'),
	BAD("engine_pid0_publish", MQC_V311, -MQC_E_PID0, 0x32, 0x05, 0x00, 0x01, 'a', 0x00, 0x00),
	BAD("engine_pid0_puback", MQC_V5, -MQC_E_PID0, 0x40, 0x02, 0x00, 0x00),
	BAD("engine_topic_wildcard", MQC_V311, -MQC_E_TOPIC_WILD, 0x30, 0x03, 0x00, 0x01, '#'),
	BAD("engine_topic_empty", MQC_V5, -MQC_E_TOPIC_EMPTY, 0x30, 0x03, 0x00, 0x00, 0x00),
	BAD("engine_topic_nul", MQC_V311, -MQC_E_UTF8_NUL, 0x30, 0x04, 0x00, 0x02, 'a', 0x00),
	BAD("engine_topic_surrogate", MQC_V311, -MQC_E_UTF8_SURROGATE, 0x30, 0x05, 0x00, 0x03,
	    0xed, 0xa0, 0x80),
	BAD("engine_topic_overlong", MQC_V311, -MQC_E_UTF8, 0x30, 0x04, 0x00, 0x02, 0xc0, 0xaf),
	BAD("engine_topic_len_past_end", MQC_V311, -MQC_E_SHORT, 0x30, 0x03, 0x00, 0x09, 'a'),
	BAD("engine_prop_len_past_end", MQC_V5, -MQC_E_SHORT, 0x30, 0x04, 0x00, 0x01, 'a', 0x09),
	BAD("engine_prop_unknown", MQC_V5, -MQC_E_PROP_UNKNOWN, 0x30, 0x06, 0x00, 0x01, 'a', 0x02,
	    0x7f, 0x00),
	BAD("engine_prop_wrong_packet", MQC_V5, -MQC_E_PROP_WRONG, 0x30, 0x07, 0x00, 0x01, 'a',
	    0x03, 0x21, 0x00, 0x05),
	BAD("engine_prop_dup", MQC_V5, -MQC_E_PROP_DUP, 0x30, 0x08, 0x00, 0x01, 'a', 0x04, 0x01,
	    0x00, 0x01, 0x00),
	BAD("engine_puback_trailing_311", MQC_V311, -MQC_E_TRAILING, 0x40, 0x03, 0x00, 0x01, 0x00),
	BAD("engine_puback_bad_reason", MQC_V5, -MQC_E_REASON, 0x40, 0x03, 0x00, 0x01, 0x92),
	BAD("engine_puback_short", MQC_V311, -MQC_E_SHORT, 0x40, 0x01, 0x00),
	BAD("engine_pingresp_trailing", MQC_V311, -MQC_E_TRAILING, 0xd0, 0x01, 0x00),
	BAD("engine_server_sends_connect", MQC_V311, -MQC_E_PROTOCOL, 0x10, 0x00),
	BAD("engine_server_sends_pingreq", MQC_V5, -MQC_E_PROTOCOL, 0xc0, 0x00),
	BAD("engine_connack_twice", MQC_V311, -MQC_E_PROTOCOL, 0x20, 0x02, 0x00, 0x00),
	BAD("engine_auth_after_connack", MQC_V5, -MQC_E_PROTOCOL, 0xf0, 0x00),
	BAD("engine_suback_unknown_pid", MQC_V311, -MQC_E_UNKNOWN_PID, 0x90, 0x03, 0x00, 0x07,
	    0x00),
	BAD("engine_frame_longer_than_input", MQC_V311, -MQC_E_SHORT, 0x30, 0x10, 0x00, 0x01, 'a'),
	BAD("engine_disconnect_bad_reason", MQC_V5, -MQC_E_REASON, 0xe0, 0x01, 0x03),
	BAD("engine_disconnect_prop_wrong", MQC_V5, -MQC_E_PROP_WRONG, 0xe0, 0x05, 0x00, 0x03, 0x21,
	    0x00, 0x01),
	BAD("engine_puback_props_trailing", MQC_V5, -MQC_E_TRAILING, 0x40, 0x05, 0x00, 0x01, 0x00,
	    0x00, 0x00),
	BAD("engine_puback_props_short", MQC_V5, -MQC_E_SHORT, 0x40, 0x05, 0x00, 0x01, 0x00, 0x05,
	    0x00),
	BAD("engine_puback_prop_wrong", MQC_V5, -MQC_E_PROP_WRONG, 0x40, 0x07, 0x00, 0x01, 0x00,
	    0x03, 0x21, 0x00, 0x01),
	BAD("engine_suback_short", MQC_V5, -MQC_E_SHORT, 0x90, 0x01, 0x00),
	BAD("engine_suback_pid0", MQC_V311, -MQC_E_PID0, 0x90, 0x03, 0x00, 0x00, 0x00),
	BAD("engine_unsuback_trailing_311", MQC_V311, -MQC_E_TRAILING, 0xb0, 0x03, 0x00, 0x01,
	    0x00),
	BAD("engine_suback_bad_code", MQC_V311, -MQC_E_REASON, 0x90, 0x03, 0x00, 0x01, 0x03),
	BAD("engine_suback_props_short", MQC_V5, -MQC_E_SHORT, 0x90, 0x04, 0x00, 0x01, 0x07, 0x00),
};

static void run_bad_input(void **st)
{
	const struct bad_in *c = *st;
	struct fx *f = fx_up(c->version, WIN, 0);
	struct mqc_packet p;

	assert_int_equal(mqc_input(&f->s, c->b, c->n, f->now), c->err);
	assert_int_equal(f->nclosed, 1);
	assert_int_equal(f->close.err, c->err);
	assert_int_equal(f->close.by_peer, 0);
	assert_int_equal(f->s.n_proto_err, 1);
	assert_int_equal(f->ngot, 0);
	if (c->version == MQC_V5) {
		expect_pkt(f, MQC_DISCONNECT, 0, &p);
		assert_true(p.reason >= 0x80);
	}
	expect_none(f);
}

/* Trailing bytes after a complete frame inside the buffer. */
static void test_input_trailing_after_frame(void **st)
{
	struct fx *f = fx_up(MQC_V311, WIN, 0);
	static const u8 b[] = { 0xd0, 0x00, 0xd0 };

	assert_int_equal(feed_raw(f, b, 3), -MQC_E_TRAILING);
	assert_int_equal(f->s.n_proto_err, 1);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------------------- */

static void test_MQTT_3_8_4_1_subscribe_suback(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_sub subs[2] = { { (const u8 *)"a/+/c", 5, 1 }, { (const u8 *)"b/#", 3, 2 } };
		struct mqc_packet p, ack;
		char longf[300];

		assert_int_equal(mqc_subscribe(&f->s, subs, 2, v == MQC_V5 ? 42 : 0, 0xabc, f->now),
				 0);
		expect_pkt(f, MQC_SUBSCRIBE, 0, &p);
		assert_int_equal(p.flags, 2);
		assert_int_equal(p.sub.n, 2);
		assert_memory_equal(p.sub.filter[0].p, "a/+/c", 5);
		assert_int_equal(p.sub.options[0], 1);
		assert_memory_equal(p.sub.filter[1].p, "b/#", 3);
		assert_int_equal(p.sub.options[1], 2);
		if (v == MQC_V5)
			assert_int_equal(p.props.subscription_id, 42);
		memset(&ack, 0, sizeof(ack));
		ack.type = MQC_SUBACK;
		ack.pid = p.pid;
		ack.suback.n = 2;
		ack.suback.codes[0] = 1;
		ack.suback.codes[1] = 0x80;
		assert_int_equal(feed(f, &ack), 0);
		assert_int_equal(f->nsub_done, 1);
		assert_int_equal(f->sub_token, 0xabc);
		assert_int_equal(f->sub_n, 2);
		assert_int_equal(f->sub_codes[0], 1);
		assert_int_equal(f->sub_codes[1], 0x80);
		/* a filter longer than the staging buffer arrives intact */
		memset(longf, 'x', sizeof(longf));
		subs[0].filter = (const u8 *)longf;
		subs[0].filter_len = sizeof(longf);
		assert_int_equal(mqc_subscribe(&f->s, subs, 1, 0, 1, f->now), 0);
		expect_pkt(f, MQC_SUBSCRIBE, 0, &p);
		assert_int_equal(p.sub.filter[0].len, sizeof(longf));
		assert_memory_equal(p.sub.filter[0].p, longf, sizeof(longf));
	}
}

static void test_MQTT_3_10_4_4_unsubscribe_unsuback(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_sub subs[1] = { { (const u8 *)"a/b", 3, 0 } };
		struct mqc_packet p, ack;

		assert_int_equal(mqc_unsubscribe(&f->s, subs, 1, 9, f->now), 0);
		expect_pkt(f, MQC_UNSUBSCRIBE, 0, &p);
		assert_int_equal(p.sub.n, 1);
		memset(&ack, 0, sizeof(ack));
		ack.type = MQC_UNSUBACK;
		ack.pid = p.pid;
		ack.suback.n = 1;
		assert_int_equal(feed(f, &ack), 0);
		assert_int_equal(f->nsub_done, 1);
		assert_int_equal(f->sub_token, 9);
		assert_int_equal(f->sub_n, v == MQC_V5 ? 1 : 0);
	}
}

static void test_MQTT_3_9_3_1_suback_code_count_checked(void **st)
{
	struct fx *f = fx_up(MQC_V5, WIN, 0);
	struct mqc_sub subs[2] = { { (const u8 *)"a", 1, 0 }, { (const u8 *)"b", 1, 0 } };
	struct mqc_packet p, ack;

	assert_int_equal(mqc_subscribe(&f->s, subs, 2, 0, 1, f->now), 0);
	expect_pkt(f, MQC_SUBSCRIBE, 0, &p);
	memset(&ack, 0, sizeof(ack));
	ack.type = MQC_SUBACK;
	ack.pid = p.pid;
	ack.suback.n = 1;
	assert_int_equal(feed(f, &ack), -MQC_E_PROTOCOL);
	/* the pending request ends with the session */
	assert_int_equal(f->nsub_done, 1);
	assert_int_equal(f->sub_n, 0);
}

static void test_subscribe_rejects_bad_requests(void **st)
{
	struct fx *f = fx_up(MQC_V311, WIN, 0);
	struct mqc_sub bad[] = {
		{ (const u8 *)"a/#/b", 5, 0 }, { (const u8 *)"a+", 2, 0 }, { (const u8 *)"", 0, 0 },
		{ (const u8 *)"a", 1, 3 },     { (const u8 *)"a", 1, 4 },
	};
	struct mqc_sub ok = { (const u8 *)"a", 1, 0 };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mqc_subscribe(&f->s, &bad[i], 1, 0, 1, f->now), -EINVAL);
	assert_int_equal(mqc_subscribe(&f->s, &ok, 1, 5, 1, f->now), -EINVAL); /* sub id, 3.1.1 */
	assert_int_equal(mqc_subscribe(&f->s, &ok, 0, 0, 1, f->now), -EINVAL);
	assert_int_equal(f->out_len, 0);
	for (i = 0; i < MQC_MAX_SUBREQ; i++)
		assert_int_equal(mqc_subscribe(&f->s, &ok, 1, 0, i, f->now), 0);
	assert_int_equal(mqc_subscribe(&f->s, &ok, 1, 0, 1, f->now), -EAGAIN);
	mqc_disconnected(&f->s);
	assert_int_equal(f->nsub_done, MQC_MAX_SUBREQ);
	assert_int_equal(mqc_subscribe(&f->s, &ok, 1, 0, 1, f->now), -ENOTCONN);
}

/* ---- connection lifecycle -------------------------------------------------------------- */

static void test_MQTT_3_2_connack_through_input(void **st)
{
	struct fx *f = fx_init(MQC_V5, WIN, 0, 30, 0);
	struct mqc_packet ca;
	u8 b[64];
	int n;

	assert_int_equal(feed_pub(f, 0, 0, false, "x"), -ENOTCONN);
	memset(&ca, 0, sizeof(ca));
	ca.type = MQC_CONNACK;
	ca.connack.props.present = 1ull << MQC_P_RECEIVE_MAX | 1ull << MQC_P_SERVER_KEEPALIVE |
				   1ull << MQC_P_MAX_QOS;
	ca.connack.props.receive_max = 1;
	ca.connack.props.server_keepalive = 7;
	ca.connack.props.max_qos = 1;
	n = mqc_encode(MQC_V5, &ca, b, sizeof(b));
	assert_true(n > 0);
	assert_int_equal(mqc_input(&f->s, b, (u32)n, f->now), 0);
	assert_true(f->s.connected);
	assert_int_equal(f->s.lim.receive_max, 1);
	assert_int_equal(f->s.lim.max_qos, 1);
	assert_int_equal(mqc_deadline(&f->s), f->now + 7000);
	pub(f, 1);
	assert_int_equal(mqc_publish(&f->s, mk(f, 1), f->now), -EAGAIN);
	assert_int_equal(mqc_publish(&f->s, mk(f, 2), f->now), -EINVAL);
}

static void test_MQTT_3_2_2_connack_refused(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_init(v, WIN, 0, 0, 0);
		u8 rc = v == MQC_V5 ? 0x87 : 5;
		u8 b[5] = { 0x20, (u8)(v == MQC_V5 ? 3 : 2), 0, rc, 0 };

		assert_int_equal(mqc_input(&f->s, b, b[1] + 2u, f->now), -ECONNREFUSED);
		assert_false(f->s.connected);
		assert_int_equal(f->nclosed, 1);
		assert_int_equal(f->close.reason, rc);
		/* MQTT-3.2.2-4/-6: session present with an error code is malformed */
		f = fx_init(v, WIN, 0, 0, 0);
		b[2] = 1;
		assert_int_equal(mqc_input(&f->s, b, b[1] + 2u, f->now), -MQC_E_PROTOCOL);
		assert_int_equal(f->nclosed, 1);
	}
}

static void test_v5_3_14_peer_disconnect(void **st)
{
	struct fx *f = fx_up(MQC_V5, WIN, 0);
	static const u8 d[] = { 0xe0, 0x02, 0x8b, 0x00 };
	struct mqc_msg *m = pub(f, 1);

	assert_int_equal(feed_raw(f, d, sizeof(d)), -ECONNRESET);
	assert_int_equal(f->nclosed, 1);
	assert_int_equal(f->close.by_peer, 1);
	assert_int_equal(f->close.reason, 0x8b);
	/* in-flight state survives for the next connection */
	assert_int_equal(m->state, MQC_ST_WAIT_ACK);
	assert_int_equal(f->s.n_proto_err, 0);
}

static void test_MQTT_3_14_disconnect_sent(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_packet p;

		assert_int_equal(mqc_disconnect(&f->s, v == MQC_V5 ? 0x04 : 0, f->now), 0);
		expect_pkt(f, MQC_DISCONNECT, 0, &p);
		assert_int_equal(p.reason, v == MQC_V5 ? 0x04 : 0);
		assert_false(f->s.connected);
		assert_int_equal(f->nclosed, 0);
		assert_int_equal(mqc_disconnect(&f->s, 0, f->now), -ENOTCONN);
	}
}

/* A transport that fails a send ends the session; QoS 1/2 stay for resume. */
static void test_send_failure_closes_session(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, 0);
		struct mqc_msg *m;
		struct mqc_packet p;

		f->fail_send = 1;
		assert_int_equal(mqc_publish(&f->s, mk(f, 0), f->now), -EPIPE);
		assert_int_equal(f->ndone, 0);
		assert_int_equal(f->nclosed, 1);
		assert_int_equal(f->close.err, -EPIPE);
		f = fx_up(v, WIN, 0);
		f->fail_send = 1;
		m = mk(f, 1);
		assert_int_equal(mqc_publish(&f->s, m, f->now), 0);
		assert_int_equal(f->nclosed, 1);
		assert_int_equal(m->state, MQC_ST_WAIT_ACK);
		assert_int_equal(mqc_connected(&f->s, NULL, true, f->now), 0);
		expect_pkt(f, MQC_PUBLISH, m->pid, &p);
		assert_int_equal(p.publish.dup, 1);
	}
}

static void test_session_init_rejects_bad_config(void **st)
{
	struct fx *f = &F;
	struct mqc_config cfg = { .version = 3, .window = 1, .recv_max = 1 };

	memset(f, 0, sizeof(*f));
	f->ops.send = cb_send;
	f->ops.send_msg = cb_send_msg;
	f->ops.complete = cb_complete;
	f->ops.deliver = cb_deliver;
	f->ops.closed = cb_closed;
	assert_int_equal(mqc_session_init(&f->s, &cfg, &f->ops, f, f->slots, f->in2, f->ackq),
			 -EINVAL);
	cfg.version = MQC_V5;
	cfg.window = 0;
	assert_int_equal(mqc_session_init(&f->s, &cfg, &f->ops, f, f->slots, f->in2, f->ackq),
			 -EINVAL);
	cfg.window = 1;
	cfg.ack_policy = MQC_ACK_ON_DELIVERY;
	assert_int_equal(mqc_session_init(&f->s, &cfg, &f->ops, f, f->slots, f->in2, NULL),
			 -EINVAL);
	assert_int_equal(mqc_session_init(&f->s, &cfg, &f->ops, f, f->slots, f->in2, f->ackq), 0);
}

/* v5 acks may carry a reason string and user properties: validated, then accepted. */
static void test_v5_3_4_2_2_ack_properties_accepted(void **st)
{
	struct fx *f = fx_up(MQC_V5, WIN, 0);
	struct mqc_msg *m = pub(f, 1);
	struct mqc_packet p;

	memset(&p, 0, sizeof(p));
	p.type = MQC_PUBACK;
	p.pid = m->pid;
	p.reason = 0x10;
	p.props.present = 1ull << MQC_P_REASON_STRING;
	p.props.reason_string.p = (const u8 *)"no subscribers";
	p.props.reason_string.len = 14;
	assert_int_equal(feed(f, &p), 0);
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->done[0].reason, 0);
	assert_int_equal(f->nclosed, 0);
}

/* The server answering our PUBREC we have not sent yet (ack on delivery) breaks 4.3.3. */
static void test_MQTT_4_3_3_pubrel_before_pubrec(void **st)
{
	u8 v;

	EACH_VERSION(v) {
		struct fx *f = fx_up(v, WIN, MQC_ACK_ON_DELIVERY);

		assert_int_equal(feed_pub(f, 2, 70, false, "x"), 0);
		expect_none(f);
		assert_int_equal(feed_ack(f, MQC_PUBREL, 70, 0), -MQC_E_PROTOCOL);
		assert_int_equal(f->s.n_proto_err, 1);
	}
}

/* 3.1.1 has no Receive Maximum: a full ack queue leaves the message for the resend. */
static void test_MQTT_4_6_0_2_full_ackq_not_delivered_311(void **st)
{
	struct fx *f = fx_up(MQC_V311, WIN, MQC_ACK_ON_DELIVERY);
	struct mqc_packet p;
	int i;

	for (i = 0; i < RMAX; i++)
		assert_int_equal(feed_pub(f, 1, (u16)(10 + i), false, "x"), 0);
	assert_int_equal(feed_pub(f, 1, 99, false, "late"), 0);
	assert_int_equal(f->ngot, RMAX);
	assert_int_equal(f->nclosed, 0);
	assert_int_equal(mqc_delivered(&f->s, 10, 1), 0);
	expect_pkt(f, MQC_PUBACK, 10, &p);
	assert_int_equal(feed_pub(f, 1, 99, true, "late"), 0);
	assert_int_equal(f->ngot, RMAX + 1);
}

/* Every CONNACK limit reaches the session; bad CONNACKs close before the session starts. */
static void test_MQTT_3_2_2_connack_limits_and_errors(void **st)
{
	static const struct {
		u8 v;
		u8 b[8];
		u32 n;
		int err;
	} bad[] = {
		{ MQC_V311, { 0x20, 0x02, 0x02, 0x00 }, 4, -MQC_E_FLAGS },
		{ MQC_V311, { 0x21, 0x02, 0x00, 0x00 }, 4, -MQC_E_FLAGS },
		{ MQC_V311, { 0x20, 0x03, 0x00, 0x00, 0x00 }, 5, -MQC_E_TRAILING },
		{ MQC_V311, { 0x20, 0x02, 0x00, 0x06 }, 4, -MQC_E_REASON },
		{ MQC_V311, { 0x20, 0x05, 0x00, 0x00 }, 4, -MQC_E_SHORT },
		{ MQC_V5, { 0x20, 0x03, 0x00, 0x03, 0x00 }, 5, -MQC_E_REASON },
		{ MQC_V5, { 0x20, 0x03, 0x00, 0x00, 0x02 }, 5, -MQC_E_SHORT },
		{ MQC_V5, { 0x20, 0x04, 0x00, 0x00, 0x00, 0x00 }, 6, -MQC_E_TRAILING },
		{ MQC_V5, { 0x20, 0x05, 0x00, 0x00, 0x02, 0x7f, 0x01 }, 7, -MQC_E_PROP_UNKNOWN },
		{ MQC_V5, { 0x20, 0x05, 0x00, 0x00, 0x02, 0x17, 0x01 }, 7, -MQC_E_PROP_WRONG },
		{ MQC_V5, { 0x20, 0x07, 0x00, 0x00, 0x04, 0x24, 0x00, 0x24 }, 8, -MQC_E_SHORT },
	};
	struct fx *f = fx_init(MQC_V5, WIN, 0, 0, 0);
	struct mqc_packet ca;
	u8 b[128];
	size_t i;
	int n;

	memset(&ca, 0, sizeof(ca));
	ca.type = MQC_CONNACK;
	ca.connack.props.present = 1ull << MQC_P_MAX_PACKET_SIZE | 1ull << MQC_P_TOPIC_ALIAS_MAX |
				   1ull << MQC_P_RETAIN_AVAILABLE |
				   1ull << MQC_P_WILDCARD_SUB_AVAILABLE |
				   1ull << MQC_P_SUB_ID_AVAILABLE | 1ull << MQC_P_SHARED_SUB_AVAILABLE |
				   1ull << MQC_P_ASSIGNED_CLIENT_ID;
	ca.connack.props.max_packet_size = 300;
	ca.connack.props.topic_alias_max = 9;
	ca.connack.props.assigned_client_id.p = (const u8 *)"id";
	ca.connack.props.assigned_client_id.len = 2;
	n = mqc_encode(MQC_V5, &ca, b, sizeof(b));
	assert_true(n > 0);
	assert_int_equal(mqc_input(&f->s, b, (u32)n, f->now), 0);
	assert_int_equal(f->s.lim.max_packet_size, 300);
	assert_int_equal(f->s.lim.topic_alias_max, 9);
	assert_int_equal(f->s.lim.retain_available, 0);
	assert_int_equal(f->s.lim.wildcard_sub_available, 0);
	assert_int_equal(f->s.lim.sub_id_available, 0);
	assert_int_equal(f->s.lim.shared_sub_available, 0);
	assert_int_equal(f->s.lim.max_qos, 2);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = fx_init(bad[i].v, WIN, 0, 0, 0);
		if (mqc_input(&f->s, bad[i].b, bad[i].n, f->now) != bad[i].err)
			fail_msg("case %zu: got %d want %d", i,
				 mqc_input(&f->s, bad[i].b, bad[i].n, f->now), bad[i].err);
		assert_false(f->s.connected);
		assert_int_equal(f->nclosed, 1);
		assert_int_equal(f->close.err, bad[i].err);
		assert_int_equal(f->s.n_proto_err, 1);
	}
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_MQTT_2_3_1_2_pid_not_reused),
		cmocka_unit_test(test_MQTT_2_3_1_1_pid_nonzero_across_wrap),
		cmocka_unit_test(test_MQTT_2_3_1_2_subscribe_shares_pid_space),
		cmocka_unit_test(test_MQTT_4_3_2_1_qos1_until_puback),
		cmocka_unit_test(test_MQTT_4_3_3_1_qos2_sender_flow),
		cmocka_unit_test(test_user_flows_pid_and_held_pubrel),
		cmocka_unit_test(test_MQTT_4_3_3_1_duplicate_pubrec_gets_pubrel),
		cmocka_unit_test(test_v5_4_3_3_pubrec_error_ends_flow),
		cmocka_unit_test(test_v5_3_4_2_1_puback_reason_reported),
		cmocka_unit_test(test_MQTT_4_3_1_qos0_completes_on_send),
		cmocka_unit_test(test_v5_4_9_0_2_quota_blocks_publish),
		cmocka_unit_test(test_v5_3_3_4_8_qos0_not_blocked_by_full_window),
		cmocka_unit_test(test_v5_4_9_0_acks_not_blocked_by_full_window),
		cmocka_unit_test(test_MQTT_3_1_1_local_window_caps_inflight),
		cmocka_unit_test(test_v5_3_2_2_3_4_max_qos_enforced),
		cmocka_unit_test(test_v5_3_2_2_15_max_packet_size),
		cmocka_unit_test(test_MQTT_4_3_2_2_inbound_qos1_puback),
		cmocka_unit_test(test_MQTT_4_3_3_2_no_duplicate_delivery),
		cmocka_unit_test(test_MQTT_4_3_3_pubrel_unknown_gets_pubcomp),
		cmocka_unit_test(test_MQTT_4_6_0_2_acks_in_arrival_order),
		cmocka_unit_test(test_MQTT_4_3_3_2_unread_resend_not_redelivered),
		cmocka_unit_test(test_MQTT_4_3_3_refused_delivery_not_acked),
		cmocka_unit_test(test_v5_3_3_4_9_receive_max_exceeded),
		cmocka_unit_test(test_v5_3_3_4_9_qos2_counts_until_pubrel),
		cmocka_unit_test(test_MQTT_2_3_1_4_inbound_pid_in_use),
		cmocka_unit_test(test_v5_3_3_2_7_inbound_topic_alias_rejected),
		cmocka_unit_test(test_v5_3_1_2_24_inbound_too_big),
		cmocka_unit_test(test_MQTT_4_6_0_1_resend_in_order),
		cmocka_unit_test(test_v5_4_4_0_1_resend_pubrel_not_publish),
		cmocka_unit_test(test_MQTT_4_6_0_3_pubrel_resend_in_pubrec_order),
		cmocka_unit_test(test_MQTT_3_2_2_5_no_session_restarts),
		cmocka_unit_test(test_MQTT_4_4_0_1_restore_then_resume),
		cmocka_unit_test(test_restore_rejects_inconsistent),
		cmocka_unit_test(test_MQTT_4_4_v311_retry_resends_dup),
		cmocka_unit_test(test_v5_4_4_0_1_no_resend_on_live_connection),
		cmocka_unit_test(test_MQTT_3_1_2_23_pingreq_after_idle),
		cmocka_unit_test(test_MQTT_3_1_2_23_traffic_defers_ping),
		cmocka_unit_test(test_MQTT_3_1_2_24_dead_without_pingresp),
		cmocka_unit_test(test_MQTT_3_1_2_24_any_packet_extends),
		cmocka_unit_test(test_v5_3_2_2_21_server_keepalive_used),
		cmocka_unit_test(test_keepalive_zero_means_no_timer),
		cmocka_unit_test(test_MQTT_4_8_0_1_unknown_puback_closes),
		cmocka_unit_test(test_MQTT_4_8_0_1_ack_of_wrong_kind),
		cmocka_unit_test(test_input_trailing_after_frame),
		cmocka_unit_test(test_MQTT_3_8_4_1_subscribe_suback),
		cmocka_unit_test(test_MQTT_3_10_4_4_unsubscribe_unsuback),
		cmocka_unit_test(test_MQTT_3_9_3_1_suback_code_count_checked),
		cmocka_unit_test(test_subscribe_rejects_bad_requests),
		cmocka_unit_test(test_MQTT_3_2_connack_through_input),
		cmocka_unit_test(test_MQTT_3_2_2_connack_refused),
		cmocka_unit_test(test_v5_3_14_peer_disconnect),
		cmocka_unit_test(test_MQTT_3_14_disconnect_sent),
		cmocka_unit_test(test_send_failure_closes_session),
		cmocka_unit_test(test_session_init_rejects_bad_config),
		cmocka_unit_test(test_v5_3_4_2_2_ack_properties_accepted),
		cmocka_unit_test(test_MQTT_4_3_3_pubrel_before_pubrec),
		cmocka_unit_test(test_MQTT_4_6_0_2_full_ackq_not_delivered_311),
		cmocka_unit_test(test_MQTT_3_2_2_connack_limits_and_errors),
	};
	struct CMUnitTest bad[sizeof(bad_inputs) / sizeof(bad_inputs[0])];
	size_t i;
	int rc;

	rc = cmocka_run_group_tests_name("engine", tests, NULL, NULL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bad[i].name = bad_inputs[i].name;
		bad[i].test_func = run_bad_input;
		bad[i].setup_func = NULL;
		bad[i].teardown_func = NULL;
		bad[i].initial_state = (void *)&bad_inputs[i];
	}
	rc |= _cmocka_run_group_tests("engine_bad_input", bad, sizeof(bad) / sizeof(bad[0]), NULL,
				      NULL);
	return rc ? 1 : 0;
}
