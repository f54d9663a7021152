// SPDX-License-Identifier: GPL-2.0 OR MIT
/* peer-paho-pub: paho MQTTAsync publisher of numbered messages, windowed, reconnecting. */
#include <MQTTAsync.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peer_common.h"

static struct {
	struct peer_opts o;
	struct peer_stats st;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool connected, connecting;
	unsigned long outstanding, failures;
	uint64_t *t0;
	uint8_t *done;
} s = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void set_state(bool connected)
{
	pthread_mutex_lock(&s.lock);
	s.connected = connected;
	s.connecting = false;
	pthread_cond_broadcast(&s.cond);
	pthread_mutex_unlock(&s.lock);
}

static void on_conn_ok(void *ctx, MQTTAsync_successData *r)
{
	if (s.o.verbose)
		fprintf(stderr, "peer-paho-pub: connected session_present=%d\n",
			r ? r->alt.connect.sessionPresent : -1);
	set_state(true);
}

static void on_conn_ok5(void *ctx, MQTTAsync_successData5 *r)
{
	if (s.o.verbose)
		fprintf(stderr, "peer-paho-pub: connected session_present=%d\n",
			r ? r->alt.connect.sessionPresent : -1);
	set_state(true);
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData *r)
{
	set_state(false);
}

static void on_conn_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
	set_state(false);
}

static void on_lost(void *ctx, char *cause)
{
	if (s.o.verbose)
		fprintf(stderr, "peer-paho-pub: connection lost: %s\n", cause ? cause : "?");
	set_state(false);
}

static int on_arrived(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void complete(uintptr_t seq1)
{
	uint64_t now = peer_now_us();
	unsigned long seq = seq1 - 1;

	pthread_mutex_lock(&s.lock);
	if (!seq1 || seq >= s.o.count || s.done[seq]) {
		s.st.dup_completions++;
	} else {
		s.done[seq] = 1;
		s.st.lat_us[s.st.completed++] = (uint32_t)(now - s.t0[seq]);
		s.outstanding--;
		pthread_cond_broadcast(&s.cond);
	}
	pthread_mutex_unlock(&s.lock);
}

static void on_pub_ok(void *ctx, MQTTAsync_successData *r)
{
	complete((uintptr_t)ctx);
}

static void on_pub_ok5(void *ctx, MQTTAsync_successData5 *r)
{
	complete((uintptr_t)ctx);
}

/* A failed publish is the library giving the message up: counted, never retried by us. */
static void pub_failed(uintptr_t seq1, int code)
{
	if (s.o.verbose)
		fprintf(stderr, "peer-paho-pub: publish seq %lu failed (%d)\n",
			(unsigned long)seq1 - 1, code);
	pthread_mutex_lock(&s.lock);
	s.failures++;
	s.st.failed++;
	s.outstanding--;
	pthread_cond_broadcast(&s.cond);
	pthread_mutex_unlock(&s.lock);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *r)
{
	pub_failed((uintptr_t)ctx, r ? r->code : 0);
}

static void on_pub_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
	pub_failed((uintptr_t)ctx, r ? r->code : 0);
}

static void wait_a_bit(unsigned int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)ms * 1000000;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_cond_timedwait(&s.cond, &s.lock, &ts);
}

