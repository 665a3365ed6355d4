// SPDX-License-Identifier: GPL-2.0-only
/*
 * base.c - the out-of-line half of base.h: the VERIFY failure path and allocation wrappers, thread_start.
 *
 * A VERIFY failure means our own invariant broke and continuing could write bad metadata, so
 * it aborts (leaving a core for gdb) rather than returning.  Allocation failure in the
 * server is treated the same way: the server preallocates what its write path needs
 * (DESIGN.md 2), so running out elsewhere is a configuration error, not a recoverable state.
 */
#include "util/base.h"
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

void base_verify_failed(const char *expr, const char *file, int line)
{
	fprintf(stderr, "VERIFY(%s) failed at %s:%d\n", expr, file, line);
	fflush(stderr);
	abort();
}

int why_printf(char *why, size_t whylen, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

const char *errmsg(int err)
{
	switch (err) {
	case -EILSEQ:
		return "metadata damaged (checksum, magic or structure)";
	case -ENOTBLK:
		return "misplaced block (read from the wrong address)";
	case -ENODATA:
		return "not found";
	case -EPROTO:
		return "bad protocol message";
	case -ESTALE:
		return "stale (an older txg or generation)";
	case -ENOSPC:
		return "out of space";
	default:
		/* strerror is thread-safe in glibc for known errnos (static strings) */
		return strerror(err < 0 ? -err : err);
	}
}

int write_full(int fd, const void *buf, size_t len)
{
	return write_full_op(fd, buf, len, write);
}

int write_full_op(int fd, const void *buf, size_t len,
		  ssize_t (*op)(int fd, const void *buf, size_t len))
{
	const u8 *p = buf;

	while (len) {
		ssize_t n = op(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int thread_start(pthread_t *t, void *(*fn)(void *), void *arg, bool detached)
{
	pthread_attr_t attr;
	int r;

	pthread_attr_init(&attr);
	if (detached)
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, THREAD_STACK_BYTES);
	r = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return r;
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p) {
		fprintf(stderr, "out of memory allocating %zu bytes\n", size);
		abort();
	}
	return p;
}

void *xzalloc(size_t size)
{
	void *p = xmalloc(size);

	memset(p, 0, size ? size : 1);
	return p;
}

void *xrealloc(void *p, size_t size)
{
	void *q = realloc(p, size ? size : 1);

	if (!q) {
		fprintf(stderr, "out of memory reallocating %zu bytes\n", size);
		abort();
	}
	return q;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}
