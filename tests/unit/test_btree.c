// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_btree.c - the copy-on-write B+tree against a naive sorted-array model.
 *
 * The model test runs long random sequences of insert (both modes), delete, point and bound
 * lookups, cursor walks in both directions, syncs and reopens from disk through a fresh
 * cache, over several key/value shapes (from the exception tree's 16+16 bytes to 128+500
 * bytes, whose 6-entry leaves make deep trees quickly).  After every operation btree_verify
 * re-derives every aggregate, birth and key range; at every sync the test allocator's set of
 * live blocks must equal the set of blocks the tree references (no leak, no double free).
 * Seeds are printed; BTREE_SEED=<n> replays one.
 *
 * The test transaction: a counter allocator over a RAM device with a free list; frees of
 * blocks born in the open txg are reusable at once, others only after the txg synced, as
 * tx.h requires.  It can be told to fail the Nth allocation (-ENOSPC).
 */
#include <pthread.h>
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "pdata/btree.h"
#include "blk/bdev.h"
#include "blk/cache.h"
#include "util/iopool.h"
#include "lib/rng.h"

/*----------------------------------------------------------------
 * Test transaction: allocator with deferred frees
 *--------------------------------------------------------------*/

struct talloc {
	u64 nblocks, next;
	u8 *live;	  /* per block: 1 allocated */
	u64 *free, nfree; /* reusable now */
	u64 *deferred, ndeferred;
	u64 *born, nborn; /* allocated in the open txg (for the COW test) */
	u64 fail_after;	  /* 0: never; else the Nth allocation from now fails */
	u64 allocs, frees;
};

struct env {
	struct bdev *bdev;
	struct cache *cache;
	struct talloc a;
	struct tx tx;
	size_t budget;
};

static int talloc_alloc(struct tx *tx, u64 *blocknr)
{
	struct talloc *a = tx->priv;
	u64 b;

	if (a->fail_after && !--a->fail_after)
		return -ENOSPC;
	if (a->nfree) {
		b = a->free[--a->nfree];
	} else {
		if (a->next >= a->nblocks)
			return -ENOSPC;
		b = a->next++;
	}
	VERIFY(!a->live[b]);
	a->live[b] = 1;
	a->born[a->nborn++] = b;
	a->allocs++;
	*blocknr = b;
	return 0;
}

static void talloc_free(struct tx *tx, u64 blocknr, u64 birth)
{
	struct talloc *a = tx->priv;

	VERIFY(blocknr < a->nblocks && a->live[blocknr]);
	VERIFY(birth <= tx->txg);
	a->live[blocknr] = 0;
	a->frees++;
	if (birth == tx->txg)
		a->free[a->nfree++] = blocknr;
	else
		a->deferred[a->ndeferred++] = blocknr;
}

static const struct tx_ops talloc_ops = {talloc_alloc, talloc_free};

static void env_init(struct env *e, u64 nblocks, size_t budget)
{
	memset(e, 0, sizeof(*e));
	e->bdev = bdev_ram_create(nblocks * DDSNAP_BLOCK_SIZE);
	e->budget = budget;
	e->cache = cache_create(e->bdev, budget);
	e->a.nblocks = nblocks;
	e->a.next = 1; /* block 0 means "no block" */
	e->a.live = xzalloc(nblocks);
	e->a.free = xmalloc(nblocks * sizeof(u64));
	e->a.deferred = xmalloc(nblocks * sizeof(u64));
	e->a.born = xmalloc(nblocks * sizeof(u64));
	e->tx = (struct tx){.txg = 1, .cache = e->cache, .ops = &talloc_ops, .priv = &e->a};
}

static void env_fini(struct env *e)
{
	cache_destroy(e->cache);
	bdev_close(e->bdev);
	free(e->a.live);
	free(e->a.free);
	free(e->a.deferred);
	free(e->a.born);
}

/* Ends the open txg: seal @t, write, flush; deferred frees become reusable. */
static void env_sync(struct env *e, struct btree *t)
{
	if (t)
		assert_int_equal(btree_sync(t, &e->tx), 0);
	assert_int_equal(cache_sync(e->cache, e->tx.txg), 0);
	assert_int_equal(bdev_flush(e->bdev), 0);
	memcpy(e->a.free + e->a.nfree, e->a.deferred, e->a.ndeferred * sizeof(u64));
	e->a.nfree += e->a.ndeferred;
	e->a.ndeferred = 0;
	e->a.nborn = 0;
	e->tx.txg++;
}

/* Drops every cached block (after a sync): the next reads come from the device. */
static void env_recache(struct env *e)
{
	cache_destroy(e->cache);
	e->cache = cache_create(e->bdev, e->budget);
	cache_set_synced_txg(e->cache, e->tx.txg - 1);
	e->tx.cache = e->cache;
}

/*----------------------------------------------------------------
 * Tree shapes and the model
 *--------------------------------------------------------------*/

static u64 aggr_field1(const void *key, const void *value)
{
	return btree_get_le64(key, 1); /* the exception tree's death */
}

static u64 aggr_value0(const void *key, const void *value)
{
	return btree_get_le64(value, 0);
}

static u64 aggr_lastbyte(const void *key, const void *value)
{
	return ((const u8 *)key)[4];
}

static const struct btree_type type_exc = {"exceptions", 16, 16, BTREE_KEY_LE64, aggr_field1};
static const struct btree_type type_u64 = {"overlay", 8, 8, BTREE_KEY_LE64, aggr_value0};
static const struct btree_type type_odd = {"odd", 5, 0, BTREE_KEY_MEMCMP, aggr_lastbyte};
static const struct btree_type type_big = {"big", 128, 500, BTREE_KEY_MEMCMP, NULL};
static const struct btree_type type_mid = {"mid", 24, 200, BTREE_KEY_LE64, NULL};

struct model {
	const struct btree_type *type;
	size_t es; /* entry size: key then value */
	u8 *v;
	size_t n, cap;
};

static void model_init(struct model *m, const struct btree_type *type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->es = type->key_size + type->value_size;
}

static u8 *mkey(const struct model *m, size_t i)
{
	return m->v + i * m->es;
}

static u8 *mval(const struct model *m, size_t i)
{
	return m->v + i * m->es + m->type->key_size;
}

