// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_intent_log.c - the intent log over the fault-injecting RAM device: round trips,
 * packing, txg filtering, ring wrap-around over many laps, ring full, group commit with many
 * threads, records with impossible contents under a valid block checksum, and randomized
 * crash tests checked against a model of what was appended and acknowledged.
 *
 * The crash tests put a shim bdev between the log and the faulty device that counts writes
 * and flushes and "loses power" at a chosen one: that write may land torn, and everything
 * after it fails until bdev_faulty_crash() drops (or, with keep_random, half keeps) what was
 * not flushed.  After each crash the log is reopened from the model store's last persisted
 * replay position, and replay must return exactly a prefix of the records the model expects
 * (every acknowledged one included), with identical contents, in order.  Some lives have a
 * slow flush, so that the power cut often finds two batches in flight.
 *
 * The two-in-flight tests put a gate between the log and the faulty device instead: it keeps
 * the writes of both batches in flight aside and blocks their flushes, so a test can put each
 * batch on the platter whole, not at all, or torn at its first or last block, then cut the
 * power, or release the flushes in either order.
 *
 * IL_SEED=<n> replays one seed; IL_ITERS=<n> changes the number of lives of the crash test.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "store/intent_log.h"
#include "util/log.h"

/*----------------------------------------------------------------*/
/* Helpers */

static u64 rng_next(u64 *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static u64 env_u64(const char *name, u64 dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

/* The payload of the record with @seq in life @salt: a pure function, so the model keeps none. */
static void make_payload(u8 *p, size_t len, u64 salt, u64 seq)
{
	u64 s = (salt ^ (seq * 0x9E3779B97F4A7C15ULL)) | 1;

	for (size_t i = 0; i < len; i++)
		p[i] = (u8)rng_next(&s);
}

/* A bdev that forwards to the faulty device and can lose power at its @die_at-th write/flush. */
struct shim {
	struct bdev b;
	struct bdev *inner;
	u64 ops, die_at;
	bool tear;
	unsigned flush_us; /* device latency, so concurrent waiters pile up behind a flush */
};

static struct shim *to_shim(struct bdev *b)
{
	return container_of(b, struct shim, b);
}

static int shim_read(struct bdev *b, void *buf, size_t len, u64 off)
{
	return bdev_read(to_shim(b)->inner, buf, len, off);
}

static int shim_write(struct bdev *b, const void *buf, size_t len, u64 off)
{
	struct shim *s = to_shim(b);
	bool die = __atomic_add_fetch(&s->ops, 1, __ATOMIC_SEQ_CST) == s->die_at;
	int r;

	if (die && s->tear)
		bdev_faulty_tear_write(s->inner, 1);
	r = bdev_write(s->inner, buf, len, off);
	if (die)
		bdev_faulty_fail_all(s->inner);
	return r;
}

static int shim_flush(struct bdev *b)
{
	struct shim *s = to_shim(b);

	if (__atomic_add_fetch(&s->ops, 1, __ATOMIC_SEQ_CST) == s->die_at)
		bdev_faulty_fail_all(s->inner);
	if (s->flush_us)
		usleep(s->flush_us);
	return bdev_flush(s->inner);
}

static void shim_close(struct bdev *b)
{
}

static const struct bdev_ops shim_ops = {
	.read = shim_read,
	.write = shim_write,
	.flush = shim_flush,
	.close = shim_close,
};

static void shim_init(struct shim *s, struct bdev *inner)
{
	memset(s, 0, sizeof(*s));
	s->b.ops = &shim_ops;
	s->b.size = inner->size;
	s->b.name = "shim";
	s->inner = inner;
}

/* Replay collector. */
struct got {
	struct intent_log_record *r;
	u8 **payload;
	size_t n, cap;
};

static int collect(void *arg, const struct intent_log_record *rec)
{
	struct got *g = arg;

	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 64;
		g->r = xrealloc(g->r, g->cap * sizeof(*g->r));
		g->payload = xrealloc(g->payload, g->cap * sizeof(*g->payload));
	}
	g->r[g->n] = *rec;
	g->payload[g->n] = xmalloc(rec->len);
	memcpy(g->payload[g->n], rec->payload, rec->len);
	g->r[g->n].payload = g->payload[g->n];
	g->n++;
	return 0;
}

static void got_reset(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->payload[i]);
	g->n = 0;
}

static void got_free(struct got *g)
{
	got_reset(g);
	free(g->r);
	free(g->payload);
	memset(g, 0, sizeof(*g));
}

static void cfg_init(struct intent_log_config *cfg, struct bdev *b, u64 start, u64 nblocks,
		     u64 guid, struct got *g)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->bdev = b;
	cfg->start = start;
	cfg->nblocks = nblocks;
	cfg->guid = guid;
	cfg->replay = collect;
	cfg->replay_arg = g;
}

static struct intent_log *open_ok(const struct intent_log_config *cfg)
{
	struct intent_log *log = NULL;

	assert_int_equal(intent_log_open(cfg, &log), 0);
	assert_non_null(log);
	return log;
}

static u64 flushes_of(struct bdev *dev)
{
	struct bdev_counters c;

	bdev_faulty_counters(dev, &c);
	return c.flushes;
}

/*----------------------------------------------------------------*/
/* Round trips and limits */

static void test_intent_log__round_trip(void **state)
{
	struct bdev *dev = bdev_faulty_create(80 * DDSNAP_BLOCK_SIZE, 1);
	static u8 payload[INTENT_LOG_MAX_PAYLOAD];
	static const u16 lens[] = {0, 1, 7, 8, 9, 100, 1000, 4000, INTENT_LOG_MAX_PAYLOAD};
	struct intent_log_config cfg;
	struct intent_log *log;
	struct got g = {0};
	u64 seq;

	cfg_init(&cfg, dev, 3, 70, 0xabc, &g);
	log = open_ok(&cfg);
	assert_int_equal(g.n, 0);
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		make_payload(payload, lens[i], 7, i);
		assert_int_equal(
			intent_log_commit(log, (u16)(i + 1), 5 + i, payload, lens[i], 0, &seq), 0);
		assert_int_equal(seq, i);
	}
	/* Limits: type 0 and oversized records are refused and take no sequence number. */
	assert_int_equal(intent_log_append(log, 0, 1, payload, 4, 0, &seq), -EINVAL);
	assert_int_equal(intent_log_append(log, 1, 1, payload, INTENT_LOG_MAX_PAYLOAD + 1, 0, &seq),
			 -EINVAL);
	assert_int_equal(intent_log_wait(log, ARRAY_SIZE(lens)), -EINVAL);
	intent_log_close(log);

	/* Reopen twice: the same records, once each, in order, both times. */
	for (int pass = 0; pass < 2; pass++) {
		log = open_ok(&cfg);
		assert_int_equal(g.n, ARRAY_SIZE(lens));
		for (size_t i = 0; i < g.n; i++) {
			make_payload(payload, lens[i], 7, i);
			assert_int_equal(g.r[i].seq, i);
			assert_int_equal(g.r[i].type, i + 1);
			assert_int_equal(g.r[i].txg, 5 + i);
			assert_int_equal(g.r[i].len, lens[i]);
			assert_memory_equal(g.r[i].payload, payload, lens[i]);
		}
		got_reset(&g);
		intent_log_close(log);
	}
	/* Appending after a reopen continues the sequence. */
	log = open_ok(&cfg);
	got_reset(&g);
	assert_int_equal(intent_log_commit(log, 9, 20, "x", 1, 0, &seq), 0);
	assert_int_equal(seq, ARRAY_SIZE(lens));
	intent_log_close(log);
	log = open_ok(&cfg);
	assert_int_equal(g.n, ARRAY_SIZE(lens) + 1);
	assert_int_equal(g.r[g.n - 1].type, 9);
	intent_log_close(log);

	got_free(&g);
	bdev_close(dev);
}

static void test_intent_log__bad_config(void **state)
{
	struct bdev *dev = bdev_faulty_create(64 * DDSNAP_BLOCK_SIZE, 1);
	struct intent_log_config cfg;
	struct intent_log *log = NULL;
	struct got g = {0};

	cfg_init(&cfg, dev, 0, INTENT_LOG_MIN_BLOCKS - 1, 1, &g);
	assert_int_equal(intent_log_open(&cfg, &log), -EINVAL);
	cfg_init(&cfg, dev, 1, 64, 1, &g); /* one block past the device */
	assert_int_equal(intent_log_open(&cfg, &log), -EINVAL);
	cfg_init(&cfg, dev, 0, 64, 1, &g);
	assert_int_equal(intent_log_open(&cfg, NULL), -EINVAL);
	assert_int_equal(intent_log_open(NULL, &log), -EINVAL);
	assert_null(log);
	bdev_close(dev);
}

