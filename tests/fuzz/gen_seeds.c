// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Writes the fuzzers' seed corpora at build time: every packet type for the decoder, short scripts for the engine. */
#include <stdio.h>
#include <string.h>

#include "mqc.h"

static int put(const char *dir, const char *name, const u8 *b, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b, 1, n, f) != n) {
		perror(path);
		return -1;
	}
	return fclose(f);
}

#define S(lit) ((struct mqc_str){ (const u8 *)(lit), sizeof(lit) - 1 })

static int decode_seeds(const char *dir)
{
	static struct mqc_packet p;
	static struct mqc_will w;
	static struct mqc_props pr;
	static const struct mqc_user_prop up = { { (const u8 *)"k", 1 }, { (const u8 *)"v", 1 } };
	u8 b[512];
	int t, v, n, rc = 0;

	for (v = MQC_V311; v <= MQC_V5; v++) {
		for (t = MQC_CONNECT; t <= MQC_AUTH; t++) {
			char name[32];

			memset(&p, 0, sizeof(p));
			memset(&pr, 0, sizeof(pr));
			p.type = (u8)t;
			p.pid = 0x1234;
			p.reason = v == MQC_V5 && t >= MQC_PUBACK && t <= MQC_PUBREC ? 0x10 : 0;
			p.props.present = v == MQC_V5 && t >= MQC_PUBACK && t <= MQC_PUBCOMP ?
				1ull << MQC_P_REASON_STRING : 0;
			p.props.reason_string = S("r");
			switch (t) {
			case MQC_CONNECT:
				w.topic = S("w/t");
				w.payload = S("x");
				w.qos = 1;
				pr.present = 1ull << MQC_P_RECEIVE_MAX;
				pr.receive_max = 5;
				p.connect = (struct mqc_connect){ .version = (u8)v, .clean = 1,
					.keepalive = 30, .client_id = S("id"), .username = S("u"),
					.password = S("p"), .will = &w, .props = &pr, .user = &up,
					.nuser = 1 };
				break;
			case MQC_CONNACK:
				p.connack.props.present = 1ull << MQC_P_MAX_QOS |
							  1ull << MQC_P_SERVER_KEEPALIVE;
				p.connack.props.max_qos = 1;
				p.connack.props.server_keepalive = 20;
				break;
			case MQC_PUBLISH:
				pr.present = 1ull << MQC_P_CONTENT_TYPE | 1ull << MQC_P_MESSAGE_EXPIRY;
				pr.content_type = S("ct");
				pr.message_expiry = 9;
				p.publish = (struct mqc_pub){ .topic = S("a/b"), .payload = S("data"),
					.qos = 2, .pid = 7, .props = &pr, .user = &up, .nuser = 1 };
				break;
			case MQC_SUBSCRIBE:
			case MQC_UNSUBSCRIBE:
				p.sub.n = 2;
				p.sub.filter[0] = S("a/+");
				p.sub.filter[1] = S("b/#");
				p.sub.options[1] = 2;
				break;
			case MQC_SUBACK:
			case MQC_UNSUBACK:
				p.suback.n = 2;
				p.suback.codes[1] = 0x80;
				break;
			case MQC_DISCONNECT:
				p.reason = v == MQC_V5 ? 0x04 : 0;
				break;
			default:
				break;
			}
			b[0] = (u8)(v == MQC_V5);
			n = mqc_encode((u8)v, &p, b + 1, sizeof(b) - 1);
			if (n <= 0)
				continue; /* AUTH on 3.1.1 */
			snprintf(name, sizeof(name), "v%d_type%02d", v, t);
			rc |= put(dir, name, b, (size_t)n + 1);
		}
	}
	return rc;
}

static int engine_seeds(const char *dir)
{
	/* header: version/policy/keepalive byte, window/recv_max/retry byte; then op, arg ... */
	static const u8 qos1[] = { 0x01, 0x07, 10, 0x00, 0, 1, 0, 4, 2, 0, 2, 1, 8, 200 };
	static const u8 qos2[] = { 0x01, 0x07, 10, 0x00, 0, 2, 2, 0, 2, 0, 9, 10, 0x01, 2, 0 };
	static const u8 inbound[] = { 0x03, 0x3f, 10, 0x00, 5, 0x0a, 5, 0x0e, 6, 0x01, 12, 0x01,
				      5, 0x09, 12, 0x02 };
	static const u8 resume[] = { 0x40, 0x43, 14, 0x01, 0x00, 0x05, 14, 0x00, 0x00, 0x06,
				     10, 0x01, 0, 1, 8, 20, 8, 20, 2, 0, 2, 1 };
	static const u8 subs[] = { 0x05, 0x03, 11, 0x03, 13, 0x01, 13, 0x81, 7, 2, 0xd0, 0x00 };

	return put(dir, "qos1", qos1, sizeof(qos1)) | put(dir, "qos2", qos2, sizeof(qos2)) |
	       put(dir, "inbound", inbound, sizeof(inbound)) |
	       put(dir, "resume", resume, sizeof(resume)) | put(dir, "subs", subs, sizeof(subs));
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s DECODE_DIR ENGINE_DIR\n", argv[0]);
		return 2;
	}
	return decode_seeds(argv[1]) | engine_seeds(argv[2]) ? 1 : 0;
}
