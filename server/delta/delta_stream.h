/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * delta_stream.h - the portable delta stream between two snapshots (doc/delta-format.md).
 *
 * A stream is a header, then extent and zero records in increasing chunk order, then a
 * trailer.  Everything is XDR (RFC 4506, via libtirpc), so any host reads any host's stream.
 * Every record carries its own header checksum and a sequence number; extents carry a
 * 64-bit checksum of the target data and, when the sender read it, of the source data; the
 * trailer carries the totals and a running checksum of every record byte.
 *
 * The writer and reader move bytes through callbacks, so the same code serves files, pipes
 * and sockets.  Neither seeks.  The reader validates every length and bound before use and
 * reports the first problem as -EILSEQ with a message (delta_reader_error()); it never
 * crashes on any input (tests/fuzz/fuzz_delta_stream.c).
 *
 * Resume: the reader's position after a record (next sequence number, next chunk, running
 * checksum) is a struct delta_token.  A sender given a token writes a stream whose header
 * starts there; a receiver holding the token can also skip the already-applied records of
 * a full re-sent stream.  See delta_token_* below.
 *
 * Objects are single-threaded; calls block only inside the callbacks.
 */
#ifndef DDSNAP_DELTA_STREAM_H
#define DDSNAP_DELTA_STREAM_H

#include <sys/types.h>
#include "util/base.h"
#include "ddsnap_wire.h"

#define DELTA_STREAM_MAGIC 0x5a44454cu /* "ZDEL" */
/*
 * 2: the header carries the provenance of both snapshots (src_origin_*, tgt_origin_*).  A
 * reader still reads version 1 (an older sender's), taking uuid and the gens as the
 * provenance: an older ddsnap recorded none, so its snapshots were its own.
 */
#define DELTA_STREAM_VERSION 2u
#define DELTA_TOKEN_MAGIC    0x5a44544bu /* "ZDTK" */
#define DELTA_TOKEN_VERSION  1u		 /* tokens did not change with stream version 2 */

/* crc32c seeds of the fixed-part checksums, one per record type, so that no record can
 * validate as another (part of the format). */
#define DELTA_SEED_HEADER  0x44484452u
#define DELTA_SEED_EXTENT  0x44455854u
#define DELTA_SEED_ZERO	   0x445a4552u
#define DELTA_SEED_TRAILER 0x44545241u
#define DELTA_SEED_TOKEN   0x44544f4bu

/* header flags */
#define DELTA_FULL 0x1u /* no source snapshot: every chunk of the target is in the stream */
/* extent flags */
#define DELTA_EXTENT_SRC_CSUM 0x1u /* src_csum is the checksum of the source extent */

/* Tags: DDSNAP_TAG_NONE for "no snapshot" (full streams), DDSNAP_TAG_HEAD for the live origin. */

/* Zero records may be long: they carry no data. */
#define DELTA_MAX_ZERO_CHUNKS (1u << 24)

enum delta_record_type {
	DELTA_REC_EXTENT = 1,
	DELTA_REC_ZERO = 2,
	DELTA_REC_TRAILER = 3,
};

struct delta_header {
	u8 uuid[16];
	u32 chunk_size; /* power of two, 512 .. DELTA_MAX_EXTENT */
	u32 flags;	/* DELTA_FULL */
	u64 volume_chunks;
	u32 src_tag, tgt_tag;
	u64 src_gen, tgt_gen;
	/* where this stream starts: 0/0/0 for a fresh stream, a token's values for a resume */
	u64 start_seq, start_chunk, start_csum;
	/*
	 * Provenance (engine.h, struct engine_provenance) of the source and the target
	 * snapshot: the store that took each and its gen there, as the sender recorded it (its
	 * own uuid and gen for a snapshot it took).  The source's is zero in a full stream;
	 * the target's gen is never 0.
	 */
	u8 src_origin_uuid[16];
	u64 src_origin_gen;
	u8 tgt_origin_uuid[16];
	u64 tgt_origin_gen;
};

struct delta_record {
	u32 type;
	u64 seq;
	u64 chunk;
	u32 count;
	u32 codec;	   /* extents only */
	u32 flags;	   /* DELTA_EXTENT_SRC_CSUM */
	u64 tgt_csum;	   /* delta_csum() of the count * chunk_size target bytes */
	u64 src_csum;	   /* delta_csum() of the source extent, if flags say so */
	const u8 *payload; /* valid until the next delta_reader_next() */
	u32 payload_len;
};

struct delta_trailer {
	u64 end_seq; /* sequence number after the last record */
	u64 extents, zero_extents;
	u64 data_chunks, zero_chunks;
	u64 payload_bytes;
	u64 stream_csum; /* running checksum over all record bytes, from start_csum */
};

/* Resume point: identity of the transfer and the first record not yet applied. */
struct delta_token {
	u8 uuid[16];
	u32 chunk_size;
	u32 src_tag, tgt_tag;
	u64 src_gen, tgt_gen;
	u64 next_seq, next_chunk, stream_csum;
};

