// SPDX-License-Identifier: GPL-2.0-only
/*
 * ddsnap-channel.c - the connection of one ddsnap device to its metadata server.
 *
 * What.  One AF_UNIX stream socket per device.  The ctr connects and handshakes (IDENTIFY)
 * synchronously, so a table only loads when a server answers.  Then:
 *   - a receive thread (ddsnap/<tag>) reads and validates every message, hands replies to
 *     ddsnap-target.c, processes DROP_CACHE and PING, and, when the connection breaks,
 *     reconnects with exponential backoff (DDSNAP_BACKOFF_MIN_MS .. MAX_MS);
 *   - an ordered send worker is the only writer of requests: queued bios of one type are
 *     batched into one query (up to the wire's bounds; an origin bio inside a range already
 *     asked shares it), share its sequence id and enter the sent table; control replies and
 *     FINISH batches go first.  The map path only queues and kicks the worker: it never
 *     touches the socket;
 *   - a timeout worker fails, once a second, the I/O that waited longer than the I/O timeout,
 *     and turns SERVER_LOST into FAILED when the server stays away that long.
 *
 * Invariants.
 *   - A waiting bio is on exactly one of dc->queued (not yet sent on the current connection)
 *     or dc->sent (sent, keyed by seq), and nr_waiting counts them.  A reply is matched only
 *     by taking its bio out of dc->sent, so one bio is completed at most once, whichever of
 *     reply, timeout or failure comes first.
 *   - When a connection is lost, every sent bio goes back to dc->queued and is sent again
 *     after the next handshake; read locks and control replies of the old connection are
 *     discarded (lock ids mean nothing to a new connection), and the cache is dropped (the
 *     server may create snapshots before we are back).
 *   - The receive thread never writes to the socket, so a server that blocks writing to us
 *     while we block writing to it cannot deadlock the pair.
 *
 * Locking.  dc->send_mutex serializes socket writes and the installation or removal of
 * dc->sock; only the receive thread installs or removes it, so that thread reads dc->sock
 * without the mutex.  dc->lock (irq-safe) protects the tables, flags and counters.  The send
 * worker holds send_mutex and takes dc->lock inside it.
 *
 * Crash argument.  No persistent state.  A bio the server approved but whose reply we lost is
 * asked again; the server answers a repeated ORIGIN_WRITE without copying twice (the chunk is
 * already unique), so a write is never released before its copy-out is durable.
 */
#include <linux/delay.h>
#include <linux/fs_struct.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/net.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "ddsnap.h"

/* A small pre-packed message: a PING reply or a DROP_CACHE reply. */
struct ddsnap_ctl {
	struct list_head list;
	u32 conn;
	size_t len;
	u8 buf[sizeof(struct ddsnap_head_wire) + sizeof(struct ddsnap_ping_wire)];
};

/*
 * A snapshot read that timed out after it was sent.  The server may still grant it a read
 * lock: the late reply's lock must be released, or that chunk's origin writes wait for ever.
 * The orphan keeps the read's lock credit until then, so the FINISH always has a ring slot.
 */
struct ddsnap_orphan {
	struct list_head list;
	u64 chunk;
	u32 seq, count; /* count: the credits it holds */
	u16 slot, batch;
};

/* A DROP_CACHE acknowledgement waiting for its cache epoch to drain. */
struct ddsnap_drop_ack {
	struct work_struct work;
	struct ddsnap_dev *dc;
	u32 seq, conn;
	u64 gen;
	u8 epoch;
};

static const char *const mode_names[] = {
	[DDSNAP_MODE_NORMAL] = "normal",
	[DDSNAP_MODE_SERVER_LOST] = "server-lost",
	[DDSNAP_MODE_FAILED] = "failed",
};
static_assert(ARRAY_SIZE(mode_names) == DDSNAP_MODE_FAILED + 1, "a name for every mode");

const char *ddsnap_mode_name(enum ddsnap_mode mode)
{
	return mode < ARRAY_SIZE(mode_names) ? mode_names[mode] : "unknown";
}

void ddsnap_set_mode(struct ddsnap_dev *dc, enum ddsnap_mode mode, const char *why)
{
	unsigned long flags;
	enum ddsnap_mode old;

	spin_lock_irqsave(&dc->lock, flags);
	old = dc->mode;
	if (dc->dead && mode != DDSNAP_MODE_FAILED)
		mode = DDSNAP_MODE_FAILED;
	dc->mode = mode;
	spin_unlock_irqrestore(&dc->lock, flags);
	if (old == mode)
		return;
	DMWARN_LIMIT("%s: mode %s -> %s: %s", ddsnap_name(dc), ddsnap_mode_name(old),
		     ddsnap_mode_name(mode), why);
	dm_table_event(dc->ti->table);
}

/*----------------------------------------------------------------*/

/* Socket I/O.  Both loop until the whole buffer moved; 0 or a negative errno. */

static int channel_send_buf(struct socket *sock, const void *buf, size_t len)
{
	struct kvec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr msg = {.msg_flags = MSG_NOSIGNAL};
	int r;

	while (iov.iov_len) {
		r = kernel_sendmsg(sock, &msg, &iov, 1, iov.iov_len);
		if (r <= 0)
			return r ? r : -EPIPE;
		iov.iov_base += r;
		iov.iov_len -= r;
	}
	return 0;
}

