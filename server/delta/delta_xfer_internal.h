/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * delta_xfer_internal.h - what delta_create.c and delta_apply.c share (delta_dev.c): the
 * device handle with its O_DIRECT fallback, aligned buffers, and the batch bounds.  Not a
 * public interface; delta_xfer.h is.
 */
#ifndef DDSNAP_DELTA_XFER_INTERNAL_H
#define DDSNAP_DELTA_XFER_INTERNAL_H

#include "delta/delta_xfer.h"

/* Encode and decode batch: enough extents for xdelta3 to amortise its process start
 * (~1 ms), small enough to keep memory (source + target + payload scratch) bounded. */
#define DELTA_BATCH_BYTES   (16u << 20)
#define DELTA_BATCH_EXTENTS 512u
/* Device I/O alignment for O_DIRECT buffers. */
#define DELTA_IO_ALIGN 4096u

/* A snapshot or origin device (or a plain file standing for one). */
struct delta_dev {
	int fd; /* -1 when closed */
	bool direct;
	char *path;
	u64 size;
};

/*
 * Opens @path for reading (or reading and writing if @write) with O_DIRECT when the file
 * system allows it.  Only a regular file or a block device is accepted (a FIFO is refused,
 * not waited on).  Returns 0 or a negative errno with the line added to @e.
 */
int delta_dev_open(struct delta_dev *d, const char *path, bool write, struct delta_error *e);
void delta_dev_close(struct delta_dev *d);
/* All @len bytes at @off, or a negative errno with the line added to @e.  Buffered reads
 * drop their pages after use (POSIX_FADV_DONTNEED), so a delta does not flush the cache. */
int delta_dev_pread(struct delta_dev *d, void *buf, size_t len, u64 off, struct delta_error *e);
int delta_dev_pwrite(struct delta_dev *d, const void *buf, size_t len, u64 off,
		     struct delta_error *e);

/*
 * Requests in flight together.  One scattered chunk of a snapshot that shares it with the
 * origin costs a server round trip; a batch's reads (and a receiver's source checks and
 * origin writes) go out together, at most DELTA_IO_DEPTH at once, through Linux native aio
 * on the O_DIRECT fds (a buffered fd, or a system without aio, runs them one by one).
 */
#define DELTA_IO_DEPTH 16u

/* One request of delta_ioq_run(): all @len bytes of @buf at @off of @d. */
struct delta_io {
	struct delta_dev *d;
	u8 *buf;
	size_t len;
	u64 off;
	int rc;	  /* out: 0 or a negative errno, as delta_dev_pread/pwrite's */
	u64 at;	  /* out, on failure: where it failed */
	bool eof; /* out, on failure: a read ended early ("beyond the end", -EIO) */
};

/* The aio context of one thread's requests (not shared between threads). */
struct delta_ioq {
	unsigned depth;	   /* requests in flight at most; 1: one by one, in order */
	unsigned long ctx; /* aio_context_t; 0 until the first request, or without aio */
	bool no_aio;	   /* io_setup failed: synchronous from then on */
};

/* @depth requests in flight at most (0: DELTA_IO_DEPTH; capped at it). */
void delta_ioq_init(struct delta_ioq *q, unsigned depth);
void delta_ioq_free(struct delta_ioq *q);
/*
 * Runs the @n requests of @io (all reads, or all writes if @write), keeping up to q->depth
 * in flight, and returns once every one has completed or failed: each completes in full
 * or fails as delta_dev_pread/pwrite do (a short read is -EIO, a refused O_DIRECT drops
 * the flag and is retried buffered), each result in its own io[i].rc whatever order they
 * completed in.  Returns 0, or the lowest-numbered failure's errno with its line (only
 * its) added to @e.  Buffered reads drop their pages as delta_dev_pread does.
 */
int delta_ioq_run(struct delta_ioq *q, struct delta_io *io, unsigned n, bool write,
		  struct delta_error *e);

/* A DELTA_IO_ALIGN-aligned buffer of at least @len bytes (free() it); aborts on exhaustion. */
void *delta_abuf(size_t len);

#endif
