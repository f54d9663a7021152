// SPDX-License-Identifier: MIT
/* mqttq-sub: subscribes through libmqttq and prints messages with mosquitto_sub's options and formats. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define PROG "mqttq-sub"
#define MAX_TOPICS 64
#define MAX_FILTERS 64
/* mosquitto_sub's exit status when -W expires (MOSQ_ERR_TIMEOUT). */
#define EXIT_TIMEOUT 27

static struct {
	struct tool_conn c;
	const char *topics[MAX_TOPICS];
	unsigned int ntopics;
	const char *filters[MAX_FILTERS];
	unsigned int nfilters;
	int qos;
	long count;
	long timeout_s;
	bool verbose;
	bool eol;
	bool no_retain;
	bool exit_after_sub;
	const char *format;
	long received;
} g;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void usage(void)
{
	printf("mqttq-sub subscribes to topics through libmqttq and prints the messages it receives.\n"
	       "mqttq-sub version %s running on libmqttq %s.\n\n"
	       "Usage: mqttq-sub {[-h host] [-p port] [-u username [-P password]] -t topic | -L URL [-t topic]}\n"
	       "                 [-c] [-k keepalive] [-q qos] [-C msg_count] [-E] [-R] [-W timeout_secs]\n"
	       "                 [-F format] [-i id] [-I id_prefix] [-d] [-N] [--quiet] [-v]\n"
	       "                 [-V mqttv311|mqttv5] [--offload auto|on|off] [--filter FILTER]...\n"
	       "                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n"
	       "       mqttq-sub --help\n\n"
	       " -c : disable clean session (persistent session; needs -i or -I).\n"
	       " -C : disconnect and exit after receiving the 'msg_count' messages.\n"
	       " -d : enable debug messages (on stderr).\n"
	       " -E : exit once all subscriptions have been acknowledged by the broker.\n"
	       " -F : output format (%%t topic, %%p payload, %%q qos, %%r retain, %%l length,\n"
	       "      %%m message id, %%x/%%X hex payload, %%j JSON, %%I %%U time, @X strftime,\n"
	       "      \\n \\t \\0 \\\\ escapes; see mqttq-sub(1)).\n"
	       " -h : mqtt host to connect to. Defaults to localhost.\n"
	       " -i : id to use for this client. Defaults to mqttq-sub_ appended with the process id.\n"
	       " -I : define the client id as id_prefix appended with the process id.\n"
	       " -k : keep alive in seconds for this client. Defaults to 60.\n"
	       " -L : specify user, password, hostname, port and topic as a URL in the form:\n"
	       "      mqtt://[username[:password]@]host[:port]/topic\n"
	       " -N : do not add an end of line character when printing the payload.\n"
	       " -p : network port to connect to. Defaults to 1883.\n"
	       " -P : provide a password.\n"
	       " -q : quality of service level to use for the subscription. Defaults to 0.\n"
	       " -R : do not print stale messages (those with retain set).\n"
	       " -t : mqtt topic to subscribe to. May be repeated multiple times.\n"
	       " -u : provide a username.\n"
	       " -v : print published messages verbosely (topic and payload).\n"
	       " -V : specify the version of the MQTT protocol to use when connecting.\n"
	       "      Can be mqttv5 (5) or mqttv311 (311). Defaults to mqttv311.\n"
	       " -W : specifies a timeout in seconds how long to process incoming MQTT messages.\n"
	       "      Exits with status 27 when it expires.\n"
	       " --filter : local interest filter (MQTT syntax), run as eBPF where available;\n"
	       "            only matching messages are printed. May be repeated.\n"
	       " --help : display this message.\n"
	       " --offload : QoS engine: auto (the kernel module when loaded), on (require it) or off.\n"
	       " --quiet : don't print error messages.\n"
	       " --will-payload : payload for the client Will.\n"
	       " --will-qos : QoS level for the client Will.\n"
	       " --will-retain : if given, make the client Will retained.\n"
	       " --will-topic : the topic on which to publish the client Will.\n\n"
	       "See mqttq-sub(1).\n",
	       MQTTQ_VERSION_STRING, mqttq_version_string());
}