int main(int argc, char **argv)
{
	MQTTAsync c;
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	MQTTAsync_connectOptions cop = MQTTAsync_connectOptions_initializer;
	MQTTAsync_connectOptions cop5 = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_connectOptions *cp;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty prop = { .identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL };
	char uri[300], *payload, id[64];
	size_t cap;
	unsigned long seq = 0;
	uint64_t deadline;
	int rc, ret = 1;
	bool ever = false;

	peer_parse(argc, argv, PEER_PUB, "peer-paho-pub", &s.o);
	cap = s.o.size + 128;
	payload = malloc(cap);
	s.t0 = calloc(s.o.count, sizeof(*s.t0));
	s.done = calloc(s.o.count, 1);
	if (!payload || !s.t0 || !s.done || peer_stats_init(&s.st, "paho-mqtt-c", &s.o)) {
		fprintf(stderr, "peer-paho-pub: out of memory\n");
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	snprintf(uri, sizeof(uri), "tcp://%s:%d", s.o.host, s.o.port);
	snprintf(id, sizeof(id), "paho-pub-%d", getpid());
	co.MQTTVersion = s.o.version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	co.sendWhileDisconnected = 1;
	co.maxBufferedMessages = s.o.window * 2 + 100;
	rc = MQTTAsync_createWithOptions(&c, uri, s.o.client_id ? s.o.client_id : id,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "peer-paho-pub: create: %s\n", MQTTAsync_strerror(rc));
		return 1;
	}
	MQTTAsync_setCallbacks(c, NULL, on_lost, on_arrived, NULL);
	if (s.o.version == 5) {
		cp = &cop5;
		cp->cleanstart = !s.o.persistent;
		cp->onSuccess5 = on_conn_ok5;
		cp->onFailure5 = on_conn_fail5;
		if (s.o.persistent) {
			prop.value.integer4 = 3600;
			MQTTProperties_add(&props, &prop);
			cp->connectProperties = &props;
		}
	} else {
		cp = &cop;
		cp->cleansession = !s.o.persistent;
		cp->onSuccess = on_conn_ok;
		cp->onFailure = on_conn_fail;
	}
	cp->keepAliveInterval = s.o.keepalive;
	cp->maxInflight = s.o.window;
	/* We reconnect ourselves: the library's automatic reconnect waits at least a second. */
	cp->automaticReconnect = 0;

	s.st.t_start_us = peer_now_us();
	deadline = s.st.t_start_us + (uint64_t)s.o.timeout_s * 1000000;
	pthread_mutex_lock(&s.lock);
	while (!stop && s.st.completed < s.o.count && peer_now_us() < deadline) {
		MQTTAsync_message msg = MQTTAsync_message_initializer;
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

		if (!s.connected && !s.connecting) {
			s.connecting = true;
			pthread_mutex_unlock(&s.lock);
			if (ever)
				usleep(20000);
			rc = MQTTAsync_connect(c, cp);
			pthread_mutex_lock(&s.lock);
			if (rc != MQTTASYNC_SUCCESS) {
				s.connecting = false;
				wait_a_bit(50);
			} else if (ever) {
				s.st.reconnects++;
			}
			continue;
		}
		if (seq >= s.o.count && !s.outstanding)
			break;	/* every message completed or was given up by the library */
		if (!s.connected || s.outstanding >= s.o.window || seq >= s.o.count) {
			wait_a_bit(100);
			continue;
		}
		ever = true;
		msg.payload = payload;
		msg.payloadlen = (int)peer_payload(&s.o, seq, payload, cap);
		msg.qos = s.o.qos;
		ro.context = (void *)(uintptr_t)(seq + 1);
		if (s.o.version == 5) {
			ro.onSuccess5 = on_pub_ok5;
			ro.onFailure5 = on_pub_fail5;
		} else {
			ro.onSuccess = on_pub_ok;
			ro.onFailure = on_pub_fail;
		}
		s.t0[seq] = peer_now_us();
		s.outstanding++;
		pthread_mutex_unlock(&s.lock);
		rc = MQTTAsync_sendMessage(c, s.o.topic, &msg, &ro);
		pthread_mutex_lock(&s.lock);
		if (rc != MQTTASYNC_SUCCESS) {
			s.outstanding--;
			if (rc == MQTTASYNC_DISCONNECTED || rc == MQTTASYNC_MAX_BUFFERED_MESSAGES) {
				wait_a_bit(20);
				continue;
			}
			fprintf(stderr, "peer-paho-pub: send: %s\n", MQTTAsync_strerror(rc));
			s.st.error = "publish failed";
			break;
		}
		s.st.published++;
		seq++;
	}
	if (!s.st.error && s.st.completed < s.o.count)
		s.st.error = stop ? "interrupted" : !ever ? "never connected" :
			s.failures ? "publishes failed" : "timed out";
	ret = s.st.error ? 1 : 0;
	s.st.t_end_us = peer_now_us();
	pthread_mutex_unlock(&s.lock);
	if (s.failures)
		fprintf(stderr, "peer-paho-pub: %lu publishes reported failed\n", s.failures);
	MQTTAsync_disconnect(c, NULL);
	usleep(100000);
	pthread_mutex_lock(&s.lock);
	peer_stats_print(&s.st, s.o.json ? stdout : stderr);
	pthread_mutex_unlock(&s.lock);
	MQTTAsync_destroy(&c);
	MQTTProperties_free(&props);
	peer_stats_free(&s.st);
	free(s.done);
	free(s.t0);
	free(payload);
	return ret;
}
