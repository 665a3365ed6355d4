/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * btree_internal.h - for the btree*.c files only: the handle, node accessors, the spine
 * (a held root-to-leaf path) and the block reservation every modification makes first.
 */
#ifndef DDSNAP_BTREE_INTERNAL_H
#define DDSNAP_BTREE_INTERNAL_H

#include "pdata/btree.h"
#include <string.h>

/*
 * Smallest node capacity accepted: a split of a full node must leave two nodes that are
 * each at least half full and a merge must fit, which needs room for four entries.
 */
#define BTREE_MIN_CAPACITY 4

/* Most blocks one modification can need: a shadow and a split (or a borrow) per level. */
#define BTREE_MAX_RESERVE (2 * BTREE_MAX_DEPTH + 1)

/* How a node of one kind (leaf or internal) is laid out for this tree. */
struct node_geom {
	u16 ks, vs; /* key and value size */
	u16 cap;    /* entries per node */
	u16 min;    /* least entries of a non-root node: cap / 2 */
};

struct btree {
	const struct btree_type *type;
	struct cache *cache;
	struct blkptr root;
	unsigned height; /* 0: empty; the root's level is height - 1 */
	u64 gen;
	struct node_geom leaf, node;
};

/*----------------------------------------------------------------*/

static inline struct btree_node_disk *bn(void *data)
{
	return data;
}

static inline const struct btree_node_disk *cbn(const void *data)
{
	return data;
}

static inline unsigned node_nr(const void *n)
{
	return le16_to_cpu(cbn(n)->nr_entries);
}

static inline void node_set_nr(void *n, unsigned nr)
{
	bn(n)->nr_entries = cpu_to_le16((u16)nr);
}

static inline unsigned node_level(const void *n)
{
	return cbn(n)->level;
}

static inline const struct node_geom *geom_of(const struct btree *t, unsigned level)
{
	return level ? &t->node : &t->leaf;
}

static inline u8 *node_key(void *n, const struct node_geom *g, unsigned i)
{
	return bn(n)->payload + (size_t)i * g->ks;
}

static inline const u8 *node_ckey(const void *n, const struct node_geom *g, unsigned i)
{
	return cbn(n)->payload + (size_t)i * g->ks;
}

static inline u8 *node_val(void *n, const struct node_geom *g, unsigned i)
{
	return bn(n)->payload + (size_t)g->cap * g->ks + (size_t)i * g->vs;
}

static inline const u8 *node_cval(const void *n, const struct node_geom *g, unsigned i)
{
	return cbn(n)->payload + (size_t)g->cap * g->ks + (size_t)i * g->vs;
}

/* Child pointer @i of an internal node (values may be unaligned for odd key sizes). */
static inline void node_child(const void *n, const struct node_geom *g, unsigned i,
			      struct blkptr *p)
{
	struct blkptr_disk d;

	memcpy(&d, node_cval(n, g, i), sizeof(d));
	blkptr_unpack(p, &d);
}

static inline void node_set_child(void *n, const struct node_geom *g, unsigned i,
				  const struct blkptr *p)
{
	struct blkptr_disk d;

	blkptr_pack(&d, p);
	memcpy(node_val(n, g, i), &d, sizeof(d));
}

static inline int key_cmp_raw(enum btree_key_order order, unsigned ks, const void *a, const void *b)
{
	if (order == BTREE_KEY_LE64) {
		for (unsigned i = 0; i < ks / 8; i++) {
			u64 x = btree_get_le64(a, i), y = btree_get_le64(b, i);

			if (x != y)
				return x < y ? -1 : 1;
		}
		return 0;
	}
	return memcmp(a, b, ks);
}

static inline int tkey_cmp(const struct btree *t, const void *a, const void *b)
{
	return key_cmp_raw(t->type->order, t->type->key_size, a, b);
}

/* The first entry of @n whose key is >= @key (node_nr(n) if none). O(log fanout). */
unsigned node_lower_bound(const struct btree *t, const void *n, const void *key);

