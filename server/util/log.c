// SPDX-License-Identifier: GPL-2.0-only
/*
 * log.c - timestamped log lines, one write(2) each.
 *
 * The file descriptor is swapped atomically on reopen so a thread logging during a SIGHUP
 * writes either to the old file or the new one, never to a closed descriptor that was
 * reused (the old one is closed only after the swap; a write racing with that close can
 * fail, and losing that one line is acceptable).
 */
#include "util/log.h"
#include "util/path.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024 /* longer messages are truncated, with a marker */

static int log_fd = STDERR_FILENO;
static char *log_path;
static enum log_level log_level = LOGL_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"error", "warning", "info", "debug"};

/* Never through a symlink, never anything but a regular file (ownership.h). */
static int log_open_fd(const char *path)
{
	return path_open_file(path, O_WRONLY | O_CREAT | O_APPEND, 0640);
}

int log_open(const char *path)
{
	int fd = STDERR_FILENO, old;

	if (path) {
		fd = log_open_fd(path);
		if (fd < 0)
			return fd;
	}
	pthread_mutex_lock(&log_lock);
	free(log_path);
	log_path = path ? xstrdup(path) : NULL;
	old = log_fd;
	log_fd = fd;
	pthread_mutex_unlock(&log_lock);
	if (old != STDERR_FILENO && old != fd)
		close(old);
	return 0;
}

int log_reopen(void)
{
	int r = 0;
	char *path;

	pthread_mutex_lock(&log_lock);
	path = log_path ? xstrdup(log_path) : NULL;
	pthread_mutex_unlock(&log_lock);
	if (path)
		r = log_open(path);
	free(path);
	return r;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int len;
	va_list ap;

	if (level > log_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	len = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s: ", (long)tv.tv_usec / 1000,
		       level_names[level]);
	n += (size_t)MAX(len, 0);
	va_start(ap, fmt);
	len = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (len < 0)
		len = 0;
	if ((size_t)len >= sizeof(line) - n - 1) {
		n = sizeof(line) - 5;
		memcpy(line + n, "...", 3);
		n += 3;
	} else {
		n += (size_t)len;
	}
	line[n++] = '\n';
	if (write(log_fd, line, n) < 0) {
		/* Nowhere left to report it. */
	}
}
