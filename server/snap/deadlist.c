// SPDX-License-Identifier: GPL-2.0-only
/*
 * deadlist.c - birth-keyed sublists of dead exceptions, moved by reference.
 *
 * What: each deadlist is a sorted array of sublists { key, count, bytes, head, tail }; a
 * sublist is a singly linked chain of segments, each holding up to DEADLIST_SEG_ENTRIES
 * entries.  A sublist's first segment holds DL_SEG_MIN entries and each new one as many as
 * the sublist already has (up to DEADLIST_SEG_ENTRIES), so a small sublist costs about its
 * entries: with full segments from the start, 10,000 snapshots of 10 exceptions each held
 * 40 MB of empty segments (bench/open.sh), and their allocation was a fifth of the open.  Insertion appends to the tail segment.  Merging two sublists of the same key
 * links the source chain after the destination's tail, so the cost of a snapshot delete
 * (DESIGN.md 3) is in the number of sublists, never in the number of entries moved.  A
 * merged chain may hold partly filled segments; that wastes at most one segment per merge.
 *
 * Invariants: keys strictly increase along the array; every sublist has count >= 1 and
 * head/tail set (empty sublists are never kept); count and bytes equal the sums over the
 * chain; the deadlist totals equal the sums over its sublists.
 *
 * Locking: none; the snapshot engine holds its lock across every call.
 *
 * Crash argument: this module is memory only.  The engine persists what a deadlist means
 * (see engine.c); a deadlist object never outlives the process.
 */
#include "snap/deadlist.h"
#include <string.h>

/* Entries in a sublist's first segment. */
#define DL_SEG_MIN 4

struct dl_seg {
	struct dl_seg *next;
	u32 n, cap;
	struct deadlist_entry e[];
};

struct sublist {
	u64 key, count, bytes;
	struct dl_seg *head, *tail;
};

struct deadlist {
	struct sublist *subs;
	u32 nsubs, cap;
	u64 count, bytes;
};

struct deadlist *deadlist_create(void)
{
	return xzalloc(sizeof(struct deadlist));
}

static void chain_free(struct dl_seg *s)
{
	while (s) {
		struct dl_seg *next = s->next;

		free(s);
		s = next;
	}
}

void deadlist_destroy(struct deadlist *dl)
{
	if (!dl)
		return;
	for (u32 i = 0; i < dl->nsubs; i++)
		chain_free(dl->subs[i].head);
	free(dl->subs);
	free(dl);
}

