// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_delta_codec.c - every codec round trips on random, zero, compressible and
 * incompressible extents and on realistic edits (bytes changed, inserted, appended); best
 * mode never loses to a single codec; differencing payloads really are small; corrupt and
 * truncated payloads give errors, never crashes; xdelta3 runs once per batch, not per
 * extent; our xdelta3 payloads decode with the xdelta3 program and its output with ours.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "delta/delta_codec.h"

static u64 rng = 88172645463325252ull;

static u32 rnd(void)
{
	return (u32)(xorshift64(&rng) >> 11);
}

enum kind { K_RANDOM, K_ZERO, K_TEXT, K_MIXED, K_NKIND };

static const char *words[] = {"snapshot ",    "origin ", "chunk ",	"the ",
			      "of ",	      "delta ",	 "exception\n", "zumastor ",
			      "replication ", "42 ",	 "volume "};

static void fill(u8 *p, size_t len, enum kind k)
{
	size_t i = 0;

	switch (k) {
	case K_RANDOM:
		for (; i < len; i++)
			p[i] = (u8)rnd();
		break;
	case K_ZERO:
		memset(p, 0, len);
		break;
	case K_TEXT:
		while (i < len) {
			const char *w = words[rnd() % ARRAY_SIZE(words)];

			for (; *w && i < len; w++)
				p[i++] = (u8)*w;
		}
		break;
	default: /* half text, a zero hole, random tail: a typical filesystem block mix */
		fill(p, len / 2, K_TEXT);
		memset(p + len / 2, 0, len / 4);
		fill(p + len / 2 + len / 4, len - len / 2 - len / 4, K_RANDOM);
		break;
	}
}

enum edit { E_NONE, E_BYTES, E_INSERT, E_APPEND, E_REWRITE, E_NEDIT };

/* Makes tgt from src by a realistic edit. */
static void edit(const u8 *src, u8 *tgt, size_t len, enum edit e)
{
	memcpy(tgt, src, len);
	switch (e) {
	case E_BYTES:
		for (int i = 0; i < 8; i++)
			tgt[rnd() % len] ^= (u8)(1 + rnd() % 255);
		break;
	case E_INSERT: {
		size_t at = rnd() % len, k = MIN(len - at, (size_t)37);

		memmove(tgt + at + k, tgt + at, len - at - k);
		for (size_t i = 0; i < k; i++)
			tgt[at + i] = (u8)('a' + i % 26);
		break;
	}
	case E_APPEND: /* the source ended mid-extent (zeros); the target filled part of it */
		memset(tgt + len / 2, 0, len - len / 2);
		memcpy((u8 *)src + len / 2, tgt + len / 2, len - len / 2); /* src: zero tail */
		fill(tgt + len / 2, len / 4, K_TEXT);
		break;
	case E_REWRITE:
		fill(tgt, len, K_RANDOM);
		break;
	default:
		break;
	}
}

static struct delta_codec *codec(int mode, int level)
{
	struct delta_codec_opts o = {.mode = mode, .level = level};
	struct delta_codec *dc = delta_codec_new(&o);

	assert_non_null(dc);
	return dc;
}

/* Encodes (src may be NULL), decodes, compares; returns the payload size. */
static size_t roundtrip(struct delta_codec *dc, const u8 *src, const u8 *tgt, size_t len,
			u32 *codec_out)
{
	u8 *out = malloc(delta_codec_bound(len)), *back = malloc(len);
	struct delta_job j = {
		.src = src, .src_len = src ? len : 0, .tgt = tgt, .len = len, .out = out};
	struct delta_djob d;
	size_t sz;

	assert_int_equal(delta_codec_encode(dc, &j), 0);
	assert_true(j.out_len <= len);
	assert_true(j.codec == DELTA_CODEC_RAW || j.out_len < len);
	d = (struct delta_djob){.codec = j.codec,
				.payload = out,
				.payload_len = j.out_len,
				.src = src,
				.src_len = src ? len : 0,
				.tgt = back,
				.len = len};
	assert_int_equal(delta_codec_decode(dc, &d), 0);
	assert_memory_equal(back, tgt, len);
	sz = j.out_len;
	if (codec_out)
		*codec_out = j.codec;
	free(out);
	free(back);
	return sz;
}

