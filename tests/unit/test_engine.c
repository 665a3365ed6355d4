// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_engine.c - the snapshot engine against the naive model (full copies per snapshot,
 * tests/unit/lib/snapmodel) over long random operation sequences: origin writes (single and
 * batched), snapshot writes (partial and whole), creates, deletes of the oldest, newest or
 * any snapshot, syncs, clean reopens, and power cuts (also in the middle of a txg sync, a
 * copy-out or a copy-in) with log replay, in both durability modes; after every step every
 * chunk of the origin and of every live snapshot is compared byte for byte, engine_check
 * and the changelists are checked often, and every delete must free exactly the unique
 * bytes the engine reported; a third of the creates are of received snapshots, whose
 * provenance must read back after every step (replayed, reopened, deleted with them).
 * Also: the full-store policy (alone and inside the random runs), log failures, engine_check finding damage, discard, and cost tests that count
 * metadata block accesses, not time.  Every random test prints its seed; set
 * ENGINE_TEST_SEED to replay one.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "pdata/btree.h"
#include "snap/engine.h"
#include "lib/enginefix.h"
#include "lib/rng.h"
#include "lib/snapmodel.h"

#define CS	 4096u
#define MAX_TAGS 512 /* live snapshots a test may hold */

/* A pattern that names the chunk and the write, so a misplaced or stale read shows. */
static void fill(u8 *buf, u32 len, u64 chunk, u64 version)
{
	for (u32 i = 0; i < len; i += 16) {
		u64 w[2] = {chunk ^ (0xC0FFEEull << 40), version * 0x100000001b3ull + i};

		memcpy(buf + i, w, MIN(16u, len - i));
	}
}

static u64 test_seed(u64 dflt)
{
	return rnd_seed("ENGINE_TEST_SEED", dflt, NULL);
}

struct world {
	struct efix f;
	struct snapmodel *m;
	struct rnd r;
	u64 version, faults;
	/* overlay chunks equal to the snapshot's old view: a changelist may list them */
	struct same {
		u32 tag;
		u64 chunk;
	} same[64];
	u32 nsame;
	u32 next_tag;
	u64 seed;
	u8 *buf, *data;
	/* full-store mode: a small snapstore, holds, in-use snapshots, priorities */
	bool policy;
	u8 *held, *opened; /* by tag */
	u64 dropped, invalidated, enospc;
	/* provenance by tag: 0 = taken here, else the origin gen (uuid prov_uuid(tag)) */
	u64 *pgen;
	u32 pgen_cap;
};

/* The uuid a random run gives the origin store of received snapshot @tag. */
static void prov_uuid(u32 tag, u8 out[16])
{
	for (int i = 0; i < 16; i++)
		out[i] = (u8)(0xA5 ^ (tag * 31 + (u32)i * 7));
}

static u32 policy_invalidations;

static int count_invalidate(void *priv, u32 tag)
{
	policy_invalidations++;
	return 0;
}

/* Durability modes of the random runs (engine.h): params.caller_flushes. */
#define MODE_CALLER_FLUSHES 1u
/* params.persist_deadlists: engine_check (verify_check, every crash) compares them. */
#define MODE_PERSIST_DL 2u

static void world_init(struct world *w, u64 seed, u64 nchunks, u64 data_chunks, bool faulty,
		       unsigned mode)
{
	struct efix_opts o = {.faulty = faulty,
			      .seed = seed,
			      .caller_flushes = mode & MODE_CALLER_FLUSHES,
			      .persist_deadlists = mode & MODE_PERSIST_DL};

	memset(w, 0, sizeof(*w));
	w->seed = seed;
	w->r.s = seed;
	efix_init_opts(&w->f, CS, nchunks, data_chunks, &o);
	w->m = snapmodel_create(nchunks, CS);
	VERIFY(!posix_memalign((void **)&w->buf, BDEV_ALIGN, CS));
	w->data = xmalloc(CS);
	w->next_tag = 1;
}

static void world_fini(struct world *w)
{
	free(w->pgen);
	efix_fini(&w->f);
	snapmodel_destroy(w->m);
	free(w->buf);
	free(w->data);
}

#define CHECKF(cond, ...)                                                        \
	do {                                                                     \
		if (!(cond)) {                                                   \
			print_error("seed %llu: ", (unsigned long long)w->seed); \
			print_error(__VA_ARGS__);                                \
			print_error("\n");                                       \
			fail();                                                  \
		}                                                                \
	} while (0)

/* Every chunk of the origin and of every live snapshot equals the model; so does every
 * snapshot's provenance. */
static void verify_all(struct world *w, u64 step)
{
	u32 tags[MAX_TAGS], n = snapmodel_tags(w->m, tags, MAX_TAGS);

	for (u32 t = 0; t < n; t++) {
		struct engine_snapinfo info;
		u8 want[16];
		u64 pg = tags[t] < w->pgen_cap ? w->pgen[tags[t]] : 0;

		CHECKF(!engine_snap_info(w->f.e, tags[t], &info), "step %llu: info %u",
		       (unsigned long long)step, tags[t]);
		if (pg)
			prov_uuid(tags[t], want);
		else
			memcpy(want, w->f.params.uuid, 16);
		CHECKF(info.received == !!pg && !memcmp(info.origin.uuid, want, 16) &&
			       info.origin.gen == (pg ? pg : info.gen),
		       "step %llu: snapshot %u provenance (received %d, gen %llu), want %llu",
		       (unsigned long long)step, tags[t], info.received,
		       (unsigned long long)info.origin.gen, (unsigned long long)pg);
	}

	for (u32 t = 0; t <= n; t++) {
		u32 tag = t < n ? tags[t] : ENGINE_HEAD;

		for (u64 c = 0; c < w->f.origin_chunks; c++) {
			int err = efix_read(&w->f, tag, c, w->buf);
			const u8 *want = snapmodel_read(w->m, t < n ? tag : SNAPMODEL_ORIGIN, c);

			CHECKF(!err, "step %llu: read tag %u chunk %llu: %d",
			       (unsigned long long)step, tag, (unsigned long long)c, err);
			CHECKF(!memcmp(w->buf, want, CS), "step %llu: tag %u chunk %llu differs",
			       (unsigned long long)step, tag, (unsigned long long)c);
		}
	}
}

static void verify_check(struct world *w, u64 step)
{
	struct engine_check_report rep;
	char why[256];
	int err = engine_check(w->f.e, NULL, &rep, why, sizeof(why));

	CHECKF(!err, "step %llu: check: %s (%d)", (unsigned long long)step, why, err);
	CHECKF(rep.live == snapmodel_count(w->m), "step %llu: %llu live, model %u",
	       (unsigned long long)step, (unsigned long long)rep.live, snapmodel_count(w->m));
	{
		/* one provenance record per received snapshot in the model, no more */
		u32 tags[MAX_TAGS], n = snapmodel_tags(w->m, tags, MAX_TAGS);
		u64 received = 0;

		for (u32 t = 0; t < n; t++)
			received += tags[t] < w->pgen_cap && w->pgen[tags[t]];
		CHECKF(rep.provenance == received, "step %llu: %llu provenance records, model %llu",
		       (unsigned long long)step, (unsigned long long)rep.provenance,
		       (unsigned long long)received);
	}
	/* Every used data chunk is referenced, and nothing else is used. */
	CHECKF(rep.data_chunks == w->f.databits.n - w->f.databits.nfree - w->f.databits.npending,
	       "step %llu: %llu chunks referenced, %llu allocated", (unsigned long long)step,
	       (unsigned long long)rep.data_chunks,
	       (unsigned long long)(w->f.databits.n - w->f.databits.nfree -
				    w->f.databits.npending));
}

/* Changelists between every pair (and each to the head) equal the model's differences. */
static void verify_changelists(struct world *w, u64 step)
{
	u32 tags[MAX_TAGS], n = snapmodel_tags(w->m, tags, MAX_TAGS);

	for (u32 i = 0; i < n; i++)
		for (u32 j = i + 1; j <= n; j++) {
			u32 b = j < n ? tags[j] : ENGINE_HEAD;
			u64 *chunks, nc, k = 0;
			int err = engine_changelist(w->f.e, tags[i], b, &chunks, &nc, NULL);

			CHECKF(!err, "changelist %u->%u: %d", tags[i], b, err);
			for (u64 c = 0; c < w->f.origin_chunks; c++) {
				bool d = snapmodel_differs(w->m, tags[i],
							   j < n ? b : SNAPMODEL_ORIGIN, c);
				bool in = k < nc && chunks[k] == c;

				for (u32 x = 0; in && !d && x < w->nsame; x++)
					d = w->same[x].chunk == c &&
					    (w->same[x].tag == tags[i] || w->same[x].tag == b);
				CHECKF(d == in, "step %llu: changelist %u->%u chunk %llu: %d vs %d",
				       (unsigned long long)step, tags[i], b, (unsigned long long)c,
				       in, d);
				k += in;
			}
			CHECKF(k == nc, "changelist %u->%u has chunks beyond the volume", tags[i],
			       b);
			free(chunks);
		}
}

