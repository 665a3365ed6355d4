/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * testblk.h - a small metadata block type for the substrate's unit tests: a header, a count
 * and a sorted array of u64 items.  Its structure validator refuses a count beyond the
 * block's capacity and items out of order, so tests can build "valid checksum, impossible
 * contents" blocks.
 */
#ifndef DDSNAP_TESTBLK_H
#define DDSNAP_TESTBLK_H

#include "blk/block.h"

#define TESTBLK_MAGIC 0x7e57b10c
#define TESTBLK_CAP   ((DDSNAP_BLOCK_SIZE - sizeof(struct block_header_disk) - 8) / 8)

struct testblk_disk {
	struct block_header_disk hdr;
	__le32 count;
	__le32 pad;
	__le64 items[TESTBLK_CAP];
};
static_assert(sizeof(struct testblk_disk) == DDSNAP_BLOCK_SIZE, "testblk size");

extern const struct block_type testblk_type;
/* Another type with the same layout and a different magic. */
extern const struct block_type testblk_other_type;

/* Fills @block with @count items starting at @base (ascending), header left for sealing. */
void testblk_fill(void *block, u32 count, u64 base);
/* Returns item 0, or ~0 if empty. */
u64 testblk_first(const void *block);

#endif
