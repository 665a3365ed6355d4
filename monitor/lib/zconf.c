// SPDX-License-Identifier: GPL-2.0-only
/*
 * zconf.c - the rules for every value of the zumastor config database (zconf.h).
 *
 * Each rule is an allow-list (characters, option words, bounds), never a deny-list: a value
 * written by an editor, a script or a corrupted disk is either one the monitor generates
 * itself or refused with the rule it broke.  The canonical form is what the monitor stores,
 * so check(canonical) == canonical.  No state, no I/O; the caller reads and writes files.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zconf.h"
#include "zplan.h"
#include "zsched.h"

static const char name_rule[] =
	"1 to 64 characters from A-Z a-z 0-9 _ . + -, not starting with '.', '-' or '+'";

int zconf_volume_name(const char *name, const char **allowed)
{
	size_t len = strlen(name);

	*allowed = name_rule;
	if (!len || len > ZCONF_NAME_MAX || name[0] == '.' || name[0] == '-' || name[0] == '+')
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!isascii((unsigned char)name[i]) ||
		    (!isalnum((unsigned char)name[i]) && !strchr("_.+-", name[i])))
			return -EINVAL;
	return 0;
}

/* Every character of @s is an ASCII letter or digit, or one of @extra. */
static bool only(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!(isascii((unsigned char)*s) && isalnum((unsigned char)*s)) &&
		    !strchr(extra, *s))
			return false;
	return true;
}

static int copy_out(const char *v, char *out, size_t outlen)
{
	if (strlen(v) >= outlen)
		return -EINVAL;
	strcpy(out, v);
	return 0;
}

/* An absolute path without '.'/'..' components, empty components or odd characters. */
static bool path_ok(const char *v, bool root_ok)
{
	size_t len = strlen(v);

	if (len < 2 && !(root_ok && len == 1))
		return false;
	if (v[0] != '/' || len > ZCONF_PATH_MAX || !only(v, "/._-+:@=,%#~\\"))
		return false;
	if (strstr(v, "//") || strstr(v, "/./") || strstr(v, "/../") ||
	    (len > 1 && v[len - 1] == '/'))
		return false;
	if ((len >= 2 && !strcmp(v + len - 2, "/.")) || (len >= 3 && !strcmp(v + len - 3, "/..")))
		return false;
	return true;
}

static int check_device(const char *v, char *out, size_t outlen, const char **allowed)
{
	*allowed = "an absolute path to a block device, such as /dev/sdb or "
		   "/dev/disk/by-id/...: characters A-Z a-z 0-9 / . _ - + : @ = , % # ~ \\, "
		   "no '.' or '..' components, at most 1024";
	return path_ok(v, false) ? copy_out(v, out, outlen) : -EINVAL;
}

static int check_mountpoint(const char *v, char *out, size_t outlen, const char **allowed)
{
	*allowed = "an absolute directory path other than /: characters A-Z a-z 0-9 / . _ - + : "
		   "@ = , % # ~ \\, no '.' or '..' components, at most 1024";
	return path_ok(v, false) ? copy_out(v, out, outlen) : -EINVAL;
}

/* A decimal number lo..hi without sign, spaces or leading zeros. */
static bool number(const char *v, unsigned long lo, unsigned long hi, unsigned long *out)
{
	unsigned long n = 0;

	if (!*v || strlen(v) > 10 || (v[0] == '0' && v[1]))
		return false;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		n = n * 10 + (unsigned long)(*p - '0');
	}
	if (n < lo || n > hi)
		return false;
	*out = n;
	return true;
}

static int check_chunk(const char *v, char *out, size_t outlen, const char **allowed)
{
	unsigned long n, mult = 1;
	char num[16];
	size_t len = strlen(v);

	*allowed = "a power of two from 4k to 1m: bytes (4096) or with k or m (16k)";
	if (!len || len >= sizeof(num))
		return -EINVAL;
	strcpy(num, v);
	if (num[len - 1] == 'k' || num[len - 1] == 'K' || num[len - 1] == 'm' ||
	    num[len - 1] == 'M') {
		mult = tolower((unsigned char)num[len - 1]) == 'k' ? 1024 : 1024 * 1024;
		num[len - 1] = 0;
	}
	if (!number(num, 1, 1 << 20, &n) || n * mult < 4096 || n * mult > (1 << 20) ||
	    (n * mult & (n * mult - 1)))
		return -EINVAL;
	snprintf(out, outlen, "%lu", n * mult);
	return 0;
}

