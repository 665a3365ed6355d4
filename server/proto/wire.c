// SPDX-License-Identifier: GPL-2.0-only
/*
 * wire.c - pack, unpack and validate kernel/server wire messages in userspace.
 *
 * What.  The bytes on the socket are untrusted (the kernel target, a test peer or a fuzzer
 * produce them), so decoding is two passes: structure first (header, body length against the
 * type's layout, counts against the body length, reserved fields zero), converting into a
 * bounded in-core struct wire_msg; then the semantic rules of wire_validate(), which
 * wire_pack() applies too.  Nothing is read before its bounds are checked, and every byte is
 * copied with memcpy, so the input buffer may have any alignment.
 *
 * Invariants.  A struct wire_msg that passed wire_validate() encodes to at most WIRE_MAX_MSG
 * bytes and decodes back to itself.  wire_unpack(buf) == 0 implies wire_pack() of the result
 * reproduces buf byte for byte (there is exactly one encoding of each message).
 *
 * Locking.  None: pure functions over caller-owned memory.
 *
 * Crash argument.  Not applicable: no state.
 */
#include "proto/wire.h"
#include <string.h>

/* Layout of one message type's body: a fixed part then up to max_elems elements. */
struct wire_layout {
	u16 type;
	u16 fixed;
	u16 elem;
	u16 max_elems;
	const char *name;
};

static const struct wire_layout wire_layouts[] = {
	{DDSNAP_MSG_IDENTIFY, sizeof(struct ddsnap_identify_wire), 0, 0, "IDENTIFY"},
	{DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY, sizeof(struct ddsnap_identify_reply_wire), 0, 0,
	 "IDENTIFY|REPLY"},
	{DDSNAP_MSG_ORIGIN_WRITE, sizeof(struct ddsnap_query_wire),
	 sizeof(struct ddsnap_range_wire), DDSNAP_WIRE_MAX_RANGES, "ORIGIN_WRITE"},
	{DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY, sizeof(struct ddsnap_origin_reply_wire),
	 sizeof(struct ddsnap_range_status_wire), DDSNAP_WIRE_MAX_RANGES, "ORIGIN_WRITE|REPLY"},
	{DDSNAP_MSG_SNAPSHOT_READ, sizeof(struct ddsnap_query_wire),
	 sizeof(struct ddsnap_range_wire), DDSNAP_WIRE_MAX_RANGES, "SNAPSHOT_READ"},
	{DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY, sizeof(struct ddsnap_map_reply_wire),
	 sizeof(struct ddsnap_mapping_wire), DDSNAP_WIRE_MAX_CHUNKS, "SNAPSHOT_READ|REPLY"},
	{DDSNAP_MSG_SNAPSHOT_WRITE, sizeof(struct ddsnap_query_wire),
	 sizeof(struct ddsnap_range_wire), DDSNAP_WIRE_MAX_RANGES, "SNAPSHOT_WRITE"},
	{DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY, sizeof(struct ddsnap_map_reply_wire),
	 sizeof(struct ddsnap_mapping_wire), DDSNAP_WIRE_MAX_CHUNKS, "SNAPSHOT_WRITE|REPLY"},
	{DDSNAP_MSG_FINISH, sizeof(struct ddsnap_finish_wire), sizeof(__le64),
	 DDSNAP_WIRE_MAX_LOCKS, "FINISH"},
	{DDSNAP_MSG_DROP_CACHE, sizeof(struct ddsnap_drop_wire), 0, 0, "DROP_CACHE"},
	{DDSNAP_MSG_DROP_CACHE | DDSNAP_MSG_REPLY, sizeof(struct ddsnap_drop_reply_wire), 0, 0,
	 "DROP_CACHE|REPLY"},
	{DDSNAP_MSG_PING, sizeof(struct ddsnap_ping_wire), 0, 0, "PING"},
	{DDSNAP_MSG_PING | DDSNAP_MSG_REPLY, sizeof(struct ddsnap_ping_wire), 0, 0, "PING|REPLY"},
	{DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY, sizeof(struct ddsnap_error_wire), 1,
	 DDSNAP_WIRE_MAX_TEXT, "ERROR|REPLY"},
};

