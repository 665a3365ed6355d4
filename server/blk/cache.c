// SPDX-License-Identifier: GPL-2.0-only
/*
 * cache.c - the metadata block cache.
 *
 * What.  A hash table of DDSNAP_BLOCK_SIZE buffers keyed by block number over one struct
 * bdev.  Each entry is in exactly one of three states:
 *
 *   clean, unreferenced  -> on the LRU list; may be evicted at any time
 *   clean, referenced    -> on no list; stays until the last cache_put()
 *   dirty                -> on the dirty list (referenced or not); leaves only by
 *                           cache_sync() (becomes clean) or cache_forget() (freed)
 *
 * Invariants.
 *  - An entry read from the device passed block_validate() against its type before it was
 *    inserted; a block that fails validation is never inserted, so every cached clean block
 *    is a validated block of the type recorded in the entry.
 *  - A dirty entry was created by cache_new()/cache_shadow() or dirtied by cache_dirty() in
 *    the open txg; a clean entry whose header txg is at or below the last synced txg is
 *    never dirtied again (copy-on-write; cache_dirty VERIFYs it).
 *  - A dirty entry that was sealed with cache_seal() must not change afterwards unless
 *    cache_dirty() is called again: its checksum is already in its parent.  cache_sync()
 *    VERIFYs this, because a silent mismatch would be a corrupt tree on disk.
 *  - cached <= budget whenever enough entries are clean and unreferenced; otherwise the
 *    cache grows and counts it in over_budget.
 *
 * Locking.  One mutex protects the table, the lists, the reference counts and the stats.
 * Device reads on a miss run without the mutex; if two threads miss the same block, both
 * read it and the second one to come back uses the first one's entry.  cache_sync() takes a
 * reference on every dirty entry under the mutex, writes without it, and marks the entries
 * clean under it again; callers keep the open txg's structures quiet during a sync (the txg
 * layer does), since the data of a dirty block belongs to the thread that dirtied it.
 *
 * Crash argument.  Nothing dirty reaches the device before cache_sync(), and cache_sync()
 * writes only to addresses that struct tx allocated in the open txg, which no block of the
 * last durable txg uses.  If we crash anywhere in cache_sync(), the last uberblock still
 * points to the previous txg's blocks, all of which are untouched.
 */
#include "blk/cache.h"
#include <pthread.h>
#include <string.h>

/*
 * cache_sync() writes runs of consecutive dirty blocks as one request of up to this many
 * blocks (256 KiB): large enough to amortise per-request cost on disks and SSDs, small
 * enough that the staging buffer is a trivial allocation.
 */
#define CACHE_WRITE_BATCH_BLOCKS 64

/* The smallest budget: a B+tree walk pins about a root-to-leaf path plus siblings. */
#define CACHE_MIN_BLOCKS 16

/*
 * Entries and their buffers are allocated this many at a time (one aligned allocation for
 * the buffers, one for the entries) and an entry that leaves the cache goes to a free list
 * for the next miss, never back to malloc.  One posix_memalign per 4 KiB buffer cost a
 * page of padding per buffer (the server's resident memory was about twice the cache it
 * held) and a fifth of the time of a cold tree walk (bench/open.sh).  The cache's memory
 * is therefore the most it ever held at once: the budget, plus what it had to grow by
 * (dirty or referenced blocks beyond it, counted in over_budget), until cache_destroy.
 */
#define CACHE_SLAB_BLOCKS 64

struct cslab {
	struct cslab *next;
	void *data;
	struct centry *e;
};

struct centry {
	struct cblock cb;
	const struct block_type *type;
	struct centry *hnext;	    /* hash chain */
	struct centry *prev, *next; /* LRU list or dirty list, per the state above */
	unsigned refs;
	bool dirty;
	bool sealed; /* dirty and sealed by cache_seal() since it was last dirtied */
	u32 seal_csum;
	u64 seal_txg;
};

