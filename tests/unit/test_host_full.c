// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_host_full.c - a store file on a host filesystem that fills up (doc/misuse.md, "Host
 * disk full").  The test runs in its own mount namespace on a small tmpfs, so nothing
 * outside it sees the mount.
 *
 * What it pins down: a write that fails because the host is out of space is an I/O error
 * (-EIO), never -ENOSPC, which means "the snapshot store is full" to everything above
 * (the full-store policy, the CLI's messages).  A copy-out that failed so is retried by the
 * next request, and once space is freed the same volume serves it, without a restart.  A
 * txg sync that fails so stops the store (its changes refused with -EIO, never "full")
 * until it is reopened, which loses nothing acknowledged.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <sched.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <sys/mount.h>
#include <cmocka.h>
#include "blk/bdev.h"
#include "snap/volume.h"
#include "lib/srvfix.h"

#define CHUNK_SHIFT  14
#define ORIGIN_BYTES (16u << 20)
#define STORE_BYTES  (32u << 20)

static char dir[] = "/tmp/ddsnap-test-hostfull-XXXXXX";
static char filler[200];
static struct srvfix vf;

/* Fills the host filesystem up to all but @room bytes. */
static void fill_host(u64 room)
{
	static u8 buf[1 << 16];
	int fd = open(filler, O_CREAT | O_TRUNC | O_WRONLY, 0600);

	assert_true(fd >= 0);
	while (write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf))
		;
	assert_int_equal(ftruncate(fd, lseek(fd, 0, SEEK_END) - (off_t)room), 0);
	close(fd);
}

static void test_host_full__io_error_then_recovery(void **state)
{
	/* No timer sync while the host is full: the first part is about copy-outs alone. */
	struct volume_params p = {
		.snapstore = vf.store, .origin = vf.origin, .txg_timeout_ms = 600000};
	struct volume *v;
	u32 snap_state;
	char why[300];
	u64 gen, c;
	int err = 0;

	assert_int_equal(volume_open(&p, &v, why, sizeof(why)), 0);
	assert_int_equal(volume_create(v, 1, &gen), 0);
	fill_host(256 << 10);
	/* Copy-outs go to sparse store chunks until the host has no room left. */
	for (c = 0; c < ORIGIN_BYTES >> CHUNK_SHIFT && !err; c++) {
		struct volume_range r = {c, 1};

		err = volume_origin_write(v, &r, 1, &gen);
	}
	assert_int_equal(err, -EIO); /* not -ENOSPC: the snapstore has room */
	assert_true(c < ORIGIN_BYTES >> CHUNK_SHIFT);
	assert_int_equal(unlink(filler), 0);
	/* Space is back: the same volume serves the write that failed, and more. */
	for (u64 k = c - 1; k < c + 16; k++) {
		struct volume_range r = {k, 1};

		assert_int_equal(volume_origin_write(v, &r, 1, &gen), 0);
	}
	assert_int_equal(volume_create(v, 2, &gen), 0);
	assert_int_equal(volume_sync(v, &gen), 0);

	/* A sync while the host is full: the store stops, with I/O errors, not "full". */
	assert_int_equal(volume_create(v, 3, &gen), 0); /* acknowledged: in the intent log */
	fill_host(0);
	for (u64 k = c + 16; k < c + 64; k++) { /* allocate in the sparse part */
		struct volume_range r = {k, 1};

		volume_origin_write(v, &r, 1, &gen);
	}
	err = volume_sync(v, &gen);
	assert_int_equal(err, -EIO);
	assert_int_equal(volume_create(v, 4, &gen), -EIO);
	assert_int_equal(unlink(filler), 0);
	assert_int_not_equal(volume_close(v), 0);
	/* Reopened (a restart): every acknowledged snapshot is there. */
	assert_int_equal(volume_open(&p, &v, why, sizeof(why)), 0);
	for (u32 tag = 1; tag <= 3; tag++)
		assert_int_equal(volume_snap_state(v, tag, &snap_state, &gen), 0);
	assert_int_equal(volume_close(v), 0);
}

static int setup(void **state)
{
	/*
	 * A private mount namespace: the tmpfs below is this process's alone.  In a chroot (make
	 * fresh-test) "/" is no mount point and cannot be made private (EINVAL); the chroot's
	 * runner has already made everything private there.
	 */
	if (unshare(CLONE_NEWNS) ||
	    (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) && errno != EINVAL) ||
	    !mkdtemp(dir) || mount("tmpfs", dir, "tmpfs", 0, "size=8m"))
		return -1;
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	return srvfix_create(&vf, dir, "origin", CHUNK_SHIFT, ORIGIN_BYTES, STORE_BYTES, NULL);
}

static int teardown(void **state)
{
	umount(dir);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_full__io_error_then_recovery),
	};

	return cmocka_run_group_tests_name("host_full", tests, setup, teardown);
}
