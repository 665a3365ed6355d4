// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_delta_replication.c - replication through the real metadata server, in userspace:
 * a volume on temporary files served by ddsnapd on a thread; origin writes go through the
 * engine's copy-out (volume_origin_write) before the test writes the origin file, as the
 * kernel target would.  Then `ddsnap delta changelist` asks the running server for the
 * changed chunks, the snapshot views are materialised as <stem>(T) files through the
 * server's read mapping, `ddsnap delta create` makes the delta and `ddsnap delta apply`
 * rebuilds snapshot 2 on a receiver that holds snapshot 1, byte for byte, including chunks
 * zeroed between the snapshots.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>
#include "delta/changelist.h"
#include "commands.h"
#include "snap/volume.h"
#include "lib/srvfix.h"
#include "lib/testfiles.h"

#define CHUNK_SHIFT  14
#define CHUNK	     (1u << CHUNK_SHIFT)
#define NCHUNKS	     256u
#define ORIGIN_BYTES ((u64)NCHUNKS * CHUNK)
#define STORE_BYTES  (48u << 20)
#define END	     ((char *)NULL)

static char dir[] = "/tmp/test_delta_replXXXXXX";
static char stem[128], rstem[128], cl_path[128], delta_path[128];
static struct srvfix vf; /* the volume and its server */
/* the model: what each snapshot must read */
static u8 *model[3];

static void fill_text(u8 *p, size_t len, u32 seed)
{
	static const char *w[] = {"snapshot ", "origin ", "chunk ", "the ", "replica\n", "42 "};

	for (size_t i = 0; i < len;) {
		seed = seed * 1103515245u + 12345u;
		for (const char *x = w[(seed >> 16) % 6]; *x && i < len; x++)
			p[i++] = (u8)*x;
	}
}

/* Writes @data to origin chunks [c, c + n) the way the kernel does: copy-out first. */
static void origin_write(u64 c, u32 n, const u8 *data)
{
	srvfix_origin_write(&vf, c, n, data);
}

/* Materialises snapshot @tag as a file through the server's read mapping. */
static void export_snapshot(u32 tag, const char *path)
{
	srvfix_export(&vf, tag, path);
}

static u8 *slurp(const char *path)
{
	return srvfix_slurp(path, ORIGIN_BYTES);
}

static void expect_file(const char *path, const u8 *want)
{
	u8 *got = slurp(path);

	for (u64 c = 0; c < NCHUNKS; c++)
		if (memcmp(got + c * CHUNK, want + c * CHUNK, CHUNK))
			fail_msg("%s differs at chunk %llu", path, (unsigned long long)c);
	free(got);
}

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(stem, sizeof(stem), "%s/send", dir);
	snprintf(rstem, sizeof(rstem), "%s/recv", dir);
	snprintf(cl_path, sizeof(cl_path), "%s/changelist", dir);
	snprintf(delta_path, sizeof(delta_path), "%s/delta", dir);
	model[0] = malloc(ORIGIN_BYTES);
	fill_text(model[0], ORIGIN_BYTES, 1);
	memset(model[0] + 200 * CHUNK, 0, 56 * CHUNK); /* never written: zeros */
	if (srvfix_create(&vf, dir, "origin", CHUNK_SHIFT, ORIGIN_BYTES, STORE_BYTES, model[0]))
		return -1;
	return srvfix_start(&vf);
}

static int teardown(void **state)
{
	srvfix_stop(&vf);
	for (int i = 0; i < 3; i++)
		free(model[i]);
	return system(pathf("rm -rf %s", dir));
}

