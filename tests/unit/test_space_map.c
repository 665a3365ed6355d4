// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_space_map.c - the space map log against a bitmap model across many txgs: appends at
 * every sync, reloads from disk through a fresh cache, condensing, a crash before the table
 * entry of a txg is durable (the previous map must load intact), and corrupt blocks: bad
 * structure with a valid checksum, a replay that double-allocates, a lying table entry.
 * Seeds are printed; SM_SEED=<n> replays one.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "blk/bdev.h"
#include "blk/cache.h"
#include "pdata/space_map.h"
#include "lib/rng.h"

#define DEV_BLOCKS 2048 /* log blocks come from [1, DEV_BLOCKS) */
#define MS_START   100000
#define MS_SIZE	   3000

/*----------------------------------------------------------------*/
/* a tiny struct tx: a bitmap allocator with deferred frees */

struct ttx {
	struct tx tx;
	u8 used[DEV_BLOCKS];
	u64 deferred[DEV_BLOCKS];
	u64 nr_deferred, allocs, frees, next;
};

static int ttx_alloc(struct tx *tx, u64 *blocknr)
{
	struct ttx *t = container_of(tx, struct ttx, tx);

	for (u64 i = 0; i < DEV_BLOCKS - 1; i++) {
		u64 b = 1 + (t->next + i) % (DEV_BLOCKS - 1);

		if (!t->used[b]) {
			t->used[b] = 1;
			t->next = b;
			t->allocs++;
			*blocknr = b;
			return 0;
		}
	}
	return -ENOSPC;
}

static void ttx_free(struct tx *tx, u64 blocknr, u64 birth)
{
	struct ttx *t = container_of(tx, struct ttx, tx);

	VERIFY(blocknr < DEV_BLOCKS && t->used[blocknr]);
	t->frees++;
	if (birth == tx->txg) {
		cache_forget(tx->cache, blocknr);
		t->used[blocknr] = 0;
	} else {
		t->deferred[t->nr_deferred++] = blocknr;
	}
}

static const struct tx_ops ttx_ops = {.alloc_meta = ttx_alloc, .free_meta = ttx_free};

/* The txg is durable: deferred frees become reusable. */
static void ttx_synced(struct ttx *t)
{
	for (u64 i = 0; i < t->nr_deferred; i++)
		t->used[t->deferred[i]] = 0;
	t->nr_deferred = 0;
	t->tx.txg++;
}

/*----------------------------------------------------------------*/
/* fixture */

struct fix {
	struct bdev *bdev;
	struct cache *cache;
	struct ttx t;
	struct space_map *sm;
	struct space_map_phys phys; /* what the "table" holds: sealed and synced */
	u8 model[MS_SIZE];	    /* 1 = allocated */
	struct range_tree *allocs, *frees;
};

static void fix_init(struct fix *f, struct bdev *bdev)
{
	memset(f, 0, sizeof(*f));
	f->bdev = bdev;
	f->cache = cache_create(f->bdev, 64 * DDSNAP_BLOCK_SIZE);
	f->t.tx = (struct tx){.txg = 1, .cache = f->cache, .ops = &ttx_ops};
	f->t.used[0] = 1;
	f->sm = space_map_open(f->cache, MS_START, MS_SIZE, &f->phys);
	f->allocs = range_tree_create();
	f->frees = range_tree_create();
}

static void fix_fini(struct fix *f)
{
	space_map_close(f->sm);
	cache_destroy(f->cache);
	bdev_close(f->bdev);
	range_tree_destroy(f->allocs);
	range_tree_destroy(f->frees);
}

static struct range_tree *model_free_tree(const u8 *model)
{
	struct range_tree *rt = range_tree_create();

	for (u64 i = 0; i < MS_SIZE; i++)
		if (!model[i])
			assert_int_equal(range_tree_add(rt, i, 1), 0);
	return rt;
}

static void assert_tree_is_model(const struct range_tree *rt, const u8 *model)
{
	for (u64 i = 0; i < MS_SIZE; i++)
		assert_int_equal(range_tree_contains(rt, i, 1), !model[i]);
}

