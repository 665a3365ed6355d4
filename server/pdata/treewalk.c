// SPDX-License-Identifier: GPL-2.0-only
/*
 * treewalk.c - the type-blind B+tree walk (treewalk.h).
 *
 * A node's layout follows from its header: capacity = payload / (key_size + value_size),
 * keys first, values after all key slots, internal values are struct blkptr_disk.  The walk
 * trusts none of it before checking: every node passes the B+tree's own block validation
 * (btree_leaf_block_type, btree_node_block_type: sizes, capacity, entry counts, key order,
 * zeroed slack, child pointers no younger than their node), and the level must match the
 * magic and decrease by one per step.  Recursion depth is bounded by BTREE_MAX_DEPTH, so a
 * cycle of pointers in a corrupt store ends as -EILSEQ rather than a stack overflow (a cycle
 * needs a child whose level is not below its parent's, which is refused).
 */
#include "pdata/treewalk.h"
#include <string.h>
#include "blk/format.h"

#define why_set(why, whylen, ...) why_printf(why, whylen, -EILSEQ, __VA_ARGS__)

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
	type = magic == MAGIC_BTREE_NODE ? &btree_node_block_type : &btree_leaf_block_type;
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
