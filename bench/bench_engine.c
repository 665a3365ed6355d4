// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench_engine.c - the snapshot engine's costs on a file-backed store (BENCH_DIR, default
 * /tmp; buffered files, so this measures the engine, the tree and the cache, not a disk):
 *
 *   1. origin write decisions per second, in batches of 64 chunks, when every chunk needs a
 *      copy-out (4 KiB read from the origin, written to the snapstore, one snapstore flush
 *      and one log flush per batch) and when every chunk is already safe, with 1, 100 and
 *      10,000 live snapshots: the goal is that 10,000 cost the same as 1;
 *   2. snapshot create and delete latency against the number of live snapshots, and delete
 *      latency against the number of exceptions it frees;
 *   3. changelist time and leaves visited for 0.1%, 1% and 10% of a 200,000-exception tree
 *      changed (random chunks), against a full scan of the tree.
 *
 * The harness (allocators, a no-op intent log whose flush is a device flush) is local: the
 * benchmark links only the library.
 *
 * BENCH_DEADLISTS=rebuilt opens the engine without params.persist_deadlists (the deadlists
 * rebuilt in memory at open, as a store without the feature bit); the default is persisted,
 * as every store is now.  Running both in turn compares the two at the same counts.
 * BENCH_ONLY=<digits> runs only those sections (e.g. 12), to profile one alone.
 */
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "pdata/btree.h"
#include "blk/bdev.h"
#include "blk/cache.h"
#include "snap/engine.h"
#include "util/log.h"

#define CS	      4096u
#define CACHE_BUDGET  ((size_t)64 << 20)
#define META_BYTES    (1ull << 30) /* sparse */
#define BATCH	      64
#define COPY_CHUNKS   32768 /* per decision-rate run: 128 MiB of copy-outs */
#define CL_EXCEPTIONS 200000
#define MAX_SNAPS     10000
#define RUNS	      3 /* best of: the machine is shared */

/* Wall time: for what waits on the device (durable copy-outs). */
static double wall(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/*
 * CPU time (user + system) of this process: for everything that does not wait on the
 * device.  The machine is shared, so wall time there would measure the neighbours.
 */
static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static u64 rnd_state = 88172645463325252ull;

static u64 rnd(void)
{
	return xorshift64(&rnd_state);
}

/*------------------------------------------------------------------------------------------
 * Harness
 *----------------------------------------------------------------------------------------*/

struct ualloc {
	u64 n, next;
	u64 *free, nfree;
	u64 *deferred, ndeferred;
};

static void ualloc_init(struct ualloc *a, u64 n)
{
	memset(a, 0, sizeof(*a));
	a->n = n;
	a->free = xmalloc(8 * n);
	a->deferred = xmalloc(8 * n);
}

static int ualloc_get(struct ualloc *a, u64 *out)
{
	if (a->nfree) {
		*out = a->free[--a->nfree];
		return 0;
	}
	if (a->next == a->n)
		return -ENOSPC;
	*out = a->next++;
	return 0;
}

static void ualloc_synced(struct ualloc *a)
{
	memcpy(a->free + a->nfree, a->deferred, a->ndeferred * 8);
	a->nfree += a->ndeferred;
	a->ndeferred = 0;
}

struct harness {
	char path[3][512];
	struct bdev *origin, *snap, *meta;
	struct cache *cache;
	struct tx tx;
	struct ualloc metaa, dataa;
	struct engine_space_ops space;
	struct engine_params params;
	struct engine *e;
};

static int h_alloc_meta(struct tx *tx, u64 *blocknr)
{
	struct harness *h = tx->priv;

	return ualloc_get(&h->metaa, blocknr);
}

static void h_free_meta(struct tx *tx, u64 blocknr, u64 birth)
{
	struct harness *h = tx->priv;

	if (birth == tx->txg)
		h->metaa.free[h->metaa.nfree++] = blocknr;
	else
		h->metaa.deferred[h->metaa.ndeferred++] = blocknr;
}

static const struct tx_ops h_tx_ops = {h_alloc_meta, h_free_meta};

static int h_alloc(void *priv, struct tx *tx, u64 want, u64 *start, u64 *got)
{
	struct harness *h = priv;
	struct ualloc *a = &h->dataa;

	if (a->nfree) {
		*start = a->free[--a->nfree];
		*got = 1;
		return 0;
	}
	if (a->next == a->n)
		return -ENOSPC;
	*start = a->next;
	*got = MIN(want, a->n - a->next);
	a->next += *got;
	return 0;
}

static void h_free(void *priv, struct tx *tx, u64 start, u64 count)
{
	struct harness *h = priv;

	for (u64 i = 0; i < count; i++)
		h->dataa.deferred[h->dataa.ndeferred++] = start + i;
}

static u64 h_avail(void *priv)
{
	struct harness *h = priv;

	return h->dataa.nfree + (h->dataa.n - h->dataa.next);
}

static u64 h_deferred(void *priv)
{
	struct harness *h = priv;

	return h->dataa.ndeferred;
}

static int h_ilog_append(void *priv, struct tx *tx, u16 type, const void *p, u16 len)
{
	return 0;
}

static int h_ilog_flush(void *priv)
{
	struct harness *h = priv;

	return bdev_flush(h->meta); /* what one group commit of the log costs */
}

static int null_read(struct bdev *b, void *buf, size_t len, u64 off)
{
	memset(buf, 0, len);
	return 0;
}

static int null_write(struct bdev *b, const void *buf, size_t len, u64 off)
{
	return 0;
}

static int null_flush(struct bdev *b)
{
	return 0;
}

static void null_close(struct bdev *b)
{
	free(b);
}

static const struct bdev_ops null_ops = {null_read, null_write, null_flush, null_close};

/* Reads zeros, drops writes: isolates the engine's own work from data I/O. */
static struct bdev *null_bdev(u64 size)
{
	struct bdev *b = xzalloc(sizeof(*b));

	b->ops = &null_ops;
	b->size = size;
	b->name = "null";
	return b;
}

static bool g_null_data;	 /* h_open: null origin and snapstore */
static bool g_persist_dl = true; /* h_open: params.persist_deadlists (BENCH_DEADLISTS) */

static struct bdev *open_file(char *path, const char *name, u64 size)
{
	const char *dir = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
	struct bdev *b;
	int fd;

	snprintf(path, 512, "%s/bench_engine.%d.%s", dir, (int)getpid(), name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size)) {
		perror(path);
		exit(1);
	}
	close(fd);
	if (bdev_open(path, BDEV_BUFFERED, &b)) {
		fprintf(stderr, "%s: cannot open\n", path);
		exit(1);
	}
	return b;
}