/* Random txg: allocations and frees of runs, recorded in the model at once. */
static void random_txg(struct fix *f, int nops)
{
	for (int i = 0; i < nops; i++) {
		u64 start = (u64)random() % MS_SIZE, run = 1 + (u64)random() % 12, n;

		run = MIN(run, MS_SIZE - start);
		for (n = 0; n < run && f->model[start + n] == f->model[start]; n++)
			;
		if (range_tree_intersects(f->allocs, start, n) ||
		    range_tree_intersects(f->frees, start, n))
			continue; /* keep the txg's two sets disjoint, as the allocator does */
		assert_int_equal(range_tree_add(f->model[start] ? f->frees : f->allocs, start, n),
				 0);
		memset(f->model + start, !f->model[start], n);
	}
}

/* The metaslab's txg sync: condense if due, append, seal, write, flush, "commit". */
static void sync_txg(struct fix *f, bool commit)
{
	struct range_tree *freeset = model_free_tree(f->model);

	if (space_map_should_condense(f->sm, freeset)) {
		u64 before = f->phys.nr_blocks;

		assert_int_equal(space_map_condense(f->sm, &f->t.tx, freeset), 0);
		assert_true(space_map_condensed_recs(f->sm, freeset) * 2 <= before * 250);
	} else {
		assert_int_equal(space_map_append_tree(f->sm, &f->t.tx, SPACE_MAP_ALLOC, f->allocs),
				 0);
		assert_int_equal(space_map_append_tree(f->sm, &f->t.tx, SPACE_MAP_FREE, f->frees),
				 0);
	}
	range_tree_destroy(freeset);
	range_tree_clear(f->allocs);
	range_tree_clear(f->frees);
	space_map_seal(f->sm, &f->t.tx, &f->phys);
	assert_int_equal(cache_sync(f->cache, f->t.tx.txg), 0);
	assert_int_equal(bdev_flush(f->bdev), 0);
	if (commit)
		ttx_synced(&f->t);
}

/* Loads the committed phys through a fresh cache and compares with the model. */
static void reload_and_check(struct fix *f, const u8 *model, const struct space_map_phys *phys)
{
	struct cache *c = cache_create(f->bdev, 16 * DDSNAP_BLOCK_SIZE);
	struct space_map *sm = space_map_open(c, MS_START, MS_SIZE, phys);
	struct range_tree *rt = range_tree_create();
	char why[128] = "";
	u64 alloc = 0;

	cache_set_synced_txg(c, f->t.tx.txg - 1);
	assert_int_equal(space_map_load(sm, rt, why, sizeof(why)), 0);
	assert_tree_is_model(rt, model);
	for (u64 i = 0; i < MS_SIZE; i++)
		alloc += model[i];
	assert_int_equal(phys->alloc, alloc);
	range_tree_destroy(rt);
	space_map_close(sm);
	cache_destroy(c);
}

static u64 seed_from_env(void)
{
	return rnd_seed("SM_SEED", rnd_clock_seed(), NULL);
}

/*----------------------------------------------------------------*/
/* tests */

static int count_block(void *arg, u64 blocknr, u64 birth)
{
	(*(u64 *)arg)++;
	return 0;
}

static void test_space_map__random_txgs_reload_condense(void **state)
{
	u64 seed = seed_from_env(), condensed = 0, walked = 0;
	struct fix f;

	printf("test_space_map: seed %llu (SM_SEED=%llu to replay)\n", (unsigned long long)seed,
	       (unsigned long long)seed);
	srandom((unsigned)seed);
	fix_init(&f, bdev_ram_create((u64)DEV_BLOCKS * DDSNAP_BLOCK_SIZE));
	for (int txg = 0; txg < 300; txg++) {
		u64 blocks_before = f.phys.nr_blocks;

		random_txg(&f, 1 + (int)(random() % 40));
		sync_txg(&f, true);
		if (f.phys.nr_blocks < blocks_before)
			condensed++;
		if (txg % 25 == 0)
			reload_and_check(&f, f.model, &f.phys);
	}
	reload_and_check(&f, f.model, &f.phys);
	/* The log was condensed along the way and stays within the condensing bound. */
	assert_true(condensed > 0);
	assert_true(f.phys.nr_blocks <= SPACE_MAP_CONDENSE_MIN_BLOCKS + 1 ||
		    f.phys.nr_recs * 100 < 3 * 250 * SPACE_MAP_CONDENSE_PCT);
	space_map_walk_blocks(f.sm, count_block, &walked);
	assert_int_equal(walked, f.phys.nr_blocks);
	/* Every block the allocator holds is the log's or deferred-free: nothing leaked. */
	{
		u64 used = 0;

		for (u64 i = 1; i < DEV_BLOCKS; i++)
			used += f.t.used[i];
		assert_int_equal(used, f.phys.nr_blocks);
	}
	fix_fini(&f);
}

