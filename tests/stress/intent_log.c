// SPDX-License-Identifier: GPL-2.0-only
/*
 * stress intent_log - the intent log on a real file (O_DIRECT, fdatasync) under many
 * committing threads, SIGKILLed at random points, reopened and checked, for --duration
 * seconds.
 *
 * The parent forks a child per life.  The child opens the log from the "uberblock" the
 * previous lives left in shared memory, checks the replay against the model (also in shared
 * memory: every record's txg, type, length and payload salt, and whether its commit was
 * acknowledged), then runs STRESS_WRITERS threads committing records and a txg thread that
 * quiesces, syncs and publishes the replay position, until the parent kills it.  Replay must
 * return, in order, a run of exactly the records the model expects from the persisted
 * position (txg above the persisted synced txg), including every acknowledged one.  A
 * process kill loses nothing the kernel accepted, so this exercises real threads and the
 * file backend; power cuts are the unit test's (test_intent_log.c, faulty RAM device).
 *
 * Usage: stress_intent_log [--duration SECS] [--seed N] [--dir DIR]
 */
#include <fcntl.h>
#include <stdarg.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "store/intent_log.h"
#include "util/log.h"
#include "common.h"

#define STRESS_LOG_START  1   /* a block before the ring, as the store's label would be */
#define STRESS_LOG_BLOCKS 256 /* small, so the ring laps many times per run */
#define STRESS_WRITERS	  8
#define STRESS_MAX_LEN	  600
#define MODEL_CAP	  (1u << 17) /* records tracked; > the most an unsynced ring holds */
#define STRESS_GUID	  0x57e55

struct mrec {
	u64 seq; /* which record this slot describes */
	u64 txg, salt;
	u16 type, len;
	u32 acked;
};

struct ub {
	u64 synced_txg;
	struct intent_log_pos pos;
};

/* Shared between the parent and every child; survives SIGKILL. */
struct shared {
	struct ub ub[2];
	u32 cur;      /* ub[cur] is the persisted one; flipped atomically */
	u64 next_seq; /* model: records below were appended (as far as the model knows) */
	u64 lives, checked_acked, replayed;
	struct mrec rec[MODEL_CAP];
};

static struct shared *sh;

static u64 rng_next(u64 *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static void make_payload(u8 *p, size_t len, u64 salt, u64 seq)
{
	u64 s = (salt ^ (seq * 0x9E3779B97F4A7C15ULL)) | 1;

	for (size_t i = 0; i < len; i++)
		p[i] = (u8)rng_next(&s);
}

static __noreturn __printf(1, 2) void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	_exit(1);
}

/*----------------------------------------------------------------*/
/* The child */

struct check {
	struct ub ub;
	u64 expect; /* next record seq replay may return */
	u64 count;
};

/* Replay must return the model's records from the persisted position, skipping synced txgs. */
static int on_replay(void *arg, const struct intent_log_record *r)
{
	static u8 p[INTENT_LOG_MAX_PAYLOAD];
	struct check *c = arg;
	const struct mrec *m;

	for (; c->expect < r->seq; c->expect++) {
		m = &sh->rec[c->expect % MODEL_CAP];
		if (m->seq != c->expect || m->txg > c->ub.synced_txg)
			die("replay skipped record %llu", (unsigned long long)c->expect);
	}
	m = &sh->rec[r->seq % MODEL_CAP];
	if (r->seq != c->expect || m->seq != r->seq || r->seq >= sh->next_seq)
		die("replayed record %llu, expected %llu", (unsigned long long)r->seq,
		    (unsigned long long)c->expect);
	if (r->txg != m->txg || r->type != m->type || r->len != m->len)
		die("record %llu differs from what was appended", (unsigned long long)r->seq);
	make_payload(p, r->len, m->salt, r->seq);
	if (memcmp(p, r->payload, r->len))
		die("record %llu payload differs", (unsigned long long)r->seq);
	if (r->txg <= c->ub.synced_txg)
		die("record %llu of synced txg %llu replayed", (unsigned long long)r->seq,
		    (unsigned long long)r->txg);
	c->expect++;
	c->count++;
	return 0;
}