/* Small records share blocks; a batch of many records costs one write and one flush. */
static void test_intent_log__packing(void **state)
{
	struct bdev *dev = bdev_faulty_create(64 * DDSNAP_BLOCK_SIZE, 2);
	struct intent_log_config cfg;
	struct intent_log_stats st;
	struct intent_log *log;
	struct got g = {0};
	u8 p[40] = {0};
	u64 seq = 0, f0;
	const unsigned per_block = (DDSNAP_BLOCK_SIZE - 64) / 64; /* 24 + 40 bytes each */

	cfg_init(&cfg, dev, 0, 64, 2, &g);
	log = open_ok(&cfg);
	f0 = flushes_of(dev);
	for (unsigned i = 0; i < 3 * per_block; i++)
		assert_int_equal(intent_log_append(log, 1, 1, p, sizeof(p), 0, &seq), 0);
	assert_int_equal(intent_log_wait(log, seq), 0);
	intent_log_stats(log, &st);
	assert_int_equal(flushes_of(dev) - f0, 1);
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.blocks_written, 3);
	assert_int_equal(st.durable_seq, 3 * per_block);
	/* A wait or flush with nothing pending does no I/O; a record never spans blocks. */
	assert_int_equal(intent_log_wait(log, 0), 0);
	assert_int_equal(intent_log_flush(log), 0);
	assert_int_equal(flushes_of(dev) - f0, 1);
	/* intent_log_flush covers records nobody waited for, in one batch. */
	assert_int_equal(intent_log_append(log, 1, 1, p, sizeof(p), 0, &seq), 0);
	assert_int_equal(intent_log_append(log, 1, 1, p, sizeof(p), 0, &seq), 0);
	assert_int_equal(intent_log_flush(log), 0);
	intent_log_stats(log, &st);
	assert_int_equal(st.durable_seq, seq + 1);
	assert_int_equal(flushes_of(dev) - f0, 2);
	{
		static u8 big[INTENT_LOG_MAX_PAYLOAD];

		assert_int_equal(intent_log_append(log, 2, 1, big, sizeof(big), 0, &seq), 0);
		assert_int_equal(intent_log_append(log, 2, 1, big, sizeof(big), 0, &seq), 0);
		assert_int_equal(intent_log_wait(log, seq), 0);
	}
	intent_log_stats(log, &st);
	assert_int_equal(st.blocks_written, 6);
	intent_log_close(log);
	log = open_ok(&cfg);
	assert_int_equal(g.n, 3 * per_block + 4);
	intent_log_close(log);
	got_free(&g);
	bdev_close(dev);
}

/* Replay skips records of synced txgs and starts at the sync point. */
static void test_intent_log__txg_filter(void **state)
{
	struct bdev *dev = bdev_faulty_create(64 * DDSNAP_BLOCK_SIZE, 3);
	struct intent_log_config cfg;
	struct intent_log_pos pos;
	struct intent_log *log;
	struct got g = {0};
	u64 seq, used, total;

	cfg_init(&cfg, dev, 0, 64, 3, &g);
	log = open_ok(&cfg);
	/* txg 1 in its own blocks, then a block mixing txgs 2 and 3. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(intent_log_commit(log, 1, 1, "a", 1, 0, &seq), 0);
	assert_int_equal(intent_log_append(log, 1, 2, "b", 1, 0, &seq), 0);
	assert_int_equal(intent_log_append(log, 1, 3, "c", 1, 0, &seq), 0);
	assert_int_equal(intent_log_append(log, 1, 2, "d", 1, 0, &seq), 0);
	assert_int_equal(intent_log_wait(log, seq), 0);
	pos = intent_log_sync_point(log, 1);
	assert_int_equal(pos.block_seq, 3);
	assert_int_equal(pos.rec_seq, 3);
	/* The mixed block holds txg 3, so syncing txg 2 cannot free it. */
	assert_int_equal(intent_log_sync_point(log, 2).block_seq, 3);
	intent_log_synced(log, 1, pos);
	intent_log_usage(log, &used, &total);
	assert_int_equal(used, 1);
	assert_int_equal(total, 64);
	intent_log_close(log);

	cfg.replay_from = pos;
	cfg.synced_txg = 2;
	log = open_ok(&cfg);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.r[0].seq, 4);
	assert_int_equal(g.r[0].txg, 3);
	got_reset(&g);
	/* Replayed blocks belong to txg synced + 1 = 3 now: syncing 3 frees them. */
	assert_int_equal(intent_log_sync_point(log, 2).block_seq, 3);
	pos = intent_log_sync_point(log, 3);
	assert_int_equal(pos.block_seq, 4);
	assert_int_equal(pos.rec_seq, 6);
	intent_log_synced(log, 3, pos);
	intent_log_close(log);

	cfg.replay_from = pos;
	cfg.synced_txg = 3;
	log = open_ok(&cfg);
	assert_int_equal(g.n, 0);
	assert_int_equal(intent_log_commit(log, 1, 4, "e", 1, 0, &seq), 0);
	assert_int_equal(seq, 6);
	intent_log_close(log);
	log = open_ok(&cfg);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.r[0].seq, 6);
	intent_log_close(log);
	got_free(&g);
	bdev_close(dev);
}

/*
 * Many laps of a small ring: each reopen replays exactly the records after the last sync
 * point, never a block of an earlier lap sitting in a slot after the end.
 */
static void test_intent_log__wrap_around(void **state)
{
	const u64 nblocks = INTENT_LOG_MIN_BLOCKS, laps = 60;
	struct bdev *dev = bdev_faulty_create((nblocks + 2) * DDSNAP_BLOCK_SIZE, 4);
	struct intent_log_config cfg;
	struct intent_log *log;
	struct got g = {0};
	u64 seed = env_u64("IL_SEED", 4), rng = seed | 1, txg = 1, seq = 0, reopens = 0;
	u64 synced_rec = 0, full = 0;
	u8 p[300];
	int r;

	print_message("wrap_around: seed %llu\n", (unsigned long long)seed);
	cfg_init(&cfg, dev, 2, nblocks, 4, &g);
	log = open_ok(&cfg);
	while (seq < laps * nblocks) {
		u16 len = (u16)(rng_next(&rng) % sizeof(p));
		struct intent_log_stats st;

		make_payload(p, len, 4, seq);
		r = intent_log_commit(log, 1, txg, p, len, INTENT_LOG_NOWAIT, &seq);
		if (r == -EWOULDBLOCK) {
			full++;
		} else {
			assert_int_equal(r, 0);
			seq++;
		}
		if (r || rng_next(&rng) % 8 == 0) {
			struct intent_log_pos pos = intent_log_sync_point(log, txg);

			cfg.replay_from = pos;
			cfg.synced_txg = txg;
			synced_rec = pos.rec_seq;
			intent_log_synced(log, txg, pos);
			txg++;
		}
		if (rng_next(&rng) % 16)
			continue;
		/* Reopen: exactly the records since the sync point come back. */
		intent_log_close(log);
		log = open_ok(&cfg);
		reopens++;
		assert_int_equal(g.n, seq - synced_rec);
		for (size_t i = 0; i < g.n; i++) {
			assert_int_equal(g.r[i].seq, synced_rec + i);
			make_payload(p, g.r[i].len, 4, g.r[i].seq);
			assert_memory_equal(g.r[i].payload, p, g.r[i].len);
		}
		got_reset(&g);
		intent_log_stats(log, &st);
		assert_int_equal(st.next_seq, seq);
		/* The txg after a reopen is the one replayed records belong to. */
		txg = cfg.synced_txg + 1;
	}
	intent_log_close(log);
	print_message("wrap_around: %llu reopens, ring full %llu times\n",
		      (unsigned long long)reopens, (unsigned long long)full);
	assert_true(reopens > 10);
	got_free(&g);
	bdev_close(dev);
}

struct pressure_ctx {
	int calls;
};

static void on_pressure(void *arg)
{
	__atomic_add_fetch(&((struct pressure_ctx *)arg)->calls, 1, __ATOMIC_SEQ_CST);
}

struct blocked_appender {
	struct intent_log *log;
	int r;
	u64 seq;
};

static void *append_blocking(void *arg)
{
	struct blocked_appender *a = arg;

	a->r = intent_log_commit(a->log, 1, 2, "z", 1, 0, &a->seq);
	return NULL;
}

