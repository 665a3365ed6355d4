/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * metaslab.h - the block allocator: device regions split into metaslabs, each with a space
 * map (space_map.h) on disk and range trees in memory, serving two allocation classes.
 *
 *   METADATA  single 4 KiB blocks for struct tx (B+tree nodes, space map and table
 *             blocks); block numbers on the metadata device (the cache's device).
 *   DATA      contiguous runs of chunks, chunk-aligned, on the snapstore, for batches of
 *             copy-outs; block numbers on the snapstore in 4 KiB blocks.
 *
 * With a separate metadata device, the data region's metaslabs serve DATA and the metadata
 * region's serve METADATA.  With one device (meta_blocks == 0), both classes share the data
 * region: a metaslab is unclaimed until its first allocation claims it for that class, and
 * the claim is persistent (the table records it) until the metaslab is entirely free again.
 * DATA never claims the space METADATA needs to sync (see metaslab.c, "Reserves").
 *
 * Txg contract (DESIGN.md 4).  The allocator tracks the open txg itself: it starts at the
 * @txg given to create/open and advances when metaslab_sync() returns.
 *  - Every allocation and free made before metaslab_sync(T) is entered belongs to txg T:
 *    the txg layer quiesces txg T (no allocation or free for T+1 may happen before
 *    metaslab_sync(T) is entered), then calls, in this order, the other structures' sync,
 *    metaslab_sync(T), cache_sync(T), flush, the uberblock write with metaslab_root_pack(),
 *    flush, and metaslab_sync_done(T).  Allocations for T+1 may run from the moment
 *    metaslab_sync(T) returns.
 *  - A free is deferred: nothing freed in txg T is allocated again before
 *    metaslab_sync_done(T), i.e. before T is durable, even if it was allocated in T (the
 *    intent log may name it; metaslab.c).  The exceptions (tx.h): a metadata block allocated
 *    in the open txg and freed in it before metaslab_sync, and a data run likewise freed
 *    with @birth_txg == the open txg, which says nothing durable names it, are reusable at
 *    once.
 *
 * Locking: one mutex inside; every function may be called from any thread.  metaslab_sync
 * holds it throughout (allocations from other threads wait, then belong to the next txg).
 * Functions that do I/O (open, sync) block; allocation and free never do I/O.
 */
#ifndef DDSNAP_METASLAB_H
#define DDSNAP_METASLAB_H

#include "util/base.h"
#include "blk/cache.h"
#include "blk/format.h"
#include "pdata/tx.h"

/*
 * The geometry aims for about this many metaslabs per region (ZFS aims for ~200 per vdev):
 * enough that allocation spreads and one metaslab's space map stays short, few enough that
 * loading all of them on open and walking them for a class is cheap.
 */
#define METASLAB_TARGET_COUNT 200
/* The smallest metaslab: 2^10 blocks (4 MiB), so a small store still gets useful runs. */
#define METASLAB_MIN_SHIFT 10

/* The table block type (index and leaves), with its structure validator, for the fuzzer. */
extern const struct block_type metaslab_table_type;

struct metaslab_geometry {
	u64 data_start, data_blocks; /* DATA region on the snapstore (4 KiB blocks) */
	u64 meta_start, meta_blocks; /* METADATA region on the metadata device; 0 = one device */
	u32 ms_shift;		     /* metaslab size: 2^ms_shift blocks, >= chunk_shift */
	u32 chunk_shift;	     /* chunk: 2^chunk_shift blocks, the DATA unit and alignment */
};

/*
 * Fills @g for the given regions, choosing ms_shift for about METASLAB_TARGET_COUNT
 * metaslabs per region.  The data region is trimmed to whole chunks.  Returns 0 or -EINVAL
 * (empty data region, a region starting at block 0, which is the null block pointer, or
 * more than METASLAB_MAX metaslabs).  O(1).
 */
int metaslab_geometry_init(struct metaslab_geometry *g, u64 data_start, u64 data_blocks,
			   u64 meta_start, u64 meta_blocks, u32 chunk_shift);

struct metaslab_group;

/*
 * A new, empty allocator for a store being created; @txg is the first open txg.  The first
 * metaslab_sync writes its table.  Returns 0 or -EINVAL (bad geometry).  O(metaslabs).
 */
int metaslab_create(struct cache *cache, const struct metaslab_geometry *g, u64 txg,
		    struct metaslab_group **out);

/*
 * Opens the allocator from the uberblock's @root; @synced_txg is that uberblock's txg (the
 * open txg becomes synced_txg + 1).  Reads the table and loads every space map.  Returns 0,
 * -EILSEQ / -ENOTBLK / -ESTALE (corrupt, reason in @why), -EIO.  O(table + all space map
 * records).  Blocks.
 */
int metaslab_open(struct cache *cache, const struct metaslab_root_disk *root, u64 synced_txg,
		  struct metaslab_group **out, char *why, size_t whylen);

/* Frees the in-memory allocator; unsynced allocations and frees are forgotten. */
void metaslab_close(struct metaslab_group *mg);

/* The geometry in use. */
void metaslab_get_geometry(const struct metaslab_group *mg, struct metaslab_geometry *g);

/*
 * Allocates one metadata block in the open txg.  Returns 0 and *blocknr, or -ENOSPC (the
 * METADATA class is down to the reserve that txg sync needs).  O(log n) for n free segments
 * in the chosen metaslab, O(metaslabs) when it has to switch metaslab.  Never blocks on I/O.
 */
int metaslab_alloc_meta(struct metaslab_group *mg, u64 *blocknr);

/*
 * Allocates a contiguous, chunk-aligned run of 1..@max_chunks chunks: all of them if any
 * metaslab has such a run (best fit), else the longest run available.  Returns 0 with the
 * first block in *start and the length in *nr_chunks, or -ENOSPC when no chunk is free.
 * Cost as metaslab_alloc_meta.  Never blocks on I/O.
 */
int metaslab_alloc_data(struct metaslab_group *mg, u64 max_chunks, u64 *start, u64 *nr_chunks);

/*
 * Allocates exactly @nr_chunks chunks at @start in the open txg (intent log replay
 * re-allocates the chunks of copy-outs newer than the last synced txg).  Returns 0, -EEXIST
 * if any of it is not free, -EINVAL if it is not a chunk-aligned run inside one DATA (or
 * unclaimed) metaslab.  O(log n).
 */
int metaslab_claim_data(struct metaslab_group *mg, u64 start, u64 nr_chunks);

/*
 * Frees metadata block @blocknr, born in @birth_txg: reusable at once if it was allocated
 * in the open txg and not yet synced, else after the open txg is durable.  Returns 0
 * (deferred), 1 (reusable at once: the caller drops it with cache_forget, since its dirty
 * buffer must never be written), -EILSEQ if the block is not allocated (a double free:
 * metadata is corrupt) or belongs to the other class, -EINVAL if it lies outside every
 * region.  O(log n).
 */
int metaslab_free_meta(struct metaslab_group *mg, u64 blocknr, u64 birth_txg);

/*
 * Frees @nr_chunks chunks at @start, as metaslab_free_meta for the DATA class, except that
 * chunks allocated in the open txg are reusable at once only if @birth_txg is the open txg
 * (the caller's word that nothing durable names them).  A caller that cannot vouch (the
 * engine: an intent log record may name the chunk) passes 0, and the chunks wait for the
 * open txg to be durable even if allocated in it.
 */
int metaslab_free_data(struct metaslab_group *mg, u64 start, u64 nr_chunks, u64 birth_txg);

/*
 * The txg sync step for open txg @txg (see the contract above): appends this txg's records
 * to every dirty metaslab's space map, condenses the maps that are due, rewrites the table
 * blocks that changed, and seals it all, so that cache_sync(@txg) writes it and
 * metaslab_root_pack() describes it.  Space map blocks are allocated from METADATA in this
 * same txg; the passes repeat until no metaslab has unwritten records (metaslab.c argues
 * that this converges in a few passes).  Returns 0, -ENOSPC (the reserve ran out), -EIO or
 * -EILSEQ (reading a space map tail back, or a double free latched by metaslab_tx_init's
 * tx, before anything is written); after an error the txg must not be committed
 * and the allocator must be closed.  O(records + dirty metaslabs).  Blocks on cache misses.
 */
int metaslab_sync(struct metaslab_group *mg, u64 txg);

/*
 * Txg @txg is durable: its frees become allocatable, and (shared device) metaslabs that are
 * now entirely free become unclaimed.  O(metaslabs + deferred segments).
 */
void metaslab_sync_done(struct metaslab_group *mg, u64 txg);

/* What the uberblock must hold after metaslab_sync(T) for txg T. O(1). */
void metaslab_root_pack(const struct metaslab_group *mg, struct metaslab_root_disk *out);

struct metaslab_class_stats {
	u64 total;     /* blocks in this class's metaslabs */
	u64 free;      /* allocatable now */
	u64 deferred;  /* freed, allocatable once the freeing txg is durable */
	u64 allocated; /* total - free - deferred */
	u64 metaslabs;
};
/*
 * Per-class totals for status: @cls is METASLAB_CLASS_DATA, _META, or _NONE (unclaimed
 * metaslabs of a shared device, all free).  O(1).
 */
void metaslab_stats(const struct metaslab_group *mg, enum metaslab_class_disk cls,
		    struct metaslab_class_stats *out);

/*
 * For the checker: calls @fn(arg, cls, start, nblocks) for each allocated run (allocated
 * in a durable txg or in the open one), metaslab by metaslab in address order, with
 * device block numbers.  Stops at and returns the first non-zero return.  @fn runs under
 * the allocator's lock and must not call back into it.  O(segments).
 */
int metaslab_walk_allocated(struct metaslab_group *mg,
			    int (*fn)(void *arg, enum metaslab_class_disk cls, u64 start,
				      u64 nblocks),
			    void *arg);

/*
 * For the checker: calls @fn(arg, blocknr, birth_txg) for every metadata block the
 * allocator itself references (table blocks and space map chains), as of the last sync.
 * Stops at and returns the first non-zero return; @fn runs under the allocator's lock.
 * O(those blocks).
 */
int metaslab_walk_own_blocks(struct metaslab_group *mg,
			     int (*fn)(void *arg, u64 blocknr, u64 birth_txg), void *arg);

/*
 * For the checker: true if every block of [start, start + nblocks) of class @cls is
 * allocated (so a referenced block that is free, or partly free, shows up).  O(log n).
 */
bool metaslab_is_allocated(struct metaslab_group *mg, enum metaslab_class_disk cls, u64 start,
			   u64 nblocks);

/*
 * A ready-made struct tx for txg @txg over this allocator: alloc_meta is metaslab_alloc_meta,
 * free_meta is metaslab_free_meta plus cache_forget of a block that was reusable at once.
 * free_meta cannot return an error, so a failed free (a double free: corrupt metadata) is
 * logged and latched: every later metaslab_sync returns that error and commits nothing, and
 * the store must go to its failed mode.  The store may use it or wrap its own.
 */
void metaslab_tx_init(struct tx *tx, struct metaslab_group *mg, struct cache *cache, u64 txg);

#endif
