/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers for the mqttq ULP kselftests: a loopback pair where the test plays the broker. */
#ifndef ULP_UTIL_H
#define ULP_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mqttq_ksft.h"
/* mqttq_ksft.h names the sysfs directory MQTTQ_STATS; the uapi uses the name for the option. */
#undef MQTTQ_STATS
#include "mqttq_uapi.h"

#define ULP_SYSFS "/sys/kernel/mqttq/"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* Generous bound for anything the kernel should do "now" (TCG VMs are slow). */
#define ULP_WAIT_MS 3000

/*
 * Lower bounds on kernel timers, as a fraction of the nominal time: under
 * TCG the guest's TSC calibration can fail and then jiffies and
 * CLOCK_MONOTONIC disagree several-fold. The bound still tells "waited"
 * from "returned at once".
 */
#define ULP_AT_LEAST(ms) ((ms) / 4)

static inline long long ulp_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connected loopback pair: *cli is the socket mqttq attaches to, *brk the test's broker end. */
static inline int ulp_pair(int *cli, int *brk)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int l, c, b, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&a, &al)) {
		close(l);
		return -errno;
	}
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a))) {
		close(l);
		return -errno;
	}
	b = accept(l, NULL, NULL);
	close(l);
	if (b < 0) {
		close(c);
		return -errno;
	}
	setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*cli = c;
	*brk = b;
	return 0;
}

static inline int ulp_attach(int fd)
{
	return setsockopt(fd, SOL_TCP, TCP_ULP, "mqttq", 5) ? -errno : 0;
}

/* Session parameters the tests start from: explicit values, no module defaults, no linger. */
static inline void ulp_sess_init(struct mqttq_session *s, int version)
{
	memset(s, 0, sizeof(*s));
	s->size = sizeof(*s);
	s->version = version;
	s->ack_policy = MQTTQ_ACK_ON_RECEIPT;
	s->completion = MQTTQ_COMPLETE_EACH;
	s->window = 16;
	s->recv_max = 16;
	s->retry_ms = 0;
	s->linger_s = 0;
	s->max_bytes = MQTTQ_DEFAULT;
	s->max_qos = MQTTQ_DEFAULT8;
	s->retain_available = MQTTQ_DEFAULT8;
	s->wildcard_sub_available = MQTTQ_DEFAULT8;
	s->sub_id_available = MQTTQ_DEFAULT8;
	s->shared_sub_available = MQTTQ_DEFAULT8;
}

static inline int ulp_session(int fd, const struct mqttq_session *s)
{
	return setsockopt(fd, SOL_MQTTQ, MQTTQ_SESSION, s, sizeof(*s)) ? -errno : 0;
}

/* Builds the PUBLISH request in msg (cmsg + iov over topic|payload); buffers are the caller's. */
struct ulp_pubmsg {
	struct msghdr msg;
	struct iovec iov[2];
	union {
		char buf[CMSG_SPACE(sizeof(struct mqttq_pub))];
		struct cmsghdr align;
	} u;
};

static inline void ulp_pub_build(struct ulp_pubmsg *p, int qos, uint64_t token, const char *topic,
				 const void *payload, size_t plen)
{
	struct mqttq_pub req = { .token = token, .qos = qos, .topic_len = strlen(topic) };
	struct cmsghdr *c;

	memset(p, 0, sizeof(*p));
	p->iov[0].iov_base = (void *)topic;
	p->iov[0].iov_len = strlen(topic);
	p->iov[1].iov_base = (void *)payload;
	p->iov[1].iov_len = plen;
	p->msg.msg_iov = p->iov;
	p->msg.msg_iovlen = 2;
	p->msg.msg_control = p->u.buf;
	p->msg.msg_controllen = sizeof(p->u.buf);
	c = CMSG_FIRSTHDR(&p->msg);
	c->cmsg_level = SOL_MQTTQ;
	c->cmsg_type = MQTTQ_CMSG_PUBLISH;
	c->cmsg_len = CMSG_LEN(sizeof(req));
	memcpy(CMSG_DATA(c), &req, sizeof(req));
}

/* sendmsg of one PUBLISH: bytes accepted or -errno. */
static inline ssize_t ulp_publish(int fd, int qos, uint64_t token, const char *topic,
				  const char *payload, int flags)
{
	struct ulp_pubmsg p;
	ssize_t n;

	ulp_pub_build(&p, qos, token, topic, payload, strlen(payload));
	n = sendmsg(fd, &p.msg, flags);
	return n < 0 ? -errno : n;
}

static inline int ulp_poll(int fd, short ev, int ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int n = poll(&p, 1, ms);

	return n < 0 ? -errno : (n ? p.revents : 0);
}

