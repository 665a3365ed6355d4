// SPDX-License-Identifier: GPL-2.0-only
/*
 * misuse.c - random admin mistakes against a live store: a second server on the same store,
 * initialize over a served store or with its arguments swapped, a forgotten socket argument
 * that names a file, the store as its own origin, a FIFO as a device, check or dump of the
 * served store, stray signals, SIGKILL in the middle of a create, the server's file
 * descriptors exhausted by idle connections, reserved tags.  Every command must end within
 * COMMAND_TIMEOUT seconds (a hang is a failure).  After every mistake it checks
 * that the mistake was refused or harmless; every few, it stops the server and checks that
 * every acknowledged snapshot (a `ddsnap create` that exited 0) still reads back exactly as
 * the origin was when it was taken, that the origin is intact, and that `ddsnap check` says
 * the store is clean.
 *
 * The real `ddsnap` binary does everything the admin does (initialize, server, create,
 * delete, list, check).  Origin data changes only while the server is stopped: this program
 * then opens the volume itself and writes the kernel's way (copy-out first, then the origin),
 * so the content of the origin at every create is known exactly.  Snapshot images are read
 * back the same way, through the volume's read map.
 *
 *   [DDSNAP=path] stress_misuse [--duration SECS] [--seed N] [--dir DIR]
 *
 * Prints its seed first; exits 0 when every check held, 1 otherwise, naming the mistake.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "snap/volume.h"
#include "common.h"
#include "../unit/lib/rng.h"

#define CS		4096u
#define CHUNKS		64u	    /* the origin: 256 KiB, rewritten often */
#define STORE_BYTES	(32u << 20) /* never full */
#define MAX_SNAPS	24	    /* live snapshots kept at most (older ones are deleted) */
#define IDLE_CONNS	300	    /* more than the server's descriptors (SERVER_NOFILE) */
#define SERVER_NOFILE	256u	    /* the descriptor limit the server runs with here */
#define VERIFY_EVERY	6	    /* mistakes between full offline verifications */
#define COMMAND_TIMEOUT 30	    /* seconds any ddsnap command may take here */

struct snap {
	u32 tag;
	u32 serial[CHUNKS]; /* the origin's chunk serials when it was taken */
};

static struct {
	char dir[256], store[300], origin[300], sock[300], sock2[300], pid[300], pid2[300];
	char log[300], precious[300], ddsnap[PATH_MAX];
	u64 seed;
	u32 origin_serial[CHUNKS];
	u32 next_serial, next_tag;
	struct snap snaps[MAX_SNAPS];
	unsigned nsnaps;
	pid_t server;
	unsigned mistakes, verified;
} m;

static struct rnd rng;
static u64 rnd(void)
{
	return rnd_next(&rng);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "misuse (seed %llu, after %u mistakes): ", (unsigned long long)m.seed,
		m.mistakes);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (m.server > 0)
		kill(m.server, SIGKILL);
	exit(1);
}

/* Fills a chunk with bytes that name the chunk and the write's serial. */
static void fill(u8 *buf, u32 chunk, u32 serial)
{
	for (u32 i = 0; i < CS; i += 8) {
		u64 v = ((u64)serial << 32 | chunk) * 0x9e3779b97f4a7c15ull + i + m.seed;

		memcpy(buf + i, &v, 8);
	}
}

/*
 * Starts ddsnap with @argv (argv[0] is m.ddsnap, NULL-terminated), its output appended to the
 * log file, under the server's descriptor limit and COMMAND_TIMEOUT.  Returns its pid.
 */
