/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * wire.h - userspace pack, unpack and validation of the kernel/server messages
 * (include/ddsnap_wire.h, doc/protocol.md).
 *
 * struct wire_msg is the in-core form of any one message: host byte order, bounded arrays,
 * no pointers into the buffer it came from.  The same validation rules guard both directions:
 * wire_unpack() refuses what wire_pack() would refuse to send, so a message that round-trips
 * is exactly a valid one.
 *
 * None of these functions allocate, block or keep state; all are safe to call from any thread
 * on distinct messages.  Every refusal comes with a static reason string in *why (never NULL
 * after a failure when why is non-NULL).
 */
#ifndef DDSNAP_WIRE_USER_H
#define DDSNAP_WIRE_USER_H

#include <sys/types.h>
#include "util/base.h"
#include "ddsnap_wire.h"

#define WIRE_HEAD_SIZE sizeof(struct ddsnap_head_wire)
#define WIRE_MAX_MSG   (WIRE_HEAD_SIZE + DDSNAP_WIRE_MAX_BODY)

struct wire_range {
	u64 chunk;
	u32 count;
	u32 flags; /* DDSNAP_RANGE_* */
};

struct wire_range_status {
	u64 chunk;
	u32 count;
	s32 error;
};

struct wire_mapping {
	u64 chunk;
	u64 addr;
	u64 lock;
	u32 where; /* DDSNAP_MAP_* */
	s32 error;
};

struct wire_msg {
	u16 type; /* DDSNAP_MSG_*, maybe | DDSNAP_MSG_REPLY */
	u32 seq;
	union {
		struct {
			u32 version, tag, chunk_bits;
			u64 dev_sectors;
		} identify;
		struct {
			s32 error;
			u32 version, chunk_bits, state;
			u64 gen, dev_sectors;
		} identify_reply;
		struct { /* ORIGIN_WRITE, SNAPSHOT_READ, SNAPSHOT_WRITE */
			u32 nr;
			struct wire_range r[DDSNAP_WIRE_MAX_RANGES];
		} query;
		struct {
			u32 nr;
			u64 gen;
			struct wire_range_status r[DDSNAP_WIRE_MAX_RANGES];
		} origin_reply;
		struct { /* SNAPSHOT_READ|REPLY, SNAPSHOT_WRITE|REPLY */
			u32 nr;
			struct wire_mapping m[DDSNAP_WIRE_MAX_CHUNKS];
		} map_reply;
		struct {
			u32 nr;
			u64 lock[DDSNAP_WIRE_MAX_LOCKS];
		} finish;
		struct {
			u32 reason, state;
			u64 gen;
		} drop;
		struct {
			s32 error;
			u64 gen;
		} drop_reply;
		struct { /* PING and PING|REPLY */
			u64 nonce, gen;
			u32 state, inflight;
		} ping;
		struct {
			s32 error;
			u16 culprit;
			u16 len;
			char text[DDSNAP_WIRE_MAX_TEXT + 1]; /* NUL-terminated copy */
		} error;
	};
};

/*
 * Is a whole message at the start of buf[0..len)?  Checks the header only (magic, flags,
 * type, body length within that type's bounds).  Returns 0 with *total = header + body bytes;
 * -EWOULDBLOCK if more bytes are needed (*total = bytes needed when the header is complete,
 * else WIRE_HEAD_SIZE); -EPROTO if the header is bad.  O(1).
 */
int wire_frame(const void *buf, size_t len, size_t *total, const char **why);

/*
 * Decode and validate exactly one message occupying all of buf[0..len).  Returns 0, or
 * -EPROTO if anything is malformed: header, body length, counts, ranges, reserved fields,
 * enum values.  O(len).
 */
int wire_unpack(const void *buf, size_t len, struct wire_msg *m, const char **why);

/*
 * Validate m and encode it into buf.  Returns the message size in bytes, -EINVAL if m is not a
 * valid message (the reason in *why), -ENOSPC if size is too small (WIRE_MAX_MSG always
 * suffices).  O(message).
 */
ssize_t wire_pack(const struct wire_msg *m, void *buf, size_t size, const char **why);

/* Validate an in-core message (the rules of doc/protocol.md).  Returns 0 or -EINVAL. */
int wire_validate(const struct wire_msg *m, const char **why);

/* Total number of chunks named by a query.  O(nr ranges). */
u32 wire_query_chunks(const struct wire_msg *query);

/*
 * Does reply answer query: same seq, type = query's | REPLY (or ERROR|REPLY), and for
 * ORIGIN_WRITE the same ranges, for SNAPSHOT_READ/WRITE one mapping per queried chunk in
 * order (MAP_ORIGIN only for reads)?  Returns 0 or -EPROTO.  O(chunks).
 */
int wire_check_reply(const struct wire_msg *query, const struct wire_msg *reply, const char **why);

/* "ORIGIN_WRITE", "ORIGIN_WRITE|REPLY", ...; "UNKNOWN" for unknown types.  Static strings. */
const char *wire_type_name(u16 type);

#endif /* DDSNAP_WIRE_USER_H */
