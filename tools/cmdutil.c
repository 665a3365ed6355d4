// SPDX-License-Identifier: GPL-2.0-only
/*
 * cmdutil.c - the error printers every subcommand shares (commands.h).  In the tools
 * library, so that tests and benchmarks calling subcommands without main() get them too
 * (cmd_usage, which reads main()'s command table, stays in tools/ddsnap.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include "commands.h"

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
