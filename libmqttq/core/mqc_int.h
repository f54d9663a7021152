/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Helpers the codec shares with the engine inside the protocol core; not part of the contract. */
#ifndef MQC_INT_H
#define MQC_INT_H

#include "mqc.h"

/* Where a property may appear: a packet type, or MQC_W_WILL for will properties. */
#define MQC_W_WILL 0

/*
 * Validate the property block p[0..len) for packet type `where` (strict:
 * unknown, misplaced, duplicated and out-of-range properties are errors).
 * Fills out when non-NULL; *seen gets the bit (1 << id) of every id found.
 */
int mqc_props_parse(const u8 *p, u32 len, u8 where, struct mqc_props *out, u64 *seen);

/* SUBSCRIBE/UNSUBSCRIBE topic filter check: 0, MQC_E_TOPIC_EMPTY/WILD or MQC_E_UTF8*. */
int mqc_filter_check(const u8 *s, u32 len);

/* Read a Variable Byte Integer of at most 4 bytes; returns its length or a negative MQC_E_*. */
int mqc_varint_get(const u8 *p, u32 len, u32 *val);
/* Write v (< 2^28) at p; returns the length (1..4). */
u32 mqc_varint_put(u8 *p, u32 v);

/* Fixed-header flags for the packet type: 0, MQC_E_FLAGS, MQC_E_QOS3, MQC_E_DUP_QOS0. */
int mqc_check_flags(u8 type, u8 flags);

/* Reason codes valid in each acknowledgement on v5. */
bool mqc_reason_ok(u8 type, u8 reason);

#endif /* MQC_INT_H */