static const struct wire_layout *wire_layout(u16 type)
{
	for (size_t i = 0; i < ARRAY_SIZE(wire_layouts); i++)
		if (wire_layouts[i].type == type)
			return &wire_layouts[i];
	return NULL;
}

const char *wire_type_name(u16 type)
{
	const struct wire_layout *l = wire_layout(type);

	return l ? l->name : "UNKNOWN";
}

static int wire_fail(const char **why, const char *reason, int err)
{
	if (why)
		*why = reason;
	return err;
}

/*----------------------------------------------------------------*/

/* Semantic rules, shared by both directions. */

static bool wire_errno_ok(s32 e)
{
	return e < 0 && e > -4096;
}

static int wire_validate_query(const struct wire_msg *m, const char **why)
{
	bool ahead = false;
	u64 total = 0;

	if (m->query.nr < 1 || m->query.nr > DDSNAP_WIRE_MAX_RANGES)
		return wire_fail(why, "query range count out of bounds", -EINVAL);
	for (u32 i = 0; i < m->query.nr; i++) {
		const struct wire_range *r = &m->query.r[i];

		if (r->count < 1)
			return wire_fail(why, "query range of zero chunks", -EINVAL);
		if (r->chunk >= DDSNAP_WIRE_MAX_CHUNK ||
		    r->count > DDSNAP_WIRE_MAX_CHUNK - r->chunk)
			return wire_fail(why, "query range beyond the largest chunk", -EINVAL);
		switch (r->flags) {
		case 0:
			if (ahead)
				return wire_fail(why, "RANGE_AHEAD range before a range without it",
						 -EINVAL);
			break;
		case DDSNAP_RANGE_WHOLE:
			if (m->type != DDSNAP_MSG_SNAPSHOT_WRITE)
				return wire_fail(why, "RANGE_WHOLE outside SNAPSHOT_WRITE",
						 -EINVAL);
			break;
		case DDSNAP_RANGE_AHEAD:
			if (m->type != DDSNAP_MSG_SNAPSHOT_READ)
				return wire_fail(why, "RANGE_AHEAD outside SNAPSHOT_READ", -EINVAL);
			if (!i)
				return wire_fail(why, "query starts with a RANGE_AHEAD range",
						 -EINVAL);
			ahead = true;
			break;
		default:
			return wire_fail(why, "query range has unknown or combined flags", -EINVAL);
		}
		total += r->count;
	}
	if (total > DDSNAP_WIRE_MAX_CHUNKS)
		return wire_fail(why, "query names too many chunks", -EINVAL);
	return 0;
}

static int wire_validate_origin_reply(const struct wire_msg *m, const char **why)
{
	if (m->origin_reply.nr < 1 || m->origin_reply.nr > DDSNAP_WIRE_MAX_RANGES)
		return wire_fail(why, "origin reply range count out of bounds", -EINVAL);
	for (u32 i = 0; i < m->origin_reply.nr; i++) {
		const struct wire_range_status *r = &m->origin_reply.r[i];

		if (r->count < 1)
			return wire_fail(why, "origin reply range of zero chunks", -EINVAL);
		if (r->chunk >= DDSNAP_WIRE_MAX_CHUNK ||
		    r->count > DDSNAP_WIRE_MAX_CHUNK - r->chunk)
			return wire_fail(why, "origin reply range beyond the largest chunk",
					 -EINVAL);
		if (r->error && !wire_errno_ok(r->error))
			return wire_fail(why, "origin reply error is not a negative errno",
					 -EINVAL);
	}
	return 0;
}

