// SPDX-License-Identifier: GPL-2.0-only
/*
 * ddsnap-target.c - the ddsnap device-mapper target: table parsing, ctr/dtr, map/end_io,
 * status/message, and what to do with a bio once the server answered.
 *
 * What.  A ddsnap device is either the origin of a snapshotted volume (tag -1) or one of its
 * snapshots (tag >= 0).  The data stays on <origin_dev>; copied-out chunks live on
 * <snapstore_dev>; every decision about which chunk lives where belongs to the userspace
 * metadata server ddsnapd, reached over the AF_UNIX stream socket <server_socket>.
 *
 *	origin read            -> origin, never the server
 *	origin write/discard   -> safe in this gen (cache)? origin : ORIGIN_WRITE, hold the bio
 *	snapshot read          -> cached snapstore chunk? there : cached "on the origin" and
 *	                          still good (ddsnap-volume.c)? the origin : SNAPSHOT_READ,
 *	                          then the snapstore, or the origin under a read lock (FINISH
 *	                          at end_io)
 *	snapshot write         -> cached private chunk? there : SNAPSHOT_WRITE
 *
 * Invariants.  A constructed target holds a reference on both devices, a validated server
 * address and a live connection or a receive thread working to restore one.  The ctr refuses
 * any table line it cannot fully validate, with ti->error set and a kernel log line naming the
 * culprit; a failed ctr leaves nothing allocated or referenced.  An origin write that needs
 * the server reaches the origin only after the server's reply (the copy-out is durable by
 * then).  Bios are split every DDSNAP_IO_CHUNKS chunks (max_io_len), so a large origin write
 * stays one bio and one range of one query (io_hints bounds origin discards the same way the
 * wire does); a snapshot bio that is not one cached run is cut to its first chunk in map, so
 * a snapshot bio that asks the server is one chunk (its mapping is per chunk).  Each bio is completed exactly once:
 * by dm (remapped), by the reply handler, by the timeout, or by a failure path, whichever
 * takes it out of the request table first (ddsnap-channel.c).
 *
 * Locking.  ctr and dtr are serialized by dm core.  map and end_io run concurrently in any
 * context and only take dc->lock (irq-safe) through the cache and channel helpers, and the
 * volume's spinlock (irq-safe, ddsnap-volume.c) for snapshot reads from the origin; map never
 * sleeps and never touches the socket.  Reply handling runs in the receive thread.
 *
 * Crash argument.  This file keeps no state of its own across a crash: the table line is
 * re-read on the next load and the server owns all metadata.  A write held for the server, or
 * held by the volume for snapshot reads in flight, and lost in a crash never reached the
 * origin, so the snapshot it would have overwritten is intact.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/bio.h>
#include <linux/blkdev.h>

#include "ddsnap.h"

/*----------------------------------------------------------------*/

/* Table argument parsing.  Each parser sets ti->error and logs the offending value. */

static int ddsnap_parse_tag(struct dm_target *ti, const char *arg, u32 *tag)
{
	s64 v;
	int r;

	r = kstrtos64(arg, 10, &v);
	if (r == -ERANGE || (!r && (v < -1 || v > DDSNAP_TAG_MAX))) {
		DMERR("tag '%s' out of range: -1 (origin) or 0..%u (snapshot)", arg,
		      DDSNAP_TAG_MAX);
		ti->error = "Snapshot tag out of range";
		return -ERANGE;
	}
	if (r) {
		DMERR("tag '%s' is not a number", arg);
		ti->error = "Snapshot tag is not a number";
		return -EINVAL;
	}
	*tag = v == -1 ? DDSNAP_TAG_ORIGIN : (u32)v;
	return 0;
}

/*
 * A server socket is an absolute path, or '@name' for the abstract namespace (the '@'
 * becomes the leading NUL of sun_path).  Either must fit sun_path.
 */
