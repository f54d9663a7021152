// SPDX-License-Identifier: MIT
/* mqttq-stat: prints the mqttq module's sysfs counters and parameters as a table, once or watching rates. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "mqttq-stat"
#define MAX_ENTRIES 64
#define EXIT_USAGE 1
#define EXIT_IO 2
#define EXIT_NOT_LOADED 3

/* Shown first, in this order; any other file the module adds follows, sorted. */
static const char *const known_counters[] = {
	"sessions", "inflight", "acks_in_kernel", "pubrel_sent", "retransmits",
	"keepalive_timeouts", "filter_drops", "protocol_errors", "bytes_held",
};
/* Levels rather than running totals: a rate of these means nothing. */
static const char *const gauges[] = { "sessions", "inflight", "bytes_held" };
static const char *const known_params[] = {
	"window", "retry_ms", "keepalive_s", "linger_s", "max_bytes", "ack_policy", "completion",
};

struct entry {
	char name[64];
	char value[128];
	long long num;
	bool is_num;
};

struct table {
	char dir[4096];
	struct entry e[MAX_ENTRIES];
	unsigned int n;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: mqttq-stat [-w [SECONDS]] [-n COUNT] [--json] [--help]\n\n"
		"Prints the counters of the mqttq kernel module (/sys/kernel/mqttq) and its\n"
		"parameters (/sys/module/mqttq/parameters).\n\n"
		" -w [SECONDS] : watch: print one line of counters and rates every SECONDS\n"
		"                (default 1) until interrupted.\n"
		" -n COUNT     : with -w, stop after COUNT lines.\n"
		" --json       : print one JSON object instead of the table.\n"
		" --help       : display this message.\n\n"
		"Environment: MQTTQ_SYSFS_ROOT replaces /sys (for tests and containers).\n"
		"Exit status: 0 ok, 1 usage error, 2 sysfs read error, 3 module not loaded.\n"
		"See mqttq-stat(1).\n");
}

