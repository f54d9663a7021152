/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* The protocol core's codec: encode and strictly decode every MQTT 3.1.1 and 5.0 control packet. */
#ifndef MQC_CODEC_H
#define MQC_CODEC_H

#include "mqc_compat.h"

/* A length-delimited byte string; never NUL-terminated. */
struct mqc_str {
	const u8 *p;
	u32 len;
};

/* v5 property identifiers. */
enum mqc_prop_id {
	MQC_P_PAYLOAD_FORMAT = 0x01,
	MQC_P_MESSAGE_EXPIRY = 0x02,
	MQC_P_CONTENT_TYPE = 0x03,
	MQC_P_RESPONSE_TOPIC = 0x08,
	MQC_P_CORRELATION_DATA = 0x09,
	MQC_P_SUBSCRIPTION_ID = 0x0b,
	MQC_P_SESSION_EXPIRY = 0x11,
	MQC_P_ASSIGNED_CLIENT_ID = 0x12,
	MQC_P_SERVER_KEEPALIVE = 0x13,
	MQC_P_AUTH_METHOD = 0x15,
	MQC_P_AUTH_DATA = 0x16,
	MQC_P_REQUEST_PROBLEM_INFO = 0x17,
	MQC_P_WILL_DELAY = 0x18,
	MQC_P_REQUEST_RESPONSE_INFO = 0x19,
	MQC_P_RESPONSE_INFO = 0x1a,
	MQC_P_SERVER_REFERENCE = 0x1c,
	MQC_P_REASON_STRING = 0x1f,
	MQC_P_RECEIVE_MAX = 0x21,
	MQC_P_TOPIC_ALIAS_MAX = 0x22,
	MQC_P_TOPIC_ALIAS = 0x23,
	MQC_P_MAX_QOS = 0x24,
	MQC_P_RETAIN_AVAILABLE = 0x25,
	MQC_P_USER_PROPERTY = 0x26,
	MQC_P_MAX_PACKET_SIZE = 0x27,
	MQC_P_WILDCARD_SUB_AVAILABLE = 0x28,
	MQC_P_SUB_ID_AVAILABLE = 0x29,
	MQC_P_SHARED_SUB_AVAILABLE = 0x2a,
};

/*
 * Decoded v5 properties. `present` has bit (1 << id) for every id seen
 * (ids are < 64). Repeatable ones (user property, subscription id in
 * PUBLISH) are left in `raw` for mqc_prop_next().
 */
struct mqc_props {
	u64 present;
	u32 message_expiry, session_expiry, will_delay, max_packet_size;
	u32 subscription_id;
	u16 server_keepalive, receive_max, topic_alias_max, topic_alias;
	u8 payload_format, request_problem_info, request_response_info;
	u8 max_qos, retain_available, wildcard_sub_available, sub_id_available,
		shared_sub_available;
	struct mqc_str content_type, response_topic, correlation_data, assigned_client_id,
		auth_method, auth_data, response_info, server_reference, reason_string;
	struct mqc_str raw; /* the whole property block as received */
};

/* Iterate raw properties: returns 1 with *id and *val set, 0 at the end, <0 on error. */
struct mqc_prop {
	u8 id;
	u32 num;		/* integer-valued properties */
	struct mqc_str str;	/* string/binary; for user property, the name */
	struct mqc_str str2;	/* user property value */
};
int mqc_prop_next(struct mqc_str *cursor, struct mqc_prop *out);

/*
 * Encoding properties: every id with its bit in `present` is written from
 * its field (ids in ascending order; user properties come from the
 * mqc_user_prop arrays, the PUBLISH topic alias from mqc_pub.topic_alias).
 * When `raw.p` is set the block is copied verbatim instead and the fields,
 * user array and alias are ignored, so a decoded packet re-encodes to the
 * same bytes. An id not allowed in the packet type is -EINVAL.
 */
struct mqc_user_prop {
	struct mqc_str name, value;
};

struct mqc_will {
	struct mqc_str topic, payload;
	u8 qos, retain;
	const struct mqc_props *props; /* v5 will properties, or NULL */
};