static int ddsnap_parse_socket(struct dm_target *ti, struct ddsnap_dev *dc, const char *arg)
{
	size_t len = strlen(arg);

	if (!len) {
		DMERR("server socket path is empty");
		ti->error = "Server socket path is empty";
		return -EINVAL;
	}
	if (arg[0] != '/' && arg[0] != '@') {
		DMERR("server socket '%s' is neither an absolute path nor '@abstract'", arg);
		ti->error = "Server socket path must be absolute or @abstract";
		return -EINVAL;
	}
	if (arg[0] == '@' && len == 1) {
		DMERR("server socket '@' names no abstract socket");
		ti->error = "Server socket path is empty";
		return -EINVAL;
	}
	/* A path needs its terminating NUL inside sun_path; an abstract name does not. */
	if (arg[0] == '/' ? len >= UNIX_PATH_MAX : len > UNIX_PATH_MAX) {
		DMERR("server socket path is %zu bytes, longer than sun_path (%d)", len,
		      UNIX_PATH_MAX);
		ti->error = "Server socket path too long";
		return -ENAMETOOLONG;
	}
	memset(&dc->addr, 0, sizeof(dc->addr));
	dc->addr.sun_family = AF_UNIX;
	memcpy(dc->addr.sun_path, arg, len);
	if (arg[0] == '@') {
		dc->addr.sun_path[0] = 0;
		dc->addrlen = offsetof(struct sockaddr_un, sun_path) + len;
	} else {
		dc->addrlen = sizeof(dc->addr);
	}
	strscpy(dc->sock_name, arg, sizeof(dc->sock_name));
	return 0;
}

static int ddsnap_get_dev(struct dm_target *ti, const char *path, fmode_t mode, const char *what,
			  struct dm_dev **dev)
{
	int r = dm_get_device(ti, path, mode, dev);

	if (r) {
		DMERR("cannot open %s device '%s': error %d", what, path, r);
		ti->error = !strcmp(what, "origin") ? "Cannot open origin device"
						    : "Cannot open snapstore device";
	}
	return r;
}

/*----------------------------------------------------------------*/

/* Remapping. */

static sector_t ddsnap_chunk_sectors(const struct ddsnap_dev *dc)
{
	return (sector_t)1 << dc->chunk_shift;
}

static void ddsnap_remap_origin(struct ddsnap_dev *dc, struct bio *bio)
{
	bio_set_dev(bio, dc->origin->bdev);
	bio->bi_iter.bi_sector = dm_target_offset(dc->ti, bio->bi_iter.bi_sector);
}

static void ddsnap_remap_store(struct ddsnap_dev *dc, struct bio *bio, u64 addr)
{
	sector_t off = dm_target_offset(dc->ti, bio->bi_iter.bi_sector);

	bio_set_dev(bio, dc->snapstore->bdev);
	bio->bi_iter.bi_sector = (addr << dc->chunk_shift) + (off & (ddsnap_chunk_sectors(dc) - 1));
}

void ddsnap_target_fail(struct ddsnap_dev *dc, struct ddsnap_io *io, int err)
{
	struct bio *bio = dm_bio_from_per_bio_data(io, sizeof(*io));
	unsigned long flags;

	spin_lock_irqsave(&dc->lock, flags);
	dc->stats.errors++;
	spin_unlock_irqrestore(&dc->lock, flags);
	bio->bi_status = errno_to_blk_status(err);
	bio_endio(bio);
}

/*
 * Map path: keep only the first @n chunks of snapshot bio @bio (which starts at target
 * sector @off); dm submits the rest as a bio of its own.
 */
static void ddsnap_cut(struct ddsnap_dev *dc, struct bio *bio, struct ddsnap_io *io, sector_t off,
		       u32 n)
{
	if (n >= io->count)
		return;
	dm_accept_partial_bio(bio, (sector_t)((io->chunk + n) << dc->chunk_shift) - off);
	io->count = n;
}

