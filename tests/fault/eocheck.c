// SPDX-License-Identifier: GPL-2.0 OR MIT
/* mqttq-eocheck: judges each QoS delivery guarantee from sent and received records. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEQ 100000000u	/* bounds memory on garbage input: 10^8 sequence numbers per QoS */
#define RUN_LEN 64

struct tally {
	uint8_t *sent;		/* 1 where seq was sent */
	uint32_t *got;		/* receptions per seq */
	uint32_t cap;
	uint64_t nsent, received, unique, lost, dup, reordered, unexpected;
	int64_t max_seen;	/* per input file, for reordering */
	uint32_t lost_ex[8], nlost_ex;
};

static struct tally t[3];
static char run_filter[RUN_LEN];
static uint64_t foreign, unparsed;

static int grow(struct tally *q, uint32_t seq)
{
	uint32_t cap = q->cap ? q->cap : 1024;
	uint8_t *s;
	uint32_t *gc;

	if (seq >= MAX_SEQ)
		return -ERANGE;
	if (seq < q->cap)
		return 0;
	while (cap <= seq)
		cap = cap > MAX_SEQ / 2 ? MAX_SEQ : cap * 2;
	s = realloc(q->sent, cap);
	if (!s)
		return -ENOMEM;
	q->sent = s;
	gc = realloc(q->got, (size_t)cap * sizeof(*gc));
	if (!gc)
		return -ENOMEM;
	q->got = gc;
	memset(q->sent + q->cap, 0, cap - q->cap);
	memset(q->got + q->cap, 0, (size_t)(cap - q->cap) * sizeof(*gc));
	q->cap = cap;
	return 0;
}

/* Finds "key=" at the start of a whitespace-separated token. */
static const char *token(const char *line, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = line; (p = strstr(p, key)); p += kl)
		if (p == line || p[-1] == ' ' || p[-1] == '\t')
			return p + kl;
	return NULL;
}

static int parse_num(const char *p, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!p || *p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(p, &end, 10);
	if (errno || v > max || (*end && *end != ' ' && *end != '\t' && *end != '\n' &&
				 *end != '\r'))
		return -EINVAL;
	*out = v;
	return 0;
}

/* Parses seq/qos/run from a line; returns 1 if the line holds a record, 0 if not, -errno if bad. */
static int parse_line(const char *line, uint32_t *seq, int *qos, char run[RUN_LEN])
{
	const char *s = token(line, "seq="), *q = token(line, "qos="), *r = token(line, "run=");
	uint64_t v;
	size_t n;

	if (!s)
		return 0;
	if (parse_num(s, MAX_SEQ - 1, &v))
		return -EINVAL;
	*seq = v;
	if (parse_num(q, 2, &v))
		return -EINVAL;
	*qos = v;
	run[0] = '\0';
	if (r) {
		n = strcspn(r, " \t\r\n");
		if (n >= RUN_LEN)
			return -EINVAL;
		memcpy(run, r, n);
		run[n] = '\0';
	}
	return 1;
}

static bool run_ok(const char *run)
{
	return !run_filter[0] || !strcmp(run, run_filter);
}

static int mark_sent(int qos, uint32_t seq)
{
	struct tally *q = &t[qos];
	int ret = grow(q, seq);

	if (ret)
		return ret;
	if (!q->sent[seq]) {
		q->sent[seq] = 1;
		q->nsent++;
	}
	return 0;
}

