// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_store.c - labels, the uberblock ring, transaction groups and crash safety.
 *
 * The crash test runs random B+tree workloads (inserts, overwrites, deletes) with txg syncs
 * on the faulty device, injects a fault at a random write (power cut, torn write, failed
 * write), crashes (dropping or randomly keeping unflushed sectors), reopens, and requires
 * that the store holds exactly the state of the last txg whose sync returned 0 (or of the
 * txg whose sync was cut short, if its uberblock made it), that `check` passes, and that the
 * store keeps working.  Seeds are printed; STORE_CRASH_SEED=<seed> replays one iteration,
 * STORE_CRASH_ITERS=<n> changes the count.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "pdata/btree.h"
#include "snap/engine.h"
#include "store/store.h"
#include "store/store_check.h"
#include "pdata/treewalk.h"

#define MB (1024ULL * 1024)

static struct store_config cfg_of(struct bdev *snap, struct bdev *meta)
{
	return (struct store_config){
		.snapstore = snap,
		.metadev = meta,
		.cache_bytes = 1 * MB,
		.no_sync_thread = true,
	};
}

static struct store *open_ok(struct bdev *snap, struct bdev *meta)
{
	struct store_config cfg = cfg_of(snap, meta);
	struct store *s = NULL;
	char why[256];
	int r = store_open(&cfg, &s, why, sizeof(why));

	if (r)
		fail_msg("store_open: %d %s", r, why);
	return s;
}

static void format_ok(struct bdev *snap, struct bdev *meta, u32 chunk_shift)
{
	struct store_format_params p = {.chunk_shift = chunk_shift, .origin_bytes = 64 * MB};
	char why[256];
	int r = store_format(snap, meta, &p, why, sizeof(why));

	if (r)
		fail_msg("store_format: %d %s", r, why);
}

static void check_ok(struct bdev *snap, struct bdev *meta)
{
	struct store_check_report rep;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int r = store_check(snap, meta, f, &rep);

	fclose(f);
	if (r || rep.errors)
		fail_msg("check: %d, %llu errors:\n%s", r, (unsigned long long)rep.errors, text);
	free(text);
}

/*----------------------------------------------------------------
 * Layout, label, ring
 *--------------------------------------------------------------*/

static void test_store__format_open_reopen(void **state)
{
	struct bdev *b = bdev_ram_create(16 * MB);
	struct label l, l2;
	struct uberblock ub;
	struct store *s;
	struct blkptr p = {0};
	struct tx *tx;

	format_ok(b, NULL, 0);
	assert_int_equal(label_read(b, 0, &l, NULL, 0), 0);
	assert_int_equal(label_read(b, 1, &l2, NULL, 0), 0);
	assert_true(label_same_store(&l, &l2));
	assert_int_equal(l.chunk_shift, LABEL_DEFAULT_CHUNK_SHIFT);
	assert_int_equal(l.ub_slots, LABEL_UB_SLOTS);
	assert_int_equal(l.metadev_blocks, 0);

	s = open_ok(b, NULL);
	assert_int_equal(store_synced_txg(s), 1);
	assert_int_equal(store_open_txg(s), 2);
	tx = store_tx_hold(s);
	assert_non_null(tx);
	assert_int_equal(tx->txg, 2);
	store_set_scalar(s, UB_SCALAR_GEN, 42);
	store_tx_release(s, tx);
	assert_int_equal(store_sync(s), 0);
	assert_int_equal(store_synced_txg(s), 2);
	assert_int_equal(store_sync(s), 0); /* an empty txg syncs too */
	assert_int_equal(store_synced_txg(s), 3);
	assert_int_equal(store_close(s), 0);

	s = open_ok(b, NULL);
	assert_int_equal(store_synced_txg(s), 3);
	assert_int_equal(store_scalar(s, UB_SCALAR_GEN), 42);
	store_root(s, UB_ROOT_EXCEPTIONS, &p);
	assert_int_equal(p.blocknr, 0);
	store_last_uberblock(s, &ub);
	assert_memory_equal(ub.uuid, l.uuid, 16);
	assert_int_equal(store_close(s), 0);
	check_ok(b, NULL);
	bdev_close(b);
}

static void test_store__format_refuses_bad_params(void **state)
{
	struct bdev *small = bdev_ram_create(256 * 1024), *b = bdev_ram_create(16 * MB);
	struct store_format_params p = {.origin_bytes = 64 * MB};
	char why[256];

	assert_int_equal(store_format(small, NULL, &p, why, sizeof(why)), -ENOSPC);
	assert_non_null(strstr(why, "too small"));
	p.chunk_shift = 11;
	assert_int_equal(store_format(b, NULL, &p, why, sizeof(why)), -EINVAL);
	p.chunk_shift = 21;
	assert_int_equal(store_format(b, NULL, &p, why, sizeof(why)), -EINVAL);
	p.chunk_shift = 20;
	p.origin_bytes = 1000; /* not a whole sector */
	assert_int_equal(store_format(b, NULL, &p, why, sizeof(why)), -EINVAL);
	p.origin_bytes = 64 * MB;
	/* 1 MiB chunks need room for at least LABEL_MIN_DATA_CHUNKS of them. */
	assert_int_equal(store_format(b, NULL, &p, why, sizeof(why)), -ENOSPC);
	p.chunk_shift = 19;
	assert_int_equal(store_format(b, NULL, &p, why, sizeof(why)), 0);
	bdev_close(small);
	bdev_close(b);
}

