// SPDX-License-Identifier: GPL-2.0
/* kselftest: mqttq ULP flows at QoS 0/1/2 on 3.1.1 and 5.0, windows, completions. */

#include <pthread.h>

#include "kselftest_harness.h"
#include "ulp_util.h"

FIXTURE(flow) {
	int cli, brk;
	struct mqttq_session s;
	uint8_t pkt[1024];
	uint8_t rec[1024];
};

FIXTURE_VARIANT(flow) {
	int version;
};

FIXTURE_VARIANT_ADD(flow, v311) {
	.version = MQTTQ_V311,
};

FIXTURE_VARIANT_ADD(flow, v5) {
	.version = MQTTQ_V5,
};

FIXTURE_SETUP(flow)
{
	ASSERT_EQ(0, ulp_pair(&self->cli, &self->brk));
	ASSERT_EQ(0, ulp_attach(self->cli));
	ulp_sess_init(&self->s, variant->version);
}

FIXTURE_TEARDOWN(flow)
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

/* The pid of the PUBLISH at p (3.1.1/v5 share the layout up to it). */
static uint16_t pub_pid(const uint8_t *p)
{
	uint16_t tl = p[2] << 8 | p[3];

	return p[4 + tl] << 8 | p[5 + tl];
}

TEST_F(flow, qos0_publish_on_the_wire_and_completed)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	int n;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(5, ulp_publish(self->cli, 0, 77, "a/b", "hi", MSG_DONTWAIT));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_EQ(variant->version == MQTTQ_V5 ? 10 : 9, n);
	EXPECT_EQ(0x30, self->pkt[0]);
	EXPECT_EQ(0, memcmp(self->pkt + 2, "\0\3a/b", 5));
	EXPECT_EQ(0, memcmp(self->pkt + n - 2, "hi", 2));
	n = ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS);
	ASSERT_EQ((int)sizeof(*r), n);
	EXPECT_EQ(MQTTQ_REC_PUB_DONE, r->type);
	EXPECT_EQ(77, r->token);
	EXPECT_EQ(0, r->reason);
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 50));
}

TEST_F(flow, qos1_publish_puback_completes)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	struct mqttq_sess_stats st;
	uint16_t pid;
	int n;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(6, ulp_publish(self->cli, 1, 1001, "t", "hello", 0));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_LT(0, n);
	EXPECT_EQ(0x32, self->pkt[0]);
	pid = pub_pid(self->pkt);
	EXPECT_NE(0, pid);
	ASSERT_EQ(0, ulp_stats(self->cli, &st));
	EXPECT_EQ(1, st.inflight);
	EXPECT_EQ(1, ulp_stat("inflight"));
	/* nothing completes before the ack */
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 100));
	ASSERT_EQ(0, ulp_send_ack(self->brk, 4, pid));
	n = ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS);
	ASSERT_EQ((int)sizeof(*r), n);
	EXPECT_EQ(MQTTQ_REC_PUB_DONE, r->type);
	EXPECT_EQ(1001, r->token);
	EXPECT_EQ(0, r->reason);
	EXPECT_EQ(1, r->qos);
	ASSERT_EQ(0, ulp_stats(self->cli, &st));
	EXPECT_EQ(0, st.inflight);
	EXPECT_EQ(1, st.completed);
	EXPECT_EQ(1, st.acks_in_kernel);
}

TEST_F(flow, qos2_publish_pubrec_pubrel_pubcomp)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	struct mqttq_sess_stats st;
	uint16_t pid;
	int n;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(4, ulp_publish(self->cli, 2, 5, "q2", "xy", 0));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_LT(0, n);
	EXPECT_EQ(0x34, self->pkt[0]);
	pid = pub_pid(self->pkt);
	ASSERT_EQ(0, ulp_send_ack(self->brk, 5, pid));
	/* the kernel answers PUBREC with PUBREL on its own */
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_EQ(4, n);
	EXPECT_EQ(0x62, self->pkt[0]);
	EXPECT_EQ(pid, self->pkt[2] << 8 | self->pkt[3]);
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 50));
	ASSERT_EQ(0, ulp_send_ack(self->brk, 7, pid));
	n = ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS);
	ASSERT_EQ((int)sizeof(*r), n);
	EXPECT_EQ(MQTTQ_REC_PUB_DONE, r->type);
	EXPECT_EQ(5, r->token);
	EXPECT_EQ(2, r->qos);
	ASSERT_EQ(0, ulp_stats(self->cli, &st));
	EXPECT_EQ(1, st.pubrel_sent);
	EXPECT_EQ(2, st.acks_in_kernel);
	EXPECT_EQ(0, st.inflight);
}

