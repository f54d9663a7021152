// SPDX-License-Identifier: GPL-2.0
/* Benchmark: userspace cost of unwanted QoS 0 messages with the module's eBPF topic filter vs. matching in userspace. */

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "ulp_util.h"
#include "mqf.h"

#define MSG_TOPIC "noise/sensor/42/raw" /* matches none of the app's filters */
#define END_TOPIC "plant/a/temp"	/* matches filter 1: tells the app the stream is over */
#define CHUNK 65536

struct cpu_ticks {
	unsigned long long busy, softirq, all;
};

/* System-wide CPU time from /proc/stat, in USER_HZ ticks. */
static int read_ticks(struct cpu_ticks *t)
{
	unsigned long long v[10] = { 0 };
	FILE *f = fopen("/proc/stat", "re");
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n != 8)
		return -EIO;
	t->softirq = v[6];
	t->all = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
	t->busy = t->all - v[3] - v[4];
	return 0;
}

static size_t put_publish(uint8_t *b, const char *topic, const char *payload)
{
	size_t tl = strlen(topic), pl = strlen(payload), n = 0;

	b[n++] = 0x30;
	b[n++] = (uint8_t)(2 + tl + pl); /* both short: one length byte */
	b[n++] = 0;
	b[n++] = (uint8_t)tl;
	memcpy(b + n, topic, tl);
	n += tl;
	memcpy(b + n, payload, pl);
	return n + pl;
}

/* The scripted broker: @n unwanted QoS 0 PUBLISHes in 64 KiB writes, the end marker, then waits for EOF. */
static int broker(int fd, long n)
{
	static uint8_t buf[CHUNK + 64];
	size_t len = 0;
	uint8_t c;
	long i;

	for (i = 0; i < n; i++) {
		len += put_publish(buf + len, MSG_TOPIC, "21.5");
		if (len >= CHUNK) {
			if (ulp_send(fd, buf, len))
				return 1;
			len = 0;
		}
	}
	len += put_publish(buf + len, END_TOPIC, "end");
	if (ulp_send(fd, buf, len))
		return 1;
	/* bounded: the app closes as soon as it sees the marker */
	ulp_poll(fd, POLLIN, 600000);
	return recv(fd, &c, 1, 0) < 0;
}

static double tv_s(const struct timeval *tv)
{
	return tv->tv_sec + tv->tv_usec / 1e6;
}

struct result {
	long wakeups, recvs, recs;
	double user, sys, wall, brk_sys;
	struct cpu_ticks d;
};

/* One run: @use_filter hands the program to the module, else the app matches each record with @set. */
static int run(struct mqf_mgr *m, struct mqf_set *set, int use_filter, long n, struct result *res)
{
	static uint8_t rec[4096];
	const struct mqttq_rec *r = (const struct mqttq_rec *)rec;
	struct rusage ru0, ru1, rb;
	struct cpu_ticks t0, t1;
	struct epoll_event ev = { .events = EPOLLIN };
	struct mqttq_session s;
	long long w0;
	int cli = -1, brk = -1, ep, fd, done = 0, err, status = 0;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	err = ulp_pair(&cli, &brk);
	if (err)
		return err;
	if (ulp_attach(cli)) {
		fprintf(stderr, "TCP_ULP mqttq: %s (module loaded?)\n", strerror(errno));
		return -errno;
	}
	ulp_sess_init(&s, MQTTQ_V311);
	s.recv_max = 64;
	if (ulp_session(cli, &s))
		return -errno;
	fd = mqf_prog_fd(m);
	if (use_filter && setsockopt(cli, SOL_MQTTQ, MQTTQ_FILTER_FD, &fd, sizeof(fd)))
		return -errno;
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = cli;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, cli, &ev))
		return -errno;
	read_ticks(&t0);
	getrusage(RUSAGE_SELF, &ru0);
	w0 = ulp_ms();
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		close(cli);
		_exit(broker(brk, n));
	}
	close(brk);
	while (!done) {
		struct epoll_event out;
		int k = epoll_wait(ep, &out, 1, 60000);

		if (k <= 0) {
			fprintf(stderr, "no record for 60 s (got %ld)\n", res->recs);
			err = -ETIMEDOUT;
			break;
		}
		res->wakeups++;
		for (;;) {
			ssize_t len = recv(cli, rec, sizeof(rec), MSG_DONTWAIT);
			uint32_t id;

			if (len < 0)
				break;
			res->recvs++;
			if ((size_t)len < sizeof(*r) || r->type != MQTTQ_REC_MESSAGE)
				continue;
			res->recs++;
			id = r->filter_id;
			if (!use_filter || id == MQTTQ_FILTER_UNDECIDED)
				id = mqf_set_match(set, (const char *)(r + 1), r->topic_len);
			if (id == 1) {
				done = 1;
				break;
			}
		}
	}
	res->wall = (ulp_ms() - w0) / 1e3;
	getrusage(RUSAGE_SELF, &ru1);
	read_ticks(&t1);
	close(cli);
	close(ep);
	if (wait4(pid, &status, 0, &rb) == pid)
		res->brk_sys = tv_s(&rb.ru_stime) + tv_s(&rb.ru_utime);
	res->user = tv_s(&ru1.ru_utime) - tv_s(&ru0.ru_utime);
	res->sys = tv_s(&ru1.ru_stime) - tv_s(&ru0.ru_stime);
	res->d.busy = t1.busy - t0.busy;
	res->d.softirq = t1.softirq - t0.softirq;
	res->d.all = t1.all - t0.all;
	if (!err && (!WIFEXITED(status) || WEXITSTATUS(status)))
		err = -EIO;
	return err;
}