/*
 * The checksum of extent data and of the stream: CRC-32C in the high 32 bits, CRC-32
 * (IEEE) in the low 32 bits.  The two polynomials are coprime, so the pair is a CRC modulo
 * their degree-64 product: all burst errors up to 32 bits are caught and two different
 * extents collide with probability 2^-64.  Not cryptographic (ssh authenticates).
 * delta_csum_update(c, buf, len) continues c; delta_csum(buf, len) starts from 0.
 * O(len), several GB/s.
 */
u64 delta_csum_update(u64 csum, const void *buf, size_t len);
u64 delta_csum(const void *buf, size_t len);

/* Write callback: writes all len bytes or returns a negative errno. */
typedef int (*delta_write_fn)(void *arg, const void *buf, size_t len);
/* Read callback: returns bytes read (fewer only at end of input), 0 at end, or -errno. */
typedef ssize_t (*delta_read_fn)(void *arg, void *buf, size_t len);

struct delta_writer;

/* Starts a stream: validates @h (-EINVAL) and writes the header.  *w is set only on
 * success.  Returns 0 or a negative errno (from the callback or -EINVAL). */
int delta_writer_new(struct delta_writer **w, delta_write_fn fn, void *arg,
		     const struct delta_header *h);
/* Appends an extent record.  Chunks must increase and not overlap; payload_len must be
 * valid for the codec.  Returns 0, -EINVAL (caller bug, nothing written) or the callback's
 * error.  O(payload). */
int delta_writer_extent(struct delta_writer *w, u64 chunk, u32 count, u32 codec, u32 flags,
			const void *payload, u32 payload_len, u64 tgt_csum, u64 src_csum);
/* Appends a zero record: chunks [chunk, chunk + count) are zero in the target. */
int delta_writer_zero(struct delta_writer *w, u64 chunk, u32 count);
/* Writes the trailer; *t (if not NULL) gets it.  No more records after this. */
int delta_writer_finish(struct delta_writer *w, struct delta_trailer *t);
/* The resume token after the last record written (what a receiver would save). */
void delta_writer_token(const struct delta_writer *w, struct delta_token *t);
void delta_writer_free(struct delta_writer *w);

struct delta_reader;

/* A reader over @fn.  Never fails (allocation aborts). */
struct delta_reader *delta_reader_new(delta_read_fn fn, void *arg);
void delta_reader_free(struct delta_reader *r);
/* Reads and validates the header.  Returns 0 or -EILSEQ (corrupt, truncated, unknown
 * version), or the callback's error. */
int delta_reader_header(struct delta_reader *r, struct delta_header *h);
/*
 * Reads the next record into *rec.  Returns 1 for an extent or zero record, 0 when the
 * trailer was read and validated (totals, stream checksum, nothing after it), or a negative
 * errno: -EILSEQ for anything corrupt or truncated, with the reason in delta_reader_error().
 * Checks before returning: record header checksum, sequence, chunk order and bounds,
 * codec, payload length and zero padding.  Does not decode payloads nor check tgt_csum
 * (the caller decodes and must compare).  O(record); blocks in the callback.
 */
int delta_reader_next(struct delta_reader *r, struct delta_record *rec);
/* After delta_reader_next() returned 0: the trailer. */
void delta_reader_trailer(const struct delta_reader *r, struct delta_trailer *t);
/*
 * After delta_reader_next() failed with "stream checksum mismatch": true, and *t is the
 * sender's trailer (intact: its own checksum and every total matched).  Every record header
 * passed its checksum, so only payload bytes can differ from what was sent; a caller that
 * verified each decoded payload against its tgt_csum has applied the sender's data, and may
 * name the resume point by the sender's t->stream_csum instead of the damaged bytes'.
 * False after any other failure or none.
 */
bool delta_reader_csum_mismatch(const struct delta_reader *r, struct delta_trailer *t);
/* The token for "every record up to the last one returned has been applied" (right after
 * delta_reader_header(): the stream's start).  A caller that reads ahead captures it after
 * each record and saves the one of the last record it really applied. */
void delta_reader_token(const struct delta_reader *r, struct delta_token *t);
/* The reason for the last error ("" if none). */
const char *delta_reader_error(const struct delta_reader *r);

/* True if @t belongs to the transfer described by @h (same volume, chunk size, snapshots). */
bool delta_token_matches(const struct delta_token *t, const struct delta_header *h);
/* Token files: save writes <path>.tmp, fsyncs it and renames it over @path (atomic);
 * load returns 0, -ENOENT (no token), -EILSEQ (corrupt) or another errno.  Block. */
int delta_token_save(const char *path, const struct delta_token *t);
int delta_token_load(const char *path, struct delta_token *t);
/* Fixed-size XDR encoding of a token (DELTA_TOKEN_BYTES), for sending it over a wire. */
#define DELTA_TOKEN_BYTES 80
void delta_token_pack(const struct delta_token *t, u8 out[DELTA_TOKEN_BYTES]);
int delta_token_unpack(struct delta_token *t, const u8 in[DELTA_TOKEN_BYTES]);

/* Adapters for file descriptors (loop over short writes and EINTR). */
int delta_fd_write(void *fdp, const void *buf, size_t len);
ssize_t delta_fd_read(void *fdp, void *buf, size_t len);

#endif
