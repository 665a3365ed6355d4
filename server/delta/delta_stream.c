// SPDX-License-Identifier: GPL-2.0-only
/*
 * delta_stream.c - XDR writer and validating reader of delta streams and resume tokens.
 *
 * What.  The stream layout is in doc/delta-format.md.  Fixed parts of every record are
 * built and parsed with libtirpc's xdrmem routines into a small buffer; payloads are copied
 * through as XDR variable-length opaques (length already in the fixed part, data, zero
 * padding to 4 bytes).  Both ends keep the same running state: the next sequence number,
 * the first chunk a record may start at, counts, and the running stream checksum.
 *
 * Invariants (checked by the reader on every record, so a bad stream is rejected before
 * any of its fields is used):
 *  - each record's fixed part carries crc32c(seed per type) of its other fixed bytes;
 *  - seq increases by exactly one per record, starting at header.start_seq;
 *  - records are in increasing chunk order without overlap, starting at or after
 *    header.start_chunk, and end within header.volume_chunks;
 *  - an extent holds 1 .. DELTA_MAX_EXTENT bytes of target, a known codec, a payload no
 *    longer than that codec can produce (raw: exactly the extent), the source checksum
 *    exactly when the codec is differencing or the sender read the source, none in a full
 *    stream;
 *  - the trailer's totals and running checksum equal what was read, and the input ends
 *    there.
 * Under -DFUZZING the checksum comparisons are skipped so the fuzzer reaches the structural
 * checks behind them (corrupt input with a valid checksum, DESIGN.md 8.6).
 *
 * Versions.  The writer writes version 2 (the header carries both snapshots' provenance);
 * the reader also reads version 1, an older sender's, and fills the provenance from its
 * uuid and gens (doc/delta-format.md says why that is right).  Tokens keep their own
 * version.
 *
 * Failure.  The reader holds no state outside itself; an error leaves it unusable, and the
 * caller's token (delta_reader_token) still names the last record it returned.  Token
 * files are replaced atomically (write, fsync, rename, fsync directory): after a crash the
 * file holds the old or the new token, never a torn one, and the checksum catches media
 * damage.
 */
#include "delta/delta_stream.h"
#include "util/path.h"
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <rpc/xdr.h>
#include <zlib.h>
#include "util/crc32c.h"
#include "delta/delta_codec.h"

#define SEED_HEADER  DELTA_SEED_HEADER
#define SEED_EXTENT  DELTA_SEED_EXTENT
#define SEED_ZERO    DELTA_SEED_ZERO
#define SEED_TRAILER DELTA_SEED_TRAILER
#define SEED_TOKEN   DELTA_SEED_TOKEN

/* XDR sizes of the fixed parts (asserted when packing). */
#define HEADER_V1_BYTES 92  /* version 1: no provenance (read only) */
#define HEADER_BYTES	140 /* version 2: the snapshots' provenance before hcrc */
#define EXTENT_BYTES	(4 + 52)
#define ZERO_BYTES	(4 + 24)
#define TRAILER_BYTES	(4 + 60)
#define FIXED_MAX	HEADER_BYTES

#ifdef FUZZING
#define CSUM_BAD(a, b) (0 && (a) != (b))
#else
#define CSUM_BAD(a, b) ((a) != (b))
#endif

u64 delta_csum_update(u64 csum, const void *buf, size_t len)
{
	u32 hi = (u32)(csum >> 32), lo = (u32)csum;

	hi = crc32c(hi, buf, len);
	/* zlib takes a uInt length */
	for (const u8 *p = buf; len;) {
		uInt k = (uInt)MIN(len, (size_t)1 << 30);

		lo = (u32)crc32(lo, p, k);
		p += k;
		len -= k;
	}
	return ((u64)hi << 32) | lo;
}

u64 delta_csum(const void *buf, size_t len)
{
	return delta_csum_update(0, buf, len);
}

/* ---- shared running state ---- */

struct run_state {
	u64 seq, min_chunk, csum;
	struct delta_trailer tot;
};