struct clist {
	struct centry head; /* sentinel; head.next is the most recently added */
};

struct cache {
	pthread_mutex_t lock;
	struct bdev *bdev;
	struct centry **buckets;
	u64 nbuckets; /* a power of two */
	struct clist lru, dirty;
	struct centry *free; /* unused entries, chained by hnext (CACHE_SLAB_BLOCKS) */
	struct cslab *slabs; /* every slab, freed by cache_destroy */
	u64 budget, nr, nr_dirty;
	u64 synced_txg; /* the last txg cache_sync() wrote, or cache_set_synced_txg() said */
	struct cache_stats st;
};

static struct centry *to_centry(struct cblock *b)
{
	return container_of(b, struct centry, cb);
}

/*----------------------------------------------------------------
 * Lists and hash table (all under c->lock)
 *--------------------------------------------------------------*/

static void clist_init(struct clist *l)
{
	l->head.next = l->head.prev = &l->head;
}

static bool clist_empty(const struct clist *l)
{
	return l->head.next == &l->head;
}

static void clist_add(struct clist *l, struct centry *e)
{
	e->next = l->head.next;
	e->prev = &l->head;
	l->head.next->prev = e;
	l->head.next = e;
}

static void clist_del(struct centry *e)
{
	if (!e->next)
		return;
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->next = e->prev = NULL;
}

static u64 hash_slot(const struct cache *c, u64 blocknr)
{
	return (hash_golden64(blocknr) >> 17) & (c->nbuckets - 1);
}

static struct centry *hash_find(struct cache *c, u64 blocknr)
{
	struct centry *e = c->buckets[hash_slot(c, blocknr)];

	while (e && e->cb.blocknr != blocknr)
		e = e->hnext;
	return e;
}

static void hash_grow(struct cache *c)
{
	struct centry **old = c->buckets;
	u64 oldn = c->nbuckets;

	c->nbuckets *= 2;
	c->buckets = xzalloc(c->nbuckets * sizeof(*c->buckets));
	for (u64 i = 0; i < oldn; i++) {
		struct centry *e = old[i], *next;

		for (; e; e = next) {
			u64 s = hash_slot(c, e->cb.blocknr);

			next = e->hnext;
			e->hnext = c->buckets[s];
			c->buckets[s] = e;
		}
	}
	free(old);
}

static void hash_insert(struct cache *c, struct centry *e)
{
	u64 s;

	if (c->nr >= c->nbuckets)
		hash_grow(c);
	s = hash_slot(c, e->cb.blocknr);
	e->hnext = c->buckets[s];
	c->buckets[s] = e;
	c->nr++;
}

static void hash_remove(struct cache *c, struct centry *e)
{
	struct centry **p = &c->buckets[hash_slot(c, e->cb.blocknr)];

	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	c->nr--;
}

/*----------------------------------------------------------------
 * Entries
 *--------------------------------------------------------------*/

static struct centry *centry_alloc_locked(struct cache *c, u64 blocknr)
{
	struct centry *e;
	void *data;

	if (!c->free) {
		struct cslab *sl = xzalloc(sizeof(*sl));

		if (posix_memalign(&sl->data, BDEV_ALIGN,
				   (size_t)CACHE_SLAB_BLOCKS * DDSNAP_BLOCK_SIZE)) {
			fprintf(stderr, "out of memory allocating cache blocks\n");
			abort();
		}
		sl->e = xzalloc(CACHE_SLAB_BLOCKS * sizeof(*sl->e));
		for (unsigned i = 0; i < CACHE_SLAB_BLOCKS; i++) {
			sl->e[i].cb.data = (u8 *)sl->data + (size_t)i * DDSNAP_BLOCK_SIZE;
			sl->e[i].hnext = c->free;
			c->free = &sl->e[i];
		}
		sl->next = c->slabs;
		c->slabs = sl;
	}
	e = c->free;
	c->free = e->hnext;
	data = e->cb.data;
	memset(e, 0, sizeof(*e));
	e->cb.data = data;
	e->cb.blocknr = blocknr;
	return e;
}

