// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_metaslab.c - the allocator against a block-state model over many txgs, on a
 * separate metadata device and on one shared device: no block is ever handed out twice,
 * frees are deferred until their txg is durable (except runs born in the open txg), data
 * runs are contiguous and chunk-aligned, what the checker walk reports equals the model plus
 * the allocator's own blocks (no leak), a reopen from disk equals the state before, a crash
 * before the uberblock keeps the previous state, ENOSPC leaves the sync its reserve, and a
 * corrupt table block with a valid checksum is refused.  MS_SEED=<n> replays a run.
 */
#include <pthread.h>
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "blk/bdev.h"
#include "blk/cache.h"
#include "pdata/metaslab.h"
#include "lib/rng.h"

#define CHUNK_SHIFT 2 /* 4-block chunks */
#define CB	    (1u << CHUNK_SHIFT)

enum { M_FREE = 0, M_ALLOC = 1, M_DEFER = 2 };

struct extent {
	u64 start, n, birth; /* blocks */
	bool data;
};

struct fix {
	struct bdev *meta_bdev; /* holds every metadata block (the cache's device) */
	struct cache *cache;
	struct metaslab_group *mg;
	struct metaslab_geometry g;
	u64 txg;		     /* open */
	u8 *data_state, *meta_state; /* per device block; the same array on a shared device */
	u64 dev_blocks;
	struct extent *ext; /* what the "store" holds */
	u64 nr_ext, cap_ext;
	u64 *deferred; /* blocks freed in the open txg */
	u64 nr_deferred;
	struct metaslab_root_disk root; /* as of the last durable txg */
	u64 durable_txg;
};

static u64 seed_from_env(void)
{
	return rnd_seed("MS_SEED", rnd_clock_seed(), NULL);
}

static void fix_init(struct fix *f, bool shared, u64 dev_blocks, struct bdev *meta_bdev)
{
	memset(f, 0, sizeof(*f));
	f->dev_blocks = dev_blocks;
	f->meta_bdev = meta_bdev ? meta_bdev : bdev_ram_create(dev_blocks * (u64)DDSNAP_BLOCK_SIZE);
	f->cache = cache_create(f->meta_bdev, 256 * DDSNAP_BLOCK_SIZE);
	if (shared)
		assert_int_equal(
			metaslab_geometry_init(&f->g, 8, dev_blocks - 8, 0, 0, CHUNK_SHIFT), 0);
	else
		assert_int_equal(metaslab_geometry_init(&f->g, 8, dev_blocks - 8, 8,
							dev_blocks / 4 - 8, CHUNK_SHIFT),
				 0);
	f->g.ms_shift = 10; /* small metaslabs: several per region even on a small device */
	f->txg = 1;
	assert_int_equal(metaslab_create(f->cache, &f->g, f->txg, &f->mg), 0);
	f->data_state = calloc(dev_blocks, 1);
	f->meta_state = shared ? f->data_state : calloc(dev_blocks, 1);
	f->deferred = calloc(2 * dev_blocks, sizeof(u64));
}

static void fix_fini(struct fix *f)
{
	metaslab_close(f->mg);
	cache_destroy(f->cache);
	bdev_close(f->meta_bdev);
	if (f->meta_state != f->data_state)
		free(f->meta_state);
	free(f->data_state);
	free(f->ext);
	free(f->deferred);
}

static u8 *state_of(struct fix *f, bool data)
{
	return data ? f->data_state : f->meta_state;
}

static void add_extent(struct fix *f, bool data, u64 start, u64 n)
{
	u8 *st = state_of(f, data);

	assert_true(start + n <= f->dev_blocks);
	for (u64 i = start; i < start + n; i++) {
		/* Never handed out twice, never reused before its free is durable. */
		assert_int_equal(st[i], M_FREE);
		st[i] = M_ALLOC;
	}
	if (f->nr_ext == f->cap_ext) {
		f->cap_ext = MAX(64, 2 * f->cap_ext);
		f->ext = realloc(f->ext, f->cap_ext * sizeof(*f->ext));
	}
	f->ext[f->nr_ext++] = (struct extent){start, n, f->txg, data};
}

