// SPDX-License-Identifier: GPL-2.0 OR MIT
/* mqttq-faultproxy: poll-based MQTT-aware TCP proxy injecting cuts, resets, stalls, delays. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mqtt_frame.h"

#define MAX_RULES 64
#define MAX_CTL 8
#define MAX_CONNS 1000
#define HIGH_WATER (1u << 20)
#define NO_CUT UINT64_MAX

enum { C2S, S2C };
static const char *const dir_name[2] = { "c2s", "s2c" };

enum rule_kind { R_CUT, R_STALL, R_DELAY };
enum rule_when { W_START, W_AFTER, W_BEFORE, W_BYTES };

struct rule {
	enum rule_kind kind;
	enum rule_when when;
	int ptype;		/* packet type for W_AFTER/W_BEFORE */
	int dir;		/* C2S, S2C or -1 for either */
	unsigned int n;		/* fire on the n-th matching packet of a connection */
	unsigned int conn;	/* 0: every connection */
	bool rst;
	unsigned int ms;
	uint64_t bytes;
	char spec[160];
};

struct seg {
	uint64_t end;		/* stream offset one past the segment */
	int64_t release;	/* ms on the proxy clock when it may be written */
};

struct half {
	uint8_t *buf;
	size_t cap, head, tail;	/* buf[head..tail) is unwritten, starting at out_off */
	uint64_t in_off;	/* bytes read from the source */
	uint64_t out_off;	/* bytes written to the destination */
	struct seg *segs;
	size_t nseg, seg_head, seg_cap;
	int64_t last_release;
	int64_t stall_until;
	unsigned int delay_ms;
	uint64_t cut_at;
	bool cut_rst;
	char cut_why[200];
	bool eof, shut;
	struct mqf f;
	unsigned int count[16];
	bool rand_cut_after;	/* random fault chose to cut at the end of this packet */
	bool rand_rst;
};

struct conn {
	unsigned int id;
	int fd[2];		/* [0] client, [1] broker */
	struct half h[2];	/* [C2S] reads fd[0] writes fd[1]; [S2C] the reverse */
	bool dead;
	struct conn *next;
};

static struct {
	struct rule rules[MAX_RULES];
	int nrules;
	FILE *log;
	struct timespec t0;
	uint64_t seed, rng;
	double rate;
	unsigned int max_faults, faults;
	unsigned int nconn;
	unsigned int default_delay;
	struct conn *conns;
	struct sockaddr_storage broker;
	socklen_t broker_len;
	bool quiet;
	bool trace;
} g;

static volatile sig_atomic_t stop_sig;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)(ts.tv_sec - g.t0.tv_sec) * 1000 + (ts.tv_nsec - g.t0.tv_nsec) / 1000000;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;
	int64_t t = now_ms();

	fprintf(g.log, "%" PRId64 ".%03" PRId64 " ", t / 1000, t % 1000);
	va_start(ap, fmt);
	vfprintf(g.log, fmt, ap);
	va_end(ap);
	fputc('\n', g.log);
	fflush(g.log);
}

/* xorshift64*: small, seedable, and the same on every machine, so a seed replays. */
static uint64_t rnd(void)
{
	g.rng ^= g.rng >> 12;
	g.rng ^= g.rng << 25;
	g.rng ^= g.rng >> 27;
	return g.rng * 2685821657736338717ull;
}