static bool valid_filter(const char *f)
{
	size_t n = strlen(f);

	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (f[i] == '#' && (i != n - 1 || (i && f[i - 1] != '/')))
			return false;
		if (f[i] == '+' && ((i && f[i - 1] != '/') || (i + 1 < n && f[i + 1] != '/')))
			return false;
	}
	return true;
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
		{ "filter", required_argument, NULL, OPT_FILTER },
		{ 0 },
	};
	int opt, r;
	long v;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h:p:i:I:k:cV:u:P:L:dt:q:C:W:vNF:RE", lopts,
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
			if (!valid_filter(optarg)) {
				tool_usage_error(PROG, "Invalid subscription topic '%s', are all '+' and '#' wildcards correct?",
						 optarg);
				return -1;
			}
			if (g.ntopics == MAX_TOPICS) {
				tool_usage_error(PROG, "At most %d topics.", MAX_TOPICS);
				return -1;
			}
			g.topics[g.ntopics++] = optarg;
			break;
		case OPT_FILTER:
			if (!valid_filter(optarg)) {
				tool_usage_error(PROG, "Invalid --filter '%s', are all '+' and '#' wildcards correct?",
						 optarg);
				return -1;
			}
			if (g.nfilters == MAX_FILTERS) {
				tool_usage_error(PROG, "At most %d filters.", MAX_FILTERS);
				return -1;
			}
			g.filters[g.nfilters++] = optarg;
			break;
		case 'q':
			if (tool_parse_long(optarg, 0, 2, &v)) {
				tool_usage_error(PROG, "Invalid QoS given: %s", optarg);
				return -1;
			}
			g.qos = (int)v;
			break;
		case 'C':
			if (tool_parse_long(optarg, 1, 2147483647, &g.count)) {
				tool_usage_error(PROG, "Invalid message count \"%s\".", optarg);
				return -1;
			}
			break;
		case 'W':
			if (tool_parse_long(optarg, 1, 2147483647, &g.timeout_s)) {
				tool_usage_error(PROG, "Invalid timeout \"%s\".", optarg);
				return -1;
			}
			break;
		case 'v':
			g.verbose = true;
			break;
		case 'N':
			g.eol = false;
			break;
		case 'F':
			g.format = optarg;
			break;
		case 'R':
			g.no_retain = true;
			break;
		case 'E':
			g.exit_after_sub = true;
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
	if (g.c.url_topic && g.ntopics < MAX_TOPICS)
		g.topics[g.ntopics++] = g.c.url_topic;
	if (!g.ntopics) {
		tool_usage_error(PROG, "You must specify a topic to subscribe to.");
		return -1;
	}
	return 0;
}

/* ---- output --------------------------------------------------------- */

struct spec {
	bool left;
	char pad;
	int width;
	int prec;	/* -1: none */
};

static void put_pad(int n, char c)
{
	while (n-- > 0)
		putchar(c);
}

static void put_int(long v, const struct spec *s)
{
	if (!s->width)
		printf("%ld", v);
	else if (s->left)
		printf("%-*ld", s->width, v);
	else if (s->pad == '0')
		printf("%0*ld", s->width, v);
	else
		printf("%*ld", s->width, v);
}

/* A string of known length with width and precision, as printf's %*.*s would. */
static void put_str(const char *p, size_t len, const struct spec *s)
{
	size_t n = s->prec >= 0 && (size_t)s->prec < len ? (size_t)s->prec : len;
	int padn = s->width > (int)n ? s->width - (int)n : 0;

	if (!s->left)
		put_pad(padn, ' ');
	fwrite(p, 1, n, stdout);
	if (s->left)
		put_pad(padn, ' ');
}

