// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench_btree.c - throughput and space of the copy-on-write B+tree with exception-tree-shaped
 * entries: key (chunk, death) 16 bytes, value (birth, address) 16 bytes, aggregate = death.
 *
 * For each size N (default 10^6 and 10^7; or the sizes given as arguments):
 *   insert  N entries in random chunk order, a txg synced every N/10 inserts (btree_sync +
 *           cache_sync, included in the rate: copy-on-write rewrites each touched leaf once
 *           per txg, which is the real cost of random inserts);
 *   lookup  random present keys (min(N, 2*10^6) of them) through a cache of bounded size;
 *   delete  random present keys (min(N, 10^6) of them), one txg;
 * then reports the tree's shape, on-disk bytes per million entries, the bytes of internal
 * nodes per million (what must stay cached for one device read per lookup) and the peak
 * cache footprint per million entries.
 *
 * The device is a buffered file (BENCH_DIR, default /tmp) and the bench never flushes it:
 * this measures the tree and the cache, not the disk.  Memory stays bounded by the cache
 * budget (CACHE_BUDGET) plus the dirty blocks of one txg; with random keys one txg of N/10
 * inserts touches most leaves, so at 10^7 entries that is most of the tree (about 470 MiB,
 * under 1 GiB resident in all).  Rates are reported per CPU second as well as per wall
 * second, because the wall-clock rate on a shared machine measures the neighbours.
 */
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "pdata/btree.h"
#include "blk/bdev.h"
#include "blk/cache.h"
#include "snap/engine.h"

/* Clean-block budget: a quarter of the 10^7 tree, so lookups do go to the device. */
#define CACHE_BUDGET ((size_t)128 << 20)
/* Syncs per insert phase: fewer means more rewrites avoided, more dirty memory. */
#define TXGS_PER_FILL 10
#define LOOKUPS_MAX   2000000ull
#define DELETES_MAX   1000000ull

struct balloc {
	u64 nblocks, next;
	u64 *free, nfree;
	u64 *deferred, ndeferred, deferred_cap;
};

static int balloc_alloc(struct tx *tx, u64 *blocknr)
{
	struct balloc *a = tx->priv;

	if (a->nfree) {
		*blocknr = a->free[--a->nfree];
		return 0;
	}
	if (a->next >= a->nblocks)
		return -ENOSPC;
	*blocknr = a->next++;
	return 0;
}

static void balloc_free(struct tx *tx, u64 blocknr, u64 birth)
{
	struct balloc *a = tx->priv;

	if (birth == tx->txg) {
		a->free[a->nfree++] = blocknr;
		return;
	}
	if (a->ndeferred == a->deferred_cap) {
		a->deferred_cap = a->deferred_cap ? 2 * a->deferred_cap : 4096;
		a->deferred = xrealloc(a->deferred, a->deferred_cap * sizeof(u64));
	}
	a->deferred[a->ndeferred++] = blocknr;
}

static const struct tx_ops balloc_ops = {balloc_alloc, balloc_free};

/* A bijection on u64, so distinct i give distinct, scattered chunks. */
static u64 mix(u64 x)
{
	x *= 0x9e3779b97f4a7c15ull;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return x;
}

static void make_key(u8 *k, u64 i)
{
	btree_put_le64(k, 0, mix(i));
	btree_put_le64(k, 1, 1 + (i & 63));
}

/* Wall and CPU seconds: the CPU rate is the one that survives a busy shared machine. */
struct stamp {
	double wall, cpu;
};

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct stamp now(void)
{
	return (struct stamp){clock_s(CLOCK_MONOTONIC), clock_s(CLOCK_PROCESS_CPUTIME_ID)};
}

static struct stamp since(struct stamp t0)
{
	struct stamp t1 = now();

	return (struct stamp){t1.wall - t0.wall, t1.cpu - t0.cpu};
}

static u64 rng_state = 88172645463325252ull;

static u64 rnd(void)
{
	return xorshift64(&rng_state);
}

struct run {
	struct bdev *bdev;
	struct cache *cache;
	struct balloc a;
	struct tx tx;
	u64 peak_cached;
};

static void note_peak(struct run *r)
{
	struct cache_stats st;

	cache_stats(r->cache, &st);
	r->peak_cached = MAX(r->peak_cached, st.cached);
}

static void sync_txg(struct run *r, struct btree *t)
{
	note_peak(r);
	VERIFY(btree_sync(t, &r->tx) == 0);
	VERIFY(cache_sync(r->cache, r->tx.txg) == 0);
	for (u64 i = 0; i < r->a.ndeferred; i++)
		r->a.free[r->a.nfree++] = r->a.deferred[i];
	r->a.ndeferred = 0;
	r->tx.txg++;
}

