// SPDX-License-Identifier: GPL-2.0 OR MIT
/* TAP tests of the eBPF topic filter against the reference matcher (needs root or CAP_BPF). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "mqf.h"
#include "mqf_cases.h"

static int ntest, nfail;
/* MQF_QUICK=1: the VM stage (TCG, 10-25x slower) runs smaller loads. */
static bool quick;

static bool tap(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", ok ? "" : "not ", ++ntest);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	nfail += !ok;
	return ok;
}

static void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)((rng_state >> 11) % n);
}

/* A PUBLISH packet into @buf (room for 16 + tlen + plen bytes); returns its length. */
static size_t mkpub(uint8_t *buf, unsigned int qos, const char *topic, size_t tlen, size_t plen)
{
	size_t rl = 2 + tlen + (qos ? 2 : 0) + plen, n = 0, p = 1;

	buf[n++] = 0x30 | (uint8_t)(qos << 1);
	do {
		buf[n] = rl & 0x7f;
		rl >>= 7;
		if (rl)
			buf[n] |= 0x80;
		n++;
	} while (rl);
	buf[n++] = (uint8_t)(tlen >> 8);
	buf[n++] = (uint8_t)tlen;
	memcpy(buf + n, topic, tlen);
	n += tlen;
	if (qos) {
		buf[n++] = 0;
		buf[n++] = (uint8_t)p;
	}
	memset(buf + n, 'p', plen);
	return n + plen;
}

static uint8_t pkt[70000];

/* Reference answer for a two-filter set {f1: 1, f2: 2}. */
static uint32_t mqf_set_match_one(const char *f1, const char *f2, const char *t, size_t tl)
{
	if (mqf_topic_matches(f1, strlen(f1), t, tl))
		return 1;
	if (mqf_topic_matches(f2, strlen(f2), t, tl))
		return 2;
	return 0;
}

/* The program's answer for @topic, or a negative errno from the test run. */
static int64_t bpf_match(struct mqf_mgr *m, const char *topic, size_t tlen, unsigned int qos)
{
	uint32_t r;
	size_t n = mkpub(pkt, qos, topic, tlen, 3);
	int err = mqf_run(m, pkt, n, &r);

	return err ? err : (int64_t)r;
}

static int64_t bpf_match_s(struct mqf_mgr *m, const char *topic)
{
	return bpf_match(m, topic, strlen(topic), 0);
}

static int set_one(struct mqf_mgr *m, const char *filter, uint32_t id, uint32_t *prev)
{
	int err;

	if (*prev)
		mqf_remove(m, *prev);
	*prev = 0;
	err = mqf_add(m, filter, strlen(filter), id);
	if (err)
		return err;
	*prev = id;
	return mqf_commit(m);
}

static void test_spec(struct mqf_mgr *m)
{
	uint32_t prev = 0;
	size_t i, bad = 0;

	for (i = 0; i < MQF_NCASES; i++) {
		const struct mqf_case *c = &mqf_cases[i];
		int64_t want, got;
		int err = set_one(m, c->filter, 7, &prev);

		if (err) {
			diag("commit \"%s\": %s", c->filter, strerror(-err));
			bad++;
			continue;
		}
		/* An empty topic is an MQTT 5 topic alias: only userspace knows it. */
		want = !*c->topic ? MQF_UNDECIDED : c->match ? 7 : MQF_NO_MATCH;
		got = bpf_match_s(m, c->topic);
		if (got != want) {
			diag("filter \"%s\" topic \"%s\": got %lld want %lld", c->filter, c->topic,
			     (long long)got, (long long)want);
			bad++;
		}
	}
	if (prev)
		mqf_remove(m, prev);
	mqf_commit(m);
	tap(bad == 0, "spec matching examples through the program (%zu cases)", MQF_NCASES);
}

static void test_invalid(struct mqf_mgr *m)
{
	size_t i, bad = 0;

	for (i = 0; i < MQF_NBAD; i++) {
		const char *f = mqf_bad_filters[i];
		int err = mqf_add(m, f, strlen(f), 100 + (uint32_t)i);

		if (err != -EINVAL) {
			diag("\"%s\": %d", f, err);
			bad++;
		}
	}
	{
		static char longf[MQF_STR_MAX + 2];

		memset(longf, 'a', sizeof(longf) - 1);
		bad += mqf_add(m, longf, MQF_STR_MAX + 1, 1) != -EINVAL;
	}
	bad += mqf_add(m, "a", 1, 0) != -EINVAL;
	bad += mqf_add(m, "a", 1, 5) != 0;
	bad += mqf_add(m, "b", 1, 5) != -EEXIST;
	bad += mqf_remove(m, 6) != -ENOENT;
	bad += mqf_remove(m, 5) != 0;
	tap(bad == 0, "invalid filters and ids refused (%zu filters)", MQF_NBAD + 1);
}

