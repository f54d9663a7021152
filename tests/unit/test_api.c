// SPDX-License-Identifier: GPL-2.0 OR MIT
/* cmocka tests of the libmqttq API against the scripted fake broker: every protocol path and its error paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "fakebroker.h"
#include "mqttq.h"

/* Events seen by drive(), copied out since their pointers die at the next wait. */
#define LOG_MAX 4096
struct logged {
	struct mqttq_event ev;
	char topic[128];
	char payload[128];
	char ctype[64];
	char uname[32], uval[32];
	uint8_t codes[8];
};
static struct logged lg[LOG_MAX];
static int nlg;

static struct fb *fb;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_event(const struct mqttq_event *e)
{
	struct logged *l;

	if (nlg >= LOG_MAX)
		return;
	l = &lg[nlg++];
	memset(l, 0, sizeof(*l));
	l->ev = *e;
	if (e->type == MQTTQ_EV_MESSAGE) {
		size_t cursor = 0, nl, vl;
		const char *n, *v;

		snprintf(l->topic, sizeof(l->topic), "%.*s", (int)e->msg.topic_len, e->msg.topic);
		snprintf(l->payload, sizeof(l->payload), "%.*s", (int)e->msg.payload_len,
			 (const char *)e->msg.payload);
		if (e->msg.props.content_type)
			snprintf(l->ctype, sizeof(l->ctype), "%.*s",
				 (int)e->msg.props.content_type_len, e->msg.props.content_type);
		if (mqttq_user_prop_next(&e->msg, &cursor, &n, &nl, &v, &vl) == 1) {
			snprintf(l->uname, sizeof(l->uname), "%.*s", (int)nl, n);
			snprintf(l->uval, sizeof(l->uval), "%.*s", (int)vl, v);
		}
	}
	if (e->codes)
		memcpy(l->codes, e->codes, e->ncodes < 8 ? e->ncodes : 8);
	l->ev.codes = NULL;
	l->ev.msg.topic = NULL;
	l->ev.msg.payload = NULL;
}

static int count_ev(int type)
{
	int n = 0;

	for (int i = 0; i < nlg; i++)
		n += lg[i].ev.type == type;
	return n;
}

static struct logged *find_ev(int type, int nth)
{
	for (int i = 0; i < nlg; i++)
		if (lg[i].ev.type == type && nth-- == 0)
			return &lg[i];
	return NULL;
}

typedef int (*pred_fn)(void *arg);

/* Runs the client until pred() holds or ms pass; every event lands in lg[]. */
static int drive(struct mqttq *q, int ms, pred_fn pred, void *arg)
{
	uint64_t end = now_ms() + ms;
	struct mqttq_event ev[64];

	while (now_ms() < end) {
		int n = mqttq_wait(q, ev, 64, 10);

		assert_true(n >= 0);
		for (int i = 0; i < n; i++)
			log_event(&ev[i]);
		if (pred && pred(arg))
			return 1;
	}
	return pred ? pred(arg) : 0;
}

struct want {
	int type, n;
};

static int have_events(void *arg)
{
	struct want *w = arg;

	return count_ev(w->type) >= w->n;
}

static int drive_events(struct mqttq *q, int type, int n, int ms)
{
	struct want w = { type, n };

	return drive(q, ms, have_events, &w);
}

struct bwant {
	int type, n;
};

static int broker_has(void *arg)
{
	struct bwant *w = arg;

	return fb_count(fb, w->type) >= w->n;
}

static int drive_broker(struct mqttq *q, int type, int n, int ms)
{
	struct bwant w = { type, n };

	return drive(q, ms, broker_has, &w);
}

/* For checks after the client is done: the broker thread may still be reading. */
static int wait_broker(int type, int n, int ms)
{
	for (int i = 0; i < ms / 5 && fb_count(fb, type) < n; i++)
		usleep(5000);
	return fb_count(fb, type) >= n;
}

static void opts_for(struct mqttq_opts *o, int version)
{
	mqttq_opts_init(o);
	o->port = fb_port(fb);
	o->version = version;
	o->client_id = "test-client";
	o->reconnect_min_ms = 20;
	o->reconnect_max_ms = 100;
	o->connect_timeout_ms = 2000;
}

static struct mqttq *client(int version, struct mqttq_opts *custom)
{
	struct mqttq_opts o;
	struct mqttq *q = NULL;

	if (custom)
		o = *custom;
	else
		opts_for(&o, version);
	assert_int_equal(mqttq_new(&q, &o), 0);
	assert_int_equal(mqttq_connect_sync(q, 3000), 0);
	assert_int_equal(mqttq_engine(q), MQTTQ_ENGINE_USERSPACE);
	/* connect_sync leaves its CONNECTED event queued: consume it so tests count from here */
	assert_true(drive_events(q, MQTTQ_EV_CONNECTED, 1, 1000));
	nlg = 0;
	return q;
}

/* All records of a type, in arrival order, into out. */
static int brecs(int type, struct fb_rec *out, int max)
{
	static struct fb_rec all[FB_MAX_REC];
	int n = fb_records(fb, 0, all, FB_MAX_REC), k = 0;

	for (int i = 0; i < n && i < FB_MAX_REC && k < max; i++)
		if (all[i].type == type)
			out[k++] = all[i];
	return k;
}

static int setup(void **state)
{
	nlg = 0;
	fb = fb_start(NULL);
	return fb ? 0 : -1;
}

static int teardown(void **state)
{
	fb_stop(fb);
	fb = NULL;
	return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void test_version_and_errors(void **state)
{
	struct mqttq_opts o;
	struct mqttq *q = NULL;
	const char *bad = "mqtts://x:1";

	assert_int_equal(mqttq_version(), MQTTQ_VERSION);
	assert_string_equal(mqttq_version_string(), MQTTQ_VERSION_STRING);
	assert_string_equal(mqttq_strerror(-MQTTQ_E_VARINT), "remaining length longer than 4 bytes");
	assert_string_equal(mqttq_strerror(-ENOBUFS), strerror(ENOBUFS));
	opts_for(&o, 7);
	assert_int_equal(mqttq_new(&q, &o), -EINVAL);
	assert_null(q);
	assert_true(strstr(mqttq_errmsg(NULL), "version") != NULL);
	opts_for(&o, MQTTQ_V5);
	o.urls = &bad;
	o.nurls = 1;
	assert_int_equal(mqttq_new(&q, &o), -EPROTONOSUPPORT);
	opts_for(&o, MQTTQ_V5);
	o.reconnect_min_ms = 500;
	o.reconnect_max_ms = 100;
	assert_int_equal(mqttq_new(&q, &o), -EINVAL);
	opts_for(&o, MQTTQ_V5);
	o.outbox_path = "";
	assert_int_equal(mqttq_new(&q, &o), -EINVAL);
}

static void pubs_all_qos(int version)
{
	struct mqttq *q = client(version, NULL);
	struct fb_rec r[8];
	char payload[3][16];

	for (int qos = 0; qos < 3; qos++) {
		snprintf(payload[qos], sizeof(payload[qos]), "payload-%d", qos);
		assert_int_equal(mqttq_publish(q, "a/b", payload[qos], strlen(payload[qos]), qos,
					       0, NULL, 100 + qos),
				 0);
	}
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 3, 3000));
	for (int i = 0; i < 3; i++) {
		struct logged *l = find_ev(MQTTQ_EV_PUBLISHED, i);

		assert_int_equal(l->ev.err, 0);
		assert_int_equal(l->ev.reason, 0);
	}
	/* QoS 0 completes at send; QoS 1 and 2 at their acks, which may come in either order */
	assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, 0)->ev.token, 100);
	/* QoS 0 completes once handed to TCP, before the broker read it */
	assert_true(drive_broker(q, MQC_PUBLISH, 3, 2000));
	assert_int_equal(brecs(MQC_PUBLISH, r, 8), 3);
	for (int qos = 0; qos < 3; qos++) {
		assert_string_equal(r[qos].topic, "a/b");
		assert_int_equal(r[qos].qos, qos);
		assert_int_equal(r[qos].payload_len, strlen(payload[qos]));
		assert_memory_equal(r[qos].payload, payload[qos], r[qos].payload_len);
		assert_int_equal(r[qos].dup, 0);
	}
	assert_int_equal(fb_count(fb, MQC_PUBREL), 1);
	assert_int_equal(brecs(MQC_CONNECT, r, 8), 1);
	assert_string_equal(r[0].client_id, "test-client");
	assert_int_equal(r[0].clean, 1);
	assert_int_equal(mqttq_disconnect(q, 0), 0);
	assert_true(wait_broker(MQC_DISCONNECT, 1, 2000));
	assert_int_equal(fb_count(fb, MQC_DISCONNECT), 1);
	assert_int_equal(mqttq_publish(q, "a/b", "x", 1, 0, 0, NULL, 1), -ESHUTDOWN);
	mqttq_destroy(q);
}