/* Comma-separated words, each from [A-Za-z0-9_=.:/+-], none empty. */
static bool option_words(const char *v)
{
	size_t len = strlen(v);

	if (!len || len > ZCONF_OPTIONS_MAX || v[0] == ',' || v[len - 1] == ',' || strstr(v, ",,"))
		return false;
	return only(v, "_=.:/+-,");
}

static int check_fs_options(const char *v, char *out, size_t outlen, const char **allowed)
{
	*allowed = "mount options separated by commas, each of A-Z a-z 0-9 _ = . : / + -, at "
		   "most 256 characters (not 'ro': the origin is the writable volume)";
	if (!option_words(v))
		return -EINVAL;
	for (const char *p = v; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, "ro", 2) && (p[2] == ',' || !p[2]))
			return -EINVAL;
	return copy_out(v, out, outlen);
}

static const char *const count_rules[ZS_KINDS] = {
	"MIN:COUNT: MIN minutes per period, one of 1 2 3 4 5 6 10 12 15 20 30 60, and COUNT "
	"periods to keep, 1 to 1440",
	"a whole number of hourly periods to keep, 1 to 8784",
	"a whole number of daily periods to keep, 1 to 3660",
	"a whole number of weekly periods to keep, 1 to 520",
	"a whole number of monthly periods to keep, 1 to 1200",
};
static const unsigned long count_max[ZS_KINDS] = {ZS_MAX_FREQUENT, ZS_MAX_HOURLY, ZS_MAX_DAILY,
						  ZS_MAX_WEEKLY, ZS_MAX_MONTHLY};

static int check_count(int kind, const char *v, char *out, size_t outlen, const char **allowed)
{
	unsigned long n, min;
	char part[16];
	const char *colon;

	*allowed = count_rules[kind];
	if (kind != ZS_FREQUENT) {
		if (!number(v, 1, count_max[kind], &n))
			return -EINVAL;
		snprintf(out, outlen, "%lu", n);
		return 0;
	}
	colon = strchr(v, ':');
	if (!colon || (size_t)(colon - v) >= sizeof(part))
		return -EINVAL;
	memcpy(part, v, (size_t)(colon - v));
	part[colon - v] = 0;
	if (!number(part, 1, 60, &min) || !zs_frequent_min_ok((uint32_t)min) ||
	    !number(colon + 1, 1, count_max[kind], &n))
		return -EINVAL;
	snprintf(out, outlen, "%lu:%lu", min, n);
	return 0;
}

/* The exports(5) options an admin may give; fsid is the monitor's (derived, recorded). */
static const char *const nfs_flags[] = {
	"ro",
	"rw",
	"sync",
	"async",
	"secure",
	"insecure",
	"wdelay",
	"no_wdelay",
	"subtree_check",
	"no_subtree_check",
	"root_squash",
	"no_root_squash",
	"all_squash",
	"no_all_squash",
	"insecure_locks",
	"secure_locks",
	"nohide",
	"hide",
	"crossmnt",
	"no_acl",
	NULL,
};
static const char *const nfs_valued[] = {"anonuid=", "anongid=", "sec=", NULL};

static bool word_in(const char *w, size_t len, const char *const *list, bool prefix)
{
	for (; *list; list++) {
		size_t l = strlen(*list);

		if (prefix ? (len > l && !strncmp(w, *list, l))
			   : (len == l && !strncmp(w, *list, l)))
			return true;
	}
	return false;
}

/* Every comma-separated word of @v is in @flags, or a prefix of @valued with a value. */
static bool words_from(const char *v, const char *const *flags, const char *const *valued)
{
	if (!option_words(v))
		return false;
	for (const char *p = v; *p;) {
		size_t len = strcspn(p, ",");

		if (!word_in(p, len, flags, false) && !(valued && word_in(p, len, valued, true)))
			return false;
		p += len + (p[len] == ',');
	}
	return true;
}