static void test_delta_codec__every_codec_roundtrips(void **state)
{
	static const size_t lens[] = {512, 4096, 12288, 65536, 1u << 20};
	int modes[] = {DELTA_CODEC_RAW,	    DELTA_CODEC_ZLIB,	     DELTA_CODEC_ZSTD,
		       DELTA_CODEC_XDELTA3, DELTA_CODEC_ZSTD_PREFIX, DELTA_MODE_BEST};

	for (unsigned m = 0; m < ARRAY_SIZE(modes); m++) {
		struct delta_codec *dc = codec(modes[m], 0);

		for (unsigned l = 0; l < ARRAY_SIZE(lens); l++) {
			size_t len = lens[l];
			u8 *src = malloc(len), *tgt = malloc(len);

			for (int k = 0; k < K_NKIND; k++)
				for (int e = 0; e < E_NEDIT; e++) {
					if (len == (1u << 20) && e != E_BYTES && e != E_NONE)
						continue; /* keep the run short */
					fill(src, len, (enum kind)k);
					edit(src, tgt, len, (enum edit)e);
					roundtrip(dc, src, tgt, len, NULL);
					/* full deltas: no source at all */
					if (e == E_NONE)
						roundtrip(dc, NULL, tgt, len, NULL);
				}
			free(src);
			free(tgt);
		}
		delta_codec_free(dc);
	}
}

static void test_delta_codec__differencing_is_small_for_small_edits(void **state)
{
	size_t len = 65536;
	u8 *src = malloc(len), *tgt = malloc(len);
	u32 c;

	fill(src, len, K_RANDOM);
	for (int e = E_BYTES; e <= E_INSERT; e++) {
		struct delta_codec *x = codec(DELTA_CODEC_XDELTA3, 0);
		struct delta_codec *p = codec(DELTA_CODEC_ZSTD_PREFIX, 0);
		struct delta_codec *z = codec(DELTA_CODEC_ZSTD, 0);
		size_t sx, sp, sz;

		edit(src, tgt, len, (enum edit)e);
		sx = roundtrip(x, src, tgt, len, &c);
		assert_int_equal(c, DELTA_CODEC_XDELTA3);
		sp = roundtrip(p, src, tgt, len, &c);
		assert_int_equal(c, DELTA_CODEC_ZSTD_PREFIX);
		sz = roundtrip(z, src, tgt, len, &c);
		/* random data: compression alone cannot help, differencing must */
		assert_int_equal(c, DELTA_CODEC_RAW);
		assert_int_equal(sz, len);
		assert_true(sx < 400);
		assert_true(sp < 400);
		delta_codec_free(x);
		delta_codec_free(p);
		delta_codec_free(z);
	}
	free(src);
	free(tgt);
}

static void test_delta_codec__best_never_loses(void **state)
{
	size_t len = 32768;
	u8 *src = malloc(len), *tgt = malloc(len);
	struct delta_codec *b = codec(DELTA_MODE_BEST, 0);

	for (int k = 0; k < K_NKIND; k++)
		for (int e = 0; e < E_NEDIT; e++) {
			size_t sb, smin = len;

			fill(src, len, (enum kind)k);
			edit(src, tgt, len, (enum edit)e);
			sb = roundtrip(b, src, tgt, len, NULL);
			for (int m = DELTA_CODEC_ZSTD; m < DELTA_CODEC_COUNT; m++) {
				struct delta_codec *dc = codec(m, 0);

				smin = MIN(smin, roundtrip(dc, src, tgt, len, NULL));
				delta_codec_free(dc);
			}
			assert_true(sb <= smin);
		}
	delta_codec_free(b);
	free(src);
	free(tgt);
}

static void write_file(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	fclose(f);
}

static u8 *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	u8 *p = malloc(4 << 20);

	assert_non_null(f);
	*len = fread(p, 1, 4 << 20, f);
	fclose(f);
	return p;
}

