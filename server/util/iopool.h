/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * iopool.h - a fixed set of threads that run one batch of independent jobs at a time and
 * wait for all of them (fork-join): the engine's copy-outs of a batch of scattered chunks,
 * which would otherwise go to the disks one after another.
 *
 * Jobs get the index of the thread running them (the caller of iopool_run() runs jobs too,
 * as the last index), so callers keep per-worker buffers.  One batch at a time: the caller
 * serializes iopool_run() itself (the engine holds the volume lock).  A pool of 0 threads is
 * valid and runs every job in the caller, in order.
 */
#ifndef DDSNAP_IOPOOL_H
#define DDSNAP_IOPOOL_H

#include "util/base.h"

struct iopool;

/* One job: returns 0 or a negative errno.  @worker is in [0, iopool_width()). */
typedef int (*iopool_fn)(void *arg, unsigned worker, u32 job);

/* Starts @threads threads (0: none).  Aborts on failure to start them, like xmalloc. */
struct iopool *iopool_create(unsigned threads);
/* Stops and joins the threads.  No batch may be running.  NULL is ignored. */
void iopool_destroy(struct iopool *p);
/* How many distinct worker indexes jobs may see: threads + 1 (the caller). */
unsigned iopool_width(const struct iopool *p);

/*
 * Runs @fn(@arg, worker, j) for every j in [0, @n), at most width at once (waking no more
 * threads than there are jobs beyond one for the caller), and returns when all have: 0, or
 * the result of the lowest-numbered job that failed.  Every job runs even when one fails
 * (each may own resources the caller cleans up by index).  Blocks.
 */
int iopool_run(struct iopool *p, iopool_fn fn, void *arg, u32 n);

#endif
