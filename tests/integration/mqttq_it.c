// SPDX-License-Identifier: GPL-2.0 OR MIT
/* mqttq-it: libmqttq publisher/subscriber/will-holder for the mosquitto integration tests (peer-compatible flags and output). */
#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../peers/peer_common.h"
#include "mqttq.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static struct mqttq *open_client(const struct peer_opts *o, const char *will_topic)
{
	static struct mqttq_will w;
	struct mqttq_opts mo;
	struct mqttq *q;
	int r;

	mqttq_opts_init(&mo);
	mo.host = o->host;
	mo.port = o->port;
	mo.version = o->version == 5 ? MQTTQ_V5 : MQTTQ_V311;
	mo.client_id = o->client_id;
	mo.keepalive_s = o->keepalive;
	mo.window = o->window ? o->window : 20;
	mo.reconnect_min_ms = 20;
	mo.reconnect_max_ms = 500;
	mo.connect_timeout_ms = 3000;
	mo.queue_max_msgs = 100000;
	mo.queue_max_bytes = 256 << 20;
	mo.max_packet_in = 4 << 20;
	if (o->persistent) {
		mo.clean = 0;
		mo.session_expiry = 3600;
	}
	if (will_topic) {
		w.topic = will_topic;
		w.payload = "gone";
		w.payload_len = 4;
		w.qos = 1;
		w.retain = 0;
		mo.will = &w;
	}
	r = mqttq_new(&q, &mo);
	if (r) {
		fprintf(stderr, "mqttq-it: mqttq_new: %s: %s\n", mqttq_strerror(r), mqttq_errmsg(NULL));
		exit(1);
	}
	r = mqttq_connect_sync(q, 5000);
	if (r) {
		fprintf(stderr, "mqttq-it: connect: %s: %s\n", mqttq_strerror(r), mqttq_errmsg(q));
		exit(1);
	}
	if (o->verbose) {
		struct mqttq_limits lim;

		mqttq_limits(q, &lim);
		fprintf(stderr, "mqttq-it: connected receive_max=%u max_packet=%u alias_max=%u\n",
			lim.receive_max, lim.max_packet_size, lim.topic_alias_max);
	}
	return q;
}

static int do_pub(struct peer_opts *o)
{
	static struct mqttq_event ev[256];
	struct mqttq *q = open_client(o, NULL);
	unsigned long sent = 0, done = 0, failed = 0;
	uint64_t end = peer_now_us() + (uint64_t)o->timeout_s * 1000000;
	const char *rate = getenv("MQTTQ_IT_RATE"); /* messages per 10 ms, to stretch a run */
	unsigned int flags = getenv("MQTTQ_IT_RETAIN") ? MQTTQ_RETAIN : 0;
	size_t cap = o->size + 128;
	char *buf = malloc(cap);
	uint64_t next_slot = peer_now_us();
	int r;

	if (!buf)
		return 1;
	while (done < o->count && !stop && peer_now_us() < end) {
		unsigned long burst = rate ? strtoul(rate, NULL, 10) : o->count;

		if (!rate || peer_now_us() >= next_slot) {
			for (unsigned long i = 0; i < burst && sent < o->count; i++) {
				size_t len = peer_payload(o, sent, buf, cap);

				r = mqttq_publish(q, o->topic, buf, len, o->qos, flags, NULL, sent);
				if (r == -ENOBUFS)
					break;
				if (r) {
					fprintf(stderr, "mqttq-it: publish: %s: %s\n", mqttq_strerror(r),
						mqttq_errmsg(q));
					return 1;
				}
				sent++;
			}
			next_slot += 10000;
		}
		r = mqttq_wait(q, ev, 256, 10);
		if (r < 0) {
			fprintf(stderr, "mqttq-it: wait: %s\n", mqttq_strerror(r));
			return 1;
		}
		for (int i = 0; i < r; i++) {
			if (ev[i].type == MQTTQ_EV_PUBLISHED) {
				if (ev[i].err || ev[i].reason >= 0x80)
					failed++;
				done++;
			} else if (ev[i].type == MQTTQ_EV_DISCONNECTED && o->verbose) {
				fprintf(stderr, "mqttq-it: disconnected: %s (retry %d)\n",
					mqttq_strerror(ev[i].err), ev[i].will_retry);
			} else if (ev[i].type == MQTTQ_EV_CONNECTED && o->verbose) {
				fprintf(stderr, "mqttq-it: reconnected, session present %d\n",
					ev[i].session_present);
			}
		}
	}
	{
		struct mqttq_stats st;

		mqttq_stats(q, &st, sizeof(st));
		fprintf(stderr, "mqttq-it: published %lu completed %lu failed %lu reconnects %llu "
				"retransmits %llu\n",
			sent, done, failed, (unsigned long long)(st.connects - 1),
			(unsigned long long)st.retransmits);
	}
	mqttq_disconnect(q, 0);
	mqttq_destroy(q);
	free(buf);
	return done == o->count && !failed ? 0 : 1;
}

