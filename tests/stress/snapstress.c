// SPDX-License-Identifier: GPL-2.0-only
/*
 * snapstress.c - ztest-style stress of the snapshot engine: a child process runs random
 * operations with fixed frequencies (origin writes, batched origin writes, snapshot writes,
 * creates, deletes of the oldest, newest or a random snapshot, syncs, read checks,
 * changelist checks) against a file-backed store (tests/unit/lib/enginefix, file mode) and is
 * SIGKILLed at a random moment; the parent recovers the store (replaying the intent log),
 * runs the engine's check, and verifies every chunk of the origin and of every live snapshot
 * against a model rebuilt from the operation history.
 *
 * Every written range carries a pattern naming the chunk, the write's serial number, the gen
 * it was written in and the seed, so a misplaced, stale or lost write is detected.  The child
 * appends an intent record before each operation and a done record after it (O_APPEND
 * write(2), which a SIGKILL cannot tear); the one operation in flight at the kill is resolved
 * by looking at what the store says, and either outcome must be consistent.
 *
 *   stress_snapstress [--duration SECS] [--seed N] [--dir DIR]
 *
 * Prints its seed first; exits 0 when every round verified, 1 otherwise.
 */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "snap/engine.h"
#include "util/log.h"
#include "../unit/lib/enginefix.h"
#include "../unit/lib/rng.h"
#include "common.h"
#include "../unit/lib/snapmodel.h"

#define CS	      4096u
#define ORIGIN_CHUNKS 256	  /* small, so chunks are rewritten often */
#define DATA_CHUNKS   (64 * 1024) /* never full: the policy is tested in test_engine */
#define META_BYTES    (64ull << 20)
#define MAX_LIVE      12
#define SYNC_EVERY    40 /* operations between txg syncs, on average */
#define KILL_MIN_MS   5
#define KILL_MAX_MS   400
#define MAX_HIST_TAGS 4096

enum hkind { H_ORIGIN = 1, H_SNAPW = 2, H_CREATE = 3, H_DELETE = 4 };
enum hphase { P_INTENT = 0, P_DONE = 1, P_RESOLVED_DONE = 2, P_RESOLVED_ABORT = 3 };

struct hrec {
	u32 magic, kind, phase, tag;
	u64 chunk, serial, gen;
	u32 off, len;
};
#define HREC_MAGIC 0x51e55e55u

static u64 g_seed;
static const char *g_dir; /* kept on failure, for inspection */

/* The pattern: 32-byte words naming chunk, serial, gen and seed. */
static void fill(u8 *buf, u32 len, u64 chunk, u64 serial, u64 gen)
{
	for (u32 i = 0; i < len; i += 32) {
		u64 w[4] = {chunk, serial, gen, g_seed ^ i};

		memcpy(buf + i, w, MIN(32u, len - i));
	}
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "snapstress (seed %llu): ", (unsigned long long)g_seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (g_dir)
		fprintf(stderr, "snapstress: the store and its history are kept in %s\n", g_dir);
	exit(1);
}

/*------------------------------------------------------------------------------------------
 * History
 *----------------------------------------------------------------------------------------*/

struct history {
	int fd;
	struct hrec *r;
	u64 n;
	u64 serial;   /* largest serial seen */
	u64 replayed; /* log records replayed by recoveries */
	u32 next_tag;
};

static void hist_append(struct history *h, struct hrec *r)
{
	r->magic = HREC_MAGIC;
	if (write(h->fd, r, sizeof(*r)) != sizeof(*r))
		die("history write: %s", strerror(errno));
}

static void hist_load(struct history *h)
{
	struct hrec r;
	u64 cap = 0;

	free(h->r);
	h->r = NULL;
	h->n = 0;
	if (lseek(h->fd, 0, SEEK_SET) < 0)
		die("history seek");
	while (read(h->fd, &r, sizeof(r)) == sizeof(r)) {
		if (r.magic != HREC_MAGIC)
			die("history record %llu corrupt", (unsigned long long)h->n);
		if (h->n == cap) {
			cap = cap ? 2 * cap : 1024;
			h->r = xrealloc(h->r, cap * sizeof(*h->r));
		}
		h->r[h->n++] = r;
		h->serial = MAX(h->serial, r.serial);
		if (r.kind == H_CREATE)
			h->next_tag = MAX(h->next_tag, r.tag + 1);
	}
}

