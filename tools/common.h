/* SPDX-License-Identifier: MIT */
/* Shared option handling, number parsing and client set-up of the mqttq command-line tools. */
#ifndef MQTTQ_TOOLS_COMMON_H
#define MQTTQ_TOOLS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqttq.h"

/* Long-only options shared by the tools; values above any short option character. */
enum {
	OPT_HELP = 256,
	OPT_WILL_TOPIC,
	OPT_WILL_PAYLOAD,
	OPT_WILL_QOS,
	OPT_WILL_RETAIN,
	OPT_OFFLOAD,
	OPT_QUIET,
	OPT_REPEAT,
	OPT_REPEAT_DELAY,
	OPT_FILTER,
	OPT_JSON,
	OPT_TOOL_FIRST_FREE,
};

/* Connection settings common to mqttq-pub and mqttq-sub, with mosquitto's defaults. */
struct tool_conn {
	const char *prog;
	const char *host;
	int port;
	const char *id;
	const char *id_prefix;
	int keepalive;
	bool persistent;	/* -c */
	int version;		/* MQTTQ_V311 or MQTTQ_V5 */
	const char *user;
	const char *pass;
	char *url_host;		/* from -L, owned */
	char *url_topic;	/* from -L, owned; NULL when the URL has no path */
	const char *will_topic;
	const char *will_payload;
	int will_qos;
	bool will_retain;
	int offload;		/* enum mqttq_offload */
	bool debug;
	bool quiet;
	char id_buf[64];
	struct mqttq_will will;
};

void tool_conn_init(struct tool_conn *c, const char *prog);
/*
 * Handles a connection option (as returned by getopt_long). Returns 1 when
 * handled, 0 when opt is not a connection option, -1 after printing an error.
 */
int tool_conn_opt(struct tool_conn *c, int opt, const char *arg);
/* Checks combinations once all options are read; -1 after printing an error. */
int tool_conn_finish(struct tool_conn *c);
/* Fills o from c (o must have been through mqttq_opts_init). */
void tool_conn_opts(struct tool_conn *c, struct mqttq_opts *o);
/* Creates and connects a client; prints mosquitto-style errors. 0 or -errno. */
int tool_connect(struct tool_conn *c, struct mqttq_opts *o, struct mqttq **out, int timeout_ms);

/* Prints "Error: ..." and the --help hint to stderr, as mosquitto's tools do. */
void tool_usage_error(const char *prog, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Reports getopt's complaint about argv[optind-1] as a usage error. */
void tool_getopt_error(const char *prog, int argc, char **argv, int optopt_ch, bool missing_arg);

/* Strict decimal parse into [lo, hi]; -1 when s is not such a number. */
int tool_parse_long(const char *s, long lo, long hi, long *out);
/* Parses auto|on|off; -1 otherwise. */
int tool_parse_offload(const char *s);
/* Parses a protocol version: mqttv311|311|mqttv5|5; -1 otherwise (3.1 is not supported). */
int tool_parse_version(const char *s);

uint64_t tool_now_ns(void);
void tool_sleep_ns(uint64_t ns);

#endif
