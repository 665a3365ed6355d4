// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench_store.c - what the storage substrate costs: block cache lookups (hits, and misses
 * from a RAM device, which is the validation cost alone), and txg sync latency on a file on
 * this machine's disk (O_DIRECT writes, fdatasync flushes) as a function of the number of
 * dirty metadata blocks, against the raw device doing the same writes plus two flushes.
 *
 * Cache rates are per second of CPU time (the machine may be busy); sync latencies are
 * wall-clock, since waiting for the disk is the point.
 *
 * Usage: bench_store [--dir DIR]      (default /var/tmp; never tmpfs, which has no flush cost)
 * Prints Markdown tables; only ratios within one run mean anything.
 */
#include <fcntl.h>
#include <getopt.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "pdata/btree.h"
#include "util/log.h"
#include "store/store.h"

#define MB (1ULL << 20)
/* Entries in the tree before the sync measurements: about 800 leaves, 3 levels. */
#define BENCH_PRELOAD 200000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_validate(const void *block, char *why, size_t whylen)
{
	return 0;
}

static const struct block_type bench_type = {
	.name = "bench",
	.magic = 0xbe7c0b1c,
	.validate = bench_validate,
};

/* CPU time: the cache benchmarks measure work, not the machine's load. */
static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Cache hits and misses per second over @nblocks blocks on a RAM device. */
static void bench_cache(void)
{
	enum { NBLOCKS = 4096 };
	struct bdev *b = bdev_ram_create(NBLOCKS * DDSNAP_BLOCK_SIZE);
	struct cache *c = cache_create(b, 2 * NBLOCKS * DDSNAP_BLOCK_SIZE);
	struct cache *small = cache_create(b, 64 * DDSNAP_BLOCK_SIZE);
	struct cblock *cb;
	double t0, hit, miss;
	u64 n = 0, x = 88172645463325252ULL;

	for (u64 i = 0; i < NBLOCKS; i++) {
		cb = cache_new(c, &bench_type, i);
		cache_put(c, cb);
	}
	VERIFY(!cache_sync(c, 1));
	t0 = cpu_s();
	while (cpu_s() - t0 < 1.0)
		for (int i = 0; i < 10000; i++, n++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			VERIFY(!cache_read(c, &bench_type, x % NBLOCKS, 1, &cb, NULL, 0));
			cache_put(c, cb);
		}
	hit = (double)n / (cpu_s() - t0);
	n = 0;
	t0 = cpu_s();
	while (cpu_s() - t0 < 1.0)
		for (int i = 0; i < 1000; i++, n++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			VERIFY(!cache_read(small, &bench_type, x % NBLOCKS, 1, &cb, NULL, 0));
			cache_put(small, cb);
		}
	miss = (double)n / (cpu_s() - t0);
	printf("| cache lookup | ops/s |\n|---|---|\n");
	printf("| hit (random, 4096 cached blocks) | %.2f M |\n", hit / 1e6);
	printf("| miss from RAM (read + crc32c + validate + insert + evict) | %.2f M |\n",
	       miss / 1e6);
	cache_destroy(small);
	cache_destroy(c);
	bdev_close(b);
}

static void *zbuf(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, BDEV_ALIGN, len))
		abort();
	memset(p, 0x5a, len);
	return p;
}

/* Raw: @n consecutive 4 KiB blocks in one write (as cache_sync coalesces), flush, 1 block, flush. */
static double raw_commit(struct bdev *b, u64 n, u64 at)
{
	void *buf = zbuf(n * DDSNAP_BLOCK_SIZE);
	double t0 = now_s();

	VERIFY(!bdev_write(b, buf, n * DDSNAP_BLOCK_SIZE, at * DDSNAP_BLOCK_SIZE));
	VERIFY(!bdev_flush(b));
	VERIFY(!bdev_write(b, buf, DDSNAP_BLOCK_SIZE, 1 * DDSNAP_BLOCK_SIZE));
	VERIFY(!bdev_flush(b));
	free(buf);
	return now_s() - t0;
}

static u64 aggr0(const void *k, const void *v)
{
	return 0;
}

static const struct btree_type kv = {
	.name = "bench",
	.key_size = 8,
	.value_size = 8,
	.order = BTREE_KEY_LE64,
	.aggr = aggr0,
};

