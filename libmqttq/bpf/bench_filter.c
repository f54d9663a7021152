// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Prints the kernel cost of the topic filter per message (BPF_PROG_TEST_RUN) next to userspace's. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mqf.h"

static double ns_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) * 1e9 + (b.tv_nsec - a->tv_nsec);
}

static int add_both(struct mqf_mgr *m, struct mqf_set *s, const char *f, size_t n, uint32_t id)
{
	return mqf_add(m, f, n, id) ?: mqf_set_add(s, f, n, id);
}

int main(void)
{
	static const char *const topics[] = { "home/livingroom/sensor/temperature",
					      "factory/line3/plc7/status", "nomatch/x/y/z/w" };
	unsigned int i, k, reps = 200000, ureps = 20000;
	struct mqf_set *set = mqf_set_new();
	unsigned char pkt[256];
	struct mqf_mgr *m;
	char f[128];
	int err = mqf_open(&m, 0);

	if (err || !set) {
		fprintf(stderr, "bench-filter: cannot load the filter: %s\n", strerror(-err));
		return 1;
	}
	/* 1000 filters shaped like a gateway's: site/room/device/+ and a few '#'. */
	for (i = 0; i < 1000; i++) {
		int n = i % 10 == 0 ? sprintf(f, "factory/line%u/#", i) :
			i % 3	    ? sprintf(f, "home/room%u/sensor/+", i) :
				      sprintf(f, "+/dev%u/status", i);

		if (add_both(m, set, f, (size_t)n, i + 1))
			return 1;
	}
	err = add_both(m, set, "home/livingroom/sensor/+", 24, 1001);
	err = err ?: add_both(m, set, "factory/+/plc7/status", 21, 1002);
	err = err ?: mqf_commit(m);
	if (err) {
		fprintf(stderr, "bench-filter: commit: %s\n", strerror(-err));
		return 1;
	}
	printf("bench-filter: 1002 filters; ns per message: program (BPF_PROG_TEST_RUN x %u), "
	       "userspace trie, userspace linear scan\n",
	       reps);
	for (i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
		size_t tl = strlen(topics[i]), n = 0;
		volatile uint32_t sink = 0;
		double trie_ns, scan_ns;
		struct timespec a;
		uint32_t ret, ns;

		pkt[n++] = 0x30;
		pkt[n++] = (unsigned char)(2 + tl + 10);
		pkt[n++] = 0;
		pkt[n++] = (unsigned char)tl;
		memcpy(pkt + n, topics[i], tl);
		n += tl;
		memset(pkt + n, 'p', 10);
		n += 10;
		err = mqf_run_repeat(m, pkt, n, reps, &ret, &ns);
		if (err) {
			fprintf(stderr, "bench-filter: test run: %s\n", strerror(-err));
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (k = 0; k < ureps; k++)
			sink += mqf_set_match(set, topics[i], tl);
		trie_ns = ns_since(&a) / ureps;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (k = 0; k < ureps / 10; k++)
			sink += mqf_set_match_scan(set, topics[i], tl);
		scan_ns = ns_since(&a) / (ureps / 10);
		printf("  %-36s -> id %-5u  program %5u   trie %6.0f   scan %7.0f%s\n", topics[i],
		       ret, ns, trie_ns, scan_ns,
		       ret == mqf_set_match_scan(set, topics[i], tl) &&
				       ret == mqf_set_match(set, topics[i], tl) ?
			       "" :
			       "  (DISAGREE)");
	}
	mqf_set_free(set);
	mqf_close(m);
	return 0;
}
