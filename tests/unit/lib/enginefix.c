// SPDX-License-Identifier: GPL-2.0-only
/*
 * enginefix.c - the engine test harness (see enginefix.h).
 *
 * Crash model: the devices drop what was not flushed; the fixture's "uberblock" (f->roots and
 * f->synced_txg, and in file mode the state file) changes only at the end of a successful
 * efix_sync, after the cache and the data devices were flushed.  Log records survive once
 * flushed (recs[0..ndurable), in file mode appended to the log file); a sync makes them
 * unnecessary (the log file is truncated after the state file is renamed into place, and
 * replay skips records of synced txgs, so a death between the two is harmless).
 *
 * Allocators: metadata blocks and data chunks are bitmaps.  A block born in the open txg is
 * reusable as soon as it is freed (no durable state refers to it); every other free waits
 * for the sync, so a crash always finds the last synced trees and data intact.  On restart
 * both bitmaps are rebuilt from what the synced trees reference.
 */
#include "enginefix.h"
#include "util/crc32c.h"
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EFIX_META_BYTES	  (64u << 20) /* room for every metadata block a test writes */
#define EFIX_CACHE_BUDGET (4u << 20)
#define EFIX_STATE_MAGIC  0x5eed5a7eull

/*------------------------------------------------------------------------------------------
 * Bitmap allocators with deferred frees
 *----------------------------------------------------------------------------------------*/

static void bits_init(struct efix_bitmap *b, u64 n)
{
	free(b->used);
	free(b->pending);
	memset(b, 0, sizeof(*b));
	b->used = xzalloc(n ? n : 1);
	b->n = b->nfree = n;
}

static void bits_fini(struct efix_bitmap *b)
{
	free(b->used);
	free(b->pending);
	memset(b, 0, sizeof(*b));
}

/* Next fit: the first free unit from the hint on, and up to @want free ones after it. */
static int bits_alloc(struct efix_bitmap *b, u64 want, u64 *start, u64 *got)
{
	for (u64 k = 0; k < b->n; k++) {
		u64 i = (b->hint + k) % b->n, n = 0;

		if (b->used[i])
			continue;
		while (n < want && i + n < b->n && !b->used[i + n])
			b->used[i + n++] = 1;
		b->nfree -= n;
		b->hint = i + n;
		*start = i;
		*got = n;
		return 0;
	}
	return -ENOSPC;
}

static void bits_free(struct efix_bitmap *b, u64 i, bool now)
{
	VERIFY(i < b->n && b->used[i]);
	b->frees++;
	if (now) {
		b->used[i] = 0;
		b->nfree++;
		return;
	}
	if (b->npending == b->pending_cap) {
		b->pending_cap = b->pending_cap ? 2 * b->pending_cap : 256;
		b->pending = xrealloc(b->pending, b->pending_cap * sizeof(u64));
	}
	b->pending[b->npending++] = i;
}

static int bits_claim(struct efix_bitmap *b, u64 i)
{
	if (i >= b->n || b->used[i])
		return -EEXIST;
	b->used[i] = 1;
	b->nfree--;
	return 0;
}

static void bits_synced(struct efix_bitmap *b)
{
	for (u64 i = 0; i < b->npending; i++) {
		b->used[b->pending[i]] = 0;
		b->nfree++;
	}
	b->npending = 0;
}

static void bits_clear(struct efix_bitmap *b)
{
	memset(b->used, 0, b->n);
	b->nfree = b->n;
	b->npending = 0;
	b->hint = 0;
}

/*------------------------------------------------------------------------------------------
 * tx, space and log ops
 *----------------------------------------------------------------------------------------*/

static int fix_alloc_meta(struct tx *tx, u64 *blocknr)
{
	struct efix *f = tx->priv;
	u64 got;

	return bits_alloc(&f->metabits, 1, blocknr, &got);
}

static void fix_free_meta(struct tx *tx, u64 blocknr, u64 birth_txg)
{
	struct efix *f = tx->priv;

	bits_free(&f->metabits, blocknr, birth_txg == tx->txg);
}

static const struct tx_ops fix_tx_ops = {
	.alloc_meta = fix_alloc_meta,
	.free_meta = fix_free_meta,
};

static int fix_alloc(void *priv, struct tx *tx, u64 want, u64 *start, u64 *got)
{
	struct efix *f = priv;

	return bits_alloc(&f->databits, want, start, got);
}

static void fix_free(void *priv, struct tx *tx, u64 start, u64 count)
{
	struct efix *f = priv;

	/* Data chunks: always deferred (the engine does not say when a chunk was born). */
	for (u64 i = start; i < start + count; i++)
		bits_free(&f->databits, i, false);
}

static u64 fix_avail(void *priv)
{
	struct efix *f = priv;

	return f->databits.nfree;
}

