// SPDX-License-Identifier: GPL-2.0 OR MIT
/* cmocka tests of the core's codec: known bytes, round trips of every packet and property, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mqc.h"

#define S(lit) ((struct mqc_str){ (const u8 *)(lit), sizeof(lit) - 1 })

static u8 buf[4096];
static struct mqc_packet P, Q;

static bool str_eq(struct mqc_str a, struct mqc_str b)
{
	return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

/* ---- known answers ---------------------------------------------------------------- */

static void test_MQTT_3_3_known_publish_bytes(void **st)
{
	static const u8 want311[] = { 0x3b, 0x0a, 0x00, 0x03, 'a', '/', 'b', 0x12, 0x34,
				      'h', 'e', 'y' };
	static const u8 want5[] = { 0x34, 0x0c, 0x00, 0x03, 'a', '/', 'b', 0x12, 0x34, 0x02,
				    0x01, 0x01, 'h', 'i' };
	struct mqc_props pr = { .present = 1ull << MQC_P_PAYLOAD_FORMAT, .payload_format = 1 };
	struct mqc_pub p = { .topic = S("a/b"), .payload = S("hey"), .qos = 1, .dup = 1,
			     .retain = 1, .pid = 0x1234 };
	u32 off = 0;
	int n = mqc_encode_publish(MQC_V311, &p, buf, sizeof(buf), &off);

	assert_int_equal(n, sizeof(want311));
	assert_memory_equal(buf, want311, sizeof(want311));
	assert_int_equal(off, 7);
	assert_int_equal(mqc_publish_size(MQC_V311, &p), n);
	p.dup = p.retain = 0;
	p.qos = 2;
	p.payload = S("hi");
	p.props = &pr;
	n = mqc_encode_publish(MQC_V5, &p, buf, sizeof(buf), &off);
	assert_int_equal(n, sizeof(want5));
	assert_memory_equal(buf, want5, sizeof(want5));
	assert_int_equal(off, 7);
}

