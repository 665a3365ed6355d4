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
 * Allocation.  The metaslab allocator (metaslab.h) owns all space: metadata blocks for
 * struct tx (the store's tx is metaslab_tx_init's) and data chunks for copy-outs
 * (store_metaslab() gives the engine its handle).  Its space maps are written in the txg
 * they describe, by metaslab_sync() after every other structure's pre-sync hook, and its
 * table root goes into the uberblock with everything else.
 *
 * The intent log.  Opened by store_open_log() once the engine is ready to replay into the
 * open txg; each sync stores the log position of its txg in the uberblock, and once that
 * uberblock is durable the log may reuse the space before it.
 *
 * Invariants.
 *  - Exactly one txg is open; holders > 0 only outside a sync's quiesced section.
 *  - s->tx names the open txg; it changes only while quiesced (after a sync).
 *  - The uberblock of T records the metaslab table, the roots and the log position as of
 *    the end of T, and is written only after everything they reach is durable.
 *
 * Locking.  s->lock protects the txg state (open txg, holders, quiescing, failure), the
 * working uberblock (roots, scalars), the allocator and the statistics; it is never held
 * across I/O.  s->sync_lock serialises syncs.  The sync thread sleeps on s->thread_cond.
 * Hooks run in the syncing thread with s->lock released and no holder active.
 *
 * Crash argument.  See store.h: nothing the last durable uberblock reaches is written or
 * reused before the next uberblock is durable (the allocator defers frees until
 * metaslab_sync_done), and that uberblock is written after a flush that makes every block it
 * reaches durable.  If we crash between cache_sync and the uberblock's flush, the ring's
 * newest valid slot is still the previous txg, whose space maps do not know the new txg's
 * allocations, so its blocks are simply free again; its log records are still in the ring
 * after the previous txg's log position and are replayed.  A feature bit
 * (store_set_features) is written to the labels outside the txgs, before anything
 * it guards is logged: each label copy is written and flushed in turn, so a crash leaves
 * every device with a valid label, old or new, and open takes a bit found on either device.
 */
#include "store/store.h"
#include <pthread.h>
#include <string.h>
#include <time.h>
#include "util/log.h"

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

	struct metaslab_group *mg;
	struct intent_log *log; /* NULL until store_open_log */

	/* The sync thread. */
	pthread_t thread;
	bool thread_running, stop, kick;
	pthread_cond_t thread_cond;

	struct store_stats st;
};

#define why_set(why, whylen, ...) why_printf(why, whylen, 0, __VA_ARGS__)

static u64 now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000 + (u64)ts.tv_nsec / 1000;
}

/*----------------------------------------------------------------
 * Transaction groups
 *--------------------------------------------------------------*/

/* The allocation counts the uberblock carries, for status without loading space maps. */
static void store_alloc_counts(struct store *s, u64 *meta, u64 *data)
{
	struct metaslab_class_stats m, d;

	metaslab_stats(s->mg, METASLAB_CLASS_META, &m);
	metaslab_stats(s->mg, METASLAB_CLASS_DATA, &d);
	*meta = m.allocated;
	*data = d.allocated;
}

