// SPDX-License-Identifier: GPL-2.0-only
/*
 * iopool.c - fork-join job threads (iopool.h).
 *
 * Design.  A batch is published under the pool mutex as (fn, arg, n); the caller and the
 * threads claim job indexes from a shared counter until none are left, and the last one to
 * finish wakes the caller.  Claiming under the mutex costs one lock round trip per job,
 * negligible beside the disk I/O each job does (a 16 KiB .. 1 MiB copy).  The caller works
 * too, as worker index nthreads, and only min(n - 1, nthreads) threads are woken, since each
 * wakeup is a context switch: a batch of two chunks wakes one thread, not all eight.
 *
 * Invariants.  At most one batch is published at a time (callers serialize); a thread runs
 * jobs only of the current batch; done == n exactly when every job has returned.
 *
 * Locking.  One mutex; two condition variables: work (threads wait for a batch or stop),
 * done (the caller waits for the batch to finish).
 *
 * Crash argument.  No persistent state.
 */
#include "util/iopool.h"
#include <pthread.h>

struct iopool {
	pthread_mutex_t lock;
	pthread_cond_t work, done_cv;
	pthread_t *threads;
	unsigned nthreads;
	bool stop;
	/* The current batch, under lock. */
	iopool_fn fn;
	void *arg;
	u32 n, next, done;
	u32 err_job; /* lowest failed job, or n */
	int err;
};

struct iopool_thread {
	struct iopool *p;
	unsigned index;
};

/* Under p->lock: claims one job of the current batch and runs it as @worker. */
static void run_one(struct iopool *p, unsigned worker)
{
	u32 j = p->next++;
	iopool_fn fn = p->fn;
	void *arg = p->arg;
	int r;

	pthread_mutex_unlock(&p->lock);
	r = fn(arg, worker, j);
	pthread_mutex_lock(&p->lock);
	if (r && j < p->err_job) {
		p->err_job = j;
		p->err = r;
	}
	if (++p->done == p->n)
		pthread_cond_signal(&p->done_cv);
}

static void *iopool_main(void *a)
{
	struct iopool_thread t = *(struct iopool_thread *)a;
	struct iopool *p = t.p;

	free(a);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && p->next >= p->n)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		run_one(p, t.index);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct iopool *iopool_create(unsigned threads)
{
	struct iopool *p = xzalloc(sizeof(*p));

	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	p->threads = xzalloc((threads ? threads : 1) * sizeof(*p->threads));
	for (unsigned i = 0; i < threads; i++) {
		struct iopool_thread *t = xmalloc(sizeof(*t));

		*t = (struct iopool_thread){p, i};
		VERIFY(thread_start(&p->threads[i], iopool_main, t, false) == 0);
		p->nthreads++;
	}
	return p;
}

void iopool_destroy(struct iopool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->done_cv);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

unsigned iopool_width(const struct iopool *p)
{
	return p->nthreads + 1;
}

int iopool_run(struct iopool *p, iopool_fn fn, void *arg, u32 n)
{
	int err = 0;

	if (!n)
		return 0;
	if (!p->nthreads || n == 1) {
		/* Nothing to overlap: run in the caller (no thread is busy). */
		for (u32 j = 0; j < n; j++) {
			int r = fn(arg, p->nthreads, j);

			if (r && !err)
				err = r;
		}
		return err;
	}
	pthread_mutex_lock(&p->lock);
	p->fn = fn;
	p->arg = arg;
	p->next = 0;
	p->done = 0;
	p->err_job = n;
	p->err = 0;
	p->n = n; /* published last: threads test next < n */
	for (u32 k = 0; k < n - 1 && k < p->nthreads; k++)
		pthread_cond_signal(&p->work);
	while (p->next < n)
		run_one(p, p->nthreads);
	while (p->done < n)
		pthread_cond_wait(&p->done_cv, &p->lock);
	err = p->err;
	p->n = 0;
	pthread_mutex_unlock(&p->lock);
	return err;
}