static void test_delta_codec__xdelta3_runs_once_per_batch(void **state)
{
	enum { N = 64 };
	/* seven lengths, four xdelta3 slot sizes (16, 32, 64, 128 KiB) */
	static const size_t lens[] = {4096, 8192, 12288, 20480, 36864, 65536, 102400};
	struct delta_job jobs[N];
	struct delta_djob dj[N];
	struct delta_codec *dc = codec(DELTA_CODEC_XDELTA3, 0);
	struct delta_codec_stats st;
	u8 *src[N], *tgt[N], *back[N];
	unsigned won = 0;

	for (int i = 0; i < N; i++) {
		size_t len = lens[i % 7];

		src[i] = malloc(len);
		tgt[i] = malloc(len);
		back[i] = malloc(len);
		fill(src[i], len, i % 2 ? K_RANDOM : K_TEXT);
		edit(src[i], tgt[i], len, (enum edit)(E_BYTES + i % 2));
		jobs[i] = (struct delta_job){.src = src[i],
					     .src_len = len,
					     .tgt = tgt[i],
					     .len = len,
					     .out = malloc(delta_codec_bound(len))};
	}
	assert_int_equal(delta_codec_encode_batch(dc, jobs, N), 0);
	delta_codec_get_stats(dc, &st);
	/* one encode and one verifying decode per slot size, not per extent or length */
	assert_true(st.xdelta3_runs <= 2 * 4);
	for (int i = 0; i < N; i++) {
		won += jobs[i].codec == DELTA_CODEC_XDELTA3;
		dj[i] = (struct delta_djob){.codec = jobs[i].codec,
					    .payload = jobs[i].out,
					    .payload_len = jobs[i].out_len,
					    .src = src[i],
					    .src_len = jobs[i].len,
					    .tgt = back[i],
					    .len = jobs[i].len};
	}
	/* Text with a shared vocabulary matches other extents' sources: those windows are
	 * re-encoded standalone, so (nearly) every extent still wins, verified. */
	assert_true(st.xdelta3_rewrites > 0);
	assert_int_equal(st.verify_failures, 0);
	if (won < N - 2)
		fail_msg("won %u of %d, verify failures %llu, rewrites %llu", won, N,
			 (unsigned long long)st.verify_failures,
			 (unsigned long long)st.xdelta3_rewrites);
	/* rewritten windows are plain VCDIFF too: the xdelta3 program decodes them */
	for (int i = 0; i < 6; i += 2) {
		size_t slot = DELTA_XDELTA_MIN_WINDOW, olen;
		u8 *padded, *dec;

		while (slot < jobs[i].len)
			slot <<= 1;
		padded = calloc(1, slot);
		memcpy(padded, src[i], jobs[i].len);
		write_file("/tmp/test_delta_codec.src", padded, slot);
		write_file("/tmp/test_delta_codec.vcdiff", jobs[i].out, jobs[i].out_len);
		assert_int_equal(system("xdelta3 -d -f -s /tmp/test_delta_codec.src "
					"/tmp/test_delta_codec.vcdiff /tmp/test_delta_codec.out"),
				 0);
		dec = read_file("/tmp/test_delta_codec.out", &olen);
		assert_int_equal(olen, slot);
		assert_memory_equal(dec, tgt[i], jobs[i].len);
		free(dec);
		free(padded);
	}
	unlink("/tmp/test_delta_codec.src");
	unlink("/tmp/test_delta_codec.vcdiff");
	unlink("/tmp/test_delta_codec.out");
	assert_int_equal(delta_codec_decode_batch(dc, dj, N), 0);
	delta_codec_get_stats(dc, &st);
	assert_true(st.xdelta3_runs <= 2 * 4 + 1);
	for (int i = 0; i < N; i++) {
		assert_memory_equal(back[i], tgt[i], jobs[i].len);
		free(src[i]);
		free(tgt[i]);
		free(back[i]);
		free(jobs[i].out);
	}
	delta_codec_free(dc);
}

/* Every truncation and many bit flips of each codec's payload: error or (no checksum
 * inside the codec) wrong bytes, never a crash or an overrun. */
