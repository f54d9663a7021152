// SPDX-License-Identifier: GPL-2.0 OR MIT
/* libFuzzer harness of the library's receive path: a real client reads a fuzzed broker byte stream. */
/*
 * Each input is one connection. A loopback listener plays the broker: it
 * answers the client's CONNECT with a valid CONNACK, optionally lets the
 * client subscribe and publish QoS 1/2 (so acks in the stream find state
 * to act on), writes the input as the rest of the broker's stream and
 * closes. The client (userspace engine, no reconnect) must survive it
 * without ASan/UBSan/LSan findings, report the loss of the connection,
 * and complete each publish token at most once.
 *
 * Input: byte 0 = mode (bit 0: MQTT 5 else 3.1.1; bit 1: subscribe and
 * publish QoS 1 and 2 before the stream), then the stream.
 *
 * Built with -DGEN_SEEDS this file is instead the seed generator: it writes
 * valid streams (PUBLISH QoS 0/1/2, PUBREL, acks, PINGRESP, SUBACK) to DIR.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef GEN_SEEDS
#include "mqttq.h"
#endif

#define MODE_V5 0x1
#define MODE_TRAFFIC 0x2

#ifdef GEN_SEEDS

struct sbuf {
	uint8_t b[1024];
	size_t n;
};

static void put(struct sbuf *s, const void *p, size_t n)
{
	if (s->n + n > sizeof(s->b)) {
		fprintf(stderr, "gen_client_seeds: seed too big\n");
		exit(1);
	}
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void put1(struct sbuf *s, uint8_t v)
{
	put(s, &v, 1);
}

/* PUBLISH "a/b" with a short payload; pid only for QoS > 0. */
static void publish(struct sbuf *s, int v5, int qos, uint16_t pid, int dup)
{
	static const char payload[] = "hello";
	size_t rl = 2 + 3 + (qos ? 2 : 0) + (v5 ? 1 : 0) + sizeof(payload) - 1;

	put1(s, 0x30 | (dup ? 0x08 : 0) | (qos << 1));
	put1(s, rl);
	put(s, "\x00\x03" "a/b", 5);
	if (qos) {
		put1(s, pid >> 8);
		put1(s, pid & 0xff);
	}
	if (v5)
		put1(s, 0);
	put(s, payload, sizeof(payload) - 1);
}

static void ack(struct sbuf *s, uint8_t type_flags, uint16_t pid)
{
	put1(s, type_flags);
	put1(s, 2);
	put1(s, pid >> 8);
	put1(s, pid & 0xff);
}

static void suback(struct sbuf *s, int v5, uint16_t pid)
{
	put1(s, 0x90);
	put1(s, v5 ? 4 : 3);
	put1(s, pid >> 8);
	put1(s, pid & 0xff);
	if (v5)
		put1(s, 0);
	put1(s, 1);
}

static int write_seed(const char *dir, const char *name, const struct sbuf *s)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(s->b, 1, s->n, f) != s->n) {
		perror(path);
		if (f)
			fclose(f);
		return -EIO;
	}
	return fclose(f) ? -EIO : 0;
}

int main(int argc, char **argv)
{
	char name[64];
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (int mode = 0; mode < 4; mode++) {
		int v5 = mode & MODE_V5;
		struct sbuf s = { .n = 0 };

		/* Inbound QoS 0/1/2 flows, then the acks of our own publishes. */
		put1(&s, mode);
		publish(&s, v5, 0, 0, 0);
		publish(&s, v5, 1, 7, 0);
		publish(&s, v5, 2, 8, 0);
		ack(&s, 0x62, 8);		/* PUBREL */
		publish(&s, v5, 2, 9, 1);
		ack(&s, 0x62, 9);
		put(&s, "\xd0\x00", 2);		/* PINGRESP */
		snprintf(name, sizeof(name), "inbound-%d", mode);
		rc |= write_seed(argv[1], name, &s);

		s.n = 0;
		put1(&s, mode | MODE_TRAFFIC);
		for (uint16_t pid = 1; pid <= 3; pid++) {
			suback(&s, v5, pid);
			ack(&s, 0x40, pid);	/* PUBACK */
			ack(&s, 0x50, pid);	/* PUBREC */
			ack(&s, 0x70, pid);	/* PUBCOMP */
		}
		put(&s, "\xd0\x00", 2);
		publish(&s, v5, 1, 1, 0);
		snprintf(name, sizeof(name), "acks-%d", mode);
		rc |= write_seed(argv[1], name, &s);

		/* A truncated PUBLISH: the stream ends inside a packet. */
		s.n = 0;
		put1(&s, mode);
		publish(&s, v5, 1, 3, 0);
		s.n -= 2;
		snprintf(name, sizeof(name), "truncated-%d", mode);
		rc |= write_seed(argv[1], name, &s);
	}
	return rc ? 1 : 0;
}

#else /* the harness */

#define MAX_EVENTS 16
#define MAX_TOKENS 4
/* Wall-clock bound of one input; a healthy run takes a few ms. */
#define RUN_MS 2000

