// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_delta_pipeline.c - delta_create_stream()'s pipeline (delta_create.c: the caller's
 * thread reads, workers encode, a writer writes in stream order) on a volume of several
 * batches: the stream is the same bytes whatever the number of workers, for a full and an
 * incremental delta, and applies to the target, and the same whatever the number of
 * device reads in flight (io_depth 1, 4, 16), applied at either depth; a threaded stream cut in the middle
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
#include "lib/deltafix.h"
#include "lib/testfiles.h"

#define CHUNK	  4096u
#define NCHUNKS	  6144u /* 24 MiB: a full delta is two batches of 16 MiB */
#define VOL_BYTES ((size_t)CHUNK * NCHUNKS)
#define TAG_A	  DELTAFIX_TAG_A
#define TAG_B	  DELTAFIX_TAG_B

static struct deltafix F;
static char cl_incr[128], cl_full[128], cl_pairs[128];
static u8 *pairs_b; /* A with the pairs changelist's chunks of B */
static u64 rng = 0x9e3779b97f4a7c15ull;

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

/*
 * A changelist of 1,020 two-chunk runs (chunks 4k and 4k + 1 of the first 4,080, each run
 * one data item): all fit one batch by their items, while counting an item per chunk of
 * the runs whose reads are pending would end it early (two xdelta3 batches, not one).
 * Applied to A it makes pairs_b.
 */
static void pairs_changelist(const char *path)
{
	struct changelist_header h = {.chunk_size = CHUNK,
				      .src_tag = TAG_A,
				      .tgt_tag = TAG_B,
				      .src_gen = 1,
				      .tgt_gen = 2,
				      .volume_chunks = NCHUNKS};
	struct changelist_writer *w;

	memcpy(h.uuid, "volume-uuid-0003", sizeof(h.uuid));
	assert_int_equal(changelist_create(&w, path, &h), 0);
	pairs_b = xmalloc(VOL_BYTES);
	memcpy(pairs_b, F.a, VOL_BYTES);
	for (u32 c = 0; c < 4080; c += 4) {
		memcpy(pairs_b + (size_t)c * CHUNK, F.b + (size_t)c * CHUNK, 2 * CHUNK);
		assert_int_equal(changelist_append(w, c), 0);
		assert_int_equal(changelist_append(w, c + 1), 0);
	}
	assert_int_equal(changelist_commit(w), 0);
}

/*
 * A: text with a zero stretch.  B: every other chunk of the first 4,096 rewritten (2,048
 * one-chunk runs: three batches of at most 1,024 items), 64 chunks zeroed and a 512-chunk
 * run rewritten (extents of 1 MiB).
 */
static int setup(void **state)
{
	if (deltafix_init(&F, "test_delta_pipeline", CHUNK, NCHUNKS))
		return -1;
	snprintf(cl_incr, sizeof(cl_incr), "%s/cl-incr", F.dir);
	snprintf(cl_full, sizeof(cl_full), "%s/cl-full", F.dir);
	fill(F.a, VOL_BYTES);
	memset(F.a + 5000 * (size_t)CHUNK, 0, 100 * CHUNK);
	memcpy(F.b, F.a, VOL_BYTES);
	for (u32 c = 0; c < 4096; c += 2)
		fill(F.b + (size_t)c * CHUNK, 100);
	memset(F.b + 4200 * (size_t)CHUNK, 0, 64 * CHUNK);
	fill(F.b + 5400 * (size_t)CHUNK, 512 * CHUNK);
	deltafix_publish(&F);
	deltafix_changelist(&F, cl_incr, TAG_A, "volume-uuid-0003");
	deltafix_changelist(&F, cl_full, DDSNAP_TAG_NONE, "volume-uuid-0003");
	snprintf(cl_pairs, sizeof(cl_pairs), "%s/cl-pairs", F.dir);
	pairs_changelist(cl_pairs);
	return 0;
}

static int teardown(void **state)
{
	free(pairs_b);
	return deltafix_fini(&F);
}

