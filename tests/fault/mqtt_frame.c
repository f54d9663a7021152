// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Incremental MQTT framing parser shared by the fault proxy and its unit test. */
#include "mqtt_frame.h"

#include <errno.h>
#include <strings.h>

static const char *const type_names[16] = {
	"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT",
	"AUTH",
};

void mqf_init(struct mqf *f)
{
	f->state = MQF_S_HDR;
	f->hdr = 0;
	f->len_bytes = 0;
	f->rlen = 0;
	f->left = 0;
	f->off = 0;
	f->start = 0;
}

static void end_event(struct mqf *f, struct mqf_ev *ev)
{
	ev->kind = MQF_END;
	ev->hdr = f->hdr;
	ev->type = f->hdr >> 4;
	ev->start = f->start;
	ev->end = f->off;
	ev->rlen = f->rlen;
	f->state = MQF_S_HDR;
}

size_t mqf_next(struct mqf *f, const uint8_t *p, size_t n, struct mqf_ev *ev)
{
	size_t i = 0;

	ev->kind = MQF_NONE;
	while (i < n) {
		switch (f->state) {
		case MQF_S_HDR:
			f->hdr = p[i++];
			f->start = f->off++;
			f->len_bytes = 0;
			f->rlen = 0;
			f->state = MQF_S_LEN;
			ev->kind = MQF_START;
			ev->hdr = f->hdr;
			ev->type = f->hdr >> 4;
			ev->start = f->start;
			ev->end = 0;
			ev->rlen = 0;
			return i;
		case MQF_S_LEN: {
			uint8_t b = p[i++];

			f->off++;
			f->rlen |= (uint32_t)(b & 0x7f) << (7 * f->len_bytes);
			f->len_bytes++;
			if (b & 0x80) {
				if (f->len_bytes == 4) {
					f->state = MQF_S_BROKEN;
					ev->kind = MQF_ERROR;
					ev->start = f->start;
					ev->end = f->off;
					ev->type = f->hdr >> 4;
					ev->hdr = f->hdr;
					return i;
				}
				break;
			}
			f->left = f->rlen;
			if (!f->left) {
				end_event(f, ev);
				return i;
			}
			f->state = MQF_S_BODY;
			break;
		}
		case MQF_S_BODY: {
			size_t take = n - i;

			if (take > f->left)
				take = f->left;
			i += take;
			f->off += take;
			f->left -= take;
			if (!f->left) {
				end_event(f, ev);
				return i;
			}
			break;
		}
		case MQF_S_BROKEN:
			f->off += n - i;
			return n;
		}
	}
	return i;
}

const char *mqf_type_name(unsigned int type)
{
	return type < 16 ? type_names[type] : "?";
}

int mqf_type_parse(const char *name)
{
	for (int t = 1; t < 16; t++)
		if (!strcasecmp(name, type_names[t]))
			return t;
	return -EINVAL;
}
