// SPDX-License-Identifier: GPL-2.0-only
/*
 * cmdstub.c - what main() (tools/ddsnap.c, not linked into tests) gives the subcommands
 * that unit tests call directly: an empty command table and a usage printer.
 */
#include <stddef.h>
#include <stdio.h>
#include "commands.h"

const struct ddsnap_command ddsnap_commands[] = {
	{NULL, NULL, NULL, NULL},
};

int cmd_usage(const char *cmd)
{
	fprintf(stderr, "usage: ddsnap %s ...\n", cmd);
	return EXIT_USAGE;
}
