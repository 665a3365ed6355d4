// SPDX-License-Identifier: GPL-2.0-only
/*
 * deadlist_disk.c - the persisted deadlists' two trees and the in-memory index of pieces.
 *
 * What: the piece table (UB_ROOT_DEADLISTS, (death, key, id) -> struct dl_piece_disk) and
 * the entry tree (UB_ROOT_DEADLIST_ENTRIES, (id, chunk, death), no value), both ordinary COW
 * B+trees, and a sorted array of every piece { death, key, id, count } loaded from the table
 * at open.  Entries are never held in memory: adding is an insert into the entry tree and a
 * count in the index, a batch's entries of one piece by one btree_insert_sorted (they are
 * ascending chunks at the piece's right edge: a descent per leaf filled, not per entry);
 * freeing a piece walks its key range once (calling the caller on each entry) and deletes it
 * by btree_delete_range (a descent per half leaf).  Counts reach the table once per txg
 * (dldisk_sync writes the rows of the pieces marked dirty), so a copy-out costs a share of
 * one tree insert, not a second insert.
 *
 * Invariants: the index is sorted by (death, key, id) and holds exactly the rows the table
 * will hold after the next sync: a piece with persisted set has a row (maybe with an older
 * count, then dirty is set); a piece without has none yet and is dirty.  Every piece has
 * count >= 1 and exactly count entries in the entry tree; ids are unique and below
 * next_piece, which only grows.  key < death for every piece.
 *
 * Locking: none; the owner serialises every call (header).
 *
 * Crash argument: nothing here writes outside the open txg: entries and rows change through
 * btree calls on @tx, and dldisk_sync hands the roots and next_piece to the caller, who puts
 * them in the same uberblock as the exception tree (doc/format.md, "Persisted deadlists").
 * A crash before that uberblock is durable leaves the previous one's trees, rows and counter,
 * consistent with each other because they were written in one txg: a row's count is the
 * number of its entries as of the same txg.  Ids handed out in a lost txg may be handed out
 * again: nothing durable names them.
 */
#include "snap/deadlist_disk.h"
#include "blk/format.h"
#include "util/log.h"
#include <stdlib.h>
#include <string.h>

const struct btree_type dldisk_piece_tree_type = {
	.name = "deadlists",
	.key_size = sizeof(struct dl_piece_key_disk),
	.value_size = sizeof(struct dl_piece_disk),
	.order = BTREE_KEY_LE64,
	.aggr = NULL,
};

const struct btree_type dldisk_entry_tree_type = {
	.name = "deadlist_entries",
	.key_size = sizeof(struct dl_entry_key_disk),
	.value_size = 0,
	.order = BTREE_KEY_LE64,
	.aggr = NULL,
};

struct dldisk {
	struct btree *pieces, *entries;
	u64 next_piece;
	struct dl_piece *p; /* sorted by (death, key, id) */
	u32 n, cap;
	u32 ndirty;
};

static void row_key(u8 *k, const struct dl_piece *p)
{
	btree_put_le64(k, 0, p->death);
	btree_put_le64(k, 1, p->key);
	btree_put_le64(k, 2, p->id);
}

static void entry_key(u8 *k, u64 id, u64 chunk, u64 death)
{
	btree_put_le64(k, 0, id);
	btree_put_le64(k, 1, chunk);
	btree_put_le64(k, 2, death);
}

/* (death, key, id) order of the index. */
static int piece_cmp(const struct dl_piece *p, u64 death, u64 key, u64 id)
{
	if (p->death != death)
		return p->death < death ? -1 : 1;
	if (p->key != key)
		return p->key < key ? -1 : 1;
	return p->id < id ? -1 : p->id > id;
}

