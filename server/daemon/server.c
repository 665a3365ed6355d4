// SPDX-License-Identifier: GPL-2.0-only
/*
 * server.c - ddsnapd's network side (server.h).
 *
 * Threads.  One acceptor (server_run) polls the listening socket and a stop pipe.  Each
 * connection has a reader thread.  Its first message decides what it is: IDENTIFY makes
 * it a kernel target's connection, HELLO a CLI's.  A CLI connection is strictly
 * request/reply, so its reader serves each request itself.  A kernel connection has many
 * requests in flight: the reader hands ORIGIN_WRITE, SNAPSHOT_READ and SNAPSHOT_WRITE to
 * the worker pool and answers FINISH, PING and DROP_CACHE acknowledgements itself.  Those
 * must never wait behind the volume lock: a worker may be holding it while waiting for a
 * read lock or a cache drop that only those messages release.
 *
 * Coalescing.  Origin writes serialize on the volume lock anyway, so one worker at a time
 * starts them (origin_busy): it takes every ORIGIN_WRITE queued (up to
 * SERVER_COALESCE_RANGES ranges) and serves them with one volume call: one hold of the volume
 * lock, one batch of copy-outs that the engine's copier threads do at once, one commit.
 * Meanwhile the other workers serve snapshot queries, and new origin writes queue up for
 * the next batch, which another worker starts as soon as this one leaves the volume lock:
 * its copies overlap this batch's commit.  Under a stream of small random writes this turns
 * N serial rounds of copy I/O and flushes into one; with no queue nothing waits for a batch
 * to fill.  A batch that fails is served again job by job, so each reply carries its own
 * query's outcome.
 *
 * Replies to one connection are serialised by its send lock; a whole message is one
 * write, so replies from several workers never interleave.
 *
 * Lifetime.  A connection is referenced by its reader, by each queued or running job and
 * by a cache-drop broadcast in progress; the last reference closes the socket and frees it.
 * When the reader sees the peer go (or a malformed message), it marks the connection dead,
 * releases its read locks (the kernel re-issues reads in flight on its next connection) and
 * gives back the snapshot's open count.  Workers still holding it send into a shut-down
 * socket and get EPIPE, which is harmless.
 *
 * Peers.  The acceptor reads each peer's credentials (SO_PEERCRED) before anything else.
 * A peer that may use neither protocol, or that would exceed a bound (server_limits), gets
 * no thread: the acceptor keeps it on a short list until its first message arrives, answers
 * that in its own protocol (a control reply or an IDENTIFY reply carrying -EACCES/-EBUSY
 * and a reason) and closes it; after SERVER_REFUSE_WAIT_MS it is closed unanswered.
 * Every refusal is logged with the peer's pid and uid (rate-limited: a flood of refused
 * peers costs one line a second).  A connection that is not root's is refused at IDENTIFY,
 * and an IDENTIFY refused for any reason closes the connection, so only an authenticated
 * kernel connection ever reaches the queries that take read locks.
 *
 * The acceptor's other duties, on its poll timeout: answering or expiring refusals, logging
 * read locks held longer than readlock_warn_ms (server.h), and, when accept() failed for
 * lack of descriptors or memory, leaving the listening socket alone for a backoff that
 * doubles up to SERVER_ACCEPT_BACKOFF_MAX_MS instead of spinning on it.
 *
 * Ordering guarantees the kernel relies on (DESIGN.md 5): an ORIGIN_WRITE reply is sent
 * only after volume_origin_write() returned (copies and their records durable) and after
 * every read lock on the written chunks is gone.  A SNAPSHOT_READ takes the read lock on
 * each chunk before asking where it is, and keeps it only when the answer is the origin
 * (readlock.h explains why that order closes the race).  A revert, which writes the origin
 * itself, writes a batch only after its copy-outs, those read locks, and a cache drop on
 * every snapshot device that may cache "read the origin" answers (revert_wait).
 */
#include "daemon/server.h"
#include "snap/engine.h"
#include "snap/volume.h"
#include "daemon/readlock.h"
#include "util/unixsock.h"
#include "proto/wire.h"
#include "proto/ctl.h"
#include "util/log.h"
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static_assert(SERVER_COALESCE_RANGES <= VOLUME_MAX_RANGES, "one volume call serves a batch");

enum conn_kind { CONN_NEW, CONN_KERNEL, CONN_CTL };

struct conn {
	struct server *srv;
	struct conn *next; /* on srv->conns, under srv->lock */
	int fd;
	u64 id;
	int refs; /* under srv->lock */
	enum conn_kind kind;
	struct ucred cred; /* the peer's, when it connected */
	bool root;	   /* cred.uid == 0: may be a kernel connection */
	bool dead;
	u32 readlocks;		/* held (atomic): at most srv->lim.readlocks */
	bool readlocks_refused; /* logged once */
	bool origin;		/* kernel: the origin device, else snapshot @tag */
	bool snap_opened;	/* volume_snap_open(+1) was done */
	u32 tag;
	/*
	 * Kernel, under srv->lock: the connection's wire version, set once its IDENTIFY reply
	 * was sent (0 before), and the state and gen it was last told (IDENTIFY reply or
	 * DROP_CACHE).
	 */
	u32 version;
	u32 state;
	u64 gen;
	u32 next_seq; /* our requests to the kernel (DROP_CACHE) */
	/* Cache drop in progress, under srv->lock. */
	u32 drop_seq;
	bool drop_pending;
	pthread_mutex_t send_lock;
};

struct job {
	struct job *next;
	struct conn *conn;
	struct wire_msg msg;
};

/* A peer being refused: the acceptor answers its first message, then closes it. */
struct refusal {
	int fd;
	int error;
	u64 deadline_ms;
	char text[160];
};

/* At most one log line per interval for a kind of event; the rest are counted. */
struct ratelimit {
	u64 next_ms;
	unsigned suppressed;
};
#define SERVER_LOG_INTERVAL_MS 1000

struct server {
	char *sock;
	int listen_fd;
	int stop_pipe[2];
	struct volume *vol;
	struct readlock_table *readlocks;
	struct server_limits lim;
	unsigned fd_conns; /* connections the descriptor limit allows (server_create) */
	bool group_set;
	gid_t group;
	pthread_mutex_t lock; /* conns, refs, drops, readers */
	pthread_cond_t cond;  /* drop acks, readers exiting */
	struct conn *conns;
	u64 next_conn_id;
	unsigned readers;      /* connection threads */
	unsigned user_readers; /* of which serve peers other than root */
	/* The acceptor's own state (server_run's thread only). */
	struct refusal refusing[SERVER_REFUSING];
	unsigned nrefusing;
	unsigned accept_backoff_ms;
	u64 accept_resume_ms, readlock_scan_ms;
	struct ratelimit refuse_log, accept_log;
	/* Work queue. */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct job *qhead, **qtail;
	bool qstop;
	bool origin_busy;		    /* a worker is serving a batch of ORIGIN_WRITEs */
	u64 origin_queries, origin_batches; /* served, under qlock */
	pthread_t workers[SERVER_WORKERS];
	/*
	 * Held for reading by a worker from a SNAPSHOT_READ's lookups until its reply is
	 * sent; revert_wait takes it for writing (prefers writers: a stream of reads cannot
	 * hold it off).
	 */
	pthread_rwlock_t read_replies;
};

static u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000 + (u64)ts.tv_nsec / 1000000;
}

/*
 * Whether to log an event now: true at most once per SERVER_LOG_INTERVAL_MS; *@suppressed
 * then says how many were not logged since.  Callers serialise per @r.
 */
static bool ratelimit_ok(struct ratelimit *r, unsigned *suppressed)
{
	u64 now = now_ms();

	if (now < r->next_ms) {
		r->suppressed++;
		return false;
	}
	r->next_ms = now + SERVER_LOG_INTERVAL_MS;
	*suppressed = r->suppressed;
	r->suppressed = 0;
	return true;
}

