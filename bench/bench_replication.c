// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench_replication.c - replication cost end to end: changelist and delta create time against
 * the amount changed, and send -> receive throughput through a pipe against a plain copy.
 *
 * A volume on files in /var/tmp (not tmpfs) is served by the real metadata server on a thread
 * of this process (server_create/volume_open/server_run, as tests/unit/test_replicate.c
 * does).  Origin writes go through the engine's copy-out (volume_origin_write, batches of 64
 * ranges) before the origin file is written, as the kernel target would.  Snapshot devices
 * are files <stem>(T) materialised through the server's read mapping.
 *
 * The origin (default 256 MiB, 16 KiB chunks) is filled with text-like data and snapshot 1
 * taken.  Then three rounds change 0.1%, 1% and 10% of the chunks (random chunks; each gets
 * 1-4 small word overwrites, and one in four also a short insertion that shifts the rest of
 * the chunk) and take snapshots 2, 3 and 4.  Per round, over the client socket: the server's
 * changelist walk alone (chunks counted and checked against what was changed), the whole
 * changelist fetch of `ddsnap send` (connect, snapshot list, walk, changelist file written
 * and committed), and delta_create_stream() with the default codec into a file.
 *
 * Pipe part: a producer thread runs delta_create_stream() into a pipe(2) and a consumer
 * thread runs delta_apply_stream() from it onto a replica origin file (the library calls
 * behind `ddsnap send | ddsnap receive`, without receive's server round trips for its
 * refusal checks and its final snapshot): the full stream of snapshot 3, then the 3 -> 4
 * incremental, the first run's result checked byte for byte against the snapshot.  Compared with a
 * cat-style copy (128 KiB read/write through a pipe, target fdatasynced) of the same volume
 * bytes: the whole device for the full stream, the changed chunks for the incremental.
 *
 * Every measurement is the best of -r runs (pipe part: -p) by wall time, printed with that run's process CPU
 * time (all threads: server, sync thread, producer, consumer): the machine may be shared, and
 * on a loaded machine the CPU time is the steadier number.
 *
 *   bench_replication [-m origin MiB (default 256)] [-r reps (default 3)] [-p pipe reps (2)]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include "blk/bdev.h"
#include "commands.h"
#include "client/ctl_client.h"
#include "delta.h"
#include "util/log.h"
#include "daemon/server.h"
#include "store/store.h"
#include "snap/volume.h"

#define CHUNK_SHIFT 14
#define CHUNK	    (1u << CHUNK_SHIFT)
#define BATCH	    64u
#define CAT_BUF	    (128u << 10)

static u64 nchunks, origin_bytes;
static char dir[] = "/var/tmp/bench_replXXXXXX";
static char store_path[160], origin_path[160], sock_path[160], stem[160], rstem[160];
static struct server *srv;
static struct volume *vol;
static pthread_t srv_thread;
static u8 *img; /* what the origin holds */

static u64 rng = 0x9e3779b97f4a7c15ull;

static u32 rnd(void)
{
	return (u32)(xorshift64(&rng) >> 11);
}

static __printf(1, 2) __noreturn void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench_replication: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

struct stamp {
	double wall, cpu;
};

