// SPDX-License-Identifier: GPL-2.0
/* kselftest: mqttq.ko loads, shows its counters, unloads and reloads cleanly, and rejects bad load-time options. */

#include <dirent.h>

#include "kselftest_harness.h"
#include "mqttq_ksft.h"

/* The fields of struct mqttq_stats (kmod/mqttq_kmod.h), one sysfs file each. */
static const char *const stat_names[] = {
	"sessions",	"inflight",	"acks_in_kernel",  "pubrel_sent",	"retransmits",
	"keepalive_timeouts", "filter_drops", "protocol_errors", "bytes_held",
};

#define N_STATS (sizeof(stat_names) / sizeof(stat_names[0]))

static int stat_index(const char *name)
{
	unsigned int i;

	for (i = 0; i < N_STATS; i++)
		if (!strcmp(stat_names[i], name))
			return i;
	return -1;
}

static int path_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Every test starts and ends with the module loaded with its defaults, as the VM script left it. */
FIXTURE(mod) {
	int dummy;
};

FIXTURE_SETUP(mod)
{
	if (mqttq_ksft_loaded() != 1)
		ASSERT_EQ(0, mqttq_ksft_sh("modprobe mqttq"));
	ASSERT_EQ(1, mqttq_ksft_loaded());
}

FIXTURE_TEARDOWN(mod)
{
	if (mqttq_ksft_loaded() != 1)
		EXPECT_EQ(0, mqttq_ksft_sh("modprobe mqttq"));
}

TEST_F(mod, listed_in_proc_modules)
{
	char buf[64];

	ASSERT_EQ(1, mqttq_ksft_loaded());
	ASSERT_LT(0, mqttq_ksft_read("/sys/module/mqttq/initstate", buf, sizeof(buf)));
	ASSERT_STREQ("live\n", buf);
}

TEST_F(mod, counters_readable_and_idle)
{
	int seen[N_STATS] = { 0 };
	char path[256];
	struct dirent *de;
	unsigned int i;
	long long v;
	int idx;
	DIR *d;

	d = opendir(MQTTQ_STATS);
	ASSERT_NE(NULL, d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		/* Anything here that the header does not list is a counter nobody documents. */
		idx = stat_index(de->d_name);
		EXPECT_LE(0, idx) TH_LOG("unexpected /sys/kernel/mqttq/%s", de->d_name);
		if (idx >= 0)
			seen[idx] = 1;
	}
	closedir(d);
	for (i = 0; i < N_STATS; i++) {
		EXPECT_EQ(1, seen[i]) TH_LOG("/sys/kernel/mqttq/%s missing", stat_names[i]);
		snprintf(path, sizeof(path), MQTTQ_STATS "%s", stat_names[i]);
		ASSERT_EQ(0, mqttq_ksft_read_ll(path, &v)) TH_LOG("%s unreadable", path);
		/* Nothing uses the ULP while this runs, so nothing may be held. */
		if (!strcmp(stat_names[i], "sessions") || !strcmp(stat_names[i], "inflight") ||
		    !strcmp(stat_names[i], "bytes_held"))
			EXPECT_EQ(0, v) TH_LOG("%s = %lld with no socket open", path, v);
		EXPECT_LE(0, v) TH_LOG("%s = %lld", path, v);
	}
}

TEST_F(mod, counters_read_only)
{
	char path[256];
	struct stat st;
	unsigned int i;

	for (i = 0; i < N_STATS; i++) {
		snprintf(path, sizeof(path), MQTTQ_STATS "%s", stat_names[i]);
		ASSERT_EQ(0, stat(path, &st));
		EXPECT_EQ(0444, st.st_mode & 07777) TH_LOG("%s mode %o", path, st.st_mode & 07777);
		/* Even root may not write a counter: the attribute has no store. */
		EXPECT_EQ(-EACCES, mqttq_ksft_write_str(path, "0\n")) TH_LOG("%s writable", path);
	}
}

