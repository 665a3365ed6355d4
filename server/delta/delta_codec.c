// SPDX-License-Identifier: GPL-2.0-only
/*
 * delta_codec.c - raw, zlib, zstd, xdelta3 and zstd-with-prefix codecs for delta extents.
 *
 * What.  Each codec turns one target extent (and, for the differencing codecs, the same
 * extent of the source snapshot) into a self-contained payload and back.  The in-process
 * codecs (zlib, zstd, zstd-prefix) keep one reusable library context per delta_codec.
 * xdelta3 is a program (Debian ships no library), so it runs once per batch and per slot
 * size (the next power of two >= the extent, >= 16 KiB: at most 7 runs per batch): the
 * sources of a batch are laid out in one memfd at slot boundaries, zero padded, the targets
 * in another at the same boundaries, and xdelta3 -W <slot> cuts exactly one VCDIFF window
 * per extent.  We then split its output into windows and rebase
 * each window's source segment to its own slot, which makes every window a standalone
 * one-window VCDIFF file that `xdelta3 -d -s <source extent>` decodes.  A window whose source
 * segment strays into another extent's slot is re-encoded standalone (vc_rewrite: own-slot
 * copies kept, foreign copies reclaimed from the own source when the bytes match, else
 * literal); one that copies from earlier target windows falls back.  Decoding does the
 * reverse: rebase every window into a shared source memfd and run xdelta3 -d once.  The
 * VCDIFF parsing and rewriting is in vcdiff.c.
 *
 * Invariants.
 *  - A payload returned by delta_codec_encode_batch() always decodes to the target: raw
 *    trivially; every differencing payload was decoded and compared here before being
 *    returned (Zumastor did this; a differencing bug would otherwise corrupt replicas
 *    silently); compressors are trusted unless opts.verify_all.
 *  - A payload is never larger than raw: if a codec does not win, the job is RAW.
 *  - Decoders check every length before use: a payload must decode to exactly the extent
 *    length and consume all its bytes; zstd windows are capped so a hostile frame header
 *    cannot make us allocate more than DELTA_ZSTD_WINDOWLOG_MAX.
 *
 * Failure.  Nothing here writes to disk.  The xdelta3 child works on memfds only, so a
 * crash leaves no temporary files; a child that fails or is killed makes its batch fall
 * back to RAW (encode) or report -EIO/-EILSEQ (decode), in which case the jobs of the
 * failed run are decoded again in halves so the first bad job is pinpointed and the good
 * ones before it still count.
 */
#include "delta/delta_codec.h"
#include "delta/vcdiff.h"
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

/* zstd frames we accept never need a window above 4 MiB (extent 1 MiB + prefix 1 MiB). */
#define DELTA_ZSTD_WINDOWLOG_MAX 22
/* zstd's smallest window log (ZSTD_WINDOWLOG_MIN needs the static-only API). */
#define ZSTD_MIN_WINDOWLOG 10u
/* xdelta3 rejects -B below 512 KiB. */
#define XDELTA_MIN_SRCWIN (512u << 10)

struct delta_codec {
	struct delta_codec_opts opts;
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	char err[256];
	struct delta_codec_stats stats;
	/* scratch reused across batches */
	u8 *scratch;
	size_t scratch_len;
	u8 *verify;
	size_t verify_len;
};

static __printf(2, 3) int codec_fail(struct delta_codec *dc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dc->err, sizeof(dc->err), fmt, ap);
	va_end(ap);
	return 0;
}

size_t delta_codec_bound(size_t len)
{
	size_t z = compressBound(len), s = ZSTD_compressBound(len);
	/* xdelta3 payloads are kept only when smaller than raw; raw is len. */
	return MAX(MAX(z, s), len) + 64;
}

/* ---- raw ---- */

static int raw_encode(struct delta_codec *dc, int level, struct delta_job *jobs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		memcpy(jobs[i].out, jobs[i].tgt, jobs[i].len);
		jobs[i].out_len = jobs[i].len;
		jobs[i].err = 0;
	}
	return 0;
}

static int raw_decode(struct delta_codec *dc, struct delta_djob *jobs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct delta_djob *j = &jobs[i];

		if (j->payload_len != j->len) {
			codec_fail(dc, "raw payload is %zu bytes for a %zu byte extent",
				   j->payload_len, j->len);
			j->err = -EILSEQ;
			continue;
		}
		memcpy(j->tgt, j->payload, j->len);
		j->err = 0;
	}
	return 0;
}

/* ---- zlib ---- */

