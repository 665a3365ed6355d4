// SPDX-License-Identifier: GPL-2.0-only
/*
 * btree_check.c - whole-tree passes: the pruned walk (changelists, sends), statistics, the
 * checker behind `ddsnap check`, and destroy.
 *
 * The walk decides from a block pointer alone whether to read the child: its birth txg says
 * when the subtree last changed, its aggregate bounds every entry below.  A changelist after
 * gen G on the exception tree (aggregate = death) therefore reads only the paths to leaves
 * holding an exception that died after G, about (changed leaves) * height nodes.
 *
 * The checker trusts nothing it can recompute: it re-derives each pointer's aggregate and
 * compares birth and checksum with the child, carries each subtree's key range down from
 * the separators, and checks fill bounds and levels.  The cache has already validated each
 * block on its own (block.h, btree.c validators).
 *
 * Destroy frees bottom-up without reading leaves: a level-1 node names its leaves' addresses
 * and births, which is all tx_free_meta needs.
 *
 * Locking: walk, stats and verify are reads; destroy is a modification (btree.h).  Crash
 * argument: only destroy changes anything, through tx_free_meta, whose frees do not take
 * effect before the txg is durable; the previous root stays readable until then.
 */
#include "pdata/btree_internal.h"
#include <stdarg.h>

/*----------------------------------------------------------------
 * Pruned walk
 *--------------------------------------------------------------*/

static bool walk_wants(const struct btree_walk *w, const struct blkptr *p)
{
	if ((w->flags & BTREE_WALK_BIRTH) && p->birth_txg <= w->min_birth)
		return false;
	if ((w->flags & BTREE_WALK_AGGR) && p->aggr <= w->min_aggr)
		return false;
	return true;
}

static int walk_node(struct btree *t, struct btree_walk *w, const struct blkptr *p, unsigned level)
{
	struct cblock *b;
	const void *n;
	int r;

	r = btree_read_node(t, p, level, &b);
	if (r)
		return r;
	n = b->data;
	w->nodes_visited++;
	if (!level) {
		w->leaves_visited++;
		for (unsigned i = 0; i < node_nr(n) && !r; i++) {
			const void *k = node_ckey(n, &t->leaf, i), *v = node_cval(n, &t->leaf, i);

			if ((w->flags & BTREE_WALK_AGGR) &&
			    (t->type->aggr ? t->type->aggr(k, v) : 0) <= w->min_aggr)
				continue;
			w->entries_reported++;
			r = w->entry ? w->entry(w->arg, k, v) : 0;
		}
	} else {
		for (unsigned i = 0; i < node_nr(n) && !r; i++) {
			struct blkptr c;

			node_child(n, &t->node, i, &c);
			if (walk_wants(w, &c))
				r = walk_node(t, w, &c, level - 1);
		}
	}
	cache_put(t->cache, b);
	return r;
}

int btree_walk(struct btree *t, struct btree_walk *w)
{
	w->nodes_visited = w->leaves_visited = w->entries_reported = 0;
	if (!t->height || !walk_wants(w, &t->root))
		return 0;
	return walk_node(t, w, &t->root, t->height - 1);
}

/*----------------------------------------------------------------
 * Statistics and verification
 *--------------------------------------------------------------*/

struct vctx {
	struct btree *t;
	btree_block_fn fn;
	void *arg;
	struct btree_stats st;
	char *why;
	size_t whylen;
	bool check; /* verify, not just count */
};

static int __printf(3, 4) vfail(struct vctx *v, u64 blocknr, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (v->why && v->whylen)
		snprintf(v->why, v->whylen, "btree %s: node %llu: %s", v->t->type->name,
			 (unsigned long long)blocknr, msg);
	return -EILSEQ;
}

/* Checks what one node and its pointer must satisfy. @lo/@hi: the key range (NULL: open). */
static int verify_one(struct vctx *v, const struct blkptr *p, const void *n, unsigned level,
		      const void *lo, const void *hi, bool is_root)
{
	struct btree *t = v->t;
	const struct node_geom *g = geom_of(t, level);
	unsigned nr = node_nr(n);
	u64 aggr = node_aggr(t, n);

	if (!is_root && nr < g->min)
		return vfail(v, p->blocknr, "%u entries, below the minimum %u", nr, g->min);
	if (is_root && level && nr < 2)
		return vfail(v, p->blocknr, "internal root with %u child", nr);
	if (aggr != p->aggr)
		return vfail(v, p->blocknr, "aggregate %llu, pointer says %llu",
			     (unsigned long long)aggr, (unsigned long long)p->aggr);
	if (block_txg(n) != p->birth_txg)
		return vfail(v, p->blocknr, "txg %llu, pointer says %llu",
			     (unsigned long long)block_txg(n), (unsigned long long)p->birth_txg);
	if (lo && tkey_cmp(t, node_ckey(n, g, 0), lo) < 0)
		return vfail(v, p->blocknr, "first key below the parent's separator");
	if (hi && tkey_cmp(t, node_ckey(n, g, nr - 1), hi) >= 0)
		return vfail(v, p->blocknr, "last key not below the next separator");
	for (unsigned i = 1; i < nr; i++)
		if (tkey_cmp(t, node_ckey(n, g, i - 1), node_ckey(n, g, i)) >= 0)
			return vfail(v, p->blocknr, "keys %u and %u out of order", i - 1, i);
	return 0;
}