/*----------------------------------------------------------------
 * Connections
 *--------------------------------------------------------------*/

static void conn_get(struct conn *c)
{
	pthread_mutex_lock(&c->srv->lock);
	c->refs++;
	pthread_mutex_unlock(&c->srv->lock);
}

static void conn_put(struct conn *c)
{
	struct server *s = c->srv;
	bool last;

	pthread_mutex_lock(&s->lock);
	last = !--c->refs;
	if (last) {
		struct conn **p = &s->conns;

		while (*p && *p != c)
			p = &(*p)->next;
		if (*p)
			*p = c->next;
	}
	pthread_mutex_unlock(&s->lock);
	if (!last)
		return;
	close(c->fd);
	pthread_mutex_destroy(&c->send_lock);
	free(c);
}

/* Sends one message; a dead peer is not an error worth more than a debug line. */
static int conn_send(struct conn *c, const void *buf, size_t len)
{
	int r;

	pthread_mutex_lock(&c->send_lock);
	r = unixsock_write_full(c->fd, buf, len);
	pthread_mutex_unlock(&c->send_lock);
	if (r)
		log_debug("connection %llu: send failed: %s", (unsigned long long)c->id, errmsg(r));
	return r;
}

static int send_wire(struct conn *c, const struct wire_msg *m)
{
	u8 buf[WIRE_MAX_MSG];
	const char *why = NULL;
	ssize_t n = wire_pack(m, buf, sizeof(buf), &why);

	if (n < 0) {
		log_err("connection %llu: cannot encode %s: %s", (unsigned long long)c->id,
			wire_type_name(m->type), why ? why : "?");
		return (int)n;
	}
	return conn_send(c, buf, (size_t)n);
}

/* Refuses a message and closes the connection (the peer can no longer be trusted). */
static void send_error(struct conn *c, u32 seq, u16 culprit, int error, const char *text)
{
	struct wire_msg m = {.type = DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY, .seq = seq};

	m.error.error = error;
	m.error.culprit = culprit;
	m.error.len = (u16)MIN(strlen(text), DDSNAP_WIRE_MAX_TEXT);
	memcpy(m.error.text, text, m.error.len);
	send_wire(c, &m);
}

/*----------------------------------------------------------------
 * Cache drops (snapshot created, snapshot invalidated, origin changed by a revert)
 *--------------------------------------------------------------*/

/* The oldest wire version whose snapshot devices may cache ORIGIN answers (ddsnap_wire.h). */
#define SERVER_VERSION_ORIGIN_CACHE 3u

/*
 * Under s->lock: is @c a live kernel connection that a drop for @reason goes to?
 * ORIGIN_CHANGED: every snapshot device, whatever its tag, of a version that may cache
 * "read the origin" answers (older ones never do: read locks alone cover their reads from
 * the origin); the others: the origin's (@tag == DDSNAP_TAG_ORIGIN) or snapshot @tag's.
 */
static bool drop_target(const struct conn *c, u32 tag, u32 reason)
{
	if (c->kind != CONN_KERNEL || c->dead)
		return false;
	if (reason == DDSNAP_DROP_ORIGIN_CHANGED)
		return !c->origin && c->version >= SERVER_VERSION_ORIGIN_CACHE;
	return tag == DDSNAP_TAG_ORIGIN ? c->origin : !c->origin && c->tag == tag;
}

/*
 * Sends DROP_CACHE @reason to @c.  Its seq and pending flag are set under the send lock, so
 * that the drops to one connection go out in the order of their seqs even when two
 * broadcasts reach it at once (a revert's and an invalidation's): the one pending flag is
 * cleared by the newest seq's acknowledgement, and that one covers the older drops too (the
 * kernel reads in stream order, and acknowledges a drop once every older cache's I/O
 * drained).  ORIGIN_CHANGED carries the state and gen the connection was last told; the
 * other reasons carry @state and @gen, and the connection remembers them.
 */
static void drop_send(struct conn *c, u32 reason, u32 state, u64 gen)
{
	struct server *s = c->srv;
	struct wire_msg m = {.type = DDSNAP_MSG_DROP_CACHE};
	u8 buf[WIRE_HEAD_SIZE + sizeof(struct ddsnap_drop_wire)];
	const char *why = NULL;
	ssize_t n;
	int r;

	pthread_mutex_lock(&c->send_lock);
	pthread_mutex_lock(&s->lock);
	if (reason != DDSNAP_DROP_ORIGIN_CHANGED) {
		c->state = state;
		c->gen = gen;
	}
	m.seq = c->drop_seq = ++c->next_seq;
	c->drop_pending = true;
	m.drop.reason = reason;
	m.drop.state = c->state;
	m.drop.gen = c->gen;
	pthread_mutex_unlock(&s->lock);
	n = wire_pack(&m, buf, sizeof(buf), &why);
	r = n < 0 ? (int)n : unixsock_write_full(c->fd, buf, (size_t)n);
	pthread_mutex_unlock(&c->send_lock);
	if (n < 0)
		log_err("connection %llu: cannot encode DROP_CACHE: %s", (unsigned long long)c->id,
			why ? why : "?");
	else if (r)
		log_debug("connection %llu: send failed: %s", (unsigned long long)c->id, errmsg(r));
}

/*
 * Sends DROP_CACHE @reason to every connection drop_target() names and waits for every
 * acknowledgement; a connection that does not answer within SERVER_DROP_TIMEOUT_MS is cut
 * off, which drops its cache as surely (the kernel forgets everything on a new IDENTIFY).
 * Returns how many were cut off: I/O they mapped through the old cache may still be in
 * flight.
 */
static unsigned drop_caches(struct server *s, u32 tag, u32 reason, u32 state, u64 gen)
{
	struct conn **targets;
	unsigned n = 0, cut = 0;
	struct timespec deadline;
	bool waiting;

	pthread_mutex_lock(&s->lock);
	for (struct conn *c = s->conns; c; c = c->next)
		n += drop_target(c, tag, reason);
	/* Every one of them, however many: a device left out would keep writing unasked. */
	targets = xmalloc((n ? n : 1) * sizeof(*targets));
	n = 0;
	for (struct conn *c = s->conns; c; c = c->next) {
		if (!drop_target(c, tag, reason))
			continue;
		c->refs++;
		targets[n++] = c;
	}
	pthread_mutex_unlock(&s->lock);

	for (unsigned i = 0; i < n; i++)
		drop_send(targets[i], reason, state, gen);

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SERVER_DROP_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&s->lock);
	do {
		waiting = false;
		for (unsigned i = 0; i < n; i++)
			if (targets[i]->drop_pending && !targets[i]->dead)
				waiting = true;
	} while (waiting && pthread_cond_timedwait(&s->cond, &s->lock, &deadline) != ETIMEDOUT);
	for (unsigned i = 0; i < n; i++)
		if (targets[i]->drop_pending && !targets[i]->dead) {
			log_warn("connection %llu did not acknowledge a cache drop: disconnecting "
				 "it",
				 (unsigned long long)targets[i]->id);
			shutdown(targets[i]->fd, SHUT_RDWR);
			cut++;
		}
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < n; i++)
		conn_put(targets[i]);
	free(targets);
	return cut;
}

int server_invalidate(void *priv, u32 tag)
{
	struct server *s = priv;

	log_warn("snapshot %u is being invalidated: its devices will fail I/O", tag);
	drop_caches(s, tag, DDSNAP_DROP_SNAPSHOT_GONE, DDSNAP_STATE_INVALID, 0);
	return 0;
}

/*----------------------------------------------------------------
 * Kernel requests
 *--------------------------------------------------------------*/

