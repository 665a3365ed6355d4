/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * delta.h - what `ddsnap delta`, `ddsnap send` and `ddsnap receive` share around the delta
 * library (delta/delta_xfer.h): the transfer options, the library calls with their messages
 * and exit codes, and fetching a changelist from a running server.
 *
 * Every function here reports its problems on stderr as "ddsnap <cmd>: <what>" and returns
 * a ddsnap exit code (commands.h: EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_CORRUPT), so a
 * subcommand can return it as is.  Call from one thread; all calls block on device, file
 * and socket I/O (the library's create and apply run their own threads inside the call).
 */
#ifndef DDSNAP_TOOLS_DELTA_H
#define DDSNAP_TOOLS_DELTA_H

#include <getopt.h>
#include "util/base.h"
#include "delta/delta_xfer.h"

struct ctl_client;

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
 * delta_create_stream() for a subcommand: its problems are printed as "ddsnap <p->cmd>:
 * <line>", and under -v the stats; returns the exit code (delta_exit()).  Does not fsync
 * or close p->out_fd.
 */
int delta_create_cmd(const struct delta_create_params *p);

/*
 * The options `delta apply` and `receive` share, for getopt_long: -t TOKEN, -l RATE,
 * --progress, -v.  Takes one option returned by getopt_long: 0 if it was one of these and
 * valid, -EINVAL for a bad value (message printed under p->cmd), 1 if it is not one of these.
 */
int delta_apply_option(int opt, const char *arg, struct delta_apply_params *p);

/*
 * delta_apply_stream() for a subcommand: its problems are printed as "ddsnap <p->cmd>:
 * <line>", and with -v or --check what it applied; returns the exit code (delta_exit()).
 */
int delta_apply_cmd(const struct delta_apply_params *p);

/*
 * Prints each line of @e as "ddsnap <cmd>: <line>" and returns the exit code of the
 * failure it describes: EXIT_USAGE for refused parameters, EXIT_CORRUPT for a corrupt
 * changelist or stream, EXIT_FAIL otherwise.
 */
int delta_exit(const char *cmd, const struct delta_error *e);

/*
 * Asks the server behind @c for the changelist @from -> @to (DDSNAP_TAG_NONE: the whole
 * volume; DDSNAP_TAG_HEAD: the live origin) and writes it atomically to @path, with the volume's
 * uuid, chunk size and size and the two snapshots' gens.  With @origins (may be NULL), the
 * two snapshots' provenance as the server recorded it goes into its *_origin_* fields.
 * Returns an exit code (the server's reason printed on refusal, for instance a missing
 * snapshot).
 */
int delta_fetch_changelist(const char *cmd, struct ctl_client *c, const char *path, u32 from,
			   u32 to, struct delta_create_params *origins);

#endif