static void test_store__separate_metadev(void **state)
{
	struct bdev *snap = bdev_ram_create(32 * MB), *meta = bdev_ram_create(4 * MB);
	struct bdev *other = bdev_ram_create(4 * MB);
	struct store_config cfg;
	struct store *s = NULL;
	struct label l;
	char why[256];

	format_ok(snap, meta, 16);
	assert_int_equal(label_read(meta, -1, &l, NULL, 0), 0);
	assert_int_equal(l.role, LABEL_ROLE_METADEV);
	assert_true(l.meta_blocks > 0);
	assert_int_equal(l.data_start % 4, 0);
	/* The metadata device is required, and must be this store's. */
	cfg = cfg_of(snap, NULL);
	assert_int_equal(store_open(&cfg, &s, why, sizeof(why)), -EINVAL);
	cfg = cfg_of(snap, other);
	assert_int_equal(store_open(&cfg, &s, why, sizeof(why)), -ENODATA);
	cfg = cfg_of(meta, NULL);
	assert_int_equal(store_open(&cfg, &s, why, sizeof(why)), -EINVAL);
	s = open_ok(snap, meta);
	assert_ptr_equal(store_meta_bdev(s), meta);
	assert_int_equal(store_close(s), 0);
	check_ok(snap, meta);
	bdev_close(snap);
	bdev_close(meta);
	bdev_close(other);
}

/*
 * Setting a feature bit (store_set_features, the first provenance record): both
 * copies of both devices' labels get it, a reopen sees it, check is clean; a crash after
 * the metadata device's labels and before the snapstore's leaves a store that opens with the
 * bit (open takes a bit found on either device); a read-only store refuses.
 */
static void test_store__set_feature_bit(void **state)
{
	struct bdev *snap = bdev_ram_create(32 * MB), *meta = bdev_ram_create(4 * MB);
	struct store_config cfg;
	struct store *s;
	struct label l;
	char why[256];

	format_ok(snap, meta, 16);
	s = open_ok(snap, meta);
	assert_int_equal(store_label(s)->feature_ro_compat, 0);
	assert_int_equal(store_set_features(s, LABEL_FEATURE_RO_PROVENANCE, 0), 0);
	assert_int_equal(store_set_features(s, LABEL_FEATURE_RO_PROVENANCE, 0), 0);
	assert_int_equal(store_close(s), 0);
	for (int copy = 0; copy < 2; copy++) {
		assert_int_equal(label_read(snap, copy, &l, why, sizeof(why)), 0);
		assert_int_equal(l.feature_ro_compat, LABEL_FEATURE_RO_PROVENANCE);
		assert_int_equal(l.role, LABEL_ROLE_SNAPSTORE);
		assert_int_equal(label_read(meta, copy, &l, why, sizeof(why)), 0);
		assert_int_equal(l.feature_ro_compat, LABEL_FEATURE_RO_PROVENANCE);
		assert_int_equal(l.role, LABEL_ROLE_METADEV);
	}
	s = open_ok(snap, meta);
	assert_int_equal(store_label(s)->feature_ro_compat, LABEL_FEATURE_RO_PROVENANCE);
	assert_int_equal(store_close(s), 0);
	check_ok(snap, meta);

	/* the cut between the two devices: only the metadata device has the bit */
	format_ok(snap, meta, 16);
	assert_int_equal(label_read(meta, 0, &l, why, sizeof(why)), 0);
	l.feature_ro_compat = LABEL_FEATURE_RO_PROVENANCE;
	assert_int_equal(label_rewrite(meta, &l, LABEL_ROLE_METADEV), 0);
	s = open_ok(snap, meta);
	assert_int_equal(store_label(s)->feature_ro_compat, LABEL_FEATURE_RO_PROVENANCE);
	assert_int_equal(store_close(s), 0);

	cfg = cfg_of(snap, meta);
	cfg.read_only = true;
	format_ok(snap, meta, 16);
	assert_int_equal(store_open(&cfg, &s, why, sizeof(why)), 0);
	assert_int_equal(store_set_features(s, LABEL_FEATURE_RO_PROVENANCE, 0), -EROFS);
	store_abandon(s);
	bdev_close(snap);
	bdev_close(meta);
}

static void test_store__not_a_store(void **state)
{
	struct bdev *b = bdev_ram_create(16 * MB);
	struct store_config cfg = cfg_of(b, NULL);
	struct store *s = NULL;
	char why[256];

	assert_int_equal(store_open(&cfg, &s, why, sizeof(why)), -ENODATA);
	bdev_close(b);
}

