// SPDX-License-Identifier: MIT
/* Shared option handling, number parsing and client set-up of the mqttq command-line tools. */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void tool_conn_init(struct tool_conn *c, const char *prog)
{
	*c = (struct tool_conn){
		.prog = prog,
		.host = "localhost",
		.port = 1883,
		.keepalive = 60,
		.version = MQTTQ_V311,
		.offload = MQTTQ_OFFLOAD_DEFAULT,
	};
}

void tool_usage_error(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fputs("Error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\nUse '%s --help' to see usage.\n", prog);
}

void tool_getopt_error(const char *prog, int argc, char **argv, int optopt_ch, bool missing_arg)
{
	const char *arg = optind - 1 < argc && optind >= 1 ? argv[optind - 1] : "?";

	if (missing_arg)
		tool_usage_error(prog, "%s argument given but no value specified.", arg);
	else if (optopt_ch && optopt_ch < 256)
		tool_usage_error(prog, "Unknown option '-%c'.", optopt_ch);
	else
		tool_usage_error(prog, "Unknown option '%s'.", arg);
}

int tool_parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int tool_parse_offload(const char *s)
{
	if (!strcmp(s, "auto"))
		return MQTTQ_OFFLOAD_AUTO;
	if (!strcmp(s, "on"))
		return MQTTQ_OFFLOAD_ON;
	if (!strcmp(s, "off"))
		return MQTTQ_OFFLOAD_OFF;
	return -1;
}

int tool_parse_version(const char *s)
{
	if (!strcmp(s, "mqttv311") || !strcmp(s, "311"))
		return MQTTQ_V311;
	if (!strcmp(s, "mqttv5") || !strcmp(s, "5"))
		return MQTTQ_V5;
	return -1;
}

/* mqtt://[user[:password]@]host[:port][/topic] */
static int parse_url(struct tool_conn *c, const char *url)
{
	const char *p, *at, *slash, *colon, *hostp;
	char *auth = NULL;
	long port;

	if (strncmp(url, "mqtt://", 7)) {
		if (!strncmp(url, "mqtts://", 8))
			tool_usage_error(c->prog, "mqtts:// URLs need TLS, which this tool does not support.");
		else
			tool_usage_error(c->prog, "Unsupported URL scheme (expected mqtt://).");
		return -1;
	}
	p = url + 7;
	slash = strchr(p, '/');
	at = strchr(p, '@');
	if (at && slash && at > slash)
		at = NULL;
	if (at) {
		auth = strndup(p, (size_t)(at - p));
		if (!auth)
			goto err_nomem;
		colon = strchr(auth, ':');
		if (colon) {
			auth[colon - auth] = '\0';
			c->pass = colon + 1;
		}
		c->user = auth;
		/* auth stays allocated: user and pass point into it for the whole run. */
		hostp = at + 1;
	} else {
		hostp = p;
	}
	slash = strchr(hostp, '/');
	free(c->url_host);
	c->url_host = slash ? strndup(hostp, (size_t)(slash - hostp)) : strdup(hostp);
	if (!c->url_host)
		goto err_nomem;
	colon = strrchr(c->url_host, ':');
	if (colon && !strchr(colon, ']')) {
		if (tool_parse_long(colon + 1, 1, 65535, &port)) {
			tool_usage_error(c->prog, "Invalid port in URL '%s'.", url);
			return -1;
		}
		c->port = (int)port;
		c->url_host[colon - c->url_host] = '\0';
	}
	if (!*c->url_host) {
		tool_usage_error(c->prog, "No host in URL '%s'.", url);
		return -1;
	}
	c->host = c->url_host;
	free(c->url_topic);
	c->url_topic = NULL;
	if (slash && slash[1]) {
		c->url_topic = strdup(slash + 1);
		if (!c->url_topic)
			goto err_nomem;
	}
	return 0;
err_nomem:
	free(auth);
	fprintf(stderr, "Error: Out of memory.\n");
	return -1;
}