static double clock_s(clockid_t id)
{
	struct timespec t;

	clock_gettime(id, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
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

static const char *const words[] = {
	"the ",	     "snapshot ",   "volume ",
	"replica ",  "origin ",	    "and ",
	"of ",	     "int ",	    "return ",
	"if (err) ", "{\n",	    "}\n",
	"\t",	     "struct ",	    "static ",
	"INFO ",     "request ",    "served ",
	"in ",	     "ms\n",	    "GET /index.html ",
	"200 ",	     "404 ",	    "user=alice ",
	"42 ",	     "2026-11-21 ", "\n",
	"chunk ",    "# notes\n",   "TODO ",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static void fill_text(u8 *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		const char *w = words[rnd() % NWORDS];

		while (*w && i < len)
			p[i++] = (u8)*w++;
	}
}

/* A few words overwritten; one chunk in four also gets an insertion shifting the rest. */
static u64 edit_chunk(u8 *p)
{
	u8 word[64];
	u32 n = 1 + rnd() % 4, len, at;
	u64 edited = 0;

	for (u32 i = 0; i < n; i++) {
		len = 4 + rnd() % 36;
		at = rnd() % (CHUNK - len);
		fill_text(word, len);
		memcpy(p + at, word, len);
		edited += len;
	}
	if (rnd() % 4 == 0) {
		len = 1 + rnd() % 16;
		at = rnd() % (CHUNK - len);
		memmove(p + at + len, p + at, CHUNK - at - len);
		fill_text(p + at, len);
		edited += CHUNK - at;
	}
	return edited;
}

static void *serve(void *arg)
{
	server_run(srv);
	return NULL;
}

static void make_file(const char *path, u64 size)
{
	int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);

	if (fd < 0 || ftruncate(fd, (off_t)size))
		die("%s: %s", path, strerror(errno));
	close(fd);
}

static void volume_setup(void)
{
	struct store_format_params fp = {.chunk_shift = CHUNK_SHIFT, .origin_bytes = origin_bytes};
	struct volume_params p = {0};
	struct bdev *b;
	char why[300];

	snprintf(store_path, sizeof(store_path), "%s/store", dir);
	snprintf(origin_path, sizeof(origin_path), "%s/m", dir);
	snprintf(stem, sizeof(stem), "%s/m", dir);
	snprintf(rstem, sizeof(rstem), "%s/r", dir);
	snprintf(sock_path, sizeof(sock_path), "%s/m.sock", dir);
	/* copy-outs of 11.1% of the origin, metadata and log: half the origin is plenty */
	make_file(store_path, origin_bytes / 2 + (64u << 20));
	make_file(origin_path, origin_bytes);
	if (bdev_open(store_path, 0, &b) || store_format(b, NULL, &fp, why, sizeof(why)))
		die("store_format: %s", why);
	bdev_close(b);
	if (server_create(sock_path, &srv, why, sizeof(why)))
		die("server_create: %s", why);
	p.snapstore = store_path;
	p.origin = origin_path;
	p.invalidate = server_invalidate;
	p.invalidate_priv = srv;
	if (volume_open(&p, &vol, why, sizeof(why)))
		die("volume_open: %s", why);
	server_attach(srv, vol);
	if (pthread_create(&srv_thread, NULL, serve, NULL))
		die("pthread_create");
}

/* Writes img's chunks listed in @chunks (ascending) to the origin, copy-out first. */
static void origin_write(const u64 *chunks, u64 n)
{
	struct volume_range r[BATCH];
	u64 gen;
	int fd = open(origin_path, O_WRONLY);

	if (fd < 0)
		die("%s: %s", origin_path, strerror(errno));
	for (u64 i = 0; i < n; i += BATCH) {
		u32 k = (u32)(n - i < BATCH ? n - i : BATCH);

		for (u32 j = 0; j < k; j++)
			r[j] = (struct volume_range){chunks[i + j], 1};
		if (volume_origin_write(vol, r, k, &gen))
			die("volume_origin_write failed");
		for (u32 j = 0; j < k; j++) {
			u64 c = chunks[i + j];

			if (pwrite(fd, img + c * CHUNK, CHUNK, (off_t)(c * CHUNK)) != CHUNK)
				die("origin write: %s", strerror(errno));
		}
	}
	if (fdatasync(fd))
		die("origin fdatasync: %s", strerror(errno));
	close(fd);
}

static void snapshot(u32 tag)
{
	u64 gen;

	if (volume_create(vol, tag, &gen))
		die("volume_create %u failed", tag);
}

/* Materialises snapshot @tag as <stem>(tag) through the server's read mapping. */
static void export_snapshot(u32 tag)
{
	char path[200];
	int ofd = open(origin_path, O_RDONLY), sfd = open(store_path, O_RDONLY), out;
	u8 *buf = malloc(CHUNK);

	snprintf(path, sizeof(path), "%s(%u)", stem, tag);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (ofd < 0 || sfd < 0 || out < 0 || !buf)
		die("export %u: %s", tag, strerror(errno));
	for (u64 c = 0; c < nchunks; c++) {
		bool from_origin;
		u64 addr;

		if (volume_snap_read(vol, tag, c, &from_origin, &addr))
			die("volume_snap_read %u/%llu failed", tag, (unsigned long long)c);
		if (pread(from_origin ? ofd : sfd, buf, CHUNK,
			  (off_t)((from_origin ? c : addr) * CHUNK)) != CHUNK ||
		    pwrite(out, buf, CHUNK, (off_t)(c * CHUNK)) != CHUNK)
			die("export %u: %s", tag, strerror(errno));
	}
	if (fdatasync(out))
		die("export %u: %s", tag, strerror(errno));
	free(buf);
	close(ofd);
	close(sfd);
	close(out);
}

static void remove_snapshot_file(u32 tag)
{
	char path[200];

	snprintf(path, sizeof(path), "%s(%u)", stem, tag);
	unlink(path);
}

/* Fetches the changelist @from -> @to into @path, timed. */
static struct stamp fetch_changelist(const char *path, u32 from, u32 to)
{
	struct ctl_client *c;
	char why[300];
	struct stamp t0 = now(), t;

	if (ctl_client_open(sock_path, &c, why, sizeof(why)))
		die("ctl_client_open: %s", why);
	if (delta_fetch_changelist("bench", c, path, from, to, NULL) != EXIT_OK)
		die("changelist %u -> %u failed", from, to);
	ctl_client_close(c);
	t = since(t0);
	return t;
}

static int count_chunks(const u64 *chunks, u32 n, void *arg)
{
	*(u64 *)arg += n;
	return 0;
}

/* The server's changelist walk alone (@to's chunks counted, nothing written), timed. */
static struct stamp walk_changelist(u32 from, u32 to, u64 expect)
{
	struct ctl_client *c;
	struct ctl_result res;
	char why[300];
	u64 n = 0;
	struct stamp t0, t;

	if (ctl_client_open(sock_path, &c, why, sizeof(why)))
		die("ctl_client_open: %s", why);
	t0 = now();
	if (ctl_client_changelist(c, from, to, count_chunks, &n, &res, why, sizeof(why)) ||
	    res.error)
		die("changelist walk %u -> %u failed", from, to);
	t = since(t0);
	ctl_client_close(c);
	if (n != expect)
		die("changelist %u -> %u: %llu chunks, expected %llu", from, to,
		    (unsigned long long)n, (unsigned long long)expect);
	return t;
}

/* Delta create of @changelist into @fd (default codec), timed. */
static struct stamp create_to_fd(const char *changelist, int fd)
{
	struct delta_create_params p;
	struct stamp t0;

	delta_create_defaults(&p, "bench");
	p.changelist = changelist;
	p.devstem = stem;
	p.out_fd = fd;
	t0 = now();
	if (delta_create_cmd(&p) != EXIT_OK)
		die("delta create %s failed", changelist);
	return since(t0);
}

static double best_wall(struct stamp *best, struct stamp t)
{
	if (best->wall == 0 || t.wall < best->wall)
		*best = t;
	return best->wall;
}

struct round {
	double pct;
	u64 chunks, edited, delta_bytes;
	struct stamp walk, cl, create;
};

/* Changes @pct % of the chunks at random, takes snapshot @tag. Returns the chunk list. */
static u64 *change(double pct, u32 tag, u64 *n, u64 *edited)
{
	u8 *hit = calloc(nchunks, 1);
	u64 want = (u64)(pct / 100.0 * (double)nchunks + 0.5), k = 0, *list;

	if (!want)
		want = 1;
	list = malloc(want * sizeof(*list));
	if (!hit || !list)
		die("out of memory");
	for (u64 i = 0; i < want;) {
		u64 c = ((u64)rnd() << 21 ^ rnd()) % nchunks;

		if (!hit[c]) {
			hit[c] = 1;
			i++;
		}
	}
	*edited = 0;
	for (u64 c = 0; c < nchunks; c++)
		if (hit[c]) {
			*edited += edit_chunk(img + c * CHUNK);
			list[k++] = c;
		}
	free(hit);
	origin_write(list, k);
	snapshot(tag);
	*n = k;
	return list;
}

/* ---- pipe part ---- */

struct producer {
	int fd;
	const char *changelist; /* delta stream; NULL: raw copy */
	const char *src;	/* raw: the device read */
	const u64 *chunks;	/* raw: these chunks (NULL: all of it) */
	u64 n;
	int rc;
};

struct consumer {
	int fd;
	const char *target;
	const u64 *chunks; /* raw: where the bytes go (NULL: sequential) */
	u64 n, bytes;	   /* bytes read from the pipe */
	int rc;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	if (p->changelist) {
		struct delta_create_params dp;

		delta_create_defaults(&dp, "send");
		dp.changelist = p->changelist;
		dp.devstem = stem;
		dp.out_fd = p->fd;
		p->rc = delta_create_cmd(&dp);
	} else {
		u8 *buf = malloc(CAT_BUF);
		int in = open(p->src, O_RDONLY);
		ssize_t r;

		p->rc = in < 0 || !buf;
		for (u64 i = 0; !p->rc && (p->chunks ? i < p->n : 1); i++) {
			if (p->chunks)
				r = pread(in, buf, CHUNK, (off_t)(p->chunks[i] * CHUNK));
			else
				r = read(in, buf, CAT_BUF);
			if (r <= 0) {
				p->rc = r < 0;
				break;
			}
			if (write(p->fd, buf, (size_t)r) != r)
				p->rc = 1;
		}
		if (in >= 0)
			close(in);
		free(buf);
	}
	close(p->fd);
	return NULL;
}

/* Reads all of @len into @buf unless the pipe ends; returns bytes read. */
static size_t read_full(int fd, u8 *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = read(fd, buf + done, len - done);

		if (r <= 0)
			break;
		done += (size_t)r;
	}
	return done;
}

