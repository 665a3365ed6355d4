// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_bdev.c - the block device backends: range checks, the file backend with and without
 * O_DIRECT (and its fallback on tmpfs), and the faulty device's durability model (crash drops
 * what was not flushed, torn writes, failed writes, a dying disk, corruption, counters).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>
#include "blk/bdev.h"

#define SEC BDEV_SECTOR

static void *aligned_buf(size_t len, int fill)
{
	void *p = NULL;

	if (posix_memalign(&p, BDEV_ALIGN, len))
		abort();
	memset(p, fill, len);
	return p;
}

static void check_ranges(struct bdev *b)
{
	u8 *buf = aligned_buf(2 * SEC, 0);

	assert_int_equal(bdev_read(b, buf, SEC, 1), -EINVAL);
	assert_int_equal(bdev_write(b, buf, 100, 0), -EINVAL);
	assert_int_equal(bdev_write(b, buf, SEC, b->size), -EINVAL);
	assert_int_equal(bdev_read(b, buf, 2 * SEC, b->size - SEC), -EINVAL);
	assert_int_equal(bdev_read(b, buf, SEC, b->size - SEC), 0);
	free(buf);
}

static void test_bdev__ram_roundtrip(void **state)
{
	struct bdev *b = bdev_ram_create(1000); /* rounds up to 1024 */
	u8 *w = aligned_buf(SEC, 0xab), *r = aligned_buf(SEC, 0);

	assert_int_equal(b->size, 1024);
	assert_int_equal(bdev_read(b, r, SEC, SEC), 0);
	assert_int_equal(r[0], 0);
	assert_int_equal(bdev_write(b, w, SEC, SEC), 0);
	assert_int_equal(bdev_flush(b), 0);
	assert_int_equal(bdev_read(b, r, SEC, SEC), 0);
	assert_memory_equal(w, r, SEC);
	check_ranges(b);
	bdev_close(b);
	free(w);
	free(r);
}

/* Writes through one open, reads back through another, with aligned and unaligned buffers. */
static void file_roundtrip(const char *dir, unsigned flags)
{
	char path[256];
	struct bdev *b;
	u8 *w = aligned_buf(3 * BDEV_ALIGN, 0), *r = aligned_buf(3 * BDEV_ALIGN, 0);
	int fd;

	snprintf(path, sizeof(path), "%s/test_bdev.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		free(w);
		free(r);
		return; /* no such directory here: nothing to test */
	}
	assert_int_equal(ftruncate(fd, 1024 * 1024 + 100), 0);
	close(fd);
	for (size_t i = 0; i < 3 * BDEV_ALIGN; i++)
		w[i] = (u8)(i * 7 + 3);

	assert_int_equal(bdev_open(path, flags, &b), 0);
	assert_int_equal(b->size, 1024 * 1024); /* rounded down to a sector */
	assert_int_equal(bdev_write(b, w, 2 * BDEV_ALIGN, 8192), 0);
	/* An unaligned buffer goes through a bounce buffer, not an error. */
	assert_int_equal(bdev_write(b, w + 1, SEC, 65536), 0);
	assert_int_equal(bdev_flush(b), 0);
	check_ranges(b);
	bdev_close(b);

	assert_int_equal(bdev_open(path, flags | BDEV_RDONLY, &b), 0);
	assert_int_equal(bdev_read(b, r, 2 * BDEV_ALIGN, 8192), 0);
	assert_memory_equal(w, r, 2 * BDEV_ALIGN);
	assert_int_equal(bdev_read(b, r + 1, SEC, 65536), 0);
	assert_memory_equal(w + 1, r + 1, SEC);
	assert_int_not_equal(bdev_write(b, w, SEC, 0), 0); /* read-only */
	bdev_close(b);
	unlink(path);
	free(w);
	free(r);
}

static void test_bdev__file_direct(void **state)
{
	file_roundtrip("/tmp", 0);
}

static void test_bdev__file_buffered(void **state)
{
	file_roundtrip("/tmp", BDEV_BUFFERED);
}

static void test_bdev__file_tmpfs_fallback(void **state)
{
	file_roundtrip("/dev/shm", 0); /* tmpfs refuses O_DIRECT at open */
}

static void test_bdev__open_errors(void **state)
{
	char path[] = "/tmp/test_bdev_empty.XXXXXX";
	struct bdev *b = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(bdev_open(path, 0, &b), -EINVAL); /* size 0 */
	unlink(path);
	assert_int_equal(bdev_open("/nonexistent/dir/x", 0, &b), -ENOENT);
	assert_int_equal(bdev_open("/tmp", 0, &b), -EISDIR);
}