int tool_conn_opt(struct tool_conn *c, int opt, const char *arg)
{
	long v;
	int r;

	switch (opt) {
	case 'h':
		c->host = arg;
		return 1;
	case 'p':
		if (tool_parse_long(arg, 1, 65535, &v)) {
			tool_usage_error(c->prog, "Invalid port given: %s", arg);
			return -1;
		}
		c->port = (int)v;
		return 1;
	case 'i':
		if (!*arg || strlen(arg) > 65535) {
			tool_usage_error(c->prog, "Invalid client id '%s'.", arg);
			return -1;
		}
		c->id = arg;
		return 1;
	case 'I':
		c->id_prefix = arg;
		return 1;
	case 'k':
		if (tool_parse_long(arg, 0, 65535, &v)) {
			tool_usage_error(c->prog, "Invalid keepalive given, it must be between 0 and 65535 inclusive.");
			return -1;
		}
		c->keepalive = (int)v;
		return 1;
	case 'c':
		c->persistent = true;
		return 1;
	case 'V':
		r = tool_parse_version(arg);
		if (r < 0) {
			tool_usage_error(c->prog, "Invalid protocol version argument given.");
			return -1;
		}
		c->version = r;
		return 1;
	case 'u':
		c->user = arg;
		return 1;
	case 'P':
		c->pass = arg;
		return 1;
	case 'L':
		return parse_url(c, arg) ? -1 : 1;
	case 'd':
		c->debug = true;
		return 1;
	case OPT_QUIET:
		c->quiet = true;
		return 1;
	case OPT_WILL_TOPIC:
		c->will_topic = arg;
		return 1;
	case OPT_WILL_PAYLOAD:
		c->will_payload = arg;
		return 1;
	case OPT_WILL_QOS:
		if (tool_parse_long(arg, 0, 2, &v)) {
			tool_usage_error(c->prog, "Invalid will QoS %s.", arg);
			return -1;
		}
		c->will_qos = (int)v;
		return 1;
	case OPT_WILL_RETAIN:
		c->will_retain = true;
		return 1;
	case OPT_OFFLOAD:
		r = tool_parse_offload(arg);
		if (r < 0) {
			tool_usage_error(c->prog, "--offload must be auto, on or off, not '%s'.", arg);
			return -1;
		}
		c->offload = r;
		return 1;
	}
	return 0;
}

int tool_conn_finish(struct tool_conn *c)
{
	if (c->will_payload && !c->will_topic) {
		tool_usage_error(c->prog, "Will payload given, but no will topic given.");
		return -1;
	}
	if (c->will_retain && !c->will_topic) {
		tool_usage_error(c->prog, "Will retain given, but no will topic given.");
		return -1;
	}
	if (c->pass && !c->user) {
		tool_usage_error(c->prog, "Password given, but no username.");
		return -1;
	}
	if (c->will_topic && (!*c->will_topic || strpbrk(c->will_topic, "+#"))) {
		tool_usage_error(c->prog, "Invalid will topic '%s', does it contain '+' or '#'?",
				 c->will_topic);
		return -1;
	}
	if (!c->id) {
		snprintf(c->id_buf, sizeof(c->id_buf), "%s_%d", c->id_prefix ? c->id_prefix : c->prog,
			 (int)getpid());
		c->id = c->id_buf;
	}
	if (c->persistent && c->id == c->id_buf && !c->id_prefix) {
		tool_usage_error(c->prog, "You must provide a client id if you are using the -c option.");
		return -1;
	}
	return 0;
}

static void tool_log(void *ctx, int level, const char *msg)
{
	const struct tool_conn *c = ctx;

	if (c->debug)
		fprintf(stderr, "%s: %s\n", c->prog, msg);
}

void tool_conn_opts(struct tool_conn *c, struct mqttq_opts *o)
{
	/* "localhost" may resolve to ::1 first while brokers listen on 127.0.0.1 only. */
	o->host = strcmp(c->host, "localhost") ? c->host : "127.0.0.1";
	o->port = (uint16_t)c->port;
	o->version = c->version;
	o->client_id = c->id;
	o->username = c->user;
	o->password = c->pass;
	o->password_len = c->pass ? strlen(c->pass) : 0;
	o->clean = !c->persistent;
	/* As mosquitto: -c on v5 means a session that never expires. */
	o->session_expiry = c->persistent && c->version == MQTTQ_V5 ? 0xffffffffu : 0;
	o->keepalive_s = (uint16_t)c->keepalive;
	o->offload = c->offload;
	o->no_reconnect = 1;
	if (c->will_topic) {
		c->will = (struct mqttq_will){
			.topic = c->will_topic,
			.payload = c->will_payload ? c->will_payload : "",
			.payload_len = c->will_payload ? strlen(c->will_payload) : 0,
			.qos = c->will_qos,
			.retain = c->will_retain,
		};
		o->will = &c->will;
	}
	if (c->debug) {
		o->log = tool_log;
		o->log_ctx = c;
	}
}

int tool_connect(struct tool_conn *c, struct mqttq_opts *o, struct mqttq **out, int timeout_ms)
{
	struct mqttq *q;
	int r;

	r = mqttq_new(&q, o);
	if (r) {
		if (!c->quiet)
			fprintf(stderr, "Error: %s\n", *mqttq_errmsg(NULL) ? mqttq_errmsg(NULL) :
				mqttq_strerror(r));
		return r;
	}
	if (c->debug)
		fprintf(stderr, "Client %s sending CONNECT\n", c->id);
	r = mqttq_connect_sync(q, timeout_ms);
	if (r) {
		if (!c->quiet)
			fprintf(stderr, "Connection error: %s\n", *mqttq_errmsg(q) ? mqttq_errmsg(q) :
				mqttq_strerror(r));
		mqttq_destroy(q);
		return r;
	}
	if (c->debug)
		fprintf(stderr, "Client %s received CONNACK (engine %s)\n", mqttq_client_id(q),
			mqttq_engine_name(mqttq_engine(q)));
	*out = q;
	return 0;
}

uint64_t tool_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tool_sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}
