// SPDX-License-Identifier: GPL-2.0-only
/*
 * crc32c.c - CRC-32C in software (slicing-by-8) and with SSE4.2 when available.
 *
 * The polynomial is the reflected Castagnoli 0x82F63B78.  The running value is kept
 * inverted between calls as usual, so crc32c(0, "123456789", 9) == 0xE3069283.
 * The hardware path is chosen once, on first use, via __builtin_cpu_supports.
 */
#include "crc32c.h"
#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static u32 crc_table[8][256];
static bool have_sse42;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

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
#endif
}

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

u32 crc32c(u32 seed, const void *buf, size_t len)
{
	u32 crc = ~seed;

	pthread_once(&crc_once, crc32c_init);
#if defined(__x86_64__)
	if (have_sse42)
		return ~crc32c_hw(crc, buf, len);
#endif
	return ~crc32c_sw(crc, buf, len);
}
