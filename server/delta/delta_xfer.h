/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * delta_xfer.h - the delta transfer: make a delta stream (delta_stream.h) from a changelist
 * (changelist.h) and snapshot devices, and apply one to an origin.  `ddsnap delta
 * create/apply`, `send` and `receive` (tools/delta.c, tools/replicate.c) are this plus
 * options, transport and server calls.
 *
 * Devices are named as in Zumastor: the origin is <devstem>, snapshot tag T is
 * "<devstem>(T)" (delta_dev_name()); plain files work the same, which is how the tests run.
 *
 * Errors: the library prints nothing about a failure.  A call returns 0 or a negative errno
 * and fills a struct delta_error with the problem in words, one line per problem in the
 * order they happened (an apply that fails also says where its resume token now stands),
 * and with its kind: the input is corrupt (a changelist or stream that fails its checks),
 * the parameters are refused, or neither (I/O, a device, a token or a source snapshot that
 * does not match).  The CLI turns the kind into its exit status and prints each line as
 * "ddsnap <cmd>: <line>".  The progress line (util/xfer.h, only on a terminal or when
 * forced) is the one thing the library draws on stderr.
 *
 * Every call blocks on device, file and pipe I/O.  delta_create_stream() runs a pipeline
 * inside the call (delta_create.c: the caller's thread reads, workers encode, a writer
 * writes, in stream order) and joins it before returning; the stream it writes does not
 * depend on the number of workers, nor on io_depth.  delta_apply_stream() overlaps decoding
 * with writing the origin the same way (delta_apply.c).  Both keep up to io_depth device
 * requests in flight (a batch's snapshot reads; a receiver's source reads and origin
 * writes).  Neither call is reentrant on the same fds.
 */
#ifndef DDSNAP_DELTA_XFER_H
#define DDSNAP_DELTA_XFER_H

#include "util/base.h"
#include "delta/delta_codec.h"
#include "delta/delta_stream.h"

/* Room for the lines of one failure (each names a path or two). */
#define DELTA_ERROR_MAX 8192

struct delta_error {
	bool corrupt;	 /* the input (changelist, stream) is damaged: `ddsnap` exits 3 */
	bool bad_params; /* the parameters were refused (a codec level): `ddsnap` exits 2 */
	size_t len;	 /* of msg */
	char msg[DELTA_ERROR_MAX]; /* the problems, '\n' between lines, no prefix */
};

/* Starts @e empty (the calls below do it themselves). */
void delta_error_init(struct delta_error *e);
/* Adds a line to @e (cut short, never overflowing, if @e is full). */
void delta_error_add(struct delta_error *e, const char *fmt, ...) __printf(2, 3);

/* A full delta's zstd level when none is given: the whole volume goes through the codec,
 * so it runs at the speed of `zstd -1` (a bit larger than level 3, about twice as fast). */
#define DELTA_FULL_ZSTD_LEVEL 1

/* delta_create_stream() encodes on at most this many threads (each holds a few batches). */
#define DELTA_MAX_THREADS 4

/* What delta_create_stream() needs; the CLI fills it with defaults and options. */
struct delta_create_params {
	const char *cmd;	/* the progress line's label: "delta", "send" */
	const char *changelist; /* a changelist file (changelist.h) */
	const char *devstem;	/* reads <devstem>(tgt) and, when needed, <devstem>(src) */
	int out_fd;		/* the stream goes here (a file, a pipe, a socket) */
	struct delta_codec_opts codec;
	const char *resume; /* a receiver's token: start the stream where it stopped */
	u64 limit;	    /* bytes per second of stream, 0 = unlimited */
	bool no_src_check, force_progress;
	bool verbose;	   /* for the caller, which prints the stats; the library ignores it */
	unsigned threads;  /* encoding workers; 0 = the online CPUs (at most DELTA_MAX_THREADS) */
	unsigned io_depth; /* device reads in flight; 0 = 16; 1 = one by one (the same stream) */
	/*
	 * The provenance of the source and target snapshots for the stream header (struct
	 * delta_header).  A gen of 0: the snapshot was taken here, its provenance is the
	 * changelist's uuid and gen (what `ddsnap delta create` uses; `send` asks its server).
	 */
	u8 src_origin_uuid[16], tgt_origin_uuid[16];
	u64 src_origin_gen, tgt_origin_gen;
};

/* What a successful delta_create_stream() made, for -v. */
struct delta_create_stats {
	struct delta_trailer tr;
	struct delta_codec_stats codec;
	u64 data_bytes; /* bytes of chunk data read and encoded */
};

/*
 * Validates the whole changelist, then writes the stream to p->out_fd: header, extents
 * and zero records in chunk order, trailer.  Does not fsync or close out_fd.  Returns 0
 * (*@st filled) or a negative errno with @e filled; a corrupt changelist writes nothing.
 */
int delta_create_stream(const struct delta_create_params *p, struct delta_create_stats *st,
			struct delta_error *e);

/* What delta_apply_stream() needs. */
struct delta_apply_params {
	const char *cmd;     /* the progress line's label ("delta" shows as "apply") */
	const char *name;    /* the input's name in messages */
	int in_fd;	     /* the stream comes from here */
	const char *devstem; /* writes <devstem>, reads <devstem>(src) */
	const char *token;   /* resume token file, or NULL */
	bool check;	     /* verify everything, write nothing (no token then) */
	u64 limit;
	bool force_progress;
	bool verbose;	   /* for the caller, which prints the stats; the library ignores it */
	unsigned io_depth; /* source reads and origin writes in flight; 0 = 16; 1 = one by one */
	/* Called with the validated header before any device is opened; a nonzero return
	 * refuses the stream with nothing written: the call fails with -ECANCELED and adds no
	 * line (the callback reported its reason). */
	int (*on_header)(const struct delta_header *h, void *arg);
	void *arg;
};

/* What a successful delta_apply_stream() did. */
struct delta_apply_stats {
	struct delta_trailer tr;
	u64 written_chunks; /* chunks written (with check: that would be written) */
};

/*
 * Applies the stream from p->in_fd to <devstem> (doc/delta-format.md, reader rules and
 * resume token): every extent's source checksum is checked against <devstem>(src) before
 * the extent is written and its target checksum after decoding.  With a token file, a
 * resumed stream must continue exactly at the token and a re-sent stream is skipped up to
 * it; on failure the origin is synced and the token saved; on success it is removed.
 * Returns 0 (*@st filled) or a negative errno with @e filled.
 */
int delta_apply_stream(const struct delta_apply_params *p, struct delta_apply_stats *st,
		       struct delta_error *e);

/* "<stem>(tag)", or @stem itself for DDSNAP_TAG_HEAD (the live origin).  Caller frees. */
char *delta_dev_name(const char *stem, u32 tag);

#endif