static int channel_recv_buf(struct socket *sock, void *buf, size_t len)
{
	struct kvec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr msg = {.msg_flags = 0};
	int r;

	while (iov.iov_len) {
		r = kernel_recvmsg(sock, &msg, &iov, 1, iov.iov_len, MSG_WAITALL);
		if (r <= 0)
			return r ? r : -ECONNRESET;
		iov.iov_base += r;
		iov.iov_len -= r;
	}
	return 0;
}

/*
 * Connect and handshake on a fresh socket.  Returns 0 with *res and the IDENTIFY reply in *m,
 * or a negative errno with the reason in *why.  Sleeps, at most about twice the handshake
 * timeout.  Uses dc->recv_buf: ctr (before the thread exists) or the receive thread only.
 */
static int channel_handshake(struct ddsnap_dev *dc, struct socket **res, struct ddsnap_msg *m,
			     const char **why)
{
	u8 hello[sizeof(struct ddsnap_head_wire) + sizeof(struct ddsnap_identify_wire)];
	struct ddsnap_head_wire h;
	struct socket *sock;
	u16 type;
	u32 seq, len;
	int r;

	r = sock_create_kern(&init_net, AF_UNIX, SOCK_STREAM, 0, &sock);
	if (r) {
		*why = "cannot create a socket";
		return r;
	}
	sock->sk->sk_allocation = GFP_NOIO;
	sock->sk->sk_rcvtimeo = DDSNAP_HANDSHAKE_TIMEOUT_SECS * HZ;
	sock->sk->sk_sndtimeo = DDSNAP_HANDSHAKE_TIMEOUT_SECS * HZ;
	r = kernel_connect(sock, (struct sockaddr *)&dc->addr, dc->addrlen, 0);
	if (r) {
		*why = "cannot connect to server socket";
		goto out_release;
	}
	r = channel_send_buf(sock, hello, ddsnap_proto_identify(hello, 0, dc->tag, dc->ti->len));
	if (r) {
		*why = "cannot send IDENTIFY";
		goto out_release;
	}
	r = channel_recv_buf(sock, &h, sizeof(h));
	if (r) {
		*why = r == -EAGAIN ? "server did not answer IDENTIFY in time"
				    : "no answer to IDENTIFY";
		goto out_release;
	}
	r = ddsnap_proto_head(&h, &type, &seq, &len, why);
	if (r)
		goto out_release;
	if (type != (DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY)) {
		*why = "first message from the server is not an IDENTIFY reply";
		r = -EPROTO;
		goto out_release;
	}
	r = channel_recv_buf(sock, dc->recv_buf, len);
	if (r) {
		*why = "truncated IDENTIFY reply";
		goto out_release;
	}
	r = ddsnap_proto_unpack(type, seq, dc->recv_buf, len, m, why);
	if (r)
		goto out_release;
	if (m->identify.error) {
		*why = "server refused IDENTIFY";
		r = m->identify.error;
		goto out_release;
	}
	if (m->identify.version < DDSNAP_WIRE_VERSION_MIN ||
	    m->identify.version > DDSNAP_WIRE_VERSION) {
		*why = "server answered a protocol version the kernel does not speak";
		r = -EPROTONOSUPPORT;
		goto out_release;
	}
	if (dc->chunk_bits && m->identify.chunk_bits != dc->chunk_bits) {
		*why = "server chunk size changed since the table was loaded";
		r = -EPROTO;
		goto out_release;
	}
	sock->sk->sk_rcvtimeo = MAX_SCHEDULE_TIMEOUT;
	sock->sk->sk_sndtimeo = MAX_SCHEDULE_TIMEOUT;
	*res = sock;
	return 0;

out_release:
	sock_release(sock);
	return r;
}

/* Free control messages; all, or only those of connections other than keep_conn. */
static void channel_free_ctl(struct ddsnap_dev *dc, bool all, u32 keep_conn)
{
	struct ddsnap_ctl *c, *tmp;
	unsigned long flags;
	LIST_HEAD(dead);

	spin_lock_irqsave(&dc->lock, flags);
	list_for_each_entry_safe (c, tmp, &dc->ctl, list)
		if (all || c->conn != keep_conn)
			list_move(&c->list, &dead);
	spin_unlock_irqrestore(&dc->lock, flags);
	list_for_each_entry_safe (c, tmp, &dead, list)
		kfree(c);
}

/* Receive thread: make sock the connection (the caller's reference passes to dc). */
static int channel_install(struct ddsnap_dev *dc, struct socket *sock, const struct ddsnap_msg *m)
{
	unsigned long flags;

	mutex_lock(&dc->send_mutex);
	if (dc->stopping) {
		mutex_unlock(&dc->send_mutex);
		sock_release(sock);
		return -ESHUTDOWN;
	}
	spin_lock_irqsave(&dc->lock, flags);
	dc->sock = sock;
	dc->connected = true;
	dc->conn++;
	dc->version = m->identify.version;
	dc->gen = m->identify.gen;
	dc->state = m->identify.state;
	if (m->identify.state == DDSNAP_STATE_INVALID)
		dc->dead = true;
	spin_unlock_irqrestore(&dc->lock, flags);
	mutex_unlock(&dc->send_mutex);
	return 0;
}

static void channel_free_orphans(struct list_head *orphans)
{
	struct ddsnap_orphan *o, *tmp;

	list_for_each_entry_safe (o, tmp, orphans, list)
		kfree(o);
}

