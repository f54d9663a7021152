// SPDX-License-Identifier: GPL-2.0 OR MIT
/* libFuzzer harness for the core's decoder (both versions): no crash, and decode/encode agree. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqc.h"

#define CHECK(c)                                                                    \
	do {                                                                        \
		if (!(c)) {                                                         \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                    \
		}                                                                   \
	} while (0)

static struct mqc_packet p1, p2;
static u8 enc1[1 << 17], enc2[1 << 17];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mqc_str cur;
	struct mqc_prop pr;
	u8 v;
	u32 len, max;
	int err, fl, n1, n2, r, guard;

	if (size < 2 || size > (1 << 16))
		return 0;
	/* first byte: version and a Maximum Packet Size to decode under */
	v = (data[0] & 1) ? MQC_V5 : MQC_V311;
	max = (data[0] & 2) ? (u32)(data[0] >> 2) * 4 : 0;
	data++;
	size--;
	len = (u32)size;

	fl = mqc_frame_len(data, len, 0);
	err = mqc_decode(v, data, len, max, &p1);
	CHECK(mqc_strerror(err) != NULL);
	CHECK(err <= 0);
	if (err)
		return 0;
	/* a packet that decodes is exactly one frame, within max */
	CHECK(fl == (int)len);
	CHECK(!max || len <= max);
	/* its property blocks iterate cleanly */
	cur = p1.props.raw;
	for (guard = 0; (r = mqc_prop_next(&cur, &pr)) == 1; guard++)
		CHECK(guard < 1 << 16);
	CHECK(r == 0);
	/* re-encoding gives a packet that decodes to the same type and re-encodes identically */
	n1 = mqc_encode(v, &p1, enc1, sizeof(enc1));
	CHECK(n1 > 0);
	CHECK(mqc_decode(v, enc1, (u32)n1, 0, &p2) == 0);
	CHECK(p2.type == p1.type && p2.pid == p1.pid);
	n2 = mqc_encode(v, &p2, enc2, sizeof(enc2));
	CHECK(n2 == n1 && !memcmp(enc1, enc2, (size_t)n1));
	if (p1.type == MQC_PUBLISH) {
		CHECK(mqc_publish_size(v, &p1.publish) == n1);
		CHECK(p2.publish.payload.len == p1.publish.payload.len);
		CHECK(!memcmp(p2.publish.payload.p, p1.publish.payload.p, p1.publish.payload.len));
	}
	return 0;
}
