// SPDX-License-Identifier: GPL-2.0-only
/*
 * snapcmds.c - the ddsnap subcommands that talk to a running server: create, delete, list,
 * status, priority, usecount, revert.
 *
 * create is the one with a device-side duty (and, with -o uuid:gen, takes a received
 * snapshot with that provenance, as receive does): it suspends every origin device of the volume
 * (flushing and freezing the filesystem, draining in-flight writes) before asking the server
 * to record the snapshot, and resumes them afterwards whatever happened.  Signals that would
 * kill the tool are blocked while a device is suspended, so an impatient Ctrl-C cannot leave
 * the volume frozen.  Without device-mapper (tests on plain files) there is nothing to
 * suspend and the step is skipped.
 *
 * revert has a device-side duty too: it refuses, before asking the server anything, while
 * an origin device of the volume is open (mounted, or held by any process), and holds each
 * one open exclusively itself while the server copies back, so that nothing mounts it
 * meanwhile.  The copy-back itself, its crash safety and its marker are the server's
 * (volume.c, "Revert").  A half-done revert (the tool or the server killed) is finished by
 * running the same command again; list and status say it is in progress.
 *
 * list and status also speak JSON (--json) for programs such as the zumastor monitor, so that
 * nothing parses text meant for people: one object on stdout, keys and units as in ddsnap(8)
 * (bytes, seconds since the epoch and ISO 8601 UTC), keys only ever added, never renamed.
 * list --json adds, for replication, each snapshot's provenance, whether the origin was
 * written since the newest snapshot (cmd_origin_written, the one place that decides it) and
 * receive's resume token in its default place.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "commands.h"
#include "client/ctl_client.h"
#include "client/dmctl.h"
#include "delta/delta_stream.h"
#include "snap/volume.h"

static int parse_s64(const char *cmd, const char *what, const char *s, s64 lo, s64 hi, s64 *out)
{
	if (cmd_parse_s64(s, lo, hi, out)) {
		cmd_error(cmd, "bad %s '%s': a number from %lld to %lld", what, s, (long long)lo,
			  (long long)hi);
		return -EINVAL;
	}
	return 0;
}

static struct ctl_client *connect_or_complain(const char *cmd, const char *sock)
{
	struct ctl_client *c;
	char why[300];

	if (ctl_client_open(sock, &c, why, sizeof(why))) {
		cmd_error(cmd, "%s", why);
		return NULL;
	}
	return c;
}

/* One request with a result and nothing else; prints the server's reason on refusal. */
static int simple_call(const char *cmd, struct ctl_client *c, struct ctl_msg *req,
		       struct ctl_msg *reply)
{
	char why[300];

	if (ctl_client_call(c, req, reply, why, sizeof(why))) {
		cmd_error(cmd, "%s", why);
		return EXIT_FAIL;
	}
	if (reply->result.error) {
		cmd_error(cmd, "%s",
			  reply->result.text[0] ? reply->result.text : errmsg(reply->result.error));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* Positional arguments after getopt: exactly between @min and @max, else usage. */
static bool nargs_ok(int argc, int min, int max)
{
	int n = argc - optind;

	return n >= min && n <= max;
}

static int no_options(int argc, char **argv)
{
	optind = 1;
	if (getopt(argc, argv, "+") != -1)
		return -1;
	return 0;
}

/*----------------------------------------------------------------*/

int cmd_create(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"origin", required_argument, NULL, 'o'},
		{NULL, 0, NULL, 0},
	};
	u8 uuid[16];
	u64 gen = 0;
	u32 tag;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+o:", longopts, NULL)) != -1) {
		if (opt != 'o')
			return cmd_usage(argv[0]);
		if (cmd_parse_origin(optarg, uuid, &gen)) {
			cmd_error(argv[0], "bad origin '%s': <uuid>:<gen>, the gen 1 or more",
				  optarg);
			return EXIT_USAGE;
		}
	}
	if (!nargs_ok(argc, 2, 2))
		return cmd_usage(argv[0]);
	if (cmd_parse_tag(argv[0], argv[optind + 1], &tag))
		return EXIT_USAGE;
	return cmd_create_snapshot(argv[0], argv[optind], tag, gen ? uuid : NULL, gen);
}