/* In full-store mode a copy-needing write may be refused: then it did not happen. */
static bool refused(struct world *w, int err)
{
	if (w->policy && err == -ENOSPC) {
		w->enospc++;
		return true;
	}
	return false;
}

static void op_origin_write(struct world *w)
{
	u64 c = rnd_below(&w->r, w->f.origin_chunks);
	u32 off = (u32)rnd_below(&w->r, 4) * (CS / 4), len = CS - off;
	int err;

	if (rnd_below(&w->r, 2))
		off = 0, len = CS;
	fill(w->data, len, c, ++w->version);
	err = efix_origin_write(&w->f, c, off, len, w->data);
	if (refused(w, err))
		return;
	CHECKF(!err, "origin write %llu: %d", (unsigned long long)c, err);
	snapmodel_origin_write(w->m, c, off, len, w->data);
}

static void op_origin_batch(struct world *w)
{
	u64 c = rnd_below(&w->r, w->f.origin_chunks), n = 1 + rnd_below(&w->r, 6);
	struct engine_range r;
	u64 gen, copied;
	int err;

	n = MIN(n, w->f.origin_chunks - c);
	r = (struct engine_range){c, n};
	err = engine_origin_write(w->f.e, &w->f.tx, &r, 1, &gen, &copied);
	if (err == -EAGAIN && !efix_sync(&w->f))
		err = engine_origin_write(w->f.e, &w->f.tx, &r, 1, &gen, &copied);
	if (refused(w, err))
		return;
	CHECKF(!err, "origin batch %llu+%llu: %d", (unsigned long long)c, (unsigned long long)n,
	       err);
	/* Everything in the range is now safe: a second query copies nothing. */
	err = engine_origin_write(w->f.e, &w->f.tx, &r, 1, &gen, &copied);
	CHECKF(!err && copied == 0, "second query copied %llu", (unsigned long long)copied);
	for (u64 i = c; i < c + n; i++) {
		fill(w->data, CS, i, ++w->version);
		err = efix_origin_write(&w->f, i, 0, CS, w->data);
		CHECKF(!err, "origin write: %d", err);
		snapmodel_origin_write(w->m, i, 0, CS, w->data);
	}
}

static void op_snap_write(struct world *w)
{
	u32 tags[MAX_TAGS], n = snapmodel_tags(w->m, tags, MAX_TAGS), tag;
	u64 c = rnd_below(&w->r, w->f.origin_chunks);
	u32 off = 0, len = CS;
	int err;

	if (!n)
		return;
	tag = tags[rnd_below(&w->r, n)];
	if (rnd_below(&w->r, 2)) {
		off = (u32)rnd_below(&w->r, 8) * 512;
		len = 512 * (u32)(1 + rnd_below(&w->r, (CS - off) / 512));
	}
	fill(w->data, len, c, ++w->version);
	err = efix_snap_write(&w->f, tag, c, off, len, w->data);
	if (refused(w, err))
		return;
	CHECKF(!err, "snap write %u/%llu: %d", tag, (unsigned long long)c, err);
	snapmodel_snap_write(w->m, tag, c, off, len, w->data);
}

static void op_create(struct world *w, u32 max_live)
{
	u32 tag = w->next_tag++;
	int err;

	int8_t prio = (int8_t)rnd_below(&w->r, 3);

	if (snapmodel_count(w->m) >= max_live)
		return;
	if (w->policy && rnd_below(&w->r, 20) == 0)
		prio = ENGINE_PRIO_KEEP;
	if (tag >= w->pgen_cap) {
		u32 cap = MAX(2 * w->pgen_cap, tag + 64);

		w->pgen = xrealloc(w->pgen, cap * sizeof(*w->pgen));
		memset(w->pgen + w->pgen_cap, 0, (cap - w->pgen_cap) * sizeof(*w->pgen));
		w->pgen_cap = cap;
	}
	if (rnd_below(&w->r, 3) == 0) {
		struct engine_provenance prov = {.gen = 1 + rnd_below(&w->r, 1000000)};

		prov_uuid(tag, prov.uuid);
		err = engine_create_from(w->f.e, &w->f.tx, tag, 1000 + tag, prio, &prov);
		w->pgen[tag] = prov.gen;
	} else {
		err = engine_create(w->f.e, &w->f.tx, tag, 1000 + tag, prio);
	}
	CHECKF(!err, "create %u: %d", tag, err);
	VERIFY(!snapmodel_create_snap(w->m, tag));
	if (w->policy && rnd_below(&w->r, 10) == 0) {
		CHECKF(!engine_hold(w->f.e, &w->f.tx, tag, 1), "hold %u", tag);
		w->held[tag] = 1;
	}
	if (w->policy && rnd_below(&w->r, 5) == 0) {
		CHECKF(!engine_open_count(w->f.e, tag, 1), "open %u", tag);
		w->opened[tag] = 1;
	}
}

/*
 * Full-store mode: snapshots the policy dropped leave the model; an invalidated one must
 * fail reads with -EIO and is then forgotten (its device closed, then delete).
 */
static void reconcile(struct world *w)
{
	u32 tags[MAX_TAGS], n = snapmodel_tags(w->m, tags, MAX_TAGS);

	for (u32 i = 0; w->policy && i < n; i++) {
		struct engine_snapinfo info;
		enum engine_map_where where;
		u64 addr;
		int err = engine_snap_info(w->f.e, tags[i], &info);

		if (!err && info.state == ENGINE_SNAP_NORMAL)
			continue;
		CHECKF(!w->held[tags[i]], "held snapshot %u was dropped", tags[i]);
		if (err == -ENODATA) {
			w->dropped++;
		} else {
			CHECKF(!err && info.state == ENGINE_SNAP_INVALID, "snapshot %u: %d",
			       tags[i], err);
			CHECKF(engine_snap_read_map(w->f.e, tags[i], 0, &where, &addr) == -EIO,
			       "invalidated %u still reads", tags[i]);
			if (w->opened[tags[i]])
				CHECKF(!engine_open_count(w->f.e, tags[i], -1), "close %u",
				       tags[i]);
			w->opened[tags[i]] = 0;
			err = engine_delete(w->f.e, &w->f.tx, tags[i]);
			CHECKF(!err, "forget %u: %d", tags[i], err);
			w->invalidated++;
		}
		VERIFY(!snapmodel_delete_snap(w->m, tags[i]));
	}
}

static void op_delete(struct world *w)
{
	u32 tags[MAX_TAGS], n = snapmodel_tags(w->m, tags, MAX_TAGS), tag;
	struct engine_snapinfo info;
	u64 frees, which = rnd_below(&w->r, 4);
	int err;

	if (!n)
		return;
	tag = which == 0 ? tags[0] : which == 1 ? tags[n - 1] : tags[rnd_below(&w->r, n)];
	if (w->policy && w->held[tag]) {
		CHECKF(engine_delete(w->f.e, &w->f.tx, tag) == -EBUSY, "held %u deleted", tag);
		CHECKF(!engine_hold(w->f.e, &w->f.tx, tag, -1), "release %u", tag);
		w->held[tag] = 0;
	}
	if (w->policy && w->opened[tag]) {
		CHECKF(!engine_open_count(w->f.e, tag, -1), "close %u", tag);
		w->opened[tag] = 0;
	}
	err = engine_snap_info(w->f.e, tag, &info);
	CHECKF(!err, "info %u: %d", tag, err);
	frees = w->f.databits.frees;
	err = engine_delete(w->f.e, &w->f.tx, tag);
	CHECKF(!err, "delete %u: %d", tag, err);
	/* unique bytes is exactly what the delete freed */
	CHECKF((w->f.databits.frees - frees) * CS == info.unique_bytes,
	       "delete %u freed %llu chunks, unique said %llu bytes", tag,
	       (unsigned long long)(w->f.databits.frees - frees),
	       (unsigned long long)info.unique_bytes);
	VERIFY(!snapmodel_delete_snap(w->m, tag));
}

/*
 * A power cut, half the time in the middle of a txg sync, a copy-out or a snapshot copy-in
 * (the Nth write to the metadata or snapstore device dies).  What was acknowledged must
 * survive; what failed must not have happened (the model is updated only on success).
 */
static int op_crash(struct world *w)
{
	if (rnd_below(&w->r, 2)) {
		u64 which = rnd_below(&w->r, 3);
		struct bdev *dev = which == 0 ? w->f.meta : w->f.snapstore;
		u64 c = rnd_below(&w->r, w->f.origin_chunks);
		u32 tags[MAX_TAGS], n = snapmodel_tags(w->m, tags, MAX_TAGS);

		bdev_faulty_die_after(dev, 1 + rnd_below(&w->r, 8));
		fill(w->data, CS, c, ++w->version);
		if (which == 0) {
			w->faults += efix_sync(&w->f) != 0;
		} else if (which == 1) {
			if (!efix_origin_write(&w->f, c, 0, CS, w->data))
				snapmodel_origin_write(w->m, c, 0, CS, w->data);
			else
				w->faults++;
		} else if (n) {
			/* partial, so the engine copies in (see engine_snap_write_map) */
			u32 tag = tags[rnd_below(&w->r, n)];

			if (!efix_snap_write(&w->f, tag, c, 512, CS - 512, w->data)) {
				snapmodel_snap_write(w->m, tag, c, 512, CS - 512, w->data);
			} else {
				/* The copy-in may be in the overlay already, unchanged. */
				w->faults++;
				if (w->nsame < ARRAY_SIZE(w->same))
					w->same[w->nsame++] = (struct same){tag, c};
			}
		}
	}
	return efix_crash_reopen(&w->f, rnd_below(&w->r, 2));
}

