/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * snapmodel.h - the naive reference model of the snapshot engine (DESIGN.md 3, 7): the
 * origin and every snapshot each keep a full copy of every chunk.  Obviously right and
 * hopelessly expensive; tests run the real engine and this model side by side over long random
 * operation sequences and compare every chunk of every live snapshot byte for byte.
 *
 * Snapshots are named by the caller's tag (any u32, as in Zumastor).  The model knows nothing
 * of gens, exceptions or deadlists; it only says what each reader must see.  Memory:
 * (live snapshots + 1) * nchunks * chunk_size bytes.  Not thread-safe.
 */
#ifndef DDSNAP_SNAPMODEL_H
#define DDSNAP_SNAPMODEL_H

#include "util/base.h"

struct snapmodel;

/* A model volume of @nchunks zero-filled chunks of @chunk_size bytes. Never fails. */
struct snapmodel *snapmodel_create(u64 nchunks, u32 chunk_size);
void snapmodel_destroy(struct snapmodel *m);

/* Writes @len bytes at byte @off of origin chunk @chunk (off + len <= chunk_size). */
void snapmodel_origin_write(struct snapmodel *m, u64 chunk, u32 off, u32 len, const void *data);
/* Writes into snapshot @tag's own view (a writable snapshot). Returns 0 or -ENODATA. */
int snapmodel_snap_write(struct snapmodel *m, u32 tag, u64 chunk, u32 off, u32 len,
			 const void *data);
/* A snapshot of the origin as it is now. Returns 0, or -EEXIST if @tag is live. */
int snapmodel_create_snap(struct snapmodel *m, u32 tag);
/* Returns 0 or -ENODATA. */
int snapmodel_delete_snap(struct snapmodel *m, u32 tag);
/*
 * The contents of @chunk as snapshot @tag (or the origin, if @tag is SNAPMODEL_ORIGIN)
 * sees it: a pointer valid until the next call that changes the model, or NULL if no such
 * snapshot.
 */
#define SNAPMODEL_ORIGIN UINT64_MAX
const u8 *snapmodel_read(struct snapmodel *m, u64 tag, u64 chunk);

/* Live snapshot tags in creation order: fills up to @max, returns how many are live. */
u32 snapmodel_tags(struct snapmodel *m, u32 *tags, u32 max);
u32 snapmodel_count(struct snapmodel *m);

/*
 * Whether @chunk differs between @a and @b (either may be SNAPMODEL_ORIGIN).  Changelists
 * may report more than this (a chunk rewritten with equal bytes), never less.
 */
bool snapmodel_differs(struct snapmodel *m, u64 a, u64 b, u64 chunk);

#endif