static void test_lowest(struct mqf_mgr *m)
{
	static const struct {
		const char *f;
		uint32_t id;
	} fs[] = { { "#", 50 },	  { "a/#", 40 }, { "a/+", 30 },	   { "a/b", 20 },
		   { "+/b", 25 }, { "a/b", 60 }, { "$SYS/#", 70 }, { "+/+/c", 15 } };
	size_t i;
	bool ok = true;
	struct mqf_stats st;

	for (i = 0; i < sizeof(fs) / sizeof(fs[0]); i++)
		ok &= mqf_add(m, fs[i].f, strlen(fs[i].f), fs[i].id) == 0;
	ok &= mqf_commit(m) == 0;
	ok &= bpf_match_s(m, "a/b") == 20;
	ok &= bpf_match_s(m, "x/b") == 25;
	ok &= bpf_match_s(m, "a/c") == 30;
	ok &= bpf_match_s(m, "a") == 40;
	ok &= bpf_match_s(m, "a/b/c") == 15;
	ok &= bpf_match_s(m, "q") == 50;
	ok &= bpf_match_s(m, "$SYS/b") == 70;
	ok &= bpf_match_s(m, "$SYS/b/c") == 70;
	ok &= bpf_match(m, "a/b", 3, 1) == 20;
	ok &= bpf_match(m, "a/b", 3, 2) == 20;
	mqf_get_stats(m, &st);
	ok &= st.filters == 8 && st.user_only == 0 && st.nodes >= 8;
	tap(ok, "lowest matching id wins, any QoS");
	ok = mqf_remove(m, 20) == 0 && mqf_remove(m, 15) == 0 && mqf_commit(m) == 0;
	ok &= bpf_match_s(m, "a/b") == 25;
	ok &= bpf_match_s(m, "a/b/c") == 40;
	for (i = 0; i < sizeof(fs) / sizeof(fs[0]); i++)
		mqf_remove(m, fs[i].id);
	ok &= mqf_commit(m) == 0;
	ok &= bpf_match_s(m, "a/b") == MQF_NO_MATCH;
	tap(ok, "removed filters stop matching after commit");
}

static void test_limits(struct mqf_mgr *m)
{
	static char t[4096], f[4096];
	bool ok = true;
	struct mqf_stats st;
	size_t n;
	int i;

	ok &= mqf_add(m, "#", 1, 9) == 0 && mqf_commit(m) == 0;
	memset(t, 'x', sizeof(t));
	ok &= bpf_match(m, t, MQF_TOPIC_MAX, 0) == 9;
	ok &= bpf_match(m, t, MQF_TOPIC_MAX + 1, 0) == MQF_UNDECIDED;
	ok &= bpf_match(m, t, 3000, 0) == MQF_UNDECIDED;
	for (i = 0, n = 0; i < MQF_LEVELS_MAX; i++)
		n += (size_t)sprintf(t + n, "%s", i ? "/l" : "l");
	ok &= bpf_match(m, t, n, 0) == 9;
	n += (size_t)sprintf(t + n, "/l");
	ok &= bpf_match(m, t, n, 0) == MQF_UNDECIDED;
	ok &= mqf_match(m, t, n) == 9;
	tap(ok, "topics over %d bytes or %d levels are undecided, within are decided",
	    MQF_TOPIC_MAX, MQF_LEVELS_MAX);

	/* Too deep for the trie: any topic it matches is undecided, so userspace sees it. */
	for (i = 0, n = 0; i <= MQF_LEVELS_MAX; i++)
		n += (size_t)sprintf(f + n, "%s", i ? "/+" : "+");
	mqf_remove(m, 9);
	ok = mqf_add(m, f, n, 3) == 0 && mqf_add(m, "l/#", 3, 4) == 0 && mqf_commit(m) == 0;
	mqf_get_stats(m, &st);
	ok &= st.user_only == 1 && st.filters == 2;
	ok &= bpf_match(m, t, strlen(t), 0) == MQF_UNDECIDED && mqf_match(m, t, strlen(t)) == 3;
	ok &= bpf_match_s(m, "l/l") == 4;
	mqf_remove(m, 3);
	mqf_remove(m, 4);
	ok &= mqf_commit(m) == 0;
	tap(ok, "filters deeper than %d levels are matched in userspace only", MQF_LEVELS_MAX);
}

