// SPDX-License-Identifier: GPL-2.0-only
/*
 * volume.c - the store and the snapshot engine joined into the volume the server serves
 * (volume.h).
 *
 * Wiring.  The engine keeps its roots (exception tree, snapshot table, provenance tree, and
 * with LABEL_FEATURE_INCOMPAT_DEADLISTS the persisted deadlists' two trees and piece counter)
 * and the gen counter in the store's uberblock: a pre-sync hook runs engine_sync() and
 * stores what it returns, so every txg's uberblock names the trees exactly as that txg left
 * them.  A store without that bit (made before persisted deadlists) is upgraded at open,
 * after the replay (upgrade_deadlists: bounded txgs with a cursor, each made durable, then
 * the bit; the crash argument is there and in doc/format.md, "Upgrade").  The engine's
 * data allocator is the store's metaslab group (DATA class, in chunks); its intent log is
 * the store's, and on open every record newer than the last synced txg is replayed through
 * engine_replay() before anything else may change the volume.
 *
 * Locking.  One mutex (the volume lock) serialises every engine call, which is what the
 * engine requires.  Each call holds the open txg for its duration (store_tx_hold, or
 * store_read_hold for a call that only reads), so a sync can never see a half-done change
 * and never rewrites a tree under a lookup: the sync waits for the holder, and the pre-sync
 * hook, which runs with no holder, may touch the engine without the volume lock.  (Lookups
 * once ran without a hold; a snapshot read then met a node pointer in the middle of the
 * hook's rewrite and failed its checksum, -EILSEQ.)
 *
 * Group commit.  The engine runs in caller_flushes mode: under the lock it copies data and
 * appends log records; after the lock is dropped, the call makes the copies durable and
 * waits until everything appended so far is durable (commit()), and only then returns.
 * Requests that arrive meanwhile append to the same batch, so N concurrent origin writes
 * cost about one flush, not N.  Waiting for everything appended so far (not only this call's
 * records) matters: a chunk another request just copied out already reads as safe, but its
 * copy and record may still be on their way to the disk.
 *
 * Flushes saved.  Every copy the engine makes is followed by its log record.  When the log
 * lives on the snapstore (no separate metadata device), the log's own flush, issued after
 * the record was written and so after the copy completed, makes the copy durable too: a
 * call needs no data flush at all, and a call whose records (and those it relies on) are
 * already durable needs no flush of any kind -- the common origin write of a chunk that an
 * earlier request of the same batch already copied.  With a separate metadata device the
 * snapstore is flushed only when a copy counted in data_seq (bumped under the lock after each
 * call that copied) is not yet known durable (data_durable).  Until that flush returns, a
 * record may be durable without its copy either way (a disk writes its cache out in any
 * order; test_volume log_block_durable_before_its_copy), so every copy-out record carries
 * the data's checksum and replay copies again from the origin, whose write was never
 * released, when the saved data does not match.
 *
 * The intent log rule (store_log_room()).  Appends use INTENT_LOG_NOWAIT, and before each
 * call that may log, this file makes room for VOLUME_LOG_HEADROOM_BLOCKS, syncing (without
 * a hold) when the ring is short.  The volume lock makes the check and the call atomic
 * with respect to other appenders.
 *
 * Revert (volume_revert, ddsnap revert).  Makes the origin read as snapshot T while every
 * snapshot, older or newer than T, keeps reading what it read.  The chunks that may differ
 * are changelist(T -> head): those where T holds an exception (or an overlay entry) and so
 * no longer shares the origin; everywhere else the origin is T's already.  They are copied
 * back in batches, the way a kernel write would be done: first the engine's origin write
 * for the batch (a copy-out for every snapshot that still shares the current origin data,
 * durable before it returns), then the wait hook, once per batch: the server waits for the
 * snapshot readers of those chunks (its read locks) and then has every snapshot device
 * that may cache "read the origin" answers (wire version 3) drop its cache and
 * acknowledge (server.c, revert_wait); only then is T's data (read through T's own
 * mapping, which the copy-out never changes: the new exception dies in the current gen,
 * after T's) written to each origin chunk of the batch.  The order is what makes it safe:
 * after the copy-out no lookup answers "origin" for these chunks any more, so once the
 * readers that were told so before it are done and the caches that may still say so are
 * empty, nothing reads the origin there; a crash anywhere in between left the origin
 * unwritten, and a device the drop reached has only lost cache entries.  The origin is
 * flushed after each batch.  This runs in the server, not in the tool through the dm
 * devices (read the snapshot device, write the origin device, the kernel
 * doing the copy-outs): the marker below must be in the store anyway, the server's copy-outs
 * and read locks are the ones every origin write uses, and it works on files (tests, `ddsnap`
 * without a kernel).  The price: the origin device must not be written meanwhile (the
 * kernel would not know the server writes under it), which `ddsnap revert` enforces by
 * refusing while the device is open and holding it open exclusively.
 *
 * Marker and revert point (volume.h).  The revert starts by creating the hidden marker
 * snapshot (logged like any create) and ends by creating the hidden revert point and then
 * deleting the marker.  The marker is the persistent "revert to T in progress": while it
 * exists nothing may treat the origin as complete (create refuses; the tools show it and
 * receive refuses).  Being a live snapshot, it also keeps the pre-revert origin until the
 * end (its copies are freed by its delete), and it keeps the reverted chunks' copy-outs in
 * one gen: they all die in the gen after the marker's, so the revert point, created after
 * them, sees none of them in changelist(point -> head).  A later origin write to a
 * reverted chunk needs a copy-out again (the revert point is live and newest), so that
 * changelist lists exactly what was written after the revert.  Without the revert point a
 * write there would need no copy-out at all (every snapshot has its own copy) and be
 * invisible, and changelist(T -> head) lists every reverted chunk although the origin
 * equals T there.
 *
 * Crash argument for revert.  Each step is either logged by the engine (creates, deletes,
 * copy-outs: replayed in order) or an origin write that is redone: a crash (or a failure,
 * or a killed client) before the marker's create is durable changed nothing.  After it,
 * the marker says the origin may be half reverted, and running the revert to T again
 * finishes it: the changelist is recomputed (it still contains every chunk, done or not,
 * because the done ones' copy-outs died after T), the origin write of a done chunk needs no
 * copy-out (its last death is the current gen, after the marker), and writing T's data
 * again is idempotent; a torn origin chunk is rewritten before anything copies it (no
 * snapshot shares it).  A crash between the revert point's create and the marker's delete
 * leaves both: the next run deletes the stale revert point first (it is newer than the
 * marker, so its delete frees only copies of writes made after it: none), then finishes as
 * above.  Only one revert runs at a time in one server (v->reverting).
 * The two deletes (the stale revert point at the start, the marker at the end) free chunks
 * that the revert's copy-outs may have allocated in the same open txg; they need no txg
 * sync after them, because no freed chunk is allocated again before its freeing txg is
 * durable, whenever it was allocated (metaslab.c, "Why a run allocated and freed in the
 * same open txg still waits"), so replay never redoes a freed copy over a new owner.
 *
 * Crash argument.  Apart from a revert's origin writes (above), nothing here writes
 * anything itself: the engine's records reach the log before its calls return, and the trees reach the disk only through txg syncs.  A crash at
 * any point leaves the last synced txg plus a log whose replay re-applies every
 * acknowledged change.
 */