static void centry_free_locked(struct cache *c, struct centry *e)
{
	e->hnext = c->free;
	c->free = e;
}

/* Drops an entry from every structure and frees it. */
static void centry_destroy_locked(struct cache *c, struct centry *e)
{
	clist_del(e);
	if (e->dirty)
		c->nr_dirty--;
	hash_remove(c, e);
	centry_free_locked(c, e);
}

/* Evicts clean unreferenced blocks, oldest first, until the cache is within its budget. */
static void cache_evict_locked(struct cache *c)
{
	while (c->nr > c->budget && !clist_empty(&c->lru))
		centry_destroy_locked(c, c->lru.head.prev);
}

/* Called after an insertion: evict, and count it if the cache still had to grow. */
static void cache_after_insert_locked(struct cache *c)
{
	cache_evict_locked(c);
	if (c->nr > c->budget)
		c->st.over_budget++;
}

static void centry_make_dirty_locked(struct cache *c, struct centry *e)
{
	if (!e->dirty) {
		clist_del(e);
		clist_add(&c->dirty, e);
		e->dirty = true;
		c->nr_dirty++;
	}
	e->sealed = false;
}

/*----------------------------------------------------------------
 * Public interface
 *--------------------------------------------------------------*/

struct cache *cache_create(struct bdev *bdev, size_t budget_bytes)
{
	struct cache *c = xzalloc(sizeof(*c));

	pthread_mutex_init(&c->lock, NULL);
	c->bdev = bdev;
	c->budget = MAX(budget_bytes / DDSNAP_BLOCK_SIZE, (u64)CACHE_MIN_BLOCKS);
	c->nbuckets = 64;
	while (c->nbuckets < c->budget)
		c->nbuckets *= 2;
	c->buckets = xzalloc(c->nbuckets * sizeof(*c->buckets));
	clist_init(&c->lru);
	clist_init(&c->dirty);
	return c;
}

void cache_destroy(struct cache *c)
{
	if (!c)
		return;
	for (u64 i = 0; i < c->nbuckets; i++) {
		struct centry *e = c->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			VERIFY(e->refs == 0);
		}
	}
	while (c->slabs) {
		struct cslab *sl = c->slabs;

		c->slabs = sl->next;
		free(sl->data);
		free(sl->e);
		free(sl);
	}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

#define set_why(why, whylen, ...) why_printf(why, whylen, 0, __VA_ARGS__)

/*
 * Checks a cached entry against what the caller expects.  A dirty block that is not sealed
 * yet has no txg in its header: it belongs to the open txg, so only a pointer from a synced
 * txg (expect_txg <= synced_txg) can be wrong about it.
 */
static int centry_check_locked(struct cache *c, struct centry *e, const struct block_type *type,
			       u64 expect_txg, char *why, size_t whylen)
{
	u64 txg;

	if (e->type != type) {
		set_why(why, whylen, "block %llu is a %s, not a %s",
			(unsigned long long)e->cb.blocknr, e->type->name, type->name);
		return -EILSEQ;
	}
	if (!expect_txg)
		return 0;
	if (e->dirty && !e->sealed) {
		if (expect_txg > c->synced_txg)
			return 0;
		txg = c->synced_txg + 1;
	} else {
		txg = e->dirty ? e->seal_txg : block_txg(e->cb.data);
		if (txg == expect_txg)
			return 0;
	}
	set_why(why, whylen, "%s %llu: txg %llu, pointer expects %llu", type->name,
		(unsigned long long)e->cb.blocknr, (unsigned long long)txg,
		(unsigned long long)expect_txg);
	return -ESTALE;
}

static void centry_get_locked(struct cache *c, struct centry *e)
{
	if (!e->refs++ && !e->dirty)
		clist_del(e); /* off the LRU */
}

