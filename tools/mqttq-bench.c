// SPDX-License-Identifier: MIT
/* mqttq-bench: emqtt-bench style publish/subscribe/connect load generator with cost-per-message accounting. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define PROG "mqttq-bench"
#define MAX_CLIENTS 1024

enum mode { MODE_PUB, MODE_SUB, MODE_CONN };

struct client {
	struct mqttq *q;
	char topic[256];
	unsigned long sent, done, failed, received;
	uint64_t next_pub_ns;
	uint64_t *t0;		/* send time per message (pub) */
	bool subscribed;
	bool lost;
};

static struct {
	enum mode mode;
	const char *host;
	int port;
	int version;
	long clients;
	long interval_ms;
	long size;
	int qos;
	const char *topic;
	long limit;
	long window;
	int offload;
	bool json;
	bool quiet;
	long timeout_s;
	struct client *c;
	uint32_t *lat_us;
	unsigned long nlat, cap_lat;
	char *payload;
	unsigned long dup_completions;
} g;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: mqttq-bench pub|sub|conn [options]\n\n"
		"Load generator in the manner of emqtt-bench, measuring what each message costs.\n\n"
		"  -h HOST        broker host (default 127.0.0.1)\n"
		"  -p PORT        broker port (default 1883)\n"
		"  -V 311|5       protocol version (also mqttv311, mqttv5; default 5)\n"
		"  -c CLIENTS     number of clients (default 1)\n"
		"  -I MS          interval between publishes of one client in ms (default 0: as fast\n"
		"                 as the window allows); conn: between connects\n"
		"  -s SIZE        payload size in bytes (default 256)\n"
		"  -q QOS         QoS of publishes / subscriptions (default 0)\n"
		"  -t TOPIC       topic; %%i is replaced by the client number (default bench/%%i)\n"
		"  -L LIMIT       messages per client (pub default 10000; sub: stop after LIMIT)\n"
		"  -w WINDOW      QoS 1/2 messages in flight per client (default 64)\n"
		"  -W SECONDS     give up after this long (default 300)\n"
		"  --offload auto|on|off   QoS engine (default: MQTTQ_OFFLOAD, else auto)\n"
		"  --json         print the summary as one JSON line on stdout\n"
		"  --quiet        no progress lines\n"
		"  --help         this message\n\n"
		"A progress line goes to stderr every second; the summary gives msgs/s, completion\n"
		"latency p50/p99/p99.9, CPU per message (getrusage, user and system), context\n"
		"switches and syscalls per message (perf raw_syscalls:sys_enter when tracefs is\n"
		"mounted, else read+write syscalls from /proc/self/io) and, with the offload\n"
		"engine, the module's counter deltas. See mqttq-bench(1).\n");
}