static void test_MQTT_3_1_known_connect_bytes(void **st)
{
	static const u8 want[] = { 0x10, 0x13, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xc2, 0x00,
				   0x3c, 0x00, 0x01, 'c', 0x00, 0x01, 'u', 0x00, 0x01, 'p' };
	struct mqc_connect c = { .version = MQC_V311, .clean = 1, .keepalive = 60,
				 .client_id = S("c"), .username = S("u"), .password = S("p") };
	int n = mqc_encode_connect(&c, buf, sizeof(buf));

	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

/* MQTT-1.5.5 / 2.2.3: Remaining Length boundaries of 1..4 bytes. */
static void test_MQTT_2_2_3_varint_boundaries(void **st)
{
	static const struct {
		u32 v;
		u8 n;
		u8 b[4];
	} t[] = {
		{ 0, 1, { 0x00 } },
		{ 127, 1, { 0x7f } },
		{ 128, 2, { 0x80, 0x01 } },
		{ 16383, 2, { 0xff, 0x7f } },
		{ 16384, 3, { 0x80, 0x80, 0x01 } },
		{ 2097151, 3, { 0xff, 0xff, 0x7f } },
		{ 2097152, 4, { 0x80, 0x80, 0x80, 0x01 } },
		{ 268435455, 4, { 0xff, 0xff, 0xff, 0x7f } },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		u8 hdr[5] = { 0x30 };

		memcpy(hdr + 1, t[i].b, t[i].n);
		assert_int_equal(mqc_frame_len(hdr, 1u + t[i].n, 0), 1 + t[i].n + (int)t[i].v);
		/* one byte short of knowing: more input needed */
		assert_int_equal(mqc_frame_len(hdr, t[i].n, 0), 0);
	}
}

static void test_MQTT_2_2_3_frame_len_limits(void **st)
{
	static const u8 five[] = { 0x30, 0x80, 0x80, 0x80, 0x80, 0x01 };
	static const u8 big[] = { 0x30, 0xff, 0x7f };

	assert_int_equal(mqc_frame_len(five, sizeof(five), 0), -MQC_E_VARINT);
	assert_int_equal(mqc_frame_len(five, 5, 0), -MQC_E_VARINT);
	assert_int_equal(mqc_frame_len(big, 3, 0), 3 + 16383);
	assert_int_equal(mqc_frame_len(big, 3, 16386), 16386);
	assert_int_equal(mqc_frame_len(big, 3, 16385), -MQC_E_TOO_BIG);
	assert_int_equal(mqc_frame_len(big, 1, 0), 0);
	assert_int_equal(mqc_frame_len(big, 0, 0), 0);
}

/* ---- UTF-8 (MQTT-1.5.3 / 1.5.4) ------------------------------------------------------- */

static void test_MQTT_1_5_4_utf8_rules(void **st)
{
	static const struct {
		const char *s;
		u32 n;
		int err;
	} t[] = {
		{ "plain/ascii", 11, 0 },
		{ "\xc3\xa9", 2, 0 },			/* U+00E9 */
		{ "\xe2\x82\xac", 3, 0 },		/* U+20AC */
		{ "\xf0\x9f\x98\x80", 4, 0 },		/* U+1F600 */
		{ "\xf4\x8f\xbf\xbf", 4, 0 },		/* U+10FFFF */
		{ "\xef\xbb\xbf", 3, 0 },		/* U+FEFF is allowed (1.5.4-3) */
		{ "a\0b", 3, -MQC_E_UTF8_NUL },		/* MQTT-1.5.4-2 */
		{ "\xed\xa0\x80", 3, -MQC_E_UTF8_SURROGATE }, /* MQTT-1.5.4-1 */
		{ "\xed\xbf\xbf", 3, -MQC_E_UTF8_SURROGATE },
		{ "\xc0\x80", 2, -MQC_E_UTF8 },		/* overlong NUL */
		{ "\xc1\xbf", 2, -MQC_E_UTF8 },
		{ "\xe0\x80\xaf", 3, -MQC_E_UTF8 },
		{ "\xf0\x80\x80\xaf", 4, -MQC_E_UTF8 },
		{ "\xf4\x90\x80\x80", 4, -MQC_E_UTF8 },	/* > U+10FFFF */
		{ "\xf5\x80\x80\x80", 4, -MQC_E_UTF8 },
		{ "\x80", 1, -MQC_E_UTF8 },		/* stray continuation */
		{ "\xc3", 1, -MQC_E_UTF8 },		/* truncated */
		{ "\xe2\x82", 2, -MQC_E_UTF8 },
		{ "\xe2\x28\xa1", 3, -MQC_E_UTF8 },	/* bad continuation */
		{ "\xff", 1, -MQC_E_UTF8 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (mqc_utf8_check((const u8 *)t[i].s, t[i].n) != t[i].err)
			fail_msg("case %zu: got %d want %d", i,
				 mqc_utf8_check((const u8 *)t[i].s, t[i].n), t[i].err);
}

/* MQTT-3.3.2-2 / 4.7.1: no wildcards in a topic name; filters place them per level. */
static void test_MQTT_4_7_1_topic_and_filter_rules(void **st)
{
	assert_int_equal(mqc_topic_check((const u8 *)"a/b", 3, false), 0);
	assert_int_equal(mqc_topic_check((const u8 *)"a/+", 3, false), -MQC_E_TOPIC_WILD);
	assert_int_equal(mqc_topic_check((const u8 *)"#", 1, false), -MQC_E_TOPIC_WILD);
	assert_int_equal(mqc_topic_check((const u8 *)"", 0, false), -MQC_E_TOPIC_EMPTY);
	assert_int_equal(mqc_topic_check((const u8 *)"", 0, true), 0);
	assert_int_equal(mqc_topic_check((const u8 *)"a\0", 2, false), -MQC_E_UTF8_NUL);
}

/* ---- round trips: every packet type, both versions --------------------------------- */

static const struct mqc_user_prop users[2] = {
	{ { (const u8 *)"k1", 2 }, { (const u8 *)"v1", 2 } },
	{ { (const u8 *)"k2", 2 }, { (const u8 *)"", 0 } },
};

static void build(u8 v, u8 type, struct mqc_packet *p, struct mqc_props *pr,
		  struct mqc_will *w, struct mqc_props *wp)
{
	memset(p, 0, sizeof(*p));
	memset(pr, 0, sizeof(*pr));
	memset(w, 0, sizeof(*w));
	memset(wp, 0, sizeof(*wp));
	p->type = type;
	p->pid = 0x0102;
	switch (type) {
	case MQC_CONNECT:
		p->connect.version = v;
		p->connect.clean = 1;
		p->connect.keepalive = 300;
		p->connect.client_id = S("client-1");
		p->connect.username = S("user");
		p->connect.password = S("pw\0x");
		w->topic = S("will/t");
		w->payload = S("bye");
		w->qos = 1;
		w->retain = 1;
		p->connect.will = w;
		if (v == MQC_V5) {
			pr->present = 1ull << MQC_P_SESSION_EXPIRY | 1ull << MQC_P_RECEIVE_MAX |
				      1ull << MQC_P_MAX_PACKET_SIZE;
			pr->session_expiry = 3600;
			pr->receive_max = 20;
			pr->max_packet_size = 65536;
			p->connect.props = pr;
			p->connect.user = users;
			p->connect.nuser = 2;
			wp->present = 1ull << MQC_P_WILL_DELAY;
			wp->will_delay = 5;
			w->props = wp;
		}
		break;
	case MQC_CONNACK:
		p->connack.session_present = 1;
		if (v == MQC_V5) {
			p->connack.props.present = 1ull << MQC_P_RECEIVE_MAX |
						   1ull << MQC_P_ASSIGNED_CLIENT_ID;
			p->connack.props.receive_max = 10;
			p->connack.props.assigned_client_id = S("auto-7");
		}
		break;
	case MQC_PUBLISH:
		p->publish.topic = S("sensors/t1");
		p->publish.payload = S("21.5");
		p->publish.qos = 2;
		p->publish.dup = 1;
		p->publish.pid = 0x0102;
		if (v == MQC_V5) {
			pr->present = 1ull << MQC_P_MESSAGE_EXPIRY;
			pr->message_expiry = 60;
			p->publish.props = pr;
			p->publish.user = users;
			p->publish.nuser = 1;
		}
		break;
	case MQC_PUBACK:
	case MQC_PUBREC:
	case MQC_PUBREL:
	case MQC_PUBCOMP:
	case MQC_DISCONNECT:
	case MQC_AUTH:
		if (v == MQC_V5) {
			p->reason = type == MQC_PUBREL || type == MQC_PUBCOMP ? 0x92 :
				    type == MQC_AUTH ? 0x18 : type == MQC_DISCONNECT ? 0x04 : 0x10;
			p->props.present = 1ull << MQC_P_REASON_STRING;
			p->props.reason_string = S("why");
			if (type == MQC_DISCONNECT) {
				p->props.present = 1ull << MQC_P_SESSION_EXPIRY;
				p->props.session_expiry = 9;
			}
			if (type == MQC_AUTH) {
				p->props.present |= 1ull << MQC_P_AUTH_METHOD;
				p->props.auth_method = S("SCRAM");
			}
		}
		break;
	case MQC_SUBSCRIBE:
	case MQC_UNSUBSCRIBE:
		p->sub.n = 3;
		p->sub.filter[0] = S("a/+/c");
		p->sub.filter[1] = S("#");
		p->sub.filter[2] = S("x/y");
		if (type == MQC_SUBSCRIBE) {
			p->sub.options[0] = 0;
			p->sub.options[1] = 1;
			p->sub.options[2] = v == MQC_V5 ? 0x2e : 2; /* QoS 2, NL, RAP, RH 2 */
			if (v == MQC_V5) {
				p->props.present = 1ull << MQC_P_SUBSCRIPTION_ID;
				p->props.subscription_id = 268435455;
			}
		}
		break;
	case MQC_SUBACK:
	case MQC_UNSUBACK:
		p->suback.n = 3;
		p->suback.codes[0] = 0;
		p->suback.codes[1] = type == MQC_SUBACK ? 2 : 0x11;
		p->suback.codes[2] = 0x80;
		break;
	default:
		break;
	}
}

static void check_same(u8 v, const struct mqc_packet *a, const struct mqc_packet *b)
{
	u32 i;

	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case MQC_CONNECT:
		assert_int_equal(b->connect.version, v);
		assert_int_equal(b->connect.clean, 1);
		assert_int_equal(b->connect.keepalive, 300);
		assert_true(str_eq(a->connect.client_id, b->connect.client_id));
		assert_true(str_eq(a->connect.username, b->connect.username));
		assert_true(str_eq(a->connect.password, b->connect.password));
		assert_non_null(b->connect.will);
		assert_true(str_eq(a->connect.will->topic, b->connect.will->topic));
		assert_true(str_eq(a->connect.will->payload, b->connect.will->payload));
		assert_int_equal(b->connect.will->qos, 1);
		assert_int_equal(b->connect.will->retain, 1);
		if (v == MQC_V5) {
			assert_int_equal(b->props.session_expiry, 3600);
			assert_int_equal(b->props.receive_max, 20);
			assert_int_equal(b->props.max_packet_size, 65536);
			assert_int_equal(b->will_props.will_delay, 5);
			assert_true(b->props.present & (1ull << MQC_P_USER_PROPERTY));
		}
		break;
	case MQC_CONNACK:
		assert_int_equal(b->connack.session_present, 1);
		if (v == MQC_V5) {
			assert_int_equal(b->connack.props.receive_max, 10);
			assert_true(str_eq(b->connack.props.assigned_client_id, S("auto-7")));
		}
		break;
	case MQC_PUBLISH:
		assert_true(str_eq(a->publish.topic, b->publish.topic));
		assert_true(str_eq(a->publish.payload, b->publish.payload));
		assert_int_equal(b->publish.qos, 2);
		assert_int_equal(b->publish.dup, 1);
		assert_int_equal(b->pid, 0x0102);
		if (v == MQC_V5)
			assert_int_equal(b->props.message_expiry, 60);
		break;
	case MQC_SUBSCRIBE:
	case MQC_UNSUBSCRIBE:
		assert_int_equal(b->pid, 0x0102);
		assert_int_equal(b->sub.n, a->sub.n);
		for (i = 0; i < a->sub.n; i++) {
			assert_true(str_eq(a->sub.filter[i], b->sub.filter[i]));
			if (a->type == MQC_SUBSCRIBE)
				assert_int_equal(a->sub.options[i], b->sub.options[i]);
		}
		if (v == MQC_V5 && a->type == MQC_SUBSCRIBE)
			assert_int_equal(b->props.subscription_id, 268435455);
		break;
	case MQC_SUBACK:
	case MQC_UNSUBACK:
		assert_int_equal(b->pid, 0x0102);
		if (a->type == MQC_UNSUBACK && v == MQC_V311) {
			assert_int_equal(b->suback.n, 0);
			break;
		}
		assert_int_equal(b->suback.n, a->suback.n);
		assert_memory_equal(b->suback.codes, a->suback.codes, a->suback.n);
		break;
	case MQC_PINGREQ:
	case MQC_PINGRESP:
		break;
	default:
		if (a->type != MQC_DISCONNECT && a->type != MQC_AUTH)
			assert_int_equal(b->pid, 0x0102);
		if (v == MQC_V5) {
			assert_int_equal(b->reason, a->reason);
			assert_int_equal(b->props.present, a->props.present);
			if (a->props.present & (1ull << MQC_P_REASON_STRING))
				assert_true(str_eq(b->props.reason_string, a->props.reason_string));
			if (a->props.present & (1ull << MQC_P_SESSION_EXPIRY))
				assert_int_equal(b->props.session_expiry, a->props.session_expiry);
		}
		break;
	}
}

struct rt_case {
	const char *name;
	u8 v, type;
};

static const struct rt_case rt_cases[] = {
#define RT(t) { "roundtrip_v311_" #t, MQC_V311, MQC_##t }, { "roundtrip_v5_" #t, MQC_V5, MQC_##t }
	RT(CONNECT), RT(CONNACK), RT(PUBLISH), RT(PUBACK), RT(PUBREC), RT(PUBREL), RT(PUBCOMP),
	RT(SUBSCRIBE), RT(SUBACK), RT(UNSUBSCRIBE), RT(UNSUBACK), RT(PINGREQ), RT(PINGRESP),
	RT(DISCONNECT), { "roundtrip_v5_AUTH", MQC_V5, MQC_AUTH },
#undef RT
};

/*
 * Encode from fields, decode, compare; re-encode the decoded packet to the
 * same bytes; every shorter prefix and every capacity below the size fail
 * cleanly (ASan in unit-san checks that nothing is read or written outside).
 */
static void run_roundtrip(void **st)
{
	const struct rt_case *c = *st;
	static u8 again[4096];
	struct mqc_props pr, wp;
	struct mqc_will w;
	int n, m;
	u32 cut;

	build(c->v, c->type, &P, &pr, &w, &wp);
	n = mqc_encode(c->v, &P, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(mqc_frame_len(buf, (u32)n, 0), n);
	assert_int_equal(mqc_decode(c->v, buf, (u32)n, 0, &Q), 0);
	check_same(c->v, &P, &Q);
	m = mqc_encode(c->v, &Q, again, sizeof(again));
	assert_int_equal(m, n);
	assert_memory_equal(again, buf, (size_t)n);
	for (cut = 0; cut < (u32)n; cut++) {
		u8 *copy = malloc(cut ? cut : 1);

		memcpy(copy, buf, cut);
		assert_true(mqc_decode(c->v, copy, cut, 0, &Q) < 0);
		free(copy);
		assert_int_equal(mqc_encode(c->v, &P, again, cut), -ENOSPC);
	}
	assert_int_equal(mqc_decode(c->v, buf, (u32)n, (u32)n - 1, &Q), -MQC_E_TOO_BIG);
}

/* ---- every property ------------------------------------------------------------------- */

struct prop_case {
	const char *name;
	u8 id, where;
	u32 num;
	const char *str;
};

#define PC(nm, id, where, num, str) { "property_" nm, id, where, num, str }
static const struct prop_case prop_cases[] = {
	PC("payload_format", MQC_P_PAYLOAD_FORMAT, MQC_PUBLISH, 1, NULL),
	PC("message_expiry", MQC_P_MESSAGE_EXPIRY, MQC_PUBLISH, 0xfffffffe, NULL),
	PC("content_type", MQC_P_CONTENT_TYPE, MQC_PUBLISH, 0, "text/plain"),
	PC("response_topic", MQC_P_RESPONSE_TOPIC, MQC_PUBLISH, 0, "reply/here"),
	PC("correlation_data", MQC_P_CORRELATION_DATA, MQC_PUBLISH, 0, "\x01\x02"),
	PC("subscription_id", MQC_P_SUBSCRIPTION_ID, MQC_SUBSCRIBE, 16384, NULL),
	PC("session_expiry", MQC_P_SESSION_EXPIRY, MQC_CONNECT, 86400, NULL),
	PC("assigned_client_id", MQC_P_ASSIGNED_CLIENT_ID, MQC_CONNACK, 0, "auto-xyz"),
	PC("server_keepalive", MQC_P_SERVER_KEEPALIVE, MQC_CONNACK, 65535, NULL),
	PC("auth_method", MQC_P_AUTH_METHOD, MQC_AUTH, 0, "SCRAM-SHA-1"),
	PC("auth_data", MQC_P_AUTH_DATA, MQC_AUTH, 0, "\xff\x00"),
	PC("request_problem_info", MQC_P_REQUEST_PROBLEM_INFO, MQC_CONNECT, 0, NULL),
	PC("will_delay", MQC_P_WILL_DELAY, 0, 30, NULL),
	PC("request_response_info", MQC_P_REQUEST_RESPONSE_INFO, MQC_CONNECT, 1, NULL),
	PC("response_info", MQC_P_RESPONSE_INFO, MQC_CONNACK, 0, "resp/"),
	PC("server_reference", MQC_P_SERVER_REFERENCE, MQC_DISCONNECT, 0, "other:1883"),
	PC("reason_string", MQC_P_REASON_STRING, MQC_PUBACK, 0, "quota"),
	PC("receive_max", MQC_P_RECEIVE_MAX, MQC_CONNECT, 1, NULL),
	PC("topic_alias_max", MQC_P_TOPIC_ALIAS_MAX, MQC_CONNACK, 10, NULL),
	PC("topic_alias", MQC_P_TOPIC_ALIAS, MQC_PUBLISH, 3, NULL),
	PC("max_qos", MQC_P_MAX_QOS, MQC_CONNACK, 1, NULL),
	PC("retain_available", MQC_P_RETAIN_AVAILABLE, MQC_CONNACK, 0, NULL),
	PC("user_property", MQC_P_USER_PROPERTY, MQC_PUBREL, 0, "name"),
	PC("max_packet_size", MQC_P_MAX_PACKET_SIZE, MQC_CONNACK, 1024, NULL),
	PC("wildcard_sub_available", MQC_P_WILDCARD_SUB_AVAILABLE, MQC_CONNACK, 0, NULL),
	PC("sub_id_available", MQC_P_SUB_ID_AVAILABLE, MQC_CONNACK, 1, NULL),
	PC("shared_sub_available", MQC_P_SHARED_SUB_AVAILABLE, MQC_CONNACK, 0, NULL),
};

static void set_prop(struct mqc_props *pr, const struct prop_case *c)
{
	struct mqc_str s = { (const u8 *)c->str, c->str ? (u32)strlen(c->str) : 0 };

	if (c->id == MQC_P_CORRELATION_DATA || c->id == MQC_P_AUTH_DATA)
		s.len = 2;
	pr->present |= 1ull << c->id;
	switch (c->id) {
	case MQC_P_PAYLOAD_FORMAT: pr->payload_format = (u8)c->num; break;
	case MQC_P_MESSAGE_EXPIRY: pr->message_expiry = c->num; break;
	case MQC_P_CONTENT_TYPE: pr->content_type = s; break;
	case MQC_P_RESPONSE_TOPIC: pr->response_topic = s; break;
	case MQC_P_CORRELATION_DATA: pr->correlation_data = s; break;
	case MQC_P_SUBSCRIPTION_ID: pr->subscription_id = c->num; break;
	case MQC_P_SESSION_EXPIRY: pr->session_expiry = c->num; break;
	case MQC_P_ASSIGNED_CLIENT_ID: pr->assigned_client_id = s; break;
	case MQC_P_SERVER_KEEPALIVE: pr->server_keepalive = (u16)c->num; break;
	case MQC_P_AUTH_METHOD: pr->auth_method = s; break;
	case MQC_P_AUTH_DATA: pr->auth_data = s; break;
	case MQC_P_REQUEST_PROBLEM_INFO: pr->request_problem_info = (u8)c->num; break;
	case MQC_P_WILL_DELAY: pr->will_delay = c->num; break;
	case MQC_P_REQUEST_RESPONSE_INFO: pr->request_response_info = (u8)c->num; break;
	case MQC_P_RESPONSE_INFO: pr->response_info = s; break;
	case MQC_P_SERVER_REFERENCE: pr->server_reference = s; break;
	case MQC_P_REASON_STRING: pr->reason_string = s; break;
	case MQC_P_RECEIVE_MAX: pr->receive_max = (u16)c->num; break;
	case MQC_P_TOPIC_ALIAS_MAX: pr->topic_alias_max = (u16)c->num; break;
	case MQC_P_TOPIC_ALIAS: pr->topic_alias = (u16)c->num; break;
	case MQC_P_MAX_QOS: pr->max_qos = (u8)c->num; break;
	case MQC_P_RETAIN_AVAILABLE: pr->retain_available = (u8)c->num; break;
	case MQC_P_MAX_PACKET_SIZE: pr->max_packet_size = c->num; break;
	case MQC_P_WILDCARD_SUB_AVAILABLE: pr->wildcard_sub_available = (u8)c->num; break;
	case MQC_P_SUB_ID_AVAILABLE: pr->sub_id_available = (u8)c->num; break;
	case MQC_P_SHARED_SUB_AVAILABLE: pr->shared_sub_available = (u8)c->num; break;
	default: break;
	}
}

/* The value as the decoder stored it, for comparison. */
static void get_prop(const struct mqc_props *pr, u8 id, u32 *num, struct mqc_str *s)
{
	struct mqc_props tmp = *pr;
	struct mqc_str cur = pr->raw;
	struct mqc_prop it;

	*num = 0;
	s->p = NULL;
	s->len = 0;
	/* mqc_prop_next sees every property, the repeatable ones included */
	while (mqc_prop_next(&cur, &it) == 1) {
		if (it.id != id)
			continue;
		*num = it.num;
		*s = it.str;
	}
	(void)tmp;
}

static void run_property(void **st)
{
	const struct prop_case *c = *st;
	struct mqc_props pr = { 0 }, wp = { 0 };
	struct mqc_will w = { 0 };
	struct mqc_user_prop up = { { (const u8 *)c->str, 4 }, { (const u8 *)"val", 3 } };
	const struct mqc_props *got;
	struct mqc_str want = { (const u8 *)c->str, c->str ? (u32)strlen(c->str) : 0 }, s;
	u32 num;
	int n;

	if (c->id == MQC_P_CORRELATION_DATA || c->id == MQC_P_AUTH_DATA)
		want.len = 2;
	memset(&P, 0, sizeof(P));
	P.type = c->where ? c->where : MQC_CONNECT;
	P.pid = 7;
	switch (P.type) {
	case MQC_CONNECT:
		P.connect.version = MQC_V5;
		P.connect.client_id = S("c");
		if (!c->where) {
			w.topic = S("w");
			w.props = &wp;
			set_prop(&wp, c);
			P.connect.will = &w;
		} else {
			set_prop(&pr, c);
			P.connect.props = &pr;
		}
		break;
	case MQC_CONNACK:
		set_prop(&P.connack.props, c);
		break;
	case MQC_PUBLISH:
		P.publish.topic = S("t");
		P.publish.qos = 1;
		P.publish.pid = 7;
		if (c->id == MQC_P_TOPIC_ALIAS)
			P.publish.topic_alias = (u16)c->num;
		else
			set_prop(&pr, c);
		P.publish.props = &pr;
		break;
	case MQC_SUBSCRIBE:
		P.sub.n = 1;
		P.sub.filter[0] = S("f");
		set_prop(&P.props, c);
		break;
	default:
		P.reason = P.type == MQC_AUTH ? 0x18 : 0;
		if (c->id == MQC_P_USER_PROPERTY) {
			/* acks carry user properties only through a raw block */
			static u8 raw[32];
			u32 k = 0;

			raw[k++] = MQC_P_USER_PROPERTY;
			raw[k++] = 0;
			raw[k++] = 4;
			memcpy(raw + k, c->str, 4);
			k += 4;
			raw[k++] = 0;
			raw[k++] = 3;
			memcpy(raw + k, "val", 3);
			k += 3;
			P.props.raw.p = raw;
			P.props.raw.len = k;
			P.props.present = 1ull << MQC_P_USER_PROPERTY;
		} else {
			set_prop(&P.props, c);
		}
		break;
	}
	(void)up;
	n = mqc_encode(MQC_V5, &P, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(mqc_decode(MQC_V5, buf, (u32)n, 0, &Q), 0);
	got = !c->where ? &Q.will_props : P.type == MQC_CONNACK ? &Q.connack.props : &Q.props;
	assert_true(got->present & (1ull << c->id));
	get_prop(got, c->id, &num, &s);
	assert_int_equal(num, c->num);
	assert_true(str_eq(s, want));
	if (c->id == MQC_P_TOPIC_ALIAS)
		assert_int_equal(Q.publish.topic_alias, c->num);
	/* the same property in a packet type that does not allow it is refused */
	if (P.type != MQC_CONNECT && c->id != MQC_P_USER_PROPERTY) {
		struct mqc_packet *bad = &P;

		memset(bad, 0, sizeof(*bad));
		bad->type = c->id == MQC_P_REASON_STRING ? MQC_SUBSCRIBE : MQC_PUBACK;
		bad->pid = 1;
		bad->sub.n = 1;
		bad->sub.filter[0] = S("f");
		set_prop(&bad->props, c);
		assert_int_equal(mqc_encode(MQC_V5, bad, buf, sizeof(buf)), -EINVAL);
	}
}

/* Repeatable properties: every user property and every PUBLISH subscription id. */
static void test_v5_3_3_2_3_8_repeatable_properties(void **st)
{
	static const u8 pkt[] = { 0x30, 0x15, 0x00, 0x01, 't', 0x11, 0x0b, 0x05, 0x0b, 0x81,
				  0x01, 0x26, 0x00, 0x01, 'a', 0x00, 0x00, 0x26, 0x00, 0x01,
				  'a', 0x00, 0x00 };
	struct mqc_str cur;
	struct mqc_prop it;
	u32 sids[2], nsid = 0, nuser = 0;
	int r;

	assert_int_equal(mqc_decode(MQC_V5, pkt, sizeof(pkt), 0, &Q), 0);
	assert_int_equal(Q.props.subscription_id, 5);
	cur = Q.props.raw;
	while ((r = mqc_prop_next(&cur, &it)) == 1) {
		if (it.id == MQC_P_SUBSCRIPTION_ID)
			sids[nsid++] = it.num;
		if (it.id == MQC_P_USER_PROPERTY) {
			assert_true(str_eq(it.str, S("a")));
			assert_int_equal(it.str2.len, 0);
			nuser++;
		}
	}
	assert_int_equal(r, 0);
	assert_int_equal(nsid, 2);
	assert_int_equal(sids[0], 5);
	assert_int_equal(sids[1], 129);
	assert_int_equal(nuser, 2);
}

/* ---- malformed input: one specific error per case ---------------------------------------- */

struct bad_case {
	const char *name;
	u8 v;
	const u8 *b;
	u32 n;
	int err;
	u32 max;
};

#define BAD(nm, v, e, ...)                                                                 \
	{ "malformed_" nm, v, (const u8[]){ __VA_ARGS__ }, sizeof((const u8[]){ __VA_ARGS__ }), \
	  e, 0 }
#define BADMAX(nm, v, e, max, ...)                                                         \
	{ "malformed_" nm, v, (const u8[]){ __VA_ARGS__ }, sizeof((const u8[]){ __VA_ARGS__ }), \
	  e, max }

static const struct bad_case bad_cases[] = {
	/* MQTT-1.5.5 / 2.2.3: remaining length */
	BAD("varint_5_bytes", MQC_V311, -MQC_E_VARINT, 0xc0, 0x80, 0x80, 0x80, 0x80, 0x00),
	BAD("remaining_len_past_input", MQC_V311, -MQC_E_SHORT, 0xc0, 0x05),
	BAD("bytes_after_frame", MQC_V311, -MQC_E_TRAILING, 0xc0, 0x00, 0x00),
	BADMAX("over_max_packet_size", MQC_V5, -MQC_E_TOO_BIG, 5, 0x30, 0x04, 0x00, 0x01, 'a',
	       0x00),
	/* 2.1.2 / 2.1.3: packet types and fixed-header flags */
	BAD("type_0", MQC_V5, -MQC_E_TYPE, 0x00, 0x00),
	BAD("auth_on_311", MQC_V311, -MQC_E_TYPE, 0xf0, 0x00),
	BAD("connack_flags", MQC_V311, -MQC_E_FLAGS, 0x21, 0x02, 0x00, 0x00),
	BAD("pubrel_flags_0", MQC_V311, -MQC_E_FLAGS, 0x60, 0x02, 0x00, 0x01),
	BAD("subscribe_flags_0", MQC_V311, -MQC_E_FLAGS, 0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a',
	    0x00),
	BAD("unsubscribe_flags_3", MQC_V5, -MQC_E_FLAGS, 0xa3, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01,
	    'a'),
	BAD("pingreq_flags", MQC_V5, -MQC_E_FLAGS, 0xc1, 0x00),
	BAD("publish_qos3", MQC_V311, -MQC_E_QOS3, 0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01),
	BAD("publish_dup_qos0", MQC_V5, -MQC_E_DUP_QOS0, 0x38, 0x04, 0x00, 0x01, 'a', 0x00),
	/* 2.2.1: packet identifiers */
	BAD("publish_pid0", MQC_V311, -MQC_E_PID0, 0x32, 0x05, 0x00, 0x01, 'a', 0x00, 0x00),
	BAD("puback_pid0", MQC_V311, -MQC_E_PID0, 0x40, 0x02, 0x00, 0x00),
	BAD("subscribe_pid0", MQC_V311, -MQC_E_PID0, 0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 'a',
	    0x00),
	BAD("suback_pid0", MQC_V311, -MQC_E_PID0, 0x90, 0x03, 0x00, 0x00, 0x00),
	/* 3.3.2: topic names */
	BAD("publish_topic_plus", MQC_V311, -MQC_E_TOPIC_WILD, 0x30, 0x05, 0x00, 0x03, 'a', '/',
	    '+'),
	BAD("publish_topic_hash", MQC_V5, -MQC_E_TOPIC_WILD, 0x30, 0x04, 0x00, 0x01, '#', 0x00),
	BAD("publish_topic_empty_311", MQC_V311, -MQC_E_TOPIC_EMPTY, 0x30, 0x02, 0x00, 0x00),
	BAD("publish_topic_empty_no_alias", MQC_V5, -MQC_E_TOPIC_EMPTY, 0x30, 0x03, 0x00, 0x00,
	    0x00),
	BAD("publish_topic_len_past_end", MQC_V311, -MQC_E_SHORT, 0x30, 0x03, 0x00, 0x05, 'a'),
	BAD("publish_pid_missing", MQC_V311, -MQC_E_SHORT, 0x32, 0x04, 0x00, 0x01, 'a', 0x00),
	/* 1.5.4: strings */
	BAD("topic_nul", MQC_V311, -MQC_E_UTF8_NUL, 0x30, 0x05, 0x00, 0x03, 'a', 0x00, 'b'),
	BAD("topic_surrogate", MQC_V311, -MQC_E_UTF8_SURROGATE, 0x30, 0x05, 0x00, 0x03, 0xed,
	    0xb0, 0x80),
	BAD("topic_overlong", MQC_V311, -MQC_E_UTF8, 0x30, 0x04, 0x00, 0x02, 0xc0, 0x80),
	BAD("topic_bad_continuation", MQC_V311, -MQC_E_UTF8, 0x30, 0x04, 0x00, 0x02, 0xc3, 0x28),
	BAD("client_id_bad_utf8", MQC_V311, -MQC_E_UTF8, 0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T',
	    'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x02, 0xff, 0xfe),
	/* 2.2.2: properties */
	BAD("prop_len_past_end", MQC_V5, -MQC_E_SHORT, 0x30, 0x04, 0x00, 0x01, 'a', 0x05),
	BAD("prop_value_past_end", MQC_V5, -MQC_E_SHORT, 0x30, 0x06, 0x00, 0x01, 'a', 0x02, 0x02,
	    0x00),
	BAD("prop_unknown_id", MQC_V5, -MQC_E_PROP_UNKNOWN, 0x30, 0x05, 0x00, 0x01, 'a', 0x01,
	    0x04),
	BAD("prop_id_not_1_byte", MQC_V5, -MQC_E_PROP_UNKNOWN, 0x30, 0x07, 0x00, 0x01, 'a', 0x03,
	    0x81, 0x00, 0x00),
	BAD("prop_wrong_packet", MQC_V5, -MQC_E_PROP_WRONG, 0x40, 0x07, 0x00, 0x01, 0x00, 0x03,
	    0x23, 0x00, 0x01),
	BAD("prop_will_delay_in_connect", MQC_V5, -MQC_E_PROP_WRONG, 0x10, 0x12, 0x00, 0x04, 'M',
	    'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x05, 0x18, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00),
	BAD("prop_duplicate", MQC_V5, -MQC_E_PROP_DUP, 0x30, 0x08, 0x00, 0x01, 'a', 0x04, 0x01,
	    0x00, 0x01, 0x01),
	BAD("prop_sub_id_twice_in_subscribe", MQC_V5, -MQC_E_PROP_DUP, 0x82, 0x0b, 0x00, 0x01,
	    0x04, 0x0b, 0x01, 0x0b, 0x02, 0x00, 0x01, 'a', 0x00),
	BAD("prop_receive_max_0", MQC_V5, -MQC_E_PROP_VALUE, 0x20, 0x06, 0x00, 0x00, 0x03, 0x21,
	    0x00, 0x00),
	BAD("prop_max_packet_size_0", MQC_V5, -MQC_E_PROP_VALUE, 0x20, 0x08, 0x00, 0x00, 0x05,
	    0x27, 0x00, 0x00, 0x00, 0x00),
	BAD("prop_max_qos_2", MQC_V5, -MQC_E_PROP_VALUE, 0x20, 0x05, 0x00, 0x00, 0x02, 0x24,
	    0x02),
	BAD("prop_payload_format_2", MQC_V5, -MQC_E_PROP_VALUE, 0x30, 0x06, 0x00, 0x01, 'a', 0x02,
	    0x01, 0x02),
	BAD("prop_sub_id_0", MQC_V5, -MQC_E_PROP_VALUE, 0x82, 0x09, 0x00, 0x01, 0x02, 0x0b, 0x00,
	    0x00, 0x01, 'a', 0x00),
	BAD("prop_sub_id_varint_5", MQC_V5, -MQC_E_VARINT, 0x30, 0x0a, 0x00, 0x01, 'a', 0x06,
	    0x0b, 0x80, 0x80, 0x80, 0x80, 0x01),
	BAD("prop_topic_alias_0", MQC_V5, -MQC_E_ALIAS, 0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00,
	    0x00),
	BAD("prop_user_bad_utf8", MQC_V5, -MQC_E_UTF8, 0x30, 0x0a, 0x00, 0x01, 'a', 0x06, 0x26,
	    0x00, 0x01, 0xff, 0x00, 0x00),
	/* 3.1: CONNECT */
	BAD("connect_protocol_name", MQC_V311, -MQC_E_PROTOCOL, 0x10, 0x0c, 0x00, 0x04, 'M', 'Q',
	    'T', 't', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00),
	BAD("connect_level_3", MQC_V311, -MQC_E_PROTOCOL, 0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T',
	    'T', 0x03, 0x02, 0x00, 0x00, 0x00, 0x00),
	BAD("connect_reserved_flag", MQC_V311, -MQC_E_FLAGS, 0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T',
	    'T', 0x04, 0x03, 0x00, 0x00, 0x00, 0x00),
	BAD("connect_will_qos3", MQC_V311, -MQC_E_QOS3, 0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T',
	    0x04, 0x1e, 0x00, 0x00, 0x00, 0x00),
	BAD("connect_will_retain_no_will", MQC_V311, -MQC_E_FLAGS, 0x10, 0x0c, 0x00, 0x04, 'M',
	    'Q', 'T', 'T', 0x04, 0x22, 0x00, 0x00, 0x00, 0x00),
	BAD("connect_password_no_user_311", MQC_V311, -MQC_E_FLAGS, 0x10, 0x0c, 0x00, 0x04, 'M',
	    'Q', 'T', 'T', 0x04, 0x42, 0x00, 0x00, 0x00, 0x00),
	BAD("connect_will_topic_wild", MQC_V311, -MQC_E_TOPIC_WILD, 0x10, 0x11, 0x00, 0x04, 'M',
	    'Q', 'T', 'T', 0x04, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, '#', 0x00, 0x00),
	/* 3.2: CONNACK */
	BAD("connack_rc_6_311", MQC_V311, -MQC_E_REASON, 0x20, 0x02, 0x00, 0x06),
	BAD("connack_reason_bad_v5", MQC_V5, -MQC_E_REASON, 0x20, 0x03, 0x00, 0x01, 0x00),
	BAD("connack_ack_flags", MQC_V311, -MQC_E_FLAGS, 0x20, 0x02, 0x02, 0x00),
	BAD("connack_session_with_error", MQC_V311, -MQC_E_PROTOCOL, 0x20, 0x02, 0x01, 0x05),
	BAD("connack_311_trailing", MQC_V311, -MQC_E_TRAILING, 0x20, 0x03, 0x00, 0x00, 0x00),
	/* 3.4-3.7: acks */
	BAD("puback_trailing_311", MQC_V311, -MQC_E_TRAILING, 0x40, 0x03, 0x00, 0x01, 0x00),
	BAD("puback_reason_0x92", MQC_V5, -MQC_E_REASON, 0x40, 0x03, 0x00, 0x01, 0x92),
	BAD("pubrel_reason_0x80", MQC_V5, -MQC_E_REASON, 0x62, 0x03, 0x00, 0x01, 0x80),
	BAD("pubcomp_props_trailing", MQC_V5, -MQC_E_TRAILING, 0x70, 0x05, 0x00, 0x01, 0x00, 0x00,
	    0x00),
	BAD("puback_short", MQC_V5, -MQC_E_SHORT, 0x40, 0x01, 0x00),
	/* 3.8-3.11: (un)subscribe */
	BAD("subscribe_no_filter", MQC_V311, -MQC_E_PROTOCOL, 0x82, 0x02, 0x00, 0x01),
	BAD("unsubscribe_no_filter", MQC_V5, -MQC_E_PROTOCOL, 0xa2, 0x03, 0x00, 0x01, 0x00),
	BAD("subscribe_options_reserved_311", MQC_V311, -MQC_E_FLAGS, 0x82, 0x06, 0x00, 0x01, 0x00,
	    0x01, 'a', 0x04),
	BAD("subscribe_options_reserved_v5", MQC_V5, -MQC_E_FLAGS, 0x82, 0x07, 0x00, 0x01, 0x00,
	    0x00, 0x01, 'a', 0x40),
	BAD("subscribe_retain_handling_3", MQC_V5, -MQC_E_FLAGS, 0x82, 0x07, 0x00, 0x01, 0x00,
	    0x00, 0x01, 'a', 0x30),
	BAD("subscribe_qos3", MQC_V311, -MQC_E_QOS3, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a',
	    0x03),
	BAD("subscribe_missing_options", MQC_V311, -MQC_E_SHORT, 0x82, 0x05, 0x00, 0x01, 0x00,
	    0x01, 'a'),
	BAD("subscribe_filter_hash_mid", MQC_V311, -MQC_E_TOPIC_WILD, 0x82, 0x08, 0x00, 0x01, 0x00,
	    0x03, '#', '/', 'a', 0x00),
	BAD("subscribe_filter_plus_mixed", MQC_V311, -MQC_E_TOPIC_WILD, 0x82, 0x07, 0x00, 0x01,
	    0x00, 0x02, 'a', '+', 0x00),
	BAD("subscribe_filter_empty", MQC_V311, -MQC_E_TOPIC_EMPTY, 0x82, 0x05, 0x00, 0x01, 0x00,
	    0x00, 0x00),
	BAD("suback_code_bad_311", MQC_V311, -MQC_E_REASON, 0x90, 0x03, 0x00, 0x01, 0x03),
	BAD("suback_code_bad_v5", MQC_V5, -MQC_E_REASON, 0x90, 0x04, 0x00, 0x01, 0x00, 0x11),
	BAD("suback_no_codes", MQC_V311, -MQC_E_PROTOCOL, 0x90, 0x02, 0x00, 0x01),
	BAD("unsuback_311_trailing", MQC_V311, -MQC_E_TRAILING, 0xb0, 0x03, 0x00, 0x01, 0x00),
	BAD("unsuback_code_bad_v5", MQC_V5, -MQC_E_REASON, 0xb0, 0x04, 0x00, 0x01, 0x00, 0x02),
	/* 3.12-3.15 */
	BAD("pingresp_trailing", MQC_V5, -MQC_E_TRAILING, 0xd0, 0x01, 0x00),
	BAD("disconnect_trailing_311", MQC_V311, -MQC_E_TRAILING, 0xe0, 0x01, 0x00),
	BAD("disconnect_reason_bad", MQC_V5, -MQC_E_REASON, 0xe0, 0x01, 0x05),
	BAD("auth_reason_bad", MQC_V5, -MQC_E_REASON, 0xf0, 0x01, 0x01),
	BAD("auth_prop_wrong", MQC_V5, -MQC_E_PROP_WRONG, 0xf0, 0x04, 0x18, 0x02, 0x01, 0x00),
};

static void run_bad(void **st)
{
	const struct bad_case *c = *st;
	/* an exact-size heap copy, so ASan catches any read past the end */
	u8 *copy = malloc(c->n);
	int err;

	memcpy(copy, c->b, c->n);
	err = mqc_decode(c->v, copy, c->n, c->max, &Q);
	free(copy);
	if (err != c->err)
		fail_msg("%s: got %d (%s), want %d (%s)", c->name, err, mqc_strerror(err), c->err,
			 mqc_strerror(c->err));
}

/* ---- encoder argument checks and error names ------------------------------------------ */

static void test_encode_rejects_invalid(void **st)
{
	struct mqc_pub p = { .topic = S("a/b"), .qos = 3 };
	struct mqc_connect c = { .version = MQC_V311, .client_id = S("c"), .password = S("p") };

	assert_int_equal(mqc_encode_publish(MQC_V311, &p, buf, sizeof(buf), NULL), -EINVAL);
	p.qos = 0;
	p.dup = 1;
	assert_int_equal(mqc_encode_publish(MQC_V311, &p, buf, sizeof(buf), NULL), -EINVAL);
	p.dup = 0;
	p.topic.len = 0;
	assert_int_equal(mqc_encode_publish(MQC_V311, &p, buf, sizeof(buf), NULL), -EINVAL);
	p.topic_alias = 2;
	assert_true(mqc_encode_publish(MQC_V5, &p, buf, sizeof(buf), NULL) > 0);
	assert_int_equal(mqc_encode_publish(7, &p, buf, sizeof(buf), NULL), -EINVAL);
	assert_int_equal(mqc_encode_connect(&c, buf, sizeof(buf)), -EINVAL); /* 3.1.2-22 */
	c.version = MQC_V5;
	assert_true(mqc_encode_connect(&c, buf, sizeof(buf)) > 0);
	memset(&P, 0, sizeof(P));
	P.type = MQC_PUBACK;
	assert_int_equal(mqc_encode(MQC_V311, &P, buf, sizeof(buf)), -EINVAL); /* pid 0 */
	P.type = MQC_AUTH;
	assert_int_equal(mqc_encode(MQC_V311, &P, buf, sizeof(buf)), -EINVAL);
	P.type = MQC_SUBSCRIBE;
	P.pid = 1;
	assert_int_equal(mqc_encode(MQC_V311, &P, buf, sizeof(buf)), -EINVAL); /* no filter */
}

static void test_strerror_names_every_code(void **st)
{
	int e;

	for (e = MQC_E_BASE + 1; e < MQC_E_MAX; e++) {
		const char *s = mqc_strerror(-e);

		assert_non_null(s);
		assert_string_not_equal(s, "unknown error");
		assert_string_not_equal(s, mqc_strerror(-(e == MQC_E_BASE + 1 ? e + 1 : e - 1)));
	}
	assert_string_equal(mqc_strerror(-MQC_E_MAX), "unknown error");
	assert_string_equal(mqc_strerror(0), "success");
}

/* The decoder indexes at most MQC_MAX_TOPICS filters or codes; more is MQC_E_TOO_BIG. */
static void test_decode_topic_count_limit(void **st)
{
	u8 *b = buf;
	u32 i, n = 0;

	b[n++] = 0x82;
	b[n++] = 0; /* set below */
	b[n++] = 0;
	b[n++] = 1;
	for (i = 0; i < MQC_MAX_TOPICS + 1; i++) {
		b[n++] = 0;
		b[n++] = 1;
		b[n++] = 'a';
		b[n++] = 0;
	}
	/* the length needs two bytes: 2 + 65 * 4 = 262 */
	memmove(b + 3, b + 2, n - 2);
	b[1] = (u8)(0x80 | (262 & 0x7f));
	b[2] = 262 >> 7;
	n++;
	assert_int_equal(mqc_decode(MQC_V311, b, n, 0, &Q), -MQC_E_TOO_BIG);
	/* exactly MQC_MAX_TOPICS is fine */
	b[2] = (u8)((262 - 4) >> 7);
	b[1] = (u8)(0x80 | ((262 - 4) & 0x7f));
	assert_int_equal(mqc_decode(MQC_V311, b, n - 4, 0, &Q), 0);
	assert_int_equal(Q.sub.n, MQC_MAX_TOPICS);
	/* strings longer than their 2-byte length can say are refused by the encoder */
	memset(&P, 0, sizeof(P));
	P.type = MQC_PUBLISH;
	P.publish.topic.p = (const u8 *)"t";
	P.publish.topic.len = 70000;
	assert_int_equal(mqc_encode(MQC_V311, &P, buf, sizeof(buf)), -EINVAL);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_MQTT_3_3_known_publish_bytes),
		cmocka_unit_test(test_MQTT_3_1_known_connect_bytes),
		cmocka_unit_test(test_MQTT_2_2_3_varint_boundaries),
		cmocka_unit_test(test_MQTT_2_2_3_frame_len_limits),
		cmocka_unit_test(test_MQTT_1_5_4_utf8_rules),
		cmocka_unit_test(test_MQTT_4_7_1_topic_and_filter_rules),
		cmocka_unit_test(test_v5_3_3_2_3_8_repeatable_properties),
		cmocka_unit_test(test_encode_rejects_invalid),
		cmocka_unit_test(test_strerror_names_every_code),
		cmocka_unit_test(test_decode_topic_count_limit),
	};
	static struct CMUnitTest rt[sizeof(rt_cases) / sizeof(rt_cases[0])];
	static struct CMUnitTest pt[sizeof(prop_cases) / sizeof(prop_cases[0])];
	static struct CMUnitTest bt[sizeof(bad_cases) / sizeof(bad_cases[0])];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(rt) / sizeof(rt[0]); i++)
		rt[i] = (struct CMUnitTest){ rt_cases[i].name, run_roundtrip, NULL, NULL,
					     (void *)&rt_cases[i] };
	for (i = 0; i < sizeof(pt) / sizeof(pt[0]); i++)
		pt[i] = (struct CMUnitTest){ prop_cases[i].name, run_property, NULL, NULL,
					     (void *)&prop_cases[i] };
	for (i = 0; i < sizeof(bt) / sizeof(bt[0]); i++)
		bt[i] = (struct CMUnitTest){ bad_cases[i].name, run_bad, NULL, NULL,
					     (void *)&bad_cases[i] };
	rc = cmocka_run_group_tests_name("codec", tests, NULL, NULL);
	rc |= _cmocka_run_group_tests("codec_roundtrip", rt, sizeof(rt) / sizeof(rt[0]), NULL,
				      NULL);
	rc |= _cmocka_run_group_tests("codec_properties", pt, sizeof(pt) / sizeof(pt[0]), NULL,
				      NULL);
	rc |= _cmocka_run_group_tests("codec_malformed", bt, sizeof(bt) / sizeof(bt[0]), NULL,
				      NULL);
	return rc ? 1 : 0;
}
