// SPDX-License-Identifier: GPL-2.0-only
/*
 * label.c - planning, writing, reading and validating store labels.
 *
 * The label is the one structure written outside any txg: initialize writes it before the
 * first uberblock exists, and nothing rewrites it.  Its validator checks more than the
 * checksum: the layout it describes must make sense (regions inside the devices, in order,
 * not overlapping, chunk-aligned), so a label with a valid checksum and an impossible layout
 * is refused before any other code looks at the regions.
 *
 * Crash argument: initialize writes the labels after the rest of the store (ring and log
 * cleared, first uberblock written), then flushes.  A crash before that leaves a device
 * without a valid label, which open refuses (-ENODATA) and initialize redoes without -y.
 */
#include "store/label.h"
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Any block count or address above this is corrupt: 2^48 blocks is an exabyte. */
#define LABEL_MAX_BLOCKS	  (1ULL << 48)

#define why_set(why, whylen, ...) why_printf(why, whylen, -EILSEQ, __VA_ARGS__)

void label_pack(struct label_disk *d, const struct label *l)
{
	memset((u8 *)d + sizeof(d->hdr), 0, sizeof(*d) - sizeof(d->hdr));
	d->version = cpu_to_le32(l->version);
	d->role = cpu_to_le32(l->role);
	d->feature_compat = cpu_to_le64(l->feature_compat);
	d->feature_ro_compat = cpu_to_le64(l->feature_ro_compat);
	d->feature_incompat = cpu_to_le64(l->feature_incompat);
	memcpy(d->uuid, l->uuid, sizeof(d->uuid));
	d->log_guid = cpu_to_le64(l->log_guid);
	d->created = cpu_to_le64(l->created);
	d->chunk_shift = cpu_to_le32(l->chunk_shift);
	d->block_shift = cpu_to_le32(l->block_shift);
	d->snapstore_blocks = cpu_to_le64(l->snapstore_blocks);
	d->metadev_blocks = cpu_to_le64(l->metadev_blocks);
	d->origin_bytes = cpu_to_le64(l->origin_bytes);
	d->ub_start = cpu_to_le64(l->ub_start);
	d->ub_slots = cpu_to_le32(l->ub_slots);
	d->ms_shift = cpu_to_le32(l->ms_shift);
	d->log_start = cpu_to_le64(l->log_start);
	d->log_blocks = cpu_to_le64(l->log_blocks);
	d->data_start = cpu_to_le64(l->data_start);
	d->data_blocks = cpu_to_le64(l->data_blocks);
	d->meta_start = cpu_to_le64(l->meta_start);
	d->meta_blocks = cpu_to_le64(l->meta_blocks);
}

void label_unpack(struct label *l, const struct label_disk *d)
{
	l->version = le32_to_cpu(d->version);
	l->role = le32_to_cpu(d->role);
	l->feature_compat = le64_to_cpu(d->feature_compat);
	l->feature_ro_compat = le64_to_cpu(d->feature_ro_compat);
	l->feature_incompat = le64_to_cpu(d->feature_incompat);
	memcpy(l->uuid, d->uuid, sizeof(l->uuid));
	l->log_guid = le64_to_cpu(d->log_guid);
	l->created = le64_to_cpu(d->created);
	l->chunk_shift = le32_to_cpu(d->chunk_shift);
	l->block_shift = le32_to_cpu(d->block_shift);
	l->snapstore_blocks = le64_to_cpu(d->snapstore_blocks);
	l->metadev_blocks = le64_to_cpu(d->metadev_blocks);
	l->origin_bytes = le64_to_cpu(d->origin_bytes);
	l->ub_start = le64_to_cpu(d->ub_start);
	l->ub_slots = le32_to_cpu(d->ub_slots);
	l->ms_shift = le32_to_cpu(d->ms_shift);
	l->log_start = le64_to_cpu(d->log_start);
	l->log_blocks = le64_to_cpu(d->log_blocks);
	l->data_start = le64_to_cpu(d->data_start);
	l->data_blocks = le64_to_cpu(d->data_blocks);
	l->meta_start = le64_to_cpu(d->meta_start);
	l->meta_blocks = le64_to_cpu(d->meta_blocks);
}