static void run_init(struct run_state *s, const struct delta_header *h)
{
	memset(s, 0, sizeof(*s));
	s->seq = h->start_seq;
	s->min_chunk = h->start_chunk;
	s->csum = h->start_csum;
}

/* Past record @r (extent or zero, its bytes already in s->csum): the next sequence number,
 * the first chunk the next record may start at, and the totals the trailer will carry. */
static void run_advance(struct run_state *s, const struct delta_record *r)
{
	s->seq++;
	s->min_chunk = r->chunk + r->count;
	if (r->type == DELTA_REC_EXTENT) {
		s->tot.extents++;
		s->tot.data_chunks += r->count;
		s->tot.payload_bytes += r->payload_len;
	} else {
		s->tot.zero_extents++;
		s->tot.zero_chunks += r->count;
	}
}

static void run_token(const struct run_state *s, const struct delta_header *h,
		      struct delta_token *t)
{
	memset(t, 0, sizeof(*t));
	memcpy(t->uuid, h->uuid, sizeof(t->uuid));
	t->chunk_size = h->chunk_size;
	t->src_tag = h->src_tag;
	t->tgt_tag = h->tgt_tag;
	t->src_gen = h->src_gen;
	t->tgt_gen = h->tgt_gen;
	t->next_seq = s->seq;
	t->next_chunk = s->min_chunk;
	t->stream_csum = s->csum;
}

static bool header_valid(const struct delta_header *h, const char **why)
{
	*why = NULL;
	if (!IS_POWER_OF_2(h->chunk_size) || h->chunk_size < 512 ||
	    h->chunk_size > DELTA_MAX_EXTENT)
		*why = "chunk size is not a power of two in 512 .. 1 MiB";
	else if (h->flags & ~DELTA_FULL)
		*why = "unknown header flags";
	else if (!h->volume_chunks || h->volume_chunks > (UINT64_MAX >> 1) / h->chunk_size)
		*why = "volume size out of range";
	else if (h->start_chunk > h->volume_chunks)
		*why = "start chunk beyond the volume";
	else if (!h->start_seq && (h->start_chunk || h->start_csum))
		*why = "resume fields set in a fresh stream";
	else if ((h->flags & DELTA_FULL) && h->src_origin_gen)
		*why = "provenance of a source snapshot in a full stream";
	return !*why;
}

/* XDR helpers: the xdrmem stream never fails within the sizes used here, but check. */
static bool x32(XDR *x, u32 *v)
{
	return xdr_uint32_t(x, v);
}

static bool x64(XDR *x, u64 *v)
{
	return xdr_uint64_t(x, (uint64_t *)v);
}

/* The header's fields after magic and version, as @version lays them out. */
static bool header_xdr(XDR *x, struct delta_header *h, u32 version)
{
	return xdr_opaque(x, (char *)h->uuid, 16) && x32(x, &h->chunk_size) && x32(x, &h->flags) &&
	       x64(x, &h->volume_chunks) && x32(x, &h->src_tag) && x64(x, &h->src_gen) &&
	       x32(x, &h->tgt_tag) && x64(x, &h->tgt_gen) && x64(x, &h->start_seq) &&
	       x64(x, &h->start_chunk) && x64(x, &h->start_csum) &&
	       (version < 2 ||
		(xdr_opaque(x, (char *)h->src_origin_uuid, 16) && x64(x, &h->src_origin_gen) &&
		 xdr_opaque(x, (char *)h->tgt_origin_uuid, 16) && x64(x, &h->tgt_origin_gen)));
}

static bool extent_xdr(XDR *x, struct delta_record *r)
{
	return x64(x, &r->seq) && x64(x, &r->chunk) && x32(x, &r->count) && x32(x, &r->codec) &&
	       x32(x, &r->flags) && x32(x, &r->payload_len) && x64(x, &r->tgt_csum) &&
	       x64(x, &r->src_csum);
}

static bool zero_xdr(XDR *x, struct delta_record *r)
{
	return x64(x, &r->seq) && x64(x, &r->chunk) && x32(x, &r->count);
}