static void test_malformed(struct mqf_mgr *m)
{
	static const uint8_t ping[] = { 0xc0, 0x00 };
	static const uint8_t connack[] = { 0x20, 0x02, 0x00, 0x00 };
	static const uint8_t qos3[] = { 0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01 };
	static const uint8_t longvar[] = { 0x30, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01, 'a' };
	static const uint8_t short_rl[] = { 0x30, 0x02, 0x00, 0x01, 'a' };
	static const uint8_t short_pkt[] = { 0x30, 0x09, 0x00, 0x01, 'a' };
	static const uint8_t qos1_nopid[] = { 0x32, 0x03, 0x00, 0x01, 'a' };
	static const uint8_t plus[] = { 0x30, 0x05, 0x00, 0x03, 'a', '/', '+' };
	static const uint8_t hash[] = { 0x30, 0x03, 0x00, 0x01, '#' };
	static const uint8_t nul[] = { 0x30, 0x05, 0x00, 0x03, 'a', 0, 'b' };
	static const uint8_t one[] = { 0x30 };
	static const struct {
		const uint8_t *p;
		size_t n;
		uint32_t want;
	} cs[] = {
		{ ping, sizeof(ping), MQF_UNDECIDED },
		{ connack, sizeof(connack), MQF_UNDECIDED },
		{ qos3, sizeof(qos3), MQF_UNDECIDED },
		{ longvar, sizeof(longvar), MQF_UNDECIDED },
		{ short_rl, sizeof(short_rl), MQF_UNDECIDED },
		{ short_pkt, sizeof(short_pkt), MQF_UNDECIDED },
		{ qos1_nopid, sizeof(qos1_nopid), MQF_UNDECIDED },
		{ plus, sizeof(plus), MQF_UNDECIDED },
		{ hash, sizeof(hash), MQF_UNDECIDED },
		{ nul, sizeof(nul), MQF_UNDECIDED },
		{ one, sizeof(one), MQF_UNDECIDED },
	};
	bool ok = mqf_add(m, "#", 1, 1) == 0 && mqf_commit(m) == 0;
	size_t i, n;
	uint32_t r;

	for (i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
		r = 0;
		if (mqf_run(m, cs[i].p, cs[i].n, &r) || r != cs[i].want) {
			diag("malformed case %zu: got %u", i, r);
			ok = false;
		}
	}
	/* A multi-byte remaining length is fine. */
	n = mkpub(pkt, 0, "a/b", 3, 3000);
	ok &= mqf_run(m, pkt, n, &r) == 0 && r == 1;
	n = mkpub(pkt, 1, "a/b", 3, 200);
	ok &= mqf_run(m, pkt, n, &r) == 0 && r == 1;
	/* Bigger than a test run takes: run as header and topic, same answer. */
	n = mkpub(pkt, 2, "a/b", 3, 60000);
	ok &= mqf_run(m, pkt, n, &r) == 0 && r == 1;
	n = mkpub(pkt, 0, "x+", 2, 60000);
	ok &= mqf_run(m, pkt, n, &r) == 0 && r == MQF_UNDECIDED;
	pkt[1] |= 0x7f; /* remaining length now past the packet's end */
	ok &= mqf_run(m, pkt, n, &r) == 0 && r == MQF_UNDECIDED;
	mqf_remove(m, 1);
	ok &= mqf_commit(m) == 0;
	tap(ok, "non-PUBLISH and malformed packets are undecided, never a match or a miss");
}

/* Random topics and filters over a small vocabulary, so that they often meet. */
static const char *const vocab[] = { "a", "b",	 "c",	     "sport", "tennis", "",   "$SYS", "$x",
				     "A", "x y", "\xc3\xa4", "ab",    "d",	"$e", "F" };
#define NVOCAB (sizeof(vocab) / sizeof(vocab[0]))

static size_t rand_topic(char *t, size_t cap, size_t *levels)
{
	size_t n = 0, nl = 1 + rnd(6), i;
	uint32_t kind = rnd(1000);

	if (kind < 10)
		nl = MQF_LEVELS_MAX - 2 + rnd(6); /* around the level limit */
	for (i = 0; i < nl && n + 300 < cap; i++) {
		if (i)
			t[n++] = '/';
		if (kind >= 10 && kind < 20 && i == 0) {
			size_t len = MQF_TOPIC_MAX - 8 + rnd(16); /* around the byte limit */

			memset(t + n, 'z', len);
			n += len;
			continue;
		}
		n += (size_t)sprintf(t + n, "%s", vocab[rnd(NVOCAB)]);
	}
	*levels = i;
	if (n == 0)
		t[n++] = 'a'; /* "" is an alias, not a topic; see test_spec */
	return n;
}

/*
 * Filters use the first FVOCAB words only, topics all of them, so that some
 * topics match nothing; '+' and '#' land at every position, but catch-alls
 * ("#", "+/#") are rare enough to leave misses.
 */
#define FVOCAB (NVOCAB - 3)

static size_t rand_filter(char *f)
{
	size_t n = 0, nl = 1 + rnd(6), i;

	if (rnd(2000) == 0)
		return (size_t)sprintf(f, "#");
	for (i = 0; i < nl; i++) {
		if (i)
			f[n++] = '/';
		if (rnd(i ? 5 : 40) == 0)
			f[n++] = '+';
		else
			n += (size_t)sprintf(f + n, "%s", vocab[rnd(FVOCAB)]);
	}
	if (n == 0)
		f[n++] = '+'; /* "" is no filter */
	if (rnd(4) == 0)
		n += (size_t)sprintf(f + n, "/#");
	return n;
}

