// SPDX-License-Identifier: GPL-2.0-only
/*
 * range_tree.c - disjoint segments indexed by offset and by size.
 *
 * Each segment is one node that lives in two AVL trees at once: the offset tree, ordered by
 * start, and the size tree, ordered by (size, start).  The offset tree answers "which
 * segment holds or precedes x" (add, remove, contains, iteration); the size tree answers
 * "the smallest segment of at least n units" (best-fit allocation) and "the largest".
 *
 *      offset tree                 size tree            one node
 *        [40,48)                   (8)[40,48)        +--------------+
 *        /     \                   /        \        | start, end   |
 *   [0,4)     [60,100)        (4)[0,4)  (40)[60,100) | link[OFFSET] |
 *                                                     | link[SIZE]   |
 *                                                     +--------------+
 *
 * Invariants (checked by the unit test against a bitmap model):
 *  - segments are non-empty, pairwise disjoint and never adjacent (adds merge neighbours);
 *  - both trees hold the same nodes and are AVL-balanced (subtree heights differ by <= 1),
 *    so their depth is at most 1.44 log2(n + 2) and every search is O(log n);
 *  - space and count equal the sums over the segments.
 *
 * Because segments never overlap, changing a node's start or end in place keeps the offset
 * tree ordered (no other segment lies between it and its neighbours), but changes its size
 * key, so a node whose size changes is taken out of the size tree and put back.  The
 * recursive insert and delete rebalance on the way up; the recursion depth is the tree
 * height, under 100 even for 2^64 nodes.
 *
 * Locking: none; the owner serialises changes.  No I/O, so there is no crash argument: the
 * tree is rebuilt from the space map on every open.
 */
#include "pdata/range_tree.h"

enum { RT_OFFSET = 0, RT_SIZE = 1, RT_NR_INDEX = 2 };

struct avl_link {
	struct avl_link *left, *right;
	int height;
};

struct rt_seg {
	u64 start, end;
	struct avl_link link[RT_NR_INDEX];
};

struct range_tree {
	struct avl_link *root[RT_NR_INDEX];
	u64 space, count;
	struct rt_seg *spare; /* freed nodes, chained through link[0].left */
};

/*----------------------------------------------------------------*/
/* AVL trees over either index */

static struct rt_seg *seg_of(const struct avl_link *l, int idx)
{
	return (struct rt_seg *)((const char *)(l - idx) - offsetof(struct rt_seg, link));
}

static u64 seg_size(const struct rt_seg *s)
{
	return s->end - s->start;
}

/* Orders two nodes of index @idx: by start, or by (size, start). */
static int seg_cmp(const struct rt_seg *a, const struct rt_seg *b, int idx)
{
	if (idx == RT_SIZE && seg_size(a) != seg_size(b))
		return seg_size(a) < seg_size(b) ? -1 : 1;
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	return 0;
}

static int height(const struct avl_link *l)
{
	return l ? l->height : 0;
}

static void fix_height(struct avl_link *l)
{
	l->height = 1 + MAX(height(l->left), height(l->right));
}

static struct avl_link *rotate_right(struct avl_link *l)
{
	struct avl_link *p = l->left;

	l->left = p->right;
	p->right = l;
	fix_height(l);
	fix_height(p);
	return p;
}

static struct avl_link *rotate_left(struct avl_link *l)
{
	struct avl_link *p = l->right;

	l->right = p->left;
	p->left = l;
	fix_height(l);
	fix_height(p);
	return p;
}

/* Restores the AVL property at @l, whose subtrees are balanced and differ by at most 2. */
static struct avl_link *rebalance(struct avl_link *l)
{
	int bf;

	fix_height(l);
	bf = height(l->left) - height(l->right);
	if (bf > 1) {
		if (height(l->left->left) < height(l->left->right))
			l->left = rotate_left(l->left);
		return rotate_right(l);
	}
	if (bf < -1) {
		if (height(l->right->right) < height(l->right->left))
			l->right = rotate_right(l->right);
		return rotate_left(l);
	}
	return l;
}

