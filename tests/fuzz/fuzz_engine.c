// SPDX-License-Identifier: GPL-2.0 OR MIT
/* libFuzzer harness driving the core's QoS engine with random event sequences and checking its invariants. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqc.h"

#define CHECK(c)                                                                    \
	do {                                                                        \
		if (!(c)) {                                                         \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                    \
		}                                                                   \
	} while (0)

#define NPOOL 24
#define MAXWIN 8
#define MAXRM 8

enum { M_IDLE, M_PENDING, M_ACCEPTED };

struct world {
	struct mqc_session s;
	struct mqc_ops ops;
	struct mqc_msg *slots[MAXWIN];
	u8 in2[MQC_IN2_BYTES];
	u16 ackq[MAXRM];
	struct mqc_msg msg[NPOOL];
	u8 buf[NPOOL][48];
	u8 mstate[NPOOL];
	int ncomplete[NPOOL];
	/* model of inbound QoS 2: delivered and not yet released by our PUBCOMP */
	u8 held[65536 / 8];
	/* the stream the engine sent, parsed frame by frame */
	u8 out[1 << 12];
	u32 out_len;
	int fail_next_send;
	int refuse_delivery;
	int closed;
	u64 now;
	u8 v;
};

static struct world W;

static bool held(u16 pid)
{
	return W.held[pid >> 3] & (1u << (pid & 7));
}

static void set_held(u16 pid, bool on)
{
	if (on)
		W.held[pid >> 3] |= (u8)(1u << (pid & 7));
	else
		W.held[pid >> 3] &= (u8)~(1u << (pid & 7));
}

/* Every packet the engine emits must be one our strict decoder accepts. */
static void parse_out(void)
{
	static struct mqc_packet p;
	u32 off = 0;

	for (;;) {
		int n = mqc_frame_len(W.out + off, W.out_len - off, 0);

		CHECK(n >= 0);
		if (!n || (u32)n > W.out_len - off)
			break;
		CHECK(mqc_decode(W.v, W.out + off, (u32)n, 0, &p) == 0);
		if (p.type == MQC_PUBCOMP)
			set_held(p.pid, false);
		off += (u32)n;
	}
	memmove(W.out, W.out + off, W.out_len - off);
	W.out_len -= off;
}

static int cb_send(void *ctx, const u8 *b, u32 len)
{
	if (W.fail_next_send) {
		W.fail_next_send = 0;
		return -EPIPE;
	}
	CHECK(W.out_len + len <= sizeof(W.out));
	memcpy(W.out + W.out_len, b, len);
	W.out_len += len;
	parse_out();
	return 0;
}

static int idx_of(const struct mqc_msg *m)
{
	int i = (int)(m - W.msg);

	CHECK(i >= 0 && i < NPOOL);
	return i;
}

static int cb_send_msg(void *ctx, struct mqc_msg *m)
{
	int i = idx_of(m);

	CHECK(W.mstate[i] != M_IDLE);
	/* MQTT-4.3.3-1 (v5): never a PUBLISH again once its PUBREL went out */
	CHECK(m->state != MQC_ST_WAIT_COMP);
	return cb_send(ctx, m->buf, m->len);
}

static void cb_complete(void *ctx, struct mqc_msg *m, u8 reason)
{
	int i = idx_of(m);

	/* exactly once, and only for a message the engine accepted */
	CHECK(W.mstate[i] != M_IDLE);
	CHECK(W.ncomplete[i] == 0);
	CHECK(reason == 0 || reason >= 0x80);
	W.ncomplete[i]++;
}

static int cb_deliver(void *ctx, const struct mqc_inmsg *im)
{
	CHECK(im->qos <= 2);
	CHECK((im->qos == 0) == (im->pid == 0));
	CHECK(mqc_topic_check(im->topic, im->topic_len, false) == 0);
	if (W.refuse_delivery)
		return -ENOBUFS;
	if (im->qos == 2) {
		/* MQTT-4.3.3-2: never delivered twice before it is released */
		CHECK(!held(im->pid));
		set_held(im->pid, true);
	}
	return 0;
}

static void cb_sub_done(void *ctx, u64 token, const u8 *codes, u32 n)
{
	/* we always subscribe to one filter; a lost request reports none */
	CHECK(n <= 1 && (n == 0 || codes));
}

static void cb_closed(void *ctx, const struct mqc_close *c)
{
	CHECK(c->err < 0);
	CHECK(mqc_strerror(c->err) != NULL);
	W.closed++;
}

