/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * server.h - the network side of ddsnapd: the listening socket, one connection per ddsnap
 * device and per CLI call, the worker pool, read locks and cache invalidation.
 *
 * Lifecycle:  server_create() (listens) -> volume_open() with server_invalidate as its
 * invalidate callback -> server_attach() -> server_run() (returns after server_stop()) ->
 * volume_close() -> server_destroy().  server_stop() is async-signal-safe.
 */
#ifndef DDSNAP_SERVER_H
#define DDSNAP_SERVER_H

#include "base.h"

struct server;
struct volume;

#define SERVER_WORKERS	       4     /* kernel queries in service at once */
#define SERVER_DROP_TIMEOUT_MS 30000 /* a device that does not ack a cache drop is cut off */
#define SERVER_BACKLOG	       64
/* Ranges of queued ORIGIN_WRITEs one worker serves with one volume call (server.c). */
#define SERVER_COALESCE_RANGES 256 /* <= VOLUME_MAX_RANGES (asserted in server.c) */

/* Listens on @sock.  Returns 0 and *@out or -errno with a sentence in @why. */
int server_create(const char *sock, struct server **out, char *why, size_t whylen);
void server_attach(struct server *s, struct volume *v);
/* Serves until server_stop().  Returns 0, or -errno if the accept loop failed. */
int server_run(struct server *s);
void server_stop(struct server *s);
void server_destroy(struct server *s);

/*
 * volume_invalidate_fn: tells every device of snapshot @tag to drop its mappings and fail
 * I/O, and returns once all acknowledged (devices that do not are disconnected first).
 * @priv is the struct server.  Returns 0.
 */
int server_invalidate(void *priv, u32 tag);

#endif