static int do_alloc_data(struct fix *f, u64 max)
{
	u64 start, got;
	int r = metaslab_alloc_data(f->mg, max, &start, &got);

	if (r)
		return r;
	assert_true(got >= 1 && got <= max);
	assert_int_equal((start - f->g.data_start) % CB, 0);
	assert_true(start >= f->g.data_start &&
		    start + got * CB <= f->g.data_start + f->g.data_blocks);
	add_extent(f, true, start, got * CB);
	return 0;
}

static int do_alloc_meta(struct fix *f)
{
	u64 b;
	int r = metaslab_alloc_meta(f->mg, &b);

	if (r)
		return r;
	add_extent(f, false, b, 1);
	return 0;
}

/* Frees extent @i; checks the open-txg exception. */
static void do_free(struct fix *f, u64 i)
{
	struct extent e = f->ext[i];
	u8 *st = state_of(f, e.data);
	struct metaslab_class_stats before, after;
	u32 cls = e.data ? METASLAB_CLASS_DATA : METASLAB_CLASS_META;
	int r;

	metaslab_stats(f->mg, cls, &before);
	if (e.data)
		r = metaslab_free_data(f->mg, e.start, e.n / CB, e.birth);
	else
		r = metaslab_free_meta(f->mg, e.start, e.birth);
	metaslab_stats(f->mg, cls, &after);
	assert_int_equal(r, e.birth == f->txg ? 1 : 0);
	for (u64 b = e.start; b < e.start + e.n; b++) {
		if (r == 1) {
			st[b] = M_FREE;
		} else {
			st[b] = M_DEFER;
			f->deferred[f->nr_deferred++] = b | ((u64)e.data << 63);
		}
	}
	assert_int_equal(after.free - before.free, r == 1 ? e.n : 0);
	assert_int_equal(after.deferred - before.deferred, r == 1 ? 0 : e.n);
	if (r == 1 && !e.data)
		cache_forget(f->cache, e.start);
	f->ext[i] = f->ext[--f->nr_ext];
}

/* The txg layer: sync, write, flush, uberblock (here: keep the root), sync_done. */
static void txg_commit(struct fix *f)
{
	assert_int_equal(metaslab_sync(f->mg, f->txg), 0);
	assert_int_equal(cache_sync(f->cache, f->txg), 0);
	assert_int_equal(bdev_flush(f->meta_bdev), 0);
	metaslab_root_pack(f->mg, &f->root);
	f->durable_txg = f->txg;
	metaslab_sync_done(f->mg, f->txg);
	for (u64 i = 0; i < f->nr_deferred; i++) {
		u64 b = f->deferred[i] & ~(1ull << 63);

		state_of(f, f->deferred[i] >> 63)[b] = M_FREE;
	}
	f->nr_deferred = 0;
	f->txg++;
}

/*----------------------------------------------------------------*/
/* the checker's view equals the model */

struct walk_check {
	struct fix *f;
	u8 *seen_data, *seen_meta;
	bool ok;
};

static int own_block(void *arg, u64 blocknr, u64 birth)
{
	struct walk_check *w = arg;

	if (w->seen_meta[blocknr]) /* referenced twice */
		w->ok = false;
	w->seen_meta[blocknr] = 2;
	return 0;
}

static int allocated_run(void *arg, enum metaslab_class_disk cls, u64 start, u64 n)
{
	struct walk_check *w = arg;
	u8 *seen = cls == METASLAB_CLASS_DATA ? w->seen_data : w->seen_meta;

	for (u64 b = start; b < start + n; b++) {
		if (seen[b] == 1 || seen[b] == 3)
			w->ok = false; /* reported twice */
		seen[b] = seen[b] == 2 ? 3 : 1;
	}
	return 0;
}

