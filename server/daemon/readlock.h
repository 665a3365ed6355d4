/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * readlock.h - the server's read locks: the snapshot read race of DESIGN.md 5.
 *
 * A snapshot device that is told "read chunk L from the origin" must not see a newer version
 * of L written there while its read is in flight.  So the server takes a read lock on L
 * BEFORE it looks up the snapshot's mapping, keeps it when the answer is "origin" (the lock
 * id goes to the kernel, which sends FINISH after the read completed) and drops it otherwise.
 * An origin write that copied L out waits, before it is released to the kernel, until no read
 * lock on L remains.
 *
 * Why this order is enough: if the writer's copy-out came first, the reader's lookup finds
 * the new exception and reads the snapstore; if the reader's lookup came first, its lock was
 * already held when the writer looks, so the writer waits.  A write that needs no copy-out
 * cannot conflict: no live snapshot reads that chunk from the origin (copy-out rule).
 *
 * Locks belong to a connection; when it closes, all its locks are released (the kernel
 * re-issues reads that were in flight on a later connection).  A lock is never dropped
 * for being old: that would reopen the race.  readlock_overdue() finds the ones held
 * unusually long, so that the server can say which connection holds up origin writes.
 *
 * Locking: one mutex and condition variable inside; all functions are thread-safe.
 * readlock_wait() blocks; the rest never block beyond the mutex.
 * Memory: a hash of held locks, O(1) per operation on average.
 */
#ifndef DDSNAP_READLOCK_H
#define DDSNAP_READLOCK_H

#include "util/base.h"

struct readlock_table;

struct readlock_table *readlock_create(void);
void readlock_destroy(struct readlock_table *t);

/* Takes a read lock on @chunk for connection @conn. Returns its id (never 0). */
u64 readlock_acquire(struct readlock_table *t, u64 conn, u64 chunk);

/* Releases lock @id of @conn.  Returns 0, or -ENODATA if @conn holds no such lock. */
int readlock_release(struct readlock_table *t, u64 conn, u64 id);

/* Releases every lock of @conn. Returns how many. O(locks held). */
unsigned readlock_release_conn(struct readlock_table *t, u64 conn);

/*
 * Waits until no lock is held on any chunk in [chunk, chunk + count).  Returns 0, or
 * -ETIMEDOUT after @timeout_ms (0 = forever).  Blocks.
 */
int readlock_wait(struct readlock_table *t, u64 chunk, u64 count, unsigned timeout_ms);

/* Locks currently held (for status). */
u64 readlock_count(struct readlock_table *t);

/* One connection's locks that readlock_overdue() found held too long. */
struct readlock_overdue {
	u64 conn;	/* the connection holding them */
	u64 chunk;	/* the oldest one's chunk */
	u64 age_ms;	/* the oldest one's age */
	unsigned count; /* its locks newly over the age */
};

/*
 * Locks held longer than @age_ms that no earlier call reported, one entry per connection:
 * fills up to @cap entries and returns how many.  Each lock is reported once; those of
 * connections beyond @cap wait for the next call.  Releases nothing.  O(locks + buckets).
 */
unsigned readlock_overdue(struct readlock_table *t, u64 age_ms, struct readlock_overdue *out,
			  unsigned cap);

#endif
