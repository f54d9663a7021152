// SPDX-License-Identifier: GPL-2.0
/* kselftest: the mqttq socket under io_uring: SENDMSG, multishot RECVMSG, buffer ring. */

#include <liburing.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "ulp_util.h"

#define NBUF 8
#define BUFSZ 256
#define BGID 7

FIXTURE(uring) {
	int cli, brk;
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	struct mqttq_session s;
	uint8_t pkt[512];
	int ring_up;
};

FIXTURE_SETUP(uring)
{
	struct io_uring_buf_reg reg = { 0 };
	int i;

	ASSERT_EQ(0, ulp_pair(&self->cli, &self->brk));
	ASSERT_EQ(0, ulp_attach(self->cli));
	ulp_sess_init(&self->s, MQTTQ_V5);
	ASSERT_EQ(0, ulp_session(self->cli, &self->s));
	ASSERT_EQ(0, io_uring_queue_init(16, &self->ring, 0));
	self->ring_up = 1;
	self->br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
			MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	ASSERT_NE(MAP_FAILED, self->br);
	self->bufs = malloc(NBUF * BUFSZ);
	ASSERT_NE(NULL, self->bufs);
	reg.ring_addr = (unsigned long)self->br;
	reg.ring_entries = NBUF;
	reg.bgid = BGID;
	ASSERT_EQ(0, io_uring_register_buf_ring(&self->ring, &reg, 0));
	io_uring_buf_ring_init(self->br);
	for (i = 0; i < NBUF; i++)
		io_uring_buf_ring_add(self->br, self->bufs + i * BUFSZ, BUFSZ, i,
				      io_uring_buf_ring_mask(NBUF), i);
	io_uring_buf_ring_advance(self->br, NBUF);
}

FIXTURE_TEARDOWN(uring)
{
	/* the ring holds file references: it goes first */
	if (self->ring_up)
		io_uring_queue_exit(&self->ring);
	close(self->cli);
	close(self->brk);
	free(self->bufs);
	EXPECT_EQ(0, ulp_stat_wait("sessions", 0, ULP_WAIT_MS));
	EXPECT_EQ(0, ulp_stat_wait("bytes_held", 0, ULP_WAIT_MS));
}

static int wait_cqe(struct io_uring *ring, struct io_uring_cqe **cqe, int ms)
{
	struct __kernel_timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	return io_uring_wait_cqe_timeout(ring, cqe, &ts);
}

/* The record inside a multishot RECVMSG completion, or NULL. */
static const struct mqttq_rec *cqe_rec(FIXTURE_DATA(uring) *self, struct io_uring_cqe *cqe,
				       struct msghdr *mh, unsigned int *len)
{
	struct io_uring_recvmsg_out *o;
	uint8_t *buf;

	if (cqe->res <= 0 || !(cqe->flags & IORING_CQE_F_BUFFER))
		return NULL;
	buf = self->bufs + (cqe->flags >> IORING_CQE_BUFFER_SHIFT) * BUFSZ;
	o = io_uring_recvmsg_validate(buf, cqe->res, mh);
	if (!o)
		return NULL;
	*len = io_uring_recvmsg_payload_length(o, cqe->res, mh);
	return io_uring_recvmsg_payload(o, mh);
}

static void recycle(FIXTURE_DATA(uring) *self, struct io_uring_cqe *cqe)
{
	int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

	io_uring_buf_ring_add(self->br, self->bufs + bid * BUFSZ, BUFSZ, bid,
			      io_uring_buf_ring_mask(NBUF), 0);
	io_uring_buf_ring_advance(self->br, 1);
}

