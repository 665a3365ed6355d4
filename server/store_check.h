/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * store_check.h - the offline checker behind `ddsnap check`.
 *
 * It reads a store without opening it for writing and without trusting anything it has
 * not checked: both label copies of each device, every uberblock slot, then every block
 * reachable from the newest valid uberblock (treewalk.h: checksum, own address, txg against
 * the pointer, node structure), and accounts space: no block referenced twice, every block
 * inside the metadata region, and the referenced count equal to what the uberblock records
 * as allocated (a difference is a leak, or a block in use that the allocator thinks free).
 */
#ifndef DDSNAP_STORE_CHECK_H
#define DDSNAP_STORE_CHECK_H

#include <stdio.h>
#include "base.h"
#include "bdev.h"
#include "format.h"

struct store_check_tree {
	u64 nodes, leaves, entries;
	unsigned height;
};

struct store_check_report {
	u64 errors;   /* damage or inconsistency */
	u64 warnings; /* expected after a crash (a torn uberblock slot), or harmless */
	u64 txg;      /* of the newest valid uberblock */
	unsigned ub_valid, ub_slots;
	u64 meta_referenced;	/* metadata blocks reachable from the uberblock */
	u64 meta_alloc;		/* as the uberblock records it */
	u64 meta_region_blocks; /* size of the region metadata is allocated from */
	struct store_check_tree trees[UB_NR_ROOTS];
};

/*
 * Checks the store on @snap (and @meta, may be NULL), writing one line per finding and a
 * summary to @out (may be NULL).  Returns 0 when the check ran (findings are in @rep), or
 * -ENODATA (no store), -EINVAL (wrong devices), -EIO when it could not start.  O(metadata)
 * reads.  Blocks.  Read-only.
 */
int store_check(struct bdev *snap, struct bdev *meta, FILE *out, struct store_check_report *rep);

#endif
