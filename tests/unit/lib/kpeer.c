// SPDX-License-Identifier: GPL-2.0-only
/*
 * kpeer.c - a wire-protocol client playing the kernel target (kpeer.h).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "kpeer.h"
#include "util/unixsock.h"

struct wire_msg *kmsg(u16 type, u32 seq)
{
	struct wire_msg *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->type = type;
	m->seq = seq;
	return m;
}

int ksend_try(struct kconn *k, const struct wire_msg *m)
{
	u8 buf[WIRE_MAX_MSG];
	const char *why = NULL;
	ssize_t n = wire_pack(m, buf, sizeof(buf), &why);

	if (n < 0)
		fail_msg("wire_pack: %s", why);
	return unixsock_write_full(k->fd, buf, (size_t)n);
}

void ksend(struct kconn *k, const struct wire_msg *m)
{
	assert_int_equal(ksend_try(k, m), 0);
}

int krecv(struct kconn *k, struct wire_msg *m, int ms)
{
	u8 buf[WIRE_MAX_MSG];
	struct pollfd p = {.fd = k->fd, .events = POLLIN};
	const char *why = NULL;
	size_t total = 0;
	int r;

	if (poll(&p, 1, ms) == 0)
		return -EAGAIN;
	r = unixsock_read_full(k->fd, buf, WIRE_HEAD_SIZE);
	if (r)
		return r;
	r = wire_frame(buf, WIRE_HEAD_SIZE, &total, &why);
	if (r == -EWOULDBLOCK)
		r = unixsock_read_full(k->fd, buf + WIRE_HEAD_SIZE, total - WIRE_HEAD_SIZE);
	else if (!r)
		total = WIRE_HEAD_SIZE;
	if (!r)
		r = wire_unpack(buf, total, m, &why);
	if (r == -EPROTO)
		fail_msg("server sent a malformed message: %s", why);
	return r;
}

struct wire_msg *kidentify_at(struct kconn *k, const char *sock, u32 tag, u32 version, u64 sectors)
{
	struct wire_msg *m = kmsg(DDSNAP_MSG_IDENTIFY, ++k->seq);

	k->fd = unixsock_connect(sock, 2000);
	assert_true(k->fd >= 0);
	m->identify.version = version;
	m->identify.tag = tag;
	m->identify.dev_sectors = sectors;
	ksend(k, m);
	if (krecv(k, m, 5000)) {
		free(m);
		return NULL;
	}
	return m;
}

void kquery(struct kconn *k, u16 type, u64 chunk, u32 count, u32 flags)
{
	struct wire_msg *m = kmsg(type, ++k->seq);

	m->query.nr = 1;
	m->query.r[0] = (struct wire_range){chunk, count, flags};
	ksend(k, m);
	free(m);
}

void kfinish(struct kconn *k, u64 lock)
{
	struct wire_msg *m = kmsg(DDSNAP_MSG_FINISH, ++k->seq);

	m->finish.nr = 1;
	m->finish.lock[0] = lock;
	ksend(k, m);
	free(m);
}
