// SPDX-License-Identifier: GPL-2.0-only
/*
 * ctl.c - encode and decode control messages (ctl.h).
 *
 * The decoder trusts nothing: it checks the header, then that the body length is exactly
 * what the type and its counts imply, then every count against its page bound and the
 * caller's capacity, then reserved fields, before copying a field out.  Text is copied with
 * its length and NUL-terminated, so a reply can never make the CLI print past a buffer.
 */
#include "proto/ctl.h"
#include <stdarg.h>
#include <string.h>

#define HEAD_SIZE sizeof(struct ddsnap_head_wire)

static const char *const type_names[] = {
	"HELLO", "CREATE", "DELETE",	 "PRIORITY", "USECOUNT",
	"LIST",	 "STATUS", "CHANGELIST", "SYNC",     "REVERT",
};

const char *ctl_type_name(u16 type)
{
	static const char *const reply_names[] = {
		"HELLO|REPLY",	  "CREATE|REPLY", "DELETE|REPLY", "PRIORITY|REPLY",
		"USECOUNT|REPLY", "LIST|REPLY",	  "STATUS|REPLY", "CHANGELIST|REPLY",
		"SYNC|REPLY",	  "REVERT|REPLY",
	};

	if (!ctl_is_ctl_type(type))
		return "UNKNOWN";
	if (type & DDSNAP_MSG_REPLY)
		return reply_names[(type & DDSNAP_MSG_TYPE_MASK) - CTL_FIRST];
	return type_names[type - CTL_FIRST];
}

void ctl_result_set(struct ctl_result *r, s32 error, const char *fmt, ...)
{
	va_list ap;

	r->error = error;
	r->text[0] = 0;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(r->text, sizeof(r->text), fmt, ap);
		va_end(ap);
	}
}

/*----------------------------------------------------------------
 * Encoding
 *--------------------------------------------------------------*/

static void pack_result(struct ctl_result_wire *w, const struct ctl_result *r)
{
	size_t n = strnlen(r->text, CTL_MAX_TEXT);

	memset(w, 0, sizeof(*w));
	w->error = cpu_to_le32((u32)r->error);
	w->text_len = cpu_to_le16((u16)n);
	w->value = cpu_to_le64(r->value);
	memcpy(w->text, r->text, n);
}

static void pack_snap(struct ctl_snap_wire *w, const struct ctl_snap *s)
{
	memset(w, 0, sizeof(*w));
	w->tag = cpu_to_le32(s->tag);
	w->state = cpu_to_le32(s->state);
	w->gen = cpu_to_le64(s->gen);
	w->ctime = cpu_to_le64(s->ctime);
	w->priority = cpu_to_le32((u32)s->priority);
	w->usecount = cpu_to_le32(s->usecount);
	w->unique_bytes = cpu_to_le64(s->unique_bytes);
	w->written_bytes = cpu_to_le64(s->written_bytes);
	w->devices = cpu_to_le32(s->devices);
	w->flags = cpu_to_le32(s->flags);
	memcpy(w->origin_uuid, s->origin_uuid, sizeof(w->origin_uuid));
	w->origin_gen = cpu_to_le64(s->origin_gen);
}

static void pack_status(struct ctl_status_reply_wire *w, const struct ctl_status *s)
{
	w->gen = cpu_to_le64(s->gen);
	w->txg = cpu_to_le64(s->txg);
	w->chunk_size = cpu_to_le64(s->chunk_size);
	w->origin_bytes = cpu_to_le64(s->origin_bytes);
	w->data_total = cpu_to_le64(s->data_total);
	w->data_free = cpu_to_le64(s->data_free);
	w->meta_total = cpu_to_le64(s->meta_total);
	w->meta_free = cpu_to_le64(s->meta_free);
	w->exceptions = cpu_to_le64(s->exceptions);
	w->snapshots = cpu_to_le64(s->snapshots);
	w->reserve_chunks = cpu_to_le64(s->reserve_chunks);
	w->devices = cpu_to_le32(s->devices);
	w->readlocks = cpu_to_le32(s->readlocks);
	w->log_used = cpu_to_le64(s->log_used);
	w->log_size = cpu_to_le64(s->log_size);
	w->origin_queries = cpu_to_le64(s->origin_queries);
	w->origin_batches = cpu_to_le64(s->origin_batches);
}