TEST_F(uring, sendmsg_publish_and_multishot_recvmsg_completions)
{
	struct msghdr rmh = { 0 };
	struct ulp_pubmsg pm[3];
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	uint16_t pid[3];
	int i, got = 0, more = 1;

	/* completions first: armed before anything can complete */
	sqe = io_uring_get_sqe(&self->ring);
	ASSERT_NE(NULL, sqe);
	io_uring_prep_recvmsg_multishot(sqe, self->cli, &rmh, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	sqe->user_data = 1;
	for (i = 0; i < 3; i++) {
		ulp_pub_build(&pm[i], 1, 500 + i, "u/r", "ing", 3);
		sqe = io_uring_get_sqe(&self->ring);
		ASSERT_NE(NULL, sqe);
		io_uring_prep_sendmsg(sqe, self->cli, &pm[i].msg, 0);
		sqe->user_data = 10 + i;
	}
	ASSERT_EQ(4, io_uring_submit(&self->ring));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, wait_cqe(&self->ring, &cqe, ULP_WAIT_MS));
		EXPECT_LE(10, cqe->user_data);
		EXPECT_EQ(6, cqe->res);
		io_uring_cqe_seen(&self->ring, cqe);
	}
	for (i = 0; i < 3; i++) {
		ASSERT_LT(0, ulp_brk_pkt(self->brk, self->pkt, sizeof(self->pkt), ULP_WAIT_MS));
		pid[i] = self->pkt[7] << 8 | self->pkt[8];
	}
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, ulp_send_ack(self->brk, 4, pid[i]));
	/* then an inbound message through the same multishot request */
	ASSERT_EQ(0, ulp_brk_publish(self->brk, 1, 0, 0, 0, "in", "bound"));
	while (got < 4 && more) {
		const struct mqttq_rec *r;
		unsigned int len = 0;

		ASSERT_EQ(0, wait_cqe(&self->ring, &cqe, ULP_WAIT_MS));
		ASSERT_EQ(1, cqe->user_data);
		more = !!(cqe->flags & IORING_CQE_F_MORE);
		r = cqe_rec(self, cqe, &rmh, &len);
		ASSERT_NE(NULL, r) TH_LOG("res %d flags %x", cqe->res, cqe->flags);
		ASSERT_EQ(r->len, len);
		if (got < 3) {
			EXPECT_EQ(MQTTQ_REC_PUB_DONE, r->type);
			EXPECT_EQ(500 + got, r->token);
		} else {
			EXPECT_EQ(MQTTQ_REC_MESSAGE, r->type);
			EXPECT_EQ(0, memcmp((const uint8_t *)(r + 1), "inbound", 7));
		}
		recycle(self, cqe);
		io_uring_cqe_seen(&self->ring, cqe);
		got++;
	}
	EXPECT_EQ(4, got);
	/* still armed */
	EXPECT_TRUE(more);
}

TEST_F(uring, multishot_ends_with_the_session_error)
{
	struct msghdr rmh = { 0 };
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	const struct mqttq_rec *r;
	unsigned int len = 0;

	sqe = io_uring_get_sqe(&self->ring);
	ASSERT_NE(NULL, sqe);
	io_uring_prep_recvmsg_multishot(sqe, self->cli, &rmh, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	/* garbage from the peer */
	ASSERT_EQ(0, ulp_send(self->brk, "\x00\x00", 2));
	ASSERT_EQ(0, wait_cqe(&self->ring, &cqe, ULP_WAIT_MS));
	r = cqe_rec(self, cqe, &rmh, &len);
	ASSERT_NE(NULL, r);
	EXPECT_EQ(MQTTQ_REC_CLOSED, r->type);
	EXPECT_EQ(-EPROTO, r->err);
	recycle(self, cqe);
	io_uring_cqe_seen(&self->ring, cqe);
	ASSERT_EQ(0, wait_cqe(&self->ring, &cqe, ULP_WAIT_MS));
	EXPECT_EQ(-EPROTO, cqe->res);
	EXPECT_FALSE(cqe->flags & IORING_CQE_F_MORE);
	io_uring_cqe_seen(&self->ring, cqe);
}

TEST_HARNESS_MAIN
