// SPDX-License-Identifier: GPL-2.0 OR MIT
/* peer-paho-sub: subscribes through paho MQTTAsync and writes one line per received message. */
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
	MQTTAsync c;
	FILE *out;
	pthread_mutex_t lock;
	unsigned long got;
	bool connected, connecting, ready, refused;
} s = { .lock = PTHREAD_MUTEX_INITIALIZER };

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *r)
{
	pthread_mutex_lock(&s.lock);
	if (r && r->alt.qos > 2) {
		s.refused = true;
	} else {
		if (!s.ready && s.o.ready_path)
			peer_touch(s.o.ready_path);
		s.ready = true;
	}
	pthread_mutex_unlock(&s.lock);
}

static void on_sub_ok5(void *ctx, MQTTAsync_successData5 *r)
{
	pthread_mutex_lock(&s.lock);
	if (r && r->reasonCode > 2) {
		s.refused = true;
	} else {
		if (!s.ready && s.o.ready_path)
			peer_touch(s.o.ready_path);
		s.ready = true;
	}
	pthread_mutex_unlock(&s.lock);
}

static void subscribe(void)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

	if (s.o.version == 5)
		ro.onSuccess5 = on_sub_ok5;
	else
		ro.onSuccess = on_sub_ok;
	MQTTAsync_subscribe(s.c, s.o.topic, s.o.qos, &ro);
}

static void connected(void)
{
	pthread_mutex_lock(&s.lock);
	s.connected = true;
	s.connecting = false;
	pthread_mutex_unlock(&s.lock);
	/* Subscribing again on a resumed session is harmless and covers a lost one. */
	subscribe();
}

static void on_conn_ok(void *ctx, MQTTAsync_successData *r)
{
	connected();
}

static void on_conn_ok5(void *ctx, MQTTAsync_successData5 *r)
{
	connected();
}

static void not_connected(void)
{
	pthread_mutex_lock(&s.lock);
	s.connected = false;
	s.connecting = false;
	fflush(s.out);
	pthread_mutex_unlock(&s.lock);
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData *r)
{
	not_connected();
}

static void on_conn_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
	not_connected();
}

static void on_lost(void *ctx, char *cause)
{
	if (s.o.verbose)
		fprintf(stderr, "peer-paho-sub: connection lost: %s\n", cause ? cause : "?");
	not_connected();
}

static int on_arrived(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
	pthread_mutex_lock(&s.lock);
	peer_write_line(s.out, topic, m->payload, m->payloadlen);
	if (s.o.out_path)
		fflush(s.out);
	s.got += peer_first_seen(m->payload, m->payloadlen);
	pthread_mutex_unlock(&s.lock);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

int main(int argc, char **argv)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	MQTTAsync_connectOptions cop = MQTTAsync_connectOptions_initializer;
	MQTTAsync_connectOptions cop5 = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_connectOptions *cp;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty prop = { .identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL };
	char uri[300], id[64];
	uint64_t deadline, linger_end = 0;
	int rc, ret;

	peer_parse(argc, argv, PEER_SUB, "peer-paho-sub", &s.o);
	s.out = s.o.out_path ? fopen(s.o.out_path, "w") : stdout;
	if (!s.out) {
		perror(s.o.out_path);
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	snprintf(uri, sizeof(uri), "tcp://%s:%d", s.o.host, s.o.port);
	snprintf(id, sizeof(id), "paho-sub-%d", getpid());
	co.MQTTVersion = s.o.version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	rc = MQTTAsync_createWithOptions(&s.c, uri, s.o.client_id ? s.o.client_id : id,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "peer-paho-sub: create: %s\n", MQTTAsync_strerror(rc));
		return 1;
	}
	MQTTAsync_setCallbacks(s.c, NULL, on_lost, on_arrived, NULL);
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
	deadline = peer_now_us() + (uint64_t)s.o.timeout_s * 1000000;
	for (;;) {
		bool conn_needed;
		unsigned long got;

		if (stop || peer_now_us() >= deadline)
			break;
		pthread_mutex_lock(&s.lock);
		got = s.got;
		conn_needed = !s.connected && !s.connecting;
		if (conn_needed)
			s.connecting = true;
		if (s.refused)
			stop = 1;
		pthread_mutex_unlock(&s.lock);
		if (s.o.count && got >= s.o.count) {
			if (!linger_end)
				linger_end = peer_now_us() + (uint64_t)s.o.linger_ms * 1000;
			if (peer_now_us() >= linger_end)
				break;
		}
		if (conn_needed && MQTTAsync_connect(s.c, cp) != MQTTASYNC_SUCCESS) {
			pthread_mutex_lock(&s.lock);
			s.connecting = false;
			pthread_mutex_unlock(&s.lock);
		}
		usleep(conn_needed ? 50000 : 5000);
	}
	MQTTAsync_disconnect(s.c, NULL);
	usleep(50000);
	pthread_mutex_lock(&s.lock);
	ret = (s.o.count && s.got < s.o.count) || s.refused ? 1 : 0;
	if (ret)
		fprintf(stderr, "peer-paho-sub: got %lu of %lu messages%s\n", s.got, s.o.count,
			s.refused ? " (subscription refused)" : "");
	fflush(s.out);
	pthread_mutex_unlock(&s.lock);
	MQTTAsync_destroy(&s.c);
	if (s.out != stdout)
		fclose(s.out);
	MQTTProperties_free(&props);
	return ret;
}
