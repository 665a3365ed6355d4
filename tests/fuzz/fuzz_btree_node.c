// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_btree_node.c - libFuzzer target for the B+tree node validators and the read path
 * that trusts what they accept.
 *
 * Input: byte 0 selects the mode, the rest is the node (zero-padded or cut to
 * DDSNAP_BLOCK_SIZE).  Bit 0 of the mode picks the internal-node validator instead of the
 * leaf one.  The validator runs on the raw bytes; it must return 0 or -EILSEQ with a
 * NUL-terminated reason.  When the node validates and bit 1 is set, it is sealed at block 1
 * of a small RAM device and opened as the root of a tree whose type is read from the node,
 * then searched, iterated, walked and verified: none of that may crash or fail with an
 * error other than the documented ones (children of an internal node point at garbage).
 */
#include <string.h>
#include "pdata/btree.h"
#include "blk/bdev.h"
#include "blk/cache.h"

#define FUZZ_BLOCKS 16

static u64 fuzz_aggr(const void *key, const void *value)
{
	return ((const u8 *)key)[0];
}

static bool documented(int r)
{
	return r == 0 || r == -ENODATA || r == -EILSEQ || r == -ENOTBLK || r == -ESTALE;
}

static void exercise(const u8 *node, bool internal)
{
	static struct bdev *bdev;
	static struct cache *cache;
	const struct btree_node_disk *n = (const void *)node;
	struct btree_type type = {"fuzz", 0, 0, BTREE_KEY_MEMCMP, fuzz_aggr};
	u8 block[DDSNAP_BLOCK_SIZE] __attribute__((aligned(16)));
	u8 key[BTREE_MAX_KEY_SIZE] = {0}, ko[BTREE_MAX_KEY_SIZE], vo[BTREE_MAX_VALUE_SIZE];
	struct btree_cursor c;
	struct btree_walk w = {.flags = BTREE_WALK_AGGR, .min_aggr = 3};
	struct blkptr root;
	struct btree *t;
	u64 txg = le64_to_cpu(n->hdr.txg);
	int r;

	if (!bdev) {
		bdev = bdev_ram_create(FUZZ_BLOCKS * DDSNAP_BLOCK_SIZE);
		cache = cache_create(bdev, 0);
	}
	type.key_size = le16_to_cpu(n->key_size);
	type.value_size = internal ? 8 : le16_to_cpu(n->value_size);
	type.order = (enum btree_key_order)n->key_order;
	memcpy(block, node, sizeof(block));
	root.blocknr = 1;
	root.birth_txg = txg ? txg : 1;
	root.aggr = 0;
	root.csum = block_seal(block, internal ? &btree_node_block_type : &btree_leaf_block_type, 1,
			       root.birth_txg);
	if (bdev_write(bdev, block, sizeof(block), DDSNAP_BLOCK_SIZE))
		abort();
	cache_forget(cache, 1);
	r = btree_open(&type, cache, &root, &t);
	if (!documented(r) && r != -EINVAL)
		abort();
	if (r)
		return;
	for (int how = BTREE_EQ; how <= BTREE_LAST; how++) {
		memcpy(key, node + BTREE_NODE_HEADER_SIZE, MIN(type.key_size, 64));
		key[0] += (u8)how;
		if (!documented(btree_find(t, key, (enum btree_seek)how, ko, vo)))
			abort();
	}
	btree_cursor_init(&c, t);
	for (r = btree_cursor_seek(&c, NULL, BTREE_FIRST); !r; r = btree_cursor_next(&c))
		;
	if (!documented(r))
		abort();
	btree_cursor_fini(&c);
	if (!documented(btree_walk(t, &w)))
		abort();
	if (!documented(btree_verify(t, NULL, NULL, NULL, NULL, 0)))
		abort();
	btree_close(t);
	cache_forget(cache, 1);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static u8 block[DDSNAP_BLOCK_SIZE] __attribute__((aligned(4096)));
	const struct block_type *type;
	char why[96];
	u8 mode;
	int r;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	memset(block, 0, sizeof(block));
	memcpy(block, data, MIN(size, sizeof(block)));
	type = mode & 1 ? &btree_node_block_type : &btree_leaf_block_type;
	memset(why, 'x', sizeof(why));
	why[0] = '\0';
	r = type->validate(block, why, sizeof(why));
	if (r != 0 && r != -EILSEQ)
		abort();
	if (!memchr(why, '\0', sizeof(why)))
		abort();
	if (!r && (mode & 2))
		exercise(block, mode & 1);
	return 0;
}
