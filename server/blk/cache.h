/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * cache.h - the metadata block cache: a fixed memory budget of DDSNAP_BLOCK_SIZE buffers
 * over one struct bdev, with validation on read and write-back at txg sync.
 *
 * Every metadata block is read through cache_read(), which validates it (block.h) before
 * returning it, and checks that it is the version the caller's pointer expects (birth txg).
 * A block that fails validation is never cached and never returned.
 *
 * Copy-on-write discipline (the caller's side): a block written in an earlier txg is never
 * modified; the caller allocates a new address (struct tx), gets a fresh buffer with
 * cache_new() or cache_shadow(), and changes that.  A block born in the open txg may be
 * changed in place (after cache_dirty()).  cache_sync() writes every dirty block; nothing
 * reaches the device before that, so a crash before the uberblock write leaves only the
 * previous txg's blocks reachable.
 *
 * Memory: clean unreferenced blocks are evicted (LRU) to stay within the budget.  Dirty and
 * referenced blocks cannot be evicted; if they alone exceed the budget the cache grows
 * rather than fail, and cache_stats() reports it (the txg layer bounds dirty data so this
 * stays small).
 *
 * Locking: one mutex inside the cache; every function is safe to call from several threads.
 * A struct cblock's data may be changed only by the thread that dirtied it, under the
 * caller's own locking of the structure it belongs to.
 */
#ifndef DDSNAP_CACHE_H
#define DDSNAP_CACHE_H

#include "util/base.h"
#include "blk/bdev.h"
#include "blk/block.h"

struct cache;

/* A referenced cached block.  @data is DDSNAP_BLOCK_SIZE bytes, BDEV_ALIGN-aligned. */
struct cblock {
	u64 blocknr;
	void *data;
};

/* Returns a cache over @bdev using at most about @budget_bytes of buffers (min 16 blocks). */
struct cache *cache_create(struct bdev *bdev, size_t budget_bytes);
/* Frees the cache.  All blocks must be put; dirty blocks are dropped (unsynced changes lost). */
void cache_destroy(struct cache *c);

/*
 * Returns a referenced, validated block.  @expect_txg, if non-zero, must equal the block's
 * header txg (else -ESTALE: an older or newer version is at that address); a dirty block not
 * sealed yet belongs to the open txg and matches any @expect_txg above the last synced txg.
 * Returns 0, -EILSEQ (corrupt, an address past the device end, or a cached block of another
 * type), -ENOTBLK, -ESTALE, -EIO; @why (may be NULL) gets the reason.  O(1) on a hit plus
 * O(block size) validation on a miss.  Blocks on a miss (the cache mutex is not held then).
 */
int cache_read(struct cache *c, const struct block_type *type, u64 blocknr, u64 expect_txg,
	       struct cblock **out, char *why, size_t whylen);

/*
 * Readahead: reads the @n consecutive blocks from @first (at most CACHE_RUN_MAX) with one
 * device request and caches, clean and unreferenced, each that validates as @type and is
 * not cached already; the others are left out (a later cache_read meets them and says
 * why).  The txg and checksum a parent expects are checked when the block is used
 * (cache_read's @expect_txg, the caller's pointer check).  Returns 0 or the read's -errno.
 * Counts one read.  Blocks (the cache mutex is not held during the read).
 */
#define CACHE_RUN_MAX 32
int cache_read_run(struct cache *c, const struct block_type *type, u64 first, unsigned n);

/*
 * Returns a referenced, zeroed, dirty buffer for a newly allocated @blocknr of @type.  A stale
 * cached copy of @blocknr (a freed block) is replaced; it must be unreferenced (VERIFY).
 * Never fails, never blocks on I/O.
 */
struct cblock *cache_new(struct cache *c, const struct block_type *type, u64 blocknr);

/*
 * Copy-on-write: a new referenced dirty buffer at @new_blocknr holding a copy of @old's data
 * and flags (header identity cleared until sealed).  @old stays referenced: put it yourself.
 */
struct cblock *cache_shadow(struct cache *c, struct cblock *old, u64 new_blocknr);

/*
 * Marks a referenced block dirty (it must be born in the open txg: VERIFYs that its header
 * txg is above the last synced txg).  Undoes an earlier cache_seal(): seal it again before
 * recording its checksum anywhere.
 */
void cache_dirty(struct cache *c, struct cblock *b);

/* Drops a reference. */
void cache_put(struct cache *c, struct cblock *b);

/* Forgets @blocknr (freed): drops it from the cache even if dirty.  It must be unreferenced. */
void cache_forget(struct cache *c, u64 blocknr);

/*
 * Seals (block_seal with @txg) and writes every dirty block, then marks them clean and records
 * @txg as the last synced txg.  Runs of consecutive blocks go out as one request.  Does not
 * flush the device: the txg layer flushes before writing the uberblock.  A block sealed by
 * cache_seal() for @txg must not have changed since (VERIFY: its parent holds the checksum).
 * Returns 0 or the first -errno; on error the blocks stay dirty. O(dirty log dirty). Blocks;
 * the caller keeps the open txg's structures quiet meanwhile.
 */
int cache_sync(struct cache *c, u64 txg);

/*
 * Seals one dirty block now (so its checksum can go into a parent) and returns the csum.
 * The block must not change afterwards unless cache_dirty() is called on it again.
 */
u32 cache_seal(struct cache *c, struct cblock *b, u64 txg);

/*
 * Tells the cache which txg is the last durable one, for a store just opened (cache_sync
 * keeps it up to date afterwards).  Used for the copy-on-write and -ESTALE checks.
 */
void cache_set_synced_txg(struct cache *c, u64 txg);

struct cache_stats {
	u64 hits, misses, reads, writes; /* reads/writes: device I/Os */
	u64 cached, dirty, budget;	 /* blocks */
	u64 over_budget;		 /* times the cache grew past its budget */
};
void cache_stats(struct cache *c, struct cache_stats *out);
void cache_reset_stats(struct cache *c);

struct bdev *cache_bdev(struct cache *c);

#endif
