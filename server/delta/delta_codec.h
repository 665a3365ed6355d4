/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * delta_codec.h - the codecs that turn one extent of a target snapshot into a delta payload,
 * optionally against the same extent of the source snapshot.
 *
 * Every codec sits behind one ops table (struct delta_codec_ops) and works on batches of
 * jobs, because one of them (xdelta3) is an external program and must be started once per
 * batch, never once per extent.  The in-process codecs simply loop over the batch.
 *
 * Wire ids (enum delta_codec_id) are part of the delta stream format (doc/delta-format.md)
 * and never change meaning.  A payload produced by any codec is self-contained: it decodes
 * with only the target length and, for differencing codecs, the same source extent.
 *
 * Errors are negative errno: -EILSEQ a corrupt payload, -EINVAL a bad argument,
 * -ENOENT the xdelta3 program is missing, -EOPNOTSUPP a codec cannot encode this job (the
 * caller falls back), -EIO the xdelta3 process failed.  delta_codec_error() keeps the
 * message of the last failure of a context.
 *
 * A context is not thread-safe; use one per thread.  All calls block (xdelta3 batches wait
 * for the child process); none takes locks.
 */
#ifndef DDSNAP_DELTA_CODEC_H
#define DDSNAP_DELTA_CODEC_H

#include "util/base.h"

enum delta_codec_id {
	DELTA_CODEC_RAW = 0,	     /* payload = target bytes */
	DELTA_CODEC_ZLIB = 1,	     /* zlib (RFC 1950) stream of the target */
	DELTA_CODEC_ZSTD = 2,	     /* one zstd frame of the target, content size set */
	DELTA_CODEC_XDELTA3 = 3,     /* VCDIFF (RFC 3284), one window, source = source extent */
	DELTA_CODEC_ZSTD_PREFIX = 4, /* one zstd frame with the source extent as prefix */
	DELTA_CODEC_COUNT
};

/* Encoding modes: a single codec id, or BEST (try candidates, keep the smallest). */
#define DELTA_MODE_BEST 0x100

/* Largest extent any codec accepts: the stream caps extents at 1 MiB (Zumastor's
 * MAX_MEM_SIZE; large enough for good ratios, small enough to stream). */
#define DELTA_MAX_EXTENT (1u << 20)

/* xdelta3 windows are at least this long (its -W minimum); an extent's window is the next
 * power of two at least this long, the extent padded with zeros (doc/delta-format.md,
 * codec 3). */
#define DELTA_XDELTA_MIN_WINDOW 16384u

struct delta_codec_ops;
struct delta_codec;

/* One extent to encode.  src may be NULL (src_len 0) for a full (non-incremental) delta;
 * then differencing codecs report -EOPNOTSUPP for the job. */
struct delta_job {
	const u8 *src;
	size_t src_len; /* 0 or == len */
	const u8 *tgt;
	size_t len; /* 1 .. DELTA_MAX_EXTENT */
	u8 *out;    /* caller's buffer of at least delta_codec_bound(len) bytes */
	/* results */
	u32 codec; /* the codec that produced out (RAW after a fallback) */
	size_t out_len;
	int err; /* per-job result of the last codec tried (informational) */
};

/* One payload to decode into tgt (len bytes). */
struct delta_djob {
	u32 codec;
	const u8 *payload;
	size_t payload_len;
	const u8 *src; /* same extent of the source snapshot; NULL for non-differencing */
	size_t src_len;
	u8 *tgt;
	size_t len;
	int err; /* result */
};

struct delta_codec_ops {
	const char *name;
	enum delta_codec_id id;
	bool differencing;
	int min_level, max_level, default_level;
	/* Encode each job into job->out, setting out_len and err (0, -EOPNOTSUPP if this
	 * codec cannot or should not encode it, or an error).  Returns 0, or a negative errno
	 * when the whole batch failed (then no job's output is valid). */
	int (*encode)(struct delta_codec *dc, int level, struct delta_job *jobs, unsigned n);
	/* Decode each job, setting err (0 or -EILSEQ ...).  Returns 0 or a batch-wide error. */
	int (*decode)(struct delta_codec *dc, struct delta_djob *jobs, unsigned n);
};

struct delta_codec_opts {
	int mode;	 /* enum delta_codec_id or DELTA_MODE_BEST */
	int level;	 /* codec level; 0 = the codec's default */
	bool verify_all; /* also decode-verify non-differencing codecs (differencing always are) */
	const char *xdelta3_path; /* NULL = "xdelta3" from $PATH */
};

/* Worst-case payload size for an extent of len bytes under any codec.  O(1). */
size_t delta_codec_bound(size_t len);

/* The ops of codec @id, or NULL if unknown.  O(1). */
const struct delta_codec_ops *delta_codec_get(u32 id);
/* The ops of the codec called @name ("raw", "zlib", "zstd", "xdelta3", "zstd-prefix"),
 * or NULL.  O(codecs). */
const struct delta_codec_ops *delta_codec_by_name(const char *name);

/* A new context for @opts (copied).  Returns NULL only on a bad mode/level (errno
 * EINVAL).  Allocates zlib/zstd state lazily.  Never blocks. */
struct delta_codec *delta_codec_new(const struct delta_codec_opts *opts);
void delta_codec_free(struct delta_codec *dc);

/*
 * Encode a batch with the context's mode.  For each job sets codec, out and out_len: the
 * chosen codec's payload, or RAW when the codec failed, was not smaller than raw, or (for a
 * differencing codec) did not decode back to the target.  Every differencing payload is
 * decoded and compared before it is returned.  Returns 0, or a negative errno only for
 * failures that are not the data's fault (allocation in zstd, for instance); a missing
 * xdelta3 program makes xdelta3 jobs fall back and is reported once by delta_codec_error().
 * Cost: O(total bytes) for the in-process codecs, plus one or two xdelta3 process runs per
 * distinct extent length in the batch.  Blocks.
 */
int delta_codec_encode_batch(struct delta_codec *dc, struct delta_job *jobs, unsigned n);

/*
 * Decode a batch: each job's err is 0 with tgt filled, or -EILSEQ (corrupt payload, wrong
 * length), -EINVAL (unknown codec, differencing without source).  Returns the first
 * job error, or a batch-wide error (-ENOENT no xdelta3 program, -EIO it failed to run).
 * Blocks; xdelta3 jobs are decoded by one process run per batch.
 */
int delta_codec_decode_batch(struct delta_codec *dc, struct delta_djob *jobs, unsigned n);

/* Single-job convenience wrappers of the two calls above. */
int delta_codec_encode(struct delta_codec *dc, struct delta_job *job);
int delta_codec_decode(struct delta_codec *dc, struct delta_djob *job);

/* The message of the last failure in @dc ("" if none).  Valid until the next call. */
const char *delta_codec_error(const struct delta_codec *dc);

/* Counters since delta_codec_new, for tests and benchmarks. */
struct delta_codec_stats {
	u64 xdelta3_runs;     /* xdelta3 processes started */
	u64 verify_failures;  /* differencing payloads rejected by the verifying decode */
	u64 xdelta3_rewrites; /* windows re-encoded because they used another extent's source */
	u64 fallbacks;	      /* jobs emitted as RAW although another codec was asked for */
	u64 chosen[DELTA_CODEC_COUNT];
};
void delta_codec_get_stats(const struct delta_codec *dc, struct delta_codec_stats *st);

#endif
