// SPDX-License-Identifier: GPL-2.0-only
/*
 * btree.c - the copy-on-write B+tree: nodes and their validators, lookups, cursors,
 * insertion (one entry, or a sorted run a leaf at a time) and btree_sync.  Deletion (one
 * entry, or a key range) and rebalancing are in btree_remove.c; walks, statistics, the
 * checker and destroy in btree_check.c.
 *
 * What.  One engine for every persistent map.  Entries (fixed-size key, fixed-size value)
 * live only in leaves; internal nodes hold (key, block pointer) pairs.  A block pointer
 * carries the child's address, its birth txg, its checksum and the aggregate (max of
 * type->aggr) of everything below, so the pointer alone says whether a subtree can matter
 * to a changelist or to a send from a given txg.
 *
 * Invariants (btree_verify checks every one):
 *  - keys strictly increase inside a node and across the tree;
 *  - internal node: key[i] <= every key under child i < key[i + 1]; key[0] is only a lower
 *    bound (it is not kept exact when the smallest key is deleted);
 *  - every node but the root has at least half its capacity in entries; an internal root
 *    has at least two children; an empty tree has no blocks (root blocknr 0);
 *  - levels: leaves are level 0, each parent one more; the tree height is the root level + 1;
 *  - ptr.birth_txg == child's header txg, ptr.aggr == max over the child, ptr.csum == the
 *    child's header csum -- where a node is unsealed (changed in the open txg, btree_sync
 *    not yet run) both checksums are 0;
 *  - a node born before the open txg is never written: it is shadowed into a reserved
 *    block first, and the old block is handed to tx_free_meta with its birth txg.
 *
 *	               root (level 2)
 *	         [k0 | k5 | k9 ]  blkptr{blocknr, birth, aggr, csum} per key
 *	        /       |       \
 *	 [k0 k2 k3] [k5 k6 k7] [k9 ka]     level 1
 *	     ...        ...       ...
 *	   leaves: [key key key ...][value value value ...]   level 0
 *
 * Modification is two-phase.  Phase one reads: it descends holding every node of the
 * root-to-leaf path (the spine; delete also holds the siblings it will borrow from or merge),
 * works out how many new blocks the change needs, and reserves them with tx_alloc_meta.
 * Phase two cannot fail: it shadows, edits, splits or merges bottom-up and installs the new
 * root.  So an -ENOSPC or a read error leaves the tree exactly as it was.  The batch calls
 * (btree_insert_sorted, btree_delete_range) are sequences of such two-phase steps, each
 * changing one leaf (several entries, without a split or a merge) or going through the
 * one-entry path: an error between steps leaves a valid tree holding the steps before it.
 * A step costs one descent, so a run of keys that share a leaf (a copy-out batch's
 * ascending chunks, a piece's entries) costs a descent per leaf, not per entry.
 *
 * Sealing.  Parents must hold their children's checksums, which exist only once a child is
 * sealed; sealing happens once per txg in btree_sync, children first.  Until then every
 * changed node and the pointer to it say checksum 0, and the read path requires the two to
 * agree, so forgetting btree_sync cannot go unnoticed.
 *
 * Locking.  None inside: the header states the caller's rules (one writer, or any number of
 * readers, per handle).  Readers only take cache references; the cache has its own mutex.
 *
 * Crash argument.  Nothing here writes the device: the cache writes dirty nodes at
 * cache_sync, after btree_sync sealed them, and the txg layer writes the uberblock after a
 * flush.  Because no block of a synced txg is ever changed in place and freed blocks are not
 * reused before the freeing txg is durable (tx.h), a crash at any point leaves the last
 * uberblock's root pointing at a complete tree of the last synced txg.
 */
#include "pdata/btree_internal.h"
#include "util/iopool.h"
#include "util/log.h"

/*----------------------------------------------------------------
 * Node validators
 *--------------------------------------------------------------*/

#define bad(why, whylen, ...) why_printf(why, whylen, -EILSEQ, __VA_ARGS__)

