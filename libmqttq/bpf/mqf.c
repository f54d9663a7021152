// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Loads the topic-filter program and keeps its two trie generations in step with the filter set. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "mqf.h"
#include "topic_filter.skel.h"

struct mqf_mgr {
	struct topic_filter_bpf *skel;
	int nodes_fd, active_fd, sock_fd, state_fd, prog_fd;
	int sync_fd, sync_inner_fd; /* map-in-map whose update waits for an RCU grace period */
	unsigned int active; /* generation programs read */
	struct mqf_set *staged;
	struct mqf_set *committed;
	pthread_mutex_t lock; /* guards committed against mqf_match */
	struct mqf_key *keys[2]; /* what each generation holds in the map, to delete it */
	size_t nkeys[2];
	size_t user_only;
	bool sk_attached;
	int socks[MQF_SOCK_MAX]; /* fd in each sockmap slot, -1 if free */
	__u64 cookies[MQF_SOCK_MAX]; /* its socket cookie, the key of its framing state */
};

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (getenv("MQF_BPF_DEBUG"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

static int make_sync_map(struct mqf_mgr *m)
{
	LIBBPF_OPTS(bpf_map_create_opts, o);

	m->sync_inner_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "mqf_sync_in", 4, 4, 1, NULL);
	if (m->sync_inner_fd < 0)
		return -errno;
	o.inner_map_fd = m->sync_inner_fd;
	m->sync_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "mqf_sync", 4, 4, 1, &o);
	if (m->sync_fd < 0)
		return -errno;
	return 0;
}

int mqf_open(struct mqf_mgr **out, unsigned int max_nodes)
{
	libbpf_print_fn_t old = libbpf_set_print(quiet_print);
	struct mqf_active act = { 0 };
	struct mqf_mgr *m;
	__u32 zero = 0;
	int err, i;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m) {
		err = -ENOMEM;
		goto err_restore;
	}
	m->sync_fd = m->sync_inner_fd = -1;
	for (i = 0; i < MQF_SOCK_MAX; i++)
		m->socks[i] = -1;
	pthread_mutex_init(&m->lock, NULL);
	m->staged = mqf_set_new();
	m->committed = mqf_set_new();
	if (!m->staged || !m->committed) {
		err = -ENOMEM;
		goto err_free;
	}
	m->skel = topic_filter_bpf__open();
	if (!m->skel) {
		err = -errno;
		goto err_free;
	}
	err = bpf_map__set_max_entries(m->skel->maps.mqf_nodes, max_nodes ? max_nodes : 131072);
	if (err)
		goto err_free;
	err = topic_filter_bpf__load(m->skel);
	if (err)
		goto err_free;
	m->nodes_fd = bpf_map__fd(m->skel->maps.mqf_nodes);
	m->active_fd = bpf_map__fd(m->skel->maps.mqf_active);
	m->sock_fd = bpf_map__fd(m->skel->maps.mqf_sockmap);
	m->state_fd = bpf_map__fd(m->skel->maps.mqf_sock_state);
	m->prog_fd = bpf_program__fd(m->skel->progs.mqf_topic_filter);
	if (bpf_map_update_elem(m->active_fd, &zero, &act, BPF_ANY)) {
		err = -errno;
		goto err_free;
	}
	err = make_sync_map(m);
	if (err)
		goto err_free;
	libbpf_set_print(old);
	*out = m;
	return 0;

err_free:
	mqf_close(m);
err_restore:
	libbpf_set_print(old);
	return err < 0 ? err : -EINVAL;
}

