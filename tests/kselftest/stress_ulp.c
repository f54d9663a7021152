// SPDX-License-Identifier: GPL-2.0
/* kselftest: randomized stress of the mqttq ULP from two threads; the module must leak nothing. */
/*
 * SLOTS loopback pairs live and die for STRESS_MS. The app thread drives
 * the mqttq ends (MQTTQ_SESSION with random parameters, publishes at QoS
 * 0/1/2, MQTTQ_FILTER_FD, MQTTQ_DISCONNECT, reads records, closes); the
 * peer thread plays a broker on the other ends at the same time, sending
 * random mixes of valid frames (acks for random packet identifiers,
 * PUBLISH QoS 0/1/2, PINGRESP) and invalid ones (garbage, bad lengths,
 * truncated packets followed by a close). Records must stay well formed
 * and CLOSED must be the last one of a session. With the module's linger_s
 * at 0, every session, held byte and in-flight message must be gone once
 * all sockets are closed; the kmod stage also scans dmesg afterwards.
 */
#include <linux/bpf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "ulp_util.h"

#define SLOTS 24
#define STRESS_MS 15000
#define MAX_OPS 2000000
/* Counters may take a while to settle under TCG after hundreds of closes. */
#define SETTLE_MS 15000

struct slot {
	pthread_mutex_t mu;
	int cli, brk;		/* -1 when closed; cli only closed by the app thread, brk by the peer */
	int v5;			/* the version the app thread will announce */
	int sess;		/* app thread only: MQTTQ_SESSION accepted */
	int closed_rec;		/* app thread only: CLOSED record seen */
	int last_op;		/* app thread only: for the failure report */
};

struct stress {
	struct slot slot[SLOTS];
	int prog;
	long long end;
	atomic_int bad;
	char why[256];
	/* counts for the log, and to prove the mix did something */
	atomic_long ops_app, ops_peer, pairs, sessions, pub_ok, recs, closed_recs, frames, junk;
};

static void fail(struct stress *st, const char *fmt, int a, int b)
{
	if (atomic_fetch_add(&st->bad, 1) == 0)
		snprintf(st->why, sizeof(st->why), fmt, a, b);
}

/* xorshift per thread: reproducible mixes without rand()'s shared state. */
static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static int load_prog(void)
{
	/* Verdict: the first topic byte selects "drop" (0) or filter id 3. */
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_6, .src_reg = BPF_REG_1 },
		{ .code = BPF_LD | BPF_B | BPF_ABS, .imm = 4 },
		{ .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = BPF_REG_0, .off = 2, .imm = 'x' },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 3 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = (unsigned long)insns;
	a.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	a.license = (unsigned long)"GPL";
	return syscall(__NR_bpf, BPF_PROG_LOAD, &a, sizeof(a));
}

/* Called with s->mu held: a fresh attached pair once both ends are gone. */
static void slot_renew(struct stress *st, struct slot *s, uint32_t *rs)
{
	int cli = -1, brk = -1;

	if (s->cli >= 0 || s->brk >= 0)
		return;
	if (ulp_pair(&cli, &brk))
		return;		/* out of ports or memory for a moment: try later */
	if (ulp_attach(cli)) {
		fail(st, "TCP_ULP mqttq attach failed: errno %d", errno, 0);
		close(cli);
		close(brk);
		return;
	}
	s->cli = cli;
	s->brk = brk;
	s->v5 = rnd(rs) & 1;
	s->sess = 0;
	s->closed_rec = 0;
	s->last_op = 0;
	atomic_fetch_add(&st->pairs, 1);
}

static void close_fd(int fd, uint32_t *rs)
{
	if (rnd(rs) & 1)
		ulp_abort_close(fd);
	else
		close(fd);
}

/* ---- app thread: the mqttq end ---------------------------------------- */

