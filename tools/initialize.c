// SPDX-License-Identifier: GPL-2.0-only
/*
 * initialize.c - `ddsnap initialize [-y] [-c chunksize] <snapstore> <origin> [<metadev>]`:
 * writes a new, empty store (store_format) on the snapstore and the optional metadata
 * device, sized for the origin.
 *
 * It refuses to overwrite anything that looks like a store (a label with a valid or a
 * damaged checksum on either device) unless -y is given: an initialize is the one command
 * that destroys every snapshot at once.  Works on block devices and plain files alike (the
 * sizes come from bdev_open).
 */
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>
#include "commands.h"
#include "bdev.h"
#include "label.h"
#include "store.h"

/* True if @b carries something that looks like a store label (valid or damaged). */
static bool looks_initialized(struct bdev *b)
{
	struct label l;
	int r = label_read(b, -1, &l, NULL, 0);

	return r != -ENODATA && r != -EINVAL;
}

/* True if @a and @b name the same file or block device (two names for one disk). */
static bool same_device(const char *a, const char *b)
{
	struct stat x, y;

	if (!b || stat(a, &x) || stat(b, &y))
		return false;
	if (S_ISBLK(x.st_mode) && S_ISBLK(y.st_mode))
		return x.st_rdev == y.st_rdev;
	return x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int cmd_initialize(int argc, char **argv)
{
	struct bdev *snap = NULL, *origin = NULL, *meta = NULL;
	struct store_format_params p = {0};
	const struct label *l;
	struct store_config cfg;
	struct store *s = NULL;
	bool yes = false;
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
	if (same_device(argv[optind], argv[optind + 1]) ||
	    same_device(argv[optind + 1], argv[optind + 2]) ||
	    same_device(argv[optind], argv[optind + 2])) {
		cmd_error("initialize", "snapstore, origin and metadata device must be different");
		return EXIT_USAGE;
	}

	r = bdev_open(argv[optind], 0, &snap);
	if (r) {
		cmd_error("initialize", "%s: %s", argv[optind], errmsg(r));
		goto out;
	}
	r = bdev_open(argv[optind + 1], BDEV_RDONLY | BDEV_BUFFERED, &origin);
	if (r) {
		cmd_error("initialize", "origin %s: %s", argv[optind + 1], errmsg(r));
		goto out;
	}
	if (argc - optind == 3) {
		r = bdev_open(argv[optind + 2], 0, &meta);
		if (r) {
			cmd_error("initialize", "%s: %s", argv[optind + 2], errmsg(r));
			goto out;
		}
	}
	p.origin_bytes = origin->size;
	if (!yes && (looks_initialized(snap) || (meta && looks_initialized(meta)))) {
		cmd_error("initialize",
			  "%s holds a ddsnap store; -y overwrites it (all snapshots "
			  "are lost)",
			  looks_initialized(snap) ? snap->name : meta->name);
		goto out;
	}
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
