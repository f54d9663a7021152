// SPDX-License-Identifier: GPL-2.0
/* Entry point of mqttq.ko: session defaults as module parameters, global counters in sysfs, ULP setup. */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/kobject.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/sysfs.h>

#include "mqttq_kmod.h"

struct mqttq_stats mqttq_stats;

static unsigned int mqttq_window = 64;
static unsigned int mqttq_retry_ms;
static unsigned int mqttq_keepalive_s;
static unsigned int mqttq_linger_s = 30;
static unsigned int mqttq_max_bytes = 4U << 20;
static unsigned int mqttq_ack_policy;
static unsigned int mqttq_completion;

/*
 * Writers are serialised by the module-parameter lock; readers (session attach, possibly
 * in softirq) take no lock, so every value is a single word written with WRITE_ONCE.
 */
struct mqttq_range {
	unsigned int *val;
	unsigned int min;
	unsigned int max;
};

static int mqttq_range_set(const char *buf, const struct kernel_param *kp)
{
	const struct mqttq_range *r = kp->arg;
	unsigned int v;
	int ret;

	ret = kstrtouint(buf, 0, &v);
	if (ret)
		return -EINVAL;
	if (v < r->min || v > r->max)
		return -EINVAL;
	WRITE_ONCE(*r->val, v);
	return 0;
}

static int mqttq_range_get(char *buf, const struct kernel_param *kp)
{
	const struct mqttq_range *r = kp->arg;

	return sysfs_emit(buf, "%u\n", READ_ONCE(*r->val));
}

static const struct kernel_param_ops mqttq_range_ops = {
	.set = mqttq_range_set,
	.get = mqttq_range_get,
};

#define MQTTQ_RANGE_PARAM(name, lo, hi, desc)                                          \
	static struct mqttq_range mqttq_range_##name = {                        \
		.val = &mqttq_##name, .min = (lo), .max = (hi),                         \
	};                                                                              \
	module_param_cb(name, &mqttq_range_ops, &mqttq_range_##name, 0644);           \
	MODULE_PARM_DESC(name, desc)

MQTTQ_RANGE_PARAM(window, 1, 65535,
		  "In-flight QoS 1/2 messages per MQTT 3.1.1 session [1..65535]");
MQTTQ_RANGE_PARAM(retry_ms, 0, 600000,
		  "MQTT 3.1.1 in-session retry interval in ms, 0 = off [0..600000]");
MQTTQ_RANGE_PARAM(keepalive_s, 0, 65535,
		  "Keep-alive override in s, 0 = the CONNECT value [0..65535]");
MQTTQ_RANGE_PARAM(linger_s, 0, 3600,
		  "How long a dropped session's state is kept, in s [0..3600]");
MQTTQ_RANGE_PARAM(max_bytes, 4096, 1U << 30,
		  "Kernel memory one session may hold, in bytes [4096..1073741824]");

/* A choice parameter takes a name or its index; reading it back gives the name. */
struct mqttq_choice {
	unsigned int *val;
	const char *const *names;
	unsigned int n;
};

static int mqttq_choice_set(const char *buf, const struct kernel_param *kp)
{
	const struct mqttq_choice *c = kp->arg;
	unsigned int v;
	int i;

	i = __sysfs_match_string(c->names, c->n, buf);
	if (i >= 0)
		v = i;
	else if (kstrtouint(buf, 0, &v) || v >= c->n)
		return -EINVAL;
	WRITE_ONCE(*c->val, v);
	return 0;
}

static int mqttq_choice_get(char *buf, const struct kernel_param *kp)
{
	const struct mqttq_choice *c = kp->arg;
	unsigned int v = READ_ONCE(*c->val);

	return sysfs_emit(buf, "%s\n", v < c->n ? c->names[v] : "?");
}

static const struct kernel_param_ops mqttq_choice_ops = {
	.set = mqttq_choice_set,
	.get = mqttq_choice_get,
};

static const char *const mqttq_ack_policy_names[] = { "receipt", "delivery" };
static const char *const mqttq_completion_names[] = { "per-message", "coalesced" };

#define MQTTQ_CHOICE_PARAM(name, desc)                                                 \
	static struct mqttq_choice mqttq_choice_##name = {                      \
		.val = &mqttq_##name,                                                   \
		.names = mqttq_##name##_names,                                          \
		.n = ARRAY_SIZE(mqttq_##name##_names),                                  \
	};                                                                              \
	module_param_cb(name, &mqttq_choice_ops, &mqttq_choice_##name, 0644);         \
	MODULE_PARM_DESC(name, desc)

MQTTQ_CHOICE_PARAM(ack_policy,
		   "Acknowledge a received QoS 1/2 PUBLISH on receipt (0) or on delivery (1)");
MQTTQ_CHOICE_PARAM(completion, "Send completions: per-message (0) or coalesced (1)");

void mqttq_get_defaults(struct mqttq_defaults *d)
{
	d->window = READ_ONCE(mqttq_window);
	d->retry_ms = READ_ONCE(mqttq_retry_ms);
	d->keepalive_s = READ_ONCE(mqttq_keepalive_s);
	d->linger_s = READ_ONCE(mqttq_linger_s);
	d->max_bytes = READ_ONCE(mqttq_max_bytes);
	d->ack_policy = READ_ONCE(mqttq_ack_policy);
	d->completion = READ_ONCE(mqttq_completion);
}

/* /sys/kernel/mqttq/<counter>: one read-only file per field of struct mqttq_stats. */
struct mqttq_stat_attr {
	struct kobj_attribute attr;
	atomic64_t *counter;
};

static ssize_t mqttq_stat_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	const struct mqttq_stat_attr *a = container_of(attr, struct mqttq_stat_attr, attr);

	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(a->counter));
}