/* A full ring refuses NOWAIT appends, blocks others until a sync frees space. */
static void test_intent_log__ring_full(void **state)
{
	const u64 nblocks = INTENT_LOG_MIN_BLOCKS;
	struct bdev *dev = bdev_faulty_create(nblocks * DDSNAP_BLOCK_SIZE, 5);
	struct intent_log_config cfg;
	struct pressure_ctx pc = {0};
	struct blocked_appender a;
	struct intent_log_pos pos;
	struct intent_log *log;
	struct got g = {0};
	pthread_t th;
	u64 seq, used, total;

	cfg_init(&cfg, dev, 0, nblocks, 5, &g);
	cfg.pressure = on_pressure;
	cfg.pressure_arg = &pc;
	log = open_ok(&cfg);
	for (u64 i = 0; i < nblocks; i++) {
		assert_int_equal(intent_log_commit(log, 1, 1, "y", 1, INTENT_LOG_NOWAIT, &seq), 0);
		if (i + 1 < nblocks * INTENT_LOG_PRESSURE_PCT / 100)
			assert_int_equal(pc.calls, 0);
	}
	assert_int_equal(pc.calls, 1);
	intent_log_usage(log, &used, &total);
	assert_int_equal(used, nblocks);
	assert_int_equal(intent_log_append(log, 1, 2, "y", 1, INTENT_LOG_NOWAIT, &seq),
			 -EWOULDBLOCK);

	a.log = log;
	a.r = 1;
	assert_int_equal(pthread_create(&th, NULL, append_blocking, &a), 0);
	while (__atomic_load_n(&pc.calls, __ATOMIC_SEQ_CST) < 2) /* it kicks the txg layer */
		sched_yield();
	pos = intent_log_sync_point(log, 1);
	assert_int_equal(pos.block_seq, nblocks);
	intent_log_synced(log, 1, pos);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(a.r, 0);
	assert_int_equal(a.seq, nblocks);
	assert_int_equal(intent_log_wait_space(log), 0);
	intent_log_close(log);

	cfg.replay_from = pos;
	cfg.synced_txg = 1;
	log = open_ok(&cfg);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.r[0].seq, nblocks);
	intent_log_close(log);
	got_free(&g);
	bdev_close(dev);
}

/*----------------------------------------------------------------*/
/* Group commit */

#define GC_THREADS 32
#define GC_EACH	   100

struct gc_writer {
	struct intent_log *log;
	u32 id;
	int errors;
};

static void *gc_write(void *arg)
{
	struct gc_writer *w = arg;

	for (u32 i = 0; i < GC_EACH; i++) {
		u32 p[2] = {w->id, i};
		u64 seq;

		if (intent_log_commit(w->log, (u16)(w->id + 1), 1, p, sizeof(p), 0, &seq))
			w->errors++;
	}
	return NULL;
}

static void test_intent_log__group_commit(void **state)
{
	const u64 nblocks = 4096;
	struct bdev *dev = bdev_faulty_create(nblocks * DDSNAP_BLOCK_SIZE, 6);
	struct gc_writer w[GC_THREADS];
	pthread_t th[GC_THREADS];
	struct intent_log_config cfg;
	struct intent_log_stats st;
	struct intent_log *log;
	struct got g = {0};
	u32 next[GC_THREADS] = {0};
	u64 f0, flushes;
	struct shim sh;

	shim_init(&sh, dev);
	sh.flush_us = 100;
	cfg_init(&cfg, &sh.b, 0, nblocks, 6, &g);
	log = open_ok(&cfg);
	f0 = flushes_of(dev);
	for (u32 i = 0; i < GC_THREADS; i++) {
		w[i] = (struct gc_writer){.log = log, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, gc_write, &w[i]), 0);
	}
	for (u32 i = 0; i < GC_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].errors, 0);
	}
	flushes = flushes_of(dev) - f0;
	intent_log_stats(log, &st);
	print_message("group commit: %u records, %llu flushes, %llu blocks\n", GC_THREADS * GC_EACH,
		      (unsigned long long)flushes, (unsigned long long)st.blocks_written);
	assert_int_equal(st.records, GC_THREADS * GC_EACH);
	assert_int_equal(st.flushes, flushes + 1); /* the open-time one */
	assert_true(flushes < GC_THREADS * GC_EACH / 2);
	intent_log_close(log);

	/* Every record once, in sequence order; each thread's records in its own order. */
	log = open_ok(&cfg);
	assert_int_equal(g.n, GC_THREADS * GC_EACH);
	for (size_t i = 0; i < g.n; i++) {
		u32 p[2];

		assert_int_equal(g.r[i].seq, i);
		assert_int_equal(g.r[i].len, sizeof(p));
		memcpy(p, g.r[i].payload, sizeof(p));
		assert_true(p[0] < GC_THREADS);
		assert_int_equal(g.r[i].type, p[0] + 1);
		assert_int_equal(p[1], next[p[0]]);
		next[p[0]]++;
	}
	intent_log_close(log);
	got_free(&g);
	bdev_close(dev);
}

/*----------------------------------------------------------------*/
/* Corrupt blocks */

/* Writes 8 blocks of 3 records each (records 0..23) and returns the guid's config. */
static void write_eight_blocks(struct bdev *dev, struct intent_log_config *cfg, struct got *g)
{
	struct intent_log *log;
	u8 p[1200];
	u64 seq;

	cfg_init(cfg, dev, 1, 64, 8, g);
	log = open_ok(cfg);
	for (int b = 0; b < 8; b++) {
		for (int i = 0; i < 3; i++) {
			make_payload(p, sizeof(p), 8, (u64)(3 * b + i));
			assert_int_equal(
				intent_log_append(log, 1, 1 + (u64)b, p, sizeof(p), 0, &seq), 0);
		}
		assert_int_equal(intent_log_wait(log, seq), 0);
	}
	intent_log_close(log);
}

typedef void (*mutate_fn)(u8 *block);

static struct intent_log_record_disk *first_rec(u8 *block)
{
	return (struct intent_log_record_disk *)(block + sizeof(struct intent_log_block_disk));
}

static void mut_payload(u8 *block)
{
	block[sizeof(struct intent_log_block_disk) + sizeof(struct intent_log_record_disk)] ^= 1;
}
static void mut_len_overrun(u8 *block)
{
	first_rec(block)->len = cpu_to_le16(4000);
}
static void mut_seq_gap(u8 *block)
{
	first_rec(block)->seq = cpu_to_le64(le64_to_cpu(first_rec(block)->seq) + 1);
}
static void mut_type_zero(u8 *block)
{
	first_rec(block)->type = 0;
}
static void mut_nrecords(u8 *block)
{
	((struct intent_log_block_disk *)block)->nrecords = cpu_to_le16(4);
}
static void mut_used(u8 *block)
{
	((struct intent_log_block_disk *)block)->used = cpu_to_le16(4090);
}
static void mut_trailing(u8 *block)
{
	block[DDSNAP_BLOCK_SIZE - 1] = 1;
}
static void mut_rec_txg(u8 *block)
{
	first_rec(block)->txg = cpu_to_le64(1000);
}

/*
 * A block whose checksum is valid but whose contents are impossible is refused by the
 * decoder and ends replay; the records before it come back, none after it.
 */
static void test_intent_log__corrupt_record_valid_checksum(void **state)
{
	static const mutate_fn muts[] = {mut_payload,  mut_len_overrun, mut_seq_gap,  mut_type_zero,
					 mut_nrecords, mut_used,	mut_trailing, mut_rec_txg};
	const u64 victim = 5; /* block seq 5 holds records 15..17 */

	for (size_t m = 0; m < ARRAY_SIZE(muts); m++) {
		struct bdev *dev = bdev_faulty_create(65 * DDSNAP_BLOCK_SIZE, 9);
		struct intent_log_block_info info;
		struct intent_log_config cfg;
		struct intent_log *log;
		struct got g = {0};
		u8 *blk = NULL;
		char why[160];
		u64 addr;

		write_eight_blocks(dev, &cfg, &g);
		addr = cfg.start + victim;
		assert_int_equal(posix_memalign((void **)&blk, BDEV_ALIGN, DDSNAP_BLOCK_SIZE), 0);
		assert_int_equal(bdev_read(dev, blk, DDSNAP_BLOCK_SIZE, addr * DDSNAP_BLOCK_SIZE),
				 0);
		assert_int_equal(
			intent_log_block_decode(blk, addr, &info, NULL, 0, why, sizeof(why)), 0);
		assert_int_equal(info.seq, victim);
		assert_int_equal(info.nrecords, 3);
		muts[m](blk);
		block_seal(blk, &intent_log_block_type, addr, block_txg(blk));
		assert_int_equal(
			intent_log_block_decode(blk, addr, &info, NULL, 0, why, sizeof(why)),
			-EILSEQ);
		assert_int_equal(bdev_write(dev, blk, DDSNAP_BLOCK_SIZE, addr * DDSNAP_BLOCK_SIZE),
				 0);
		assert_int_equal(bdev_flush(dev), 0);
		free(blk);

		log = open_ok(&cfg);
		assert_int_equal(g.n, 3 * victim);
		for (size_t i = 0; i < g.n; i++)
			assert_int_equal(g.r[i].seq, i);
		intent_log_close(log);
		got_free(&g);
		bdev_close(dev);
	}
}