static void test_publish_v5(void **state)
{
	pubs_all_qos(MQTTQ_V5);
}

static void test_publish_v311(void **state)
{
	pubs_all_qos(MQTTQ_V311);
}

static void test_connack_refused(void **state)
{
	struct fb_cfg c;
	struct mqttq_opts o;
	struct mqttq *q;
	struct logged *l;

	fb_cfg_default(&c);
	c.connack_reason = 0x86; /* bad user name or password */
	fb_set_cfg(fb, &c);
	opts_for(&o, MQTTQ_V5);
	o.username = "u";
	o.password = "p";
	o.password_len = 1;
	assert_int_equal(mqttq_new(&q, &o), 0);
	assert_int_equal(mqttq_connect_sync(q, 3000), -ECONNREFUSED);
	assert_true(strstr(mqttq_errmsg(q), "0x86") != NULL);
	assert_true(drive_events(q, MQTTQ_EV_DISCONNECTED, 1, 1000));
	l = find_ev(MQTTQ_EV_DISCONNECTED, 0);
	assert_int_equal(l->ev.err, -ECONNREFUSED);
	assert_int_equal(l->ev.reason, 0x86);
	assert_int_equal(l->ev.will_retry, 0);
	assert_int_equal(count_ev(MQTTQ_EV_CONNECTED), 0);
	assert_false(mqttq_is_connected(q));
	mqttq_destroy(q);
}

/* A malformed packet ends the connection; accepted QoS 1 messages are resent on resume. */
static void test_malformed_then_resend(void **state)
{
	struct fb_cfg c;
	struct mqttq_opts o;
	struct mqttq *q;
	struct fb_rec r[64];
	struct logged *l;
	int n, dups = 0;

	fb_cfg_default(&c);
	c.no_ack = 1;
	c.garbage_after = 3;
	fb_set_cfg(fb, &c);
	opts_for(&o, MQTTQ_V5);
	o.clean = 0;
	o.session_expiry = 600;
	q = client(0, &o);
	for (int i = 0; i < 3; i++)
		assert_int_equal(mqttq_publish(q, "m/q1", "abc", 3, 1, 0, NULL, 10 + i), 0);
	assert_true(drive_events(q, MQTTQ_EV_DISCONNECTED, 1, 3000));
	l = find_ev(MQTTQ_EV_DISCONNECTED, 0);
	assert_int_equal(l->ev.err, -MQTTQ_E_VARINT);
	assert_int_equal(l->ev.will_retry, 1);
	assert_int_equal(count_ev(MQTTQ_EV_PUBLISHED), 0);
	/* the broker now acks; the client reconnects and resends all three with DUP */
	c.no_ack = 0;
	fb_set_cfg(fb, &c);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 3, 5000));
	assert_int_equal(count_ev(MQTTQ_EV_CONNECTED), 1);
	assert_true(find_ev(MQTTQ_EV_CONNECTED, 0)->ev.session_present);
	n = brecs(MQC_PUBLISH, r, 64);
	assert_int_equal(n, 6);
	for (int i = 3; i < 6; i++) {
		assert_int_equal(r[i].conn, 2);
		dups += r[i].dup;
		assert_int_equal(r[i].pid, r[i - 3].pid);
	}
	assert_int_equal(dups, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, i)->ev.token, 10 + i);
		assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, i)->ev.err, 0);
	}
	{
		struct mqttq_stats st;

		assert_int_equal(mqttq_stats(q, &st, sizeof(st)), 0);
		assert_int_equal(st.proto_errors, 1);
		assert_int_equal(st.retransmits, 3);
		assert_int_equal(st.connects, 2);
	}
	mqttq_destroy(q);
}

/* The broker vanishes mid-flow without acking: nothing accepted at QoS 1/2 is lost. */
static void test_broker_vanishes(void **state)
{
	struct fb_cfg c;
	struct mqttq_opts o;
	struct mqttq *q;

	fb_cfg_default(&c);
	c.close_after = 5;
	c.session_present = 0; /* the new broker forgot everything */
	fb_set_cfg(fb, &c);
	opts_for(&o, MQTTQ_V311);
	q = client(0, &o);
	for (int i = 0; i < 20; i++)
		assert_int_equal(mqttq_publish(q, "v/x", "p", 1, 1 + (i & 1), 0, NULL, i), 0);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 20, 8000));
	assert_int_equal(count_ev(MQTTQ_EV_DISCONNECTED), 1);
	for (int i = 0; i < 20; i++)
		assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, i)->ev.err, 0);
	/* every token completed exactly once */
	for (int t = 0; t < 20; t++) {
		int seen = 0;

		for (int i = 0; i < nlg; i++)
			seen += lg[i].ev.type == MQTTQ_EV_PUBLISHED && lg[i].ev.token == (uint64_t)t;
		assert_int_equal(seen, 1);
	}
	mqttq_destroy(q);
}

static void test_receive_maximum(void **state)
{
	struct fb_cfg c;
	struct mqttq *q;
	int inflight;

	fb_cfg_default(&c);
	c.no_ack = 1;
	c.connack_props.present = 1ull << MQC_P_RECEIVE_MAX;
	c.connack_props.receive_max = 2;
	fb_set_cfg(fb, &c);
	q = client(MQTTQ_V5, NULL);
	for (int i = 0; i < 10; i++)
		assert_int_equal(mqttq_publish(q, "rm", "x", 1, 1, 0, NULL, i), 0);
	drive(q, 300, NULL, NULL);
	inflight = fb_count(fb, MQC_PUBLISH);
	assert_int_equal(inflight, 2);
	{
		struct mqttq_limits lim;
		struct mqttq_stats st;

		assert_int_equal(mqttq_limits(q, &lim), 0);
		assert_int_equal(lim.receive_max, 2);
		mqttq_stats(q, &st, sizeof(st));
		assert_int_equal(st.queued, 8);
		assert_int_equal(st.inflight, 2);
	}
	c.no_ack = 0;
	fb_set_cfg(fb, &c);
	assert_int_equal(fb_ack_all(fb), 2);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 10, 3000));
	assert_int_equal(fb_count(fb, MQC_PUBLISH), 10);
	/* completions in publish order */
	for (int i = 0; i < 10; i++)
		assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, i)->ev.token, i);
	mqttq_destroy(q);
}

