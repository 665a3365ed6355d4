/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * common.h - what every stress program's main() shares: the command line
 * [--duration SECS] [--seed N] [--dir DIR] (tests/stress/run.sh passes --duration).
 * Header only, for the programs in tests/stress/.
 */
#ifndef DDSNAP_STRESS_COMMON_H
#define DDSNAP_STRESS_COMMON_H

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include "util/base.h"

struct stress_args {
	double duration; /* seconds */
	u64 seed;
	const char *dir; /* NULL: the program chooses */
};

/*
 * Parses the command line into @a, which holds the program's defaults on entry.  Returns 0,
 * or prints the usage line and returns 2 (the exit code for a bad command line).
 */
static inline int stress_args_parse(int argc, char **argv, struct stress_args *a)
{
	static const struct option opts[] = {{"duration", required_argument, NULL, 'd'},
					     {"seed", required_argument, NULL, 's'},
					     {"dir", required_argument, NULL, 'D'},
					     {NULL, 0, NULL, 0}};
	int c;

	while ((c = getopt_long(argc, argv, "d:s:D:", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			a->duration = strtod(optarg, NULL);
			break;
		case 's':
			a->seed = strtoull(optarg, NULL, 0);
			break;
		case 'D':
			a->dir = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [--duration SECS] [--seed N] [--dir DIR]\n",
				argv[0]);
			return 2;
		}
	}
	return 0;
}

#endif