static bool all_zero(const u8 *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * Structure of a node whose header (magic, checksum, address) already validated.  Needs
 * nothing but the block: sizes and key order are in the node.
 */
static int node_validate(const void *block, bool leaf, char *why, size_t whylen)
{
	const struct btree_node_disk *n = block;
	unsigned nr = le16_to_cpu(n->nr_entries), ks = le16_to_cpu(n->key_size);
	unsigned vs = le16_to_cpu(n->value_size), level = n->level, order = n->key_order;
	struct node_geom g;
	u64 txg = le64_to_cpu(n->hdr.txg);

	if (leaf ? level != 0 : (level == 0 || level >= BTREE_MAX_DEPTH))
		return bad(why, whylen, "level %u", level);
	if (order != BTREE_KEY_MEMCMP && order != BTREE_KEY_LE64)
		return bad(why, whylen, "key order %u", order);
	if (ks == 0 || ks > BTREE_MAX_KEY_SIZE || (order == BTREE_KEY_LE64 && ks % 8))
		return bad(why, whylen, "key size %u", ks);
	if (leaf ? vs > BTREE_MAX_VALUE_SIZE : vs != sizeof(struct blkptr_disk))
		return bad(why, whylen, "value size %u", vs);
	if (n->reserved)
		return bad(why, whylen, "reserved field set");
	g.ks = (u16)ks;
	g.vs = (u16)vs;
	g.cap = (u16)(BTREE_NODE_PAYLOAD / (ks + vs));
	if (g.cap < BTREE_MIN_CAPACITY)
		return bad(why, whylen, "capacity %u", g.cap);
	if (nr > g.cap || nr < (leaf ? 1u : 2u))
		return bad(why, whylen, "%u entries, capacity %u", nr, g.cap);
	for (unsigned i = 1; i < nr; i++)
		if (key_cmp_raw(order, ks, node_ckey(n, &g, i - 1), node_ckey(n, &g, i)) >= 0)
			return bad(why, whylen, "key %u not above key %u", i, i - 1);
	if (!all_zero(node_ckey(n, &g, nr), (size_t)(g.cap - nr) * ks) ||
	    !all_zero(node_cval(n, &g, nr), (size_t)(g.cap - nr) * vs) ||
	    !all_zero(node_cval(n, &g, g.cap), BTREE_NODE_PAYLOAD - (size_t)g.cap * (ks + vs)))
		return bad(why, whylen, "unused slots not zero");
	for (unsigned i = 0; !leaf && i < nr; i++) {
		struct blkptr_disk d;
		struct blkptr p;

		memcpy(&d, node_cval(n, &g, i), sizeof(d));
		blkptr_unpack(&p, &d);
		if (!p.blocknr || !p.birth_txg || p.birth_txg > txg || d.reserved)
			return bad(why, whylen,
				   "child %u: block %llu born %llu in a node of txg %llu", i,
				   (unsigned long long)p.blocknr, (unsigned long long)p.birth_txg,
				   (unsigned long long)txg);
	}
	return 0;
}

static int leaf_validate(const void *block, char *why, size_t whylen)
{
	return node_validate(block, true, why, whylen);
}

static int internal_validate(const void *block, char *why, size_t whylen)
{
	return node_validate(block, false, why, whylen);
}

const struct block_type btree_leaf_block_type = {
	.name = "btree leaf",
	.magic = MAGIC_BTREE_LEAF,
	.validate = leaf_validate,
};

const struct block_type btree_node_block_type = {
	.name = "btree node",
	.magic = MAGIC_BTREE_NODE,
	.validate = internal_validate,
};

static const struct block_type *block_type_of(unsigned level)
{
	return level ? &btree_node_block_type : &btree_leaf_block_type;
}

/*----------------------------------------------------------------
 * Node helpers
 *--------------------------------------------------------------*/

int btree_key_cmp(const struct btree_type *type, const void *a, const void *b)
{
	return key_cmp_raw(type->order, type->key_size, a, b);
}

unsigned node_lower_bound(const struct btree *t, const void *n, const void *key)
{
	const struct node_geom *g = geom_of(t, node_level(n));
	unsigned lo = 0, hi = node_nr(n);

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (tkey_cmp(t, node_ckey(n, g, mid), key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

unsigned node_child_index(const struct btree *t, const void *n, const void *key)
{
	const struct node_geom *g = &t->node;
	unsigned i = node_lower_bound(t, n, key);

	if (i < node_nr(n) && !tkey_cmp(t, node_ckey(n, g, i), key))
		return i;
	return i ? i - 1 : 0;
}

u64 node_aggr(const struct btree *t, const void *n)
{
	unsigned nr = node_nr(n);
	u64 m = 0;

	if (node_level(n)) {
		for (unsigned i = 0; i < nr; i++) {
			struct blkptr p;

			node_child(n, &t->node, i, &p);
			m = MAX(m, p.aggr);
		}
	} else if (t->type->aggr) {
		for (unsigned i = 0; i < nr; i++)
			m = MAX(m, t->type->aggr(node_ckey(n, &t->leaf, i),
						 node_cval(n, &t->leaf, i)));
	}
	return m;
}

void node_shift(void *n, const struct node_geom *g, unsigned from, int delta)
{
	unsigned nr = node_nr(n), count = nr - from;

	memmove(node_key(n, g, (unsigned)((int)from + delta)), node_key(n, g, from),
		(size_t)count * g->ks);
	memmove(node_val(n, g, (unsigned)((int)from + delta)), node_val(n, g, from),
		(size_t)count * g->vs);
}

void node_zero_from(void *n, const struct node_geom *g, unsigned from)
{
	memset(node_key(n, g, from), 0, (size_t)(g->cap - from) * g->ks);
	memset(node_val(n, g, from), 0, (size_t)(g->cap - from) * g->vs);
}

void node_insert_at(void *n, const struct node_geom *g, unsigned i, const void *key,
		    const void *val)
{
	unsigned nr = node_nr(n);

	VERIFY(nr < g->cap && i <= nr);
	node_shift(n, g, i, 1);
	memcpy(node_key(n, g, i), key, g->ks);
	memcpy(node_val(n, g, i), val, g->vs);
	node_set_nr(n, nr + 1);
}

void node_remove_at(void *n, const struct node_geom *g, unsigned i)
{
	unsigned nr = node_nr(n);

	VERIFY(i < nr);
	node_shift(n, g, i + 1, -1);
	node_set_nr(n, nr - 1);
	node_zero_from(n, g, nr - 1);
}

void node_copy(void *dst, unsigned di, const void *src, unsigned si, unsigned count,
	       const struct node_geom *g)
{
	memcpy(node_key(dst, g, di), node_ckey(src, g, si), (size_t)count * g->ks);
	memcpy(node_val(dst, g, di), node_cval(src, g, si), (size_t)count * g->vs);
}

/* Stamps a node's identity for the open txg; its checksum is 0 until btree_sync seals it. */
static void node_stamp(void *n, unsigned level, u64 blocknr, u64 txg)
{
	struct btree_node_disk *d = n;

	d->hdr.csum = 0;
	d->hdr.magic = cpu_to_le32(block_type_of(level)->magic);
	d->hdr.blocknr = cpu_to_le64(blocknr);
	d->hdr.txg = cpu_to_le64(txg);
}

/*----------------------------------------------------------------
 * Handles and reading
 *--------------------------------------------------------------*/

static int geom_init(struct node_geom *g, unsigned ks, unsigned vs)
{
	g->ks = (u16)ks;
	g->vs = (u16)vs;
	g->cap = (u16)(BTREE_NODE_PAYLOAD / (ks + vs));
	g->min = g->cap / 2;
	return g->cap >= BTREE_MIN_CAPACITY ? 0 : -EINVAL;
}

static int type_check(const struct btree_type *type)
{
	if (!type->key_size || type->key_size > BTREE_MAX_KEY_SIZE ||
	    type->value_size > BTREE_MAX_VALUE_SIZE)
		return -EINVAL;
	if (type->order == BTREE_KEY_LE64)
		return type->key_size % 8 ? -EINVAL : 0;
	return type->order == BTREE_KEY_MEMCMP ? 0 : -EINVAL;
}

int btree_read_node(struct btree *t, const struct blkptr *p, unsigned level, struct cblock **out)
{
	const struct node_geom *g = geom_of(t, level);
	const struct btree_node_disk *n;
	struct cblock *b;
	char why[192];
	int r;

	r = cache_read(t->cache, block_type_of(level), p->blocknr, p->birth_txg, &b, why,
		       sizeof(why));
	if (r) {
		log_err("btree %s: %s", t->type->name, why);
		return r;
	}
	n = b->data;
	if (block_csum(n) != p->csum)
		snprintf(why, sizeof(why), "checksum 0x%08x, pointer says 0x%08x", block_csum(n),
			 p->csum);
	else if (n->level != level)
		snprintf(why, sizeof(why), "level %u, expected %u", n->level, level);
	else if (le16_to_cpu(n->key_size) != g->ks || le16_to_cpu(n->value_size) != g->vs ||
		 n->key_order != t->type->order)
		snprintf(why, sizeof(why), "key/value size %u/%u order %u, tree has %u/%u/%u",
			 le16_to_cpu(n->key_size), le16_to_cpu(n->value_size), n->key_order, g->ks,
			 g->vs, (unsigned)t->type->order);
	else {
		*out = b;
		return 0;
	}
	log_err("btree %s: node %llu: %s", t->type->name, (unsigned long long)p->blocknr, why);
	cache_put(t->cache, b);
	return -EILSEQ;
}

/* The level of the root node, learnt by reading it as a leaf, else as an internal node. */
static int probe_root_level(struct btree *t, unsigned *level)
{
	char why_leaf[160], why_node[160];
	struct cblock *b;
	int r;

	r = cache_read(t->cache, &btree_leaf_block_type, t->root.blocknr, t->root.birth_txg, &b,
		       why_leaf, sizeof(why_leaf));
	if (r == -EILSEQ)
		r = cache_read(t->cache, &btree_node_block_type, t->root.blocknr, t->root.birth_txg,
			       &b, why_node, sizeof(why_node));
	else
		why_node[0] = '\0';
	if (r) {
		log_err("btree %s: root %llu: %s%s%s", t->type->name,
			(unsigned long long)t->root.blocknr, why_leaf, why_node[0] ? "; " : "",
			why_node);
		return r;
	}
	*level = node_level(b->data);
	cache_put(t->cache, b);
	return 0;
}

int btree_open(const struct btree_type *type, struct cache *cache, const struct blkptr *root,
	       struct btree **out)
{
	struct btree *t;
	struct cblock *b;
	unsigned level = 0;
	int r;

	if (type_check(type))
		return -EINVAL;
	t = xzalloc(sizeof(*t));
	t->type = type;
	t->cache = cache;
	t->root = *root;
	if (geom_init(&t->leaf, type->key_size, type->value_size) ||
	    geom_init(&t->node, type->key_size, sizeof(struct blkptr_disk))) {
		r = -EINVAL;
		goto out_free;
	}
	if (root->blocknr) {
		r = probe_root_level(t, &level);
		if (r)
			goto out_free;
		r = btree_read_node(t, root, level, &b);
		if (r)
			goto out_free;
		cache_put(cache, b);
		t->height = level + 1;
	}
	*out = t;
	return 0;

out_free:
	free(t);
	return r;
}

void btree_close(struct btree *t)
{
	free(t);
}

void btree_root(const struct btree *t, struct blkptr *out)
{
	*out = t->root;
}

bool btree_empty(const struct btree *t)
{
	return t->height == 0;
}

const struct btree_type *btree_type_of(const struct btree *t)
{
	return t->type;
}

u64 btree_generation(const struct btree *t)
{
	return t->gen;
}

/*----------------------------------------------------------------
 * Spines and lookups
 *--------------------------------------------------------------*/

enum edge { EDGE_NONE, EDGE_LEFT, EDGE_RIGHT };

/* Fills @s from level @from down, following @key or the @edge; @s->lv[from] is set. */
static int descend_from(struct btree *t, struct spine *s, unsigned from, const void *key,
			enum edge edge)
{
	for (unsigned l = from;; l++) {
		struct spine_level *lv = &s->lv[l];
		unsigned level = t->height - 1 - l, nr;
		int r;

		r = btree_read_node(t, &lv->ptr, level, &lv->b);
		if (r) {
			s->depth = l;
			return r;
		}
		nr = node_nr(lv->b->data);
		if (edge == EDGE_LEFT)
			lv->idx = 0;
		else if (edge == EDGE_RIGHT)
			lv->idx = nr - 1;
		else if (level)
			lv->idx = node_child_index(t, lv->b->data, key);
		else
			lv->idx = node_lower_bound(t, lv->b->data, key);
		if (!level) {
			s->depth = l + 1;
			return 0;
		}
		node_child(lv->b->data, &t->node, lv->idx, &s->lv[l + 1].ptr);
	}
}

static int descend(struct btree *t, struct spine *s, const void *key, enum edge edge)
{
	VERIFY(t->height > 0 && t->height <= BTREE_MAX_DEPTH);
	s->depth = 0;
	s->lv[0].ptr = t->root;
	return descend_from(t, s, 0, key, edge);
}

int spine_descend(struct btree *t, struct spine *s, const void *key)
{
	return descend(t, s, key, EDGE_NONE);
}

void spine_put(struct btree *t, struct spine *s)
{
	for (unsigned l = 0; l < s->depth; l++)
		cache_put(t->cache, s->lv[l].b);
	s->depth = 0;
}

/*
 * Moves the spine to the next (@forward) or previous leaf, its idx on the first or last
 * entry.  Returns 0, -ENODATA at the edge of the tree (spine unchanged), or a read error
 * (the spine is then partly released; spine_put still does the right thing).
 */
static int spine_step_leaf(struct btree *t, struct spine *s, bool forward)
{
	int l;

	for (l = (int)s->depth - 2; l >= 0; l--) {
		unsigned nr = node_nr(s->lv[l].b->data);

		if (forward ? s->lv[l].idx + 1 < nr : s->lv[l].idx > 0)
			break;
	}
	if (l < 0)
		return -ENODATA;
	s->lv[l].idx += forward ? 1 : -1;
	for (unsigned k = (unsigned)l + 1; k < s->depth; k++)
		cache_put(t->cache, s->lv[k].b);
	s->depth = (unsigned)l + 1;
	node_child(s->lv[l].b->data, &t->node, s->lv[l].idx, &s->lv[l + 1].ptr);
	return descend_from(t, s, (unsigned)l + 1, NULL, forward ? EDGE_LEFT : EDGE_RIGHT);
}

/*
 * Positions a held spine on the entry btree_find(@key, @how) names: the leaf's idx is that
 * entry.  Returns 0 (spine held), -ENODATA or a read error (nothing held).
 */
static int locate(struct btree *t, const void *key, enum btree_seek how, struct spine *s)
{
	struct spine_level *leaf;
	unsigned nr, p;
	bool eq;
	int r;

	if (!t->height)
		return -ENODATA;
	r = descend(t, s, key,
		    how == BTREE_FIRST	? EDGE_LEFT
		    : how == BTREE_LAST ? EDGE_RIGHT
					: EDGE_NONE);
	if (r)
		goto out_put;
	leaf = &s->lv[s->depth - 1];
	nr = node_nr(leaf->b->data);
	p = leaf->idx;
	eq = how <= BTREE_LT && p < nr && !tkey_cmp(t, node_ckey(leaf->b->data, &t->leaf, p), key);
	switch (how) {
	case BTREE_FIRST:
	case BTREE_LAST:
		return 0;
	case BTREE_EQ:
		r = eq ? 0 : -ENODATA;
		break;
	case BTREE_GT:
		p += eq;
		/* fall through */
	case BTREE_GE:
		if (p < nr) {
			leaf->idx = p;
			return 0;
		}
		r = spine_step_leaf(t, s, true);
		break;
	case BTREE_LE:
		p += eq;
		/* fall through */
	case BTREE_LT:
		if (p > 0) {
			leaf->idx = p - 1;
			return 0;
		}
		r = spine_step_leaf(t, s, false);
		break;
	default:
		r = -EINVAL;
	}
	if (!r)
		return 0;
out_put:
	spine_put(t, s);
	return r;
}

int spine_locate(struct btree *t, const void *key, enum btree_seek how, struct spine *s)
{
	return locate(t, key, how, s);
}

int btree_find(struct btree *t, const void *key, enum btree_seek how, void *key_out,
	       void *value_out)
{
	struct spine s;
	const struct spine_level *leaf;
	int r;

	r = locate(t, key, how, &s);
	if (r)
		return r;
	leaf = &s.lv[s.depth - 1];
	if (key_out)
		memcpy(key_out, node_ckey(leaf->b->data, &t->leaf, leaf->idx), t->leaf.ks);
	if (value_out)
		memcpy(value_out, node_cval(leaf->b->data, &t->leaf, leaf->idx), t->leaf.vs);
	spine_put(t, &s);
	return 0;
}

/*----------------------------------------------------------------
 * Cursors
 *--------------------------------------------------------------*/

void btree_cursor_init(struct btree_cursor *c, struct btree *t)
{
	memset(c, 0, sizeof(*c));
	c->tree = t;
	c->leaf = xmalloc(DDSNAP_BLOCK_SIZE);
}

void btree_cursor_fini(struct btree_cursor *c)
{
	free(c->leaf);
	c->leaf = NULL;
	c->valid = false;
}

void btree_cursor_readahead(struct btree_cursor *c, struct iopool *pool)
{
	c->ra = pool && iopool_width(pool) > 1 ? pool : NULL;
	c->ra_parent = 0;
}

/* Leaves one readahead reads at most: a whole parent of the exception tree (84 children). */
#define BTREE_READAHEAD_LEAVES 128

struct readahead {
	struct btree *t;
	u64 blk[BTREE_READAHEAD_LEAVES];     /* sorted */
	u32 run[BTREE_READAHEAD_LEAVES + 1]; /* job j: blocks blk[run[j]] .. blk[run[j + 1] - 1] */
};

static int readahead_run(void *arg, unsigned worker, u32 j)
{
	struct readahead *ra = arg;

	cache_read_run(ra->t->cache, block_type_of(0), ra->blk[ra->run[j]],
		       ra->run[j + 1] - ra->run[j]);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/*
 * The cursor's readahead (btree.h) for a spine just positioned on a leaf: the parent's later
 * leaves, by address, each run of consecutive addresses (up to CACHE_RUN_MAX) one request
 * (a tree written in few txgs has its leaves mostly in key order on the device).
 */
static void cursor_readahead(struct btree_cursor *c, const struct spine *s)
{
	const struct spine_level *parent = &s->lv[s->depth - 2];
	struct readahead *ra;
	struct cache_stats st;
	unsigned nr, n = 0, runs = 0, max;

	if (s->depth < 2 || parent->ptr.blocknr == c->ra_parent)
		return;
	c->ra_parent = parent->ptr.blocknr;
	nr = node_nr(parent->b->data);
	if (parent->idx + 1 >= nr)
		return;
	/* At most a quarter of the cache, so what is read ahead is still there when used. */
	cache_stats(c->tree->cache, &st);
	max = (unsigned)MIN((u64)BTREE_READAHEAD_LEAVES, MAX(st.budget / 4, 1ULL));
	ra = xmalloc(sizeof(*ra));
	ra->t = c->tree;
	for (unsigned i = parent->idx + 1; i < nr && n < max; i++) {
		struct blkptr p;

		node_child(parent->b->data, &c->tree->node, i, &p);
		ra->blk[n++] = p.blocknr;
	}
	qsort(ra->blk, n, sizeof(ra->blk[0]), cmp_u64);
	for (unsigned i = 0; i < n; i++)
		if (!i || ra->blk[i] != ra->blk[i - 1] + 1 ||
		    i - ra->run[runs - 1] == CACHE_RUN_MAX)
			ra->run[runs++] = i;
	ra->run[runs] = n;
	iopool_run(c->ra, readahead_run, ra, runs);
	free(ra);
}

int btree_cursor_seek(struct btree_cursor *c, const void *key, enum btree_seek how)
{
	struct btree *t = c->tree;
	const struct spine_level *leaf;
	struct spine s;
	int r;

	c->valid = false;
	r = locate(t, key, how, &s);
	if (r)
		return r;
	if (c->ra && s.depth >= 2)
		cursor_readahead(c, &s);
	leaf = &s.lv[s.depth - 1];
	memcpy(c->leaf, leaf->b->data, DDSNAP_BLOCK_SIZE);
	c->idx = (int)leaf->idx;
	c->gen = t->gen;
	c->valid = true;
	memcpy(c->key, node_ckey(c->leaf, &t->leaf, leaf->idx), t->leaf.ks);
	spine_put(t, &s);
	return 0;
}

static int cursor_step(struct btree_cursor *c, bool forward)
{
	struct btree *t = c->tree;
	u8 key[BTREE_MAX_KEY_SIZE];

	if (!c->valid)
		return -EINVAL;
	if (c->gen == t->gen) {
		int i = c->idx + (forward ? 1 : -1);

		if (i >= 0 && i < (int)node_nr(c->leaf)) {
			c->idx = i;
			memcpy(c->key, node_ckey(c->leaf, &t->leaf, (unsigned)i), t->leaf.ks);
			return 0;
		}
	}
	memcpy(key, c->key, t->leaf.ks);
	return btree_cursor_seek(c, key, forward ? BTREE_GT : BTREE_LT);
}

int btree_cursor_next(struct btree_cursor *c)
{
	return cursor_step(c, true);
}

int btree_cursor_prev(struct btree_cursor *c)
{
	return cursor_step(c, false);
}

const void *btree_cursor_key(const struct btree_cursor *c)
{
	return c->valid ? node_ckey(c->leaf, &c->tree->leaf, (unsigned)c->idx) : NULL;
}

u64 btree_cursor_blocknr(const struct btree_cursor *c)
{
	return c->valid ? le64_to_cpu(cbn(c->leaf)->hdr.blocknr) : 0;
}

const void *btree_cursor_value(const struct btree_cursor *c)
{
	return c->valid ? node_cval(c->leaf, &c->tree->leaf, (unsigned)c->idx) : NULL;
}

/*----------------------------------------------------------------
 * Reservations and copy-on-write
 *--------------------------------------------------------------*/

int reserve_get(struct tx *tx, struct reserve *r, unsigned n)
{
	int rc;

	VERIFY(n <= BTREE_MAX_RESERVE);
	r->n = r->used = 0;
	for (unsigned i = 0; i < n; i++) {
		rc = tx_alloc_meta(tx, &r->blocknr[i]);
		if (rc) {
			while (i--)
				tx_free_meta(tx, r->blocknr[i], tx->txg);
			return rc;
		}
	}
	r->n = n;
	return 0;
}

u64 reserve_take(struct reserve *r)
{
	VERIFY(r->used < r->n);
	return r->blocknr[r->used++];
}

void reserve_put(struct tx *tx, struct reserve *r)
{
	/* Planning counts exactly; a leftover is a bug, but harmless to the tree. */
	ASSERT(r->used == r->n);
	while (r->used < r->n)
		tx_free_meta(tx, r->blocknr[r->used++], tx->txg);
}

void make_writable(struct btree *t, struct tx *tx, struct spine_level *lv, struct reserve *r)
{
	unsigned level = node_level(lv->b->data);

	if (lv->ptr.birth_txg == tx->txg) {
		cache_dirty(t->cache, lv->b);
	} else {
		u64 nbn = reserve_take(r);
		struct cblock *nb = cache_shadow(t->cache, lv->b, nbn);

		cache_put(t->cache, lv->b);
		tx_free_meta(tx, lv->ptr.blocknr, lv->ptr.birth_txg);
		lv->b = nb;
		lv->ptr.blocknr = nbn;
		lv->ptr.birth_txg = tx->txg;
	}
	node_stamp(lv->b->data, level, lv->ptr.blocknr, tx->txg);
	lv->ptr.csum = 0;
}

struct cblock *node_new(struct btree *t, struct tx *tx, struct reserve *r, unsigned level,
			struct blkptr *ptr)
{
	const struct node_geom *g = geom_of(t, level);
	struct btree_node_disk *n;
	struct cblock *b;

	ptr->blocknr = reserve_take(r);
	ptr->birth_txg = tx->txg;
	ptr->aggr = 0;
	ptr->csum = 0;
	b = cache_new(t->cache, block_type_of(level), ptr->blocknr);
	n = b->data;
	node_stamp(n, level, ptr->blocknr, tx->txg);
	n->key_size = cpu_to_le16(g->ks);
	n->value_size = cpu_to_le16(g->vs);
	n->level = (u8)level;
	n->key_order = (u8)t->type->order;
	return b;
}

void node_free(struct btree *t, struct tx *tx, struct cblock *b, const struct blkptr *ptr)
{
	cache_put(t->cache, b);
	/* A block of the open txg was never durable: drop its dirty buffer before reuse. */
	if (ptr->birth_txg == tx->txg)
		cache_forget(t->cache, ptr->blocknr);
	tx_free_meta(tx, ptr->blocknr, ptr->birth_txg);
}

void spine_refresh_ptr(struct btree *t, struct spine_level *lv)
{
	lv->ptr.aggr = node_aggr(t, lv->b->data);
	lv->ptr.csum = 0;
}

/*
 * Checks the pointers of a spine about to be changed in @tx: none may be born after the
 * open txg (that would be a block from the future: corrupt metadata or a stale tx).
 */
int spine_check_births(struct btree *t, struct tx *tx, const struct spine *s)
{
	for (unsigned l = 0; l < s->depth; l++) {
		if (s->lv[l].ptr.birth_txg > tx->txg) {
			log_err("btree %s: node %llu born in txg %llu, after the open txg %llu",
				t->type->name, (unsigned long long)s->lv[l].ptr.blocknr,
				(unsigned long long)s->lv[l].ptr.birth_txg,
				(unsigned long long)tx->txg);
			return -EILSEQ;
		}
	}
	return 0;
}

/*----------------------------------------------------------------
 * Insertion
 *--------------------------------------------------------------*/

/* The entry a level inserts: the caller's at the leaf, a split's right half above. */
struct pending {
	const void *key, *val;
	unsigned pos;
};

/*
 * Inserts @e into the full node of @lv by splitting it: the lower half stays, the upper
 * half moves to a new right sibling at a reserved block.  Returns the sibling's first key
 * in @sep and its pointer in @right.
 */
static void split_insert(struct btree *t, struct tx *tx, struct reserve *res,
			 struct spine_level *lv, unsigned level, const struct pending *e, u8 *sep,
			 struct blkptr *right)
{
	const struct node_geom *g = geom_of(t, level);
	unsigned cap = g->cap, nl = (cap + 1) / 2;
	void *n = lv->b->data, *rn;
	struct cblock *rb;

	rb = node_new(t, tx, res, level, right);
	rn = rb->data;
	if (e->pos < nl) {
		node_copy(rn, 0, n, nl - 1, cap - (nl - 1), g);
		node_set_nr(rn, cap - (nl - 1));
		node_set_nr(n, nl - 1);
		node_zero_from(n, g, nl - 1);
		node_insert_at(n, g, e->pos, e->key, e->val);
	} else {
		node_copy(rn, 0, n, nl, cap - nl, g);
		node_set_nr(rn, cap - nl);
		node_set_nr(n, nl);
		node_zero_from(n, g, nl);
		node_insert_at(rn, g, e->pos - nl, e->key, e->val);
	}
	memcpy(sep, node_key(rn, g, 0), g->ks);
	right->aggr = node_aggr(t, rn);
	cache_put(t->cache, rb);
}

/* The first insertion into an empty tree: a lone leaf as root. */
static int insert_first(struct btree *t, struct tx *tx, const void *key, const void *value)
{
	struct reserve res;
	struct cblock *b;
	int r;

	r = reserve_get(tx, &res, 1);
	if (r)
		return r;
	b = node_new(t, tx, &res, 0, &t->root);
	node_insert_at(b->data, &t->leaf, 0, key, value);
	t->root.aggr = node_aggr(t, b->data);
	cache_put(t->cache, b);
	t->height = 1;
	return 0;
}

/*
 * Blocks an insertion needs: a shadow per node born earlier, a block per split, and one
 * for a new root if the root splits (@root_splits).
 */
static unsigned insert_plan(struct btree *t, struct tx *tx, const struct spine *s, bool grows,
			    bool *root_splits)
{
	unsigned need = 0;

	*root_splits = false;
	for (unsigned l = 0; l < s->depth; l++)
		need += s->lv[l].ptr.birth_txg != tx->txg;
	for (int l = (int)s->depth - 1; grows && l >= 0; l--) {
		const void *n = s->lv[l].b->data;

		if (node_nr(n) < geom_of(t, node_level(n))->cap)
			break;
		need++;
		if (!l) {
			need++;
			*root_splits = true;
		}
	}
	return need;
}

int btree_insert(struct btree *t, struct tx *tx, const void *key, const void *value,
		 enum btree_insert_mode mode)
{
	u8 sepbuf[2][BTREE_MAX_KEY_SIZE];
	struct blkptr_disk rightd;
	struct blkptr right;
	struct reserve res;
	struct spine s;
	unsigned p, need;
	bool found, root_splits, split = false;
	int r;

	VERIFY(tx->cache == t->cache);
	if (!t->height) {
		r = insert_first(t, tx, key, value);
		goto out_gen;
	}
	r = spine_descend(t, &s, key);
	if (r)
		return r;
	r = spine_check_births(t, tx, &s);
	if (r)
		goto out_put;
	p = s.lv[s.depth - 1].idx;
	found = p < node_nr(s.lv[s.depth - 1].b->data) &&
		!tkey_cmp(t, node_ckey(s.lv[s.depth - 1].b->data, &t->leaf, p), key);
	if (found && mode != BTREE_OVERWRITE) {
		r = -EEXIST;
		goto out_put;
	}
	need = insert_plan(t, tx, &s, !found, &root_splits);
	if (root_splits && t->height == BTREE_MAX_DEPTH) {
		r = -ENOSPC; /* the tree would outgrow BTREE_MAX_DEPTH */
		goto out_put;
	}
	r = reserve_get(tx, &res, need);
	if (r)
		goto out_put;

	/* Phase two: nothing below can fail. */
	for (int l = (int)s.depth - 1; l >= 0; l--) {
		struct spine_level *lv = &s.lv[l];
		unsigned level = t->height - 1 - (unsigned)l;
		const struct node_geom *g = geom_of(t, level);
		struct pending e = {NULL, NULL, 0};
		void *n;

		make_writable(t, tx, lv, &res);
		n = lv->b->data;
		if (!level) {
			if (found)
				memcpy(node_val(n, g, p), value, g->vs);
			else
				e = (struct pending){key, value, p};
		} else {
			node_set_child(n, g, lv->idx, &s.lv[l + 1].ptr);
			if (!lv->idx && tkey_cmp(t, key, node_key(n, g, 0)) < 0)
				memcpy(node_key(n, g, 0), key, g->ks);
			if (split) {
				blkptr_pack(&rightd, &right);
				e = (struct pending){sepbuf[l & 1], &rightd, lv->idx + 1};
			}
		}
		split = false;
		if (e.key && node_nr(n) < g->cap) {
			node_insert_at(n, g, e.pos, e.key, e.val);
		} else if (e.key) {
			split_insert(t, tx, &res, lv, level, &e, sepbuf[!(l & 1)], &right);
			split = true;
		}
		spine_refresh_ptr(t, lv);
	}
	if (split) {
		/* The root split: a new root above the two halves. */
		struct blkptr rootp;
		struct blkptr_disk d;
		struct cblock *rb = node_new(t, tx, &res, t->height, &rootp);

		blkptr_pack(&d, &s.lv[0].ptr);
		node_insert_at(rb->data, &t->node, 0,
			       node_ckey(s.lv[0].b->data, geom_of(t, t->height - 1), 0), &d);
		blkptr_pack(&d, &right);
		node_insert_at(rb->data, &t->node, 1, sepbuf[1], &d);
		rootp.aggr = node_aggr(t, rb->data);
		cache_put(t->cache, rb);
		t->root = rootp;
		t->height++;
	} else {
		t->root = s.lv[0].ptr;
	}
	reserve_put(tx, &res);
	spine_put(t, &s);
out_gen:
	if (!r)
		t->gen++;
	return r;

out_put:
	spine_put(t, &s);
	return r;
}

/*
 * How many of the @n sorted keys from @keys go straight into the leaf of @s (held): below
 * the leaf's upper bound (the next key of the lowest ancestor that has one), absent from
 * the leaf, each above the one before, at most its free slots (0: the first key does not
 * fit, or is present).
 */
static u32 leaf_run(struct btree *t, const struct spine *s, const u8 *keys, u32 n)
{
	const void *leaf = s->lv[s->depth - 1].b->data;
	unsigned nr = node_nr(leaf), room = t->leaf.cap - nr;
	const u8 *ub = NULL;
	u32 m = 0;

	for (int l = (int)s->depth - 2; l >= 0 && !ub; l--)
		if (s->lv[l].idx + 1 < node_nr(s->lv[l].b->data))
			ub = node_ckey(s->lv[l].b->data, &t->node, s->lv[l].idx + 1);
	for (; m < n && m < room; m++) {
		const u8 *k = keys + (size_t)m * t->leaf.ks;
		unsigned p = node_lower_bound(t, leaf, k);

		if ((ub && tkey_cmp(t, k, ub) >= 0) || (m && tkey_cmp(t, k, k - t->leaf.ks) <= 0))
			break; /* past the leaf, or out of order: the next descent takes it */
		if (p < nr && !tkey_cmp(t, node_ckey(leaf, &t->leaf, p), k))
			break;
	}
	return m;
}

/*
 * One descent of btree_insert_sorted: inserts the first of @keys and every following one
 * leaf_run admits into the same leaf, shadowing the path once.  Returns the number inserted
 * (>= 1) or a negative error (nothing changed).  A full leaf, or a first key present, goes
 * through btree_insert (which splits, or says -EEXIST).
 */
static int insert_leaf_run(struct btree *t, struct tx *tx, const u8 *keys, const u8 *vals, u32 n)
{
	struct reserve res;
	struct spine s;
	unsigned need = 0;
	u32 m;
	int r;

	if (!t->height)
		return btree_insert(t, tx, keys, vals, BTREE_NOOVERWRITE) ?: 1;
	r = spine_descend(t, &s, keys);
	if (r)
		return r;
	m = leaf_run(t, &s, keys, n);
	if (!m) {
		spine_put(t, &s);
		return btree_insert(t, tx, keys, vals, BTREE_NOOVERWRITE) ?: 1;
	}
	r = spine_check_births(t, tx, &s);
	for (unsigned l = 0; !r && l < s.depth; l++)
		need += s.lv[l].ptr.birth_txg != tx->txg;
	if (!r)
		r = reserve_get(tx, &res, need);
	if (r) {
		spine_put(t, &s);
		return r;
	}

	/* Phase two: nothing below can fail. */
	for (int l = (int)s.depth - 1; l >= 0; l--) {
		struct spine_level *lv = &s.lv[l];
		void *nd;

		make_writable(t, tx, lv, &res);
		nd = lv->b->data;
		if (l == (int)s.depth - 1) {
			for (u32 j = 0; j < m; j++) {
				const u8 *k = keys + (size_t)j * t->leaf.ks;

				node_insert_at(nd, &t->leaf, node_lower_bound(t, nd, k), k,
					       vals + (size_t)j * t->leaf.vs);
			}
		} else {
			node_set_child(nd, &t->node, lv->idx, &s.lv[l + 1].ptr);
			if (!lv->idx && tkey_cmp(t, keys, node_key(nd, &t->node, 0)) < 0)
				memcpy(node_key(nd, &t->node, 0), keys, t->node.ks);
		}
		spine_refresh_ptr(t, lv);
	}
	t->root = s.lv[0].ptr;
	t->gen++;
	reserve_put(tx, &res);
	spine_put(t, &s);
	return (int)m;
}

int btree_insert_sorted(struct btree *t, struct tx *tx, const void *keys, const void *values, u32 n,
			u32 *done)
{
	static const u8 no_values[1]; /* value size 0: nothing is read from it */
	const u8 *k = keys, *v = values ? values : no_values;

	VERIFY(tx->cache == t->cache && (values || !t->leaf.vs));
	for (*done = 0; *done < n;) {
		int r = insert_leaf_run(t, tx, k + (size_t)*done * t->leaf.ks,
					v + (size_t)*done * t->leaf.vs, n - *done);

		if (r < 0)
			return r;
		*done += (u32)r;
	}
	return 0;
}

/*----------------------------------------------------------------
 * Sealing
 *--------------------------------------------------------------*/

/*
 * Seals the unsealed node @p points to and everything unsealed below it, children first,
 * and stores its checksum in @p.  Only pointers born in the open txg with checksum 0 lead to
 * unsealed nodes (changing a node clears the checksum of the pointer to it).
 */
static int sync_node(struct btree *t, struct tx *tx, struct blkptr *p, unsigned level)
{
	struct cblock *b;
	int r;

	r = btree_read_node(t, p, level, &b);
	if (r)
		return r;
	for (unsigned i = 0; level && i < node_nr(b->data); i++) {
		struct blkptr c;

		node_child(b->data, &t->node, i, &c);
		if (c.birth_txg != tx->txg || c.csum)
			continue;
		r = sync_node(t, tx, &c, level - 1);
		if (r)
			goto out_put;
		node_set_child(b->data, &t->node, i, &c);
	}
	p->csum = cache_seal(t->cache, b, tx->txg);
out_put:
	cache_put(t->cache, b);
	return r;
}

int btree_sync(struct btree *t, struct tx *tx)
{
	VERIFY(tx->cache == t->cache);
	if (!t->height || t->root.birth_txg != tx->txg || t->root.csum)
		return 0;
	return sync_node(t, tx, &t->root, t->height - 1);
}
