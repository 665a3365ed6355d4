// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_space_map.c - libFuzzer target for the space map and metaslab table block
 * validators, the space map phys decoder, and the space map loader that trusts them.
 *
 * Input: byte 0 selects the mode, the rest is the payload.
 *   mode % 4 == 0: the payload is one space map block (zero-padded or cut), sealed so its
 *                  checksum is valid; the validator must return 0 or -EILSEQ with a reason,
 *                  and a block it accepts must have every record inside its metaslab.
 *   mode % 4 == 1: the same for a metaslab table block.
 *   mode % 4 == 2: the payload is a struct space_map_phys_disk; what unpacks must pack back
 *                  to the same bytes.
 *   mode % 4 == 3: the payload is up to SM_FUZZ_CHAIN space map blocks, chained (the harness
 *                  links them and seals them at blocks 1..n of a RAM device so that only
 *                  their contents are fuzzed) and loaded as one log; the load must succeed
 *                  with a well-formed tree matching the table's counts, or fail with a
 *                  documented error.
 */
#include <string.h>
#include "blk/bdev.h"
#include "blk/cache.h"
#include "pdata/metaslab.h"
#include "pdata/space_map.h"

#define SM_FUZZ_CHAIN 4
#define SM_FUZZ_TXG   5

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

static void check_validator(const u8 *data, size_t size, const struct block_type *type)
{
	static u8 block[DDSNAP_BLOCK_SIZE] __attribute__((aligned(16)));
	char why[128];
	int r;

	memset(block, 0, sizeof(block));
	memcpy(block, data, MIN(size, sizeof(block)));
	block_seal(block, type, 3, SM_FUZZ_TXG);
	why[0] = 0;
	r = block_validate(block, type, 3, why, sizeof(why));
	if (r != 0 && (r != -EILSEQ || !why[0] || !memchr(why, 0, sizeof(why))))
		__builtin_trap();
	if (r == 0 && type == &space_map_block_type) {
		const struct space_map_block_disk *d = (const void *)block;
		u64 ms_size = le64_to_cpu(d->ms_size);

		for (u32 i = 0; i < le32_to_cpu(d->nr_recs); i++) {
			u64 start = le64_to_cpu(d->recs[i].start),
			    run = le32_to_cpu(d->recs[i].run);

			if (!run || start >= ms_size || run > ms_size - start)
				__builtin_trap();
		}
	}
}

static void check_phys(const u8 *data, size_t size)
{
	struct space_map_phys_disk d, d2;
	struct space_map_phys p;

	if (size < sizeof(d))
		return;
	memcpy(&d, data, sizeof(d));
	if (space_map_phys_unpack(&p, &d))
		return;
	space_map_phys_pack(&d2, &p);
	if (memcmp(&d, &d2, sizeof(d)))
		__builtin_trap();
}

static void check_load(const u8 *data, size_t size)
{
	static struct bdev *bdev;
	static u8 *block;
	struct space_map_phys phys = {0};
	struct range_tree *rt;
	struct space_map *sm;
	struct cache *cache;
	u64 ms_size = 1 + (size ? data[0] : 0) * 16, n;
	int r;

	if (!bdev) {
		bdev = bdev_ram_create((SM_FUZZ_CHAIN + 2) * DDSNAP_BLOCK_SIZE);
		if (posix_memalign((void **)&block, BDEV_ALIGN, DDSNAP_BLOCK_SIZE))
			abort();
	}
	if (size)
		data++, size--;
	n = MIN((u64)SM_FUZZ_CHAIN, DIV_ROUND_UP(size, DDSNAP_BLOCK_SIZE - 64));
	for (u64 i = 0; i < n; i++) {
		struct space_map_block_disk *d = (void *)block;
		size_t off = i * (DDSNAP_BLOCK_SIZE - 64), len = MIN(size - off, (size_t)4032);

		memset(block, 0, DDSNAP_BLOCK_SIZE);
		memcpy(block + 64, data + off, len);
		blkptr_pack(&d->prev, &phys.tail);
		d->ms_start = cpu_to_le64(1000);
		d->ms_size = cpu_to_le64(ms_size);
		phys.tail.blocknr = i + 1;
		phys.tail.birth_txg = SM_FUZZ_TXG;
		phys.tail.csum = block_seal(block, &space_map_block_type, i + 1, SM_FUZZ_TXG);
		phys.nr_blocks++;
		phys.nr_recs += le32_to_cpu(d->nr_recs);
		/* What the writer would have counted; the load checks it against the replay. */
		for (u32 j = 0; j < MIN(le32_to_cpu(d->nr_recs), SPACE_MAP_RECS_PER_BLOCK); j++)
			phys.alloc += d->recs[j].type == SPACE_MAP_ALLOC
					      ? le32_to_cpu(d->recs[j].run)
					      : -(u64)le32_to_cpu(d->recs[j].run);
		if (bdev_write(bdev, block, DDSNAP_BLOCK_SIZE, (i + 1) * DDSNAP_BLOCK_SIZE))
			abort();
	}
	cache = cache_create(bdev, 0);
	cache_set_synced_txg(cache, SM_FUZZ_TXG);
	sm = space_map_open(cache, 1000, ms_size, &phys);
	rt = range_tree_create();
	r = space_map_load(sm, rt, NULL, 0);
	if (r == 0 && (range_tree_verify(rt) || ms_size - range_tree_space(rt) != phys.alloc))
		__builtin_trap();
	if (r != 0 && (r != -EILSEQ || range_tree_space(rt)))
		__builtin_trap();
	range_tree_destroy(rt);
	space_map_close(sm);
	cache_destroy(cache);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		check_validator(data + 1, size - 1, &space_map_block_type);
		break;
	case 1:
		check_validator(data + 1, size - 1, &metaslab_table_type);
		break;
	case 2:
		check_phys(data + 1, size - 1);
		break;
	default:
		check_load(data + 1, size - 1);
		break;
	}
	return 0;
}
