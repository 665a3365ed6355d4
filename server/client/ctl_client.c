// SPDX-License-Identifier: GPL-2.0-only
/*
 * ctl_client.c - control protocol client (ctl_client.h).
 *
 * Calls are strictly request/reply on one connection, so a reply whose seq or type does not
 * match the request is a protocol error and the connection is not trusted further.
 */
#include "client/ctl_client.h"
#include "util/unixsock.h"
#include <string.h>
#include <unistd.h>

struct ctl_client {
	int fd;
	int timeout_ms;
	u32 seq;
	u32 chunk_bits;
	u64 origin_sectors;
	u8 uuid[16];
	u8 buf[sizeof(struct ddsnap_head_wire) + CTL_MAX_BODY];
};

int ctl_client_call(struct ctl_client *c, const struct ctl_msg *req, struct ctl_msg *reply,
		    char *why, size_t whylen)
{
	struct ctl_msg m = *req;
	const size_t head = sizeof(struct ddsnap_head_wire);
	const char *reason = NULL;
	size_t body;
	ssize_t n;
	int r;

	m.seq = ++c->seq;
	n = ctl_pack(&m, c->buf, sizeof(c->buf));
	if (n < 0)
		return why_printf(why, whylen, (int)n, "cannot encode %s", ctl_type_name(m.type));
	r = unixsock_write_full(c->fd, c->buf, (size_t)n);
	if (r)
		return why_printf(why, whylen, r, "sending to the server: %s", errmsg(r));
	r = unixsock_read_full(c->fd, c->buf, head);
	if (!r)
		r = ctl_frame(c->buf, &body, &reason);
	if (!r)
		r = unixsock_read_full(c->fd, c->buf + head, body);
	if (!r)
		r = ctl_unpack(c->buf, head + body, reply, &reason);
	if (r == -EPROTO)
		return why_printf(why, whylen, r, "malformed reply from the server: %s", reason);
	if (r == -EPIPE)
		return why_printf(why, whylen, r, "the server closed the connection");
	if (r == -EAGAIN)
		return why_printf(why, whylen, -ETIMEDOUT, "no reply from the server in %d ms",
				  c->timeout_ms);
	if (r)
		return why_printf(why, whylen, r, "reading from the server: %s", errmsg(r));
	if (reply->seq != m.seq || reply->type != (m.type | DDSNAP_MSG_REPLY))
		return why_printf(why, whylen, -EPROTO, "the server answered %s #%u to %s #%u",
				  ctl_type_name(reply->type), reply->seq, ctl_type_name(m.type),
				  m.seq);
	return 0;
}

int ctl_client_open(const char *sock, struct ctl_client **out, char *why, size_t whylen)
{
	struct ctl_client *c;
	struct ctl_msg req = {.type = CTL_HELLO, .version = CTL_VERSION}, reply = {0};
	int fd, r;

	fd = unixsock_connect(sock, 5000);
	if (fd < 0)
		return why_printf(why, whylen, fd, "cannot connect to server socket %s: %s", sock,
				  unixsock_errmsg(fd));
	c = xzalloc(sizeof(*c));
	c->fd = fd;
	ctl_client_set_timeout(c, CTL_CLIENT_TIMEOUT_MS);
	r = ctl_client_call(c, &req, &reply, why, whylen);
	if (r)
		goto out_close;
	if (reply.result.error) {
		r = reply.result.error;
		why_printf(why, whylen, r, "server refused the connection: %s", reply.result.text);
		goto out_close;
	}
	if (reply.version != CTL_VERSION) {
		r = why_printf(why, whylen, -EPROTONOSUPPORT,
			       "server speaks control protocol version %u, this ddsnap speaks %u",
			       reply.version, CTL_VERSION);
		goto out_close;
	}
	c->chunk_bits = reply.chunk_bits;
	c->origin_sectors = reply.origin_sectors;
	memcpy(c->uuid, reply.uuid, sizeof(c->uuid));
	*out = c;
	return 0;
out_close:
	ctl_client_close(c);
	return r;
}

void ctl_client_close(struct ctl_client *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

void ctl_client_set_timeout(struct ctl_client *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms;
	unixsock_set_timeout(c->fd, timeout_ms);
}

u32 ctl_client_chunk_bits(const struct ctl_client *c)
{
	return c->chunk_bits;
}

u64 ctl_client_origin_sectors(const struct ctl_client *c)
{
	return c->origin_sectors;
}

void ctl_client_uuid(const struct ctl_client *c, u8 uuid[16])
{
	memcpy(uuid, c->uuid, sizeof(c->uuid));
}

int ctl_client_list(struct ctl_client *c, struct ctl_snap **snaps, u32 *n, struct ctl_result *res,
		    char *why, size_t whylen)
{
	struct ctl_snap page[CTL_LIST_PAGE] = {0};
	struct ctl_msg req = {.type = CTL_LIST};
	struct ctl_snap *all = NULL;
	u32 have = 0;
	int r;

	memset(res, 0, sizeof(*res));
	do {
		struct ctl_msg reply = {.snaps = page, .cap = CTL_LIST_PAGE};

		r = ctl_client_call(c, &req, &reply, why, whylen);
		if (r || reply.result.error) {
			*res = reply.result;
			free(all);
			return r;
		}
		all = xrealloc(all, (have + reply.count) * sizeof(*all));
		memcpy(all + have, page, reply.count * sizeof(*all));
		have += reply.count;
		if (reply.next != CTL_CURSOR_END && reply.next <= req.cursor) {
			free(all);
			return why_printf(why, whylen, -EPROTO, "LIST cursor did not advance");
		}
		req.cursor = reply.next;
	} while (req.cursor != CTL_CURSOR_END);
	*snaps = all;
	*n = have;
	return 0;
}

int ctl_client_changelist(struct ctl_client *c, u32 from, u32 to,
			  int (*fn)(const u64 *chunks, u32 n, void *arg), void *arg,
			  struct ctl_result *res, char *why, size_t whylen)
{
	static __thread u64 page[CTL_CHANGELIST_PAGE];
	struct ctl_msg req = {.type = CTL_CHANGELIST, .from = from, .to = to};
	u64 last = 0;
	bool any = false;
	int r;

	memset(res, 0, sizeof(*res));
	do {
		struct ctl_msg reply = {.chunks = page, .cap = CTL_CHANGELIST_PAGE};

		r = ctl_client_call(c, &req, &reply, why, whylen);
		if (r || reply.result.error) {
			*res = reply.result;
			return r;
		}
		if (reply.count && any && page[0] <= last)
			return why_printf(why, whylen, -EPROTO, "changelist pages overlap");
		if (reply.count) {
			last = page[reply.count - 1];
			any = true;
			r = fn(page, reply.count, arg);
			if (r)
				return r;
		}
		if (reply.next != CTL_CURSOR_END && reply.next <= req.cursor && req.cursor)
			return why_printf(why, whylen, -EPROTO,
					  "CHANGELIST cursor did not advance");
		req.cursor = reply.next;
	} while (req.cursor != CTL_CURSOR_END);
	return 0;
}
