// SPDX-License-Identifier: GPL-2.0-only
/*
 * engine.c - the snapshot engine: exceptions with birth and death in one COW B+tree,
 * birth-keyed deadlists, the copy-out and lookup rules, writable snapshot overlays, the
 * full-store policy (DESIGN.md 3).  Replay of the engine's intent-log records is in
 * engine_replay.c and the invariant checker in engine_check.c; the three share the state
 * and helpers in engine_internal.h.
 *
 * What is persistent.  Three kinds of tree, all struct btree: the exception tree
 * ((chunk, death) -> (birth, addr), aggregate max death), one overlay tree per writable
 * snapshot (chunk -> addr), and the snapshot table (tag -> struct snap_record_disk, which
 * holds the overlay root).  A fourth, the provenance tree (tag -> struct provenance_disk),
 * holds the provenance of received snapshots only (a snapshot taken here is this store's
 * uuid and its own gen, so it needs no record); it exists only on stores that carry
 * LABEL_FEATURE_RO_PROVENANCE, which params.set_feature sets before the first record is
 * logged, and it is loaded into struct snap at open.  The uberblock keeps the exception,
 * table and provenance roots and the gen counter (struct engine_roots).
 *
 * What is derived.  The deadlists are rebuilt in memory at open from one pass over the
 * exception tree: the owner of exception {L, b, d} is the oldest live snapshot with gen >= d
 * (the head if none), its sublist key is the gen of the oldest live snapshot with gen >= b.
 * A key chosen now may differ from the key chosen at insertion (that snapshot may since have
 * been deleted), but never in a way the delete rule can see: for a live P older than the
 * deleted S, key > P.gen iff b > P.gen in both cases, because P was live at the write and
 * has gen >= b exactly when the key does not exceed P.gen.  (The Python model in
 * reference/snapshot_model.py and test_engine's reopen checks exercise this.)  Rebuilding
 * costs O(exceptions) at open (about 26 ns per exception from the cache, bench_engine) and
 * 16 bytes of memory per exception, and nothing afterwards: every later change keeps the
 * deadlists in step.  From a cold cache the walk is bound by the device, one leaf per 60-odd
 * exceptions, so it reads ahead (btree_cursor_readahead) on the copy-out threads, which are
 * idle until the volume serves: a parent's leaves at once, one request per run of
 * consecutive blocks, instead of one synchronous read per leaf (bench/open.sh,
 * BENCHMARKS.md "Activation").  Persisted deadlists (doc/format.md, "Persisted deadlists":
 * a piece table keyed (death, key, piece) whose owner is derived from the death, and an entry
 * tree, deadlist_disk.c) make open O(snapshots + pieces) and the memory O(pieces) on
 * stores with LABEL_FEATURE_INCOMPAT_DEADLISTS (every store this version initializes or
 * restores; older ones are upgraded at their first writable open: volume.c, through
 * engine_upgrade_begin/step, which write the rebuilt entries as they are, in bounded
 * steps).  With
 * params.persist_deadlists (the store's bit) they replace the in-memory deadlists, which
 * then stay empty: open reads the piece table instead of rebuilding (no pass over
 * the exceptions, so their validation is check's and the reads'), every copy-out and its
 * replay adds its entry (head_dl_add), a delete frees N's pieces keyed after P.gen through
 * dldisk_free (S's pieces become N's by S leaving live[]: the owner of a piece is derived
 * from its death), accounting sums piece counts (dl_chunks), sync seals the two trees with
 * the others, and engine_check matches them with the exception tree.
 *
 * Invariants (checked by engine_check):
 *  - live[] holds the live snapshots in increasing gen order; every gen < e->gen;
 *  - every exception {L, b, d} has b < d <= e->gen and is visible to a live snapshot
 *    (b <= S.gen < d for some live S);
 *  - every exception is named by exactly one deadlist entry, in the deadlist of its owner;
 *  - each data chunk is used by at most one exception or overlay entry;
 *  - an invalidated snapshot has no deadlist, no overlay and no exception of its own;
 *  - every provenance record names a snapshot of the table (live or invalidated).
 *
 * Locking.  None here: the server's engine lock serialises every call (header).
 *
 * Crash argument.  Nothing reaches the disk but through the txg (trees) and the intent log.
 * Every change a client is told about is logged before it is applied, and the log is
 * flushed before the reply: a copy-out writes the data, flushes the snapstore, appends
 * {L, b, d, p, csum}, inserts the exception, and flushes the log before returning, so when
 * the origin write is released the saved copy and its record are durable.  If we crash
 * before the txg syncs, replay re-inserts the exception (and re-copies from the origin if
 * the data checksum does not match, which can only happen if the origin write was never
 * released).  The checksum is needed whenever the record's log block can reach the platter
 * before the copy: with a log device of its own (another request's flush), and with the log
 * on the snapstore too, since a disk writes its cache out in any order and the flush after
 * the block only says when both are durable.  So every copy-out record carries it (a pass
 * over the copied data, about 2 ms per MiB under an emulated CPU, BENCHMARKS.md); servers
 * before 2026-12 logged copy-outs without it when the log shared the snapstore
 * (ENGINE_LOG_COPYOUT_ORDERED), and replay still trusts those as they were written.  A
 * copy-in (the first write to a writable snapshot's chunk) is flushed before its overlay
 * record is appended instead: the snapshot's writer writes the chunk after it, so a checksum
 * could not tell its loss from those writes.  A write that covers the whole chunk is copied
 * in too, although it overwrites all of it: the chunk handed out may hold a freed chunk's
 * data (another snapshot's, or a deleted one's), and the record is durable at the reply while
 * the writer's data is durable only at the writer's next flush, so a power cut in between
 * would leave the snapshot reading that data.  With the copy-in, whatever survives of the
 * writer's data lies over the snapshot's own: the chunk reads old, new, or (sectors torn) a
 * mix of the two, as a plain disk would.  It costs one chunk read and write per first write,
 * and one snapstore flush per call (engine_snap_write: the call's copy-ins share it).  The
 * alternatives cost more or need the kernel: dm-thin's way (insert the mapping once the data
 * write completed, commit it at the next flush) needs a write-done notice and a flush round
 * trip the protocol does not have (doc/protocol.md, "Snapshot write"); zeroing the chunk
 * first saves only the read and leaves zeros, neither old nor new.
 * Creates, deletes, overlay inserts and policy drops follow the same rule and are replayed in
 * order, so the replayed state is the state the caller was told about.  A received snapshot's
 * create and its provenance are one record (ENGINE_LOG_CREATE_FROM), so neither survives a
 * crash without the other, and the label's feature bit is durable before that record is
 * appended (params.set_feature).
 * Logging first means a failed append leaves nothing to undo; a change that fails after its
 * record was appended fails the engine (-EROFS until reopened), because replay would apply
 * it.  A failed log flush leaves the records pending, so a retried request flushes again
 * before it can pass (a chunk already copied out, or an overlay entry already made, is never
 * reported safe on the strength of an unflushed record).  Data chunks freed by a delete go
 * back to the space map as deferred frees: a crash before the freeing txg is durable still
 * finds them intact.  The persisted deadlists (params.persist_deadlists) change only in the
 * txg and the same calls as the exception tree, and replay re-adds an entry exactly when it
 * re-inserts the exception, so they are never out of step with it after a crash (format.md,
 * "Persisted deadlists").
 */
#include "snap/engine_internal.h"
#include "pdata/btree.h"
#include "util/crc32c.h"
#include "snap/deadlist.h"
#include "blk/format.h"
#include "util/iopool.h"
#include "util/log.h"
#include "util/xfer.h"
#include <string.h>

/*
 * Copy-outs per batch: one allocation pass, one set of coalesced copies, one snapstore
 * flush and one log flush per batch.  256 chunks is 1 MiB at 4 KiB chunks, which a
 * single request of the kernel rarely exceeds, and bounds the preallocated batch arrays.
 */
#define ENGINE_BATCH_CHUNKS 256
/* Exceptions a delete collects before it removes them from the tree at once (free_ctx). */
#define FREE_BATCH 256
/* Largest single data copy I/O; the copy buffer is preallocated at this size. */
#define ENGINE_COPY_MAX_BYTES (1u << 20)
/* Initial tag hash size (grows by doubling at load factor 1). */
#define ENGINE_HASH_MIN 64
static_assert((ENGINE_HASH_MIN & (ENGINE_HASH_MIN - 1)) == 0, "tag_hash masks: a power of two");

static u64 exc_aggr(const void *key, const void *value)
{
	return btree_get_le64(key, 1);
}

const struct btree_type engine_exception_tree_type = {
	.name = "exceptions",
	.key_size = 16,
	.value_size = sizeof(struct exception_disk),
	.order = BTREE_KEY_LE64,
	.aggr = exc_aggr,
};

const struct btree_type engine_overlay_tree_type = {
	.name = "overlay",
	.key_size = 8,
	.value_size = sizeof(struct overlay_disk),
	.order = BTREE_KEY_LE64,
	.aggr = NULL,
};

const struct btree_type engine_provenance_tree_type = {
	.name = "provenance",
	.key_size = 8,
	.value_size = sizeof(struct provenance_disk),
	.order = BTREE_KEY_LE64,
	.aggr = NULL,
};

const struct btree_type engine_snapshot_table_type = {
	.name = "snapshots",
	.key_size = 8,
	.value_size = sizeof(struct snap_record_disk),
	.order = BTREE_KEY_LE64,
	.aggr = NULL,
};

/*------------------------------------------------------------------------------------------
 * Small helpers
 *----------------------------------------------------------------------------------------*/

