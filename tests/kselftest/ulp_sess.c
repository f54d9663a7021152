// SPDX-License-Identifier: GPL-2.0
/* kselftest: mqttq ULP attach rules, keepalive, retry, resume after a cut, bad input, rmmod. */

#include "kselftest_harness.h"
#include "ulp_util.h"

#define KEY 0x5eed0001ULL

FIXTURE(sess) {
	int cli, brk;
	struct mqttq_session s;
	uint8_t pkt[1024];
	uint8_t rec[1024];
};

FIXTURE_VARIANT(sess) {
	int version;
};

FIXTURE_VARIANT_ADD(sess, v311) {
	.version = MQTTQ_V311,
};

FIXTURE_VARIANT_ADD(sess, v5) {
	.version = MQTTQ_V5,
};

FIXTURE_SETUP(sess)
{
	ASSERT_EQ(0, ulp_pair(&self->cli, &self->brk));
	ASSERT_EQ(0, ulp_attach(self->cli));
	ulp_sess_init(&self->s, variant->version);
}

FIXTURE_TEARDOWN(sess)
{
	if (self->cli >= 0)
		close(self->cli);
	if (self->brk >= 0)
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

/* The next record must be CLOSED with err; afterwards recv keeps failing with it. */
static int expect_closed(int fd, uint8_t *buf, size_t cap, int err)
{
	const struct mqttq_rec *r = rec_of(buf);
	int n = ulp_rec(fd, buf, cap, 2 * ULP_WAIT_MS);

	if (n != (int)sizeof(*r) || r->type != MQTTQ_REC_CLOSED || r->err != err)
		return -1;
	return ulp_rec(fd, buf, cap, 10) == err ? 0 : -2;
}

TEST_F(sess, idle_until_session_set)
{
	char name[16] = { 0 };
	socklen_t nl = sizeof(name);
	struct mqttq_sess_stats st;

	EXPECT_EQ(0, getsockopt(self->cli, SOL_TCP, TCP_ULP, name, &nl));
	EXPECT_STREQ("mqttq", name);
	EXPECT_EQ(-ENOTCONN, ulp_publish(self->cli, 1, 1, "t", "x", MSG_DONTWAIT));
	EXPECT_EQ(-ENOTCONN, ulp_rec(self->cli, self->rec, sizeof(self->rec), 10));
	ASSERT_EQ(0, ulp_stats(self->cli, &st));
	EXPECT_EQ(MQTTQ_ST_IDLE, st.state);
	EXPECT_EQ(0, ulp_stat("sessions"));
	/* the ULP is attached once */
	EXPECT_EQ(-EEXIST, ulp_attach(self->cli));
}

TEST_F(sess, bad_session_parameters_refused)
{
	struct mqttq_session s = self->s;

	s.version = 3;
	EXPECT_EQ(-EINVAL, ulp_session(self->cli, &s));
	s = self->s;
	s.size = sizeof(s) - 8;
	EXPECT_EQ(-EINVAL, ulp_session(self->cli, &s));
	s = self->s;
	s.ack_policy = 7;
	EXPECT_EQ(-EINVAL, ulp_session(self->cli, &s));
	s = self->s;
	s.max_bytes = 100;
	EXPECT_EQ(-EINVAL, ulp_session(self->cli, &s));
	EXPECT_EQ(0, ulp_session(self->cli, &self->s));
	EXPECT_EQ(-EISCONN, ulp_session(self->cli, &self->s));
}

TEST_F(sess, attach_needs_an_established_socket)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ASSERT_LE(0, fd);
	EXPECT_EQ(-ENOTCONN, ulp_attach(fd));
	close(fd);
}

