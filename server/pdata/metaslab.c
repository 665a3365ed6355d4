// SPDX-License-Identifier: GPL-2.0-only
/*
 * metaslab.c - the block allocator over metaslabs and their space maps.
 *
 * What.  Each region (the snapstore's data region; with a separate metadata device, its
 * metadata region too) is cut into metaslabs of 2^ms_shift blocks.  Each metaslab has a
 * class (DATA, METADATA, or unclaimed on a shared device), a space map on disk and five
 * range trees in memory, all in blocks relative to the metaslab start:
 *
 *	free    allocatable now
 *	allocs  allocated in the open txg, not yet in the space map
 *	frees   freed in the open txg, not yet in the space map (not allocatable)
 *	undone  allocated and freed in the open txg, never in the space map (not allocatable)
 *	defer   freed in the syncing txg, allocatable once it is durable
 *
 *	        alloc                 metaslab_sync(T)           sync_done(T)
 *	free ----------> allocs ------------------------> (on disk: ALLOC)
 *	allocated ------------> frees ------------------> defer ----------------> free
 *	            free (old)         metaslab_sync(T)          sync_done(T)
 *	allocs ---------------> undone -----------------> defer ----------------> free
 *	            free             metaslab_sync(T): no record    sync_done(T)
 *	allocs ---------------------------------------------------------------> free
 *	            metadata, or data freed with birth == the open txg: at once
 *
 * The persistent table (format.h) holds each metaslab's space map phys and class, in leaf
 * blocks under one index block whose pointer goes into the uberblock.
 *
 * Invariants.
 *  - For each metaslab, free, allocs, frees, undone and defer are pairwise disjoint; the
 *    blocks in none of them are allocated in the space map as of the last sync.
 *  - The space map as of the last sync replays to "not in free, allocs, undone or defer" (a
 *    run in frees was still allocated then, a run in allocs or undone still free);
 *    metaslab_sync moves undone into defer (no record: on disk it never stopped being
 *    free) and appends allocs as ALLOC and frees as FREE records, which makes it "not in
 *    free or defer".
 *  - Nothing in frees, undone or defer is allocatable, so a run freed in txg T cannot be
 *    reused before sync_done(T) (tx.h), whenever it was allocated.  The exceptions return
 *    to free at once: a metadata block allocated in the open txg, and a data run allocated
 *    in it whose caller passes the open txg as the birth, vouching that nothing durable
 *    names it (an allocation unwound before it was used).
 *  - The per-class counters equal the sums over the class's metaslabs.
 *
 * Why a run allocated and freed in the same open txg still waits for the txg.  The txg is
 * not the only durable record of allocations: the store's intent log is flushed before a
 * copy-out is acknowledged, and its record names the chunk {L, b, d, addr, csum} long
 * before the txg that allocated addr syncs.  Say a copy-out puts origin chunk L1 at addr
 * for snapshot S in open txg N, S is deleted in N (addr freed), and a copy-out of L2 in N
 * gets addr again; power fails before N syncs.  Open replays every record newer than the
 * durable txg, in order: L1's record claims addr, finds the checksum wrong (addr holds
 * L2's saved data) and copies L1 again from the origin, then the drop frees addr, then L2's
 * record claims it, finds it holding L1's data and copies L2 again from the origin, which
 * by now holds the write that L2's copy-out had released: the snapshot that owns addr
 * reads current origin data instead of its own.  (With the log on the snapstore the records
 * are ordered and trusted, no copy is redone, and replay happens to end right; the reuse
 * is still a hazard for any record that is checked.)  Deferring every such free to
 * sync_done(N) closes it: replay hands out only records of txgs newer than the durable
 * txg (intent_log.c), and sync_done(N) runs after the uberblock of N is durable, so by the
 * time addr can be allocated again no record naming it will ever be replayed; until then,
 * every replayed record naming addr finds it holding the data it wrote or a copy it may
 * redo, because nothing else wrote there.  Replay itself allocates in one open txg R:
 * its claims and the frees of replayed drops follow the same rule, so a chunk freed by a
 * replayed record is not handed to a new copy-out before R is durable, by which time the
 * replayed records are behind the log's replay position.  Metadata blocks have no such
 * hazard: nothing outside the txg names a block allocated in the open txg (the intent log
 * names data chunks only; replay allocates its tree blocks afresh), and the freed block's
 * dirty buffer is dropped (cache_forget), so their frees keep returning 1.
 *
 * Reserves.  Txg sync allocates metadata (space map tails, new log blocks, table blocks):
 * at most METASLAB_SYNC_BLOCKS_PER_MS per dirty metaslab plus one per table block.
 * Ordinary metadata allocation stops with -ENOSPC while the METADATA headroom (its free
 * blocks plus, on a shared device, the unclaimed metaslabs) is at or below that reserve;
 * the sync's own allocations may use it.  On a shared device DATA may claim an unclaimed
 * metaslab only if twice the reserve stays available to METADATA.  A condense is skipped
 * when it would eat into the reserve.
 *
 * Recursion in sync, and why it converges.  Writing a space map allocates metadata blocks,
 * which adds records to some (METADATA) metaslab, which must then be written too.  Sync
 * runs passes; each pass writes every metaslab's pending records (after moving them aside,
 * so allocations the writing causes land in fresh trees for the next pass) and gives each
 * dirty metaslab's table leaf, and the index, a new block once per txg.  New records in a
 * pass come only from (a) a metaslab's first append in the txg, which copies its tail
 * block (one ALLOC, one FREE), (b) a full tail block (one ALLOC per SPACE_MAP_RECS_PER_BLOCK
 * records written), (c) the first rewrite of a table block (one ALLOC, one FREE).  Each of
 * (a) and (c) happens at most once per metaslab or table block per txg, and (b) shrinks
 * geometrically (250 records make at most one), so after a pass in which no new metaslab or
 * leaf became dirty, the next pass writes at most a handful of records into blocks already
 * born in this txg, which are changed in place without allocating: the passes stop.  In
 * practice it takes two or three; METASLAB_SYNC_MAX_PASSES bounds it with a VERIFY.
 *
 * Crash argument.  Every block sync writes (tails, log blocks, table blocks) is new in this
 * txg; every block it replaces is freed with deferral.  If we crash before the uberblock of
 * txg T is durable, the previous uberblock's root still points to the previous index, its
 * leaves and their space maps, none of which was overwritten (their frees are deferred,
 * and everything allocated in T came from space that the previous state calls free), so
 * the allocator opens as of T-1, and T's allocations are free again, as T's other blocks
 * are unreferenced.  If we crash after, the new root describes T exactly: the records of
 * T were written in T, including those of the blocks that hold them.  The store's intent
 * log replay then re-claims the data chunks of copy-outs newer than the durable txg with
 * metaslab_claim_data.
 *
 * Claims.  On a shared device a metaslab is claimed by the first class that allocates from
 * it and returns to the unclaimed pool at sync_done once it is entirely free, so space
 * moves between the classes over time.  The claim is in the table entry, so a reopen
 * finds the same split; an unclaimed metaslab's log may still hold records, which cancel.
 *
 * Locking.  mg->lock covers everything; sync holds it throughout and its internal struct
 * tx calls the *_locked variants.  See metaslab.h for the txg contract.
 */
