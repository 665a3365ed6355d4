// SPDX-License-Identifier: GPL-2.0-only
/*
 * uberblock.c - packing, validating, writing and choosing uberblocks.
 *
 * Invariant: slot s of the ring holds either nothing, or a uberblock of this store (uuid)
 * with txg % ub_slots == s.  A block at slot s claiming another txg class is refused: it
 * could only be a misdirected write.
 *
 * Crash argument: the store writes the uberblock of T after flushing everything T wrote,
 * to the slot of T, which holds T - ub_slots (long superseded).  If we crash during that
 * write, the slot holds old, new or torn contents; old and torn lose to T - 1 (still in its
 * own slot, untouched), new is a complete T whose blocks are all durable.  Either way the
 * choice is a consistent txg.  The ring is read whole on open, so no pointer to "the
 * newest slot" is needed anywhere.
 */
#include "store/uberblock.h"
#include <string.h>

static const char *const root_names[UB_NR_ROOTS] = {
	[UB_ROOT_EXCEPTIONS] = "exceptions", [UB_ROOT_SNAPSHOTS] = "snapshots",
	[UB_ROOT_DEADLISTS] = "deadlists",   [UB_ROOT_OVERLAYS] = "overlays",
	[UB_ROOT_PROVENANCE] = "provenance", [UB_ROOT_DEADLIST_ENTRIES] = "deadlist_entries",
};

static const char *const scalar_names[UB_NR_SCALARS] = {
	[UB_SCALAR_GEN] = "gen",
	[UB_SCALAR_NEXT_SNAP] = "next_snap",
	[UB_SCALAR_NEXT_PIECE] = "next_piece",
	[UB_SCALAR_UPGRADE_CURSOR] = "upgrade_cursor",
	[UB_SCALAR_UPGRADE_BIRTH] = "upgrade_birth",
};

const char *uberblock_root_name(unsigned i)
{
	return i < UB_NR_ROOTS && root_names[i] ? root_names[i] : NULL;
}

const char *uberblock_scalar_name(unsigned i)
{
	return i < UB_NR_SCALARS && scalar_names[i] ? scalar_names[i] : NULL;
}

#define why_set(why, whylen, ...) why_printf(why, whylen, -EILSEQ, __VA_ARGS__)

void uberblock_pack(struct uberblock_disk *d, const struct uberblock *ub)
{
	memset((u8 *)d + sizeof(d->hdr), 0, sizeof(*d) - sizeof(d->hdr));
	d->version = cpu_to_le32(UBERBLOCK_VERSION);
	memcpy(d->uuid, ub->uuid, sizeof(d->uuid));
	d->timestamp = cpu_to_le64(ub->timestamp);
	for (int i = 0; i < UB_NR_SCALARS; i++)
		d->scalars[i] = cpu_to_le64(ub->scalars[i]);
	d->log_block_seq = cpu_to_le64(ub->log_block_seq);
	d->log_rec_seq = cpu_to_le64(ub->log_rec_seq);
	d->meta_alloc = cpu_to_le64(ub->meta_alloc);
	d->data_alloc = cpu_to_le64(ub->data_alloc);
	for (int i = 0; i < UB_NR_ROOTS; i++)
		blkptr_pack(&d->roots[i], &ub->roots[i]);
	d->metaslab = ub->metaslab;
}

void uberblock_unpack(struct uberblock *ub, const struct uberblock_disk *d)
{
	memset(ub, 0, sizeof(*ub));
	ub->txg = le64_to_cpu(d->hdr.txg);
	memcpy(ub->uuid, d->uuid, sizeof(ub->uuid));
	ub->timestamp = le64_to_cpu(d->timestamp);
	for (int i = 0; i < UB_NR_SCALARS; i++)
		ub->scalars[i] = le64_to_cpu(d->scalars[i]);
	ub->log_block_seq = le64_to_cpu(d->log_block_seq);
	ub->log_rec_seq = le64_to_cpu(d->log_rec_seq);
	ub->meta_alloc = le64_to_cpu(d->meta_alloc);
	ub->data_alloc = le64_to_cpu(d->data_alloc);
	for (int i = 0; i < UB_NR_ROOTS; i++)
		blkptr_unpack(&ub->roots[i], &d->roots[i]);
	ub->metaslab = d->metaslab;
}