/* Index of the first sublist with key >= @key (nsubs if none). */
static u32 dl_search(const struct deadlist *dl, u64 key)
{
	u32 lo = 0, hi = dl->nsubs;

	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;

		if (dl->subs[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The sublist @key, inserted empty (no segments yet) at its place if missing. */
static struct sublist *dl_get(struct deadlist *dl, u64 key)
{
	u32 i = dl_search(dl, key);

	if (i < dl->nsubs && dl->subs[i].key == key)
		return &dl->subs[i];
	if (dl->nsubs == dl->cap) {
		dl->cap = dl->cap ? 2 * dl->cap : 4;
		dl->subs = xrealloc(dl->subs, dl->cap * sizeof(*dl->subs));
	}
	memmove(&dl->subs[i + 1], &dl->subs[i], (dl->nsubs - i) * sizeof(*dl->subs));
	memset(&dl->subs[i], 0, sizeof(*dl->subs));
	dl->subs[i].key = key;
	dl->nsubs++;
	return &dl->subs[i];
}

void deadlist_insert(struct deadlist *dl, u64 key, u64 chunk, u64 death, u64 bytes)
{
	struct sublist *s = dl_get(dl, key);

	if (!s->tail || s->tail->n == s->tail->cap) {
		u32 cap = (u32)MIN(MAX(s->count, (u64)DL_SEG_MIN), (u64)DEADLIST_SEG_ENTRIES);
		struct dl_seg *seg = xmalloc(sizeof(*seg) + cap * sizeof(seg->e[0]));

		seg->next = NULL;
		seg->n = 0;
		seg->cap = cap;
		if (s->tail)
			s->tail->next = seg;
		else
			s->head = seg;
		s->tail = seg;
	}
	s->tail->e[s->tail->n++] = (struct deadlist_entry){.chunk = chunk, .death = death};
	s->count++;
	s->bytes += bytes;
	dl->count++;
	dl->bytes += bytes;
}

u64 deadlist_count(const struct deadlist *dl)
{
	return dl->count;
}

u64 deadlist_bytes(const struct deadlist *dl)
{
	return dl->bytes;
}

u32 deadlist_nsublists(const struct deadlist *dl)
{
	return dl->nsubs;
}

u64 deadlist_space_range(const struct deadlist *dl, u64 lo, u64 hi)
{
	u64 sum = 0;

	if (lo == UINT64_MAX)
		return 0;
	for (u32 i = dl_search(dl, lo + 1); i < dl->nsubs && dl->subs[i].key <= hi; i++)
		sum += dl->subs[i].bytes;
	return sum;
}

void deadlist_merge(struct deadlist *dst, struct deadlist *src)
{
	struct sublist *out;
	u32 i = 0, j = 0, n = 0;

	if (!src->nsubs)
		return;
	/* A sorted merge of the two key arrays into a fresh one: O(|dst| + |src|). */
	out = xmalloc((dst->nsubs + src->nsubs) * sizeof(*out));
	while (i < dst->nsubs || j < src->nsubs) {
		if (j == src->nsubs || (i < dst->nsubs && dst->subs[i].key < src->subs[j].key)) {
			out[n++] = dst->subs[i++];
		} else if (i == dst->nsubs || src->subs[j].key < dst->subs[i].key) {
			out[n++] = src->subs[j++];
		} else {
			struct sublist a = dst->subs[i++], b = src->subs[j++];

			a.tail->next = b.head;
			a.tail = b.tail;
			a.count += b.count;
			a.bytes += b.bytes;
			out[n++] = a;
		}
	}
	free(dst->subs);
	dst->subs = out;
	dst->nsubs = dst->cap = n;
	dst->count += src->count;
	dst->bytes += src->bytes;
	free(src->subs);
	src->subs = NULL;
	src->nsubs = src->cap = 0;
	src->count = src->bytes = 0;
}

struct deadlist *deadlist_split_above(struct deadlist *dl, u64 key)
{
	struct deadlist *out = deadlist_create();
	u32 i = key == UINT64_MAX ? dl->nsubs : dl_search(dl, key + 1);

	out->nsubs = out->cap = dl->nsubs - i;
	if (out->nsubs) {
		out->subs = xmalloc(out->nsubs * sizeof(*out->subs));
		memcpy(out->subs, &dl->subs[i], out->nsubs * sizeof(*out->subs));
	}
	for (u32 k = 0; k < out->nsubs; k++) {
		out->count += out->subs[k].count;
		out->bytes += out->subs[k].bytes;
	}
	dl->nsubs = i;
	dl->count -= out->count;
	dl->bytes -= out->bytes;
	return out;
}

int deadlist_walk(const struct deadlist *dl,
		  int (*fn)(void *arg, u64 key, const struct deadlist_entry *e), void *arg)
{
	struct deadlist_pos pos = {0};

	return deadlist_walk_from(dl, &pos, fn, arg);
}

int deadlist_walk_from(const struct deadlist *dl, struct deadlist_pos *pos,
		       int (*fn)(void *arg, u64 key, const struct deadlist_entry *e), void *arg)
{
	for (; pos->sub < dl->nsubs; pos->sub++, pos->seg = NULL, pos->k = 0) {
		const struct sublist *sl = &dl->subs[pos->sub];
		const struct dl_seg *s = pos->seg ? pos->seg : sl->head;

		for (; s; s = s->next, pos->k = 0) {
			pos->seg = s;
			while (pos->k < s->n) {
				int err = fn(arg, sl->key, &s->e[pos->k]);

				if (err < 0)
					return err;
				pos->k++;
				if (err)
					return err;
			}
		}
	}
	return 0;
}

u64 deadlist_skip(const struct deadlist *dl, struct deadlist_pos *pos, u64 n)
{
	u64 moved = 0;

	for (; pos->sub < dl->nsubs; pos->sub++, pos->seg = NULL, pos->k = 0) {
		const struct sublist *sl = &dl->subs[pos->sub];
		const struct dl_seg *s = pos->seg ? pos->seg : sl->head;

		if (!pos->seg && n - moved >= sl->count) {
			moved += sl->count; /* the whole sublist, by its count */
			continue;
		}
		for (; s; s = s->next, pos->k = 0) {
			u64 take = MIN((u64)(s->n - pos->k), n - moved);

			pos->seg = s;
			pos->k += (u32)take;
			moved += take;
			if (moved == n && pos->k < s->n)
				return moved;
		}
	}
	return moved;
}

void deadlist_sublist(const struct deadlist *dl, u32 i, u64 *key, u64 *count, u64 *bytes)
{
	VERIFY(i < dl->nsubs);
	*key = dl->subs[i].key;
	*count = dl->subs[i].count;
	*bytes = dl->subs[i].bytes;
}

int deadlist_verify(const struct deadlist *dl, char *why, size_t whylen)
{
	u64 total = 0, bytes = 0;

	for (u32 i = 0; i < dl->nsubs; i++) {
		const struct sublist *sl = &dl->subs[i];
		u64 n = 0;

		if (i && dl->subs[i - 1].key >= sl->key) {
			snprintf(why, whylen, "sublist keys out of order at %u", i);
			return -EILSEQ;
		}
		for (const struct dl_seg *s = sl->head; s; s = s->next) {
			n += s->n;
			if (!s->next && s != sl->tail) {
				snprintf(why, whylen, "sublist %llu: tail is not the chain's end",
					 (unsigned long long)sl->key);
				return -EILSEQ;
			}
		}
		if (!n || n != sl->count) {
			snprintf(why, whylen, "sublist %llu: %llu entries, count says %llu",
				 (unsigned long long)sl->key, (unsigned long long)n,
				 (unsigned long long)sl->count);
			return -EILSEQ;
		}
		total += sl->count;
		bytes += sl->bytes;
	}
	if (total != dl->count || bytes != dl->bytes) {
		snprintf(why, whylen, "deadlist totals %llu/%llu, sublists sum to %llu/%llu",
			 (unsigned long long)dl->count, (unsigned long long)dl->bytes,
			 (unsigned long long)total, (unsigned long long)bytes);
		return -EILSEQ;
	}
	return 0;
}
