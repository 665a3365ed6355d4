// SPDX-License-Identifier: GPL-2.0-only
/*
 * intent_log.c - the intent log ring with group commit.
 *
 * What.  Records (a copy-out, a snapshot create, ...) are packed into 4 KiB log blocks in a
 * fixed region of the metadata device used as a ring.  A record is durable once the block
 * holding it has been written and the device flushed; the log never rewrites a block it
 * acknowledged.  Synced txgs free the ring behind them; open replays what is left.
 *
 *      region: start                                          start + nblocks
 *              +------+------+------+------+------+------+------+
 *      slots:  |  ..  | tail |      |  N   | N+1  | open | free |   slot = block seq % nblocks
 *              +------+------+------+------+------+------+------+
 *                      ^ first block not covered by a synced txg
 *                                    ^ the (at most two) batches in flight, then the batch
 *                                      being filled; blocks before them are durable
 *
 * Sequence numbers.  Blocks and records each carry their own sequence number, +1 per block
 * and per record over the life of the log; block seq s always lives in slot s % nblocks.
 * Replay follows the chain: the block at the replay position must carry exactly the
 * expected block seq, the log's guid, and as its first record the expected record seq; each
 * following block the next ones.  A block from an earlier lap (seq too small by a multiple of
 * nblocks), from another store (guid), torn (checksum), or with impossible contents
 * (structure, record checksum) ends the chain.  So replay never applies a block without
 * every block before it, whatever order the device put them on the platter in.
 *
 * Damage.  Where the chain ends is normally the end of the log or a torn tail; but it may be
 * a block that was acknowledged and later damaged, and then the records after it were
 * promised too.  Open reads the rest of the lap before replaying anything: intact blocks of
 * this lap that lie beyond what the batches in flight at a crash can have reached
 * (INTENT_LOG_MAX_BATCHES_IN_FLIGHT, the writer's bound, see il_find_damage) prove damage,
 * and open then refuses with -EILSEQ and a report (struct intent_log_damage), writing
 * nothing, so the evidence stays for the checker and the next open.  Only the
 * administrator's cfg->discard_damaged replays up to the damage and then clears the whole
 * rest of the ring, so that no new block ever chains into the stale ones.  The bound is the
 * price of overlapping batches: damage to a block of one of the last two batches, with
 * nothing durable after them, reads exactly like a crash's tail and is replayed up to it
 * (with one batch in flight, only damage to the last batch did).
 *
 * Group commit (leader/follower, no thread of our own).  Appenders copy their record into
 * the open batch buffer under the mutex.  A waiter whose record is in the open batch, when
 * fewer than INTENT_LOG_MAX_BATCHES_IN_FLIGHT (2) batches are in flight, becomes its leader:
 * it issues the batch (the next free buffer becomes the open one), drops the mutex, seals
 * the blocks, writes them with one device write (two when the batch wraps the ring),
 * flushes once, and retakes the mutex to mark its batch done.  Batches retire in issue
 * order (il_retire_locked): durable_seq moves past a batch only when it and every batch
 * before it are done, so a waiter is acknowledged only once its batch AND all earlier
 * batches are durable, whichever flush returns first.  With one batch in flight, the next
 * one's leader writes it while the first one flushes; with two in flight, later records
 * fill the open buffer and wait until the older of the two retires.  So the number of
 * flushes is the number of batches, not of records, and a batch is issued only once every
 * batch two before it is durable (the bound replay's damage test relies on).  A batch
 * always starts a new block, and starts a further block only when the next record does not
 * fit in its last one.
 *
 * Invariants (under the mutex):
 *  - tail <= open->first_block <= next_block <= tail + nblocks: the ring never overwrites a
 *    block a synced txg has not freed.
 *  - the inflight (<= 2) batches before open in the ring of buffers were issued in that
 *    order and are not retired; the others are idle and empty.
 *  - durable_seq <= first record of the oldest batch in flight <= ... <= issued_seq = first
 *    record of the open batch <= next_seq; records below durable_seq are on disk and
 *    flushed, records from issued_seq on are all in the open batch.
 *  - the batches in flight and the open one span at most INTENT_LOG_MAX_IN_FLIGHT_BLOCKS +
 *    INTENT_LOG_MAX_BATCH_BLOCKS consecutive block seqs; two batches in flight never share
 *    a slot (INTENT_LOG_MIN_BLOCKS), so their writes never overlap.
 *  - blk_txg[slot] is the newest txg among that block's records (for replayed blocks,
 *    synced_txg + 1: they are re-applied in the first txg after open), so a block is freed
 *    only once every record in it is covered by a synced txg.
 *  - once failed is set it stays set; no I/O is issued after it, and durable_seq no longer
 *    moves (a record whose batch was done may then be reported failed: never the reverse).
 *
 * Locking.  One mutex protects everything above; no I/O is done under it.  Each leader owns
 * its batch buffer without the mutex while writing (state IL_WRITING keeps everyone else off
 * it); two leaders may be in I/O at once, on different buffers and slots.  Each batch buffer
 * has its own condition, so a retirement wakes only the waiters it acknowledges: a waiter
 * sleeps on the cv of the batch holding its last record (il_wait_cv), broadcast when that
 * batch retires (its records are then durable), when a batch retires while it is the open
 * one (a leader may go), and on failure.  space_cv: the ring tail moved, a batch buffer
 * became free, or failure.  The pressure callback is called with the mutex dropped.
 *
 * Crash argument.
 *  - If we crash with batches in flight: say N is the oldest.  Every batch before N was
 *    durable when N+1 was issued (a batch is issued only once the batch two before it is
 *    durable, and retirement is in order), so the blocks before N's first are intact and
 *    replay reaches N.  The device may have put any part of N and N+1 on the platter, in any
 *    order: N+1 durable and N torn, or the reverse.  Replay follows the chain, so it stops
 *    at the first block of N (or, if N landed whole, of N+1) that did not land, and never
 *    applies a block of N+1 without all of N.  No record of N or N+1 was acknowledged (N+1's
 *    waiters wait for N too), so losing them loses nothing promised; replaying some of them
 *    is harmless, as their origin writes were never released and the engine redoes them.
 *  - That tail is not damage.  Its end E lies at or after N's first block, and N and N+1
 *    cover fewer than INTENT_LOG_MAX_IN_FLIGHT_BLOCKS (64) slots from there, so intact
 *    blocks after E lie closer than that.  Of them, only N+1's first block can provably
 *    start a batch (a block of N after E continues N), so a legitimate tail shows at most
 *    INTENT_LOG_MAX_BATCHES_IN_FLIGHT - 1 such starts.  Two starts after E, or an intact
 *    block 64 or more after it, mean a batch was issued after N was durable: E was durable,
 *    and damaged since (il_find_damage).
 *  - Blocks of those batches may still lie, intact and with the right sequence numbers,
 *    after the point where replay stopped.  If a new batch were later written over the first
 *    of them only, a second replay would chain from it into these stale ones.  So open,
 *    before appending anything, overwrites the INTENT_LOG_MAX_IN_FLIGHT_BLOCKS slots after
 *    the end with zeros and flushes: that covers every slot the lost batches can have
 *    touched (N began right after the last durable block, so at or before the end).
 *    Because of this scrub, a later open never finds an intact block of this lap beyond
 *    that bound unless a durable block was damaged: the damage test above has no false
 *    alarm from an earlier crash.  The scrub stays within the free part of the ring; a lost
 *    write past that would have overwritten a block replay needed, so replay ended before it
 *    anyway.  If we crash during the scrub, the next open replays as far as it can (perhaps
 *    further into the lost batches: still records nobody was promised) and scrubs again
 *    from there.
 *  - If we crash after intent_log_synced: the uberblock holding the replay position is
 *    durable, and only blocks before it were freed, so replay finds its start intact or
 *    finds nothing (when nothing was appended after it).  The position never passes a
 *    block of the open batch, which may still take records of newer txgs.  It may pass
 *    blocks of batches in flight (their records' txgs are synced, so they are not needed);
 *    a slot freed that way is written again only by a batch at least a ring's length later,
 *    which is not issued while the batch in that slot is in flight (MIN_BLOCKS above).
 *  - A copy-out logged without a data checksum (the log on the snapstore, engine.c) relies
 *    on the flush that acknowledges its record being issued after its copy completed: its
 *    batch's own flush is, as the copy completed before the record was appended.
 *
 * Checksums.  The block checksum covers everything; each record also carries its own, so a
 * decoder refuses a damaged record even in a block that was re-sealed around it, and every
 * length and count is bounds-checked before use (the block may be anything after a crash).
 *  - If a write or flush fails, what reached the platter is unknown: the log fails for good
 *    (-EIO to every waiter not yet acknowledged), and the next open sorts it out by replay.
 */
