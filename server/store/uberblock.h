/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * uberblock.h - the uberblock ring: the one place that says which txg is the store's
 * current state and where its structures are.
 *
 * The uberblock of txg T goes to slot T % ub_slots of the ring (label.h) and is written only
 * after everything T wrote is durable; the store flushes again after writing it.  Open
 * reads every slot and takes the valid one with the highest txg, so a torn, lost or
 * corrupt uberblock write leaves the store at T - 1, whose blocks T never overwrote.
 */
#ifndef DDSNAP_UBERBLOCK_H
#define DDSNAP_UBERBLOCK_H

#include "util/base.h"
#include "blk/bdev.h"
#include "blk/block.h"
#include "blk/format.h"
#include "store/label.h"

/* The uberblock in core; metaslab is kept packed (metaslab.h owns its meaning). */
struct uberblock {
	u64 txg;
	u8 uuid[16];
	u64 timestamp;
	u64 scalars[UB_NR_SCALARS];
	u64 log_block_seq, log_rec_seq;
	u64 meta_alloc, data_alloc;
	struct blkptr roots[UB_NR_ROOTS];
	struct metaslab_root_disk metaslab;
};

/* Validator: version, flags, reserved bytes, spare roots and scalars zero. */
extern const struct block_type uberblock_block_type;

/* Names for messages and the dump format: "exceptions", "gen", ... */
const char *uberblock_root_name(unsigned i);
const char *uberblock_scalar_name(unsigned i);

void uberblock_pack(struct uberblock_disk *d, const struct uberblock *ub);
void uberblock_unpack(struct uberblock *ub, const struct uberblock_disk *d);

/* The address of the slot txg @txg goes to. */
static inline u64 uberblock_slot_blocknr(const struct label *l, u64 txg)
{
	return l->ub_start + txg % l->ub_slots;
}

/*
 * Writes @ub (txg ub->txg) to its slot of the ring on @b (the metadata device).  Does not
 * flush.  Returns 0 or -EIO.  Blocks.
 */
int uberblock_write(struct bdev *b, const struct label *l, const struct uberblock *ub);

/*
 * Reads slot @slot.  Returns 0, -ENODATA (empty slot: all zero), -EILSEQ / -ENOTBLK
 * (damaged, or a uberblock of another store or the wrong slot for its txg) with the reason
 * in @why, -EIO.  Blocks.
 */
int uberblock_read_slot(struct bdev *b, const struct label *l, u32 slot, struct uberblock *out,
			char *why, size_t whylen);

/*
 * Reads the whole ring and returns the valid uberblock with the highest txg in @out.
 * *nvalid (may be NULL) gets the number of valid slots.  Returns 0, -ENODATA (no valid
 * uberblock at all) with the reason in @why, or -EIO.  O(ub_slots) reads.  Blocks.
 */
int uberblock_read_newest(struct bdev *b, const struct label *l, struct uberblock *out,
			  unsigned *nvalid, char *why, size_t whylen);

#endif
