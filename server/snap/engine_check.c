// SPDX-License-Identifier: GPL-2.0-only
/*
 * engine_check.c - engine_check() and engine_check_offline(): verify the invariants listed
 * in engine.c's essay (the trees' own structure, every exception visible to a live snapshot
 * and named once by its owner's deadlist, overlay counts, each data chunk used once), and
 * engine_overlay_roots() for the store's walkers; engine_exception_stats().
 *
 * The checker reads and never writes: engine_check_offline opens the engine read-only on a
 * cache of the synced trees.  It holds O(exceptions) memory (every data address, every
 * deadlist entry, each sorted) so that each tree is read a bounded number of times
 * whatever the number of snapshots.  Problems are counted and the first is described in @why; an
 * I/O or corruption error while reading stops the check and is returned.
 *
 * Locking.  None: the caller serialises calls on the engine (engine.h).
 *
 * Crash argument.  Nothing here changes state, so there is nothing to recover.
 */
#include "snap/engine_internal.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int engine_overlay_roots(struct cache *cache, const struct blkptr *snapshots,
			 int (*fn)(void *arg, u32 tag, const struct blkptr *root), void *arg)
{
	struct btree_cursor c;
	struct btree *t;
	int err = btree_open(&engine_snapshot_table_type, cache, snapshots, &t);

	if (err)
		return err;
	btree_cursor_init(&c, t);
	for (err = btree_cursor_seek(&c, NULL, BTREE_FIRST); !err; err = btree_cursor_next(&c)) {
		u64 tag = btree_get_le64(btree_cursor_key(&c), 0);
		struct snap_record_disk r;
		struct snap s;

		memcpy(&r, btree_cursor_value(&c), sizeof(r));
		if (tag >= ENGINE_HEAD || record_unpack(&s, &r)) {
			err = -EILSEQ;
			break;
		}
		if (s.overlay_root.blocknr) {
			err = fn(arg, (u32)tag, &s.overlay_root);
			if (err)
				break;
		}
	}
	btree_cursor_fini(&c);
	btree_close(t);
	return err == -ENODATA ? 0 : err;
}

int engine_check_offline(struct cache *cache, const struct engine_roots *roots, u32 chunk_size,
			 u64 origin_chunks, bool persisted, const struct engine_check_ops *ops,
			 struct engine_check_report *r, char *why, size_t whylen)
{
	struct engine_params p = {
		.chunk_size = chunk_size,
		.origin_chunks = origin_chunks,
		.cache = cache,
		.read_only = true,
		.progress = true, /* `ddsnap check` on a terminal */
		.copy_threads = ENGINE_CHECK_READAHEAD_THREADS,
		.persist_deadlists = persisted,
	};
	struct engine *e;
	int err = engine_open(&p, roots, &e);

	memset(r, 0, sizeof(*r));
	if (err) {
		snprintf(why, whylen, "cannot open the engine's trees (%d)", err);
		return err;
	}
	err = engine_check(e, ops, r, why, whylen);
	engine_close(e);
	return err;
}

int engine_exception_stats(struct engine *e, struct btree_stats *out)
{
	return btree_stats(e->exc, out);
}

/* A deadlist entry as check gathers it: its exception's key, and its sublist key. */
struct check_entry {
	u64 chunk, death, key;
};

struct check_ctx {
	struct engine *e;
	struct engine_check_report *r;
	char *why;
	size_t whylen;
	u64 *addrs;
	u64 naddrs, cap;
	u64 *owner_count;	 /* per live index, plus the head at [nlive] */
	struct check_entry *dle; /* every deadlist's entries, sorted by (chunk, death) */
	u64 ndle, dle_cap, dli;	 /* dli: the next one the exception walk expects */
};

__printf(2, 3) static void problem(struct check_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->r->problems++) {
		va_start(ap, fmt);
		vsnprintf(c->why, c->whylen, fmt, ap);
		va_end(ap);
	}
}

static void check_addr(struct check_ctx *c, u64 addr)
{
	if (c->naddrs == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 1024;
		c->addrs = xrealloc(c->addrs, c->cap * sizeof(*c->addrs));
	}
	c->addrs[c->naddrs++] = addr;
}