/* The slot table is consistent: distinct identifiers, in their slots, counted. */
static void check_tables(void)
{
	u32 i, j, n = 0;

	for (i = 0; i < W.s.nslots; i++) {
		struct mqc_msg *m = W.slots[i];

		if (!m)
			continue;
		n++;
		CHECK(m->pid && m->pid % W.s.nslots == i);
		CHECK(m->state >= MQC_ST_WAIT_ACK && m->state <= MQC_ST_WAIT_COMP);
		CHECK(W.mstate[idx_of(m)] == M_ACCEPTED);
		CHECK(W.ncomplete[idx_of(m)] == 0);
		for (j = 0; j < MQC_MAX_SUBREQ; j++)
			CHECK(W.s.subreq[j].pid != m->pid);
	}
	CHECK(n == W.s.inflight);
	CHECK(W.s.inflight <= W.s.nslots);
	for (i = 0; i < MQC_MAX_SUBREQ; i++)
		for (j = i + 1; j < MQC_MAX_SUBREQ; j++)
			CHECK(!W.s.subreq[i].pid || W.s.subreq[i].pid != W.s.subreq[j].pid);
	/* messages that completed go back to the pool */
	for (i = 0; i < NPOOL; i++)
		if (W.mstate[i] == M_ACCEPTED && W.ncomplete[i]) {
			W.mstate[i] = M_IDLE;
			W.ncomplete[i] = 0;
		}
}

struct in {
	const u8 *p;
	size_t n;
};

static u8 take(struct in *in)
{
	u8 b;

	if (!in->n)
		return 0;
	b = *in->p++;
	in->n--;
	return b;
}

static u16 take16(struct in *in)
{
	return (u16)(take(in) << 8 | take(in));
}

static struct mqc_msg *make_msg(int i, u8 qos)
{
	struct mqc_msg *m = &W.msg[i];
	struct mqc_pub p = { 0 };
	int n;

	p.topic.p = (const u8 *)"f/z";
	p.topic.len = 3;
	p.payload.p = (const u8 *)"pl";
	p.payload.len = 2;
	p.qos = qos;
	p.pid = qos ? 1 : 0;
	memset(m, 0, sizeof(*m));
	n = mqc_encode_publish(W.v, &p, W.buf[i], sizeof(W.buf[i]), &m->pid_off);
	CHECK(n > 0);
	m->buf = W.buf[i];
	m->len = (u32)n;
	m->qos = qos;
	return m;
}

static int free_msg(u8 hint)
{
	int i;

	for (i = 0; i < NPOOL; i++) {
		int k = (hint + i) % NPOOL;

		if (W.mstate[k] == M_IDLE)
			return k;
	}
	return -1;
}

static void op_publish(struct in *in)
{
	u8 b = take(in);
	u8 qos = b % 3;
	int i = free_msg(b), ncomp;
	u16 inflight = W.s.inflight, quota = W.s.quota;
	bool up = W.s.connected;
	int rc;

	if (i < 0)
		return;
	make_msg(i, qos);
	W.mstate[i] = M_PENDING;
	rc = mqc_publish(&W.s, &W.msg[i], W.now);
	ncomp = W.ncomplete[i];
	if (rc) {
		/* refused: nothing happened to it */
		CHECK(ncomp == 0);
		W.mstate[i] = M_IDLE;
		if (rc == -EAGAIN)
			CHECK(qos && up && (!quota || inflight >= W.s.window));
		return;
	}
	if (!qos) {
		CHECK(ncomp == 1);
		W.mstate[i] = M_IDLE;
		W.ncomplete[i] = 0;
		return;
	}
	W.mstate[i] = M_ACCEPTED;
	/* a new flow never goes beyond the window (MQTT-4.9.0-2) */
	CHECK(inflight < W.s.window && quota > 0);
	CHECK(W.s.inflight == inflight + 1);
}

/*
 * The receiver's QoS 2 hold ends when it takes the PUBREL (MQTT-4.3.3-2,
 * method B), whether or not its PUBCOMP then makes it onto the wire: a
 * failed send cannot bring the hold back. So the model releases a pid
 * when the engine drops it on a PUBREL for that pid (or on any raw
 * input, which may hold one); any other input that drops a hold is a bug.
 */
static void follow_release(const u8 *before, const struct mqc_packet *p)
{
	u32 i, bit;

	for (i = 0; i < MQC_IN2_BYTES; i++) {
		u8 dropped = before[i] & (u8)~W.in2[i];

		for (bit = 0; dropped && bit < 8; bit++) {
			u16 pid = (u16)(i << 3 | bit);

			if (!(dropped & (1u << bit)))
				continue;
			/* MQTT-3.2.2-5: no session, no holds (the model cleared them too) */
			if (p && p->type == MQC_CONNACK && !p->connack.session_present)
				continue;
			CHECK(!p || (p->type == MQC_PUBREL && p->pid == pid));
			set_held(pid, false);
		}
	}
}

