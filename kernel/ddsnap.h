/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ddsnap.h - state and interfaces shared by the files of the ddsnap target (kernel only).
 *
 *	ddsnap-target.c   table line, ctr/dtr, map/end_io, status/message, reply handling
 *	ddsnap-channel.c  the server connection: connect, handshake, receive thread, send
 *	                  worker, request table, reconnect with backoff, I/O timeout
 *	ddsnap-cache.c    origin "safe in this gen" bitmap, snapshot mapping cache, cache epochs
 *	ddsnap-volume.c   what the devices of one volume share: snapshot reads from the origin
 *	                  in flight against origin writes (the read race without the server)
 *	ddsnap-proto.c    pack/unpack/validate of the wire messages (include/ddsnap_wire.h)
 *
 * One struct ddsnap_dev per dm target instance (one origin or one snapshot device).  The
 * table line is `<snapstore_dev> <origin_dev> <server_socket> <tag>`; tag -1 selects the
 * origin, any other u32 below DDSNAP_TAG_ORIGIN names a snapshot.
 *
 * Locks, outermost first:
 *	dc->send_mutex	serializes writers to the socket and replacement of dc->sock
 *	dc->lock	spinlock, irq-safe (end_io may run in interrupt context): the request
 *			table (queued list, sent hash), mode, connection flags, the change of
 *			cache epoch, the FINISH ring, statistics other than hits and misses
 * The map path's cache hits take no lock: epoch counts are atomics (ddsnap-cache.c).
 * The cache's xarray has its own lock, taken inside dc->lock.  The volume's spinlock
 * (ddsnap-volume.c) is innermost: nothing is taken inside it.
 */
#ifndef DDSNAP_KERNEL_H
#define DDSNAP_KERNEL_H

#include <linux/device-mapper.h>
#include <linux/hashtable.h>
#include <linux/kthread.h>
#include <linux/mutex.h>
#include <linux/path.h>
#include <linux/spinlock.h>
#include <linux/un.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "ddsnap-proto.h"

#define DM_MSG_PREFIX "ddsnap"

/* Tunables, each with its reason. */

/* I/O waiting for the server longer than this fails: long enough for a server restart. */
#define DDSNAP_IO_TIMEOUT_SECS 60
/* The handshake must answer quickly: ctr holds the table load lock while it waits. */
#define DDSNAP_HANDSHAKE_TIMEOUT_SECS 5
/* Reconnect backoff: first retry soon (a restarting server), then no more than every 2 s. */
#define DDSNAP_BACKOFF_MIN_MS 50
#define DDSNAP_BACKOFF_MAX_MS 2000
/*
 * Read locks waiting to be released.  It can never overflow: a snapshot read is sent only
 * with a lock credit (dc->lock_credits), which it holds until its lock's release leaves the
 * ring in a FINISH (or, with no lock granted, until the bio ends), and there are this many.
 */
#define DDSNAP_FINISH_RING DDSNAP_WIRE_MAX_READLOCKS /* the server grants no more */
/*
 * Bios are split every this many chunks: a 1 MiB write of 16 KiB chunks stays one bio and
 * one range.  Half the wire's DDSNAP_WIRE_MAX_CHUNKS, so two such origin bios share a query.
 * A snapshot bio stays whole only while it reads one cached run (ddsnap_cache_lookup); map
 * cuts any other to its first chunk (dm_accept_partial_bio), whose mapping the server gives.
 */
#define DDSNAP_IO_CHUNKS 128
/*
 * Mapping read-ahead (version 2 servers): a snapshot read query also asks where up to this
 * many chunks after its last one are, to fill the cache before reads come there: 4 MiB at
 * 16 KiB chunks, as much of the wire's chunks per query as the query's own leave.  The
 * window halves down to DDSNAP_AHEAD_MIN while few of its answers can be cached (errors, or
 * chunks on the origin on a version 2 connection) and doubles back while most can.  A wide
 * window measured faster for sequential reads (the answers for a reader's next bios come
 * before it sends them) and for cold random reads over a region it covers (BENCHMARKS.md).
 */
#define DDSNAP_AHEAD_MAX 256
#define DDSNAP_AHEAD_MIN 4
/* Sent requests are hashed by seq; 2^8 buckets keep chains short at a queue depth of ~1000. */
#define DDSNAP_SENT_HASH_BITS 8

enum ddsnap_mode {
	DDSNAP_MODE_NORMAL,	 /* connected, I/O flows */
	DDSNAP_MODE_SERVER_LOST, /* no connection: I/O needing the server waits (timeout) */
	DDSNAP_MODE_FAILED,	 /* I/O needing the server fails at once */
};

