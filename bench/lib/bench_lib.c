// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Publish-throughput benchmark: libmqttq vs libmosquitto, same broker, same window, CPU per message. */
#include <errno.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "mqttq.h"

static long n_msgs = 1000000;
static int qos, window = 64, port, version = 5;
static const char *lib = "mqttq";
static long done_count;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run_mqttq(void)
{
	static struct mqttq_event ev[1024];
	struct mqttq_opts o;
	struct mqttq *q;
	char payload[64];
	long sent = 0;
	int r;

	memset(payload, 'p', sizeof(payload));
	mqttq_opts_init(&o);
	o.port = port;
	o.version = version;
	o.window = window;
	o.queue_max_msgs = 8192;
	o.client_id = "bench-mqttq";
	o.offload = MQTTQ_OFFLOAD_OFF;
	if (getenv("BENCH_OFFLOAD"))
		o.offload = MQTTQ_OFFLOAD_DEFAULT;
	r = mqttq_new(&q, &o);
	if (!r)
		r = mqttq_connect_sync(q, 5000);
	if (r) {
		fprintf(stderr, "mqttq: %s (%s)\n", mqttq_strerror(r), mqttq_errmsg(q));
		return 1;
	}
	while (done_count < n_msgs) {
		while (sent < n_msgs) {
			r = mqttq_publish(q, "bench/t", payload, sizeof(payload), qos, 0, NULL, sent);
			if (r == -ENOBUFS)
				break;
			if (r) {
				fprintf(stderr, "publish: %s\n", mqttq_strerror(r));
				return 1;
			}
			sent++;
		}
		r = mqttq_wait(q, ev, 1024, 1000);
		if (r < 0) {
			fprintf(stderr, "wait: %s\n", mqttq_strerror(r));
			return 1;
		}
		for (int i = 0; i < r; i++) {
			if (ev[i].type == MQTTQ_EV_PUBLISHED)
				done_count++;
			else if (ev[i].type == MQTTQ_EV_DISCONNECTED)
				fprintf(stderr, "disconnected: %s\n", mqttq_strerror(ev[i].err));
		}
	}
	if (getenv("BENCH_VERBOSE")) {
		struct mqttq_stats st;

		mqttq_stats(q, &st, sizeof(st));
		fprintf(stderr, "sends %llu enters %llu waits %llu recvs %llu bytes %llu\n",
			(unsigned long long)st.sends, (unsigned long long)st.enters,
			(unsigned long long)st.waits, (unsigned long long)st.recvs,
			(unsigned long long)st.bytes_tx);
	}
	mqttq_disconnect(q, 0);
	mqttq_destroy(q);
	return 0;
}

static void on_pub(struct mosquitto *m, void *obj, int mid)
{
	done_count++;
}

static int run_mosq(void)
{
	struct mosquitto *m;
	char payload[64];
	long sent = 0;
	int r;

	memset(payload, 'p', sizeof(payload));
	mosquitto_lib_init();
	m = mosquitto_new("bench-mosq", true, NULL);
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION,
			     version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
	mosquitto_max_inflight_messages_set(m, window);
	mosquitto_publish_callback_set(m, on_pub);
	r = mosquitto_connect(m, "127.0.0.1", port, 60);
	if (r) {
		fprintf(stderr, "mosquitto_connect: %s\n", mosquitto_strerror(r));
		return 1;
	}
	/* keep at most a window's worth queued in the library, as libmqttq's queue does */
	while (done_count < n_msgs) {
		while (sent < n_msgs && sent - done_count < window) {
			r = mosquitto_publish(m, NULL, "bench/t", sizeof(payload), payload, qos, false);
			if (r) {
				fprintf(stderr, "mosquitto_publish: %s\n", mosquitto_strerror(r));
				return 1;
			}
			sent++;
		}
		r = mosquitto_loop(m, 1000, 1);
		if (r) {
			fprintf(stderr, "mosquitto_loop: %s\n", mosquitto_strerror(r));
			return 1;
		}
	}
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();
	return 0;
}

int main(int argc, char **argv)
{
	struct rusage ru;
	double t0, t1;
	int opt, r;

	while ((opt = getopt(argc, argv, "l:n:q:w:p:v:")) != -1) {
		switch (opt) {
		case 'l': lib = optarg; break;
		case 'n': n_msgs = atol(optarg); break;
		case 'q': qos = atoi(optarg); break;
		case 'w': window = atoi(optarg); break;
		case 'p': port = atoi(optarg); break;
		case 'v': version = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s -l mqttq|mosq -p port [-n N] [-q qos] [-w window] [-v 4|5]\n",
				argv[0]);
			return 2;
		}
	}
	t0 = now_s();
	r = strcmp(lib, "mosq") ? run_mqttq() : run_mosq();
	t1 = now_s();
	getrusage(RUSAGE_SELF, &ru);
	/* one line for the driver: lib qos msgs seconds user_us sys_us */
	printf("%s %d %ld %.3f %.0f %.0f\n", lib, qos, n_msgs, t1 - t0,
	       ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec,
	       ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec);
	return r;
}