static void apply(struct snapmodel *m, const struct hrec *r)
{
	u8 *buf = xmalloc(CS);

	switch (r->kind) {
	case H_ORIGIN:
		fill(buf, r->len, r->chunk, r->serial, r->gen);
		snapmodel_origin_write(m, r->chunk, r->off, r->len, buf);
		break;
	case H_SNAPW:
		fill(buf, r->len, r->chunk, r->serial, r->gen);
		VERIFY(!snapmodel_snap_write(m, r->tag, r->chunk, r->off, r->len, buf));
		break;
	case H_CREATE:
		VERIFY(!snapmodel_create_snap(m, r->tag));
		break;
	case H_DELETE:
		VERIFY(!snapmodel_delete_snap(m, r->tag));
		break;
	default:
		die("history: kind %u", r->kind);
	}
	free(buf);
}

/*
 * Rebuilds the model from the history.  Returns the index of an unresolved operation in
 * flight (intent without an outcome: only the last one can be), or -1.
 */
static s64 rebuild(struct history *h, struct snapmodel *m)
{
	s64 open = -1;

	for (u64 i = 0; i < h->n; i++) {
		const struct hrec *r = &h->r[i];

		if (r->phase == P_INTENT) {
			if (open >= 0)
				die("history: two operations in flight (%lld, %llu)",
				    (long long)open, (unsigned long long)i);
			open = (s64)i;
			continue;
		}
		if (open < 0 || h->r[open].serial != r->serial)
			die("history: outcome %llu without its intent", (unsigned long long)i);
		if (r->phase != P_RESOLVED_ABORT)
			apply(m, &h->r[open]);
		open = -1;
	}
	return open;
}

/*------------------------------------------------------------------------------------------
 * Verification
 *----------------------------------------------------------------------------------------*/

static int read_view(struct efix *f, u32 tag, u64 chunk, u8 *buf)
{
	return efix_read(f, tag, chunk, buf);
}

static void verify_all(struct efix *f, struct snapmodel *m, const char *when)
{
	u32 tags[MAX_LIVE + 1], n = snapmodel_tags(m, tags, MAX_LIVE + 1);
	struct engine_snapinfo info[MAX_LIVE + 2];
	u8 *buf;
	u32 live = engine_list(f->e, 0, info, MAX_LIVE + 2);

	if (live != n)
		die("%s: engine has %u snapshots, model %u", when, live, n);
	for (u32 i = 0; i < n; i++)
		if (info[i].tag != tags[i] || info[i].state != ENGINE_SNAP_NORMAL)
			die("%s: snapshot %u: engine has %u (state %d)", when, tags[i], info[i].tag,
			    info[i].state);
	if (posix_memalign((void **)&buf, BDEV_ALIGN, CS))
		die("memory");
	for (u32 t = 0; t <= n; t++) {
		u32 tag = t < n ? tags[t] : ENGINE_HEAD;

		for (u64 c = 0; c < ORIGIN_CHUNKS; c++) {
			const u8 *want = snapmodel_read(m, t < n ? tag : SNAPMODEL_ORIGIN, c);
			int err = read_view(f, tag, c, buf);

			if (err)
				die("%s: read tag %u chunk %llu: %d", when, tag,
				    (unsigned long long)c, err);
			if (memcmp(buf, want, CS)) {
				u64 got[3], exp[3];

				memcpy(got, buf, sizeof(got));
				memcpy(exp, want, sizeof(exp));
				die("%s: tag %u chunk %llu: has (chunk %llu serial %llu gen %llu), "
				    "want (chunk %llu serial %llu gen %llu)",
				    when, tag, (unsigned long long)c, (unsigned long long)got[0],
				    (unsigned long long)got[1], (unsigned long long)got[2],
				    (unsigned long long)exp[0], (unsigned long long)exp[1],
				    (unsigned long long)exp[2]);
			}
		}
	}
	free(buf);
}

