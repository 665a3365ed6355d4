// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_deadlist_disk.c - the persisted deadlists' trees and index (deadlist_disk.c) against
 * a model: a plain array of entries (death, key, chunk), each alive or freed.
 *
 * The random test adds entries gen by gen (a piece per (death, key), as copy-outs do),
 * frees ranges of pieces the way a snapshot delete does (death range, key above a bound)
 * and checks the entries handed to the callback, syncs txgs, and reopens from the device
 * through a fresh cache, comparing every piece's count and every entry with the model each
 * time; at every sync the allocator's live blocks must be exactly the blocks the two trees
 * reference (no leak, no double use).  The crash test writes a txg's blocks but not its
 * "uberblock" (the roots) and reopens at the previous roots: the state before that txg,
 * exactly.  Malformed rows are refused at open; a count that does not match the entries is
 * found by the walk.  Seeds are printed; DLDISK_SEED=<n> replays one.
 *
 * The test transaction: a RAM device, a bitmap allocator whose frees of blocks born before
 * the open txg wait for its sync (tx.h), and which forgets the open txg's allocations and
 * frees on a crash.  It can be told to fail the Nth allocation (-ENOSPC).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "snap/deadlist_disk.h"
#include "blk/bdev.h"
#include "blk/format.h"
#include "lib/rng.h"

#define DEV_BLOCKS  8192
#define CACHE_BYTES (64 * DDSNAP_BLOCK_SIZE)

struct ent {
	u64 death, key, chunk;
	bool alive;
};

struct fx {
	struct bdev *bdev;
	struct cache *cache;
	struct tx tx;
	u8 live[DEV_BLOCKS];   /* allocated (as of the open txg) */
	u8 synced[DEV_BLOCKS]; /* allocated as of the last sync (not reusable before it) */
	u64 fail_after;
	struct dldisk_roots roots; /* the "uberblock" of the last sync */
	struct dldisk *d;
	struct ent *m; /* the model */
	u64 nm, mcap;
};

static int fx_alloc(struct tx *tx, u64 *blocknr)
{
	struct fx *f = tx->priv;

	if (f->fail_after && !--f->fail_after)
		return -ENOSPC;
	for (u64 b = 1; b < DEV_BLOCKS; b++)
		if (!f->live[b] && !f->synced[b]) {
			f->live[b] = 1;
			*blocknr = b;
			return 0;
		}
	return -ENOSPC;
}

static void fx_free(struct tx *tx, u64 blocknr, u64 birth)
{
	struct fx *f = tx->priv;

	VERIFY(blocknr < DEV_BLOCKS && f->live[blocknr]);
	VERIFY(birth <= tx->txg);
	/* Reusable at once if born in the open txg (never durable), else after the sync. */
	f->live[blocknr] = 0;
	if (birth == tx->txg)
		cache_forget(tx->cache, blocknr);
}

static const struct tx_ops fx_ops = {.alloc_meta = fx_alloc, .free_meta = fx_free};

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->bdev = bdev_ram_create((u64)DEV_BLOCKS * DDSNAP_BLOCK_SIZE);
	f->cache = cache_create(f->bdev, CACHE_BYTES);
	f->tx = (struct tx){.txg = 1, .cache = f->cache, .ops = &fx_ops, .priv = f};
	assert_int_equal(dldisk_open(f->cache, &f->roots, &f->d), 0);
}

static void fx_fini(struct fx *f)
{
	dldisk_close(f->d);
	cache_destroy(f->cache);
	bdev_close(f->bdev);
	free(f->m);
}

static int count_block(void *arg, u64 blocknr, u64 birth, unsigned level)
{
	u64 *n = arg;

	assert_true(blocknr < DEV_BLOCKS);
	(*n)++;
	return 0;
}

/* Blocks referenced by the trees at @r (each verified). */
static u64 referenced(struct fx *f, const struct dldisk_roots *r)
{
	const struct btree_type *types[2] = {&dldisk_piece_tree_type, &dldisk_entry_tree_type};
	const struct blkptr *roots[2] = {&r->pieces, &r->entries};
	u64 n = 0;

	for (int i = 0; i < 2; i++) {
		struct btree *t;
		char why[128] = "";

		assert_int_equal(btree_open(types[i], f->cache, roots[i], &t), 0);
		if (btree_verify(t, count_block, &n, NULL, why, sizeof(why)))
			fail_msg("%s: %s", types[i]->name, why);
		btree_close(t);
	}
	return n;
}

