/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
/*
 * ddsnap_wire.h - the protocol between the ddsnap device-mapper target (kernel) and the
 * metadata server ddsnapd (userspace), over one AF_UNIX stream connection per ddsnap device.
 *
 * Every message is a 16-byte header followed by `length` bytes of body.  All fields are
 * little-endian, fixed width, naturally aligned, with explicit padding; no pointers, longs,
 * bools or enums.  Sizes and key offsets are pinned by static asserts at the end of this file.
 * Reserved and padding fields are sent as zero and a receiver rejects a message where they are
 * not (a later version may give them a meaning, together with a version bump).
 *
 * Errors travel as negative Linux errno values in a __le32 (two's complement), e.g. -ENOSPC.
 *
 * Sequence ids.  The sender of a request picks `seq`; the reply carries the same seq and the
 * request's type with DDSNAP_MSG_REPLY set.  The kernel and the server number their requests
 * independently (the type tells a reply from a request).  FINISH has no reply.
 *
 * A session:
 *
 *	kernel                                      server
 *	IDENTIFY {version, tag, sectors, chunk}  ->
 *	                                         <- IDENTIFY|REPLY {error, chunk, gen, state}
 *	ORIGIN_WRITE / SNAPSHOT_READ / SNAPSHOT_WRITE {ranges} ->   (many in flight)
 *	                                         <- ...|REPLY (any order)
 *	FINISH {read-lock ids}                   ->
 *	                                         <- DROP_CACHE {reason, gen}
 *	DROP_CACHE|REPLY                         ->
 *	PING <-> PING|REPLY                         (either side)
 *	                                         <- ERROR {error, culprit, text}   (then closes)
 *
 * The receiver of a message it cannot decode (bad magic, unknown type, bad length, nonzero
 * reserved field, counts out of bounds) may answer ERROR and closes the connection; the
 * kernel fails the I/O of a bad reply and reconnects.
 *
 * Versions.  IDENTIFY carries the newest version the kernel speaks; the server answers with
 * the version of this connection, the older of the two, or refuses one older than it
 * supports.  Each side then sends only what that version has.
 *
 * Version history:
 *	1: initial version.
 *	2: DDSNAP_RANGE_AHEAD in SNAPSHOT_READ (mappings asked for the kernel's cache only);
 *	   the server answers an older kernel in the kernel's version (version 1 servers
 *	   refuse every version but their own).
 *	3: DROP_CACHE reason DDSNAP_DROP_ORIGIN_CHANGED; a version 3 kernel may cache
 *	   DDSNAP_MAP_ORIGIN answers (reads and read-ahead) until the next DROP_CACHE or an
 *	   origin write through its own origin device.
 */
#ifndef DDSNAP_WIRE_H
#define DDSNAP_WIRE_H

#include <linux/types.h>
#ifdef __KERNEL__
#include <linux/stddef.h>
#else
#include <stddef.h>
#endif

/* C11 _Static_assert works in the kernel (gnu11) and in userspace alike. */
#define DDSNAP_WIRE_ASSERT(expr, what) _Static_assert(expr, what)

#define DDSNAP_WIRE_MAGIC	       0x4e534444u /* "DDSN" in byte order */
#define DDSNAP_WIRE_VERSION	       3u	   /* the newest version this header describes */
#define DDSNAP_WIRE_VERSION_MIN	       1u /* the oldest a peer of this header still speaks */

/*
 * Snapshot tags are 0..DDSNAP_TAG_MAX everywhere: the dm table, this protocol, the control
 * protocol, the store, delta streams and changelists.  The two values above it are reserved,
 * and each meaning has one name, here:
 *   DDSNAP_TAG_ORIGIN  0xffffffff  the origin device, in this protocol (dm table tag -1);
 *   DDSNAP_TAG_NONE    0xffffffff  "no snapshot" (a full delta or changelist) in the control
 *                                  protocol, delta streams and changelist files;
 *   DDSNAP_TAG_HEAD    0xfffffffe  the live origin as a changelist or delta target, in the
 *                                  same formats.
 * The formats predate this header; the values stay as they are.
 */