static void test_bdev__faulty_crash_drops_unflushed(void **state)
{
	struct bdev *b = bdev_faulty_create(64 * SEC, 1);
	u8 *a = aligned_buf(4 * SEC, 0xaa), *c = aligned_buf(4 * SEC, 0xcc),
	   *r = aligned_buf(4 * SEC, 0);

	assert_int_equal(bdev_write(b, a, 4 * SEC, 0), 0);
	assert_int_equal(bdev_flush(b), 0);
	assert_int_equal(bdev_write(b, c, 4 * SEC, 0), 0);
	assert_int_equal(bdev_write(b, c, 2 * SEC, 10 * SEC), 0);
	assert_int_equal(bdev_faulty_unflushed(b), 6);
	assert_int_equal(bdev_read(b, r, 4 * SEC, 0), 0);
	assert_memory_equal(r, c, 4 * SEC); /* readers see unflushed writes */

	bdev_faulty_crash(b, false);
	assert_int_equal(bdev_faulty_unflushed(b), 0);
	assert_int_equal(bdev_read(b, r, 4 * SEC, 0), 0);
	assert_memory_equal(r, a, 4 * SEC);
	assert_int_equal(bdev_read(b, r, 2 * SEC, 10 * SEC), 0);
	for (int i = 0; i < 2 * SEC; i++)
		assert_int_equal(r[i], 0);

	/* The device stays usable after the crash. */
	assert_int_equal(bdev_write(b, c, SEC, 0), 0);
	assert_int_equal(bdev_flush(b), 0);
	bdev_faulty_crash(b, false);
	assert_int_equal(bdev_read(b, r, SEC, 0), 0);
	assert_memory_equal(r, c, SEC);
	bdev_close(b);
	free(a);
	free(c);
	free(r);
}

static void test_bdev__faulty_crash_keep_random(void **state)
{
	enum { N = 256 };
	struct bdev *b = bdev_faulty_create(N * SEC, 7);
	u8 *w = aligned_buf(N * SEC, 0x55), *r = aligned_buf(N * SEC, 0);
	int kept = 0;

	assert_int_equal(bdev_write(b, w, N * SEC, 0), 0);
	bdev_faulty_crash(b, true);
	assert_int_equal(bdev_read(b, r, N * SEC, 0), 0);
	for (int s = 0; s < N; s++) {
		u8 v = r[s * SEC];

		assert_true(v == 0 || v == 0x55);
		for (int i = 1; i < SEC; i++) /* sector granularity: never half a sector */
			assert_int_equal(r[s * SEC + i], v);
		kept += v == 0x55;
	}
	assert_true(kept > N / 4 && kept < 3 * N / 4);
	/* What survived is durable now: a second crash changes nothing. */
	bdev_faulty_crash(b, false);
	assert_int_equal(bdev_read(b, w, N * SEC, 0), 0);
	assert_memory_equal(w, r, N * SEC);
	bdev_close(b);
	free(w);
	free(r);
}

static void test_bdev__faulty_fail_nth_write(void **state)
{
	struct bdev *b = bdev_faulty_create(16 * SEC, 2);
	u8 *w = aligned_buf(SEC, 0x11), *r = aligned_buf(SEC, 0);
	struct bdev_counters ctr;

	bdev_faulty_fail_write(b, 3);
	assert_int_equal(bdev_write(b, w, SEC, 0), 0);
	assert_int_equal(bdev_write(b, w, SEC, SEC), 0);
	assert_int_equal(bdev_write(b, w, SEC, 2 * SEC), -EIO);
	assert_int_equal(bdev_write(b, w, SEC, 3 * SEC), 0); /* disarmed */
	assert_int_equal(bdev_read(b, r, SEC, 2 * SEC), 0);
	assert_int_equal(r[0], 0); /* the failed write changed nothing */
	bdev_faulty_counters(b, &ctr);
	assert_int_equal(ctr.writes, 3);
	assert_int_equal(ctr.bytes_written, 3 * SEC);
	assert_int_equal(ctr.reads, 1);
	assert_int_equal(ctr.flushes, 0);
	assert_int_equal(bdev_flush(b), 0);
	bdev_faulty_counters(b, &ctr);
	assert_int_equal(ctr.flushes, 1);
	bdev_close(b);
	free(w);
	free(r);
}

static void test_bdev__faulty_fail_all_and_die_after(void **state)
{
	struct bdev *b = bdev_faulty_create(16 * SEC, 3);
	u8 *w = aligned_buf(SEC, 0x22), *r = aligned_buf(SEC, 0);

	bdev_faulty_fail_all(b);
	assert_int_equal(bdev_write(b, w, SEC, 0), -EIO);
	assert_int_equal(bdev_flush(b), -EIO);
	assert_int_equal(bdev_read(b, r, SEC, 0), 0);
	bdev_faulty_crash(b, false);
	assert_int_equal(bdev_write(b, w, SEC, 0), 0);

	bdev_faulty_die_after(b, 2);
	assert_int_equal(bdev_write(b, w, SEC, SEC), 0);
	assert_int_equal(bdev_write(b, w, SEC, 2 * SEC), -EIO);
	assert_int_equal(bdev_write(b, w, SEC, 3 * SEC), -EIO);
	assert_int_equal(bdev_flush(b), -EIO);
	bdev_faulty_crash(b, false);
	/* Nothing was flushed: all of it is gone. */
	for (int s = 0; s < 4; s++) {
		assert_int_equal(bdev_read(b, r, SEC, s * SEC), 0);
		assert_int_equal(r[0], 0);
	}
	assert_int_equal(bdev_write(b, w, SEC, 0), 0);
	assert_int_equal(bdev_flush(b), 0);
	bdev_close(b);
	free(w);
	free(r);
}

