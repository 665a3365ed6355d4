// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_crc32c.c - crc32c against published check values, chaining, and, with each path
 * forced, the table against the SSE4.2 instruction over random buffers and alignments.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "util/crc32c.h"

static void test_crc32c__check_value(void **state)
{
	/* The standard check value for CRC-32C, and RFC 3720 B.4 vectors. */
	u8 zeros[32] = {0}, ones[32];
	u8 inc[32];

	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = (u8)i;
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c(0, zeros, 32), 0x8A9136AAu);
	assert_int_equal(crc32c(0, ones, 32), 0x62A8AB43u);
	assert_int_equal(crc32c(0, inc, 32), 0x46DD794Eu);
}

static void test_crc32c__chaining_and_alignment(void **state)
{
	u8 buf[4096 + 16];

	srandom(1);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (u8)random();
	for (int trial = 0; trial < 500; trial++) {
		size_t off = (size_t)random() % 16, len = (size_t)random() % 4096;
		size_t cut = len ? (size_t)random() % len : 0;
		u32 whole = crc32c(7, buf + off, len);
		u32 parts = crc32c(crc32c(7, buf + off, cut), buf + off + cut, len - cut);

		assert_int_equal(whole, parts);
	}
}

static void test_crc32c__seed_changes_result(void **state)
{
	assert_int_not_equal(crc32c(1, "block", 5), crc32c(2, "block", 5));
}

/* Each path, forced, gives the check value and the same result as the other. */
static void test_crc32c__paths_agree(void **state)
{
	enum crc32c_impl chosen = crc32c_impl();
	static u8 buf[65536 + 16];
	bool hw;

	print_message("crc32c: first use chose %s\n", crc32c_impl_name(chosen));
	srandom(2);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (u8)random();
	assert_true(crc32c_force(CRC32C_SLICING));
	assert_int_equal(crc32c_impl(), CRC32C_SLICING);
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	hw = crc32c_force(CRC32C_SSE42);
	if (!hw) {
		print_message("crc32c: this CPU has no SSE4.2; only the table was checked\n");
		return;
	}
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	for (int trial = 0; trial < 300; trial++) {
		size_t off = (size_t)random() % 16, len = (size_t)random() % 65536;
		u32 seed = (u32)random(), a, b;

		assert_true(crc32c_force(CRC32C_SLICING));
		a = crc32c(seed, buf + off, len);
		assert_true(crc32c_force(CRC32C_SSE42));
		b = crc32c(seed, buf + off, len);
		assert_int_equal(a, b);
	}
	assert_true(crc32c_force(chosen));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c__check_value),
		cmocka_unit_test(test_crc32c__chaining_and_alignment),
		cmocka_unit_test(test_crc32c__seed_changes_result),
		cmocka_unit_test(test_crc32c__paths_agree),
	};

	return cmocka_run_group_tests_name("crc32c", tests, NULL, NULL);
}
