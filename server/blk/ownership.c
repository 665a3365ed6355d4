// SPDX-License-Identifier: GPL-2.0-only
/*
 * ownership.c - opening a store's devices with their type checked and their lock taken, and
 * naming who holds a lock (ownership.h).
 *
 * What.  ownership_open stats the path first, so a FIFO or a directory is named in the
 * refusal instead of reported as "Invalid argument"; bdev_open repeats the type check on the
 * open file (the path may change between the two) and takes the flock on its own fd, so the
 * lock lives exactly as long as the struct bdev.  A conflict is described from /proc/locks:
 * each line is "N: FLOCK ADVISORY WRITE <pid> <maj>:<min>:<ino> 0 EOF" (blocked waiters have
 * "->" after the number and are skipped), matched against the path's device and inode, and
 * the holder's /proc/<pid>/cmdline is quoted.
 *
 * Invariants.  A struct bdev returned by ownership_open carries the lock asked for; nothing
 * else in ddsnap opens a store device for writing.
 *
 * Locking.  None in-process: the flock is per open file description, so two opens of one
 * store in one process conflict like two processes do (the server opens each device once).
 *
 * Crash argument.  The kernel drops a flock when the last fd of its open file goes, so a
 * killed process (kill -9, a crash) never leaves a store locked; nothing is written here.
 */
#include "blk/ownership.h"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Reads /proc/<pid>/cmdline into @buf with spaces between the arguments. */
static void holder_cmdline(long pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n = -1;
	int fd;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	if (n <= 0) {
		buf[0] = '\0';
		return;
	}
	while (n > 0 && buf[n - 1] == '\0')
		n--;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
}

void ownership_holder(const char *path, char *buf, size_t len)
{
	char line[256], cmd[200];
	struct stat st;
	long pid = 0;
	FILE *f;

	snprintf(buf, len, "another process");
	if (stat(path, &st) < 0)
		return;
	f = fopen("/proc/locks", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char kind[16];
		long p;
		unsigned maj, min;
		unsigned long long ino;

		if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%llu", kind, &p, &maj, &min, &ino) !=
		    5)
			continue; /* a "->" waiter line, or a format we do not know */
		if (strcmp(kind, "FLOCK") || maj != major(st.st_dev) || min != minor(st.st_dev) ||
		    ino != (unsigned long long)st.st_ino || p <= 0)
			continue;
		pid = p;
		break;
	}
	fclose(f);
	if (!pid)
		return;
	holder_cmdline(pid, cmd, sizeof(cmd));
	if (cmd[0])
		snprintf(buf, len, "pid %ld (%s)", pid, cmd);
	else
		snprintf(buf, len, "pid %ld", pid);
}

int ownership_open(const char *path, const char *role, unsigned flags, enum ownership_mode mode,
		   struct bdev **out, char *why, size_t whylen)
{
	char holder[256];
	struct stat st;
	int r;

	if (stat(path, &st) < 0)
		return why_printf(why, whylen, -errno, "cannot open %s %s: %s", role, path,
				  strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return why_printf(why, whylen, -EINVAL,
				  "%s %s is %s, not a regular file or block device", role, path,
				  path_kind(st.st_mode));
	flags |= mode == OWN_EXCLUSIVE ? BDEV_LOCK_EXCL : BDEV_LOCK_SHARED;
	r = bdev_open(path, flags, out);
	if (r == -EBUSY) {
		ownership_holder(path, holder, sizeof(holder));
		return why_printf(why, whylen, r, "%s %s is in use by %s", role, path, holder);
	}
	if (r == -EINVAL)
		return why_printf(why, whylen, r,
				  "%s %s is empty or not a regular file or block device", role,
				  path);
	if (r)
		return why_printf(why, whylen, r, "cannot open %s %s: %s", role, path, errmsg(r));
	return 0;
}

/* True if @x and @y are the same file or the same block device. */
static bool same_file(const struct stat *x, const struct stat *y)
{
	if (S_ISBLK(x->st_mode) && S_ISBLK(y->st_mode))
		return x->st_rdev == y->st_rdev;
	return x->st_dev == y->st_dev && x->st_ino == y->st_ino;
}

int ownership_distinct(const char *const *paths, const char *const *roles, int n, char *why,
		       size_t whylen)
{
	struct stat st[8];
	bool have[8] = {false};

	VERIFY(n <= (int)ARRAY_SIZE(st));
	for (int i = 0; i < n; i++) {
		have[i] = paths[i] && stat(paths[i], &st[i]) == 0;
		for (int j = 0; have[i] && j < i; j++)
			if (have[j] && same_file(&st[i], &st[j]))
				return why_printf(why, whylen, -EINVAL,
						  "the %s %s is the same %s as the %s %s", roles[i],
						  paths[i],
						  S_ISBLK(st[i].st_mode) ? "device" : "file",
						  roles[j], paths[j]);
	}
	return 0;
}