/* Returns 0, or the error IDENTIFY was refused with (the connection then closes). */
static int handle_identify(struct conn *c, const struct wire_msg *m)
{
	struct server *s = c->srv;
	struct wire_msg r = {.type = DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY, .seq = m->seq};
	u32 state = DDSNAP_STATE_NORMAL;
	u64 gen = volume_gen(s->vol);
	int err = 0;

	if (!c->root) {
		err = -EACCES; /* only root (the kernel) may be a device */
	} else if (m->identify.version < DDSNAP_WIRE_VERSION_MIN) {
		err = -EPROTONOSUPPORT;
	} else if (m->identify.dev_sectors != volume_origin_sectors(s->vol) ||
		   (m->identify.chunk_bits &&
		    m->identify.chunk_bits != volume_chunk_bits(s->vol))) {
		err = -EINVAL;
	} else if (volume_tag_hidden(m->identify.tag)) {
		err = -ENODATA; /* the volume's own snapshots have no device (volume.h) */
	} else if (m->identify.tag != DDSNAP_TAG_ORIGIN) {
		err = volume_snap_state(s->vol, m->identify.tag, &state, &gen);
		if (!err && !volume_snap_open(s->vol, m->identify.tag, 1))
			c->snap_opened = true;
	}
	if (err)
		log_warn("connection %llu (pid %d, uid %u): IDENTIFY tag %d, %llu sectors refused: "
			 "%s",
			 (unsigned long long)c->id, (int)c->cred.pid, (unsigned)c->cred.uid,
			 (int)m->identify.tag, (unsigned long long)m->identify.dev_sectors,
			 err == -EACCES ? "only root may connect a device" : errmsg(err));
	else
		log_info("connection %llu: %s device connected", (unsigned long long)c->id,
			 m->identify.tag == DDSNAP_TAG_ORIGIN ? "origin" : "snapshot");
	c->origin = m->identify.tag == DDSNAP_TAG_ORIGIN;
	c->tag = m->identify.tag;
	r.identify_reply.error = err;
	r.identify_reply.version = MIN(m->identify.version, DDSNAP_WIRE_VERSION);
	r.identify_reply.chunk_bits = volume_chunk_bits(s->vol);
	r.identify_reply.state = state;
	r.identify_reply.gen = gen;
	r.identify_reply.dev_sectors = volume_origin_sectors(s->vol);
	send_wire(c, &r);
	if (!err) {
		/* Only now: a cache drop must not reach the kernel before this reply. */
		pthread_mutex_lock(&s->lock);
		c->version = r.identify_reply.version;
		c->state = state;
		c->gen = gen;
		pthread_mutex_unlock(&s->lock);
	}
	return err;
}

/*
 * The reply to ORIGIN_WRITE @m after the volume call returned @err in @gen: sent once every
 * read lock on its chunks is gone (when it succeeded).
 */
static void origin_reply(struct conn *c, const struct wire_msg *m, int err, u64 gen,
			 struct wire_msg *r)
{
	struct server *s = c->srv;

	if (!err)
		for (u32 i = 0; i < m->query.nr; i++)
			readlock_wait(s->readlocks, m->query.r[i].chunk, m->query.r[i].count, 0);
	else
		log_err("origin write of %u ranges from chunk %llu failed: %s", m->query.nr,
			(unsigned long long)m->query.r[0].chunk, errmsg(err));
	r->type = DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY;
	r->seq = m->seq;
	r->origin_reply.nr = m->query.nr;
	r->origin_reply.gen = gen;
	for (u32 i = 0; i < m->query.nr; i++)
		r->origin_reply.r[i] =
			(struct wire_range_status){m->query.r[i].chunk, m->query.r[i].count, err};
	send_wire(c, r);
}

/*
 * The worker holding origin_busy left the volume lock: the next batch may start.  @n
 * queries were served (0 when every one taken came from a dead connection).
 */
static void origin_done(struct server *s, u32 n)
{
	pthread_mutex_lock(&s->qlock);
	s->origin_busy = false;
	if (n) {
		s->origin_queries += n;
		s->origin_batches++;
	}
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
}

/*
 * ORIGIN_WRITE jobs @j[0..n), coalesced (see the essay): one volume call, then each reply.
 * With @busy, called holding origin_busy, which it gives back once the volume lock is left.
 */
static void handle_origin_writes(struct server *s, struct job **j, u32 n, bool busy,
				 struct wire_msg *r)
{
	struct volume_range ranges[SERVER_COALESCE_RANGES] = {{0}};
	u32 nr = 0;
	u64 gen = 0, need;
	int err;

	for (u32 k = 0; k < n; k++)
		for (u32 i = 0; i < j[k]->msg.query.nr; i++)
			ranges[nr++] = (struct volume_range){j[k]->msg.query.r[i].chunk,
							     j[k]->msg.query.r[i].count};
	err = volume_origin_write_start(s->vol, ranges, nr, &gen, &need);
	if (busy)
		origin_done(s, n);
	err = volume_origin_write_finish(s->vol, need, err);
	if (err && n > 1) {
		/* What was done is done; each job again alone gets its own outcome. */
		for (u32 k = 0; k < n; k++)
			handle_origin_writes(s, &j[k], 1, false, r);
		return;
	}
	for (u32 k = 0; k < n; k++) {
		memset(r, 0, offsetof(struct wire_msg, query));
		origin_reply(j[k]->conn, &j[k]->msg, err, gen, r);
	}
}

/*
 * SNAPSHOT_WRITE: every chunk of every range, in order, in one volume call (one commit).
 * RANGE_WHOLE changes nothing: a first write is copied in either way (engine.h).
 */
static void handle_snapshot_write(struct conn *c, const struct wire_msg *m, struct wire_msg *r)
{
	struct volume_snap_chunk w[DDSNAP_WIRE_MAX_CHUNKS];
	u32 n = 0;

	for (u32 i = 0; i < m->query.nr; i++)
		for (u32 k = 0; k < m->query.r[i].count; k++)
			w[n++] = (struct volume_snap_chunk){.chunk = m->query.r[i].chunk + k};
	volume_snap_write(c->srv->vol, c->tag, w, n);
	r->type = m->type | DDSNAP_MSG_REPLY;
	r->map_reply.nr = n;
	for (u32 i = 0; i < n; i++) {
		struct wire_mapping *map = &r->map_reply.m[i];

		*map = (struct wire_mapping){.chunk = w[i].chunk};
		if (w[i].err) {
			map->where = DDSNAP_MAP_ERROR;
			map->error = w[i].err;
		} else {
			map->where = DDSNAP_MAP_PRIVATE;
			map->addr = w[i].addr;
		}
	}
}

/*
 * Takes a read lock on @chunk for @c within its bound (SERVER_MAX_READLOCKS).  Returns the
 * lock, or 0 when @c holds as many as it may: the kernel never does (its lock credits), so
 * the peer misbehaves; that is logged once per connection.
 */
static u64 conn_lock(struct conn *c, u64 chunk)
{
	struct server *s = c->srv;

	if (__atomic_add_fetch(&c->readlocks, 1, __ATOMIC_ACQ_REL) > s->lim.readlocks) {
		__atomic_sub_fetch(&c->readlocks, 1, __ATOMIC_ACQ_REL);
		if (!__atomic_exchange_n(&c->readlocks_refused, true, __ATOMIC_ACQ_REL))
			log_warn("connection %llu (pid %d): holds %u read locks, the most one "
				 "connection may; snapshot reads needing more fail with EBUSY",
				 (unsigned long long)c->id, (int)c->cred.pid, s->lim.readlocks);
		return 0;
	}
	return readlock_acquire(s->readlocks, c->id, chunk);
}

static int conn_unlock(struct conn *c, u64 lock)
{
	int r = readlock_release(c->srv->readlocks, c->id, lock);

	if (!r)
		__atomic_sub_fetch(&c->readlocks, 1, __ATOMIC_ACQ_REL);
	return r;
}

