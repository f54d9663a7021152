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

/* ---- module unload/reload and parameter writes ------------------------ */

#define CYCLE_MS 8000
#define CYCLE_MAX 400
#define HELD_MAX 6
/* Loopback FIN handshakes and lingering socket teardown take a while under TCG. */
#define UNLOAD_WAIT_MS 10000

struct kparam {
	const char *name;
	unsigned int lo, hi;		/* range; choices: hi is the last index */
	const char *const *names;	/* NULL for a range */
};

static const char *const ack_names[] = { "receipt", "delivery" };
static const char *const compl_names[] = { "per-message", "coalesced" };
static const struct kparam kparams[] = {
	{ "window", 1, 65535 },
	{ "retry_ms", 0, 600000 },
	{ "keepalive_s", 0, 65535 },
	{ "linger_s", 0, 3600 },
	{ "max_bytes", 4096, 1U << 30 },
	{ "ack_policy", 0, 1, ack_names },
	{ "completion", 0, 1, compl_names },
};
#define NPARAMS (sizeof(kparams) / sizeof(kparams[0]))

struct cycle {
	int cli[HELD_MAX], brk[HELD_MAX], held;
	uint64_t key;
	long unloads, refused, unload_retries, autoload, enoent, lingered_at_unload;
	long pw_ok, pw_bad, attached;
	char why[256];
};

static int param_read(const struct kparam *k, char *buf, size_t n)
{
	char path[128];

	snprintf(path, sizeof(path), MQTTQ_PARAMS "%s", k->name);
	return mqttq_ksft_read(path, buf, n);
}

static int param_write(const struct kparam *k, const char *v)
{
	char path[128];

	snprintf(path, sizeof(path), MQTTQ_PARAMS "%s", k->name);
	return mqttq_ksft_write_str(path, v);
}

/* One random write of a valid or an invalid value; 0 or -1 with c->why set. */
static int cycle_param(struct cycle *c, uint32_t *rs)
{
	static const char *const junk[] = { " ", "-1", "abc", "99999999999", "1 2", "0x" };
	const struct kparam *k = &kparams[rnd(rs) % NPARAMS];
	char before[64], after[64], v[64], want[64];
	const char *nl = rnd(rs) & 1 ? "\n" : "";
	int ret;

	if (param_read(k, before, sizeof(before)) <= 0) {
		snprintf(c->why, sizeof(c->why), "read %s failed", k->name);
		return -1;
	}
	if (rnd(rs) & 1) {
		unsigned int x = k->lo + rnd(rs) % (k->hi - k->lo + 1);

		if (k->names && (rnd(rs) & 1))
			snprintf(v, sizeof(v), "%s%s", k->names[x], nl);
		else
			snprintf(v, sizeof(v), "%u%s", x, nl);
		if (k->names)
			snprintf(want, sizeof(want), "%s\n", k->names[x]);
		else
			snprintf(want, sizeof(want), "%u\n", x);
		ret = param_write(k, v);
		if (ret || param_read(k, after, sizeof(after)) <= 0 || strcmp(after, want)) {
			snprintf(c->why, sizeof(c->why), "valid %s=%.20s: ret %d, reads back %.20s",
				 k->name, v, ret, after);
			return -1;
		}
		c->pw_ok++;
		return 0;
	}
	switch (rnd(rs) % 3) {
	case 0:		/* just outside the range */
		if (k->lo > 0 && (rnd(rs) & 1))
			snprintf(v, sizeof(v), "%u%s", k->lo - 1, nl);
		else
			snprintf(v, sizeof(v), "%u%s", k->hi + 1, nl);
		break;
	case 1:
		snprintf(v, sizeof(v), "%s%s", junk[rnd(rs) % 6], nl);
		break;
	default:
		snprintf(v, sizeof(v), "%s%s", k->names ? "bogus" : "4294967296", nl);
		break;
	}
	ret = param_write(k, v);
	if (ret != -EINVAL || param_read(k, after, sizeof(after)) <= 0 ||
	    strcmp(after, before)) {
		snprintf(c->why, sizeof(c->why), "invalid %s=\"%.20s\": ret %d, %.20s became %.20s",
			 k->name, v, ret, before, after);
		return -1;
	}
	c->pw_bad++;
	return 0;
}