static void params(struct delta_create_params *p, const char *cl, unsigned threads)
{
	*p = (struct delta_create_params){.cmd = "delta",
					  .changelist = cl,
					  .devstem = F.send_stem,
					  .threads = threads,
					  .codec = {.mode = DELTA_CODEC_ZSTD_PREFIX}};
}

/* Applies the stream in @path to the receiver (stats not looked at). */
static int apply_from(const char *path, const char *token, struct delta_error *e)
{
	struct delta_apply_stats st;

	return deltafix_apply_from(&F, path, token, &st, e);
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
			char *delta = xstrdup(pathf("%s/delta-%u-%u", F.dir, k, threads[i]));
			size_t len;
			u8 *bytes;

			params(&p, cls[k], threads[i]);
			assert_int_equal(deltafix_create_to(delta, &p, &st, &e), 0);
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
			deltafix_reset_receiver(&F);
			assert_int_equal(apply_from(delta, NULL, &e), 0);
			assert_true(deltafix_same(F.recv_stem, F.b, 0, VOL_BYTES));
			free(delta);
		}
		free(first);
	}
}

/* The stream is the same bytes with the reads one by one (io_depth 1, the order of the
 * single-threaded loop) as with 16 in flight and 4: the batch boundaries wait for the
 * pending reads where the items might not fit (the incremental's one-chunk runs), never
 * on timing; and the receiver applies it at either depth. */
static void test_delta_pipeline__the_stream_does_not_depend_on_the_io_depth(void **state)
{
	static const unsigned depths[] = {1, 0, 4};
	const char *cls[] = {cl_incr, cl_full, cl_pairs};

	for (unsigned k = 0; k < ARRAY_SIZE(cls); k++) {
		u8 *first = NULL;
		size_t first_len = 0;
		u64 first_runs = 0;

		for (unsigned i = 0; i < ARRAY_SIZE(depths); i++) {
			struct delta_create_params p;
			struct delta_create_stats st;
			struct delta_error e;
			char *delta = xstrdup(pathf("%s/delta-depth-%u-%u", F.dir, k, depths[i]));
			size_t len;
			u8 *bytes;

			params(&p, cls[k], 2);
			if (cls[k] == cl_pairs) /* xdelta3 runs per batch: boundaries show */
				p.codec.mode = DELTA_CODEC_XDELTA3;
			p.io_depth = depths[i];
			assert_int_equal(deltafix_create_to(delta, &p, &st, &e), 0);
			bytes = get_file(delta, &len);
			if (!first) {
				first = bytes;
				first_len = len;
				first_runs = st.codec.xdelta3_runs;
			} else {
				assert_int_equal(len, first_len);
				assert_memory_equal(bytes, first, len);
				/* the same batches: xdelta3 runs once or twice per batch */
				assert_int_equal(st.codec.xdelta3_runs, first_runs);
				free(bytes);
			}
			deltafix_reset_receiver(&F);
			F.io_depth = depths[i];
			assert_int_equal(apply_from(delta, NULL, &e), 0);
			F.io_depth = 0;
			assert_true(deltafix_same(F.recv_stem, cls[k] == cl_pairs ? pairs_b : F.b,
						  0, VOL_BYTES));
			free(delta);
		}
		free(first);
	}
}

/* Applies @delta (cut) with the token: fails, the token saved, nothing past it written. */
static void apply_cut(const char *delta, struct delta_token *tok)
{
	struct delta_error e;

	assert_int_equal(apply_from(delta, F.tok_path, &e), -EILSEQ);
	assert_non_null(strstr(e.msg, "resume token saved in "));
	assert_int_equal(delta_token_load(F.tok_path, tok), 0);
	assert_true(tok->next_chunk > 0 && tok->next_chunk < NCHUNKS);
	assert_true(deltafix_same(F.recv_stem, F.a, tok->next_chunk * CHUNK,
				  VOL_BYTES - tok->next_chunk * CHUNK));
	assert_true(deltafix_same(F.recv_stem, F.b, 0, tok->next_chunk * CHUNK));
}

