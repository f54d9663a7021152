/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Layout shared by the topic-filter BPF program and its loader: limits, return codes, map types. */
#ifndef MQTTQ_MQF_ABI_H
#define MQTTQ_MQF_ABI_H

#include <linux/types.h>

/*
 * What the program can examine. A topic beyond any of these is answered with
 * MQF_UNDECIDED and matched in userspace, never guessed.
 */
#define MQF_TOPIC_MAX 256 /* bytes of topic name */
#define MQF_LEVELS_MAX 32 /* '/'-separated levels */
#define MQF_QUEUE_MAX 64 /* trie nodes visited per topic (one per partial match) */
#define MQF_NEST_MAX 4 /* runs of the program interrupting each other on one CPU */
#define MQF_SOCK_MAX 64 /* sockets in the sockmap */

/*
 * Program return values besides a filter id (1..MQF_ID_MAX in match.h); the
 * same as the module's uapi (MQTTQ_FILTER_UNDECIDED). A packet that is not a
 * well-formed PUBLISH (other type, QoS 3, 5-byte length, topic longer than
 * the packet, '+', '#' or NUL in the topic) is undecided too: its receiver's
 * own parser deals with it.
 */
#define MQF_NO_MATCH 0u
#define MQF_UNDECIDED 0xffffffffu /* over the limits or malformed: match in userspace */

/* Key kinds of struct mqf_key. */
#define MQF_K_LEVEL 0 /* child of @parent for a literal level */
#define MQF_K_PLUS 1 /* the '+' child of @parent */
#define MQF_K_ROOT 2 /* the root of generation @gen (parent 0) */

/* struct mqf_node.flags: which lookups a visit of this node needs. */
#define MQF_NF_LEVELS 1u /* has literal children */
#define MQF_NF_PLUS 2u /* has a '+' child */

/*
 * One trie edge, in map "mqf_nodes". A literal level is named by two hashes
 * and its length; both generations live in the same map, told apart by @gen.
 * Every byte is set (pad included) because the map hashes the whole key.
 */
struct mqf_key {
	__u64 h1; /* FNV-1a 64 of the level bytes */
	__u32 parent; /* node id of the parent, 0 for the root key */
	__u32 h2; /* a second, unrelated 32-bit hash of the same bytes */
	__u16 len; /* level length in bytes */
	__u8 gen; /* generation 0 or 1 */
	__u8 kind; /* MQF_K_* */
	__u32 pad;
};

struct mqf_node {
	__u32 id; /* node id within its generation, >= 1 */
	__u32 term; /* lowest filter id ending exactly here, 0 if none */
	__u32 hash; /* lowest filter id of the "#" child here, 0 if none */
	__u32 flags; /* MQF_NF_* */
};

/* Map "mqf_active", one element: the generation programs read. */
struct mqf_active {
	__u32 gen;
};

/* Map "mqf_sock_state", by socket cookie: where the MQTT framing of a socket's stream stands. */
struct mqf_sock_state {
	__u32 carry; /* body bytes of the current packet still to come */
	__u32 rl; /* remaining length decoded so far (inside a fixed header) */
	__u8 in_hdr; /* inside a fixed header split across skbs */
	__u8 hpos; /* length bytes of it seen */
	__u8 broken; /* framing lost (malformed stream): pass everything */
	__u8 pad;
};

#define MQF_FNV_BASIS 0xcbf29ce484222325ull
#define MQF_FNV_PRIME 0x100000001b3ull
#define MQF_H2_BASIS 0x9747b28cu
#define MQF_H2_MUL 0x5bd1e995u

/* Both sides hash a level one byte at a time with exactly these steps. */
#define MQF_H1_STEP(h, c) (((h) ^ (__u8)(c)) * MQF_FNV_PRIME)
#define MQF_H2_STEP(h, c) ((__u32)((((h) ^ (__u8)(c)) * MQF_H2_MUL) ^ (((h) ^ (__u8)(c)) >> 15)))

#endif