/*
 * The random sequence: origin writes (single and batched), snapshot writes, creates, deletes
 * (oldest, newest, random), syncs, clean reopens and, with @crashes, power cuts with replay.
 */
static void run_random(u64 seed, u64 steps, bool crashes, bool policy, unsigned mode)
{
	struct world ww, *w = &ww;

	world_init(w, seed, 24, policy ? 40 : 4096, crashes, mode);
	if (policy) {
		w->policy = true;
		w->held = xzalloc(steps + 2);
		w->opened = xzalloc(steps + 2);
		engine_close(w->f.e);
		w->f.params.reserve_chunks = 2;
		w->f.params.invalidate = count_invalidate;
		VERIFY(!engine_open(&w->f.params, &w->f.roots, &w->f.e));
	}
	print_message("engine model: seed %llu, %llu steps%s%s%s%s\n", (unsigned long long)seed,
		      (unsigned long long)steps, crashes ? ", with crashes" : "",
		      policy ? ", full store" : "",
		      mode & MODE_CALLER_FLUSHES ? ", caller flushes" : "",
		      mode & MODE_PERSIST_DL ? ", persisted deadlists" : "");
	for (u64 step = 0; step < steps; step++) {
		u64 op = rnd_below(&w->r, 100);
		bool reopened = false;
		int err = 0;

		if (op < 35)
			op_origin_write(w);
		else if (op < 45)
			op_origin_batch(w);
		else if (op < 55)
			op_snap_write(w);
		else if (op < 72)
			op_create(w, 8);
		else if (op < 86)
			op_delete(w);
		else if (op < 94)
			err = efix_sync(&w->f);
		else if (op < (crashes ? 92u : 97u))
			err = efix_reopen(&w->f), reopened = true;
		else if (crashes)
			err = op_crash(w), reopened = true;
		CHECKF(!err, "step %llu: sync/reopen/crash: %d", (unsigned long long)step, err);
		/* what the server does after each call (see engine.h, caller_flushes) */
		err = efix_commit(&w->f);
		CHECKF(!err, "step %llu: commit: %d", (unsigned long long)step, err);
		if (w->policy && reopened) /* a reopen forgets transient opens */
			memset(w->opened, 0, steps + 2);
		reconcile(w);
		verify_all(w, step);
		if (step % 7 == 0)
			verify_check(w, step);
		if (step % 11 == 0)
			verify_changelists(w, step);
	}
	verify_check(w, steps);
	{
		struct engine_status st;

		engine_status(w->f.e, &st);
		print_message(
			"  %llu copy-outs, %llu exceptions now, %llu frees, %llu syncs, "
			"%llu records replayed, %llu ops failed by injected faults, gen %llu\n",
			(unsigned long long)st.copyouts, (unsigned long long)st.exceptions,
			(unsigned long long)w->f.databits.frees, (unsigned long long)w->f.syncs,
			(unsigned long long)w->f.replayed, (unsigned long long)w->faults,
			(unsigned long long)st.gen);
		if (policy)
			print_message(
				"  full store: %llu deleted and %llu invalidated by the policy, "
				"%llu writes refused\n",
				(unsigned long long)w->dropped, (unsigned long long)w->invalidated,
				(unsigned long long)w->enospc);
	}
	free(w->held);
	free(w->opened);
	world_fini(w);
}

static void test_engine__model_random(void **state)
{
	u64 seed = test_seed(1);

	for (u64 s = seed; s < seed + 4; s++)
		run_random(s, 600, false, false, 0);
}

static void test_engine__model_crash_replay(void **state)
{
	u64 seed = test_seed(100);

	for (u64 s = seed; s < seed + 4; s++)
		run_random(s, 500, true, false, false);
	/* the server's group-commit mode: flushes after the engine call, outside its lock */
	for (u64 s = seed + 4; s < seed + 7; s++)
		run_random(s, 500, true, false, MODE_CALLER_FLUSHES);
	/* the persisted deadlists kept through the same crashes and replays */
	for (u64 s = seed + 10; s < seed + 14; s++)
		run_random(s, 500, true, false, (unsigned)(s % 2) | MODE_PERSIST_DL);
}

/*
 * Many snapshots over few chunks: hundreds of live snapshots, deadlists with many sublists,
 * deletes anywhere; checked against the model every 50 steps, accounting at every delete.
 */
static void many_snapshots(u64 seed, u64 steps, unsigned mode)
{
	struct world ww, *w = &ww;

	world_init(w, seed, 16, 1 << 16, false, mode);
	print_message("engine model: seed %llu, %llu steps, up to 300 live snapshots%s\n",
		      (unsigned long long)seed, (unsigned long long)steps,
		      mode & MODE_PERSIST_DL ? ", persisted deadlists" : "");
	for (u64 step = 0; step < steps; step++) {
		u64 op = rnd_below(&w->r, 100);

		if (op < 45)
			op_origin_write(w);
		else if (op < 50)
			op_snap_write(w);
		else if (op < 85)
			op_create(w, 300);
		else
			op_delete(w);
		if (step % 50 == 49) {
			verify_all(w, step);
			verify_check(w, step);
		}
		if (step % 1000 == 999)
			CHECKF(!efix_reopen(&w->f), "reopen");
	}
	verify_all(w, steps);
	verify_check(w, steps);
	print_message("  %u live snapshots at the end\n", snapmodel_count(w->m));
	world_fini(w);
}

static void test_engine__model_many_snapshots(void **state)
{
	u64 seed = test_seed(500);

	many_snapshots(seed, 4000, 0);
	/* deletes anywhere among hundreds of snapshots: the persisted pieces they free */
	many_snapshots(seed + 1, 2000, MODE_PERSIST_DL);
}

/* The same with a snapstore of 40 chunks: the full-store policy acts all the time. */
static void test_engine__model_full_store(void **state)
{
	u64 seed = test_seed(300);

	for (u64 s = seed; s < seed + 3; s++)
		run_random(s, 500, false, true, 0);
	for (u64 s = seed + 3; s < seed + 6; s++)
		run_random(s, 500, true, true, (unsigned)(s % 2)); /* every mode */
	for (u64 s = seed + 6; s < seed + 8; s++)
		run_random(s, 500, true, true, (unsigned)(s % 2) | MODE_PERSIST_DL);
}

static u32 invalidated_tag;

static int note_invalidate(void *priv, u32 tag)
{
	invalidated_tag = tag;
	return 0;
}

/* Writes @n distinct chunks from @first with fresh data (copy-outs if snapshots need them). */
static int write_chunks(struct efix *f, u64 first, u64 n, u64 version)
{
	u8 *data = xmalloc(CS);
	int err = 0;

	for (u64 c = first; c < first + n && !err; c++) {
		fill(data, CS, c, version);
		err = efix_origin_write(f, c, 0, CS, data);
	}
	free(data);
	return err;
}

/*
 * The full-store policy: the oldest unheld snapshot of the lowest priority goes first; one in
 * use is invalidated (reads fail with -EIO, status says so) after its device was told; a held
 * or ENGINE_PRIO_KEEP snapshot is never dropped, and then copy-needing writes get -ENOSPC
 * while writes that need no copy still pass.
 */
/*
 * Sets field @field (0 birth, 1 address) of entry 0 of the one-leaf exception tree at
 * @roots to @val on the metadata device, re-sealing the leaf and the root pointer's checksum:
 * a crafted leaf whose every checksum is valid.  Returns the original block (free it).
 */
static u8 *craft_exception(struct efix *f, struct engine_roots *roots, unsigned field, u64 val)
{
	u64 blocknr = roots->exceptions.blocknr;
	u8 *blk = NULL, *orig = xmalloc(DDSNAP_BLOCK_SIZE);
	struct btree_node_disk *n;
	unsigned cap = BTREE_NODE_PAYLOAD / (16 + sizeof(struct exception_disk));

	assert_int_equal(posix_memalign((void **)&blk, BDEV_ALIGN, DDSNAP_BLOCK_SIZE), 0);
	assert_int_equal(bdev_read(f->meta, blk, DDSNAP_BLOCK_SIZE, blocknr * DDSNAP_BLOCK_SIZE),
			 0);
	memcpy(orig, blk, DDSNAP_BLOCK_SIZE);
	n = (struct btree_node_disk *)blk;
	assert_int_equal(n->level, 0);
	assert_int_equal(le16_to_cpu(n->value_size), sizeof(struct exception_disk));
	btree_put_le64(n->payload + (size_t)cap * 16, field, val);
	roots->exceptions.csum =
		block_seal(blk, &btree_leaf_block_type, blocknr, le64_to_cpu(n->hdr.txg));
	assert_int_equal(bdev_write(f->meta, blk, DDSNAP_BLOCK_SIZE, blocknr * DDSNAP_BLOCK_SIZE),
			 0);
	free(blk);
	return orig;
}