#include "store/intent_log.h"
#include <pthread.h>
#include <string.h>
#include "util/crc32c.h"
#include "util/log.h"

#define BLOCK_AREA (DDSNAP_BLOCK_SIZE - sizeof(struct intent_log_block_disk))
#define REC_ALIGN  8 /* records start 8-byte aligned so their u64 fields are aligned */

static_assert(INTENT_LOG_MAX_PAYLOAD <= 0xffff, "record len is a __le16");
static_assert(BLOCK_AREA <= 0xffff, "block used is a __le16");
/* Two batches in flight never share a slot, so their writes never overlap (bdev.h). */
static_assert(INTENT_LOG_MIN_BLOCKS >= INTENT_LOG_MAX_IN_FLIGHT_BLOCKS,
	      "the ring holds every batch in flight at once");

/* The batch buffers: the open one and one per batch in flight, used in turn. */
#define IL_NBATCH (INTENT_LOG_MAX_BATCHES_IN_FLIGHT + 1)

enum il_state {
	IL_IDLE,    /* open, or free */
	IL_WRITING, /* issued: its leader writes and flushes it without the mutex */
	IL_DONE,    /* written and flushed, waiting for the batches before it */
	IL_FAILED,  /* its write or flush failed */
};

struct il_batch {
	u8 *buf; /* INTENT_LOG_MAX_BATCH_BLOCKS blocks, BDEV_ALIGN-aligned */
	enum il_state state;
	pthread_cond_t cv;  /* waiters for its records (see Locking) */
	u64 first_block;    /* block seq of buf's first block (when nblocks > 0) */
	u64 end_seq;	    /* one past the last record's seq */
	unsigned nblocks;   /* blocks started */
	unsigned last_used; /* record bytes used in the last block */
	u64 txg[INTENT_LOG_MAX_BATCH_BLOCKS]; /* per block: newest txg of its records */
};

struct intent_log {
	struct bdev *bdev;
	u64 start, nblocks, guid;
	void (*pressure)(void *arg);
	void *pressure_arg;

	pthread_mutex_t lock;
	pthread_cond_t space_cv;