static struct avl_link *avl_insert(struct avl_link *t, struct avl_link *n, int idx)
{
	if (!t) {
		n->left = n->right = NULL;
		n->height = 1;
		return n;
	}
	if (seg_cmp(seg_of(n, idx), seg_of(t, idx), idx) < 0)
		t->left = avl_insert(t->left, n, idx);
	else
		t->right = avl_insert(t->right, n, idx);
	return rebalance(t);
}

static struct avl_link *avl_remove_min(struct avl_link *t, struct avl_link **min)
{
	if (!t->left) {
		*min = t;
		return t->right;
	}
	t->left = avl_remove_min(t->left, min);
	return rebalance(t);
}

/* Removes node @n, which must be in the tree, keyed by its current key. */
static struct avl_link *avl_remove(struct avl_link *t, struct avl_link *n, int idx)
{
	struct avl_link *min;
	int c;

	VERIFY(t != NULL);
	c = seg_cmp(seg_of(n, idx), seg_of(t, idx), idx);
	if (c < 0) {
		t->left = avl_remove(t->left, n, idx);
	} else if (c > 0) {
		t->right = avl_remove(t->right, n, idx);
	} else {
		if (!t->left)
			return t->right;
		if (!t->right)
			return t->left;
		t->right = avl_remove_min(t->right, &min);
		min->left = t->left;
		min->right = t->right;
		return rebalance(min);
	}
	return rebalance(t);
}

/*----------------------------------------------------------------*/
/* searches */

/* The segment with the largest start <= @x, or NULL. */
static struct rt_seg *seg_floor(const struct range_tree *rt, u64 x)
{
	const struct avl_link *l = rt->root[RT_OFFSET];
	struct rt_seg *best = NULL;

	while (l) {
		struct rt_seg *s = seg_of(l, RT_OFFSET);

		if (s->start <= x) {
			best = s;
			l = l->right;
		} else {
			l = l->left;
		}
	}
	return best;
}

/* Both neighbours of @x in one descent: largest start <= @x and smallest start > @x. */
static void seg_around(const struct range_tree *rt, u64 x, struct rt_seg **before,
		       struct rt_seg **after)
{
	const struct avl_link *l = rt->root[RT_OFFSET];

	*before = *after = NULL;
	while (l) {
		struct rt_seg *s = seg_of(l, RT_OFFSET);

		if (s->start <= x) {
			*before = s;
			l = l->right;
		} else {
			*after = s;
			l = l->left;
		}
	}
}

/* The segment with the smallest start > @x, or NULL. */
static struct rt_seg *seg_above(const struct range_tree *rt, u64 x)
{
	const struct avl_link *l = rt->root[RT_OFFSET];
	struct rt_seg *best = NULL;

	while (l) {
		struct rt_seg *s = seg_of(l, RT_OFFSET);

		if (s->start > x) {
			best = s;
			l = l->left;
		} else {
			l = l->right;
		}
	}
	return best;
}

/* The first segment in size order whose key (size, start) is > (@size, @start), or with
 * @inclusive, >=. */
static struct rt_seg *seg_size_after(const struct range_tree *rt, u64 size, u64 start,
				     bool inclusive)
{
	const struct avl_link *l = rt->root[RT_SIZE];
	struct rt_seg *best = NULL;

	while (l) {
		struct rt_seg *s = seg_of(l, RT_SIZE);
		u64 ss = seg_size(s);
		bool after = ss > size ||
			     (ss == size && (s->start > start || (inclusive && s->start == start)));

		if (after) {
			best = s;
			l = l->left;
		} else {
			l = l->right;
		}
	}
	return best;
}

/*----------------------------------------------------------------*/
/* node management */

static struct rt_seg *seg_new(struct range_tree *rt, u64 start, u64 end)
{
	struct rt_seg *s = rt->spare;

	if (s)
		rt->spare = (struct rt_seg *)s->link[0].left;
	else
		s = xmalloc(sizeof(*s));
	s->start = start;
	s->end = end;
	rt->root[RT_OFFSET] = avl_insert(rt->root[RT_OFFSET], &s->link[RT_OFFSET], RT_OFFSET);
	rt->root[RT_SIZE] = avl_insert(rt->root[RT_SIZE], &s->link[RT_SIZE], RT_SIZE);
	rt->count++;
	return s;
}