static u64 fix_deferred(void *priv)
{
	struct efix *f = priv;

	return f->databits.npending;
}

static int fix_claim(void *priv, struct tx *tx, u64 start, u64 count)
{
	struct efix *f = priv;

	if (count > f->databits.n || start > f->databits.n - count)
		return -EINVAL; /* (a replayed record's address; start + count may wrap) */
	for (u64 i = start; i < start + count; i++) {
		int err = bits_claim(&f->databits, i);

		if (err)
			return err;
	}
	return 0;
}

static u32 rec_csum(const struct efix_rec *r)
{
	struct efix_rec c = *r;

	c.csum = 0;
	return crc32c(0, &c, sizeof(c));
}

static int fix_ilog_append(void *priv, struct tx *tx, u16 type, const void *payload, u16 len)
{
	struct efix *f = priv;
	struct efix_rec *r;

	VERIFY(len <= sizeof(r->payload));
	if (f->fail_append)
		return f->fail_append;
	if (f->nrecs == f->rec_cap) {
		f->rec_cap = f->rec_cap ? 2 * f->rec_cap : 256;
		f->recs = xrealloc(f->recs, f->rec_cap * sizeof(*f->recs));
	}
	r = &f->recs[f->nrecs++];
	memset(r, 0, sizeof(*r));
	r->type = type;
	r->txg = tx->txg;
	r->len = len;
	memcpy(r->payload, payload, len);
	r->csum = rec_csum(r);
	return 0;
}

static int fix_ilog_flush(void *priv)
{
	struct efix *f = priv;

	if (f->fail_flush)
		return f->fail_flush;
	if (f->dir && f->nrecs > f->ndurable) {
		size_t len = (f->nrecs - f->ndurable) * sizeof(*f->recs);

		if (write(f->logfd, &f->recs[f->ndurable], len) != (ssize_t)len)
			return -EIO;
	}
	f->ndurable = f->nrecs;
	return 0;
}

/*------------------------------------------------------------------------------------------
 * Devices
 *----------------------------------------------------------------------------------------*/

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

/*------------------------------------------------------------------------------------------
 * Open, sync, restart
 *----------------------------------------------------------------------------------------*/

static void fix_params(struct efix *f)
{
	f->space =
		(struct engine_space_ops){fix_alloc, fix_free, fix_avail, fix_deferred, fix_claim};
	f->tx = (struct tx){.txg = f->synced_txg + 1, .ops = &fix_tx_ops, .priv = f};
	f->params = (struct engine_params){
		.chunk_size = f->chunk_size,
		.origin_chunks = f->origin_chunks,
		.space = &f->space,
		.space_priv = f,
		.ilog_append = fix_ilog_append,
		.ilog_flush = fix_ilog_flush,
		.ilog_priv = f,
		.autodelete = true,
		.caller_flushes = f->caller_flushes,
		.persist_deadlists = f->persist_deadlists,
		.data_first = 0,
		.data_end = f->data_chunks,
	};
	if (f->caller_flushes)
		f->params.ilog_flush = NULL;
}