static void verify_changelist(struct efix *f, struct snapmodel *m, u32 a, u32 b)
{
	u64 *chunks, n, k = 0;
	int err = engine_changelist(f->e, a, b, &chunks, &n, NULL);

	if (err)
		die("changelist %u->%u: %d", a, b, err);
	for (u64 c = 0; c < ORIGIN_CHUNKS; c++) {
		bool in = k < n && chunks[k] == c;

		/* a superset is allowed (overlay chunks rewritten with equal data), never less */
		if (snapmodel_differs(m, a, b == ENGINE_HEAD ? SNAPMODEL_ORIGIN : b, c) && !in)
			die("changelist %u->%u misses chunk %llu", a, b, (unsigned long long)c);
		k += in;
	}
	free(chunks);
}

/*------------------------------------------------------------------------------------------
 * The child: random operations until killed
 *----------------------------------------------------------------------------------------*/

static void op_begin(struct history *h, struct hrec *r)
{
	r->serial = ++h->serial;
	r->phase = P_INTENT;
	hist_append(h, r);
}

static void op_end(struct history *h, struct snapmodel *m, struct hrec *r)
{
	r->phase = P_DONE;
	hist_append(h, r);
	apply(m, r);
}

static u64 current_gen(struct engine *e)
{
	struct engine_status st;

	engine_status(e, &st);
	return st.gen;
}

static void child_origin_write(struct efix *f, struct history *h, struct snapmodel *m,
			       struct rnd *rn, u64 c, bool whole)
{
	struct hrec r = {.kind = H_ORIGIN, .chunk = c, .off = 0, .len = CS};
	u8 *buf = xmalloc(CS);
	u64 gen = 0;
	int err;

	if (!whole) {
		r.off = 512 * (u32)rnd_below(rn, CS / 512);
		r.len = 512 * (u32)(1 + rnd_below(rn, (CS - r.off) / 512));
	}
	r.gen = current_gen(f->e);
	op_begin(h, &r);
	fill(buf, r.len, c, r.serial, r.gen);
	err = efix_origin_write_gen(f, c, r.off, r.len, buf, &gen);
	if (err)
		die("child: origin write %llu: %d", (unsigned long long)c, err);
	if (gen != r.gen)
		die("child: write happened in gen %llu, expected %llu", (unsigned long long)gen,
		    (unsigned long long)r.gen);
	op_end(h, m, &r);
	free(buf);
}

