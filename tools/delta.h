/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * delta.h - the delta engine behind `ddsnap delta`, `ddsnap send` and `ddsnap receive`
 * (tools/delta.c): make a stream from a changelist and snapshot devices, apply a stream to
 * an origin, and fetch a changelist from a running server.
 *
 * Devices are named as in Zumastor: the origin is <devstem>, snapshot tag T is
 * "<devstem>(T)".  Every function here reports its problems on stderr as
 * "ddsnap <cmd>: <what>" and returns a ddsnap exit code (commands.h: EXIT_OK, EXIT_FAIL,
 * EXIT_USAGE, EXIT_CORRUPT), so a subcommand can return it as is.  Single-threaded; all
 * calls block on device, file and socket I/O.
 */
#ifndef DDSNAP_TOOLS_DELTA_H
#define DDSNAP_TOOLS_DELTA_H

#include <getopt.h>
#include "util/base.h"
#include "delta/delta_codec.h"
#include "delta/delta_stream.h"

struct ctl_client;

/* What delta_create_stream() needs; fill with delta_create_defaults() and the options. */
struct delta_create_params {
	const char *cmd;	/* error prefix: "delta", "send" */
	const char *changelist; /* a changelist file (changelist.h) */
	const char *devstem;	/* reads <devstem>(tgt) and, when needed, <devstem>(src) */
	int out_fd;		/* the stream goes here (a file, a pipe, a socket) */
	struct delta_codec_opts codec;
	const char *resume; /* a receiver's token: start the stream where it stopped */
	u64 limit;	    /* bytes per second of stream, 0 = unlimited */
	bool no_src_check, force_progress, verbose;
};

/* The defaults: zstd-prefix (the measured default codec), no limit, no resume. */
void delta_create_defaults(struct delta_create_params *p, const char *cmd);

/*
 * The codec and transfer options shared by `delta create` and `send`, for getopt_long:
 * -r, -z[L], --zstd[=L], -x[L], --zstd-delta[=L], -b[L], -l RATE, --verify-all,
 * --no-source-check, --progress, -v.  DELTA_CREATE_OPTIONS goes into a longopts array,
 * DELTA_CREATE_SHORTOPTS into the short option string.  delta_create_option() takes one
 * option returned by getopt_long: 0 if it was one of these and valid, -EINVAL for a bad
 * value (message printed), 1 if it is not one of these.
 */
#define DELTA_CREATE_SHORTOPTS "rz::x::b::l:v"
#define DELTA_CREATE_OPTIONS                                                                       \
	{"raw", no_argument, NULL, 'r'}, {"zlib", optional_argument, NULL, 'z'},                   \
		{"zstd", optional_argument, NULL, 'Z'}, {"xdelta", optional_argument, NULL, 'x'},  \
		{"zstd-delta", optional_argument, NULL, 'P'},                                      \
		{"best", optional_argument, NULL, 'b'}, {"limit", required_argument, NULL, 'l'},   \
		{"verify-all", no_argument, NULL, 'V'},                                            \
		{"no-source-check", no_argument, NULL, 'S'}, {"progress", no_argument, NULL, 'p'}, \
	{                                                                                          \
		"verbose", no_argument, NULL, 'v'                                                  \
	}
int delta_create_option(int opt, const char *arg, struct delta_create_params *p);

/*
 * Validates the whole changelist, then writes the stream to p->out_fd: header, extents
 * and zero records in chunk order, trailer.  Does not fsync or close out_fd.  Returns an
 * exit code; EXIT_CORRUPT for a corrupt changelist (nothing written then).
 */
int delta_create_stream(const struct delta_create_params *p);

/* What delta_apply_stream() needs. */
struct delta_apply_params {
	const char *cmd;     /* error prefix: "delta", "receive" */
	const char *name;    /* the input's name in messages */
	int in_fd;	     /* the stream comes from here */
	const char *devstem; /* writes <devstem>, reads <devstem>(src) */
	const char *token;   /* resume token file, or NULL */
	bool check;	     /* verify everything, write nothing (no token then) */
	u64 limit;
	bool force_progress, verbose;
	/* Called with the validated header before any device is opened; a nonzero return
	 * (an exit code, the message printed) refuses the stream with nothing written. */
	int (*on_header)(const struct delta_header *h, void *arg);
	void *arg;
};

/*
 * The options `delta apply` and `receive` share, for getopt_long: -t TOKEN, -l RATE,
 * --progress, -v.  Takes one option returned by getopt_long: 0 if it was one of these and
 * valid, -EINVAL for a bad value (message printed under p->cmd), 1 if it is not one of these.
 */
int delta_apply_option(int opt, const char *arg, struct delta_apply_params *p);

/*
 * Applies the stream from p->in_fd to <devstem> (doc/delta-format.md, reader rules and
 * resume token): every extent's source checksum is checked against <devstem>(src) before
 * the extent is written and its target checksum after decoding.  With a token file, a
 * resumed stream must continue exactly at the token and a re-sent stream is skipped up to
 * it; on failure the origin is synced and the token saved; on success it is removed.
 * Returns an exit code: EXIT_CORRUPT for a corrupt stream, EXIT_FAIL otherwise.
 */
int delta_apply_stream(const struct delta_apply_params *p);

/*
 * Asks the server behind @c for the changelist @from -> @to (DDSNAP_TAG_NONE: the whole
 * volume; DDSNAP_TAG_HEAD: the live origin) and writes it atomically to @path, with the volume's
 * uuid, chunk size and size and the two snapshots' gens.  Returns an exit code (the
 * server's reason printed on refusal, for instance a missing snapshot).
 */
int delta_fetch_changelist(const char *cmd, struct ctl_client *c, const char *path, u32 from,
			   u32 to);

/* "<stem>(tag)", or @stem itself for DDSNAP_TAG_HEAD (the live origin).  Caller frees. */
char *delta_dev_name(const char *stem, u32 tag);

#endif
