// SPDX-License-Identifier: GPL-2.0-only
/*
 * ddsnap-volume.c - what the origin and snapshot devices of one volume share in the kernel:
 * the snapshot-read race closed without the server.
 *
 * What.  A snapshot chunk the snapshot still shares with the origin is read from the origin.
 * The server answers such a read with a read lock, and an origin write that copies the chunk
 * out is not answered until the lock is released (DESIGN 5's read race): correct, but a
 * round trip per snapshot read.  Since wire version 3 a snapshot device caches those "on the
 * origin" answers (ddsnap-cache.c) and reads from the origin without asking, and this file
 * keeps the guarantee the read lock gave: no origin write that changes a chunk a snapshot
 * reads from the cache reaches the origin while that read is in flight, and no read from
 * the cache starts after such a write was let through.  dm-snapshot does the same with its
 * tracked chunks; here the devices are separate targets, so they meet in a volume object
 * found by the (origin, snapstore) device pair of their table lines.
 *
 * How.  Chunks hash into DDSNAP_VOLUME_BUCKETS buckets (chunk modulo the count: neighbours
 * spread).  Each bucket has
 *	seq	the volume's counter when an origin write last changed one of its chunks;
 *	reads	snapshot reads from the cache in flight on its chunks;
 *	writers	origin writes held until those reads end.
 * The volume counter (seq) only grows.  A snapshot read query records it before it is sent
 * (io->vseq); an "on the origin" answer is cached with that value, and it is good while its
 * bucket's seq is not above it: no origin write changed the bucket's chunks since before
 * the server answered.  A read from the cache (one chunk, or a run of chunks all on the
 * origin) counts itself in the bucket of each of its chunks (reads) only if every entry is
 * still good and no write waits there; an origin write, when the server's reply
 * lets it go (its copy-out is durable: the snapshots map the chunk to the snapstore now),
 * gives its buckets a new seq, which makes every cached "on the origin" entry of them stale,
 * and is held while any of them has reads in flight.  Both happen under one spinlock, so a
 * read either counted itself before the write looked (and the write waits for it) or sees
 * the new seq (and asks the server, which answers with the snapstore).
 *
 * Why the answer's time is taken before the query is sent.  The server may answer "on the
 * origin" just before it copies the chunk out for a write, and the two replies travel on
 * different connections: the write's reply can be handled before the read's.  The write's
 * new seq is then above the value the read recorded, and the answer is not cached.  When
 * the read's reply is handled first, the entry is cached and made stale by the write's reply
 * a moment later; reads from it in between read the origin before the write reaches it.
 *
 * What else changes where a snapshot's data is.  A snapshot write makes its chunk private
 * (the reply replaces the entry, and gives the bucket a new seq for other devices of the
 * same snapshot).  The server writes the origin itself only in a revert, and then sends
 * DROP_CACHE (ORIGIN_CHANGED) to every snapshot device after the copy-out and before the
 * write; a drop raises the device's floor (ddsnap_cache_drop), so answers given before it
 * and handled after it are not cached either.  Writes to the origin device behind the
 * target's back (the raw device while the snapshot devices are up) were never safe and
 * are not now.
 *
 * Locking.  ddsnap_volumes_mutex (ctr/dtr) guards the list and the references.  v->lock is
 * a spinlock, irq-safe (end_io), innermost: nothing is taken inside it.
 *
 * Crash argument.  Nothing here is persistent; a crash takes every cached answer with it.
 */
#include <linux/slab.h>
#include <linux/mm.h>

#include "ddsnap.h"

/* 64 KiB a volume; two chunks collide only 4096 chunks apart (64 MiB at 16 KiB chunks). */
#define DDSNAP_VOLUME_BUCKETS 4096

struct ddsnap_bucket {
	u64 seq;
	u32 reads;
	u32 writers;
};

struct ddsnap_volume {
	struct list_head list; /* on ddsnap_volumes */
	dev_t origin, snapstore;
	unsigned int refs; /* under ddsnap_volumes_mutex */
	spinlock_t lock;
	u64 seq;		 /* grows; written under lock, read without */
	struct list_head held;	 /* origin writes (ddsnap_io.list) waiting for reads */
	struct work_struct work; /* releases held writes once their reads ended */
	struct ddsnap_bucket *b; /* DDSNAP_VOLUME_BUCKETS */
};

static LIST_HEAD(ddsnap_volumes);
static DEFINE_MUTEX(ddsnap_volumes_mutex);

static struct ddsnap_bucket *bucket(struct ddsnap_volume *v, u64 chunk)
{
	return &v->b[chunk & (DDSNAP_VOLUME_BUCKETS - 1)];
}

/* Under v->lock: may held write @io go?  (No read in flight on any of its buckets.) */
static bool volume_clear(struct ddsnap_volume *v, const struct ddsnap_io *io)
{
	for (u32 i = 0; i < io->count; i++)
		if (bucket(v, io->chunk + i)->reads)
			return false;
	return true;
}

