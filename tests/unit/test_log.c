// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_log.c - log lines are timestamped, levelled, filtered, truncated with a marker, and
 * whole when several threads log at once.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>
#include "util/log.h"

static char path[] = "/tmp/ddsnap-test-log-XXXXXX";

static char *slurp(void)
{
	FILE *f = fopen(path, "r");
	char *buf = xzalloc(1 << 20);
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static int setup(void **state)
{
	int fd = mkstemp(path);

	if (fd < 0)
		return -1;
	close(fd);
	return log_open(path);
}

static int teardown(void **state)
{
	log_open(NULL);
	unlink(path);
	return 0;
}

static void test_log__format_and_levels(void **state)
{
	char *s;

	log_set_level(LOGL_INFO);
	log_info("store opened: %d records replayed", 42);
	log_debug("not shown");
	log_err("bad block %u", 7u);
	s = slurp();
	assert_non_null(strstr(s, "Z info: store opened: 42 records replayed\n"));
	assert_non_null(strstr(s, "Z error: bad block 7\n"));
	assert_null(strstr(s, "not shown"));
	assert_true(s[4] == '-' && s[10] == 'T'); /* 2026-11-21T... */
	free(s);
}

static void test_log__long_line_truncated(void **state)
{
	char big[3000];
	char *s, *line;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	log_warn("%s", big);
	s = slurp();
	line = strstr(s, "warning: ");
	assert_non_null(line);
	assert_non_null(strstr(line, "...\n"));
	assert_true(strchr(line, '\n') - line < 1024);
	free(s);
}

static void *logger(void *arg)
{
	for (int i = 0; i < 200; i++)
		log_info("thread %ld line %d %s", (long)(intptr_t)arg, i,
			 "payload-payload-payload");
	return NULL;
}

static void test_log__threads_do_not_interleave(void **state)
{
	pthread_t t[4];
	char *s, *p;
	int lines = 0;

	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, logger, (void *)(intptr_t)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	s = slurp();
	for (p = strtok(s, "\n"); p; p = strtok(NULL, "\n")) {
		if (!strstr(p, " thread "))
			continue;
		lines++;
		assert_non_null(strstr(p, "payload-payload-payload"));
		assert_int_equal(strlen(strstr(p, "payload")), strlen("payload-payload-payload"));
	}
	assert_int_equal(lines, 800);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log__format_and_levels),
		cmocka_unit_test(test_log__long_line_truncated),
		cmocka_unit_test(test_log__threads_do_not_interleave),
	};

	return cmocka_run_group_tests_name("log", tests, setup, teardown);
}
