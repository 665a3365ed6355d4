// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_cmdutil.c - the command line's number parsers accept exactly the documented forms and
 * refuse everything a libc parser would wrap or truncate into another value (issue 16:
 * `-c 18014398509482000k` was 16k, `-k 17179869185G` was 1G, port 99999 was 34463, tag
 * 4294967294 collided with a reserved value).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "commands.h"
#include "snap/volume.h"
#include "ddsnap_wire.h"

static void test_cmdutil__size(void **state)
{
	u64 v;

	assert_int_equal(cmd_parse_size("1048576", UINT64_MAX, &v), 0);
	assert_int_equal(v, 1048576);
	assert_int_equal(cmd_parse_size("512k", UINT64_MAX, &v), 0);
	assert_int_equal(v, 512 << 10);
	assert_int_equal(cmd_parse_size("16K", UINT64_MAX, &v), 0);
	assert_int_equal(v, 16 << 10);
	assert_int_equal(cmd_parse_size("10M", UINT64_MAX, &v), 0);
	assert_int_equal(v, 10 << 20);
	assert_int_equal(cmd_parse_size("2g", UINT64_MAX, &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(cmd_parse_size("3T", UINT64_MAX, &v), 0);
	assert_int_equal(v, 3ull << 40);
	assert_int_equal(cmd_parse_size("1m", 1 << 20, &v), 0);
	assert_int_equal(v, 1 << 20);
	assert_int_equal(cmd_parse_size("16777215T", UINT64_MAX, &v), 0);
	assert_int_equal(v, 16777215ull << 40);

	v = 7;
	/* the wraps: 2^64 + 2^30 and 2^64 + 14 KiB */
	assert_int_equal(cmd_parse_size("17179869185G", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("18014398509482000k", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("16777216T", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("18446744073709551616", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("99999999999999999999", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("2m", 1 << 20, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("-5", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("+5", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size(" 5", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("0x10", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("5MB", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("5q", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("k", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size("fast", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(cmd_parse_size(NULL, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(v, 7); /* untouched on refusal */
}

static void test_cmdutil__numbers(void **state)
{
	u64 u;
	s64 s;

	assert_int_equal(cmd_parse_u64("18446744073709551615", 0, UINT64_MAX, &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(cmd_parse_u64("18446744073709551616", 0, UINT64_MAX, &u), -EINVAL);
	assert_int_equal(cmd_parse_u64("5", 6, 9, &u), -EINVAL);
	assert_int_equal(cmd_parse_u64("10", 6, 9, &u), -EINVAL);
	assert_int_equal(cmd_parse_u64("7 ", 6, 9, &u), -EINVAL);

	assert_int_equal(cmd_parse_s64("-128", -128, 127, &s), 0);
	assert_int_equal(s, -128);
	assert_int_equal(cmd_parse_s64("127", -128, 127, &s), 0);
	assert_int_equal(s, 127);
	assert_int_equal(cmd_parse_s64("-129", -128, 127, &s), -EINVAL);
	assert_int_equal(cmd_parse_s64("128", -128, 127, &s), -EINVAL);
	assert_int_equal(cmd_parse_s64("-9223372036854775808", INT64_MIN, INT64_MAX, &s), 0);
	assert_true(s == INT64_MIN);
	assert_int_equal(cmd_parse_s64("9223372036854775808", INT64_MIN, INT64_MAX, &s), -EINVAL);
	assert_int_equal(cmd_parse_s64("-9223372036854775809", INT64_MIN, INT64_MAX, &s), -EINVAL);
	assert_int_equal(cmd_parse_s64("--1", INT64_MIN, INT64_MAX, &s), -EINVAL);
	assert_int_equal(cmd_parse_s64("-", INT64_MIN, INT64_MAX, &s), -EINVAL);
}

static void test_cmdutil__port_and_tag(void **state)
{
	u16 port;
	u32 tag;

	assert_int_equal(cmd_parse_port("1", &port), 0);
	assert_int_equal(port, 1);
	assert_int_equal(cmd_parse_port("65535", &port), 0);
	assert_int_equal(port, 65535);
	assert_int_equal(cmd_parse_port("0", &port), -EINVAL);
	assert_int_equal(cmd_parse_port("65536", &port), -EINVAL);
	assert_int_equal(cmd_parse_port("99999", &port), -EINVAL);
	assert_int_equal(cmd_parse_port("ssh", &port), -EINVAL);

	assert_int_equal(cmd_parse_tag("test", "0", &tag), 0);
	assert_int_equal(tag, 0);
	assert_int_equal(cmd_parse_tag("test", "4294967291", &tag), 0);
	assert_int_equal(tag, VOLUME_TAG_USER_MAX);
	/* the volume's own (a revert's point and marker, volume.h) */
	assert_int_equal(cmd_parse_tag("test", "4294967292", &tag), -EINVAL);
	assert_int_equal(cmd_parse_tag("test", "4294967293", &tag), -EINVAL);
	/* the reserved values: the control protocol's head and none, the wire's origin */
	assert_int_equal(cmd_parse_tag("test", "4294967294", &tag), -EINVAL);
	assert_int_equal(cmd_parse_tag("test", "4294967295", &tag), -EINVAL);
	assert_int_equal(cmd_parse_tag("test", "-1", &tag), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmdutil__size),
		cmocka_unit_test(test_cmdutil__numbers),
		cmocka_unit_test(test_cmdutil__port_and_tag),
	};

	return cmocka_run_group_tests_name("cmdutil", tests, NULL, NULL);
}
