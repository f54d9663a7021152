// SPDX-License-Identifier: GPL-2.0 OR MIT
/* TAP test of mqttq-faultproxy's faults on the wire, between a fake broker and a fake client. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *proxy_bin;
static char dir[256];
static int tno, failed;

static void ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++tno);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	failed |= !cond;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct proxy {
	pid_t pid;
	int port;
	int lfd;		/* the fake broker's listening socket */
	char log[300];
};

static int listen_any(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 8) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		return -errno;
	*port = ntohs(a.sin_port);
	return fd;
}

/* Starts the proxy in front of a fresh fake broker; extra args end with NULL. */
static int proxy_start(struct proxy *p, ...)
{
	char bport[32], pfile[300], *argv[40];
	int argc = 0, bp = 0;
	va_list ap;
	FILE *f;

	p->lfd = listen_any(&bp);
	if (p->lfd < 0)
		return p->lfd;
	snprintf(bport, sizeof(bport), "127.0.0.1:%d", bp);
	snprintf(pfile, sizeof(pfile), "%s/port.%d", dir, tno);
	snprintf(p->log, sizeof(p->log), "%s/log.%d", dir, tno);
	unlink(pfile);
	argv[argc++] = (char *)proxy_bin;
	argv[argc++] = "--connect";
	argv[argc++] = bport;
	argv[argc++] = "--port-file";
	argv[argc++] = pfile;
	argv[argc++] = "--log";
	argv[argc++] = p->log;
	argv[argc++] = "--max-time";
	argv[argc++] = "20";
	va_start(ap, p);
	for (char *a; (a = va_arg(ap, char *)) && argc < 38;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	p->pid = fork();
	if (p->pid < 0)
		return -errno;
	if (!p->pid) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		execv(proxy_bin, argv);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		f = fopen(pfile, "r");
		if (f) {
			int ok_ = fscanf(f, "%d", &p->port) == 1;

			fclose(f);
			if (ok_)
				return 0;
		}
		usleep(20000);
	}
	return -ETIMEDOUT;
}

static void proxy_stop(struct proxy *p)
{
	int st;

	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		waitpid(p->pid, &st, 0);
	}
	close(p->lfd);
}

/* Connects a client through the proxy and accepts it at the fake broker. */
static int pair(struct proxy *p, int *cfd, int *bfd)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(p->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct pollfd pf = { .fd = p->lfd, .events = POLLIN };

	*cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*cfd < 0 || connect(*cfd, (struct sockaddr *)&a, sizeof(a)))
		return -errno;
	if (poll(&pf, 1, 3000) != 1)
		return -ETIMEDOUT;
	*bfd = accept(p->lfd, NULL, NULL);
	return *bfd < 0 ? -errno : 0;
}

/*
 * Reads until EOF, error or timeout. Returns bytes read; *end is 0 for EOF,
 * -errno for an error, -ETIMEDOUT if the peer kept the connection open.
 */
static size_t drain(int fd, unsigned char *buf, size_t cap, int timeout_ms, int *end, long *t_first)
{
	long deadline = now_ms() + timeout_ms;
	size_t got = 0;

	*end = -ETIMEDOUT;
	if (t_first)
		*t_first = -1;
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		long left = deadline - now_ms();
		ssize_t r;

		if (left <= 0 || poll(&pf, 1, (int)left) != 1)
			return got;
		r = recv(fd, buf + got, cap - got, 0);
		if (r < 0) {
			*end = -errno;
			return got;
		}
		if (r == 0) {
			*end = 0;
			return got;
		}
		if (t_first && *t_first < 0)
			*t_first = now_ms();
		got += r;
		if (got == cap)
			return got;
	}
}

