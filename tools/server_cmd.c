// SPDX-License-Identifier: GPL-2.0-only
/*
 * server_cmd.c - `ddsnap server`: run ddsnapd for one volume.
 *
 *	ddsnap server [-f] [-l logfile] [-p pidfile] [-k cachesize] [-g|--group group]
 *		[--discard-damaged-log] <snapstore> <origin> [<metadev>] <server_socket>
 *
 * Startup order matters for the administrator.  Relative paths are made absolute first
 * (the daemon works in /).  Nothing touches the filesystem before the arguments have their
 * roles: the last one must be the socket (absent, or a socket a dead server left; a file or
 * device there means an argument was forgotten, and it is refused, never replaced).  Then
 * the daemon forks, opens and locks the devices and the store (ownership.h: a second server
 * on the same store, or on a device in the wrong role, is refused naming the holder) and
 * replays its intent log, and only then binds the socket, so a failed start leaves no socket
 * file, and then writes the pid file, so a second server never overwrites the first's.  The parent returns 0 once the socket is bound, so a script that started the server
 * can immediately load dm tables against it; any failure is printed by the daemon (its
 * stderr is still the caller's) and the parent exits non-zero.
 *
 * Once serving, the daemon locks its memory (mlockall): it sits under the block I/O path
 * of the volume it serves, and a page fault that needs memory reclaim that needs writes to
 * that volume would deadlock.  SIGTERM and SIGINT stop it cleanly (connections cut, a final
 * txg synced); SIGHUP reopens the log file; the other signals whose default would kill it
 * and that a user may send by mistake (SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM, ... see
 * ignored_signals) are ignored from the start, so nothing but SIGKILL stops it uncleanly.
 *
 * Access (server.h): root, and with -g the members of that group for the control protocol.
 */
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "commands.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "util/path.h"
#include "blk/ownership.h"
#include "daemon/server.h"
#include "util/unixsock.h"
#include "snap/volume.h"

static struct server *running;
static struct server *attached; /* the server the volume's invalidations go to */

/* The volume's invalidate callback: before the socket exists no device can hold mappings. */
static int invalidate_attached(void *priv, u32 tag)
{
	return attached ? server_invalidate(attached, tag) : 0;
}

/* @p made absolute against the working directory (NULL stays NULL; "@name" stays). */
static char *abs_path(const char *p)
{
	char cwd[4096];
	char *out;

	if (!p || p[0] == '/' || p[0] == '@' || !getcwd(cwd, sizeof(cwd)))
		return p ? xstrdup(p) : NULL;
	if (asprintf(&out, "%s/%s", cwd, p) < 0)
		return xstrdup(p);
	return out;
}

/* Signals whose default action terminates and that mean nothing to the daemon. */
static const int ignored_signals[] = {SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM,   SIGVTALRM, SIGPROF,
				      SIGIO,   SIGPWR,	SIGXFSZ, SIGSTKFLT, SIGXCPU};

static const struct option server_opts[] = {
	{"group", required_argument, NULL, 'g'},
	{"discard-damaged-log", no_argument, NULL, 'D'},
	{NULL, 0, NULL, 0},
};

/* Group @name (or a number) to *@gid.  Returns 0 or -ENOENT. */
static int parse_group(const char *name, gid_t *gid)
{
	struct group *g = getgrnam(name);
	u64 v;

	if (g) {
		*gid = g->gr_gid;
		return 0;
	}
	if (cmd_parse_u64(name, 0, (gid_t)-2, &v))
		return -ENOENT;
	*gid = (gid_t)v;
	return 0;
}

static void on_stop(int sig)
{
	if (running)
		server_stop(running);
}

static void on_hup(int sig)
{
	log_reopen();
}

static int write_pidfile(const char *path)
{
	char buf[32];
	int fd = path_open_file(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	if (fd < 0)
		return fd;
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		return -EIO;
	}
	return close(fd) ? -errno : 0;
}

/*
 * Forks; the parent waits for the child's one-byte verdict on @notify and exits with it.
 * Returns in the child only.
 */
static int daemonize(int *notify)
{
	int p[2];
	pid_t pid;
	char verdict = EXIT_FAIL;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &verdict, 1) != 1)
			verdict = EXIT_FAIL; /* the child died before it was ready */
		_exit(verdict);
	}
	close(p[0]);
	setsid();
	if (chdir("/") < 0)
		return -errno;
	*notify = p[1];
	return 0;
}

static void tell_parent(int *notify, char verdict)
{
	if (*notify < 0)
		return;
	if (write(*notify, &verdict, 1) < 0) {
		/* The parent is gone; nothing to tell. */
	}
	close(*notify);
	*notify = -1;
}