static int parse(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, OPT_HELP },
		{ "offload", required_argument, NULL, OPT_OFFLOAD },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ 0 },
	};
	long v;
	int opt;

	if (argc >= 2 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		exit(0);
	}
	if (argc < 2) {
		tool_usage_error(PROG, "Give a mode: pub, sub or conn.");
		return -1;
	}
	if (!strcmp(argv[1], "pub")) {
		g.mode = MODE_PUB;
	} else if (!strcmp(argv[1], "sub")) {
		g.mode = MODE_SUB;
	} else if (!strcmp(argv[1], "conn")) {
		g.mode = MODE_CONN;
	} else {
		tool_usage_error(PROG, "Unknown mode '%s' (pub, sub or conn).", argv[1]);
		return -1;
	}
	g.limit = g.mode == MODE_PUB ? 10000 : 0;
	opterr = 0;
	optind = 2;
	while ((opt = getopt_long(argc, argv, ":h:p:V:c:I:s:q:t:L:w:W:", lopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			g.host = optarg;
			break;
		case 'p':
			if (tool_parse_long(optarg, 1, 65535, &v))
				goto bad;
			g.port = (int)v;
			break;
		case 'V':
			g.version = tool_parse_version(optarg);
			if (g.version < 0)
				goto bad;
			break;
		case 'c':
			if (tool_parse_long(optarg, 1, MAX_CLIENTS, &g.clients))
				goto bad;
			break;
		case 'I':
			if (tool_parse_long(optarg, 0, 3600000, &g.interval_ms))
				goto bad;
			break;
		case 's':
			if (tool_parse_long(optarg, 0, 16 << 20, &g.size))
				goto bad;
			break;
		case 'q':
			if (tool_parse_long(optarg, 0, 2, &v))
				goto bad;
			g.qos = (int)v;
			break;
		case 't':
			if (!*optarg || strlen(optarg) > 200)
				goto bad;
			g.topic = optarg;
			break;
		case 'L':
			if (tool_parse_long(optarg, 0, 100000000, &g.limit))
				goto bad;
			break;
		case 'w':
			if (tool_parse_long(optarg, 1, 65535, &g.window))
				goto bad;
			break;
		case 'W':
			if (tool_parse_long(optarg, 1, 86400, &g.timeout_s))
				goto bad;
			break;
		case OPT_OFFLOAD:
			g.offload = tool_parse_offload(optarg);
			if (g.offload < 0)
				goto bad;
			break;
		case OPT_JSON:
			g.json = true;
			break;
		case OPT_QUIET:
			g.quiet = true;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		case ':':
			tool_getopt_error(PROG, argc, argv, optopt, true);
			return -1;
		default:
			tool_getopt_error(PROG, argc, argv, optopt, false);
			return -1;
		}
	}
	if (optind < argc) {
		tool_usage_error(PROG, "Unknown option '%s'.", argv[optind]);
		return -1;
	}
	if (g.mode == MODE_PUB && (!g.limit || g.limit * g.clients > 100000000)) {
		tool_usage_error(PROG, "pub needs -L between 1 and 100000000 messages in total.");
		return -1;
	}
	return 0;
bad:
	tool_usage_error(PROG, "Invalid value '%s' for %s.", optarg, argv[optind - 2 >= 0 ?
			 optind - 2 : 0]);
	return -1;
}

/* ---- measurement ------------------------------------------------------ */

struct cost {
	struct rusage ru;
	uint64_t syscalls;
	uint64_t t_ns;
};

static int sys_fd = -1;
static const char *sys_src = "none";

/* Counts every syscall of this process (all threads) when tracefs exposes the tracepoint. */
static void syscalls_open(void)
{
	static const char *const ids[] = {
		"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
		"/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
	};
	struct perf_event_attr a;
	unsigned long long id;
	FILE *f;

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]) && sys_fd < 0; i++) {
		f = fopen(ids[i], "r");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &id) == 1) {
			memset(&a, 0, sizeof(a));
			a.size = sizeof(a);
			a.type = PERF_TYPE_TRACEPOINT;
			a.config = id;
			a.inherit = 1;
			a.exclude_kernel = 0;
			sys_fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
		}
		fclose(f);
	}
	if (sys_fd >= 0)
		sys_src = "perf";
	else if (!access("/proc/self/io", R_OK))
		sys_src = "proc-io";
}

static uint64_t syscalls_now(void)
{
	unsigned long long v = 0, r = 0, w = 0;
	char line[128];
	FILE *f;

	if (sys_fd >= 0) {
		if (read(sys_fd, &v, sizeof(v)) != sizeof(v))
			return 0;
		return v;
	}
	f = fopen("/proc/self/io", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "syscr: %llu", &r);
		sscanf(line, "syscw: %llu", &w);
	}
	fclose(f);
	return r + w;
}

static void cost_take(struct cost *c)
{
	getrusage(RUSAGE_SELF, &c->ru);
	c->syscalls = syscalls_now();
	c->t_ns = tool_now_ns();
}

static double tv_us(const struct timeval *a, const struct timeval *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e6 + (double)(b->tv_usec - a->tv_usec);
}

/* Module counters from sysfs, for before/after deltas with the offload engine. */
#define NMODC 9
static const char *const modc_names[NMODC] = {
	"sessions", "inflight", "acks_in_kernel", "pubrel_sent", "retransmits",
	"keepalive_timeouts", "filter_drops", "protocol_errors", "bytes_held",
};