TEST_F(sess, raw_bytes_refused_after_attach)
{
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	EXPECT_EQ(-1, write(self->cli, "\xc0\x00", 2));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(sess, bytes_sent_before_session_are_processed_after)
{
	const struct mqttq_rec *r = rec_of(self->rec);

	ASSERT_EQ(0, ulp_brk_publish(self->brk, variant->version == MQTTQ_V5, 0, 0, 0, "early",
				     "bird"));
	usleep(50000);
	EXPECT_EQ(0, ulp_poll(self->cli, POLLIN, 0) & POLLIN);
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ((int)sizeof(*r) + 9,
		  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_MESSAGE, r->type);
	EXPECT_EQ(0, memcmp(self->rec + sizeof(*r), "earlybird", 9));
}

TEST_F(sess, keepalive_pingreq_then_timeout_closes)
{
	long long t0;
	int n;

	self->s.keepalive_s = 1;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	t0 = ulp_ms();
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), 5000);
	ASSERT_EQ(2, n);
	EXPECT_EQ(0xc0, self->pkt[0]);
	EXPECT_LE(ULP_AT_LEAST(1000), ulp_ms() - t0);
	/* no PINGRESP: dead 1.5 x keepalive after the last send */
	ASSERT_EQ(0, expect_closed(self->cli, self->rec, sizeof(self->rec), -ETIMEDOUT));
	EXPECT_LE(ULP_AT_LEAST(1500), ulp_ms() - t0);
	EXPECT_EQ(-EPIPE, ulp_read_full(self->brk, self->pkt, 1, ULP_WAIT_MS));
	EXPECT_LE(1, ulp_stat_wait("keepalive_timeouts", 1, ULP_WAIT_MS));
}

TEST_F(sess, keepalive_pingresp_keeps_session)
{
	struct mqttq_sess_stats st;
	int i;

	/* 2 s: the PINGRESP has 1 s to arrive even on a loaded TCG VM */
	self->s.keepalive_s = 2;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(2, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), 8000));
		ASSERT_EQ(0xc0, self->pkt[0]);
		ASSERT_EQ(0, ulp_send(self->brk, "\xd0\x00", 2));
	}
	ASSERT_EQ(0, ulp_stats(self->cli, &st));
	EXPECT_EQ(MQTTQ_ST_RUNNING, st.state);
	EXPECT_EQ(0, st.keepalive_timeouts);
}

TEST_F(sess, retry_resends_with_dup_on_311_only)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	uint16_t pid;

	self->s.retry_ms = 300;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(2, ulp_publish(self->cli, 1, 42, "r", "x", 0));
	ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x32, self->pkt[0]);
	pid = pub_pid(self->pkt);
	if (variant->version == MQTTQ_V5) {
		/* 5.0 forbids resending on a live connection */
		EXPECT_EQ(1, ulp_quiet(self->brk, 900));
	} else {
		ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
		EXPECT_EQ(0x3a, self->pkt[0]);
		EXPECT_EQ(pid, pub_pid(self->pkt));
		/* counters are folded in after the core call that sent the resend */
		EXPECT_LE(1, ulp_stat_wait("retransmits", 1, ULP_WAIT_MS));
	}
	ASSERT_EQ(0, ulp_send_ack(self->brk, 4, pid));
	ASSERT_EQ((int)sizeof(*r), ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(42, r->token);
}

/*
 * Three flows cut at different steps: A (QoS 1, unacked), B (QoS 2, no
 * PUBREC), C (QoS 2, PUBREC'd so at PUBREL). Returns their pids.
 */
static int cut_three_flows(struct __test_metadata *_metadata, FIXTURE_DATA(sess) *self,
			   uint16_t pid[3])
{
	static const int qos[3] = { 1, 2, 2 };
	int i;

	self->s.key = KEY;
	self->s.linger_s = 30;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(2, ulp_publish(self->cli, qos[i], 10 + i, "s", "x", 0));
		ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
		pid[i] = pub_pid(self->pkt);
	}
	ASSERT_EQ(0, ulp_send_ack(self->brk, 5, pid[2]));
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	ASSERT_EQ(0x62, self->pkt[0]);
	/* the network cut: the broker end goes away */
	ulp_abort_close(self->brk);
	self->brk = -1;
	ASSERT_EQ((int)sizeof(struct mqttq_rec),
		  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_CLOSED, rec_of(self->rec)->type);
	EXPECT_EQ(-ECONNRESET, rec_of(self->rec)->err);
	EXPECT_TRUE(rec_of(self->rec)->flags & MQTTQ_RF_LINGER);
	close(self->cli);
	self->cli = -1;
	/* the state outlives both sockets */
	EXPECT_EQ(1, ulp_stat("sessions"));
	EXPECT_EQ(3, ulp_stat("inflight"));
	return 0;
}

static int reattach(struct __test_metadata *_metadata, FIXTURE_DATA(sess) *self, int present)
{
	struct mqttq_sess_stats st;

	ASSERT_EQ(0, ulp_pair(&self->cli, &self->brk));
	ASSERT_EQ(0, ulp_attach(self->cli));
	self->s.session_present = present;
	self->s.linger_s = 0;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, ulp_stats(self->cli, &st));
	EXPECT_EQ(1, st.resumed);
	return 0;
}