static int wire_validate_mapping(const struct wire_mapping *p, const char **why)
{
	if (p->chunk >= DDSNAP_WIRE_MAX_CHUNK)
		return wire_fail(why, "mapping chunk beyond the largest chunk", -EINVAL);
	switch (p->where) {
	case DDSNAP_MAP_ORIGIN:
		if (p->addr || p->error)
			return wire_fail(why, "origin mapping with address or error", -EINVAL);
		return 0;
	case DDSNAP_MAP_SHARED:
	case DDSNAP_MAP_PRIVATE:
		if (p->lock || p->error)
			return wire_fail(why, "snapstore mapping with lock or error", -EINVAL);
		if (p->addr >= DDSNAP_WIRE_MAX_CHUNK)
			return wire_fail(why, "snapstore address beyond the largest chunk",
					 -EINVAL);
		return 0;
	case DDSNAP_MAP_ERROR:
		if (p->addr || p->lock)
			return wire_fail(why, "error mapping with address or lock", -EINVAL);
		if (!wire_errno_ok(p->error))
			return wire_fail(why, "error mapping without a negative errno", -EINVAL);
		return 0;
	default:
		return wire_fail(why, "mapping kind unknown", -EINVAL);
	}
}

static int wire_validate_map_reply(const struct wire_msg *m, const char **why)
{
	if (m->map_reply.nr < 1 || m->map_reply.nr > DDSNAP_WIRE_MAX_CHUNKS)
		return wire_fail(why, "mapping count out of bounds", -EINVAL);
	for (u32 i = 0; i < m->map_reply.nr; i++) {
		int r = wire_validate_mapping(&m->map_reply.m[i], why);

		if (r)
			return r;
		if (m->map_reply.m[i].where == DDSNAP_MAP_ORIGIN &&
		    m->type != (DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY))
			return wire_fail(why, "origin mapping in a write reply", -EINVAL);
	}
	return 0;
}

int wire_validate(const struct wire_msg *m, const char **why)
{
	if (!wire_layout(m->type))
		return wire_fail(why, "unknown message type", -EINVAL);
	switch (m->type) {
	case DDSNAP_MSG_IDENTIFY:
		if (m->identify.chunk_bits && (m->identify.chunk_bits < DDSNAP_CHUNK_BITS_MIN ||
					       m->identify.chunk_bits > DDSNAP_CHUNK_BITS_MAX))
			return wire_fail(why, "identify chunk size out of range", -EINVAL);
		if (!m->identify.dev_sectors)
			return wire_fail(why, "identify of an empty device", -EINVAL);
		return 0;
	case DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY:
		if (m->identify_reply.error) {
			if (!wire_errno_ok(m->identify_reply.error))
				return wire_fail(why, "identify error is not a negative errno",
						 -EINVAL);
			return 0;
		}
		if (m->identify_reply.chunk_bits < DDSNAP_CHUNK_BITS_MIN ||
		    m->identify_reply.chunk_bits > DDSNAP_CHUNK_BITS_MAX)
			return wire_fail(why, "identify reply chunk size out of range", -EINVAL);
		if (m->identify_reply.state > DDSNAP_STATE_INVALID)
			return wire_fail(why, "identify reply state unknown", -EINVAL);
		return 0;
	case DDSNAP_MSG_ORIGIN_WRITE:
	case DDSNAP_MSG_SNAPSHOT_READ:
	case DDSNAP_MSG_SNAPSHOT_WRITE:
		return wire_validate_query(m, why);
	case DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY:
		return wire_validate_origin_reply(m, why);
	case DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY:
	case DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY:
		return wire_validate_map_reply(m, why);
	case DDSNAP_MSG_FINISH:
		if (m->finish.nr < 1 || m->finish.nr > DDSNAP_WIRE_MAX_LOCKS)
			return wire_fail(why, "finish lock count out of bounds", -EINVAL);
		for (u32 i = 0; i < m->finish.nr; i++)
			if (!m->finish.lock[i])
				return wire_fail(why, "finish of lock id 0", -EINVAL);
		return 0;
	case DDSNAP_MSG_DROP_CACHE:
		if (m->drop.reason != DDSNAP_DROP_NEW_SNAPSHOT &&
		    m->drop.reason != DDSNAP_DROP_SNAPSHOT_GONE &&
		    m->drop.reason != DDSNAP_DROP_ORIGIN_CHANGED)
			return wire_fail(why, "drop cache reason unknown", -EINVAL);
		if (m->drop.state > DDSNAP_STATE_INVALID)
			return wire_fail(why, "drop cache state unknown", -EINVAL);
		return 0;
	case DDSNAP_MSG_DROP_CACHE | DDSNAP_MSG_REPLY:
		if (m->drop_reply.error && !wire_errno_ok(m->drop_reply.error))
			return wire_fail(why, "drop cache reply error is not a negative errno",
					 -EINVAL);
		return 0;
	case DDSNAP_MSG_PING:
	case DDSNAP_MSG_PING | DDSNAP_MSG_REPLY:
		return 0;
	case DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY:
		if (!wire_errno_ok(m->error.error))
			return wire_fail(why, "error reply without a negative errno", -EINVAL);
		if (m->error.len > DDSNAP_WIRE_MAX_TEXT)
			return wire_fail(why, "error text too long", -EINVAL);
		if (m->error.culprit && !wire_layout(m->error.culprit))
			return wire_fail(why, "error culprit type unknown", -EINVAL);
		return 0;
	default:
		return wire_fail(why, "unknown message type", -EINVAL);
	}
}