/* Index of the first piece >= (death, key, id) (n if none).  O(log n). */
static u32 dl_search(const struct dldisk *d, u64 death, u64 key, u64 id)
{
	u32 lo = 0, hi = d->n;

	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;

		if (piece_cmp(&d->p[mid], death, key, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct dl_piece *dl_insert_at(struct dldisk *d, u32 i)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 16;
		d->p = xrealloc(d->p, d->cap * sizeof(*d->p));
	}
	memmove(&d->p[i + 1], &d->p[i], (d->n - i) * sizeof(*d->p));
	d->n++;
	memset(&d->p[i], 0, sizeof(d->p[i]));
	return &d->p[i];
}

static void dl_remove_at(struct dldisk *d, u32 i)
{
	if (d->p[i].dirty)
		d->ndirty--;
	memmove(&d->p[i], &d->p[i + 1], (d->n - i - 1) * sizeof(*d->p));
	d->n--;
}

static const char *row_bad(const struct dl_piece *p, const struct dl_piece_disk *v, u64 next)
{
	return !p->count		 ? "count 0"
	       : v->reserved		 ? "reserved field set"
	       : !p->id || p->id >= next ? "id 0 or not below next_piece"
	       : p->key >= p->death	 ? "key not below death"
					 : NULL;
}

static int load_rows(struct dldisk *d)
{
	struct btree_cursor c;
	int err;

	btree_cursor_init(&c, d->pieces);
	for (err = btree_cursor_seek(&c, NULL, BTREE_FIRST); !err; err = btree_cursor_next(&c)) {
		const void *k = btree_cursor_key(&c);
		struct dl_piece_disk v;
		struct dl_piece *p = dl_insert_at(d, d->n);
		const char *why;

		memcpy(&v, btree_cursor_value(&c), sizeof(v));
		p->death = btree_get_le64(k, 0);
		p->key = btree_get_le64(k, 1);
		p->id = btree_get_le64(k, 2);
		p->count = le64_to_cpu(v.count);
		p->persisted = true;
		why = row_bad(p, &v, d->next_piece);
		if (why) {
			log_err("deadlists: piece table leaf block %llu entry %d (death %llu, key "
				"%llu, piece %llu): %s",
				(unsigned long long)btree_cursor_blocknr(&c), c.idx,
				(unsigned long long)p->death, (unsigned long long)p->key,
				(unsigned long long)p->id, why);
			err = -EILSEQ;
			break;
		}
	}
	btree_cursor_fini(&c);
	if (err == -ENODATA)
		return 0;
	if (err != -EILSEQ)
		log_err("deadlists: piece table unreadable (%d)", err);
	return err;
}

int dldisk_open(struct cache *cache, const struct dldisk_roots *roots, struct dldisk **out)
{
	struct dldisk *d = xzalloc(sizeof(*d));
	int err;

	d->next_piece = roots->next_piece ? roots->next_piece : 1;
	err = btree_open(&dldisk_piece_tree_type, cache, &roots->pieces, &d->pieces);
	if (!err)
		err = btree_open(&dldisk_entry_tree_type, cache, &roots->entries, &d->entries);
	if (!err)
		err = load_rows(d);
	if (err) {
		dldisk_close(d);
		return err;
	}
	*out = d;
	return 0;
}

int dldisk_destroy(struct cache *cache, const struct dldisk_roots *roots, struct tx *tx)
{
	struct btree *t;
	int err;

	/* Not through dldisk_open: the rows of a stale table are not read, only freed. */
	err = btree_open(&dldisk_piece_tree_type, cache, &roots->pieces, &t);
	if (err)
		return err;
	err = btree_destroy(t, tx);
	btree_close(t);
	if (err)
		return err;
	err = btree_open(&dldisk_entry_tree_type, cache, &roots->entries, &t);
	if (err)
		return err;
	err = btree_destroy(t, tx);
	btree_close(t);
	return err;
}

void dldisk_close(struct dldisk *d)
{
	if (!d)
		return;
	if (d->pieces)
		btree_close(d->pieces);
	if (d->entries)
		btree_close(d->entries);
	free(d->p);
	free(d);
}

u32 dldisk_npieces(const struct dldisk *d)
{
	return d->n;
}

const struct dl_piece *dldisk_piece(const struct dldisk *d, u32 i)
{
	VERIFY(i < d->n);
	return &d->p[i];
}

u32 dldisk_first_after(const struct dldisk *d, u64 death)
{
	return death == UINT64_MAX ? d->n : dl_search(d, death + 1, 0, 0);
}

static void mark_dirty(struct dldisk *d, struct dl_piece *p)
{
	if (!p->dirty) {
		p->dirty = true;
		d->ndirty++;
	}
}

static int cmp_ent(const void *a, const void *b)
{
	const struct dldisk_ent *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->chunk < y->chunk ? -1 : x->chunk > y->chunk;
}

/* Entries btree_insert_sorted takes in one call (their keys built on the stack). */
#define ADD_SLICE 64

/*
 * Adds @ents[0..n) (one key, ascending chunks) to the newest piece (death @death, that
 * key), creating it on its first entry.  On error the entries before the failing one are
 * added, the index exact for them.
 */
static int add_run(struct dldisk *d, struct tx *tx, u64 death, const struct dldisk_ent *ents, u32 n)
{
	u64 key = ents[0].key;
	u32 i = dl_search(d, death, key, UINT64_MAX), at = 0;
	u8 k[ADD_SLICE][24];
	int err = 0;

	if (!i || d->p[i - 1].death != death || d->p[i - 1].key != key) {
		struct dl_piece *p = dl_insert_at(d, i++);

		p->death = death;
		p->key = key;
		p->id = d->next_piece;
	}
	while (!err && at < n) {
		struct dl_piece *p = &d->p[i - 1];
		u32 m = MIN(n - at, (u32)ADD_SLICE), done;

		for (u32 j = 0; j < m; j++)
			entry_key(k[j], p->id, ents[at + j].chunk, death);
		err = btree_insert_sorted(d->entries, tx, k, NULL, m, &done);
		if (done && p->id == d->next_piece)
			d->next_piece++;
		p->count += done;
		if (done)
			mark_dirty(d, p);
		at += done;
	}
	if (!d->p[i - 1].count)
		dl_remove_at(d, i - 1); /* created here, and nothing went in */
	return err;
}

int dldisk_add_many(struct dldisk *d, struct tx *tx, u64 death, struct dldisk_ent *ents, u32 n)
{
	bool sorted = true;

	for (u32 i = 0; i < n; i++)
		if (ents[i].key >= death)
			return -EINVAL;
	for (u32 i = 1; i < n && sorted; i++)
		sorted = cmp_ent(&ents[i - 1], &ents[i]) < 0;
	if (!sorted)
		qsort(ents, n, sizeof(*ents), cmp_ent);
	for (u32 i = 0, j; i < n; i = j) {
		int err;

		for (j = i + 1; j < n && ents[j].key == ents[i].key;)
			j++;
		err = add_run(d, tx, death, ents + i, j - i);
		if (err)
			return err;
	}
	return 0;
}

int dldisk_add(struct dldisk *d, struct tx *tx, u64 death, u64 key, u64 chunk)
{
	struct dldisk_ent e = {key, chunk};

	return dldisk_add_many(d, tx, death, &e, 1);
}

u64 dldisk_count(const struct dldisk *d, u64 dlo, u64 dhi, u64 klo, u64 khi)
{
	u64 sum = 0;

	for (u32 i = dldisk_first_after(d, dlo); i < d->n && d->p[i].death <= dhi; i++)
		if (d->p[i].key >= klo && d->p[i].key <= khi)
			sum += d->p[i].count;
	return sum;
}

/*
 * Frees piece @i's entries (calling @fn on each first) and its row; drops it from the index.
 * @fn runs in one cursor pass (it changes other trees, not this one, so the cursor never
 * re-seeks), then the piece's key range goes in one btree_delete_range: a descent per half
 * leaf, not per entry.
 */
static int free_piece(struct dldisk *d, struct tx *tx, u32 i,
		      int (*fn)(void *arg, u64 chunk, u64 death), void *arg, u64 *freed)
{
	struct dl_piece *p = &d->p[i];
	struct btree_cursor c;
	u8 k[24], hi[24];
	u64 gone = 0;
	int err = 0;

	entry_key(k, p->id, 0, 0);
	entry_key(hi, p->id, UINT64_MAX, UINT64_MAX);
	if (fn) {
		btree_cursor_init(&c, d->entries);
		for (err = btree_cursor_seek(&c, k, BTREE_GE); !err; err = btree_cursor_next(&c)) {
			const void *ck = btree_cursor_key(&c);

			if (btree_get_le64(ck, 0) != p->id)
				break;
			err = fn(arg, btree_get_le64(ck, 1), btree_get_le64(ck, 2));
			if (err)
				break;
		}
		btree_cursor_fini(&c);
		if (err && err != -ENODATA)
			return err;
	}
	err = btree_delete_range(d->entries, tx, k, hi, &gone);
	if (freed)
		*freed += gone;
	if (err) {
		p->count -= MIN(gone, p->count); /* the index stays exact for what is left */
		return err;
	}
	if (gone != p->count) {
		log_err("deadlists: piece %llu (death %llu, key %llu) had %llu entries, its count "
			"says %llu",
			(unsigned long long)p->id, (unsigned long long)p->death,
			(unsigned long long)p->key, (unsigned long long)gone,
			(unsigned long long)p->count);
		return -EILSEQ;
	}
	if (p->persisted) {
		row_key(k, p);
		err = btree_delete(d->pieces, tx, k, NULL);
		if (err)
			return err;
	}
	dl_remove_at(d, i);
	return 0;
}

int dldisk_free(struct dldisk *d, struct tx *tx, u64 dlo, u64 dhi, u64 kmin,
		int (*fn)(void *arg, u64 chunk, u64 death), void *arg, u64 *freed)
{
	u32 i = dldisk_first_after(d, dlo);

	while (i < d->n && d->p[i].death <= dhi) {
		int err;

		if (d->p[i].key <= kmin) {
			i++;
			continue;
		}
		err = free_piece(d, tx, i, fn, arg, freed);
		if (err)
			return err;
	}
	return 0;
}

static int cmp_by_id(const void *a, const void *b, void *arg)
{
	const struct dldisk *d = arg;
	u64 x = d->p[*(const u32 *)a].id, y = d->p[*(const u32 *)b].id;

	return x < y ? -1 : x > y;
}

int dldisk_walk(struct dldisk *d, struct iopool *pool,
		int (*fn)(void *arg, const struct dl_piece *p, u64 chunk, u64 death), void *arg)
{
	u32 *byid = xmalloc((d->n + 1) * sizeof(*byid)), j = 0;
	u64 *seen = xzalloc((d->n + 1) * sizeof(*seen));
	struct btree_cursor c;
	int err;

	/* One pass over the entry tree in its order (piece id, chunk, death), read ahead; each
	 * entry's piece found by id in the index's ids, sorted. */
	for (u32 i = 0; i < d->n; i++)
		byid[i] = i;
	qsort_r(byid, d->n, sizeof(*byid), cmp_by_id, d);
	btree_cursor_init(&c, d->entries);
	btree_cursor_readahead(&c, pool);
	for (err = btree_cursor_seek(&c, NULL, BTREE_FIRST); !err; err = btree_cursor_next(&c)) {
		const void *ck = btree_cursor_key(&c);
		u64 id = btree_get_le64(ck, 0);

		while (j < d->n && d->p[byid[j]].id < id)
			j++;
		if (j == d->n || d->p[byid[j]].id != id) {
			log_err("deadlists: the entry tree holds entries of piece %llu, which has "
				"no "
				"row",
				(unsigned long long)id);
			err = -EILSEQ;
			break;
		}
		seen[j]++;
		err = fn(arg, &d->p[byid[j]], btree_get_le64(ck, 1), btree_get_le64(ck, 2));
		if (err)
			break;
	}
	btree_cursor_fini(&c);
	if (err == -ENODATA)
		err = 0;
	for (j = 0; !err && j < d->n; j++)
		if (seen[j] != d->p[byid[j]].count) {
			log_err("deadlists: piece %llu has %llu entries, its count says %llu",
				(unsigned long long)d->p[byid[j]].id, (unsigned long long)seen[j],
				(unsigned long long)d->p[byid[j]].count);
			err = -EILSEQ;
		}
	free(byid);
	free(seen);
	return err;
}

int dldisk_verify(struct dldisk *d, btree_block_fn fn, void *arg, char *why, size_t whylen)
{
	int err = btree_verify(d->pieces, fn, arg, NULL, why, whylen);

	return err ? err : btree_verify(d->entries, fn, arg, NULL, why, whylen);
}

int dldisk_sync(struct dldisk *d, struct tx *tx, struct dldisk_roots *out)
{
	int err = 0;

	for (u32 i = 0; i < d->n && d->ndirty; i++) {
		struct dl_piece *p = &d->p[i];
		struct dl_piece_disk v;
		u8 k[24];

		if (!p->dirty)
			continue;
		memset(&v, 0, sizeof(v));
		v.count = cpu_to_le64(p->count);
		row_key(k, p);
		err = btree_insert(d->pieces, tx, k, &v, BTREE_OVERWRITE);
		if (err)
			return err;
		p->dirty = false;
		p->persisted = true;
		d->ndirty--;
	}
	err = btree_sync(d->pieces, tx);
	if (!err)
		err = btree_sync(d->entries, tx);
	if (err)
		return err;
	btree_root(d->pieces, &out->pieces);
	btree_root(d->entries, &out->entries);
	out->next_piece = d->next_piece;
	return 0;
}
