// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Shared helpers of the peer-library drivers: option parsing, payloads, statistics. */
#include "peer_common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f, enum peer_role role, const char *prog)
{
	fprintf(f, "usage: %s [options]\n"
		"  -h HOST -p PORT -t TOPIC -q QOS -V 311|5 -i CLIENTID\n"
		"  -c            persistent session (clean session off; needs -i)\n"
		"  -k SECONDS    keepalive (default 30)\n"
		"  -W SECONDS    give up after this long (default %s)\n"
		"  -r RUN        run id written into / expected in payloads (default r)\n"
		"  -d            log connection events to stderr\n", prog,
		role == PEER_PUB ? "120" : "60");
	if (role == PEER_PUB)
		fprintf(f, "  -n COUNT      messages to publish (default 1000)\n"
			"  -s SIZE       payload bytes (default 64; never below the record)\n"
			"  -w WINDOW     at most this many messages in flight (default 20)\n"
			"  --json        print the run's statistics as one JSON line\n"
			"  --outbox FILE (libmqttq) crash-safe outbox\n"
			"  --progress FILE (libmqttq) log accepted seqs; a restart continues after them\n");
	else
		fprintf(f, "  -C COUNT      exit after COUNT distinct messages (by seq=, duplicates\n"
			"                are written but not counted)\n"
			"  -L MS         after COUNT, keep listening MS ms to catch duplicates\n"
			"  -o FILE       write one line per message here (default stdout)\n"
			"  --ready FILE  create FILE once the subscription is acknowledged\n");
}

static unsigned long num(const char *s, unsigned long lo, unsigned long hi, const char *what,
			 const char *prog)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi || *s == '-') {
		fprintf(stderr, "%s: %s must be %lu..%lu, not '%s'\n", prog, what, lo, hi, s);
		exit(2);
	}
	return v;
}

void peer_parse(int argc, char **argv, enum peer_role role, const char *prog, struct peer_opts *o)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "ready", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'H' },
		{ "outbox", required_argument, NULL, 'O' },
		{ "progress", required_argument, NULL, 'P' },
		{ 0 },
	};
	int opt;

	*o = (struct peer_opts){
		.host = "127.0.0.1", .port = 1883, .topic = "mqttq/fault", .qos = 1,
		.count = role == PEER_PUB ? 1000 : 0, .size = 64, .window = 20, .version = 311,
		.run = "r", .timeout_s = role == PEER_PUB ? 120 : 60, .keepalive = 30,
	};
	while ((opt = getopt_long(argc, argv, "h:p:t:q:n:s:w:V:i:cr:W:k:C:o:dL:", lopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			o->host = optarg;
			break;
		case 'p':
			o->port = num(optarg, 1, 65535, "port", prog);
			break;
		case 't':
			o->topic = optarg;
			break;
		case 'q':
			o->qos = num(optarg, 0, 2, "qos", prog);
			break;
		case 'n':
		case 'C':
			o->count = num(optarg, role == PEER_PUB ? 1 : 0, 100000000, "count", prog);
			break;
		case 's':
			o->size = num(optarg, 0, 1 << 24, "size", prog);
			break;
		case 'w':
			o->window = num(optarg, 1, 65535, "window", prog);
			break;
		case 'V':
			o->version = num(optarg, 5, 311, "version", prog);
			if (o->version != 5 && o->version != 311) {
				fprintf(stderr, "%s: version must be 311 or 5\n", prog);
				exit(2);
			}
			break;
		case 'i':
			o->client_id = optarg;
			break;
		case 'c':
			o->persistent = true;
			break;
		case 'r':
			if (!*optarg || strlen(optarg) > 32 || strpbrk(optarg, " \t\r\n")) {
				fprintf(stderr, "%s: run id must be 1..32 non-blank characters\n", prog);
				exit(2);
			}
			o->run = optarg;
			break;
		case 'W':
			o->timeout_s = num(optarg, 1, 86400, "timeout", prog);
			break;
		case 'k':
			o->keepalive = num(optarg, 5, 65535, "keepalive", prog);
			break;
		case 'o':
			o->out_path = optarg;
			break;
		case 'L':
			o->linger_ms = num(optarg, 0, 600000, "linger", prog);
			break;
		case 'd':
			o->verbose = true;
			break;
		case 'J':
			o->json = true;
			break;
		case 'R':
			o->ready_path = optarg;
			break;
		case 'O':
			o->outbox = optarg;
			break;
		case 'P':
			o->progress = optarg;
			break;
		case 'H':
			usage(stdout, role, prog);
			exit(0);
		default:
			usage(stderr, role, prog);
			exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr, role, prog);
		exit(2);
	}
	if (o->persistent && !o->client_id) {
		fprintf(stderr, "%s: -c (persistent session) needs -i CLIENTID\n", prog);
		exit(2);
	}
}

