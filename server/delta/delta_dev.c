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
 * Requests in flight together (delta_ioq_run): Linux native aio through syscall() on the
 * O_DIRECT fds, at most q->depth submitted and not yet reaped, each reaped result stored
 * in its own request (completion order does not matter to the caller).  A request that
 * completes short is finished synchronously from where it stopped (so a read past the end
 * is -EIO as above), one refused with EINVAL drops O_DIRECT and runs buffered, and
 * without aio (io_setup failing, depth 1, a buffered fd) a request runs synchronously at
 * its turn.  The aio context belongs to one thread (the caller's struct delta_ioq); the
 * call returns only once nothing is in flight, so no request outlives its buffer.  Freed
 * contexts go to a small pool for the process's next transfer rather than io_destroy(),
 * which waits for an RCU grace period (tens of ms; the pool's lock guards only the pool).
 *
 * Errors are collected, not printed: delta_error_add() appends a line to the caller's
 * struct delta_error, which the CLI prints.  Nothing here holds state between calls; a
 * crash leaves only what the caller wrote.
 */
#include "delta/delta_xfer_internal.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/aio_abi.h>
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

/* Adds the line of a request on @d that failed at @at with @err (a read that ended
 * early: @eof, "beyond the end"). */
static void dev_fail(struct delta_dev *d, bool write, u64 at, int err, bool eof,
		     struct delta_error *e)
{
	delta_error_add(e, "%s %s at %llu: %s", write ? "write" : "read", d->path,
			(unsigned long long)at, eof && !write ? "beyond the end" : strerror(err));
}

/* All @len bytes at @off read into, or written from, @buf (EINTR and a refused O_DIRECT
 * retried).  A read that ends early is "beyond the end" (-EIO); a write -EIO.  On failure
 * *@at is where and *@eof whether a read ended early. */
static int dev_rw_at(struct delta_dev *d, u8 *buf, size_t len, u64 off, bool write, u64 *at,
		     bool *eof)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write ? pwrite(d->fd, buf + done, len - done, (off_t)(off + done))
				  : pread(d->fd, buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINVAL && d->direct) {
			dev_undirect(d);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*at = off + done;
			*eof = n == 0;
			return n < 0 ? -errno : -EIO;
		}
		done += (size_t)n;
	}
	if (!write && !d->direct)
		posix_fadvise(d->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	return 0;
}

static int dev_rw(struct delta_dev *d, u8 *buf, size_t len, u64 off, bool write,
		  struct delta_error *e)
{
	u64 at = 0;
	bool eof = false;
	int rc = dev_rw_at(d, buf, len, off, write, &at, &eof);

	if (rc)
		dev_fail(d, write, at, -rc, eof, e);
	return rc;
}

int delta_dev_pread(struct delta_dev *d, void *buf, size_t len, u64 off, struct delta_error *e)
{
	return dev_rw(d, buf, len, off, false, e);
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

/* ---- requests in flight together (delta_ioq) ---- */

static long aio_setup(unsigned nr, aio_context_t *ctx)
{
	return syscall(SYS_io_setup, nr, ctx);
}

static long aio_submit(aio_context_t ctx, struct iocb *cb)
{
	struct iocb *one[1] = {cb};

	return syscall(SYS_io_submit, ctx, 1L, one);
}

static long aio_getevents(aio_context_t ctx, long min, long max, struct io_event *ev)
{
	return syscall(SYS_io_getevents, ctx, min, max, ev, NULL);
}

/*
 * Idle aio contexts kept for the next transfer of this process: io_destroy waits for an
 * RCU grace period (30-40 ms), which a small incremental would pay once per context.  A
 * pooled context has nothing in flight (delta_ioq_run returns with none); the process's
 * exit reclaims them all at once.  Each holds DELTA_IO_DEPTH events.
 */
#define IOQ_POOL 8
static pthread_mutex_t ioq_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static aio_context_t ioq_pool[IOQ_POOL];
static unsigned ioq_npool;

void delta_ioq_init(struct delta_ioq *q, unsigned depth)
{
	*q = (struct delta_ioq){.depth = depth ? MIN(depth, DELTA_IO_DEPTH) : DELTA_IO_DEPTH};
}

void delta_ioq_free(struct delta_ioq *q)
{
	if (!q->ctx)
		return;
	pthread_mutex_lock(&ioq_pool_lock);
	if (ioq_npool < IOQ_POOL) {
		ioq_pool[ioq_npool++] = q->ctx;
		q->ctx = 0;
	}
	pthread_mutex_unlock(&ioq_pool_lock);
	if (q->ctx)
		syscall(SYS_io_destroy, (aio_context_t)q->ctx);
	q->ctx = 0;
}

/* Request @r done synchronously from @from bytes on (the rest of a short transfer, a
 * refused O_DIRECT, no aio). */
static void ioq_sync(struct delta_io *r, size_t from, bool write)
{
	r->rc = dev_rw_at(r->d, r->buf + from, r->len - from, r->off + from, write, &r->at,
			  &r->eof);
}

/* Completes request @r from its event's result @res. */
static void ioq_complete(struct delta_io *r, long long res, bool write)
{
	if (res == (long long)r->len) {
		r->rc = 0;
	} else if (res == -EINVAL && r->d->direct) {
		ioq_sync(r, 0, write); /* O_DIRECT refused: buffered from now on (dev_rw_at) */
	} else if (res < 0 && res != -EINTR && res != -EAGAIN) {
		r->rc = (int)res;
		r->at = r->off;
		r->eof = false;
	} else {
		ioq_sync(r, res > 0 ? (size_t)res : 0, write); /* short: the rest, or its end */
	}
}

/* Sets q->ctx up once (depth > 1 only); without it every request runs synchronously. */
static bool ioq_ready(struct delta_ioq *q)
{
	aio_context_t ctx = 0;

	if (q->ctx || q->no_aio || q->depth < 2)
		return q->ctx != 0;
	pthread_mutex_lock(&ioq_pool_lock);
	if (ioq_npool)
		ctx = ioq_pool[--ioq_npool];
	pthread_mutex_unlock(&ioq_pool_lock);
	if (!ctx && aio_setup(DELTA_IO_DEPTH, &ctx) < 0) {
		q->no_aio = true; /* ENOSYS, or the system's aio-max-nr is used up */
		return false;
	}
	q->ctx = ctx;
	return true;
}

int delta_ioq_run(struct delta_ioq *q, struct delta_io *io, unsigned n, bool write,
		  struct delta_error *e)
{
	struct iocb *cbs = n ? xzalloc(sizeof(*cbs) * n) : NULL;
	struct io_event ev[DELTA_IO_DEPTH];
	unsigned next = 0, inflight = 0;
	bool aio = ioq_ready(q);

	while (next < n || inflight) {
		while (next < n && inflight < q->depth) {
			struct delta_io *r = &io[next];
			struct iocb *cb = &cbs[next];

			r->rc = 0;
			*cb = (struct iocb){.aio_data = next,
					    .aio_lio_opcode =
						    write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD,
					    .aio_fildes = (u32)r->d->fd,
					    .aio_buf = (u64)(uintptr_t)r->buf,
					    .aio_nbytes = r->len,
					    .aio_offset = (s64)r->off};
			next++;
			/* buffered aio would run inside io_submit anyway; a refused submit
			 * (EAGAIN: the ring is full elsewhere) runs here */
			if (aio && r->d->direct && aio_submit(q->ctx, cb) == 1)
				inflight++;
			else
				ioq_sync(r, 0, write);
		}
		if (!inflight)
			continue;
		long got = aio_getevents(q->ctx, 1, inflight, ev);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			abort(); /* only EFAULT or EINVAL: a bug here */
		for (long i = 0; i < got; i++) {
			struct delta_io *r = &io[ev[i].data];

			ioq_complete(r, ev[i].res, write);
			inflight--;
		}
	}
	free(cbs);
	for (unsigned i = 0; i < n; i++) {
		if (io[i].rc) {
			dev_fail(io[i].d, write, io[i].at, -io[i].rc, io[i].eof, e);
			return io[i].rc;
		}
	}
	return 0;
}
