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
 * reverse: rebase every window into a shared source memfd and run xdelta3 -d once.
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
#include "delta_codec.h"
#include <fcntl.h>
#include <pthread.h>
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
/* The VCDIFF magic (RFC 3284 section 4.1) and the indicator bits we handle. */
static const u8 vcdiff_magic[4] = {0xd6, 0xc3, 0xc4, 0x00};
#define VCD_DECOMPRESS 0x01
#define VCD_CODETABLE  0x02
#define VCD_APPHEADER  0x04
#define VCD_SOURCE     0x01
#define VCD_TARGET     0x02
#define VCD_ADLER32    0x04 /* xdelta3 extension: checksum in the delta encoding */
#define VCD_HDR_MAX    64   /* longest file header we keep (magic, indicator, id, app header) */

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
		int rc = compress2(j->out, &dlen, j->tgt, j->len, level);

		if (rc != Z_OK) {
			codec_fail(dc, "zlib compress2 failed (%d)", rc);
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
		int rc = uncompress2(j->tgt, &dlen, j->payload, &slen);

		j->err = 0;
		if (rc != Z_OK || dlen != j->len || slen != j->payload_len) {
			codec_fail(dc, "corrupt zlib payload (%s, %lu of %zu bytes out)",
				   rc == Z_OK ? "trailing bytes" : zError(rc), (unsigned long)dlen,
				   j->len);
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
	int rc = zstd_cctx(dc);

	if (rc)
		return rc;
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
	int rc = zstd_dctx(dc);

	if (rc)
		return rc;
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

static int fd_write_all(int fd, const void *buf, size_t len)
{
	const u8 *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int fd_write_zeros(int fd, size_t len)
{
	static const u8 zeros[4096];

	while (len) {
		size_t k = MIN(len, sizeof(zeros));
		int rc = fd_write_all(fd, zeros, k);

		if (rc)
			return rc;
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
	int err_fd, status, rc;
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
	rc = posix_spawnp(&pid, prog, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	dc->stats.xdelta3_runs++;
	if (rc) {
		codec_fail(dc, "cannot run %s: %s", prog, strerror(rc));
		close(err_fd);
		return rc == ENOENT ? -ENOENT : -EIO;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			status = -1;
			break;
		}
	rc = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		char msg[160] = "";
		ssize_t r = pread(err_fd, msg, sizeof(msg) - 1, 0);

		if (r > 0) {
			msg[r] = 0;
			msg[strcspn(msg, "\n")] = 0;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			rc = -ENOENT;
		else
			rc = -EIO;
		codec_fail(dc, "%s failed (status %d): %s", prog,
			   WIFEXITED(status) ? WEXITSTATUS(status) : -1, msg);
	}
	close(err_fd);
	return rc;
}

/* RFC 3284 integers: base 128, most significant digit first, high bit = more follow. */
static int vc_get(const u8 **p, const u8 *end, u64 *v)
{
	u64 x = 0;

	for (int i = 0; i < 9; i++) {
		if (*p >= end)
			return -EILSEQ;
		u8 b = *(*p)++;

		x = (x << 7) | (b & 0x7f);
		if (!(b & 0x80)) {
			*v = x;
			return x >> 62 ? -EILSEQ : 0;
		}
	}
	return -EILSEQ;
}

static size_t vc_put(u8 *p, u64 v)
{
	u8 tmp[10];
	size_t n = 0, k = 0;

	do {
		tmp[n++] = v & 0x7f;
		v >>= 7;
	} while (v);
	while (n--)
		p[k++] = tmp[n] | (n ? 0x80 : 0);
	return k;
}

/* Length of the VCDIFF file header at @p, or -EILSEQ. */
static int vc_header_len(const u8 *p, size_t len)
{
	const u8 *q = p + 5, *end = p + len;
	u64 applen;

	if (len < 5 || memcmp(p, vcdiff_magic, 4))
		return -EILSEQ;
	if (p[4] & ~(VCD_DECOMPRESS | VCD_APPHEADER))
		return -EILSEQ; /* custom code tables are not accepted */
	if (p[4] & VCD_DECOMPRESS) {
		if (q >= end)
			return -EILSEQ;
		q++;
	}
	if (p[4] & VCD_APPHEADER) {
		if (vc_get(&q, end, &applen) || applen > (u64)(end - q))
			return -EILSEQ;
		q += applen;
	}
	return (q - p) > VCD_HDR_MAX ? -EILSEQ : (int)(q - p);
}

/* One parsed window. */
struct vc_window {
	u8 ind;
	u64 seg_len, seg_pos;
	u64 tgt_len;
	const u8 *enc; /* delta encoding (after its length) */
	u64 enc_len;
	const u8 *end; /* first byte after the window */
};

static int vc_window_parse(const u8 *p, const u8 *end, struct vc_window *w)
{
	const u8 *q = p, *e;
	u64 v;

	if (q >= end)
		return -EILSEQ;
	w->ind = *q++;
	if (w->ind & ~(VCD_SOURCE | VCD_TARGET | VCD_ADLER32))
		return -EILSEQ;
	w->seg_len = w->seg_pos = 0;
	if (w->ind & (VCD_SOURCE | VCD_TARGET)) {
		if (vc_get(&q, end, &w->seg_len) || vc_get(&q, end, &w->seg_pos))
			return -EILSEQ;
	}
	if (vc_get(&q, end, &w->enc_len) || w->enc_len > (u64)(end - q))
		return -EILSEQ;
	w->enc = q;
	w->end = q + w->enc_len;
	e = q;
	if (vc_get(&e, w->end, &v))
		return -EILSEQ;
	w->tgt_len = v;
	return 0;
}

/* Writes window @w with its source segment moved to @pos; returns bytes written to @o. */
static size_t vc_window_emit(u8 *o, const struct vc_window *w, u64 pos)
{
	size_t k = 0;

	o[k++] = w->ind;
	if (w->ind & (VCD_SOURCE | VCD_TARGET)) {
		k += vc_put(o + k, w->seg_len);
		k += vc_put(o + k, pos);
	}
	k += vc_put(o + k, w->enc_len);
	memcpy(o + k, w->enc, w->enc_len);
	return k + w->enc_len;
}

/*
 * Rewriting a window that strays out of its slot.  xdelta3 indexes the whole batch source,
 * so text with a shared vocabulary often copies from another extent's source.  We know the
 * target bytes, so such a window can be re-encoded standalone: copies from the extent's own
 * source slot stay copies (rebased), copies from earlier target bytes stay copies, runs stay
 * runs, and everything else becomes literal ADDs.  Parsing uses the RFC 3284 default code
 * table and address cache; emitting uses only single-instruction opcodes in VCD_SELF mode.
 * The result is verified by decoding like every other differencing payload.
 */
enum { VC_NOOP, VC_ADD, VC_RUN, VC_COPY };

struct vc_inst {
	u8 type, size, mode;
};

static struct vc_inst vc_table[256][2];
static pthread_once_t vc_table_once = PTHREAD_ONCE_INIT;

static void vc_table_init(void)
{
	unsigned i = 0;

	vc_table[i++][0] = (struct vc_inst){VC_RUN, 0, 0};
	for (u8 s = 0; s <= 17; s++)
		vc_table[i++][0] = (struct vc_inst){VC_ADD, s, 0};
	for (u8 m = 0; m <= 8; m++) {
		vc_table[i++][0] = (struct vc_inst){VC_COPY, 0, m};
		for (u8 s = 4; s <= 18; s++)
			vc_table[i++][0] = (struct vc_inst){VC_COPY, s, m};
	}
	for (u8 m = 0; m <= 5; m++)
		for (u8 a = 1; a <= 4; a++)
			for (u8 s = 4; s <= 6; s++) {
				vc_table[i][0] = (struct vc_inst){VC_ADD, a, 0};
				vc_table[i++][1] = (struct vc_inst){VC_COPY, s, m};
			}
	for (u8 m = 6; m <= 8; m++)
		for (u8 a = 1; a <= 4; a++) {
			vc_table[i][0] = (struct vc_inst){VC_ADD, a, 0};
			vc_table[i++][1] = (struct vc_inst){VC_COPY, 4, m};
		}
	for (u8 m = 0; m <= 8; m++) {
		vc_table[i][0] = (struct vc_inst){VC_COPY, 4, m};
		vc_table[i++][1] = (struct vc_inst){VC_ADD, 1, 0};
	}
	VERIFY(i == 256);
}

#define VC_NEAR 4
#define VC_SAME 3

/* One piece of the rewritten target window. */
struct vc_op {
	u8 type;      /* VC_ADD (literal from the target), VC_RUN, VC_COPY (source), VC_NOOP (copy
		    * from the target itself) */
	u8 byte;      /* RUN */
	bool foreign; /* an ADD that was a copy from another extent's source */
	u64 tpos;     /* where it lands in the target window */
	u64 len;
	u64 from; /* COPY: offset in the slot; target copy: offset in the target window */
};

struct vc_emit {
	u8 *data, *inst, *addr;
	size_t nd, ni, na, cap;
};

static bool em_room(const struct vc_emit *e, size_t d, size_t i, size_t a)
{
	return e->nd + d <= e->cap && e->ni + i <= e->cap && e->na + a <= e->cap;
}

/* Parses @w (delta encoding without secondary compression) into ops; see above. */
static int vc_parse_ops(const struct vc_window *w, u64 base, size_t slot, struct vc_op **opsp,
			size_t *nops)
{
	const u8 *p = w->enc, *end = w->end, *data, *inst, *addr, *dend, *iend, *aend;
	u64 tgt_len, dlen, ilen, alen, tpos = 0, near[VC_NEAR] = {0}, same[VC_SAME * 256];
	unsigned next = 0;
	size_t n = 0, cap = 64;
	struct vc_op *ops;

	pthread_once(&vc_table_once, vc_table_init);
	memset(same, 0, sizeof(same));
	if (vc_get(&p, end, &tgt_len) || p >= end)
		return -EILSEQ;
	if (*p++ != 0)
		return -EOPNOTSUPP; /* secondary compression: leave it alone */
	if (vc_get(&p, end, &dlen) || vc_get(&p, end, &ilen) || vc_get(&p, end, &alen))
		return -EILSEQ;
	if (w->ind & VCD_ADLER32)
		p += 4;
	if (p > end || dlen > (u64)(end - p) || ilen > (u64)(end - p) - dlen ||
	    alen != (u64)(end - p) - dlen - ilen)
		return -EILSEQ;
	data = p;
	dend = inst = data + dlen;
	iend = addr = inst + ilen;
	aend = addr + alen;
	ops = xmalloc(cap * sizeof(*ops));
	while (inst < iend) {
		u8 op = *inst++;

		for (int k = 0; k < 2; k++) {
			struct vc_inst in = vc_table[op][k];
			u64 size = in.size, a, here;
			struct vc_op o = {.type = VC_ADD};

			if (in.type == VC_NOOP)
				continue;
			if (!size && vc_get(&inst, iend, &size))
				goto bad;
			if (size > tgt_len - tpos)
				goto bad;
			o.len = size;
			o.from = tpos;
			o.tpos = tpos;
			if (in.type == VC_ADD) {
				if (size > (u64)(dend - data))
					goto bad;
				data += size;
			} else if (in.type == VC_RUN) {
				if (data >= dend)
					goto bad;
				o.type = VC_RUN;
				o.byte = *data++;
			} else {
				here = w->seg_len + tpos;
				if (in.mode == 0) {
					if (vc_get(&addr, aend, &a))
						goto bad;
				} else if (in.mode == 1) {
					if (vc_get(&addr, aend, &a) || a > here)
						goto bad;
					a = here - a;
				} else if (in.mode < 2 + VC_NEAR) {
					if (vc_get(&addr, aend, &a))
						goto bad;
					a += near[in.mode - 2];
				} else {
					if (addr >= aend)
						goto bad;
					a = same[(in.mode - 2 - VC_NEAR) * 256 + *addr++];
				}
				near[next] = a;
				next = (next + 1) % VC_NEAR;
				same[a % (VC_SAME * 256)] = a;
				if (a >= here)
					goto bad;
				if (a + size <= w->seg_len) {
					u64 abs = w->seg_pos + a;

					if (abs >= base && abs + size <= base + slot) {
						o.type = VC_COPY;
						o.from = abs - base;
					} else {
						o.foreign = true;
					}
				} else if (a >= w->seg_len) {
					o.type = VC_NOOP;
					o.from = a - w->seg_len;
				}
			}
			if (n == cap) {
				cap *= 2;
				ops = xrealloc(ops, cap * sizeof(*ops));
			}
			ops[n++] = o;
			tpos += size;
		}
	}
	if (tpos != tgt_len || data != dend || addr != aend)
		goto bad;
	*opsp = ops;
	*nops = n;
	return 0;
bad:
	free(ops);
	return -EILSEQ;
}

/*
 * Re-encodes window @w of the extent whose source slot starts at @base as a standalone
 * window into @o (at most @cap bytes); @tgt is the target (len bytes, zeros beyond).
 * Returns the window length, or a negative errno (-EOPNOTSUPP: not worth it or unsupported).
 */
static bool same_bytes(const u8 *src, const u8 *tgt, size_t len, u64 s, u64 t, u64 n)
{
	for (u64 i = 0; i < n; i++)
		if ((s + i < len ? src[s + i] : 0) != (t + i < len ? tgt[t + i] : 0))
			return false;
	return true;
}

/*
 * A copy from another extent's source often has the same bytes in this extent's source at
 * the offset the neighbouring copies use (an edit in place, or after an insert): turn it
 * back into a copy from our own slot when the bytes really are there.
 */
static void vc_reclaim(struct vc_op *ops, size_t nops, const u8 *src, const u8 *tgt, size_t len,
		       size_t slot)
{
	s64 shift = 0; /* source offset - target offset of the last own copy */

	for (size_t i = 0; i < nops; i++) {
		struct vc_op *op = &ops[i];
		s64 cand[2] = {shift, 0};

		if (op->type == VC_COPY) {
			shift = (s64)op->from - (s64)(op->tpos);
			continue;
		}
		if (!op->foreign)
			continue;
		for (int c = 0; c < 2; c++) {
			s64 from = (s64)op->tpos + cand[c];

			if (from < 0 || (u64)from + op->len > slot ||
			    !same_bytes(src, tgt, len, (u64)from, op->tpos, op->len))
				continue;
			op->type = VC_COPY;
			op->foreign = false;
			op->from = (u64)from;
			shift = cand[c];
			break;
		}
	}
}

/* Index of 8-byte strings of the target window, for vc_self_copies(). */
#define VC_HASH_BITS 14
#define VC_MIN_MATCH 8

static u8 tbyte(const u8 *tgt, size_t len, u64 i)
{
	return i < len ? tgt[i] : 0;
}

static u32 vc_hash(const u8 *tgt, size_t len, u64 p)
{
	u64 v = 0;

	for (int i = 0; i < VC_MIN_MATCH; i++)
		v = (v << 8) | tbyte(tgt, len, p + (u64)i);
	return (u32)(hash_golden64(v) >> (64 - VC_HASH_BITS));
}

/*
 * The foreign copies that vc_reclaim() could not return to our own source would become
 * literals; many of them (common words of new text) repeat earlier bytes of the same target
 * window, which VCDIFF can copy.  Rebuilds the op list with those pieces as target copies.
 * O(window) time, a 64 KiB table.
 */
static struct vc_op *vc_self_copies(struct vc_op *ops, size_t *nops, const u8 *tgt, size_t len,
				    u64 wlen)
{
	u32 *head = xmalloc(sizeof(u32) << VC_HASH_BITS);
	size_t n = 0, cap = *nops + 16;
	struct vc_op *out = xmalloc(cap * sizeof(*out));
	u64 indexed = 0;

	memset(head, 0xff, sizeof(u32) << VC_HASH_BITS);
	for (size_t i = 0; i < *nops; i++) {
		struct vc_op op = ops[i];
		u64 end = op.tpos + op.len, u = op.tpos, ls = op.tpos;

		for (; indexed < op.tpos && indexed + VC_MIN_MATCH <= wlen; indexed++)
			head[vc_hash(tgt, len, indexed)] = (u32)indexed;
		if (op.type != VC_ADD || !op.foreign || op.len < VC_MIN_MATCH) {
			op.foreign = false;
			if (n + 1 > cap)
				out = xrealloc(out, (cap *= 2) * sizeof(*out));
			out[n++] = op;
			continue;
		}
		while (u + VC_MIN_MATCH <= end) {
			u32 c = head[vc_hash(tgt, len, u)];
			u64 m = 0;

			if (c != UINT32_MAX && c < u)
				while (u + m < end &&
				       tbyte(tgt, len, c + m) == tbyte(tgt, len, u + m))
					m++;
			if (m >= VC_MIN_MATCH) {
				if (n + 2 > cap)
					out = xrealloc(out, (cap *= 2) * sizeof(*out));
				if (u > ls)
					out[n++] = (struct vc_op){.type = VC_ADD,
								  .tpos = ls,
								  .from = ls,
								  .len = u - ls};
				out[n++] = (struct vc_op){
					.type = VC_NOOP, .tpos = u, .from = c, .len = m};
				for (u64 q = u; q < u + m && q + VC_MIN_MATCH <= wlen; q++)
					head[vc_hash(tgt, len, q)] = (u32)q;
				u += m;
				ls = u;
				continue;
			}
			head[vc_hash(tgt, len, u)] = (u32)u;
			u++;
		}
		if (end > ls) {
			if (n + 1 > cap)
				out = xrealloc(out, (cap *= 2) * sizeof(*out));
			out[n++] = (struct vc_op){
				.type = VC_ADD, .tpos = ls, .from = ls, .len = end - ls};
		}
		indexed = MAX(indexed, u);
	}
	free(head);
	free(ops);
	*nops = n;
	return out;
}

static ssize_t vc_rewrite(const struct vc_window *w, u64 base, size_t slot, const u8 *src,
			  const u8 *tgt, size_t len, u8 *o, size_t cap)
{
	struct vc_op *ops;
	size_t nops, k = 0;
	u64 lo = UINT64_MAX, hi = 0, seg;
	struct vc_emit e = {.cap = cap};
	int rc = vc_parse_ops(w, base, slot, &ops, &nops);

	if (rc)
		return rc;
	vc_reclaim(ops, nops, src, tgt, len, slot);
	ops = vc_self_copies(ops, &nops, tgt, len, w->tgt_len);
	for (size_t i = 0; i < nops; i++)
		if (ops[i].type == VC_COPY) {
			lo = MIN(lo, ops[i].from);
			hi = MAX(hi, ops[i].from + ops[i].len);
		}
	seg = hi > lo ? hi - lo : 0;
	e.data = xmalloc(cap);
	e.inst = xmalloc(cap);
	e.addr = xmalloc(cap);
	for (size_t i = 0; i < nops && !rc; i++) {
		struct vc_op *op = &ops[i];
		u8 v[10];
		size_t vl;

		if (op->type == VC_ADD) {
			/* merge neighbouring literals */
			u64 from = op->from, l = op->len;

			while (i + 1 < nops && ops[i + 1].type == VC_ADD)
				l += ops[++i].len;
			if (!em_room(&e, l, 11, 0)) {
				rc = -EOPNOTSUPP;
				break;
			}
			for (u64 t = 0; t < l; t++)
				e.data[e.nd++] = from + t < len ? tgt[from + t] : 0;
			if (l <= 17) {
				e.inst[e.ni++] = (u8)(1 + l);
			} else {
				e.inst[e.ni++] = 1;
				e.ni += vc_put(e.inst + e.ni, l);
			}
			continue;
		}
		if (!em_room(&e, 1, 11, 10)) {
			rc = -EOPNOTSUPP;
			break;
		}
		if (op->type == VC_RUN) {
			e.data[e.nd++] = op->byte;
			e.inst[e.ni++] = 0;
			e.ni += vc_put(e.inst + e.ni, op->len);
			continue;
		}
		/* copies, VCD_SELF addresses: source first, then the target window */
		while (op->type == VC_COPY && i + 1 < nops && ops[i + 1].type == VC_COPY &&
		       ops[i + 1].from == op->from + op->len) {
			op->len += ops[i + 1].len; /* contiguous source copies: one instruction */
			i++;
		}
		vl = vc_put(v, op->type == VC_COPY ? op->from - lo : seg + op->from);
		memcpy(e.addr + e.na, v, vl);
		e.na += vl;
		if (op->len >= 4 && op->len <= 18) {
			e.inst[e.ni++] = (u8)(19 + op->len - 3);
		} else {
			e.inst[e.ni++] = 19;
			e.ni += vc_put(e.inst + e.ni, op->len);
		}
	}
	if (!rc) {
		u8 hdr[64];
		size_t hl = 0, enc_len;

		hl += vc_put(hdr + hl, w->tgt_len);
		hdr[hl++] = 0;
		hl += vc_put(hdr + hl, e.nd);
		hl += vc_put(hdr + hl, e.ni);
		hl += vc_put(hdr + hl, e.na);
		enc_len = hl + ((w->ind & VCD_ADLER32) ? 4 : 0) + e.nd + e.ni + e.na;
		if (enc_len + 32 > cap) {
			rc = -EOPNOTSUPP;
		} else {
			o[k++] = (u8)((seg ? VCD_SOURCE : 0) | (w->ind & VCD_ADLER32));
			if (seg) {
				k += vc_put(o + k, seg);
				k += vc_put(o + k, lo);
			}
			k += vc_put(o + k, enc_len);
			memcpy(o + k, hdr, hl);
			k += hl;
			if (w->ind & VCD_ADLER32) {
				/* same target bytes, same checksum: after the three lengths */
				const u8 *q = w->enc;
				u64 dummy;

				(void)vc_get(&q, w->end, &dummy);
				q++;
				for (int f = 0; f < 3; f++)
					(void)vc_get(&q, w->end, &dummy);
				memcpy(o + k, q, 4);
				k += 4;
			}
			memcpy(o + k, e.data, e.nd);
			k += e.nd;
			memcpy(o + k, e.inst, e.ni);
			k += e.ni;
			memcpy(o + k, e.addr, e.na);
			k += e.na;
		}
	}
	free(e.data);
	free(e.inst);
	free(e.addr);
	free(ops);
	return rc ? rc : (ssize_t)k;
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
	int src_fd = -1, tgt_fd = -1, out_fd = -1, rc, hl;
	char path[64], wopt[32], bopt[32], lopt[8];
	const u8 *out = NULL, *p, *end;
	char *args[16];
	unsigned k = 0;

	src_fd = memfd_new(dc, "xd-src");
	tgt_fd = memfd_new(dc, "xd-tgt");
	out_fd = memfd_new(dc, "xd-out");
	rc = (src_fd < 0) ? src_fd : (tgt_fd < 0) ? tgt_fd : (out_fd < 0) ? out_fd : 0;
	for (unsigned i = 0; !rc && i < m; i++) {
		const struct delta_job *j = &jobs[idx[i]];

		rc = fd_write_all(src_fd, j->src, j->len);
		if (!rc)
			rc = fd_write_zeros(src_fd, slot - j->len);
		if (!rc)
			rc = fd_write_all(tgt_fd, j->tgt, j->len);
		if (!rc)
			rc = fd_write_zeros(tgt_fd, slot - j->len);
	}
	if (rc) {
		codec_fail(dc, "xdelta3 batch: writing memfd: %s", strerror(-rc));
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
	rc = xdelta3_run(dc, args, tgt_fd, out_fd);
	if (rc)
		goto out_close;
	out = fd_map(out_fd, &outlen);
	hl = out ? vc_header_len(out, outlen) : -EILSEQ;
	if (hl < 0) {
		codec_fail(dc, "xdelta3 produced no valid VCDIFF header");
		rc = -EIO;
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
			rc = -EIO;
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
		rc = -EIO;
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
	return rc;
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
	int rc = 0;

	for (unsigned i = 0; i < n; i++) {
		jobs[i].err = -EOPNOTSUPP;
		if (jobs[i].src && jobs[i].src_len == jobs[i].len && jobs[i].len)
			idx[m++] = i;
	}
	qsort_r(idx, m, sizeof(*idx), cmp_job_len, jobs);
	for (unsigned a = 0, b; a < m && !rc; a = b) {
		for (b = a + 1; b < m && xd_slot(jobs[idx[b]].len) == xd_slot(jobs[idx[a]].len);
		     b++)
			;
		rc = xdelta3_encode_run(dc, level, jobs, idx + a, b - a);
		if (rc)
			for (unsigned i = a; i < b; i++)
				jobs[idx[i]].err = rc;
		if (rc == -EIO)
			rc = 0; /* this length class falls back; try the others */
	}
	free(idx);
	return rc;
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
	int out_fd = memfd_new(dc, "xd-out"), rc;
	size_t want = 0, outlen = 0, off = 0;
	u64 base = 0;
	u8 *win = NULL;
	const u8 *out = NULL;
	char path[64];
	char *args[8];

	rc = (src_fd < 0) ? src_fd : (in_fd < 0) ? in_fd : (out_fd < 0) ? out_fd : 0;
	if (!rc)
		rc = fd_write_all(in_fd, jobs[d[0].job].payload, (size_t)d[0].hl);
	for (unsigned i = 0; !rc && i < m; i++) {
		const struct delta_djob *j = &jobs[d[i].job];
		size_t slot = xd_slot(j->len), wl;

		if (j->src) {
			rc = fd_write_all(src_fd, j->src, j->len);
			if (!rc)
				rc = fd_write_zeros(src_fd, slot - j->len);
		} else {
			rc = fd_write_zeros(src_fd, slot);
		}
		win = xrealloc(win, (size_t)d[i].w.enc_len + 32);
		wl = vc_window_emit(win, &d[i].w, d[i].w.seg_pos + base);
		if (!rc)
			rc = fd_write_all(in_fd, win, wl);
		base += slot;
		want += (size_t)d[i].w.tgt_len;
	}
	free(win);
	if (rc) {
		codec_fail(dc, "xdelta3 batch: writing memfd: %s", strerror(-rc));
		goto out_close;
	}
	lseek(in_fd, 0, SEEK_SET);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", src_fd);
	args[0] = "-d";
	args[1] = "-c";
	args[2] = "-s";
	args[3] = path;
	args[4] = NULL;
	rc = xdelta3_run(dc, args, in_fd, out_fd);
	if (rc)
		goto out_close;
	out = fd_map(out_fd, &outlen);
	if (outlen != want) {
		codec_fail(dc, "xdelta3 decoded %zu bytes, expected %zu", outlen, want);
		rc = -EILSEQ;
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
	return rc;
}

/* Decodes d[0..m); on a failed run, splits it so the bad payload is found. */
static int xdelta3_decode_split(struct delta_codec *dc, struct delta_djob *jobs,
				const struct xd_dec *d, unsigned m)
{
	int rc = xdelta3_decode_run(dc, jobs, d, m);

	if (rc == -ENOENT || rc == -ENOMEM)
		return rc;
	if (!rc)
		return 0;
	if (m == 1) {
		jobs[d[0].job].err = -EILSEQ;
		return 0;
	}
	rc = xdelta3_decode_split(dc, jobs, d, m / 2);
	if (!rc)
		rc = xdelta3_decode_split(dc, jobs, d + m / 2, m - m / 2);
	return rc;
}

static int xdelta3_decode(struct delta_codec *dc, struct delta_djob *jobs, unsigned n)
{
	struct xd_dec *d = xmalloc(sizeof(*d) * (n ? n : 1));
	unsigned m = 0;
	int rc = 0;

	for (unsigned i = 0; i < n; i++) {
		jobs[i].err = xdelta3_check(dc, &jobs[i], &d[m]);
		if (!jobs[i].err)
			d[m++].job = i;
	}
	/* consecutive payloads with identical file headers share a run */
	for (unsigned a = 0, b; a < m && !rc; a = b) {
		const u8 *ha = jobs[d[a].job].payload;

		for (b = a + 1; b < m; b++)
			if (d[b].hl != d[a].hl || memcmp(jobs[d[b].job].payload, ha, d[a].hl))
				break;
		rc = xdelta3_decode_split(dc, jobs, d + a, b - a);
	}
	free(d);
	return rc;
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
	int rc;

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
	rc = ops->encode(dc, level, tmp, n);
	if (rc)
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
		rc = m ? ops->decode(dc, sub, m) : 0;
		for (unsigned k = 0; k < m; k++) {
			unsigned i = map[k];

			if (rc || sub[k].err || memcmp(sub[k].tgt, jobs[i].tgt, jobs[i].len)) {
				tmp[i].err = -EILSEQ;
				dc->stats.verify_failures++;
			}
		}
		free(sub);
		free(map);
		if (rc == -ENOENT || rc == -EIO)
			rc = 0; /* unverifiable: the jobs above fell back already */
		if (rc)
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
	return rc;
}

int delta_codec_encode_batch(struct delta_codec *dc, struct delta_job *jobs, unsigned n)
{
	size_t *best;
	int rc = 0, level = dc->opts.level;
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

		for (unsigned c = 0; c < ARRAY_SIZE(cand) && !rc; c++) {
			const struct delta_codec_ops *ops = delta_codec_get(cand[c]);
			int lv = (level && ops->id != DELTA_CODEC_XDELTA3) ? level
									   : ops->default_level;

			rc = try_codec(dc, ops, lv, jobs, n, best,
				       ops->differencing || dc->opts.verify_all);
			if (rc == -ENOENT)
				rc = 0; /* no xdelta3 program: the others still count */
		}
	} else if (asked != DELTA_CODEC_RAW) {
		const struct delta_codec_ops *ops = delta_codec_get(asked);

		rc = try_codec(dc, ops, level ? level : ops->default_level, jobs, n, best,
			       ops->differencing || dc->opts.verify_all);
		if (rc == -ENOENT)
			rc = 0; /* no xdelta3 program: everything went out raw */
	}
	for (unsigned i = 0; i < n; i++) {
		if (jobs[i].codec == DELTA_CODEC_RAW && asked != DELTA_CODEC_RAW)
			dc->stats.fallbacks++;
		dc->stats.chosen[jobs[i].codec]++;
	}
	free(best);
	return rc;
}

int delta_codec_decode_batch(struct delta_codec *dc, struct delta_djob *jobs, unsigned n)
{
	unsigned *map = xmalloc(sizeof(*map) * (n ? n : 1));
	struct delta_djob *sub = xmalloc(sizeof(*sub) * (n ? n : 1));
	int rc = 0;

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
	for (u32 c = 0; c < DELTA_CODEC_COUNT && !rc; c++) {
		unsigned m = 0;

		for (unsigned i = 0; i < n; i++)
			if (!jobs[i].err && jobs[i].codec == c) {
				map[m] = i;
				sub[m++] = jobs[i];
			}
		if (!m)
			continue;
		rc = codec_table[c].decode(dc, sub, m);
		for (unsigned k = 0; k < m; k++)
			jobs[map[k]].err = rc ? rc : sub[k].err;
	}
	for (unsigned i = 0; i < n && !rc; i++)
		rc = jobs[i].err;
	free(map);
	free(sub);
	return rc;
}

int delta_codec_encode(struct delta_codec *dc, struct delta_job *job)
{
	return delta_codec_encode_batch(dc, job, 1);
}

int delta_codec_decode(struct delta_codec *dc, struct delta_djob *job)
{
	return delta_codec_decode_batch(dc, job, 1);
}