static void app_session(struct stress *st, struct slot *s, int fd, uint32_t *rs)
{
	struct mqttq_session ss;

	ulp_sess_init(&ss, s->v5 ? MQTTQ_V5 : MQTTQ_V311);
	ss.ack_policy = rnd(rs) & 1;
	ss.completion = rnd(rs) & 1;
	ss.window = 1 + rnd(rs) % 16;
	ss.recv_max = rnd(rs) % 17;
	ss.keepalive_s = rnd(rs) % 5 == 0;
	ss.retry_ms = rnd(rs) % 3 == 0 ? 100 : 0;
	/* Half take the module default, which the test set to 0. */
	ss.linger_s = rnd(rs) & 1 ? MQTTQ_DEFAULT : 0;
	ss.max_bytes = rnd(rs) & 1 ? MQTTQ_DEFAULT : 16384;
	ss.max_packet_in = 4096;
	if (ulp_session(fd, &ss) == 0) {
		s->sess = 1;
		atomic_fetch_add(&st->sessions, 1);
	} else if (errno != ECONNRESET && errno != EPIPE && errno != ENOTCONN &&
		   errno != EPROTO) {
		/* The peer may already have closed; anything else is a refusal of valid input. */
		fail(st, "MQTTQ_SESSION with valid parameters: errno %d", errno, 0);
	}
}

static void app_recv(struct stress *st, struct slot *s, int fd)
{
	uint8_t buf[8192];
	const struct mqttq_rec *r = (const void *)buf;

	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0)
			return;
		if (n == 0) {
			fail(st, "recvmsg returned 0 on an mqttq socket", 0, 0);
			return;
		}
		atomic_fetch_add(&st->recs, 1);
		if ((size_t)n < sizeof(*r) || r->len != n) {
			fail(st, "record of %d bytes says len %d", (int)n,
			     n >= 8 ? (int)r->len : -1);
			return;
		}
		if (r->type < MQTTQ_REC_PUB_DONE || r->type > MQTTQ_REC_CLOSED) {
			fail(st, "record type %d, %d bytes", r->type, (int)n);
			for (int k = 0; k < 48 && k < n; k++)
				fprintf(stderr, "%02x%s", buf[k], k % 16 == 15 ? "\n" : " ");
			fprintf(stderr, "(last op on this socket: %d)\n", s->last_op);
			return;
		}
		if (s->closed_rec) {
			fail(st, "record type %d after CLOSED", r->type, 0);
			return;
		}
		if (r->type == MQTTQ_REC_MESSAGE &&
		    sizeof(*r) + r->topic_len + r->payload_len + r->props_len != (size_t)n) {
			fail(st, "MESSAGE record parts do not add up to %d (qos %d)", (int)n,
			     r->qos);
			return;
		}
		if (r->type == MQTTQ_REC_CLOSED) {
			s->closed_rec = 1;
			atomic_fetch_add(&st->closed_recs, 1);
			if (r->err >= 0 || r->err < -4095)
				fail(st, "CLOSED record err %d", r->err, 0);
		}
	}
}

static void app_publish(struct stress *st, int fd, uint32_t *rs)
{
	static const char *const topics[] = { "a/b", "x/drop", "s/t/u" };
	char payload[64];
	ssize_t n;

	memset(payload, 'p', sizeof(payload));
	payload[rnd(rs) % sizeof(payload)] = 0;
	n = ulp_publish(fd, rnd(rs) % 3, rnd(rs), topics[rnd(rs) % 3], payload, MSG_DONTWAIT);
	if (n > 0)
		atomic_fetch_add(&st->pub_ok, 1);
	else if (n == -EBADF || n == -EFAULT || n == -ENOTSOCK)
		fail(st, "sendmsg PUBLISH: %d", (int)n, 0);
}

