// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench_intent_log.c - records made durable per second by the intent log's group commit, with
 * 1, 8 and 64 concurrent writers, each against the same number of threads doing one 4 KiB
 * write + flush per record on the raw file (what durability costs without group commit).
 *
 * The log lives in a file on this machine's disk (the bdev file backend: O_DIRECT writes,
 * fdatasync flushes), never tmpfs: /var/tmp by default, or --dir.  Each writer loops
 * intent_log_commit() of a 48-byte payload (the size of a copy-out record) and measures
 * each commit's latency; a simulated txg layer quiesces and syncs a txg every
 * BENCH_TXG_MS, freeing ring space as the store would (no I/O of its own).
 *
 * Usage: bench_intent_log [--seconds S] [--dir DIR]      (defaults: 3 s per case, /var/tmp)
 * Prints one Markdown table; only ratios within one run mean anything.
 */
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "store/intent_log.h"

#define BENCH_LOG_BLOCKS  16384 /* 64 MiB ring: room for a few txgs at full speed */
#define BENCH_TXG_MS	  100	/* txg sync interval of the simulated store */
#define BENCH_PAYLOAD	  48	/* a copy-out record: chunk, birth, death, address, csum */
#define BENCH_MAX_WRITERS 64
#define LAT_BUCKETS	  40 /* log2 microsecond histogram */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct run {
	struct intent_log *log;
	pthread_rwlock_t txg_hold; /* writers shared; the txg layer exclusive to quiesce */
	u64 open_txg;
	double deadline;
	bool stop;
};

struct writer {
	struct run *run;
	u64 records, errors;
	u64 lat[LAT_BUCKETS];
};

static unsigned lat_bucket(double us)
{
	unsigned b = 0;

	while (b + 1 < LAT_BUCKETS && us >= (double)(1ull << (b + 1)))
		b++;
	return b;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct run *run = w->run;
	u8 p[BENCH_PAYLOAD];

	memset(p, 0xa5, sizeof(p));
	while (!__atomic_load_n(&run->stop, __ATOMIC_RELAXED)) {
		double t0 = now_s();
		u64 seq;
		int r;

		pthread_rwlock_rdlock(&run->txg_hold);
		r = intent_log_append(run->log, 1, run->open_txg, p, sizeof(p), INTENT_LOG_NOWAIT,
				      &seq);
		pthread_rwlock_unlock(&run->txg_hold);
		if (r == -EWOULDBLOCK) {
			if (intent_log_wait_space(run->log))
				break;
			continue;
		}
		if (r || intent_log_wait(run->log, seq)) {
			w->errors++;
			break;
		}
		w->records++;
		w->lat[lat_bucket((now_s() - t0) * 1e6)]++;
	}
	return NULL;
}

/* The simulated txg layer: quiesce, then sync the quiesced txg every BENCH_TXG_MS. */
static void txg_loop(struct run *run)
{
	while (now_s() < run->deadline) {
		struct intent_log_pos pos;
		u64 t;

		usleep(BENCH_TXG_MS * 1000);
		pthread_rwlock_wrlock(&run->txg_hold);
		t = run->open_txg++;
		pthread_rwlock_unlock(&run->txg_hold);
		pos = intent_log_sync_point(run->log, t);
		intent_log_synced(run->log, t, pos);
	}
}

static u64 percentile_us(const u64 *lat, u64 total, double pct)
{
	u64 want = (u64)((double)total * pct), seen = 0;

	for (unsigned b = 0; b < LAT_BUCKETS; b++) {
		seen += lat[b];
		if (seen > want)
			return 1ull << (b + 1); /* the bucket's upper bound */
	}
	return 0;
}

static void print_row(const char *what, unsigned writers, u64 records, u64 flushes, double secs,
		      const u64 *lat)
{
	printf("| %-26s | %7u | %11.0f | %9.0f | %13.1f | %7llu | %7llu |\n", what, writers,
	       (double)records / secs, (double)flushes / secs,
	       flushes ? (double)records / (double)flushes : 0.0,
	       (unsigned long long)percentile_us(lat, records, 0.50),
	       (unsigned long long)percentile_us(lat, records, 0.99));
}

struct raw_writer {
	struct bdev *dev;
	unsigned id, nthreads;
	double end;
	u64 n, errors;
	u64 lat[LAT_BUCKETS];
};

/* One 4 KiB write + flush per record, each thread in its own slots of the region. */
static void *raw_main(void *arg)
{
	struct raw_writer *w = arg;
	void *buf;
	double t;

	if (posix_memalign(&buf, BDEV_ALIGN, DDSNAP_BLOCK_SIZE)) {
		w->errors++;
		return NULL;
	}
	memset(buf, 0x5a, DDSNAP_BLOCK_SIZE);
	while ((t = now_s()) < w->end) {
		u64 slot = (w->n * w->nthreads + w->id) % BENCH_LOG_BLOCKS;

		if (bdev_write(w->dev, buf, DDSNAP_BLOCK_SIZE, slot * DDSNAP_BLOCK_SIZE) ||
		    bdev_flush(w->dev)) {
			w->errors++;
			break;
		}
		w->lat[lat_bucket((now_s() - t) * 1e6)]++;
		w->n++;
	}
	free(buf);
	return NULL;
}

