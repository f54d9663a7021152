// SPDX-License-Identifier: MIT
/* mqttq-pub: publishes messages through libmqttq with mosquitto_pub's options and exit codes. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define PROG "mqttq-pub"

enum src { SRC_NONE, SRC_MSG, SRC_FILE, SRC_STDIN_ALL, SRC_LINES, SRC_NULL };

static struct {
	struct tool_conn c;
	const char *topic;
	int qos;
	bool retain;
	long max_inflight;
	long repeat;
	double repeat_delay;
	enum src src;
	const char *msg;
	const char *file;
	unsigned long outstanding;
	unsigned long failed;
} g;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void usage(void)
{
	printf("mqttq-pub publishes messages on a topic through libmqttq and exits.\n"
	       "mqttq-pub version %s running on libmqttq %s.\n\n"
	       "Usage: mqttq-pub {[-h host] [-p port] [-u username [-P password]] -t topic | -L URL}\n"
	       "                 {-f file | -l | -n | -m message | -s}\n"
	       "                 [-c] [-k keepalive] [-q qos] [-r] [--repeat N] [--repeat-delay time]\n"
	       "                 [-i id] [-I id_prefix] [-d] [--quiet] [-M max_inflight]\n"
	       "                 [-V mqttv311|mqttv5] [--offload auto|on|off]\n"
	       "                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n"
	       "       mqttq-pub --help\n\n"
	       " -c : disable clean session (persistent session; needs -i or -I).\n"
	       " -d : enable debug messages (on stderr).\n"
	       " -f : send the contents of a file as the message.\n"
	       " -h : mqtt host to connect to. Defaults to localhost.\n"
	       " -i : id to use for this client. Defaults to mqttq-pub_ appended with the process id.\n"
	       " -I : define the client id as id_prefix appended with the process id.\n"
	       " -k : keep alive in seconds for this client. Defaults to 60.\n"
	       " -L : specify user, password, hostname, port and topic as a URL in the form:\n"
	       "      mqtt://[username[:password]@]host[:port]/topic\n"
	       " -l : read messages from stdin, sending a separate message for each line.\n"
	       " -m : message payload to send.\n"
	       " -M : the maximum inflight messages for QoS 1/2. Defaults to 20.\n"
	       " -n : send a null (zero length) message.\n"
	       " -p : network port to connect to. Defaults to 1883.\n"
	       " -P : provide a password.\n"
	       " -q : quality of service level to use for all messages. Defaults to 0.\n"
	       " -r : message should be retained.\n"
	       " -s : read message from stdin, sending the entire input as a message.\n"
	       " -t : mqtt topic to publish to.\n"
	       " -u : provide a username.\n"
	       " -V : specify the version of the MQTT protocol to use when connecting.\n"
	       "      Can be mqttv5 (5) or mqttv311 (311). Defaults to mqttv311.\n"
	       " --help : display this message.\n"
	       " --offload : QoS engine: auto (the kernel module when loaded), on (require it) or off.\n"
	       "             Defaults to the MQTTQ_OFFLOAD environment variable, else auto.\n"
	       " --quiet : don't print error messages.\n"
	       " --repeat : if publish mode is -f, -m, -n or -s, repeat the publish N times.\n"
	       " --repeat-delay : if using --repeat, wait time seconds between publishes. Defaults to 0.\n"
	       " --will-payload : payload for the client Will.\n"
	       " --will-qos : QoS level for the client Will.\n"
	       " --will-retain : if given, make the client Will retained.\n"
	       " --will-topic : the topic on which to publish the client Will.\n\n"
	       "Exit status: 0 when every message was delivered as its QoS promises, 1 otherwise.\n"
	       "See mqttq-pub(1).\n",
	       MQTTQ_VERSION_STRING, mqttq_version_string());
}

static int set_src(enum src s)
{
	if (g.src != SRC_NONE) {
		tool_usage_error(PROG, "Only one type of message can be sent at once.");
		return -1;
	}
	g.src = s;
	return 0;
}

static int parse(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, OPT_HELP },
		{ "will-topic", required_argument, NULL, OPT_WILL_TOPIC },
		{ "will-payload", required_argument, NULL, OPT_WILL_PAYLOAD },
		{ "will-qos", required_argument, NULL, OPT_WILL_QOS },
		{ "will-retain", no_argument, NULL, OPT_WILL_RETAIN },
		{ "offload", required_argument, NULL, OPT_OFFLOAD },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "repeat", required_argument, NULL, OPT_REPEAT },
		{ "repeat-delay", required_argument, NULL, OPT_REPEAT_DELAY },
		{ 0 },
	};
	int opt, r;
	long v;
	char *end;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h:p:i:I:k:cV:u:P:L:dt:m:f:lnsq:rM:", lopts,
				  NULL)) != -1) {
		r = tool_conn_opt(&g.c, opt, optarg);
		if (r < 0)
			return -1;
		if (r)
			continue;
		switch (opt) {
		case OPT_HELP:
			usage();
			exit(0);
		case 't':
			if (!*optarg || strpbrk(optarg, "+#")) {
				tool_usage_error(PROG, "Invalid publish topic '%s', does it contain '+' or '#'?",
						 optarg);
				return -1;
			}
			g.topic = optarg;
			break;
		case 'm':
			if (set_src(SRC_MSG))
				return -1;
			g.msg = optarg;
			break;
		case 'f':
			if (set_src(SRC_FILE))
				return -1;
			g.file = optarg;
			break;
		case 'l':
			if (set_src(SRC_LINES))
				return -1;
			break;
		case 'n':
			if (set_src(SRC_NULL))
				return -1;
			break;
		case 's':
			if (set_src(SRC_STDIN_ALL))
				return -1;
			break;
		case 'q':
			if (tool_parse_long(optarg, 0, 2, &v)) {
				tool_usage_error(PROG, "Invalid QoS given: %s", optarg);
				return -1;
			}
			g.qos = (int)v;
			break;
		case 'r':
			g.retain = true;
			break;
		case 'M':
			if (tool_parse_long(optarg, 1, 65535, &g.max_inflight)) {
				tool_usage_error(PROG, "Invalid max inflight given: %s", optarg);
				return -1;
			}
			break;
		case OPT_REPEAT:
			if (tool_parse_long(optarg, 1, 1000000000, &g.repeat)) {
				tool_usage_error(PROG, "--repeat argument must be a positive integer.");
				return -1;
			}
			break;
		case OPT_REPEAT_DELAY:
			errno = 0;
			g.repeat_delay = strtod(optarg, &end);
			if (errno || end == optarg || *end || g.repeat_delay < 0 ||
			    g.repeat_delay > 86400) {
				tool_usage_error(PROG, "--repeat-delay argument must be 0..86400 seconds.");
				return -1;
			}
			break;
		case ':':
			tool_getopt_error(PROG, argc, argv, optopt, true);
			return -1;
		default:
			tool_getopt_error(PROG, argc, argv, optopt, false);
			return -1;
		}
	}
	if (optind < argc) {
		tool_usage_error(PROG, "Unknown option '%s'.", argv[optind]);
		return -1;
	}
	if (tool_conn_finish(&g.c))
		return -1;
	if (!g.topic)
		g.topic = g.c.url_topic;
	if (!g.topic || g.src == SRC_NONE) {
		tool_usage_error(PROG, "Both topic and message must be supplied.");
		return -1;
	}
	if (g.repeat > 1 && g.src == SRC_LINES) {
		tool_usage_error(PROG, "--repeat cannot be used with -l.");
		return -1;
	}
	return 0;
}

static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap), *nb;

	if (!buf)
		return NULL;
	while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			if (cap >= 268435455) {
				/* The MQTT remaining length cannot carry more. */
				free(buf);
				errno = EMSGSIZE;
				return NULL;
			}
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
	}
	if (ferror(f)) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* Handles events until none is pending (timeout 0) or, with block, at least one arrives. */
