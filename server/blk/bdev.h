/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bdev.h - block I/O behind an ops table: real files and block devices, a RAM device, and a
 * fault-injecting RAM device for tests.
 *
 * Every byte the server reads or writes goes through a struct bdev, so tests can swap in the
 * faulty device and prove crash safety (DESIGN.md 7).  Offsets and lengths are in bytes and
 * must be multiples of BDEV_SECTOR (512); buffers for the file backend must be aligned to
 * BDEV_ALIGN because it uses O_DIRECT where the filesystem allows it.
 *
 * Durability contract, the same for every backend: a write is durable only after a later
 * bdev_flush() returned 0.  The faulty device enforces this literally: bdev_faulty_crash()
 * throws away every write not covered by a flush.
 *
 * Thread safety: concurrent reads and writes of different ranges are allowed on every
 * backend; callers order overlapping I/O themselves.
 */
#ifndef DDSNAP_BDEV_H
#define DDSNAP_BDEV_H

#include "util/base.h"

#define BDEV_SECTOR 512
#define BDEV_ALIGN  4096 /* O_DIRECT buffer alignment that is safe on 4Kn devices */

struct bdev;

struct bdev_ops {
	int (*read)(struct bdev *b, void *buf, size_t len, u64 off);
	int (*write)(struct bdev *b, const void *buf, size_t len, u64 off);
	int (*flush)(struct bdev *b);
	void (*close)(struct bdev *b);
};

/* The common head of every backend; backends embed it first. */
struct bdev {
	const struct bdev_ops *ops;
	u64 size;	  /* bytes, a multiple of BDEV_SECTOR */
	const char *name; /* path, or "ram" / "faulty" */
};

/*
 * Returns 0 or -errno (-EIO, also for a host filesystem out of space; -EINVAL for
 * misaligned/out-of-range requests).  Blocks.
 */
static inline int bdev_read(struct bdev *b, void *buf, size_t len, u64 off)
{
	return b->ops->read(b, buf, len, off);
}
static inline int bdev_write(struct bdev *b, const void *buf, size_t len, u64 off)
{
	return b->ops->write(b, buf, len, off);
}
/* Makes every completed write durable. Returns 0 or -EIO. Blocks. */
static inline int bdev_flush(struct bdev *b)
{
	return b->ops->flush(b);
}
static inline void bdev_close(struct bdev *b)
{
	if (b)
		b->ops->close(b);
}

enum bdev_open_flags {
	BDEV_RDONLY = 1 << 0,
	BDEV_BUFFERED = 1 << 1, /* no O_DIRECT (tests on tmpfs, tools that only read a little) */
	/*
	 * An advisory lock (flock) on the open file, held until bdev_close: shared or
	 * exclusive, never waiting (ownership.h says who takes which).
	 */
	BDEV_LOCK_SHARED = 1 << 2,
	BDEV_LOCK_EXCL = 1 << 3,
};

/*
 * Opens a regular file or a block device.  Uses O_DIRECT unless BDEV_BUFFERED or the
 * filesystem refuses it (tmpfs), in which case writes are made durable by fdatasync in
 * bdev_flush.  The size of a file is its length rounded down to a sector; of a block device,
 * BLKGETSIZE64.  Anything else (a FIFO, a socket, a character device, a directory) is
 * refused without waiting for a peer.  Returns 0 and *out, or -errno (-ENOENT, -EACCES,
 * -EINVAL: not a regular file or block device, or size 0; -EBUSY: the lock asked for is held
 * by another open file).
 */
int bdev_open(const char *path, unsigned flags, struct bdev **out);

/* A zero-filled RAM device of @size bytes (rounded up to a sector). Never fails. */
struct bdev *bdev_ram_create(u64 size);

/*
 * The fault-injecting RAM device.  It keeps two images: what the "platter" holds (durable)
 * and what a reader sees (durable plus unflushed writes).  Faults are armed by the calls
 * below; counters let cost tests count I/O.  Single faults fire once and disarm.
 */
struct bdev *bdev_faulty_create(u64 size, u64 seed);
/* The @n-th write from now (1 = next) fails with -EIO and changes nothing. */
void bdev_faulty_fail_write(struct bdev *b, u64 n);
/* Every write and flush from now on fails with -EIO (a dead disk) until bdev_faulty_crash. */
void bdev_faulty_fail_all(struct bdev *b);
/*
 * The @n-th write from now lands torn: a random proper subset of its sectors reach the device
 * (at least one sector keeps its old contents) and the write still returns 0, as a disk that
 * lost power mid-request would have reported nothing.
 */
void bdev_faulty_tear_write(struct bdev *b, u64 n);
/*
 * A power cut during the @n-th write from now: that write and every later write and flush
 * fail with -EIO (as bdev_faulty_fail_all) until bdev_faulty_crash.  Crash tests arm this at
 * a random @n, let the workload run into it, then call bdev_faulty_crash.  With
 * bdev_faulty_tear_write armed for the same write, that write lands torn (and fails): a power
 * cut in the middle of it.  (A torn write on its own returns 0 and the device keeps working,
 * which only a crash right after it makes realistic.)
 */
void bdev_faulty_die_after(struct bdev *b, u64 n);
/*
 * Simulated power cut: every write since the last successful flush is lost, except that
 * with @keep_random each unflushed sector independently survives with probability 1/2
 * (disks reorder).  Clears armed faults.  The device stays usable, like a rebooted machine.
 */
void bdev_faulty_crash(struct bdev *b, bool keep_random);
/*
 * The sectors of [off, off+len) that were written since the last flush reach the platter now,
 * before any flush: a disk writes its cache out in any order, so a later write can be durable
 * while an earlier one is not (a crash keeps these sectors, whatever @keep_random says).
 */
void bdev_faulty_persist(struct bdev *b, u64 off, size_t len);
/*
 * Flips bits in every byte of [off, off+len) (any byte range, clipped to the device) in the
 * durable and visible images alike.
 */
void bdev_faulty_corrupt(struct bdev *b, u64 off, size_t len);

/* I/O counts since creation; failed writes and flushes are not counted. */
struct bdev_counters {
	u64 reads, writes, flushes;
	u64 bytes_read, bytes_written;
};
void bdev_faulty_counters(struct bdev *b, struct bdev_counters *out);
/* Returns the number of sectors written since the last flush (what a crash would lose). */
u64 bdev_faulty_unflushed(struct bdev *b);

#endif