/* Submit a bio held since map, after counting it in the current cache epoch. */
static void ddsnap_submit(struct ddsnap_dev *dc, struct ddsnap_io *io, struct bio *bio)
{
	ddsnap_cache_count(dc, io);
	submit_bio_noacct(bio);
}

/* Whether reply @m answers @io: NULL, or the reason it does not.  Changes nothing. */
static const char *target_check(const struct ddsnap_io *io, const struct ddsnap_msg *m)
{
	struct ddsnap_mapping p;
	struct ddsnap_range r;

	if (m->type != (io->type | DDSNAP_MSG_REPLY))
		return "reply type does not answer the request";
	if (io->type == DDSNAP_MSG_ORIGIN_WRITE) {
		if (m->origin.nr != io->batch)
			return "origin reply range count differs from the request";
		ddsnap_proto_origin_range(m, io->slot, &r);
		if (io->chunk < r.chunk || io->chunk + io->count > r.chunk + r.count)
			return "origin reply for other chunks than asked";
		return NULL;
	}
	if (m->map.nr != io->batch)
		return "mapping reply count differs from the request";
	ddsnap_proto_mapping(m, io->slot, &p);
	if (p.chunk != io->chunk)
		return "mapping reply for another chunk than asked";
	if (p.where == DDSNAP_MAP_SHARED && io->type == DDSNAP_MSG_SNAPSHOT_WRITE)
		return "shared chunk given for a snapshot write";
	return NULL;
}

/* Act on a reply that target_check() accepted for @io: remap and submit, or fail. */
static void target_apply(struct ddsnap_dev *dc, struct ddsnap_io *io, const struct ddsnap_msg *m)
{
	struct bio *bio = dm_bio_from_per_bio_data(io, sizeof(*io));
	struct ddsnap_mapping p;
	struct ddsnap_range r;
	unsigned long flags;

	if (io->type == DDSNAP_MSG_ORIGIN_WRITE) {
		ddsnap_proto_origin_range(m, io->slot, &r);
		if (r.error) {
			DMERR_LIMIT("%s: server refused origin write to chunk %llu: error %d",
				    ddsnap_name(dc), io->chunk, r.error);
			ddsnap_target_fail(dc, io, r.error);
			return;
		}
		ddsnap_remap_origin(dc, bio);
		/* Counted now, held or not: a cache drop (a snapshot create) waits for it. */
		ddsnap_cache_count(dc, io);
		if (!ddsnap_volume_write(dc->vol, io)) {
			/*
			 * Snapshot reads of its chunks from the origin are in flight: the volume
			 * submits it when they end.  Not cached as safe: a write there would
			 * not wait for them.
			 */
			spin_lock_irqsave(&dc->lock, flags);
			dc->stats.held++;
			spin_unlock_irqrestore(&dc->lock, flags);
			return;
		}
		/* An answer from before the last DROP_CACHE is still an answer, but stale. */
		if (m->origin.gen >= dc->gen)
			ddsnap_cache_set_safe(dc, io->chunk, io->count);
		submit_bio_noacct(bio);
		return;
	}

	ddsnap_proto_mapping(m, io->slot, &p);
	switch (p.where) {
	case DDSNAP_MAP_ERROR:
		DMERR_LIMIT("%s: server refused snapshot %s of chunk %llu: error %d",
			    ddsnap_name(dc),
			    io->type == DDSNAP_MSG_SNAPSHOT_READ ? "read" : "write", io->chunk,
			    p.error);
		ddsnap_target_fail(dc, io, p.error);
		return;
	case DDSNAP_MAP_ORIGIN: /* reads only: checked by the decoder */
		io->lock = p.lock;
		io->conn = dc->conn;
		ddsnap_cache_set_origin(dc, p.chunk, io->vseq);
		ddsnap_remap_origin(dc, bio);
		break;
	case DDSNAP_MAP_SHARED: /* reads only: checked above */
		ddsnap_cache_set_mapping(dc, p.chunk, p.addr, false);
		ddsnap_remap_store(dc, bio, p.addr);
		break;
	default: /* DDSNAP_MAP_PRIVATE */
		ddsnap_cache_set_mapping(dc, p.chunk, p.addr, true);
		if (io->type == DDSNAP_MSG_SNAPSHOT_WRITE)
			ddsnap_volume_changed(dc->vol, p.chunk);
		ddsnap_remap_store(dc, bio, p.addr);
		break;
	}
	ddsnap_submit(dc, io, bio);
}