static void test_store__label_copy_survives(void **state)
{
	struct bdev *b = bdev_faulty_create(16 * MB, 1);
	struct store *s;
	struct label l;

	format_ok(b, NULL, 0);
	bdev_faulty_corrupt(b, 200, 8); /* the first copy */
	assert_int_equal(label_read(b, 0, &l, NULL, 0), -EILSEQ);
	assert_int_equal(label_read(b, 1, &l, NULL, 0), 0);
	s = open_ok(b, NULL);
	assert_int_equal(store_close(s), 0);
	bdev_close(b);
}

/* A grown device keeps its last label copy where initialize put it (doc/format.md). */
static void test_store__label_grown_device(void **state)
{
	struct bdev *b = bdev_ram_create(16 * MB), *grown = bdev_ram_create(24 * MB);
	void *buf = NULL;
	struct store *s;
	struct label l;

	format_ok(b, NULL, 0);
	assert_int_equal(posix_memalign(&buf, BDEV_ALIGN, 16 * MB), 0);
	assert_int_equal(bdev_read(b, buf, 16 * MB, 0), 0);
	assert_int_equal(bdev_write(grown, buf, 16 * MB, 0), 0);
	assert_int_equal(label_read(grown, 0, &l, NULL, 0), 0);
	assert_int_equal(label_copy1_blocknr(&l), 16 * MB / DDSNAP_BLOCK_SIZE - 1);
	assert_int_equal(label_read(grown, 1, &l, NULL, 0), 0);
	assert_int_equal(label_read(grown, -1, &l, NULL, 0), 0);
	check_ok(grown, NULL);
	s = open_ok(grown, NULL);
	assert_int_equal(store_close(s), 0);
	free(buf);
	bdev_close(grown);
	bdev_close(b);
}

/* An origin that is not a whole number of chunks is refused, naming a chunk size that fits. */
static void test_store__plan_partial_chunk(void **state)
{
	struct label l;
	char why[512];

	assert_int_equal(label_plan(&l, 64 * MB, 0, 16 * MB + 4096, 14, 0, 0, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "not a multiple of the chunk size 16384"));
	assert_non_null(strstr(why, "last 4096 bytes"));
	assert_non_null(strstr(why, "-c 4k"));
	assert_int_equal(label_plan(&l, 64 * MB, 0, 16 * MB + 512, 12, 0, 0, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "nor of 4 KiB"));
	assert_int_equal(label_plan(&l, 64 * MB, 0, 16 * MB + 4096, 12, 0, 0, why, sizeof(why)), 0);
	assert_int_equal(
		label_plan(&l, 64 * MB, 0, 16 * MB + 64 * 1024, 20, 0, 0, why, sizeof(why)),
		-EINVAL);
	assert_non_null(strstr(why, "-c 64k"));
}

/*
 * A label from a newer format (a feature bit this code does not know, reserved bytes in
 * use): refused by its features with a message that says so, not reported as damage.
 */
static void test_store__label_unknown_feature(void **state)
{
	struct bdev *b = bdev_ram_create(16 * MB);
	struct label_disk *ld = NULL;
	struct store_config cfg = cfg_of(b, NULL);
	struct store *s = NULL;
	struct label l;
	char why[256];

	format_ok(b, NULL, 0);
	assert_int_equal(label_read(b, 0, &l, NULL, 0), 0);
	assert_int_equal(posix_memalign((void **)&ld, BDEV_ALIGN, sizeof(*ld)), 0);
	memset(ld, 0, sizeof(*ld));
	l.feature_incompat = 1ULL << 40;
	label_pack(ld, &l);
	ld->reserved[0] = 0x5a; /* a field of that newer format */
	for (int i = 0; i < 2; i++) {
		u64 at = i ? label_copy1_blocknr(&l) : 0;

		block_seal(ld, &label_block_type, at, 0);
		assert_int_equal(block_validate(ld, &label_block_type, at, why, sizeof(why)), 0);
		assert_int_equal(bdev_write(b, ld, sizeof(*ld), at * DDSNAP_BLOCK_SIZE), 0);
	}
	assert_int_equal(store_open(&cfg, &s, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "format features this ddsnap does not know"));
	assert_non_null(strstr(why, "incompat 0x10000000000"));
	/* Without the bit, the same reserved byte is damage. */
	l.feature_incompat = 0;
	label_pack(ld, &l);
	ld->reserved[0] = 0x5a;
	block_seal(ld, &label_block_type, 0, 0);
	assert_int_equal(block_validate(ld, &label_block_type, 0, why, sizeof(why)), -EILSEQ);
	free(ld);
	bdev_close(b);
}