static size_t level_bounds(const char *s, size_t len, size_t *start, size_t *lens, size_t max)
{
	size_t n = 0, i = 0;

	for (;;) {
		const char *p = memchr(s + i, '/', len - i);
		size_t e = p ? (size_t)(p - s) : len;

		if (n < max) {
			start[n] = i;
			lens[n] = e - i;
		}
		n++;
		if (!p)
			return n;
		i = e + 1;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Whether the program's walk of @t must push more than MQF_QUEUE_MAX trie
 * nodes: one per distinct filter prefix of k levels (k < topic levels) that
 * matches the topic's first k levels and continues with another level.
 */
static bool walk_overflows(struct mqf_mgr *m, struct mqf_set *set, const char *t, size_t tlen)
{
	static size_t ts[64], tl[64], fsz[64], fl[64];
	size_t nt = level_bounds(t, tlen, ts, tl, 64), i, n = mqf_set_count(set), cnt = 0, uniq;
	char **pre = NULL;
	size_t npre = 0, cap = 0;

	(void)m;
	for (i = 0; i < n; i++) {
		const char *f;
		size_t len, nf, body, k;
		uint32_t id;

		mqf_set_get(set, i, &f, &len, &id);
		nf = level_bounds(f, len, fsz, fl, 64);
		body = f[len - 1] == '#' ? nf - 1 : nf;
		if (body > MQF_LEVELS_MAX)
			continue;
		for (k = 0; k < body && k < nt; k++) {
			/* prefix of k levels matches? (k == 0: the root) */
			if (k > 0) {
				size_t j = k - 1;
				bool plus = fl[j] == 1 && f[fsz[j]] == '+';

				if (plus ? (j == 0 && t[0] == '$') :
					   (fl[j] != tl[j] || memcmp(f + fsz[j], t + ts[j], fl[j])))
					break;
			}
			if (npre == cap) {
				cap = cap ? cap * 2 : 256;
				pre = realloc(pre, cap * sizeof(*pre));
			}
			pre[npre++] = strndup(f, k ? fsz[k - 1] + fl[k - 1] : 0);
			/* Distinguish "" (k=1, empty level) from the root (k=0). */
			if (k == 0)
				pre[npre - 1][0] = '\0';
			{
				char *tagged = malloc(strlen(pre[npre - 1]) + 8);

				sprintf(tagged, "%zu:%s", k, pre[npre - 1]);
				free(pre[npre - 1]);
				pre[npre - 1] = tagged;
			}
		}
	}
	qsort(pre, npre, sizeof(*pre), cmp_str);
	for (i = 0, uniq = 0; i < npre; i++)
		uniq += i == 0 || strcmp(pre[i], pre[i - 1]) != 0;
	cnt = uniq;
	for (i = 0; i < npre; i++)
		free(pre[i]);
	free(pre);
	return cnt > MQF_QUEUE_MAX;
}

struct diff_counts {
	size_t runs, matched, unmatched, und_len, und_lev, und_walk, disagree;
};

static void diff_run(struct mqf_mgr *m, struct mqf_set *ref, size_t topics, struct diff_counts *c)
{
	static char t[8192];
	size_t i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < topics; i++) {
		size_t lev, tlen = rand_topic(t, sizeof(t), &lev);
		/* The plain scan, not the set's trie: the most evident reference. */
		uint32_t want = mqf_set_match_scan(ref, t, tlen);
		int64_t got = bpf_match(m, t, tlen, rnd(3));

		c->runs++;
		if (got == MQF_UNDECIDED) {
			if (tlen > MQF_TOPIC_MAX)
				c->und_len++;
			else if (lev > MQF_LEVELS_MAX)
				c->und_lev++;
			else if (walk_overflows(m, ref, t, tlen))
				c->und_walk++;
			else
				goto disagree;
			continue;
		}
		if (got == want) {
			if (want)
				c->matched++;
			else
				c->unmatched++;
			continue;
		}
disagree:
		if (c->disagree++ < 5)
			diag("disagree: topic \"%.*s\" program %lld reference %u", (int)tlen, t,
			     (long long)got, want);
	}
}

static void unload(struct mqf_mgr *m, struct mqf_set *ref)
{
	const char *f;
	size_t len;
	uint32_t id;

	while (mqf_set_get(ref, 0, &f, &len, &id) == 0) {
		mqf_remove(m, id);
		mqf_set_remove(ref, id);
	}
	mqf_commit(m);
}

static struct mqf_set *load_random(struct mqf_mgr *m, size_t nfilters, uint32_t first_id)
{
	struct mqf_set *ref = mqf_set_new();
	static char f[512];
	size_t i;

	for (i = 0; i < nfilters; i++) {
		size_t n = rand_filter(f);
		uint32_t id = first_id + (uint32_t)i;

		if (mqf_add(m, f, n, id) || mqf_set_add(ref, f, n, id)) {
			diag("cannot add \"%.*s\" as %u", (int)n, f, id);
			mqf_remove(m, id);
			unload(m, ref);
			mqf_set_free(ref);
			return NULL;
		}
	}
	return ref;
}

/* 2^6 filters over {a,+}^6/z: "a/a/a/a/a/a/a" meets 127 prefixes, more than the queue holds. */
static void test_walk_limit(struct mqf_mgr *m)
{
	struct mqf_set *ref = mqf_set_new();
	char f[64];
	unsigned int bits, k;
	bool ok = ref != NULL;
	size_t n;

	for (bits = 0; ok && bits < 64; bits++) {
		for (k = 0, n = 0; k < 6; k++)
			n += (size_t)sprintf(f + n, "%s/", bits >> k & 1 ? "+" : "a");
		n += (size_t)sprintf(f + n, "z");
		ok &= mqf_add(m, f, n, bits + 1) == 0 && mqf_set_add(ref, f, n, bits + 1) == 0;
	}
	ok &= mqf_add(m, "a/a/a/a/a/a/#", 13, 100) == 0 &&
	      mqf_set_add(ref, "a/a/a/a/a/a/#", 13, 100) == 0;
	ok &= mqf_commit(m) == 0;
	ok &= walk_overflows(m, ref, "a/a/a/a/a/a/z", 13);
	ok &= bpf_match_s(m, "a/a/a/a/a/a/z") == MQF_UNDECIDED;
	ok &= mqf_match(m, "a/a/a/a/a/a/z", 13) == 1;
	/* Only the all-'+' path fits "b/...": 7 nodes, decided by the program. */
	ok &= !walk_overflows(m, ref, "b/b/b/b/b/b/z", 13);
	ok &= bpf_match_s(m, "b/b/b/b/b/b/z") == 64;
	ok &= bpf_match_s(m, "a/a/a/a/a/a") == 100;
	tap(ok, "a topic whose walk meets more than %d trie nodes is undecided", MQF_QUEUE_MAX);
	if (ref)
		unload(m, ref);
	mqf_set_free(ref);
}

/* Random bytes, and PUBLISHes with one byte changed: an id only for a real, matching PUBLISH. */
static void test_garbage(struct mqf_mgr *m)
{
	static uint8_t b[600];
	size_t i, runs = 0, ids = 0, bad = 0, n, j;
	bool ok = mqf_add(m, "+/#", 3, 1) == 0 && mqf_add(m, "#", 1, 2) == 0 && mqf_commit(m) == 0;

	for (i = 0; i < 20000 && ok; i++) {
		uint32_t r;

		if (i % 2) {
			n = 1 + rnd(sizeof(b) - 1);
			for (j = 0; j < n; j++)
				b[j] = (uint8_t)rnd(256);
			if (i % 4 == 1)
				b[0] = (uint8_t)(0x30 | (b[0] & 0x0f)); /* PUBLISH type, odd rest */
		} else {
			n = mkpub(b, rnd(3), "a/b/c", 5, rnd(200));
			b[rnd((uint32_t)n)] = (uint8_t)rnd(256);
		}
		if (mqf_run(m, b, n, &r)) {
			bad++;
			continue;
		}
		runs++;
		if (r == MQF_UNDECIDED)
			continue;
		ids++;
		/* Re-parse in userspace: it must be a PUBLISH whose topic "+/#" or "#" matches. */
		{
			size_t p = 1, rl = 0, tl, k;
			unsigned int qos = b[0] >> 1 & 3;

			for (k = 0; k < 4 && p < n; k++) {
				rl |= (size_t)(b[p] & 0x7f) << (7 * k);
				if (!(b[p++] & 0x80))
					break;
			}
			if ((b[0] >> 4) != 3 || qos == 3 || p + 2 > n || p + rl > n) {
				bad++;
				continue;
			}
			tl = (size_t)b[p] << 8 | b[p + 1];
			if (2 + tl + (qos ? 2 : 0) > rl ||
			    r != mqf_set_match_one("+/#", "#", (const char *)b + p + 2, tl))
				bad++;
		}
	}
	mqf_remove(m, 1);
	mqf_remove(m, 2);
	ok &= mqf_commit(m) == 0;
	diag("garbage: %zu runs, %zu gave an id", runs, ids);
	tap(ok && bad == 0 && runs == 20000 && ids > 0,
	    "garbage packets: an id only for a well-formed PUBLISH the filters match");
}

static void test_differential(struct mqf_mgr *m)
{
	size_t ntopics = quick ? 20000 : 100000;
	struct mqf_set *ref = load_random(m, 1000, 1);
	struct diff_counts c;
	double t0;
	int err;

	if (!ref || (err = mqf_commit(m))) {
		tap(false, "differential: loading 1000 random filters");
		mqf_set_free(ref);
		return;
	}
	t0 = now();
	diff_run(m, ref, ntopics, &c);
	diag("differential: %zu topics in %.1fs: %zu matched, %zu unmatched, undecided %zu "
	     "(over %d bytes) + %zu (over %d levels) + %zu (over %d visited nodes), %zu disagree",
	     c.runs, now() - t0, c.matched, c.unmatched, c.und_len, MQF_TOPIC_MAX, c.und_lev,
	     MQF_LEVELS_MAX, c.und_walk, MQF_QUEUE_MAX, c.disagree);
	tap(c.disagree == 0 && c.runs == ntopics && ntopics >= 10000,
	    "differential: %zu random topics x 1000 random filters, program == reference", ntopics);
	/* Both outcomes must be common, or the comparison above proves little. */
	tap(c.matched > ntopics / 20 && c.unmatched > ntopics / 20 && c.und_len > 0 &&
		    c.und_lev > 0,
	    "differential: the random topics exercise matches, misses and both limits");
	unload(m, ref);
	mqf_set_free(ref);
}

static void test_10k(struct mqf_mgr *m)
{
	struct mqf_set *ref = load_random(m, 10000, 1);
	struct diff_counts c;
	struct mqf_stats st;
	double t0;
	int err = -ENOMEM;

	t0 = now();
	if (ref)
		err = mqf_commit(m);
	mqf_get_stats(m, &st);
	diag("10000 filters: commit %.0f ms, %zu trie entries", (now() - t0) * 1e3, st.nodes);
	if (!tap(!err && st.filters == 10000, "10000 filters load (%s)", strerror(-err))) {
		mqf_set_free(ref);
		return;
	}
	diff_run(m, ref, 5000, &c);
	tap(c.disagree == 0,
	    "10000 filters: 5000 random topics agree with the reference (%zu matched)", c.matched);
	unload(m, ref);
	mqf_set_free(ref);
}

static void test_nospace(void)
{
	struct mqf_mgr *small;
	bool ok;
	char f[32];
	int i, n, err;

	if (mqf_open(&small, 64)) {
		tap(false, "second manager with 64 trie entries opens");
		return;
	}
	ok = mqf_add(small, "keep", 4, 1) == 0 && mqf_commit(small) == 0;
	for (i = 0; i < 100; i++) {
		n = sprintf(f, "n/%d", i);
		ok &= mqf_add(small, f, (size_t)n, 10 + (uint32_t)i) == 0;
	}
	err = mqf_commit(small);
	ok &= err == -ENOSPC;
	/* The active set is untouched: still just "keep". */
	ok &= bpf_match_s(small, "keep") == 1 && bpf_match_s(small, "n/5") == MQF_NO_MATCH;
	ok &= mqf_match(small, "n/5", 3) == 0;
	for (i = 0; i < 100; i++)
		mqf_remove(small, 10 + (uint32_t)i);
	ok &= mqf_add(small, "n/7", 3, 2) == 0 && mqf_commit(small) == 0;
	ok &= bpf_match_s(small, "n/7") == 2 && bpf_match_s(small, "keep") == 1;
	tap(ok, "a commit that does not fit fails with -ENOSPC and leaves the active set (%d)",
	    err);
	mqf_close(small);
}

/* ---- filters changing while messages flow ---- */

struct flip {
	struct mqf_mgr *m;
	volatile int done;
	int commits, err;
};

static void *flipper(void *arg)
{
	struct flip *fl = arg;
	double end = now() + 30;
	int i;

	for (i = 0; i < 60 && now() < end; i++) {
		bool one = i % 2 == 0;

		mqf_remove(fl->m, one ? 20 : 10);
		mqf_add(fl->m, one ? "k/1/2/3/4/5/6/7" : "k/1/2/3/4/5/+/7", 15, one ? 10 : 20);
		fl->err = mqf_commit(fl->m);
		if (fl->err)
			break;
		fl->commits++;
	}
	fl->done = 1;
	return NULL;
}

static void test_concurrent(struct mqf_mgr *m)
{
	static const char *const topics[] = { "k/1/2/3/4/5/6/7", "k/1/2/3/4/5/x/7", "k/1/2/3" };
	size_t nbase = quick ? 500 : 2000;
	struct mqf_set *base = load_random(m, nbase, 1000), *s1, *s2;
	uint32_t w1[3], w2[3];
	size_t runs = 0, bad = 0, seen1 = 0, seen2 = 0, i;
	struct flip fl = { .m = m };
	pthread_t th;
	double end;

	if (!base) {
		tap(false, "concurrent: base filters load");
		return;
	}
	/* s1/s2: what the program may see, before and after each flip. */
	s1 = mqf_set_clone(base);
	s2 = mqf_set_clone(base);
	mqf_set_add(s1, "k/1/2/3/4/5/6/7", 15, 10);
	mqf_set_add(s2, "k/1/2/3/4/5/+/7", 15, 20);
	mqf_add(m, "k/1/2/3/4/5/+/7", 15, 20);
	for (i = 0; i < 3; i++) {
		w1[i] = mqf_set_match(s1, topics[i], strlen(topics[i]));
		w2[i] = mqf_set_match(s2, topics[i], strlen(topics[i]));
	}
	if (mqf_commit(m) || pthread_create(&th, NULL, flipper, &fl)) {
		tap(false, "concurrent: start");
		goto out;
	}
	end = now() + 40;
	while (!fl.done && now() < end) {
		for (i = 0; i < 3; i++) {
			int64_t r = bpf_match_s(m, topics[i]);

			runs++;
			if (r != w1[i] && r != w2[i]) {
				if (bad++ < 5)
					diag("concurrent: \"%s\" got %lld, sets say %u or %u",
					     topics[i], (long long)r, w1[i], w2[i]);
			}
			if (i == 0) {
				seen1 += r == w1[0];
				seen2 += r == w2[0];
			}
		}
	}
	pthread_join(th, NULL);
	diag("concurrent: %d commits of %zu filters, %zu runs meanwhile, %zu old-set and %zu "
	     "new-set answers",
	     fl.commits, nbase + 1, runs, seen1, seen2);
	tap(fl.err == 0 && bad == 0 && fl.commits >= 4 && seen1 > 0 && seen2 > 0,
	    "concurrent: runs during commits see the old or the new set, never a mix");
out:
	mqf_remove(m, 10);
	mqf_remove(m, 20);
	unload(m, base);
	mqf_set_free(base);
	mqf_set_free(s1);
	mqf_set_free(s2);
}

/* ---- sockmap mode over a loopback TCP pair ---- */

static int tcp_pair(int *cli, int *srv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l, one = 1;

	*cli = *srv = -1;
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0)
		return -errno;
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		goto err_close;
	*cli = socket(AF_INET, SOCK_STREAM, 0);
	if (*cli < 0 || connect(*cli, (struct sockaddr *)&a, sizeof(a)))
		goto err_close;
	*srv = accept(l, NULL, NULL);
	if (*srv < 0)
		goto err_close;
	setsockopt(*cli, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	close(l);
	return 0;

err_close:
	close(l);
	if (*cli >= 0)
		close(*cli);
	return -errno;
}

/* Reads exactly @want bytes (2 s at most), then checks that nothing more arrives (200 ms). */
static ssize_t read_all(int fd, uint8_t *buf, size_t cap, size_t want)
{
	size_t got = 0;
	double end = now() + 2;

	while (got < cap && now() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int wait = got >= want ? 200 : 100;
		ssize_t n;

		if (poll(&p, 1, wait) <= 0) {
			if (got >= want)
				break;
			continue;
		}
		n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			diag("recv: %zd (%s) after %zu bytes", n, n ? strerror(errno) : "EOF", got);
			break;
		}
		got += (size_t)n;
	}
	return (ssize_t)got;
}