/*
 * Whether the read-ahead mappings of reply @m (from @io's request) answer what it asked: NULL,
 * or the reason they do not.  Changes nothing.
 */
static const char *target_check_ahead(const struct ddsnap_io *io, const struct ddsnap_msg *m)
{
	struct ddsnap_mapping p;

	for (u32 i = io->ahead_slot; i < io->batch; i++) {
		ddsnap_proto_mapping(m, i, &p);
		if (p.chunk != io->ahead + (i - io->ahead_slot))
			return "read-ahead mapping for another chunk than asked";
		if (p.lock)
			return "read lock given for a read-ahead chunk";
	}
	return NULL;
}

/*
 * Cache the mappings of the read-ahead part of reply @m (checked, from @io's request: the
 * query was sent after every one of its bios recorded its vseq), and adapt the window: it
 * halves while fewer than a quarter of its answers could be cached, and doubles while more
 * than half could.
 */
static void target_apply_ahead(struct ddsnap_dev *dc, const struct ddsnap_io *io,
			       const struct ddsnap_msg *m)
{
	u32 n = io->batch - io->ahead_slot, cached = 0, w = READ_ONCE(dc->ahead);
	struct ddsnap_mapping p;
	unsigned long flags;

	for (u32 i = io->ahead_slot; i < io->batch; i++) {
		ddsnap_proto_mapping(m, i, &p);
		if (p.where == DDSNAP_MAP_ORIGIN)
			cached += ddsnap_cache_set_origin(dc, p.chunk, io->vseq);
		else if (p.where == DDSNAP_MAP_SHARED || p.where == DDSNAP_MAP_PRIVATE)
			cached += ddsnap_cache_set_mapping(dc, p.chunk, p.addr,
							   p.where == DDSNAP_MAP_PRIVATE);
	}
	if (cached * 4 < n)
		w = max_t(u32, w / 2, DDSNAP_AHEAD_MIN);
	else if (cached * 2 > n)
		w = min_t(u32, w * 2, DDSNAP_AHEAD_MAX);
	spin_lock_irqsave(&dc->lock, flags);
	dc->ahead = w;
	dc->stats.ahead += cached;
	spin_unlock_irqrestore(&dc->lock, flags);
}

int ddsnap_target_reply(struct ddsnap_dev *dc, struct list_head *ios, const struct ddsnap_msg *m,
			const char **why)
{
	struct ddsnap_io *io, *tmp;
	const char *bad = NULL;
	u64 culprit = 0;

	/* All or nothing: a reply that misanswers one bio of a batch is trusted for none. */
	list_for_each_entry (io, ios, list) {
		bad = target_check(io, m);
		if (bad) {
			culprit = io->chunk;
			break;
		}
	}
	/* The bios of one request share its read-ahead range (and target_check saw the count). */
	io = list_first_entry_or_null(ios, struct ddsnap_io, list);
	if (!bad && io && io->ahead_slot < io->batch) {
		bad = target_check_ahead(io, m);
		if (bad)
			culprit = io->ahead;
		else
			target_apply_ahead(dc, io, m);
	}
	list_for_each_entry_safe (io, tmp, ios, list) {
		list_del_init(&io->list);
		if (bad)
			ddsnap_target_fail(dc, io, -EIO);
		else
			target_apply(dc, io, m);
	}
	if (!bad)
		return 0;
	*why = bad;
	DMERR_LIMIT("%s: bad reply for chunk %llu: %s", ddsnap_name(dc), culprit, bad);
	return -EPROTO;
}