static int lfd = -1;
static uint16_t lport;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
	fprintf(stderr, "fuzz_client: %s\n", what);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	/* The environment would otherwise pick the module engine when it is loaded. */
	setenv("MQTTQ_OFFLOAD", "off", 1);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4) ||
	    getsockname(lfd, (struct sockaddr *)&a, &al))
		die("loopback listener");
	lport = ntohs(a.sin_port);
	return 0;
}

struct run {
	struct mqttq *q;
	int cfd;
	int connected, disconnected;
	int done[MAX_TOKENS];
};

/* One mqttq_wait() round; events are checked against what the client promised. */
static void pump(struct run *r, int timeout_ms)
{
	struct mqttq_event ev[MAX_EVENTS];
	int n = mqttq_wait(r->q, ev, MAX_EVENTS, timeout_ms);

	if (n == -EINVAL)
		die("mqttq_wait: -EINVAL");
	for (int i = 0; i < n; i++) {
		switch (ev[i].type) {
		case MQTTQ_EV_CONNECTED:
			r->connected++;
			break;
		case MQTTQ_EV_DISCONNECTED:
			r->disconnected++;
			break;
		case MQTTQ_EV_PUBLISHED:
			if (ev[i].token >= MAX_TOKENS)
				die("PUBLISHED with a token never issued");
			if (++r->done[ev[i].token] > 1)
				die("publish token completed twice");
			break;
		case MQTTQ_EV_MESSAGE:
			/* Touch every byte so ASan sees any out-of-bounds view. */
			if (ev[i].msg.topic_len && !ev[i].msg.topic)
				die("MESSAGE topic NULL with a length");
			for (size_t k = 0; k < ev[i].msg.topic_len; k++)
				(void)*(volatile const char *)&ev[i].msg.topic[k];
			for (size_t k = 0; k < ev[i].msg.payload_len; k++)
				(void)*(volatile const uint8_t *)
					&((const uint8_t *)ev[i].msg.payload)[k];
			if (ev[i].msg.qos > 2)
				die("MESSAGE with QoS > 2");
			break;
		default:
			break;
		}
	}
}

/* Drains what the client sent so it never blocks on a full socket. */
static ssize_t drain(int fd)
{
	uint8_t buf[4096];
	ssize_t t = 0, n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		t += n;
	return n == 0 && t == 0 ? -1 : t;
}

static int send_all(struct run *r, const uint8_t *p, size_t n, int64_t deadline)
{
	while (n && now_ms() < deadline) {
		ssize_t w = send(r->cfd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0) {
			p += w;
			n -= w;
			continue;
		}
		if (w < 0 && errno != EAGAIN)
			return -errno;	/* the client already closed: fine */
		drain(r->cfd);
		pump(r, 1);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t connack5[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
	static const uint8_t connack4[] = { 0x20, 0x02, 0x00, 0x00 };
	struct mqttq_opts o;
	struct run r = { .cfd = -1 };
	int64_t deadline = now_ms() + RUN_MS;
	uint8_t mode;
	int v5;

	if (size < 1)
		return -1;
	mode = data[0];
	v5 = mode & MODE_V5;
	data++;
	size--;

	mqttq_opts_init(&o);
	o.port = lport;
	o.version = v5 ? MQTTQ_V5 : MQTTQ_V311;
	o.client_id = "fuzz";
	o.no_reconnect = 1;
	o.keepalive_s = 0;
	o.offload = MQTTQ_OFFLOAD_OFF;
	o.connect_timeout_ms = RUN_MS;
	if (mqttq_new(&r.q, &o))
		die("mqttq_new");
	if (mqttq_connect(r.q))
		die("mqttq_connect");

	/* Accept, then wait for the CONNECT bytes before answering. */
	while (r.cfd < 0 && now_ms() < deadline) {
		pump(&r, 1);
		r.cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	}
	if (r.cfd < 0)
		die("client never connected to the loopback broker");
	while (now_ms() < deadline && drain(r.cfd) == 0)
		pump(&r, 1);
	send_all(&r, v5 ? connack5 : connack4, v5 ? sizeof(connack5) : sizeof(connack4),
		 deadline);
	while (!r.connected && !r.disconnected && now_ms() < deadline)
		pump(&r, 5);
	if (!r.connected)
		die("valid CONNACK did not connect the client");

	if (mode & MODE_TRAFFIC) {
		struct mqttq_sub sub = { .filter = "a/#", .qos = 2 };

		/* Tokens 1..3 (0 stays unused: a zeroed event must not look like ours). */
		if (mqttq_subscribe(r.q, &sub, 1, 0, 1) ||
		    mqttq_publish(r.q, "t/1", "x", 1, 1, 0, NULL, 2) ||
		    mqttq_publish(r.q, "t/2", "y", 1, 2, 0, NULL, 3))
			die("subscribe/publish on a connected client");
		pump(&r, 0);
		drain(r.cfd);
	}

	send_all(&r, data, size, deadline);
	shutdown(r.cfd, SHUT_WR);
	/* The stream is over: the client must notice within the bound. */
	while (!r.disconnected && now_ms() < deadline) {
		drain(r.cfd);
		pump(&r, 5);
	}
	if (!r.disconnected)
		die("no DISCONNECTED event after the broker closed the stream");
	if (mqttq_is_connected(r.q))
		die("still connected after DISCONNECTED");
	close(r.cfd);
	mqttq_destroy(r.q);
	return 0;
}

#endif