/* Valid checksums over impossible contents: the structure validators refuse them. */
static void test_store__label_uberblock_structure(void **state)
{
	struct bdev *b = bdev_ram_create(16 * MB);
	struct label l, bad;
	struct label_disk *ld = calloc(1, sizeof(*ld));
	struct uberblock_disk *ud = calloc(1, sizeof(*ud));
	char why[160];

	format_ok(b, NULL, 0);
	assert_int_equal(label_read(b, 0, &l, NULL, 0), 0);

	bad = l;
	bad.log_start = l.ub_start + 1; /* the log over the uberblock ring */
	label_pack(ld, &bad);
	block_seal(ld, &label_block_type, 0, 0);
	assert_int_equal(block_validate(ld, &label_block_type, 0, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "overlaps"));

	bad = l;
	bad.data_blocks = l.snapstore_blocks; /* past the end of the device */
	label_pack(ld, &bad);
	block_seal(ld, &label_block_type, 0, 0);
	assert_int_equal(block_validate(ld, &label_block_type, 0, why, sizeof(why)), -EILSEQ);

	bad = l;
	bad.chunk_shift = 21;
	label_pack(ld, &bad);
	block_seal(ld, &label_block_type, 0, 0);
	assert_int_equal(block_validate(ld, &label_block_type, 0, why, sizeof(why)), -EILSEQ);

	label_pack(ld, &l);
	ld->reserved[100] = 1;
	block_seal(ld, &label_block_type, 0, 0);
	assert_int_equal(block_validate(ld, &label_block_type, 0, why, sizeof(why)), -EILSEQ);

	/* A uberblock with a spare root in use, or a root born after it. */
	{
		struct uberblock ub = {.txg = 5};

		ub.roots[6].blocknr = 100;
		uberblock_pack(ud, &ub);
		block_seal(ud, &uberblock_block_type, 3, 5);
		assert_int_equal(block_validate(ud, &uberblock_block_type, 3, why, sizeof(why)),
				 -EILSEQ);
		assert_non_null(strstr(why, "spare root"));
		memset(&ub, 0, sizeof(ub));
		ub.txg = 5;
		ub.roots[UB_ROOT_EXCEPTIONS] = (struct blkptr){.blocknr = 100, .birth_txg = 6};
		uberblock_pack(ud, &ub);
		block_seal(ud, &uberblock_block_type, 3, 5);
		assert_int_equal(block_validate(ud, &uberblock_block_type, 3, why, sizeof(why)),
				 -EILSEQ);
		ub.roots[UB_ROOT_EXCEPTIONS].birth_txg = 5;
		uberblock_pack(ud, &ub);
		block_seal(ud, &uberblock_block_type, 3, 5);
		assert_int_equal(block_validate(ud, &uberblock_block_type, 3, why, sizeof(why)), 0);
	}
	free(ld);
	free(ud);
	bdev_close(b);
}

static void test_store__newest_valid_uberblock_wins(void **state)
{
	struct bdev *b = bdev_faulty_create(16 * MB, 2);
	struct store *s;
	struct label l;
	struct tx *tx;

	format_ok(b, NULL, 0);
	assert_int_equal(label_read(b, -1, &l, NULL, 0), 0);
	s = open_ok(b, NULL);
	for (u64 i = 0; i < 2 * LABEL_UB_SLOTS + 3; i++) {
		tx = store_tx_hold(s);
		store_set_scalar(s, UB_SCALAR_GEN, 100 + i);
		store_tx_release(s, tx);
		assert_int_equal(store_sync(s), 0);
	}
	assert_int_equal(store_synced_txg(s), 2 * LABEL_UB_SLOTS + 4);
	assert_int_equal(store_close(s), 0);

	/* Damage the newest uberblock: the one before it wins, with its own scalars. */
	bdev_faulty_corrupt(
		b, uberblock_slot_blocknr(&l, 2 * LABEL_UB_SLOTS + 4) * DDSNAP_BLOCK_SIZE + 700, 4);
	s = open_ok(b, NULL);
	assert_int_equal(store_synced_txg(s), 2 * LABEL_UB_SLOTS + 3);
	assert_int_equal(store_scalar(s, UB_SCALAR_GEN), 100 + 2 * LABEL_UB_SLOTS + 1);
	/* The next sync reuses txg 2*slots+4's number and slot, cleanly. */
	assert_int_equal(store_sync(s), 0);
	assert_int_equal(store_close(s), 0);
	s = open_ok(b, NULL);
	assert_int_equal(store_synced_txg(s), 2 * LABEL_UB_SLOTS + 4);
	assert_int_equal(store_close(s), 0);
	bdev_close(b);
}

/*----------------------------------------------------------------
 * Allocation and txg mechanics
 *--------------------------------------------------------------*/

static void test_store__deferred_free(void **state)
{
	struct bdev *b = bdev_ram_create(16 * MB);
	struct store *s = open_ok((format_ok(b, NULL, 12), b), NULL);
	struct store_stats st0, st;
	struct tx *tx;
	u64 a, x[50];

	tx = store_tx_hold(s);
	assert_int_equal(tx_alloc_meta(tx, &a), 0);
	store_tx_release(s, tx);
	assert_int_equal(store_sync(s), 0);
	store_stats(s, &st0);
	assert_true(st0.meta_alloc >= 1); /* a, and the allocator's own blocks */

	tx = store_tx_hold(s);
	tx_free_meta(tx, a, 2); /* born in txg 2, freed in 3: deferred */
	store_stats(s, &st);
	assert_int_equal(st.meta_deferred, 1);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(tx_alloc_meta(tx, &x[i]), 0);
		assert_int_not_equal(x[i], a); /* not before txg 3 is durable */
	}
	/* Blocks born in the open txg are reusable at once. */
	for (int i = 0; i < 50; i++)
		tx_free_meta(tx, x[i], tx->txg);
	store_stats(s, &st);
	assert_int_equal(st.meta_deferred, 1);
	store_tx_release(s, tx);
	assert_int_equal(store_sync(s), 0);
	store_stats(s, &st);
	assert_int_equal(st.meta_deferred, 0);
	assert_int_equal(store_close(s), 0);
	/* Space maps persist: nothing allocated that nothing references (check finds leaks). */
	check_ok(b, NULL);
	bdev_close(b);
}