/* A metadata error after the first change of a multi-step operation. */
static int engine_fail(struct engine *e, int err, const char *what)
{
	log_err("engine: %s failed (%d): refusing further changes", what, err);
	e->failed = true;
	return err;
}

static u32 tag_hash(u32 tag, u32 size)
{
	return (u32)(hash_golden64(tag) >> 32) & (size - 1);
}

struct snap *snap_find(struct engine *e, u32 tag)
{
	for (struct snap *s = e->hash[tag_hash(tag, e->hash_size)]; s; s = s->hnext)
		if (s->tag == tag)
			return s;
	return NULL;
}

static void hash_add(struct engine *e, struct snap *s)
{
	u32 h;

	if (e->nsnaps + 1 > e->hash_size) {
		u32 nsize = e->hash_size * 2;
		struct snap **nh = xzalloc(nsize * sizeof(*nh));

		for (u32 i = 0; i < e->hash_size; i++)
			while (e->hash[i]) {
				struct snap *x = e->hash[i];

				e->hash[i] = x->hnext;
				h = tag_hash(x->tag, nsize);
				x->hnext = nh[h];
				nh[h] = x;
			}
		free(e->hash);
		e->hash = nh;
		e->hash_size = nsize;
	}
	h = tag_hash(s->tag, e->hash_size);
	s->hnext = e->hash[h];
	e->hash[h] = s;
	e->nsnaps++;
}

static void hash_del(struct engine *e, struct snap *s)
{
	struct snap **pp = &e->hash[tag_hash(s->tag, e->hash_size)];

	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	e->nsnaps--;
}

