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
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "btree.h"
#include "bdev.h"
#include "cache.h"

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
	const char *s = getenv("BTREE_SEED");

	return s ? strtoull(s, NULL, 0) : dflt;
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
		if (dice < 40) {
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
	printf("btree model: at most %zu entries, height %u; %zu at the end\n", max_entries,
	       max_height, m.n);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_btree__model_exceptions),
		cmocka_unit_test(test_btree__model_u64),
		cmocka_unit_test(test_btree__model_odd_memcmp),
		cmocka_unit_test(test_btree__model_big_deep),
		cmocka_unit_test(test_btree__model_mid),
	};

	return cmocka_run_group_tests_name("btree", tests, NULL, NULL);
}