/* Exactly len bytes from fd within ms, or -errno / -ETIMEDOUT / -EPIPE at EOF. */
static inline int ulp_read_full(int fd, uint8_t *buf, size_t len, int ms)
{
	long long end = ulp_ms() + ms;
	size_t got = 0;

	while (got < len) {
		long long left = end - ulp_ms();
		ssize_t n;

		if (left <= 0 || ulp_poll(fd, POLLIN, (int)left) <= 0)
			return -ETIMEDOUT;
		n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (errno == EAGAIN)
				continue;
			return -errno;
		}
		got += n;
	}
	return 0;
}

/* One MQTT packet the kernel sent, read at the broker end: total length or -errno. */
static inline int ulp_brk_pkt(int fd, uint8_t *buf, size_t cap, int ms)
{
	uint32_t rl = 0, mul = 1;
	size_t i = 1;
	int err;

	err = ulp_read_full(fd, buf, 1, ms);
	if (err)
		return err;
	do {
		if (i >= 5 || i >= cap)
			return -EPROTO;
		err = ulp_read_full(fd, buf + i, 1, ms);
		if (err)
			return err;
		rl += (buf[i] & 0x7f) * mul;
		mul <<= 7;
	} while (buf[i++] & 0x80);
	if (i + rl > cap)
		return -EMSGSIZE;
	err = ulp_read_full(fd, buf + i, rl, ms);
	return err ? err : (int)(i + rl);
}

/* Nothing arrives at fd for ms: 1 if quiet, 0 if bytes came. */
static inline int ulp_quiet(int fd, int ms)
{
	uint8_t b;

	if (ulp_poll(fd, POLLIN, ms) <= 0)
		return 1;
	return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

static inline int ulp_send(int fd, const void *buf, size_t len)
{
	return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -EIO;
}

/* An ack packet (PUBACK/PUBREC/PUBREL/PUBCOMP) from the broker. */
static inline int ulp_send_ack(int fd, int type, uint16_t pid)
{
	uint8_t b[4] = { (uint8_t)(type << 4 | (type == 6 ? 2 : 0)), 2, pid >> 8, pid & 0xff };

	return ulp_send(fd, b, sizeof(b));
}

/* One record from the mqttq socket within ms: length or -errno. */
static inline int ulp_rec(int fd, void *buf, size_t cap, int ms)
{
	long long end = ulp_ms() + ms;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, cap, MSG_DONTWAIT);
		if (n >= 0)
			return (int)n;
		if (errno != EAGAIN)
			return -errno;
		if (ulp_ms() >= end)
			return -ETIMEDOUT;
		ulp_poll(fd, POLLIN, (int)(end - ulp_ms()));
	}
}

/* A PUBLISH the broker sends (QoS, pid, DUP, topic, payload), 3.1.1 or v5 layout. */
static inline int ulp_brk_publish(int fd, int v5, int qos, int dup, uint16_t pid, const char *topic,
				  const char *payload)
{
	uint8_t b[512];
	size_t tl = strlen(topic), pl = strlen(payload), n = 0, rl;

	rl = 2 + tl + (qos ? 2 : 0) + (v5 ? 1 : 0) + pl;
	if (rl + 3 > sizeof(b))
		return -EINVAL;
	b[n++] = 0x30 | (dup ? 8 : 0) | qos << 1;
	if (rl > 127) {
		b[n++] = 0x80 | (rl & 0x7f);
		b[n++] = rl >> 7;
	} else {
		b[n++] = rl;
	}
	b[n++] = tl >> 8;
	b[n++] = tl & 0xff;
	memcpy(b + n, topic, tl);
	n += tl;
	if (qos) {
		b[n++] = pid >> 8;
		b[n++] = pid & 0xff;
	}
	if (v5)
		b[n++] = 0;
	memcpy(b + n, payload, pl);
	n += pl;
	return ulp_send(fd, b, n);
}

/* Global counter from /sys/kernel/mqttq, or -1. */
static inline long long ulp_stat(const char *name)
{
	char path[128], buf[64];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), ULP_SYSFS "%s", name);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f) || sscanf(buf, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* Waits (bounded) for a counter to reach want; returns its last value. */
static inline long long ulp_stat_wait(const char *name, long long want, int ms)
{
	long long end = ulp_ms() + ms, v;

	while ((v = ulp_stat(name)) != want && ulp_ms() < end)
		usleep(10000);
	return v;
}

static inline int ulp_stats(int fd, struct mqttq_sess_stats *st)
{
	socklen_t l = sizeof(*st);

	return getsockopt(fd, SOL_MQTTQ, MQTTQ_STATS, st, &l) ? -errno : 0;
}

/* Closes with RST so the socket (and its module reference) goes away at once. */
static inline void ulp_abort_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

#endif /* ULP_UTIL_H */