/* Per-bio state (ti->per_io_data_size). */
struct ddsnap_io {
	struct list_head list;	/* on dc->queued while waiting to be sent */
	struct hlist_node node; /* in dc->sent, keyed by seq, while waiting for its reply */
	unsigned long start;	/* jiffies when queued: the I/O timeout runs from here */
	u64 chunk;		/* first chunk of the bio */
	u64 lock;		/* server read lock to release when the read completes */
	u64 ahead;		/* first chunk of its request's RANGE_AHEAD range, if any */
	u64 vseq;		/* snapshot read miss: volume seq before its query */
	u32 count;		/* chunks covered by the bio */
	u32 seq;		/* of the request in flight (shared by its batch) */
	u32 conn;		/* connection the lock was granted on */
	u32 credit_conn;	/* connection whose credits (count) it holds, 0: none */
	u16 type;		/* DDSNAP_MSG_* query while waiting, 0 otherwise */
	u16 slot;		/* origin: its range in the reply; snapshot: its first mapping */
	u16 batch;		/* ranges (origin) or mappings (snapshot) its request asked */
	u16 ahead_slot; /* first read-ahead mapping of its request's reply (= batch: none) */
	u8 epoch;	/* cache epoch this bio was counted in (if counted) */
	bool counted;	/* holds a count in dc->epoch_inflight[epoch] */
	bool waiting;	/* on dc->queued or in dc->sent */
	bool sent;	/* in dc->sent rather than on dc->queued */
	bool whole;	/* a snapshot write covering its whole chunk */
	bool fast;	/* a snapshot read sent to the origin from the cache: counted in the
			 * volume's bucket until end_io */
};

struct ddsnap_stats {
	/* hits and misses are dc->hits and dc->misses: the map path counts them lock-free */
	u64 errors;	 /* I/O failed by the target */
	u64 timeouts;	 /* of which: no reply in time */
	u64 bad_replies; /* replies refused by validation */
	u64 reconnects;
	u64 stale;	/* replies to requests already failed */
	u64 lost_locks; /* read locks that could not be queued for release */
	u64 queries;	/* query messages sent (each a batch of one or more bios) */
	u64 ahead;	/* mappings cached from read-ahead answers */
	u64 held;	/* origin writes held for snapshot reads from the origin */
};

struct ddsnap_dev {
	struct dm_target *ti;
	struct dm_dev *snapstore;
	struct dm_dev *origin;
	struct ddsnap_volume *vol;	   /* shared with the other devices of the volume */
	u32 tag;			   /* DDSNAP_TAG_ORIGIN for the origin device */
	struct sockaddr_un addr;	   /* server socket, abstract if sun_path[0] == 0 */
	int addrlen;			   /* bytes of addr actually used */
	char sock_name[UNIX_PATH_MAX + 1]; /* as written in the table, for status and logs */
	struct path root; /* the table loader's root: a socket path resolves there */

	/* Learned from the server at the handshake; fixed for the life of the target. */
	u32 chunk_bits;	 /* log2 chunk size in bytes */
	u32 chunk_shift; /* log2 chunk size in sectors */
	u64 nr_chunks;	 /* chunks covered by the target */

	/* Connection (ddsnap-channel.c). */
	struct mutex send_mutex;
	struct socket *sock; /* NULL while disconnected; changed under send_mutex and lock */
	struct task_struct *recv_thread;
	struct workqueue_struct *wq;	 /* ordered: send_work */
	struct workqueue_struct *ack_wq; /* DROP_CACHE acks waiting for their epoch to drain */
	struct work_struct send_work;
	struct delayed_work timeout_work;
	struct list_head ctl;	   /* control messages to send (struct ddsnap_ctl) */
	void *recv_buf;		   /* DDSNAP_WIRE_MAX_BODY, receive thread only */
	void *send_buf;		   /* one message, under send_mutex */
	u64 *finish_buf;	   /* DDSNAP_WIRE_MAX_LOCKS lock ids, under send_mutex */
	struct ddsnap_query query; /* the query being built, under lock */
	wait_queue_head_t wait;	   /* recv thread backoff sleeps; epoch drains */