/* The body size of @m, or 0 if it cannot be encoded. */
static size_t body_size(const struct ctl_msg *m)
{
	bool reply = m->type & DDSNAP_MSG_REPLY;

	switch (m->type & DDSNAP_MSG_TYPE_MASK) {
	case CTL_HELLO:
		return reply ? sizeof(struct ctl_hello_reply_wire) : sizeof(struct ctl_hello_wire);
	case CTL_CREATE:
		if (!reply && m->has_origin)
			return sizeof(struct ctl_create_from_wire);
		/* fall through */
	case CTL_DELETE:
	case CTL_PRIORITY:
	case CTL_USECOUNT:
	case CTL_REVERT:
		return reply ? sizeof(struct ctl_result_wire) : sizeof(struct ctl_tag_wire);
	case CTL_LIST:
		if (!reply)
			return sizeof(struct ctl_cursor_wire);
		if (m->count > CTL_LIST_PAGE || (m->count && !m->snaps))
			return 0;
		return sizeof(struct ctl_list_reply_wire) + m->count * sizeof(struct ctl_snap_wire);
	case CTL_STATUS:
		return reply ? sizeof(struct ctl_status_reply_wire) : 0;
	case CTL_CHANGELIST:
		if (!reply)
			return sizeof(struct ctl_changelist_wire);
		if (m->count > CTL_CHANGELIST_PAGE || (m->count && !m->chunks))
			return 0;
		return sizeof(struct ctl_changelist_reply_wire) + m->count * sizeof(__le64);
	case CTL_SYNC:
		return reply ? sizeof(struct ctl_result_wire) : 0;
	}
	return 0;
}

static bool body_may_be_empty(u16 type)
{
	return type == CTL_STATUS || type == CTL_SYNC;
}