#include "pdata/metaslab.h"
#include "pdata/range_tree.h"
#include "pdata/space_map.h"
#include <pthread.h>
#include <string.h>

/*
 * Metadata blocks one dirty metaslab's sync may allocate: a copy of its tail and a new log
 * block when the tail fills, with a spare for a second fill.
 */
#define METASLAB_SYNC_BLOCKS_PER_MS 3
/* Fixed part of the sync reserve: table blocks and slack for a handful of passes. */
#define METASLAB_SYNC_RESERVE_MIN 32
/* Sync passes converge in two or three (see the essay); more means a bug. */
#define METASLAB_SYNC_MAX_PASSES 16

struct metaslab {
	u64 id;
	u64 start, size; /* device blocks */
	u32 cls;	 /* enum metaslab_class_disk */
	bool dirty;	 /* its table entry changes in the open txg */
	struct space_map *sm;
	struct range_tree *free, *allocs, *frees, *defer;
	struct range_tree *undone; /* allocated and freed in the open txg, deferred */
};

struct class_counters {
	u64 total, free, deferred, metaslabs;
};

struct metaslab_group {
	pthread_mutex_t lock;
	struct cache *cache;
	struct metaslab_geometry g;
	bool shared;	/* one device: classes claim metaslabs of the data region */
	u64 nr_ms;	/* data region's first, then the metadata region's */
	u64 nr_data_ms; /* metaslabs in the data region */
	struct metaslab *ms;
	u64 open_txg;
	bool done_pending; /* metaslab_sync(open_txg - 1) returned, sync_done not yet */
	u64 reserve;	   /* METADATA blocks kept for sync */
	struct metaslab *active[3];
	struct class_counters cnt[3];
	/* The table as of the last sync, and its blocks born in the syncing txg. */
	struct blkptr index;
	u64 nr_leaves;
	struct blkptr *leaf;
	struct cblock **leaf_born;
	struct cblock *index_born;
	struct range_tree *scratch_a, *scratch_f;
	int error; /* sticky: a free through the ready-made tx failed (corrupt metadata) */
};

#define why_fail(why, whylen, ...) why_printf(why, whylen, -EILSEQ, __VA_ARGS__)

/*----------------------------------------------------------------*/
/* the table block type */

static int table_validate(const void *block, char *why, size_t whylen)
{
	const struct metaslab_table_disk *d = block;
	u32 level = le32_to_cpu(d->level), nr = le32_to_cpu(d->nr);
	u64 first = le64_to_cpu(d->first), total = le64_to_cpu(d->nr_metaslabs);
	size_t used;

	if (d->reserved || total == 0 || total > METASLAB_MAX)
		return why_fail(why, whylen, "metaslab table: %llu metaslabs",
				(unsigned long long)total);
	if (level == 0) {
		const struct metaslab_entry_disk *e = (const void *)d->payload;

		if (nr == 0 || nr > METASLAB_TABLE_PER_LEAF || first % METASLAB_TABLE_PER_LEAF ||
		    first >= total || nr != MIN(METASLAB_TABLE_PER_LEAF, total - first))
			return why_fail(why, whylen, "metaslab table leaf: %u entries from %llu",
					nr, (unsigned long long)first);
		for (u32 i = 0; i < nr; i++) {
			struct space_map_phys p;

			if (le32_to_cpu(e[i].class) > METASLAB_CLASS_META || e[i].flags ||
			    e[i].reserved || space_map_phys_unpack(&p, &e[i].sm))
				return why_fail(why, whylen, "metaslab table: bad entry %llu",
						(unsigned long long)(first + i));
		}
		used = nr * sizeof(*e);
	} else if (level == 1) {
		const struct blkptr_disk *bp = (const void *)d->payload;

		if (first || nr != DIV_ROUND_UP(total, METASLAB_TABLE_PER_LEAF))
			return why_fail(why, whylen, "metaslab table index: %u leaves", nr);
		for (u32 i = 0; i < nr; i++)
			if (!bp[i].blocknr || bp[i].reserved)
				return why_fail(why, whylen, "metaslab table index: bad pointer %u",
						i);
		used = nr * sizeof(*bp);
	} else {
		return why_fail(why, whylen, "metaslab table: level %u", level);
	}
	for (size_t i = METASLAB_TABLE_HEADER_SIZE + used; i < DDSNAP_BLOCK_SIZE; i++)
		if (((const u8 *)block)[i])
			return why_fail(why, whylen, "metaslab table: data after the last entry");
	return 0;
}

const struct block_type metaslab_table_type = {
	.name = "metaslab table",
	.magic = MAGIC_METASLAB_TABLE,
	.validate = table_validate,
};

/*----------------------------------------------------------------*/
/* geometry and setup */

static u32 ceil_log2(u64 x)
{
	u32 s = 0;

	while (s < 63 && (1ull << s) < x)
		s++;
	return s;
}

static u64 region_metaslabs(u64 blocks, u32 shift)
{
	return blocks ? ((blocks - 1) >> shift) + 1 : 0;
}