u32 wire_query_chunks(const struct wire_msg *query)
{
	u32 total = 0;

	for (u32 i = 0; i < query->query.nr && i < DDSNAP_WIRE_MAX_RANGES; i++)
		total += query->query.r[i].count;
	return total;
}

/*----------------------------------------------------------------*/

/* Framing and decoding. */

static void wire_get_head(const void *buf, struct ddsnap_head_wire *h)
{
	memcpy(h, buf, sizeof(*h));
}

int wire_frame(const void *buf, size_t len, size_t *total, const char **why)
{
	struct ddsnap_head_wire h;
	const struct wire_layout *l;
	u32 body;

	*total = WIRE_HEAD_SIZE;
	if (len < WIRE_HEAD_SIZE)
		return wire_fail(why, "incomplete header", -EWOULDBLOCK);
	wire_get_head(buf, &h);
	if (le32_to_cpu(h.magic) != DDSNAP_WIRE_MAGIC)
		return wire_fail(why, "bad magic", -EPROTO);
	if (le16_to_cpu(h.flags))
		return wire_fail(why, "header flags set", -EPROTO);
	l = wire_layout(le16_to_cpu(h.type));
	if (!l)
		return wire_fail(why, "unknown message type", -EPROTO);
	body = le32_to_cpu(h.length);
	if (body > DDSNAP_WIRE_MAX_BODY)
		return wire_fail(why, "body longer than the maximum", -EPROTO);
	if (body < l->fixed)
		return wire_fail(why, "body shorter than its type's fixed part", -EPROTO);
	if (!l->elem && body != l->fixed)
		return wire_fail(why, "body length does not match its type", -EPROTO);
	if (l->elem && ((body - l->fixed) % l->elem || (body - l->fixed) / l->elem > l->max_elems))
		return wire_fail(why, "body length is not a whole number of elements", -EPROTO);
	*total = WIRE_HEAD_SIZE + body;
	if (len < *total)
		return wire_fail(why, "incomplete body", -EWOULDBLOCK);
	return 0;
}

