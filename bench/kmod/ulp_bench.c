// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Benchmark of the mqttq ULP: kernel CPU per acknowledged message and reader wakeups. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mqttq_uapi.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

struct opts {
	long n;
	int qos, window, coalesce, version, payload;
};

/* The peer: acknowledges every PUBLISH/PUBREL as fast as it can, in batches. */
static void *peer(void *arg)
{
	int fd = *(int *)arg;
	static uint8_t in[1 << 16], out[1 << 16];
	size_t have = 0;

	for (;;) {
		ssize_t n = recv(fd, in + have, sizeof(in) - have, 0);
		size_t pos = 0, o = 0;

		if (n <= 0)
			return NULL;
		have += n;
		for (;;) {
			uint32_t rl = 0, mul = 1;
			size_t i = pos + 1;
			uint8_t t;

			if (have - pos < 2)
				break;
			while (i < have && (in[i] & 0x80)) {
				rl += (in[i] & 0x7f) * mul;
				mul <<= 7;
				i++;
			}
			if (i >= have)
				break;
			rl += in[i] * mul;
			i++;
			if (have - i < rl)
				break;
			t = in[pos] >> 4;
			if (t == 3 && (in[pos] & 6)) {
				uint16_t tl = in[i] << 8 | in[i + 1];
				uint8_t q = (in[pos] >> 1) & 3;

				out[o++] = q == 1 ? 0x40 : 0x50;
				out[o++] = 2;
				out[o++] = in[i + 2 + tl];
				out[o++] = in[i + 3 + tl];
			} else if (t == 6) {
				out[o++] = 0x70;
				out[o++] = 2;
				out[o++] = in[i];
				out[o++] = in[i + 1];
			}
			pos = i + rl;
			if (o > sizeof(out) - 8) {
				send(fd, out, o, 0);
				o = 0;
			}
		}
		if (o)
			send(fd, out, o, 0);
		memmove(in, in + pos, have - pos);
		have -= pos;
	}
}