static void print(const char *name, const struct result *r, long n, long hz)
{
	double per = 1e5 / n;

	printf("%-26s %9.0f %9.0f %9.0f %9.1f %12.0f %12.0f %7.2f\n", name,
	       r->wakeups * per, r->recvs * per, r->recs * per,
	       (r->user + r->sys) * 1e3 * per,
	       r->d.softirq * 1e9 / hz / n, r->d.busy * 1e9 / hz / n, r->wall);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000, hz = sysconf(_SC_CLK_TCK);
	static const char *filters[] = { "plant/+/temp", "plant/#", "$SYS/#" };
	struct result with, without;
	struct utsname u;
	struct mqf_mgr *m;
	struct mqf_set *set;
	unsigned int i;
	int err;

	if (n < 1 || n > 100000000) {
		fprintf(stderr, "usage: %s [MESSAGES]\n", argv[0]);
		return 2;
	}
	err = mqf_open(&m, 0);
	if (err) {
		fprintf(stderr, "mqf_open: %s\n", strerror(-err));
		return 1;
	}
	set = mqf_set_new();
	if (!set)
		return 1;
	for (i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		if (mqf_add(m, filters[i], strlen(filters[i]), i + 1) ||
		    mqf_set_add(set, filters[i], strlen(filters[i]), i + 1))
			return 1;
	}
	if (mqf_commit(m))
		return 1;
	err = run(m, set, 1, n, &with);
	if (!err)
		err = run(m, set, 0, n, &without);
	if (err) {
		fprintf(stderr, "run: %s\n", strerror(-err));
		return 1;
	}
	printf("# %ld unwanted QoS 0 PUBLISHes (+1 wanted end marker), kernel %s; per 1e5 unwanted:\n",
	       n, uname(&u) ? "?" : u.release);
	printf("%-26s %9s %9s %9s %9s %12s %12s %7s\n", "mode", "wakeups", "recvs", "records",
	       "app_ms", "softirq_ns", "busy_ns", "wall_s");
	print("kmod+bpf filter", &with, n, hz);
	print("userspace match (mqf_set)", &without, n, hz);
	printf("# app_ms: app user+sys CPU; softirq_ns/busy_ns: whole-VM /proc/stat delta per message\n"
	       "# (busy = all but idle/iowait, includes the broker's sends; TCG-emulated CPU)\n"
	       "# app user/sys s: filter %.3f/%.3f, userspace %.3f/%.3f; broker cpu s: %.3f, %.3f\n",
	       with.user, with.sys, without.user, without.sys, with.brk_sys, without.brk_sys);
	mqf_set_free(set);
	mqf_close(m);
	return 0;
}