/* Ends the open txg: rows and trees sealed, blocks written and flushed, roots recorded. */
static void fx_sync(struct fx *f)
{
	u64 live = 0;

	assert_int_equal(dldisk_sync(f->d, &f->tx, &f->roots), 0);
	assert_int_equal(cache_sync(f->cache, f->tx.txg), 0);
	assert_int_equal(bdev_flush(f->bdev), 0);
	memcpy(f->synced, f->live, sizeof(f->synced));
	for (u64 b = 0; b < DEV_BLOCKS; b++)
		live += f->live[b];
	assert_int_equal(live, referenced(f, &f->roots));
	f->tx.txg++;
}

/* Drops the cache and the index and opens again from the device at the synced roots. */
static void fx_reopen(struct fx *f)
{
	dldisk_close(f->d);
	f->d = NULL;
	cache_destroy(f->cache);
	f->cache = cache_create(f->bdev, CACHE_BYTES);
	cache_set_synced_txg(f->cache, f->tx.txg - 1);
	f->tx.cache = f->cache;
	assert_int_equal(dldisk_open(f->cache, &f->roots, &f->d), 0);
}

/* A crash in the open txg: its allocations and frees are forgotten, then reopen. */
static void fx_crash(struct fx *f)
{
	memcpy(f->live, f->synced, sizeof(f->live));
	fx_reopen(f);
}

static void model_add(struct fx *f, u64 death, u64 key, u64 chunk)
{
	if (f->nm == f->mcap) {
		f->mcap = f->mcap ? 2 * f->mcap : 256;
		f->m = xrealloc(f->m, f->mcap * sizeof(*f->m));
	}
	f->m[f->nm++] = (struct ent){.death = death, .key = key, .chunk = chunk, .alive = true};
}

static int cmp_ent(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	if (x->death != y->death)
		return x->death < y->death ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->chunk < y->chunk ? -1 : x->chunk > y->chunk;
}

struct collect {
	struct ent *v;
	u64 n, cap;
};

static int collect_ent(void *arg, const struct dl_piece *p, u64 chunk, u64 death)
{
	struct collect *c = arg;

	assert_int_equal(death, p->death); /* no compaction: a piece's death is its entries' */
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n++] = (struct ent){.death = death, .key = p->key, .chunk = chunk, .alive = true};
	return 0;
}

/* The index and the trees hold exactly the model's live entries, one piece per (death, key). */
static void fx_compare(struct fx *f)
{
	struct collect c = {0};
	struct ent *want = xmalloc((f->nm + 1) * sizeof(*want));
	u64 n = 0;

	for (u64 i = 0; i < f->nm; i++)
		if (f->m[i].alive)
			want[n++] = f->m[i];
	qsort(want, n, sizeof(*want), cmp_ent);
	assert_int_equal(dldisk_walk(f->d, NULL, collect_ent, &c), 0);
	qsort(c.v, c.n, sizeof(*c.v), cmp_ent);
	assert_int_equal(c.n, n);
	for (u64 i = 0; i < n; i++) {
		assert_int_equal(c.v[i].death, want[i].death);
		assert_int_equal(c.v[i].key, want[i].key);
		assert_int_equal(c.v[i].chunk, want[i].chunk);
	}
	/* Counts per (death, key), and one piece each. */
	for (u64 i = 0, j; i < n; i = j) {
		for (j = i; j < n && want[j].death == want[i].death && want[j].key == want[i].key;
		     j++)
			;
		assert_int_equal(dldisk_count(f->d, want[i].death - 1, want[i].death, want[i].key,
					      want[i].key),
				 j - i);
	}
	for (u32 i = 1; i < dldisk_npieces(f->d); i++) {
		const struct dl_piece *a = dldisk_piece(f->d, i - 1), *b = dldisk_piece(f->d, i);

		assert_true(a->death < b->death || (a->death == b->death && a->key < b->key));
	}
	free(c.v);
	free(want);
}