static void test_max_packet_size(void **state)
{
	struct fb_cfg c;
	struct mqttq *q;
	char big[200];

	fb_cfg_default(&c);
	c.connack_props.present = 1ull << MQC_P_MAX_PACKET_SIZE | 1ull << MQC_P_MAX_QOS |
				  1ull << MQC_P_RETAIN_AVAILABLE;
	c.connack_props.max_packet_size = 100;
	c.connack_props.max_qos = 1;
	c.connack_props.retain_available = 0;
	fb_set_cfg(fb, &c);
	q = client(MQTTQ_V5, NULL);
	memset(big, 'x', sizeof(big));
	assert_int_equal(mqttq_publish(q, "big", big, sizeof(big), 0, 0, NULL, 1), -EMSGSIZE);
	assert_int_equal(mqttq_publish(q, "big", big, 80, 1, 0, NULL, 2), 0);
	assert_int_equal(mqttq_publish(q, "big", big, 10, 2, 0, NULL, 3), -ENOTSUP);
	assert_int_equal(mqttq_publish(q, "big", big, 10, 0, MQTTQ_RETAIN, NULL, 4), -ENOTSUP);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 1, 2000));
	assert_int_equal(fb_count(fb, MQC_PUBLISH), 1);
	mqttq_destroy(q);
}

static void test_bad_input(void **state)
{
	struct mqttq *q = client(MQTTQ_V5, NULL);
	struct mqttq_pub_props pp = { 0 };
	struct mqttq_sub s = { .filter = "a/#/b", .qos = 1 };
	const char *uf = "x/+y";
	uint8_t code;

	assert_int_equal(mqttq_publish(q, "a/+", "x", 1, 0, 0, NULL, 1), -EINVAL);
	assert_int_equal(mqttq_publish(q, "a/#", "x", 1, 0, 0, NULL, 1), -EINVAL);
	assert_int_equal(mqttq_publish(q, "", "x", 1, 0, 0, NULL, 1), -EINVAL);
	assert_int_equal(mqttq_publish(q, "a\xc0\x80", "x", 1, 0, 0, NULL, 1), -EINVAL);
	assert_int_equal(mqttq_publish(q, "a", "x", 1, 3, 0, NULL, 1), -EINVAL);
	assert_int_equal(mqttq_publish(q, "a", "x", 1, -1, 0, NULL, 1), -EINVAL);
	pp.response_topic = "r/+";
	assert_int_equal(mqttq_publish(q, "a", "x", 1, 0, 0, &pp, 1), -EINVAL);
	pp.response_topic = NULL;
	pp.content_type = "\xff";
	assert_int_equal(mqttq_publish(q, "a", "x", 1, 0, 0, &pp, 1), -EINVAL);
	assert_int_equal(mqttq_subscribe_sync(q, &s, 1, 0, &code, 1000), -EINVAL);
	s.filter = "ok/#";
	s.qos = 3;
	assert_int_equal(mqttq_subscribe(q, &s, 1, 0, 1), -EINVAL);
	assert_int_equal(mqttq_unsubscribe(q, &uf, 1, 1), -EINVAL);
	assert_int_equal(mqttq_filter_add(q, "a/#/b", 1), -EINVAL);
	assert_int_equal(mqttq_filter_add(q, "a/#", 0), -EINVAL);
	assert_int_equal(mqttq_filter_remove(q, 42), -ENOENT);
	drive(q, 100, NULL, NULL);
	assert_int_equal(fb_count(fb, MQC_PUBLISH), 0);
	assert_int_equal(fb_count(fb, MQC_SUBSCRIBE), 0);
	mqttq_destroy(q);
}

static void test_topic_alias(void **state)
{
	struct fb_cfg c;
	struct mqttq *q;
	struct fb_rec r[16];
	int n;

	fb_cfg_default(&c);
	c.connack_props.present = 1ull << MQC_P_TOPIC_ALIAS_MAX;
	c.connack_props.topic_alias_max = 4;
	fb_set_cfg(fb, &c);
	q = client(MQTTQ_V5, NULL);
	for (int i = 0; i < 5; i++)
		assert_int_equal(mqttq_publish(q, "sensors/temperature/room1", "21", 2, i & 1, 0,
					       NULL, i),
				 0);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 5, 2000));
	assert_true(drive_broker(q, MQC_PUBLISH, 5, 2000));
	n = brecs(MQC_PUBLISH, r, 16);
	assert_int_equal(n, 5);
	/* first use: plain; second: topic + alias; then alias only, resolved by the broker */
	assert_int_equal(r[0].alias, 0);
	assert_int_equal(r[1].alias, 1);
	for (int i = 0; i < 5; i++)
		assert_string_equal(r[i].topic, "sensors/temperature/room1");
	for (int i = 2; i < 5; i++)
		assert_int_equal(r[i].alias, 1);
	{
		struct mqttq_stats st;

		mqttq_stats(q, &st, sizeof(st));
		assert_int_equal(st.alias_hits, 3);
	}
	mqttq_destroy(q);
}

static void test_no_alias_without_server(void **state)
{
	struct mqttq *q = client(MQTTQ_V5, NULL);
	struct fb_rec r[8];

	for (int i = 0; i < 4; i++)
		assert_int_equal(mqttq_publish(q, "t", "x", 1, 0, 0, NULL, i), 0);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 4, 2000));
	assert_true(drive_broker(q, MQC_PUBLISH, 4, 2000));
	assert_int_equal(brecs(MQC_PUBLISH, r, 8), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(r[i].alias, 0);
	mqttq_destroy(q);
}

static void test_server_reference(void **state)
{
	struct fb *other = fb_start(NULL);
	struct fb_cfg c;
	struct mqttq *q;
	char ref[32];

	assert_non_null(other);
	snprintf(ref, sizeof(ref), "127.0.0.1:%u", fb_port(other));
	fb_cfg_default(&c);
	c.connack_reason = 0x9c; /* use another server */
	c.connack_props.present = 1ull << MQC_P_SERVER_REFERENCE;
	c.connack_props.server_reference.p = (const u8 *)ref;
	c.connack_props.server_reference.len = strlen(ref);
	fb_set_cfg(fb, &c);
	{
		struct mqttq_opts o;

		opts_for(&o, MQTTQ_V5);
		assert_int_equal(mqttq_new(&q, &o), 0);
		assert_int_equal(mqttq_connect(q), 0);
	}
	assert_true(drive_events(q, MQTTQ_EV_CONNECTED, 1, 3000));
	assert_int_equal(find_ev(MQTTQ_EV_DISCONNECTED, 0)->ev.reason, 0x9c);
	assert_int_equal(fb_conns(fb), 1);
	assert_int_equal(fb_conns(other), 1);
	assert_int_equal(mqttq_publish(q, "moved", "x", 1, 1, 0, NULL, 7), 0);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 1, 2000));
	assert_int_equal(fb_count(other, MQC_PUBLISH), 1);
	mqttq_destroy(q);
	fb_stop(other);
}

