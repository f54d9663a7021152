// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Reference MQTT topic matcher and the filter set the library falls back to without BPF. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"

bool mqf_filter_valid(const char *filter, size_t len)
{
	size_t i;

	if (!filter || len == 0 || len > MQF_STR_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = filter[i];
		bool starts = i == 0 || filter[i - 1] == '/';
		bool ends = i + 1 == len || filter[i + 1] == '/';

		if (c == '\0')
			return false;
		if (c == '+' && !(starts && ends))
			return false;
		if (c == '#' && !(starts && i + 1 == len))
			return false;
	}
	return true;
}

bool mqf_topic_valid(const char *topic, size_t len)
{
	size_t i;

	if (!topic || len == 0 || len > MQF_STR_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (topic[i] == '\0' || topic[i] == '+' || topic[i] == '#')
			return false;
	return true;
}

static size_t level_end(const char *s, size_t len, size_t from)
{
	const char *p = from < len ? memchr(s + from, '/', len - from) : NULL;

	return p ? (size_t)(p - s) : len;
}

/* mqf_topic_matches() on a filter and topic already known valid. */
static bool matches(const char *filter, size_t flen, const char *topic, size_t tlen)
{
	size_t fi = 0, ti = 0;

	/* Section 4.7.2: wildcards in the first level never match "$..." topics. */
	if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return false;
	for (;;) {
		size_t fe = level_end(filter, flen, fi), te = level_end(topic, tlen, ti);
		size_t fl = fe - fi, tl = te - ti;

		if (fl == 1 && filter[fi] == '#')
			return true;
		if (!(fl == 1 && filter[fi] == '+') &&
		    (fl != tl || memcmp(filter + fi, topic + ti, fl) != 0))
			return false;
		if (fe == flen && te == tlen)
			return true;
		if (te == tlen)
			/* "a/#" matches "a": '#' also stands for zero levels. */
			return flen - fe == 2 && filter[fe + 1] == '#';
		if (fe == flen)
			return false;
		fi = fe + 1;
		ti = te + 1;
	}
}

bool mqf_topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen)
{
	return mqf_filter_valid(filter, flen) && mqf_topic_valid(topic, tlen) &&
	       matches(filter, flen, topic, tlen);
}

struct mqf_entry {
	uint32_t id;
	size_t len;
	char *filter;
};

/* Ids of the filters ending at a trie node, ascending: the first is the answer. */
struct ids {
	uint32_t *v;
	uint32_t n, cap;
};

/*
 * A trie over filter levels with the level bytes themselves (exact, unlike
 * the BPF maps' hashes). Node 0 is the root; literal children are found in
 * one hash table keyed by (parent, level bytes), chained through @next.
 */
struct tnode {
	uint32_t next; /* hash chain, or free list; 0 ends it */
	uint32_t parent;
	uint32_t plus; /* the '+' child, 0 if none */
	uint32_t refs; /* filters whose path holds this node */
	char *lvl; /* literal level (NULL for '+' and the root) */
	size_t llen;
	struct ids term; /* filters ending here */
	struct ids hash; /* filters ending here with "/#" ("#" alone: the root) */
};

struct mqf_set {
	struct mqf_entry *e; /* sorted by id */
	size_t n, cap;
	struct tnode *t;
	uint32_t nt, tcap, free_t;
	uint32_t *bucket; /* node index, 0 = empty (the root is never a child) */
	uint32_t nbucket;
	uint32_t nlit; /* literal nodes in the table */
};

struct mqf_set *mqf_set_new(void)
{
	struct mqf_set *set = calloc(1, sizeof(*set));

	if (!set)
		return NULL;
	set->t = calloc(16, sizeof(*set->t));
	set->bucket = calloc(16, sizeof(*set->bucket));
	if (!set->t || !set->bucket) {
		free(set->t);
		free(set->bucket);
		free(set);
		return NULL;
	}
	set->tcap = 16;
	set->nt = 1; /* the root */
	set->nbucket = 16;
	return set;
}

void mqf_set_free(struct mqf_set *set)
{
	size_t i;

	if (!set)
		return;
	for (i = 0; i < set->n; i++)
		free(set->e[i].filter);
	for (i = 0; i < set->nt; i++) {
		free(set->t[i].lvl);
		free(set->t[i].term.v);
		free(set->t[i].hash.v);
	}
	free(set->t);
	free(set->bucket);
	free(set->e);
	free(set);
}

static uint32_t lvl_hash(uint32_t parent, const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ parent;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return (uint32_t)(h ^ (h >> 32));
}

static uint32_t find_child(const struct mqf_set *set, uint32_t parent, const char *s, size_t len)
{
	uint32_t i = set->bucket[lvl_hash(parent, s, len) & (set->nbucket - 1)];

	for (; i; i = set->t[i].next) {
		const struct tnode *n = &set->t[i];

		if (n->parent == parent && n->llen == len && !memcmp(n->lvl, s, len))
			return i;
	}
	return 0;
}

