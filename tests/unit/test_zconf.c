// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_zconf.c - every setting of the zumastor config database accepts the values the
 * monitor writes (and gives them back unchanged: check is idempotent on canonical values)
 * and refuses each kind of bad value with a rule that names what is allowed.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "util/base.h"
#include "zconf.h"

struct good {
	const char *setting, *value, *canonical;
};

struct bad {
	const char *setting, *value;
};

static const struct good goods[] = {
	{"origin", "/dev/sdb", "/dev/sdb"},
	{"origin", "/dev/disk/by-id/ata-Samsung_SSD_860-S3Z9NB0K12345X",
	 "/dev/disk/by-id/ata-Samsung_SSD_860-S3Z9NB0K12345X"},
	{"snapstore", "/dev/disk/by-path/pci-0000:00:1f.2-ata-1",
	 "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"},
	{"metadev", "/dev/mapper/vg-meta", "/dev/mapper/vg-meta"},
	{"chunk", "16k", "16384"},
	{"chunk", "4096", "4096"},
	{"chunk", "1m", "1048576"},
	{"chunk", "64K", "65536"},
	{"mountpoint", "/srv/home", "/srv/home"},
	{"fs-options", "noatime,data=ordered", "noatime,data=ordered"},
	{"fs-options", "rw,user_xattr", "rw,user_xattr"},
	{"schedule/frequent", "15:4", "15:4"},
	{"schedule/frequent", "60:1", "60:1"},
	{"schedule/hourly", "24", "24"},
	{"schedule/hourly", "8784", "8784"},
	{"schedule/daily", "7", "7"},
	{"schedule/weekly", "520", "520"},
	{"schedule/monthly", "1", "1"},
	{"export/nfs", "192.168.1.0/24", "192.168.1.0/24"},
	{"export/nfs", "*.example.com,@trusted:rw,no_subtree_check,sec=krb5p",
	 "*.example.com,@trusted:rw,no_subtree_check,sec=krb5p"},
	{"export/nfs", "host1:anonuid=1000,anongid=100", "host1:anonuid=1000,anongid=100"},
	{"export/samba", "home", "home"},
	{"export/samba", "Home_Share-2$:ro,guest", "Home_Share-2$:ro,guest"},
	{"uuid", "62FC0BE2FFB54447AA66502396B26AE8", "62fc0be2-ffb5-4447-aa66-502396b26ae8"},
	{"fsid", "62fc0be2-ffb5-4447-aa66-502396b26ae8", "62fc0be2-ffb5-4447-aa66-502396b26ae8"},
	/* replication */
	{"targets/nas2/host", "nas2", "nas2"},
	{"targets/nas2-home/host", "root@nas2.example.com", "root@nas2.example.com"},
	{"targets/b/host", "fe80::1", "fe80::1"},
	{"targets/nas2/volume", "home", "home"},
	{"targets/nas2/period", "60", "60"},
	{"targets/nas2/period", "44640", "44640"},
	{"targets/nas2/period", "after-each-snapshot", "after-each-snapshot"},
	{"targets/nas2/rate", "20m", "20971520"},
	{"targets/nas2/rate", "1024", "1024"},
	{"targets/nas2/codec", "zstd:3", "zstd:3"},
	{"targets/nas2/codec", "raw", "raw"},
	{"targets/nas2/ssh-key", "/var/lib/zumastor/ssh/id_ed25519",
	 "/var/lib/zumastor/ssh/id_ed25519"},
	{"targets/nas2/transport", "ssh", "ssh"},
	{"targets/nas2/transport", "tcp:9000", "tcp:9000"},
	{"targets/nas2/lag-warn", "120", "120"},
	{"targets/nas2/lag-crit", "527040", "527040"},
	{"source/host", "nas1", "nas1"},
	{"source/volume", "home", "home"},
	{"source/lag-warn", "90", "90"},
};