/*----------------------------------------------------------------*/

/* Target methods. */

/*
 * <snapstore_dev> <origin_dev> <server_socket> <tag>
 */
static int ddsnap_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct ddsnap_dev *dc;
	fmode_t mode = dm_table_get_mode(ti->table);
	int r;
	sector_t max_io;

	if (argc != 4) {
		DMERR("expected 4 arguments <snapstore_dev> <origin_dev> <server_socket> <tag>, "
		      "got %u",
		      argc);
		ti->error = "Wrong argument count: usage <snapstore_dev> <origin_dev> "
			    "<server_socket> <tag>";
		return -EINVAL;
	}

	dc = kzalloc(sizeof(*dc), GFP_KERNEL);
	if (!dc) {
		ti->error = "Cannot allocate ddsnap context";
		return -ENOMEM;
	}
	dc->ti = ti;

	r = ddsnap_parse_tag(ti, argv[3], &dc->tag);
	if (r)
		goto out_free_dc;
	r = ddsnap_parse_socket(ti, dc, argv[2]);
	if (r)
		goto out_free_dc;
	r = ddsnap_get_dev(ti, argv[0], mode, "snapstore", &dc->snapstore);
	if (r)
		goto out_free_dc;
	r = ddsnap_get_dev(ti, argv[1], mode, "origin", &dc->origin);
	if (r)
		goto out_put_snapstore;
	r = ddsnap_volume_get(dc);
	if (r) {
		ti->error = "Cannot allocate ddsnap volume";
		goto out_put_origin;
	}

	r = ddsnap_channel_start(dc);
	if (r)
		goto out_put_volume;

	max_io = ddsnap_chunk_sectors(dc) * DDSNAP_IO_CHUNKS;
	r = dm_set_target_max_io_len(ti, max_io);
	if (r)
		goto out_stop_channel;
	ti->num_flush_bios = 1;
	/* Discards on the origin are writes for the copy-out rule; snapshots take none. */
	ti->num_discard_bios = ddsnap_is_origin(dc) ? 1 : 0;
	ti->per_io_data_size = sizeof(struct ddsnap_io);
	ti->private = dc;
	DMINFO("%s: %s of %s via %s, chunk %u bytes, gen %llu", ddsnap_name(dc),
	       ddsnap_is_origin(dc) ? "origin" : "snapshot", dc->origin->name, dc->sock_name,
	       1u << dc->chunk_bits, dc->gen);
	return 0;

out_stop_channel:
	ddsnap_channel_stop(dc);
out_put_volume:
	ddsnap_volume_put(dc);
out_put_origin:
	dm_put_device(ti, dc->origin);
out_put_snapstore:
	dm_put_device(ti, dc->snapstore);
out_free_dc:
	kfree(dc);
	return r;
}

static void ddsnap_dtr(struct dm_target *ti)
{
	struct ddsnap_dev *dc = ti->private;

	ddsnap_channel_stop(dc);
	ddsnap_volume_put(dc);
	dm_put_device(ti, dc->origin);
	dm_put_device(ti, dc->snapstore);
	kfree(dc);
}