static int wire_unpack_body(const u8 *b, u32 nelems, struct wire_msg *m, const char **why)
{
	switch (m->type) {
	case DDSNAP_MSG_IDENTIFY: {
		struct ddsnap_identify_wire w;

		memcpy(&w, b, sizeof(w));
		if (w.reserved)
			return wire_fail(why, "identify reserved field set", -EPROTO);
		m->identify.version = le32_to_cpu(w.version);
		m->identify.tag = le32_to_cpu(w.tag);
		m->identify.dev_sectors = le64_to_cpu(w.dev_sectors);
		m->identify.chunk_bits = le32_to_cpu(w.chunk_bits);
		return 0;
	}
	case DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY: {
		struct ddsnap_identify_reply_wire w;

		memcpy(&w, b, sizeof(w));
		m->identify_reply.error = (s32)le32_to_cpu(w.error);
		m->identify_reply.version = le32_to_cpu(w.version);
		m->identify_reply.chunk_bits = le32_to_cpu(w.chunk_bits);
		m->identify_reply.state = le32_to_cpu(w.state);
		m->identify_reply.gen = le64_to_cpu(w.gen);
		m->identify_reply.dev_sectors = le64_to_cpu(w.dev_sectors);
		return 0;
	}
	case DDSNAP_MSG_ORIGIN_WRITE:
	case DDSNAP_MSG_SNAPSHOT_READ:
	case DDSNAP_MSG_SNAPSHOT_WRITE: {
		struct ddsnap_query_wire w;

		memcpy(&w, b, sizeof(w));
		if (w.reserved)
			return wire_fail(why, "query reserved field set", -EPROTO);
		if (le32_to_cpu(w.nr_ranges) != nelems)
			return wire_fail(why, "query range count does not match the body", -EPROTO);
		m->query.nr = nelems;
		for (u32 i = 0; i < nelems; i++) {
			struct ddsnap_range_wire r;

			memcpy(&r, b + sizeof(w) + i * sizeof(r), sizeof(r));
			m->query.r[i].chunk = le64_to_cpu(r.chunk);
			m->query.r[i].count = le32_to_cpu(r.count);
			m->query.r[i].flags = le32_to_cpu(r.flags);
		}
		return 0;
	}
	case DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY: {
		struct ddsnap_origin_reply_wire w;

		memcpy(&w, b, sizeof(w));
		if (w.reserved)
			return wire_fail(why, "origin reply reserved field set", -EPROTO);
		if (le32_to_cpu(w.nr_ranges) != nelems)
			return wire_fail(why, "origin reply range count does not match the body",
					 -EPROTO);
		m->origin_reply.nr = nelems;
		m->origin_reply.gen = le64_to_cpu(w.gen);
		for (u32 i = 0; i < nelems; i++) {
			struct ddsnap_range_status_wire r;

			memcpy(&r, b + sizeof(w) + i * sizeof(r), sizeof(r));
			m->origin_reply.r[i].chunk = le64_to_cpu(r.chunk);
			m->origin_reply.r[i].count = le32_to_cpu(r.count);
			m->origin_reply.r[i].error = (s32)le32_to_cpu(r.error);
		}
		return 0;
	}
	case DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY:
	case DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY: {
		struct ddsnap_map_reply_wire w;

		memcpy(&w, b, sizeof(w));
		if (w.reserved)
			return wire_fail(why, "mapping reply reserved field set", -EPROTO);
		if (le32_to_cpu(w.nr_chunks) != nelems)
			return wire_fail(why, "mapping count does not match the body", -EPROTO);
		m->map_reply.nr = nelems;
		for (u32 i = 0; i < nelems; i++) {
			struct ddsnap_mapping_wire p;

			memcpy(&p, b + sizeof(w) + i * sizeof(p), sizeof(p));
			m->map_reply.m[i].chunk = le64_to_cpu(p.chunk);
			m->map_reply.m[i].addr = le64_to_cpu(p.addr);
			m->map_reply.m[i].lock = le64_to_cpu(p.lock);
			m->map_reply.m[i].where = le32_to_cpu(p.where);
			m->map_reply.m[i].error = (s32)le32_to_cpu(p.error);
		}
		return 0;
	}
	case DDSNAP_MSG_FINISH: {
		struct ddsnap_finish_wire w;

		memcpy(&w, b, sizeof(w));
		if (w.reserved)
			return wire_fail(why, "finish reserved field set", -EPROTO);
		if (le32_to_cpu(w.nr_locks) != nelems)
			return wire_fail(why, "finish lock count does not match the body", -EPROTO);
		m->finish.nr = nelems;
		for (u32 i = 0; i < nelems; i++) {
			__le64 v;

			memcpy(&v, b + sizeof(w) + i * sizeof(v), sizeof(v));
			m->finish.lock[i] = le64_to_cpu(v);
		}
		return 0;
	}
	case DDSNAP_MSG_DROP_CACHE: {
		struct ddsnap_drop_wire w;

		memcpy(&w, b, sizeof(w));
		m->drop.reason = le32_to_cpu(w.reason);
		m->drop.state = le32_to_cpu(w.state);
		m->drop.gen = le64_to_cpu(w.gen);
		return 0;
	}
	case DDSNAP_MSG_DROP_CACHE | DDSNAP_MSG_REPLY: {
		struct ddsnap_drop_reply_wire w;

		memcpy(&w, b, sizeof(w));
		if (w.reserved)
			return wire_fail(why, "drop cache reply reserved field set", -EPROTO);
		m->drop_reply.error = (s32)le32_to_cpu(w.error);
		m->drop_reply.gen = le64_to_cpu(w.gen);
		return 0;
	}
	case DDSNAP_MSG_PING:
	case DDSNAP_MSG_PING | DDSNAP_MSG_REPLY: {
		struct ddsnap_ping_wire w;

		memcpy(&w, b, sizeof(w));
		m->ping.nonce = le64_to_cpu(w.nonce);
		m->ping.gen = le64_to_cpu(w.gen);
		m->ping.state = le32_to_cpu(w.state);
		m->ping.inflight = le32_to_cpu(w.inflight);
		return 0;
	}
	case DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY: {
		struct ddsnap_error_wire w;

		memcpy(&w, b, sizeof(w));
		if (le16_to_cpu(w.text_len) != nelems)
			return wire_fail(why, "error text length does not match the body", -EPROTO);
		m->error.error = (s32)le32_to_cpu(w.error);
		m->error.culprit = le16_to_cpu(w.culprit);
		m->error.len = (u16)nelems;
		memcpy(m->error.text, b + sizeof(w), nelems);
		m->error.text[nelems] = 0;
		return 0;
	}
	default:
		return wire_fail(why, "unknown message type", -EPROTO);
	}
}

