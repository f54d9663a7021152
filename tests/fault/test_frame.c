// SPDX-License-Identifier: GPL-2.0 OR MIT
/* TAP unit test of the proxy's MQTT framing parser over whole, split and byte-by-byte reads. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_frame.h"

#define MAX_EV 64

static int tno, failed;

static void ok(int cond, const char *name)
{
	printf("%sok %d - %s\n", cond ? "" : "not ", ++tno, name);
	failed |= !cond;
}

struct evlist {
	struct mqf_ev ev[MAX_EV];
	int n;
};

/* Feeds buf in pieces whose lengths come from cuts[] (0 = rest), collecting events. */
static void run(const uint8_t *buf, size_t len, const size_t *cuts, int ncuts, struct evlist *out)
{
	struct mqf f;
	size_t pos = 0;
	int c = 0;

	mqf_init(&f);
	out->n = 0;
	while (pos < len) {
		size_t piece = c < ncuts && cuts[c] ? cuts[c] : len - pos, off = 0;

		c++;
		if (piece > len - pos)
			piece = len - pos;
		while (off < piece) {
			struct mqf_ev ev;
			size_t used = mqf_next(&f, buf + pos + off, piece - off, &ev);

			if (!used)
				return;	/* a parser that stalls would loop forever */
			off += used;
			if (ev.kind != MQF_NONE && out->n < MAX_EV)
				out->ev[out->n++] = ev;
		}
		pos += piece;
	}
}

static int same(const struct evlist *a, const struct evlist *b)
{
	if (a->n != b->n)
		return 0;
	for (int i = 0; i < a->n; i++)
		if (a->ev[i].kind != b->ev[i].kind || a->ev[i].type != b->ev[i].type ||
		    a->ev[i].start != b->ev[i].start || a->ev[i].end != b->ev[i].end ||
		    a->ev[i].rlen != b->ev[i].rlen)
			return 0;
	return 1;
}

/* Appends a packet with a body of blen bytes; returns the new length. */
static size_t put(uint8_t *buf, size_t len, uint8_t hdr, uint32_t blen)
{
	uint32_t v = blen;

	buf[len++] = hdr;
	do {
		uint8_t b = v & 0x7f;

		v >>= 7;
		buf[len++] = b | (v ? 0x80 : 0);
	} while (v);
	memset(buf + len, 0xa5, blen);
	return len + blen;
}

int main(void)
{
	static uint8_t buf[40000];
	static const uint8_t types[] = { 0x10, 0x20, 0x32, 0x40, 0x50, 0x62, 0x70, 0xc0, 0xd0,
					 0x34, 0xe0 };
	static const uint32_t blens[] = { 12, 2, 300, 2, 2, 2, 2, 0, 0, 20000, 0 };
	size_t len = 0, pos[12], ncut;
	struct evlist whole, other;
	size_t cuts[40000];
	int good;

	pos[0] = 0;
	for (int i = 0; i < 11; i++) {
		len = put(buf, len, types[i], blens[i]);
		pos[i + 1] = len;
	}

	printf("TAP version 13\n1..10\n");
	run(buf, len, NULL, 0, &whole);
	good = whole.n == 22;
	for (int i = 0; good && i < 11; i++) {
		const struct mqf_ev *s = &whole.ev[2 * i], *e = &whole.ev[2 * i + 1];

		good = s->kind == MQF_START && s->type == types[i] >> 4 && s->start == pos[i] &&
		       e->kind == MQF_END && e->type == types[i] >> 4 && e->start == pos[i] &&
		       e->end == pos[i + 1] && e->rlen == blens[i] && e->hdr == types[i];
	}
	ok(good, "many packets in one read: start/end events at the right offsets");

	for (size_t i = 0; i < len; i++)
		cuts[i] = 1;
	run(buf, len, cuts, (int)len, &other);
	ok(same(&whole, &other), "byte-by-byte reads give the same events");

	good = 1;
	for (size_t split = 1; good && split < pos[9] + 8; split++) {
		cuts[0] = split;
		run(buf, len, cuts, 1, &other);
		good = same(&whole, &other);
	}
	ok(good, "every two-way split through headers and varints gives the same events");

	/* Split 20000-byte body (3-byte varint) inside the varint and inside the body. */
	good = 1;
	for (size_t k = 1; good && k < 4; k++) {
		cuts[0] = pos[9] + k;
		cuts[1] = 7;
		cuts[2] = 9999;
		run(buf, len, cuts, 3, &other);
		good = same(&whole, &other);
	}
	ok(good, "three-way splits inside a 3-byte remaining length and its body");

	srand(12345);
	good = 1;
	for (int round = 0; good && round < 200; round++) {
		ncut = 0;
		for (size_t p = 0; p < len && ncut < 40000;) {
			size_t c = 1 + (size_t)rand() % (round % 2 ? 7 : 3000);

			cuts[ncut++] = c;
			p += c;
		}
		run(buf, len, cuts, (int)ncut, &other);
		good = same(&whole, &other);
	}
	ok(good, "200 random read patterns give the same events");

	ok(whole.ev[15].kind == MQF_END && whole.ev[15].rlen == 0 && whole.ev[15].type == 12 &&
	   whole.ev[15].end == whole.ev[14].start + 2, "zero-length PINGREQ ends after its length byte");

	{
		const uint8_t bad[] = { 0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0x30, 0x00 };
		struct evlist e;

		run(bad, sizeof(bad), NULL, 0, &e);
		ok(e.n == 2 && e.ev[0].kind == MQF_START && e.ev[1].kind == MQF_ERROR,
		   "5-byte remaining length reports framing lost, then no more events");
	}
	{
		/* Maximum legal remaining length decodes without error. */
		const uint8_t max[] = { 0x30, 0xff, 0xff, 0xff, 0x7f };
		struct mqf f;
		struct mqf_ev ev;
		size_t used;

		mqf_init(&f);
		used = mqf_next(&f, max, sizeof(max), &ev);
		used += mqf_next(&f, max + used, sizeof(max) - used, &ev);
		ok(used == sizeof(max) && ev.kind == MQF_NONE && f.rlen == 268435455 &&
		   f.state == MQF_S_BODY, "268435455 (4-byte maximum) is a valid remaining length");
	}
	ok(mqf_type_parse("pubrec") == 5 && mqf_type_parse("PUBCOMP") == 7 &&
	   mqf_type_parse("DISCONNECT") == 14 && mqf_type_parse("PUBRECX") == -EINVAL &&
	   mqf_type_parse("") == -EINVAL, "packet type names parse, unknown ones are refused");
	good = 1;
	for (unsigned int t = 1; t < 16; t++)
		good &= mqf_type_parse(mqf_type_name(t)) == (int)t;
	ok(good, "type name round trip for all 15 types");
	return failed;
}