/* Receive thread: the connection broke; requeue what was sent and forget its state. */
static void channel_lost(struct ddsnap_dev *dc, int err, const char *why)
{
	LIST_HEAD(orphans);
	struct ddsnap_io *io;
	struct hlist_node *tmp;
	struct socket *sock;
	unsigned long flags;
	unsigned int bkt;

	mutex_lock(&dc->send_mutex);
	sock = dc->sock;
	spin_lock_irqsave(&dc->lock, flags);
	dc->sock = NULL;
	dc->connected = false;
	dc->lost_since = jiffies;
	hash_for_each_safe(dc->sent, bkt, tmp, io, node)
	{
		hash_del(&io->node);
		io->sent = false;
		list_add(&io->list, &dc->queued);
	}
	dc->finish_count = 0;
	dc->lock_credits = 0; /* the old connection's locks and credits mean nothing now */
	list_splice_init(&dc->orphans, &orphans);
	spin_unlock_irqrestore(&dc->lock, flags);
	mutex_unlock(&dc->send_mutex);
	channel_free_orphans(&orphans);
	if (sock) {
		kernel_sock_shutdown(sock, SHUT_RDWR);
		sock_release(sock);
	}
	channel_free_ctl(dc, true, 0);
	if (dc->stopping)
		return;
	DMERR_LIMIT("%s: connection to server %s lost: %s (error %d); reconnecting",
		    ddsnap_name(dc), dc->sock_name, why, err);
	ddsnap_set_mode(dc, DDSNAP_MODE_SERVER_LOST, "connection to the server lost");
	/* Writes approved from the cache must wait for the server's word again. */
	ddsnap_cache_drop(dc);
}

/*----------------------------------------------------------------*/

/* The send worker. */

/* Under dc->lock: may @io be sent now?  A snapshot read needs a lock credit per chunk. */
static bool channel_may_send(const struct ddsnap_dev *dc, const struct ddsnap_io *io)
{
	return io->type != DDSNAP_MSG_SNAPSHOT_READ ||
	       dc->lock_credits + io->count <= DDSNAP_FINISH_RING;
}

/*
 * Under dc->lock: add a read-ahead range to snapshot read query @q: the chunks among the
 * window (dc->ahead chunks) after its last range that are neither cached nor asked for by
 * read-ahead already, as far as the device and the wire allow; *first is its first chunk.
 *
 * Read-ahead asks for a zone [ahead_lo, ahead_hi) that grows while queries continue inside
 * it: a sequential reader's window starts inside the zone (its answers may still be on their
 * way) and only the part past ahead_hi is asked, so the zone stays a window ahead of the
 * reads.  A query elsewhere starts a new zone.  Adds nothing when the window is cached or
 * asked already, past the device's end, or the query is full.  O(window).
 */
static void channel_ahead(struct ddsnap_dev *dc, struct ddsnap_query *q, u64 *first)
{
	u64 start, limit;
	bool zone;

	if (!q->nr)
		return; /* no bio fitted (the map path bounds bios by the wire: cannot happen) */
	start = q->r[q->nr - 1].chunk + q->r[q->nr - 1].count;
	limit = min_t(u64, start + dc->ahead, dc->nr_chunks);
	while (start < limit && ddsnap_cache_mapped(dc, start))
		start++;
	zone = start >= dc->ahead_lo && start <= dc->ahead_hi;
	if (zone)
		start = max(start, dc->ahead_hi);
	if (start >= limit || ddsnap_proto_batch_ahead(q, start, limit - start) < 0)
		return;
	*first = start;
	if (!zone)
		dc->ahead_lo = start;
	dc->ahead_hi = start + q->r[q->nr - 1].count;
}

/*
 * Build one query of @type from the queued bios of that type, in queue order, as many as fit
 * the wire's bounds and the lock credits: they share a seq, and each remembers its place in
 * the reply.  Under dc->lock and send_mutex.  Returns the message size in dc->send_buf.
 */
static size_t channel_batch(struct ddsnap_dev *dc, u16 type)
{
	struct ddsnap_io *io, *tmp;
	struct ddsnap_query *q = &dc->query;
	LIST_HEAD(batch);
	u64 ahead = 0;
	u32 ahead_slot;
	int slot;

	q->nr = 0;
	q->total = 0;
	list_for_each_entry_safe (io, tmp, &dc->queued, list) {
		if (io->type != type)
			continue;
		if (!channel_may_send(dc, io))
			break;
		slot = ddsnap_proto_batch_add(q, type, io->chunk, io->count,
					      io->whole ? DDSNAP_RANGE_WHOLE : 0);
		if (slot < 0)
			break;
		io->slot = slot;
		if (type == DDSNAP_MSG_SNAPSHOT_READ) {
			dc->lock_credits += io->count;
			io->credit_conn = dc->conn;
		}
		list_move_tail(&io->list, &batch);
	}
	ahead_slot = ddsnap_proto_batch_replies(q, type);
	if (type == DDSNAP_MSG_SNAPSHOT_READ && dc->version >= 2)
		channel_ahead(dc, q, &ahead);
	if (!++dc->next_seq)
		dc->next_seq = 1;
	list_for_each_entry_safe (io, tmp, &batch, list) {
		list_del_init(&io->list);
		io->seq = dc->next_seq;
		io->batch = ddsnap_proto_batch_replies(q, type);
		io->ahead_slot = ahead_slot;
		io->ahead = ahead;
		io->sent = true;
		hash_add(dc->sent, &io->node, io->seq);
	}
	dc->stats.queries++;
	return ddsnap_proto_query(dc->send_buf, type, dc->next_seq, q);
}