static int grow_buckets(struct mqf_set *set)
{
	uint32_t nb = set->nbucket * 2, i, *b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (i = 1; i < set->nt; i++) {
		struct tnode *n = &set->t[i];
		uint32_t h;

		if (!n->refs || !n->lvl)
			continue;
		h = lvl_hash(n->parent, n->lvl, n->llen) & (nb - 1);
		n->next = b[h];
		b[h] = i;
	}
	free(set->bucket);
	set->bucket = b;
	set->nbucket = nb;
	return 0;
}

static uint32_t new_node(struct mqf_set *set, uint32_t parent)
{
	uint32_t i = set->free_t;

	if (i) {
		set->free_t = set->t[i].next;
	} else {
		if (set->nt == set->tcap) {
			struct tnode *t = realloc(set->t, 2 * set->tcap * sizeof(*t));

			if (!t)
				return 0;
			set->t = t;
			set->tcap *= 2;
		}
		i = set->nt++;
	}
	memset(&set->t[i], 0, sizeof(set->t[i]));
	set->t[i].parent = parent;
	return i;
}

/* The child of @parent for level @s (created when @create), 0 if none or no memory. */
static uint32_t child(struct mqf_set *set, uint32_t parent, const char *s, size_t len, bool create)
{
	uint32_t i, h;

	if (len == 1 && s[0] == '+') {
		if (set->t[parent].plus || !create)
			return set->t[parent].plus;
		i = new_node(set, parent);
		if (i)
			set->t[parent].plus = i;
		return i;
	}
	i = find_child(set, parent, s, len);
	if (i || !create)
		return i;
	if (set->nlit + 1 > set->nbucket && grow_buckets(set))
		return 0;
	i = new_node(set, parent);
	if (!i)
		return 0;
	set->t[i].lvl = malloc(len ? len : 1);
	if (!set->t[i].lvl) {
		set->t[i].next = set->free_t;
		set->free_t = i;
		return 0;
	}
	memcpy(set->t[i].lvl, s, len);
	set->t[i].llen = len;
	h = lvl_hash(parent, s, len) & (set->nbucket - 1);
	set->t[i].next = set->bucket[h];
	set->bucket[h] = i;
	set->nlit++;
	return i;
}

/* Drops a node no filter uses any more. */
static void drop_node(struct mqf_set *set, uint32_t i)
{
	struct tnode *n = &set->t[i];

	if (n->lvl) {
		uint32_t *pp =
			&set->bucket[lvl_hash(n->parent, n->lvl, n->llen) & (set->nbucket - 1)];

		while (*pp != i)
			pp = &set->t[*pp].next;
		*pp = n->next;
		set->nlit--;
	} else {
		set->t[n->parent].plus = 0;
	}
	free(n->lvl);
	free(n->term.v);
	free(n->hash.v);
	memset(n, 0, sizeof(*n));
	n->next = set->free_t;
	set->free_t = i;
}

static int ids_add(struct ids *l, uint32_t id)
{
	uint32_t i;

	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 2;
		uint32_t *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	for (i = l->n; i > 0 && l->v[i - 1] > id; i--)
		l->v[i] = l->v[i - 1];
	l->v[i] = id;
	l->n++;
	return 0;
}

static void ids_del(struct ids *l, uint32_t id)
{
	uint32_t i;

	for (i = 0; i < l->n && l->v[i] != id; i++)
		;
	if (i == l->n)
		return;
	memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
	l->n--;
}

/*
 * Walks (@add: builds) the path of filter @f and adds or removes @id at its
 * end. Removing drops the nodes no other filter needs.
 */
static int trie_update(struct mqf_set *set, const char *f, size_t len, uint32_t id, bool add)
{
	bool hash = f[len - 1] == '#', body = !(len == 1 && hash);
	size_t blen = hash ? (body ? len - 2 : 0) : len, i = 0, e;
	uint32_t cur = 0;
	int err;

	while (body) {
		const char *p = i < blen ? memchr(f + i, '/', blen - i) : NULL;
		uint32_t c;

		e = p ? (size_t)(p - f) : blen;
		c = child(set, cur, f + i, e - i, add);
		if (!c) {
			err = add ? -ENOMEM : -ENOENT;
			goto err_unref;
		}
		cur = c;
		set->t[cur].refs += add ? 1 : 0;
		if (e == blen)
			break;
		i = e + 1;
	}
	if (add) {
		err = ids_add(hash ? &set->t[cur].hash : &set->t[cur].term, id);
		if (err)
			goto err_unref;
		return 0;
	}
	ids_del(hash ? &set->t[cur].hash : &set->t[cur].term, id);
	err = 0;
err_unref:
	/* Release the filter's references (remove), or those taken so far (failed add). */
	if (add || !err) {
		while (cur) {
			uint32_t up = set->t[cur].parent;

			if (--set->t[cur].refs == 0)
				drop_node(set, cur);
			cur = up;
		}
	}
	return err;
}

