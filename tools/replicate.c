// SPDX-License-Identifier: GPL-2.0-only
/*
 * replicate.c - `ddsnap send` and `ddsnap receive`: incremental replication of a volume to
 * another one, through a pipe (ssh) or a TCP connection.
 *
 *   ddsnap send <sock> [<fromtag>] <totag> | ssh replica ddsnap receive <sock> <totag>
 *
 * send asks its server for the changelist fromtag -> totag (the whole volume without
 * fromtag), writes it to a private temporary file and encodes the delta stream from the
 * devices of snapshots fromtag and totag with the engine of `delta create` (tools/delta.h),
 * to stdout or to a receiver listening on host:port; the stream header names the provenance
 * of both snapshots as send's server recorded it (the uuid of the volume that took each and
 * its gen there: its own for a snapshot it took, its sender's record for one it received,
 * so a chain A -> B -> C passes A's identity on).  receive checks the stream's header
 * against its own server before touching anything (the target snapshot must not exist yet,
 * the base snapshot must, and with the provenance the stream names: a snapshot of the same
 * tag from another history is refused here, not at its first mismatching extent), applies
 * it to the origin device with the engine of `delta apply` (source checksums against the
 * device of snapshot fromtag, target checksums, resume token), and then takes snapshot
 * <tag> through the same path as `ddsnap create` (origin devices suspended), recording the
 * stream's provenance for it, so the next incremental has its base and the snapshot its
 * identity.
 *
 * Devices: found by their device-mapper table, never by their name (client/dmctl.h): the
 * device of snapshot T is one whose ddsnap target talks to <sock> (the same path as in the
 * table) with tag T, the origin's one with tag -1, whatever they are called (the monitor's
 * /dev/mapper/vol@GMT-2026.12.06-10.00.00, /dev/mapper/vol@3 by hand).  None found is an
 * error naming the socket and tag, before send writes a stream byte or receive a device
 * byte.  The delta engine opens <devstem> and <devstem>(T) (delta.h), so the devices found
 * are symlinked under those names in a private directory that lives as long as the
 * command.  send looks them up once the server has confirmed the snapshots, receive once
 * the stream's header names its base.  -d DEVSTEM overrides the lookup: the engine then
 * opens DEVSTEM and DEVSTEM(T) as they are (plain files, as the CLI tests do, or devices
 * named that way).
 *
 * Interruption: receive keeps the resume token (-t, default <sock without .sock>.token) of
 * what it has durably applied (delta.c's argument: the origin is fdatasynced before each
 * token save).  `send -t TOKEN` with a copy of that token starts the stream at the token,
 * and the receiver accepts such a stream only if its token says the same; re-sending the
 * whole stream also works (records up to the token are checked, not applied).  Because
 * extents carry absolute data decoded against the replica's immutable base snapshot, a
 * record applied again after a crash rewrites identical bytes.  The snapshot is taken only
 * after the trailer validated and the origin was synced; a failure after the apply and
 * before the snapshot is repaired by `ddsnap create -o <uuid>:<gen>` of the same tag on the
 * replica (the message prints it: the provenance is the stream's), never by a plain create,
 * which would give the snapshot the replica's own identity.
 *
 * An incremental stream writes only the chunks that changed since its base; every other
 * chunk of the replica's origin must still be what the replica's newest snapshot holds.
 * So receive asks its server which origin chunks were written since that snapshot and
 * refuses an incremental when there are any, unless the token says they belong to the
 * interrupted transfer this stream continues (a refused or failed transfer, or a writer on
 * the replica, would otherwise leave stale chunks under the new snapshot).  A full stream
 * rewrites every chunk and is always accepted.
 *
 * TCP mode (--to, --listen; the socket code is tools/xfer_tcp.c) carries no authentication
 * or encryption (trusted networks only; ssh is the authenticated path): a listening
 * receive takes one connection, from the --from address if given, within --timeout, and
 * is then exactly a receive from stdin (same checks, same token).  Before the stream the
 * receiver sends its hello, and send waits for it at most --timeout seconds (a peer on the
 * port that is not a receive is an error, with nothing sent).  After the trailer the
 * receiver sends one byte back, its exit status, so `send` fails when the replica refused
 * or failed the transfer.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "util/base.h"
#include "commands.h"
#include "client/ctl_client.h"
#include "client/dmctl.h"
#include "snap/volume.h"
#include "delta.h"
#include "xfer_tcp.h"

/*
 * The devices of one send or receive, found by table: a private directory holding the
 * engine's names (<dir>/dev, <dir>/dev(T)) as symlinks to the device nodes.
 */