static void check_against_model(struct fix *f)
{
	bool shared = f->data_state == f->meta_state;
	struct walk_check w = {f, calloc(f->dev_blocks, 1), NULL, true};
	struct metaslab_class_stats sd, sm, sn;
	u64 model_data = 0, model_meta = 0, own = 0;

	w.seen_meta = shared ? w.seen_data : calloc(f->dev_blocks, 1);
	metaslab_walk_own_blocks(f->mg, own_block, &w);
	for (u64 b = 0; b < f->dev_blocks; b++)
		own += w.seen_meta[b] == 2;
	metaslab_walk_allocated(f->mg, allocated_run, &w);
	assert_true(w.ok);
	/* Allocated = the model's extents plus the allocator's own blocks: no leak. */
	for (u64 i = 0; i < f->nr_ext; i++) {
		u8 *seen = f->ext[i].data ? w.seen_data : w.seen_meta;
		u32 cls = f->ext[i].data ? METASLAB_CLASS_DATA : METASLAB_CLASS_META;

		assert_true(metaslab_is_allocated(f->mg, cls, f->ext[i].start, f->ext[i].n));
		for (u64 b = f->ext[i].start; b < f->ext[i].start + f->ext[i].n; b++) {
			assert_int_equal(seen[b], 1);
			seen[b] = 0;
		}
		*(f->ext[i].data ? &model_data : &model_meta) += f->ext[i].n;
	}
	for (u64 b = 0; b < f->dev_blocks; b++) {
		assert_true(w.seen_data[b] == 0 || w.seen_data[b] == 3);
		if (!shared)
			assert_true(w.seen_meta[b] == 0 || w.seen_meta[b] == 3);
	}
	metaslab_stats(f->mg, METASLAB_CLASS_DATA, &sd);
	metaslab_stats(f->mg, METASLAB_CLASS_META, &sm);
	metaslab_stats(f->mg, METASLAB_CLASS_NONE, &sn);
	assert_int_equal(sd.allocated, model_data);
	assert_int_equal(sm.allocated, model_meta + own);
	assert_int_equal(sn.allocated, 0);
	assert_int_equal(sd.total + sm.total + sn.total, f->g.data_blocks + f->g.meta_blocks);
	free(w.seen_data);
	if (!shared)
		free(w.seen_meta);
}

/* Closes and reopens from the last durable root through a fresh cache. */
static void reopen(struct fix *f)
{
	char why[160] = "";

	metaslab_close(f->mg);
	cache_destroy(f->cache);
	f->cache = cache_create(f->meta_bdev, 256 * DDSNAP_BLOCK_SIZE);
	cache_set_synced_txg(f->cache, f->durable_txg);
	assert_int_equal(
		metaslab_open(f->cache, &f->root, f->durable_txg, &f->mg, why, sizeof(why)), 0);
	f->txg = f->durable_txg + 1;
}

/*----------------------------------------------------------------*/
/* tests */

static void random_run(bool shared)
{
	u64 seed = seed_from_env() + shared;
	struct fix f;

	printf("test_metaslab: %s device, seed %llu (MS_SEED=%llu)\n",
	       shared ? "shared" : "separate", (unsigned long long)seed,
	       (unsigned long long)(seed - shared));
	srandom((unsigned)seed);
	fix_init(&f, shared, 16384, NULL);
	for (int t = 0; t < 400; t++) {
		int nops = 1 + (int)(random() % 60);

		for (int i = 0; i < nops; i++) {
			int op = (int)(random() % 10);

			if (op < 3)
				do_alloc_data(&f, 1 + (u64)random() % 16);
			else if (op < 6)
				do_alloc_meta(&f);
			else if (f.nr_ext)
				do_free(&f, (u64)random() % f.nr_ext);
		}
		txg_commit(&f);
		check_against_model(&f);
		if (t % 20 == 19) {
			reopen(&f);
			check_against_model(&f);
		}
	}
	fix_fini(&f);
}

static void test_metaslab__random_separate_device(void **state)
{
	random_run(false);
}

static void test_metaslab__random_shared_device(void **state)
{
	random_run(true);
}

