// SPDX-License-Identifier: GPL-2.0-only
/*
 * snaprace.c - snapshot reads racing first writes of the same chunks, at depth, every byte
 * checked (the VM scenario server-readrace runs it; DESIGN.md 5's read race).
 *
 *	snaprace fill DEV BYTES GEN	write generation GEN of the pattern to the first BYTES
 *					(overwrites them: DEV's data there is lost)
 *	snaprace check DEV BYTES GEN	check that the first BYTES hold generation GEN
 *	snaprace race ORIGIN SNAP BYTES CHUNK OLDGEN NEWGEN [THREADS] [SEED]
 *
 * race: the first BYTES of ORIGIN hold generation OLDGEN of the pattern below, and SNAP is
 * a snapshot device of it taken since.  Then THREADS writer threads (default 16) overwrite
 * every chunk of ORIGIN once with NEWGEN, in a seeded random order, each chunk as one write,
 * as 4 KiB writes in random order, or as two halves; while THREADS reader threads read SNAP
 * (4 KiB blocks, whole chunks, and two-chunk spans starting mid-chunk, at random) and check
 * that every 4 KiB block is OLDGEN's, until the writers are done and each reader has read
 * once more after that.  All I/O is O_DIRECT and synchronous, so each thread keeps one
 * request in flight: THREADS of each at once.
 *
 * Exit 0 (race: with "reads N writes M" on stdout); 1 with the first wrong block named on
 * stderr (and whether it holds NEWGEN, another generation, or neither); 2 for usage or I/O
 * errors.
 *
 * The pattern: block b of generation g is 512 64-bit words, word 0 = g << 40 | b, the rest
 * an xorshift sequence seeded from word 0, so a block read from the wrong place or the wrong
 * time is recognised as such.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK	    4096u
#define WORDS	    (BLOCK / 8)
#define MAX_THREADS 64
#define MAX_BLOCKS  256u /* blocks of a chunk: chunks up to 1 MiB */

static const char *origin_path, *snap_path;
static uint64_t bytes, chunk, nchunks, oldgen, newgen, seed;
static unsigned threads = 16;
static uint64_t *order;		       /* chunks in the writers' order */
static atomic_uint_fast64_t next_item; /* the writers' next index into order */
static atomic_uint_fast64_t reads, writes;
static atomic_int writers_left, failed;

static void die(const char *what, const char *path)
{
	fprintf(stderr, "snaprace: %s %s: %s\n", what, path, strerror(errno));
	exit(2);
}