int cache_read(struct cache *c, const struct block_type *type, u64 blocknr, u64 expect_txg,
	       struct cblock **out, char *why, size_t whylen)
{
	struct centry *e, *fresh;
	int err;

	if (why && whylen)
		why[0] = '\0';
	if (blocknr >= c->bdev->size / DDSNAP_BLOCK_SIZE) {
		set_why(why, whylen, "%s pointer to block %llu beyond the end of %s", type->name,
			(unsigned long long)blocknr, c->bdev->name);
		return -EILSEQ;
	}
	pthread_mutex_lock(&c->lock);
	e = hash_find(c, blocknr);
	if (e) {
		err = centry_check_locked(c, e, type, expect_txg, why, whylen);
		if (!err) {
			centry_get_locked(c, e);
			c->st.hits++;
			*out = &e->cb;
		}
		pthread_mutex_unlock(&c->lock);
		return err;
	}
	c->st.misses++;
	c->st.reads++;
	fresh = centry_alloc_locked(c, blocknr);
	pthread_mutex_unlock(&c->lock);

	err = bdev_read(c->bdev, fresh->cb.data, DDSNAP_BLOCK_SIZE, blocknr * DDSNAP_BLOCK_SIZE);
	if (err) {
		set_why(why, whylen, "reading block %llu of %s: %s", (unsigned long long)blocknr,
			c->bdev->name, errmsg(err));
		goto out_free;
	}
	err = block_validate(fresh->cb.data, type, blocknr, why, whylen);
	if (err)
		goto out_free;
	fresh->type = type;

	pthread_mutex_lock(&c->lock);
	e = hash_find(c, blocknr);
	if (e) {
		/* Another thread read it meanwhile (or created it): use that one. */
		centry_free_locked(c, fresh);
		fresh = NULL;
	} else {
		e = fresh;
		hash_insert(c, e);
	}
	err = centry_check_locked(c, e, type, expect_txg, why, whylen);
	if (err) {
		if (fresh)
			centry_destroy_locked(c,
					      fresh); /* not what the caller wants; don't keep it */
		pthread_mutex_unlock(&c->lock);
		return err;
	}
	centry_get_locked(c, e);
	if (fresh)
		cache_after_insert_locked(c);
	pthread_mutex_unlock(&c->lock);
	*out = &e->cb;
	return 0;

out_free:
	pthread_mutex_lock(&c->lock);
	centry_free_locked(c, fresh);
	pthread_mutex_unlock(&c->lock);
	return err;
}

int cache_read_run(struct cache *c, const struct block_type *type, u64 first, unsigned n)
{
	void *buf = NULL;
	int err;

	if (!n || n > CACHE_RUN_MAX || first + n > c->bdev->size / DDSNAP_BLOCK_SIZE)
		return -EINVAL;
	if (posix_memalign(&buf, BDEV_ALIGN, (size_t)n * DDSNAP_BLOCK_SIZE)) {
		fprintf(stderr, "out of memory allocating a read buffer\n");
		abort();
	}
	err = bdev_read(c->bdev, buf, (size_t)n * DDSNAP_BLOCK_SIZE, first * DDSNAP_BLOCK_SIZE);
	pthread_mutex_lock(&c->lock);
	c->st.reads++;
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; !err && i < n; i++) {
		const u8 *data = (const u8 *)buf + (size_t)i * DDSNAP_BLOCK_SIZE;
		struct centry *e;

		if (block_validate(data, type, first + i, NULL, 0))
			continue;
		pthread_mutex_lock(&c->lock);
		if (!hash_find(c, first + i)) {
			e = centry_alloc_locked(c, first + i);
			memcpy(e->cb.data, data, DDSNAP_BLOCK_SIZE);
			e->type = type;
			hash_insert(c, e);
			clist_add(&c->lru, e);
			cache_after_insert_locked(c);
		}
		pthread_mutex_unlock(&c->lock);
	}
	free(buf);
	return err;
}

