/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * store_check.h - the offline checker behind `ddsnap check`.
 *
 * It reads a store without opening it for writing and without trusting anything it has
 * not checked: both label copies of each device, every uberblock slot, then every block
 * reachable from the newest valid uberblock: the engine's trees (treewalk.h: checksum, own
 * address, txg against the pointer, node structure) including each snapshot's overlay tree,
 * and the allocator's own blocks (metaslab table, space map chains, loaded and
 * cross-checked by metaslab_open).  Then it accounts space both ways, for metadata blocks
 * and for data chunks (the addresses in exceptions and overlay entries):
 *  - no block or chunk is referenced twice;
 *  - everything referenced is allocated in its class (no block both free and used);
 *  - everything allocated is referenced (no leak).
 */
#ifndef DDSNAP_STORE_CHECK_H
#define DDSNAP_STORE_CHECK_H

#include <stdio.h>
#include "util/base.h"
#include "blk/bdev.h"
#include "blk/format.h"
#include "store/intent_log.h"
#include "store/label.h"
#include "store/uberblock.h"

struct store_check_tree {
	u64 nodes, leaves, entries;
	unsigned height;
};

struct store_check_report {
	u64 errors;   /* damage or inconsistency */
	u64 warnings; /* expected after a crash (a torn uberblock slot), or harmless */
	u64 txg;      /* of the newest valid uberblock */
	unsigned ub_valid, ub_slots;
	u64 meta_referenced;  /* metadata blocks reachable from the uberblock */
	u64 meta_allocated;   /* METADATA blocks allocated in the space maps */
	u64 data_referenced;  /* data blocks (chunks * blocks per chunk) referenced */
	u64 data_allocated;   /* DATA blocks allocated in the space maps */
	u64 allocator_blocks; /* of meta_referenced: metaslab table and space map blocks */
	u64 overlays;	      /* overlay trees walked */
	u64 log_pending;      /* intent log records the next open replays */
	struct store_check_tree trees[UB_NR_ROOTS];
};

/*
 * Checks the store on @snap (and @meta, may be NULL), writing one line per finding and a
 * summary to @out (may be NULL).  Returns 0 when the check ran (findings are in @rep), or
 * -ENODATA (no store), -EINVAL (wrong devices), -EIO when it could not start.  O(metadata)
 * reads.  Blocks.  Read-only.
 */
int store_check(struct bdev *snap, struct bdev *meta, FILE *out, struct store_check_report *rep);

/*
 * Reads the intent log of the store described by @l and @ub on @meta as replay would (from
 * the uberblock's log position, block by block while the chain holds: this log's guid,
 * consecutive block and record sequence numbers) and calls @fn (may be NULL) for every
 * record of a txg after ub->txg: the records the next open replays (with damage: the ones
 * before it).  *@pending (may be NULL) gets their count, *@damage (may be NULL) where the log
 * ended and whether that is damage (intent_log_scan).  Returns 0, @fn's non-zero return, or
 * -EIO.  O(log blocks).  Read-only.
 */
int store_log_walk(struct bdev *meta, const struct label *l, const struct uberblock *ub,
		   int (*fn)(void *arg, const struct intent_log_record *rec), void *arg,
		   u64 *pending, struct intent_log_damage *damage);

#endif