	/*
	 * The open batch and the ones in flight, a ring in issue order: the @inflight batches
	 * before @open (oldest first) were issued and not yet retired.
	 */
	struct il_batch batch[IL_NBATCH];
	struct il_batch *open; /* being filled */
	unsigned inflight;     /* <= INTENT_LOG_MAX_BATCHES_IN_FLIGHT */
	bool pressure_sent;    /* the pressure callback ran since usage last fell below the mark */
	int failed;

	u64 tail;	 /* first block seq not freed */
	u64 next_block;	 /* next block seq to start */
	u64 next_seq;	 /* next record seq */
	u64 issued_seq;	 /* records below are in issued batches; the rest in the open one */
	u64 durable_seq; /* records below are durable */
	u64 *blk_txg;	 /* per slot: newest txg of its records */
	u64 *blk_first;	 /* per slot: its first record seq */

	struct intent_log_stats st;
};

/*----------------------------------------------------------------*/
/* On-disk encoding and the decoder */

static struct intent_log_block_disk *il_hdr(void *block)
{
	return block;
}

static size_t il_rec_size(size_t len)
{
	return ROUND_UP(sizeof(struct intent_log_record_disk) + len, REC_ALIGN);
}

/* crc32c of a record: header with the csum field zero, then the payload. */
static u32 il_rec_csum(const struct intent_log_record_disk *r, const void *payload, size_t len)
{
	struct intent_log_record_disk h = *r;

	h.csum = 0;
	return crc32c(crc32c(INTENT_LOG_RECORD_SEED, &h, sizeof(h)), payload, len);
}

#define il_why(why, whylen, ...) why_printf(why, whylen, -EILSEQ, __VA_ARGS__)

/*
 * Checks the structure of a block whose header checksum is valid, decoding into @info and up
 * to @maxrecs of @recs (either may be NULL).  Every length is checked before it is used.
 */
static int il_walk(const void *block, struct intent_log_block_info *info,
		   struct intent_log_record *recs, unsigned maxrecs, char *why, size_t whylen)
{
	const struct intent_log_block_disk *h = block;
	const u8 *area = (const u8 *)block + sizeof(*h);
	unsigned nrec = le16_to_cpu(h->nrecords), used = le16_to_cpu(h->used);
	u64 first = le64_to_cpu(h->first_rec_seq), hdr_txg = le64_to_cpu(h->hdr.txg);
	u64 max_txg = 0;
	size_t off = 0;

	if (le32_to_cpu(h->hdr.flags) || h->reserved)
		return il_why(why, whylen, "reserved fields set");
	if (nrec == 0 || nrec > INTENT_LOG_MAX_RECORDS_PER_BLOCK)
		return il_why(why, whylen, "%u records", nrec);
	if (used > BLOCK_AREA || used % REC_ALIGN)
		return il_why(why, whylen, "%u bytes used", used);
	for (unsigned i = 0; i < nrec; i++) {
		struct intent_log_record_disk r;
		unsigned len;
		size_t size;

		if (used - off < sizeof(r))
			return il_why(why, whylen, "record %u past the used bytes", i);
		memcpy(&r, area + off, sizeof(r));
		len = le16_to_cpu(r.len);
		size = il_rec_size(len);
		if (size > used - off)
			return il_why(why, whylen, "record %u of %u bytes overruns", i, len);
		if (le16_to_cpu(r.type) == 0)
			return il_why(why, whylen, "record %u of type 0", i);
		if (le64_to_cpu(r.seq) != first + i)
			return il_why(why, whylen, "record %u out of sequence", i);
		if (le64_to_cpu(r.txg) > hdr_txg)
			return il_why(why, whylen, "record %u newer than its block", i);
		if (le32_to_cpu(r.csum) != il_rec_csum(&r, area + off + sizeof(r), len))
			return il_why(why, whylen, "record %u checksum", i);
		for (size_t p = sizeof(r) + len; p < size; p++)
			if (area[off + p])
				return il_why(why, whylen, "record %u padding not zero", i);
		max_txg = MAX(max_txg, le64_to_cpu(r.txg));
		if (recs && i < maxrecs) {
			recs[i].seq = first + i;
			recs[i].txg = le64_to_cpu(r.txg);
			recs[i].type = le16_to_cpu(r.type);
			recs[i].len = (u16)len;
			recs[i].payload = area + off + sizeof(r);
		}
		off += size;
	}
	if (off != used)
		return il_why(why, whylen, "%zu record bytes, header says %u", off, used);
	if (max_txg != hdr_txg)
		return il_why(why, whylen, "block txg %llu, newest record txg %llu",
			      (unsigned long long)hdr_txg, (unsigned long long)max_txg);
	for (size_t p = used; p < BLOCK_AREA; p++)
		if (area[p])
			return il_why(why, whylen, "bytes after the records");
	if (info) {
		info->guid = le64_to_cpu(h->guid);
		info->seq = le64_to_cpu(h->seq);
		info->first_rec_seq = first;
		info->max_txg = hdr_txg;
		info->nrecords = nrec;
		info->used = used;
	}
	return 0;
}

static int il_validate(const void *block, char *why, size_t whylen)
{
	return il_walk(block, NULL, NULL, 0, why, whylen);
}

const struct block_type intent_log_block_type = {
	.name = "intent log",
	.magic = MAGIC_INTENT_LOG,
	.validate = il_validate,
};

