/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ctl.h - the control protocol between the ddsnap CLI (and the volume monitor) and a running
 * server, on the same AF_UNIX socket the kernel targets use.
 *
 * Framing is the kernel protocol's (struct ddsnap_head_wire: magic, type, flags, seq,
 * length); control messages use types CTL_FIRST..CTL_LAST, so the server tells a CLI
 * connection from a kernel one by its first message.  Bodies are little-endian fixed-layout
 * structs with explicit padding, pinned by static asserts below.  Every reply starts with
 * struct ctl_result_wire: a negative errno and an optional human-readable reason, which
 * the CLI prints as is ("snapshot 7 is held (usecount 1)").
 *
 * Lists are paged so no message is large whatever the number of snapshots or changed chunks:
 * the client asks again from the cursor the previous reply returned.
 *
 *	CLI                                   server
 *	HELLO {version}                   ->  <- HELLO|REPLY {result, version, chunk, sizes, gen}
 *	CREATE {tag [, origin uuid, gen]} ->  <- CREATE|REPLY {result, value = gen of the snapshot}
 *	DELETE {tag}                      ->  <- DELETE|REPLY {result}
 *	PRIORITY {tag, arg = priority}    ->  <- PRIORITY|REPLY {result, value = new priority}
 *	USECOUNT {tag, arg = delta}       ->  <- USECOUNT|REPLY {result, value = new usecount}
 *	LIST {cursor}                     ->  <- LIST|REPLY {result, total, next cursor, snaps[]}
 *	STATUS                            ->  <- STATUS|REPLY {result, store totals}
 *	CHANGELIST {from, to, cursor}     ->  <- CHANGELIST|REPLY {result, next cursor, chunks[]}
 *	SYNC                              ->  <- SYNC|REPLY {result, value = synced txg}
 *
 * Functions here are pure encode/decode: no I/O, no allocation beyond what the caller
 * passes, thread-safe.  ctl_client.h does the socket side.
 */
#ifndef DDSNAP_CTL_H
#define DDSNAP_CTL_H

#include <sys/types.h>
#include "util/base.h"
#include "ddsnap_wire.h"

/* 2: snapshots in LIST carry their provenance; CREATE may carry one (received snapshots). */
#define CTL_VERSION 2u

enum ctl_type {
	CTL_FIRST = 0x0100,
	CTL_HELLO = 0x0100,
	CTL_CREATE = 0x0101,
	CTL_DELETE = 0x0102,
	CTL_PRIORITY = 0x0103,
	CTL_USECOUNT = 0x0104,
	CTL_LIST = 0x0105,
	CTL_STATUS = 0x0106,
	CTL_CHANGELIST = 0x0107,
	CTL_SYNC = 0x0108,
	CTL_REVERT = 0x0109, /* body ctl_tag_wire (arg 0), reply ctl_result_wire: chunks copied */
	CTL_LAST = 0x0109,
};

/* Tags in CHANGELIST: DDSNAP_TAG_NONE (no source: the whole volume) and DDSNAP_TAG_HEAD
 * (the live origin as target), ddsnap_wire.h. */

#define CTL_MAX_TEXT	    240u  /* reason text in a result */
#define CTL_LIST_PAGE	    64u	  /* snapshots per LIST reply */
#define CTL_CHANGELIST_PAGE 4096u /* chunks per CHANGELIST reply (32 KiB) */
#define CTL_CURSOR_END	    0xffffffffffffffffull

/*----------------------------------------------------------------
 * Wire structs
 *--------------------------------------------------------------*/

struct ctl_result_wire {
	__le32 error; /* 0 or negative errno */
	__le16 text_len;
	__le16 reserved;
	__le64 value;
	char text[CTL_MAX_TEXT]; /* text_len bytes used, not NUL-terminated */
};

struct ctl_hello_wire {
	__le32 version;
	__le32 reserved;
};

