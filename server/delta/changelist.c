// SPDX-License-Identifier: GPL-2.0-only
/*
 * changelist.c - write and read changelist files (format in changelist.h and
 * doc/delta-format.md).
 *
 * Invariants of a valid file: the header checksum matches; chunk size is a power of two in
 * 512 .. 1 MiB; exactly count chunks follow, strictly increasing and below volume_chunks;
 * their XDR bytes have checksum csum; nothing follows.  The writer refuses to append
 * anything that would break these, so a committed file always validates.
 *
 * Crash argument: until commit renames <path>.tmp over <path>, <path> is the previous
 * changelist or absent; the rename happens after the final header and body are fsynced, so
 * a crash leaves either the old file or the complete new one (plus maybe a stale .tmp that
 * the next create truncates).
 */
#include "delta/changelist.h"
#include "util/path.h"
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include "util/crc32c.h"
#include "delta/delta_stream.h"
#include <rpc/xdr.h> /* after base.h: defines MIN/MAX only if unset */

/* Body I/O unit: 8192 chunks per read or write. */
#define CL_BUF_BYTES (64u << 10)

static bool hdr_xdr(XDR *x, struct changelist_header *h, u32 *magic, u32 *version)
{
	return xdr_uint32_t(x, magic) && xdr_uint32_t(x, version) &&
	       xdr_opaque(x, (char *)h->uuid, 16) && xdr_uint32_t(x, &h->chunk_size) &&
	       xdr_uint32_t(x, &h->src_tag) && xdr_uint64_t(x, (uint64_t *)&h->src_gen) &&
	       xdr_uint32_t(x, &h->tgt_tag) && xdr_uint64_t(x, (uint64_t *)&h->tgt_gen) &&
	       xdr_uint64_t(x, (uint64_t *)&h->volume_chunks) &&
	       xdr_uint64_t(x, (uint64_t *)&h->count) && xdr_uint64_t(x, (uint64_t *)&h->csum);
}

static void hdr_pack(const struct changelist_header *h, u8 *buf)
{
	struct changelist_header hc = *h;
	u32 magic = CHANGELIST_MAGIC, version = CHANGELIST_VERSION, c;
	XDR x;

	xdrmem_create(&x, (char *)buf, CHANGELIST_HEADER_BYTES, XDR_ENCODE);
	VERIFY(hdr_xdr(&x, &hc, &magic, &version));
	c = crc32c(CHANGELIST_SEED, buf, xdr_getpos(&x));
	VERIFY(xdr_uint32_t(&x, &c) && xdr_getpos(&x) == CHANGELIST_HEADER_BYTES);
}

static const char *hdr_invalid(const struct changelist_header *h)
{
	if (!IS_POWER_OF_2(h->chunk_size) || h->chunk_size < 512 || h->chunk_size > (1u << 20))
		return "chunk size is not a power of two in 512 .. 1 MiB";
	if (!h->volume_chunks || h->volume_chunks > (UINT64_MAX >> 1) / h->chunk_size)
		return "volume size out of range";
	if (h->count > h->volume_chunks)
		return "more chunks than the volume has";
	return NULL;
}

static int write_all(int fd, const void *buf, size_t len)
{
	return delta_fd_write(&fd, buf, len);
}

struct changelist_writer {
	int fd;
	char *path, *tmp;
	struct changelist_header h;
	u64 next_min;
	u8 *buf;
	size_t fill;
};

int changelist_create(struct changelist_writer **wp, const char *path,
		      const struct changelist_header *h)
{
	struct changelist_writer *w;
	u8 hb[CHANGELIST_HEADER_BYTES];
	size_t plen = strlen(path);
	int rc;

	w = xzalloc(sizeof(*w));
	w->h = *h;
	w->h.count = 0;
	w->h.csum = 0;
	if (hdr_invalid(&w->h)) {
		free(w);
		return -EINVAL;
	}
	w->path = xstrdup(path);
	w->tmp = xmalloc(plen + 5);
	memcpy(w->tmp, path, plen);
	memcpy(w->tmp + plen, ".tmp", 5);
	w->fd = path_open_file(w->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644); /* no symlink */
	if (w->fd < 0) {
		rc = w->fd;
		goto out_free;
	}
	hdr_pack(&w->h, hb);
	rc = write_all(w->fd, hb, sizeof(hb));
	if (rc) {
		close(w->fd);
		unlink(w->tmp);
		goto out_free;
	}
	w->buf = xmalloc(CL_BUF_BYTES);
	*wp = w;
	return 0;
out_free:
	free(w->path);
	free(w->tmp);
	free(w);
	return rc;
}

static int w_flush(struct changelist_writer *w)
{
	int rc;

	if (!w->fill)
		return 0;
	w->h.csum = delta_csum_update(w->h.csum, w->buf, w->fill);
	rc = write_all(w->fd, w->buf, w->fill);
	w->fill = 0;
	return rc;
}

int changelist_append(struct changelist_writer *w, u64 chunk)
{
	XDR x;
	int rc;

	if (chunk < w->next_min || chunk >= w->h.volume_chunks)
		return -EINVAL;
	if (w->fill + 8 > CL_BUF_BYTES) {
		rc = w_flush(w);
		if (rc)
			return rc;
	}
	xdrmem_create(&x, (char *)w->buf + w->fill, 8, XDR_ENCODE);
	VERIFY(xdr_uint64_t(&x, (uint64_t *)&chunk));
	w->fill += 8;
	w->h.count++;
	w->next_min = chunk + 1;
	return 0;
}

