// SPDX-License-Identifier: GPL-2.0
/* kselftest: the real eBPF topic filter (libmqttq/bpf, mqf_*) run by the module on inbound PUBLISHes. */

#include "kselftest_harness.h"
#include "ulp_util.h"
#include "mqf.h"

/* Over MQF_TOPIC_MAX: the program cannot examine it and must answer undecided. */
#define TF_LONG_LEN (MQF_TOPIC_MAX + 40)

struct tf_case {
	const char *topic; /* NULL: a TF_LONG_LEN topic starting with "plant/" */
	int qos;
	uint32_t want; /* filter id the record must carry, 0: dropped */
};

FIXTURE(tf) {
	int cli, brk;
	struct mqf_mgr *m;
	struct mqttq_session s;
	uint16_t pid;
	long long drops0;
	char long_topic[TF_LONG_LEN + 1];
	uint8_t pkt[1024];
	uint8_t rec[1024];
};

FIXTURE_VARIANT(tf) {
	int ack_policy;
};

FIXTURE_VARIANT_ADD(tf, on_receipt) {
	.ack_policy = MQTTQ_ACK_ON_RECEIPT,
};

FIXTURE_VARIANT_ADD(tf, on_delivery) {
	.ack_policy = MQTTQ_ACK_ON_DELIVERY,
};

static int tf_add(struct mqf_mgr *m, const char *f, uint32_t id)
{
	return mqf_add(m, f, strlen(f), id);
}

FIXTURE_SETUP(tf)
{
	int err, fd;

	self->cli = -1;
	self->brk = -1;
	self->pid = 0;
	memset(self->long_topic, 'a', TF_LONG_LEN);
	memcpy(self->long_topic, "plant/", 6);
	self->long_topic[TF_LONG_LEN] = 0;
	err = mqf_open(&self->m, 0);
	if (err == -EPERM)
		SKIP(return, "no CAP_BPF to load the topic filter");
	ASSERT_EQ(0, err) TH_LOG("mqf_open: %s", strerror(-err));
	ASSERT_EQ(0, tf_add(self->m, "plant/+/temp", 1));
	ASSERT_EQ(0, tf_add(self->m, "plant/#", 2));
	ASSERT_EQ(0, tf_add(self->m, "$SYS/#", 3));
	ASSERT_EQ(0, mqf_commit(self->m));
	ASSERT_EQ(0, ulp_pair(&self->cli, &self->brk));
	ASSERT_EQ(0, ulp_attach(self->cli));
	ulp_sess_init(&self->s, MQTTQ_V311);
	self->s.ack_policy = variant->ack_policy;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	fd = mqf_prog_fd(self->m);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, setsockopt(self->cli, SOL_MQTTQ, MQTTQ_FILTER_FD, &fd, sizeof(fd)))
		TH_LOG("MQTTQ_FILTER_FD: %s", strerror(errno));
	self->drops0 = ulp_stat("filter_drops");
	ASSERT_LE(0, self->drops0);
}

FIXTURE_TEARDOWN(tf)
{
	if (self->cli >= 0)
		close(self->cli);
	if (self->brk >= 0)
		close(self->brk);
	if (self->m)
		mqf_close(self->m);
	EXPECT_EQ(0, ulp_stat_wait("sessions", 0, ULP_WAIT_MS));
	EXPECT_EQ(0, ulp_stat_wait("bytes_held", 0, ULP_WAIT_MS));
}

/*
 * The broker sends case @i (payload "m<i>") and checks the wire flow a
 * conforming client owes it whether or not the message is filtered out:
 * PUBACK for QoS 1, PUBREC, then PUBCOMP after its PUBREL for QoS 2.
 */
static void tf_send(struct __test_metadata *_metadata, FIXTURE_DATA(tf) *self,
		    const struct tf_case *c, int i)
{
	const char *topic = c->topic ? c->topic : self->long_topic;
	uint16_t pid = 0;
	char payload[16];

	snprintf(payload, sizeof(payload), "m%d", i);
	if (c->qos) {
		pid = ++self->pid;
		if (!pid)
			pid = ++self->pid;
	}
	ASSERT_EQ(0, ulp_brk_publish(self->brk, 0, c->qos, 0, pid, topic, payload));
	if (!c->qos)
		return;
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS))
		TH_LOG("case %d (%s, QoS %d): no ack", i, topic, c->qos);
	EXPECT_EQ(c->qos == 1 ? 0x40 : 0x50, self->pkt[0]) TH_LOG("case %d", i);
	EXPECT_EQ(pid, self->pkt[2] << 8 | self->pkt[3]) TH_LOG("case %d", i);
	if (c->qos != 2)
		return;
	ASSERT_EQ(0, ulp_send_ack(self->brk, 6, pid));
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS))
		TH_LOG("case %d (%s): no PUBCOMP", i, topic);
	EXPECT_EQ(0x70, self->pkt[0]) TH_LOG("case %d", i);
	EXPECT_EQ(pid, self->pkt[2] << 8 | self->pkt[3]) TH_LOG("case %d", i);
}