static int geometry_check(const struct metaslab_geometry *g)
{
	u64 n;

	if (!g->data_blocks || !g->data_start || g->chunk_shift > g->ms_shift || g->ms_shift > 48 ||
	    g->data_start + g->data_blocks < g->data_start)
		return -EINVAL;
	if (g->data_blocks & ((1ull << g->chunk_shift) - 1))
		return -EINVAL;
	if (g->meta_blocks && (!g->meta_start || g->meta_start + g->meta_blocks < g->meta_start))
		return -EINVAL;
	n = region_metaslabs(g->data_blocks, g->ms_shift) +
	    region_metaslabs(g->meta_blocks, g->ms_shift);
	return n > METASLAB_MAX ? -EINVAL : 0;
}

int metaslab_geometry_init(struct metaslab_geometry *g, u64 data_start, u64 data_blocks,
			   u64 meta_start, u64 meta_blocks, u32 chunk_shift)
{
	u64 biggest = MAX(data_blocks, meta_blocks);

	memset(g, 0, sizeof(*g));
	if (chunk_shift > 32)
		return -EINVAL;
	g->data_start = data_start;
	g->data_blocks = data_blocks & ~((1ull << chunk_shift) - 1);
	g->meta_start = meta_start;
	g->meta_blocks = meta_blocks;
	g->chunk_shift = chunk_shift;
	g->ms_shift = MAX(MAX((u32)METASLAB_MIN_SHIFT, chunk_shift),
			  ceil_log2(DIV_ROUND_UP(biggest, METASLAB_TARGET_COUNT)));
	return geometry_check(g);
}

static void counters_add(struct metaslab_group *mg, struct metaslab *ms, int sign)
{
	struct class_counters *c = &mg->cnt[ms->cls];
	u64 deferred = range_tree_space(ms->frees) + range_tree_space(ms->defer) +
		       range_tree_space(ms->undone);

	if (sign > 0) {
		c->total += ms->size;
		c->free += range_tree_space(ms->free);
		c->deferred += deferred;
		c->metaslabs++;
	} else {
		c->total -= ms->size;
		c->free -= range_tree_space(ms->free);
		c->deferred -= deferred;
		c->metaslabs--;
	}
}

static struct metaslab_group *group_new(struct cache *cache, const struct metaslab_geometry *g,
					u64 open_txg)
{
	struct metaslab_group *mg = xzalloc(sizeof(*mg));
	u64 ms_size = 1ull << g->ms_shift;

	pthread_mutex_init(&mg->lock, NULL);
	mg->cache = cache;
	mg->g = *g;
	mg->shared = g->meta_blocks == 0;
	mg->nr_data_ms = region_metaslabs(g->data_blocks, g->ms_shift);
	mg->nr_ms = mg->nr_data_ms + region_metaslabs(g->meta_blocks, g->ms_shift);
	mg->ms = xzalloc(mg->nr_ms * sizeof(*mg->ms));
	mg->open_txg = open_txg;
	mg->nr_leaves = DIV_ROUND_UP(mg->nr_ms, METASLAB_TABLE_PER_LEAF);
	mg->leaf = xzalloc(mg->nr_leaves * sizeof(*mg->leaf));
	mg->leaf_born = xzalloc(mg->nr_leaves * sizeof(*mg->leaf_born));
	mg->reserve =
		METASLAB_SYNC_BLOCKS_PER_MS * mg->nr_ms + mg->nr_leaves + METASLAB_SYNC_RESERVE_MIN;
	mg->scratch_a = range_tree_create();
	mg->scratch_f = range_tree_create();
	for (u64 i = 0; i < mg->nr_ms; i++) {
		struct metaslab *ms = &mg->ms[i];
		bool data = i < mg->nr_data_ms;
		u64 base = data ? g->data_start : g->meta_start;
		u64 len = data ? g->data_blocks : g->meta_blocks;
		u64 k = data ? i : i - mg->nr_data_ms;

		ms->id = i;
		ms->start = base + k * ms_size;
		ms->size = MIN(ms_size, len - k * ms_size);
		ms->cls = mg->shared ? METASLAB_CLASS_NONE
				     : (data ? METASLAB_CLASS_DATA : METASLAB_CLASS_META);
		ms->free = range_tree_create();
		ms->allocs = range_tree_create();
		ms->frees = range_tree_create();
		ms->defer = range_tree_create();
		ms->undone = range_tree_create();
	}
	return mg;
}

void metaslab_close(struct metaslab_group *mg)
{
	if (!mg)
		return;
	for (u64 i = 0; i < mg->nr_ms; i++) {
		struct metaslab *ms = &mg->ms[i];

		space_map_close(ms->sm);
		range_tree_destroy(ms->free);
		range_tree_destroy(ms->allocs);
		range_tree_destroy(ms->frees);
		range_tree_destroy(ms->defer);
		range_tree_destroy(ms->undone);
	}
	for (u64 i = 0; i < mg->nr_leaves; i++)
		cache_put(mg->cache, mg->leaf_born[i]);
	cache_put(mg->cache, mg->index_born);
	range_tree_destroy(mg->scratch_a);
	range_tree_destroy(mg->scratch_f);
	free(mg->leaf);
	free(mg->leaf_born);
	free(mg->ms);
	pthread_mutex_destroy(&mg->lock);
	free(mg);
}

int metaslab_create(struct cache *cache, const struct metaslab_geometry *g, u64 txg,
		    struct metaslab_group **out)
{
	struct space_map_phys empty = {0};
	struct metaslab_group *mg;

	if (geometry_check(g))
		return -EINVAL;
	mg = group_new(cache, g, txg);
	for (u64 i = 0; i < mg->nr_ms; i++) {
		struct metaslab *ms = &mg->ms[i];

		ms->sm = space_map_open(cache, ms->start, ms->size, &empty);
		VERIFY(range_tree_add(ms->free, 0, ms->size) == 0);
		counters_add(mg, ms, 1);
	}
	*out = mg;
	return 0;
}

