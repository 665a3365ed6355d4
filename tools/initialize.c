// SPDX-License-Identifier: GPL-2.0-only
/*
 * initialize.c - `ddsnap initialize [-y] [-c chunksize] <snapstore> <origin> [<metadev>]`:
 * writes a new, empty store (store_format) on the snapstore and the optional metadata
 * device, sized for the origin.
 *
 * Before it writes anything it checks what the devices are (cmd_open_store,
 * ownership.h: regular files or block devices, no two roles one device, none in use by a
 * server) and what they hold (cmd_probe: a ddsnap label, or anything libblkid recognises,
 * such as a filesystem, a RAID member or an LVM physical volume); it overwrites a device
 * that holds something only with -y.  An initialize is the one command that destroys every
 * snapshot at once.  An origin that holds a ddsnap store means swapped arguments and is
 * refused even with -y.  Works on block devices and plain files alike.
 */
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>
#include "commands.h"
#include "blk/bdev.h"
#include "store/label.h"
#include "blk/ownership.h"
#include "store/store.h"

int cmd_initialize(int argc, char **argv)
{
	struct bdev *snap = NULL, *origin = NULL, *meta = NULL;
	struct store_format_params p = {0};
	const struct label *l;
	struct store_config cfg;
	struct store *s = NULL;
	const char *paths[3], *roles[] = {"snapstore", "origin", "metadata device"};
	bool yes = false, origin_blank;
	char what[128];
	u64 chunk = 1ULL << LABEL_DEFAULT_CHUNK_SHIFT;
	char why[256] = "";
	int c, r, ret = EXIT_FAIL;

	optind = 1;
	while ((c = getopt(argc, argv, "c:hy")) != -1) {
		switch (c) {
		case 'c':
			if (cmd_parse_size(optarg, 1ULL << LABEL_MAX_CHUNK_SHIFT, &chunk) ||
			    !IS_POWER_OF_2(chunk) || chunk < (1ULL << LABEL_MIN_CHUNK_SHIFT) ||
			    chunk > (1ULL << LABEL_MAX_CHUNK_SHIFT)) {
				cmd_error("initialize",
					  "chunk size '%s': must be a power of two from 4k to 1m",
					  optarg);
				return EXIT_USAGE;
			}
			break;
		case 'y':
			yes = true;
			break;
		default:
			return cmd_usage("initialize");
		}
	}
	if (argc - optind < 2 || argc - optind > 3)
		return cmd_usage("initialize");
	p.chunk_shift = (u32)__builtin_ctzll(chunk);
	paths[0] = argv[optind];
	paths[1] = argv[optind + 1];
	paths[2] = argc - optind == 3 ? argv[optind + 2] : NULL;
	if (ownership_distinct(paths, roles, 3, why, sizeof(why))) {
		cmd_error("initialize", "%s", why);
		return EXIT_USAGE;
	}
	/* The store's devices exclusively, the origin shared: no server may be using any. */
	if (cmd_open_store("initialize", paths[0], paths[2], true, &snap, &meta))
		goto out;
	r = ownership_open(paths[1], roles[1], BDEV_RDONLY | BDEV_BUFFERED, OWN_SHARED, &origin,
			   why, sizeof(why));
	if (r) {
		cmd_error("initialize", "%s", why);
		goto out;
	}
	/* An origin with a store label: the snapstore and origin arguments are swapped. */
	if (cmd_probe(origin, paths[1], what, sizeof(what)) && !strcmp(what, "a ddsnap store")) {
		cmd_error("initialize",
			  "the origin %s holds a ddsnap store: the arguments look swapped (the "
			  "snapstore comes first); -y does not override this (wipefs the label to "
			  "use that device as an origin)",
			  paths[1]);
		goto out;
	}
	origin_blank = !cmd_probe(origin, paths[1], what, sizeof(what));
	if (!cmd_may_overwrite("initialize", snap, paths[0], roles[0], yes, origin_blank) ||
	    (meta && !cmd_may_overwrite("initialize", meta, paths[2], roles[2], yes, origin_blank)))
		goto out;
	p.origin_bytes = origin->size;
	r = store_format(snap, meta, &p, why, sizeof(why));
	if (r) {
		cmd_error("initialize", "%s", why);
		ret = (r == -EINVAL || r == -ENOSPC) ? EXIT_FAIL : EXIT_FAIL;
		goto out;
	}
	/* Open it once, as the server will, so a store that cannot be opened is never left. */
	cfg = (struct store_config){.snapstore = snap,
				    .metadev = meta,
				    .no_sync_thread = true,
				    .read_only = true,
				    .cache_bytes = 1 << 20};
	r = store_open(&cfg, &s, why, sizeof(why));
	if (r) {
		cmd_error("initialize", "the new store does not open: %s", why);
		goto out;
	}
	l = store_label(s);
	printf("initialized %s%s%s: chunk size %llu, %llu data chunks, metadata region of %llu "
	       "blocks, origin of %llu bytes\n",
	       snap->name, meta ? " with metadata device " : "", meta ? meta->name : "",
	       (unsigned long long)chunk,
	       (unsigned long long)(l->data_blocks >> (l->chunk_shift - DDSNAP_BLOCK_SHIFT)),
	       (unsigned long long)(l->meta_blocks ? l->meta_blocks : l->data_blocks),
	       (unsigned long long)l->origin_bytes);
	store_close(s);
	ret = EXIT_OK;
out:
	bdev_close(meta);
	bdev_close(origin);
	bdev_close(snap);
	return ret;
}