static void test_delta_codec__corrupt_payloads(void **state)
{
	size_t len = 16384;
	u8 *src = malloc(len), *tgt = malloc(len), *out = malloc(delta_codec_bound(len));
	u8 *bad = malloc(delta_codec_bound(len)), *back = malloc(len);

	fill(src, len, K_TEXT);
	edit(src, tgt, len, E_BYTES);
	for (int m = 0; m < DELTA_CODEC_COUNT; m++) {
		struct delta_codec *dc = codec(m, 0);
		struct delta_job j = {
			.src = src, .src_len = len, .tgt = tgt, .len = len, .out = out};
		struct delta_djob d = {.src = src, .src_len = len, .tgt = back, .len = len};
		size_t step;

		assert_int_equal(delta_codec_encode(dc, &j), 0);
		assert_int_equal(j.codec, (u32)m);
		d.codec = j.codec;
		d.payload = bad;
		/* xdelta3 costs a process per decode: sample its truncations */
		step = m == DELTA_CODEC_XDELTA3 ? 1 + j.out_len / 12 : 1;
		for (size_t cut = 0; cut < j.out_len; cut += step) {
			memcpy(bad, out, cut);
			d.payload_len = cut;
			assert_int_not_equal(delta_codec_decode(dc, &d), 0);
			assert_string_not_equal(delta_codec_error(dc), "");
		}
		for (int t = 0; t < (m == DELTA_CODEC_XDELTA3 ? 8 : 200); t++) {
			int rc;

			memcpy(bad, out, j.out_len);
			bad[rnd() % j.out_len] ^= (u8)(1u << (rnd() % 8));
			d.payload_len = j.out_len;
			rc = delta_codec_decode(dc, &d);
			assert_true(rc == 0 || rc == -EILSEQ);
		}
		/* a trailing byte is an error for every codec */
		memcpy(bad, out, j.out_len);
		bad[j.out_len] = 0;
		d.payload_len = j.out_len + 1;
		assert_int_equal(delta_codec_decode(dc, &d), -EILSEQ);
		delta_codec_free(dc);
	}
	free(src);
	free(tgt);
	free(out);
	free(bad);
	free(back);
}

static void test_delta_codec__bad_arguments(void **state)
{
	struct delta_codec_opts o = {.mode = 77};
	struct delta_codec *dc;
	u8 buf[64], out[64 + 128];
	struct delta_djob d = {.codec = 99, .payload = buf, .payload_len = 1, .tgt = out, .len = 1};

	assert_null(delta_codec_new(&o));
	o = (struct delta_codec_opts){.mode = DELTA_CODEC_ZLIB, .level = 10};
	assert_null(delta_codec_new(&o));
	assert_non_null(delta_codec_by_name("zstd-prefix"));
	assert_null(delta_codec_by_name("gzip"));
	dc = codec(DELTA_CODEC_ZSTD_PREFIX, 0);
	assert_int_equal(delta_codec_decode(dc, &d), -EINVAL);
	/* differencing payload without a source */
	memset(buf, 1, sizeof(buf));
	{
		struct delta_job j = {.src = buf, .src_len = 64, .tgt = buf, .len = 64, .out = out};

		assert_int_equal(delta_codec_encode(dc, &j), 0);
		assert_int_equal(j.codec, DELTA_CODEC_ZSTD_PREFIX);
		d = (struct delta_djob){.codec = j.codec,
					.payload = out,
					.payload_len = j.out_len,
					.tgt = out + 100,
					.len = 64};
		assert_int_equal(delta_codec_decode(dc, &d), -EINVAL);
	}
	delta_codec_free(dc);
}

static void test_delta_codec__missing_xdelta3_falls_back(void **state)
{
	struct delta_codec_opts o = {.mode = DELTA_CODEC_XDELTA3,
				     .xdelta3_path = "/nonexistent/xdelta3"};
	struct delta_codec *dc = delta_codec_new(&o);
	size_t len = 8192;
	u8 *src = malloc(len), *tgt = malloc(len), *out = malloc(delta_codec_bound(len));
	struct delta_job j = {.src = src, .src_len = len, .tgt = tgt, .len = len, .out = out};
	struct delta_djob d;

	fill(src, len, K_TEXT);
	edit(src, tgt, len, E_BYTES);
	assert_int_equal(delta_codec_encode(dc, &j), 0);
	assert_int_equal(j.codec, DELTA_CODEC_RAW);
	assert_memory_equal(out, tgt, len);
	d = (struct delta_djob){.codec = DELTA_CODEC_XDELTA3,
				.payload = out,
				.payload_len = 40,
				.src = src,
				.src_len = len,
				.tgt = src,
				.len = len};
	memcpy(out, "\xd6\xc3\xc4\x00\x00\x01\x10\x00\x20", 9);
	assert_true(delta_codec_decode(dc, &d) < 0);
	delta_codec_free(dc);
	/* a hostile XDELTA environment variable must not reach the child */
	setenv("XDELTA", "-9 --nonsense", 1);
	dc = codec(DELTA_CODEC_XDELTA3, 0);
	assert_true(roundtrip(dc, src, tgt, len, NULL) < 200);
	unsetenv("XDELTA");
	delta_codec_free(dc);
	free(src);
	free(tgt);
	free(out);
}

