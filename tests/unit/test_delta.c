// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_delta.c - `ddsnap delta create` and `ddsnap delta apply` on files named like
 * Zumastor devices (<stem>, <stem>(T)): every codec option reproduces the target exactly,
 * including chunks zeroed (discarded) between the snapshots; a bit flip in an extent's
 * payload stops apply before that extent is written, leaves the source snapshot intact and
 * a token from which both a resumed stream and the re-sent full stream complete the
 * transfer; a truncated stream likewise; a receiver whose source snapshot differs is
 * refused; full deltas; stdin/stdout.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>
#include <cmocka.h>
#include "delta/changelist.h"
#include "commands.h"
#include "delta/delta_stream.h"
#include "lib/testfiles.h"

#define CHUNK	  4096u
#define NCHUNKS	  1024u
#define VOL_BYTES ((size_t)CHUNK * NCHUNKS)
#define TAG_A	  1u
#define TAG_B	  2u
/* the end of run_delta()'s argument list: a typed null pointer, as variadic functions need */
#define END ((char *)NULL)

static char dir[] = "/tmp/test_deltaXXXXXX";
static char send_stem[128], recv_stem[128], cl_path[128], delta_path[128], tok_path[128];
static u8 *snap_a, *snap_b;
static u64 rng = 0x9e3779b97f4a7c15ull;

static u32 rnd(void)
{
	return (u32)(xorshift64(&rng) >> 11);
}

static void assert_file(const char *path, const u8 *want, size_t len)
{
	size_t n;
	u8 *p = get_file(path, &n);

	assert_int_equal(n, len);
	for (size_t c = 0; c < len / CHUNK; c++)
		if (memcmp(p + c * CHUNK, want + c * CHUNK, CHUNK))
			fail_msg("%s differs at chunk %zu", path, c);
	free(p);
}

static const char *text[] = {"the quick brown fox ", "jumps over ",
			     "the lazy dog\n",	     "snapshot ",
			     "replication ",	     "2026-11-21 08:00:00 INFO ok\n"};

static void fill_text(u8 *p, size_t len)
{
	size_t i = 0;

	while (i < len)
		for (const char *w = text[rnd() % ARRAY_SIZE(text)]; *w && i < len; w++)
			p[i++] = (u8)*w;
}

/* Snapshot A: text, binary, zero regions.  B: A with realistic changes. */
static void make_snapshots(void)
{
	snap_a = malloc(VOL_BYTES);
	snap_b = malloc(VOL_BYTES);
	fill_text(snap_a, VOL_BYTES / 2);
	for (size_t i = VOL_BYTES / 2; i < VOL_BYTES * 3 / 4; i++)
		snap_a[i] = (u8)rnd();
	memset(snap_a + VOL_BYTES * 3 / 4, 0, VOL_BYTES / 4);
	memcpy(snap_b, snap_a, VOL_BYTES);
	for (int i = 0; i < 40; i++) /* scattered byte edits */
		snap_b[(size_t)rnd() % VOL_BYTES] ^= 0x5a;
	fill_text(snap_b + 100 * CHUNK, 70 * CHUNK);	   /* a rewritten file (70 chunks) */
	memset(snap_b + 300 * CHUNK, 0, 9 * CHUNK);	   /* discarded: must reach the replica */
	for (size_t i = 600 * CHUNK; i < 603 * CHUNK; i++) /* new binary data */
		snap_b[i] = (u8)rnd();
	fill_text(snap_b + 800 * CHUNK + 100, 5 * CHUNK); /* appended into the zero region */
}

/* The changelist A -> B: every differing chunk plus a few unchanged ones. */
static void make_changelist(u32 src_tag)
{
	struct changelist_header h = {.chunk_size = CHUNK,
				      .src_tag = src_tag,
				      .tgt_tag = TAG_B,
				      .src_gen = 10,
				      .tgt_gen = 20,
				      .volume_chunks = NCHUNKS};
	struct changelist_writer *w;

	memcpy(h.uuid, "volume-uuid-0001", 16);
	assert_int_equal(changelist_create(&w, cl_path, &h), 0);
	for (u32 c = 0; c < NCHUNKS; c++)
		if (src_tag == DDSNAP_TAG_NONE || c == 7 || c == 8 ||
		    memcmp(snap_a + (size_t)c * CHUNK, snap_b + (size_t)c * CHUNK, CHUNK))
			assert_int_equal(changelist_append(w, c), 0);
	assert_int_equal(changelist_commit(w), 0);
}

