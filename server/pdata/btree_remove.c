// SPDX-License-Identifier: GPL-2.0-only
/*
 * btree_remove.c - deletion: removing an entry and keeping every non-root node at least
 * half full.
 *
 * After the entry leaves its leaf, each node on the path that fell below half full (cap / 2
 * entries) is rebalanced with one sibling under the same parent, the left one when there is
 * one:
 *
 *   merge   (both fit in one node)        borrow   (they do not)
 *   parent [.. a  b ..]                   parent [.. a  b ..]
 *           /     \                                /     \
 *     [a0 a1]   [b0]      ->  [a0 a1 b0]    [a0 .. a5]  [b0]   ->  [a0 a1 a2] [a3 a4 a5 b0]
 *   the node on the path absorbs its      entries move until the two hold the same
 *   sibling, whose block is freed; the    number; the parent's key for the right node
 *   parent loses one entry                becomes that node's first key
 *
 * Merges keep the node on the path and free the sibling, so a merge never needs a new
 * block; only a borrow from a sibling born before the open txg does (its shadow).  A root
 * left with a single child is replaced by that child; a root leaf left empty empties the
 * tree.  As for insertion, the whole plan is made, and every block read and reserved,
 * before anything changes (btree.c, "Modification is two-phase").
 *
 * A key range (btree_delete_range) goes a leaf at a time: each step takes from the leaf
 * holding the range's first remaining entry all the range's entries it can lose and stay
 * half full (a root leaf keeps one), shadowing the path once and changing no separator (a
 * parent's key stays a lower bound of what remains below it); a leaf that can lose none
 * loses one through btree_delete, whose merge or borrow refills it.  So m entries cost
 * about 2m / capacity steps, and every step leaves a valid tree.  A sorted list of keys
 * (btree_delete_sorted) goes the same way: each step removes the listed keys its leaf holds
 * and can spare.
 *
 * Locking and crash argument: as btree.c.
 */
#include "pdata/btree_internal.h"

enum rebalance { REB_NONE, REB_MERGE, REB_BORROW };

/* What happens to the node at one spine level after its child changed. */
struct del_level {
	enum rebalance act;
	struct cblock *sib; /* the sibling, held from planning on */
	struct blkptr sibptr;
	unsigned sib_idx;	    /* its index in the parent */
	u8 sep[BTREE_MAX_KEY_SIZE]; /* after a borrow: the right node's first key */
};

struct del_plan {
	struct del_level lv[BTREE_MAX_DEPTH];
	unsigned need;	/* blocks to reserve */
	bool root_goes; /* the root collapses into its child, or the tree empties */
};

static void plan_put(struct btree *t, struct del_plan *dp, unsigned depth)
{
	for (unsigned l = 0; l < depth; l++)
		if (dp->lv[l].sib)
			cache_put(t->cache, dp->lv[l].sib);
}

/*
 * Decides each level's rebalancing bottom-up from the entry counts, reading the siblings it
 * needs, and counts the blocks to reserve.  Returns 0 or a read error (siblings released).
 */
static int delete_plan(struct btree *t, struct tx *tx, struct spine *s, struct del_plan *dp)
{
	unsigned new_nr = node_nr(s->lv[s->depth - 1].b->data) - 1;
	int r;

	memset(dp, 0, sizeof(*dp));
	for (unsigned l = s->depth - 1; l >= 1; l--) {
		unsigned level = t->height - 1 - l;
		const struct node_geom *g = geom_of(t, level);
		const void *parent = s->lv[l - 1].b->data;
		unsigned pidx = s->lv[l - 1].idx, pnr = node_nr(parent), snr;
		struct del_level *d = &dp->lv[l];

		if (new_nr >= g->min) {
			new_nr = pnr;
			continue;
		}
		d->sib_idx = pidx ? pidx - 1 : pidx + 1;
		node_child(parent, &t->node, d->sib_idx, &d->sibptr);
		if (d->sibptr.birth_txg > tx->txg) {
			r = -EILSEQ;
			goto out_put;
		}
		r = btree_read_node(t, &d->sibptr, level, &d->sib);
		if (r)
			goto out_put;
		snr = node_nr(d->sib->data);
		if (new_nr + snr <= g->cap) {
			d->act = REB_MERGE;
			new_nr = pnr - 1;
		} else {
			d->act = REB_BORROW;
			dp->need += d->sibptr.birth_txg != tx->txg;
			new_nr = pnr;
		}
	}
	dp->root_goes = t->height > 1 ? new_nr == 1 : new_nr == 0;
	for (unsigned l = dp->root_goes ? 1 : 0; l < s->depth; l++)
		dp->need += s->lv[l].ptr.birth_txg != tx->txg;
	return 0;

out_put:
	plan_put(t, dp, s->depth);
	return r;
}

