// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_delta_stream.c - delta streams round trip; every truncation and every single-bit
 * flip of a small stream is rejected with a message; structurally bad records with valid
 * checksums are rejected; the writer refuses what the reader would; resume tokens chain
 * the stream checksum across an interruption; token files survive and detect damage.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>
#include "util/crc32c.h"
#include "delta/delta_codec.h"
#include "delta/delta_stream.h"
#include <rpc/xdr.h> /* after base.h: it defines MIN/MAX only if unset */

struct sink {
	u8 *p;
	size_t len, cap;
};

static int sink_write(void *arg, const void *buf, size_t len)
{
	struct sink *s = arg;

	if (s->len + len > s->cap) {
		s->cap = MAX(s->cap * 2, s->len + len + 4096);
		s->p = realloc(s->p, s->cap);
	}
	memcpy(s->p + s->len, buf, len);
	s->len += len;
	return 0;
}

struct source {
	const u8 *p;
	size_t len, off;
	size_t chunk; /* max bytes per read: exercises short reads */
};

static ssize_t source_read(void *arg, void *buf, size_t len)
{
	struct source *s = arg;
	size_t k = MIN(len, s->len - s->off);

	if (s->chunk)
		k = MIN(k, s->chunk);
	memcpy(buf, s->p + s->off, k);
	s->off += k;
	return (ssize_t)k;
}

static struct delta_header header(u64 volume_chunks)
{
	struct delta_header h = {.chunk_size = 4096,
				 .volume_chunks = volume_chunks,
				 .src_tag = 3,
				 .src_gen = 30,
				 .tgt_tag = 4,
				 .tgt_gen = 41};

	memcpy(h.uuid, "0123456789abcdef", 16);
	/* provenance of another store (a chain): round-trips as is */
	memcpy(h.src_origin_uuid, "ORIGIN-STORE-A..", 16);
	h.src_origin_gen = 7;
	memcpy(h.tgt_origin_uuid, "ORIGIN-STORE-A..", 16);
	h.tgt_origin_gen = 9;
	return h;
}

/* A small stream: raw, zstd, zstd-prefix extents and zero records.  Returns its trailer. */
static struct delta_trailer make_stream(struct sink *s, const struct delta_header *h,
					struct delta_writer **keep)
{
	struct delta_codec_opts o = {.mode = DELTA_CODEC_ZSTD_PREFIX};
	struct delta_codec *dc = delta_codec_new(&o);
	struct delta_writer *w;
	struct delta_trailer t;
	u8 src[4096], tgt[4096], out[8192];
	struct delta_job j = {.src = src, .src_len = 4096, .tgt = tgt, .len = 4096, .out = out};

	for (int i = 0; i < 4096; i++)
		src[i] = (u8)(i * 7 / 5);
	memcpy(tgt, src, sizeof(tgt));
	tgt[100] = 1;
	assert_int_equal(delta_writer_new(&w, sink_write, s, h), 0);
	assert_int_equal(delta_codec_encode(dc, &j), 0);
	assert_int_equal(j.codec, DELTA_CODEC_ZSTD_PREFIX);
	assert_int_equal(delta_writer_extent(w, 2, 1, j.codec, DELTA_EXTENT_SRC_CSUM, out,
					     (u32)j.out_len, delta_csum(tgt, 4096),
					     delta_csum(src, 4096)),
			 0);
	assert_int_equal(delta_writer_zero(w, 3, 5), 0);
	assert_int_equal(delta_writer_extent(w, 9, 1, DELTA_CODEC_RAW, 0, tgt, 4096,
					     delta_csum(tgt, 4096), 0),
			 0);
	assert_int_equal(delta_writer_zero(w, 15, 1), 0);
	assert_int_equal(delta_writer_finish(w, &t), 0);
	delta_codec_free(dc);
	if (keep)
		*keep = w;
	else
		delta_writer_free(w);
	return t;
}

/* After read_all(): whether it failed on the stream checksum alone, and the sent trailer. */
static bool last_csum_only;
static struct delta_trailer last_sent;

