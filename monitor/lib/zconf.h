/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * zconf.h - validation of every value in the zumastor config database (doc/monitor.md).
 *
 * Each setting is one small file holding one line; zconf_check() decides whether a value is
 * allowed and writes its canonical form (what `zumastor define` stores and `show` prints).
 * A refusal says what is allowed, so an error can name the file, the value and the rule:
 *
 *	/var/lib/zumastor/volumes/home/schedule/hourly: '-3' is not allowed: a whole number
 *	of hourly periods to keep, 1 to 8784
 *
 * The settings (names are paths under the volume's directory):
 *	origin snapstore metadev	absolute device paths
 *	chunk				snapstore chunk size, a power of two 4k..1m
 *	mountpoint			absolute directory for the origin's filesystem
 *	fs-options			mount options for the origin
 *	schedule/frequent		MIN:COUNT, MIN divides 60
 *	schedule/hourly ... monthly	counts, bounds in zsched.h
 *	export/nfs			CLIENTS[:OPTIONS]
 *	export/samba			SHARE[:OPTIONS]
 *	uuid, snapshots/<name>/fsid	128-bit uuids (state the monitor records)
 *	targets/<t>/host		replication (doc/replication.md): [USER@]HOST
 *	targets/<t>/volume		the replica's volume name on that host
 *	targets/<t>/period		minutes 1..44640 or after-each-snapshot
 *	targets/<t>/rate		bytes per second (k, m, g), canonical in bytes
 *	targets/<t>/codec		NAME[:LEVEL], a codec of ddsnap send
 *	targets/<t>/ssh-key		absolute path of the private key
 *	targets/<t>/transport		ssh or tcp:PORT
 *	targets/<t>/lag-warn, lag-crit	minutes (also under source/)
 *	source/host, source/volume	the sending box's name, its volume name
 * and the volume name itself (the directory's name), zconf_volume_name().
 *
 * Pure functions, no I/O, thread-safe.
 */
#ifndef ZUMASTOR_ZCONF_H
#define ZUMASTOR_ZCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZCONF_NAME_MAX	  64   /* volume names: dm allows 127, the snapshot suffix needs 25 */
#define ZCONF_PATH_MAX	  1024 /* device and mount paths */
#define ZCONF_OPTIONS_MAX 256  /* mount and export option strings */
#define ZCONF_SHARE_MAX	  80   /* Samba share names (smb.conf's documented limit) */
#define ZCONF_VALUE_MAX	  2048 /* the longest line any setting file may hold */

/*
 * Checks volume name @name: 1..ZCONF_NAME_MAX characters from [A-Za-z0-9_.+-], not starting
 * with '.', '-' or '+'.  So it is a safe file name, dm device name (unchanged by dmsetup's
 * mangling and by udev), share and export path component, and cannot end in an @GMT token.
 * Returns 0, or -EINVAL with *@allowed set to the rule (a static string).
 */
int zconf_volume_name(const char *name, const char **allowed);

/*
 * Checks @value for @setting (one of the names above; for a snapshot's fsid pass "fsid").
 * On success returns 0 and writes the canonical value into @out (@outlen >= ZCONF_VALUE_MAX
 * suffices).  Returns -EINVAL with *@allowed = the rule when the value is not allowed,
 * -ENOENT (and *@allowed listing the settings) when @setting is unknown.
 */
int zconf_check(const char *setting, const char *value, char *out, size_t outlen,
		const char **allowed);

/*
 * Splits a per-target setting "targets/<name>/<key>": writes the target's name into @name
 * (ZCONF_NAME_MAX + 1 bytes; the volume name rule) and points *@key at the known key.
 * Returns 0, -ENOENT when @setting does not start with "targets/", -EINVAL (with *@allowed
 * the rule) for a bad name or an unknown key.
 */
int zconf_target_setting(const char *setting, char *name, const char **key, const char **allowed);

/* Parses a canonical uuid or 32 hex digits with '-' anywhere into @uuid.  0 or -EINVAL. */
int zconf_parse_uuid(const char *s, uint8_t uuid[16]);

/* Formats @uuid as 8-4-4-4-12 lower-case hex into @buf (37 bytes). */
void zconf_format_uuid(const uint8_t uuid[16], char buf[37]);

#endif