/*
 * SNAPSHOT_READ: each chunk under a read lock taken before the lookup (readlock.h), except
 * in RANGE_AHEAD ranges: nothing reads the origin for those, so they take no lock.  A chunk
 * whose lock is over the connection's bound is answered -EBUSY without a lookup.
 */
static void handle_snapshot_read(struct conn *c, const struct wire_msg *m, struct wire_msg *r)
{
	struct server *s = c->srv;
	u32 n = 0;

	r->type = m->type | DDSNAP_MSG_REPLY;
	for (u32 i = 0; i < m->query.nr; i++) {
		bool ahead = m->query.r[i].flags & DDSNAP_RANGE_AHEAD;

		for (u32 k = 0; k < m->query.r[i].count; k++) {
			struct wire_mapping *map = &r->map_reply.m[n++];
			u64 chunk = m->query.r[i].chunk + k, addr = 0;
			u64 lock = ahead ? 0 : conn_lock(c, chunk);
			bool origin = false;
			int err = ahead || lock
					  ? volume_snap_read(s->vol, c->tag, chunk, &origin, &addr)
					  : -EBUSY;

			if (lock && (err || !origin)) {
				conn_unlock(c, lock);
				lock = 0;
			}
			*map = (struct wire_mapping){.chunk = chunk};
			if (err) {
				map->where = DDSNAP_MAP_ERROR;
				map->error = err;
			} else if (origin) {
				map->where = DDSNAP_MAP_ORIGIN;
				map->lock = lock;
			} else {
				map->where = DDSNAP_MAP_SHARED;
				map->addr = addr;
			}
		}
	}
	r->map_reply.nr = n;
}

/* Under qlock: the first job a worker may take now (origin writes wait for origin_busy). */
static struct job **next_job(struct server *s)
{
	struct job **p = &s->qhead;

	while (*p && (*p)->msg.type == DDSNAP_MSG_ORIGIN_WRITE && s->origin_busy)
		p = &(*p)->next;
	return *p ? p : NULL;
}

/*
 * Under qlock: takes the job at @first; when it is an ORIGIN_WRITE, also every live
 * ORIGIN_WRITE queued after it that fits SERVER_COALESCE_RANGES, and marks origin_busy.
 * Returns how many are in @j.
 */
static u32 take_jobs(struct server *s, struct job **first, struct job **j)
{
	struct job **p = first;
	u32 n = 0, nr = 0;
	bool origin = (*first)->msg.type == DDSNAP_MSG_ORIGIN_WRITE;

	do {
		struct job *x = *p;

		if (n == 0 || (x->msg.type == DDSNAP_MSG_ORIGIN_WRITE && !x->conn->dead &&
			       nr + x->msg.query.nr <= SERVER_COALESCE_RANGES)) {
			*p = x->next;
			if (!*p)
				s->qtail = p; /* x was the last job */
			j[n++] = x;
			nr += x->msg.query.nr;
		} else {
			p = &x->next;
		}
	} while (origin && *p && nr < SERVER_COALESCE_RANGES);
	s->origin_busy |= origin;
	return n;
}

static void *worker_main(void *arg)
{
	struct server *s = arg;
	struct wire_msg *reply = xmalloc(sizeof(*reply));
	struct job *j[SERVER_COALESCE_RANGES];

	for (;;) {
		struct job **first;
		u32 n;

		pthread_mutex_lock(&s->qlock);
		while (!(first = next_job(s)) && !s->qstop)
			pthread_cond_wait(&s->qcond, &s->qlock);
		n = first ? take_jobs(s, first, j) : 0;
		pthread_mutex_unlock(&s->qlock);
		if (!n)
			break;
		if (j[0]->msg.type == DDSNAP_MSG_ORIGIN_WRITE) {
			if (n > 1 || !j[0]->conn->dead)
				handle_origin_writes(s, j, n, true, reply);
			else
				origin_done(s, 0);
		} else if (!j[0]->conn->dead) {
			memset(reply, 0, offsetof(struct wire_msg, query));
			reply->seq = j[0]->msg.seq;
			if (j[0]->msg.type == DDSNAP_MSG_SNAPSHOT_WRITE) {
				handle_snapshot_write(j[0]->conn, &j[0]->msg, reply);
				send_wire(j[0]->conn, reply);
			} else {
				pthread_rwlock_rdlock(&s->read_replies);
				handle_snapshot_read(j[0]->conn, &j[0]->msg, reply);
				send_wire(j[0]->conn, reply);
				pthread_rwlock_unlock(&s->read_replies);
			}
		}
		for (u32 k = 0; k < n; k++) {
			conn_put(j[k]->conn);
			free(j[k]);
		}
	}
	free(reply);
	return NULL;
}

