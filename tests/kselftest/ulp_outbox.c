// SPDX-License-Identifier: GPL-2.0 OR MIT
/* kselftest: MQTTQ_SF_OUTBOX sessions: caller packet identifiers, PUBREL held until MQTTQ_RELEASE, restored flows. */

#include "kselftest_harness.h"
#include "ulp_util.h"

FIXTURE(obx) {
	int cli, brk;
	struct mqttq_session s;
	uint8_t pkt[1024];
	uint8_t rec[1024];
};

FIXTURE_VARIANT(obx) {
	int version;
};

FIXTURE_VARIANT_ADD(obx, v311) {
	.version = MQTTQ_V311,
};

FIXTURE_VARIANT_ADD(obx, v5) {
	.version = MQTTQ_V5,
};

FIXTURE_SETUP(obx)
{
	ASSERT_EQ(0, ulp_pair(&self->cli, &self->brk));
	ASSERT_EQ(0, ulp_attach(self->cli));
	ulp_sess_init(&self->s, variant->version);
	self->s.flags = MQTTQ_SF_OUTBOX;
}

FIXTURE_TEARDOWN(obx)
{
	close(self->cli);
	close(self->brk);
	EXPECT_EQ(0, ulp_stat_wait("sessions", 0, ULP_WAIT_MS));
	EXPECT_EQ(0, ulp_stat_wait("bytes_held", 0, ULP_WAIT_MS));
	EXPECT_EQ(0, ulp_stat_wait("inflight", 0, ULP_WAIT_MS));
}

static const struct mqttq_rec *rec_of(const uint8_t *b)
{
	return (const struct mqttq_rec *)b;
}

static uint16_t pub_pid(const uint8_t *p)
{
	uint16_t tl = p[2] << 8 | p[3];

	return p[4 + tl] << 8 | p[5 + tl];
}

/* One PUBLISH request with the caller's identifier and flow state: bytes accepted or -errno. */
static ssize_t obx_publish(int fd, int qos, uint64_t token, uint16_t pid, uint8_t state)
{
	struct mqttq_pub req;
	struct ulp_pubmsg p;
	ssize_t n;

	ulp_pub_build(&p, qos, token, "ob/t", "pay", 3);
	memcpy(&req, CMSG_DATA(CMSG_FIRSTHDR(&p.msg)), sizeof(req));
	req.pid = pid;
	req.state = state;
	memcpy(CMSG_DATA(CMSG_FIRSTHDR(&p.msg)), &req, sizeof(req));
	n = sendmsg(fd, &p.msg, MSG_DONTWAIT);
	return n < 0 ? -errno : n;
}

static int obx_release(int fd, const uint16_t *pids, int n)
{
	return setsockopt(fd, SOL_MQTTQ, MQTTQ_RELEASE, pids, n * sizeof(*pids)) ? -errno : 0;
}

TEST_F(obx, caller_pid_goes_on_the_wire)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	struct mqttq_session got;
	socklen_t gl = sizeof(got);
	int n;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, getsockopt(self->cli, SOL_MQTTQ, MQTTQ_SESSION, &got, &gl));
	EXPECT_EQ(MQTTQ_SF_OUTBOX, got.flags);
	EXPECT_EQ(0, got.linger_s);
	ASSERT_EQ(7, obx_publish(self->cli, 1, 11, 4242, MQTTQ_PUB_NEW));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_LT(0, n);
	EXPECT_EQ(0x32, self->pkt[0]);
	EXPECT_EQ(4242, pub_pid(self->pkt));
	ASSERT_EQ(0, ulp_send_ack(self->brk, 4, 4242));
	ASSERT_EQ((int)sizeof(*r), ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_PUB_DONE, r->type);
	EXPECT_EQ(11, r->token);
}

TEST_F(obx, caller_pid_in_use_or_missing_rejected)
{
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(7, obx_publish(self->cli, 1, 1, 7, MQTTQ_PUB_NEW));
	/* the same identifier, and one sharing its slot (pid % window 16) */
	EXPECT_EQ(-EBUSY, obx_publish(self->cli, 2, 2, 7, MQTTQ_PUB_NEW));
	EXPECT_EQ(-EBUSY, obx_publish(self->cli, 1, 3, 7 + 16, MQTTQ_PUB_NEW));
	/* QoS 1/2 without one, QoS 0 with one, a state that does not exist */
	EXPECT_EQ(-EINVAL, obx_publish(self->cli, 1, 4, 0, MQTTQ_PUB_NEW));
	EXPECT_EQ(-EINVAL, obx_publish(self->cli, 0, 5, 8, MQTTQ_PUB_NEW));
	EXPECT_EQ(-EINVAL, obx_publish(self->cli, 2, 6, 8, MQTTQ_PUB_WAIT_COMP + 1));
	EXPECT_EQ(-EINVAL, obx_publish(self->cli, 1, 7, 8, MQTTQ_PUB_WAIT_REC));
	/* another slot is fine */
	EXPECT_EQ(7, obx_publish(self->cli, 1, 8, 8, MQTTQ_PUB_NEW));
	ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(7, pub_pid(self->pkt));
	ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(8, pub_pid(self->pkt));
	EXPECT_EQ(1, ulp_quiet(self->brk, 100));
}

