/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every metadata block, log record and
 * delta extent.
 *
 * crc32c(seed, buf, len) continues a running checksum: crc32c(crc32c(s, a), b) equals the
 * checksum of a followed by b.  Callers pick a distinct seed per block type so a block of one
 * type can never validate as another.  Uses the SSE4.2 instruction when the CPU has it and
 * it measures faster than a slicing table on first use (it does not under an emulator), the
 * table otherwise; both give identical results.  O(len), thread-safe, no locks.
 */
#ifndef DDSNAP_CRC32C_H
#define DDSNAP_CRC32C_H

#include "util/base.h"

u32 crc32c(u32 seed, const void *buf, size_t len);

enum crc32c_impl {
	CRC32C_SLICING, /* table-driven, eight bytes a step: any CPU */
	CRC32C_SSE42,	/* the crc32 instruction */
};

/* The path crc32c() uses, chosen on first use; and its name for logs ("sse4.2"). */
enum crc32c_impl crc32c_impl(void);
const char *crc32c_impl_name(enum crc32c_impl which);

/*
 * For tests and benchmarks: use @which from now on.  Returns false (nothing changed) when
 * the CPU lacks it.  Not to be called while other threads checksum.
 */
bool crc32c_force(enum crc32c_impl which);

#endif