struct frame {
	uint8_t b[400];
	size_t n;
	bool drop; /* when it arrives alone in a segment */
};

static size_t frames_init(struct frame *fr)
{
	static const uint8_t ping[] = { 0xc0, 0x00 };
	static char big[300];
	size_t k = 0;

	memset(big, 'z', sizeof(big));
	fr[k].n = mkpub(fr[k].b, 0, "drop/me", 7, 5), fr[k++].drop = true;
	fr[k].n = mkpub(fr[k].b, 0, "keep/x", 6, 5), fr[k++].drop = false;
	fr[k].n = mkpub(fr[k].b, 1, "drop/q1", 7, 5), fr[k++].drop = false;
	memcpy(fr[k].b, ping, 2), fr[k].n = 2, fr[k++].drop = false;
	fr[k].n = mkpub(fr[k].b, 0, "drop/big", 8, 300), fr[k++].drop = true;
	fr[k].n = mkpub(fr[k].b, 0, "keep/big", 8, 300), fr[k++].drop = false;
	fr[k].n = mkpub(fr[k].b, 2, "other", 5, 0), fr[k++].drop = false;
	fr[k].n = mkpub(fr[k].b, 0, "keepx", 5, 0), fr[k++].drop = true;
	fr[k].n = mkpub(fr[k].b, 0, "keep", 4, 0), fr[k++].drop = false;
	/* Over the program's limits: undecided, so userspace decides. */
	fr[k].n = mkpub(fr[k].b, 0, big, 300, 1), fr[k++].drop = false;
	return k;
}