TEST_F(flow, v5_refused_puback_reports_reason)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	uint8_t ack[5] = { 0x40, 3, 0, 0, 0x87 };
	uint16_t pid;

	if (variant->version != MQTTQ_V5)
		SKIP(return, "reason codes are 5.0 only");
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(2, ulp_publish(self->cli, 1, 9, "t", "p", 0));
	ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	pid = pub_pid(self->pkt);
	ack[2] = pid >> 8;
	ack[3] = pid & 0xff;
	ASSERT_EQ(0, ulp_send(self->brk, ack, sizeof(ack)));
	ASSERT_EQ((int)sizeof(*r), ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(9, r->token);
	EXPECT_EQ(0x87, r->reason);
}

TEST_F(flow, inbound_qos1_acked_on_receipt_before_read)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	int n;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, ulp_brk_publish(self->brk, variant->version == MQTTQ_V5, 1, 0, 7, "in/x",
				     "payload"));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	ASSERT_EQ(4, n);
	EXPECT_EQ(0x40, self->pkt[0]);
	EXPECT_EQ(7, self->pkt[3]);
	n = ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS);
	ASSERT_EQ((int)sizeof(*r) + 4 + 7, n);
	EXPECT_EQ(MQTTQ_REC_MESSAGE, r->type);
	EXPECT_EQ(4, r->topic_len);
	EXPECT_EQ(7, r->payload_len);
	EXPECT_EQ(1, r->qos);
	EXPECT_EQ(7, r->pid);
	EXPECT_EQ(0, memcmp(self->rec + sizeof(*r), "in/xpayload", 11));
}

TEST_F(flow, inbound_qos2_once_dup_suppressed_pubrel_pubcomp)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	int v5 = variant->version == MQTTQ_V5, n;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, ulp_brk_publish(self->brk, v5, 2, 0, 9, "q", "once"));
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x50, self->pkt[0]);
	EXPECT_EQ(9, self->pkt[3]);
	/* the broker did not see the PUBREC and resends */
	ASSERT_EQ(0, ulp_brk_publish(self->brk, v5, 2, 1, 9, "q", "once"));
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x50, self->pkt[0]);
	ASSERT_EQ(0, ulp_send_ack(self->brk, 6, 9));
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x70, self->pkt[0]);
	EXPECT_EQ(9, self->pkt[3]);
	n = ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS);
	ASSERT_EQ((int)sizeof(*r) + 5, n);
	EXPECT_EQ(MQTTQ_REC_MESSAGE, r->type);
	EXPECT_EQ(2, r->qos);
	/* delivered exactly once */
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 100));
}

TEST_F(flow, inbound_acked_on_delivery_only_after_read)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	int v5 = variant->version == MQTTQ_V5;

	self->s.ack_policy = MQTTQ_ACK_ON_DELIVERY;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, ulp_brk_publish(self->brk, v5, 1, 0, 3, "d", "1"));
	ASSERT_EQ(0, ulp_brk_publish(self->brk, v5, 2, 0, 4, "d", "2"));
	/* unread means unacknowledged */
	EXPECT_EQ(1, ulp_quiet(self->brk, 200));
	ASSERT_EQ((int)sizeof(*r) + 2,
		  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(3, r->pid);
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x40, self->pkt[0]);
	EXPECT_EQ(3, self->pkt[3]);
	EXPECT_EQ(1, ulp_quiet(self->brk, 100));
	ASSERT_EQ((int)sizeof(*r) + 2,
		  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(4, r->pid);
	ASSERT_EQ(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x50, self->pkt[0]);
	EXPECT_EQ(4, self->pkt[3]);
}

TEST_F(flow, pubrel_before_pubrec_on_delivery_is_protocol_error)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	int v5 = variant->version == MQTTQ_V5;

	self->s.ack_policy = MQTTQ_ACK_ON_DELIVERY;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, ulp_brk_publish(self->brk, v5, 2, 0, 4, "d", "2"));
	ASSERT_EQ(0, ulp_send_ack(self->brk, 6, 4));
	ASSERT_EQ((int)sizeof(*r) + 2,
		  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_MESSAGE, r->type);
	ASSERT_EQ((int)sizeof(*r), ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_CLOSED, r->type);
	EXPECT_EQ(-EPROTO, r->err);
	EXPECT_EQ(-EPROTO, ulp_rec(self->cli, self->rec, sizeof(self->rec), 10));
}