static void test_disconnect_server_reference(void **state)
{
	struct fb *other = fb_start(NULL);
	struct fb_cfg c;
	struct mqttq *q;
	char ref[48];

	assert_non_null(other);
	snprintf(ref, sizeof(ref), "mqtt://127.0.0.1:%u", fb_port(other));
	fb_cfg_default(&c);
	c.disconnect_ref = ref;
	fb_set_cfg(fb, &c);
	q = client(MQTTQ_V5, NULL);
	assert_int_equal(mqttq_publish(q, "d", "x", 1, 1, 0, NULL, 9), 0);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 1, 3000));
	assert_int_equal(find_ev(MQTTQ_EV_DISCONNECTED, 0)->ev.reason, 0x9c);
	assert_int_equal(find_ev(MQTTQ_EV_DISCONNECTED, 0)->ev.by_peer, 1);
	assert_int_equal(fb_count(other, MQC_PUBLISH), 1);
	assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, 0)->ev.token, 9);
	mqttq_destroy(q);
	fb_stop(other);
}

static void test_failover_list(void **state)
{
	struct mqttq_opts o;
	struct mqttq *q;
	char good[48];
	const char *urls[2] = { "mqtt://127.0.0.1:1", good };

	snprintf(good, sizeof(good), "mqtt://127.0.0.1:%u", fb_port(fb));
	opts_for(&o, MQTTQ_V311);
	o.urls = urls;
	o.nurls = 2;
	assert_int_equal(mqttq_new(&q, &o), 0);
	assert_int_equal(mqttq_connect(q), 0);
	assert_true(drive_events(q, MQTTQ_EV_CONNECTED, 1, 3000));
	assert_int_equal(find_ev(MQTTQ_EV_DISCONNECTED, 0)->ev.err, -ECONNREFUSED);
	assert_int_equal(fb_conns(fb), 1);
	mqttq_destroy(q);
}

static void test_will(void **state)
{
	struct mqttq_opts o;
	struct mqttq_pub_props wp = { 0 };
	struct mqttq_will w = { .topic = "status/dev1", .payload = "offline", .payload_len = 7,
				.qos = 1, .retain = 1, .delay_interval = 5 };
	struct fb_rec r[2];
	struct mqttq *q;

	wp.content_type = "text/plain";
	wp.has_message_expiry = 1;
	wp.message_expiry = 3600;
	w.props = &wp;
	opts_for(&o, MQTTQ_V5);
	o.will = &w;
	o.keepalive_s = 30;
	q = client(0, &o);
	assert_int_equal(brecs(MQC_CONNECT, r, 2), 1);
	assert_string_equal(r[0].topic, "status/dev1");
	assert_int_equal(r[0].payload_len, 7);
	assert_memory_equal(r[0].payload, "offline", 7);
	assert_int_equal(r[0].will_qos, 1);
	assert_int_equal(r[0].will_retain, 1);
	assert_int_equal(r[0].will_delay, 5);
	assert_int_equal(r[0].message_expiry, 3600);
	assert_string_equal(r[0].content_type, "text/plain");
	assert_int_equal(r[0].keepalive, 30);
	mqttq_destroy(q);
}

static void test_subscribe_and_receive(void **state)
{
	struct mqttq *q = client(MQTTQ_V5, NULL);
	struct mqttq_sub subs[3] = {
		{ .filter = "a/+", .qos = 0 },
		{ .filter = "b/#", .qos = 1, .no_local = 1, .retain_handling = 2 },
		{ .filter = "c", .qos = 2, .retain_as_published = 1 },
	};
	const char *unsubs[2] = { "a/+", "c" };
	struct mqc_props mp = { 0 };
	struct mqc_user_prop up = { { (const u8 *)"k", 1 }, { (const u8 *)"v1", 2 } };
	struct fb_rec r[2];
	struct logged *l;
	uint8_t codes[3];

	assert_int_equal(mqttq_subscribe(q, subs, 3, 17, 555), 0);
	assert_true(drive_events(q, MQTTQ_EV_SUBSCRIBED, 1, 2000));
	l = find_ev(MQTTQ_EV_SUBSCRIBED, 0);
	assert_int_equal(l->ev.token, 555);
	assert_int_equal(l->ev.ncodes, 3);
	assert_int_equal(l->codes[0], 0);
	assert_int_equal(l->codes[1], 1);
	assert_int_equal(l->codes[2], 2);
	assert_int_equal(brecs(MQC_SUBSCRIBE, r, 2), 1);
	assert_int_equal(r[0].nfilters, 3);
	assert_int_equal(r[0].options[1], 1 | 1 << 2 | 2 << 4);
	assert_int_equal(r[0].options[2], 2 | 1 << 3);
	assert_int_equal(r[0].sub_id, 17);

	mp.present = 1ull << MQC_P_CONTENT_TYPE | 1ull << MQC_P_MESSAGE_EXPIRY;
	mp.content_type.p = (const u8 *)"app/json";
	mp.content_type.len = 8;
	mp.message_expiry = 60;
	assert_int_equal(fb_publish(fb, "b/x/y", "hello", 1, &mp, &up, 1), 0);
	assert_int_equal(fb_publish(fb, "c", "two", 2, NULL, NULL, 0), 0);
	assert_true(drive_events(q, MQTTQ_EV_MESSAGE, 2, 2000));
	l = find_ev(MQTTQ_EV_MESSAGE, 0);
	assert_string_equal(l->topic, "b/x/y");
	assert_string_equal(l->payload, "hello");
	assert_int_equal(l->ev.msg.qos, 1);
	assert_string_equal(l->ctype, "app/json");
	assert_int_equal(l->ev.msg.props.message_expiry, 60);
	assert_string_equal(l->uname, "k");
	assert_string_equal(l->uval, "v1");
	l = find_ev(MQTTQ_EV_MESSAGE, 1);
	assert_string_equal(l->topic, "c");
	assert_int_equal(l->ev.msg.qos, 2);
	/* the client acknowledged both, the QoS 2 one fully */
	assert_true(drive_broker(q, MQC_PUBREC, 1, 2000));
	assert_int_equal(fb_count(fb, MQC_PUBACK), 1);

	memset(codes, 0xee, sizeof(codes));
	assert_int_equal(mqttq_unsubscribe_sync(q, unsubs, 2, codes, 2000), 0);
	assert_int_equal(codes[0], 0);
	assert_int_equal(codes[1], 0);
	assert_int_equal(fb_count(fb, MQC_UNSUBSCRIBE), 1);
	mqttq_destroy(q);
}