struct freed {
	struct fx *f;
	u64 dlo, dhi, kmin, n;
};

/* The entry handed to dldisk_free's callback must be a live model entry in the range. */
static int on_free(void *arg, u64 chunk, u64 death)
{
	struct freed *fr = arg;

	assert_true(death > fr->dlo && death <= fr->dhi);
	for (u64 i = 0; i < fr->f->nm; i++) {
		struct ent *e = &fr->f->m[i];

		if (e->alive && e->chunk == chunk && e->death == death) {
			assert_true(e->key > fr->kmin);
			e->alive = false;
			fr->n++;
			return 0;
		}
	}
	fail_msg("freed (%llu, %llu), which the model does not hold", (unsigned long long)chunk,
		 (unsigned long long)death);
	return -EINVAL;
}

/* Frees (dlo, dhi] x (kmin, ...) and checks that exactly the model's such entries went. */
static void fx_free_range(struct fx *f, u64 dlo, u64 dhi, u64 kmin)
{
	struct freed fr = {.f = f, .dlo = dlo, .dhi = dhi, .kmin = kmin};
	u64 want = 0, got = 0;

	for (u64 i = 0; i < f->nm; i++)
		want += f->m[i].alive && f->m[i].death > dlo && f->m[i].death <= dhi &&
			f->m[i].key > kmin;
	assert_int_equal(dldisk_free(f->d, &f->tx, dlo, dhi, kmin, on_free, &fr, &got), 0);
	assert_int_equal(fr.n, want);
	assert_int_equal(got, want);
	assert_int_equal(dldisk_count(f->d, dlo, dhi, kmin + 1, UINT64_MAX), 0);
}

/* Adds @n entries of gen @g with keys below it; chunks unique per death. */
static void fx_add_gen(struct fx *f, struct rnd *r, u64 g, u64 n)
{
	for (u64 i = 0; i < n; i++) {
		/* Keys >= 1: key 0 is only an orphan's (no delete frees it, as today). */
		u64 key = rnd_below(r, 4) ? g - 1 - rnd_below(r, MIN(g - 1, (u64)6)) : 1;
		u64 chunk = i * 7 + rnd_below(r, 7);

		assert_int_equal(dldisk_add(f->d, &f->tx, g, key, chunk), 0);
		model_add(f, g, key, chunk);
	}
}

static u64 test_seed(void)
{
	u64 seed = rnd_seed("DLDISK_SEED", (u64)time(NULL), NULL);

	printf("DLDISK_SEED=%llu\n", (unsigned long long)seed);
	return seed;
}

static void random_round_trip(void **state)
{
	struct rnd r = {test_seed()};
	struct fx f;

	fx_init(&f);
	for (u64 g = 2; g < 40; g++) {
		fx_add_gen(&f, &r, g, 1 + rnd_below(&r, 300));
		if (rnd_below(&r, 3) == 0) {
			/* A delete of "S" between P and N: N's range above S, keys above P. */
			u64 p = rnd_below(&r, g), s = p + 1 + rnd_below(&r, g - p);

			fx_free_range(&f, s, rnd_below(&r, 2) ? UINT64_MAX : s + rnd_below(&r, 4),
				      p);
		}
		fx_compare(&f);
		if (rnd_below(&r, 2))
			fx_sync(&f);
		if (rnd_below(&r, 4) == 0) {
			fx_sync(&f);
			fx_reopen(&f);
			fx_compare(&f);
		}
	}
	fx_sync(&f);
	fx_reopen(&f);
	fx_compare(&f);
	/* Everything freed: both trees empty, every block back (fx_sync counts them). */
	fx_free_range(&f, 0, UINT64_MAX, 0);
	assert_int_equal(dldisk_npieces(f.d), 0);
	fx_sync(&f);
	assert_int_equal(f.roots.pieces.blocknr, 0);
	assert_int_equal(f.roots.entries.blocknr, 0);
	fx_reopen(&f);
	fx_compare(&f);
	fx_fini(&f);
}

/*
 * Pieces larger than free_piece's batch (128 entries read before they are deleted): one of
 * exactly two batches, one ending inside a batch, one just past a batch, beside a piece the
 * free must keep (key not above kmin).  Every entry goes, each once, and nothing else.
 */