static int ddsnap_map(struct dm_target *ti, struct bio *bio)
{
	struct ddsnap_dev *dc = ti->private;
	struct ddsnap_io *io = dm_per_bio_data(bio, sizeof(*io));
	bool write = op_is_write(bio_op(bio));
	sector_t off, len = bio_sectors(bio);
	u16 type;
	u64 addr;
	u32 n;

	memset(io, 0, sizeof(*io));
	INIT_LIST_HEAD(&io->list);
	if (!len) {
		/* An empty flush: to where this device's writes go. */
		bio_set_dev(bio, ddsnap_is_origin(dc) ? dc->origin->bdev : dc->snapstore->bdev);
		return DM_MAPIO_REMAPPED;
	}
	off = dm_target_offset(ti, bio->bi_iter.bi_sector);
	io->chunk = off >> dc->chunk_shift;
	io->count = ((off + len - 1) >> dc->chunk_shift) - io->chunk + 1;

	if (ddsnap_is_origin(dc)) {
		if (!write || ddsnap_cache_lookup(dc, io, true, &addr)) {
			ddsnap_remap_origin(dc, bio);
			return DM_MAPIO_REMAPPED;
		}
		type = DDSNAP_MSG_ORIGIN_WRITE;
	} else {
		if (write)
			ddsnap_cut(dc, bio, io, off, 1);
		n = ddsnap_cache_lookup(dc, io, write, &addr);
		ddsnap_cut(dc, bio, io, off, n ? n : 1);
		if (n) {
			if (io->fast)
				ddsnap_remap_origin(dc, bio);
			else
				ddsnap_remap_store(dc, bio, addr);
			return DM_MAPIO_REMAPPED;
		}
		/* A miss asks the server: its "origin" answers are good from here (before the send). */
		io->vseq = ddsnap_volume_now(dc->vol);
		type = write ? DDSNAP_MSG_SNAPSHOT_WRITE : DDSNAP_MSG_SNAPSHOT_READ;
		io->whole = write && !(off & (ddsnap_chunk_sectors(dc) - 1)) &&
			    bio_sectors(bio) == ddsnap_chunk_sectors(dc);
	}
	if (io->count > DDSNAP_WIRE_MAX_CHUNKS) {
		/* io_hints bounds discards below this; anything else is a bug of ours. */
		WARN_ON_ONCE(1);
		return DM_MAPIO_KILL;
	}
	if (!ddsnap_channel_queue(dc, io, type)) {
		DMERR_LIMIT("%s: I/O to chunk %llu failed: target is in failed mode",
			    ddsnap_name(dc), io->chunk);
		return DM_MAPIO_KILL;
	}
	return DM_MAPIO_SUBMITTED;
}

static int ddsnap_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error)
{
	struct ddsnap_dev *dc = ti->private;
	struct ddsnap_io *io = dm_per_bio_data(bio, sizeof(*io));

	ddsnap_cache_uncount(dc, io);
	if (io->fast)
		ddsnap_volume_read_end(dc->vol, io->chunk, io->count);
	if (io->lock || io->credit_conn)
		ddsnap_channel_finish(dc, io);
	return DM_ENDIO_DONE;
}

static void ddsnap_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
			  char *result, unsigned int maxlen)
{
	struct ddsnap_dev *dc = ti->private;
	unsigned int sz = 0;
	struct ddsnap_stats st;
	unsigned long flags;
	unsigned int waiting, mapped;
	enum ddsnap_mode mode;
	bool connected;
	u64 gen;

	switch (type) {
	case STATUSTYPE_INFO:
		spin_lock_irqsave(&dc->lock, flags);
		st = dc->stats;
		waiting = dc->nr_waiting;
		mapped = atomic_read(&dc->epoch_inflight[0]) + atomic_read(&dc->epoch_inflight[1]);
		mode = dc->mode;
		connected = dc->connected;
		gen = dc->gen;
		spin_unlock_irqrestore(&dc->lock, flags);
		DMEMIT("mode=%s connected=%d waiting=%u mapped=%u hits=%llu misses=%llu "
		       "errors=%llu timeouts=%llu bad_replies=%llu reconnects=%llu stale=%llu "
		       "lost_locks=%llu gen=%llu chunk=%u timeout=%u queries=%llu ahead=%llu "
		       "held=%llu",
		       ddsnap_mode_name(mode), connected, waiting, mapped,
		       (u64)atomic64_read(&dc->hits), (u64)atomic64_read(&dc->misses), st.errors,
		       st.timeouts, st.bad_replies, st.reconnects, st.stale, st.lost_locks, gen,
		       1u << dc->chunk_bits, dc->timeout_secs, st.queries, st.ahead, st.held);
		break;
	case STATUSTYPE_TABLE:
		if (ddsnap_is_origin(dc))
			DMEMIT("%s %s %s -1", dc->snapstore->name, dc->origin->name, dc->sock_name);
		else
			DMEMIT("%s %s %s %u", dc->snapstore->name, dc->origin->name, dc->sock_name,
			       dc->tag);
		break;
	case STATUSTYPE_IMA:
		*result = 0;
		break;
	}
}