static int dle_cmp(const struct check_entry *a, u64 chunk, u64 death)
{
	return a->chunk != chunk   ? (a->chunk < chunk ? -1 : 1)
	       : a->death != death ? (a->death < death ? -1 : 1)
				   : 0;
}

static int cmp_dle(const void *a, const void *b)
{
	const struct check_entry *y = b;

	return dle_cmp(a, y->chunk, y->death);
}

static int check_exception(void *arg, const void *key, const void *value)
{
	struct check_ctx *c = arg;
	struct engine *e = c->e;
	u64 chunk = btree_get_le64(key, 0), death = btree_get_le64(key, 1);
	u64 birth = btree_get_le64(value, 0), addr = btree_get_le64(value, 1);
	u32 i;

	c->r->exceptions++;
	if (chunk >= e->p.origin_chunks || birth >= death || death > e->gen)
		problem(c, "exception (%llu, %llu) birth %llu out of range",
			(unsigned long long)chunk, (unsigned long long)death,
			(unsigned long long)birth);
	i = live_first_ge(e, birth);
	if (i == e->nlive || e->live[i]->gen >= death)
		problem(c, "exception (%llu, %llu) born %llu is visible to no live snapshot",
			(unsigned long long)chunk, (unsigned long long)death,
			(unsigned long long)birth);
	c->owner_count[live_first_ge(e, death)]++;
	check_addr(c, addr);
	/* The walk is in (chunk, death) order, like the sorted deadlist entries: merge them. */
	while (c->dli < c->ndle && dle_cmp(&c->dle[c->dli], chunk, death) < 0) {
		problem(c, "deadlist entry (%llu, %llu) names no exception",
			(unsigned long long)c->dle[c->dli].chunk,
			(unsigned long long)c->dle[c->dli].death);
		c->dli++;
	}
	if (c->dli == c->ndle || dle_cmp(&c->dle[c->dli], chunk, death)) {
		problem(c, "exception (%llu, %llu) is on no deadlist", (unsigned long long)chunk,
			(unsigned long long)death);
		return 0;
	}
	/* A persisted key: in the live interval of the birth, as the delete rule needs (the
	 * rebuilt ones are computed from the birth). */
	if (e->dld && i < e->nlive && e->live[i]->gen < death &&
	    live_first_ge(e, c->dle[c->dli].key) != i)
		problem(c, "persisted deadlist entry (%llu, %llu) born %llu under key %llu",
			(unsigned long long)chunk, (unsigned long long)death,
			(unsigned long long)birth, (unsigned long long)c->dle[c->dli].key);
	if (++c->dli < c->ndle && !dle_cmp(&c->dle[c->dli], chunk, death))
		problem(c, "exception (%llu, %llu) is on two deadlists", (unsigned long long)chunk,
			(unsigned long long)death);
	return 0;
}

static int check_overlay_entry(void *arg, const void *key, const void *value)
{
	struct check_ctx *c = arg;

	c->r->overlay_chunks++;
	check_addr(c, btree_get_le64(value, 0));
	return 0;
}

/*
 * Every entry of a deadlist must be owned by that deadlist; the entries are gathered and
 * sorted here, and the exception walk (check_exception) matches them one to one.  A point
 * lookup per entry instead cost a tree read per entry once the tree outgrew the cache
 * (28 s for `ddsnap check` of 10^6 exceptions over 10 snapshots, BENCHMARKS.md).
 */
struct dlcheck {
	struct check_ctx *c;
	u32 owner;
};

static void push_entry(struct check_ctx *c, u64 chunk, u64 death, u64 key)
{
	if (c->ndle == c->dle_cap) {
		c->dle_cap = c->dle_cap ? 2 * c->dle_cap : 1024;
		c->dle = xrealloc(c->dle, c->dle_cap * sizeof(*c->dle));
	}
	c->dle[c->ndle++] = (struct check_entry){.chunk = chunk, .death = death, .key = key};
}