static void child_run(const char *dir, struct history *h, u64 seed)
{
	struct snapmodel *m = snapmodel_create(ORIGIN_CHUNKS, CS);
	struct rnd rn = {seed};
	struct efix f;
	u8 *buf;
	int err;

	hist_load(h);
	if (rebuild(h, m) >= 0)
		die("child: unresolved operation in the history");
	err = efix_open_dir(&f, dir, false, 0, 0, 0, 0, false);
	if (err)
		die("child: open: %d", err);
	/* half the rounds run as the server's group-commit mode (engine.h, caller_flushes) */
	if (seed & 1) {
		err = efix_set_caller_flushes(&f, true);
		if (err)
			die("child: caller_flushes: %d", err);
	}
	if (posix_memalign((void **)&buf, BDEV_ALIGN, CS))
		die("memory");
	for (;;) {
		u32 tags[MAX_LIVE + 1], n = snapmodel_tags(m, tags, MAX_LIVE + 1);
		u64 op = rnd_below(&rn, 100), c = rnd_below(&rn, ORIGIN_CHUNKS);

		if (op < 45) {
			child_origin_write(&f, h, m, &rn, c, rnd_below(&rn, 2));
		} else if (op < 55) {
			u64 len = 1 + rnd_below(&rn, 16);
			struct engine_range r = {c, MIN(len, ORIGIN_CHUNKS - c)};

			err = engine_origin_write(f.e, &f.tx, &r, 1, NULL, NULL);
			if (err == -EAGAIN)
				err = efix_sync(&f);
			if (!err)
				err = efix_commit(&f);
			if (err)
				die("child: batch query: %d", err);
			for (u64 i = r.chunk; i < r.chunk + r.count; i++)
				child_origin_write(&f, h, m, &rn, i, true);
		} else if (op < 65 && n) {
			struct hrec r = {
				.kind = H_SNAPW, .chunk = c, .tag = tags[rnd_below(&rn, n)]};

			r.off = rnd_below(&rn, 2) ? 0 : 512 * (u32)rnd_below(&rn, CS / 512);
			r.len = r.off ? 512 * (u32)(1 + rnd_below(&rn, (CS - r.off) / 512)) : CS;
			op_begin(h, &r);
			fill(buf, r.len, c, r.serial, 0);
			err = efix_snap_write(&f, r.tag, c, r.off, r.len, buf);
			if (err)
				die("child: snapshot %u write %llu: %d", r.tag,
				    (unsigned long long)c, err);
			op_end(h, m, &r);
		} else if (op < 75 && n < MAX_LIVE) {
			struct hrec r = {.kind = H_CREATE, .tag = h->next_tag++};

			op_begin(h, &r);
			err = engine_create(f.e, &f.tx, r.tag, (u64)time(NULL),
					    (int8_t)rnd_below(&rn, 4));
			if (!err)
				err = efix_commit(&f);
			if (err)
				die("child: create %u: %d", r.tag, err);
			op_end(h, m, &r);
		} else if (op < 84 && n) {
			u64 which = rnd_below(&rn, 3);
			struct hrec r = {.kind = H_DELETE};

			r.tag = which == 0   ? tags[0]
				: which == 1 ? tags[n - 1]
					     : tags[rnd_below(&rn, n)];
			op_begin(h, &r);
			err = engine_delete(f.e, &f.tx, r.tag);
			if (!err)
				err = efix_commit(&f);
			if (err)
				die("child: delete %u: %d", r.tag, err);
			op_end(h, m, &r);
		} else if (op < 84 + 100 / SYNC_EVERY) {
			err = efix_sync(&f);
			if (err)
				die("child: sync: %d", err);
		} else if (op < 95) {
			u32 t = (u32)rnd_below(&rn, n + 1);
			u32 tag = t < n ? tags[t] : ENGINE_HEAD;

			err = efix_read(&f, tag, c, buf);
			if (err ||
			    memcmp(buf, snapmodel_read(m, t < n ? tag : SNAPMODEL_ORIGIN, c), CS))
				die("child: read tag %u chunk %llu differs (%d)", tag,
				    (unsigned long long)c, err);
		} else if (n >= 2) {
			u32 i = (u32)rnd_below(&rn, n), j = (u32)rnd_below(&rn, n + 1);

			if (i != j)
				verify_changelist(&f, m, tags[i], j < n ? tags[j] : ENGINE_HEAD);
		}
	}
}

/*------------------------------------------------------------------------------------------
 * The parent: kill, recover, verify
 *----------------------------------------------------------------------------------------*/

/* Decides the outcome of the operation in flight at the kill from what the store shows. */
static void resolve(struct efix *f, struct history *h, struct snapmodel *m, s64 open)
{
	struct hrec r = h->r[open];
	struct engine_snapinfo info;
	bool happened = false;
	u8 *buf;

	if (posix_memalign((void **)&buf, BDEV_ALIGN, CS))
		die("memory");
	switch (r.kind) {
	case H_CREATE:
		happened = !engine_snap_info(f->e, r.tag, &info);
		break;
	case H_DELETE:
		happened = engine_snap_info(f->e, r.tag, &info) == -ENODATA;
		break;
	case H_ORIGIN:
	case H_SNAPW: {
		u8 *want = xmalloc(CS);
		u32 tag = r.kind == H_ORIGIN ? ENGINE_HEAD : r.tag;
		int err = efix_read(f, tag, r.chunk, buf);

		if (err)
			die("resolve: read: %d", err);
		fill(want, r.len, r.chunk, r.serial, r.gen);
		/* not happened: the chunk must read as before, even after a first whole-chunk
		 * snapshot write (copied in: engine.h, engine_snap_write_map) */
		happened = !memcmp(buf + r.off, want, r.len);
		free(want);
		break;
	}
	default:
		die("resolve: kind %u", r.kind);
	}
	if (happened)
		apply(m, &r);
	r.phase = happened ? P_RESOLVED_DONE : P_RESOLVED_ABORT;
	hist_append(h, &r);
	free(buf);
}

