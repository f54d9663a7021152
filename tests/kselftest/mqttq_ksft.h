/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers the mqttq kselftests share: module load state, sysfs reads and writes, running modprobe. */
#ifndef MQTTQ_KSFT_H
#define MQTTQ_KSFT_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MQTTQ_PARAMS "/sys/module/mqttq/parameters/"
#define MQTTQ_STATS "/sys/kernel/mqttq/"

/* 1 if /proc/modules lists mqttq, 0 if not, -errno if it cannot be read. */
static inline int mqttq_ksft_loaded(void)
{
	char line[512];
	int found = 0;
	FILE *f;

	f = fopen("/proc/modules", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "mqttq ", 6))
			found = 1;
	fclose(f);
	return found;
}

/* Runs a shell command line; returns its exit status, or -1 if it did not exit normally. */
static inline int mqttq_ksft_sh(const char *cmd)
{
	int st = system(cmd);

	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Reads a whole small file into buf (NUL-terminated, trailing newline kept); bytes or -errno. */
static inline int mqttq_ksft_read(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	buf[n] = '\0';
	return n;
}

/* Reads a decimal value from sysfs; 0 or -errno (-EINVAL when it is not one number and a newline). */
static inline int mqttq_ksft_read_ll(const char *path, long long *v)
{
	char buf[64], *end;
	int n;

	n = mqttq_ksft_read(path, buf, sizeof(buf));
	if (n < 0)
		return n;
	errno = 0;
	*v = strtoll(buf, &end, 10);
	if (errno || end == buf || strcmp(end, "\n"))
		return -EINVAL;
	return 0;
}

/* One write(2) of exactly len bytes through a fresh open; 0 or -errno of the failing call. */
static inline int mqttq_ksft_write(const char *path, const char *s, size_t len)
{
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, s, len);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
	if (close(fd) && !ret)
		ret = -errno;
	return ret;
}

static inline int mqttq_ksft_write_str(const char *path, const char *s)
{
	return mqttq_ksft_write(path, s, strlen(s));
}

#endif /* MQTTQ_KSFT_H */
