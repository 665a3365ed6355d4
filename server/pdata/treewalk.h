/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * treewalk.h - a walk of any COW B+tree from its root by the on-disk node format alone
 * (format.h, "B+tree nodes"), without knowing the tree's type.
 *
 * The store uses it where it must find every block reachable from a uberblock without the
 * engine that owns the trees: `ddsnap check` and `ddsnap dump`, and the allocator's recovery
 * walk.  It reads straight from the device (bypassing the cache, so a walk of a large tree
 * does not evict the working set), checks every node (checksum, own address, the header's
 * sizes and level, key order) and every pointer (the child's txg and checksum, its level one
 * below the parent's), and reports each block once.  Nodes are validated by the B+tree's
 * own block types (btree.h), so the walk accepts exactly the nodes the server can read.  The B+tree's own btree_verify checks
 * more (aggregates, separator ranges, fill); this is the type-blind part.
 */
#ifndef DDSNAP_TREEWALK_H
#define DDSNAP_TREEWALK_H

#include "util/base.h"
#include "blk/bdev.h"
#include "blk/block.h"
#include "pdata/btree.h" /* BTREE_MAX_DEPTH: the deepest tree accepted */

struct treewalk_node {
	u64 blocknr, txg;
	u32 csum;
	unsigned level; /* 0 = leaf */
	unsigned nr_entries, key_size, value_size;
	const void *block; /* the node, valid during the callback */
};

struct treewalk {
	/* Called for every node, parents before children.  Non-zero stops the walk. */
	int (*node)(void *arg, const struct treewalk_node *n);
	/*
	 * Optional: called for a damaged node (@err -EILSEQ, -ENOTBLK or -ESTALE, the reason
	 * in @why); the walk skips that subtree and goes on with its siblings.  Non-zero
	 * stops the walk.  NULL: the first damage stops the walk and is returned.
	 */
	int (*damage)(void *arg, u64 blocknr, int err, const char *why);
	void *arg;
	/* out */
	u64 nodes, leaves, entries;
	unsigned height;
	u64 damaged; /* subtrees skipped (with @damage) */
};

/*
 * Walks the tree rooted at @root on @b.  Returns 0, -EILSEQ / -ENOTBLK / -ESTALE (a damaged
 * node or pointer; the reason in @why), -EIO, or the callback's return.  O(nodes) reads,
 * depth-first, memory O(depth).  Blocks.  Thread-safe (no shared state).
 */
int treewalk(struct bdev *b, const struct blkptr *root, struct treewalk *w, char *why,
	     size_t whylen);

#endif