static void enqueue(struct conn *c, const struct wire_msg *m)
{
	struct server *s = c->srv;
	struct job *j = xmalloc(sizeof(*j));

	j->next = NULL;
	j->msg = *m;
	j->conn = c;
	conn_get(c);
	pthread_mutex_lock(&s->qlock);
	*s->qtail = j;
	s->qtail = &j->next;
	pthread_cond_signal(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
}

/* Returns 0 to go on reading, -EPROTO to close. */
static int kernel_message(struct conn *c, const struct wire_msg *m)
{
	struct server *s = c->srv;

	switch (m->type) {
	case DDSNAP_MSG_ORIGIN_WRITE:
		if (!c->origin)
			break;
		enqueue(c, m);
		return 0;
	case DDSNAP_MSG_SNAPSHOT_READ:
	case DDSNAP_MSG_SNAPSHOT_WRITE:
		if (c->origin)
			break;
		enqueue(c, m);
		return 0;
	case DDSNAP_MSG_FINISH:
		for (u32 i = 0; i < m->finish.nr; i++)
			if (conn_unlock(c, m->finish.lock[i]))
				log_warn("connection %llu: FINISH of unknown read lock %llu",
					 (unsigned long long)c->id,
					 (unsigned long long)m->finish.lock[i]);
		return 0;
	case DDSNAP_MSG_PING: {
		struct wire_msg r = *m;

		r.type |= DDSNAP_MSG_REPLY;
		r.ping.gen = volume_gen(s->vol);
		r.ping.state = DDSNAP_STATE_NORMAL;
		r.ping.inflight = 0;
		send_wire(c, &r);
		return 0;
	}
	case DDSNAP_MSG_PING | DDSNAP_MSG_REPLY:
		return 0;
	case DDSNAP_MSG_DROP_CACHE | DDSNAP_MSG_REPLY:
		pthread_mutex_lock(&s->lock);
		if (c->drop_pending && m->seq == c->drop_seq) {
			c->drop_pending = false;
			if (m->drop_reply.error)
				log_warn("connection %llu: cache drop answered %s",
					 (unsigned long long)c->id, errmsg(m->drop_reply.error));
			pthread_cond_broadcast(&s->cond);
		}
		pthread_mutex_unlock(&s->lock);
		return 0;
	case DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY:
		log_warn("connection %llu: the kernel refused message %u (%s): %s",
			 (unsigned long long)c->id, m->seq, wire_type_name(m->error.culprit),
			 m->error.text);
		return 0;
	}
	log_warn("connection %llu: unexpected %s", (unsigned long long)c->id,
		 wire_type_name(m->type));
	send_error(c, m->seq, m->type, -EPROTO, "message not valid on this connection");
	return -EPROTO;
}

/*----------------------------------------------------------------
 * CLI requests
 *--------------------------------------------------------------*/

static u32 count_devices(struct server *s)
{
	u32 n = 0;

	pthread_mutex_lock(&s->lock);
	for (struct conn *c = s->conns; c; c = c->next)
		n += c->kind == CONN_KERNEL && !c->dead;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static const char *tag_reason(int err)
{
	switch (err) {
	case -ENODATA:
		return "no such snapshot";
	case -EEXIST:
		return "a snapshot with that tag exists";
	case -EBUSY:
		return "the snapshot is held or in use";
	case -ENOSPC:
		return "the snapshot store is full";
	case -EIO: /* a host filesystem out of space is one (bdev.c), never -ENOSPC */
		return "I/O error on the store's devices (the server log says which); once it is "
		       "fixed, restart the server if it keeps refusing: replay keeps what was "
		       "acknowledged";
	case -EROFS:
		return "the volume failed and refuses changes; restart the server";
	default:
		return errmsg(err);
	}
}

/* The control protocol's description of a snapshot, from the engine's. */
static void snap_to_ctl(struct ctl_snap *c, const struct engine_snapinfo *i)
{
	*c = (struct ctl_snap){
		.tag = i->tag,
		.state = i->state == ENGINE_SNAP_INVALID ? DDSNAP_STATE_INVALID
							 : DDSNAP_STATE_NORMAL,
		.usecount = i->holds,
		.devices = i->opens,
		.flags = (i->overlay_chunks ? CTL_SNAP_WRITTEN : 0) |
			 (i->received ? CTL_SNAP_RECEIVED : 0),
		.origin_gen = i->origin.gen,
		.priority = i->priority,
		.gen = i->gen,
		.ctime = i->ctime,
		.unique_bytes = i->unique_bytes,
		.written_bytes = i->written_bytes,
	};
	memcpy(c->origin_uuid, i->origin.uuid, sizeof(c->origin_uuid));
}

/* The control protocol's status, from the store's totals (the caller adds the server's). */
static void stats_to_ctl(struct ctl_status *c, const struct volume_stats *v)
{
	*c = (struct ctl_status){
		.gen = v->gen,
		.txg = v->txg,
		.chunk_size = v->chunk_size,
		.origin_bytes = v->origin_bytes,
		.data_total = v->data_total,
		.data_free = v->data_free,
		.meta_total = v->meta_total,
		.meta_free = v->meta_free,
		.exceptions = v->exceptions,
		.snapshots = v->snapshots,
		.reserve_chunks = v->reserve_chunks,
		.log_used = v->log_used,
		.log_size = v->log_size,
	};
}

/*
 * volume_revert's wait, once per batch of @n ranges @r: called after the batch's copy-outs
 * are durable, it returns when nothing can read those origin chunks on behalf of a snapshot
 * any more, so that the revert may write them.  In this order:
 *  1. the read locks on every chunk of the batch are waited for (snapshot reads told
 *     "origin" before the copy-outs, with a lock, finish; their FINISH also means their
 *     replies reached the kernel, so its cache already holds those answers);
 *  2. read_replies is taken for writing and given back: every SNAPSHOT_READ reply whose
 *     lookups came before the copy-outs (read-ahead answers among them, which take no read
 *     lock) is then on its socket;
 *  3. DROP_CACHE ORIGIN_CHANGED goes to every snapshot connection of version 3 on, any tag,
 *     and every acknowledgement is waited for: the kernel sends it once its cache is empty
 *     and no I/O mapped through the old cache is in flight; 1 and 2 make every stale
 *     answer precede the drop on its stream, so none survives it.
 * The kernel closes the same gap from its side: it does not cache an answer to a query sent
 * before a drop (the device's floor, doc/target.md).  Both stay on purpose: each side's
 * argument holds without the other's, and step 2 costs a snapshot read only a read lock
 * that nothing but a revert ever waits on.
 * After the copy-outs, every lookup of these chunks answers with the snapstore, so no new
 * "origin" answer can appear meanwhile.  A connection that does not acknowledge in time is
 * cut off (drop_caches), and the revert then stops before this batch is written (-ETIMEDOUT:
 * run it again): the kernel forgets its cache with the connection, but reads it mapped
 * through that cache before it saw the drop may still be in flight.
 * Version 1 and 2 connections get no drop: they never cache "origin" answers, and step 1
 * covers their reads.  Crash or failure anywhere here: the origin chunks are not written
 * yet; the drop only cost the devices their caches.
 */
static int revert_wait(void *priv, const struct volume_range *r, u32 n)
{
	struct server *s = priv;

	for (u32 i = 0; i < n; i++)
		readlock_wait(s->readlocks, r[i].chunk, r[i].count, 0);
	pthread_rwlock_wrlock(&s->read_replies);
	pthread_rwlock_unlock(&s->read_replies);
	if (drop_caches(s, DDSNAP_TAG_ORIGIN, DDSNAP_DROP_ORIGIN_CHANGED, 0, 0))
		return -ETIMEDOUT;
	return 0;
}

/*
 * REVERT (volume_revert): per batch, copy-outs first (volume_origin_write), then
 * revert_wait (read locks, then the snapshot devices' cache drop), then the origin writes
 * (the order and why it is safe: revert_wait).  The origin's cached "safe in this gen"
 * answers are dropped after it, as after a create, whatever the outcome: the marker or the
 * revert point is a new snapshot the next origin write must copy out for.
 */
static void ctl_revert(struct server *s, u32 tag, struct ctl_result *res)
{
	u64 done = 0;
	int err;

	log_info("revert to snapshot %u started", tag);
	err = volume_revert(s->vol, tag, revert_wait, s, &done);
	drop_caches(s, DDSNAP_TAG_ORIGIN, DDSNAP_DROP_NEW_SNAPSHOT, DDSNAP_STATE_NORMAL,
		    volume_gen(s->vol));
	if (!err) {
		log_info("revert to snapshot %u done: %llu chunks copied back", tag,
			 (unsigned long long)done);
		res->value = done;
	} else if (err == -EBUSY && done) {
		ctl_result_set(res, err,
			       "a revert to snapshot %llu is in progress: finish it first "
			       "(ddsnap revert of %llu again)",
			       (unsigned long long)done, (unsigned long long)done);
	} else if (err == -EBUSY) {
		ctl_result_set(res, err, "another revert is running on this server");
	} else if (err == -EINVAL) {
		ctl_result_set(res, err, "snapshot %u: a tag of the volume's own, not a snapshot's",
			       tag);
	} else if (err == -ETIMEDOUT) {
		log_err("revert to snapshot %u stopped after %llu chunks: a snapshot device did "
			"not "
			"acknowledge its cache drop in %d s",
			tag, (unsigned long long)done, SERVER_DROP_TIMEOUT_MS / 1000);
		ctl_result_set(
			res, err,
			"snapshot %u: a snapshot device did not acknowledge its cache drop in "
			"%d s and was disconnected (run the revert again to finish it)",
			tag, SERVER_DROP_TIMEOUT_MS / 1000);
	} else {
		if (err != -ENODATA)
			log_err("revert to snapshot %u stopped after %llu chunks: %s", tag,
				(unsigned long long)done, errmsg(err));
		ctl_result_set(res, err, "snapshot %u: %s%s", tag, tag_reason(err),
			       err == -ENODATA || (err == -EIO && !done)
				       ? ""
				       : " (run the revert again to finish it)");
	}
}

static void ctl_request(struct conn *c, const struct ctl_msg *m, struct ctl_msg *r,
			struct ctl_snap *snaps, u64 *chunks)
{
	struct engine_snapinfo page[CTL_LIST_PAGE];
	struct volume_stats stats;
	struct server *s = c->srv;
	int err = 0;
	u32 count32;

	r->type = m->type | DDSNAP_MSG_REPLY;
	r->seq = m->seq;
	switch (m->type) {
	case CTL_HELLO:
		if (m->version != CTL_VERSION)
			ctl_result_set(&r->result, -EPROTONOSUPPORT,
				       "server speaks control protocol version %u", CTL_VERSION);
		r->version = CTL_VERSION;
		r->chunk_bits = volume_chunk_bits(s->vol);
		r->origin_sectors = volume_origin_sectors(s->vol);
		r->gen = volume_gen(s->vol);
		volume_uuid(s->vol, r->uuid);
		return;
	case CTL_CREATE:
		if (m->has_origin) {
			struct engine_provenance prov = {.gen = m->origin_gen};

			memcpy(prov.uuid, m->origin_uuid, sizeof(prov.uuid));
			err = volume_create_from(s->vol, m->tag, &prov, &r->result.value);
		} else {
			err = volume_create(s->vol, m->tag, &r->result.value);
		}
		if (!err) {
			log_info("snapshot %u created (gen %llu)", m->tag,
				 (unsigned long long)r->result.value);
			drop_caches(s, DDSNAP_TAG_ORIGIN, DDSNAP_DROP_NEW_SNAPSHOT,
				    DDSNAP_STATE_NORMAL, volume_gen(s->vol));
		}
		break;
	case CTL_DELETE:
		err = volume_delete(s->vol, m->tag);
		if (!err)
			log_info("snapshot %u deleted", m->tag);
		break;
	case CTL_PRIORITY:
		if (m->arg < -128 || m->arg > 127) {
			ctl_result_set(&r->result, -EINVAL, "priority must be -128..127");
			return;
		}
		err = volume_priority(s->vol, m->tag, (s32)m->arg);
		r->result.value = (u64)m->arg;
		break;
	case CTL_USECOUNT:
		if (m->arg < -65535 || m->arg > 65535) {
			ctl_result_set(&r->result, -EINVAL, "usecount change out of range");
			return;
		}
		err = volume_usecount(s->vol, m->tag, (s32)m->arg, &count32);
		r->result.value = count32;
		break;
	case CTL_LIST:
		r->snaps = snaps;
		err = volume_list(s->vol, m->cursor, page, CTL_LIST_PAGE, &r->count, &r->total,
				  &r->next);
		for (u32 i = 0; !err && i < r->count; i++)
			snap_to_ctl(&snaps[i], &page[i]);
		if (r->next == VOLUME_CURSOR_END)
			r->next = CTL_CURSOR_END;
		break;
	case CTL_STATUS:
		err = volume_status(s->vol, &stats);
		stats_to_ctl(&r->status, &stats);
		r->status.devices = count_devices(s);
		r->status.readlocks = (u32)readlock_count(s->readlocks);
		pthread_mutex_lock(&s->qlock);
		r->status.origin_queries = s->origin_queries;
		r->status.origin_batches = s->origin_batches;
		pthread_mutex_unlock(&s->qlock);
		break;
	case CTL_CHANGELIST:
		r->chunks = chunks;
		r->chunk_bits = volume_chunk_bits(s->vol);
		err = volume_changelist(s->vol, m->from, m->to, m->cursor, chunks,
					CTL_CHANGELIST_PAGE, &r->count, &r->next);
		if (r->next == VOLUME_CURSOR_END)
			r->next = CTL_CURSOR_END;
		break;
	case CTL_SYNC:
		err = volume_sync(s->vol, &r->result.value);
		break;
	case CTL_REVERT:
		ctl_revert(s, m->tag, &r->result);
		return;
	}
	if (err) {
		r->count = 0;
		if (m->type == CTL_CREATE || m->type == CTL_DELETE || m->type == CTL_PRIORITY ||
		    m->type == CTL_USECOUNT)
			ctl_result_set(&r->result, err, "snapshot %u: %s", m->tag, tag_reason(err));
		else
			ctl_result_set(&r->result, err, "%s", tag_reason(err));
	}
}

/*----------------------------------------------------------------
 * Readers
 *--------------------------------------------------------------*/

static int read_kernel_message(struct conn *c, u8 *buf, struct wire_msg *m)
{
	const size_t head = sizeof(struct ddsnap_head_wire);
	const char *why = NULL;
	size_t total = 0;
	int r;

	r = wire_frame(buf, head, &total, &why);
	if (r == -EWOULDBLOCK && total > head)
		r = unixsock_read_full(c->fd, buf + head, total - head);
	else if (!r)
		total = head;
	if (!r)
		r = wire_unpack(buf, total, m, &why);
	if (r == -EPROTO) {
		log_warn("connection %llu: malformed message: %s", (unsigned long long)c->id,
			 why ? why : "?");
		send_error(c, 0, 0, -EPROTO, why ? why : "malformed message");
	}
	return r;
}

static void serve_ctl(struct conn *c, u8 *buf)
{
	const size_t head = sizeof(struct ddsnap_head_wire);
	struct ctl_snap *snaps = xmalloc(CTL_LIST_PAGE * sizeof(*snaps));
	u64 *chunks = xmalloc(CTL_CHANGELIST_PAGE * sizeof(*chunks));
	u8 *out = xmalloc(head + CTL_MAX_BODY);
	bool first = true;

	for (;;) {
		struct ctl_msg m = {0}, r = {0};
		const char *why = NULL;
		size_t body;
		ssize_t n;
		int err;

		if (!first && unixsock_read_full(c->fd, buf, head))
			break;
		first = false;
		err = ctl_frame(buf, &body, &why);
		if (!err)
			err = unixsock_read_full(c->fd, buf + head, body);
		if (!err)
			err = ctl_unpack(buf, head + body, &m, &why);
		if (err) {
			if (err == -EPROTO)
				log_warn("CLI connection %llu: malformed request: %s",
					 (unsigned long long)c->id, why);
			break;
		}
		if ((m.type & DDSNAP_MSG_REPLY) || (c->kind == CONN_NEW) != (m.type == CTL_HELLO)) {
			log_warn("CLI connection %llu: %s out of order", (unsigned long long)c->id,
				 ctl_type_name(m.type));
			break;
		}
		c->kind = CONN_CTL;
		ctl_request(c, &m, &r, snaps, chunks);
		n = ctl_pack(&r, out, head + CTL_MAX_BODY);
		if (n < 0 || conn_send(c, out, (size_t)n))
			break;
	}
	free(out);
	free(chunks);
	free(snaps);
}

static void serve_kernel(struct conn *c, u8 *buf)
{
	struct wire_msg *m = xmalloc(sizeof(*m));
	bool first = true;

	for (;;) {
		if (!first && unixsock_read_full(c->fd, buf, sizeof(struct ddsnap_head_wire)))
			break;
		if (read_kernel_message(c, buf, m))
			break;
		if (first != (m->type == DDSNAP_MSG_IDENTIFY)) {
			send_error(c, m->seq, m->type, -EPROTO,
				   first ? "IDENTIFY must come first" : "IDENTIFY sent twice");
			break;
		}
		if (first) {
			first = false;
			c->kind = CONN_KERNEL;
			if (handle_identify(c, m)) {
				c->kind = CONN_NEW; /* never was a device */
				break;		    /* and nothing else is valid on it */
			}
			continue;
		}
		if (kernel_message(c, m))
			break;
	}
	free(m);
}

static void *reader_main(void *arg)
{
	struct conn *c = arg;
	struct server *s = c->srv;
	bool root = c->root; /* c may be gone when the count is given back */
	u8 *buf =
		xmalloc(sizeof(struct ddsnap_head_wire) + MAX(DDSNAP_WIRE_MAX_BODY, CTL_MAX_BODY));
	u16 type;

	if (!unixsock_read_full(c->fd, buf, sizeof(struct ddsnap_head_wire))) {
		type = le16_to_cpu(((struct ddsnap_head_wire *)buf)->type);
		if (ctl_is_ctl_type(type))
			serve_ctl(c, buf);
		else
			serve_kernel(c, buf);
	}
	free(buf);

	pthread_mutex_lock(&s->lock);
	c->dead = true;
	pthread_cond_broadcast(&s->cond); /* a drop waiting for it need not wait longer */
	pthread_mutex_unlock(&s->lock);
	shutdown(c->fd, SHUT_RDWR);
	if (readlock_release_conn(s->readlocks, c->id))
		log_debug("connection %llu: released its read locks", (unsigned long long)c->id);
	__atomic_store_n(&c->readlocks, 0, __ATOMIC_RELEASE);
	if (c->snap_opened)
		volume_snap_open(s->vol, c->tag, -1);
	if (c->kind == CONN_KERNEL)
		log_info("connection %llu: %s device disconnected", (unsigned long long)c->id,
			 c->origin ? "origin" : "snapshot");
	conn_put(c);

	pthread_mutex_lock(&s->lock);
	s->readers--;
	s->user_readers -= !root;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/*----------------------------------------------------------------
 * The server
 *--------------------------------------------------------------*/

/* A condition variable whose timed waits count CLOCK_MONOTONIC (immune to clock steps). */
static void cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

/*
 * Raises the soft descriptor limit to the hard one and returns how many connections fit below
 * it (SERVER_FD_RESERVE kept for everything else), so that connections, not descriptors, run
 * out first.  Called once, by server_create, before any thread of the server exists.
 */
static unsigned conns_that_fit(void)
{
	struct rlimit nofile;

	if (getrlimit(RLIMIT_NOFILE, &nofile))
		return UINT_MAX;
	if (nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile))
			getrlimit(RLIMIT_NOFILE, &nofile);
	}
	if (nofile.rlim_cur == RLIM_INFINITY || nofile.rlim_cur > UINT_MAX)
		return UINT_MAX;
	return nofile.rlim_cur > SERVER_FD_RESERVE + 1
		       ? (unsigned)nofile.rlim_cur - SERVER_FD_RESERVE
		       : 1;
}

int server_create(const char *sock, struct server **out, char *why, size_t whylen)
{
	struct server *s = xzalloc(sizeof(*s));
	int fd = unixsock_listen(sock, SERVER_BACKLOG);

	if (fd < 0) {
		snprintf(why, whylen, "cannot listen on %s: %s", sock,
			 fd == -EADDRINUSE ? "another server is running there"
					   : unixsock_errmsg(fd));
		free(s);
		return fd;
	}
	if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		int r = -errno;

		snprintf(why, whylen, "pipe: %s", strerror(errno));
		close(fd);
		free(s);
		return r;
	}
	s->sock = xstrdup(sock);
	s->listen_fd = fd;
	s->fd_conns = conns_that_fit();
	s->lim = (struct server_limits){SERVER_MAX_CONNS, SERVER_MAX_USER_CONNS,
					SERVER_MAX_READLOCKS, SERVER_READLOCK_WARN_MS};
	s->readlocks = readlock_create();
	pthread_mutex_init(&s->lock, NULL);
	cond_init_monotonic(&s->cond);
	pthread_mutex_init(&s->qlock, NULL);
	pthread_cond_init(&s->qcond, NULL);
	{
		pthread_rwlockattr_t attr;

		pthread_rwlockattr_init(&attr);
		pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&s->read_replies, &attr);
		pthread_rwlockattr_destroy(&attr);
	}
	s->qtail = &s->qhead;
	*out = s;
	return 0;
}

