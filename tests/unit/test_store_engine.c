// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_store_engine.c - the snapshot engine on the real store (label, uberblock ring, txgs,
 * metaslab allocator for metadata and data, intent log), as the server runs it: random
 * origin writes, snapshot creates and deletes, and txg syncs on the fault-injecting device;
 * a power cut at a random write; reopen, replay the intent log into the engine, sync.  After
 * every reopen `ddsnap check`'s two halves must pass: store_check (every block, the space
 * maps, no leak of metadata or data, nothing both free and used) and the engine's offline
 * check (exceptions, deadlists, overlays, provenance).  A third of the creates are of
 * received snapshots (engine_create_from), so the first one sets the label's feature bit
 * and the provenance tree goes through the same crashes; once a received snapshot has been
 * acknowledged, the label must carry the bit.  Seeds printed; STORE_ENGINE_SEED replays one,
 * STORE_ENGINE_SAVE=<file> saves the last round's snapstore image (to try dump and check on).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <cmocka.h>
#include <unistd.h>
#include "commands.h"
#include "snap/engine.h"
#include "store/store.h"
#include "store/store_check.h"
#include "lib/storecheck.h"

#define MB	 (1024ULL * 1024)
#define CHUNK	 4096u
#define ORIGIN	 (1 * MB) /* 256 chunks: rewritten often */
#define MAX_SNAP 8
/* Free log blocks kept before each engine call: volume.c's rule (see its essay). */
#define LOG_HEADROOM 64

struct vol {
	struct bdev *origin, *snap;
	struct store *s;
	struct engine *e;
	u64 chunk_blocks;
	bool persisted; /* the label's LABEL_FEATURE_INCOMPAT_DEADLISTS (volume.c's dl_persisted) */
};

static int space_alloc(void *priv, struct tx *tx, u64 want, u64 *start, u64 *got)
{
	struct vol *v = priv;
	u64 block;
	int r = metaslab_alloc_data(store_metaslab(v->s), want, &block, got);

	if (!r)
		*start = block / v->chunk_blocks;
	return r;
}

static void space_free(void *priv, struct tx *tx, u64 start, u64 count)
{
	struct vol *v = priv;

	VERIFY(metaslab_free_data(store_metaslab(v->s), start * v->chunk_blocks, count, 0) >= 0);
}

static u64 space_avail(void *priv)
{
	struct vol *v = priv;
	struct metaslab_class_stats d, none;

	metaslab_stats(store_metaslab(v->s), METASLAB_CLASS_DATA, &d);
	metaslab_stats(store_metaslab(v->s), METASLAB_CLASS_NONE, &none);
	return (d.free + none.free) / v->chunk_blocks;
}

static int space_claim(void *priv, struct tx *tx, u64 start, u64 count)
{
	struct vol *v = priv;

	return metaslab_claim_data(store_metaslab(v->s), start * v->chunk_blocks, count);
}

static const struct engine_space_ops space_ops = {
	.alloc = space_alloc,
	.free = space_free,
	.avail = space_avail,
	.claim = space_claim,
};

static int ilog_append(void *priv, struct tx *tx, u16 type, const void *payload, u16 len)
{
	struct vol *v = priv;

	/*
	 * Never wait for log space while holding the txg: only the sync held back by that hold
	 * would free it.  workload() keeps headroom, so this fails only on a full ring.
	 */
	return intent_log_append(store_log(v->s), type, tx->txg, payload, len, INTENT_LOG_NOWAIT,
				 NULL);
}

static int ilog_flush(void *priv)
{
	struct vol *v = priv;

	return intent_log_flush(store_log(v->s));
}

static int pre_sync(void *arg, struct tx *tx)
{
	struct vol *v = arg;
	struct engine_roots roots;
	int r = engine_sync(v->e, tx, &roots);

	if (r)
		return r;
	if (v->persisted) {
		store_set_root(v->s, UB_ROOT_DEADLISTS, &roots.deadlists.pieces);
		store_set_root(v->s, UB_ROOT_DEADLIST_ENTRIES, &roots.deadlists.entries);
		store_set_scalar(v->s, UB_SCALAR_NEXT_PIECE, roots.deadlists.next_piece);
	}
	store_set_root(v->s, UB_ROOT_EXCEPTIONS, &roots.exceptions);
	store_set_root(v->s, UB_ROOT_SNAPSHOTS, &roots.snapshots);
	store_set_root(v->s, UB_ROOT_PROVENANCE, &roots.provenance);
	store_set_scalar(v->s, UB_SCALAR_GEN, roots.gen);
	return 0;
}