/* Checks the layout of an unpacked label; shared by the validator and label_plan. */
static int label_check(const struct label *l, char *why, size_t whylen)
{
	u64 chunk, mdev, meta_end;
	const u64 *big[] = {&l->snapstore_blocks, &l->metadev_blocks, &l->ub_start,
			    &l->log_start,	  &l->log_blocks,     &l->data_start,
			    &l->data_blocks,	  &l->meta_start,     &l->meta_blocks};

	if (l->version != LABEL_VERSION)
		return why_set(why, whylen, "label version %u, expected %u", l->version,
			       LABEL_VERSION);
	if (l->role != LABEL_ROLE_SNAPSTORE && l->role != LABEL_ROLE_METADEV)
		return why_set(why, whylen, "label role %u", l->role);
	if (l->block_shift != DDSNAP_BLOCK_SHIFT)
		return why_set(why, whylen, "block shift %u", l->block_shift);
	if (l->chunk_shift < LABEL_MIN_CHUNK_SHIFT || l->chunk_shift > LABEL_MAX_CHUNK_SHIFT)
		return why_set(why, whylen, "chunk shift %u", l->chunk_shift);
	if (l->ub_slots < LABEL_MIN_UB_SLOTS || l->ub_slots > LABEL_MAX_UB_SLOTS)
		return why_set(why, whylen, "%u uberblock slots", l->ub_slots);
	if (l->ms_shift < LABEL_MIN_MS_SHIFT || l->ms_shift > 40)
		return why_set(why, whylen, "metaslab shift %u", l->ms_shift);
	for (size_t i = 0; i < ARRAY_SIZE(big); i++)
		if (*big[i] >= LABEL_MAX_BLOCKS)
			return why_set(why, whylen, "label field %zu out of range", i);
	if (!l->origin_bytes || l->origin_bytes % BDEV_SECTOR)
		return why_set(why, whylen, "origin size %llu",
			       (unsigned long long)l->origin_bytes);

	chunk = 1ULL << (l->chunk_shift - DDSNAP_BLOCK_SHIFT);
	mdev = l->metadev_blocks ? l->metadev_blocks : l->snapstore_blocks;
	/* The metadata device: label | ring | log | (meta region) | label. */
	if (l->ub_start < 1 || l->log_start < l->ub_start + l->ub_slots)
		return why_set(why, whylen, "uberblock ring overlaps");
	if (l->log_blocks < 1 || l->log_start + l->log_blocks > mdev - 1)
		return why_set(why, whylen, "intent log outside the device");
	meta_end = l->log_start + l->log_blocks;
	if (l->metadev_blocks) {
		if (l->meta_blocks < 1 || l->meta_start < meta_end ||
		    l->meta_start + l->meta_blocks > mdev - 1)
			return why_set(why, whylen, "metadata region misplaced");
		meta_end = 1; /* the data region has the snapstore to itself */
	} else if (l->meta_start || l->meta_blocks) {
		return why_set(why, whylen, "metadata region without a metadata device");
	}
	if (l->data_blocks < chunk || l->data_start < meta_end ||
	    l->data_start + l->data_blocks > l->snapstore_blocks - 1)
		return why_set(why, whylen, "data region misplaced");
	if (l->data_start % chunk || l->data_blocks % chunk)
		return why_set(why, whylen, "data region not chunk-aligned");
	return 0;
}

