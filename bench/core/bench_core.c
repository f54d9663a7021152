// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Microbenchmark of the protocol core: ns per encode, decode and engine QoS 1/2 cycle, with an allocation count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mqc.h"

/*
 * Every allocation in the process goes through these, so the count taken
 * around a timed loop proves the loop allocates nothing.
 */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
static unsigned long n_alloc;

void *malloc(size_t n)
{
	n_alloc++;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	n_alloc++;
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	n_alloc++;
	return __libc_realloc(p, n);
}

void free(void *p)
{
	__libc_free(p);
}

static u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
}

static volatile u64 sink;
static u8 pkt[256];
static int pkt_len;
static struct mqc_packet dec;
static int fails;

/*
 * The machine may be shared: each measurement runs in ROUNDS slices and
 * reports the fastest slice (what the code costs) next to the mean over
 * all of them (what this run saw).
 */
#define ROUNDS 20

static void report(const char *name, const u64 *ns, unsigned long per_round,
		   unsigned long allocs)
{
	u64 best = ns[0], sum = 0;
	int r;

	for (r = 0; r < ROUNDS; r++) {
		sum += ns[r];
		if (ns[r] < best)
			best = ns[r];
	}
	printf("%-30s %8.1f ns/op best  %8.1f mean  %9lu ops  %lu allocations\n", name,
	       (double)best / (double)per_round, (double)sum / (double)(per_round * ROUNDS),
	       per_round * ROUNDS, allocs);
	if (allocs)
		fails++;
}

/* Run BODY per_round times in each of ROUNDS timed slices. */
#define MEASURE(ns, per_round, BODY)                             \
	do {                                                     \
		int r_;                                          \
		for (r_ = 0; r_ < ROUNDS; r_++) {                \
			u64 t_ = now_ns();                       \
			for (i = 0; i < (per_round); i++) {      \
				BODY;                            \
			}                                        \
			(ns)[r_] = now_ns() - t_;                \
		}                                                \
	} while (0)

/* ---- engine plumbing: a transport that only counts ---------------------------- */

static int e_send(void *ctx, const u8 *b, u32 len)
{
	sink += len + b[0];
	return 0;
}

static int e_send_msg(void *ctx, struct mqc_msg *m)
{
	sink += m->len;
	return 0;
}

static unsigned long completed;

static void e_complete(void *ctx, struct mqc_msg *m, u8 reason)
{
	completed += !reason;
}

static int e_deliver(void *ctx, const struct mqc_inmsg *im)
{
	sink += im->payload_len;
	return 0;
}

static void e_closed(void *ctx, const struct mqc_close *c)
{
	fprintf(stderr, "bench: session closed: %s\n", mqc_strerror(c->err));
	exit(1);
}

static const struct mqc_ops ops = {
	.send = e_send, .send_msg = e_send_msg, .complete = e_complete,
	.deliver = e_deliver, .closed = e_closed,
};

static struct mqc_session S;
static struct mqc_msg *slots[64];
static u8 in2[MQC_IN2_BYTES];
static u16 ackq[64];

static void session(u8 v)
{
	struct mqc_config cfg = { .version = v, .window = 64, .recv_max = 64, .keepalive_s = 60 };

	if (mqc_session_init(&S, &cfg, &ops, NULL, slots, in2, ackq) ||
	    mqc_connected(&S, NULL, false, 1)) {
		fprintf(stderr, "bench: session setup failed\n");
		exit(1);
	}
}

static void ack(u8 *b, u8 type, u16 pid)
{
	b[0] = (u8)(type << 4 | (type == MQC_PUBREL ? 2 : 0));
	b[1] = 2;
	b[2] = (u8)(pid >> 8);
	b[3] = (u8)pid;
}

