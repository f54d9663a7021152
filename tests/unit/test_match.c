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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_cases),   cmocka_unit_test(test_bad_filters),
		cmocka_unit_test(test_good_filters), cmocka_unit_test(test_length_limits),
		cmocka_unit_test(test_topic_valid),  cmocka_unit_test(test_set_lowest_id),
		cmocka_unit_test(test_set_many),
	};

	return cmocka_run_group_tests_name("match", tests, NULL, NULL);
}