int cmd_create_snapshot(const char *cmd, const char *sock, u32 tag, const u8 *origin_uuid,
			u64 origin_gen)
{
	struct dmctl_dev devs[64];
	bool ours[64] = {false}; /* suspended by us, so ours to resume */
	struct ctl_client *c;
	struct ctl_msg req = {.type = CTL_CREATE, .tag = tag}, reply = {0};
	sigset_t block, old;
	int n, rc;

	if (origin_uuid) {
		req.has_origin = true;
		memcpy(req.origin_uuid, origin_uuid, sizeof(req.origin_uuid));
		req.origin_gen = origin_gen;
	}
	c = connect_or_complain(cmd, sock);
	if (!c)
		return EXIT_FAIL;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigprocmask(SIG_BLOCK, &block, &old);
	n = dmctl_find(sock, DMCTL_TAG_ORIGIN, devs, ARRAY_SIZE(devs));
	for (int i = 0; i < n; i++) {
		if (devs[i].suspended)
			continue;
		if (dmctl_suspend(devs[i].name)) {
			cmd_error(cmd, "cannot suspend origin device %s", devs[i].name);
			rc = EXIT_FAIL;
			goto out_resume;
		}
		ours[i] = true;
	}
	rc = simple_call(cmd, c, &req, &reply);
out_resume:
	for (int i = 0; i < n; i++)
		if (ours[i] && dmctl_resume(devs[i].name)) {
			cmd_error(cmd,
				  "cannot resume origin device %s: resume it with 'dmsetup resume "
				  "%s'",
				  devs[i].name, devs[i].name);
			rc = EXIT_FAIL;
		}
	sigprocmask(SIG_SETMASK, &old, NULL);
	ctl_client_close(c);
	return rc;
}

/*
 * The shape of delete, priority and usecount: <server_socket> <tag> [<number>], one request,
 * one result.  @what names the number (NULL: there is none), which may be left out when
 * @optional; *@value (may be NULL) gets the result's value.
 */
static int tag_request(int argc, char **argv, u16 type, const char *what, s64 lo, s64 hi,
		       bool optional, u64 *value)
{
	struct ctl_client *c;
	struct ctl_msg req = {.type = type}, reply = {0};
	int max = what ? 3 : 2, rc;

	if (no_options(argc, argv) || !nargs_ok(argc, optional ? 2 : max, max))
		return cmd_usage(argv[0]);
	if (cmd_parse_tag(argv[0], argv[optind + 1], &req.tag))
		return EXIT_USAGE;
	if (argc - optind == 3 && parse_s64(argv[0], what, argv[optind + 2], lo, hi, &req.arg))
		return EXIT_USAGE;
	c = connect_or_complain(argv[0], argv[optind]);
	if (!c)
		return EXIT_FAIL;
	rc = simple_call(argv[0], c, &req, &reply);
	if (value)
		*value = reply.result.value;
	ctl_client_close(c);
	return rc;
}

int cmd_delete(int argc, char **argv)
{
	return tag_request(argc, argv, CTL_DELETE, NULL, 0, 0, false, NULL);
}

int cmd_priority(int argc, char **argv)
{
	return tag_request(argc, argv, CTL_PRIORITY, "priority", -128, 127, false, NULL);
}

int cmd_usecount(int argc, char **argv)
{
	u64 count = 0;
	int rc = tag_request(argc, argv, CTL_USECOUNT, "usecount change", -65535, 65535, true,
			     &count);

	if (rc == EXIT_OK)
		printf("%llu\n", (unsigned long long)count);
	return rc;
}

/*
 * revert <sock> <tag>: refused while an origin device of the volume is in use (the essay);
 * each is held open exclusively (no mount can start) while the server copies back.
 */