int intent_log_block_decode(const void *block, u64 blocknr, struct intent_log_block_info *info,
			    struct intent_log_record *recs, unsigned maxrecs, char *why,
			    size_t whylen)
{
	int r = block_validate(block, &intent_log_block_type, blocknr, why, whylen);

	if (r)
		return r;
	return il_walk(block, info, recs, maxrecs, why, whylen);
}

/*----------------------------------------------------------------*/
/* Device I/O: slots are contiguous on disk, a run of blocks wraps at most once. */

static u64 il_slot(const struct intent_log *log, u64 block_seq)
{
	return block_seq % log->nblocks;
}

static u64 il_addr(const struct intent_log *log, u64 block_seq)
{
	return log->start + il_slot(log, block_seq);
}

static int il_io(struct intent_log *log, bool write, void *buf, u64 block_seq, unsigned count)
{
	u64 slot = il_slot(log, block_seq);
	u64 first = MIN((u64)count, log->nblocks - slot);
	int r;

	for (u64 done = 0, n = first; done < count; done += n, n = count - done) {
		u8 *p = (u8 *)buf + done * DDSNAP_BLOCK_SIZE;
		u64 off = (log->start + (slot + done) % log->nblocks) * DDSNAP_BLOCK_SIZE;
		size_t len = n * DDSNAP_BLOCK_SIZE;

		r = write ? bdev_write(log->bdev, p, len, off) : bdev_read(log->bdev, p, len, off);
		if (r)
			return r;
	}
	return 0;
}

/*----------------------------------------------------------------*/
/* Group commit */

static u64 il_used_locked(const struct intent_log *log)
{
	return log->next_block - log->tail;
}

static void il_batch_reset(struct il_batch *b)
{
	b->state = IL_IDLE;
	b->nblocks = 0;
	b->last_used = 0;
}

/* The batch @ahead places after @b in the ring of batch buffers. */
static struct il_batch *il_batch_at(struct intent_log *log, const struct il_batch *b,
				    unsigned ahead)
{
	return &log->batch[((size_t)(b - log->batch) + ahead) % IL_NBATCH];
}

/*
 * Retires the finished batches at the old end of the ring, in issue order: each one written
 * and flushed moves durable_seq past its records, unless the log failed (a failed batch, or
 * any batch while the log is failed, acknowledges nothing).  Stops at a batch still being
 * written, so a batch is acknowledged only after every batch before it.
 */
static void il_retire_locked(struct intent_log *log)
{
	bool retired = false;

	while (log->inflight) {
		struct il_batch *b = il_batch_at(log, log->open, IL_NBATCH - log->inflight);

		if (b->state == IL_WRITING)
			break;
		if (b->state == IL_DONE && !log->failed)
			log->durable_seq = b->end_seq;
		il_batch_reset(b);
		log->inflight--;
		pthread_cond_broadcast(&b->cv);
		retired = true;
	}
	if (retired) /* the open batch may be issued now */
		pthread_cond_broadcast(&log->open->cv);
}

/* The condition a waiter for the records below @end sleeps on (see Locking). */
static pthread_cond_t *il_wait_cv(struct intent_log *log, u64 end)
{
	for (unsigned k = log->inflight; k; k--) {
		struct il_batch *b = il_batch_at(log, log->open, IL_NBATCH - k);

		if (end <= b->end_seq)
			return &b->cv;
	}
	return &log->open->cv;
}

/*
 * Issues the open batch, if it holds anything, as its leader: writes it, flushes, and
 * retires what is finished.  Called with the mutex held and fewer than
 * INTENT_LOG_MAX_BATCHES_IN_FLIGHT batches in flight; drops it during the I/O, when
 * another leader may issue the next batch.
 */
static void il_lead_locked(struct intent_log *log)
{
	struct il_batch *b = log->open;
	int r = 0;

	ASSERT(log->inflight < INTENT_LOG_MAX_BATCHES_IN_FLIGHT);
	if (!b->nblocks || log->failed)
		return;
	log->open = il_batch_at(log, b, 1);
	ASSERT(log->open->state == IL_IDLE && !log->open->nblocks);
	b->state = IL_WRITING;
	if (log->inflight)
		log->st.overlapped++;
	log->inflight++;
	log->issued_seq = b->end_seq;
	pthread_mutex_unlock(&log->lock);

	/* The batch is ours alone now: appenders fill the open one. */
	for (unsigned i = 0; i < b->nblocks; i++)
		block_seal(b->buf + (size_t)i * DDSNAP_BLOCK_SIZE, &intent_log_block_type,
			   il_addr(log, b->first_block + i), b->txg[i]);
	r = il_io(log, true, b->buf, b->first_block, b->nblocks);
	if (!r)
		r = bdev_flush(log->bdev);

	pthread_mutex_lock(&log->lock);
	if (r) {
		log_err("intent log: %s of %u blocks at block seq %llu failed: %d", "write+flush",
			b->nblocks, (unsigned long long)b->first_block, r);
		log->failed = -EIO;
		b->state = IL_FAILED;
	} else {
		b->state = IL_DONE;
		log->st.batches++;
		log->st.blocks_written += b->nblocks;
		log->st.flushes++;
	}
	il_retire_locked(log);
	if (r) {
		for (size_t i = 0; i < ARRAY_SIZE(log->batch); i++)
			pthread_cond_broadcast(&log->batch[i].cv);
	}
	pthread_cond_broadcast(&log->space_cv);
}