/* The payload, raw or as hex; a width truncates, as mosquitto_sub does. */
static void put_payload(const unsigned char *p, size_t len, int hex, const struct spec *s)
{
	int padn;

	if (s->width > 0) {
		if (len > (size_t)s->width)
			len = (size_t)s->width;
		if (hex) {
			len /= 2;
			padn = s->width - (int)len * 2;
		} else {
			padn = s->width - (int)len;
		}
	} else {
		padn = 0;
	}
	if (!s->left)
		put_pad(padn, s->pad);
	if (!hex)
		fwrite(p, 1, len, stdout);
	else
		for (size_t i = 0; i < len; i++)
			printf(hex == 1 ? "%02x" : "%02X", p[i]);
	if (s->left)
		put_pad(padn, ' ');
}

static void put_json(const struct mqttq_message *m, const struct tm *tm, long ns)
{
	char tst[64];
	const unsigned char *p = m->payload;

	strftime(tst, sizeof(tst), "%Y-%m-%dT%H:%M:%S", tm);
	printf("{\"tst\":\"%s.%06ldZ", tst, ns / 1000);
	strftime(tst, sizeof(tst), "%z", tm);
	printf("%s\",\"topic\":\"%.*s\",\"qos\":%d,\"retain\":%d,\"payloadlen\":%zu,", tst,
	       (int)m->topic_len, m->topic, m->qos, m->retain, m->payload_len);
	fputs("\"payload\":\"", stdout);
	for (size_t i = 0; i < m->payload_len; i++) {
		if (p[i] == '"' || p[i] == '\\' || p[i] < 32)
			printf("\\u%04x", p[i]);
		else
			putchar(p[i]);
	}
	fputs("\"}", stdout);
}

static void put_user_props(const struct mqttq_message *m)
{
	const char *name, *value;
	size_t cursor = 0, nl, vl;
	bool first = true;

	while (mqttq_user_prop_next(m, &cursor, &name, &nl, &value, &vl) == 1) {
		if (!first)
			putchar(' ');
		first = false;
		printf("%.*s:%.*s", (int)nl, name, (int)vl, value);
	}
}

static void get_time(struct tm *tm, long *ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, tm);
	*ns = ts.tv_nsec;
}

static void put_percent(const struct mqttq_message *m, char c, const struct spec *s,
			struct tm *tm, long *ns, bool *have_time)
{
	const struct mqttq_msg_props *pr = &m->props;
	char buf[128];

	if ((c == 'I' || c == 'j' || c == 'U') && !*have_time) {
		get_time(tm, ns);
		*have_time = true;
	}
	switch (c) {
	case '%':
		putchar('%');
		break;
	case 'A':
		/* The library resolves topic aliases before delivery, so none is left to show. */
		put_pad(s->width, s->pad);
		break;
	case 'C':
		if (pr->content_type)
			put_str(pr->content_type, pr->content_type_len, s);
		else
			put_pad(s->width, ' ');
		break;
	case 'D':
		if (pr->correlation_data)
			fwrite(pr->correlation_data, 1, pr->correlation_len, stdout);
		break;
	case 'E':
		if (pr->has_message_expiry)
			put_int((long)pr->message_expiry, s);
		else
			put_pad(s->width, s->pad);
		break;
	case 'F':
		/* payload_format is only non-zero when the property was present. */
		if (pr->payload_format)
			put_int(pr->payload_format, s);
		else
			put_pad(s->width, s->pad);
		break;
	case 'I':
		if (strftime(buf, sizeof(buf), "%FT%T%z", tm))
			put_str(buf, strlen(buf), s);
		else
			put_pad(s->width, ' ');
		break;
	case 'j':
		put_json(m, tm, *ns);
		break;
	case 'l':
		put_int((long)m->payload_len, s);
		break;
	case 'm':
		/*
		 * libmqttq does not expose the packet identifier of a received
		 * message; QoS 0 messages have none, which mosquitto prints as 0.
		 */
		if (!m->qos)
			put_int(0, s);
		break;
	case 'P':
		put_user_props(m);
		break;
	case 'p':
		put_payload(m->payload, m->payload_len, 0, s);
		break;
	case 'q':
		putchar('0' + m->qos);
		break;
	case 'R':
		if (pr->response_topic)
			put_str(pr->response_topic, pr->response_topic_len, s);
		break;
	case 'r':
		putchar(m->retain ? '1' : '0');
		break;
	case 'S':
		if (pr->subscription_id)
			put_int((long)pr->subscription_id, s);
		else
			put_pad(s->width, s->pad);
		break;
	case 't':
		put_str(m->topic, m->topic_len, s);
		break;
	case 'U':
		if (strftime(buf, sizeof(buf), "%s", tm))
			printf("%s.%09ld", buf, *ns);
		break;
	case 'x':
		put_payload(m->payload, m->payload_len, 1, s);
		break;
	case 'X':
		put_payload(m->payload, m->payload_len, 2, s);
		break;
	}
}

