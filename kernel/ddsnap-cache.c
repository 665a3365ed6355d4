// SPDX-License-Identifier: GPL-2.0-only
/*
 * ddsnap-cache.c - what the kernel remembers of the server's answers.
 *
 * What.  An origin device remembers, per chunk, "safe to write in this gen": the server
 * approved a write there and nothing a live snapshot needs is left on it, so later writes go
 * straight to the origin (DESIGN 3: last_death(L) = G > newest).  A snapshot device remembers
 * chunk -> snapstore address, flagged private when this snapshot alone owns the chunk (its
 * writes may go there too), and, on a version 3 connection, chunk -> "on the origin" with
 * the volume seq of the query that was answered so: the origin changes under those, and
 * ddsnap-volume.c says when such an entry is still good and keeps origin writes off the
 * chunks its reads are reading.  An entry is an xarray value:
 *	addr << 2 | private	a snapstore chunk (bit 1 clear)
 *	vseq << 2 | 2		on the origin, answered to a query mapped at volume seq vseq
 *
 * Invariants.  A cached answer is only used while the server has not sent DROP_CACHE since it
 * was given.  Every bio mapped from the cache or from a reply is counted in the cache epoch
 * current at mapping time; DROP_CACHE empties the cache and then opens a new epoch, so once
 * the old epoch's count reaches zero no I/O mapped through the old cache is in flight, and
 * only then is the drop acknowledged (the server may then reuse the chunks).
 *
 * Locking.  The map path takes no lock (a spinlock pair per bio, twice, was a tenth of a 4 KiB
 * rewrite's cost in the guest): cache_get() counts the bio in the epoch it read, then reads
 * the epoch again and retries if it changed, and only then looks up the cache.  A bio whose
 * count the drop may have missed cannot exist: the drop empties the cache before it publishes
 * the new epoch (release), and a lookup follows an epoch read that saw the old one (acquire,
 * after the count), so a lookup that can still see old answers is counted in the old epoch.
 * Drops and inserts come only from the receive thread, so an answer given before a drop is
 * always inserted before it and one given after, after it (stream order); the drop holds
 * dc->lock against status readers.  Bitmap bits are set and tested atomically; the xarray
 * is read under RCU (xa_load) and written with its own lock.
 *
 * A drop also raises the device's floor to a new volume seq before it empties the cache:
 * an "on the origin" answer to a query mapped before the drop may be handled after it (the
 * server answered before it changed the origin, and the drop overtook nothing on the
 * stream but the handling), and is then not cached; entries from before the drop that a
 * concurrent lookup still sees are counted in the old epoch, which the drop waits for.
 *
 * Crash argument.  Nothing here is persistent; after a reconnect (the server may have
 * restarted and created snapshots meanwhile) the channel drops the whole cache.
 */
#include <linux/slab.h>
#include <linux/bitmap.h>
#include <linux/mm.h>

#include "ddsnap.h"

/*
 * Module parameter origin_cache (/sys/module/dm_ddsnap/parameters/origin_cache): N stops
 * caching "on the origin" answers, so snapshot reads of those chunks ask the server (and take
 * its read locks) every time, as before wire version 3; entries cached already stay good.
 * For tests of the server's read locks, and a way back should the cache ever be in doubt.
 */
static bool origin_cache = true;
module_param(origin_cache, bool, 0644);
MODULE_PARM_DESC(origin_cache, "cache snapshot chunks still on the origin (default Y)");

#define CACHE_ORIGIN  2ul /* the entry's flag for "on the origin" */
#define CACHE_PRIVATE 1ul

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

/* Drops a count of epoch @e; the last one of an old epoch wakes a drop waiting for it. */
static void cache_put(struct ddsnap_dev *dc, u8 e)
{
	/* atomic_dec_and_test is a full barrier: the epoch read is not hoisted above it */
	if (atomic_dec_and_test(&dc->epoch_inflight[e]) && e != READ_ONCE(dc->epoch))
		wake_up_all(&dc->wait);
}

/* Counts a bio in the current epoch (see Locking) and returns that epoch. */
static u8 cache_get(struct ddsnap_dev *dc)
{
	for (;;) {
		u8 e = READ_ONCE(dc->epoch);

		atomic_inc(&dc->epoch_inflight[e]);
		smp_mb__after_atomic();
		if (likely(smp_load_acquire(&dc->epoch) == e))
			return e;
		cache_put(dc, e); /* a drop opened a new epoch meanwhile: count there */
	}
}

/* The cache entry of snapshot chunk @chunk, or -1 (no entry: values never have all bits). */
static unsigned long cache_entry(struct ddsnap_dev *dc, u64 chunk)
{
	void *v = xa_load(&dc->map, chunk);

	return xa_is_value(v) ? xa_to_value(v) : -1ul;
}