/*
 * Reads the records that must arrive, in order: exactly the cases with a
 * non-zero id, each with that id; then nothing more. With ack-on-delivery the
 * acks of delivered QoS 1/2 messages go out when the record is read, so the
 * broker's checks come after the reads there.
 */
static void tf_expect(struct __test_metadata *_metadata, FIXTURE_DATA(tf) *self,
		      const struct tf_case *cs, int n, int base)
{
	const struct mqttq_rec *r = (const struct mqttq_rec *)self->rec;
	int i, len;

	for (i = 0; i < n; i++) {
		const char *topic = cs[i].topic ? cs[i].topic : self->long_topic;
		size_t tl = strlen(topic);
		char payload[16];

		if (!cs[i].want)
			continue;
		snprintf(payload, sizeof(payload), "m%d", base + i);
		len = ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS);
		ASSERT_EQ((int)(sizeof(*r) + tl + strlen(payload)), len)
			TH_LOG("case %d (%s): record length %d", base + i, topic, len);
		EXPECT_EQ(MQTTQ_REC_MESSAGE, r->type);
		ASSERT_EQ(tl, r->topic_len);
		EXPECT_EQ(0, memcmp(r + 1, topic, tl)) TH_LOG("case %d: wrong message", base + i);
		EXPECT_EQ(0, memcmp((const char *)(r + 1) + tl, payload, strlen(payload)))
			TH_LOG("case %d: wrong payload", base + i);
		EXPECT_EQ(cs[i].qos, r->qos);
		EXPECT_EQ(cs[i].want, r->filter_id)
			TH_LOG("case %d (%s): filter_id %u, want %u", base + i, topic,
			       r->filter_id, cs[i].want);
	}
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 200))
		TH_LOG("a record that should have been dropped arrived");
}

static int tf_drops(const struct tf_case *cs, int n)
{
	int i, d = 0;

	for (i = 0; i < n; i++)
		d += !cs[i].want;
	return d;
}

/* Sends @cs, each flow checked; in ack-on-delivery mode reads as it goes so acks can leave. */
static void tf_run(struct __test_metadata *_metadata, FIXTURE_DATA(tf) *self,
		   const struct tf_case *cs, int n, int base)
{
	int i;

	if (self->s.ack_policy == MQTTQ_ACK_ON_RECEIPT) {
		for (i = 0; i < n; i++)
			tf_send(_metadata, self, &cs[i], base + i);
		tf_expect(_metadata, self, cs, n, base);
		return;
	}
	for (i = 0; i < n; i++) {
		/* the ack of a delivered message waits for its record to be read */
		if (cs[i].want && cs[i].qos) {
			const char *topic = cs[i].topic ? cs[i].topic : self->long_topic;
			char payload[16];
			uint16_t pid = ++self->pid;

			snprintf(payload, sizeof(payload), "m%d", base + i);
			ASSERT_EQ(0, ulp_brk_publish(self->brk, 0, cs[i].qos, 0, pid, topic,
						     payload));
			tf_expect(_metadata, self, &cs[i], 1, base + i);
			ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt),
						 ULP_WAIT_MS));
			EXPECT_EQ(cs[i].qos == 1 ? 0x40 : 0x50, self->pkt[0]);
			EXPECT_EQ(pid, self->pkt[2] << 8 | self->pkt[3]);
			if (cs[i].qos == 2) {
				ASSERT_EQ(0, ulp_send_ack(self->brk, 6, pid));
				ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt),
							 ULP_WAIT_MS));
				EXPECT_EQ(0x70, self->pkt[0]);
			}
			continue;
		}
		tf_send(_metadata, self, &cs[i], base + i);
		if (cs[i].want)
			tf_expect(_metadata, self, &cs[i], 1, base + i);
	}
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 200));
}

