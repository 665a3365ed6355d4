// SPDX-License-Identifier: GPL-2.0-only
/*
 * delta.c - `ddsnap delta create` and `ddsnap delta apply`: make a delta stream from a
 * changelist and two snapshot devices, and apply one to an origin.
 *
 * Devices are named as in Zumastor: the origin is <devstem> (/dev/mapper/vol) and snapshot
 * tag T is "<devstem>(T)"; plain files work the same, which is how the tests run.
 *
 * The engine is shared (tools/delta.h): delta_create_stream(), delta_apply_stream() and
 * delta_fetch_changelist() serve these subcommands and `ddsnap send` / `ddsnap receive`
 * (tools/replicate.c), which only add the transport, the server calls and the refusals.
 *
 * create: validates the whole changelist first (a corrupt list must not yield a plausible
 * delta), then walks it, grouping consecutive chunks into extents of at most 1 MiB, split
 * where chunks turn zero or non-zero: zero chunks become zero records (discarded chunks
 * must reach the replica, the ZFS hole-birth lesson).  Data extents are encoded in batches
 * (xdelta3 runs once per batch), checksummed (target, and source when read) and written in
 * chunk order.  Devices are read with O_DIRECT when the file system allows it, else with
 * posix_fadvise(DONTNEED) so a delta does not flush the page cache.
 *
 * apply: reads the stream, and for each extent checks the receiver's source extent against
 * the sender's source checksum (refusing on mismatch), decodes, checks the target checksum,
 * and only then writes the origin.  So a corrupt or mismatched extent is never written and
 * the source snapshot is never written at all.
 *
 * Crash and interruption argument: with -t TOKEN, apply fdatasyncs the origin before each
 * token save (at most once per DELTA_TOKEN_INTERVAL and at every exit), so the token never
 * claims an extent that is not durable.  Extents after the token may or may not be on disk;
 * re-applying them writes the same bytes (extents hold absolute target data decoded
 * against the immutable source snapshot, never against the origin), so nothing is lost and
 * nothing is counted twice.  A resumed stream (create --resume TOKEN) starts exactly at the
 * token and chains the stream checksum from it; a full stream re-sent after an
 * interruption is skipped up to the token and checked to be the same stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>
#include "util/base.h"
#include "delta/changelist.h"
#include "commands.h"
#include "client/ctl_client.h"
#include "delta/delta_codec.h"
#include "delta.h"
#include "delta/delta_stream.h"
#include "util/xfer.h"
#include "blk/ownership.h"

/* Decode batch: enough extents for xdelta3 to amortise its process start (~1 ms), small
 * enough to keep memory (source + target + payload scratch) bounded. */
#define DELTA_BATCH_BYTES   (16u << 20)
#define DELTA_BATCH_EXTENTS 512u
/* Apply saves its resume token at most this often (plus at every exit). */
#define DELTA_TOKEN_INTERVAL 1.0
/* Device I/O alignment for O_DIRECT buffers. */
#define DELTA_IO_ALIGN 4096u

/* The subcommand errors are reported under ("delta", "send", "receive"). */
static const char *derr_cmd = "delta";

static __printf(1, 2) void derr(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmd_verror(derr_cmd, fmt, ap);
	va_end(ap);
}

/* ---- devices ---- */

struct dev {
	int fd;
	bool direct;
	char *path;
	u64 size;
};

static void dev_close(struct dev *d);

static int dev_open(struct dev *d, const char *path, bool write)
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
		int e = errno;

		derr("cannot open %s: %s", path, strerror(e));
		free(d->path);
		d->path = NULL;
		return -e;
	}
	if (fstat(d->fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) ||
	    fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		derr("%s is %s, not a regular file or block device", path, path_kind(st.st_mode));
		dev_close(d);
		return -EINVAL;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(d->fd, BLKGETSIZE64, &d->size))
			d->size = 0;
	} else {
		d->size = (u64)st.st_size;
	}
	return 0;
}

static void dev_close(struct dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	free(d->path);
	d->path = NULL;
}

/* Falls back to buffered I/O when the file system refuses O_DIRECT for this request. */
static void dev_undirect(struct dev *d)
{
	int fl = fcntl(d->fd, F_GETFL);

	if (fl >= 0 && fcntl(d->fd, F_SETFL, fl & ~O_DIRECT) == 0)
		d->direct = false;
}