static void free_pieces_across_batches(void **state)
{
	static const struct {
		u64 death, key, n;
	} pieces[] = {{3, 1, 256}, {3, 2, 300}, {4, 2, 129}, {4, 1, 5}};
	struct fx f;

	fx_init(&f);
	for (size_t i = 0; i < ARRAY_SIZE(pieces); i++) {
		for (u64 c = 0; c < pieces[i].n; c++) {
			assert_int_equal(
				dldisk_add(f.d, &f.tx, pieces[i].death, pieces[i].key, 3 * c + i),
				0);
			model_add(&f, pieces[i].death, pieces[i].key, 3 * c + i);
		}
		fx_sync(&f);
	}
	fx_reopen(&f);
	fx_free_range(&f, 2, 4, 1); /* the key-2 pieces: 300 + 129 */
	fx_compare(&f);
	assert_int_equal(dldisk_count(f.d, 2, 4, 0, UINT64_MAX), 256 + 5);
	fx_free_range(&f, 2, 3, 0); /* exactly two batches */
	fx_compare(&f);
	assert_int_equal(dldisk_count(f.d, 2, 4, 0, UINT64_MAX), 5);
	fx_sync(&f);
	fx_reopen(&f);
	fx_compare(&f);
	fx_fini(&f);
}

/* The smallest id of the pieces of @death. */
static u64 min_id_of(const struct dldisk *d, u64 death)
{
	u64 id = UINT64_MAX;

	for (u32 i = 0; i < dldisk_npieces(d); i++)
		if (dldisk_piece(d, i)->death == death)
			id = MIN(id, dldisk_piece(d, i)->id);
	return id;
}

/* A txg whose blocks were written but whose roots never were leaves the state before it. */
static void crash_before_roots(void **state)
{
	struct rnd r = {test_seed()};
	struct fx f;
	struct ent *saved;
	u64 nsaved, next_piece;

	fx_init(&f);
	for (u64 g = 2; g < 12; g++)
		fx_add_gen(&f, &r, g, 200);
	fx_sync(&f);
	fx_free_range(&f, 4, 6, 2);
	fx_sync(&f);
	saved = xmalloc(f.nm * sizeof(*saved));
	memcpy(saved, f.m, f.nm * sizeof(*saved));
	nsaved = f.nm;
	next_piece = f.roots.next_piece;

	for (int written = 0; written < 2; written++) {
		struct dldisk_roots lost;

		fx_add_gen(&f, &r, 12, 300);
		fx_free_range(&f, 0, 9, 3);
		fx_add_gen(&f, &r, 13, 5); /* the next gen, in the same txg */
		if (written) {
			/* Every block of the txg reaches the device; the roots do not. */
			assert_int_equal(dldisk_sync(f.d, &f.tx, &lost), 0);
			assert_int_equal(cache_sync(f.cache, f.tx.txg), 0);
			assert_int_equal(bdev_flush(f.bdev), 0);
			assert_true(lost.next_piece > next_piece);
		}
		fx_crash(&f);
		memcpy(f.m, saved, nsaved * sizeof(*saved));
		f.nm = nsaved;
		fx_compare(&f);
		/* And the store goes on from there: the lost ids are handed out again. */
		fx_add_gen(&f, &r, 12, 10);
		assert_int_equal(min_id_of(f.d, 12), next_piece);
		fx_sync(&f);
		fx_reopen(&f);
		fx_compare(&f);
		fx_free_range(&f, 11, UINT64_MAX, 0);
		fx_sync(&f);
		next_piece = f.roots.next_piece;
		saved = xrealloc(saved, f.nm * sizeof(*saved));
		memcpy(saved, f.m, f.nm * sizeof(*saved));
		nsaved = f.nm;
	}
	free(saved);
	fx_fini(&f);
}