int cmd_server(int argc, char **argv)
{
	const char *logfile = NULL, *pidfile = NULL;
	struct volume_params vp = {0};
	struct volume *vol = NULL;
	struct server *srv = NULL;
	bool foreground = false, pid_written = false, group_set = false;
	gid_t group = 0;
	const char *sock;
	char *args[4] = {NULL};
	char why[900];
	int opt, n, r, notify = -1, rc = EXIT_FAIL;
	struct sigaction sa = {0};
	u64 size;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+fl:p:k:g:", server_opts, NULL)) != -1) {
		switch (opt) {
		case 'g':
			if (parse_group(optarg, &group)) {
				cmd_error(argv[0], "no such group '%s'", optarg);
				return EXIT_USAGE;
			}
			group_set = true;
			break;
		case 'D':
			vp.discard_damaged_log = true;
			break;
		case 'f':
			foreground = true;
			break;
		case 'l':
			logfile = optarg;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'k':
			if (cmd_parse_size(optarg, SIZE_MAX, &size) || size < (1 << 20)) {
				cmd_error(argv[0],
					  "bad cache size '%s' (at least 1M; k/M/G suffix)",
					  optarg);
				return EXIT_USAGE;
			}
			vp.cache_bytes = (size_t)size;
			break;
		default:
			return cmd_usage(argv[0]);
		}
	}
	n = argc - optind;
	if (n != 3 && n != 4)
		return cmd_usage(argv[0]);
	for (int i = 0; i < n; i++)
		args[i] = abs_path(argv[optind + i]);
	vp.snapstore = args[0];
	vp.origin = args[1];
	vp.metadev = n == 4 ? args[2] : NULL;
	sock = args[n - 1];
	logfile = abs_path(logfile);
	pidfile = abs_path(pidfile);

	sa.sa_handler = SIG_IGN;
	for (size_t i = 0; i < ARRAY_SIZE(ignored_signals); i++)
		sigaction(ignored_signals[i], &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);

	/* The roles first: a file or device where the socket belongs is a forgotten argument. */
	if (unixsock_check_path(sock)) {
		struct stat st;

		lstat(sock, &st);
		cmd_error(argv[0],
			  "the socket %s is %s, not a socket: the last argument names the server's "
			  "socket%s; nothing was changed",
			  sock, path_kind(st.st_mode),
			  n == 3 ? " (a metadata device given without a socket?)" : "");
		rc = EXIT_USAGE;
		goto out_free;
	}
	if (!foreground) {
		r = daemonize(&notify);
		if (r) {
			cmd_error(argv[0], "cannot start the daemon: %s", errmsg(r));
			goto out_free;
		}
	}
	if (logfile && (r = log_open(logfile))) {
		cmd_error(argv[0], "cannot open log file %s: %s", logfile, path_open_errmsg(r));
		goto out_free;
	}
	if (!foreground && !logfile)
		log_open(NULL); /* stderr until /dev/null below */
	vp.invalidate = invalidate_attached;
	vp.progress = true; /* drawn only if stderr is a terminal */
	r = volume_open(&vp, &vol, why, sizeof(why));
	if (r) {
		cmd_error(argv[0], "%s", why);
		log_err("cannot open the volume: %s", why);
		goto out_free;
	}
	r = server_create(sock, &srv, why, sizeof(why));
	if (r) {
		cmd_error(argv[0], "%s", why);
		goto out_volume;
	}
	if (group_set && (r = server_allow_group(srv, group, why, sizeof(why)))) {
		cmd_error(argv[0], "%s", why);
		goto out_volume;
	}
	/* After the store and the socket are ours: never another server's pid file. */
	if (pidfile && (r = write_pidfile(pidfile))) {
		cmd_error(argv[0], "cannot write pid file %s: %s", pidfile, path_open_errmsg(r));
		if (sock[0] != '@')
			unlink(sock); /* bound just now: a failed start leaves no socket */
		goto out_volume;
	}
	pid_written = pidfile != NULL;
	attached = srv;
	server_attach(srv, vol);
	if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
		log_warn("mlockall: %s: memory pressure could stall the server", strerror(errno));

	running = srv;
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	log_info("ddsnapd serving snapstore %s, origin %s%s%s on %s (crc32c: %s)", vp.snapstore,
		 vp.origin, vp.metadev ? ", metadata " : "", vp.metadev ? vp.metadev : "", sock,
		 crc32c_impl_name(crc32c_impl()));
	if (!foreground) {
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			if (logfile)
				dup2(null, STDERR_FILENO);
			close(null);
		}
	}
	tell_parent(&notify, EXIT_OK);
	r = server_run(srv);
	running = NULL;
	rc = r ? EXIT_FAIL : EXIT_OK;
out_volume:
	r = volume_close(vol);
	if (r) {
		log_err("final sync failed: %s", errmsg(r));
		rc = EXIT_FAIL;
	} else if (rc == EXIT_OK) {
		log_info("stopped cleanly");
	}
	attached = NULL;
	server_destroy(srv);
	if (pid_written)
		unlink(pidfile); /* ours: written once the store and the socket were */
out_free:
	tell_parent(&notify, (char)rc);
	for (int i = 0; i < n; i++)
		free(args[i]);
	free((char *)logfile);
	free((char *)pidfile);
	return rc;
}