/* Take the next thing to send, packed into dc->send_buf; 0 if nothing.  Under send_mutex. */
static size_t channel_next(struct ddsnap_dev *dc)
{
	struct ddsnap_ctl *c = NULL;
	struct ddsnap_io *io;
	size_t n = 0;
	u32 nr = 0;

	spin_lock_irq(&dc->lock);
	if (!dc->connected || !dc->sock) {
		spin_unlock_irq(&dc->lock);
		return 0;
	}
	if (!list_empty(&dc->ctl)) {
		c = list_first_entry(&dc->ctl, struct ddsnap_ctl, list);
		list_del(&c->list);
	} else if (dc->finish_count) {
		nr = min_t(u32, dc->finish_count, DDSNAP_WIRE_MAX_LOCKS);
		for (u32 i = 0; i < nr; i++) {
			dc->finish_buf[i] = dc->finish_ring[dc->finish_head];
			dc->finish_head = (dc->finish_head + 1) % DDSNAP_FINISH_RING;
		}
		dc->finish_count -= nr;
		dc->lock_credits -= nr;
	} else {
		/* The first queued bio that may go; a snapshot read may wait for credits. */
		list_for_each_entry (io, &dc->queued, list) {
			if (channel_may_send(dc, io)) {
				n = channel_batch(dc, io->type);
				break;
			}
		}
	}
	spin_unlock_irq(&dc->lock);
	if (c) {
		memcpy(dc->send_buf, c->buf, c->len);
		n = c->len;
		kfree(c);
	} else if (nr) {
		n = ddsnap_proto_finish(dc->send_buf, dc->finish_buf, nr);
	}
	return n;
}

static void channel_send_work(struct work_struct *work)
{
	struct ddsnap_dev *dc = container_of(work, struct ddsnap_dev, send_work);
	unsigned int noio = memalloc_noio_save();
	size_t n;
	int r;

	mutex_lock(&dc->send_mutex);
	while ((n = channel_next(dc))) {
		r = channel_send_buf(dc->sock, dc->send_buf, n);
		if (r) {
			/* Wake the receive thread: it owns recovery (and requeues what we sent). */
			DMERR_LIMIT("%s: send to server failed: error %d", ddsnap_name(dc), r);
			kernel_sock_shutdown(dc->sock, SHUT_RDWR);
			break;
		}
	}
	mutex_unlock(&dc->send_mutex);
	memalloc_noio_restore(noio);
}

static void channel_kick_send(struct ddsnap_dev *dc)
{
	queue_work(dc->wq, &dc->send_work);
}

static void channel_queue_ctl(struct ddsnap_dev *dc, struct ddsnap_ctl *c)
{
	unsigned long flags;
	bool ok;

	spin_lock_irqsave(&dc->lock, flags);
	ok = dc->connected && c->conn == dc->conn;
	if (ok)
		list_add_tail(&c->list, &dc->ctl);
	spin_unlock_irqrestore(&dc->lock, flags);
	if (ok)
		channel_kick_send(dc);
	else
		kfree(c);
}

bool ddsnap_channel_queue(struct ddsnap_dev *dc, struct ddsnap_io *io, u16 type)
{
	unsigned long flags;
	bool connected;

	spin_lock_irqsave(&dc->lock, flags);
	if (dc->dead || dc->stopping || dc->mode == DDSNAP_MODE_FAILED) {
		spin_unlock_irqrestore(&dc->lock, flags);
		return false;
	}
	io->type = type;
	io->start = jiffies;
	io->waiting = true;
	io->sent = false;
	list_add_tail(&io->list, &dc->queued);
	dc->nr_waiting++;
	connected = dc->connected;
	spin_unlock_irqrestore(&dc->lock, flags);
	if (connected)
		channel_kick_send(dc);
	return true;
}

/*
 * Under dc->lock: queue @lock for FINISH.  One lock credit goes into the ring with it (its
 * FINISH gives it back); returns whether it did (false: the ring was full, the lock is lost).
 */
static bool channel_push_finish(struct ddsnap_dev *dc, u64 lock)
{
	if (WARN_ON_ONCE(dc->finish_count >= DDSNAP_FINISH_RING)) {
		dc->stats.lost_locks++;
		return false;
	}
	dc->finish_ring[(dc->finish_head + dc->finish_count) % DDSNAP_FINISH_RING] = lock;
	dc->finish_count++;
	return true;
}

/* Under dc->lock: @n snapshot-read credits come back. */
static void channel_return_credits(struct ddsnap_dev *dc, u32 n)
{
	WARN_ON_ONCE(n > dc->lock_credits);
	dc->lock_credits -= min(n, dc->lock_credits);
}