int server_allow_group(struct server *s, gid_t gid, char *why, size_t whylen)
{
	if (s->sock[0] == '/' && (lchown(s->sock, (uid_t)-1, gid) < 0 ||
				  fchmodat(AT_FDCWD, s->sock, 0660, AT_SYMLINK_NOFOLLOW) < 0)) {
		int r = -errno;

		snprintf(why, whylen, "cannot give socket %s to group %u: %s", s->sock,
			 (unsigned)gid, strerror(errno));
		return r;
	}
	s->group_set = true;
	s->group = gid;
	return 0;
}

void server_set_limits(struct server *s, const struct server_limits *l)
{
	s->lim = *l;
}

void server_attach(struct server *s, struct volume *v)
{
	s->vol = v;
}

void server_stop(struct server *s)
{
	char x = 1;

	if (write(s->stop_pipe[1], &x, 1) < 0) {
		/* Already signalled (pipe full): nothing more to do. */
	}
}

/*----------------------------------------------------------------
 * The acceptor: credentials, bounds, refusals
 *--------------------------------------------------------------*/

/* Is @gid the group of @cred or one of the peer's supplementary groups (SO_PEERGROUPS)? */
static bool peer_in_group(int fd, const struct ucred *cred, gid_t gid)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (cred->gid == gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false; /* more than 256 groups, or an old kernel: the primary one only */
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/* Answers a refused peer's first message @head in its own protocol. */
static void refusal_answer(struct refusal *f, const struct ddsnap_head_wire *head)
{
	u16 type = le16_to_cpu(head->type);
	u32 seq = le32_to_cpu(head->seq);
	size_t size = WIRE_HEAD_SIZE + MAX(DDSNAP_WIRE_MAX_BODY, CTL_MAX_BODY);
	u8 *buf = xmalloc(size);
	ssize_t n;

	if (ctl_is_ctl_type(type)) {
		struct ctl_msg r = {.type = (type & DDSNAP_MSG_TYPE_MASK) | DDSNAP_MSG_REPLY,
				    .seq = seq};

		ctl_result_set(&r.result, f->error, "%s", f->text);
		n = ctl_pack(&r, buf, size);
	} else {
		struct wire_msg *r = xzalloc(sizeof(*r));
		const char *why = NULL;

		r->seq = seq;
		if (type == DDSNAP_MSG_IDENTIFY) {
			r->type = DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY;
			r->identify_reply.error = f->error;
		} else {
			r->type = DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY;
			r->error.error = f->error;
			r->error.culprit = type;
			r->error.len = (u16)MIN(strlen(f->text), DDSNAP_WIRE_MAX_TEXT);
			memcpy(r->error.text, f->text, r->error.len);
		}
		n = wire_pack(r, buf, size, &why);
		free(r);
	}
	if (n > 0 && send(f->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* The peer is gone or stuffed its buffer: it is cut off either way. */
	}
	free(buf);
}

/*
 * Refuses peer @fd with @error and a reason: logged (rate-limited), then answered by
 * refusals_poll() once its first message is in, or closed.  Takes @fd.
 */
static void __printf(5, 6)
	refuse(struct server *s, int fd, const struct ucred *cred, int error, const char *fmt, ...)
{
	struct refusal *f;
	unsigned suppressed;
	va_list ap;

	if (s->nrefusing == SERVER_REFUSING) {
		close(fd); /* a flood: the newest is cut off without an answer */
		s->refuse_log.suppressed++;
		return;
	}
	f = &s->refusing[s->nrefusing++];
	f->fd = fd;
	f->error = error;
	f->deadline_ms = now_ms() + SERVER_REFUSE_WAIT_MS;
	va_start(ap, fmt);
	vsnprintf(f->text, sizeof(f->text), fmt, ap);
	va_end(ap);
	if (ratelimit_ok(&s->refuse_log, &suppressed))
		log_warn("refused a connection from pid %d, uid %u, gid %u: %s%s%.0u%s",
			 (int)cred->pid, (unsigned)cred->uid, (unsigned)cred->gid, f->text,
			 suppressed ? " (and " : "", suppressed,
			 suppressed ? " more refused since the last such line)" : "");
}

/*
 * Answers the refused peers whose first message arrived (@p: their poll results, in
 * s->refusing order); closes those answered, gone or out of time.
 */
static void refusals_poll(struct server *s, const struct pollfd *p)
{
	u64 now = now_ms();

	/* Backwards: removing entry i moves the last one, already looked at, into its place. */
	for (unsigned i = s->nrefusing; i-- > 0;) {
		struct refusal *f = &s->refusing[i];
		struct ddsnap_head_wire head;
		bool done = now >= f->deadline_ms;

		if (p[i].revents) {
			ssize_t n = recv(f->fd, &head, sizeof(head), MSG_DONTWAIT | MSG_PEEK);

			if (n == (ssize_t)sizeof(head))
				refusal_answer(f, &head);
			done |= n == (ssize_t)sizeof(head) || n == 0 ||
				(n < 0 && errno != EAGAIN && errno != EINTR);
		}
		if (done) {
			close(f->fd);
			*f = s->refusing[--s->nrefusing];
		}
	}
}

/*
 * accept() failed with @err.  Out of descriptors or memory, the pending connection stays
 * queued and the socket stays readable: pause it (doubling backoff) rather than spin, and
 * log at most a line a second.
 */
static void accept_failed(struct server *s, int err)
{
	unsigned suppressed;

	if (err == EINTR || err == EAGAIN || err == ECONNABORTED)
		return;
	s->accept_backoff_ms = s->accept_backoff_ms
				       ? MIN(2 * s->accept_backoff_ms, SERVER_ACCEPT_BACKOFF_MAX_MS)
				       : SERVER_ACCEPT_BACKOFF_MIN_MS;
	s->accept_resume_ms = now_ms() + s->accept_backoff_ms;
	if (ratelimit_ok(&s->accept_log, &suppressed))
		log_warn("cannot accept connections: %s%s; new connections wait (%u more "
			 "failures since the last such line)",
			 strerror(err),
			 err == EMFILE || err == ENFILE ? " (raise the limit: ulimit -n)" : "",
			 suppressed);
}

static void accept_one(struct server *s)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct conn *c;
	pthread_t t;
	bool root, full;
	int r, fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		accept_failed(s, errno);
		return;
	}
	s->accept_backoff_ms = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("cannot read a peer's credentials: %s; connection refused",
			 strerror(errno));
		close(fd);
		return;
	}
	root = cred.uid == 0;
	if (!root && !(s->group_set && peer_in_group(fd, &cred, s->group))) {
		refuse(s, fd, &cred, -EACCES, "permission denied: uid %u is not root%s",
		       (unsigned)cred.uid, s->group_set ? " or in the server's group" : "");
		return;
	}
	pthread_mutex_lock(&s->lock);
	full = s->readers >= s->lim.conns || (!root && s->user_readers >= s->lim.user_conns);
	if (!full) {
		s->readers++;
		s->user_readers += !root;
	}
	pthread_mutex_unlock(&s->lock);
	if (full) {
		refuse(s, fd, &cred, -EBUSY, "too many connections (%u%s at once); try again later",
		       root ? s->lim.conns : s->lim.user_conns, root ? "" : " of non-root peers");
		return;
	}
	c = xzalloc(sizeof(*c));
	c->srv = s;
	c->fd = fd;
	c->refs = 1;
	c->cred = cred;
	c->root = root;
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_lock(&s->lock);
	c->id = ++s->next_conn_id;
	c->next = s->conns;
	s->conns = c;
	pthread_mutex_unlock(&s->lock);
	r = thread_start(&t, reader_main, c, true);
	if (r) {
		log_err("cannot start a connection thread: %s; connection %llu closed", strerror(r),
			(unsigned long long)c->id);
		pthread_mutex_lock(&s->lock);
		s->readers--;
		s->user_readers -= !root;
		pthread_mutex_unlock(&s->lock);
		conn_put(c);
	}
}