/* Calls the pressure callback with the mutex dropped. */
static void il_pressure_locked(struct intent_log *log)
{
	log->pressure_sent = true;
	if (!log->pressure)
		return;
	pthread_mutex_unlock(&log->lock);
	log->pressure(log->pressure_arg);
	pthread_mutex_lock(&log->lock);
}

/* Appends an empty block to the open batch @b; the ring has room for it. */
static void il_start_block_locked(struct intent_log *log, struct il_batch *b)
{
	u64 s = log->next_block++;
	u8 *blk = b->buf + (size_t)b->nblocks * DDSNAP_BLOCK_SIZE;
	struct intent_log_block_disk *h = il_hdr(blk);

	if (!b->nblocks)
		b->first_block = s;
	b->txg[b->nblocks] = 0;
	b->nblocks++;
	b->last_used = 0;
	memset(blk, 0, DDSNAP_BLOCK_SIZE);
	h->guid = cpu_to_le64(log->guid);
	h->seq = cpu_to_le64(s);
	h->first_rec_seq = cpu_to_le64(log->next_seq);
	log->blk_txg[il_slot(log, s)] = 0;
	log->blk_first[il_slot(log, s)] = log->next_seq;
}

/*
 * Makes room for a record of @size bytes in the open batch: the last block if it fits, else
 * a new block.  Returns 0 with the room ready, -EIO, or -EWOULDBLOCK.
 */
static int il_reserve_locked(struct intent_log *log, size_t size, unsigned flags)
{
	bool kicked = false;

	for (;;) {
		struct il_batch *b = log->open;

		if (log->failed)
			return log->failed;
		if (b->nblocks && b->last_used + size <= BLOCK_AREA)
			return 0;
		if (b->nblocks == INTENT_LOG_MAX_BATCH_BLOCKS) {
			/* The batch buffer is full: issue it, or wait until it may be. */
			if (log->inflight < INTENT_LOG_MAX_BATCHES_IN_FLIGHT)
				il_lead_locked(log);
			else
				pthread_cond_wait(&log->space_cv, &log->lock);
			continue;
		}
		if (il_used_locked(log) >= log->nblocks) {
			if (flags & INTENT_LOG_NOWAIT)
				return -EWOULDBLOCK;
			if (!kicked) {
				kicked = true;
				il_pressure_locked(log);
				continue;
			}
			pthread_cond_wait(&log->space_cv, &log->lock);
			continue;
		}
		il_start_block_locked(log, b);
		return 0;
	}
}

int intent_log_append(struct intent_log *log, u16 type, u64 txg, const void *payload, u16 len,
		      unsigned flags, u64 *seq)
{
	size_t size = il_rec_size(len);
	struct intent_log_block_disk *h;
	struct intent_log_record_disk r;
	struct il_batch *b;
	u8 *blk, *at;
	int err;

	if (type == 0 || len > INTENT_LOG_MAX_PAYLOAD || (len && !payload))
		return -EINVAL;
	pthread_mutex_lock(&log->lock);
	err = il_reserve_locked(log, size, flags);
	if (err)
		goto out_unlock;
	b = log->open;
	blk = b->buf + (size_t)(b->nblocks - 1) * DDSNAP_BLOCK_SIZE;
	h = il_hdr(blk);
	at = blk + sizeof(*h) + b->last_used;
	r.csum = 0;
	r.type = cpu_to_le16(type);
	r.len = cpu_to_le16(len);
	r.seq = cpu_to_le64(log->next_seq);
	r.txg = cpu_to_le64(txg);
	r.csum = cpu_to_le32(il_rec_csum(&r, payload, len));
	memcpy(at, &r, sizeof(r));
	if (len)
		memcpy(at + sizeof(r), payload, len);
	b->last_used += (unsigned)size;
	h->used = cpu_to_le16((u16)b->last_used);
	h->nrecords = cpu_to_le16((u16)(le16_to_cpu(h->nrecords) + 1));
	b->txg[b->nblocks - 1] = MAX(b->txg[b->nblocks - 1], txg);
	log->blk_txg[il_slot(log, b->first_block + b->nblocks - 1)] = b->txg[b->nblocks - 1];
	if (seq)
		*seq = log->next_seq;
	b->end_seq = ++log->next_seq;
	log->st.records++;
	if (!log->pressure_sent &&
	    il_used_locked(log) * 100 >= log->nblocks * INTENT_LOG_PRESSURE_PCT) {
		il_pressure_locked(log);
	}
out_unlock:
	pthread_mutex_unlock(&log->lock);
	return err;
}

/*
 * Waits until every record below @end is durable, leading a batch when some of them are in
 * the open one and another batch may be issued.
 */
static int il_wait_locked(struct intent_log *log, u64 end)
{
	while (log->durable_seq < end && !log->failed) {
		if (log->issued_seq < end && log->inflight < INTENT_LOG_MAX_BATCHES_IN_FLIGHT) {
			/* Records issued_seq..end-1 are in the open batch. */
			VERIFY(log->open->nblocks);
			il_lead_locked(log);
		} else {
			pthread_cond_wait(il_wait_cv(log, end), &log->lock);
		}
	}
	return log->durable_seq >= end ? 0 : log->failed;
}

int intent_log_wait(struct intent_log *log, u64 seq)
{
	int r = -EINVAL;

	pthread_mutex_lock(&log->lock);
	if (seq < log->next_seq)
		r = il_wait_locked(log, seq + 1);
	pthread_mutex_unlock(&log->lock);
	return r;
}

int intent_log_flush(struct intent_log *log)
{
	int r;

	pthread_mutex_lock(&log->lock);
	r = il_wait_locked(log, log->next_seq);
	pthread_mutex_unlock(&log->lock);
	return r;
}