static pid_t spawn(const char *const *argv)
{
	pid_t p = fork();

	if (p < 0)
		die("fork: %s", strerror(errno));
	if (!p) {
		struct rlimit lim = {SERVER_NOFILE, SERVER_NOFILE};
		int fd = open(m.log, O_WRONLY | O_APPEND | O_CREAT, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		setrlimit(RLIMIT_NOFILE, &lim);
		alarm(COMMAND_TIMEOUT); /* survives exec: a hung command dies of SIGALRM */
		execv(m.ddsnap, (char **)argv);
		_exit(127);
	}
	return p;
}

/* Waits for ddsnap @cmd, pid @p.  Returns its exit status, or 128 + the ending signal. */
static int reap(pid_t p, const char *cmd)
{
	int st;

	if (waitpid(p, &st, 0) < 0)
		die("waitpid: %s", strerror(errno));
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM && strcmp(cmd, "server"))
		die("ddsnap %s hung for %d s (log: %s)", cmd, COMMAND_TIMEOUT, m.log);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs ddsnap with the arguments (NULL-terminated) and returns what reap() does. */
static int run(const char *arg, ...)
{
	const char *argv[16] = {m.ddsnap};
	va_list ap;
	int n = 1;

	va_start(ap, arg);
	for (const char *a = arg; a && n < 15; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return reap(spawn(argv), argv[1]);
}

static bool alive(pid_t p)
{
	return p > 0 && kill(p, 0) == 0;
}

static pid_t read_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	long p = 0;

	if (f) {
		if (fscanf(f, "%ld", &p) != 1)
			p = 0;
		fclose(f);
	}
	return (pid_t)p;
}

static void wait_gone(pid_t p)
{
	for (int i = 0; i < 1000 && alive(p); i++)
		usleep(10000);
	if (alive(p))
		die("server %d did not exit within 10 s", (int)p);
}

static void server_start(void)
{
	unlink(m.pid);
	if (run("server", "-l", m.log, "-p", m.pid, m.store, m.origin, m.sock, (char *)NULL))
		die("the server would not start on its own store (log: %s)", m.log);
	m.server = read_pid(m.pid);
	if (!alive(m.server))
		die("the server's pid file names no live process");
}

static void server_stop(int sig)
{
	if (!alive(m.server))
		return;
	kill(m.server, sig);
	wait_gone(m.server);
	m.server = 0;
}

static struct snap *find(u32 tag)
{
	for (unsigned i = 0; i < m.nsnaps; i++)
		if (m.snaps[i].tag == tag)
			return &m.snaps[i];
	return NULL;
}

static void forget(u32 tag)
{
	struct snap *s = find(tag);

	if (s)
		*s = m.snaps[--m.nsnaps];
}

/* Whether `ddsnap list` shows @tag (the server must be running). */
static bool listed(u32 tag)
{
	char want[32], line[256];
	bool found = false;
	FILE *f;

	if (truncate(m.log, 0))
		die("truncate %s: %s", m.log, strerror(errno));
	if (run("list", m.sock, (char *)NULL))
		die("list failed on a running server (log: %s)", m.log);
	snprintf(want, sizeof(want), "%u", tag);
	f = fopen(m.log, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, want, strlen(want)) &&
		    (line[strlen(want)] == ' ' || line[strlen(want)] == '\t'))
			found = true;
	if (f)
		fclose(f);
	return found;
}

/* Takes a snapshot through the CLI; an acknowledged one joins the model. */
static void create(void)
{
	char tag[16];

	if (m.nsnaps == MAX_SNAPS) {
		u32 old = m.snaps[rnd() % m.nsnaps].tag;

		snprintf(tag, sizeof(tag), "%u", old);
		if (run("delete", m.sock, tag, (char *)NULL))
			die("delete of live snapshot %u refused (log: %s)", old, m.log);
		forget(old);
	}
	snprintf(tag, sizeof(tag), "%u", m.next_tag);
	if (run("create", m.sock, tag, (char *)NULL))
		die("create %u refused by a healthy server (log: %s)", m.next_tag, m.log);
	m.snaps[m.nsnaps].tag = m.next_tag++;
	memcpy(m.snaps[m.nsnaps++].serial, m.origin_serial, sizeof(m.origin_serial));
}

static struct volume *open_volume(void)
{
	struct volume_params p = {.snapstore = m.store, .origin = m.origin, .txg_timeout_ms = 1};
	struct volume *v;
	char why[300];
	int r = volume_open(&p, &v, why, sizeof(why));

	if (r)
		die("the stopped store does not open: %s", why);
	return v;
}