/* A threaded send resumed from the token of a receiver that got part of the stream. */
static void resume_and_finish(const char *cl)
{
	struct delta_create_params p;
	struct delta_create_stats st;
	struct delta_error e;
	char *rest = xstrdup(pathf("%s/rest", F.dir));

	params(&p, cl, 4);
	p.resume = F.tok_path;
	assert_int_equal(deltafix_create_to(rest, &p, &st, &e), 0);
	assert_int_equal(apply_from(rest, F.tok_path, &e), 0);
	assert_true(deltafix_same(F.recv_stem, F.b, 0, VOL_BYTES));
	assert_int_equal(access(F.tok_path, F_OK), -1);
	free(rest);
}

static void test_delta_pipeline__a_cut_threaded_stream_resumes_from_the_token(void **state)
{
	struct delta_create_params p;
	struct delta_create_stats st;
	struct delta_error e;
	struct delta_token tok;
	char *delta = xstrdup(pathf("%s/delta-cut", F.dir));
	struct stat sb;

	params(&p, cl_incr, 4);
	assert_int_equal(deltafix_create_to(delta, &p, &st, &e), 0);
	assert_int_equal(stat(delta, &sb), 0);
	assert_int_equal(truncate(delta, sb.st_size * 3 / 5), 0);
	deltafix_reset_receiver(&F);
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
	char *delta = xstrdup(pathf("%s/delta-efbig", F.dir));
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
	deltafix_reset_receiver(&F);
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
	char *delta = xstrdup(pathf("%s/delta-emfile", F.dir));
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
	deltafix_reset_receiver(&F);
	assert_int_equal(apply_from(delta, F.tok_path, &e), -EILSEQ);
	assert_true(deltafix_same(F.recv_stem, F.a, 0, VOL_BYTES));
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
	char *delta = xstrdup(pathf("%s/delta-full", F.dir));
	int rc;

	params(&p, cl_full, 0);
	assert_int_equal(deltafix_create_to(delta, &p, &st, &e), 0);
	deltafix_reset_receiver(&F);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 5u << 20; /* the origin's writer fails at 5 MiB */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = apply_from(delta, F.tok_path, &e);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(rc, -EFBIG);
	assert_false(e.corrupt);
	assert_non_null(strstr(e.msg, "resume token saved in "));
	assert_int_equal(delta_token_load(F.tok_path, &tok), 0);
	/* the token covers written extents only; nothing past the failed write changed */
	assert_true(tok.next_chunk > 0 && tok.next_chunk * CHUNK <= (5u << 20));
	assert_true(deltafix_same(F.recv_stem, F.b, 0, tok.next_chunk * CHUNK));
	assert_true(deltafix_same(F.recv_stem, F.a, 5u << 20, VOL_BYTES - (5u << 20)));
	/* the whole stream again: skipped up to the token, then applied */
	assert_int_equal(apply_from(delta, F.tok_path, &e), 0);
	assert_true(deltafix_same(F.recv_stem, F.b, 0, VOL_BYTES));
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
		char *delta = xstrdup(pathf("%s/delta-level-%u", F.dir, i));

		params(&p, cl_full, 2);
		p.codec = modes[i];
		assert_int_equal(deltafix_create_to(delta, &p, &st, &e), 0);
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
		cmocka_unit_test(test_delta_pipeline__the_stream_does_not_depend_on_the_io_depth),
		cmocka_unit_test(test_delta_pipeline__a_cut_threaded_stream_resumes_from_the_token),
		cmocka_unit_test(test_delta_pipeline__a_failing_writer_stops_the_stream),
		cmocka_unit_test(test_delta_pipeline__a_failing_worker_fails_the_call),
		cmocka_unit_test(
			test_delta_pipeline__a_failing_origin_write_leaves_the_token_at_what_was_written),
		cmocka_unit_test(test_delta_pipeline__a_full_delta_defaults_to_the_fast_zstd_level),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