TEST_F(obx, pid_needs_the_outbox_flag_and_the_flag_no_key)
{
	int c2, b2;

	self->s.key = 99;
	EXPECT_EQ(-EINVAL, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, ulp_pair(&c2, &b2));
	ASSERT_EQ(0, ulp_attach(c2));
	self->s.key = 0;
	self->s.flags = 0;
	ASSERT_EQ(0, ulp_session(c2, &self->s));
	EXPECT_EQ(-EINVAL, obx_publish(c2, 1, 1, 5, MQTTQ_PUB_NEW));
	EXPECT_EQ(-EINVAL, obx_release(c2, (uint16_t[]){ 5 }, 1));
	close(c2);
	close(b2);
}

TEST_F(obx, pubrel_held_until_release)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	uint16_t pid = 300;
	int n;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(7, obx_publish(self->cli, 2, 21, pid, MQTTQ_PUB_NEW));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_LT(0, n);
	EXPECT_EQ(0x34, self->pkt[0]);
	EXPECT_EQ(pid, pub_pid(self->pkt));
	EXPECT_EQ(-ENOENT, obx_release(self->cli, &pid, 1)); /* no PUBREC yet */
	ASSERT_EQ(0, ulp_send_ack(self->brk, 5, pid));
	n = ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS);
	ASSERT_EQ((int)sizeof(*r), n);
	EXPECT_EQ(MQTTQ_REC_PUBREC, r->type);
	EXPECT_EQ(21, r->token);
	EXPECT_EQ(pid, r->pid);
	/* the kernel does not answer PUBREC by itself, not even a resent one */
	ASSERT_EQ(0, ulp_send_ack(self->brk, 5, pid));
	EXPECT_EQ(1, ulp_quiet(self->brk, 300));
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 50));
	ASSERT_EQ(0, obx_release(self->cli, &pid, 1));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_EQ(4, n);
	EXPECT_EQ(0x62, self->pkt[0]);
	EXPECT_EQ(pid, self->pkt[2] << 8 | self->pkt[3]);
	EXPECT_EQ(-ENOENT, obx_release(self->cli, &pid, 1)); /* released once */
	ASSERT_EQ(0, ulp_send_ack(self->brk, 7, pid));
	n = ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS);
	ASSERT_EQ((int)sizeof(*r), n);
	EXPECT_EQ(MQTTQ_REC_PUB_DONE, r->type);
	EXPECT_EQ(21, r->token);
}

TEST_F(obx, restored_wait_comp_sends_pubrel_not_publish)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	int n;

	self->s.session_present = 1;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(7, obx_publish(self->cli, 2, 31, 33, MQTTQ_PUB_WAIT_COMP));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_EQ(4, n);
	EXPECT_EQ(0x62, self->pkt[0]);
	EXPECT_EQ(33, self->pkt[2] << 8 | self->pkt[3]);
	EXPECT_EQ(1, ulp_quiet(self->brk, 200)); /* and no PUBLISH */
	/* the identifier is in flight until PUBCOMP */
	EXPECT_EQ(-EBUSY, obx_publish(self->cli, 1, 32, 33, MQTTQ_PUB_NEW));
	ASSERT_EQ(0, ulp_send_ack(self->brk, 7, 33));
	n = ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS);
	ASSERT_EQ((int)sizeof(*r), n);
	EXPECT_EQ(MQTTQ_REC_PUB_DONE, r->type);
	EXPECT_EQ(31, r->token);
}

TEST_F(obx, restored_wait_rec_and_wait_ack_resend_publish_with_dup)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	int n;

	self->s.session_present = 1;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(7, obx_publish(self->cli, 2, 41, 41, MQTTQ_PUB_WAIT_REC));
	ASSERT_EQ(7, obx_publish(self->cli, 1, 42, 42, MQTTQ_PUB_WAIT_ACK));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_LT(0, n);
	EXPECT_EQ(0x3c, self->pkt[0]); /* PUBLISH, DUP, QoS 2 */
	EXPECT_EQ(41, pub_pid(self->pkt));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_LT(0, n);
	EXPECT_EQ(0x3a, self->pkt[0]); /* PUBLISH, DUP, QoS 1 */
	EXPECT_EQ(42, pub_pid(self->pkt));
	ASSERT_EQ(0, ulp_send_ack(self->brk, 4, 42));
	ASSERT_EQ((int)sizeof(*r), ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_PUB_DONE, r->type);
	EXPECT_EQ(42, r->token);
	ASSERT_EQ(0, ulp_send_ack(self->brk, 5, 41));
	ASSERT_EQ((int)sizeof(*r), ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_PUBREC, r->type);
	EXPECT_EQ(41, r->pid);
}

TEST_F(obx, subscribe_takes_the_top_identifiers)
{
	uint8_t buf[64];
	struct mqttq_sub_req sr = { .token = 5, .count = 1 };
	struct mqttq_filter f = { .options = 1, .len = 3 };
	union {
		char b[CMSG_SPACE(sizeof(sr))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { buf, sizeof(f) + 3 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			     .msg_controllen = sizeof(u.b) };
	struct cmsghdr *c;
	int n;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	memcpy(buf, &f, sizeof(f));
	memcpy(buf + sizeof(f), "a/b", 3);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_MQTTQ;
	c->cmsg_type = MQTTQ_CMSG_SUBSCRIBE;
	c->cmsg_len = CMSG_LEN(sizeof(sr));
	memcpy(CMSG_DATA(c), &sr, sizeof(sr));
	ASSERT_EQ((ssize_t)iov.iov_len, sendmsg(self->cli, &mh, 0));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_LT(0, n);
	EXPECT_EQ(0x82, self->pkt[0]);
	EXPECT_LE(65532, self->pkt[2] << 8 | self->pkt[3]);
}

TEST_HARNESS_MAIN
