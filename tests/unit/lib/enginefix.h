/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * enginefix.h - a harness around the snapshot engine for tests and the stress program:
 * origin, snapstore and metadata devices (RAM, fault-injecting, null, or files), a metadata
 * cache, a metadata block allocator and a data chunk allocator (both bitmaps, frees deferred
 * until the freeing txg is synced, as the real space maps do), an intent log with group
 * commit semantics, and a minimal "store" that syncs txgs and keeps the roots of the last
 * synced one.  A test can crash (drop unflushed writes and unsynced state), reopen and replay
 * exactly as the real store will; the file mode keeps everything in a directory so a
 * process can be SIGKILLed and another one recover.
 *
 * On restart the allocators are rebuilt from what the synced trees reference
 * (engine_check's callbacks), which is also a leak and double-use check.
 *
 * Not thread-safe; one engine per fixture.
 */
#ifndef DDSNAP_ENGINEFIX_H
#define DDSNAP_ENGINEFIX_H

#include "util/base.h"
#include "blk/bdev.h"
#include "blk/cache.h"
#include "snap/engine.h"
#include "pdata/tx.h"

struct efix_rec {
	u64 txg;
	u16 type;
	u16 len;
	u32 csum; /* file mode: crc32c of the record, so a torn tail is recognised */
	u8 payload[64];
};

struct efix_bitmap {
	u8 *used; /* one byte per unit: 0 free, 1 used */
	u64 n, nfree, hint;
	u64 *pending; /* freed in the open txg, reusable after the sync */
	u64 npending, pending_cap;
	u64 frees; /* every free since init (cost and accounting tests) */
};

struct efix {
	u32 chunk_size;
	u64 origin_chunks, data_chunks;
	bool faulty; /* devices are bdev_faulty: crashes drop unflushed writes */
	struct bdev *origin, *snapstore, *meta;
	struct cache *cache;
	size_t cache_bytes;
	struct tx tx;
	struct efix_bitmap metabits, databits;
	struct engine_space_ops space;
	/* intent log: recs[0..ndurable) survive a crash; all belong to unsynced txgs */
	struct efix_rec *recs;
	u64 nrecs, ndurable, rec_cap;
	int fail_append, fail_flush; /* injected log errors (0: none) */
	bool caller_flushes;	     /* the engine's params.caller_flushes: see efix_commit */
	bool persist_deadlists;	     /* params.persist_deadlists (efix_opts) */
	/* the "uberblock": roots of the last synced txg, and that txg */
	struct engine_roots roots;
	u64 synced_txg;
	struct engine_params params;
	struct engine *e;
	u64 syncs, replayed;
	/* file mode */
	char *dir;
	int logfd;
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
	bool caller_flushes;	/* engine params.caller_flushes; the wrappers call efix_commit */
	bool persist_deadlists; /* engine params.persist_deadlists */
};
/* efix_init with options. */
void efix_init_opts(struct efix *f, u32 chunk_size, u64 origin_chunks, u64 data_chunks,
		    const struct efix_opts *o);

/*
 * File mode: the devices (origin, snapstore, meta), the synced roots (state) and the intent
 * log (log) are files in @dir.  @create makes a new empty store there (with the sizes given);
 * otherwise the store in @dir is opened, recovered (replay of the log records of unsynced
 * txgs) and synced, and the sizes are read from it.  @persist_deadlists (params
 * .persist_deadlists) is the new store's mode; an opened store keeps the mode it was made
 * with.  Survives SIGKILL of the process at any
 * point (file writes reach the page cache whole; this is process death, not power loss).
 * Returns 0 or -errno with a message on stderr.
 */
int efix_open_dir(struct efix *f, const char *dir, bool create, u32 chunk_size, u64 origin_chunks,
		  u64 data_chunks, u64 meta_bytes, bool persist_deadlists);
/* Syncs and reopens the engine with params.caller_flushes = @on.  Returns 0 or -errno. */
int efix_set_caller_flushes(struct efix *f, bool on);

/* Closes after a final sync.  Returns 0 or the sync's error; frees everything anyway. */
int efix_close(struct efix *f);

void efix_fini(struct efix *f);

/*
 * With caller_flushes: what the server does after each engine call, outside its lock:
 * flush the snapstore, then make every appended log record durable.  A no-op otherwise.
 * Returns 0/-errno.
 */
int efix_commit(struct efix *f);

/* Syncs the open txg: engine_sync, cache_sync, flush, roots become durable. Returns 0/-errno. */
int efix_sync(struct efix *f);

/*
 * Simulated power cut and restart: unflushed device writes and unsynced state are lost
 * (bdev_faulty_crash when faulty), the engine is reopened from the last synced roots, the
 * allocators are rebuilt from what the engine references, and the durable log records are
 * replayed.  Returns 0 or the first error of reopen, check or replay.
 */
int efix_crash_reopen(struct efix *f, bool keep_random);

/* Closes and reopens cleanly (sync first).  Returns 0 or -errno. */
int efix_reopen(struct efix *f);

/* Reads a whole chunk as snapshot @tag (ENGINE_HEAD: the origin) sees it. Returns 0/-errno. */
int efix_read(struct efix *f, u32 tag, u64 chunk, void *buf);

/*
 * Writes @len bytes at @off into origin chunk @chunk, after the engine's copy-out (on -EAGAIN
 * syncs and asks again, as the server does).  Returns 0/-errno; *gen (may be NULL) gets the
 * gen the write happened in.
 */
int efix_origin_write_gen(struct efix *f, u64 chunk, u32 off, u32 len, const void *data, u64 *gen);
int efix_origin_write(struct efix *f, u64 chunk, u32 off, u32 len, const void *data);
/* Writes into snapshot @tag's chunk (overlay). Returns 0/-errno. */
int efix_snap_write(struct efix *f, u32 tag, u64 chunk, u32 off, u32 len, const void *data);

/* A device of @size bytes that reads zeros and drops writes (data whose content no test reads). */
struct bdev *efix_null_bdev(u64 size);

#endif
