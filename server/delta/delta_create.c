// SPDX-License-Identifier: GPL-2.0-only
/*
 * delta_create.c - make a delta stream from a changelist and two snapshot devices
 * (delta_xfer.h; `ddsnap delta create` and `ddsnap send`).
 *
 * What.  Validates the whole changelist first (a corrupt list must not yield a plausible
 * delta), then walks it, grouping consecutive chunks into extents of at most 1 MiB, split
 * where chunks turn zero or non-zero: zero chunks become zero records (discarded chunks
 * must reach the replica, the ZFS hole-birth lesson).  Data extents are encoded in batches
 * (xdelta3 runs once per batch), checksummed (target, and source when read) and written in
 * chunk order.  Devices are read through delta_dev.c (O_DIRECT, or dropped pages).
 *
 * Invariants: records leave in increasing chunk order, each extent's checksums are of the
 * bytes read from the devices, and with a resume token the stream starts exactly at the
 * token's record, chunk and running checksum.
 *
 * Failure and crash.  Nothing here writes a device: the snapshots are only read.  A failure
 * leaves a stream without a valid trailer, which every reader refuses; its records up to
 * the failure are intact, so a receiver's token taken from them resumes correctly.  The
 * output is neither fsynced nor closed here (the caller owns it).
 */
#include "delta/delta_xfer_internal.h"
#include <string.h>
#include "delta/changelist.h"
#include "util/xfer.h"

static bool all_zero(const u8 *p, size_t len)
{
	return !len || (p[0] == 0 && !memcmp(p, p + 1, len - 1));
}

/* ---- output with rate limit and progress ---- */

struct out {
	int fd;
	struct xfer_rate rate;
	struct xfer_progress prog;
	u64 bytes;
};

static int out_write(void *arg, const void *buf, size_t len)
{
	struct out *o = arg;
	int rc = delta_fd_write(&o->fd, buf, len);

	if (rc)
		return rc;
	o->bytes += len;
	xfer_rate_account(&o->rate, len);
	return 0;
}

struct item {
	bool zero;
	u64 chunk;
	u32 count;
	unsigned job; /* data: index into jobs */
};

struct create {
	struct delta_codec *dc;
	struct delta_writer *w;
	struct delta_dev tgt, src;
	bool use_src;
	u32 chunk_size;
	/* the batch */
	struct item *items;
	unsigned nitems;
	struct delta_job *jobs;
	unsigned njobs;
	u8 *tbuf, *sbuf, *obuf; /* batch target, source and payload areas */
	size_t tfill, ofill;
	/* stats */
	u64 data_bytes, chunks_done;
	struct delta_error *e;
};

static int create_flush(struct create *c, struct out *o)
{
	int rc = delta_codec_encode_batch(c->dc, c->jobs, c->njobs);

	if (rc) {
		delta_error_add(c->e, "encoding failed: %s", delta_codec_error(c->dc));
		return rc;
	}
	for (unsigned i = 0; i < c->nitems && !rc; i++) {
		struct item *it = &c->items[i];

		if (it->zero) {
			rc = delta_writer_zero(c->w, it->chunk, it->count);
		} else {
			struct delta_job *j = &c->jobs[it->job];
			u32 flags = c->use_src ? DELTA_EXTENT_SRC_CSUM : 0;

			rc = delta_writer_extent(c->w, it->chunk, it->count, j->codec, flags,
						 j->out, (u32)j->out_len,
						 delta_csum(j->tgt, j->len),
						 c->use_src ? delta_csum(j->src, j->len) : 0);
		}
		c->chunks_done += it->count;
	}
	if (rc)
		delta_error_add(c->e, "writing the delta: %s", errmsg(rc));
	xfer_progress_update(&o->prog, c->chunks_done * c->chunk_size);
	c->nitems = c->njobs = 0;
	c->tfill = c->ofill = 0;
	return rc;
}

static void add_zero(struct create *c, u64 chunk, u32 count)
{
	struct item *last = c->nitems ? &c->items[c->nitems - 1] : NULL;

	if (last && last->zero && last->chunk + last->count == chunk &&
	    last->count + count <= DELTA_MAX_ZERO_CHUNKS) {
		last->count += count;
		return;
	}
	c->items[c->nitems++] = (struct item){.zero = true, .chunk = chunk, .count = count};
}