static const struct bad bads[] = {
	/* replication */
	{"targets/nas2/host", ""},
	{"targets/nas2/host", "-oProxyCommand=sh"}, /* an ssh option */
	{"targets/nas2/host", "@nas2"},
	{"targets/nas2/host", "a b"},
	{"targets/nas2/host", "nas2;reboot"},
	{"targets/nas2/volume", "a/b"},
	{"targets/nas2/period", "0"},
	{"targets/nas2/period", "44641"},
	{"targets/nas2/period", "hourly"},
	{"targets/nas2/rate", "100"}, /* under 1k */
	{"targets/nas2/rate", "5q"},
	{"targets/nas2/rate", "101g"},
	{"targets/nas2/codec", "lz4"},
	{"targets/nas2/codec", "raw:3"},
	{"targets/nas2/codec", "zlib:10"},
	{"targets/nas2/ssh-key", "id_ed25519"},
	{"targets/nas2/transport", "tcp"},
	{"targets/nas2/transport", "tcp:0"},
	{"targets/nas2/transport", "udp:9000"},
	{"targets/nas2/lag-warn", "0"},
	{"source/host", "root@nas1"}, /* the name in the key line, not a destination */
	{"source/host", "-x"},
	{"source/volume", ""},
	/* devices */
	{"origin", ""},
	{"origin", "sdb"}, /* relative */
	{"origin", "/"},
	{"origin", "/dev/sd b"},  /* space */
	{"origin", "/dev/sdb\n"}, /* newline */
	{"origin", "/dev/sd\tb"},
	{"origin", "/dev/../etc/passwd"}, /* .. */
	{"origin", "/dev/./sdb"},
	{"origin", "/dev//sdb"},
	{"origin", "/dev/sdb/"},
	{"origin", "/dev/.."},
	{"origin", "/dev/sdb;rm"},
	{"origin", "/dev/$(x)"},
	{"origin", "/dev/sdb'"},
	{"origin", "/dev/\xc3\xa9"}, /* non-ASCII */
	{"snapstore", "relative/path"},
	{"metadev", "/dev/`x`"},
	/* chunk */
	{"chunk", ""},
	{"chunk", "0"},
	{"chunk", "3000"}, /* not a power of two */
	{"chunk", "2048"}, /* too small */
	{"chunk", "2m"},   /* too large */
	{"chunk", "16kb"},
	{"chunk", "-16k"},
	{"chunk", "016k"}, /* leading zero */
	{"chunk", "k"},
	{"chunk", "99999999999999999999"},
	/* mountpoint */
	{"mountpoint", "/"},
	{"mountpoint", "srv"},
	{"mountpoint", "/srv/my home"},
	{"mountpoint", "/srv/../etc"},
	/* fs-options */
	{"fs-options", ""},
	{"fs-options", "ro"}, /* the origin is writable */
	{"fs-options", "noatime,ro"},
	{"fs-options", "noatime,,sync"},
	{"fs-options", ",noatime"},
	{"fs-options", "noatime,"},
	{"fs-options", "noatime sync"},
	{"fs-options", "x;reboot"},
	/* schedule */
	{"schedule/frequent", "15"}, /* no COUNT */
	{"schedule/frequent", ":4"},
	{"schedule/frequent", "15:"},
	{"schedule/frequent", "7:4"}, /* 7 does not divide 60 */
	{"schedule/frequent", "0:4"},
	{"schedule/frequent", "90:4"},
	{"schedule/frequent", "15:0"},
	{"schedule/frequent", "15:1441"},
	{"schedule/frequent", "15:4:2"},
	{"schedule/hourly", "0"},
	{"schedule/hourly", "-3"},
	{"schedule/hourly", "+3"},
	{"schedule/hourly", "8785"},
	{"schedule/hourly", "24h"},
	{"schedule/hourly", " 24"},
	{"schedule/hourly", "024"},
	{"schedule/hourly", "4294967320"}, /* overflows 32 bits to 24 */
	{"schedule/daily", "3661"},
	{"schedule/weekly", "521"},
	{"schedule/monthly", "1201"},
	{"schedule/monthly", ""},
	/* nfs */
	{"export/nfs", ""},
	{"export/nfs", ":rw"}, /* no clients */
	{"export/nfs", "host one"},
	{"export/nfs", "host1(rw)"},	/* exports(5) syntax is the monitor's to write */
	{"export/nfs", "host1:fsid=7"}, /* fsid is derived, never given */
	{"export/nfs", "host1:fsid=root"},
	{"export/nfs", "host1:rw,,sync"},
	{"export/nfs", "host1:"},
	{"export/nfs", "host1:frobnicate"},
	{"export/nfs", "host1:anonuid="},
	{"export/nfs", ",host1"},
	{"export/nfs", "-host1"},
	{"export/nfs", "host1:rw\nx"},
	/* samba */
	{"export/samba", ""},
	{"export/samba", ":ro"},
	{"export/samba", "my share"},
	{"export/samba", "share]"},
	{"export/samba", "[share"},
	{"export/samba", "global"},
	{"export/samba", "HOMES"},
	{"export/samba", "printers"},
	{"export/samba", ".hidden"},
	{"export/samba", "-x"},
	{"export/samba", "share:path=/etc"}, /* only the listed words */
	{"export/samba", "share:ro,"},
	{"export/samba", "a123456789a123456789a123456789a123456789a123456789a123456789a123456789"
			 "a123456789x"}, /* 81 characters */
	/* uuids */
	{"uuid", ""},
	{"uuid", "62fc0be2-ffb5-4447-aa66-502396b26ae"},   /* 31 digits */
	{"uuid", "62fc0be2-ffb5-4447-aa66-502396b26ae80"}, /* 33 */
	{"uuid", "62fc0be2-ffb5-4447-aa66-502396b26aeg"},
	{"uuid", "00000000-0000-0000-0000-000000000000"},
	{"fsid", "1234"},
	{"fsid", "root"},
};