static int label_validate(const void *block, char *why, size_t whylen)
{
	const struct label_disk *d = block;
	struct label l;

	/*
	 * A store of a newer format may use reserved bytes under a feature bit this code does
	 * not know: the opener refuses it by its features (store_read_labels), not as damage.
	 * doc/format.md, "Versions and upgrades".
	 */
	bool newer = le64_to_cpu(d->feature_incompat) & ~LABEL_FEATURE_INCOMPAT_KNOWN ||
		     le64_to_cpu(d->feature_ro_compat) & ~LABEL_FEATURE_RO_COMPAT_KNOWN ||
		     le64_to_cpu(d->feature_compat) & ~LABEL_FEATURE_COMPAT_KNOWN;

	for (size_t i = 0; !newer && i < sizeof(d->reserved); i++)
		if (d->reserved[i])
			return why_set(why, whylen, "reserved byte %zu set", i);
	label_unpack(&l, d);
	return label_check(&l, why, whylen);
}

const struct block_type label_block_type = {
	.name = "label",
	.magic = MAGIC_LABEL,
	.validate = label_validate,
};

static void label_random(void *buf, size_t len)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len) : -1;

	if (fd >= 0)
		close(fd);
	if (n != (ssize_t)len) {
		/* No urandom (a tiny initramfs): the clock and pid still make a usable identity. */
		u64 x = (u64)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (u64)getpid();

		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			((u8 *)buf)[i] = (u8)x;
		}
	}
}

int label_plan(struct label *l, u64 snap_bytes, u64 meta_bytes, u64 origin_bytes, u32 chunk_shift,
	       u64 log_blocks, u32 ub_slots, char *why, size_t whylen)
{
	u64 snap = snap_bytes / DDSNAP_BLOCK_SIZE, meta = meta_bytes / DDSNAP_BLOCK_SIZE;
	u64 mdev = meta ? meta : snap, chunk, end, region;

	memset(l, 0, sizeof(*l));
	if (chunk_shift < LABEL_MIN_CHUNK_SHIFT || chunk_shift > LABEL_MAX_CHUNK_SHIFT) {
		why_set(why, whylen, "chunk size must be a power of two from 4 KiB to 1 MiB");
		return -EINVAL;
	}
	if (!origin_bytes || origin_bytes % BDEV_SECTOR || origin_bytes < (1ULL << chunk_shift)) {
		why_set(why, whylen,
			"origin of %llu bytes: not a whole number of sectors of at "
			"least one chunk",
			(unsigned long long)origin_bytes);
		return -EINVAL;
	}
	if (origin_bytes & ((1ULL << chunk_shift) - 1)) {
		u64 fit = MIN(origin_bytes & -origin_bytes, 1ULL << LABEL_MAX_CHUNK_SHIFT);
		unsigned long long size = origin_bytes, cs = 1ULL << chunk_shift,
				   tail = origin_bytes & (cs - 1);

		if (fit >= (1ULL << LABEL_MIN_CHUNK_SHIFT))
			why_set(why, whylen,
				"origin of %llu bytes is not a multiple of the chunk size %llu: "
				"its last %llu bytes could not be snapshotted; use a chunk size "
				"that divides it (-c %lluk) or resize the origin to a multiple "
				"of %llu",
				size, cs, tail, (unsigned long long)(fit >> 10), cs);
		else
			why_set(why, whylen,
				"origin of %llu bytes is not a multiple of the chunk size %llu "
				"(nor of 4 KiB, the smallest chunk): its last %llu bytes could "
				"not be snapshotted; resize the origin to a multiple of %llu",
				size, cs, tail, cs);
		return -EINVAL;
	}
	chunk = 1ULL << (chunk_shift - DDSNAP_BLOCK_SHIFT);
	l->version = LABEL_VERSION;
	l->role = LABEL_ROLE_SNAPSTORE;
	l->block_shift = DDSNAP_BLOCK_SHIFT;
	l->chunk_shift = chunk_shift;
	l->snapstore_blocks = snap;
	l->metadev_blocks = meta;
	l->origin_bytes = origin_bytes;
	l->ub_start = 1;
	l->ub_slots = ub_slots ? ub_slots : LABEL_UB_SLOTS;
	l->log_start = l->ub_start + l->ub_slots;
	l->log_blocks = log_blocks ? log_blocks : MIN((u64)LABEL_LOG_BLOCKS, MAX(mdev / 16, 64ULL));
	end = l->log_start + l->log_blocks;
	if (meta) {
		l->meta_start = end;
		l->meta_blocks = meta > end + 1 ? meta - 1 - end : 0;
		if (l->meta_blocks < LABEL_MIN_META_BLOCKS) {
			why_set(why, whylen, "metadata device of %llu bytes is too small",
				(unsigned long long)meta_bytes);
			return -ENOSPC;
		}
		end = 1;
	}
	l->data_start = ROUND_UP(end, chunk);
	l->data_blocks = snap > l->data_start + 1 ? snap - 1 - l->data_start : 0;
	l->data_blocks -= l->data_blocks % chunk;
	if (l->data_blocks < LABEL_MIN_DATA_CHUNKS * chunk + (meta ? 0 : LABEL_MIN_META_BLOCKS)) {
		why_set(why, whylen, "snapstore of %llu bytes is too small",
			(unsigned long long)snap_bytes);
		return -ENOSPC;
	}
	region = meta ? MAX(l->meta_blocks, l->data_blocks) : l->data_blocks;
	l->ms_shift = LABEL_MIN_MS_SHIFT;
	while ((region >> l->ms_shift) > LABEL_TARGET_METASLABS)
		l->ms_shift++;
	if ((1ULL << l->ms_shift) < chunk)
		l->ms_shift = chunk_shift - DDSNAP_BLOCK_SHIFT;
	label_random(l->uuid, sizeof(l->uuid));
	label_random(&l->log_guid, sizeof(l->log_guid));
	l->created = (u64)time(NULL);
	if (label_check(l, why, whylen))
		return -EINVAL;
	return 0;
}

