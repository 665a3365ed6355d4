// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_store_blocks.c - libFuzzer target for the store's block validators: the label, the
 * uberblock, and the type-blind B+tree node checks of treewalk (leaf and internal).
 *
 * Input: byte 0 picks the validator (low 2 bits) and whether to seal the block first (bit 2,
 * so the fuzzer gets past the checksum into the structure checks), bytes 1..8 the address,
 * the rest the block.  Checks: no crash or sanitizer report, only 0/-EILSEQ/-ENOTBLK, and a
 * label or uberblock that validates unpacks and packs back to the same bytes.
 */
#include <string.h>
#include "blk/block.h"
#include "store/label.h"
#include "pdata/treewalk.h"
#include "store/uberblock.h"

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static u8 block[DDSNAP_BLOCK_SIZE] __attribute__((aligned(4096)));
	static u8 again[DDSNAP_BLOCK_SIZE] __attribute__((aligned(4096)));
	const struct block_type *types[] = {&label_block_type, &uberblock_block_type,
					    &btree_leaf_block_type, &btree_node_block_type};
	const struct block_type *type;
	char why[128];
	u64 blocknr = 0;
	int r;

	if (size < 9)
		return 0;
	type = types[data[0] & 3];
	memcpy(&blocknr, data + 1, 8);
	memset(block, 0, sizeof(block));
	memcpy(block, data + 9, MIN(size - 9, sizeof(block)));
	if (data[0] & 4)
		block_seal(block, type, blocknr, block_txg(block));
	r = block_validate(block, type, blocknr, why, sizeof(why));
	if (r != 0 && r != -EILSEQ && r != -ENOTBLK)
		abort();
	if (!memchr(why, '\0', sizeof(why)))
		abort();
	if (r)
		return 0;
	memcpy(again, block, sizeof(again));
	if (type == &label_block_type) {
		struct label l;

		label_unpack(&l, (const void *)block);
		label_pack((void *)again, &l);
	} else if (type == &uberblock_block_type) {
		struct uberblock ub;

		uberblock_unpack(&ub, (const void *)block);
		uberblock_pack((void *)again, &ub);
	}
	/* Everything a validated block holds is in the in-core struct (reserved bytes are 0). */
	if (memcmp(again + sizeof(struct block_header_disk),
		   block + sizeof(struct block_header_disk),
		   sizeof(block) - sizeof(struct block_header_disk)))
		abort();
	return 0;
}
