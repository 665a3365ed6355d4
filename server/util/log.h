/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * log.h - the server's log: timestamped lines to stderr or a log file, with levels.
 *
 * The daemon logs what an administrator needs to reconstruct events (store opened, replay
 * counts, snapshot created/deleted, clients connected, errors with their reason); library
 * modules log only errors they cannot return.  Thread-safe: each line is written with one
 * write(2), so lines from different threads never interleave.  Never blocks on anything but
 * that write.
 */
#ifndef DDSNAP_LOG_H
#define DDSNAP_LOG_H

#include "util/base.h"

enum log_level { LOGL_ERR = 0, LOGL_WARN = 1, LOGL_INFO = 2, LOGL_DEBUG = 3 };

/*
 * Sends the log to @path (appending; never through a symlink, only to a regular file or a
 * character device: -ELOOP, -EINVAL), or stderr when NULL.  Returns 0 or -errno.
 */
int log_open(const char *path);
/* Reopens the log file (after rotation; SIGHUP). Returns 0 or -errno. */
int log_reopen(void);
/* Messages above @level are dropped. Default LOGL_INFO. */
void log_set_level(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __printf(2, 3);

#define log_err(...)   log_msg(LOGL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

#endif