#define MQTTQ_STAT(name)                                                               \
	static struct mqttq_stat_attr mqttq_stat_##name = {                           \
		.attr = __ATTR(name, 0444, mqttq_stat_show, NULL),                      \
		.counter = &mqttq_stats.name,                                           \
	}

MQTTQ_STAT(sessions);
MQTTQ_STAT(inflight);
MQTTQ_STAT(acks_in_kernel);
MQTTQ_STAT(pubrel_sent);
MQTTQ_STAT(retransmits);
MQTTQ_STAT(keepalive_timeouts);
MQTTQ_STAT(filter_drops);
MQTTQ_STAT(protocol_errors);
MQTTQ_STAT(bytes_held);

static struct attribute *mqttq_stat_attrs[] = {
	&mqttq_stat_sessions.attr.attr,
	&mqttq_stat_inflight.attr.attr,
	&mqttq_stat_acks_in_kernel.attr.attr,
	&mqttq_stat_pubrel_sent.attr.attr,
	&mqttq_stat_retransmits.attr.attr,
	&mqttq_stat_keepalive_timeouts.attr.attr,
	&mqttq_stat_filter_drops.attr.attr,
	&mqttq_stat_protocol_errors.attr.attr,
	&mqttq_stat_bytes_held.attr.attr,
	NULL,
};

static const struct attribute_group mqttq_stat_group = {
	.attrs = mqttq_stat_attrs,
};

static struct kobject *mqttq_kobj;

static int __init mqttq_init(void)
{
	int ret;

	mqttq_kobj = kobject_create_and_add("mqttq", kernel_kobj);
	if (!mqttq_kobj)
		return -ENOMEM;
	ret = sysfs_create_group(mqttq_kobj, &mqttq_stat_group);
	if (ret)
		goto err_put_kobj;
#ifndef MQTTQ_NO_ULP
	ret = mqttq_ulp_init();
	if (ret)
		goto err_remove_group;
#endif
	pr_info("loaded\n");
	return 0;

#ifndef MQTTQ_NO_ULP
err_remove_group:
	sysfs_remove_group(mqttq_kobj, &mqttq_stat_group);
#endif
err_put_kobj:
	kobject_put(mqttq_kobj);
	return ret;
}

static void __exit mqttq_exit(void)
{
#ifndef MQTTQ_NO_ULP
	mqttq_ulp_exit();
#endif
	sysfs_remove_group(mqttq_kobj, &mqttq_stat_group);
	kobject_put(mqttq_kobj);
	pr_info("unloaded\n");
}

module_init(mqttq_init);
module_exit(mqttq_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("MQTT QoS 1/2 offload as a TCP upper-layer protocol");
MODULE_AUTHOR("mqttq authors");
MODULE_VERSION("0.1");