static int mark_block(void *arg, u64 blocknr, u64 birth)
{
	((u8 *)arg)[blocknr] = 1;
	return 0;
}

/* A crash after the txg's blocks were written but before its table entry was committed. */
static void test_space_map__crash_keeps_previous_map(void **state)
{
	u64 seed = seed_from_env() + 1;
	struct fix f;

	srandom((unsigned)seed);
	fix_init(&f, bdev_faulty_create((u64)DEV_BLOCKS * DDSNAP_BLOCK_SIZE, seed));
	for (int round = 0; round < 40; round++) {
		u8 before[MS_SIZE];
		struct space_map_phys old;

		random_txg(&f, 1 + (int)(random() % 30));
		sync_txg(&f, true);
		memcpy(before, f.model, MS_SIZE);
		old = f.phys;
		/* Txg T+1: written and flushed, but the uberblock naming it never lands. */
		random_txg(&f, 1 + (int)(random() % 30));
		sync_txg(&f, false);
		bdev_faulty_crash(f.bdev, true);
		reload_and_check(&f, before, &old);
		/* Reopen at T as the store would: a fresh cache, the allocator rebuilt from
		 * what T's table reaches; T+1 is redone. */
		space_map_close(f.sm);
		cache_destroy(f.cache);
		f.cache = cache_create(f.bdev, 64 * DDSNAP_BLOCK_SIZE);
		cache_set_synced_txg(f.cache, f.t.tx.txg - 1);
		f.t.tx.cache = f.cache;
		f.phys = old;
		memcpy(f.model, before, MS_SIZE);
		f.sm = space_map_open(f.cache, MS_START, MS_SIZE, &f.phys);
		{
			struct range_tree *rt = range_tree_create();

			assert_int_equal(space_map_load(f.sm, rt, NULL, 0), 0);
			range_tree_destroy(rt);
		}
		memset(f.t.used, 0, sizeof(f.t.used));
		f.t.used[0] = 1;
		f.t.nr_deferred = 0;
		space_map_walk_blocks(f.sm, mark_block, f.t.used);
	}
	fix_fini(&f);
}