static void *consume(void *arg)
{
	struct consumer *c = arg;

	if (!c->chunks && !c->target) {
		struct delta_apply_params ap = {
			.cmd = "receive", .name = "stream", .in_fd = c->fd, .devstem = rstem};

		c->rc = delta_apply_cmd(&ap);
	} else {
		u8 *buf = malloc(CAT_BUF);
		int out = open(c->target, O_WRONLY);
		u64 i = 0, off = 0;
		size_t got;

		c->rc = out < 0 || !buf;
		while (!c->rc) {
			got = read_full(c->fd, buf, c->chunks ? CHUNK : CAT_BUF);
			if (!got)
				break;
			c->bytes += got;
			if (c->chunks) {
				if (i >= c->n || got != CHUNK) {
					c->rc = 1;
					break;
				}
				off = c->chunks[i++] * CHUNK;
			}
			if (pwrite(out, buf, got, (off_t)off) != (ssize_t)got)
				c->rc = 1;
			if (!c->chunks)
				off += got;
		}
		if (out >= 0 && (fdatasync(out) || close(out)))
			c->rc = 1;
		free(buf);
	}
	close(c->fd);
	return NULL;
}

/* One producer -> pipe -> consumer run, timed. */
static struct stamp pipe_run(struct producer *p, struct consumer *c)
{
	pthread_t pt, ct;
	int fds[2];
	struct stamp t0;

