// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_delta_xfer.c - the delta library's contract (delta/delta_xfer.h), without the CLI:
 * create then apply through the library reproduces the target snapshot on files, with the
 * stats the -v report prints; every failure returns a negative errno, prints nothing and
 * says what is wrong in struct delta_error, with the kind the CLI turns into its exit code
 * (a truncated stream: -EILSEQ, corrupt, nothing of the cut extent written, a token saved;
 * a refused codec level: -EINVAL, bad parameters; a missing device: -ENOENT, neither); a
 * receiver killed after its first write leaves a token and resumes from it;
 * the error lines never overflow.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "delta/changelist.h"
#include "delta/delta_xfer.h"
#include "lib/deltafix.h"
#include "lib/testfiles.h"

#define CHUNK	  4096u
#define NCHUNKS	  256u
#define VOL_BYTES ((size_t)CHUNK * NCHUNKS)
#define TAG_A	  DELTAFIX_TAG_A
#define TAG_B	  DELTAFIX_TAG_B

static struct deltafix F;
static char cl_path[128], delta_path[128];
static u64 rng = 0x2545f4914f6cdd1dull;

/* A: random chunks with a zero tail; B: A with 20 chunks rewritten and 4 zeroed. */
static int setup(void **state)
{
	if (deltafix_init(&F, "test_delta_xfer", CHUNK, NCHUNKS))
		return -1;
	snprintf(cl_path, sizeof(cl_path), "%s/changelist", F.dir);
	snprintf(delta_path, sizeof(delta_path), "%s/delta", F.dir);
	for (size_t i = 0; i < VOL_BYTES * 3 / 4; i++)
		F.a[i] = (u8)(xorshift64(&rng) >> 24);
	memset(F.a + VOL_BYTES * 3 / 4, 0, VOL_BYTES / 4);
	memcpy(F.b, F.a, VOL_BYTES);
	for (size_t i = 10 * CHUNK; i < 30 * CHUNK; i++)
		F.b[i] = (u8)(xorshift64(&rng) >> 24);
	memset(F.b + 100 * CHUNK, 0, 4 * CHUNK);
	deltafix_publish(&F);
	deltafix_changelist(&F, cl_path, TAG_A, "volume-uuid-0002");
	return 0;
}

static int teardown(void **state)
{
	return deltafix_fini(&F);
}

/* True if @path holds exactly the @len bytes at @want. */
static bool same(const char *path, const u8 *want, size_t len)
{
	size_t n;
	u8 *p = get_file(path, &n);

	free(p);
	return n == len && deltafix_same(path, want, 0, len);
}

static void create_params(struct delta_create_params *p)
{
	*p = (struct delta_create_params){.cmd = "delta",
					  .changelist = cl_path,
					  .devstem = F.send_stem,
					  .codec = {.mode = DELTA_CODEC_ZSTD_PREFIX}};
}

static void test_delta_xfer__round_trip_through_the_library(void **state)
{
	struct delta_create_params p;
	struct delta_create_stats cst;
	struct delta_apply_stats ast;
	struct delta_error e;
	const char *delta = delta_path;

	create_params(&p);
	deltafix_reset_receiver(&F);
	assert_int_equal(deltafix_create_to(delta, &p, &cst, &e), 0);
	assert_int_equal(e.len, 0);
	assert_int_equal(cst.tr.data_chunks, 20);
	assert_int_equal(cst.tr.zero_chunks, 4);
	assert_int_equal(cst.data_bytes, 20 * CHUNK);
	assert_true(cst.tr.payload_bytes > 0 && cst.tr.payload_bytes <= 20 * CHUNK + 4096);
	assert_int_equal(deltafix_apply_from(&F, delta, NULL, &ast, &e), 0);
	assert_int_equal(e.len, 0);
	assert_int_equal(ast.written_chunks, 24);
	assert_int_equal(ast.tr.extents, cst.tr.extents);
	assert_true(same(F.recv_stem, F.b, VOL_BYTES));
	assert_true(same(pathf("%s(%u)", F.recv_stem, TAG_A), F.a, VOL_BYTES));
}

static void test_delta_xfer__truncated_stream_is_corrupt(void **state)
{
	struct delta_create_params p;
	struct delta_create_stats cst;
	struct delta_apply_stats ast;
	struct delta_error e;
	const char *delta = delta_path, *token = F.tok_path;
	struct stat st;

	create_params(&p);
	p.codec.mode = DELTA_CODEC_RAW; /* one extent a run: the cut lands inside the data */
	deltafix_reset_receiver(&F);
	assert_int_equal(deltafix_create_to(delta, &p, &cst, &e), 0);
	assert_int_equal(stat(delta, &st), 0);
	assert_int_equal(truncate(delta, st.st_size / 2), 0);
	assert_int_equal(deltafix_apply_from(&F, delta, token, &ast, &e), -EILSEQ);
	assert_true(e.corrupt);
	assert_false(e.bad_params);
	/* the first line names the input and the problem, the second where to resume */
	assert_non_null(strstr(e.msg, pathf("%s: stream truncated", delta)));
	assert_non_null(strstr(e.msg, "\nresume token saved in "));
	assert_int_equal(strlen(e.msg), e.len);
	assert_int_equal(access(token, F_OK), 0);
	/* the source snapshot is never written */
	assert_true(same(pathf("%s(%u)", F.recv_stem, TAG_A), F.a, VOL_BYTES));
}