static void test_store__check_finds_leak(void **state)
{
	struct bdev *b = bdev_ram_create(16 * MB);
	struct store *s = open_ok((format_ok(b, NULL, 12), b), NULL);
	struct store_check_report rep;
	struct tx *tx;
	u64 a;

	tx = store_tx_hold(s);
	assert_int_equal(tx_alloc_meta(tx, &a), 0); /* allocated, never referenced */
	store_tx_release(s, tx);
	assert_int_equal(store_close(s), 0);
	assert_int_equal(store_check(b, NULL, NULL, &rep), 0);
	assert_int_equal(rep.errors, 1);
	assert_int_equal(rep.meta_allocated, rep.meta_referenced + 1);
	bdev_close(b);
}

static void test_store__sync_thread_timer_and_dirty_bound(void **state)
{
	struct bdev *b = bdev_ram_create(16 * MB);
	struct store_config cfg = cfg_of(b, NULL);
	struct store_stats st;
	struct store *s = NULL;
	struct btree *t = NULL;
	struct blkptr root = {0};
	struct tx *tx;
	u8 key[16] = {0}, val[16] = {0};

	format_ok(b, NULL, 12);
	cfg.no_sync_thread = false;
	cfg.txg_timeout_ms = 20;
	cfg.dirty_max_bytes = 8 * DDSNAP_BLOCK_SIZE;
	assert_int_equal(store_open(&cfg, &s, NULL, 0), 0);
	tx = store_tx_hold(s);
	store_set_scalar(s, UB_SCALAR_GEN, 7);
	store_tx_release(s, tx);
	for (int i = 0; i < 200 && store_synced_txg(s) < 2; i++)
		usleep(5000);
	assert_true(store_synced_txg(s) >= 2);
	store_stats(s, &st);
	assert_true(st.timer_syncs >= 1);

	/* Many dirty blocks at once (a tree of many leaves): the bound kicks a sync. */
	assert_int_equal(btree_open(&engine_exception_tree_type, store_cache(s), &root, &t), 0);
	tx = store_tx_hold(s);
	for (u64 i = 0; i < 3000; i++) {
		btree_put_le64(key, 0, i * 7919 % 100003);
		assert_int_equal(btree_insert(t, tx, key, val, BTREE_OVERWRITE), 0);
	}
	/* The tree must be synced by its owner; here the test is the owner, and it stops here. */
	btree_close(t);
	store_tx_release(s, tx);
	for (int i = 0; i < 200; i++) {
		store_stats(s, &st);
		if (st.dirty_syncs)
			break;
		usleep(5000);
	}
	assert_true(st.dirty_syncs >= 1);
	/* Without its owner's hook the tree's sync state is not consistent: do not check it. */
	store_close(s);
	bdev_close(b);
}

struct replayed {
	unsigned n;
	u64 txg;
	char payload[16];
};

static int count_replay(void *arg, struct tx *tx, const struct intent_log_record *rec)
{
	struct replayed *r = arg;

	r->n++;
	r->txg = tx->txg;
	memcpy(r->payload, rec->payload, MIN((size_t)rec->len, sizeof(r->payload) - 1));
	return 0;
}

static void test_store__intent_log_replay(void **state)
{
	struct bdev *b = bdev_faulty_create(16 * MB, 3);
	struct replayed rp = {0};
	struct store *s;
	struct tx *tx;
	char why[256];

	format_ok(b, NULL, 12);
	s = open_ok(b, NULL);
	assert_int_equal(store_open_log(s, count_replay, &rp, why, sizeof(why)), 0);
	assert_int_equal(rp.n, 0);
	tx = store_tx_hold(s);
	assert_int_equal(intent_log_commit(store_log(s), 7, tx->txg, "copyout", 7, 0, NULL), 0);
	store_tx_release(s, tx);
	/* Power cut before the txg syncs: the record is durable, the txg is not. */
	bdev_faulty_crash(b, false);
	store_abandon(s);

	s = open_ok(b, NULL);
	assert_int_equal(store_open_log(s, count_replay, &rp, why, sizeof(why)), 0);
	assert_int_equal(rp.n, 1);
	assert_string_equal(rp.payload, "copyout");
	assert_int_equal(rp.txg, store_open_txg(s)); /* replayed into the first open txg */
	assert_int_equal(store_sync(s), 0);
	assert_int_equal(store_close(s), 0);

	/* Once a txg after the record is durable, it is never replayed again. */
	memset(&rp, 0, sizeof(rp));
	s = open_ok(b, NULL);
	assert_int_equal(store_open_log(s, count_replay, &rp, why, sizeof(why)), 0);
	assert_int_equal(rp.n, 0);
	assert_int_equal(store_close(s), 0);
	check_ok(b, NULL);
	bdev_close(b);
}