/* Reads the run [chunk, chunk + count) and queues its zero and data pieces. */
static int create_run(struct create *c, struct out *o, u64 chunk, u32 count)
{
	size_t len = (size_t)count * c->chunk_size, cs = c->chunk_size;
	u8 *t, *s;
	int rc;

	if (c->tfill + len > DELTA_BATCH_BYTES || c->nitems + count > 2 * DELTA_BATCH_EXTENTS) {
		rc = create_flush(c, o);
		if (rc)
			return rc;
	}
	t = c->tbuf + c->tfill;
	s = c->sbuf + c->tfill;
	rc = delta_dev_pread(&c->tgt, t, len, chunk * cs, c->e);
	if (!rc && c->use_src)
		rc = delta_dev_pread(&c->src, s, len, chunk * cs, c->e);
	if (rc)
		return rc;
	for (u32 i = 0; i < count;) {
		bool z = all_zero(t + i * cs, cs);
		u32 k = i + 1;

		while (k < count && all_zero(t + k * cs, cs) == z)
			k++;
		if (z) {
			add_zero(c, chunk + i, k - i);
		} else {
			struct delta_job *j = &c->jobs[c->njobs];

			*j = (struct delta_job){.tgt = t + i * cs,
						.len = (k - i) * cs,
						.src = c->use_src ? s + i * cs : NULL,
						.src_len = c->use_src ? (k - i) * cs : 0,
						.out = c->obuf + c->ofill};
			c->ofill += delta_codec_bound(j->len);
			c->items[c->nitems++] = (struct item){
				.chunk = chunk + i, .count = k - i, .job = c->njobs++};
			c->data_bytes += j->len;
		}
		i = k;
	}
	c->tfill += len;
	return 0;
}

/*
 * create, phase 1: the whole changelist must be valid before anything is written (a
 * corrupt list must not yield a plausible delta).  One open file, two passes: on success
 * *@cr is rewound for the encoding pass.  Returns 0 or a negative errno (-EILSEQ and
 * e->corrupt: the changelist is corrupt).
 */
static int create_validate(const struct delta_create_params *p, struct changelist_reader **cr,
			   struct changelist_header *ch, struct delta_error *e)
{
	u64 chunk;
	int rc = changelist_open(cr, p->changelist, ch);

	if (!rc) {
		do
			rc = changelist_next(*cr, &chunk);
		while (rc == 1);
	}
	if (!rc)
		rc = changelist_rewind(*cr);
	if (rc) {
		delta_error_add(e, "changelist %s: %s", p->changelist,
				rc != -EILSEQ ? errmsg(rc)
				: *cr	      ? changelist_error(*cr)
					      : "not a valid changelist header");
		changelist_close(*cr);
		*cr = NULL;
		e->corrupt = rc == -EILSEQ;
	}
	return rc;
}

/*
 * create, phase 2: the stream header @h from the changelist, starting where the resume
 * token p->resume says if there is one.  Returns 0, or a negative errno (-ESTALE: a token
 * of another transfer, or a damaged one).
 */
static int create_header(const struct delta_create_params *p, const struct changelist_header *ch,
			 struct delta_header *h, struct delta_error *e)
{
	struct delta_token tok;
	int rc;

	memcpy(h->uuid, ch->uuid, sizeof(h->uuid));
	h->chunk_size = ch->chunk_size;
	h->flags = ch->src_tag == DDSNAP_TAG_NONE ? DELTA_FULL : 0;
	h->volume_chunks = ch->volume_chunks;
	h->src_tag = ch->src_tag;
	h->src_gen = ch->src_gen;
	h->tgt_tag = ch->tgt_tag;
	h->tgt_gen = ch->tgt_gen;
	memcpy(h->tgt_origin_uuid, p->tgt_origin_gen ? p->tgt_origin_uuid : ch->uuid, 16);
	h->tgt_origin_gen = p->tgt_origin_gen ? p->tgt_origin_gen : ch->tgt_gen;
	if (!(h->flags & DELTA_FULL)) {
		memcpy(h->src_origin_uuid, p->src_origin_gen ? p->src_origin_uuid : ch->uuid, 16);
		h->src_origin_gen = p->src_origin_gen ? p->src_origin_gen : ch->src_gen;
	}
	if (!p->resume)
		return 0;
	rc = delta_token_load(p->resume, &tok);
	if (rc || !delta_token_matches(&tok, h)) {
		delta_error_add(e, "resume token %s: %s", p->resume,
				rc ? errmsg(rc) : "belongs to another transfer");
		return rc && rc != -EILSEQ ? rc : -ESTALE;
	}
	h->start_seq = tok.next_seq;
	h->start_chunk = tok.next_chunk;
	h->start_csum = tok.stream_csum;
	return 0;
}

/*
 * create, phase 3: opens the device of snapshot @tag (<devstem>(tag)) for reading into @d;
 * it must cover the changelist's volume.  Returns 0 or a negative errno (-ENOSPC: too
 * small).
 */
static int create_open_dev(const struct delta_create_params *p, const struct changelist_header *ch,
			   u32 tag, struct delta_dev *d, struct delta_error *e)
{
	char *name = delta_dev_name(p->devstem, tag);
	int rc = delta_dev_open(d, name, false, e);

	free(name);
	if (rc)
		return rc;
	if (d->size < ch->volume_chunks * ch->chunk_size) {
		delta_error_add(e, "%s is smaller than the changelist's volume", d->path);
		return -ENOSPC;
	}
	return 0;
}

/*
 * create, phase 4: walks the rewound changelist from @start_chunk, groups consecutive
 * chunks into runs of at most @max_run, and encodes and writes them (create_run, then the
 * last batch).  Returns 0 or a negative errno (-EILSEQ: the changelist, changelist_error).
 */