struct mqc_connect {
	u8 version;
	u8 clean;		/* clean session (3.1.1) / clean start (5.0) */
	u16 keepalive;
	struct mqc_str client_id;
	struct mqc_str username, password; /* p == NULL: absent */
	const struct mqc_will *will;	   /* NULL: no will */
	const struct mqc_props *props;	   /* v5 CONNECT properties, or NULL */
	const struct mqc_user_prop *user;
	u32 nuser;
};

struct mqc_connack {
	u8 session_present;
	u8 reason;		/* 3.1.1 return code or v5 reason code */
	struct mqc_props props;
};

/* What mqttq needs to build a PUBLISH. */
struct mqc_pub {
	struct mqc_str topic;	/* may be empty with topic_alias on v5 */
	struct mqc_str payload;
	u8 qos, retain, dup;
	u16 pid;		/* 0 for QoS 0; a placeholder until mqc_publish assigns one */
	u16 topic_alias;	/* v5, 0 = none */
	const struct mqc_props *props; /* v5: expiry, content type, response topic, correlation */
	const struct mqc_user_prop *user;
	u32 nuser;
};

/*
 * Any control packet, decoded or to be encoded. Fields not used by a type
 * are ignored. Strings point into the decoded input.
 */
#define MQC_MAX_TOPICS 64 /* filters per (UN)SUBSCRIBE the decoder will index */
struct mqc_packet {
	u8 type, flags;		/* fixed header */
	u16 pid;
	u8 reason;		/* acks, DISCONNECT, AUTH, CONNACK */
	struct mqc_props props;
	union {
		struct mqc_connect connect;
		struct mqc_connack connack;
		struct mqc_pub publish;
		struct {
			struct mqc_str filter[MQC_MAX_TOPICS];
			u8 options[MQC_MAX_TOPICS];
			u32 n;
		} sub;		/* SUBSCRIBE, UNSUBSCRIBE */
		struct {
			u8 codes[MQC_MAX_TOPICS];
			u32 n;
		} suback;	/* SUBACK, UNSUBACK (v5) */
	};
	/* connect decode storage: will and its properties live here */
	struct mqc_will will;
	struct mqc_props will_props;
};

/*
 * Decode one complete packet of protocol version `version`. `max` is the
 * local Maximum Packet Size (0 = protocol maximum). Returns 0 or a
 * negative MQC_E_*; never reads outside pkt[0..len). CONNECT carries its
 * own protocol level, which wins over `version` (connect.version).
 * CONNACK's properties are in both connack.props and props; a PUBLISH's in
 * props with publish.props pointing there. More than MQC_MAX_TOPICS
 * filters or codes is MQC_E_TOO_BIG. For speed only the head, the member
 * for the packet's type and props.present/raw are reset: a property field
 * is meaningful only when its bit is in props.present.
 */
int mqc_decode(u8 version, const u8 *pkt, u32 len, u32 max, struct mqc_packet *out);

/*
 * Encode any packet; returns the length, or -ENOSPC when cap is short,
 * -EINVAL for values the decoder would reject. Acks, DISCONNECT and AUTH
 * take pid/reason/props from the packet head; CONNACK from connack.
 */
int mqc_encode(u8 version, const struct mqc_packet *p, u8 *buf, u32 cap);

/* Helpers the glue calls directly. */
int mqc_encode_connect(const struct mqc_connect *c, u8 *buf, u32 cap);
/* Encoded size of the PUBLISH (or -EINVAL / -EMSGSIZE): size buffers with it. */
int mqc_publish_size(u8 version, const struct mqc_pub *p);
/* Encodes PUBLISH; *pid_off gets the identifier's offset (QoS > 0). */
int mqc_encode_publish(u8 version, const struct mqc_pub *p, u8 *buf, u32 cap, u32 *pid_off);

/* String checks (MQTT 1.5.3 / 1.5.4): 0 or MQC_E_UTF8*. */
int mqc_utf8_check(const u8 *s, u32 len);
/* PUBLISH topic name check: 0, MQC_E_TOPIC_WILD, MQC_E_TOPIC_EMPTY or MQC_E_UTF8*. */
int mqc_topic_check(const u8 *s, u32 len, bool alias);

#endif /* MQC_CODEC_H */