/* First index with key >= @k. */
static size_t model_lb(const struct model *m, const void *k)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (btree_key_cmp(m->type, mkey(m, mid), k) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool model_has(const struct model *m, const void *k, size_t *at)
{
	*at = model_lb(m, k);
	return *at < m->n && !btree_key_cmp(m->type, mkey(m, *at), k);
}

static void model_put(struct model *m, const void *k, const void *v)
{
	size_t i;

	if (model_has(m, k, &i)) {
		memcpy(mval(m, i), v, m->type->value_size);
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->v = xrealloc(m->v, m->cap * m->es);
	}
	memmove(mkey(m, i + 1), mkey(m, i), (m->n - i) * m->es);
	memcpy(mkey(m, i), k, m->type->key_size);
	memcpy(mval(m, i), v, m->type->value_size);
	m->n++;
}

static void model_del(struct model *m, size_t i)
{
	memmove(mkey(m, i), mkey(m, i + 1), (m->n - i - 1) * m->es);
	m->n--;
}

/* The model's answer to btree_find: an index or -1. */
static long model_find(const struct model *m, const void *k, enum btree_seek how)
{
	size_t i = model_lb(m, k);
	bool eq = i < m->n && !btree_key_cmp(m->type, mkey(m, i), k);

	switch (how) {
	case BTREE_EQ:
		return eq ? (long)i : -1;
	case BTREE_GE:
		return i < m->n ? (long)i : -1;
	case BTREE_GT:
		i += eq;
		return i < m->n ? (long)i : -1;
	case BTREE_LE:
		i += eq;
		return (long)i - 1;
	case BTREE_LT:
		return (long)i - 1;
	case BTREE_FIRST:
		return m->n ? 0 : -1;
	case BTREE_LAST:
		return (long)m->n - 1;
	}
	return -1;
}

static u64 model_aggr(const struct model *m)
{
	u64 a = 0;

	for (size_t i = 0; m->type->aggr && i < m->n; i++)
		a = MAX(a, m->type->aggr(mkey(m, i), mval(m, i)));
	return a;
}

/* Random key of @type in a space of about @span distinct keys (collisions wanted). */
static void rand_key(const struct btree_type *type, u64 span, u8 *k)
{
	u64 x = (u64)random() % span;

	memset(k, 0, type->key_size);
	if (type->order == BTREE_KEY_LE64) {
		/* Field 0 carries most of the spread, field 1 a little (several deaths per chunk). */
		btree_put_le64(k, 0, x / 4);
		if (type->key_size >= 16)
			btree_put_le64(k, 1, (x % 4) * 7 + 1);
		for (unsigned i = 2; i < type->key_size / 8u; i++)
			btree_put_le64(k, i, x * 31 + i);
	} else {
		for (unsigned i = 0; i < type->key_size; i++)
			k[i] = (u8)(x >> (8 * (i % 3)));
		k[0] = (u8)(x % 200);
		if (type->key_size > 1)
			k[1] = (u8)(x / 200);
	}
}

static void rand_val(const struct btree_type *type, u8 *v)
{
	for (unsigned i = 0; i < type->value_size; i++)
		v[i] = (u8)random();
	if (type->value_size >= 8)
		btree_put_le64(v, 0, (u64)random() % 100000);
}

/*----------------------------------------------------------------
 * Checks
 *--------------------------------------------------------------*/

struct refset {
	u8 *ref;
	u64 nblocks, count;
};

static int ref_block(void *arg, u64 blocknr, u64 birth, unsigned level)
{
	struct refset *rs = arg;

	if (blocknr >= rs->nblocks || rs->ref[blocknr])
		return -EEXIST; /* out of range or referenced twice */
	rs->ref[blocknr] = 1;
	rs->count++;
	return 0;
}

static unsigned max_height;
static size_t max_entries;

static void check_tree(struct btree *t, const struct model *m, struct env *e, bool leaks)
{
	struct refset rs = {xzalloc(e->a.nblocks), e->a.nblocks, 0};
	struct btree_stats st;
	struct blkptr root;
	char why[256];
	int r;

	r = btree_verify(t, ref_block, &rs, &st, why, sizeof(why));
	if (r)
		fail_msg("verify: %d %s", r, why);
	assert_int_equal(st.entries, m->n);
	max_height = MAX(max_height, st.height);
	max_entries = MAX(max_entries, m->n);
	btree_root(t, &root);
	assert_int_equal(root.aggr, m->n ? model_aggr(m) : 0);
	assert_int_equal(btree_empty(t), m->n == 0);
	if (leaks) {
		/* Live blocks of the allocator are exactly the blocks the tree references. */
		for (u64 b = 0; b < e->a.nblocks; b++)
			if (rs.ref[b] != e->a.live[b])
				fail_msg("block %llu: referenced %d, allocated %d",
					 (unsigned long long)b, rs.ref[b], e->a.live[b]);
	}
	free(rs.ref);
}

/* Iterates the whole tree both ways with a cursor and compares with the model. */
static void check_iteration(struct btree *t, const struct model *m)
{
	struct btree_cursor c;
	size_t i = 0;
	int r;

	btree_cursor_init(&c, t);
	for (r = btree_cursor_seek(&c, NULL, BTREE_FIRST); !r; r = btree_cursor_next(&c), i++) {
		assert_true(i < m->n);
		assert_memory_equal(btree_cursor_key(&c), mkey(m, i), m->type->key_size);
		if (m->type->value_size)
			assert_memory_equal(btree_cursor_value(&c), mval(m, i),
					    m->type->value_size);
	}
	assert_int_equal(r, -ENODATA);
	assert_int_equal(i, m->n);
	for (r = btree_cursor_seek(&c, NULL, BTREE_LAST); !r; r = btree_cursor_prev(&c)) {
		assert_true(i > 0);
		i--;
		assert_memory_equal(btree_cursor_key(&c), mkey(m, i), m->type->key_size);
	}
	assert_int_equal(r, -ENODATA);
	assert_int_equal(i, 0);
	btree_cursor_fini(&c);
}

static void check_find(struct btree *t, const struct model *m, const u8 *k)
{
	u8 ko[BTREE_MAX_KEY_SIZE], vo[BTREE_MAX_VALUE_SIZE];

	for (int how = BTREE_EQ; how <= BTREE_LAST; how++) {
		long want = model_find(m, k, (enum btree_seek)how);
		int r = btree_find(t, k, (enum btree_seek)how, ko, vo);

		if (want < 0) {
			if (r != -ENODATA)
				fail_msg("find mode %d: got %d, model has none", how, r);
			continue;
		}
		if (r)
			fail_msg("find mode %d: got %d, model has entry %ld", how, r, want);
		assert_memory_equal(ko, mkey(m, (size_t)want), m->type->key_size);
		if (m->type->value_size)
			assert_memory_equal(vo, mval(m, (size_t)want), m->type->value_size);
	}
}

static u64 test_seed(u64 dflt)
{
	return rnd_seed("BTREE_SEED", dflt, NULL);
}

/*----------------------------------------------------------------
 * Sorted runs (btree_insert_sorted) and ranges (btree_delete_range)
 *--------------------------------------------------------------*/

/* The key after @k in the tree's order (its last field or byte plus one); false on wrap. */
static bool key_next(const struct btree_type *type, u8 *k)
{
	if (type->order == BTREE_KEY_LE64) {
		unsigned f = type->key_size / 8 - 1;
		u64 x = btree_get_le64(k, f) + 1;

		btree_put_le64(k, f, x);
		return x != 0;
	}
	for (int i = (int)type->key_size - 1; i >= 0; i--)
		if (++k[i])
			return true;
	return false;
}

static const struct btree_type *cmp_type;
static u64 runs_inserted, ranges_deleted; /* entries, for the model test's report */

static int cmp_keys(const void *a, const void *b)
{
	return btree_key_cmp(cmp_type, a, b);
}

/*
 * A sorted run of up to @max distinct keys in @keys (and values in @vals): consecutive keys
 * from a random one (a run appended at an edge), or random keys sorted.  Returns its length.
 */
static u32 make_run(const struct btree_type *type, u64 span, u32 max, u8 *keys, u8 *vals)
{
	u32 n = 1 + (u32)random() % max, out = 0;
	size_t ks = type->key_size;

	rand_key(type, span, keys);
	if (random() % 2) {
		for (out = 1; out < n; out++) {
			memcpy(keys + out * ks, keys + (out - 1) * ks, ks);
			if (!key_next(type, keys + out * ks))
				break;
		}
	} else {
		for (u32 i = 1; i < n; i++)
			rand_key(type, span, keys + i * ks);
		cmp_type = type;
		qsort(keys, n, ks, cmp_keys);
		for (u32 i = 0; i < n; i++)
			if (!out || btree_key_cmp(type, keys + (out - 1) * ks, keys + i * ks))
				memmove(keys + out++ * ks, keys + i * ks, ks);
	}
	for (u32 i = 0; i < out; i++)
		rand_val(type, vals + i * type->value_size);
	return out;
}

/* btree_insert_sorted of a run, checked against the model (stops at the first present key). */
static void model_insert_run(struct btree *t, struct env *e, struct model *m, u64 span)
{
	const struct btree_type *type = m->type;
	u8 *keys = xmalloc(400 * type->key_size), *vals = xmalloc(400 * (type->value_size + 1));
	u32 n = make_run(type, span, 80, keys, vals), want = 0, done;
	size_t at;
	int r;

	while (want < n && !model_has(m, keys + want * type->key_size, &at))
		want++;
	r = btree_insert_sorted(t, &e->tx, keys, vals, n, &done);
	assert_int_equal(r, want < n ? -EEXIST : 0);
	assert_int_equal(done, want);
	for (u32 i = 0; i < done; i++)
		model_put(m, keys + i * type->key_size, vals + i * type->value_size);
	runs_inserted += done;
	free(keys);
	free(vals);
}

/* btree_delete_range from a random key over up to about 120 entries, or an empty range. */
static void model_delete_range(struct btree *t, struct env *e, struct model *m, u64 span)
{
	const struct btree_type *type = m->type;
	u8 lo[BTREE_MAX_KEY_SIZE], hi[BTREE_MAX_KEY_SIZE];
	size_t i, j;
	u64 deleted;

	rand_key(type, span, lo);
	i = model_lb(m, lo);
	j = MIN(m->n, i + (size_t)random() % 120);
	if (j > i)
		memcpy(hi, mkey(m, j - 1), type->key_size);
	else
		memcpy(hi, lo, type->key_size); /* nothing, or lo alone */
	if (random() % 8 == 0) {
		/* lo above hi: an empty range */
		memcpy(hi, lo, type->key_size);
		memcpy(lo, hi, type->key_size);
		if (!key_next(type, lo))
			return;
	}
	i = model_lb(m, lo);
	for (j = i; j < m->n && btree_key_cmp(type, mkey(m, j), hi) <= 0;)
		j++;
	assert_int_equal(btree_delete_range(t, &e->tx, lo, hi, &deleted), 0);
	assert_int_equal(deleted, j - i);
	ranges_deleted += deleted;
	memmove(mkey(m, i), mkey(m, j), (m->n - j) * m->es);
	m->n -= j - i;
}

/*
 * btree_delete_sorted of up to 80 model keys picked in order from a random start (every
 * one, or every few), sometimes with an absent key among them: it stops there.
 */
static void model_delete_sorted(struct btree *t, struct env *e, struct model *m, u64 span)
{
	const struct btree_type *type = m->type;
	size_t ks = type->key_size, vs = type->value_size;
	u8 *keys = xmalloc(80 * ks), *vals = xmalloc(80 * vs + 1);
	size_t at[80], i, step = 1 + (size_t)random() % 4;
	u32 n = 0, want, done;
	int r;

	rand_key(type, span, keys);
	for (i = model_lb(m, keys); i < m->n && n < 1 + (u32)random() % 80; i += step) {
		memcpy(keys + n * ks, mkey(m, i), ks);
		at[n++] = i;
	}
	want = n;
	if (n > 1 && random() % 4 == 0) {
		/* an absent key in order: one just above an entry whose successor is not it */
		u32 x = (u32)random() % (n - 1);
		u8 k[BTREE_MAX_KEY_SIZE];
		size_t where;

		memcpy(k, keys + x * ks, ks);
		if (key_next(type, k) && !model_has(m, k, &where) &&
		    btree_key_cmp(type, k, keys + (x + 1) * ks) < 0) {
			memcpy(keys + (x + 1) * ks, k, ks);
			want = x + 1;
		}
	}
	r = btree_delete_sorted(t, &e->tx, keys, n, vals, &done);
	assert_int_equal(r, want < n ? -ENODATA : 0);
	assert_int_equal(done, want);
	for (u32 j = 0; j < done; j++)
		if (vs)
			assert_memory_equal(vals + j * vs, mval(m, at[j]), vs);
	for (u32 j = done; j-- > 0;)
		model_del(m, at[j]);
	ranges_deleted += done;
	free(keys);
	free(vals);
}

/*----------------------------------------------------------------
 * The model test
 *--------------------------------------------------------------*/

static void run_model(const struct btree_type *type, u64 seed, unsigned ops, u64 span,
		      unsigned min_height)
{
	u8 k[BTREE_MAX_KEY_SIZE], v[BTREE_MAX_VALUE_SIZE], vo[BTREE_MAX_VALUE_SIZE];
	struct blkptr empty = {0}, root;
	struct btree_cursor c;
	struct model m;
	struct btree *t;
	struct env e;
	size_t at;

	printf("btree model: type %s seed %llu ops %u span %llu\n", type->name,
	       (unsigned long long)seed, ops, (unsigned long long)span);
	srandom((unsigned)seed);
	max_height = 0;
	max_entries = 0;
	runs_inserted = ranges_deleted = 0;
	env_init(&e, 1 << 15, 64 << 20);
	model_init(&m, type);
	assert_int_equal(btree_open(type, e.cache, &empty, &t), 0);
	btree_cursor_init(&c, t);
	for (unsigned op = 0; op < ops; op++) {
		int dice = (int)(random() % 100), r;

		rand_key(type, span, k);
		/*
		 * Three phases: mostly inserts (grow), mostly deletes (shrink: merges, borrows,
		 * root collapses), then a mix.
		 */
		if (op < ops * 2 / 5)
			dice = dice < 70 ? dice * 40 / 70 : dice;
		else if (op < ops * 7 / 10 && dice < 40)
			dice = 40 + dice * 30 / 40;
		if (dice < 40 && random() % 16 == 0) {
			model_insert_run(t, &e, &m, span);
		} else if (dice >= 40 && dice < 70 && random() % 32 == 0) {
			if (random() % 2)
				model_delete_range(t, &e, &m, span);
			else
				model_delete_sorted(t, &e, &m, span);
		} else if (dice < 40) {
			bool over = random() % 2, had = model_has(&m, k, &at);

			rand_val(type, v);
			r = btree_insert(t, &e.tx, k, v,
					 over ? BTREE_OVERWRITE : BTREE_NOOVERWRITE);
			if (had && !over) {
				assert_int_equal(r, -EEXIST);
			} else {
				assert_int_equal(r, 0);
				model_put(&m, k, v);
			}
		} else if (dice < 70) {
			/* Delete: usually a present key. */
			if (m.n && random() % 4)
				memcpy(k, mkey(&m, (size_t)random() % m.n), type->key_size);
			r = btree_delete(t, &e.tx, k, vo);
			if (model_has(&m, k, &at)) {
				assert_int_equal(r, 0);
				if (type->value_size)
					assert_memory_equal(vo, mval(&m, at), type->value_size);
				model_del(&m, at);
			} else {
				assert_int_equal(r, -ENODATA);
			}
		} else if (dice < 85) {
			check_find(t, &m, k);
		} else if (dice < 93) {
			/* A short cursor run from a random bound, forward or back. */
			enum btree_seek how = random() % 2 ? BTREE_GE : BTREE_LE;
			bool fwd = how == BTREE_GE;
			long i = model_find(&m, k, how);
			int r2 = btree_cursor_seek(&c, k, how);

			for (int n = 0; n < 40; n++) {
				if (i < 0 || i >= (long)m.n) {
					assert_int_equal(r2, -ENODATA);
					break;
				}
				assert_int_equal(r2, 0);
				assert_memory_equal(btree_cursor_key(&c), mkey(&m, (size_t)i),
						    type->key_size);
				r2 = fwd ? btree_cursor_next(&c) : btree_cursor_prev(&c);
				i += fwd ? 1 : -1;
			}
		} else if (dice < 97) {
			env_sync(&e, t);
			check_tree(t, &m, &e, true);
		} else {
			/* Sync, then reopen from disk through an empty cache. */
			env_sync(&e, t);
			btree_root(t, &root);
			btree_cursor_fini(&c);
			btree_close(t);
			env_recache(&e);
			assert_int_equal(btree_open(type, e.cache, &root, &t), 0);
			btree_cursor_init(&c, t);
			check_tree(t, &m, &e, true);
			check_iteration(t, &m);
		}
		check_tree(t, &m, &e, false);
	}
	check_iteration(t, &m);
	env_sync(&e, t);
	check_tree(t, &m, &e, true);
	printf("btree model: at most %zu entries, height %u; %zu at the end; %llu inserted by "
	       "sorted runs, %llu deleted by ranges and sorted lists\n",
	       max_entries, max_height, m.n, (unsigned long long)runs_inserted,
	       (unsigned long long)ranges_deleted);
	assert_true(runs_inserted > 0 && ranges_deleted > 0);
	assert_true(max_height >= min_height);
	/* Destroy frees everything. */
	assert_int_equal(btree_destroy(t, &e.tx), 0);
	env_sync(&e, t);
	for (u64 b = 0; b < e.a.nblocks; b++)
		assert_int_equal(e.a.live[b], 0);
	btree_cursor_fini(&c);
	btree_close(t);
	free(m.v);
	env_fini(&e);
}

static void test_btree__model_exceptions(void **state)
{
	run_model(&type_exc, test_seed(1), 36000, 80000, 3);
}

static void test_btree__model_u64(void **state)
{
	run_model(&type_u64, test_seed(2), 12000, 8000, 2);
}

static void test_btree__model_odd_memcmp(void **state)
{
	run_model(&type_odd, test_seed(3), 12000, 30000, 2);
}

static void test_btree__model_big_deep(void **state)
{
	/* 6 entries a leaf, 25 a node: height 4-5 with a thousand keys. */
	run_model(&type_big, test_seed(4), 15000, 4000, 4);
}

static void test_btree__model_mid(void **state)
{
	run_model(&type_mid, test_seed(5), 12000, 6000, 3);
}

/*----------------------------------------------------------------
 * Copy-on-write, walks, corruption, failures
 *--------------------------------------------------------------*/

static void exc_key(u8 *k, u64 chunk, u64 death)
{
	btree_put_le64(k, 0, chunk);
	btree_put_le64(k, 1, death);
}

static void exc_val(u8 *v, u64 birth, u64 addr)
{
	btree_put_le64(v, 0, birth);
	btree_put_le64(v, 1, addr);
}

/* Fills @t with @n exceptions (chunk i * stride, death 1 + i % 97) and the model. */
static void fill_exc(struct env *e, struct btree *t, struct model *m, u64 n, u64 stride)
{
	u8 k[16], v[16];

	for (u64 i = 0; i < n; i++) {
		exc_key(k, i * stride, 1 + i % 97);
		exc_val(v, i % 97, 1000 + i);
		assert_int_equal(btree_insert(t, &e->tx, k, v, BTREE_NOOVERWRITE), 0);
		if (m)
			model_put(m, k, v);
	}
}

static void test_btree__cow_never_touches_synced_blocks(void **state)
{
	struct refset old = {NULL, 0, 0};
	struct blkptr empty = {0}, r1;
	struct model m1, m2;
	struct btree *t, *t1;
	u8 k[16], v[16], *saved;
	struct env e;
	u64 seed = test_seed(21), allocs;

	printf("cow: seed %llu\n", (unsigned long long)seed);
	srandom((unsigned)seed);
	env_init(&e, 1 << 14, 16 << 20);
	model_init(&m1, &type_exc);
	model_init(&m2, &type_exc);
	assert_int_equal(btree_open(&type_exc, e.cache, &empty, &t), 0);
	fill_exc(&e, t, &m1, 6000, 3);
	env_sync(&e, t);
	btree_root(t, &r1);
	for (size_t i = 0; i < m1.n; i++)
		model_put(&m2, mkey(&m1, i), mval(&m1, i));

	/* Remember the synced tree's blocks and their bytes. */
	old.nblocks = e.a.nblocks;
	old.ref = xzalloc(old.nblocks);
	assert_int_equal(btree_verify(t, ref_block, &old, NULL, NULL, 0), 0);
	saved = xmalloc(old.nblocks * DDSNAP_BLOCK_SIZE);
	for (u64 b = 0; b < old.nblocks; b++)
		if (old.ref[b])
			assert_int_equal(bdev_read(e.bdev, saved + b * DDSNAP_BLOCK_SIZE,
						   DDSNAP_BLOCK_SIZE, b * DDSNAP_BLOCK_SIZE),
					 0);

	/* Change it a lot in the next txg. */
	for (int i = 0; i < 3000; i++) {
		size_t at;

		exc_key(k, (u64)random() % 20000, 1 + (u64)random() % 97);
		exc_val(v, 7, (u64)random());
		if (random() % 3 && model_has(&m2, k, &at)) {
			assert_int_equal(btree_delete(t, &e.tx, k, NULL), 0);
			model_del(&m2, at);
		} else {
			assert_int_equal(btree_insert(t, &e.tx, k, v, BTREE_OVERWRITE), 0);
			model_put(&m2, k, v);
		}
	}
	/* No block of the synced tree was allocated again in this txg. */
	for (u64 i = 0; i < e.a.nborn; i++)
		assert_int_equal(old.ref[e.a.born[i]], 0);
	/* A second change to a node already shadowed in this txg allocates nothing. */
	exc_key(k, 3, 1000);
	assert_int_equal(btree_insert(t, &e.tx, k, v, BTREE_NOOVERWRITE), 0);
	model_put(&m2, k, v);
	allocs = e.a.allocs;
	exc_key(k, 3, 1001);
	assert_int_equal(btree_insert(t, &e.tx, k, v, BTREE_NOOVERWRITE), 0);
	model_put(&m2, k, v);
	assert_int_equal(e.a.allocs, allocs);
	env_sync(&e, t);
	check_tree(t, &m2, &e, true);

	/* The synced blocks are byte-for-byte unchanged on the device... */
	for (u64 b = 0; b < old.nblocks; b++) {
		u8 now[DDSNAP_BLOCK_SIZE];

		if (!old.ref[b])
			continue;
		assert_int_equal(bdev_read(e.bdev, now, DDSNAP_BLOCK_SIZE, b * DDSNAP_BLOCK_SIZE),
				 0);
		assert_memory_equal(now, saved + b * DDSNAP_BLOCK_SIZE, DDSNAP_BLOCK_SIZE);
	}
	/* ...so the old root still reads back the old contents, from disk. */
	env_recache(&e);
	assert_int_equal(btree_open(&type_exc, e.cache, &r1, &t1), 0);
	check_iteration(t1, &m1);
	assert_int_equal(btree_verify(t1, NULL, NULL, NULL, NULL, 0), 0);
	btree_close(t1);
	btree_close(t);
	free(saved);
	free(old.ref);
	free(m1.v);
	free(m2.v);
	env_fini(&e);
}

struct levelcount {
	u64 txg;
	u64 nodes, leaves; /* born in txg */
	u64 all_leaves;
};

static int count_born(void *arg, u64 blocknr, u64 birth, unsigned level)
{
	struct levelcount *lc = arg;

	lc->all_leaves += !level;
	if (birth == lc->txg) {
		lc->nodes++;
		lc->leaves += !level;
	}
	return 0;
}

struct reported {
	u64 n, bad;
	u64 min_death;
};

static int report_entry(void *arg, const void *key, const void *value)
{
	struct reported *rp = arg;

	rp->n++;
	rp->bad += btree_get_le64(key, 1) <= rp->min_death;
	return 0;
}

static int stop_entry(void *arg, const void *key, const void *value)
{
	return ++*(int *)arg == 5 ? 42 : 0;
}

static void test_btree__pruned_walk_visits_only_changes(void **state)
{
	struct blkptr empty = {0};
	struct btree_walk w;
	struct levelcount lc;
	struct reported rp;
	struct btree_stats st;
	struct btree *t;
	struct env e;
	u8 k[16], v[16];
	int stops = 0;
	const u64 n = 100000, changed = n / 100;

	env_init(&e, 1 << 14, 64 << 20);
	assert_int_equal(btree_open(&type_exc, e.cache, &empty, &t), 0);
	fill_exc(&e, t, NULL, n, 1); /* deaths 1..97 */
	env_sync(&e, t);
	/* 1% new exceptions (death 500), in 10 runs of consecutive chunks. */
	for (u64 i = 0; i < changed; i++) {
		exc_key(k, (i / 100) * 9973 + i % 100, 500);
		exc_val(v, 98, i);
		assert_int_equal(btree_insert(t, &e.tx, k, v, BTREE_NOOVERWRITE), 0);
	}
	env_sync(&e, t);
	lc = (struct levelcount){.txg = e.tx.txg - 1};
	assert_int_equal(btree_verify(t, count_born, &lc, &st, NULL, 0), 0);
	printf("walk: %llu leaves, height %u; %llu leaves and %llu nodes rewritten\n",
	       (unsigned long long)lc.all_leaves, st.height, (unsigned long long)lc.leaves,
	       (unsigned long long)lc.nodes);
	assert_true(lc.leaves <= 40);

	/* Send-style: everything born after the first txg, and nothing else. */
	w = (struct btree_walk){.flags = BTREE_WALK_BIRTH, .min_birth = e.tx.txg - 2};
	assert_int_equal(btree_walk(t, &w), 0);
	assert_int_equal(w.leaves_visited, lc.leaves);
	assert_int_equal(w.nodes_visited, lc.nodes);
	assert_true(w.nodes_visited <= 2 * lc.leaves + st.height);

	/* Changelist-style: deaths after 100 are exactly the new exceptions. */
	rp = (struct reported){.min_death = 100};
	w = (struct btree_walk){
		.flags = BTREE_WALK_AGGR, .min_aggr = 100, .entry = report_entry, .arg = &rp};
	assert_int_equal(btree_walk(t, &w), 0);
	assert_int_equal(rp.n, changed);
	assert_int_equal(rp.bad, 0);
	assert_int_equal(w.entries_reported, changed);
	assert_true(w.leaves_visited <= lc.leaves);
	assert_true(w.nodes_visited <= 2 * w.leaves_visited + st.height);

	/* Both tests together; nothing newer than the last txg; early stop. */
	w.flags = BTREE_WALK_AGGR | BTREE_WALK_BIRTH;
	w.min_birth = e.tx.txg - 2;
	rp.n = 0;
	assert_int_equal(btree_walk(t, &w), 0);
	assert_int_equal(rp.n, changed);
	w = (struct btree_walk){.flags = BTREE_WALK_BIRTH, .min_birth = e.tx.txg - 1};
	assert_int_equal(btree_walk(t, &w), 0);
	assert_int_equal(w.nodes_visited, 0);
	w = (struct btree_walk){.entry = stop_entry, .arg = &stops};
	assert_int_equal(btree_walk(t, &w), 42);
	assert_int_equal(w.entries_reported, 5);
	btree_close(t);
	env_fini(&e);
}

/* Reads block @b raw from the device. */
static void raw_read(struct env *e, u64 b, void *buf)
{
	assert_int_equal(bdev_read(e->bdev, buf, DDSNAP_BLOCK_SIZE, b * DDSNAP_BLOCK_SIZE), 0);
}

static void raw_write(struct env *e, u64 b, const void *buf)
{
	assert_int_equal(bdev_write(e->bdev, buf, DDSNAP_BLOCK_SIZE, b * DDSNAP_BLOCK_SIZE), 0);
}

/* Applies @mutate to a copy of @good, reseals it, and expects the validator to refuse it. */
static void expect_refused(const void *good, const struct block_type *bt, u64 blocknr,
			   void (*mutate)(struct btree_node_disk *n), const char *what)
{
	u8 buf[DDSNAP_BLOCK_SIZE];
	char why[200];
	int r;

	memcpy(buf, good, sizeof(buf));
	mutate((struct btree_node_disk *)buf);
	block_seal(buf, bt, blocknr, le64_to_cpu(((const struct btree_node_disk *)good)->hdr.txg));
	r = block_validate(buf, bt, blocknr, why, sizeof(why));
	if (r != -EILSEQ)
		fail_msg("%s: validator returned %d", what, r);
	printf("refused (%s): %s\n", what, why);
}

static void m_swap_keys(struct btree_node_disk *n)
{
	u8 t[16];

	memcpy(t, n->payload, 16);
	memcpy(n->payload, n->payload + 16, 16);
	memcpy(n->payload + 16, t, 16);
}

static void m_dup_key(struct btree_node_disk *n)
{
	memcpy(n->payload + 16, n->payload, 16);
}

static void m_count_over(struct btree_node_disk *n)
{
	n->nr_entries = cpu_to_le16(500);
}

static void m_count_zero(struct btree_node_disk *n)
{
	n->nr_entries = 0;
}

static void m_level(struct btree_node_disk *n)
{
	n->level ^= 1;
}

static void m_ksize(struct btree_node_disk *n)
{
	n->key_size = cpu_to_le16(12);
}

static void m_vsize(struct btree_node_disk *n)
{
	n->value_size = cpu_to_le16(4000);
}

static void m_order(struct btree_node_disk *n)
{
	n->key_order = 7;
}

static void m_reserved(struct btree_node_disk *n)
{
	n->reserved = cpu_to_le64(1);
}

static void m_slack(struct btree_node_disk *n)
{
	n->payload[BTREE_NODE_PAYLOAD - 1] = 1;
}

static void m_child_future(struct btree_node_disk *n)
{
	/* Child 0's birth txg after the node's own txg. */
	u8 *ptr = n->payload + (BTREE_NODE_PAYLOAD / 48) * 16;

	btree_put_le64(ptr, 1, 999);
}

static void m_child_zero(struct btree_node_disk *n)
{
	memset(n->payload + (BTREE_NODE_PAYLOAD / 48) * 16, 0, 8);
}

static void test_btree__corrupt_nodes_refused(void **state)
{
	struct blkptr empty = {0}, root, leafp;
	struct btree *t, *t2;
	struct env e;
	u8 leaf[DDSNAP_BLOCK_SIZE], node[DDSNAP_BLOCK_SIZE], buf[DDSNAP_BLOCK_SIZE];
	u8 k[16], v[16];

	env_init(&e, 1 << 12, 8 << 20);
	assert_int_equal(btree_open(&type_exc, e.cache, &empty, &t), 0);
	for (u64 i = 0; i < 10; i++) {
		exc_key(k, 1000000 + i, 1);
		exc_val(v, 0, i);
		assert_int_equal(btree_insert(t, &e.tx, k, v, BTREE_NOOVERWRITE), 0);
	}
	env_sync(&e, t);
	btree_root(t, &leafp);
	raw_read(&e, leafp.blocknr, leaf);
	fill_exc(&e, t, NULL, 1000, 1);
	env_sync(&e, t); /* txg 2: now a two-level tree */
	btree_root(t, &root);
	raw_read(&e, root.blocknr, node);
	assert_int_equal(block_validate(leaf, &btree_leaf_block_type, leafp.blocknr, NULL, 0), 0);
	assert_int_equal(block_validate(node, &btree_node_block_type, root.blocknr, NULL, 0), 0);

	expect_refused(leaf, &btree_leaf_block_type, leafp.blocknr, m_swap_keys, "keys swapped");
	expect_refused(leaf, &btree_leaf_block_type, leafp.blocknr, m_dup_key, "duplicate key");
	expect_refused(leaf, &btree_leaf_block_type, leafp.blocknr, m_count_over, "count");
	expect_refused(leaf, &btree_leaf_block_type, leafp.blocknr, m_count_zero, "empty");
	expect_refused(leaf, &btree_leaf_block_type, leafp.blocknr, m_level, "leaf level");
	expect_refused(leaf, &btree_leaf_block_type, leafp.blocknr, m_ksize, "key size");
	expect_refused(leaf, &btree_leaf_block_type, leafp.blocknr, m_vsize, "value size");
	expect_refused(leaf, &btree_leaf_block_type, leafp.blocknr, m_order, "order");
	expect_refused(leaf, &btree_leaf_block_type, leafp.blocknr, m_reserved, "reserved");
	expect_refused(leaf, &btree_leaf_block_type, leafp.blocknr, m_slack, "slack");
	expect_refused(node, &btree_node_block_type, root.blocknr, m_level, "node level");
	expect_refused(node, &btree_node_block_type, root.blocknr, m_swap_keys, "node keys");
	expect_refused(node, &btree_node_block_type, root.blocknr, m_count_zero, "node count");
	expect_refused(node, &btree_node_block_type, root.blocknr, m_vsize, "node value size");
	expect_refused(node, &btree_node_block_type, root.blocknr, m_child_future, "child birth");
	expect_refused(node, &btree_node_block_type, root.blocknr, m_child_zero, "child zero");

	/* End to end: a root with a valid checksum (and a pointer that agrees) but bad keys. */
	memcpy(buf, node, sizeof(buf));
	m_swap_keys((struct btree_node_disk *)buf);
	root.csum = block_seal(buf, &btree_node_block_type, root.blocknr, root.birth_txg);
	raw_write(&e, root.blocknr, buf);
	env_recache(&e);
	assert_int_equal(btree_open(&type_exc, e.cache, &root, &t2), -EILSEQ);

	/* A child resealed with different contents: its parent's checksum disagrees. */
	raw_write(&e, root.blocknr, node);
	btree_root(t, &root);
	{
		struct blkptr c;
		struct btree_node_disk *nd = (struct btree_node_disk *)node;
		u8 child[DDSNAP_BLOCK_SIZE];
		u8 *cp = nd->payload + (BTREE_NODE_PAYLOAD / 48) * 16;

		c.blocknr = btree_get_le64(cp, 0);
		c.birth_txg = btree_get_le64(cp, 1);
		raw_read(&e, c.blocknr, child);
		child[DDSNAP_BLOCK_SIZE - 1] = 0;			 /* slack stays zero */
		((struct btree_node_disk *)child)->payload[16 + 8] ^= 1; /* a value byte */
		block_seal(child, &btree_leaf_block_type, c.blocknr, c.birth_txg);
		raw_write(&e, c.blocknr, child);
		env_recache(&e);
		btree_close(t);
		assert_int_equal(btree_open(&type_exc, e.cache, &root, &t), 0);
		exc_key(k, 0, 1);
		assert_int_equal(btree_lookup(t, k, v), -EILSEQ);
		/* The same block claiming another txg (a lost or misplaced write): -ESTALE. */
		raw_read(&e, c.blocknr, child);
		((struct btree_node_disk *)child)->payload[16 + 8] ^= 1;
		block_seal(child, &btree_leaf_block_type, c.blocknr, c.birth_txg + 5);
		raw_write(&e, c.blocknr, child);
		env_recache(&e);
		btree_close(t);
		assert_int_equal(btree_open(&type_exc, e.cache, &root, &t), 0);
		assert_int_equal(btree_lookup(t, k, v), -ESTALE);
		/* Torn/bit-flipped (checksum no longer matches): -EILSEQ. */
		block_seal(child, &btree_leaf_block_type, c.blocknr, c.birth_txg);
		child[100] ^= 0x40;
		raw_write(&e, c.blocknr, child);
		env_recache(&e);
		btree_close(t);
		assert_int_equal(btree_open(&type_exc, e.cache, &root, &t), 0);
		assert_int_equal(btree_lookup(t, k, v), -EILSEQ);
	}
	btree_close(t);
	env_fini(&e);
}

static void test_btree__missing_sync_detected(void **state)
{
	struct blkptr empty = {0}, root;
	struct btree *t;
	struct env e;
	u8 k[16], v[16];

	env_init(&e, 1 << 12, 8 << 20);
	assert_int_equal(btree_open(&type_exc, e.cache, &empty, &t), 0);
	fill_exc(&e, t, NULL, 2000, 1);
	/* Written without btree_sync: the pointers still say checksum 0. */
	btree_root(t, &root);
	env_sync(&e, NULL);
	env_recache(&e);
	btree_close(t);
	assert_int_equal(btree_open(&type_exc, e.cache, &root, &t), -EILSEQ);
	(void)k;
	(void)v;
	env_fini(&e);
}

static void test_btree__enospc_leaves_tree_unchanged(void **state)
{
	struct blkptr empty = {0};
	struct model m;
	struct btree *t;
	struct env e;
	u8 k[16], v[16];
	u64 seed = test_seed(31);
	int failures = 0;

	printf("enospc: seed %llu\n", (unsigned long long)seed);
	srandom((unsigned)seed);
	env_init(&e, 1 << 14, 16 << 20);
	model_init(&m, &type_exc);
	assert_int_equal(btree_open(&type_exc, e.cache, &empty, &t), 0);
	fill_exc(&e, t, &m, 3000, 2);
	env_sync(&e, t);
	for (int i = 0; i < 3000; i++) {
		size_t at;
		bool del = random() % 2 && m.n;
		int r;

		e.a.fail_after = 1 + (u64)random() % 4;
		if (del) {
			memcpy(k, mkey(&m, (size_t)random() % m.n), 16);
			r = btree_delete(t, &e.tx, k, NULL);
		} else {
			exc_key(k, (u64)random() % 8000, 1 + (u64)random() % 97);
			exc_val(v, 1, 2);
			r = btree_insert(t, &e.tx, k, v, BTREE_OVERWRITE);
		}
		e.a.fail_after = 0;
		if (r == -ENOSPC) {
			failures++;
		} else {
			assert_int_equal(r, 0);
			if (del) {
				assert_true(model_has(&m, k, &at));
				model_del(&m, at);
			} else {
				model_put(&m, k, v);
			}
		}
		check_tree(t, &m, &e, true);
		if (i % 50 == 49)
			env_sync(&e, t);
	}
	printf("enospc: %d operations failed cleanly\n", failures);
	assert_true(failures > 100);
	check_iteration(t, &m);
	btree_close(t);
	free(m.v);
	env_fini(&e);
}

/* The allocator's state at a sync, to roll back to at a simulated crash. */
struct talloc_saved {
	u8 *live;
	u64 *free, nfree, next;
};

static void talloc_save(const struct talloc *a, struct talloc_saved *sv)
{
	sv->live = xmalloc(a->nblocks);
	memcpy(sv->live, a->live, a->nblocks);
	sv->free = xmalloc(a->nblocks * sizeof(u64));
	memcpy(sv->free, a->free, a->nfree * sizeof(u64));
	sv->nfree = a->nfree;
	sv->next = a->next;
}

static void talloc_restore(struct talloc *a, struct talloc_saved *sv)
{
	memcpy(a->live, sv->live, a->nblocks);
	memcpy(a->free, sv->free, sv->nfree * sizeof(u64));
	a->nfree = sv->nfree;
	a->next = sv->next;
	a->ndeferred = a->nborn = 0;
	free(sv->live);
	free(sv->free);
}

/*
 * btree_insert_sorted, btree_delete_range and btree_delete_sorted failing for want of a
 * block partway: the tree
 * holds exactly the entries done (or deleted) before the failure, verifies, and leaks
 * nothing.  Then the crash model: txgs of runs and ranges whose blocks are written to the
 * device (cache_sync) but whose root is never committed, each followed by a reopen of the
 * last committed root through an empty cache: it reads back exactly the model of that
 * commit (no block of a committed tree was overwritten), and the allocator rolled back to
 * that commit matches its blocks exactly.
 */
static void test_btree__sorted_runs_and_ranges_enospc_crash(void **state)
{
	struct blkptr empty = {0}, root;
	struct talloc_saved sv;
	struct model m, m0;
	struct btree *t;
	struct env e;
	u64 seed = test_seed(41);
	int failures = 0, crashes = 0;

	printf("runs/ranges: seed %llu\n", (unsigned long long)seed);
	srandom((unsigned)seed);
	env_init(&e, 1 << 14, 16 << 20);
	model_init(&m, &type_exc);
	assert_int_equal(btree_open(&type_exc, e.cache, &empty, &t), 0);
	fill_exc(&e, t, &m, 6000, 3);
	env_sync(&e, t);
	for (int i = 0; i < 600; i++) {
		u8 keys[400 * 16], vals[400 * 16], lo[16], hi[16];
		u32 n = make_run(&type_exc, 30000, 400, keys, vals), done;
		u64 deleted;
		size_t at, j;
		int r;

		e.a.fail_after = 1 + (u64)random() % 6;
		if (random() % 2) {
			for (j = 0; j < n && !model_has(&m, keys + j * 16, &at);)
				j++;
			r = btree_insert_sorted(t, &e.tx, keys, vals, n, &done);
			assert_true(r == -ENOSPC || r == (j < n ? -EEXIST : 0));
			assert_true(done <= j && (r == -ENOSPC || done == j));
			for (u32 x = 0; x < done; x++)
				model_put(&m, keys + x * 16, vals + x * 16);
		} else if (random() % 2) {
			u8 dk[80 * 16], dv[80 * 16];
			size_t pos[80], x = 0, cnt = 0;

			rand_key(&type_exc, 30000, dk);
			for (x = model_lb(&m, dk); x < m.n && cnt < 80; x += 2) {
				memcpy(dk + cnt * 16, mkey(&m, x), 16);
				pos[cnt++] = x;
			}
			r = btree_delete_sorted(t, &e.tx, dk, (u32)cnt, dv, &done);
			assert_true(r == -ENOSPC || r == 0);
			assert_true(done <= cnt && (r || done == cnt));
			for (u32 y = done; y-- > 0;)
				model_del(&m, pos[y]);
		} else {
			rand_key(&type_exc, 30000, lo);
			at = model_lb(&m, lo);
			j = MIN(m.n, at + (size_t)random() % 900);
			memcpy(hi, j > at ? mkey(&m, j - 1) : lo, 16);
			for (j = at; j < m.n && btree_key_cmp(&type_exc, mkey(&m, j), hi) <= 0;)
				j++;
			r = btree_delete_range(t, &e.tx, lo, hi, &deleted);
			assert_true(r == -ENOSPC || r == 0);
			assert_true(deleted <= j - at);
			assert_true(r || deleted == j - at);
			memmove(mkey(&m, at), mkey(&m, at + deleted), (m.n - at - deleted) * m.es);
			m.n -= deleted;
		}
		e.a.fail_after = 0;
		failures += r == -ENOSPC;
		check_tree(t, &m, &e, true);
		if (i % 20 == 19)
			env_sync(&e, t);
	}
	printf("runs/ranges: %d failed partway, each leaving a valid tree\n", failures);
	assert_true(failures > 50);

	for (int txg = 0; txg < 40; txg++) {
		bool crash = random() % 2;

		env_sync(&e, t);
		btree_root(t, &root);
		m0 = m;
		m0.v = xmalloc(m.n * m.es + 1);
		memcpy(m0.v, m.v, m.n * m.es);
		m0.cap = m.n;
		talloc_save(&e.a, &sv);
		for (int op = 0; op < 8; op++) {
			int d = (int)(random() % 3);

			if (d == 0)
				model_insert_run(t, &e, &m, 30000);
			else if (d == 1)
				model_delete_range(t, &e, &m, 30000);
			else
				model_delete_sorted(t, &e, &m, 30000);
		}
		check_tree(t, &m, &e, false);
		/* The txg's blocks reach the device; its root is committed only without a crash. */
		assert_int_equal(btree_sync(t, &e.tx), 0);
		assert_int_equal(cache_sync(e.cache, e.tx.txg), 0);
		assert_int_equal(bdev_flush(e.bdev), 0);
		if (!crash) {
			free(sv.live);
			free(sv.free);
			free(m0.v);
			continue;
		}
		crashes++;
		btree_close(t);
		cache_destroy(e.cache);
		e.cache = cache_create(e.bdev, e.budget);
		cache_set_synced_txg(e.cache, e.tx.txg - 1);
		e.tx.cache = e.cache;
		talloc_restore(&e.a, &sv);
		free(m.v);
		m = m0;
		assert_int_equal(btree_open(&type_exc, e.cache, &root, &t), 0);
		check_tree(t, &m, &e, true);
		check_iteration(t, &m);
	}
	printf("runs/ranges: %d crashes, each reopening its last commit intact\n", crashes);
	assert_true(crashes > 5);
	btree_close(t);
	free(m.v);
	env_fini(&e);
}

static void test_btree__cursor_survives_changes(void **state)
{
	struct blkptr empty = {0};
	struct btree_cursor c;
	struct model m;
	struct btree *t;
	struct env e;
	u64 seen = 0;
	int r;

	env_init(&e, 1 << 12, 8 << 20);
	model_init(&m, &type_exc);
	assert_int_equal(btree_open(&type_exc, e.cache, &empty, &t), 0);
	fill_exc(&e, t, &m, 3000, 1);
	btree_cursor_init(&c, t);
	/* Delete every other entry while walking forward over the tree. */
	for (r = btree_cursor_seek(&c, NULL, BTREE_FIRST); !r; r = btree_cursor_next(&c)) {
		u8 k[16];
		size_t at;

		memcpy(k, btree_cursor_key(&c), 16);
		assert_int_equal(btree_get_le64(k, 0), seen);
		if (seen++ % 2 == 0) {
			assert_int_equal(btree_delete(t, &e.tx, k, NULL), 0);
			assert_true(model_has(&m, k, &at));
			model_del(&m, at);
		}
	}
	assert_int_equal(r, -ENODATA);
	assert_int_equal(seen, 3000);
	assert_int_equal(btree_cursor_next(&c), -EINVAL);
	env_sync(&e, t);
	check_tree(t, &m, &e, true);
	check_iteration(t, &m);
	btree_cursor_fini(&c);
	btree_close(t);
	free(m.v);
	env_fini(&e);
}

/*
 * A cold walk: without readahead the first entry costs a read per level and each leaf a
 * read of its own; with it the first entry brings every leaf of the parent into the cache,
 * in one request per run of consecutive addresses (a tree written in one txg has its leaves
 * in order: a couple of requests), nothing is read again, and the walk is the same (the
 * server's open, engine.c).
 */
static void test_btree__cursor_readahead(void **state)
{
	struct blkptr empty = {0}, root;
	struct iopool *pool = iopool_create(3);
	struct btree_stats bs;
	struct cache_stats st;
	struct btree_cursor c;
	struct btree *t;
	struct env e;
	u64 seen = 0, opened, first[2], total[2], cached[2];
	int r;

	env_init(&e, 1 << 12, 8 << 20);
	assert_int_equal(btree_open(&type_exc, e.cache, &empty, &t), 0);
	fill_exc(&e, t, NULL, 1500, 1);
	env_sync(&e, t);
	assert_int_equal(btree_stats(t, &bs), 0);
	print_message("h %u leaves %llu internal %llu\n", bs.height, (unsigned long long)bs.leaves,
		      (unsigned long long)bs.internal);
	assert_int_equal(bs.height, 2); /* one parent: every leaf is its child */
	assert_true(bs.leaves > 10);
	btree_root(t, &root);
	for (int ra = 0; ra < 2; ra++) {
		btree_close(t);
		env_recache(&e);
		assert_int_equal(btree_open(&type_exc, e.cache, &root, &t), 0);
		cache_stats(e.cache, &st);
		opened = st.reads;
		btree_cursor_init(&c, t);
		if (ra)
			btree_cursor_readahead(&c, pool);
		assert_int_equal(btree_cursor_seek(&c, NULL, BTREE_FIRST), 0);
		cache_stats(e.cache, &st);
		first[ra] = st.reads - opened;
		cached[ra] = st.cached;
		for (seen = 0, r = 0; !r; r = btree_cursor_next(&c))
			assert_int_equal(btree_get_le64(btree_cursor_key(&c), 0), seen++);
		assert_int_equal(r, -ENODATA);
		assert_int_equal(seen, 1500);
		cache_stats(e.cache, &st);
		total[ra] = st.reads - opened;
		btree_cursor_fini(&c);
	}
	assert_true(first[0] <= 2);
	assert_int_equal(cached[1], cached[0] + bs.leaves - 1); /* the other leaves came along */
	assert_true(first[1] <= first[0] + 2);			/* in a request or two */
	assert_int_equal(total[0], first[0] + bs.leaves - 1);	/* one read per leaf */
	assert_int_equal(total[1], first[1]);			/* nothing read twice */
	/* A pool without threads would read serially: it is ignored. */
	iopool_destroy(pool);
	pool = iopool_create(0);
	btree_close(t);
	env_recache(&e);
	assert_int_equal(btree_open(&type_exc, e.cache, &root, &t), 0);
	cache_stats(e.cache, &st);
	opened = st.reads;
	btree_cursor_init(&c, t);
	btree_cursor_readahead(&c, pool);
	assert_int_equal(btree_cursor_seek(&c, NULL, BTREE_FIRST), 0);
	cache_stats(e.cache, &st);
	assert_int_equal(st.reads - opened, first[0]);
	btree_cursor_fini(&c);
	btree_close(t);
	iopool_destroy(pool);
	env_fini(&e);
}

struct reader_arg {
	struct btree *t;
	const struct model *m;
	unsigned seed;
	int errors;
};

static void *reader_main(void *p)
{
	struct reader_arg *ra = p;
	u8 v[16];

	for (int i = 0; i < 20000; i++) {
		size_t at = (size_t)rand_r(&ra->seed) % ra->m->n;

		if (btree_lookup(ra->t, mkey(ra->m, at), v) ||
		    memcmp(v, mval(ra->m, at), sizeof(v)))
			ra->errors++;
	}
	return NULL;
}

/*
 * The documented concurrency: readers on their own handle of the last synced root run in
 * threads while the writer changes the tree in the open txg.
 */
static void test_btree__readers_of_synced_root_during_writes(void **state)
{
	struct reader_arg ra[2];
	pthread_t th[2];
	struct blkptr empty = {0}, r1;
	struct btree *t, *snap[2];
	struct model m;
	struct env e;
	u8 k[16], v[16];

	env_init(&e, 1 << 14, 1 << 20); /* a small cache: readers miss and evict */
	model_init(&m, &type_exc);
	assert_int_equal(btree_open(&type_exc, e.cache, &empty, &t), 0);
	fill_exc(&e, t, &m, 20000, 1);
	env_sync(&e, t);
	btree_root(t, &r1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(btree_open(&type_exc, e.cache, &r1, &snap[i]), 0);
		ra[i] = (struct reader_arg){snap[i], &m, 7u + (unsigned)i, 0};
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &ra[i]), 0);
	}
	for (u64 i = 0; i < 20000; i++) {
		exc_key(k, i, 1 + i % 97);
		if (i % 3) {
			assert_int_equal(btree_delete(t, &e.tx, k, NULL), 0);
		} else {
			exc_val(v, 5, i);
			assert_int_equal(btree_insert(t, &e.tx, k, v, BTREE_OVERWRITE), 0);
		}
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ra[i].errors, 0);
		btree_close(snap[i]);
	}
	env_sync(&e, t);
	btree_close(t);
	free(m.v);
	env_fini(&e);
}

