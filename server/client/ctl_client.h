/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ctl_client.h - the CLI side of the control protocol (ctl.h): connect to a running server,
 * say HELLO, and make calls.
 *
 * Return values separate the two ways a call can fail: a negative errno from these
 * functions means the conversation itself failed (no server, timeout, malformed reply);
 * a refusal by the server comes back as 0 with reply->result.error < 0 and its reason in
 * reply->result.text.  One client is used by one thread at a time.
 */
#ifndef DDSNAP_CTL_CLIENT_H
#define DDSNAP_CTL_CLIENT_H

#include "proto/ctl.h"

#define CTL_CLIENT_TIMEOUT_MS 600000 /* a create waits for copy-outs to drain; be patient */

struct ctl_client;

/*
 * Connects to the server at @sock and exchanges HELLO.  Returns 0 and *@out, or -errno:
 * -ENOENT/-ECONNREFUSED (no server there), -EPROTO (not a ddsnap server, or one that sent
 * garbage), -EPROTONOSUPPORT (incompatible version); @why gets a sentence for the user.
 */
int ctl_client_open(const char *sock, struct ctl_client **out, char *why, size_t whylen);
void ctl_client_close(struct ctl_client *c);

/* Sets how long a call waits for its reply (default CTL_CLIENT_TIMEOUT_MS). */
void ctl_client_set_timeout(struct ctl_client *c, int timeout_ms);

/* What the server said in HELLO. */
u32 ctl_client_chunk_bits(const struct ctl_client *c);
u64 ctl_client_origin_sectors(const struct ctl_client *c);
void ctl_client_uuid(const struct ctl_client *c, u8 uuid[16]);

/*
 * Sends @req (seq is filled in) and waits for its reply into @reply; the caller sets
 * reply->snaps/chunks/cap when the reply carries arrays.  Returns 0 or -errno (transport
 * or protocol failure; @why explains). Blocks up to CTL_CLIENT_TIMEOUT_MS.
 */
int ctl_client_call(struct ctl_client *c, const struct ctl_msg *req, struct ctl_msg *reply,
		    char *why, size_t whylen);

/*
 * Fetches every snapshot (all LIST pages) into a malloc'ed array.  Returns 0 with *@snaps
 * and *@n, a server refusal as 0 with @res->error set, or -errno.
 */
int ctl_client_list(struct ctl_client *c, struct ctl_snap **snaps, u32 *n, struct ctl_result *res,
		    char *why, size_t whylen);

/*
 * Streams the changelist @from -> @to (DDSNAP_TAG_NONE / DDSNAP_TAG_HEAD allowed) page by page
 * to @fn, which returns 0 to go on or a negative errno to stop (returned as is).
 */
int ctl_client_changelist(struct ctl_client *c, u32 from, u32 to,
			  int (*fn)(const u64 *chunks, u32 n, void *arg), void *arg,
			  struct ctl_result *res, char *why, size_t whylen);

#endif