/*
 * Writes @copy's two label copies at @at[0], @at[1]; with @flush_each each copy is flushed
 * before the next is written (label_rewrite's commit point), else both once at the end.
 */
static int write_copies(struct bdev *b, const struct label *copy, const u64 at[2], bool flush_each)
{
	void *buf = NULL;
	int r = 0;

	if (posix_memalign(&buf, BDEV_ALIGN, DDSNAP_BLOCK_SIZE))
		return -ENOMEM;
	for (int i = 0; i < 2 && !r; i++) {
		memset(buf, 0, DDSNAP_BLOCK_SIZE);
		label_pack(buf, copy);
		block_seal(buf, &label_block_type, at[i], 0);
		r = bdev_write(b, buf, DDSNAP_BLOCK_SIZE, at[i] * DDSNAP_BLOCK_SIZE);
		if (!r && (flush_each || i == 1))
			r = bdev_flush(b);
	}
	free(buf);
	return r;
}

int label_write(struct bdev *b, const struct label *l, u32 role)
{
	u64 at[2] = {0, label_last_blocknr(b->size / DDSNAP_BLOCK_SIZE)};
	struct label copy = *l;

	copy.role = role;
	return write_copies(b, &copy, at, false);
}

int label_rewrite(struct bdev *b, const struct label *l, u32 role)
{
	struct label copy = *l;
	u64 at[2] = {0, 0};

	copy.role = role;
	at[1] = label_copy1_blocknr(&copy);
	return write_copies(b, &copy, at, true);
}

/*
 * Reads and validates the label copy at block @at of @b into @out.  Returns 0, -EIO, or
 * -EILSEQ/-ENOTBLK with the reason in @sub; *@magic says whether the block had the magic.
 */
