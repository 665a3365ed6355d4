// SPDX-License-Identifier: GPL-2.0-only
/*
 * ddsnap-proto.c - the kernel's encoders and decoders of ddsnap wire messages.
 *
 * What.  The kernel builds batched queries (ddsnap_proto_batch_add) and sends IDENTIFY,
 * queries, FINISH, DROP_CACHE replies and PING replies, and receives the server's replies,
 * DROP_CACHE, PING and ERROR.  The layouts are in include/ddsnap_wire.h; userspace has its
 * own codec (server/proto/wire.c) that applies the same rules, documented in doc/protocol.md.
 *
 * Invariants.  Every received byte is untrusted: the header is checked (magic, flags, type,
 * length within the type's bounds) before the body is read, and the body (counts against its
 * length, reserved fields zero, enum values, errno ranges) before anything uses it.  A decoder
 * never reads outside the buffer it was given and reports failure as -EPROTO with a static
 * reason, never with a WARN or BUG: a bad server is an expected condition.
 *
 * Locking.  None: pure functions over caller-owned buffers.
 *
 * Crash argument.  Not applicable: no state.
 */
#include <linux/kernel.h>
#include <linux/string.h>
#include <asm/unaligned.h>

#include "ddsnap-proto.h"

/* The largest query the send worker builds fits its buffer. */
DDSNAP_WIRE_ASSERT(sizeof(struct ddsnap_head_wire) + sizeof(struct ddsnap_query_wire) +
				   DDSNAP_WIRE_MAX_RANGES * sizeof(struct ddsnap_range_wire) <=
			   DDSNAP_PROTO_MAX_SEND,
		   "a full query fits the send buffer");

static int proto_fail(const char **why, const char *reason)
{
	*why = reason;
	return -EPROTO;
}

static bool proto_errno_ok(s32 e)
{
	return e < 0 && e > -MAX_ERRNO;
}

/* Body layouts of the messages the kernel receives: fixed part, element size, bound. */
static int proto_layout(u16 type, u32 *fixed, u32 *elem, u32 *max)
{
	*elem = 0;
	*max = 0;
	switch (type) {
	case DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY:
		*fixed = sizeof(struct ddsnap_identify_reply_wire);
		return 0;
	case DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY:
		*fixed = sizeof(struct ddsnap_origin_reply_wire);
		*elem = sizeof(struct ddsnap_range_status_wire);
		*max = DDSNAP_WIRE_MAX_RANGES;
		return 0;
	case DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY:
	case DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY:
		*fixed = sizeof(struct ddsnap_map_reply_wire);
		*elem = sizeof(struct ddsnap_mapping_wire);
		*max = DDSNAP_WIRE_MAX_CHUNKS;
		return 0;
	case DDSNAP_MSG_DROP_CACHE:
		*fixed = sizeof(struct ddsnap_drop_wire);
		return 0;
	case DDSNAP_MSG_PING:
	case DDSNAP_MSG_PING | DDSNAP_MSG_REPLY:
		*fixed = sizeof(struct ddsnap_ping_wire);
		return 0;
	case DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY:
		*fixed = sizeof(struct ddsnap_error_wire);
		*elem = 1;
		*max = DDSNAP_WIRE_MAX_TEXT;
		return 0;
	default:
		return -EPROTO;
	}
}

int ddsnap_proto_head(const struct ddsnap_head_wire *h, u16 *type, u32 *seq, u32 *len,
		      const char **why)
{
	u32 fixed, elem, max;

	if (le32_to_cpu(h->magic) != DDSNAP_WIRE_MAGIC)
		return proto_fail(why, "bad magic");
	if (h->flags)
		return proto_fail(why, "header flags set");
	*type = le16_to_cpu(h->type);
	*seq = le32_to_cpu(h->seq);
	*len = le32_to_cpu(h->length);
	if (proto_layout(*type, &fixed, &elem, &max))
		return proto_fail(why, "message type the kernel does not accept");
	if (*len > DDSNAP_WIRE_MAX_BODY || *len < fixed)
		return proto_fail(why, "body length out of bounds");
	if (!elem && *len != fixed)
		return proto_fail(why, "body length does not match its type");
	if (elem && ((*len - fixed) % elem || (*len - fixed) / elem > max))
		return proto_fail(why, "body length is not a whole number of elements");
	return 0;
}