/* Bit rot, another store's guid, and a misplaced block all end replay there. */
static void test_intent_log__corrupt_block(void **state)
{
	struct bdev *dev = bdev_faulty_create(65 * DDSNAP_BLOCK_SIZE, 10);
	struct intent_log_block_info info;
	struct intent_log_config cfg;
	struct intent_log *log;
	struct got g = {0};
	char why[160];
	u8 *blk = NULL;

	write_eight_blocks(dev, &cfg, &g);
	assert_int_equal(posix_memalign((void **)&blk, BDEV_ALIGN, DDSNAP_BLOCK_SIZE), 0);
	/* A valid block read from the wrong address. */
	assert_int_equal(bdev_read(dev, blk, DDSNAP_BLOCK_SIZE, 2 * DDSNAP_BLOCK_SIZE), 0);
	assert_int_equal(intent_log_block_decode(blk, 3, &info, NULL, 0, why, sizeof(why)),
			 -ENOTBLK);

	/* Bit rot in block 6. */
	bdev_faulty_corrupt(dev, (cfg.start + 6) * DDSNAP_BLOCK_SIZE + 1000, 1);
	log = open_ok(&cfg);
	assert_int_equal(g.n, 18);
	intent_log_close(log);
	got_reset(&g);

	/* Another guid: the same log read by a store with another identity replays nothing. */
	cfg.guid = 9;
	log = open_ok(&cfg);
	assert_int_equal(g.n, 0);
	intent_log_close(log);
	free(blk);
	got_free(&g);
	bdev_close(dev);
}

/*
 * A crash can leave a later block of the lost batch intact after a torn one (the device
 * reorders sectors).  After a new session writes over the torn slot, replay must not chain
 * from the new block into that stale one, even when sequence numbers line up: open clears
 * the slots after the end before appending.
 */
static void test_intent_log__stale_block_after_end(void **state)
{
	struct bdev *dev = bdev_faulty_create(64 * DDSNAP_BLOCK_SIZE, 11);
	static u8 p[INTENT_LOG_MAX_PAYLOAD];
	struct intent_log_config cfg;
	struct intent_log *log;
	struct got g = {0};
	u64 seq;

	cfg_init(&cfg, dev, 0, 64, 11, &g);
	log = open_ok(&cfg);
	assert_int_equal(intent_log_commit(log, 1, 1, "a", 1, 0, &seq), 0);
	/* One batch of two blocks, one full-size record each: records 1 and 2. */
	make_payload(p, sizeof(p), 11, 1);
	assert_int_equal(intent_log_append(log, 2, 1, p, sizeof(p), 0, &seq), 0);
	make_payload(p, sizeof(p), 11, 2);
	assert_int_equal(intent_log_append(log, 3, 1, p, sizeof(p), 0, &seq), 0);
	assert_int_equal(intent_log_wait(log, seq), 0);
	intent_log_close(log);
	/* The first block of that batch did not survive; the second did. */
	bdev_faulty_corrupt(dev, 1 * DDSNAP_BLOCK_SIZE + 2048, 8);

	log = open_ok(&cfg);
	assert_int_equal(g.n, 1);
	got_reset(&g);
	/* A new record 1 of the same shape lands in block seq 1, chaining to block seq 2. */
	make_payload(p, sizeof(p), 12, 1);
	assert_int_equal(intent_log_commit(log, 4, 1, p, sizeof(p), 0, &seq), 0);
	assert_int_equal(seq, 1);
	intent_log_close(log);

	log = open_ok(&cfg);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.r[1].seq, 1);
	assert_int_equal(g.r[1].type, 4);
	intent_log_close(log);
	got_free(&g);
	bdev_close(dev);
}

/*
 * Defect 3 of issue 16: 30 acknowledged records, one per batch and block, then one flipped
 * byte in block 10.  The 19 intact blocks after it start batches of their own (their record
 * would have fit in the block before), so block 10 was durable: open must refuse, hand out
 * nothing, say what was lost, and keep the evidence for the next open and the checker.  The
 * administrator's override then replays the 10 records before it and clears the rest, so a
 * new log never chains into the stale blocks.
 */
static void test_intent_log__damaged_middle_block(void **state)
{
	struct bdev *dev = bdev_faulty_create(65 * DDSNAP_BLOCK_SIZE, 12);
	struct intent_log_damage d;
	struct intent_log_config cfg;
	struct intent_log *log = NULL;
	struct got g = {0};
	char msg[600];
	u64 seq, n;

	cfg_init(&cfg, dev, 1, 64, 12, &g);
	cfg.damage = &d;
	log = open_ok(&cfg);
	assert_false(d.damaged);
	for (u64 i = 0; i < 30; i++)
		assert_int_equal(intent_log_commit(log, 1, 1 + i, &i, sizeof(i), 0, &seq), 0);
	intent_log_close(log);
	bdev_faulty_corrupt(dev, (cfg.start + 10) * DDSNAP_BLOCK_SIZE + 100, 1);

	for (int pass = 0; pass < 2; pass++) {
		log = NULL;
		assert_int_equal(intent_log_open(&cfg, &log), -EILSEQ);
		assert_null(log);
		assert_int_equal(g.n, 0);
		assert_true(d.damaged);
		assert_int_equal(d.end_block, 10);
		assert_int_equal(d.end_rec, 10);
		assert_int_equal(d.intact_blocks, 19);
		assert_int_equal(d.intact_first, 11);
		assert_int_equal(d.intact_rec, 11);
		assert_int_equal(d.intact_last, 29);
		assert_int_equal(d.intact_records, 19);
	}
	intent_log_damage_describe(&d, msg, sizeof(msg));
	assert_non_null(strstr(msg, "damaged: block seq 10 is unreadable"));
	assert_non_null(strstr(msg, "19 intact blocks follow it (seq 11..29)"));
	assert_non_null(strstr(msg, "record 10 is lost and the 19 records after the gap"));
	assert_non_null(strstr(msg, "--discard-damaged-log"));

	/* The checker's read-only scan sees the same, and what open would replay. */
	memset(&d, 0, sizeof(d));
	assert_int_equal(intent_log_scan(&cfg, &n), 0);
	assert_int_equal(n, 10);
	assert_true(d.damaged);
	got_reset(&g);

	/* Accepting the loss: the 10 records before the damage, then a fresh log after them. */
	cfg.discard_damaged = true;
	log = open_ok(&cfg);
	assert_int_equal(g.n, 10);
	assert_true(d.damaged);
	assert_int_equal(intent_log_commit(log, 2, 50, "z", 1, 0, &seq), 0);
	assert_int_equal(seq, 10);
	intent_log_close(log);
	got_reset(&g);
	cfg.discard_damaged = false;
	log = open_ok(&cfg);
	assert_false(d.damaged);
	assert_int_equal(d.intact_blocks, 0);
	assert_int_equal(g.n, 11);
	assert_int_equal(g.r[10].type, 2);
	intent_log_close(log);
	got_free(&g);
	bdev_close(dev);
}

/*
 * An intact block INTENT_LOG_MAX_IN_FLIGHT_BLOCKS or more after the end proves damage even
 * when no block provably starts a batch (full-size records never fit in the block before);
 * fewer intact blocks than that after a bad one are a torn tail and replay cleanly.
 */
static void test_intent_log__damage_by_distance(void **state)
{
	const u64 total = INTENT_LOG_MAX_IN_FLIGHT_BLOCKS + 8;
	static u8 p[INTENT_LOG_MAX_PAYLOAD];

	/* Bad block 4: the last intact block lies beyond the bound; bad block 8: within it. */
	for (u64 bad = 4; bad <= 8; bad += 4) {
		struct bdev *dev = bdev_faulty_create(80 * DDSNAP_BLOCK_SIZE, 13);
		struct intent_log_damage d;
		struct intent_log_config cfg;
		struct intent_log *log = NULL;
		struct got g = {0};
		u64 seq;

		cfg_init(&cfg, dev, 0, 80, 13, &g);
		cfg.damage = &d;
		log = open_ok(&cfg);
		for (u64 i = 0; i < total; i++) {
			make_payload(p, sizeof(p), 13, i);
			assert_int_equal(intent_log_commit(log, 1, 1, p, sizeof(p), 0, &seq), 0);
		}
		intent_log_close(log);
		bdev_faulty_corrupt(dev, bad * DDSNAP_BLOCK_SIZE + 3000, 1);
		if (bad + INTENT_LOG_MAX_IN_FLIGHT_BLOCKS < total) {
			assert_int_equal(intent_log_open(&cfg, &log), -EILSEQ);
			assert_true(d.damaged);
			assert_int_equal(g.n, 0);
		} else {
			log = open_ok(&cfg);
			assert_false(d.damaged);
			assert_int_equal(g.n, bad);
			intent_log_close(log);
		}
		assert_int_equal(d.end_block, bad);
		assert_int_equal(d.intact_blocks, total - bad - 1);
		got_free(&g);
		bdev_close(dev);
	}
}

