// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Parses broker addresses: mqtt://host:port, host:port, host, [v6]:port. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int mq_parse_url(const char *s, struct mq_url *u)
{
	const char *h, *end, *colon = NULL;
	size_t hl;
	long port = 1883;

	if (!s || !*s)
		return -EINVAL;
	if (!strncmp(s, "mqtt://", 7))
		s += 7;
	else if (strstr(s, "://"))
		return -EPROTONOSUPPORT; /* mqtts://, ws:// ... are not spoken here */
	/* Server Reference may list several servers separated by spaces: take the first. */
	end = s + strcspn(s, " /");
	if (*s == '[') {
		h = s + 1;
		const char *rb = memchr(h, ']', end - h);

		if (!rb)
			return -EINVAL;
		hl = rb - h;
		if (rb + 1 < end) {
			if (rb[1] != ':')
				return -EINVAL;
			colon = rb + 1;
		}
	} else {
		h = s;
		colon = memchr(s, ':', end - s);
		hl = colon ? (size_t)(colon - s) : (size_t)(end - s);
	}
	if (colon) {
		char *e;

		port = strtol(colon + 1, &e, 10);
		if (e != end || port <= 0 || port > 65535)
			return -EINVAL;
	}
	if (hl == 0 || hl >= sizeof(u->host))
		return -EINVAL;
	memcpy(u->host, h, hl);
	u->host[hl] = 0;
	snprintf(u->port, sizeof(u->port), "%ld", port);
	return 0;
}
