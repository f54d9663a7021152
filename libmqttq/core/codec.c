// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The core's codec: framing, strict decoding and encoding of every MQTT 3.1.1 and 5.0 packet. */
#include "mqc_int.h"

#define MQC_RL_MAX 268435455u	/* largest Remaining Length a 4-byte varint holds */
#define MQC_BIT(t) (1u << (t))

/* ---- strings ---------------------------------------------------------- */

int mqc_utf8_check(const u8 *s, u32 len)
{
	u32 i = 0;

	while (i < len) {
		u32 cp, n, k;
		u8 c = s[i];

		if (c < 0x80) {
			if (!c)
				return -MQC_E_UTF8_NUL;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			/* stray continuation, 0xc0/0xc1 (always overlong), 0xf5.. (> U+10FFFF) */
			return -MQC_E_UTF8;
		}
		if (len - i - 1 < n)
			return -MQC_E_UTF8;
		for (k = 1; k <= n; k++) {
			u8 d = s[i + k];

			if ((d & 0xc0) != 0x80)
				return -MQC_E_UTF8;
			cp = (cp << 6) | (d & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return -MQC_E_UTF8;
		if (cp >= 0xd800 && cp <= 0xdfff)
			return -MQC_E_UTF8_SURROGATE;
		i += n + 1;
	}
	return 0;
}

int mqc_topic_check(const u8 *s, u32 len, bool alias)
{
	u32 i, j;

	if (!len)
		return alias ? 0 : -MQC_E_TOPIC_EMPTY;
	/* one pass over the plain-ASCII prefix, which is usually all of it */
	for (i = 0; i < len; i++) {
		u8 c = s[i];

		if (c == '+' || c == '#')
			return -MQC_E_TOPIC_WILD;
		if (!c || c >= 0x80)
			break;
	}
	if (i == len)
		return 0;
	for (j = i; j < len; j++)
		if (s[j] == '+' || s[j] == '#')
			return -MQC_E_TOPIC_WILD;
	return mqc_utf8_check(s + i, len - i);
}

int mqc_filter_check(const u8 *s, u32 len)
{
	u32 i;

	if (!len)
		return -MQC_E_TOPIC_EMPTY;
	for (i = 0; i < len; i++) {
		bool lvl_start = i == 0 || s[i - 1] == '/';

		/* MQTT-4.7.1-1/-2: '#' alone and last, '+' alone in its level */
		if (s[i] == '#' && (!lvl_start || i != len - 1))
			return -MQC_E_TOPIC_WILD;
		if (s[i] == '+' && (!lvl_start || (i != len - 1 && s[i + 1] != '/')))
			return -MQC_E_TOPIC_WILD;
	}
	return mqc_utf8_check(s, len);
}

/* ---- variable byte integers and framing -------------------------------- */

int mqc_varint_get(const u8 *p, u32 len, u32 *val)
{
	u32 v = 0;
	u32 i;

	for (i = 0; i < 4; i++) {
		if (i >= len)
			return -MQC_E_SHORT;
		v |= (u32)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*val = v;
			return (int)i + 1;
		}
	}
	return -MQC_E_VARINT;
}

u32 mqc_varint_put(u8 *p, u32 v)
{
	u32 n = 0;

	do {
		u8 b = v & 0x7f;

		v >>= 7;
		if (v)
			b |= 0x80;
		if (p)
			p[n] = b;
		n++;
	} while (v && n < 4);
	return n;
}

static u32 varint_size(u32 v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

int mqc_frame_len(const u8 *buf, u32 len, u32 max)
{
	u32 rl, total;
	int n;

	if (len < 2)
		return 0;
	n = mqc_varint_get(buf + 1, len - 1, &rl);
	if (n == -MQC_E_SHORT)
		return 0;
	if (n < 0)
		return n;
	total = 1 + (u32)n + rl;
	if (max && total > max)
		return -MQC_E_TOO_BIG;
	return (int)total;
}

/* ---- reading ------------------------------------------------------------ */

struct rd {
	const u8 *p;
	u32 len, pos;
};

static u32 rd_left(const struct rd *r)
{
	return r->len - r->pos;
}

static int rd_u8(struct rd *r, u8 *v)
{
	if (rd_left(r) < 1)
		return -MQC_E_SHORT;
	*v = r->p[r->pos++];
	return 0;
}

static int rd_u16(struct rd *r, u16 *v)
{
	if (rd_left(r) < 2)
		return -MQC_E_SHORT;
	*v = (u16)(r->p[r->pos] << 8 | r->p[r->pos + 1]);
	r->pos += 2;
	return 0;
}

static int rd_u32(struct rd *r, u32 *v)
{
	if (rd_left(r) < 4)
		return -MQC_E_SHORT;
	*v = (u32)r->p[r->pos] << 24 | (u32)r->p[r->pos + 1] << 16 |
	     (u32)r->p[r->pos + 2] << 8 | r->p[r->pos + 3];
	r->pos += 4;
	return 0;
}

static int rd_varint(struct rd *r, u32 *v)
{
	int n = mqc_varint_get(r->p + r->pos, rd_left(r), v);

	if (n < 0)
		return n;
	r->pos += (u32)n;
	return 0;
}

/* Binary data: 2-byte length then bytes. */
static int rd_bin(struct rd *r, struct mqc_str *s)
{
	u16 n;
	int err = rd_u16(r, &n);

	if (err)
		return err;
	if (rd_left(r) < n)
		return -MQC_E_SHORT;
	s->p = r->p + r->pos;
	s->len = n;
	r->pos += n;
	return 0;
}

static int rd_utf8(struct rd *r, struct mqc_str *s)
{
	int err = rd_bin(r, s);

	return err ? err : mqc_utf8_check(s->p, s->len);
}

/* ---- properties ------------------------------------------------------- */

enum { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VARINT, PT_UTF8, PT_BIN, PT_PAIR };

#define W_ACKS (MQC_BIT(MQC_PUBACK) | MQC_BIT(MQC_PUBREC) | MQC_BIT(MQC_PUBREL) | MQC_BIT(MQC_PUBCOMP))
#define W_ALL (MQC_BIT(MQC_CONNECT) | MQC_BIT(MQC_CONNACK) | MQC_BIT(MQC_PUBLISH) | MQC_BIT(MQC_W_WILL) | \
	       W_ACKS | MQC_BIT(MQC_SUBSCRIBE) | MQC_BIT(MQC_SUBACK) | MQC_BIT(MQC_UNSUBSCRIBE) |   \
	       MQC_BIT(MQC_UNSUBACK) | MQC_BIT(MQC_DISCONNECT) | MQC_BIT(MQC_AUTH))
#define W_PUBWILL (MQC_BIT(MQC_PUBLISH) | MQC_BIT(MQC_W_WILL))

struct pdesc {
	u8 type;
	u8 bool01;	/* value must be 0 or 1 */
	u16 where;	/* MQC_BIT(packet type), MQC_BIT(MQC_W_WILL) for will properties */
	u16 off;	/* the field in struct mqc_props (none for user properties) */
};

#define F(field) __builtin_offsetof(struct mqc_props, field)

static const struct pdesc ptab[0x2b] = {
	[MQC_P_PAYLOAD_FORMAT] = { PT_BYTE, 1, W_PUBWILL, F(payload_format) },
	[MQC_P_MESSAGE_EXPIRY] = { PT_U32, 0, W_PUBWILL, F(message_expiry) },
	[MQC_P_CONTENT_TYPE] = { PT_UTF8, 0, W_PUBWILL, F(content_type) },
	[MQC_P_RESPONSE_TOPIC] = { PT_UTF8, 0, W_PUBWILL, F(response_topic) },
	[MQC_P_CORRELATION_DATA] = { PT_BIN, 0, W_PUBWILL, F(correlation_data) },
	[MQC_P_SUBSCRIPTION_ID] = { PT_VARINT, 0, MQC_BIT(MQC_PUBLISH) | MQC_BIT(MQC_SUBSCRIBE),
				  F(subscription_id) },
	[MQC_P_SESSION_EXPIRY] = { PT_U32, 0,
				   MQC_BIT(MQC_CONNECT) | MQC_BIT(MQC_CONNACK) | MQC_BIT(MQC_DISCONNECT),
				  F(session_expiry) },
	[MQC_P_ASSIGNED_CLIENT_ID] = { PT_UTF8, 0, MQC_BIT(MQC_CONNACK), F(assigned_client_id) },
	[MQC_P_SERVER_KEEPALIVE] = { PT_U16, 0, MQC_BIT(MQC_CONNACK), F(server_keepalive) },
	[MQC_P_AUTH_METHOD] = { PT_UTF8, 0, MQC_BIT(MQC_CONNECT) | MQC_BIT(MQC_CONNACK) | MQC_BIT(MQC_AUTH),
				  F(auth_method) },
	[MQC_P_AUTH_DATA] = { PT_BIN, 0, MQC_BIT(MQC_CONNECT) | MQC_BIT(MQC_CONNACK) | MQC_BIT(MQC_AUTH),
				  F(auth_data) },
	[MQC_P_REQUEST_PROBLEM_INFO] = { PT_BYTE, 1, MQC_BIT(MQC_CONNECT),
				  F(request_problem_info) },
	[MQC_P_WILL_DELAY] = { PT_U32, 0, MQC_BIT(MQC_W_WILL), F(will_delay) },
	[MQC_P_REQUEST_RESPONSE_INFO] = { PT_BYTE, 1, MQC_BIT(MQC_CONNECT),
				  F(request_response_info) },
	[MQC_P_RESPONSE_INFO] = { PT_UTF8, 0, MQC_BIT(MQC_CONNACK), F(response_info) },
	[MQC_P_SERVER_REFERENCE] = { PT_UTF8, 0, MQC_BIT(MQC_CONNACK) | MQC_BIT(MQC_DISCONNECT),
				  F(server_reference) },
	[MQC_P_REASON_STRING] = { PT_UTF8, 0,
				  MQC_BIT(MQC_CONNACK) | W_ACKS | MQC_BIT(MQC_SUBACK) | MQC_BIT(MQC_UNSUBACK) |
					  MQC_BIT(MQC_DISCONNECT) | MQC_BIT(MQC_AUTH),
				  F(reason_string) },
	[MQC_P_RECEIVE_MAX] = { PT_U16, 0, MQC_BIT(MQC_CONNECT) | MQC_BIT(MQC_CONNACK),
				  F(receive_max) },
	[MQC_P_TOPIC_ALIAS_MAX] = { PT_U16, 0, MQC_BIT(MQC_CONNECT) | MQC_BIT(MQC_CONNACK),
				  F(topic_alias_max) },
	[MQC_P_TOPIC_ALIAS] = { PT_U16, 0, MQC_BIT(MQC_PUBLISH), F(topic_alias) },
	[MQC_P_MAX_QOS] = { PT_BYTE, 1, MQC_BIT(MQC_CONNACK), F(max_qos) },
	[MQC_P_RETAIN_AVAILABLE] = { PT_BYTE, 1, MQC_BIT(MQC_CONNACK), F(retain_available) },
	[MQC_P_USER_PROPERTY] = { PT_PAIR, 0, W_ALL, 0 },
	[MQC_P_MAX_PACKET_SIZE] = { PT_U32, 0, MQC_BIT(MQC_CONNECT) | MQC_BIT(MQC_CONNACK),
				  F(max_packet_size) },
	[MQC_P_WILDCARD_SUB_AVAILABLE] = { PT_BYTE, 1, MQC_BIT(MQC_CONNACK),
				  F(wildcard_sub_available) },
	[MQC_P_SUB_ID_AVAILABLE] = { PT_BYTE, 1, MQC_BIT(MQC_CONNACK), F(sub_id_available) },
	[MQC_P_SHARED_SUB_AVAILABLE] = { PT_BYTE, 1, MQC_BIT(MQC_CONNACK),
				  F(shared_sub_available) },
};

static const struct pdesc *pdesc_of(u32 id)
{
	if (id >= sizeof(ptab) / sizeof(ptab[0]) || ptab[id].type == PT_NONE)
		return NULL;
	return &ptab[id];
}

/* One property: identifier, then its value checked against its type and range. */
static int prop_read(struct rd *r, struct mqc_prop *out)
{
	const struct pdesc *d;
	u32 id;
	u16 v16 = 0;
	u8 v8 = 0;
	int err;

	/*
	 * The identifier is a Variable Byte Integer, but every defined one is
	 * below 128: a continuation bit means an unknown or non-minimal id.
	 */
	err = rd_u8(r, &v8);
	if (err)
		return err;
	id = v8;
	d = (id & 0x80) ? NULL : pdesc_of(id);
	if (!d)
		return -MQC_E_PROP_UNKNOWN;
	out->id = (u8)id;
	out->num = 0;
	out->str.p = out->str2.p = NULL;
	out->str.len = out->str2.len = 0;
	switch (d->type) {
	case PT_BYTE:
		err = rd_u8(r, &v8);
		out->num = v8;
		break;
	case PT_U16:
		err = rd_u16(r, &v16);
		out->num = v16;
		break;
	case PT_U32:
		err = rd_u32(r, &out->num);
		break;
	case PT_VARINT:
		err = rd_varint(r, &out->num);
		break;
	case PT_UTF8:
		err = rd_utf8(r, &out->str);
		break;
	case PT_BIN:
		err = rd_bin(r, &out->str);
		break;
	default: /* PT_PAIR */
		err = rd_utf8(r, &out->str);
		if (!err)
			err = rd_utf8(r, &out->str2);
		break;
	}
	if (err)
		return err;
	if (d->bool01 && out->num > 1)
		return -MQC_E_PROP_VALUE;
	if (!out->num && (id == MQC_P_RECEIVE_MAX || id == MQC_P_MAX_PACKET_SIZE ||
			  id == MQC_P_SUBSCRIPTION_ID))
		return -MQC_E_PROP_VALUE;
	if (!out->num && id == MQC_P_TOPIC_ALIAS)
		return -MQC_E_ALIAS; /* MQTT-3.3.2-8 */
	return 0;
}

int mqc_prop_next(struct mqc_str *cursor, struct mqc_prop *out)
{
	struct rd r = { cursor->p, cursor->len, 0 };
	int err;

	if (!cursor->len)
		return 0;
	err = prop_read(&r, out);
	if (err)
		return err;
	cursor->p += r.pos;
	cursor->len -= r.pos;
	return 1;
}

static void prop_store(struct mqc_props *o, const struct mqc_prop *pr)
{
	const struct pdesc *d = &ptab[pr->id];
	u8 *f = (u8 *)o + d->off;

	if (pr->id == MQC_P_USER_PROPERTY)
		return; /* repeatable: only in raw */
	/* repeatable in PUBLISH: the first is kept here, all are in raw */
	if (pr->id == MQC_P_SUBSCRIPTION_ID && (o->present & (1ull << MQC_P_SUBSCRIPTION_ID)))
		return;
	switch (d->type) {
	case PT_BYTE:
		*f = (u8)pr->num;
		break;
	case PT_U16:
		*(u16 *)f = (u16)pr->num;
		break;
	case PT_U32:
	case PT_VARINT:
		*(u32 *)f = pr->num;
		break;
	default:
		*(struct mqc_str *)f = pr->str;
		break;
	}
}

int mqc_props_parse(const u8 *p, u32 len, u8 where, struct mqc_props *out, u64 *seen)
{
	struct rd r = { p, len, 0 };
	struct mqc_prop pr;
	u64 mask = 0;
	int err;

	if (out) {
		/* fields are meaningful only with their bit in present: no full clear */
		out->present = 0;
		out->raw.p = p;
		out->raw.len = len;
	}
	while (rd_left(&r)) {
		u64 bit;

		err = prop_read(&r, &pr);
		if (err)
			return err;
		if (!(ptab[pr.id].where & MQC_BIT(where)))
			return -MQC_E_PROP_WRONG;
		bit = 1ull << pr.id;
		if ((mask & bit) && pr.id != MQC_P_USER_PROPERTY &&
		    !(pr.id == MQC_P_SUBSCRIPTION_ID && where == MQC_PUBLISH))
			return -MQC_E_PROP_DUP;
		if (out) {
			prop_store(out, &pr);
			out->present |= bit;
		}
		mask |= bit;
	}
	if (seen)
		*seen = mask;
	return 0;
}

/* Property Length then the block, validated for `where`. */
static int rd_props(struct rd *r, u8 where, struct mqc_props *out)
{
	u32 n;
	int err = rd_varint(r, &n);

	if (err)
		return err;
	if (rd_left(r) < n)
		return -MQC_E_SHORT;
	err = mqc_props_parse(r->p + r->pos, n, where, out, NULL);
	r->pos += n;
	return err;
}

/* ---- reason codes --------------------------------------------------------- */

static bool in_list(u8 v, const u8 *l, u32 n)
{
	u32 i;

	for (i = 0; i < n; i++)
		if (l[i] == v)
			return true;
	return false;
}

bool mqc_reason_ok(u8 type, u8 rc)
{
	static const u8 connack[] = { 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
				      0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a,
				      0x9b, 0x9c, 0x9d, 0x9f };
	static const u8 puback[] = { 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99 };
	static const u8 pubrel[] = { 0x00, 0x92 };
	static const u8 suback[] = { 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97,
				     0x9e, 0xa1, 0xa2 };
	static const u8 unsuback[] = { 0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91 };
	static const u8 disconnect[] = { 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b,
					 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97,
					 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0,
					 0xa1, 0xa2 };
	static const u8 auth[] = { 0x00, 0x18, 0x19 };

#define IN(l) in_list(rc, l, sizeof(l))
	switch (type) {
	case MQC_CONNACK:
		return IN(connack);
	case MQC_PUBACK:
	case MQC_PUBREC:
		return IN(puback);
	case MQC_PUBREL:
	case MQC_PUBCOMP:
		return IN(pubrel);
	case MQC_SUBACK:
		return IN(suback);
	case MQC_UNSUBACK:
		return IN(unsuback);
	case MQC_DISCONNECT:
		return IN(disconnect);
	case MQC_AUTH:
		return IN(auth);
	default:
		return false;
	}
#undef IN
}

/* ---- decoding ------------------------------------------------------------- */

static int dec_connect(struct rd *r, struct mqc_packet *out)
{
	struct mqc_connect *c = &out->connect;
	struct mqc_str name;
	u8 flags, wq;
	int err;

	err = rd_bin(r, &name);
	if (err)
		return err;
	if (name.len != 4 || mqc_memcmp(name.p, "MQTT", 4))
		return -MQC_E_PROTOCOL;
	err = rd_u8(r, &c->version);
	if (err)
		return err;
	if (c->version != MQC_V311 && c->version != MQC_V5)
		return -MQC_E_PROTOCOL;
	err = rd_u8(r, &flags);
	if (!err)
		err = rd_u16(r, &c->keepalive);
	if (err)
		return err;
	wq = (flags >> 3) & 3;
	if (flags & 1) /* MQTT-3.1.2-3 */
		return -MQC_E_FLAGS;
	if (wq == 3)
		return -MQC_E_QOS3;
	if (!(flags & 0x04) && (wq || (flags & 0x20))) /* MQTT-3.1.2-11/-13/-15 */
		return -MQC_E_FLAGS;
	if (c->version == MQC_V311 && (flags & 0x40) && !(flags & 0x80)) /* MQTT-3.1.2-22 */
		return -MQC_E_FLAGS;
	c->clean = (flags >> 1) & 1;
	if (c->version == MQC_V5) {
		err = rd_props(r, MQC_CONNECT, &out->props);
		if (err)
			return err;
		c->props = &out->props;
	}
	err = rd_utf8(r, &c->client_id);
	if (err)
		return err;
	if (flags & 0x04) {
		struct mqc_will *w = &out->will;

		mqc_memset(w, 0, sizeof(*w));
		if (c->version == MQC_V5) {
			err = rd_props(r, MQC_W_WILL, &out->will_props);
			if (err)
				return err;
			w->props = &out->will_props;
		}
		err = rd_utf8(r, &w->topic);
		if (!err)
			err = mqc_topic_check(w->topic.p, w->topic.len, false);
		if (!err)
			err = rd_bin(r, &w->payload);
		if (err)
			return err;
		w->qos = wq;
		w->retain = (flags >> 5) & 1;
		c->will = w;
	}
	if (flags & 0x80) {
		err = rd_utf8(r, &c->username);
		if (err)
			return err;
	}
	if (flags & 0x40) {
		err = rd_bin(r, &c->password);
		if (err)
			return err;
	}
	return 0;
}

static int dec_connack(u8 v, struct rd *r, struct mqc_packet *out)
{
	struct mqc_connack *ca = &out->connack;
	u8 af;
	int err;

	err = rd_u8(r, &af);
	if (!err)
		err = rd_u8(r, &ca->reason);
	if (err)
		return err;
	if (af & 0xfe)
		return -MQC_E_FLAGS;
	ca->session_present = af & 1;
	out->reason = ca->reason;
	if (v == MQC_V311) {
		if (ca->reason > 5)
			return -MQC_E_REASON;
	} else {
		if (!mqc_reason_ok(MQC_CONNACK, ca->reason))
			return -MQC_E_REASON;
		err = rd_props(r, MQC_CONNACK, &ca->props);
		if (err)
			return err;
		out->props = ca->props;
	}
	/* MQTT-3.2.2-4 (3.1.1) / MQTT-3.2.2-6 (5.0) */
	if (ca->reason && ca->session_present)
		return -MQC_E_PROTOCOL;
	return 0;
}

static int dec_publish(u8 v, struct rd *r, struct mqc_packet *out)
{
	struct mqc_pub *pb = &out->publish;
	int err;

	pb->qos = (out->flags >> 1) & 3;
	pb->dup = (out->flags >> 3) & 1;
	pb->retain = out->flags & 1;
	err = rd_bin(r, &pb->topic);
	if (err)
		return err;
	if (pb->qos) {
		err = rd_u16(r, &pb->pid);
		if (err)
			return err;
		if (!pb->pid)
			return -MQC_E_PID0;
	}
	out->pid = pb->pid;
	if (v == MQC_V5) {
		err = rd_props(r, MQC_PUBLISH, &out->props);
		if (err)
			return err;
		pb->props = &out->props;
		if (out->props.present & (1ull << MQC_P_TOPIC_ALIAS))
			pb->topic_alias = out->props.topic_alias;
	}
	err = mqc_topic_check(pb->topic.p, pb->topic.len, pb->topic_alias != 0);
	if (err)
		return err;
	pb->payload.p = r->p + r->pos;
	pb->payload.len = rd_left(r);
	r->pos = r->len;
	return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP; DISCONNECT and AUTH share the reason+props tail. */
static int dec_reason_tail(u8 v, u8 type, struct rd *r, struct mqc_packet *out)
{
	int err;

	if (v == MQC_V311 || !rd_left(r))
		return 0;
	err = rd_u8(r, &out->reason);
	if (err)
		return err;
	if (!mqc_reason_ok(type, out->reason))
		return -MQC_E_REASON;
	if (!rd_left(r))
		return 0;
	return rd_props(r, type, &out->props);
}

static int dec_filters(u8 v, struct rd *r, struct mqc_packet *out, bool with_opts)
{
	u32 n = 0;
	int err;

	while (rd_left(r)) {
		struct mqc_str f;
		u8 o = 0;

		if (n == MQC_MAX_TOPICS)
			return -MQC_E_TOO_BIG;
		err = rd_utf8(r, &f);
		if (!err)
			err = mqc_filter_check(f.p, f.len);
		if (!err && with_opts)
			err = rd_u8(r, &o);
		if (err)
			return err;
		if ((o & 3) == 3)
			return -MQC_E_QOS3;
		/* MQTT-3.8.3-4 (3.1.1), MQTT-3.8.3-5 and retain handling 3 (5.0) */
		if ((v == MQC_V311 && (o & 0xfc)) || (v == MQC_V5 && ((o & 0xc0) || (o >> 4) == 3)))
			return -MQC_E_FLAGS;
		out->sub.filter[n] = f;
		out->sub.options[n] = o;
		n++;
	}
	out->sub.n = n;
	return n ? 0 : -MQC_E_PROTOCOL; /* MQTT-3.8.3-3, MQTT-3.10.3-2 */
}

static int dec_codes(u8 type, struct rd *r, struct mqc_packet *out, u8 v)
{
	u32 n = 0;

	while (rd_left(r)) {
		u8 c = r->p[r->pos++];

		if (n == MQC_MAX_TOPICS)
			return -MQC_E_TOO_BIG;
		if (v == MQC_V311 ? !(c <= 2 || c == 0x80) : !mqc_reason_ok(type, c))
			return -MQC_E_REASON;
		out->suback.codes[n++] = c;
	}
	out->suback.n = n;
	return n ? 0 : -MQC_E_PROTOCOL;
}

static void clear_member(struct mqc_packet *out)
{
	switch (out->type) {
	case MQC_CONNECT:
		mqc_memset(&out->connect, 0, sizeof(out->connect));
		break;
	case MQC_CONNACK:
		mqc_memset(&out->connack, 0, sizeof(out->connack));
		break;
	case MQC_PUBLISH:
		mqc_memset(&out->publish, 0, sizeof(out->publish));
		break;
	case MQC_SUBSCRIBE:
	case MQC_UNSUBSCRIBE:
		out->sub.n = 0;
		break;
	case MQC_SUBACK:
	case MQC_UNSUBACK:
		out->suback.n = 0;
		break;
	default:
		break;
	}
}

static int dec_body(u8 v, struct rd *r, struct mqc_packet *out)
{
	int err;

	clear_member(out);
	switch (out->type) {
	case MQC_CONNECT:
		return dec_connect(r, out);
	case MQC_CONNACK:
		return dec_connack(v, r, out);
	case MQC_PUBLISH:
		return dec_publish(v, r, out);
	case MQC_PUBACK:
	case MQC_PUBREC:
	case MQC_PUBREL:
	case MQC_PUBCOMP:
		err = rd_u16(r, &out->pid);
		if (err)
			return err;
		if (!out->pid)
			return -MQC_E_PID0;
		return dec_reason_tail(v, out->type, r, out);
	case MQC_SUBSCRIBE:
	case MQC_UNSUBSCRIBE:
	case MQC_SUBACK:
	case MQC_UNSUBACK:
		err = rd_u16(r, &out->pid);
		if (err)
			return err;
		if (!out->pid)
			return -MQC_E_PID0;
		if (v == MQC_V5) {
			err = rd_props(r, out->type, &out->props);
			if (err)
				return err;
		}
		if (out->type == MQC_SUBSCRIBE || out->type == MQC_UNSUBSCRIBE)
			return dec_filters(v, r, out, out->type == MQC_SUBSCRIBE);
		if (out->type == MQC_UNSUBACK && v == MQC_V311)
			return 0;
		return dec_codes(out->type, r, out, v);
	case MQC_PINGREQ:
	case MQC_PINGRESP:
		return 0;
	default: /* DISCONNECT, AUTH */
		return dec_reason_tail(v, out->type, r, out);
	}
}

/* Fixed-header flags each packet type must carry (PUBLISH is checked on its own). */
int mqc_check_flags(u8 type, u8 flags)
{
	u8 want = (type == MQC_PUBREL || type == MQC_SUBSCRIBE || type == MQC_UNSUBSCRIBE) ? 2 : 0;

	if (type != MQC_PUBLISH)
		return flags == want ? 0 : -MQC_E_FLAGS;
	if (((flags >> 1) & 3) == 3)
		return -MQC_E_QOS3;
	if ((flags & 0x08) && !(flags & 0x06)) /* MQTT-3.3.1-2 */
		return -MQC_E_DUP_QOS0;
	return 0;
}

int mqc_decode(u8 version, const u8 *pkt, u32 len, u32 max, struct mqc_packet *out)
{
	struct rd r;
	u32 rl;
	int n, err;

	if (version != MQC_V311 && version != MQC_V5)
		return -EINVAL;
	/*
	 * Not the whole packet: it is ~1.6 KiB and decoding is per message.
	 * The head, the property summary and the member for the type are
	 * cleared; property fields are valid where props.present says.
	 */
	out->type = out->flags = out->reason = 0;
	out->pid = 0;
	out->props.present = 0;
	out->props.raw.p = NULL;
	out->props.raw.len = 0;
	if (len < 2)
		return -MQC_E_SHORT;
	n = mqc_varint_get(pkt + 1, len - 1, &rl);
	if (n < 0)
		return n;
	if (rl > len - 1 - (u32)n)
		return -MQC_E_SHORT;
	if (rl < len - 1 - (u32)n)
		return -MQC_E_TRAILING;
	if (max && len > max)
		return -MQC_E_TOO_BIG;
	out->type = pkt[0] >> 4;
	out->flags = pkt[0] & 0x0f;
	if (!out->type || (out->type == MQC_AUTH && version == MQC_V311))
		return -MQC_E_TYPE;
	err = mqc_check_flags(out->type, out->flags);
	if (err)
		return err;
	r.p = pkt + 1 + n;
	r.len = rl;
	r.pos = 0;
	err = dec_body(version, &r, out);
	if (err)
		return err;
	return rd_left(&r) ? -MQC_E_TRAILING : 0;
}

/* ---- encoding ------------------------------------------------------------- */

/*
 * A writer that only counts when p is NULL, so every packet is sized by the
 * same code. The counting pass records each property block's length (a
 * CONNECT has two) for the writing pass, which then need not size it again.
 */
struct wr {
	u8 *p;
	u32 pos;
	u32 plen[2];
	u32 np;
};

static void w_bytes(struct wr *w, const void *s, u32 n)
{
	if (w->p && n)
		mqc_memcpy(w->p + w->pos, s, n);
	w->pos += n;
}

static void w_u8(struct wr *w, u8 v)
{
	if (w->p)
		w->p[w->pos] = v;
	w->pos++;
}

static void w_u16(struct wr *w, u16 v)
{
	w_u8(w, (u8)(v >> 8));
	w_u8(w, (u8)v);
}

static void w_u32(struct wr *w, u32 v)
{
	w_u16(w, (u16)(v >> 16));
	w_u16(w, (u16)v);
}

static void w_varint(struct wr *w, u32 v)
{
	w->pos += mqc_varint_put(w->p ? w->p + w->pos : NULL, v);
}

static int w_str(struct wr *w, struct mqc_str s)
{
	if (s.len > 0xffff || (s.len && !s.p))
		return -EINVAL;
	w_u16(w, (u16)s.len);
	w_bytes(w, s.p, s.len);
	return 0;
}

static bool props_empty(const struct mqc_props *pr, u32 nuser, u16 alias)
{
	return (!pr || (!pr->present && !pr->raw.p)) && !nuser && !alias;
}

/* The property block's contents (without its length) from fields, or raw when set. */
static int w_props_body(struct wr *w, const struct mqc_props *pr, const struct mqc_user_prop *u,
			u32 nuser, u16 alias, u8 where)
{
	u64 bits;
	u32 id, i;
	int err = 0;

	if (pr && pr->raw.p) {
		w_bytes(w, pr->raw.p, pr->raw.len);
		return 0;
	}
	bits = pr ? pr->present & ~(1ull << MQC_P_USER_PROPERTY) : 0;
	if (alias)
		bits &= ~(1ull << MQC_P_TOPIC_ALIAS);
	while (bits && !err) {
		const struct pdesc *d;
		struct mqc_prop v = { 0 };
		const u8 *f;

		id = (u32)__builtin_ctzll(bits);
		bits &= bits - 1;
		d = pdesc_of(id);
		if (!d || !(d->where & MQC_BIT(where)))
			return -EINVAL;
		f = (const u8 *)pr + d->off;
		switch (d->type) {
		case PT_BYTE:
			v.num = *f;
			break;
		case PT_U16:
			v.num = *(const u16 *)f;
			break;
		case PT_U32:
		case PT_VARINT:
			v.num = *(const u32 *)f;
			break;
		default:
			v.str = *(const struct mqc_str *)f;
			break;
		}
		w_u8(w, (u8)id);
		switch (d->type) {
		case PT_BYTE:
			w_u8(w, (u8)v.num);
			break;
		case PT_U16:
			w_u16(w, (u16)v.num);
			break;
		case PT_U32:
			w_u32(w, v.num);
			break;
		case PT_VARINT:
			if (!v.num || v.num > MQC_RL_MAX)
				return -EINVAL;
			w_varint(w, v.num);
			break;
		default:
			err = w_str(w, v.str);
			break;
		}
	}
	if (err)
		return err;
	if (alias) {
		if (!(MQC_BIT(MQC_PUBLISH) & MQC_BIT(where)))
			return -EINVAL;
		w_u8(w, MQC_P_TOPIC_ALIAS);
		w_u16(w, alias);
	}
	for (i = 0; i < nuser && !err; i++) {
		w_u8(w, MQC_P_USER_PROPERTY);
		err = w_str(w, u[i].name);
		if (!err)
			err = w_str(w, u[i].value);
	}
	return err;
}

static int w_props(struct wr *w, const struct mqc_props *pr, const struct mqc_user_prop *u,
		   u32 nuser, u16 alias, u8 where)
{
	struct wr m = { NULL, 0, { 0, 0 }, 0 };
	u32 len;
	int err;

	if (w->np >= 2)
		return -EINVAL;
	if (w->p) {
		len = w->plen[w->np++];
		w_varint(w, len);
		return w_props_body(w, pr, u, nuser, alias, where);
	}
	err = w_props_body(&m, pr, u, nuser, alias, where);
	if (err)
		return err;
	if (m.pos > MQC_RL_MAX)
		return -EINVAL;
	w->plen[w->np++] = m.pos;
	w->pos += varint_size(m.pos) + m.pos;
	return 0;
}

static int w_connect(struct wr *w, const struct mqc_connect *c)
{
	const struct mqc_will *wl = c->will;
	bool v5 = c->version == MQC_V5;
	u8 flags = 0;
	int err;

	if (c->version != MQC_V311 && c->version != MQC_V5)
		return -EINVAL;
	if (c->clean)
		flags |= 0x02;
	if (wl) {
		if (wl->qos > 2)
			return -EINVAL;
		flags |= 0x04 | (u8)(wl->qos << 3) | (wl->retain ? 0x20 : 0);
	}
	if (c->username.p)
		flags |= 0x80;
	if (c->password.p) {
		if (!v5 && !c->username.p)
			return -EINVAL;
		flags |= 0x40;
	}
	w_u16(w, 4);
	w_bytes(w, "MQTT", 4);
	w_u8(w, c->version);
	w_u8(w, flags);
	w_u16(w, c->keepalive);
	if (v5) {
		err = w_props(w, c->props, c->user, c->nuser, 0, MQC_CONNECT);
		if (err)
			return err;
	}
	err = w_str(w, c->client_id);
	if (err)
		return err;
	if (wl) {
		if (v5) {
			err = w_props(w, wl->props, NULL, 0, 0, MQC_W_WILL);
			if (err)
				return err;
		}
		err = w_str(w, wl->topic);
		if (!err)
			err = w_str(w, wl->payload);
		if (err)
			return err;
	}
	if (c->username.p) {
		err = w_str(w, c->username);
		if (err)
			return err;
	}
	if (c->password.p)
		return w_str(w, c->password);
	return 0;
}

static int w_publish(struct wr *w, u8 v, const struct mqc_pub *p, u32 *pid_off)
{
	int err;

	if (p->qos > 2 || (p->dup && !p->qos))
		return -EINVAL;
	if (!p->topic.len && !(v == MQC_V5 && p->topic_alias))
		return -EINVAL;
	err = w_str(w, p->topic);
	if (err)
		return err;
	if (p->qos) {
		if (pid_off)
			*pid_off = w->pos;
		w_u16(w, p->pid);
	}
	if (v == MQC_V5) {
		err = w_props(w, p->props, p->user, p->nuser, p->topic_alias, MQC_PUBLISH);
		if (err)
			return err;
	}
	if (p->payload.len && !p->payload.p)
		return -EINVAL;
	w_bytes(w, p->payload.p, p->payload.len);
	return 0;
}

/* Reason code and properties, both omitted when they are 0 and empty (v5 only). */
static int w_reason_tail(struct wr *w, u8 v, const struct mqc_packet *p)
{
	bool empty = props_empty(&p->props, 0, 0);

	if (v == MQC_V311 || (!p->reason && empty))
		return 0;
	if (!mqc_reason_ok(p->type, p->reason))
		return -EINVAL;
	w_u8(w, p->reason);
	return empty ? 0 : w_props(w, &p->props, NULL, 0, 0, p->type);
}

static int w_body(struct wr *w, u8 v, const struct mqc_packet *p, u32 *pid_off)
{
	u32 i;
	int err;

	switch (p->type) {
	case MQC_CONNECT:
		return w_connect(w, &p->connect);
	case MQC_CONNACK:
		w_u8(w, p->connack.session_present & 1);
		w_u8(w, p->connack.reason);
		if (v == MQC_V5)
			return w_props(w, &p->connack.props, NULL, 0, 0, MQC_CONNACK);
		return 0;
	case MQC_PUBLISH:
		return w_publish(w, v, &p->publish, pid_off);
	case MQC_PUBACK:
	case MQC_PUBREC:
	case MQC_PUBREL:
	case MQC_PUBCOMP:
		if (!p->pid)
			return -EINVAL;
		w_u16(w, p->pid);
		return w_reason_tail(w, v, p);
	case MQC_SUBSCRIBE:
	case MQC_UNSUBSCRIBE:
	case MQC_SUBACK:
	case MQC_UNSUBACK:
		if (!p->pid)
			return -EINVAL;
		w_u16(w, p->pid);
		if (v == MQC_V5) {
			err = w_props(w, &p->props, NULL, 0, 0, p->type);
			if (err)
				return err;
		}
		if (p->type == MQC_SUBSCRIBE || p->type == MQC_UNSUBSCRIBE) {
			if (!p->sub.n || p->sub.n > MQC_MAX_TOPICS)
				return -EINVAL;
			for (i = 0; i < p->sub.n; i++) {
				err = w_str(w, p->sub.filter[i]);
				if (err)
					return err;
				if (p->type == MQC_SUBSCRIBE)
					w_u8(w, p->sub.options[i]);
			}
			return 0;
		}
		if (p->type == MQC_UNSUBACK && v == MQC_V311)
			return 0;
		if (!p->suback.n || p->suback.n > MQC_MAX_TOPICS)
			return -EINVAL;
		w_bytes(w, p->suback.codes, p->suback.n);
		return 0;
	case MQC_PINGREQ:
	case MQC_PINGRESP:
		return 0;
	case MQC_DISCONNECT:
		return w_reason_tail(w, v, p);
	case MQC_AUTH:
		if (v != MQC_V5)
			return -EINVAL;
		return w_reason_tail(w, v, p);
	default:
		return -EINVAL;
	}
}

typedef int (*body_fn)(struct wr *w, u8 v, const void *arg, u32 *pid_off);

static int body_packet(struct wr *w, u8 v, const void *arg, u32 *pid_off)
{
	return w_body(w, v, arg, pid_off);
}

static int body_connect(struct wr *w, u8 v, const void *arg, u32 *pid_off)
{
	return w_connect(w, arg);
}

static int body_publish(struct wr *w, u8 v, const void *arg, u32 *pid_off)
{
	return w_publish(w, v, arg, pid_off);
}

/*
 * Size, then write: the counting pass and the writing pass run the same
 * code, so the Remaining Length can never disagree with the body. With
 * buf NULL only the size is returned.
 */
static int frame(u8 first, body_fn body, u8 v, const void *arg, u8 *buf, u32 cap, u32 *pid_off)
{
	struct wr m = { NULL, 0, { 0, 0 }, 0 }, w;
	u32 hdr, off = 0;
	int err;

	if (v != MQC_V311 && v != MQC_V5)
		return -EINVAL;
	err = body(&m, v, arg, NULL);
	if (err)
		return err;
	if (m.pos > MQC_RL_MAX)
		return -EMSGSIZE;
	hdr = 1 + varint_size(m.pos);
	if (!buf)
		return (int)(hdr + m.pos);
	if (cap < hdr || cap - hdr < m.pos)
		return -ENOSPC;
	buf[0] = first;
	mqc_varint_put(buf + 1, m.pos);
	w = m;
	w.p = buf + hdr;
	w.pos = 0;
	w.np = 0;
	err = body(&w, v, arg, &off);
	if (err)
		return err;
	if (pid_off)
		*pid_off = off ? hdr + off : 0;
	return (int)(hdr + w.pos);
}

static u8 publish_first(const struct mqc_pub *p)
{
	return (u8)(MQC_PUBLISH << 4 | (p->dup ? 8 : 0) | ((p->qos & 3) << 1) | (p->retain ? 1 : 0));
}

int mqc_encode(u8 version, const struct mqc_packet *p, u8 *buf, u32 cap)
{
	u8 first;

	if (!buf)
		return -EINVAL;
	if (p->type == MQC_CONNECT)
		return mqc_encode_connect(&p->connect, buf, cap);
	if (p->type == MQC_PUBLISH)
		first = publish_first(&p->publish);
	else if (p->type == MQC_PUBREL || p->type == MQC_SUBSCRIBE || p->type == MQC_UNSUBSCRIBE)
		first = (u8)(p->type << 4 | 2);
	else
		first = (u8)(p->type << 4);
	return frame(first, body_packet, version, p, buf, cap, NULL);
}

int mqc_encode_connect(const struct mqc_connect *c, u8 *buf, u32 cap)
{
	if (!buf)
		return -EINVAL;
	return frame(MQC_CONNECT << 4, body_connect, c->version, c, buf, cap, NULL);
}

int mqc_publish_size(u8 version, const struct mqc_pub *p)
{
	return frame(0, body_publish, version, p, NULL, 0, NULL);
}

int mqc_encode_publish(u8 version, const struct mqc_pub *p, u8 *buf, u32 cap, u32 *pid_off)
{
	if (!buf)
		return -EINVAL;
	return frame(publish_first(p), body_publish, version, p, buf, cap, pid_off);
}

/* ---- error names ---------------------------------------------------------- */

const char *mqc_strerror(int err)
{
	static const char *const names[] = {
		[MQC_E_VARINT - MQC_E_BASE] = "remaining length longer than 4 bytes",
		[MQC_E_TOO_BIG - MQC_E_BASE] = "packet over the Maximum Packet Size",
		[MQC_E_FLAGS - MQC_E_BASE] = "reserved flag bits set",
		[MQC_E_QOS3 - MQC_E_BASE] = "QoS 3",
		[MQC_E_DUP_QOS0 - MQC_E_BASE] = "DUP set on a QoS 0 PUBLISH",
		[MQC_E_PID0 - MQC_E_BASE] = "packet identifier 0",
		[MQC_E_TOPIC_WILD - MQC_E_BASE] = "wildcard misplaced in topic",
		[MQC_E_TOPIC_EMPTY - MQC_E_BASE] = "empty topic",
		[MQC_E_UTF8 - MQC_E_BASE] = "ill-formed UTF-8",
		[MQC_E_UTF8_NUL - MQC_E_BASE] = "U+0000 in a string",
		[MQC_E_UTF8_SURROGATE - MQC_E_BASE] = "UTF-16 surrogate in a string",
		[MQC_E_PROP_DUP - MQC_E_BASE] = "property given twice",
		[MQC_E_PROP_UNKNOWN - MQC_E_BASE] = "unknown property",
		[MQC_E_PROP_WRONG - MQC_E_BASE] = "property not allowed in this packet",
		[MQC_E_PROP_VALUE - MQC_E_BASE] = "property value out of range",
		[MQC_E_SHORT - MQC_E_BASE] = "length runs past the end of the packet",
		[MQC_E_TRAILING - MQC_E_BASE] = "bytes after the last field",
		[MQC_E_TYPE - MQC_E_BASE] = "reserved or unsupported packet type",
		[MQC_E_REASON - MQC_E_BASE] = "reason code not valid for this packet",
		[MQC_E_PROTOCOL - MQC_E_BASE] = "protocol violation",
		[MQC_E_UNKNOWN_PID - MQC_E_BASE] = "acknowledgement for an identifier not in flight",
		[MQC_E_ALIAS - MQC_E_BASE] = "invalid topic alias",
		[MQC_E_KEEPALIVE - MQC_E_BASE] = "keepalive timeout",
	};

	if (!err)
		return "success";
	if (err <= -MQC_E_BASE - 1 && err > -MQC_E_MAX)
		return names[-err - MQC_E_BASE];
	switch (err) {
	case -EAGAIN:
		return "window or receive maximum full";
	case -ENOTCONN:
		return "not connected";
	case -EMSGSIZE:
		return "over the server's Maximum Packet Size";
	case -EINVAL:
		return "invalid argument";
	case -ENOSPC:
		return "buffer too small";
	case -ENOENT:
		return "no such packet identifier";
	case -EBUSY:
		return "packet identifier or slot in use";
	case -ECONNRESET:
		return "disconnected by the peer";
	case -ECONNREFUSED:
		return "connection refused by the server";
	default:
		return "unknown error";
	}
}
