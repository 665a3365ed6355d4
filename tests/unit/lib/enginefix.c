// SPDX-License-Identifier: GPL-2.0-only
/*
 * enginefix.c - the engine test harness (see enginefix.h).
 *
 * Crash model: the devices drop what was not flushed; the fixture's "uberblock" (f->roots)
 * changes only at the end of a successful efix_sync, after the cache and the data devices
 * were flushed; log records survive a crash once flushed (recs[0..ndurable)), and a sync
 * empties the log, as the real intent log's sync point does.  Metadata blocks are never
 * reused (bump allocation), so a synced tree can never be overwritten.
 */
#include "enginefix.h"
#include <string.h>

#define EFIX_META_BYTES	  (64u << 20) /* room for every metadata block a test writes */
#define EFIX_CACHE_BUDGET (4u << 20)

static int fix_alloc_meta(struct tx *tx, u64 *blocknr)
{
	struct efix *f = tx->priv;

	if (f->meta_next >= f->meta_blocks)
		return -ENOSPC;
	*blocknr = f->meta_next++;
	return 0;
}

static void fix_free_meta(struct tx *tx, u64 blocknr, u64 birth_txg)
{
	/* Never reused: a crash can always find the last synced trees intact. */
}

static const struct tx_ops fix_tx_ops = {
	.alloc_meta = fix_alloc_meta,
	.free_meta = fix_free_meta,
};

static int fix_alloc(void *priv, struct tx *tx, u64 want, u64 *start, u64 *got)
{
	struct efix *f = priv;

	/* Next fit: the first free chunk from the hint on, and the free ones after it. */
	for (u64 k = 0; k < f->data_chunks; k++) {
		u64 i = (f->alloc_hint + k) % f->data_chunks, n = 0;

		if (f->used[i])
			continue;
		while (n < want && i + n < f->data_chunks && !f->used[i + n])
			f->used[i + n++] = 1;
		f->nfree -= n;
		f->alloc_hint = i + n;
		*start = i;
		*got = n;
		return 0;
	}
	return -ENOSPC;
}

static void fix_free(void *priv, struct tx *tx, u64 start, u64 count)
{
	struct efix *f = priv;

	for (u64 i = start; i < start + count; i++) {
		VERIFY(i < f->data_chunks && f->used[i]);
		if (f->npending == f->pending_cap) {
			f->pending_cap = f->pending_cap ? 2 * f->pending_cap : 256;
			f->pending = xrealloc(f->pending, f->pending_cap * sizeof(u64));
		}
		f->pending[f->npending++] = i;
		f->frees++;
	}
}

static u64 fix_avail(void *priv)
{
	struct efix *f = priv;

	return f->nfree;
}

static u64 fix_deferred(void *priv)
{
	struct efix *f = priv;

	return f->npending;
}

static int fix_claim(void *priv, struct tx *tx, u64 start, u64 count)
{
	struct efix *f = priv;

	for (u64 i = start; i < start + count; i++) {
		if (i >= f->data_chunks || f->used[i])
			return -EEXIST;
		f->used[i] = 1;
		f->nfree--;
	}
	return 0;
}

static int fix_log_append(void *priv, struct tx *tx, u16 type, const void *payload, u16 len)
{
	struct efix *f = priv;
	struct efix_rec *r;

	VERIFY(len <= sizeof(r->payload));
	if (f->nrecs == f->rec_cap) {
		f->rec_cap = f->rec_cap ? 2 * f->rec_cap : 256;
		f->recs = xrealloc(f->recs, f->rec_cap * sizeof(*f->recs));
	}
	r = &f->recs[f->nrecs++];
	r->type = type;
	r->txg = tx->txg;
	r->len = len;
	memcpy(r->payload, payload, len);
	return 0;
}

static int fix_log_flush(void *priv)
{
	struct efix *f = priv;

	f->ndurable = f->nrecs;
	return 0;
}

static int null_read(struct bdev *b, void *buf, size_t len, u64 off)
{
	if (off > b->size || len > b->size - off)
		return -EINVAL;
	memset(buf, 0, len);
	return 0;
}

static int null_write(struct bdev *b, const void *buf, size_t len, u64 off)
{
	return off > b->size || len > b->size - off ? -EINVAL : 0;
}

static int null_flush(struct bdev *b)
{
	return 0;
}

static void null_close(struct bdev *b)
{
	free(b);
}

