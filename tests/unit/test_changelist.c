// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_changelist.c - changelist files round trip (empty, one chunk, many chunks across
 * buffer boundaries); the writer refuses unsorted or out-of-volume chunks; every
 * truncation and every bit flip of a small file is rejected; an aborted or uncommitted
 * write leaves the previous file in place.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>
#include "delta/changelist.h"

static char dir[] = "/tmp/test_changelistXXXXXX";
static char path[128];

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/cl", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static struct changelist_header hdr(u64 volume_chunks)
{
	struct changelist_header h = {.chunk_size = 4096,
				      .src_tag = 1,
				      .tgt_tag = 2,
				      .src_gen = 10,
				      .tgt_gen = 20,
				      .volume_chunks = volume_chunks};

	memcpy(h.uuid, "abcdefghijklmnop", 16);
	return h;
}

static void write_list(const u64 *chunks, u64 n, u64 volume_chunks)
{
	struct changelist_header h = hdr(volume_chunks);
	struct changelist_writer *w;

	assert_int_equal(changelist_create(&w, path, &h), 0);
	for (u64 i = 0; i < n; i++)
		assert_int_equal(changelist_append(w, chunks[i]), 0);
	assert_int_equal(changelist_commit(w), 0);
}

static void test_changelist__roundtrip(void **state)
{
	static const u64 sizes[] = {0, 1, 8191, 8192, 8193, 50000};

	for (unsigned s = 0; s < ARRAY_SIZE(sizes); s++) {
		u64 n = sizes[s], *c = malloc(sizeof(u64) * (n + 1)), v = 0, got;
		struct changelist_reader *r;
		struct changelist_header h;
		u64 i = 0;
		int rc;

		for (u64 k = 0; k < n; k++)
			c[k] = v += 1 + (k * 7919) % 13;
		write_list(c, n, v + 1);
		assert_int_equal(changelist_open(&r, path, &h), 0);
		assert_int_equal(h.count, n);
		assert_int_equal(h.tgt_gen, 20);
		assert_memory_equal(h.uuid, "abcdefghijklmnop", 16);
		while ((rc = changelist_next(r, &got)) == 1)
			assert_int_equal(got, c[i++]);
		assert_int_equal(rc, 0);
		assert_int_equal(i, n);
		/* a second pass on the same open file sees the same list */
		assert_int_equal(changelist_rewind(r), 0);
		for (i = 0; (rc = changelist_next(r, &got)) == 1; i++)
			assert_int_equal(got, c[i]);
		assert_int_equal(rc, 0);
		assert_int_equal(i, n);
		changelist_close(r);
		assert_int_equal(changelist_verify(path, NULL, NULL, 0), 0);
		free(c);
	}
}

static void test_changelist__writer_refuses_bad_input(void **state)
{
	struct changelist_header h = hdr(100);
	struct changelist_writer *w;

	h.chunk_size = 1000;
	assert_int_equal(changelist_create(&w, path, &h), -EINVAL);
	h = hdr(100);
	assert_int_equal(changelist_create(&w, path, &h), 0);
	assert_int_equal(changelist_append(w, 5), 0);
	assert_int_equal(changelist_append(w, 5), -EINVAL);
	assert_int_equal(changelist_append(w, 4), -EINVAL);
	assert_int_equal(changelist_append(w, 100), -EINVAL);
	assert_int_equal(changelist_append(w, 99), 0);
	changelist_abort(w);
}

static void test_changelist__abort_keeps_previous(void **state)
{
	static const u64 a[] = {1, 2, 3};
	struct changelist_header h = hdr(10);
	struct changelist_writer *w;

	write_list(a, 3, 10);
	assert_int_equal(changelist_create(&w, path, &h), 0);
	assert_int_equal(changelist_append(w, 7), 0);
	changelist_abort(w);
	assert_int_equal(changelist_verify(path, &h, NULL, 0), 0);
	assert_int_equal(h.count, 3);
	/* an uncommitted writer (crash) leaves only a .tmp beside the old file */
	assert_int_equal(changelist_create(&w, path, &h), 0);
	assert_int_equal(changelist_verify(path, &h, NULL, 0), 0);
	assert_int_equal(h.count, 3);
	changelist_abort(w);
}

static u8 *slurp(size_t *len)
{
	int fd = open(path, O_RDONLY);
	u8 *p = malloc(1 << 16);

	assert_true(fd >= 0);
	*len = (size_t)read(fd, p, 1 << 16);
	close(fd);
	return p;
}

static void spill(const u8 *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
}

static void test_changelist__corruption_detected(void **state)
{
	static const u64 a[] = {3, 9, 10, 4000, 4001};
	char why[200];
	size_t len;
	u8 *p;

	write_list(a, ARRAY_SIZE(a), 5000);
	p = slurp(&len);
	assert_int_equal(len, CHANGELIST_HEADER_BYTES + 8 * ARRAY_SIZE(a));
	for (size_t cut = 0; cut < len; cut++) {
		spill(p, cut);
		assert_int_equal(changelist_verify(path, NULL, why, sizeof(why)), -EILSEQ);
	}
	for (size_t bit = 0; bit < len * 8; bit++) {
		p[bit / 8] ^= (u8)(1u << (bit % 8));
		spill(p, len);
		assert_int_equal(changelist_verify(path, NULL, why, sizeof(why)), -EILSEQ);
		p[bit / 8] ^= (u8)(1u << (bit % 8));
	}
	/* trailing bytes */
	p[len] = 0;
	spill(p, len + 1);
	assert_int_equal(changelist_verify(path, NULL, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "after the last chunk"));
	free(p);
	assert_int_equal(changelist_verify("/nonexistent/cl", NULL, why, sizeof(why)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_changelist__roundtrip),
		cmocka_unit_test(test_changelist__writer_refuses_bad_input),
		cmocka_unit_test(test_changelist__abort_keeps_previous),
		cmocka_unit_test(test_changelist__corruption_detected),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
