// SPDX-License-Identifier: GPL-2.0-only
/*
 * server_cmd.c - `ddsnap server`: run ddsnapd for one volume.
 *
 *	ddsnap server [-f] [-l logfile] [-p pidfile] [-k cachesize] [--discard-damaged-log]
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
 * txg synced); SIGHUP reopens the log file; SIGPIPE is ignored.
 */
#include <fcntl.h>
#include <getopt.h>
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
	bool foreground = false;
	const char *sock;
	char why[900];
	int opt, n, r, notify = -1, rc = EXIT_FAIL;
	struct sigaction sa = {0};
	u64 size;

	static const struct option longopts[] = {
		{"discard-damaged-log", no_argument, NULL, 'D'},
		{0},
	};

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+fl:p:k:", longopts, NULL)) != -1) {
		switch (opt) {
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
	vp.snapstore = argv[optind];
	vp.origin = argv[optind + 1];
	vp.metadev = n == 4 ? argv[optind + 2] : NULL;
	sock = argv[argc - 1];

	if (logfile && (r = log_open(logfile))) {
		cmd_error(argv[0], "cannot open log file %s: %s", logfile, errmsg(r));
		return EXIT_FAIL;
	}
	r = server_create(sock, &srv, why, sizeof(why));
	if (r) {
		cmd_error(argv[0], "%s", why);
		return EXIT_FAIL;
	}
	if (!foreground) {
		r = daemonize(&notify);
		if (r) {
			cmd_error(argv[0], "cannot start the daemon: %s", errmsg(r));
			goto out_server;
		}
		if (!logfile)
			log_open(NULL); /* stderr until /dev/null below */
	}
	if (pidfile && (r = write_pidfile(pidfile))) {
		cmd_error(argv[0], "cannot write pid file %s: %s", pidfile, errmsg(r));
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
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

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
		log_err("final sync failed: %s", errmsg(r));
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
