// SPDX-License-Identifier: GPL-2.0-only
/*
 * check.c - `ddsnap check <snapstore> [<metadev>]`: the offline checker.  First the store's
 * part (store_check.h: labels, ring, every block reachable from the newest uberblock, space
 * maps, space accounting for metadata and data), then the engine's (engine_check_offline:
 * every exception has birth < death and is visible to a live snapshot, deadlist totals
 * recounted, overlay counts).  Prints findings and a summary; exits 0 when the store is
 * clean, 3 when it found damage, 1 when it could not run.  Never writes.
 */
#include <getopt.h>
#include <string.h>
#include "commands.h"
#include "blk/bdev.h"
#include "blk/cache.h"
#include "snap/engine.h"
#include "store/label.h"
#include "store/store_check.h"
#include "store/uberblock.h"
#include "snap/volume.h"

/* Cache for the engine's check: it reads every tree node once; upper levels stay. */
#define CHECK_ENGINE_CACHE_BYTES (32ULL << 20)

/* The engine's semantic checks on the newest uberblock's trees.  Returns problems found. */
static u64 check_engine(struct bdev *snap, struct bdev *meta)
{
	struct engine_check_report er = {0};
	struct engine_roots roots = {0};
	struct uberblock ub;
	struct cache *cache;
	struct label l, ml;
	char why[256] = "";
	bool persisted;
	int r;

	if (label_read(snap, -1, &l, NULL, 0) ||
	    uberblock_read_newest(meta, &l, &ub, NULL, NULL, 0))
		return 0; /* store_check reported it */
	volume_roots_of(&ub, &roots);
	persisted = l.feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS;
	/* a crash while the labels were rewritten: the bit on either device counts (as open) */
	if (meta != snap && !label_read(meta, -1, &ml, NULL, 0))
		persisted |= ml.feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS;
	if (!persisted && (roots.deadlists.pieces.blocknr || roots.deadlists.entries.blocknr)) {
		if (ub.scalars[UB_SCALAR_UPGRADE_CURSOR])
			printf("note: persisted deadlists of an interrupted upgrade, %llu entries "
			       "written (the label lacks feature incompat 0x%llx): the next open "
			       "continues it, or frees them and starts again if the store changed "
			       "since\n",
			       (unsigned long long)(ub.scalars[UB_SCALAR_UPGRADE_CURSOR] - 1),
			       (unsigned long long)LABEL_FEATURE_INCOMPAT_DEADLISTS);
		else
			printf("note: persisted deadlists of an interrupted upgrade (the label "
			       "lacks feature incompat 0x%llx): the next open upgrades again and "
			       "frees them\n",
			       (unsigned long long)LABEL_FEATURE_INCOMPAT_DEADLISTS);
	}
	cache = cache_create(meta, CHECK_ENGINE_CACHE_BYTES);
	cache_set_synced_txg(cache, ub.txg);
	r = engine_check_offline(cache, &roots, 1u << l.chunk_shift,
				 l.origin_bytes >> l.chunk_shift, persisted, NULL, &er, why,
				 sizeof(why));
	cache_destroy(cache);
	if (r)
		printf("error: engine: %s\n", why[0] ? why : errmsg(r));
	printf("engine: %llu exceptions, %llu overlay chunks, %llu data chunks, %llu live "
	       "snapshots, %llu invalidated, %llu problems\n",
	       (unsigned long long)er.exceptions, (unsigned long long)er.overlay_chunks,
	       (unsigned long long)er.data_chunks, (unsigned long long)er.live,
	       (unsigned long long)er.invalidated, (unsigned long long)er.problems);
	return r ? MAX(er.problems, 1ULL) : er.problems;
}

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
	if (cmd_open_store("check", argv[optind], argc - optind == 2 ? argv[optind + 1] : NULL,
			   false, &snap, &meta))
		goto out;
	r = store_check(snap, meta, stdout, &rep);
	if (r == -EILSEQ || r == -ENOTBLK)
		ret = EXIT_CORRUPT;
	else if (!r)
		ret = (rep.errors || check_engine(snap, meta ? meta : snap)) ? EXIT_CORRUPT
									     : EXIT_OK;
out:
	bdev_close(meta);
	bdev_close(snap);
	return ret;
}