struct ctl_hello_reply_wire {
	struct ctl_result_wire result;
	__le32 version;
	__le32 chunk_bits;
	__le64 origin_sectors;
	__le64 gen;
	__u8 uuid[16];
};

struct ctl_tag_wire { /* CREATE, DELETE, PRIORITY, USECOUNT, REVERT */
	__le32 tag;
	__le32 reserved;
	__le64 arg; /* two's complement s64: priority, usecount delta */
};

/* CREATE of a received snapshot: the tag, then its provenance (engine_create_from). */
struct ctl_create_from_wire {
	struct ctl_tag_wire t;
	__u8 origin_uuid[16];
	__le64 origin_gen; /* >= 1 */
};

struct ctl_cursor_wire { /* LIST */
	__le64 cursor;
};

struct ctl_snap_wire {
	__le32 tag;
	__le32 state; /* DDSNAP_STATE_* */
	__le64 gen;
	__le64 ctime;	 /* seconds since the epoch, UTC */
	__le32 priority; /* two's complement s32 */
	__le32 usecount;
	__le64 unique_bytes;  /* what deleting it would free */
	__le64 written_bytes; /* written to the origin between the previous snapshot and it */
	__le32 devices;	      /* ddsnap devices connected for this snapshot */
	__le32 flags;	      /* CTL_SNAP_* */
	__u8 origin_uuid[16]; /* provenance: the store that took it (this one's if taken here) */
	__le64 origin_gen;    /* and its gen there */
};
#define CTL_SNAP_WRITTEN  0x1u /* has a private overlay (was written to) */
#define CTL_SNAP_RECEIVED 0x2u /* created with a provenance of another store (received) */

struct ctl_list_reply_wire {
	struct ctl_result_wire result;
	__le32 total;
	__le32 count;
	__le64 next; /* cursor for the next page, CTL_CURSOR_END when done */
	struct ctl_snap_wire snaps[];
};

struct ctl_status_reply_wire {
	struct ctl_result_wire result;
	__le64 gen;
	__le64 txg;
	__le64 chunk_size;
	__le64 origin_bytes;
	__le64 data_total, data_free; /* snapstore chunks */
	__le64 meta_total, meta_free; /* metadata blocks */
	__le64 exceptions;
	__le64 snapshots;
	__le64 reserve_chunks; /* kept free by the full-store policy */
	__le32 devices;	       /* ddsnap devices connected */
	__le32 readlocks;
	__le64 log_used, log_size; /* intent log blocks */
	__le64 origin_queries;	   /* ORIGIN_WRITE queries served since the server started */
	__le64 origin_batches;	   /* volume calls that served them (coalescing, server.c) */
};

struct ctl_changelist_wire {
	__le32 from; /* tag or DDSNAP_TAG_NONE */
	__le32 to;   /* tag or DDSNAP_TAG_HEAD */
	__le64 cursor;
};

struct ctl_changelist_reply_wire {
	struct ctl_result_wire result;
	__le32 count;
	__le32 chunk_bits;
	__le64 next; /* CTL_CURSOR_END when done */
	__le64 chunks[];
};

static_assert(sizeof(struct ctl_result_wire) == 16 + CTL_MAX_TEXT, "ctl_result_wire size");
static_assert(sizeof(struct ctl_hello_wire) == 8, "ctl_hello_wire size");
static_assert(sizeof(struct ctl_hello_reply_wire) == sizeof(struct ctl_result_wire) + 40,
	      "ctl_hello_reply_wire size");
static_assert(sizeof(struct ctl_tag_wire) == 16, "ctl_tag_wire size");
static_assert(sizeof(struct ctl_snap_wire) == 80, "ctl_snap_wire size");
static_assert(sizeof(struct ctl_create_from_wire) == 40, "ctl_create_from_wire size");
static_assert(sizeof(struct ctl_list_reply_wire) == sizeof(struct ctl_result_wire) + 16,
	      "ctl_list_reply_wire size");
static_assert(sizeof(struct ctl_status_reply_wire) == sizeof(struct ctl_result_wire) + 128,
	      "ctl_status_reply_wire size");