/*----------------------------------------------------------------
 * Crash tests
 *--------------------------------------------------------------*/

/* The model: value (0 = absent) per key, over a small key space so deletes hit. */
#define NKEYS 600

struct owner {
	struct store *s;
	struct btree *t;
	u64 chunk_blocks;
};

static int owner_pre_sync(void *arg, struct tx *tx)
{
	struct owner *o = arg;
	struct blkptr root;
	int r = btree_sync(o->t, tx);

	if (r)
		return r;
	btree_root(o->t, &root);
	store_set_root(o->s, UB_ROOT_EXCEPTIONS, &root);
	return 0;
}

static int owner_open(struct owner *o, struct bdev *b, struct bdev *m)
{
	struct store_config cfg = cfg_of(b, m);
	struct store_hook h = {.pre_sync = owner_pre_sync, .arg = o};
	struct blkptr root;
	char why[256];
	int r;

	cfg.cache_bytes = 256 * 1024; /* small: evictions and re-reads happen */
	r = store_open(&cfg, &o->s, why, sizeof(why));
	if (r) {
		print_message("store_open: %s\n", why);
		return r;
	}
	o->chunk_blocks = label_chunk_blocks(store_label(o->s));
	store_root(o->s, UB_ROOT_EXCEPTIONS, &root);
	r = btree_open(&engine_exception_tree_type, store_cache(o->s), &root, &o->t);
	if (r) {
		store_close(o->s);
		return r;
	}
	store_add_hook(o->s, &h);
	return 0;
}

static void owner_close(struct owner *o)
{
	btree_close(o->t);
	store_close(o->s);
}

/* Compares the tree with @model exactly (every key, both ways). */
static void verify_model(struct btree *t, const u64 *model, u64 seed)
{
	struct btree_cursor c;
	u64 seen = 0, want = 0;
	int r;

	for (u64 k = 0; k < NKEYS; k++)
		want += model[k] != 0;
	btree_cursor_init(&c, t);
	for (r = btree_cursor_seek(&c, NULL, BTREE_FIRST); r == 0; r = btree_cursor_next(&c)) {
		u64 k = btree_get_le64(btree_cursor_key(&c), 0);
		u64 v = btree_get_le64(btree_cursor_value(&c), 1) + 1;

		if (k >= NKEYS || model[k] != v)
			fail_msg("seed %llu: key %llu has %llu, model %llu",
				 (unsigned long long)seed, (unsigned long long)k,
				 (unsigned long long)v,
				 (unsigned long long)(k < NKEYS ? model[k] : 0));
		seen++;
	}
	btree_cursor_fini(&c);
	if (r != -ENODATA)
		fail_msg("seed %llu: cursor error %d", (unsigned long long)seed, r);
	if (seen != want)
		fail_msg("seed %llu: %llu entries, model %llu", (unsigned long long)seed,
			 (unsigned long long)seen, (unsigned long long)want);
}

/*
 * One workload over a store: random ops in txgs; returns when the store failed or @nops
 * ran.  @committed follows every sync that returned 0; @attempt is the model of the txg
 * being synced when a sync fails, with its txg in *attempt_txg.
 */
static void run_workload(struct owner *o, u64 *rng, u64 *model, u64 *committed, u64 *committed_txg,
			 u64 *attempt, u64 *attempt_txg, int nops)
{
	u8 key[16], val[16], old[16];

	for (int i = 0; i < nops; i++) {
		u64 op = xorshift64(rng) % 100, k = xorshift64(rng) % NKEYS, start, n;
		struct tx *tx;
		int r;

		if (op < 4) {
			u64 txg = store_open_txg(o->s);

			memcpy(attempt, model, NKEYS * sizeof(u64));
			*attempt_txg = txg;
			if (store_sync(o->s))
				return;
			memcpy(committed, model, NKEYS * sizeof(u64));
			*committed_txg = txg;
			continue;
		}
		tx = store_tx_hold(o->s);
		if (!tx)
			return;
		btree_put_le64(key, 0, k);
		btree_put_le64(key, 1, 1);
		if (op < 70) {
			/* A copy-out: a new data chunk, its address in the entry; the old one freed. */
			r = metaslab_alloc_data(store_metaslab(o->s), 1, &start, &n);
			assert_int_equal(r, 0);
			btree_put_le64(val, 0, tx->txg);
			btree_put_le64(val, 1, start / o->chunk_blocks);
			r = btree_find(o->t, key, BTREE_EQ, NULL, old);
			if (!r)
				r = btree_insert(o->t, tx, key, val, BTREE_OVERWRITE);
			else if (r == -ENODATA)
				r = btree_insert(o->t, tx, key, val, BTREE_NOOVERWRITE);
			if (!r && model[k])
				assert_int_equal(
					metaslab_free_data(store_metaslab(o->s),
							   (model[k] - 1) * o->chunk_blocks, 1,
							   btree_get_le64(old, 0)),
					btree_get_le64(old, 0) == tx->txg);
			if (!r)
				model[k] = start / o->chunk_blocks + 1;
			else
				metaslab_free_data(store_metaslab(o->s), start, 1, tx->txg);
		} else {
			r = btree_delete(o->t, tx, key, old);
			if (r == -ENODATA) {
				assert_int_equal(model[k], 0);
				r = 0;
			} else if (!r) {
				assert_int_equal(btree_get_le64(old, 1) + 1, model[k]);
				metaslab_free_data(store_metaslab(o->s),
						   (model[k] - 1) * o->chunk_blocks, 1,
						   btree_get_le64(old, 0));
				model[k] = 0;
			}
		}
		store_tx_release(o->s, tx);
		/* Reads of blocks of the dead device's cache may fail; writes fail the txg. */
		if (r && r != -EIO && r != -EILSEQ && r != -ESTALE)
			fail_msg("op error %d", r);
		if (r)
			return;
	}
}

