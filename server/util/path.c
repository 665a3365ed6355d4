// SPDX-License-Identifier: GPL-2.0-only
/*
 * path.c - what a path names, and safe opens of the files ddsnap writes (path.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "util/path.h"
#include "util/base.h"

const char *path_kind(mode_t m)
{
	if (S_ISREG(m))
		return "a regular file";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISLNK(m))
		return "a symbolic link";
	return "not a file";
}

int path_open_file(const char *path, int flags, mode_t mode)
{
	struct stat st;
	int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

const char *path_open_errmsg(int err)
{
	return err == -EINVAL  ? "not a regular file"
	       : err == -ELOOP ? "a symbolic link"
			       : errmsg(err);
}
