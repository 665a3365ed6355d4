// SPDX-License-Identifier: GPL-2.0-only
/*
 * bdev.c - the three block device backends behind struct bdev_ops.
 *
 * File/blockdev backend.  The server reads and writes its devices with O_DIRECT so its
 * metadata never sits twice in memory and never depends on the page cache's writeback
 * (DESIGN.md 2).  O_DIRECT alone is not durability: the disk's volatile cache still holds
 * the data, so bdev_flush() is fdatasync() on every backend, which the kernel turns into a
 * cache flush for block devices.  Where the filesystem refuses O_DIRECT (tmpfs refuses it at
 * open, some filesystems only at the first I/O) the backend falls back to buffered I/O, which
 * the same fdatasync() makes durable.  A caller's buffer that is not BDEV_ALIGN-aligned is
 * copied through an aligned bounce buffer rather than refused.
 *
 * A file on a host filesystem that fills up (a sparse store file, a quota) fails writes with
 * ENOSPC or EDQUOT.  That is an I/O error of the device, not the snapshot store running out
 * of chunks (-ENOSPC in this project means the latter, and makes the full-store policy and
 * the user's messages say "the snapshot store is full"): it is returned as -EIO, logged once
 * when it starts and once when a write succeeds again, and the next request simply retries.
 *
 * RAM backend.  One calloc'd image; flush is a no-op.
 *
 * Faulty RAM backend.  Two images: @durable is what survives a power cut, @visible is what a
 * reader sees.  A per-sector bitmap marks sectors written since the last successful flush;
 * bdev_faulty_crash() copies each marked sector back from @durable (or, with keep_random,
 * keeps it with probability 1/2, which models a disk that reordered its cache).  A flush
 * copies the marked sectors into @durable.  Armed faults are counters of writes still to go.
 * One mutex serialises the faulty device, so its counters and images are always consistent.
 *
 * Invariants (faulty): for every sector s not marked unflushed, visible[s] == durable[s].
 */
#include "blk/bdev.h"
#include "util/log.h"
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Checks that a request is sector-aligned and inside the device. */
static int bdev_check_range(const struct bdev *b, size_t len, u64 off)
{
	if (len % BDEV_SECTOR || off % BDEV_SECTOR)
		return -EINVAL;
	if (off > b->size || len > b->size - off)
		return -EINVAL;
	return 0;
}

/*----------------------------------------------------------------
 * Regular files and block devices
 *--------------------------------------------------------------*/

struct bdev_file {
	struct bdev b;
	int fd;
	bool direct;	/* O_DIRECT is on; cleared for good if the filesystem refuses it */
	bool host_full; /* the last write failed for lack of host space (atomic) */
	char *path;
};

/* A write to @f failed with @err (ENOSPC, EDQUOT): say so, once until it works again. */
static int bdev_file_host_full(struct bdev_file *f, int err)
{
	if (!__atomic_exchange_n(&f->host_full, true, __ATOMIC_ACQ_REL))
		log_err("%s: the host filesystem holding it is out of space (%s): writes fail "
			"with I/O errors until space is freed; this is not the snapshot store "
			"being full",
			f->path, strerror(err));
	return -EIO;
}

/* Drops O_DIRECT after the filesystem refused an O_DIRECT request with EINVAL. */
static bool bdev_file_drop_direct(struct bdev_file *f)
{
	int fl = fcntl(f->fd, F_GETFL);

	if (fl < 0 || !(fl & O_DIRECT))
		return false;
	if (fcntl(f->fd, F_SETFL, fl & ~O_DIRECT) < 0)
		return false;
	f->direct = false;
	return true;
}

static int bdev_file_io(struct bdev_file *f, void *buf, size_t len, u64 off, bool write)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n =
			write ? pwrite(f->fd, (char *)buf + done, len - done, (off_t)(off + done))
			      : pread(f->fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EINVAL && f->direct && bdev_file_drop_direct(f))
				continue;
			if (write && (errno == ENOSPC || errno == EDQUOT))
				return bdev_file_host_full(f, errno);
			return -EIO;
		}
		if (n == 0) {
			if (write)
				return -EIO;
			/* A file shorter than its recorded size reads as zeros past its end. */
			memset((char *)buf + done, 0, len - done);
			break;
		}
		done += (size_t)n;
	}
	if (write && __atomic_load_n(&f->host_full, __ATOMIC_ACQUIRE) &&
	    __atomic_exchange_n(&f->host_full, false, __ATOMIC_ACQ_REL))
		log_info("%s: writes succeed again (host space freed)", f->path);
	return 0;
}

