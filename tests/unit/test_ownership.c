// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_ownership.c - what a path is before ddsnap writes it, and who owns a store
 * (ownership.h): the flock modes and the holder named in a refusal, FIFOs and directories
 * refused without waiting, two roles on one file, pid/log files never through a symlink,
 * resume tokens and changelists never written through a symlink, the listening socket that
 * never replaces anything but a socket (unixsock.h), and volume_open's refusals (a second
 * owner, the snapstore as its own origin, an origin of another size).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "delta/changelist.h"
#include "delta/delta_stream.h"
#include "blk/ownership.h"
#include "util/unixsock.h"
#include "snap/volume.h"
#include "lib/srvfix.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_ownership-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static const char *path_of(const char *name)
{
	static char p[8][128];
	static int i;

	i = (i + 1) % 8;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return p[i];
}

static void make_file(const char *path, size_t size, const char *contents)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	if (contents)
		assert_int_equal(write(fd, contents, strlen(contents)), (ssize_t)strlen(contents));
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void assert_contents(const char *path, const char *want)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
	close(fd);
	assert_string_equal(buf, want);
}

/* Exclusive excludes everything; shared excludes exclusive; closing releases. */
static void test_ownership__lock_modes(void **state)
{
	const char *p = path_of("store");
	struct bdev *a = NULL, *b = NULL;
	char why[512], want[64];

	make_file(p, 1 << 20, NULL);
	assert_int_equal(ownership_open(p, "snapstore", 0, OWN_EXCLUSIVE, &a, why, sizeof(why)), 0);
	assert_int_equal(ownership_open(p, "snapstore", 0, OWN_EXCLUSIVE, &b, why, sizeof(why)),
			 -EBUSY);
	/* The refusal names the role, the path and the holder (this process). */
	snprintf(want, sizeof(want), "is in use by pid %d (", (int)getpid());
	assert_non_null(strstr(why, want));
	assert_non_null(strstr(why, "snapstore "));
	assert_non_null(strstr(why, "test_ownership"));
	assert_int_equal(
		ownership_open(p, "snapstore", BDEV_RDONLY, OWN_SHARED, &b, why, sizeof(why)),
		-EBUSY);
	bdev_close(a);

	assert_int_equal(
		ownership_open(p, "snapstore", BDEV_RDONLY, OWN_SHARED, &a, why, sizeof(why)), 0);
	assert_int_equal(
		ownership_open(p, "snapstore", BDEV_RDONLY, OWN_SHARED, &b, why, sizeof(why)), 0);
	bdev_close(b);
	assert_int_equal(ownership_open(p, "origin", 0, OWN_EXCLUSIVE, &b, why, sizeof(why)),
			 -EBUSY);
	assert_non_null(strstr(why, "origin "));
	bdev_close(a);
	assert_int_equal(ownership_open(p, "snapstore", 0, OWN_EXCLUSIVE, &a, why, sizeof(why)), 0);
	bdev_close(a);
}

static void on_alarm(int sig)
{
	fail_msg("opening a FIFO waited for a peer");
}

/* A FIFO, a directory, a missing path: refused at once, saying what it is. */
static void test_ownership__not_a_device(void **state)
{
	const char *fifo = path_of("fifo");
	struct bdev *b = NULL;
	char why[512];

	assert_int_equal(mkfifo(fifo, 0600), 0);
	signal(SIGALRM, on_alarm);
	alarm(10);
	/* Read-only is the open that would wait for a writer. */
	assert_int_equal(bdev_open(fifo, BDEV_RDONLY, &b), -EINVAL);
	assert_int_equal(bdev_open(fifo, 0, &b), -EINVAL);
	assert_int_equal(
		ownership_open(fifo, "origin", BDEV_RDONLY, OWN_SHARED, &b, why, sizeof(why)),
		-EINVAL);
	alarm(0);
	assert_non_null(strstr(why, "origin "));
	assert_non_null(strstr(why, "is a FIFO, not a regular file or block device"));
	assert_int_equal(ownership_open(dir, "snapstore", 0, OWN_EXCLUSIVE, &b, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "is a directory"));
	assert_int_equal(ownership_open(path_of("nope"), "metadata device", 0, OWN_EXCLUSIVE, &b,
					why, sizeof(why)),
			 -ENOENT);
	assert_non_null(strstr(why, "metadata device"));
	assert_non_null(strstr(why, "nope"));
}

/* Two roles on one file, by another name (a symlink, a hard link), are refused. */
static void test_ownership__distinct(void **state)
{
	const char *roles[] = {"snapstore", "origin", "metadata device"};
	const char *s = path_of("s"), *o = path_of("o"), *ln = path_of("s-link"),
		   *hard = path_of("s-hard");
	const char *paths[3];
	char why[512];

	make_file(s, 4096, NULL);
	make_file(o, 4096, NULL);
	assert_int_equal(symlink(s, ln), 0);
	assert_int_equal(link(s, hard), 0);
	paths[0] = s, paths[1] = o, paths[2] = NULL;
	assert_int_equal(ownership_distinct(paths, roles, 3, why, sizeof(why)), 0);
	paths[1] = ln;
	assert_int_equal(ownership_distinct(paths, roles, 3, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "the origin"));
	assert_non_null(strstr(why, "is the same file as the snapstore"));
	paths[1] = o, paths[2] = hard;
	assert_int_equal(ownership_distinct(paths, roles, 3, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "the metadata device"));
	paths[2] = path_of("absent"); /* opening it will say so */
	assert_int_equal(ownership_distinct(paths, roles, 3, why, sizeof(why)), 0);
}

