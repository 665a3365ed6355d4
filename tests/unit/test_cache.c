// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_cache.c - the metadata block cache over the faulty RAM device: validation on read
 * (corrupt, misdirected, stale, wrong type, valid checksum with bad structure), nothing
 * reaching the device before cache_sync, coalesced writes, the memory budget and LRU order,
 * seal-before-sync, forget, sync errors, concurrent readers, and the heap a full cache costs.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <pthread.h>
#include <malloc.h>
#include <cmocka.h>
#include "blk/cache.h"
#include "lib/testblk.h"

#define NBLOCKS 512
#define BS	DDSNAP_BLOCK_SIZE

/* Writes testblk @blocknr sealed for @as_blocknr in @txg straight to the device. */
static void put_raw(struct bdev *b, u64 blocknr, u64 as_blocknr, u64 txg, u64 base)
{
	void *p = NULL;

	if (posix_memalign(&p, BDEV_ALIGN, BS))
		abort();
	memset(p, 0, BS);
	testblk_fill(p, 5, base);
	block_seal(p, &testblk_type, as_blocknr, txg);
	assert_int_equal(bdev_write(b, p, BS, blocknr * BS), 0);
	free(p);
}

static void test_cache__new_sync_read_back(void **state)
{
	struct bdev *b = bdev_faulty_create(NBLOCKS * BS, 1);
	struct cache *c = cache_create(b, 64 * BS);
	struct bdev_counters ctr;
	struct cache_stats st;
	struct cblock *cb;

	for (u64 i = 10; i < 20; i++) {
		cb = cache_new(c, &testblk_type, i);
		testblk_fill(cb->data, 3, i * 100);
		cache_put(c, cb);
	}
	bdev_faulty_counters(b, &ctr);
	assert_int_equal(ctr.writes, 0); /* nothing reaches the device before sync */
	cache_stats(c, &st);
	assert_int_equal(st.dirty, 10);
	assert_int_equal(cache_sync(c, 7), 0);
	bdev_faulty_counters(b, &ctr);
	assert_int_equal(ctr.writes, 1); /* ten consecutive blocks, one request */
	assert_int_equal(ctr.bytes_written, 10 * BS);
	cache_stats(c, &st);
	assert_int_equal(st.dirty, 0);
	assert_int_equal(st.writes, 1);
	assert_int_equal(bdev_flush(b), 0);
	cache_destroy(c);

	/* A fresh cache reads and validates what was written. */
	c = cache_create(b, 64 * BS);
	for (u64 i = 10; i < 20; i++) {
		assert_int_equal(cache_read(c, &testblk_type, i, 7, &cb, NULL, 0), 0);
		assert_int_equal(testblk_first(cb->data), i * 100);
		assert_int_equal(block_txg(cb->data), 7);
		cache_put(c, cb);
	}
	assert_int_equal(cache_read(c, &testblk_type, 10, 0, &cb, NULL, 0), 0);
	cache_put(c, cb);
	cache_stats(c, &st);
	assert_int_equal(st.misses, 10);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.reads, 10);
	cache_destroy(c);
	bdev_close(b);
}

/*
 * The heap a full cache costs is about its blocks: buffers come in slabs, not one aligned
 * allocation each (which cost a page of padding per block: the server held twice its
 * cache), and a block evicted and read again reuses its entry, so a second pass over more
 * blocks than the budget allocates nothing beyond the slab the one block over budget (evicted
 * after the insertion) may need.
 */
static void test_cache__memory_is_the_blocks(void **state)
{
	const u64 budget = 256, n = 2 * budget;
	struct bdev *b = bdev_faulty_create((n + 1) * BS, 9);
	struct cache *c;
	struct cblock *cb;
	size_t before, full;

	for (u64 i = 0; i < n; i++)
		put_raw(b, i, i, 3, i);
	c = cache_create(b, budget * BS);
	before = mallinfo2().arena + mallinfo2().hblkhd;
	for (u64 i = 0; i < budget; i++) {
		assert_int_equal(cache_read(c, &testblk_type, i, 3, &cb, NULL, 0), 0);
		cache_put(c, cb);
	}
	full = mallinfo2().arena + mallinfo2().hblkhd;
	assert_true(full - before < budget * BS * 3 / 2);
	for (int pass = 0; pass < 2; pass++)
		for (u64 i = 0; i < n; i++) {
			assert_int_equal(cache_read(c, &testblk_type, i, 3, &cb, NULL, 0), 0);
			assert_int_equal(testblk_first(cb->data), i);
			cache_put(c, cb);
		}
	assert_true(mallinfo2().arena + mallinfo2().hblkhd - before < budget * BS * 3 / 2);
	cache_destroy(c);
	bdev_close(b);
}

