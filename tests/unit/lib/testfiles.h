/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * testfiles.h - small helpers the file-based tests (delta, replication) share: formatted
 * paths and running `ddsnap delta` in-process.  Not thread-safe (static buffers); failures
 * inside are cmocka assertions or the command's own exit code.
 */
#ifndef DDSNAP_TESTFILES_H
#define DDSNAP_TESTFILES_H

#include "util/base.h"

/*
 * The path formatted from @fmt, in one of four rotating static buffers of 256 bytes: up to
 * four results may be used at once (as arguments of one call).
 */
char *pathf(const char *fmt, ...) __printf(1, 2);

/*
 * Runs `ddsnap delta <first> ...` in this process (cmd_delta); the arguments end with a
 * NULL (char *).  Returns the command's exit code.
 */
int run_delta(const char *first, ...);

#endif
