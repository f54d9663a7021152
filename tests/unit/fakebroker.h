/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* A scripted MQTT broker on a loopback socket, in a thread, for the libmqttq API tests. */
#ifndef FAKEBROKER_H
#define FAKEBROKER_H

#include <stdint.h>

#include "../../libmqttq/core/mqc.h"

#define FB_MAX_REC 8192

/* One packet the broker received, decoded. */
struct fb_rec {
	int conn;		/* 1 for the first connection, 2 for the next ... */
	u8 type, flags, qos, dup, retain, reason;
	u16 pid, alias;
	char topic[256];	/* PUBLISH (alias resolved) / first filter / will topic */
	u8 payload[512];
	u32 payload_len;
	u64 props_present;
	u32 message_expiry;
	char content_type[64];
	char user_name[32], user_value[32];
	/* CONNECT */
	u8 clean, will_qos, will_retain;
	u16 keepalive;
	char client_id[64];
	char username[64];
	u32 will_delay;
	/* SUBSCRIBE */
	u32 nfilters;
	u8 options[8];
	u32 sub_id;
};

struct fb_cfg {
	u8 connack_reason;		/* 0 accept */
	int session_present;		/* -1: present when clean == 0 and the id was seen */
	struct mqc_props connack_props;	/* v5 CONNACK properties */
	int no_ack;			/* don't answer PUBLISH/PUBREL */
	int no_pubcomp;			/* answer PUBLISH, but not PUBREL */
	int garbage_after;		/* on connection 1: after this many PUBLISHes send junk */
	int close_after;		/* on connection 1: after this many PUBLISHes close */
	u8 suback_code;			/* 0xff: grant what was asked */
	const char *disconnect_ref;	/* on connection 1, v5: DISCONNECT 0x9c with this reference */
};

struct fb;

/* Starts listening on 127.0.0.1 on a free port; cfg may be NULL (defaults). */
struct fb *fb_start(const struct fb_cfg *cfg);
void fb_stop(struct fb *fb);
uint16_t fb_port(struct fb *fb);
void fb_set_cfg(struct fb *fb, const struct fb_cfg *cfg);
void fb_cfg_default(struct fb_cfg *cfg);

/* Copies up to max records from index from; returns how many records exist in total. */
int fb_records(struct fb *fb, int from, struct fb_rec *out, int max);
/* Number of received packets of type (0 = any) so far. */
int fb_count(struct fb *fb, int type);
int fb_conns(struct fb *fb);
/* Sends raw bytes to the current client; -1 when none. */
int fb_inject(struct fb *fb, const void *buf, int len);
/* Sends an encoded PUBLISH (v5 props optional) to the current client. */
int fb_publish(struct fb *fb, const char *topic, const char *payload, int qos,
	       const struct mqc_props *props, const struct mqc_user_prop *up, int nup);
/* Acknowledges every PUBLISH received so far and not acked (for no_ack tests). */
int fb_ack_all(struct fb *fb);
/* Drops the current connection (TCP close). */
void fb_drop(struct fb *fb);

#endif
