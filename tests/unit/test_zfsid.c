// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_zfsid.c - NFS fsids: SHA-1 matches FIPS 180 test vectors, version 5 uuids match
 * RFC 4122's construction (checked against a uuid Python's uuid.uuid5 gives), the derived
 * fsid is pinned (it must never change: clients hold file handles), 10^5 volume/snapshot
 * pairs give 10^5 distinct fsids, and the collision check finds a clash in exports(5) files
 * and in `exportfs -v` output while ignoring numbers, other uuids and the export itself.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "util/base.h"
#include "zconf.h"
#include "zfsid.h"

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_zfsid__sha1_vectors(void **state)
{
	uint8_t sum[20];
	char s[41];
	char *million = malloc(1000000);

	zfsid_sha1("abc", 3, sum);
	hex(sum, 20, s);
	assert_string_equal(s, "a9993e364706816aba3e25717850c26c9cd0d89d");
	zfsid_sha1("", 0, sum);
	hex(sum, 20, s);
	assert_string_equal(s, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	zfsid_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, sum);
	hex(sum, 20, s);
	assert_string_equal(s, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	assert_non_null(million);
	memset(million, 'a', 1000000);
	zfsid_sha1(million, 1000000, sum);
	hex(sum, 20, s);
	assert_string_equal(s, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	free(million);
}

static void test_zfsid__uuid5(void **state)
{
	uint8_t dns[16], u[16];
	char s[37];

	/* Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org") */
	assert_int_equal(zconf_parse_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8", dns), 0);
	zfsid_uuid5(dns, "python.org", 10, u);
	zconf_format_uuid(u, s);
	assert_string_equal(s, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

static void test_zfsid__pinned(void **state)
{
	uint8_t vol[16], f[16], g[16];
	char s[37];

	/* These values are part of the on-box format: changing them changes every export's
	 * identity and gives every NFS client ESTALE. */
	assert_int_equal(zconf_parse_uuid("62fc0be2-ffb5-4447-aa66-502396b26ae8", vol), 0);
	zfsid_derive(vol, ZFSID_ORIGIN, f);
	zconf_format_uuid(f, s);
	assert_string_equal(s, "07be7aac-e887-53e0-8920-c43c94931d0b");
	zfsid_derive(vol, 1796551200, g); /* @GMT-2026.12.06-10.00.00 */
	assert_memory_not_equal(f, g, 16);
	zfsid_derive(vol, 1796551200, f);
	assert_memory_equal(f, g, 16); /* deterministic */
	assert_int_equal(f[6] >> 4, 5);
	assert_int_equal(f[8] >> 6, 2);
}

static int cmp16(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

static void test_zfsid__unique(void **state)
{
	enum { VOLS = 1000, SNAPS = 100 };
	uint8_t(*all)[16] = malloc((size_t)VOLS * SNAPS * 16);
	uint8_t vol[16];
	u64 seed = 0x1d5f00d;
	size_t n = 0;

	assert_non_null(all);
	for (int v = 0; v < VOLS; v++) {
		/* half random uuids, half all zero but a counter in the last two bytes (uuids
		 * that differ in a bit or two) */
		for (int i = 0; i < 16; i++)
			vol[i] = v % 2 ? (uint8_t)xorshift64(&seed) : 0;
		if (v % 2 == 0) {
			vol[14] = (uint8_t)(v >> 8);
			vol[15] = (uint8_t)v;
		}
		for (int s = 0; s < SNAPS; s++)
			zfsid_derive(vol, s == 0 ? ZFSID_ORIGIN : 1796551200ull + (u64)s, all[n++]);
	}
	qsort(all, n, 16, cmp16);
	for (size_t i = 1; i < n; i++)
		if (!memcmp(all[i - 1], all[i], 16))
			fail_msg("fsid collision at %zu of %zu", i, n);
	assert_int_equal(n, 100000);
	free(all);
}

static void test_zfsid__check_free(void **state)
{
	static const char exports[] =
		"# /etc/exports.d/other.exports\n"
		"/srv/a\t10.0.0.0/8(rw,fsid=1234,no_subtree_check)\n"
		"/srv/b  host1(ro,fsid=62FC0BE2FFB54447AA66502396B26AE8) host2(ro)\n"
		"/srv/c -fsid=11111111-2222-3333-4444-555555555555 *(rw)\n";
	static const char exportfs_v[] =
		"/run/zumastor/snapshot/home/@GMT-2026.12.06-10.00.00\n"
		"\t\t127.0.0.1(sync,wdelay,hide,no_subtree_check,fsid=aaaaaaaa-bbbb-cccc-dddd-"
		"eeeeeeeeeeee,sec=sys,ro,secure,root_squash,no_all_squash)\n";
	uint8_t u[16];
	char clash[256];

	assert_int_equal(zconf_parse_uuid("62fc0be2-ffb5-4447-aa66-502396b26ae8", u), 0);
	assert_int_equal(zfsid_check_free(exports, u, NULL, clash, sizeof(clash)), -EEXIST);
	assert_string_equal(clash, "/srv/b");
	/* the export being rewritten may keep its own fsid */
	assert_int_equal(zfsid_check_free(exports, u, "/srv/b", clash, sizeof(clash)), 0);
	assert_int_equal(zconf_parse_uuid("11111111222233334444555555555555", u), 0);
	assert_int_equal(zfsid_check_free(exports, u, NULL, clash, sizeof(clash)), -EEXIST);
	assert_string_equal(clash, "/srv/c");
	assert_int_equal(zconf_parse_uuid("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", u), 0);
	assert_int_equal(zfsid_check_free(exports, u, NULL, clash, sizeof(clash)), 0);
	assert_int_equal(zfsid_check_free(exportfs_v, u, NULL, clash, sizeof(clash)), -EEXIST);
	assert_string_equal(clash, "/run/zumastor/snapshot/home/@GMT-2026.12.06-10.00.00");
	/* a commented-out line and a word that only ends in fsid= do not count */
	assert_int_equal(zfsid_check_free("#/x h(fsid=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee)\n"
					  "/y h(myfsid=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee)\n",
					  u, NULL, clash, sizeof(clash)),
			 0);
	assert_int_equal(zfsid_check_free("", u, NULL, clash, sizeof(clash)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zfsid__sha1_vectors), cmocka_unit_test(test_zfsid__uuid5),
		cmocka_unit_test(test_zfsid__pinned),	    cmocka_unit_test(test_zfsid__unique),
		cmocka_unit_test(test_zfsid__check_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
