// SPDX-License-Identifier: GPL-2.0-only
/*
 * unixsock.c - AF_UNIX helpers (unixsock.h).
 *
 * Connect with a timeout uses a non-blocking connect and poll; for AF_UNIX this mostly
 * matters when a server's backlog is full.  Listening probes an existing socket file by
 * connecting to it: only when nothing answers is the file unlinked and re-bound, so two
 * servers never steal each other's socket; and only a socket is ever unlinked (lstat), never
 * the regular file, device node or symlink a mistyped command line named instead.  A path
 * socket's file is UNIXSOCK_MODE from the moment it exists (the mode is set on the socket
 * before bind, then exactly after it): the caller's umask never widens it.
 */
#include "util/unixsock.h"
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int unixsock_addr(const char *name, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(name);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!n || (name[0] != '/' && name[0] != '@'))
		return -EINVAL;
	if (n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, name, n);
	if (name[0] == '@') {
		if (n < 2)
			return -EINVAL;
		sa->sun_path[0] = 0; /* abstract: no trailing NUL in the length */
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

const char *unixsock_errmsg(int err)
{
	if (err == -EINVAL)
		return "a socket name is an absolute path or @name";
	if (err == -ENAMETOOLONG)
		return "the name does not fit a socket address (107 bytes)";
	return errmsg(err);
}

int unixsock_connect(const char *name, int timeout_ms)
{
	struct sockaddr_un sa;
	socklen_t len;
	int fd, r, err = 0;
	socklen_t errlen = sizeof(err);

	r = unixsock_addr(name, &sa, &len);
	if (r)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};

		if (errno != EINPROGRESS && errno != EAGAIN) {
			r = -errno;
			goto out_close;
		}
		r = poll(&p, 1, timeout_ms);
		if (r <= 0) {
			r = r ? -errno : -ETIMEDOUT;
			goto out_close;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0 || err) {
			r = err ? -err : -errno;
			goto out_close;
		}
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		r = -errno;
		goto out_close;
	}
	return fd;
out_close:
	close(fd);
	return r;
}

int unixsock_check_path(const char *name)
{
	struct stat st;

	if (name[0] == '@' || lstat(name, &st) < 0)
		return 0;
	return S_ISSOCK(st.st_mode) ? 0 : -EEXIST;
}

int unixsock_listen(const char *name, int backlog)
{
	struct sockaddr_un sa;
	socklen_t len;
	int fd, r;

	r = unixsock_addr(name, &sa, &len);
	if (r)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Linux creates the file with the socket inode's mode less the umask: never wider. */
	if (fchmod(fd, UNIXSOCK_MODE) < 0) {
		r = -errno;
		goto out_close;
	}
	if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
		int probe;

		r = -errno;
		if (r != -EADDRINUSE || name[0] == '@')
			goto out_close;
		r = unixsock_check_path(name);
		if (r)
			goto out_close; /* not a socket: never ours to remove */
		probe = unixsock_connect(name, 1000);
		if (probe >= 0) {
			close(probe);
			r = -EADDRINUSE;
			goto out_close; /* a live server owns it */
		}
		/* A dead server's socket; a rename race in between is caught by the check. */
		r = unixsock_check_path(name);
		if (r)
			goto out_close;
		unlink(name);
		if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
			r = -errno;
			goto out_close;
		}
	}
	/* Exactly UNIXSOCK_MODE, whatever the umask took away, before anyone can connect. */
	if (name[0] == '/' && fchmodat(AT_FDCWD, name, UNIXSOCK_MODE, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		goto out_close;
	}
	if (listen(fd, backlog) < 0) {
		r = -errno;
		goto out_close;
	}
	return fd;
out_close:
	close(fd);
	return r;
}

int unixsock_read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!n)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static ssize_t send_nosignal(int fd, const void *buf, size_t len)
{
	return send(fd, buf, len, MSG_NOSIGNAL);
}

int unixsock_write_full(int fd, const void *buf, size_t len)
{
	return write_full_op(fd, buf, len, send_nosignal);
}

int unixsock_set_timeout(int fd, int timeout_ms)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}