/* Reads one table block through @bp and checks that it is the one @bp names. */
static int read_table_block(struct metaslab_group *mg, const struct blkptr *bp, u32 level,
			    struct cblock **out, char *why, size_t whylen)
{
	int r = cache_read(mg->cache, &metaslab_table_type, bp->blocknr, bp->birth_txg, out, why,
			   whylen);
	const struct metaslab_table_disk *d;

	if (r)
		return r;
	d = (*out)->data;
	if (block_csum((*out)->data) != bp->csum || le32_to_cpu(d->level) != level ||
	    le64_to_cpu(d->nr_metaslabs) != mg->nr_ms) {
		cache_put(mg->cache, *out);
		return why_fail(why, whylen,
				"metaslab table block %llu: not the one its parent names",
				(unsigned long long)bp->blocknr);
	}
	return 0;
}

static int load_leaf(struct metaslab_group *mg, u64 l, char *why, size_t whylen)
{
	const struct metaslab_entry_disk *e;
	struct cblock *b;
	int r = read_table_block(mg, &mg->leaf[l], 0, &b, why, whylen);

	if (r)
		return r;
	e = (const void *)((const struct metaslab_table_disk *)b->data)->payload;
	if (le64_to_cpu(((const struct metaslab_table_disk *)b->data)->first) !=
	    l * METASLAB_TABLE_PER_LEAF) {
		r = why_fail(why, whylen, "metaslab table leaf %llu out of place",
			     (unsigned long long)l);
		goto out_put;
	}
	for (u64 i = l * METASLAB_TABLE_PER_LEAF;
	     i < MIN(mg->nr_ms, (l + 1) * METASLAB_TABLE_PER_LEAF); i++) {
		struct metaslab *ms = &mg->ms[i];
		const struct metaslab_entry_disk *ed = &e[i - l * METASLAB_TABLE_PER_LEAF];
		struct space_map_phys phys;
		u32 cls = le32_to_cpu(ed->class);

		VERIFY(space_map_phys_unpack(&phys, &ed->sm) == 0); /* the validator checked */
		if ((mg->shared && cls == METASLAB_CLASS_NONE && phys.alloc) ||
		    (!mg->shared && cls != ms->cls)) {
			r = why_fail(why, whylen, "metaslab %llu: class %u does not fit",
				     (unsigned long long)i, cls);
			goto out_put;
		}
		ms->cls = cls;
		ms->sm = space_map_open(mg->cache, ms->start, ms->size, &phys);
		r = space_map_load(ms->sm, ms->free, why, whylen);
		if (r)
			goto out_put;
	}
out_put:
	cache_put(mg->cache, b);
	return r;
}

int metaslab_open(struct cache *cache, const struct metaslab_root_disk *root, u64 synced_txg,
		  struct metaslab_group **out, char *why, size_t whylen)
{
	struct metaslab_geometry g = {
		.data_start = le64_to_cpu(root->data_start),
		.data_blocks = le64_to_cpu(root->data_blocks),
		.meta_start = le64_to_cpu(root->meta_start),
		.meta_blocks = le64_to_cpu(root->meta_blocks),
		.ms_shift = le32_to_cpu(root->ms_shift),
		.chunk_shift = le32_to_cpu(root->chunk_shift),
	};
	struct metaslab_group *mg;
	struct blkptr index;
	struct cblock *b;
	int r;

	if (geometry_check(&g) || root->flags || root->reserved || root->table.reserved)
		return why_fail(why, whylen, "metaslab root: bad geometry");
	blkptr_unpack(&index, &root->table);
	mg = group_new(cache, &g, synced_txg + 1);
	if (!index.blocknr) {
		/* Created but never synced: all free, as metaslab_create left it. */
		metaslab_close(mg);
		return metaslab_create(cache, &g, synced_txg + 1, out);
	}
	r = read_table_block(mg, &index, 1, &b, why, whylen);
	if (r)
		goto out_close;
	for (u64 l = 0; l < mg->nr_leaves; l++)
		blkptr_unpack(
			&mg->leaf[l],
			&((const struct blkptr_disk *)((const struct metaslab_table_disk *)b->data)
				  ->payload)[l]);
	cache_put(cache, b);
	mg->index = index;
	for (u64 l = 0; l < mg->nr_leaves && !r; l++)
		r = load_leaf(mg, l, why, whylen);
	if (r)
		goto out_close;
	for (u64 i = 0; i < mg->nr_ms; i++)
		counters_add(mg, &mg->ms[i], 1);
	*out = mg;
	return 0;

out_close:
	metaslab_close(mg);
	return r;
}

void metaslab_get_geometry(const struct metaslab_group *mg, struct metaslab_geometry *g)
{
	*g = mg->g;
}

/*----------------------------------------------------------------*/
/* allocation */

static u64 meta_headroom(const struct metaslab_group *mg)
{
	return mg->cnt[METASLAB_CLASS_META].free +
	       (mg->shared ? mg->cnt[METASLAB_CLASS_NONE].free : 0);
}

/* Moves [rel, rel+n) of @ms from free to allocs. */
static void ms_take(struct metaslab_group *mg, struct metaslab *ms, u64 rel, u64 n)
{
	VERIFY(range_tree_remove(ms->free, rel, n) == 0);
	VERIFY(range_tree_add(ms->allocs, rel, n) == 0);
	mg->cnt[ms->cls].free -= n;
	ms->dirty = true;
}

static void ms_claim(struct metaslab_group *mg, struct metaslab *ms, u32 cls)
{
	VERIFY(ms->cls == METASLAB_CLASS_NONE);
	counters_add(mg, ms, -1);
	ms->cls = cls;
	counters_add(mg, ms, 1);
	ms->dirty = true;
}

/*
 * A metaslab of @cls with a free run of @len blocks aligned to @align: the one with the most
 * free space, else (shared device) an unclaimed one, claimed now.  NULL if none.
 */
static struct metaslab *pick(struct metaslab_group *mg, u32 cls, u64 len, u64 align, bool sync)
{
	struct metaslab *best = NULL;
	u64 s, n;

