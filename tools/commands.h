/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * commands.h - the ddsnap subcommands and the conventions they share.
 *
 * Each subcommand is `int cmd_<name>(int argc, char **argv)`, called with argv[0] set to the
 * subcommand name so getopt works as usual.  It returns one of the exit codes below, which the
 * man page (tools/man/ddsnap.8) documents.  Errors go to stderr as "ddsnap <cmd>: <what>".
 */
#ifndef DDSNAP_COMMANDS_H
#define DDSNAP_COMMANDS_H

#include <stdarg.h>
#include "util/base.h"
#include <stdbool.h>

struct bdev;

enum ddsnap_exit {
	EXIT_OK = 0,
	EXIT_FAIL = 1,	  /* the operation failed; the message says why */
	EXIT_USAGE = 2,	  /* bad command line */
	EXIT_CORRUPT = 3, /* check found damage, or input is corrupt */
};

struct ddsnap_command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage; /* arguments after the name, as in the man page synopsis */
	const char *help;  /* one line */
};

/* The table, in tools/ddsnap.c; terminated by a NULL name. */
extern const struct ddsnap_command ddsnap_commands[];

/* Prints "ddsnap <cmd>: <msg>" to stderr. */
void cmd_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cmd_verror(const char *cmd, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Prints the usage line of @cmd to stderr and returns EXIT_USAGE. */
int cmd_usage(const char *cmd);

/*
 * The one way numbers are read from the command line (cmdutil.c): decimal digits only, no
 * sign (but cmd_parse_s64's '-'), no spaces or trailing text, overflow-checked, then range-
 * checked.  Each returns 0 with *out set, or -EINVAL with *out untouched; the caller says
 * what was wrong.
 */
int cmd_parse_u64(const char *s, u64 lo, u64 hi, u64 *out);
int cmd_parse_s64(const char *s, s64 lo, s64 hi, s64 *out);
/* A size in bytes: digits and one optional suffix k, M, G or T (any case, powers of 1024),
 * at most @max. */
int cmd_parse_size(const char *s, u64 max, u64 *out);
/* A TCP port: 1..65535. */
int cmd_parse_port(const char *s, u16 *out);
/*
 * A snapshot tag, 0..VOLUME_TAG_USER_MAX (the tags above are the volume's own, volume.h);
 * prints "bad snapshot tag" for @cmd when it is not.
 */
int cmd_parse_tag(const char *cmd, const char *s, u32 *out);
/* A uuid as cmd_format_uuid prints it (32 hex digits, dashes after 8, 12, 16 and 20). */
#define CMD_UUID_LEN 37
void cmd_format_uuid(const u8 uuid[16], char out[CMD_UUID_LEN]);
/* A snapshot provenance "<uuid>:<gen>" (the uuid with or without its dashes, gen >= 1):
 * 0, or -EINVAL. */
int cmd_parse_origin(const char *s, u8 uuid[16], u64 *gen);
/* The default resume token file of `ddsnap receive` for @sock: <sock without .sock>.token
 * (".token" appended when the name does not end in .sock).  malloc'd. */
char *cmd_default_token(const char *sock);

struct ctl_snap;
/*
 * What a server's snapshot list says about `ddsnap revert` (volume.h's hidden snapshots):
 * a revert in progress (@reverting, to snapshot @to) and the revert point of the last one
 * (@point, made by a revert to @point_to).  Every tool that lists snapshots passes the
 * list through this, which also removes the hidden ones from it (*@n shrinks).
 */
struct cmd_revert {
	bool reverting, point;
	u32 to, point_to;
};
void cmd_revert_state(struct ctl_snap *snaps, u32 *n, struct cmd_revert *out);

/*
 * Opens a store's snapstore @snap_path and, if @meta_path, its metadata device for @cmd
 * (ownership_open: type checked, locked exclusively for @write, shared otherwise; read-only
 * unless @write).  Prints the reason on failure.  Returns 0, or -errno with both *@snap and
 * *@meta NULL or open (the caller closes them either way).
 */
int cmd_open_store(const char *cmd, const char *snap_path, const char *meta_path, bool write,
		   struct bdev **snap, struct bdev **meta);

/*
 * What is on the device @b at @path, in a few words for a message: "a ddsnap store",
 * "an ext4 filesystem", "a linux_raid_member signature", "a dos partition table", or NULL
 * for nothing recognised (libblkid's probe, after ddsnap's own label).
 */
const char *cmd_probe(struct bdev *b, const char *path, char *buf, size_t len);

/*
 * Decides whether @cmd may write a new store over the @role device @b at @path: without
 * @yes, anything cmd_probe recognises is refused (with @origin_blank, a filesystem there is
 * called what it looks like: the origin, with the arguments swapped).  Prints the reason.
 * Returns true if it may.
 */
bool cmd_may_overwrite(const char *cmd, struct bdev *b, const char *path, const char *role,
		       bool yes, bool origin_blank);

int cmd_delta(int argc, char **argv);	/* tools/delta.c */
int cmd_send(int argc, char **argv);	/* tools/replicate.c */
int cmd_receive(int argc, char **argv); /* tools/replicate.c */
int cmd_server(int argc, char **argv);	/* tools/server_cmd.c */
/* tools/snapcmds.c: against a running server */
int cmd_create(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_priority(int argc, char **argv);
int cmd_usecount(int argc, char **argv);
struct ctl_client;
struct ctl_snap;
/*
 * Takes snapshot @tag of the volume served at @sock as `ddsnap create` does (origin devices
 * suspended meanwhile); with @origin_uuid (may be NULL) it is a received snapshot recorded
 * with that provenance (uuid, @origin_gen).  Prints the reason on failure.  Returns an exit
 * code.
 */
int cmd_create_snapshot(const char *cmd, const char *sock, u32 tag, const u8 *origin_uuid,
			u64 origin_gen);
/*
 * Whether the origin was written since it last held a known state: the newest of @snaps
 * (@n of them, as LIST returned them after cmd_revert_state), or, when @rev has a revert
 * point and the caller expects the origin to hold what that revert went to (@base is its
 * tag, or DDSNAP_TAG_NONE: whatever the last revert went to), the revert point.
 * *@chunks = the chunks written since (0 without a snapshot), *@since the tag compared
 * with (DDSNAP_TAG_NONE without one, VOLUME_TAG_REVERT_POINT).  The one place `list
 * --json` ("origin_written") and `receive` decide it.  Returns 0, or EXIT_FAIL with the
 * message printed for @cmd.
 */
int cmd_origin_written(const char *cmd, struct ctl_client *c, const struct ctl_snap *snaps, u32 n,
		       const struct cmd_revert *rev, u32 base, u64 *chunks, u32 *since);
int cmd_revert(int argc, char **argv);
int cmd_initialize(int argc, char **argv); /* tools/initialize.c */
int cmd_check(int argc, char **argv);	   /* tools/check.c */
int cmd_dump(int argc, char **argv);	   /* tools/dump.c */
int cmd_restore(int argc, char **argv);	   /* tools/restore.c */

#endif
