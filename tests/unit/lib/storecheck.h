/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * storecheck.h - what `ddsnap check` runs, for tests on devices: the store's check
 * (store_check) and the engine's (engine_check_offline) on the newest uberblock, the
 * persisted deadlists included when the label carries LABEL_FEATURE_INCOMPAT_DEADLISTS.
 * Failures are cmocka failures naming @seed.
 */
#ifndef DDSNAP_STORECHECK_H
#define DDSNAP_STORECHECK_H

#include "blk/bdev.h"
#include "snap/engine.h"
#include "store/label.h"

/*
 * Checks the store on @snap (@meta: its metadata device or NULL) of @chunk-byte chunks and
 * an origin of @origin_chunks: both checks must be clean.  Fills *@er (the engine's report)
 * and *@l (the snapstore's label, with the feature bits of both devices' as open takes
 * them) for the caller's own assertions.
 */
void storecheck_clean(struct bdev *snap, struct bdev *meta, u32 chunk, u64 origin_chunks, u64 seed,
		      struct engine_check_report *er, struct label *l);

#endif
