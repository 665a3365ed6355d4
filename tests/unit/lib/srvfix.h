/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * srvfix.h - a snapshotted volume served by a real ddsnapd server on a thread of the test,
 * on temporary files: what the server, replication and delta tests share.
 *
 * Files: <dir>/<name>-store (sparse, formatted), <dir>/<name> (the origin, sparse, or the
 * bytes the test gives), <dir>/<name>.sock.  The test plays the kernel: srvfix_origin_write
 * asks the engine for the copy-out and then writes the origin file, and
 * srvfix_export materialises a snapshot through the volume's read map.  Failures are
 * cmocka assertions.
 */
#ifndef DDSNAP_SRVFIX_H
#define DDSNAP_SRVFIX_H

#include <pthread.h>
#include <sys/types.h>
#include "util/base.h"

struct server;
struct server_limits;
struct volume;

struct srvfix {
	char store[192], origin[192], sock[192];
	u32 chunk_size;
	u64 origin_bytes;
	struct server *srv;
	struct volume *vol;
	pthread_t thread;
	/* Set before srvfix_start to change the server's defaults. */
	const struct server_limits *limits;
	bool allow_group; /* server_allow_group(group) */
	gid_t group;
};

/*
 * Creates and formats the files of @name in @dir (chunk 1 << @chunk_shift); the origin holds
 * @data (@origin_bytes of it) or zeros.  Returns 0 or -1.
 */
int srvfix_create(struct srvfix *f, const char *dir, const char *name, u32 chunk_shift,
		  u64 origin_bytes, u64 store_bytes, const void *data);
/* Opens the volume (replaying its log) and serves it on a thread.  Returns 0 or -1. */
int srvfix_start(struct srvfix *f);
/* Stops the server and closes the volume (a final txg). */
void srvfix_stop(struct srvfix *f);

/* Origin chunks [@chunk, @chunk + @n) written the kernel's way: copy-out first, then @data. */
void srvfix_origin_write(struct srvfix *f, u64 chunk, u32 n, const void *data);
/* Writes snapshot @tag's image, read through the volume's map, to the file @out. */
void srvfix_export(struct srvfix *f, u32 tag, const char *out);
/* The first @len bytes of file @path (malloc'ed). */
u8 *srvfix_slurp(const char *path, size_t len);

#endif