/* Attaches one more pair, half of them with a resumable session that lingers when dropped. */
static int cycle_attach(struct cycle *c, uint32_t *rs)
{
	struct mqttq_session ss;
	int cli, brk;

	if (c->held >= HELD_MAX || ulp_pair(&cli, &brk))
		return 0;
	if (ulp_attach(cli)) {
		snprintf(c->why, sizeof(c->why), "attach with mqttq loaded: errno %d", errno);
		close(cli);
		close(brk);
		return -1;
	}
	if (rnd(rs) & 1) {
		ulp_sess_init(&ss, rnd(rs) & 1 ? MQTTQ_V5 : MQTTQ_V311);
		ss.key = ++c->key;
		ss.linger_s = rnd(rs) & 1 ? 30 : MQTTQ_DEFAULT;
		ulp_session(cli, &ss);
	}
	c->cli[c->held] = cli;
	c->brk[c->held++] = brk;
	c->attached++;
	return 0;
}

static void cycle_close_all(struct cycle *c, uint32_t *rs)
{
	for (int i = 0; i < c->held; i++) {
		close_fd(c->cli[i], rs);
		close_fd(c->brk[i], rs);
	}
	c->held = 0;
}

static long cycle_delete(void)
{
	return syscall(SYS_delete_module, "mqttq", O_NONBLOCK) ? -errno : 0;
}

/*
 * Closes everything, unloads (waiting, bounded, for closed sockets to drop
 * their module references), checks nothing of the module is left, and loads
 * it again. 0 or -1 with c->why set.
 */
static int cycle_unload(struct cycle *c, uint32_t *rs)
{
	long long end;
	long ret;
	int cli, brk;

	cycle_close_all(c, rs);
	c->lingered_at_unload += ulp_stat("sessions") > 0;
	end = ulp_ms() + UNLOAD_WAIT_MS;
	while ((ret = cycle_delete()) == -EAGAIN || ret == -EBUSY) {
		if (ulp_ms() > end)
			break;
		c->unload_retries++;
		usleep(20000);
	}
	if (ret) {
		snprintf(c->why, sizeof(c->why), "unload with no socket attached: %ld", ret);
		return -1;
	}
	c->unloads++;
	if (mqttq_ksft_loaded() != 0 || !access(ULP_SYSFS, F_OK) ||
	    !access("/sys/module/mqttq", F_OK)) {
		snprintf(c->why, sizeof(c->why), "mqttq still visible after its unload");
		return -1;
	}
	if (!ulp_pair(&cli, &brk)) {
		/* The ULP core may request_module("tcp-ulp-mqttq") and succeed. */
		if (ulp_attach(cli) == 0)
			c->autoload++;
		else if (errno == ENOENT)
			c->enoent++;
		else
			snprintf(c->why, sizeof(c->why), "TCP_ULP with mqttq unloaded: errno %d",
				 errno);
		ulp_abort_close(cli);
		ulp_abort_close(brk);
		if (c->why[0])
			return -1;
	}
	if (mqttq_ksft_loaded() != 1 && mqttq_ksft_sh("modprobe mqttq")) {
		snprintf(c->why, sizeof(c->why), "modprobe mqttq after unload failed");
		return -1;
	}
	/* A fresh module starts with nothing held. */
	if (ulp_stat_wait("sessions", 0, SETTLE_MS) || ulp_stat("bytes_held") ||
	    ulp_stat("inflight")) {
		snprintf(c->why, sizeof(c->why), "fresh module: sessions %lld bytes_held %lld",
			 ulp_stat("sessions"), ulp_stat("bytes_held"));
		return -1;
	}
	return 0;
}