static int pump(struct mqttq *q, int timeout_ms)
{
	struct mqttq_event ev[64];
	int n, i;

	n = mqttq_wait(q, ev, 64, timeout_ms);
	if (n < 0) {
		if (n == -EINTR)
			return 0;
		if (!g.c.quiet)
			fprintf(stderr, "Error: %s\n", mqttq_strerror(n));
		return n;
	}
	for (i = 0; i < n; i++) {
		switch (ev[i].type) {
		case MQTTQ_EV_PUBLISHED:
			g.outstanding--;
			if (ev[i].err < 0 || ev[i].reason >= 0x80) {
				g.failed++;
				if (!g.c.quiet)
					fprintf(stderr, "Warning: Publish %llu failed: %s.\n",
						(unsigned long long)ev[i].token,
						ev[i].err < 0 ? mqttq_strerror(ev[i].err) :
						"refused by the broker");
			} else if (g.c.debug) {
				fprintf(stderr, "Client %s publish %llu complete (q%d)\n", g.c.id,
					(unsigned long long)ev[i].token, g.qos);
			}
			break;
		case MQTTQ_EV_DISCONNECTED:
			if (!ev[i].will_retry) {
				if (!g.c.quiet)
					fprintf(stderr, "Error: connection lost: %s\n",
						*mqttq_errmsg(q) ? mqttq_errmsg(q) :
						mqttq_strerror(ev[i].err));
				return ev[i].err ? ev[i].err : -ECONNRESET;
			}
			break;
		}
	}
	return 0;
}

