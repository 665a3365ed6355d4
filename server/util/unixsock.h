/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * unixsock.h - AF_UNIX stream sockets as the server and the CLI use them.
 *
 * Socket names follow the dm table line: an absolute path, or "@name" for the abstract
 * namespace (Linux).  Reads and writes are "full": they retry on EINTR and short transfers
 * and return only when everything moved, the peer closed, or an error occurred.
 */
#ifndef DDSNAP_UNIXSOCK_H
#define DDSNAP_UNIXSOCK_H

#include <sys/socket.h>
#include <sys/un.h>
#include "util/base.h"

/*
 * Fills @sa from @name.  Returns 0 and *@len (for bind/connect), or -EINVAL (empty, not
 * absolute and not '@', contains NUL) or -ENAMETOOLONG (does not fit sun_path).
 */
int unixsock_addr(const char *name, struct sockaddr_un *sa, socklen_t *len);

/*
 * Words for an error of unixsock_addr, _connect or _listen about socket @name: what is
 * wrong with the name for -EINVAL and -ENAMETOOLONG (not libc's "Invalid argument"),
 * errmsg() for the rest.  Never NULL.
 */
const char *unixsock_errmsg(int err);

/*
 * Connects to @name, waiting at most @timeout_ms for the connection.  Returns a connected
 * close-on-exec descriptor or -errno (-ENOENT, -ECONNREFUSED: no server; -ETIMEDOUT).
 */
int unixsock_connect(const char *name, int timeout_ms);

/* The mode of a path socket unixsock_listen() creates: its owner only. */
#define UNIXSOCK_MODE 0600

/*
 * Listens on @name.  A socket file left by a dead server is replaced; one with a live
 * server behind it is not (-EADDRINUSE); anything at @name that is not a socket (a file, a
 * device, a symlink) is left alone (-EEXIST).  A path socket is created UNIXSOCK_MODE
 * whatever the umask.  Returns the listening descriptor or -errno.
 */
int unixsock_listen(const char *name, int backlog);

/*
 * Whether @name may be bound: 0 if it is abstract, absent or a socket (lstat: a symlink is
 * not), -EEXIST if something else is there.
 */
int unixsock_check_path(const char *name);

/* Reads exactly @len bytes.  Returns 0, -EPIPE if the peer closed first, or -errno. */
int unixsock_read_full(int fd, void *buf, size_t len);
/* Writes exactly @len bytes (MSG_NOSIGNAL).  Returns 0 or -errno (-EPIPE: peer gone). */
int unixsock_write_full(int fd, const void *buf, size_t len);

/*
 * Sets a receive timeout on @fd (0 = none), so a reader blocked on a silent peer returns
 * -EAGAIN after @timeout_ms.  Returns 0 or -errno.
 */
int unixsock_set_timeout(int fd, int timeout_ms);

#endif
