// SPDX-License-Identifier: GPL-2.0-only
/*
 * readlock.c - read locks on origin chunks, see readlock.h for the protocol.
 *
 * Two hashes share one array of entries: by lock id (to release) and by chunk (to wait).
 * Entries are chained per bucket; a release unlinks from both and broadcasts the condition
 * variable only when the last lock on that chunk goes, which is when a writer can proceed.
 * Writers recheck after every wakeup, so spurious and unrelated wakeups are harmless.
 *
 * Nothing here is persistent: after a server crash no read can be in flight through the old
 * connections, because the kernel resends its requests on the new one.
 */
#include "daemon/readlock.h"
#include <pthread.h>
#include <time.h>

#define READLOCK_BUCKETS 4096 /* power of two; thousands of reads in flight stay short-chained */
static_assert((READLOCK_BUCKETS & (READLOCK_BUCKETS - 1)) == 0, "bucket() masks");

struct readlock {
	u64 id, conn, chunk;
	u64 since_ms;  /* CLOCK_MONOTONIC when taken */
	bool reported; /* readlock_overdue() named it already */
	struct readlock *next_id, *next_chunk;
};

struct readlock_table {
	pthread_mutex_t lock;
	pthread_cond_t released;
	u64 next_id;
	u64 count;
	struct readlock *by_id[READLOCK_BUCKETS];
	struct readlock *by_chunk[READLOCK_BUCKETS];
};

static u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000 + (u64)ts.tv_nsec / 1000000;
}

static unsigned bucket(u64 v)
{
	v ^= v >> 33;
	v *= 0xff51afd7ed558ccdull;
	v ^= v >> 33;
	return (unsigned)(v & (READLOCK_BUCKETS - 1));
}

struct readlock_table *readlock_create(void)
{
	struct readlock_table *t = xzalloc(sizeof(*t));
	pthread_condattr_t attr;

	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&t->released, &attr);
	pthread_condattr_destroy(&attr);
	t->next_id = 1;
	return t;
}

void readlock_destroy(struct readlock_table *t)
{
	if (!t)
		return;
	for (unsigned b = 0; b < READLOCK_BUCKETS; b++)
		for (struct readlock *l = t->by_id[b], *next; l; l = next) {
			next = l->next_id;
			free(l);
		}
	pthread_cond_destroy(&t->released);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

u64 readlock_acquire(struct readlock_table *t, u64 conn, u64 chunk)
{
	struct readlock *l = xmalloc(sizeof(*l));
	unsigned bi, bc;

	pthread_mutex_lock(&t->lock);
	l->id = t->next_id++;
	l->conn = conn;
	l->chunk = chunk;
	l->since_ms = now_ms();
	l->reported = false;
	bi = bucket(l->id);
	bc = bucket(chunk);
	l->next_id = t->by_id[bi];
	t->by_id[bi] = l;
	l->next_chunk = t->by_chunk[bc];
	t->by_chunk[bc] = l;
	t->count++;
	pthread_mutex_unlock(&t->lock);
	return l->id;
}

static bool chunk_locked(struct readlock_table *t, u64 chunk)
{
	for (struct readlock *l = t->by_chunk[bucket(chunk)]; l; l = l->next_chunk)
		if (l->chunk == chunk)
			return true;
	return false;
}

/* Unlinks @l (found through its id chain at *@pid) from both chains; mutex held. */
static void unlink_locked(struct readlock_table *t, struct readlock **pid, struct readlock *l)
{
	struct readlock **pc = &t->by_chunk[bucket(l->chunk)];

	*pid = l->next_id;
	while (*pc != l)
		pc = &(*pc)->next_chunk;
	*pc = l->next_chunk;
	t->count--;
	if (!chunk_locked(t, l->chunk))
		pthread_cond_broadcast(&t->released);
	free(l);
}

int readlock_release(struct readlock_table *t, u64 conn, u64 id)
{
	int r = -ENODATA;

	pthread_mutex_lock(&t->lock);
	for (struct readlock **p = &t->by_id[bucket(id)]; *p; p = &(*p)->next_id)
		if ((*p)->id == id && (*p)->conn == conn) {
			unlink_locked(t, p, *p);
			r = 0;
			break;
		}
	pthread_mutex_unlock(&t->lock);
	return r;
}

unsigned readlock_release_conn(struct readlock_table *t, u64 conn)
{
	unsigned n = 0;

	pthread_mutex_lock(&t->lock);
	for (unsigned b = 0; b < READLOCK_BUCKETS; b++) {
		struct readlock **p = &t->by_id[b];

		while (*p) {
			if ((*p)->conn == conn) {
				unlink_locked(t, p, *p);
				n++;
			} else {
				p = &(*p)->next_id;
			}
		}
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

static bool range_locked(struct readlock_table *t, u64 chunk, u64 count)
{
	/* Few locks are held at once: scan them when that is cheaper than probing each chunk. */
	if (count > t->count) {
		for (unsigned b = 0; b < READLOCK_BUCKETS; b++)
			for (struct readlock *l = t->by_id[b]; l; l = l->next_id)
				if (l->chunk >= chunk && l->chunk - chunk < count)
					return true;
		return false;
	}
	for (u64 i = 0; i < count; i++)
		if (chunk_locked(t, chunk + i))
			return true;
	return false;
}

int readlock_wait(struct readlock_table *t, u64 chunk, u64 count, unsigned timeout_ms)
{
	struct timespec deadline;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&t->lock);
	while (t->count && range_locked(t, chunk, count)) {
		if (!timeout_ms) {
			pthread_cond_wait(&t->released, &t->lock);
		} else if (pthread_cond_timedwait(&t->released, &t->lock, &deadline) == ETIMEDOUT) {
			r = range_locked(t, chunk, count) ? -ETIMEDOUT : 0;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

u64 readlock_count(struct readlock_table *t)
{
	return READ_LOCKED(&t->lock, t->count);
}

unsigned readlock_overdue(struct readlock_table *t, u64 age_ms, struct readlock_overdue *out,
			  unsigned cap)
{
	u64 now = now_ms();
	unsigned n = 0;

	pthread_mutex_lock(&t->lock);
	for (unsigned b = 0; b < READLOCK_BUCKETS && t->count; b++)
		for (struct readlock *l = t->by_id[b]; l; l = l->next_id) {
			u64 age = now - l->since_ms;
			unsigned i = 0;

			if (l->reported || age < age_ms)
				continue;
			while (i < n && out[i].conn != l->conn)
				i++;
			if (i == n) {
				if (n == cap)
					continue; /* the next call reports it */
				out[n++] = (struct readlock_overdue){.conn = l->conn};
			}
			l->reported = true;
			out[i].count++;
			if (age > out[i].age_ms) {
				out[i].age_ms = age;
				out[i].chunk = l->chunk;
			}
		}
	pthread_mutex_unlock(&t->lock);
	return n;
}