/* Reads a whole stream; returns 0 or the first error, and the number of records. */
static int read_all(const u8 *p, size_t len, size_t chunk, unsigned *nrec, char *why, size_t whylen)
{
	struct source src = {.p = p, .len = len, .chunk = chunk};
	struct delta_reader *r = delta_reader_new(source_read, &src);
	struct delta_record rec;
	struct delta_header h;
	int rc = delta_reader_header(r, &h);

	*nrec = 0;
	while (!rc) {
		rc = delta_reader_next(r, &rec);
		if (rc != 1)
			break;
		(*nrec)++;
		rc = 0;
	}
	if (why)
		snprintf(why, whylen, "%s", delta_reader_error(r));
	last_csum_only = delta_reader_csum_mismatch(r, &last_sent);
	delta_reader_free(r);
	return rc;
}

static void test_delta_stream__roundtrip(void **state)
{
	struct delta_header h = header(64), h2;
	struct sink s = {0};
	struct delta_trailer t = make_stream(&s, &h, NULL), t2;
	struct source src = {.p = s.p, .len = s.len, .chunk = 7};
	struct delta_reader *r = delta_reader_new(source_read, &src);
	struct delta_record rec;
	struct delta_token tok;
	static const u64 chunks[] = {2, 3, 9, 15};
	static const u32 types[] = {DELTA_REC_EXTENT, DELTA_REC_ZERO, DELTA_REC_EXTENT,
				    DELTA_REC_ZERO};

	assert_int_equal(delta_reader_header(r, &h2), 0);
	assert_memory_equal(&h, &h2, sizeof(h));
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(delta_reader_next(r, &rec), 1);
		assert_int_equal(rec.type, types[i]);
		assert_int_equal(rec.chunk, chunks[i]);
		assert_int_equal(rec.seq, i);
		if (i == 2) {
			assert_int_equal(rec.codec, DELTA_CODEC_RAW);
			assert_int_equal(rec.payload_len, 4096);
			assert_int_equal(rec.tgt_csum, delta_csum(rec.payload, 4096));
		}
	}
	assert_int_equal(delta_reader_next(r, &rec), 0);
	assert_int_equal(delta_reader_next(r, &rec), 0);
	delta_reader_trailer(r, &t2);
	assert_memory_equal(&t, &t2, sizeof(t));
	assert_int_equal(t.extents, 2);
	assert_int_equal(t.zero_extents, 2);
	assert_int_equal(t.zero_chunks, 6);
	delta_reader_token(r, &tok);
	assert_int_equal(tok.next_seq, 4);
	assert_int_equal(tok.next_chunk, 16);
	assert_int_equal(tok.stream_csum, t.stream_csum);
	assert_true(delta_token_matches(&tok, &h));
	delta_reader_free(r);
	free(s.p);
}