	/* Under lock. */
	spinlock_t lock;
	enum ddsnap_mode mode;
	bool connected;
	bool dead; /* sticky failure: snapshot gone or refused */
	bool stopping;
	u32 conn;    /* connection number, bumped on every connect */
	u32 version; /* the connection's wire version (the server's IDENTIFY answer) */
	u32 next_seq;
	unsigned long lost_since; /* jiffies the connection was lost */
	unsigned int timeout_secs;
	struct list_head queued; /* ddsnap_io waiting to be sent */
	DECLARE_HASHTABLE(sent, DDSNAP_SENT_HASH_BITS);
	unsigned int nr_waiting; /* on queued or in sent */
	u64 finish_ring[DDSNAP_FINISH_RING];
	unsigned int finish_head, finish_count;
	u32 lock_credits;	/* snapshot-read chunks sent, unreleased (<= DDSNAP_FINISH_RING) */
	u32 ahead;		/* read-ahead window in chunks (DDSNAP_AHEAD_MIN..MAX) */
	u64 ahead_lo, ahead_hi; /* the chunks read-ahead asked for since its zone began */
	struct list_head orphans; /* timed-out snapshot reads whose reply may bring a lock */
	struct ddsnap_stats stats;
	u64 gen;   /* the server's gen as last told */
	u32 state; /* DDSNAP_STATE_* as last told */

	/* Cache (ddsnap-cache.c): the epoch changes under lock and is read without it. */
	unsigned long *safe; /* origin: chunk safe to write in this gen */
	struct xarray map;   /* snapshot: chunk -> xa_mk_value(), see ddsnap-cache.c */
	u64 floor;	     /* snapshot: answers to queries mapped before the last drop are
			      * older than this volume seq and not cached (ddsnap-cache.c) */
	u8 epoch;
	atomic_t epoch_inflight[2];
	atomic64_t hits, misses; /* lock-free counters of the map path */
};

static inline bool ddsnap_is_origin(const struct ddsnap_dev *dc)
{
	return dc->tag == DDSNAP_TAG_ORIGIN;
}

static inline const char *ddsnap_name(const struct ddsnap_dev *dc)
{
	return dm_table_device_name(dc->ti->table);
}

/*----------------------------------------------------------------*/

/* ddsnap-proto.c: see ddsnap-proto.h. */

/*----------------------------------------------------------------*/

/* ddsnap-cache.c */

/* Allocate the cache for nr_chunks chunks.  GFP_KERNEL; ctr only.  Returns 0 or -ENOMEM. */
int ddsnap_cache_init(struct ddsnap_dev *dc);
void ddsnap_cache_exit(struct ddsnap_dev *dc);

/*
 * Map path: how many chunks from io->chunk on the cache answers for, counting the bio in the
 * current epoch if any; 0 (a miss) counts nothing.  Origin: io->count if every chunk of
 * [chunk, chunk + count) is known safe, else 0.  Snapshot: the first chunk's mapping
 * (private only if @write) and, for a read, as many following chunks as continue it: the
 * next snapstore chunks (*addr is the first), or chunks on the origin still good, which are
 * then counted in the volume (io->fast).  Lock-free but for the volume's spinlock on the
 * origin case.  O(count).  Never sleeps.
 */
u32 ddsnap_cache_lookup(struct ddsnap_dev *dc, struct ddsnap_io *io, bool write, u64 *addr);
/*
 * Receive thread: remember that snapshot chunk @chunk is on the origin, as answered to a
 * query mapped at volume seq @vseq (io->vseq): only on a version 3 connection, only if no
 * origin write or cache drop came since, and never over a snapstore mapping.  Returns
 * whether it was cached.
 */
bool ddsnap_cache_set_origin(struct ddsnap_dev *dc, u64 chunk, u64 vseq);
/* Count a bio remapped from a server reply in the current epoch.  Lock-free. */
void ddsnap_cache_count(struct ddsnap_dev *dc, struct ddsnap_io *io);
/* end_io: drop the bio's epoch count.  Any context.  Lock-free. */
void ddsnap_cache_uncount(struct ddsnap_dev *dc, struct ddsnap_io *io);
/*
 * Receive thread: remember a server answer.  May sleep (GFP_NOIO); never fails I/O.  A
 * shared mapping never replaces a private one: a chunk a snapshot owns stays its own until
 * the snapshot goes (and its cache with it), so a shared answer given before the snapshot
 * write that made it private is stale.
 */
void ddsnap_cache_set_safe(struct ddsnap_dev *dc, u64 chunk, u32 count);
/* Returns whether the mapping was cached. */
bool ddsnap_cache_set_mapping(struct ddsnap_dev *dc, u64 chunk, u64 addr, bool private);
/* Whether @chunk has a cached mapping, not known stale (snapshot devices).  Lock-free. */
bool ddsnap_cache_mapped(struct ddsnap_dev *dc, u64 chunk);
/*
 * Forget everything and start a new epoch; returns the old epoch, to wait for with
 * ddsnap_cache_drained().  First waits until the epoch before the old one has drained (the
 * two epochs alternate).  Receive thread only.  Sleeps.  Takes dc->lock.  O(cache size).
 */