static int proto_unpack_mapping(const struct ddsnap_mapping_wire *w, bool read,
				struct ddsnap_mapping *p, const char **why)
{
	p->chunk = le64_to_cpu(get_unaligned(&w->chunk));
	p->addr = le64_to_cpu(get_unaligned(&w->addr));
	p->lock = le64_to_cpu(get_unaligned(&w->lock));
	p->where = le32_to_cpu(get_unaligned(&w->where));
	p->error = (s32)le32_to_cpu(get_unaligned(&w->error));
	if (p->chunk >= DDSNAP_WIRE_MAX_CHUNK)
		return proto_fail(why, "mapping chunk beyond the largest chunk");
	switch (p->where) {
	case DDSNAP_MAP_ORIGIN:
		if (!read)
			return proto_fail(why, "origin mapping in a write reply");
		if (p->addr || p->error)
			return proto_fail(why, "origin mapping with address or error");
		return 0;
	case DDSNAP_MAP_SHARED:
	case DDSNAP_MAP_PRIVATE:
		if (p->lock || p->error)
			return proto_fail(why, "snapstore mapping with lock or error");
		if (p->addr >= DDSNAP_WIRE_MAX_CHUNK)
			return proto_fail(why, "snapstore address beyond the largest chunk");
		return 0;
	case DDSNAP_MAP_ERROR:
		if (p->addr || p->lock || !proto_errno_ok(p->error))
			return proto_fail(why, "malformed error mapping");
		return 0;
	default:
		return proto_fail(why, "mapping kind unknown");
	}
}

static void proto_unpack_status(const struct ddsnap_range_status_wire *w, struct ddsnap_range *p)
{
	p->chunk = le64_to_cpu(get_unaligned(&w->chunk));
	p->count = le32_to_cpu(get_unaligned(&w->count));
	p->flags = 0;
	p->error = (s32)le32_to_cpu(get_unaligned(&w->error));
}

void ddsnap_proto_origin_range(const struct ddsnap_msg *m, u32 i, struct ddsnap_range *out)
{
	const struct ddsnap_range_status_wire *w = m->origin.ranges;

	/* Already validated by ddsnap_proto_unpack(). */
	proto_unpack_status(&w[i], out);
}

void ddsnap_proto_mapping(const struct ddsnap_msg *m, u32 i, struct ddsnap_mapping *out)
{
	const char *why;
	const struct ddsnap_mapping_wire *w = m->map.entries;

	/* Already validated by ddsnap_proto_unpack(); this cannot fail. */
	proto_unpack_mapping(&w[i], true, out, &why);
}

