/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * engine.h - the snapshot engine (DESIGN.md 3): exceptions with birth and death, deadlists
 * with birth-keyed sublists, O(1) snapshot create, delete in O(#sublists + #freed),
 * changelists by a pruned tree walk, writable snapshot overlays, the full-store policy.
 *
 * Model.  A 64-bit gen counter; creating snapshot S records S.gen = gen, then gen++.  An
 * origin write approved while the counter is G happens in gen G.  An exception
 * {chunk L, birth b, death d, address p} saves the version of origin chunk L that was current
 * from gen b until overwritten in gen d; all exceptions live in one copy-on-write B+tree
 * keyed (L, d) whose block pointers carry the maximum death below them.  Snapshot S reads L
 * from its overlay, else from the exception of L with the smallest d > S.gen, else from the
 * origin.  An origin write of L needs a copy-out iff a live snapshot exists and the newest
 * live gen >= last_death(L) (the largest d of L's exceptions, 0 if none).
 *
 * Addresses.  Chunks are numbered from 0 on the origin; snapstore data addresses are in
 * chunks too (byte offset = addr * chunk_size), handed out by the space ops below (the
 * metaslab allocator in the server, a simple allocator in tests).
 *
 * Transactions.  Every call that changes persistent state takes the open struct tx; the
 * caller (the store's txg machinery) holds the txg open across the call.  engine_sync() is
 * called after the txg's last change, before cache_sync(), and yields the roots the
 * uberblock keeps.  Durability of individual requests:
 *  - copy-outs, first snapshot writes (overlay inserts), creates, deletes, hold and
 *    priority changes and the full-store policy's drops are logged (params->ilog_append)
 *    and flushed before the call returns, so the caller may acknowledge at once; replay
 *    re-applies them in order.  (engine_open_count is memory only: devices reconnect.)
 *  - with params->caller_flushes the engine appends but never waits: the caller drops its
 *    lock, flushes the snapstore and waits until every record appended so far (by anyone)
 *    is durable, and only then acts on the result.  Requests then share log flushes
 *    (group commit, DESIGN.md 4).  Waiting for everything appended so far, not just the
 *    call's own records, is what makes it safe: a chunk another request copied out reads
 *    as safe at once, but its record may still be in flight.
 *
 * Locking.  None inside: the caller serialises every call on one engine (the server's engine
 * lock).  Calls block on metadata reads (cache misses), on data I/O (copy-outs, copy-ins),
 * and on params->ilog_flush.
 *
 * Errors (base.h): -ENODATA no such snapshot, -EEXIST tag in use, -EBUSY held or in use,
 * -EIO an invalidated snapshot or an I/O error, -ENOSPC store full and nothing may be
 * dropped, -EAGAIN the space needed is freed but reusable only after the open txg syncs
 * (sync, then ask again), -EINVAL bad argument, -EILSEQ/-ENOTBLK/-ESTALE corrupt metadata,
 * -EROFS the engine failed earlier in a way that left memory and disk out of step (it
 * refuses every further change; reopen from the last synced txg) or was opened read-only.
 * Errors of params->ilog_append/ilog_flush (-EWOULDBLOCK, -EIO) are returned unchanged; a
 * failed append changes nothing, so the caller may wait and retry the whole call.
 *
 * Full-store policy.  Before copy-outs would leave fewer than params->reserve_chunks free
 * (deferred frees counted as coming), and if params->autodelete, the engine drops the
 * oldest snapshot among those of the lowest priority that have no holds and a priority
 * below ENGINE_PRIO_KEEP: deleted, or invalidated if a device has it open (after
 * params->invalidate returned).  If none can go, copy-needing origin writes fail with
 * -ENOSPC; writes that need no copy still pass.
 */
#ifndef DDSNAP_ENGINE_H
#define DDSNAP_ENGINE_H

#include "util/base.h"
#include "blk/bdev.h"
#include "blk/block.h"
#include "snap/deadlist_disk.h"
#include "pdata/btree.h"
#include "blk/cache.h"
#include "pdata/tx.h"

struct engine;

/* Priority at or above which the full-store policy never drops a snapshot (Zumastor's). */
#define ENGINE_PRIO_KEEP 127
/* Names the live head (the origin) wherever a snapshot tag is expected. */
#define ENGINE_HEAD UINT32_MAX

/*
 * The engine's three tree formats (format.h, "Snapshot engine"), the one owner of their key
 * and value sizes, key order and aggregate.  For tools and tests that build or read the
 * trees without an engine (restore, the checker's tests, benchmarks); the engine uses the
 * same objects.
 *  - exceptions: key (chunk, death) as two le64, value struct exception_disk; the aggregate
 *    is the death, so block pointers carry the largest death below them.
 *  - snapshots: key the tag as le64, value struct snap_record_disk.
 *  - overlay (one per writable snapshot): key the chunk as le64, value struct overlay_disk.
 */
extern const struct btree_type engine_exception_tree_type;
extern const struct btree_type engine_snapshot_table_type;
extern const struct btree_type engine_overlay_tree_type;
/*  - provenance: key the tag as le64, value struct provenance_disk (received snapshots). */
extern const struct btree_type engine_provenance_tree_type;

/*
 * A snapshot's provenance (doc/replication.md, "identity"): the uuid of the store that took
 * it and its gen there.  A snapshot taken here has this store's uuid (params.uuid) and its
 * own gen; a received one what its sender recorded, passed on along a chain.
 */
struct engine_provenance {
	u8 uuid[16];
	u64 gen;
};

/* The snapstore data allocator, in chunk units.  All are called under the engine's lock. */
struct engine_space_ops {
	/*
	 * Allocates one contiguous run of at most @want chunks (at least 1): its start in
	 * *start and length in *got.  Returns 0 or -ENOSPC.
	 */
	int (*alloc)(void *priv, struct tx *tx, u64 want, u64 *start, u64 *got);
	/* Frees a run.  Reuse must wait until @tx's txg is durable (deferred free). */
	void (*free)(void *priv, struct tx *tx, u64 start, u64 count);
	/* Chunks that can be allocated now. */
	u64 (*avail)(void *priv);
	/* Chunks freed but not reusable until their txg is durable.  May be NULL (none). */
	u64 (*deferred)(void *priv);
	/*
	 * Marks a run allocated during log replay.  Returns 0, -EEXIST, or -EINVAL for a run
	 * outside the data space (the start comes from the log: it may be anything, and
	 * start + count may wrap).  May be NULL.
	 */
	int (*claim)(void *priv, struct tx *tx, u64 start, u64 count);
};

/*
 * Intent log record types (see engine_replay); the payload is always a struct
 * engine_logrec_disk (format.h).
 */
enum engine_logrec_type {
	ENGINE_LOG_COPYOUT = 0x100, /* {chunk, birth, death, addr, csum} inserted in the tree */
	ENGINE_LOG_OVERLAY = 0x101, /* {tag, chunk, addr} inserted in a snapshot overlay */
	ENGINE_LOG_CREATE = 0x102,  /* {tag, gen, ctime, priority} */
	ENGINE_LOG_DROP = 0x103,    /* {tag, flags}: deleted, or invalidated by the policy */
	ENGINE_LOG_SETATTR = 0x104, /* {tag, holds (in chunk), priority}: the new values */
	/* {chunk, birth, death, addr}: a copy-out without csum, the copy trusted.  Servers
	 * before 2026-12 wrote it with the log on the snapstore; not written any more, still
	 * replayed (engine_replay.c) */
	ENGINE_LOG_COPYOUT_ORDERED = 0x105,
	/* struct engine_logrec_create_from_disk: a create with its provenance (received) */
	ENGINE_LOG_CREATE_FROM = 0x106,
};

/* Called before an in-use snapshot is invalidated; must return once its device dropped its
 * cached mappings and fails further I/O (DESIGN.md 5).  Returns 0 or -errno (then the
 * snapshot is not invalidated). */
typedef int (*engine_invalidate_fn)(void *priv, u32 tag);

struct engine_params {
	u32 chunk_size;	   /* bytes, a power of two in [BDEV_ALIGN, 1 MiB] */
	u64 origin_chunks; /* volume size in chunks */
	struct bdev *origin, *snapstore;
	struct cache *cache; /* metadata cache (the trees) */
	const struct engine_space_ops *space;
	void *space_priv;
	/*
	 * The intent log (DESIGN.md 4): ilog_append queues one record of the open txg,
	 * ilog_flush returns 0 once every queued record is durable (group commit), or -errno.
	 * Both NULL: no log (tests that never crash, tools that only read).
	 */
	int (*ilog_append)(void *priv, struct tx *tx, u16 type, const void *payload, u16 len);
	int (*ilog_flush)(void *priv);
	void *ilog_priv;
	/*
	 * The caller makes each call's effects durable itself (see Transactions above):
	 * ilog_flush may then be NULL, and neither it nor a snapstore flush is ever issued.
	 */
	bool caller_flushes;
	engine_invalidate_fn invalidate;
	void *invalidate_priv;
	/* Full-store policy: keep at least this many chunks free for copy-outs. */
	u64 reserve_chunks;
	/* Full-store policy: false = never drop snapshots, fail copy-needing writes. */
	bool autodelete;
	/*
	 * Threads that copy the scattered chunks of one origin-write batch at once (0: the
	 * calling thread copies them one after another).  Each holds a 1 MiB buffer.  The
	 * open's deadlist rebuild reads the exception tree ahead on them, read-only too.
	 */
	unsigned copy_threads;
	/*
	 * Draw a progress line of the open's deadlist rebuild on stderr if it is a terminal
	 * (util/xfer.h): the chunk the walk has reached of origin_chunks (it goes in chunk
	 * order), with an estimate of the time left.
	 */
	bool progress;
	/*
	 * The data region, as snapstore chunk addresses [data_first, data_end): an exception or
	 * overlay entry naming a chunk outside it is damage (-EILSEQ at open or when read),
	 * never an address handed out.  Both 0: not checked (tools without a label).
	 */
	u64 data_first, data_end;
	/*
	 * Reads only (check, dump, list): origin, snapstore, space and log may be NULL, and
	 * every call that would change something returns -EROFS.
	 */
	bool read_only;
	/* The store's uuid: the provenance of the snapshots taken here. */
	u8 uuid[16];
	/*
	 * Called before the first provenance record is logged, while the store may not carry
	 * LABEL_FEATURE_RO_PROVENANCE yet: returns 0 once the bit is durable in the label, or
	 * -errno (nothing is then created).  NULL: nothing to set (tests, tools).
	 */
	int (*set_feature)(void *priv);
	void *feature_priv;
	/*
	 * Use the persisted deadlists at roots.deadlists (doc/format.md, "Persisted
	 * deadlists"; LABEL_FEATURE_INCOMPAT_DEADLISTS) instead of rebuilding them in memory:
	 * open reads their piece table only, every change keeps them in the same txg.  The
	 * roots must hold them (an empty store: all zero).  Set for every store whose label
	 * has the bit (volume.c, check, restore).
	 */
	bool persist_deadlists;
};

/* What the uberblock keeps for the engine (root slots and scalars). */
struct engine_roots {
	struct blkptr exceptions;      /* (chunk, death) -> (birth, addr) */
	struct blkptr snapshots;       /* tag -> snapshot record, with its overlay root */
	struct blkptr provenance;      /* tag -> provenance of a received snapshot */
	u64 gen;		       /* the gen counter */
	struct dldisk_roots deadlists; /* params.persist_deadlists only; else all zero */
};

/*
 * Opens the engine on @roots (all zero: a new, empty store, gen 1).  Loads the snapshot
 * table and rebuilds the deadlists from one pass over the exception tree (O(exceptions);
 * see engine.c for why they are derived state), or with params.persist_deadlists reads
 * their piece table (O(snapshots + pieces)).  Returns 0 and *out, -EINVAL, or a read
 * error (-EILSEQ ... for damage, with a log line).  Blocks on I/O.
 */
int engine_open(const struct engine_params *p, const struct engine_roots *roots,
		struct engine **out);
/*
 * The upgrade of a store without persisted deadlists (opened without
 * params.persist_deadlists, so rebuilt in memory), in steps each the caller's txg
 * (doc/format.md, "Upgrade").  Begin: with @resume > 0 (entries an interrupted upgrade
 * wrote, its cursor, which the caller has found valid for these trees) opens the partial
 * persisted deadlists at @partial and continues after their first @resume entries of the
 * walk; else frees the trees at @partial if any (an interrupted upgrade's; all zero: none)
 * and starts from empty ones.  A @resume past the walk's end restarts (logged).  The walk's
 * order is the rebuild's (a function of the exception tree and the snapshot table); with
 * @rebuild (anything changed the deadlists since engine_open: a replay) they are rebuilt
 * from the tree first, O(exceptions).  Also on a read-only engine (restore).  Returns 0,
 * -EROFS (failed), -EINVAL (already persisted or begun) or a read error (the engine has
 * then failed).  O(sublists + segments) to skip.
 */
int engine_upgrade_begin(struct engine *e, struct tx *tx, const struct dldisk_roots *partial,
			 u64 resume, bool rebuild);
/*
 * One step of the upgrade in @tx: writes the walk's next rebuilt entries (same death, same
 * key) to the persisted deadlists until @max_entries are written or the cache holds
 * @max_dirty dirty blocks (0: no bound), or the walk ends.  *@written: the entries written
 * by every step so far (the cursor).  At the walk's end *@done is set, the in-memory
 * deadlists are freed and from then on the engine runs as if opened with
 * params.persist_deadlists.  The caller syncs each step's txg (engine_sync returns the
 * partial trees' roots meanwhile) and, after the last, sets
 * LABEL_FEATURE_INCOMPAT_DEADLISTS.  Nothing else may call the engine between steps.
 * Returns 0, -EINVAL (not begun), or -ENOSPC / a read error (the engine has then failed:
 * the txg must not be synced).
 */
int engine_upgrade_step(struct engine *e, struct tx *tx, u64 max_entries, u64 max_dirty,
			u64 *written, bool *done);
/*
 * For `ddsnap restore`: the persisted deadlists of the (sealed) trees at @roots, rebuilt
 * as engine_open does and written to new trees in @tx, which are sealed; *@out is what the
 * uberblock keeps for them.  @roots->deadlists is ignored.  Returns 0, -ENOSPC or a read
 * error (the txg must then not be synced).  O(exceptions).
 */
int engine_build_deadlists(struct cache *cache, struct tx *tx, const struct engine_roots *roots,
			   u32 chunk_size, u64 origin_chunks, struct dldisk_roots *out);
/* Frees the engine; unsynced changes stay in the cache.  O(snapshots + deadlist entries). */
void engine_close(struct engine *e);

/*
 * Seals every tree the open txg changed and returns the roots to persist with it.
 * Returns 0 or a read error.  O(blocks changed in the txg).
 */
int engine_sync(struct engine *e, struct tx *tx, struct engine_roots *roots);

/*------------------------------------------------------------------------------------------
 * The origin
 *----------------------------------------------------------------------------------------*/

struct engine_range {
	u64 chunk, count;
};

/*
 * An origin write (or discard: engine_origin_discard is the same call) of the chunks in
 * @ranges is about to happen.  For each chunk that needs a copy-out (the rule above) it
 * allocates snapstore space (contiguous runs for consecutive chunks), copies the origin
 * data there (batched), records the exceptions, and commits them through the log.  On
 * return 0 every chunk of @ranges is safe to overwrite for the rest of gen *gen (the kernel
 * caches that until the next snapshot); *copied (may be NULL) counts the copy-outs made.
 * Returns 0, -EINVAL (range beyond the volume), -ENOSPC (store full and the policy may drop
 * nothing), -EAGAIN (the space needed is freed but reusable only after the open txg is
 * durable: sync it and ask again), -EIO, a log error, or a read error.  On error some chunks
 * may already be copied out; a retry finds them, copies nothing more for them, and passes
 * only once their records are durable.  Cost per chunk: O(log exceptions) tree reads, the
 * same with 1 or 10,000 live snapshots, plus O(log snapshots) memory work per copy-out.
 * Blocks on I/O.
 */
int engine_origin_write(struct engine *e, struct tx *tx, const struct engine_range *ranges,
			u32 nranges, u64 *gen, u64 *copied);
int engine_origin_discard(struct engine *e, struct tx *tx, const struct engine_range *ranges,
			  u32 nranges, u64 *gen, u64 *copied);

/*------------------------------------------------------------------------------------------
 * Snapshots
 *----------------------------------------------------------------------------------------*/

enum engine_map_where {
	ENGINE_MAP_ORIGIN = 0,	  /* read the origin chunk (under the read lock) */
	ENGINE_MAP_SNAPSTORE = 1, /* read the snapstore at *addr */
};

/*
 * Where snapshot @tag reads @chunk: *where and, for the snapstore, *addr.  Returns 0,
 * -ENODATA (no such snapshot), -EIO (invalidated), -EINVAL, or a read error.
 * O(log exceptions + log overlay).  Blocks on cache misses.
 */
int engine_snap_read_map(struct engine *e, u32 tag, u64 chunk, enum engine_map_where *where,
			 u64 *addr);

/*
 * Snapshot @tag is about to be written at @chunk (writable snapshots).  Returns in *addr the
 * snapshot's private copy of @chunk, creating it on the first write: allocate, copy the
 * snapshot's current view of the chunk there and make it durable, insert it in the overlay,
 * commit.  Returns 0, -ENODATA, -EIO (invalidated or I/O), -ENOSPC (no space beyond the
 * reserve; snapshot writes never drop snapshots), -EAGAIN (as for origin writes), or a read
 * error.
 *
 * The copy is made even when the caller's write covers the whole chunk: until that write is
 * durable, the chunk at *addr must read as the snapshot's old data, never as what a freed
 * chunk held there (engine.c, crash argument).  So a write interrupted by a crash leaves the
 * snapshot's chunk old, new, or a mix of the two at sector granularity.
 *
 * O(log overlay) when the copy exists, plus one chunk copy and one snapstore flush the first
 * time.  Blocks on I/O and on the log flush.
 */
int engine_snap_write_map(struct engine *e, struct tx *tx, u32 tag, u64 chunk, u64 *addr);

/* One chunk of engine_snap_write: @chunk in; @addr and @err (0 or -errno) out. */
struct engine_snap_chunk {
	u64 chunk;
	u64 addr;
	int err;
};

/*
 * engine_snap_write_map of @c[0..n) in order, in one call: the copy-ins of every 256 chunks
 * share one snapstore flush (before any of their records is appended) and one log flush.  A chunk named twice gets the same mapping.  Sets
 * addr and err of every chunk it answers and returns how many it answered: @n, or fewer when
 * c[ret].err is -EAGAIN or -EWOULDBLOCK (then the caller syncs and asks again from c[ret];
 * nothing after it was answered).  Per-chunk errors as engine_snap_write_map.
 */
u32 engine_snap_write(struct engine *e, struct tx *tx, u32 tag, struct engine_snap_chunk *c, u32 n);

/*
 * Creates snapshot @tag of the origin as of now: S.gen = gen, gen++, the head's deadlist
 * becomes S's.  @ctime is stored as given (seconds).  Returns 0, -EEXIST, -EINVAL (@tag is
 * ENGINE_HEAD), a log error, or a metadata error.  O(log snapshots) for the table insert;
 * no exception, deadlist entry or chunk is touched.  Blocks on the log flush.
 */
int engine_create(struct engine *e, struct tx *tx, u32 tag, u64 ctime, int8_t priority);
/*
 * engine_create of a received snapshot whose provenance is @prov (NULL: taken here, as
 * engine_create).  One log record carries both, so after a crash the snapshot exists with
 * its provenance or not at all.  Before the
 * first provenance record of a store, params.set_feature sets the label bit.  Returns as
 * engine_create, or -EINVAL (@prov->gen 0) or set_feature's error.  The provenance is
 * deleted with the snapshot.  O(log snapshots).
 */
int engine_create_from(struct engine *e, struct tx *tx, u32 tag, u64 ctime, int8_t priority,
		       const struct engine_provenance *prov);

/*
 * Deletes snapshot @tag (or forgets an invalidated one): frees the exceptions only it saw
 * (the sublists of the next deadlist keyed after the previous snapshot's gen), merges its
 * deadlist into the next one, frees its overlay.  Returns 0, -ENODATA, -EBUSY (held or in
 * use), a log error, or a metadata error.  O(#sublists + #freed * log exceptions + overlay
 * size) block work, plus an O(live snapshots) memmove.  Blocks on I/O and the log flush.
 */
int engine_delete(struct engine *e, struct tx *tx, u32 tag);

/* Persistent holds (Zumastor usecount; ZFS holds): += @delta, durable on return (logged).
 * Returns 0, -ENODATA, -EINVAL (underflow or overflow), or a log or metadata error.
 * O(log snapshots). */
int engine_hold(struct engine *e, struct tx *tx, u32 tag, int delta);
/* Transient users (connected snapshot devices): +1 or -1, memory only.  Returns 0 or -ENODATA. */
int engine_open_count(struct engine *e, u32 tag, int delta);
/* Changes the priority, durable on return (logged).  Returns 0, -ENODATA, or a log or
 * metadata error.  O(log snapshots). */
int engine_set_priority(struct engine *e, struct tx *tx, u32 tag, int8_t priority);

enum engine_snap_state {
	ENGINE_SNAP_NORMAL = 0,
	ENGINE_SNAP_INVALID = 1, /* dropped by the full-store policy while in use: reads fail */
};

struct engine_snapinfo {
	u32 tag;
	u64 gen, ctime;
	int8_t priority;
	u16 holds;
	u32 opens;
	enum engine_snap_state state;
	u64 unique_bytes;  /* what deleting it would free now (ZFS used), overlay included */
	u64 written_bytes; /* origin data overwritten since the previous snapshot (its deadlist) */
	u64 overlay_chunks;
	bool received;			 /* origin came from engine_create_from */
	struct engine_provenance origin; /* params.uuid and gen unless received */
};

/*
 * Fills @out with up to @max snapshots from position @first of the list -- live ones in gen
 * order, then invalidated ones -- and returns how many exist in all.  A page of live ones
 * costs O(max * log sublists): it starts at live[@first], so listing S snapshots page by
 * page is O(S), not O(S^2 / max).  A page that reaches the invalidated ones (rare: a
 * snapshot the full-store policy dropped while in use) also walks the tag hash, O(snapshots).
 */
u32 engine_list(struct engine *e, u32 first, struct engine_snapinfo *out, u32 max);
/* One snapshot's info.  Returns 0 or -ENODATA.  O(log sublists). */
int engine_snap_info(struct engine *e, u32 tag, struct engine_snapinfo *out);

struct engine_status {
	u64 gen;
	u32 live, invalidated;
	u64 exceptions, overlay_chunks;
	u64 head_written_bytes; /* overwritten since the newest snapshot */
	u64 avail_chunks, reserve_chunks;
	u64 copyouts, policy_deletes, policy_invalidates, enospc; /* since open */
	u64 list_visits; /* snapshots engine_list looked at, since open (work, for tests) */
	bool failed;
};
void engine_status(struct engine *e, struct engine_status *out);

/*------------------------------------------------------------------------------------------
 * Changelists
 *----------------------------------------------------------------------------------------*/

struct engine_walk_stats {
	u64 nodes_visited, leaves_visited, entries_reported;
};

/*
 * The chunks that may differ between snapshot @a and @b (@b may be ENGINE_HEAD, and the two
 * may come in either order): those with an exception whose death lies in (older gen, newer
 * gen], plus every chunk in either side's overlay.  Returns 0 and a sorted, duplicate-free
 * malloc'd array in *chunks (free it) of *n entries, or -ENODATA, -EIO (invalidated), a read
 * error.  @st (may be NULL) gets the walk's counters.  O(changed * log exceptions + overlay
 * sizes): subtrees whose maximum death is <= the older gen are skipped unread.
 */
int engine_changelist(struct engine *e, u32 a, u32 b, u64 **chunks, u64 *n,
		      struct engine_walk_stats *st);

/*------------------------------------------------------------------------------------------
 * Replay and checking
 *----------------------------------------------------------------------------------------*/

/*
 * Re-applies one intent log record (type, payload) after a crash, in the first txg opened
 * after the last synced one, in log order.  A record already reflected in the trees is
 * skipped, so replaying a record twice is harmless.  Returns 0, -EPROTO (malformed or
 * inconsistent record: a copy-out must carry the current gen as its death and the chunk's
 * last death as its birth, as the engine wrote it), the claim's error, or a metadata error.
 * O(log exceptions); a drop costs what the delete did.
 */
int engine_replay(struct engine *e, struct tx *tx, u16 type, const void *payload, u16 len);

/* Entry and node counts of the exception tree.  Returns 0 or a read error.  O(nodes). */
int engine_exception_stats(struct engine *e, struct btree_stats *out);

struct engine_check_report {
	u64 exceptions, overlay_chunks, data_chunks, provenance;
	u64 live, invalidated;
	u64 problems; /* count of inconsistencies found (the first is described in @why) */
};

/* What engine_check reports besides its findings, for the caller's space accounting. */
struct engine_check_ops {
	/* Every snapstore data run the engine references (exceptions and overlays). */
	int (*data)(void *arg, u64 start, u64 count);
	/* Every metadata block of the engine's trees (exceptions, table, overlays), once. */
	int (*meta)(void *arg, u64 blocknr, u64 birth_txg);
	void *arg;
};

/*
 * The engine's part of `ddsnap check`: verifies the trees (btree_verify: checksums,
 * structure, aggregates), that every exception has birth < death <= gen, lies within the
 * volume and is visible to at least one live snapshot, that no two exceptions or overlay
 * entries share a data chunk, that overlay counts match their trees, and recounts each
 * deadlist (per owner and per sublist) from the tree and compares with the kept totals.
 * @ops (may be NULL; either callback may be NULL) receives every data run and metadata block
 * in use, so the caller can check the space maps (no chunk both free and used, no leak); a
 * non-zero return stops the check and is returned.  Returns 0, -EILSEQ with the first
 * problem in @why (r->problems counts them all), or a read error.  O(exceptions * log n)
 * time, O(exceptions) memory.  Read-only: safe on an engine opened with read_only.
 */
int engine_check(struct engine *e, const struct engine_check_ops *ops,
		 struct engine_check_report *r, char *why, size_t whylen);

/*
 * engine_check for a tool (`ddsnap check`): opens the engine read-only on @roots over @cache
 * (the store's, opened read-only), checks, closes.  @chunk_size and @origin_chunks come from
 * the label, @persisted from its LABEL_FEATURE_INCOMPAT_DEADLISTS (the persisted deadlists
 * at roots->deadlists are then matched with the exception tree).  Returns as engine_check,
 * or the open's error (with @why filled in).  O(exceptions).  Blocks on reads.  Nothing is
 * written.
 */
int engine_check_offline(struct cache *cache, const struct engine_roots *roots, u32 chunk_size,
			 u64 origin_chunks, bool persisted, const struct engine_check_ops *ops,
			 struct engine_check_report *r, char *why, size_t whylen);

/*
 * For an offline checker that walks the trees itself: calls @fn for the overlay root of every
 * snapshot in the snapshot table rooted at @snapshots (the overlays hang off the table, not
 * off the uberblock).  Returns 0, @fn's non-zero return, -EILSEQ (a malformed record), or a
 * read error.  O(snapshots).  Read-only.
 */
int engine_overlay_roots(struct cache *cache, const struct blkptr *snapshots,
			 int (*fn)(void *arg, u32 tag, const struct blkptr *root), void *arg);

#endif
