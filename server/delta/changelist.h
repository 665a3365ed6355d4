/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * changelist.h - the changelist file: the sorted list of chunks that differ between a
 * source and a target snapshot (DESIGN.md 3), the input of `ddsnap delta create`.
 *
 * Format (doc/delta-format.md, "Changelist file"): an XDR header (magic, version, volume
 * uuid, chunk size, source and target tag and gen, volume size in chunks, count, checksum
 * of the body, header checksum), then count XDR hypers in strictly increasing order, each
 * below the volume size.  Nothing follows the last chunk.
 *
 * The writer streams (the server walks its tree and appends) and publishes the file
 * atomically on commit: it writes <path>.tmp, rewrites the header with the final count and
 * checksum, fsyncs, renames.  The reader streams with a fixed buffer and validates every
 * chunk as it goes; the body checksum and count are checked when the last chunk is read,
 * so a caller that must not act on a bad list runs changelist_verify() first.
 * Not thread-safe; all calls block on file I/O.
 */
#ifndef DDSNAP_CHANGELIST_H
#define DDSNAP_CHANGELIST_H

#include "util/base.h"

#define CHANGELIST_MAGIC	0x5a43484cu /* "ZCHL" */
#define CHANGELIST_VERSION	1u
#define CHANGELIST_SEED		0x5a43484cu /* crc32c seed of the header checksum */
#define CHANGELIST_HEADER_BYTES 80

struct changelist_header {
	u8 uuid[16];
	u32 chunk_size; /* power of two, 512 .. 1 MiB */
	u32 src_tag;	/* DDSNAP_TAG_NONE: no source (full delta) */
	u32 tgt_tag;	/* DDSNAP_TAG_HEAD: the live origin */
	u64 src_gen, tgt_gen;
	u64 volume_chunks; /* size of the target in chunks; every chunk is below it */
	u64 count;	   /* set by the writer */
	u64 csum;	   /* delta_csum() of the XDR body; set by the writer */
};

struct changelist_writer;
struct changelist_reader;

/* Creates <path>.tmp and writes a provisional header.  Returns 0 or -errno (-EINVAL for a
 * bad chunk size or volume size).  count and csum in @h are ignored. */
int changelist_create(struct changelist_writer **w, const char *path,
		      const struct changelist_header *h);
/* Appends @chunk: -EINVAL unless it is above the previous one and below the volume size.
 * Buffered; O(1) amortised. */
int changelist_append(struct changelist_writer *w, u64 chunk);
/* Finishes the file and renames it over @path (atomic, durable).  Frees @w either way.
 * Returns 0 or -errno. */
int changelist_commit(struct changelist_writer *w);
/* Drops the unfinished file and frees @w. */
void changelist_abort(struct changelist_writer *w);

/* Opens @path and validates its header into *h.  Returns 0, -ENOENT..., or -EILSEQ (not a
 * changelist, bad version, bad header); *r is set only on success. */
int changelist_open(struct changelist_reader **r, const char *path, struct changelist_header *h);
/* Next chunk: returns 1 with *chunk, 0 at the end (after checking count, checksum and that
 * nothing follows), or -EILSEQ (out of order, beyond the volume, truncated, checksum). */
int changelist_next(struct changelist_reader *r, u64 *chunk);
/* Starts reading the chunks again from the first (a validating pass, then the real one,
 * on the same open file).  Returns 0 or -errno. */
int changelist_rewind(struct changelist_reader *r);
void changelist_close(struct changelist_reader *r);
/* The reason for the last -EILSEQ of @r. */
const char *changelist_error(const struct changelist_reader *r);

/* Reads all of @path: 0 if it is a valid changelist (header in *h if not NULL), else the
 * error, with the message in @why (if not NULL).  O(count), one sequential pass. */
int changelist_verify(const char *path, struct changelist_header *h, char *why, size_t whylen);

#endif