static int zlib_encode(struct delta_codec *dc, int level, struct delta_job *jobs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct delta_job *j = &jobs[i];
		uLongf dlen = compressBound(j->len);
		int err = compress2(j->out, &dlen, j->tgt, j->len, level);

		if (err != Z_OK) {
			codec_fail(dc, "zlib compress2 failed (%d)", err);
			j->err = -EIO;
			continue;
		}
		j->out_len = dlen;
		j->err = 0;
	}
	return 0;
}

static int zlib_decode(struct delta_codec *dc, struct delta_djob *jobs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct delta_djob *j = &jobs[i];
		uLongf dlen = j->len;
		uLong slen = j->payload_len;
		int err = uncompress2(j->tgt, &dlen, j->payload, &slen);

		j->err = 0;
		if (err != Z_OK || dlen != j->len || slen != j->payload_len) {
			codec_fail(dc, "corrupt zlib payload (%s, %lu of %zu bytes out)",
				   err == Z_OK ? "trailing bytes" : zError(err),
				   (unsigned long)dlen, j->len);
			j->err = -EILSEQ;
		}
	}
	return 0;
}

/* ---- zstd and zstd with prefix ---- */

static int zstd_cctx(struct delta_codec *dc)
{
	if (!dc->cctx)
		dc->cctx = ZSTD_createCCtx();
	if (!dc->cctx)
		return -ENOMEM;
	ZSTD_CCtx_reset(dc->cctx, ZSTD_reset_session_and_parameters);
	return 0;
}

static int zstd_dctx(struct delta_codec *dc)
{
	if (!dc->dctx)
		dc->dctx = ZSTD_createDCtx();
	if (!dc->dctx)
		return -ENOMEM;
	ZSTD_DCtx_reset(dc->dctx, ZSTD_reset_session_and_parameters);
	ZSTD_DCtx_setParameter(dc->dctx, ZSTD_d_windowLogMax, DELTA_ZSTD_WINDOWLOG_MAX);
	return 0;
}

static unsigned ceil_log2(size_t v)
{
	unsigned l = 0;

	while (((size_t)1 << l) < v)
		l++;
	return l;
}