static void test_local_filters(void **state)
{
	struct mqttq *q = client(MQTTQ_V311, NULL);
	struct mqttq_stats st;

	assert_int_equal(mqttq_filter_add(q, "keep/#", 5), 0);
	assert_int_equal(mqttq_filter_add(q, "keep/#", 6), 0);
	assert_int_equal(mqttq_filter_add(q, "other", 5), -EEXIST);
	fb_publish(fb, "keep/a", "1", 0, NULL, NULL, 0);
	fb_publish(fb, "drop/a", "2", 0, NULL, NULL, 0);
	fb_publish(fb, "keep/b", "3", 1, NULL, NULL, 0);
	assert_true(drive_events(q, MQTTQ_EV_MESSAGE, 2, 2000));
	drive(q, 100, NULL, NULL);
	assert_int_equal(count_ev(MQTTQ_EV_MESSAGE), 2);
	assert_string_equal(find_ev(MQTTQ_EV_MESSAGE, 0)->topic, "keep/a");
	assert_int_equal(find_ev(MQTTQ_EV_MESSAGE, 0)->ev.msg.filter_id, 5);
	assert_string_equal(find_ev(MQTTQ_EV_MESSAGE, 1)->topic, "keep/b");
	mqttq_stats(q, &st, sizeof(st));
	assert_int_equal(st.received, 3);
	assert_int_equal(st.filtered, 1);
	/* debug mode: unmatched ones come through with id 0 */
	assert_int_equal(mqttq_filter_flags(q, MQTTQ_FILTER_DELIVER_UNMATCHED), 0);
	assert_int_equal(mqttq_filter_remove(q, 5), 0);
	fb_publish(fb, "drop/b", "4", 0, NULL, NULL, 0);
	assert_true(drive_events(q, MQTTQ_EV_MESSAGE, 3, 2000));
	assert_string_equal(find_ev(MQTTQ_EV_MESSAGE, 2)->topic, "drop/b");
	assert_int_equal(find_ev(MQTTQ_EV_MESSAGE, 2)->ev.msg.filter_id, 0);
	mqttq_destroy(q);
}

/* Filters installed before connecting: as root the eBPF sockmap drops unmatched QoS 0 in the kernel. */
static void test_filters_in_kernel(void **state)
{
	struct mqttq_opts o;
	struct mqttq *q;
	struct mqttq_stats st;

	opts_for(&o, MQTTQ_V5);
	assert_int_equal(mqttq_new(&q, &o), 0);
	assert_int_equal(mqttq_filter_add(q, "keep/#", 3), 0);
	assert_int_equal(mqttq_connect_sync(q, 3000), 0);
	assert_true(drive_events(q, MQTTQ_EV_CONNECTED, 1, 1000));
	nlg = 0;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(fb_publish(fb, "drop/x", "d", 0, NULL, NULL, 0), 0);
		usleep(2000); /* one TCP segment each, so each can be judged alone */
	}
	for (int i = 0; i < 10; i++)
		assert_int_equal(fb_publish(fb, "keep/x", "k", i % 3, NULL, NULL, 0), 0);
	assert_true(drive_events(q, MQTTQ_EV_MESSAGE, 10, 3000));
	drive(q, 100, NULL, NULL);
	assert_int_equal(count_ev(MQTTQ_EV_MESSAGE), 10);
	for (int i = 0; i < 10; i++) {
		assert_string_equal(find_ev(MQTTQ_EV_MESSAGE, i)->topic, "keep/x");
		assert_int_equal(find_ev(MQTTQ_EV_MESSAGE, i)->ev.msg.filter_id, 3);
	}
	mqttq_stats(q, &st, sizeof(st));
	if (geteuid() == 0) {
		/* root can load BPF here: the drops never reached userspace */
		assert_int_equal(st.filter_in_kernel, 1);
		assert_true(st.received < 20);
		assert_int_equal(st.received - st.filtered, 10);
	} else {
		assert_int_equal(st.received, 20);
		assert_int_equal(st.filtered, 10);
	}
	mqttq_destroy(q);
}

static void outbox_opts(struct mqttq_opts *o, const char *path)
{
	opts_for(o, MQTTQ_V5);
	o->client_id = "outbox-client";
	o->clean = 0;
	o->session_expiry = 600;
	o->outbox_path = path;
}

/* A process dies with QoS 1/2 unacknowledged; the next one resends them from the outbox. */
static void test_outbox_crash_resume(void **state)
{
	char path[] = "/tmp/mqttq-outbox-XXXXXX";
	struct mqttq_opts o;
	struct mqttq_stats st;
	struct fb_rec r[32];
	struct fb_cfg c;
	struct mqttq *q;
	int fd = mkstemp(path), n;

	assert_true(fd >= 0);
	close(fd);
	fb_cfg_default(&c);
	c.no_ack = 1;
	fb_set_cfg(fb, &c);
	outbox_opts(&o, path);
	q = client(0, &o);
	for (int i = 0; i < 5; i++)
		assert_int_equal(mqttq_publish(q, "ob/t", "abc", 3, 1 + (i & 1), 0, NULL, 40 + i), 0);
	assert_true(drive_broker(q, MQC_PUBLISH, 5, 3000));
	mqttq_destroy(q); /* no completion ever reached this process */

	c.no_ack = 0;
	fb_set_cfg(fb, &c);
	outbox_opts(&o, path);
	q = client(0, &o);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 5, 3000));
	/* QoS 1 ends at PUBACK, QoS 2 at PUBCOMP: each token once, in any order */
	for (uint64_t t = 40; t < 45; t++) {
		int seen = 0;

		for (int i = 0; i < 5; i++) {
			assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, i)->ev.err, 0);
			seen += find_ev(MQTTQ_EV_PUBLISHED, i)->ev.token == t;
		}
		assert_int_equal(seen, 1);
	}
	n = brecs(MQC_PUBLISH, r, 32);
	assert_int_equal(n, 10);
	for (int i = 0; i < 5; i++) {
		/* resent on the resumed session: DUP, the same identifier, in order */
		assert_int_equal(r[5 + i].conn, 2);
		assert_int_equal(r[5 + i].dup, 1);
		assert_int_equal(r[5 + i].pid, r[i].pid);
		assert_int_equal(r[5 + i].qos, 1 + (i & 1));
	}
	mqttq_stats(q, &st, sizeof(st));
	assert_int_equal(st.outbox_corrupt, 0);
	mqttq_destroy(q);

	/* all retired: a third start has nothing to send */
	outbox_opts(&o, path);
	q = client(0, &o);
	drive(q, 200, NULL, NULL);
	assert_int_equal(fb_count(fb, MQC_PUBLISH), 10);
	assert_int_equal(count_ev(MQTTQ_EV_PUBLISHED), 0);
	mqttq_destroy(q);
	unlink(path);
}

/*
 * A process dies after PUBREC, with its PUBRELs sent: the next one resends
 * PUBREL, never the PUBLISH, which a broker that already completed the flow
 * would take as a new message (MQTT-4.3.3-1 across a restart).
 */