static int open_device(u64 bytes, struct bdev **out)
{
	const char *dir = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
	char path[256];
	int fd, r;

	snprintf(path, sizeof(path), "%s/bench_btree.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	r = ftruncate(fd, (off_t)bytes) ? -errno : 0;
	close(fd);
	if (!r)
		r = bdev_open(path, BDEV_BUFFERED, out);
	unlink(path);
	return r;
}

static void bench(u64 n)
{
	u64 lookups = MIN(n, LOOKUPS_MAX), deletes = MIN(n, DELETES_MAX);
	/* Two copies of a half-full tree, plus the frees deferred by one txg. */
	u64 nblocks = n / 60 * 3 + 100000;
	struct blkptr empty = {0};
	struct btree_stats st;
	struct run r = {0};
	struct btree *t;
	u8 k[16], v[16];
	struct stamp t0, t_ins, t_look, t_del;
	u64 *order;

	if (open_device(nblocks * DDSNAP_BLOCK_SIZE, &r.bdev)) {
		fprintf(stderr, "bench_btree: cannot create the device file\n");
		exit(1);
	}
	r.cache = cache_create(r.bdev, CACHE_BUDGET);
	r.a.nblocks = nblocks;
	r.a.next = 1;
	r.a.free = xmalloc(nblocks * sizeof(u64));
	r.tx = (struct tx){.txg = 1, .cache = r.cache, .ops = &balloc_ops, .priv = &r.a};
	VERIFY(btree_open(&engine_exception_tree_type, r.cache, &empty, &t) == 0);

	t0 = now();
	for (u64 i = 0; i < n; i++) {
		make_key(k, i);
		btree_put_le64(v, 0, i & 63);
		btree_put_le64(v, 1, i);
		VERIFY(btree_insert(t, &r.tx, k, v, BTREE_NOOVERWRITE) == 0);
		if ((i + 1) % (n / TXGS_PER_FILL) == 0)
			sync_txg(&r, t);
	}
	sync_txg(&r, t);
	t_ins = since(t0);

	VERIFY(btree_stats(t, &st) == 0);
	VERIFY(st.entries == n);

	t0 = now();
	for (u64 i = 0; i < lookups; i++) {
		make_key(k, rnd() % n);
		VERIFY(btree_lookup(t, k, v) == 0);
	}
	t_look = since(t0);
	note_peak(&r);

	/* Delete distinct random keys: a random sample of indices without repeats. */
	order = xmalloc(deletes * sizeof(u64));
	for (u64 i = 0; i < deletes; i++)
		order[i] = (mix(i ^ 0x5bd1e995) % (n / deletes)) + i * (n / deletes);
	t0 = now();
	for (u64 i = 0; i < deletes; i++) {
		make_key(k, order[i]);
		VERIFY(btree_delete(t, &r.tx, k, NULL) == 0);
	}
	sync_txg(&r, t);
	t_del = since(t0);

	printf("%9llu  %6u  %7llu  %5llu  %8.0f %8.0f  %8.0f %8.0f  %8.0f %8.0f  %5.1f  %5.1f  "
	       "%6.2f  "
	       "%6.1f\n",
	       (unsigned long long)n, st.height, (unsigned long long)st.leaves,
	       (unsigned long long)st.internal, (double)n / t_ins.cpu, (double)n / t_ins.wall,
	       (double)lookups / t_look.cpu, (double)lookups / t_look.wall,
	       (double)deletes / t_del.cpu, (double)deletes / t_del.wall,
	       (double)st.bytes / ((double)n / 1e6) / 1048576.0,
	       100.0 * (double)st.entries / (double)st.leaf_slots,
	       (double)st.internal * DDSNAP_BLOCK_SIZE / ((double)n / 1e6) / 1048576.0,
	       (double)r.peak_cached * DDSNAP_BLOCK_SIZE / ((double)n / 1e6) / 1048576.0);
	fflush(stdout);
	free(order);
	btree_close(t);
	cache_destroy(r.cache);
	bdev_close(r.bdev);
	free(r.a.free);
	free(r.a.deferred);
}

int main(int argc, char **argv)
{
	printf("btree: exception-tree entries (16-byte key (chunk, death), 16-byte value), 4 KiB "
	       "nodes, random order, cache budget %zu MiB, buffered file, no flushes\n",
	       CACHE_BUDGET >> 20);
	printf("rates are ops per CPU second (and per wall second); sizes in MiB per million "
	       "entries\n");
	printf("%9s  %6s  %7s  %5s  %17s  %17s  %17s  %5s  %5s  %6s  %6s\n", "entries", "height",
	       "leaves", "inner", "insert/s cpu wall", "lookup/s cpu wall", "delete/s cpu wall",
	       "disk", "fill%", "inner", "cache");
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			bench(strtoull(argv[i], NULL, 0));
	} else {
		bench(1000000);
		bench(10000000);
	}
	return 0;
}
