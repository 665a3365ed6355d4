/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * intent_log.h - the intent log: a ring of checksummed records in a fixed region of the
 * metadata device, made durable by group commit and replayed on open (DESIGN.md 4).
 *
 * A copy-out must be durable before its origin write is released.  The engine appends a
 * record describing it (the payload is the engine's: copy-out, snapshot create/delete, ...)
 * and waits; every record appended while a batch is being written rides a later batch, so
 * N concurrent waiters cost about one device write and one flush, not N.  Up to
 * INTENT_LOG_MAX_BATCHES_IN_FLIGHT batches are written at once (the next one is written
 * while the previous one flushes), and a record is acknowledged only once its batch and
 * every earlier one are durable.
 *
 * Life cycle, as the store drives it:
 *
 *   open:    intent_log_open(cfg) with the replay position and synced txg kept in the
 *            newest uberblock; cfg->replay is called for every record newer than that, in
 *            sequence order; then the log appends after the last valid record.
 *   running: intent_log_append() + intent_log_wait(), or intent_log_commit() for both.
 *   txg T syncs: pos = intent_log_sync_point(log, T) before writing the uberblock of T;
 *            store pos in that uberblock; once it is durable, intent_log_synced(log, T, pos)
 *            lets the ring reuse the space.  Records of txgs <= T are then no longer needed.
 *
 * Replayed records count as belonging to txg cfg->synced_txg + 1 for space reclamation: the
 * store re-applies them in the first txg it opens after replay, which must be that one.
 *
 * Space: the ring holds cfg->nblocks blocks; a batch takes whole blocks (a block is never
 * rewritten once acknowledged, so a torn write can only hurt records nobody was told were
 * durable).  When the ring is full an appender blocks until intent_log_synced() frees space
 * (or fails with -EWOULDBLOCK under INTENT_LOG_NOWAIT).  An appender that holds the open txg
 * must use INTENT_LOG_NOWAIT, drop its hold, intent_log_wait_space() and retry: waiting for
 * space while holding the txg whose sync would free it deadlocks.  cfg->pressure is called
 * when the ring passes INTENT_LOG_PRESSURE_PCT so the txg layer can sync early;
 * intent_log_usage() reports the fill level at any time.
 *
 * Limits: a record's payload is at most INTENT_LOG_MAX_PAYLOAD bytes (a record never spans
 * blocks); a larger one is refused with -EINVAL.  Record types are 1..65535 (0 is never
 * valid, so zeroed space never decodes as a record).
 *
 * Thread safety: append, wait, commit, wait_space, usage, stats, sync_point and synced may be
 * called from any number of threads at once.  open and close are not concurrent with anything.
 *
 * Errors (base.h): -EINVAL bad argument, -EILSEQ proven damage at open (struct
 * intent_log_damage), -EIO a write or flush failed (sticky: the log
 * refuses everything but close after that, since what reached the disk is unknown),
 * -EWOULDBLOCK no ring space under INTENT_LOG_NOWAIT, -ENOMEM never (allocation aborts).
 */
#ifndef DDSNAP_INTENT_LOG_H
#define DDSNAP_INTENT_LOG_H

#include "util/base.h"
#include "blk/bdev.h"
#include "blk/block.h"
#include "blk/format.h"

struct intent_log;

/* Bytes of payload one record can carry: a block less its headers (format.h): 4008. */
#define INTENT_LOG_MAX_PAYLOAD                                      \
	(DDSNAP_BLOCK_SIZE - sizeof(struct intent_log_block_disk) - \
	 sizeof(struct intent_log_record_disk))
/* Most records one block can hold (all with empty payloads): 168. */
#define INTENT_LOG_MAX_RECORDS_PER_BLOCK                              \
	((DDSNAP_BLOCK_SIZE - sizeof(struct intent_log_block_disk)) / \
	 sizeof(struct intent_log_record_disk))
/*
 * Blocks in one batch write.  Bounds the memory of the batch buffers (one open and one per
 * batch in flight: 3 x 128 KiB) and the latency of one group commit; also, times the
 * batches in flight, the number of blocks a crash can leave half-written after the end of
 * the log, which open overwrites before appending (see intent_log.c).
 */
#define INTENT_LOG_MAX_BATCH_BLOCKS 32
/*
 * Batches a crash can leave partly written: the writer issues a batch only once every batch
 * this many before it is durable, so the next batch is written while the previous one
 * flushes.  Replay relies on it to tell a torn tail from damage (intent_log.c, "Damage");
 * doc/format.md says what it means for the log on disk.
 */
#define INTENT_LOG_MAX_BATCHES_IN_FLIGHT 2
/* Blocks after the end of the log that the batches in flight at a crash can have touched. */
#define INTENT_LOG_MAX_IN_FLIGHT_BLOCKS \
	(INTENT_LOG_MAX_BATCHES_IN_FLIGHT * INTENT_LOG_MAX_BATCH_BLOCKS)