ssize_t ctl_pack(const struct ctl_msg *m, void *buf, size_t size)
{
	struct ddsnap_head_wire *h = buf;
	u16 t = m->type & DDSNAP_MSG_TYPE_MASK;
	bool reply = m->type & DDSNAP_MSG_REPLY;
	size_t body;
	void *b;

	if (!ctl_is_ctl_type(m->type))
		return -EINVAL;
	body = body_size(m);
	if (!body && !(body_may_be_empty(t) && !reply))
		return -EINVAL;
	if (size < HEAD_SIZE + body)
		return -ENOSPC;
	memset(buf, 0, HEAD_SIZE + body);
	h->magic = cpu_to_le32(DDSNAP_WIRE_MAGIC);
	h->type = cpu_to_le16(m->type);
	h->seq = cpu_to_le32(m->seq);
	h->length = cpu_to_le32((u32)body);
	b = (char *)buf + HEAD_SIZE;
	if (reply)
		pack_result(b, &m->result);

	switch (t) {
	case CTL_HELLO:
		if (reply) {
			struct ctl_hello_reply_wire *w = b;

			w->version = cpu_to_le32(m->version);
			w->chunk_bits = cpu_to_le32(m->chunk_bits);
			w->origin_sectors = cpu_to_le64(m->origin_sectors);
			w->gen = cpu_to_le64(m->gen);
			memcpy(w->uuid, m->uuid, sizeof(w->uuid));
		} else {
			((struct ctl_hello_wire *)b)->version = cpu_to_le32(m->version);
		}
		break;
	case CTL_CREATE:
	case CTL_DELETE:
	case CTL_PRIORITY:
	case CTL_USECOUNT:
	case CTL_REVERT:
		if (!reply) {
			struct ctl_tag_wire *w = b;

			w->tag = cpu_to_le32(m->tag);
			w->arg = cpu_to_le64((u64)m->arg);
		}
		if (!reply && t == CTL_CREATE && m->has_origin) {
			struct ctl_create_from_wire *w = b;

			memcpy(w->origin_uuid, m->origin_uuid, sizeof(w->origin_uuid));
			w->origin_gen = cpu_to_le64(m->origin_gen);
		}
		break;
	case CTL_LIST:
		if (reply) {
			struct ctl_list_reply_wire *w = b;

			w->total = cpu_to_le32(m->total);
			w->count = cpu_to_le32(m->count);
			w->next = cpu_to_le64(m->next);
			for (u32 i = 0; i < m->count; i++)
				pack_snap(&w->snaps[i], &m->snaps[i]);
		} else {
			((struct ctl_cursor_wire *)b)->cursor = cpu_to_le64(m->cursor);
		}
		break;
	case CTL_STATUS:
		if (reply)
			pack_status(b, &m->status);
		break;
	case CTL_CHANGELIST:
		if (reply) {
			struct ctl_changelist_reply_wire *w = b;

			w->count = cpu_to_le32(m->count);
			w->chunk_bits = cpu_to_le32(m->chunk_bits);
			w->next = cpu_to_le64(m->next);
			for (u32 i = 0; i < m->count; i++)
				w->chunks[i] = cpu_to_le64(m->chunks[i]);
		} else {
			struct ctl_changelist_wire *w = b;

			w->from = cpu_to_le32(m->from);
			w->to = cpu_to_le32(m->to);
			w->cursor = cpu_to_le64(m->cursor);
		}
		break;
	}
	return (ssize_t)(HEAD_SIZE + body);
}

/*----------------------------------------------------------------
 * Decoding
 *--------------------------------------------------------------*/

#define REFUSE(reason)           \
	do {                     \
		*why = (reason); \
		return -EPROTO;  \
	} while (0)

int ctl_frame(const void *head, size_t *body, const char **why)
{
	const struct ddsnap_head_wire *h = head;
	u32 len = le32_to_cpu(h->length);

	if (le32_to_cpu(h->magic) != DDSNAP_WIRE_MAGIC)
		REFUSE("bad magic");
	if (!ctl_is_ctl_type(le16_to_cpu(h->type)))
		REFUSE("not a control message type");
	if (h->flags)
		REFUSE("nonzero header flags");
	if (len > CTL_MAX_BODY)
		REFUSE("body longer than any control message");
	*body = len;
	return 0;
}

static int unpack_result(const struct ctl_result_wire *w, struct ctl_result *r, const char **why)
{
	u16 n = le16_to_cpu(w->text_len);

	if (n > CTL_MAX_TEXT)
		REFUSE("result text longer than its field");
	if (w->reserved)
		REFUSE("nonzero reserved field in result");
	r->error = (s32)le32_to_cpu(w->error);
	if (r->error > 0 || r->error < -4095)
		REFUSE("result error is not a negative errno");
	r->value = le64_to_cpu(w->value);
	memcpy(r->text, w->text, n);
	r->text[n] = 0;
	return 0;
}

static void unpack_snap(struct ctl_snap *s, const struct ctl_snap_wire *w)
{
	s->tag = le32_to_cpu(w->tag);
	s->state = le32_to_cpu(w->state);
	s->gen = le64_to_cpu(w->gen);
	s->ctime = le64_to_cpu(w->ctime);
	s->priority = (s32)le32_to_cpu(w->priority);
	s->usecount = le32_to_cpu(w->usecount);
	s->unique_bytes = le64_to_cpu(w->unique_bytes);
	s->written_bytes = le64_to_cpu(w->written_bytes);
	s->devices = le32_to_cpu(w->devices);
	s->flags = le32_to_cpu(w->flags);
	memcpy(s->origin_uuid, w->origin_uuid, sizeof(s->origin_uuid));
	s->origin_gen = le64_to_cpu(w->origin_gen);
}