TEST_F(flow, pubrel_unknown_answered_with_pubcomp)
{
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, ulp_send_ack(self->brk, 6, 44));
	ASSERT_LE(4, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	EXPECT_EQ(0x70, self->pkt[0]);
	EXPECT_EQ(44, self->pkt[3]);
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 50));
}

TEST_F(flow, window_full_eagain_then_pollout_after_ack)
{
	uint16_t pid[3];
	int i;

	self->s.window = 2;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(2, ulp_publish(self->cli, 1, i, "w", "x", MSG_DONTWAIT));
		ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
		pid[i] = pub_pid(self->pkt);
	}
	EXPECT_EQ(-EAGAIN, ulp_publish(self->cli, 1, 2, "w", "x", MSG_DONTWAIT));
	EXPECT_EQ(0, ulp_poll(self->cli, POLLOUT, 50) & POLLOUT);
	/* QoS 0 is never held back by the window (MQTT 4.9.0) */
	EXPECT_EQ(2, ulp_publish(self->cli, 0, 50, "w", "x", MSG_DONTWAIT));
	ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	ASSERT_EQ(0, ulp_send_ack(self->brk, 4, pid[0]));
	EXPECT_EQ(POLLOUT, ulp_poll(self->cli, POLLOUT, ULP_WAIT_MS) & POLLOUT);
	EXPECT_EQ(2, ulp_publish(self->cli, 1, 2, "w", "x", MSG_DONTWAIT));
	ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	pid[2] = pub_pid(self->pkt);
	EXPECT_NE(pid[1], pid[2]);
}

TEST_F(flow, blocking_publish_waits_for_window_and_sndtimeo)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	long long t0;

	self->s.window = 1;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, setsockopt(self->cli, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	ASSERT_EQ(2, ulp_publish(self->cli, 1, 1, "w", "x", 0));
	t0 = ulp_ms();
	EXPECT_EQ(-EAGAIN, ulp_publish(self->cli, 1, 2, "w", "x", 0));
	EXPECT_LE(ULP_AT_LEAST(200), ulp_ms() - t0);
}

TEST_F(flow, v5_receive_maximum_caps_inflight)
{
	if (variant->version != MQTTQ_V5)
		SKIP(return, "Receive Maximum is 5.0 only");
	self->s.window = 10;
	self->s.receive_max = 1;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(2, ulp_publish(self->cli, 2, 1, "r", "x", MSG_DONTWAIT));
	EXPECT_EQ(-EAGAIN, ulp_publish(self->cli, 1, 2, "r", "x", MSG_DONTWAIT));
}

TEST_F(flow, coalesced_completions_one_record_per_run)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	uint8_t acks[8 * 4];
	int i;

	self->s.completion = MQTTQ_COMPLETE_COALESCE;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	for (i = 0; i < 8; i++) {
		ASSERT_EQ(2, ulp_publish(self->cli, 1, 100 + i, "c", "x", MSG_DONTWAIT));
		ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
		acks[i * 4] = 0x40;
		acks[i * 4 + 1] = 2;
		acks[i * 4 + 2] = self->pkt[5];
		acks[i * 4 + 3] = self->pkt[6];
	}
	/* all eight acks in one segment: one batch, one record */
	ASSERT_EQ(0, ulp_send(self->brk, acks, sizeof(acks)));
	ASSERT_EQ((int)sizeof(*r), ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_PUB_DONE_RUN, r->type);
	EXPECT_EQ(100, r->token);
	EXPECT_EQ(8, r->count);
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 50));
}

TEST_F(flow, per_message_completions_one_record_each)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	uint8_t acks[3 * 4];
	int i;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(2, ulp_publish(self->cli, 1, 100 + i, "c", "x", MSG_DONTWAIT));
		ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
		acks[i * 4] = 0x40;
		acks[i * 4 + 1] = 2;
		acks[i * 4 + 2] = self->pkt[5];
		acks[i * 4 + 3] = self->pkt[6];
	}
	ASSERT_EQ(0, ulp_send(self->brk, acks, sizeof(acks)));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ((int)sizeof(*r),
			  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
		EXPECT_EQ(MQTTQ_REC_PUB_DONE, r->type);
		EXPECT_EQ(100 + i, r->token);
		EXPECT_EQ(1, r->count);
	}
}

