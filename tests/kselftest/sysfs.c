// SPDX-License-Identifier: GPL-2.0
/* kselftest: every mqttq module parameter reads back its default, takes valid writes, refuses bad ones unchanged. */

#include <dirent.h>

#include "kselftest_harness.h"
#include "mqttq_ksft.h"

static void param_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, MQTTQ_PARAMS "%s", name);
}

static int read_param(const char *name, char *buf, size_t size)
{
	char path[256];

	param_path(path, sizeof(path), name);
	return mqttq_ksft_read(path, buf, size);
}

static int write_param(const char *name, const char *val)
{
	char path[256];

	param_path(path, sizeof(path), name);
	return mqttq_ksft_write_str(path, val);
}

/* A fresh load, so what a parameter reads is its load-time default. */
static void reload(struct __test_metadata *_metadata)
{
	if (mqttq_ksft_loaded() == 1)
		ASSERT_EQ(0, mqttq_ksft_sh("modprobe -r mqttq"));
	ASSERT_EQ(0, mqttq_ksft_sh("modprobe mqttq"));
}

static void ensure_loaded(struct __test_metadata *_metadata)
{
	if (mqttq_ksft_loaded() != 1)
		ASSERT_EQ(0, mqttq_ksft_sh("modprobe mqttq"));
}

FIXTURE(range) {
	char path[256];
};

/* The numeric parameters and the bounds kmod/main.c documents for them. */
FIXTURE_VARIANT(range) {
	const char *name;
	unsigned long long def, min, max;
};

FIXTURE_VARIANT_ADD(range, window) { .name = "window", .def = 64, .min = 1, .max = 65535 };
FIXTURE_VARIANT_ADD(range, retry_ms) { .name = "retry_ms", .def = 0, .min = 0, .max = 600000 };
FIXTURE_VARIANT_ADD(range, keepalive_s) { .name = "keepalive_s", .def = 0, .min = 0, .max = 65535 };
FIXTURE_VARIANT_ADD(range, linger_s) { .name = "linger_s", .def = 30, .min = 0, .max = 3600 };
FIXTURE_VARIANT_ADD(range, max_bytes) {
	.name = "max_bytes", .def = 4ULL << 20, .min = 4096, .max = 1ULL << 30
};

FIXTURE_SETUP(range)
{
	ensure_loaded(_metadata);
	param_path(self->path, sizeof(self->path), variant->name);
}

FIXTURE_TEARDOWN(range)
{
}

static unsigned long long read_ull(struct __test_metadata *_metadata, const char *path)
{
	long long v = -1;

	EXPECT_EQ(0, mqttq_ksft_read_ll(path, &v)) TH_LOG("%s unreadable", path);
	return v;
}

TEST_F(range, default_and_mode)
{
	struct stat st;

	reload(_metadata);
	ASSERT_EQ(0, stat(self->path, &st));
	EXPECT_EQ(0644, st.st_mode & 07777);
	EXPECT_EQ(variant->def, read_ull(_metadata, self->path));
}

TEST_F(range, valid_writes_take_effect)
{
	unsigned long long vals[] = { variant->min, variant->max, (variant->min + variant->max) / 2,
				      variant->def };
	char buf[64];
	unsigned int i;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		snprintf(buf, sizeof(buf), "%llu\n", vals[i]);
		ASSERT_EQ(0, mqttq_ksft_write_str(self->path, buf)) TH_LOG("write %llu", vals[i]);
		EXPECT_EQ(vals[i], read_ull(_metadata, self->path));
	}
	/* Without a newline, as `echo -n` writes it, and in hex, as kstrtouint allows. */
	snprintf(buf, sizeof(buf), "%llu", variant->max);
	ASSERT_EQ(0, mqttq_ksft_write_str(self->path, buf));
	EXPECT_EQ(variant->max, read_ull(_metadata, self->path));
	snprintf(buf, sizeof(buf), "0x%llx\n", variant->min);
	ASSERT_EQ(0, mqttq_ksft_write_str(self->path, buf));
	EXPECT_EQ(variant->min, read_ull(_metadata, self->path));
}

TEST_F(range, out_of_range_refused)
{
	/* A value that is none of the bounds, so "unchanged" cannot pass by accident. */
	unsigned long long keep = variant->min + 1;
	char buf[64];

	snprintf(buf, sizeof(buf), "%llu", keep);
	ASSERT_EQ(0, mqttq_ksft_write_str(self->path, buf));
	if (variant->min > 0) {
		snprintf(buf, sizeof(buf), "%llu\n", variant->min - 1);
		EXPECT_EQ(-EINVAL, mqttq_ksft_write_str(self->path, buf)) TH_LOG("took %s", buf);
		EXPECT_EQ(keep, read_ull(_metadata, self->path));
	}
	snprintf(buf, sizeof(buf), "%llu\n", variant->max + 1);
	EXPECT_EQ(-EINVAL, mqttq_ksft_write_str(self->path, buf)) TH_LOG("took %s", buf);
	EXPECT_EQ(keep, read_ull(_metadata, self->path));
	/* Past 32 bits: must not wrap into the valid range. */
	snprintf(buf, sizeof(buf), "%llu\n", (1ULL << 32) + variant->min + 1);
	EXPECT_EQ(-EINVAL, mqttq_ksft_write_str(self->path, buf)) TH_LOG("took %s", buf);
	EXPECT_EQ(keep, read_ull(_metadata, self->path));
}

