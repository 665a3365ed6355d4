/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * deadlist_disk.h - persisted deadlists (doc/format.md, "Persisted deadlists"; issue 22):
 * the piece table and the entry tree of a store with LABEL_FEATURE_INCOMPAT_DEADLISTS, and
 * an in-memory index of the pieces (one row each, never the entries).
 *
 * A piece is a set of deadlist entries (chunk, death) with one sublist key and one owner,
 * named by an id.  Its row in the piece table is (death, key, id) -> count; its entries are
 * the key range (id, *, *) of the entry tree.  This module does not know snapshots: the
 * caller (the snapshot engine) derives a piece's owner from its death (the oldest live
 * snapshot with gen >= death, the head if none) and so asks for pieces by ranges of death
 * and key.  The engine uses them instead of its rebuilt deadlists when
 * params.persist_deadlists (engine.c): every store with LABEL_FEATURE_INCOMPAT_DEADLISTS.
 *
 * Memory: about 40 bytes per piece, whatever the number of entries; open reads the piece
 * table only.
 *
 * Locking: none inside; the owner serialises every call (the engine lock).  Calls that take
 * a struct tx change the open txg only; dldisk_sync seals it.
 *
 * Errors (base.h): -EILSEQ a malformed row (logged), -ENOSPC no metadata block, read errors
 * of the trees (btree.h).  A failed dldisk_add changes nothing; a failed dldisk_free leaves
 * the pieces freed before the error freed and the rest as they were, so the caller must
 * treat its txg as failed (the engine fails itself, as for any error after its first change).
 */
#ifndef DDSNAP_DEADLIST_DISK_H
#define DDSNAP_DEADLIST_DISK_H

#include "util/base.h"
#include "blk/block.h"
#include "blk/cache.h"
#include "pdata/btree.h"
#include "pdata/tx.h"

struct iopool;

/* The two trees (format.h, struct dl_piece_key_disk and struct dl_entry_key_disk). */
extern const struct btree_type dldisk_piece_tree_type;
extern const struct btree_type dldisk_entry_tree_type;

/* What the uberblock keeps: roots 2 and 5 and scalar 2. */
struct dldisk_roots {
	struct blkptr pieces;  /* UB_ROOT_DEADLISTS */
	struct blkptr entries; /* UB_ROOT_DEADLIST_ENTRIES */
	u64 next_piece;	       /* UB_SCALAR_NEXT_PIECE; 0 on an empty store means 1 */
};

/* A piece as the index keeps it (read-only for callers). */
struct dl_piece {
	u64 death, key, id;
	u64 count;	/* entries, >= 1 once the piece exists */
	bool dirty;	/* count changed in the open txg: the row is written at sync */
	bool persisted; /* its row is in the piece table (written at a sync, or loaded) */
};

struct dldisk;

/*
 * Opens the trees at @roots and loads every row into the index.  Returns 0 and *@out,
 * -EILSEQ for a malformed row (count 0, reserved bytes set, id 0 or not below next_piece,
 * key not below death; logged), or a read error.  O(pieces) reads of the table only.
 */
int dldisk_open(struct cache *cache, const struct dldisk_roots *roots, struct dldisk **out);
/* Frees the index and the tree handles (unsynced changes stay in the cache).  NULL ok. */
void dldisk_close(struct dldisk *d);

/*
 * Frees every block of both trees at @roots in @tx (an interrupted conversion's: the
 * engine's upgrade, engine_upgrade_begin), without reading their rows.  Returns 0 or a
 * read error (then the txg must fail: blocks freed before it stay freed).  O(nodes).
 */
int dldisk_destroy(struct cache *cache, const struct dldisk_roots *roots, struct tx *tx);

/* Pieces in (death, key, id) order: how many, the @i-th (i < count).  O(1). */
u32 dldisk_npieces(const struct dldisk *d);
const struct dl_piece *dldisk_piece(const struct dldisk *d, u32 i);
/* Index of the first piece with death > @death (npieces if none).  O(log pieces). */
u32 dldisk_first_after(const struct dldisk *d, u64 death);

/*
 * Adds the entry (@chunk, @death) to the newest piece (death @death, key @key), creating
 * that piece (a fresh id) if there is none.  @key < @death.  Returns 0, -EEXIST (the entry
 * is already in that piece), -EINVAL, -ENOSPC or a read error; on error nothing changed.
 * O(log entries + pieces of that death).
 */
int dldisk_add(struct dldisk *d, struct tx *tx, u64 death, u64 key, u64 chunk);

/* One entry of dldisk_add_many: its sublist key and chunk (the death is the call's). */
struct dldisk_ent {
	u64 key, chunk;
};

/*
 * dldisk_add of each of the @n entries (@ents[i].chunk, @death) with key @ents[i].key, in
 * any order (@ents is sorted in place by key, then chunk).  The entries of one key go into
 * the entry tree through btree_insert_sorted: a copy-out batch's ascending chunks cost a
 * descent per leaf they fill, not one each.  Returns 0, -EINVAL (a key not below @death;
 * nothing changed) or dldisk_add's other errors; on those the entries of the keys before
 * the failing one, and a prefix of its own, are added (counts exact for what was added),
 * the rest not: the caller fails its txg.
 */
int dldisk_add_many(struct dldisk *d, struct tx *tx, u64 death, struct dldisk_ent *ents, u32 n);

/*
 * Sum of the counts of the pieces with death in (@dlo, @dhi] and key in [@klo, @khi].
 * O(log pieces + pieces with death in the range).
 */
u64 dldisk_count(const struct dldisk *d, u64 dlo, u64 dhi, u64 klo, u64 khi);

/*
 * Frees every piece with death in (@dlo, @dhi] and key > @kmin: calls @fn(@arg, chunk,
 * death) for each of its entries (in (chunk, death) order; @fn frees the exception), then
 * deletes the entries and the row and drops the piece from the index.  Stops at the first
 * non-zero return of @fn or error and returns it.  O(pieces in the range + entries freed
 * + log entries per leaf of entries freed): a piece's entries go by btree_delete_range.
 * *@freed (may be NULL) counts the entries freed.
 */
int dldisk_free(struct dldisk *d, struct tx *tx, u64 dlo, u64 dhi, u64 kmin,
		int (*fn)(void *arg, u64 chunk, u64 death), void *arg, u64 *freed);

/*
 * Calls @fn(@arg, piece, chunk, death) for every entry of every piece, in the entry tree's
 * order (piece id, chunk, death), in one pass that reads ahead on @pool (NULL: none; a free
 * pool, see btree_cursor_readahead); stops at and returns @fn's first non-zero return.
 * Returns -EILSEQ (logged) if a piece's entries do not number its count or an entry names
 * no piece of the index.  O(entries + pieces log pieces).  For check, dump and tests.
 */
int dldisk_walk(struct dldisk *d, struct iopool *pool,
		int (*fn)(void *arg, const struct dl_piece *p, u64 chunk, u64 death), void *arg);

/*
 * btree_verify of both trees (@fn, @arg: each block they reference, as btree_verify).
 * Returns 0, -EILSEQ with the reason in @why, a read error or @fn's return.  O(nodes).
 */
int dldisk_verify(struct dldisk *d, btree_block_fn fn, void *arg, char *why, size_t whylen);

/*
 * Writes the row of every piece whose count changed in the open txg, seals both trees and
 * returns what the uberblock keeps.  Call after the txg's last change and before
 * cache_sync.  Returns 0, -ENOSPC or a read error.  O(pieces) plus the rows written.
 */
int dldisk_sync(struct dldisk *d, struct tx *tx, struct dldisk_roots *out);

#endif