/*
 * A readahead run: one request for consecutive blocks; each valid one cached, a corrupt one
 * left out (the later read meets and refuses it), a cached one kept as it is, and the txg a
 * parent expects still checked when the block is used.
 */
static void test_cache__read_run(void **state)
{
	struct bdev *b = bdev_faulty_create(NBLOCKS * BS, 10);
	struct cache *c = cache_create(b, 64 * BS);
	struct bdev_counters ctr0, ctr;
	struct cache_stats st;
	struct cblock *cb;

	for (u64 i = 100; i < 110; i++)
		put_raw(b, i, i, 4, i * 10);
	put_raw(b, 105, 99, 4, 0); /* misdirected: claims to be block 99 */
	assert_int_equal(cache_read(c, &testblk_type, 102, 4, &cb, NULL, 0), 0);
	cache_put(c, cb);
	bdev_faulty_counters(b, &ctr0);
	assert_int_equal(cache_read_run(c, &testblk_type, 100, 10), 0);
	bdev_faulty_counters(b, &ctr);
	assert_int_equal(ctr.reads - ctr0.reads, 1);
	cache_stats(c, &st);
	assert_int_equal(st.cached, 9);
	for (u64 i = 100; i < 110; i++) {
		int r = cache_read(c, &testblk_type, i, 4, &cb, NULL, 0);

		if (i == 105) {
			assert_int_equal(r, -ENOTBLK);
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(testblk_first(cb->data), i * 10);
		cache_put(c, cb);
	}
	bdev_faulty_counters(b, &ctr);
	assert_int_equal(ctr.reads - ctr0.reads, 2); /* the run, and 105 again */
	/* A parent expecting another txg: -ESTALE from the cached copy too. */
	assert_int_equal(cache_read(c, &testblk_type, 107, 5, &cb, NULL, 0), -ESTALE);
	assert_int_equal(cache_read_run(c, &testblk_type, NBLOCKS - 2, 4), -EINVAL);
	assert_int_equal(cache_read_run(c, &testblk_type, 0, CACHE_RUN_MAX + 1), -EINVAL);
	cache_destroy(c);
	bdev_close(b);
}

static void test_cache__refuses_bad_blocks(void **state)
{
	struct bdev *b = bdev_faulty_create(NBLOCKS * BS, 2);
	struct cache *c = cache_create(b, 64 * BS);
	struct cblock *cb = NULL;
	struct cache_stats st;
	char why[160];

	put_raw(b, 3, 3, 5, 0);
	put_raw(b, 4, 9, 5, 0); /* misdirected: sealed for 9, sitting at 4 */
	put_raw(b, 6, 6, 5, 0);

	assert_int_equal(cache_read(c, &testblk_type, 4, 0, &cb, why, sizeof(why)), -ENOTBLK);
	assert_non_null(strstr(why, "block 9 read from 4"));
	/* Never written: zeros, bad magic. */
	assert_int_equal(cache_read(c, &testblk_type, 5, 0, &cb, why, sizeof(why)), -EILSEQ);
	/* Stale: the pointer expects txg 6, the disk has txg 5 (a lost write). */
	assert_int_equal(cache_read(c, &testblk_type, 3, 6, &cb, why, sizeof(why)), -ESTALE);
	assert_non_null(strstr(why, "expects 6"));
	/* Wrong type. */
	assert_int_equal(cache_read(c, &testblk_other_type, 3, 0, &cb, NULL, 0), -EILSEQ);
	/* Beyond the device. */
	assert_int_equal(cache_read(c, &testblk_type, NBLOCKS, 0, &cb, why, sizeof(why)), -EILSEQ);
	/* A bit flip on the platter. */
	bdev_faulty_corrupt(b, 6 * BS + 100, 1);
	assert_int_equal(cache_read(c, &testblk_type, 6, 5, &cb, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "checksum"));
	cache_stats(c, &st);
	assert_int_equal(st.cached, 0); /* nothing bad was kept */

	/* The good block reads fine, and once cached a type mismatch is still refused. */
	assert_int_equal(cache_read(c, &testblk_type, 3, 5, &cb, NULL, 0), 0);
	cache_put(c, cb);
	assert_int_equal(cache_read(c, &testblk_other_type, 3, 0, &cb, why, sizeof(why)), -EILSEQ);
	assert_int_equal(cache_read(c, &testblk_type, 3, 4, &cb, NULL, 0), -ESTALE);
	cache_destroy(c);
	bdev_close(b);
}

static void test_cache__valid_checksum_bad_structure(void **state)
{
	struct bdev *b = bdev_faulty_create(NBLOCKS * BS, 3);
	struct cache *c = cache_create(b, 64 * BS);
	struct cblock *cb = NULL;
	struct cache_stats st;
	char why[160];

	cb = cache_new(c, &testblk_type, 8);
	testblk_fill(cb->data, 10, 0);
	((struct testblk_disk *)cb->data)->items[3] = cpu_to_le64(1000); /* out of order */
	cache_put(c, cb);
	assert_int_equal(cache_sync(c, 2), 0);
	cache_forget(c, 8);
	/* The checksum is valid (the cache sealed it); the structure is not. */
	assert_int_equal(cache_read(c, &testblk_type, 8, 2, &cb, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "out of order"));
	assert_int_equal(cache_read(c, &testblk_type, 8, 2, &cb, NULL, 0), -EILSEQ);
	cache_stats(c, &st);
	assert_int_equal(st.cached, 0);
	assert_int_equal(st.misses, 2); /* refused blocks are not cached: read again each time */
	cache_destroy(c);
	bdev_close(b);
}

static void test_cache__budget_and_lru(void **state)
{
	enum { BUDGET = 16 };
	struct bdev *b = bdev_faulty_create(NBLOCKS * BS, 4);
	struct cache *c = cache_create(b, BUDGET * BS);
	struct cblock *cb, *held[BUDGET + 8];
	struct cache_stats st;

	for (u64 i = 0; i < 200; i++)
		put_raw(b, i, i, 1, i);
	for (u64 i = 0; i < 200; i++) {
		assert_int_equal(cache_read(c, &testblk_type, i, 1, &cb, NULL, 0), 0);
		cache_put(c, cb);
		/* Keep block 0 hot: it must never be evicted. */
		assert_int_equal(cache_read(c, &testblk_type, 0, 1, &cb, NULL, 0), 0);
		cache_put(c, cb);
		cache_stats(c, &st);
		assert_true(st.cached <= BUDGET);
	}
	cache_stats(c, &st);
	assert_int_equal(st.budget, BUDGET);
	assert_int_equal(st.over_budget, 0);
	assert_int_equal(st.misses, 200);
	cache_reset_stats(c);
	assert_int_equal(cache_read(c, &testblk_type, 0, 1, &cb, NULL, 0), 0); /* hot: a hit */
	cache_put(c, cb);
	assert_int_equal(cache_read(c, &testblk_type, 199, 1, &cb, NULL, 0), 0); /* recent: hit */
	cache_put(c, cb);
	assert_int_equal(cache_read(c, &testblk_type, 100, 1, &cb, NULL, 0), 0); /* evicted */
	cache_put(c, cb);
	cache_stats(c, &st);
	assert_int_equal(st.hits, 2);
	assert_int_equal(st.misses, 1);

	/* Referenced blocks cannot be evicted: the cache grows, and says so. */
	for (u64 i = 0; i < BUDGET + 8; i++)
		assert_int_equal(cache_read(c, &testblk_type, 100 + i, 1, &held[i], NULL, 0), 0);
	cache_stats(c, &st);
	assert_int_equal(st.cached, BUDGET + 8);
	assert_true(st.over_budget > 0);
	for (u64 i = 0; i < BUDGET + 8; i++)
		cache_put(c, held[i]);
	cache_stats(c, &st);
	assert_int_equal(st.cached, BUDGET); /* back within budget once released */

	/* Dirty blocks are not evicted either, and are not lost. */
	for (u64 i = 300; i < 300 + 2 * BUDGET; i++) {
		cb = cache_new(c, &testblk_type, i);
		testblk_fill(cb->data, 1, i);
		cache_put(c, cb);
	}
	cache_stats(c, &st);
	assert_int_equal(st.dirty, 2 * BUDGET);
	assert_int_equal(cache_sync(c, 2), 0);
	cache_stats(c, &st);
	assert_true(st.cached <= BUDGET);
	for (u64 i = 300; i < 300 + 2 * BUDGET; i++) {
		assert_int_equal(cache_read(c, &testblk_type, i, 2, &cb, NULL, 0), 0);
		assert_int_equal(testblk_first(cb->data), i);
		cache_put(c, cb);
	}
	cache_destroy(c);
	bdev_close(b);
}

static void test_cache__shadow_seal_dirty(void **state)
{
	struct bdev *b = bdev_faulty_create(NBLOCKS * BS, 5);
	struct cache *c = cache_create(b, 64 * BS);
	struct cblock *old, *new, *cb;
	u32 csum;

	put_raw(b, 1, 1, 3, 50);
	cache_set_synced_txg(c, 3);
	assert_int_equal(cache_read(c, &testblk_type, 1, 3, &old, NULL, 0), 0);
	new = cache_shadow(c, old, 2);
	cache_put(c, old);
	assert_int_equal(testblk_first(new->data), 50);
	testblk_fill(new->data, 2, 60);
	/* An unsealed dirty block belongs to the open txg: a pointer from txg 3 is stale. */
	assert_int_equal(cache_read(c, &testblk_type, 2, 3, &cb, NULL, 0), -ESTALE);
	assert_int_equal(cache_read(c, &testblk_type, 2, 4, &cb, NULL, 0), 0);
	cache_put(c, cb);
	csum = cache_seal(c, new, 4);
	assert_int_equal(block_csum(new->data), csum);
	/* Changing it again means dirtying it again (and resealing). */
	cache_dirty(c, new);
	testblk_fill(new->data, 3, 70);
	csum = cache_seal(c, new, 4);
	cache_put(c, new);
	assert_int_equal(cache_sync(c, 4), 0);
	cache_forget(c, 2);
	assert_int_equal(cache_read(c, &testblk_type, 2, 4, &cb, NULL, 0), 0);
	assert_int_equal(block_csum(cb->data), csum);
	assert_int_equal(testblk_first(cb->data), 70);
	cache_put(c, cb);
	/* The original is untouched (copy-on-write). */
	assert_int_equal(cache_read(c, &testblk_type, 1, 3, &cb, NULL, 0), 0);
	assert_int_equal(testblk_first(cb->data), 50);
	cache_put(c, cb);
	cache_destroy(c);
	bdev_close(b);
}

static void test_cache__forget_and_reuse(void **state)
{
	struct bdev *b = bdev_faulty_create(NBLOCKS * BS, 6);
	struct cache *c = cache_create(b, 64 * BS);
	struct bdev_counters ctr;
	struct cblock *cb;

	cb = cache_new(c, &testblk_type, 5);
	testblk_fill(cb->data, 1, 1);
	cache_put(c, cb);
	cache_forget(c, 5); /* freed in the txg that allocated it: never written */
	assert_int_equal(cache_sync(c, 1), 0);
	bdev_faulty_counters(b, &ctr);
	assert_int_equal(ctr.writes, 0);

	/* A stale clean copy is replaced when the address is allocated again. */
	cb = cache_new(c, &testblk_type, 6);
	testblk_fill(cb->data, 1, 1);
	cache_put(c, cb);
	assert_int_equal(cache_sync(c, 2), 0);
	cb = cache_new(c, &testblk_type, 6);
	assert_int_equal(testblk_first(cb->data), ~0ULL); /* zeroed */
	testblk_fill(cb->data, 1, 9);
	cache_put(c, cb);
	assert_int_equal(cache_sync(c, 3), 0);
	cache_forget(c, 6);
	assert_int_equal(cache_read(c, &testblk_type, 6, 3, &cb, NULL, 0), 0);
	assert_int_equal(testblk_first(cb->data), 9);
	cache_put(c, cb);
	cache_destroy(c);
	bdev_close(b);
}

static void test_cache__sync_error_keeps_dirty(void **state)
{
	struct bdev *b = bdev_faulty_create(NBLOCKS * BS, 7);
	struct cache *c = cache_create(b, 64 * BS);
	struct cache_stats st;
	struct cblock *cb;

	for (u64 i = 0; i < 4; i++) {
		cb = cache_new(c, &testblk_type, 10 * i); /* not adjacent: four writes */
		testblk_fill(cb->data, 1, i);
		cache_put(c, cb);
	}
	bdev_faulty_fail_write(b, 3);
	assert_int_equal(cache_sync(c, 1), -EIO);
	cache_stats(c, &st);
	assert_int_equal(st.dirty, 4);
	assert_int_equal(cache_sync(c, 1), 0);
	assert_int_equal(bdev_flush(b), 0);
	bdev_faulty_crash(b, false);
	cache_destroy(c);
	c = cache_create(b, 64 * BS);
	for (u64 i = 0; i < 4; i++) {
		assert_int_equal(cache_read(c, &testblk_type, 10 * i, 1, &cb, NULL, 0), 0);
		cache_put(c, cb);
	}
	cache_destroy(c);
	bdev_close(b);
}

static void test_cache__unflushed_sync_lost_on_crash(void **state)
{
	struct bdev *b = bdev_faulty_create(NBLOCKS * BS, 8);
	struct cache *c = cache_create(b, 64 * BS);
	struct cblock *cb;

	cb = cache_new(c, &testblk_type, 3);
	testblk_fill(cb->data, 1, 1);
	cache_put(c, cb);
	assert_int_equal(cache_sync(c, 1), 0);
	bdev_faulty_crash(b, false); /* cache_sync does not flush */
	cache_destroy(c);
	c = cache_create(b, 64 * BS);
	assert_int_equal(cache_read(c, &testblk_type, 3, 1, &cb, NULL, 0), -EILSEQ);
	cache_destroy(c);
	bdev_close(b);
}

struct reader_arg {
	struct cache *c;
	unsigned seed;
	int errors;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;

	for (int i = 0; i < 20000; i++) {
		u64 n = (u64)rand_r(&a->seed) % 64;
		struct cblock *cb;

		if (cache_read(a->c, &testblk_type, n, 1, &cb, NULL, 0) ||
		    testblk_first(cb->data) != n * 3) {
			a->errors++;
			continue;
		}
		cache_put(a->c, cb);
	}
	return NULL;
}

static void test_cache__concurrent_readers(void **state)
{
	struct bdev *b = bdev_faulty_create(NBLOCKS * BS, 9);
	struct cache *c = cache_create(b, 16 * BS); /* small: constant eviction */
	struct reader_arg args[4];
	pthread_t t[4];
	struct cache_stats st;

	for (u64 i = 0; i < 64; i++)
		put_raw(b, i, i, 1, i * 3);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct reader_arg){.c = c, .seed = (unsigned)i + 1};
		assert_int_equal(pthread_create(&t[i], NULL, reader, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(args[i].errors, 0);
	}
	cache_stats(c, &st);
	assert_int_equal(st.hits + st.misses, 80000);
	assert_true(st.cached <= 16);
	cache_destroy(c);
	bdev_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache__new_sync_read_back),
		cmocka_unit_test(test_cache__memory_is_the_blocks),
		cmocka_unit_test(test_cache__read_run),
		cmocka_unit_test(test_cache__refuses_bad_blocks),
		cmocka_unit_test(test_cache__valid_checksum_bad_structure),
		cmocka_unit_test(test_cache__budget_and_lru),
		cmocka_unit_test(test_cache__shadow_seal_dirty),
		cmocka_unit_test(test_cache__forget_and_reuse),
		cmocka_unit_test(test_cache__sync_error_keeps_dirty),
		cmocka_unit_test(test_cache__unflushed_sync_lost_on_crash),
		cmocka_unit_test(test_cache__concurrent_readers),
	};

	return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