/* Logs the connections holding read locks longer than lim.readlock_warn_ms (once each). */
static void readlocks_scan(struct server *s)
{
	struct readlock_overdue o[16];
	unsigned n = readlock_overdue(s->readlocks, s->lim.readlock_warn_ms, o, ARRAY_SIZE(o));

	for (unsigned i = 0; i < n; i++) {
		int pid = 0;

		pthread_mutex_lock(&s->lock);
		for (struct conn *c = s->conns; c; c = c->next)
			if (c->id == o[i].conn)
				pid = c->cred.pid;
		pthread_mutex_unlock(&s->lock);
		log_warn("connection %llu (pid %d) holds %u more read lock%s over %u ms (oldest: "
			 "chunk %llu, %llu ms): origin writes to those chunks wait until it sends "
			 "FINISH or disconnects",
			 (unsigned long long)o[i].conn, pid, o[i].count, o[i].count == 1 ? "" : "s",
			 s->lim.readlock_warn_ms, (unsigned long long)o[i].chunk,
			 (unsigned long long)o[i].age_ms);
	}
}

/* The acceptor's poll timeout: the nearest refusal deadline, scan or end of backoff. */
static int acceptor_timeout(struct server *s, u64 now)
{
	u64 next = s->readlock_scan_ms;

	for (unsigned i = 0; i < s->nrefusing; i++)
		next = MIN(next, s->refusing[i].deadline_ms);
	if (s->accept_resume_ms > now)
		next = MIN(next, s->accept_resume_ms);
	return next > now ? (int)MIN(next - now, 60000) : 0;
}

