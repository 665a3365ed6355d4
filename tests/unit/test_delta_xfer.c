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
#include "lib/testfiles.h"

#define CHUNK	  4096u
#define NCHUNKS	  256u
#define VOL_BYTES ((size_t)CHUNK * NCHUNKS)
#define TAG_A	  1u
#define TAG_B	  2u

static char dir[] = "/tmp/test_delta_xferXXXXXX";
static char cl_path[128], send_stem[128], recv_stem[128], delta_path[128], tok_path[128];
static u8 *snap_a, *snap_b;
static u64 rng = 0x2545f4914f6cdd1dull;

/* True if @path holds exactly the @len bytes at @want. */
static bool same(const char *path, const u8 *want, size_t len)
{
	size_t n;
	u8 *p = get_file(path, &n);
	bool eq = n == len && !memcmp(p, want, len);

	free(p);
	return eq;
}

/* A: random chunks with a zero tail; B: A with 20 chunks rewritten and 4 zeroed. */
static int setup(void **state)
{
	struct changelist_header h = {.chunk_size = CHUNK,
				      .src_tag = TAG_A,
				      .tgt_tag = TAG_B,
				      .src_gen = 1,
				      .tgt_gen = 2,
				      .volume_chunks = NCHUNKS};
	struct changelist_writer *w;

	if (!mkdtemp(dir))
		return -1;
	snprintf(cl_path, sizeof(cl_path), "%s/changelist", dir);
	snprintf(send_stem, sizeof(send_stem), "%s/send", dir);
	snprintf(recv_stem, sizeof(recv_stem), "%s/recv", dir);
	snprintf(delta_path, sizeof(delta_path), "%s/delta", dir);
	snprintf(tok_path, sizeof(tok_path), "%s/token", dir);
	snap_a = malloc(VOL_BYTES);
	snap_b = malloc(VOL_BYTES);
	for (size_t i = 0; i < VOL_BYTES * 3 / 4; i++)
		snap_a[i] = (u8)(xorshift64(&rng) >> 24);
	memset(snap_a + VOL_BYTES * 3 / 4, 0, VOL_BYTES / 4);
	memcpy(snap_b, snap_a, VOL_BYTES);
	for (size_t i = 10 * CHUNK; i < 30 * CHUNK; i++)
		snap_b[i] = (u8)(xorshift64(&rng) >> 24);
	memset(snap_b + 100 * CHUNK, 0, 4 * CHUNK);
	put_file(pathf("%s/send(%u)", dir, TAG_A), snap_a, VOL_BYTES);
	put_file(pathf("%s/send(%u)", dir, TAG_B), snap_b, VOL_BYTES);
	memcpy(h.uuid, "volume-uuid-0002", 16);
	assert_int_equal(changelist_create(&w, cl_path, &h), 0);
	for (u32 c = 0; c < NCHUNKS; c++)
		if (memcmp(snap_a + (size_t)c * CHUNK, snap_b + (size_t)c * CHUNK, CHUNK))
			assert_int_equal(changelist_append(w, c), 0);
	assert_int_equal(changelist_commit(w), 0);
	return 0;
}

static int teardown(void **state)
{
	free(snap_a);
	free(snap_b);
	return system(pathf("rm -rf %s", dir));
}

/* Receiver: origin = A, snapshot A = A, no token. */
static void reset_receiver(void)
{
	put_file(recv_stem, snap_a, VOL_BYTES);
	put_file(pathf("%s(%u)", recv_stem, TAG_A), snap_a, VOL_BYTES);
	unlink(tok_path);
}

static int create_to(const char *path, struct delta_create_params *p, struct delta_create_stats *st,
		     struct delta_error *e)
{
	int rc;

	p->out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(p->out_fd >= 0);
	rc = delta_create_stream(p, st, e);
	close(p->out_fd);
	return rc;
}

static int apply_from(const char *path, const char *token, struct delta_apply_stats *st,
		      struct delta_error *e)
{
	struct delta_apply_params p = {
		.cmd = "delta", .name = path, .devstem = recv_stem, .token = token};
	int rc;

	p.in_fd = open(path, O_RDONLY);
	assert_true(p.in_fd >= 0);
	rc = delta_apply_stream(&p, st, e);
	close(p.in_fd);
	return rc;
}