static int collect_dl_entry(void *arg, u64 key, const struct deadlist_entry *ent)
{
	struct dlcheck *d = arg;
	struct check_ctx *c = d->c;

	if (live_first_ge(c->e, ent->death) != d->owner)
		problem(c, "deadlist entry (%llu, %llu) on the wrong deadlist",
			(unsigned long long)ent->chunk, (unsigned long long)ent->death);
	push_entry(c, ent->chunk, ent->death, key);
	return 0;
}

static int check_deadlist(struct check_ctx *c, struct deadlist *dl, u32 owner)
{
	struct dlcheck d = {.c = c, .owner = owner};
	char why[160];

	if (deadlist_verify(dl, why, sizeof(why)))
		problem(c, "deadlist of %s %u: %s", owner < c->e->nlive ? "snapshot" : "head",
			owner < c->e->nlive ? c->e->live[owner]->tag : 0, why);
	return deadlist_walk(dl, collect_dl_entry, &d);
}

/* After the exception walk: each deadlist holds as many entries as it owns exceptions. */
static void check_dl_counts(struct check_ctx *c)
{
	for (u32 owner = 0; owner <= c->e->nlive; owner++) {
		struct deadlist *dl = owner < c->e->nlive ? c->e->live[owner]->dl : c->e->head_dl;

		if (deadlist_count(dl) != c->owner_count[owner])
			problem(c, "deadlist of %s %u holds %llu entries, the tree has %llu",
				owner < c->e->nlive ? "snapshot" : "head",
				owner < c->e->nlive ? c->e->live[owner]->tag : 0,
				(unsigned long long)deadlist_count(dl),
				(unsigned long long)c->owner_count[owner]);
	}
}

/* Every provenance record: well formed, of a snapshot in the table (live or invalidated). */
static int check_prov_entry(void *arg, const void *key, const void *value)
{
	struct check_ctx *c = arg;
	u64 tag = btree_get_le64(key, 0);
	struct provenance_disk d;

	memcpy(&d, value, sizeof(d));
	c->r->provenance++;
	if (!le64_to_cpu(d.gen) || d.reserved)
		problem(c, "provenance record of snapshot %llu is malformed (gen %llu)",
			(unsigned long long)tag, (unsigned long long)le64_to_cpu(d.gen));
	if (tag >= ENGINE_HEAD || !snap_find(c->e, (u32)tag))
		problem(c, "provenance record of snapshot %llu, which does not exist",
			(unsigned long long)tag);
	return 0;
}

/*
 * The persisted deadlists (params.persist_deadlists): both trees verified, every piece's
 * count equal to its entries, each entry of the owner its piece's death says; the entries
 * are gathered (with their piece's key) for the exception walk, which matches them one to
 * one and checks each key against the exception's birth (check_exception).  Sorted and
 * merged, not looked up: a lookup per entry cost a tree read per entry once the tree
 * outgrew the cache (`ddsnap check` of 10^6 exceptions, 10 snapshots: 16.8 s, BENCHMARKS.md).
 */
static int check_meta_block(void *arg, u64 blocknr, u64 birth_txg, unsigned level)
{
	const struct engine_check_ops *ops = arg;

	return ops->meta(ops->arg, blocknr, birth_txg);
}

static int verify_tree(struct btree *t, const struct engine_check_ops *ops, char *why,
		       size_t whylen)
{
	bool meta = ops && ops->meta;

	return btree_verify(t, meta ? check_meta_block : NULL, meta ? (void *)ops : NULL, NULL, why,
			    whylen);
}

static int collect_persisted(void *arg, const struct dl_piece *p, u64 chunk, u64 death)
{
	struct check_ctx *c = arg;

	if (death > p->death || live_first_ge(c->e, death) != live_first_ge(c->e, p->death))
		problem(c,
			"persisted deadlist entry (%llu, %llu) in piece %llu of death %llu: "
			"another owner",
			(unsigned long long)chunk, (unsigned long long)death,
			(unsigned long long)p->id, (unsigned long long)p->death);
	push_entry(c, chunk, death, p->key);
	return 0;
}