int server_run(struct server *s)
{
	unsigned scan_ms = MAX(50u, MIN(5000u, s->lim.readlock_warn_ms / 2));
	unsigned started = 0;

	if (s->fd_conns < s->lim.conns) {
		log_warn("the descriptor limit allows %u connections, not %u (raise ulimit -n)",
			 s->fd_conns, s->lim.conns);
		s->lim.conns = s->fd_conns;
		s->lim.user_conns = MIN(s->lim.user_conns, s->lim.conns);
	}

	for (; started < SERVER_WORKERS; started++) {
		int r = thread_start(&s->workers[started], worker_main, s, false);

		if (r) {
			log_err("cannot start a worker thread: %s", strerror(r));
			break;
		}
	}
	if (started < SERVER_WORKERS) {
		close(s->listen_fd);
		s->listen_fd = -1;
		pthread_mutex_lock(&s->qlock);
		s->qstop = true;
		pthread_cond_broadcast(&s->qcond);
		pthread_mutex_unlock(&s->qlock);
		while (started)
			pthread_join(s->workers[--started], NULL);
		return -EAGAIN;
	}
	log_info("serving on %s", s->sock);
	s->readlock_scan_ms = now_ms() + scan_ms;

	for (;;) {
		struct pollfd p[2 + SERVER_REFUSING];
		u64 now = now_ms();
		bool listening = now >= s->accept_resume_ms;
		int r;

		p[0] = (struct pollfd){.fd = listening ? s->listen_fd : -1, .events = POLLIN};
		p[1] = (struct pollfd){.fd = s->stop_pipe[0], .events = POLLIN};
		for (unsigned i = 0; i < s->nrefusing; i++)
			p[2 + i] = (struct pollfd){.fd = s->refusing[i].fd, .events = POLLIN};
		r = poll(p, 2 + s->nrefusing, acceptor_timeout(s, now));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		refusals_poll(s, p + 2);
		if (now_ms() >= s->readlock_scan_ms) {
			readlocks_scan(s);
			s->readlock_scan_ms = now_ms() + scan_ms;
		}
		if (p[0].revents & POLLIN)
			accept_one(s);
	}

	while (s->nrefusing)
		close(s->refusing[--s->nrefusing].fd);
	/* Stop: no new connections; cut the open ones; wait for readers and workers. */
	log_info("shutting down");
	close(s->listen_fd);
	s->listen_fd = -1;
	if (s->sock[0] == '/')
		unlink(s->sock);
	pthread_mutex_lock(&s->lock);
	for (struct conn *c = s->conns; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	while (s->readers)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&s->qlock);
	s->qstop = true;
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	for (unsigned i = 0; i < SERVER_WORKERS; i++)
		pthread_join(s->workers[i], NULL);
	return 0;
}

void server_destroy(struct server *s)
{
	if (!s)
		return;
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	readlock_destroy(s->readlocks);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->qlock);
	pthread_cond_destroy(&s->qcond);
	pthread_rwlock_destroy(&s->read_replies);
	free(s->sock);
	free(s);
}