static void create_params(struct delta_create_params *p)
{
	*p = (struct delta_create_params){.cmd = "delta",
					  .changelist = cl_path,
					  .devstem = send_stem,
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
	reset_receiver();
	assert_int_equal(create_to(delta, &p, &cst, &e), 0);
	assert_int_equal(e.len, 0);
	assert_int_equal(cst.tr.data_chunks, 20);
	assert_int_equal(cst.tr.zero_chunks, 4);
	assert_int_equal(cst.data_bytes, 20 * CHUNK);
	assert_true(cst.tr.payload_bytes > 0 && cst.tr.payload_bytes <= 20 * CHUNK + 4096);
	assert_int_equal(apply_from(delta, NULL, &ast, &e), 0);
	assert_int_equal(e.len, 0);
	assert_int_equal(ast.written_chunks, 24);
	assert_int_equal(ast.tr.extents, cst.tr.extents);
	assert_true(same(recv_stem, snap_b, VOL_BYTES));
	assert_true(same(pathf("%s(%u)", recv_stem, TAG_A), snap_a, VOL_BYTES));
}

static void test_delta_xfer__truncated_stream_is_corrupt(void **state)
{
	struct delta_create_params p;
	struct delta_create_stats cst;
	struct delta_apply_stats ast;
	struct delta_error e;
	const char *delta = delta_path, *token = tok_path;
	struct stat st;

	create_params(&p);
	p.codec.mode = DELTA_CODEC_RAW; /* one extent a run: the cut lands inside the data */
	reset_receiver();
	assert_int_equal(create_to(delta, &p, &cst, &e), 0);
	assert_int_equal(stat(delta, &st), 0);
	assert_int_equal(truncate(delta, st.st_size / 2), 0);
	assert_int_equal(apply_from(delta, token, &ast, &e), -EILSEQ);
	assert_true(e.corrupt);
	assert_false(e.bad_params);
	/* the first line names the input and the problem, the second where to resume */
	assert_non_null(strstr(e.msg, pathf("%s: stream truncated", delta)));
	assert_non_null(strstr(e.msg, "\nresume token saved in "));
	assert_int_equal(strlen(e.msg), e.len);
	assert_int_equal(access(token, F_OK), 0);
	/* the source snapshot is never written */
	assert_true(same(pathf("%s(%u)", recv_stem, TAG_A), snap_a, VOL_BYTES));
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
	reset_receiver();
	assert_int_equal(create_to(delta_path, &p, &cst, &e), 0);
	stream = get_file(delta_path, &n);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct delta_apply_params ap = {
			.cmd = "delta", .name = "pipe", .devstem = recv_stem, .token = tok_path};

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
	for (int i = 0; i < 1000 && !same(recv_stem, snap_b, VOL_BYTES); i++)
		usleep(10000);
	assert_true(same(recv_stem, snap_b, VOL_BYTES));
	assert_int_equal(access(tok_path, F_OK), 0);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(fds[1]);
	free(stream);
	/* the whole stream again: checked up to the token, the rest applied */
	assert_int_equal(apply_from(delta_path, tok_path, &ast, &e), 0);
	assert_true(same(recv_stem, snap_b, VOL_BYTES));
	assert_int_equal(access(tok_path, F_OK), -1);
}

static void test_delta_xfer__bad_level_and_missing_device(void **state)
{
	struct delta_create_params p;
	struct delta_create_stats cst;
	struct delta_error e;
	const char *delta = delta_path;

	create_params(&p);
	p.codec = (struct delta_codec_opts){.mode = DELTA_CODEC_ZSTD, .level = 99};
	assert_int_equal(create_to(delta, &p, &cst, &e), -EINVAL);
	assert_true(e.bad_params);
	assert_false(e.corrupt);
	assert_string_equal(e.msg, "bad codec level");

	create_params(&p);
	p.devstem = pathf("%s/nosuch", dir); /* used before pathf() is called again */
	assert_int_equal(create_to(delta, &p, &cst, &e), -ENOENT);
	assert_false(e.bad_params);
	assert_false(e.corrupt);
	assert_string_equal(e.msg,
			    pathf("cannot open %s/nosuch(%u): %s", dir, TAG_B, strerror(ENOENT)));
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