TEST_F(sess, resume_resends_pubrel_then_publishes_with_dup_in_order)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	uint16_t pid[3];
	int i, seen = 0;

	cut_three_flows(_metadata, self, pid);
	reattach(_metadata, self, 1);
	/* PUBREL for C, not its PUBLISH; then A and B with DUP, original ids, original order */
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x62, self->pkt[0]);
	EXPECT_EQ(pid[2], self->pkt[2] << 8 | self->pkt[3]);
	ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x3a, self->pkt[0]);
	EXPECT_EQ(pid[0], pub_pid(self->pkt));
	ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x3c, self->pkt[0]);
	EXPECT_EQ(pid[1], pub_pid(self->pkt));
	EXPECT_EQ(1, ulp_quiet(self->brk, 100));
	/* finish all three on the new connection */
	ASSERT_EQ(0, ulp_send_ack(self->brk, 4, pid[0]));
	ASSERT_EQ(0, ulp_send_ack(self->brk, 5, pid[1]));
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x62, self->pkt[0]);
	ASSERT_EQ(0, ulp_send_ack(self->brk, 7, pid[1]));
	ASSERT_EQ(0, ulp_send_ack(self->brk, 7, pid[2]));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ((int)sizeof(*r),
			  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
		ASSERT_EQ(MQTTQ_REC_PUB_DONE, r->type);
		ASSERT_LE(10, r->token);
		ASSERT_GE(12, r->token);
		seen |= 1 << (r->token - 10);
	}
	EXPECT_EQ(7, seen);
}

TEST_F(sess, resume_without_server_session_restarts_flows)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	uint16_t pid[3];

	cut_three_flows(_metadata, self, pid);
	reattach(_metadata, self, 0);
	/* C was the server's at PUBREC: complete. A and B start over, DUP clear */
	ASSERT_EQ((int)sizeof(*r), ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(12, r->token);
	ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x32, self->pkt[0]);
	ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x34, self->pkt[0]);
}

TEST_F(sess, lingering_session_expires)
{
	uint16_t pid[3];

	cut_three_flows(_metadata, self, pid);
	/* cut_three_flows lingers 30 s; a shorter one needs a fresh session */
	EXPECT_EQ(1, ulp_stat("sessions"));
	ASSERT_EQ(0, ulp_pair(&self->cli, &self->brk));
	ASSERT_EQ(0, ulp_attach(self->cli));
	self->s.session_present = 1;
	self->s.linger_s = 1;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ulp_abort_close(self->cli);
	self->cli = -1;
	EXPECT_EQ(1, ulp_stat("sessions"));
	EXPECT_EQ(0, ulp_stat_wait("sessions", 0, 8000));
}

TEST_F(sess, second_socket_with_live_key_is_busy)
{
	int c2, b2;

	self->s.key = KEY + 1;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, ulp_pair(&c2, &b2));
	ASSERT_EQ(0, ulp_attach(c2));
	EXPECT_EQ(-EBUSY, ulp_session(c2, &self->s));
	close(c2);
	close(b2);
}

TEST_F(sess, disconnect_option_sends_disconnect_and_frees)
{
	uint8_t reason = 0;

	self->s.key = KEY + 2;
	self->s.linger_s = 30;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(2, ulp_publish(self->cli, 1, 1, "t", "x", 0));
	ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	ASSERT_EQ(0, setsockopt(self->cli, SOL_MQTTQ, MQTTQ_DISCONNECT, &reason, 1));
	ASSERT_EQ(2, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0xe0, self->pkt[0]);
	EXPECT_EQ(-EPIPE, ulp_read_full(self->brk, self->pkt, 1, ULP_WAIT_MS));
	EXPECT_EQ(0, expect_closed(self->cli, self->rec, sizeof(self->rec), -ESHUTDOWN));
	/* a clean end does not linger */
	EXPECT_EQ(0, ulp_stat("sessions"));
}

struct bad_input {
	const char *name;
	const uint8_t *bytes;
	size_t len;
	int fin; /* then half-close */
};

static const uint8_t bad_ack[] = { 0x40, 2, 0x12, 0x34 };
static const uint8_t bad_varint[] = { 0x30, 0xff, 0xff, 0xff, 0xff, 0x01 };
static const uint8_t bad_type0[] = { 0x00, 0x00 };
static const uint8_t bad_trunc[] = { 0x32, 0x10, 0x00, 0x01, 'a' };
static const uint8_t bad_pingreq[] = { 0xc0, 0x00 };
static const uint8_t bad_flags[] = { 0x41, 2, 0, 1 };
static const uint8_t bad_big[] = { 0x30, 0x80, 0x01 }; /* 128 bytes over max_packet_in 64 */