int wire_unpack(const void *buf, size_t len, struct wire_msg *m, const char **why)
{
	struct ddsnap_head_wire h;
	const struct wire_layout *l;
	size_t total;
	u32 body;
	int r;

	r = wire_frame(buf, len, &total, why);
	if (r == -EWOULDBLOCK)
		return wire_fail(why, "message truncated", -EPROTO);
	if (r)
		return r;
	if (total != len)
		return wire_fail(why, "bytes after the message", -EPROTO);
	wire_get_head(buf, &h);
	memset(m, 0, sizeof(*m));
	m->type = le16_to_cpu(h.type);
	m->seq = le32_to_cpu(h.seq);
	l = wire_layout(m->type);
	body = le32_to_cpu(h.length);
	r = wire_unpack_body((const u8 *)buf + WIRE_HEAD_SIZE,
			     l->elem ? (body - l->fixed) / l->elem : 0, m, why);
	if (r)
		return r;
	r = wire_validate(m, why);
	return r ? -EPROTO : 0;
}

/*----------------------------------------------------------------*/

/* Encoding. */

/* Body size of a valid m, from its counts. */
static size_t wire_body_size(const struct wire_msg *m, const struct wire_layout *l)
{
	u32 n = 0;

	switch (m->type) {
	case DDSNAP_MSG_ORIGIN_WRITE:
	case DDSNAP_MSG_SNAPSHOT_READ:
	case DDSNAP_MSG_SNAPSHOT_WRITE:
		n = m->query.nr;
		break;
	case DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY:
		n = m->origin_reply.nr;
		break;
	case DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY:
	case DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY:
		n = m->map_reply.nr;
		break;
	case DDSNAP_MSG_FINISH:
		n = m->finish.nr;
		break;
	case DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY:
		n = m->error.len;
		break;
	default:
		break;
	}
	return l->fixed + (size_t)n * l->elem;
}