/* Receiver: origin = A, snapshot A = A; no token. */
static void reset_receiver(void)
{
	put_file(recv_stem, snap_a, VOL_BYTES);
	put_file(pathf("%s(%u)", recv_stem, TAG_A), snap_a, VOL_BYTES);
	unlink(tok_path);
}

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(send_stem, sizeof(send_stem), "%s/send", dir);
	snprintf(recv_stem, sizeof(recv_stem), "%s/recv", dir);
	snprintf(cl_path, sizeof(cl_path), "%s/changelist", dir);
	snprintf(delta_path, sizeof(delta_path), "%s/delta", dir);
	snprintf(tok_path, sizeof(tok_path), "%s/token", dir);
	make_snapshots();
	put_file(pathf("%s(%u)", send_stem, TAG_A), snap_a, VOL_BYTES);
	put_file(pathf("%s(%u)", send_stem, TAG_B), snap_b, VOL_BYTES);
	make_changelist(TAG_A);
	return 0;
}

static int teardown(void **state)
{
	free(snap_a);
	free(snap_b);
	return system(pathf("rm -rf %s", dir));
}

static void test_delta__every_codec_reproduces_target(void **state)
{
	static const char *opts[] = {"-r", "-z",	   "-z9", "--zstd", "--zstd=12",
				     "-x", "--zstd-delta", "-b",  NULL};
	size_t raw_size = 0;

	for (int i = 0; i < (int)ARRAY_SIZE(opts); i++) {
		size_t n;

		if (opts[i])
			assert_int_equal(
				run_delta("create", opts[i], cl_path, delta_path, send_stem, END),
				EXIT_OK);
		else
			assert_int_equal(run_delta("create", cl_path, delta_path, send_stem, END),
					 EXIT_OK);
		free(get_file(delta_path, &n));
		if (i == 0)
			raw_size = n;
		else
			assert_true(n < raw_size / 2); /* everything beats raw on this data */
		reset_receiver();
		assert_int_equal(run_delta("apply", "-t", tok_path, delta_path, recv_stem, END),
				 EXIT_OK);
		assert_file(recv_stem, snap_b, VOL_BYTES);
		assert_file(pathf("%s(%u)", recv_stem, TAG_A), snap_a, VOL_BYTES);
		assert_int_equal(access(tok_path, F_OK), -1); /* complete: no token left */
	}
}

/* Offsets of each record's payload in a delta file. */
struct counted {
	int fd;
	size_t off;
};

static ssize_t counted_read(void *arg, void *buf, size_t len)
{
	struct counted *c = arg;
	ssize_t n = delta_fd_read(&c->fd, buf, len);

	if (n > 0)
		c->off += (size_t)n;
	return n;
}

static size_t payload_offset(const char *path, u64 seq, u64 *chunk)
{
	struct counted c = {.fd = open(path, O_RDONLY)};
	struct delta_reader *r = delta_reader_new(counted_read, &c);
	struct delta_record rec;
	size_t off = 0;

	assert_int_equal(delta_reader_header(r, NULL), 0);
	while (delta_reader_next(r, &rec) == 1)
		if (rec.seq == seq) {
			assert_int_equal(rec.type, DELTA_REC_EXTENT);
			off = c.off - ROUND_UP(rec.payload_len, 4) + rec.payload_len / 2;
			*chunk = rec.chunk;
			break;
		}
	delta_reader_free(r);
	close(c.fd);
	assert_true(off > 0);
	return off;
}

/* What the receiver's origin must hold after records [0, k) were applied: B's chunks for
 * the changelist chunks below @chunk, A's everywhere else. */
static u8 *partial_expect(u64 chunk)
{
	u8 *e = malloc(VOL_BYTES);

	memcpy(e, snap_a, VOL_BYTES);
	memcpy(e, snap_b, (size_t)chunk * CHUNK);
	return e;
}