static void test_btree__bad_types_refused(void **state)
{
	static const struct btree_type odd_le64 = {"x", 12, 8, BTREE_KEY_LE64, NULL};
	static const struct btree_type huge = {"x", 8, 4000, BTREE_KEY_LE64, NULL};
	static const struct btree_type nokey = {"x", 0, 8, BTREE_KEY_MEMCMP, NULL};
	struct blkptr empty = {0};
	struct btree *t;
	struct env e;

	env_init(&e, 64, 1 << 20);
	assert_int_equal(btree_open(&odd_le64, e.cache, &empty, &t), -EINVAL);
	assert_int_equal(btree_open(&huge, e.cache, &empty, &t), -EINVAL);
	assert_int_equal(btree_open(&nokey, e.cache, &empty, &t), -EINVAL);
	env_fini(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_btree__model_exceptions),
		cmocka_unit_test(test_btree__model_u64),
		cmocka_unit_test(test_btree__model_odd_memcmp),
		cmocka_unit_test(test_btree__model_big_deep),
		cmocka_unit_test(test_btree__model_mid),
		cmocka_unit_test(test_btree__cow_never_touches_synced_blocks),
		cmocka_unit_test(test_btree__pruned_walk_visits_only_changes),
		cmocka_unit_test(test_btree__corrupt_nodes_refused),
		cmocka_unit_test(test_btree__missing_sync_detected),
		cmocka_unit_test(test_btree__enospc_leaves_tree_unchanged),
		cmocka_unit_test(test_btree__sorted_runs_and_ranges_enospc_crash),
		cmocka_unit_test(test_btree__cursor_survives_changes),
		cmocka_unit_test(test_btree__cursor_readahead),
		cmocka_unit_test(test_btree__readers_of_synced_root_during_writes),
		cmocka_unit_test(test_btree__bad_types_refused),
	};

	return cmocka_run_group_tests_name("btree", tests, NULL, NULL);
}