static void test_bdev__faulty_torn_write(void **state)
{
	enum { N = 8 };
	struct bdev *b = bdev_faulty_create(N * SEC, 4);
	u8 *w = aligned_buf(N * SEC, 0x77), *r = aligned_buf(N * SEC, 0);

	for (int trial = 0; trial < 50; trial++) {
		int landed = 0;

		memset(w, trial + 1, N * SEC);
		bdev_faulty_tear_write(b, 1);
		assert_int_equal(bdev_write(b, w, N * SEC, 0), 0);
		assert_int_equal(bdev_read(b, r, N * SEC, 0), 0);
		for (int s = 0; s < N; s++) {
			u8 v = r[s * SEC];

			for (int i = 1; i < SEC; i++)
				assert_int_equal(r[s * SEC + i], v);
			landed += v == (u8)(trial + 1);
		}
		assert_true(landed < N); /* a proper subset */
		/* Untorn writes land whole. */
		assert_int_equal(bdev_write(b, w, N * SEC, 0), 0);
		assert_int_equal(bdev_read(b, r, N * SEC, 0), 0);
		assert_memory_equal(w, r, N * SEC);
	}
	/* A single-sector torn write loses its sector. */
	memset(w, 0x99, SEC);
	bdev_faulty_tear_write(b, 1);
	assert_int_equal(bdev_write(b, w, SEC, 0), 0);
	assert_int_equal(bdev_read(b, r, SEC, 0), 0);
	assert_int_not_equal(r[0], 0x99);
	bdev_close(b);
	free(w);
	free(r);
}

static void test_bdev__faulty_power_cut_mid_write(void **state)
{
	enum { N = 8 };
	struct bdev *b = bdev_faulty_create(N * SEC, 11);
	u8 *w = aligned_buf(N * SEC, 0x44), *r = aligned_buf(N * SEC, 0);
	int landed = 0;

	bdev_faulty_tear_write(b, 2);
	bdev_faulty_die_after(b, 2);
	assert_int_equal(bdev_write(b, w, SEC, 0), 0);
	assert_int_equal(bdev_write(b, w, N * SEC, 0), -EIO); /* torn, and the device is gone */
	assert_int_equal(bdev_flush(b), -EIO);
	assert_int_equal(bdev_read(b, r, N * SEC, 0), 0);
	for (int s = 0; s < N; s++)
		landed += r[s * SEC] == 0x44;
	assert_true(landed >= 1 &&
		    landed < N); /* sector 0 from the first write, some of the rest */
	bdev_faulty_crash(b, false);
	assert_int_equal(bdev_read(b, r, N * SEC, 0), 0);
	for (int i = 0; i < N * SEC; i++)
		assert_int_equal(r[i], 0); /* nothing was flushed */
	bdev_close(b);
	free(w);
	free(r);
}

static void test_bdev__faulty_corrupt(void **state)
{
	struct bdev *b = bdev_faulty_create(8 * SEC, 5);
	u8 *w = aligned_buf(SEC, 0x33), *r = aligned_buf(SEC, 0);

	assert_int_equal(bdev_write(b, w, SEC, SEC), 0);
	assert_int_equal(bdev_flush(b), 0);
	bdev_faulty_corrupt(b, SEC + 10, 3);
	bdev_faulty_crash(b, false); /* corruption is on the platter, not just in the view */
	assert_int_equal(bdev_read(b, r, SEC, SEC), 0);
	for (int i = 0; i < SEC; i++)
		if (i >= 10 && i < 13)
			assert_int_not_equal(r[i], 0x33);
		else
			assert_int_equal(r[i], 0x33);
	bdev_close(b);
	free(w);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bdev__ram_roundtrip),
		cmocka_unit_test(test_bdev__file_direct),
		cmocka_unit_test(test_bdev__file_buffered),
		cmocka_unit_test(test_bdev__file_tmpfs_fallback),
		cmocka_unit_test(test_bdev__open_errors),
		cmocka_unit_test(test_bdev__faulty_crash_drops_unflushed),
		cmocka_unit_test(test_bdev__faulty_crash_keep_random),
		cmocka_unit_test(test_bdev__faulty_fail_nth_write),
		cmocka_unit_test(test_bdev__faulty_fail_all_and_die_after),
		cmocka_unit_test(test_bdev__faulty_torn_write),
		cmocka_unit_test(test_bdev__faulty_power_cut_mid_write),
		cmocka_unit_test(test_bdev__faulty_corrupt),
	};

	return cmocka_run_group_tests_name("bdev", tests, NULL, NULL);
}