static void test_metaslab__runs_aligned_contiguous_and_partial(void **state)
{
	struct fix f;
	u64 start, got, s2, g2;

	fix_init(&f, false, 8192, NULL);
	assert_int_equal(metaslab_alloc_data(f.mg, 16, &start, &got), 0);
	assert_int_equal(got, 16);
	assert_int_equal((start - f.g.data_start) % CB, 0);
	assert_int_equal(metaslab_alloc_data(f.mg, 0, &s2, &g2), -EINVAL);
	/* Runs never exceed a metaslab. */
	assert_int_equal(metaslab_alloc_data(f.mg, 1u << 20, &s2, &g2), 0);
	assert_true(g2 <= (1u << (f.g.ms_shift - CHUNK_SHIFT)));
	/* Fragment everything: take all, free every other chunk; then only 1-chunk runs. */
	while (metaslab_alloc_data(f.mg, 1, &s2, &g2) == 0)
		add_extent(&f, true, s2, g2 * CB);
	txg_commit(&f);
	for (u64 i = 0; i < f.nr_ext;) {
		if ((f.ext[i].start / CB) % 2 == 0 && f.ext[i].n == CB)
			do_free(&f, i);
		else
			i++;
	}
	txg_commit(&f);
	assert_int_equal(metaslab_alloc_data(f.mg, 8, &s2, &g2), 0);
	assert_int_equal(g2, 1);
	fix_fini(&f);
}

static void test_metaslab__deferred_frees_and_double_free(void **state)
{
	struct fix f;
	struct metaslab_class_stats st;
	u64 a, b;

	fix_init(&f, false, 8192, NULL);
	assert_int_equal(do_alloc_meta(&f), 0);
	a = f.ext[0].start;
	txg_commit(&f);
	do_free(&f, 0); /* born in an earlier txg: deferred */
	assert_false(metaslab_is_allocated(f.mg, METASLAB_CLASS_META, a, 1));
	assert_int_equal(metaslab_free_meta(f.mg, a, 1), -EILSEQ);
	/* Allocate everything allocatable: a must not come back before its txg is durable. */
	while (metaslab_alloc_meta(f.mg, &b) == 0)
		assert_int_not_equal(b, a);
	metaslab_stats(f.mg, METASLAB_CLASS_META, &st);
	assert_int_equal(st.deferred, 1);
	assert_int_equal(metaslab_free_meta(f.mg, 1, 1), -EINVAL); /* outside the region */
	/* Through the ready-made tx a double free cannot return an error: it fails the txg. */
	{
		struct tx tx;

		metaslab_tx_init(&tx, f.mg, f.cache, f.txg);
		tx_free_meta(&tx, a, 1);
		assert_int_equal(metaslab_sync(f.mg, f.txg), -EILSEQ);
	}
	assert_int_equal(metaslab_free_data(f.mg, f.g.data_start, 1, 1), -EILSEQ); /* free */
	fix_fini(&f);
}

/*
 * A data run allocated and freed in the open txg by a caller that cannot vouch for its
 * birth (birth 0: the engine, whose intent log may name it) waits for the txg like any
 * free: not allocatable, not claimable, counted as deferred, until sync_done; and it is
 * never written to the space map (a reopen from that txg finds it free).
 */
static void open_txg_free_waits(bool shared)
{
	struct metaslab_class_stats st;
	u64 s, got, x, n;
	struct fix f;

	fix_init(&f, shared, 8192, NULL);
	assert_int_equal(metaslab_alloc_data(f.mg, 2, &s, &got), 0);
	n = got * CB;
	assert_int_equal(metaslab_free_data(f.mg, s, got, 0), 0);
	metaslab_stats(f.mg, METASLAB_CLASS_DATA, &st);
	assert_int_equal(st.deferred, n);
	assert_false(metaslab_is_allocated(f.mg, METASLAB_CLASS_DATA, s, n));
	assert_int_equal(metaslab_free_data(f.mg, s, got, 0), -EILSEQ);
	assert_int_equal(metaslab_claim_data(f.mg, s, got), -EEXIST);
	while (metaslab_alloc_data(f.mg, 1, &x, &got) == 0)
		assert_true(x + got * CB <= s || x >= s + n);
	assert_int_equal(metaslab_sync(f.mg, f.txg), 0);
	assert_int_equal(cache_sync(f.cache, f.txg), 0);
	assert_int_equal(bdev_flush(f.meta_bdev), 0);
	metaslab_root_pack(f.mg, &f.root);
	f.durable_txg = f.txg;
	assert_int_equal(metaslab_claim_data(f.mg, s, n / CB), -EEXIST); /* in defer */
	metaslab_sync_done(f.mg, f.txg);
	metaslab_stats(f.mg, METASLAB_CLASS_DATA, &st);
	assert_int_equal(st.deferred, 0);
	assert_int_equal(metaslab_claim_data(f.mg, s, n / CB), 0);
	assert_int_equal(metaslab_free_data(f.mg, s, n / CB, f.txg + 1), 1); /* vouched: at once */
	reopen(&f);
	assert_int_equal(metaslab_claim_data(f.mg, s, n / CB), 0);
	assert_true(metaslab_is_allocated(f.mg, METASLAB_CLASS_DATA, s, n));
	fix_fini(&f);
}