static bool trailer_xdr(XDR *x, struct delta_trailer *t)
{
	return x64(x, &t->end_seq) && x64(x, &t->extents) && x64(x, &t->zero_extents) &&
	       x64(x, &t->data_chunks) && x64(x, &t->zero_chunks) && x64(x, &t->payload_bytes) &&
	       x64(x, &t->stream_csum);
}

/* Appends crc32c(seed, buf[0..pos)) at pos; returns the new length. */
static u32 seal(XDR *x, u8 *buf, u32 seed)
{
	u32 pos = xdr_getpos(x), c = crc32c(seed, buf, pos);

	VERIFY(x32(x, &c));
	return xdr_getpos(x);
}

/* Extent checks shared by writer (caller bugs) and reader (corrupt input). */
static const char *extent_invalid(const struct delta_header *h, const struct run_state *s,
				  const struct delta_record *r)
{
	const struct delta_codec_ops *ops = delta_codec_get(r->codec);
	u64 len;

	if (r->chunk < s->min_chunk)
		return "extent out of order or overlapping the previous one";
	if (r->chunk > h->volume_chunks || !r->count || r->count > h->volume_chunks - r->chunk)
		return "extent beyond the end of the volume";
	if (r->type == DELTA_REC_ZERO)
		return r->count > DELTA_MAX_ZERO_CHUNKS ? "zero extent too long" : NULL;
	len = (u64)r->count * h->chunk_size;
	if (len > DELTA_MAX_EXTENT)
		return "extent longer than 1 MiB";
	if (!ops)
		return "unknown codec";
	if (r->flags & ~DELTA_EXTENT_SRC_CSUM)
		return "unknown extent flags";
	if ((h->flags & DELTA_FULL) && (r->flags & DELTA_EXTENT_SRC_CSUM))
		return "source checksum in a full stream";
	if (ops->differencing && !(r->flags & DELTA_EXTENT_SRC_CSUM))
		return "differencing extent without source checksum";
	if (r->payload_len > delta_codec_bound(len))
		return "payload longer than the codec can produce";
	if (r->codec == DELTA_CODEC_RAW && r->payload_len != len)
		return "raw payload length differs from the extent length";
	return NULL;
}

/* ---- writer ---- */

struct delta_writer {
	delta_write_fn fn;
	void *arg;
	struct delta_header h;
	struct run_state s;
	bool finished;
};

/* Writes bytes that count into the running stream checksum. */
static int w_put(struct delta_writer *w, const void *buf, size_t len)
{
	w->s.csum = delta_csum_update(w->s.csum, buf, len);
	return w->fn(w->arg, buf, len);
}

int delta_writer_new(struct delta_writer **wp, delta_write_fn fn, void *arg,
		     const struct delta_header *h)
{
	struct delta_writer *w;
	struct delta_header hc = *h;
	u32 magic = DELTA_STREAM_MAGIC, version = DELTA_STREAM_VERSION, len;
	const char *why;
	u8 buf[FIXED_MAX];
	XDR x;
	int rc;

	if (!header_valid(h, &why))
		return -EINVAL;
	xdrmem_create(&x, (char *)buf, sizeof(buf), XDR_ENCODE);
	VERIFY(x32(&x, &magic) && x32(&x, &version) && header_xdr(&x, &hc, version));
	len = seal(&x, buf, SEED_HEADER);
	VERIFY(len == HEADER_BYTES);
	rc = fn(arg, buf, len);
	if (rc)
		return rc;
	w = xzalloc(sizeof(*w));
	w->fn = fn;
	w->arg = arg;
	w->h = *h;
	run_init(&w->s, h);
	*wp = w;
	return 0;
}

static const u8 zero_pad[4];

/*
 * Appends record @r (extent or zero) with an extent's @payload: checks it against the stream
 * so far (-EINVAL, nothing written), packs, seals and writes the fixed part, the payload and
 * its padding, then advances the running state and the totals.  Returns 0, -EINVAL or the
 * callback's error.
 */