/* The smallest ring: full batches in flight at once never share a slot. */
#define INTENT_LOG_MIN_BLOCKS (2 * INTENT_LOG_MAX_BATCH_BLOCKS)
/*
 * Fill level at which cfg->pressure is called: early enough that the txg sync it triggers
 * finishes before appenders run out of space at the usual sync interval.
 */
#define INTENT_LOG_PRESSURE_PCT 50

static_assert(INTENT_LOG_MAX_PAYLOAD == 4008, "documented maximum record payload");

/*
 * Where replay starts: the first block of the ring not covered by a synced txg, and the
 * sequence number of the first record in it.  The store keeps this in the uberblock.  A new
 * log starts at {0, 0}.
 */
struct intent_log_pos {
	u64 block_seq;
	u64 rec_seq;
};

/* A record as replay hands it out; @payload points into a buffer valid during the call. */
struct intent_log_record {
	u64 seq; /* monotonically increasing over the life of the log, no gaps */
	u64 txg; /* the txg open when it was logged */
	u16 type;
	u16 len;
	const void *payload;
};

/*
 * Where the chain of log blocks ended, and whether that end is damage rather than a torn
 * tail.  Replay follows the chain from the replay position and stops at the first block that
 * does not continue it.  After a crash, a torn tail is normal: the batches in flight
 * (INTENT_LOG_MAX_BATCHES_IN_FLIGHT) may have landed in part, and none of their records were
 * acknowledged.  But intact blocks of this lap after the end that belong to a later batch
 * (further than INTENT_LOG_MAX_IN_FLIGHT_BLOCKS, or provably starting a new batch) were
 * written after the end's batch was durable: the end is damage, and acknowledged records
 * after it would be lost.
 */
struct intent_log_damage {
	bool damaged;
	u64 end_block;	    /* block seq where the chain ended */
	u64 end_rec;	    /* record seq expected there: the first record not replayed */
	char why[160];	    /* why the block at end_block does not continue the chain */
	u64 intact_blocks;  /* intact blocks of this lap after end_block */
	u64 intact_records; /* records in them */
	u64 intact_first;   /* block seq of the first of them (when intact_blocks) */
	u64 intact_rec;	    /* record seq of its first record */
	u64 intact_last;    /* block seq of the last of them */
};

/*
 * One line for an administrator: what was lost where and how to proceed (damage->damaged),
 * or where the log ended.  Returns @buf.
 */
const char *intent_log_damage_describe(const struct intent_log_damage *d, char *buf, size_t len);

struct intent_log_config {
	struct bdev *bdev;
	u64 start;   /* first block of the log region, in DDSNAP_BLOCK_SIZE blocks */
	u64 nblocks; /* blocks in the region, >= INTENT_LOG_MIN_BLOCKS */
	/*
	 * Identifies this log; every block carries it, so blocks of an earlier store formatted
	 * on the same device never replay.  The store picks a random one at format time.
	 */
	u64 guid;
	/* From the newest uberblock: records of txgs <= synced_txg are not replayed. */
	u64 synced_txg;
	struct intent_log_pos replay_from;
	/*
	 * Called for each record to replay, in sequence order, during intent_log_open.  A
	 * non-zero return stops replay and open returns it.  May be NULL (records skipped).
	 */
	int (*replay)(void *arg, const struct intent_log_record *rec);
	void *replay_arg;
	/*
	 * Called when the ring passes INTENT_LOG_PRESSURE_PCT, once until the next
	 * intent_log_synced, and again whenever an appender has to wait for space.  Called from
	 * an appending thread with no log lock held; must not block on the log.  May be NULL.
	 */
	void (*pressure)(void *arg);
	void *pressure_arg;
	/*
	 * Proven damage (see struct intent_log_damage) makes open fail with -EILSEQ.  With
	 * this set it replays the records before the damage instead, logs what is lost, and
	 * clears the rest of the ring so that the intact blocks after it never replay: the
	 * administrator's explicit acceptance of the loss (ddsnap server --discard-damaged-log).
	 */
	bool discard_damaged;
	/* If not NULL, filled by open and intent_log_scan with where replay ended and why. */
	struct intent_log_damage *damage;
};

/*
 * Opens the log: reads the chain and the rest of the ring for damage, replays (see
 * cfg->replay), then makes the region after the last valid record safe to append to (one
 * write and one flush; with cfg->discard_damaged after damage, the whole rest of the ring).
 * Returns 0 and *out, -EINVAL (bad config), -EILSEQ (proven damage, nothing replayed: see
 * cfg->damage), -EIO, or the replay callback's error.  O(ring blocks).  Blocks on I/O.
 */
int intent_log_open(const struct intent_log_config *cfg, struct intent_log **out);

/*
 * Reads the log as open would, without writing: calls cfg->replay (may be NULL) for every
 * record open would replay, and fills cfg->damage.  For the checker and the dump tool.
 * *@replayed (may be NULL) gets the number of those records.  Returns 0 (damage or not),
 * -EINVAL, -EIO, or the callback's error.  O(ring blocks).  Blocks on I/O.
 */
int intent_log_scan(const struct intent_log_config *cfg, u64 *replayed);