static int check_nfs(const char *v, char *out, size_t outlen, const char **allowed)
{
	const char *colon = strchr(v, ':');
	size_t clen = colon ? (size_t)(colon - v) : strlen(v);
	char clients[ZCONF_OPTIONS_MAX + 1];

	*allowed = "CLIENTS[:OPTIONS]: CLIENTS host names, wildcards, IPv4 networks or "
		   "@netgroups separated by commas (A-Z a-z 0-9 . * ? _ - / @); OPTIONS "
		   "exports(5) options separated by commas from ro rw sync async secure insecure "
		   "wdelay no_wdelay subtree_check no_subtree_check root_squash no_root_squash "
		   "all_squash no_all_squash insecure_locks secure_locks nohide hide crossmnt "
		   "no_acl anonuid=N anongid=N sec=FLAVORS (fsid is the monitor's own)";
	if (!clen || clen > ZCONF_OPTIONS_MAX)
		return -EINVAL;
	memcpy(clients, v, clen);
	clients[clen] = 0;
	if (clients[0] == ',' || clients[clen - 1] == ',' || strstr(clients, ",,") ||
	    clients[0] == '-' || !only(clients, ".*?_-/@,"))
		return -EINVAL;
	if (colon && !words_from(colon + 1, nfs_flags, nfs_valued))
		return -EINVAL;
	return copy_out(v, out, outlen);
}

static const char *const samba_flags[] = {"ro",		"rw",	  "guest", "noguest",
					  "browseable", "hidden", NULL};

static int check_samba(const char *v, char *out, size_t outlen, const char **allowed)
{
	const char *colon = strchr(v, ':');
	size_t slen = colon ? (size_t)(colon - v) : strlen(v);
	char share[ZCONF_SHARE_MAX + 1];

	*allowed = "SHARE[:OPTIONS]: SHARE 1 to 80 characters from A-Z a-z 0-9 _ . - $, not "
		   "starting with '.' or '-', not global, homes or printers; OPTIONS from ro rw "
		   "guest noguest browseable hidden, separated by commas";
	if (!slen || slen > ZCONF_SHARE_MAX)
		return -EINVAL;
	memcpy(share, v, slen);
	share[slen] = 0;
	if (share[0] == '.' || share[0] == '-' || !only(share, "_.-$") ||
	    !strcasecmp(share, "global") || !strcasecmp(share, "homes") ||
	    !strcasecmp(share, "printers"))
		return -EINVAL;
	if (colon && !words_from(colon + 1, samba_flags, NULL))
		return -EINVAL;
	return copy_out(v, out, outlen);
}

int zconf_parse_uuid(const char *s, uint8_t uuid[16])
{
	int n = 0;

	for (; *s; s++) {
		int d;

		if (*s == '-')
			continue;
		if (!isxdigit((unsigned char)*s) || n == 32)
			return -EINVAL;
		d = isdigit((unsigned char)*s) ? *s - '0' : tolower((unsigned char)*s) - 'a' + 10;
		if (n % 2 == 0)
			uuid[n / 2] = (uint8_t)(d << 4);
		else
			uuid[n / 2] |= (uint8_t)d;
		n++;
	}
	return n == 32 ? 0 : -EINVAL;
}

