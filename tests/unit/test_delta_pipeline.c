// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_delta_pipeline.c - delta_create_stream()'s pipeline (delta_create.c: the caller's
 * thread reads, workers encode, a writer writes in stream order) on a volume of several
 * batches: the stream is the same bytes whatever the number of workers, for a full and an
 * incremental delta, and applies to the target; a threaded stream cut in the middle
 * resumes from the receiver's token and ends identical, the chunks past the token never
 * written; a failing writer (the output file hits RLIMIT_FSIZE) and a failing worker (the
 * xdelta3 codec cannot make its memfds under RLIMIT_NOFILE) fail the call with the stage's
 * message, stop the stream at a record boundary before the failure, and leave nothing
 * running.  On the receiving side (delta_apply.c: decoding here, the origin written by a
 * writer thread) an origin write that fails (RLIMIT_FSIZE) fails the apply with the token
 * at what was written and nothing past the failed write changed, and the re-sent stream
 * completes.  A full delta's zstd defaults to DELTA_FULL_ZSTD_LEVEL (the same bytes as
 * asking for it), an explicit level is kept.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "delta/changelist.h"
#include "delta/delta_xfer.h"
#include "lib/testfiles.h"

#define CHUNK	  4096u
#define NCHUNKS	  6144u /* 24 MiB: a full delta is two batches of 16 MiB */
#define VOL_BYTES ((size_t)CHUNK * NCHUNKS)
#define TAG_A	  1u
#define TAG_B	  2u

static char dir[] = "/tmp/test_delta_pipelineXXXXXX";
static char cl_incr[128], cl_full[128], send_stem[128], recv_stem[128], tok_path[128];
static u8 *snap_a, *snap_b;
static u64 rng = 0x9e3779b97f4a7c15ull;

static bool same(const char *path, const u8 *want, size_t off, size_t len)
{
	size_t n;
	u8 *p = get_file(path, &n);
	bool eq = n >= off + len && !memcmp(p + off, want + off, len);

	free(p);
	return eq;
}

/* Text-like bytes (compressible, so the codec has work). */
static void fill(u8 *p, size_t len)
{
	static const char words[] = "the snapshot of a volume holds every chunk it had when ";

	for (size_t i = 0; i < len;) {
		size_t k = xorshift64(&rng) % (sizeof(words) - 1);

		p[i++] = (u8)words[k];
		if (!(xorshift64(&rng) & 15) && i < len)
			p[i++] = (u8)('0' + xorshift64(&rng) % 10);
	}
}

static void write_changelist(const char *path, u32 src_tag)
{
	struct changelist_header h = {.chunk_size = CHUNK,
				      .src_tag = src_tag,
				      .tgt_tag = TAG_B,
				      .src_gen = src_tag == DDSNAP_TAG_NONE ? 0 : 1,
				      .tgt_gen = 2,
				      .volume_chunks = NCHUNKS};
	struct changelist_writer *w;

	memcpy(h.uuid, "volume-uuid-0003", 16);
	assert_int_equal(changelist_create(&w, path, &h), 0);
	for (u32 c = 0; c < NCHUNKS; c++)
		if (src_tag == DDSNAP_TAG_NONE ||
		    memcmp(snap_a + (size_t)c * CHUNK, snap_b + (size_t)c * CHUNK, CHUNK))
			assert_int_equal(changelist_append(w, c), 0);
	assert_int_equal(changelist_commit(w), 0);
}

/*
 * A: text with a zero stretch.  B: every other chunk of the first 4,096 rewritten (2,048
 * one-chunk runs: three batches of at most 1,024 items), 64 chunks zeroed and a 512-chunk
 * run rewritten (extents of 1 MiB).
 */
