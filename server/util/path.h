/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * path.h - what a path names, in words, and opening the files ddsnap writes beside its
 * devices (pid files, log files, resume tokens, changelists, delta streams) the safe way:
 * never through a symbolic link, never a block device, FIFO or directory.  Stateless;
 * thread-safe.  The devices themselves are opened and locked by blk/ownership.h.
 */
#ifndef DDSNAP_PATH_H
#define DDSNAP_PATH_H

#include <sys/types.h>

/* What a file of mode @m is, for messages: "a regular file", "a FIFO", ... */
const char *path_kind(mode_t m);

/*
 * Opens a pid or log file for writing (@flags: O_WRONLY plus O_CREAT, O_TRUNC or O_APPEND):
 * never through a symlink (O_NOFOLLOW), and only a regular file or a character device such
 * as /dev/null (a block device, a FIFO or a directory there is refused without waiting).
 * Returns the fd (close-on-exec), or -errno: -ELOOP (a symlink), -EINVAL (none of those),
 * what open says.
 */
int path_open_file(const char *path, int flags, mode_t mode);

/* path_open_file()'s error @err in words: "a symbolic link", "not a regular file", else
 * errmsg().  Never NULL. */
const char *path_open_errmsg(int err);

#endif
