// SPDX-License-Identifier: GPL-2.0 OR MIT
/* bench-measure: runs a command and writes its CPU time, context switches and syscall count as JSON. */
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * The same wrapper around every driver, so libmqttq, libmosquitto and paho
 * are charged the same way: getrusage of the child (all its threads) and
 * a perf counter on raw_syscalls:sys_enter inherited by its threads.
 */
static int syscall_counter(pid_t pid)
{
	static const char *const ids[] = {
		"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
		"/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
	};
	struct perf_event_attr a;
	unsigned long long id;
	int fd = -1;
	FILE *f;

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]) && fd < 0; i++) {
		f = fopen(ids[i], "r");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &id) == 1) {
			memset(&a, 0, sizeof(a));
			a.size = sizeof(a);
			a.type = PERF_TYPE_TRACEPOINT;
			a.config = id;
			a.inherit = 1;
			a.disabled = 1;
			a.enable_on_exec = 1;
			fd = (int)syscall(SYS_perf_event_open, &a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
		}
		fclose(f);
	}
	return fd;
}

int main(int argc, char **argv)
{
	unsigned long long sc = 0;
	struct rusage ru;
	int go[2], status, fd;
	const char *out;
	char c = 'x';
	pid_t pid;
	FILE *f;

	if (argc < 4 || strcmp(argv[2], "--")) {
		fprintf(stderr, "usage: bench-measure OUT.json -- COMMAND [ARG]...\n");
		return 2;
	}
	out = argv[1];
	if (pipe2(go, O_CLOEXEC))
		return 2;
	pid = fork();
	if (pid < 0)
		return 2;
	if (!pid) {
		/* Wait until the counter is attached, so it sees exec onwards. */
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(127);
		execvp(argv[3], argv + 3);
		fprintf(stderr, "bench-measure: %s: %s\n", argv[3], strerror(errno));
		_exit(127);
	}
	close(go[0]);
	fd = syscall_counter(pid);
	if (write(go[1], &c, 1) != 1)
		return 2;
	close(go[1]);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	if (wait4(pid, &status, 0, &ru) < 0)
		return 2;
	if (fd >= 0 && read(fd, &sc, sizeof(sc)) != sizeof(sc))
		sc = 0;
	f = fopen(out, "w");
	if (!f)
		return 2;
	fprintf(f, "{\"utime_us\":%lld,\"stime_us\":%lld,\"nvcsw\":%ld,\"nivcsw\":%ld,"
		"\"syscalls\":%llu,\"syscalls_source\":\"%s\",\"status\":%d}\n",
		(long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
		(long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_nvcsw,
		ru.ru_nivcsw, sc, fd >= 0 ? "perf" : "none",
		WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	fclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
