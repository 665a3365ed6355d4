// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench_codec.c - speed and delta size of each delta codec on realistic snapshot changes.
 *
 * Each scenario builds a source and a target set of extents the way a NAS volume changes
 * between two snapshots: text files edited in place, log files appended, text with bytes
 * inserted (the rest of the file shifts), database-like binary pages with a few fields
 * updated, files replaced by new text or by incompressible data.  Every codec encodes the
 * whole scenario in batches as `ddsnap delta create` does (xdelta3: one process per batch
 * and extent length, plus the verifying decode), then decodes and compares.
 *
 *   bench_codec [-s MiB per scenario (default 8)] [-e extent KiB (default 64)] [-q]
 *
 * Prints one table: payload size as % of the target bytes, encode and decode MB/s (of
 * target bytes, one thread, best of REPS runs: the machine may be shared), the size relative
 * to zlib -6 and to xdelta3, and the xdelta3 processes started per run.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "delta/delta_codec.h"

static u64 rng = 0x2545f4914f6cdd1dull;

static u32 rnd(void)
{
	return (u32)(xorshift64(&rng) >> 11);
}

static const char *vocab[] = {
	"the ",
	"of ",
	"and ",
	"snapshot ",
	"volume ",
	"replication ",
	"int ",
	"return ",
	"if (",
	"err) ",
	"{\n",
	"}\n",
	"\t",
	"struct ",
	"static ",
	"printf(\"%d\\n\", ",
	"Nov 21 08:00:01 host kernel: ",
	"INFO ",
	"request served in ",
	"ms\n",
	"GET /index.html ",
	"200 ",
	"404 ",
	"user=",
	"alice ",
	"bob ",
	"0x7f3a",
	"; ",
	"// comment\n",
	"= ",
};

static void fill_text(u8 *p, size_t len)
{
	size_t i = 0;

	while (i < len)
		for (const char *w = vocab[rnd() % ARRAY_SIZE(vocab)]; *w && i < len; w++)
			p[i++] = (u8)*w;
}

static void fill_random(u8 *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (u8)rnd();
}

/* Database-like 4 KiB pages: header, slot array, rows of mixed numbers and text. */
static void fill_pages(u8 *p, size_t len)
{
	for (size_t pg = 0; pg + 4096 <= len; pg += 4096) {
		u8 *q = p + pg;

		memset(q, 0, 4096);
		memcpy(q, "PAGE", 4);
		q[4] = (u8)(pg >> 12);
		for (int r = 0; r < 40; r++) {
			u8 *row = q + 64 + r * 96;
			u32 id = (u32)(pg / 4096 * 40 + (size_t)r);

			memcpy(row, &id, 4);
			fill_random(row + 4, 8); /* a timestamp/hash field */
			fill_text(row + 12, 60);
		}
	}
}

enum scenario {
	S_TEXT_EDIT,   /* a few words changed per chunk */
	S_LOG_APPEND,  /* extents half full of log lines, half zero; target appends */
	S_TEXT_INSERT, /* bytes inserted near the start of each extent: the rest shifts */
	S_DB_PAGES,    /* binary pages, a few fields updated */
	S_NEW_TEXT,    /* replaced by unrelated text */
	S_NEW_RANDOM,  /* replaced by incompressible data */
	S_MIXED,       /* one of each, interleaved */
	S_COUNT
};

static const char *scenario_name[] = {"text edits", "log append", "text insert", "db pages",
				      "new text",   "new random", "mixed"};

static void make_extent(enum scenario s, u8 *src, u8 *tgt, size_t len)
{
	switch (s) {
	case S_TEXT_EDIT:
		fill_text(src, len);
		memcpy(tgt, src, len);
		for (size_t c = 0; c < len; c += 4096)
			for (int k = 0; k < 3; k++) {
				size_t at = c + rnd() % (4096 - 8);

				memcpy(tgt + at, "EDITED", 6);
			}
		break;
	case S_LOG_APPEND:
		fill_text(src, len / 2);
		memset(src + len / 2, 0, len - len / 2);
		memcpy(tgt, src, len);
		fill_text(tgt + len / 2, len / 4);
		break;
	case S_TEXT_INSERT: {
		size_t at = rnd() % 512, k = 1 + rnd() % 200;

		fill_text(src, len);
		memcpy(tgt, src, at);
		fill_text(tgt + at, k);
		memcpy(tgt + at + k, src + at, len - at - k);
		break;
	}
	case S_DB_PAGES:
		fill_pages(src, len);
		memcpy(tgt, src, len);
		for (size_t pg = 0; pg < len; pg += 4096) {
			tgt[pg + 5]++; /* page LSN */
			fill_random(tgt + pg + 64 + (rnd() % 40) * 96 + 4, 8);
		}
		break;
	case S_NEW_TEXT:
		fill_text(src, len);
		fill_text(tgt, len);
		break;
	case S_NEW_RANDOM:
		fill_text(src, len);
		fill_random(tgt, len);
		break;
	default:
		make_extent((enum scenario)(rnd() % S_MIXED), src, tgt, len);
		break;
	}
}

struct codec_cfg {
	const char *label;
	int mode, level;
};