TEST_F(mod, idle_refcount_zero)
{
	long long v;

	ASSERT_EQ(0, mqttq_ksft_read_ll("/sys/module/mqttq/refcnt", &v));
	EXPECT_EQ(0, v);
}

/*
 * Module loads and unloads take about a second each under TCG and many more when the
 * host is busy, so these tests get more than the harness's default 30 s.
 */
TEST_F_TIMEOUT(mod, unload_and_reload, 240)
{
	long long v;
	char buf[64];
	int i;

	/* Bounded: a few cycles catch state that outlives the module. */
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, mqttq_ksft_write_str(MQTTQ_PARAMS "window", "100"));
		ASSERT_EQ(0, mqttq_ksft_sh("modprobe -r mqttq"));
		ASSERT_EQ(0, mqttq_ksft_loaded());
		ASSERT_FALSE(path_exists(MQTTQ_STATS));
		ASSERT_FALSE(path_exists("/sys/module/mqttq"));
		ASSERT_EQ(0, mqttq_ksft_sh("modprobe mqttq"));
		ASSERT_EQ(1, mqttq_ksft_loaded());
		ASSERT_EQ(0, mqttq_ksft_read_ll(MQTTQ_STATS "sessions", &v));
		ASSERT_EQ(0, v);
		/* A reload starts from the defaults again, not from the last write. */
		ASSERT_LT(0, mqttq_ksft_read(MQTTQ_PARAMS "window", buf, sizeof(buf)));
		ASSERT_STREQ("64\n", buf);
	}
}

TEST_F_TIMEOUT(mod, load_time_options, 120)
{
	char buf[64];

	ASSERT_EQ(0, mqttq_ksft_sh("modprobe -r mqttq"));
	ASSERT_EQ(0, mqttq_ksft_sh("modprobe mqttq window=7 linger_s=0 ack_policy=delivery "
				   "completion=1"));
	ASSERT_LT(0, mqttq_ksft_read(MQTTQ_PARAMS "window", buf, sizeof(buf)));
	EXPECT_STREQ("7\n", buf);
	ASSERT_LT(0, mqttq_ksft_read(MQTTQ_PARAMS "linger_s", buf, sizeof(buf)));
	EXPECT_STREQ("0\n", buf);
	ASSERT_LT(0, mqttq_ksft_read(MQTTQ_PARAMS "ack_policy", buf, sizeof(buf)));
	EXPECT_STREQ("delivery\n", buf);
	ASSERT_LT(0, mqttq_ksft_read(MQTTQ_PARAMS "completion", buf, sizeof(buf)));
	EXPECT_STREQ("coalesced\n", buf);
	ASSERT_EQ(0, mqttq_ksft_sh("modprobe -r mqttq && modprobe mqttq"));
}

TEST_F_TIMEOUT(mod, bad_load_time_option_refused, 240)
{
	static const char *const bad[] = {
		"window=0", "window=65536", "max_bytes=4095", "linger_s=3601",
		"retry_ms=600001", "ack_policy=sometimes", "completion=2", "keepalive_s=-1",
	};
	char cmd[128];
	unsigned int i;
	int rc;

	ASSERT_EQ(0, mqttq_ksft_sh("modprobe -r mqttq"));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(cmd, sizeof(cmd), "modprobe mqttq %s 2>/dev/null", bad[i]);
		rc = mqttq_ksft_sh(cmd);
		EXPECT_NE(0, rc) TH_LOG("modprobe mqttq %s loaded", bad[i]);
		if (rc == 0) {
			EXPECT_EQ(0, mqttq_ksft_sh("modprobe -r mqttq"));
			continue;
		}
		EXPECT_EQ(0, mqttq_ksft_loaded()) TH_LOG("mqttq loaded with %s", bad[i]);
		/* A refused load must leave nothing behind that blocks the next one. */
		EXPECT_FALSE(path_exists(MQTTQ_STATS));
	}
	ASSERT_EQ(0, mqttq_ksft_sh("modprobe mqttq"));
	ASSERT_EQ(1, mqttq_ksft_loaded());
}

TEST_HARNESS_MAIN