	for (u64 i = 0; i < mg->nr_ms; i++) {
		struct metaslab *ms = &mg->ms[i];

		if (ms->cls != cls ||
		    (best && range_tree_space(ms->free) <= range_tree_space(best->free)))
			continue;
		if (range_tree_largest(ms->free, &s, &n) == 0 && n >= len &&
		    range_tree_find(ms->free, len, align, &s) == 0)
			best = ms;
	}
	if (best || !mg->shared)
		return best;
	/* METADATA claims from the end of the device, DATA from the start: less interleaving. */
	for (u64 k = 0; k < mg->nr_ms; k++) {
		struct metaslab *ms = &mg->ms[cls == METASLAB_CLASS_META ? mg->nr_ms - 1 - k : k];

		if (ms->cls != METASLAB_CLASS_NONE || ms->size < len)
			continue;
		if (cls == METASLAB_CLASS_DATA && !sync &&
		    meta_headroom(mg) < ms->size + 2 * mg->reserve)
			return NULL;
		ms_claim(mg, ms, cls);
		return ms;
	}
	return NULL;
}

static int alloc_meta_locked(struct metaslab_group *mg, u64 *blocknr, bool sync)
{
	struct metaslab *ms = mg->active[METASLAB_CLASS_META];
	u64 rel;

	if (!sync && meta_headroom(mg) <= mg->reserve)
		return -ENOSPC;
	if (!ms || range_tree_space(ms->free) == 0) {
		ms = pick(mg, METASLAB_CLASS_META, 1, 1, sync);
		if (!ms)
			return -ENOSPC;
		mg->active[METASLAB_CLASS_META] = ms;
	}
	VERIFY(range_tree_find(ms->free, 1, 1, &rel) == 0);
	ms_take(mg, ms, rel, 1);
	*blocknr = ms->start + rel;
	return 0;
}

int metaslab_alloc_meta(struct metaslab_group *mg, u64 *blocknr)
{
	int r;

	pthread_mutex_lock(&mg->lock);
	r = alloc_meta_locked(mg, blocknr, false);
	pthread_mutex_unlock(&mg->lock);
	return r;
}

/* The longest chunk-aligned run in any DATA metaslab, as (metaslab, rel start, chunks). */
static struct metaslab *longest_data_run(struct metaslab_group *mg, u64 *rel, u64 *chunks)
{
	u64 cb = 1ull << mg->g.chunk_shift, s, n;
	struct metaslab *best = NULL;

	*chunks = 0;
	for (u64 i = 0; i < mg->nr_ms; i++) {
		struct metaslab *ms = &mg->ms[i];
		u64 a, c;

		if (ms->cls != METASLAB_CLASS_DATA || range_tree_largest(ms->free, &s, &n))
			continue;
		a = ROUND_UP(s, cb);
		c = a - s < n ? (n - (a - s)) / cb : 0;
		if (c > *chunks) {
			best = ms;
			*rel = a;
			*chunks = c;
		}
	}
	return best;
}

int metaslab_alloc_data(struct metaslab_group *mg, u64 max_chunks, u64 *start, u64 *nr_chunks)
{
	u64 cb = 1ull << mg->g.chunk_shift, want, rel, got;
	struct metaslab *ms;
	int r = 0;

	if (!max_chunks)
		return -EINVAL;
	/* No run is longer than a metaslab. */
	max_chunks = MIN(max_chunks, 1ull << (mg->g.ms_shift - mg->g.chunk_shift));
	want = max_chunks * cb;
	pthread_mutex_lock(&mg->lock);
	ms = mg->active[METASLAB_CLASS_DATA];
	if (ms && range_tree_find(ms->free, want, cb, &rel) == 0) {
		got = max_chunks;
	} else if ((ms = pick(mg, METASLAB_CLASS_DATA, want, cb, false)) != NULL) {
		VERIFY(range_tree_find(ms->free, want, cb, &rel) == 0);
		mg->active[METASLAB_CLASS_DATA] = ms;
		got = max_chunks;
	} else if ((ms = longest_data_run(mg, &rel, &got)) != NULL) {
		got = MIN(got, max_chunks);
	} else {
		r = -ENOSPC;
		goto out_unlock;
	}
	ms_take(mg, ms, rel, got * cb);
	*start = ms->start + rel;
	*nr_chunks = got;
out_unlock:
	pthread_mutex_unlock(&mg->lock);
	return r;
}

/* The metaslab of @cls's region holding [start, start + n), or NULL. */
static struct metaslab *ms_lookup(struct metaslab_group *mg, u32 cls, u64 start, u64 n)
{
	bool meta_region = !mg->shared && cls == METASLAB_CLASS_META;
	u64 base = meta_region ? mg->g.meta_start : mg->g.data_start;
	u64 first = meta_region ? mg->nr_data_ms : 0;
	u64 count = meta_region ? mg->nr_ms - mg->nr_data_ms : mg->nr_data_ms;
	struct metaslab *ms;
	u64 i;

	if (start < base || n == 0 || start + n < start)
		return NULL;
	i = (start - base) >> mg->g.ms_shift;
	if (i >= count)
		return NULL;
	ms = &mg->ms[first + i];
	return start + n <= ms->start + ms->size ? ms : NULL;
}

int metaslab_claim_data(struct metaslab_group *mg, u64 start, u64 nr_chunks)
{
	u64 cb = 1ull << mg->g.chunk_shift, n = nr_chunks << mg->g.chunk_shift;
	struct metaslab *ms;
	int r = 0;

	if (!nr_chunks || nr_chunks > (UINT64_MAX >> mg->g.chunk_shift))
		return -EINVAL;
	pthread_mutex_lock(&mg->lock);
	ms = ms_lookup(mg, METASLAB_CLASS_DATA, start, n);
	if (!ms || (start - mg->g.data_start) % cb ||
	    (ms->cls != METASLAB_CLASS_DATA && ms->cls != METASLAB_CLASS_NONE)) {
		r = -EINVAL;
	} else if (!range_tree_contains(ms->free, start - ms->start, n)) {
		r = -EEXIST;
	} else {
		if (ms->cls == METASLAB_CLASS_NONE)
			ms_claim(mg, ms, METASLAB_CLASS_DATA);
		ms_take(mg, ms, start - ms->start, n);
	}
	pthread_mutex_unlock(&mg->lock);
	return r;
}

