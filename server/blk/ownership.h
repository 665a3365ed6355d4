/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ownership.h - what a path is before ddsnap writes it, and which process owns a store.
 *
 * Every ddsnap process that opens a store's devices opens them here, so that one place
 * decides (doc/misuse.md):
 *
 *  - what the path is: a regular file or a block device, nothing else (a FIFO, a socket, a
 *    directory or a character device is refused at once, naming what it is);
 *  - that no two roles name one file or device (the snapstore as its own origin, the origin
 *    given twice);
 *  - who owns the store: an advisory lock (flock) on each device, held for as long as the
 *    device is open.  Writers (the server, initialize, restore) hold it exclusively; readers
 *    (check, dump) shared, so a reader never runs while a writer does and a writer never
 *    starts while anyone reads.  The server also holds its origin exclusively (one origin,
 *    one store) and initialize holds the origin shared while it sizes it.  A refusal names
 *    the holder: its pid and command line, from /proc/locks.
 *
 * Why flock and not O_EXCL: the kernel target claims both devices exclusively itself
 * (dm_get_device), so the server must be able to open them while a target is loaded; an
 * advisory lock that every ddsnap process takes works for devices and files alike.  The lock
 * lives on the inode: two different device nodes for one disk (a second mknod) are not
 * seen as one; the usual /dev and /dev/mapper names are the same inode or a symlink to it.
 *
 * Pid and log files are opened with path_open_file (util/path.h).
 */
#ifndef DDSNAP_OWNERSHIP_H
#define DDSNAP_OWNERSHIP_H

#include <sys/types.h>
#include "util/base.h"
#include "util/path.h"
#include "blk/bdev.h"

enum ownership_mode {
	OWN_SHARED,    /* readers: check, dump; initialize's origin */
	OWN_EXCLUSIVE, /* writers: server, initialize, restore */
};

/*
 * Opens @path, a store device in role @role ("snapstore", "origin", "metadata device"),
 * with bdev_open(@flags) and the lock @mode.  Returns 0 and *@out, or -errno with a sentence
 * naming @role and @path in @why: -ENOENT/-EACCES/..., -EINVAL (not a regular file or block
 * device, or empty: says what it is), -EBUSY (another process holds the lock: names it).
 * Never waits.
 */
int ownership_open(const char *path, const char *role, unsigned flags, enum ownership_mode mode,
		   struct bdev **out, char *why, size_t whylen);

/*
 * Refuses two of @n roles naming the same file or block device: @paths[i] (NULL: absent)
 * in role @roles[i].  Paths that do not exist are not compared (opening them reports it).
 * Returns 0, or -EINVAL with a sentence naming both roles in @why.
 */
int ownership_distinct(const char *const *paths, const char *const *roles, int n, char *why,
		       size_t whylen);

/*
 * Describes the process holding a lock on @path into @buf: "pid N (its command line)", or
 * "another process" when /proc does not say.  O(number of locks in the system).
 */
void ownership_holder(const char *path, char *buf, size_t len);

#endif