	if (pipe(fds))
		die("pipe: %s", strerror(errno));
	p->fd = fds[1];
	c->fd = fds[0];
	t0 = now();
	if (pthread_create(&pt, NULL, produce, p) || pthread_create(&ct, NULL, consume, c))
		die("pthread_create");
	pthread_join(pt, NULL);
	pthread_join(ct, NULL);
	if (p->rc || c->rc)
		die("pipe run failed (producer %d, consumer %d)", p->rc, c->rc);
	return since(t0);
}

static bool same_as(const char *path, u32 tag)
{
	char other[200];
	int a = open(path, O_RDONLY), b;
	u8 *x = malloc(1u << 20), *y = malloc(1u << 20);
	bool same = true;

	snprintf(other, sizeof(other), "%s(%u)", stem, tag);
	b = open(other, O_RDONLY);
	if (a < 0 || b < 0 || !x || !y)
		die("compare: %s", strerror(errno));
	for (u64 off = 0; off < origin_bytes && same; off += 1u << 20)
		same = read_full(a, x, 1u << 20) == 1u << 20 &&
		       read_full(b, y, 1u << 20) == 1u << 20 && !memcmp(x, y, 1u << 20);
	close(a);
	close(b);
	free(x);
	free(y);
	return same;
}

static u64 file_size(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		die("%s: %s", path, strerror(errno));
	return (u64)st.st_size;
}

static double mb(u64 bytes)
{
	return (double)bytes / 1e6;
}

static void pipe_row(const char *name, u64 vol_bytes, u64 stream, struct stamp t, struct stamp cat)
{
	char a[32], b[32], r[32];

	snprintf(a, sizeof(a), "%.2f (%.2f)", t.wall, t.cpu);
	snprintf(b, sizeof(b), "%.2f (%.2f)", cat.wall, cat.cpu);
	snprintf(r, sizeof(r), "%.1fx (%.1fx)", t.wall / cat.wall, t.cpu / cat.cpu);
	printf("%-13s %9.1f %9.1f %14s %11.1f %11.1f %14s %9.1f %14s\n", name, mb(vol_bytes),
	       mb(stream), a, mb(vol_bytes) / t.wall, mb(stream) / t.wall, b,
	       mb(vol_bytes) / cat.wall, r);
}