static int replay(void *arg, struct tx *tx, const struct intent_log_record *rec)
{
	struct vol *v = arg;

	return engine_replay(v->e, tx, rec->type, rec->payload, rec->len);
}

static int set_feature(void *priv)
{
	struct vol *v = priv;

	return store_set_features(v->s, LABEL_FEATURE_RO_PROVENANCE, 0);
}

/* Opens store and engine on v's devices, replaying the log.  Returns 0 or an error. */
static int vol_open(struct vol *v)
{
	struct store_config cfg = {
		.snapstore = v->snap, .cache_bytes = 1 * MB, .no_sync_thread = true};
	struct store_hook h = {.pre_sync = pre_sync, .arg = v};
	struct engine_params ep = {
		.chunk_size = CHUNK,
		.origin_chunks = ORIGIN / CHUNK,
		.origin = v->origin,
		.snapstore = v->snap,
		.space = &space_ops,
		.space_priv = v,
		.ilog_append = ilog_append,
		.ilog_flush = ilog_flush,
		.ilog_priv = v,
		.autodelete = false,
		.set_feature = set_feature,
		.feature_priv = v,
	};
	struct engine_roots roots = {0};
	char why[256];
	int r;

	r = store_open(&cfg, &v->s, why, sizeof(why));
	if (r) {
		print_message("store_open: %s\n", why);
		return r;
	}
	v->chunk_blocks = label_chunk_blocks(store_label(v->s));
	ep.cache = store_cache(v->s);
	store_root(v->s, UB_ROOT_EXCEPTIONS, &roots.exceptions);
	store_root(v->s, UB_ROOT_SNAPSHOTS, &roots.snapshots);
	store_root(v->s, UB_ROOT_PROVENANCE, &roots.provenance);
	roots.gen = store_scalar(v->s, UB_SCALAR_GEN);
	v->persisted = store_label(v->s)->feature_incompat & LABEL_FEATURE_INCOMPAT_DEADLISTS;
	ep.persist_deadlists = v->persisted;
	store_root(v->s, UB_ROOT_DEADLISTS, &roots.deadlists.pieces);
	store_root(v->s, UB_ROOT_DEADLIST_ENTRIES, &roots.deadlists.entries);
	roots.deadlists.next_piece = store_scalar(v->s, UB_SCALAR_NEXT_PIECE);
	r = engine_open(&ep, &roots, &v->e);
	if (r) {
		store_abandon(v->s);
		return r;
	}
	store_add_hook(v->s, &h);
	r = store_open_log(v->s, replay, v, why, sizeof(why));
	if (r)
		print_message("store_open_log: %s\n", why);
	return r;
}

static void vol_abandon(struct vol *v)
{
	engine_close(v->e);
	store_abandon(v->s);
}

/* Room for one engine call in the intent log (store_log_room()). */
static int log_room(struct vol *v)
{
	return store_log_room(v->s, LOG_HEADROOM);
}

/* Random engine work until @nops ran or something failed (the device died). */
static void workload(struct vol *v, u64 *rng, u32 *next_tag, int nops)
{
	for (int i = 0; i < nops; i++) {
		u64 op = xorshift64(rng) % 100, gen;
		struct tx *tx;
		int r;

		if (op < 5) {
			if (store_sync(v->s))
				return;
			continue;
		}
		if (log_room(v))
			return;
		tx = store_tx_hold(v->s);
		if (!tx)
			return;
		if (op < 12) {
			struct engine_provenance prov = {.gen = 1 + xorshift64(rng) % 1000};

			memset(prov.uuid, 0x3c, sizeof(prov.uuid));
			r = xorshift64(rng) % 3
				    ? engine_create(v->e, tx, (*next_tag)++, 0, 0)
				    : engine_create_from(v->e, tx, (*next_tag)++, 0, 0, &prov);
		} else if (op < 17) {
			r = *next_tag ? engine_delete(v->e, tx, (u32)(xorshift64(rng) % *next_tag))
				      : 0;
			if (r == -ENODATA)
				r = 0;
		} else if (op < 25) {
			/* A writable snapshot's first write makes an overlay entry. */
			u64 addr;

			r = *next_tag ? engine_snap_write_map(
						v->e, tx, (u32)(xorshift64(rng) % *next_tag),
						xorshift64(rng) % (ORIGIN / CHUNK), &addr)
				      : 0;
			if (r == -ENODATA)
				r = 0;
		} else {
			struct engine_range rg = {xorshift64(rng) % (ORIGIN / CHUNK),
						  1 + xorshift64(rng) % 8};

			if (rg.chunk + rg.count > ORIGIN / CHUNK)
				rg.count = ORIGIN / CHUNK - rg.chunk;
			r = engine_origin_write(v->e, tx, &rg, 1, &gen, NULL);
		}
		store_tx_release(v->s, tx);
		if (r == -EAGAIN) {
			if (store_sync(v->s))
				return;
			continue;
		}
		if (r)
			return; /* the injected fault */
	}
}