/* With the server stopped: the store is clean, every snapshot and the origin are as modelled. */
static void verify_offline(void)
{
	int ofd = open(m.origin, O_RDWR), sfd = open(m.store, O_RDONLY);
	u8 got[CS], want[CS];
	struct volume *v;

	if (alive(m.server))
		die("verify_offline with the server running");
	if (run("check", m.store, (char *)NULL))
		die("ddsnap check reports damage (log: %s)", m.log);
	v = open_volume();
	if (ofd < 0 || sfd < 0)
		die("open: %s", strerror(errno));
	for (u32 c = 0; c < CHUNKS; c++) {
		fill(want, c, m.origin_serial[c]);
		if (pread(ofd, got, CS, (off_t)c * CS) != CS || memcmp(got, want, CS))
			die("origin chunk %u lost its data", c);
	}
	for (unsigned i = 0; i < m.nsnaps; i++) {
		for (u32 c = 0; c < CHUNKS; c++) {
			bool from_origin;
			u64 addr;
			int r = volume_snap_read(v, m.snaps[i].tag, c, &from_origin, &addr);

			if (r)
				die("snapshot %u chunk %u: read map says %d", m.snaps[i].tag, c, r);
			fill(want, c, m.snaps[i].serial[c]);
			if (pread(from_origin ? ofd : sfd, got, CS,
				  (off_t)((from_origin ? c : addr) * CS)) != CS ||
			    memcmp(got, want, CS))
				die("acknowledged snapshot %u chunk %u reads back wrong",
				    m.snaps[i].tag, c);
		}
	}
	/* New origin data for the next snapshots, written the kernel's way. */
	for (u32 n = 1 + rnd() % 16; n--;) {
		u32 c = rnd() % CHUNKS;
		struct volume_range r = {c, 1};
		u64 gen;

		if (volume_origin_write(v, &r, 1, &gen))
			die("origin write of chunk %u refused", c);
		m.origin_serial[c] = ++m.next_serial;
		fill(want, c, m.origin_serial[c]);
		if (pwrite(ofd, want, CS, (off_t)c * CS) != CS)
			die("pwrite origin: %s", strerror(errno));
	}
	if (volume_close(v))
		die("volume_close failed");
	close(ofd);
	close(sfd);
	m.verified++;
}

/* Each mistake: does it, then checks it was refused or harmless.  The server runs before. */
static void second_server(void)
{
	unlink(m.pid2);
	if (run("server", "-l", m.log, "-p", m.pid2, m.store, m.origin, m.sock2, (char *)NULL) ==
	    0) {
		pid_t p = read_pid(m.pid2);

		if (p > 0)
			kill(p, SIGKILL);
		die("a second server started on a store the first one serves");
	}
}

static void reinitialize(void)
{
	if (run("initialize", "-y", m.store, m.origin, (char *)NULL) == 0)
		die("initialize -y succeeded on a store a running server uses");
}

static void swapped_initialize(void)
{
	bool running = alive(m.server);

	if (running)
		server_stop(SIGTERM);
	if (run("initialize", m.origin, m.store, (char *)NULL) == 0)
		die("initialize with snapstore and origin swapped (no -y) overwrote the origin");
	server_start();
}

static void forgotten_socket(void)
{
	char want[64], got[64] = "";
	int fd;

	snprintf(want, sizeof(want), "precious %llu", (unsigned long long)rnd());
	fd = open(m.precious, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, want, strlen(want)) != (ssize_t)strlen(want))
		die("write %s: %s", m.precious, strerror(errno));
	close(fd);
	/* A metadata device's path where the socket belongs; and the origin as its own socket. */
	if (run("server", "-l", m.log, "-p", m.pid2, m.store, m.origin, m.precious, (char *)NULL) ==
		    0 ||
	    run("server", "-l", m.log, "-p", m.pid2, m.store, m.origin, m.origin, (char *)NULL) ==
		    0) {
		pid_t p = read_pid(m.pid2);

		if (p > 0)
			kill(p, SIGKILL);
		die("a server started with a regular file as its socket");
	}
	fd = open(m.precious, O_RDONLY);
	if (fd < 0 || read(fd, got, sizeof(got) - 1) < 0 || strcmp(got, want))
		die("the file given as the socket path was removed or changed");
	close(fd);
}