static void seg_delete(struct range_tree *rt, struct rt_seg *s)
{
	rt->root[RT_OFFSET] = avl_remove(rt->root[RT_OFFSET], &s->link[RT_OFFSET], RT_OFFSET);
	rt->root[RT_SIZE] = avl_remove(rt->root[RT_SIZE], &s->link[RT_SIZE], RT_SIZE);
	rt->count--;
	s->link[0].left = (struct avl_link *)rt->spare;
	rt->spare = s;
}

/* Changes a segment's bounds; the caller guarantees it stays disjoint from its neighbours. */
static void seg_resize(struct range_tree *rt, struct rt_seg *s, u64 start, u64 end)
{
	rt->root[RT_SIZE] = avl_remove(rt->root[RT_SIZE], &s->link[RT_SIZE], RT_SIZE);
	s->start = start;
	s->end = end;
	rt->root[RT_SIZE] = avl_insert(rt->root[RT_SIZE], &s->link[RT_SIZE], RT_SIZE);
}

/*----------------------------------------------------------------*/
/* public */

struct range_tree *range_tree_create(void)
{
	return xzalloc(sizeof(struct range_tree));
}

void range_tree_destroy(struct range_tree *rt)
{
	if (!rt)
		return;
	range_tree_clear(rt);
	while (rt->spare) {
		struct rt_seg *s = rt->spare;

		rt->spare = (struct rt_seg *)s->link[0].left;
		free(s);
	}
	free(rt);
}

static bool bad_range(u64 start, u64 size)
{
	return size == 0 || start + size < start;
}

int range_tree_add(struct range_tree *rt, u64 start, u64 size)
{
	u64 end = start + size;
	struct rt_seg *before, *after;

	if (bad_range(start, size))
		return -EINVAL;
	seg_around(rt, start, &before, &after);
	if ((before && before->end > start) || (after && after->start < end))
		return -EEXIST;

	if (before && before->end == start && after && after->start == end) {
		u64 new_end = after->end;

		seg_delete(rt, after);
		seg_resize(rt, before, before->start, new_end);
	} else if (before && before->end == start) {
		seg_resize(rt, before, before->start, end);
	} else if (after && after->start == end) {
		seg_resize(rt, after, start, after->end);
	} else {
		seg_new(rt, start, end);
	}
	rt->space += size;
	return 0;
}

int range_tree_remove(struct range_tree *rt, u64 start, u64 size)
{
	u64 end = start + size;
	struct rt_seg *s;

	if (bad_range(start, size))
		return -EINVAL;
	s = seg_floor(rt, start);
	if (!s || s->end < end)
		return -ENODATA;

	if (s->start == start && s->end == end) {
		seg_delete(rt, s);
	} else if (s->start == start) {
		seg_resize(rt, s, end, s->end);
	} else if (s->end == end) {
		seg_resize(rt, s, s->start, start);
	} else {
		u64 old_end = s->end;

		seg_resize(rt, s, s->start, start);
		seg_new(rt, end, old_end);
	}
	rt->space -= size;
	return 0;
}

bool range_tree_contains(const struct range_tree *rt, u64 start, u64 size)
{
	const struct rt_seg *s;

	if (bad_range(start, size))
		return false;
	s = seg_floor(rt, start);
	return s && s->end >= start + size;
}

bool range_tree_intersects(const struct range_tree *rt, u64 start, u64 size)
{
	const struct rt_seg *s;

	if (bad_range(start, size))
		return false;
	/* The last segment starting before the range's end is the only candidate. */
	s = seg_floor(rt, start + size - 1);
	return s && s->end > start;
}

int range_tree_find(const struct range_tree *rt, u64 size, u64 align, u64 *start)
{
	const struct rt_seg *s;

	if (size == 0 || !IS_POWER_OF_2(align))
		return -EINVAL;
	for (s = seg_size_after(rt, size, 0, true); s;
	     s = seg_size_after(rt, seg_size(s), s->start, false)) {
		u64 a = (s->start + align - 1) & ~(align - 1);

		if (a >= s->start && a < s->end && s->end - a >= size) {
			*start = a;
			return 0;
		}
	}
	return -ENOSPC;
}

