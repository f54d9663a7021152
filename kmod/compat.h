/* SPDX-License-Identifier: GPL-2.0 */
/* The one place where mqttq.ko hides differences between its kernels (6.1, 6.12). */
#ifndef MQTTQ_COMPAT_H
#define MQTTQ_COMPAT_H

#include <linux/version.h>
#include <linux/timer.h>
#include <net/sock.h>

/*
 * 6.5 removed ->sendpage from struct proto and struct proto_ops
 * (splice goes through sendmsg with MSG_SPLICE_PAGES). Before that,
 * sendfile()/splice() into the socket would bypass our sendmsg and write
 * raw bytes into the MQTT stream, so the copied ops must refuse them.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
#define MQTTQ_HAVE_SENDPAGE 1
static inline void mqttq_compat_no_sendpage(struct proto *prot, struct proto_ops *ops)
{
	prot->sendpage = NULL; /* inet_sendpage falls back to sock_no_sendpage -> sendmsg */
	ops->sendpage = sock_no_sendpage;
	ops->sendpage_locked = NULL;
}
#else
static inline void mqttq_compat_no_sendpage(struct proto *prot, struct proto_ops *ops)
{
}
#endif

/* timer_delete_sync() appeared in 6.2; del_timer_sync() still exists in 6.12. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 2, 0)
#define mqttq_timer_delete_sync(t) del_timer_sync(t)
#define mqttq_timer_delete(t) del_timer(t)
#else
#define mqttq_timer_delete_sync(t) timer_delete_sync(t)
#define mqttq_timer_delete(t) timer_delete(t)
#endif

/* from_timer() was renamed timer_container_of() in 6.16; both kernels here have from_timer(). */
#ifndef timer_container_of
#define timer_container_of(var, t, field) from_timer(var, t, field)
#endif

#endif /* MQTTQ_COMPAT_H */
