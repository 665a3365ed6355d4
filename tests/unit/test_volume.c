// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_volume.c - the volume layer (volume.c) on the fault-injecting RAM device: the flushes
 * an origin write costs, and crash safety of the flushes it saves.
 *
 * volume_origin_write() promises that when it returns, every copy-out the write needs (its
 * own, or one another request made a moment earlier) and its record are durable, so the
 * kernel may overwrite the origin.  It skips flushes it can prove unnecessary (volume.c,
 * "Flushes saved").  These tests hold it to both halves, with the log on the snapstore and
 * with a separate metadata device:
 *  - cost: a write that copies pays for a flush; repeating it pays for none;
 *  - safety: seeded rounds of random origin writes (overlapping and repeated ranges) in
 *    which the origin is overwritten and flushed right after every acknowledged write (the
 *    worst case: the new data reaches the disk at once), a power cut at a random write of the
 *    store, reopen with log replay, and every snapshot read back and compared with a model;
 *  - a late log flush: another request's commit flushing the log while a copy-out is being
 *    written, then the power cut right after the origin overwrite: the copy must survive;
 *  - with a separate log device, a record made durable before its copy (by another
 *    request's log flush): replay must find the copy lost by its checksum;
 *  - a writable snapshot's first whole-chunk write, acknowledged, whose data the power cut
 *    lost: the chunk handed out (a deleted snapshot's) must read as the snapshot's old data;
 *  - a made-up copy-out record whose address, in blocks, wraps into the data region: open
 *    must refuse it, every time, and leave the store as it was;
 *  - lookups during syncs: reader threads map every chunk of every snapshot while origin
 *    writes dirty the trees and the sync thread, on a 1 ms timer, writes them out; every
 *    lookup must succeed and every copied chunk hold its snapshot's data;
 *  - concurrency: writer threads with colliding ranges, snapshots created and deleted among
 *    them, a store device that dies at a random point, a power cut, and every snapshot whose
 *    create or delete was answered read back after replay.
 * Seeds are printed; VOLUME_SEED=<n> replays one round.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "blk/bdev.h"
#include "snap/engine.h"
#include "blk/format.h"
#include "store/intent_log.h"
#include "util/log.h"
#include "store/store.h"
#include "snap/volume.h"
#include "ddsnap_wire.h"
#include "lib/storecheck.h"
#include "lib/rng.h"
#include "snap/deadlist_disk.h"
#include "blk/cache.h"

#define MB	      (1024ULL * 1024)
#define CHUNK_SHIFT   14
#define CHUNK	      (1u << CHUNK_SHIFT)
#define ORIGIN_CHUNKS 128u
#define MAX_SNAPS     3

struct fixture {
	struct bdev *store, *origin, *meta; /* meta: NULL when the log lives on the store */
	struct bdev *store_dev; /* what the volume gets as its snapstore: store or a shim */
	struct volume *v;
	u8 origin_ver[ORIGIN_CHUNKS];
	u8 snap_ver[MAX_SNAPS + 1][ORIGIN_CHUNKS]; /* [tag][chunk], tags 1..nsnaps */
	u32 nsnaps;
	unsigned txg_timeout_ms; /* 0: the default */
	bool old_format;	 /* made without persisted deadlists, served as such */
	u64 upgrade_entries;	 /* volume_params.upgrade_txg_entries (0: the default) */
};

static u8 buf[CHUNK] __attribute__((aligned(4096)));

static void fill(u8 *b, u64 chunk, u8 ver)
{
	for (u32 i = 0; i < CHUNK; i++)
		b[i] = (u8)(chunk * 131 + i * 7 + ver * 29);
}

static void vol_open(struct fixture *f)
{
	struct volume_params p = {
		.snapstore_dev = f->store_dev ? f->store_dev : f->store,
		.origin_dev = f->origin,
		.metadev_dev = f->meta,
		.txg_timeout_ms = f->txg_timeout_ms,
		.keep_old_format = f->old_format,
		.upgrade_txg_entries = f->upgrade_entries,
	};
	char why[300];

	if (volume_open(&p, &f->v, why, sizeof(why)))
		fail_msg("volume_open: %s", why);
}

/* A fresh volume on a snapstore of @store_bytes (and an 8 MiB metadata device if @split). */
static void setup_fixture_size(struct fixture *f, bool split, u64 seed, unsigned txg_ms,
			       bool old_format, u64 store_bytes)
{
	struct store_format_params fp = {.chunk_shift = CHUNK_SHIFT,
					 .origin_bytes = (u64)ORIGIN_CHUNKS * CHUNK,
					 .old_format = old_format};
	char why[300];

	memset(f, 0, sizeof(*f));
	f->txg_timeout_ms = txg_ms;
	f->old_format = old_format;
	f->store = bdev_faulty_create(store_bytes, seed);
	f->origin = bdev_faulty_create((u64)ORIGIN_CHUNKS * CHUNK, seed + 1);
	f->meta = split ? bdev_faulty_create(8 * MB, seed + 2) : NULL;
	for (u64 c = 0; c < ORIGIN_CHUNKS; c++) {
		fill(buf, c, 0);
		assert_int_equal(bdev_write(f->origin, buf, CHUNK, c * CHUNK), 0);
	}
	assert_int_equal(bdev_flush(f->origin), 0);
	if (store_format(f->store, f->meta, &fp, why, sizeof(why)))
		fail_msg("store_format: %s", why);
	vol_open(f);
}

static void setup_fixture_fmt(struct fixture *f, bool split, u64 seed, unsigned txg_ms,
			      bool old_format)
{
	setup_fixture_size(f, split, seed, txg_ms, old_format, 24 * MB);
}

static void setup_fixture_sync(struct fixture *f, bool split, u64 seed, unsigned txg_ms)
{
	setup_fixture_fmt(f, split, seed, txg_ms, false);
}

static void setup_fixture(struct fixture *f, bool split, u64 seed)
{
	setup_fixture_sync(f, split, seed, 0);
}

static void teardown_fixture(struct fixture *f)
{
	bdev_close(f->store);
	bdev_close(f->origin);
	bdev_close(f->meta);
}

static void snapshot(struct fixture *f)
{
	u64 gen;

	f->nsnaps++;
	assert_int_equal(volume_create(f->v, f->nsnaps, &gen), 0);
	memcpy(f->snap_ver[f->nsnaps], f->origin_ver, ORIGIN_CHUNKS);
}

/*
 * What the kernel does for a write of [chunk, chunk + count): ask, then overwrite the origin
 * (flushed at once: the worst case for the copy-outs).  Returns volume_origin_write's result;
 * the origin is only written when it is 0.
 */
static int kernel_write(struct fixture *f, const struct volume_range *r, u32 n)
{
	u64 gen;
	int err = volume_origin_write(f->v, r, n, &gen);

	if (err)
		return err;
	for (u32 i = 0; i < n; i++)
		for (u64 c = r[i].chunk; c < r[i].chunk + r[i].count; c++) {
			fill(buf, c, ++f->origin_ver[c]);
			assert_int_equal(bdev_write(f->origin, buf, CHUNK, c * CHUNK), 0);
		}
	assert_int_equal(bdev_flush(f->origin), 0);
	return 0;
}

/* What @b holds, for a failure message: "chunk C version V", or that it is no fill(). */
static const char *describe_fill(const u8 *b)
{
	static char what[64];
	static u8 probe[CHUNK];

	for (u64 c = 0; c < ORIGIN_CHUNKS; c++)
		for (u32 v = 0; v < 256; v++) {
			if ((u8)(c * 131 + v * 29) != b[0])
				continue;
			fill(probe, c, (u8)v);
			if (!memcmp(probe, b, CHUNK)) {
				snprintf(what, sizeof(what), "chunk %llu version %u",
					 (unsigned long long)c, v);
				return what;
			}
		}
	return "no chunk's data";
}

/* When expect_snapshot runs, for its failure message: "" or e.g. " after the reopen". */
static const char *expect_when = "";

/* Snapshot @tag reads version @ver[c] of every chunk c. */
static void expect_snapshot(struct fixture *f, u32 tag, const u8 *ver, u64 seed)
{
	static u8 want[CHUNK];

	for (u64 c = 0; c < ORIGIN_CHUNKS; c++) {
		bool origin;
		u64 addr;
		int err = volume_snap_read(f->v, tag, c, &origin, &addr);

		if (err)
			fail_msg("seed %llu: snapshot %u chunk %llu: read map %d",
				 (unsigned long long)seed, tag, (unsigned long long)c, err);
		if (origin)
			assert_int_equal(bdev_read(f->origin, buf, CHUNK, c * CHUNK), 0);
		else
			assert_int_equal(bdev_read(f->store, buf, CHUNK, addr * CHUNK), 0);
		fill(want, c, ver[c]);
		if (memcmp(buf, want, CHUNK))
			fail_msg("seed %llu: snapshot %u chunk %llu (%s %llu) is not version %u%s: "
				 "it holds %s",
				 (unsigned long long)seed, tag, (unsigned long long)c,
				 origin ? "origin" : "snapstore",
				 (unsigned long long)(origin ? c : addr), ver[c], expect_when,
				 describe_fill(buf));
	}
}

static void expect_snapshots(struct fixture *f, u64 seed)
{
	for (u32 tag = 1; tag <= f->nsnaps; tag++)
		expect_snapshot(f, tag, f->snap_ver[tag], seed);
}

static u64 flushes(struct bdev *b)
{
	struct bdev_counters c = {0};

	if (b)
		bdev_faulty_counters(b, &c);
	return c.flushes;
}

static u64 txg(struct fixture *f)
{
	struct volume_stats st;

	assert_int_equal(volume_status(f->v, &st), 0);
	return st.txg;
}

static void flush_costs(bool split)
{
	struct fixture f;
	struct volume_range r = {5, 2};
	struct bdev *log_dev;
	u64 store0, log0, t0;
	int tries = 0;

	setup_fixture(&f, split, 1);
	log_dev = split ? f.meta : f.store;
	snapshot(&f);
	store0 = flushes(f.store);
	log0 = flushes(log_dev);
	assert_int_equal(kernel_write(&f, &r, 1), 0);
	/* Copied: the log was flushed, and with a separate log the data first. */
	assert_true(flushes(log_dev) > log0);
	if (split)
		assert_true(flushes(f.store) > store0);
	/* The same chunks again: nothing to copy, nothing pending, so no flush at all.  A txg
	 * sync (every 5 s) may flush meanwhile; then the round is tried again. */
	do {
		t0 = txg(&f);
		store0 = flushes(f.store);
		log0 = flushes(f.meta);
		assert_int_equal(kernel_write(&f, &r, 1), 0);
	} while (txg(&f) != t0 && ++tries < 5);
	assert_int_equal(flushes(f.store), store0);
	assert_int_equal(flushes(f.meta), log0);
	expect_snapshots(&f, 1);
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
}

static void test_volume__repeated_write_needs_no_flush(void **state)
{
	flush_costs(false);
}

static void test_volume__repeated_write_needs_no_flush_split(void **state)
{
	flush_costs(true);
}

/* One crash round; see the essay. */
/*
 * Where a randomized test's seeds start: VOLUME_SEED=<n> replays seed n (and the test runs
 * one round), the clock otherwise.  Prints the first seed, naming @what; returns how many
 * rounds to run (@rounds, or 1 for a replay).
 */
static u32 seeds(const char *what, u32 rounds, u64 *first)
{
	bool replay;

	*first = rnd_seed("VOLUME_SEED", (u64)time(NULL), &replay);
	print_message("test_volume: %s seeds from %llu (VOLUME_SEED=<n> replays)\n", what,
		      (unsigned long long)*first);
	return replay ? 1 : rounds;
}

static void crash_round(u64 seed, bool split)
{
	struct fixture f;
	u64 rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	struct bdev *victim;
	u32 writes = 0;

	setup_fixture(&f, split, seed);
	victim = split && (xorshift64(&rng) & 1) ? f.meta : f.store;
	for (u32 s = 0; s < MAX_SNAPS; s++) {
		snapshot(&f);
		if (s == MAX_SNAPS - 1)
			bdev_faulty_die_after(victim, 1 + xorshift64(&rng) % 80);
		for (u32 k = xorshift64(&rng) % 12; k > 0; k--) {
			struct volume_range r[4];
			u32 n = 1 + xorshift64(&rng) % 4;

			for (u32 i = 0; i < n; i++) {
				/* Small ranges in a small space: overlaps and repeats are common. */
				r[i].chunk = xorshift64(&rng) % (ORIGIN_CHUNKS - 4);
				r[i].count = 1 + xorshift64(&rng) % 4;
			}
			if (kernel_write(&f, r, n))
				goto crash;
			writes++;
		}
	}
crash:
	bdev_faulty_crash(f.store, xorshift64(&rng) & 1);
	if (f.meta)
		bdev_faulty_crash(f.meta, xorshift64(&rng) & 1);
	volume_abandon(f.v);
	vol_open(&f);
	expect_snapshots(&f, seed);
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
	(void)writes;
}

static void crash_rounds(bool split)
{
	u64 base;
	u32 rounds = seeds(split ? "split" : "single", 60, &base);

	for (u32 i = 0; i < rounds; i++)
		crash_round(base + i, split);
}

static void test_volume__acknowledged_copies_survive_a_crash(void **state)
{
	crash_rounds(false);
}

static void test_volume__acknowledged_copies_survive_a_crash_split(void **state)
{
	crash_rounds(true);
}

/*
 * A snapstore that, at its first data write once armed, first lets another request's commit
 * run (volume_origin_write_finish with nothing of its own): a log flush that happens while a
 * copy-out is still being written.
 */
struct late_commit {
	struct bdev b;
	struct fixture *f;
	bool armed, fired;
	unsigned delay_us; /* also: every chunk-sized write takes this long (slow copies) */
	/* Or, once armed_flush: right after the next flush, a volume_origin_write_start of
	 * @other (its copies and records, not its commit), and what it must make durable. */
	bool armed_flush;
	struct volume_range other;
	u64 other_need;
	/* Or, once armed_reorder: the next write smaller than a chunk (a log block) reaches
	 * the platter at once, and then the device dies before any flush (disks reorder). */
	bool armed_reorder;
};

static struct bdev *late_inner(struct bdev *b)
{
	return container_of(b, struct late_commit, b)->f->store;
}

static int late_read(struct bdev *b, void *p, size_t len, u64 off)
{
	return bdev_read(late_inner(b), p, len, off);
}

static int late_write(struct bdev *b, const void *p, size_t len, u64 off)
{
	struct late_commit *lc = container_of(b, struct late_commit, b);

	if (lc->armed && len >= CHUNK) {
		lc->armed = false;
		lc->fired = true;
		assert_int_equal(volume_origin_write_finish(lc->f->v, 0, 0), 0);
	}
	int err;

	if (lc->delay_us && len >= CHUNK)
		usleep(lc->delay_us);
	err = bdev_write(late_inner(b), p, len, off);
	if (!err && lc->armed_reorder && len < CHUNK) {
		lc->armed_reorder = false;
		lc->fired = true;
		bdev_faulty_persist(late_inner(b), off, len);
		bdev_faulty_fail_all(late_inner(b));
	}
	return err;
}

static int late_flush(struct bdev *b)
{
	struct late_commit *lc = container_of(b, struct late_commit, b);
	int err = bdev_flush(late_inner(b));
	u64 gen;

	if (!err && lc->armed_flush) {
		lc->armed_flush = false;
		lc->fired = true;
		assert_int_equal(
			volume_origin_write_start(lc->f->v, &lc->other, 1, &gen, &lc->other_need),
			0);
	}
	return err;
}

static void late_close(struct bdev *b)
{
}

static const struct bdev_ops late_ops = {
	.read = late_read,
	.write = late_write,
	.flush = late_flush,
	.close = late_close,
};

/* Closes the volume and opens it again with @lc between it and the snapstore. */
static void reopen_on_shim(struct fixture *f, struct late_commit *lc)
{
	assert_int_equal(volume_close(f->v), 0);
	lc->f = f;
	lc->b.size = f->store->size;
	f->store_dev = &lc->b;
	vol_open(f);
}

/*
 * A log flush in the middle of a copy-out (another request's commit arriving late) must not
 * count as the flush that makes this copy durable: the write's own commit flushes after its
 * copies.  If it trusted the earlier flush, the power cut right after the origin was
 * overwritten would lose the copy, replay would copy the new origin data, and the snapshot
 * would read it.  (A tried change that logged each copy-out before writing its data, to
 * overlap the log write with the copies, failed this test until its commit learned which
 * copies a log flush had covered.)
 */
static void test_volume__late_log_flush_does_not_cover_copies(void **state)
{
	struct volume_range r = {7, 3};
	struct late_commit lc = {.b = {.ops = &late_ops, .name = "late"}};
	struct fixture f;

	setup_fixture(&f, false, 11);
	reopen_on_shim(&f, &lc);
	snapshot(&f);
	lc.armed = true;
	assert_int_equal(kernel_write(&f, &r, 1), 0);
	assert_true(lc.fired);
	bdev_faulty_crash(f.store, false);
	volume_abandon(f.v);
	vol_open(&f);
	expect_snapshots(&f, 11);
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
}

/*
 * Concurrent origin writes, creates and deletes, as the server's workers make them.  Writer
 * threads do what the kernel does: ask, and overwrite the origin once the answer is still
 * good for the current gen (a snapshot taken after the answer makes the kernel ask again).
 * Their ranges collide, and some calls take more than one engine batch.  Copies are slowed
 * down so that calls queue on the volume lock and commits overlap the next call's copies,
 * and the sync thread runs every millisecond.  Meanwhile the main thread
 * takes snapshots with the origin writes held off (as the suspend of `ddsnap create` does;
 * volume calls may still be in flight), deletes old ones while the writers run, checks
 * every live snapshot, and at a random point kills a store device.  Then a power cut,
 * reopen with replay, and every snapshot whose create or delete was answered reads its
 * data.
 */
#define CW_WRITERS 3
#define CW_ROUNDS  24

struct cw {
	struct fixture *f;
	pthread_rwlock_t quiet;	     /* writers' origin overwrites (read) against creates (write) */
	pthread_mutex_t origin_lock; /* one origin overwrite (and its versions) at a time */
	atomic_bool stop;
	atomic_bool armed; /* the device may die from now on: errors are expected */
	_Atomic u64 writes, retries;
};

struct cw_writer {
	pthread_t thread;
	struct cw *cw;
	u64 rng;
	_Atomic int err; /* the volume call that failed (the device died), or 0 */
	bool early;	 /* it failed before the device could die */
};

static void *cw_writer_main(void *arg)
{
	struct cw_writer *w = arg;
	struct cw *cw = w->cw;
	struct fixture *f = cw->f;
	u8 *data;

	VERIFY(!posix_memalign((void **)&data, 4096, CHUNK));
	while (!atomic_load(&cw->stop) && !w->err) {
		struct volume_range r[3];
		/* mostly a few small ranges in a small space; now and then three long ones,
		 * so that the call spans two engine batches (256 chunks each) */
		bool span = xorshift64(&w->rng) % 6 == 0;
		u32 n = span ? 3 : 1 + xorshift64(&w->rng) % 3;
		u64 gen;

		for (u32 i = 0; i < n; i++) {
			r[i].count = span ? 100 : 1 + xorshift64(&w->rng) % 4;
			r[i].chunk = xorshift64(&w->rng) % (ORIGIN_CHUNKS - r[i].count + 1);
		}
		for (;;) {
			w->err = volume_origin_write(f->v, r, n, &gen);
			if (w->err) {
				w->early = !atomic_load(&cw->armed);
				break;
			}
			pthread_rwlock_rdlock(&cw->quiet);
			if (volume_gen(f->v) == gen)
				break;
			pthread_rwlock_unlock(&cw->quiet); /* a snapshot came between: ask again */
			atomic_fetch_add(&cw->retries, 1);
		}
		if (w->err)
			break;
		pthread_mutex_lock(&cw->origin_lock);
		for (u32 i = 0; i < n; i++)
			for (u64 c = r[i].chunk; c < r[i].chunk + r[i].count; c++) {
				fill(data, c, ++f->origin_ver[c]);
				VERIFY(!bdev_write(f->origin, data, CHUNK, c * CHUNK));
			}
		VERIFY(!bdev_flush(f->origin));
		pthread_mutex_unlock(&cw->origin_lock);
		pthread_rwlock_unlock(&cw->quiet);
		atomic_fetch_add(&cw->writes, 1);
	}
	free(data);
	return NULL;
}

enum cw_state { CW_NONE, CW_LIVE, CW_DELETED, CW_UNKNOWN };

static void cw_round(u64 seed, bool split)
{
	u64 rng = seed * 0x9E3779B97F4A7C15ULL + 5;
	struct late_commit slow = {.b = {.ops = &late_ops, .name = "slow"}, .delay_us = 150};
	static u8 ver[CW_ROUNDS + 1][ORIGIN_CHUNKS];
	enum cw_state state[CW_ROUNDS + 1] = {CW_NONE};
	struct cw_writer w[CW_WRITERS];
	u32 die_round = CW_ROUNDS / 2 + xorshift64(&rng) % (CW_ROUNDS / 2);
	struct bdev *victim;
	struct fixture f;
	struct cw cw = {.f = &f};
	bool died = false;

	/* Room for every round's snapshot holding the whole origin: the full-store policy
	 * would delete snapshots the test expects (24 MiB filled in about 1 run of 250). */
	setup_fixture_size(&f, split, seed, 1, false, (u64)(CW_ROUNDS + 8) * ORIGIN_CHUNKS * CHUNK);
	reopen_on_shim(&f, &slow);
	victim = split && (xorshift64(&rng) & 1) ? f.meta : f.store;
	pthread_rwlock_init(&cw.quiet, NULL);
	pthread_mutex_init(&cw.origin_lock, NULL);
	for (int i = 0; i < CW_WRITERS; i++) {
		w[i] = (struct cw_writer){.cw = &cw, .rng = seed * 7 + (u64)i + 1};
		assert_int_equal(pthread_create(&w[i].thread, NULL, cw_writer_main, &w[i]), 0);
	}
	for (u32 tag = 1; tag <= CW_ROUNDS && !died; tag++) {
		u64 gen;
		int err;

		usleep(2000 + xorshift64(&rng) % 4000);
		if (tag == die_round) {
			atomic_store(&cw.armed, true);
			bdev_faulty_die_after(victim, 1 + xorshift64(&rng) % 40);
		}
		pthread_rwlock_wrlock(&cw.quiet);
		memcpy(ver[tag], f.origin_ver, ORIGIN_CHUNKS);
		err = volume_create(f.v, tag, &gen);
		state[tag] = err ? CW_UNKNOWN : CW_LIVE;
		died |= err != 0;
		if (err && tag < die_round)
			fail_msg("seed %llu: create %u: %s", (unsigned long long)seed, tag,
				 strerror(-err));
		expect_when = " while the writers run";
		for (u32 t = 1; t < tag && !died; t++)
			if (state[t] == CW_LIVE)
				expect_snapshot(&f, t, ver[t], seed); /* the origin is still */
		pthread_rwlock_unlock(&cw.quiet);
		for (u32 t = 1; t < tag && !died; t++) {
			/* keep about four: delete a random older one while the writers run */
			if (state[t] != CW_LIVE || tag - t < 4 || xorshift64(&rng) % 2)
				continue;
			err = volume_delete(f.v, t);
			state[t] = err ? CW_UNKNOWN : CW_DELETED;
			died |= err != 0;
			if (err && tag < die_round)
				fail_msg("seed %llu: delete %u: %s", (unsigned long long)seed, t,
					 strerror(-err));
		}
		for (int i = 0; i < CW_WRITERS; i++)
			died |= w[i].err != 0;
	}
	atomic_store(&cw.stop, true);
	for (int i = 0; i < CW_WRITERS; i++) {
		assert_int_equal(pthread_join(w[i].thread, NULL), 0);
		if (w[i].early)
			fail_msg("seed %llu: an origin write failed before any device did: %s",
				 (unsigned long long)seed, strerror(-w[i].err));
	}
	bdev_faulty_crash(f.store, xorshift64(&rng) & 1);
	if (f.meta)
		bdev_faulty_crash(f.meta, xorshift64(&rng) & 1);
	volume_abandon(f.v);
	vol_open(&f);
	expect_when = " after the crash and reopen";
	for (u32 t = 1; t <= CW_ROUNDS; t++) {
		u32 st;
		u64 gen;
		int err = volume_snap_state(f.v, t, &st, &gen);

		if (state[t] == CW_LIVE)
			expect_snapshot(&f, t, ver[t], seed);
		else if (state[t] == CW_DELETED || state[t] == CW_NONE)
			assert_int_equal(err, -ENODATA);
	}
	expect_when = "";
	print_message("test_volume: seed %llu %s: %llu writes, %llu asked again, device %s\n",
		      (unsigned long long)seed, split ? "split" : "single",
		      (unsigned long long)atomic_load(&cw.writes),
		      (unsigned long long)atomic_load(&cw.retries), died ? "died" : "lived");
	assert_int_equal(volume_close(f.v), 0);
	pthread_rwlock_destroy(&cw.quiet);
	pthread_mutex_destroy(&cw.origin_lock);
	teardown_fixture(&f);
}

static void test_volume__concurrent_writers_creates_deletes_crash(void **state)
{
	u64 base;
	u32 rounds = seeds("concurrent writers", 3, &base);

	for (u32 i = 0; i < 2 * rounds; i++) /* each seed on both layouts */
		cw_round(base + i / 2, i & 1);
}

/*
 * A log block that reaches the platter before the copy its record follows: the commit writes
 * the block and then flushes, and a disk may write the block out of its cache first and lose
 * power before the flush.  Runs @act (a call that copies a chunk and logs it, on a volume with
 * snapshot 1) with the shim persisting the next log block at once and then killing the
 * device; after the power cut and reopen every snapshot must read its data.
 */
static void log_block_first(u64 seed, int (*act)(struct fixture *f))
{
	struct late_commit lc = {.b = {.ops = &late_ops, .name = "reorder"}};
	struct fixture f;

	setup_fixture(&f, false, seed);
	reopen_on_shim(&f, &lc);
	snapshot(&f);
	lc.armed_reorder = true;
	assert_int_equal(act(&f), -EIO);
	assert_true(lc.fired);
	bdev_faulty_crash(f.store, false);
	volume_abandon(f.v);
	vol_open(&f);
	expect_snapshots(&f, seed);
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
}

static int copy_out_two(struct fixture *f)
{
	struct volume_range r = {5, 2};

	return kernel_write(f, &r, 1);
}

static int copy_in_one(struct fixture *f)
{
	struct volume_snap_chunk c = {.chunk = 9};

	return volume_snap_write(f->v, 1, &c, 1);
}

static int copy_in_four(struct fixture *f)
{
	struct volume_snap_chunk c[4] = {{.chunk = 9}, {.chunk = 10}, {.chunk = 9}, {.chunk = 11}};

	return volume_snap_write(f->v, 1, c, 4);
}

/*
 * A copy-out: the origin write was never released (its commit failed), so replay must find
 * the saved data wrong by the record's checksum and copy again from the origin.  (Records of
 * the log on the snapstore once carried no checksum and were trusted, as if the flush after
 * the copy ordered them: this test failed then.)
 */
static void test_volume__log_block_durable_before_its_copy(void **state)
{
	log_block_first(13, copy_out_two);
}

/*
 * A copy-in: the first partial write to a writable snapshot's chunk copies the chunk's old
 * data into its private chunk and logs the overlay entry.  The snapshot's writer writes the
 * chunk after it, so no checksum can tell a lost copy-in from those writes: the copy-in must
 * be durable before its record is appended, or the chunk's unwritten part reads garbage
 * after the crash (it did before).
 */
static void test_volume__log_block_durable_before_its_copy_in(void **state)
{
	log_block_first(14, copy_in_one);
	/* several in one call: their copy-ins share the flush before the first record */
	log_block_first(17, copy_in_four);
}

/*
 * The copy-ins of one snapshot write call share one snapstore flush: a call mapping eight
 * new chunks (one named twice) costs two flushes in all, its copy-ins' and the log's, not
 * one per chunk.  (A txg sync may flush meanwhile; then the round is tried again.)
 */
static void test_volume__snap_write_copy_ins_share_a_flush(void **state)
{
	struct volume_snap_chunk c[9];
	struct fixture f;
	u64 store0, t0;
	int tries = 0;

	setup_fixture(&f, false, 18);
	snapshot(&f);
	do {
		for (u32 i = 0; i < 9; i++)
			c[i] = (struct volume_snap_chunk){.chunk =
								  40 + (u64)i % 8 + 8 * (u64)tries};
		t0 = txg(&f);
		store0 = flushes(f.store);
		assert_int_equal(volume_snap_write(f.v, 1, c, 9), 0);
	} while (txg(&f) != t0 && ++tries < 5);
	assert_int_equal(flushes(f.store) - store0, 2);
	assert_int_equal(c[8].addr, c[0].addr);
	expect_snapshots(&f, 18); /* every copy-in holds the snapshot's data */
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
}

/*
 * A first whole-chunk write to a writable snapshot, acknowledged (its overlay entry is
 * durable), whose data the power cut lost, all of it or (@keep_random) some sectors: the
 * writer wrote the chunk it was given and had not flushed yet.  The chunk given out last
 * belonged to a deleted snapshot.  After the reopen every sector of the snapshot's chunk
 * must read what it read before the write or the new data, never the deleted snapshot's
 * data (it did: a whole-chunk write was mapped without a copy-in, so the chunk held
 * whatever its previous owner left there).
 */
static void lost_whole_snap_write(u64 seed, bool keep_random)
{
	static u8 old[CHUNK], new[CHUNK];
	struct volume_range r = {20, 8};
	struct volume_snap_chunk c = {.chunk = 9};
	struct fixture f;
	bool origin, reused = false;
	u32 kept = 0;
	u64 stale[8], t;

	setup_fixture(&f, false, seed);
	snapshot(&f); /* 1: its copies of chunks 20..27 become the stale data */
	assert_int_equal(kernel_write(&f, &r, 1), 0);
	for (u32 i = 0; i < 8; i++) {
		assert_int_equal(volume_snap_read(f.v, 1, 20 + i, &origin, &stale[i]), 0);
		assert_false(origin);
	}
	assert_int_equal(volume_delete(f.v, 1), 0);
	/* freed chunks are reusable once their freeing txg is durable */
	assert_int_equal(volume_sync(f.v, &t), 0);
	assert_int_equal(volume_sync(f.v, &t), 0);
	snapshot(&f); /* 2 */
	assert_int_equal(volume_snap_write(f.v, 2, &c, 1), 0);
	assert_int_equal(c.err, 0);
	for (u32 i = 0; i < 8; i++)
		reused |= c.addr == stale[i];
	assert_true(reused); /* the case this test is about */
	/* the writer's whole-chunk write, not flushed: the power cut loses it, or part of it */
	fill(new, 9, 200);
	assert_int_equal(bdev_write(f.store, new, CHUNK, c.addr * CHUNK), 0);
	bdev_faulty_crash(f.store, keep_random);
	volume_abandon(f.v);
	vol_open(&f);
	assert_int_equal(volume_snap_read(f.v, 2, 9, &origin, &c.addr), 0);
	assert_false(origin);
	assert_int_equal(bdev_read(f.store, buf, CHUNK, c.addr * CHUNK), 0);
	fill(old, 9, f.snap_ver[2][9]);
	for (u32 o = 0; o < CHUNK; o += 512) {
		kept += !memcmp(buf + o, new + o, 512);
		if (memcmp(buf + o, old + o, 512) && memcmp(buf + o, new + o, 512))
			fail_msg("seed %llu: snapshot 2 chunk 9, bytes %u..%u: neither old nor new "
				 "data (the chunk holds %s)",
				 (unsigned long long)seed, o, o + 511, describe_fill(buf));
	}
	if (!keep_random) {
		assert_int_equal(kept, 0);
		expect_snapshot(&f, 2, f.snap_ver[2], seed);
	} else {
		assert_true(kept > 0 && kept < CHUNK / 512); /* the seed gives a mix */
	}
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
}

static void test_volume__lost_whole_snap_write_reads_old_data(void **state)
{
	lost_whole_snap_write(15, false);
	lost_whole_snap_write(19, true); /* some sectors of the new data survive */
}

/*
 * With a separate metadata device, a log flush can make a copy-out's record durable before
 * its data: request A's commit flushes the snapstore, request C copies and logs meanwhile,
 * and A's log flush then carries C's record.  Power cut before C's own commit: C's record
 * is on the log, its copy is lost, and its origin write was never released.  Replay must
 * notice by the record's data checksum and copy again from the origin.  (With the log on
 * the snapstore the same flush would have covered C's copy, but a disk may still write the
 * log block first: log_block_durable_before_its_copy.)
 */
static void test_volume__split_log_flush_before_copy_flush(void **state)
{
	struct volume_range a = {3, 2};
	struct late_commit lc = {.b = {.ops = &late_ops, .name = "late"}, .other = {40, 3}};
	struct fixture f;

	setup_fixture(&f, true, 12);
	reopen_on_shim(&f, &lc);
	snapshot(&f);
	lc.armed_flush = true;
	assert_int_equal(kernel_write(&f, &a, 1), 0);
	assert_true(lc.fired);
	assert_true(bdev_faulty_unflushed(f.store) > 0); /* C's copies */
	bdev_faulty_crash(f.store, false);
	bdev_faulty_crash(f.meta, false);
	volume_abandon(f.v);
	vol_open(&f);
	expect_snapshots(&f, 12);
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
}

/*
 * A copy-out record whose address is at the top of the range (a buggy or foreign writer:
 * the log's checksums pass) must stop replay with a clear error and leave the store as it
 * was: in blocks the address wrapped around into the data region once.
 */
static void test_volume__replay_refuses_a_wrapping_address(void **state)
{
	struct engine_logrec_disk r;
	struct store_config cfg = {0};
	struct volume_params p = {0};
	struct volume_range w = {7, 1};
	struct store *st;
	struct fixture f;
	char why[300];
	bool origin;
	u64 seq, addr;

	setup_fixture(&f, false, 13);
	snapshot(&f);
	assert_int_equal(kernel_write(&f, &w, 1), 0); /* a copy-out shows where data lives */
	assert_int_equal(volume_snap_read(f.v, 1, 7, &origin, &addr), 0);
	assert_false(origin);
	assert_int_equal(volume_close(f.v), 0);
	/* Append the record to the log of the closed store, as a crash would leave it. */
	cfg.snapstore = f.store;
	cfg.no_sync_thread = true;
	if (store_open(&cfg, &st, why, sizeof(why)) ||
	    store_open_log(st, NULL, NULL, why, sizeof(why)))
		fail_msg("store: %s", why);
	memset(&r, 0, sizeof(r));
	r.chunk = cpu_to_le64(5);
	r.birth = cpu_to_le64(0);
	r.death = cpu_to_le64(2); /* the gen after snapshot 1: right but for the address */
	/* In 4 KiB blocks (x4) this wraps to a free chunk just after the copy. */
	r.addr = cpu_to_le64((1ull << 62) + addr + 5);
	assert_int_equal(intent_log_append(store_log(st), ENGINE_LOG_COPYOUT_ORDERED,
					   store_open_txg(st), &r, sizeof(r), 0, &seq),
			 0);
	assert_int_equal(intent_log_wait(store_log(st), seq), 0);
	store_abandon(st);
	for (int round = 0; round < 2; round++) {
		p = (struct volume_params){.snapstore_dev = f.store, .origin_dev = f.origin};
		assert_int_equal(volume_open(&p, &f.v, why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "intent log"));
	}
	teardown_fixture(&f);
}

/* A reader thread of test_volume__lookups_during_syncs. */
struct reader {
	pthread_t thread;
	struct fixture *f;
	_Atomic u32 *nsnaps; /* snapshots published to readers (their snap_ver is final) */
	atomic_bool *stop;
	u64 lookups;
	int err;     /* the first failed lookup's error, 0 if none */
	u32 bad_tag; /* and where: a failed lookup or a copied chunk with the wrong data */
	u64 bad_chunk;
	bool wrong_data;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	u8 *got, *want;

	VERIFY(!posix_memalign((void **)&got, 4096, CHUNK));
	want = malloc(CHUNK);
	while (!atomic_load(r->stop) && !r->err && !r->wrong_data) {
		u32 n = atomic_load(r->nsnaps);

		for (u32 tag = 1; tag <= n && !r->err && !r->wrong_data; tag++)
			for (u64 c = 0; c < ORIGIN_CHUNKS; c++) {
				bool origin;
				u64 addr;
				int err = volume_snap_read(r->f->v, tag, c, &origin, &addr);

				r->lookups++;
				if (err) {
					r->err = err;
					r->bad_tag = tag;
					r->bad_chunk = c;
					break;
				}
				if (origin)
					continue; /* the origin changes under us: only copies are final */
				VERIFY(!bdev_read(r->f->store, got, CHUNK, addr * CHUNK));
				fill(want, c, r->f->snap_ver[tag][c]);
				if (memcmp(got, want, CHUNK)) {
					r->wrong_data = true;
					r->bad_tag = tag;
					r->bad_chunk = c;
					break;
				}
			}
	}
	free(got);
	free(want);
	return NULL;
}

/*
 * Snapshot lookups hold no txg of their own; they must still never run while a sync
 * rewrites the trees under them (volume.c, "Locking").
 */
static void test_volume__lookups_during_syncs(void **state)
{
	u64 seed;
	u64 rng, lookups = 0;
	struct reader r[2];
	struct fixture f;
	_Atomic u32 published = 0;
	atomic_bool stop = false;
	u64 txg0;

	seeds("lookups during syncs", 1, &seed);
	rng = seed * 0x9E3779B97F4A7C15ULL + 3;
	setup_fixture_sync(&f, false, seed, 1);
	txg0 = txg(&f);
	for (int i = 0; i < 2; i++) {
		r[i] = (struct reader){.f = &f, .nsnaps = &published, .stop = &stop};
		assert_int_equal(pthread_create(&r[i].thread, NULL, reader_main, &r[i]), 0);
	}
	for (u32 s = 0; s < MAX_SNAPS; s++) {
		snapshot(&f);
		atomic_store(&published, f.nsnaps);
		for (u32 k = 0; k < 150; k++) {
			struct volume_range rg = {xorshift64(&rng) % (ORIGIN_CHUNKS - 2),
						  1 + xorshift64(&rng) % 2};

			assert_int_equal(kernel_write(&f, &rg, 1), 0);
			usleep(300); /* let the 1 ms sync timer run between writes */
		}
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(r[i].thread, NULL), 0);
		lookups += r[i].lookups;
		if (r[i].err || r[i].wrong_data)
			fail_msg("seed %llu: snapshot %u chunk %llu: %s", (unsigned long long)seed,
				 r[i].bad_tag, (unsigned long long)r[i].bad_chunk,
				 r[i].wrong_data ? "a copied chunk holds other data"
						 : strerror(-r[i].err));
	}
	print_message("test_volume: %llu lookups over %llu txgs\n", (unsigned long long)lookups,
		      (unsigned long long)(txg(&f) - txg0));
	assert_true(txg(&f) - txg0 > 10); /* the syncs did run under the readers */
	expect_snapshots(&f, seed);
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
}

/*----------------------------------------------------------------
 * Revert (volume.c, "Revert")
 *--------------------------------------------------------------*/

/* The origin reads version @ver[c] of every chunk c. */
static void expect_origin(struct fixture *f, const u8 *ver, u64 seed)
{
	static u8 want[CHUNK];

	for (u64 c = 0; c < ORIGIN_CHUNKS; c++) {
		assert_int_equal(bdev_read(f->origin, buf, CHUNK, c * CHUNK), 0);
		fill(want, c, ver[c]);
		if (memcmp(buf, want, CHUNK))
			fail_msg("seed %llu: origin chunk %llu is not version %u",
				 (unsigned long long)seed, (unsigned long long)c, ver[c]);
	}
}

/* The chunks changed from @from to the live origin, in @out (ORIGIN_CHUNKS at most). */
static u32 changed(struct fixture *f, u32 from, u64 *out)
{
	u64 next;
	u32 n = 0;

	assert_int_equal(
		volume_changelist(f->v, from, DDSNAP_TAG_HEAD, 0, out, ORIGIN_CHUNKS, &n, &next),
		0);
	assert_true(next == VOLUME_CURSOR_END);
	return n;
}

static bool exists(struct fixture *f, u32 tag)
{
	u32 state;
	u64 gen;

	return volume_snap_state(f->v, tag, &state, &gen) == 0;
}

/* Random writes of up to @k batches of up to 4 small ranges. */
static void random_writes(struct fixture *f, u64 *rng, u32 k)
{
	for (k = xorshift64(rng) % (k + 1); k > 0; k--) {
		struct volume_range r[4];
		u32 n = 1 + xorshift64(rng) % 4;

		for (u32 i = 0; i < n; i++) {
			r[i].chunk = xorshift64(rng) % (ORIGIN_CHUNKS - 4);
			r[i].count = 1 + xorshift64(rng) % 4;
		}
		assert_int_equal(kernel_write(f, r, n), 0);
	}
}

/*
 * After a completed revert to @tag: the origin is @tag's, every snapshot as before, the
 * marker gone, the revert point there and nothing written since it; then one write to a
 * reverted chunk is exactly what the changelist from the revert point lists.
 */
static void expect_reverted(struct fixture *f, u32 tag, u64 seed)
{
	u64 list[ORIGIN_CHUNKS];
	u32 n;

	memcpy(f->origin_ver, f->snap_ver[tag], ORIGIN_CHUNKS);
	expect_origin(f, f->origin_ver, seed);
	expect_snapshots(f, seed);
	assert_false(exists(f, VOLUME_TAG_REVERTING));
	assert_true(exists(f, VOLUME_TAG_REVERT_POINT));
	assert_int_equal(changed(f, VOLUME_TAG_REVERT_POINT, list), 0);
	n = changed(f, tag, list);
	if (n) {
		struct volume_range r = {list[n / 2], 1};

		/* Every snapshot has its own copy there: without the revert point this write
		 * would need no copy-out and be invisible. */
		assert_int_equal(kernel_write(f, &r, 1), 0);
		assert_int_equal(changed(f, VOLUME_TAG_REVERT_POINT, list), 1);
		assert_int_equal(list[0], r.chunk);
		expect_snapshots(f, seed);
	}
}

/* What volume_revert's wait hook saw: the chunks to revert, and how far it got. */
struct revert_watch {
	struct fixture *f;
	u64 list[ORIGIN_CHUNKS]; /* changelist(tag -> head) before the revert */
	u32 n, seen, calls;
	u32 fail_at; /* nonzero: that call returns -ETIMEDOUT (a device that did not ack) */
};

/*
 * The wait hook: called once per batch, with the batch's chunks in changelist order, after
 * their copy-outs (no snapshot, the marker included, reads them from the origin any more)
 * and before any of them is written (the origin still holds its pre-revert data there).
 */
static int watch_batch(void *priv, const struct volume_range *r, u32 n)
{
	struct revert_watch *w = priv;

	w->calls++;
	assert_true(n >= 1 && w->seen + n <= w->n);
	for (u32 i = 0; i < n; i++) {
		u64 c = r[i].chunk, addr;
		bool origin;
		static u8 want[CHUNK];

		assert_int_equal(r[i].count, 1);
		assert_int_equal(c, w->list[w->seen + i]);
		assert_int_equal(bdev_read(w->f->origin, buf, CHUNK, c * CHUNK), 0);
		fill(want, c, w->f->origin_ver[c]);
		assert_memory_equal(buf, want, CHUNK);
		assert_int_equal(volume_snap_read(w->f->v, VOLUME_TAG_REVERTING, c, &origin, &addr),
				 0);
		assert_false(origin);
		for (u32 tag = 1; tag <= w->f->nsnaps; tag++) {
			assert_int_equal(volume_snap_read(w->f->v, tag, c, &origin, &addr), 0);
			assert_false(origin);
		}
	}
	w->seen += n;
	return w->calls == w->fail_at ? -ETIMEDOUT : 0;
}

/*
 * Three snapshots with writes between and after them, a revert to each in turn: origin,
 * snapshots, marker, revert point and changelists as expect_reverted says; a wait hook's
 * error stops the revert before its batch is written (run again, it finishes); misuse
 * refused with nothing changed; the next create drops the revert point.
 */
static void test_volume__revert(void **state)
{
	u64 rng = 77, gen, done, list[ORIGIN_CHUNKS];
	struct fixture f;

	setup_fixture(&f, false, 77);
	for (u32 s = 0; s < MAX_SNAPS; s++) {
		random_writes(&f, &rng, 12);
		snapshot(&f);
	}
	random_writes(&f, &rng, 12);
	assert_int_equal(volume_revert(f.v, 9, NULL, NULL, &done), -ENODATA);
	assert_int_equal(volume_revert(f.v, VOLUME_TAG_REVERT_POINT, NULL, NULL, &done), -EINVAL);
	assert_int_equal(volume_revert(f.v, VOLUME_TAG_REVERTING, NULL, NULL, &done), -EINVAL);
	assert_false(exists(&f, VOLUME_TAG_REVERTING));
	expect_origin(&f, f.origin_ver, 77);
	for (u32 tag = 1; tag <= MAX_SNAPS; tag++) {
		struct revert_watch w = {.f = &f, .fail_at = tag == 1 ? 1 : 0};

		w.n = changed(&f, tag, w.list);
		if (w.fail_at) {
			/* The hook's error stops the revert before its batch is written. */
			assert_true(w.n > 0);
			assert_int_equal(volume_revert(f.v, tag, watch_batch, &w, &done),
					 -ETIMEDOUT);
			assert_int_equal(done, 0);
			expect_origin(&f, f.origin_ver, 77);
			assert_true(exists(&f, VOLUME_TAG_REVERTING));
			w = (struct revert_watch){.f = &f};
			w.n = changed(&f, tag, w.list);
		}
		assert_int_equal(volume_revert(f.v, tag, watch_batch, &w, &done), 0);
		assert_int_equal(done, w.n);
		assert_int_equal(w.seen, w.n);
		assert_int_equal(w.calls, (w.n + 63) / 64); /* VOLUME_REVERT_BATCH */
		expect_reverted(&f, tag, 77);
		random_writes(&f, &rng, 4);
	}
	/* The volume's own tags are nobody else's business. */
	assert_int_equal(volume_delete(f.v, VOLUME_TAG_REVERT_POINT), -EINVAL);
	assert_int_equal(volume_create(f.v, VOLUME_TAG_REVERTING, &gen), -EINVAL);
	assert_int_equal(volume_priority(f.v, VOLUME_TAG_REVERT_POINT, 1), -EINVAL);
	/* Reopened (replay, then the synced trees): the same. */
	assert_int_equal(volume_close(f.v), 0);
	vol_open(&f);
	expect_snapshots(&f, 77);
	expect_origin(&f, f.origin_ver, 77);
	assert_true(exists(&f, VOLUME_TAG_REVERT_POINT));
	/* A new snapshot is the newest: the revert point goes. */
	assert_int_equal(volume_delete(f.v, 1), 0);
	f.nsnaps = 0;
	memcpy(f.snap_ver[1], f.origin_ver, ORIGIN_CHUNKS);
	assert_int_equal(volume_create(f.v, 1, &gen), 0);
	f.nsnaps = 1;
	assert_false(exists(&f, VOLUME_TAG_REVERT_POINT));
	assert_int_equal(changed(&f, 1, list), 0);
	expect_snapshots(&f, 77);
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
}

/*
 * One crash round: a history, a revert to a random snapshot with the store or the origin
 * dying at a random write, a power cut, reopen.  Every snapshot must read as before; while
 * the marker survived, create and a revert to another tag are refused and the reverted-to
 * snapshot cannot be deleted; the revert run again finishes the job.
 */
static void revert_crash_round(u64 seed, bool split)
{
	u64 rng = seed * 0x9E3779B97F4A7C15ULL + 1, gen, done;
	struct fixture f;
	struct bdev *victim;
	u32 tag;
	int err;

	setup_fixture(&f, split, seed);
	for (u32 s = 0; s < MAX_SNAPS; s++) {
		random_writes(&f, &rng, 10);
		snapshot(&f);
	}
	random_writes(&f, &rng, 10);
	if (xorshift64(&rng) & 1) { /* a revert done before: its point is dropped first */
		assert_int_equal(volume_revert(f.v, MAX_SNAPS, NULL, NULL, &done), 0);
		memcpy(f.origin_ver, f.snap_ver[MAX_SNAPS], ORIGIN_CHUNKS);
		random_writes(&f, &rng, 6);
	}
	tag = 1 + xorshift64(&rng) % MAX_SNAPS;
	switch (xorshift64(&rng) % 3) {
	case 0:
		victim = f.origin;
		break;
	case 1:
		victim = f.store;
		break;
	default:
		victim = f.meta ? f.meta : f.store;
	}
	bdev_faulty_die_after(victim, 1 + xorshift64(&rng) % (victim == f.origin ? 130 : 60));
	err = volume_revert(f.v, tag, NULL, NULL, &done);
	bdev_faulty_crash(f.store, xorshift64(&rng) & 1);
	bdev_faulty_crash(f.origin, xorshift64(&rng) & 1);
	if (f.meta)
		bdev_faulty_crash(f.meta, xorshift64(&rng) & 1);
	volume_abandon(f.v);
	vol_open(&f);
	expect_snapshots(&f, seed);
	if (exists(&f, VOLUME_TAG_REVERTING)) {
		assert_int_equal(volume_create(f.v, MAX_SNAPS + 1, &gen), -EBUSY);
		assert_int_equal(volume_delete(f.v, tag), -EBUSY);
		assert_int_equal(volume_revert(f.v, tag % MAX_SNAPS + 1, NULL, NULL, &done),
				 -EBUSY);
		assert_int_equal(done, tag);
	} else if (!err) {
		expect_origin(&f, f.snap_ver[tag], seed); /* it finished before the crash */
	}
	assert_int_equal(volume_revert(f.v, tag, NULL, NULL, &done), 0);
	expect_reverted(&f, tag, seed);
	assert_int_equal(volume_close(f.v), 0);
	vol_open(&f);
	expect_snapshots(&f, seed);
	expect_origin(&f, f.origin_ver, seed);
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
}

static void test_volume__revert_crash_and_rerun(void **state)
{
	u64 base;
	u32 rounds = seeds("revert", 40, &base);

	for (u32 i = 0; i < rounds; i++)
		revert_crash_round(base + i, (base + i) & 1);
}

/*
 * A snapshot's copy-outs, its delete, then copy-outs for the next snapshot, all in one open
 * txg, and a power cut before it syncs (the log and the copies were flushed, as
 * acknowledged).  The deleted snapshot's chunks were allocated in that txg too; were they
 * reusable at once, the next copy-outs would take them, and replay would find the first
 * records' checksums failing over the new owner's data and "redo" those copies from the
 * origin into chunks that now belong to snapshot 2 (metaslab.c, "Why a run allocated and
 * freed in the same open txg still waits").  So snapshot 2's copies must not be in the
 * chunks snapshot 1 had (engine.h: reuse waits for the freeing txg), and snapshot 2 must
 * read its own data after the replay, and again after a sync and reopen.  With one device
 * the records are ordered and trusted (no copy is redone), so only the first check failed
 * there before the fix; with a log device both did.
 */
static void free_then_reuse_then_crash(bool split)
{
	struct volume_range a = {0, 4}, b = {4, 4};
	u64 t0, old[4], addr;
	struct fixture f;
	bool origin;

	setup_fixture_sync(&f, split, 31, 3600 * 1000); /* no txg sync but ours */
	t0 = txg(&f);
	snapshot(&f);
	assert_int_equal(kernel_write(&f, &a, 1), 0); /* chunks 0-3 copied for snapshot 1 */
	for (u64 c = 0; c < 4; c++) {
		assert_int_equal(volume_snap_read(f.v, 1, c, &origin, &old[c]), 0);
		assert_false(origin);
	}
	assert_int_equal(volume_delete(f.v, 1), 0); /* and freed */
	snapshot(&f);
	assert_int_equal(kernel_write(&f, &b, 1), 0); /* chunks 4-7 copied for snapshot 2 */
	assert_int_equal(kernel_write(&f, &a, 1), 0); /* and 0-3 */
	expect_snapshot(&f, 2, f.snap_ver[2], 31);
	for (u64 c = 0; c < 8; c++) {
		assert_int_equal(volume_snap_read(f.v, 2, c, &origin, &addr), 0);
		assert_false(origin);
		for (u32 k = 0; k < 4; k++)
			if (addr == old[k])
				fail_msg("snapshot 2 chunk %llu reuses chunk %llu freed in the "
					 "open txg",
					 (unsigned long long)c, (unsigned long long)addr);
	}
	assert_int_equal(txg(&f), t0); /* all in the open txg */
	bdev_faulty_crash(f.store, false);
	if (f.meta)
		bdev_faulty_crash(f.meta, false);
	volume_abandon(f.v);
	vol_open(&f);
	expect_snapshot(&f, 2, f.snap_ver[2], 31);
	assert_int_equal(volume_close(f.v), 0);
	vol_open(&f);
	expect_snapshot(&f, 2, f.snap_ver[2], 31);
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
}

static void test_volume__freed_chunks_not_reused_before_sync(void **state)
{
	free_then_reuse_then_crash(false);
}

static void test_volume__freed_chunks_not_reused_before_sync_split(void **state)
{
	free_then_reuse_then_crash(true);
}

/*
 * The upgrade at open (issue 22).  A store of the format before persisted deadlists (made
 * and served with keep_old_format, as the older binaries did) with snapshots and copy-outs,
 * closed cleanly or cut off with records only in its intent log; then the open that replays
 * and upgrades it, with a device dying at a random write and a power cut; then an ordinary
 * open.  The store must be upgraded (the label bit on every device), both checks clean (no
 * leaked block of an upgrade cut short), every snapshot must read as before, and the
 * persisted deadlists must keep working: writes, a delete and a create, a close, a reopen.
 */
static void upgrade_crash_round(u64 seed, bool split, u32 die_at, u32 *outcomes)
{
	u64 rng = seed * 0x9E3779B97F4A7C15ULL + 5, gen;
	struct engine_check_report er;
	struct volume_params p;
	struct label l;
	struct bdev *victim;
	struct fixture f;
	char why[300];
	int r;

	setup_fixture_fmt(&f, split, seed, 0, true);
	for (u32 s = 0; s < MAX_SNAPS; s++) {
		random_writes(&f, &rng, 10);
		snapshot(&f);
	}
	random_writes(&f, &rng, 10);
	if (xorshift64(&rng) & 1) {
		assert_int_equal(volume_close(f.v), 0);
	} else {
		bdev_faulty_crash(f.store, false);
		if (f.meta)
			bdev_faulty_crash(f.meta, false);
		volume_abandon(f.v);
	}
	storecheck_clean(f.store, f.meta, CHUNK, ORIGIN_CHUNKS, seed, &er, &l);
	assert_false(l.feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS);

	f.old_format = false;
	victim = split && (xorshift64(&rng) & 1) ? f.meta : f.store;
	bdev_faulty_die_after(victim, die_at);
	p = (struct volume_params){
		.snapstore_dev = f.store, .origin_dev = f.origin, .metadev_dev = f.meta};
	r = volume_open(&p, &f.v, why, sizeof(why));
	bdev_faulty_crash(f.store, xorshift64(&rng) & 1);
	if (f.meta)
		bdev_faulty_crash(f.meta, xorshift64(&rng) & 1);
	if (!r)
		volume_abandon(f.v);
	/* what the crash left: 0 the old store, 1 the upgrade's trees without the bit, 2 done */
	{
		struct uberblock ub;

		assert_int_equal(label_read(f.meta ? f.meta : f.store, -1, &l, NULL, 0), 0);
		assert_int_equal(
			uberblock_read_newest(f.meta ? f.meta : f.store, &l, &ub, NULL, NULL, 0),
			0);
		outcomes[l.feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS ? 2
			 : ub.roots[UB_ROOT_DEADLIST_ENTRIES].blocknr	       ? 1
									       : 0]++;
	}

	vol_open(&f);
	expect_snapshots(&f, seed);
	assert_int_equal(volume_close(f.v), 0);
	storecheck_clean(f.store, f.meta, CHUNK, ORIGIN_CHUNKS, seed, &er, &l);
	if (!(l.feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS))
		fail_msg("seed %llu: not upgraded", (unsigned long long)seed);

	vol_open(&f);
	random_writes(&f, &rng, 10);
	assert_int_equal(volume_delete(f.v, 2), 0);
	assert_int_equal(volume_create(f.v, 2, &gen), 0); /* reads the origin again */
	memcpy(f.snap_ver[2], f.origin_ver, ORIGIN_CHUNKS);
	random_writes(&f, &rng, 10);
	assert_int_equal(volume_close(f.v), 0);
	storecheck_clean(f.store, f.meta, CHUNK, ORIGIN_CHUNKS, seed, &er, &l);
	vol_open(&f);
	expect_snapshots(&f, seed);
	assert_int_equal(volume_close(f.v), 0);
	teardown_fixture(&f);
}

static void test_volume__upgrade_at_open_crash(void **state)
{
	u64 base;
	u32 rounds = seeds("upgrade (the device dies at write seed / 2 % 12 + 1)", 48, &base);
	u32 outcomes[3] = {0};

	for (u32 i = 0; i < rounds; i++) {
		u64 seed = base + i;

		/* every write of the upgrading open (about 10), on both layouts */
		upgrade_crash_round(seed, seed & 1, (u32)(seed / 2 % 12) + 1, outcomes);
	}
	print_message("test_volume: the crashes left %u old stores, %u with the upgrade's trees "
		      "but not its bit, %u upgraded\n",
		      outcomes[0], outcomes[1], outcomes[2]);
	if (rounds > 1) /* 48 consecutive seeds meet every crash point: each case was met */
		assert_true(outcomes[0] && outcomes[1] && outcomes[2]);
}

/*
 * An upgrade whose txg became durable but whose label bit did not (the crash between the
 * two): the trees are there, unused, and the next open must free them (no leak) and upgrade
 * again.  Made exactly: a complete upgrade, a close, and the bit taken off every label.
 */
static void test_volume__upgrade_after_trees_without_bit(void **state)
{
	struct engine_check_report er;
	struct uberblock ub;
	struct fixture f;
	struct label l;
	u64 rng = 99;

	setup_fixture_fmt(&f, true, 41, 0, true);
	random_writes(&f, &rng, 10);
	snapshot(&f);
	random_writes(&f, &rng, 10);
	assert_int_equal(volume_close(f.v), 0);
	f.old_format = false;
	vol_open(&f);
	assert_int_equal(volume_close(f.v), 0);
	assert_int_equal(label_read(f.meta, -1, &l, NULL, 0), 0);
	assert_int_equal(uberblock_read_newest(f.meta, &l, &ub, NULL, NULL, 0), 0);
	assert_true(ub.roots[UB_ROOT_DEADLIST_ENTRIES].blocknr != 0);
	for (int i = 0; i < 2; i++) {
		struct bdev *b = i ? f.store : f.meta;

		assert_int_equal(label_read(b, -1, &l, NULL, 0), 0);
		assert_true(l.feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS);
		l.feature_incompat &= ~LABEL_FEATURE_INCOMPAT_DEADLISTS;
		assert_int_equal(label_rewrite(b, &l, l.role), 0);
	}
	vol_open(&f); /* frees the stale trees in the upgrade's txg */
	expect_snapshots(&f, 41);
	assert_int_equal(volume_close(f.v), 0);
	storecheck_clean(f.store, f.meta, CHUNK, ORIGIN_CHUNKS, 41, &er, &l);
	assert_true(l.feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS);
	assert_true(er.exceptions > 0);
	teardown_fixture(&f);
}

/*
 * The upgrade in bounded txgs (doc/format.md, "Upgrade").  Tests cut it into txgs of
 * UPGRADE_TXG_ENTRIES entries, so a store of a few dozen exceptions takes a dozen txgs.
 */
#define UPGRADE_TXG_ENTRIES 4

/* What the newest uberblock of the store says about the upgrade. */
struct upgrade_state {
	bool bit;	   /* the label bit (either device) */
	u64 cursor, birth; /* scalars 3 and 4 */
	u64 births;	   /* max root birth of the exception tree and snapshot table */
	u64 exc_birth;	   /* the exception tree's root birth */
	bool trees;	   /* roots 2 and 5 set */
	u64 rows, entries; /* the persisted deadlists as they are (trees set) */
	u64 digest;	   /* of every row (death, key, id, count) and entry, in order */
};

struct digest_ctx {
	u64 h, n;
};

static void digest_mix(u64 *h, u64 v)
{
	*h = (*h ^ v) * 0x100000001b3ULL;
}

static int digest_entry(void *arg, const struct dl_piece *p, u64 chunk, u64 death)
{
	struct digest_ctx *c = arg;

	digest_mix(&c->h, p->id);
	digest_mix(&c->h, chunk);
	digest_mix(&c->h, death);
	c->n++;
	return 0;
}

static void upgrade_state(struct fixture *f, struct upgrade_state *st)
{
	struct bdev *m = f->meta ? f->meta : f->store;
	struct engine_roots roots;
	struct uberblock ub;
	struct label l, sl;

	memset(st, 0, sizeof(*st));
	assert_int_equal(label_read(m, -1, &l, NULL, 0), 0);
	assert_int_equal(label_read(f->store, -1, &sl, NULL, 0), 0);
	st->bit = (l.feature_incompat | sl.feature_incompat) & LABEL_FEATURE_INCOMPAT_DEADLISTS;
	assert_int_equal(uberblock_read_newest(m, &l, &ub, NULL, NULL, 0), 0);
	volume_roots_of(&ub, &roots);
	st->cursor = ub.scalars[UB_SCALAR_UPGRADE_CURSOR];
	st->birth = ub.scalars[UB_SCALAR_UPGRADE_BIRTH];
	st->exc_birth = roots.exceptions.birth_txg;
	st->births = MAX(roots.exceptions.birth_txg, roots.snapshots.birth_txg);
	st->trees = roots.deadlists.entries.blocknr != 0;
	if (st->trees) {
		struct cache *cache = cache_create(m, 4 * MB);
		struct digest_ctx c = {.h = 0xcbf29ce484222325ULL};
		struct dldisk *d;

		cache_set_synced_txg(cache, ub.txg);
		assert_int_equal(dldisk_open(cache, &roots.deadlists, &d), 0);
		st->rows = dldisk_npieces(d);
		for (u32 i = 0; i < st->rows; i++) {
			const struct dl_piece *p = dldisk_piece(d, i);

			digest_mix(&c.h, p->death);
			digest_mix(&c.h, p->key);
			digest_mix(&c.h, p->id);
			digest_mix(&c.h, p->count);
		}
		assert_int_equal(dldisk_walk(d, NULL, digest_entry, &c), 0);
		st->entries = c.n;
		st->digest = c.h;
		dldisk_close(d);
		cache_destroy(cache);
	}
}

/* Every snapshot's accounting (unique, written) and the exception count: the model's. */
struct accounting {
	u64 exceptions;
	u64 unique[MAX_SNAPS + 1], written[MAX_SNAPS + 1];
	u32 n;
};

static void accounting(struct fixture *f, struct accounting *a)
{
	struct engine_snapinfo si[MAX_SNAPS + 1];
	struct volume_stats st;
	u32 count, total;
	u64 next;

	memset(a, 0, sizeof(*a));
	assert_int_equal(volume_status(f->v, &st), 0);
	a->exceptions = st.exceptions;
	assert_int_equal(volume_list(f->v, 0, si, MAX_SNAPS + 1, &count, &total, &next), 0);
	a->n = count;
	for (u32 i = 0; i < count; i++) {
		a->unique[i] = si[i].unique_bytes;
		a->written[i] = si[i].written_bytes;
	}
}

static void expect_accounting(struct fixture *f, const struct accounting *want, u64 seed)
{
	struct accounting got;

	accounting(f, &got);
	if (memcmp(&got, want, sizeof(got)))
		fail_msg("seed %llu: accounting after the upgrade (%llu exceptions, %u snapshots) "
			 "differs from the model's (%llu exceptions, %u snapshots)",
			 (unsigned long long)seed, (unsigned long long)got.exceptions, got.n,
			 (unsigned long long)want->exceptions, want->n);
}

/*
 * An old-format store from @seed: snapshot 1, copy-outs of the even chunks 0..14, snapshot
 * 2, copy-outs of the odd chunks 1..15, snapshot 3, random copy-outs.  Deleting 2 then frees
 * nothing (the exception tree keeps its root) but moves 2's entries into 3's deadlist, where
 * the odd chunks' interleave with them: the deadlists' walk changes order.  Closed, or cut
 * off with records in its log.  Deterministic in @seed (its deadlists, not its addresses).
 */
static void old_store(struct fixture *f, u64 seed, bool split, u64 *rng)
{
	*rng = seed * 0x9E3779B97F4A7C15ULL + 7;
	setup_fixture_fmt(f, split, seed, 0, true);
	random_writes(f, rng, 10);
	for (u32 odd = 0; odd < 2; odd++) {
		snapshot(f);
		for (u64 c = odd; c < 16; c += 2) {
			struct volume_range r = {c, 1};

			assert_int_equal(kernel_write(f, &r, 1), 0);
		}
	}
	snapshot(f);
	random_writes(f, rng, 10);
	if (xorshift64(rng) & 1) {
		assert_int_equal(volume_close(f->v), 0);
	} else {
		bdev_faulty_crash(f->store, false);
		if (f->meta)
			bdev_faulty_crash(f->meta, false);
		volume_abandon(f->v);
	}
}

/*
 * The model of an upgrade of old_store(@seed): accounting from the deadlists rebuilt by
 * the old format's open, and the persisted deadlists an uncut upgrade (in bounded txgs)
 * writes; *@writes: the block writes of that upgrading open.
 */
/* vol_open(@f), returning the block writes (and flushes) it made on the store and metadev. */
static u64 vol_open_counting(struct fixture *f)
{
	struct bdev_counters c0, c1, m0 = {0}, m1 = {0};

	bdev_faulty_counters(f->store, &c0);
	if (f->meta)
		bdev_faulty_counters(f->meta, &m0);
	vol_open(f);
	bdev_faulty_counters(f->store, &c1);
	if (f->meta)
		bdev_faulty_counters(f->meta, &m1);
	return c1.writes - c0.writes + m1.writes - m0.writes;
}

static void upgrade_model(u64 seed, bool split, struct accounting *a, struct upgrade_state *st,
			  u64 *writes)
{
	struct fixture f;
	u64 rng;

	old_store(&f, seed, split, &rng);
	vol_open(&f); /* old format: rebuilt deadlists */
	accounting(&f, a);
	assert_int_equal(volume_close(f.v), 0);
	f.old_format = false;
	f.upgrade_entries = UPGRADE_TXG_ENTRIES;
	*writes = vol_open_counting(&f);
	expect_accounting(&f, a, seed);
	assert_int_equal(volume_close(f.v), 0);
	upgrade_state(&f, st);
	assert_true(st->bit && st->trees);
	assert_int_equal(st->entries, a->exceptions);
	teardown_fixture(&f);
}

/*
 * A device dying at the @die_at-th write of an upgrade of a dozen txgs, a power cut: the
 * store must be the old one (no cursor), one with partial trees and a cursor (check must
 * accept it: the old format, complete), one with complete trees and cursor but no bit, or
 * upgraded.  The next open finishes the upgrade (continuing from the cursor: fewer block
 * writes than the model's uncut upgrade when half or more was written), and then the
 * persisted deadlists are exactly the model's (every row and entry), the accounting the
 * rebuilt deadlists', check clean, every snapshot as before.  @outcomes: 0 old, 1 partial,
 * 2 complete without the bit, 3 upgraded; @resumed: the partial ones continued with fewer
 * writes.
 */
static void upgrade_bounded_crash_round(u64 seed, bool split, u64 die_at, u32 *outcomes,
					u32 *resumed, u64 *upgrade_writes)
{
	struct engine_check_report er;
	struct upgrade_state model, st, after;
	struct accounting acct;
	struct volume_params p;
	struct fixture f;
	struct label l;
	char why[300];
	u64 rng, model_writes, writes;
	int r, outcome;

	upgrade_model(seed, split, &acct, &model, &model_writes);
	*upgrade_writes = model_writes;
	old_store(&f, seed, split, &rng);
	if (!die_at)
		die_at = 1 + xorshift64(&rng) % (model_writes + 2); /* any write (or flush) */
	f.upgrade_entries = UPGRADE_TXG_ENTRIES;
	bdev_faulty_die_after(split && (xorshift64(&rng) & 1) ? f.meta : f.store, die_at);
	p = (struct volume_params){.snapstore_dev = f.store,
				   .origin_dev = f.origin,
				   .metadev_dev = f.meta,
				   .upgrade_txg_entries = UPGRADE_TXG_ENTRIES};
	r = volume_open(&p, &f.v, why, sizeof(why));
	bdev_faulty_crash(f.store, xorshift64(&rng) & 1);
	if (f.meta)
		bdev_faulty_crash(f.meta, xorshift64(&rng) & 1);
	if (!r)
		volume_abandon(f.v);

	upgrade_state(&f, &st);
	outcome = st.bit ? 3 : !st.cursor ? 0 : st.cursor - 1 < acct.exceptions ? 1 : 2;
	outcomes[outcome]++;
	if (outcome == 1 || outcome == 2) {
		/* the cursor names the trees as they are: that many entries, for these trees */
		assert_int_equal(st.entries, st.cursor - 1);
		assert_int_equal(st.birth, st.births);
		storecheck_clean(f.store, f.meta, CHUNK, ORIGIN_CHUNKS, seed, &er, &l);
		assert_false(l.feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS);
		assert_int_equal(er.exceptions, acct.exceptions);
	}

	f.old_format = false;
	writes = vol_open_counting(&f);
	if ((outcome == 1 && 2 * (st.cursor - 1) >= acct.exceptions) || outcome == 2) {
		if (writes >= model_writes)
			fail_msg("seed %llu: the open after a cut at entry %llu of %llu wrote %llu "
				 "blocks, an uncut upgrade %llu: it did not continue",
				 (unsigned long long)seed, (unsigned long long)(st.cursor - 1),
				 (unsigned long long)acct.exceptions, (unsigned long long)writes,
				 (unsigned long long)model_writes);
		(*resumed)++;
	}
	expect_snapshots(&f, seed);
	expect_accounting(&f, &acct, seed);
	assert_int_equal(volume_close(f.v), 0);
	upgrade_state(&f, &after);
	if (!after.bit || after.rows != model.rows || after.entries != model.entries ||
	    after.digest != model.digest)
		fail_msg("seed %llu: the persisted deadlists (%llu rows, %llu entries) are not the "
			 "model's (%llu rows, %llu entries) after a cut in outcome %d",
			 (unsigned long long)seed, (unsigned long long)after.rows,
			 (unsigned long long)after.entries, (unsigned long long)model.rows,
			 (unsigned long long)model.entries, outcome);
	assert_int_equal(after.cursor, 0); /* cleared by the txg after the bit */
	storecheck_clean(f.store, f.meta, CHUNK, ORIGIN_CHUNKS, seed, &er, &l);
	assert_true(l.feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS);
	vol_open(&f);
	random_writes(&f, &rng, 10);
	assert_int_equal(volume_delete(f.v, 2), 0);
	assert_int_equal(volume_close(f.v), 0);
	storecheck_clean(f.store, f.meta, CHUNK, ORIGIN_CHUNKS, seed, &er, &l);
	teardown_fixture(&f);
}

static void test_volume__upgrade_bounded_crash(void **state)
{
	u64 base, writes;
	u32 rounds = seeds("bounded upgrade", 40, &base);
	u32 outcomes[4] = {0}, resumed = 0;

	for (u32 i = 0; i < rounds; i++) {
		u64 seed = base + i;

		upgrade_bounded_crash_round(seed, seed & 1, 0, outcomes, &resumed, &writes);
	}
	print_message("test_volume: the crashes left %u old stores, %u mid-upgrade (%u continued "
		      "with fewer writes), %u with complete trees but no bit, %u upgraded\n",
		      outcomes[0], outcomes[1], resumed, outcomes[2], outcomes[3]);
	/* which outcomes 40 random cuts meet is chance (once none left the old store): each
	 * round checks its own; the every-write test below meets every case, not a sample */
}

/*
 * The same, the device dying at each write and flush of the upgrade in turn (k = 1, 2, ...
 * up to the uncut upgrade's writes and two more), on one store of each layout: every
 * point of the crash argument, not a sample.
 */
static void test_volume__upgrade_bounded_crash_every_write(void **state)
{
	u32 outcomes[4] = {0}, resumed = 0;
	u64 seed, writes = 1;

	seeds("every write of the bounded upgrade", 1, &seed);
	for (int split = 0; split < 2; split++)
		for (u64 k = 1; k <= writes + 2; k++)
			upgrade_bounded_crash_round(seed, split, k, outcomes, &resumed, &writes);
	print_message("test_volume: the crashes left %u old stores, %u mid-upgrade (%u continued "
		      "with fewer writes), %u with complete trees but no bit, %u upgraded\n",
		      outcomes[0], outcomes[1], resumed, outcomes[2], outcomes[3]);
	assert_true(outcomes[0] && outcomes[1] && outcomes[2] && outcomes[3] && resumed);
}

/*
 * A cursor gone stale: an upgrade cut mid-way, then the store written by a binary that
 * does not upgrade (keep_old_format): a delete of snapshot 2, which frees nothing (so the
 * exception tree keeps its root and its birth) but changes the snapshot table and the order
 * of the deadlists' walk (old_store).  The next open must see that the walk is not the
 * cursor's (the table's root birth differs) and start again: freeing the partial trees (no
 * leak: check clean) and ending with deadlists check accepts and the accounting of the
 * rebuilt ones.  Continuing would skip entries of the new order that were never written
 * and write again some that were (doc/format.md, "Upgrade": why the cursor's birth covers
 * the snapshot table too).
 */
static void test_volume__upgrade_stale_cursor_restarts(void **state)
{
	struct engine_check_report er;
	struct upgrade_state st, st2;
	struct accounting acct;
	struct fixture f;
	struct label l;
	u64 rng, seed = 77;
	u32 die_at;

	/* a cut inside the first 16 entries of the walk: the ones the delete reorders */
	for (die_at = 1;; die_at++) {
		struct volume_params p;
		char why[300];

		old_store(&f, seed, false, &rng);
		f.upgrade_entries = UPGRADE_TXG_ENTRIES;
		p = (struct volume_params){.snapstore_dev = f.store,
					   .origin_dev = f.origin,
					   .upgrade_txg_entries = UPGRADE_TXG_ENTRIES};
		bdev_faulty_die_after(f.store, die_at);
		if (!volume_open(&p, &f.v, why, sizeof(why)))
			volume_abandon(f.v);
		bdev_faulty_crash(f.store, false);
		upgrade_state(&f, &st);
		if (!st.bit && st.cursor > 2 && st.cursor <= 16 && st.trees &&
		    st.entries == st.cursor - 1)
			break;
		assert_true(die_at < 200);
		teardown_fixture(&f);
	}
	vol_open(&f); /* old format again (f.old_format): as a binary that does not upgrade */
	assert_int_equal(volume_delete(f.v, 2), 0);
	accounting(&f, &acct);
	assert_int_equal(volume_close(f.v), 0);
	upgrade_state(&f, &st2);
	assert_false(st2.bit);
	assert_int_equal(st2.cursor, st.cursor);       /* carried, untouched */
	assert_int_equal(st2.exc_birth, st.exc_birth); /* the delete freed no exception */
	assert_true(st2.births != st2.birth);	       /* but the table changed */

	f.old_format = false;
	vol_open(&f);
	expect_accounting(&f, &acct, seed);
	expect_snapshot(&f, 1, f.snap_ver[1], seed);
	expect_snapshot(&f, 3, f.snap_ver[3], seed);
	assert_int_equal(volume_close(f.v), 0);
	storecheck_clean(f.store, f.meta, CHUNK, ORIGIN_CHUNKS, seed, &er, &l);
	assert_true(l.feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS);
	assert_int_equal(er.exceptions, acct.exceptions);
	teardown_fixture(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_volume__repeated_write_needs_no_flush),
		cmocka_unit_test(test_volume__repeated_write_needs_no_flush_split),
		cmocka_unit_test(test_volume__acknowledged_copies_survive_a_crash),
		cmocka_unit_test(test_volume__late_log_flush_does_not_cover_copies),
		cmocka_unit_test(test_volume__split_log_flush_before_copy_flush),
		cmocka_unit_test(test_volume__log_block_durable_before_its_copy),
		cmocka_unit_test(test_volume__log_block_durable_before_its_copy_in),
		cmocka_unit_test(test_volume__lost_whole_snap_write_reads_old_data),
		cmocka_unit_test(test_volume__snap_write_copy_ins_share_a_flush),
		cmocka_unit_test(test_volume__replay_refuses_a_wrapping_address),
		cmocka_unit_test(test_volume__acknowledged_copies_survive_a_crash_split),
		cmocka_unit_test(test_volume__lookups_during_syncs),
		cmocka_unit_test(test_volume__concurrent_writers_creates_deletes_crash),
		cmocka_unit_test(test_volume__revert),
		cmocka_unit_test(test_volume__revert_crash_and_rerun),
		cmocka_unit_test(test_volume__upgrade_at_open_crash),
		cmocka_unit_test(test_volume__upgrade_after_trees_without_bit),
		cmocka_unit_test(test_volume__upgrade_bounded_crash),
		cmocka_unit_test(test_volume__upgrade_bounded_crash_every_write),
		cmocka_unit_test(test_volume__upgrade_stale_cursor_restarts),
		cmocka_unit_test(test_volume__freed_chunks_not_reused_before_sync),
		cmocka_unit_test(test_volume__freed_chunks_not_reused_before_sync_split),
	};

	log_set_level(LOGL_WARN); /* the crashes' I/O errors are expected */
	if (getenv("VOLUME_TEST"))
		cmocka_set_test_filter(getenv("VOLUME_TEST")); /* e.g. '*upgrade*' */
	return cmocka_run_group_tests_name("volume", tests, NULL, NULL);
}
