// SPDX-License-Identifier: GPL-2.0-only
/*
 * treewalk.c - the type-blind B+tree walk (treewalk.h).
 *
 * A node's layout follows from its header: capacity = payload / (key_size + value_size),
 * keys first, values after all key slots, internal values are struct blkptr_disk.  The walk
 * trusts none of it before checking: sizes non-zero and bounded, nr_entries within
 * capacity, internal nodes with blkptr-sized values and at least one child, keys strictly
 * increasing under the recorded order, the level matching the magic and decreasing by one
 * per step.  Recursion depth is bounded by BTREE_MAX_DEPTH, so a cycle of pointers in a
 * corrupt store ends as -EILSEQ rather than a stack overflow (a cycle needs a child whose
 * level is not below its parent's, which is refused).
 */
#include "pdata/treewalk.h"
#include <string.h>
#include "blk/format.h"

/* Key orders as btree.h defines them (recorded in every node). */
#define ORDER_MEMCMP		  1
#define ORDER_LE64		  2

#define why_set(why, whylen, ...) why_printf(why, whylen, -EILSEQ, __VA_ARGS__)

static int cmp_key(const u8 *a, const u8 *b, unsigned size, unsigned order)
{
	if (order == ORDER_LE64) {
		for (unsigned i = 0; i < size; i += 8) {
			u64 x, y;

			memcpy(&x, a + i, 8);
			memcpy(&y, b + i, 8);
			x = le64toh(x);
			y = le64toh(y);
			if (x != y)
				return x < y ? -1 : 1;
		}
		return 0;
	}
	return memcmp(a, b, size);
}