int efix_commit(struct efix *f)
{
	int err;

	if (!f->caller_flushes)
		return 0;
	err = bdev_flush(f->snapstore);
	return err ? err : fix_ilog_flush(f);
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

static void fix_setup(struct efix *f, u32 chunk_size, u64 origin_chunks, u64 data_chunks,
		      u64 meta_bytes)
{
	memset(f, 0, sizeof(*f));
	f->chunk_size = chunk_size;
	f->origin_chunks = origin_chunks;
	f->data_chunks = data_chunks;
	f->logfd = -1;
	f->cache_bytes = EFIX_CACHE_BUDGET;
	bits_init(&f->metabits, meta_bytes / DDSNAP_BLOCK_SIZE);
	/* block 0 is never a tree block: blocknr 0 means an empty tree */
	VERIFY(!bits_claim(&f->metabits, 0));
	bits_init(&f->databits, data_chunks);
}

void efix_init_opts(struct efix *f, u32 chunk_size, u64 origin_chunks, u64 data_chunks,
		    const struct efix_opts *o)
{
	u64 meta_bytes = o->meta_bytes ? o->meta_bytes : EFIX_META_BYTES;
	u64 obytes = origin_chunks * chunk_size, dbytes = data_chunks * chunk_size;

	fix_setup(f, chunk_size, origin_chunks, data_chunks, meta_bytes);
	f->faulty = o->faulty;
	f->caller_flushes = o->caller_flushes;
	f->persist_deadlists = o->persist_deadlists;
	if (o->cache_bytes)
		f->cache_bytes = o->cache_bytes;
	if (o->faulty) {
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
	fix_params(f);
	VERIFY(fix_open_engine(f) == 0);
}

static void fix_close_engine(struct efix *f)
{
	engine_close(f->e);
	f->e = NULL;
	cache_destroy(f->cache);
	f->cache = NULL;
}

void efix_fini(struct efix *f)
{
	fix_close_engine(f);
	bdev_close(f->origin);
	bdev_close(f->snapstore);
	bdev_close(f->meta);
	bits_fini(&f->metabits);
	bits_fini(&f->databits);
	free(f->recs);
	if (f->logfd >= 0)
		close(f->logfd);
	free(f->dir);
	memset(f, 0, sizeof(*f));
}

/* File mode: what the uberblock holds, written atomically by rename. */
struct efix_state {
	u64 magic, chunk_size, origin_chunks, data_chunks, meta_bytes, synced_txg;
	struct engine_roots roots;
	u64 persist_deadlists; /* the store's mode, chosen at create */
	u32 csum, pad;
};

static char *dir_path(const struct efix *f, const char *name)
{
	char *p = xmalloc(strlen(f->dir) + strlen(name) + 2);

	sprintf(p, "%s/%s", f->dir, name);
	return p;
}

static int write_state(struct efix *f)
{
	struct efix_state st = {
		.magic = EFIX_STATE_MAGIC,
		.chunk_size = f->chunk_size,
		.origin_chunks = f->origin_chunks,
		.data_chunks = f->data_chunks,
		.meta_bytes = f->metabits.n * DDSNAP_BLOCK_SIZE,
		.synced_txg = f->synced_txg,
		.roots = f->roots,
		.persist_deadlists = f->persist_deadlists,
	};
	char *tmp = dir_path(f, "state.tmp"), *path = dir_path(f, "state");
	int fd, err = 0;

	st.csum = crc32c(0, &st, offsetof(struct efix_state, csum));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, &st, sizeof(st)) != sizeof(st) || fsync(fd) || rename(tmp, path))
		err = -EIO;
	if (fd >= 0)
		close(fd);
	free(tmp);
	free(path);
	return err;
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
	f->synced_txg = f->tx.txg;
	if (f->dir) {
		err = write_state(f);
		if (!err && ftruncate(f->logfd, 0))
			err = -EIO;
		if (err)
			return err;
	}
	bits_synced(&f->metabits);
	bits_synced(&f->databits);
	f->nrecs = f->ndurable = 0;
	f->tx.txg++;
	f->syncs++;
	return 0;
}

static int recount_data(void *arg, u64 start, u64 count)
{
	struct efix *f = arg;

	for (u64 i = start; i < start + count; i++)
		if (bits_claim(&f->databits, i))
			return -EILSEQ;
	return 0;
}

static int recount_meta(void *arg, u64 blocknr, u64 birth_txg)
{
	struct efix *f = arg;

	return bits_claim(&f->metabits, blocknr) ? -EILSEQ : 0;
}