/* Opens a second engine on @f's devices with @roots; returns engine_open's result. */
static int open_on(struct efix *f, const struct engine_roots *roots)
{
	struct engine_params p = f->params;
	struct engine *e = NULL;
	int r;

	p.cache = cache_create(f->meta, 1 << 20);
	r = engine_open(&p, roots, &e);
	if (!r)
		engine_close(e);
	cache_destroy(p.cache);
	return r;
}

/*
 * Issue 16: tree entries with impossible values under valid checksums (a crafted leaf, or a
 * bug) are refused at open with -EILSEQ instead of served to the kernel: an exception whose
 * data lies outside the data region (40 chunks here), and one born no earlier than it died.
 */
static void test_engine__impossible_entry_refused(void **state)
{
	static const struct {
		unsigned field;
		u64 val;
	} bad[] = {{1, 40}, {1, 1ULL << 40}, {0, 1000}};
	struct efix f;

	efix_init(&f, CS, 64, 40, false, 1);
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0);
	assert_int_equal(write_chunks(&f, 0, 4, 1), 0);
	assert_int_equal(efix_sync(&f), 0);
	assert_int_equal(open_on(&f, &f.roots), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct engine_roots roots = f.roots;
		u8 *orig = craft_exception(&f, &roots, bad[i].field, bad[i].val);

		assert_int_equal(open_on(&f, &roots), -EILSEQ);
		assert_int_equal(bdev_write(f.meta, orig, DDSNAP_BLOCK_SIZE,
					    roots.exceptions.blocknr * DDSNAP_BLOCK_SIZE),
				 0);
		free(orig);
	}
	/* The data region's last chunk is fine: the test above is the bound, not an accident. */
	{
		struct engine_roots roots = f.roots;
		u8 *orig = craft_exception(&f, &roots, 1, 39);

		assert_int_equal(open_on(&f, &roots), 0);
		assert_int_equal(bdev_write(f.meta, orig, DDSNAP_BLOCK_SIZE,
					    roots.exceptions.blocknr * DDSNAP_BLOCK_SIZE),
				 0);
		free(orig);
	}
	assert_int_equal(open_on(&f, &f.roots), 0);
	efix_fini(&f);
}

/*
 * The read side of the same rule: an overlay entry (not read at open) whose address lies
 * outside the data region is never handed to the kernel.  The entry is real; the data region
 * the reopened engine is told about excludes it.
 */
static void test_engine__impossible_overlay_address_refused(void **state)
{
	static u8 data[CS];
	enum engine_map_where where;
	struct engine_params p;
	struct engine *e = NULL;
	struct efix f;
	u64 addr, addr2;

	efix_init(&f, CS, 64, 40, false, 1);
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0);
	memset(data, 0x5a, sizeof(data));
	assert_int_equal(efix_snap_write(&f, 1, 7, 0, CS, data), 0);
	assert_int_equal(efix_sync(&f), 0);
	assert_int_equal(engine_snap_read_map(f.e, 1, 7, &where, &addr), 0);
	assert_int_equal(where, ENGINE_MAP_SNAPSTORE);

	p = f.params;
	p.cache = cache_create(f.meta, 1 << 20);
	p.data_first = addr + 1;
	assert_int_equal(engine_open(&p, &f.roots, &e), 0);
	assert_int_equal(engine_snap_read_map(e, 1, 7, &where, &addr2), -EILSEQ);
	/* chunks without an overlay entry still map to the origin */
	assert_int_equal(engine_snap_read_map(e, 1, 8, &where, &addr2), 0);
	assert_int_equal(where, ENGINE_MAP_ORIGIN);
	engine_close(e);
	cache_destroy(p.cache);
	efix_fini(&f);
}

static void test_engine__full_store_policy(void **state)
{
	struct engine_snapinfo info[8];
	struct engine_status st;
	enum engine_map_where where;
	struct efix f;
	u64 addr;

	efix_init(&f, CS, 64, 40, false, 1);
	engine_close(f.e);
	f.params.reserve_chunks = 4;
	f.params.invalidate = note_invalidate;
	VERIFY(!engine_open(&f.params, &f.roots, &f.e));

	/* Each snapshot gets 12/12/10 chunks that only it sees (rewrites of chunks 0..11). */
	assert_int_equal(engine_create(f.e, &f.tx, 10, 1, 1), 0); /* prio 1, oldest */
	assert_int_equal(write_chunks(&f, 0, 12, 1), 0);
	assert_int_equal(engine_create(f.e, &f.tx, 11, 2, 0), 0); /* prio 0: first victim */
	assert_int_equal(write_chunks(&f, 0, 12, 2), 0);
	assert_int_equal(engine_create(f.e, &f.tx, 12, 3, 0), 0);
	assert_int_equal(engine_open_count(f.e, 12, 1), 0); /* in use */
	assert_int_equal(write_chunks(&f, 0, 10, 3), 0);    /* 34 used, 6 free */
	assert_int_equal(efix_sync(&f), 0);
	assert_int_equal(engine_snap_info(f.e, 11, info), 0);
	assert_int_equal(info[0].unique_bytes, 12 * CS);

	/* 4 more copy-outs would cut into the reserve: 11 (prio 0, oldest) is deleted. */
	assert_int_equal(write_chunks(&f, 34, 4, 4), 0);
	engine_status(f.e, &st);
	assert_int_equal(st.policy_deletes, 1);
	assert_int_equal(st.policy_invalidates, 0);
	assert_int_equal(engine_snap_info(f.e, 11, info), -ENODATA);
	assert_int_equal(engine_snap_read_map(f.e, 10, 0, &where, &addr), 0);
	assert_int_equal(where, ENGINE_MAP_SNAPSTORE);

	/* 20 copy-outs: the next victim is 12 (prio 0, in use), invalidated, its device told. */
	assert_int_equal(write_chunks(&f, 38, 20, 5), 0);
	engine_status(f.e, &st);
	assert_int_equal(st.policy_deletes, 1);
	assert_int_equal(st.policy_invalidates, 1);
	assert_int_equal(invalidated_tag, 12);
	assert_int_equal(engine_snap_read_map(f.e, 12, 0, &where, &addr), -EIO);
	assert_int_equal(engine_list(f.e, 0, info, 8), 2);
	assert_int_equal(info[0].tag, 10);
	assert_int_equal(info[1].tag, 12);
	assert_int_equal(info[1].state, ENGINE_SNAP_INVALID);
	/* A page from position 1: only the invalidated one; past the end: nothing. */
	memset(info, 0, sizeof(info[0]) * 2);
	assert_int_equal(engine_list(f.e, 1, info, 8), 2);
	assert_int_equal(info[0].tag, 12);
	assert_int_equal(info[1].tag, 0);
	assert_int_equal(engine_list(f.e, 5, info, 8), 2);

	/* 10 is held: nothing can go, so copy-needing writes fail and change nothing. */
	assert_int_equal(engine_hold(f.e, &f.tx, 10, 1), 0);
	assert_int_equal(write_chunks(&f, 0, 64, 6), -ENOSPC);
	engine_status(f.e, &st);
	assert_true(st.enospc >= 1);
	assert_int_equal(st.live, 1);
	/* A chunk already copied out in this gen, or never seen by 10, needs no space. */
	assert_int_equal(write_chunks(&f, 0, 1, 7), 0);
	/* Deleting a held snapshot is refused; releasing the hold lets it go. */
	assert_int_equal(engine_delete(f.e, &f.tx, 10), -EBUSY);
	assert_int_equal(engine_hold(f.e, &f.tx, 10, -1), 0);
	assert_int_equal(engine_delete(f.e, &f.tx, 10), 0);
	/* The invalidated entry is forgotten by delete once its device is gone. */
	assert_int_equal(engine_delete(f.e, &f.tx, 12), -EBUSY);
	assert_int_equal(engine_open_count(f.e, 12, -1), 0);
	assert_int_equal(engine_delete(f.e, &f.tx, 12), 0);
	engine_status(f.e, &st);
	assert_int_equal(st.live + st.invalidated, 0);
	assert_int_equal(st.exceptions, 0);
	assert_int_equal(efix_reopen(&f), 0);
	efix_fini(&f);
}