static int read_file(const char *path, bool sent)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	int ret = 0;

	if (!f) {
		fprintf(stderr, "mqttq-eocheck: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	for (int i = 0; i < 3; i++)
		t[i].max_seen = -1;
	while (getline(&line, &cap, f) > 0) {
		uint32_t seq;
		int qos, r;
		char run[RUN_LEN];

		lineno++;
		r = parse_line(line, &seq, &qos, run);
		if (r < 0) {
			fprintf(stderr, "mqttq-eocheck: %s:%lu: malformed record\n", path, lineno);
			ret = -EINVAL;
			break;
		}
		if (!r) {
			unparsed++;
			continue;
		}
		if (!run_filter[0] && sent)
			snprintf(run_filter, sizeof(run_filter), "%s", run);
		if (!run_ok(run)) {
			foreign++;
			continue;
		}
		if (sent) {
			ret = mark_sent(qos, seq);
		} else {
			struct tally *q = &t[qos];

			ret = grow(q, seq);
			if (ret)
				break;
			q->received++;
			if (q->got[seq]++) {
				q->dup++;
				continue;
			}
			if ((int64_t)seq < q->max_seen)
				q->reordered++;
			else
				q->max_seen = seq;
		}
		if (ret)
			break;
	}
	if (ret == -ERANGE || ret == -ENOMEM)
		fprintf(stderr, "mqttq-eocheck: %s:%lu: sequence number too large\n", path, lineno);
	free(line);
	if (f != stdin)
		fclose(f);
	return ret;
}

static int parse_expect(const char *arg)
{
	uint64_t qos, n;
	char *end;
	const char *p = arg;

	errno = 0;
	qos = strtoull(p, &end, 10);
	if (errno || end == p || *end != ':' || qos > 2)
		return -EINVAL;
	p = end + 1;
	n = strtoull(p, &end, 10);
	if (errno || end == p || n > MAX_SEQ)
		return -EINVAL;
	if (*end == ':') {
		if (strlen(end + 1) >= RUN_LEN || !end[1])
			return -EINVAL;
		if (run_filter[0] && strcmp(run_filter, end + 1))
			return -EINVAL;
		snprintf(run_filter, sizeof(run_filter), "%s", end + 1);
	} else if (*end) {
		return -EINVAL;
	}
	for (uint64_t s = 0; s < n; s++)
		if (mark_sent(qos, s))
			return -ENOMEM;
	return 0;
}

static bool verdict(int qos, const struct tally *q, char *why, size_t len)
{
	why[0] = '\0';
	if (q->unexpected) {
		snprintf(why, len, "%" PRIu64 " never sent", q->unexpected);
		return false;
	}
	if (qos == 2 && (q->lost || q->dup)) {
		snprintf(why, len, "exactly-once broken");
		return false;
	}
	if (qos == 1 && q->lost) {
		snprintf(why, len, "at-least-once broken");
		return false;
	}
	if (qos == 0 && q->dup) {
		snprintf(why, len, "at-most-once broken");
		return false;
	}
	return true;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mqttq-eocheck [options] RECEIVED-FILE...\n"
		"  -s, --sent FILE      records the publishers sent (repeatable)\n"
		"  -e, --expect Q:N[:RUN] publishers sent seq 0..N-1 at QoS Q (repeatable)\n"
		"  -r, --run ID         only judge records of this run (default: first sent record's)\n"
		"  -j, --json           one JSON summary line on stdout instead of the table\n"
		"records are lines holding 'seq=<n> qos=<q> run=<id>' tokens; see tests/fault/README.md\n"
		"exit: 0 guarantees held, 1 violated, 2 bad usage or input\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sent", required_argument, NULL, 's' },
		{ "expect", required_argument, NULL, 'e' },
		{ "run", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false, ok = true, any_sent = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "s:e:r:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (read_file(optarg, true))
				return 2;
			any_sent = true;
			break;
		case 'e':
			if (parse_expect(optarg)) {
				fprintf(stderr, "mqttq-eocheck: bad --expect '%s' (QOS:N[:RUN])\n",
					optarg);
				return 2;
			}
			any_sent = true;
			break;
		case 'r':
			if (strlen(optarg) >= RUN_LEN || (run_filter[0] && strcmp(run_filter, optarg))) {
				fprintf(stderr, "mqttq-eocheck: bad or conflicting --run\n");
				return 2;
			}
			snprintf(run_filter, sizeof(run_filter), "%s", optarg);
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!any_sent || optind == argc) {
		usage(stderr);
		return 2;
	}
	for (int i = optind; i < argc; i++)
		if (read_file(argv[i], false))
			return 2;

	for (int qos = 0; qos < 3; qos++) {
		struct tally *q = &t[qos];

		for (uint32_t s = 0; s < q->cap; s++) {
			if (q->sent[s] && !q->got[s]) {
				q->lost++;
				if (q->nlost_ex < 8)
					q->lost_ex[q->nlost_ex++] = s;
			} else if (!q->sent[s] && q->got[s]) {
				q->unexpected++;
			}
			q->unique += q->got[s] && q->sent[s];
		}
	}
	if (json)
		printf("{\"run\":\"%s\",\"foreign\":%" PRIu64 ",\"qos\":[", run_filter, foreign);
	else
		printf("qos %9s %9s %9s %9s %9s %9s %9s  verdict\n", "sent", "received", "unique",
		       "lost", "dup", "reordered", "unexpect");
	for (int qos = 0, first = 1; qos < 3; qos++) {
		struct tally *q = &t[qos];
		char why[64];
		bool v;

		if (!q->nsent && !q->received)
			continue;
		v = verdict(qos, q, why, sizeof(why));
		ok &= v;
		if (json) {
			printf("%s{\"qos\":%d,\"sent\":%" PRIu64 ",\"received\":%" PRIu64
			       ",\"unique\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"dup\":%" PRIu64
			       ",\"reordered\":%" PRIu64 ",\"unexpected\":%" PRIu64 ",\"ok\":%s}",
			       first ? "" : ",", qos, q->nsent, q->received, q->unique, q->lost,
			       q->dup, q->reordered, q->unexpected, v ? "true" : "false");
			first = 0;
			continue;
		}
		printf("%3d %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
		       " %9" PRIu64 "  %s%s%s\n", qos, q->nsent, q->received, q->unique, q->lost,
		       q->dup, q->reordered, q->unexpected, v ? "ok" : "FAIL", v ? "" : ": ", why);
		if (q->nlost_ex) {
			printf("    first lost seq:");
			for (uint32_t i = 0; i < q->nlost_ex; i++)
				printf(" %u", q->lost_ex[i]);
			printf("\n");
		}
	}
	if (json)
		printf("],\"ok\":%s}\n", ok ? "true" : "false");
	else if (foreign)
		printf("ignored %" PRIu64 " records of other runs than '%s'\n", foreign, run_filter);
	return ok ? 0 : 1;
}