static void check_both(struct vol *v, u64 seed)
{
	struct engine_check_report er = {0};
	struct label l;

	storecheck_clean(v->snap, NULL, CHUNK, ORIGIN / CHUNK, seed, &er, &l);
	/* a provenance record on disk only under the label's bit */
	if (er.provenance && !(l.feature_ro_compat & LABEL_FEATURE_RO_PROVENANCE))
		fail_msg("seed %llu: %llu provenance records, no feature bit",
			 (unsigned long long)seed, (unsigned long long)er.provenance);
}

static void iteration(u64 seed)
{
	struct store_format_params p = {.chunk_shift = 12, .origin_bytes = ORIGIN};
	struct vol v = {0};
	u64 rng = seed * 0x9E3779B97F4A7C15ULL + 7;
	u32 tag = 0;
	char why[256];

	v.origin = bdev_ram_create(ORIGIN);
	v.snap = bdev_faulty_create(12 * MB, seed);
	assert_int_equal(store_format(v.snap, NULL, &p, why, sizeof(why)), 0);
	assert_int_equal(vol_open(&v), 0);
	workload(&v, &rng, &tag, (int)(xorshift64(&rng) % 200));
	assert_int_equal(store_failed(v.s), 0);
	if (xorshift64(&rng) % 4) {
		u64 n = 1 + xorshift64(&rng) % 80;

		if (xorshift64(&rng) & 1)
			bdev_faulty_tear_write(v.snap, n);
		bdev_faulty_die_after(v.snap, n);
	}
	workload(&v, &rng, &tag, (int)(xorshift64(&rng) % 300));
	bdev_faulty_crash(v.snap, xorshift64(&rng) & 1);
	vol_abandon(&v);

	/* Recovery as the server does it: open, replay into the engine, sync. */
	if (vol_open(&v))
		fail_msg("seed %llu: reopen failed", (unsigned long long)seed);
	assert_int_equal(store_sync(v.s), 0);
	workload(&v, &rng, &tag, 30);
	assert_int_equal(store_sync(v.s), 0);
	engine_close(v.e);
	assert_int_equal(store_close(v.s), 0);
	check_both(&v, seed);
	if (getenv("STORE_ENGINE_SAVE")) {
		/* The snapstore image, for looking at with ddsnap dump/check. */
		FILE *img = fopen(getenv("STORE_ENGINE_SAVE"), "w");
		void *buf = malloc(v.snap->size);

		assert_non_null(img);
		assert_int_equal(bdev_read(v.snap, buf, v.snap->size, 0), 0);
		assert_int_equal(fwrite(buf, 1, v.snap->size, img), v.snap->size);
		fclose(img);
		free(buf);
	}
	bdev_close(v.snap);
	bdev_close(v.origin);
}

static void test_store_engine__crash_and_replay(void **state)
{
	const char *env = getenv("STORE_ENGINE_SEED"), *pre = getenv("LD_PRELOAD");
	u64 iters = pre && strstr(pre, "vgpreload") ? 20 : 500;
	u64 base = env ? strtoull(env, NULL, 0) : (u64)time(NULL);

	if (env)
		iters = 1;
	print_message("engine on store: %llu crash iterations from seed %llu "
		      "(STORE_ENGINE_SEED=<seed> replays one)\n",
		      (unsigned long long)iters, (unsigned long long)base);
	for (u64 i = 0; i < iters; i++)
		iteration(base + i);
}