/* Runs one request, through an aligned bounce buffer when @buf is not aligned for O_DIRECT. */
static int bdev_file_rw(struct bdev *b, void *buf, size_t len, u64 off, bool write)
{
	struct bdev_file *f = container_of(b, struct bdev_file, b);
	void *bounce;
	int r;

	r = bdev_check_range(b, len, off);
	if (r || !len)
		return r;
	if (!f->direct || ((uintptr_t)buf % BDEV_ALIGN) == 0)
		return bdev_file_io(f, buf, len, off, write);
	if (posix_memalign(&bounce, BDEV_ALIGN, len))
		return -ENOMEM;
	if (write)
		memcpy(bounce, buf, len);
	r = bdev_file_io(f, bounce, len, off, write);
	if (!r && !write)
		memcpy(buf, bounce, len);
	free(bounce);
	return r;
}

static int bdev_file_read(struct bdev *b, void *buf, size_t len, u64 off)
{
	return bdev_file_rw(b, buf, len, off, false);
}

static int bdev_file_write(struct bdev *b, const void *buf, size_t len, u64 off)
{
	return bdev_file_rw(b, (void *)buf, len, off, true);
}

static int bdev_file_flush(struct bdev *b)
{
	struct bdev_file *f = container_of(b, struct bdev_file, b);

	return fdatasync(f->fd) ? -EIO : 0;
}

static void bdev_file_close(struct bdev *b)
{
	struct bdev_file *f = container_of(b, struct bdev_file, b);

	close(f->fd);
	free(f->path);
	free(f);
}

static const struct bdev_ops bdev_file_ops = {
	.read = bdev_file_read,
	.write = bdev_file_write,
	.flush = bdev_file_flush,
	.close = bdev_file_close,
};

