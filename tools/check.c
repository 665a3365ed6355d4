// SPDX-License-Identifier: GPL-2.0-only
/*
 * check.c - `ddsnap check <snapstore> [<metadev>]`: the offline checker (store_check.h).
 * Prints its findings and a summary; exits 0 when the store is clean, 3 when it found
 * damage, 1 when it could not run.  Never writes.
 */
#include <getopt.h>
#include <string.h>
#include "commands.h"
#include "bdev.h"
#include "store_check.h"

int cmd_check(int argc, char **argv)
{
	struct bdev *snap = NULL, *meta = NULL;
	struct store_check_report rep;
	int c, r, ret = EXIT_FAIL;

	optind = 1;
	if ((c = getopt(argc, argv, "h")) != -1)
		return cmd_usage("check");
	if (argc - optind < 1 || argc - optind > 2)
		return cmd_usage("check");
	r = bdev_open(argv[optind], BDEV_RDONLY, &snap);
	if (r) {
		cmd_error("check", "%s: %s", argv[optind], strerror(-r));
		goto out;
	}
	if (argc - optind == 2) {
		r = bdev_open(argv[optind + 1], BDEV_RDONLY, &meta);
		if (r) {
			cmd_error("check", "%s: %s", argv[optind + 1], strerror(-r));
			goto out;
		}
	}
	r = store_check(snap, meta, stdout, &rep);
	if (r == -EILSEQ || r == -ENOTBLK)
		ret = EXIT_CORRUPT;
	else if (!r)
		ret = rep.errors ? EXIT_CORRUPT : EXIT_OK;
out:
	bdev_close(meta);
	bdev_close(snap);
	return ret;
}