static void wire_pack_body(const struct wire_msg *m, u8 *b)
{
	switch (m->type) {
	case DDSNAP_MSG_IDENTIFY: {
		struct ddsnap_identify_wire w = {
			.version = cpu_to_le32(m->identify.version),
			.tag = cpu_to_le32(m->identify.tag),
			.dev_sectors = cpu_to_le64(m->identify.dev_sectors),
			.chunk_bits = cpu_to_le32(m->identify.chunk_bits),
		};

		memcpy(b, &w, sizeof(w));
		return;
	}
	case DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY: {
		struct ddsnap_identify_reply_wire w = {
			.error = cpu_to_le32((u32)m->identify_reply.error),
			.version = cpu_to_le32(m->identify_reply.version),
			.chunk_bits = cpu_to_le32(m->identify_reply.chunk_bits),
			.state = cpu_to_le32(m->identify_reply.state),
			.gen = cpu_to_le64(m->identify_reply.gen),
			.dev_sectors = cpu_to_le64(m->identify_reply.dev_sectors),
		};

		memcpy(b, &w, sizeof(w));
		return;
	}
	case DDSNAP_MSG_ORIGIN_WRITE:
	case DDSNAP_MSG_SNAPSHOT_READ:
	case DDSNAP_MSG_SNAPSHOT_WRITE: {
		struct ddsnap_query_wire w = {.nr_ranges = cpu_to_le32(m->query.nr)};

		memcpy(b, &w, sizeof(w));
		for (u32 i = 0; i < m->query.nr; i++) {
			struct ddsnap_range_wire r = {
				.chunk = cpu_to_le64(m->query.r[i].chunk),
				.count = cpu_to_le32(m->query.r[i].count),
				.flags = cpu_to_le32(m->query.r[i].flags),
			};

			memcpy(b + sizeof(w) + i * sizeof(r), &r, sizeof(r));
		}
		return;
	}
	case DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY: {
		struct ddsnap_origin_reply_wire w = {
			.nr_ranges = cpu_to_le32(m->origin_reply.nr),
			.gen = cpu_to_le64(m->origin_reply.gen),
		};

		memcpy(b, &w, sizeof(w));
		for (u32 i = 0; i < m->origin_reply.nr; i++) {
			struct ddsnap_range_status_wire r = {
				.chunk = cpu_to_le64(m->origin_reply.r[i].chunk),
				.count = cpu_to_le32(m->origin_reply.r[i].count),
				.error = cpu_to_le32((u32)m->origin_reply.r[i].error),
			};

			memcpy(b + sizeof(w) + i * sizeof(r), &r, sizeof(r));
		}
		return;
	}
	case DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY:
	case DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY: {
		struct ddsnap_map_reply_wire w = {.nr_chunks = cpu_to_le32(m->map_reply.nr)};

		memcpy(b, &w, sizeof(w));
		for (u32 i = 0; i < m->map_reply.nr; i++) {
			const struct wire_mapping *p = &m->map_reply.m[i];
			struct ddsnap_mapping_wire q = {
				.chunk = cpu_to_le64(p->chunk),
				.addr = cpu_to_le64(p->addr),
				.lock = cpu_to_le64(p->lock),
				.where = cpu_to_le32(p->where),
				.error = cpu_to_le32((u32)p->error),
			};

			memcpy(b + sizeof(w) + i * sizeof(q), &q, sizeof(q));
		}
		return;
	}
	case DDSNAP_MSG_FINISH: {
		struct ddsnap_finish_wire w = {.nr_locks = cpu_to_le32(m->finish.nr)};

		memcpy(b, &w, sizeof(w));
		for (u32 i = 0; i < m->finish.nr; i++) {
			__le64 v = cpu_to_le64(m->finish.lock[i]);

			memcpy(b + sizeof(w) + i * sizeof(v), &v, sizeof(v));
		}
		return;
	}
	case DDSNAP_MSG_DROP_CACHE: {
		struct ddsnap_drop_wire w = {
			.reason = cpu_to_le32(m->drop.reason),
			.state = cpu_to_le32(m->drop.state),
			.gen = cpu_to_le64(m->drop.gen),
		};

		memcpy(b, &w, sizeof(w));
		return;
	}
	case DDSNAP_MSG_DROP_CACHE | DDSNAP_MSG_REPLY: {
		struct ddsnap_drop_reply_wire w = {
			.error = cpu_to_le32((u32)m->drop_reply.error),
			.gen = cpu_to_le64(m->drop_reply.gen),
		};

		memcpy(b, &w, sizeof(w));
		return;
	}
	case DDSNAP_MSG_PING:
	case DDSNAP_MSG_PING | DDSNAP_MSG_REPLY: {
		struct ddsnap_ping_wire w = {
			.nonce = cpu_to_le64(m->ping.nonce),
			.gen = cpu_to_le64(m->ping.gen),
			.state = cpu_to_le32(m->ping.state),
			.inflight = cpu_to_le32(m->ping.inflight),
		};

		memcpy(b, &w, sizeof(w));
		return;
	}
	case DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY: {
		struct ddsnap_error_wire w = {
			.error = cpu_to_le32((u32)m->error.error),
			.culprit = cpu_to_le16(m->error.culprit),
			.text_len = cpu_to_le16(m->error.len),
		};

		memcpy(b, &w, sizeof(w));
		memcpy(b + sizeof(w), m->error.text, m->error.len);
		return;
	}
	default:
		return;
	}
}