int bdev_open(const char *path, unsigned flags, struct bdev **out)
{
	int mode = (flags & BDEV_RDONLY) ? O_RDONLY : O_RDWR;
	struct bdev_file *f;
	struct stat st;
	bool direct = !(flags & BDEV_BUFFERED);
	u64 size;
	int fd, r;

	/* O_NONBLOCK: opening a FIFO must not wait for a writer; cleared below. */
	fd = open(path, mode | O_CLOEXEC | O_NONBLOCK | (direct ? O_DIRECT : 0));
	if (fd < 0 && direct && errno == EINVAL) {
		direct = false; /* tmpfs and friends */
		fd = open(path, mode | O_CLOEXEC | O_NONBLOCK);
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		r = -errno;
		goto out_close;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
			r = -errno;
			goto out_close;
		}
	} else if (S_ISREG(st.st_mode)) {
		size = (u64)st.st_size;
	} else {
		r = -EINVAL;
		goto out_close;
	}
	size -= size % BDEV_SECTOR;
	if (!size) {
		r = -EINVAL;
		goto out_close;
	}
	if ((flags & (BDEV_LOCK_SHARED | BDEV_LOCK_EXCL)) &&
	    flock(fd, ((flags & BDEV_LOCK_EXCL) ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out_close;
	}
	f = xzalloc(sizeof(*f));
	f->fd = fd;
	f->direct = direct;
	f->path = xstrdup(path);
	f->b.ops = &bdev_file_ops;
	f->b.size = size;
	f->b.name = f->path;
	*out = &f->b;
	return 0;

out_close:
	close(fd);
	return r;
}

/*----------------------------------------------------------------
 * RAM
 *--------------------------------------------------------------*/

struct bdev_ram {
	struct bdev b;
	u8 *data;
};

static int bdev_ram_read(struct bdev *b, void *buf, size_t len, u64 off)
{
	struct bdev_ram *r = container_of(b, struct bdev_ram, b);
	int e = bdev_check_range(b, len, off);

	if (!e && len)
		memcpy(buf, r->data + off, len);
	return e;
}

static int bdev_ram_write(struct bdev *b, const void *buf, size_t len, u64 off)
{
	struct bdev_ram *r = container_of(b, struct bdev_ram, b);
	int e = bdev_check_range(b, len, off);

	if (!e && len)
		memcpy(r->data + off, buf, len);
	return e;
}

static int bdev_ram_flush(struct bdev *b)
{
	return 0;
}

static void bdev_ram_close(struct bdev *b)
{
	struct bdev_ram *r = container_of(b, struct bdev_ram, b);

	free(r->data);
	free(r);
}

static const struct bdev_ops bdev_ram_ops = {
	.read = bdev_ram_read,
	.write = bdev_ram_write,
	.flush = bdev_ram_flush,
	.close = bdev_ram_close,
};

struct bdev *bdev_ram_create(u64 size)
{
	struct bdev_ram *r = xzalloc(sizeof(*r));

	size = ROUND_UP(size ? size : BDEV_SECTOR, BDEV_SECTOR);
	r->data = xzalloc(size);
	r->b.ops = &bdev_ram_ops;
	r->b.size = size;
	r->b.name = "ram";
	return &r->b;
}

/*----------------------------------------------------------------
 * Fault-injecting RAM
 *--------------------------------------------------------------*/

struct bdev_faulty {
	struct bdev b;
	pthread_mutex_t lock;
	u8 *durable, *visible;
	u64 *unflushed; /* bitmap, one bit per sector written since the last flush */
	u64 rng;
	u64 fail_in, tear_in, die_in; /* an armed fault fires on the write that brings it to 0 */
	bool fail_all;
	struct bdev_counters ctr;
};

static struct bdev_faulty *to_faulty(struct bdev *b)
{
	return container_of(b, struct bdev_faulty, b);
}

/* xorshift64*: deterministic per seed, so a failing crash test replays exactly. */
static u64 faulty_rand(struct bdev_faulty *f)
{
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 0x2545F4914F6CDD1DULL;
}

static bool sector_test(const u64 *map, u64 s)
{
	return map[s / 64] & (1ULL << (s % 64));
}

static void sector_set(u64 *map, u64 s)
{
	map[s / 64] |= 1ULL << (s % 64);
}

static int bdev_faulty_read(struct bdev *b, void *buf, size_t len, u64 off)
{
	struct bdev_faulty *f = to_faulty(b);
	int e = bdev_check_range(b, len, off);

	if (e)
		return e;
	pthread_mutex_lock(&f->lock);
	memcpy(buf, f->visible + off, len);
	f->ctr.reads++;
	f->ctr.bytes_read += len;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int bdev_faulty_write(struct bdev *b, const void *buf, size_t len, u64 off)
{
	struct bdev_faulty *f = to_faulty(b);
	u64 first = off / BDEV_SECTOR, n = len / BDEV_SECTOR, lost = 0;
	bool tear = false, dies = false;
	int e = bdev_check_range(b, len, off);

	if (e)
		return e;
	pthread_mutex_lock(&f->lock);
	if (f->fail_all)
		goto out_eio;
	if (f->die_in && --f->die_in == 0)
		dies = true;
	if (f->tear_in && --f->tear_in == 0)
		tear = true;
	if (dies && !tear)
		goto out_die;
	if (f->fail_in && --f->fail_in == 0)
		goto out_eio;
	f->ctr.writes++;
	f->ctr.bytes_written += len;
	/* A torn write loses at least one sector (chosen below) and a random subset of the rest. */
	if (tear && n)
		lost = faulty_rand(f) % n;
	for (u64 i = 0; i < n; i++) {
		if (tear && (i == lost || (faulty_rand(f) & 1)))
			continue;
		memcpy(f->visible + (first + i) * BDEV_SECTOR, (const u8 *)buf + i * BDEV_SECTOR,
		       BDEV_SECTOR);
		sector_set(f->unflushed, first + i);
	}
	if (dies)
		goto out_die; /* torn by the power cut that kills the device */
	pthread_mutex_unlock(&f->lock);
	return 0;

out_die:
	f->fail_all = true;
out_eio:
	pthread_mutex_unlock(&f->lock);
	return -EIO;
}

static int bdev_faulty_flush(struct bdev *b)
{
	struct bdev_faulty *f = to_faulty(b);
	u64 sectors = b->size / BDEV_SECTOR;

	pthread_mutex_lock(&f->lock);
	if (f->fail_all) {
		pthread_mutex_unlock(&f->lock);
		return -EIO;
	}
	f->ctr.flushes++;
	for (u64 w = 0; w < DIV_ROUND_UP(sectors, 64); w++) {
		if (!f->unflushed[w])
			continue;
		for (u64 s = w * 64; s < MIN(sectors, w * 64 + 64); s++)
			if (sector_test(f->unflushed, s))
				memcpy(f->durable + s * BDEV_SECTOR, f->visible + s * BDEV_SECTOR,
				       BDEV_SECTOR);
		f->unflushed[w] = 0;
	}
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void bdev_faulty_close(struct bdev *b)
{
	struct bdev_faulty *f = to_faulty(b);

	pthread_mutex_destroy(&f->lock);
	free(f->durable);
	free(f->visible);
	free(f->unflushed);
	free(f);
}

static const struct bdev_ops bdev_faulty_ops = {
	.read = bdev_faulty_read,
	.write = bdev_faulty_write,
	.flush = bdev_faulty_flush,
	.close = bdev_faulty_close,
};

struct bdev *bdev_faulty_create(u64 size, u64 seed)
{
	struct bdev_faulty *f = xzalloc(sizeof(*f));
	u64 sectors;

	size = ROUND_UP(size ? size : BDEV_SECTOR, BDEV_SECTOR);
	sectors = size / BDEV_SECTOR;
	f->durable = xzalloc(size);
	f->visible = xzalloc(size);
	f->unflushed = xzalloc(DIV_ROUND_UP(sectors, 64) * sizeof(u64));
	f->rng = seed * 0x9E3779B97F4A7C15ULL + 1; /* never 0: xorshift would stay at 0 */
	pthread_mutex_init(&f->lock, NULL);
	f->b.ops = &bdev_faulty_ops;
	f->b.size = size;
	f->b.name = "faulty";
	return &f->b;
}

void bdev_faulty_fail_write(struct bdev *b, u64 n)
{
	struct bdev_faulty *f = to_faulty(b);

	pthread_mutex_lock(&f->lock);
	f->fail_in = n;
	pthread_mutex_unlock(&f->lock);
}

void bdev_faulty_fail_all(struct bdev *b)
{
	struct bdev_faulty *f = to_faulty(b);

	pthread_mutex_lock(&f->lock);
	f->fail_all = true;
	pthread_mutex_unlock(&f->lock);
}

void bdev_faulty_die_after(struct bdev *b, u64 n)
{
	struct bdev_faulty *f = to_faulty(b);

	pthread_mutex_lock(&f->lock);
	f->die_in = n;
	pthread_mutex_unlock(&f->lock);
}

void bdev_faulty_tear_write(struct bdev *b, u64 n)
{
	struct bdev_faulty *f = to_faulty(b);

	pthread_mutex_lock(&f->lock);
	f->tear_in = n;
	pthread_mutex_unlock(&f->lock);
}

void bdev_faulty_crash(struct bdev *b, bool keep_random)
{
	struct bdev_faulty *f = to_faulty(b);
	u64 sectors = b->size / BDEV_SECTOR;

	pthread_mutex_lock(&f->lock);
	for (u64 w = 0; w < DIV_ROUND_UP(sectors, 64); w++) {
		if (!f->unflushed[w])
			continue;
		for (u64 s = w * 64; s < MIN(sectors, w * 64 + 64); s++) {
			u8 *from, *to;

			if (!sector_test(f->unflushed, s))
				continue;
			from = f->durable, to = f->visible;
			if (keep_random && (faulty_rand(f) & 1))
				from = f->visible, to = f->durable;
			memcpy(to + s * BDEV_SECTOR, from + s * BDEV_SECTOR, BDEV_SECTOR);
		}
		f->unflushed[w] = 0;
	}
	f->fail_in = f->tear_in = f->die_in = 0;
	f->fail_all = false;
	pthread_mutex_unlock(&f->lock);
}

void bdev_faulty_persist(struct bdev *b, u64 off, size_t len)
{
	struct bdev_faulty *f = to_faulty(b);
	u64 end = MIN(b->size, off + len);

	pthread_mutex_lock(&f->lock);
	for (u64 s = off / BDEV_SECTOR; s < DIV_ROUND_UP(end, BDEV_SECTOR); s++) {
		if (!sector_test(f->unflushed, s))
			continue;
		memcpy(f->durable + s * BDEV_SECTOR, f->visible + s * BDEV_SECTOR, BDEV_SECTOR);
		f->unflushed[s / 64] &= ~(1ULL << (s % 64));
	}
	pthread_mutex_unlock(&f->lock);
}

void bdev_faulty_corrupt(struct bdev *b, u64 off, size_t len)
{
	struct bdev_faulty *f = to_faulty(b);

	if (off >= b->size)
		return;
	len = (size_t)MIN((u64)len, b->size - off);
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < len; i++) {
		u8 flip = (u8)(faulty_rand(f) | 1); /* never 0: every byte really changes */

		f->durable[off + i] ^= flip;
		f->visible[off + i] ^= flip;
	}
	pthread_mutex_unlock(&f->lock);
}

void bdev_faulty_counters(struct bdev *b, struct bdev_counters *out)
{
	struct bdev_faulty *f = to_faulty(b);

	pthread_mutex_lock(&f->lock);
	*out = f->ctr;
	pthread_mutex_unlock(&f->lock);
}

u64 bdev_faulty_unflushed(struct bdev *b)
{
	struct bdev_faulty *f = to_faulty(b);
	u64 words = DIV_ROUND_UP(b->size / BDEV_SECTOR, 64), n = 0;

	pthread_mutex_lock(&f->lock);
	for (u64 w = 0; w < words; w++)
		n += (u64)__builtin_popcountll(f->unflushed[w]);
	pthread_mutex_unlock(&f->lock);
	return n;
}