static const struct codec_cfg cfgs[] = {
	{"raw", DELTA_CODEC_RAW, 0},
	{"zlib -1", DELTA_CODEC_ZLIB, 1},
	{"zlib -6", DELTA_CODEC_ZLIB, 6},
	{"zstd -1", DELTA_CODEC_ZSTD, 1},
	{"zstd -3", DELTA_CODEC_ZSTD, 3},
	{"zstd -9", DELTA_CODEC_ZSTD, 9},
	{"xdelta3 -3", DELTA_CODEC_XDELTA3, 3},
	{"zstd-prefix -1", DELTA_CODEC_ZSTD_PREFIX, 1},
	{"zstd-prefix -3", DELTA_CODEC_ZSTD_PREFIX, 3},
	{"zstd-prefix -9", DELTA_CODEC_ZSTD_PREFIX, 9},
	{"best", DELTA_MODE_BEST, 0},
};

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Timed repetitions per codec; the fastest counts. */
#define REPS 3
/* Batches as in ddsnap delta create. */
#define BATCH_BYTES (16u << 20)

int main(int argc, char **argv)
{
	size_t mib = 8, ext = 64 << 10, n, total;
	bool quiet = false;
	int opt;

	while ((opt = getopt(argc, argv, "s:e:q")) != -1) {
		if (opt == 's')
			mib = (size_t)atoi(optarg);
		else if (opt == 'e')
			ext = (size_t)atoi(optarg) << 10;
		else if (opt == 'q')
			quiet = true;
		else {
			fprintf(stderr, "usage: bench_codec [-s MiB] [-e extent KiB] [-q]\n");
			return 2;
		}
	}
	if (!mib || ext < 4096 || ext > DELTA_MAX_EXTENT || ext % 4096) {
		fprintf(stderr, "bench_codec: bad size\n");
		return 2;
	}
	n = mib * (1u << 20) / ext;
	total = n * ext;
	printf("delta codecs: %zu x %zu KiB extents (%zu MiB) per scenario, one thread\n", n,
	       ext >> 10, total >> 20);
	printf("%-12s %-15s %8s %9s %9s %8s %8s %6s\n", "scenario", "codec", "size%", "enc MB/s",
	       "dec MB/s", "/zlib6", "/xdelta3", "runs");
	for (int s = 0; s < S_COUNT; s++) {
		u8 *src = malloc(total), *tgt = malloc(total), *out, *back = malloc(total);
		struct delta_job *jobs = calloc(n, sizeof(*jobs));
		struct delta_djob *dj = calloc(n, sizeof(*dj));
		size_t size[ARRAY_SIZE(cfgs)];
		double enc[ARRAY_SIZE(cfgs)], dec[ARRAY_SIZE(cfgs)];
		unsigned long long runs[ARRAY_SIZE(cfgs)];

		out = malloc(n * delta_codec_bound(ext));
		for (size_t i = 0; i < n; i++)
			make_extent((enum scenario)s, src + i * ext, tgt + i * ext, ext);
		for (unsigned c = 0; c < ARRAY_SIZE(cfgs); c++) {
			struct delta_codec_opts o = {.mode = cfgs[c].mode, .level = cfgs[c].level};
			struct delta_codec *dc = delta_codec_new(&o);
			struct delta_codec_stats st;
			size_t per = BATCH_BYTES / ext, bytes = 0;
			double t0, t1, t2;

			for (size_t i = 0; i < n; i++)
				jobs[i] =
					(struct delta_job){.src = src + i * ext,
							   .src_len = ext,
							   .tgt = tgt + i * ext,
							   .len = ext,
							   .out = out + i * delta_codec_bound(ext)};
			/* best of REPS: the machine is shared, the minimum is the codec's cost */
			enc[c] = dec[c] = 0;
			for (int rep = 0; rep < REPS; rep++) {
				t0 = now();
				for (size_t i = 0; i < n; i += per)
					if (delta_codec_encode_batch(dc, jobs + i,
								     (unsigned)MIN(per, n - i))) {
						fprintf(stderr, "encode failed: %s\n",
							delta_codec_error(dc));
						return 1;
					}
				t1 = now();
				bytes = 0;
				for (size_t i = 0; i < n; i++) {
					bytes += jobs[i].out_len;
					dj[i] = (struct delta_djob){.codec = jobs[i].codec,
								    .payload = jobs[i].out,
								    .payload_len = jobs[i].out_len,
								    .src = src + i * ext,
								    .src_len = ext,
								    .tgt = back + i * ext,
								    .len = ext};
				}
				for (size_t i = 0; i < n; i += per)
					if (delta_codec_decode_batch(dc, dj + i,
								     (unsigned)MIN(per, n - i))) {
						fprintf(stderr, "decode failed: %s\n",
							delta_codec_error(dc));
						return 1;
					}
				t2 = now();
				enc[c] = MAX(enc[c], (double)total / 1e6 / (t1 - t0));
				dec[c] = MAX(dec[c], (double)total / 1e6 / (t2 - t1));
			}
			if (memcmp(back, tgt, total)) {
				fprintf(stderr, "%s: round trip mismatch\n", cfgs[c].label);
				return 1;
			}
			size[c] = bytes;
			delta_codec_get_stats(dc, &st);
			runs[c] = (unsigned long long)st.xdelta3_runs / REPS;
			delta_codec_free(dc);
		}
		for (unsigned c = 0; c < ARRAY_SIZE(cfgs); c++)
			printf("%-12s %-15s %7.2f%% %9.1f %9.1f %8.3f %8.3f %6llu\n",
			       scenario_name[s], cfgs[c].label,
			       100.0 * (double)size[c] / (double)total, enc[c], dec[c],
			       (double)size[c] / (double)MAX(size[2], (size_t)1),
			       (double)size[c] / (double)MAX(size[6], (size_t)1), runs[c]);
		if (!quiet)
			printf("\n");
		free(src);
		free(tgt);
		free(back);
		free(out);
		free(jobs);
		free(dj);
	}
	return 0;
}
