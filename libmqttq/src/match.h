/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Reference MQTT topic matcher: the semantics the BPF filter must agree with, and its fallback. */
#ifndef MQTTQ_MATCH_H
#define MQTTQ_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQF_HIDDEN __attribute__((visibility("hidden")))

/* MQTT strings carry a 16-bit length, so no filter or topic can be longer. */
#define MQF_STR_MAX 65535u

/* Filter ids are 1..MQF_ID_MAX; 0 means "no filter matched". */
#define MQF_ID_MAX 0xfffffff0u

/*
 * A topic filter is valid when it is 1..MQF_STR_MAX bytes, holds no NUL, every
 * '+' is a whole level and '#' is a whole level and the last one.
 */
MQF_HIDDEN bool mqf_filter_valid(const char *filter, size_t len);

/* A topic name is valid when it is 1..MQF_STR_MAX bytes with no '+', '#' or NUL. */
MQF_HIDDEN bool mqf_topic_valid(const char *topic, size_t len);

/*
 * True when @topic matches @filter by MQTT 3.1.1/5.0 section 4.7 rules.
 * Either one invalid means no match.
 */
MQF_HIDDEN bool mqf_topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen);

/*
 * A set of (filter, id) pairs answering "lowest id whose filter matches",
 * indexed by a trie over levels: the cost of a match grows with the topic's
 * levels and the filters it meets, not with the set's size. Not thread-safe:
 * match may run in several threads only while nothing adds or removes.
 */
struct mqf_set;

MQF_HIDDEN struct mqf_set *mqf_set_new(void);
MQF_HIDDEN void mqf_set_free(struct mqf_set *set);
/* Returns -EINVAL for an invalid filter or id, -EEXIST for an id in use, -ENOMEM. */
MQF_HIDDEN int mqf_set_add(struct mqf_set *set, const char *filter, size_t len, uint32_t id);
/* Returns -ENOENT when no filter has @id. */
MQF_HIDDEN int mqf_set_remove(struct mqf_set *set, uint32_t id);
/* Lowest id of a filter matching @topic, 0 when none (or the topic is invalid). */
MQF_HIDDEN uint32_t mqf_set_match(const struct mqf_set *set, const char *topic, size_t len);
/* The same answer by testing every filter in turn: the reference the trie is tested against. */
MQF_HIDDEN uint32_t mqf_set_match_scan(const struct mqf_set *set, const char *topic, size_t len);
MQF_HIDDEN size_t mqf_set_count(const struct mqf_set *set);
/*
 * The @i-th filter in ascending id order (0 <= i < count); the string is not
 * NUL-terminated. Returns -ENOENT past the end.
 */
MQF_HIDDEN int mqf_set_get(const struct mqf_set *set, size_t i, const char **filter, size_t *len,
			   uint32_t *id);
/* A deep copy, or NULL when out of memory. */
MQF_HIDDEN struct mqf_set *mqf_set_clone(const struct mqf_set *set);

#endif
