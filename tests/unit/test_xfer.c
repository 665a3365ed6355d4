// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_xfer.c - the rate limit keeps an absolute schedule (bytes / limit after the burst)
 * and costs nothing when off; the progress line stays silent when stderr is not a
 * terminal.  (Size parsing moved to cmdutil: test_cmdutil.c.)
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>
#include "util/xfer.h"

static void test_xfer__rate_limit_schedule(void **state)
{
	struct xfer_rate r;
	struct timespec t0;
	double t;

	/* 3 MiB at 8 MiB/s: the first MiB is burst, the rest takes 0.25 s */
	xfer_rate_init(&r, 8 << 20);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 48; i++)
		xfer_rate_account(&r, 64 << 10);
	t = xfer_elapsed(&t0);
	assert_true(t >= 0.24);
	assert_true(t < 2.0);
	/* off: no sleeping at all */
	xfer_rate_init(&r, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1000; i++)
		xfer_rate_account(&r, 1 << 20);
	assert_true(xfer_elapsed(&t0) < 0.1);
}

static void test_xfer__progress_silent_without_tty(void **state)
{
	struct xfer_progress p;

	xfer_progress_init(&p, "test", 100, false);
	if (!p.enabled) {
		xfer_progress_update(&p, 50);
		xfer_progress_done(&p);
	}
	xfer_progress_init(&p, "test", 100, true);
	assert_true(p.enabled);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xfer__rate_limit_schedule),
		cmocka_unit_test(test_xfer__progress_silent_without_tty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