static void test_sockmap(struct mqf_mgr *m)
{
	static uint8_t all[8192], want[8192], in[16384];
	static struct frame fr[16];
	size_t nf = frames_init(fr), na = 0, nw = 0, i;
	ssize_t got;
	int cli, srv, err;
	bool ok;

	for (i = 0; i < nf; i++) {
		memcpy(all + na, fr[i].b, fr[i].n);
		na += fr[i].n;
		if (!fr[i].drop) {
			memcpy(want + nw, fr[i].b, fr[i].n);
			nw += fr[i].n;
		}
	}
	err = tcp_pair(&cli, &srv);
	if (err) {
		tap(false, "sockmap: loopback TCP pair (%s)", strerror(-err));
		return;
	}
	ok = mqf_add(m, "keep/#", 6, 1) == 0 && mqf_commit(m) == 0;
	err = mqf_sock_attach(m, srv);
	if (!tap(ok && err == 0, "sockmap: socket attached (%s)", strerror(-err)))
		goto out;

	/* One packet per segment: the pause lets each arrive on its own. */
	ok = true;
	for (i = 0; i < nf; i++) {
		ok &= send(cli, fr[i].b, fr[i].n, 0) == (ssize_t)fr[i].n;
		usleep(3000);
	}
	got = read_all(srv, in, sizeof(in), nw);
	ok &= got == (ssize_t)nw && !memcmp(in, want, nw);
	tap(ok,
	    "sockmap: unmatched QoS 0 PUBLISH dropped; matched, QoS 1/2, PINGREQ, undecided "
	    "passed (%zd of %zu bytes, want %zu)",
	    got, na, nw);

	/* Several packets in one segment cannot be split: all pass. */
	ok = send(cli, all, na, 0) == (ssize_t)na;
	got = read_all(srv, in, sizeof(in), na);
	ok &= got == (ssize_t)na && !memcmp(in, all, na);
	tap(ok, "sockmap: a segment of several packets, some to keep, passes whole (%zd of %zu)",
	    got, na);

	/* A segment of unmatched QoS 0 PUBLISHes only is dropped whole. */
	{
		static uint8_t seg[2048];
		size_t ns = 0;

		for (i = 0; i < nf; i++) {
			if (!fr[i].drop)
				continue;
			memcpy(seg + ns, fr[i].b, fr[i].n);
			ns += fr[i].n;
		}
		ok = send(cli, seg, ns, 0) == (ssize_t)ns;
		usleep(3000);
		ok &= send(cli, fr[1].b, fr[1].n, 0) == (ssize_t)fr[1].n;
		got = read_all(srv, in, sizeof(in), fr[1].n);
		ok &= got == (ssize_t)fr[1].n && !memcmp(in, fr[1].b, fr[1].n);
		tap(ok, "sockmap: a segment of unmatched QoS 0 packets only is dropped (%zu bytes)",
		    ns);
	}

	/* Packets split across segments pass too, and the framing stays in step. */
	ok = true;
	for (i = 0; i < na && ok; i++) {
		ok = send(cli, all + i, 1, 0) == 1;
		if (i % 16 == 0)
			usleep(1000);
	}
	got = read_all(srv, in, sizeof(in), na);
	ok &= got == (ssize_t)na && !memcmp(in, all, na);
	usleep(3000);
	ok &= send(cli, fr[0].b, fr[0].n, 0) == (ssize_t)fr[0].n;
	usleep(3000);
	ok &= send(cli, fr[1].b, fr[1].n, 0) == (ssize_t)fr[1].n;
	got = read_all(srv, in, sizeof(in), fr[1].n);
	ok &= got == (ssize_t)fr[1].n && !memcmp(in, fr[1].b, fr[1].n);
	tap(ok, "sockmap: a byte-by-byte stream passes and the framing survives it");

	ok = mqf_sock_detach(m, srv) == 0 && mqf_sock_detach(m, srv) == -ENOENT;
	for (i = 0; i < nf; i++) {
		ok &= send(cli, fr[i].b, fr[i].n, 0) == (ssize_t)fr[i].n;
		usleep(1000);
	}
	got = read_all(srv, in, sizeof(in), na);
	ok &= got == (ssize_t)na && !memcmp(in, all, na);
	tap(ok, "sockmap: after detach every byte passes (%zd of %zu)", got, na);
out:
	mqf_remove(m, 1);
	mqf_commit(m);
	close(cli);
	close(srv);
}