static void corrupt_apply_resume(const char *codec)
{
	u64 bad_chunk;
	size_t off, n;
	u8 *d, *expect;
	struct delta_token tok;

	assert_int_equal(run_delta("create", codec, cl_path, delta_path, send_stem, END), EXIT_OK);
	off = payload_offset(delta_path, 3, &bad_chunk);
	d = get_file(delta_path, &n);
	d[off] ^= 0x10;
	put_file(pathf("%s.bad", delta_path), d, n);
	reset_receiver();
	assert_int_equal(
		run_delta("apply", "-t", tok_path, pathf("%s.bad", delta_path), recv_stem, END),
		EXIT_CORRUPT);
	/* records 0..2 applied, record 3 not written, nothing after it */
	expect = partial_expect(bad_chunk);
	assert_file(recv_stem, expect, VOL_BYTES);
	assert_file(pathf("%s(%u)", recv_stem, TAG_A), snap_a, VOL_BYTES);
	assert_int_equal(delta_token_load(tok_path, &tok), 0);
	assert_int_equal(tok.next_seq, 3);
	assert_true(tok.next_chunk <= bad_chunk); /* the end of record 2 */
	/* resume 1: the sender restarts from the token */
	assert_int_equal(run_delta("create", codec, "--resume", tok_path, cl_path,
				   pathf("%s.resumed", delta_path), send_stem, END),
			 EXIT_OK);
	assert_int_equal(
		run_delta("apply", "-t", tok_path, pathf("%s.resumed", delta_path), recv_stem, END),
		EXIT_OK);
	assert_file(recv_stem, snap_b, VOL_BYTES);
	/* a resumed stream without the token is refused, and writes nothing */
	reset_receiver();
	assert_int_equal(run_delta("apply", pathf("%s.resumed", delta_path), recv_stem, END),
			 EXIT_FAIL);
	assert_file(recv_stem, snap_a, VOL_BYTES);
	/* resume 2: the whole good stream is sent again; applied records are skipped */
	assert_int_equal(
		run_delta("apply", "-t", tok_path, pathf("%s.bad", delta_path), recv_stem, END),
		EXIT_CORRUPT);
	assert_int_equal(run_delta("apply", "-t", tok_path, delta_path, recv_stem, END), EXIT_OK);
	assert_file(recv_stem, snap_b, VOL_BYTES);
	assert_int_equal(access(tok_path, F_OK), -1);
	free(expect);
	free(d);
}

static void test_delta__corrupt_payload_zstd_prefix(void **state)
{
	corrupt_apply_resume("--zstd-delta");
}

/* A token must not let a different stream skip records it never carried. */
static void test_delta__token_refuses_other_stream(void **state)
{
	u64 bad_chunk;
	size_t off, n, tok_len;
	u8 *d, *tok0;

	assert_int_equal(
		run_delta("create", "-r", cl_path, pathf("%s.raw", delta_path), send_stem, END),
		EXIT_OK);
	assert_int_equal(run_delta("create", "--zstd", cl_path, delta_path, send_stem, END),
			 EXIT_OK);
	off = payload_offset(delta_path, 5, &bad_chunk);
	d = get_file(delta_path, &n);
	d[off] ^= 0x01;
	put_file(pathf("%s.bad", delta_path), d, n);
	free(d);
	reset_receiver();
	assert_int_equal(
		run_delta("apply", "-t", tok_path, pathf("%s.bad", delta_path), recv_stem, END),
		EXIT_CORRUPT);
	/* the raw stream has the same chunks but other bytes: refused at the resume point, and
	 * the token stays the one of the stream that was applied, however often it is tried */
	tok0 = get_file(tok_path, &tok_len);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(run_delta("apply", "-t", tok_path, pathf("%s.raw", delta_path),
					   recv_stem, END),
				 EXIT_FAIL);
		d = get_file(tok_path, &n);
		assert_int_equal(n, tok_len);
		assert_memory_equal(d, tok0, n);
		free(d);
	}
	free(tok0);
	/* without the token it is simply applied from the start */
	assert_int_equal(run_delta("apply", pathf("%s.raw", delta_path), recv_stem, END), EXIT_OK);
	assert_file(recv_stem, snap_b, VOL_BYTES);
}

static void test_delta__corrupt_payload_xdelta3(void **state)
{
	corrupt_apply_resume("-x");
}

static void test_delta__corrupt_payload_raw(void **state)
{
	corrupt_apply_resume("-r");
}