/*----------------------------------------------------------------*/
/* Randomized crash tests against a model */

enum fault { F_NONE, F_DIE, F_DIE_TORN, F_FAIL_WRITE, NR_FAULTS };

struct mrec {
	u64 txg, salt;
	u16 type, len;
};

/* The model: every record appended in this life, and the store's durable state. */
struct model {
	struct mrec *rec;
	u64 n, cap;		   /* records 0..n-1 appended (seq = index) */
	u64 acked;		   /* records below were acknowledged durable */
	u64 salt;		   /* payload salt */
	u64 synced_txg;		   /* persisted with ... */
	struct intent_log_pos pos; /* ... the replay position */
	u64 open_txg;
};

static void model_add(struct model *m, u64 seq, u64 txg, u16 type, u16 len)
{
	assert_int_equal(seq, m->n);
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->rec = xrealloc(m->rec, m->cap * sizeof(*m->rec));
	}
	m->rec[m->n++] = (struct mrec){.txg = txg, .salt = m->salt, .type = type, .len = len};
}

/*
 * Checks a replay against the model: a prefix of the records the model expects (seq >= the
 * persisted position, txg > the persisted synced txg), every acknowledged one among them,
 * with identical contents, and the log continuing right after what it found.
 */
static void model_check_replay(struct model *m, struct got *g, u64 next_seq, u64 seed)
{
	static u8 p[INTENT_LOG_MAX_PAYLOAD];
	size_t k = 0;
	u64 s;

	if (next_seq < m->acked)
		fail_msg("seed %llu: log continues at %llu, record %llu was acknowledged",
			 (unsigned long long)seed, (unsigned long long)next_seq,
			 (unsigned long long)m->acked - 1);
	if (next_seq > m->n)
		fail_msg("seed %llu: log continues at %llu, only %llu appended",
			 (unsigned long long)seed, (unsigned long long)next_seq,
			 (unsigned long long)m->n);
	for (s = m->pos.rec_seq; s < next_seq; s++) {
		const struct mrec *r = &m->rec[s];

		if (r->txg <= m->synced_txg)
			continue;
		if (k >= g->n)
			fail_msg("seed %llu: record %llu not replayed", (unsigned long long)seed,
				 (unsigned long long)s);
		if (g->r[k].seq != s || g->r[k].txg != r->txg || g->r[k].type != r->type ||
		    g->r[k].len != r->len)
			fail_msg("seed %llu: replayed #%zu seq %llu, expected %llu",
				 (unsigned long long)seed, k, (unsigned long long)g->r[k].seq,
				 (unsigned long long)s);
		make_payload(p, r->len, r->salt, s);
		assert_memory_equal(g->r[k].payload, p, r->len);
		k++;
	}
	if (k != g->n)
		fail_msg("seed %llu: %zu records replayed, %zu expected", (unsigned long long)seed,
			 g->n, k);
	/* Records past the end were never durable: the next ones take their numbers. */
	m->n = next_seq;
	m->acked = next_seq;
	m->open_txg = m->synced_txg + 1;
}

/* The store's txg sync: persist the sync point of the newest quiesced txg, then release. */
static void model_sync(struct model *m, struct intent_log *log)
{
	struct intent_log_pos pos;
	u64 t;

	if (m->open_txg - 1 <= m->synced_txg)
		m->open_txg++; /* quiesce first */
	t = m->open_txg - 1;
	pos = intent_log_sync_point(log, t);
	m->pos = pos;
	m->synced_txg = t;
	intent_log_synced(log, t, pos);
}

/* Runs random operations until a fault stops the log or @steps are done. */
static void session_run(struct model *m, struct intent_log *log, u64 *rng, unsigned steps)
{
	static u8 p[INTENT_LOG_MAX_PAYLOAD];
	u64 pending = UINT64_MAX; /* last appended, not yet waited for */

	for (unsigned i = 0; i < steps; i++) {
		unsigned op = (unsigned)(rng_next(rng) % 100);
		u16 len, type;
		u64 seq;
		int r;

		if (op < 60) {
			/* append, NOWAIT; a full ring makes the store sync */
			u64 x = rng_next(rng);

			len = (u16)(x % 8 == 0 ? rng_next(rng) % (INTENT_LOG_MAX_PAYLOAD + 1)
					       : rng_next(rng) % 64);
			type = (u16)(1 + rng_next(rng) % 65535);
			make_payload(p, len, m->salt, m->n);
			for (int tries = 0;; tries++) {
				r = intent_log_append(log, type, m->open_txg, p, len,
						      INTENT_LOG_NOWAIT, &seq);
				if (r != -EWOULDBLOCK)
					break;
				assert_true(tries < 3);
				if (pending != UINT64_MAX) {
					if (intent_log_wait(log, pending))
						return;
					m->acked = pending + 1;
					pending = UINT64_MAX;
				}
				model_sync(m, log);
			}
			if (r == -EIO)
				return;
			assert_int_equal(r, 0);
			model_add(m, seq, m->open_txg, type, len);
			pending = seq;
		} else if (op < 85) {
			if (pending == UINT64_MAX)
				continue;
			/* Wait for the last record, or flush everything: the same promise. */
			r = op % 2 ? intent_log_wait(log, pending) : intent_log_flush(log);
			if (r)
				return;
			m->acked = pending + 1;
			pending = UINT64_MAX;
		} else if (op < 92) {
			if (m->open_txg - m->synced_txg < 3)
				m->open_txg++;
		} else {
			model_sync(m, log);
		}
	}
}

static void model_open(struct model *m, struct bdev *b, struct intent_log_config *cfg,
		       struct got *g, u64 seed, struct intent_log **out)
{
	struct intent_log_stats st;
	int r;

	cfg->bdev = b;
	cfg->synced_txg = m->synced_txg;
	cfg->replay_from = m->pos;
	got_reset(g);
	r = intent_log_open(cfg, out);
	if (r) {
		*out = NULL;
		assert_int_equal(r, -EIO); /* the fault hit the open-time scrub */
		return;
	}
	intent_log_stats(*out, &st);
	model_check_replay(m, g, st.next_seq, seed);
}

static void test_intent_log__crash_random(void **state)
{
	u64 seed0 = env_u64("IL_SEED", 0), iters = env_u64("IL_ITERS", 1000);
	u64 counts[NR_FAULTS] = {0}, reopens = 0;
	if (!seed0)
		seed0 = (u64)time(NULL);
	print_message("crash_random: IL_SEED=%llu IL_ITERS=%llu\n", (unsigned long long)seed0,
		      (unsigned long long)iters);
	for (u64 it = 0; it < iters; it++) {
		u64 seed = seed0 + it, rng = seed * 0x9E3779B97F4A7C15ULL | 1;
		u64 nblocks = INTENT_LOG_MIN_BLOCKS + rng_next(&rng) % 32;
		u64 start = rng_next(&rng) % 4;
		struct bdev *dev = bdev_faulty_create((start + nblocks) * DDSNAP_BLOCK_SIZE, seed);
		struct intent_log_config cfg;
		struct model m = {.salt = seed, .open_txg = 1};
		struct got g = {0};
		struct shim sh;

		cfg_init(&cfg, NULL, start, nblocks, seed, &g);
		for (int life = 0; life < 8; life++) {
			enum fault f = (enum fault)(rng_next(&rng) % NR_FAULTS);
			bool keep = rng_next(&rng) & 1;
			struct intent_log *log;

			shim_init(&sh, dev);
			m.salt = rng_next(&rng);
			switch (f) {
			case F_DIE:
			case F_DIE_TORN:
				sh.die_at = 1 + rng_next(&rng) % 60;
				sh.tear = f == F_DIE_TORN;
				break;
			case F_FAIL_WRITE:
				bdev_faulty_fail_write(dev, 1 + rng_next(&rng) % 30);
				break;
			default:
				break;
			}
			counts[f]++;
			model_open(&m, &sh.b, &cfg, &g, seed, &log);
			reopens++;
			if (log) {
				session_run(&m, log, &rng, 40 + (unsigned)(rng_next(&rng) % 200));
				if (f == F_NONE && rng_next(&rng) % 2) {
					/* Clean shutdown: everything appended is durable. */
					intent_log_close(log);
					m.acked = m.n;
				} else {
					bdev_faulty_fail_all(dev);
					intent_log_close(log);
				}
			}
			bdev_faulty_crash(dev, keep);
		}
		/* A last open checks the final state. */
		shim_init(&sh, dev);
		{
			struct intent_log *log;

			model_open(&m, &sh.b, &cfg, &g, seed, &log);
			VERIFY(log);
			intent_log_close(log);
		}
		got_free(&g);
		free(m.rec);
		bdev_close(dev);
	}
	print_message("crash_random: %llu opens; faults none %llu die %llu torn %llu fail %llu\n",
		      (unsigned long long)reopens, (unsigned long long)counts[F_NONE],
		      (unsigned long long)counts[F_DIE], (unsigned long long)counts[F_DIE_TORN],
		      (unsigned long long)counts[F_FAIL_WRITE]);
}

