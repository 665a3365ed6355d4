/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kpeer.h - the tests' stand-in for the kernel target: a wire-protocol client of a real
 * server (connect, IDENTIFY, queries, FINISH), which the server tests drive well or badly.
 * Failures of the transport are cmocka assertions; what the server answers is returned.
 */
#ifndef DDSNAP_KPEER_H
#define DDSNAP_KPEER_H

#include "util/base.h"
#include "proto/wire.h"

struct kconn {
	int fd;
	u32 seq; /* of the last message sent */
};

/* A zeroed message of @type and @seq (free() it). */
struct wire_msg *kmsg(u16 type, u32 seq);
/* Sends @m on @k. */
void ksend(struct kconn *k, const struct wire_msg *m);
/* Sends @m on @k; returns 0 or -errno (-EPIPE: the server closed the connection). */
int ksend_try(struct kconn *k, const struct wire_msg *m);
/* Receives one message; returns 0, -EAGAIN if none arrives within @ms, or -errno. */
int krecv(struct kconn *k, struct wire_msg *m, int ms);
/*
 * Connects to @sock as the device of @tag (@sectors long) speaking @version and sends
 * IDENTIFY.  Returns its reply (free() it), or NULL when the server closed without one.
 */
struct wire_msg *kidentify_at(struct kconn *k, const char *sock, u32 tag, u32 version, u64 sectors);
/* Sends a query of one range. */
void kquery(struct kconn *k, u16 type, u64 chunk, u32 count, u32 flags);
/* Releases read lock @lock. */
void kfinish(struct kconn *k, u64 lock);

#endif
