// SPDX-License-Identifier: GPL-2.0-only
/*
 * misuse.c - random sequences of an administrator's mistakes against a live store
 * (doc/misuse.md): while a server serves a volume (on a thread of this program, which plays
 * the kernel: origin writes copy out first), real `ddsnap` processes are started with wrong
 * argument orders, on the served store, as a second server, as a re-initialize, as a check
 * or dump of the live store, with the socket forgotten, with a FIFO; between them the volume
 * takes origin writes, creates and deletes snapshots, and crashes (the volume abandoned
 * without a final sync, as kill -9 leaves it, then reopened and its log replayed) or
 * restarts cleanly.
 *
 * Every mistake must be refused (a non-zero exit, within 30 s, without leaving a socket
 * file), and after each one every acknowledged snapshot must still read back byte for byte
 * as it was when it was taken, the origin must hold exactly what was written, and the files
 * the mistakes named in the wrong role must be unchanged.
 *
 *   stress_misuse [--duration SECS] [--seed N] [--ddsnap PATH]
 *
 * The ddsnap binary defaults to ../bin/ddsnap next to this program.  Prints its seed first;
 * exits 0 when every round verified, 1 otherwise.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "log.h"
#include "server.h"
#include "volume.h"
#include "../unit/lib/srvfix.h"

#define CHUNK_SHIFT   12
#define CS	      (1u << CHUNK_SHIFT)
#define ORIGIN_BYTES  (1u << 20)
#define ORIGIN_CHUNKS (ORIGIN_BYTES / CS)
#define STORE_BYTES   (48ull << 20) /* never full: 8 live snapshots of the whole origin fit */
#define MAX_LIVE      8
#define VICTIM	      "metadata of another store"

static u64 g_seed, g_state;
static char g_ddsnap[PATH_MAX], g_dir[64];
static struct srvfix g_f;

struct snap {
	u32 tag;
	u8 *image; /* the origin as it was when the snapshot was taken */
};
static struct snap g_live[MAX_LIVE];
static unsigned g_nlive;
static u32 g_next_tag = 1;
static u8 *g_origin; /* what the origin file must hold */

static u64 rnd(u64 n)
{
	g_state ^= g_state << 13, g_state ^= g_state >> 7, g_state ^= g_state << 17;
	return g_state % n;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "misuse (seed %llu): ", (unsigned long long)g_seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; files kept in %s\n", g_dir);
	exit(1);
}

static const char *path(const char *name)
{
	static char p[8][128];
	static int i;

	i = (i + 1) % 8;
	snprintf(p[i], sizeof(p[i]), "%s/%s", g_dir, name);
	return p[i];
}

static void write_file(const char *p, const void *data, size_t len, size_t size)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len) || ftruncate(fd, (off_t)size))
		die("cannot write %s", p);
	close(fd);
}

static bool file_is(const char *p, const void *data, size_t len)
{
	u8 *buf = malloc(len + 1);
	int fd = open(p, O_RDONLY);
	bool same = fd >= 0 && read(fd, buf, len + 1) == (ssize_t)len && !memcmp(buf, data, len);

	if (fd >= 0)
		close(fd);
	free(buf);
	return same;
}