/* Our payloads decode with `xdelta3 -d`, and `xdelta3 -e` output decodes with our codec. */
static void test_delta_codec__xdelta3_program_interop(void **state)
{
	static const size_t lens[] = {4096, 65536};
	char dir[] = "/tmp/test_delta_codecXXXXXX", cmd[1024], s[64], t[64], p[64], o[64];
	struct delta_codec *dc = codec(DELTA_CODEC_XDELTA3, 0);

	assert_non_null(mkdtemp(dir));
	snprintf(s, sizeof(s), "%s/src", dir);
	snprintf(t, sizeof(t), "%s/tgt", dir);
	snprintf(p, sizeof(p), "%s/patch", dir);
	snprintf(o, sizeof(o), "%s/out", dir);
	for (unsigned l = 0; l < ARRAY_SIZE(lens); l++) {
		size_t len = lens[l], slot = MAX(len, (size_t)DELTA_XDELTA_MIN_WINDOW), olen;
		u8 *src = calloc(1, slot), *tgt = malloc(len),
		   *out = malloc(delta_codec_bound(len));
		u8 *back = malloc(len), *dec;
		struct delta_job j = {
			.src = src, .src_len = len, .tgt = tgt, .len = len, .out = out};
		struct delta_djob d;

		fill(src, len, K_MIXED);
		edit(src, tgt, len, E_INSERT);
		assert_int_equal(delta_codec_encode(dc, &j), 0);
		assert_int_equal(j.codec, DELTA_CODEC_XDELTA3);
		/* ours -> the program (the source padded to the xdelta3 window, as documented) */
		write_file(s, src, slot);
		write_file(p, out, j.out_len);
		snprintf(cmd, sizeof(cmd), "xdelta3 -d -f -s %s %s %s", s, p, o);
		assert_int_equal(system(cmd), 0);
		dec = read_file(o, &olen);
		assert_int_equal(olen, slot);
		assert_memory_equal(dec, tgt, len);
		for (size_t i = len; i < slot; i++)
			assert_int_equal(dec[i], 0);
		free(dec);
		/* the program -> ours */
		write_file(s, src, len);
		write_file(t, tgt, len);
		snprintf(cmd, sizeof(cmd), "xdelta3 -e -f -s %s %s %s", s, t, p);
		assert_int_equal(system(cmd), 0);
		free(read_file(p, &olen));
		dec = read_file(p, &olen);
		d = (struct delta_djob){.codec = DELTA_CODEC_XDELTA3,
					.payload = dec,
					.payload_len = olen,
					.src = src,
					.src_len = len,
					.tgt = back,
					.len = len};
		assert_int_equal(delta_codec_decode(dc, &d), 0);
		assert_memory_equal(back, tgt, len);
		free(dec);
		free(src);
		free(tgt);
		free(out);
		free(back);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	delta_codec_free(dc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delta_codec__every_codec_roundtrips),
		cmocka_unit_test(test_delta_codec__differencing_is_small_for_small_edits),
		cmocka_unit_test(test_delta_codec__best_never_loses),
		cmocka_unit_test(test_delta_codec__xdelta3_runs_once_per_batch),
		cmocka_unit_test(test_delta_codec__corrupt_payloads),
		cmocka_unit_test(test_delta_codec__bad_arguments),
		cmocka_unit_test(test_delta_codec__missing_xdelta3_falls_back),
		cmocka_unit_test(test_delta_codec__xdelta3_program_interop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
