/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * testfiles.h - small helpers the file-based tests (delta, replication) share: formatted
 * paths, whole files written and read, and running `ddsnap delta` in-process.  Not thread-safe (static buffers); failures
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

/* Creates or truncates @path and writes @len bytes of @p to it (cmocka assertions). */
void put_file(const char *path, const void *p, size_t len);

/* All of @path in a malloc'ed buffer (one spare byte), its size in *@len (assertions). */
u8 *get_file(const char *path, size_t *len);

/*
 * Runs `ddsnap delta <first> ...` in this process (cmd_delta); the arguments end with a
 * NULL (char *).  Returns the command's exit code.
 */
int run_delta(const char *first, ...);

#endif
