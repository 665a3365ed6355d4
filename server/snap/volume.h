/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * volume.h - one snapshotted volume as the server serves it: the store (label, uberblock,
 * txgs, space maps, intent log) and the snapshot engine behind one lock.
 *
 * This is the only interface the network side (server.c) uses.  Every call takes the volume
 * lock, runs inside the open txg, and returns with its effects durable when the call says
 * so (origin writes, snapshot writes, create, delete: durable through the intent log before
 * return).  Calls block on metadata and data I/O.
 *
 * Errors are the engine's (engine.h): -ENODATA no such snapshot, -EEXIST, -EBUSY, -ENOSPC,
 * -EIO (invalidated snapshot or I/O error), -EINVAL, -EILSEQ/-ENOTBLK/-ESTALE (damage),
 * -EROFS (the volume failed and refuses changes until reopened).
 */
#ifndef DDSNAP_VOLUME_H
#define DDSNAP_VOLUME_H

#include "util/base.h"
#include "ddsnap_wire.h"

struct volume;
struct uberblock;
struct engine_roots;

/* Asks a snapshot's devices to drop their mappings and fail I/O; see engine_invalidate_fn. */
typedef int (*volume_invalidate_fn)(void *priv, u32 tag);

struct volume_params {
	const char *snapstore, *origin, *metadev; /* metadev may be NULL */
	/*
	 * Or devices already open, used instead of the paths when snapstore_dev is set: the
	 * volume borrows them and never closes them (tests run it on the fault-injecting RAM
	 * device this way, and crash it with volume_abandon()).
	 */
	struct bdev *snapstore_dev, *origin_dev, *metadev_dev;
	size_t cache_bytes;	  /* metadata cache budget */
	unsigned txg_timeout_ms;  /* 0: the store's default (tests sync often with 1) */
	bool discard_damaged_log; /* store_config.discard_damaged_log */
	bool progress;		  /* engine_params.progress: the open on a terminal */
	/*
	 * Tests only: a store without LABEL_FEATURE_INCOMPAT_DEADLISTS is served as the
	 * binaries before it did (deadlists rebuilt, roots 2 and 5 left alone), not upgraded.
	 * It makes the older stores the upgrade is tested on.
	 */
	bool keep_old_format;
	/* Tests only: entries per txg of the upgrade at open (0: VOLUME_UPGRADE_TXG_ENTRIES). */
	u64 upgrade_txg_entries;
	volume_invalidate_fn invalidate;
	void *invalidate_priv;
};

/*
 * Opens the devices, the store (replaying the intent log) and the engine, and starts the
 * txg sync thread.  A store of the format before persisted deadlists (its label without
 * LABEL_FEATURE_INCOMPAT_DEADLISTS) is upgraded after the replay, crash-safely (volume.c,
 * upgrade_deadlists; doc/format.md "Versions and upgrades").  Returns 0 and *@out, or
 * -errno with a sentence in @why.
 */
int volume_open(const struct volume_params *p, struct volume **out, char *why, size_t whylen);

/*
 * The engine's roots as an uberblock holds them: the one map between the uberblock's slots
 * (store/uberblock.h: roots 0, 1, 2, 4, 5; scalars GEN and NEXT_PIECE) and struct
 * engine_roots, for volume_open and for the offline readers (check, tests) alike.  The
 * deadlist roots are meaningful only when the label has LABEL_FEATURE_INCOMPAT_DEADLISTS.
 */
void volume_roots_of(const struct uberblock *ub, struct engine_roots *out);

/* Syncs a final txg, stops the sync thread, closes everything.  Returns 0 or -errno. */
int volume_close(struct volume *v);

/*
 * A crash (tests): frees the volume without syncing or flushing anything, so the devices hold
 * what a power cut would leave (with bdev_faulty_crash) and the next open replays the log.
 */
void volume_abandon(struct volume *v);

u32 volume_chunk_bits(struct volume *v);
u64 volume_origin_sectors(struct volume *v);
u64 volume_gen(struct volume *v);
void volume_uuid(struct volume *v, u8 uuid[16]);

struct volume_range {
	u64 chunk, count;
};

/* Most ranges one origin write takes (the server coalesces queries up to this). */
#define VOLUME_MAX_RANGES 256

/*
 * The engine's origin write for a batch of up to VOLUME_MAX_RANGES ranges (-EINVAL beyond);
 * *gen = the gen they are safe in.
 */
int volume_origin_write(struct volume *v, const struct volume_range *r, u32 n, u64 *gen);
/*
 * volume_origin_write() in its two halves, for a caller that overlaps the commit of one
 * batch with the copies of the next: _start does the engine's work under the volume lock and
 * returns its result with what _finish must make durable in *@need; _finish, outside the
 * lock, makes it durable and returns @err or the commit's error.  Every _start needs its
 * _finish before the writes may reach the origin.
 */
int volume_origin_write_start(struct volume *v, const struct volume_range *r, u32 n, u64 *gen,
			      u64 *need);
int volume_origin_write_finish(struct volume *v, u64 need, int err);

/* Snapshot read map: *origin = true, or the snapstore chunk in *addr. */
int volume_snap_read(struct volume *v, u32 tag, u64 chunk, bool *origin, u64 *addr);

/* One chunk of a snapshot write map. */
struct volume_snap_chunk {
	u64 chunk; /* in */
	u64 addr;  /* out: the private snapstore chunk */
	int err;   /* out: 0 or a negative errno for this chunk */
};

/*
 * Snapshot write map of @n chunks (private copies, created on first write: the snapshot's
 * data copied in, also for a write that will cover the chunk, engine.h), one snapstore flush
 * for the copy-ins of every 256 chunks and one commit for all.  Returns 0, or the commit's
 * error (then every chunk that had none carries it).
 */