void zconf_format_uuid(const uint8_t u[16], char buf[37])
{
	snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

static int check_uuid(const char *v, char *out, size_t outlen, const char **allowed)
{
	uint8_t u[16];

	*allowed = "a uuid: 32 hexadecimal digits, dashes allowed (the monitor writes "
		   "8-4-4-4-12), not all zero";
	if (zconf_parse_uuid(v, u) || outlen < 37)
		return -EINVAL;
	for (int i = 0; i < 16; i++)
		if (u[i]) {
			zconf_format_uuid(u, out);
			return 0;
		}
	return -EINVAL;
}

/* The replication settings (doc/replication.md, Configuration). */

/* A host name or address as ssh takes it: letters, digits, '.', '-', '_', ':' (IPv6), not
 * starting with '-' (ssh would read an option), at most 253 characters. */
static bool host_ok(const char *v, size_t len)
{
	if (!len || len > 253 || v[0] == '-' || v[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(isascii((unsigned char)v[i]) && isalnum((unsigned char)v[i])) &&
		    !strchr(".-_:", v[i]))
			return false;
	return true;
}

static int check_target_host(const char *v, char *out, size_t outlen, const char **allowed)
{
	const char *at = strchr(v, '@');
	const char *host = at ? at + 1 : v;

	*allowed = "an ssh destination: [USER@]HOST, HOST a host name, address or ssh alias "
		   "(A-Z a-z 0-9 . - _ :, not starting with '-' or '.', at most 253), USER "
		   "1 to 32 of A-Z a-z 0-9 . _ -, not starting with '-'";
	if (at) {
		size_t ulen = (size_t)(at - v);
		char user[33];

		if (!ulen || ulen > 32 || v[0] == '-')
			return -EINVAL;
		memcpy(user, v, ulen);
		user[ulen] = 0;
		if (!only(user, "._-"))
			return -EINVAL;
	}
	if (!host_ok(host, strlen(host)))
		return -EINVAL;
	return copy_out(v, out, outlen);
}

static int check_source_host(const char *v, char *out, size_t outlen, const char **allowed)
{
	*allowed = "the sending box's name as its authorized_keys line names it (A-Z a-z 0-9 . "
		   "- _ :, not starting with '-' or '.', at most 253)";
	return host_ok(v, strlen(v)) ? copy_out(v, out, outlen) : -EINVAL;
}

static int check_replica_volume(const char *v, char *out, size_t outlen, const char **allowed)
{
	return zconf_volume_name(v, allowed) ? -EINVAL : copy_out(v, out, outlen);
}

static int check_period(const char *v, char *out, size_t outlen, const char **allowed)
{
	unsigned long n;

	*allowed = "minutes between transfers, 1 to 44640 (31 days), or after-each-snapshot";
	if (!strcmp(v, "after-each-snapshot"))
		return copy_out(v, out, outlen);
	if (!number(v, ZP_PERIOD_MIN / 60, ZP_PERIOD_MAX / 60, &n))
		return -EINVAL;
	snprintf(out, outlen, "%lu", n);
	return 0;
}

/* A whole number of bytes per second, 1024 (1k) to 100 GB/s, with an optional k, m or g. */
static int check_rate(const char *v, char *out, size_t outlen, const char **allowed)
{
	unsigned long long mult = 1, total;
	unsigned long n;
	char num[16];
	size_t len = strlen(v);

	*allowed = "bytes per second, 1024 to 100g: a whole number, or with k, m or g (20m)";
	if (!len || len >= sizeof(num))
		return -EINVAL;
	strcpy(num, v);
	switch (tolower((unsigned char)num[len - 1])) {
	case 'k':
		mult = 1ull << 10;
		break;
	case 'm':
		mult = 1ull << 20;
		break;
	case 'g':
		mult = 1ull << 30;
		break;
	}
	if (mult > 1)
		num[len - 1] = 0;
	if (!number(num, 1, 4000000000ul, &n))
		return -EINVAL;
	total = n * mult;
	if (total < 1024 || total > 100ull << 30)
		return -EINVAL;
	snprintf(out, outlen, "%llu", total);
	return 0;
}

/* The codec of ddsnap send (ddsnap(8)): NAME or NAME:LEVEL. */
static int check_codec(const char *v, char *out, size_t outlen, const char **allowed)
{
	static const struct {
		const char *name;
		unsigned long max; /* 0: no level */
	} codecs[] = {{"raw", 0},	  {"zlib", 9},	 {"zstd", 19},
		      {"zstd-delta", 19}, {"xdelta", 9}, {"best", 19}};
	const char *colon = strchr(v, ':');
	size_t nlen = colon ? (size_t)(colon - v) : strlen(v);
	unsigned long level;

	*allowed = "a codec of ddsnap send, NAME or NAME:LEVEL: raw, zlib[:1-9], zstd[:1-19], "
		   "zstd-delta[:1-19], xdelta[:1-9], best[:1-19]";
	for (size_t i = 0; i < sizeof(codecs) / sizeof(*codecs); i++) {
		if (strlen(codecs[i].name) != nlen || strncmp(v, codecs[i].name, nlen))
			continue;
		if (colon && (!codecs[i].max || !number(colon + 1, 1, codecs[i].max, &level)))
			return -EINVAL;
		return copy_out(v, out, outlen);
	}
	return -EINVAL;
}

static int check_key(const char *v, char *out, size_t outlen, const char **allowed)
{
	*allowed = "an absolute path to an ssh private key file: characters A-Z a-z 0-9 / . _ - "
		   "+ : @ = , % # ~ \\, no '.' or '..' components, at most 1024";
	return path_ok(v, false) ? copy_out(v, out, outlen) : -EINVAL;
}

static int check_transport(const char *v, char *out, size_t outlen, const char **allowed)
{
	unsigned long port;

	*allowed = "ssh, or tcp:PORT (PORT 1 to 65535; the stream unauthenticated, for trusted "
		   "networks)";
	if (!strcmp(v, "ssh"))
		return copy_out(v, out, outlen);
	if (strncmp(v, "tcp:", 4) || !number(v + 4, 1, 65535, &port))
		return -EINVAL;
	return copy_out(v, out, outlen);
}

static int check_lag(const char *v, char *out, size_t outlen, const char **allowed)
{
	unsigned long n;

	*allowed = "minutes, 1 to 527040 (a year)";
	if (!number(v, 1, 527040, &n))
		return -EINVAL;
	snprintf(out, outlen, "%lu", n);
	return 0;
}

/* Per-target settings: the part after targets/<name>/. */
static const struct {
	const char *name;
	int (*check)(const char *v, char *out, size_t outlen, const char **allowed);
} target_settings[] = {
	{"host", check_target_host},	{"volume", check_replica_volume}, {"period", check_period},
	{"rate", check_rate},		{"codec", check_codec},		  {"ssh-key", check_key},
	{"transport", check_transport}, {"lag-warn", check_lag},	  {"lag-crit", check_lag},
};

static const char target_rule[] =
	"targets/<name>/ and one of host volume period rate codec ssh-key transport lag-warn "
	"lag-crit, <name> 1 to 64 characters from A-Z a-z 0-9 _ . + -, not starting with '.', "
	"'-' or '+'";

int zconf_target_setting(const char *setting, char *name, const char **key, const char **allowed)
{
	const char *slash;
	size_t nlen;
	const char *rule;

	*allowed = target_rule;
	if (strncmp(setting, "targets/", 8))
		return -ENOENT;
	slash = strchr(setting + 8, '/');
	if (!slash)
		return -EINVAL;
	nlen = (size_t)(slash - (setting + 8));
	if (!nlen || nlen > ZCONF_NAME_MAX)
		return -EINVAL;
	memcpy(name, setting + 8, nlen);
	name[nlen] = 0;
	if (zconf_volume_name(name, &rule))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(target_settings) / sizeof(*target_settings); i++)
		if (!strcmp(slash + 1, target_settings[i].name)) {
			*key = target_settings[i].name;
			return 0;
		}
	return -EINVAL;
}

struct setting {
	const char *name;
	int kind; /* for schedule counts, else -1 */
	int (*check)(const char *v, char *out, size_t outlen, const char **allowed);
};

static const struct setting settings[] = {
	{"origin", -1, check_device},
	{"snapstore", -1, check_device},
	{"metadev", -1, check_device},
	{"chunk", -1, check_chunk},
	{"mountpoint", -1, check_mountpoint},
	{"fs-options", -1, check_fs_options},
	{"schedule/frequent", ZS_FREQUENT, NULL},
	{"schedule/hourly", ZS_HOURLY, NULL},
	{"schedule/daily", ZS_DAILY, NULL},
	{"schedule/weekly", ZS_WEEKLY, NULL},
	{"schedule/monthly", ZS_MONTHLY, NULL},
	{"export/nfs", -1, check_nfs},
	{"export/samba", -1, check_samba},
	{"uuid", -1, check_uuid},
	{"fsid", -1, check_uuid},
	{"source/host", -1, check_source_host},
	{"source/volume", -1, check_replica_volume},
	{"source/lag-warn", -1, check_lag},
	{"source/lag-crit", -1, check_lag},
	{NULL, -1, NULL},
};

int zconf_check(const char *setting, const char *value, char *out, size_t outlen,
		const char **allowed)
{
	for (const struct setting *s = settings; s->name; s++) {
		if (strcmp(s->name, setting))
			continue;
		if (strlen(value) >= ZCONF_VALUE_MAX) {
			*allowed = "a value of at most 2047 characters";
			return -EINVAL;
		}
		if (s->kind >= 0)
			return check_count(s->kind, value, out, outlen, allowed);
		return s->check(value, out, outlen, allowed);
	}
	if (!strncmp(setting, "targets/", 8)) {
		char name[ZCONF_NAME_MAX + 1];
		const char *key;

		if (zconf_target_setting(setting, name, &key, allowed))
			return -ENOENT;
		if (strlen(value) >= ZCONF_VALUE_MAX) {
			*allowed = "a value of at most 2047 characters";
			return -EINVAL;
		}
		for (size_t i = 0; i < sizeof(target_settings) / sizeof(*target_settings); i++)
			if (!strcmp(key, target_settings[i].name))
				return target_settings[i].check(value, out, outlen, allowed);
	}
	*allowed =
		"one of origin snapstore metadev chunk mountpoint fs-options schedule/frequent "
		"schedule/hourly schedule/daily schedule/weekly schedule/monthly export/nfs "
		"export/samba uuid fsid source/host source/volume source/lag-warn source/lag-crit "
		"targets/<name>/host volume period rate codec ssh-key transport lag-warn lag-crit";
	return -ENOENT;
}
