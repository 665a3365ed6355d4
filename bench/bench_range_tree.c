// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench_range_tree.c - allocation and free rates of the range tree (the allocator's free
 * space index) and of the metaslab allocator on top of it.
 *
 * For each tree size N (free segments; default 10^3, 10^5, 10^6, or the sizes given as
 * arguments) the tree first holds N free segments of 1..8 units with gaps, then:
 *   alloc+free   best-fit allocation of 1..8 units, then the free of an earlier
 *                allocation (the tree stays at about N segments: merges and splits);
 *   aligned      best fit of a 16-unit run aligned to 16 (a data batch of 16 chunks),
 *                then its free;
 *   add/remove   contains() test and add or remove of a random unit (split and merge);
 * each reported as operations per second and ns per operation (an alloc+free pair counts
 * as two).  Then the metaslab allocator over a RAM device (metadata blocks and 8-chunk data
 * runs with frees, a txg sync every 10^4 operations, included in the rate).
 * Rates are per CPU second of the benchmark thread (CLOCK_THREAD_CPUTIME_ID), so a busy
 * machine slows the run but not the numbers; only ratios within one run mean much.
 */
#include <string.h>
#include <time.h>
#include "blk/bdev.h"
#include "blk/cache.h"
#include "pdata/metaslab.h"
#include "pdata/range_tree.h"

#define OPS_PER_ROW 500000ull

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static u64 rng_state = 88172645463325252ull;

static u64 rng(void)
{
	return xorshift64(&rng_state);
}

static void row(u64 n, const char *what, u64 ops, double secs)
{
	printf("%10llu  %-12s %12.0f %9.1f\n", (unsigned long long)n, what, (double)ops / secs,
	       secs * 1e9 / (double)ops);
}

/* N free segments of 1..8 units separated by gaps of 1..8; returns the span. */
static u64 fill(struct range_tree *rt, u64 n)
{
	u64 pos = 0;

	for (u64 i = 0; i < n; i++) {
		u64 len = 1 + rng() % 8;

		VERIFY(range_tree_add(rt, pos, len) == 0);
		pos += len + 1 + rng() % 8;
	}
	return pos;
}

static void bench_tree(u64 n)
{
	struct range_tree *rt = range_tree_create();
	u64 span = fill(rt, n), *held = xmalloc(OPS_PER_ROW * sizeof(u64) * 2), nheld = 0;
	u64 ops = 0, start;
	double t0;

	/* alloc + free */
	t0 = now();
	for (u64 i = 0; i < OPS_PER_ROW; i++) {
		u64 len = 1 + rng() % 8;

		if (range_tree_find(rt, len, 1, &start) == 0) {
			VERIFY(range_tree_remove(rt, start, len) == 0);
			held[2 * nheld] = start;
			held[2 * nheld++ + 1] = len;
			ops++;
		}
		if (nheld > 64) {
			u64 k = rng() % nheld;

			VERIFY(range_tree_add(rt, held[2 * k], held[2 * k + 1]) == 0);
			held[2 * k] = held[2 * (nheld - 1)];
			held[2 * k + 1] = held[2 * (nheld - 1) + 1];
			nheld--;
			ops++;
		}
	}
	row(n, "alloc+free", ops, now() - t0);
	while (nheld--)
		VERIFY(range_tree_add(rt, held[2 * nheld], held[2 * nheld + 1]) == 0);

	/* aligned 16-unit runs: give the tree some room for them first */
	VERIFY(range_tree_add(rt, span + 1, 16 * 4096) == 0);
	ops = 0;
	t0 = now();
	for (u64 i = 0; i < OPS_PER_ROW / 2; i++) {
		VERIFY(range_tree_find(rt, 16, 16, &start) == 0);
		VERIFY(range_tree_remove(rt, start, 16) == 0);
		VERIFY(range_tree_add(rt, start, 16) == 0);
		ops += 2;
	}
	row(n, "aligned 16", ops, now() - t0);

	/* add/remove of single units anywhere */
	ops = 0;
	t0 = now();
	for (u64 i = 0; i < OPS_PER_ROW; i++) {
		u64 u = rng() % span;

		if (range_tree_contains(rt, u, 1))
			VERIFY(range_tree_remove(rt, u, 1) == 0);
		else
			VERIFY(range_tree_add(rt, u, 1) == 0);
		ops++;
	}
	row(n, "add/remove", ops, now() - t0);
	free(held);
	range_tree_destroy(rt);
}

/* The allocator: metadata blocks and data runs with frees and txg syncs. */
static void bench_metaslab(void)
{
	const u64 dev_blocks = 1ull << 20; /* 4 GiB of address space, one device */
	struct bdev *b = bdev_ram_create(dev_blocks / 32 * DDSNAP_BLOCK_SIZE);
	struct cache *c = cache_create(b, (size_t)16 << 20);
	struct metaslab_group *mg;
	struct metaslab_geometry g;
	u64 *held = xmalloc(OPS_PER_ROW * 2 * sizeof(u64)), nheld = 0, txg = 1, ops = 0;
	double t0;

	/* Metadata on a 1/32 device, data (64 KiB chunks) on the rest of the address space. */
	VERIFY(metaslab_geometry_init(&g, 16, dev_blocks - 16, 16, dev_blocks / 32 - 32, 4) == 0);
	VERIFY(metaslab_create(c, &g, txg, &mg) == 0);
	t0 = now();
	for (u64 i = 0; i < OPS_PER_ROW; i++) {
		u64 blk, got;

		if (i % 2 == 0 && metaslab_alloc_meta(mg, &blk) == 0) {
			held[2 * nheld] = blk;
			held[2 * nheld++ + 1] = 0;
			ops++;
		} else if (metaslab_alloc_data(mg, 8, &blk, &got) == 0) {
			held[2 * nheld] = blk;
			held[2 * nheld++ + 1] = got;
			ops++;
		}
		if (nheld > 20000) {
			u64 k = rng() % nheld;
			int r = held[2 * k + 1]
					? metaslab_free_data(mg, held[2 * k], held[2 * k + 1], 0)
					: metaslab_free_meta(mg, held[2 * k], 0);

			VERIFY(r >= 0);
			if (r == 1 && !held[2 * k + 1])
				cache_forget(c, held[2 * k]);
			held[2 * k] = held[2 * (nheld - 1)];
			held[2 * k + 1] = held[2 * (nheld - 1) + 1];
			nheld--;
			ops++;
		}
		if (i % 10000 == 9999) {
			VERIFY(metaslab_sync(mg, txg) == 0);
			VERIFY(cache_sync(c, txg) == 0);
			metaslab_sync_done(mg, txg);
			txg++;
		}
	}
	row(0, "metaslab", ops, now() - t0);
	metaslab_close(mg);
	cache_destroy(c);
	bdev_close(b);
	free(held);
}

int main(int argc, char **argv)
{
	u64 sizes[8] = {1000, 100000, 1000000};
	int nsizes = 3;

	if (argc > 1) {
		nsizes = 0;
		for (int i = 1; i < argc && nsizes < 8; i++)
			sizes[nsizes++] = strtoull(argv[i], NULL, 0);
	}
	printf("range tree: best fit over AVL trees by offset and by size\n");
	printf("%10s  %-12s %12s %9s\n", "segments", "operation", "ops/s", "ns/op");
	for (int i = 0; i < nsizes; i++)
		bench_tree(sizes[i]);
	printf("metaslab allocator (segments column: n/a): alloc_meta, alloc_data(8 chunks), "
	       "free, sync every 10^4\n");
	bench_metaslab();
	return 0;
}
