// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Prints the kernel cost of the topic filter per message (BPF_PROG_TEST_RUN), and userspace's. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mqf.h"

int main(void)
{
	static const char *const topics[] = { "home/livingroom/sensor/temperature",
					      "factory/line3/plc7/status", "nomatch/x/y/z/w" };
	char f[128];
	unsigned char pkt[256];
	struct mqf_mgr *m;
	unsigned int i, reps = 200000;
	int err = mqf_open(&m, 0);

	if (err) {
		fprintf(stderr, "bench-filter: cannot load the filter: %s\n", strerror(-err));
		return 1;
	}
	/* 1000 filters shaped like a gateway's: site/room/device/+ and a few '#'. */
	for (i = 0; i < 1000; i++) {
		int n = i % 10 == 0 ? sprintf(f, "factory/line%u/#", i) :
			i % 3	    ? sprintf(f, "home/room%u/sensor/+", i) :
				      sprintf(f, "+/dev%u/status", i);

		if (mqf_add(m, f, (size_t)n, i + 1))
			return 1;
	}
	err = mqf_add(m, "home/livingroom/sensor/+", 24, 1001);
	err = err ?: mqf_add(m, "factory/+/plc7/status", 21, 1002);
	err = err ?: mqf_commit(m);
	if (err) {
		fprintf(stderr, "bench-filter: commit: %s\n", strerror(-err));
		return 1;
	}
	printf("bench-filter: 1002 filters, %u runs per topic\n", reps);
	for (i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
		size_t tl = strlen(topics[i]), n = 0;
		uint32_t ret, ns;
		struct timespec a, b;
		double us_ns;
		unsigned int k;
		volatile uint32_t sink = 0;

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
		for (k = 0; k < 2000; k++)
			sink += mqf_match(m, topics[i], tl);
		clock_gettime(CLOCK_MONOTONIC, &b);
		us_ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 2000;
		printf("  %-36s -> id %-5u  program %5u ns/msg   reference set scan %8.0f ns/msg%s\n",
		       topics[i], ret, ns, us_ns,
		       ret == mqf_match(m, topics[i], tl) ? "" : "  (DISAGREE)");
	}
	mqf_close(m);
	return 0;
}