void ddsnap_channel_finish(struct ddsnap_dev *dc, struct ddsnap_io *io)
{
	unsigned long flags;
	bool kick = false;
	u32 give_back = io->count;

	spin_lock_irqsave(&dc->lock, flags);
	/* Credits and locks of an older connection were forgotten when it was lost. */
	if (io->lock && dc->connected && io->conn == dc->conn) {
		if (channel_push_finish(dc, io->lock))
			give_back--;
		kick = true;
	}
	if (io->credit_conn && dc->connected && io->credit_conn == dc->conn) {
		channel_return_credits(dc, give_back);
		/* Snapshot reads may be waiting for these credits. */
		kick |= give_back && !list_empty(&dc->queued);
	}
	io->lock = 0;
	io->credit_conn = 0;
	spin_unlock_irqrestore(&dc->lock, flags);
	if (kick)
		channel_kick_send(dc);
}

/*----------------------------------------------------------------*/

/* The receive thread. */

/*
 * Move the bios waiting for reply @seq (one request, maybe a batch) out of the sent table onto
 * @ios; false if there are none (a stale reply: they were failed by the timeout).
 */
static bool channel_take(struct ddsnap_dev *dc, u32 seq, struct list_head *ios)
{
	struct ddsnap_io *io;
	struct hlist_node *tmp;
	unsigned long flags;

	spin_lock_irqsave(&dc->lock, flags);
	hash_for_each_possible_safe(dc->sent, io, tmp, node, seq)
	{
		if (io->seq == seq && io->sent) {
			hash_del(&io->node);
			io->sent = false;
			io->waiting = false;
			dc->nr_waiting--;
			list_add_tail(&io->list, ios);
		}
	}
	if (list_empty(ios))
		dc->stats.stale++;
	spin_unlock_irqrestore(&dc->lock, flags);
	return !list_empty(ios);
}

/*
 * A reply to request @seq arrived (@m: a validated SNAPSHOT_READ reply, or NULL for an ERROR
 * reply): release what its timed-out reads were granted, and their credits.  Receive thread.
 */
static void channel_orphans_reply(struct ddsnap_dev *dc, u32 seq, const struct ddsnap_msg *m)
{
	struct ddsnap_orphan *o, *tmp;
	struct ddsnap_mapping p;
	unsigned long flags;
	bool kick = false;
	LIST_HEAD(done);

	/* Unlocked peek: an orphan of @seq was added before channel_take() took dc->lock. */
	if (list_empty(&dc->orphans))
		return;
	spin_lock_irqsave(&dc->lock, flags);
	list_for_each_entry_safe (o, tmp, &dc->orphans, list) {
		u32 give_back = o->count;

		/* orphans of an older connection were freed when it was lost */
		if (o->seq != seq)
			continue;
		list_move(&o->list, &done);
		kick = true;
		if (m && m->map.nr == o->batch) {
			ddsnap_proto_mapping(m, o->slot, &p);
			if (p.chunk == o->chunk && p.where == DDSNAP_MAP_ORIGIN && p.lock &&
			    channel_push_finish(dc, p.lock))
				give_back--; /* one credit went into the ring with the lock */
		}
		channel_return_credits(dc, give_back);
	}
	spin_unlock_irqrestore(&dc->lock, flags);
	channel_free_orphans(&done);
	if (kick)
		channel_kick_send(dc);
}

/* Fail the bios on @ios with @err. */
static void channel_fail_list(struct ddsnap_dev *dc, struct list_head *ios, int err)
{
	struct ddsnap_io *io, *tmp;

	list_for_each_entry_safe (io, tmp, ios, list) {
		list_del_init(&io->list);
		ddsnap_target_fail(dc, io, err);
	}
}

/* Fail every waiting bio (the snapshot is gone). */
static void channel_fail_all(struct ddsnap_dev *dc, int err)
{
	struct ddsnap_io *io;
	struct hlist_node *htmp;
	unsigned long flags;
	unsigned int bkt;
	LIST_HEAD(failed);

	spin_lock_irqsave(&dc->lock, flags);
	list_splice_init(&dc->queued, &failed);
	hash_for_each_safe(dc->sent, bkt, htmp, io, node)
	{
		hash_del(&io->node);
		list_add_tail(&io->list, &failed);
	}
	list_for_each_entry (io, &failed, list) {
		io->waiting = false;
		io->sent = false;
		dc->nr_waiting--;
	}
	spin_unlock_irqrestore(&dc->lock, flags);
	channel_fail_list(dc, &failed, err);
}

static void channel_ack_work(struct work_struct *work)
{
	struct ddsnap_drop_ack *ack = container_of(work, struct ddsnap_drop_ack, work);
	struct ddsnap_dev *dc = ack->dc;
	struct ddsnap_ctl *c;

	wait_event(dc->wait, ddsnap_cache_drained(dc, ack->epoch));
	c = kzalloc(sizeof(*c), GFP_NOIO);
	if (c) {
		c->conn = ack->conn;
		c->len = ddsnap_proto_drop_reply(c->buf, ack->seq, 0, ack->gen);
		channel_queue_ctl(dc, c);
	}
	kfree(ack);
}

