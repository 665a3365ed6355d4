/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * range_tree.h - an in-memory set of disjoint segments [start, end) of u64 units, indexed
 * by offset and by size.
 *
 * The space maps load into range trees of free segments; the allocator finds runs in them
 * (best fit by size, honouring an alignment) and the checker compares them.  Adjacent
 * segments are always merged, so the segment count is the number of maximal runs and the
 * set has exactly one representation.
 *
 * Arguments are (start, size) pairs, as in the space map records.  A size of 0 or a range
 * that wraps past 2^64 is refused with -EINVAL by the functions that change the tree.
 *
 * Cost: n is the number of segments.  Both indexes are AVL trees, so lookups, adds and
 * removes are O(log n) (an add or remove changes at most two segments).  Memory is one
 * node of about 80 bytes per segment; freed nodes are kept for reuse until destroy.
 *
 * Locking: none inside.  A range tree belongs to one owner (a metaslab) whose lock covers
 * it; read-only calls may run concurrently with each other.  Nothing here blocks or does I/O.
 */
#ifndef DDSNAP_RANGE_TREE_H
#define DDSNAP_RANGE_TREE_H

#include "util/base.h"

struct range_tree;

/* Returns an empty tree.  Never fails (aborts on memory exhaustion). */
struct range_tree *range_tree_create(void);
/* Frees the tree and its nodes.  NULL is allowed. O(n). */
void range_tree_destroy(struct range_tree *rt);

/*
 * Adds [start, start+size), merging with the segments it touches.  Returns 0, -EEXIST if any
 * part of it is already in the tree (the tree is unchanged: a double free), -EINVAL for a
 * zero or wrapping size.  O(log n).
 */
int range_tree_add(struct range_tree *rt, u64 start, u64 size);

/*
 * Removes [start, start+size), splitting the segment that holds it.  Returns 0, -ENODATA if
 * the range is not entirely inside one segment (the tree is unchanged: a double allocation),
 * -EINVAL for a zero or wrapping size.  O(log n).
 */
int range_tree_remove(struct range_tree *rt, u64 start, u64 size);

/* True if every unit of [start, start+size) is in the tree.  O(log n). */
bool range_tree_contains(const struct range_tree *rt, u64 start, u64 size);

/* True if any unit of [start, start+size) is in the tree.  O(log n). */
bool range_tree_intersects(const struct range_tree *rt, u64 start, u64 size);

/*
 * Best fit: finds the smallest segment that holds a run of @size units starting at a
 * multiple of @align (a power of two; 1 for none), and returns the run's start in *start
 * without removing it.  Among segments of equal size the lowest offset wins.  Returns 0 or
 * -ENOSPC.  O(log n + k), where k is the number of segments whose size lies in
 * [size, size + align - 1), the only ones that can be too small once aligned; with align 1
 * it is O(log n).
 */
int range_tree_find(const struct range_tree *rt, u64 size, u64 align, u64 *start);

/*
 * The largest segment: its start and size in *start and *size.  Returns 0 or -ENOSPC when
 * the tree is empty.  O(log n).
 */
int range_tree_largest(const struct range_tree *rt, u64 *start, u64 *size);

/*
 * Calls @fn(arg, start, size) for each segment in offset order; stops early and returns
 * the first non-zero value @fn returns, else 0.  @fn must not change the tree.  O(n).
 */
int range_tree_walk(const struct range_tree *rt, int (*fn)(void *arg, u64 start, u64 size),
		    void *arg);

/*
 * Cursor iteration in offset order: the first segment that ends after @pos (so the one
 * holding @pos, if any), in *start and *size.  Returns 0 or -ENODATA past the last.
 * O(log n); a full pass with pos = start + size each time is O(n log n).
 */
int range_tree_next(const struct range_tree *rt, u64 pos, u64 *start, u64 *size);

/* Removes every segment (nodes are kept for reuse). O(n). */
void range_tree_clear(struct range_tree *rt);

/* Total units in the tree and number of segments.  O(1). */
u64 range_tree_space(const struct range_tree *rt);
u64 range_tree_count(const struct range_tree *rt);

/*
 * Checks every invariant (order, disjoint and non-adjacent segments, AVL balance and
 * heights, both indexes agreeing with the counters).  Returns 0 or -EILSEQ.  O(n); for
 * tests and the checker.
 */
int range_tree_verify(const struct range_tree *rt);

#endif