static void test_metaslab__open_txg_free_waits_separate(void **state)
{
	open_txg_free_waits(false);
}

static void test_metaslab__open_txg_free_waits_shared(void **state)
{
	open_txg_free_waits(true);
}

static void test_metaslab__enospc_keeps_sync_reserve(void **state)
{
	struct fix f;
	struct metaslab_class_stats st;
	u64 n = 0;

	fix_init(&f, true, 4096, NULL);
	/* Data fills what it may; metadata then fills down to the reserve. */
	while (do_alloc_data(&f, 4) == 0)
		n++;
	assert_true(n > 0);
	while (do_alloc_meta(&f) == 0)
		;
	assert_int_equal(do_alloc_meta(&f), -ENOSPC);
	assert_int_equal(do_alloc_data(&f, 1), -ENOSPC);
	/* The sync still has room for its own blocks. */
	txg_commit(&f);
	check_against_model(&f);
	metaslab_stats(f.mg, METASLAB_CLASS_DATA, &st);
	assert_int_equal(st.free, 0);
	/* Freeing data makes it allocatable once the free is durable. */
	for (u64 i = 0; i < f.nr_ext;)
		if (f.ext[i].data)
			do_free(&f, i);
		else
			i++;
	assert_int_equal(do_alloc_data(&f, 1), -ENOSPC);
	txg_commit(&f);
	assert_int_equal(do_alloc_data(&f, 1), 0);
	txg_commit(&f);
	reopen(&f);
	check_against_model(&f);
	fix_fini(&f);
}