struct owner {
	struct store *s;
	struct btree *t;
};

static int owner_sync(void *arg, struct tx *tx)
{
	struct owner *o = arg;
	struct blkptr root;
	int r = btree_sync(o->t, tx);

	btree_root(o->t, &root);
	store_set_root(o->s, UB_ROOT_EXCEPTIONS, &root);
	return r;
}

/* Txg sync latency with about @leaves dirty tree leaves, median of @reps. */
static void bench_sync(const char *dir)
{
	static const u64 sizes[] = {1, 16, 256, 2048};
	struct store_format_params p = {.chunk_shift = 14, .origin_bytes = 1ULL << 30};
	struct store_config cfg = {.cache_bytes = 64 * MB, .no_sync_thread = true};
	char path[512], why[256];
	struct owner o;
	struct bdev *b;
	u64 key = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/bench_store.%d.img", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	VERIFY(fd >= 0 && !ftruncate(fd, (off_t)(512 * MB)));
	close(fd);
	VERIFY(!bdev_open(path, 0, &b));
	if (store_format(b, NULL, &p, why, sizeof(why))) {
		fprintf(stderr, "format: %s\n", why);
		exit(1);
	}
	cfg.snapstore = b;
	VERIFY(!store_open(&cfg, &o.s, why, sizeof(why)));
	{
		struct blkptr root = {0};
		struct store_hook h = {.pre_sync = owner_sync, .arg = &o};

		VERIFY(!btree_open(&kv, store_cache(o.s), &root, &o.t));
		store_add_hook(o.s, &h);
	}
	/* A tree of some size first, so that spread inserts dirty one leaf path each. */
	{
		struct tx *tx = store_tx_hold(o.s);
		u8 k[8], v[8] = {0};

		for (u64 j = 0; j < BENCH_PRELOAD; j++) {
			btree_put_le64(k, 0, j << 20);
			VERIFY(!btree_insert(o.t, tx, k, v, BTREE_OVERWRITE));
		}
		store_tx_release(o.s, tx);
		VERIFY(!store_sync(o.s));
	}
	printf("\n| dirty metadata blocks | txg sync (median of 5) | raw: same writes + 2 flushes "
	       "| "
	       "ratio |\n|---|---|---|---|\n");
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		double t[5], raw[5];
		struct cache_stats cs;
		u64 dirty = 0;

		for (int rep = 0; rep < 5; rep++) {
			struct tx *tx = store_tx_hold(o.s);
			u8 k[8], v[8] = {0};
			double t0;

			/* Keys spread over the tree so each lands in a different leaf. */
			for (u64 j = 0; j < sizes[i]; j++) {
				btree_put_le64(k, 0,
					       ((key++ * 2654435761ULL) % BENCH_PRELOAD << 20) + 1);
				VERIFY(!btree_insert(o.t, tx, k, v, BTREE_OVERWRITE));
			}
			store_tx_release(o.s, tx);
			cache_stats(store_cache(o.s), &cs);
			dirty = cs.dirty;
			t0 = now_s();
			VERIFY(!store_sync(o.s));
			t[rep] = now_s() - t0;
			raw[rep] = raw_commit(b, dirty ? dirty : 1, 100000);
		}
		for (int a = 0; a < 5; a++)
			for (int c = a + 1; c < 5; c++) {
				if (t[c] < t[a]) {
					double x = t[a];

					t[a] = t[c], t[c] = x;
				}
				if (raw[c] < raw[a]) {
					double x = raw[a];

					raw[a] = raw[c], raw[c] = x;
				}
			}
		printf("| %llu (%llu inserts) | %.2f ms | %.2f ms | %.2f |\n",
		       (unsigned long long)dirty, (unsigned long long)sizes[i], t[2] * 1e3,
		       raw[2] * 1e3, t[2] / raw[2]);
	}
	btree_close(o.t);
	store_close(o.s);
	bdev_close(b);
	unlink(path);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
					     {NULL, 0, NULL, 0}};
	const char *dir = "/var/tmp";
	int c;

	while ((c = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
		if (c != 'd') {
			fprintf(stderr, "usage: %s [--dir DIR]\n", argv[0]);
			return 2;
		}
		dir = optarg;
	}
	log_set_level(LOGL_WARN);
	bench_cache();
	bench_sync(dir);
	return 0;
}
