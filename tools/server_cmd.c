// SPDX-License-Identifier: GPL-2.0-only
/*
 * server_cmd.c - `ddsnap server`: run ddsnapd for one volume.
 *
 *	ddsnap server [-f] [-l logfile] [-p pidfile] [-k cachesize] [-g|--group group]
 *		<snapstore> <origin> [<metadev>] <server_socket>
 *
 * Startup order matters for the administrator: the socket is bound first (so a second
 * server for the same socket is refused at once), then the store is opened and its intent
 * log replayed, and only then does the parent return 0, so a script that started the
 * server can immediately load dm tables against it.  Any startup failure is reported by the
 * parent with its reason and a non-zero exit.
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
#include "crc32c.h"
#include "log.h"
#include "server.h"
#include "volume.h"

static struct server *running;

/* Signals whose default action terminates and that mean nothing to the daemon. */
static const int ignored_signals[] = {SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM,   SIGVTALRM, SIGPROF,
				      SIGIO,   SIGPWR,	SIGXFSZ, SIGSTKFLT, SIGXCPU};

static const struct option server_opts[] = {
	{"group", required_argument, NULL, 'g'},
	{NULL, 0, NULL, 0},
};

/* Group @name (or a number) to *@gid.  Returns 0 or -ENOENT. */
static int parse_group(const char *name, gid_t *gid)
{
	struct group *g = getgrnam(name);
	char *end;
	unsigned long v;

	if (g) {
		*gid = g->gr_gid;
		return 0;
	}
	errno = 0;
	v = strtoul(name, &end, 10);
	if (!*name || *end || errno || name[0] == '-' || v >= (gid_t)-1)
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

static int parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!*s || errno || s[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	}
	if (*end || v < (1 << 20))
		return -EINVAL;
	*out = (size_t)v;
	return 0;
}

static int write_pidfile(const char *path)
{
	char buf[32];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	if (fd < 0)
		return -errno;
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
	bool foreground = false, group_set = false;
	gid_t group = 0;
	const char *sock;
	char why[400];
	int opt, n, r, notify = -1, rc = EXIT_FAIL;
	struct sigaction sa = {0};

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
			if (parse_size(optarg, &vp.cache_bytes)) {
				cmd_error(argv[0],
					  "bad cache size '%s' (at least 1M; k/M/G suffix)",
					  optarg);
				return EXIT_USAGE;
			}
			break;
		default:
			return cmd_usage(argv[0]);
		}
	}
	n = argc - optind;
	if (n != 3 && n != 4)
		return cmd_usage(argv[0]);
	vp.snapstore = argv[optind];
	vp.origin = argv[optind + 1];
	vp.metadev = n == 4 ? argv[optind + 2] : NULL;
	sock = argv[argc - 1];

	if (logfile && (r = log_open(logfile))) {
		cmd_error(argv[0], "cannot open log file %s: %s", logfile, strerror(-r));
		return EXIT_FAIL;
	}
	sa.sa_handler = SIG_IGN;
	for (size_t i = 0; i < ARRAY_SIZE(ignored_signals); i++)
		sigaction(ignored_signals[i], &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	r = server_create(sock, &srv, why, sizeof(why));
	if (r) {
		cmd_error(argv[0], "%s", why);
		return EXIT_FAIL;
	}
	if (group_set && (r = server_allow_group(srv, group, why, sizeof(why)))) {
		cmd_error(argv[0], "%s", why);
		goto out_server;
	}
	if (!foreground) {
		r = daemonize(&notify);
		if (r) {
			cmd_error(argv[0], "cannot start the daemon: %s", strerror(-r));
			goto out_server;
		}
		if (!logfile)
			log_open(NULL); /* stderr until /dev/null below */
	}
	if (pidfile && (r = write_pidfile(pidfile))) {
		cmd_error(argv[0], "cannot write pid file %s: %s", pidfile, strerror(-r));
		goto out_server;
	}

	vp.invalidate = server_invalidate;
	vp.invalidate_priv = srv;
	r = volume_open(&vp, &vol, why, sizeof(why));
	if (r) {
		cmd_error(argv[0], "%s", why);
		log_err("cannot open the volume: %s", why);
		goto out_pidfile;
	}
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
	r = volume_close(vol);
	if (r) {
		log_err("final sync failed: %s", strerror(-r));
		rc = EXIT_FAIL;
	} else {
		log_info("stopped cleanly");
	}
out_pidfile:
	if (pidfile)
		unlink(pidfile);
out_server:
	server_destroy(srv);
	tell_parent(&notify, (char)rc);
	return rc;
}
