// SPDX-License-Identifier: GPL-2.0-only
/*
 * storecheck.c - the offline check of a store on test devices (storecheck.h): store_check,
 * then engine_check_offline on the roots of the newest uberblock, as tools/check.c does.
 * Reads only; no state.
 */
#include "storecheck.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include "blk/cache.h"
#include "store/store_check.h"
#include "store/uberblock.h"
#include "snap/volume.h"

void storecheck_clean(struct bdev *snap, struct bdev *meta, u32 chunk, u64 origin_chunks, u64 seed,
		      struct engine_check_report *er, struct label *l)
{
	struct bdev *mdev = meta ? meta : snap;
	struct store_check_report rep;
	struct engine_roots roots = {0};
	struct uberblock ub;
	struct label ml;
	struct cache *c;
	char *text = NULL, why[256] = "";
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	bool persisted;
	int r = store_check(snap, meta, f, &rep);

	fclose(f);
	if (r || rep.errors)
		fail_msg("seed %llu: store check: %d\n%s", (unsigned long long)seed, r, text);
	free(text);
	assert_int_equal(label_read(snap, -1, l, NULL, 0), 0);
	if (meta) {
		/* a crash while the labels were rewritten: a bit on either device counts (open) */
		assert_int_equal(label_read(meta, -1, &ml, NULL, 0), 0);
		l->feature_ro_compat |= ml.feature_ro_compat;
		l->feature_incompat |= ml.feature_incompat;
	}
	persisted = l->feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS;
	assert_int_equal(uberblock_read_newest(mdev, l, &ub, NULL, NULL, 0), 0);
	volume_roots_of(&ub, &roots);
	c = cache_create(mdev, 4ULL << 20);
	cache_set_synced_txg(c, ub.txg);
	r = engine_check_offline(c, &roots, chunk, origin_chunks, persisted, NULL, er, why,
				 sizeof(why));
	cache_destroy(c);
	if (r || er->problems)
		fail_msg("seed %llu: engine check: %d %s", (unsigned long long)seed, r, why);
}