uint64_t peer_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

size_t peer_payload(const struct peer_opts *o, unsigned long seq, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "seq=%lu qos=%d run=%s", seq, o->qos, o->run);
	size_t len = (size_t)n;

	if (len >= cap)
		return 0;
	if (o->size > len) {
		size_t want = o->size < cap ? o->size : cap;

		buf[len++] = ' ';
		while (len < want)
			buf[len++] = '.';
	}
	return len;
}

void peer_write_line(FILE *f, const char *topic, const void *payload, size_t len)
{
	const unsigned char *p = payload;

	fputs(topic, f);
	fputc(' ', f);
	for (size_t i = 0; i < len; i++)
		fputc(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?', f);
	fputc('\n', f);
}

bool peer_first_seen(const void *payload, size_t len)
{
	static uint8_t *seen;
	static size_t cap;
	const char *p = payload;
	size_t i = 4;
	unsigned long seq = 0;

	if (len < 5 || memcmp(p, "seq=", 4))
		return true;
	for (; i < len && p[i] >= '0' && p[i] <= '9' && seq < 100000000; i++)
		seq = seq * 10 + (p[i] - '0');
	if (i == 4 || seq >= 100000000)
		return true;
	if (seq / 8 >= cap) {
		size_t ncap = cap ? cap : 4096;
		uint8_t *n;

		while (ncap <= seq / 8)
			ncap *= 2;
		n = realloc(seen, ncap);
		if (!n)
			return true;
		memset(n + cap, 0, ncap - cap);
		seen = n;
		cap = ncap;
	}
	if (seen[seq / 8] & (1u << (seq % 8)))
		return false;
	seen[seq / 8] |= 1u << (seq % 8);
	return true;
}

void peer_touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd >= 0)
		close(fd);
}

int peer_stats_init(struct peer_stats *s, const char *lib, const struct peer_opts *o)
{
	*s = (struct peer_stats){ .lib = lib, .o = o };
	s->lat_us = calloc(o->count ? o->count : 1, sizeof(*s->lat_us));
	return s->lat_us ? 0 : -ENOMEM;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t pct(const uint32_t *v, unsigned long n, double p)
{
	unsigned long i;

	if (!n)
		return 0;
	i = (unsigned long)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

void peer_stats_print(struct peer_stats *s, FILE *f)
{
	const struct peer_opts *o = s->o;
	struct rusage ru;
	double secs = (double)(s->t_end_us - s->t_start_us) / 1e6, cpu_us;
	unsigned long n = s->completed < o->count ? s->completed : o->count;

	getrusage(RUSAGE_SELF, &ru);
	cpu_us = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
		 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
	qsort(s->lat_us, n, sizeof(*s->lat_us), cmp_u32);
	if (o->json)
		fprintf(f, "{\"lib\":\"%s\",\"version\":%d,\"qos\":%d,\"messages\":%lu,\"size\":%zu,"
			"\"window\":%u,\"seconds\":%.6f,\"msgs_per_s\":%.1f,\"cpu_us_per_msg\":%.2f,"
			"\"lat_us\":{\"p50\":%u,\"p99\":%u,\"p999\":%u},\"published\":%lu,"
			"\"completed\":%lu,\"failed\":%lu,\"dup_completions\":%lu,\"reconnects\":%lu,"
			"\"ok\":%s%s%s%s}\n",
			s->lib, o->version, o->qos, o->count, o->size, o->window, secs,
			secs > 0 ? (double)s->completed / secs : 0.0,
			s->completed ? cpu_us / (double)s->completed : 0.0, pct(s->lat_us, n, 0.50),
			pct(s->lat_us, n, 0.99), pct(s->lat_us, n, 0.999), s->published, s->completed,
			s->failed, s->dup_completions, s->reconnects, s->error ? "false" : "true",
			s->error ? ",\"error\":\"" : "", s->error ? s->error : "",
			s->error ? "\"" : "");
	else
		fprintf(f, "%s: v%d qos %d: %lu/%lu completed in %.3f s (%.0f msg/s), %.2f cpu us/msg, "
			"latency us p50 %u p99 %u p99.9 %u, %lu reconnects, %lu duplicate completions%s%s\n",
			s->lib, o->version, o->qos, s->completed, o->count, secs,
			secs > 0 ? (double)s->completed / secs : 0.0,
			s->completed ? cpu_us / (double)s->completed : 0.0, pct(s->lat_us, n, 0.50),
			pct(s->lat_us, n, 0.99), pct(s->lat_us, n, 0.999), s->reconnects,
			s->dup_completions, s->error ? ": " : "", s->error ? s->error : "");
	fflush(f);
}

void peer_stats_free(struct peer_stats *s)
{
	free(s->lat_us);
	s->lat_us = NULL;
}