static int channel_drop(struct ddsnap_dev *dc, const struct ddsnap_msg *m, const char **why)
{
	struct ddsnap_drop_ack *ack;
	unsigned long flags;

	if (m->drop.reason == DDSNAP_DROP_ORIGIN_CHANGED && ddsnap_is_origin(dc)) {
		*why = "ORIGIN_CHANGED sent to the origin";
		return -EPROTO;
	}
	if (m->drop.reason == DDSNAP_DROP_SNAPSHOT_GONE) {
		if (ddsnap_is_origin(dc)) {
			*why = "SNAPSHOT_GONE sent to the origin";
			return -EPROTO;
		}
		spin_lock_irqsave(&dc->lock, flags);
		dc->dead = true;
		spin_unlock_irqrestore(&dc->lock, flags);
		ddsnap_set_mode(dc, DDSNAP_MODE_FAILED,
				"snapshot deleted or invalidated by the server");
		channel_fail_all(dc, -EIO);
	}
	spin_lock_irqsave(&dc->lock, flags);
	dc->gen = m->drop.gen;
	dc->state = m->drop.state;
	spin_unlock_irqrestore(&dc->lock, flags);

	ack = kzalloc(sizeof(*ack), GFP_NOIO);
	if (!ack) {
		*why = "no memory for a DROP_CACHE acknowledgement";
		return -ENOMEM;
	}
	ack->dc = dc;
	ack->seq = m->seq;
	ack->gen = m->drop.gen;
	ack->conn = dc->conn;
	ack->epoch = ddsnap_cache_drop(dc);
	INIT_WORK(&ack->work, channel_ack_work);
	queue_work(dc->ack_wq, &ack->work);
	return 0;
}

static int channel_ping(struct ddsnap_dev *dc, const struct ddsnap_msg *m, const char **why)
{
	struct ddsnap_ctl *c = kzalloc(sizeof(*c), GFP_NOIO);
	unsigned long flags;

	if (!c) {
		*why = "no memory for a PING reply";
		return -ENOMEM;
	}
	spin_lock_irqsave(&dc->lock, flags);
	c->conn = dc->conn;
	c->len = ddsnap_proto_ping_reply(c->buf, m->seq, m->ping.nonce, dc->gen, dc->mode,
					 dc->nr_waiting);
	spin_unlock_irqrestore(&dc->lock, flags);
	channel_queue_ctl(dc, c);
	return 0;
}

/* Read, validate and act on one message.  0, or a negative errno: drop the connection. */
static int channel_receive_one(struct ddsnap_dev *dc, const char **why)
{
	struct ddsnap_head_wire h;
	struct ddsnap_msg m;
	LIST_HEAD(ios);
	bool taken;
	u16 type;
	u32 seq, len;
	int r;

	r = channel_recv_buf(dc->sock, &h, sizeof(h));
	if (r) {
		*why = "receive failed";
		return r;
	}
	r = ddsnap_proto_head(&h, &type, &seq, &len, why);
	if (r)
		return r;
	r = channel_recv_buf(dc->sock, dc->recv_buf, len);
	if (r) {
		*why = "truncated message";
		return r;
	}
	r = ddsnap_proto_unpack(type, seq, dc->recv_buf, len, &m, why);
	if (r) {
		/* A malformed reply fails the I/O it names, if any. */
		if ((type & DDSNAP_MSG_REPLY) && channel_take(dc, seq, &ios)) {
			DMERR_LIMIT("%s: bad reply to request %u: %s", ddsnap_name(dc), seq, *why);
			channel_fail_list(dc, &ios, -EIO);
		}
		spin_lock_irq(&dc->lock);
		dc->stats.bad_replies++;
		spin_unlock_irq(&dc->lock);
		return r;
	}

	switch (type) {
	case DDSNAP_MSG_DROP_CACHE:
		return channel_drop(dc, &m, why);
	case DDSNAP_MSG_PING:
		return channel_ping(dc, &m, why);
	case DDSNAP_MSG_PING | DDSNAP_MSG_REPLY:
		return 0;
	case DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY:
		*why = "IDENTIFY reply outside the handshake";
		return -EPROTO;
	case DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY:
		DMERR_LIMIT("%s: server refused request %u (type %#x): error %d: %.*s",
			    ddsnap_name(dc), seq, m.error.culprit, m.error.error, (int)m.error.len,
			    m.error.text);
		if (channel_take(dc, seq, &ios))
			channel_fail_list(dc, &ios, m.error.error);
		channel_orphans_reply(dc, seq, NULL);
		return 0;
	default:
		taken = channel_take(dc, seq, &ios);
		if (type == (DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY))
			channel_orphans_reply(dc, seq, &m);
		if (!taken)
			return 0; /* already failed by the timeout */
		r = ddsnap_target_reply(dc, &ios, &m, why);
		if (r) {
			spin_lock_irq(&dc->lock);
			dc->stats.bad_replies++;
			spin_unlock_irq(&dc->lock);
		}
		return r;
	}
}

/*
 * A socket path is resolved in the caller's root.  The ctr ran in the table loader's root,
 * but this thread starts with kthreadd's (the initial one), which differs when the loader is
 * chrooted: give the thread a private fs_struct rooted where the loader was, so reconnects
 * find the same socket.  Abstract ('@') sockets do not depend on it.
 */
static void channel_adopt_root(struct ddsnap_dev *dc)
{
	struct fs_struct *fs;
	struct path old_root, old_pwd;

	if (!dc->root.dentry || unshare_fs_struct()) {
		DMWARN("%s: reconnects resolve %s in the initial root", ddsnap_name(dc),
		       dc->sock_name);
		return;
	}
	fs = current->fs;
	path_get(&dc->root);
	path_get(&dc->root);
	spin_lock(&fs->lock);
	write_seqcount_begin(&fs->seq);
	old_root = fs->root;
	old_pwd = fs->pwd;
	fs->root = dc->root;
	fs->pwd = dc->root;
	write_seqcount_end(&fs->seq);
	spin_unlock(&fs->lock);
	path_put(&old_root);
	path_put(&old_pwd);
}