int main(int argc, char **argv)
{
	unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 2000000, i, a0;
	unsigned long per = iters / ROUNDS ? iters / ROUNDS : 1;
	u64 ns[ROUNDS];
	static const u8 payload[64] = "twenty-one point five degrees in the greenhouse, sensor 7";
	struct mqc_props pr = { .present = 1ull << MQC_P_MESSAGE_EXPIRY, .message_expiry = 60 };
	struct mqc_pub pub = {
		.topic = { (const u8 *)"gw/7/greenhouse/t", 17 },
		.payload = { payload, sizeof(payload) },
		.qos = 1, .pid = 1, .props = &pr,
	};
	static u8 mbuf[256];
	struct mqc_msg m = { 0 };
	u8 b[4];
	u32 off;
	int v;

	for (v = MQC_V311; v <= MQC_V5; v++) {
		char name[64];
		const char *vn = v == MQC_V5 ? "v5" : "v3.1.1";

		a0 = n_alloc;
		MEASURE(ns, per, {
			pub.pid = (u16)(i | 1);
			pkt_len = mqc_encode_publish((u8)v, &pub, pkt, sizeof(pkt), &off);
			sink += (u64)pkt_len;
		});
		snprintf(name, sizeof(name), "encode PUBLISH %s (%dB)", vn, pkt_len);
		report(name, ns, per, n_alloc - a0);

		a0 = n_alloc;
		MEASURE(ns, per, {
			sink += (u64)mqc_decode((u8)v, pkt, (u32)pkt_len, 0, &dec) + dec.pid;
		});
		snprintf(name, sizeof(name), "decode PUBLISH %s", vn);
		report(name, ns, per, n_alloc - a0);

		/* QoS 1: publish -> PUBACK in -> complete */
		session((u8)v);
		pub.qos = 1;
		m.len = (u32)mqc_encode_publish((u8)v, &pub, mbuf, sizeof(mbuf), &m.pid_off);
		m.buf = mbuf;
		m.qos = 1;
		completed = 0;
		a0 = n_alloc;
		MEASURE(ns, per, {
			mqc_publish(&S, &m, i);
			ack(b, MQC_PUBACK, m.pid);
			mqc_input(&S, b, 4, i);
		});
		snprintf(name, sizeof(name), "engine QoS 1 cycle %s", vn);
		report(name, ns, per, n_alloc - a0);
		if (completed != per * ROUNDS)
			fails++;

		/* QoS 2: publish -> PUBREC in -> PUBREL out -> PUBCOMP in -> complete */
		session((u8)v);
		pub.qos = 2;
		m.len = (u32)mqc_encode_publish((u8)v, &pub, mbuf, sizeof(mbuf), &m.pid_off);
		m.qos = 2;
		completed = 0;
		a0 = n_alloc;
		MEASURE(ns, per, {
			mqc_publish(&S, &m, i);
			ack(b, MQC_PUBREC, m.pid);
			mqc_input(&S, b, 4, i);
			ack(b, MQC_PUBCOMP, m.pid);
			mqc_input(&S, b, 4, i);
		});
		snprintf(name, sizeof(name), "engine QoS 2 cycle %s", vn);
		report(name, ns, per, n_alloc - a0);
		if (completed != per * ROUNDS)
			fails++;

		/* inbound QoS 1: PUBLISH in -> deliver -> PUBACK out */
		session((u8)v);
		pub.qos = 1;
		a0 = n_alloc;
		MEASURE(ns, per, {
			pub.pid = (u16)(i % 65535 + 1);
			pkt[off] = (u8)(pub.pid >> 8);
			pkt[off + 1] = (u8)pub.pid;
			mqc_input(&S, pkt, (u32)pkt_len, i);
		});
		snprintf(name, sizeof(name), "engine inbound QoS 1 %s", vn);
		report(name, ns, per, n_alloc - a0);
		pub.qos = 1;
	}
	if (fails)
		fprintf(stderr, "bench-core: %d check(s) failed (allocations or lost completions)\n",
			fails);
	return fails ? 1 : 0;
}