static void crash_iteration(u64 seed)
{
	/* Odd seeds: a separate metadata device; the fault goes to either device. */
	struct bdev *b = bdev_faulty_create(8 * MB, seed);
	struct bdev *m = (seed & 1) ? bdev_faulty_create(4 * MB, seed ^ 0x5a5a) : NULL;
	struct bdev *fd;
	u64 *model = calloc(NKEYS, sizeof(u64)), *committed = calloc(NKEYS, sizeof(u64));
	u64 *attempt = calloc(NKEYS, sizeof(u64));
	u64 rng = seed * 2654435761ULL + 1, committed_txg = 1, attempt_txg = 0, fault;
	struct uberblock ub;
	struct owner o;

	format_ok(b, m, 12);
	assert_int_equal(owner_open(&o, b, m), 0);
	/* Some committed history first, then the fault somewhere in what follows. */
	run_workload(&o, &rng, model, committed, &committed_txg, attempt, &attempt_txg,
		     (int)(xorshift64(&rng) % 300));
	assert_int_equal(store_failed(o.s), 0);
	fd = m && (xorshift64(&rng) % 4) ? m : b;
	fault = xorshift64(&rng) % 4;
	switch (fault) {
	case 0:
		bdev_faulty_die_after(fd, 1 + xorshift64(&rng) % 60);
		break;
	case 1:
		/* Power fails during a write: it lands torn and nothing after it lands. */
		fault = 1 + xorshift64(&rng) % 60;
		bdev_faulty_tear_write(fd, fault);
		bdev_faulty_die_after(fd, fault);
		break;
	case 2:
		bdev_faulty_fail_write(fd, 1 + xorshift64(&rng) % 60);
		break;
	default:
		break; /* a plain power cut at the end */
	}
	run_workload(&o, &rng, model, committed, &committed_txg, attempt, &attempt_txg,
		     (int)(xorshift64(&rng) % 400));
	/* Power cut: the process dies with the store open. */
	bdev_faulty_crash(b, xorshift64(&rng) & 1);
	if (m)
		bdev_faulty_crash(m, xorshift64(&rng) & 1);
	btree_close(o.t);
	store_abandon(o.s);

	/* Reopen: the state is the last committed txg, or the one whose sync was cut short. */
	if (owner_open(&o, b, m))
		fail_msg("seed %llu: reopen failed", (unsigned long long)seed);
	store_last_uberblock(o.s, &ub);
	if (ub.txg == committed_txg) {
		verify_model(o.t, committed, seed);
		memcpy(model, committed, NKEYS * sizeof(u64));
	} else if (ub.txg == attempt_txg) {
		verify_model(o.t, attempt, seed);
		memcpy(model, attempt, NKEYS * sizeof(u64));
	} else {
		fail_msg("seed %llu: reopened at txg %llu, committed %llu, attempted %llu",
			 (unsigned long long)seed, (unsigned long long)ub.txg,
			 (unsigned long long)committed_txg, (unsigned long long)attempt_txg);
	}
	/* And it keeps working: more changes, a sync, a clean close. */
	committed_txg = ub.txg;
	run_workload(&o, &rng, model, committed, &committed_txg, attempt, &attempt_txg, 50);
	assert_int_equal(store_sync(o.s), 0);
	memcpy(committed, model, NKEYS * sizeof(u64));
	verify_model(o.t, committed, seed);
	owner_close(&o);
	check_ok(b, m);
	free(model);
	free(committed);
	free(attempt);
	bdev_close(b);
	bdev_close(m);
}

struct leaves {
	u64 blocknr[64];
	unsigned n;
};

static int collect_leaf(void *arg, const struct treewalk_node *n)
{
	struct leaves *l = arg;

	if (!n->level && l->n < ARRAY_SIZE(l->blocknr))
		l->blocknr[l->n++] = n->blocknr;
	return 0;
}