static void test_delta_replication__through_the_server(void **state)
{
	struct changelist_reader *r;
	struct changelist_header h;
	u8 buf[8 * CHUNK], zero[4 * CHUNK] = {0};
	u64 gen, c, want[] = {3, 4, 5, 6, 7, 10, 50, 51, 120, 121, 122, 123, 201}, n = 0;
	int rc;

	/* snapshot 1, then edits, a discard (zeros), an append into never-written space */
	assert_int_equal(volume_create(vf.vol, 1, &gen), 0);
	model[1] = slurp(vf.origin);
	memcpy(buf, model[1] + 3 * CHUNK, 5 * CHUNK);
	for (int i = 0; i < 5; i++)
		memcpy(buf + i * CHUNK + 100 + i * 50, "EDITED", 6);
	origin_write(3, 5, buf);
	fill_text(buf, CHUNK, 77);
	origin_write(10, 1, buf);
	fill_text(buf, 2 * CHUNK, 78);
	origin_write(50, 2, buf);
	origin_write(120, 4, zero);
	fill_text(buf, CHUNK, 79);
	origin_write(201, 1, buf);
	origin_write(3, 1, model[1] + 3 * CHUNK + 0); /* rewritten in the same gen */
	origin_write(3, 1, buf);
	assert_int_equal(volume_create(vf.vol, 2, &gen), 0);
	model[2] = slurp(vf.origin);
	/* later origin writes must not leak into snapshot 2 or its delta */
	fill_text(buf, CHUNK, 80);
	origin_write(60, 1, buf);

	/* the changelist from the running server */
	assert_int_equal(run_delta("changelist", vf.sock, cl_path, "1", "2", END), EXIT_OK);
	assert_int_equal(changelist_open(&r, cl_path, &h), 0);
	assert_int_equal(h.chunk_size, CHUNK);
	assert_int_equal(h.volume_chunks, NCHUNKS);
	assert_int_equal(h.src_tag, 1);
	assert_int_equal(h.tgt_tag, 2);
	assert_true(h.src_gen < h.tgt_gen);
	while ((rc = changelist_next(r, &c)) == 1) {
		assert_true(n < ARRAY_SIZE(want));
		assert_int_equal(c, want[n]);
		n++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, ARRAY_SIZE(want));
	changelist_close(r);

	/* snapshot views through the server's mapping match the model */
	export_snapshot(1, pathf("%s(1)", stem));
	export_snapshot(2, pathf("%s(2)", stem));
	expect_file(pathf("%s(1)", stem), model[1]);
	expect_file(pathf("%s(2)", stem), model[2]);

	/* delta 1 -> 2, applied on a receiver that holds snapshot 1 */
	for (int k = 0; k < 3; k++) {
		static const char *opts[] = {"--zstd-delta", "-x", "-b"};
		int fd;

		assert_int_equal(run_delta("create", opts[k], cl_path, delta_path, stem, END),
				 EXIT_OK);
		fd = open(rstem, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_int_equal(pwrite(fd, model[1], ORIGIN_BYTES, 0), (ssize_t)ORIGIN_BYTES);
		close(fd);
		fd = open(pathf("%s(1)", rstem), O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_int_equal(pwrite(fd, model[1], ORIGIN_BYTES, 0), (ssize_t)ORIGIN_BYTES);
		close(fd);
		assert_int_equal(run_delta("apply", delta_path, rstem, END), EXIT_OK);
		expect_file(rstem, model[2]);
	}

	/* a full delta of snapshot 2 from the server's whole-volume changelist */
	assert_int_equal(run_delta("changelist", vf.sock, cl_path, "none", "2", END), EXIT_OK);
	assert_int_equal(run_delta("create", cl_path, delta_path, stem, END), EXIT_OK);
	{
		u8 *z = calloc(1, ORIGIN_BYTES);
		int fd = open(rstem, O_WRONLY | O_TRUNC);

		assert_int_equal(pwrite(fd, z, ORIGIN_BYTES, 0), (ssize_t)ORIGIN_BYTES);
		close(fd);
		free(z);
	}
	assert_int_equal(run_delta("apply", delta_path, rstem, END), EXIT_OK);
	/* the whole-volume list holds the chunks the server knows were written; the rest of
	 * the receiver stays zero, so compare only those */
	assert_int_equal(changelist_open(&r, cl_path, &h), 0);
	{
		u8 *got = slurp(rstem);

		while ((rc = changelist_next(r, &c)) == 1)
			assert_memory_equal(got + c * CHUNK, model[2] + c * CHUNK, CHUNK);
		assert_int_equal(rc, 0);
		free(got);
	}
	changelist_close(r);
	/* a snapshot that does not exist: the server's reason, exit 1 */
	assert_int_equal(run_delta("changelist", vf.sock, cl_path, "1", "9", END), EXIT_FAIL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delta_replication__through_the_server),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