int main(int argc, char **argv)
{
	static const double pcts[] = {0.1, 1.0, 10.0};
	struct round rounds[3];
	u64 *lists[3] = {NULL}, mib = 256, all = 0;
	struct stamp start = now(), t;
	char cl[200], out[200], link_target[200], link_path[200];
	int opt, reps = 3, preps = 2;
	double load[2];

	while ((opt = getopt(argc, argv, "m:r:p:")) != -1) {
		switch (opt) {
		case 'm':
			mib = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 'p':
			preps = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: bench_replication [-m origin MiB] [-r reps] [-p "
					"pipe reps]\n");
			return 2;
		}
	}
	if (mib < 16 || reps < 1 || preps < 1)
		die("need -m >= 16, -r >= 1 and -p >= 1");
	origin_bytes = mib << 20;
	nchunks = origin_bytes / CHUNK;
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOGL_WARN); /* the server's open/serve/shutdown lines are noise here */
	if (getloadavg(load, 1) != 1)
		load[0] = -1;
	if (!mkdtemp(dir))
		die("mkdtemp %s: %s", dir, strerror(errno));
	volume_setup();
	img = malloc(origin_bytes);
	if (!img)
		die("out of memory");
	fill_text(img, origin_bytes);
	{
		u64 *every = malloc(nchunks * sizeof(*every));

		if (!every)
			die("out of memory");
		for (u64 c = 0; c < nchunks; c++)
			every[c] = c;
		origin_write(every, nchunks);
		free(every);
	}
	snapshot(1);
	export_snapshot(1);

	/* ---- part 1: changelist and delta create against the amount changed ---- */
	for (u32 i = 0; i < 3; i++) {
		struct round *r = &rounds[i];

		memset(r, 0, sizeof(*r));
		r->pct = pcts[i];
		lists[i] = change(r->pct, i + 2, &r->chunks, &r->edited);
		export_snapshot(i + 2);
		snprintf(cl, sizeof(cl), "%s/cl%u", dir, i + 2);
		snprintf(out, sizeof(out), "%s/delta%u", dir, i + 2);
		for (int k = 0; k < reps; k++) {
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

			if (fd < 0)
				die("%s: %s", out, strerror(errno));
			best_wall(&r->walk, walk_changelist(i + 1, i + 2, r->chunks));
			best_wall(&r->cl, fetch_changelist(cl, i + 1, i + 2));
			best_wall(&r->create, create_to_fd(cl, fd));
			close(fd);
		}
		r->delta_bytes = file_size(out);
		unlink(out);
		if (i < 2)
			remove_snapshot_file(i + 1); /* keeps /var/tmp use to 3 volumes */
	}
	printf("origin %llu MiB, %u KiB chunks, %llu chunks; text-like data; default codec; "
	       "best of %d by wall time, with that run's process CPU time\n",
	       (unsigned long long)mib, CHUNK >> 10, (unsigned long long)nchunks, reps);
	printf("%-7s %7s %8s %9s %13s %15s %17s %10s %7s %9s\n", "changed", "chunks", "MiB chg",
	       "edited KB", "walk us", "changelist ms", "delta create ms", "delta KB", "% chg",
	       "chg MB/s");
	printf("%-7s %7s %8s %9s %13s %15s %17s %10s %7s %9s\n", "", "", "", "", "wall (cpu)",
	       "wall (cpu)", "wall (cpu)", "", "", "(create)");
	for (u32 i = 0; i < 3; i++) {
		const struct round *r = &rounds[i];
		u64 chg = r->chunks * CHUNK;
		char pc[16], w[32], a[32], b[32];

		snprintf(pc, sizeof(pc), "%.1f%%", r->pct);
		snprintf(w, sizeof(w), "%.1f (%.1f)", r->walk.wall * 1e6, r->walk.cpu * 1e6);
		snprintf(a, sizeof(a), "%.1f (%.1f)", r->cl.wall * 1e3, r->cl.cpu * 1e3);
		snprintf(b, sizeof(b), "%.1f (%.1f)", r->create.wall * 1e3, r->create.cpu * 1e3);
		printf("%-7s %7llu %8.2f %9.1f %13s %15s %17s %10.1f %7.2f %9.1f\n", pc,
		       (unsigned long long)r->chunks, (double)chg / (1 << 20),
		       (double)r->edited / 1e3, w, a, b, (double)r->delta_bytes / 1e3,
		       100.0 * (double)r->delta_bytes / (double)chg, mb(chg) / r->create.wall);
	}
	fflush(stdout);

	/* ---- part 2: send -> pipe -> receive, full (snapshot 3) and 3 -> 4 ---- */
	{
		struct producer p;
		struct consumer c;
		struct stamp full = {0}, full_raw = {0}, inc = {0}, inc_raw = {0};
		u64 full_stream, inc_stream = rounds[2].delta_bytes, inc_bytes = 0;
		char raw[200];

		snprintf(cl, sizeof(cl), "%s/clfull", dir);
		snprintf(out, sizeof(out), "%s/full", dir);
		snprintf(raw, sizeof(raw), "%s/raw", dir);
		make_file(rstem, origin_bytes);
		make_file(raw, origin_bytes);
		fetch_changelist(cl, DDSNAP_TAG_NONE, 3);
		{
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

			if (fd < 0)
				die("%s: %s", out, strerror(errno));
			create_to_fd(cl, fd);
			close(fd);
			full_stream = file_size(out);
			unlink(out);
		}
		snprintf(link_target, sizeof(link_target), "%s(3)", stem);
		snprintf(link_path, sizeof(link_path), "%s(3)", rstem);
		if (symlink(link_target, link_path))
			die("symlink: %s", strerror(errno));
		/* send and cat alternate, so a change in the machine's load hits both */
		for (int k = 0; k < preps; k++) {
			p = (struct producer){.changelist = cl};
			c = (struct consumer){0};
			best_wall(&full, pipe_run(&p, &c));
			if (k == 0 && !same_as(rstem, 3))
				die("the replica differs from snapshot 3 after the full stream");
			p = (struct producer){.src = link_target};
			c = (struct consumer){.target = raw};
			best_wall(&full_raw, pipe_run(&p, &c));
			all = c.bytes;
			if (k == 0 && !same_as(raw, 3))
				die("the raw copy differs from snapshot 3");
		}
		/* again after the first: the same bytes rewritten, checked against the same base */
		snprintf(cl, sizeof(cl), "%s/cl4", dir);
		snprintf(link_target, sizeof(link_target), "%s(4)", stem);
		for (int k = 0; k < preps; k++) {
			p = (struct producer){.changelist = cl};
			c = (struct consumer){0};
			best_wall(&inc, pipe_run(&p, &c));
			if (k == 0 && !same_as(rstem, 4))
				die("the replica differs from snapshot 4 after the incremental");
			p = (struct producer){
				.src = link_target, .chunks = lists[2], .n = rounds[2].chunks};
			c = (struct consumer){
				.target = raw, .chunks = lists[2], .n = rounds[2].chunks};
			best_wall(&inc_raw, pipe_run(&p, &c));
			inc_bytes = c.bytes;
			if (k == 0 && !same_as(raw, 4))
				die("the raw copy differs from snapshot 4");
		}

		printf("\nsend -> pipe -> receive, best of %d by wall time (volume MB: the whole "
		       "device for full, the changed chunks for 3 -> 4; cat: a plain copy of those "
		       "bytes through a pipe)\n",
		       preps);
		printf("%-13s %9s %9s %14s %11s %11s %14s %9s %14s\n", "transfer", "volume MB",
		       "stream MB", "send|receive", "volume MB/s", "stream MB/s", "cat", "cat MB/s",
		       "send|recv / cat");
		printf("%-13s %9s %9s %14s %11s %11s %14s %9s %14s\n", "", "", "", "wall s (cpu s)",
		       "", "", "wall s (cpu s)", "", "wall (cpu)");
		pipe_row("full (snap 3)", all, full_stream, full, full_raw);
		pipe_row("incr 3 -> 4", inc_bytes, inc_stream, inc, inc_raw);
	}
	for (u32 i = 0; i < 3; i++)
		free(lists[i]);
	free(img);
	server_stop(srv);
	pthread_join(srv_thread, NULL);
	volume_close(vol);
	server_destroy(srv);
	snprintf(cl, sizeof(cl), "rm -rf '%s'", dir);
	if (system(cl))
		fprintf(stderr, "bench_replication: could not remove %s\n", dir);
	t = since(start);
	if (getloadavg(load + 1, 1) != 1)
		load[1] = -1;
	printf("whole run: %.1f s wall, %.1f s CPU (all threads); load average %.1f at start, "
	       "%.1f at end\n",
	       t.wall, t.cpu, load[0], load[1]);
	return 0;
}
