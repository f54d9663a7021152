/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Incremental MQTT framing parser: packet boundaries in a stream cut at any point. */
#ifndef MQTT_FRAME_H
#define MQTT_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum mqf_kind {
	MQF_NONE,	/* input exhausted without a boundary */
	MQF_START,	/* first byte of a packet consumed */
	MQF_END,	/* last byte of a packet consumed */
	MQF_ERROR,	/* remaining length longer than 4 bytes: framing lost for good */
};

enum mqf_state {
	MQF_S_HDR,
	MQF_S_LEN,
	MQF_S_BODY,
	MQF_S_BROKEN,
};

struct mqf {
	enum mqf_state state;
	uint8_t hdr;		/* first byte of the current packet */
	uint8_t len_bytes;	/* varint bytes seen so far */
	uint32_t rlen;		/* remaining length being decoded / decoded */
	uint32_t left;		/* body bytes still to come */
	uint64_t off;		/* stream offset of the next byte to consume */
	uint64_t start;		/* stream offset of the current packet's first byte */
};

struct mqf_ev {
	enum mqf_kind kind;
	uint8_t type;		/* packet type, 1..15 */
	uint8_t hdr;		/* whole first byte (flags included) */
	uint64_t start;		/* offset of the packet's first byte */
	uint64_t end;		/* MQF_END: offset one past its last byte */
	uint32_t rlen;		/* MQF_END: remaining length */
};

void mqf_init(struct mqf *f);
/* Consumes bytes up to and including the next event; returns how many it consumed. */
size_t mqf_next(struct mqf *f, const uint8_t *p, size_t n, struct mqf_ev *ev);
const char *mqf_type_name(unsigned int type);
/* Returns the packet type for a name like "PUBREC" (case-insensitive), or -EINVAL. */
int mqf_type_parse(const char *name);

#endif
