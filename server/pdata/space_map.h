/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * space_map.h - the on-disk, append-only log of ALLOC/FREE records of one metaslab
 * (format.h, "Space maps"), its loader into a range tree of free segments, and condensing.
 *
 * metaslab.c owns one space map per metaslab: it loads it on open, appends the txg's
 * allocations and frees at txg sync, condenses it when it grew twice as long as needed, and
 * keeps its struct space_map_phys in the metaslab table.  Block allocation for the log
 * itself goes through the struct tx the caller passes, so the log can live wherever the
 * caller's metadata allocator puts it (including in the metaslab it describes).
 *
 * Units: records and range trees are in blocks relative to the metaslab's first block.
 *
 * Within one txg the calls are: any number of space_map_append*() and at most one
 * space_map_condense() before them, then space_map_seal(), which finishes the blocks born
 * in this txg and returns the phys to store in the parent.  After an error from append or
 * condense the in-memory map is not usable for this txg: the caller must not commit it
 * (the store latches into its failed mode).
 *
 * Locking: none inside; the owning metaslab's lock covers every call.  Functions that read
 * or write blocks go through the cache and block on a miss; none flushes the device.
 */
#ifndef DDSNAP_SPACE_MAP_H
#define DDSNAP_SPACE_MAP_H

#include "util/base.h"
#include "blk/block.h"
#include "blk/cache.h"
#include "pdata/range_tree.h"
#include "pdata/tx.h"

/*
 * Condense when the log holds at least this percentage of the records its condensed form
 * needs (ZFS zfs_metaslab_condense_pct): at 200 the rewrite at least halves the log, so
 * the cost of condensing is paid back by the records it saves in later loads.
 */
#define SPACE_MAP_CONDENSE_PCT 200
/*
 * ... and only when the log is longer than this many blocks: rewriting a short log saves
 * no I/O worth the rewrite (ZFS uses 4 blocks too).
 */
#define SPACE_MAP_CONDENSE_MIN_BLOCKS 4

/* Longest run one record can carry; longer runs are split into several records. */
#define SPACE_MAP_RUN_MAX 0xffffffffu

/* The in-core twin of struct space_map_phys_disk. */
struct space_map_phys {
	struct blkptr tail; /* blocknr 0: empty log */
	u64 nr_blocks, nr_recs, alloc;
};

void space_map_phys_pack(struct space_map_phys_disk *d, const struct space_map_phys *p);
/* Returns 0 or -EILSEQ (non-zero reserved fields, counts without a tail or the reverse). */
int space_map_phys_unpack(struct space_map_phys *p, const struct space_map_phys_disk *d);

/* The log block type, with its structure validator, for cache_read and the fuzzer. */
extern const struct block_type space_map_block_type;

struct space_map;

/*
 * Returns a handle on the log described by @phys for the metaslab of @ms_size blocks
 * starting at device block @ms_start, its blocks read and written through @cache.  Does no
 * I/O (call space_map_load).  Never fails.
 */
struct space_map *space_map_open(struct cache *cache, u64 ms_start, u64 ms_size,
				 const struct space_map_phys *phys);
/* Drops the handle (and any unsealed blocks' references).  NULL is allowed. */
void space_map_close(struct space_map *sm);

/*
 * Replays the log into @free_rt, which must be empty: it gets the metaslab's free segments.
 * Checks every block (cache validation, the parent's birth txg and checksum, that it
 * belongs to this metaslab), that the chain has phys.nr_blocks blocks and phys.nr_recs
 * records, that no record allocates allocated space or frees free space, and that the
 * result has phys.alloc allocated blocks.  Returns 0, -EILSEQ / -ENOTBLK / -ESTALE (corrupt,
 * reason in @why), -EIO.  O(records * log segments); reads every block of the log.
 */
int space_map_load(struct space_map *sm, struct range_tree *free_rt, char *why, size_t whylen);

/*
 * Appends a record of @run blocks at @start (relative to the metaslab) in txg tx->txg.
 * The first append of a txg copies the tail block to a new address (freeing the old one
 * through @tx, deferred); a full tail gets a new block.  Returns 0, -ENOSPC (from
 * tx_alloc_meta), -EILSEQ/-EIO (reading the tail back).  O(1) amortised; may block.
 */
int space_map_append(struct space_map *sm, struct tx *tx, enum space_map_rec_type type, u64 start,
		     u64 run);

/* Appends one record of @type per segment of @rt, in offset order.  Same returns. O(n). */
int space_map_append_tree(struct space_map *sm, struct tx *tx, enum space_map_rec_type type,
			  const struct range_tree *rt);

/*
 * Records its condensed form would take, given @free_rt (every block the log should say is
 * free: allocatable and deferred alike).  O(1).
 */
u64 space_map_condensed_recs(const struct space_map *sm, const struct range_tree *free_rt);

/* True if the log is due for condensing (the two thresholds above). O(1). */
bool space_map_should_condense(const struct space_map *sm, const struct range_tree *free_rt);

/*
 * Rewrites the log as one ALLOC record per allocated run (the complement of @free_rt) in new
 * blocks, and frees the old chain through @tx.  Must come before any append of this txg.
 * Returns 0 or -ENOSPC.  O(segments).  Records appended afterwards in the same txg follow
 * the condensed ones, so @free_rt may be a snapshot taken before allocations the condense
 * itself causes.
 */
int space_map_condense(struct space_map *sm, struct tx *tx, const struct range_tree *free_rt);

/*
 * Seals the blocks this txg wrote (oldest first, so each checksum is final before the next
 * block records it) and fills @out with the phys to store in the parent.  Call once at the
 * end of a txg's appends; without appends it just copies the phys.  O(blocks born).
 */
void space_map_seal(struct space_map *sm, struct tx *tx, struct space_map_phys *out);

/* The current phys (tail checksum final only after space_map_seal). O(1). */
void space_map_get_phys(const struct space_map *sm, struct space_map_phys *out);

/*
 * Calls @fn(arg, blocknr, birth_txg) for each block of the log, oldest first (for the
 * checker: the log's own blocks are referenced metadata).  Stops at and returns the first
 * non-zero return.  Valid after load or after appends.  O(blocks).
 */
int space_map_walk_blocks(const struct space_map *sm,
			  int (*fn)(void *arg, u64 blocknr, u64 birth_txg), void *arg);

#endif