static int collect_persisted_all(struct check_ctx *c, const struct engine_check_ops *ops)
{
	bool meta = ops && ops->meta;
	char vwhy[256] = ""; /* not c->why: it may hold the first problem already */
	int err = dldisk_verify(c->e->dld, meta ? check_meta_block : NULL,
				meta ? (void *)ops : NULL, vwhy, sizeof(vwhy));

	if (err) {
		if (c->whylen)
			snprintf(c->why, c->whylen, "persisted deadlists: %s", vwhy);
		return err;
	}
	err = dldisk_walk(c->e->dld, c->e->copiers, collect_persisted, c);
	if (err == -EILSEQ) {
		problem(c, "persisted deadlists: a piece's count is not its entries");
		err = 0;
	}
	return err;
}

int engine_check(struct engine *e, const struct engine_check_ops *ops,
		 struct engine_check_report *r, char *why, size_t whylen)
{
	struct check_ctx c = {.e = e, .r = r, .why = why, .whylen = whylen};
	struct btree_walk w = {.entry = check_exception, .arg = &c};
	struct btree_walk ow = {.entry = check_overlay_entry, .arg = &c};
	struct btree_walk pw = {.entry = check_prov_entry, .arg = &c};
	int err;

	memset(r, 0, sizeof(*r));
	if (whylen)
		why[0] = 0;
	r->live = e->nlive;
	r->invalidated = e->ninvalid;
	c.owner_count = xzalloc((e->nlive + 1) * sizeof(u64));
	err = verify_tree(e->exc, ops, why, whylen);
	if (!err)
		err = verify_tree(e->table, ops, why, whylen);
	for (u32 i = 0; !err && !e->dld && i < e->nlive; i++)
		err = check_deadlist(&c, e->live[i]->dl, i);
	if (!err && !e->dld)
		err = check_deadlist(&c, e->head_dl, e->nlive);
	if (!err && e->dld)
		err = collect_persisted_all(&c, ops);
	if (!err && c.ndle > 1)
		qsort(c.dle, c.ndle, sizeof(*c.dle), cmp_dle);
	if (!err)
		err = verify_tree(e->provt, ops, why, whylen);
	if (!err)
		err = btree_walk(e->provt, &pw);
	if (!err)
		err = btree_walk(e->exc, &w);
	for (; !err && c.dli < c.ndle; c.dli++)
		problem(&c, "deadlist entry (%llu, %llu) names no exception",
			(unsigned long long)c.dle[c.dli].chunk,
			(unsigned long long)c.dle[c.dli].death);
	if (!err && !e->dld)
		check_dl_counts(&c);
	for (u32 i = 1; !err && i < e->nlive; i++)
		if (e->live[i - 1]->gen >= e->live[i]->gen)
			problem(&c, "live snapshots out of gen order");
	if (!err && e->nlive && newest_gen(e) >= e->gen)
		problem(&c, "snapshot gen %llu not below the gen counter %llu",
			(unsigned long long)newest_gen(e), (unsigned long long)e->gen);
	for (u32 i = 0; !err && i < e->nlive; i++) {
		struct snap *s = e->live[i];
		u64 before = r->overlay_chunks;

		if (s->overlay_chunks || s->overlay || s->overlay_root.blocknr) {
			struct btree *ov;

			err = snap_overlay(e, s, &ov);
			if (!err)
				err = verify_tree(ov, ops, why, whylen);
			if (!err)
				err = btree_walk(ov, &ow);
			if (!err && r->overlay_chunks - before != s->overlay_chunks)
				problem(&c,
					"snapshot %u overlay holds %llu chunks, record says %llu",
					s->tag, (unsigned long long)(r->overlay_chunks - before),
					(unsigned long long)s->overlay_chunks);
		}
	}
	if (!err) {
		if (c.naddrs > 1)
			qsort(c.addrs, c.naddrs, sizeof(*c.addrs), cmp_u64);
		for (u64 i = 0; i < c.naddrs; i++) {
			if (i && c.addrs[i] == c.addrs[i - 1])
				problem(&c, "data chunk %llu used twice",
					(unsigned long long)c.addrs[i]);
			if (ops && ops->data && !err)
				err = ops->data(ops->arg, c.addrs[i], 1);
		}
		r->data_chunks = c.naddrs;
	}
	free(c.addrs);
	free(c.dle);
	free(c.owner_count);
	if (err)
		return err;
	return r->problems ? -EILSEQ : 0;
}