/* Without autodelete the policy never drops anything: ENOSPC at the reserve. */
static void test_engine__full_store_no_autodelete(void **state)
{
	struct engine_status st;
	struct efix f;

	efix_init(&f, CS, 32, 10, false, 1);
	engine_close(f.e);
	f.params.autodelete = false;
	f.params.reserve_chunks = 2;
	VERIFY(!engine_open(&f.params, &f.roots, &f.e));
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0);
	assert_int_equal(write_chunks(&f, 0, 8, 1), 0);
	assert_int_equal(write_chunks(&f, 8, 1, 1), -ENOSPC);
	engine_status(f.e, &st);
	assert_int_equal(st.live, 1);
	assert_int_equal(st.copyouts, 8);
	efix_fini(&f);
}

/*
 * Log failures: a record that cannot be appended leaves nothing behind; a flush that fails
 * keeps failing the request (and its retries) until a flush succeeds, so nothing is ever
 * reported safe on the strength of an unflushed record.
 */
static void test_engine__log_failures(void **state)
{
	struct engine_range r = {0, 4};
	struct engine_status st;
	u64 copied, avail, addr;
	struct efix f;

	efix_init(&f, CS, 16, 64, false, 1);
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0);
	avail = f.databits.nfree;

	f.fail_append = -EWOULDBLOCK;
	assert_int_equal(engine_origin_write(f.e, &f.tx, &r, 1, NULL, &copied), -EWOULDBLOCK);
	assert_int_equal(engine_create(f.e, &f.tx, 2, 2, 0), -EWOULDBLOCK);
	assert_int_equal(engine_snap_write_map(f.e, &f.tx, 1, 3, &addr), -EWOULDBLOCK);
	assert_int_equal(engine_delete(f.e, &f.tx, 1), -EWOULDBLOCK);
	engine_status(f.e, &st);
	assert_int_equal(st.exceptions, 0);
	assert_int_equal(st.live, 1);
	assert_int_equal(st.overlay_chunks, 0);
	assert_false(st.failed);
	assert_int_equal(f.databits.nfree + f.databits.npending, avail);
	f.fail_append = 0;

	f.fail_flush = -EIO;
	assert_int_equal(engine_origin_write(f.e, &f.tx, &r, 1, NULL, &copied), -EIO);
	assert_int_equal(engine_origin_write(f.e, &f.tx, &r, 1, NULL, &copied), -EIO);
	assert_int_equal(engine_snap_write_map(f.e, &f.tx, 1, 8, &addr), -EIO);
	assert_int_equal(engine_snap_write_map(f.e, &f.tx, 1, 8, &addr), -EIO);
	f.fail_flush = 0;
	assert_int_equal(engine_origin_write(f.e, &f.tx, &r, 1, NULL, &copied), 0);
	assert_int_equal(copied, 0); /* copied out by the first attempt, now durable */
	assert_int_equal(engine_snap_write_map(f.e, &f.tx, 1, 8, &addr), 0);
	engine_status(f.e, &st);
	assert_int_equal(st.exceptions, 4);
	assert_int_equal(st.overlay_chunks, 1);
	/* what was logged survives a crash */
	assert_int_equal(efix_crash_reopen(&f, false), 0);
	engine_status(f.e, &st);
	assert_int_equal(st.exceptions, 4);
	assert_int_equal(st.overlay_chunks, 1);
	efix_fini(&f);
}

/* Inserts a raw exception into a copy of the synced tree; returns the roots that see it. */
static struct engine_roots tamper(struct efix *f, u64 chunk, u64 death, u64 birth, u64 addr)
{
	struct engine_roots roots = f->roots;
	struct btree *t;
	u8 k[16], v[16];

	assert_int_equal(
		btree_open(&engine_exception_tree_type, f->cache, &f->roots.exceptions, &t), 0);
	btree_put_le64(k, 0, chunk);
	btree_put_le64(k, 1, death);
	btree_put_le64(v, 0, birth);
	btree_put_le64(v, 1, addr);
	assert_int_equal(btree_insert(t, &f->tx, k, v, BTREE_NOOVERWRITE), 0);
	assert_int_equal(btree_sync(t, &f->tx), 0);
	btree_root(t, &roots.exceptions);
	btree_close(t);
	return roots;
}

/*
 * engine_check, online and offline (read-only, as `ddsnap check` runs it): a clean store
 * passes with the right counts; an exception no live snapshot can see, and two exceptions
 * sharing a data chunk, are reported.
 */
static void test_engine__check_finds_damage(void **state)
{
	struct engine_check_report rep;
	struct engine_roots bad;
	enum engine_map_where where;
	struct efix f;
	char why[256];
	u64 addr;

	efix_init(&f, CS, 64, 256, false, 1);
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0); /* gen 1 */
	assert_int_equal(write_chunks(&f, 0, 10, 1), 0);
	assert_int_equal(engine_create(f.e, &f.tx, 2, 2, 0), 0); /* gen 2 */
	assert_int_equal(write_chunks(&f, 0, 5, 2), 0);
	assert_int_equal(efix_sync(&f), 0);
	assert_int_equal(engine_check(f.e, NULL, &rep, why, sizeof(why)), 0);
	assert_int_equal(rep.exceptions, 15);
	assert_int_equal(rep.live, 2);
	assert_int_equal(engine_check_offline(f.cache, &f.roots, CS, 64, f.persist_deadlists, NULL,
					      &rep, why, sizeof(why)),
			 0);
	assert_int_equal(rep.exceptions, 15);
	assert_int_equal(rep.data_chunks, 15);

	bad = tamper(&f, 20, 1, 0, 200); /* visible to none: 1 <= gen < 1 */
	assert_int_equal(engine_check_offline(f.cache, &bad, CS, 64, f.persist_deadlists, NULL,
					      &rep, why, sizeof(why)),
			 -EILSEQ);
	assert_non_null(strstr(why, "visible to no live snapshot"));

	assert_int_equal(engine_snap_read_map(f.e, 1, 0, &where, &addr), 0);
	assert_int_equal(where, ENGINE_MAP_SNAPSTORE);
	bad = tamper(&f, 21, 3, 0, addr); /* shares snapshot 1's copy of chunk 0 */
	assert_int_equal(engine_check_offline(f.cache, &bad, CS, 64, f.persist_deadlists, NULL,
					      &rep, why, sizeof(why)),
			 -EILSEQ);
	assert_non_null(strstr(why, "used twice"));
	efix_fini(&f);
}

static int feature_calls, feature_err;

static int count_feature(void *priv)
{
	feature_calls++;
	return feature_err;
}

/*
 * Provenance (engine_create_from): the label bit is asked for before anything is logged (and
 * a failure there creates nothing); a received snapshot's provenance survives a crash before
 * any sync (replayed from its one log record), a clean reopen, and goes with the snapshot on
 * delete, replayed too; a local snapshot reads as this store's uuid and its gen.  engine_check
 * counts the records and reports one whose snapshot does not exist, which a writable open
 * refuses.
 */
static void test_engine__provenance(void **state)
{
	struct engine_provenance prov = {.gen = 77}, bad = {.gen = 0};
	struct engine_check_report rep;
	struct engine_snapinfo info;
	struct engine_roots roots;
	struct engine *e2;
	struct btree *t;
	struct efix f;
	char why[256];
	u8 k[8];
	struct provenance_disk d = {.gen = cpu_to_le64(5)};

	memcpy(prov.uuid, "store-A-uuid-16b", 16);
	efix_init(&f, CS, 64, 256, true, 3);
	memcpy(f.params.uuid, "this-store-uuid!", 16);
	f.params.set_feature = count_feature;
	assert_int_equal(efix_reopen(&f), 0);
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0);
	assert_int_equal(feature_calls, 0);
	assert_int_equal(engine_snap_info(f.e, 1, &info), 0);
	assert_false(info.received);
	assert_memory_equal(info.origin.uuid, "this-store-uuid!", 16);
	assert_int_equal(info.origin.gen, info.gen);

	assert_int_equal(engine_create_from(f.e, &f.tx, 2, 2, 0, &bad), -EINVAL);
	feature_err = -EIO;
	assert_int_equal(engine_create_from(f.e, &f.tx, 2, 2, 0, &prov), -EIO);
	assert_int_equal(engine_snap_info(f.e, 2, &info), -ENODATA);
	feature_err = 0;
	assert_int_equal(engine_create_from(f.e, &f.tx, 2, 2, 0, &prov), 0);
	assert_int_equal(feature_calls, 2);
	assert_int_equal(engine_create_from(f.e, &f.tx, 3, 3, 0, &prov), 0);
	assert_int_equal(engine_create_from(f.e, &f.tx, 3, 3, 0, &prov), -EEXIST);
	/* power cut before any sync: both come back from the log */
	assert_int_equal(efix_crash_reopen(&f, false), 0);
	for (u32 tag = 2; tag <= 3; tag++) {
		assert_int_equal(engine_snap_info(f.e, tag, &info), 0);
		assert_true(info.received);
		assert_memory_equal(info.origin.uuid, "store-A-uuid-16b", 16);
		assert_int_equal(info.origin.gen, 77);
	}
	assert_int_equal(engine_check(f.e, NULL, &rep, why, sizeof(why)), 0);
	assert_int_equal(rep.provenance, 2);
	/* synced and reopened: from the tree */
	assert_int_equal(efix_reopen(&f), 0);
	assert_int_equal(engine_snap_info(f.e, 3, &info), 0);
	assert_true(info.received);
	assert_int_equal(info.origin.gen, 77);
	/* a delete takes the record with it, replayed after a cut too */
	assert_int_equal(engine_delete(f.e, &f.tx, 2), 0);
	assert_int_equal(efix_crash_reopen(&f, false), 0);
	assert_int_equal(engine_snap_info(f.e, 2, &info), -ENODATA);
	assert_int_equal(efix_sync(&f), 0);
	assert_int_equal(engine_check_offline(f.cache, &f.roots, CS, 64, f.persist_deadlists, NULL,
					      &rep, why, sizeof(why)),
			 0);
	assert_int_equal(rep.provenance, 1);
	assert_int_equal(rep.live, 2);

	/* a record of no snapshot: check reports it, a writable open refuses the store */
	roots = f.roots;
	assert_int_equal(btree_open(&engine_provenance_tree_type, f.cache, &roots.provenance, &t),
			 0);
	btree_put_le64(k, 0, 9);
	assert_int_equal(btree_insert(t, &f.tx, k, &d, BTREE_NOOVERWRITE), 0);
	assert_int_equal(btree_sync(t, &f.tx), 0);
	btree_root(t, &roots.provenance);
	btree_close(t);
	assert_int_equal(engine_check_offline(f.cache, &roots, CS, 64, f.persist_deadlists, NULL,
					      &rep, why, sizeof(why)),
			 -EILSEQ);
	assert_non_null(strstr(why, "provenance record of snapshot 9, which does not exist"));
	assert_int_equal(engine_open(&f.params, &roots, &e2), -EILSEQ);
	efix_fini(&f);
}