#include "snap/volume.h"
#include "ddsnap_wire.h"
#include "blk/ownership.h"
#include "blk/bdev.h"
#include "blk/cache.h"
#include "snap/engine.h"
#include "store/intent_log.h"
#include "util/log.h"
#include "util/xfer.h"
#include "pdata/metaslab.h"
#include "store/store.h"
#include <pthread.h>
#include <string.h>
#include <time.h>

/*
 * Log blocks one call may need: an origin write of DDSNAP_WIRE_MAX_CHUNKS copy-outs, each
 * record well under 100 bytes, fits in 8 blocks; 64 leaves room for a policy drop too.
 */
#define VOLUME_LOG_HEADROOM_BLOCKS 64
/*
 * A call refused because space waits for the open txg to be durable (-EAGAIN) or the log
 * ring is full (-EWOULDBLOCK) changed nothing that a retry would redo wrongly; it is retried
 * after a sync this many times before the error goes to the caller.
 */
#define VOLUME_MAX_RETRIES 3
/*
 * Copier threads of the engine: a batch of scattered copy-outs (random writes after a
 * snapshot) goes to the disks this many at a time instead of one by one.
 */
#define VOLUME_COPY_THREADS 8
/* Chunks the full-store policy keeps free: 1/64 of the data space, at least this many. */
#define VOLUME_RESERVE_MIN_CHUNKS 64
#define VOLUME_RESERVE_SHIFT	  6
/* Entries an upgrade txg writes at most (doc/format.md, "Upgrade"). */
#define VOLUME_UPGRADE_TXG_ENTRIES (1u << 18)

struct volume {
	pthread_mutex_t lock;
	struct bdev *snapstore, *origin, *metadev;
	bool borrowed; /* the devices belong to the caller (volume_params.snapstore_dev) */
	struct store *store;
	struct engine *engine;
	struct xfer_progress replay; /* records replayed at open (volume_params.progress) */
	u64 chunk_blocks;	     /* metadata blocks per data chunk */
	u64 data_seq;	  /* calls that wrote snapstore data; bumped under the lock (atomic) */
	u64 data_durable; /* data_seq known flushed (atomic) */
	u64 origin_chunks;
	bool reverting; /* a volume_revert is running (atomic) */
	/* The engine keeps persisted deadlists (the label's LABEL_FEATURE_INCOMPAT_DEADLISTS,
	 * or the upgrade at open made them): the pre-sync hook stores their roots. */
	bool dl_persisted;
	int upgrade_err;    /* the upgrade at open failed: its txg must never be synced */
	u64 upgrade_cursor; /* the upgrade at open's UB_SCALAR_UPGRADE_CURSOR; 0 after it */
	/* The last changelist computed, served page by page. */
	struct {
		bool valid;
		u32 from, to;
		u64 gen;
		u64 *chunks, n;
	} cl;
};

/*----------------------------------------------------------------
 * Engine callbacks
 *
 * The engine addresses snapstore data in chunks (byte offset = address * chunk size); the
 * allocator in device blocks.  The data region starts chunk-aligned (label.c checks it), so
 * the two convert exactly.
 *--------------------------------------------------------------*/

static int space_alloc(void *priv, struct tx *tx, u64 want, u64 *start, u64 *got)
{
	struct volume *v = priv;
	u64 block;
	int r = metaslab_alloc_data(store_metaslab(v->store), want, &block, got);

	if (!r)
		*start = block / v->chunk_blocks;
	return r;
}

static void space_free(void *priv, struct tx *tx, u64 start, u64 count)
{
	struct volume *v = priv;

	/* Birth txg 0: never the open txg's, so reuse waits until this txg is durable. */
	metaslab_free_data(store_metaslab(v->store), start * v->chunk_blocks, count, 0);
}

static u64 space_avail(void *priv)
{
	struct volume *v = priv;
	struct metaslab_class_stats d, none;

	metaslab_stats(store_metaslab(v->store), METASLAB_CLASS_DATA, &d);
	metaslab_stats(store_metaslab(v->store), METASLAB_CLASS_NONE, &none);
	return d.free / v->chunk_blocks + none.free / v->chunk_blocks;
}

static u64 space_deferred(void *priv)
{
	struct volume *v = priv;
	struct metaslab_class_stats d;

	metaslab_stats(store_metaslab(v->store), METASLAB_CLASS_DATA, &d);
	return d.deferred / v->chunk_blocks;
}

static int space_claim(void *priv, struct tx *tx, u64 start, u64 count)
{
	struct volume *v = priv;

	/* A replayed record's address: in blocks it must not wrap into the data region. */
	if (start > UINT64_MAX / v->chunk_blocks)
		return -EINVAL;
	return metaslab_claim_data(store_metaslab(v->store), start * v->chunk_blocks, count);
}