static int verify_node(struct vctx *v, const struct blkptr *p, unsigned level, const void *lo,
		       const void *hi, bool is_root)
{
	struct btree *t = v->t;
	struct cblock *b;
	const void *n;
	unsigned nr;
	int r;

	r = btree_read_node(t, p, level, &b);
	if (r) {
		if (v->why && v->whylen)
			snprintf(v->why, v->whylen, "btree %s: reading node %llu: error %d",
				 t->type->name, (unsigned long long)p->blocknr, r);
		return r;
	}
	n = b->data;
	nr = node_nr(n);
	if (v->fn) {
		r = v->fn(v->arg, p->blocknr, p->birth_txg, level);
		if (r)
			goto out_put;
	}
	if (v->check) {
		r = verify_one(v, p, n, level, lo, hi, is_root);
		if (r)
			goto out_put;
	}
	if (!level) {
		v->st.leaves++;
		v->st.entries += nr;
		goto out_put;
	}
	v->st.internal++;
	for (unsigned i = 0; i < nr && !r; i++) {
		struct blkptr c;

		node_child(n, &t->node, i, &c);
		if (v->check && c.birth_txg > p->birth_txg) {
			r = vfail(v, p->blocknr, "child %u born in txg %llu, after its parent", i,
				  (unsigned long long)c.birth_txg);
			break;
		}
		r = verify_node(v, &c, level - 1, node_ckey(n, &t->node, i),
				i + 1 < nr ? node_ckey(n, &t->node, i + 1) : hi, false);
	}
out_put:
	cache_put(t->cache, b);
	return r;
}

static int full_pass(struct vctx *v, struct btree_stats *stats)
{
	struct btree *t = v->t;
	int r = 0;

	memset(&v->st, 0, sizeof(v->st));
	if (t->height)
		r = verify_node(v, &t->root, t->height - 1, NULL, NULL, true);
	v->st.height = t->height;
	v->st.bytes = (v->st.leaves + v->st.internal) * DDSNAP_BLOCK_SIZE;
	v->st.leaf_slots = v->st.leaves * t->leaf.cap;
	if (stats)
		*stats = v->st;
	return r;
}

int btree_stats(struct btree *t, struct btree_stats *out)
{
	struct vctx v = {.t = t};

	return full_pass(&v, out);
}

int btree_verify(struct btree *t, btree_block_fn fn, void *arg, struct btree_stats *stats,
		 char *why, size_t whylen)
{
	struct vctx v = {.t = t, .fn = fn, .arg = arg, .why = why, .whylen = whylen, .check = true};

	if (why && whylen)
		why[0] = '\0';
	return full_pass(&v, stats);
}

/*----------------------------------------------------------------
 * Destroy
 *--------------------------------------------------------------*/

static void free_block(struct btree *t, struct tx *tx, const struct blkptr *p)
{
	if (p->birth_txg == tx->txg)
		cache_forget(t->cache, p->blocknr);
	tx_free_meta(tx, p->blocknr, p->birth_txg);
}

static int destroy_node(struct btree *t, struct tx *tx, const struct blkptr *p, unsigned level)
{
	struct cblock *b;
	int r = 0;

	if (!level) {
		free_block(t, tx, p);
		return 0;
	}
	r = btree_read_node(t, p, level, &b);
	if (r)
		return r;
	for (unsigned i = 0; i < node_nr(b->data) && !r; i++) {
		struct blkptr c;

		node_child(b->data, &t->node, i, &c);
		r = destroy_node(t, tx, &c, level - 1);
	}
	cache_put(t->cache, b);
	if (!r)
		free_block(t, tx, p);
	return r;
}

int btree_destroy(struct btree *t, struct tx *tx)
{
	int r = 0;

	VERIFY(tx->cache == t->cache);
	if (t->height)
		r = destroy_node(t, tx, &t->root, t->height - 1);
	memset(&t->root, 0, sizeof(t->root));
	t->height = 0;
	t->gen++;
	return r;
}
