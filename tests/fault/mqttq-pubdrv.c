// SPDX-License-Identifier: GPL-2.0 OR MIT
/* mqttq-pubdrv: libmqttq publisher of numbered messages with the peer drivers' flags and JSON. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
		fprintf(stderr, "mqttq-pubdrv: lib: %s\n", msg);
}

/*
 * With --progress, each seq is appended (write(2): it survives SIGKILL, not
 * power loss) once mqttq_publish() has accepted it. A restart continues
 * from the one after the last written, which may or may not have been
 * accepted (the kill can fall between the call and the write): the outbox
 * decides. Its restored messages complete first; if that seq was among them
 * it is done, else it was never accepted and is published now. It cannot
 * have been accepted and completed already: completion needs a PUBCOMP/PUBACK
 * read in mqttq_wait(), which comes after the write. Writing the seq before
 * the call instead (as this did) cannot tell "never accepted" from
 * "accepted and completed": a kill after the library retired the last
 * accepted seq (its DONE record on disk) but before the next seq was
 * written made the restart publish it again, a QoS 2 duplicate in about
 * one run in six, not the library's.
 */
static unsigned long progress_resume(const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned long v, next = 0;

	if (!f)
		return 0;
	while (fscanf(f, "%lu", &v) == 1)
		if (v + 1 > next)
			next = v + 1;
	fclose(f);
	return next;
}

