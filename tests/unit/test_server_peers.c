// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_server_peers.c - the server against peers that are not who they should be or want
 * more than their share: a real server (srvfix) on a thread, and the test playing a
 * misbehaving kernel (lib/kpeer) and CLI, as root and, in forked children, as nobody.
 *
 * What it pins down (doc/misuse.md, "Peers and credentials" and "Resources"):
 *  - a peer that is not root (nor in the admin group) is refused on both protocols, with
 *    -EACCES and a reason, and the refusal is logged with its pid and uid;
 *  - a member of the admin group may use the control protocol but not connect a device;
 *  - a path socket is 0600 (0660 and the group's with a group) under umask 000;
 *  - an IDENTIFY that was refused closes the connection: no read locks without one;
 *  - read locks are bounded per connection, logged when held long, released when the
 *    connection goes, and root's origin writes elsewhere are answered meanwhile;
 *  - connections are bounded: hundreds of idle ones add at most SERVER_MAX_CONNS threads,
 *    the rest are refused -EBUSY; non-root peers cannot take more than their share;
 *  - at the fd limit the acceptor neither spins nor floods the log.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <fcntl.h>
#include <grp.h>
#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "client/ctl_client.h"
#include "util/log.h"
#include "daemon/server.h"
#include "util/unixsock.h"
#include "proto/wire.h"
#include "lib/kpeer.h"
#include "lib/srvfix.h"

#define CHUNK_SHIFT  14
#define ORIGIN_BYTES (8u << 20)
#define STORE_BYTES  (48u << 20)
#define SECTORS	     (ORIGIN_BYTES >> 9)
#define NOBODY	     65534

static char dir[] = "/tmp/ddsnap-test-peers-XXXXXX";
static char logpath[128], pathsock[160];
static struct srvfix vf;

/*----------------------------------------------------------------
 * Helpers
 *--------------------------------------------------------------*/

/* Serves the volume on the abstract socket @name, or on pathsock when @name is NULL. */
static void start(const char *name, const struct server_limits *lim, bool group)
{
	if (name)
		snprintf(vf.sock, sizeof(vf.sock), "@%s-%d", name, (int)getpid());
	else
		snprintf(vf.sock, sizeof(vf.sock), "%s", pathsock);
	vf.limits = lim;
	vf.allow_group = group;
	vf.group = NOBODY;
	assert_int_equal(srvfix_start(&vf), 0);
}

/* A control call as the caller: returns the connection's error (0: it was served). */
static int ctl_call(u16 type, u32 tag, char *why, size_t whylen)
{
	struct ctl_client *c;
	struct ctl_msg req = {.type = type, .tag = tag}, reply = {0};
	int r = ctl_client_open(vf.sock, &c, why, whylen);

	if (r)
		return r;
	r = ctl_client_call(c, &req, &reply, why, whylen);
	if (!r && reply.result.error) {
		r = reply.result.error;
		snprintf(why, whylen, "%s", reply.result.text);
	}
	ctl_client_close(c);
	return r;
}

/* The server's read lock count, as STATUS reports it. */
static u32 readlocks(void)
{
	struct ctl_client *c;
	struct ctl_msg req = {.type = CTL_STATUS}, reply = {0};
	char why[300];

	if (ctl_client_open(vf.sock, &c, why, sizeof(why)))
		fail_msg("%s", why);
	assert_int_equal(ctl_client_call(c, &req, &reply, why, sizeof(why)), 0);
	ctl_client_close(c);
	return reply.status.readlocks;
}

/* How many lines of the server log contain @needle. */
static unsigned log_lines(const char *needle)
{
	FILE *f = fopen(logpath, "r");
	char line[1024];
	unsigned n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

static unsigned threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %u", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* Becomes uid/gid nobody (no other groups): for forked children only. */
static bool become_nobody(void)
{
	return !setgroups(0, NULL) && !setresgid(NOBODY, NOBODY, NOBODY) &&
	       !setresuid(NOBODY, NOBODY, NOBODY);
}

/* Runs @fn in a child as nobody; returns its exit status (0: every check held). */
static int as_nobody(int (*fn)(void *), void *arg)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (!pid)
		_exit(become_nobody() ? fn(arg) : 99);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/*----------------------------------------------------------------
 * Credentials
 *--------------------------------------------------------------*/

/* As nobody, not in the group: both protocols refused with a reason.  Exit code says which failed. */
static int nobody_refused(void *arg)
{
	struct kconn k = {0};
	struct wire_msg *m;
	char why[300] = "";
	int r = ctl_call(CTL_STATUS, 0, why, sizeof(why));

	if (r != -EACCES)
		return 1;
	if (!strstr(why, "permission denied: uid 65534 is not root"))
		return 2;
	if (ctl_call(CTL_CREATE, 5, why, sizeof(why)) != -EACCES)
		return 3;
	m = kidentify_at(&k, vf.sock, 1, DDSNAP_WIRE_VERSION, SECTORS);
	if (!m || m->type != (DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY) ||
	    m->identify_reply.error != -EACCES)
		return 4;
	free(m);
	close(k.fd);
	return 0;
}

static void test_peers__non_root_refused(void **state)
{
	char why[300];

	start("peers-cred", NULL, false);
	assert_int_equal(ctl_call(CTL_CREATE, 1, why, sizeof(why)), 0); /* root may */
	assert_int_equal(as_nobody(nobody_refused, NULL), 0);
	assert_int_equal(ctl_call(CTL_STATUS, 0, why, sizeof(why)), 0);
	srvfix_stop(&vf);
	assert_true(log_lines("refused a connection from pid") >= 1);
	assert_true(log_lines("uid 65534, gid 65534: permission denied") >= 1);
}

/* As nobody in the server's group: the control protocol, but no device. */
static int in_group_only(void *arg)
{
	struct kconn k = {0};
	struct wire_msg *m;
	char why[300];
	int r;

	if (ctl_call(CTL_STATUS, 0, why, sizeof(why)))
		return 1;
	m = kidentify_at(&k, vf.sock, 1, DDSNAP_WIRE_VERSION, SECTORS);
	if (!m || m->identify_reply.error != -EACCES)
		return 2;
	/* Refused IDENTIFY: the connection is closed, so no query can follow. */
	r = krecv(&k, m, 2000);
	free(m);
	if (r != -EPIPE && r != -ECONNRESET)
		return 3;
	close(k.fd);
	return 0;
}

static void test_peers__group_member_controls_only(void **state)
{
	start("peers-group", NULL, true);
	assert_int_equal(as_nobody(in_group_only, NULL), 0);
	srvfix_stop(&vf);
	assert_true(log_lines("uid 65534): IDENTIFY tag 1") >= 1);
}

static void test_peers__socket_mode_ignores_umask(void **state)
{
	mode_t old = umask(0);
	struct stat st;

	start(NULL, NULL, false);
	assert_int_equal(lstat(pathsock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	srvfix_stop(&vf);
	start(NULL, NULL, true);
	assert_int_equal(lstat(pathsock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_gid, NOBODY);
	srvfix_stop(&vf);
	umask(old);
}

/*----------------------------------------------------------------
 * Read locks
 *--------------------------------------------------------------*/

/* A refused IDENTIFY (wrong size) closes the connection: a query after it takes no lock. */
static void test_peers__no_read_locks_without_identify(void **state)
{
	struct kconn k = {0};
	struct wire_msg *m;

	start("peers-ident", NULL, false);
	m = kidentify_at(&k, vf.sock, 1, DDSNAP_WIRE_VERSION, SECTORS + 8);
	assert_non_null(m);
	assert_int_equal(m->identify_reply.error, -EINVAL);
	m->type = DDSNAP_MSG_SNAPSHOT_READ;
	m->seq = ++k.seq;
	m->query.nr = 1;
	m->query.r[0] = (struct wire_range){0, 16, 0};
	/* Closed: at once (EOF), or with our unread query in its buffer (a reset). */
	if (!ksend_try(&k, m)) { /* else the server had closed it already */
		int r = krecv(&k, m, 2000);

		assert_true(r == -EPIPE || r == -ECONNRESET);
	}
	assert_int_equal(readlocks(), 0);
	free(m);
	close(k.fd);
	srvfix_stop(&vf);
}

/* Sends a SNAPSHOT_READ of chunks [0, n) and returns how many came back locked / -EBUSY. */
static void read_unfinished(struct kconn *k, u32 n, u32 *locked, u32 *busy)
{
	struct wire_msg *m = kmsg(0, 0);

	kquery(k, DDSNAP_MSG_SNAPSHOT_READ, 0, n, 0);
	assert_int_equal(krecv(k, m, 10000), 0);
	assert_int_equal(m->type, DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY);
	assert_int_equal(m->map_reply.nr, n);
	for (u32 i = 0; i < n; i++) {
		if (m->map_reply.m[i].where == DDSNAP_MAP_ORIGIN && m->map_reply.m[i].lock)
			++*locked;
		else if (m->map_reply.m[i].where == DDSNAP_MAP_ERROR &&
			 m->map_reply.m[i].error == -EBUSY)
			++*busy;
		else
			fail_msg("chunk %u: where %u error %d", i, m->map_reply.m[i].where,
				 m->map_reply.m[i].error);
	}
	free(m);
}

static void test_peers__read_locks_bounded_logged_released(void **state)
{
	struct server_limits lim = {SERVER_MAX_CONNS, SERVER_MAX_USER_CONNS, SERVER_MAX_READLOCKS,
				    200};
	struct kconn bad = {0}, origin = {0};
	struct wire_msg *m = kmsg(0, 0);
	struct timespec t0, t1;
	u32 locked = 0, busy = 0;
	char why[300];
	int r;

	start("peers-locks", &lim, false);
	r = ctl_call(CTL_CREATE, 1, why, sizeof(why));
	assert_true(r == 0 || r == -EEXIST);
	m = kidentify_at(&bad, vf.sock, 1, DDSNAP_WIRE_VERSION, SECTORS);
	assert_int_equal(m->identify_reply.error, 0);
	free(m);
	m = kidentify_at(&origin, vf.sock, DDSNAP_TAG_ORIGIN, DDSNAP_WIRE_VERSION, SECTORS);
	assert_int_equal(m->identify_reply.error, 0);

	/* A kernel that never FINISHes: 5 x 256 reads; only SERVER_MAX_READLOCKS get locks. */
	for (int i = 0; i < 5; i++)
		read_unfinished(&bad, DDSNAP_WIRE_MAX_CHUNKS, &locked, &busy);
	assert_int_equal(locked, SERVER_MAX_READLOCKS);
	assert_int_equal(busy, 5 * DDSNAP_WIRE_MAX_CHUNKS - SERVER_MAX_READLOCKS);
	assert_int_equal(readlocks(), SERVER_MAX_READLOCKS);

	/* Root's origin write to a chunk nobody reads is answered at once... */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	kquery(&origin, DDSNAP_MSG_ORIGIN_WRITE, 400, 4, 0);
	assert_int_equal(krecv(&origin, m, 2000), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(m->type, DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY);
	assert_int_equal(m->origin_reply.r[0].error, 0);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
	/* ...one to a locked chunk waits, the overdue locks are logged, never dropped... */
	kquery(&origin, DDSNAP_MSG_ORIGIN_WRITE, 10, 1, 0);
	assert_int_equal(krecv(&origin, m, 600), -EAGAIN);
	assert_int_equal(readlocks(), SERVER_MAX_READLOCKS);
	assert_true(log_lines("more read locks over 200 ms") >= 1);
	assert_int_equal(log_lines("holds 1024 read locks, the most one connection may"), 1);
	/* ...and goes once the peer is gone, with every lock it held. */
	close(bad.fd);
	assert_int_equal(krecv(&origin, m, 5000), 0);
	assert_int_equal(m->type, DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY);
	assert_int_equal(m->origin_reply.r[0].error, 0);
	assert_int_equal(readlocks(), 0);
	free(m);
	close(origin.fd);
	srvfix_stop(&vf);
}

/*----------------------------------------------------------------
 * Connections
 *--------------------------------------------------------------*/

enum { FLOOD = 300 };

static void test_peers__connections_bounded(void **state)
{
	static struct ctl_client *c[FLOOD];
	unsigned base, served = 0, busy = 0;
	char why[300];

	start("peers-conns", NULL, false);
	assert_int_equal(ctl_call(CTL_STATUS, 0, why, sizeof(why)), 0); /* the server runs */
	usleep(100000);
	base = threads();
	for (unsigned i = 0; i < FLOOD; i++) {
		int r = ctl_client_open(vf.sock, &c[i], why, sizeof(why));

		if (!r) {
			served++;
			continue;
		}
		c[i] = NULL;
		assert_int_equal(r, -EBUSY);
		assert_non_null(strstr(why, "too many connections (256 at once)"));
		busy++;
	}
	/* At most the bound; the status call's thread may still be on its way out. */
	assert_true(served <= SERVER_MAX_CONNS && served >= SERVER_MAX_CONNS - 4);
	assert_int_equal(busy, FLOOD - served);
	assert_true(threads() <= base + SERVER_MAX_CONNS);
	assert_true(log_lines("too many connections") >= 1);
	for (unsigned i = 0; i < FLOOD; i++)
		ctl_client_close(c[i]);
	/* Closed connections give their places back. */
	for (int tries = 0; tries < 100 && ctl_call(CTL_STATUS, 0, why, sizeof(why)); tries++)
		usleep(20000);
	assert_int_equal(ctl_call(CTL_STATUS, 0, why, sizeof(why)), 0);
	srvfix_stop(&vf);
}

/* As nobody in the group: holds as many connections as it gets, then lets root try. */
static int user_flood(void *arg)
{
	int *pipes = arg; /* [0]: read "done" from root; [1]: report how many were served */
	static struct ctl_client *c[40];
	char why[300], verdict;
	unsigned served = 0;

	for (unsigned i = 0; i < 40; i++) {
		int r = ctl_client_open(vf.sock, &c[i], why, sizeof(why));

		if (r)
			c[i] = NULL;
		if (r && (r != -EBUSY || !strstr(why, "of non-root peers")))
			return 1;
		served += !r;
	}
	if (write(pipes[1], &served, sizeof(served)) != sizeof(served))
		return 2;
	if (read(pipes[0], &verdict, 1) != 1)
		return 3;
	for (unsigned i = 0; i < 40; i++)
		ctl_client_close(c[i]);
	return 0;
}

static void test_peers__users_cannot_crowd_out_root(void **state)
{
	int to_child[2], from_child[2], args[2], status;
	unsigned served = 0;
	struct kconn k = {0};
	struct wire_msg *m;
	char why[300];
	pid_t pid;

	start("peers-share", NULL, true);
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(from_child), 0);
	args[0] = to_child[0];
	args[1] = from_child[1];
	pid = fork();
	assert_true(pid >= 0);
	if (!pid)
		_exit(become_nobody() ? user_flood(args) : 99);
	assert_int_equal(read(from_child[0], &served, sizeof(served)), sizeof(served));
	assert_int_equal(served, SERVER_MAX_USER_CONNS);
	/* Root still gets in, on both protocols. */
	assert_int_equal(ctl_call(CTL_STATUS, 0, why, sizeof(why)), 0);
	m = kidentify_at(&k, vf.sock, DDSNAP_TAG_ORIGIN, DDSNAP_WIRE_VERSION, SECTORS);
	assert_int_equal(m->identify_reply.error, 0);
	free(m);
	close(k.fd);
	assert_int_equal(write(to_child[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(to_child[0]);
	close(to_child[1]);
	close(from_child[0]);
	close(from_child[1]);
	srvfix_stop(&vf);
}

/* utime + stime of process @pid, in clock ticks. */
static unsigned long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	p = strrchr(buf, ')'); /* fields after the command name */
	assert_non_null(p);
	assert_int_equal(
		sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
	return ut + st;
}

/* The highest descriptor this process has open. */
static int max_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int max = 0;

	while ((e = readdir(d)))
		max = MAX(max, atoi(e->d_name));
	closedir(d);
	return max;
}

/* A server child at its fd limit, with connections queued: no spin, no flood of lines. */
static void test_peers__acceptor_backs_off_at_fd_limit(void **state)
{
	char line[200];
	int ready[2], fds[4];
	unsigned long before, after;
	pid_t pid;
	char x;

	snprintf(vf.sock, sizeof(vf.sock), "@peers-fdlimit-%d", (int)getpid());
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct rlimit rl;

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a test that failed */
		vf.limits = NULL;
		vf.allow_group = false;
		if (srvfix_start(&vf))
			_exit(1);
		rl.rlim_cur = rl.rlim_max = (rlim_t)max_fd() + 1;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			_exit(2);
		while (dup(ready[1]) >= 0) /* fill the holes: every new fd is EMFILE */
			;
		if (errno != EMFILE || write(ready[1], "r", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(ready[1]); /* a child that dies gives EOF here, not a hang */
	ready[1] = -1;
	assert_int_equal(read(ready[0], &x, 1), 1);
	for (int i = 0; i < 4; i++) {
		fds[i] = unixsock_connect(vf.sock, 2000); /* queued: the server cannot accept */
		assert_true(fds[i] >= 0);
	}
	usleep(200000);
	before = cpu_ticks(pid);
	sleep(2);
	after = cpu_ticks(pid);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	close(ready[0]);
	snprintf(line, sizeof(line), "cannot accept connections: %s", strerror(EMFILE));
	/* A spinning acceptor burns ~2 s of CPU in 2 s and logs a line per try. */
	if (after - before > (unsigned long)sysconf(_SC_CLK_TCK) / 5)
		fail_msg("the acceptor used %lu ticks of CPU in 2 s", after - before);
	assert_true(log_lines(line) >= 1);
	assert_true(log_lines(line) <= 4);
}

/*
 * A server whose descriptor limit is below its connection bound: the bound is lowered to fit
 * (SERVER_FD_RESERVE), so a flood of idle connections is told -EBUSY instead of waiting,
 * unaccepted, behind a server out of descriptors; and the admin's next call is served once
 * they go.  (The flood would hang here without the fit: SIGALRM ends the test then.)
 */
static void test_peers__connections_fit_the_fd_limit(void **state)
{
	enum { EXTRA = 40 }; /* descriptors the child may open beyond those it has */
	static struct ctl_client *c[FLOOD];
	unsigned served = 0, busy = 0;
	int ready[2], limit;
	char why[300], x;
	pid_t pid;

	snprintf(vf.sock, sizeof(vf.sock), "@peers-fdfit-%d", (int)getpid());
	limit = max_fd() + 1 + SERVER_FD_RESERVE + EXTRA;
	assert_true(limit - SERVER_FD_RESERVE < FLOOD);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct rlimit rl;

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a test that failed */
		rl.rlim_cur = rl.rlim_max = (rlim_t)limit;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			_exit(2);
		vf.limits = NULL;
		vf.allow_group = false;
		if (srvfix_start(&vf) || write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]); /* a child that dies gives EOF here, not a hang */
	ready[1] = -1;
	assert_int_equal(read(ready[0], &x, 1), 1);
	alarm(60);
	for (unsigned i = 0; i < FLOOD; i++) {
		int r = ctl_client_open(vf.sock, &c[i], why, sizeof(why));

		if (r)
			c[i] = NULL;
		served += !r;
		busy += r == -EBUSY && strstr(why, "too many connections");
	}
	assert_true(served > 0 && served <= (unsigned)(limit - SERVER_FD_RESERVE));
	assert_true(busy > 0);
	assert_int_equal(busy, FLOOD - served);
	for (unsigned i = 0; i < FLOOD; i++)
		ctl_client_close(c[i]);
	for (int tries = 0; tries < 100 && ctl_call(CTL_STATUS, 0, why, sizeof(why)); tries++)
		usleep(20000);
	assert_int_equal(ctl_call(CTL_STATUS, 0, why, sizeof(why)), 0);
	alarm(0);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	close(ready[0]);
}

static int setup(void **state)
{
	if (!mkdtemp(dir) ||
	    srvfix_create(&vf, dir, "origin", CHUNK_SHIFT, ORIGIN_BYTES, STORE_BYTES, NULL))
		return -1;
	snprintf(logpath, sizeof(logpath), "%s/server.log", dir);
	snprintf(pathsock, sizeof(pathsock), "%s/peers.sock", dir);
	return log_open(logpath) ? -1 : 0;
}

static int teardown(void **state)
{
	log_open(NULL);
	unlink(logpath);
	unlink(pathsock);
	unlink(vf.store);
	unlink(vf.origin);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peers__non_root_refused),
		cmocka_unit_test(test_peers__group_member_controls_only),
		cmocka_unit_test(test_peers__socket_mode_ignores_umask),
		cmocka_unit_test(test_peers__no_read_locks_without_identify),
		cmocka_unit_test(test_peers__read_locks_bounded_logged_released),
		cmocka_unit_test(test_peers__connections_bounded),
		cmocka_unit_test(test_peers__users_cannot_crowd_out_root),
		cmocka_unit_test(test_peers__acceptor_backs_off_at_fd_limit),
		cmocka_unit_test(test_peers__connections_fit_the_fd_limit),
	};

	return cmocka_run_group_tests_name("server_peers", tests, setup, teardown);
}