static int node_validate(const void *block, bool leaf, char *why, size_t whylen)
{
	const struct btree_node_disk *n = block;
	unsigned ks = le16_to_cpu(n->key_size), vs = le16_to_cpu(n->value_size);
	unsigned nr = le16_to_cpu(n->nr_entries), cap;
	const u8 *keys = n->payload;

	if (n->reserved)
		return why_set(why, whylen, "reserved field set");
	if (leaf != (n->level == 0))
		return why_set(why, whylen, "level %u in a %s", n->level, leaf ? "leaf" : "node");
	if (n->level >= BTREE_MAX_DEPTH)
		return why_set(why, whylen, "level %u", n->level);
	if (!ks || ks > 128 || (!leaf && vs != sizeof(struct blkptr_disk)) || vs > 512)
		return why_set(why, whylen, "key size %u, value size %u", ks, vs);
	if (n->key_order != ORDER_MEMCMP && n->key_order != ORDER_LE64)
		return why_set(why, whylen, "key order %u", n->key_order);
	if (n->key_order == ORDER_LE64 && ks % 8)
		return why_set(why, whylen, "le64 key of %u bytes", ks);
	cap = BTREE_NODE_PAYLOAD / (ks + vs);
	if (nr > cap || (!leaf && nr == 0))
		return why_set(why, whylen, "%u entries, capacity %u", nr, cap);
	for (unsigned i = 1; i < nr; i++)
		if (cmp_key(keys + (i - 1) * ks, keys + i * ks, ks, n->key_order) >= 0)
			return why_set(why, whylen, "keys %u and %u out of order", i - 1, i);
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

const struct block_type treewalk_leaf_type = {
	.name = "btree leaf",
	.magic = MAGIC_BTREE_LEAF,
	.validate = leaf_validate,
};

const struct block_type treewalk_node_type = {
	.name = "btree node",
	.magic = MAGIC_BTREE_NODE,
	.validate = internal_validate,
};

struct walk_ctx {
	struct bdev *b;
	struct treewalk *w;
	char *why;
	size_t whylen;
	bool stopping; /* w->damage asked to stop: pass its return up unchanged */
	void *bufs[BTREE_MAX_DEPTH];
};

static bool is_damage(int err)
{
	return err == -EILSEQ || err == -ENOTBLK || err == -ESTALE;
}

static int walk_node(struct walk_ctx *c, const struct blkptr *p, int level, unsigned depth);

/* Hands a damaged subtree to w->damage, if there is one, and says whether to go on. */
static int walk_report(struct walk_ctx *c, u64 blocknr, int err)
{
	if (!is_damage(err) || !c->w->damage || c->stopping)
		return err;
	c->w->damaged++;
	err = c->w->damage(c->w->arg, blocknr, err, c->why ? c->why : "");
	if (err)
		c->stopping = true;
	return err;
}

/* Reads and checks the child @p expected at @level (-1: the root, any level). */
static int walk_node(struct walk_ctx *c, const struct blkptr *p, int level, unsigned depth)
{
	const struct block_type *type;
	const struct btree_node_disk *n;
	struct treewalk_node tn;
	u8 *buf;
	u32 magic;
	int err;

	if (depth >= BTREE_MAX_DEPTH)
		return why_set(c->why, c->whylen, "tree deeper than %d", BTREE_MAX_DEPTH);
	if (p->blocknr >= c->b->size / DDSNAP_BLOCK_SIZE)
		return why_set(c->why, c->whylen, "pointer to block %llu beyond the device",
			       (unsigned long long)p->blocknr);
	if (!c->bufs[depth] && posix_memalign(&c->bufs[depth], BDEV_ALIGN, DDSNAP_BLOCK_SIZE))
		return -ENOMEM;
	buf = c->bufs[depth];
	err = bdev_read(c->b, buf, DDSNAP_BLOCK_SIZE, p->blocknr * DDSNAP_BLOCK_SIZE);
	if (err)
		return err;
	magic = le32_to_cpu(((struct block_header_disk *)buf)->magic);
	type = magic == MAGIC_BTREE_NODE ? &treewalk_node_type : &treewalk_leaf_type;
	err = block_validate(buf, type, p->blocknr, c->why, c->whylen);
	if (err)
		return err;
	n = (const void *)buf;
	if (block_txg(buf) != p->birth_txg) {
		why_set(c->why, c->whylen, "block %llu: txg %llu, pointer expects %llu",
			(unsigned long long)p->blocknr, (unsigned long long)block_txg(buf),
			(unsigned long long)p->birth_txg);
		return -ESTALE;
	}
	if (block_csum(buf) != p->csum)
		return why_set(c->why, c->whylen, "block %llu: checksum 0x%08x, pointer has 0x%08x",
			       (unsigned long long)p->blocknr, block_csum(buf), p->csum);
	if (level >= 0 && n->level != (unsigned)level)
		return why_set(c->why, c->whylen, "block %llu: level %u, expected %d",
			       (unsigned long long)p->blocknr, n->level, level);
	tn = (struct treewalk_node){
		.blocknr = p->blocknr,
		.txg = p->birth_txg,
		.csum = p->csum,
		.level = n->level,
		.nr_entries = le16_to_cpu(n->nr_entries),
		.key_size = le16_to_cpu(n->key_size),
		.value_size = le16_to_cpu(n->value_size),
		.block = buf,
	};
	c->w->nodes++;
	if (depth + 1 > c->w->height)
		c->w->height = depth + 1;
	if (c->w->node) {
		err = c->w->node(c->w->arg, &tn);
		if (err)
			return err;
	}
	if (tn.level == 0) {
		c->w->leaves++;
		c->w->entries += tn.nr_entries;
		return 0;
	}
	{
		unsigned cap = BTREE_NODE_PAYLOAD / (tn.key_size + tn.value_size);
		const struct blkptr_disk *ptrs =
			(const void *)(n->payload + (size_t)cap * tn.key_size);

		for (unsigned i = 0; i < tn.nr_entries; i++) {
			struct blkptr child;

			/* The buffer is reused by deeper levels only: this level's stays valid. */
			blkptr_unpack(&child, &ptrs[i]);
			err = walk_report(c, child.blocknr,
					  walk_node(c, &child, (int)tn.level - 1, depth + 1));
			if (err)
				return err;
		}
	}
	return 0;
}

int treewalk(struct bdev *b, const struct blkptr *root, struct treewalk *w, char *why,
	     size_t whylen)
{
	struct walk_ctx c = {.b = b, .w = w, .why = why, .whylen = whylen};
	int err = 0;

	w->nodes = w->leaves = w->entries = 0;
	w->height = 0;
	if (why && whylen)
		why[0] = '\0';
	if (root->blocknr)
		err = walk_report(&c, root->blocknr, walk_node(&c, root, -1, 0));
	for (int i = 0; i < BTREE_MAX_DEPTH; i++)
		free(c.bufs[i]);
	return err;
}
