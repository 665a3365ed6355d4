/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * store.h - a ddsnap store: its devices, label, uberblock ring, block cache, metadata
 * allocation and transaction groups.  The engine (exceptions, snapshots, deadlists) sits on
 * top and keeps its structures in the uberblock roots this module persists.
 *
 * Transaction groups.  There is always exactly one open txg.  Modifying threads bracket each
 * change with store_tx_hold() / store_tx_release(); the struct tx they get names the open txg
 * and allocates metadata blocks.  A sync (on a timer, when dirty data passes a bound, on
 * request, at close) waits until no thread holds the txg, then, with the txg quiesced:
 *
 *	1. runs every pre-sync hook, in registration order (owners of persistent structures:
 *	   btree_sync, store_set_root), then metaslab_sync (the space maps record this txg's
 *	   allocations and frees, the hooks' included);
 *	2. cache_sync: every dirty block to its new place;
 *	3. flushes the devices (the snapstore too: copied-out data before the metadata naming it);
 *	4. writes the uberblock of the txg (roots, scalars, metaslab table, intent log position)
 *	   to its ring slot;
 *	5. flushes again: the txg is durable;
 *	6. metaslab_sync_done (the txg's frees become allocatable), intent_log_synced (the log
 *	   space the txg covered is reusable), the post-sync hooks, and the next txg opens.
 *
 * Crash argument: steps 1-3 write only blocks allocated in this txg, at addresses the last
 * durable txg does not use (frees are deferred until step 6), and the uberblock that would
 * make them reachable is written only after they are durable.  A crash before step 5 ends
 * leaves the previous uberblock newest, and all its blocks intact (its space maps do not
 * know the lost txg's allocations, so they are free again, and the intent log still holds
 * the lost txg's records for replay); after it, the new txg.
 *
 * Failure is sticky: if any step fails, the store refuses further syncs and holds (returning
 * the error) and the in-memory state is no longer trusted; close and reopen recovers to the
 * last durable txg.
 *
 * Locking: hold/release and the accessors may be called from any thread.  Hooks run in the
 * syncing thread with no holder active, so they may change the structures they own without
 * other locks.  Never call store_sync() while holding the txg (it would wait for itself).
 */
#ifndef DDSNAP_STORE_H
#define DDSNAP_STORE_H

#include "util/base.h"
#include "blk/bdev.h"
#include "blk/block.h"
#include "blk/cache.h"
#include "blk/format.h"
#include "store/intent_log.h"
#include "store/label.h"
#include "pdata/metaslab.h"
#include "pdata/tx.h"
#include "store/uberblock.h"

/*
 * A txg syncs at least this often.  It bounds the work lost to a crash that the intent log
 * must replay (DESIGN.md 4: "every few seconds"), and it is long enough that a busy txg
 * amortises its uberblock write and two flushes over many changes.
 */
#define TXG_TIMEOUT_MS 5000
/*
 * A txg also syncs early once this much metadata is dirty: it bounds the memory the cache
 * must hold beyond its budget (dirty blocks cannot be evicted) and the length of one sync.
 */
#define TXG_DIRTY_MAX_BYTES (64ULL << 20)
/* Default cache budget: enough for the upper levels of a 10^7-entry exception tree. */
#define STORE_DEFAULT_CACHE_BYTES (64ULL << 20)

struct store;

struct store_config {
	struct bdev *snapstore;
	struct bdev *metadev;	 /* required iff the label records a metadata device */
	size_t cache_bytes;	 /* 0: STORE_DEFAULT_CACHE_BYTES */
	unsigned txg_timeout_ms; /* 0: TXG_TIMEOUT_MS */
	u64 dirty_max_bytes;	 /* 0: TXG_DIRTY_MAX_BYTES */
	bool no_sync_thread;	 /* sync only on store_sync()/close (tests, tools) */
	bool read_only;		 /* no writes at all: check, dump */
	/*
	 * Open even though the intent log is damaged (intent_log.h): replay up to the damage
	 * and drop the records after it.  The administrator's choice, never a default.
	 */
	bool discard_damaged_log;
};

struct store_format_params {
	u32 chunk_shift;  /* log2 chunk bytes; 0: LABEL_DEFAULT_CHUNK_SHIFT */
	u64 origin_bytes; /* size of the origin volume */
	u64 log_blocks;	  /* intent log ring; 0: default */
	u32 ub_slots;	  /* 0: LABEL_UB_SLOTS */
	/* The format before persisted deadlists (no LABEL_FEATURE_INCOMPAT_DEADLISTS): what
	 * restore builds first, and tests of the upgrade at open. */
	bool old_format;
};

/*
 * Initializes a store on @snapstore (and @metadev, may be NULL): clears the uberblock ring
 * and the first log block, writes the uberblock of txg 1 (all roots empty), then the labels
 * (with LABEL_FEATURE_INCOMPAT_DEADLISTS unless @p->old_format), flushing between.  Does not check for an existing store (the tool does, with
 * label_read).  Returns 0, -EINVAL / -ENOSPC (bad parameters, devices too small) with the
 * reason in @why, or -EIO.  Blocks.
 */
int store_format(struct bdev *snapstore, struct bdev *metadev, const struct store_format_params *p,
		 char *why, size_t whylen);

/*
 * Opens a store: reads the labels (snapstore and metadata device must be the same store),
 * takes the newest valid uberblock, rebuilds the allocator's state, and opens txg
 * (newest + 1).  Returns 0 and *out, or -ENODATA (not a store), -EILSEQ / -ENOTBLK / -ESTALE
 * (damage), -EINVAL (wrong devices), -EOPNOTSUPP (unknown incompat feature), -EIO, with the
 * reason in @why.  O(metadata) reads.  Blocks.
 */
int store_open(const struct store_config *cfg, struct store **out, char *why, size_t whylen);

/*
 * Syncs the open txg if anything changed (unless read-only or failed), stops the sync
 * thread, and frees the store.  Returns 0 or the sync's error (the store is freed anyway).
 * The caller has released every hold and closed everything using the cache.  Blocks.
 */
int store_close(struct store *s);

/*
 * Stops the sync thread (once; later calls do nothing): no timed or log-pressure sync, and
 * so no pre-sync hook, runs after it returns.  A caller closing what its hooks use (the
 * volume's engine) stops the thread first, syncs a last time itself, and only then closes
 * them; store_close() and store_abandon() stop it too.
 */
void store_stop_thread(struct store *s);

/*
 * Frees the store without syncing anything: what a crash leaves (tests), or the way out of a
 * failed store.  The open txg's changes are lost; the devices hold the last durable txg.
 */
void store_abandon(struct store *s);

/* The label, the metadata cache, the metadata device (the snapstore if none). O(1). */
const struct label *store_label(const struct store *s);

/*
 * Sets the feature bits @ro_compat (LABEL_FEATURE_RO_*) and @incompat
 * (LABEL_FEATURE_INCOMPAT_*) on the store, if not all set yet: rewrites the labels of every
 * device (label_rewrite: copy 0, flush, copy 1, flush; the metadata device's first).
 * Called before the first record of a structure a ro_compat bit guards is logged (an older
 * ddsnap then opens the store for reading only), or, for an incompat bit, once the txg that
 * completed the new structure is durable (the commit point of an upgrade; an older ddsnap
 * then refuses the store).  Returns 0, -EROFS (opened read-only) or -EIO.  Blocks on I/O
 * the first time; O(1) afterwards.
 */
int store_set_features(struct store *s, u64 ro_compat, u64 incompat);
struct cache *store_cache(struct store *s);
struct bdev *store_meta_bdev(struct store *s);

/*
 * Holds the open txg against sync and returns its struct tx (valid until release).  Blocks
 * while a sync is quiescing or running.  Returns NULL if the store failed or is read-only.
 * Any number of threads may hold at once.
 */
struct tx *store_tx_hold(struct store *s);
/* Releases a hold; may kick an early sync when dirty data passed the bound.  Never blocks. */
void store_tx_release(struct store *s, struct tx *tx);

/*
 * A hold for a caller that only reads the structures a sync rewrites (trees whose dirty
 * nodes get their addresses and checksums in a pre-sync hook): keeps a sync from running
 * under it, without marking the txg changed.  Blocks while a sync is quiescing or running.
 * Returns false, holding nothing, when the store failed (no sync runs any more).
 */
bool store_read_hold(struct store *s);
void store_read_release(struct store *s);

/*
 * Syncs the open txg now (see the top of this file), even if nothing changed.  Returns 0,
 * or the sticky error of a failed store (-EIO, -ENOSPC, a hook's error).  Blocks.  Must not
 * be called while holding the txg.
 */
int store_sync(struct store *s);

/* The last durable txg, and the open one. O(1). */
u64 store_synced_txg(struct store *s);
u64 store_open_txg(struct store *s);
/* 0, or the sticky error that failed the store. */
int store_failed(struct store *s);

/*
 * Hooks run by every sync.  @pre_sync runs with the txg quiesced, before cache_sync; a
 * non-zero return fails the sync (and the store).  @post_sync runs once the txg is durable.
 * Either may be NULL.  Hooks run in registration order; register before the first sync.
 */
struct store_hook {
	int (*pre_sync)(void *arg, struct tx *tx);
	void (*post_sync)(void *arg, u64 txg);
	void *arg;
};
void store_add_hook(struct store *s, const struct store_hook *h);

/*
 * The roots and scalars of the open txg, persisted in its uberblock.  Read them under a
 * hold or in a hook; set them under a hold or in a pre-sync hook.  O(1).
 */
void store_root(struct store *s, enum uberblock_root r, struct blkptr *out);
void store_set_root(struct store *s, enum uberblock_root r, const struct blkptr *p);
u64 store_scalar(struct store *s, enum uberblock_scalar i);
void store_set_scalar(struct store *s, enum uberblock_scalar i, u64 v);
/* The uberblock the store was opened from (or last synced). */
void store_last_uberblock(struct store *s, struct uberblock *out);

struct store_stats {
	u64 syncs;	   /* txgs synced since open */
	u64 timer_syncs;   /* syncs started by the timer */
	u64 dirty_syncs;   /* syncs started by the dirty bound */
	u64 log_syncs;	   /* syncs started by intent log pressure */
	u64 last_sync_us;  /* duration of the last sync */
	u64 meta_alloc;	   /* metadata blocks allocated (metaslab METADATA class) */
	u64 meta_deferred; /* freed, reusable once the open txg is durable */
	u64 data_alloc;	   /* data blocks allocated (DATA class) */
	u64 data_deferred;
	u64 unclaimed; /* free blocks in metaslabs no class claimed yet (one device) */
};
/* A consistent snapshot of the counters. O(1). */
void store_stats(struct store *s, struct store_stats *out);

/*
 * The allocator, for data chunks (metaslab_alloc_data / free_data / claim_data, in the open
 * txg, under a hold) and for the checker.  O(1).
 */
struct metaslab_group *store_metaslab(struct store *s);

/*
 * Replays one intent log record into the open txg (@tx), during store_open_log.  Returns 0
 * or an error, which stops replay and fails store_open_log.
 */
typedef int (*store_replay_fn)(void *arg, struct tx *tx, const struct intent_log_record *rec);

/*
 * Opens the intent log (on the metadata device, in the label's region): replays every
 * record newer than the last synced txg through @replay (may be NULL: records dropped) in
 * the open txg, then makes the log ready to append.  Call once, after store_open and after
 * the engine that replays is open, before any append.  From then on every sync records the
 * log position in its uberblock and frees the log space its txg covered; log pressure kicks
 * an early sync.  Returns 0, -EROFS (read-only or failed store), -EILSEQ (the log is
 * damaged past a torn tail: nothing replayed, what was lost and how to proceed in @why;
 * see store_config.discard_damaged_log), -EIO, or @replay's error, with the reason in
 * @why.  Blocks.
 */
int store_open_log(struct store *s, store_replay_fn replay, void *arg, char *why, size_t whylen);

/* The intent log, or NULL before store_open_log.  O(1). */
struct intent_log *store_log(struct store *s);

/*
 * The intent log rule: an appender holding the txg must never wait for log space, since
 * only the sync it holds back would free it.  So appends under a hold use
 * INTENT_LOG_NOWAIT, and before taking the hold a caller makes room with this: when the
 * ring has fewer than @blocks free, it syncs and waits for the freed space.  Callers
 * serialize among themselves (one appender between this check and its release).  Returns 0
 * or the sync's sticky error.  Blocks; must not be called while holding the txg.
 */
int store_log_room(struct store *s, u64 blocks);

#endif
