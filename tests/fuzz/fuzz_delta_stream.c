// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_delta_stream.c - libFuzzer target for the delta stream reader and the in-process
 * payload decoders: any input must give records or a clean error, never a crash, a leak,
 * an overrun or an unbounded allocation.  Built with -DFUZZING, which skips the checksum
 * comparisons so the structural checks behind them are reached (DESIGN.md 8.6).  xdelta3
 * payloads are parsed but not run (a process per input would starve the fuzzer).
 */
#include <string.h>
#include "delta/delta_codec.h"
#include "delta/delta_stream.h"

struct mem {
	const u8 *p;
	size_t len, off;
};

static ssize_t mem_read(void *arg, void *buf, size_t len)
{
	struct mem *m = arg;
	size_t k = MIN(len, m->len - m->off);

	/* short reads at odd sizes exercise the reader's loops */
	if (k > 13 && (m->off & 1))
		k = 13;
	memcpy(buf, m->p + m->off, k);
	m->off += k;
	return (ssize_t)k;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static struct delta_codec *dc;
	static u8 *src, *tgt;
	struct mem m = {.p = data, .len = size};
	struct delta_reader *r = delta_reader_new(mem_read, &m);
	struct delta_header h;
	struct delta_record rec;
	struct delta_token t;
	int rc;

	if (!dc) {
		struct delta_codec_opts o = {.mode = DELTA_CODEC_RAW};

		dc = delta_codec_new(&o);
		src = calloc(1, DELTA_MAX_EXTENT);
		tgt = malloc(DELTA_MAX_EXTENT);
	}
	if (size >= DELTA_TOKEN_BYTES) /* the token decoder sees the same bytes */
		(void)delta_token_unpack(&t, data);
	rc = delta_reader_header(r, &h);
	while (!rc && (rc = delta_reader_next(r, &rec)) == 1) {
		rc = 0;
		if (rec.type == DELTA_REC_EXTENT && rec.codec != DELTA_CODEC_XDELTA3) {
			struct delta_djob j = {.codec = rec.codec,
					       .payload = rec.payload,
					       .payload_len = rec.payload_len,
					       .src = src,
					       .src_len = (size_t)rec.count * h.chunk_size,
					       .tgt = tgt,
					       .len = (size_t)rec.count * h.chunk_size};

			(void)delta_codec_decode(dc, &j);
		}
		delta_reader_token(r, &t);
	}
	if (rc < 0 && !*delta_reader_error(r))
		__builtin_trap(); /* every reader error carries a message */
	delta_reader_free(r);
	return 0;
}