/*
 * Replay applies records in log order, so a copy-out the engine wrote always carries the
 * current gen as its death and the chunk's last death as its birth, and an address in the
 * data space.  A record that does not (a buggy or foreign writer: fuzz_engine_replay found
 * both) is refused and changes nothing; the engine's own still replays.
 */
static void test_engine__replay_refuses_foreign_copyouts(void **state)
{
	struct engine_logrec_disk r;
	struct engine_check_report rep;
	char why[256];
	u8 *buf = xmalloc(CS);
	struct efix f;

	efix_init(&f, CS, 16, 64, false, 1);
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0);
	fill(buf, CS, 4, 1);
	assert_int_equal(efix_origin_write(&f, 4, 0, CS, buf), 0); /* {4, 0, 2} */
	assert_int_equal(engine_create(f.e, &f.tx, 2, 2, 0), 0);
	assert_int_equal(engine_create(f.e, &f.tx, 3, 3, 0), 0); /* gen 4 now */
	memset(&r, 0, sizeof(r));
	r.chunk = cpu_to_le64(4);
	r.birth = cpu_to_le64(2); /* chunk 4's last death */
	r.death = cpu_to_le64(3); /* not the current gen */
	r.addr = cpu_to_le64(40);
	assert_int_equal(engine_replay(f.e, &f.tx, ENGINE_LOG_COPYOUT_ORDERED, &r, sizeof(r)),
			 -EPROTO);
	r.death = cpu_to_le64(4);
	r.birth = cpu_to_le64(0); /* not chunk 4's last death */
	assert_int_equal(engine_replay(f.e, &f.tx, ENGINE_LOG_COPYOUT_ORDERED, &r, sizeof(r)),
			 -EPROTO);
	r.birth = cpu_to_le64(2);
	r.addr = cpu_to_le64(UINT64_MAX); /* claim of [addr, addr + 1) would wrap */
	assert_int_equal(engine_replay(f.e, &f.tx, ENGINE_LOG_COPYOUT_ORDERED, &r, sizeof(r)),
			 -EINVAL);
	r.addr = cpu_to_le64(40);
	assert_int_equal(engine_replay(f.e, &f.tx, ENGINE_LOG_COPYOUT_ORDERED, &r, sizeof(r)), 0);
	assert_int_equal(engine_check(f.e, NULL, &rep, why, sizeof(why)), 0);
	assert_int_equal(rep.problems, 0);
	assert_int_equal(rep.data_chunks, 2);
	free(buf);
	efix_fini(&f);
}

/*
 * A snapshot write of several chunks in one call (as the server asks for a kernel query):
 * a chunk named twice gets one mapping, every new one holds the snapshot's view, and a log
 * that refuses the first record leaves nothing allocated and asks again from that chunk.
 */
static void test_engine__snap_write_many(void **state)
{
	struct engine_snap_chunk c[4] = {{.chunk = 3}, {.chunk = 4}, {.chunk = 3}, {.chunk = 5}};
	u8 *want = xmalloc(CS), *buf = xmalloc(CS);
	struct engine_status st;
	struct efix f;
	u64 avail;

	efix_init(&f, CS, 16, 64, false, 1);
	for (u64 k = 3; k <= 5; k++) {
		fill(want, CS, k, 1);
		assert_int_equal(efix_origin_write(&f, k, 0, CS, want), 0);
	}
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0);
	avail = f.databits.nfree;
	f.fail_append = -EWOULDBLOCK;
	assert_int_equal(engine_snap_write(f.e, &f.tx, 1, c, 4), 0);
	assert_int_equal(c[0].err, -EWOULDBLOCK);
	assert_int_equal(f.databits.nfree + f.databits.npending, avail);
	f.fail_append = 0;
	for (u32 i = 0; i < 4; i++)
		c[i].err = 0;
	assert_int_equal(engine_snap_write(f.e, &f.tx, 1, c, 4), 4);
	for (u32 i = 0; i < 4; i++)
		assert_int_equal(c[i].err, 0);
	assert_int_equal(c[2].addr, c[0].addr);
	assert_int_not_equal(c[1].addr, c[0].addr);
	engine_status(f.e, &st);
	assert_int_equal(st.overlay_chunks, 3);
	for (u32 i = 0; i < 4; i++) {
		fill(want, CS, c[i].chunk, 1);
		assert_int_equal(bdev_read(f.snapstore, buf, CS, c[i].addr * CS), 0);
		assert_memory_equal(buf, want, CS);
	}
	/* asked again: the same mappings, nothing new */
	assert_int_equal(engine_snap_write(f.e, &f.tx, 1, c + 1, 3), 3);
	assert_int_equal(c[2].addr, c[0].addr);
	engine_status(f.e, &st);
	assert_int_equal(st.overlay_chunks, 3);
	assert_int_equal(efix_crash_reopen(&f, false), 0);
	engine_status(f.e, &st);
	assert_int_equal(st.overlay_chunks, 3);
	free(want);
	free(buf);
	efix_fini(&f);
}

/*
 * A copy-out record without a checksum (ENGINE_LOG_COPYOUT_ORDERED), as servers before
 * 2026-12 logged them with the log on the snapstore, is replayed as they meant it: the copy
 * is trusted, never redone from the origin (whose write was released on the strength of
 * that record and holds newer data).  The engine writes no such record any more, so this one
 * is made by hand, with the copy and the origin overwrite an older server would have left.
 */
static void test_engine__replay_trusts_an_old_unchecked_copyout(void **state)
{
	struct engine_logrec_disk r;
	struct engine_check_report rep;
	u8 *old = xmalloc(CS), *cur = xmalloc(CS), *buf = xmalloc(CS);
	char why[256];
	struct efix f;

	efix_init(&f, CS, 16, 64, false, 1);
	fill(old, CS, 5, 1);
	assert_int_equal(efix_origin_write(&f, 5, 0, CS, old), 0); /* no snapshot: no copy */
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0);   /* gen 2 now */
	/* the older server's copy-out of chunk 5 to snapstore chunk 40, then the origin write */
	assert_int_equal(bdev_write(f.snapstore, old, CS, 40 * (u64)CS), 0);
	fill(cur, CS, 5, 2);
	assert_int_equal(bdev_write(f.origin, cur, CS, 5 * (u64)CS), 0);
	memset(&r, 0, sizeof(r));
	r.chunk = cpu_to_le64(5);
	r.birth = cpu_to_le64(0);
	r.death = cpu_to_le64(2);
	r.addr = cpu_to_le64(40);
	assert_int_equal(engine_replay(f.e, &f.tx, ENGINE_LOG_COPYOUT_ORDERED, &r, sizeof(r)), 0);
	assert_int_equal(efix_read(&f, 1, 5, buf), 0);
	assert_memory_equal(buf, old, CS); /* not copied again from the origin */
	assert_int_equal(efix_read(&f, ENGINE_HEAD, 5, buf), 0);
	assert_memory_equal(buf, cur, CS);
	assert_int_equal(engine_check(f.e, NULL, &rep, why, sizeof(why)), 0);
	assert_int_equal(rep.problems, 0);
	assert_int_equal(rep.data_chunks, 1);
	free(old);
	free(cur);
	free(buf);
	efix_fini(&f);
}

