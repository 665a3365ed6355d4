/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ddsnap-proto.h - the kernel's codec of the wire protocol (include/ddsnap_wire.h): decoders
 * of what the server sends, encoders of what the kernel sends, and the builder of batched
 * queries.  Pure functions over caller-owned buffers, with no other kernel dependency, so
 * that tests/unit/test_kproto.c and tests/fuzz/fuzz_kproto.c compile this very code in
 * userspace (through the small shim in tests/unit/kshim).
 *
 * Every decoder returns 0 or -EPROTO with a static reason in *why.
 */
#ifndef DDSNAP_PROTO_H
#define DDSNAP_PROTO_H

#include <linux/types.h>

#include "ddsnap_wire.h"

/* A range of chunks as the kernel sends it in a query and reads it in an origin reply. */
struct ddsnap_range {
	u64 chunk;
	u32 count;
	u32 flags; /* DDSNAP_RANGE_* (queries) */
	s32 error; /* 0 or a negative errno (origin replies) */
};

/*
 * A query being built: its ranges, and the chunks they cover (= the mapping entries of a
 * snapshot reply).
 */
struct ddsnap_query {
	struct ddsnap_range r[DDSNAP_WIRE_MAX_RANGES];
	u32 nr, total;
};

/*
 * Add a bio of @count chunks from @chunk (a query of @type, with DDSNAP_RANGE_* @flags) to
 * @q.  Returns its slot in the reply -- origin: the index of the range that answers it;
 * snapshot: the index of its first mapping entry -- or -1 if it does not fit the wire's
 * bounds.  An origin bio inside a range already asked reuses that range, and one that
 * continues the last range extends it; a snapshot bio always gets mapping entries of its own
 * (each read lock belongs to one bio) and extends the last range when it continues it with
 * the same flags.  O(q->nr).
 */
int ddsnap_proto_batch_add(struct ddsnap_query *q, u16 type, u64 chunk, u32 count, u32 flags);
/*
 * Add a RANGE_AHEAD range to snapshot read query @q (after its bios' ranges, of which it has
 * at least one): up to @count chunks from @chunk, fewer if the wire's bounds allow no more.
 * Returns the slot of its first mapping entry, or -1 if not one chunk fits.  O(1).
 */
int ddsnap_proto_batch_ahead(struct ddsnap_query *q, u64 chunk, u32 count);
/* Entries the reply to @q of @type has: ranges (origin) or mappings (snapshot). */
u32 ddsnap_proto_batch_replies(const struct ddsnap_query *q, u16 type);

/* A received message, host order. */
struct ddsnap_msg {
	u16 type;
	u32 seq;
	union {
		struct {
			s32 error;
			u32 version, chunk_bits, state;
			u64 gen, dev_sectors;
		} identify;
		struct {
			u64 gen;
			u32 nr;
			const void *ranges; /* nr ddsnap_range_status_wire in the receive buffer */
		} origin;		    /* ORIGIN_WRITE|REPLY */
		struct {
			u32 nr;
			const void *entries; /* nr ddsnap_mapping_wire in the receive buffer */
		} map;
		struct {
			u32 reason, state;
			u64 gen;
		} drop;
		struct {
			u64 nonce;
		} ping;
		struct {
			s32 error;
			u16 culprit;
			u16 len;
			const char *text; /* in the receive buffer, not NUL-terminated */
		} error;
	};
};

struct ddsnap_mapping {
	u64 chunk, addr, lock;
	u32 where;
	s32 error;
};

/* Header check: magic, flags, a type the kernel may receive, body length bounds.  O(1). */
int ddsnap_proto_head(const struct ddsnap_head_wire *h, u16 *type, u32 *seq, u32 *len,
		      const char **why);
/* Body decode and validation for a header that passed ddsnap_proto_head().  O(len). */
int ddsnap_proto_unpack(u16 type, u32 seq, const void *body, u32 len, struct ddsnap_msg *m,
			const char **why);
/* Mapping i of a validated map reply (bounds checked by unpack). */
void ddsnap_proto_mapping(const struct ddsnap_msg *m, u32 i, struct ddsnap_mapping *out);
/* Range status i of a validated origin reply (bounds checked by unpack). */
void ddsnap_proto_origin_range(const struct ddsnap_msg *m, u32 i, struct ddsnap_range *out);

/* Encoders return the message size; buf holds at least DDSNAP_PROTO_MAX_SEND bytes. */
#define DDSNAP_PROTO_MAX_SEND                                                  \
	(sizeof(struct ddsnap_head_wire) + sizeof(struct ddsnap_finish_wire) + \
	 DDSNAP_WIRE_MAX_LOCKS * sizeof(__le64))
size_t ddsnap_proto_identify(void *buf, u32 seq, u32 tag, u64 dev_sectors);
/* Query @q (1..DDSNAP_WIRE_MAX_RANGES ranges) of @type. */
size_t ddsnap_proto_query(void *buf, u16 type, u32 seq, const struct ddsnap_query *q);
size_t ddsnap_proto_finish(void *buf, const u64 *locks, u32 nr);
size_t ddsnap_proto_drop_reply(void *buf, u32 seq, s32 error, u64 gen);
size_t ddsnap_proto_ping_reply(void *buf, u32 seq, u64 nonce, u64 gen, u32 state, u32 inflight);

#endif /* DDSNAP_PROTO_H */