static void test_zconf__good_values(void **state)
{
	char out[ZCONF_VALUE_MAX], again[ZCONF_VALUE_MAX];
	const char *allowed;

	for (size_t i = 0; i < ARRAY_SIZE(goods); i++) {
		int err = zconf_check(goods[i].setting, goods[i].value, out, sizeof(out), &allowed);

		if (err)
			fail_msg("%s '%s' refused: %s", goods[i].setting, goods[i].value, allowed);
		assert_string_equal(out, goods[i].canonical);
		assert_int_equal(zconf_check(goods[i].setting, out, again, sizeof(again), &allowed),
				 0);
		assert_string_equal(again, out);
	}
}

static void test_zconf__bad_values(void **state)
{
	char out[ZCONF_VALUE_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(bads); i++) {
		const char *allowed = NULL;
		int err = zconf_check(bads[i].setting, bads[i].value, out, sizeof(out), &allowed);

		if (err != -EINVAL)
			fail_msg("%s '%s' accepted (%d)", bads[i].setting, bads[i].value, err);
		assert_non_null(allowed);
		assert_true(strlen(allowed) > 20); /* a rule, not a bare "invalid" */
	}
}

static void test_zconf__long_and_unknown(void **state)
{
	char out[ZCONF_VALUE_MAX], big[ZCONF_VALUE_MAX + 10];
	const char *allowed;

	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = 0;
	assert_int_equal(zconf_check("origin", big, out, sizeof(out), &allowed), -EINVAL);
	big[ZCONF_PATH_MAX + 1] = 0; /* one past the path limit */
	assert_int_equal(zconf_check("origin", big, out, sizeof(out), &allowed), -EINVAL);
	big[ZCONF_PATH_MAX] = 0;
	assert_int_equal(zconf_check("origin", big, out, sizeof(out), &allowed), 0);
	assert_int_equal(zconf_check("colour", "blue", out, sizeof(out), &allowed), -ENOENT);
	assert_non_null(strstr(allowed, "schedule/hourly"));
	/* a target's unknown key, a bad target name, a key without a target */
	assert_int_equal(zconf_check("targets/nas2/colour", "blue", out, sizeof(out), &allowed),
			 -ENOENT);
	assert_non_null(strstr(allowed, "ssh-key"));
	assert_int_equal(zconf_check("targets/my nas/host", "nas2", out, sizeof(out), &allowed),
			 -ENOENT);
	assert_int_equal(zconf_check("targets/host", "nas2", out, sizeof(out), &allowed), -ENOENT);
	assert_int_equal(zconf_check("source/period", "60", out, sizeof(out), &allowed), -ENOENT);
}

static void test_zconf__volume_names(void **state)
{
	static const char *const good[] = {"home", "vol1", "Home_2.backup", "a", "x-y+z", "9lives"};
	static const char *const bad[] = {
		"",
		"a/b",
		"/abs",
		"a b",
		".hidden",
		"..",
		"-rf",
		"+x",
		"vol(7)",
		"vol@GMT",
		"vol:1",
		"vol#1",
		"vol=1",
		"a\tb",
		"a\nb",
		"a\\b",
		"caf\xc3\xa9",
		"v*",
		"v?",
		"v'",
		"v\"",
		"a123456789a123456789a123456789a123456789a123456789a123456789a12345", /* 65 */
	};
	const char *allowed;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		assert_int_equal(zconf_volume_name(good[i], &allowed), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (zconf_volume_name(bad[i], &allowed) != -EINVAL)
			fail_msg("volume name '%s' accepted", bad[i]);
	assert_non_null(strstr(allowed, "64"));
}

static void test_zconf__uuid_format(void **state)
{
	uint8_t u[16];
	char s[37];

	assert_int_equal(zconf_parse_uuid("62fc0be2-ffb5-4447-aa66-502396b26ae8", u), 0);
	zconf_format_uuid(u, s);
	assert_string_equal(s, "62fc0be2-ffb5-4447-aa66-502396b26ae8");
	assert_int_equal(zconf_parse_uuid("62-fc0be2ffb54447aa66502396b26ae8", u), 0);
	zconf_format_uuid(u, s);
	assert_string_equal(s, "62fc0be2-ffb5-4447-aa66-502396b26ae8");
	assert_int_equal(zconf_parse_uuid("62fc0be2 ffb5-4447-aa66-502396b26ae8", u), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zconf__good_values),
		cmocka_unit_test(test_zconf__bad_values),
		cmocka_unit_test(test_zconf__long_and_unknown),
		cmocka_unit_test(test_zconf__volume_names),
		cmocka_unit_test(test_zconf__uuid_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
