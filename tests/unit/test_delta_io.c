// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_delta_io.c - the delta transfer's requests in flight together (delta_ioq_run,
 * delta_xfer_internal.h) on O_DIRECT files under /tmp (native aio): each result lands in
 * its own request whatever order they complete in, reads and writes, at depth 16 and at
 * depth 1 (one by one, no aio context); a failure in the middle of a batch fails only its
 * request, the others complete, and the call returns the lowest-numbered failure with its
 * line only: a read that ends early (a request straddling the end, one wholly past it) is
 * -EIO "beyond the end", a write past RLIMIT_FSIZE -EFBIG; a request O_DIRECT refuses
 * (unaligned) drops the flag and completes buffered, the aligned ones beside it too.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/resource.h>
#include <cmocka.h>
#include "delta/delta_xfer_internal.h"
#include "lib/testfiles.h"

#define BLK	 4096u
#define NBLK	 64u
#define NREQ	 48u
#define FILE_LEN ((size_t)BLK * NBLK)

static char dir[64], path[128];
static u8 *data; /* the file's bytes */

static int setup(void **state)
{
	u64 rng = 0x6a09e667f3bcc908ull;

	snprintf(dir, sizeof(dir), "/tmp/test_delta_ioXXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/dev", dir);
	data = xmalloc(FILE_LEN);
	for (size_t i = 0; i < FILE_LEN; i++)
		data[i] = (u8)(xorshift64(&rng) >> 32);
	return 0;
}

static int teardown(void **state)
{
	free(data);
	return system(pathf("rm -rf %s", dir));
}

/* The test file as @data, opened (O_DIRECT: asserted) for reading and writing. */
static void open_dev(struct delta_dev *d)
{
	struct delta_error e;

	put_file(path, data, FILE_LEN);
	delta_error_init(&e);
	assert_int_equal(delta_dev_open(d, path, true, &e), 0);
	assert_true(d->direct); /* /tmp takes O_DIRECT: the aio path is what runs */
}

/* Block numbers 0..NREQ-1 in a scattered order (a fixed permutation). */
static unsigned perm(unsigned i)
{
	return (i * 29u + 7u) % NREQ;
}

/* Reads NREQ scattered blocks at @depth: every buffer holds its own block. */
static void read_scattered(unsigned depth)
{
	struct delta_dev d;
	struct delta_ioq q;
	struct delta_io io[NREQ];
	struct delta_error e;
	u8 *buf = delta_abuf((size_t)NREQ * BLK);

	open_dev(&d);
	delta_ioq_init(&q, depth);
	memset(buf, 0xee, (size_t)NREQ * BLK);
	for (unsigned i = 0; i < NREQ; i++)
		io[i] = (struct delta_io){.d = &d,
					  .buf = buf + (size_t)i * BLK,
					  .len = BLK,
					  .off = (u64)perm(i) * BLK,
					  .rc = 12345};
	delta_error_init(&e);
	assert_int_equal(delta_ioq_run(&q, io, NREQ, false, &e), 0);
	assert_int_equal(e.len, 0);
	for (unsigned i = 0; i < NREQ; i++) {
		assert_int_equal(io[i].rc, 0);
		assert_memory_equal(buf + (size_t)i * BLK, data + (size_t)perm(i) * BLK, BLK);
	}
	/* depth 1 is the one-by-one path: no aio context */
	assert_true(depth == 1 ? q.ctx == 0 : q.ctx != 0);
	delta_ioq_free(&q);
	delta_dev_close(&d);
	free(buf);
}

static void test_delta_io__reads_land_in_their_own_request(void **state)
{
	read_scattered(0);
	read_scattered(DELTA_IO_DEPTH);
	read_scattered(4);
	read_scattered(1);
}

static void test_delta_io__writes_land_at_their_own_offset(void **state)
{
	static const unsigned depths[] = {0, 1};

	for (unsigned k = 0; k < ARRAY_SIZE(depths); k++) {
		struct delta_dev d;
		struct delta_ioq q;
		struct delta_io io[NREQ];
		struct delta_error e;
		u8 *buf = delta_abuf((size_t)NREQ * BLK);
		u8 *want = xmalloc(FILE_LEN);

		open_dev(&d);
		delta_ioq_init(&q, depths[k]);
		memcpy(want, data, FILE_LEN);
		for (unsigned i = 0; i < NREQ; i++) {
			memset(buf + (size_t)i * BLK, (int)(i + 1), BLK);
			memset(want + (size_t)perm(i) * BLK, (int)(i + 1), BLK);
			io[i] = (struct delta_io){.d = &d,
						  .buf = buf + (size_t)i * BLK,
						  .len = BLK,
						  .off = (u64)perm(i) * BLK};
		}
		delta_error_init(&e);
		assert_int_equal(delta_ioq_run(&q, io, NREQ, true, &e), 0);
		assert_int_equal(e.len, 0);
		for (unsigned i = 0; i < NREQ; i++)
			assert_int_equal(io[i].rc, 0);
		delta_ioq_free(&q);
		delta_dev_close(&d);
		free(buf);
		{
			size_t n;
			u8 *got = get_file(path, &n);

			assert_int_equal(n, FILE_LEN);
			assert_memory_equal(got, want, FILE_LEN);
			free(got);
		}
		free(want);
	}
}

