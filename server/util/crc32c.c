// SPDX-License-Identifier: GPL-2.0-only
/*
 * crc32c.c - CRC-32C in software (slicing-by-8) and with the SSE4.2 instruction.
 *
 * The polynomial is the reflected Castagnoli 0x82F63B78.  The running value is kept
 * inverted between calls as usual, so crc32c(0, "123456789", 9) == 0xE3069283.
 *
 * Which path.  On first use, when the CPU claims SSE4.2, both paths checksum the same
 * buffer a few times and the faster one is kept -- the way the Linux kernel picks its xor
 * and RAID-6 routines at boot.  Claiming an instruction is not running it fast: under an
 * emulator (QEMU's TCG, where the guest's crc32 instruction becomes a bit-at-a-time loop in
 * a helper) the table measures faster and is chosen, and the server checksums every chunk
 * it copies.  On this x86 host the instruction wins and is kept.  Both give identical
 * results, which the unit test checks over random buffers with each path forced.
 */
#include "util/crc32c.h"
#include <pthread.h>
#include <string.h>
#include <time.h>

#define CRC32C_POLY 0x82F63B78u

/* Bytes checksummed per timing run, and runs per path (the best run counts). */
#define CRC32C_CALIBRATE_BYTES (16 * 1024)
#define CRC32C_CALIBRATE_RUNS  3

static u32 crc_table[8][256];
static bool have_sse42;
static enum crc32c_impl impl = CRC32C_SLICING;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static u32 crc32c_sw(u32 crc, const u8 *p, size_t len)
{
	while (len >= 8) {
		u64 w;

		memcpy(&w, p, 8);
		w = htole64(w) ^ crc;
		crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		      crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
		      crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
		      crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static u32 crc32c_hw(u32 crc, const u8 *p, size_t len)
{
	u64 c = crc;

	while (len >= 8) {
		u64 w;

		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	crc = (u32)c;
	while (len--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

#if defined(__x86_64__) && !defined(FUZZING)
/* Nanoseconds of the best of CRC32C_CALIBRATE_RUNS runs of @fn over @buf. */
static u64 crc32c_time(u32 (*fn)(u32, const u8 *, size_t), const u8 *buf)
{
	u64 best = ~0ULL;
	volatile u32 sink = 0;

	for (int run = 0; run < CRC32C_CALIBRATE_RUNS; run++) {
		struct timespec a, b;
		u64 ns;

		clock_gettime(CLOCK_MONOTONIC, &a);
		sink ^= fn(sink, buf, CRC32C_CALIBRATE_BYTES);
		clock_gettime(CLOCK_MONOTONIC, &b);
		ns = (u64)(b.tv_sec - a.tv_sec) * 1000000000ULL + (u64)b.tv_nsec - (u64)a.tv_nsec;
		if (ns < best)
			best = ns;
	}
	return best;
}
#endif

static void crc32c_init(void)
{
	for (u32 i = 0; i < 256; i++) {
		u32 c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc_table[0][i] = c;
	}
	for (u32 i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
#if defined(__x86_64__) && !defined(FUZZING)
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
	if (have_sse42) {
		static u8 buf[CRC32C_CALIBRATE_BYTES];

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (u8)(i * 131 + (i >> 8));
		impl = crc32c_time(crc32c_hw, buf) <= crc32c_time(crc32c_sw, buf) ? CRC32C_SSE42
										  : CRC32C_SLICING;
	}
#endif
}

u32 crc32c(u32 seed, const void *buf, size_t len)
{
	u32 crc = ~seed;

	pthread_once(&crc_once, crc32c_init);
#if defined(__x86_64__)
	if (impl == CRC32C_SSE42)
		return ~crc32c_hw(crc, buf, len);
#endif
	return ~crc32c_sw(crc, buf, len);
}

enum crc32c_impl crc32c_impl(void)
{
	pthread_once(&crc_once, crc32c_init);
	return impl;
}

const char *crc32c_impl_name(enum crc32c_impl which)
{
	return which == CRC32C_SSE42 ? "sse4.2" : "slicing-by-8";
}

bool crc32c_force(enum crc32c_impl which)
{
	pthread_once(&crc_once, crc32c_init);
	if (which == CRC32C_SSE42 && !have_sse42)
		return false;
	impl = which;
	return true;
}