/* Index in live[] of the first snapshot with gen >= @gen (nlive if none).  O(log live). */
u32 live_first_ge(const struct engine *e, u64 gen)
{
	u32 lo = 0, hi = e->nlive;

	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;

		if (e->live[mid]->gen < gen)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void live_append(struct engine *e, struct snap *s)
{
	if (e->nlive == e->live_cap) {
		e->live_cap = e->live_cap ? 2 * e->live_cap : 64;
		e->live = xrealloc(e->live, e->live_cap * sizeof(*e->live));
	}
	e->live[e->nlive++] = s;
}

static void live_remove(struct engine *e, u32 i)
{
	memmove(&e->live[i], &e->live[i + 1], (e->nlive - i - 1) * sizeof(*e->live));
	e->nlive--;
}

static void snap_free(struct snap *s)
{
	deadlist_destroy(s->dl);
	if (s->overlay)
		btree_close(s->overlay);
	free(s);
}

static void record_pack(struct snap_record_disk *r, const struct snap *s)
{
	memset(r, 0, sizeof(*r));
	r->gen = cpu_to_le64(s->gen);
	r->ctime = cpu_to_le64(s->ctime);
	blkptr_pack(&r->overlay, &s->overlay_root);
	r->overlay_chunks = cpu_to_le64(s->overlay_chunks);
	r->holds = cpu_to_le16(s->holds);
	r->priority = (u8)s->priority;
	r->state = (u8)s->state;
}

int record_unpack(struct snap *s, const struct snap_record_disk *r)
{
	if (r->state > ENGINE_SNAP_INVALID || r->reserved)
		return -EILSEQ;
	s->gen = le64_to_cpu(r->gen);
	s->ctime = le64_to_cpu(r->ctime);
	blkptr_unpack(&s->overlay_root, &r->overlay);
	s->overlay_chunks = le64_to_cpu(r->overlay_chunks);
	s->holds = le16_to_cpu(r->holds);
	s->priority = (int8_t)r->priority;
	s->state = r->state;
	return 0;
}

/* Unpacks a provenance record.  Returns 0 or -EILSEQ (gen 0 or reserved bytes set). */
static int prov_unpack(struct engine_provenance *p, const struct provenance_disk *d)
{
	if (!le64_to_cpu(d->gen) || d->reserved)
		return -EILSEQ;
	memcpy(p->uuid, d->uuid, sizeof(p->uuid));
	p->gen = le64_to_cpu(d->gen);
	return 0;
}

int prov_put(struct engine *e, struct tx *tx, struct snap *s, const struct engine_provenance *prov)
{
	struct provenance_disk d;
	u8 k[8];
	int err;

	memset(&d, 0, sizeof(d));
	memcpy(d.uuid, prov->uuid, sizeof(d.uuid));
	d.gen = cpu_to_le64(prov->gen);
	btree_put_le64(k, 0, s->tag);
	err = btree_insert(e->provt, tx, k, &d, BTREE_OVERWRITE);
	if (err)
		return err;
	s->received = true;
	s->prov = *prov;
	return 0;
}

/* Deletes @s's provenance record, if it has one (the snapshot is being forgotten). */
static int prov_forget(struct engine *e, struct tx *tx, struct snap *s)
{
	u8 k[8];
	int err;

	if (!s->received)
		return 0;
	btree_put_le64(k, 0, s->tag);
	err = btree_delete(e->provt, tx, k, NULL);
	if (!err)
		s->received = false;
	return err;
}

static int table_put(struct engine *e, struct tx *tx, const struct snap *s)
{
	struct snap_record_disk r;
	u8 k[8];

	btree_put_le64(k, 0, s->tag);
	record_pack(&r, s);
	return btree_insert(e->table, tx, k, &r, BTREE_OVERWRITE);
}

int snap_overlay(struct engine *e, struct snap *s, struct btree **out)
{
	if (!s->overlay) {
		int err = btree_open(&engine_overlay_tree_type, e->p.cache, &s->overlay_root,
				     &s->overlay);

		if (err)
			return err;
	}
	*out = s->overlay;
	return 0;
}

void mark_overlay_dirty(struct engine *e, struct snap *s)
{
	if (s->overlay_dirty)
		return;
	if (e->ndirty == e->dirty_cap) {
		e->dirty_cap = e->dirty_cap ? 2 * e->dirty_cap : 16;
		e->dirty = xrealloc(e->dirty, e->dirty_cap * sizeof(*e->dirty));
	}
	e->dirty[e->ndirty++] = s;
	s->overlay_dirty = true;
}

static void unmark_overlay_dirty(struct engine *e, struct snap *s)
{
	if (!s->overlay_dirty)
		return;
	for (u32 i = 0; i < e->ndirty; i++)
		if (e->dirty[i] == s) {
			e->dirty[i] = e->dirty[--e->ndirty];
			break;
		}
	s->overlay_dirty = false;
}

static int ilog_rec(struct engine *e, struct tx *tx, u16 type, const struct engine_logrec_disk *r)
{
	if (!e->p.ilog_append)
		return 0;
	e->ilog_pending = true;
	return e->p.ilog_append(e->p.ilog_priv, tx, type, r, sizeof(*r));
}

static int ilog_flush(struct engine *e)
{
	int err;

	if (!e->ilog_pending || e->p.caller_flushes)
		return 0;
	/* On failure the records stay pending: a retried request must not pass unflushed. */
	err = e->p.ilog_flush(e->p.ilog_priv);
	if (!err)
		e->ilog_pending = false;
	return err;
}

/* last_death(L): the largest death among L's exceptions, 0 if none.  O(log n). */
int last_death(struct engine *e, u64 chunk, u64 *death)
{
	u8 k[16], ko[16];
	int err;

	exc_key(k, chunk, UINT64_MAX);
	err = btree_find(e->exc, k, BTREE_LE, ko, NULL);
	if (err == -ENODATA || (!err && btree_get_le64(ko, 0) != chunk)) {
		*death = 0;
		return 0;
	}
	if (!err)
		*death = btree_get_le64(ko, 1);
	return err;
}

/*------------------------------------------------------------------------------------------
 * Open, close, sync
 *----------------------------------------------------------------------------------------*/

static struct snap *snap_new(u32 tag)
{
	struct snap *s = xzalloc(sizeof(*s));

	s->tag = tag;
	return s;
}

static int cmp_snap_gen(const void *a, const void *b)
{
	const struct snap *x = *(struct snap *const *)a, *y = *(struct snap *const *)b;

	return x->gen < y->gen ? -1 : x->gen > y->gen;
}

static int load_table(struct engine *e)
{
	struct btree_cursor c;
	int err;

	btree_cursor_init(&c, e->table);
	for (err = btree_cursor_seek(&c, NULL, BTREE_FIRST); !err; err = btree_cursor_next(&c)) {
		u64 tag = btree_get_le64(btree_cursor_key(&c), 0);
		struct snap_record_disk r;
		struct snap *s;

		memcpy(&r, btree_cursor_value(&c), sizeof(r));
		if (tag >= ENGINE_HEAD) {
			err = -EILSEQ;
			break;
		}
		s = snap_new((u32)tag);
		err = record_unpack(s, &r);
		if (!err && s->state == ENGINE_SNAP_NORMAL && s->gen >= e->gen)
			err = -EILSEQ;
		if (err) {
			free(s);
			break;
		}
		hash_add(e, s);
		if (s->state == ENGINE_SNAP_NORMAL) {
			s->dl = deadlist_create();
			live_append(e, s);
		} else {
			e->ninvalid++;
		}
	}
	btree_cursor_fini(&c);
	if (err != -ENODATA) {
		log_err("engine: snapshot table unreadable (%d)", err);
		return err;
	}
	if (e->nlive > 1)
		qsort(e->live, e->nlive, sizeof(*e->live), cmp_snap_gen);
	for (u32 i = 1; i < e->nlive; i++)
		if (e->live[i]->gen == e->live[i - 1]->gen) {
			log_err("engine: snapshots %u and %u share gen %llu", e->live[i - 1]->tag,
				e->live[i]->tag, (unsigned long long)e->live[i]->gen);
			return -EILSEQ;
		}
	return 0;
}

/*
 * Loads the provenance tree into the snapshots.  A record of no snapshot is damage: a
 * read-only open (check) counts it for engine_check, a writable one refuses the store (a
 * later snapshot of that tag would inherit it).
 */
static int load_provenance(struct engine *e)
{
	struct btree_cursor c;
	int err;

	btree_cursor_init(&c, e->provt);
	for (err = btree_cursor_seek(&c, NULL, BTREE_FIRST); !err; err = btree_cursor_next(&c)) {
		u64 tag = btree_get_le64(btree_cursor_key(&c), 0);
		struct snap *s = tag < ENGINE_HEAD ? snap_find(e, (u32)tag) : NULL;
		struct provenance_disk d;
		struct engine_provenance p;

		memcpy(&d, btree_cursor_value(&c), sizeof(d));
		err = prov_unpack(&p, &d);
		if (err) {
			log_err("engine: provenance record of snapshot %llu is malformed",
				(unsigned long long)tag);
			break;
		}
		if (!s) {
			e->prov_orphans++;
			if (e->p.read_only)
				continue;
			log_err("engine: provenance record of snapshot %llu, which does not exist",
				(unsigned long long)tag);
			err = -EILSEQ;
			break;
		}
		s->received = true;
		s->prov = p;
	}
	btree_cursor_fini(&c);
	if (err != -ENODATA) {
		log_err("engine: provenance tree unreadable (%d)", err);
		return err;
	}
	return 0;
}

/* The deadlist an exception dying in @death belongs to. */
static struct deadlist *owner_dl(struct engine *e, u64 death)
{
	u32 i = live_first_ge(e, death);

	return i < e->nlive ? e->live[i]->dl : e->head_dl;
}

/* The sublist key for an exception born in @birth (see the essay), or 0 if none is live. */
u64 sublist_key(struct engine *e, u64 birth)
{
	u32 i = live_first_ge(e, birth);

	return i < e->nlive ? e->live[i]->gen : 0;
}

/* head_dl_add of each of @ents (reordered), the persisted ones in one dldisk_add_many. */
static int head_dl_add_many(struct engine *e, struct tx *tx, struct dldisk_ent *ents, u32 n)
{
	if (e->dld)
		return dldisk_add_many(e->dld, tx, e->gen, ents, n);
	for (u32 i = 0; i < n; i++)
		deadlist_insert(e->head_dl, ents[i].key, ents[i].chunk, e->gen, e->p.chunk_size);
	return 0;
}

int head_dl_add(struct engine *e, struct tx *tx, u64 key, u64 chunk)
{
	struct dldisk_ent ent = {key, chunk};

	return head_dl_add_many(e, tx, &ent, 1);
}

/* Chunks on the deadlist of live[@i] (@i == nlive: the head) with key in [@klo, @khi]. */
static u64 dl_chunks(struct engine *e, u32 i, u64 klo, u64 khi)
{
	u64 lo = i ? e->live[i - 1]->gen : 0, hi = i < e->nlive ? e->live[i]->gen : UINT64_MAX;

	if (e->dld)
		return dldisk_count(e->dld, lo, hi, klo, khi);
	if (klo == 0 && khi == UINT64_MAX)
		return deadlist_count(i < e->nlive ? e->live[i]->dl : e->head_dl);
	return deadlist_space_range(i < e->nlive ? e->live[i]->dl : e->head_dl, klo - 1, khi) /
	       e->p.chunk_size;
}

/* Whether snapstore chunk @addr lies in the data region (when the caller said where). */
static bool addr_ok(const struct engine *e, u64 addr)
{
	return !e->p.data_end || (addr >= e->p.data_first && addr < e->p.data_end);
}

/*
 * An exception no writer produces: a chunk beyond the volume, birth not before death, a
 * death after the current gen, or data outside the data region.  Its leaf's checksum was
 * valid (a bug or a crafted block): refuse the store rather than serve it.  Returns 0 or
 * -EILSEQ, logging the leaf and entry.
 */
static int exception_ok(struct engine *e, u64 leaf, int idx, u64 chunk, u64 death, u64 birth,
			u64 addr)
{
	const char *what = chunk >= e->p.origin_chunks ? "chunk beyond the volume"
			   : birth >= death	       ? "born no earlier than it died"
			   : death > e->gen	       ? "dies after the current gen"
			   : !addr_ok(e, addr)	       ? "data address outside the data region"
						       : NULL;

	if (!what)
		return 0;
	log_err("engine: exceptions tree leaf block %llu entry %d (chunk %llu, birth %llu, "
		"death %llu, address %llu): %s",
		(unsigned long long)leaf, idx, (unsigned long long)chunk, (unsigned long long)birth,
		(unsigned long long)death, (unsigned long long)addr, what);
	return -EILSEQ;
}

static int rebuild_deadlists(struct engine *e)
{
	struct xfer_progress prog;
	struct btree_cursor c;
	u64 orphans = 0, n = 0;
	int err;

	xfer_progress_init_units(&prog, "deadlists from the exception tree", "chunks",
				 e->p.origin_chunks, false);
	prog.enabled &= e->p.progress;
	btree_cursor_init(&c, e->exc);
	btree_cursor_readahead(&c, e->copiers);
	for (err = btree_cursor_seek(&c, NULL, BTREE_FIRST); !err; err = btree_cursor_next(&c)) {
		const void *k = btree_cursor_key(&c), *v = btree_cursor_value(&c);
		u64 chunk = btree_get_le64(k, 0), death = btree_get_le64(k, 1);
		u64 birth = btree_get_le64(v, 0), key = sublist_key(e, birth);

		err = exception_ok(e, btree_cursor_blocknr(&c), c.idx, chunk, death, birth,
				   btree_get_le64(v, 1));
		if (err)
			break;

		if (!key || key >= death) {
			/* Visible to no live snapshot: engine_check reports it; keep it listed. */
			orphans++;
			key = birth;
		}
		deadlist_insert(owner_dl(e, death), key, chunk, death, e->p.chunk_size);
		if (++n % 4096 == 0)
			xfer_progress_update(&prog, chunk);
	}
	btree_cursor_fini(&c);
	if (!err || err == -ENODATA)
		prog.done = prog.total;
	xfer_progress_done(&prog);
	if (orphans)
		log_warn("engine: %llu exceptions visible to no live snapshot",
			 (unsigned long long)orphans);
	return err == -ENODATA ? 0 : err;
}

/*
 * The upgrade's walk over the rebuilt deadlists (engine_upgrade_*): live[dl]'s (dl < nlive),
 * then the head's, each in deadlist_walk's order (key, then chain), so the order is a
 * function of the exception tree and the snapshot table alone and a count of entries
 * written is a position in it (the cursor doc/format.md, "Upgrade", keeps in scalar 3).
 */
struct engine_upgrade {
	u32 dl;
	struct deadlist_pos pos;
	u64 written, total;
	/* this step's: entries it may still write, dirty blocks that end it (0: no bound) */
	u64 step_left, dirty_max;
	u32 since_check;
	struct tx *tx;
	struct engine *e;
	struct xfer_progress prog;
};

static struct deadlist *upgrade_dl(struct engine *e, u32 i)
{
	return i < e->nlive ? e->live[i]->dl : e->head_dl;
}

/* Frees every in-memory deadlist's entries, leaving them empty. */
static void empty_deadlists(struct engine *e)
{
	for (u32 i = 0; i <= e->nlive; i++) {
		struct deadlist **dl = i < e->nlive ? &e->live[i]->dl : &e->head_dl;

		deadlist_destroy(*dl);
		*dl = deadlist_create();
	}
}

/* Entries between dirty-block checks (cache_stats takes the cache's lock). */
#define UPGRADE_DIRTY_CHECK 64

/* deadlist_walk_from callback: one entry to the persisted deadlists; > 0 ends the step. */
static int upgrade_entry(void *arg, u64 key, const struct deadlist_entry *ent)
{
	struct engine_upgrade *u = arg;
	int err = dldisk_add(u->e->dld, u->tx, ent->death, key, ent->chunk);

	if (err)
		return err;
	if (++u->written % 4096 == 0)
		xfer_progress_update(&u->prog, u->written);
	if (u->step_left && !--u->step_left)
		return 1;
	if (u->dirty_max && ++u->since_check == UPGRADE_DIRTY_CHECK) {
		struct cache_stats st;

		u->since_check = 0;
		cache_stats(u->e->p.cache, &st);
		if (st.dirty >= u->dirty_max)
			return 1;
	}
	return 0;
}

int engine_upgrade_begin(struct engine *e, struct tx *tx, const struct dldisk_roots *partial,
			 u64 resume, bool rebuild)
{
	static const struct dldisk_roots empty;
	struct engine_upgrade *u;
	bool stale = partial->pieces.blocknr || partial->entries.blocknr;
	int err;

	if (e->failed)
		return -EROFS;
	if (e->dld || e->up || e->p.persist_deadlists)
		return -EINVAL;
	if (rebuild) {
		/* The walk's order is the rebuild's (tree order within a sublist) only: a
		 * replayed copy-out appends, a replayed delete links chains. */
		empty_deadlists(e);
		err = rebuild_deadlists(e);
		if (err)
			return engine_fail(e, err, "rebuilding the deadlists for the upgrade");
	}
	u = xzalloc(sizeof(*u));
	u->e = e;
	for (u32 i = 0; i <= e->nlive; i++)
		u->total += deadlist_count(upgrade_dl(e, i));
	if (resume > u->total) {
		log_warn("engine: the upgrade's cursor (%llu entries written) is past the %llu "
			 "entries of the deadlists: starting again",
			 (unsigned long long)resume, (unsigned long long)u->total);
		resume = 0;
	}
	if (resume && stale) {
		/* the partial trees: their rows loaded, the first @resume entries skipped */
		err = dldisk_open(e->p.cache, partial, &e->dld);
		if (err) {
			free(u);
			return engine_fail(e, err, "opening an interrupted upgrade's deadlists");
		}
		u->written = resume;
		for (u64 left = resume; left && u->dl <= e->nlive;) {
			left -= deadlist_skip(upgrade_dl(e, u->dl), &u->pos, left);
			if (left) {
				u->dl++;
				memset(&u->pos, 0, sizeof(u->pos));
			}
		}
	} else {
		if (stale) {
			err = dldisk_destroy(e->p.cache, partial, tx);
			if (err) {
				free(u);
				return engine_fail(e, err,
						   "freeing an interrupted upgrade's "
						   "deadlists");
			}
		}
		err = dldisk_open(e->p.cache, &empty, &e->dld);
		if (err) {
			free(u);
			return engine_fail(e, err, "persisting the deadlists");
		}
	}
	/* On a terminal only (params.progress): the server's upgrade, restore. */
	xfer_progress_init_units(&u->prog, "persisting the deadlists", "entries", u->total, false);
	u->prog.enabled &= e->p.progress;
	e->up = u;
	return 0;
}

int engine_upgrade_step(struct engine *e, struct tx *tx, u64 max_entries, u64 max_dirty,
			u64 *written, bool *done)
{
	struct engine_upgrade *u = e->up;
	int err = 0;

	*done = false;
	if (!u)
		return -EINVAL;
	if (e->failed)
		return -EROFS;
	u->tx = tx;
	u->step_left = max_entries;
	u->dirty_max = max_dirty;
	u->since_check = 0;
	for (; u->dl <= e->nlive; u->dl++, memset(&u->pos, 0, sizeof(u->pos))) {
		err = deadlist_walk_from(upgrade_dl(e, u->dl), &u->pos, upgrade_entry, u);
		if (err)
			break;
	}
	*written = u->written;
	if (err < 0)
		return engine_fail(e, err, "persisting the deadlists");
	if (err > 0 && u->written < u->total)
		return 0; /* the budget ended this step; the walk goes on in the next */
	/* The walk's end: the rebuilt entries' memory freed, the persisted deadlists in use. */
	u->prog.done = u->total;
	xfer_progress_done(&u->prog);
	empty_deadlists(e);
	free(u);
	e->up = NULL;
	e->p.persist_deadlists = true;
	*done = true;
	return 0;
}

int engine_build_deadlists(struct cache *cache, struct tx *tx, const struct engine_roots *roots,
			   u32 chunk_size, u64 origin_chunks, struct dldisk_roots *out)
{
	struct engine_params p = {
		.chunk_size = chunk_size,
		.origin_chunks = origin_chunks,
		.cache = cache,
		.read_only = true,
		.progress = true, /* `ddsnap restore` on a terminal */
		.copy_threads = ENGINE_CHECK_READAHEAD_THREADS,
	};
	static const struct dldisk_roots none;
	struct engine *e;
	u64 written;
	bool done;
	int err = engine_open(&p, roots, &e);

	if (err)
		return err;
	err = engine_upgrade_begin(e, tx, &none, 0, false);
	if (!err)
		err = engine_upgrade_step(e, tx, 0, 0, &written, &done); /* all, in @tx */
	if (!err)
		err = dldisk_sync(e->dld, tx, out);
	engine_close(e);
	return err;
}

int engine_open(const struct engine_params *p, const struct engine_roots *roots,
		struct engine **out)
{
	struct engine *e;
	int err;

	if (!p->chunk_size || !IS_POWER_OF_2(p->chunk_size) || p->chunk_size < BDEV_ALIGN ||
	    p->chunk_size > ENGINE_COPY_MAX_BYTES || !p->cache || !p->origin_chunks ||
	    (p->ilog_flush && !p->ilog_append) ||
	    (p->ilog_append && !p->ilog_flush && !p->caller_flushes))
		return -EINVAL;
	if (!p->read_only &&
	    (!p->origin || !p->snapstore || !p->space || !p->space->alloc || !p->space->free ||
	     !p->space->avail || p->origin_chunks > p->origin->size / p->chunk_size))
		return -EINVAL;
	e = xzalloc(sizeof(*e));
	e->p = *p;
	e->gen = roots->gen ? roots->gen : 1;
	e->hash_size = ENGINE_HASH_MIN;
	e->hash = xzalloc(e->hash_size * sizeof(*e->hash));
	e->head_dl = deadlist_create();
	e->batch = xmalloc(ENGINE_BATCH_CHUNKS * sizeof(*e->batch));
	e->pieces = xmalloc(ENGINE_BATCH_CHUNKS * sizeof(*e->pieces));
	e->dlents = xmalloc(ENGINE_BATCH_CHUNKS * sizeof(*e->dlents));
	e->freekv = xmalloc(FREE_BATCH * 32);
	e->copiers = iopool_create(p->copy_threads);
	e->copybufs = xzalloc(iopool_width(e->copiers) * sizeof(*e->copybufs));
	for (unsigned w = 0; w < iopool_width(e->copiers); w++)
		if (posix_memalign(&e->copybufs[w], BDEV_ALIGN, ENGINE_COPY_MAX_BYTES)) {
			err = -ENOMEM;
			goto fail_close;
		}
	e->copybuf = e->copybufs[0];
	err = btree_open(&engine_exception_tree_type, p->cache, &roots->exceptions, &e->exc);
	if (err)
		goto fail_close;
	err = btree_open(&engine_snapshot_table_type, p->cache, &roots->snapshots, &e->table);
	if (err)
		goto fail_close;
	err = btree_open(&engine_provenance_tree_type, p->cache, &roots->provenance, &e->provt);
	if (err)
		goto fail_close;
	err = load_table(e);
	if (!err)
		err = load_provenance(e);
	if (!err && p->persist_deadlists)
		err = dldisk_open(p->cache, &roots->deadlists, &e->dld);
	if (err)
		goto fail_close;
	/* With persisted deadlists the table is all: no pass over the exceptions. */
	err = e->dld ? 0 : rebuild_deadlists(e);
	if (err)
		goto fail_close;
	*out = e;
	return 0;

fail_close:
	engine_close(e);
	return err;
}

void engine_close(struct engine *e)
{
	if (!e)
		return;
	for (u32 i = 0; e->hash && i < e->hash_size; i++)
		while (e->hash[i]) {
			struct snap *s = e->hash[i];

			e->hash[i] = s->hnext;
			snap_free(s);
		}
	free(e->hash);
	free(e->live);
	free(e->dirty);
	deadlist_destroy(e->head_dl);
	if (e->exc)
		btree_close(e->exc);
	if (e->table)
		btree_close(e->table);
	if (e->provt)
		btree_close(e->provt);
	dldisk_close(e->dld);
	free(e->up);
	free(e->batch);
	free(e->pieces);
	free(e->dlents);
	free(e->freekv);
	for (unsigned w = 0; e->copybufs && w < iopool_width(e->copiers); w++)
		free(e->copybufs[w]);
	free(e->copybufs);
	iopool_destroy(e->copiers);
	free(e);
}

int engine_sync(struct engine *e, struct tx *tx, struct engine_roots *roots)
{
	int err;

	if (e->p.read_only)
		return -EROFS;
	while (e->ndirty) {
		struct snap *s = e->dirty[e->ndirty - 1];

		err = btree_sync(s->overlay, tx);
		if (err)
			return err;
		btree_root(s->overlay, &s->overlay_root);
		err = table_put(e, tx, s);
		if (err)
			return err;
		s->overlay_dirty = false;
		e->ndirty--;
	}
	err = btree_sync(e->table, tx);
	if (!err)
		err = btree_sync(e->provt, tx);
	if (!err)
		err = btree_sync(e->exc, tx);
	memset(&roots->deadlists, 0, sizeof(roots->deadlists));
	if (!err && e->dld)
		err = dldisk_sync(e->dld, tx, &roots->deadlists);
	if (err)
		return err;
	btree_root(e->exc, &roots->exceptions);
	btree_root(e->table, &roots->snapshots);
	btree_root(e->provt, &roots->provenance);
	roots->gen = e->gen;
	return 0;
}

/*------------------------------------------------------------------------------------------
 * Dropping a snapshot: delete and invalidate
 *----------------------------------------------------------------------------------------*/

/*
 * A delete's doomed exceptions, collected in the order the deadlist gives them (a piece's
 * ascend) and removed FREE_BATCH at a time by btree_delete_sorted (a descent per leaf they
 * share), each data chunk freed as its exception goes.  Same txg as the entries' removal.
 */
struct free_ctx {
	struct engine *e;
	struct tx *tx;
	u64 freed;
	u32 n; /* keys collected in e->freekv (FREE_BATCH keys, then as many values) */
};

/* Removes the collected exceptions and frees their chunks.  0 or the tree's error. */
static int free_flush(struct free_ctx *f)
{
	u8 *k = f->e->freekv, *v = k + FREE_BATCH * 16;
	u32 done;
	int err = btree_delete_sorted(f->e->exc, f->tx, k, f->n, v, &done);

	for (u32 i = 0; i < done; i++)
		f->e->p.space->free(f->e->p.space_priv, f->tx, btree_get_le64(v + 16 * i, 1), 1);
	f->freed += done;
	f->n = 0;
	return err;
}

static int free_exception(void *arg, u64 key, const struct deadlist_entry *ent)
{
	struct free_ctx *f = arg;

	exc_key(f->e->freekv + 16 * f->n++, ent->chunk, ent->death);
	return f->n == FREE_BATCH ? free_flush(f) : 0;
}

static int free_persisted(void *arg, u64 chunk, u64 death)
{
	struct deadlist_entry ent = {.chunk = chunk, .death = death};

	return free_exception(arg, 0, &ent);
}

/* Frees every chunk of @s's overlay and the overlay tree itself. O(overlay). */
static int free_overlay(struct engine *e, struct tx *tx, struct snap *s)
{
	struct btree_cursor c;
	struct btree *ov;
	int err;

	if (!s->overlay_chunks && !s->overlay_root.blocknr && !s->overlay)
		return 0;
	err = snap_overlay(e, s, &ov);
	if (err)
		return err;
	btree_cursor_init(&c, ov);
	for (err = btree_cursor_seek(&c, NULL, BTREE_FIRST); !err; err = btree_cursor_next(&c))
		e->p.space->free(e->p.space_priv, tx, btree_get_le64(btree_cursor_value(&c), 0), 1);
	btree_cursor_fini(&c);
	if (err != -ENODATA)
		return err;
	err = btree_destroy(ov, tx);
	if (err)
		return err;
	unmark_overlay_dirty(e, s);
	btree_root(ov, &s->overlay_root);
	s->overlay_chunks = 0;
	return 0;
}

/*
 * The delete algorithm (DESIGN.md 3): with P the previous live snapshot (gen 0 if none) and
 * N the next (or the head), the sublists of N's deadlist keyed after P.gen hold exceptions
 * only @s saw: free them; then merge @s's deadlist into N's.  @invalidate keeps the table
 * entry in state invalid.  Any error after the first change fails the engine.
 */
int snap_drop(struct engine *e, struct tx *tx, struct snap *s, bool invalidate)
{
	struct free_ctx f = {.e = e, .tx = tx};
	struct deadlist *next_dl, *doomed;
	u32 i = live_first_ge(e, s->gen);
	u64 prev_gen;
	u8 k[8];
	int err;

	if (s->state == ENGINE_SNAP_INVALID) {
		if (invalidate)
			return 0;
		btree_put_le64(k, 0, s->tag);
		err = btree_delete(e->table, tx, k, NULL);
		if (!err)
			err = prov_forget(e, tx, s);
		if (err)
			return engine_fail(e, err, "forgetting an invalidated snapshot");
		hash_del(e, s);
		e->ninvalid--;
		snap_free(s);
		return 0;
	}
	VERIFY(i < e->nlive && e->live[i] == s);
	prev_gen = i ? e->live[i - 1]->gen : 0;
	next_dl = i + 1 < e->nlive ? e->live[i + 1]->dl : e->head_dl;
	doomed = deadlist_split_above(next_dl, prev_gen);
	if (e->dld) {
		/* The same sublists, persisted: N's pieces (death in (S.gen, N.gen]) keyed
		 * after P.gen; S's pieces become N's by the removal of S from live[]. */
		u64 next_gen = i + 1 < e->nlive ? e->live[i + 1]->gen : UINT64_MAX;

		err = dldisk_free(e->dld, tx, s->gen, next_gen, prev_gen, free_persisted, &f, NULL);
	} else {
		err = deadlist_walk(doomed, free_exception, &f);
	}
	if (!err && f.n)
		err = free_flush(&f);
	deadlist_destroy(doomed);
	if (err)
		return engine_fail(e, err, "freeing a deleted snapshot's exceptions");
	deadlist_merge(next_dl, s->dl);
	deadlist_destroy(s->dl);
	s->dl = NULL;
	live_remove(e, i);
	err = free_overlay(e, tx, s);
	if (err)
		return engine_fail(e, err, "freeing a snapshot overlay");
	if (invalidate) {
		s->state = ENGINE_SNAP_INVALID;
		e->ninvalid++;
		err = table_put(e, tx, s);
	} else {
		btree_put_le64(k, 0, s->tag);
		err = btree_delete(e->table, tx, k, NULL);
		if (!err)
			err = prov_forget(e, tx, s);
		hash_del(e, s);
		snap_free(s);
	}
	if (err)
		return engine_fail(e, err, "updating the snapshot table");
	return 0;
}

static int ilog_drop(struct engine *e, struct tx *tx, u32 tag, bool invalidate)
{
	struct engine_logrec_disk r;

	memset(&r, 0, sizeof(r));
	r.tag = cpu_to_le32(tag);
	r.flags = invalidate;
	return ilog_rec(e, tx, ENGINE_LOG_DROP, &r);
}

/*------------------------------------------------------------------------------------------
 * The full-store policy
 *----------------------------------------------------------------------------------------*/

/* The oldest unheld live snapshot of the lowest priority below ENGINE_PRIO_KEEP. O(live). */
static struct snap *pick_victim(struct engine *e)
{
	struct snap *best = NULL;

	for (u32 i = 0; i < e->nlive; i++) {
		struct snap *s = e->live[i];

		if (s->holds || s->priority >= ENGINE_PRIO_KEEP)
			continue;
		if (!best || s->priority < best->priority)
			best = s;
	}
	return best;
}

/*
 * Makes room for @need chunks above the reserve by dropping snapshots, if the policy allows.
 * Returns 0 (room), 1 (room made by dropping: decisions must be redone), -EAGAIN (enough
 * is freed but waits for the txg to be durable), -ENOSPC, or an error.  Drops are logged;
 * the caller's log flush makes them durable.
 */
static int ensure_space(struct engine *e, struct tx *tx, u64 need)
{
	const struct engine_space_ops *sp = e->p.space;
	bool dropped = false;

	for (;;) {
		u64 avail = sp->avail(e->p.space_priv);
		u64 coming = sp->deferred ? sp->deferred(e->p.space_priv) : 0;
		struct snap *v;
		bool inval;
		int err;

		if (avail >= need + e->p.reserve_chunks)
			return dropped;
		if (avail + coming >= need + e->p.reserve_chunks)
			return -EAGAIN; /* freed, but reusable only once the txg is durable */
		v = e->p.autodelete ? pick_victim(e) : NULL;
		if (!v) {
			e->enospc++;
			return -ENOSPC;
		}
		inval = v->opens > 0;
		if (inval && e->p.invalidate) {
			err = e->p.invalidate(e->p.invalidate_priv, v->tag);
			if (err)
				return err;
		}
		log_info("engine: store full: %s snapshot %u (gen %llu, priority %d)",
			 inval ? "invalidating" : "deleting", v->tag, (unsigned long long)v->gen,
			 v->priority);
		err = ilog_drop(e, tx, v->tag, inval);
		if (err)
			return err;
		err = snap_drop(e, tx, v, inval);
		if (err)
			return err;
		if (inval)
			e->policy_invalidates++;
		else
			e->policy_deletes++;
		dropped = true;
	}
}

/*------------------------------------------------------------------------------------------
 * Origin writes
 *----------------------------------------------------------------------------------------*/

static int cmp_batch(const void *a, const void *b)
{
	const struct batch_ent *x = a, *y = b;

	return x->chunk < y->chunk ? -1 : x->chunk > y->chunk;
}

/*
 * Copy piece @job of e->pieces: origin to snapstore in copier @worker's buffer, recording
 * each chunk's checksum for its log record.
 * Runs on a copier thread: touches only its own batch entries and buffer (iopool_fn).
 */
static int copy_piece(void *arg, unsigned worker, u32 job)
{
	struct engine *e = arg;
	struct copy_piece *pc = &e->pieces[job];
	u64 cs = e->p.chunk_size;
	void *buf = e->copybufs[worker];
	int err = bdev_read(e->p.origin, buf, pc->n * cs, e->batch[pc->i].chunk * cs);

	if (!err)
		err = bdev_write(e->p.snapstore, buf, pc->n * cs, e->batch[pc->i].addr * cs);
	for (u32 x = 0; !err && x < pc->n; x++)
		e->batch[pc->i + x].csum = crc32c(0, (u8 *)buf + x * cs, cs);
	return err;
}

/*
 * Copies the origin chunks of e->batch[0..n) (addresses assigned) to the snapstore: runs
 * consecutive in chunk and in address become one I/O each (up to ENGINE_COPY_MAX_BYTES),
 * and the copier threads do several at once.
 */
static int copy_batch(struct engine *e, u32 n)
{
	u32 per = ENGINE_COPY_MAX_BYTES / e->p.chunk_size, np = 0;

	for (u32 i = 0; i < n;) {
		u32 j = i + 1;

		while (j < n && j - i < per && e->batch[j].chunk == e->batch[j - 1].chunk + 1 &&
		       e->batch[j].addr == e->batch[j - 1].addr + 1)
			j++;
		e->pieces[np++] = (struct copy_piece){i, j - i};
		i = j;
	}
	return iopool_run(e->copiers, copy_piece, e, np);
}

/* Copies one origin chunk to snapstore @addr (replay of a copy-out whose data was lost). */
int copy_one(struct engine *e, u64 chunk, u64 addr)
{
	int err = bdev_read(e->p.origin, e->copybuf, e->p.chunk_size, chunk * e->p.chunk_size);

	if (!err)
		err = bdev_write(e->p.snapstore, e->copybuf, e->p.chunk_size,
				 addr * e->p.chunk_size);
	if (!err)
		err = bdev_flush(e->p.snapstore);
	return err;
}

u32 chunk_csum(struct engine *e, u64 addr, int *err)
{
	*err = bdev_read(e->p.snapstore, e->copybuf, e->p.chunk_size, addr * e->p.chunk_size);
	return *err ? 0 : crc32c(0, e->copybuf, e->p.chunk_size);
}

/*
 * Decides which of the @n sorted, distinct chunks in e->batch still need a copy-out, drops
 * the others, and fills in birth.  Returns the number kept or an error.
 */
static int batch_decide(struct engine *e, u32 n)
{
	u64 newest = newest_gen(e);
	u32 kept = 0;

	if (!e->nlive)
		return 0;
	for (u32 i = 0; i < n; i++) {
		u64 ld;
		int err = last_death(e, e->batch[i].chunk, &ld);

		if (err)
			return err;
		if (newest >= ld) {
			e->batch[kept] = e->batch[i];
			e->batch[kept++].birth = ld;
		}
	}
	return (int)kept;
}

/* Exceptions a batch_insert call builds on the stack at a time. */
#define INSERT_SLICE 64

/*
 * Inserts the exceptions of e->batch[0..n) (sorted distinct chunks, death e->gen: their keys
 * ascend) by btree_insert_sorted, a descent per leaf they fill.  Returns 0, or an error
 * with the first *@done inserted and the rest not.
 */
static int batch_insert(struct engine *e, struct tx *tx, u32 n, u32 *done)
{
	u8 k[INSERT_SLICE][16], v[INSERT_SLICE][16];
	int err = 0;

	for (*done = 0; !err && *done < n;) {
		u32 m = MIN(n - *done, (u32)INSERT_SLICE), got;

		for (u32 j = 0; j < m; j++) {
			const struct batch_ent *b = &e->batch[*done + j];

			exc_key(k[j], b->chunk, e->gen);
			exc_val(v[j], b->birth, b->addr);
		}
		err = btree_insert_sorted(e->exc, tx, k, v, m, &got);
		*done += got;
	}
	return err;
}

/*
 * Copies out the chunks in e->batch[0..n) (each needing it): the body of a batch.  Each
 * copy-out is logged before it enters the tree (see the essay), so a failure to log leaves
 * nothing behind, and a failure to insert a logged copy-out fails the engine.
 */
static int batch_copyout(struct engine *e, struct tx *tx, u32 n)
{
	u32 i = 0, done = 0, m = n;
	int err, dlerr, logerr = 0;

	while (i < n) {
		u64 start, got;

		err = e->p.space->alloc(e->p.space_priv, tx, n - i, &start, &got);
		if (err)
			goto fail_free;
		VERIFY(got >= 1 && got <= n - i);
		for (u64 j = 0; j < got; j++)
			e->batch[i++].addr = start + j;
	}
	err = copy_batch(e, n);
	if (err)
		goto fail_free;
	if (e->p.ilog_append && !e->p.caller_flushes) {
		/* the saved data is durable before the reply (and before its record, though
		 * replay would redo a copy whose checksum does not match) */
		err = bdev_flush(e->p.snapstore);
		if (err)
			goto fail_free;
	}
	/*
	 * Every record first (a failure to log record m leaves records 0..m-1 logged), then
	 * the logged exceptions and their deadlist entries, each tree by sorted runs: still
	 * every copy-out is logged before it enters a tree, and all of them enter in this txg.
	 */
	for (u32 j = 0; e->p.ilog_append && j < n; j++) {
		struct batch_ent *b = &e->batch[j];
		struct engine_logrec_disk r;

		memset(&r, 0, sizeof(r));
		r.chunk = cpu_to_le64(b->chunk);
		r.birth = cpu_to_le64(b->birth);
		r.death = cpu_to_le64(e->gen);
		r.addr = cpu_to_le64(b->addr);
		r.csum = cpu_to_le32(b->csum);
		logerr = ilog_rec(e, tx, ENGINE_LOG_COPYOUT, &r);
		if (logerr) {
			m = j;
			break;
		}
	}
	err = batch_insert(e, tx, m, &done);
	if (err && e->p.ilog_append)
		return engine_fail(e, err, "recording a logged copy-out");
	for (u32 j = 0; j < done; j++)
		e->dlents[j] =
			(struct dldisk_ent){sublist_key(e, e->batch[j].birth), e->batch[j].chunk};
	/* The deadlist entries of the exceptions inserted, in one call: the same txg. */
	dlerr = head_dl_add_many(e, tx, e->dlents, done);
	if (dlerr)
		return engine_fail(e, dlerr, "recording a copy-out in the persisted deadlists");
	e->copyouts += done;
	err = logerr ? logerr : err;
	if (err)
		goto fail_free;
	return 0;

fail_free:
	for (u32 x = done; x < n; x++)
		if (e->batch[x].addr != UINT64_MAX)
			e->p.space->free(e->p.space_priv, tx, e->batch[x].addr, 1);
	return err;
}

static int origin_batch(struct engine *e, struct tx *tx, u32 n, u64 *copied)
{
	int kept, err;

	qsort(e->batch, n, sizeof(*e->batch), cmp_batch);
	for (u32 i = 1, m = 1; i <= n; i++) {
		if (i == n) {
			n = m;
			break;
		}
		if (e->batch[i].chunk != e->batch[m - 1].chunk)
			e->batch[m++] = e->batch[i];
	}
	for (;;) {
		kept = batch_decide(e, n);
		if (kept <= 0)
			return kept;
		err = ensure_space(e, tx, (u64)kept);
		if (err < 0)
			return err;
		if (err == 0)
			break;
		n = (u32)kept; /* the live set changed: decide again */
	}
	for (int i = 0; i < kept; i++)
		e->batch[i].addr = UINT64_MAX;
	err = batch_copyout(e, tx, (u32)kept);
	if (err)
		return err;
	*copied += (u64)kept;
	return 0;
}

int engine_origin_write(struct engine *e, struct tx *tx, const struct engine_range *ranges,
			u32 nranges, u64 *gen, u64 *copied)
{
	u64 ncopied = 0;
	u32 n = 0;
	int err = 0;

	if (e->failed || e->p.read_only)
		return -EROFS;
	for (u32 r = 0; r < nranges; r++)
		if (ranges[r].chunk >= e->p.origin_chunks ||
		    ranges[r].count > e->p.origin_chunks - ranges[r].chunk)
			return -EINVAL;
	for (u32 r = 0; r < nranges && !err; r++)
		for (u64 c = ranges[r].chunk; c < ranges[r].chunk + ranges[r].count; c++) {
			e->batch[n++].chunk = c;
			if (n == ENGINE_BATCH_CHUNKS) {
				err = origin_batch(e, tx, n, &ncopied);
				n = 0;
				if (err)
					break;
			}
		}
	if (!err && n)
		err = origin_batch(e, tx, n, &ncopied);
	if (err)
		(void)ilog_flush(e); /* what was done is reported as done */
	else
		err = ilog_flush(e);
	if (copied)
		*copied = ncopied;
	if (gen)
		*gen = e->gen;
	return err;
}

int engine_origin_discard(struct engine *e, struct tx *tx, const struct engine_range *ranges,
			  u32 nranges, u64 *gen, u64 *copied)
{
	/* The saved copy must exist before the origin loses the data (DESIGN.md 3, Discard). */
	return engine_origin_write(e, tx, ranges, nranges, gen, copied);
}

/*------------------------------------------------------------------------------------------
 * Snapshot reads and writes
 *----------------------------------------------------------------------------------------*/

static int snap_lookup(struct engine *e, struct snap *s, u64 chunk, enum engine_map_where *where,
		       u64 *addr)
{
	u8 k[16], ko[16], v[16];
	int err;

	if (s->overlay_chunks) {
		struct btree *ov;

		err = snap_overlay(e, s, &ov);
		if (err)
			return err;
		btree_put_le64(k, 0, chunk);
		err = btree_lookup(ov, k, v);
		if (!err && !addr_ok(e, btree_get_le64(v, 0))) {
			log_err("engine: overlay of snapshot %u: chunk %llu maps to %llu, outside "
				"the "
				"data region",
				s->tag, (unsigned long long)chunk,
				(unsigned long long)btree_get_le64(v, 0));
			return -EILSEQ;
		}
		if (!err) {
			*where = ENGINE_MAP_SNAPSTORE;
			*addr = btree_get_le64(v, 0);
			return 0;
		}
		if (err != -ENODATA)
			return err;
	}
	exc_key(k, chunk, s->gen + 1);
	err = btree_find(e->exc, k, BTREE_GE, ko, v);
	if (!err && btree_get_le64(ko, 0) == chunk && !addr_ok(e, btree_get_le64(v, 1))) {
		/* open checked every exception; one added since came from our own allocator */
		log_err("engine: exception (chunk %llu, death %llu) maps to %llu, outside the data "
			"region",
			(unsigned long long)chunk, (unsigned long long)btree_get_le64(ko, 1),
			(unsigned long long)btree_get_le64(v, 1));
		return -EILSEQ;
	}
	if (!err && btree_get_le64(ko, 0) == chunk) {
		*where = ENGINE_MAP_SNAPSTORE;
		*addr = btree_get_le64(v, 1);
		return 0;
	}
	if (err && err != -ENODATA)
		return err;
	*where = ENGINE_MAP_ORIGIN;
	*addr = chunk;
	return 0;
}

int engine_snap_read_map(struct engine *e, u32 tag, u64 chunk, enum engine_map_where *where,
			 u64 *addr)
{
	struct snap *s = snap_find(e, tag);

	if (!s)
		return -ENODATA;
	if (s->state == ENGINE_SNAP_INVALID)
		return -EIO;
	if (chunk >= e->p.origin_chunks)
		return -EINVAL;
	return snap_lookup(e, s, chunk, where, addr);
}

/*
 * Phase one of snap_write_slice for @c[i]: an existing mapping (in the overlay, or made
 * earlier in this call: *src = its index, else UINT32_MAX) is answered at once; otherwise a
 * chunk is allocated and the snapshot's current view copied in, neither flushed nor logged
 * yet (*fresh).  Returns 0 or the chunk's error.
 */
static int snap_write_prepare(struct engine *e, struct tx *tx, struct snap *s, struct btree *ov,
			      struct engine_snap_chunk *c, u32 i, u32 *src, bool *fresh)
{
	enum engine_map_where where;
	u64 cur, got, chunk = c[i].chunk;
	u8 k[8], v[8];
	int err;

	*fresh = false;
	*src = UINT32_MAX;
	if (chunk >= e->p.origin_chunks)
		return -EINVAL;
	for (u32 j = i; j-- > 0;)
		if (c[j].chunk == chunk && !c[j].err) {
			*src = j;
			c[i].addr = c[j].addr;
			return 0;
		}
	err = snap_lookup(e, s, chunk, &where, &cur);
	if (err)
		return err;
	btree_put_le64(k, 0, chunk);
	if (s->overlay_chunks) {
		err = btree_lookup(ov, k, v);
		if (!err)
			c[i].addr = btree_get_le64(v, 0);
		if (err != -ENODATA)
			return err;
	}
	if (e->p.space->avail(e->p.space_priv) < 1 + e->p.reserve_chunks) {
		u64 coming = e->p.space->deferred ? e->p.space->deferred(e->p.space_priv) : 0;

		if (e->p.space->avail(e->p.space_priv) + coming >= 1 + e->p.reserve_chunks)
			return -EAGAIN;
		e->enospc++;
		return -ENOSPC;
	}
	err = e->p.space->alloc(e->p.space_priv, tx, 1, &c[i].addr, &got);
	if (err)
		return err;
	/* Copied in even for a write that will cover the whole chunk: the chunk may hold a
	 * freed chunk's data, and until the writer's data is durable the snapshot must read
	 * its own (see the essay, "A copy-in"). */
	err = bdev_read(where == ENGINE_MAP_ORIGIN ? e->p.origin : e->p.snapstore, e->copybuf,
			e->p.chunk_size, cur * e->p.chunk_size);
	if (!err)
		err = bdev_write(e->p.snapstore, e->copybuf, e->p.chunk_size,
				 c[i].addr * e->p.chunk_size);
	if (err) {
		e->p.space->free(e->p.space_priv, tx, c[i].addr, 1);
		return err;
	}
	*fresh = true;
	return 0;
}

/*
 * engine_snap_write for at most ENGINE_BATCH_CHUNKS chunks: phase one for each (stopping at
 * -EAGAIN), one snapstore flush for all the copy-ins, then each copy-in's record and overlay
 * entry in order (stopping at the first failure), then one log flush.  Returns the number of
 * chunks answered.
 */
static u32 snap_write_slice(struct engine *e, struct tx *tx, struct snap *s, struct btree *ov,
			    struct engine_snap_chunk *c, u32 n)
{
	u32 fresh[ENGINE_BATCH_CHUNKS], src[ENGINE_BATCH_CHUNKS];
	u32 nfresh = 0, answered = n, f = 0;
	bool any = false;
	int err = 0;

	memset(src, 0xff, sizeof(src)); /* UINT32_MAX: from no other chunk */
	for (u32 i = 0; i < n; i++) {
		bool made;

		c[i].err = snap_write_prepare(e, tx, s, ov, c, i, &src[i], &made);
		if (c[i].err == -EAGAIN) {
			answered = i;
			break;
		}
		if (made)
			fresh[nfresh++] = i;
	}
	/* Durable before any record is even appended, whoever flushes: replay trusts the
	 * record, and no checksum could tell a lost copy-in from the writes that the snapshot's
	 * writer makes to the chunk after it (test_volume log_block_durable_before_its_copy_in,
	 * lost_whole_snap_write_reads_old_data). */
	if (nfresh && e->p.ilog_append)
		err = bdev_flush(e->p.snapstore);
	for (; !err && f < nfresh; f++) {
		struct engine_snap_chunk *x = &c[fresh[f]];
		struct engine_logrec_disk r;
		u8 k[8], v[8];

		memset(&r, 0, sizeof(r));
		r.tag = cpu_to_le32(s->tag);
		r.chunk = cpu_to_le64(x->chunk);
		r.addr = cpu_to_le64(x->addr);
		err = ilog_rec(e, tx, ENGINE_LOG_OVERLAY, &r);
		if (err)
			break;
		btree_put_le64(k, 0, x->chunk);
		btree_put_le64(v, 0, x->addr);
		err = btree_insert(ov, tx, k, v, BTREE_NOOVERWRITE);
		if (err && e->p.ilog_append) {
			/* logged, so replay would apply it: its chunk stays allocated */
			x->err = engine_fail(e, err, "recording a logged overlay insert");
			err = -EROFS;
			f++;
			break;
		}
		if (err)
			break;
		s->overlay_chunks++;
		mark_overlay_dirty(e, s);
	}
	/* The copy-ins not recorded are freed and carry the error; after -EWOULDBLOCK (the log
	 * is full) the caller syncs and asks again from the first of them. */
	for (u32 g = f; err && g < nfresh; g++) {
		struct engine_snap_chunk *x = &c[fresh[g]];

		e->p.space->free(e->p.space_priv, tx, x->addr, 1);
		x->err = err;
		if (err == -EWOULDBLOCK && fresh[g] < answered)
			answered = fresh[g];
	}
	/* A chunk answered from a copy-in made earlier in this call shares its fate. */
	for (u32 i = 0; i < answered; i++) {
		if (src[i] != UINT32_MAX && !c[i].err)
			c[i].err = c[src[i]].err;
		any |= !c[i].err;
	}
	/* A mapping whose record is not durable yet is not handed out (on failure the entries
	 * stay in the overlay and the log, and a retry flushes again). */
	err = any ? ilog_flush(e) : 0;
	for (u32 i = 0; err && i < answered; i++)
		if (!c[i].err)
			c[i].err = err;
	return answered;
}

u32 engine_snap_write(struct engine *e, struct tx *tx, u32 tag, struct engine_snap_chunk *c, u32 n)
{
	struct snap *s = snap_find(e, tag);
	struct btree *ov = NULL;
	u32 done = 0;
	int err = 0;

	if (e->failed || e->p.read_only)
		err = -EROFS;
	else if (!s)
		err = -ENODATA;
	else if (s->state == ENGINE_SNAP_INVALID)
		err = -EIO;
	else
		err = snap_overlay(e, s, &ov);
	for (u32 i = 0; err && i < n; i++)
		c[i].err = err;
	while (!err && done < n) {
		u32 m = MIN(n - done, (u32)ENGINE_BATCH_CHUNKS);
		u32 got = snap_write_slice(e, tx, s, ov, c + done, m);

		done += got;
		if (got < m)
			return done;
	}
	return n;
}

int engine_snap_write_map(struct engine *e, struct tx *tx, u32 tag, u64 chunk, u64 *addr)
{
	struct engine_snap_chunk c = {.chunk = chunk};

	engine_snap_write(e, tx, tag, &c, 1);
	*addr = c.addr;
	return c.err;
}

/*------------------------------------------------------------------------------------------
 * Create, delete, holds
 *----------------------------------------------------------------------------------------*/

int snap_create(struct engine *e, struct tx *tx, u32 tag, u64 ctime, int8_t priority)
{
	struct snap *s = snap_new(tag);
	int err;

	s->gen = e->gen;
	s->ctime = ctime;
	s->priority = priority;
	err = table_put(e, tx, s);
	if (err) {
		free(s);
		return err;
	}
	s->dl = e->head_dl;
	e->head_dl = deadlist_create();
	hash_add(e, s);
	live_append(e, s);
	e->gen++;
	return 0;
}

int engine_create(struct engine *e, struct tx *tx, u32 tag, u64 ctime, int8_t priority)
{
	return engine_create_from(e, tx, tag, ctime, priority, NULL);
}

int engine_create_from(struct engine *e, struct tx *tx, u32 tag, u64 ctime, int8_t priority,
		       const struct engine_provenance *prov)
{
	struct engine_logrec_create_from_disk cf;
	struct engine_logrec_disk r;
	int err;

	if (e->failed || e->p.read_only)
		return -EROFS;
	if (tag == ENGINE_HEAD || (prov && !prov->gen))
		return -EINVAL;
	if (snap_find(e, tag))
		return -EEXIST;
	if (prov) {
		/* the label bit first: no provenance record ever exists on a store without it */
		if (e->p.set_feature) {
			err = e->p.set_feature(e->p.feature_priv);
			if (err)
				return err;
		}
		memset(&cf, 0, sizeof(cf));
		cf.gen = cpu_to_le64(e->gen);
		cf.ctime = cpu_to_le64(ctime);
		cf.tag = cpu_to_le32(tag);
		cf.priority = (u8)priority;
		memcpy(cf.uuid, prov->uuid, sizeof(cf.uuid));
		cf.origin_gen = cpu_to_le64(prov->gen);
		if (e->p.ilog_append) {
			e->ilog_pending = true;
			err = e->p.ilog_append(e->p.ilog_priv, tx, ENGINE_LOG_CREATE_FROM, &cf,
					       sizeof(cf));
			if (err)
				return err;
		}
	} else {
		memset(&r, 0, sizeof(r));
		r.tag = cpu_to_le32(tag);
		r.death = cpu_to_le64(e->gen);
		r.ctime = cpu_to_le64(ctime);
		r.priority = (u8)priority;
		err = ilog_rec(e, tx, ENGINE_LOG_CREATE, &r);
		if (err)
			return err;
	}
	err = snap_create(e, tx, tag, ctime, priority);
	if (!err && prov)
		err = prov_put(e, tx, snap_find(e, tag), prov);
	if (err && e->p.ilog_append)
		return engine_fail(e, err, "recording a logged snapshot create");
	if (!err)
		err = ilog_flush(e);
	return err;
}

int engine_delete(struct engine *e, struct tx *tx, u32 tag)
{
	struct snap *s = snap_find(e, tag);
	int err;

	if (e->failed || e->p.read_only)
		return -EROFS;
	if (!s)
		return -ENODATA;
	if (s->holds || s->opens)
		return -EBUSY;
	err = ilog_drop(e, tx, tag, false);
	if (!err)
		err = snap_drop(e, tx, s, false);
	if (!err)
		err = ilog_flush(e);
	return err;
}

/* Sets holds and priority, logged (unless replaying) so they are durable on return. */
int snap_setattr(struct engine *e, struct tx *tx, struct snap *s, u16 holds, int8_t priority,
		 bool replaying)
{
	u16 old_holds = s->holds;
	int8_t old_prio = s->priority;
	struct engine_logrec_disk r;
	int err;

	if (!replaying) {
		memset(&r, 0, sizeof(r));
		r.tag = cpu_to_le32(s->tag);
		r.chunk = cpu_to_le64(holds);
		r.priority = (u8)priority;
		err = ilog_rec(e, tx, ENGINE_LOG_SETATTR, &r);
		if (err)
			return err;
	}
	s->holds = holds;
	s->priority = priority;
	err = table_put(e, tx, s);
	if (err) {
		s->holds = old_holds;
		s->priority = old_prio;
		if (!replaying && e->p.ilog_append)
			return engine_fail(e, err, "recording a logged hold or priority");
		return err;
	}
	return replaying ? 0 : ilog_flush(e);
}

int engine_hold(struct engine *e, struct tx *tx, u32 tag, int delta)
{
	struct snap *s = snap_find(e, tag);
	int h;

	if (e->failed || e->p.read_only)
		return -EROFS;
	if (!s)
		return -ENODATA;
	h = (int)s->holds + delta;
	if (h < 0 || h > UINT16_MAX)
		return -EINVAL;
	return snap_setattr(e, tx, s, (u16)h, s->priority, false);
}

int engine_open_count(struct engine *e, u32 tag, int delta)
{
	struct snap *s = snap_find(e, tag);

	if (!s)
		return -ENODATA;
	if ((s64)s->opens + delta < 0)
		return -EINVAL;
	s->opens = (u32)((s64)s->opens + delta);
	return 0;
}

int engine_set_priority(struct engine *e, struct tx *tx, u32 tag, int8_t priority)
{
	struct snap *s = snap_find(e, tag);

	if (e->failed || e->p.read_only)
		return -EROFS;
	if (!s)
		return -ENODATA;
	return snap_setattr(e, tx, s, s->holds, priority, false);
}

/*------------------------------------------------------------------------------------------
 * Listing and status
 *----------------------------------------------------------------------------------------*/

static void snap_info(struct engine *e, struct snap *s, struct engine_snapinfo *o)
{
	memset(o, 0, sizeof(*o));
	o->tag = s->tag;
	o->gen = s->gen;
	o->ctime = s->ctime;
	o->priority = s->priority;
	o->holds = s->holds;
	o->opens = s->opens;
	o->state = s->state;
	o->overlay_chunks = s->overlay_chunks;
	o->received = s->received;
	if (s->received) {
		o->origin = s->prov;
	} else {
		memcpy(o->origin.uuid, e->p.uuid, sizeof(o->origin.uuid));
		o->origin.gen = s->gen;
	}
	if (s->state == ENGINE_SNAP_NORMAL) {
		u32 i = live_first_ge(e, s->gen);
		u64 prev = i ? e->live[i - 1]->gen : 0;

		o->unique_bytes = (dl_chunks(e, i + 1, prev + 1, s->gen) + s->overlay_chunks) *
				  e->p.chunk_size;
		o->written_bytes = dl_chunks(e, i, 0, UINT64_MAX) * e->p.chunk_size;
	}
}

u32 engine_list(struct engine *e, u32 first, struct engine_snapinfo *out, u32 max)
{
	u32 total = e->nlive + e->ninvalid, n = 0, k = e->nlive;

	for (u32 i = first; i < e->nlive && n < max; i++, e->list_visits++)
		snap_info(e, e->live[i], &out[n++]);
	/* The invalidated ones, in hash order, only for a page that reaches them. */
	for (u32 h = 0; n < max && first + n < total && h < e->hash_size; h++)
		for (struct snap *s = e->hash[h]; s && n < max; s = s->hnext, e->list_visits++)
			if (s->state == ENGINE_SNAP_INVALID && k++ >= first)
				snap_info(e, s, &out[n++]);
	return total;
}

int engine_snap_info(struct engine *e, u32 tag, struct engine_snapinfo *out)
{
	struct snap *s = snap_find(e, tag);

	if (!s)
		return -ENODATA;
	snap_info(e, s, out);
	return 0;
}

void engine_status(struct engine *e, struct engine_status *o)
{
	memset(o, 0, sizeof(*o));
	o->gen = e->gen;
	o->live = e->nlive;
	o->invalidated = e->ninvalid;
	o->exceptions = e->dld ? dldisk_count(e->dld, 0, UINT64_MAX, 0, UINT64_MAX)
			       : deadlist_count(e->head_dl);
	for (u32 i = 0; i < e->nlive; i++) {
		if (!e->dld)
			o->exceptions += deadlist_count(e->live[i]->dl);
		o->overlay_chunks += e->live[i]->overlay_chunks;
	}
	o->head_written_bytes = dl_chunks(e, e->nlive, 0, UINT64_MAX) * e->p.chunk_size;
	o->avail_chunks = e->p.space ? e->p.space->avail(e->p.space_priv) : 0;
	o->reserve_chunks = e->p.reserve_chunks;
	o->copyouts = e->copyouts;
	o->list_visits = e->list_visits;
	o->policy_deletes = e->policy_deletes;
	o->policy_invalidates = e->policy_invalidates;
	o->enospc = e->enospc;
	o->failed = e->failed;
}

/*------------------------------------------------------------------------------------------
 * Changelists
 *----------------------------------------------------------------------------------------*/

struct chunk_vec {
	u64 *v;
	u64 n, cap;
	u64 max_death; /* exceptions: report deaths <= this */
};

static void vec_push(struct chunk_vec *cv, u64 chunk)
{
	if (cv->n && cv->v[cv->n - 1] == chunk)
		return;
	if (cv->n == cv->cap) {
		cv->cap = cv->cap ? 2 * cv->cap : 256;
		cv->v = xrealloc(cv->v, cv->cap * sizeof(*cv->v));
	}
	cv->v[cv->n++] = chunk;
}

static int changed_exception(void *arg, const void *key, const void *value)
{
	struct chunk_vec *cv = arg;

	if (btree_get_le64(key, 1) <= cv->max_death)
		vec_push(cv, btree_get_le64(key, 0));
	return 0;
}

static int changed_overlay(void *arg, const void *key, const void *value)
{
	vec_push(arg, btree_get_le64(key, 0));
	return 0;
}

static int walk_overlay(struct engine *e, struct snap *s, struct chunk_vec *cv,
			struct engine_walk_stats *st)
{
	struct btree_walk w = {.entry = changed_overlay, .arg = cv};
	struct btree *ov;
	int err;

	if (!s || !s->overlay_chunks)
		return 0;
	err = snap_overlay(e, s, &ov);
	if (!err)
		err = btree_walk(ov, &w);
	st->nodes_visited += w.nodes_visited;
	st->leaves_visited += w.leaves_visited;
	st->entries_reported += w.entries_reported;
	return err;
}

int engine_changelist(struct engine *e, u32 a, u32 b, u64 **chunks, u64 *n,
		      struct engine_walk_stats *st)
{
	struct snap *sa = a == ENGINE_HEAD ? NULL : snap_find(e, a);
	struct snap *sb = b == ENGINE_HEAD ? NULL : snap_find(e, b);
	struct chunk_vec cv = {0};
	struct engine_walk_stats local;
	struct btree_walk w = {.flags = BTREE_WALK_AGGR, .entry = changed_exception};
	u64 ga, gb;
	int err;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if ((a != ENGINE_HEAD && !sa) || (b != ENGINE_HEAD && !sb))
		return -ENODATA;
	if ((sa && sa->state == ENGINE_SNAP_INVALID) || (sb && sb->state == ENGINE_SNAP_INVALID))
		return -EIO;
	ga = sa ? sa->gen : UINT64_MAX;
	gb = sb ? sb->gen : UINT64_MAX;
	w.min_aggr = MIN(ga, gb);
	cv.max_death = MAX(ga, gb);
	w.arg = &cv;
	err = btree_walk(e->exc, &w);
	st->nodes_visited = w.nodes_visited;
	st->leaves_visited = w.leaves_visited;
	st->entries_reported = w.entries_reported;
	if (!err)
		err = walk_overlay(e, sa, &cv, st);
	if (!err)
		err = walk_overlay(e, sb, &cv, st);
	if (err) {
		free(cv.v);
		return err;
	}
	if (cv.n > 1)
		qsort(cv.v, cv.n, sizeof(*cv.v), cmp_u64);
	*n = 0;
	for (u64 i = 0; i < cv.n; i++)
		if (!*n || cv.v[*n - 1] != cv.v[i])
			cv.v[(*n)++] = cv.v[i];
	*chunks = cv.v;
	return 0;
}