TEST_F(sess, malformed_and_out_of_protocol_input_end_with_eproto)
{
	const struct bad_input cases[] = {
		{ "unknown pid PUBACK", bad_ack, sizeof(bad_ack), 0 },
		{ "5-byte remaining length", bad_varint, sizeof(bad_varint), 0 },
		{ "reserved type 0", bad_type0, sizeof(bad_type0), 0 },
		{ "truncated frame then FIN", bad_trunc, sizeof(bad_trunc), 1 },
		{ "PINGREQ from the server", bad_pingreq, sizeof(bad_pingreq), 0 },
		{ "reserved flags on PUBACK", bad_flags, sizeof(bad_flags), 0 },
		{ "over max_packet_in", bad_big, sizeof(bad_big), 0 },
	};
	long long perr0 = ulp_stat("protocol_errors");
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int c, b, n, eof = 0;

		TH_LOG("case: %s", cases[i].name);
		ASSERT_EQ(0, ulp_pair(&c, &b));
		ASSERT_EQ(0, ulp_attach(c));
		self->s.max_packet_in = 64;
		ASSERT_EQ(0, ulp_session(c, &self->s));
		ASSERT_EQ(0, ulp_send(b, cases[i].bytes, cases[i].len));
		if (cases[i].fin)
			shutdown(b, SHUT_WR);
		EXPECT_EQ(0, expect_closed(c, self->rec, sizeof(self->rec), -EPROTO));
		EXPECT_EQ(-EPROTO, ulp_publish(c, 1, 1, "t", "x", MSG_DONTWAIT));
		/* the kernel hangs up (v5 says why first); the peer sees EOF */
		for (n = 0; n < 4 && !eof; n++) {
			int k = ulp_brk_pkt(b, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);

			if (k == -EPIPE) {
				eof = 1;
			} else if (variant->version == MQTTQ_V5) {
				EXPECT_EQ(0xe0, self->pkt[0]);
			} else {
				break;
			}
		}
		if (!cases[i].fin)
			EXPECT_TRUE(eof);
		close(c);
		close(b);
		EXPECT_EQ(0, ulp_stat_wait("sessions", 0, ULP_WAIT_MS));
	}
	EXPECT_LE(perr0 + (long long)(sizeof(cases) / sizeof(cases[0])),
		  ulp_stat("protocol_errors"));
}

TEST_F(sess, subscribe_through_the_kernel)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	struct mqttq_sub_req req = { .token = 900, .count = 1 };
	struct mqttq_filter f = { .options = 1, .len = 3 };
	union {
		char buf[CMSG_SPACE(sizeof(struct mqttq_sub_req))];
		struct cmsghdr align;
	} u;
	struct iovec iov[2] = { { &f, sizeof(f) }, { (void *)"a/#", 3 } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	uint8_t suback[6];
	int n, v5 = variant->version == MQTTQ_V5;
	uint16_t pid;

	c->cmsg_level = SOL_MQTTQ;
	c->cmsg_type = MQTTQ_CMSG_SUBSCRIBE;
	c->cmsg_len = CMSG_LEN(sizeof(req));
	memcpy(CMSG_DATA(c), &req, sizeof(req));
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ((ssize_t)(sizeof(f) + 3), sendmsg(self->cli, &m, 0));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_EQ(v5 ? 11 : 10, n);
	EXPECT_EQ(0x82, self->pkt[0]);
	pid = self->pkt[2] << 8 | self->pkt[3];
	EXPECT_EQ(0, memcmp(self->pkt + n - 6, "\0\3a/#\1", 6));
	suback[0] = 0x90;
	suback[1] = v5 ? 4 : 3;
	suback[2] = pid >> 8;
	suback[3] = pid & 0xff;
	suback[4] = v5 ? 0 : 1;
	suback[5] = 1;
	ASSERT_EQ(0, ulp_send(self->brk, suback, v5 ? 6 : 5));
	ASSERT_EQ((int)sizeof(*r) + 1,
		  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_SUBACK, r->type);
	EXPECT_EQ(900, r->token);
	EXPECT_EQ(1, r->count);
	EXPECT_EQ(1, self->rec[sizeof(*r)]);
}

