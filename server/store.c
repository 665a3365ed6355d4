// SPDX-License-Identifier: GPL-2.0-only
/*
 * store.c - format, open and close a store; transaction groups; the struct tx of the open
 * txg and its metadata allocator.
 *
 * What.  A store is its devices (the snapstore, an optional metadata device), its label
 * (fixed layout), its uberblock ring (the current state) and a block cache over the
 * metadata device.  This file runs the txg cycle described in store.h and hands out the
 * open txg to modifying threads.
 *
 * Metadata allocation.  Until the metaslab allocator takes over (space maps per metaslab,
 * metaslab.h), the allocator keeps no on-disk state of its own: open rebuilds the set of
 * used metadata blocks by walking every root of the newest uberblock (treewalk.h), and
 * everything else in the metadata region is free.  That is exact by construction (a block
 * is used iff the durable state reaches it), costs O(metadata) at open, and is what `ddsnap
 * check` compares against in any case.  A bitmap with a rotor serves allocations.
 *
 * Invariants.
 *  - Every block reachable from the last durable uberblock is marked used in the bitmap.
 *  - A block freed in the open txg T but born before T stays marked (on the deferred list)
 *    until T's uberblock is durable; a block born in T and freed in T is unmarked at once.
 *  - meta_alloc in the uberblock of T = blocks marked after T's sync = blocks reachable from
 *    it, unless an owner leaked blocks (which `ddsnap check` reports).
 *  - Exactly one txg is open; holders > 0 only outside a sync's quiesced section.
 *
 * Locking.  s->lock protects the txg state (open txg, holders, quiescing, failure), the
 * working uberblock (roots, scalars), the allocator and the statistics; it is never held
 * across I/O.  s->sync_lock serialises syncs.  The sync thread sleeps on s->thread_cond.
 * Hooks run in the syncing thread with s->lock released and no holder active.
 *
 * Crash argument.  See store.h: nothing the last durable uberblock reaches is written or
 * reused before the next uberblock is durable, and that uberblock is written after a flush
 * that makes every block it reaches durable.  If we crash between cache_sync and the
 * uberblock's flush, the ring's newest valid slot is still the previous txg, and the walk at
 * the next open rebuilds the allocator from it, so the half-written txg's blocks are free.
 */
#include "store.h"
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include "log.h"
#include "treewalk.h"

/* Hooks a store runs: the engine's trees, the allocator, the intent log, with room to spare. */
#define STORE_MAX_HOOKS 16

struct store {
	struct store_config cfg;
	struct bdev *snap, *meta;
	struct label label;
	struct cache *cache;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* holders and quiescing changes */
	pthread_mutex_t sync_lock;
	u64 holders;
	bool quiescing;
	bool changed; /* a hold or a root/scalar change since the last sync */
	int failed;
	u64 open_txg;
	struct tx tx;
	struct uberblock work; /* roots and scalars of the open txg */
	struct uberblock last; /* the last durable uberblock */

	struct store_hook hooks[STORE_MAX_HOOKS];
	unsigned nhooks;

	/* The interim metadata allocator (see the top of this file). */
	u64 *bitmap;
	u64 region_start, region_blocks, nused, rotor;
	u64 *deferred;
	u64 ndeferred, deferred_cap;

	/* The sync thread. */
	pthread_t thread;
	bool thread_running, stop, kick;
	pthread_cond_t thread_cond;

	struct store_stats st;
};

static int __printf(3, 4) why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return 0;
}

static u64 now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000 + (u64)ts.tv_nsec / 1000;
}

/*----------------------------------------------------------------
 * The interim metadata allocator (under s->lock)
 *--------------------------------------------------------------*/

static bool bit_test(const u64 *map, u64 i)
{
	return map[i / 64] & (1ULL << (i % 64));
}

static void bit_set(u64 *map, u64 i)
{
	map[i / 64] |= 1ULL << (i % 64);
}

static void bit_clear(u64 *map, u64 i)
{
	map[i / 64] &= ~(1ULL << (i % 64));
}