/*
 * A discard is a write for the copy-out rule (DESIGN.md 3): the snapshot keeps the data the
 * origin is about to lose, and the changelist names the chunk.
 */
static void test_engine__discard_is_a_write(void **state)
{
	struct engine_range r = {3, 2};
	enum engine_map_where where;
	u64 gen, copied, addr, *chunks, n;
	u8 *buf, *want;
	struct efix f;

	efix_init(&f, CS, 16, 64, false, 1);
	buf = xmalloc(CS);
	want = xmalloc(CS);
	fill(want, CS, 3, 1);
	assert_int_equal(efix_origin_write(&f, 3, 0, CS, want), 0);
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0);
	assert_int_equal(engine_origin_discard(f.e, &f.tx, &r, 1, &gen, &copied), 0);
	assert_int_equal(copied, 2);
	assert_int_equal(gen, 2);
	memset(buf, 0, CS); /* what the device returns for a discarded chunk */
	assert_int_equal(efix_origin_write(&f, 3, 0, CS, buf), 0);
	assert_int_equal(engine_snap_read_map(f.e, 1, 3, &where, &addr), 0);
	assert_int_equal(where, ENGINE_MAP_SNAPSTORE);
	assert_int_equal(efix_read(&f, 1, 3, buf), 0);
	assert_memory_equal(buf, want, CS);
	assert_int_equal(engine_changelist(f.e, 1, ENGINE_HEAD, &chunks, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_int_equal(chunks[0], 3);
	assert_int_equal(chunks[1], 4);
	free(chunks);
	free(buf);
	free(want);
	efix_fini(&f);
}

/*------------------------------------------------------------------------------------------
 * Cost tests: count metadata block accesses (cache hits + misses), not time
 *----------------------------------------------------------------------------------------*/

static u64 block_accesses(struct efix *f)
{
	struct cache_stats cs;

	cache_stats(f->cache, &cs);
	return cs.hits + cs.misses;
}

/* Copies out chunks [first, first + n) in batches of 256, syncing every 64 batches. */
static void bulk_copyout(struct efix *f, u64 first, u64 n)
{
	for (u64 c = first; c < first + n; c += 256) {
		struct engine_range r = {c, MIN(256, first + n - c)};
		u64 copied;

		assert_int_equal(engine_origin_write(f->e, &f->tx, &r, 1, NULL, &copied), 0);
		assert_int_equal(copied, r.count);
		if ((c / 256) % 64 == 63)
			assert_int_equal(efix_sync(f), 0);
	}
	assert_int_equal(efix_sync(f), 0);
}

/*
 * A store with @nsnaps live snapshots, all created before @nexc chunks were copied out:
 * the exception tree has the same shape whatever @nsnaps is.  Returns the block accesses of
 * one origin write query of 64 chunks that all need a copy-out, and of the same query again
 * (now all safe).
 */
static void query_cost(u32 nsnaps, u64 nexc, u64 *copy_cost, u64 *safe_cost)
{
	struct efix_opts o = {.null_data = true, .meta_bytes = 256ull << 20};
	struct engine_range r = {nexc, 64};
	u64 before, copied;
	struct efix f;

	efix_init_opts(&f, CS, nexc + 1024, nexc + 1024, &o);
	for (u32 t = 1; t <= nsnaps; t++)
		assert_int_equal(engine_create(f.e, &f.tx, t, t, 0), 0);
	bulk_copyout(&f, 0, nexc);
	before = block_accesses(&f);
	assert_int_equal(engine_origin_write(f.e, &f.tx, &r, 1, NULL, &copied), 0);
	assert_int_equal(copied, 64);
	*copy_cost = block_accesses(&f) - before;
	before = block_accesses(&f);
	assert_int_equal(engine_origin_write(f.e, &f.tx, &r, 1, NULL, &copied), 0);
	assert_int_equal(copied, 0);
	*safe_cost = block_accesses(&f) - before;
	efix_fini(&f);
}

static void test_engine__cost_origin_write_independent_of_snapshots(void **state)
{
	u64 copy1, safe1, copy10k, safe10k;

	query_cost(1, 20000, &copy1, &safe1);
	query_cost(10000, 20000, &copy10k, &safe10k);
	print_message("origin write query, 64 chunks, 20000 exceptions: block accesses "
		      "copy-out %llu / %llu, safe %llu / %llu (1 / 10000 snapshots)\n",
		      (unsigned long long)copy1, (unsigned long long)copy10k,
		      (unsigned long long)safe1, (unsigned long long)safe10k);
	assert_int_equal(copy1, copy10k);
	assert_int_equal(safe1, safe10k);
	/* and small: a root-to-leaf path or two per chunk */
	assert_true(safe1 <= 64 * 2 * 3);
}

/*
 * The engine's check of a tree bigger than its cache reads each block a bounded number of
 * times whatever the number of snapshots: the open's rebuild (reading ahead in runs, as
 * the server's), btree_verify and the walk of the exceptions, not a tree lookup per
 * deadlist entry (one pass over the tree per snapshot once the tree outgrew the cache).
 * With persisted deadlists: their verify and walk, the entries sorted and merged with the
 * exception walk, not a lookup per entry (that cost 16.8 s for `ddsnap check` of 10^6
 * exceptions over 10 snapshots, against 3.1 s rebuilding; here 32,081 reads against a
 * bound of 10,336; now 6,261).  The entry tree is smaller than the exception tree (24-byte entries
 * against 32), so both trees are at most twice its blocks.
 */
static void check_cost(bool persist)
{
	struct efix_opts o = {
		.null_data = true, .meta_bytes = 256ull << 20, .persist_deadlists = persist};
	const u64 nexc = 100000, nsnaps = 20;
	struct engine_check_report rep;
	struct btree_stats bs;
	struct cache_stats st;
	struct cache *cold;
	struct efix f;
	char why[256];

	efix_init_opts(&f, CS, nexc, 2 * nexc, &o);
	/* Snapshot s owns the chunks c with c % nsnaps == s: every deadlist spans the tree. */
	for (u64 s = 0; s < nsnaps; s++) {
		struct engine_range r[256];
		u64 copied, n = 0;

		assert_int_equal(engine_create(f.e, &f.tx, (u32)s + 1, s + 1, 0), 0);
		for (u64 c = s; c < nexc; c += nsnaps) {
			r[n++] = (struct engine_range){c, 1};
			if (n == 256 || c + nsnaps >= nexc) {
				assert_int_equal(
					engine_origin_write(f.e, &f.tx, r, (u32)n, NULL, &copied),
					0);
				assert_int_equal(copied, n);
				n = 0;
			}
		}
		assert_int_equal(efix_sync(&f), 0);
	}
	assert_int_equal(engine_exception_stats(f.e, &bs), 0);
	cold = cache_create(f.meta, 64 * DDSNAP_BLOCK_SIZE);
	cache_set_synced_txg(cold, f.synced_txg);
	assert_int_equal(engine_check_offline(cold, &f.roots, CS, nexc, f.persist_deadlists, NULL,
					      &rep, why, sizeof(why)),
			 0);
	assert_int_equal(rep.exceptions, nexc);
	cache_stats(cold, &st);
	print_message("check of %llu exceptions over %llu snapshots (%s deadlists), %llu "
		      "exception tree blocks, 64-block cache: %llu reads\n",
		      (unsigned long long)nexc, (unsigned long long)nsnaps,
		      persist ? "persisted" : "rebuilt",
		      (unsigned long long)(bs.leaves + bs.internal), (unsigned long long)st.reads);
	assert_true(st.reads <= (persist ? 8 : 4) * (bs.leaves + bs.internal));
	cache_destroy(cold);
	efix_fini(&f);
}

static void test_engine__cost_check_bounded(void **state)
{
	check_cost(false);
}

static void test_engine__cost_check_bounded_persisted(void **state)
{
	check_cost(true);
}

/*
 * With persisted deadlists, open reads the snapshot and piece tables, not the exceptions
 * (issue 22): a cold open of 50,000 exceptions over 20 snapshots reads a handful of blocks,
 * where the rebuild of the same store reads every leaf of the exception tree; both opens
 * report the same exceptions and per-snapshot unique and written bytes.
 */
static void test_engine__cost_open_reads_pieces_not_exceptions(void **state)
{
	struct efix_opts o = {
		.null_data = true, .meta_bytes = 256ull << 20, .persist_deadlists = true};
	const u64 nexc = 50000, nsnaps = 20;
	u64 reads[2];
	struct engine_snapinfo info[2][20];
	struct engine_status est[2];
	struct btree_stats bs;
	struct efix f;

	efix_init_opts(&f, CS, nexc, 2 * nexc, &o);
	for (u64 s = 0; s < nsnaps; s++) {
		struct engine_range r[256];
		u64 copied, n = 0;

		assert_int_equal(engine_create(f.e, &f.tx, (u32)s + 1, s + 1, 0), 0);
		for (u64 c = s; c < nexc; c += nsnaps) {
			r[n++] = (struct engine_range){c, 1};
			if (n == 256 || c + nsnaps >= nexc) {
				assert_int_equal(
					engine_origin_write(f.e, &f.tx, r, (u32)n, NULL, &copied),
					0);
				n = 0;
			}
		}
		assert_int_equal(efix_sync(&f), 0);
	}
	assert_int_equal(engine_exception_stats(f.e, &bs), 0);
	for (int persisted = 0; persisted < 2; persisted++) {
		struct engine_params p = f.params;
		struct cache_stats st;
		struct engine *e;

		p.cache = cache_create(f.meta, 64 * DDSNAP_BLOCK_SIZE);
		cache_set_synced_txg(p.cache, f.synced_txg);
		p.read_only = true;
		p.persist_deadlists = persisted;
		assert_int_equal(engine_open(&p, &f.roots, &e), 0);
		cache_stats(p.cache, &st);
		reads[persisted] = st.reads;
		engine_status(e, &est[persisted]);
		assert_int_equal(engine_list(e, 0, info[persisted], nsnaps), nsnaps);
		engine_close(e);
		cache_destroy(p.cache);
	}
	print_message("cold open of %llu exceptions (%llu tree blocks) over %llu snapshots: %llu "
		      "reads rebuilding, %llu with persisted deadlists\n",
		      (unsigned long long)nexc, (unsigned long long)(bs.leaves + bs.internal),
		      (unsigned long long)nsnaps, (unsigned long long)reads[0],
		      (unsigned long long)reads[1]);
	assert_true(reads[0] >= bs.leaves);
	assert_true(reads[1] <= 8);
	assert_int_equal(est[0].exceptions, nexc);
	assert_int_equal(est[1].exceptions, nexc);
	assert_int_equal(est[0].head_written_bytes, est[1].head_written_bytes);
	for (u64 s = 0; s < nsnaps; s++) {
		assert_int_equal(info[0][s].tag, info[1][s].tag);
		assert_int_equal(info[0][s].unique_bytes, info[1][s].unique_bytes);
		assert_int_equal(info[0][s].written_bytes, info[1][s].written_bytes);
	}
	assert_int_equal(info[1][0].written_bytes, 0);
	assert_int_equal(info[1][1].written_bytes, (nexc / nsnaps) * CS);
	efix_fini(&f);
}

/*
 * Listing 10,000 snapshots page by page looks at each once (a page starts where it should,
 * it does not count its way there from the first), and a page that reaches the invalidated
 * ones still returns them after the live ones.
 */
static void test_engine__cost_list_linear(void **state)
{
	const u32 nsnaps = 10000, page = 64;
	struct engine_snapinfo *info = xmalloc(page * sizeof(*info));
	struct engine_status st0, st;
	struct efix f;
	u32 seen = 0;

	efix_init(&f, CS, 64, 64, false, 1);
	for (u32 t = 1; t <= nsnaps; t++)
		assert_int_equal(engine_create(f.e, &f.tx, t, t, 0), 0);
	engine_status(f.e, &st0);
	for (u32 first = 0; first < nsnaps; first += page) {
		u32 n = MIN(page, nsnaps - first);

		assert_int_equal(engine_list(f.e, first, info, page), nsnaps);
		for (u32 i = 0; i < n; i++)
			assert_int_equal(info[i].tag, first + i + 1);
		seen += n;
	}
	assert_int_equal(seen, nsnaps);
	engine_status(f.e, &st);
	print_message("listing %u snapshots in pages of %u looked at %llu\n", nsnaps, page,
		      (unsigned long long)(st.list_visits - st0.list_visits));
	assert_int_equal(st.list_visits - st0.list_visits, nsnaps);
	/* Past the end: nothing looked at. */
	assert_int_equal(engine_list(f.e, nsnaps, info, page), nsnaps);
	engine_status(f.e, &st0);
	assert_int_equal(st0.list_visits, st.list_visits);
	efix_fini(&f);
	free(info);
}

/*
 * Deleting a snapshot that has nothing unique, among many exceptions: a handful of block
 * accesses (the snapshot table), no exception touched, nothing freed.
 */
static void test_engine__cost_delete_nothing_unique(void **state)
{
	struct efix_opts o = {.null_data = true, .meta_bytes = 512ull << 20};
	const u64 nexc = 1000000;
	struct engine_snapinfo info;
	struct engine_status st;
	u64 before, frees;
	struct efix f;

	efix_init_opts(&f, CS, nexc, nexc, &o);
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0);
	assert_int_equal(engine_create(f.e, &f.tx, 2, 2, 0), 0);
	bulk_copyout(&f, 0, nexc); /* seen by 1 and 2 */
	assert_int_equal(engine_create(f.e, &f.tx, 3, 3, 0), 0);
	assert_int_equal(efix_sync(&f), 0);
	assert_int_equal(engine_snap_info(f.e, 2, &info), 0);
	assert_int_equal(info.unique_bytes, 0);
	before = block_accesses(&f);
	frees = f.databits.frees;
	assert_int_equal(engine_delete(f.e, &f.tx, 2), 0);
	print_message("delete with nothing unique among %llu exceptions: %llu block accesses\n",
		      (unsigned long long)nexc, (unsigned long long)(block_accesses(&f) - before));
	assert_true(block_accesses(&f) - before <= 8);
	assert_int_equal(f.databits.frees, frees);
	/* 3 was created after the writes: now 1 alone sees the saved copies */
	assert_int_equal(engine_snap_info(f.e, 1, &info), 0);
	assert_int_equal(info.unique_bytes, nexc * CS);
	engine_status(f.e, &st);
	assert_int_equal(st.exceptions, nexc);
	efix_fini(&f);
}

