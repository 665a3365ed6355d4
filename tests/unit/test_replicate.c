// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_replicate.c - `ddsnap send` and `ddsnap receive` between two volumes
 * served by two real metadata servers in this process (on temporary files): a
 * master whose origin writes go through the engine's copy-out as the kernel's
 * would, and a replica.  Snapshot devices are files <stem>(T) materialised
 * through the master's read mapping.  A full send, an incremental with chunks
 * edited, appended and zeroed, a stream cut midway that resumes from the
 * receiver's token (send -t) and ends identical, and the refusals that must
 * write nothing: a stream for a base the replica lacks, a stream carrying
 * another tag, a tag the replica has already.  Then `ddsnap revert` on the replica: an
 * incremental from the reverted-to snapshot is accepted although the replica has a newer
 * snapshot of its own, unless its origin was written after the revert, and no stream is
 * taken while a revert is in progress.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <getopt.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "commands.h"
#include "client/ctl_client.h"
#include "daemon/server.h"
#include "snap/volume.h"
#include "lib/srvfix.h"
#include "lib/testfiles.h"

#define CHUNK_SHIFT  14
#define CHUNK	     (1u << CHUNK_SHIFT)
#define NCHUNKS	     256u
#define ORIGIN_BYTES ((u64)NCHUNKS * CHUNK)
#define STORE_BYTES  (48u << 20)

static char dir[] = "/tmp/test_replicateXXXXXX";
static struct srvfix master, replica;
static char mstem[128], token[128];

static void fill(u8 *p, size_t len, u32 seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		/* compressible: a small alphabet */
		p[i] = (u8)('a' + (seed >> 16) % 7);
	}
}

/* Writes master origin chunks [c, c + n) the way the kernel does: copy-out first. */
static void origin_write(u64 c, u32 n, const u8 *data)
{
	srvfix_origin_write(&master, c, n, data);
}

/* Tells the replica's server that origin chunk @c was written, as its kernel target would
 * (the bytes stay as they are). */
static void replica_mark(u64 c)
{
	struct volume_range r = {c, 1};
	u64 gen;

	assert_int_equal(volume_origin_write(replica.vol, &r, 1, &gen), 0);
}

/* Materialises master snapshot @tag as the file <mstem>(tag). */
static void export_snapshot(u32 tag)
{
	srvfix_export(&master, tag, pathf("%s(%u)", mstem, tag));
}

static u8 *slurp(const char *path)
{
	return srvfix_slurp(path, ORIGIN_BYTES);
}

static bool same_files(const char *a, const char *b)
{
	u8 *x = slurp(a), *y = slurp(b);
	bool same = !memcmp(x, y, ORIGIN_BYTES);

	free(x);
	free(y);
	return same;
}

