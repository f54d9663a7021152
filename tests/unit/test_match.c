// SPDX-License-Identifier: GPL-2.0 OR MIT
/* cmocka tests of the reference topic matcher and filter set (libmqttq/src/match.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "match.h"
#include "mqf_cases.h"

static void test_spec_cases(void **state)
{
	size_t i;

	for (i = 0; i < MQF_NCASES; i++) {
		const struct mqf_case *c = &mqf_cases[i];
		bool got =
			mqf_topic_matches(c->filter, strlen(c->filter), c->topic, strlen(c->topic));

		if (got != c->match)
			fail_msg("filter \"%s\" topic \"%s\": got %d want %d", c->filter, c->topic,
				 got, c->match);
	}
}

static void test_bad_filters(void **state)
{
	struct mqf_set *s = mqf_set_new();
	size_t i;

	assert_non_null(s);
	for (i = 0; i < MQF_NBAD; i++) {
		const char *f = mqf_bad_filters[i];

		if (mqf_filter_valid(f, strlen(f)))
			fail_msg("\"%s\" accepted", f);
		assert_int_equal(mqf_set_add(s, f, strlen(f), 1), -EINVAL);
		/* An invalid filter matches nothing, not even its own text. */
		assert_false(mqf_topic_matches(f, strlen(f), "a/b", 3));
	}
	assert_int_equal(mqf_set_count(s), 0);
	mqf_set_free(s);
}

static void test_good_filters(void **state)
{
	static const char *const good[] = {
		"#",   "+",   "a",     "/",	 "//",	"+/+",	 "/+",
		"a/#", "+/#", "a/+/b", "$SYS/#", "a b", "+/+/#", "a//#"
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!mqf_filter_valid(good[i], strlen(good[i])))
			fail_msg("\"%s\" refused", good[i]);
}

static void test_length_limits(void **state)
{
	char *buf = malloc(MQF_STR_MAX + 1);

	assert_non_null(buf);
	memset(buf, 'a', MQF_STR_MAX + 1);
	assert_true(mqf_filter_valid(buf, MQF_STR_MAX));
	assert_false(mqf_filter_valid(buf, MQF_STR_MAX + 1));
	assert_true(mqf_topic_valid(buf, MQF_STR_MAX));
	assert_false(mqf_topic_valid(buf, MQF_STR_MAX + 1));
	assert_true(mqf_topic_matches(buf, MQF_STR_MAX, buf, MQF_STR_MAX));
	assert_false(mqf_topic_matches(buf, MQF_STR_MAX + 1, buf, MQF_STR_MAX + 1));
	free(buf);
	assert_false(mqf_filter_valid("a\0b", 3));
	assert_false(mqf_filter_valid(NULL, 1));
}

static void test_topic_valid(void **state)
{
	assert_true(mqf_topic_valid("a", 1));
	assert_true(mqf_topic_valid("/", 1));
	assert_true(mqf_topic_valid("$SYS/x", 6));
	assert_false(mqf_topic_valid("", 0));
	assert_false(mqf_topic_valid("a/+", 3));
	assert_false(mqf_topic_valid("a/#", 3));
	assert_false(mqf_topic_valid("a\0b", 3));
	/* A wildcard in a PUBLISH topic is malformed, so nothing matches it. */
	assert_false(mqf_topic_matches("+", 1, "+", 1));
	assert_false(mqf_topic_matches("#", 1, "a/#", 3));
}

static void test_set_lowest_id(void **state)
{
	struct mqf_set *s = mqf_set_new(), *c;

	assert_non_null(s);
	assert_int_equal(mqf_set_add(s, "a/#", 3, 30), 0);
	assert_int_equal(mqf_set_add(s, "a/+", 3, 20), 0);
	assert_int_equal(mqf_set_add(s, "a/b", 3, 10), 0);
	assert_int_equal(mqf_set_add(s, "#", 1, 40), 0);
	assert_int_equal(mqf_set_add(s, "x", 1, 20), -EEXIST);
	assert_int_equal(mqf_set_add(s, "x", 1, 0), -EINVAL);
	assert_int_equal(mqf_set_add(s, "x", 1, MQF_ID_MAX + 1), -EINVAL);
	assert_int_equal(mqf_set_count(s), 4);
	assert_int_equal(mqf_set_match(s, "a/b", 3), 10);
	assert_int_equal(mqf_set_match(s, "a/c", 3), 20);
	assert_int_equal(mqf_set_match(s, "a", 1), 30);
	assert_int_equal(mqf_set_match(s, "b", 1), 40);
	assert_int_equal(mqf_set_match(s, "$SYS", 4), 0);
	assert_int_equal(mqf_set_match(s, "a/+", 3), 0);
	c = mqf_set_clone(s);
	assert_non_null(c);
	assert_int_equal(mqf_set_remove(s, 10), 0);
	assert_int_equal(mqf_set_remove(s, 10), -ENOENT);
	assert_int_equal(mqf_set_match(s, "a/b", 3), 20);
	/* The clone is a separate copy. */
	assert_int_equal(mqf_set_match(c, "a/b", 3), 10);
	assert_int_equal(mqf_set_count(c), 4);
	assert_int_equal(mqf_set_remove(s, 20), 0);
	assert_int_equal(mqf_set_remove(s, 30), 0);
	assert_int_equal(mqf_set_match(s, "a/b", 3), 40);
	assert_int_equal(mqf_set_remove(s, 40), 0);
	assert_int_equal(mqf_set_match(s, "a/b", 3), 0);
	assert_int_equal(mqf_set_count(s), 0);
	mqf_set_free(s);
	mqf_set_free(c);
}