#define DDSNAP_TAG_MAX	  0xfffffffdu
#define DDSNAP_TAG_ORIGIN 0xffffffffu
#define DDSNAP_TAG_NONE	  0xffffffffu
#define DDSNAP_TAG_HEAD	  0xfffffffeu
DDSNAP_WIRE_ASSERT(DDSNAP_TAG_MAX < DDSNAP_TAG_HEAD && DDSNAP_TAG_HEAD < DDSNAP_TAG_NONE,
		   "snapshot tags lie below every reserved tag");

/*
 * Chunk size, as log2 of bytes: at least one page (the kernel maps whole pages) and at most
 * 1 MiB (a copy-out holds a whole chunk in the server's preallocated buffers).
 */
#define DDSNAP_CHUNK_BITS_MIN 12u
#define DDSNAP_CHUNK_BITS_MAX 20u

/*
 * Bounds.  A query names at most DDSNAP_WIRE_MAX_RANGES ranges covering at most
 * DDSNAP_WIRE_MAX_CHUNKS chunks, so that its mapping reply (one entry per chunk) fits
 * DDSNAP_WIRE_MAX_BODY; a FINISH releases at most DDSNAP_WIRE_MAX_LOCKS locks; error text is
 * at most DDSNAP_WIRE_MAX_TEXT bytes.  A header announcing more than DDSNAP_WIRE_MAX_BODY
 * bytes is rejected before anything is read, so a receiver needs one fixed buffer.
 */
#define DDSNAP_WIRE_MAX_RANGES 64u
#define DDSNAP_WIRE_MAX_CHUNKS 256u
#define DDSNAP_WIRE_MAX_LOCKS  512u
#define DDSNAP_WIRE_MAX_TEXT   256u
#define DDSNAP_WIRE_MAX_BODY   8200u /* = the largest: a mapping reply of MAX_CHUNKS */
/*
 * Read locks one connection may hold at once (granted, FINISH not yet sent).  The kernel
 * stays within it by its lock credits (kernel/ddsnap.h); the server answers a snapshot
 * read that would need more with a DDSNAP_MAP_ERROR mapping of -EBUSY.
 */
#define DDSNAP_WIRE_MAX_READLOCKS 1024u

/* Chunk numbers stay below 2^48 so that chunk << chunk_bits never overflows a u64 byte offset. */
#define DDSNAP_WIRE_MAX_CHUNK (1ull << 48)

/*----------------------------------------------------------------*/

/* Message types.  A reply is the request's type | DDSNAP_MSG_REPLY. */
#define DDSNAP_MSG_IDENTIFY	  0x0001u
#define DDSNAP_MSG_ORIGIN_WRITE	  0x0002u
#define DDSNAP_MSG_SNAPSHOT_READ  0x0003u
#define DDSNAP_MSG_SNAPSHOT_WRITE 0x0004u
#define DDSNAP_MSG_FINISH	  0x0005u
#define DDSNAP_MSG_DROP_CACHE	  0x0006u
#define DDSNAP_MSG_PING		  0x0007u
#define DDSNAP_MSG_ERROR	  0x0008u /* only as DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY */
#define DDSNAP_MSG_REPLY	  0x8000u
#define DDSNAP_MSG_TYPE_MASK	  0x7fffu

/*
 * Header of every message.
 *	magic	DDSNAP_WIRE_MAGIC: a desynchronized stream is detected at once.
 *	type	DDSNAP_MSG_*, with DDSNAP_MSG_REPLY for replies.
 *	flags	reserved, zero.
 *	seq	request: chosen by its sender; reply: the request's seq.
 *	length	bytes of body following the header, at most DDSNAP_WIRE_MAX_BODY.
 */
struct ddsnap_head_wire {
	__le32 magic;
	__le16 type;
	__le16 flags;
	__le32 seq;
	__le32 length;
};