int cmd_revert(int argc, char **argv)
{
	struct dmctl_dev devs[16];
	int fds[16], n, rc = EXIT_FAIL;
	struct ctl_client *c;
	struct ctl_msg req = {.type = CTL_REVERT}, reply = {0};

	if (no_options(argc, argv) || !nargs_ok(argc, 2, 2))
		return cmd_usage(argv[0]);
	if (cmd_parse_tag(argv[0], argv[optind + 1], &req.tag))
		return EXIT_USAGE;
	c = connect_or_complain(argv[0], argv[optind]);
	if (!c)
		return EXIT_FAIL;
	n = dmctl_find(argv[optind], DMCTL_TAG_ORIGIN, devs, ARRAY_SIZE(devs));
	if (n < 0 && n != -ENODEV) {
		cmd_error(argv[0],
			  "cannot list the device-mapper devices (%s), so cannot tell whether the "
			  "origin is in use; nothing was changed",
			  errmsg(n));
		n = 0;
		goto out;
	}
	n = MAX(n, 0);
	for (int i = 0; i < n; i++)
		fds[i] = -1;
	for (int i = 0; i < n; i++) {
		char *path = dmctl_dev_path(devs[i].name);
		struct dmctl_dev now[ARRAY_SIZE(devs)];
		int m;

		/* Exclusive: fails while mounted or claimed; then nobody may mount it. */
		fds[i] = open(path, O_RDONLY | O_EXCL | O_CLOEXEC);
		if (fds[i] < 0) {
			cmd_error(argv[0],
				  "origin device %s is in use (%s): unmount it and close it first; "
				  "nothing was changed",
				  path, errno == EBUSY ? "mounted or held" : strerror(errno));
			free(path);
			goto out;
		}
		free(path);
		/* Our exclusive open is one; any other is someone else's. */
		m = dmctl_find(argv[optind], DMCTL_TAG_ORIGIN, now, ARRAY_SIZE(now));
		for (int j = 0; j < m; j++)
			if (!strcmp(now[j].name, devs[i].name) && now[j].open_count > 1) {
				cmd_error(argv[0],
					  "origin device %s is open by another process: close it "
					  "first; nothing was changed",
					  devs[i].name);
				goto out;
			}
	}
	rc = simple_call(argv[0], c, &req, &reply);
	if (rc == EXIT_OK)
		printf("origin reverted to snapshot %u: %llu chunks copied back\n", req.tag,
		       (unsigned long long)reply.result.value);
out:
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	ctl_client_close(c);
	return rc;
}

/*----------------------------------------------------------------
 * list and status
 *--------------------------------------------------------------*/