static int create_encode(struct create *c, struct out *o, struct changelist_reader *cr,
			 u64 start_chunk, u32 max_run)
{
	u64 chunk, run_start = 0;
	u32 run_len = 0;
	int rc;

	while ((rc = changelist_next(cr, &chunk)) == 1) {
		rc = 0;
		if (chunk < start_chunk)
			continue;
		if (run_len && chunk == run_start + run_len && run_len < max_run) {
			run_len++;
			continue;
		}
		if (run_len) {
			rc = create_run(c, o, run_start, run_len);
			if (rc)
				break;
		}
		run_start = chunk;
		run_len = 1;
	}
	if (!rc && run_len)
		rc = create_run(c, o, run_start, run_len);
	if (!rc)
		rc = create_flush(c, o);
	return rc;
}

/* The codec for @o, or NULL with the line added and e->bad_params set. */
static struct delta_codec *create_codec(const struct delta_codec_opts *o, struct delta_error *e)
{
	struct delta_codec *dc = delta_codec_new(o);

	if (!dc) {
		delta_error_add(e, "bad codec level");
		e->bad_params = true;
	}
	return dc;
}

int delta_create_stream(const struct delta_create_params *p, struct delta_create_stats *st,
			struct delta_error *e)
{
	struct delta_codec_opts copts = p->codec;
	struct changelist_header ch;
	struct changelist_reader *cr = NULL;
	struct delta_header h = {0};
	struct create c = {.tgt.fd = -1, .src.fd = -1, .e = e};
	struct out o = {.fd = p->out_fd};
	u32 max_run;
	int rc;

	delta_error_init(e);
	rc = create_validate(p, &cr, &ch, e);
	if (rc)
		return rc;
	rc = -EINVAL;
	c.dc = create_codec(&copts, e);
	if (!c.dc)
		goto out;
	rc = create_header(p, &ch, &h, e);
	if (rc)
		goto out;
	if ((h.flags & DELTA_FULL) && copts.mode != DELTA_MODE_BEST &&
	    delta_codec_get((u32)copts.mode)->differencing) {
		/* nothing to difference against: compress instead */
		copts.mode = DELTA_CODEC_ZSTD;
		delta_codec_free(c.dc);
		c.dc = create_codec(&copts, e);
		rc = -EINVAL;
		if (!c.dc)
			goto out;
	}
	c.chunk_size = ch.chunk_size;
	/* Every extent of an incremental delta carries the source checksum, so a receiver
	 * whose snapshot differs from ours is refused whatever the codec (Zumastor's
	 * "snapshot0 is not the same" check); --no-source-check skips reading the source
	 * for the codecs that do not need it. */
	c.use_src = !(h.flags & DELTA_FULL) && (!p->no_src_check || copts.mode == DELTA_MODE_BEST ||
						delta_codec_get((u32)copts.mode)->differencing);
	rc = create_open_dev(p, &ch, ch.tgt_tag, &c.tgt, e);
	if (!rc && c.use_src)
		rc = create_open_dev(p, &ch, ch.src_tag, &c.src, e);
	if (rc)
		goto out;
	xfer_rate_init(&o.rate, p->limit);
	xfer_progress_init(&o.prog, p->cmd, ch.count * ch.chunk_size, p->force_progress);
	rc = delta_writer_new(&c.w, out_write, &o, &h);
	if (rc) {
		delta_error_add(e, "writing the delta header: %s", errmsg(rc));
		goto out;
	}
	max_run = DELTA_MAX_EXTENT / ch.chunk_size;
	/* a batch holds at most 2 * DELTA_BATCH_EXTENTS items before a run of max_run, and
	 * at most DELTA_BATCH_BYTES / chunk_size chunks, each piece's bound no more than its
	 * chunks' bounds */
	c.items = xmalloc(sizeof(*c.items) * (2 * DELTA_BATCH_EXTENTS + max_run));
	c.jobs = xmalloc(sizeof(*c.jobs) * (2 * DELTA_BATCH_EXTENTS + max_run));
	c.tbuf = delta_abuf(DELTA_BATCH_BYTES);
	c.sbuf = delta_abuf(DELTA_BATCH_BYTES);
	c.obuf = xmalloc((DELTA_BATCH_BYTES / ch.chunk_size) * delta_codec_bound(ch.chunk_size));
	rc = create_encode(&c, &o, cr, h.start_chunk, max_run);
	if (!rc)
		rc = delta_writer_finish(c.w, &st->tr);
	xfer_progress_done(&o.prog);
	if (rc) {
		delta_error_add(e, "delta not created: %s",
				rc == -EILSEQ ? changelist_error(cr) : errmsg(rc));
		goto out;
	}
	delta_codec_get_stats(c.dc, &st->codec);
	st->data_bytes = c.data_bytes;
out:
	changelist_close(cr);
	delta_writer_free(c.w);
	delta_codec_free(c.dc);
	delta_dev_close(&c.tgt);
	delta_dev_close(&c.src);
	free(c.items);
	free(c.jobs);
	free(c.tbuf);
	free(c.sbuf);
	free(c.obuf);
	return rc;
}