/* Runs a subcommand with fd @fd (0 or 1) redirected to/from @path. */
static int run_io(int (*cmd)(int, char **), int fd, const char *path, ...)
{
	char *argv[16];
	int argc = 0, saved = dup(fd), f, rc;
	va_list ap;

	va_start(ap, path);
	while ((argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	f = fd ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : open(path, O_RDONLY);
	assert_true(f >= 0 && saved >= 0);
	fflush(stdout);
	dup2(f, fd);
	close(f);
	rc = cmd(argc, argv);
	fflush(stdout);
	dup2(saved, fd);
	close(saved);
	return rc;
}

#define SEND(out, ...) run_io(cmd_send, 1, out, "send", "-d", mstem, __VA_ARGS__, (char *)NULL)
#define RECEIVE(in, tag)                                                                       \
	run_io(cmd_receive, 0, in, "receive", "-t", token, "-d", replica.origin, replica.sock, \
	       tag, (char *)NULL)

static bool replica_has(u32 tag)
{
	struct ctl_client *c;
	struct ctl_snap *snaps = NULL;
	struct ctl_result res;
	u32 n = 0;
	char why[256];
	bool found = false;

	assert_int_equal(ctl_client_open(replica.sock, &c, why, sizeof(why)), 0);
	assert_int_equal(ctl_client_list(c, &snaps, &n, &res, why, sizeof(why)), 0);
	for (u32 i = 0; i < n; i++)
		found |= snaps[i].tag == tag;
	free(snaps);
	ctl_client_close(c);
	return found;
}

static void copy_file(const char *from, const char *to)
{
	assert_int_equal(system(pathf("cp '%s' '%s'", from, to)), 0);
}

static int side_open(struct srvfix *f, const char *name)
{
	if (srvfix_create(f, dir, name, CHUNK_SHIFT, ORIGIN_BYTES, STORE_BYTES, NULL))
		return -1;
	return srvfix_start(f);
}

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(mstem, sizeof(mstem), "%s/m", dir);
	snprintf(token, sizeof(token), "%s/token", dir);
	return side_open(&master, "master") || side_open(&replica, "replica") ? -1 : 0;
}

static int teardown(void **state)
{
	srvfix_stop(&master);
	srvfix_stop(&replica);
	return system(pathf("rm -rf %s", dir));
}

static void test_replicate__full_incremental_cut_resume_refusals(void **state)
{
	u8 *buf = malloc(64 * CHUNK), zero[8 * CHUNK] = {0};
	char s1[160], s2[160], cut[160], s2r[160], s9[160], s34[160], s24[160];
	u64 gen;
	struct stat st;

	snprintf(s1, sizeof(s1), "%s/s1", dir);
	snprintf(s2, sizeof(s2), "%s/s2", dir);
	snprintf(cut, sizeof(cut), "%s/s2cut", dir);
	snprintf(s2r, sizeof(s2r), "%s/s2r", dir);
	snprintf(s9, sizeof(s9), "%s/s9", dir);
	snprintf(s34, sizeof(s34), "%s/s34", dir);
	snprintf(s24, sizeof(s24), "%s/s24", dir);
	/* master snapshot 1 of a volume with data and never-written (zero) chunks */
	fill(buf, 64 * CHUNK, 1);
	origin_write(0, 64, buf);
	fill(buf, 32 * CHUNK, 2);
	origin_write(100, 32, buf);
	assert_int_equal(volume_create(master.vol, 1, &gen), 0);
	export_snapshot(1);

	/* full send to a file, received by the replica: its origin is snapshot 1 */
	assert_int_equal(SEND(s1, master.sock, "1"), EXIT_OK);
	assert_int_equal(RECEIVE(s1, "1"), EXIT_OK);
	assert_true(same_files(replica.origin, pathf("%s(1)", mstem)));
	assert_true(replica_has(1));
	copy_file(replica.origin, pathf("%s(1)", replica.origin)); /* its snapshot device */
	/* the same stream again: the tag exists, refused, nothing written */
	assert_int_equal(RECEIVE(s1, "1"), EXIT_FAIL);

	/* edits, an append into never-written space, zeroed chunks; snapshot 2 */
	fill(buf, 3 * CHUNK, 3);
	origin_write(5, 3, buf);
	fill(buf, 40 * CHUNK, 4);
	origin_write(180, 40, buf);
	origin_write(110, 8, zero);
	assert_int_equal(volume_create(master.vol, 2, &gen), 0);
	export_snapshot(2);
	{
		u8 *whole;

		assert_int_equal(SEND(s2, "-r", master.sock, "1", "2"), EXIT_OK);
		/* a stream for snapshot 2 received as 9: refused, nothing written */
		copy_file(s2, s9);
		assert_int_equal(RECEIVE(s9, "9"), EXIT_FAIL);
		assert_true(same_files(replica.origin, pathf("%s(1)", mstem)));
		/* cut in the middle: the receiver fails with a token, no snapshot 2 */
		assert_int_equal(stat(s2, &st), 0);
		assert_true(st.st_size > 20 * CHUNK);
		whole = malloc((size_t)st.st_size);
		{
			int fd = open(s2, O_RDONLY);

			assert_int_equal(read(fd, whole, (size_t)st.st_size), st.st_size);
			close(fd);
			fd = open(cut, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			assert_int_equal(write(fd, whole, (size_t)st.st_size / 2), st.st_size / 2);
			close(fd);
		}
		free(whole);
		assert_int_equal(RECEIVE(cut, "2"), EXIT_CORRUPT);
		assert_int_equal(stat(token, &st), 0);
		assert_false(replica_has(2));
		/* what the cut transfer wrote, as the replica's kernel reports it */
		replica_mark(5);
		/* a resumed stream from the token completes it (the token explains the write) */
		assert_int_equal(SEND(s2r, "-r", "-t", token, master.sock, "1", "2"), EXIT_OK);
		assert_int_equal(stat(s2r, &st), 0);
		{
			struct stat whole_st;

			/* it carries only what the cut stream did not apply */
			assert_int_equal(stat(s2, &whole_st), 0);
			assert_true(st.st_size < whole_st.st_size);
		}
		assert_int_equal(RECEIVE(s2r, "2"), EXIT_OK);
		assert_true(same_files(replica.origin, pathf("%s(2)", mstem)));
		assert_true(replica_has(2));
		assert_int_not_equal(stat(token, &st), 0);
	}

	/* snapshots 3 and 4; a stream 3 -> 4 is for a base the replica lacks */
	fill(buf, 2 * CHUNK, 5);
	origin_write(30, 2, buf);
	assert_int_equal(volume_create(master.vol, 3, &gen), 0);
	fill(buf, 2 * CHUNK, 6);
	origin_write(31, 2, buf);
	assert_int_equal(volume_create(master.vol, 4, &gen), 0);
	export_snapshot(3);
	export_snapshot(4);
	copy_file(replica.origin, pathf("%s(2)", replica.origin));
	{
		assert_int_equal(SEND(s34, master.sock, "3", "4"), EXIT_OK);
		assert_int_equal(RECEIVE(s34, "4"), EXIT_FAIL);
		assert_true(same_files(replica.origin, pathf("%s(2)", mstem)));
		assert_false(replica_has(4));
		assert_int_not_equal(stat(token, &st), 0); /* refused before any write */
		/* from the base it has, 2 -> 4 works (snapshot 3 skipped) */
		assert_int_equal(SEND(s24, "-b", master.sock, "2", "4"), EXIT_OK);
		assert_int_equal(RECEIVE(s24, "4"), EXIT_OK);
		assert_true(same_files(replica.origin, pathf("%s(4)", mstem)));
		assert_true(replica_has(4));
	}
	/* a write on the replica's origin since its snapshot 4: an incremental would keep it
	 * under snapshot 5, so it is refused; a full stream rewrites everything */
	fill(buf, 4 * CHUNK, 7);
	origin_write(200, 4, buf);
	assert_int_equal(volume_create(master.vol, 5, &gen), 0);
	export_snapshot(5);
	replica_mark(7);
	assert_int_equal(SEND(s1, master.sock, "4", "5"), EXIT_OK);
	assert_int_equal(RECEIVE(s1, "5"), EXIT_FAIL);
	assert_false(replica_has(5));
	assert_true(same_files(replica.origin, pathf("%s(4)", mstem)));
	assert_int_equal(SEND(s1, master.sock, "5"), EXIT_OK);
	assert_int_equal(RECEIVE(s1, "5"), EXIT_OK);
	assert_true(same_files(replica.origin, pathf("%s(5)", mstem)));
	assert_true(replica_has(5));
	/* argument errors */
	assert_int_equal(run_io(cmd_send, 1, pathf("%s/x", dir), "send", master.sock, (char *)NULL),
			 EXIT_USAGE);
	assert_int_equal(run_io(cmd_send, 1, pathf("%s/x", dir), "send", master.sock, "2", "2",
				(char *)NULL),
			 EXIT_USAGE);
	assert_int_equal(SEND(pathf("%s/x", dir), master.sock, "77"), EXIT_FAIL);
	free(buf);
}

/* Runs `ddsnap revert <replica> <tag>` as the CLI does. */
static int revert(const char *tag)
{
	char *argv[] = {"revert", replica.sock, (char *)tag, NULL};

	optind = 0;
	return cmd_revert(3, argv);
}

static int in_progress_rc = -1;

/* volume_revert's wait, in the middle of the revert: a stream must be refused now. */
static int receive_midway(void *priv, const struct volume_range *r, u32 n)
{
	if (in_progress_rc == -1)
		in_progress_rc = RECEIVE((const char *)priv, "7");
	return 0;
}

/*
 * After the first test (master 1..5, replica 1, 2, 4, 5): the replica writes and takes a
 * snapshot of its own (6) and writes more, so an incremental 5 -> 7 is refused; `ddsnap
 * revert` to 5 makes its origin snapshot 5 again (snapshot 6 unchanged), a stream during the
 * revert is refused, and 5 -> 7 is then accepted although snapshot 6 is newer than 5.  The
 * next revert (to 7), followed by a write on the replica's origin, refuses 7 -> 8.
 */
static void test_replicate__receive_after_revert(void **state)
{
	u8 *buf = malloc(8 * CHUNK), *six;
	char s57[160], s78[160];
	u64 gen, done;

	snprintf(s57, sizeof(s57), "%s/s57", dir);
	snprintf(s78, sizeof(s78), "%s/s78", dir);
	fill(buf, 4 * CHUNK, 20);
	srvfix_origin_write(&replica, 40, 4, buf);
	assert_int_equal(volume_create(replica.vol, 6, &gen), 0);
	srvfix_export(&replica, 6, pathf("%s/r6", dir));
	six = slurp(pathf("%s/r6", dir));
	fill(buf, 8 * CHUNK, 21);
	srvfix_origin_write(&replica, 200, 8, buf); /* also where master snapshot 5 differs */
	srvfix_origin_write(&replica, 41, 1, buf);

	fill(buf, 3 * CHUNK, 22);
	origin_write(60, 3, buf);
	assert_int_equal(volume_create(master.vol, 7, &gen), 0);
	export_snapshot(7);
	assert_int_equal(SEND(s57, master.sock, "5", "7"), EXIT_OK);
	assert_int_equal(RECEIVE(s57, "7"), EXIT_FAIL); /* written since its snapshot 6 */
	assert_false(replica_has(7));

	/* misuse: nothing changes */
	assert_int_equal(revert("9"), EXIT_FAIL);
	assert_int_equal(revert("4294967292"), EXIT_USAGE);
	assert_false(replica_has(VOLUME_TAG_REVERTING));

	assert_int_equal(volume_revert(replica.vol, 5, receive_midway, s57, &done), 0);
	assert_int_equal(in_progress_rc, EXIT_FAIL);
	assert_true(done >= 9);
	assert_true(same_files(replica.origin, pathf("%s(5)", mstem)));
	srvfix_export(&replica, 6, pathf("%s/r6", dir));
	{
		u8 *again = slurp(pathf("%s/r6", dir));

		assert_memory_equal(again, six, ORIGIN_BYTES);
		free(again);
	}
	assert_true(replica_has(VOLUME_TAG_REVERT_POINT));
	assert_false(replica_has(VOLUME_TAG_REVERTING));
	copy_file(pathf("%s(5)", mstem), pathf("%s(5)", replica.origin)); /* its device */
	assert_int_equal(RECEIVE(s57, "7"), EXIT_OK);
	assert_true(same_files(replica.origin, pathf("%s(7)", mstem)));
	assert_true(replica_has(7));
	assert_true(replica_has(6));			    /* kept: the monitor sets it aside */
	assert_false(replica_has(VOLUME_TAG_REVERT_POINT)); /* the new snapshot replaced it */

	/* a revert through the command, then a write after it: 7 -> 8 refused */
	fill(buf, 2 * CHUNK, 23);
	origin_write(70, 2, buf);
	assert_int_equal(volume_create(master.vol, 8, &gen), 0);
	export_snapshot(8);
	assert_int_equal(SEND(s78, master.sock, "7", "8"), EXIT_OK);
	copy_file(pathf("%s(7)", mstem), pathf("%s(7)", replica.origin));
	assert_int_equal(revert("7"), EXIT_OK);
	fill(buf, CHUNK, 24);
	srvfix_origin_write(&replica, 3, 1, buf);
	assert_int_equal(RECEIVE(s78, "8"), EXIT_FAIL);
	assert_false(replica_has(8));
	/* reverted again, nothing written since: accepted */
	assert_int_equal(revert("7"), EXIT_OK);
	assert_int_equal(RECEIVE(s78, "8"), EXIT_OK);
	assert_true(same_files(replica.origin, pathf("%s(8)", mstem)));
	free(six);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replicate__full_incremental_cut_resume_refusals),
		cmocka_unit_test(test_replicate__receive_after_revert),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
