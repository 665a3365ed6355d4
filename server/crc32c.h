/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every metadata block, log record and
 * delta extent.
 *
 * crc32c(seed, buf, len) continues a running checksum: crc32c(crc32c(s, a), b) equals the
 * checksum of a followed by b.  Callers pick a distinct seed per block type so a block of one
 * type can never validate as another.  Uses the SSE4.2 instruction when the CPU has it,
 * a slicing table otherwise; both give identical results.  O(len), thread-safe, no locks.
 */
#ifndef DDSNAP_CRC32C_H
#define DDSNAP_CRC32C_H

#include "base.h"

u32 crc32c(u32 seed, const void *buf, size_t len);

#endif