static void h_open(struct harness *h, u64 origin_chunks, u64 data_chunks, bool log)
{
	struct engine_roots roots = {0};
	struct engine_params p;

	memset(h, 0, sizeof(*h));
	if (g_null_data) {
		h->origin = null_bdev(origin_chunks * CS);
		h->snap = null_bdev(data_chunks * CS);
	} else {
		h->origin = open_file(h->path[0], "origin", origin_chunks * CS);
		h->snap = open_file(h->path[1], "snapstore", data_chunks * CS);
	}
	h->meta = open_file(h->path[2], "meta", META_BYTES);
	h->cache = cache_create(h->meta, CACHE_BUDGET);
	ualloc_init(&h->metaa, META_BYTES / DDSNAP_BLOCK_SIZE);
	h->metaa.next = 1;
	ualloc_init(&h->dataa, data_chunks);
	h->tx = (struct tx){.txg = 1, .cache = h->cache, .ops = &h_tx_ops, .priv = h};
	h->space = (struct engine_space_ops){h_alloc, h_free, h_avail, h_deferred, NULL};
	p = (struct engine_params){
		.chunk_size = CS,
		.origin_chunks = origin_chunks,
		.origin = h->origin,
		.snapstore = h->snap,
		.cache = h->cache,
		.space = &h->space,
		.space_priv = h,
		.ilog_append = log ? h_ilog_append : NULL,
		.ilog_flush = log ? h_ilog_flush : NULL,
		.ilog_priv = h,
		.persist_deadlists = g_persist_dl,
	};
	h->params = p;
	if (engine_open(&p, &roots, &h->e)) {
		fprintf(stderr, "engine_open failed\n");
		exit(1);
	}
}

static void h_sync(struct harness *h)
{
	struct engine_roots roots;

	if (engine_sync(h->e, &h->tx, &roots) || cache_sync(h->cache, h->tx.txg)) {
		fprintf(stderr, "sync failed\n");
		exit(1);
	}
	ualloc_synced(&h->metaa);
	ualloc_synced(&h->dataa);
	h->tx.txg++;
}