static void format_time(u64 t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Bytes in binary units, "12.3M", always 6 characters or fewer. */
static void format_bytes(u64 b, char *buf, size_t len)
{
	static const char units[] = "BKMGTPE";
	double v = (double)b;
	unsigned u = 0;

	while (v >= 1024 && u < sizeof(units) - 2) {
		v /= 1024;
		u++;
	}
	if (!u)
		snprintf(buf, len, "%lluB", (unsigned long long)b);
	else
		snprintf(buf, len, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

/* The user's snapshots (the hidden ones removed, their meaning in *@rev, a revert in
 * progress said on stderr). */
static int fetch_list(const char *cmd, struct ctl_client *c, struct ctl_snap **snaps, u32 *n,
		      struct cmd_revert *rev)
{
	struct ctl_result res;
	char why[300];

	if (ctl_client_list(c, snaps, n, &res, why, sizeof(why))) {
		cmd_error(cmd, "%s", why);
		return EXIT_FAIL;
	}
	if (res.error) {
		cmd_error(cmd, "%s", res.text);
		return EXIT_FAIL;
	}
	cmd_revert_state(*snaps, n, rev);
	if (rev->reverting)
		cmd_error(cmd,
			  "a revert to snapshot %u is in progress: the origin is half reverted "
			  "until 'ddsnap revert' of %u runs to its end",
			  rev->to, rev->to);
	return EXIT_OK;
}

static const char *state_name(u32 state)
{
	return state == DDSNAP_STATE_INVALID ? "invalid" : "normal";
}

/* One snapshot as a JSON object (ddsnap(8), JSON OUTPUT); @full adds the space fields. */
static void json_snap(const struct ctl_snap *s, bool full)
{
	char when[32], origin[CMD_UUID_LEN];

	format_time(s->ctime, when, sizeof(when));
	cmd_format_uuid(s->origin_uuid, origin);
	printf("{\"tag\": %u, \"created\": \"%s\", \"ctime\": %llu, \"state\": \"%s\", "
	       "\"origin_uuid\": \"%s\", \"origin_gen\": %llu",
	       s->tag, when, (unsigned long long)s->ctime, state_name(s->state), origin,
	       (unsigned long long)s->origin_gen);
	if (full)
		printf(", \"gen\": %llu, \"unique_bytes\": %llu, \"written_bytes\": %llu, "
		       "\"priority\": %d, \"usecount\": %u, \"devices\": %u, \"overlay\": %s",
		       (unsigned long long)s->gen, (unsigned long long)s->unique_bytes,
		       (unsigned long long)s->written_bytes, s->priority, s->usecount, s->devices,
		       s->flags & CTL_SNAP_WRITTEN ? "true" : "false");
	putchar('}');
}

static void json_uuid(struct ctl_client *c)
{
	char buf[CMD_UUID_LEN];
	u8 u[16];

	ctl_client_uuid(c, u);
	cmd_format_uuid(u, buf);
	printf("\"%s\"", buf);
}

static int count_chunks(const u64 *chunks, u32 n, void *arg)
{
	*(u64 *)arg += n;
	return 0;
}

int cmd_origin_written(const char *cmd, struct ctl_client *c, const struct ctl_snap *snaps, u32 n,
		       const struct cmd_revert *rev, u32 base, u64 *chunks, u32 *since)
{
	const struct ctl_snap *nw = NULL;
	struct ctl_result res;
	char why[300];
	int rc;

	*chunks = 0;
	*since = DDSNAP_TAG_NONE;
	for (u32 i = 0; i < n; i++)
		if (snaps[i].state == DDSNAP_STATE_NORMAL && (!nw || snaps[i].gen > nw->gen))
			nw = &snaps[i];
	if (!nw)
		return 0;
	*since = nw->tag;
	/* After a revert the origin holds the reverted-to snapshot, not the newest (volume.h). */
	if (rev->point && (base == DDSNAP_TAG_NONE || base == rev->point_to))
		*since = VOLUME_TAG_REVERT_POINT;
	rc = ctl_client_changelist(c, *since, DDSNAP_TAG_HEAD, count_chunks, chunks, &res, why,
				   sizeof(why));
	if (rc || res.error) {
		if (*since == VOLUME_TAG_REVERT_POINT)
			cmd_error(cmd, "changes since the revert to snapshot %u: %s", rev->point_to,
				  rc ? why : res.text);
		else
			cmd_error(cmd, "changes since snapshot %u: %s", *since,
				  rc ? why : res.text);
		return EXIT_FAIL;
	}
	return 0;
}

/*
 * "receive_token": the resume token `ddsnap receive` keeps in its default place for @sock,
 * as {"from": tag|null, "to": tag}, or null when there is none.  A token that cannot be read
 * is null too, with a warning (a receive would refuse it the same way).
 */
static void json_receive_token(const char *cmd, const char *sock)
{
	char *path = cmd_default_token(sock);
	struct delta_token t;
	int rc = delta_token_load(path, &t);

	if (rc) {
		if (rc != -ENOENT)
			cmd_error(cmd, "resume token %s: %s (shown as null)", path,
				  rc == -EILSEQ ? "corrupt" : errmsg(rc));
		printf("null");
	} else if (t.src_tag == DDSNAP_TAG_NONE) {
		printf("{\"from\": null, \"to\": %u}", t.tgt_tag);
	} else {
		printf("{\"from\": %u, \"to\": %u}", t.src_tag, t.tgt_tag);
	}
	free(path);
}

/* The "revert" key of list and status --json: null, or the last revert's tag and state. */
static void json_revert(const struct cmd_revert *rev)
{
	if (rev->reverting)
		printf(", \"revert\": {\"to\": %u, \"state\": \"in-progress\"}", rev->to);
	else if (rev->point)
		printf(", \"revert\": {\"to\": %u, \"state\": \"done\"}", rev->point_to);
	else
		printf(", \"revert\": null");
}

/* -j/--json, the only option of list. */
static int json_option(int argc, char **argv, bool *json)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	optind = 1;
	*json = false;
	while ((opt = getopt_long(argc, argv, "+j", longopts, NULL)) != -1) {
		if (opt != 'j')
			return -1;
		*json = true;
	}
	return 0;
}

int cmd_list(int argc, char **argv)
{
	struct ctl_client *c;
	struct ctl_snap *snaps = NULL;
	struct cmd_revert rev;
	u64 written = 0;
	u32 n = 0, since;
	bool json;
	int rc;

	if (json_option(argc, argv, &json) || !nargs_ok(argc, 1, 1))
		return cmd_usage(argv[0]);
	c = connect_or_complain(argv[0], argv[optind]);
	if (!c)
		return EXIT_FAIL;
	rc = fetch_list(argv[0], c, &snaps, &n, &rev);
	if (rc == EXIT_OK && json)
		rc = cmd_origin_written(argv[0], c, snaps, n, &rev, DDSNAP_TAG_NONE, &written,
					&since);
	if (rc == EXIT_OK && json) {
		printf("{\"uuid\": ");
		json_uuid(c);
		json_revert(&rev);
		printf(", \"snapshots\": [");
		for (u32 i = 0; i < n; i++) {
			printf(i ? ", " : "");
			json_snap(&snaps[i], false);
		}
		printf("], \"origin_written\": %s, \"receive_token\": ",
		       written ? "true" : "false");
		json_receive_token(argv[0], argv[optind]);
		printf("}\n");
	}
	for (u32 i = 0; rc == EXIT_OK && !json && i < n; i++) {
		char when[32];

		format_time(snaps[i].ctime, when, sizeof(when));
		printf("%u %s%s\n", snaps[i].tag, when,
		       snaps[i].state == DDSNAP_STATE_INVALID ? " invalid" : "");
	}
	free(snaps);
	ctl_client_close(c);
	return rc;
}

static void print_snap(const struct ctl_snap *s, bool verbose)
{
	char when[32], uniq[16], written[16];

	format_time(s->ctime, when, sizeof(when));
	format_bytes(s->unique_bytes, uniq, sizeof(uniq));
	format_bytes(s->written_bytes, written, sizeof(written));
	printf("%10u  %-20s  %7s  %7s  %4d  %8u  %-7s", s->tag, when, uniq, written, s->priority,
	       s->usecount, s->state == DDSNAP_STATE_INVALID ? "invalid" : "normal");
	if (verbose)
		printf("  %10llu  %7u  %s", (unsigned long long)s->gen, s->devices,
		       s->flags & CTL_SNAP_WRITTEN ? "written" : "-");
	putchar('\n');
}

/* status --json: the store and every snapshot (only @tag's if >= 0) as one object. */
static int status_json(const char *cmd, struct ctl_client *c, const struct ctl_status *st,
		       const struct ctl_snap *snaps, u32 n, const struct cmd_revert *rev, s64 tag)
{
	bool found = false;

	for (u32 i = 0; i < n; i++)
		found |= snaps[i].tag == tag;
	if (tag >= 0 && !found) {
		cmd_error(cmd, "no snapshot %lld", (long long)tag);
		return EXIT_FAIL;
	}
	printf("{\"uuid\": ");
	json_uuid(c);
	printf(", \"origin_bytes\": %llu, \"chunk_size\": %llu, \"gen\": %llu, \"txg\": %llu",
	       (unsigned long long)st->origin_bytes, (unsigned long long)st->chunk_size,
	       (unsigned long long)st->gen, (unsigned long long)st->txg);
	printf(", \"snapstore\": {\"total_bytes\": %llu, \"used_bytes\": %llu, \"free_bytes\": "
	       "%llu, \"reserve_bytes\": %llu}",
	       (unsigned long long)(st->data_total * st->chunk_size),
	       (unsigned long long)((st->data_total - st->data_free) * st->chunk_size),
	       (unsigned long long)(st->data_free * st->chunk_size),
	       (unsigned long long)(st->reserve_chunks * st->chunk_size));
	printf(", \"metadata\": {\"total_bytes\": %llu, \"used_bytes\": %llu}",
	       (unsigned long long)st->meta_total * 4096,
	       (unsigned long long)(st->meta_total - st->meta_free) * 4096);
	printf(", \"exceptions\": %llu, \"intent_log\": {\"used_blocks\": %llu, \"size_blocks\": "
	       "%llu}",
	       (unsigned long long)st->exceptions, (unsigned long long)st->log_used,
	       (unsigned long long)st->log_size);
	json_revert(rev);
	printf(", \"devices\": %u, \"readlocks\": %u, \"origin_queries\": %llu, "
	       "\"origin_batches\": %llu, \"snapshots\": [",
	       st->devices, st->readlocks, (unsigned long long)st->origin_queries,
	       (unsigned long long)st->origin_batches);
	for (u32 i = 0, first = 1; i < n; i++) {
		if (tag >= 0 && snaps[i].tag != tag)
			continue;
		printf(first ? "" : ", ");
		json_snap(&snaps[i], true);
		first = 0;
	}
	printf("]}\n");
	return EXIT_OK;
}

int cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"verbose", no_argument, NULL, 'v'},
		{"size", no_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	struct ctl_client *c;
	struct ctl_msg req = {.type = CTL_STATUS}, reply = {0};
	struct ctl_snap *snaps = NULL;
	struct cmd_revert rev = {0};
	bool verbose = false, size = false, json = false, found = false;
	u32 n = 0, tag = 0;
	int rc, opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+vsj", longopts, NULL)) != -1) {
		if (opt == 'v')
			verbose = true;
		else if (opt == 's')
			size = true;
		else if (opt == 'j')
			json = true;
		else
			return cmd_usage(argv[0]);
	}
	if (!nargs_ok(argc, 1, 2) || (size && json))
		return cmd_usage(argv[0]);
	if (argc - optind == 2 && cmd_parse_tag(argv[0], argv[optind + 1], &tag))
		return EXIT_USAGE;
	c = connect_or_complain(argv[0], argv[optind]);
	if (!c)
		return EXIT_FAIL;
	if (size) {
		/* The volume size in sectors, for a dm table line. */
		printf("%llu\n", (unsigned long long)ctl_client_origin_sectors(c));
		ctl_client_close(c);
		return EXIT_OK;
	}
	rc = simple_call(argv[0], c, &req, &reply);
	if (rc == EXIT_OK)
		rc = fetch_list(argv[0], c, &snaps, &n, &rev);
	/* The server counts the volume's own snapshots too (volume.h). */
	reply.status.snapshots -= (u64)rev.reverting + rev.point;
	if (rc == EXIT_OK && json) {
		rc = status_json(argv[0], c, &reply.status, snaps, n, &rev,
				 argc - optind == 2 ? (s64)tag : -1);
		goto out;
	}
	if (rc == EXIT_OK && argc - optind == 1) {
		const struct ctl_status *st = &reply.status;
		char a[16], b[16], d[16];

		format_bytes(st->origin_bytes, a, sizeof(a));
		format_bytes(st->chunk_size, b, sizeof(b));
		printf("volume %s, chunk %s, gen %llu, txg %llu\n", a, b,
		       (unsigned long long)st->gen, (unsigned long long)st->txg);
		format_bytes((st->data_total - st->data_free) * st->chunk_size, a, sizeof(a));
		format_bytes(st->data_total * st->chunk_size, b, sizeof(b));
		format_bytes(st->reserve_chunks * st->chunk_size, d, sizeof(d));
		printf("snapstore %s of %s used (%.1f%%), reserve %s\n", a, b,
		       st->data_total ? 100.0 * (double)(st->data_total - st->data_free) /
						(double)st->data_total
				      : 0.0,
		       d);
		format_bytes((st->meta_total - st->meta_free) * 4096, a, sizeof(a));
		format_bytes(st->meta_total * 4096, b, sizeof(b));
		printf("metadata %s of %s used, %llu exceptions, intent log %llu/%llu blocks\n", a,
		       b, (unsigned long long)st->exceptions, (unsigned long long)st->log_used,
		       (unsigned long long)st->log_size);
		printf("%llu snapshots, %u devices connected, %u read locks\n",
		       (unsigned long long)st->snapshots, st->devices, st->readlocks);
		if (rev.reverting)
			printf("revert to snapshot %u in progress: run 'ddsnap revert' of %u "
			       "again\n",
			       rev.to, rev.to);
		else if (rev.point)
			printf("origin reverted to snapshot %u (revert point kept until the next "
			       "snapshot)\n",
			       rev.point_to);
		if (verbose)
			printf("origin writes: %llu queries served in %llu batches\n",
			       (unsigned long long)st->origin_queries,
			       (unsigned long long)st->origin_batches);
		if (verbose)
			printf("data chunks %llu total, %llu free; metadata blocks %llu total, "
			       "%llu free\n",
			       (unsigned long long)st->data_total,
			       (unsigned long long)st->data_free,
			       (unsigned long long)st->meta_total,
			       (unsigned long long)st->meta_free);
		putchar('\n');
	}
	if (rc == EXIT_OK) {
		printf("%10s  %-20s  %7s  %7s  %4s  %8s  %-7s%s\n", "tag", "created (UTC)",
		       "unique", "written", "prio", "usecount", "state",
		       verbose ? "         gen  devices  overlay" : "");
		for (u32 i = 0; i < n; i++)
			if (argc - optind == 1 || snaps[i].tag == tag) {
				print_snap(&snaps[i], verbose);
				found = true;
			}
		if (argc - optind == 2 && !found) {
			cmd_error(argv[0], "no snapshot %u", tag);
			rc = EXIT_FAIL;
		}
	}
out:
	free(snaps);
	ctl_client_close(c);
	return rc;
}