/* ddsnap_cache_lookup for a snapshot device: the length of the run (0: a miss). */
static u32 cache_run(struct ddsnap_dev *dc, struct ddsnap_io *io, bool write, u64 *addr)
{
	unsigned long first = cache_entry(dc, io->chunk), e;
	u32 n = write ? 1 : io->count, k;
	u64 seq, floor;

	if (first == -1ul || (write && !(first & CACHE_PRIVATE)))
		return 0;
	if (!(first & CACHE_ORIGIN)) {
		*addr = first >> 2;
		for (k = 1; k < n; k++) {
			e = cache_entry(dc, io->chunk + k);
			if (e == -1ul || (e & CACHE_ORIGIN) || e >> 2 != *addr + k)
				break;
		}
		return k;
	}
	seq = first >> 2;
	for (k = 1; k < n; k++) {
		e = cache_entry(dc, io->chunk + k);
		if (e == -1ul || !(e & CACHE_ORIGIN))
			break;
		seq = min_t(u64, seq, e >> 2); /* the run is good if its oldest entry is */
	}
	floor = READ_ONCE(dc->floor);
	if (seq >= floor && ddsnap_volume_read_begin(dc->vol, io->chunk, k, seq)) {
		io->fast = true;
		return k;
	}
	/* A stale entry further on spoils only its own part of the run. */
	if (k > 1 && first >> 2 >= floor &&
	    ddsnap_volume_read_begin(dc->vol, io->chunk, 1, first >> 2)) {
		io->fast = true;
		return 1;
	}
	return 0;
}

u32 ddsnap_cache_lookup(struct ddsnap_dev *dc, struct ddsnap_io *io, bool write, u64 *addr)
{
	u8 e = cache_get(dc);
	u32 n = io->count;

	if (ddsnap_is_origin(dc)) {
		for (u32 i = 0; i < io->count && n; i++)
			if (io->chunk + i >= dc->nr_chunks || !test_bit(io->chunk + i, dc->safe))
				n = 0;
	} else {
		n = cache_run(dc, io, write, addr);
	}
	if (n) {
		io->epoch = e;
		io->counted = true;
		atomic64_inc(&dc->hits);
	} else {
		cache_put(dc, e);
		atomic64_inc(&dc->misses);
	}
	return n;
}

void ddsnap_cache_count(struct ddsnap_dev *dc, struct ddsnap_io *io)
{
	io->epoch = cache_get(dc);
	io->counted = true;
}

void ddsnap_cache_uncount(struct ddsnap_dev *dc, struct ddsnap_io *io)
{
	if (!io->counted)
		return;
	io->counted = false;
	cache_put(dc, io->epoch);
}

void ddsnap_cache_set_safe(struct ddsnap_dev *dc, u64 chunk, u32 count)
{
	if (!dc->safe || chunk >= dc->nr_chunks)
		return;
	count = min_t(u64, count, dc->nr_chunks - chunk);
	for (u32 i = 0; i < count; i++)
		set_bit(chunk + i, dc->safe);
}

bool ddsnap_cache_set_mapping(struct ddsnap_dev *dc, u64 chunk, u64 addr, bool private)
{
	void *old;

	if (chunk >= dc->nr_chunks)
		return false;
	/* Only this (receive) thread stores, so the test and the store do not race. */
	old = xa_load(&dc->map, chunk);
	if (!private && xa_is_value(old) && (xa_to_value(old) & CACHE_PRIVATE))
		return false;
	/* A failed insert only costs a later round trip. */
	return !xa_is_err(xa_store(&dc->map, chunk, xa_mk_value(addr << 2 | private), GFP_NOIO));
}

bool ddsnap_cache_set_origin(struct ddsnap_dev *dc, u64 chunk, u64 vseq)
{
	void *old;

	if (!READ_ONCE(origin_cache) || chunk >= dc->nr_chunks || READ_ONCE(dc->version) < 3 ||
	    vseq < READ_ONCE(dc->floor) || !ddsnap_volume_good(dc->vol, chunk, vseq))
		return false;
	/* A snapstore mapping is newer: the chunk left the origin for this snapshot for good. */
	old = xa_load(&dc->map, chunk);
	if (xa_is_value(old) && !(xa_to_value(old) & CACHE_ORIGIN))
		return false;
	return !xa_is_err(
		xa_store(&dc->map, chunk, xa_mk_value(vseq << 2 | CACHE_ORIGIN), GFP_NOIO));
}

bool ddsnap_cache_mapped(struct ddsnap_dev *dc, u64 chunk)
{
	void *v = xa_load(&dc->map, chunk);
	unsigned long e = xa_is_value(v) ? xa_to_value(v) : 0;

	if (!(e & CACHE_ORIGIN))
		return xa_is_value(v);
	return e >> 2 >= READ_ONCE(dc->floor) && ddsnap_volume_good(dc->vol, chunk, e >> 2);
}

u8 ddsnap_cache_drop(struct ddsnap_dev *dc)
{
	unsigned long flags, index;
	void *v;
	u8 old;

	/* Two epochs alternate: the one we are about to reopen must have drained first. */
	wait_event(dc->wait, ddsnap_cache_drained(dc, dc->epoch ^ 1));
	if (!ddsnap_is_origin(dc))
		WRITE_ONCE(dc->floor, ddsnap_volume_next(dc->vol));
	spin_lock_irqsave(&dc->lock, flags);
	if (dc->safe)
		bitmap_zero(dc->safe, dc->nr_chunks);
	xa_for_each(&dc->map, index, v) xa_erase(&dc->map, index);
	dc->ahead_lo = dc->ahead_hi = 0; /* its answers are gone too */
	old = dc->epoch;
	/* the cache is empty before the new epoch shows (pairs with cache_get's acquire) */
	smp_store_release(&dc->epoch, old ^ 1);
	spin_unlock_irqrestore(&dc->lock, flags);
	smp_mb(); /* the new epoch is visible before anyone tests the old one's count */
	return old;
}

bool ddsnap_cache_drained(struct ddsnap_dev *dc, u8 epoch)
{
	return !atomic_read(&dc->epoch_inflight[epoch]);
}