/*
 * A changelist over a 1% change (in a few clustered runs) of a 10^6-exception tree visits a
 * small multiple of the leaves holding changes, not the tree.
 */
static void test_engine__cost_changelist_pruned(void **state)
{
	struct efix_opts o = {.null_data = true, .meta_bytes = 512ull << 20};
	const u64 nexc = 1000000, runs = 10, run_len = nexc / 100 / runs;
	struct engine_walk_stats ws;
	struct btree_stats bs;
	struct efix f;
	u64 *chunks, n, changed_leaves;

	efix_init_opts(&f, CS, nexc, 2 * nexc, &o);
	assert_int_equal(engine_create(f.e, &f.tx, 1, 1, 0), 0);
	bulk_copyout(&f, 0, nexc);
	assert_int_equal(engine_create(f.e, &f.tx, 2, 2, 0), 0);
	for (u64 r = 0; r < runs; r++)
		bulk_copyout(&f, r * (nexc / runs), run_len);
	assert_int_equal(engine_changelist(f.e, 2, ENGINE_HEAD, &chunks, &n, &ws), 0);
	assert_int_equal(n, runs * run_len);
	free(chunks);
	assert_int_equal(engine_exception_stats(f.e, &bs), 0);
	/* each run of changes lies in consecutive leaves, interleaved with the old entries */
	changed_leaves = runs * (DIV_ROUND_UP(2 * run_len, 126 / 2) + 1);
	print_message("changelist of 1%%: %llu leaves visited (%llu nodes) of %llu leaves; "
		      "changes span at most %llu leaves\n",
		      (unsigned long long)ws.leaves_visited, (unsigned long long)ws.nodes_visited,
		      (unsigned long long)bs.leaves, (unsigned long long)changed_leaves);
	assert_true(ws.leaves_visited <= 2 * changed_leaves);
	assert_true(ws.nodes_visited <= 3 * changed_leaves);
	assert_true(ws.leaves_visited * 20 < bs.leaves);
	efix_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_engine__model_random),
		cmocka_unit_test(test_engine__model_crash_replay),
		cmocka_unit_test(test_engine__model_full_store),
		cmocka_unit_test(test_engine__model_many_snapshots),
		cmocka_unit_test(test_engine__impossible_entry_refused),
		cmocka_unit_test(test_engine__impossible_overlay_address_refused),
		cmocka_unit_test(test_engine__full_store_policy),
		cmocka_unit_test(test_engine__full_store_no_autodelete),
		cmocka_unit_test(test_engine__log_failures),
		cmocka_unit_test(test_engine__check_finds_damage),
		cmocka_unit_test(test_engine__provenance),
		cmocka_unit_test(test_engine__replay_refuses_foreign_copyouts),
		cmocka_unit_test(test_engine__replay_trusts_an_old_unchecked_copyout),
		cmocka_unit_test(test_engine__snap_write_many),
		cmocka_unit_test(test_engine__discard_is_a_write),
		cmocka_unit_test(test_engine__cost_origin_write_independent_of_snapshots),
		cmocka_unit_test(test_engine__cost_delete_nothing_unique),
		cmocka_unit_test(test_engine__cost_list_linear),
		cmocka_unit_test(test_engine__cost_open_reads_pieces_not_exceptions),
		cmocka_unit_test(test_engine__cost_check_bounded),
		cmocka_unit_test(test_engine__cost_check_bounded_persisted),
		cmocka_unit_test(test_engine__cost_changelist_pruned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