struct repl_devs {
	const char *cmd, *sock;
	char dir[40]; /* "" until made */
	char *stem;   /* <dir>/dev, the engine's devstem */
};

/* Makes the private directory.  Returns 0, or -1 with the message printed. */
static int repl_devs_init(struct repl_devs *d, const char *cmd, const char *sock)
{
	d->cmd = cmd;
	d->sock = sock;
	snprintf(d->dir, sizeof(d->dir), "/tmp/ddsnap-%s-dev-XXXXXX", cmd);
	if (!mkdtemp(d->dir)) {
		cmd_error(cmd, "cannot create a temporary directory: %s", strerror(errno));
		d->dir[0] = 0;
		return -1;
	}
	if (asprintf(&d->stem, "%s/dev", d->dir) < 0)
		abort();
	return 0;
}

/*
 * Links the device of @tag (DMCTL_TAG_ORIGIN or a snapshot tag) as the engine names it.
 * None found: an error if @required, else nothing.  Returns 0, or -1 with the message
 * printed.
 */
static int repl_devs_link(struct repl_devs *d, s64 tag, bool required)
{
	struct dmctl_dev dev;
	char what[32], *path, *link;
	int n = dmctl_find(d->sock, tag, &dev, 1), rc;

	if (tag == DMCTL_TAG_ORIGIN)
		snprintf(what, sizeof(what), "the origin");
	else
		snprintf(what, sizeof(what), "snapshot %lld", (long long)tag);
	if (n == -ENODEV) {
		cmd_error(d->cmd,
			  "this system has no device-mapper, so no device shows %s of %s: name the "
			  "devices with -d DEVSTEM",
			  what, d->sock);
		return -1;
	}
	if (n < 0) {
		cmd_error(d->cmd, "listing the device-mapper devices: %s", errmsg(n));
		return -1;
	}
	if (!n && !required)
		return 0;
	if (!n) {
		cmd_error(d->cmd,
			  "no device-mapper device shows %s of %s (a ddsnap table with that socket "
			  "and tag %lld): create one (dmsetup create, zumastor start), or name the "
			  "devices with -d DEVSTEM; nothing was %s",
			  what, d->sock, (long long)tag,
			  strcmp(d->cmd, "send") ? "written" : "sent");
		return -1;
	}
	path = dmctl_dev_path(dev.name);
	link = delta_dev_name(d->stem, tag == DMCTL_TAG_ORIGIN ? DDSNAP_TAG_HEAD : (u32)tag);
	rc = symlink(path, link);
	if (rc)
		cmd_error(d->cmd, "cannot link %s as %s: %s", path, link, strerror(errno));
	free(path);
	free(link);
	return rc ? -1 : 0;
}