/*
 * Makes every appended record durable (unless the log failed), then frees the log.  Nothing
 * else may be running on @log.  Blocks on I/O.
 */
void intent_log_close(struct intent_log *log);

enum intent_log_flags {
	INTENT_LOG_NOWAIT = 1 << 0, /* return -EWOULDBLOCK rather than wait for ring space */
};

/*
 * Appends one record of @type (1..65535) logged in @txg with @len bytes of @payload, and
 * returns its sequence number in *seq.  The record is not durable until intent_log_wait(seq)
 * returns 0.  Returns 0, -EINVAL (type 0, len > INTENT_LOG_MAX_PAYLOAD), -EIO (the log
 * failed), -EWOULDBLOCK (ring full under INTENT_LOG_NOWAIT).  O(len).  Blocks only when the
 * ring or the batch buffer is full (the latter for about one flush).  Takes the log mutex.
 */
int intent_log_append(struct intent_log *log, u16 type, u64 txg, const void *payload, u16 len,
		      unsigned flags, u64 *seq);

/*
 * Waits until every record with sequence <= @seq is durable, writing and flushing the
 * batch holding it itself if it is not issued yet and fewer than
 * INTENT_LOG_MAX_BATCHES_IN_FLIGHT batches are (group commit: the caller may become the
 * leader and carry everyone's records).  Returns 0 or -EIO (the log failed before @seq was
 * known durable).  Blocks on I/O.  Takes the log mutex, never across I/O.
 */
int intent_log_wait(struct intent_log *log, u64 seq);

/*
 * Waits until every record appended before the call, by any thread, is durable: the
 * engine's "flush what I queued" when it does not keep sequence numbers.  Returns 0 (also
 * when nothing is pending) or -EIO.  Blocks on I/O, as intent_log_wait.
 */
int intent_log_flush(struct intent_log *log);

/* intent_log_append then intent_log_wait.  Returns as they do; *seq may be NULL. */
int intent_log_commit(struct intent_log *log, u16 type, u64 txg, const void *payload, u16 len,
		      unsigned flags, u64 *seq);

/*
 * Waits until the ring has room for at least one more block, or the log failed.  Returns 0
 * or -EIO.  Blocks until intent_log_synced frees space.
 */
int intent_log_wait_space(struct intent_log *log);

/*
 * Returns the replay position to store in the uberblock of @txg: the first block holding a
 * record of a txg > @txg, or the first block not yet closed.  Call it while @txg is
 * quiesced (no more records of txgs <= @txg will be appended).  No I/O.  O(blocks between
 * the ring tail and that block).
 */
struct intent_log_pos intent_log_sync_point(struct intent_log *log, u64 txg);

/*
 * The uberblock of @txg, holding @pos (from intent_log_sync_point), is durable: the blocks
 * before @pos may be reused.  Wakes appenders waiting for space.  No I/O.  O(1).
 */
void intent_log_synced(struct intent_log *log, u64 txg, struct intent_log_pos pos);

/* Ring fill level: blocks in use (not yet freed by intent_log_synced) and in total. O(1). */
void intent_log_usage(struct intent_log *log, u64 *used, u64 *total);

struct intent_log_stats {
	u64 records;	    /* appended since open */
	u64 batches;	    /* batch writes (each one device write, two at the ring's end) */
	u64 overlapped;	    /* batches issued while an earlier one was still in flight */
	u64 blocks_written; /* log blocks written, the open-time scrub not counted */
	u64 flushes;	    /* device flushes issued, the open-time one included */
	u64 replayed;	    /* records handed to cfg->replay */
	u64 next_seq;	    /* sequence number the next record gets */
	u64 durable_seq;    /* every record below this is durable */
	int failed;	    /* 0, or the sticky error */
};
/* A consistent snapshot of the counters. O(1). Takes the log mutex. */
void intent_log_stats(struct intent_log *log, struct intent_log_stats *out);

/*----------------------------------------------------------------*/
/* The block decoder, public for the fuzzer, the checker and the dump tool. */

/* The block type of log blocks (magic MAGIC_INTENT_LOG, structure validator included). */
extern const struct block_type intent_log_block_type;

struct intent_log_block_info {
	u64 guid;
	u64 seq;	   /* block sequence number */
	u64 first_rec_seq; /* sequence of its first record */
	u64 max_txg;	   /* the header txg: the newest txg of its records */
	unsigned nrecords;
	unsigned used; /* bytes of records in the block */
};

/*
 * Validates @block as read from address @blocknr (header, checksum, structure and every
 * record's own checksum and sequence) and decodes it: *info, and up to @maxrecs records into
 * @recs (payload pointers into @block).  Returns 0, -EILSEQ or -ENOTBLK with the reason in
 * @why.  Never reads outside the block.  O(block size).  Thread-safe.
 */
int intent_log_block_decode(const void *block, u64 blocknr, struct intent_log_block_info *info,
			    struct intent_log_record *recs, unsigned maxrecs, char *why,
			    size_t whylen);

#endif