static void test_space_map__validator_refuses_bad_structure(void **state)
{
	u8 *blk = calloc(1, DDSNAP_BLOCK_SIZE);
	struct space_map_block_disk *d = (void *)blk;
	char why[128];

	d->ms_start = cpu_to_le64(MS_START);
	d->ms_size = cpu_to_le64(MS_SIZE);
	d->nr_recs = cpu_to_le32(2);
	d->recs[0].start = cpu_to_le64(0);
	d->recs[0].run = cpu_to_le32(10);
	d->recs[0].type = SPACE_MAP_ALLOC;
	d->recs[1].start = cpu_to_le64(MS_SIZE - 1);
	d->recs[1].run = cpu_to_le32(1);
	d->recs[1].type = SPACE_MAP_FREE;
	block_seal(blk, &space_map_block_type, 7, 3);
	assert_int_equal(block_validate(blk, &space_map_block_type, 7, why, sizeof(why)), 0);

	/* Each corruption below is resealed, so only the structure validator can catch it. */
	d->recs[1].run = 0;
	block_seal(blk, &space_map_block_type, 7, 3);
	assert_int_equal(block_validate(blk, &space_map_block_type, 7, why, sizeof(why)), -EILSEQ);
	d->recs[1].run = cpu_to_le32(2); /* runs past the metaslab end */
	block_seal(blk, &space_map_block_type, 7, 3);
	assert_int_equal(block_validate(blk, &space_map_block_type, 7, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "outside"));
	d->recs[1].run = cpu_to_le32(1);
	d->recs[1].type = 3;
	block_seal(blk, &space_map_block_type, 7, 3);
	assert_int_equal(block_validate(blk, &space_map_block_type, 7, why, sizeof(why)), -EILSEQ);
	d->recs[1].type = SPACE_MAP_FREE;
	d->nr_recs = cpu_to_le32(SPACE_MAP_RECS_PER_BLOCK + 1);
	block_seal(blk, &space_map_block_type, 7, 3);
	assert_int_equal(block_validate(blk, &space_map_block_type, 7, why, sizeof(why)), -EILSEQ);
	d->nr_recs = cpu_to_le32(1); /* record 1 is now data after the last record */
	block_seal(blk, &space_map_block_type, 7, 3);
	assert_int_equal(block_validate(blk, &space_map_block_type, 7, why, sizeof(why)), -EILSEQ);
	d->nr_recs = cpu_to_le32(0);
	block_seal(blk, &space_map_block_type, 7, 3);
	assert_int_equal(block_validate(blk, &space_map_block_type, 7, why, sizeof(why)), -EILSEQ);
	d->nr_recs = cpu_to_le32(2);
	d->prev.blocknr = cpu_to_le64(7); /* points to itself */
	block_seal(blk, &space_map_block_type, 7, 3);
	assert_int_equal(block_validate(blk, &space_map_block_type, 7, why, sizeof(why)), -EILSEQ);
	d->prev.blocknr = 0;
	d->ms_size = 0;
	block_seal(blk, &space_map_block_type, 7, 3);
	assert_int_equal(block_validate(blk, &space_map_block_type, 7, why, sizeof(why)), -EILSEQ);
	free(blk);
}

/* A corrupt block on disk, resealed with a valid checksum, is refused by load. */
static void test_space_map__corrupt_block_valid_csum_refused(void **state)
{
	struct fix f;
	u8 *buf;
	char why[128] = "";
	struct space_map_block_disk *d;

	srandom(7);
	fix_init(&f, bdev_ram_create((u64)DEV_BLOCKS * DDSNAP_BLOCK_SIZE));
	for (int i = 0; i < 5; i++) {
		random_txg(&f, 20);
		sync_txg(&f, true);
	}
	reload_and_check(&f, f.model, &f.phys);
	if (posix_memalign((void **)&buf, BDEV_ALIGN, DDSNAP_BLOCK_SIZE))
		abort();
	assert_int_equal(
		bdev_read(f.bdev, buf, DDSNAP_BLOCK_SIZE, f.phys.tail.blocknr * DDSNAP_BLOCK_SIZE),
		0);
	d = (void *)buf;
	d->recs[0].start = cpu_to_le64(MS_SIZE); /* outside the metaslab */
	block_seal(buf, &space_map_block_type, f.phys.tail.blocknr, f.phys.tail.birth_txg);
	assert_int_equal(
		bdev_write(f.bdev, buf, DDSNAP_BLOCK_SIZE, f.phys.tail.blocknr * DDSNAP_BLOCK_SIZE),
		0);
	{
		struct cache *c = cache_create(f.bdev, 16 * DDSNAP_BLOCK_SIZE);
		struct space_map *sm = space_map_open(c, MS_START, MS_SIZE, &f.phys);
		struct range_tree *rt = range_tree_create();

		assert_int_equal(space_map_load(sm, rt, why, sizeof(why)), -EILSEQ);
		assert_non_null(strstr(why, "outside"));
		assert_int_equal(range_tree_space(rt), 0);
		range_tree_destroy(rt);
		space_map_close(sm);
		cache_destroy(c);
	}
	free(buf);
	fix_fini(&f);
}