static const struct bdev_ops null_ops = {
	.read = null_read,
	.write = null_write,
	.flush = null_flush,
	.close = null_close,
};

struct bdev *efix_null_bdev(u64 size)
{
	struct bdev *b = xzalloc(sizeof(*b));

	b->ops = &null_ops;
	b->size = size;
	b->name = "null";
	return b;
}

static void fix_open_devices(struct efix *f, const struct efix_opts *o, u64 meta_bytes)
{
	u64 obytes = f->origin_chunks * f->chunk_size, dbytes = f->data_chunks * f->chunk_size;

	if (f->faulty) {
		f->origin = bdev_faulty_create(obytes, o->seed);
		f->snapstore = bdev_faulty_create(dbytes, o->seed + 1);
		f->meta = bdev_faulty_create(meta_bytes, o->seed + 2);
	} else if (o->null_data) {
		f->origin = efix_null_bdev(obytes);
		f->snapstore = efix_null_bdev(dbytes);
		f->meta = bdev_ram_create(meta_bytes);
	} else {
		f->origin = bdev_ram_create(obytes);
		f->snapstore = bdev_ram_create(dbytes);
		f->meta = bdev_ram_create(meta_bytes);
	}
}

static int fix_open_engine(struct efix *f)
{
	f->cache = cache_create(f->meta, f->cache_bytes);
	f->tx.cache = f->cache;
	f->params.cache = f->cache;
	f->params.origin = f->origin;
	f->params.snapstore = f->snapstore;
	return engine_open(&f->params, &f->roots, &f->e);
}

void efix_init(struct efix *f, u32 chunk_size, u64 origin_chunks, u64 data_chunks, bool faulty,
	       u64 seed)
{
	struct efix_opts o = {.faulty = faulty, .seed = seed};

	efix_init_opts(f, chunk_size, origin_chunks, data_chunks, &o);
}

void efix_init_opts(struct efix *f, u32 chunk_size, u64 origin_chunks, u64 data_chunks,
		    const struct efix_opts *o)
{
	u64 meta_bytes = o->meta_bytes ? o->meta_bytes : EFIX_META_BYTES;

	memset(f, 0, sizeof(*f));
	f->chunk_size = chunk_size;
	f->origin_chunks = origin_chunks;
	f->data_chunks = data_chunks;
	f->faulty = o->faulty;
	f->cache_bytes = o->cache_bytes ? o->cache_bytes : EFIX_CACHE_BUDGET;
	fix_open_devices(f, o, meta_bytes);
	f->meta_blocks = meta_bytes / DDSNAP_BLOCK_SIZE;
	f->meta_next = 1; /* block 0 is never a tree block: blocknr 0 means empty */
	f->used = xzalloc(data_chunks);
	f->nfree = data_chunks;
	f->space =
		(struct engine_space_ops){fix_alloc, fix_free, fix_avail, fix_deferred, fix_claim};
	f->tx = (struct tx){.txg = 1, .ops = &fix_tx_ops, .priv = f};
	f->use_log = true;
	f->params = (struct engine_params){
		.chunk_size = chunk_size,
		.origin_chunks = origin_chunks,
		.space = &f->space,
		.space_priv = f,
		.log_append = fix_log_append,
		.log_flush = fix_log_flush,
		.log_priv = f,
		.autodelete = true,
	};
	VERIFY(fix_open_engine(f) == 0);
}

void efix_fini(struct efix *f)
{
	engine_close(f->e);
	cache_destroy(f->cache);
	bdev_close(f->origin);
	bdev_close(f->snapstore);
	bdev_close(f->meta);
	free(f->used);
	free(f->pending);
	free(f->recs);
	memset(f, 0, sizeof(*f));
}

int efix_sync(struct efix *f)
{
	struct engine_roots roots;
	int err = engine_sync(f->e, &f->tx, &roots);

	if (!err)
		err = cache_sync(f->cache, f->tx.txg);
	if (!err)
		err = bdev_flush(f->meta);
	if (!err)
		err = bdev_flush(f->snapstore);
	if (err)
		return err;
	f->roots = roots; /* the uberblock write */
	for (u64 i = 0; i < f->npending; i++) {
		f->used[f->pending[i]] = 0;
		f->nfree++;
	}
	f->npending = 0;
	f->nrecs = f->ndurable = 0;
	f->tx.txg++;
	f->syncs++;
	return 0;
}