static bool in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(name, list[i]))
			return true;
	return false;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static int read_entry(const char *dir, struct entry *e)
{
	char path[4300], *end;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, e->name);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	n = fread(e->value, 1, sizeof(e->value) - 1, f);
	if (ferror(f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	e->value[n] = '\0';
	while (n && (e->value[n - 1] == '\n' || e->value[n - 1] == ' '))
		e->value[--n] = '\0';
	errno = 0;
	e->num = strtoll(e->value, &end, 10);
	e->is_num = n && !*end && !errno;
	return 0;
}

/* Reads every regular file of t->dir: the known names in order, then the rest sorted. */
static int load(struct table *t, const char *const *known, size_t nknown)
{
	struct entry extra[MAX_ENTRIES];
	unsigned int nextra = 0, i;
	struct dirent *d;
	DIR *dir;
	int r;

	t->n = 0;
	dir = opendir(t->dir);
	if (!dir)
		return -errno;
	while ((d = readdir(dir)) && nextra < MAX_ENTRIES) {
		if (d->d_name[0] == '.' || strlen(d->d_name) >= sizeof(extra[0].name))
			continue;
		if (d->d_type != DT_REG && d->d_type != DT_UNKNOWN)
			continue;
		snprintf(extra[nextra++].name, sizeof(extra[0].name), "%s", d->d_name);
	}
	closedir(dir);
	qsort(extra, nextra, sizeof(extra[0]), cmp_entry);
	for (size_t k = 0; k < nknown; k++)
		for (i = 0; i < nextra; i++)
			if (!strcmp(extra[i].name, known[k]))
				t->e[t->n++] = extra[i];
	for (i = 0; i < nextra; i++)
		if (!in_list(extra[i].name, known, nknown))
			t->e[t->n++] = extra[i];
	for (i = 0; i < t->n; i++) {
		r = read_entry(t->dir, &t->e[i]);
		if (r) {
			fprintf(stderr, "%s: cannot read %s/%s: %s\n", PROG, t->dir, t->e[i].name,
				strerror(-r));
			return r == -ENOENT ? -ENOENT : -EIO;
		}
	}
	return 0;
}

static void print_json_table(const struct table *t)
{
	for (unsigned int i = 0; i < t->n; i++) {
		printf("%s\"%s\":", i ? "," : "", t->e[i].name);
		if (t->e[i].is_num) {
			printf("%lld", t->e[i].num);
		} else {
			putchar('"');
			for (const char *p = t->e[i].value; *p; p++)
				if (*p == '"' || *p == '\\')
					printf("\\%c", *p);
				else if ((unsigned char)*p >= 0x20)
					putchar(*p);
			putchar('"');
		}
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int watch(struct table *c, double interval, long count)
{
	struct table prev;
	double t0, t1;
	long lines = 0;
	unsigned int i;
	int r;

	t0 = now_s();
	prev = *c;
	printf("%-8s", "time");
	for (i = 0; i < c->n; i++)
		printf(" %*s", (int)(strlen(c->e[i].name) > 12 ? strlen(c->e[i].name) : 12),
		       c->e[i].name);
	printf("\n");
	fflush(stdout);
	while (!stop && (!count || lines < count)) {
		struct timespec ts = { (time_t)interval,
				       (long)((interval - (double)(time_t)interval) * 1e9) };

		nanosleep(&ts, NULL);
		if (stop)
			break;
		r = load(c, known_counters, sizeof(known_counters) / sizeof(known_counters[0]));
		if (r == -ENOENT) {
			fprintf(stderr, "%s: the mqttq module was unloaded\n", PROG);
			return EXIT_NOT_LOADED;
		}
		if (r)
			return EXIT_IO;
		t1 = now_s();
		printf("%-8.1f", t1 - t0);
		for (i = 0; i < c->n; i++) {
			int w = (int)(strlen(c->e[i].name) > 12 ? strlen(c->e[i].name) : 12);
			const struct entry *p = NULL;
			char cell[64];

			for (unsigned int k = 0; k < prev.n; k++)
				if (!strcmp(prev.e[k].name, c->e[i].name))
					p = &prev.e[k];
			if (!c->e[i].is_num)
				snprintf(cell, sizeof(cell), "%s", c->e[i].value);
			else if (in_list(c->e[i].name, gauges, sizeof(gauges) / sizeof(gauges[0])) ||
				 !p || !p->is_num)
				snprintf(cell, sizeof(cell), "%lld", c->e[i].num);
			else
				snprintf(cell, sizeof(cell), "%.0f/s",
					 (double)(c->e[i].num - p->num) / interval);
			printf(" %*s", w, cell);
		}
		printf("\n");
		fflush(stdout);
		prev = *c;
		lines++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'H' },
		{ "json", no_argument, NULL, 'J' },
		{ 0 },
	};
	static struct table c, p;
	const char *root = getenv("MQTTQ_SYSFS_ROOT");
	bool json = false, watching = false;
	double interval = 1;
	long count = 0;
	char *end;
	int opt, r;

	if (!root || !*root)
		root = "/sys";
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":wn:", lopts, NULL)) != -1) {
		switch (opt) {
		case 'w':
			watching = true;
			/* An optional separate argument: "-w 2" as well as "-w". */
			if (optind < argc && argv[optind][0] != '-') {
				errno = 0;
				interval = strtod(argv[optind], &end);
				if (errno || *end || interval < 0.1 || interval > 3600) {
					fprintf(stderr, "Error: -w takes 0.1..3600 seconds, not '%s'.\n\n"
						"Use '%s --help' to see usage.\n", argv[optind], PROG);
					return EXIT_USAGE;
				}
				optind++;
			}
			break;
		case 'n':
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (errno || *end || count < 1) {
				fprintf(stderr, "Error: -n takes a positive count, not '%s'.\n\n"
					"Use '%s --help' to see usage.\n", optarg, PROG);
				return EXIT_USAGE;
			}
			break;
		case 'J':
			json = true;
			break;
		case 'H':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "Error: %s '%s'.\n\nUse '%s --help' to see usage.\n",
				opt == ':' ? "Missing argument to" : "Unknown option",
				argv[optind - 1], PROG);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "Error: Unknown option '%s'.\n\nUse '%s --help' to see usage.\n",
			argv[optind], PROG);
		return EXIT_USAGE;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	snprintf(c.dir, sizeof(c.dir), "%s/kernel/mqttq", root);
	snprintf(p.dir, sizeof(p.dir), "%s/module/mqttq/parameters", root);
	r = load(&c, known_counters, sizeof(known_counters) / sizeof(known_counters[0]));
	if (r == -ENOENT) {
		fprintf(stderr, "%s: the mqttq kernel module is not loaded (%s does not exist); "
			"load it with 'modprobe mqttq'\n", PROG, c.dir);
		return EXIT_NOT_LOADED;
	}
	if (r)
		return EXIT_IO;
	r = load(&p, known_params, sizeof(known_params) / sizeof(known_params[0]));
	if (r && r != -ENOENT)
		return EXIT_IO;
	if (r)
		p.n = 0;
	if (watching)
		return watch(&c, interval, count);
	if (json) {
		printf("{\"counters\":{");
		print_json_table(&c);
		printf("},\"parameters\":{");
		print_json_table(&p);
		printf("}}\n");
		return 0;
	}
	printf("mqttq counters (%s)\n", c.dir);
	for (unsigned int i = 0; i < c.n; i++)
		printf("  %-22s %s\n", c.e[i].name, c.e[i].value);
	printf("mqttq parameters (%s)\n", p.dir);
	if (!p.n)
		printf("  (none readable)\n");
	for (unsigned int i = 0; i < p.n; i++)
		printf("  %-22s %s\n", p.e[i].name, p.e[i].value);
	return 0;
}
