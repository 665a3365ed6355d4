// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_block.c - libFuzzer target for block_validate() at the header level.
 *
 * Input: byte 0 selects a mode, bytes 1..8 the address the block is "read from", the rest is
 * the block (zero-padded or cut to DDSNAP_BLOCK_SIZE).  In mode bit 0 the input is sealed
 * first, so the fuzzer gets past the checksum and exercises the address check, the reserved
 * field and the structure validator; otherwise the raw bytes are validated as they are.
 * Checks: no crash or sanitizer report, the result is one of 0/-EILSEQ/-ENOTBLK, the reason
 * is NUL-terminated, and a block that validates also re-seals to the same checksum.
 */
#include <string.h>
#include "blk/block.h"

/* A structure validator that reads a count and bounds it, like the real ones. */
static int fuzz_validate(const void *block, char *why, size_t whylen)
{
	const u8 *p = (const u8 *)block + sizeof(struct block_header_disk);
	u32 n = (u32)p[0] | (u32)p[1] << 8;

	if (n > (DDSNAP_BLOCK_SIZE - sizeof(struct block_header_disk) - 2) / 8) {
		snprintf(why, whylen, "count %u too large", n);
		return -EILSEQ;
	}
	return 0;
}

static const struct block_type fuzz_types[] = {
	{.name = "fuzz plain", .magic = MAGIC_LABEL, .validate = NULL},
	{.name = "fuzz counted", .magic = MAGIC_BTREE_LEAF, .validate = fuzz_validate},
};

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static u8 block[DDSNAP_BLOCK_SIZE] __attribute__((aligned(4096)));
	char why[64];
	u8 mode;
	u64 blocknr = 0;
	const struct block_type *type;
	int r;

	if (size < 9)
		return 0;
	mode = data[0];
	memcpy(&blocknr, data + 1, 8);
	data += 9;
	size -= 9;
	memset(block, 0, sizeof(block));
	memcpy(block, data, MIN(size, sizeof(block)));
	type = &fuzz_types[(mode >> 1) & 1];
	if (mode & 1)
		block_seal(block, type, (mode & 4) ? blocknr : blocknr ^ 1, block_txg(block));
	memset(why, 'x', sizeof(why));
	r = block_validate(block, type, blocknr, why, sizeof(why));
	if (r != 0 && r != -EILSEQ && r != -ENOTBLK)
		abort();
	if (!memchr(why, '\0', sizeof(why)))
		abort();
	if (r == 0) {
		u32 csum = block_csum(block);

		if (block_seal(block, type, blocknr, block_txg(block)) != csum)
			abort();
	}
	return 0;
}