static void h_close(struct harness *h)
{
	engine_close(h->e);
	cache_destroy(h->cache);
	bdev_close(h->origin);
	bdev_close(h->snap);
	bdev_close(h->meta);
	for (int i = 0; i < 3; i++)
		if (h->path[i][0])
			unlink(h->path[i]);
	free(h->metaa.free);
	free(h->metaa.deferred);
	free(h->dataa.free);
	free(h->dataa.deferred);
}

static void must(int err, const char *what)
{
	if (err) {
		fprintf(stderr, "%s: %d\n", what, err);
		exit(1);
	}
}

/* Copies out (or queries) chunks [first, first + n) in batches, syncing every 64 batches. */
static void query_range(struct harness *h, u64 first, u64 n, u64 expect_copied)
{
	for (u64 c = first; c < first + n; c += BATCH) {
		struct engine_range r = {c, MIN(BATCH, first + n - c)};
		u64 copied;

		must(engine_origin_write(h->e, &h->tx, &r, 1, NULL, &copied), "origin write");
		if (copied != (expect_copied ? r.count : 0)) {
			fprintf(stderr, "copied %llu of %llu\n", (unsigned long long)copied,
				(unsigned long long)r.count);
			exit(1);
		}
		if ((c / BATCH) % 64 == 63)
			h_sync(h);
	}
}

/*------------------------------------------------------------------------------------------
 * The benchmarks
 *----------------------------------------------------------------------------------------*/

/* One run: chunks per second for copy-outs and for the same query again (all safe). */
static void decisions_run(u32 nsnaps, bool durable, double *copy, double *safe)
{
	u64 n = durable ? COPY_CHUNKS / 4 : COPY_CHUNKS;
	double (*clock)(void) = durable ? wall : now;
	struct harness h;
	double t;

	h_open(&h, n, n + 1024, durable);
	for (u32 s = 1; s <= nsnaps; s++)
		must(engine_create(h.e, &h.tx, s, s, 0), "create");
	h_sync(&h);
	t = clock();
	query_range(&h, 0, n, true);
	*copy = (double)n / (clock() - t);
	t = now();
	query_range(&h, 0, n, false);
	*safe = (double)n / (now() - t);
	h_close(&h);
}

static void bench_decisions(void)
{
	static const u32 snaps[] = {1, 100, 10000};
	double base[4] = {0};

	printf("1. origin write decisions, batches of %d chunks, %d chunks per run, best of %d\n"
	       "   engine:  copy-out with null data devices (metadata work only), CPU time\n"
	       "   files:   copy-out, 4 KiB read + write of buffered files per chunk, CPU time\n"
	       "   durable: files plus one snapstore and one log fdatasync per batch, wall time\n"
	       "   safe:    the same query again, every chunk already copied in this gen\n",
	       BATCH, COPY_CHUNKS, RUNS);
	printf("   %-9s %12s %6s %12s %6s %12s %6s %12s %6s\n", "snapshots", "engine ch/s", "vs 1",
	       "files ch/s", "vs 1", "durable ch/s", "vs 1", "safe ch/s", "vs 1");
	for (size_t i = 0; i < ARRAY_SIZE(snaps); i++) {
		double best[4] = {0};

		for (int r = 0; r < RUNS; r++) {
			double copy, safe;

			g_null_data = true;
			decisions_run(snaps[i], false, &copy, &safe);
			g_null_data = false;
			best[0] = MAX(best[0], copy);
			best[3] = MAX(best[3], safe);
			decisions_run(snaps[i], false, &copy, &safe);
			best[1] = MAX(best[1], copy);
			best[3] = MAX(best[3], safe);
			decisions_run(snaps[i], true, &copy, &safe);
			best[2] = MAX(best[2], copy);
		}
		for (int k = 0; k < 4 && !i; k++)
			base[k] = best[k];
		printf("   %-9u %12.0f %5.2fx %12.0f %5.2fx %12.0f %5.2fx %12.0f %5.2fx\n",
		       snaps[i], best[0], best[0] / base[0], best[1], best[1] / base[1], best[2],
		       best[2] / base[2], best[3], best[3] / base[3]);
	}
}