static void put_formatted(const struct mqttq_message *m, const char *f)
{
	size_t len = strlen(f), i;
	struct spec s;
	struct tm tm;
	bool have_time = false;
	long ns = 0;
	char buf[128], strf[3];

	for (i = 0; i < len; i++) {
		if (f[i] == '%' && i + 1 < len) {
			s = (struct spec){ .pad = ' ', .prec = -1 };
			i++;
			if (f[i] == '-') {
				s.left = true;
				if (i + 1 < len)
					i++;
			}
			if (f[i] == '0') {
				s.pad = '0';
				if (i + 1 < len)
					i++;
			}
			while (i + 1 < len && f[i] >= '0' && f[i] <= '9' && s.width < 100000)
				s.width = s.width * 10 + (f[i++] - '0');
			if (f[i] == '.' && i + 1 < len) {
				i++;
				s.prec = 0;
				while (i + 1 < len && f[i] >= '0' && f[i] <= '9' && s.prec < 100000)
					s.prec = s.prec * 10 + (f[i++] - '0');
			}
			put_percent(m, f[i], &s, &tm, &ns, &have_time);
		} else if (f[i] == '@' && i + 1 < len) {
			i++;
			if (f[i] == '@') {
				putchar('@');
				continue;
			}
			if (!have_time) {
				get_time(&tm, &ns);
				have_time = true;
			}
			if (f[i] == 'N') {
				printf("%09ld", ns);
				continue;
			}
			strf[0] = '%';
			strf[1] = f[i];
			strf[2] = '\0';
			if (strftime(buf, sizeof(buf), strf, &tm))
				fputs(buf, stdout);
		} else if (f[i] == '\\' && i + 1 < len) {
			static const char from[] = "\\0aenrtv", to[] = "\\\0\a\033\n\r\t\v";
			const char *e = memchr(from, f[++i], sizeof(from) - 1);

			if (e)
				putchar(to[e - from]);
		} else if (f[i] != '%' && f[i] != '@' && f[i] != '\\') {
			putchar(f[i]);
		}
	}
	if (g.eol)
		putchar('\n');
}

static void print_message(const struct mqttq_message *m)
{
	if (g.format) {
		put_formatted(m, g.format);
	} else if (g.verbose) {
		if (m->payload_len) {
			printf("%.*s ", (int)m->topic_len, m->topic);
			fwrite(m->payload, 1, m->payload_len, stdout);
			if (g.eol)
				putchar('\n');
		} else if (g.eol) {
			printf("%.*s (null)\n", (int)m->topic_len, m->topic);
		}
	} else if (m->payload_len) {
		fwrite(m->payload, 1, m->payload_len, stdout);
		if (g.eol)
			putchar('\n');
	}
	fflush(stdout);
}

/* ---- main ----------------------------------------------------------- */