/* The node of @lv (writable) absorbs its sibling, whose block is freed. */
static void merge(struct btree *t, struct tx *tx, struct spine_level *lv, unsigned level,
		  struct del_level *d, unsigned idx)
{
	const struct node_geom *g = geom_of(t, level);
	void *n = lv->b->data;
	unsigned nr = node_nr(n), snr = node_nr(d->sib->data);

	if (d->sib_idx < idx) {
		node_shift(n, g, 0, (int)snr);
		node_copy(n, 0, d->sib->data, 0, snr, g);
	} else {
		node_copy(n, nr, d->sib->data, 0, snr, g);
	}
	node_set_nr(n, nr + snr);
	node_free(t, tx, d->sib, &d->sibptr);
	d->sib = NULL;
}

/* Moves entries between the node of @lv and its sibling until both hold the same number. */
static void borrow(struct btree *t, struct tx *tx, struct reserve *res, struct spine_level *lv,
		   unsigned level, struct del_level *d, unsigned idx)
{
	const struct node_geom *g = geom_of(t, level);
	struct spine_level sl = {d->sib, d->sibptr, 0};
	void *left, *right;
	unsigned ln, rn, want;

	make_writable(t, tx, &sl, res);
	d->sib = sl.b;
	left = d->sib_idx < idx ? sl.b->data : lv->b->data;
	right = d->sib_idx < idx ? lv->b->data : sl.b->data;
	ln = node_nr(left);
	rn = node_nr(right);
	want = (ln + rn) / 2;
	if (ln > want) {
		unsigned k = ln - want;

		node_shift(right, g, 0, (int)k);
		node_copy(right, 0, left, want, k, g);
		node_set_nr(right, rn + k);
		node_set_nr(left, want);
		node_zero_from(left, g, want);
	} else {
		unsigned k = want - ln;

		node_copy(left, ln, right, 0, k, g);
		node_set_nr(left, want);
		node_shift(right, g, k, -(int)k);
		node_set_nr(right, rn - k);
		node_zero_from(right, g, rn - k);
	}
	memcpy(d->sep, node_key(right, g, 0), g->ks);
	spine_refresh_ptr(t, &sl);
	d->sibptr = sl.ptr;
}

/* Updates internal node @n for the changes below it: child @idx and its rebalancing @d. */
static void fix_parent(struct btree *t, void *n, unsigned idx, const struct blkptr *child,
		       const struct del_level *d)
{
	const struct node_geom *g = &t->node;

	node_set_child(n, g, idx, child);
	switch (d->act) {
	case REB_MERGE:
		if (d->sib_idx < idx) {
			/* The merged node inherits its left sibling's lower bound and slot. */
			memcpy(node_key(n, g, idx), node_key(n, g, d->sib_idx), g->ks);
		}
		node_remove_at(n, g, d->sib_idx);
		break;
	case REB_BORROW:
		node_set_child(n, g, d->sib_idx, &d->sibptr);
		memcpy(node_key(n, g, MAX(idx, d->sib_idx)), d->sep, g->ks);
		break;
	case REB_NONE:
		break;
	}
}