static void test_delta__truncated_stream_resumes(void **state)
{
	size_t n;
	u8 *d;
	struct delta_token tok;

	assert_int_equal(run_delta("create", "-b", cl_path, delta_path, send_stem, END), EXIT_OK);
	d = get_file(delta_path, &n);
	for (size_t cut = 0; cut < n; cut += n / 7 + 1) {
		put_file(pathf("%s.cut", delta_path), d, cut);
		reset_receiver();
		assert_int_equal(run_delta("apply", "-t", tok_path, pathf("%s.cut", delta_path),
					   recv_stem, END),
				 EXIT_CORRUPT);
		assert_file(pathf("%s(%u)", recv_stem, TAG_A), snap_a, VOL_BYTES);
		if (delta_token_load(tok_path, &tok) == 0) {
			u8 *e = partial_expect(tok.next_chunk);

			assert_file(recv_stem, e, VOL_BYTES);
			free(e);
			assert_int_equal(run_delta("create", "-b", "--resume", tok_path, cl_path,
						   pathf("%s.resumed", delta_path), send_stem, END),
					 EXIT_OK);
			assert_int_equal(run_delta("apply", "-t", tok_path,
						   pathf("%s.resumed", delta_path), recv_stem, END),
					 EXIT_OK);
		} else {
			assert_int_equal(run_delta("apply", delta_path, recv_stem, END), EXIT_OK);
		}
		assert_file(recv_stem, snap_b, VOL_BYTES);
	}
	free(d);
}

static void test_delta__source_mismatch_refused(void **state)
{
	u8 *a2 = malloc(VOL_BYTES);

	assert_int_equal(run_delta("create", "--zstd-delta", cl_path, delta_path, send_stem, END),
			 EXIT_OK);
	reset_receiver();
	memcpy(a2, snap_a, VOL_BYTES);
	a2[150 * CHUNK + 5] ^= 1; /* the receiver's A is not the sender's A */
	put_file(pathf("%s(%u)", recv_stem, TAG_A), a2, VOL_BYTES);
	/* --check finds it without writing anything; a good receiver passes the check */
	assert_int_equal(run_delta("apply", "-n", delta_path, recv_stem, END), EXIT_FAIL);
	assert_file(recv_stem, snap_a, VOL_BYTES);
	assert_int_equal(run_delta("apply", "-n", "-t", tok_path, delta_path, recv_stem, END),
			 EXIT_USAGE);
	put_file(pathf("%s(%u)", recv_stem, TAG_A), snap_a, VOL_BYTES);
	assert_int_equal(run_delta("apply", "--check", delta_path, recv_stem, END), EXIT_OK);
	assert_file(recv_stem, snap_a, VOL_BYTES);
	put_file(pathf("%s(%u)", recv_stem, TAG_A), a2, VOL_BYTES);
	assert_int_equal(run_delta("apply", delta_path, recv_stem, END), EXIT_FAIL);
	/* nothing at or after the mismatching extent was written */
	{
		size_t n;
		u8 *o = get_file(recv_stem, &n);

		for (size_t c = 150; c < NCHUNKS; c++)
			assert_memory_equal(o + c * CHUNK, snap_a + c * CHUNK, CHUNK);
		free(o);
	}
	assert_file(pathf("%s(%u)", recv_stem, TAG_A), a2, VOL_BYTES);
	/* a raw delta is refused too: every incremental extent carries the source checksum */
	assert_int_equal(run_delta("create", "-r", cl_path, delta_path, send_stem, END), EXIT_OK);
	assert_int_equal(run_delta("apply", "-n", delta_path, recv_stem, END), EXIT_FAIL);
	/* unless the sender chose not to read its source */
	assert_int_equal(
		run_delta("create", "-r", "--no-source-check", cl_path, delta_path, send_stem, END),
		EXIT_OK);
	assert_int_equal(run_delta("apply", "-n", delta_path, recv_stem, END), EXIT_OK);
	free(a2);
}