/* Returns a referenced dirty entry for @blocknr, reusing an unreferenced stale one. */
static struct centry *cache_claim_locked(struct cache *c, const struct block_type *type,
					 u64 blocknr)
{
	struct centry *e = hash_find(c, blocknr);
	bool fresh = !e;

	if (e) {
		/* A stale copy of a freed block: nobody may still hold it. */
		VERIFY(e->refs == 0);
		clist_del(e);
		if (e->dirty) {
			e->dirty = false;
			c->nr_dirty--;
		}
	} else {
		e = centry_alloc_locked(c, blocknr);
		hash_insert(c, e);
	}
	e->type = type;
	e->refs = 1;
	centry_make_dirty_locked(c, e);
	if (fresh)
		cache_after_insert_locked(c);
	return e;
}

struct cblock *cache_new(struct cache *c, const struct block_type *type, u64 blocknr)
{
	struct centry *e;

	VERIFY(blocknr < c->bdev->size / DDSNAP_BLOCK_SIZE);
	pthread_mutex_lock(&c->lock);
	e = cache_claim_locked(c, type, blocknr);
	memset(e->cb.data, 0, DDSNAP_BLOCK_SIZE);
	pthread_mutex_unlock(&c->lock);
	return &e->cb;
}

struct cblock *cache_shadow(struct cache *c, struct cblock *old, u64 new_blocknr)
{
	struct centry *o = to_centry(old), *e;
	struct block_header_disk *h;

	VERIFY(new_blocknr < c->bdev->size / DDSNAP_BLOCK_SIZE);
	VERIFY(new_blocknr != old->blocknr);
	pthread_mutex_lock(&c->lock);
	VERIFY(o->refs > 0);
	e = cache_claim_locked(c, o->type, new_blocknr);
	memcpy(e->cb.data, old->data, DDSNAP_BLOCK_SIZE);
	pthread_mutex_unlock(&c->lock);
	/* The copy is a new block: it keeps the body and flags, not the old identity. */
	h = e->cb.data;
	h->csum = 0;
	h->blocknr = 0;
	h->txg = 0;
	return &e->cb;
}

void cache_dirty(struct cache *c, struct cblock *b)
{
	struct centry *e = to_centry(b);

	pthread_mutex_lock(&c->lock);
	VERIFY(e->refs > 0);
	/* Copy-on-write: a block of a synced txg is never changed in place. */
	VERIFY(e->dirty || !c->synced_txg || block_txg(b->data) > c->synced_txg);
	centry_make_dirty_locked(c, e);
	pthread_mutex_unlock(&c->lock);
}

void cache_put(struct cache *c, struct cblock *b)
{
	struct centry *e;

	if (!b)
		return;
	e = to_centry(b);
	pthread_mutex_lock(&c->lock);
	VERIFY(e->refs > 0);
	if (!--e->refs && !e->dirty) {
		clist_add(&c->lru, e);
		cache_evict_locked(c);
	}
	pthread_mutex_unlock(&c->lock);
}

void cache_forget(struct cache *c, u64 blocknr)
{
	struct centry *e;

	pthread_mutex_lock(&c->lock);
	e = hash_find(c, blocknr);
	if (e) {
		VERIFY(e->refs == 0);
		centry_destroy_locked(c, e);
	}
	pthread_mutex_unlock(&c->lock);
}

u32 cache_seal(struct cache *c, struct cblock *b, u64 txg)
{
	struct centry *e = to_centry(b);
	u32 csum;

	pthread_mutex_lock(&c->lock);
	VERIFY(e->dirty && e->refs > 0);
	csum = block_seal(b->data, e->type, b->blocknr, txg);
	e->sealed = true;
	e->seal_csum = csum;
	e->seal_txg = txg;
	pthread_mutex_unlock(&c->lock);
	return csum;
}