int ddsnap_proto_unpack(u16 type, u32 seq, const void *body, u32 len, struct ddsnap_msg *m,
			const char **why)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->seq = seq;
	switch (type) {
	case DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY: {
		const struct ddsnap_identify_reply_wire *w = body;

		m->identify.error = (s32)le32_to_cpu(get_unaligned(&w->error));
		m->identify.version = le32_to_cpu(get_unaligned(&w->version));
		m->identify.chunk_bits = le32_to_cpu(get_unaligned(&w->chunk_bits));
		m->identify.state = le32_to_cpu(get_unaligned(&w->state));
		m->identify.gen = le64_to_cpu(get_unaligned(&w->gen));
		m->identify.dev_sectors = le64_to_cpu(get_unaligned(&w->dev_sectors));
		if (m->identify.error)
			return proto_errno_ok(m->identify.error)
				       ? 0
				       : proto_fail(why, "identify error is not a negative errno");
		if (m->identify.chunk_bits < DDSNAP_CHUNK_BITS_MIN ||
		    m->identify.chunk_bits > DDSNAP_CHUNK_BITS_MAX)
			return proto_fail(why, "identify reply chunk size out of range");
		if (m->identify.state > DDSNAP_STATE_INVALID)
			return proto_fail(why, "identify reply state unknown");
		return 0;
	}
	case DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY: {
		const struct ddsnap_origin_reply_wire *w = body;
		const struct ddsnap_range_status_wire *r = body + sizeof(*w);
		u32 nr = (len - sizeof(*w)) / sizeof(*r);
		struct ddsnap_range p;

		if (w->reserved)
			return proto_fail(why, "origin reply reserved field set");
		if (le32_to_cpu(get_unaligned(&w->nr_ranges)) != nr)
			return proto_fail(why, "origin reply range count does not match the body");
		if (!nr)
			return proto_fail(why, "origin reply without ranges");
		for (u32 i = 0; i < nr; i++) {
			proto_unpack_status(&r[i], &p);
			if (!p.count || p.chunk >= DDSNAP_WIRE_MAX_CHUNK ||
			    p.count > DDSNAP_WIRE_MAX_CHUNK - p.chunk)
				return proto_fail(why, "origin reply range out of bounds");
			if (p.error && !proto_errno_ok(p.error))
				return proto_fail(why,
						  "origin reply error is not a negative errno");
		}
		m->origin.gen = le64_to_cpu(get_unaligned(&w->gen));
		m->origin.nr = nr;
		m->origin.ranges = r;
		return 0;
	}
	case DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY:
	case DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY: {
		const struct ddsnap_map_reply_wire *w = body;
		const struct ddsnap_mapping_wire *e = body + sizeof(*w);
		u32 nr = (len - sizeof(*w)) / sizeof(*e);
		struct ddsnap_mapping p;

		if (w->reserved)
			return proto_fail(why, "mapping reply reserved field set");
		if (le32_to_cpu(get_unaligned(&w->nr_chunks)) != nr)
			return proto_fail(why, "mapping count does not match the body");
		if (!nr)
			return proto_fail(why, "mapping reply without mappings");
		for (u32 i = 0; i < nr; i++) {
			int r = proto_unpack_mapping(
				&e[i], type == (DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY), &p,
				why);
			if (r)
				return r;
		}
		m->map.nr = nr;
		m->map.entries = e;
		return 0;
	}
	case DDSNAP_MSG_DROP_CACHE: {
		const struct ddsnap_drop_wire *w = body;

		m->drop.reason = le32_to_cpu(get_unaligned(&w->reason));
		m->drop.state = le32_to_cpu(get_unaligned(&w->state));
		m->drop.gen = le64_to_cpu(get_unaligned(&w->gen));
		if (m->drop.reason != DDSNAP_DROP_NEW_SNAPSHOT &&
		    m->drop.reason != DDSNAP_DROP_SNAPSHOT_GONE &&
		    m->drop.reason != DDSNAP_DROP_ORIGIN_CHANGED)
			return proto_fail(why, "drop cache reason unknown");
		if (m->drop.state > DDSNAP_STATE_INVALID)
			return proto_fail(why, "drop cache state unknown");
		return 0;
	}
	case DDSNAP_MSG_PING:
	case DDSNAP_MSG_PING | DDSNAP_MSG_REPLY: {
		const struct ddsnap_ping_wire *w = body;

		m->ping.nonce = le64_to_cpu(get_unaligned(&w->nonce));
		return 0;
	}
	case DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY: {
		const struct ddsnap_error_wire *w = body;
		u32 n = len - sizeof(*w);

		m->error.error = (s32)le32_to_cpu(get_unaligned(&w->error));
		m->error.culprit = le16_to_cpu(get_unaligned(&w->culprit));
		m->error.len = le16_to_cpu(get_unaligned(&w->text_len));
		m->error.text = body + sizeof(*w);
		if (m->error.len != n)
			return proto_fail(why, "error text length does not match the body");
		if (!proto_errno_ok(m->error.error))
			return proto_fail(why, "error reply without a negative errno");
		return 0;
	}
	default:
		return proto_fail(why, "message type the kernel does not accept");
	}
}

/*----------------------------------------------------------------*/

static size_t proto_head(void *buf, u16 type, u32 seq, size_t body)
{
	struct ddsnap_head_wire *h = buf;

	h->magic = cpu_to_le32(DDSNAP_WIRE_MAGIC);
	h->type = cpu_to_le16(type);
	h->flags = 0;
	h->seq = cpu_to_le32(seq);
	h->length = cpu_to_le32(body);
	memset(h + 1, 0, body);
	return sizeof(*h) + body;
}

size_t ddsnap_proto_identify(void *buf, u32 seq, u32 tag, u64 dev_sectors)
{
	struct ddsnap_identify_wire *w = buf + sizeof(struct ddsnap_head_wire);
	size_t n = proto_head(buf, DDSNAP_MSG_IDENTIFY, seq, sizeof(*w));

	w->version = cpu_to_le32(DDSNAP_WIRE_VERSION);
	w->tag = cpu_to_le32(tag);
	w->dev_sectors = cpu_to_le64(dev_sectors);
	w->chunk_bits = 0;
	return n;
}