static int zstd_encode_one(struct delta_codec *dc, int level, struct delta_job *j, bool prefix)
{
	size_t r;
	int err = zstd_cctx(dc);

	if (err)
		return err;
	ZSTD_CCtx_setParameter(dc->cctx, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(dc->cctx, ZSTD_c_contentSizeFlag, 1);
	ZSTD_CCtx_setParameter(dc->cctx, ZSTD_c_checksumFlag, 0);
	if (prefix) {
		/* The window must reach from the end of the target back over the whole prefix. */
		unsigned wlog = MAX(ceil_log2(j->src_len + j->len), ZSTD_MIN_WINDOWLOG);

		ZSTD_CCtx_setParameter(dc->cctx, ZSTD_c_windowLog, (int)wlog);
		r = ZSTD_CCtx_refPrefix(dc->cctx, j->src, j->src_len);
		if (ZSTD_isError(r)) {
			codec_fail(dc, "zstd refPrefix: %s", ZSTD_getErrorName(r));
			return -EIO;
		}
	}
	r = ZSTD_compress2(dc->cctx, j->out, ZSTD_compressBound(j->len), j->tgt, j->len);
	if (ZSTD_isError(r)) {
		codec_fail(dc, "zstd compress: %s", ZSTD_getErrorName(r));
		return -EIO;
	}
	j->out_len = r;
	return 0;
}

static int zstd_encode_common(struct delta_codec *dc, int level, struct delta_job *jobs, unsigned n,
			      bool prefix)
{
	for (unsigned i = 0; i < n; i++) {
		struct delta_job *j = &jobs[i];

		if (prefix && (!j->src || j->src_len != j->len)) {
			j->err = -EOPNOTSUPP;
			continue;
		}
		j->err = zstd_encode_one(dc, level, j, prefix);
		if (j->err == -ENOMEM)
			return -ENOMEM;
	}
	return 0;
}

static int zstd_encode(struct delta_codec *dc, int level, struct delta_job *jobs, unsigned n)
{
	return zstd_encode_common(dc, level, jobs, n, false);
}

static int zstdp_encode(struct delta_codec *dc, int level, struct delta_job *jobs, unsigned n)
{
	return zstd_encode_common(dc, level, jobs, n, true);
}

static int zstd_decode_one(struct delta_codec *dc, struct delta_djob *j, bool prefix)
{
	unsigned long long fcs;
	size_t r;
	int err = zstd_dctx(dc);

	if (err)
		return err;
	fcs = ZSTD_getFrameContentSize(j->payload, j->payload_len);
	if (fcs != j->len) {
		codec_fail(dc, "corrupt zstd payload: frame content size %lld, extent %zu",
			   (long long)fcs, j->len);
		return -EILSEQ;
	}
	r = ZSTD_findFrameCompressedSize(j->payload, j->payload_len);
	if (ZSTD_isError(r) || r != j->payload_len) {
		codec_fail(dc, "corrupt zstd payload: frame is %s bytes of %zu",
			   ZSTD_isError(r) ? "not" : "fewer", j->payload_len);
		return -EILSEQ;
	}
	if (prefix) {
		if (!j->src || j->src_len != j->len) {
			codec_fail(dc, "zstd-prefix payload needs the source extent");
			return -EINVAL;
		}
		r = ZSTD_DCtx_refPrefix(dc->dctx, j->src, j->src_len);
		if (ZSTD_isError(r)) {
			codec_fail(dc, "zstd refPrefix: %s", ZSTD_getErrorName(r));
			return -EIO;
		}
	}
	r = ZSTD_decompressDCtx(dc->dctx, j->tgt, j->len, j->payload, j->payload_len);
	if (ZSTD_isError(r) || r != j->len) {
		codec_fail(dc, "corrupt zstd payload: %s",
			   ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short output");
		return -EILSEQ;
	}
	return 0;
}

static int zstd_decode_common(struct delta_codec *dc, struct delta_djob *jobs, unsigned n,
			      bool prefix)
{
	for (unsigned i = 0; i < n; i++) {
		jobs[i].err = zstd_decode_one(dc, &jobs[i], prefix);
		if (jobs[i].err == -ENOMEM)
			return -ENOMEM;
	}
	return 0;
}

static int zstd_decode(struct delta_codec *dc, struct delta_djob *jobs, unsigned n)
{
	return zstd_decode_common(dc, jobs, n, false);
}

static int zstdp_decode(struct delta_codec *dc, struct delta_djob *jobs, unsigned n)
{
	return zstd_decode_common(dc, jobs, n, true);
}

/* ---- xdelta3: memfds, one child process per run ---- */

static int memfd_new(struct delta_codec *dc, const char *name)
{
	int fd = memfd_create(name, 0);

	if (fd < 0) {
		codec_fail(dc, "memfd_create: %s", strerror(errno));
		return -errno;
	}
	return fd;
}

static int fd_write_zeros(int fd, size_t len)
{
	static const u8 zeros[4096];

	while (len) {
		size_t k = MIN(len, sizeof(zeros));
		int err = write_full(fd, zeros, k);

		if (err)
			return err;
		len -= k;
	}
	return 0;
}

/* Maps the whole of memfd @fd read-only; *len gets its size.  NULL for an empty file. */
static const u8 *fd_map(int fd, size_t *len)
{
	struct stat st;
	void *p;

	*len = 0;
	if (fstat(fd, &st) || st.st_size <= 0)
		return NULL;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	*len = (size_t)st.st_size;
	return p;
}

extern char **environ;

/*
 * Runs xdelta3 with @args (after the program name), stdin from @in_fd, stdout to @out_fd.
 * The XDELTA environment variable (extra arguments) is dropped.  Returns 0 on exit 0,
 * -ENOENT if the program cannot be started, -EIO otherwise (message in dc->err, with the
 * first line of the child's stderr).
 */
static int xdelta3_run(struct delta_codec *dc, char **args, int in_fd, int out_fd)
{
	const char *prog = dc->opts.xdelta3_path ? dc->opts.xdelta3_path : "xdelta3";
	posix_spawn_file_actions_t fa;
	char *argv[24];
	char **envp;
	size_t nenv = 0, k = 0;
	int err_fd, status, err;
	pid_t pid;

	argv[k++] = (char *)prog;
	for (size_t i = 0; args[i] && k < ARRAY_SIZE(argv) - 1; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	for (char **e = environ; *e; e++)
		nenv++;
	envp = xmalloc((nenv + 1) * sizeof(*envp));
	k = 0;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "XDELTA=", 7))
			envp[k++] = *e;
	envp[k] = NULL;

	err_fd = memfd_new(dc, "xdelta3-err");
	if (err_fd < 0) {
		free(envp);
		return err_fd;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
	err = posix_spawnp(&pid, prog, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	dc->stats.xdelta3_runs++;
	if (err) {
		codec_fail(dc, "cannot run %s: %s", prog, strerror(err));
		close(err_fd);
		return err == ENOENT ? -ENOENT : -EIO;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			status = -1;
			break;
		}
	err = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		char msg[160] = "";
		ssize_t r = pread(err_fd, msg, sizeof(msg) - 1, 0);

		if (r > 0) {
			msg[r] = 0;
			msg[strcspn(msg, "\n")] = 0;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			err = -ENOENT;
		else
			err = -EIO;
		codec_fail(dc, "%s failed (status %d): %s", prog,
			   WIFEXITED(status) ? WEXITSTATUS(status) : -1, msg);
	}
	close(err_fd);
	return err;
}

/*
 * The VCDIFF window of an extent of len bytes: the next power of two, at least xdelta3's
 * minimum window.  Extents of one slot size share an xdelta3 run (at most 7 runs per batch
 * for 4 KiB .. 1 MiB extents); the padding is zeros, which cost a RUN instruction.
 */
static size_t xd_slot(size_t len)
{
	size_t slot = DELTA_XDELTA_MIN_WINDOW;

	while (slot < len)
		slot <<= 1;
	return slot;
}

/* Encodes jobs[idx[0..m)], all of length len, in one xdelta3 run. */
static int xdelta3_encode_run(struct delta_codec *dc, int level, struct delta_job *jobs,
			      const unsigned *idx, unsigned m)
{
	size_t slot = xd_slot(jobs[idx[0]].len), outlen = 0, total = slot * m;
	int src_fd = -1, tgt_fd = -1, out_fd = -1, err, hl;
	char path[64], wopt[32], bopt[32], lopt[8];
	const u8 *out = NULL, *p, *end;
	char *args[16];
	unsigned k = 0;

	src_fd = memfd_new(dc, "xd-src");
	tgt_fd = memfd_new(dc, "xd-tgt");
	out_fd = memfd_new(dc, "xd-out");
	err = (src_fd < 0) ? src_fd : (tgt_fd < 0) ? tgt_fd : (out_fd < 0) ? out_fd : 0;
	for (unsigned i = 0; !err && i < m; i++) {
		const struct delta_job *j = &jobs[idx[i]];

		err = write_full(src_fd, j->src, j->len);
		if (!err)
			err = fd_write_zeros(src_fd, slot - j->len);
		if (!err)
			err = write_full(tgt_fd, j->tgt, j->len);
		if (!err)
			err = fd_write_zeros(tgt_fd, slot - j->len);
	}
	if (err) {
		codec_fail(dc, "xdelta3 batch: writing memfd: %s", errmsg(err));
		goto out_close;
	}
	lseek(tgt_fd, 0, SEEK_SET);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", src_fd);
	snprintf(wopt, sizeof(wopt), "%zu", slot);
	snprintf(bopt, sizeof(bopt), "%zu", MAX(total, (size_t)XDELTA_MIN_SRCWIN));
	snprintf(lopt, sizeof(lopt), "-%d", level);
	args[k++] = "-e";
	args[k++] = "-c";
	args[k++] = lopt;
	args[k++] = "-S";
	args[k++] = "none";
	args[k++] = "-W";
	args[k++] = wopt;
	args[k++] = "-B";
	args[k++] = bopt;
	args[k++] = "-s";
	args[k++] = path;
	args[k++] = "-A";
	args[k] = NULL;
	err = xdelta3_run(dc, args, tgt_fd, out_fd);
	if (err)
		goto out_close;
	out = fd_map(out_fd, &outlen);
	hl = out ? vc_header_len(out, outlen) : -EILSEQ;
	if (hl < 0) {
		codec_fail(dc, "xdelta3 produced no valid VCDIFF header");
		err = -EIO;
		goto out_unmap;
	}
	p = out + hl;
	end = out + outlen;
	for (unsigned i = 0; i < m; i++) {
		struct delta_job *j = &jobs[idx[i]];
		size_t len = j->len;
		struct vc_window w;
		u64 base = (u64)i * slot;

		if (vc_window_parse(p, end, &w) || w.tgt_len != slot) {
			codec_fail(dc, "xdelta3 output: window %u is not one %zu byte extent", i,
				   slot);
			err = -EIO;
			goto out_unmap;
		}
		p = w.end;
		j->err = 0;
		if (w.ind & VCD_TARGET) {
			j->err = -EOPNOTSUPP;
		} else if ((w.ind & VCD_SOURCE) &&
			   (w.seg_pos < base || w.seg_pos + w.seg_len > base + slot)) {
			/* matched another extent's source: make it standalone */
			ssize_t wl = (size_t)hl < len
					     ? vc_rewrite(&w, base, slot, j->src, j->tgt, len,
							  j->out + hl, len - (size_t)hl)
					     : -EOPNOTSUPP;

			if (wl < 0) {
				j->err = (int)wl == -EILSEQ ? -EIO : (int)wl;
			} else {
				memcpy(j->out, out, (size_t)hl);
				j->out_len = (size_t)hl + (size_t)wl;
				dc->stats.xdelta3_rewrites++;
			}
			continue;
		}
		/* header + window with rebased segment; one larger than raw is useless */
		if (!j->err && (size_t)hl + 32 + w.enc_len > len) {
			j->err = -EOPNOTSUPP;
		} else if (!j->err) {
			memcpy(j->out, out, (size_t)hl);
			j->out_len = (size_t)hl +
				     vc_window_emit(j->out + hl, &w,
						    (w.ind & VCD_SOURCE) ? w.seg_pos - base : 0);
		}
	}
	if (p != end) {
		codec_fail(dc, "xdelta3 output: %zu bytes after the last window",
			   (size_t)(end - p));
		err = -EIO;
	}
out_unmap:
	if (out)
		munmap((void *)out, outlen);
out_close:
	if (src_fd >= 0)
		close(src_fd);
	if (tgt_fd >= 0)
		close(tgt_fd);
	if (out_fd >= 0)
		close(out_fd);
	return err;
}

static int cmp_job_len(const void *a, const void *b, void *arg)
{
	const struct delta_job *jobs = arg;
	size_t la = xd_slot(jobs[*(const unsigned *)a].len);
	size_t lb = xd_slot(jobs[*(const unsigned *)b].len);

	if (la != lb)
		return la < lb ? -1 : 1;
	return *(const unsigned *)a < *(const unsigned *)b ? -1 : 1;
}

static int xdelta3_encode(struct delta_codec *dc, int level, struct delta_job *jobs, unsigned n)
{
	unsigned *idx = xmalloc(sizeof(*idx) * (n ? n : 1)), m = 0;
	int err = 0;

	for (unsigned i = 0; i < n; i++) {
		jobs[i].err = -EOPNOTSUPP;
		if (jobs[i].src && jobs[i].src_len == jobs[i].len && jobs[i].len)
			idx[m++] = i;
	}
	qsort_r(idx, m, sizeof(*idx), cmp_job_len, jobs);
	for (unsigned a = 0, b; a < m && !err; a = b) {
		for (b = a + 1; b < m && xd_slot(jobs[idx[b]].len) == xd_slot(jobs[idx[a]].len);
		     b++)
			;
		err = xdelta3_encode_run(dc, level, jobs, idx + a, b - a);
		if (err)
			for (unsigned i = a; i < b; i++)
				jobs[idx[i]].err = err;
		if (err == -EIO)
			err = 0; /* this length class falls back; try the others */
	}
	free(idx);
	return err;
}

/* A parsed xdelta3 payload, ready to join a decode run. */
struct xd_dec {
	unsigned job;
	int hl;
	struct vc_window w;
};

static int xdelta3_check(struct delta_codec *dc, const struct delta_djob *j, struct xd_dec *d)
{
	const u8 *end = j->payload + j->payload_len;
	size_t slot = xd_slot(j->len);

	d->hl = vc_header_len(j->payload, j->payload_len);
	if (d->hl < 0) {
		codec_fail(dc, "corrupt xdelta3 payload: bad VCDIFF header");
		return -EILSEQ;
	}
	if (vc_window_parse(j->payload + d->hl, end, &d->w) || d->w.end != end) {
		codec_fail(dc, "corrupt xdelta3 payload: not exactly one VCDIFF window");
		return -EILSEQ;
	}
	if (d->w.ind & VCD_TARGET) {
		codec_fail(dc, "xdelta3 payload copies from an earlier window");
		return -EILSEQ;
	}
	if ((d->w.ind & VCD_SOURCE) && (!j->src || j->src_len != j->len)) {
		codec_fail(dc, "xdelta3 payload needs the source extent");
		return -EINVAL;
	}
	if (d->w.seg_len > slot || d->w.seg_pos > slot - d->w.seg_len) {
		codec_fail(dc, "corrupt xdelta3 payload: source segment beyond the extent");
		return -EILSEQ;
	}
	if (d->w.tgt_len != j->len && !(j->len < slot && d->w.tgt_len == slot)) {
		codec_fail(dc,
			   "corrupt xdelta3 payload: window of %llu bytes for a %zu byte extent",
			   (unsigned long long)d->w.tgt_len, j->len);
		return -EILSEQ;
	}
	return 0;
}

/* Decodes the parsed payloads d[0..m) (same file header) in one xdelta3 run. */
static int xdelta3_decode_run(struct delta_codec *dc, struct delta_djob *jobs,
			      const struct xd_dec *d, unsigned m)
{
	int src_fd = memfd_new(dc, "xd-src"), in_fd = memfd_new(dc, "xd-delta");
	int out_fd = memfd_new(dc, "xd-out"), err;
	size_t want = 0, outlen = 0, off = 0;
	u64 base = 0;
	u8 *win = NULL;
	const u8 *out = NULL;
	char path[64];
	char *args[8];

	err = (src_fd < 0) ? src_fd : (in_fd < 0) ? in_fd : (out_fd < 0) ? out_fd : 0;
	if (!err)
		err = write_full(in_fd, jobs[d[0].job].payload, (size_t)d[0].hl);
	for (unsigned i = 0; !err && i < m; i++) {
		const struct delta_djob *j = &jobs[d[i].job];
		size_t slot = xd_slot(j->len), wl;

		if (j->src) {
			err = write_full(src_fd, j->src, j->len);
			if (!err)
				err = fd_write_zeros(src_fd, slot - j->len);
		} else {
			err = fd_write_zeros(src_fd, slot);
		}
		win = xrealloc(win, (size_t)d[i].w.enc_len + 32);
		wl = vc_window_emit(win, &d[i].w, d[i].w.seg_pos + base);
		if (!err)
			err = write_full(in_fd, win, wl);
		base += slot;
		want += (size_t)d[i].w.tgt_len;
	}
	free(win);
	if (err) {
		codec_fail(dc, "xdelta3 batch: writing memfd: %s", errmsg(err));
		goto out_close;
	}
	lseek(in_fd, 0, SEEK_SET);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", src_fd);
	args[0] = "-d";
	args[1] = "-c";
	args[2] = "-s";
	args[3] = path;
	args[4] = NULL;
	err = xdelta3_run(dc, args, in_fd, out_fd);
	if (err)
		goto out_close;
	out = fd_map(out_fd, &outlen);
	if (outlen != want) {
		codec_fail(dc, "xdelta3 decoded %zu bytes, expected %zu", outlen, want);
		err = -EILSEQ;
		goto out_unmap;
	}
	for (unsigned i = 0; i < m; i++) {
		struct delta_djob *j = &jobs[d[i].job];

		memcpy(j->tgt, out + off, j->len);
		j->err = 0;
		for (size_t t = j->len; t < d[i].w.tgt_len; t++)
			if (out[off + t]) {
				codec_fail(dc, "corrupt xdelta3 payload: padding is not zero");
				j->err = -EILSEQ;
				break;
			}
		off += (size_t)d[i].w.tgt_len;
	}
out_unmap:
	if (out)
		munmap((void *)out, outlen);
out_close:
	if (src_fd >= 0)
		close(src_fd);
	if (in_fd >= 0)
		close(in_fd);
	if (out_fd >= 0)
		close(out_fd);
	return err;
}

/* Decodes d[0..m); on a failed run, splits it so the bad payload is found. */
static int xdelta3_decode_split(struct delta_codec *dc, struct delta_djob *jobs,
				const struct xd_dec *d, unsigned m)
{
	int err = xdelta3_decode_run(dc, jobs, d, m);

	if (err == -ENOENT || err == -ENOMEM)
		return err;
	if (!err)
		return 0;
	if (m == 1) {
		jobs[d[0].job].err = -EILSEQ;
		return 0;
	}
	err = xdelta3_decode_split(dc, jobs, d, m / 2);
	if (!err)
		err = xdelta3_decode_split(dc, jobs, d + m / 2, m - m / 2);
	return err;
}

static int xdelta3_decode(struct delta_codec *dc, struct delta_djob *jobs, unsigned n)
{
	struct xd_dec *d = xmalloc(sizeof(*d) * (n ? n : 1));
	unsigned m = 0;
	int err = 0;

	for (unsigned i = 0; i < n; i++) {
		jobs[i].err = xdelta3_check(dc, &jobs[i], &d[m]);
		if (!jobs[i].err)
			d[m++].job = i;
	}
	/* consecutive payloads with identical file headers share a run */
	for (unsigned a = 0, b; a < m && !err; a = b) {
		const u8 *ha = jobs[d[a].job].payload;

		for (b = a + 1; b < m; b++)
			if (d[b].hl != d[a].hl || memcmp(jobs[d[b].job].payload, ha, d[a].hl))
				break;
		err = xdelta3_decode_split(dc, jobs, d + a, b - a);
	}
	free(d);
	return err;
}

static const struct delta_codec_ops codec_table[DELTA_CODEC_COUNT] = {
	[DELTA_CODEC_RAW] = {"raw", DELTA_CODEC_RAW, false, 0, 0, 0, raw_encode, raw_decode},
	[DELTA_CODEC_ZLIB] = {"zlib", DELTA_CODEC_ZLIB, false, 1, 9, 6, zlib_encode, zlib_decode},
	[DELTA_CODEC_ZSTD] = {"zstd", DELTA_CODEC_ZSTD, false, 1, 19, 3, zstd_encode, zstd_decode},
	[DELTA_CODEC_XDELTA3] = {"xdelta3", DELTA_CODEC_XDELTA3, true, 0, 9, 3, xdelta3_encode,
				 xdelta3_decode},
	[DELTA_CODEC_ZSTD_PREFIX] = {"zstd-prefix", DELTA_CODEC_ZSTD_PREFIX, true, 1, 19, 3,
				     zstdp_encode, zstdp_decode},
};

const struct delta_codec_ops *delta_codec_get(u32 id)
{
	return id < DELTA_CODEC_COUNT ? &codec_table[id] : NULL;
}

const struct delta_codec_ops *delta_codec_by_name(const char *name)
{
	for (unsigned i = 0; i < DELTA_CODEC_COUNT; i++)
		if (!strcmp(codec_table[i].name, name))
			return &codec_table[i];
	return NULL;
}

struct delta_codec *delta_codec_new(const struct delta_codec_opts *opts)
{
	struct delta_codec *dc;
	const struct delta_codec_ops *ops = NULL;

	if (opts->mode != DELTA_MODE_BEST) {
		ops = opts->mode >= 0 ? delta_codec_get((u32)opts->mode) : NULL;
		if (!ops || (opts->level &&
			     (opts->level < ops->min_level || opts->level > ops->max_level))) {
			errno = EINVAL;
			return NULL;
		}
	} else if (opts->level < 0 || opts->level > 19) {
		errno = EINVAL;
		return NULL;
	}
	dc = xzalloc(sizeof(*dc));
	dc->opts = *opts;
	return dc;
}

void delta_codec_free(struct delta_codec *dc)
{
	if (!dc)
		return;
	ZSTD_freeCCtx(dc->cctx);
	ZSTD_freeDCtx(dc->dctx);
	free(dc->scratch);
	free(dc->verify);
	free(dc);
}

const char *delta_codec_error(const struct delta_codec *dc)
{
	return dc->err;
}

void delta_codec_get_stats(const struct delta_codec *dc, struct delta_codec_stats *st)
{
	*st = dc->stats;
}

static u8 *grow(u8 **buf, size_t *cur, size_t want)
{
	if (*cur < want) {
		free(*buf);
		*buf = xmalloc(want);
		*cur = want;
	}
	return *buf;
}

/*
 * Runs codec @ops over the jobs with their out pointing into scratch, then for each job
 * keeps the result in the job's real buffer if it is valid, verified and smaller than what
 * the job holds (best[i] = its current size).
 */
static int try_codec(struct delta_codec *dc, const struct delta_codec_ops *ops, int level,
		     struct delta_job *jobs, unsigned n, size_t *best, bool verify)
{
	struct delta_job *tmp = xmalloc(sizeof(*tmp) * n);
	struct delta_djob *dj = NULL;
	size_t off = 0, voff = 0;
	u8 *scr, *ver = NULL;
	int err;

	for (unsigned i = 0; i < n; i++)
		off += delta_codec_bound(jobs[i].len);
	scr = grow(&dc->scratch, &dc->scratch_len, off ? off : 1);
	off = 0;
	for (unsigned i = 0; i < n; i++) {
		tmp[i] = jobs[i];
		tmp[i].out = scr + off;
		tmp[i].out_len = 0;
		off += delta_codec_bound(jobs[i].len);
	}
	err = ops->encode(dc, level, tmp, n);
	if (err)
		goto out;
	if (verify) {
		dj = xzalloc(sizeof(*dj) * n);
		for (unsigned i = 0; i < n; i++)
			voff += jobs[i].len;
		ver = grow(&dc->verify, &dc->verify_len, voff ? voff : 1);
		voff = 0;
		for (unsigned i = 0; i < n; i++) {
			dj[i].codec = ops->id;
			dj[i].payload = tmp[i].out;
			dj[i].payload_len = tmp[i].out_len;
			dj[i].src = tmp[i].src;
			dj[i].src_len = tmp[i].src_len;
			dj[i].tgt = ver + voff;
			dj[i].len = tmp[i].len;
			dj[i].err = tmp[i].err;
			voff += tmp[i].len;
		}
		/* decode only the jobs that encoded and would win */
		unsigned m = 0;
		struct delta_djob *sub = xmalloc(sizeof(*sub) * n);
		unsigned *map = xmalloc(sizeof(*map) * n);

		for (unsigned i = 0; i < n; i++)
			if (!tmp[i].err && tmp[i].out_len < best[i]) {
				map[m] = i;
				sub[m++] = dj[i];
			}
		err = m ? ops->decode(dc, sub, m) : 0;
		for (unsigned k = 0; k < m; k++) {
			unsigned i = map[k];

			if (err || sub[k].err || memcmp(sub[k].tgt, jobs[i].tgt, jobs[i].len)) {
				tmp[i].err = -EILSEQ;
				dc->stats.verify_failures++;
			}
		}
		free(sub);
		free(map);
		if (err == -ENOENT || err == -EIO)
			err = 0; /* unverifiable: the jobs above fell back already */
		if (err)
			goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		jobs[i].err = tmp[i].err;
		if (!tmp[i].err && tmp[i].out_len < best[i]) {
			memcpy(jobs[i].out, tmp[i].out, tmp[i].out_len);
			jobs[i].out_len = tmp[i].out_len;
			jobs[i].codec = ops->id;
			best[i] = tmp[i].out_len;
		}
	}
out:
	free(dj);
	free(tmp);
	return err;
}

int delta_codec_encode_batch(struct delta_codec *dc, struct delta_job *jobs, unsigned n)
{
	size_t *best;
	int err = 0, level = dc->opts.level;
	u32 asked = dc->opts.mode == DELTA_MODE_BEST ? DELTA_CODEC_COUNT : (u32)dc->opts.mode;

	if (!n)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		if (!jobs[i].len || jobs[i].len > DELTA_MAX_EXTENT ||
		    (jobs[i].src && jobs[i].src_len != jobs[i].len))
			return -EINVAL;
	}
	best = xmalloc(sizeof(*best) * n);
	/* start from raw: every job has a valid payload whatever fails later */
	raw_encode(dc, 0, jobs, n);
	for (unsigned i = 0; i < n; i++) {
		jobs[i].codec = DELTA_CODEC_RAW;
		best[i] = jobs[i].len;
	}
	if (dc->opts.mode == DELTA_MODE_BEST) {
		static const u32 cand[] = {DELTA_CODEC_ZSTD, DELTA_CODEC_ZSTD_PREFIX,
					   DELTA_CODEC_XDELTA3};

		for (unsigned c = 0; c < ARRAY_SIZE(cand) && !err; c++) {
			const struct delta_codec_ops *ops = delta_codec_get(cand[c]);
			int lv = (level && ops->id != DELTA_CODEC_XDELTA3) ? level
									   : ops->default_level;

			err = try_codec(dc, ops, lv, jobs, n, best,
					ops->differencing || dc->opts.verify_all);
			if (err == -ENOENT)
				err = 0; /* no xdelta3 program: the others still count */
		}
	} else if (asked != DELTA_CODEC_RAW) {
		const struct delta_codec_ops *ops = delta_codec_get(asked);

		err = try_codec(dc, ops, level ? level : ops->default_level, jobs, n, best,
				ops->differencing || dc->opts.verify_all);
		if (err == -ENOENT)
			err = 0; /* no xdelta3 program: everything went out raw */
	}
	for (unsigned i = 0; i < n; i++) {
		if (jobs[i].codec == DELTA_CODEC_RAW && asked != DELTA_CODEC_RAW)
			dc->stats.fallbacks++;
		dc->stats.chosen[jobs[i].codec]++;
	}
	free(best);
	return err;
}

int delta_codec_decode_batch(struct delta_codec *dc, struct delta_djob *jobs, unsigned n)
{
	unsigned *map = xmalloc(sizeof(*map) * (n ? n : 1));
	struct delta_djob *sub = xmalloc(sizeof(*sub) * (n ? n : 1));
	int err = 0;

	for (unsigned i = 0; i < n; i++) {
		jobs[i].err = 0;
		if (!delta_codec_get(jobs[i].codec)) {
			codec_fail(dc, "unknown codec %u", jobs[i].codec);
			jobs[i].err = -EINVAL;
		} else if (!jobs[i].len || jobs[i].len > DELTA_MAX_EXTENT) {
			codec_fail(dc, "extent length %zu out of range", jobs[i].len);
			jobs[i].err = -EINVAL;
		}
	}
	for (u32 c = 0; c < DELTA_CODEC_COUNT && !err; c++) {
		unsigned m = 0;

		for (unsigned i = 0; i < n; i++)
			if (!jobs[i].err && jobs[i].codec == c) {
				map[m] = i;
				sub[m++] = jobs[i];
			}
		if (!m)
			continue;
		err = codec_table[c].decode(dc, sub, m);
		for (unsigned k = 0; k < m; k++)
			jobs[map[k]].err = err ? err : sub[k].err;
	}
	for (unsigned i = 0; i < n && !err; i++)
		err = jobs[i].err;
	free(map);
	free(sub);
	return err;
}

int delta_codec_encode(struct delta_codec *dc, struct delta_job *job)
{
	return delta_codec_encode_batch(dc, job, 1);
}

int delta_codec_decode(struct delta_codec *dc, struct delta_djob *job)
{
	return delta_codec_decode_batch(dc, job, 1);
}
