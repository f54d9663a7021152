/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Maps the few types and helpers the protocol core needs onto the kernel or a freestanding userspace. */
#ifndef MQC_COMPAT_H
#define MQC_COMPAT_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/errno.h>
#include <linux/string.h>
#else
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>	/* only the E* macros; no libc function is called */
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
#endif

#define mqc_memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#define mqc_memset(d, c, n) __builtin_memset((d), (c), (n))
#define mqc_memcmp(a, b, n) __builtin_memcmp((a), (b), (n))

#endif /* MQC_COMPAT_H */