/*----------------------------------------------------------------*/
/* Crashes under concurrent group commit */

#define CC_THREADS 8

struct cc_shared {
	struct intent_log *log;
	pthread_rwlock_t txg_hold; /* appenders hold it shared; the syncer takes it to quiesce */
	pthread_mutex_t lock;
	struct model *m;
	u64 *acked; /* per seq: 1 if acknowledged */
	u64 cap;
	bool stop;
};

struct cc_writer {
	struct cc_shared *sh;
	u32 id;
	u64 rng;
};

static void *cc_write(void *arg)
{
	struct cc_writer *w = arg;
	struct cc_shared *sh = w->sh;
	u8 p[256];

	while (!__atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST)) {
		u16 len = (u16)(rng_next(&w->rng) % sizeof(p));
		struct intent_log_stats st;
		u64 seq, txg;
		int r;

		pthread_rwlock_rdlock(&sh->txg_hold);
		txg = __atomic_load_n(&sh->m->open_txg, __ATOMIC_SEQ_CST);
		/* Appends are serialized here so the payload can depend on the seq it gets. */
		pthread_mutex_lock(&sh->lock);
		intent_log_stats(sh->log, &st);
		make_payload(p, len, sh->m->salt, st.next_seq);
		r = intent_log_append(sh->log, (u16)(w->id + 1), txg, p, len, INTENT_LOG_NOWAIT,
				      &seq);
		if (!r) {
			VERIFY(seq == st.next_seq && seq < sh->cap);
			sh->m->rec[seq] = (struct mrec){.txg = txg,
							.salt = sh->m->salt,
							.type = (u16)(w->id + 1),
							.len = len};
			if (seq >= sh->m->n)
				sh->m->n = seq + 1;
		}
		pthread_mutex_unlock(&sh->lock);
		pthread_rwlock_unlock(&sh->txg_hold);
		if (r == -EWOULDBLOCK) {
			if (intent_log_wait_space(sh->log))
				break;
			continue;
		}
		if (r || intent_log_wait(sh->log, seq))
			break;
		__atomic_store_n(&sh->acked[seq], 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void test_intent_log__crash_concurrent(void **state)
{
	u64 seed0 = env_u64("IL_SEED", (u64)time(NULL)), iters = env_u64("IL_ITERS", 1000) / 20;
	u64 acked_total = 0, replayed_total = 0, overlapped = 0;
	const u64 cap = 1 << 18;

	print_message("crash_concurrent: IL_SEED=%llu\n", (unsigned long long)seed0);
	for (u64 it = 0; it < iters; it++) {
		u64 seed = seed0 + it, rng = seed * 0x9E3779B97F4A7C15ULL | 1;
		const u64 nblocks = INTENT_LOG_MIN_BLOCKS * 2;
		struct bdev *dev = bdev_faulty_create(nblocks * DDSNAP_BLOCK_SIZE, seed);
		struct model m = {.salt = 0, .open_txg = 1};
		struct cc_writer w[CC_THREADS];
		pthread_t th[CC_THREADS];
		struct intent_log_config cfg;
		struct cc_shared sh = {0};
		struct got g = {0};
		struct shim shim;
		int r;

		m.rec = xzalloc(cap * sizeof(*m.rec));
		m.cap = cap;
		sh.acked = xzalloc(cap * sizeof(u64));
		sh.cap = cap;
		sh.m = &m;
		pthread_rwlock_init(&sh.txg_hold, NULL);
		pthread_mutex_init(&sh.lock, NULL);
		cfg_init(&cfg, NULL, 0, nblocks, seed, &g);
		for (int life = 0; life < 3; life++) {
			shim_init(&shim, dev);
			m.salt = rng_next(&rng);
			shim.die_at = 20 + rng_next(&rng) % 400;
			shim.tear = rng_next(&rng) & 1;
			/* A slow flush in some lives, so that two batches are in flight at the cut. */
			shim.flush_us = rng_next(&rng) % 2 ? 50 : 0;
			cfg.bdev = &shim.b;
			cfg.synced_txg = m.synced_txg;
			cfg.replay_from = m.pos;
			got_reset(&g);
			r = intent_log_open(&cfg, &sh.log);
			if (r) {
				assert_int_equal(r, -EIO);
				bdev_faulty_crash(dev, rng_next(&rng) & 1);
				continue;
			}
			{
				struct intent_log_stats st;

				intent_log_stats(sh.log, &st);
				/* Every acknowledged record of an unsynced txg came back. */
				for (u64 s = m.pos.rec_seq; s < m.n; s++) {
					if (sh.acked[s] && m.rec[s].txg > m.synced_txg) {
						assert_true(s < st.next_seq);
						acked_total++;
					}
				}
				replayed_total += g.n;
				m.acked = 0;
				model_check_replay(&m, &g, st.next_seq, seed);
				memset(sh.acked, 0, cap * sizeof(u64));
			}
			sh.stop = false;
			for (u32 i = 0; i < CC_THREADS; i++) {
				w[i] = (struct cc_writer){.sh = &sh, .id = i, .rng = seed + i + 1};
				assert_int_equal(pthread_create(&th[i], NULL, cc_write, &w[i]), 0);
			}
			/* The syncer: until the shim's power cut stops the log. */
			for (;;) {
				struct intent_log_stats st;

				usleep(200);
				pthread_rwlock_wrlock(&sh.txg_hold);
				m.open_txg++;
				pthread_rwlock_unlock(&sh.txg_hold);
				if (rng_next(&rng) % 2) {
					struct intent_log_pos pos =
						intent_log_sync_point(sh.log, m.open_txg - 1);

					m.pos = pos;
					m.synced_txg = m.open_txg - 1;
					intent_log_synced(sh.log, m.synced_txg, pos);
				}
				intent_log_stats(sh.log, &st);
				if (st.failed) {
					overlapped += st.overlapped;
					break;
				}
			}
			__atomic_store_n(&sh.stop, true, __ATOMIC_SEQ_CST);
			for (u32 i = 0; i < CC_THREADS; i++)
				assert_int_equal(pthread_join(th[i], NULL), 0);
			intent_log_close(sh.log);
			bdev_faulty_crash(dev, rng_next(&rng) & 1);
		}
		pthread_rwlock_destroy(&sh.txg_hold);
		pthread_mutex_destroy(&sh.lock);
		free(sh.acked);
		free(m.rec);
		got_free(&g);
		bdev_close(dev);
	}
	print_message("crash_concurrent: %llu acknowledged records checked, %llu replayed, %llu "
		      "batches issued while another was in flight\n",
		      (unsigned long long)acked_total, (unsigned long long)replayed_total,
		      (unsigned long long)overlapped);
	assert_true(acked_total > 0);
	assert_true(overlapped > 0);
}

/*----------------------------------------------------------------*/
/* Two batches in flight */

#define GATE_MAX_WRITES 8

/*
 * A bdev that lets the test hold both batches in flight and then decide their fate.  While
 * @hold is set, writes are kept aside (copied, not passed on) and each flush blocks until the
 * test releases it by its number (1 = the first flush issued while holding), when it passes
 * everything kept aside to the inner device and flushes it; or until the test cuts the power,
 * when it fails with -EIO, as does everything after.  Reads go straight through.
 */
struct gate {
	struct bdev b;
	struct bdev *inner;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool hold, cut;
	struct gate_write {
		u64 off;
		size_t len;
		u8 *data;
	} w[GATE_MAX_WRITES];
	unsigned nwrites, applied;
	unsigned flushes, waiting; /* flushes issued while holding; blocked now */
	u32 released;		   /* bit k: flush k may complete */
};

static struct gate *to_gate(struct bdev *b)
{
	return container_of(b, struct gate, b);
}

static int gate_read(struct bdev *b, void *buf, size_t len, u64 off)
{
	return bdev_read(to_gate(b)->inner, buf, len, off);
}

static int gate_write(struct bdev *b, const void *buf, size_t len, u64 off)
{
	struct gate *g = to_gate(b);
	int r = 0;

	pthread_mutex_lock(&g->lock);
	if (g->cut) {
		r = -EIO;
	} else if (!g->hold) {
		r = bdev_write(g->inner, buf, len, off);
	} else {
		VERIFY(g->nwrites < GATE_MAX_WRITES);
		g->w[g->nwrites] =
			(struct gate_write){.off = off, .len = len, .data = xmalloc(len)};
		memcpy(g->w[g->nwrites].data, buf, len);
		g->nwrites++;
		pthread_cond_broadcast(&g->cv);
	}
	pthread_mutex_unlock(&g->lock);
	return r;
}

static int gate_flush(struct bdev *b)
{
	struct gate *g = to_gate(b);
	unsigned k;
	int r = 0;

	pthread_mutex_lock(&g->lock);
	if (g->hold && !g->cut) {
		k = ++g->flushes;
		g->waiting++;
		pthread_cond_broadcast(&g->cv);
		while (!g->cut && !(g->released & (1u << k)))
			pthread_cond_wait(&g->cv, &g->lock);
		g->waiting--;
	}
	if (g->cut) {
		r = -EIO;
	} else {
		/* A flush makes every completed write durable: all of those kept aside. */
		for (; g->applied < g->nwrites && !r; g->applied++)
			r = bdev_write(g->inner, g->w[g->applied].data, g->w[g->applied].len,
				       g->w[g->applied].off);
		if (!r)
			r = bdev_flush(g->inner);
	}
	pthread_mutex_unlock(&g->lock);
	return r;
}

static const struct bdev_ops gate_ops = {
	.read = gate_read,
	.write = gate_write,
	.flush = gate_flush,
	.close = shim_close,
};

static void gate_init(struct gate *g, struct bdev *inner)
{
	memset(g, 0, sizeof(*g));
	g->b.ops = &gate_ops;
	g->b.size = inner->size;
	g->b.name = "gate";
	g->inner = inner;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cv, NULL);
}

static void gate_destroy(struct gate *g)
{
	for (unsigned i = 0; i < g->nwrites; i++)
		free(g->w[i].data);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->lock);
}

