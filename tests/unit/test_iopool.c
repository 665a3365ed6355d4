// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_iopool.c - the fork-join job threads: every job runs exactly once per batch, workers
 * stay within the width and run at once (the caller among them), the lowest failed job's
 * error is returned while the others still run, and a pool of no threads runs jobs in the
 * caller in order.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "util/iopool.h"

#define JOBS 200

struct batch {
	unsigned width;
	int ran[JOBS];
	unsigned worker_of[JOBS];
	int running, peak;
	u32 order[JOBS], norder;
};

static int job(void *arg, unsigned worker, u32 j)
{
	struct batch *b = arg;
	int now = __atomic_add_fetch(&b->running, 1, __ATOMIC_SEQ_CST);
	int peak = __atomic_load_n(&b->peak, __ATOMIC_SEQ_CST);

	while (now > peak && !__atomic_compare_exchange_n(&b->peak, &peak, now, false,
							  __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
	__atomic_add_fetch(&b->ran[j], 1, __ATOMIC_SEQ_CST);
	b->worker_of[j] = worker;
	b->order[__atomic_fetch_add(&b->norder, 1, __ATOMIC_SEQ_CST)] = j;
	usleep(200);
	__atomic_sub_fetch(&b->running, 1, __ATOMIC_SEQ_CST);
	/* Jobs 17 and 150 fail: 17's error must win. */
	return j == 17 ? -EIO : j == 150 ? -ENOSPC : 0;
}

static void run_batches(unsigned threads)
{
	struct iopool *p = iopool_create(threads);

	for (int round = 0; round < 3; round++) {
		struct batch b = {.width = iopool_width(p)};

		assert_int_equal(iopool_run(p, job, &b, JOBS), -EIO);
		for (u32 j = 0; j < JOBS; j++) {
			assert_int_equal(b.ran[j], 1);
			assert_true(b.worker_of[j] < b.width);
		}
		if (threads > 1)
			assert_true(b.peak > 1); /* jobs overlapped */
		assert_true(b.peak <= (int)b.width);
		if (threads) {
			/* The caller works too, as the last index. */
			bool caller = false;

			for (u32 j = 0; j < JOBS; j++)
				caller |= b.worker_of[j] == b.width - 1;
			assert_true(caller);
		}
		if (!threads)
			for (u32 j = 0; j < JOBS; j++)
				assert_int_equal(b.order[j], j);
		/* An empty batch and a batch of one. */
		assert_int_equal(iopool_run(p, job, &b, 0), 0);
		memset(&b, 0, sizeof(b));
		assert_int_equal(iopool_run(p, job, &b, 1), 0);
		assert_int_equal(b.ran[0], 1);
	}
	iopool_destroy(p);
}

static void test_iopool__threads(void **state)
{
	run_batches(8);
}

static void test_iopool__no_threads_runs_in_caller(void **state)
{
	run_batches(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iopool__threads),
		cmocka_unit_test(test_iopool__no_threads_runs_in_caller),
	};

	return cmocka_run_group_tests_name("iopool", tests, NULL, NULL);
}