/*
 * Frees [start, start+n) of @cls, born in @birth_txg.  A run still in allocs was allocated
 * in the open txg and is not on disk: a metadata block, or a data run whose caller vouches
 * with @birth_txg == the open txg that nothing durable names it, is reusable at once; any
 * other data run (an engine free, whose chunk an intent log record may name) waits in
 * undone for the txg (essay).
 */
static int free_locked(struct metaslab_group *mg, u32 cls, u64 start, u64 n, u64 birth_txg)
{
	struct metaslab *ms = ms_lookup(mg, cls, start, n);
	u64 rel;

	if (!ms)
		return -EINVAL;
	if (ms->cls != cls)
		return -EILSEQ;
	rel = start - ms->start;
	if (range_tree_contains(ms->allocs, rel, n)) {
		VERIFY(range_tree_remove(ms->allocs, rel, n) == 0);
		if (cls == METASLAB_CLASS_META || birth_txg == mg->open_txg) {
			/* Born in the open txg, never on disk, named by nothing durable. */
			VERIFY(range_tree_add(ms->free, rel, n) == 0);
			mg->cnt[cls].free += n;
			return 1;
		}
		VERIFY(range_tree_add(ms->undone, rel, n) == 0);
		mg->cnt[cls].deferred += n;
		return 0;
	}
	if (range_tree_intersects(ms->free, rel, n) || range_tree_intersects(ms->frees, rel, n) ||
	    range_tree_intersects(ms->defer, rel, n) || range_tree_intersects(ms->allocs, rel, n) ||
	    range_tree_intersects(ms->undone, rel, n))
		return -EILSEQ;
	VERIFY(range_tree_add(ms->frees, rel, n) == 0);
	mg->cnt[cls].deferred += n;
	ms->dirty = true;
	return 0;
}

int metaslab_free_meta(struct metaslab_group *mg, u64 blocknr, u64 birth_txg)
{
	int r;

	pthread_mutex_lock(&mg->lock);
	r = free_locked(mg, METASLAB_CLASS_META, blocknr, 1, birth_txg);
	pthread_mutex_unlock(&mg->lock);
	return r;
}

int metaslab_free_data(struct metaslab_group *mg, u64 start, u64 nr_chunks, u64 birth_txg)
{
	int r;

	if (!nr_chunks || nr_chunks > (UINT64_MAX >> mg->g.chunk_shift) ||
	    (start - mg->g.data_start) % (1ull << mg->g.chunk_shift))
		return -EINVAL;
	pthread_mutex_lock(&mg->lock);
	r = free_locked(mg, METASLAB_CLASS_DATA, start, nr_chunks << mg->g.chunk_shift, birth_txg);
	pthread_mutex_unlock(&mg->lock);
	return r;
}

/*----------------------------------------------------------------*/
/* txg sync */

static int sync_alloc_meta(struct tx *tx, u64 *blocknr)
{
	return alloc_meta_locked(tx->priv, blocknr, true);
}

static void sync_free_meta(struct tx *tx, u64 blocknr, u64 birth_txg)
{
	int r = free_locked(tx->priv, METASLAB_CLASS_META, blocknr, 1, birth_txg);

	VERIFY(r >= 0); /* the allocator's own blocks: a failure is our bug */
	if (r == 1)
		cache_forget(tx->cache, blocknr);
}

static const struct tx_ops sync_tx_ops = {
	.alloc_meta = sync_alloc_meta,
	.free_meta = sync_free_meta,
};

static int add_seg(void *arg, u64 start, u64 size)
{
	VERIFY(range_tree_add(arg, start, size) == 0);
	return 0;
}

/* Condenses @ms's space map if it is due and the reserve allows it. */
static int condense_if_due(struct metaslab_group *mg, struct metaslab *ms, struct tx *tx)
{
	struct range_tree *all_free = range_tree_create();
	int r = 0;

	range_tree_walk(ms->free, add_seg, all_free);
	range_tree_walk(ms->frees, add_seg, all_free);
	range_tree_walk(ms->defer, add_seg, all_free);
	if (space_map_should_condense(ms->sm, all_free) &&
	    meta_headroom(mg) > mg->reserve + space_map_condensed_recs(ms->sm, all_free) /
						      SPACE_MAP_RECS_PER_BLOCK) {
		/* The condensed log covers this txg's records: frees wait for durability. */
		range_tree_walk(ms->frees, add_seg, ms->defer);
		range_tree_clear(ms->frees);
		range_tree_clear(ms->allocs);
		r = space_map_condense(ms->sm, tx, all_free);
	}
	range_tree_destroy(all_free);
	return r;
}

/* Appends @ms's pending records; records its writing causes wait for the next pass. */
static int write_records(struct metaslab_group *mg, struct metaslab *ms, struct tx *tx)
{
	struct range_tree *a = ms->allocs, *f = ms->frees;
	int r;

	ms->allocs = mg->scratch_a;
	ms->frees = mg->scratch_f;
	mg->scratch_a = a;
	mg->scratch_f = f;
	r = space_map_append_tree(ms->sm, tx, SPACE_MAP_ALLOC, a);
	if (!r)
		r = space_map_append_tree(ms->sm, tx, SPACE_MAP_FREE, f);
	range_tree_walk(f, add_seg, ms->defer);
	range_tree_clear(a);
	range_tree_clear(f);
	return r;
}

/* Gives a table block a new address in this txg (its contents are filled at the end). */
static int cow_table_block(struct metaslab_group *mg, struct tx *tx, const struct blkptr *old,
			   struct cblock **born)
{
	u64 blocknr;
	int r = alloc_meta_locked(mg, &blocknr, true);

	if (r)
		return r;
	*born = cache_new(mg->cache, &metaslab_table_type, blocknr);
	if (old->blocknr)
		sync_free_meta(tx, old->blocknr, old->birth_txg);
	return 0;
}