static double rnd01(void)
{
	return (double)(rnd() >> 11) / (double)(1ull << 53);
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Parses KIND[:k=v,...]; see tests/fault/README.md for the grammar. */
static int parse_rule(const char *spec, struct rule *r, char *err, size_t errlen)
{
	char tmp[160], *kind, *args, *tok, *save;
	uint64_t v;

	memset(r, 0, sizeof(*r));
	r->dir = -1;
	r->n = 1;
	r->conn = 1;
	r->ptype = -1;
	if (strlen(spec) >= sizeof(tmp)) {
		snprintf(err, errlen, "fault spec too long");
		return -EINVAL;
	}
	snprintf(r->spec, sizeof(r->spec), "%s", spec);
	snprintf(tmp, sizeof(tmp), "%s", spec);
	kind = tmp;
	args = strchr(tmp, ':');
	if (args)
		*args++ = '\0';
	if (!strcmp(kind, "cut")) {
		r->kind = R_CUT;
	} else if (!strcmp(kind, "rst")) {
		r->kind = R_CUT;
		r->rst = true;
	} else if (!strcmp(kind, "stall")) {
		r->kind = R_STALL;
	} else if (!strcmp(kind, "delay")) {
		r->kind = R_DELAY;
	} else {
		snprintf(err, errlen, "unknown fault kind '%.40s' (cut, rst, stall, delay)", kind);
		return -EINVAL;
	}
	r->when = W_START;
	for (tok = args ? strtok_r(args, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
		char *val = strchr(tok, '=');

		if (val)
			*val++ = '\0';
		if (!strcmp(tok, "rst") && !val) {
			r->rst = true;
			continue;
		}
		if (!val) {
			snprintf(err, errlen, "'%.40s' needs a value", tok);
			return -EINVAL;
		}
		if (!strcmp(tok, "after") || !strcmp(tok, "before")) {
			r->ptype = mqf_type_parse(val);
			if (r->ptype < 0) {
				snprintf(err, errlen, "unknown packet type '%.40s'", val);
				return -EINVAL;
			}
			r->when = tok[0] == 'a' ? W_AFTER : W_BEFORE;
		} else if (!strcmp(tok, "bytes")) {
			if (parse_uint(val, UINT64_MAX - 1, &r->bytes)) {
				snprintf(err, errlen, "bad byte count '%.40s'", val);
				return -EINVAL;
			}
			r->when = W_BYTES;
		} else if (!strcmp(tok, "dir")) {
			if (!strcmp(val, "c2s"))
				r->dir = C2S;
			else if (!strcmp(val, "s2c"))
				r->dir = S2C;
			else if (!strcmp(val, "any"))
				r->dir = -1;
			else {
				snprintf(err, errlen, "dir must be c2s, s2c or any, not '%.40s'", val);
				return -EINVAL;
			}
		} else if (!strcmp(tok, "n")) {
			if (parse_uint(val, UINT32_MAX, &v) || !v) {
				snprintf(err, errlen, "n must be a positive integer, not '%.40s'", val);
				return -EINVAL;
			}
			r->n = v;
		} else if (!strcmp(tok, "conn")) {
			if (!strcmp(val, "all")) {
				r->conn = 0;
			} else if (parse_uint(val, UINT32_MAX, &v) || !v) {
				snprintf(err, errlen, "conn must be a positive integer or 'all', not '%.40s'", val);
				return -EINVAL;
			} else {
				r->conn = v;
			}
		} else if (!strcmp(tok, "ms")) {
			if (parse_uint(val, 3600000, &v)) {
				snprintf(err, errlen, "ms must be 0..3600000, not '%.40s'", val);
				return -EINVAL;
			}
			r->ms = v;
		} else {
			snprintf(err, errlen, "unknown fault parameter '%.40s'", tok);
			return -EINVAL;
		}
	}
	if (r->kind == R_CUT && r->when == W_START) {
		snprintf(err, errlen, "cut needs after=TYPE, before=TYPE or bytes=N");
		return -EINVAL;
	}
	if (r->kind == R_CUT && r->when == W_BYTES && r->dir < 0)
		r->dir = C2S;
	if ((r->kind == R_STALL || r->kind == R_DELAY) && !r->ms) {
		snprintf(err, errlen, "%.8s needs ms=D", kind);
		return -EINVAL;
	}
	if (r->kind == R_DELAY && r->when != W_START) {
		snprintf(err, errlen, "delay applies to whole connections; use stall for a trigger");
		return -EINVAL;
	}
	if (r->kind == R_DELAY && !args)
		r->conn = 0;
	return 0;
}

static int add_rule(const char *spec, char *err, size_t errlen)
{
	struct rule r;
	int ret;

	if (g.nrules == MAX_RULES) {
		snprintf(err, errlen, "too many fault rules (max %d)", MAX_RULES);
		return -ENOSPC;
	}
	ret = parse_rule(spec, &r, err, errlen);
	if (ret)
		return ret;
	g.rules[g.nrules++] = r;
	return 0;
}

static bool rule_matches(const struct rule *r, const struct conn *c, int dir)
{
	return (!r->conn || r->conn == c->id) && (r->dir < 0 || r->dir == dir);
}

static void set_cut(struct conn *c, int dir, uint64_t at, bool rst, const char *ptype,
		    unsigned int n, const char *why)
{
	struct half *h = &c->h[dir];

	if (at >= h->cut_at)
		return;
	h->cut_at = at;
	h->cut_rst = rst;
	snprintf(h->cut_why, sizeof(h->cut_why), "dir=%s type=%s n=%u off=%" PRIu64 " fault=%s%s",
		 dir_name[dir], ptype, n, at, why, rst ? " rst" : "");
}

static void stall_from(struct half *h, int64_t until)
{
	if (until > h->last_release)
		h->last_release = until;
}

static void random_fault(struct conn *c, int dir, const struct mqf_ev *ev)
{
	struct half *h = &c->h[dir];
	const char *tn = mqf_type_name(ev->type);
	unsigned int n = h->count[ev->type];
	char why[64];

	if (g.rate <= 0 || (g.max_faults && g.faults >= g.max_faults) || rnd01() >= g.rate)
		return;
	switch (rnd() % 5) {
	case 0:
		set_cut(c, dir, ev->start, false, tn, n, "random cut before");
		break;
	case 1:
		h->rand_cut_after = true;
		h->rand_rst = false;
		break;
	case 2:
		h->rand_cut_after = true;
		h->rand_rst = true;
		break;
	case 3:
		/* Mid-packet: 1..4 bytes in, which splits the fixed header or the variable one. */
		set_cut(c, dir, ev->start + 1 + rnd() % 4, false, tn, n, "random cut mid-packet");
		break;
	default: {
		unsigned int ms = 10 + rnd() % 290;

		snprintf(why, sizeof(why), "random stall %u ms", ms);
		stall_from(h, now_ms() + ms);
		logf_("conn=%u dir=%s type=%s n=%u off=%" PRIu64 " fault=%s", c->id, dir_name[dir],
		      tn, n, ev->start, why);
		g.faults++;
		break;
	}
	}
}

static void on_event(struct conn *c, int dir, const struct mqf_ev *ev)
{
	struct half *h = &c->h[dir];
	const char *tn = mqf_type_name(ev->type);

	if (ev->kind == MQF_ERROR) {
		logf_("conn=%u dir=%s off=%" PRIu64 " framing lost: remaining length over 4 bytes",
		      c->id, dir_name[dir], ev->start);
		return;
	}
	if (ev->kind == MQF_START) {
		unsigned int n = ++h->count[ev->type];

		for (int i = 0; i < g.nrules; i++) {
			const struct rule *r = &g.rules[i];

			if (r->kind != R_CUT || r->when != W_BEFORE || r->ptype != ev->type ||
			    r->n != n || !rule_matches(r, c, dir))
				continue;
			set_cut(c, dir, ev->start, r->rst, tn, n, r->spec);
		}
		random_fault(c, dir, ev);
		return;
	}
	/* MQF_END */
	if (g.trace)
		logf_("conn=%u dir=%s type=%s n=%u off=%" PRIu64 " len=%" PRIu64 " flags=0x%x trace%s",
		      c->id, dir_name[dir], tn, h->count[ev->type], ev->start, ev->end - ev->start,
		      ev->hdr & 0x0f, ev->start >= h->cut_at ? " (past the cut: dropped)" : "");
	for (int i = 0; i < g.nrules; i++) {
		const struct rule *r = &g.rules[i];
		unsigned int n = h->count[ev->type];

		if (r->when != W_AFTER || r->ptype != ev->type || r->n != n ||
		    !rule_matches(r, c, dir))
			continue;
		if (r->kind == R_CUT) {
			set_cut(c, dir, ev->end, r->rst, tn, n, r->spec);
		} else if (r->kind == R_STALL) {
			stall_from(h, now_ms() + r->ms);
			logf_("conn=%u dir=%s type=%s n=%u off=%" PRIu64 " fault=%s", c->id,
			      dir_name[dir], tn, n, ev->end, r->spec);
			g.faults++;
		}
	}
	if (h->rand_cut_after) {
		h->rand_cut_after = false;
		set_cut(c, dir, ev->end, h->rand_rst, tn, h->count[ev->type],
			h->rand_rst ? "random reset after" : "random cut after");
	}
}

static int append(struct half *h, const uint8_t *p, size_t n)
{
	int64_t rel;
	uint64_t off = h->out_off + (h->tail - h->head);

	/* Bytes past a pending cut will never be written. */
	if (h->cut_at <= off)
		return 0;
	if (h->cut_at - off < n)
		n = h->cut_at - off;
	if (!n)
		return 0;
	if (h->head && h->head == h->tail) {
		h->head = h->tail = 0;
	} else if (h->head > h->cap / 2) {
		memmove(h->buf, h->buf + h->head, h->tail - h->head);
		h->tail -= h->head;
		h->head = 0;
	}
	if (h->tail + n > h->cap) {
		size_t cap = h->cap ? h->cap : 65536;
		uint8_t *nb;

		while (cap < h->tail + n)
			cap *= 2;
		nb = realloc(h->buf, cap);
		if (!nb)
			return -ENOMEM;
		h->buf = nb;
		h->cap = cap;
	}
	memcpy(h->buf + h->tail, p, n);
	h->tail += n;
	off += n;

	rel = now_ms() + h->delay_ms;
	if (rel < h->last_release)
		rel = h->last_release;
	h->last_release = rel;
	if (h->nseg > h->seg_head && h->segs[h->nseg - 1].release == rel) {
		h->segs[h->nseg - 1].end = off;
		return 0;
	}
	if (h->seg_head == h->nseg) {
		h->seg_head = h->nseg = 0;
	} else if (h->nseg == h->seg_cap && h->seg_head) {
		memmove(h->segs, h->segs + h->seg_head, (h->nseg - h->seg_head) * sizeof(*h->segs));
		h->nseg -= h->seg_head;
		h->seg_head = 0;
	}
	if (h->nseg == h->seg_cap) {
		size_t cap = h->seg_cap ? h->seg_cap * 2 : 64;
		struct seg *ns = realloc(h->segs, cap * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		h->segs = ns;
		h->seg_cap = cap;
	}
	h->segs[h->nseg].end = off;
	h->segs[h->nseg].release = rel;
	h->nseg++;
	return 0;
}

static int feed(struct conn *c, int dir, const uint8_t *p, size_t n)
{
	struct half *h = &c->h[dir];
	size_t pos = 0;
	int ret;

	while (pos < n) {
		struct mqf_ev ev;
		size_t used = mqf_next(&h->f, p + pos, n - pos, &ev);

		ret = append(h, p + pos, used);
		if (ret)
			return ret;
		pos += used;
		h->in_off += used;
		if (ev.kind != MQF_NONE)
			on_event(c, dir, &ev);
	}
	return 0;
}

/* How many bytes of this half may be written now. */
static size_t writable(struct half *h, int64_t now, int64_t *wake)
{
	uint64_t limit = h->out_off + (h->tail - h->head);

	if (h->cut_at < limit)
		limit = h->cut_at;
	if (now < h->stall_until) {
		if (h->stall_until < *wake)
			*wake = h->stall_until;
		return 0;
	}
	for (size_t i = h->seg_head; i < h->nseg; i++) {
		if (h->segs[i].release > now) {
			uint64_t start = i > h->seg_head ? h->segs[i - 1].end : h->out_off;

			if (start < limit)
				limit = start;
			if (h->segs[i].release < *wake)
				*wake = h->segs[i].release;
			break;
		}
		if (h->segs[i].end >= limit)
			break;
	}
	return limit > h->out_off ? limit - h->out_off : 0;
}

static void conn_close(struct conn *c, bool rst)
{
	for (int i = 0; i < 2; i++) {
		if (c->fd[i] < 0)
			continue;
		if (rst) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			setsockopt(c->fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(c->fd[i]);
		c->fd[i] = -1;
	}
	c->dead = true;
}

static void do_cut(struct conn *c, int dir)
{
	logf_("conn=%u %s", c->id, c->h[dir].cut_why);
	g.faults++;
	conn_close(c, c->h[dir].cut_rst);
}

static void try_write(struct conn *c, int dir)
{
	struct half *h = &c->h[dir];
	int64_t wake = INT64_MAX;
	size_t n = writable(h, now_ms(), &wake);

	while (n) {
		ssize_t w = send(c->fd[dir == C2S ? 1 : 0], h->buf + h->head, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			logf_("conn=%u dir=%s write error: %s (not a fault)", c->id, dir_name[dir],
			      strerror(errno));
			conn_close(c, false);
			return;
		}
		h->head += w;
		h->out_off += w;
		while (h->seg_head < h->nseg && h->segs[h->seg_head].end <= h->out_off)
			h->seg_head++;
		n -= w;
	}
}

static void check_state(struct conn *c)
{
	for (int d = 0; d < 2 && !c->dead; d++) {
		struct half *h = &c->h[d];

		if (h->out_off >= h->cut_at) {
			do_cut(c, d);
			return;
		}
		if (h->eof && !h->shut && h->head == h->tail) {
			shutdown(c->fd[d == C2S ? 1 : 0], SHUT_WR);
			h->shut = true;
		}
	}
	if (!c->dead && c->h[0].shut && c->h[1].shut) {
		logf_("conn=%u closed by peers c2s=%" PRIu64 " s2c=%" PRIu64 " bytes", c->id,
		      c->h[0].out_off, c->h[1].out_off);
		conn_close(c, false);
	}
}

static void do_read(struct conn *c, int dir)
{
	static uint8_t tmp[65536];
	struct half *h = &c->h[dir];
	ssize_t r = recv(c->fd[dir == C2S ? 0 : 1], tmp, sizeof(tmp), 0);

	if (r < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		logf_("conn=%u dir=%s read error: %s (not a fault)", c->id, dir_name[dir],
		      strerror(errno));
		conn_close(c, false);
		return;
	}
	if (r > 0) {
		int one = 1;

		/*
		 * mosquitto leaves Nagle on: once a client has sent its whole window,
		 * nothing flows back to piggyback our ACK on, and the broker holds its
		 * remaining acks 40 ms for our delayed ACK. Clients ACK at once
		 * (libmqttq sets TCP_QUICKACK), so a proxy that did not would add a
		 * stall no real path has. Not sticky: set after every read.
		 */
		setsockopt(c->fd[dir == C2S ? 0 : 1], IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
	if (r == 0) {
		h->eof = true;
		return;
	}
	if (feed(c, dir, tmp, r)) {
		logf_("conn=%u out of memory", c->id);
		conn_close(c, false);
	}
}

static void set_nonblock(int fd)
{
	int one = 1;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void conn_start_rules(struct conn *c)
{
	int64_t now = now_ms();

	for (int d = 0; d < 2; d++)
		c->h[d].delay_ms = g.default_delay;
	for (int i = 0; i < g.nrules; i++) {
		const struct rule *r = &g.rules[i];

		for (int d = 0; d < 2; d++) {
			if (r->when == W_AFTER || r->when == W_BEFORE || !rule_matches(r, c, d))
				continue;
			if (r->kind == R_DELAY) {
				c->h[d].delay_ms = r->ms;
				logf_("conn=%u dir=%s fault=%s", c->id, dir_name[d], r->spec);
			} else if (r->kind == R_STALL) {
				c->h[d].stall_until = now + r->ms;
				logf_("conn=%u dir=%s off=0 fault=%s", c->id, dir_name[d], r->spec);
				g.faults++;
			} else if (r->kind == R_CUT && r->when == W_BYTES) {
				set_cut(c, d, r->bytes, r->rst, "-", 0, r->spec);
			}
		}
	}
}

static void do_accept(int lfd)
{
	struct conn *c;
	int cfd, sfd, live = 0;

	cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	for (c = g.conns; c; c = c->next)
		live += !c->dead;
	if (live >= MAX_CONNS) {
		logf_("refusing a connection: %d live (max %d)", live, MAX_CONNS);
		close(cfd);
		return;
	}
	sfd = socket(g.broker.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sfd < 0 || connect(sfd, (struct sockaddr *)&g.broker, g.broker_len)) {
		logf_("conn=%u broker connect failed: %s", g.nconn + 1, strerror(errno));
		g.nconn++;
		if (sfd >= 0)
			close(sfd);
		close(cfd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(sfd);
		close(cfd);
		return;
	}
	set_nonblock(cfd);
	set_nonblock(sfd);
	c->id = ++g.nconn;
	c->fd[0] = cfd;
	c->fd[1] = sfd;
	for (int d = 0; d < 2; d++) {
		mqf_init(&c->h[d].f);
		c->h[d].cut_at = NO_CUT;
	}
	conn_start_rules(c);
	if (!g.quiet)
		logf_("conn=%u open", c->id);
	c->next = g.conns;
	g.conns = c;
}

static void conn_free(struct conn *c)
{
	for (int d = 0; d < 2; d++) {
		free(c->h[d].buf);
		free(c->h[d].segs);
	}
	free(c);
}

static int parse_dir_arg(const char *s)
{
	if (!s || !strcmp(s, "any") || !strcmp(s, "both"))
		return -1;
	if (!strcmp(s, "c2s"))
		return C2S;
	if (!strcmp(s, "s2c"))
		return S2C;
	return -2;
}

/* Runs one control command; writes the answer to out. Returns 1 for quit. */
static int command(char *line, char *out, size_t outlen)
{
	char *argv[4] = { 0 }, *save;
	int argc = 0;
	uint64_t v;
	int64_t now = now_ms();

	for (char *t = strtok_r(line, " \t\r\n", &save); t && argc < 4;
	     t = strtok_r(NULL, " \t\r\n", &save))
		argv[argc++] = t;
	if (!argc) {
		snprintf(out, outlen, "error: empty command");
		return 0;
	}
	if (!strcmp(argv[0], "cut") || !strcmp(argv[0], "rst")) {
		bool rst = argv[0][0] == 'r' || (argv[1] && !strcmp(argv[1], "rst"));
		int n = 0;

		for (struct conn *c = g.conns; c; c = c->next) {
			if (c->dead)
				continue;
			set_cut(c, C2S, c->h[C2S].out_off, rst, "-", 0, "command");
			n++;
		}
		snprintf(out, outlen, "ok %d connections", n);
	} else if (!strcmp(argv[0], "stall") || !strcmp(argv[0], "delay")) {
		int d = parse_dir_arg(argv[2]);

		if (!argv[1] || parse_uint(argv[1], 3600000, &v) || d == -2) {
			snprintf(out, outlen, "error: usage: %s MS [c2s|s2c]", argv[0]);
			return 0;
		}
		for (struct conn *c = g.conns; c; c = c->next) {
			for (int i = 0; i < 2 && !c->dead; i++) {
				if (d >= 0 && d != i)
					continue;
				if (argv[0][0] == 's') {
					c->h[i].stall_until = now + v;
					logf_("conn=%u dir=%s off=%" PRIu64 " fault=stall %" PRIu64
					      " ms (command)", c->id, dir_name[i], c->h[i].out_off, v);
					g.faults++;
				} else {
					c->h[i].delay_ms = v;
				}
			}
		}
		if (argv[0][0] == 'd')
			g.default_delay = v;
		snprintf(out, outlen, "ok");
	} else if (!strcmp(argv[0], "fault")) {
		char err[160];

		if (!argv[1] || add_rule(argv[1], err, sizeof(err)))
			snprintf(out, outlen, "error: %s", argv[1] ? err : "usage: fault SPEC");
		else
			snprintf(out, outlen, "ok");
	} else if (!strcmp(argv[0], "clear")) {
		g.nrules = 0;
		g.default_delay = 0;
		g.rate = 0;
		snprintf(out, outlen, "ok");
	} else if (!strcmp(argv[0], "stats")) {
		int live = 0;

		for (struct conn *c = g.conns; c; c = c->next)
			live += !c->dead;
		snprintf(out, outlen, "conns=%u live=%d faults=%u", g.nconn, live, g.faults);
	} else if (!strcmp(argv[0], "quit")) {
		snprintf(out, outlen, "ok");
		return 1;
	} else {
		snprintf(out, outlen, "error: unknown command '%.40s' (cut, rst, stall, delay, fault, "
			 "clear, stats, quit)", argv[0]);
	}
	return 0;
}

struct linebuf {
	int fd;
	char buf[512];
	size_t len;
};

/* Reads what is available; runs complete lines. Returns -1 on EOF, 1 on quit. */
static int ctl_read(struct linebuf *lb, int outfd)
{
	ssize_t r = read(lb->fd, lb->buf + lb->len, sizeof(lb->buf) - 1 - lb->len);
	char *nl;

	if (r < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (r == 0)
		return -1;
	lb->len += r;
	lb->buf[lb->len] = '\0';
	while ((nl = strchr(lb->buf, '\n'))) {
		char out[256];
		int q;

		*nl = '\0';
		q = command(lb->buf, out, sizeof(out));
		strcat(out, "\n");
		if (write(outfd, out, strlen(out)) < 0)
			(void)0;
		memmove(lb->buf, nl + 1, lb->len - (nl + 1 - lb->buf) + 1);
		lb->len -= nl + 1 - lb->buf;
		if (q)
			return 1;
	}
	if (lb->len == sizeof(lb->buf) - 1)
		lb->len = 0;	/* an over-long line is dropped rather than run half */
	return 0;
}

static int resolve(const char *hostport, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int ret;

	if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof(host))
		return -EINVAL;
	memcpy(host, hostport, colon - hostport);
	host[colon - hostport] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	ret = getaddrinfo(host, colon + 1, &hints, &ai);
	if (ret)
		return -EINVAL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void on_signal(int sig)
{
	stop_sig = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mqttq-faultproxy --connect HOST:PORT [options]\n"
		"  -l, --listen HOST:PORT  address to listen on (default 127.0.0.1:0, 0 = any free port)\n"
		"  -c, --connect HOST:PORT broker address\n"
		"  -P, --port-file FILE    write the listening port here once ready\n"
		"  -f, --fault SPEC        add a fault rule (repeatable), e.g. cut:after=PUBREC,dir=s2c,n=3\n"
		"  -s, --seed N            seed for random faults (default: from the clock; always logged)\n"
		"  -r, --rate P            probability per packet of a random fault (0..1)\n"
		"  -m, --max-faults N      stop injecting random faults after N\n"
		"  -L, --log FILE          fault log (default stderr)\n"
		"  -T, --max-time S        exit after S seconds\n"
		"  -C, --control PATH      unix socket taking line commands\n"
		"  -i, --stdin             take line commands on stdin\n"
		"  -q, --quiet             do not log connection opens\n"
		"  -t, --trace             log every packet (type, length, flags, offset)\n"
		"commands: cut [rst] | rst | stall MS [c2s|s2c] | delay MS [c2s|s2c] | fault SPEC\n"
		"          | clear | stats | quit\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "connect", required_argument, NULL, 'c' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "fault", required_argument, NULL, 'f' },
		{ "seed", required_argument, NULL, 's' },
		{ "rate", required_argument, NULL, 'r' },
		{ "max-faults", required_argument, NULL, 'm' },
		{ "log", required_argument, NULL, 'L' },
		{ "max-time", required_argument, NULL, 'T' },
		{ "control", required_argument, NULL, 'C' },
		{ "stdin", no_argument, NULL, 'i' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "trace", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'H' },
		{ 0 },
	};
	const char *listen_at = "127.0.0.1:0", *connect_to = NULL, *port_file = NULL;
	const char *log_path = NULL, *ctl_path = NULL;
	bool use_stdin = false, have_seed = false;
	uint64_t max_time = 0, v;
	struct sockaddr_storage la;
	socklen_t la_len;
	struct linebuf stdin_lb = { .fd = 0 }, ctl[MAX_CTL];
	int nctl = 0, lfd, cfd = -1, one = 1, opt, ret = 0;
	struct sigaction sa = { .sa_handler = on_signal };
	char err[160], *end;

	clock_gettime(CLOCK_MONOTONIC, &g.t0);
	g.log = stderr;
	while ((opt = getopt_long(argc, argv, "l:c:P:f:s:r:m:L:T:C:iqtH", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_at = optarg;
			break;
		case 'c':
			connect_to = optarg;
			break;
		case 'P':
			port_file = optarg;
			break;
		case 'f':
			if (add_rule(optarg, err, sizeof(err))) {
				fprintf(stderr, "mqttq-faultproxy: --fault %s: %s\n", optarg, err);
				return 2;
			}
			break;
		case 's':
			if (parse_uint(optarg, UINT64_MAX, &g.seed)) {
				fprintf(stderr, "mqttq-faultproxy: bad seed '%.40s'\n", optarg);
				return 2;
			}
			have_seed = true;
			break;
		case 'r':
			errno = 0;
			g.rate = strtod(optarg, &end);
			if (errno || *end || !(g.rate >= 0 && g.rate <= 1)) {
				fprintf(stderr, "mqttq-faultproxy: rate must be in 0..1, not '%.40s'\n",
					optarg);
				return 2;
			}
			break;
		case 'm':
			if (parse_uint(optarg, UINT32_MAX, &v)) {
				fprintf(stderr, "mqttq-faultproxy: bad --max-faults '%.40s'\n", optarg);
				return 2;
			}
			g.max_faults = v;
			break;
		case 'L':
			log_path = optarg;
			break;
		case 'T':
			if (parse_uint(optarg, 86400 * 365, &max_time)) {
				fprintf(stderr, "mqttq-faultproxy: bad --max-time '%.40s'\n", optarg);
				return 2;
			}
			break;
		case 'C':
			ctl_path = optarg;
			break;
		case 'i':
			use_stdin = true;
			break;
		case 'q':
			g.quiet = true;
			break;
		case 't':
			g.trace = true;
			break;
		case 'H':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!connect_to || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (resolve(connect_to, &g.broker, &g.broker_len)) {
		fprintf(stderr, "mqttq-faultproxy: cannot resolve broker address '%.40s'\n", connect_to);
		return 2;
	}
	if (resolve(listen_at, &la, &la_len)) {
		fprintf(stderr, "mqttq-faultproxy: cannot resolve listen address '%.40s'\n", listen_at);
		return 2;
	}
	if (log_path) {
		g.log = fopen(log_path, "a");
		if (!g.log) {
			fprintf(stderr, "mqttq-faultproxy: %s: %s\n", log_path, strerror(errno));
			return 2;
		}
	}
	if (!have_seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		g.seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ getpid();
	}
	g.rng = g.seed ? g.seed : 0x9e3779b97f4a7c15ull;

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	lfd = socket(la.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&la, la_len) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&la, &la_len)) {
		fprintf(stderr, "mqttq-faultproxy: listen on %s: %s\n", listen_at, strerror(errno));
		return 1;
	}
	if (ctl_path) {
		struct sockaddr_un un = { .sun_family = AF_UNIX };

		if (strlen(ctl_path) >= sizeof(un.sun_path)) {
			fprintf(stderr, "mqttq-faultproxy: control path too long\n");
			return 2;
		}
		strcpy(un.sun_path, ctl_path);
		unlink(ctl_path);
		cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (cfd < 0 || bind(cfd, (struct sockaddr *)&un, sizeof(un)) || listen(cfd, 4)) {
			fprintf(stderr, "mqttq-faultproxy: control socket %s: %s\n", ctl_path,
				strerror(errno));
			return 1;
		}
	}
	{
		unsigned int port = ntohs(la.ss_family == AF_INET6 ?
					  ((struct sockaddr_in6 *)&la)->sin6_port :
					  ((struct sockaddr_in *)&la)->sin_port);

		logf_("seed=%" PRIu64 " rate=%g listen=%u broker=%s rules=%d", g.seed, g.rate, port,
		      connect_to, g.nrules);
		for (int i = 0; i < g.nrules; i++)
			logf_("rule %s", g.rules[i].spec);
		printf("port %u\n", port);
		fflush(stdout);
		if (port_file) {
			char tmp[4096];
			FILE *pf;

			snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
			pf = fopen(tmp, "w");
			if (!pf || fprintf(pf, "%u\n", port) < 0 || fclose(pf) ||
			    rename(tmp, port_file)) {
				fprintf(stderr, "mqttq-faultproxy: port file %s: %s\n", port_file,
					strerror(errno));
				return 1;
			}
		}
	}
	if (use_stdin)
		fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);

	while (!stop_sig) {
		struct pollfd pfd[3 + MAX_CTL + 2 * MAX_CONNS];
		struct conn *pc[2 * MAX_CONNS];
		int np = 0, nfixed, timeout;
		int64_t now = now_ms(), wake = INT64_MAX;
		struct conn **pp;

		if (max_time && now >= (int64_t)max_time * 1000) {
			logf_("max-time %" PRIu64 " s reached", max_time);
			break;
		}
		/* Reap closed connections. */
		for (pp = &g.conns; *pp;) {
			if ((*pp)->dead) {
				struct conn *d = *pp;

				*pp = d->next;
				conn_free(d);
			} else {
				pp = &(*pp)->next;
			}
		}
		pfd[np++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		pfd[np++] = (struct pollfd){ .fd = use_stdin ? 0 : -1, .events = POLLIN };
		pfd[np++] = (struct pollfd){ .fd = cfd, .events = POLLIN };
		for (int i = 0; i < nctl; i++)
			pfd[np++] = (struct pollfd){ .fd = ctl[i].fd, .events = POLLIN };
		nfixed = np;
		for (struct conn *c = g.conns; c && np - nfixed + 2 <= 2 * MAX_CONNS; c = c->next) {
			for (int s = 0; s < 2; s++) {
				/* socket s is read by half s and written by half 1-s */
				struct half *rh = &c->h[s], *wh = &c->h[1 - s];
				short ev = 0;
				uint64_t app = rh->out_off + (rh->tail - rh->head);

				if (!rh->eof && rh->tail - rh->head < HIGH_WATER && app < rh->cut_at)
					ev |= POLLIN;
				if (writable(wh, now, &wake))
					ev |= POLLOUT;
				pc[np - nfixed] = c;
				pfd[np++] = (struct pollfd){ .fd = c->fd[s], .events = ev };
			}
		}
		if (wake == INT64_MAX)
			timeout = 1000;
		else
			timeout = wake > now ? (int)(wake - now < 1000 ? wake - now : 1000) : 0;
		if (max_time && (int64_t)max_time * 1000 - now < timeout)
			timeout = (int)((int64_t)max_time * 1000 - now);
		if (timeout < 0)
			timeout = 0;
		if (poll(pfd, np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "mqttq-faultproxy: poll: %s\n", strerror(errno));
			ret = 1;
			break;
		}
		if (pfd[0].revents & POLLIN)
			do_accept(lfd);
		if (use_stdin && pfd[1].revents) {
			int q = ctl_read(&stdin_lb, 1);

			if (q == 1)
				break;
			if (q < 0)
				use_stdin = false;
		}
		if (cfd >= 0 && (pfd[2].revents & POLLIN) && nctl < MAX_CTL) {
			int fd = accept4(cfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

			if (fd >= 0)
				ctl[nctl++] = (struct linebuf){ .fd = fd };
		}
		for (int i = 3; i < nfixed; i++) {
			int k = i - 3, q;

			if (!pfd[i].revents)
				continue;
			q = ctl_read(&ctl[k], ctl[k].fd);
			if (q == 1) {
				stop_sig = -1;
				break;
			}
			if (q < 0) {
				close(ctl[k].fd);
				ctl[k].fd = -1;
			}
		}
		{
			int k = 0;

			for (int i = 0; i < nctl; i++)
				if (ctl[i].fd >= 0)
					ctl[k++] = ctl[i];
			nctl = k;
		}
		for (int i = nfixed; i < np; i++) {
			struct conn *c = pc[i - nfixed];
			int s = (i - nfixed) & 1;

			if (c->dead)
				continue;
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				do_read(c, s);
			if (!c->dead)
				try_write(c, 1 - s);
		}
		/* Timers may have released data on sockets poll did not flag. */
		for (struct conn *c = g.conns; c; c = c->next) {
			for (int d = 0; d < 2 && !c->dead; d++)
				try_write(c, d);
			if (!c->dead)
				check_state(c);
		}
	}
	logf_("exit conns=%u faults=%u%s", g.nconn, g.faults, stop_sig > 0 ? " (signal)" : "");
	for (struct conn *c = g.conns; c;) {
		struct conn *n = c->next;

		conn_close(c, false);
		conn_free(c);
		c = n;
	}
	for (int i = 0; i < nctl; i++)
		close(ctl[i].fd);
	if (ctl_path)
		unlink(ctl_path);
	close(lfd);
	return ret;
}