static void bench_create_delete(void)
{
	static const u64 freed[] = {0, 1000, 10000, 100000};
	static const u32 marks[] = {10, 100, 1000, 10000};
	struct harness h;
	double t0 = now(), mark_t = t0;
	u32 prev = 0;

	printf("\n2. snapshot create / delete latency, CPU time (no log flush: metadata only)\n");
	printf("   %-26s %12s\n", "create, live snapshots", "us/create");
	h_open(&h, 1024, 1024, false);
	for (u32 m = 0, s = 1; s <= MAX_SNAPS; s++) {
		must(engine_create(h.e, &h.tx, s, s, 0), "create");
		if (s == marks[m]) {
			double t = now();

			printf("   %6u .. %-16u %12.2f\n", prev + 1, s,
			       1e6 * (t - mark_t) / (s - prev));
			prev = s;
			mark_t = t;
			m++;
			h_sync(&h);
		}
	}
	printf("   %-26s %12s\n", "delete (nothing unique)", "us/delete");
	{
		u32 *tags = xmalloc(MAX_SNAPS * sizeof(*tags)), nt = MAX_SNAPS;

		for (u32 k = 0; k < nt; k++)
			tags[k] = k + 1;
		for (u32 live = MAX_SNAPS; live >= 100; live /= 10) {
			const u32 n = 50;
			double t;

			while (nt > live) /* thin out evenly, untimed */
				must(engine_delete(h.e, &h.tx, tags[--nt]), "delete");
			h_sync(&h);
			t = now();
			for (u32 k = 0; k < n; k++) {
				u32 mid = nt / 2;

				must(engine_delete(h.e, &h.tx, tags[mid]), "delete");
				memmove(&tags[mid], &tags[mid + 1], (nt - mid - 1) * sizeof(*tags));
				nt--;
			}
			printf("   %6u live %19.2f\n", live, 1e6 * (now() - t) / n);
		}
		free(tags);
	}
	h_close(&h);
	printf("   %-26s %12s %12s\n", "delete, freed exceptions", "ms", "us/freed");
	for (size_t i = 0; i < ARRAY_SIZE(freed); i++) {
		double t;

		h_open(&h, freed[i] + 64, freed[i] + 64, false);
		must(engine_create(h.e, &h.tx, 1, 1, 0), "create");
		query_range(&h, 0, freed[i], true);
		must(engine_create(h.e, &h.tx, 2, 2, 0), "create");
		h_sync(&h);
		t = now();
		must(engine_delete(h.e, &h.tx, 1), "delete");
		t = now() - t;
		printf("   %-26llu %12.3f %12.3f\n", (unsigned long long)freed[i], 1e3 * t,
		       freed[i] ? 1e6 * t / (double)freed[i] : 0.0);
		h_close(&h);
	}
	(void)t0;
}

static u64 full_scan_min_death;

static int full_scan_entry(void *arg, const void *key, const void *value)
{
	u64 *n = arg;

	*n += btree_get_le64(key, 1) > full_scan_min_death;
	return 0;
}

/* The baseline: every leaf of the exception tree read, every entry tested. */
static u64 full_scan(struct harness *h, u64 after_gen, u64 *leaves)
{
	struct engine_roots roots;
	struct btree_walk w = {0};
	struct btree *t;
	u64 n = 0;

	must(engine_sync(h->e, &h->tx, &roots), "sync");
	must(btree_open(&engine_exception_tree_type, h->cache, &roots.exceptions, &t), "open");
	full_scan_min_death = after_gen;
	w.entry = full_scan_entry;
	w.arg = &n;
	must(btree_walk(t, &w), "walk");
	*leaves = w.leaves_visited;
	btree_close(t);
	return n;
}

