/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * deadlist.h - deadlists split into birth-keyed sublists (DESIGN.md 3; ZFS dsl_deadlist).
 *
 * A deadlist names exceptions, (chunk, death) pairs, that died while its owner (a snapshot
 * or the live head) was the newest; the exceptions themselves live in the exception tree.
 * Entries are grouped into sublists keyed by a gen boundary chosen by the caller at insertion
 * (the gen of the oldest live snapshot whose gen >= the exception's birth).  Each sublist
 * keeps its entry count and bytes, so the space questions of the snapshot engine ("what would
 * deleting S free", "what was written since the previous snapshot") are sums over sublists,
 * and whole sublists move from one deadlist to another by reference.
 *
 * Storage: a sublist is a chain of segments of at most DEADLIST_SEG_ENTRIES entries, small
 * ones first (deadlist.c), so memory is about 16 bytes per entry however few each has; moving or
 * merging sublists relinks chains and never touches entries.  Keys within a deadlist are
 * unique and kept sorted in a small array (one slot per sublist).
 *
 * Locking: none inside; the owner (the snapshot engine) serialises all calls on a deadlist.
 * Nothing here blocks or does I/O.  Allocation failure aborts (xmalloc).
 */
#ifndef DDSNAP_DEADLIST_H
#define DDSNAP_DEADLIST_H

#include "util/base.h"

/*
 * Entries per segment: a segment is sized like one metadata block of entries (16 bytes each
 * after a 32-byte header and a next pointer), so a persisted sublist is a chain of blocks.
 */
#define DEADLIST_SEG_ENTRIES 252

struct deadlist;

struct deadlist_entry {
	u64 chunk;
	u64 death;
};

/* An empty deadlist.  Never fails.  O(1). */
struct deadlist *deadlist_create(void);
/* Frees the deadlist and its entries (not the exceptions they name).  NULL ok. O(entries). */
void deadlist_destroy(struct deadlist *dl);

/*
 * Appends (chunk, death) of @bytes to the sublist @key, creating that sublist if needed.
 * O(log #sublists), plus O(#sublists) when a new sublist is created.
 */
void deadlist_insert(struct deadlist *dl, u64 key, u64 chunk, u64 death, u64 bytes);

/* Totals over all sublists.  O(1). */
u64 deadlist_count(const struct deadlist *dl);
u64 deadlist_bytes(const struct deadlist *dl);
u32 deadlist_nsublists(const struct deadlist *dl);

/* Sum of bytes of the sublists whose key lies in (@lo, @hi].  O(log #sublists + k). */
u64 deadlist_space_range(const struct deadlist *dl, u64 lo, u64 hi);

/*
 * Moves every sublist of @src into @dst: onto the sublist with the same key (chains are
 * linked, entries are not touched) or as a new sublist.  @src is left empty.
 * O(#sublists of @src + #sublists of @dst).
 */
void deadlist_merge(struct deadlist *dst, struct deadlist *src);

/*
 * Detaches the sublists of @dl with key > @key and returns them as a new deadlist (the
 * caller frees their exceptions and then the deadlist).  O(#sublists).
 */
struct deadlist *deadlist_split_above(struct deadlist *dl, u64 key);

/*
 * Calls @fn(arg, key, entry) for every entry, sublists in key order, entries in insertion
 * order.  Stops at and returns the first non-zero return of @fn.  @fn must not change @dl.
 * O(entries).
 */
int deadlist_walk(const struct deadlist *dl,
		  int (*fn)(void *arg, u64 key, const struct deadlist_entry *e), void *arg);

/*
 * A place in deadlist_walk's order, so a long walk can be done in parts (the upgrade's
 * bounded txgs): before entry @k of segment @seg of sublist @sub.  All zero: the start.  Valid
 * while the deadlist does not change.
 */
struct deadlist_pos {
	u32 sub;
	const void *seg; /* NULL: the sublist's first segment */
	u32 k;
};

/*
 * deadlist_walk from @pos on: @fn returning > 0 stops the walk after its entry (@pos then
 * past it), < 0 stops it at its entry (@pos at it); either is returned.  0: the end was
 * reached (@pos there).  O(entries walked).
 */
int deadlist_walk_from(const struct deadlist *dl, struct deadlist_pos *pos,
		       int (*fn)(void *arg, u64 key, const struct deadlist_entry *e), void *arg);

/*
 * Moves @pos forward by @n entries, or to the end; returns how many it moved.  O(sublists +
 * segments passed), never per entry.
 */
u64 deadlist_skip(const struct deadlist *dl, struct deadlist_pos *pos, u64 n);

/* The @i-th sublist in key order (i < nsublists): its key, entry count and bytes.  O(1). */
void deadlist_sublist(const struct deadlist *dl, u32 i, u64 *key, u64 *count, u64 *bytes);

/*
 * Recounts every sublist from its segments and compares with the kept totals and key order.
 * Returns 0 or -EILSEQ with the reason in @why.  O(entries).  For check.
 */
int deadlist_verify(const struct deadlist *dl, char *why, size_t whylen);

#endif