static void unpack_status(struct ctl_status *s, const struct ctl_status_reply_wire *w)
{
	s->gen = le64_to_cpu(w->gen);
	s->txg = le64_to_cpu(w->txg);
	s->chunk_size = le64_to_cpu(w->chunk_size);
	s->origin_bytes = le64_to_cpu(w->origin_bytes);
	s->data_total = le64_to_cpu(w->data_total);
	s->data_free = le64_to_cpu(w->data_free);
	s->meta_total = le64_to_cpu(w->meta_total);
	s->meta_free = le64_to_cpu(w->meta_free);
	s->exceptions = le64_to_cpu(w->exceptions);
	s->snapshots = le64_to_cpu(w->snapshots);
	s->reserve_chunks = le64_to_cpu(w->reserve_chunks);
	s->devices = le32_to_cpu(w->devices);
	s->readlocks = le32_to_cpu(w->readlocks);
	s->log_used = le64_to_cpu(w->log_used);
	s->log_size = le64_to_cpu(w->log_size);
	s->origin_queries = le64_to_cpu(w->origin_queries);
	s->origin_batches = le64_to_cpu(w->origin_batches);
}

/* Checks that the body is exactly @fixed bytes plus @count entries of @entry bytes. */
static int check_len(size_t len, size_t fixed, u64 count, size_t entry, const char **why)
{
	if (len < fixed)
		REFUSE("body shorter than its type");
	if (len != fixed + count * entry)
		REFUSE("body length does not match its type and count");
	return 0;
}

