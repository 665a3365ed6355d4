// SPDX-License-Identifier: GPL-2.0-only
/*
 * cmdutil.c - what every subcommand shares (commands.h): the error printers, the strict
 * parsers for numbers, sizes, ports and snapshot tags given on the command line, opening a
 * store's devices under their ownership lock (ownership.h), and recognising what is on a
 * device before a store is written over it (libblkid, after ddsnap's own label).  In the
 * tools library, so that tests and benchmarks calling subcommands without main() get them
 * too (cmd_usage, which reads main()'s command table, stays in tools/ddsnap.c).
 *
 * Every number a person types goes through cmd_parse_u64, so none wraps: digits only (no
 * sign, space, base prefix or trailing text), at most 20 of them, each step checked against
 * overflow, then the caller's range; sizes multiply by their suffix only when the product
 * fits.  What a libc parser would silently turn into another value ("18014398509482000k",
 * "99999" as a port) is refused with the caller's message.
 */
#include <blkid.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "commands.h"
#include "ddsnap_wire.h"
#include "blk/bdev.h"
#include "proto/ctl.h"
#include "snap/volume.h"
#include "store/label.h"
#include "blk/ownership.h"

void cmd_verror(const char *cmd, const char *fmt, va_list ap)
{
	fprintf(stderr, "ddsnap %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cmd_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmd_verror(cmd, fmt, ap);
	va_end(ap);
}

/* Decimal digits at @s into *@v, overflow-checked; *@end after them.  -EINVAL if none. */
static int parse_digits(const char *s, u64 *v, const char **end)
{
	u64 n = 0;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (n > (UINT64_MAX - d) / 10)
			return -EINVAL;
		n = n * 10 + d;
	}
	*v = n;
	*end = s;
	return 0;
}