/* Removes the links and the directory. */
static void repl_devs_done(struct repl_devs *d)
{
	DIR *dir;
	struct dirent *e;

	if (d->dir[0] && (dir = opendir(d->dir))) {
		while ((e = readdir(dir)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				unlinkat(dirfd(dir), e->d_name, 0);
		closedir(dir);
		rmdir(d->dir);
	}
	free(d->stem);
}

/* ---- send ---- */

static const struct option send_opts[] = {
	DELTA_CREATE_OPTIONS,
	{"token", required_argument, NULL, 't'},
	{"devstem", required_argument, NULL, 'd'},
	{"to", required_argument, NULL, 'c'},
	{"timeout", required_argument, NULL, 'W'},
	{NULL, 0, NULL, 0},
};

int cmd_send(int argc, char **argv)
{
	struct delta_create_params p;
	struct ctl_client *c = NULL;
	struct repl_devs devs = {0};
	const char *to = NULL, *timeout = NULL;
	int wait_secs = XFER_TCP_HELLO_SECS;
	char tmpl[] = "/tmp/ddsnap-send-XXXXXX", *cl = NULL, why[300];
	u32 from = DDSNAP_TAG_NONE, tag;
	int opt, rc, n, ret = EXIT_FAIL;

	delta_create_defaults(&p, "send");
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+" DELTA_CREATE_SHORTOPTS "t:d:c:", send_opts,
				  NULL)) != -1) {
		switch (opt) {
		case 't':
			p.resume = optarg;
			continue;
		case 'd':
			p.devstem = optarg;
			continue;
		case 'c':
			to = optarg;
			continue;
		case 'W':
			timeout = optarg;
			continue;
		}
		rc = delta_create_option(opt, optarg, &p);
		if (rc < 0)
			return EXIT_USAGE;
		if (rc)
			return cmd_usage(argv[0]);
	}
	n = argc - optind;
	if (n < 2 || n > 3)
		return cmd_usage(argv[0]);
	if ((n == 3 && cmd_parse_tag(argv[0], argv[optind + 1], &from)) ||
	    cmd_parse_tag(argv[0], argv[argc - 1], &tag))
		return EXIT_USAGE;
	if (from == tag) {
		cmd_error(argv[0], "the source and target snapshots are the same (%u)", tag);
		return EXIT_USAGE;
	}
	if (timeout && !to) {
		cmd_error(argv[0], "--timeout is an option of --to");
		return EXIT_USAGE;
	}
	if (timeout && xfer_tcp_parse_timeout(argv[0], timeout, &wait_secs))
		return EXIT_USAGE;
	if (!to && isatty(STDOUT_FILENO)) {
		cmd_error(argv[0], "refusing to write a binary stream to a terminal (pipe it into "
				   "'ddsnap receive', or use --to host:port)");
		return EXIT_USAGE;
	}
	/* a closed pipe or connection is an error to report, not a silent death */
	signal(SIGPIPE, SIG_IGN);
	if (ctl_client_open(argv[optind], &c, why, sizeof(why))) {
		cmd_error(argv[0], "%s", why);
		goto out;
	}
	if (!mkdtemp(tmpl)) {
		cmd_error(argv[0], "cannot create a temporary directory: %s", strerror(errno));
		goto out;
	}
	if (asprintf(&cl, "%s/changelist", tmpl) < 0)
		abort();
	p.changelist = cl;
	ret = delta_fetch_changelist("send", c, cl, from, tag, &p);
	ctl_client_close(c);
	c = NULL;
	if (ret != EXIT_OK)
		goto out;
	ret = EXIT_FAIL;
	/* the snapshots exist (the server made their changelist): now their devices; the base
	 * is read for the source checksums unless --no-source-check */
	if (!p.devstem) {
		if (repl_devs_init(&devs, "send", argv[optind]) ||
		    repl_devs_link(&devs, tag, true) ||
		    (from != DDSNAP_TAG_NONE && repl_devs_link(&devs, from, !p.no_src_check)))
			goto out;
		p.devstem = devs.stem;
	}
	if (to) {
		p.out_fd = xfer_tcp_connect(argv[0], to, wait_secs);
		if (p.out_fd < 0)
			goto out;
	} else {
		p.out_fd = STDOUT_FILENO;
	}
	ret = delta_create_cmd(&p);
	if (to) {
		u64 bytes = 0;

		if (ret == EXIT_OK && xfer_tcp_wait_status(argv[0], p.out_fd, to, &bytes))
			ret = EXIT_FAIL;
		if (ret == EXIT_OK && p.verbose)
			fprintf(stderr, "ddsnap send: %llu bytes sent to %s\n",
				(unsigned long long)bytes, to);
		close(p.out_fd);
	}