int intent_log_commit(struct intent_log *log, u16 type, u64 txg, const void *payload, u16 len,
		      unsigned flags, u64 *seq)
{
	u64 s;
	int r = intent_log_append(log, type, txg, payload, len, flags, &s);

	if (r)
		return r;
	if (seq)
		*seq = s;
	return intent_log_wait(log, s);
}

int intent_log_wait_space(struct intent_log *log)
{
	int r;

	pthread_mutex_lock(&log->lock);
	while (!log->failed && il_used_locked(log) >= log->nblocks)
		pthread_cond_wait(&log->space_cv, &log->lock);
	r = log->failed;
	pthread_mutex_unlock(&log->lock);
	return r;
}

/*----------------------------------------------------------------*/
/* Space */

struct intent_log_pos intent_log_sync_point(struct intent_log *log, u64 txg)
{
	struct intent_log_pos pos;
	u64 limit, p;

	pthread_mutex_lock(&log->lock);
	/* The open batch's blocks may still gain records of newer txgs: stop before them. */
	limit = log->open->nblocks ? log->open->first_block : log->next_block;
	for (p = log->tail; p < limit && log->blk_txg[il_slot(log, p)] <= txg; p++)
		;
	pos.block_seq = p;
	pos.rec_seq = p < log->next_block ? log->blk_first[il_slot(log, p)] : log->next_seq;
	pthread_mutex_unlock(&log->lock);
	return pos;
}

void intent_log_synced(struct intent_log *log, u64 txg, struct intent_log_pos pos)
{
	pthread_mutex_lock(&log->lock);
	VERIFY(pos.block_seq <= log->next_block);
	if (pos.block_seq > log->tail)
		log->tail = pos.block_seq;
	if (il_used_locked(log) * 100 < log->nblocks * INTENT_LOG_PRESSURE_PCT)
		log->pressure_sent = false;
	pthread_cond_broadcast(&log->space_cv);
	pthread_mutex_unlock(&log->lock);
}

void intent_log_usage(struct intent_log *log, u64 *used, u64 *total)
{
	pthread_mutex_lock(&log->lock);
	*used = il_used_locked(log);
	*total = log->nblocks;
	pthread_mutex_unlock(&log->lock);
}

void intent_log_stats(struct intent_log *log, struct intent_log_stats *out)
{
	pthread_mutex_lock(&log->lock);
	*out = log->st;
	out->next_seq = log->next_seq;
	out->durable_seq = log->durable_seq;
	out->failed = log->failed;
	pthread_mutex_unlock(&log->lock);
}

/*----------------------------------------------------------------*/
/* Open, replay, close */

/* Read-ahead over the ring for replay and the damage scan: a batch's worth per read. */
struct il_reader {
	u8 *buf;       /* INTENT_LOG_MAX_BATCH_BLOCKS blocks */
	u64 first;     /* block seq of buf's first block */
	unsigned have; /* blocks in buf */
	u64 limit;     /* one past the last block seq to read: the end of this lap */
};

static int il_read(struct intent_log *log, struct il_reader *rd, u64 s, const u8 **blk)
{
	int r;

	if (!rd->have || s < rd->first || s >= rd->first + rd->have) {
		unsigned n = (unsigned)MIN((u64)INTENT_LOG_MAX_BATCH_BLOCKS, rd->limit - s);

		rd->have = 0;
		r = il_io(log, false, rd->buf, s, n);
		if (r) {
			log_err("intent log: reading block seq %llu: %d", (unsigned long long)s, r);
			return r;
		}
		rd->first = s;
		rd->have = n;
	}
	*blk = rd->buf + (size_t)(s - rd->first) * DDSNAP_BLOCK_SIZE;
	return 0;
}

/*
 * Decodes @blk as block seq @s of this log: valid, this log's guid, that sequence number.
 * Returns 0 or -EILSEQ with the reason in @why.
 */
static int il_decode_seq(struct intent_log *log, const u8 *blk, u64 s,
			 struct intent_log_block_info *info, struct intent_log_record *recs,
			 unsigned maxrecs, char *why, size_t whylen)
{
	int r = intent_log_block_decode(blk, il_addr(log, s), info, recs, maxrecs, why, whylen);

	if (r)
		return r;
	if (info->guid != log->guid)
		return il_why(why, whylen, "a block of another log (guid %llx)",
			      (unsigned long long)info->guid);
	if (info->seq != s)
		return il_why(why, whylen, "block seq %llu, an earlier lap's",
			      (unsigned long long)info->seq);
	return 0;
}

/*
 * Follows the chain from cfg->replay_from: sets next_block and next_seq after its last
 * block, and d->end_block, d->end_rec, d->why where it ends.  With @replay, hands each
 * record newer than cfg->synced_txg to cfg->replay and records per slot what space
 * reclamation needs.  Returns 0, -EIO, or the callback's error.
 */
static int il_chain(struct intent_log *log, const struct intent_log_config *cfg,
		    struct il_reader *rd, bool replay, struct intent_log_damage *d)
{
	u64 s = cfg->replay_from.block_seq, rec = cfg->replay_from.rec_seq;
	int r = 0;