static int feed(const struct mqc_packet *p)
{
	static u8 b[512];
	static u8 before[MQC_IN2_BYTES];
	int n = mqc_encode(W.v, p, b, sizeof(b));
	int r;

	if (n <= 0)
		return 0;
	memcpy(before, W.in2, sizeof(before));
	r = mqc_input(&W.s, b, (u32)n, W.now);
	follow_release(before, p);
	return r;
}

static void op_ack_inflight(struct in *in)
{
	static struct mqc_packet p;
	u8 b = take(in);
	u32 k;

	memset(&p, 0, sizeof(p));
	for (k = 0; k < W.s.nslots; k++) {
		struct mqc_msg *m = W.slots[(b + k) % W.s.nslots];

		if (!m)
			continue;
		p.pid = m->pid;
		p.type = m->state == MQC_ST_WAIT_ACK ? MQC_PUBACK :
			 m->state == MQC_ST_WAIT_REC ? MQC_PUBREC : MQC_PUBCOMP;
		if (W.v == MQC_V5 && (b & 0xc0) == 0xc0)
			p.reason = p.type == MQC_PUBCOMP ? 0x92 : 0x80;
		feed(&p);
		return;
	}
}

static void op_ack_random(struct in *in)
{
	static struct mqc_packet p;
	u8 t = take(in);

	memset(&p, 0, sizeof(p));
	p.type = (u8)(MQC_PUBACK + (t & 3));
	p.pid = (u16)(take(in) % 24 + 1);
	feed(&p);
}

static void op_inbound_publish(struct in *in)
{
	static struct mqc_packet p;
	u8 b = take(in);

	memset(&p, 0, sizeof(p));
	p.type = MQC_PUBLISH;
	p.publish.topic.p = (const u8 *)"in/t";
	p.publish.topic.len = 4;
	p.publish.payload.p = (const u8 *)"d";
	p.publish.payload.len = 1;
	p.publish.qos = b % 3;
	p.publish.dup = p.publish.qos && (b & 4);
	p.publish.pid = p.publish.qos ? (u16)((b >> 3) % 12 + 1) : 0;
	W.refuse_delivery = (b & 0xe0) == 0xe0;
	feed(&p);
	W.refuse_delivery = 0;
}

static void op_pubrel(struct in *in)
{
	static struct mqc_packet p;

	memset(&p, 0, sizeof(p));
	p.type = MQC_PUBREL;
	p.pid = (u16)(take(in) % 12 + 1);
	feed(&p);
}

static void op_raw(struct in *in)
{
	static u8 b[64];
	static u8 before[MQC_IN2_BYTES];
	u32 n = take(in) % sizeof(b), i;

	bool up = W.s.connected;

	for (i = 0; i < n; i++)
		b[i] = take(in);
	memcpy(before, W.in2, sizeof(before));
	mqc_input(&W.s, b, n, W.now);
	follow_release(before, NULL);
	/* a raw CONNACK may have started a session without state: the bitmap is the model */
	if (!up && W.s.connected)
		memcpy(W.held, W.s.in2, sizeof(W.held));
}

static void op_connect(struct in *in)
{
	u8 b = take(in);
	struct mqc_limits lim = { 0 };
	bool sp = b & 1;

	lim.receive_max = (u16)((b >> 1) & 7);
	lim.max_qos = 2;
	if (!sp) /* the server lost its session: so do we (MQTT-3.2.2-5) */
		memset(W.held, 0, sizeof(W.held));
	mqc_connected(&W.s, (b & 0x80) ? NULL : &lim, sp, W.now);
}

static void op_connack(struct in *in)
{
	static struct mqc_packet p;
	u8 b = take(in);

	memset(&p, 0, sizeof(p));
	p.type = MQC_CONNACK;
	p.connack.session_present = b & 1;
	if (!p.connack.session_present)
		memset(W.held, 0, sizeof(W.held));
	if (W.v == MQC_V5 && (b & 2)) {
		p.connack.props.present = 1ull << MQC_P_RECEIVE_MAX;
		p.connack.props.receive_max = (u16)((b >> 2) % 5 + 1);
	}
	if (W.s.connected)
		return;
	feed(&p);
}

static void op_restore(struct in *in)
{
	u8 b = take(in);
	u16 pid = take16(in);
	int i = free_msg(b);
	struct mqc_msg *m;

	if (i < 0 || W.s.connected)
		return;
	m = make_msg(i, b & 1 ? 2 : 1);
	m->pid = pid;
	m->state = (b & 1) ? ((b & 2) ? MQC_ST_WAIT_COMP : MQC_ST_WAIT_REC) : MQC_ST_WAIT_ACK;
	W.mstate[i] = M_ACCEPTED;
	if (mqc_restore(&W.s, m))
		W.mstate[i] = M_IDLE;
}