/* The snapstore as its own origin, and a FIFO where a device belongs: refused at once. */
static void wrong_devices(void)
{
	char fifo[320];

	if (run("server", "-l", m.log, "-p", m.pid2, m.store, m.store, m.sock2, (char *)NULL) == 0)
		die("a server started with the snapstore as its own origin");
	snprintf(fifo, sizeof(fifo), "%s/fifo", m.dir);
	unlink(fifo);
	if (mkfifo(fifo, 0600))
		die("mkfifo: %s", strerror(errno));
	if (run("server", "-l", m.log, "-p", m.pid2, m.store, fifo, m.sock2, (char *)NULL) == 0 ||
	    run("initialize", "-y", fifo, m.origin, (char *)NULL) == 0)
		die("a FIFO was accepted as a store device");
	unlink(fifo);
}

/* check and dump of the store a server is writing: refused, never a false damage report. */
static void check_live(void)
{
	int r = run("check", m.store, (char *)NULL);

	if (r == 0 || r == 3)
		die("check of a served store %s", r ? "reported damage" : "ran");
	if (run("dump", m.store, (char *)NULL) == 0)
		die("dump of a served store ran");
}

static void stray_signals(void)
{
	static const int sigs[] = {SIGUSR1, SIGUSR2, SIGALRM, SIGHUP, SIGPIPE};

	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (rnd() % 2)
			kill(m.server, sigs[i]);
	usleep(50000);
	if (!alive(m.server))
		die("a stray signal killed the server");
	create();
}

/* SIGKILL while a create runs: acknowledged or not, the store agrees after restart. */
static void kill_during_create(void)
{
	char tag[16];
	const char *argv[] = {m.ddsnap, "create", m.sock, tag, NULL};
	pid_t p;
	int rc;
	u32 t = m.next_tag++;

	snprintf(tag, sizeof(tag), "%u", t);
	p = spawn(argv);
	usleep((useconds_t)(rnd() % 20000));
	kill(m.server, SIGKILL);
	wait_gone(m.server);
	m.server = 0;
	rc = reap(p, "create");
	server_start();
	if (listed(t)) {
		if (m.nsnaps == MAX_SNAPS) {
			if (run("delete", m.sock, tag, (char *)NULL))
				die("delete %u refused", t);
			return;
		}
		m.snaps[m.nsnaps].tag = t;
		memcpy(m.snaps[m.nsnaps++].serial, m.origin_serial, sizeof(m.origin_serial));
	} else if (rc == 0) {
		die("create %u was acknowledged but is gone after SIGKILL and restart", t);
	}
}

/* More idle connections than the server has descriptors, then the admin's own commands. */
static void exhaust_descriptors(void)
{
	static int fds[IDLE_CONNS];
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	unsigned n = 0;

	if (strlen(m.sock) >= sizeof(a.sun_path))
		die("socket path too long: %s", m.sock);
	memcpy(a.sun_path, m.sock, strlen(m.sock));
	for (; n < IDLE_CONNS; n++) {
		fds[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[n] < 0 || connect(fds[n], (struct sockaddr *)&a, sizeof(a))) {
			if (fds[n] >= 0)
				close(fds[n]);
			break;
		}
	}
	/* Refused or served, never hung or dead; and served again once the idle ones go. */
	run("list", m.sock, (char *)NULL);
	if (!alive(m.server))
		die("the server died with %u idle connections", n);
	while (n)
		close(fds[--n]);
	usleep(200000);
	create();
}

static void reserved_tags(void)
{
	if (run("create", m.sock, "4294967295", (char *)NULL) == 0 ||
	    run("create", m.sock, "4294967294", (char *)NULL) == 0)
		die("a reserved tag (0xfffffffe or 0xffffffff) was accepted as a snapshot");
	if (run("delete", m.sock, "4000000000", (char *)NULL) == 0)
		die("deleting a snapshot that does not exist succeeded");
}

static void restart_clean(void)
{
	server_stop(SIGTERM);
	server_start();
	create();
}

static void (*const mistakes[])(void) = {
	second_server, reinitialize,	    swapped_initialize, forgotten_socket,
	wrong_devices, check_live,	    stray_signals,	kill_during_create,
	reserved_tags, exhaust_descriptors, restart_clean,
};

