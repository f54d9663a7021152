// SPDX-License-Identifier: GPL-2.0 OR MIT
/* mqttq-subdrv: libmqttq subscriber writing one line per received message, like the peer drivers. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqttq.h"
#include "../peers/peer_common.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void log_cb(void *ctx, int level, const char *msg)
{
	if (level <= MQTTQ_LOG_WARN || *(bool *)ctx)
		fprintf(stderr, "mqttq-subdrv: lib: %s\n", msg);
}

int main(int argc, char **argv)
{
	static struct mqttq_event ev[64];
	static char topic[65536];
	struct peer_opts o;
	struct mqttq_opts mo;
	struct mqttq *q = NULL;
	struct mqttq_sub sub;
	uint64_t deadline, linger_end = 0;
	unsigned long got = 0;
	bool ready = false;
	FILE *out;
	int rc, ret = 1, n, i;

	peer_parse(argc, argv, PEER_SUB, "mqttq-subdrv", &o);
	out = o.out_path ? fopen(o.out_path, "w") : stdout;
	if (!out) {
		perror(o.out_path);
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	mqttq_opts_init(&mo);
	mo.host = o.host;
	mo.port = (uint16_t)o.port;
	mo.version = o.version == 5 ? MQTTQ_V5 : MQTTQ_V311;
	mo.client_id = o.client_id;
	mo.clean = !o.persistent;
	if (o.persistent && o.version == 5)
		mo.session_expiry = 3600;
	mo.keepalive_s = (uint16_t)o.keepalive;
	mo.reconnect_min_ms = 20;
	mo.reconnect_max_ms = 500;
	mo.connect_timeout_ms = 3000;
	mo.log = log_cb;
	mo.log_ctx = &o.verbose;
	rc = mqttq_new(&q, &mo);
	if (rc) {
		fprintf(stderr, "mqttq-subdrv: mqttq_new: %s: %s\n", mqttq_strerror(rc),
			mqttq_errmsg(NULL));
		goto out;
	}
	rc = mqttq_connect(q);
	if (rc) {
		fprintf(stderr, "mqttq-subdrv: connect %s:%d: %s\n", o.host, o.port,
			mqttq_strerror(rc));
		goto out;
	}
	sub = (struct mqttq_sub){ .filter = o.topic, .qos = (uint8_t)o.qos };
	deadline = peer_now_us() + (uint64_t)o.timeout_s * 1000000;
	while (!stop && peer_now_us() < deadline) {
		if (o.count && got >= o.count) {
			if (!linger_end)
				linger_end = peer_now_us() + (uint64_t)o.linger_ms * 1000;
			if (peer_now_us() >= linger_end)
				break;
		}
		n = mqttq_wait(q, ev, 64, 100);
		if (n < 0) {
			fprintf(stderr, "mqttq-subdrv: wait: %s\n", mqttq_strerror(n));
			goto out;
		}
		for (i = 0; i < n; i++) {
			struct mqttq_event *e = &ev[i];
			size_t tl;

			switch (e->type) {
			case MQTTQ_EV_CONNECTED:
				if (o.verbose)
					fprintf(stderr, "mqttq-subdrv: connected session_present=%d\n",
						e->session_present);
				/* Subscribing again on a resumed session is harmless and covers a lost one. */
				rc = mqttq_subscribe(q, &sub, 1, 0, 1);
				if (rc && o.verbose)
					fprintf(stderr, "mqttq-subdrv: subscribe: %s\n", mqttq_strerror(rc));
				break;
			case MQTTQ_EV_DISCONNECTED:
				fflush(out);
				if (o.verbose)
					fprintf(stderr, "mqttq-subdrv: disconnected: %s\n",
						mqttq_strerror(e->err));
				if (!e->will_retry) {
					fprintf(stderr, "mqttq-subdrv: no reconnect: %s\n",
						mqttq_strerror(e->err));
					goto out;
				}
				break;
			case MQTTQ_EV_SUBSCRIBED:
				if (e->ncodes < 1 || e->codes[0] > 2) {
					fprintf(stderr, "mqttq-subdrv: subscription refused (0x%x)\n",
						e->ncodes ? e->codes[0] : 0xff);
					goto out;
				}
				if (!ready && o.ready_path)
					peer_touch(o.ready_path);
				ready = true;
				break;
			case MQTTQ_EV_MESSAGE:
				tl = e->msg.topic_len < sizeof(topic) ? e->msg.topic_len : sizeof(topic) - 1;
				memcpy(topic, e->msg.topic, tl);
				topic[tl] = '\0';
				peer_write_line(out, topic, e->msg.payload, e->msg.payload_len);
				got += peer_first_seen(e->msg.payload, e->msg.payload_len);
				if (o.out_path)
					fflush(out);
				break;
			default:
				break;
			}
		}
	}
	ret = o.count && got < o.count ? 1 : 0;
	if (ret)
		fprintf(stderr, "mqttq-subdrv: got %lu of %lu messages\n", got, o.count);
out:
	fflush(out);
	if (out != stdout)
		fclose(out);
	if (q) {
		if (mqttq_is_connected(q)) {
			mqttq_disconnect(q, 0);
			mqttq_wait(q, ev, 64, 50);
		}
		mqttq_destroy(q);
	}
	return ret;
}