TEST_F(flow, short_buffer_gets_msg_trunc)
{
	struct mqttq_rec r;
	struct iovec iov = { .iov_base = &r, .iov_len = sizeof(r) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, ulp_brk_publish(self->brk, variant->version == MQTTQ_V5, 0, 0, 0, "topic",
				     "a long enough payload"));
	ASSERT_EQ(POLLIN, ulp_poll(self->cli, POLLIN, ULP_WAIT_MS) & POLLIN);
	n = recvmsg(self->cli, &m, MSG_DONTWAIT);
	ASSERT_EQ((ssize_t)sizeof(r), n);
	EXPECT_TRUE(m.msg_flags & MSG_TRUNC);
	EXPECT_EQ(sizeof(r) + 5 + 21, r.len);
	/* the rest of the record is gone: datagram semantics */
	EXPECT_EQ(-EAGAIN, (int)(recv(self->cli, &r, sizeof(r), MSG_DONTWAIT) < 0 ? -errno : 0));
}

TEST_F(flow, record_memory_full_pauses_reading_without_loss)
{
	const struct mqttq_rec *r = rec_of(self->rec);
	char payload[400];
	int i, v5 = variant->version == MQTTQ_V5;

	/* 4 KiB of records hold a few of these: the rest must wait in TCP */
	self->s.max_bytes = 4096;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	memset(payload, 'p', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = 0;
	for (i = 0; i < 24; i++) {
		char topic[8];

		snprintf(topic, sizeof(topic), "m/%02d", i);
		ASSERT_EQ(0, ulp_brk_publish(self->brk, v5, 0, 0, 0, topic, payload));
	}
	usleep(100000);
	EXPECT_GT(4096 * 2, ulp_stat("bytes_held"));
	for (i = 0; i < 24; i++) {
		char topic[8];

		snprintf(topic, sizeof(topic), "m/%02d", i);
		ASSERT_EQ((int)sizeof(*r) + 4 + 399,
			  ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
		ASSERT_EQ(MQTTQ_REC_MESSAGE, r->type);
		ASSERT_EQ(0, memcmp(self->rec + sizeof(*r), topic, 4));
	}
	EXPECT_EQ(-ETIMEDOUT, ulp_rec(self->cli, self->rec, sizeof(self->rec), 50));
}

struct late_send {
	int fd, v5;
};

static void *send_later(void *arg)
{
	struct late_send *l = arg;

	usleep(200000);
	ulp_brk_publish(l->fd, l->v5, 0, 0, 0, "late", "x");
	return NULL;
}

TEST_F(flow, blocking_recv_sleeps_until_a_record)
{
	struct timeval tv = { .tv_sec = 5 };
	struct late_send l = { self->brk, variant->version == MQTTQ_V5 };
	pthread_t th;
	long long t0;
	ssize_t n;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, setsockopt(self->cli, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	ASSERT_EQ(0, pthread_create(&th, NULL, send_later, &l));
	t0 = ulp_ms();
	n = recv(self->cli, self->rec, sizeof(self->rec), 0);
	pthread_join(th, NULL);
	ASSERT_EQ((ssize_t)sizeof(struct mqttq_rec) + 5, n);
	EXPECT_EQ(MQTTQ_REC_MESSAGE, rec_of(self->rec)->type);
	EXPECT_LE(ULP_AT_LEAST(200), ulp_ms() - t0);
}

TEST_F(flow, ipv6_socket_attaches_and_publishes)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t al = sizeof(a);
	int l, c, b;
	uint16_t pid;

	l = socket(AF_INET6, SOCK_STREAM, 0);
	ASSERT_LE(0, l);
	if (bind(l, (struct sockaddr *)&a, sizeof(a))) {
		close(l);
		SKIP(return, "no ::1 here");
	}
	ASSERT_EQ(0, listen(l, 1));
	ASSERT_EQ(0, getsockname(l, (struct sockaddr *)&a, &al));
	c = socket(AF_INET6, SOCK_STREAM, 0);
	ASSERT_EQ(0, connect(c, (struct sockaddr *)&a, sizeof(a)));
	b = accept(l, NULL, NULL);
	ASSERT_LE(0, b);
	close(l);
	ASSERT_EQ(0, ulp_attach(c));
	ASSERT_EQ(0, ulp_session(c, &self->s));
	ASSERT_EQ(2, ulp_publish(c, 1, 66, "6", "x", 0));
	ASSERT_LT(0, ulp_brk_pkt(b, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
	pid = pub_pid(self->pkt);
	ASSERT_EQ(0, ulp_send_ack(b, 4, pid));
	ASSERT_EQ((int)sizeof(struct mqttq_rec),
		  ulp_rec(c, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(66, rec_of(self->rec)->token);
	close(c);
	close(b);
}

TEST_F(flow, v5_properties_passed_through)
{
	static const uint8_t props[] = { 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x3c };
	struct ulp_pubmsg p;
	struct iovec iov[3];
	struct mqttq_pub req;
	int n;

	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ulp_pub_build(&p, 0, 3, "pp", "body", 4);
	memcpy(&req, CMSG_DATA(CMSG_FIRSTHDR(&p.msg)), sizeof(req));
	req.props_len = sizeof(props);
	memcpy(CMSG_DATA(CMSG_FIRSTHDR(&p.msg)), &req, sizeof(req));
	iov[0] = p.iov[0];
	iov[1] = p.iov[1];
	iov[2].iov_base = (void *)props;
	iov[2].iov_len = sizeof(props);
	p.msg.msg_iov = iov;
	p.msg.msg_iovlen = 3;
	if (variant->version != MQTTQ_V5) {
		EXPECT_EQ(-1, sendmsg(self->cli, &p.msg, 0));
		EXPECT_EQ(EINVAL, errno);
		return;
	}
	ASSERT_EQ((ssize_t)(2 + 4 + sizeof(props)), sendmsg(self->cli, &p.msg, 0));
	n = ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS);
	/* 30 rl | 00 02 "pp" | 07 props | "body" */
	ASSERT_EQ(2 + 4 + 1 + (int)sizeof(props) + 4, n);
	EXPECT_EQ(sizeof(props), self->pkt[6]);
	EXPECT_EQ(0, memcmp(self->pkt + 7, props, sizeof(props)));
	EXPECT_EQ(0, memcmp(self->pkt + 7 + sizeof(props), "body", 4));
}

TEST_F(flow, qos0_flood_to_a_stalled_peer_is_bounded)
{
	static char payload[1024];
	const struct mqttq_rec *r = rec_of(self->rec);
	struct mqttq_sess_stats st;
	long long n = 0, got = 0, want, pkt;
	struct ulp_pubmsg p;
	struct mqttq_pub req;
	ssize_t k;

	/* the peer reads nothing: TCP fills, then the kernel's queue, then EAGAIN */
	self->s.max_bytes = 8192;
	self->s.completion = MQTTQ_COMPLETE_COALESCE;
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	memset(payload, 'q', sizeof(payload));
	ulp_pub_build(&p, 0, 0, "f", payload, sizeof(payload));
	memcpy(&req, CMSG_DATA(CMSG_FIRSTHDR(&p.msg)), sizeof(req));
	for (;;) {
		req.token = n;
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&p.msg)), &req, sizeof(req));
		if (n >= 200000 || sendmsg(self->cli, &p.msg, MSG_DONTWAIT) < 0)
			break;
		n++;
	}
	ASSERT_EQ(EAGAIN, errno);
	ASSERT_LT(0, n);
	ASSERT_EQ(0, ulp_stats(self->cli, &st));
	/* max_bytes plus one message and a chunk header's worth of slack */
	EXPECT_GT(8192 + 2048 + 2048, (long long)st.bytes_held);
	/*
	 * No POLLOUT check here: the queue keeps draining into TCP while the
	 * receive side autotunes its buffer, so writability may come back at
	 * any moment; the bound above is what must hold.
	 */
	/* the peer catches up: every message arrives and publishing resumes */
	pkt = 1 + 2 + 2 + 1 + (variant->version == MQTTQ_V5) + sizeof(payload);
	want = n * pkt;
	while (got < want) {
		if (ulp_poll(self->brk, POLLIN, ULP_WAIT_MS) <= 0)
			break;
		k = recv(self->brk, self->pkt, sizeof(self->pkt), MSG_DONTWAIT);
		if (k <= 0)
			break;
		got += k;
	}
	EXPECT_EQ(want, got);
	EXPECT_EQ(POLLOUT, ulp_poll(self->cli, POLLOUT, ULP_WAIT_MS) & POLLOUT);
	req.token = n;
	memcpy(CMSG_DATA(CMSG_FIRSTHDR(&p.msg)), &req, sizeof(req));
	EXPECT_LT(0, sendmsg(self->cli, &p.msg, MSG_DONTWAIT));
	/* sequential tokens: the completions are one run */
	ASSERT_EQ((int)sizeof(*r), ulp_rec(self->cli, self->rec, sizeof(self->rec), ULP_WAIT_MS));
	EXPECT_EQ(MQTTQ_REC_PUB_DONE_RUN, r->type);
	EXPECT_EQ(0, r->token);
	EXPECT_EQ(n + 1, r->count);
}

TEST_HARNESS_MAIN
