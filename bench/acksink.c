// SPDX-License-Identifier: GPL-2.0 OR MIT
/* bench-acksink: a minimal MQTT responder that CONNACKs and acknowledges everything, to measure clients past the broker's limit. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define MAX_CONN 256
#define IN_CAP (1 << 20)
#define OUT_CAP (1 << 20)

struct conn {
	int fd;
	int version;
	uint8_t *in, *out;
	size_t in_len, out_len;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void put(struct conn *c, const uint8_t *b, size_t n)
{
	if (c->out_len + n <= OUT_CAP) {
		memcpy(c->out + c->out_len, b, n);
		c->out_len += n;
	}
}

static int flush_out(struct conn *c)
{
	size_t off = 0;
	ssize_t w;

	while (off < c->out_len) {
		w = write(c->fd, c->out + off, c->out_len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)w;
	}
	c->out_len = 0;
	return 0;
}

/* One packet: type byte, body of len bytes. Returns -1 to close the connection. */
static int packet(struct conn *c, uint8_t h, const uint8_t *p, size_t len)
{
	uint8_t r[8];
	size_t off, tl;

	switch (h >> 4) {
	case 1: /* CONNECT */
		if (len < 7)
			return -1;
		c->version = p[6];
		if (c->version == 5)
			put(c, (const uint8_t[]){ 0x20, 3, 0, 0, 0 }, 5);
		else
			put(c, (const uint8_t[]){ 0x20, 2, 0, 0 }, 4);
		return 0;
	case 3: { /* PUBLISH */
		int qos = (h >> 1) & 3;

		if (!qos)
			return 0;
		if (len < 2)
			return -1;
		tl = (size_t)p[0] << 8 | p[1];
		if (len < 4 + tl)
			return -1;
		r[0] = qos == 1 ? 0x40 : 0x50;
		r[1] = 2;
		r[2] = p[2 + tl];
		r[3] = p[3 + tl];
		put(c, r, 4);
		return 0;
	}
	case 6: /* PUBREL */
		if (len < 2)
			return -1;
		put(c, (const uint8_t[]){ 0x70, 2, p[0], p[1] }, 4);
		return 0;
	case 8: { /* SUBSCRIBE: grant QoS 0 to every filter */
		uint8_t ack[80];
		size_t n = 0, na = 0;

		if (len < 2)
			return -1;
		off = 2;
		if (c->version == 5) {
			while (off < len && (p[off] & 0x80))
				off++;
			off++;
		}
		while (off + 2 <= len && n < 64) {
			tl = (size_t)p[off] << 8 | p[off + 1];
			off += 2 + tl + 1;
			n++;
		}
		ack[na++] = 0x90;
		ack[na++] = (uint8_t)(2 + (c->version == 5) + n);
		ack[na++] = p[0];
		ack[na++] = p[1];
		if (c->version == 5)
			ack[na++] = 0;
		for (size_t i = 0; i < n; i++)
			ack[na++] = 0;
		put(c, ack, na);
		return 0;
	}
	case 12: /* PINGREQ */
		put(c, (const uint8_t[]){ 0xd0, 0 }, 2);
		return 0;
	case 14: /* DISCONNECT */
		return -1;
	}
	return 0;
}

static int consume(struct conn *c)
{
	size_t off = 0;

	while (c->in_len - off >= 2) {
		size_t len = 0, i = 1;
		unsigned int shift = 0;

		for (;;) {
			if (off + i >= c->in_len)
				goto partial;
			len |= (size_t)(c->in[off + i] & 0x7f) << shift;
			if (!(c->in[off + i++] & 0x80))
				break;
			shift += 7;
			if (shift > 21)
				return -1;
		}
		if (len > IN_CAP - 8)
			return -1;
		if (c->in_len - off < i + len)
			break;
		if (packet(c, c->in[off], c->in + off + i, len))
			return -1;
		off += i + len;
	}
partial:
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}

int main(int argc, char **argv)
{
	static struct conn conns[MAX_CONN];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct epoll_event ev, evs[64];
	socklen_t al = sizeof(a);
	int lfd, ep, one = 1;
	FILE *f;

	if (argc != 2) {
		fprintf(stderr, "usage: bench-acksink PORTFILE\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 128) ||
	    getsockname(lfd, (struct sockaddr *)&a, &al)) {
		perror("bench-acksink: listen");
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = MAX_CONN };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev)) {
		perror("bench-acksink: epoll");
		return 1;
	}
	f = fopen(argv[1], "w");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	fprintf(f, "%d\n", ntohs(a.sin_port));
	fclose(f);
	while (!stop) {
		int n = epoll_wait(ep, evs, 64, 500);

		for (int k = 0; k < n; k++) {
			uint32_t id = evs[k].data.u32;
			struct conn *c;
			ssize_t r;

			if (id == MAX_CONN) {
				int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
				unsigned int i;

				if (fd < 0)
					continue;
				for (i = 0; i < MAX_CONN && conns[i].in; i++)
					;
				if (i == MAX_CONN) {
					close(fd);
					continue;
				}
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				conns[i] = (struct conn){ .fd = fd, .in = malloc(IN_CAP),
							  .out = malloc(OUT_CAP) };
				ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = i };
				if (!conns[i].in || !conns[i].out ||
				    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
					free(conns[i].in);
					free(conns[i].out);
					conns[i].in = NULL;
					close(fd);
				}
				continue;
			}
			c = &conns[id];
			r = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
			if (r > 0) {
				c->in_len += (size_t)r;
				if (!consume(c) && !flush_out(c))
					continue;
			} else if (r < 0 && errno == EINTR) {
				continue;
			}
			flush_out(c);
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			free(c->in);
			free(c->out);
			c->in = NULL;
		}
	}
	return 0;
}