void mqf_close(struct mqf_mgr *m)
{
	if (!m)
		return;
	if (m->sync_fd >= 0)
		close(m->sync_fd);
	if (m->sync_inner_fd >= 0)
		close(m->sync_inner_fd);
	topic_filter_bpf__destroy(m->skel);
	mqf_set_free(m->staged);
	mqf_set_free(m->committed);
	free(m->keys[0]);
	free(m->keys[1]);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int mqf_add(struct mqf_mgr *m, const char *filter, size_t len, uint32_t id)
{
	return mqf_set_add(m->staged, filter, len, id);
}

int mqf_remove(struct mqf_mgr *m, uint32_t id)
{
	return mqf_set_remove(m->staged, id);
}

int mqf_prog_fd(const struct mqf_mgr *m)
{
	return m->prog_fd;
}

/* The trie of one generation, built in memory before it is written to the map. */
struct build {
	struct mqf_key *keys;
	struct mqf_node *vals;
	size_t n, cap;
	uint32_t *slot; /* open-addressing index into keys, 0 = empty, else index + 1 */
	size_t nslot;
	size_t user_only;
};

static uint64_t key_hash(const struct mqf_key *k)
{
	uint64_t h = k->h1 ^ ((uint64_t)k->parent << 32 | k->h2) * 0x9e3779b97f4a7c15ull;

	h ^= (uint64_t)k->len << 8 | k->kind;
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

/* The node for @k, created (with the next id) if it is new. */
static size_t node_get(struct build *b, const struct mqf_key *k)
{
	size_t mask = b->nslot - 1, i = key_hash(k) & mask;

	while (b->slot[i]) {
		size_t j = b->slot[i] - 1;

		if (!memcmp(&b->keys[j], k, sizeof(*k)))
			return j;
		i = (i + 1) & mask;
	}
	b->keys[b->n] = *k;
	b->vals[b->n] = (struct mqf_node){ .id = (uint32_t)b->n + 1 };
	b->slot[i] = (uint32_t)b->n + 1;
	return b->n++;
}

static void level_key(struct mqf_key *k, unsigned int gen, uint32_t parent, const char *s,
		      size_t len)
{
	uint64_t h1 = MQF_FNV_BASIS;
	uint32_t h2 = MQF_H2_BASIS;
	size_t i;

	memset(k, 0, sizeof(*k));
	k->gen = gen;
	k->parent = parent;
	if (len == 1 && s[0] == '+') {
		k->kind = MQF_K_PLUS;
		return;
	}
	for (i = 0; i < len; i++) {
		h1 = MQF_H1_STEP(h1, s[i]);
		h2 = MQF_H2_STEP(h2, s[i]);
	}
	k->kind = MQF_K_LEVEL;
	k->h1 = h1;
	k->h2 = h2;
	k->len = (uint16_t)len;
}

static void add_filter(struct build *b, unsigned int gen, const char *f, size_t len, uint32_t id)
{
	bool hash = f[len - 1] == '#';
	bool body = !(len == 1 && hash); /* "#" alone has no level before the '#' */
	size_t blen = hash ? (body ? len - 2 : 0) : len;
	size_t cur = 0, i = 0, e, levels = body;

	for (e = 0; e < blen; e++)
		levels += f[e] == '/';
	/*
	 * A topic matching this filter has more levels than the program reads,
	 * so the program answers MQF_UNDECIDED for it and userspace decides.
	 */
	if (levels > MQF_LEVELS_MAX) {
		b->user_only++;
		return;
	}
	while (body) {
		const char *p = i < blen ? memchr(f + i, '/', blen - i) : NULL;
		struct mqf_key k;
		size_t child;

		e = p ? (size_t)(p - f) : blen;
		level_key(&k, gen, b->vals[cur].id, f + i, e - i);
		child = node_get(b, &k);
		b->vals[cur].flags |= k.kind == MQF_K_PLUS ? MQF_NF_PLUS : MQF_NF_LEVELS;
		cur = child;
		if (e == blen)
			break;
		i = e + 1;
	}
	/* Ids arrive in ascending order, so the first one set is the lowest. */
	if (hash) {
		if (!b->vals[cur].hash)
			b->vals[cur].hash = id;
	} else if (!b->vals[cur].term) {
		b->vals[cur].term = id;
	}
}

static void build_free(struct build *b)
{
	free(b->keys);
	free(b->vals);
	free(b->slot);
}

static int build_trie(struct build *b, const struct mqf_set *set, unsigned int gen)
{
	size_t i, cap = 1, n = mqf_set_count(set);
	struct mqf_key root = { .gen = gen, .kind = MQF_K_ROOT };

	memset(b, 0, sizeof(*b));
	for (i = 0; i < n; i++) {
		const char *f;
		size_t len, j;
		uint32_t id;

		mqf_set_get(set, i, &f, &len, &id);
		cap++;
		for (j = 0; j < len; j++)
			cap += f[j] == '/';
	}
	b->nslot = 16;
	while (b->nslot < 2 * cap)
		b->nslot *= 2;
	b->keys = malloc(cap * sizeof(*b->keys));
	b->vals = malloc(cap * sizeof(*b->vals));
	b->slot = calloc(b->nslot, sizeof(*b->slot));
	b->cap = cap;
	if (!b->keys || !b->vals || !b->slot) {
		build_free(b);
		return -ENOMEM;
	}
	node_get(b, &root);
	for (i = 0; i < n; i++) {
		const char *f;
		size_t len;
		uint32_t id;

		mqf_set_get(set, i, &f, &len, &id);
		add_filter(b, gen, f, len, id);
	}
	return 0;
}

/* Deletes @n keys, all or nothing reported; a key already gone is not an error. */
static int map_delete(int fd, const struct mqf_key *keys, size_t n)
{
	__u32 count = (__u32)n;
	size_t i;

	if (!n)
		return 0;
	if (!bpf_map_delete_batch(fd, keys, &count, NULL))
		return 0;
	for (i = count; i < n; i++)
		if (bpf_map_delete_elem(fd, &keys[i]) && errno != ENOENT)
			return -errno;
	return 0;
}

static int map_write(int fd, const struct mqf_key *keys, const struct mqf_node *vals, size_t n)
{
	__u32 count = (__u32)n;
	size_t i;

	if (!bpf_map_update_batch(fd, keys, vals, &count, NULL))
		return 0;
	/* Batches are 5.6+; fall back to one call per key for what is left. */
	for (i = count; i < n; i++)
		if (bpf_map_update_elem(fd, &keys[i], &vals[i], BPF_ANY))
			return errno == E2BIG || errno == ENOMEM ? -ENOSPC : -errno;
	return 0;
}

/*
 * Returns once every program run that may have read the old generation has
 * finished: an update of a map-in-map waits for an RCU grace period in the
 * syscall (maybe_wait_bpf_programs()), and the filter runs in an RCU
 * read-side section.
 */
static int grace_period(struct mqf_mgr *m)
{
	__u32 zero = 0, fd = (__u32)m->sync_inner_fd;

	return bpf_map_update_elem(m->sync_fd, &zero, &fd, BPF_ANY) ? -errno : 0;
}

int mqf_commit(struct mqf_mgr *m)
{
	unsigned int gen = !m->active;
	struct mqf_active act = { .gen = gen };
	struct mqf_set *snap, *old;
	struct build b;
	__u32 zero = 0;
	int err;

	snap = mqf_set_clone(m->staged);
	if (!snap)
		return -ENOMEM;
	err = build_trie(&b, snap, gen);
	if (err)
		goto err_free_snap;
	/* This generation was retired by the previous commit's grace period. */
	err = map_delete(m->nodes_fd, m->keys[gen], m->nkeys[gen]);
	if (err)
		goto err_free_build;
	free(m->keys[gen]);
	m->keys[gen] = NULL;
	m->nkeys[gen] = 0;
	err = map_write(m->nodes_fd, b.keys, b.vals, b.n);
	if (err) {
		map_delete(m->nodes_fd, b.keys, b.n);
		goto err_free_build;
	}
	if (bpf_map_update_elem(m->active_fd, &zero, &act, BPF_ANY)) {
		err = -errno;
		map_delete(m->nodes_fd, b.keys, b.n);
		goto err_free_build;
	}
	m->active = gen;
	m->keys[gen] = b.keys;
	m->nkeys[gen] = b.n;
	m->user_only = b.user_only;
	b.keys = NULL;
	pthread_mutex_lock(&m->lock);
	old = m->committed;
	m->committed = snap;
	pthread_mutex_unlock(&m->lock);
	mqf_set_free(old);
	build_free(&b);
	return grace_period(m);

err_free_build:
	build_free(&b);
err_free_snap:
	mqf_set_free(snap);
	return err;
}

uint32_t mqf_match(struct mqf_mgr *m, const char *topic, size_t len)
{
	uint32_t id;

	pthread_mutex_lock(&m->lock);
	id = mqf_set_match(m->committed, topic, len);
	pthread_mutex_unlock(&m->lock);
	return id;
}

/* What a test run's skb holds at most, well under the kernel's one-page limit. */
#define RUN_MAX 2048

/*
 * A PUBLISH too big for a test run is run as its header and topic alone: the
 * answer depends on nothing else. Returns the compact length, 0 if @p is not
 * a PUBLISH the program could decide (it then gets the truncated packet and
 * answers MQF_UNDECIDED, as it would to the whole).
 */
static size_t compact_publish(unsigned char *out, const unsigned char *p, size_t len)
{
	size_t pos = 1, rl = 0, tl, nrl, n = 0, k;
	unsigned int qos = p[0] >> 1 & 3;

	for (k = 0; k < 4 && pos < len; k++) {
		rl |= (size_t)(p[pos] & 0x7f) << (7 * k);
		if (!(p[pos++] & 0x80))
			break;
	}
	if ((p[0] >> 4) != 3 || qos == 3 || k == 4 || pos + 2 > len || pos + rl > len)
		return 0;
	tl = (size_t)p[pos] << 8 | p[pos + 1];
	nrl = 2 + tl + (qos ? 2 : 0);
	if (tl > MQF_TOPIC_MAX || nrl > rl)
		return 0;
	out[n++] = p[0];
	out[n++] = (unsigned char)(nrl | 0x80);
	out[n++] = (unsigned char)(nrl >> 7);
	memcpy(out + n, p + pos, nrl);
	return n + nrl;
}

int mqf_run_repeat(struct mqf_mgr *m, const void *pkt, size_t len, unsigned int repeat,
		   uint32_t *ret, uint32_t *ns)
{
	/* Test runs of socket filters strip an Ethernet header first (eth_type_trans()). */
	unsigned char buf[14 + RUN_MAX];
	LIBBPF_OPTS(bpf_test_run_opts, o);
	size_t n = len;

	if (!m || !pkt || !len || !ret)
		return -EINVAL;
	memset(buf, 0, 12);
	buf[12] = 0x88; /* local experimental ethertype: nothing parses it */
	buf[13] = 0xb5;
	if (len <= RUN_MAX) {
		memcpy(buf + 14, pkt, len);
	} else {
		n = compact_publish(buf + 14, pkt, len);
		if (!n) {
			n = RUN_MAX;
			memcpy(buf + 14, pkt, n);
		}
	}
	o.data_in = buf;
	o.data_size_in = (__u32)(n + 14);
	o.repeat = repeat;
	if (bpf_prog_test_run_opts(m->prog_fd, &o))
		return -errno;
	*ret = o.retval;
	if (ns)
		*ns = o.duration;
	return 0;
}

int mqf_run(struct mqf_mgr *m, const void *pkt, size_t len, uint32_t *ret)
{
	return mqf_run_repeat(m, pkt, len, 1, ret, NULL);
}

static int attach_sk_progs(struct mqf_mgr *m)
{
	if (m->sk_attached)
		return 0;
	if (bpf_prog_attach(bpf_program__fd(m->skel->progs.mqf_stream_verdict), m->sock_fd,
			    BPF_SK_SKB_STREAM_VERDICT, 0))
		return -errno;
	m->sk_attached = true;
	return 0;
}

static int sock_cookie(int sockfd, __u64 *cookie)
{
	socklen_t cl = sizeof(*cookie);

	if (sockfd < 0)
		return -EBADF;
	return getsockopt(sockfd, SOL_SOCKET, SO_COOKIE, cookie, &cl) ? -errno : 0;
}

static void free_slot(struct mqf_mgr *m, __u32 slot)
{
	bpf_map_delete_elem(m->state_fd, &m->cookies[slot]);
	m->socks[slot] = -1;
	m->cookies[slot] = 0;
}

/* A socket closed without mqf_sock_detach() has left the sockmap: free its slot. */
static void reclaim(struct mqf_mgr *m)
{
	__u32 slot;
	__u64 c;

	for (slot = 0; slot < MQF_SOCK_MAX; slot++) {
		if (m->socks[slot] < 0)
			continue;
		if (bpf_map_lookup_elem(m->sock_fd, &slot, &c) || c != m->cookies[slot])
			free_slot(m, slot);
	}
}

int mqf_sock_attach(struct mqf_mgr *m, int sockfd)
{
	struct mqf_sock_state st = { 0 };
	__u64 cookie, val = (__u64)sockfd;
	__u32 slot;
	int err, pass;

	err = sock_cookie(sockfd, &cookie);
	if (err)
		return err;
	err = attach_sk_progs(m);
	if (err)
		return err;
	for (pass = 0; pass < 2; pass++) {
		for (slot = 0; slot < MQF_SOCK_MAX; slot++)
			if (m->socks[slot] < 0)
				break;
		if (slot < MQF_SOCK_MAX)
			break;
		reclaim(m);
	}
	if (slot == MQF_SOCK_MAX)
		return -ENOSPC;
	/* The stream is taken to be at a packet boundary now (see mqf.h). */
	if (bpf_map_update_elem(m->state_fd, &cookie, &st, BPF_ANY))
		return -errno;
	if (bpf_map_update_elem(m->sock_fd, &slot, &val, BPF_NOEXIST)) {
		err = -errno;
		bpf_map_delete_elem(m->state_fd, &cookie);
		return err;
	}
	m->socks[slot] = sockfd;
	m->cookies[slot] = cookie;
	return 0;
}

int mqf_sock_detach(struct mqf_mgr *m, int sockfd)
{
	__u64 cookie;
	__u32 slot;
	int err = sock_cookie(sockfd, &cookie);

	if (err)
		return err;
	for (slot = 0; slot < MQF_SOCK_MAX; slot++) {
		if (m->socks[slot] < 0 || m->cookies[slot] != cookie)
			continue;
		err = bpf_map_delete_elem(m->sock_fd, &slot) ? -errno : 0;
		free_slot(m, slot);
		return err;
	}
	return -ENOENT;
}

void mqf_get_stats(struct mqf_mgr *m, struct mqf_stats *st)
{
	pthread_mutex_lock(&m->lock);
	st->filters = mqf_set_count(m->committed);
	pthread_mutex_unlock(&m->lock);
	st->nodes = m->nkeys[m->active];
	st->user_only = m->user_only;
}