/* A failed insert changes nothing: no piece, no id, no count; the next one succeeds. */
static void add_enospc_changes_nothing(void **state)
{
	struct rnd r = {1};
	struct fx f;
	u32 n;

	fx_init(&f);
	fx_add_gen(&f, &r, 2, 100);
	fx_sync(&f);
	n = dldisk_npieces(f.d);
	f.fail_after = 1;
	assert_int_equal(dldisk_add(f.d, &f.tx, 3, 2, 5), -ENOSPC);
	assert_int_equal(dldisk_npieces(f.d), n);
	assert_int_equal(dldisk_add(f.d, &f.tx, 3, 2, 5), 0);
	model_add(&f, 3, 2, 5);
	assert_int_equal(dldisk_piece(f.d, n)->id, f.roots.next_piece);
	assert_int_equal(dldisk_add(f.d, &f.tx, 3, 2, 5), -EEXIST);
	assert_int_equal(dldisk_add(f.d, &f.tx, 3, 3, 6), -EINVAL); /* key not below death */
	fx_compare(&f);
	fx_sync(&f);
	fx_reopen(&f);
	fx_compare(&f);
	fx_fini(&f);
}

static int ignore_ent(void *arg, const struct dl_piece *p, u64 chunk, u64 death);

/*
 * dldisk_add_many: a shuffled batch over several keys, longer than one slice, continuing a
 * piece of an earlier call; a key not below its death refused with nothing changed; a
 * duplicate stopping its key's run with what went before it added; -ENOSPC partway leaving
 * counts that match the entries, then a crash of that txg restoring the last sync; the
 * pieces then freed (btree_delete_range) and everything reopened.
 */
static void add_many_batches(void **state)
{
	struct rnd r = {test_seed()};
	struct dldisk_ent b[700];
	struct ent *saved;
	u64 nsaved;
	struct fx f;

	fx_init(&f);
	for (u64 g = 5; g < 8; g++) {
		for (int round = 0; round < 2; round++) {
			for (u32 i = 0; i < ARRAY_SIZE(b); i++) {
				/* chunks unique per death: 2 * i + round */
				b[i] = (struct dldisk_ent){g - 1 - rnd_below(&r, 3),
							   2 * i + (u64)round};
				model_add(&f, g, b[i].key, b[i].chunk);
			}
			for (u32 i = ARRAY_SIZE(b) - 1; i > 0; i--) {
				u32 j = (u32)rnd_below(&r, i + 1);
				struct dldisk_ent x = b[i];

				b[i] = b[j];
				b[j] = x;
			}
			assert_int_equal(dldisk_add_many(f.d, &f.tx, g, b, ARRAY_SIZE(b)), 0);
		}
		fx_compare(&f);
	}
	/* One piece per (death, key): the second round continued the first's pieces. */
	assert_int_equal(dldisk_npieces(f.d), 9);
	fx_sync(&f);
	fx_reopen(&f);
	fx_compare(&f);

	b[0] = (struct dldisk_ent){3, 9001};
	b[1] = (struct dldisk_ent){8, 9002};
	assert_int_equal(dldisk_add_many(f.d, &f.tx, 8, b, 2), -EINVAL);
	fx_compare(&f);
	b[0] = (struct dldisk_ent){3, 9003};
	b[1] = (struct dldisk_ent){3, 9001};
	b[2] = (struct dldisk_ent){3, 9003};
	assert_int_equal(dldisk_add_many(f.d, &f.tx, 8, b, 3), -EEXIST);
	model_add(&f, 8, 3, 9001);
	model_add(&f, 8, 3, 9003);
	fx_compare(&f);
	fx_sync(&f);

	saved = xmalloc(f.nm * sizeof(*saved));
	memcpy(saved, f.m, f.nm * sizeof(*saved));
	nsaved = f.nm;
	for (u32 i = 0; i < ARRAY_SIZE(b); i++)
		b[i] = (struct dldisk_ent){1 + rnd_below(&r, 2), 3 * i};
	f.fail_after = 4;
	assert_int_equal(dldisk_add_many(f.d, &f.tx, 9, b, ARRAY_SIZE(b)), -ENOSPC);
	f.fail_after = 0;
	assert_true(dldisk_count(f.d, 8, 9, 0, UINT64_MAX) > 0);
	assert_int_equal(dldisk_walk(f.d, NULL, ignore_ent, NULL), 0);
	fx_crash(&f);
	memcpy(f.m, saved, nsaved * sizeof(*saved));
	f.nm = nsaved;
	fx_compare(&f);
	assert_int_equal(dldisk_count(f.d, 8, 9, 0, UINT64_MAX), 0);

	fx_free_range(&f, 4, 6, 4); /* death 5..6, key > 4: one piece of death 6 */
	fx_compare(&f);
	fx_free_range(&f, 0, 8, 0);
	fx_compare(&f);
	assert_int_equal(dldisk_npieces(f.d), 0);
	fx_sync(&f);
	fx_reopen(&f);
	fx_compare(&f);
	free(saved);
	fx_fini(&f);
}

