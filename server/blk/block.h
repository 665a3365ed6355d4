/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * block.h - sealing and validating self-identifying metadata blocks.
 *
 * Each metadata block type is described by a struct block_type that its owning module
 * defines (btree.c defines the node types, space_map.c its log block, ...).  The cache
 * validates every block it reads with block_validate() before anyone sees it, so no module
 * ever looks at an unchecked block.
 *
 * Validation order: magic (-EILSEQ), checksum (-EILSEQ), own address (-ENOTBLK), then the
 * type's structure validator (-EILSEQ), which checks counts, lengths and ordering so a block
 * with a valid checksum but impossible contents is still refused (DESIGN.md 8.6).
 */
#ifndef DDSNAP_BLOCK_H
#define DDSNAP_BLOCK_H

#include "util/base.h"
#include "blk/format.h"

struct block_type {
	const char *name; /* "btree leaf", for messages */
	u32 magic;	  /* enum ddsnap_magic; also the crc32c seed */
	/*
	 * Checks the structure of a block whose header already validated.  Returns 0 or
	 * -EILSEQ with a short reason in @why (at most @whylen bytes, NUL-terminated).
	 * May be NULL when the header is all there is to check.
	 */
	int (*validate)(const void *block, char *why, size_t whylen);
};

/*
 * Fills in the header (magic from @type, @blocknr, @txg, keeping flags) and the checksum.
 * Returns the checksum, which parents record in their block pointers. O(block size).
 */
u32 block_seal(void *block, const struct block_type *type, u64 blocknr, u64 txg);

/*
 * Validates @block as read from address @blocknr.  Returns 0, -EILSEQ (bad magic, checksum
 * or structure) or -ENOTBLK (a valid block of this type that belongs elsewhere), with the
 * reason in @why.  Never trusts any field before checking it. O(block size).
 */
int block_validate(const void *block, const struct block_type *type, u64 blocknr, char *why,
		   size_t whylen);

/* Header accessors for validated blocks. */
u64 block_txg(const void *block);
u32 block_csum(const void *block);
u32 block_flags(const void *block);
void block_set_flags(void *block, u32 flags);

/* Pack/unpack of block pointers. */
struct blkptr {
	u64 blocknr;
	u64 birth_txg;
	u64 aggr;
	u32 csum;
};
void blkptr_pack(struct blkptr_disk *d, const struct blkptr *p);
void blkptr_unpack(struct blkptr *p, const struct blkptr_disk *d);

#endif
