// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_readlock.c - read locks: ownership, per-connection release, writers waiting for
 * exactly the chunks they write, timeouts, and a random cross-check against a list model.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>
#include "daemon/readlock.h"

static void test_readlock__ownership(void **state)
{
	struct readlock_table *t = readlock_create();
	u64 a = readlock_acquire(t, 1, 100), b = readlock_acquire(t, 2, 100);

	assert_true(a && b && a != b);
	assert_int_equal(readlock_release(t, 2, a), -ENODATA); /* not conn 2's lock */
	assert_int_equal(readlock_release(t, 1, a), 0);
	assert_int_equal(readlock_release(t, 1, a), -ENODATA); /* released twice */
	assert_int_equal(readlock_count(t), 1);
	assert_int_equal(readlock_wait(t, 100, 1, 10), -ETIMEDOUT); /* b still holds 100 */
	assert_int_equal(readlock_wait(t, 101, 5, 10), 0);
	assert_int_equal(readlock_wait(t, 0, 100, 10), 0); /* [0, 100) excludes 100 */
	assert_int_equal(readlock_release_conn(t, 2), 1);
	assert_int_equal(readlock_wait(t, 100, 1, 10), 0);
	readlock_destroy(t);
}

struct waiter {
	struct readlock_table *t;
	u64 chunk, count;
	volatile int done;
	int result;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->result = readlock_wait(w->t, w->chunk, w->count, 0);
	w->done = 1;
	return NULL;
}

static void test_readlock__writer_waits_for_reader(void **state)
{
	struct readlock_table *t = readlock_create();
	u64 l1 = readlock_acquire(t, 7, 50), l2 = readlock_acquire(t, 8, 52);
	struct waiter w = {.t = t, .chunk = 48, .count = 8};
	pthread_t th;

	pthread_create(&th, NULL, wait_thread, &w);
	usleep(20000);
	assert_false(w.done);
	assert_int_equal(readlock_release(t, 7, l1), 0);
	usleep(20000);
	assert_false(w.done); /* 52 is still locked */
	assert_int_equal(readlock_release_conn(t, 8), 1);
	pthread_join(th, NULL);
	assert_true(w.done);
	assert_int_equal(w.result, 0);
	(void)l2;
	readlock_destroy(t);
}

static void test_readlock__random_against_model(void **state)
{
	enum { N = 400 };
	struct {
		u64 id, conn, chunk;
		bool held;
	} model[N];
	struct readlock_table *t = readlock_create();
	unsigned seed = 12345, n = 0;

	printf("seed %u\n", seed);
	srandom(seed);
	for (int step = 0; step < 20000; step++) {
		int op = (int)(random() % 10);

		if (op < 4 && n < N) {
			model[n].conn = (u64)random() % 4;
			model[n].chunk = (u64)random() % 64;
			model[n].id = readlock_acquire(t, model[n].conn, model[n].chunk);
			model[n].held = true;
			n++;
		} else if (op < 7 && n) {
			unsigned i = (unsigned)random() % n;
			int want = model[i].held ? 0 : -ENODATA;

			assert_int_equal(readlock_release(t, model[i].conn, model[i].id), want);
			model[i].held = false;
		} else if (op < 8) {
			u64 conn = (u64)random() % 4;
			unsigned want = 0;

			for (unsigned i = 0; i < n; i++)
				if (model[i].held && model[i].conn == conn) {
					model[i].held = false;
					want++;
				}
			assert_int_equal(readlock_release_conn(t, conn), want);
		} else {
			u64 chunk = (u64)random() % 64, count = 1 + (u64)random() % 8;
			bool locked = false;

			for (unsigned i = 0; i < n; i++)
				if (model[i].held && model[i].chunk >= chunk &&
				    model[i].chunk < chunk + count)
					locked = true;
			assert_int_equal(readlock_wait(t, chunk, count, 1),
					 locked ? -ETIMEDOUT : 0);
		}
		if (n == N) { /* recycle released slots */
			unsigned k = 0;

			for (unsigned i = 0; i < n; i++)
				if (model[i].held)
					model[k++] = model[i];
			n = k;
		}
	}
	readlock_destroy(t);
}

/* Locks held too long are reported once each, grouped by connection, and never released. */
static void test_readlock__overdue_reported_once(void **state)
{
	struct readlock_table *t = readlock_create();
	struct readlock_overdue o[2];
	u64 a = readlock_acquire(t, 1, 10);

	readlock_acquire(t, 1, 11);
	readlock_acquire(t, 2, 12);
	assert_int_equal(readlock_overdue(t, 60000, o, 2), 0); /* none that old */
	usleep(20000);
	/* Room for one connection: the other's locks wait for the next call. */
	assert_int_equal(readlock_overdue(t, 10, o, 1), 1);
	assert_true(o[0].conn == 1 || o[0].conn == 2);
	assert_int_equal(o[0].count, o[0].conn == 1 ? 2 : 1);
	assert_true(o[0].age_ms >= 10);
	assert_int_equal(readlock_overdue(t, 10, o + 1, 1), 1);
	assert_int_not_equal(o[1].conn, o[0].conn);
	assert_int_equal(readlock_overdue(t, 10, o, 2), 0); /* each reported once */
	assert_int_equal(readlock_count(t), 3);		    /* and none released */
	readlock_release(t, 1, a);
	readlock_acquire(t, 1, 13);
	usleep(20000);
	assert_int_equal(readlock_overdue(t, 10, o, 2), 1); /* only the new one */
	assert_int_equal(o[0].conn, 1);
	assert_int_equal(o[0].count, 1);
	assert_int_equal(o[0].chunk, 13);
	readlock_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readlock__ownership),
		cmocka_unit_test(test_readlock__overdue_reported_once),
		cmocka_unit_test(test_readlock__writer_waits_for_reader),
		cmocka_unit_test(test_readlock__random_against_model),
	};

	return cmocka_run_group_tests_name("readlock", tests, NULL, NULL);
}