static int channel_thread(void *arg)
{
	struct ddsnap_dev *dc = arg;
	unsigned int backoff = DDSNAP_BACKOFF_MIN_MS;
	struct ddsnap_msg m;
	struct socket *sock;
	const char *why;
	int r;

	channel_adopt_root(dc);
	while (!kthread_should_stop()) {
		if (dc->stopping) {
			wait_event_interruptible(dc->wait, kthread_should_stop());
			continue;
		}
		if (!dc->sock) {
			r = channel_handshake(dc, &sock, &m, &why);
			if (!r)
				r = channel_install(dc, sock, &m);
			if (r) {
				DMERR_LIMIT("%s: reconnect to %s failed: %s (error %d)",
					    ddsnap_name(dc), dc->sock_name, why, r);
				wait_event_interruptible_timeout(dc->wait, kthread_should_stop(),
								 msecs_to_jiffies(backoff));
				backoff = min(backoff * 2, DDSNAP_BACKOFF_MAX_MS);
				continue;
			}
			spin_lock_irq(&dc->lock);
			dc->stats.reconnects++;
			spin_unlock_irq(&dc->lock);
			DMINFO("%s: reconnected to server %s", ddsnap_name(dc), dc->sock_name);
			ddsnap_cache_drop(dc);
			ddsnap_set_mode(dc, DDSNAP_MODE_NORMAL, "reconnected to the server");
			channel_kick_send(dc);
		}
		r = channel_receive_one(dc, &why);
		if (!r) {
			/* Only a server that says something valid earns a quick retry. */
			backoff = DDSNAP_BACKOFF_MIN_MS;
			continue;
		}
		channel_lost(dc, r, why);
		wait_event_interruptible_timeout(dc->wait, kthread_should_stop(),
						 msecs_to_jiffies(backoff));
		backoff = min(backoff * 2, DDSNAP_BACKOFF_MAX_MS);
	}
	return 0;
}

/*----------------------------------------------------------------*/

/* The I/O timeout. */

/*
 * Under dc->lock: a sent snapshot read timed out; keep its credit in an orphan until its
 * reply (channel_orphans_reply()) or the connection's end.  Without memory the credit stays
 * with the bio (end_io returns it) and a lock in a late reply is lost.
 */
static void channel_orphan(struct ddsnap_dev *dc, struct ddsnap_io *io)
{
	struct ddsnap_orphan *o;

	if (io->type != DDSNAP_MSG_SNAPSHOT_READ || !dc->connected || io->credit_conn != dc->conn)
		return;
	o = kmalloc(sizeof(*o), GFP_ATOMIC);
	if (!o)
		return;
	*o = (struct ddsnap_orphan){.chunk = io->chunk,
				    .seq = io->seq,
				    .count = io->count,
				    .slot = io->slot,
				    .batch = io->batch};
	list_add_tail(&o->list, &dc->orphans);
	io->credit_conn = 0;
}

static void channel_timeout_work(struct work_struct *work)
{
	struct ddsnap_dev *dc =
		container_of(to_delayed_work(work), struct ddsnap_dev, timeout_work);
	struct ddsnap_io *io, *tmp;
	struct hlist_node *htmp;
	unsigned long deadline;
	unsigned int bkt, n = 0;
	bool lost;
	LIST_HEAD(expired);

	spin_lock_irq(&dc->lock);
	deadline = dc->timeout_secs * HZ;
	list_for_each_entry_safe (io, tmp, &dc->queued, list) {
		if (time_after(jiffies, io->start + deadline)) {
			list_move_tail(&io->list, &expired);
			n++;
		}
	}
	hash_for_each_safe(dc->sent, bkt, htmp, io, node)
	{
		if (time_after(jiffies, io->start + deadline)) {
			hash_del(&io->node);
			io->sent = false;
			list_add_tail(&io->list, &expired);
			n++;
			channel_orphan(dc, io);
		}
	}
	list_for_each_entry (io, &expired, list)
		io->waiting = false;
	dc->nr_waiting -= n;
	dc->stats.timeouts += n;
	lost = !dc->connected && dc->mode == DDSNAP_MODE_SERVER_LOST &&
	       time_after(jiffies, dc->lost_since + deadline);
	spin_unlock_irq(&dc->lock);

	if (n)
		DMERR("%s: %u I/O(s) failed: no reply from server %s within %u s (%s)",
		      ddsnap_name(dc), n, dc->sock_name, dc->timeout_secs,
		      dc->connected ? "connected" : "disconnected");
	channel_fail_list(dc, &expired, -EIO);
	if (lost)
		ddsnap_set_mode(dc, DDSNAP_MODE_FAILED,
				"server unreachable for longer than the I/O timeout");
	if (!dc->stopping)
		queue_delayed_work(system_wq, &dc->timeout_work, HZ);
}

/*----------------------------------------------------------------*/

void ddsnap_channel_kick(struct ddsnap_dev *dc)
{
	mutex_lock(&dc->send_mutex);
	if (dc->sock)
		kernel_sock_shutdown(dc->sock, SHUT_RDWR);
	mutex_unlock(&dc->send_mutex);
}