static bool leaf_needs_block(struct metaslab_group *mg, u64 l)
{
	if (mg->leaf_born[l])
		return false;
	if (!mg->leaf[l].blocknr)
		return true;
	for (u64 i = l * METASLAB_TABLE_PER_LEAF;
	     i < MIN(mg->nr_ms, (l + 1) * METASLAB_TABLE_PER_LEAF); i++)
		if (mg->ms[i].dirty)
			return true;
	return false;
}

static int sync_passes(struct metaslab_group *mg, struct tx *tx)
{
	for (int pass = 0;; pass++) {
		bool progress = false;
		int r;

		VERIFY(pass < METASLAB_SYNC_MAX_PASSES);
		for (u64 i = 0; i < mg->nr_ms; i++) {
			struct metaslab *ms = &mg->ms[i];

			if (!range_tree_count(ms->allocs) && !range_tree_count(ms->frees))
				continue;
			r = write_records(mg, ms, tx);
			if (r)
				return r;
			progress = true;
		}
		for (u64 l = 0; l < mg->nr_leaves; l++) {
			if (!leaf_needs_block(mg, l))
				continue;
			r = cow_table_block(mg, tx, &mg->leaf[l], &mg->leaf_born[l]);
			if (r)
				return r;
			progress = true;
		}
		if (!mg->index_born) {
			r = cow_table_block(mg, tx, &mg->index, &mg->index_born);
			if (r)
				return r;
			progress = true;
		}
		if (!progress)
			return 0;
	}
}

static void table_header(struct metaslab_table_disk *d, u32 level, u32 nr, u64 first, u64 total)
{
	d->level = cpu_to_le32(level);
	d->nr = cpu_to_le32(nr);
	d->first = cpu_to_le64(first);
	d->nr_metaslabs = cpu_to_le64(total);
}

/* Seals the space maps, then the leaves that changed, then the index. */
static void seal_table(struct metaslab_group *mg, struct tx *tx)
{
	struct metaslab_table_disk *d;
	struct blkptr_disk *bp;

	for (u64 l = 0; l < mg->nr_leaves; l++) {
		u64 first = l * METASLAB_TABLE_PER_LEAF;
		u64 nr = MIN(METASLAB_TABLE_PER_LEAF, mg->nr_ms - first);
		struct metaslab_entry_disk *e;
		struct cblock *b = mg->leaf_born[l];

		if (!b)
			continue;
		d = b->data;
		e = (void *)d->payload;
		table_header(d, 0, (u32)nr, first, mg->nr_ms);
		for (u64 i = 0; i < nr; i++) {
			struct metaslab *ms = &mg->ms[first + i];
			struct space_map_phys phys;

			if (ms->dirty)
				space_map_seal(ms->sm, tx, &phys);
			else
				space_map_get_phys(ms->sm, &phys);
			space_map_phys_pack(&e[i].sm, &phys);
			e[i].class = cpu_to_le32(ms->cls);
			ms->dirty = false;
		}
		mg->leaf[l] = (struct blkptr){.blocknr = b->blocknr,
					      .birth_txg = tx->txg,
					      .csum = cache_seal(mg->cache, b, tx->txg)};
		cache_put(mg->cache, b);
		mg->leaf_born[l] = NULL;
	}
	d = mg->index_born->data;
	bp = (void *)d->payload;
	table_header(d, 1, (u32)mg->nr_leaves, 0, mg->nr_ms);
	for (u64 l = 0; l < mg->nr_leaves; l++)
		blkptr_pack(&bp[l], &mg->leaf[l]);
	mg->index = (struct blkptr){.blocknr = mg->index_born->blocknr,
				    .birth_txg = tx->txg,
				    .csum = cache_seal(mg->cache, mg->index_born, tx->txg)};
	cache_put(mg->cache, mg->index_born);
	mg->index_born = NULL;
}

int metaslab_sync(struct metaslab_group *mg, u64 txg)
{
	struct tx tx = {.txg = txg, .cache = mg->cache, .ops = &sync_tx_ops, .priv = mg};
	bool any;
	int r = 0;

	pthread_mutex_lock(&mg->lock);
	any = !mg->index.blocknr;
	VERIFY(txg == mg->open_txg && !mg->done_pending);
	if (mg->error) {
		/* A bad free through metaslab_tx_init's tx: this txg must not commit. */
		r = mg->error;
		goto out_unlock;
	}
	for (u64 i = 0; i < mg->nr_ms; i++) {
		struct metaslab *ms = &mg->ms[i];

		/* Never on disk, so no record; allocatable once this txg is durable. */
		range_tree_walk(ms->undone, add_seg, ms->defer);
		range_tree_clear(ms->undone);
		if (range_tree_count(ms->allocs) || range_tree_count(ms->frees))
			ms->dirty = true;
		any |= ms->dirty;
	}
	if (any) {
		for (u64 i = 0; i < mg->nr_ms && !r; i++)
			if (mg->ms[i].dirty)
				r = condense_if_due(mg, &mg->ms[i], &tx);
		if (!r)
			r = sync_passes(mg, &tx);
		if (!r)
			seal_table(mg, &tx);
	}
	mg->open_txg = txg + 1;
	mg->done_pending = true;
out_unlock:
	pthread_mutex_unlock(&mg->lock);
	return r;
}

void metaslab_sync_done(struct metaslab_group *mg, u64 txg)
{
	pthread_mutex_lock(&mg->lock);
	VERIFY(mg->done_pending && txg + 1 == mg->open_txg);
	for (u64 i = 0; i < mg->nr_ms; i++) {
		struct metaslab *ms = &mg->ms[i];
		u64 n = range_tree_space(ms->defer);

		range_tree_walk(ms->defer, add_seg, ms->free);
		range_tree_clear(ms->defer);
		mg->cnt[ms->cls].deferred -= n;
		mg->cnt[ms->cls].free += n;
		/* On a shared device an empty metaslab goes back to the pool (next txg's table). */
		if (mg->shared && ms->cls != METASLAB_CLASS_NONE &&
		    range_tree_space(ms->free) == ms->size) {
			if (mg->active[ms->cls] == ms)
				mg->active[ms->cls] = NULL;
			counters_add(mg, ms, -1);
			ms->cls = METASLAB_CLASS_NONE;
			counters_add(mg, ms, 1);
			ms->dirty = true;
		}
	}
	mg->done_pending = false;
	pthread_mutex_unlock(&mg->lock);
}