TEST_F_TIMEOUT(stress, unload_reload_and_param_writes, 150)
{
	uint32_t rs = 0x2545f491u ^ (uint32_t)ulp_ms();
	char orig[NPARAMS][64];
	struct cycle *c;
	long long end;
	long ret;
	int i, bad = 0;

	c = calloc(1, sizeof(*c));
	ASSERT_NE(NULL, c);
	c->key = (uint64_t)rnd(&rs) << 32;
	for (i = 0; i < (int)NPARAMS; i++)
		ASSERT_LT(0, param_read(&kparams[i], orig[i], sizeof(orig[i])));
	end = ulp_ms() + CYCLE_MS;
	for (i = 0; i < CYCLE_MAX && !bad; i++) {
		uint32_t r = rnd(&rs) % 100;

		/* Until the minimums are met the test keeps going past CYCLE_MS. */
		if (ulp_ms() > end && c->unloads >= 3 && c->refused >= 3)
			break;
		if (r < 35) {
			bad = cycle_attach(c, &rs);
		} else if (r < 60) {
			bad = cycle_param(c, &rs);
		} else if (r < 75) {
			if (!c->held)
				bad = cycle_attach(c, &rs);
			if (!bad && c->held) {
				ret = cycle_delete();
				if (ret != -EAGAIN && ret != -EBUSY) {
					snprintf(c->why, sizeof(c->why),
						 "unload with %d sockets attached: %ld", c->held, ret);
					bad = 1;
				}
				c->refused++;
			}
		} else if (r < 85) {
			/* Some pairs go away without an unload after them. */
			for (int n = rnd(&rs) % (c->held + 1); n > 0; n--) {
				c->held--;
				close_fd(c->cli[c->held], &rs);
				close_fd(c->brk[c->held], &rs);
			}
		} else {
			bad = cycle_unload(c, &rs);
		}
	}
	/* The last unload frees whatever still lingers; the test ends with mqttq loaded. */
	if (!bad)
		bad = cycle_unload(c, &rs);
	cycle_close_all(c, &rs);
	if (mqttq_ksft_loaded() != 1)
		mqttq_ksft_sh("modprobe mqttq");
	TH_LOG("steps %d: unloads %ld (waited %ld x 20 ms, lingering sessions before %ld), "
	       "refused %ld, TCP_ULP while unloaded: autoload %ld ENOENT %ld, pairs %ld, "
	       "param writes valid %ld invalid %ld",
	       i, c->unloads, c->unload_retries, c->lingered_at_unload, c->refused, c->autoload,
	       c->enoent, c->attached, c->pw_ok, c->pw_bad);
	for (int k = 0; k < (int)NPARAMS; k++)
		EXPECT_EQ(0, param_write(&kparams[k], orig[k]));
	ASSERT_EQ(0, bad) TH_LOG("%s", c->why);
	EXPECT_LE(3, c->unloads);
	EXPECT_LE(3, c->refused);
	EXPECT_EQ(1, mqttq_ksft_loaded());
	EXPECT_EQ(0, ulp_stat_wait("sessions", 0, SETTLE_MS));
	EXPECT_EQ(0, ulp_stat("bytes_held"));
	EXPECT_EQ(0, ulp_stat("inflight"));
	free(c);
}

/*
 * The same operations from three threads at once: one attaches, sets up
 * sessions and closes pairs, one writes parameters, the test thread unloads
 * and reloads whenever the module lets it. Each call must either work or fail
 * the way an absent or busy module fails.
 */
struct race {
	long long end;
	atomic_int bad, stop;
	char why[256];
	atomic_long attached, attach_enoent, unloads, refused, pw_ok, pw_bad, pw_gone;
};

static void race_fail(struct race *rc, const char *fmt, long a, long b)
{
	if (atomic_fetch_add(&rc->bad, 1) == 0)
		snprintf(rc->why, sizeof(rc->why), fmt, a, b);
}

static void *race_attacher(void *arg)
{
	struct race *rc = arg;
	uint32_t rs = 0x6c078965u ^ (uint32_t)ulp_ms();
	uint64_t key = (uint64_t)rnd(&rs) << 32;

	for (long i = 0; i < CYCLE_MAX * 10 && !rc->stop && !rc->bad; i++) {
		struct mqttq_session ss;
		int cli, brk;

		if (ulp_pair(&cli, &brk)) {
			usleep(1000);
			continue;
		}
		if (ulp_attach(cli) == 0) {
			atomic_fetch_add(&rc->attached, 1);
			ulp_sess_init(&ss, rnd(&rs) & 1 ? MQTTQ_V5 : MQTTQ_V311);
			ss.key = rnd(&rs) & 1 ? ++key : 0;
			ss.linger_s = rnd(&rs) & 1 ? 30 : MQTTQ_DEFAULT;
			if (rnd(&rs) & 1)
				ulp_session(cli, &ss);
			if (rnd(&rs) & 1)
				ulp_publish(cli, 1, 1, "a/b", "p", MSG_DONTWAIT);
		} else if (errno == ENOENT) {
			atomic_fetch_add(&rc->attach_enoent, 1);
		} else {
			race_fail(rc, "TCP_ULP during unload/reload: errno %ld", errno, 0);
		}
		usleep(rnd(&rs) % 5000);
		close_fd(cli, &rs);
		close_fd(brk, &rs);
		usleep(rnd(&rs) % 10000);
	}
	return NULL;
}