out:
	if (cl) {
		unlink(cl);
		rmdir(tmpl);
	}
	free(cl);
	repl_devs_done(&devs);
	ctl_client_close(c);
	return ret;
}

/* ---- receive ---- */

struct recv_ctx {
	u32 tag;
	struct ctl_snap *snaps;
	u32 nsnaps;
	const char *sock, *token;
	struct repl_devs *devs; /* NULL with -d */
	/* the stream's target provenance, recorded with the snapshot receive takes */
	u8 origin_uuid[16];
	u64 origin_gen;
};

static const struct ctl_snap *find_snap(const struct recv_ctx *r, u32 tag)
{
	for (u32 i = 0; i < r->nsnaps && !volume_tag_hidden(tag); i++)
		if (r->snaps[i].tag == tag)
			return &r->snaps[i];
	return NULL;
}

static bool has_snap(const struct recv_ctx *r, u32 tag)
{
	return find_snap(r, tag) != NULL;
}

/*
 * The base of an incremental must be the same snapshot here as on the sender: same tag and
 * same provenance (the store that took it and its gen there).  A snapshot of the same tag
 * from another history (a replica that took its own, a volume promoted elsewhere) would
 * otherwise be refused only at the first extent whose source differs, after the extents
 * before it were written.  Returns 0 or EXIT_FAIL (message printed).
 */
static int recv_check_base(const struct recv_ctx *r, const struct delta_header *h)
{
	const struct ctl_snap *base = find_snap(r, h->src_tag);
	char want[CMD_UUID_LEN], have[CMD_UUID_LEN];

	if (!memcmp(base->origin_uuid, h->src_origin_uuid, 16) &&
	    base->origin_gen == h->src_origin_gen)
		return 0;
	cmd_format_uuid(h->src_origin_uuid, want);
	cmd_format_uuid(base->origin_uuid, have);
	cmd_error("receive",
		  "wrong base: the stream is an incremental from snapshot %u of volume %s gen "
		  "%llu, but this replica's snapshot %u is of volume %s gen %llu (another "
		  "history); nothing was written",
		  h->src_tag, want, (unsigned long long)h->src_origin_gen, base->tag, have,
		  (unsigned long long)base->origin_gen);
	return EXIT_FAIL;
}

/*
 * An incremental stream writes only the chunks that changed since its base, so the rest of
 * the replica's origin must still hold what its newest snapshot holds.  Chunks written
 * since then (a failed or refused transfer, a writer on the replica) are fine only when
 * they belong to the interrupted transfer this stream continues, which the token says.
 * After `ddsnap revert` to the stream's base the origin holds the base again although
 * newer snapshots exist (set aside by the monitor): what was written since is then the
 * changelist from the revert point (volume.h), not from the newest snapshot.  No stream is
 * taken while a revert is in progress (the origin is half reverted).
 * Returns 0 or an exit code (message printed).
 */