static int w_record(struct delta_writer *w, struct delta_record *r, const void *payload)
{
	bool extent = r->type == DELTA_REC_EXTENT;
	u32 type = r->type, len;
	u8 buf[FIXED_MAX];
	XDR x;
	int rc;

	if (w->finished || extent_invalid(&w->h, &w->s, r))
		return -EINVAL;
	xdrmem_create(&x, (char *)buf, sizeof(buf), XDR_ENCODE);
	VERIFY(x32(&x, &type) && (extent ? extent_xdr(&x, r) : zero_xdr(&x, r)));
	len = seal(&x, buf, extent ? SEED_EXTENT : SEED_ZERO);
	VERIFY(len == (extent ? EXTENT_BYTES : ZERO_BYTES));
	rc = w_put(w, buf, len);
	if (!rc && extent)
		rc = w_put(w, payload, r->payload_len);
	if (!rc && extent && (r->payload_len & 3))
		rc = w_put(w, zero_pad, 4 - (r->payload_len & 3));
	if (rc)
		return rc;
	run_advance(&w->s, r);
	return 0;
}

int delta_writer_extent(struct delta_writer *w, u64 chunk, u32 count, u32 codec, u32 flags,
			const void *payload, u32 payload_len, u64 tgt_csum, u64 src_csum)
{
	struct delta_record r = {.type = DELTA_REC_EXTENT,
				 .seq = w->s.seq,
				 .chunk = chunk,
				 .count = count,
				 .codec = codec,
				 .flags = flags,
				 .tgt_csum = tgt_csum,
				 .src_csum = (flags & DELTA_EXTENT_SRC_CSUM) ? src_csum : 0,
				 .payload_len = payload_len};

	return w_record(w, &r, payload);
}

int delta_writer_zero(struct delta_writer *w, u64 chunk, u32 count)
{
	struct delta_record r = {
		.type = DELTA_REC_ZERO, .seq = w->s.seq, .chunk = chunk, .count = count};

	return w_record(w, &r, NULL);
}

int delta_writer_finish(struct delta_writer *w, struct delta_trailer *out)
{
	struct delta_trailer t = w->s.tot;
	u32 type = DELTA_REC_TRAILER, len;
	u8 buf[FIXED_MAX];
	XDR x;
	int rc;

	if (w->finished)
		return -EINVAL;
	t.end_seq = w->s.seq;
	t.stream_csum = w->s.csum;
	xdrmem_create(&x, (char *)buf, sizeof(buf), XDR_ENCODE);
	VERIFY(x32(&x, &type) && trailer_xdr(&x, &t));
	len = seal(&x, buf, SEED_TRAILER);
	VERIFY(len == TRAILER_BYTES);
	rc = w->fn(w->arg, buf, len);
	if (rc)
		return rc;
	w->finished = true;
	if (out)
		*out = t;
	return 0;
}

void delta_writer_token(const struct delta_writer *w, struct delta_token *t)
{
	run_token(&w->s, &w->h, t);
}

void delta_writer_free(struct delta_writer *w)
{
	free(w);
}

/* ---- reader ---- */

struct delta_reader {
	delta_read_fn fn;
	void *arg;
	struct delta_header h;
	struct run_state s;
	struct delta_trailer trailer;
	bool csum_only; /* failed on the trailer's stream checksum alone */
	enum { R_NEW, R_RECORDS, R_DONE, R_FAILED } state;
	u8 *payload;
	size_t payload_cap;
	char err[200];
};

static __printf(2, 3) int r_fail(struct delta_reader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	r->state = R_FAILED;
	return -EILSEQ;
}

struct delta_reader *delta_reader_new(delta_read_fn fn, void *arg)
{
	struct delta_reader *r = xzalloc(sizeof(*r));

	r->fn = fn;
	r->arg = arg;
	return r;
}

void delta_reader_free(struct delta_reader *r)
{
	if (!r)
		return;
	free(r->payload);
	free(r);
}

const char *delta_reader_error(const struct delta_reader *r)
{
	return r->err;
}

/* Reads exactly len bytes: 0, 1 at a clean end of input before any byte, -EILSEQ if the
 * input ends inside, or the callback's error. */