static int do_sub(struct peer_opts *o)
{
	static struct mqttq_event ev[256];
	struct mqttq *q = open_client(o, NULL);
	struct mqttq_sub s = { .filter = o->topic, .qos = o->qos };
	uint64_t end = peer_now_us() + (uint64_t)o->timeout_s * 1000000, linger_end = 0;
	FILE *out = o->out_path ? fopen(o->out_path, "w") : stdout;
	bool show_retain = getenv("MQTTQ_IT_SHOW_RETAIN") != NULL;
	unsigned long got = 0;
	bool first = true;
	uint8_t code;
	int r;

	if (!out)
		return 1;
	r = mqttq_subscribe_sync(q, &s, 1, 0, &code, 5000);
	if (r || code > 2) {
		fprintf(stderr, "mqttq-it: subscribe: %s code %u\n", mqttq_strerror(r), code);
		return 1;
	}
	if (o->ready_path)
		peer_touch(o->ready_path);
	while (!stop && peer_now_us() < end && (!linger_end || peer_now_us() < linger_end)) {
		r = mqttq_wait(q, ev, 256, 20);
		if (r < 0)
			return 1;
		for (int i = 0; i < r; i++) {
			char topic[256];

			/* a lost session loses the subscription; the first CONNECTED is connect_sync's */
			if (ev[i].type == MQTTQ_EV_CONNECTED && !ev[i].session_present && !first)
				mqttq_subscribe(q, &s, 1, 0, 1);
			if (ev[i].type == MQTTQ_EV_CONNECTED)
				first = false;
			if (ev[i].type != MQTTQ_EV_MESSAGE)
				continue;
			snprintf(topic, sizeof(topic), "%s%.*s", show_retain && ev[i].msg.retain ? "R:" : "",
				 (int)ev[i].msg.topic_len, ev[i].msg.topic);
			peer_write_line(out, topic, ev[i].msg.payload, ev[i].msg.payload_len);
			fflush(out);
			got++;
		}
		if (o->count && got >= o->count && !linger_end)
			linger_end = peer_now_us() + (uint64_t)o->linger_ms * 1000;
	}
	mqttq_disconnect(q, 0);
	mqttq_destroy(q);
	if (out != stdout)
		fclose(out);
	return !o->count || got >= o->count ? 0 : 1;
}

/* Connects with a will on TOPIC and idles until killed: the test kills it with SIGKILL. */
static int do_will(struct peer_opts *o)
{
	struct mqttq *q = open_client(o, o->topic);
	struct mqttq_event ev[16];
	uint64_t end = peer_now_us() + (uint64_t)o->timeout_s * 1000000;

	if (o->ready_path)
		peer_touch(o->ready_path);
	while (!stop && peer_now_us() < end)
		mqttq_wait(q, ev, 16, 100);
	mqttq_destroy(q);
	return 0;
}

int main(int argc, char **argv)
{
	struct peer_opts o;

	if (argc < 2) {
		fprintf(stderr, "usage: mqttq-it pub|sub|will [peer flags]\n");
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (!strcmp(argv[1], "pub")) {
		peer_parse(argc - 1, argv + 1, PEER_PUB, "mqttq-it pub", &o);
		return do_pub(&o);
	}
	if (!strcmp(argv[1], "sub")) {
		peer_parse(argc - 1, argv + 1, PEER_SUB, "mqttq-it sub", &o);
		return do_sub(&o);
	}
	if (!strcmp(argv[1], "will")) {
		peer_parse(argc - 1, argv + 1, PEER_SUB, "mqttq-it will", &o);
		return do_will(&o);
	}
	fprintf(stderr, "mqttq-it: unknown mode %s\n", argv[1]);
	return 2;
}
