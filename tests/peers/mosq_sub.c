// SPDX-License-Identifier: GPL-2.0 OR MIT
/* peer-mosq-sub: subscribes through libmosquitto and writes one line per received message. */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peer_common.h"

static struct {
	struct peer_opts o;
	FILE *out;
	unsigned long got;
	bool ready;
	bool connected;
} s;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags,
		       const mosquitto_property *props)
{
	if (s.o.verbose)
		fprintf(stderr, "peer-mosq-sub: connack rc=%d session_present=%d\n", rc, flags & 1);
	if (rc)
		return;
	s.connected = true;
	/* Subscribing again on a resumed session is harmless and covers a lost one. */
	mosquitto_subscribe_v5(m, NULL, s.o.topic, s.o.qos, 0, NULL);
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *p)
{
	s.connected = false;
	fflush(s.out);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
			 const mosquitto_property *props)
{
	if (n < 1 || granted[0] > 2) {
		fprintf(stderr, "peer-mosq-sub: subscription refused (%d)\n", n ? granted[0] : -1);
		stop = 1;
		return;
	}
	if (!s.ready && s.o.ready_path)
		peer_touch(s.o.ready_path);
	s.ready = true;
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
		       const mosquitto_property *props)
{
	peer_write_line(s.out, msg->topic, msg->payload, msg->payloadlen);
	s.got += peer_first_seen(msg->payload, msg->payloadlen);
	if (s.o.out_path)
		fflush(s.out);
}

int main(int argc, char **argv)
{
	struct mosquitto *m;
	mosquitto_property *props = NULL;
	uint64_t deadline, linger_end = 0;
	int rc, ret = 1;

	peer_parse(argc, argv, PEER_SUB, "peer-mosq-sub", &s.o);
	s.out = s.o.out_path ? fopen(s.o.out_path, "w") : stdout;
	if (!s.out) {
		perror(s.o.out_path);
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	mosquitto_lib_init();
	m = mosquitto_new(s.o.client_id, !s.o.persistent, NULL);
	if (!m) {
		fprintf(stderr, "peer-mosq-sub: mosquitto_new failed\n");
		return 1;
	}
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION,
			     s.o.version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
	/* Take everything the broker sends; the window is the broker's to set. */
	mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, 65535);
	mosquitto_connect_v5_callback_set(m, on_connect);
	mosquitto_disconnect_v5_callback_set(m, on_disconnect);
	mosquitto_subscribe_v5_callback_set(m, on_subscribe);
	mosquitto_message_v5_callback_set(m, on_message);
	if (s.o.version == 5 && s.o.persistent)
		mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 3600);
	deadline = peer_now_us() + (uint64_t)s.o.timeout_s * 1000000;
	rc = mosquitto_connect_bind_v5(m, s.o.host, s.o.port, s.o.keepalive, NULL, props);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "peer-mosq-sub: connect %s:%d: %s\n", s.o.host, s.o.port,
			mosquitto_strerror(rc));
		goto out;
	}
	while (!stop && peer_now_us() < deadline) {
		if (s.o.count && s.got >= s.o.count) {
			if (!linger_end)
				linger_end = peer_now_us() + (uint64_t)s.o.linger_ms * 1000;
			if (peer_now_us() >= linger_end)
				break;
		}
		rc = mosquitto_loop(m, 100, 1);
		if (rc == MOSQ_ERR_SUCCESS)
			continue;
		if (s.o.verbose)
			fprintf(stderr, "peer-mosq-sub: loop: %s\n", mosquitto_strerror(rc));
		usleep(50000);
		mosquitto_reconnect(m);
	}
	ret = s.o.count && s.got < s.o.count ? 1 : 0;
	if (ret)
		fprintf(stderr, "peer-mosq-sub: got %lu of %lu messages\n", s.got, s.o.count);
	if (s.connected) {
		mosquitto_disconnect(m);
		mosquitto_loop(m, 100, 1);
	}
out:
	fflush(s.out);
	if (s.out != stdout)
		fclose(s.out);
	mosquitto_property_free_all(&props);
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();
	return ret;
}
