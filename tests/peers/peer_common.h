/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Options, payloads, latency statistics and JSON shared by the peer-library drivers. */
#ifndef PEER_COMMON_H
#define PEER_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct peer_opts {
	const char *host;
	int port;
	const char *topic;
	int qos;
	unsigned long count;	/* pub: messages to send; sub: exit after this many (0: no limit) */
	size_t size;
	unsigned int window;
	int version;		/* 311 or 5 */
	const char *client_id;
	bool persistent;	/* clean session off (v5: clean start off, session expiry 1 h) */
	bool json;
	const char *run;
	unsigned int timeout_s;
	unsigned int keepalive;
	const char *out_path;
	const char *ready_path;
	bool verbose;
	unsigned int linger_ms;	/* sub: keep listening this long after -C COUNT, for duplicates */
	const char *outbox;	/* pub (libmqttq only): crash-safe outbox file */
	const char *progress;	/* pub (libmqttq only): accepted seqs appended here, resumed from */
};

enum peer_role { PEER_PUB, PEER_SUB };

/* Parses argv into o; prints usage and exits 2 on bad input. */
void peer_parse(int argc, char **argv, enum peer_role role, const char *prog, struct peer_opts *o);
uint64_t peer_now_us(void);
/* Writes the payload of message seq into buf (o->size bytes or the record, whichever is longer). */
size_t peer_payload(const struct peer_opts *o, unsigned long seq, char *buf, size_t cap);
/* Writes "<topic> <payload>\n" with non-printable bytes shown as '?'. */
void peer_write_line(FILE *f, const char *topic, const void *payload, size_t len);
void peer_touch(const char *path);
/*
 * Returns false for a payload whose "seq=<n>" was seen before, so -C counts
 * distinct messages and duplicates cannot end a subscriber early.
 */
bool peer_first_seen(const void *payload, size_t len);

struct peer_stats {
	const char *lib;
	const struct peer_opts *o;
	uint64_t t_start_us, t_end_us;
	uint32_t *lat_us;	/* one per completed message */
	unsigned long completed, dup_completions, reconnects, published;
	unsigned long failed;	/* publishes the library reported as failed */
	const char *error;
};

int peer_stats_init(struct peer_stats *s, const char *lib, const struct peer_opts *o);
void peer_stats_print(struct peer_stats *s, FILE *f);
void peer_stats_free(struct peer_stats *s);

#endif