static const struct engine_space_ops space_ops = {
	.alloc = space_alloc,
	.free = space_free,
	.avail = space_avail,
	.deferred = space_deferred,
	.claim = space_claim,
};

static int ilog_append(void *priv, struct tx *tx, u16 type, const void *payload, u16 len)
{
	struct volume *v = priv;
	u64 seq;

	return intent_log_append(store_log(v->store), type, tx->txg, payload, len,
				 INTENT_LOG_NOWAIT, &seq);
}

static int replay_record(void *arg, struct tx *tx, const struct intent_log_record *rec)
{
	struct volume *v = arg;

	xfer_progress_update(&v->replay, v->replay.done + 1);
	return engine_replay(v->engine, tx, rec->type, rec->payload, rec->len);
}

void volume_roots_of(const struct uberblock *ub, struct engine_roots *out)
{
	out->exceptions = ub->roots[UB_ROOT_EXCEPTIONS];
	out->snapshots = ub->roots[UB_ROOT_SNAPSHOTS];
	out->provenance = ub->roots[UB_ROOT_PROVENANCE];
	out->gen = ub->scalars[UB_SCALAR_GEN];
	out->deadlists.pieces = ub->roots[UB_ROOT_DEADLISTS];
	out->deadlists.entries = ub->roots[UB_ROOT_DEADLIST_ENTRIES];
	out->deadlists.next_piece = ub->scalars[UB_SCALAR_NEXT_PIECE];
}

/* Before the first provenance record (engine_create_from): the label's feature bit. */
static int set_provenance_feature(void *priv)
{
	struct volume *v = priv;

	return store_set_features(v->store, LABEL_FEATURE_RO_PROVENANCE, 0);
}

static int engine_pre_sync(void *arg, struct tx *tx)
{
	struct volume *v = arg;
	struct engine_roots roots;
	int r = v->upgrade_err ? v->upgrade_err : engine_sync(v->engine, tx, &roots);

	if (r)
		return r;
	if (v->dl_persisted) {
		store_set_root(v->store, UB_ROOT_DEADLISTS, &roots.deadlists.pieces);
		store_set_root(v->store, UB_ROOT_DEADLIST_ENTRIES, &roots.deadlists.entries);
		store_set_scalar(v->store, UB_SCALAR_NEXT_PIECE, roots.deadlists.next_piece);
		store_set_scalar(v->store, UB_SCALAR_UPGRADE_CURSOR, v->upgrade_cursor);
		store_set_scalar(v->store, UB_SCALAR_UPGRADE_BIRTH,
				 v->upgrade_cursor ? MAX(roots.exceptions.birth_txg,
							 roots.snapshots.birth_txg)
						   : 0);
	}
	store_set_root(v->store, UB_ROOT_EXCEPTIONS, &roots.exceptions);
	store_set_root(v->store, UB_ROOT_SNAPSHOTS, &roots.snapshots);
	store_set_root(v->store, UB_ROOT_PROVENANCE, &roots.provenance);
	store_set_scalar(v->store, UB_SCALAR_GEN, roots.gen);
	return 0;
}

/*----------------------------------------------------------------
 * Open and close
 *--------------------------------------------------------------*/