static_assert(sizeof(struct ctl_changelist_wire) == 16, "ctl_changelist_wire size");
static_assert(sizeof(struct ctl_changelist_reply_wire) == sizeof(struct ctl_result_wire) + 16,
	      "ctl_changelist_reply_wire size");

#define CTL_MAX_BODY \
	(sizeof(struct ctl_changelist_reply_wire) + CTL_CHANGELIST_PAGE * sizeof(__le64))
static_assert(sizeof(struct ctl_list_reply_wire) + CTL_LIST_PAGE * sizeof(struct ctl_snap_wire) <=
		      CTL_MAX_BODY,
	      "list page fits");

/*----------------------------------------------------------------
 * In-core messages
 *--------------------------------------------------------------*/

struct ctl_result {
	s32 error;
	u64 value;
	char text[CTL_MAX_TEXT + 1]; /* NUL-terminated */
};

struct ctl_snap {
	u32 tag, state, usecount, devices, flags;
	s32 priority;
	u64 gen, ctime, unique_bytes, written_bytes;
	u8 origin_uuid[16];
	u64 origin_gen;
};

struct ctl_status {
	u64 gen, txg, chunk_size, origin_bytes, data_total, data_free, meta_total, meta_free;
	u64 exceptions, snapshots, reserve_chunks, log_used, log_size;
	u64 origin_queries, origin_batches;
	u32 devices, readlocks;
};

/*
 * One control message.  Requests use the fields named for their type; every reply has
 * @result and the fields of its type.  Arrays point into caller-owned storage: a decoder
 * fills @snaps / @chunks up to @cap entries (CTL_LIST_PAGE / CTL_CHANGELIST_PAGE suffice).
 */
struct ctl_msg {
	u16 type; /* enum ctl_type, maybe | DDSNAP_MSG_REPLY */
	u32 seq;
	struct ctl_result result;
	u32 version, tag, from, to, chunk_bits, total, count, cap;
	s64 arg;
	u64 cursor, next, gen, origin_sectors;
	u8 uuid[16];
	/* CREATE: the snapshot's provenance when @has_origin (a received snapshot) */
	bool has_origin;
	u8 origin_uuid[16];
	u64 origin_gen;
	struct ctl_status status;
	struct ctl_snap *snaps;
	u64 *chunks;
};

/* Is @type (without the reply bit) a control message type? */
static inline bool ctl_is_ctl_type(u16 type)
{
	u16 t = type & DDSNAP_MSG_TYPE_MASK;

	return t >= CTL_FIRST && t <= CTL_LAST;
}

/*
 * Encodes @m (header and body) into @buf.  Returns the size, -ENOSPC if @size is too small
 * (WIRE head + CTL_MAX_BODY always suffices), -EINVAL for an unencodable message. O(size).
 */
ssize_t ctl_pack(const struct ctl_msg *m, void *buf, size_t size);

/*
 * Decodes one whole message of @len bytes (header included).  @m->snaps/@m->chunks/@m->cap
 * must be set by the caller for replies carrying arrays.  Returns 0, or -EPROTO with the
 * reason in *why: bad header, length not matching the type, counts beyond bounds or @cap,
 * text too long, nonzero reserved fields. O(len).
 */
int ctl_unpack(const void *buf, size_t len, struct ctl_msg *m, const char **why);

/*
 * Checks a header: returns 0 and *body = the announced body length if it is a plausible
 * control message header (magic, type in range, length <= CTL_MAX_BODY), else -EPROTO.
 */
int ctl_frame(const void *head, size_t *body, const char **why);

/* Sets @r to @error with a printf-formatted reason (truncated to CTL_MAX_TEXT). */
void ctl_result_set(struct ctl_result *r, s32 error, const char *fmt, ...) __printf(3, 4);

/* "CREATE", "LIST|REPLY", ... static strings. */
const char *ctl_type_name(u16 type);

#endif