static void app_op(struct stress *st, uint32_t *rs)
{
	struct slot *s = &st->slot[rnd(rs) % SLOTS];
	uint32_t r = rnd(rs) % 100;
	int fd, v;

	pthread_mutex_lock(&s->mu);
	if (s->cli < 0) {
		slot_renew(st, s, rs);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	fd = s->cli;
	pthread_mutex_unlock(&s->mu);

	if (s->sess && r >= 65 && r < 93)
		s->last_op = r;
	if (!s->sess) {
		if (r < 75)
			app_session(st, s, fd, rs);
		else if (r < 85 && ulp_publish(fd, 1, 1, "a/b", "early", MSG_DONTWAIT) > 0)
			fail(st, "PUBLISH accepted before MQTTQ_SESSION", 0, 0);
		else if (r >= 95)
			goto close_it;
		return;
	}
	if (r < 40) {
		app_publish(st, fd, rs);
	} else if (r < 65) {
		app_recv(st, s, fd);
	} else if (r < 73) {
		v = (rnd(rs) & 1) && st->prog >= 0 ? st->prog : -1;
		setsockopt(fd, SOL_MQTTQ, MQTTQ_FILTER_FD, &v, sizeof(v));
	} else if (r < 77) {
		uint8_t reason = 0;

		setsockopt(fd, SOL_MQTTQ, MQTTQ_DISCONNECT, &reason, sizeof(reason));
	} else if (r < 81) {
		struct mqttq_session ss;

		/* MQTTQ_SESSION is set once: a second one must be refused. */
		ulp_sess_init(&ss, s->v5 ? MQTTQ_V5 : MQTTQ_V311);
		if (ulp_session(fd, &ss) == 0)
			fail(st, "second MQTTQ_SESSION accepted", 0, 0);
	} else if (r < 86) {
		struct mqttq_sess_stats ss;

		if (ulp_stats(fd, &ss) == 0 && ss.state > MQTTQ_ST_CLOSED)
			fail(st, "session state %d", ss.state, 0);
	} else if (r < 93) {
		goto close_it;
	} else {
		app_recv(st, s, fd);
	}
	return;
close_it:
	pthread_mutex_lock(&s->mu);
	close_fd(s->cli, rs);
	s->cli = -1;
	pthread_mutex_unlock(&s->mu);
}

/* ---- peer thread: the broker end -------------------------------------- */

static void peer_valid(struct stress *st, int fd, int v5, uint32_t *rs)
{
	uint16_t pid = 1 + rnd(rs) % 24;
	static const char *const topics[] = { "a/b", "x/y", "deep/er/topic" };

	switch (rnd(rs) % 7) {
	case 0:
		ulp_send_ack(fd, 4, pid);	/* PUBACK */
		break;
	case 1:
		ulp_send_ack(fd, 5, pid);	/* PUBREC */
		break;
	case 2:
		ulp_send_ack(fd, 7, pid);	/* PUBCOMP */
		break;
	case 3:
		ulp_send_ack(fd, 6, pid);	/* PUBREL */
		break;
	case 4:
		ulp_send(fd, "\xd0\x00", 2);	/* PINGRESP */
		break;
	default:
		ulp_brk_publish(fd, v5, rnd(rs) % 3, !(rnd(rs) % 8), pid, topics[rnd(rs) % 3],
				"payload");
		break;
	}
	atomic_fetch_add(&st->frames, 1);
}

static void peer_junk(struct stress *st, int fd, uint32_t *rs)
{
	uint8_t b[64];
	size_t n = 1 + rnd(rs) % sizeof(b);

	switch (rnd(rs) % 4) {
	case 0:		/* garbage */
		for (size_t i = 0; i < n; i++)
			b[i] = rnd(rs);
		break;
	case 1:		/* a PUBACK whose length is wrong */
		memcpy(b, "\x40\x05\x00\x01", 4);
		n = 4;
		break;
	case 2:		/* remaining length with five continuation bytes */
		memcpy(b, "\x30\xff\xff\xff\xff\x7f", 6);
		n = 6;
		break;
	default:	/* reserved packet type 15 */
		memcpy(b, "\xf0\x00", 2);
		n = 2;
		break;
	}
	ulp_send(fd, b, n);
	atomic_fetch_add(&st->junk, 1);
}

static void peer_op(struct stress *st, uint32_t *rs)
{
	struct slot *s = &st->slot[rnd(rs) % SLOTS];
	uint32_t r = rnd(rs) % 100;
	uint8_t buf[4096];
	int fd, v5;

	pthread_mutex_lock(&s->mu);
	if (s->brk < 0) {
		slot_renew(st, s, rs);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	fd = s->brk;
	v5 = s->v5;
	pthread_mutex_unlock(&s->mu);

	if (r < 55) {
		for (int i = 1 + rnd(rs) % 4; i > 0; i--)
			peer_valid(st, fd, v5, rs);
	} else if (r < 80) {
		/* What the kernel sent (PUBLISH, acks, PINGREQ) is read and dropped. */
		while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
	} else if (r < 88) {
		peer_junk(st, fd, rs);
	} else if (r < 94) {
		/* A truncated PUBLISH, then the connection ends. */
		ulp_send(fd, "\x32\x20\x00\x03" "a/b\x00", 8);
		goto close_it;
	} else {
		goto close_it;
	}
	return;
close_it:
	pthread_mutex_lock(&s->mu);
	close_fd(s->brk, rs);
	s->brk = -1;
	pthread_mutex_unlock(&s->mu);
}

static void *peer_main(void *arg)
{
	struct stress *st = arg;
	uint32_t rs = 0x9e3779b9u ^ (uint32_t)ulp_ms();

	for (long i = 0; i < MAX_OPS && ulp_ms() < st->end && !st->bad; i++) {
		peer_op(st, &rs);
		atomic_fetch_add(&st->ops_peer, 1);
	}
	return NULL;
}

/* ---- the test ---------------------------------------------------------- */

FIXTURE(stress) {
	char linger[32];
	struct stress *st;
};

FIXTURE_SETUP(stress)
{
	ASSERT_LT(0, mqttq_ksft_read(MQTTQ_PARAMS "linger_s", self->linger, sizeof(self->linger)));
	ASSERT_EQ(0, mqttq_ksft_write_str(MQTTQ_PARAMS "linger_s", "0"));
	self->st = calloc(1, sizeof(*self->st));
	ASSERT_NE(NULL, self->st);
}

FIXTURE_TEARDOWN(stress)
{
	EXPECT_EQ(0, mqttq_ksft_write_str(MQTTQ_PARAMS "linger_s", self->linger));
	if (self->st && self->st->prog >= 0)
		close(self->st->prog);
	free(self->st);
}

TEST_F_TIMEOUT(stress, two_threads_random_frames_leak_nothing, 90)
{
	struct stress *st = self->st;
	uint32_t rs = 0x12345678u ^ (uint32_t)ulp_ms();
	pthread_t peer;
	long long v;

	st->prog = load_prog();
	if (st->prog < 0)
		TH_LOG("BPF_PROG_LOAD failed (%s): MQTTQ_FILTER_FD only removes", strerror(errno));
	for (int i = 0; i < SLOTS; i++) {
		pthread_mutex_init(&st->slot[i].mu, NULL);
		st->slot[i].cli = st->slot[i].brk = -1;
	}
	st->end = ulp_ms() + STRESS_MS;
	ASSERT_EQ(0, pthread_create(&peer, NULL, peer_main, st));
	for (long i = 0; i < MAX_OPS && ulp_ms() < st->end && !st->bad; i++) {
		app_op(st, &rs);
		atomic_fetch_add(&st->ops_app, 1);
	}
	pthread_join(peer, NULL);
	for (int i = 0; i < SLOTS; i++) {
		if (st->slot[i].cli >= 0)
			close_fd(st->slot[i].cli, &rs);
		if (st->slot[i].brk >= 0)
			close_fd(st->slot[i].brk, &rs);
	}
	TH_LOG("ops app %ld peer %ld, pairs %ld, sessions %ld, publishes %ld, records %ld "
	       "(CLOSED %ld), frames %ld valid %ld invalid",
	       (long)st->ops_app, (long)st->ops_peer, (long)st->pairs, (long)st->sessions,
	       (long)st->pub_ok, (long)st->recs, (long)st->closed_recs, (long)st->frames,
	       (long)st->junk);
	ASSERT_EQ(0, st->bad) TH_LOG("%s", st->why);
	/* The mix must have exercised sessions, publishes and records at all. */
	EXPECT_LT(10, st->sessions);
	EXPECT_LT(10, st->pub_ok);
	EXPECT_LT(10, st->recs);
	v = ulp_stat_wait("sessions", 0, SETTLE_MS);
	EXPECT_EQ(0, v);
	v = ulp_stat_wait("bytes_held", 0, SETTLE_MS);
	EXPECT_EQ(0, v);
	v = ulp_stat_wait("inflight", 0, SETTLE_MS);
	EXPECT_EQ(0, v);
}

TEST_HARNESS_MAIN