TEST_F(range, garbage_refused)
{
	static const char *const junk[] = {
		"abc", "\n", "-1", "12abc", " 5", "5 5", "1.5", "0x", "+", "99999999999999999999999",
	};
	unsigned long long keep = variant->min + 1;
	char buf[64];
	unsigned int i;

	snprintf(buf, sizeof(buf), "%llu", keep);
	ASSERT_EQ(0, mqttq_ksft_write_str(self->path, buf));
	for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		EXPECT_EQ(-EINVAL, mqttq_ksft_write_str(self->path, junk[i]))
			TH_LOG("%s took '%s'", variant->name, junk[i]);
		EXPECT_EQ(keep, read_ull(_metadata, self->path));
	}
}

FIXTURE(choice) {
	char path[256];
};

/* The parameters that take a name or its index. */
FIXTURE_VARIANT(choice) {
	const char *name;
	const char *names[2];
};

FIXTURE_VARIANT_ADD(choice, ack_policy) { .name = "ack_policy", .names = { "receipt", "delivery" } };
FIXTURE_VARIANT_ADD(choice, completion) {
	.name = "completion", .names = { "per-message", "coalesced" }
};

FIXTURE_SETUP(choice)
{
	ensure_loaded(_metadata);
	param_path(self->path, sizeof(self->path), variant->name);
}

FIXTURE_TEARDOWN(choice)
{
}

static void expect_choice(struct __test_metadata *_metadata, const char *name, const char *want)
{
	char buf[64], line[64];

	snprintf(line, sizeof(line), "%s\n", want);
	ASSERT_LT(0, read_param(name, buf, sizeof(buf)));
	EXPECT_STREQ(line, buf);
}

TEST_F(choice, default_and_mode)
{
	struct stat st;

	reload(_metadata);
	ASSERT_EQ(0, stat(self->path, &st));
	EXPECT_EQ(0644, st.st_mode & 07777);
	expect_choice(_metadata, variant->name, variant->names[0]);
}

TEST_F(choice, names_and_indices)
{
	char buf[80];

	ASSERT_EQ(0, write_param(variant->name, variant->names[1]));
	expect_choice(_metadata, variant->name, variant->names[1]);
	snprintf(buf, sizeof(buf), "%s\n", variant->names[0]);
	ASSERT_EQ(0, write_param(variant->name, buf));
	expect_choice(_metadata, variant->name, variant->names[0]);
	ASSERT_EQ(0, write_param(variant->name, "1\n"));
	expect_choice(_metadata, variant->name, variant->names[1]);
	ASSERT_EQ(0, write_param(variant->name, "0"));
	expect_choice(_metadata, variant->name, variant->names[0]);
}

TEST_F(choice, garbage_refused)
{
	static const char *const junk[] = {
		"2", "-1", "\n", "x", "receipts", "deliver", "per_message", "COALESCED", "1x", "4294967296",
	};
	unsigned int i;

	ASSERT_EQ(0, write_param(variant->name, variant->names[1]));
	for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		EXPECT_EQ(-EINVAL, write_param(variant->name, junk[i]))
			TH_LOG("%s took '%s'", variant->name, junk[i]);
		expect_choice(_metadata, variant->name, variant->names[1]);
	}
}

/* A file under parameters/ that no variant above covers is a parameter without a test. */
TEST(no_untested_parameter)
{
	static const char *const known[] = {
		"window", "retry_ms", "keepalive_s", "linger_s", "max_bytes", "ack_policy", "completion",
	};
	struct dirent *de;
	unsigned int i, n = 0;
	DIR *d;

	ensure_loaded(_metadata);
	d = opendir(MQTTQ_PARAMS);
	ASSERT_NE(NULL, d);
	while ((de = readdir(d))) {
		int found = 0;

		if (de->d_name[0] == '.')
			continue;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			found |= !strcmp(known[i], de->d_name);
		EXPECT_TRUE(found) TH_LOG("parameter %s has no test", de->d_name);
		n++;
	}
	closedir(d);
	EXPECT_EQ(sizeof(known) / sizeof(known[0]), n);
}

TEST_HARNESS_MAIN
