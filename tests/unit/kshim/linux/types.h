/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kshim/linux/types.h - the kernel's short integer types on top of the uapi header, so that
 * kernel/ddsnap-proto.c compiles in userspace (test_kproto, fuzz_kproto).  Only what that file
 * uses; nothing here may change its meaning.
 */
#ifndef KSHIM_LINUX_TYPES_H
#define KSHIM_LINUX_TYPES_H
#include_next <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t s32;
typedef int64_t s64;
#endif