static bool alloc_in_region(const struct store *s, u64 blocknr)
{
	return blocknr >= s->region_start && blocknr - s->region_start < s->region_blocks;
}

static int alloc_meta_locked(struct store *s, u64 *blocknr)
{
	u64 n = s->region_blocks, words = DIV_ROUND_UP(n, 64), i = s->rotor;

	if (s->nused >= n)
		return -ENOSPC;
	/* Scan from the rotor by whole words; allocations come out ascending, so cache_sync
	 * writes them in long runs. */
	for (u64 scanned = 0; scanned <= words; scanned++) {
		u64 w = i / 64, bits = ~s->bitmap[w];

		bits &= ~0ULL << (i % 64);
		if (w == words - 1 && n % 64)
			bits &= (1ULL << (n % 64)) - 1;
		if (bits) {
			u64 b = w * 64 + (u64)__builtin_ctzll(bits);

			bit_set(s->bitmap, b);
			s->nused++;
			s->rotor = b + 1 < n ? b + 1 : 0;
			*blocknr = s->region_start + b;
			return 0;
		}
		i = (w + 1 < words) ? (w + 1) * 64 : 0;
	}
	VERIFY(0); /* nused < n, so some bit is clear */
	return -ENOSPC;
}

static int store_tx_alloc_meta(struct tx *tx, u64 *blocknr)
{
	struct store *s = tx->priv;
	int r;

	pthread_mutex_lock(&s->lock);
	r = alloc_meta_locked(s, blocknr);
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void store_tx_free_meta(struct tx *tx, u64 blocknr, u64 birth_txg)
{
	struct store *s = tx->priv;

	pthread_mutex_lock(&s->lock);
	VERIFY(alloc_in_region(s, blocknr));
	VERIFY(bit_test(s->bitmap, blocknr - s->region_start));
	VERIFY(birth_txg <= s->open_txg);
	if (birth_txg == s->open_txg) {
		/* Never part of a durable state: reusable at once. */
		bit_clear(s->bitmap, blocknr - s->region_start);
		s->nused--;
	} else {
		if (s->ndeferred == s->deferred_cap) {
			s->deferred_cap = s->deferred_cap ? 2 * s->deferred_cap : 256;
			s->deferred = xrealloc(s->deferred, s->deferred_cap * sizeof(u64));
		}
		s->deferred[s->ndeferred++] = blocknr;
	}
	pthread_mutex_unlock(&s->lock);
}

static const struct tx_ops store_tx_ops = {
	.alloc_meta = store_tx_alloc_meta,
	.free_meta = store_tx_free_meta,
};

/* After a txg is durable: its deferred frees become allocatable. */
static void alloc_release_deferred_locked(struct store *s)
{
	for (u64 i = 0; i < s->ndeferred; i++) {
		bit_clear(s->bitmap, s->deferred[i] - s->region_start);
		s->nused--;
	}
	s->ndeferred = 0;
}

struct mark_ctx {
	struct store *s;
	char *why;
	size_t whylen;
};

static int mark_node(void *arg, const struct treewalk_node *n)
{
	struct mark_ctx *m = arg;
	struct store *s = m->s;

	if (!alloc_in_region(s, n->blocknr)) {
		why_set(m->why, m->whylen, "tree block %llu outside the metadata region",
			(unsigned long long)n->blocknr);
		return -EILSEQ;
	}
	if (bit_test(s->bitmap, n->blocknr - s->region_start)) {
		why_set(m->why, m->whylen, "block %llu referenced twice",
			(unsigned long long)n->blocknr);
		return -EILSEQ;
	}
	bit_set(s->bitmap, n->blocknr - s->region_start);
	s->nused++;
	return 0;
}

/* Rebuilds the used set from the durable uberblock's roots. */
static int alloc_init(struct store *s, char *why, size_t whylen)
{
	const struct label *l = &s->label;
	struct mark_ctx m = {.s = s, .why = why, .whylen = whylen};

	s->region_start = l->meta_blocks ? l->meta_start : l->data_start;
	s->region_blocks = l->meta_blocks ? l->meta_blocks : l->data_blocks;
	s->bitmap = xzalloc(DIV_ROUND_UP(s->region_blocks, 64) * sizeof(u64));
	for (unsigned i = 0; i < UB_NR_ROOTS; i++) {
		struct treewalk w = {.node = mark_node, .arg = &m};
		char sub[160] = "";
		int r = treewalk(s->meta, &s->last.roots[i], &w, sub, sizeof(sub));

		if (r) {
			if (!why || !why[0])
				why_set(why, whylen, "%s tree: %s", uberblock_root_name(i), sub);
			return r;
		}
	}
	return 0;
}

/*----------------------------------------------------------------
 * Transaction groups
 *--------------------------------------------------------------*/

/* Steps 1-6 of store.h, with the txg quiesced.  Returns 0 or the error that fails the store. */
static int store_sync_quiesced(struct store *s)
{
	u64 txg, start = now_us();
	struct uberblock ub;
	int r;

	pthread_mutex_lock(&s->lock);
	txg = s->open_txg;
	pthread_mutex_unlock(&s->lock);

	for (unsigned i = 0; i < s->nhooks; i++) {
		if (!s->hooks[i].pre_sync)
			continue;
		r = s->hooks[i].pre_sync(s->hooks[i].arg, &s->tx);
		if (r)
			return r;
	}
	r = cache_sync(s->cache, txg);
	if (r)
		return r;
	/* Data chunks on the snapstore and metadata alike must be durable before the uberblock. */
	if (s->snap != s->meta) {
		r = bdev_flush(s->snap);
		if (r)
			return r;
	}
	r = bdev_flush(s->meta);
	if (r)
		return r;

	pthread_mutex_lock(&s->lock);
	ub = s->work;
	ub.txg = txg;
	ub.timestamp = (u64)time(NULL);
	ub.meta_alloc = s->nused - s->ndeferred;
	pthread_mutex_unlock(&s->lock);
	r = uberblock_write(s->meta, &s->label, &ub);
	if (r)
		return r;
	r = bdev_flush(s->meta);
	if (r)
		return r;

	/* Durable.  If we crash from here on, the next open finds this txg. */
	pthread_mutex_lock(&s->lock);
	alloc_release_deferred_locked(s);
	s->last = ub;
	s->work.txg = txg + 1;
	s->open_txg = txg + 1;
	s->tx.txg = txg + 1;
	s->changed = false;
	s->st.syncs++;
	s->st.last_sync_us = now_us() - start;
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->nhooks; i++)
		if (s->hooks[i].post_sync)
			s->hooks[i].post_sync(s->hooks[i].arg, txg);
	return 0;
}

