// SPDX-License-Identifier: GPL-2.0-only
/*
 * block.c - sealing and validating self-identifying metadata blocks.
 *
 * Every metadata block starts with struct block_header_disk.  Sealing stamps the type's
 * magic, the block's own address and the txg writing it, then the checksum: crc32c seeded
 * with the magic over the whole block, the csum field counted as zero.  The seed makes a
 * block of one type fail the checksum when read as another even if the magic were forged;
 * the address catches misdirected writes (a valid block written to the wrong place, or read
 * from the wrong place); the txg, compared by the cache against the parent's block pointer,
 * catches lost writes (the old version still sitting at the address).
 *
 * Validation never trusts a field before it is checked, in this order: magic, checksum,
 * address, reserved header bits, then the type's own structure validator.  Nothing here
 * keeps state, so every function is thread-safe.
 */
#include "blk/block.h"
#include <string.h>
#include "util/crc32c.h"

static_assert(DDSNAP_BLOCK_SIZE % 512 == 0, "blocks are whole sectors");

static struct block_header_disk *hdr(void *block)
{
	return block;
}

static const struct block_header_disk *chdr(const void *block)
{
	return block;
}

/* The checksum of @block as stored, computed with the csum field taken as zero. */
static u32 block_compute_csum(const void *block, u32 seed)
{
	static const u8 zero[sizeof(((struct block_header_disk *)0)->csum)];
	u32 crc = crc32c(seed, zero, sizeof(zero));

	return crc32c(crc, (const u8 *)block + sizeof(zero), DDSNAP_BLOCK_SIZE - sizeof(zero));
}

u32 block_seal(void *block, const struct block_type *type, u64 blocknr, u64 txg)
{
	struct block_header_disk *h = hdr(block);
	u32 csum;

	h->magic = cpu_to_le32(type->magic);
	h->blocknr = cpu_to_le64(blocknr);
	h->txg = cpu_to_le64(txg);
	h->reserved = 0;
	csum = block_compute_csum(block, type->magic);
	h->csum = cpu_to_le32(csum);
	return csum;
}

#define why_fail(why, whylen, ...) why_printf(why, whylen, -EILSEQ, __VA_ARGS__)

int block_validate(const void *block, const struct block_type *type, u64 blocknr, char *why,
		   size_t whylen)
{
	const struct block_header_disk *h = chdr(block);
	u32 magic = le32_to_cpu(h->magic), stored, computed;
	u64 at;

	if (why && whylen)
		why[0] = '\0';
	if (magic != type->magic)
		return why_fail(why, whylen, "%s: bad magic 0x%08x", type->name, magic);
	stored = le32_to_cpu(h->csum);
	computed = block_compute_csum(block, type->magic);
	if (stored != computed)
		return why_fail(why, whylen, "%s: checksum 0x%08x, computed 0x%08x", type->name,
				stored, computed);
	at = le64_to_cpu(h->blocknr);
	if (at != blocknr) {
		why_fail(why, whylen, "%s: block %llu read from %llu", type->name,
			 (unsigned long long)at, (unsigned long long)blocknr);
		return -ENOTBLK;
	}
	if (h->reserved)
		return why_fail(why, whylen, "%s: reserved header field set", type->name);
	if (type->validate) {
		char sub[96] = "";
		int r = type->validate(block, sub, sizeof(sub));

		if (r) {
			why_fail(why, whylen, "%s at %llu: %s", type->name,
				 (unsigned long long)blocknr, sub[0] ? sub : "bad structure");
			return r == -ENOTBLK ? r : -EILSEQ;
		}
	}
	return 0;
}

u64 block_txg(const void *block)
{
	return le64_to_cpu(chdr(block)->txg);
}

u32 block_csum(const void *block)
{
	return le32_to_cpu(chdr(block)->csum);
}

u32 block_flags(const void *block)
{
	return le32_to_cpu(chdr(block)->flags);
}

void block_set_flags(void *block, u32 flags)
{
	hdr(block)->flags = cpu_to_le32(flags);
}

void blkptr_pack(struct blkptr_disk *d, const struct blkptr *p)
{
	d->blocknr = cpu_to_le64(p->blocknr);
	d->birth_txg = cpu_to_le64(p->birth_txg);
	d->aggr = cpu_to_le64(p->aggr);
	d->csum = cpu_to_le32(p->csum);
	d->reserved = 0;
}

void blkptr_unpack(struct blkptr *p, const struct blkptr_disk *d)
{
	p->blocknr = le64_to_cpu(d->blocknr);
	p->birth_txg = le64_to_cpu(d->birth_txg);
	p->aggr = le64_to_cpu(d->aggr);
	p->csum = le32_to_cpu(d->csum);
}