static void recover_and_verify(const char *dir, struct history *h, u64 round)
{
	struct snapmodel *m = snapmodel_create(ORIGIN_CHUNKS, CS);
	u32 tags[MAX_LIVE + 1], n;
	char when[64];
	struct efix f;
	s64 open;
	int err;

	hist_load(h);
	open = rebuild(h, m);
	/* efix_open_dir replays the log and runs engine_check (space recount included). */
	err = efix_open_dir(&f, dir, false, 0, 0, 0, 0, false);
	if (err)
		die("round %llu: recovery failed: %d", (unsigned long long)round, err);
	h->replayed += f.replayed;
	if (open >= 0)
		resolve(&f, h, m, open);
	snprintf(when, sizeof(when), "round %llu", (unsigned long long)round);
	verify_all(&f, m, when);
	n = snapmodel_tags(m, tags, MAX_LIVE + 1);
	for (u32 i = 0; i < n; i++)
		verify_changelist(&f, m, tags[i], i + 1 < n ? tags[i + 1] : ENGINE_HEAD);
	err = efix_close(&f);
	if (err)
		die("round %llu: close: %d", (unsigned long long)round, err);
	snapmodel_destroy(m);
}

static bool remove_dir(const char *dir)
{
	static const char *const files[] = {"origin",	 "snapstore", "meta",	"state",
					    "state.tmp", "log",	      "history"};
	char path[4096];

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	return rmdir(dir) == 0;
}

int main(int argc, char **argv)
{
	struct stress_args args = {.duration = 20};
	char tmpl[] = "/tmp/snapstress.XXXXXX", hpath[4096];
	const char *dir = NULL;
	struct history h = {.fd = -1, .next_tag = 1};
	u64 duration, rounds = 0, kills = 0;
	struct timespec t0, t;
	struct rnd rn;
	struct efix f;
	int err;

	args.seed = (u64)time(NULL) ^ ((u64)getpid() << 20);
	if (stress_args_parse(argc, argv, &args))
		return 2;
	duration = (u64)args.duration;
	g_seed = args.seed;
	dir = args.dir;
	printf("snapstress: seed %llu, duration %llu s, %s deadlists\n", (unsigned long long)g_seed,
	       (unsigned long long)duration, g_seed & 1 ? "rebuilt" : "persisted");
	fflush(stdout);
	log_set_level(LOGL_WARN);
	if (!dir) {
		dir = mkdtemp(tmpl);
		if (!dir)
			die("mkdtemp: %s", strerror(errno));
	}
	g_dir = dir;
	/* both modes of the engine's deadlists, by the seed (doc/format.md, "Persisted
	 * deadlists"): what every store now uses, and the rebuild an upgrade starts from */
	err = efix_open_dir(&f, dir, true, CS, ORIGIN_CHUNKS, DATA_CHUNKS, META_BYTES,
			    !(g_seed & 1));
	if (err || efix_close(&f))
		die("cannot create the store in %s", dir);
	snprintf(hpath, sizeof(hpath), "%s/history", dir);
	h.fd = open(hpath, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (h.fd < 0)
		die("%s: %s", hpath, strerror(errno));
	rn.s = g_seed;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		u64 child_seed = rnd_next(&rn);
		pid_t pid = fork();
		int status;

		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			child_run(dir, &h, child_seed);
			_exit(0);
		}
		usleep((useconds_t)(1000 *
				    (KILL_MIN_MS + rnd_below(&rn, KILL_MAX_MS - KILL_MIN_MS))));
		kill(pid, SIGKILL);
		if (waitpid(pid, &status, 0) != pid)
			die("waitpid: %s", strerror(errno));
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			die("round %llu: the child failed (status %d)", (unsigned long long)rounds,
			    status);
		kills++;
		recover_and_verify(dir, &h, rounds);
		rounds++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((u64)(t.tv_sec - t0.tv_sec) < duration);
	hist_load(&h);
	printf("snapstress: seed %llu: %llu rounds, %llu kills, %llu operations, %llu log "
	       "records replayed; all verified\n",
	       (unsigned long long)g_seed, (unsigned long long)rounds, (unsigned long long)kills,
	       (unsigned long long)h.serial, (unsigned long long)h.replayed);
	close(h.fd);
	free(h.r);
	if (dir == tmpl && !remove_dir(dir))
		fprintf(stderr, "snapstress: could not remove %s\n", dir);
	return 0;
}