static int label_read_at(struct bdev *b, void *buf, u64 at, struct label *out, char *sub,
			 size_t sublen, bool *magic)
{
	int r;

	if (at >= b->size / DDSNAP_BLOCK_SIZE)
		return why_set(sub, sublen, "block %llu is past the end of the device",
			       (unsigned long long)at);
	r = bdev_read(b, buf, DDSNAP_BLOCK_SIZE, at * DDSNAP_BLOCK_SIZE);
	if (r)
		return r;
	if (le32_to_cpu(((struct block_header_disk *)buf)->magic) == MAGIC_LABEL)
		*magic = true;
	r = block_validate(buf, &label_block_type, at, sub, sublen);
	if (!r)
		label_unpack(out, buf);
	return r;
}

u64 label_copy1_blocknr(const struct label *l)
{
	return label_last_blocknr(l->role == LABEL_ROLE_METADEV ? l->metadev_blocks
								: l->snapstore_blocks);
}

int label_read(struct bdev *b, int copy, struct label *out, char *why, size_t whylen)
{
	u64 blocks = b->size / DDSNAP_BLOCK_SIZE;
	bool magic[2] = {false, false};
	char sub[2][128] = {"", ""};
	struct label l0;
	void *buf = NULL;
	int r0, r = -ENODATA;

	if (copy > 1 || blocks < 2)
		return -EINVAL;
	if (posix_memalign(&buf, BDEV_ALIGN, DDSNAP_BLOCK_SIZE))
		return -ENOMEM;
	/*
	 * Copy 1 is in the last block of the device as initialize sized it (copy 0 records the
	 * size), not of the device as it is now: a snapstore grown since keeps its label where
	 * it was.  Without a valid copy 0 the device's last block is the one place to look.
	 */
	r0 = label_read_at(b, buf, 0, &l0, sub[0], sizeof(sub[0]), &magic[0]);
	if (copy == 0 || (copy < 0 && r0 == 0)) {
		r = r0;
		if (!r)
			*out = l0;
	} else {
		r = label_read_at(b, buf,
				  r0 ? label_last_blocknr(blocks) : label_copy1_blocknr(&l0), out,
				  sub[1], sizeof(sub[1]), &magic[1]);
	}
	free(buf);
	if (r && r != -EIO) {
		int first = copy < 0 ? 0 : copy, last = copy < 0 ? 1 : copy;
		bool any_magic = copy < 0 ? magic[0] || magic[1] : magic[copy];

		if (!any_magic)
			r = -ENODATA;
		if (!any_magic && first == last)
			why_printf(why, whylen, r, "%s: no label copy %d", b->name, first);
		else if (!any_magic)
			why_printf(why, whylen, r, "%s: no label", b->name);
		else if (first == last)
			why_printf(why, whylen, r, "%s: label copy %d: %s", b->name, first,
				   sub[first]);
		else
			why_printf(why, whylen, r, "%s: label copy 0: %s; copy 1: %s", b->name,
				   sub[0], sub[1]);
	}
	return r;
}

int label_fits(const struct label *l, const struct bdev *b, u32 role, char *why, size_t whylen)
{
	u64 blocks = role == LABEL_ROLE_METADEV ? l->metadev_blocks : l->snapstore_blocks;

	if (b->size / DDSNAP_BLOCK_SIZE >= blocks)
		return 0;
	return why_printf(
		why, whylen, -EINVAL, "%s %s is %llu bytes, its label says %llu: truncated?",
		role == LABEL_ROLE_METADEV ? "metadata device" : "snapstore", b->name,
		(unsigned long long)b->size, (unsigned long long)(blocks * DDSNAP_BLOCK_SIZE));
}

bool label_same_store(const struct label *a, const struct label *b)
{
	struct label_disk *x = xzalloc(sizeof(*x)), *y = xzalloc(sizeof(*y));
	bool same;

	label_pack(x, a);
	label_pack(y, b);
	x->role = y->role = 0;
	x->feature_compat = y->feature_compat = 0;
	x->feature_ro_compat = y->feature_ro_compat = 0;
	x->feature_incompat = y->feature_incompat = 0;
	same = !memcmp(x, y, sizeof(*x));
	free(x);
	free(y);
	return same;
}