static const struct tf_case tf_mix[] = {
	{ "plant/a/temp", 0, 1 },	/* both 1 and 2 match: the lowest id */
	{ "plant/a/temp", 1, 1 },
	{ "plant/b/temp", 2, 1 },
	{ "plant//temp", 1, 1 },	/* '+' matches an empty level */
	{ "plant/a/hum", 0, 2 },
	{ "plant", 2, 2 },		/* "plant/#" matches its parent */
	{ "plant/", 1, 2 },
	{ "plant/a/temp/x", 0, 2 },
	{ "$SYS/x", 1, 3 },
	{ "$SYS", 0, 3 },
	{ "other/a", 0, 0 },
	{ "other/a", 1, 0 },
	{ "other/a", 2, 0 },
	{ "/plant/a/temp", 2, 0 },	/* empty first level: not "plant" */
	{ "Plant/a/temp", 1, 0 },	/* case-sensitive */
	{ "plantx/a/temp", 0, 0 },
	{ "$SYSx/a", 2, 0 },
	{ "x/plant/temp", 1, 0 },
	{ NULL, 1, MQTTQ_FILTER_UNDECIDED }, /* too long for the program: userspace decides */
	{ "plant/c/temp", 2, 1 },
	{ "a//", 0, 0 },
	{ "//", 1, 0 },
};

#define TF_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

TEST_F(tf, real_filter_drops_non_matching_tags_lowest_id)
{
	struct mqttq_sess_stats st;
	int n = TF_N(tf_mix), drops = tf_drops(tf_mix, n);

	tf_run(_metadata, self, tf_mix, n, 0);
	/* a filtered-out message never produced anything else on the wire */
	EXPECT_EQ(1, ulp_quiet(self->brk, 100));
	EXPECT_EQ(self->drops0 + drops,
		  ulp_stat_wait("filter_drops", self->drops0 + drops, ULP_WAIT_MS));
	ASSERT_EQ(0, ulp_stats(self->cli, &st));
	EXPECT_EQ(drops, st.filter_drops);
	EXPECT_EQ(n - drops, st.delivered);
}

/* The module holds the program, not the set: commits apply without setting the fd again. */
TEST_F(tf, runtime_set_change_applies_without_new_fd)
{
	static const struct tf_case before[] = {
		{ "other/a", 1, 0 },
		{ "plant/a/temp", 0, 1 },
	};
	static const struct tf_case after[] = {
		{ "other/a", 1, 4 },	/* new filter 4 */
		{ "other/b/c", 2, 4 },
		{ "plant/a/temp", 1, 2 }, /* 1 removed: next lowest */
		{ "plant/a/temp", 2, 2 },
		{ "$SYS/x", 0, 0 },	/* 3 removed */
		{ "$SYS/x", 2, 0 },
		{ "zzz", 1, 0 },
	};
	static const struct tf_case last[] = {
		{ "plant/a/temp", 1, 0 }, /* only 4 left */
		{ "other/x", 0, 4 },
	};
	struct mqttq_sess_stats st;
	int drops = tf_drops(before, TF_N(before)) + tf_drops(after, TF_N(after)) +
		    tf_drops(last, TF_N(last));
	struct mqf_stats ms;

	tf_run(_metadata, self, before, TF_N(before), 0);
	ASSERT_EQ(0, tf_add(self->m, "other/#", 4));
	ASSERT_EQ(0, mqf_remove(self->m, 1));
	ASSERT_EQ(0, mqf_remove(self->m, 3));
	ASSERT_EQ(0, mqf_commit(self->m));
	mqf_get_stats(self->m, &ms);
	EXPECT_EQ(2, ms.filters);
	tf_run(_metadata, self, after, TF_N(after), 100);
	ASSERT_EQ(0, mqf_remove(self->m, 2));
	ASSERT_EQ(0, mqf_commit(self->m));
	tf_run(_metadata, self, last, TF_N(last), 200);
	EXPECT_EQ(1, ulp_quiet(self->brk, 100));
	EXPECT_EQ(self->drops0 + drops,
		  ulp_stat_wait("filter_drops", self->drops0 + drops, ULP_WAIT_MS));
	ASSERT_EQ(0, ulp_stats(self->cli, &st));
	EXPECT_EQ(drops, st.filter_drops);
}

TEST_HARNESS_MAIN
