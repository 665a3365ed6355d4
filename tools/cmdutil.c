// SPDX-License-Identifier: GPL-2.0-only
/*
 * cmdutil.c - what every subcommand shares (commands.h): the error printers and the strict
 * parsers for numbers, sizes, ports and snapshot tags given on the command line.  In the
 * tools library, so that tests and benchmarks calling subcommands without main() get them
 * too (cmd_usage, which reads main()'s command table, stays in tools/ddsnap.c).
 *
 * Every number a person types goes through cmd_parse_u64, so none wraps: digits only (no
 * sign, space, base prefix or trailing text), at most 20 of them, each step checked against
 * overflow, then the caller's range; sizes multiply by their suffix only when the product
 * fits.  What a libc parser would silently turn into another value ("18014398509482000k",
 * "99999" as a port) is refused with the caller's message.
 */
#include <stdarg.h>
#include <stdio.h>
#include "commands.h"
#include "ddsnap_wire.h"

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

	if (cmd_parse_u64(s, 0, DDSNAP_TAG_MAX, &v)) {
		cmd_error(cmd, "bad snapshot tag '%s': a number from 0 to %u", s, DDSNAP_TAG_MAX);
		return -EINVAL;
	}
	*out = (u32)v;
	return 0;
}