/* On a shared device a metaslab emptied of data goes back to the pool, for either class. */
static void test_metaslab__empty_metaslab_unclaimed(void **state)
{
	struct metaslab_class_stats none0, none1, data1;
	struct fix f;

	fix_init(&f, true, 8192, NULL);
	metaslab_stats(f.mg, METASLAB_CLASS_NONE, &none0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(do_alloc_data(&f, 8), 0);
	txg_commit(&f);
	metaslab_stats(f.mg, METASLAB_CLASS_DATA, &data1);
	assert_int_equal(data1.metaslabs, 1);
	while (f.nr_ext)
		do_free(&f, 0);
	txg_commit(&f); /* the frees become durable: the metaslab is empty */
	metaslab_stats(f.mg, METASLAB_CLASS_NONE, &none1);
	metaslab_stats(f.mg, METASLAB_CLASS_DATA, &data1);
	assert_int_equal(data1.metaslabs, 0);
	assert_int_equal(data1.total, 0);
	/* The metadata metaslab holding the space maps stays claimed. */
	assert_int_equal(none1.metaslabs, none0.metaslabs - 1);
	txg_commit(&f); /* writes the table entry of the unclaimed metaslab */
	check_against_model(&f);
	reopen(&f);
	check_against_model(&f);
	metaslab_stats(f.mg, METASLAB_CLASS_NONE, &none1);
	assert_int_equal(none1.metaslabs, none0.metaslabs - 1);
	assert_int_equal(do_alloc_data(&f, 8), 0);
	txg_commit(&f);
	check_against_model(&f);
	fix_fini(&f);
}

static void test_metaslab__crash_before_uberblock_keeps_previous(void **state)
{
	u64 seed = seed_from_env() + 7;
	struct fix f;

	srandom((unsigned)seed);
	fix_init(&f, true, 8192, bdev_faulty_create(8192ull * DDSNAP_BLOCK_SIZE, seed));
	for (int round = 0; round < 20; round++) {
		struct extent *saved;
		u64 nr_saved;
		u8 *state_saved = malloc(f.dev_blocks);
		u64 start, got;

		for (int i = 0; i < 40; i++) {
			if (random() % 3 == 0 && f.nr_ext)
				do_free(&f, (u64)random() % f.nr_ext);
			else if (random() % 2)
				do_alloc_data(&f, 1 + (u64)random() % 8);
			else
				do_alloc_meta(&f);
		}
		txg_commit(&f);
		saved = malloc(f.nr_ext * sizeof(*saved) + 1);
		memcpy(saved, f.ext, f.nr_ext * sizeof(*saved));
		nr_saved = f.nr_ext;
		memcpy(state_saved, f.data_state, f.dev_blocks);
		/* The next txg is written and flushed, but its uberblock never lands. */
		for (int i = 0; i < 40; i++) {
			if (random() % 3 == 0 && f.nr_ext)
				do_free(&f, (u64)random() % f.nr_ext);
			else
				do_alloc_data(&f, 1 + (u64)random() % 8);
		}
		assert_int_equal(metaslab_sync(f.mg, f.txg), 0);
		if (round % 2) {
			/* Power fails during the txg's writes: some land, some tear, some not. */
			bdev_faulty_die_after(f.meta_bdev, 1 + (u64)random() % 8);
			(void)cache_sync(f.cache, f.txg);
			(void)bdev_flush(f.meta_bdev);
		} else {
			/* Everything written and flushed; only the uberblock is missing. */
			assert_int_equal(cache_sync(f.cache, f.txg), 0);
			assert_int_equal(bdev_flush(f.meta_bdev), 0);
		}
		bdev_faulty_crash(f.meta_bdev, true);
		memcpy(f.ext, saved, nr_saved * sizeof(*saved));
		f.nr_ext = nr_saved;
		memcpy(f.data_state, state_saved, f.dev_blocks);
		f.nr_deferred = 0;
		reopen(&f);
		check_against_model(&f);
		/* Intent log replay re-claims a copy-out's chunks: once. */
		if (metaslab_alloc_data(f.mg, 2, &start, &got) == 0) {
			assert_int_equal(metaslab_free_data(f.mg, start, got, f.txg), 1);
			assert_int_equal(metaslab_claim_data(f.mg, start, got), 0);
			assert_int_equal(metaslab_claim_data(f.mg, start, got), -EEXIST);
			add_extent(&f, true, start, got * CB);
		}
		free(saved);
		free(state_saved);
	}
	fix_fini(&f);
}

/* Threads allocating and freeing at once never get the same block. */
struct thread_arg {
	struct fix *f;
	pthread_mutex_t *model_lock;
	unsigned seed;
	u64 held[2000][2]; /* start, chunks (0 = metadata block) */
	u64 nheld;
};

static void *alloc_thread(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < 20000; i++) {
		u64 start, got = 0;
		int r = rand_r(&a->seed) % 2 ? metaslab_alloc_data(a->f->mg, 4, &start, &got)
					     : metaslab_alloc_meta(a->f->mg, &start);

		if (r == 0 && a->nheld < 2000) {
			u8 *st = state_of(a->f, got != 0);

			pthread_mutex_lock(a->model_lock);
			for (u64 b = start; b < start + (got ? got * CB : 1); b++) {
				VERIFY(st[b] == M_FREE);
				st[b] = M_ALLOC;
			}
			pthread_mutex_unlock(a->model_lock);
			a->held[a->nheld][0] = start;
			a->held[a->nheld++][1] = got;
		}
		if (a->nheld && (a->nheld == 2000 || rand_r(&a->seed) % 2)) {
			u64 k = (u64)rand_r(&a->seed) % a->nheld, n = a->held[k][1];
			u8 *st = state_of(a->f, n != 0);

			/* Born in the open txg: reusable at once, so clear the model first. */
			pthread_mutex_lock(a->model_lock);
			for (u64 b = a->held[k][0]; b < a->held[k][0] + (n ? n * CB : 1); b++)
				st[b] = M_FREE;
			pthread_mutex_unlock(a->model_lock);
			VERIFY((n ? metaslab_free_data(a->f->mg, a->held[k][0], n, a->f->txg)
				  : metaslab_free_meta(a->f->mg, a->held[k][0], a->f->txg)) == 1);
			a->held[k][0] = a->held[a->nheld - 1][0];
			a->held[k][1] = a->held[--a->nheld][1];
		}
	}
	return NULL;
}