/*
 * What durability costs without group commit: every record its own write and flush, from
 * @nthreads threads at once (the kernel may still merge concurrent flushes).
 */
static int bench_raw(struct bdev *dev, unsigned nthreads, double secs)
{
	static struct raw_writer w[BENCH_MAX_WRITERS];
	pthread_t th[BENCH_MAX_WRITERS];
	u64 lat[LAT_BUCKETS] = {0}, n = 0;
	double start = now_s();
	int r = 0;

	for (unsigned i = 0; i < nthreads; i++) {
		w[i] = (struct raw_writer){
			.dev = dev, .id = i, .nthreads = nthreads, .end = start + secs};
		VERIFY(pthread_create(&th[i], NULL, raw_main, &w[i]) == 0);
	}
	for (unsigned i = 0; i < nthreads; i++) {
		VERIFY(pthread_join(th[i], NULL) == 0);
		n += w[i].n;
		for (unsigned b = 0; b < LAT_BUCKETS; b++)
			lat[b] += w[i].lat[b];
		if (w[i].errors)
			r = -EIO;
	}
	print_row("raw 4K write+flush each", nthreads, n, n, now_s() - start, lat);
	return r;
}

static int bench_log(struct bdev *dev, unsigned nwriters, double secs, u64 guid)
{
	static struct writer w[BENCH_MAX_WRITERS];
	pthread_t th[BENCH_MAX_WRITERS];
	struct intent_log_config cfg = {
		.bdev = dev,
		.start = 0,
		.nblocks = BENCH_LOG_BLOCKS,
		.guid = guid, /* a fresh log: nothing of the previous case replays */
	};
	struct intent_log_stats st0, st;
	u64 records = 0, lat[LAT_BUCKETS] = {0};
	struct run run = {.open_txg = 1};
	double start, elapsed;
	int r;

	r = intent_log_open(&cfg, &run.log);
	if (r)
		return r;
	pthread_rwlock_init(&run.txg_hold, NULL);
	intent_log_stats(run.log, &st0);
	start = now_s();
	run.deadline = start + secs;
	for (unsigned i = 0; i < nwriters; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].run = &run;
		VERIFY(pthread_create(&th[i], NULL, writer_main, &w[i]) == 0);
	}
	txg_loop(&run);
	__atomic_store_n(&run.stop, true, __ATOMIC_RELAXED);
	/* One more sync, so no writer stays parked waiting for ring space. */
	run.deadline = now_s() + BENCH_TXG_MS / 1000.0;
	txg_loop(&run);
	for (unsigned i = 0; i < nwriters; i++) {
		VERIFY(pthread_join(th[i], NULL) == 0);
		records += w[i].records;
		for (unsigned b = 0; b < LAT_BUCKETS; b++)
			lat[b] += w[i].lat[b];
		if (w[i].errors)
			r = -EIO;
	}
	elapsed = now_s() - start;
	intent_log_stats(run.log, &st);
	intent_log_close(run.log);
	pthread_rwlock_destroy(&run.txg_hold);
	print_row("intent log group commit", nwriters, records, st.flushes - st0.flushes, elapsed,
		  lat);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, 'd'},
		{"seconds", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	static const unsigned writers[] = {1, 8, 64};
	const char *dir = "/var/tmp";
	double secs = 3;
	char path[4096];
	struct bdev *dev;
	void *zero;
	int c, fd, r = 0;

	while ((c = getopt_long(argc, argv, "d:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 's':
			secs = atof(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [--seconds S] [--dir DIR]\n", argv[0]);
			return 2;
		}
	}
	snprintf(path, sizeof(path), "%s/bench_intent_log.%d", dir, (int)getpid());
	/* Written out in full, so flushes never pay for allocating blocks. */
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	zero = xzalloc(1 << 20);
	for (u64 i = 0; i < (u64)BENCH_LOG_BLOCKS * DDSNAP_BLOCK_SIZE >> 20; i++)
		VERIFY(write(fd, zero, 1 << 20) == 1 << 20);
	VERIFY(fsync(fd) == 0);
	close(fd);
	free(zero);
	r = bdev_open(path, 0, &dev);
	if (r) {
		fprintf(stderr, "%s: %s\n", path, strerror(-r));
		unlink(path);
		return 1;
	}

	printf("intent log on %s (O_DIRECT + fdatasync), %.0f s per case, %d-byte records, "
	       "txg every %d ms\n\n",
	       path, secs, BENCH_PAYLOAD, BENCH_TXG_MS);
	printf("| %-26s | %7s | %11s | %9s | %13s | %7s | %7s |\n", "case", "writers", "records/s",
	       "flushes/s", "records/flush", "p50 us", "p99 us");
	printf("|%.28s|%.9s|%.13s|%.11s|%.15s|%.9s|%.9s|\n", "----------------------------",
	       "---------", "-------------", "-----------", "---------------", "---------",
	       "---------");
	for (size_t i = 0; i < ARRAY_SIZE(writers); i++) {
		if (bench_raw(dev, writers[i], secs))
			r = 1;
		if (bench_log(dev, writers[i], secs, 0xbe0c + i))
			r = 1;
	}
	bdev_close(dev);
	unlink(path);
	return r;
}
