// SPDX-License-Identifier: GPL-2.0-only
/*
 * store.c - stress of the store's transaction groups with real processes and real files:
 * a child runs random B+tree inserts, overwrites and deletes (each owning a data chunk, as a
 * copy-out does) on a file-backed store (O_DIRECT where the filesystem allows it) with the
 * sync thread on a short timer and a small dirty bound, and is SIGKILLed at a random moment.
 * The parent reopens the store and requires:
 *  - the reopened txg is the last one the child saw synced, or the one it was syncing;
 *  - the tree's content is exactly what it was when that txg was quiesced (a digest the
 *    child sent through a pipe from the pre-sync hook, before the txg could be durable);
 *  - `ddsnap check` finds the store clean (every checksum, no leak, nothing both free and
 *    used), and the store keeps working (one more txg, checked again).
 *
 *   stress_store [--duration SECS] [--seed N] [--dir DIR]     (STRESS_VERBOSE=1: per round)
 *
 * Prints its seed first; exits 0 when every round verified, 1 otherwise.
 */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "pdata/btree.h"
#include "snap/engine.h"
#include "util/log.h"
#include "store/store.h"
#include "store/store_check.h"
#include "common.h"

#define NKEYS	    2000
#define STORE_BYTES (48ULL << 20)
#define KILL_MIN_MS 20
#define KILL_MAX_MS 600

struct report {
	u32 kind; /* 1 = quiesced (about to be synced), 2 = synced */
	u32 pad;
	u64 txg, digest;
};