u8 ddsnap_cache_drop(struct ddsnap_dev *dc);
bool ddsnap_cache_drained(struct ddsnap_dev *dc, u8 epoch);

/*----------------------------------------------------------------*/

/* ddsnap-volume.c */

struct ddsnap_volume;

/* ctr: attach @dc to the volume of its (origin, snapstore) pair, made if new.  0 or -ENOMEM. */
int ddsnap_volume_get(struct ddsnap_dev *dc);
/* dtr, after the channel stopped: detach; the last device frees the volume.  Sleeps. */
void ddsnap_volume_put(struct ddsnap_dev *dc);
/* The volume's seq now (a snapshot read query records it before it is sent).  Lock-free. */
u64 ddsnap_volume_now(struct ddsnap_volume *v);
/* A new seq, above every seq recorded so far (a cache drop's floor). */
u64 ddsnap_volume_next(struct ddsnap_volume *v);
/* Whether an "on the origin" answer for @chunk recorded at @seq is still good.  Lock-free. */
bool ddsnap_volume_good(struct ddsnap_volume *v, u64 chunk, u64 seq);
/*
 * Map path, a snapshot read of [@chunk, @chunk + @n) from "on the origin" entries cached at
 * @seq or later: if they are all still good and no origin write waits on their buckets,
 * count the read there and return true (then ddsnap_volume_read_end() at end_io); else
 * false (ask the server).  Never sleeps.  O(n).
 */
bool ddsnap_volume_read_begin(struct ddsnap_volume *v, u64 chunk, u32 n, u64 seq);
/* end_io of a read counted by ddsnap_volume_read_begin().  Any context. */
void ddsnap_volume_read_end(struct ddsnap_volume *v, u64 chunk, u32 n);
/*
 * Receive thread, an origin write the server let go: make every "on the origin" entry of
 * its chunks' buckets stale, and return true if no read from the cache is in flight there
 * (submit it now); else hold it (on io->list) and return false: the volume submits its bio,
 * remapped and counted already, once those reads ended.
 */
bool ddsnap_volume_write(struct ddsnap_volume *v, struct ddsnap_io *io);
/* A snapshot write made @chunk private: stale its bucket for the volume's other devices. */
void ddsnap_volume_changed(struct ddsnap_volume *v, u64 chunk);

/*----------------------------------------------------------------*/

/* ddsnap-channel.c */

/*
 * ctr: connect and handshake synchronously (bounded by DDSNAP_HANDSHAKE_TIMEOUT_SECS), learn
 * the chunk size, then start the receive thread and the workers.  Returns 0 or a negative
 * errno with ti->error set and the reason logged.  Sleeps.
 */
int ddsnap_channel_start(struct ddsnap_dev *dc);
/* dtr: shut the connection, stop the thread and workers, free everything.  Sleeps. */
void ddsnap_channel_stop(struct ddsnap_dev *dc);
/* Map path: queue a bio needing the server.  Never sleeps; false if the target is failed. */
bool ddsnap_channel_queue(struct ddsnap_dev *dc, struct ddsnap_io *io, u16 type);
/*
 * end_io: queue a read lock for release, and give back the lock credits @io still holds.
 * Any context.
 */
void ddsnap_channel_finish(struct ddsnap_dev *dc, struct ddsnap_io *io);
/* message "reconnect": drop the connection now (the receive thread reconnects). */
void ddsnap_channel_kick(struct ddsnap_dev *dc);
/* Set the mode, logging a change once and raising a dm event.  Takes dc->lock. */
void ddsnap_set_mode(struct ddsnap_dev *dc, enum ddsnap_mode mode, const char *why);
/* The mode as the log and the status line spell it ("normal", "server-lost", "failed"). */
const char *ddsnap_mode_name(enum ddsnap_mode mode);

/*----------------------------------------------------------------*/

/* ddsnap-target.c: called by the receive thread with a validated message. */

/*
 * A reply to the bios on @ios arrived (all of one request, already removed from the request
 * table and linked through io->list).  Every bio is completed or remapped, and the list is
 * left empty.  Returns 0, or -EPROTO if the reply does not answer every one of them (all have
 * then been failed; the caller drops the connection).
 */
int ddsnap_target_reply(struct ddsnap_dev *dc, struct list_head *ios, const struct ddsnap_msg *m,
			const char **why);
/* Fail io's bio with err (negative errno), counting it. */
void ddsnap_target_fail(struct ddsnap_dev *dc, struct ddsnap_io *io, int err);

#endif /* DDSNAP_KERNEL_H */