static void test_delta_stream__every_truncation_fails(void **state)
{
	struct delta_header h = header(64);
	struct sink s = {0};
	char why[256];
	unsigned n;

	make_stream(&s, &h, NULL);
	for (size_t cut = 0; cut < s.len; cut++) {
		assert_int_equal(read_all(s.p, cut, 0, &n, why, sizeof(why)), -EILSEQ);
		assert_non_null(strstr(why, "truncated"));
	}
	assert_int_equal(read_all(s.p, s.len, 0, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 4);
	free(s.p);
}

static void test_delta_stream__every_bit_flip_fails(void **state)
{
	struct delta_header h = header(64);
	struct sink s = {0};
	char why[256];
	unsigned n;

	struct delta_trailer t = make_stream(&s, &h, NULL);
	unsigned csum_only = 0;

	for (size_t bit = 0; bit < s.len * 8; bit++) {
		s.p[bit / 8] ^= (u8)(1u << (bit % 8));
		assert_int_equal(read_all(s.p, s.len, 0, &n, why, sizeof(why)), -EILSEQ);
		assert_true(strlen(why) > 10);
		/* only payload bytes escape every record check; the trailer then names the
		 * sender's checksum, the one the undamaged stream has */
		assert_int_equal(last_csum_only, !strcmp(why, "stream checksum mismatch"));
		if (last_csum_only) {
			assert_int_equal(n, 4);
			assert_memory_equal(&last_sent, &t, sizeof(t));
			csum_only++;
		}
		s.p[bit / 8] ^= (u8)(1u << (bit % 8));
	}
	/* the two payloads (zstd-prefix, raw 4096 bytes) are the only such bytes */
	assert_true(csum_only >= 4096 * 8);
	assert_true(csum_only < 4096 * 8 + 8192 * 8);
	assert_int_equal(read_all(s.p, s.len, 0, &n, why, sizeof(why)), 0);
	assert_false(last_csum_only);
	free(s.p);
}

static void test_delta_stream__garbage_lost_and_repeated_records(void **state)
{
	struct delta_header h = header(64);
	struct sink s = {0};
	char why[256];
	unsigned n;
	u8 *p;
	size_t first, second;

	make_stream(&s, &h, NULL);
	p = malloc(s.len + 4096 * 2);
	/* bytes after the trailer */
	memcpy(p, s.p, s.len);
	p[s.len] = 0;
	assert_int_equal(read_all(p, s.len + 1, 0, &n, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "after the trailer"));
	/* find the record boundaries: header 140, first extent = 56 + padded payload */
	{
		XDR x;
		u32 plen;

		xdrmem_create(&x, (char *)s.p + 140 + 4 + 8 + 8 + 4 + 4 + 4, 4, XDR_DECODE);
		assert_true(xdr_uint32_t(&x, &plen));
		first = 140;
		second = first + 56 + ROUND_UP(plen, 4);
	}
	/* drop the first record */
	memcpy(p, s.p, first);
	memcpy(p + first, s.p + second, s.len - second);
	assert_int_equal(read_all(p, s.len - (second - first), 0, &n, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "lost or repeated"));
	/* repeat it */
	memcpy(p, s.p, second);
	memcpy(p + second, s.p + first, s.len - first);
	assert_int_equal(read_all(p, s.len + (second - first), 0, &n, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "lost or repeated"));
	free(p);
	free(s.p);
}

/* Hand-built records with valid checksums but bad structure (DESIGN.md 8.6). */
static size_t put_extent(u8 *buf, u64 seq, u64 chunk, u32 count, u32 codec, u32 flags, u32 plen)
{
	XDR x;
	u32 type = DELTA_REC_EXTENT, c;
	uint64_t zero = 0, a = seq, b = chunk;

	xdrmem_create(&x, (char *)buf, 64, XDR_ENCODE);
	assert_true(xdr_uint32_t(&x, &type) && xdr_uint64_t(&x, &a) && xdr_uint64_t(&x, &b) &&
		    xdr_uint32_t(&x, &count) && xdr_uint32_t(&x, &codec) &&
		    xdr_uint32_t(&x, &flags) && xdr_uint32_t(&x, &plen) &&
		    xdr_uint64_t(&x, &zero) && xdr_uint64_t(&x, &zero));
	c = crc32c(DELTA_SEED_EXTENT, buf, xdr_getpos(&x));
	assert_true(xdr_uint32_t(&x, &c));
	return xdr_getpos(&x);
}

static void test_delta_stream__valid_checksum_bad_structure(void **state)
{
	struct delta_header h = header(4096);
	struct {
		u64 chunk;
		u32 count, codec, flags, plen;
		const char *expect;
	} cases[] = {
		{4094, 5, DELTA_CODEC_RAW, 0, 5 * 4096, "beyond the end"},
		{UINT64_MAX - 1, 3, DELTA_CODEC_RAW, 0, 3 * 4096, "beyond the end"},
		{0, 0, DELTA_CODEC_RAW, 0, 0, "beyond the end"},
		{0, 300, DELTA_CODEC_RAW, 0, 300 * 4096, "longer than 1 MiB"},
		{0, 1, 99, 0, 10, "unknown codec"},
		{0, 1, DELTA_CODEC_RAW, 0, 4095, "raw payload length"},
		{0, 1, DELTA_CODEC_ZLIB, 0, 0x7fffffff, "payload longer"},
		{0, 1, DELTA_CODEC_XDELTA3, 0, 10, "without source checksum"},
		{0, 1, DELTA_CODEC_ZSTD, 0x8, 10, "unknown extent flags"},
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		struct sink s = {0};
		struct delta_writer *w;
		char why[256];
		unsigned n;
		u8 rec[64];
		size_t k;

		assert_int_equal(delta_writer_new(&w, sink_write, &s, &h), 0);
		delta_writer_free(w);
		k = put_extent(rec, 0, cases[i].chunk, cases[i].count, cases[i].codec,
			       cases[i].flags, cases[i].plen);
		sink_write(&s, rec, k);
		assert_int_equal(read_all(s.p, s.len, 0, &n, why, sizeof(why)), -EILSEQ);
		if (!strstr(why, cases[i].expect))
			fail_msg("case %u: \"%s\"", i, why);
		free(s.p);
	}
}

static void test_delta_stream__writer_refuses_bad_records(void **state)
{
	struct delta_header h = header(64), bad;
	struct sink s = {0};
	struct delta_writer *w;
	u8 buf[4096] = {0};

	bad = h;
	bad.chunk_size = 3000;
	assert_int_equal(delta_writer_new(&w, sink_write, &s, &bad), -EINVAL);
	bad = h;
	bad.start_chunk = 5; /* resume fields in a fresh stream */
	assert_int_equal(delta_writer_new(&w, sink_write, &s, &bad), -EINVAL);
	assert_int_equal(delta_writer_new(&w, sink_write, &s, &h), 0);
	assert_int_equal(delta_writer_extent(w, 10, 1, DELTA_CODEC_RAW, 0, buf, 4096, 0, 0), 0);
	assert_int_equal(delta_writer_extent(w, 10, 1, DELTA_CODEC_RAW, 0, buf, 4096, 0, 0),
			 -EINVAL);
	assert_int_equal(delta_writer_zero(w, 63, 2), -EINVAL);
	assert_int_equal(delta_writer_extent(w, 20, 1, DELTA_CODEC_RAW, 0, buf, 100, 0, 0),
			 -EINVAL);
	assert_int_equal(delta_writer_extent(w, 20, 1, DELTA_CODEC_ZSTD_PREFIX, 0, buf, 100, 0, 0),
			 -EINVAL);
	assert_int_equal(delta_writer_finish(w, NULL), 0);
	assert_int_equal(delta_writer_zero(w, 40, 1), -EINVAL);
	delta_writer_free(w);
	/* full streams carry no source checksums */
	bad = h;
	bad.flags = DELTA_FULL;
	bad.src_origin_gen = 0; /* nor a source provenance */
	memset(bad.src_origin_uuid, 0, 16);
	assert_int_equal(delta_writer_new(&w, sink_write, &s, &bad), 0);
	assert_int_equal(delta_writer_extent(w, 1, 1, DELTA_CODEC_RAW, DELTA_EXTENT_SRC_CSUM, buf,
					     4096, 0, 0),
			 -EINVAL);
	delta_writer_free(w);
	free(s.p);
}

/* Interrupted after k records, resumed from the token: the resumed stream validates and
 * its trailer checksum equals the uninterrupted stream's. */
static void test_delta_stream__resume_chains_checksum(void **state)
{
	struct delta_header h = header(64), hr;
	struct sink s = {0}, s2 = {0};
	struct delta_trailer full = make_stream(&s, &h, NULL), t2;
	struct source src = {.p = s.p, .len = s.len};
	struct delta_reader *r = delta_reader_new(source_read, &src);
	struct delta_record rec;
	struct delta_token tok;
	struct delta_writer *w;
	u8 tgt[4096];
	unsigned n;

	assert_int_equal(delta_reader_header(r, NULL), 0);
	assert_int_equal(delta_reader_next(r, &rec), 1);
	assert_int_equal(delta_reader_next(r, &rec), 1);
	delta_reader_token(r, &tok); /* two records applied, then the link broke */
	delta_reader_free(r);
	assert_int_equal(tok.next_seq, 2);
	assert_int_equal(tok.next_chunk, 8);
	/* the sender restarts at the token with the same records */
	hr = h;
	hr.start_seq = tok.next_seq;
	hr.start_chunk = tok.next_chunk;
	hr.start_csum = tok.stream_csum;
	for (int i = 0; i < 4096; i++)
		tgt[i] = (u8)(i * 7 / 5);
	tgt[100] = 1;
	assert_int_equal(delta_writer_new(&w, sink_write, &s2, &hr), 0);
	/* a record before the resume point is refused */
	assert_int_equal(delta_writer_extent(w, 7, 1, DELTA_CODEC_RAW, 0, tgt, 4096, 0, 0),
			 -EINVAL);
	assert_int_equal(delta_writer_extent(w, 9, 1, DELTA_CODEC_RAW, 0, tgt, 4096,
					     delta_csum(tgt, 4096), 0),
			 0);
	assert_int_equal(delta_writer_zero(w, 15, 1), 0);
	assert_int_equal(delta_writer_finish(w, &t2), 0);
	delta_writer_free(w);
	assert_int_equal(t2.stream_csum, full.stream_csum);
	assert_int_equal(t2.end_seq, full.end_seq);
	assert_int_equal(read_all(s2.p, s2.len, 3, &n, NULL, 0), 0);
	assert_int_equal(n, 2);
	free(s.p);
	free(s2.p);
}

static void test_delta_stream__token_files(void **state)
{
	char path[] = "/tmp/test_delta_tokenXXXXXX";
	struct delta_token t = {.chunk_size = 4096,
				.src_tag = 1,
				.tgt_tag = 2,
				.src_gen = 5,
				.tgt_gen = 9,
				.next_seq = 77,
				.next_chunk = 1234,
				.stream_csum = 0x1122334455667788ull},
			   u;
	u8 buf[DELTA_TOKEN_BYTES];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	assert_int_equal(delta_token_load(path, &u), -ENOENT);
	memcpy(t.uuid, "fedcba9876543210", 16);
	assert_int_equal(delta_token_save(path, &t), 0);
	memset(&u, 0, sizeof(u));
	assert_int_equal(delta_token_load(path, &u), 0);
	assert_memory_equal(t.uuid, u.uuid, 16);
	assert_true(t.chunk_size == u.chunk_size && t.src_tag == u.src_tag &&
		    t.tgt_tag == u.tgt_tag && t.src_gen == u.src_gen && t.tgt_gen == u.tgt_gen &&
		    t.next_seq == u.next_seq && t.next_chunk == u.next_chunk &&
		    t.stream_csum == u.stream_csum);
	delta_token_pack(&t, buf);
	for (size_t bit = 0; bit < sizeof(buf) * 8; bit++) {
		buf[bit / 8] ^= (u8)(1u << (bit % 8));
		assert_int_equal(delta_token_unpack(&u, buf), -EILSEQ);
		buf[bit / 8] ^= (u8)(1u << (bit % 8));
	}
	/* a truncated token file */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, 40), 40);
	close(fd);
	assert_int_equal(delta_token_load(path, &u), -EILSEQ);
	unlink(path);
}