int range_tree_largest(const struct range_tree *rt, u64 *start, u64 *size)
{
	const struct avl_link *l = rt->root[RT_SIZE];

	if (!l)
		return -ENOSPC;
	while (l->right)
		l = l->right;
	*start = seg_of(l, RT_SIZE)->start;
	*size = seg_size(seg_of(l, RT_SIZE));
	return 0;
}

static int walk_subtree(const struct avl_link *l, int (*fn)(void *arg, u64 start, u64 size),
			void *arg)
{
	int r;

	if (!l)
		return 0;
	r = walk_subtree(l->left, fn, arg);
	if (r)
		return r;
	r = fn(arg, seg_of(l, RT_OFFSET)->start, seg_size(seg_of(l, RT_OFFSET)));
	if (r)
		return r;
	return walk_subtree(l->right, fn, arg);
}

int range_tree_walk(const struct range_tree *rt, int (*fn)(void *arg, u64 start, u64 size),
		    void *arg)
{
	return walk_subtree(rt->root[RT_OFFSET], fn, arg);
}

int range_tree_next(const struct range_tree *rt, u64 pos, u64 *start, u64 *size)
{
	const struct rt_seg *s = seg_floor(rt, pos);

	if (!s || s->end <= pos)
		s = seg_above(rt, pos);
	if (!s)
		return -ENODATA;
	*start = s->start;
	*size = seg_size(s);
	return 0;
}

static void spare_subtree(struct range_tree *rt, struct avl_link *l)
{
	struct rt_seg *s;

	if (!l)
		return;
	spare_subtree(rt, l->left);
	spare_subtree(rt, l->right);
	s = seg_of(l, RT_OFFSET);
	s->link[0].left = (struct avl_link *)rt->spare;
	rt->spare = s;
}

void range_tree_clear(struct range_tree *rt)
{
	spare_subtree(rt, rt->root[RT_OFFSET]);
	rt->root[RT_OFFSET] = rt->root[RT_SIZE] = NULL;
	rt->space = rt->count = 0;
}

u64 range_tree_space(const struct range_tree *rt)
{
	return rt->space;
}

u64 range_tree_count(const struct range_tree *rt)
{
	return rt->count;
}

/*----------------------------------------------------------------*/
/* self-check */

struct verify_state {
	u64 count, space, last_end;
	bool first;
};

/* Returns the subtree's height, or -1 if it is unbalanced, misordered or mis-heighted. */
static int verify_subtree(const struct avl_link *l, int idx, const struct rt_seg *lo,
			  const struct rt_seg *hi, struct verify_state *vs)
{
	const struct rt_seg *s;
	int hl, hr;

	if (!l)
		return 0;
	s = seg_of(l, idx);
	if ((lo && seg_cmp(s, lo, idx) <= 0) || (hi && seg_cmp(s, hi, idx) >= 0))
		return -1;
	hl = verify_subtree(l->left, idx, lo, s, vs);
	if (hl < 0)
		return -1;
	if (s->end <= s->start)
		return -1;
	if (idx == RT_OFFSET) {
		/* In order: disjoint and never adjacent. */
		if (!vs->first && s->start <= vs->last_end)
			return -1;
		vs->first = false;
		vs->last_end = s->end;
	}
	vs->count++;
	vs->space += seg_size(s);
	hr = verify_subtree(l->right, idx, s, hi, vs);
	if (hr < 0 || hl - hr > 1 || hr - hl > 1 || l->height != 1 + MAX(hl, hr))
		return -1;
	return l->height;
}

int range_tree_verify(const struct range_tree *rt)
{
	for (int idx = 0; idx < RT_NR_INDEX; idx++) {
		struct verify_state vs = {.first = true};

		if (verify_subtree(rt->root[idx], idx, NULL, NULL, &vs) < 0)
			return -EILSEQ;
		if (vs.count != rt->count || vs.space != rt->space)
			return -EILSEQ;
	}
	return 0;
}