static int r_get(struct delta_reader *r, void *buf, size_t len, const char *what)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = r->fn(r->arg, (u8 *)buf + got, len - got);

		if (n < 0) {
			snprintf(r->err, sizeof(r->err), "read error in %s: %s", what,
				 strerror((int)-n));
			r->state = R_FAILED;
			return (int)n;
		}
		if (n == 0)
			return got ? r_fail(r, "stream truncated in %s (record %llu)", what,
					    (unsigned long long)r->s.seq)
				   : 1;
		got += (size_t)n;
	}
	return 0;
}

static int r_get_all(struct delta_reader *r, void *buf, size_t len, const char *what)
{
	int rc = r_get(r, buf, len, what);

	if (rc == 1)
		return r_fail(r, "stream truncated before %s (record %llu)", what,
			      (unsigned long long)r->s.seq);
	return rc;
}

/* Checks the crc32c at the end of a fixed part of len bytes. */
static bool sealed(const u8 *buf, u32 len, u32 seed)
{
	u32 stored;
	XDR x;

	xdrmem_create(&x, (char *)buf + len - 4, 4, XDR_DECODE);
	if (!x32(&x, &stored))
		return false;
	return !CSUM_BAD(stored, crc32c(seed, buf, len - 4));
}

int delta_reader_header(struct delta_reader *r, struct delta_header *h)
{
	u8 buf[HEADER_BYTES];
	u32 magic, version, len;
	const char *why;
	XDR x;
	int rc;

	if (r->state != R_NEW)
		return r->state == R_FAILED ? -EILSEQ : -EINVAL;
	rc = r_get_all(r, buf, 8, "the stream header");
	if (rc)
		return rc;
	xdrmem_create(&x, (char *)buf, 8, XDR_DECODE);
	if (!x32(&x, &magic) || !x32(&x, &version))
		return r_fail(r, "stream header does not parse");
	if (magic != DELTA_STREAM_MAGIC)
		return r_fail(r, "not a delta stream (magic %08x)", magic);
	if (version < 1 || version > DELTA_STREAM_VERSION)
		return r_fail(r,
			      "delta stream format version %u; this ddsnap reads versions 1 to %u",
			      version, DELTA_STREAM_VERSION);
	len = version == 1 ? HEADER_V1_BYTES : HEADER_BYTES;
	rc = r_get_all(r, buf + 8, len - 8, "the stream header");
	if (rc)
		return rc;
	memset(&r->h, 0, sizeof(r->h));
	xdrmem_create(&x, (char *)buf + 8, len - 8, XDR_DECODE);
	if (!header_xdr(&x, &r->h, version))
		return r_fail(r, "stream header does not parse");
	if (!sealed(buf, len, SEED_HEADER))
		return r_fail(r, "stream header checksum mismatch");
	if (version == 1) {
		/* an older sender recorded no provenance: its snapshots were its own */
		memcpy(r->h.tgt_origin_uuid, r->h.uuid, sizeof(r->h.uuid));
		r->h.tgt_origin_gen = r->h.tgt_gen;
		if (!(r->h.flags & DELTA_FULL)) {
			memcpy(r->h.src_origin_uuid, r->h.uuid, sizeof(r->h.uuid));
			r->h.src_origin_gen = r->h.src_gen;
		}
	}

	if (!header_valid(&r->h, &why))
		return r_fail(r, "bad stream header: %s", why);
	run_init(&r->s, &r->h);
	r->state = R_RECORDS;
	if (h)
		*h = r->h;
	return 0;
}

