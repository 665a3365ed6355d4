/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * deltafix.h - the file-backed sender and receiver the delta library's tests share
 * (test_delta_xfer, test_delta_pipeline).  Two snapshots A and B of one volume are files
 * "<dir>/send(1)" and "<dir>/send(2)" (the devstem convention of delta_xfer.h); the
 * receiver is "<dir>/recv" with its snapshot A "<dir>/recv(1)"; a changelist lists the
 * chunks that differ; streams are written to and applied from files through the library.
 * One fixture per test program (its group setup), not thread-safe; failures are cmocka
 * assertions.
 */
#ifndef DDSNAP_DELTAFIX_H
#define DDSNAP_DELTAFIX_H

#include "util/base.h"
#include "delta/delta_xfer.h"

#define DELTAFIX_TAG_A 1u
#define DELTAFIX_TAG_B 2u

struct deltafix {
	char dir[64];	     /* a fresh directory under /tmp */
	char send_stem[128]; /* "<dir>/send": the sender's devstem */
	char recv_stem[128]; /* "<dir>/recv": the receiver's devstem (its origin) */
	char tok_path[128];  /* "<dir>/token": where a receiver keeps its token */
	u32 chunk, nchunks;  /* the volume's geometry */
	size_t bytes;	     /* chunk * nchunks */
	u8 *a, *b;	     /* snapshot A's and B's bytes, the caller's to fill */
	unsigned io_depth;   /* deltafix_apply_from's (delta_apply_params); 0 by default */
};

/* Makes /tmp/<name>XXXXXX and the snapshot buffers (uninitialized).  Returns 0 or -1. */
int deltafix_init(struct deltafix *f, const char *name, u32 chunk, u32 nchunks);

/* Writes A and B (as filled by now) to the sender's snapshot files. */
void deltafix_publish(struct deltafix *f);

/*
 * Writes a changelist to @path from A (@src_tag DELTAFIX_TAG_A: the chunks where B differs)
 * or from nothing (DDSNAP_TAG_NONE: every chunk, a full delta) to B, for volume @uuid.
 */
void deltafix_changelist(struct deltafix *f, const char *path, u32 src_tag, const char uuid[16]);

/* Frees the buffers and removes the directory; returns system()'s status. */
int deltafix_fini(struct deltafix *f);

/* The receiver as before any delta: origin = A, snapshot A = A, no token. */
void deltafix_reset_receiver(struct deltafix *f);

/* True if @path has at least @off + @len bytes and its [@off, @off + @len) equals @want's. */
bool deltafix_same(const char *path, const u8 *want, size_t off, size_t len);

/* delta_create_stream with its output to @path (created or truncated). */
int deltafix_create_to(const char *path, struct delta_create_params *p,
		       struct delta_create_stats *st, struct delta_error *e);

/* delta_apply_stream of the stream in @path into the receiver, keeping its token at @token. */
int deltafix_apply_from(struct deltafix *f, const char *path, const char *token,
			struct delta_apply_stats *st, struct delta_error *e);

#endif