int volume_snap_write(struct volume *v, u32 tag, struct volume_snap_chunk *c, u32 n);

/* Snapshot state for IDENTIFY: 0 and *state (DDSNAP_STATE_*), *gen; or -ENODATA. */
int volume_snap_state(struct volume *v, u32 tag, u32 *state, u64 *gen);

/* Connected snapshot devices: +1 on IDENTIFY, -1 on disconnect. */
int volume_snap_open(struct volume *v, u32 tag, int delta);

int volume_create(struct volume *v, u32 tag, u64 *gen);
struct engine_provenance;
/* volume_create of a received snapshot with its provenance (@prov NULL: volume_create);
 * the first one sets the store's LABEL_FEATURE_RO_PROVENANCE (engine_create_from). */
int volume_create_from(struct volume *v, u32 tag, const struct engine_provenance *prov, u64 *gen);
int volume_delete(struct volume *v, u32 tag);
int volume_priority(struct volume *v, u32 tag, s32 priority);
/* Persistent holds (usecount) += @delta; *count = the result. */
int volume_usecount(struct volume *v, u32 tag, s32 delta, u32 *count);

/* The cursor volume_list and volume_changelist return when there is nothing more. */
#define VOLUME_CURSOR_END UINT64_MAX

struct engine_snapinfo;

/*
 * Snapshots from index @cursor (in gen order): up to @max in @out (the engine's own
 * description of each); *total, *next (VOLUME_CURSOR_END after the last).
 */
int volume_list(struct volume *v, u64 cursor, struct engine_snapinfo *out, u32 max, u32 *count,
		u32 *total, u64 *next);

/* The store's totals, as status reports them (chunks, blocks, bytes as named). */
struct volume_stats {
	u64 gen, txg, chunk_size, origin_bytes;
	u64 data_total, data_free; /* snapstore data chunks */
	u64 meta_total, meta_free; /* metadata blocks */
	u64 exceptions, snapshots, reserve_chunks;
	u64 log_used, log_size; /* intent log blocks */
};
int volume_status(struct volume *v, struct volume_stats *out);

/*
 * Changed chunks @from -> @to (DDSNAP_TAG_NONE: the whole volume's written chunks;
 * DDSNAP_TAG_HEAD: the live origin) at or after chunk @cursor: up to @max in @out,
 * ascending; *next = where to continue or VOLUME_CURSOR_END.
 */
int volume_changelist(struct volume *v, u32 from, u32 to, u64 cursor, u64 *out, u32 max, u32 *count,
		      u64 *next);

/*
 * Revert (ddsnap revert; the essay in volume.c says why it is crash-safe).  Two snapshot
 * tags above every tag a user may give are the volume's own, never listed to users by the
 * tools, never created, deleted, held or opened on request:
 *  - VOLUME_TAG_REVERTING, the marker of a revert in progress: a live snapshot of the origin
 *    as it was when the revert started, ctime = the tag being reverted to, priority
 *    ENGINE_PRIO_KEEP.  While it exists the origin is half reverted: create refuses
 *    (-EBUSY), the reverted-to snapshot cannot be deleted (-EBUSY), and only a revert to
 *    the same tag may run (it finishes the job).
 *  - VOLUME_TAG_REVERT_POINT, the revert point: taken when a revert finishes, ctime = the
 *    tag reverted to, priority -128 (the full-store policy drops it first).  The changelist
 *    from it to the head is exactly what was written on the origin since the revert.  The
 *    next create drops it (that snapshot is then the newest), and so does the next revert.
 */
#define VOLUME_TAG_REVERT_POINT 0xfffffffcu
#define VOLUME_TAG_REVERTING	0xfffffffdu
#define VOLUME_TAG_USER_MAX	0xfffffffbu /* user snapshot tags: 0..this */
static_assert(VOLUME_TAG_REVERTING == DDSNAP_TAG_MAX, "the hidden tags are the last ones");

static inline bool volume_tag_hidden(u32 tag)
{
	return tag == VOLUME_TAG_REVERT_POINT || tag == VOLUME_TAG_REVERTING;
}

/*
 * Called by volume_revert once per batch, with the batch's @n ranges @r, after their
 * copy-outs are durable and before any origin chunk of the batch is written.  Returns 0, or
 * a negative errno that stops the revert before that batch is written (it may be run again).
 */
typedef int (*volume_revert_wait_fn)(void *priv, const struct volume_range *r, u32 n);

/*
 * Makes the origin read exactly as snapshot @tag, every snapshot reading as before (the
 * essay in volume.c).  @wait (may be NULL) is called once per batch of chunks after their
 * copy-outs are durable and before the origin is written there: the server waits for the
 * snapshot reads of them from the origin, as for a kernel origin write, and has every
 * snapshot device that may cache "read the origin" answers drop them (server.c,
 * revert_wait).  *@done = chunks copied back.
 * Returns 0, -EINVAL (@tag is hidden or out of range), -ENODATA (no snapshot @tag), -EIO
 * (@tag invalidated, or an I/O error), -EBUSY (another revert is running in this process, or
 * a revert to another tag is in progress: its tag in *@done), -ENOSPC, an engine error, or
 * what @wait returned.
 * Idempotent: after a failure or a crash, the same call finishes the job.  The origin must
 * not be written by anyone else meanwhile (the tool refuses while its device is open).
 * Blocks on I/O for O(changed chunks) copies.
 */
int volume_revert(struct volume *v, u32 tag, volume_revert_wait_fn wait, void *priv, u64 *done);

/* Forces a txg sync; *txg = the synced txg. */
int volume_sync(struct volume *v, u64 *txg);

#endif