static void test_outbox_crash_after_pubrec(void **state)
{
	char path[] = "/tmp/mqttq-outbox-XXXXXX";
	struct mqttq_opts o;
	struct fb_rec r[32];
	struct fb_cfg c;
	struct mqttq *q;
	int fd = mkstemp(path), n, pubs2 = 0, rels2 = 0;
	u16 pid[3];

	assert_true(fd >= 0);
	close(fd);
	fb_cfg_default(&c);
	c.no_pubcomp = 1;
	fb_set_cfg(fb, &c);
	outbox_opts(&o, path);
	q = client(0, &o);
	for (int i = 0; i < 3; i++)
		assert_int_equal(mqttq_publish(q, "ob/rel", "abc", 3, 2, 0, NULL, 90 + i), 0);
	assert_true(drive_broker(q, MQC_PUBREL, 3, 3000));
	n = brecs(MQC_PUBLISH, r, 32);
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++)
		pid[i] = r[i].pid;
	mqttq_destroy(q);

	c.no_pubcomp = 0;
	fb_set_cfg(fb, &c);
	outbox_opts(&o, path);
	q = client(0, &o);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 3, 3000));
	for (int i = 0; i < 3; i++)
		assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, i)->ev.err, 0);
	n = brecs(MQC_PUBLISH, r, 32);
	for (int i = 0; i < n; i++)
		pubs2 += r[i].conn == 2;
	assert_int_equal(pubs2, 0);
	n = brecs(MQC_PUBREL, r, 32);
	for (int i = 0; i < n; i++) {
		if (r[i].conn != 2)
			continue;
		assert_int_equal(r[i].pid, pid[rels2]);
		rels2++;
	}
	assert_int_equal(rels2, 3);
	mqttq_destroy(q);
	unlink(path);
}

/* A torn last record is cut off with a warning and counted; what precedes it is kept. */
static void test_outbox_torn_tail(void **state)
{
	char path[] = "/tmp/mqttq-outbox-XXXXXX";
	static const char junk[] = "\x4d\x51\x51\x42\x01\x01torn";
	struct mqttq_opts o;
	struct mqttq_stats st;
	struct fb_cfg c;
	struct mqttq *q;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	fb_cfg_default(&c);
	c.no_ack = 1;
	fb_set_cfg(fb, &c);
	outbox_opts(&o, path);
	q = client(0, &o);
	for (int i = 0; i < 2; i++)
		assert_int_equal(mqttq_publish(q, "ob/torn", "x", 1, 1, 0, NULL, 70 + i), 0);
	assert_true(drive_broker(q, MQC_PUBLISH, 2, 3000));
	mqttq_destroy(q);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk) - 1), sizeof(junk) - 1);
	close(fd);

	c.no_ack = 0;
	fb_set_cfg(fb, &c);
	outbox_opts(&o, path);
	q = client(0, &o);
	mqttq_stats(q, &st, sizeof(st));
	assert_int_equal(st.outbox_corrupt, 1);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 2, 3000));
	assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, 0)->ev.token, 70);
	assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, 1)->ev.token, 71);
	assert_int_equal(fb_count(fb, MQC_PUBLISH), 4);
	mqttq_destroy(q);
	unlink(path);
}

/*
 * The outbox record layout, mirrored from libmqttq/src/outbox.c (struct
 * ob_hdr is private there): a 32-byte header, len data bytes, a CRC32.
 * The parser below must consume the produced log exactly, so a layout
 * change there fails this test rather than silently testing nothing.
 */
#define OBT_MAGIC 0x4251514du
#define OBT_HDR 32
enum { OBT_ADD = 1, OBT_PID = 2, OBT_DONE = 3, OBT_REL = 4 };
#define OBT_MAXREC 64
#define OBT_NTOK 6

struct obt_rec {
	size_t off, end;
	uint8_t type, qos;
	uint16_t pid;
	uint64_t seq, token;
};

static int obt_parse(const uint8_t *f, size_t n, struct obt_rec *rec, int max)
{
	size_t off = 0;
	int k = 0;

	while (off < n && k < max) {
		uint32_t magic, len;
		struct obt_rec *r = &rec[k++];

		assert_true(n - off >= OBT_HDR + 4);
		memcpy(&magic, f + off, 4);
		assert_int_equal(magic, OBT_MAGIC);
		r->off = off;
		r->type = f[off + 4];
		r->qos = f[off + 5];
		memcpy(&r->pid, f + off + 6, 2);
		memcpy(&len, f + off + 8, 4);
		memcpy(&r->seq, f + off + 16, 8);
		memcpy(&r->token, f + off + 24, 8);
		assert_true(len <= n - off - OBT_HDR - 4);
		off += OBT_HDR + len + 4;
		r->end = off;
	}
	assert_int_equal(off, n);
	return k;
}

/* What recovery must do with the records [0, nrec) of the log, per message. */
struct obt_model {
	int add, done, rel;
	uint8_t qos;
	uint16_t pid;
	uint64_t seq, token;
};

static void obt_model(const struct obt_rec *rec, int nrec, struct obt_model *m, int *nm)
{
	*nm = 0;
	for (int i = 0; i < nrec; i++) {
		const struct obt_rec *r = &rec[i];

		if (r->type == OBT_ADD) {
			assert_true(*nm < OBT_MAXREC);
			memset(&m[*nm], 0, sizeof(m[0]));
			m[*nm].add = 1;
			m[*nm].qos = r->qos;
			m[*nm].seq = r->seq;
			m[*nm].token = r->token;
			(*nm)++;
			continue;
		}
		for (int j = 0; j < *nm; j++) {
			if (m[j].seq != r->seq)
				continue;
			if (r->type == OBT_PID)
				m[j].pid = r->pid;
			else if (r->type == OBT_REL)
				m[j].rel = m[j].pid == r->pid;
			else if (r->type == OBT_DONE)
				m[j].done = 1;
		}
	}
}

#define OBT_SENTINEL 1000

/*
 * Recovers a log image on a fresh broker (which keeps the session) and
 * checks it against the model of its first nrec records: every unfinished
 * ADD comes back once, one with a REL as a PUBREL only, a retired one never.
 */
static void obt_check(const char *path, const uint8_t *img, size_t len,
		      const struct obt_rec *rec, int nrec, int corrupt)
{
	static struct fb_rec r[FB_MAX_REC];
	struct obt_model m[OBT_MAXREC];
	struct mqttq_opts o;
	struct mqttq_stats st;
	struct mqttq *q = NULL;
	int fd, nm, want = 0, n, base, npub = 0;
	char tok[24];

	obt_model(rec, nrec, m, &nm);
	for (int i = 0; i < nm; i++)
		want += !m[i].done;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, img, len), (ssize_t)len);
	close(fd);

	base = fb_records(fb, 0, NULL, 0);
	assert_true(base < FB_MAX_REC - 256);
	nlg = 0;
	outbox_opts(&o, path);
	assert_int_equal(mqttq_new(&q, &o), 0);
	mqttq_stats(q, &st, sizeof(st));
	if (st.outbox_corrupt != (uint64_t)corrupt)
		fail_msg("cut at %zu: outbox_corrupt %llu, want %d", len,
			 (unsigned long long)st.outbox_corrupt, corrupt);
	assert_int_equal(mqttq_connect_sync(q, 3000), 0);
	/* queued behind every resumed flow: once it completes, they were all sent */
	assert_int_equal(mqttq_publish(q, "ob/s", "S", 1, 1, 0, NULL, OBT_SENTINEL), 0);
	if (!drive_events(q, MQTTQ_EV_PUBLISHED, want + 1, 3000))
		fail_msg("cut at %zu: %d completions, want %d", len,
			 count_ev(MQTTQ_EV_PUBLISHED), want + 1);
	mqttq_destroy(q);
	/* this connection's packets only: the broker keeps the session across cuts */
	n = fb_records(fb, base, r, FB_MAX_REC) - base;
	for (int k = 0; k < n; k++)
		npub += r[k].type == MQC_PUBLISH;
	if (count_ev(MQTTQ_EV_PUBLISHED) != want + 1)
		fail_msg("cut at %zu: %d completions, want %d", len,
			 count_ev(MQTTQ_EV_PUBLISHED), want + 1);
	for (int i = 0; i < nm; i++) {
		int evs = 0, pubs = 0, rels = 0;

		for (int k = 0; k < count_ev(MQTTQ_EV_PUBLISHED); k++) {
			struct logged *l = find_ev(MQTTQ_EV_PUBLISHED, k);

			assert_int_equal(l->ev.err, 0);
			evs += l->ev.token == m[i].token;
		}
		snprintf(tok, sizeof(tok), "%llu", (unsigned long long)m[i].token);
		for (int k = 0; k < n; k++) {
			pubs += r[k].type == MQC_PUBLISH && r[k].payload_len == strlen(tok) &&
				!memcmp(r[k].payload, tok, r[k].payload_len);
			rels += r[k].type == MQC_PUBREL && m[i].rel && r[k].pid == m[i].pid;
		}
		if (m[i].done && (evs || pubs || rels))
			fail_msg("cut at %zu: retired token %llu replayed (%d/%d/%d)", len,
				 (unsigned long long)m[i].token, evs, pubs, rels);
		if (!m[i].done && evs != 1)
			fail_msg("cut at %zu: token %llu completed %d times, want once", len,
				 (unsigned long long)m[i].token, evs);
		if (!m[i].done && m[i].rel && (pubs || rels != 1))
			fail_msg("cut at %zu: token %llu past PUBREC: %d PUBLISH, %d PUBREL", len,
				 (unsigned long long)m[i].token, pubs, rels);
		if (!m[i].done && !m[i].rel && pubs != 1)
			fail_msg("cut at %zu: token %llu sent %d times, want once", len,
				 (unsigned long long)m[i].token, pubs);
	}
	/* the sentinel aside, nothing else was published */
	for (int i = 0; i < nm; i++)
		want -= !m[i].done && m[i].rel;
	if (npub != want + 1)
		fail_msg("cut at %zu: %d PUBLISH, want %d", len, npub, want + 1);
}