/* The child of internal node @n whose range holds @key (0 if @key is below key[0]). */
unsigned node_child_index(const struct btree *t, const void *n, const void *key);

/* The aggregate of a node: the max over its entries (leaf) or child pointers. O(fanout). */
u64 node_aggr(const struct btree *t, const void *n);

/* Entry moves inside and between nodes of the same level; they keep unused slots zero. */
void node_insert_at(void *n, const struct node_geom *g, unsigned i, const void *key,
		    const void *val);
void node_remove_at(void *n, const struct node_geom *g, unsigned i);
/* Copies @count entries from @src[@si] over @dst[@di] (no shifting; nr is the caller's). */
void node_copy(void *dst, unsigned di, const void *src, unsigned si, unsigned count,
	       const struct node_geom *g);
/* Shifts entries [@from, nr) of @n by @delta slots (up if positive), nr unchanged. */
void node_shift(void *n, const struct node_geom *g, unsigned from, int delta);
/* Zeroes the key and value slots [@from, cap). */
void node_zero_from(void *n, const struct node_geom *g, unsigned from);

/*
 * Reads the node @p points to, expected at @level, checking everything a pointer can
 * vouch for (birth txg, checksum, level, sizes, order).  Returns 0 and a referenced block,
 * or -EILSEQ/-ENOTBLK/-ESTALE/-EIO (logged with the reason).
 */
int btree_read_node(struct btree *t, const struct blkptr *p, unsigned level, struct cblock **out);

/*----------------------------------------------------------------
 * Spines and reservations (used by insert and delete)
 *--------------------------------------------------------------*/

struct spine_level {
	struct cblock *b;  /* referenced; writable once made so */
	struct blkptr ptr; /* the pointer to it, updated as it is shadowed and changed */
	unsigned idx;	   /* child taken (internal) or entry position (leaf) */
};

struct spine {
	unsigned depth; /* levels held: lv[0] is the root, lv[depth - 1] the leaf */
	struct spine_level lv[BTREE_MAX_DEPTH];
};

/* Descends to the leaf for @key, holding every node.  0 or a read error (nothing held). */
int spine_descend(struct btree *t, struct spine *s, const void *key);
void spine_put(struct btree *t, struct spine *s);
/*
 * Positions a held spine on the entry btree_find(@key, @how) names (the leaf's idx).
 * 0 (spine held), -ENODATA or a read error (nothing held).
 */
int spine_locate(struct btree *t, const void *key, enum btree_seek how, struct spine *s);

struct reserve {
	unsigned n, used;
	u64 blocknr[BTREE_MAX_RESERVE];
};

/* Allocates @n blocks up front.  0, or -ENOSPC with nothing kept. */
int reserve_get(struct tx *tx, struct reserve *r, unsigned n);
u64 reserve_take(struct reserve *r);
/* Returns the blocks not taken (there should be none). */
void reserve_put(struct tx *tx, struct reserve *r);

/*
 * Makes @lv's node changeable in @tx: born in the open txg, it is dirtied in place;
 * otherwise it is shadowed into a reserved block and the old block freed.  Either way its
 * header checksum is zeroed (unsealed) and lv->ptr names the new block.
 */
void make_writable(struct btree *t, struct tx *tx, struct spine_level *lv, struct reserve *r);

/* A fresh node at a reserved block, level @level, no entries; referenced and dirty. */
struct cblock *node_new(struct btree *t, struct tx *tx, struct reserve *r, unsigned level,
			struct blkptr *ptr);

/* Drops @b (referenced) and frees its block. */
void node_free(struct btree *t, struct tx *tx, struct cblock *b, const struct blkptr *ptr);

/* -EILSEQ if a spine node claims a birth after @tx's open txg. */
int spine_check_births(struct btree *t, struct tx *tx, const struct spine *s);

/* Recomputes @lv->ptr's aggregate from its node and clears its checksum (unsealed). */
void spine_refresh_ptr(struct btree *t, struct spine_level *lv);

#endif