int main(int argc, char **argv)
{
	static struct mqttq_event ev[64];
	struct peer_opts o;
	struct peer_stats st;
	struct mqttq_opts mo;
	struct mqttq *q = NULL;
	struct mqttq_stats ms;
	uint64_t *t0, deadline;
	uint8_t *done;
	char *payload, line[32];
	size_t cap;
	unsigned long seq = 0, outstanding = 0, ambiguous = ULONG_MAX;
	int pfd = -1, rc, ret = 1, n, i;
	bool ever = false;

	peer_parse(argc, argv, PEER_PUB, "mqttq-pubdrv", &o);
	cap = o.size + 128;
	payload = malloc(cap);
	t0 = calloc(o.count, sizeof(*t0));
	done = calloc(o.count, 1);
	if (!payload || !t0 || !done || peer_stats_init(&st, "libmqttq", &o)) {
		fprintf(stderr, "mqttq-pubdrv: out of memory\n");
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (o.progress) {
		/* Even with nothing written, seq 0 may have been accepted before a kill. */
		seq = progress_resume(o.progress);
		if (seq < o.count)
			ambiguous = seq;
		pfd = open(o.progress, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (pfd < 0) {
			perror(o.progress);
			return 1;
		}
	}
	mqttq_opts_init(&mo);
	mo.host = o.host;
	mo.port = (uint16_t)o.port;
	mo.version = o.version == 5 ? MQTTQ_V5 : MQTTQ_V311;
	mo.client_id = o.client_id;
	mo.clean = !o.persistent;
	if (o.persistent && o.version == 5)
		mo.session_expiry = 3600;
	mo.keepalive_s = (uint16_t)o.keepalive;
	mo.window = (uint16_t)(o.window > 65535 ? 65535 : o.window);
	/* Like the peers' 20 ms: the faults cut often, and the test should not idle. */
	mo.reconnect_min_ms = 20;
	mo.reconnect_max_ms = 500;
	mo.connect_timeout_ms = 3000;
	mo.outbox_path = o.outbox;
	mo.log = log_cb;
	mo.log_ctx = &o.verbose;
	rc = mqttq_new(&q, &mo);
	if (rc) {
		fprintf(stderr, "mqttq-pubdrv: mqttq_new: %s: %s\n", mqttq_strerror(rc),
			mqttq_errmsg(NULL));
		st.error = "mqttq_new failed";
		goto out;
	}
	/* Restored from the outbox: in flight already, completed by their tokens. */
	mqttq_stats(q, &ms, sizeof(ms));
	outstanding = ms.queued + ms.inflight;
	st.t_start_us = peer_now_us();
	deadline = st.t_start_us + (uint64_t)o.timeout_s * 1000000;
	rc = mqttq_connect(q);
	if (rc) {
		fprintf(stderr, "mqttq-pubdrv: connect %s:%d: %s\n", o.host, o.port,
			mqttq_strerror(rc));
		st.error = "connect failed";
		goto out;
	}
	while (!stop && (seq < o.count || outstanding) && peer_now_us() < deadline) {
		if (ambiguous != ULONG_MAX && !outstanding) {
			/* Every restored message has completed: was the last one of them? */
			if (done[ambiguous])
				seq = ambiguous + 1;
			ambiguous = ULONG_MAX;
		}
		/* The library queues while disconnected; the window bounds what is outstanding. */
		while (ambiguous == ULONG_MAX && outstanding < o.window && seq < o.count) {
			size_t len = peer_payload(&o, seq, payload, cap);

			t0[seq] = peer_now_us();
			rc = mqttq_publish(q, o.topic, payload, len, o.qos, 0, NULL, seq + 1);
			if (rc == -ENOBUFS)
				break;
			if (rc) {
				fprintf(stderr, "mqttq-pubdrv: publish seq %lu: %s\n", seq,
					mqttq_strerror(rc));
				st.error = "publish failed";
				goto out;
			}
			if (pfd >= 0) {
				int l = snprintf(line, sizeof(line), "%lu\n", seq);

				if (write(pfd, line, (size_t)l) != l) {
					perror(o.progress);
					st.error = "progress write failed";
					goto out;
				}
			}
			st.published++;
			outstanding++;
			seq++;
		}
		n = mqttq_wait(q, ev, 64, 100);
		if (n < 0) {
			fprintf(stderr, "mqttq-pubdrv: wait: %s\n", mqttq_strerror(n));
			st.error = "wait failed";
			goto out;
		}
		for (i = 0; i < n; i++) {
			struct mqttq_event *e = &ev[i];
			unsigned long s;

			switch (e->type) {
			case MQTTQ_EV_CONNECTED:
				if (o.verbose)
					fprintf(stderr, "mqttq-pubdrv: connected session_present=%d\n",
						e->session_present);
				if (ever)
					st.reconnects++;
				ever = true;
				break;
			case MQTTQ_EV_DISCONNECTED:
				if (o.verbose)
					fprintf(stderr, "mqttq-pubdrv: disconnected: %s retry=%d\n",
						mqttq_strerror(e->err), e->will_retry);
				if (!e->will_retry) {
					st.error = "disconnected for good";
					goto out;
				}
				break;
			case MQTTQ_EV_PUBLISHED:
				s = (unsigned long)e->token - 1;
				if (e->token == 0 || s >= o.count) {
					st.dup_completions++;
					break;
				}
				if (done[s]) {
					st.dup_completions++;
					break;
				}
				done[s] = 1;
				if (outstanding)
					outstanding--;
				if (e->err < 0 || e->reason >= 0x80) {
					/* Counted, never republished: a loss shows as a loss. */
					if (o.verbose)
						fprintf(stderr, "mqttq-pubdrv: seq %lu failed: %s reason 0x%x\n",
							s, mqttq_strerror(e->err), e->reason);
					st.failed++;
					break;
				}
				st.lat_us[st.completed++] = t0[s] ? (uint32_t)(peer_now_us() - t0[s]) : 0;
				break;
			default:
				break;
			}
		}
	}
	if (seq < o.count || outstanding || st.failed)
		st.error = stop ? "interrupted" : st.failed ? "publishes failed" :
			   ever ? "timed out" : "never connected";
	else
		ret = 0;
out:
	st.t_end_us = peer_now_us();
	if (q && mqttq_is_connected(q)) {
		mqttq_disconnect(q, 0);
		mqttq_wait(q, ev, 64, 50);
	}
	if (q && o.verbose && !mqttq_stats(q, &ms, sizeof(ms)))
		fprintf(stderr, "mqttq-pubdrv: retransmits=%llu connects=%llu outbox_corrupt=%llu\n",
			(unsigned long long)ms.retransmits, (unsigned long long)ms.connects,
			(unsigned long long)ms.outbox_corrupt);
	peer_stats_print(&st, o.json ? stdout : stderr);
	if (q)
		mqttq_destroy(q);
	if (pfd >= 0)
		close(pfd);
	peer_stats_free(&st);
	free(done);
	free(t0);
	free(payload);
	return ret;
}