/* Steps 1-6 of store.h, with the txg quiesced.  Returns 0 or the error that fails the store. */
static int store_sync_quiesced(struct store *s)
{
	struct intent_log_pos pos = {0, 0};
	u64 txg, start = now_us();
	struct uberblock ub;
	int r;

	pthread_mutex_lock(&s->lock);
	txg = s->open_txg;
	pthread_mutex_unlock(&s->lock);

	/* 1. The owners seal their structures; then the allocator writes its space maps. */
	for (unsigned i = 0; i < s->nhooks; i++) {
		if (!s->hooks[i].pre_sync)
			continue;
		r = s->hooks[i].pre_sync(s->hooks[i].arg, &s->tx);
		if (r)
			return r;
	}
	r = metaslab_sync(s->mg, txg);
	if (r)
		return r;
	/* 2, 3.  Every block of the txg, then data and metadata durable. */
	r = cache_sync(s->cache, txg);
	if (r)
		return r;
	if (s->snap != s->meta) {
		r = bdev_flush(s->snap);
		if (r)
			return r;
	}
	r = bdev_flush(s->meta);
	if (r)
		return r;

	/* 4, 5.  The uberblock, last. */
	pthread_mutex_lock(&s->lock);
	ub = s->work;
	pthread_mutex_unlock(&s->lock);
	ub.txg = txg;
	ub.timestamp = (u64)time(NULL);
	metaslab_root_pack(s->mg, &ub.metaslab);
	store_alloc_counts(s, &ub.meta_alloc, &ub.data_alloc);
	if (s->log) {
		pos = intent_log_sync_point(s->log, txg);
		ub.log_block_seq = pos.block_seq;
		ub.log_rec_seq = pos.rec_seq;
	}
	r = uberblock_write(s->meta, &s->label, &ub);
	if (r)
		return r;
	r = bdev_flush(s->meta);
	if (r)
		return r;

	/* 6.  Durable.  If we crash from here on, the next open finds this txg. */
	metaslab_sync_done(s->mg, txg);
	if (s->log)
		intent_log_synced(s->log, txg, pos);
	pthread_mutex_lock(&s->lock);
	s->last = ub;
	s->work.txg = txg + 1;
	s->work.log_block_seq = ub.log_block_seq;
	s->work.log_rec_seq = ub.log_rec_seq;
	s->open_txg = txg + 1;
	metaslab_tx_init(&s->tx, s->mg, s->cache, txg + 1);
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
			(unsigned long long)s->open_txg, errmsg(r));
	}
	s->quiescing = false;
	pthread_cond_broadcast(&s->cond);
out_unlock:
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&s->sync_lock);
	return r;
}

/* Under s->lock: waits out a sync, then counts a holder unless the store failed. */
static bool hold_locked(struct store *s)
{
	while (s->quiescing && !s->failed)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->failed)
		return false;
	s->holders++;
	return true;
}

/* Under s->lock: drops a holder; the last one lets a waiting sync go on. */
static void unhold_locked(struct store *s)
{
	VERIFY(s->holders > 0);
	if (!--s->holders)
		pthread_cond_broadcast(&s->cond);
}

struct tx *store_tx_hold(struct store *s)
{
	struct tx *tx = NULL;

	pthread_mutex_lock(&s->lock);
	if (!s->cfg.read_only && hold_locked(s)) {
		s->changed = true;
		tx = &s->tx;
	}
	pthread_mutex_unlock(&s->lock);
	return tx;
}

bool store_read_hold(struct store *s)
{
	bool held;

	pthread_mutex_lock(&s->lock);
	held = hold_locked(s);
	pthread_mutex_unlock(&s->lock);
	return held;
}