static void test_delta_stream__header_errors_are_clear(void **state)
{
	struct delta_header h = header(64);
	struct sink s = {0};
	char why[256];
	unsigned n;

	make_stream(&s, &h, NULL);
	s.p[7] = 3; /* version 3 */
	assert_int_equal(read_all(s.p, s.len, 0, &n, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "version 3"));
	s.p[7] = 0;
	assert_int_equal(read_all(s.p, s.len, 0, &n, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "version 0"));
	memcpy(s.p, "GARB", 4);
	assert_int_equal(read_all(s.p, s.len, 0, &n, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "not a delta stream"));
	free(s.p);
	assert_int_equal(read_all((const u8 *)"", 0, 0, &n, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "truncated"));
}

/*
 * A version-1 stream (an older sender: 92-byte header, no provenance) still reads, and its
 * snapshots' provenance is the sender's uuid and gens (it recorded none: they were its own).
 * A full stream's source provenance stays zero.  A version-2 header of a full stream that
 * names a source provenance is refused.
 */
static void test_delta_stream__version1_header(void **state)
{
	struct delta_header h = header(64), h2;
	struct sink s = {0};
	struct delta_trailer t = make_stream(&s, &h, NULL);
	u8 *v1 = malloc(s.len);
	u32 c;
	unsigned n;
	char why[256];
	XDR x;

	(void)t;
	/* the v2 header minus the 48 provenance bytes, version 1, resealed */
	memcpy(v1, s.p, 88);
	memcpy(v1 + 92, s.p + 140, s.len - 140);
	v1[7] = 1;
	c = crc32c(DELTA_SEED_HEADER, v1, 88);
	xdrmem_create(&x, (char *)v1 + 88, 4, XDR_ENCODE);
	assert_true(xdr_uint32_t(&x, &c));
	assert_int_equal(read_all(v1, s.len - 48, 0, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 4);
	{
		struct source src = {.p = v1, .len = s.len - 48};
		struct delta_reader *r = delta_reader_new(source_read, &src);

		assert_int_equal(delta_reader_header(r, &h2), 0);
		delta_reader_free(r);
	}
	assert_memory_equal(h2.tgt_origin_uuid, h.uuid, 16);
	assert_int_equal(h2.tgt_origin_gen, h.tgt_gen);
	assert_memory_equal(h2.src_origin_uuid, h.uuid, 16);
	assert_int_equal(h2.src_origin_gen, h.src_gen);
	free(v1);
	free(s.p);
	memset(&s, 0, sizeof(s));

	/* a full stream must not name a source provenance */
	h = header(64);
	h.flags = DELTA_FULL;
	h.src_tag = DDSNAP_TAG_NONE;
	h.src_gen = 0;
	{
		struct delta_writer *w;

		assert_int_equal(delta_writer_new(&w, sink_write, &s, &h), -EINVAL);
		memset(h.src_origin_uuid, 0, 16);
		h.src_origin_gen = 0;
		assert_int_equal(delta_writer_new(&w, sink_write, &s, &h), 0);
		delta_writer_free(w);
		free(s.p);
	}
}

static void test_delta_stream__csum_properties(void **state)
{
	u8 buf[1000];

	for (int i = 0; i < 1000; i++)
		buf[i] = (u8)(i * 31);
	/* chaining */
	assert_true(delta_csum_update(delta_csum(buf, 400), buf + 400, 600) ==
		    delta_csum(buf, 1000));
	/* both halves are real CRCs: check values of "123456789" */
	assert_int_equal(delta_csum("123456789", 9) >> 32, 0xE3069283u);
	assert_int_equal(delta_csum("123456789", 9) & 0xffffffffu, 0xCBF43926u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delta_stream__roundtrip),
		cmocka_unit_test(test_delta_stream__version1_header),
		cmocka_unit_test(test_delta_stream__every_truncation_fails),
		cmocka_unit_test(test_delta_stream__every_bit_flip_fails),
		cmocka_unit_test(test_delta_stream__garbage_lost_and_repeated_records),
		cmocka_unit_test(test_delta_stream__valid_checksum_bad_structure),
		cmocka_unit_test(test_delta_stream__writer_refuses_bad_records),
		cmocka_unit_test(test_delta_stream__resume_chains_checksum),
		cmocka_unit_test(test_delta_stream__token_files),
		cmocka_unit_test(test_delta_stream__header_errors_are_clear),
		cmocka_unit_test(test_delta_stream__csum_properties),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