static void test_delta_io__a_short_read_mid_batch_is_eio_for_it_alone(void **state)
{
	struct delta_dev d;
	struct delta_ioq q;
	struct delta_io io[20];
	struct delta_error e;
	u8 *buf = delta_abuf(20 * 2 * (size_t)BLK);
	char want[256];

	open_dev(&d);
	delta_ioq_init(&q, 0);
	for (unsigned i = 0; i < 20; i++)
		io[i] = (struct delta_io){.d = &d,
					  .buf = buf + (size_t)i * 2 * BLK,
					  .len = BLK,
					  .off = (u64)(i * 3 % NBLK) * BLK};
	/* #7 straddles the end (its first block is there), #13 lies wholly past it */
	io[7].off = FILE_LEN - BLK;
	io[7].len = 2 * BLK;
	io[13].off = FILE_LEN + 8 * BLK;
	delta_error_init(&e);
	assert_int_equal(delta_ioq_run(&q, io, 20, false, &e), -EIO);
	for (unsigned i = 0; i < 20; i++) {
		if (i == 7 || i == 13) {
			assert_int_equal(io[i].rc, -EIO);
			continue;
		}
		assert_int_equal(io[i].rc, 0);
		assert_memory_equal(io[i].buf, data + io[i].off, BLK);
	}
	/* the line of the first failure only, where it failed: the end of the file */
	snprintf(want, sizeof(want), "read %s at %zu: beyond the end", path, FILE_LEN);
	assert_string_equal(e.msg, want);
	delta_ioq_free(&q);
	delta_dev_close(&d);
	free(buf);
}

static void test_delta_io__a_failed_write_mid_batch_fails_it_alone(void **state)
{
	struct delta_dev d;
	struct delta_ioq q;
	struct delta_io io[12];
	struct delta_error e;
	struct rlimit old, lim;
	u8 *buf = delta_abuf(12 * (size_t)BLK);
	char want[256];
	int rc;

	open_dev(&d);
	delta_ioq_init(&q, 0);
	memset(buf, 0x5a, 12 * (size_t)BLK);
	for (unsigned i = 0; i < 12; i++)
		io[i] = (struct delta_io){
			.d = &d, .buf = buf + (size_t)i * BLK, .len = BLK, .off = (u64)i * 4 * BLK};
	/* #5 and #9 would grow the file past its limit */
	io[5].off = FILE_LEN + 2 * BLK;
	io[9].off = FILE_LEN + 4 * BLK;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = FILE_LEN;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	delta_error_init(&e);
	rc = delta_ioq_run(&q, io, 12, true, &e);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(rc, -EFBIG);
	for (unsigned i = 0; i < 12; i++)
		assert_int_equal(io[i].rc, i == 5 || i == 9 ? -EFBIG : 0);
	snprintf(want, sizeof(want), "write %s at %zu: %s", path, FILE_LEN + 2 * BLK,
		 strerror(EFBIG));
	assert_string_equal(e.msg, want);
	delta_ioq_free(&q);
	delta_dev_close(&d);
	{
		size_t n;
		u8 *got = get_file(path, &n);

		assert_int_equal(n, FILE_LEN); /* nothing past the limit */
		for (unsigned i = 0; i < 12; i++)
			if (i != 5 && i != 9)
				assert_memory_equal(got + io[i].off, buf, BLK);
		free(got);
	}
	free(buf);
}

static void test_delta_io__a_refused_o_direct_falls_back_to_buffered(void **state)
{
	struct delta_dev d;
	struct delta_ioq q;
	struct delta_io io[8];
	struct delta_error e;
	u8 *buf = delta_abuf(9 * (size_t)BLK);

	open_dev(&d);
	delta_ioq_init(&q, 0);
	for (unsigned i = 0; i < 8; i++)
		io[i] = (struct delta_io){.d = &d,
					  .buf = buf + (size_t)i * BLK,
					  .len = BLK,
					  .off = (u64)(NBLK - 1 - i) * BLK};
	/* #3: an unaligned buffer, offset and length, which O_DIRECT refuses (EINVAL) */
	io[3].buf = buf + 8 * (size_t)BLK + 1;
	io[3].off = 12345;
	io[3].len = 1000;
	delta_error_init(&e);
	assert_int_equal(delta_ioq_run(&q, io, 8, false, &e), 0);
	assert_int_equal(e.len, 0);
	assert_false(d.direct); /* buffered from then on */
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(io[i].rc, 0);
		assert_memory_equal(io[i].buf, data + io[i].off, io[i].len);
	}
	/* and so are the next requests */
	assert_int_equal(delta_ioq_run(&q, io, 8, false, &e), 0);
	assert_memory_equal(io[3].buf, data + 12345, 1000);
	delta_ioq_free(&q);
	delta_dev_close(&d);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delta_io__reads_land_in_their_own_request),
		cmocka_unit_test(test_delta_io__writes_land_at_their_own_offset),
		cmocka_unit_test(test_delta_io__a_short_read_mid_batch_is_eio_for_it_alone),
		cmocka_unit_test(test_delta_io__a_failed_write_mid_batch_fails_it_alone),
		cmocka_unit_test(test_delta_io__a_refused_o_direct_falls_back_to_buffered),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