size_t ddsnap_proto_query(void *buf, u16 type, u32 seq, const struct ddsnap_query *q)
{
	struct ddsnap_query_wire *w = buf + sizeof(struct ddsnap_head_wire);
	size_t n = proto_head(buf, type, seq, sizeof(*w) + q->nr * sizeof(w->ranges[0]));

	w->nr_ranges = cpu_to_le32(q->nr);
	for (u32 i = 0; i < q->nr; i++) {
		w->ranges[i].chunk = cpu_to_le64(q->r[i].chunk);
		w->ranges[i].count = cpu_to_le32(q->r[i].count);
		w->ranges[i].flags = cpu_to_le32(q->r[i].flags);
	}
	return n;
}

int ddsnap_proto_batch_add(struct ddsnap_query *q, u16 type, u64 chunk, u32 count, u32 flags)
{
	bool origin = type == DDSNAP_MSG_ORIGIN_WRITE;
	struct ddsnap_range *last = q->nr ? &q->r[q->nr - 1] : NULL;
	int slot;

	if (!count)
		return -1;
	if (origin)
		for (u32 i = q->nr; i-- > 0;)
			if (chunk >= q->r[i].chunk &&
			    chunk + count <= q->r[i].chunk + q->r[i].count)
				return i;
	if (count > DDSNAP_WIRE_MAX_CHUNKS - q->total)
		return -1;
	if (last && last->flags == flags && chunk == last->chunk + last->count) {
		slot = origin ? q->nr - 1 : q->total;
		last->count += count;
	} else {
		if (q->nr == DDSNAP_WIRE_MAX_RANGES)
			return -1;
		slot = origin ? q->nr : q->total;
		q->r[q->nr++] =
			(struct ddsnap_range){.chunk = chunk, .count = count, .flags = flags};
	}
	q->total += count;
	return slot;
}

int ddsnap_proto_batch_ahead(struct ddsnap_query *q, u64 chunk, u32 count)
{
	int slot = q->total;

	if (count > DDSNAP_WIRE_MAX_CHUNKS - q->total)
		count = DDSNAP_WIRE_MAX_CHUNKS - q->total;
	if (!q->nr || !count || q->nr == DDSNAP_WIRE_MAX_RANGES)
		return -1;
	q->r[q->nr++] =
		(struct ddsnap_range){.chunk = chunk, .count = count, .flags = DDSNAP_RANGE_AHEAD};
	q->total += count;
	return slot;
}

u32 ddsnap_proto_batch_replies(const struct ddsnap_query *q, u16 type)
{
	return type == DDSNAP_MSG_ORIGIN_WRITE ? q->nr : q->total;
}

size_t ddsnap_proto_finish(void *buf, const u64 *locks, u32 nr)
{
	struct ddsnap_finish_wire *w = buf + sizeof(struct ddsnap_head_wire);
	size_t n = proto_head(buf, DDSNAP_MSG_FINISH, 0, sizeof(*w) + nr * sizeof(w->locks[0]));

	w->nr_locks = cpu_to_le32(nr);
	for (u32 i = 0; i < nr; i++)
		w->locks[i] = cpu_to_le64(locks[i]);
	return n;
}

size_t ddsnap_proto_drop_reply(void *buf, u32 seq, s32 error, u64 gen)
{
	struct ddsnap_drop_reply_wire *w = buf + sizeof(struct ddsnap_head_wire);
	size_t n = proto_head(buf, DDSNAP_MSG_DROP_CACHE | DDSNAP_MSG_REPLY, seq, sizeof(*w));

	w->error = cpu_to_le32((u32)error);
	w->gen = cpu_to_le64(gen);
	return n;
}

size_t ddsnap_proto_ping_reply(void *buf, u32 seq, u64 nonce, u64 gen, u32 state, u32 inflight)
{
	struct ddsnap_ping_wire *w = buf + sizeof(struct ddsnap_head_wire);
	size_t n = proto_head(buf, DDSNAP_MSG_PING | DDSNAP_MSG_REPLY, seq, sizeof(*w));

	w->nonce = cpu_to_le64(nonce);
	w->gen = cpu_to_le64(gen);
	w->state = cpu_to_le32(state);
	w->inflight = cpu_to_le32(inflight);
	return n;
}