static bool log_has(const struct proxy *p, const char *needle)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(p->log, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* Three PUBLISH packets of 7, 8 and 9 bytes, and two PUBACKs of 4. */
static const unsigned char pubs[] = {
	0x30, 0x05, 0x00, 0x01, 't', 'a', 'a',
	0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 'b',
	0x34, 0x07, 0x00, 0x01, 't', 0x00, 0x02, 'c', 'c',
};
static const unsigned char acks[] = { 0x40, 0x02, 0x00, 0x01, 0x40, 0x02, 0x00, 0x02 };

static void close2(int a, int b)
{
	close(a);
	close(b);
}

int main(int argc, char **argv)
{
	unsigned char buf[4096];
	struct proxy p;
	int c, b, end, end2;
	size_t n, n2;
	long t0, t1;

	if (argc != 2) {
		fprintf(stderr, "usage: test-proxy PATH-TO-mqttq-faultproxy\n");
		return 2;
	}
	proxy_bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "%s/mqttq-test-proxy.XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	printf("TAP version 13\n1..13\n");

	/* Clean pass-through with the client's bytes split mid-header. */
	if (proxy_start(&p, NULL) || pair(&p, &c, &b)) {
		ok(0, "proxy starts and forwards");
	} else {
		send(c, pubs, 1, 0);
		usleep(20000);
		send(c, pubs + 1, 10, 0);
		usleep(20000);
		send(c, pubs + 11, sizeof(pubs) - 11, 0);
		send(b, acks, sizeof(acks), 0);
		shutdown(c, SHUT_WR);
		n = drain(b, buf, sizeof(buf), 2000, &end, NULL);
		ok(n == sizeof(pubs) && !memcmp(buf, pubs, n) && end == 0,
		   "clean: split client bytes arrive intact, then FIN (%zu bytes, end %d)", n, end);
		shutdown(b, SHUT_WR);
		n = drain(c, buf, sizeof(buf), 2000, &end, NULL);
		ok(n == sizeof(acks) && !memcmp(buf, acks, n) && end == 0,
		   "clean: broker bytes arrive intact, half-close passes through");
		close2(c, b);
	}
	proxy_stop(&p);

	/* cut after the 2nd PUBLISH c2s: exactly 15 bytes reach the broker. */
	if (!proxy_start(&p, "--fault", "cut:after=PUBLISH,dir=c2s,n=2", NULL) && !pair(&p, &c, &b)) {
		send(c, pubs, sizeof(pubs), 0);
		n = drain(b, buf, sizeof(buf), 2000, &end, NULL);
		n2 = drain(c, buf + 100, 100, 2000, &end2, NULL);
		ok(n == 15 && !memcmp(buf, pubs, 15) && end == 0 && n2 == 0 && end2 == 0,
		   "cut:after=PUBLISH,n=2 lets 2 packets through then closes both (%zu bytes)", n);
		ok(log_has(&p, "conn=1 dir=c2s type=PUBLISH n=2 off=15 fault=cut:after=PUBLISH"),
		   "the cut is logged with connection, direction, type, count and offset");
		close2(c, b);
	} else {
		ok(0, "cut after");
		ok(0, "cut logged");
	}
	proxy_stop(&p);

	/* cut before the 2nd PUBLISH: it is dropped. */
	if (!proxy_start(&p, "--fault", "cut:before=PUBLISH,dir=c2s,n=2", NULL) && !pair(&p, &c, &b)) {
		send(c, pubs, sizeof(pubs), 0);
		n = drain(b, buf, sizeof(buf), 2000, &end, NULL);
		ok(n == 7 && end == 0, "cut:before=PUBLISH,n=2 drops that packet (%zu bytes)", n);
		close2(c, b);
	} else {
		ok(0, "cut before");
	}
	proxy_stop(&p);

	/* cut after 10 bytes: mid-packet. */
	if (!proxy_start(&p, "--fault", "cut:bytes=10,dir=c2s", NULL) && !pair(&p, &c, &b)) {
		send(c, pubs, sizeof(pubs), 0);
		n = drain(b, buf, sizeof(buf), 2000, &end, NULL);
		ok(n == 10 && !memcmp(buf, pubs, 10) && end == 0,
		   "cut:bytes=10 cuts mid-packet at exactly 10 bytes (%zu)", n);
		close2(c, b);
	} else {
		ok(0, "cut bytes");
	}
	proxy_stop(&p);

	/* RST after the 1st PUBACK s2c. */
	if (!proxy_start(&p, "--fault", "rst:after=PUBACK,dir=s2c", NULL) && !pair(&p, &c, &b)) {
		send(b, acks, sizeof(acks), 0);
		n = drain(c, buf, sizeof(buf), 2000, &end, NULL);
		usleep(50000);
		n2 = drain(b, buf + 100, 100, 2000, &end2, NULL);
		ok(n <= 4 && end == -ECONNRESET && end2 == -ECONNRESET,
		   "rst: both peers see ECONNRESET, nothing past the packet (%zu, %d, %d)", n, end,
		   end2);
		close2(c, b);
	} else {
		ok(0, "rst");
	}
	proxy_stop(&p);

	/* conn=2: the first connection is clean, the second is cut. */
	if (!proxy_start(&p, "--fault", "cut:after=PUBLISH,dir=c2s,n=1,conn=2", NULL) &&
	    !pair(&p, &c, &b)) {
		send(c, pubs, sizeof(pubs), 0);
		shutdown(c, SHUT_WR);
		n = drain(b, buf, sizeof(buf), 2000, &end, NULL);
		close2(c, b);
		if (!pair(&p, &c, &b)) {
			send(c, pubs, sizeof(pubs), 0);
			n2 = drain(b, buf, sizeof(buf), 2000, &end2, NULL);
			close2(c, b);
		} else {
			n2 = 0;
			end2 = 1;
		}
		ok(n == sizeof(pubs) && end == 0 && n2 == 7 && end2 == 0,
		   "conn=2 spares connection 1 (%zu bytes) and cuts connection 2 (%zu)", n, n2);
	} else {
		ok(0, "conn=2");
	}
	proxy_stop(&p);

	/* stall 400 ms after the 1st PUBLISH. */
	if (!proxy_start(&p, "--fault", "stall:ms=400,dir=c2s,after=PUBLISH,n=1", NULL) &&
	    !pair(&p, &c, &b)) {
		t0 = now_ms();
		send(c, pubs, 15, 0);
		n = drain(b, buf, 7, 2000, &end, &t1);
		n2 = drain(b, buf + 7, 8, 5000, &end2, NULL);
		t1 = now_ms() - t0;
		ok(n == 7 && n2 == 8 && t1 >= 350 && t1 < 5000,
		   "stall: the packet after the trigger waits (%ld ms, wanted >= 350)", t1);
		close2(c, b);
	} else {
		ok(0, "stall");
	}
	proxy_stop(&p);

	/* delay every byte by 300 ms. */
	if (!proxy_start(&p, "--fault", "delay:ms=300", NULL) && !pair(&p, &c, &b)) {
		t0 = now_ms();
		send(b, acks, 4, 0);
		n = drain(c, buf, 4, 5000, &end, NULL);
		t1 = now_ms() - t0;
		ok(n == 4 && t1 >= 250 && t1 < 5000, "delay:ms=300 holds bytes (%ld ms)", t1);
		close2(c, b);
	} else {
		ok(0, "delay");
	}
	proxy_stop(&p);

	/* control socket: "cut" closes the live connection. */
	{
		char path[300], ans[128] = "";
		struct sockaddr_un un = { .sun_family = AF_UNIX };
		int s = -1;
		ssize_t r = -1;

		snprintf(path, sizeof(path), "%s/ctl", dir);
		if (!proxy_start(&p, "--control", path, NULL) && !pair(&p, &c, &b)) {
			memcpy(un.sun_path, path, strnlen(path, sizeof(un.sun_path) - 1));
			s = socket(AF_UNIX, SOCK_STREAM, 0);
			if (s >= 0 && !connect(s, (struct sockaddr *)&un, sizeof(un)) &&
			    write(s, "cut\n", 4) == 4) {
				struct pollfd pf = { .fd = s, .events = POLLIN };

				if (poll(&pf, 1, 2000) == 1)
					r = read(s, ans, sizeof(ans) - 1);
			}
			if (r > 0)
				ans[r] = '\0';
			n = drain(c, buf, sizeof(buf), 2000, &end, NULL);
			ok(!strcmp(ans, "ok 1 connections\n") && n == 0 && end == 0,
			   "control socket 'cut' answers and closes the live connection");
			if (s >= 0)
				close(s);
			close2(c, b);
		} else {
			ok(0, "control socket");
		}
		proxy_stop(&p);
	}

	/* Random faults: the seed is logged and the same seed draws the same fault. */
	{
		char first[2][256] = { "", "" };

		for (int k = 0; k < 2; k++) {
			char line[512];
			FILE *f;

			if (proxy_start(&p, "--seed", "7", "--rate", "1", "--max-faults", "1", NULL) ||
			    pair(&p, &c, &b))
				break;
			send(c, pubs, sizeof(pubs), 0);
			drain(b, buf, sizeof(buf), 1000, &end, NULL);
			close2(c, b);
			proxy_stop(&p);
			p.pid = 0;
			f = fopen(p.log, "r");
			while (f && fgets(line, sizeof(line), f))
				if (strstr(line, "fault=random") && !first[k][0])
					snprintf(first[k], sizeof(first[k]), "%.*s",
						 (int)strcspn(strstr(line, "conn="), "\n"),
						 strstr(line, "conn="));
			if (f)
				fclose(f);
			ok(k == 0 ? log_has(&p, "seed=7 rate=1") && first[0][0] :
			   !strcmp(first[0], first[1]) && first[1][0],
			   k == 0 ? "random: seed logged, a fault drawn at rate 1" :
			   "random: the same seed draws the same fault (%s)", first[1]);
		}
		if (!first[0][0] || !first[1][0])
			while (tno < 13)
				ok(0, "random faults");
	}
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			(void)0;
	}
	return failed;
}