static void w_free(struct changelist_writer *w)
{
	free(w->buf);
	free(w->path);
	free(w->tmp);
	free(w);
}

void changelist_abort(struct changelist_writer *w)
{
	if (!w)
		return;
	close(w->fd);
	unlink(w->tmp);
	w_free(w);
}

int changelist_commit(struct changelist_writer *w)
{
	u8 hb[CHANGELIST_HEADER_BYTES];
	int rc = w_flush(w);

	hdr_pack(&w->h, hb);
	if (!rc && pwrite(w->fd, hb, sizeof(hb), 0) != (ssize_t)sizeof(hb))
		rc = errno ? -errno : -EIO;
	if (!rc && fsync(w->fd))
		rc = -errno;
	if (close(w->fd) && !rc)
		rc = -errno;
	if (!rc && rename(w->tmp, w->path))
		rc = -errno;
	if (!rc) {
		char *d = xstrdup(w->path);
		int dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0) {
			if (fsync(dfd))
				rc = -errno;
			close(dfd);
		}
		free(d);
	} else {
		unlink(w->tmp);
	}
	w_free(w);
	return rc;
}

struct changelist_reader {
	int fd;
	struct changelist_header h;
	u64 seen, next_min, csum;
	u8 *buf;
	size_t len, off;
	char err[160];
};

static __printf(2, 3) int r_fail(struct changelist_reader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	return -EILSEQ;
}

int changelist_open(struct changelist_reader **rp, const char *path, struct changelist_header *h)
{
	struct changelist_reader *r;
	u8 hb[CHANGELIST_HEADER_BYTES];
	u32 magic, version, stored;
	const char *why;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	XDR x;

	if (fd < 0)
		return -errno;
	n = delta_fd_read(&fd, hb, sizeof(hb));
	if (n != (ssize_t)sizeof(hb)) {
		close(fd);
		return n < 0 ? (int)n : -EILSEQ;
	}
	r = xzalloc(sizeof(*r));
	xdrmem_create(&x, (char *)hb, sizeof(hb), XDR_DECODE);
	if (!hdr_xdr(&x, &r->h, &magic, &version) || !xdr_uint32_t(&x, &stored) ||
	    magic != CHANGELIST_MAGIC || version != CHANGELIST_VERSION ||
	    stored != crc32c(CHANGELIST_SEED, hb, sizeof(hb) - 4) || (why = hdr_invalid(&r->h))) {
		close(fd);
		free(r);
		return -EILSEQ;
	}
	r->fd = fd;
	r->buf = xmalloc(CL_BUF_BYTES);
	if (h)
		*h = r->h;
	*rp = r;
	return 0;
}

int changelist_next(struct changelist_reader *r, u64 *chunk)
{
	uint64_t v;
	XDR x;

	if (r->off == r->len) {
		ssize_t n;
		u64 left = (r->h.count - r->seen) * 8;

		if (!left) {
			u8 extra;

			if (r->csum != r->h.csum)
				return r_fail(r, "changelist checksum mismatch");
			n = delta_fd_read(&r->fd, &extra, 1);
			if (n < 0)
				return (int)n;
			return n ? r_fail(r, "bytes after the last chunk") : 0;
		}
		n = delta_fd_read(&r->fd, r->buf, (size_t)MIN(left, (u64)CL_BUF_BYTES));
		if (n < 0)
			return (int)n;
		if ((size_t)n != MIN(left, (u64)CL_BUF_BYTES))
			return r_fail(r, "changelist truncated after %llu of %llu chunks",
				      (unsigned long long)(r->seen + (u64)n / 8),
				      (unsigned long long)r->h.count);
		r->csum = delta_csum_update(r->csum, r->buf, (size_t)n);
		r->len = (size_t)n;
		r->off = 0;
	}
	xdrmem_create(&x, (char *)r->buf + r->off, 8, XDR_DECODE);
	VERIFY(xdr_uint64_t(&x, &v));
	r->off += 8;
	if (v < r->next_min)
		return r_fail(r, "chunk %llu out of order", (unsigned long long)v);
	if (v >= r->h.volume_chunks)
		return r_fail(r, "chunk %llu beyond the volume (%llu chunks)",
			      (unsigned long long)v, (unsigned long long)r->h.volume_chunks);
	r->next_min = v + 1;
	r->seen++;
	*chunk = v;
	return 1;
}

int changelist_rewind(struct changelist_reader *r)
{
	if (lseek(r->fd, CHANGELIST_HEADER_BYTES, SEEK_SET) < 0)
		return -errno;
	r->seen = r->next_min = r->csum = 0;
	r->len = r->off = 0;
	r->err[0] = 0;
	return 0;
}

void changelist_close(struct changelist_reader *r)
{
	if (!r)
		return;
	close(r->fd);
	free(r->buf);
	free(r);
}

const char *changelist_error(const struct changelist_reader *r)
{
	return r->err;
}

int changelist_verify(const char *path, struct changelist_header *h, char *why, size_t whylen)
{
	struct changelist_reader *r;
	u64 c;
	int rc = changelist_open(&r, path, h);

	if (rc) {
		if (why)
			snprintf(why, whylen, "%s",
				 rc == -EILSEQ ? "not a valid changelist header" : errmsg(rc));
		return rc;
	}
	while ((rc = changelist_next(r, &c)) == 1)
		;
	if (rc && why)
		snprintf(why, whylen, "%s", rc == -EILSEQ ? changelist_error(r) : errmsg(rc));
	changelist_close(r);
	return rc;
}
