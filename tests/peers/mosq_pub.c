// SPDX-License-Identifier: GPL-2.0 OR MIT
/* peer-mosq-pub: libmosquitto publisher of numbered messages, windowed, reconnecting. */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peer_common.h"

#define NO_SEQ UINT32_MAX

static struct {
	struct peer_opts o;
	struct peer_stats st;
	bool connected;
	int mid_now;		/* mid of the publish call in progress (QoS 0 completes inside it) */
	bool in_publish;
	unsigned long seq_now;
	uint32_t mid_seq[65536];
	uint64_t *t0;
	uint8_t *done;
	unsigned long outstanding;
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
		fprintf(stderr, "peer-mosq-pub: connack rc=%d session_present=%d\n", rc, flags & 1);
	s.connected = rc == 0;
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *p)
{
	if (s.o.verbose)
		fprintf(stderr, "peer-mosq-pub: disconnected rc=%d\n", rc);
	s.connected = false;
}

static void on_publish(struct mosquitto *m, void *obj, int mid, int rc,
		       const mosquitto_property *props)
{
	uint32_t seq = s.mid_seq[mid & 0xffff];

	if (seq == NO_SEQ && s.in_publish && mid == s.mid_now)
		seq = s.seq_now;
	if (seq == NO_SEQ || seq >= s.o.count) {
		s.st.dup_completions++;
		return;
	}
	s.mid_seq[mid & 0xffff] = NO_SEQ;
	if (s.done[seq]) {
		s.st.dup_completions++;
		return;
	}
	s.done[seq] = 1;
	s.st.lat_us[s.st.completed++] = (uint32_t)(peer_now_us() - s.t0[seq]);
	s.outstanding--;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	struct mosquitto *m;
	mosquitto_property *props = NULL;
	char *payload;
	size_t cap;
	unsigned long seq = 0;
	uint64_t deadline;
	int rc, ret = 1;
	bool ever = false;

	peer_parse(argc, argv, PEER_PUB, "peer-mosq-pub", &s.o);
	cap = s.o.size + 128;
	payload = malloc(cap);
	s.t0 = calloc(s.o.count, sizeof(*s.t0));
	s.done = calloc(s.o.count, 1);
	if (!payload || !s.t0 || !s.done || peer_stats_init(&s.st, "libmosquitto", &s.o)) {
		fprintf(stderr, "peer-mosq-pub: out of memory\n");
		return 1;
	}
	memset(s.mid_seq, 0xff, sizeof(s.mid_seq));
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);

	mosquitto_lib_init();
	m = mosquitto_new(s.o.client_id, !s.o.persistent, NULL);
	if (!m) {
		fprintf(stderr, "peer-mosq-pub: mosquitto_new failed\n");
		return 1;
	}
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION,
			     s.o.version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
	mosquitto_max_inflight_messages_set(m, s.o.window);
	mosquitto_connect_v5_callback_set(m, on_connect);
	mosquitto_disconnect_v5_callback_set(m, on_disconnect);
	mosquitto_publish_v5_callback_set(m, on_publish);
	if (s.o.version == 5 && s.o.persistent)
		mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 3600);

	s.st.t_start_us = peer_now_us();
	deadline = s.st.t_start_us + (uint64_t)s.o.timeout_s * 1000000;
	rc = mosquitto_connect_bind_v5(m, s.o.host, s.o.port, s.o.keepalive, NULL, props);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "peer-mosq-pub: connect %s:%d: %s\n", s.o.host, s.o.port,
			mosquitto_strerror(rc));
		s.st.error = "connect failed";
		goto out;
	}
	while (!stop && s.st.completed < s.o.count && peer_now_us() < deadline) {
		if (!s.connected || s.outstanding >= s.o.window || seq >= s.o.count) {
			rc = mosquitto_loop(m, 100, 1);
			if (rc == MOSQ_ERR_SUCCESS) {
				ever |= s.connected;
				continue;
			}
			/* Cut: reconnect with the same id; libmosquitto resends what is in flight. */
			if (s.o.verbose)
				fprintf(stderr, "peer-mosq-pub: loop: %s\n", mosquitto_strerror(rc));
			s.connected = false;
			sleep_ms(20);
			if (mosquitto_reconnect(m) == MOSQ_ERR_SUCCESS)
				s.st.reconnects++;
			continue;
		}
		s.t0[seq] = peer_now_us();
		s.seq_now = seq;
		s.in_publish = true;
		s.mid_now = -1;
		s.outstanding++;
		rc = mosquitto_publish_v5(m, &s.mid_now, s.o.topic,
					  (int)peer_payload(&s.o, seq, payload, cap), payload,
					  s.o.qos, false, NULL);
		s.in_publish = false;
		switch (rc) {
		case MOSQ_ERR_SUCCESS:
			break;
		case MOSQ_ERR_NO_CONN:
		case MOSQ_ERR_CONN_LOST:
		case MOSQ_ERR_ERRNO:
			/* QoS 1/2 are queued before the send fails; QoS 0 is simply not sent. */
			s.connected = false;
			if (s.o.qos == 0) {
				s.outstanding--;
				continue;
			}
			break;
		default:
			fprintf(stderr, "peer-mosq-pub: publish: %s\n", mosquitto_strerror(rc));
			s.st.error = "publish failed";
			goto out;
		}
		if (!s.done[seq])
			s.mid_seq[s.mid_now & 0xffff] = seq;
		s.st.published++;
		seq++;
		/* Read acknowledgements now and then even while the window has room. */
		if (!(seq & 63))
			mosquitto_loop(m, 0, 1);
	}
	if (s.st.completed < s.o.count)
		s.st.error = stop ? "interrupted" : ever ? "timed out" : "never connected";
	else
		ret = 0;
out:
	s.st.t_end_us = peer_now_us();
	if (s.connected) {
		mosquitto_disconnect(m);
		mosquitto_loop(m, 100, 1);
	}
	peer_stats_print(&s.st, s.o.json ? stdout : stderr);
	mosquitto_property_free_all(&props);
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();
	peer_stats_free(&s.st);
	free(s.done);
	free(s.t0);
	free(payload);
	return ret;
}