	snprintf(d->why, sizeof(d->why), "the ring is full");
	for (; s < rd->limit; s++) {
		struct intent_log_record rv[INTENT_LOG_MAX_RECORDS_PER_BLOCK];
		struct intent_log_block_info info;
		const u8 *blk;

		r = il_read(log, rd, s, &blk);
		if (r)
			return r;
		r = il_decode_seq(log, blk, s, &info, rv, ARRAY_SIZE(rv), d->why, sizeof(d->why));
		if (!r && info.first_rec_seq != rec)
			r = il_why(d->why, sizeof(d->why), "first record %llu, expected %llu",
				   (unsigned long long)info.first_rec_seq, (unsigned long long)rec);
		if (r) {
			r = 0;
			break;
		}
		for (unsigned k = 0; replay && k < info.nrecords; k++) {
			if (rv[k].txg <= cfg->synced_txg)
				continue;
			log->st.replayed++;
			if (!cfg->replay)
				continue;
			r = cfg->replay(cfg->replay_arg, &rv[k]);
			if (r)
				return r;
		}
		/* Replayed records are re-applied in the first txg after open. */
		log->blk_txg[il_slot(log, s)] = cfg->synced_txg + 1;
		log->blk_first[il_slot(log, s)] = rec;
		rec += info.nrecords;
	}
	log->next_block = s;
	log->next_seq = rec;
	d->end_block = s;
	d->end_rec = rec;
	return 0;
}

/*
 * Damage.  The chain ended at block seq E.  If that is a torn tail, the batch holding E
 * began at or before E (every block before it was durable when it was issued), and the
 * batches in flight with it cover fewer than INTENT_LOG_MAX_IN_FLIGHT_BLOCKS blocks from
 * there; nothing after them was written.  So an intact block of this lap after E proves
 * that the batch holding E was durable, and E damaged, when it lies at or beyond
 * E + INTENT_LOG_MAX_IN_FLIGHT_BLOCKS, or when INTENT_LOG_MAX_BATCHES_IN_FLIGHT intact blocks
 * after E each provably start a batch.  A block starts a batch when its first record would
 * have fit in the intact block before it: the writer only starts a block within a batch
 * when the next record does not fit in the last one.  Scans the rest of this lap; fills the
 * intact_* fields and d->damaged.  Returns 0 or -EIO.
 */
static int il_find_damage(struct intent_log *log, struct il_reader *rd, struct intent_log_damage *d)
{
	unsigned prev_used = 0, starts = 0;
	bool prev_ok = false;

	for (u64 t = d->end_block + 1; t < rd->limit; t++) {
		struct intent_log_block_info info;
		struct intent_log_record first;
		const u8 *blk;
		int r = il_read(log, rd, t, &blk);

		if (r)
			return r;
		if (il_decode_seq(log, blk, t, &info, &first, 1, NULL, 0)) {
			prev_ok = false;
			continue;
		}
		if (prev_ok && il_rec_size(first.len) <= BLOCK_AREA - prev_used)
			starts++;
		if (!d->intact_blocks) {
			d->intact_first = t;
			d->intact_rec = info.first_rec_seq;
		}
		d->intact_blocks++;
		d->intact_records += info.nrecords;
		d->intact_last = t;
		if (starts >= INTENT_LOG_MAX_BATCHES_IN_FLIGHT ||
		    t - d->end_block >= INTENT_LOG_MAX_IN_FLIGHT_BLOCKS)
			d->damaged = true;
		prev_ok = true;
		prev_used = info.used;
	}
	return 0;
}

const char *intent_log_damage_describe(const struct intent_log_damage *d, char *buf, size_t len)
{
	char lost[80];

	if (!d->damaged) {
		snprintf(buf, len, "ends at block seq %llu, record %llu (%s)",
			 (unsigned long long)d->end_block, (unsigned long long)d->end_rec, d->why);
		return buf;
	}
	if (d->intact_rec == d->end_rec + 1)
		snprintf(lost, sizeof(lost), "record %llu is", (unsigned long long)d->end_rec);
	else if (d->intact_rec > d->end_rec)
		snprintf(lost, sizeof(lost), "records %llu..%llu are",
			 (unsigned long long)d->end_rec, (unsigned long long)d->intact_rec - 1);
	else
		snprintf(lost, sizeof(lost), "records from %llu are",
			 (unsigned long long)d->end_rec);
	snprintf(buf, len,
		 "damaged: block seq %llu is unreadable (%s) but %llu intact blocks follow it "
		 "(seq %llu..%llu), so it was acknowledged, not torn: %s lost and the %llu "
		 "records after the gap cannot be replayed.  Inspect with `ddsnap check`; `ddsnap "
		 "server "
		 "--discard-damaged-log` opens the store without them",
		 (unsigned long long)d->end_block, d->why, (unsigned long long)d->intact_blocks,
		 (unsigned long long)d->intact_first, (unsigned long long)d->intact_last, lost,
		 (unsigned long long)d->intact_records);
	return buf;
}

/*
 * Zeroes @n slots from the end of the log (within the free part of the ring) and flushes:
 * the INTENT_LOG_MAX_IN_FLIGHT_BLOCKS that the batches in flight at a crash may have reached
 * (see the crash argument above), or after accepted damage the whole rest of the ring.
 */
static int il_scrub(struct intent_log *log, u64 n)
{
	u8 *zero = log->batch[1].buf;
	int r = 0;

	n = MIN(n, log->nblocks - il_used_locked(log));
	if (!n)
		return 0;
	memset(zero, 0, (size_t)INTENT_LOG_MAX_BATCH_BLOCKS * DDSNAP_BLOCK_SIZE);
	for (u64 done = 0; done < n && !r; done += INTENT_LOG_MAX_BATCH_BLOCKS)
		r = il_io(log, true, zero, log->next_block + done,
			  (unsigned)MIN((u64)INTENT_LOG_MAX_BATCH_BLOCKS, n - done));
	if (!r)
		r = bdev_flush(log->bdev);
	if (!r)
		log->st.flushes++;
	return r;
}