/* Runs ddsnap with @args (NULL-terminated, without argv[0]); returns its exit status. */
static int run_ddsnap(const char *const *args)
{
	const char *argv[16] = {"ddsnap"};
	int status, n = 1;
	pid_t pid;

	for (; args[n - 1]; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execv(g_ddsnap, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 3000; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	die("ddsnap %s %s ... hung for 30 s", args[0], args[1] ? args[1] : "");
	return -1;
}

/* The mistakes; each must be refused. */
static void misuse(unsigned which)
{
	const char *store = g_f.store, *origin = g_f.origin, *other = path("other"),
		   *victim = path("victim"), *fifo = path("fifo");
	const char *const m[][8] = {
		{"initialize", "-y", store, other, NULL},  /* re-initialize the served store */
		{"initialize", "-y", other, store, NULL},  /* swapped: a store as the origin */
		{"initialize", store, origin, NULL},	   /* without -y */
		{"initialize", "-y", other, origin, NULL}, /* a new store for the served origin */
		{"server", store, origin, path("s2.sock"), NULL}, /* a second server */
		{"server", store, origin, victim, NULL},	  /* the socket forgotten */
		{"server", store, store, path("s3.sock"), NULL},  /* the store as its origin */
		{"server", other, origin, path("s4.sock"), NULL}, /* the served origin again */
		{"server", store, fifo, path("s5.sock"), NULL},	  /* a FIFO origin */
		{"check", store, NULL},				  /* check a live store */
		{"dump", store, NULL},				  /* dump a live store */
		{"initialize", "-y", other, fifo, NULL},	  /* initialize for a FIFO */
	};
	const unsigned n = sizeof(m) / sizeof(m[0]);
	const char *const *args = m[which % n];
	int rc = run_ddsnap(args);

	if (rc == 0 || rc == 127 || rc >= 128)
		die("ddsnap %s %s %s %s was not refused (exit %d)", args[0], args[1],
		    args[2] ? args[2] : "", args[3] ? args[3] : "", rc);
	if (!file_is(victim, VICTIM, sizeof(VICTIM)))
		die("ddsnap %s %s %s %s changed the file in the socket's place", args[0], args[1],
		    args[2] ? args[2] : "", args[3] ? args[3] : "");
	for (int i = 2; i <= 5; i++) {
		char s[16];
		struct stat st;

		snprintf(s, sizeof(s), "s%d.sock", i);
		if (lstat(path(s), &st) == 0)
			die("ddsnap %s left the socket file %s", args[0], s);
	}
}

/* Every live snapshot reads back as taken; the origin holds what was written. */
static void verify(const char *after)
{
	const char *img = path("export");

	if (!file_is(g_f.origin, g_origin, ORIGIN_BYTES))
		die("after %s: the origin differs from what was written", after);
	for (unsigned i = 0; i < g_nlive; i++) {
		srvfix_export(&g_f, g_live[i].tag, img);
		if (!file_is(img, g_live[i].image, ORIGIN_BYTES))
			die("after %s: snapshot %u differs from the origin when it was taken",
			    after, g_live[i].tag);
	}
}

static void origin_write(void)
{
	u32 n = 1 + (u32)rnd(8);
	u64 chunk = rnd(ORIGIN_CHUNKS - n + 1);
	u8 *data = g_origin + chunk * CS;
	static u64 serial;

	serial++;
	for (size_t i = 0; i < (size_t)n * CS; i += 8) {
		u64 w = (serial << 32) ^ (chunk * CS + i) ^ g_seed;

		memcpy(data + i, &w, 8);
	}
	srvfix_origin_write(&g_f, chunk, n, data);
}

static void create(void)
{
	u64 gen;
	int r;

	if (g_nlive == MAX_LIVE)
		return;
	r = volume_create(g_f.vol, g_next_tag, &gen);
	if (r)
		die("create %u: %s", g_next_tag, strerror(-r));
	g_live[g_nlive].tag = g_next_tag++;
	g_live[g_nlive].image = malloc(ORIGIN_BYTES);
	memcpy(g_live[g_nlive++].image, g_origin, ORIGIN_BYTES);
}

static void delete_one(void)
{
	unsigned i;
	int r;

	if (!g_nlive)
		return;
	i = (unsigned)rnd(g_nlive);
	r = volume_delete(g_f.vol, g_live[i].tag);
	if (r)
		die("delete %u: %s", g_live[i].tag, strerror(-r));
	free(g_live[i].image);
	g_live[i] = g_live[--g_nlive];
}

/* What kill -9 leaves: no final sync; the next open replays the intent log. */
static void crash_and_restart(bool clean)
{
	if (clean) {
		srvfix_stop(&g_f);
	} else {
		server_stop(g_f.srv);
		pthread_join(g_f.thread, NULL);
		volume_abandon(g_f.vol);
		server_destroy(g_f.srv);
	}
	if (srvfix_start(&g_f))
		die("the server does not start again after %s", clean ? "a stop" : "a crash");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"duration", required_argument, NULL, 'd'},
					     {"seed", required_argument, NULL, 's'},
					     {"ddsnap", required_argument, NULL, 'b'},
					     {NULL, 0, NULL, 0}};
	u64 duration = 20, rounds = 0, mistakes = 0, crashes = 0;
	time_t end;
	char self[PATH_MAX];
	int c;

	g_seed = (u64)time(NULL) ^ ((u64)getpid() << 20);
	if (realpath(argv[0], self))
		snprintf(g_ddsnap, sizeof(g_ddsnap), "%.*s/../bin/ddsnap",
			 (int)(strrchr(self, '/') - self), self);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			duration = strtoull(optarg, NULL, 0);
			break;
		case 's':
			g_seed = strtoull(optarg, NULL, 0);
			break;
		case 'b':
			snprintf(g_ddsnap, sizeof(g_ddsnap), "%s", optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [--duration SECS] [--seed N] [--ddsnap PATH]\n",
				argv[0]);
			return 2;
		}
	}
	printf("misuse: seed %llu, duration %llu s, %s\n", (unsigned long long)g_seed,
	       (unsigned long long)duration, g_ddsnap);
	fflush(stdout);
	if (access(g_ddsnap, X_OK))
		die("no ddsnap binary at %s", g_ddsnap);
	g_state = g_seed | 1;
	log_set_level(LOGL_ERR);
	snprintf(g_dir, sizeof(g_dir), "/tmp/stress-misuse-XXXXXX");
	if (!mkdtemp(g_dir))
		die("mkdtemp");
	g_origin = calloc(1, ORIGIN_BYTES);
	if (srvfix_create(&g_f, g_dir, "vol", CHUNK_SHIFT, ORIGIN_BYTES, STORE_BYTES, NULL) ||
	    srvfix_start(&g_f))
		die("cannot start the volume");
	write_file(path("other"), NULL, 0, ORIGIN_BYTES);
	write_file(path("victim"), VICTIM, sizeof(VICTIM), sizeof(VICTIM));
	if (mkfifo(path("fifo"), 0600))
		die("mkfifo");

	end = time(NULL) + (time_t)duration;
	while (time(NULL) < end) {
		u64 op = rnd(100);

		rounds++;
		if (op < 35) {
			origin_write();
		} else if (op < 47) {
			create();
		} else if (op < 53) {
			delete_one();
		} else if (op < 90) {
			misuse((unsigned)rnd(1000));
			mistakes++;
			verify("a refused mistake");
		} else if (op < 97) {
			crash_and_restart(false);
			crashes++;
			verify("a crash");
		} else {
			crash_and_restart(true);
			verify("a restart");
		}
	}
	verify("the last round");
	srvfix_stop(&g_f);
	printf("misuse: %llu rounds, %llu mistakes refused, %llu crashes, %u live snapshots "
	       "intact\n",
	       (unsigned long long)rounds, (unsigned long long)mistakes,
	       (unsigned long long)crashes, g_nlive);
	for (unsigned i = 0; i < g_nlive; i++)
		free(g_live[i].image);
	free(g_origin);
	snprintf(self, sizeof(self), "rm -rf %s", g_dir);
	return system(self) ? 1 : 0;
}