int btree_delete(struct btree *t, struct tx *tx, const void *key, void *value_out)
{
	struct del_plan *dp;
	struct reserve res;
	struct spine s;
	struct spine_level *leaf;
	unsigned p, top;
	int r;

	VERIFY(tx->cache == t->cache);
	if (!t->height)
		return -ENODATA;
	r = spine_descend(t, &s, key);
	if (r)
		return r;
	leaf = &s.lv[s.depth - 1];
	p = leaf->idx;
	if (p >= node_nr(leaf->b->data) ||
	    tkey_cmp(t, node_ckey(leaf->b->data, &t->leaf, p), key)) {
		r = -ENODATA;
		goto out_put;
	}
	r = spine_check_births(t, tx, &s);
	if (r)
		goto out_put;
	dp = xmalloc(sizeof(*dp));
	r = delete_plan(t, tx, &s, dp);
	if (r)
		goto out_free_plan;
	r = reserve_get(tx, &res, dp->need);
	if (r)
		goto out_put_plan;
	if (value_out)
		memcpy(value_out, node_cval(leaf->b->data, &t->leaf, p), t->leaf.vs);

	/* Phase two: nothing below can fail. */
	top = dp->root_goes ? 1 : 0;
	for (int l = (int)s.depth - 1; l >= (int)top; l--) {
		struct spine_level *lv = &s.lv[l];
		unsigned level = t->height - 1 - (unsigned)l;

		make_writable(t, tx, lv, &res);
		if (!level)
			node_remove_at(lv->b->data, &t->leaf, p);
		else
			fix_parent(t, lv->b->data, lv->idx, &s.lv[l + 1].ptr, &dp->lv[l + 1]);
		if (dp->lv[l].act == REB_MERGE)
			merge(t, tx, lv, level, &dp->lv[l], s.lv[l - 1].idx);
		else if (dp->lv[l].act == REB_BORROW)
			borrow(t, tx, &res, lv, level, &dp->lv[l], s.lv[l - 1].idx);
		spine_refresh_ptr(t, lv);
	}
	if (!dp->root_goes) {
		t->root = s.lv[0].ptr;
	} else if (t->height > 1) {
		/* The root's one remaining child (the node its merge kept) becomes the root. */
		node_free(t, tx, s.lv[0].b, &s.lv[0].ptr);
		s.lv[0].b = NULL;
		t->root = s.lv[1].ptr;
		t->height--;
	} else {
		node_free(t, tx, s.lv[0].b, &s.lv[0].ptr);
		s.lv[0].b = NULL;
		memset(&t->root, 0, sizeof(t->root));
		t->height = 0;
	}
	t->gen++;
	reserve_put(tx, &res);
out_put_plan:
	plan_put(t, dp, s.depth);
out_free_plan:
	free(dp);
out_put:
	for (unsigned l = 0; l < s.depth; l++)
		if (s.lv[l].b)
			cache_put(t->cache, s.lv[l].b);
	return r;
}

/* Entries one step of btree_delete_range or btree_delete_sorted removes at most. */
#define LEAF_STEP_MAX 256

/*
 * Removes the entries at @pos[0..m) (ascending, m >= 1) from the leaf of the held spine @s,
 * which keeps at least half its capacity (a root leaf at least one): shadows the path,
 * compacts the leaf, refreshes the pointers.  Returns 0 or -ENOSPC/-EILSEQ (nothing
 * changed); the spine is released either way.  No separator changes: a parent's key stays a
 * lower bound of what remains under it (btree.c's invariants).
 */
static int remove_in_leaf(struct btree *t, struct tx *tx, struct spine *s, const u16 *pos,
			  unsigned m)
{
	struct reserve res;
	unsigned need = 0;
	int r;

	r = spine_check_births(t, tx, s);
	for (unsigned l = 0; !r && l < s->depth; l++)
		need += s->lv[l].ptr.birth_txg != tx->txg;
	if (!r)
		r = reserve_get(tx, &res, need);
	if (r) {
		spine_put(t, s);
		return r;
	}

	/* Phase two: nothing below can fail. */
	for (int l = (int)s->depth - 1; l >= 0; l--) {
		struct spine_level *lv = &s->lv[l];
		void *n;

		make_writable(t, tx, lv, &res);
		n = lv->b->data;
		if (l == (int)s->depth - 1) {
			unsigned nr = node_nr(n), w = pos[0];

			for (unsigned i = pos[0], j = 0; i < nr; i++) {
				if (j < m && pos[j] == i) {
					j++;
					continue;
				}
				node_copy(n, w++, n, i, 1, &t->leaf);
			}
			node_set_nr(n, nr - m);
			node_zero_from(n, &t->leaf, nr - m);
		} else {
			node_set_child(n, &t->node, lv->idx, &s->lv[l + 1].ptr);
		}
		spine_refresh_ptr(t, lv);
	}
	t->root = s->lv[0].ptr;
	t->gen++;
	reserve_put(tx, &res);
	spine_put(t, s);
	return 0;
}

/* Entries the leaf of @s may lose at once: down to half full, a root leaf to one. */
static unsigned leaf_spare(const struct btree *t, const struct spine *s)
{
	unsigned nr = node_nr(s->lv[s->depth - 1].b->data);

	return MIN(s->depth == 1 ? nr - 1 : nr - t->leaf.min, (unsigned)LEAF_STEP_MAX);
}