/* CAP_BPF (39) or CAP_SYS_ADMIN (21) in the effective set, as /proc tells. */
static bool may_bpf(void)
{
	unsigned long long eff = 0;
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return geteuid() == 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return (eff >> 39 & 1) || (eff >> 21 & 1);
}

/* Sockets closed while attached give their slot back: more than MQF_SOCK_MAX in turn. */
static void test_sock_reclaim(struct mqf_mgr *m)
{
	int i, cli, srv, err = 0, att = 0;

	for (i = 0; i < MQF_SOCK_MAX + 16 && !err; i++) {
		err = tcp_pair(&cli, &srv);
		if (err)
			break;
		err = mqf_sock_attach(m, srv);
		att += !err;
		close(cli);
		close(srv);
	}
	tap(!err && att == MQF_SOCK_MAX + 16,
	    "sockmap: %d sockets closed while attached, slots reused (%s)", att, strerror(-err));
}

int main(int argc, char **argv)
{
	struct mqf_mgr *m;
	struct utsname u;
	int err;

	if (argc > 1)
		rng_state = strtoull(argv[1], NULL, 0) | 1;
	quick = getenv("MQF_QUICK") && *getenv("MQF_QUICK") == '1';
	diag("seed 0x%llx", (unsigned long long)rng_state);
	uname(&u);
	err = mqf_open(&m, 0);
	if (err && !may_bpf()) {
		printf("ok 1 - bpf topic filter # SKIP no CAP_BPF (%s)\n", strerror(-err));
		return 0;
	}
	if (!tap(err == 0, "the verifier accepts the program on %s (%s)", u.release,
		 err ? strerror(-err) : "loaded")) {
		printf("1..%d\n", ntest);
		return 1;
	}
	test_spec(m);
	test_invalid(m);
	test_lowest(m);
	test_limits(m);
	test_malformed(m);
	test_nospace();
	test_walk_limit(m);
	test_garbage(m);
	test_differential(m);
	test_10k(m);
	test_concurrent(m);
	if (getenv("MQF_NO_SOCKMAP"))
		printf("ok %d - sockmap # SKIP MQF_NO_SOCKMAP set\n", ++ntest);
	else {
		test_sockmap(m);
		test_sock_reclaim(m);
	}
	mqf_close(m);
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