static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(cl_incr, sizeof(cl_incr), "%s/cl-incr", dir);
	snprintf(cl_full, sizeof(cl_full), "%s/cl-full", dir);
	snprintf(send_stem, sizeof(send_stem), "%s/send", dir);
	snprintf(recv_stem, sizeof(recv_stem), "%s/recv", dir);
	snprintf(tok_path, sizeof(tok_path), "%s/token", dir);
	snap_a = malloc(VOL_BYTES);
	snap_b = malloc(VOL_BYTES);
	fill(snap_a, VOL_BYTES);
	memset(snap_a + 5000 * (size_t)CHUNK, 0, 100 * CHUNK);
	memcpy(snap_b, snap_a, VOL_BYTES);
	for (u32 c = 0; c < 4096; c += 2)
		fill(snap_b + (size_t)c * CHUNK, 100);
	memset(snap_b + 4200 * (size_t)CHUNK, 0, 64 * CHUNK);
	fill(snap_b + 5400 * (size_t)CHUNK, 512 * CHUNK);
	put_file(pathf("%s(%u)", send_stem, TAG_A), snap_a, VOL_BYTES);
	put_file(pathf("%s(%u)", send_stem, TAG_B), snap_b, VOL_BYTES);
	write_changelist(cl_incr, TAG_A);
	write_changelist(cl_full, DDSNAP_TAG_NONE);
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