static void test_metaslab__threads_never_share_a_block(void **state)
{
	static struct thread_arg args[2];
	pthread_mutex_t model_lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_t th[2];
	struct fix f;

	fix_init(&f, true, 16384, NULL);
	for (int t = 0; t < 2; t++) {
		args[t] = (struct thread_arg){.f = &f, .model_lock = &model_lock, .seed = 17u + t};
		assert_int_equal(pthread_create(&th[t], NULL, alloc_thread, &args[t]), 0);
	}
	for (int t = 0; t < 2; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	/* What the threads still hold becomes the store's. */
	for (int t = 0; t < 2; t++) {
		for (u64 i = 0; i < args[t].nheld; i++) {
			u64 start = args[t].held[i][0], n = args[t].held[i][1];
			u8 *st = state_of(&f, n != 0);

			for (u64 b = start; b < start + (n ? n * CB : 1); b++)
				st[b] = M_FREE;
			add_extent(&f, n != 0, start, n ? n * CB : 1);
		}
	}
	txg_commit(&f);
	check_against_model(&f);
	fix_fini(&f);
}

static void test_metaslab__corrupt_table_refused(void **state)
{
	struct fix f;
	u8 *buf;
	char why[160] = "";
	struct blkptr index;
	struct metaslab_group *mg;

	fix_init(&f, false, 8192, NULL);
	for (int i = 0; i < 20; i++)
		do_alloc_data(&f, 2);
	txg_commit(&f);
	blkptr_unpack(&index, &f.root.table);
	if (posix_memalign((void **)&buf, BDEV_ALIGN, DDSNAP_BLOCK_SIZE))
		abort();
	assert_int_equal(
		bdev_read(f.meta_bdev, buf, DDSNAP_BLOCK_SIZE, index.blocknr * DDSNAP_BLOCK_SIZE),
		0);
	/* The index claims one leaf too many; resealed, so only the structure check sees it. */
	((struct metaslab_table_disk *)buf)->nr =
		cpu_to_le32(le32_to_cpu(((struct metaslab_table_disk *)buf)->nr) + 1);
	block_seal(buf, &(struct block_type){.name = "t", .magic = MAGIC_METASLAB_TABLE},
		   index.blocknr, index.birth_txg);
	assert_int_equal(
		bdev_write(f.meta_bdev, buf, DDSNAP_BLOCK_SIZE, index.blocknr * DDSNAP_BLOCK_SIZE),
		0);
	index.csum = block_csum(buf);
	blkptr_pack(&f.root.table, &index);
	{
		struct cache *c = cache_create(f.meta_bdev, 64 * DDSNAP_BLOCK_SIZE);

		cache_set_synced_txg(c, f.durable_txg);
		assert_int_equal(metaslab_open(c, &f.root, f.durable_txg, &mg, why, sizeof(why)),
				 -EILSEQ);
		assert_non_null(strstr(why, "leaves"));
		cache_destroy(c);
	}
	/* A root with impossible geometry. */
	f.root.ms_shift = cpu_to_le32(1);
	assert_int_equal(metaslab_open(f.cache, &f.root, f.durable_txg, &mg, why, sizeof(why)),
			 -EILSEQ);
	free(buf);
	fix_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metaslab__random_separate_device),
		cmocka_unit_test(test_metaslab__random_shared_device),
		cmocka_unit_test(test_metaslab__runs_aligned_contiguous_and_partial),
		cmocka_unit_test(test_metaslab__deferred_frees_and_double_free),
		cmocka_unit_test(test_metaslab__open_txg_free_waits_separate),
		cmocka_unit_test(test_metaslab__open_txg_free_waits_shared),
		cmocka_unit_test(test_metaslab__enospc_keeps_sync_reserve),
		cmocka_unit_test(test_metaslab__empty_metaslab_unclaimed),
		cmocka_unit_test(test_metaslab__crash_before_uberblock_keeps_previous),
		cmocka_unit_test(test_metaslab__threads_never_share_a_block),
		cmocka_unit_test(test_metaslab__corrupt_table_refused),
	};

	return cmocka_run_group_tests_name("metaslab", tests, NULL, NULL);
}