/*
 * One step of btree_delete_range: removes from the leaf holding the first entry >= @lo the
 * range's entries it can spare; if it can spare none, deletes one through btree_delete
 * (merge or borrow).  Returns the number deleted (0: nothing of the range is left) or a
 * negative error (nothing changed).
 */
static int delete_leaf_run(struct btree *t, struct tx *tx, const void *lo, const void *hi)
{
	u8 key[BTREE_MAX_KEY_SIZE];
	u16 pos[LEAF_STEP_MAX];
	const void *leaf;
	struct spine s;
	unsigned p, nr, c = 0, can;
	int r;

	if (!t->height)
		return 0;
	r = spine_locate(t, lo, BTREE_GE, &s);
	if (r)
		return r == -ENODATA ? 0 : r;
	leaf = s.lv[s.depth - 1].b->data;
	p = s.lv[s.depth - 1].idx;
	nr = node_nr(leaf);
	can = leaf_spare(t, &s);
	while (p + c < nr && tkey_cmp(t, node_ckey(leaf, &t->leaf, p + c), hi) <= 0 && c <= can)
		c++;
	if (c && can) {
		c = MIN(c, can);
		for (unsigned j = 0; j < c; j++)
			pos[j] = (u16)(p + j);
		r = remove_in_leaf(t, tx, &s, pos, c);
		return r ? r : (int)c;
	}
	if (c)
		memcpy(key, node_ckey(leaf, &t->leaf, p), t->leaf.ks);
	spine_put(t, &s);
	if (!c)
		return 0;
	r = btree_delete(t, tx, key, NULL);
	return r ? r : 1;
}

int btree_delete_range(struct btree *t, struct tx *tx, const void *lo, const void *hi, u64 *deleted)
{
	VERIFY(tx->cache == t->cache);
	*deleted = 0;
	for (;;) {
		int r = delete_leaf_run(t, tx, lo, hi);

		if (r <= 0)
			return r;
		*deleted += (u64)r;
	}
}

/*
 * One step of btree_delete_sorted: removes the first of @keys and every following one found
 * in the same leaf (each above the one before), as many as the leaf can spare, copying their
 * values to @vals (NULL: not wanted); through btree_delete if it can spare none.  Returns the
 * number deleted (>= 1) or a negative error (-ENODATA: the first key is absent; nothing
 * changed).
 */
static int delete_sorted_run(struct btree *t, struct tx *tx, const u8 *keys, u8 *vals, u32 n)
{
	u16 pos[LEAF_STEP_MAX];
	const void *leaf;
	struct spine s;
	unsigned nr, can, m = 0;
	int r;

	if (!t->height)
		return -ENODATA;
	r = spine_descend(t, &s, keys);
	if (r)
		return r;
	leaf = s.lv[s.depth - 1].b->data;
	nr = node_nr(leaf);
	can = leaf_spare(t, &s);
	for (; m < n && m < MAX(can, 1u); m++) {
		const u8 *k = keys + (size_t)m * t->leaf.ks;
		unsigned p = node_lower_bound(t, leaf, k);

		if (p >= nr || tkey_cmp(t, node_ckey(leaf, &t->leaf, p), k) ||
		    (m && p <= pos[m - 1]))
			break;
		pos[m] = (u16)p;
		if (vals)
			memcpy(vals + (size_t)m * t->leaf.vs, node_cval(leaf, &t->leaf, p),
			       t->leaf.vs);
	}
	if (!m) {
		spine_put(t, &s);
		return -ENODATA;
	}
	if (!can) {
		spine_put(t, &s);
		r = btree_delete(t, tx, keys, vals);
		return r ? r : 1;
	}
	r = remove_in_leaf(t, tx, &s, pos, m);
	return r ? r : (int)m;
}

int btree_delete_sorted(struct btree *t, struct tx *tx, const void *keys, u32 n, void *values_out,
			u32 *done)
{
	const u8 *k = keys;
	u8 *v = values_out;

	VERIFY(tx->cache == t->cache);
	for (*done = 0; *done < n;) {
		int r = delete_sorted_run(t, tx, k + (size_t)*done * t->leaf.ks,
					  v ? v + (size_t)*done * t->leaf.vs : NULL, n - *done);

		if (r < 0)
			return r;
		*done += (u32)r;
	}
	return 0;
}