/* Writes one raw row into the synced piece table (a "valid checksum, bad contents" row). */
static void put_row(struct fx *f, u64 death, u64 key, u64 id, u64 count, u64 reserved)
{
	struct dl_piece_disk v = {.count = cpu_to_le64(count), .reserved = cpu_to_le64(reserved)};
	struct btree *t;
	u8 k[24];

	btree_put_le64(k, 0, death);
	btree_put_le64(k, 1, key);
	btree_put_le64(k, 2, id);
	assert_int_equal(btree_open(&dldisk_piece_tree_type, f->cache, &f->roots.pieces, &t), 0);
	assert_int_equal(btree_insert(t, &f->tx, k, &v, BTREE_OVERWRITE), 0);
	assert_int_equal(btree_sync(t, &f->tx), 0);
	btree_root(t, &f->roots.pieces);
	btree_close(t);
	assert_int_equal(cache_sync(f->cache, f->tx.txg), 0);
	f->tx.txg++;
}

static void malformed_rows_refused(void **state)
{
	static const struct {
		u64 death, key, id, count, reserved;
	} bad[] = {
		{5, 1, 1, 0, 0},  /* count 0 */
		{5, 1, 1, 1, 7},  /* reserved set */
		{5, 1, 0, 1, 0},  /* id 0 */
		{5, 1, 99, 1, 0}, /* id not below next_piece */
		{5, 5, 1, 1, 0},  /* key not below death */
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct fx f;
		struct dldisk *d = NULL;

		fx_init(&f);
		f.roots.next_piece = 10;
		put_row(&f, bad[i].death, bad[i].key, bad[i].id, bad[i].count, bad[i].reserved);
		assert_int_equal(dldisk_open(f.cache, &f.roots, &d), -EILSEQ);
		assert_null(d);
		fx_fini(&f);
	}
}

static int ignore_ent(void *arg, const struct dl_piece *p, u64 chunk, u64 death)
{
	return 0;
}

/* A row whose count is not its entries' number, or entries of no row: the walk says so. */
static void walk_finds_count_mismatch(void **state)
{
	struct rnd r = {2};
	struct fx f;
	const struct dl_piece *p;

	fx_init(&f);
	fx_add_gen(&f, &r, 2, 50);
	fx_sync(&f);
	p = dldisk_piece(f.d, 0);
	put_row(&f, p->death, p->key, p->id, p->count + 1, 0);
	fx_reopen(&f);
	assert_int_equal(dldisk_walk(f.d, NULL, ignore_ent, NULL), -EILSEQ);

	/* The row gone, its entries stay: entries of no piece. */
	{
		struct btree *t;
		u8 k[24];

		p = dldisk_piece(f.d, 0);
		btree_put_le64(k, 0, p->death);
		btree_put_le64(k, 1, p->key);
		btree_put_le64(k, 2, p->id);
		assert_int_equal(btree_open(&dldisk_piece_tree_type, f.cache, &f.roots.pieces, &t),
				 0);
		assert_int_equal(btree_delete(t, &f.tx, k, NULL), 0);
		assert_int_equal(btree_sync(t, &f.tx), 0);
		btree_root(t, &f.roots.pieces);
		btree_close(t);
		assert_int_equal(cache_sync(f.cache, f.tx.txg), 0);
		f.tx.txg++;
	}
	fx_reopen(&f);
	assert_int_equal(dldisk_walk(f.d, NULL, ignore_ent, NULL), -EILSEQ);
	fx_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_round_trip),
		cmocka_unit_test(free_pieces_across_batches),
		cmocka_unit_test(crash_before_roots),
		cmocka_unit_test(add_enospc_changes_nothing),
		cmocka_unit_test(add_many_batches),
		cmocka_unit_test(malformed_rows_refused),
		cmocka_unit_test(walk_finds_count_mismatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