static int recv_check_origin(const struct recv_ctx *r, const struct delta_header *h)
{
	struct ctl_snap *snaps = xmalloc((r->nsnaps + 1) * sizeof(*snaps));
	struct ctl_client *c;
	struct delta_token tok;
	struct cmd_revert rev;
	u64 written = 0;
	u32 since, n = r->nsnaps;
	char why[300], what[64];
	int rc;

	memcpy(snaps, r->snaps, n * sizeof(*snaps));
	cmd_revert_state(snaps, &n, &rev);
	if (rev.reverting) {
		free(snaps);
		cmd_error("receive",
			  "a revert to snapshot %u is in progress on this volume: finish it first "
			  "('ddsnap revert %s %u'); nothing was written",
			  rev.to, r->sock, rev.to);
		return EXIT_FAIL;
	}
	if (h->flags & DELTA_FULL) {
		free(snaps);
		return 0;
	}
	if (ctl_client_open(r->sock, &c, why, sizeof(why))) {
		free(snaps);
		cmd_error("receive", "%s", why);
		return EXIT_FAIL;
	}
	rc = cmd_origin_written("receive", c, snaps, n, &rev, h->src_tag, &written, &since);
	ctl_client_close(c);
	free(snaps);
	if (rc)
		return rc;
	if (!written || (delta_token_load(r->token, &tok) == 0 && delta_token_matches(&tok, h)))
		return 0;
	if (since == VOLUME_TAG_REVERT_POINT)
		snprintf(what, sizeof(what), "its revert to snapshot %u", rev.point_to);
	else
		snprintf(what, sizeof(what), "its snapshot %u", since);
	cmd_error("receive",
		  "%llu chunks of the replica's origin were written since %s and no resume token "
		  "in %s matches this stream: an incremental would leave them; resume the "
		  "interrupted transfer, or send a full stream; nothing was written",
		  (unsigned long long)written, what, r->token);
	return EXIT_FAIL;
}

/* The stream must carry snapshot <tag>, be based on a snapshot this replica has, and (if
 * incremental) find the origin as its newest snapshot left it; then the devices it needs
 * are looked up (without -d): the origin and, for an incremental, the base snapshot. */
static int recv_check_header(const struct delta_header *h, void *arg)
{
	struct recv_ctx *r = arg;
	int rc;

	if (h->tgt_tag != r->tag) {
		cmd_error("receive", "the stream carries snapshot %u, not %u: refused", h->tgt_tag,
			  r->tag);
		return EXIT_FAIL;
	}
	if (!(h->flags & DELTA_FULL) && !has_snap(r, h->src_tag)) {
		cmd_error("receive",
			  "wrong base: the stream is an incremental from snapshot %u, which this "
			  "replica does not have; nothing was written",
			  h->src_tag);
		return EXIT_FAIL;
	}
	if (!h->tgt_origin_gen) {
		cmd_error("receive",
			  "the stream names no provenance for snapshot %u: refused; nothing was "
			  "written",
			  h->tgt_tag);
		return EXIT_FAIL;
	}
	memcpy(r->origin_uuid, h->tgt_origin_uuid, sizeof(r->origin_uuid));
	r->origin_gen = h->tgt_origin_gen;
	rc = h->flags & DELTA_FULL ? 0 : recv_check_base(r, h);
	if (!rc)
		rc = recv_check_origin(r, h);
	if (rc || !r->devs)
		return rc;
	if (repl_devs_link(r->devs, DMCTL_TAG_ORIGIN, true) ||
	    (!(h->flags & DELTA_FULL) && repl_devs_link(r->devs, h->src_tag, true)))
		return EXIT_FAIL;
	return 0;
}

static const struct option recv_opts[] = {
	{"token", required_argument, NULL, 't'},
	{"devstem", required_argument, NULL, 'd'},
	{"listen", required_argument, NULL, 'L'},
	{"from", required_argument, NULL, 'F'},
	{"timeout", required_argument, NULL, 'W'},
	{"limit", required_argument, NULL, 'l'},
	{"progress", no_argument, NULL, 'p'},
	{"verbose", no_argument, NULL, 'v'},
	{NULL, 0, NULL, 0},
};