struct child {
	struct intent_log *log;
	pthread_rwlock_t txg_hold;
	pthread_mutex_t append_lock; /* appends in order, so the model slot is known first */
	u64 open_txg, salt;
};

static void *writer_main(void *arg)
{
	struct child *ch = arg;
	u64 rng = ch->salt ^ (u64)pthread_self();
	static __thread u8 p[STRESS_MAX_LEN];

	for (;;) {
		u16 len = (u16)(rng_next(&rng) % STRESS_MAX_LEN);
		u16 type = (u16)(1 + rng_next(&rng) % 100);
		struct intent_log_stats st;
		struct mrec *m;
		u64 seq, txg;
		int r;

		pthread_rwlock_rdlock(&ch->txg_hold);
		txg = __atomic_load_n(&ch->open_txg, __ATOMIC_SEQ_CST);
		pthread_mutex_lock(&ch->append_lock);
		intent_log_stats(ch->log, &st);
		/* The model learns of the record before it can possibly become durable. */
		m = &sh->rec[st.next_seq % MODEL_CAP];
		__atomic_store_n(&m->seq, UINT64_MAX, __ATOMIC_SEQ_CST);
		m->txg = txg;
		m->salt = ch->salt;
		m->type = type;
		m->len = len;
		m->acked = 0;
		__atomic_store_n(&m->seq, st.next_seq, __ATOMIC_SEQ_CST);
		__atomic_store_n(&sh->next_seq, st.next_seq + 1, __ATOMIC_SEQ_CST);
		make_payload(p, len, ch->salt, st.next_seq);
		r = intent_log_append(ch->log, type, txg, p, len, INTENT_LOG_NOWAIT, &seq);
		pthread_mutex_unlock(&ch->append_lock);
		pthread_rwlock_unlock(&ch->txg_hold);
		if (r == -EWOULDBLOCK) {
			if (intent_log_wait_space(ch->log))
				die("wait_space failed");
			continue;
		}
		if (r)
			die("append: %d", r);
		if (seq != st.next_seq)
			die("append got seq %llu, expected %llu", (unsigned long long)seq,
			    (unsigned long long)st.next_seq);
		r = intent_log_wait(ch->log, seq);
		if (r)
			die("wait: %d", r);
		__atomic_store_n(&m->acked, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void child_main(const char *path, u64 salt, bool verify_only)
{
	struct ub ub = sh->ub[__atomic_load_n(&sh->cur, __ATOMIC_SEQ_CST)];
	struct check c = {.ub = ub, .expect = ub.pos.rec_seq};
	struct intent_log_config cfg = {
		.start = STRESS_LOG_START,
		.nblocks = STRESS_LOG_BLOCKS,
		.guid = STRESS_GUID,
		.synced_txg = ub.synced_txg,
		.replay_from = ub.pos,
		.replay = on_replay,
		.replay_arg = &c,
	};
	struct child ch = {.open_txg = ub.synced_txg + 1, .salt = salt};
	pthread_t th[STRESS_WRITERS];
	struct intent_log_stats st;
	struct bdev *dev;
	u64 rng = salt;
	int r;

	r = bdev_open(path, 0, &dev);
	if (r)
		die("%s: %s", path, strerror(-r));
	cfg.bdev = dev;
	r = intent_log_open(&cfg, &ch.log);
	if (r)
		die("intent_log_open: %d", r);
	intent_log_stats(ch.log, &st);
	/* Past the last replayed record, nothing the model expects may be missing... */
	for (u64 s = c.expect; s < st.next_seq; s++) {
		const struct mrec *m = &sh->rec[s % MODEL_CAP];

		if (m->seq != s || m->txg > ub.synced_txg)
			die("replay stopped before record %llu", (unsigned long long)s);
	}
	/* ...and no acknowledged record may lie beyond where the log continues. */
	for (u64 s = ub.pos.rec_seq; s < sh->next_seq; s++) {
		const struct mrec *m = &sh->rec[s % MODEL_CAP];

		if (m->seq == s && m->acked && m->txg > ub.synced_txg) {
			if (s >= st.next_seq)
				die("acknowledged record %llu lost", (unsigned long long)s);
			sh->checked_acked++;
		}
	}
	sh->replayed += c.count;
	/* The records past the end were never durable: their numbers are reused. */
	__atomic_store_n(&sh->next_seq, st.next_seq, __ATOMIC_SEQ_CST);
	if (verify_only) {
		intent_log_close(ch.log);
		bdev_close(dev);
		_exit(0);
	}

	pthread_rwlock_init(&ch.txg_hold, NULL);
	pthread_mutex_init(&ch.append_lock, NULL);
	for (int i = 0; i < STRESS_WRITERS; i++)
		if (pthread_create(&th[i], NULL, writer_main, &ch))
			die("pthread_create");
	/* The txg layer: quiesce, sync, persist the position, release, until killed. */
	for (;;) {
		struct intent_log_pos pos;
		u32 next;
		u64 t;

		usleep((useconds_t)(1000 + rng_next(&rng) % 20000));
		pthread_rwlock_wrlock(&ch.txg_hold);
		t = ch.open_txg;
		__atomic_store_n(&ch.open_txg, t + 1, __ATOMIC_SEQ_CST);
		pthread_rwlock_unlock(&ch.txg_hold);
		pos = intent_log_sync_point(ch.log, t);
		next = !__atomic_load_n(&sh->cur, __ATOMIC_SEQ_CST);
		sh->ub[next] = (struct ub){.synced_txg = t, .pos = pos};
		__atomic_store_n(&sh->cur, next, __ATOMIC_SEQ_CST);
		intent_log_synced(ch.log, t, pos);
	}
}

/*----------------------------------------------------------------*/
/* The parent */

static int make_file(const char *path)
{
	size_t size = (STRESS_LOG_START + STRESS_LOG_BLOCKS) * DDSNAP_BLOCK_SIZE;
	void *zero = xzalloc(size);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	int r = 0;

	if (fd < 0 || write(fd, zero, size) != (ssize_t)size || fsync(fd))
		r = -errno;
	if (fd >= 0)
		close(fd);
	free(zero);
	return r;
}

/* One life, SIGKILLed after @kill_after_ms; or, when negative, one that only checks replay. */
static int run_life(const char *path, u64 salt, int kill_after_ms)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		child_main(path, salt, kill_after_ms < 0);
		_exit(0);
	}
	if (kill_after_ms >= 0) {
		usleep((useconds_t)kill_after_ms * 1000);
		kill(pid, SIGKILL);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -ECHILD;
	if (kill_after_ms >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		return 0;
	if (kill_after_ms < 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	fprintf(stderr, "stress_intent_log: child failed (status 0x%x)\n", status);
	return -EIO;
}

int main(int argc, char **argv)
{
	struct stress_args args = {.duration = 60, .seed = (u64)time(NULL), .dir = "/var/tmp"};
	u64 seed, rng;
	const char *dir;
	double duration, end;
	char path[4096];
	struct timespec ts;
	int r = 0;

	if (stress_args_parse(argc, argv, &args))
		return 2;
	seed = args.seed;
	dir = args.dir;
	duration = args.duration;
	printf("stress_intent_log: seed %llu, %.0f s\n", (unsigned long long)seed, duration);
	fflush(stdout);
	rng = seed | 1;
	log_open("/dev/null");
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	snprintf(path, sizeof(path), "%s/stress_intent_log.%d", dir, (int)getpid());
	if (make_file(path)) {
		perror(path);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	end = (double)ts.tv_sec + duration;
	do {
		/* Mostly early kills (replay of a fresh tail), sometimes long lives (many laps). */
		int ms = (int)(rng_next(&rng) % 4 ? rng_next(&rng) % 100 : rng_next(&rng) % 1000);

		r = run_life(path, rng_next(&rng), ms);
		sh->lives++;
		clock_gettime(CLOCK_MONOTONIC, &ts);
	} while (!r && (double)ts.tv_sec < end);
	/* A last open checks the final state. */
	if (!r)
		r = run_life(path, rng_next(&rng), -1);
	printf("stress_intent_log: %llu lives, %llu acknowledged records checked, %llu replayed: "
	       "%s\n",
	       (unsigned long long)sh->lives, (unsigned long long)sh->checked_acked,
	       (unsigned long long)sh->replayed, r ? "FAILED" : "ok");
	unlink(path);
	return r ? 1 : 0;
}