/*
 * IDENTIFY - first message on every connection, kernel -> server.
 *	version		the newest version the kernel speaks (its DDSNAP_WIRE_VERSION).
 *	tag		snapshot tag, or DDSNAP_TAG_ORIGIN.
 *	dev_sectors	length of the dm target in 512-byte sectors.
 *	chunk_bits	chunk size the kernel expects (log2 bytes), or 0 to take the server's.
 *
 * IDENTIFY|REPLY - server -> kernel.
 *	error		0, or: -EPROTONOSUPPORT (version older than the server supports),
 *			-ENODATA (no such snapshot), -EINVAL (dev_sectors or chunk_bits do not
 *			match the volume).
 *	version		the connection's version: the older of the kernel's and the server's.
 *	chunk_bits	the volume's chunk size (log2 bytes), in [CHUNK_BITS_MIN, MAX].
 *	state		DDSNAP_STATE_* of the snapshot (NORMAL for the origin).
 *	gen		origin: the current gen; snapshot: the snapshot's gen.
 *	dev_sectors	the volume size known to the server.
 * Any cached state of the kernel from an earlier connection is dropped on a new IDENTIFY.
 */
struct ddsnap_identify_wire {
	__le32 version;
	__le32 tag;
	__le64 dev_sectors;
	__le32 chunk_bits;
	__le32 reserved;
};

#define DDSNAP_STATE_NORMAL  0u
#define DDSNAP_STATE_INVALID 1u /* squashed: every read and write fails with EIO */

struct ddsnap_identify_reply_wire {
	__le32 error;
	__le32 version;
	__le32 chunk_bits;
	__le32 state;
	__le64 gen;
	__le64 dev_sectors;
};

/*
 * A run of chunks: chunk .. chunk + count - 1.  count >= 1 and chunk + count <=
 * DDSNAP_WIRE_MAX_CHUNK.  flags, at most one:
 *	DDSNAP_RANGE_WHOLE	only in SNAPSHOT_WRITE: the write overwrites these chunks entirely.
 *				A hint: ddsnapd copies their old contents in all the same,
 *				since until the write is durable a chunk must read as the
 *				snapshot's old data (doc/protocol.md, "Snapshot write").
 *	DDSNAP_RANGE_AHEAD	only in SNAPSHOT_READ, version 2 on: no bio waits for these
 *				chunks; the kernel asks where they are to fill its cache before
 *				reads come (mapping read-ahead).  Such ranges follow every range
 *				without the flag, and a query has at least one of those.
 */
#define DDSNAP_RANGE_WHOLE 0x1u
#define DDSNAP_RANGE_AHEAD 0x2u

struct ddsnap_range_wire {
	__le64 chunk;
	__le32 count;
	__le32 flags;
};

/*
 * ORIGIN_WRITE, SNAPSHOT_READ, SNAPSHOT_WRITE - kernel -> server: the query body.
 *	nr_ranges	1..DDSNAP_WIRE_MAX_RANGES ranges follow, covering at most
 *			DDSNAP_WIRE_MAX_CHUNKS chunks in all.
 *
 * ORIGIN_WRITE asks "may the origin write these chunks now?"  The server copies out whatever
 * a live snapshot still needs, makes the copies and their records durable, waits for any read
 * lock on these chunks (see SNAPSHOT_READ), and only then replies.
 *
 * SNAPSHOT_READ asks where the snapshot's chunks are (and, for RANGE_AHEAD ranges, where
 * they will be read from soon).  SNAPSHOT_WRITE asks for private
 * (writable) snapstore chunks for the snapshot, allocating and copying as needed.
 */
struct ddsnap_query_wire {
	__le32 nr_ranges;
	__le32 reserved;
	struct ddsnap_range_wire ranges[];
};

/*
 * ORIGIN_WRITE|REPLY - server -> kernel: one status per requested range, in request order,
 * with the same chunk and count.
 *	gen	the gen the writes were approved in.
 *	error	0: the range may be written now and stays safe to write without asking until
 *		the next DROP_CACHE; or negative errno (-ENOSPC: the store is full and no
 *		snapshot could be dropped; -EIO): fail the writes to this range.
 */
struct ddsnap_range_status_wire {
	__le64 chunk;
	__le32 count;
	__le32 error;
};

struct ddsnap_origin_reply_wire {
	__le32 nr_ranges;
	__le32 reserved;
	__le64 gen;
	struct ddsnap_range_status_wire ranges[];
};

