// SPDX-License-Identifier: GPL-2.0-only
/*
 * ddsnap-cache.c - what the kernel remembers of the server's answers.
 *
 * What.  An origin device remembers, per chunk, "safe to write in this gen": the server
 * approved a write there and nothing a live snapshot needs is left on it, so later writes go
 * straight to the origin (DESIGN 3: last_death(L) = G > newest).  A snapshot device remembers
 * chunk -> snapstore address, flagged private when this snapshot alone owns the chunk (its
 * writes may go there too).  Origin mappings of snapshot reads are never cached: the origin
 * changes under them.
 *
 * Invariants.  A cached answer is only used while the server has not sent DROP_CACHE since it
 * was given.  Every bio mapped from the cache or from a reply is counted in the cache epoch
 * current at mapping time, under dc->lock together with the cache lookup; DROP_CACHE empties
 * the cache and opens a new epoch under the same lock, so once the old epoch's count reaches
 * zero no I/O mapped through the old cache is in flight, and only then is the drop
 * acknowledged (the server may then reuse the chunks).
 *
 * Locking.  Lookups, counts and drops take dc->lock (irq-safe: end_io uncounts).  Inserts come
 * only from the receive thread, the same thread that processes DROP_CACHE, so an answer given
 * before a drop is always inserted before it and one given after, after it (stream order).
 * The xarray's own lock nests inside dc->lock.
 *
 * Crash argument.  Nothing here is persistent; after a reconnect (the server may have
 * restarted and created snapshots meanwhile) the channel drops the whole cache.
 */
#include <linux/slab.h>
#include <linux/bitmap.h>
#include <linux/mm.h>

#include "ddsnap.h"

int ddsnap_cache_init(struct ddsnap_dev *dc)
{
	xa_init(&dc->map);
	if (!ddsnap_is_origin(dc))
		return 0;
	dc->safe = kvcalloc(BITS_TO_LONGS(dc->nr_chunks), sizeof(unsigned long), GFP_KERNEL);
	return dc->safe ? 0 : -ENOMEM;
}

void ddsnap_cache_exit(struct ddsnap_dev *dc)
{
	xa_destroy(&dc->map);
	kvfree(dc->safe);
	dc->safe = NULL;
}

static void cache_count_locked(struct ddsnap_dev *dc, struct ddsnap_io *io)
{
	io->epoch = dc->epoch;
	io->counted = true;
	dc->epoch_inflight[io->epoch]++;
}

bool ddsnap_cache_lookup(struct ddsnap_dev *dc, struct ddsnap_io *io, bool write, u64 *addr)
{
	unsigned long flags;
	bool hit = true;

	spin_lock_irqsave(&dc->lock, flags);
	if (ddsnap_is_origin(dc)) {
		for (u32 i = 0; i < io->count && hit; i++)
			hit = io->chunk + i < dc->nr_chunks && test_bit(io->chunk + i, dc->safe);
	} else {
		void *v = xa_load(&dc->map, io->chunk);

		hit = xa_is_value(v) && (!write || (xa_to_value(v) & 1));
		if (hit)
			*addr = xa_to_value(v) >> 1;
	}
	if (hit) {
		cache_count_locked(dc, io);
		dc->stats.hits++;
	} else {
		dc->stats.misses++;
	}
	spin_unlock_irqrestore(&dc->lock, flags);
	return hit;
}

void ddsnap_cache_count(struct ddsnap_dev *dc, struct ddsnap_io *io)
{
	unsigned long flags;

	spin_lock_irqsave(&dc->lock, flags);
	cache_count_locked(dc, io);
	spin_unlock_irqrestore(&dc->lock, flags);
}

void ddsnap_cache_uncount(struct ddsnap_dev *dc, struct ddsnap_io *io)
{
	unsigned long flags;
	bool wake;

	if (!io->counted)
		return;
	io->counted = false;
	spin_lock_irqsave(&dc->lock, flags);
	if (WARN_ON_ONCE(!dc->epoch_inflight[io->epoch]))
		dc->epoch_inflight[io->epoch] = 1;
	wake = !--dc->epoch_inflight[io->epoch] && io->epoch != dc->epoch;
	/* wake: someone may wait for this (old) epoch to drain */
	spin_unlock_irqrestore(&dc->lock, flags);
	if (wake)
		wake_up_all(&dc->wait);
}

void ddsnap_cache_set_safe(struct ddsnap_dev *dc, u64 chunk, u32 count)
{
	if (!dc->safe || chunk >= dc->nr_chunks)
		return;
	count = min_t(u64, count, dc->nr_chunks - chunk);
	for (u32 i = 0; i < count; i++)
		set_bit(chunk + i, dc->safe);
}

void ddsnap_cache_set_mapping(struct ddsnap_dev *dc, u64 chunk, u64 addr, bool private)
{
	/* A failed insert only costs a later round trip. */
	if (chunk < dc->nr_chunks)
		xa_store(&dc->map, chunk, xa_mk_value(addr << 1 | private), GFP_NOIO);
}

u8 ddsnap_cache_drop(struct ddsnap_dev *dc)
{
	unsigned long flags, index;
	void *v;
	u8 old;

	/* Two epochs alternate: the one we are about to reopen must have drained first. */
	wait_event(dc->wait, ddsnap_cache_drained(dc, dc->epoch ^ 1));
	spin_lock_irqsave(&dc->lock, flags);
	if (dc->safe)
		bitmap_zero(dc->safe, dc->nr_chunks);
	xa_for_each(&dc->map, index, v) xa_erase(&dc->map, index);
	old = dc->epoch;
	dc->epoch ^= 1;
	spin_unlock_irqrestore(&dc->lock, flags);
	return old;
}

bool ddsnap_cache_drained(struct ddsnap_dev *dc, u8 epoch)
{
	unsigned long flags;
	bool drained;

	spin_lock_irqsave(&dc->lock, flags);
	drained = !dc->epoch_inflight[epoch];
	spin_unlock_irqrestore(&dc->lock, flags);
	return drained;
}