ssize_t wire_pack(const struct wire_msg *m, void *buf, size_t size, const char **why)
{
	const struct wire_layout *l;
	struct ddsnap_head_wire h;
	size_t body;
	int r;

	r = wire_validate(m, why);
	if (r)
		return r;
	l = wire_layout(m->type);
	body = wire_body_size(m, l);
	if (size < WIRE_HEAD_SIZE + body)
		return wire_fail(why, "buffer too small", -ENOSPC);
	h = (struct ddsnap_head_wire){
		.magic = cpu_to_le32(DDSNAP_WIRE_MAGIC),
		.type = cpu_to_le16(m->type),
		.seq = cpu_to_le32(m->seq),
		.length = cpu_to_le32((u32)body),
	};
	memcpy(buf, &h, sizeof(h));
	memset((u8 *)buf + WIRE_HEAD_SIZE, 0, body);
	wire_pack_body(m, (u8 *)buf + WIRE_HEAD_SIZE);
	return (ssize_t)(WIRE_HEAD_SIZE + body);
}

/*----------------------------------------------------------------*/

int wire_check_reply(const struct wire_msg *query, const struct wire_msg *reply, const char **why)
{
	u32 k = 0;

	if (reply->seq != query->seq)
		return wire_fail(why, "reply to another sequence id", -EPROTO);
	if (reply->type == (DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY))
		return 0;
	if (reply->type != (query->type | DDSNAP_MSG_REPLY))
		return wire_fail(why, "reply type does not answer the request", -EPROTO);
	switch (query->type) {
	case DDSNAP_MSG_ORIGIN_WRITE:
		if (reply->origin_reply.nr != query->query.nr)
			return wire_fail(why, "origin reply range count differs", -EPROTO);
		for (u32 i = 0; i < query->query.nr; i++)
			if (reply->origin_reply.r[i].chunk != query->query.r[i].chunk ||
			    reply->origin_reply.r[i].count != query->query.r[i].count)
				return wire_fail(why, "origin reply range differs", -EPROTO);
		return 0;
	case DDSNAP_MSG_SNAPSHOT_READ:
	case DDSNAP_MSG_SNAPSHOT_WRITE:
		if (reply->map_reply.nr != wire_query_chunks(query))
			return wire_fail(why, "mapping count differs from the chunks asked",
					 -EPROTO);
		for (u32 i = 0; i < query->query.nr; i++)
			for (u32 c = 0; c < query->query.r[i].count; c++, k++)
				if (reply->map_reply.m[k].chunk != query->query.r[i].chunk + c)
					return wire_fail(why, "mapping for a chunk not asked",
							 -EPROTO);
		return 0;
	default:
		return 0;
	}
}
