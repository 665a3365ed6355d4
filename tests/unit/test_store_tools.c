// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_store_tools.c - `ddsnap initialize`, `check` and `dump` on plain files: usage errors,
 * chunk size validation, refusing to overwrite a store without -y, a separate metadata
 * device, a damaged label found by check, and the dump's fixed lines.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>
#include "commands.h"
#include "blk/bdev.h"
#include "store/label.h"

struct files {
	char snap[64], origin[64], meta[64], out[64];
};

/* Runs a subcommand on a NULL-terminated argument vector; returns its exit code. */
static int run_argv(int (*fn)(int, char **), char **args)
{
	char *argv[16];
	int argc = 0;

	while (argc < 15 && args[argc]) {
		argv[argc] = args[argc];
		argc++;
	}
	argv[argc] = NULL;
	return fn(argc, argv);
}

#define RUN(fn, ...) run_argv(fn, (char *[]){__VA_ARGS__, NULL})

static void mkfile(char *path, const char *tmpl, off_t size)
{
	int fd;

	strcpy(path, tmpl);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

static int setup(void **state)
{
	struct files *f = calloc(1, sizeof(*f));

	mkfile(f->snap, "/tmp/tst_snap.XXXXXX", 32 << 20);
	mkfile(f->origin, "/tmp/tst_orig.XXXXXX", 16 << 20);
	mkfile(f->meta, "/tmp/tst_meta.XXXXXX", 4 << 20);
	mkfile(f->out, "/tmp/tst_out.XXXXXX", 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct files *f = *state;

	unlink(f->snap);
	unlink(f->origin);
	unlink(f->meta);
	unlink(f->out);
	free(f);
	return 0;
}

/* Runs @fn with stdout going to f->out; returns its exit code. */
static int run_captured(struct files *f, int (*fn)(int, char **), char *a0, char *a1, char *a2)
{
	int saved = dup(STDOUT_FILENO), fd, r;

	fflush(stdout);
	fd = open(f->out, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	r = run_argv(fn, (char *[]){a0, a1, a2, NULL});
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	return r;
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, (1 << 20) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void test_tools__initialize_usage(void **state)
{
	struct files *f = *state;

	assert_int_equal(RUN(cmd_initialize, "initialize"), EXIT_USAGE);
	assert_int_equal(RUN(cmd_initialize, "initialize", f->snap), EXIT_USAGE);
	assert_int_equal(RUN(cmd_initialize, "initialize", "-x", f->snap, f->origin), EXIT_USAGE);
	assert_int_equal(RUN(cmd_initialize, "initialize", "-c", "3k", f->snap, f->origin),
			 EXIT_USAGE);
	assert_int_equal(RUN(cmd_initialize, "initialize", "-c", "2m", f->snap, f->origin),
			 EXIT_USAGE);
	assert_int_equal(RUN(cmd_initialize, "initialize", "-c", "2k", f->snap, f->origin),
			 EXIT_USAGE);
	assert_int_equal(RUN(cmd_initialize, "initialize", "-c", "junk", f->snap, f->origin),
			 EXIT_USAGE);
	assert_int_equal(RUN(cmd_initialize, "initialize", f->snap, f->snap), EXIT_USAGE);
	assert_int_equal(RUN(cmd_initialize, "initialize", f->snap, f->origin, f->snap),
			 EXIT_USAGE);
	assert_int_equal(RUN(cmd_initialize, "initialize", "/nonexistent/x", f->origin), EXIT_FAIL);
}

static void test_tools__initialize_refuses_overwrite(void **state)
{
	struct files *f = *state;
	struct bdev *b;
	struct label l;

	assert_int_equal(RUN(cmd_initialize, "initialize", f->snap, f->origin), EXIT_OK);
	assert_int_equal(bdev_open(f->snap, BDEV_RDONLY, &b), 0);
	assert_int_equal(label_read(b, -1, &l, NULL, 0), 0);
	assert_int_equal(l.chunk_shift, 14); /* 16 KiB default */
	assert_int_equal(l.origin_bytes, 16 << 20);
	bdev_close(b);
	assert_int_equal(RUN(cmd_initialize, "initialize", f->snap, f->origin), EXIT_FAIL);
	assert_int_equal(RUN(cmd_initialize, "initialize", "-y", "-c", "64K", f->snap, f->origin),
			 EXIT_OK);
	assert_int_equal(bdev_open(f->snap, BDEV_RDONLY, &b), 0);
	assert_int_equal(label_read(b, -1, &l, NULL, 0), 0);
	assert_int_equal(l.chunk_shift, 16);
	bdev_close(b);
	assert_int_equal(run_captured(f, cmd_check, "check", f->snap, NULL), EXIT_OK);
}

static void test_tools__metadev(void **state)
{
	struct files *f = *state;
	char *out;

	assert_int_equal(RUN(cmd_initialize, "initialize", "-y", f->snap, f->origin, f->meta),
			 EXIT_OK);
	/* A store with a metadata device is refused over, on either device, without -y. */
	assert_int_equal(RUN(cmd_initialize, "initialize", f->snap, f->origin, f->meta), EXIT_FAIL);
	assert_int_equal(run_captured(f, cmd_check, "check", f->snap, NULL), EXIT_FAIL);
	assert_int_equal(run_captured(f, cmd_check, "check", f->snap, f->meta), EXIT_OK);
	out = slurp(f->out);
	assert_non_null(strstr(out, "check: clean"));
	free(out);
	assert_int_equal(run_captured(f, cmd_dump, "dump", f->snap, f->meta), EXIT_OK);
	out = slurp(f->out);
	{
		static const char head[] = "ddsnap-dump version=1\nlabel device=snapstore ";

		assert_true(!strncmp(out, head, strlen(head)));
	}
	assert_non_null(strstr(out, "\nlabel device=metadev "));
	assert_non_null(strstr(out, "\nuberblock slot=1 txg=1 newest "));
	assert_non_null(strstr(out, "\nscalar gen=0\n"));
	assert_non_null(
		strstr(out, "\nroot exceptions blocknr=0 birth=0 aggr=0 csum=0x00000000\n"));
	assert_non_null(strstr(out, "\nend\n"));
	free(out);
}

static void test_tools__check_finds_damage(void **state)
{
	struct files *f = *state;
	char buf[16] = "damage damage!!";
	char *out;
	int fd;

	assert_int_equal(RUN(cmd_initialize, "initialize", "-y", f->snap, f->origin), EXIT_OK);
	fd = open(f->snap, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 300), (ssize_t)sizeof(buf));
	close(fd);
	assert_int_equal(run_captured(f, cmd_check, "check", f->snap, NULL), EXIT_CORRUPT);
	out = slurp(f->out);
	assert_non_null(strstr(out, "label copy 0"));
	free(out);
	/* The second copy still identifies the store: dump reads it. */
	assert_int_equal(run_captured(f, cmd_dump, "dump", f->snap, NULL), EXIT_OK);
	/* Not a store at all. */
	assert_int_equal(run_captured(f, cmd_check, "check", f->origin, NULL), EXIT_FAIL);
	assert_int_equal(run_captured(f, cmd_dump, "dump", f->origin, NULL), EXIT_FAIL);
	assert_int_equal(RUN(cmd_check, "check"), EXIT_USAGE);
	assert_int_equal(RUN(cmd_dump, "dump", "-q", f->snap), EXIT_USAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tools__initialize_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tools__initialize_refuses_overwrite, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tools__metadev, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tools__check_finds_damage, setup, teardown),
	};

	return cmocka_run_group_tests_name("store tools", tests, NULL, NULL);
}