/* Publishes token tok (payload: its decimal) and runs until the broker has n PUBLISHes. */
static void obt_pub(struct mqttq *q, uint64_t tok, int qos, int n)
{
	char p[24];

	snprintf(p, sizeof(p), "%llu", (unsigned long long)tok);
	assert_int_equal(mqttq_publish(q, "ob/cut", p, strlen(p), qos, 0, NULL, tok), 0);
	assert_true(drive_broker(q, MQC_PUBLISH, n, 3000));
}

/*
 * A crash at every point of the log: a real log of retired, past-PUBREC and
 * unacknowledged flows is cut at every byte offset (and, separately, has a
 * CRC broken in a middle record); each image recovers exactly the flows its
 * whole records leave unfinished, and counts one corrupt record iff it is cut
 * inside one.
 */
static void test_outbox_truncate_every_offset(void **state)
{
	char path[] = "/tmp/mqttq-outbox-XXXXXX";
	char cut[sizeof(path) + 4];
	struct obt_rec rec[OBT_MAXREC];
	struct obt_model m[OBT_MAXREC];
	struct mqttq_opts o;
	struct fb_cfg c;
	struct mqttq *q;
	struct stat sb;
	uint8_t *img, *bad;
	int fd = mkstemp(path), nrec, nm, k, mid, ndone = 0;

	assert_true(fd >= 0);
	close(fd);
	snprintf(cut, sizeof(cut), "%s.cut", path);
	outbox_opts(&o, path);
	q = client(0, &o);
	/* 1 (QoS 1) and 2 (QoS 2) complete */
	obt_pub(q, 1, 1, 1);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 1, 3000));
	obt_pub(q, 2, 2, 2);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 2, 3000));
	/* 3 stops after PUBREC: its REL is logged, the PUBCOMP never comes */
	fb_cfg_default(&c);
	c.no_pubcomp = 1;
	fb_set_cfg(fb, &c);
	obt_pub(q, 3, 2, 3);
	assert_true(drive_broker(q, MQC_PUBREL, 2, 3000));
	/* 4 and 5 are never acknowledged */
	c.no_pubcomp = 0;
	c.no_ack = 1;
	fb_set_cfg(fb, &c);
	obt_pub(q, 4, 1, 4);
	obt_pub(q, 5, 2, 5);
	/* 6 completes after them, so a DONE follows unfinished ADDs */
	c.no_ack = 0;
	fb_set_cfg(fb, &c);
	obt_pub(q, 6, 1, 6);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 3, 3000));
	mqttq_destroy(q);
	/* recovery resumes the session, as after a real crash */
	fb_cfg_default(&c);
	c.session_present = 1;
	fb_set_cfg(fb, &c);

	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	img = malloc(sb.st_size);
	bad = malloc(sb.st_size);
	assert_non_null(img);
	assert_non_null(bad);
	assert_int_equal(read(fd, img, sb.st_size), sb.st_size);
	close(fd);
	unlink(path);
	nrec = obt_parse(img, sb.st_size, rec, OBT_MAXREC);
	/* the log holds what the scenario promises: 3 retired, 3 live, one of them past PUBREC */
	obt_model(rec, nrec, m, &nm);
	assert_int_equal(nm, OBT_NTOK);
	for (int i = 0; i < nm; i++) {
		assert_int_equal(m[i].token, i + 1);
		assert_int_equal(m[i].done, i < 2 || i == 5);
		assert_int_equal(m[i].rel, i == 1 || i == 2);
		assert_true(m[i].pid != 0);
	}

	/* every cut: the records wholly before it are the model */
	k = 0;
	for (size_t t = 0; t <= (size_t)sb.st_size; t++) {
		while (k < nrec && rec[k].end <= t)
			k++;
		obt_check(cut, img, t, rec, k, t != (k ? rec[k - 1].end : 0));
	}
	print_message("# %lld cuts of a %lld-byte log of %d records\n",
		      (long long)sb.st_size + 1, (long long)sb.st_size, nrec);

	/* a bad CRC in a middle record, after a retirement: it and all after it are dropped */
	mid = nrec / 2;
	for (int i = 0; i < mid; i++)
		ndone += rec[i].type == OBT_DONE;
	assert_true(ndone > 0 && mid < nrec - 1);
	memcpy(bad, img, sb.st_size);
	bad[rec[mid].end - 5] ^= 0x40;
	obt_check(cut, bad, sb.st_size, rec, mid, 1);

	unlink(cut);
	free(img);
	free(bad);
}

static void test_offline_queue_reject(void **state)
{
	struct mqttq_opts o;
	struct mqttq *q;
	struct mqttq_stats st;

	opts_for(&o, MQTTQ_V5);
	o.queue_max_msgs = 4;
	assert_int_equal(mqttq_new(&q, &o), 0);
	/* not connected yet: everything queues, up to the bound */
	for (int i = 0; i < 4; i++)
		assert_int_equal(mqttq_publish(q, "off", "x", 1, i % 3, 0, NULL, i), 0);
	assert_int_equal(mqttq_publish(q, "off", "x", 1, 0, 0, NULL, 99), -ENOBUFS);
	mqttq_stats(q, &st, sizeof(st));
	assert_int_equal(st.queued, 4);
	assert_int_equal(st.rejected, 1);
	assert_int_equal(mqttq_connect(q), 0);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 4, 3000));
	for (int i = 0; i < 4; i++)
		assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, i)->ev.err, 0);
	assert_true(drive_broker(q, MQC_PUBLISH, 4, 2000));
	assert_int_equal(fb_count(fb, MQC_PUBLISH), 4);
	mqttq_destroy(q);
}