/* Index of the first entry whose id is >= @id. */
static size_t lower_bound(const struct mqf_set *set, uint32_t id)
{
	size_t lo = 0, hi = set->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (set->e[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int mqf_set_add(struct mqf_set *set, const char *filter, size_t len, uint32_t id)
{
	size_t pos;
	char *copy;

	if (!set || id == 0 || id > MQF_ID_MAX || !mqf_filter_valid(filter, len))
		return -EINVAL;
	pos = lower_bound(set, id);
	if (pos < set->n && set->e[pos].id == id)
		return -EEXIST;
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 16;
		struct mqf_entry *e = realloc(set->e, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		set->e = e;
		set->cap = cap;
	}
	copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, filter, len);
	if (trie_update(set, filter, len, id, true)) {
		free(copy);
		return -ENOMEM;
	}
	memmove(&set->e[pos + 1], &set->e[pos], (set->n - pos) * sizeof(set->e[0]));
	set->e[pos] = (struct mqf_entry){ .id = id, .len = len, .filter = copy };
	set->n++;
	return 0;
}

int mqf_set_remove(struct mqf_set *set, uint32_t id)
{
	size_t pos;

	if (!set)
		return -EINVAL;
	pos = lower_bound(set, id);
	if (pos == set->n || set->e[pos].id != id)
		return -ENOENT;
	trie_update(set, set->e[pos].filter, set->e[pos].len, id, false);
	free(set->e[pos].filter);
	memmove(&set->e[pos], &set->e[pos + 1], (set->n - pos - 1) * sizeof(set->e[0]));
	set->n--;
	return 0;
}

uint32_t mqf_set_match_scan(const struct mqf_set *set, const char *topic, size_t len)
{
	size_t i;

	if (!set || !mqf_topic_valid(topic, len))
		return 0;
	for (i = 0; i < set->n; i++)
		if (matches(set->e[i].filter, set->e[i].len, topic, len))
			return set->e[i].id;
	return 0;
}

static void take(uint32_t *best, const struct ids *l)
{
	if (l->n && (!*best || l->v[0] < *best))
		*best = l->v[0];
}

/* A node to visit: reached after the topic levels before byte @ti (> len: all of them). */
struct visit {
	uint32_t node;
	size_t ti;
};

uint32_t mqf_set_match(const struct mqf_set *set, const char *topic, size_t len)
{
	struct visit local[64], *st = local, *big;
	size_t n = 0, cap = 64;
	uint32_t best = 0;
	bool dollar;

	if (!set || !mqf_topic_valid(topic, len))
		return 0;
	dollar = topic[0] == '$';
	st[n++] = (struct visit){ 0, 0 };
	while (n) {
		struct visit v = st[--n];
		const struct tnode *t = &set->t[v.node];
		bool root_dollar = v.node == 0 && dollar;
		uint32_t c[2];
		size_t te, k;

		/* Its '#' child matches the remaining levels, none included. */
		if (!root_dollar)
			take(&best, &t->hash);
		if (v.ti > len) {
			take(&best, &t->term);
			continue;
		}
		te = level_end(topic, len, v.ti);
		c[0] = find_child(set, v.node, topic + v.ti, te - v.ti);
		/* Section 4.7.2: a first-level '+' does not match a "$..." topic. */
		c[1] = root_dollar ? 0 : t->plus;
		for (k = 0; k < 2; k++) {
			if (!c[k])
				continue;
			if (n == cap) {
				/* Each node is visited once, so the set's size bounds this. */
				big = st == local ? malloc(2 * cap * sizeof(*st)) :
						    realloc(st, 2 * cap * sizeof(*st));
				if (!big) {
					best = mqf_set_match_scan(set, topic, len);
					goto out;
				}
				if (st == local)
					memcpy(big, local, sizeof(local));
				st = big;
				cap *= 2;
			}
			st[n++] = (struct visit){ c[k], te + 1 };
		}
	}
out:
	if (st != local)
		free(st);
	return best;
}

size_t mqf_set_count(const struct mqf_set *set)
{
	return set ? set->n : 0;
}

int mqf_set_get(const struct mqf_set *set, size_t i, const char **filter, size_t *len, uint32_t *id)
{
	if (!set || i >= set->n)
		return -ENOENT;
	*filter = set->e[i].filter;
	*len = set->e[i].len;
	*id = set->e[i].id;
	return 0;
}

struct mqf_set *mqf_set_clone(const struct mqf_set *set)
{
	struct mqf_set *c = mqf_set_new();
	size_t i;

	if (!c)
		return NULL;
	for (i = 0; set && i < set->n; i++) {
		if (mqf_set_add(c, set->e[i].filter, set->e[i].len, set->e[i].id)) {
			mqf_set_free(c);
			return NULL;
		}
	}
	return c;
}