static int r_trailer(struct delta_reader *r, const u8 *type_bytes)
{
	u8 buf[TRAILER_BYTES], extra;
	struct delta_trailer t;
	XDR x;
	int rc;

	memcpy(buf, type_bytes, 4);
	rc = r_get_all(r, buf + 4, sizeof(buf) - 4, "the trailer");
	if (rc)
		return rc;
	xdrmem_create(&x, (char *)buf + 4, sizeof(buf) - 4, XDR_DECODE);
	if (!trailer_xdr(&x, &t))
		return r_fail(r, "trailer does not parse");
	if (!sealed(buf, sizeof(buf), SEED_TRAILER))
		return r_fail(r, "trailer checksum mismatch");
	if (t.end_seq != r->s.seq || t.extents != r->s.tot.extents ||
	    t.zero_extents != r->s.tot.zero_extents || t.data_chunks != r->s.tot.data_chunks ||
	    t.zero_chunks != r->s.tot.zero_chunks || t.payload_bytes != r->s.tot.payload_bytes)
		return r_fail(r, "trailer totals differ from the records read (records lost?)");
	if (CSUM_BAD(t.stream_csum, r->s.csum)) {
		r->trailer = t;
		r->csum_only = true;
		return r_fail(r, "stream checksum mismatch");
	}
	rc = r_get(r, &extra, 1, "the end of the stream");
	if (rc == 0)
		return r_fail(r, "bytes after the trailer");
	if (rc < 0)
		return rc;
	r->trailer = t;
	r->state = R_DONE;
	return 0;
}

int delta_reader_next(struct delta_reader *r, struct delta_record *rec)
{
	u8 buf[FIXED_MAX], pad[4];
	const char *why;
	u32 type, fixed, seed;
	XDR x;
	int rc;

	if (r->state != R_RECORDS)
		return r->state == R_FAILED ? -EILSEQ : r->state == R_DONE ? 0 : -EINVAL;
	rc = r_get_all(r, buf, 4, "a record type");
	if (rc)
		return rc;
	xdrmem_create(&x, (char *)buf, 4, XDR_DECODE);
	VERIFY(x32(&x, &type));
	if (type == DELTA_REC_TRAILER)
		return r_trailer(r, buf);
	if (type == DELTA_REC_EXTENT) {
		fixed = EXTENT_BYTES;
		seed = SEED_EXTENT;
	} else if (type == DELTA_REC_ZERO) {
		fixed = ZERO_BYTES;
		seed = SEED_ZERO;
	} else {
		return r_fail(r, "unknown record type %u after record %llu", type,
			      (unsigned long long)r->s.seq);
	}
	rc = r_get_all(r, buf + 4, fixed - 4, "a record header");
	if (rc)
		return rc;
	memset(rec, 0, sizeof(*rec));
	rec->type = type;
	xdrmem_create(&x, (char *)buf + 4, fixed - 4, XDR_DECODE);
	if (!(type == DELTA_REC_EXTENT ? extent_xdr(&x, rec) : zero_xdr(&x, rec)))
		return r_fail(r, "record header does not parse");
	if (!sealed(buf, fixed, seed))
		return r_fail(r, "record %llu: header checksum mismatch",
			      (unsigned long long)r->s.seq);
	if (rec->seq != r->s.seq)
		return r_fail(r, "record %llu where record %llu was expected (lost or repeated)",
			      (unsigned long long)rec->seq, (unsigned long long)r->s.seq);
	why = extent_invalid(&r->h, &r->s, rec);
	if (why)
		return r_fail(r, "record %llu (chunk %llu): %s", (unsigned long long)rec->seq,
			      (unsigned long long)rec->chunk, why);
	r->s.csum = delta_csum_update(r->s.csum, buf, fixed);
	if (type == DELTA_REC_EXTENT) {
		size_t padlen = (4 - (rec->payload_len & 3)) & 3;

		if (r->payload_cap < rec->payload_len) {
			free(r->payload);
			r->payload_cap =
				MAX((size_t)rec->payload_len, delta_codec_bound(DELTA_MAX_EXTENT));
			r->payload = xmalloc(r->payload_cap);
		}
		rc = r_get_all(r, r->payload, rec->payload_len, "an extent payload");
		if (!rc)
			rc = r_get_all(r, pad, padlen, "an extent payload");
		if (rc)
			return rc;
		for (size_t i = 0; i < padlen; i++)
			if (pad[i])
				return r_fail(r, "record %llu: nonzero payload padding",
					      (unsigned long long)rec->seq);
		r->s.csum = delta_csum_update(r->s.csum, r->payload, rec->payload_len);
		r->s.csum = delta_csum_update(r->s.csum, pad, padlen);
		rec->payload = r->payload;
	}
	run_advance(&r->s, rec);
	return 1;
}