static void *race_params(void *arg)
{
	struct race *rc = arg;
	uint32_t rs = 0x41c64e6du ^ (uint32_t)ulp_ms();

	for (long i = 0; i < CYCLE_MAX * 10 && !rc->stop && !rc->bad; i++) {
		const struct kparam *k = &kparams[rnd(&rs) % NPARAMS];
		int valid = rnd(&rs) & 1, ret;
		char v[32];

		if (valid)
			snprintf(v, sizeof(v), "%u", k->lo + rnd(&rs) % (k->hi - k->lo + 1));
		else
			snprintf(v, sizeof(v), "%u", k->hi + 1);
		ret = param_write(k, v);
		if (ret == -ENOENT || ret == -ENODEV) {
			atomic_fetch_add(&rc->pw_gone, 1);	/* the module is between unload and load */
		} else if (valid && ret) {
			race_fail(rc, "valid parameter write failed: %ld (param %ld)", ret, k - kparams);
		} else if (!valid && ret != -EINVAL) {
			race_fail(rc, "invalid parameter write: %ld (param %ld)", ret, k - kparams);
		} else {
			atomic_fetch_add(valid ? &rc->pw_ok : &rc->pw_bad, 1);
		}
		usleep(rnd(&rs) % 5000);
	}
	return NULL;
}

TEST_F_TIMEOUT(stress, concurrent_unload_attach_params, 150)
{
	uint32_t rs = 0x5851f42du ^ (uint32_t)ulp_ms();
	char orig[NPARAMS][64];
	pthread_t att, par;
	struct race *rc;
	long ret = -1;
	int i;

	rc = calloc(1, sizeof(*rc));
	ASSERT_NE(NULL, rc);
	for (i = 0; i < (int)NPARAMS; i++)
		ASSERT_LT(0, param_read(&kparams[i], orig[i], sizeof(orig[i])));
	rc->end = ulp_ms() + CYCLE_MS;
	ASSERT_EQ(0, pthread_create(&att, NULL, race_attacher, rc));
	ASSERT_EQ(0, pthread_create(&par, NULL, race_params, rc));
	for (i = 0; i < CYCLE_MAX * 10 && ulp_ms() < rc->end && !rc->bad; i++) {
		ret = cycle_delete();
		if (ret == 0) {
			atomic_fetch_add(&rc->unloads, 1);
			if (mqttq_ksft_loaded() != 1 && mqttq_ksft_sh("modprobe mqttq"))
				race_fail(rc, "modprobe mqttq after unload %ld failed", rc->unloads, 0);
		} else if (ret == -EAGAIN || ret == -EBUSY) {
			atomic_fetch_add(&rc->refused, 1);
		} else if (ret == -ENOENT) {
			/* unloaded and not yet reloaded: only this thread unloads */
			race_fail(rc, "mqttq missing, not unloaded here (step %ld)", i, 0);
		} else {
			race_fail(rc, "delete_module: %ld", ret, 0);
		}
		usleep(rnd(&rs) % 20000);
	}
	rc->stop = 1;
	pthread_join(att, NULL);
	pthread_join(par, NULL);
	/* Lingering sessions go with one more unload; the test ends with mqttq loaded. */
	for (long long e = ulp_ms() + UNLOAD_WAIT_MS; ulp_ms() < e; usleep(20000)) {
		ret = cycle_delete();
		if (ret != -EAGAIN && ret != -EBUSY)
			break;
	}
	EXPECT_EQ(0, ret);
	EXPECT_NE(0, access(ULP_SYSFS, F_OK));
	if (mqttq_ksft_loaded() != 1)
		EXPECT_EQ(0, mqttq_ksft_sh("modprobe mqttq"));
	TH_LOG("steps %d: unloads %ld refused %ld, attached %ld ENOENT %ld, "
	       "param writes valid %ld invalid %ld module absent %ld",
	       i, (long)rc->unloads, (long)rc->refused, (long)rc->attached,
	       (long)rc->attach_enoent, (long)rc->pw_ok, (long)rc->pw_bad, (long)rc->pw_gone);
	for (int k = 0; k < (int)NPARAMS; k++)
		EXPECT_EQ(0, param_write(&kparams[k], orig[k]));
	ASSERT_EQ(0, rc->bad) TH_LOG("%s", rc->why);
	EXPECT_LT(0, rc->attached);
	EXPECT_EQ(1, mqttq_ksft_loaded());
	EXPECT_EQ(0, ulp_stat_wait("sessions", 0, SETTLE_MS));
	EXPECT_EQ(0, ulp_stat("bytes_held"));
	EXPECT_EQ(0, ulp_stat("inflight"));
	free(rc);
}

TEST_HARNESS_MAIN