static void test_set_many(void **state)
{
	struct mqf_set *s = mqf_set_new();
	char f[32];
	uint32_t id;

	assert_non_null(s);
	/* Added in descending order: the set keeps ascending id order itself. */
	for (id = 2000; id >= 1; id--) {
		int n = snprintf(f, sizeof(f), "d/%u", id % 100);

		assert_int_equal(mqf_set_add(s, f, (size_t)n, id), 0);
	}
	assert_int_equal(mqf_set_count(s), 2000);
	assert_int_equal(mqf_set_match(s, "d/7", 3), 7);
	assert_int_equal(mqf_set_match(s, "d/0", 3), 100);
	assert_int_equal(mqf_set_match(s, "d/100", 5), 0);
	mqf_set_free(s);
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)((rng >> 11) % n);
}

static const char *const words[] = { "a", "b", "", "$SYS", "$", "x y", "ab", "A", "c" };
#define NWORDS (sizeof(words) / sizeof(words[0]))

/*
 * Filters never use "c" and a leading '+' is followed by a literal, so the
 * topics heavy in "c" often match nothing; the rest meet '+' and '#' at
 * every position.
 */
static size_t rand_str(char *b, bool filter)
{
	size_t n = 0, nl = 1 + rnd(5), i;
	bool lead_plus = false;

	if (filter && nl < 2)
		nl = 2;
	for (i = 0; i < nl; i++) {
		if (i)
			b[n++] = '/';
		if (filter && !(i == 1 && lead_plus) && rnd(i ? 4 : 10) == 0) {
			b[n++] = '+';
			lead_plus |= i == 0;
		} else if (!filter && rnd(3) == 0) {
			b[n++] = 'c';
		} else {
			n += (size_t)sprintf(b + n, "%s", words[rnd(NWORDS - 1)]);
		}
	}
	if (filter && rnd(4) == 0)
		n += (size_t)sprintf(b + n, "/#");
	return n;
}

static size_t compare(const struct mqf_set *s, size_t topics)
{
	char t[256];
	size_t i, bad = 0, hits = 0;

	for (i = 0; i < topics; i++) {
		size_t n = rand_str(t, false);
		uint32_t a = mqf_set_match(s, t, n), b = mqf_set_match_scan(s, t, n);

		if (a != b && bad++ < 3)
			print_message("topic \"%.*s\": trie %u scan %u\n", (int)n, t, a, b);
		hits += a != 0;
	}
	/* Both outcomes must occur, or the comparison proves little. */
	assert_true(hits > topics / 20 && hits < topics - topics / 20);
	return bad;
}

/* The trie against the scan, through adds, removals (nodes freed and reused) and re-adds. */
static void test_trie_vs_scan(void **state)
{
	struct mqf_set *s = mqf_set_new();
	char f[256];
	uint32_t id;
	size_t round;

	assert_non_null(s);
	for (round = 0; round < 4; round++) {
		for (id = 1; id <= 600; id++) {
			size_t n = rand_str(f, true);
			int err = mqf_set_add(s, f, n, (uint32_t)round * 1000 + id);

			assert_int_equal(err, 0);
		}
		assert_int_equal(compare(s, 5000), 0);
		/* Remove about two thirds, at random. */
		for (id = 1; id <= 3000; id++)
			if (rnd(3))
				mqf_set_remove(s, id + (uint32_t)rnd(4000));
		assert_int_equal(compare(s, 5000), 0);
	}
	while (mqf_set_count(s)) {
		const char *ff;
		size_t len;

		assert_int_equal(mqf_set_get(s, 0, &ff, &len, &id), 0);
		assert_int_equal(mqf_set_remove(s, id), 0);
	}
	assert_int_equal(mqf_set_match(s, "a", 1), 0);
	assert_int_equal(mqf_set_add(s, "a/#", 3, 5), 0);
	assert_int_equal(mqf_set_match(s, "a", 1), 5);
	mqf_set_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_cases),   cmocka_unit_test(test_bad_filters),
		cmocka_unit_test(test_good_filters), cmocka_unit_test(test_length_limits),
		cmocka_unit_test(test_topic_valid),  cmocka_unit_test(test_set_lowest_id),
		cmocka_unit_test(test_set_many),     cmocka_unit_test(test_trie_vs_scan),
	};

	return cmocka_run_group_tests_name("match", tests, NULL, NULL);
}