/*
 * SNAPSHOT_READ|REPLY and SNAPSHOT_WRITE|REPLY - server -> kernel: one mapping per requested
 * chunk, in request order (ranges expanded).
 *	where	DDSNAP_MAP_ORIGIN: read the origin (SNAPSHOT_READ only).  If lock != 0 the server
 *		holds a read lock on the chunk: origin writes to it wait until the kernel sends
 *		FINISH {lock} after its read completed (the read race, DESIGN 5).  A chunk
 *		of a RANGE_AHEAD range never has a lock: the kernel reads no origin from it.
 *		Versions 1 and 2: not cacheable, every read asks again.  Version 3 on:
 *		cacheable (from reads and read-ahead alike) until the next DROP_CACHE or
 *		until an origin write to the chunk through the kernel's own origin device of
 *		the volume; the server sends DROP_CACHE {DDSNAP_DROP_ORIGIN_CHANGED} before it
 *		changes origin chunks itself.  A read served from such a cached answer takes
 *		no server read lock, so the kernel must itself keep it ordered against
 *		origin writes through its origin device (the read race).
 *		DDSNAP_MAP_SHARED: snapstore chunk addr, read-only (may be shared with other
 *		snapshots); cacheable until DROP_CACHE.
 *		DDSNAP_MAP_PRIVATE: snapstore chunk addr owned by this snapshot alone: reads and
 *		writes go there; cacheable until DROP_CACHE.
 *		DDSNAP_MAP_ERROR: fail the I/O with error.
 *	addr	snapstore chunk number (SHARED, PRIVATE), else 0.
 *	lock	read-lock id (ORIGIN), else 0.
 *	error	negative errno with MAP_ERROR, else 0.
 */
#define DDSNAP_MAP_ORIGIN  1u
#define DDSNAP_MAP_SHARED  2u
#define DDSNAP_MAP_PRIVATE 3u
#define DDSNAP_MAP_ERROR   4u

struct ddsnap_mapping_wire {
	__le64 chunk;
	__le64 addr;
	__le64 lock;
	__le32 where;
	__le32 error;
};

struct ddsnap_map_reply_wire {
	__le32 nr_chunks;
	__le32 reserved;
	struct ddsnap_mapping_wire map[];
};

/*
 * FINISH - kernel -> server, no reply: the reads holding these locks completed.
 *	nr_locks	1..DDSNAP_WIRE_MAX_LOCKS nonzero lock ids follow.
 * Lock ids belong to one connection; the kernel never sends one on a later connection.
 */
struct ddsnap_finish_wire {
	__le32 nr_locks;
	__le32 reserved;
	__le64 locks[];
};

/*
 * DROP_CACHE - server -> kernel.
 *	reason	DDSNAP_DROP_NEW_SNAPSHOT (to origin devices): a snapshot was created, gen is the
 *		new current gen; forget every "safe to write" chunk.
 *		DDSNAP_DROP_SNAPSHOT_GONE (to a snapshot device): the snapshot was deleted or
 *		invalidated; drop every mapping and fail all further I/O with EIO.
 *		DDSNAP_DROP_ORIGIN_CHANGED (version 3 on, to every snapshot device of the
 *		volume): the server itself changed origin chunks (a revert: sent after the
 *		copy-outs, before the data is written); forget every cached answer, ORIGIN
 *		ones included.  State and gen are unchanged: the server sends the
 *		connection's current state and gen.  Every SNAPSHOT_READ reply whose lookups
 *		came before those copy-outs precedes this message on the stream, so no
 *		answer cached after it is stale.  Version 1 and 2 devices never get it
 *		(they never cache ORIGIN answers).
 *	state	the device's DDSNAP_STATE_* from now on.
 *	gen	see reason.
 * DROP_CACHE|REPLY - kernel -> server, once the cache is empty and no I/O mapped through the
 * old cache is still in flight, so the server may then reuse the chunks.
 *	error	0 (or negative errno if the kernel could not comply).
 *	gen	echoes the request's gen.
 */
