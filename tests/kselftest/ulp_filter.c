// SPDX-License-Identifier: GPL-2.0
/* kselftest: the MQTTQ_FILTER_FD hook acknowledges, drops and counts non-matching messages. */

#include <linux/bpf.h>
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "ulp_util.h"

/*
 * A socket filter over the PUBLISH packet at offset 0: topic's first byte
 * (offset 4 for a remaining length under 128) 'x' -> 0 (drop), else 5.
 */
static int load_filter(void)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_6, .src_reg = BPF_REG_1 },
		{ .code = BPF_LD | BPF_B | BPF_ABS, .imm = 4 },
		{ .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = BPF_REG_0, .off = 2, .imm = 'x' },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 5 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = (unsigned long)insns;
	a.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	a.license = (unsigned long)"GPL";
	return syscall(__NR_bpf, BPF_PROG_LOAD, &a, sizeof(a));
}

FIXTURE(filter) {
	int cli, brk, prog;
	struct mqttq_session s;
	uint8_t pkt[512];
	uint8_t rec[512];
};

FIXTURE_VARIANT(filter) {
	int ack_policy;
};

FIXTURE_VARIANT_ADD(filter, on_receipt) {
	.ack_policy = MQTTQ_ACK_ON_RECEIPT,
};

FIXTURE_VARIANT_ADD(filter, on_delivery) {
	.ack_policy = MQTTQ_ACK_ON_DELIVERY,
};

FIXTURE_SETUP(filter)
{
	self->prog = load_filter();
	ASSERT_LE(0, self->prog) TH_LOG("BPF_PROG_LOAD: %s", strerror(errno));
	ASSERT_EQ(0, ulp_pair(&self->cli, &self->brk));
	ASSERT_EQ(0, ulp_attach(self->cli));
	ulp_sess_init(&self->s, MQTTQ_V311);
	self->s.ack_policy = variant->ack_policy;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
}

FIXTURE_TEARDOWN(filter)
{
	close(self->cli);
	close(self->brk);
	close(self->prog);
	EXPECT_EQ(0, ulp_stat_wait("sessions", 0, ULP_WAIT_MS));
	EXPECT_EQ(0, ulp_stat_wait("bytes_held", 0, ULP_WAIT_MS));
}

TEST_F(filter, wrong_fd_refused)
{
	int fd = self->cli;

	EXPECT_EQ(-1, setsockopt(self->cli, SOL_MQTTQ, MQTTQ_FILTER_FD, &fd, sizeof(fd)));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(filter, drops_non_matching_after_ack_tags_matching)
{
	const struct mqttq_rec *r = (const struct mqttq_rec *)self->rec;
	struct mqttq_sess_stats st;
	long long drops0 = ulp_stat("filter_drops");
	int off = -1;

	ASSERT_EQ(0, setsockopt(self->cli, SOL_MQTTQ, MQTTQ_FILTER_FD, &self->prog,
				sizeof(self->prog)));
	ASSERT_EQ(0, ulp_brk_publish(self->brk, 0, 1, 0, 11, "xa", "dropped"));
	/* acknowledged though nobody reads it */
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x40, self->pkt[0]);
	EXPECT_EQ(11, self->pkt[3]);
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 100));
	ASSERT_EQ(0, ulp_brk_publish(self->brk, 0, 1, 0, 12, "ab", "kept"));
	ASSERT_EQ((int)sizeof(*r) + 6,
		  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_MESSAGE, r->type);
	EXPECT_EQ(5, r->filter_id);
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(12, self->pkt[3]);
	ASSERT_EQ(0, ulp_stats(self->cli, &st));
	EXPECT_EQ(1, st.filter_drops);
	EXPECT_EQ(drops0 + 1, ulp_stat("filter_drops"));
	/* removing the filter delivers everything again */
	ASSERT_EQ(0, setsockopt(self->cli, SOL_MQTTQ, MQTTQ_FILTER_FD, &off, sizeof(off)));
	ASSERT_EQ(0, ulp_brk_publish(self->brk, 0, 0, 0, 0, "xb", "back"));
	ASSERT_EQ((int)sizeof(*r) + 6,
		  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(0, r->filter_id);
}

TEST_HARNESS_MAIN