int cmd_parse_u64(const char *s, u64 lo, u64 hi, u64 *out)
{
	const char *end;
	u64 v;

	if (parse_digits(s, &v, &end) || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

int cmd_parse_s64(const char *s, s64 lo, s64 hi, s64 *out)
{
	bool neg = s && *s == '-';
	u64 v;

	if (cmd_parse_u64(neg ? s + 1 : s, 0, neg ? (u64)INT64_MAX + 1 : (u64)INT64_MAX, &v))
		return -EINVAL;
	/* -(INT64_MAX + 1) is INT64_MIN: negate in unsigned arithmetic */
	if (neg ? (s64)(0 - v) < lo || (s64)(0 - v) > hi : (s64)v < lo || (s64)v > hi)
		return -EINVAL;
	*out = neg ? (s64)(0 - v) : (s64)v;
	return 0;
}

int cmd_parse_size(const char *s, u64 max, u64 *out)
{
	static const char suffixes[] = "kmgt";
	const char *end;
	unsigned shift = 0;
	u64 v;

	if (parse_digits(s, &v, &end))
		return -EINVAL;
	if (*end) {
		for (unsigned i = 0; suffixes[i]; i++)
			if ((*end | 0x20) == suffixes[i])
				shift = 10 * (i + 1);
		if (!shift || end[1])
			return -EINVAL;
	}
	if (v > (UINT64_MAX >> shift) || (v << shift) > max)
		return -EINVAL;
	*out = v << shift;
	return 0;
}

int cmd_parse_port(const char *s, u16 *out)
{
	u64 v;

	if (cmd_parse_u64(s, 1, 65535, &v))
		return -EINVAL;
	*out = (u16)v;
	return 0;
}

int cmd_parse_tag(const char *cmd, const char *s, u32 *out)
{
	u64 v;

	if (cmd_parse_u64(s, 0, VOLUME_TAG_USER_MAX, &v)) {
		cmd_error(cmd, "bad snapshot tag '%s': a number from 0 to %u", s,
			  VOLUME_TAG_USER_MAX);
		return -EINVAL;
	}
	*out = (u32)v;
	return 0;
}

void cmd_revert_state(struct ctl_snap *snaps, u32 *n, struct cmd_revert *out)
{
	u32 k = 0;

	*out = (struct cmd_revert){0};
	for (u32 i = 0; i < *n; i++) {
		if (snaps[i].tag == VOLUME_TAG_REVERTING) {
			out->reverting = true;
			out->to = (u32)snaps[i].ctime;
		} else if (snaps[i].tag == VOLUME_TAG_REVERT_POINT) {
			out->point = true;
			out->point_to = (u32)snaps[i].ctime;
		} else {
			snaps[k++] = snaps[i];
		}
	}
	*n = k;
}

int cmd_open_store(const char *cmd, const char *snap_path, const char *meta_path, bool write,
		   struct bdev **snap, struct bdev **meta)
{
	enum ownership_mode mode = write ? OWN_EXCLUSIVE : OWN_SHARED;
	unsigned flags = write ? 0 : BDEV_RDONLY;
	const char *paths[] = {snap_path, meta_path};
	const char *roles[] = {"snapstore", "metadata device"};
	char why[512];
	int r;

	*snap = *meta = NULL;
	r = ownership_distinct(paths, roles, 2, why, sizeof(why));
	if (!r)
		r = ownership_open(snap_path, roles[0], flags, mode, snap, why, sizeof(why));
	if (!r && meta_path)
		r = ownership_open(meta_path, roles[1], flags, mode, meta, why, sizeof(why));
	if (r == -EBUSY && !write)
		cmd_error(cmd, "%s: stop it first (%s reads a store only while nothing writes it)",
			  why, cmd);
	else if (r)
		cmd_error(cmd, "%s", why);
	return r;
}

const char *cmd_probe(struct bdev *b, const char *path, char *buf, size_t len)
{
	const char *type = NULL, *what = "";
	blkid_probe pr;
	struct label l;
	int r = label_read(b, -1, &l, NULL, 0);

	if (r != -ENODATA && r != -EINVAL)
		return snprintf(buf, len, "a ddsnap store"), buf;
	pr = blkid_new_probe_from_filename(path);
	if (!pr)
		return NULL;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
	r = blkid_do_safeprobe(pr);
	if (r == -2) {
		snprintf(buf, len, "several conflicting signatures");
	} else if (r == 0) {
		const char *usage = NULL;

		if (!blkid_probe_lookup_value(pr, "TYPE", &type, NULL)) {
			blkid_probe_lookup_value(pr, "USAGE", &usage, NULL);
			what = usage && !strcmp(usage, "filesystem") ? "filesystem" : "signature";
		} else if (!blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL)) {
			what = "partition table";
		}
		if (type)
			snprintf(buf, len, "%s %s %s", strchr("aeiou", type[0]) ? "an" : "a", type,
				 what);
		else
			snprintf(buf, len, "a signature libblkid recognises");
	}
	blkid_free_probe(pr);
	return r == 0 || r == -2 ? buf : NULL;
}

bool cmd_may_overwrite(const char *cmd, struct bdev *b, const char *path, const char *role,
		       bool yes, bool origin_blank)
{
	char what[128];

	if (yes || !cmd_probe(b, path, what, sizeof(what)))
		return true;
	if (!strcmp(what, "a ddsnap store"))
		cmd_error(cmd,
			  "the %s %s holds a ddsnap store; -y overwrites it (all its snapshots "
			  "are lost)",
			  role, path);
	else if (origin_blank && strstr(what, "filesystem"))
		cmd_error(cmd,
			  "the %s %s holds %s: it looks like the origin (arguments swapped? "
			  "the snapstore comes first); -y overwrites it",
			  role, path, what);
	else
		cmd_error(cmd, "the %s %s holds %s; -y overwrites it", role, path, what);
	return false;
}

void cmd_format_uuid(const u8 u[16], char out[CMD_UUID_LEN])
{
	snprintf(out, CMD_UUID_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
		 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
		 u[15]);
}

int cmd_parse_origin(const char *s, u8 uuid[16], u64 *gen)
{
	const char *colon = strrchr(s, ':');
	unsigned nib = 0;
	u8 u[16] = {0};

	if (!colon)
		return -EINVAL;
	for (const char *p = s; p < colon; p++) {
		int v;

		if (*p == '-' && (nib == 8 || nib == 12 || nib == 16 || nib == 20))
			continue;
		if (*p >= '0' && *p <= '9')
			v = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			v = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			v = *p - 'A' + 10;
		else
			return -EINVAL;
		if (nib == 32)
			return -EINVAL;
		u[nib / 2] |= (u8)(nib % 2 ? v : v << 4);
		nib++;
	}
	if (nib != 32 || cmd_parse_u64(colon + 1, 1, UINT64_MAX, gen))
		return -EINVAL;
	memcpy(uuid, u, 16);
	return 0;
}

char *cmd_default_token(const char *sock)
{
	size_t n = strlen(sock);
	char *p;

	if (n > 5 && !strcmp(sock + n - 5, ".sock"))
		n -= 5;
	if (asprintf(&p, "%.*s.token", (int)n, sock) < 0)
		abort();
	return p;
}