static void bench_changelist(void)
{
	static const double pct[] = {0.1, 1, 10};

	printf("\n3. changelist over %d exceptions, random chunks changed\n", CL_EXCEPTIONS);
	printf("   (changelist: walk pruned by max death; full scan: every leaf, every entry;\n"
	       "   both with the tree in cache, CPU time)\n");
	printf("   %-8s %10s %12s %10s %14s %14s %9s\n", "changed", "chunks", "leaves read",
	       "of leaves", "changelist ms", "full scan ms", "speedup");
	for (size_t i = 0; i < ARRAY_SIZE(pct); i++) {
		u64 nchg = (u64)(CL_EXCEPTIONS * pct[i] / 100), *chunks, n;
		struct engine_walk_stats ws;
		struct btree_stats bs;
		struct harness h;
		double t, tcl, tfull;

		h_open(&h, CL_EXCEPTIONS, 2 * CL_EXCEPTIONS, false);
		must(engine_create(h.e, &h.tx, 1, 1, 0), "create");
		query_range(&h, 0, CL_EXCEPTIONS, true);
		must(engine_create(h.e, &h.tx, 2, 2, 0), "create");
		for (u64 k = 0; k < nchg;) {
			struct engine_range r = {rnd() % CL_EXCEPTIONS, 1};
			u64 copied;

			must(engine_origin_write(h.e, &h.tx, &r, 1, NULL, &copied), "write");
			k += copied;
		}
		h_sync(&h);
		t = now();
		must(engine_changelist(h.e, 2, ENGINE_HEAD, &chunks, &n, &ws), "changelist");
		tcl = now() - t;
		free(chunks);
		t = now();
		if (full_scan(&h, 2, &bs.leaves) < n)
			must(-EILSEQ, "full scan found fewer changes");
		tfull = now() - t;
		printf("   %6.1f%% %10llu %12llu %10llu %14.3f %14.3f %8.1fx\n", pct[i],
		       (unsigned long long)n, (unsigned long long)ws.leaves_visited,
		       (unsigned long long)bs.leaves, 1e3 * tcl, 1e3 * tfull, tfull / tcl);
		h_close(&h);
	}
}

/*
 * Open cost: rebuilt deadlists are derived state, one pass over the exception tree
 * (engine.c), so opening costs O(exceptions) once, cold (cache dropped) and warm; persisted
 * ones are opened by their roots, O(snapshots + sublists).
 */
static void bench_open(void)
{
	static const u64 sizes[] = {10000, 100000, 1000000};

	printf("\n4. engine open (snapshot table load + deadlists %s), 2 snapshots\n",
	       g_persist_dl ? "opened" : "rebuilt");
	printf("   %-12s %14s %14s %16s\n", "exceptions", "cold ms", "warm ms", "ns/exception");
	g_null_data = true;
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		struct engine_roots roots;
		struct harness h;
		double t, cold, warm;

		h_open(&h, sizes[i], sizes[i] + 64, false);
		must(engine_create(h.e, &h.tx, 1, 1, 0), "create");
		query_range(&h, 0, sizes[i], true);
		must(engine_create(h.e, &h.tx, 2, 2, 0), "create");
		must(engine_sync(h.e, &h.tx, &roots), "sync");
		must(cache_sync(h.cache, h.tx.txg), "cache sync");
		engine_close(h.e);
		cache_destroy(h.cache);
		h.cache = cache_create(h.meta, CACHE_BUDGET);
		h.params.cache = h.cache;
		t = wall();
		must(engine_open(&h.params, &roots, &h.e), "open");
		cold = wall() - t;
		engine_close(h.e);
		t = now();
		must(engine_open(&h.params, &roots, &h.e), "open");
		warm = now() - t;
		printf("   %-12llu %14.1f %14.1f %16.0f\n", (unsigned long long)sizes[i],
		       1e3 * cold, 1e3 * warm, 1e9 * warm / (double)sizes[i]);
		h_close(&h);
	}
	g_null_data = false;
}

int main(int argc, char **argv)
{
	const char *dl = getenv("BENCH_DEADLISTS"), *only = getenv("BENCH_ONLY");

	log_set_level(LOGL_WARN);
	if (dl && strcmp(dl, "persisted") && strcmp(dl, "rebuilt")) {
		fprintf(stderr, "BENCH_DEADLISTS=%s: expected persisted or rebuilt\n", dl);
		return 2;
	}
	g_persist_dl = !dl || !strcmp(dl, "persisted");
	printf("bench_engine: chunk %u bytes, cache %zu MiB, files in %s, deadlists %s\n", CS,
	       CACHE_BUDGET >> 20, getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp",
	       g_persist_dl ? "persisted" : "rebuilt");
	if (!only || strchr(only, '1'))
		bench_decisions();
	if (!only || strchr(only, '2'))
		bench_create_delete();
	if (!only || strchr(only, '3'))
		bench_changelist();
	if (!only || strchr(only, '4'))
		bench_open();
	return 0;
}
