/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * label.h - the store label: the fixed layout of a store's devices, written once by
 * `ddsnap initialize` to the first and the last block of each device (format.h).
 *
 * The label says where the uberblock ring, the intent log and the allocation regions are;
 * nothing in it changes after initialize, so it needs no transaction.  Two copies per
 * device: open uses the first valid one, `ddsnap check` wants both valid and equal.
 */
#ifndef DDSNAP_LABEL_H
#define DDSNAP_LABEL_H

#include "util/base.h"
#include "blk/bdev.h"
#include "blk/block.h"
#include "blk/format.h"

/* Chunk sizes a store accepts (DESIGN.md 3: the unit of copy-out). */
#define LABEL_MIN_CHUNK_SHIFT	  12 /* 4 KiB: no smaller than a metadata block */
#define LABEL_MAX_CHUNK_SHIFT	  20 /* 1 MiB: larger chunks copy out far more than written */
#define LABEL_DEFAULT_CHUNK_SHIFT 14 /* 16 KiB: chosen by bench/vm-chunksize.sh (ddsnap(8)) */
static_assert(LABEL_MIN_CHUNK_SHIFT >= DDSNAP_BLOCK_SHIFT &&
		      LABEL_MIN_CHUNK_SHIFT <= LABEL_DEFAULT_CHUNK_SHIFT &&
		      LABEL_DEFAULT_CHUNK_SHIFT <= LABEL_MAX_CHUNK_SHIFT,
	      "chunk size limits");
/*
 * Uberblock ring slots: 16 txgs of history to fall back on if the newest uberblocks are
 * damaged, for 64 KiB.  At least 2, so that writing one slot never overwrites the newest.
 */
#define LABEL_UB_SLOTS	   16
#define LABEL_MIN_UB_SLOTS 2
#define LABEL_MAX_UB_SLOTS 1024
static_assert(LABEL_MIN_UB_SLOTS >= 2 && LABEL_MIN_UB_SLOTS <= LABEL_UB_SLOTS &&
		      LABEL_UB_SLOTS <= LABEL_MAX_UB_SLOTS,
	      "uberblock ring limits");
/*
 * Intent log ring: 2048 blocks (8 MiB) holds several seconds of copy-out records at full
 * speed, so appenders rarely wait for a txg sync; capped at 1/16 of a small device.
 */
#define LABEL_LOG_BLOCKS 2048
/* Metaslabs: about this many per region (ZFS's choice), each at least 2^10 blocks (4 MiB). */
#define LABEL_TARGET_METASLABS 200
#define LABEL_MIN_MS_SHIFT     10
/* The smallest useful regions: room for a few B+tree levels and some chunks. */
#define LABEL_MIN_META_BLOCKS 256
#define LABEL_MIN_DATA_CHUNKS 16

/*
 * Feature bits this code knows (enum label_feature, format.h).  The format's one version
 * scheme (doc/format.md, "Versions and upgrades"): the label and uberblock version fields
 * stay 1; every format change adds one bit, incompat (an older binary refuses the store),
 * ro_compat (an older binary may only read it) or compat (an older binary may use it).  A
 * label with a bit this code does not know may use reserved bytes; it is refused by its
 * features, not as damage.
 */
#define LABEL_FEATURE_COMPAT_KNOWN    0ULL
#define LABEL_FEATURE_INCOMPAT_KNOWN  ((u64)LABEL_FEATURE_INCOMPAT_DEADLISTS)
#define LABEL_FEATURE_RO_COMPAT_KNOWN ((u64)LABEL_FEATURE_RO_PROVENANCE)

/* The label in core, fields as in struct label_disk. */
struct label {
	u32 version, role;
	u64 feature_compat, feature_ro_compat, feature_incompat;
	u8 uuid[16];
	u64 log_guid, created;
	u32 chunk_shift, block_shift;
	u64 snapstore_blocks, metadev_blocks, origin_bytes;
	u64 ub_start;
	u32 ub_slots, ms_shift;
	u64 log_start, log_blocks;
	u64 data_start, data_blocks;
	u64 meta_start, meta_blocks;
};

/* The block type of labels; its validator checks version, role, shifts and that the
 * regions lie inside the recorded device sizes without overlapping. */
extern const struct block_type label_block_type;

/*
 * Plans a layout: fills @l (version, sizes, regions, shifts; uuid, guid and created too,
 * from /dev/urandom and the clock) for a snapstore of @snap_bytes, an optional metadata
 * device of @meta_bytes (0: none), an origin of @origin_bytes and chunks of 2^@chunk_shift
 * bytes.  @log_blocks and @ub_slots 0 mean the defaults.  Returns 0, or -EINVAL (bad chunk
 * size or origin size) / -ENOSPC (a device too small) with the reason in @why.  O(1).
 */
int label_plan(struct label *l, u64 snap_bytes, u64 meta_bytes, u64 origin_bytes, u32 chunk_shift,
	       u64 log_blocks, u32 ub_slots, char *why, size_t whylen);

/* The address of the last label copy of a device of @dev_blocks blocks. */
static inline u64 label_last_blocknr(u64 dev_blocks)
{
	return dev_blocks - 1;
}

/*
 * The address of the last label copy of the device @l describes (its role's recorded size,
 * which stays put when the device grows).
 */
u64 label_copy1_blocknr(const struct label *l);

/* Converts; label_unpack does not validate (block_validate did). */
void label_pack(struct label_disk *d, const struct label *l);
void label_unpack(struct label *l, const struct label_disk *d);

/*
 * Writes both copies of @l to @b with role @role, and flushes.  Returns 0 or -EIO.  Blocks.
 */
int label_write(struct bdev *b, const struct label *l, u32 role);

/*
 * Rewrites both copies of @l on @b in role @role, where the label says they are (copy 1 at
 * the device's size as initialized, label_copy1_blocknr): copy 0, flush, copy 1, flush, so
 * a crash leaves at least one valid copy of the old or the new label.  For setting a feature
 * bit on an existing store.  Returns 0 or -EIO.  Blocks.
 */
int label_rewrite(struct bdev *b, const struct label *l, u32 role);

/*
 * Reads the label of @b: copy @copy (0 first, 1 last) only, or with @copy < 0 the first
 * valid of the two.  Returns 0, -ENODATA (neither copy carries the label magic: not a
 * store), -EILSEQ / -ENOTBLK (damaged) with the reason in @why, -EIO.  Blocks.
 */
int label_read(struct bdev *b, int copy, struct label *out, char *why, size_t whylen);

/* Blocks per data chunk. */
static inline u64 label_chunk_blocks(const struct label *l)
{
	return 1ULL << (l->chunk_shift - DDSNAP_BLOCK_SHIFT);
}

/* True iff both labels describe the same store layout (role and feature words aside: a
 * crash while a feature bit is set may leave one device's labels without it). */
bool label_same_store(const struct label *a, const struct label *b);

/*
 * Whether device @b, holding @l in @role (LABEL_ROLE_*), is at least as large as @l says:
 * every block number the store's metadata holds was checked against the label, so a
 * shorter device (truncated, or the wrong one) would be read past its end.  Returns 0, or
 * -EINVAL with "snapstore X is N bytes, its label says M: truncated?" in @why.  O(1).
 */
int label_fits(const struct label *l, const struct bdev *b, u32 role, char *why, size_t whylen);

#endif