void metaslab_root_pack(const struct metaslab_group *mg, struct metaslab_root_disk *out)
{
	memset(out, 0, sizeof(*out));
	blkptr_pack(&out->table, &mg->index);
	out->data_start = cpu_to_le64(mg->g.data_start);
	out->data_blocks = cpu_to_le64(mg->g.data_blocks);
	out->meta_start = cpu_to_le64(mg->g.meta_start);
	out->meta_blocks = cpu_to_le64(mg->g.meta_blocks);
	out->ms_shift = cpu_to_le32(mg->g.ms_shift);
	out->chunk_shift = cpu_to_le32(mg->g.chunk_shift);
}

/*----------------------------------------------------------------*/
/* status and checking */

void metaslab_stats(const struct metaslab_group *mg, enum metaslab_class_disk cls,
		    struct metaslab_class_stats *out)
{
	struct metaslab_group *m = (struct metaslab_group *)mg; /* the lock is not const */
	const struct class_counters *c = &mg->cnt[cls];

	VERIFY((unsigned)cls <= METASLAB_CLASS_META);
	pthread_mutex_lock(&m->lock);
	out->total = c->total;
	out->free = c->free;
	out->deferred = c->deferred;
	out->allocated = c->total - c->free - c->deferred;
	out->metaslabs = c->metaslabs;
	pthread_mutex_unlock(&m->lock);
}

struct gap_walk {
	int (*fn)(void *arg, enum metaslab_class_disk cls, u64 start, u64 nblocks);
	void *arg;
	const struct metaslab *ms;
	u64 pos;
};

static int gap_seg(void *arg, u64 start, u64 size)
{
	struct gap_walk *g = arg;
	int r = 0;

	if (start > g->pos)
		r = g->fn(g->arg, g->ms->cls, g->ms->start + g->pos, start - g->pos);
	g->pos = start + size;
	return r;
}

int metaslab_walk_allocated(struct metaslab_group *mg,
			    int (*fn)(void *arg, enum metaslab_class_disk cls, u64 start,
				      u64 nblocks),
			    void *arg)
{
	struct range_tree *all_free = range_tree_create();
	int r = 0;

	pthread_mutex_lock(&mg->lock);
	for (u64 i = 0; i < mg->nr_ms && !r; i++) {
		struct metaslab *ms = &mg->ms[i];
		struct gap_walk g = {fn, arg, ms, 0};

		range_tree_clear(all_free);
		range_tree_walk(ms->free, add_seg, all_free);
		range_tree_walk(ms->frees, add_seg, all_free);
		range_tree_walk(ms->defer, add_seg, all_free);
		range_tree_walk(ms->undone, add_seg, all_free);
		r = range_tree_walk(all_free, gap_seg, &g);
		if (!r && g.pos < ms->size)
			r = fn(arg, ms->cls, ms->start + g.pos, ms->size - g.pos);
	}
	pthread_mutex_unlock(&mg->lock);
	range_tree_destroy(all_free);
	return r;
}

int metaslab_walk_own_blocks(struct metaslab_group *mg,
			     int (*fn)(void *arg, u64 blocknr, u64 birth_txg), void *arg)
{
	int r = 0;

	pthread_mutex_lock(&mg->lock);
	if (mg->index.blocknr)
		r = fn(arg, mg->index.blocknr, mg->index.birth_txg);
	for (u64 l = 0; l < mg->nr_leaves && !r; l++)
		if (mg->leaf[l].blocknr)
			r = fn(arg, mg->leaf[l].blocknr, mg->leaf[l].birth_txg);
	for (u64 i = 0; i < mg->nr_ms && !r; i++)
		r = space_map_walk_blocks(mg->ms[i].sm, fn, arg);
	pthread_mutex_unlock(&mg->lock);
	return r;
}

bool metaslab_is_allocated(struct metaslab_group *mg, enum metaslab_class_disk cls, u64 start,
			   u64 nblocks)
{
	struct metaslab *ms;
	bool ok = false;

	pthread_mutex_lock(&mg->lock);
	ms = ms_lookup(mg, cls, start, nblocks);
	if (ms && ms->cls == (u32)cls) {
		u64 rel = start - ms->start;

		ok = !range_tree_intersects(ms->free, rel, nblocks) &&
		     !range_tree_intersects(ms->frees, rel, nblocks) &&
		     !range_tree_intersects(ms->defer, rel, nblocks) &&
		     !range_tree_intersects(ms->undone, rel, nblocks);
	}
	pthread_mutex_unlock(&mg->lock);
	return ok;
}

/*----------------------------------------------------------------*/
/* a struct tx over the allocator */

static int tx_alloc(struct tx *tx, u64 *blocknr)
{
	return metaslab_alloc_meta(tx->priv, blocknr);
}

static void tx_free(struct tx *tx, u64 blocknr, u64 birth_txg)
{
	struct metaslab_group *mg = tx->priv;
	int r = metaslab_free_meta(mg, blocknr, birth_txg);

	if (r == 1) {
		cache_forget(tx->cache, blocknr);
	} else if (r < 0) {
		/* Corrupt metadata freed a block twice: fail the txg, never the process. */
		pthread_mutex_lock(&mg->lock);
		if (!mg->error) {
			mg->error = r;
			fprintf(stderr, "metaslab: free of metadata block %llu (born %llu): %s\n",
				(unsigned long long)blocknr, (unsigned long long)birth_txg,
				r == -EILSEQ ? "not allocated" : "outside the metadata class");
		}
		pthread_mutex_unlock(&mg->lock);
	}
}

static const struct tx_ops metaslab_tx_ops = {.alloc_meta = tx_alloc, .free_meta = tx_free};

void metaslab_tx_init(struct tx *tx, struct metaslab_group *mg, struct cache *cache, u64 txg)
{
	*tx = (struct tx){.txg = txg, .cache = cache, .ops = &metaslab_tx_ops, .priv = mg};
}