/*
 * A receiver killed (SIGKILL: no exit path runs) at any moment after its first write must
 * leave a token: the written chunks are then the interrupted part of this transfer, and
 * the stream resumes.  Without one they are "written since the newest snapshot" and every
 * incremental is refused (replication-faults found a kill inside the first second, before
 * the first periodic save).  The child applies from a pipe that holds all but the
 * trailer's last byte, so it writes every extent and then waits; the parent checks the
 * token while it waits, kills it, and resumes from the token.
 */
static void test_delta_xfer__token_before_first_write(void **state)
{
	struct delta_create_params p;
	struct delta_create_stats cst;
	struct delta_apply_stats ast;
	struct delta_error e;
	int fds[2], status;
	size_t n, off = 0;
	u8 *stream;
	pid_t pid;

	create_params(&p);
	deltafix_reset_receiver(&F);
	assert_int_equal(deltafix_create_to(delta_path, &p, &cst, &e), 0);
	stream = get_file(delta_path, &n);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct delta_apply_params ap = {.cmd = "delta",
						.name = "pipe",
						.devstem = F.recv_stem,
						.token = F.tok_path};

		close(fds[1]);
		ap.in_fd = fds[0];
		_exit(delta_apply_stream(&ap, &ast, &e) ? 1 : 0);
	}
	close(fds[0]);
	while (off < n - 1) {
		ssize_t w = write(fds[1], stream + off, n - 1 - off);

		assert_true(w > 0);
		off += (size_t)w;
	}
	/* every extent written, the trailer incomplete: the child waits for its last byte */
	for (int i = 0; i < 1000 && !same(F.recv_stem, F.b, VOL_BYTES); i++)
		usleep(10000);
	assert_true(same(F.recv_stem, F.b, VOL_BYTES));
	assert_int_equal(access(F.tok_path, F_OK), 0);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(fds[1]);
	free(stream);
	/* the whole stream again: checked up to the token, the rest applied */
	assert_int_equal(deltafix_apply_from(&F, delta_path, F.tok_path, &ast, &e), 0);
	assert_true(same(F.recv_stem, F.b, VOL_BYTES));
	assert_int_equal(access(F.tok_path, F_OK), -1);
}

static void test_delta_xfer__bad_level_and_missing_device(void **state)
{
	struct delta_create_params p;
	struct delta_create_stats cst;
	struct delta_error e;
	const char *delta = delta_path;

	create_params(&p);
	p.codec = (struct delta_codec_opts){.mode = DELTA_CODEC_ZSTD, .level = 99};
	assert_int_equal(deltafix_create_to(delta, &p, &cst, &e), -EINVAL);
	assert_true(e.bad_params);
	assert_false(e.corrupt);
	assert_string_equal(e.msg, "bad codec level");

	create_params(&p);
	p.devstem = pathf("%s/nosuch", F.dir); /* used before pathf() is called again */
	assert_int_equal(deltafix_create_to(delta, &p, &cst, &e), -ENOENT);
	assert_false(e.bad_params);
	assert_false(e.corrupt);
	assert_string_equal(e.msg,
			    pathf("cannot open %s/nosuch(%u): %s", F.dir, TAG_B, strerror(ENOENT)));
}

static void test_delta_xfer__error_lines_never_overflow(void **state)
{
	struct delta_error e;
	char big[1000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	delta_error_init(&e);
	for (int i = 0; i < 20; i++)
		delta_error_add(&e, "%d %s", i, big);
	assert_true(e.len < sizeof(e.msg));
	assert_int_equal(strlen(e.msg), e.len);
	assert_int_equal(strncmp(e.msg, "0 xxx", 5), 0);
	assert_non_null(strstr(e.msg, "\n1 xxx"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delta_xfer__round_trip_through_the_library),
		cmocka_unit_test(test_delta_xfer__truncated_stream_is_corrupt),
		cmocka_unit_test(test_delta_xfer__token_before_first_write),
		cmocka_unit_test(test_delta_xfer__bad_level_and_missing_device),
		cmocka_unit_test(test_delta_xfer__error_lines_never_overflow),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