static void test_delta__full_delta_and_pipes(void **state)
{
	int saved_out = dup(1), saved_in = dup(0), fd;
	u8 *zero = calloc(1, VOL_BYTES);

	make_changelist(DDSNAP_TAG_NONE);
	/* create to stdout */
	fd = open(delta_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	dup2(fd, 1);
	close(fd);
	assert_int_equal(run_delta("create", "-b", cl_path, "-", send_stem, END), EXIT_OK);
	dup2(saved_out, 1);
	/* apply from stdin onto an empty origin, with no snapshot A at all */
	put_file(recv_stem, zero, VOL_BYTES);
	unlink(pathf("%s(%u)", recv_stem, TAG_A));
	fd = open(delta_path, O_RDONLY);
	assert_true(fd >= 0);
	dup2(fd, 0);
	close(fd);
	assert_int_equal(run_delta("apply", "-", recv_stem, END), EXIT_OK);
	dup2(saved_in, 0);
	close(saved_in);
	close(saved_out);
	assert_file(recv_stem, snap_b, VOL_BYTES);
	/* the default (differencing) codec compresses a full delta instead */
	{
		size_t n;

		assert_int_equal(run_delta("create", cl_path, delta_path, send_stem, END), EXIT_OK);
		free(get_file(delta_path, &n));
		assert_true(n < VOL_BYTES / 3);
		put_file(recv_stem, zero, VOL_BYTES);
		assert_int_equal(run_delta("apply", delta_path, recv_stem, END), EXIT_OK);
		assert_file(recv_stem, snap_b, VOL_BYTES);
	}
	free(zero);
	make_changelist(TAG_A);
}

static void test_delta__usage_and_bad_inputs(void **state)
{
	size_t n;
	u8 *d;

	assert_int_equal(run_delta("frobnicate", END), EXIT_USAGE);
	assert_int_equal(run_delta("create", cl_path, END), EXIT_USAGE);
	assert_int_equal(run_delta("create", "-z12", cl_path, delta_path, send_stem, END),
			 EXIT_USAGE);
	assert_int_equal(run_delta("create", "-l", "fast", cl_path, delta_path, send_stem, END),
			 EXIT_USAGE);
	assert_int_equal(run_delta("apply", delta_path, END), EXIT_USAGE);
	assert_int_equal(run_delta("changelist", "/nonexistent.sock", cl_path, "1", END),
			 EXIT_USAGE);
	assert_int_equal(run_delta("changelist", "/nonexistent.sock", cl_path, "1", "none", END),
			 EXIT_USAGE);
	assert_int_equal(run_delta("changelist", pathf("%s/no.sock", dir), pathf("%s/cl2", dir),
				   "none", "origin", END),
			 EXIT_FAIL);
	assert_int_equal(access(pathf("%s/cl2", dir), F_OK), -1);
	/* a corrupt changelist yields no delta */
	d = get_file(cl_path, &n);
	d[n - 3] ^= 1;
	put_file(pathf("%s.bad", cl_path), d, n);
	assert_int_equal(run_delta("create", pathf("%s.bad", cl_path), delta_path, send_stem, END),
			 EXIT_CORRUPT);
	free(d);
	/* a missing snapshot device */
	assert_int_equal(
		run_delta("create", "-x", cl_path, delta_path, pathf("%s/nothere", dir), END),
		EXIT_FAIL);
	/* not a delta */
	assert_int_equal(run_delta("apply", cl_path, recv_stem, END), EXIT_CORRUPT);
	/* a rate limit is honoured: a full delta (~3 MiB) at 8 MiB/s after a 1 MiB burst */
	make_changelist(DDSNAP_TAG_NONE);
	{
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(
			run_delta("create", "-r", "-l", "8M", cl_path, delta_path, send_stem, END),
			EXIT_OK);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		free(get_file(delta_path, &n));
		assert_true(n > (2u << 20));
		assert_true((double)(t1.tv_sec - t0.tv_sec) +
				    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 >=
			    (double)(n - (1u << 20)) / (8 << 20) * 0.9);
	}
	make_changelist(TAG_A);
}

/*
 * Model check over random cases (seed printed): random changes between A and B, a random
 * codec, then the stream is delivered intact, bit-flipped or truncated at a random byte.
 * Whatever happens, the receiver's origin must be A with B's chunks exactly below the
 * token's next chunk (or all of B on success; or all of A and no token when the damage is in
 * the stream header), snapshot A must be untouched, and re-sending the good stream with the
 * token must complete the transfer.
 */
static void test_delta__random_corruption_model(void **state)
{
	static const char *codecs[] = {"-r", "-z1", "--zstd", "-x", "--zstd-delta", "-b"};
	const char *env = getenv("DELTA_TEST_SEED"); /* replay a failure */
	u64 seed = env ? strtoull(env, NULL, 0) : (u64)time(NULL);
	u8 *a0 = snap_a, *b0 = snap_b;

	print_message("random corruption model: DELTA_TEST_SEED=%llu\n", (unsigned long long)seed);
	rng = seed | 1;
	for (int iter = 0; iter < 12; iter++) {
		const char *codec = codecs[rnd() % ARRAY_SIZE(codecs)];
		struct delta_token tok;
		size_t n, at;
		u8 *d, *e;
		int kind = (int)(rnd() % 3), rc;

		snap_a = malloc(VOL_BYTES);
		snap_b = malloc(VOL_BYTES);
		memcpy(snap_a, a0, VOL_BYTES);
		memcpy(snap_b, a0, VOL_BYTES);
		for (int k = 0; k < 12; k++) { /* random runs of new, zeroed or edited chunks */
			size_t c = rnd() % NCHUNKS, len = 1 + rnd() % 40;

			len = MIN(len, NCHUNKS - c) * CHUNK;
			switch (rnd() % 3) {
			case 0:
				fill_text(snap_b + c * CHUNK, len);
				break;
			case 1:
				memset(snap_b + c * CHUNK, 0, len);
				break;
			default:
				for (size_t i = 0; i < len; i += 512)
					snap_b[c * CHUNK + i + rnd() % 512] ^= 0x77;
			}
		}
		put_file(pathf("%s(%u)", send_stem, TAG_A), snap_a, VOL_BYTES);
		put_file(pathf("%s(%u)", send_stem, TAG_B), snap_b, VOL_BYTES);
		make_changelist(TAG_A);
		assert_int_equal(run_delta("create", codec, cl_path, delta_path, send_stem, END),
				 EXIT_OK);
		d = get_file(delta_path, &n);
		at = rnd() % n; /* the header's bytes too */
		if (kind == 1)
			d[at] ^= (u8)(1u << (rnd() % 8));
		put_file(pathf("%s.x", delta_path), d, kind == 2 ? at : n);
		free(d);
		reset_receiver();
		rc = run_delta("apply", "-t", tok_path, pathf("%s.x", delta_path), recv_stem, END);
		if (rc == EXIT_OK) {
			assert_int_equal(kind, 0); /* damage is always detected */
			assert_file(recv_stem, snap_b, VOL_BYTES);
		} else {
			/* damage in the stream header: nothing written, so no token to keep */
			rc = delta_token_load(tok_path, &tok);
			if (rc == -ENOENT)
				tok.next_chunk = 0;
			else
				assert_int_equal(rc, 0);
			e = partial_expect(tok.next_chunk);
			assert_file(recv_stem, e, VOL_BYTES);
			free(e);
			assert_int_equal(
				run_delta("apply", "-t", tok_path, delta_path, recv_stem, END),
				EXIT_OK);
			assert_file(recv_stem, snap_b, VOL_BYTES);
		}
		assert_file(pathf("%s(%u)", recv_stem, TAG_A), snap_a, VOL_BYTES);
		free(snap_a);
		free(snap_b);
	}
	snap_a = a0;
	snap_b = b0;
	put_file(pathf("%s(%u)", send_stem, TAG_A), snap_a, VOL_BYTES);
	put_file(pathf("%s(%u)", send_stem, TAG_B), snap_b, VOL_BYTES);
	make_changelist(TAG_A);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delta__every_codec_reproduces_target),
		cmocka_unit_test(test_delta__corrupt_payload_zstd_prefix),
		cmocka_unit_test(test_delta__token_refuses_other_stream),
		cmocka_unit_test(test_delta__corrupt_payload_xdelta3),
		cmocka_unit_test(test_delta__corrupt_payload_raw),
		cmocka_unit_test(test_delta__truncated_stream_resumes),
		cmocka_unit_test(test_delta__source_mismatch_refused),
		cmocka_unit_test(test_delta__full_delta_and_pipes),
		cmocka_unit_test(test_delta__usage_and_bad_inputs),
		cmocka_unit_test(test_delta__random_corruption_model),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