/* Records that are each valid but contradict each other, and a table entry that lies. */
static void test_space_map__inconsistent_log_refused(void **state)
{
	struct fix f;
	char why[128] = "";
	struct space_map_phys lie;

	fix_init(&f, bdev_ram_create((u64)DEV_BLOCKS * DDSNAP_BLOCK_SIZE));
	assert_int_equal(space_map_append(f.sm, &f.t.tx, SPACE_MAP_ALLOC, 10, 5), 0);
	assert_int_equal(space_map_append(f.sm, &f.t.tx, SPACE_MAP_ALLOC, 12, 1), 0);
	space_map_seal(f.sm, &f.t.tx, &f.phys);
	assert_int_equal(cache_sync(f.cache, f.t.tx.txg), 0);
	ttx_synced(&f.t);
	{
		struct cache *c = cache_create(f.bdev, 16 * DDSNAP_BLOCK_SIZE);
		struct space_map *sm = space_map_open(c, MS_START, MS_SIZE, &f.phys);
		struct range_tree *rt = range_tree_create();

		assert_int_equal(space_map_load(sm, rt, why, sizeof(why)), -EILSEQ);
		assert_non_null(strstr(why, "double alloc"));
		space_map_close(sm);
		/* The same chain under an entry that claims a different count or checksum. */
		lie = f.phys;
		lie.alloc = 5;
		lie.nr_recs = 3;
		sm = space_map_open(c, MS_START, MS_SIZE, &lie);
		range_tree_clear(rt);
		assert_int_equal(space_map_load(sm, rt, why, sizeof(why)), -EILSEQ);
		space_map_close(sm);
		lie = f.phys;
		lie.tail.csum ^= 1;
		sm = space_map_open(c, MS_START, MS_SIZE, &lie);
		range_tree_clear(rt);
		assert_int_equal(space_map_load(sm, rt, why, sizeof(why)), -EILSEQ);
		space_map_close(sm);
		/* And a log that belongs to another metaslab. */
		sm = space_map_open(c, MS_START + 1, MS_SIZE, &f.phys);
		range_tree_clear(rt);
		assert_int_equal(space_map_load(sm, rt, why, sizeof(why)), -EILSEQ);
		space_map_close(sm);
		range_tree_destroy(rt);
		cache_destroy(c);
	}
	fix_fini(&f);
}

static void test_space_map__phys_unpack(void **state)
{
	struct space_map_phys p = {.tail = {.blocknr = 5, .birth_txg = 2, .csum = 9},
				   .nr_blocks = 2,
				   .nr_recs = 300,
				   .alloc = 17},
			      q;
	struct space_map_phys_disk d;

	space_map_phys_pack(&d, &p);
	assert_int_equal(space_map_phys_unpack(&q, &d), 0);
	assert_true(q.tail.blocknr == 5 && q.tail.birth_txg == 2 && q.tail.csum == 9);
	assert_true(q.nr_blocks == 2 && q.nr_recs == 300 && q.alloc == 17);
	p.nr_recs = 2 * SPACE_MAP_RECS_PER_BLOCK + 1; /* cannot fit in two blocks */
	space_map_phys_pack(&d, &p);
	assert_int_equal(space_map_phys_unpack(&q, &d), -EILSEQ);
	p.nr_recs = 1; /* fewer records than blocks */
	space_map_phys_pack(&d, &p);
	assert_int_equal(space_map_phys_unpack(&q, &d), -EILSEQ);
	p = (struct space_map_phys){.alloc = 3}; /* empty log with allocations */
	space_map_phys_pack(&d, &p);
	assert_int_equal(space_map_phys_unpack(&q, &d), -EILSEQ);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_space_map__random_txgs_reload_condense),
		cmocka_unit_test(test_space_map__crash_keeps_previous_map),
		cmocka_unit_test(test_space_map__validator_refuses_bad_structure),
		cmocka_unit_test(test_space_map__corrupt_block_valid_csum_refused),
		cmocka_unit_test(test_space_map__inconsistent_log_refused),
		cmocka_unit_test(test_space_map__phys_unpack),
	};

	return cmocka_run_group_tests_name("space_map", tests, NULL, NULL);
}
