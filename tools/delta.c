// SPDX-License-Identifier: GPL-2.0-only
/*
 * delta.c - `ddsnap delta changelist`, `ddsnap delta create` and `ddsnap delta apply`: the
 * command lines, options and messages around the delta library (delta/delta_xfer.h), which
 * makes a delta stream from a changelist and two snapshot devices and applies one to an
 * origin.
 *
 * Devices are named as in Zumastor: the origin is <devstem> (/dev/mapper/vol) and snapshot
 * tag T is "<devstem>(T)"; plain files work the same, which is how the tests run.
 *
 * What is shared with `ddsnap send` / `ddsnap receive` (tools/replicate.c) is here
 * (tools/delta.h): the option parsers, delta_create_cmd() and delta_apply_cmd() (a library
 * call, its problems printed as "ddsnap <cmd>: <line>", its -v report, the exit code from
 * delta_exit()) and delta_fetch_changelist().  The library prints nothing on failure; the
 * exit codes are this file's: EXIT_CORRUPT for a corrupt changelist or stream, EXIT_USAGE
 * for a refused codec level, EXIT_FAIL for the rest.
 *
 * Nothing here writes a device; the crash argument of apply (token after fdatasync) is in
 * server/delta/delta_apply.c.  `delta create` to a file fsyncs it before reporting success.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "util/base.h"
#include "util/path.h"
#include "delta/changelist.h"
#include "commands.h"
#include "client/ctl_client.h"
#include "delta.h"

/* The subcommand errors are reported under ("delta", "send", "receive"). */
static const char *derr_cmd = "delta";

static __printf(1, 2) void derr(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmd_verror(derr_cmd, fmt, ap);
	va_end(ap);
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
		derr("cannot create %s: %s", argv[optind + 1], path_open_errmsg(p.out_fd));
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

int delta_apply_cmd(const struct delta_apply_params *p)
{
	struct delta_apply_stats st;
	struct delta_error e;

	if (delta_apply_stream(p, &st, &e))
		return delta_exit(p->cmd, &e);
	if (p->verbose || p->check)
		fprintf(stderr, "ddsnap %s: %s %llu extents and %llu zero extents (%llu chunks)\n",
			p->cmd, p->check ? "verified, would apply" : "applied",
			(unsigned long long)st.tr.extents, (unsigned long long)st.tr.zero_extents,
			(unsigned long long)st.written_chunks);
	return EXIT_OK;
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
			   u32 to, struct delta_create_params *origins)
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
		if (origins && snaps[i].tag == from) {
			memcpy(origins->src_origin_uuid, snaps[i].origin_uuid, 16);
			origins->src_origin_gen = snaps[i].origin_gen;
		}
		if (origins && snaps[i].tag == to) {
			memcpy(origins->tgt_origin_uuid, snaps[i].origin_uuid, 16);
			origins->tgt_origin_gen = snaps[i].origin_gen;
		}
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
	ret = delta_fetch_changelist("delta", c, argv[2], from, to, NULL);
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