/* Waits until @nwrites writes are kept aside and @waiting flushes are blocked. */
static void gate_wait_for(struct gate *g, unsigned nwrites, unsigned waiting)
{
	pthread_mutex_lock(&g->lock);
	while (g->nwrites < nwrites || g->waiting < waiting)
		pthread_cond_wait(&g->cv, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void gate_release(struct gate *g, unsigned k)
{
	pthread_mutex_lock(&g->lock);
	g->released |= 1u << k;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->lock);
}

static void gate_cut(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->cut = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->lock);
}

struct tif_waiter {
	struct intent_log *log;
	u64 seq;
	int r;
	bool returned;
	pthread_t th;
};

static void *tif_wait_main(void *arg)
{
	struct tif_waiter *w = arg;

	w->r = intent_log_wait(w->log, w->seq);
	__atomic_store_n(&w->returned, true, __ATOMIC_SEQ_CST);
	return NULL;
}

static void tif_wait_start(struct tif_waiter *w, struct intent_log *log, u64 seq)
{
	*w = (struct tif_waiter){.log = log, .seq = seq, .r = 1};
	assert_int_equal(pthread_create(&w->th, NULL, tif_wait_main, w), 0);
}

static bool tif_returned(struct tif_waiter *w)
{
	return __atomic_load_n(&w->returned, __ATOMIC_SEQ_CST);
}

/*
 * Record sizes of the two-in-flight tests: two records per block, so a batch of 5 records
 * takes 3 blocks, its last one half full; the next batch's first record would have fit
 * there, so that batch's first block provably starts a batch (il_find_damage).
 */
#define TIF_LEN	    1900
#define TIF_PREFIX  3 /* records acknowledged before the two batches: blocks 0 and 1 */
#define TIF_BATCH   5 /* records per batch in flight: 3 blocks */
#define TIF_PER_BLK 2
#define TIF_BLOCKS  ((TIF_BATCH + TIF_PER_BLK - 1) / TIF_PER_BLK)
#define TIF_RING    64
#define TIF_GUID    0x7f1

static void tif_append(struct intent_log *log, u64 salt, u64 n, u64 *last)
{
	static u8 p[TIF_LEN];

	for (u64 i = 0; i < n; i++) {
		struct intent_log_stats st;

		intent_log_stats(log, &st);
		make_payload(p, sizeof(p), salt, st.next_seq);
		assert_int_equal(intent_log_append(log, 1, 1, p, sizeof(p), 0, last), 0);
	}
}

/*
 * Opens the log on @dev (the prefix acknowledged), then issues batch N and, while N's flush
 * has not returned, batch N+1: both held at the gate with their flushes blocked.  Returns
 * the open log; @wa and @wb wait for the last record of N and N+1.
 */
static struct intent_log *tif_two_in_flight(struct bdev *dev, struct gate *g,
					    struct intent_log_config *cfg, struct got *gt, u64 salt,
					    struct tif_waiter *wa, struct tif_waiter *wb)
{
	struct intent_log_stats st;
	struct intent_log *log;
	u64 last;

	gate_init(g, dev);
	cfg_init(cfg, &g->b, 0, TIF_RING, TIF_GUID, gt);
	log = open_ok(cfg);
	/* The prefix: 3 records in blocks 0-1, acknowledged (two batches, so N starts block 2). */
	tif_append(log, salt, 2, &last);
	assert_int_equal(intent_log_wait(log, last), 0);
	tif_append(log, salt, 1, &last);
	assert_int_equal(intent_log_wait(log, last), 0);

	pthread_mutex_lock(&g->lock);
	g->hold = true;
	pthread_mutex_unlock(&g->lock);
	tif_append(log, salt, TIF_BATCH, &last);
	tif_wait_start(wa, log, last);
	gate_wait_for(g, 1, 1); /* N written, its flush pending */
	tif_append(log, salt, TIF_BATCH, &last);
	tif_wait_start(wb, log, last);
	gate_wait_for(g, 2, 2); /* N+1 written while N flushes */
	intent_log_stats(log, &st);
	assert_int_equal(st.overlapped, 1);
	assert_int_equal(st.durable_seq, TIF_PREFIX);
	assert_false(tif_returned(wa));
	assert_false(tif_returned(wb));
	return log;
}

enum tif_fate { TIF_LANDED, TIF_LOST, TIF_TORN_FIRST, TIF_TORN_LAST, TIF_NR_FATES };

static const char *const tif_fate_name[] = {"landed", "lost", "first block torn",
					    "last block torn"};

/*
 * Puts the kept-aside batch write @w on the platter as @fate says: a torn block keeps only
 * its first sector (the rest of it stays as it was: zeros after the open-time scrub) while
 * the other blocks of the write land (the device reorders).  Returns the blocks of the
 * write, from its first, that replay can chain through.
 */
static unsigned tif_apply(struct bdev *dev, const struct gate_write *w, enum tif_fate fate)
{
	unsigned nblk = (unsigned)(w->len / DDSNAP_BLOCK_SIZE), torn;

	assert_int_equal(nblk, TIF_BLOCKS);
	if (fate == TIF_LOST)
		return 0;
	torn = fate == TIF_TORN_FIRST ? 0 : fate == TIF_TORN_LAST ? nblk - 1 : nblk;
	for (unsigned i = 0; i < nblk; i++) {
		size_t len = i == torn ? BDEV_SECTOR : DDSNAP_BLOCK_SIZE;
		u64 off = (u64)i * DDSNAP_BLOCK_SIZE;

		assert_int_equal(bdev_write(dev, w->data + off, len, w->off + off), 0);
	}
	return torn;
}

/* Records 0..n-1 of @g are records 0..n-1 of the log, payloads as tif_append made them. */
static void tif_check_replay(struct got *g, u64 n, u64 salt, const char *what)
{
	static u8 p[TIF_LEN];

	if (g->n != n)
		fail_msg("%s: %zu records replayed, expected %llu", what, g->n,
			 (unsigned long long)n);
	for (u64 i = 0; i < n; i++) {
		assert_int_equal(g->r[i].seq, i);
		assert_int_equal(g->r[i].len, TIF_LEN);
		make_payload(p, TIF_LEN, salt, i);
		assert_memory_equal(g->r[i].payload, p, TIF_LEN);
	}
}

/*
 * A power cut with batches N and N+1 both in flight, for every combination of their fates
 * (landed, lost, first or last block torn).  Neither was acknowledged: replay returns the
 * acknowledged prefix and then exactly the records of the blocks that chain after it: all
 * of N before its first missing block, and N+1 only when all of N landed, never N+1 without
 * N.  A lost or torn N with N+1 intact after it is a legitimate tail, not damage (the last
 * block of N is half full, so N+1's first block provably starts a batch: with one batch in
 * flight that was proof of damage).  After the reopen, a new record takes the next number
 * and a second reopen replays it and nothing of the stale N+1 (the scrub).
 */