static void test_offline_queue_drop_qos0(void **state)
{
	struct mqttq_opts o;
	struct mqttq *q;
	struct mqttq_stats st;
	struct fb_rec r[8];

	opts_for(&o, MQTTQ_V5);
	o.queue_max_msgs = 3;
	o.overflow = MQTTQ_OVERFLOW_DROP_QOS0;
	assert_int_equal(mqttq_new(&q, &o), 0);
	assert_int_equal(mqttq_publish(q, "d", "a", 1, 1, 0, NULL, 1), 0);
	assert_int_equal(mqttq_publish(q, "d", "b", 1, 0, 0, NULL, 2), 0);
	assert_int_equal(mqttq_publish(q, "d", "c", 1, 1, 0, NULL, 3), 0);
	assert_int_equal(mqttq_publish(q, "d", "d", 1, 0, 0, NULL, 4), 0); /* drops "b" */
	assert_int_equal(mqttq_publish(q, "d", "e", 1, 1, 0, NULL, 5), 0); /* drops "d" */
	assert_int_equal(mqttq_publish(q, "d", "f", 1, 1, 0, NULL, 6), -ENOBUFS); /* no QoS 0 left */
	mqttq_stats(q, &st, sizeof(st));
	assert_int_equal(st.dropped, 2);
	assert_int_equal(st.rejected, 1);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 2, 500));
	assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, 0)->ev.token, 2);
	assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, 0)->ev.err, -ENOBUFS);
	assert_int_equal(find_ev(MQTTQ_EV_PUBLISHED, 1)->ev.token, 4);
	assert_int_equal(mqttq_connect(q), 0);
	assert_true(drive_events(q, MQTTQ_EV_PUBLISHED, 5, 3000));
	assert_int_equal(brecs(MQC_PUBLISH, r, 8), 3);
	assert_memory_equal(r[0].payload, "a", 1);
	assert_memory_equal(r[1].payload, "c", 1);
	assert_memory_equal(r[2].payload, "e", 1);
	mqttq_destroy(q);
}

static void test_offload_on_missing(void **state)
{
	struct mqttq_opts o;
	struct mqttq *q;

	if (access("/sys/module/mqttq", F_OK) == 0)
		skip();
	opts_for(&o, MQTTQ_V5);
	o.offload = MQTTQ_OFFLOAD_ON;
	assert_int_equal(mqttq_new(&q, &o), 0);
	assert_int_equal(mqttq_connect(q), -ENOPROTOOPT);
	assert_true(strstr(mqttq_errmsg(q), "mqttq.ko") != NULL);
	assert_int_equal(fb_conns(fb), 0);
	mqttq_destroy(q);
	setenv("MQTTQ_OFFLOAD", "bogus", 1);
	opts_for(&o, MQTTQ_V5);
	assert_int_equal(mqttq_new(&q, &o), -EINVAL);
	setenv("MQTTQ_OFFLOAD", "auto", 1);
	q = client(MQTTQ_V5, NULL);
	assert_int_equal(mqttq_engine(q), MQTTQ_ENGINE_USERSPACE);
	assert_string_equal(mqttq_engine_name(mqttq_engine(q)), "userspace");
	mqttq_destroy(q);
	unsetenv("MQTTQ_OFFLOAD");
}

static void test_keepalive_ping(void **state)
{
	struct mqttq_opts o;
	struct mqttq *q;

	opts_for(&o, MQTTQ_V311);
	o.keepalive_s = 1;
	q = client(0, &o);
	assert_true(drive_broker(q, MQC_PINGREQ, 1, 3000));
	assert_int_equal(count_ev(MQTTQ_EV_DISCONNECTED), 0);
	mqttq_destroy(q);
}

/* The pollable fd: readable when there is work, and timers wake it without a wait call. */
static void test_pollable_fd(void **state)
{
	struct mqttq *q = client(MQTTQ_V5, NULL);
	struct pollfd pfd = { mqttq_fd(q), POLLIN, 0 };
	struct mqttq_event ev[8];
	int n;

	assert_true(pfd.fd >= 0);
	while (mqttq_wait(q, ev, 8, 0) > 0)
		;
	assert_int_equal(fb_publish(fb, "p", "x", 0, NULL, NULL, 0), 0);
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	n = 0;
	for (int i = 0; i < 100 && !n; i++) {
		n = mqttq_wait(q, ev, 8, 0);
		if (!n)
			poll(&pfd, 1, 20);
	}
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].type, MQTTQ_EV_MESSAGE);
	assert_true(mqttq_next_timeout_ms(q) > 0);
	mqttq_destroy(q);
}

static void test_sync_helpers(void **state)
{
	struct mqttq *q = client(MQTTQ_V5, NULL);
	struct mqttq_sub s = { .filter = "s/#", .qos = 1 };
	uint8_t code = 0xee;
	struct fb_cfg c;

	assert_int_equal(mqttq_subscribe_sync(q, &s, 1, 0, &code, 2000), 0);
	assert_int_equal(code, 1);
	assert_int_equal(mqttq_publish_sync(q, "s/1", "x", 1, 2, 0, NULL, 2000), 0);
	assert_int_equal(fb_count(fb, MQC_PUBREL), 1);
	fb_cfg_default(&c);
	c.no_ack = 1;
	fb_set_cfg(fb, &c);
	assert_int_equal(mqttq_publish_sync(q, "s/1", "x", 1, 1, 0, NULL, 200), -ETIMEDOUT);
	mqttq_destroy(q);
}

static void test_server_assigned_id(void **state)
{
	struct fb_cfg c;
	struct mqttq_opts o;
	struct mqttq *q;
	struct fb_rec r[2];

	fb_cfg_default(&c);
	c.connack_props.present = 1ull << MQC_P_ASSIGNED_CLIENT_ID;
	c.connack_props.assigned_client_id.p = (const u8 *)"srv-42";
	c.connack_props.assigned_client_id.len = 6;
	fb_set_cfg(fb, &c);
	opts_for(&o, MQTTQ_V5);
	o.client_id = NULL;
	q = client(0, &o);
	assert_string_equal(mqttq_client_id(q), "srv-42");
	assert_int_equal(brecs(MQC_CONNECT, r, 2), 1);
	assert_string_equal(r[0].client_id, "");
	/* the reconnect uses the assigned id so the session can resume */
	fb_drop(fb);
	assert_true(drive_events(q, MQTTQ_EV_CONNECTED, 1, 3000));
	assert_int_equal(brecs(MQC_CONNECT, r, 2), 2);
	assert_string_equal(r[1].client_id, "srv-42");
	assert_int_equal(r[1].clean, 0);
	mqttq_destroy(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_version_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_v5, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_v311, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connack_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_then_resend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broker_vanishes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receive_maximum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_packet_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topic_alias, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_alias_without_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_reference, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_server_reference, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failover_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_will, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_and_receive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filters_in_kernel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_crash_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_crash_after_pubrec, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_truncate_every_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offline_queue_reject, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offline_queue_drop_qos0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offload_on_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_ping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pollable_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_helpers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_assigned_id, setup, teardown),
	};

	return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
