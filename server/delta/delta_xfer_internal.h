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

/* A DELTA_IO_ALIGN-aligned buffer of at least @len bytes (free() it); aborts on exhaustion. */
void *delta_abuf(size_t len);

#endif