int ctl_unpack(const void *buf, size_t len, struct ctl_msg *m, const char **why)
{
	const struct ddsnap_head_wire *h = buf;
	const void *b = (const char *)buf + HEAD_SIZE;
	size_t body;
	u16 type, t;
	bool reply;
	int r;

	if (len < HEAD_SIZE)
		REFUSE("shorter than a header");
	r = ctl_frame(buf, &body, why);
	if (r)
		return r;
	if (body != len - HEAD_SIZE)
		REFUSE("header length does not match the message size");
	type = le16_to_cpu(h->type);
	t = type & DDSNAP_MSG_TYPE_MASK;
	reply = type & DDSNAP_MSG_REPLY;
	m->type = type;
	m->seq = le32_to_cpu(h->seq);
	memset(&m->result, 0, sizeof(m->result));
	if (reply) {
		if (body < sizeof(struct ctl_result_wire))
			REFUSE("reply shorter than a result");
		r = unpack_result(b, &m->result, why);
		if (r)
			return r;
	}

	switch (t) {
	case CTL_HELLO:
		if (reply) {
			const struct ctl_hello_reply_wire *w = b;

			r = check_len(body, sizeof(*w), 0, 0, why);
			if (r)
				return r;
			m->version = le32_to_cpu(w->version);
			m->chunk_bits = le32_to_cpu(w->chunk_bits);
			m->origin_sectors = le64_to_cpu(w->origin_sectors);
			m->gen = le64_to_cpu(w->gen);
			memcpy(m->uuid, w->uuid, sizeof(m->uuid));
			if (!m->result.error && (m->chunk_bits < DDSNAP_CHUNK_BITS_MIN ||
						 m->chunk_bits > DDSNAP_CHUNK_BITS_MAX))
				REFUSE("chunk size out of range");
		} else {
			const struct ctl_hello_wire *w = b;

			r = check_len(body, sizeof(*w), 0, 0, why);
			if (r)
				return r;
			if (w->reserved)
				REFUSE("nonzero reserved field in HELLO");
			m->version = le32_to_cpu(w->version);
		}
		return 0;
	case CTL_CREATE:
	case CTL_DELETE:
	case CTL_PRIORITY:
	case CTL_USECOUNT:
	case CTL_REVERT:
		if (reply)
			return check_len(body, sizeof(struct ctl_result_wire), 0, 0, why);
		{
			const struct ctl_tag_wire *w = b;

			m->has_origin = false;
			if (t == CTL_CREATE && body == sizeof(struct ctl_create_from_wire)) {
				const struct ctl_create_from_wire *cw = b;

				m->has_origin = true;
				memcpy(m->origin_uuid, cw->origin_uuid, sizeof(m->origin_uuid));
				m->origin_gen = le64_to_cpu(cw->origin_gen);
				if (!m->origin_gen)
					REFUSE("CREATE with an origin of gen 0");
			} else {
				r = check_len(body, sizeof(*w), 0, 0, why);
				if (r)
					return r;
			}
			if (w->reserved)
				REFUSE("nonzero reserved field in request");
			m->tag = le32_to_cpu(w->tag);
			m->arg = (s64)le64_to_cpu(w->arg);
			if (m->tag > DDSNAP_TAG_MAX)
				REFUSE("tag out of range");
		}
		return 0;
	case CTL_LIST:
		if (reply) {
			const struct ctl_list_reply_wire *w = b;

			if (body < sizeof(*w))
				REFUSE("LIST reply too short");
			m->total = le32_to_cpu(w->total);
			m->count = le32_to_cpu(w->count);
			m->next = le64_to_cpu(w->next);
			if (m->count > CTL_LIST_PAGE || m->count > m->cap || m->count > m->total)
				REFUSE("LIST reply count beyond its page");
			r = check_len(body, sizeof(*w), m->count, sizeof(w->snaps[0]), why);
			if (r)
				return r;
			for (u32 i = 0; i < m->count; i++)
				unpack_snap(&m->snaps[i], &w->snaps[i]);
		} else {
			r = check_len(body, sizeof(struct ctl_cursor_wire), 0, 0, why);
			if (r)
				return r;
			m->cursor = le64_to_cpu(((const struct ctl_cursor_wire *)b)->cursor);
		}
		return 0;
	case CTL_STATUS:
		if (reply) {
			r = check_len(body, sizeof(struct ctl_status_reply_wire), 0, 0, why);
			if (r)
				return r;
			unpack_status(&m->status, b);
			return 0;
		}
		return check_len(body, 0, 0, 0, why);
	case CTL_CHANGELIST:
		if (reply) {
			const struct ctl_changelist_reply_wire *w = b;

			if (body < sizeof(*w))
				REFUSE("CHANGELIST reply too short");
			m->count = le32_to_cpu(w->count);
			m->chunk_bits = le32_to_cpu(w->chunk_bits);
			m->next = le64_to_cpu(w->next);
			if (m->count > CTL_CHANGELIST_PAGE || m->count > m->cap)
				REFUSE("CHANGELIST reply count beyond its page");
			r = check_len(body, sizeof(*w), m->count, sizeof(__le64), why);
			if (r)
				return r;
			for (u32 i = 0; i < m->count; i++) {
				m->chunks[i] = le64_to_cpu(w->chunks[i]);
				if (i && m->chunks[i] <= m->chunks[i - 1])
					REFUSE("CHANGELIST chunks not strictly increasing");
			}
		} else {
			const struct ctl_changelist_wire *w = b;

			r = check_len(body, sizeof(*w), 0, 0, why);
			if (r)
				return r;
			m->from = le32_to_cpu(w->from);
			m->to = le32_to_cpu(w->to);
			m->cursor = le64_to_cpu(w->cursor);
			if (m->to == DDSNAP_TAG_NONE)
				REFUSE("CHANGELIST target cannot be 'none'");
			if (m->from == DDSNAP_TAG_HEAD)
				REFUSE("CHANGELIST source cannot be the live origin");
		}
		return 0;
	case CTL_SYNC:
		return check_len(body, reply ? sizeof(struct ctl_result_wire) : 0, 0, 0, why);
	}
	REFUSE("unknown control message type");
}