static int uberblock_validate(const void *block, char *why, size_t whylen)
{
	const struct uberblock_disk *d = block;
	u64 txg = le64_to_cpu(d->hdr.txg);

	if (le32_to_cpu(d->version) != UBERBLOCK_VERSION)
		return why_set(why, whylen, "version %u", le32_to_cpu(d->version));
	if (d->flags)
		return why_set(why, whylen, "flags 0x%x", le32_to_cpu(d->flags));
	if (!txg)
		return why_set(why, whylen, "txg 0");
	for (size_t i = 0; i < sizeof(d->reserved); i++)
		if (d->reserved[i])
			return why_set(why, whylen, "reserved byte %zu set", i);
	for (int i = 0; i < UB_NR_ROOTS; i++) {
		const struct blkptr_disk *p = &d->roots[i];
		u64 birth = le64_to_cpu(p->birth_txg);

		if (p->reserved)
			return why_set(why, whylen, "root %d: reserved field set", i);
		if (!root_names[i] && (p->blocknr || p->birth_txg || p->aggr || p->csum))
			return why_set(why, whylen, "spare root %d in use", i);
		if (birth > txg)
			return why_set(why, whylen, "root %d born in txg %llu after its uberblock",
				       i, (unsigned long long)birth);
		if (!p->blocknr && (p->birth_txg || p->csum))
			return why_set(why, whylen, "empty root %d with a birth or checksum", i);
	}
	for (int i = 0; i < UB_NR_SCALARS; i++)
		if (!scalar_names[i] && d->scalars[i])
			return why_set(why, whylen, "spare scalar %d in use", i);
	return 0;
}

const struct block_type uberblock_block_type = {
	.name = "uberblock",
	.magic = MAGIC_UBERBLOCK,
	.validate = uberblock_validate,
};

int uberblock_write(struct bdev *b, const struct label *l, const struct uberblock *ub)
{
	u64 at = uberblock_slot_blocknr(l, ub->txg);
	void *buf = NULL;
	int r;

	VERIFY(ub->txg);
	if (posix_memalign(&buf, BDEV_ALIGN, DDSNAP_BLOCK_SIZE))
		return -ENOMEM;
	memset(buf, 0, DDSNAP_BLOCK_SIZE);
	uberblock_pack(buf, ub);
	block_seal(buf, &uberblock_block_type, at, ub->txg);
	r = bdev_write(b, buf, DDSNAP_BLOCK_SIZE, at * DDSNAP_BLOCK_SIZE);
	free(buf);
	return r;
}

static bool all_zero(const void *p, size_t len)
{
	const u8 *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

int uberblock_read_slot(struct bdev *b, const struct label *l, u32 slot, struct uberblock *out,
			char *why, size_t whylen)
{
	u64 at = l->ub_start + slot;
	void *buf = NULL;
	int r;

	if (slot >= l->ub_slots)
		return -EINVAL;
	if (posix_memalign(&buf, BDEV_ALIGN, DDSNAP_BLOCK_SIZE))
		return -ENOMEM;
	r = bdev_read(b, buf, DDSNAP_BLOCK_SIZE, at * DDSNAP_BLOCK_SIZE);
	if (r)
		goto out_free;
	if (all_zero(buf, DDSNAP_BLOCK_SIZE)) {
		why_set(why, whylen, "slot %u empty", slot);
		r = -ENODATA;
		goto out_free;
	}
	r = block_validate(buf, &uberblock_block_type, at, why, whylen);
	if (r)
		goto out_free;
	uberblock_unpack(out, buf);
	if (memcmp(out->uuid, l->uuid, sizeof(l->uuid))) {
		r = why_set(why, whylen, "slot %u: uberblock of another store", slot);
		goto out_free;
	}
	if (out->txg % l->ub_slots != slot) {
		why_set(why, whylen, "slot %u holds txg %llu", slot, (unsigned long long)out->txg);
		r = -ENOTBLK;
	}
out_free:
	free(buf);
	return r;
}

int uberblock_read_newest(struct bdev *b, const struct label *l, struct uberblock *out,
			  unsigned *nvalid, char *why, size_t whylen)
{
	struct uberblock ub;
	unsigned valid = 0;
	int r;

	for (u32 s = 0; s < l->ub_slots; s++) {
		r = uberblock_read_slot(b, l, s, &ub, NULL, 0);
		if (r == -EIO)
			return r;
		if (r)
			continue;
		if (!valid++ || ub.txg > out->txg)
			*out = ub;
	}
	if (nvalid)
		*nvalid = valid;
	if (!valid) {
		why_set(why, whylen, "%s: no valid uberblock in %u slots", b->name, l->ub_slots);
		return -ENODATA;
	}
	return 0;
}
