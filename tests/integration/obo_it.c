// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Offload stage: libmqttq's outbox on the offload engine, a scripted broker, and a client SIGKILLed and restarted (TAP). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mqttq.h"

#define WAIT_MS 10000
#define TOKEN 77

static int ntest, nfail;
static char outbox[256];

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void tap(int ok, const char *what, const char *why)
{
	ntest++;
	if (!ok)
		nfail++;
	printf("%sok %d - %s\n", ok ? "" : "not ", ntest, what);
	if (!ok && why)
		printf("# %s\n", why);
	fflush(stdout);
}

/* Exactly n bytes within ms, or -1. */
static int read_n(int fd, unsigned char *b, size_t n, int ms)
{
	long long end = now_ms() + ms;
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (now_ms() >= end || poll(&p, 1, (int)(end - now_ms())) <= 0)
			return -1;
		r = read(fd, b + got, n - got);
		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

/* One MQTT packet: its total length, or -1 (timeout, EOF, too big). */
static int read_pkt(int fd, unsigned char *b, size_t cap, int ms)
{
	unsigned int rl = 0, mul = 1;
	size_t i = 1;

	if (read_n(fd, b, 1, ms))
		return -1;
	do {
		if (i >= 5 || read_n(fd, b + i, 1, ms))
			return -1;
		rl += (b[i] & 0x7f) * mul;
		mul <<= 7;
	} while (b[i++] & 0x80);
	if (i + rl > cap || read_n(fd, b + i, rl, ms))
		return -1;
	return (int)(i + rl);
}

static long outbox_size(void)
{
	struct stat sb;

	return stat(outbox, &sb) ? -1 : (long)sb.st_size;
}

/*
 * The client: publishes one message (run 1), or only replays the outbox
 * (run 2) and exits 0 once that message's completion arrives.
 */
static int client(int port, int version, int qos, int restart)
{
	struct mqttq_opts o;
	struct mqttq_event ev[8];
	struct mqttq *q;
	long long end = now_ms() + WAIT_MS;

	setenv("MQTTQ_OFFLOAD", "on", 1);
	mqttq_opts_init(&o);
	o.port = (uint16_t)port;
	o.version = version;
	o.client_id = "obo-it";
	o.clean = 0;
	o.outbox_path = outbox;
	o.reconnect_min_ms = 20;
	if (mqttq_new(&q, &o))
		return 2;
	if (mqttq_connect(q))
		return 3;
	while (now_ms() < end) {
		int n = mqttq_wait(q, ev, 8, 100);

		for (int i = 0; i < n; i++) {
			if (ev[i].type == MQTTQ_EV_CONNECTED && !restart &&
			    (mqttq_engine(q) != MQTTQ_ENGINE_OFFLOAD ||
			     mqttq_publish(q, "obo/t", "x", 1, qos, 0, NULL, TOKEN)))
				return 4;
			if (ev[i].type == MQTTQ_EV_PUBLISHED && ev[i].token == TOKEN)
				return restart && !ev[i].err ? 0 : 5;
		}
	}
	return 6;
}

static int connack(int c, int version, int sp)
{
	unsigned char b[64];
	unsigned char a[5] = { 0x20, 2, (unsigned char)sp, 0, 0 };

	if (read_pkt(c, b, sizeof(b), WAIT_MS) < 0 || b[0] != 0x10)
		return -1;
	if (version == MQTTQ_V5)
		a[1] = 3;
	return write(c, a, 2 + a[1]) == 2 + a[1] ? 0 : -1;
}

static int ack(int c, int type, unsigned int pid)
{
	unsigned char a[4] = { (unsigned char)(type << 4 | (type == 6 ? 2 : 0)), 2, pid >> 8,
			       pid & 0xff };

	return write(c, a, 4) == 4 ? 0 : -1;
}

static unsigned int pub_pid(const unsigned char *b)
{
	unsigned int i = 1, tl;

	while (b[i] & 0x80)
		i++;
	i++;
	tl = b[i] << 8 | b[i + 1];
	return b[i + 2 + tl] << 8 | b[i + 3 + tl];
}

/*
 * One case: run 1 is killed at the step the case names, run 2 restarts on
 * the same outbox against a broker with (sp) or without a session.
 */
static void run_case(int l, int port, int version, int qos, int sp)
{
	unsigned char b[512];
	char what[160], why[200] = "";
	unsigned int pid = 0;
	long at_rec = 0, at_rel = 0;
	int c, n, st = -1, ok = 0;
	pid_t ch;

	snprintf(what, sizeof(what), "v%d QoS %d, killed %s, restart with session_present=%d",
		 version == MQTTQ_V5 ? 5 : 311, qos, qos == 2 ? "after PUBREL" : "before PUBACK",
		 sp);
	unlink(outbox);
	ch = fork();
	if (ch == 0)
		_exit(client(port, version, qos, 0));
	c = accept(l, NULL, NULL);
	if (c < 0 || connack(c, version, 0) ||
	    (n = read_pkt(c, b, sizeof(b), WAIT_MS)) < 0 || (b[0] & 0xf0) != 0x30) {
		snprintf(why, sizeof(why), "run 1: no PUBLISH");
		goto out_kill;
	}
	pid = pub_pid(b);
	if (qos == 2) {
		at_rec = outbox_size();
		ack(c, 5, pid);
		n = read_pkt(c, b, sizeof(b), WAIT_MS);
		at_rel = outbox_size();
		if (n != 4 || b[0] != 0x62 || (unsigned int)(b[2] << 8 | b[3]) != pid) {
			snprintf(why, sizeof(why), "run 1: no PUBREL for %u", pid);
			goto out_kill;
		}
		/* the REL record reached the file before the PUBREL left */
		if (at_rel <= at_rec) {
			snprintf(why, sizeof(why), "outbox %ld bytes at PUBREC, %ld at PUBREL", at_rec,
				 at_rel);
			goto out_kill;
		}
	}
	ok = 1;
out_kill:
	kill(ch, SIGKILL);
	waitpid(ch, NULL, 0);
	if (c >= 0)
		close(c);
	if (!ok) {
		tap(0, what, why);
		return;
	}
	ok = 0;
	ch = fork();
	if (ch == 0)
		_exit(client(port, version, qos, 1));
	c = accept(l, NULL, NULL);
	if (c < 0 || connack(c, version, sp)) {
		snprintf(why, sizeof(why), "run 2: no CONNECT");
		goto out_wait;
	}
	if (!sp) {
		/* no server session: QoS 1 starts over, QoS 2 past PUBREC is done */
		n = read_pkt(c, b, sizeof(b), qos == 2 ? 500 : WAIT_MS);
		if (qos == 2 ? n < 0 : n > 0 && b[0] == 0x32 && pub_pid(b) == pid && !ack(c, 4, pid))
			ok = 1;
		else
			snprintf(why, sizeof(why), "run 2: got %d bytes, first 0x%02x", n, n > 0 ? b[0] : 0);
		goto out_wait;
	}
	n = read_pkt(c, b, sizeof(b), WAIT_MS);
	if (qos == 2 && n == 4 && b[0] == 0x62 && (unsigned int)(b[2] << 8 | b[3]) == pid) {
		ack(c, 7, pid);
		ok = 1;
	} else if (qos == 1 && n > 0 && b[0] == 0x3a && pub_pid(b) == pid) {
		ack(c, 4, pid);
		ok = 1;
	} else {
		snprintf(why, sizeof(why), "run 2: wanted %s for %u, got %d bytes, first 0x%02x",
			 qos == 2 ? "PUBREL" : "PUBLISH with DUP", pid, n, n > 0 ? b[0] : 0);
	}
	/* and nothing else: a QoS 2 message past PUBREL is never sent again */
	if (ok && read_pkt(c, b, sizeof(b), 300) > 0 && (b[0] & 0xf0) == 0x30) {
		ok = 0;
		snprintf(why, sizeof(why), "run 2: a PUBLISH after the resumed flow");
	}
out_wait:
	if (waitpid(ch, &st, 0) != ch || !WIFEXITED(st) || WEXITSTATUS(st)) {
		if (ok)
			snprintf(why, sizeof(why), "run 2: client status %d, no completion for the "
				 "restored message", st);
		ok = 0;
	}
	if (c >= 0)
		close(c);
	tap(ok, what, why);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int l, one = 1;

	snprintf(outbox, sizeof(outbox), "%s/obo-it.outbox", argc > 1 ? argv[1] : "/tmp");
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&a, &al)) {
		printf("Bail out! listen: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	for (int v = 0; v < 2; v++) {
		int ver = v ? MQTTQ_V5 : MQTTQ_V311;

		run_case(l, ntohs(a.sin_port), ver, 1, 1);
		run_case(l, ntohs(a.sin_port), ver, 2, 1);
		run_case(l, ntohs(a.sin_port), ver, 2, 0);
	}
	unlink(outbox);
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