int ddsnap_channel_start(struct ddsnap_dev *dc)
{
	struct dm_target *ti = dc->ti;
	struct ddsnap_msg m;
	struct socket *sock;
	const char *why;
	int r;

	mutex_init(&dc->send_mutex);
	spin_lock_init(&dc->lock);
	init_waitqueue_head(&dc->wait);
	INIT_LIST_HEAD(&dc->queued);
	INIT_LIST_HEAD(&dc->ctl);
	INIT_LIST_HEAD(&dc->orphans);
	hash_init(dc->sent);
	INIT_WORK(&dc->send_work, channel_send_work);
	INIT_DELAYED_WORK(&dc->timeout_work, channel_timeout_work);
	dc->timeout_secs = DDSNAP_IO_TIMEOUT_SECS;
	dc->ahead = DDSNAP_AHEAD_MAX;
	dc->mode = DDSNAP_MODE_NORMAL;
	get_fs_root(current->fs, &dc->root);

	r = -ENOMEM;
	ti->error = "Cannot allocate ddsnap buffers";
	dc->recv_buf = kmalloc(DDSNAP_WIRE_MAX_BODY, GFP_KERNEL);
	if (!dc->recv_buf)
		goto out;
	dc->send_buf = kmalloc(DDSNAP_PROTO_MAX_SEND, GFP_KERNEL);
	if (!dc->send_buf)
		goto out_free_recv;
	dc->finish_buf = kmalloc_array(DDSNAP_WIRE_MAX_LOCKS, sizeof(u64), GFP_KERNEL);
	if (!dc->finish_buf)
		goto out_free_send;

	memset(&m, 0, sizeof(m));
	r = channel_handshake(dc, &sock, &m, &why);
	if (r) {
		DMERR("%s: server socket '%s': %s (error %d)", ddsnap_name(dc), dc->sock_name, why,
		      r);
		ti->error = m.identify.error ? "Server refused the device"
					     : "Cannot connect to server socket";
		goto out_free_finish;
	}
	dc->chunk_bits = m.identify.chunk_bits;
	dc->chunk_shift = dc->chunk_bits - SECTOR_SHIFT;
	dc->nr_chunks = (ti->len + (1ull << dc->chunk_shift) - 1) >> dc->chunk_shift;
	r = ddsnap_cache_init(dc);
	if (r) {
		ti->error = "Cannot allocate the chunk cache";
		goto out_release_sock;
	}

	r = -ENOMEM;
	ti->error = "Cannot allocate workqueues";
	dc->wq = alloc_ordered_workqueue("ddsnap-send", WQ_MEM_RECLAIM);
	if (!dc->wq)
		goto out_cache_exit;
	dc->ack_wq = alloc_workqueue("ddsnap-ack", WQ_MEM_RECLAIM, 0);
	if (!dc->ack_wq)
		goto out_destroy_wq;

	r = channel_install(dc, sock, &m); /* takes the socket, even on failure */
	sock = NULL;
	if (r) {
		ti->error = "Target stopping";
		goto out_destroy_ack_wq;
	}
	if (dc->dead)
		ddsnap_set_mode(dc, DDSNAP_MODE_FAILED, "server says the snapshot is invalid");
	if (ddsnap_is_origin(dc))
		dc->recv_thread = kthread_run(channel_thread, dc, "ddsnap/origin");
	else
		dc->recv_thread = kthread_run(channel_thread, dc, "ddsnap/%u", dc->tag);
	if (IS_ERR(dc->recv_thread)) {
		r = PTR_ERR(dc->recv_thread);
		ti->error = "Cannot start the receive thread";
		sock_release(dc->sock);
		dc->sock = NULL;
		goto out_destroy_ack_wq;
	}
	queue_delayed_work(system_wq, &dc->timeout_work, HZ);
	ti->error = NULL;
	return 0;

out_destroy_ack_wq:
	destroy_workqueue(dc->ack_wq);
out_destroy_wq:
	destroy_workqueue(dc->wq);
out_cache_exit:
	ddsnap_cache_exit(dc);
out_release_sock:
	if (sock)
		sock_release(sock);
out_free_finish:
	kfree(dc->finish_buf);
out_free_send:
	kfree(dc->send_buf);
out_free_recv:
	kfree(dc->recv_buf);
out:
	path_put(&dc->root);
	return r;
}

void ddsnap_channel_stop(struct ddsnap_dev *dc)
{
	unsigned long flags;

	mutex_lock(&dc->send_mutex);
	spin_lock_irqsave(&dc->lock, flags);
	dc->stopping = true;
	spin_unlock_irqrestore(&dc->lock, flags);
	if (dc->sock)
		kernel_sock_shutdown(dc->sock, SHUT_RDWR);
	mutex_unlock(&dc->send_mutex);

	cancel_delayed_work_sync(&dc->timeout_work);
	kthread_stop(dc->recv_thread);
	flush_workqueue(dc->ack_wq);
	destroy_workqueue(dc->ack_wq);
	destroy_workqueue(dc->wq);
	/* dm drained every bio before dtr: nothing is queued or sent any more. */
	WARN_ON_ONCE(dc->nr_waiting);
	if (dc->sock)
		sock_release(dc->sock);
	dc->sock = NULL;
	channel_free_ctl(dc, true, 0);
	channel_free_orphans(&dc->orphans);
	ddsnap_cache_exit(dc);
	kfree(dc->finish_buf);
	kfree(dc->send_buf);
	kfree(dc->recv_buf);
	path_put(&dc->root);
}