/* Reopens from the synced roots, rebuilds the allocators, replays recs[0..ndurable). */
static int fix_restart(struct efix *f)
{
	struct engine_check_ops ops = {recount_data, recount_meta, f};
	struct engine_check_report rep;
	char why[200];
	int err;

	bits_clear(&f->databits);
	bits_clear(&f->metabits);
	VERIFY(!bits_claim(&f->metabits, 0));
	f->tx.txg = f->synced_txg + 1;
	err = fix_open_engine(f);
	if (err)
		return err;
	/* The space maps of the synced txg are what its trees reference. */
	err = engine_check(f->e, &ops, &rep, why, sizeof(why));
	if (err) {
		fprintf(stderr, "efix: check after reopen: %s (%d)\n", why, err);
		return err;
	}
	for (u64 i = 0; i < f->ndurable; i++) {
		if (f->recs[i].txg <= f->synced_txg)
			continue;
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
	fix_close_engine(f);
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
	fix_close_engine(f);
	return fix_restart(f);
}

/*------------------------------------------------------------------------------------------
 * File mode
 *----------------------------------------------------------------------------------------*/

static int open_file_dev(struct efix *f, const char *name, u64 size, bool create, struct bdev **out)
{
	char *path = dir_path(f, name);
	int err = 0;

	if (create) {
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

		if (fd < 0 || ftruncate(fd, (off_t)size))
			err = -errno;
		if (fd >= 0)
			close(fd);
	}
	if (!err)
		err = bdev_open(path, BDEV_BUFFERED, out);
	if (err)
		fprintf(stderr, "efix: %s: %s\n", path, strerror(-err));
	free(path);
	return err;
}

static int read_state(struct efix *f, struct efix_state *st)
{
	char *path = dir_path(f, "state");
	int fd = open(path, O_RDONLY), err = 0;

	if (fd < 0 || read(fd, st, sizeof(*st)) != sizeof(*st) || st->magic != EFIX_STATE_MAGIC ||
	    st->csum != crc32c(0, st, offsetof(struct efix_state, csum)))
		err = -EILSEQ;
	if (fd >= 0)
		close(fd);
	free(path);
	return err;
}

/* Loads the durable log records (a torn or foreign tail ends the log). */
static int read_log(struct efix *f)
{
	struct efix_rec r;

	if (lseek(f->logfd, 0, SEEK_SET) < 0)
		return -errno;
	while (read(f->logfd, &r, sizeof(r)) == sizeof(r) && r.csum == rec_csum(&r) &&
	       r.len <= sizeof(r.payload)) {
		if (f->nrecs == f->rec_cap) {
			f->rec_cap = f->rec_cap ? 2 * f->rec_cap : 256;
			f->recs = xrealloc(f->recs, f->rec_cap * sizeof(*f->recs));
		}
		f->recs[f->nrecs++] = r;
	}
	f->ndurable = f->nrecs;
	return 0;
}

int efix_open_dir(struct efix *f, const char *dir, bool create, u32 chunk_size, u64 origin_chunks,
		  u64 data_chunks, u64 meta_bytes, bool persist_deadlists)
{
	struct efix_state st = {0};
	char *logpath;
	int err;

	if (!create) {
		struct efix tmp = {.dir = (char *)dir};

		err = read_state(&tmp, &st);
		if (err) {
			fprintf(stderr, "efix: %s/state unreadable\n", dir);
			return err;
		}
		chunk_size = (u32)st.chunk_size;
		origin_chunks = st.origin_chunks;
		data_chunks = st.data_chunks;
		meta_bytes = st.meta_bytes;
	}
	fix_setup(f, chunk_size, origin_chunks, data_chunks, meta_bytes);
	f->dir = xstrdup(dir);
	f->persist_deadlists = create ? persist_deadlists : st.persist_deadlists;
	if (!create) {
		f->roots = st.roots;
		f->synced_txg = st.synced_txg;
	}
	err = open_file_dev(f, "origin", origin_chunks * chunk_size, create, &f->origin);
	if (!err)
		err = open_file_dev(f, "snapstore", data_chunks * chunk_size, create,
				    &f->snapstore);
	if (!err)
		err = open_file_dev(f, "meta", meta_bytes, create, &f->meta);
	if (err)
		goto fail;
	logpath = dir_path(f, "log");
	f->logfd = open(logpath, O_RDWR | O_CREAT | O_APPEND | (create ? O_TRUNC : 0), 0644);
	free(logpath);
	if (f->logfd < 0) {
		err = -errno;
		goto fail;
	}
	fix_params(f);
	if (create) {
		err = fix_open_engine(f);
		if (!err)
			err = efix_sync(f);
	} else {
		err = read_log(f);
		if (!err)
			err = fix_restart(f);
	}
	if (err)
		goto fail;
	return 0;

fail:
	efix_fini(f);
	return err;
}

int efix_set_caller_flushes(struct efix *f, bool on)
{
	int err = efix_sync(f);

	if (err)
		return err;
	fix_close_engine(f);
	f->caller_flushes = on;
	fix_params(f);
	return fix_open_engine(f);
}

int efix_close(struct efix *f)
{
	int err = efix_sync(f);

	efix_fini(f);
	return err;
}

/*------------------------------------------------------------------------------------------
 * Reads and writes as a client would do them
 *----------------------------------------------------------------------------------------*/

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

int efix_origin_write_gen(struct efix *f, u64 chunk, u32 off, u32 len, const void *data, u64 *gen)
{
	struct engine_range r = {chunk, 1};
	int err = engine_origin_write(f->e, &f->tx, &r, 1, gen, NULL);

	if (err == -EAGAIN) {
		/* What the server does: sync the txg so deferred frees become usable, retry. */
		err = efix_sync(f);
		if (!err)
			err = engine_origin_write(f->e, &f->tx, &r, 1, gen, NULL);
	}
	if (!err)
		err = efix_commit(f);
	return err ? err : rmw(f, f->origin, chunk, off, len, data);
}

int efix_origin_write(struct efix *f, u64 chunk, u32 off, u32 len, const void *data)
{
	return efix_origin_write_gen(f, chunk, off, len, data, NULL);
}

int efix_snap_write(struct efix *f, u32 tag, u64 chunk, u32 off, u32 len, const void *data)
{
	u64 addr;
	int err = engine_snap_write_map(f->e, &f->tx, tag, chunk, &addr);

	if (err == -EAGAIN) {
		err = efix_sync(f);
		if (!err)
			err = engine_snap_write_map(f->e, &f->tx, tag, chunk, &addr);
	}
	if (!err)
		err = efix_commit(f);
	return err ? err : rmw(f, f->snapstore, addr, off, len, data);
}