int store_sync(struct store *s)
{
	int r;

	if (s->cfg.read_only)
		return -EROFS;
	pthread_mutex_lock(&s->sync_lock);
	pthread_mutex_lock(&s->lock);
	if (s->failed) {
		r = s->failed;
		goto out_unlock;
	}
	s->quiescing = true;
	while (s->holders)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);

	r = store_sync_quiesced(s);

	pthread_mutex_lock(&s->lock);
	if (r) {
		s->failed = r;
		log_err("store: sync of txg %llu failed (%s); the store refuses changes now",
			(unsigned long long)s->open_txg, strerror(-r));
	}
	s->quiescing = false;
	pthread_cond_broadcast(&s->cond);
out_unlock:
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&s->sync_lock);
	return r;
}

struct tx *store_tx_hold(struct store *s)
{
	struct tx *tx = NULL;

	pthread_mutex_lock(&s->lock);
	while (s->quiescing && !s->failed)
		pthread_cond_wait(&s->cond, &s->lock);
	if (!s->failed && !s->cfg.read_only) {
		s->holders++;
		s->changed = true;
		tx = &s->tx;
	}
	pthread_mutex_unlock(&s->lock);
	return tx;
}

void store_tx_release(struct store *s, struct tx *tx)
{
	struct cache_stats cs;
	bool over;

	VERIFY(tx == &s->tx);
	cache_stats(s->cache, &cs);
	over = cs.dirty * DDSNAP_BLOCK_SIZE >= s->cfg.dirty_max_bytes;
	pthread_mutex_lock(&s->lock);
	VERIFY(s->holders > 0);
	if (!--s->holders)
		pthread_cond_broadcast(&s->cond);
	if (over && s->thread_running && !s->kick) {
		s->kick = true;
		s->st.dirty_syncs++;
		pthread_cond_signal(&s->thread_cond);
	}
	pthread_mutex_unlock(&s->lock);
}