static void params(struct delta_create_params *p, const char *cl, unsigned threads)
{
	*p = (struct delta_create_params){.cmd = "delta",
					  .changelist = cl,
					  .devstem = send_stem,
					  .threads = threads,
					  .codec = {.mode = DELTA_CODEC_ZSTD_PREFIX}};
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

static int apply_from(const char *path, const char *token, struct delta_error *e)
{
	struct delta_apply_params p = {
		.cmd = "delta", .name = path, .devstem = recv_stem, .token = token};
	struct delta_apply_stats st;
	int rc;

	p.in_fd = open(path, O_RDONLY);
	assert_true(p.in_fd >= 0);
	rc = delta_apply_stream(&p, &st, e);
	close(p.in_fd);
	return rc;
}

static void test_delta_pipeline__the_stream_does_not_depend_on_the_worker_count(void **state)
{
	static const unsigned threads[] = {1, 2, 4};
	const char *cls[] = {cl_incr, cl_full};

	for (unsigned k = 0; k < 2; k++) {
		u8 *first = NULL;
		size_t first_len = 0;
		u64 first_chunks = 0;

		for (unsigned i = 0; i < ARRAY_SIZE(threads); i++) {
			struct delta_create_params p;
			struct delta_create_stats st;
			struct delta_error e;
			char *delta = xstrdup(pathf("%s/delta-%u-%u", dir, k, threads[i]));
			size_t len;
			u8 *bytes;

			params(&p, cls[k], threads[i]);
			assert_int_equal(create_to(delta, &p, &st, &e), 0);
			assert_int_equal(e.len, 0);
			bytes = get_file(delta, &len);
			if (!first) {
				first = bytes;
				first_len = len;
				first_chunks = st.tr.data_chunks + st.tr.zero_chunks;
				/* the incremental: 2,048 + 64 + 512 chunks; the full: all */
				assert_int_equal(first_chunks, k ? NCHUNKS : 2048 + 64 + 512);
			} else {
				assert_int_equal(len, first_len);
				assert_memory_equal(bytes, first, len);
				assert_int_equal(st.tr.data_chunks + st.tr.zero_chunks,
						 first_chunks);
				free(bytes);
			}
			reset_receiver();
			assert_int_equal(apply_from(delta, NULL, &e), 0);
			assert_true(same(recv_stem, snap_b, 0, VOL_BYTES));
			free(delta);
		}
		free(first);
	}
}

/* Applies @delta (cut) with the token: fails, the token saved, nothing past it written. */
static void apply_cut(const char *delta, struct delta_token *tok)
{
	struct delta_error e;

	assert_int_equal(apply_from(delta, tok_path, &e), -EILSEQ);
	assert_non_null(strstr(e.msg, "resume token saved in "));
	assert_int_equal(delta_token_load(tok_path, tok), 0);
	assert_true(tok->next_chunk > 0 && tok->next_chunk < NCHUNKS);
	assert_true(same(recv_stem, snap_a, tok->next_chunk * CHUNK,
			 VOL_BYTES - tok->next_chunk * CHUNK));
	assert_true(same(recv_stem, snap_b, 0, tok->next_chunk * CHUNK));
}

/* A threaded send resumed from the token of a receiver that got part of the stream. */
static void resume_and_finish(const char *cl)
{
	struct delta_create_params p;
	struct delta_create_stats st;
	struct delta_error e;
	char *rest = xstrdup(pathf("%s/rest", dir));

	params(&p, cl, 4);
	p.resume = tok_path;
	assert_int_equal(create_to(rest, &p, &st, &e), 0);
	assert_int_equal(apply_from(rest, tok_path, &e), 0);
	assert_true(same(recv_stem, snap_b, 0, VOL_BYTES));
	assert_int_equal(access(tok_path, F_OK), -1);
	free(rest);
}

static void test_delta_pipeline__a_cut_threaded_stream_resumes_from_the_token(void **state)
{
	struct delta_create_params p;
	struct delta_create_stats st;
	struct delta_error e;
	struct delta_token tok;
	char *delta = xstrdup(pathf("%s/delta-cut", dir));
	struct stat sb;

	params(&p, cl_incr, 4);
	assert_int_equal(create_to(delta, &p, &st, &e), 0);
	assert_int_equal(stat(delta, &sb), 0);
	assert_int_equal(truncate(delta, sb.st_size * 3 / 5), 0);
	reset_receiver();
	apply_cut(delta, &tok);
	resume_and_finish(cl_incr);
	free(delta);
}

static void test_delta_pipeline__a_failing_writer_stops_the_stream(void **state)
{
	struct delta_create_params p;
	struct delta_create_stats st;
	struct delta_error e;
	struct delta_token tok;
	struct rlimit old, lim;
	char *delta = xstrdup(pathf("%s/delta-efbig", dir));
	struct stat sb;
	int rc;

	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 3u << 20; /* inside the second batch of the full delta */
	params(&p, cl_full, 4);
	p.out_fd = open(delta, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(p.out_fd >= 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = delta_create_stream(&p, &st, &e);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	close(p.out_fd);
	assert_int_equal(rc, -EFBIG);
	assert_non_null(strstr(e.msg, "writing the delta: "));
	assert_non_null(strstr(e.msg, "delta not created: "));
	assert_int_equal(stat(delta, &sb), 0);
	assert_int_equal(sb.st_size, 3u << 20);
	/* what reached the file is the stream's beginning: it resumes like a cut one */
	reset_receiver();
	apply_cut(delta, &tok);
	resume_and_finish(cl_full);
	free(delta);
}

static void test_delta_pipeline__a_failing_worker_fails_the_call(void **state)
{
	struct delta_create_params p;
	struct delta_create_stats st;
	struct delta_error e;
	struct rlimit old, lim;
	char *delta = xstrdup(pathf("%s/delta-emfile", dir));
	struct stat sb;
	int rc, probe;

	params(&p, cl_incr, 2);
	p.codec.mode = DELTA_CODEC_XDELTA3;
	p.out_fd = open(delta, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(p.out_fd >= 0);
	/* room for the changelist and the two devices, none for xdelta3's memfds */
	probe = dup(0);
	assert_true(probe >= 0);
	close(probe);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)probe + 3;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
	rc = delta_create_stream(&p, &st, &e);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	close(p.out_fd);
	assert_int_equal(rc, -EMFILE);
	assert_non_null(strstr(e.msg, "encoding failed: "));
	assert_non_null(strstr(e.msg, "delta not created: "));
	/* nothing of the failed batch (the first) was written: only the stream header */
	assert_int_equal(stat(delta, &sb), 0);
	assert_true(sb.st_size > 0 && sb.st_size < 4096);
	reset_receiver();
	assert_int_equal(apply_from(delta, tok_path, &e), -EILSEQ);
	assert_true(same(recv_stem, snap_a, 0, VOL_BYTES));
	free(delta);
}

static void test_delta_pipeline__a_failing_origin_write_leaves_the_token_at_what_was_written(
	void **state)
{
	struct delta_create_params p;
	struct delta_create_stats st;
	struct delta_error e;
	struct delta_token tok;
	struct rlimit old, lim;
	char *delta = xstrdup(pathf("%s/delta-full", dir));
	int rc;

	params(&p, cl_full, 0);
	assert_int_equal(create_to(delta, &p, &st, &e), 0);
	reset_receiver();
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 5u << 20; /* the origin's writer fails at 5 MiB */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = apply_from(delta, tok_path, &e);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(rc, -EFBIG);
	assert_false(e.corrupt);
	assert_non_null(strstr(e.msg, "resume token saved in "));
	assert_int_equal(delta_token_load(tok_path, &tok), 0);
	/* the token covers written extents only; nothing past the failed write changed */
	assert_true(tok.next_chunk > 0 && tok.next_chunk * CHUNK <= (5u << 20));
	assert_true(same(recv_stem, snap_b, 0, tok.next_chunk * CHUNK));
	assert_true(same(recv_stem, snap_a, 5u << 20, VOL_BYTES - (5u << 20)));
	/* the whole stream again: skipped up to the token, then applied */
	assert_int_equal(apply_from(delta, tok_path, &e), 0);
	assert_true(same(recv_stem, snap_b, 0, VOL_BYTES));
	free(delta);
}

/* A full delta's zstd runs at DELTA_FULL_ZSTD_LEVEL unless a level is given. */
static void test_delta_pipeline__a_full_delta_defaults_to_the_fast_zstd_level(void **state)
{
	static const struct delta_codec_opts modes[] = {
		{.mode = DELTA_CODEC_ZSTD_PREFIX},
		{.mode = DELTA_CODEC_ZSTD},
		{.mode = DELTA_CODEC_ZSTD, .level = DELTA_FULL_ZSTD_LEVEL},
		{.mode = DELTA_CODEC_ZSTD, .level = 3},
	};
	u8 *bytes[ARRAY_SIZE(modes)];
	size_t len[ARRAY_SIZE(modes)];

	for (unsigned i = 0; i < ARRAY_SIZE(modes); i++) {
		struct delta_create_params p;
		struct delta_create_stats st;
		struct delta_error e;
		char *delta = xstrdup(pathf("%s/delta-level-%u", dir, i));

		params(&p, cl_full, 2);
		p.codec = modes[i];
		assert_int_equal(create_to(delta, &p, &st, &e), 0);
		bytes[i] = get_file(delta, &len[i]);
		free(delta);
	}
	for (unsigned i = 1; i < 3; i++) {
		assert_int_equal(len[i], len[0]);
		assert_memory_equal(bytes[i], bytes[0], len[0]);
	}
	assert_true(len[3] != len[0] || memcmp(bytes[3], bytes[0], len[0]));
	for (unsigned i = 0; i < ARRAY_SIZE(modes); i++)
		free(bytes[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_delta_pipeline__the_stream_does_not_depend_on_the_worker_count),
		cmocka_unit_test(test_delta_pipeline__a_cut_threaded_stream_resumes_from_the_token),
		cmocka_unit_test(test_delta_pipeline__a_failing_writer_stops_the_stream),
		cmocka_unit_test(test_delta_pipeline__a_failing_worker_fails_the_call),
		cmocka_unit_test(
			test_delta_pipeline__a_failing_origin_write_leaves_the_token_at_what_was_written),
		cmocka_unit_test(test_delta_pipeline__a_full_delta_defaults_to_the_fast_zstd_level),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
