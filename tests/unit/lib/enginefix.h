/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * enginefix.h - a test harness around the snapshot engine: RAM (or fault-injecting) origin,
 * snapstore and metadata devices, a metadata cache, a bump allocator for metadata blocks, a
 * bitmap allocator for snapstore data with deferred frees, an in-memory intent log with
 * group-commit semantics, and a "store" that syncs txgs and keeps the roots of the last
 * synced one, so a test can crash (drop unflushed writes and unsynced state), reopen and
 * replay exactly as the real store will.
 *
 * Not thread-safe; one engine per fixture.  Used by test_engine and the stress program.
 */
#ifndef DDSNAP_ENGINEFIX_H
#define DDSNAP_ENGINEFIX_H

#include "base.h"
#include "bdev.h"
#include "cache.h"
#include "engine.h"
#include "tx.h"

struct efix_rec {
	u16 type;
	u64 txg;
	u8 payload[64];
	u16 len;
};

struct efix {
	u32 chunk_size;
	u64 origin_chunks, data_chunks;
	bool faulty; /* devices are bdev_faulty: crashes drop unflushed writes */
	struct bdev *origin, *snapstore, *meta;
	struct cache *cache;
	struct tx tx;
	u64 meta_next, meta_blocks;
	size_t cache_bytes;
	u64 alloc_hint; /* next-fit start for data allocation */
	/* data space: one byte per snapstore chunk (0 free, 1 used), frees deferred to sync */
	u8 *used;
	u64 nfree, frees;
	u64 *pending;
	u64 npending, pending_cap;
	struct engine_space_ops space;
	/* intent log: recs[0..ndurable) survive a crash; all are after the last sync */
	struct efix_rec *recs;
	u64 nrecs, ndurable, rec_cap;
	bool use_log;
	/* the "uberblock": roots of the last synced txg */
	struct engine_roots roots;
	struct engine_params params;
	struct engine *e;
	u64 syncs, replayed;
};

/*
 * Sets up devices and opens an empty engine.  @data_chunks is the snapstore size in chunks.
 * @faulty uses bdev_faulty devices (seeded with @seed).  Aborts on failure.
 */
void efix_init(struct efix *f, u32 chunk_size, u64 origin_chunks, u64 data_chunks, bool faulty,
	       u64 seed);

struct efix_opts {
	bool faulty;	    /* bdev_faulty devices (crash tests) */
	bool null_data;	    /* origin and snapstore read zeros and drop writes (cost tests) */
	u64 meta_bytes;	    /* metadata device size; 0: a default for small tests */
	size_t cache_bytes; /* 0: a small default */
	u64 seed;
};
/* efix_init with options. */
void efix_init_opts(struct efix *f, u32 chunk_size, u64 origin_chunks, u64 data_chunks,
		    const struct efix_opts *o);

/* A device of @size bytes that reads zeros and drops writes (data whose content no test reads). */
struct bdev *efix_null_bdev(u64 size);
void efix_fini(struct efix *f);

/* Syncs the open txg: engine_sync, cache_sync, flush, roots become durable. Returns 0/-errno. */
int efix_sync(struct efix *f);

/*
 * Simulated power cut and restart: unflushed device writes and unsynced state are lost
 * (bdev_faulty_crash when faulty), the engine is reopened from the last synced roots, the
 * data space is recounted from what the engine references, and the durable log records are
 * replayed.  Returns 0 or the first error of reopen or replay.
 */
int efix_crash_reopen(struct efix *f, bool keep_random);

/* Closes and reopens cleanly (sync first).  Returns 0 or -errno. */
int efix_reopen(struct efix *f);

/* Reads a whole chunk as snapshot @tag (ENGINE_HEAD: the origin) sees it. Returns 0/-errno. */
int efix_read(struct efix *f, u32 tag, u64 chunk, void *buf);

/* Writes @len bytes at @off into origin chunk @chunk (copy-out first). Returns 0/-errno. */
int efix_origin_write(struct efix *f, u64 chunk, u32 off, u32 len, const void *data);
/* Writes into snapshot @tag's chunk (overlay). Returns 0/-errno. */
int efix_snap_write(struct efix *f, u32 tag, u64 chunk, u32 off, u32 len, const void *data);

#endif
