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

struct mqf_set {
	struct mqf_entry *e; /* sorted by id, so the first match is the lowest */
	size_t n, cap;
};

struct mqf_set *mqf_set_new(void)
{
	return calloc(1, sizeof(struct mqf_set));
}

void mqf_set_free(struct mqf_set *set)
{
	size_t i;

	if (!set)
		return;
	for (i = 0; i < set->n; i++)
		free(set->e[i].filter);
	free(set->e);
	free(set);
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
	free(set->e[pos].filter);
	memmove(&set->e[pos], &set->e[pos + 1], (set->n - pos - 1) * sizeof(set->e[0]));
	set->n--;
	return 0;
}

uint32_t mqf_set_match(const struct mqf_set *set, const char *topic, size_t len)
{
	size_t i;

	if (!set || !mqf_topic_valid(topic, len))
		return 0;
	for (i = 0; i < set->n; i++)
		if (matches(set->e[i].filter, set->e[i].len, topic, len))
			return set->e[i].id;
	return 0;
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