void delta_reader_trailer(const struct delta_reader *r, struct delta_trailer *t)
{
	*t = r->trailer;
}

bool delta_reader_csum_mismatch(const struct delta_reader *r, struct delta_trailer *t)
{
	if (!r->csum_only) /* set only together with the failure */
		return false;
	*t = r->trailer;
	return true;
}

void delta_reader_token(const struct delta_reader *r, struct delta_token *t)
{
	run_token(&r->s, &r->h, t);
}

/* ---- tokens ---- */

bool delta_token_matches(const struct delta_token *t, const struct delta_header *h)
{
	return !memcmp(t->uuid, h->uuid, sizeof(t->uuid)) && t->chunk_size == h->chunk_size &&
	       t->src_tag == h->src_tag && t->tgt_tag == h->tgt_tag && t->src_gen == h->src_gen &&
	       t->tgt_gen == h->tgt_gen;
}

static bool token_xdr(XDR *x, struct delta_token *t, u32 *magic, u32 *version)
{
	return x32(x, magic) && x32(x, version) && xdr_opaque(x, (char *)t->uuid, 16) &&
	       x32(x, &t->chunk_size) && x32(x, &t->src_tag) && x64(x, &t->src_gen) &&
	       x32(x, &t->tgt_tag) && x64(x, &t->tgt_gen) && x64(x, &t->next_seq) &&
	       x64(x, &t->next_chunk) && x64(x, &t->stream_csum);
}

void delta_token_pack(const struct delta_token *t, u8 out[DELTA_TOKEN_BYTES])
{
	struct delta_token tc = *t;
	u32 magic = DELTA_TOKEN_MAGIC, version = DELTA_TOKEN_VERSION;
	XDR x;

	xdrmem_create(&x, (char *)out, DELTA_TOKEN_BYTES, XDR_ENCODE);
	VERIFY(token_xdr(&x, &tc, &magic, &version));
	VERIFY(seal(&x, out, SEED_TOKEN) == DELTA_TOKEN_BYTES);
}

int delta_token_unpack(struct delta_token *t, const u8 in[DELTA_TOKEN_BYTES])
{
	u32 magic, version;
	XDR x;

	xdrmem_create(&x, (char *)in, DELTA_TOKEN_BYTES, XDR_DECODE);
	if (!token_xdr(&x, t, &magic, &version) || magic != DELTA_TOKEN_MAGIC ||
	    version != DELTA_TOKEN_VERSION || !sealed(in, DELTA_TOKEN_BYTES, SEED_TOKEN))
		return -EILSEQ;
	return 0;
}

int delta_fd_write(void *fdp, const void *buf, size_t len)
{
	return write_full(*(int *)fdp, buf, len);
}

ssize_t delta_fd_read(void *fdp, void *buf, size_t len)
{
	int fd = *(int *)fdp;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (u8 *)buf + got, len - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return got ? (ssize_t)got : -errno;
		}
		if (!n)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int delta_token_save(const char *path, const struct delta_token *t)
{
	u8 buf[DELTA_TOKEN_BYTES];
	size_t plen = strlen(path);
	char *tmp = xmalloc(plen + 5), *dcopy = xstrdup(path);
	int fd, rc = 0;

	delta_token_pack(t, buf);
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", 5);
	fd = path_open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600); /* no symlink */
	if (fd < 0) {
		rc = fd;
		goto out_free;
	}
	rc = delta_fd_write(&fd, buf, sizeof(buf));
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (!rc) {
		int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0) {
			if (fsync(dfd))
				rc = -errno;
			close(dfd);
		}
	}
	if (rc)
		unlink(tmp);
out_free:
	free(tmp);
	free(dcopy);
	return rc;
}

int delta_token_load(const char *path, struct delta_token *t)
{
	u8 buf[DELTA_TOKEN_BYTES + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = delta_fd_read(&fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return (int)n;
	if (n != DELTA_TOKEN_BYTES)
		return -EILSEQ;
	return delta_token_unpack(t, buf);
}