/* Runs a subcommand with stdout to @out; returns its exit code. */
static int run_to(const char *out, int (*fn)(int, char **), char **argv)
{
	int saved = dup(STDOUT_FILENO), fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600),
	    argc = 0;
	int r;

	assert_true(saved >= 0 && fd >= 0);
	while (argv[argc])
		argc++;
	fflush(stdout);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	r = fn(argc, argv);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	return r;
}

/*
 * The lines of @path starting with @prefix, concatenated.  A snapshot record's overlay root
 * (value bytes 16..47) is a physical address, different in a rebuilt store: masked.
 */
static char *lines_with(const char *path, const char *prefix)
{
	FILE *f = fopen(path, "r");
	char line[4096], *all = calloc(1, 1);
	size_t len = 0;
	bool snapshots = false;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *v = strstr(line, " value=");

		if (!strncmp(line, "tree ", 5))
			snapshots = !strcmp(line, "tree snapshots\n");
		if (snapshots && v && strlen(v + 7) > 96)
			memset(v + 7 + 32, 'x', 64);
		if (!strncmp(line, prefix, strlen(prefix))) {
			all = xrealloc(all, len + strlen(line) + 1);
			strcpy(all + len, line);
			len += strlen(line);
		}
	}
	fclose(f);
	return all;
}

/* dump, restore into a new store, dump again: the same entries, data, scalars; check clean. */
static void test_store_engine__dump_restore_roundtrip(void **state)
{
	static const char *const kinds[] = {"entry ", "space class=data ", "scalar ", "tree "};
	char img[] = "/tmp/tst_se_img.XXXXXX", img2[] = "/tmp/tst_se_img2.XXXXXX";
	char d1[] = "/tmp/tst_se_d1.XXXXXX", d2[] = "/tmp/tst_se_d2.XXXXXX";
	struct store_format_params p = {.chunk_shift = 12, .origin_bytes = ORIGIN};
	struct vol v = {0};
	u64 rng = 12345, size;
	u32 tag = 0;
	void *buf;
	FILE *f;
	char why[256];

	close(mkstemp(img));
	close(mkstemp(img2));
	close(mkstemp(d1));
	close(mkstemp(d2));
	v.origin = bdev_ram_create(ORIGIN);
	v.snap = bdev_ram_create(12 * MB);
	assert_int_equal(store_format(v.snap, NULL, &p, why, sizeof(why)), 0);
	assert_int_equal(vol_open(&v), 0);
	workload(&v, &rng, &tag, 600);
	assert_int_equal(store_sync(v.s), 0);
	engine_close(v.e);
	assert_int_equal(store_close(v.s), 0);
	size = v.snap->size;
	buf = malloc(size);
	assert_int_equal(bdev_read(v.snap, buf, size, 0), 0);
	f = fopen(img, "w");
	assert_int_equal(fwrite(buf, 1, size, f), size);
	fclose(f);
	free(buf);
	assert_int_equal(truncate(img2, (off_t)size), 0);

	assert_int_equal(run_to(d1, cmd_dump, (char *[]){"dump", img, NULL}), EXIT_OK);
	assert_int_equal(run_to("/dev/null", cmd_restore, (char *[]){"restore", d1, img2, NULL}),
			 EXIT_OK);
	/* Refuses to overwrite the store it just made. */
	assert_int_equal(run_to("/dev/null", cmd_restore, (char *[]){"restore", d1, img2, NULL}),
			 EXIT_FAIL);
	assert_int_equal(run_to(d2, cmd_dump, (char *[]){"dump", img2, NULL}), EXIT_OK);
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		char *a = lines_with(d1, kinds[i]), *b = lines_with(d2, kinds[i]);

		assert_string_equal(a, b);
		if (i < 2)
			assert_true(strlen(a) > 0); /* there were entries and data */
		free(a);
		free(b);
	}
	{
		char *ov = lines_with(d1, "tree overlay:");

		assert_true(strlen(ov) > 0); /* the workload made writable-snapshot overlays */
		free(ov);
	}
	assert_int_equal(run_to("/dev/null", cmd_check, (char *[]){"check", img2, NULL}), EXIT_OK);
	unlink(img);
	unlink(img2);
	unlink(d1);
	unlink(d2);
	bdev_close(v.snap);
	bdev_close(v.origin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_engine__crash_and_replay),
		cmocka_unit_test(test_store_engine__dump_restore_roundtrip),
	};

	return cmocka_run_group_tests_name("store+engine", tests, NULL, NULL);
}