static int publish_one(struct mqttq *q, const void *p, size_t len, uint64_t token)
{
	int r;

	/* Bound what waits in the library: the window plus a little to keep the pipe full. */
	while (!stop && g.outstanding >= (unsigned long)g.max_inflight * 2) {
		r = pump(q, 1000);
		if (r)
			return r;
	}
	if (stop)
		return -EINTR;
	r = mqttq_publish(q, g.topic, p, len, g.qos, g.retain ? MQTTQ_RETAIN : 0, NULL, token);
	if (r) {
		if (!g.c.quiet)
			fprintf(stderr, "Error: Publish returned %d: %s\n", r, mqttq_strerror(r));
		return r;
	}
	if (g.c.debug)
		fprintf(stderr, "Client %s sending PUBLISH (q%d, r%d, '%s', ... (%zu bytes))\n",
			g.c.id, g.qos, g.retain, g.topic, len);
	g.outstanding++;
	return pump(q, 0);
}

int main(int argc, char **argv)
{
	struct mqttq_opts o;
	struct mqttq *q;
	char *data = NULL, *line = NULL;
	size_t len = 0, cap = 0;
	uint64_t token = 0;
	ssize_t n;
	FILE *f;
	int r = 0;

	tool_conn_init(&g.c, PROG);
	g.max_inflight = 20;
	g.repeat = 1;
	if (parse(argc, argv))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	switch (g.src) {
	case SRC_MSG:
		data = strdup(g.msg);
		len = strlen(g.msg);
		break;
	case SRC_FILE:
		f = fopen(g.file, "rb");
		if (!f) {
			fprintf(stderr, "Error: Unable to open file \"%s\": %s.\n", g.file,
				strerror(errno));
			return 1;
		}
		data = read_all(f, &len);
		fclose(f);
		if (!data) {
			fprintf(stderr, "Error loading input file \"%s\": %s.\n", g.file,
				strerror(errno));
			return 1;
		}
		break;
	case SRC_STDIN_ALL:
		data = read_all(stdin, &len);
		if (!data) {
			fprintf(stderr, "Error loading input from stdin: %s.\n", strerror(errno));
			return 1;
		}
		break;
	case SRC_NULL:
		data = strdup("");
		break;
	default:
		break;
	}
	if (g.src != SRC_LINES && !data) {
		fprintf(stderr, "Error: Out of memory.\n");
		return 1;
	}

	mqttq_opts_init(&o);
	tool_conn_opts(&g.c, &o);
	o.window = (uint16_t)g.max_inflight;
	if (tool_connect(&g.c, &o, &q, 10000)) {
		free(data);
		return 1;
	}

	if (g.src == SRC_LINES) {
		while (!stop && !r && (n = getline(&line, &cap, stdin)) >= 0) {
			if (n > 0 && line[n - 1] == '\n')
				n--;
			r = publish_one(q, line, (size_t)n, ++token);
		}
		free(line);
	} else {
		for (long i = 0; i < g.repeat && !stop && !r; i++) {
			if (i && g.repeat_delay > 0) {
				uint64_t until = tool_now_ns() + (uint64_t)(g.repeat_delay * 1e9);

				/* Keep acknowledging while waiting for the next repeat. */
				while (!r && !stop && tool_now_ns() < until) {
					uint64_t left = (until - tool_now_ns()) / 1000000;

					r = pump(q, left > 100 ? 100 : (int)left + 1);
				}
				if (r)
					break;
			}
			r = publish_one(q, data, len, ++token);
		}
	}
	mqttq_flush(q);
	while (!r && !stop && g.outstanding)
		r = pump(q, 1000);
	if (!r)
		mqttq_disconnect(q, 0);
	mqttq_destroy(q);
	free(data);
	if (stop && !r && g.outstanding)
		r = -EINTR;
	return r || g.failed ? 1 : 0;
}