static void test_intent_log__two_in_flight_crash(void **state)
{
	for (int fn = 0; fn < TIF_NR_FATES; fn++) {
		for (int fn1 = 0; fn1 < TIF_NR_FATES; fn1++) {
			struct bdev *dev = bdev_faulty_create(TIF_RING * DDSNAP_BLOCK_SIZE, 21);
			u64 salt = (u64)(fn * TIF_NR_FATES + fn1 + 1), expect, seq;
			struct tif_waiter wa, wb;
			struct intent_log_damage d;
			struct intent_log_config cfg;
			struct intent_log *log;
			struct got g = {0};
			struct gate gt;
			unsigned chain_n, chain_n1;
			char what[80];

			snprintf(what, sizeof(what), "N %s, N+1 %s", tif_fate_name[fn],
				 tif_fate_name[fn1]);
			log = tif_two_in_flight(dev, &gt, &cfg, &g, salt, &wa, &wb);
			/* The power cut: the platter gets what the fates say, nothing else. */
			chain_n = tif_apply(dev, &gt.w[0], (enum tif_fate)fn);
			chain_n1 = tif_apply(dev, &gt.w[1], (enum tif_fate)fn1);
			assert_int_equal(bdev_flush(dev), 0);
			gate_cut(&gt);
			assert_int_equal(pthread_join(wa.th, NULL), 0);
			assert_int_equal(pthread_join(wb.th, NULL), 0);
			assert_int_equal(wa.r, -EIO);
			assert_int_equal(wb.r, -EIO);
			intent_log_close(log);
			bdev_faulty_crash(dev, false);

			/* Replay: the prefix, then the chain through what landed. */
			expect = TIF_PREFIX + MIN((u64)chain_n * TIF_PER_BLK, (u64)TIF_BATCH);
			if (chain_n == TIF_BLOCKS)
				expect += MIN((u64)chain_n1 * TIF_PER_BLK, (u64)TIF_BATCH);
			cfg_init(&cfg, dev, 0, TIF_RING, TIF_GUID, &g);
			cfg.damage = &d;
			got_reset(&g);
			log = open_ok(&cfg);
			if (d.damaged)
				fail_msg("%s: called damage", what);
			tif_check_replay(&g, expect, salt, what);
			if (chain_n < TIF_BLOCKS && fn1 != TIF_LOST)
				assert_true(d.intact_blocks >= TIF_BLOCKS - 1);
			/* The log goes on after what it replayed, never into stale N+1 blocks. */
			tif_append(log, salt, 1, &seq);
			assert_int_equal(seq, expect);
			assert_int_equal(intent_log_wait(log, seq), 0);
			intent_log_close(log);
			got_reset(&g);
			log = open_ok(&cfg);
			assert_false(d.damaged);
			tif_check_replay(&g, expect + 1, salt, what);
			intent_log_close(log);

			gate_destroy(&gt);
			got_free(&g);
			bdev_close(dev);
		}
	}
}

/*
 * Acknowledgement order: with N and N+1 in flight, a third batch is not issued (the writer's
 * bound, which replay's damage test relies on); N+1's flush finishing first acknowledges
 * nothing; N's then acknowledges both, and the third batch goes out.
 */
static void test_intent_log__two_in_flight_ack_order(void **state)
{
	struct bdev *dev = bdev_faulty_create(TIF_RING * DDSNAP_BLOCK_SIZE, 22);
	struct tif_waiter wa, wb, wc;
	struct intent_log_config cfg;
	struct intent_log_stats st;
	struct intent_log *log;
	struct got g = {0};
	struct gate gt;
	u64 last;

	log = tif_two_in_flight(dev, &gt, &cfg, &g, 22, &wa, &wb);
	tif_append(log, 22, 1, &last);
	tif_wait_start(&wc, log, last);
	usleep(20000);
	pthread_mutex_lock(&gt.lock);
	assert_int_equal(gt.nwrites, 2); /* no third batch while two are in flight */
	pthread_mutex_unlock(&gt.lock);

	gate_release(&gt, 2); /* N+1's flush returns first */
	usleep(20000);
	intent_log_stats(log, &st);
	assert_int_equal(st.durable_seq, TIF_PREFIX);
	assert_int_equal(st.batches, 3); /* the prefix's two and N+1 */
	assert_false(tif_returned(&wa));
	assert_false(tif_returned(&wb));
	pthread_mutex_lock(&gt.lock);
	assert_int_equal(gt.nwrites, 2);
	pthread_mutex_unlock(&gt.lock);

	gate_release(&gt, 1); /* then N's: both are acknowledged, the third batch goes */
	gate_wait_for(&gt, 3, 0);
	gate_release(&gt, 3);
	assert_int_equal(pthread_join(wa.th, NULL), 0);
	assert_int_equal(pthread_join(wb.th, NULL), 0);
	assert_int_equal(pthread_join(wc.th, NULL), 0);
	assert_int_equal(wa.r, 0);
	assert_int_equal(wb.r, 0);
	assert_int_equal(wc.r, 0);
	intent_log_stats(log, &st);
	assert_int_equal(st.durable_seq, TIF_PREFIX + 2 * TIF_BATCH + 1);
	intent_log_close(log);
	got_reset(&g);
	cfg_init(&cfg, dev, 0, TIF_RING, TIF_GUID, &g);
	log = open_ok(&cfg);
	tif_check_replay(&g, TIF_PREFIX + 2 * TIF_BATCH + 1, 22, "ack order");
	intent_log_close(log);
	gate_destroy(&gt);
	got_free(&g);
	bdev_close(dev);
}

/*
 * Damage is still told from a torn tail with two batches in flight.  Acknowledged batches of
 * one small record each, one block each, the one in block 4 damaged.  The block right after
 * it cannot be shown to start a batch (the block before it is unreadable), each later one
 * can.  With three intact blocks after it, two provably start batches of their own: a
 * third batch is issued only once the first is durable, so block 4 was durable, and open
 * refuses.  With two, blocks 4-5 may be batch N and block 6 batch N+1, both in flight at a
 * crash: a legitimate tail, replayed to block 4 (the price of the second batch in flight:
 * damage to one of the last two batches looks like a crash's tail).
 */
static void test_intent_log__two_in_flight_damage(void **state)
{
	for (u64 after = 2; after <= 3; after++) {
		struct bdev *dev = bdev_faulty_create(TIF_RING * DDSNAP_BLOCK_SIZE, 23);
		struct intent_log_damage d;
		struct intent_log_config cfg;
		struct intent_log *log = NULL;
		struct got g = {0};
		u64 seq, bad = 4;

		cfg_init(&cfg, dev, 0, TIF_RING, TIF_GUID, &g);
		cfg.damage = &d;
		log = open_ok(&cfg);
		for (u64 i = 0; i < bad + 1 + after; i++)
			assert_int_equal(intent_log_commit(log, 1, 1, &i, sizeof(i), 0, &seq), 0);
		intent_log_close(log);
		bdev_faulty_corrupt(dev, bad * DDSNAP_BLOCK_SIZE + 100, 1);
		if (after == 3) {
			assert_int_equal(intent_log_open(&cfg, &log), -EILSEQ);
			assert_true(d.damaged);
			assert_int_equal(g.n, 0);
		} else {
			log = open_ok(&cfg);
			assert_false(d.damaged);
			assert_int_equal(g.n, bad);
			intent_log_close(log);
		}
		assert_int_equal(d.end_block, bad);
		assert_int_equal(d.intact_blocks, after);
		got_free(&g);
		bdev_close(dev);
	}
}

int main(void)
{
	/* The crash tests make the log report thousands of failed writes: keep them quiet. */
	VERIFY(log_open("/dev/null") == 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_intent_log__round_trip),
		cmocka_unit_test(test_intent_log__bad_config),
		cmocka_unit_test(test_intent_log__packing),
		cmocka_unit_test(test_intent_log__txg_filter),
		cmocka_unit_test(test_intent_log__wrap_around),
		cmocka_unit_test(test_intent_log__ring_full),
		cmocka_unit_test(test_intent_log__group_commit),
		cmocka_unit_test(test_intent_log__corrupt_record_valid_checksum),
		cmocka_unit_test(test_intent_log__corrupt_block),
		cmocka_unit_test(test_intent_log__stale_block_after_end),
		cmocka_unit_test(test_intent_log__damaged_middle_block),
		cmocka_unit_test(test_intent_log__damage_by_distance),
		cmocka_unit_test(test_intent_log__crash_random),
		cmocka_unit_test(test_intent_log__crash_concurrent),
		cmocka_unit_test(test_intent_log__two_in_flight_crash),
		cmocka_unit_test(test_intent_log__two_in_flight_ack_order),
		cmocka_unit_test(test_intent_log__two_in_flight_damage),
	};

	return cmocka_run_group_tests_name("intent_log", tests, NULL, NULL);
}