/*
 * Messages:
 *	drop_cache	forget every cached answer (the server is asked again)
 *	timeout <secs>	I/O timeout, 1..3600 seconds
 *	reconnect	drop the connection; the receive thread reconnects
 */
static int ddsnap_message(struct dm_target *ti, unsigned int argc, char **argv, char *result,
			  unsigned int maxlen)
{
	struct ddsnap_dev *dc = ti->private;
	unsigned int secs;

	if (argc == 1 && !strcasecmp(argv[0], "drop_cache")) {
		ddsnap_cache_drop(dc);
		return 0;
	}
	if (argc == 1 && !strcasecmp(argv[0], "reconnect")) {
		ddsnap_channel_kick(dc);
		return 0;
	}
	if (argc == 2 && !strcasecmp(argv[0], "timeout")) {
		if (kstrtouint(argv[1], 10, &secs) || secs < 1 || secs > 3600) {
			DMERR("%s: timeout '%s' is not 1..3600 seconds", ddsnap_name(dc), argv[1]);
			return -EINVAL;
		}
		spin_lock_irq(&dc->lock);
		dc->timeout_secs = secs;
		spin_unlock_irq(&dc->lock);
		return 0;
	}
	DMERR("%s: unknown message: usage drop_cache | reconnect | timeout <secs>",
	      ddsnap_name(dc));
	return -EINVAL;
}

static int ddsnap_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct ddsnap_dev *dc = ti->private;
	int r;

	r = fn(ti, dc->origin, 0, ti->len, data);
	if (!r)
		r = fn(ti, dc->snapstore, 0, bdev_nr_sectors(dc->snapstore->bdev), data);
	return r;
}

static void ddsnap_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct ddsnap_dev *dc = ti->private;
	/* A discard asks the server about all its chunks at once: bound it by the wire. */
	sector_t max = (sector_t)(DDSNAP_WIRE_MAX_CHUNKS - 1) << dc->chunk_shift;

	if (limits->max_discard_sectors > max)
		limits->max_discard_sectors = max;
	if (limits->max_hw_discard_sectors > max)
		limits->max_hw_discard_sectors = max;
}

static struct target_type ddsnap_target = {
	.name = "ddsnap",
	.version = {0, 2, 0},
	.module = THIS_MODULE,
	.ctr = ddsnap_ctr,
	.dtr = ddsnap_dtr,
	.map = ddsnap_map,
	.end_io = ddsnap_end_io,
	.status = ddsnap_status,
	.message = ddsnap_message,
	.iterate_devices = ddsnap_iterate_devices,
	.io_hints = ddsnap_io_hints,
};

static int __init dm_ddsnap_init(void)
{
	int r = dm_register_target(&ddsnap_target);

	if (r)
		DMERR("register failed %d", r);
	return r;
}

static void __exit dm_ddsnap_exit(void)
{
	dm_unregister_target(&ddsnap_target);
}

module_init(dm_ddsnap_init);
module_exit(dm_ddsnap_exit);

MODULE_DESCRIPTION(DM_NAME " ddsnap snapshot target (userspace metadata server)");
MODULE_AUTHOR("Zumastor developers");
MODULE_LICENSE("GPL");