static void *store_sync_thread(void *arg)
{
	struct store *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct timespec deadline;
		bool due;
		int r = 0;

		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += s->cfg.txg_timeout_ms / 1000;
		deadline.tv_nsec += (long)(s->cfg.txg_timeout_ms % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
		while (!s->stop && !s->kick && r != ETIMEDOUT)
			r = pthread_cond_timedwait(&s->thread_cond, &s->lock, &deadline);
		if (s->stop)
			break;
		due = s->kick || s->changed;
		if (!s->kick && due)
			s->st.timer_syncs++;
		s->kick = false;
		if (!due || s->failed)
			continue;
		pthread_mutex_unlock(&s->lock);
		store_sync(s);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/*----------------------------------------------------------------
 * Format, open, close
 *--------------------------------------------------------------*/

static int zero_blocks(struct bdev *b, u64 start, u64 n)
{
	enum { CHUNK = 64 };
	void *z = NULL;
	int r = 0;

	if (posix_memalign(&z, BDEV_ALIGN, CHUNK * DDSNAP_BLOCK_SIZE))
		return -ENOMEM;
	memset(z, 0, CHUNK * DDSNAP_BLOCK_SIZE);
	for (u64 i = 0; i < n && !r; i += CHUNK) {
		u64 k = MIN((u64)CHUNK, n - i);

		r = bdev_write(b, z, k * DDSNAP_BLOCK_SIZE, (start + i) * DDSNAP_BLOCK_SIZE);
	}
	free(z);
	return r;
}

/* The allocator geometry the uberblock carries (metaslab_root_disk; table 0 = none yet). */
static void store_metaslab_geometry(struct metaslab_root_disk *m, const struct label *l)
{
	memset(m, 0, sizeof(*m));
	m->data_start = cpu_to_le64(l->data_start);
	m->data_blocks = cpu_to_le64(l->data_blocks);
	m->meta_start = cpu_to_le64(l->meta_start);
	m->meta_blocks = cpu_to_le64(l->meta_blocks);
	m->ms_shift = cpu_to_le32(l->ms_shift);
	m->chunk_shift = cpu_to_le32(l->chunk_shift - DDSNAP_BLOCK_SHIFT);
}

int store_format(struct bdev *snapstore, struct bdev *metadev, const struct store_format_params *p,
		 char *why, size_t whylen)
{
	struct bdev *meta = metadev ? metadev : snapstore;
	struct label l;
	struct uberblock ub;
	int r;

	r = label_plan(&l, snapstore->size, metadev ? metadev->size : 0, p->origin_bytes,
		       p->chunk_shift ? p->chunk_shift : LABEL_DEFAULT_CHUNK_SHIFT, p->log_blocks,
		       p->ub_slots, why, whylen);
	if (r)
		return r;
	/* Old labels go first: a crash mid-format must not leave one describing this mess. */
	r = zero_blocks(snapstore, 0, 1);
	if (!r)
		r = zero_blocks(snapstore, label_last_blocknr(snapstore->size / DDSNAP_BLOCK_SIZE),
				1);
	if (!r && metadev)
		r = zero_blocks(metadev, 0, 1);
	if (!r && metadev)
		r = zero_blocks(metadev, label_last_blocknr(metadev->size / DDSNAP_BLOCK_SIZE), 1);
	if (!r)
		r = bdev_flush(snapstore);
	if (!r && metadev)
		r = bdev_flush(metadev);
	/* The ring and the log: no uberblock or log block of an earlier store may survive. */
	if (!r)
		r = zero_blocks(meta, l.ub_start, l.ub_slots);
	if (!r)
		r = zero_blocks(meta, l.log_start, l.log_blocks);
	if (!r) {
		memset(&ub, 0, sizeof(ub));
		ub.txg = 1;
		memcpy(ub.uuid, l.uuid, sizeof(ub.uuid));
		ub.timestamp = (u64)time(NULL);
		store_metaslab_geometry(&ub.metaslab, &l);
		r = uberblock_write(meta, &l, &ub);
	}
	if (!r)
		r = bdev_flush(meta);
	if (!r && metadev)
		r = label_write(metadev, &l, LABEL_ROLE_METADEV);
	if (!r)
		r = label_write(snapstore, &l, LABEL_ROLE_SNAPSTORE);
	if (r)
		why_set(why, whylen, "writing the new store: %s", strerror(-r));
	return r;
}

static int store_read_labels(struct store *s, char *why, size_t whylen)
{
	struct label ml;
	int r;

	r = label_read(s->snap, -1, &s->label, why, whylen);
	if (r)
		return r;
	if (s->label.role != LABEL_ROLE_SNAPSTORE) {
		why_set(why, whylen, "%s is the metadata device of a store, not its snapstore",
			s->snap->name);
		return -EINVAL;
	}
	if (s->label.feature_incompat & ~LABEL_FEATURE_INCOMPAT_KNOWN ||
	    (!s->cfg.read_only && s->label.feature_ro_compat & ~LABEL_FEATURE_RO_COMPAT_KNOWN)) {
		why_set(why, whylen, "store uses features this version does not know");
		return -EOPNOTSUPP;
	}
	if (s->snap->size / DDSNAP_BLOCK_SIZE < s->label.snapstore_blocks) {
		why_set(why, whylen, "%s is smaller than when it was initialized", s->snap->name);
		return -EINVAL;
	}
	if (!s->label.metadev_blocks) {
		if (s->cfg.metadev) {
			why_set(why, whylen, "store has no metadata device");
			return -EINVAL;
		}
		s->meta = s->snap;
		return 0;
	}
	if (!s->cfg.metadev) {
		why_set(why, whylen, "store has a metadata device: name it");
		return -EINVAL;
	}
	s->meta = s->cfg.metadev;
	r = label_read(s->meta, -1, &ml, why, whylen);
	if (r)
		return r;
	if (ml.role != LABEL_ROLE_METADEV || !label_same_store(&ml, &s->label)) {
		why_set(why, whylen, "%s is not the metadata device of this store", s->meta->name);
		return -EINVAL;
	}
	if (s->meta->size / DDSNAP_BLOCK_SIZE < s->label.metadev_blocks) {
		why_set(why, whylen, "%s is smaller than when it was initialized", s->meta->name);
		return -EINVAL;
	}
	return 0;
}

static void store_free(struct store *s)
{
	cache_destroy(s->cache);
	free(s->bitmap);
	free(s->deferred);
	pthread_cond_destroy(&s->thread_cond);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->sync_lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int store_open(const struct store_config *cfg, struct store **out, char *why, size_t whylen)
{
	struct store *s = xzalloc(sizeof(*s));
	int r;

	if (why && whylen)
		why[0] = '\0';
	s->cfg = *cfg;
	if (!s->cfg.cache_bytes)
		s->cfg.cache_bytes = STORE_DEFAULT_CACHE_BYTES;
	if (!s->cfg.txg_timeout_ms)
		s->cfg.txg_timeout_ms = TXG_TIMEOUT_MS;
	if (!s->cfg.dirty_max_bytes)
		s->cfg.dirty_max_bytes = TXG_DIRTY_MAX_BYTES;
	s->snap = cfg->snapstore;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->sync_lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_cond_init(&s->thread_cond, NULL);

	r = store_read_labels(s, why, whylen);
	if (r)
		goto out_free;
	r = uberblock_read_newest(s->meta, &s->label, &s->last, NULL, why, whylen);
	if (r)
		goto out_free;
	s->cache = cache_create(s->meta, s->cfg.cache_bytes);
	cache_set_synced_txg(s->cache, s->last.txg);
	r = alloc_init(s, why, whylen);
	if (r)
		goto out_free;
	s->work = s->last;
	s->open_txg = s->last.txg + 1;
	s->work.txg = s->open_txg;
	s->tx = (struct tx){.txg = s->open_txg, .cache = s->cache, .ops = &store_tx_ops, .priv = s};

	if (!cfg->no_sync_thread && !cfg->read_only) {
		r = -pthread_create(&s->thread, NULL, store_sync_thread, s);
		if (r)
			goto out_free;
		s->thread_running = true;
	}
	*out = s;
	return 0;

out_free:
	store_free(s);
	return r;
}

static void store_stop_thread(struct store *s)
{
	if (!s->thread_running)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->thread_cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	s->thread_running = false;
}

void store_abandon(struct store *s)
{
	if (!s)
		return;
	store_stop_thread(s);
	VERIFY(!s->holders);
	store_free(s);
}

int store_close(struct store *s)
{
	int r = 0;

	if (!s)
		return 0;
	store_stop_thread(s);
	VERIFY(!s->holders);
	if (!s->cfg.read_only) {
		r = s->failed;
		if (!r && s->changed)
			r = store_sync(s);
	}
	store_free(s);
	return r;
}

/*----------------------------------------------------------------
 * Accessors
 *--------------------------------------------------------------*/

const struct label *store_label(const struct store *s)
{
	return &s->label;
}

struct cache *store_cache(struct store *s)
{
	return s->cache;
}

struct bdev *store_meta_bdev(struct store *s)
{
	return s->meta;
}

u64 store_synced_txg(struct store *s)
{
	u64 t;

	pthread_mutex_lock(&s->lock);
	t = s->last.txg;
	pthread_mutex_unlock(&s->lock);
	return t;
}

u64 store_open_txg(struct store *s)
{
	u64 t;

	pthread_mutex_lock(&s->lock);
	t = s->open_txg;
	pthread_mutex_unlock(&s->lock);
	return t;
}

int store_failed(struct store *s)
{
	int r;

	pthread_mutex_lock(&s->lock);
	r = s->failed;
	pthread_mutex_unlock(&s->lock);
	return r;
}

void store_add_hook(struct store *s, const struct store_hook *h)
{
	pthread_mutex_lock(&s->lock);
	VERIFY(s->nhooks < STORE_MAX_HOOKS);
	s->hooks[s->nhooks++] = *h;
	pthread_mutex_unlock(&s->lock);
}

void store_root(struct store *s, enum uberblock_root r, struct blkptr *out)
{
	VERIFY((unsigned)r < UB_NR_ROOTS);
	pthread_mutex_lock(&s->lock);
	*out = s->work.roots[r];
	pthread_mutex_unlock(&s->lock);
}

void store_set_root(struct store *s, enum uberblock_root r, const struct blkptr *p)
{
	VERIFY(uberblock_root_name(r));
	pthread_mutex_lock(&s->lock);
	s->work.roots[r] = *p;
	s->changed = true;
	pthread_mutex_unlock(&s->lock);
}

u64 store_scalar(struct store *s, enum uberblock_scalar i)
{
	u64 v;

	VERIFY((unsigned)i < UB_NR_SCALARS);
	pthread_mutex_lock(&s->lock);
	v = s->work.scalars[i];
	pthread_mutex_unlock(&s->lock);
	return v;
}

void store_set_scalar(struct store *s, enum uberblock_scalar i, u64 v)
{
	VERIFY(uberblock_scalar_name(i));
	pthread_mutex_lock(&s->lock);
	s->work.scalars[i] = v;
	s->changed = true;
	pthread_mutex_unlock(&s->lock);
}

void store_last_uberblock(struct store *s, struct uberblock *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->last;
	pthread_mutex_unlock(&s->lock);
}

void store_stats(struct store *s, struct store_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	out->meta_alloc = s->nused;
	out->meta_free = s->region_blocks - s->nused;
	out->deferred = s->ndeferred;
	pthread_mutex_unlock(&s->lock);
}