TEST_F(sess, rmmod_refused_while_attached_clean_after_close)
{
	uint16_t pid[3];

	if (variant->version != MQTTQ_V311)
		SKIP(return, "once is enough");
	EXPECT_NE(0, mqttq_ksft_sh("rmmod mqttq 2>/dev/null"));
	EXPECT_EQ(1, mqttq_ksft_loaded());
	/* a lingering session does not pin the module; unload frees it */
	cut_three_flows(_metadata, self, pid);
	EXPECT_EQ(0, mqttq_ksft_sh("rmmod mqttq"));
	EXPECT_EQ(0, mqttq_ksft_loaded());
	ASSERT_EQ(0, mqttq_ksft_sh("modprobe mqttq || insmod build/kmod/$(uname -r)/mqttq.ko"));
	EXPECT_EQ(0, ulp_stat("sessions"));
}

TEST_F(sess, inbound_qos2_exactly_once_across_resume)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	int v5 = variant->version == MQTTQ_V5;

	self->s.key = KEY + 3;
	self->s.linger_s = 30;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, ulp_brk_publish(self->brk, v5, 2, 0, 5, "q2", "once"));
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x50, self->pkt[0]);
	ASSERT_EQ((int)sizeof(*r) + 6,
		  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_MESSAGE, r->type);
	/* cut before the broker saw the PUBREC */
	ulp_abort_close(self->brk);
	self->brk = -1;
	ASSERT_EQ((int)sizeof(*r), ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_CLOSED, r->type);
	close(self->cli);
	self->cli = -1;
	reattach(_metadata, self, 1);
	/* the broker resends the PUBLISH: acknowledged again, not delivered again */
	ASSERT_EQ(0, ulp_brk_publish(self->brk, v5, 2, 1, 5, "q2", "once"));
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x50, self->pkt[0]);
	EXPECT_EQ(5, self->pkt[3]);
	ASSERT_EQ(0, ulp_send_ack(self->brk, 6, 5));
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x70, self->pkt[0]);
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 100));
}

TEST_F(sess, effective_session_values_readable)
{
	struct mqttq_session g;
	socklen_t l = sizeof(g);

	self->s.window = 7;
	self->s.key = KEY + 4;
	self->s.receive_max = 5;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, getsockopt(self->cli, SOL_MQTTQ, MQTTQ_SESSION, &g, &l));
	EXPECT_EQ(sizeof(g), l);
	EXPECT_EQ(sizeof(g), g.size);
	EXPECT_EQ(variant->version, g.version);
	EXPECT_EQ(7, g.window);
	EXPECT_EQ(KEY + 4, g.key);
	EXPECT_EQ(variant->version == MQTTQ_V5 ? 5 : 0, g.receive_max);
	EXPECT_NE(MQTTQ_DEFAULT, g.max_bytes);
}

TEST_F(sess, random_bytes_end_cleanly)
{
	unsigned int seed = 0x6d717471 + variant->version, i;

	for (i = 0; i < 30; i++) {
		uint8_t junk[96];
		int c, b, n, k, closed = 0;
		size_t len = 1 + rand_r(&seed) % sizeof(junk), j;

		for (j = 0; j < len; j++)
			junk[j] = rand_r(&seed);
		/* mostly plausible first bytes, so the parser gets past the header */
		junk[0] = (junk[0] & 0xf0) | (rand_r(&seed) % 2 ? 0 : junk[0] & 0x0f);
		ASSERT_EQ(0, ulp_pair(&c, &b));
		ASSERT_EQ(0, ulp_attach(c));
		ASSERT_EQ(0, ulp_session(c, &self->s));
		ASSERT_EQ(0, ulp_send(b, junk, len));
		shutdown(b, SHUT_WR);
		for (n = 0; n < 64 && !closed; n++) {
			const struct mqttq_rec *r = rec_of(self->rec);

			k = ulp_rec(c, self->rec, sizeof(self->rec), ULP_WAIT_MS);
			ASSERT_LE((int)sizeof(*r), k) TH_LOG("iteration %u: %d", i, k);
			if (r->type == MQTTQ_REC_CLOSED) {
				closed = 1;
				EXPECT_TRUE(r->err == -EPROTO || r->err == -ECONNRESET)
				TH_LOG("iteration %u: err %d", i, r->err);
			}
		}
		EXPECT_TRUE(closed);
		close(c);
		close(b);
	}
}

TEST_HARNESS_MAIN