/* Pid and log files: never through a symlink, never a FIFO; /dev/null is fine. */
static void test_ownership__open_file(void **state)
{
	const char *victim = path_of("victim"), *ln = path_of("pid-link"),
		   *fifo = path_of("log-fifo"), *pid = path_of("pid");
	int fd;

	make_file(victim, 8, "precious");
	assert_int_equal(symlink(victim, ln), 0);
	assert_int_equal(path_open_file(ln, O_WRONLY | O_CREAT | O_TRUNC, 0644), -ELOOP);
	assert_contents(victim, "precious");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	signal(SIGALRM, on_alarm);
	alarm(10);
	fd = path_open_file(fifo, O_WRONLY | O_CREAT | O_APPEND, 0640);
	alarm(0);
	assert_true(fd == -EINVAL || fd == -ENXIO); /* no reader: open says so first */
	assert_true(path_open_file(dir, O_WRONLY | O_CREAT | O_APPEND, 0640) < 0);
	fd = path_open_file(pid, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	close(fd);
	fd = path_open_file("/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0640);
	assert_true(fd >= 0);
	close(fd);
}

/* Resume tokens and changelists are written through <path>.tmp: never a symlink there. */
static void test_ownership__tmp_files_never_follow(void **state)
{
	const char *victim = path_of("v3"), *tok = path_of("tok"), *tok_tmp = path_of("tok.tmp"),
		   *cl = path_of("cl"), *cl_tmp = path_of("cl.tmp");
	struct delta_token t = {.chunk_size = 4096};
	struct changelist_header h = {.chunk_size = 4096, .volume_chunks = 16};
	struct changelist_writer *w = NULL;

	make_file(victim, 8, "precious");
	assert_int_equal(symlink(victim, tok_tmp), 0);
	assert_int_equal(delta_token_save(tok, &t), -ELOOP);
	assert_contents(victim, "precious");
	assert_int_equal(symlink(victim, cl_tmp), 0);
	assert_int_equal(changelist_create(&w, cl, &h), -ELOOP);
	assert_contents(victim, "precious");
	/* Without the trap both work. */
	assert_int_equal(unlink(tok_tmp), 0);
	assert_int_equal(delta_token_save(tok, &t), 0);
	assert_int_equal(unlink(cl_tmp), 0);
	assert_int_equal(changelist_create(&w, cl, &h), 0);
	assert_int_equal(changelist_commit(w), 0);
}

/* volume_open: one owner per store, the origin of the recorded size, no role twice. */
static void test_ownership__volume_open(void **state)
{
	struct srvfix f = {0};
	struct volume_params p = {0};
	struct volume *v = NULL, *v2 = NULL;
	char why[600], want[64];

	assert_int_equal(srvfix_create(&f, dir, "vol", 12, 1 << 20, 16 << 20, NULL), 0);
	p.snapstore = f.store;
	p.origin = f.origin;
	assert_int_equal(volume_open(&p, &v, why, sizeof(why)), 0);
	assert_int_equal(volume_open(&p, &v2, why, sizeof(why)), -EBUSY);
	snprintf(want, sizeof(want), "is in use by pid %d", (int)getpid());
	assert_non_null(strstr(why, want));
	assert_non_null(strstr(why, "snapstore "));
	assert_int_equal(volume_close(v), 0);

	p.origin = f.store; /* the snapstore as its own origin */
	assert_int_equal(volume_open(&p, &v, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "is the same file as the snapstore"));
	p.origin = path_of("bigger");
	make_file(p.origin, (1 << 20) + 4096, NULL);
	assert_int_equal(volume_open(&p, &v, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "has 1052672 bytes but the store"));
	assert_non_null(strstr(why, "made for an origin of 1048576 bytes"));
	p.origin = path_of("smaller");
	make_file(p.origin, (1 << 20) - 4096, NULL);
	assert_int_equal(volume_open(&p, &v, why, sizeof(why)), -EINVAL);
	p.origin = f.origin;
	assert_int_equal(volume_open(&p, &v, why, sizeof(why)), 0);
	assert_int_equal(volume_close(v), 0);
}

/* Only a socket is ever replaced at the listening path. */
static void test_ownership__listen_replaces_only_sockets(void **state)
{
	const char *file = path_of("meta"), *ln = path_of("sock-link"), *victim = path_of("v2"),
		   *stale = path_of("stale.sock");
	int fd;

	make_file(file, 8, "metadata");
	assert_int_equal(unixsock_check_path(file), -EEXIST);
	assert_int_equal(unixsock_listen(file, 4), -EEXIST);
	assert_contents(file, "metadata");

	make_file(victim, 8, "precious");
	assert_int_equal(symlink(victim, ln), 0);
	assert_int_equal(unixsock_listen(ln, 4), -EEXIST);
	assert_contents(victim, "precious");
	assert_int_equal(unixsock_check_path(ln), -EEXIST);

	/* A socket nobody listens on (a dead server's) is replaced. */
	fd = unixsock_listen(stale, 4);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(unixsock_check_path(stale), 0);
	fd = unixsock_listen(stale, 4);
	assert_true(fd >= 0);
	/* A live one is not. */
	assert_int_equal(unixsock_listen(stale, 4), -EADDRINUSE);
	close(fd);
	assert_int_equal(unixsock_check_path("@abstract"), 0);
	assert_int_equal(unixsock_check_path(path_of("absent.sock")), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ownership__lock_modes),
		cmocka_unit_test(test_ownership__not_a_device),
		cmocka_unit_test(test_ownership__distinct),
		cmocka_unit_test(test_ownership__open_file),
		cmocka_unit_test(test_ownership__tmp_files_never_follow),
		cmocka_unit_test(test_ownership__listen_replaces_only_sockets),
		cmocka_unit_test(test_ownership__volume_open),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