/* Damage on the platter is found by check and refused by every reader, never trusted. */
static void test_store__damage_detected(void **state)
{
	struct bdev *b = bdev_faulty_create(8 * MB, 9);
	struct store_check_report rep;
	struct leaves lv = {{0}, 0};
	struct treewalk w = {.node = collect_leaf, .arg = &lv};
	struct uberblock ub;
	struct owner o;
	u8 key[16] = {0}, val[16] = {0}, blk[DDSNAP_BLOCK_SIZE];
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int bad = 0;

	format_ok(b, NULL, 12);
	assert_int_equal(owner_open(&o, b, NULL), 0);
	{
		struct tx *tx = store_tx_hold(o.s);

		for (u64 k = 0; k < 600; k++) {
			u64 start, n;

			assert_int_equal(metaslab_alloc_data(store_metaslab(o.s), 1, &start, &n),
					 0);
			btree_put_le64(key, 0, k);
			btree_put_le64(key, 1, 1);
			btree_put_le64(val, 0, tx->txg);
			btree_put_le64(val, 1, start / o.chunk_blocks);
			assert_int_equal(btree_insert(o.t, tx, key, val, BTREE_NOOVERWRITE), 0);
		}
		store_tx_release(o.s, tx);
	}
	assert_int_equal(store_sync(o.s), 0);
	store_last_uberblock(o.s, &ub);
	owner_close(&o);
	check_ok(b, NULL);
	assert_int_equal(treewalk(b, &ub.roots[UB_ROOT_EXCEPTIONS], &w, NULL, 0), 0);
	assert_true(lv.n >= 3);

	/* A misdirected write: leaf 1's contents at leaf 0's address. */
	assert_int_equal(bdev_read(b, blk, sizeof(blk), lv.blocknr[1] * DDSNAP_BLOCK_SIZE), 0);
	assert_int_equal(bdev_write(b, blk, sizeof(blk), lv.blocknr[0] * DDSNAP_BLOCK_SIZE), 0);
	/* A bit flip inside leaf 2. */
	bdev_faulty_corrupt(b, lv.blocknr[2] * DDSNAP_BLOCK_SIZE + 1000, 1);
	f = open_memstream(&text, &len);
	assert_int_equal(store_check(b, NULL, f, &rep), 0);
	fclose(f);
	assert_true(rep.errors >= 2);
	assert_non_null(strstr(text, "read from"));
	assert_non_null(strstr(text, "checksum"));
	free(text);

	/* Readers: every key either reads back right or fails with a corruption error. */
	assert_int_equal(owner_open(&o, b, NULL), 0);
	for (u64 k = 0; k < 600; k++) {
		int r;

		btree_put_le64(key, 0, k);
		btree_put_le64(key, 1, 1);
		r = btree_lookup(o.t, key, val);
		if (r) {
			assert_true(r == -EILSEQ || r == -ENOTBLK || r == -ESTALE);
			bad++;
		} else {
			assert_true(btree_get_le64(val, 0) > 0);
		}
	}
	assert_true(bad > 0);
	owner_close(&o);
	bdev_close(b);
}

static void test_store__crash_random_workloads(void **state)
{
	const char *env = getenv("STORE_CRASH_SEED"), *pre = getenv("LD_PRELOAD");
	/* Thousands of crashes; a tenth of that under valgrind, which is 50 times slower. */
	u64 iters = pre && strstr(pre, "vgpreload") ? 200 : 2000;
	u64 base = env ? strtoull(env, NULL, 0) : (u64)time(NULL);

	if (getenv("STORE_CRASH_ITERS"))
		iters = strtoull(getenv("STORE_CRASH_ITERS"), NULL, 0);
	if (env)
		iters = 1;
	print_message("crash test: %llu iterations from seed %llu "
		      "(STORE_CRASH_SEED=<seed> replays one)\n",
		      (unsigned long long)iters, (unsigned long long)base);
	for (u64 i = 0; i < iters; i++)
		crash_iteration(base + i);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store__format_open_reopen),
		cmocka_unit_test(test_store__format_refuses_bad_params),
		cmocka_unit_test(test_store__separate_metadev),
		cmocka_unit_test(test_store__set_feature_bit),
		cmocka_unit_test(test_store__not_a_store),
		cmocka_unit_test(test_store__label_copy_survives),
		cmocka_unit_test(test_store__label_uberblock_structure),
		cmocka_unit_test(test_store__newest_valid_uberblock_wins),
		cmocka_unit_test(test_store__deferred_free),
		cmocka_unit_test(test_store__check_finds_leak),
		cmocka_unit_test(test_store__sync_thread_timer_and_dirty_bound),
		cmocka_unit_test(test_store__label_grown_device),
		cmocka_unit_test(test_store__plan_partial_chunk),
		cmocka_unit_test(test_store__label_unknown_feature),
		cmocka_unit_test(test_store__intent_log_replay),
		cmocka_unit_test(test_store__damage_detected),
		cmocka_unit_test(test_store__crash_random_workloads),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