/* Kernel (system + irq + softirq) ticks of the whole machine from /proc/stat. */
static long long kernel_ticks(void)
{
	long long user, nice, sys, idle, iowait, irq, softirq;
	FILE *f = fopen("/proc/stat", "re");
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld", &user, &nice, &sys, &idle, &iowait,
		   &irq, &softirq);
	fclose(f);
	return n == 7 ? sys + irq + softirq : -1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int pair(int *cli, int *brk)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int l, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		return -1;
	*cli = socket(AF_INET, SOCK_STREAM, 0);
	if (*cli < 0 || connect(*cli, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	*brk = accept(l, NULL, NULL);
	close(l);
	if (*brk < 0)
		return -1;
	setsockopt(*brk, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

static int run(const struct opts *o)
{
	struct mqttq_session s = { .size = sizeof(s) };
	struct mqttq_sess_stats st;
	socklen_t sl = sizeof(st);
	struct rusage ru0, ru1;
	long long k0, k1, sent = 0, done = 0, polls = 0, recs = 0;
	static uint8_t payload[4096], rec[512];
	union {
		char buf[CMSG_SPACE(sizeof(struct mqttq_pub))];
		struct cmsghdr align;
	} u;
	struct mqttq_pub req = { .qos = o->qos, .topic_len = 5 };
	struct iovec iov[2] = { { (void *)"bench", 5 }, { payload, o->payload } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	double t0, t1, sys_us;
	pthread_t th;
	int cli, brk;

	if (pair(&cli, &brk) || setsockopt(cli, SOL_TCP, TCP_ULP, "mqttq", 5)) {
		perror("mqttq attach");
		return 1;
	}
	s.version = o->version;
	s.ack_policy = MQTTQ_ACK_ON_RECEIPT;
	s.completion = o->coalesce ? MQTTQ_COMPLETE_COALESCE : MQTTQ_COMPLETE_EACH;
	s.window = o->window;
	s.recv_max = 64;
	s.retry_ms = 0;
	s.linger_s = 0;
	s.max_bytes = 16 << 20;
	s.max_qos = s.retain_available = s.wildcard_sub_available = MQTTQ_DEFAULT8;
	s.sub_id_available = s.shared_sub_available = MQTTQ_DEFAULT8;
	if (setsockopt(cli, SOL_MQTTQ, MQTTQ_SESSION, &s, sizeof(s))) {
		perror("MQTTQ_SESSION");
		return 1;
	}
	pthread_create(&th, NULL, peer, &brk);
	c->cmsg_level = SOL_MQTTQ;
	c->cmsg_type = MQTTQ_CMSG_PUBLISH;
	c->cmsg_len = CMSG_LEN(sizeof(req));

	k0 = kernel_ticks();
	getrusage(RUSAGE_THREAD, &ru0);
	t0 = now_s();
	while (done < o->n) {
		struct pollfd p = { .fd = cli, .events = POLLIN };
		ssize_t n;

		while (sent < o->n) {
			req.token = sent;
			memcpy(CMSG_DATA(c), &req, sizeof(req));
			if (sendmsg(cli, &m, MSG_DONTWAIT) < 0) {
				if (errno != EAGAIN) {
					perror("publish");
					return 1;
				}
				break;
			}
			sent++;
		}
		if (sent < o->n)
			p.events |= POLLOUT;
		polls++;
		if (poll(&p, 1, 5000) <= 0) {
			fprintf(stderr, "stalled at %lld/%ld\n", done, o->n);
			return 1;
		}
		while ((n = recv(cli, rec, sizeof(rec), MSG_DONTWAIT)) > 0) {
			const struct mqttq_rec *r = (const struct mqttq_rec *)rec;

			recs++;
			if (r->type == MQTTQ_REC_PUB_DONE || r->type == MQTTQ_REC_PUB_DONE_RUN)
				done += r->count ? r->count : 1;
			else if (r->type == MQTTQ_REC_CLOSED) {
				fprintf(stderr, "session closed: %d\n", r->err);
				return 1;
			}
		}
	}
	t1 = now_s();
	getrusage(RUSAGE_THREAD, &ru1);
	k1 = kernel_ticks();
	getsockopt(cli, SOL_MQTTQ, MQTTQ_STATS, &st, &sl);
	sys_us = (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e6 +
		 (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
	printf("v%d qos%d %s window=%d n=%ld payload=%d: %.0f msg/s, kernel cpu %.1f us/msg "
	       "(all cpus, incl. peer TCP), publisher thread sys %.1f us/msg, "
	       "%.1f poll wakeups/1000 msgs, %.1f kernel wakeups/1000 msgs, "
	       "%.1f records/1000 msgs\n",
	       o->version == MQTTQ_V5 ? 5 : 3, o->qos, o->coalesce ? "coalesced" : "per-message",
	       o->window, o->n, o->payload, o->n / (t1 - t0),
	       (k1 - k0) * (1e6 / sysconf(_SC_CLK_TCK)) / o->n, sys_us / o->n,
	       polls * 1000.0 / o->n, st.wakeups * 1000.0 / o->n, recs * 1000.0 / o->n);
	close(cli);
	pthread_join(th, NULL);
	close(brk);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .n = 20000, .qos = 2, .window = 256, .coalesce = 1, .version = 4,
			  .payload = 64 };
	int c;

	while ((c = getopt(argc, argv, "n:q:w:ev5p:")) != -1) {
		switch (c) {
		case 'n': o.n = atol(optarg); break;
		case 'q': o.qos = atoi(optarg); break;
		case 'w': o.window = atoi(optarg); break;
		case 'e': o.coalesce = 0; break;
		case '5': o.version = 5; break;
		case 'p': o.payload = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-n msgs] [-q 1|2] [-w window] [-e per-message] "
					"[-5] [-p payload]\n", argv[0]);
			return 2;
		}
	}
	if (o.n <= 0 || o.qos < 1 || o.qos > 2 || o.window < 1 || o.window > 65535 ||
	    o.payload < 0 || o.payload > 4096) {
		fprintf(stderr, "bad option value\n");
		return 2;
	}
	return run(&o);
}