/* A read or write of @want bytes at @off returned @got: exits naming a failure or a short one. */
static void check_io(ssize_t got, size_t want, const char *what, const char *path, uint64_t off)
{
	if (got == (ssize_t)want)
		return;
	if (got < 0)
		fprintf(stderr, "snaprace: %s %s at %" PRIu64 ": %s\n", what, path, off,
			strerror(errno));
	else
		fprintf(stderr, "snaprace: %s %s at %" PRIu64 ": %zd of %zu bytes\n", what, path,
			off, got, want);
	exit(2);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(uint64_t *w, uint64_t block, uint64_t gen)
{
	uint64_t s = (gen << 40 | block) * 0x9e3779b97f4a7c15ull | 1;

	w[0] = gen << 40 | block;
	for (unsigned i = 1; i < WORDS; i++)
		w[i] = xorshift(&s);
}

/* Which generation block @b holds: its gen if the block is exactly that gen's, else -1. */
static int64_t gen_of(const uint64_t *w, uint64_t b)
{
	uint64_t want[WORDS], g = w[0] >> 40;

	if ((w[0] & ((1ull << 40) - 1)) != b)
		return -1;
	fill(want, b, g);
	return memcmp(w, want, BLOCK) ? -1 : (int64_t)g;
}

static void *xbuf(size_t n)
{
	void *p;

	if (posix_memalign(&p, BLOCK, n))
		exit(2);
	return p;
}

static void xpwrite(int fd, const void *buf, size_t n, uint64_t off)
{
	check_io(pwrite(fd, buf, n, (off_t)off), n, "write of", origin_path, off);
	atomic_fetch_add(&writes, 1);
}

static void *writer(void *arg)
{
	int fd = open(origin_path, O_WRONLY | O_DIRECT);
	uint64_t *buf = xbuf(chunk), s = seed ^ (uintptr_t)arg * 7919 ^ 1, i;
	unsigned per = (unsigned)(chunk / BLOCK);

	if (fd < 0)
		die("open", origin_path);
	while ((i = atomic_fetch_add(&next_item, 1)) < nchunks && !atomic_load(&failed)) {
		uint64_t c = order[i], off = c * chunk;

		for (unsigned k = 0; k < per; k++)
			fill(buf + k * WORDS, off / BLOCK + k, newgen);
		switch (xorshift(&s) % 3) {
		case 0:
			xpwrite(fd, buf, chunk, off);
			break;
		case 1: { /* block by block, in a random order (main bounds per by MAX_BLOCKS) */
			unsigned idx[MAX_BLOCKS];

			for (unsigned k = 0; k < per; k++)
				idx[k] = k;
			for (unsigned k = per - 1; k > 0; k--) {
				unsigned j = (unsigned)(xorshift(&s) % (k + 1)), t = idx[k];

				idx[k] = idx[j];
				idx[j] = t;
			}
			for (unsigned k = 0; k < per; k++)
				xpwrite(fd, buf + idx[k] * WORDS, BLOCK, off + idx[k] * BLOCK);
			break;
		}
		default: /* second half first */
			xpwrite(fd, buf + per / 2 * WORDS, chunk - per / 2 * BLOCK,
				off + per / 2 * BLOCK);
			xpwrite(fd, buf, per / 2 * BLOCK, off);
			break;
		}
	}
	close(fd);
	free(buf);
	atomic_fetch_sub(&writers_left, 1);
	return NULL;
}

/* Prints the first block of @buf (blocks from @first on) that is not generation @gen. */
static bool check_blocks(const char *path, const uint64_t *buf, uint64_t first, uint64_t n,
			 uint64_t gen)
{
	for (uint64_t k = 0; k < n; k++) {
		uint64_t b = first + k;
		int64_t g = gen_of(buf + k * WORDS, b);

		if (g == (int64_t)gen)
			continue;
		if (!atomic_exchange(&failed, 1))
			fprintf(stderr,
				"snaprace: %s block %" PRIu64 " (byte %" PRIu64 ") holds %s, not "
				"generation %" PRIu64 "\n",
				path, b, b * BLOCK,
				g == (int64_t)newgen && newgen != gen ? "the origin's new data"
				: g >= 0			      ? "another generation"
								      : "neither generation",
				gen);
		return false;
	}
	return true;
}

static void *reader(void *arg)
{
	int fd = open(snap_path, O_RDONLY | O_DIRECT);
	uint64_t *buf = xbuf(2 * chunk), s = seed ^ (uintptr_t)arg * 104729 ^ 2;
	bool last = false;

	if (fd < 0)
		die("open", snap_path);
	while (!atomic_load(&failed)) {
		uint64_t c = xorshift(&s) % nchunks, off, len;

		switch (xorshift(&s) % 3) {
		case 0:
			off = c * chunk + xorshift(&s) % (chunk / BLOCK) * BLOCK;
			len = BLOCK;
			break;
		case 1:
			off = c * chunk;
			len = chunk;
			break;
		default:
			if (c + 1 >= nchunks)
				c = nchunks - 2;
			off = c * chunk + chunk / 2;
			len = chunk;
			break;
		}
		check_io(pread(fd, buf, len, (off_t)off), len, "read of", snap_path, off);
		atomic_fetch_add(&reads, 1);
		if (!check_blocks(snap_path, buf, off / BLOCK, len / BLOCK, oldgen))
			break;
		if (last)
			break;
		last = !atomic_load(&writers_left);
	}
	close(fd);
	free(buf);
	return NULL;
}

/* fill and check: the whole of [0, BYTES) of @path, 1 MiB at a time. */
static int whole(const char *path, bool write, uint64_t n, uint64_t gen)
{
	const uint64_t step = 1u << 20;
	int fd = open(path, (write ? O_WRONLY : O_RDONLY) | O_DIRECT);
	uint64_t *buf = xbuf(step);

	if (fd < 0)
		die("open", path);
	if (!n || n % BLOCK) {
		fprintf(stderr, "snaprace: BYTES must be whole 4 KiB blocks\n");
		return 2;
	}
	for (uint64_t off = 0; off < n; off += step) {
		uint64_t len = n - off < step ? n - off : step;

		if (write) {
			for (uint64_t k = 0; k < len / BLOCK; k++)
				fill(buf + k * WORDS, off / BLOCK + k, gen);
			check_io(pwrite(fd, buf, len, (off_t)off), len, "write of", path, off);
		} else {
			check_io(pread(fd, buf, len, (off_t)off), len, "read of", path, off);
			if (!check_blocks(path, buf, off / BLOCK, len / BLOCK, gen))
				return 1;
		}
	}
	if (write && fsync(fd))
		die("fsync of", path);
	close(fd);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t t[2 * MAX_THREADS];

	if (argc == 5 && (!strcmp(argv[1], "fill") || !strcmp(argv[1], "check"))) {
		newgen = ~0ull;
		return whole(argv[2], argv[1][0] == 'f', strtoull(argv[3], NULL, 0),
			     strtoull(argv[4], NULL, 0));
	}
	if (argc < 8 || argc > 10 || strcmp(argv[1], "race")) {
		fprintf(stderr, "usage: snaprace fill|check DEV BYTES GEN   (fill overwrites DEV's "
				"first BYTES)\n"
				"       snaprace race ORIGIN SNAP BYTES CHUNK OLDGEN NEWGEN "
				"[THREADS] [SEED]\n");
		return 2;
	}
	argv++;
	argc--;
	origin_path = argv[1];
	snap_path = argv[2];
	bytes = strtoull(argv[3], NULL, 0);
	chunk = strtoull(argv[4], NULL, 0);
	oldgen = strtoull(argv[5], NULL, 0);
	newgen = strtoull(argv[6], NULL, 0);
	if (argc > 7)
		threads = (unsigned)strtoul(argv[7], NULL, 0);
	seed = argc > 8 ? strtoull(argv[8], NULL, 0) : 1;
	if (chunk < 2 * BLOCK || chunk % BLOCK || chunk / BLOCK > MAX_BLOCKS || !bytes ||
	    bytes % chunk || bytes / chunk < 2 || !threads || threads > MAX_THREADS ||
	    oldgen == newgen || oldgen >> 24 || newgen >> 24) {
		fprintf(stderr,
			"snaprace: BYTES must be at least two chunks of CHUNK (8 KiB to 1 "
			"MiB, whole 4 KiB blocks), THREADS 1..%d, generations different and "
			"below 2^24\n",
			MAX_THREADS);
		return 2;
	}
	nchunks = bytes / chunk;
	order = calloc(nchunks, sizeof(*order));
	if (!order)
		return 2;
	for (uint64_t i = 0; i < nchunks; i++)
		order[i] = i;
	for (uint64_t i = nchunks - 1, s = seed | 1; i > 0; i--) {
		uint64_t j = xorshift(&s) % (i + 1), x = order[i];

		order[i] = order[j];
		order[j] = x;
	}
	atomic_store(&writers_left, (int)threads);
	for (unsigned i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, reader, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < threads; i++)
		pthread_create(&t[threads + i], NULL, writer, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < 2 * threads; i++)
		pthread_join(t[i], NULL);
	if (atomic_load(&failed))
		return 1;
	printf("reads %" PRIu64 " writes %" PRIu64 "\n", (uint64_t)atomic_load(&reads),
	       (uint64_t)atomic_load(&writes));
	return 0;
}
