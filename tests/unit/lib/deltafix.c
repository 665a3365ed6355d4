// SPDX-License-Identifier: GPL-2.0-only
/*
 * deltafix.c - the delta tests' file-backed sender and receiver (deltafix.h).
 */
#include "deltafix.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>
#include "delta/changelist.h"
#include "testfiles.h"

int deltafix_init(struct deltafix *f, const char *name, u32 chunk, u32 nchunks)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/%sXXXXXX", name);
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->send_stem, sizeof(f->send_stem), "%s/send", f->dir);
	snprintf(f->recv_stem, sizeof(f->recv_stem), "%s/recv", f->dir);
	snprintf(f->tok_path, sizeof(f->tok_path), "%s/token", f->dir);
	f->chunk = chunk;
	f->nchunks = nchunks;
	f->bytes = (size_t)chunk * nchunks;
	f->a = xmalloc(f->bytes);
	f->b = xmalloc(f->bytes);
	return 0;
}

void deltafix_publish(struct deltafix *f)
{
	put_file(pathf("%s(%u)", f->send_stem, DELTAFIX_TAG_A), f->a, f->bytes);
	put_file(pathf("%s(%u)", f->send_stem, DELTAFIX_TAG_B), f->b, f->bytes);
}

void deltafix_changelist(struct deltafix *f, const char *path, u32 src_tag, const char uuid[16])
{
	bool full = src_tag == DDSNAP_TAG_NONE;
	struct changelist_header h = {.chunk_size = f->chunk,
				      .src_tag = src_tag,
				      .tgt_tag = DELTAFIX_TAG_B,
				      .src_gen = full ? 0 : 1,
				      .tgt_gen = 2,
				      .volume_chunks = f->nchunks};
	struct changelist_writer *w;

	memcpy(h.uuid, uuid, sizeof(h.uuid));
	assert_int_equal(changelist_create(&w, path, &h), 0);
	for (u32 c = 0; c < f->nchunks; c++)
		if (full ||
		    memcmp(f->a + (size_t)c * f->chunk, f->b + (size_t)c * f->chunk, f->chunk))
			assert_int_equal(changelist_append(w, c), 0);
	assert_int_equal(changelist_commit(w), 0);
}

int deltafix_fini(struct deltafix *f)
{
	free(f->a);
	free(f->b);
	return system(pathf("rm -rf %s", f->dir));
}

void deltafix_reset_receiver(struct deltafix *f)
{
	put_file(f->recv_stem, f->a, f->bytes);
	put_file(pathf("%s(%u)", f->recv_stem, DELTAFIX_TAG_A), f->a, f->bytes);
	unlink(f->tok_path);
}

bool deltafix_same(const char *path, const u8 *want, size_t off, size_t len)
{
	size_t n;
	u8 *p = get_file(path, &n);
	bool eq = n >= off + len && !memcmp(p + off, want + off, len);

	free(p);
	return eq;
}

int deltafix_create_to(const char *path, struct delta_create_params *p,
		       struct delta_create_stats *st, struct delta_error *e)
{
	int rc;

	p->out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(p->out_fd >= 0);
	rc = delta_create_stream(p, st, e);
	close(p->out_fd);
	return rc;
}

int deltafix_apply_from(struct deltafix *f, const char *path, const char *token,
			struct delta_apply_stats *st, struct delta_error *e)
{
	struct delta_apply_params p = {.cmd = "delta",
				       .name = path,
				       .devstem = f->recv_stem,
				       .token = token,
				       .io_depth = f->io_depth};
	int rc;

	p.in_fd = open(path, O_RDONLY);
	assert_true(p.in_fd >= 0);
	rc = delta_apply_stream(&p, st, e);
	close(p.in_fd);
	return rc;
}
