/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * server.h - the network side of ddsnapd: the listening socket, one connection per ddsnap
 * device and per CLI call, the worker pool, read locks and cache invalidation.
 *
 * Lifecycle:  volume_open() (its invalidate callback reaches server_invalidate once the
 * server exists; before, no device can hold mappings) -> server_create() (listens) ->
 * [server_allow_group(), server_set_limits()] -> server_attach() -> server_run() (returns
 * after server_stop()) -> volume_close() -> server_destroy().  Opening the volume first means
 * a start that fails leaves no socket (tools/server_cmd.c).  server_stop() is
 * async-signal-safe.
 *
 * Who may connect (SO_PEERCRED of the peer, taken when it connects): root may speak both
 * protocols; members of the group given to server_allow_group() (primary or supplementary)
 * the control protocol only; everyone else nothing.  A refused peer gets an answer in the
 * protocol of its first message (-EACCES, "permission denied ...") and a log line names its
 * pid and uid.  A path socket is created 0600 whatever the umask (0660 and the group's with
 * server_allow_group); an abstract one has no mode, so the credential check is all that
 * protects it.
 *
 * What a peer can make the server hold is bounded (struct server_limits): connections (a
 * thread each, with a THREAD_STACK_BYTES stack, base.h: at most
 * SERVER_MAX_CONNS of them, 64 MiB locked), of those the ones of peers other than root,
 * and read locks per connection.  A connection beyond a bound is answered -EBUSY and
 * closed; a read lock held longer than readlock_warn_ms is logged, never dropped.
 */
#ifndef DDSNAP_SERVER_H
#define DDSNAP_SERVER_H

#include <sys/types.h>
#include "util/base.h"
#include "ddsnap_wire.h"

struct server;
struct volume;

#define SERVER_WORKERS	       4     /* kernel queries in service at once */
#define SERVER_DROP_TIMEOUT_MS 30000 /* a device that does not ack a cache drop is cut off */
#define SERVER_BACKLOG	       64
/*
 * Bounds on what peers make the server hold (defaults of struct server_limits).  Legitimate
 * connections are one per ddsnap device (the origin and each snapshot device) plus one per
 * running CLI call; 256 is far beyond any volume's devices.  Non-root peers (CLI calls of
 * the admin group) get a share small enough that they can never crowd out a device.
 */
#define SERVER_MAX_CONNS      256
#define SERVER_MAX_USER_CONNS 16
#define SERVER_MAX_READLOCKS  DDSNAP_WIRE_MAX_READLOCKS /* per connection (ddsnap_wire.h) */
/* A read lock lives for one origin read; one held this long is logged (never dropped). */
#define SERVER_READLOCK_WARN_MS 30000
/*
 * Descriptors kept free of connections: the devices, the log, the pipes and the refused peers
 * awaiting their answer (SERVER_REFUSING).  The connection bound is lowered to the descriptor
 * limit less this (server_create raises the soft limit to the hard one first), so that a peer
 * beyond it is accepted and told -EBUSY instead of waiting, unaccepted, behind a full table.
 */
#define SERVER_FD_RESERVE 64
/* At the fd limit the acceptor pauses new connections, doubling from MIN up to MAX. */
#define SERVER_ACCEPT_BACKOFF_MIN_MS 10
#define SERVER_ACCEPT_BACKOFF_MAX_MS 1000
/* A refused peer has this long to send its first message (to be answered in its protocol). */
#define SERVER_REFUSE_WAIT_MS 1000
#define SERVER_REFUSING	      16 /* refused peers awaiting their answer at once; more are cut */
/* Ranges of queued ORIGIN_WRITEs one worker serves with one volume call (server.c). */
#define SERVER_COALESCE_RANGES 256 /* <= VOLUME_MAX_RANGES (asserted in server.c) */

struct server_limits {
	unsigned conns;		   /* connections at once */
	unsigned user_conns;	   /* of which peers other than root hold */
	unsigned readlocks;	   /* read locks per connection */
	unsigned readlock_warn_ms; /* a read lock held longer is logged */
};

/*
 * Listens on @sock (a path socket 0600, owner the caller).  Returns 0 and *@out or -errno
 * with a sentence in @why.
 */
int server_create(const char *sock, struct server **out, char *why, size_t whylen);
/*
 * Lets members of group @gid use the control protocol; a path socket becomes 0660 with
 * that group.  Before server_run().  Returns 0 or -errno with a sentence in @why.
 */
int server_allow_group(struct server *s, gid_t gid, char *why, size_t whylen);
/* Replaces the default bounds (SERVER_MAX_*).  Before server_run(). */
void server_set_limits(struct server *s, const struct server_limits *l);
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
