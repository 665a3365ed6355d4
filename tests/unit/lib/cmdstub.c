// SPDX-License-Identifier: GPL-2.0-only
/*
 * cmdstub.c - what tools/ddsnap.c (main, not linked into tests) gives the subcommands that
 * unit tests call directly: an empty command table and the error and usage printers.
 */
#include <stdarg.h>
#include <stdio.h>
#include "commands.h"

const struct ddsnap_command ddsnap_commands[] = {
	{NULL, NULL, NULL, NULL},
};

void cmd_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ddsnap %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cmd_usage(const char *cmd)
{
	fprintf(stderr, "usage: ddsnap %s ...\n", cmd);
	return EXIT_USAGE;
}
