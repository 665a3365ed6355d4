// SPDX-License-Identifier: GPL-2.0-only
/*
 * delta_dev.c - the devices and the error lines of the delta transfer (delta_xfer.h,
 * delta_xfer_internal.h).
 *
 * Devices are read and written with O_DIRECT when the file system allows it; a request the
 * file system refuses with EINVAL under O_DIRECT drops the flag for the rest of the
 * transfer and is retried buffered, and buffered reads drop their pages after use, so a
 * delta of a large volume does not flush the page cache.  Every read and write completes
 * in full or fails: a short read is "beyond the end" (-EIO), never a partial extent.
 *
 * Errors are collected, not printed: delta_error_add() appends a line to the caller's
 * struct delta_error, which the CLI prints.  Nothing here holds state between calls; a
 * crash leaves only what the caller wrote.
 */
#include "delta/delta_xfer_internal.h"
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include "util/path.h"

void delta_error_init(struct delta_error *e)
{
	*e = (struct delta_error){0};
}

void delta_error_add(struct delta_error *e, const char *fmt, ...)
{
	size_t room;
	va_list ap;
	int n;

	if (e->len && e->len + 1 < sizeof(e->msg))
		e->msg[e->len++] = '\n';
	room = sizeof(e->msg) - e->len;
	if (room <= 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(e->msg + e->len, room, fmt, ap);
	va_end(ap);
	e->len += n < 0 ? 0 : MIN((size_t)n, room - 1);
}

char *delta_dev_name(const char *stem, u32 tag)
{
	char *p;

	if (tag == DDSNAP_TAG_HEAD)
		return xstrdup(stem);
	if (asprintf(&p, "%s(%u)", stem, tag) < 0)
		abort();
	return p;
}

int delta_dev_open(struct delta_dev *d, const char *path, bool write, struct delta_error *e)
{
	int flags = (write ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	struct stat st = {0};

	d->path = xstrdup(path);
	d->direct = true;
	/* O_NONBLOCK: a FIFO must be refused below, not waited on (ownership.h). */
	d->fd = open(path, flags | O_NONBLOCK | O_DIRECT);
	if (d->fd < 0 && errno == EINVAL) {
		d->direct = false;
		d->fd = open(path, flags | O_NONBLOCK);
	}
	if (d->fd < 0) {
		int err = errno;

		delta_error_add(e, "cannot open %s: %s", path, strerror(err));
		free(d->path);
		d->path = NULL;
		return -err;
	}
	if (fstat(d->fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) ||
	    fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		delta_error_add(e, "%s is %s, not a regular file or block device", path,
				path_kind(st.st_mode));
		delta_dev_close(d);
		return -ENODEV;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(d->fd, BLKGETSIZE64, &d->size))
			d->size = 0;
	} else {
		d->size = (u64)st.st_size;
	}
	return 0;
}

void delta_dev_close(struct delta_dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	free(d->path);
	d->path = NULL;
}

/* Falls back to buffered I/O when the file system refuses O_DIRECT for this request. */
static void dev_undirect(struct delta_dev *d)
{
	int fl = fcntl(d->fd, F_GETFL);

	if (fl >= 0 && fcntl(d->fd, F_SETFL, fl & ~O_DIRECT) == 0)
		d->direct = false;
}

/* All @len bytes at @off read into, or written from, @buf (EINTR and a refused O_DIRECT
 * retried).  A read that ends early is "beyond the end" (-EIO); a write -EIO. */
static int dev_rw(struct delta_dev *d, u8 *buf, size_t len, u64 off, bool write,
		  struct delta_error *e)
{
	size_t done = 0;

	while (done < len) {
		off_t at = (off_t)(off + done);
		ssize_t n = write ? pwrite(d->fd, buf + done, len - done, at)
				  : pread(d->fd, buf + done, len - done, at);

		if (n < 0 && errno == EINVAL && d->direct) {
			dev_undirect(d);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : EIO;

			delta_error_add(e, "%s %s at %llu: %s", write ? "write" : "read", d->path,
					(unsigned long long)at,
					n < 0 || write ? strerror(err) : "beyond the end");
			return -err;
		}
		done += (size_t)n;
	}
	return 0;
}

int delta_dev_pread(struct delta_dev *d, void *buf, size_t len, u64 off, struct delta_error *e)
{
	int rc = dev_rw(d, buf, len, off, false, e);

	if (!rc && !d->direct)
		posix_fadvise(d->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	return rc;
}

int delta_dev_pwrite(struct delta_dev *d, const void *buf, size_t len, u64 off,
		     struct delta_error *e)
{
	/* the cast is safe: dev_rw only reads @buf when writing */
	return dev_rw(d, (u8 *)buf, len, off, true, e);
}

void *delta_abuf(size_t len)
{
	void *p;

	if (posix_memalign(&p, DELTA_IO_ALIGN, ROUND_UP(len ? len : 1, DELTA_IO_ALIGN)))
		abort();
	return p;
}