static int modc_read(long long *v)
{
	const char *root = getenv("MQTTQ_SYSFS_ROOT");
	char path[512];
	int found = 0;
	FILE *f;

	for (int i = 0; i < NMODC; i++) {
		snprintf(path, sizeof(path), "%s/kernel/mqttq/%s", root && *root ? root : "/sys",
			 modc_names[i]);
		v[i] = 0;
		f = fopen(path, "r");
		if (!f)
			continue;
		found += fscanf(f, "%lld", &v[i]) == 1;
		fclose(f);
	}
	return found;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t pct(double p)
{
	unsigned long i;

	if (!g.nlat)
		return 0;
	i = (unsigned long)(p * (double)(g.nlat - 1) + 0.5);
	return g.lat_us[i < g.nlat ? i : g.nlat - 1];
}

static void lat_add(uint64_t us)
{
	if (g.nlat < g.cap_lat)
		g.lat_us[g.nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* ---- clients ---------------------------------------------------------- */

static void make_topic(char *out, size_t cap, long i)
{
	const char *t = g.topic;
	size_t n = 0;

	while (*t && n + 12 < cap) {
		if (t[0] == '%' && t[1] == 'i') {
			n += (size_t)snprintf(out + n, cap - n, "%ld", i + 1);
			t += 2;
		} else {
			out[n++] = *t++;
		}
	}
	out[n] = '\0';
}

static int client_new(long i, struct mqttq **out)
{
	struct mqttq_opts o;
	char id[64];
	int r;

	mqttq_opts_init(&o);
	snprintf(id, sizeof(id), "mqttq-bench-%d-%ld", (int)getpid(), i + 1);
	o.host = g.host;
	o.port = (uint16_t)g.port;
	o.version = g.version;
	o.client_id = id;
	o.window = (uint16_t)g.window;
	o.receive_max = (uint16_t)(g.window > 64 ? g.window : 64);
	o.offload = g.offload;
	o.no_reconnect = 1;
	o.keepalive_s = 60;
	/* Room for the whole window plus what one loop turn may queue. */
	o.queue_max_msgs = (uint32_t)(g.window * 2 + 64);
	o.queue_max_bytes = (uint64_t)o.queue_max_msgs * (uint64_t)(g.size + 512);
	r = mqttq_new(out, &o);
	if (r) {
		fprintf(stderr, "%s: client %ld: %s\n", PROG, i + 1,
			*mqttq_errmsg(NULL) ? mqttq_errmsg(NULL) : mqttq_strerror(r));
		return r;
	}
	r = mqttq_connect_sync(*out, 10000);
	if (r) {
		fprintf(stderr, "%s: client %ld: connect %s:%d: %s\n", PROG, i + 1, g.host, g.port,
			*mqttq_errmsg(*out) ? mqttq_errmsg(*out) : mqttq_strerror(r));
		mqttq_destroy(*out);
		*out = NULL;
	}
	return r;
}

static void handle(struct client *c, const struct mqttq_event *ev)
{
	uint64_t now;

	switch (ev->type) {
	case MQTTQ_EV_PUBLISHED:
		if (ev->token == 0 || ev->token > (uint64_t)g.limit) {
			g.dup_completions++;
			break;
		}
		if (ev->err < 0 || ev->reason >= 0x80)
			c->failed++;
		else
			lat_add((tool_now_ns() - c->t0[ev->token - 1]) / 1000);
		c->done++;
		break;
	case MQTTQ_EV_MESSAGE:
		c->received++;
		if (ev->msg.payload_len >= 8) {
			uint64_t t;

			memcpy(&t, ev->msg.payload, 8);
			now = tool_now_ns();
			/* The publisher's clock: only meaningful on the same host. */
			if (t && t <= now && now - t < 3600ull * 1000000000u)
				lat_add((now - t) / 1000);
		}
		break;
	case MQTTQ_EV_SUBSCRIBED:
		c->subscribed = true;
		break;
	case MQTTQ_EV_DISCONNECTED:
		if (!ev->will_retry)
			c->lost = true;
		break;
	}
}

static unsigned long total(size_t off)
{
	unsigned long s = 0;

	for (long i = 0; i < g.clients; i++)
		s += *(const unsigned long *)((const char *)&g.c[i] + off);
	return s;
}

static void progress(uint64_t t0, unsigned long *last, uint64_t *last_t)
{
	uint64_t now = tool_now_ns();
	unsigned long d = g.mode == MODE_SUB ? total(offsetof(struct client, received)) :
			  total(offsetof(struct client, done));
	unsigned long sent = total(offsetof(struct client, sent));

	if (!g.quiet)
		fprintf(stderr, "%s: %5.1fs %s %8.0f msg/s  total %lu  sent %lu  in flight %lu\n",
			PROG, (double)(now - t0) / 1e9, g.mode == MODE_SUB ? "recv" : "done",
			(double)(d - *last) * 1e9 / (double)(now - *last_t), d, sent,
			g.mode == MODE_SUB ? 0 : sent - d);
	*last = d;
	*last_t = now;
}

static int run_clients(uint64_t deadline)
{
	struct mqttq_event ev[64];
	struct pollfd pfd[MAX_CLIENTS];
	uint64_t now, t0 = tool_now_ns(), last_t = t0, next_progress = t0 + 1000000000u;
	unsigned long last = 0, want_total = (unsigned long)(g.limit * g.clients);
	int n, r;

	while (!stop) {
		bool progressed = false, finished = true;
		int next_ms = 1000;

		now = tool_now_ns();
		if (now >= deadline) {
			fprintf(stderr, "%s: gave up after %ld s\n", PROG, g.timeout_s);
			return -ETIMEDOUT;
		}
		if (now >= next_progress) {
			progress(t0, &last, &last_t);
			next_progress += 1000000000u;
		}
		for (long i = 0; i < g.clients; i++) {
			struct client *c = &g.c[i];

			if (c->lost) {
				fprintf(stderr, "%s: client %ld lost its connection\n", PROG, i + 1);
				return -ECONNRESET;
			}
			if (g.mode == MODE_PUB) {
				while (c->sent < (unsigned long)g.limit &&
				       c->sent - c->done < (unsigned long)g.window) {
					if (g.interval_ms) {
						if (now < c->next_pub_ns) {
							uint64_t ms = (c->next_pub_ns - now) / 1000000;

							if ((int)ms < next_ms)
								next_ms = (int)ms;
							break;
						}
						c->next_pub_ns += (uint64_t)g.interval_ms * 1000000u;
					}
					c->t0[c->sent] = tool_now_ns();
					memcpy(g.payload, &c->t0[c->sent],
					       g.size >= 8 ? 8 : (size_t)g.size);
					r = mqttq_publish(c->q, c->topic, g.payload, (size_t)g.size,
							  g.qos, 0, NULL, c->sent + 1);
					if (r == -ENOBUFS)
						break;
					if (r) {
						fprintf(stderr, "%s: publish: %s\n", PROG,
							mqttq_strerror(r));
						return r;
					}
					c->sent++;
					progressed = true;
				}
				if (c->done < (unsigned long)g.limit)
					finished = false;
			} else {
				if (!g.limit || c->received < (unsigned long)g.limit)
					finished = false;
			}
			/* One client: block in the library itself, the cheapest wait. */
			n = mqttq_wait(c->q, ev, 64, g.clients == 1 && !progressed && !finished ?
				       (next_ms < 1000 ? next_ms : 1000) : 0);
			if (n < 0 && n != -EINTR) {
				fprintf(stderr, "%s: wait: %s\n", PROG, mqttq_strerror(n));
				return n;
			}
			for (int k = 0; k < n; k++)
				handle(c, &ev[k]);
			if (n > 0)
				progressed = true;
		}
		if (finished)
			break;
		if (g.clients > 1 && !progressed) {
			for (long i = 0; i < g.clients; i++) {
				int t = mqttq_next_timeout_ms(g.c[i].q);

				pfd[i] = (struct pollfd){ .fd = mqttq_fd(g.c[i].q), .events = POLLIN };
				if (t >= 0 && t < next_ms)
					next_ms = t;
			}
			poll(pfd, (nfds_t)g.clients, next_ms);
		}
	}
	progress(t0, &last, &last_t);
	(void)want_total;
	return stop ? -EINTR : 0;
}

static void summary(const struct cost *a, const struct cost *b, const long long *m0,
		    const long long *m1, bool have_mod, const char *engine, int rc)
{
	unsigned long n = g.mode == MODE_SUB ? total(offsetof(struct client, received)) :
			  total(offsetof(struct client, done));
	unsigned long failed = total(offsetof(struct client, failed));
	double secs = (double)(b->t_ns - a->t_ns) / 1e9;
	double dn = n ? (double)n : 1;
	double user = tv_us(&a->ru.ru_utime, &b->ru.ru_utime) / dn;
	double sys = tv_us(&a->ru.ru_stime, &b->ru.ru_stime) / dn;
	double vcs = (double)(b->ru.ru_nvcsw - a->ru.ru_nvcsw) / dn;
	double ivcs = (double)(b->ru.ru_nivcsw - a->ru.ru_nivcsw) / dn;
	double scs = (double)(b->syscalls - a->syscalls) / dn;
	struct mqttq_stats st = { 0 }, one;
	const char *mode = g.mode == MODE_PUB ? "pub" : g.mode == MODE_SUB ? "sub" : "conn";

	for (long i = 0; i < g.clients; i++) {
		if (!g.c[i].q || mqttq_stats(g.c[i].q, &one, sizeof(one)))
			continue;
		st.enters += one.enters;
		st.sends += one.sends;
		st.retransmits += one.retransmits;
	}
	qsort(g.lat_us, g.nlat, sizeof(*g.lat_us), cmp_u32);
	if (g.json) {
		printf("{\"tool\":\"mqttq-bench\",\"mode\":\"%s\",\"engine\":\"%s\",\"version\":%d,"
		       "\"qos\":%d,\"clients\":%ld,\"size\":%ld,\"window\":%ld,\"limit\":%ld,"
		       "\"messages\":%lu,\"failed\":%lu,\"seconds\":%.6f,\"msgs_per_s\":%.1f,"
		       "\"lat_us\":{\"p50\":%u,\"p99\":%u,\"p999\":%u},"
		       "\"cpu_user_us_per_msg\":%.3f,\"cpu_sys_us_per_msg\":%.3f,"
		       "\"vol_ctxsw_per_msg\":%.4f,\"invol_ctxsw_per_msg\":%.4f,"
		       "\"syscalls_per_msg\":%.4f,\"syscalls_source\":\"%s\","
		       "\"io_uring_enters\":%llu,\"sends\":%llu,\"retransmits\":%llu",
		       mode, engine, g.version == MQTTQ_V5 ? 5 : 311, g.qos, g.clients, g.size,
		       g.window, g.limit, n, failed, secs, secs > 0 ? (double)n / secs : 0.0,
		       pct(0.5), pct(0.99), pct(0.999), user, sys, vcs, ivcs, scs, sys_src,
		       (unsigned long long)st.enters, (unsigned long long)st.sends,
		       (unsigned long long)st.retransmits);
		if (have_mod) {
			printf(",\"module\":{");
			for (int i = 0; i < NMODC; i++)
				printf("%s\"%s\":%lld", i ? "," : "", modc_names[i], m1[i] - m0[i]);
			printf("}");
		}
		printf(",\"ok\":%s}\n", rc || failed ? "false" : "true");
		fflush(stdout);
		return;
	}
	printf("mqttq-bench %s: engine %s, v%d, QoS %d, %ld client(s), %ld bytes, window %ld\n",
	       mode, engine, g.version == MQTTQ_V5 ? 5 : 311, g.qos, g.clients, g.size, g.window);
	printf("  messages       %lu in %.3f s (%lu failed)\n", n, secs, failed);
	printf("  rate           %.0f msg/s\n", secs > 0 ? (double)n / secs : 0.0);
	printf("  latency        p50 %u us, p99 %u us, p99.9 %u us%s\n", pct(0.5), pct(0.99),
	       pct(0.999), g.mode == MODE_CONN ? " (CONNACK)" : "");
	printf("  cpu/msg        user %.3f us, system %.3f us (getrusage)\n", user, sys);
	printf("  ctx switches   %.4f voluntary, %.4f involuntary per msg (getrusage)\n", vcs, ivcs);
	printf("  syscalls/msg   %.4f (%s)\n", scs,
	       !strcmp(sys_src, "perf") ? "perf raw_syscalls:sys_enter" :
	       !strcmp(sys_src, "proc-io") ? "/proc/self/io syscr+syscw: reads and writes only" :
	       "unavailable");
	printf("  io_uring       %llu enters, %llu sends\n", (unsigned long long)st.enters,
	       (unsigned long long)st.sends);
	if (have_mod) {
		printf("  module         ");
		for (int i = 0; i < NMODC; i++)
			printf("%s%s %+lld", i ? ", " : "", modc_names[i], m1[i] - m0[i]);
		printf("\n");
	}
}

int main(int argc, char **argv)
{
	long long m0[NMODC], m1[NMODC];
	struct cost a, b;
	uint64_t deadline;
	const char *engine = "none";
	bool have_mod;
	int rc = 0;

	g.host = "127.0.0.1";
	g.port = 1883;
	g.version = MQTTQ_V5;
	g.clients = 1;
	g.size = 256;
	g.topic = "bench/%i";
	g.window = 64;
	g.timeout_s = 300;
	if (parse(argc, argv))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	g.c = calloc((size_t)g.clients, sizeof(*g.c));
	g.payload = calloc(1, (size_t)g.size + 8);
	g.cap_lat = g.mode == MODE_CONN ? (unsigned long)g.clients :
		    g.limit ? (unsigned long)(g.limit * g.clients) : 10000000;
	g.lat_us = calloc(g.cap_lat, sizeof(*g.lat_us));
	if (!g.c || !g.payload || !g.lat_us) {
		fprintf(stderr, "%s: out of memory\n", PROG);
		return 1;
	}
	memset(g.payload + 8, 'x', g.size > 8 ? (size_t)g.size - 8 : 0);
	syscalls_open();
	deadline = tool_now_ns() + (uint64_t)g.timeout_s * 1000000000u;

	if (g.mode == MODE_CONN)
		cost_take(&a);
	for (long i = 0; i < g.clients && !stop; i++) {
		struct client *c = &g.c[i];
		uint64_t t = tool_now_ns();

		make_topic(c->topic, sizeof(c->topic), i);
		if (g.mode == MODE_PUB) {
			c->t0 = calloc((size_t)g.limit, sizeof(*c->t0));
			if (!c->t0) {
				fprintf(stderr, "%s: out of memory\n", PROG);
				return 1;
			}
		}
		rc = client_new(i, &c->q);
		if (rc)
			goto out;
		engine = mqttq_engine_name(mqttq_engine(c->q));
		if (g.mode == MODE_CONN) {
			lat_add((tool_now_ns() - t) / 1000);
			c->done = 1;
			if (g.interval_ms)
				tool_sleep_ns((uint64_t)g.interval_ms * 1000000u);
		} else if (g.mode == MODE_SUB) {
			struct mqttq_sub s = { .filter = c->topic, .qos = (uint8_t)g.qos };
			uint8_t code;

			rc = mqttq_subscribe_sync(c->q, &s, 1, 0, &code, 10000);
			if (rc || code >= 0x80) {
				fprintf(stderr, "%s: subscribe '%s': %s\n", PROG, c->topic,
					rc ? mqttq_strerror(rc) : "refused");
				rc = rc ? rc : -EPERM;
				goto out;
			}
		}
	}
	if (g.mode == MODE_SUB && !g.quiet)
		fprintf(stderr, "%s: %ld client(s) subscribed\n", PROG, g.clients);
	have_mod = modc_read(m0) > 0;
	if (g.mode == MODE_CONN) {
		cost_take(&b);
	} else {
		uint64_t now = tool_now_ns();

		for (long i = 0; i < g.clients; i++)
			g.c[i].next_pub_ns = now;
		cost_take(&a);
		rc = run_clients(deadline);
		cost_take(&b);
	}
	if (have_mod)
		modc_read(m1);
	summary(&a, &b, m0, m1, have_mod, engine, rc);
out:
	for (long i = 0; i < g.clients; i++) {
		if (g.c[i].q) {
			mqttq_disconnect(g.c[i].q, 0);
			mqttq_destroy(g.c[i].q);
		}
		free(g.c[i].t0);
	}
	return rc ? 1 : 0;
}