/* Closes the devices the volume opened itself, and frees it. */
static void volume_free(struct volume *v)
{
	if (!v->borrowed) {
		bdev_close(v->metadev);
		bdev_close(v->origin);
		bdev_close(v->snapstore);
	}
	free(v->cl.chunks);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/*
 * Says in the text log which txg the store opened at, what replay re-applied, and what the
 * open's time went to (@ms: the store, the engine's deadlist rebuild, the replay).
 */
static void report_open(struct volume *v, const double ms[3])
{
	struct intent_log_stats ls;
	struct engine_status es;

	intent_log_stats(store_log(v->store), &ls);
	engine_status(v->engine, &es);
	log_info("store opened at txg %llu, %llu log records replayed",
		 (unsigned long long)store_synced_txg(v->store), (unsigned long long)ls.replayed);
	log_info("open: store %.0f ms, engine %.0f ms (%llu exceptions, %u snapshots), "
		 "replay %.0f ms",
		 ms[0], ms[1], (unsigned long long)es.exceptions, es.live + es.invalidated, ms[2]);
}

/*
 * The upgrade of a store made before persisted deadlists (doc/format.md, "Versions and
 * upgrades" and "Upgrade"), at its first writable open, after the replay: the deadlists the
 * engine rebuilt in memory are written to the two trees in txgs of at most @max_entries
 * entries, each ended earlier when a quarter of the block cache is dirty, and each made
 * durable with the cursor (UB_SCALAR_UPGRADE_CURSOR: entries written plus 1;
 * UB_SCALAR_UPGRADE_BIRTH: the larger root birth of the exception tree and the snapshot
 * table, which nothing changes between the upgrade's txgs); then the label bit is set: the
 * one commit point.  A crash between txgs leaves the store complete in the old format with
 * partial trees and their cursor: the next open continues after the cursor when its replay
 * applied nothing and the birth still matches, and otherwise (no cursor, the store written
 * in between, or the walk changed) frees the trees in its first txg and starts from zero.
 * After a replay the deadlists are rebuilt from the tree first, so the walk is in the order
 * a later open's rebuild repeats.  Returns 0 or -errno with @why set.
 */
static int upgrade_deadlists(struct volume *v, u64 max_entries, const char *dev, char *why,
			     size_t whylen)
{
	struct intent_log_stats ls;
	struct engine_roots roots;
	struct engine_status es;
	struct cache_stats cs;
	struct uberblock ub;
	struct timespec t0;
	u64 resume = 0, written = 0, cursor, births;
	unsigned txgs = 0;
	bool done = false;
	int r;

	engine_status(v->engine, &es);
	intent_log_stats(store_log(v->store), &ls);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* The last synced txg's; with nothing replayed, the trees the walk is of.  Records
	 * replayed were written after the cursor's txg (an upgrade logs nothing): start again. */
	store_last_uberblock(v->store, &ub);
	volume_roots_of(&ub, &roots);
	cursor = ub.scalars[UB_SCALAR_UPGRADE_CURSOR];
	births = MAX(roots.exceptions.birth_txg, roots.snapshots.birth_txg);
	if (!ls.replayed && cursor && roots.deadlists.entries.blocknr &&
	    ub.scalars[UB_SCALAR_UPGRADE_BIRTH] == births)
		resume = cursor - 1;
	if (resume)
		log_info("store on %s: upgrading to persisted deadlists (%llu exceptions), "
			 "continuing an interrupted upgrade after entry %llu",
			 dev, (unsigned long long)es.exceptions, (unsigned long long)resume);
	else
		log_info("store on %s: upgrading to persisted deadlists (%llu exceptions)", dev,
			 (unsigned long long)es.exceptions);
	cache_stats(store_cache(v->store), &cs);
	while (!done) {
		struct tx *tx = store_tx_hold(v->store);

		if (!tx)
			return why_printf(why, whylen, store_failed(v->store) ?: -EROFS,
					  "cannot upgrade the store on %s: the store failed", dev);
		r = txgs ? 0
			 : engine_upgrade_begin(v->engine, tx, &roots.deadlists, resume,
						ls.replayed > 0);
		if (!r) {
			v->dl_persisted = true; /* the hook stores the (partial) trees' roots */
			r = engine_upgrade_step(v->engine, tx, max_entries, cs.budget / 4, &written,
						&done);
		}
		if (r)
			v->upgrade_err = r; /* before the release: no sync may store half of it */
		else
			v->upgrade_cursor = written + 1;
		store_tx_release(v->store, tx);
		if (!r)
			r = store_sync(v->store);
		if (r)
			return why_printf(why, whylen, r,
					  "cannot upgrade the store on %s to persisted deadlists: "
					  "%s",
					  dev, errmsg(r));
		txgs++;
	}
	r = store_set_features(v->store, 0, LABEL_FEATURE_INCOMPAT_DEADLISTS);
	if (r)
		return why_printf(why, whylen, r,
				  "cannot upgrade the store on %s to persisted deadlists: %s", dev,
				  errmsg(r));
	v->upgrade_cursor = 0; /* the next txg clears the cursor */
	log_info("store on %s: upgraded to persisted deadlists in %.0f ms, %u txgs", dev,
		 1000 * xfer_elapsed(&t0), txgs);
	return 0;
}

int volume_open(const struct volume_params *p, struct volume **out, char *why, size_t whylen)
{
	struct volume *v = xzalloc(sizeof(*v));
	struct store_config cfg = {0};
	struct engine_params ep = {0};
	struct engine_roots roots = {0};
	struct uberblock ub;
	const struct label *l;
	struct store_hook hook = {.pre_sync = engine_pre_sync, .arg = v};
	char sub[700]; /* an intent log damage report is long */
	struct timespec t0;
	double ms[3];
	int r;

	pthread_mutex_init(&v->lock, NULL);
	if (p->snapstore_dev) {
		v->borrowed = true;
		v->snapstore = p->snapstore_dev;
		v->origin = p->origin_dev;
		v->metadev = p->metadev_dev;
		r = 0;
	} else {
		/* One store per process, one process per store: every device exclusively. */
		const char *paths[] = {p->snapstore, p->origin, p->metadev};
		const char *roles[] = {"snapstore", "origin", "metadata device"};

		r = ownership_distinct(paths, roles, 3, why, whylen);
		if (!r)
			r = ownership_open(p->snapstore, roles[0], 0, OWN_EXCLUSIVE, &v->snapstore,
					   why, whylen);
		if (!r)
			r = ownership_open(p->origin, roles[1], 0, OWN_EXCLUSIVE, &v->origin, why,
					   whylen);
		if (!r && p->metadev)
			r = ownership_open(p->metadev, roles[2], 0, OWN_EXCLUSIVE, &v->metadev, why,
					   whylen);
	}
	if (r)
		goto out_close_devs;

	cfg.snapstore = v->snapstore;
	cfg.metadev = v->metadev;
	cfg.cache_bytes = p->cache_bytes;
	cfg.txg_timeout_ms = p->txg_timeout_ms;
	cfg.discard_damaged_log = p->discard_damaged_log;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = store_open(&cfg, &v->store, sub, sizeof(sub));
	ms[0] = 1000 * xfer_elapsed(&t0);
	if (r) {
		why_printf(why, whylen, r, "cannot open the store on %s: %s", p->snapstore, sub);
		goto out_close_devs;
	}
	l = store_label(v->store);
	if (v->origin->size != l->origin_bytes) {
		/* Smaller: chunks past its end are gone; larger: another origin, or a grown one
		 * whose new tail no snapshot would protect.  Either way, not this store's. */
		r = why_printf(why, whylen, -EINVAL,
			       "origin %s has %llu bytes but the store on %s was made for an "
			       "origin of %llu bytes: the wrong origin, or one that was resized",
			       p->origin ? p->origin : v->origin->name,
			       (unsigned long long)v->origin->size,
			       p->snapstore ? p->snapstore : v->snapstore->name,
			       (unsigned long long)l->origin_bytes);
		goto out_close_store;
	}
	if (l->origin_bytes & ((1ULL << l->chunk_shift) - 1))
		log_warn("origin %s: its last %llu bytes are less than a chunk and are not "
			 "snapshotted (a store initialized before partial chunks were refused)",
			 v->origin->name,
			 (unsigned long long)(l->origin_bytes & ((1ULL << l->chunk_shift) - 1)));
	v->chunk_blocks = label_chunk_blocks(l);
	v->origin_chunks = l->origin_bytes >> l->chunk_shift;

	ep.chunk_size = 1u << l->chunk_shift;
	ep.origin_chunks = v->origin_chunks;
	ep.origin = v->origin;
	ep.snapstore = v->snapstore;
	ep.cache = store_cache(v->store);
	ep.space = &space_ops;
	ep.space_priv = v;
	ep.ilog_append = ilog_append;
	ep.ilog_priv = v;
	ep.caller_flushes = true;
	ep.invalidate = p->invalidate;
	ep.invalidate_priv = p->invalidate_priv;
	ep.reserve_chunks =
		MAX((space_avail(v) >> VOLUME_RESERVE_SHIFT), (u64)VOLUME_RESERVE_MIN_CHUNKS);
	ep.autodelete = true;
	ep.copy_threads = VOLUME_COPY_THREADS;
	ep.progress = p->progress;
	ep.data_first = l->data_start / v->chunk_blocks;
	ep.data_end = (l->data_start + l->data_blocks) / v->chunk_blocks;
	memcpy(ep.uuid, l->uuid, sizeof(ep.uuid));
	ep.set_feature = set_provenance_feature;
	ep.feature_priv = v;
	store_last_uberblock(v->store, &ub); /* the open txg's roots: nothing synced yet */
	volume_roots_of(&ub, &roots);
	v->dl_persisted = l->feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS;
	ep.persist_deadlists = v->dl_persisted;
	if (!v->dl_persisted) /* rebuilt now, upgraded after the replay (upgrade_deadlists) */
		memset(&roots.deadlists, 0, sizeof(roots.deadlists));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = engine_open(&ep, &roots, &v->engine);
	ms[1] = 1000 * xfer_elapsed(&t0);
	if (r) {
		why_printf(why, whylen, r, "cannot open the snapshot metadata: %s", errmsg(r));
		goto out_close_store;
	}
	store_add_hook(v->store, &hook);
	/* How many records the log holds is known only at its end: a count and a rate. */
	xfer_progress_init_units(&v->replay, "open: replaying the intent log", "records", 0, false);
	v->replay.enabled &= p->progress;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = store_open_log(v->store, replay_record, v, sub, sizeof(sub));
	ms[2] = 1000 * xfer_elapsed(&t0);
	if (v->replay.done)
		xfer_progress_done(&v->replay);
	if (r) {
		why_printf(why, whylen, r, "cannot replay the intent log: %s", sub);
		goto out_close_engine;
	}
	if (!v->dl_persisted && !p->keep_old_format) {
		r = upgrade_deadlists(v,
				      p->upgrade_txg_entries ? p->upgrade_txg_entries
							     : VOLUME_UPGRADE_TXG_ENTRIES,
				      p->snapstore ? p->snapstore : v->snapstore->name, why,
				      whylen);
		if (r)
			goto out_close_engine;
	}
	report_open(v, ms);
	*out = v;
	return 0;

out_close_engine:
	store_stop_thread(v->store);
	engine_close(v->engine);
out_close_store:
	store_abandon(v->store);
out_close_devs:
	volume_free(v);
	return r;
}

int volume_close(struct volume *v)
{
	struct intent_log_stats ls;
	int r;

	store_stop_thread(v->store); /* no sync may run the engine's hook once it is closed */
	r = store_sync(v->store);

	intent_log_stats(store_log(v->store), &ls);
	log_info("intent log since open: %llu records in %llu batches (%llu issued while another "
		 "was in flight), %llu flushes",
		 (unsigned long long)ls.records, (unsigned long long)ls.batches,
		 (unsigned long long)ls.overlapped, (unsigned long long)ls.flushes);
	if (r)
		log_err("final txg sync failed: %s", errmsg(r));
	engine_close(v->engine);
	if (r)
		store_abandon(v->store);
	else
		r = store_close(v->store);
	volume_free(v);
	return r;
}

void volume_abandon(struct volume *v)
{
	store_stop_thread(v->store);
	engine_close(v->engine);
	store_abandon(v->store);
	volume_free(v);
}

/*----------------------------------------------------------------
 * Calls under the volume lock and a txg hold
 *--------------------------------------------------------------*/

/*
 * Takes the volume lock, makes room in the intent log, and holds the txg.  Returns the tx,
 * or NULL (lock not held) with *err set when the store failed.
 */
static struct tx *begin(struct volume *v, int *err)
{
	struct tx *tx;

	pthread_mutex_lock(&v->lock);
	*err = store_log_room(v->store, VOLUME_LOG_HEADROOM_BLOCKS);
	if (*err)
		goto out_unlock;
	tx = store_tx_hold(v->store);
	if (tx)
		return tx;
	*err = store_failed(v->store) ? store_failed(v->store) : -EROFS;
out_unlock:
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

static void end(struct volume *v, struct tx *tx)
{
	store_tx_release(v->store, tx);
	pthread_mutex_unlock(&v->lock);
}

/*
 * For a call that only reads the engine: the volume lock, and a read hold so that no sync
 * (whose pre-sync hook rewrites tree nodes and their pointers without the volume lock) runs
 * under the lookup.  Returns whether the hold was taken (not when the store failed: then no
 * sync runs).
 */
static bool read_begin(struct volume *v)
{
	pthread_mutex_lock(&v->lock);
	return store_read_hold(v->store);
}

static void read_end(struct volume *v, bool held)
{
	if (held)
		store_read_release(v->store);
	pthread_mutex_unlock(&v->lock);
}

/*
 * Whether a call that failed with @err should run again: after -EAGAIN (freed space becomes
 * reusable once the open txg is durable) or -EWOULDBLOCK (the log ring is full), sync the
 * txg, and for the latter wait for ring space.  Called without the volume lock or a hold.
 */
static bool retry_after_sync(struct volume *v, int err, int *tries)
{
	if ((err != -EAGAIN && err != -EWOULDBLOCK) || ++*tries > VOLUME_MAX_RETRIES)
		return false;
	if (store_sync(v->store))
		return false;
	if (err == -EWOULDBLOCK && intent_log_wait_space(store_log(v->store)))
		return false;
	return true;
}

/*
 * What commit() must make durable besides the log: the copies the caller relies on (a
 * data_seq), all of them, or none (the call wrote no snapstore data).
 */
#define COMMIT_ALL  UINT64_MAX
#define COMMIT_NONE 0

/* Under the volume lock, after an engine call that wrote @wrote snapstore chunks. */
static u64 data_written(struct volume *v, u64 wrote)
{
	if (wrote)
		return __atomic_add_fetch(&v->data_seq, 1, __ATOMIC_ACQ_REL);
	return __atomic_load_n(&v->data_seq, __ATOMIC_ACQUIRE);
}

/*
 * Makes everything appended so far durable, outside the volume lock: the copies up to
 * data_seq @need (COMMIT_ALL: every one so far), then the log records describing them (the
 * essay's "Flushes saved").  Returns @err, or the flush's error if the call itself succeeded.
 */
static int commit(struct volume *v, u64 need, int err)
{
	int r = 0;

	if (v->metadev && need > __atomic_load_n(&v->data_durable, __ATOMIC_ACQUIRE)) {
		/* Every copy counted so far completed before this flush is issued. */
		u64 upto = __atomic_load_n(&v->data_seq, __ATOMIC_ACQUIRE);
		u64 old = __atomic_load_n(&v->data_durable, __ATOMIC_ACQUIRE);

		r = bdev_flush(v->snapstore);
		while (!r && old < upto &&
		       !__atomic_compare_exchange_n(&v->data_durable, &old, upto, false,
						    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			;
	}
	if (!r)
		r = intent_log_flush(store_log(v->store));
	if (r)
		log_err("intent log commit failed: %s", errmsg(r));
	return err ? err : r;
}

u32 volume_chunk_bits(struct volume *v)
{
	return store_label(v->store)->chunk_shift;
}

u64 volume_origin_sectors(struct volume *v)
{
	return store_label(v->store)->origin_bytes >> 9;
}

void volume_uuid(struct volume *v, u8 uuid[16])
{
	memcpy(uuid, store_label(v->store)->uuid, 16);
}

u64 volume_gen(struct volume *v)
{
	struct engine_status st;
	bool held = read_begin(v);

	engine_status(v->engine, &st);
	read_end(v, held);
	return st.gen;
}

int volume_origin_write_start(struct volume *v, const struct volume_range *r, u32 n, u64 *gen,
			      u64 *need)
{
	struct engine_range ranges[VOLUME_MAX_RANGES];
	struct tx *tx;
	u64 copied, seq;
	int err = 0, tries = 0;

	*need = COMMIT_ALL;
	if (n > ARRAY_SIZE(ranges))
		return -EINVAL;
	for (u32 i = 0; i < n; i++)
		ranges[i] = (struct engine_range){r[i].chunk, r[i].count};
	do {
		tx = begin(v, &err);
		if (!tx)
			return err;
		copied = 0;
		err = engine_origin_write(v->engine, tx, ranges, n, gen, &copied);
		/* Counted even when it failed: what it copied is safe for the next caller. */
		seq = data_written(v, copied);
		*need = err ? COMMIT_ALL : seq;
		end(v, tx);
	} while (retry_after_sync(v, err, &tries));
	return err;
}

int volume_origin_write_finish(struct volume *v, u64 need, int err)
{
	return commit(v, need, err);
}

int volume_origin_write(struct volume *v, const struct volume_range *r, u32 n, u64 *gen)
{
	u64 need;
	int err = volume_origin_write_start(v, r, n, gen, &need);

	return volume_origin_write_finish(v, need, err);
}

int volume_snap_read(struct volume *v, u32 tag, u64 chunk, bool *origin, u64 *addr)
{
	enum engine_map_where where;
	bool held = read_begin(v);
	int err = engine_snap_read_map(v->engine, tag, chunk, &where, addr);

	read_end(v, held);
	*origin = !err && where == ENGINE_MAP_ORIGIN;
	return err;
}

int volume_snap_write(struct volume *v, u32 tag, struct volume_snap_chunk *c, u32 n)
{
	struct engine_snap_chunk ec[DDSNAP_WIRE_MAX_CHUNKS];
	int err = 0, tries = 0;

	for (u32 i = 0; i < n;) {
		u32 m = MIN(n - i, (u32)DDSNAP_WIRE_MAX_CHUNKS), got;
		struct tx *tx = begin(v, &err);

		if (!tx) {
			for (; i < n; i++)
				c[i].err = err;
			break;
		}
		for (u32 j = 0; j < m; j++)
			ec[j] = (struct engine_snap_chunk){.chunk = c[i + j].chunk};
		/* the chunks' copy-ins share one snapstore flush (engine.h) */
		got = engine_snap_write(v->engine, tx, tag, ec, m);
		/* Copy-ins are not counted one by one: count the call, so an origin write that
		 * relies on one (its snapshot now has an overlay) waits for its flush too. */
		(void)data_written(v, 1);
		end(v, tx);
		for (u32 j = 0; j < got + (got < m); j++) {
			c[i + j].addr = ec[j].addr;
			c[i + j].err = ec[j].err;
		}
		i += got;
		if (got < m && !retry_after_sync(v, c[i].err, &tries))
			i++; /* its error stands */
	}
	err = commit(v, COMMIT_ALL, 0);
	for (u32 i = 0; i < n && err; i++)
		if (!c[i].err)
			c[i].err = err;
	return err;
}

int volume_snap_state(struct volume *v, u32 tag, u32 *state, u64 *gen)
{
	struct engine_snapinfo info;
	bool held = read_begin(v);
	int err = engine_snap_info(v->engine, tag, &info);

	read_end(v, held);
	if (err)
		return err;
	*state = info.state == ENGINE_SNAP_INVALID ? DDSNAP_STATE_INVALID : DDSNAP_STATE_NORMAL;
	*gen = info.gen;
	return 0;
}

int volume_snap_open(struct volume *v, u32 tag, int delta)
{
	bool held = read_begin(v);
	int err = engine_open_count(v->engine, tag, delta);

	read_end(v, held);
	return err;
}

/* Whether snapshot @tag exists (under the volume lock). */
static bool has_snap(struct volume *v, u32 tag)
{
	struct engine_snapinfo info;

	return engine_snap_info(v->engine, tag, &info) == 0;
}

int volume_create(struct volume *v, u32 tag, u64 *gen)
{
	return volume_create_from(v, tag, NULL, gen);
}

int volume_create_from(struct volume *v, u32 tag, const struct engine_provenance *prov, u64 *gen)
{
	struct engine_snapinfo info = {0};
	struct tx *tx;
	int err = 0, tries = 0;

	if (tag > VOLUME_TAG_USER_MAX)
		return -EINVAL;
	do {
		tx = begin(v, &err);
		if (!tx)
			return err;
		/* The origin is half reverted while the marker exists (the essay). */
		err = has_snap(v, VOLUME_TAG_REVERTING) ? -EBUSY : 0;
		if (!err)
			err = engine_create_from(v->engine, tx, tag, (u64)time(NULL), 0, prov);
		if (!err)
			err = engine_snap_info(v->engine, tag, &info);
		/* The new snapshot is the newest: the revert point has done its job. */
		if (!err && has_snap(v, VOLUME_TAG_REVERT_POINT) &&
		    engine_delete(v->engine, tx, VOLUME_TAG_REVERT_POINT))
			log_warn("snapshot %u created, but the revert point could not be dropped",
				 tag);
		end(v, tx);
	} while (retry_after_sync(v, err, &tries));
	err = commit(v, COMMIT_NONE, err);
	if (!err)
		*gen = info.gen;
	return err;
}

int volume_delete(struct volume *v, u32 tag)
{
	struct engine_snapinfo mark;
	struct tx *tx;
	int err = 0, tries = 0;

	if (volume_tag_hidden(tag))
		return -EINVAL;
	do {
		tx = begin(v, &err);
		if (!tx)
			return err;
		/* A revert in progress reads from the snapshot it reverts to. */
		if (!engine_snap_info(v->engine, VOLUME_TAG_REVERTING, &mark) && mark.ctime == tag)
			err = -EBUSY;
		else
			err = engine_delete(v->engine, tx, tag);
		end(v, tx);
	} while (retry_after_sync(v, err, &tries));
	return commit(v, COMMIT_NONE, err);
}

int volume_priority(struct volume *v, u32 tag, s32 priority)
{
	struct tx *tx;
	int err = 0, tries = 0;

	if (priority < -128 || priority > 127 || volume_tag_hidden(tag))
		return -EINVAL;
	do {
		tx = begin(v, &err);
		if (!tx)
			return err;
		err = engine_set_priority(v->engine, tx, tag, (int8_t)priority);
		end(v, tx);
	} while (retry_after_sync(v, err, &tries));
	return commit(v, COMMIT_NONE, err);
}

int volume_usecount(struct volume *v, u32 tag, s32 delta, u32 *count)
{
	struct engine_snapinfo info;
	struct tx *tx;
	int err = 0;

	if (volume_tag_hidden(tag))
		return -EINVAL;
	tx = begin(v, &err);
	if (!tx)
		return err;
	err = engine_snap_info(v->engine, tag, &info);
	if (!err && (info.holds + delta < 0 || info.holds + delta > UINT16_MAX))
		err = -EINVAL;
	/* The engine moves holds one at a time; a failure part way leaves the count valid. */
	for (s32 i = 0; !err && i < (delta < 0 ? -delta : delta); i++)
		err = engine_hold(v->engine, tx, tag, delta < 0 ? -1 : 1);
	if (!engine_snap_info(v->engine, tag, &info))
		*count = info.holds;
	end(v, tx);
	return commit(v, COMMIT_NONE, err);
}

int volume_list(struct volume *v, u64 cursor, struct engine_snapinfo *out, u32 max, u32 *count,
		u32 *total, u64 *next)
{
	u32 n, first = cursor < UINT32_MAX ? (u32)cursor : UINT32_MAX;
	bool held = read_begin(v);

	n = engine_list(v->engine, first, out, max);
	read_end(v, held);
	*total = n;
	*count = first < n ? MIN(n - first, max) : 0;
	*next = first + *count < n ? first + *count : VOLUME_CURSOR_END;
	return 0;
}

int volume_status(struct volume *v, struct volume_stats *out)
{
	struct engine_status es;
	struct metaslab_class_stats d, m, none;
	u64 used = 0, total = 0;
	bool held = read_begin(v);

	engine_status(v->engine, &es);
	metaslab_stats(store_metaslab(v->store), METASLAB_CLASS_DATA, &d);
	metaslab_stats(store_metaslab(v->store), METASLAB_CLASS_META, &m);
	metaslab_stats(store_metaslab(v->store), METASLAB_CLASS_NONE, &none);
	if (store_log(v->store))
		intent_log_usage(store_log(v->store), &used, &total);
	*out = (struct volume_stats){
		.gen = es.gen,
		.txg = store_synced_txg(v->store),
		.chunk_size = 1ULL << store_label(v->store)->chunk_shift,
		.origin_bytes = store_label(v->store)->origin_bytes,
		/* Unclaimed metaslabs of a shared device count as free space for both. */
		.data_total = (d.total + none.total) / v->chunk_blocks,
		.data_free = (d.free + none.free) / v->chunk_blocks,
		.meta_total = m.total + none.total,
		.meta_free = m.free + none.free,
		.exceptions = es.exceptions,
		.snapshots = es.live + es.invalidated,
		.reserve_chunks = es.reserve_chunks,
		.log_used = used,
		.log_size = total,
	};
	read_end(v, held);
	return 0;
}

int volume_changelist(struct volume *v, u32 from, u32 to, u64 cursor, u64 *out, u32 max, u32 *count,
		      u64 *next)
{
	struct engine_status es;
	u64 i;
	int err = 0;
	bool held;

	*count = 0;
	*next = VOLUME_CURSOR_END;
	if (from == DDSNAP_TAG_NONE) {
		/* No source: every chunk of the volume. */
		for (i = cursor; i < v->origin_chunks && *count < max; i++)
			out[(*count)++] = i;
		*next = i < v->origin_chunks ? i : VOLUME_CURSOR_END;
		return 0;
	}
	held = read_begin(v);
	engine_status(v->engine, &es);
	/*
	 * A listing is computed when it starts (cursor 0) and served from memory page by page,
	 * so it describes one moment even while the origin is being written.
	 */
	if (!cursor || !v->cl.valid || v->cl.from != from || v->cl.to != to ||
	    v->cl.gen != es.gen) {
		free(v->cl.chunks);
		v->cl.chunks = NULL;
		v->cl.valid = false;
		err = engine_changelist(v->engine, from, to == DDSNAP_TAG_HEAD ? ENGINE_HEAD : to,
					&v->cl.chunks, &v->cl.n, NULL);
		if (!err) {
			v->cl.valid = true;
			v->cl.from = from;
			v->cl.to = to;
			v->cl.gen = es.gen;
		}
	}
	if (!err) {
		/* The cursor is a chunk number: continue at the first changed chunk >= it. */
		u64 lo = 0, hi = v->cl.n;

		while (lo < hi) {
			u64 mid = lo + (hi - lo) / 2;

			if (v->cl.chunks[mid] < cursor)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (i = lo; i < v->cl.n && *count < max; i++)
			out[(*count)++] = v->cl.chunks[i];
		*next = i < v->cl.n ? v->cl.chunks[i] : VOLUME_CURSOR_END;
	}
	read_end(v, held);
	return err;
}

/*----------------------------------------------------------------
 * Revert (the essay)
 *--------------------------------------------------------------*/

/* Origin chunks per batch: one origin-write call, one origin flush. */
#define VOLUME_REVERT_BATCH 64

/*
 * The first step, under the lock: checks @tag, drops a stale revert point, creates the
 * marker unless this is a rerun, and lists the chunks to copy back.  -EBUSY with the other
 * revert's tag in *@other.
 */
static int revert_begin(struct volume *v, struct tx *tx, u32 tag, u64 **chunks, u64 *n, u64 *other)
{
	struct engine_snapinfo info, mark;
	int err = engine_snap_info(v->engine, tag, &info);

	if (err)
		return err;
	if (info.state == ENGINE_SNAP_INVALID)
		return -EIO;
	if (!engine_snap_info(v->engine, VOLUME_TAG_REVERTING, &mark) && mark.ctime != tag) {
		*other = mark.ctime;
		return -EBUSY;
	}
	if (has_snap(v, VOLUME_TAG_REVERT_POINT)) {
		err = engine_delete(v->engine, tx, VOLUME_TAG_REVERT_POINT);
		if (err)
			return err;
	}
	if (!has_snap(v, VOLUME_TAG_REVERTING)) {
		err = engine_create(v->engine, tx, VOLUME_TAG_REVERTING, tag, ENGINE_PRIO_KEEP);
		if (err)
			return err;
	}
	return engine_changelist(v->engine, tag, ENGINE_HEAD, chunks, n, NULL);
}

/* The last step, under the lock: the revert point, then the marker goes. */
static int revert_end(struct volume *v, struct tx *tx, u32 tag)
{
	int err = 0;

	/* Retried after -EAGAIN: the point may exist already (begin dropped any older one). */
	if (!has_snap(v, VOLUME_TAG_REVERT_POINT))
		err = engine_create(v->engine, tx, VOLUME_TAG_REVERT_POINT, tag, -128);
	return err ? err : engine_delete(v->engine, tx, VOLUME_TAG_REVERTING);
}

/* Writes snapshot @tag's data of @chunk to the origin (after its copy-outs). */
static int revert_chunk(struct volume *v, u32 tag, u64 chunk, void *buf)
{
	u32 shift = store_label(v->store)->chunk_shift;
	bool origin;
	u64 addr;
	int err = volume_snap_read(v, tag, chunk, &origin, &addr);

	if (err || origin) /* origin: the origin holds its data already */
		return err;
	err = bdev_read(v->snapstore, buf, (size_t)1 << shift, addr << shift);
	return err ? err : bdev_write(v->origin, buf, (size_t)1 << shift, chunk << shift);
}

int volume_revert(struct volume *v, u32 tag, volume_revert_wait_fn wait, void *priv, u64 *done)
{
	size_t csize = (size_t)1 << store_label(v->store)->chunk_shift;
	struct volume_range r[VOLUME_REVERT_BATCH];
	u64 *chunks = NULL, n = 0, gen, other = 0;
	void *buf = NULL;
	struct tx *tx;
	int err = 0, tries = 0;

	*done = 0;
	if (volume_tag_hidden(tag) || tag > DDSNAP_TAG_MAX)
		return -EINVAL;
	if (__atomic_exchange_n(&v->reverting, true, __ATOMIC_ACQ_REL))
		return -EBUSY;
	do {
		tx = begin(v, &err);
		if (!tx)
			goto out;
		free(chunks);
		chunks = NULL;
		err = revert_begin(v, tx, tag, &chunks, &n, &other);
		end(v, tx);
	} while (retry_after_sync(v, err, &tries));
	err = commit(v, COMMIT_NONE, err);
	if (err == -EBUSY)
		*done = other;
	if (err)
		goto out;
	if (posix_memalign(&buf, BDEV_ALIGN, csize)) {
		err = -ENOMEM;
		goto out;
	}
	for (u64 i = 0; i < n && !err; i += VOLUME_REVERT_BATCH) {
		u32 k = (u32)MIN(n - i, VOLUME_REVERT_BATCH);

		for (u32 j = 0; j < k; j++)
			r[j] = (struct volume_range){chunks[i + j], 1};
		err = volume_origin_write(v, r, k, &gen);
		if (!err && wait)
			err = wait(priv, r, k);
		for (u32 j = 0; j < k && !err; j++)
			err = revert_chunk(v, tag, r[j].chunk, buf);
		if (!err)
			err = bdev_flush(v->origin);
		if (!err)
			*done += k;
	}
	tries = 0;
	while (!err) {
		tx = begin(v, &err);
		if (!tx)
			break;
		err = revert_end(v, tx, tag);
		end(v, tx);
		if (!retry_after_sync(v, err, &tries))
			break;
	}
	err = commit(v, COMMIT_NONE, err);
out:
	free(buf);
	free(chunks);
	__atomic_store_n(&v->reverting, false, __ATOMIC_RELEASE);
	return err;
}

int volume_sync(struct volume *v, u64 *txg)
{
	int err;

	pthread_mutex_lock(&v->lock);
	err = store_sync(v->store);
	pthread_mutex_unlock(&v->lock);
	*txg = store_synced_txg(v->store);
	return err;
}