#define DDSNAP_DROP_NEW_SNAPSHOT   1u
#define DDSNAP_DROP_SNAPSHOT_GONE  2u
#define DDSNAP_DROP_ORIGIN_CHANGED 3u

struct ddsnap_drop_wire {
	__le32 reason;
	__le32 state;
	__le64 gen;
};

struct ddsnap_drop_reply_wire {
	__le32 error;
	__le32 reserved;
	__le64 gen;
};

/*
 * PING - either direction, a liveness probe; PING|REPLY carries the same body layout.
 *	nonce		request: anything; reply: echoed.
 *	gen		request: 0; reply: the replier's current gen.
 *	state		request: 0; reply: DDSNAP_STATE_* (server) or the target's mode (kernel:
 *			0 normal, 1 server-lost, 2 failed).
 *	inflight	request: 0; reply: requests the replier is working on.
 */
struct ddsnap_ping_wire {
	__le64 nonce;
	__le64 gen;
	__le32 state;
	__le32 inflight;
};

/*
 * ERROR|REPLY - either direction: the message with this seq (culprit: its type) was refused
 * as a whole; when the culprit could not be decoded the sender closes the connection after it.
 *	error		negative errno (-EPROTO: malformed; -EOPNOTSUPP: unknown type).
 *	culprit		the refused message's type, 0 if unknown.
 *	text_len	bytes of text that follow (<= DDSNAP_WIRE_MAX_TEXT, not NUL-terminated).
 */
struct ddsnap_error_wire {
	__le32 error;
	__le16 culprit;
	__le16 text_len;
	char text[];
};

/*----------------------------------------------------------------*/

DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_head_wire) == 16, "head_wire size");
DDSNAP_WIRE_ASSERT(offsetof(struct ddsnap_head_wire, magic) == 0, "head_wire magic");
DDSNAP_WIRE_ASSERT(offsetof(struct ddsnap_head_wire, type) == 4, "head_wire type");
DDSNAP_WIRE_ASSERT(offsetof(struct ddsnap_head_wire, seq) == 8, "head_wire seq");
DDSNAP_WIRE_ASSERT(offsetof(struct ddsnap_head_wire, length) == 12, "head_wire length");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_identify_wire) == 24, "identify_wire size");
DDSNAP_WIRE_ASSERT(offsetof(struct ddsnap_identify_wire, dev_sectors) == 8, "identify sectors");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_identify_reply_wire) == 32, "identify_reply size");
DDSNAP_WIRE_ASSERT(offsetof(struct ddsnap_identify_reply_wire, gen) == 16, "identify_reply gen");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_range_wire) == 16, "range_wire size");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_query_wire) == 8, "query_wire size");
DDSNAP_WIRE_ASSERT(offsetof(struct ddsnap_query_wire, ranges) == 8, "query_wire ranges");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_range_status_wire) == 16, "range_status_wire size");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_origin_reply_wire) == 16, "origin_reply_wire size");
DDSNAP_WIRE_ASSERT(offsetof(struct ddsnap_origin_reply_wire, ranges) == 16, "origin ranges");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_mapping_wire) == 32, "mapping_wire size");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_map_reply_wire) == 8, "map_reply_wire size");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_finish_wire) == 8, "finish_wire size");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_drop_wire) == 16, "drop_wire size");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_drop_reply_wire) == 16, "drop_reply_wire size");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_ping_wire) == 24, "ping_wire size");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_error_wire) == 8, "error_wire size");
DDSNAP_WIRE_ASSERT(DDSNAP_WIRE_MAX_BODY ==
			   sizeof(struct ddsnap_map_reply_wire) +
				   DDSNAP_WIRE_MAX_CHUNKS * sizeof(struct ddsnap_mapping_wire),
		   "max body is the largest mapping reply");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_query_wire) +
				   DDSNAP_WIRE_MAX_RANGES * sizeof(struct ddsnap_range_wire) <=
			   DDSNAP_WIRE_MAX_BODY,
		   "largest query fits");
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_finish_wire) + DDSNAP_WIRE_MAX_LOCKS * sizeof(__le64) <=
			   DDSNAP_WIRE_MAX_BODY,
		   "largest finish fits");

#endif /* DDSNAP_WIRE_H */
