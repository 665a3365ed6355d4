// SPDX-License-Identifier: GPL-2.0-only
/*
 * ddsnap.c - main() of the ddsnap admin tool: dispatches to a subcommand.
 *
 * Every subcommand lives in its own tools/<name>.c; this file only holds the table and the
 * top-level usage and version and cmd_usage (the error printers are in cmdutil.c).  Argument order follows
 * Zumastor's ddsnap so old scripts read naturally (snapstore before origin).
 */
#include <stdio.h>
#include <string.h>
#include "commands.h"

#define DDSNAP_VERSION "0.1.0"

const struct ddsnap_command ddsnap_commands[] = {
	{"initialize", cmd_initialize, "[-y] [-c chunksize] <snapstore> <origin> [<metadev>]",
	 "create an empty store (refuses to overwrite one without -y)"},
	{"check", cmd_check, "<snapstore> [<metadev>]", "verify a stopped store offline"},
	{"dump", cmd_dump, "[-a] [-n] <snapstore> [<metadev>]", "print a store as text"},
	{"restore", cmd_restore, "[-y] [-O] <dumpfile|-> <snapstore> [<metadev>]",
	 "build a store from the text of dump (fixtures)"},
	{"server", cmd_server,
	 "[-f] [-l logfile] [-p pidfile] [-k cachesize] [-g group] [--discard-damaged-log] "
	 "<snapstore> <origin> [<metadev>] "
	 "<server_socket>",
	 "run ddsnapd, the snapshot metadata server, for one volume"},
	{"create", cmd_create, "[-o <uuid>:<gen>] <server_socket> <tag>",
	 "take snapshot <tag> of the volume (suspends the origin device meanwhile)"},
	{"delete", cmd_delete, "<server_socket> <tag>", "delete snapshot <tag>"},
	{"list", cmd_list, "[-j|--json] <server_socket>",
	 "list snapshots: tag and creation time (UTC)"},
	{"status", cmd_status, "[-v] [-s|--size] [-j|--json] <server_socket> [<tag>]",
	 "store totals and per-snapshot space, priority, usecount, state"},
	{"priority", cmd_priority, "<server_socket> <tag> <priority -128..127>",
	 "set which snapshots a full store drops first (lowest first; 127 never)"},
	{"usecount", cmd_usecount, "<server_socket> <tag> [<delta>]",
	 "add to a snapshot's persistent hold count and print it"},
	{"revert", cmd_revert, "<server_socket> <tag>",
	 "make the origin read as snapshot <tag> again (every snapshot is kept)"},
	{"delta", cmd_delta, "<changelist|create|apply> ...",
	 "make or apply a delta between snapshots"},
	{"send", cmd_send,
	 "[codec options] [-l bytes/s] [-t token] [-d devstem] [--to host:port [--timeout secs]] "
	 "<server_socket> "
	 "[<fromtag>] <totag>",
	 "stream snapshot <totag> (incremental from <fromtag>) to stdout or a receiver"},
	{"receive", cmd_receive,
	 "[-t tokenfile] [-d devstem] [--listen [addr:]port [--from addr] [--timeout secs]] "
	 "<server_socket> <tag>",
	 "apply a stream from send to this volume, then take snapshot <tag>"},
	{NULL, NULL, NULL, NULL},
};

int cmd_usage(const char *cmd)
{
	for (const struct ddsnap_command *c = ddsnap_commands; c->name; c++)
		if (!strcmp(c->name, cmd)) {
			fprintf(stderr, "usage: ddsnap %s %s\n", c->name, c->usage);
			return EXIT_USAGE;
		}
	return EXIT_USAGE;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: ddsnap <command> [options] [arguments]\n\ncommands:\n");
	for (const struct ddsnap_command *c = ddsnap_commands; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->help);
	fprintf(out, "\n'ddsnap <command> -h' shows a command's arguments; see ddsnap(8).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("ddsnap %s\n", DDSNAP_VERSION);
		return EXIT_OK;
	}
	for (const struct ddsnap_command *c = ddsnap_commands; c->name; c++)
		if (!strcmp(c->name, argv[1])) {
			if (argc > 2 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
				printf("usage: ddsnap %s %s\n%s\n", c->name, c->usage, c->help);
				return EXIT_OK;
			}
			return c->fn(argc - 1, argv + 1);
		}
	fprintf(stderr, "ddsnap: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
