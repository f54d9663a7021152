/* SPDX-License-Identifier: GPL-2.0 */
/* Internal interface between the parts of mqttq.ko: load-time defaults, global counters, ULP entry points. */
#ifndef MQTTQ_KMOD_H
#define MQTTQ_KMOD_H

#include <linux/atomic.h>
#include <linux/types.h>

/*
 * Defaults for new sessions, writable under /sys/module/mqttq/parameters/.
 * Read once at attach time so a session never sees a half-changed set.
 */
struct mqttq_defaults {
	unsigned int window;	  /* in-flight QoS 1/2 limit on 3.1.1 (v5 uses Receive Maximum) */
	unsigned int retry_ms;	  /* 3.1.1 in-session retry interval, 0 = off */
	unsigned int keepalive_s; /* 0 = use the CONNECT value */
	unsigned int linger_s;	  /* how long a dropped session's state is kept */
	unsigned int max_bytes;	  /* kernel memory a session may hold */
	unsigned int ack_policy;  /* 0 = on receipt, 1 = on delivery */
	unsigned int completion;  /* 0 = per message, 1 = coalesced */
};

void mqttq_get_defaults(struct mqttq_defaults *d);

/* Global counters shown in /sys/kernel/mqttq/. */
struct mqttq_stats {
	atomic64_t sessions;
	atomic64_t inflight;
	atomic64_t acks_in_kernel;
	atomic64_t pubrel_sent;
	atomic64_t retransmits;
	atomic64_t keepalive_timeouts;
	atomic64_t filter_drops;
	atomic64_t protocol_errors;
	atomic64_t bytes_held;
};

extern struct mqttq_stats mqttq_stats;

/* kmod/ulp.c: register/unregister the "mqttq" TCP upper-layer protocol. */
int mqttq_ulp_init(void);
void mqttq_ulp_exit(void);

#endif /* MQTTQ_KMOD_H */