static u64 mix(u64 h, u64 v)
{
	h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

struct owner {
	struct store *s;
	struct btree *t;
	u64 model[NKEYS]; /* addr + 1, 0 = absent */
	u64 chunk_blocks;
	int pipe;
};

static u64 model_digest(const u64 *model)
{
	u64 h = 1;

	for (u64 k = 0; k < NKEYS; k++)
		if (model[k])
			h = mix(mix(h, k), model[k]);
	return h;
}

static void send_report(int fd, u32 kind, u64 txg, u64 digest)
{
	struct report r = {.kind = kind, .txg = txg, .digest = digest};

	/* One small write(2) to a pipe is atomic; a SIGKILL cannot tear it. */
	if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(3);
}

static int owner_pre_sync(void *arg, struct tx *tx)
{
	struct owner *o = arg;
	struct blkptr root;
	int r = btree_sync(o->t, tx);

	if (r)
		return r;
	btree_root(o->t, &root);
	store_set_root(o->s, UB_ROOT_EXCEPTIONS, &root);
	send_report(o->pipe, 1, tx->txg, model_digest(o->model));
	return 0;
}

static void owner_post_sync(void *arg, u64 txg)
{
	struct owner *o = arg;

	send_report(o->pipe, 2, txg, 0);
}

static int owner_open(struct owner *o, const char *path, bool sync_thread, char *why, size_t whylen)
{
	struct store_config cfg = {
		.cache_bytes = 1 << 20,
		.txg_timeout_ms = 30,
		.dirty_max_bytes = 64 * DDSNAP_BLOCK_SIZE,
		.no_sync_thread = !sync_thread,
	};
	struct store_hook h = {.pre_sync = owner_pre_sync, .post_sync = owner_post_sync, .arg = o};
	struct blkptr root;
	int r;

	r = bdev_open(path, 0, &cfg.snapstore);
	if (r)
		return r;
	r = store_open(&cfg, &o->s, why, whylen);
	if (r) {
		bdev_close(cfg.snapstore);
		return r;
	}
	o->chunk_blocks = label_chunk_blocks(store_label(o->s));
	store_root(o->s, UB_ROOT_EXCEPTIONS, &root);
	r = btree_open(&engine_exception_tree_type, store_cache(o->s), &root, &o->t);
	if (r)
		return r;
	store_add_hook(o->s, &h);
	return 0;
}

/* The child: random changes until killed. */
static void __noreturn child(const char *path, u64 seed, int fd)
{
	static struct owner o;
	char why[256];
	u8 key[16], val[16], old[16];
	u64 rng = seed | 1;

	o.pipe = fd;
	if (owner_open(&o, path, true, why, sizeof(why))) {
		fprintf(stderr, "child: open: %s\n", why);
		_exit(2);
	}
	for (;;) {
		u64 k = xorshift64(&rng) % NKEYS, start, n;
		struct tx *tx = store_tx_hold(o.s);
		int r;

		if (!tx)
			_exit(4);
		btree_put_le64(key, 0, k);
		btree_put_le64(key, 1, 1);
		if (xorshift64(&rng) % 100 < 70) {
			if (metaslab_alloc_data(store_metaslab(o.s), 1, &start, &n))
				_exit(5);
			btree_put_le64(val, 0, tx->txg);
			btree_put_le64(val, 1, start / o.chunk_blocks);
			r = btree_find(o.t, key, BTREE_EQ, NULL, old);
			r = btree_insert(o.t, tx, key, val,
					 r ? BTREE_NOOVERWRITE : BTREE_OVERWRITE);
			if (r)
				_exit(6);
			if (o.model[k])
				metaslab_free_data(store_metaslab(o.s),
						   (o.model[k] - 1) * o.chunk_blocks, 1,
						   btree_get_le64(old, 0));
			o.model[k] = start / o.chunk_blocks + 1;
		} else {
			r = btree_delete(o.t, tx, key, old);
			if (!r) {
				metaslab_free_data(store_metaslab(o.s),
						   (o.model[k] - 1) * o.chunk_blocks, 1,
						   btree_get_le64(old, 0));
				o.model[k] = 0;
			} else if (r != -ENODATA) {
				_exit(7);
			}
		}
		store_tx_release(o.s, tx);
	}
}

static u64 tree_digest(struct btree *t, int *err)
{
	struct btree_cursor c;
	u64 h = 1;
	int r;

	btree_cursor_init(&c, t);
	for (r = btree_cursor_seek(&c, NULL, BTREE_FIRST); !r; r = btree_cursor_next(&c))
		h = mix(mix(h, btree_get_le64(btree_cursor_key(&c), 0)),
			btree_get_le64(btree_cursor_value(&c), 1) + 1);
	btree_cursor_fini(&c);
	*err = r == -ENODATA ? 0 : r;
	return h;
}

static int check_clean(const char *path, u64 seed, int round)
{
	struct store_check_report rep;
	struct bdev *b;
	int r = bdev_open(path, BDEV_RDONLY, &b);

	if (r)
		return r;
	r = store_check(b, NULL, NULL, &rep);
	if (r || rep.errors) {
		fprintf(stderr, "seed %llu round %d: check: %d, %llu errors\n",
			(unsigned long long)seed, round, r, (unsigned long long)rep.errors);
		store_check(b, NULL, stderr, &rep);
		r = -EILSEQ;
	}
	bdev_close(b);
	return r;
}

/* One round: format, run the child, kill it, verify.  Returns 0 or -1. */
static int round_run(const char *path, u64 seed, int round)
{
	struct store_format_params p = {.chunk_shift = 12, .origin_bytes = 64ULL << 20};
	/* Before any report, the store is at txg 1, empty (digest 1). */
	struct report rep, quiesced = {.txg = 1, .digest = 1}, synced = {.txg = 1, .digest = 1};
	static struct owner o;
	struct uberblock ub;
	struct bdev *b;
	char why[256];
	int fds[2], fd, st, err;
	u64 rng = seed * 0x9E3779B97F4A7C15ULL + 1, digest;
	pid_t pid;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)STORE_BYTES))
		return -1;
	close(fd);
	if (bdev_open(path, 0, &b) || store_format(b, NULL, &p, why, sizeof(why)))
		return -1;
	bdev_close(b);
	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		child(path, seed, fds[1]);
	}
	close(fds[1]);
	usleep((useconds_t)(KILL_MIN_MS + xorshift64(&rng) % (KILL_MAX_MS - KILL_MIN_MS)) * 1000);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	if (!WIFSIGNALED(st)) {
		fprintf(stderr, "seed %llu round %d: child exited with %d\n",
			(unsigned long long)seed, round, WEXITSTATUS(st));
		return -1;
	}
	while (read(fds[0], &rep, sizeof(rep)) == (ssize_t)sizeof(rep)) {
		/* Syncs are serialised: "synced T" always follows "quiesced T". */
		if (rep.kind == 1)
			quiesced = rep;
		else if (rep.txg == quiesced.txg)
			synced = quiesced;
		else
			return -1;
	}
	close(fds[0]);

	memset(&o, 0, sizeof(o));
	o.pipe = open("/dev/null", O_WRONLY);
	if (owner_open(&o, path, false, why, sizeof(why))) {
		fprintf(stderr, "seed %llu round %d: reopen: %s\n", (unsigned long long)seed, round,
			why);
		return -1;
	}
	store_last_uberblock(o.s, &ub);
	digest = tree_digest(o.t, &err);
	if (err || (ub.txg != synced.txg && ub.txg != quiesced.txg) ||
	    (ub.txg == synced.txg && digest != synced.digest) ||
	    (ub.txg != synced.txg && digest != quiesced.digest)) {
		fprintf(stderr,
			"seed %llu round %d: reopened txg %llu (digest %016llx, error %d); child "
			"synced %llu (%016llx), was syncing %llu (%016llx)\n",
			(unsigned long long)seed, round, (unsigned long long)ub.txg,
			(unsigned long long)digest, err, (unsigned long long)synced.txg,
			(unsigned long long)synced.digest, (unsigned long long)quiesced.txg,
			(unsigned long long)quiesced.digest);
		return -1;
	}
	if (getenv("STRESS_VERBOSE"))
		printf("round %d: reopened at txg %llu (child synced %llu), digest %016llx\n",
		       round, (unsigned long long)ub.txg, (unsigned long long)synced.txg,
		       (unsigned long long)digest);
	/* It keeps working: one more txg on top of the recovered one. */
	if (store_sync(o.s)) {
		fprintf(stderr, "seed %llu round %d: sync after reopen failed\n",
			(unsigned long long)seed, round);
		return -1;
	}
	btree_close(o.t);
	{
		struct bdev *dev = o.s ? store_meta_bdev(o.s) : NULL;

		store_close(o.s);
		bdev_close(dev);
	}
	close(o.pipe);
	return check_clean(path, seed, round) ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct stress_args args = {
		.duration = 20, .seed = (u64)time(NULL) ^ ((u64)getpid() << 16), .dir = "/tmp"};
	u64 duration, seed;
	const char *dir;
	char path[512];
	time_t end;
	int rounds = 0;

	if (stress_args_parse(argc, argv, &args))
		return 2;
	duration = (u64)args.duration;
	seed = args.seed;
	dir = args.dir;
	printf("stress_store: seed %llu (--seed %llu replays), %llu s\n", (unsigned long long)seed,
	       (unsigned long long)seed, (unsigned long long)duration);
	fflush(stdout);
	log_set_level(LOGL_WARN);
	snprintf(path, sizeof(path), "%s/stress_store.%d.img", dir, (int)getpid());
	end = time(NULL) + (time_t)duration;
	do {
		if (round_run(path, seed + (u64)rounds, rounds)) {
			printf("stress_store: FAILED in round %d (--seed %llu reproduces it as "
			       "round "
			       "0)\n",
			       rounds, (unsigned long long)(seed + (u64)rounds));
			unlink(path);
			return 1;
		}
		rounds++;
	} while (time(NULL) < end);
	unlink(path);
	printf("stress_store: %d rounds verified\n", rounds);
	return 0;
}