void store_read_release(struct store *s)
{
	pthread_mutex_lock(&s->lock);
	unhold_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void store_tx_release(struct store *s, struct tx *tx)
{
	struct cache_stats cs;
	bool over;

	VERIFY(tx == &s->tx);
	cache_stats(s->cache, &cs);
	over = cs.dirty * DDSNAP_BLOCK_SIZE >= s->cfg.dirty_max_bytes;
	pthread_mutex_lock(&s->lock);
	unhold_locked(s);
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

/* The allocator geometry for a new store; the label records its metaslab size too. */
static int store_metaslab_geometry(struct label *l, struct metaslab_root_disk *m, char *why,
				   size_t whylen)
{
	struct metaslab_geometry g;
	int r = metaslab_geometry_init(&g, l->data_start, l->data_blocks, l->meta_start,
				       l->meta_blocks, l->chunk_shift - DDSNAP_BLOCK_SHIFT);

	if (r) {
		why_set(why, whylen, "no metaslab geometry for this layout");
		return r;
	}
	l->ms_shift = g.ms_shift;
	memset(m, 0, sizeof(*m));
	m->data_start = cpu_to_le64(g.data_start);
	m->data_blocks = cpu_to_le64(g.data_blocks);
	m->meta_start = cpu_to_le64(g.meta_start);
	m->meta_blocks = cpu_to_le64(g.meta_blocks);
	m->ms_shift = cpu_to_le32(g.ms_shift);
	m->chunk_shift = cpu_to_le32(g.chunk_shift);
	return 0;
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
	memset(&ub, 0, sizeof(ub));
	if (!p->old_format)
		l.feature_incompat |= LABEL_FEATURE_INCOMPAT_DEADLISTS;
	r = store_metaslab_geometry(&l, &ub.metaslab, why, whylen);
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
		/* Txg 1: every root empty, the metaslab table never synced (all space free). */
		ub.txg = 1;
		memcpy(ub.uuid, l.uuid, sizeof(ub.uuid));
		ub.timestamp = (u64)time(NULL);
		r = uberblock_write(meta, &l, &ub);
	}
	if (!r)
		r = bdev_flush(meta);
	if (!r && metadev)
		r = label_write(metadev, &l, LABEL_ROLE_METADEV);
	if (!r)
		r = label_write(snapstore, &l, LABEL_ROLE_SNAPSTORE);
	if (r)
		why_set(why, whylen, "writing the new store: %s", errmsg(r));
	return r;
}

/*
 * The label's feature bits (both devices' once the metadata device's label is read) are
 * ones this binary knows; ro_compat ones only matter for a writer.  0 or -EOPNOTSUPP,
 * naming the device @name whose label was read last.
 */
static int features_known(const struct store *s, const char *name, char *why, size_t whylen)
{
	if (s->label.feature_incompat & ~LABEL_FEATURE_INCOMPAT_KNOWN ||
	    (!s->cfg.read_only && s->label.feature_ro_compat & ~LABEL_FEATURE_RO_COMPAT_KNOWN)) {
		why_set(why, whylen,
			"store on %s uses format features this ddsnap does not know (incompat "
			"0x%llx, ro_compat 0x%llx): a newer ddsnap made or upgraded it; use that",
			name, (unsigned long long)s->label.feature_incompat,
			(unsigned long long)s->label.feature_ro_compat);
		return -EOPNOTSUPP;
	}
	return 0;
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
	r = features_known(s, s->snap->name, why, whylen);
	if (r)
		return r;
	r = label_fits(&s->label, s->snap, LABEL_ROLE_SNAPSTORE, why, whylen);
	if (r)
		return r;
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
	/* a crash while store_set_feature wrote the labels: a bit on either device counts */
	s->label.feature_compat |= ml.feature_compat;
	s->label.feature_ro_compat |= ml.feature_ro_compat;
	s->label.feature_incompat |= ml.feature_incompat;
	r = features_known(s, s->meta->name, why, whylen);
	if (r)
		return r;
	return label_fits(&s->label, s->meta, LABEL_ROLE_METADEV, why, whylen);
}

static void store_free(struct store *s)
{
	if (s->log)
		intent_log_close(s->log);
	metaslab_close(s->mg);
	cache_destroy(s->cache);
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
	r = metaslab_open(s->cache, &s->last.metaslab, s->last.txg, &s->mg, why, whylen);
	if (r)
		goto out_free;
	s->work = s->last;
	s->open_txg = s->last.txg + 1;
	s->work.txg = s->open_txg;
	metaslab_tx_init(&s->tx, s->mg, s->cache, s->open_txg);

	if (!cfg->no_sync_thread && !cfg->read_only) {
		r = -thread_start(&s->thread, store_sync_thread, s, false);
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

void store_stop_thread(struct store *s)
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
	return READ_LOCKED(&s->lock, s->last.txg);
}

u64 store_open_txg(struct store *s)
{
	return READ_LOCKED(&s->lock, s->open_txg);
}

int store_failed(struct store *s)
{
	return READ_LOCKED(&s->lock, s->failed);
}

void store_add_hook(struct store *s, const struct store_hook *h)
{
	pthread_mutex_lock(&s->lock);
	VERIFY(s->nhooks < STORE_MAX_HOOKS);
	s->hooks[s->nhooks++] = *h;
	pthread_mutex_unlock(&s->lock);
}

int store_set_features(struct store *s, u64 ro_compat, u64 incompat)
{
	struct label l;
	int r = 0;

	VERIFY((ro_compat || incompat) && !(ro_compat & ~LABEL_FEATURE_RO_COMPAT_KNOWN) &&
	       !(incompat & ~LABEL_FEATURE_INCOMPAT_KNOWN));
	pthread_mutex_lock(&s->lock);
	l = s->label;
	pthread_mutex_unlock(&s->lock);
	if ((l.feature_ro_compat & ro_compat) == ro_compat &&
	    (l.feature_incompat & incompat) == incompat)
		return 0;
	if (s->cfg.read_only)
		return -EROFS;
	l.feature_ro_compat |= ro_compat;
	l.feature_incompat |= incompat;
	/* the metadata device first: open takes a bit found on either device */
	if (s->meta != s->snap)
		r = label_rewrite(s->meta, &l, LABEL_ROLE_METADEV);
	if (!r)
		r = label_rewrite(s->snap, &l, LABEL_ROLE_SNAPSTORE);
	if (r) {
		log_err("store: setting format features ro_compat 0x%llx incompat 0x%llx failed "
			"(%d)",
			(unsigned long long)ro_compat, (unsigned long long)incompat, r);
		return r;
	}
	log_info("store: format features ro_compat 0x%llx incompat 0x%llx set",
		 (unsigned long long)ro_compat, (unsigned long long)incompat);
	pthread_mutex_lock(&s->lock);
	s->label.feature_ro_compat |= ro_compat;
	s->label.feature_incompat |= incompat;
	pthread_mutex_unlock(&s->lock);
	return 0;
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
	struct metaslab_class_stats m;

	pthread_mutex_lock(&s->lock);
	*out = s->st;
	pthread_mutex_unlock(&s->lock);
	metaslab_stats(s->mg, METASLAB_CLASS_META, &m);
	out->meta_alloc = m.allocated;
	out->meta_deferred = m.deferred;
	metaslab_stats(s->mg, METASLAB_CLASS_DATA, &m);
	out->data_alloc = m.allocated;
	out->data_deferred = m.deferred;
	metaslab_stats(s->mg, METASLAB_CLASS_NONE, &m);
	out->unclaimed = m.free;
}

struct metaslab_group *store_metaslab(struct store *s)
{
	return s->mg;
}

struct intent_log *store_log(struct store *s)
{
	return s->log;
}

int store_log_room(struct store *s, u64 blocks)
{
	u64 used, total;
	int r;

	intent_log_usage(s->log, &used, &total);
	if (total - used >= blocks)
		return 0;
	r = store_sync(s);
	return r ? r : intent_log_wait_space(s->log);
}

static void store_log_pressure(void *arg)
{
	struct store *s = arg;

	pthread_mutex_lock(&s->lock);
	if (s->thread_running && !s->kick) {
		s->kick = true;
		s->st.log_syncs++;
		pthread_cond_signal(&s->thread_cond);
	}
	pthread_mutex_unlock(&s->lock);
}

struct replay_ctx {
	struct store *s;
	store_replay_fn fn;
	void *arg;
};

static int store_replay_one(void *arg, const struct intent_log_record *rec)
{
	struct replay_ctx *c = arg;

	return c->fn(c->arg, &c->s->tx, rec);
}

int store_open_log(struct store *s, store_replay_fn replay, void *arg, char *why, size_t whylen)
{
	struct replay_ctx c = {.s = s, .fn = replay, .arg = arg};
	struct intent_log_damage d;
	struct intent_log_config cfg = {
		.bdev = s->meta,
		.start = s->label.log_start,
		.nblocks = s->label.log_blocks,
		.guid = s->label.log_guid,
		.replay = replay ? store_replay_one : NULL,
		.replay_arg = &c,
		.pressure = store_log_pressure,
		.pressure_arg = s,
		.discard_damaged = s->cfg.discard_damaged_log,
		.damage = &d,
	};
	char msg[600];
	struct tx *tx;
	int r;

	VERIFY(!s->log);
	if (s->cfg.read_only)
		return -EROFS;
	/* Replay goes into the open txg: hold it, so no sync runs in the middle. */
	tx = store_tx_hold(s);
	if (!tx)
		return s->failed ? s->failed : -EROFS;
	pthread_mutex_lock(&s->lock);
	cfg.synced_txg = s->last.txg;
	cfg.replay_from = (struct intent_log_pos){s->last.log_block_seq, s->last.log_rec_seq};
	pthread_mutex_unlock(&s->lock);
	r = intent_log_open(&cfg, &s->log);
	if (r == -EILSEQ && d.damaged) {
		why_set(why, whylen, "intent log %s",
			intent_log_damage_describe(&d, msg, sizeof(msg)));
	} else if (r) {
		why_set(why, whylen, "intent log: %s", errmsg(r));
	}
	if (r)
		s->log = NULL;
	store_tx_release(s, tx);
	return r;
}
