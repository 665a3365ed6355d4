// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_dmctl.c - parsing ddsnap table parameters as the kernel prints them; the ioctl
 * side of dmctl runs in the VM scenarios (this machine has no device-mapper).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "client/dmctl.h"

static void test_dmctl__parse_params(void **state)
{
	char sock[64];
	s64 tag;

	assert_int_equal(dmctl_parse_params("254:1 254:0 /run/zumastor/servers/vol -1", sock,
					    sizeof(sock), &tag),
			 0);
	assert_string_equal(sock, "/run/zumastor/servers/vol");
	assert_true(tag == DMCTL_TAG_ORIGIN);
	assert_int_equal(dmctl_parse_params("8:16 8:32 @vol 4294967293", sock, sizeof(sock), &tag),
			 0);
	assert_true(tag == 4294967293LL);
	assert_string_equal(sock, "@vol");

	assert_int_equal(dmctl_parse_params("8:16 8:32 @vol", sock, sizeof(sock), &tag), -EINVAL);
	assert_int_equal(dmctl_parse_params("8:16 8:32 @vol 7 extra", sock, sizeof(sock), &tag),
			 -EINVAL);
	assert_int_equal(dmctl_parse_params("8:16 8:32 @vol -2", sock, sizeof(sock), &tag),
			 -EINVAL);
	assert_int_equal(dmctl_parse_params("8:16 8:32 @vol 4294967295", sock, sizeof(sock), &tag),
			 -EINVAL);
	/* reserved (ddsnap_wire.h): never a snapshot */
	assert_int_equal(dmctl_parse_params("8:16 8:32 @vol 4294967294", sock, sizeof(sock), &tag),
			 -EINVAL);
	assert_int_equal(dmctl_parse_params("8:16 8:32 @vol 7x", sock, sizeof(sock), &tag),
			 -EINVAL);
	assert_int_equal(
		dmctl_parse_params("8:16 8:32 /a/very/long/socket/path/name 1", sock, 8, &tag),
		-ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dmctl__parse_params),
	};

	return cmocka_run_group_tests_name("dmctl", tests, NULL, NULL);
}