static int cmp_centry(const void *a, const void *b)
{
	u64 x = (*(struct centry *const *)a)->cb.blocknr,
	    y = (*(struct centry *const *)b)->cb.blocknr;

	return x < y ? -1 : x > y;
}

/* Writes @n dirty entries (sorted), coalescing runs of consecutive blocks. */
static int cache_write_sorted(struct cache *c, struct centry **v, u64 n, u64 *ios)
{
	void *stage = NULL;
	int err = 0;

	for (u64 i = 0; i < n && !err;) {
		u64 run = 1;

		while (i + run < n && run < CACHE_WRITE_BATCH_BLOCKS &&
		       v[i + run]->cb.blocknr == v[i]->cb.blocknr + run)
			run++;
		if (run == 1) {
			err = bdev_write(c->bdev, v[i]->cb.data, DDSNAP_BLOCK_SIZE,
					 v[i]->cb.blocknr * DDSNAP_BLOCK_SIZE);
		} else {
			if (!stage &&
			    posix_memalign(&stage, BDEV_ALIGN,
					   CACHE_WRITE_BATCH_BLOCKS * DDSNAP_BLOCK_SIZE)) {
				err = -ENOMEM;
				break;
			}
			for (u64 j = 0; j < run; j++)
				memcpy((u8 *)stage + j * DDSNAP_BLOCK_SIZE, v[i + j]->cb.data,
				       DDSNAP_BLOCK_SIZE);
			err = bdev_write(c->bdev, stage, run * DDSNAP_BLOCK_SIZE,
					 v[i]->cb.blocknr * DDSNAP_BLOCK_SIZE);
		}
		(*ios)++;
		i += run;
	}
	free(stage);
	return err;
}

int cache_sync(struct cache *c, u64 txg)
{
	struct centry **v, *e;
	u64 n = 0, ios = 0;
	int err;

	pthread_mutex_lock(&c->lock);
	v = xmalloc((c->nr_dirty + 1) * sizeof(*v));
	for (e = c->dirty.head.next; e != &c->dirty.head; e = e->next) {
		if (e->sealed && e->seal_txg == txg) {
			/* Its checksum is in its parent already: it must not have changed. */
			VERIFY(block_seal(e->cb.data, e->type, e->cb.blocknr, txg) == e->seal_csum);
		} else {
			block_seal(e->cb.data, e->type, e->cb.blocknr, txg);
		}
		e->refs++;
		v[n++] = e;
	}
	VERIFY(n == c->nr_dirty);
	pthread_mutex_unlock(&c->lock);

	qsort(v, n, sizeof(*v), cmp_centry);
	err = cache_write_sorted(c, v, n, &ios);

	pthread_mutex_lock(&c->lock);
	c->st.writes += ios;
	for (u64 i = 0; i < n; i++) {
		e = v[i];
		if (!err && e->dirty) {
			clist_del(e);
			e->dirty = false;
			e->sealed = false;
			c->nr_dirty--;
		}
		if (!--e->refs && !e->dirty)
			clist_add(&c->lru, e);
	}
	if (!err)
		c->synced_txg = txg;
	cache_evict_locked(c);
	pthread_mutex_unlock(&c->lock);
	free(v);
	return err;
}

void cache_set_synced_txg(struct cache *c, u64 txg)
{
	pthread_mutex_lock(&c->lock);
	c->synced_txg = txg;
	pthread_mutex_unlock(&c->lock);
}

void cache_stats(struct cache *c, struct cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->st;
	out->cached = c->nr;
	out->dirty = c->nr_dirty;
	out->budget = c->budget;
	pthread_mutex_unlock(&c->lock);
}

void cache_reset_stats(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	memset(&c->st, 0, sizeof(c->st));
	pthread_mutex_unlock(&c->lock);
}

struct bdev *cache_bdev(struct cache *c)
{
	return c->bdev;
}