static int dev_pread(struct dev *d, void *buf, size_t len, u64 off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(d->fd, (u8 *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINVAL && d->direct) {
			dev_undirect(d);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;

			derr("read %s at %llu: %s", d->path, (unsigned long long)(off + got),
			     n < 0 ? strerror(e) : "beyond the end");
			return -e;
		}
		got += (size_t)n;
	}
	if (!d->direct)
		posix_fadvise(d->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	return 0;
}

static int dev_pwrite(struct dev *d, const void *buf, size_t len, u64 off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(d->fd, (const u8 *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINVAL && d->direct) {
			dev_undirect(d);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;

			derr("write %s at %llu: %s", d->path, (unsigned long long)(off + done),
			     strerror(e));
			return -e;
		}
		done += (size_t)n;
	}
	return 0;
}

static void *abuf(size_t len)
{
	void *p;

	if (posix_memalign(&p, DELTA_IO_ALIGN, ROUND_UP(len ? len : 1, DELTA_IO_ALIGN)))
		abort();
	return p;
}

static int parse_mode(const char *name, const char *arg, struct delta_codec_opts *o)
{
	const struct delta_codec_ops *ops;
	s64 level;

	if (!strcmp(name, "best")) {
		o->mode = DELTA_MODE_BEST;
	} else {
		ops = delta_codec_by_name(name);
		if (!ops)
			return -EINVAL;
		o->mode = (int)ops->id;
	}
	o->level = 0;
	if (arg && *arg) {
		if (cmd_parse_s64(arg, 1, INT_MAX, &level))
			return -EINVAL;
		o->level = (int)level;
	}
	return 0;
}

void delta_create_defaults(struct delta_create_params *p, const char *cmd)
{
	*p = (struct delta_create_params){
		.cmd = cmd, .out_fd = -1, .codec = {.mode = DELTA_CODEC_ZSTD_PREFIX}};
}

int delta_create_option(int opt, const char *arg, struct delta_create_params *p)
{
	int rc = 0;

	switch (opt) {
	case 'r':
		rc = parse_mode("raw", NULL, &p->codec);
		break;
	case 'z':
		rc = parse_mode("zlib", arg, &p->codec);
		break;
	case 'Z':
		rc = parse_mode("zstd", arg, &p->codec);
		break;
	case 'x':
		rc = parse_mode("xdelta3", arg, &p->codec);
		break;
	case 'P':
		rc = parse_mode("zstd-prefix", arg, &p->codec);
		break;
	case 'b':
		rc = parse_mode("best", arg, &p->codec);
		break;
	case 'l':
		rc = cmd_parse_size(arg, UINT64_MAX, &p->limit);
		break;
	case 'V':
		p->codec.verify_all = true;
		break;
	case 'S':
		p->no_src_check = true;
		break;
	case 'p':
		p->force_progress = true;
		break;
	case 'v':
		p->verbose = true;
		break;
	default:
		return 1;
	}
	if (rc) {
		derr_cmd = p->cmd;
		derr("bad option value '%s'", arg ? arg : "");
		return -EINVAL;
	}
	return 0;
}

static const struct option create_opts[] = {
	DELTA_CREATE_OPTIONS,
	{"resume", required_argument, NULL, 'R'},
	{NULL, 0, NULL, 0},
};

static const char create_usage[] =
	"usage: ddsnap delta create [-r|-z[L]|--zstd[=L]|-x|--zstd-delta[=L]|-b[L]] [-l bytes/s]\n"
	"                           [--resume TOKEN] [--no-source-check] [-v]\n"
	"                           <changelist> <deltafile|-> <devstem>\n";

static int delta_create(int argc, char **argv)
{
	struct delta_create_params p;
	int opt, rc, ret;

	delta_create_defaults(&p, "delta");
	optind = 0;
	while ((opt = getopt_long(argc, argv, DELTA_CREATE_SHORTOPTS "h", create_opts, NULL)) !=
	       -1) {
		if (opt == 'R') {
			p.resume = optarg;
			continue;
		}
		rc = delta_create_option(opt, optarg, &p);
		if (rc < 0)
			return EXIT_USAGE;
		if (rc) {
			fputs(create_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 3) {
		fputs(create_usage, stderr);
		return EXIT_USAGE;
	}
	p.changelist = argv[optind];
	p.devstem = argv[optind + 2];
	if (!strcmp(argv[optind + 1], "-")) {
		if (isatty(STDOUT_FILENO)) {
			derr("refusing to write a binary delta to a terminal");
			return EXIT_FAIL;
		}
		p.out_fd = STDOUT_FILENO;
		return delta_create_cmd(&p);
	}
	/* Never through a symlink, never over a block device (a store, an origin). */
	p.out_fd = path_open_file(argv[optind + 1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (p.out_fd < 0) {
		derr("cannot create %s: %s", argv[optind + 1],
		     p.out_fd == -EINVAL  ? "not a regular file"
		     : p.out_fd == -ELOOP ? "a symbolic link"
					  : errmsg(p.out_fd));
		return EXIT_FAIL;
	}
	ret = delta_create_cmd(&p);
	if (ret == EXIT_OK && fsync(p.out_fd)) {
		derr("writing %s: %s", argv[optind + 1], strerror(errno));
		ret = EXIT_FAIL;
	}
	close(p.out_fd);
	return ret;
}

/* create, -v: what was written and which codecs won, on stderr. */
static void create_report(const char *cmd, const struct delta_create_stats *st)
{
	const struct delta_trailer *tr = &st->tr;

	fprintf(stderr,
		"ddsnap %s: %llu extents, %llu data chunks, %llu zero chunks; %llu "
		"bytes of data -> %llu payload bytes (%.2f%%); codecs raw %llu zlib %llu "
		"zstd %llu xdelta3 %llu zstd-prefix %llu; %llu xdelta3 runs, %llu rejected "
		"by the "
		"verifying decode\n",
		cmd, (unsigned long long)tr->extents, (unsigned long long)tr->data_chunks,
		(unsigned long long)tr->zero_chunks, (unsigned long long)st->data_bytes,
		(unsigned long long)tr->payload_bytes,
		st->data_bytes ? 100.0 * (double)tr->payload_bytes / (double)st->data_bytes : 0.0,
		(unsigned long long)st->codec.chosen[0], (unsigned long long)st->codec.chosen[1],
		(unsigned long long)st->codec.chosen[2], (unsigned long long)st->codec.chosen[3],
		(unsigned long long)st->codec.chosen[4], (unsigned long long)st->codec.xdelta3_runs,
		(unsigned long long)st->codec.verify_failures);
}

int delta_exit(const char *cmd, const struct delta_error *e)
{
	for (const char *l = e->msg, *nl; *l; l = nl + 1) {
		nl = strchr(l, '\n');
		cmd_error(cmd, "%.*s", (int)(nl ? nl - l : (ptrdiff_t)strlen(l)), l);
		if (!nl)
			break;
	}
	return e->bad_params ? EXIT_USAGE : e->corrupt ? EXIT_CORRUPT : EXIT_FAIL;
}

int delta_create_cmd(const struct delta_create_params *p)
{
	struct delta_create_stats st;
	struct delta_error e;

	if (delta_create_stream(p, &st, &e))
		return delta_exit(p->cmd, &e);
	if (p->verbose)
		create_report(p->cmd, &st);
	return EXIT_OK;
}

/* ---- apply ---- */

struct pending {
	struct delta_record rec;
	u8 *payload; /* own copy */
	struct delta_token tok;
};

struct apply {
	struct delta_reader *r;
	struct delta_codec *dc;
	struct delta_header h;
	struct dev origin, src;
	const char *token_path;
	struct delta_token applied; /* everything up to here is written */
	bool dirty;		    /* written since the last sync */
	struct timespec last_save;
	u8 *zeros;
	/* xdelta3 extents waiting for one batched decode */
	struct pending *q;
	unsigned nq;
	size_t qbytes;
	u64 written_chunks;
	int exit_code;
	bool check; /* --check: verify everything, write nothing */
};

static int apply_save(struct apply *a)
{
	int rc;

	if (!a->token_path)
		return 0;
	if (a->dirty && fdatasync(a->origin.fd)) {
		rc = -errno;
		derr("sync %s: %s", a->origin.path, errmsg(rc));
		return rc;
	}
	a->dirty = false;
	rc = delta_token_save(a->token_path, &a->applied);
	if (rc)
		derr("saving resume token %s: %s", a->token_path, errmsg(rc));
	clock_gettime(CLOCK_MONOTONIC, &a->last_save);
	return rc;
}

static int apply_done_record(struct apply *a, const struct delta_token *tok)
{
	a->applied = *tok;
	if (a->token_path && xfer_elapsed(&a->last_save) >= DELTA_TOKEN_INTERVAL)
		return apply_save(a);
	return 0;
}

/* Reads the receiver's source extent and compares it with the sender's checksum. */
static int apply_source(struct apply *a, const struct delta_record *rec, u8 *buf, size_t len)
{
	int rc = dev_pread(&a->src, buf, len, rec->chunk * a->h.chunk_size);

	if (rc)
		return rc;
	if (delta_csum(buf, len) != rec->src_csum) {
		derr("source snapshot %s differs from the sender's at chunks %llu..%llu: refusing "
		     "this delta",
		     a->src.path, (unsigned long long)rec->chunk,
		     (unsigned long long)(rec->chunk + rec->count - 1));
		a->exit_code = EXIT_FAIL;
		return -ESTALE;
	}
	return 0;
}

static int apply_write(struct apply *a, const struct delta_record *rec, const u8 *data, size_t len)
{
	int rc;

	if (delta_csum(data, len) != rec->tgt_csum) {
		derr("extent at chunk %llu (record %llu) decodes to data with a wrong checksum: "
		     "corrupt delta; nothing of it was written",
		     (unsigned long long)rec->chunk, (unsigned long long)rec->seq);
		a->exit_code = EXIT_CORRUPT;
		return -EILSEQ;
	}
	if (!a->check) {
		rc = dev_pwrite(&a->origin, data, len, rec->chunk * a->h.chunk_size);
		if (rc)
			return rc;
		a->dirty = true;
	}
	a->written_chunks += rec->count;
	return 0;
}

/* Decodes the queued xdelta3 extents in one run and applies them in order. */
static int apply_flush(struct apply *a)
{
	struct delta_djob *dj;
	u8 *src, *tgt;
	size_t off = 0;
	int rc = 0;

	if (!a->nq)
		return 0;
	dj = xzalloc(sizeof(*dj) * a->nq);
	src = abuf(a->qbytes);
	tgt = abuf(a->qbytes); /* O_DIRECT writes need aligned buffers */
	for (unsigned i = 0; i < a->nq && !rc; i++) {
		struct delta_record *rec = &a->q[i].rec;
		size_t len = (size_t)rec->count * a->h.chunk_size;

		dj[i] = (struct delta_djob){.codec = rec->codec,
					    .payload = a->q[i].payload,
					    .payload_len = rec->payload_len,
					    .src = src + off,
					    .src_len = len,
					    .tgt = tgt + off,
					    .len = len};
		rc = apply_source(a, rec, src + off, len);
		off += len;
	}
	if (!rc) {
		rc = delta_codec_decode_batch(a->dc, dj, a->nq);
		if (rc == -ENOENT || rc == -EIO) {
			derr("%s", delta_codec_error(a->dc));
			a->exit_code = EXIT_FAIL;
			goto out;
		}
		rc = 0;
	}
	for (unsigned i = 0; i < a->nq && !rc; i++) {
		if (dj[i].err) {
			derr("extent at chunk %llu (record %llu): %s; nothing of it was written",
			     (unsigned long long)a->q[i].rec.chunk,
			     (unsigned long long)a->q[i].rec.seq, delta_codec_error(a->dc));
			a->exit_code = EXIT_CORRUPT;
			rc = -EILSEQ;
			break;
		}
		rc = apply_write(a, &a->q[i].rec, dj[i].tgt, dj[i].len);
		if (!rc)
			rc = apply_done_record(a, &a->q[i].tok);
	}
out:
	for (unsigned i = 0; i < a->nq; i++)
		free(a->q[i].payload);
	a->nq = 0;
	a->qbytes = 0;
	free(dj);
	free(src);
	free(tgt);
	return rc;
}

static int apply_record(struct apply *a, const struct delta_record *rec,
			const struct delta_token *tok)
{
	size_t len = (size_t)rec->count * a->h.chunk_size;
	struct delta_djob dj;
	u8 *src = NULL, *tgt;
	int rc;

	if (rec->type == DELTA_REC_ZERO) {
		rc = apply_flush(a);
		for (u64 c = 0; !rc && !a->check && c < rec->count;) {
			u64 k = MIN((u64)rec->count - c, (u64)(DELTA_MAX_EXTENT / a->h.chunk_size));

			rc = dev_pwrite(&a->origin, a->zeros, (size_t)k * a->h.chunk_size,
					(rec->chunk + c) * a->h.chunk_size);
			c += k;
		}
		if (!rc) {
			a->dirty = true;
			a->written_chunks += rec->count;
			rc = apply_done_record(a, tok);
		}
		return rc;
	}
	if (rec->codec == DELTA_CODEC_XDELTA3) {
		struct pending *p;

		if (a->qbytes + len > DELTA_BATCH_BYTES || a->nq == DELTA_BATCH_EXTENTS) {
			rc = apply_flush(a);
			if (rc)
				return rc;
		}
		p = &a->q[a->nq++];
		p->rec = *rec;
		p->payload = xmalloc(rec->payload_len ? rec->payload_len : 1);
		memcpy(p->payload, rec->payload, rec->payload_len);
		p->rec.payload = p->payload;
		p->tok = *tok;
		a->qbytes += len;
		return 0;
	}
	rc = apply_flush(a);
	if (rc)
		return rc;
	tgt = abuf(len);
	if (rec->flags & DELTA_EXTENT_SRC_CSUM) {
		src = abuf(len);
		rc = apply_source(a, rec, src, len);
	}
	if (!rc) {
		dj = (struct delta_djob){.codec = rec->codec,
					 .payload = rec->payload,
					 .payload_len = rec->payload_len,
					 .src = src,
					 .src_len = src ? len : 0,
					 .tgt = tgt,
					 .len = len};
		rc = delta_codec_decode(a->dc, &dj);
		if (rc) {
			derr("extent at chunk %llu (record %llu): %s; nothing of it was written",
			     (unsigned long long)rec->chunk, (unsigned long long)rec->seq,
			     delta_codec_error(a->dc));
			a->exit_code = rc == -EILSEQ ? EXIT_CORRUPT : EXIT_FAIL;
		}
	}
	if (!rc)
		rc = apply_write(a, rec, tgt, len);
	if (!rc)
		rc = apply_done_record(a, tok);
	free(src);
	free(tgt);
	return rc;
}

/* The records skipped from a re-sent full stream must be the ones applied before. */
static int check_skipped(struct apply *a, const struct delta_token *saved)
{
	if (a->applied.next_seq == saved->next_seq &&
	    a->applied.stream_csum == saved->stream_csum &&
	    a->applied.next_chunk == saved->next_chunk)
		return 0;
	derr("this stream differs from the interrupted one before record %llu: apply it "
	     "without the token, or resume from the token",
	     (unsigned long long)saved->next_seq);
	a->exit_code = EXIT_FAIL;
	return -ESTALE;
}

static const struct option apply_opts[] = {
	{"token", required_argument, NULL, 't'}, {"check", no_argument, NULL, 'n'},
	{"limit", required_argument, NULL, 'l'}, {"progress", no_argument, NULL, 'p'},
	{"verbose", no_argument, NULL, 'v'},	 {NULL, 0, NULL, 0},
};

static const char apply_usage[] =
	"usage: ddsnap delta apply [-t TOKEN | -n] [-l bytes/s] [-v] <deltafile|-> <devstem>\n"
	"  -n, --check  verify the whole delta against this receiver (source checksums,\n"
	"               decoding, target checksums) and write nothing\n";

int delta_apply_option(int opt, const char *arg, struct delta_apply_params *p)
{
	switch (opt) {
	case 't':
		p->token = arg;
		return 0;
	case 'l':
		if (cmd_parse_size(arg, UINT64_MAX, &p->limit)) {
			cmd_error(p->cmd, "bad rate '%s'", arg);
			return -EINVAL;
		}
		return 0;
	case 'p':
		p->force_progress = true;
		return 0;
	case 'v':
		p->verbose = true;
		return 0;
	default:
		return 1;
	}
}

static int delta_apply(int argc, char **argv)
{
	struct delta_apply_params p = {.cmd = "delta"};
	int opt, ret;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "t:nl:vh", apply_opts, NULL)) != -1) {
		if (opt == 'n') {
			p.check = true;
			continue;
		}
		ret = delta_apply_option(opt, optarg, &p);
		if (ret < 0)
			return EXIT_USAGE;
		if (ret) {
			fputs(apply_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2 || (p.check && p.token)) {
		fputs(apply_usage, stderr);
		return EXIT_USAGE;
	}
	p.name = argv[optind];
	p.devstem = argv[optind + 1];
	if (!strcmp(argv[optind], "-"))
		p.in_fd = STDIN_FILENO;
	else {
		p.in_fd = open(argv[optind], O_RDONLY | O_CLOEXEC);
		if (p.in_fd < 0) {
			derr("cannot open %s: %s", argv[optind], strerror(errno));
			return EXIT_FAIL;
		}
	}
	ret = delta_apply_cmd(&p);
	if (p.in_fd != STDIN_FILENO)
		close(p.in_fd);
	return ret;
}

/*
 * apply, phase 1: where this receiver resumes.  Loads the token (if -t) into *@saved; a
 * resumed stream must start exactly at it, and a full stream re-sent after an interruption
 * is skipped up to it (*@skip_until, 0 if nothing is skipped).  Returns 0, or -1 with the
 * message printed.
 */
static int apply_resume_point(struct apply *a, struct delta_token *saved, u64 *skip_until)
{
	bool have_saved = false;
	int rc;

	*skip_until = 0;
	if (a->token_path) {
		rc = delta_token_load(a->token_path, saved);
		if (rc == -EILSEQ) {
			derr("resume token %s is corrupt", a->token_path);
			return -1;
		}
		have_saved = !rc && delta_token_matches(saved, &a->h);
	}
	if (a->h.start_seq) {
		/* a resumed stream must continue exactly where this receiver stopped */
		if (!have_saved || saved->next_seq != a->h.start_seq ||
		    saved->next_chunk != a->h.start_chunk ||
		    saved->stream_csum != a->h.start_csum) {
			derr("this stream resumes at record %llu, chunk %llu, but %s",
			     (unsigned long long)a->h.start_seq,
			     (unsigned long long)a->h.start_chunk,
			     have_saved ? "the resume token says otherwise"
					: "there is no matching resume token (-t)");
			return -1;
		}
	} else if (have_saved && saved->next_seq) {
		*skip_until = saved->next_seq; /* a full stream re-sent: skip what is on disk */
	}
	return 0;
}

/*
 * apply, phase 2: opens the origin <devstem> (read-only with --check), which must cover the
 * delta's volume, and for an incremental delta the source snapshot <devstem>(src).
 * Returns 0, or -1 with the message printed.
 */
static int apply_open_devs(const struct delta_apply_params *p, struct apply *a)
{
	char *name = delta_dev_name(p->devstem, DDSNAP_TAG_HEAD);
	int rc = dev_open(&a->origin, name, !a->check);

	free(name);
	if (rc)
		return -1;
	if (a->origin.size < a->h.volume_chunks * a->h.chunk_size) {
		derr("%s is smaller than the delta's volume (%llu bytes)", a->origin.path,
		     (unsigned long long)(a->h.volume_chunks * a->h.chunk_size));
		return -1;
	}
	if (!(a->h.flags & DELTA_FULL)) {
		name = delta_dev_name(p->devstem, a->h.src_tag);
		rc = dev_open(&a->src, name, false);
		free(name);
		if (rc)
			return -1;
	}
	return 0;
}

/* apply, phase 3: the raw codec, the zero extent and the queue every record needs. */
static void apply_buffers(struct apply *a)
{
	struct delta_codec_opts co = {.mode = DELTA_CODEC_RAW};

	a->dc = delta_codec_new(&co);
	a->zeros = abuf(DELTA_MAX_EXTENT);
	memset(a->zeros, 0, DELTA_MAX_EXTENT);
	a->q = xmalloc(sizeof(*a->q) * DELTA_BATCH_EXTENTS);
}

/*
 * apply, phase 4: reads and applies every record up to the trailer (skipping those before
 * *@skip_until, then checking the skipped part against @saved), at the rate limit, with
 * progress.  Returns 0 once the trailer validated and everything queued is applied, or a
 * negative errno (a->exit_code says EXIT_CORRUPT for a corrupt stream).
 */
static int apply_records(const struct delta_apply_params *p, struct apply *a,
			 const struct delta_token *saved, u64 *skip_until)
{
	struct delta_record rec;
	struct delta_trailer tr;
	struct xfer_rate rate;
	struct xfer_progress prog;
	int rc;

	xfer_rate_init(&rate, p->limit);
	xfer_progress_init(&prog, strcmp(p->cmd, "delta") ? p->cmd : "apply", 0, p->force_progress);
	for (;;) {
		struct delta_token tok;

		rc = delta_reader_next(a->r, &rec);
		if (rc < 0) {
			/* a bad record: what is queued was read intact, apply it first */
			derr("%s: %s", p->name, delta_reader_error(a->r));
			a->exit_code = rc == -EILSEQ ? EXIT_CORRUPT : EXIT_FAIL;
			if (*skip_until)
				break;
			apply_flush(a);
			if (delta_reader_csum_mismatch(a->r, &tr) &&
			    a->applied.next_seq == tr.end_seq) {
				/* each extent matched its tgt_csum: the data on disk is the sender's */
				derr("every extent passed its own checks and is applied; "
				     "the damaged bytes decoded to the same data");
				a->applied.stream_csum = tr.stream_csum;
			}
			break;
		}
		if (rc == 0) {
			/* trailer validated: apply what is queued; the transfer is complete */
			rc = apply_flush(a);
			break;
		}
		delta_reader_token(a->r, &tok);
		if (rec.seq < *skip_until) {
			a->applied = tok;
			continue;
		}
		if (*skip_until) {
			rc = check_skipped(a, saved);
			if (rc)
				break;
			*skip_until = 0;
		}
		rc = apply_record(a, &rec, &tok);
		if (rc)
			break;
		xfer_rate_account(&rate, rec.payload_len);
		xfer_progress_update(&prog, a->written_chunks * a->h.chunk_size);
	}
	if (!rc && *skip_until)
		rc = check_skipped(a, saved);
	xfer_progress_done(&prog);
	return rc;
}

int delta_apply_cmd(const struct delta_apply_params *p)
{
	struct apply a = {.origin.fd = -1,
			  .src.fd = -1,
			  .exit_code = EXIT_FAIL,
			  .token_path = p->token,
			  .check = p->check};
	struct delta_token saved;
	struct delta_trailer tr;
	u64 skip_until = 0;
	int in = p->in_fd, rc;

	derr_cmd = p->cmd;
	a.r = delta_reader_new(delta_fd_read, &in);
	rc = delta_reader_header(a.r, &a.h);
	if (rc) {
		derr("%s: %s", p->name, delta_reader_error(a.r));
		a.exit_code = rc == -EILSEQ ? EXIT_CORRUPT : EXIT_FAIL;
		goto out;
	}
	if (p->on_header) {
		rc = p->on_header(&a.h, p->arg);
		if (rc) {
			a.exit_code = rc;
			goto out;
		}
	}
	if (apply_resume_point(&a, &saved, &skip_until) || apply_open_devs(p, &a))
		goto out;
	apply_buffers(&a);
	delta_reader_token(a.r, &a.applied);
	clock_gettime(CLOCK_MONOTONIC, &a.last_save);
	rc = apply_records(p, &a, &saved, &skip_until);
	/* make durable what was applied, and record where to resume */
	if (a.origin.fd >= 0 && !a.check) {
		if (fdatasync(a.origin.fd) && !rc) {
			derr("sync %s: %s", a.origin.path, strerror(errno));
			rc = -EIO;
		}
		a.dirty = false;
	}
	if (rc) {
		/* skipping a re-sent stream that was never matched to the token: keep the token */
		if (skip_until && a.token_path)
			derr("resume token %s unchanged", a.token_path);
		else if (a.token_path && a.origin.fd >= 0 && apply_save(&a) == 0)
			derr("resume token saved in %s (next record %llu, chunk %llu)",
			     a.token_path, (unsigned long long)a.applied.next_seq,
			     (unsigned long long)a.applied.next_chunk);
		goto out;
	}
	if (a.token_path)
		unlink(a.token_path);
	delta_reader_trailer(a.r, &tr);
	if (p->verbose || a.check)
		fprintf(stderr, "ddsnap %s: %s %llu extents and %llu zero extents (%llu chunks)\n",
			p->cmd, a.check ? "verified, would apply" : "applied",
			(unsigned long long)tr.extents, (unsigned long long)tr.zero_extents,
			(unsigned long long)a.written_chunks);
	a.exit_code = EXIT_OK;
out:
	if (a.q)
		for (unsigned i = 0; i < a.nq; i++)
			free(a.q[i].payload);
	free(a.q);
	free(a.zeros);
	delta_codec_free(a.dc);
	delta_reader_free(a.r);
	dev_close(&a.origin);
	dev_close(&a.src);
	return a.exit_code;
}

/* ---- changelist from a running server ---- */

static int parse_tag(const char *s, u32 *tag)
{
	u64 v;

	if (!strcmp(s, "none") || !strcmp(s, "-1")) {
		*tag = DDSNAP_TAG_NONE;
		return 0;
	}
	if (!strcmp(s, "origin")) {
		*tag = DDSNAP_TAG_HEAD;
		return 0;
	}
	if (cmd_parse_u64(s, 0, DDSNAP_TAG_MAX, &v))
		return -EINVAL;
	*tag = (u32)v;
	return 0;
}

static int cl_append(const u64 *chunks, u32 n, void *arg)
{
	for (u32 i = 0; i < n; i++) {
		int rc = changelist_append(arg, chunks[i]);

		if (rc)
			return rc == -EINVAL ? -EPROTO : rc;
	}
	return 0;
}

static const char changelist_usage[] =
	"usage: ddsnap delta changelist <server socket> <changelist> <fromsnap|none> "
	"<tosnap|origin>\n";

int delta_fetch_changelist(const char *cmd, struct ctl_client *c, const char *path, u32 from,
			   u32 to)
{
	struct changelist_header h = {0};
	struct changelist_writer *w = NULL;
	struct ctl_snap *snaps = NULL;
	struct ctl_result res;
	u32 nsnaps = 0;
	char why[256];
	bool found_from = false, found_to = false;
	int rc, ret = EXIT_FAIL;

	derr_cmd = cmd;
	rc = ctl_client_list(c, &snaps, &nsnaps, &res, why, sizeof(why));
	if (rc || res.error) {
		derr("listing snapshots: %s", rc ? why : res.text);
		goto out;
	}
	h.src_tag = from;
	h.tgt_tag = to;
	for (u32 i = 0; i < nsnaps; i++) {
		if (snaps[i].tag == from)
			h.src_gen = snaps[i].gen;
		if (snaps[i].tag == to)
			h.tgt_gen = snaps[i].gen;
		found_from |= snaps[i].tag == from;
		found_to |= snaps[i].tag == to;
	}
	/* the whole-volume listing does not look at the target: check both here */
	if (!found_from && from != DDSNAP_TAG_NONE) {
		derr("no snapshot %u", from);
		goto out;
	}
	if (!found_to && to != DDSNAP_TAG_HEAD) {
		derr("no snapshot %u", to);
		goto out;
	}
	h.chunk_size = 1u << ctl_client_chunk_bits(c);
	h.volume_chunks = (ctl_client_origin_sectors(c) << 9) / h.chunk_size;
	ctl_client_uuid(c, h.uuid);
	rc = changelist_create(&w, path, &h);
	if (rc) {
		derr("cannot create %s: %s", path, errmsg(rc));
		goto out;
	}
	rc = ctl_client_changelist(c, from, to, cl_append, w, &res, why, sizeof(why));
	if (rc || res.error) {
		derr("changelist: %s", rc ? (*why ? why : errmsg(rc)) : res.text);
		changelist_abort(w);
		goto out;
	}
	rc = changelist_commit(w);
	if (rc) {
		derr("writing %s: %s", path, errmsg(rc));
		goto out;
	}
	ret = EXIT_OK;
out:
	free(snaps);
	return ret;
}

/* Zumastor's argument order: ddsnap delta changelist <sock> <changelist> <snap1> <snap2>. */
static int delta_changelist(int argc, char **argv)
{
	struct ctl_client *c = NULL;
	u32 from, to;
	char why[256];
	int ret;

	if (argc != 5 || parse_tag(argv[3], &from) || parse_tag(argv[4], &to) ||
	    to == DDSNAP_TAG_NONE || from == DDSNAP_TAG_HEAD) {
		fputs(changelist_usage, stderr);
		return EXIT_USAGE;
	}
	if (ctl_client_open(argv[1], &c, why, sizeof(why))) {
		derr("%s", why);
		return EXIT_FAIL;
	}
	ret = delta_fetch_changelist("delta", c, argv[2], from, to);
	ctl_client_close(c);
	return ret;
}

int cmd_delta(int argc, char **argv)
{
	derr_cmd = "delta";
	if (argc < 2) {
		fputs(changelist_usage, stderr);
		fputs(create_usage, stderr);
		fputs(apply_usage, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "create"))
		return delta_create(argc - 1, argv + 1);
	if (!strcmp(argv[1], "apply"))
		return delta_apply(argc - 1, argv + 1);
	if (!strcmp(argv[1], "changelist"))
		return delta_changelist(argc - 1, argv + 1);
	derr("unknown subcommand '%s' (changelist, create, apply)", argv[1]);
	return EXIT_USAGE;
}