int cmd_receive(int argc, char **argv)
{
	struct delta_apply_params p = {.cmd = "receive", .name = "stream", .in_fd = -1};
	struct recv_ctx r = {0};
	struct repl_devs devs = {0};
	struct ctl_client *c = NULL;
	struct ctl_result res;
	const char *listen_on = NULL, *from = NULL, *timeout = NULL;
	char *token = NULL, why[300];
	int opt, ret = EXIT_FAIL;
	int wait_secs = XFER_TCP_ACCEPT_SECS;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "+t:d:L:l:v", recv_opts, NULL)) != -1) {
		if (opt == 'd') {
			p.devstem = optarg;
		} else if (opt == 'L') {
			listen_on = optarg;
		} else if (opt == 'F') {
			from = optarg;
		} else if (opt == 'W') {
			timeout = optarg;
		} else {
			int err = delta_apply_option(opt, optarg, &p);

			if (err < 0)
				return EXIT_USAGE;
			if (err)
				return cmd_usage(argv[0]);
		}
	}
	if (argc - optind != 2)
		return cmd_usage(argv[0]);
	if (cmd_parse_tag(argv[0], argv[optind + 1], &r.tag))
		return EXIT_USAGE;
	if (!listen_on && (from || timeout)) {
		cmd_error(argv[0], "--from and --timeout are options of --listen");
		return EXIT_USAGE;
	}
	if (timeout && xfer_tcp_parse_timeout(argv[0], timeout, &wait_secs))
		return EXIT_USAGE;
	if (!listen_on && isatty(STDIN_FILENO)) {
		cmd_error(argv[0], "refusing to read a binary stream from a terminal (pipe 'ddsnap "
				   "send' into it, or use --listen [addr:]port)");
		return EXIT_USAGE;
	}
	if (!p.token)
		p.token = token = cmd_default_token(argv[optind]);
	signal(SIGPIPE, SIG_IGN);
	if (ctl_client_open(argv[optind], &c, why, sizeof(why))) {
		cmd_error(argv[0], "%s", why);
		goto out;
	}
	if (ctl_client_list(c, &r.snaps, &r.nsnaps, &res, why, sizeof(why)) || res.error) {
		cmd_error(argv[0], "listing snapshots: %s", res.error ? res.text : why);
		goto out;
	}
	ctl_client_close(c);
	c = NULL;
	if (has_snap(&r, r.tag)) {
		cmd_error(argv[0], "snapshot %u exists on this replica already: refused", r.tag);
		goto out;
	}
	if (listen_on) {
		p.in_fd = xfer_tcp_accept(argv[0], listen_on, from, wait_secs);
		if (p.in_fd < 0)
			goto out;
	} else {
		p.in_fd = STDIN_FILENO;
	}
	if (!p.devstem) {
		if (repl_devs_init(&devs, "receive", argv[optind]))
			goto out;
		p.devstem = devs.stem;
		r.devs = &devs;
	}
	r.sock = argv[optind];
	r.token = p.token;
	p.on_header = recv_check_header;
	p.arg = &r;
	ret = delta_apply_cmd(&p);
	if (ret == EXIT_OK) {
		/* the same path as `ddsnap create`, with the stream's provenance */
		char origin[CMD_UUID_LEN];

		cmd_format_uuid(r.origin_uuid, origin);
		ret = cmd_create_snapshot(argv[0], argv[optind], r.tag, r.origin_uuid,
					  r.origin_gen);
		if (ret != EXIT_OK)
			cmd_error(argv[0],
				  "the stream was applied but snapshot %u was not taken: "
				  "take it with 'ddsnap create -o %s:%llu %s %u'",
				  r.tag, origin, (unsigned long long)r.origin_gen, argv[optind],
				  r.tag);
	}
	if (p.verbose && ret == EXIT_OK)
		fprintf(stderr, "ddsnap receive: snapshot %u received\n", r.tag);
out:
	if (listen_on && p.in_fd >= 0)
		xfer_tcp_send_status(argv[0], p.in_fd, ret, p.verbose);
	free(r.snaps);
	repl_devs_done(&devs);
	free(token);
	ctl_client_close(c);
	return ret;
}