/* 1: done (count reached or -E), 0: keep going, <0: error. */
static int handle(struct mqttq *q, const struct mqttq_event *ev)
{
	unsigned int i, denied = 0;

	switch (ev->type) {
	case MQTTQ_EV_SUBSCRIBED:
		for (i = 0; i < ev->ncodes; i++) {
			if (ev->codes[i] >= 0x80) {
				denied++;
				if (!g.c.quiet)
					fprintf(stderr, "Warning: Subscription to '%s' denied (0x%02x).\n",
						i < g.ntopics ? g.topics[i] : "?", ev->codes[i]);
			}
		}
		if (g.c.debug)
			fprintf(stderr, "Client %s received SUBACK\n", g.c.id);
		if (ev->ncodes && denied == ev->ncodes) {
			if (!g.c.quiet)
				fprintf(stderr, "All subscription requests were denied.\n");
			return -EPERM;
		}
		return g.exit_after_sub ? 1 : 0;
	case MQTTQ_EV_MESSAGE:
		if (g.no_retain && ev->msg.retain)
			return 0;
		if (g.c.debug)
			fprintf(stderr, "Client %s received PUBLISH (d%d, q%d, r%d, '%.*s', ... (%zu bytes))\n",
				g.c.id, ev->msg.dup, ev->msg.qos, ev->msg.retain,
				(int)ev->msg.topic_len, ev->msg.topic, ev->msg.payload_len);
		print_message(&ev->msg);
		g.received++;
		return g.count && g.received >= g.count ? 1 : 0;
	case MQTTQ_EV_DISCONNECTED:
		if (ev->will_retry)
			return 0;
		if (!g.c.quiet)
			fprintf(stderr, "Error: connection lost: %s\n",
				*mqttq_errmsg(q) ? mqttq_errmsg(q) : mqttq_strerror(ev->err));
		return ev->err ? ev->err : -ECONNRESET;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct mqttq_sub subs[MAX_TOPICS];
	struct mqttq_event ev[64];
	struct mqttq_opts o;
	struct mqttq *q;
	uint64_t deadline = 0, now;
	unsigned int i;
	int r = 0, n, ms;

	tool_conn_init(&g.c, PROG);
	g.eol = true;
	if (parse(argc, argv))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	mqttq_opts_init(&o);
	tool_conn_opts(&g.c, &o);
	if (tool_connect(&g.c, &o, &q, 10000))
		return 1;
	/* As mosquitto_sub: the -W time starts once connected. */
	if (g.timeout_s)
		deadline = tool_now_ns() + (uint64_t)g.timeout_s * 1000000000u;
	for (i = 0; i < g.nfilters; i++) {
		r = mqttq_filter_add(q, g.filters[i], i + 1);
		if (r) {
			fprintf(stderr, "Error: --filter '%s': %s\n", g.filters[i],
				*mqttq_errmsg(q) ? mqttq_errmsg(q) : mqttq_strerror(r));
			goto out;
		}
	}
	for (i = 0; i < g.ntopics; i++)
		subs[i] = (struct mqttq_sub){ .filter = g.topics[i], .qos = (uint8_t)g.qos };
	r = mqttq_subscribe(q, subs, g.ntopics, 0, 1);
	if (r) {
		fprintf(stderr, "Error: subscribe: %s\n",
			*mqttq_errmsg(q) ? mqttq_errmsg(q) : mqttq_strerror(r));
		goto out;
	}
	if (g.c.debug)
		fprintf(stderr, "Client %s sending SUBSCRIBE (%u topics, q%d)\n", g.c.id, g.ntopics,
			g.qos);
	while (!stop && !r) {
		ms = 1000;
		if (deadline) {
			now = tool_now_ns();
			if (now >= deadline) {
				if (!g.c.quiet)
					fprintf(stderr, "Timed out\n");
				mqttq_disconnect(q, 0);
				mqttq_destroy(q);
				return EXIT_TIMEOUT;
			}
			if ((deadline - now) / 1000000 < 1000)
				ms = (int)((deadline - now) / 1000000) + 1;
		}
		n = mqttq_wait(q, ev, 64, ms);
		if (n < 0 && n != -EINTR) {
			r = n;
			if (!g.c.quiet)
				fprintf(stderr, "Error: %s\n", mqttq_strerror(n));
			break;
		}
		for (int k = 0; k < n && !r; k++)
			r = handle(q, &ev[k]);
	}
out:
	if (r >= 0) {
		mqttq_disconnect(q, 0);
		r = 0;
	}
	mqttq_destroy(q);
	return r ? 1 : 0;
}