static void make_file(const char *path, u64 bytes)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || ftruncate(fd, (off_t)bytes))
		die("create %s: %s", path, strerror(errno));
	close(fd);
}

static void setup(void)
{
	u8 buf[CS];
	int fd;

	snprintf(m.store, sizeof(m.store), "%s/store", m.dir);
	snprintf(m.origin, sizeof(m.origin), "%s/origin", m.dir);
	snprintf(m.sock, sizeof(m.sock), "%s/sock", m.dir);
	snprintf(m.sock2, sizeof(m.sock2), "%s/sock2", m.dir);
	snprintf(m.pid, sizeof(m.pid), "%s/pid", m.dir);
	snprintf(m.pid2, sizeof(m.pid2), "%s/pid2", m.dir);
	snprintf(m.log, sizeof(m.log), "%s/log", m.dir);
	snprintf(m.precious, sizeof(m.precious), "%s/meta", m.dir);
	make_file(m.store, STORE_BYTES);
	make_file(m.origin, (u64)CHUNKS * CS);
	fd = open(m.origin, O_WRONLY);
	for (u32 c = 0; c < CHUNKS; c++) {
		m.origin_serial[c] = ++m.next_serial;
		fill(buf, c, m.origin_serial[c]);
		if (fd < 0 || pwrite(fd, buf, CS, (off_t)c * CS) != CS)
			die("write origin: %s", strerror(errno));
	}
	close(fd);
	if (run("initialize", "-c", "4k", m.store, m.origin, (char *)NULL))
		die("initialize of fresh files failed (log: %s)", m.log);
	m.next_tag = 1;
}

int main(int argc, char **argv)
{
	struct stress_args args = {.duration = 20, .seed = (u64)time(NULL) ^ (u64)getpid() << 16};
	struct rlimit nofile = {IDLE_CONNS + 64, IDLE_CONNS + 64};
	const char *dir, *ddsnap = getenv("DDSNAP");
	time_t end;

	if (stress_args_parse(argc, argv, &args))
		return 2;
	m.seed = args.seed;
	dir = args.dir;
	if (ddsnap)
		snprintf(m.ddsnap, sizeof(m.ddsnap), "%s", ddsnap);
	if (!m.ddsnap[0]) { /* build/tests/stress_misuse -> build/bin/ddsnap */
		char self[PATH_MAX - 32];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		char *slash;

		self[n > 0 ? n : 0] = 0;
		slash = strrchr(self, '/');
		if (slash)
			*slash = 0;
		snprintf(m.ddsnap, sizeof(m.ddsnap), "%s/../bin/ddsnap", self);
	}
	printf("misuse: seed %llu\n", (unsigned long long)m.seed);
	fflush(stdout);
	rng.s = m.seed;
	snprintf(m.dir, sizeof(m.dir), "%s", dir ? dir : "/tmp/ddsnap-misuse-XXXXXX");
	if (!dir && !mkdtemp(m.dir))
		die("mkdtemp: %s", strerror(errno));
	if (dir && mkdir(m.dir, 0700) && errno != EEXIST)
		die("mkdir %s: %s", m.dir, strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	setrlimit(RLIMIT_NOFILE, &nofile); /* ours, for the idle connections; not the server's */
	setup();
	server_start();
	create();
	end = time(NULL) + (time_t)args.duration;
	while (time(NULL) < end) {
		if (!alive(m.server))
			server_start();
		mistakes[rnd() % (sizeof(mistakes) / sizeof(mistakes[0]))]();
		m.mistakes++;
		if (m.mistakes % VERIFY_EVERY == 0) {
			server_stop(SIGTERM);
			verify_offline();
			server_start();
			create();
		}
	}
	server_stop(SIGTERM);
	verify_offline();
	printf("misuse: %u mistakes, %u full verifications, %u live snapshots: all held\n",
	       m.mistakes, m.verified, m.nsnaps);
	if (!dir) {
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", m.dir);
		if (system(cmd))
			fprintf(stderr, "misuse: could not remove %s\n", m.dir);
	}
	return 0;
}