static void op_subscribe(struct in *in)
{
	u8 b = take(in);
	struct mqc_sub sub = { (const u8 *)"s/+/x", 5, (u8)(b % 3) };

	if (b & 0x80) {
		mqc_unsubscribe(&W.s, &sub, 1, b, W.now);
		return;
	}
	mqc_subscribe(&W.s, &sub, 1, 0, b, W.now);
}

static void op_suback(struct in *in)
{
	static struct mqc_packet p;
	u8 b = take(in);
	u32 i;

	memset(&p, 0, sizeof(p));
	for (i = 0; i < MQC_MAX_SUBREQ; i++) {
		if (!W.s.subreq[(b + i) % MQC_MAX_SUBREQ].pid)
			continue;
		p.pid = W.s.subreq[(b + i) % MQC_MAX_SUBREQ].pid;
		p.type = W.s.subreq[(b + i) % MQC_MAX_SUBREQ].type + 1;
		p.suback.n = 1;
		feed(&p);
		return;
	}
}

/* End of input: reconnect and acknowledge everything, so every accepted flow must complete. */
static void drain(void)
{
	int round;

	if (!W.s.connected)
		mqc_connected(&W.s, NULL, true, W.now);
	if (!W.s.connected)
		return;
	for (round = 0; round < 3 * MAXWIN + 3 && W.s.inflight && W.s.connected; round++) {
		struct in none = { NULL, 0 };

		op_ack_inflight(&none);
		check_tables();
	}
	if (W.s.connected)
		CHECK(W.s.inflight == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	struct mqc_config cfg = { 0 };
	u8 b0 = take(&in), b1 = take(&in);
	int steps, i;

	memset(&W, 0, sizeof(W));
	W.v = (b0 & 1) ? MQC_V5 : MQC_V311;
	cfg.version = W.v;
	cfg.ack_policy = (b0 >> 1) & 1;
	cfg.keepalive_s = (b0 >> 2) & 3;
	cfg.window = (u16)((b1 & 7) + 1);
	cfg.recv_max = (u16)(((b1 >> 3) & 7) + 1);
	cfg.retry_ms = (b1 & 0x40) ? 300 : 0;
	cfg.max_packet_in = (b1 & 0x80) ? 40 : 0;
	W.ops.send = cb_send;
	W.ops.send_msg = cb_send_msg;
	W.ops.complete = cb_complete;
	W.ops.deliver = cb_deliver;
	W.ops.sub_done = cb_sub_done;
	W.ops.closed = cb_closed;
	W.now = 1;
	CHECK(mqc_session_init(&W.s, &cfg, &W.ops, &W, W.slots, W.in2, W.ackq) == 0);

	for (steps = 0; in.n && steps < 4096; steps++) {
		u8 op = take(&in);

		switch (op % 16) {
		case 0:
		case 1:
			op_publish(&in);
			break;
		case 2:
		case 3:
			op_ack_inflight(&in);
			break;
		case 4:
			op_ack_random(&in);
			break;
		case 5:
			op_inbound_publish(&in);
			break;
		case 6:
			op_pubrel(&in);
			break;
		case 7:
			op_raw(&in);
			break;
		case 8: {
			u64 dl;

			W.now += (u64)take(&in) * 50;
			dl = mqc_deadline(&W.s);
			if (W.now >= dl)
				mqc_tick(&W.s, W.now);
			break;
		}
		case 9:
			mqc_disconnected(&W.s);
			break;
		case 10:
			op_connect(&in);
			break;
		case 11:
			op_connack(&in);
			break;
		case 12: {
			u8 b = take(&in);

			mqc_delivered(&W.s, (u16)(b % 12 + 1), (u8)(1 + (b >> 7)));
			break;
		}
		case 13:
			op_subscribe(&in);
			op_suback(&in);
			break;
		case 14:
			op_restore(&in);
			break;
		default:
			if (take(&in) & 1)
				W.fail_next_send = 1;
			else
				mqc_disconnect(&W.s, 0, W.now);
			break;
		}
		check_tables();
	}
	W.fail_next_send = 0;
	drain();
	check_tables();
	/* every accepted QoS 1/2 publish completed exactly once (checked in cb_complete) */
	if (W.s.connected)
		for (i = 0; i < NPOOL; i++)
			CHECK(W.mstate[i] == M_IDLE);
	return 0;
}