/* Submits the held writes whose reads have all ended, in the order they were held. */
static void volume_work(struct work_struct *work)
{
	struct ddsnap_volume *v = container_of(work, struct ddsnap_volume, work);
	struct ddsnap_io *io, *tmp;
	unsigned long flags;
	LIST_HEAD(go);

	spin_lock_irqsave(&v->lock, flags);
	list_for_each_entry_safe (io, tmp, &v->held, list) {
		if (!volume_clear(v, io))
			continue;
		for (u32 i = 0; i < io->count; i++)
			bucket(v, io->chunk + i)->writers--;
		list_move_tail(&io->list, &go);
	}
	spin_unlock_irqrestore(&v->lock, flags);
	list_for_each_entry_safe (io, tmp, &go, list) {
		list_del_init(&io->list);
		submit_bio_noacct(dm_bio_from_per_bio_data(io, sizeof(*io)));
	}
}

int ddsnap_volume_get(struct ddsnap_dev *dc)
{
	dev_t origin = dc->origin->bdev->bd_dev, snapstore = dc->snapstore->bdev->bd_dev;
	struct ddsnap_volume *v;

	mutex_lock(&ddsnap_volumes_mutex);
	list_for_each_entry (v, &ddsnap_volumes, list)
		if (v->origin == origin && v->snapstore == snapstore)
			goto found;
	v = kzalloc(sizeof(*v), GFP_KERNEL);
	if (v)
		v->b = kvcalloc(DDSNAP_VOLUME_BUCKETS, sizeof(*v->b), GFP_KERNEL);
	if (!v || !v->b) {
		mutex_unlock(&ddsnap_volumes_mutex);
		kfree(v);
		return -ENOMEM;
	}
	v->origin = origin;
	v->snapstore = snapstore;
	spin_lock_init(&v->lock);
	INIT_LIST_HEAD(&v->held);
	INIT_WORK(&v->work, volume_work);
	list_add(&v->list, &ddsnap_volumes);
found:
	v->refs++;
	mutex_unlock(&ddsnap_volumes_mutex);
	dc->vol = v;
	return 0;
}

void ddsnap_volume_put(struct ddsnap_dev *dc)
{
	struct ddsnap_volume *v = dc->vol;

	dc->vol = NULL;
	mutex_lock(&ddsnap_volumes_mutex);
	if (--v->refs) {
		mutex_unlock(&ddsnap_volumes_mutex);
		return;
	}
	list_del(&v->list);
	mutex_unlock(&ddsnap_volumes_mutex);
	/* dm ended every bio of the last target first: nothing is held, the work is idle. */
	flush_work(&v->work);
	WARN_ON_ONCE(!list_empty(&v->held));
	kvfree(v->b);
	kfree(v);
}

u64 ddsnap_volume_now(struct ddsnap_volume *v)
{
	return READ_ONCE(v->seq);
}

u64 ddsnap_volume_next(struct ddsnap_volume *v)
{
	unsigned long flags;
	u64 seq;

	spin_lock_irqsave(&v->lock, flags);
	seq = ++v->seq;
	spin_unlock_irqrestore(&v->lock, flags);
	return seq;
}

bool ddsnap_volume_good(struct ddsnap_volume *v, u64 chunk, u64 seq)
{
	return READ_ONCE(bucket(v, chunk)->seq) <= seq;
}

bool ddsnap_volume_read_begin(struct ddsnap_volume *v, u64 chunk, u32 n, u64 seq)
{
	unsigned long flags;
	bool ok = true;

	spin_lock_irqsave(&v->lock, flags);
	for (u32 i = 0; i < n && ok; i++)
		ok = bucket(v, chunk + i)->seq <= seq && !bucket(v, chunk + i)->writers;
	for (u32 i = 0; i < n && ok; i++)
		bucket(v, chunk + i)->reads++;
	spin_unlock_irqrestore(&v->lock, flags);
	return ok;
}

void ddsnap_volume_read_end(struct ddsnap_volume *v, u64 chunk, u32 n)
{
	unsigned long flags;
	bool kick = false;

	spin_lock_irqsave(&v->lock, flags);
	for (u32 i = 0; i < n; i++) {
		struct ddsnap_bucket *b = bucket(v, chunk + i);

		if (!--b->reads && b->writers)
			kick = true;
	}
	spin_unlock_irqrestore(&v->lock, flags);
	if (kick)
		queue_work(system_wq, &v->work);
}

bool ddsnap_volume_write(struct ddsnap_volume *v, struct ddsnap_io *io)
{
	unsigned long flags;
	bool go;
	u64 seq;

	spin_lock_irqsave(&v->lock, flags);
	seq = ++v->seq;
	for (u32 i = 0; i < io->count; i++)
		bucket(v, io->chunk + i)->seq = seq;
	go = volume_clear(v, io);
	if (!go) {
		for (u32 i = 0; i < io->count; i++)
			bucket(v, io->chunk + i)->writers++;
		list_add_tail(&io->list, &v->held);
	}
	spin_unlock_irqrestore(&v->lock, flags);
	return go;
}

void ddsnap_volume_changed(struct ddsnap_volume *v, u64 chunk)
{
	unsigned long flags;

	spin_lock_irqsave(&v->lock, flags);
	bucket(v, chunk)->seq = ++v->seq;
	spin_unlock_irqrestore(&v->lock, flags);
}