static int recount_space(void *arg, u64 start, u64 count)
{
	struct efix *f = arg;

	for (u64 i = start; i < start + count; i++) {
		if (i >= f->data_chunks || f->used[i])
			return -EILSEQ;
		f->used[i] = 1;
		f->nfree--;
	}
	return 0;
}

static int fix_restart(struct efix *f)
{
	struct engine_check_report rep;
	char why[200];
	int err;

	f->npending = 0;
	memset(f->used, 0, f->data_chunks);
	f->nfree = f->data_chunks;
	err = fix_open_engine(f);
	if (err)
		return err;
	/* The space map of the synced txg is what the synced trees reference. */
	err = engine_check(f->e, &rep, recount_space, f, why, sizeof(why));
	if (err) {
		fprintf(stderr, "efix: check after reopen: %s (%d)\n", why, err);
		return err;
	}
	f->tx.txg++;
	for (u64 i = 0; i < f->ndurable; i++) {
		err = engine_replay(f->e, &f->tx, f->recs[i].type, f->recs[i].payload,
				    f->recs[i].len);
		if (err) {
			fprintf(stderr, "efix: replay of record %llu failed (%d)\n",
				(unsigned long long)i, err);
			return err;
		}
		f->replayed++;
	}
	f->nrecs = f->ndurable = 0;
	return efix_sync(f);
}

int efix_crash_reopen(struct efix *f, bool keep_random)
{
	engine_close(f->e);
	f->e = NULL;
	cache_destroy(f->cache);
	if (f->faulty) {
		bdev_faulty_crash(f->origin, keep_random);
		bdev_faulty_crash(f->snapstore, keep_random);
		bdev_faulty_crash(f->meta, keep_random);
	}
	f->nrecs = f->ndurable;
	return fix_restart(f);
}

int efix_reopen(struct efix *f)
{
	int err = efix_sync(f);

	if (err)
		return err;
	engine_close(f->e);
	f->e = NULL;
	cache_destroy(f->cache);
	return fix_restart(f);
}

int efix_read(struct efix *f, u32 tag, u64 chunk, void *buf)
{
	enum engine_map_where where = ENGINE_MAP_ORIGIN;
	u64 addr = chunk;
	int err = 0;

	if (tag != ENGINE_HEAD)
		err = engine_snap_read_map(f->e, tag, chunk, &where, &addr);
	if (err)
		return err;
	return bdev_read(where == ENGINE_MAP_ORIGIN ? f->origin : f->snapstore, buf, f->chunk_size,
			 addr * f->chunk_size);
}

static int rmw(struct efix *f, struct bdev *b, u64 addr, u32 off, u32 len, const void *data)
{
	void *buf;
	int err;

	if (posix_memalign(&buf, BDEV_ALIGN, f->chunk_size))
		return -ENOMEM;
	err = bdev_read(b, buf, f->chunk_size, addr * f->chunk_size);
	if (!err) {
		memcpy((u8 *)buf + off, data, len);
		err = bdev_write(b, buf, f->chunk_size, addr * f->chunk_size);
	}
	/* The application's write is durable, so the model stays exact across crashes. */
	if (!err && f->faulty)
		err = bdev_flush(b);
	free(buf);
	return err;
}

int efix_origin_write(struct efix *f, u64 chunk, u32 off, u32 len, const void *data)
{
	struct engine_range r = {chunk, 1};
	int err = engine_origin_write(f->e, &f->tx, &r, 1, NULL, NULL);

	if (err == -EAGAIN) {
		/* What the server does: sync the txg so deferred frees become usable, retry. */
		err = efix_sync(f);
		if (!err)
			err = engine_origin_write(f->e, &f->tx, &r, 1, NULL, NULL);
	}

	return err ? err : rmw(f, f->origin, chunk, off, len, data);
}

int efix_snap_write(struct efix *f, u32 tag, u64 chunk, u32 off, u32 len, const void *data)
{
	u64 addr;
	int err = engine_snap_write_map(f->e, &f->tx, tag, chunk, len == f->chunk_size, &addr);

	if (err == -EAGAIN) {
		err = efix_sync(f);
		if (!err)
			err = engine_snap_write_map(f->e, &f->tx, tag, chunk, len == f->chunk_size,
						    &addr);
	}

	return err ? err : rmw(f, f->snapstore, addr, off, len, data);
}