static bool il_config_ok(const struct intent_log_config *cfg)
{
	u64 dev_blocks;

	if (!cfg || !cfg->bdev || cfg->nblocks < INTENT_LOG_MIN_BLOCKS)
		return false;
	dev_blocks = cfg->bdev->size / DDSNAP_BLOCK_SIZE;
	return cfg->start < dev_blocks && cfg->nblocks <= dev_blocks - cfg->start &&
	       cfg->replay_from.block_seq <= UINT64_MAX - cfg->nblocks &&
	       cfg->synced_txg < UINT64_MAX;
}

/* A log with its buffers, not yet read. */
static struct intent_log *il_alloc(const struct intent_log_config *cfg)
{
	struct intent_log *log = xzalloc(sizeof(*log));

	log->bdev = cfg->bdev;
	log->start = cfg->start;
	log->nblocks = cfg->nblocks;
	log->guid = cfg->guid;
	log->pressure = cfg->pressure;
	log->pressure_arg = cfg->pressure_arg;
	pthread_mutex_init(&log->lock, NULL);
	pthread_cond_init(&log->space_cv, NULL);
	log->blk_txg = xzalloc(log->nblocks * sizeof(u64));
	log->blk_first = xzalloc(log->nblocks * sizeof(u64));
	for (size_t i = 0; i < ARRAY_SIZE(log->batch); i++) {
		size_t size = (size_t)INTENT_LOG_MAX_BATCH_BLOCKS * DDSNAP_BLOCK_SIZE;

		if (posix_memalign((void **)&log->batch[i].buf, BDEV_ALIGN, size))
			VERIFY(!"out of memory for the intent log batch buffers");
		pthread_cond_init(&log->batch[i].cv, NULL);
	}
	log->open = &log->batch[0];
	log->tail = cfg->replay_from.block_seq;
	return log;
}

static void il_free(struct intent_log *log)
{
	pthread_cond_destroy(&log->space_cv);
	pthread_mutex_destroy(&log->lock);
	for (size_t i = 0; i < ARRAY_SIZE(log->batch); i++) {
		pthread_cond_destroy(&log->batch[i].cv);
		free(log->batch[i].buf);
	}
	free(log->blk_first);
	free(log->blk_txg);
	free(log);
}

/*
 * Reads the chain, then the rest of this lap for damage, and only then, unless damage is
 * proven and not to be discarded, replays: a refused open has handed out no record.
 */
static int il_read_log(struct intent_log *log, const struct intent_log_config *cfg,
		       struct intent_log_damage *d)
{
	struct il_reader rd = {
		.buf = log->batch[0].buf,
		.limit = cfg->replay_from.block_seq + log->nblocks,
	};
	int r;

	memset(d, 0, sizeof(*d));
	r = il_chain(log, cfg, &rd, false, d);
	if (!r)
		r = il_find_damage(log, &rd, d);
	if (r || (d->damaged && !cfg->discard_damaged))
		return r;
	return il_chain(log, cfg, &rd, true, d);
}

int intent_log_open(const struct intent_log_config *cfg, struct intent_log **out)
{
	struct intent_log_damage local = {0}, *d;
	struct intent_log *log;
	char msg[600];
	int r;

	if (!il_config_ok(cfg) || !out)
		return -EINVAL;
	d = cfg->damage ? cfg->damage : &local;
	log = il_alloc(cfg);
	r = il_read_log(log, cfg, d);
	if (r)
		goto out_free_log;
	if (d->damaged) {
		intent_log_damage_describe(d, msg, sizeof(msg));
		if (!cfg->discard_damaged) {
			log_err("intent log %s", msg);
			r = -EILSEQ;
			goto out_free_log;
		}
		log_err("intent log %s; discarded as the administrator asked", msg);
	}
	log_debug("intent log: %s", intent_log_damage_describe(d, msg, sizeof(msg)));
	log->durable_seq = log->issued_seq = log->next_seq;
	/* After accepted damage, the intact blocks past it must never chain into a new log. */
	r = il_scrub(log, d->damaged ? log->nblocks : INTENT_LOG_MAX_IN_FLIGHT_BLOCKS);
	if (r) {
		log_err("intent log: clearing after the end of the log failed: %d", r);
		goto out_free_log;
	}
	*out = log;
	return 0;

out_free_log:
	il_free(log);
	return r;
}

int intent_log_scan(const struct intent_log_config *cfg, u64 *replayed)
{
	struct intent_log_damage local = {0};
	struct intent_log_config c;
	struct intent_log *log;
	int r;

	if (!il_config_ok(cfg))
		return -EINVAL;
	c = *cfg;
	c.discard_damaged = true; /* hand out what open would replay were the loss accepted */
	log = il_alloc(&c);
	r = il_read_log(log, &c, c.damage ? c.damage : &local);
	if (replayed)
		*replayed = log->st.replayed;
	il_free(log);
	return r;
}

void intent_log_close(struct intent_log *log)
{
	if (!log)
		return;
	pthread_mutex_lock(&log->lock);
	(void)il_wait_locked(log, log->next_seq);
	pthread_mutex_unlock(&log->lock);
	il_free(log);
}
