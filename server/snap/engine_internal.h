/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * engine_internal.h - for the engine*.c files only: the engine's in-memory state and the
 * helpers that engine.c (open, sync, origin writes, reads, create and delete), engine_replay.c
 * (re-applying intent-log records) and engine_check.c (the invariant checker) share.  The
 * contract callers see is engine.h; nothing here is for them.  Same split as btree.c,
 * btree_remove.c, btree_check.c and btree_internal.h.
 *
 * Locking.  None: every function runs under the caller's serialisation of the engine
 * (engine.h, "Locking").
 */
#ifndef DDSNAP_ENGINE_INTERNAL_H
#define DDSNAP_ENGINE_INTERNAL_H

#include "snap/engine.h"
#include "pdata/btree.h"
#include "snap/deadlist.h"
#include "blk/format.h"

/* Threads reading the exception tree ahead for an offline open's rebuild (check, restore's
 * engine_build_deadlists): as the server. */
#define ENGINE_CHECK_READAHEAD_THREADS 8

struct iopool;

struct snap {
	u32 tag;
	u64 gen, ctime;
	int8_t priority;
	u16 holds;
	u32 opens;
	enum engine_snap_state state;
	struct deadlist *dl;	    /* NULL when invalidated */
	struct blkptr overlay_root; /* as of the last sync (or load) */
	struct btree *overlay;	    /* opened on first use; NULL until then */
	u64 overlay_chunks;
	bool overlay_dirty; /* on e->dirty: overlay changed in the open txg */
	bool received;	    /* has a provenance record (prov) */
	struct engine_provenance prov;
	struct snap *hnext;
};

struct batch_ent {
	u64 chunk, birth, addr;
	u32 csum; /* of the copied data, for the log record */
};

/* One copy I/O of a batch: entries [i, i + n), consecutive in chunk and in address. */
struct copy_piece {
	u32 i, n;
};

struct engine {
	struct engine_params p;
	u64 gen;
	struct btree *exc, *table, *provt;
	struct dldisk *dld;	   /* the persisted deadlists (params.persist_deadlists), or NULL */
	struct engine_upgrade *up; /* an upgrade under way (engine_upgrade_begin), or NULL */
	u64 prov_orphans;   /* read-only open: provenance records of no snapshot (check reports) */
	struct snap **live; /* sorted by gen */
	u32 nlive, live_cap;
	struct snap **hash;
	u32 hash_size, nsnaps, ninvalid;
	struct deadlist *head_dl;
	struct snap **dirty; /* snapshots whose overlay changed since the last sync */
	u32 ndirty, dirty_cap;
	struct batch_ent *batch;
	struct copy_piece *pieces; /* ENGINE_BATCH_CHUNKS */
	struct dldisk_ent *dlents; /* ENGINE_BATCH_CHUNKS: a batch's deadlist entries */
	u8 *freekv;		   /* a delete's doomed exceptions: keys, then values */
	struct iopool *copiers;
	void **copybufs; /* one per copier; copybufs[0] == copybuf */
	void *copybuf;
	u64 copyouts, policy_deletes, policy_invalidates, enospc, list_visits;
	bool failed;
	bool ilog_pending; /* records appended since the last log flush */
};

/*------------------------------------------------------------------------------------------
 * Keys and small helpers
 *----------------------------------------------------------------------------------------*/

/* The exception tree's key (chunk, death) and value (birth, addr), both two le64. */
static inline void exc_key(u8 *k, u64 chunk, u64 death)
{
	btree_put_le64(k, 0, chunk);
	btree_put_le64(k, 1, death);
}

static inline void exc_val(u8 *v, u64 birth, u64 addr)
{
	btree_put_le64(v, 0, birth);
	btree_put_le64(v, 1, addr);
}

static inline u64 newest_gen(const struct engine *e)
{
	return e->nlive ? e->live[e->nlive - 1]->gen : 0;
}

static inline int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/*------------------------------------------------------------------------------------------
 * Shared with engine_replay.c and engine_check.c (defined in engine.c)
 *----------------------------------------------------------------------------------------*/

/* The snapshot with @tag (live or invalidated), or NULL.  O(1). */
struct snap *snap_find(struct engine *e, u32 tag);
/* Index in live[] of the first snapshot with gen >= @gen (nlive if none).  O(log live). */
u32 live_first_ge(const struct engine *e, u64 gen);
/* Fills @s from a snapshot-table value.  Returns 0 or -EILSEQ for a malformed record. */
int record_unpack(struct snap *s, const struct snap_record_disk *r);
/* The overlay tree of @s, opened on first use.  Returns 0 and *@out, or a read error. */
int snap_overlay(struct engine *e, struct snap *s, struct btree **out);
/* Puts @s on the list of snapshots whose overlay root the next sync records. */
void mark_overlay_dirty(struct engine *e, struct snap *s);
/* last_death(L): the largest death among L's exceptions, 0 if none.  O(log n). */
int last_death(struct engine *e, u64 chunk, u64 *death);
/* The sublist key for an exception born in @birth (engine.c's essay), 0 if none is live. */
u64 sublist_key(struct engine *e, u64 birth);
/*
 * Records the new exception (@chunk, death e->gen) under sublist @key in the head's
 * deadlist, and in the persisted deadlists when kept.  Returns 0 or the latter's error.
 */
int head_dl_add(struct engine *e, struct tx *tx, u64 key, u64 chunk);
/* Copies one origin chunk to snapstore @addr (replay of a copy-out whose data was lost). */
int copy_one(struct engine *e, u64 chunk, u64 addr);
/* crc32c of the snapstore chunk at @addr; *@err the read's error (then 0 is returned). */
u32 chunk_csum(struct engine *e, u64 addr, int *err);
/* Deletes @s, or with @invalidate keeps it as invalid (DESIGN.md 3's delete algorithm). */
int snap_drop(struct engine *e, struct tx *tx, struct snap *s, bool invalidate);
/* Creates snapshot @tag at the current gen, logged.  -EEXIST if the tag is in use. */
int snap_create(struct engine *e, struct tx *tx, u32 tag, u64 ctime, int8_t priority);
/* Records @prov for @s in the provenance tree and in memory (not logged). */
int prov_put(struct engine *e, struct tx *tx, struct snap *s, const struct engine_provenance *prov);
/* Sets holds and priority, logged (unless replaying) so they are durable on return. */
int snap_setattr(struct engine *e, struct tx *tx, struct snap *s, u16 holds, int8_t priority,
		 bool replaying);

#endif
