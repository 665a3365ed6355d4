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
 * Reads in flight.  A scattered incremental reads one or two chunks here and there, and a
 * snapshot chunk shared with the origin costs a round trip to the snapshot server, so the
 * reader does not read a run at a time: it queues up to io_depth runs (DELTA_IO_DEPTH by
 * default) in the batch, their target and source bytes at their place in its areas, and
 * reads them all together (delta_ioq_run: native aio, up to io_depth requests in flight);
 * only then are they classified into zero and data pieces, in chunk order.  The batch
 * ends exactly where reading one run at a time ended it (io_depth 1 is that loop): at a
 * run whose bytes do not fit, or whose chunks do not fit the items; the items of the
 * pending runs are not known before their reads, so when counting one per pending chunk
 * might not fit, the pending runs are read and classified first and the exact count
 * decides.  The stream is therefore the same bytes at every depth.
 *
 * The pipeline.  A full replication must move data at the disk's speed, not the codec's,
 * so the three jobs overlap: the caller's thread reads the changelist and the devices into
 * batches (reading ahead), nworkers threads (one codec context each; the online CPUs, at
 * most DELTA_MAX_THREADS) encode and checksum whole batches, and a writer thread writes
 * their records to the output (rate limit, progress).  nworkers + 2 batches go round a
 * ring; each carries its sequence number and a state (FREE -> READ -> ENCODING ->
 * ENCODED -> FREE) under one mutex and condition variable, and each stage takes the
 * batches strictly in sequence order, so the stream is the same bytes as with one
 * thread: batch boundaries depend only on the changelist and the data (DELTA_BATCH_BYTES,
 * DELTA_BATCH_EXTENTS), never on timing.  Locking: the lock guards the states and
 * counters only; a batch's contents belong to the stage whose state it is in, the
 * changelist and devices to the reader, the stream writer and progress to the writer.
 *
 * Invariants: records leave in increasing chunk order, each extent's checksums are of the
 * bytes read from the devices, and with a resume token the stream starts exactly at the
 * token's record, chunk and running checksum.
 *
 * Failure and crash.  Nothing here writes a device: the snapshots are only read.  A
 * failing stage (a read, an encode, a write) stops the others: the writer writes nothing
 * of the failed batch or after it (a read failure: the batches read before it are still
 * written, as the single-threaded loop flushed them), every thread is joined before the
 * call returns, and each stage's message reaches the caller's delta_error (the writer's
 * lines collected apart, appended after the join).  A failure leaves a stream without a
 * valid trailer, which every reader refuses; its records up to the failure are intact, so
 * a receiver's token taken from them resumes correctly.  The output is neither fsynced nor
 * closed here (the caller owns it).
 */
#include "delta/delta_xfer_internal.h"
#include <pthread.h>
#include <string.h>
#include <unistd.h>
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
	unsigned job; /* data: index into the batch's jobs */
};

/* A run of the changelist queued in the reader's batch, its bytes at @at of the batch's
 * target (and source) area, read but not yet classified. */
struct run {
	u64 chunk;
	u32 count;
	size_t at;
};

/*
 * One batch of the pipeline: the reader fills it (items in chunk order, the target and
 * source bytes of its data pieces), a worker encodes and checksums its jobs, the writer
 * writes its records.  A batch is owned by one stage at a time (its state, under the
 * pipeline's lock, says which).
 */
enum batch_state { BATCH_FREE, BATCH_READ, BATCH_ENCODING, BATCH_ENCODED };

struct batch {
	enum batch_state state;
	u64 seq; /* position in the stream: batches are written in seq order */
	struct item *items;
	unsigned nitems;
	struct delta_job *jobs;
	u64 *tcsum, *scsum; /* per job: the target and source checksums */
	unsigned njobs;
	u8 *tbuf, *sbuf, *obuf; /* batch target, source and payload areas */
	size_t tfill, ofill;
	int rc;	       /* the worker's result */
	char err[256]; /* its message when rc != 0 */
};

struct create {
	struct delta_writer *w;
	struct delta_dev tgt, src;
	bool use_src;
	u32 chunk_size;
	struct delta_codec_opts copts;
	/* the pipeline: nbatches batches used in turn, nworkers encoders */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* any state change; also stop and the end of input */
	struct batch *batches;
	unsigned nbatches, nworkers;
	struct delta_codec **dcs;		/* one per worker */
	u64 next_read, next_encode, next_write; /* seq of the next batch for each stage */
	bool input_done;			/* the reader submitted its last batch */
	bool stop;				/* a stage failed: the others wind down */
	struct batch *cur;			/* the batch the reader fills (reader only) */
	/* the writer's */
	struct out *o;
	u64 chunks_done;
	int write_rc;
	struct delta_error we; /* the writer's lines, appended to e after the join */
	/* the reader's */
	struct delta_ioq ioq;
	struct run pend[DELTA_IO_DEPTH]; /* the current batch's runs not read yet */
	unsigned npend;
	u32 pend_chunks;
	struct delta_io ios[2 * DELTA_IO_DEPTH]; /* their reads */
	u64 data_bytes;
	struct delta_error *e;
};

/* A worker: encodes the next read batch in seq order with its own codec context, then
 * checksums its jobs, until the input is done or a stage failed. */
struct worker_arg {
	struct create *c;
	struct delta_codec *dc;
};

static void *create_worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct create *c = wa->c;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct batch *b = &c->batches[c->next_encode % c->nbatches];

		while (!c->stop && !(b->state == BATCH_READ && b->seq == c->next_encode) &&
		       !(c->input_done && c->next_encode == c->next_read))
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->stop || (c->input_done && c->next_encode == c->next_read))
			break;
		b->state = BATCH_ENCODING;
		c->next_encode++;
		pthread_mutex_unlock(&c->lock);
		b->rc = delta_codec_encode_batch(wa->dc, b->jobs, b->njobs);
		if (b->rc)
			snprintf(b->err, sizeof(b->err), "encoding failed: %s",
				 delta_codec_error(wa->dc));
		for (unsigned i = 0; i < b->njobs && !b->rc; i++) {
			b->tcsum[i] = delta_csum(b->jobs[i].tgt, b->jobs[i].len);
			b->scsum[i] = c->use_src ? delta_csum(b->jobs[i].src, b->jobs[i].len) : 0;
		}
		pthread_mutex_lock(&c->lock);
		b->state = BATCH_ENCODED;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Writes the records of encoded batch @b (the writer thread).  Returns 0 or a negative
 * errno with the line in c->we. */
static int create_write_batch(struct create *c, struct batch *b)
{
	int rc = 0;

	if (b->rc) {
		delta_error_add(&c->we, "%s", b->err);
		return b->rc;
	}
	for (unsigned i = 0; i < b->nitems && !rc; i++) {
		struct item *it = &b->items[i];

		if (it->zero) {
			rc = delta_writer_zero(c->w, it->chunk, it->count);
		} else {
			struct delta_job *j = &b->jobs[it->job];
			u32 flags = c->use_src ? DELTA_EXTENT_SRC_CSUM : 0;

			rc = delta_writer_extent(c->w, it->chunk, it->count, j->codec, flags,
						 j->out, (u32)j->out_len, b->tcsum[it->job],
						 b->scsum[it->job]);
		}
		c->chunks_done += it->count;
	}
	if (rc)
		delta_error_add(&c->we, "writing the delta: %s", errmsg(rc));
	xfer_progress_update(&c->o->prog, c->chunks_done * c->chunk_size);
	return rc;
}

/* The writer: writes the encoded batches in seq order, then frees them for the reader.
 * Stops at the first failure (its own or a worker's): nothing after a failed batch is
 * written, so the stream's records end at a batch boundary before it. */
static void *create_writer(void *arg)
{
	struct create *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct batch *b = &c->batches[c->next_write % c->nbatches];

		while (!c->stop && !(b->state == BATCH_ENCODED && b->seq == c->next_write) &&
		       !(c->input_done && c->next_write == c->next_read))
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->stop || (c->input_done && c->next_write == c->next_read))
			break;
		pthread_mutex_unlock(&c->lock);
		c->write_rc = create_write_batch(c, b);
		pthread_mutex_lock(&c->lock);
		if (c->write_rc) {
			c->stop = true;
		} else {
			b->state = BATCH_FREE;
			b->nitems = b->njobs = 0;
			b->tfill = b->ofill = 0;
			c->next_write++;
		}
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* The reader's next batch to fill: waits until the writer freed it.  NULL once a stage
 * failed. */
static struct batch *create_next_batch(struct create *c)
{
	struct batch *b = &c->batches[c->next_read % c->nbatches];

	pthread_mutex_lock(&c->lock);
	while (!c->stop && b->state != BATCH_FREE)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->stop)
		b = NULL;
	else
		b->seq = c->next_read;
	pthread_mutex_unlock(&c->lock);
	return b;
}

static int create_complete(struct create *c);

/* Reads the reader's pending runs and hands its batch to the workers (an empty one is
 * kept).  Returns 0, a read's errno, or -ECANCELED if a stage failed (its line says why). */
static int create_submit(struct create *c)
{
	struct batch *b = c->cur;
	int rc = b ? create_complete(c) : 0;

	if (rc)
		return rc;
	if (b && !b->nitems)
		return 0;
	c->cur = NULL;
	if (b) {
		pthread_mutex_lock(&c->lock);
		b->state = BATCH_READ;
		c->next_read++;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
	}
	c->cur = create_next_batch(c);
	return c->cur ? 0 : -ECANCELED;
}

static void add_zero(struct batch *b, u64 chunk, u32 count)
{
	struct item *last = b->nitems ? &b->items[b->nitems - 1] : NULL;

	if (last && last->zero && last->chunk + last->count == chunk &&
	    last->count + count <= DELTA_MAX_ZERO_CHUNKS) {
		last->count += count;
		return;
	}
	b->items[b->nitems++] = (struct item){.zero = true, .chunk = chunk, .count = count};
}

/* Queues the zero and data pieces of run @r of the current batch, whose bytes are read
 * (the reader). */
static void create_classify(struct create *c, const struct run *r)
{
	size_t cs = c->chunk_size;
	struct batch *b = c->cur;
	u8 *t = b->tbuf + r->at, *s = b->sbuf ? b->sbuf + r->at : NULL;

	for (u32 i = 0; i < r->count;) {
		bool z = all_zero(t + i * cs, cs);
		u32 k = i + 1;

		while (k < r->count && all_zero(t + k * cs, cs) == z)
			k++;
		if (z) {
			add_zero(b, r->chunk + i, k - i);
		} else {
			struct delta_job *j = &b->jobs[b->njobs];

			*j = (struct delta_job){.tgt = t + i * cs,
						.len = (k - i) * cs,
						.src = c->use_src ? s + i * cs : NULL,
						.src_len = c->use_src ? (k - i) * cs : 0,
						.out = b->obuf + b->ofill};
			b->ofill += delta_codec_bound(j->len);
			b->items[b->nitems++] = (struct item){
				.chunk = r->chunk + i, .count = k - i, .job = b->njobs++};
			c->data_bytes += j->len;
		}
		i = k;
	}
}

/* Reads the pending runs of the current batch (target and source, all in flight
 * together) and classifies them in chunk order (the reader).  Returns 0 or the first
 * failing read's errno (its line in c->e). */
static int create_complete(struct create *c)
{
	struct batch *b = c->cur;
	size_t cs = c->chunk_size;
	unsigned n = 0;
	int rc;

	if (!c->npend)
		return 0;
	for (unsigned i = 0; i < c->npend; i++) {
		const struct run *r = &c->pend[i];
		size_t len = (size_t)r->count * cs;

		/* the order of the single-threaded loop: a run's target, then its source */
		c->ios[n++] = (struct delta_io){
			.d = &c->tgt, .buf = b->tbuf + r->at, .len = len, .off = r->chunk * cs};
		if (c->use_src)
			c->ios[n++] = (struct delta_io){.d = &c->src,
							.buf = b->sbuf + r->at,
							.len = len,
							.off = r->chunk * cs};
	}
	rc = delta_ioq_run(&c->ioq, c->ios, n, false, c->e);
	for (unsigned i = 0; i < c->npend && !rc; i++)
		create_classify(c, &c->pend[i]);
	c->npend = 0;
	c->pend_chunks = 0;
	return rc;
}

/*
 * Queues the run [chunk, chunk + count) in the current batch (the reader); its reads go
 * out with the next DELTA_IO_DEPTH runs'.  The batch ends where the single-threaded loop
 * ended it: when the run's bytes do not fit, or its chunks might not fit the items (each
 * chunk at most one item), in which case the pending runs are read and classified first
 * to count them exactly.  So the boundaries depend on the changelist and the data only.
 */
static int create_run(struct create *c, u64 chunk, u32 count)
{
	size_t len = (size_t)count * c->chunk_size;
	struct batch *b = c->cur;
	int rc = 0;

	if (b->nitems + c->pend_chunks + count > 2 * DELTA_BATCH_EXTENTS)
		rc = create_complete(c);
	if (!rc && (b->tfill + len > DELTA_BATCH_BYTES ||
		    b->nitems + c->pend_chunks + count > 2 * DELTA_BATCH_EXTENTS)) {
		rc = create_submit(c);
		b = c->cur;
	}
	if (rc)
		return rc;
	c->pend[c->npend++] = (struct run){.chunk = chunk, .count = count, .at = b->tfill};
	c->pend_chunks += count;
	b->tfill += len;
	return c->npend == c->ioq.depth ? create_complete(c) : 0;
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

/* The worker count for @threads (0: the online CPUs), at most DELTA_MAX_THREADS. */
static unsigned create_nworkers(unsigned threads)
{
	long n = threads ? (long)threads : sysconf(_SC_NPROCESSORS_ONLN);

	return (unsigned)(n < 1 ? 1 : n > DELTA_MAX_THREADS ? DELTA_MAX_THREADS : n);
}

/* Allocates the batches (nworkers + 2: one being read, one being written, one per worker)
 * and one codec context per worker.  Returns 0 or -EINVAL (a bad codec level, e filled). */
static int create_pipeline_init(struct create *c, unsigned threads, u32 max_run)
{
	size_t nitems = 2 * DELTA_BATCH_EXTENTS + max_run;

	c->nworkers = create_nworkers(threads);
	c->nbatches = c->nworkers + 2;
	c->dcs = xzalloc(sizeof(*c->dcs) * c->nworkers);
	for (unsigned i = 0; i < c->nworkers; i++) {
		c->dcs[i] = create_codec(&c->copts, c->e);
		if (!c->dcs[i])
			return -EINVAL;
	}
	c->batches = xzalloc(sizeof(*c->batches) * c->nbatches);
	for (unsigned i = 0; i < c->nbatches; i++) {
		struct batch *b = &c->batches[i];

		/* a batch holds at most 2 * DELTA_BATCH_EXTENTS items before a run of max_run,
		 * and at most DELTA_BATCH_BYTES / chunk_size chunks, each piece's bound no more
		 * than its chunks' bounds */
		b->items = xmalloc(sizeof(*b->items) * nitems);
		b->jobs = xmalloc(sizeof(*b->jobs) * nitems);
		b->tcsum = xmalloc(sizeof(*b->tcsum) * nitems);
		b->scsum = xmalloc(sizeof(*b->scsum) * nitems);
		b->tbuf = delta_abuf(DELTA_BATCH_BYTES);
		b->sbuf = c->use_src ? delta_abuf(DELTA_BATCH_BYTES) : NULL;
		b->obuf = xmalloc((DELTA_BATCH_BYTES / c->chunk_size) *
				  delta_codec_bound(c->chunk_size));
	}
	return 0;
}

static void create_pipeline_free(struct create *c)
{
	for (unsigned i = 0; c->batches && i < c->nbatches; i++) {
		struct batch *b = &c->batches[i];

		free(b->items);
		free(b->jobs);
		free(b->tcsum);
		free(b->scsum);
		free(b->tbuf);
		free(b->sbuf);
		free(b->obuf);
	}
	free(c->batches);
	for (unsigned i = 0; c->dcs && i < c->nworkers; i++)
		delta_codec_free(c->dcs[i]);
	free(c->dcs);
}

/*
 * create, phase 4: walks the rewound changelist from @start_chunk, groups consecutive
 * chunks into runs of at most @max_run and reads them into batches (this thread), which
 * the workers encode and the writer writes in order, while this thread reads the next.
 * Returns 0 once every record is written, or a negative errno (-EILSEQ: the changelist,
 * changelist_error), the failing stage's line added to c->e.
 */
static int create_encode(struct create *c, struct changelist_reader *cr, u64 start_chunk,
			 u32 max_run)
{
	struct worker_arg *wa = xmalloc(sizeof(*wa) * c->nworkers);
	pthread_t *workers = xmalloc(sizeof(*workers) * c->nworkers), writer;
	u64 chunk, run_start = 0;
	u32 run_len = 0;
	int rc;

	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	delta_error_init(&c->we);
	for (unsigned i = 0; i < c->nworkers; i++) {
		wa[i] = (struct worker_arg){.c = c, .dc = c->dcs[i]};
		if (pthread_create(&workers[i], NULL, create_worker, &wa[i]))
			abort();
	}
	if (pthread_create(&writer, NULL, create_writer, c))
		abort();
	rc = create_submit(c);
	while (!rc && (rc = changelist_next(cr, &chunk)) == 1) {
		rc = 0;
		if (chunk < start_chunk)
			continue;
		if (run_len && chunk == run_start + run_len && run_len < max_run) {
			run_len++;
			continue;
		}
		if (run_len)
			rc = create_run(c, run_start, run_len);
		run_start = chunk;
		run_len = 1;
	}
	if (!rc && run_len)
		rc = create_run(c, run_start, run_len);
	if (!rc && c->cur)
		rc = create_complete(c);
	pthread_mutex_lock(&c->lock);
	if (!rc && c->cur && c->cur->nitems) {
		c->cur->state = BATCH_READ;
		c->next_read++;
	}
	c->cur = NULL;
	/* on a read failure the batches read before it are still written, as a
	 * single-threaded create would have flushed them before reading on */
	c->input_done = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(writer, NULL);
	pthread_mutex_lock(&c->lock);
	c->stop = true; /* the writer is done: idle workers leave */
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < c->nworkers; i++)
		pthread_join(workers[i], NULL);
	if (c->we.len)
		delta_error_add(c->e, "%s", c->we.msg);
	if (!rc || rc == -ECANCELED)
		rc = c->write_rc ? c->write_rc : rc;
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(workers);
	free(wa);
	return rc;
}

/* Adds the counters of @b into @a. */
static void stats_add(struct delta_codec_stats *a, const struct delta_codec_stats *b)
{
	a->xdelta3_runs += b->xdelta3_runs;
	a->verify_failures += b->verify_failures;
	a->xdelta3_rewrites += b->xdelta3_rewrites;
	a->fallbacks += b->fallbacks;
	for (unsigned i = 0; i < DELTA_CODEC_COUNT; i++)
		a->chosen[i] += b->chosen[i];
}

int delta_create_stream(const struct delta_create_params *p, struct delta_create_stats *st,
			struct delta_error *e)
{
	struct changelist_header ch;
	struct changelist_reader *cr = NULL;
	struct delta_header h = {0};
	struct create c = {.tgt.fd = -1, .src.fd = -1, .e = e, .copts = p->codec};
	struct out o = {.fd = p->out_fd};
	struct delta_codec *dc;
	u32 max_run;
	int rc;

	delta_error_init(e);
	delta_ioq_init(&c.ioq, p->io_depth);
	rc = create_validate(p, &cr, &ch, e);
	if (rc)
		return rc;
	rc = -EINVAL;
	dc = create_codec(&c.copts, e); /* the level is checked before anything is opened */
	delta_codec_free(dc);
	if (!dc)
		goto out;
	rc = create_header(p, &ch, &h, e);
	if (rc)
		goto out;
	if ((h.flags & DELTA_FULL) && c.copts.mode != DELTA_MODE_BEST &&
	    delta_codec_get((u32)c.copts.mode)->differencing)
		c.copts.mode = DELTA_CODEC_ZSTD; /* nothing to difference against: compress */
	if ((h.flags & DELTA_FULL) && c.copts.mode == DELTA_CODEC_ZSTD && !c.copts.level)
		c.copts.level = DELTA_FULL_ZSTD_LEVEL;
	c.chunk_size = ch.chunk_size;
	/* Every extent of an incremental delta carries the source checksum, so a receiver
	 * whose snapshot differs from ours is refused whatever the codec (Zumastor's
	 * "snapshot0 is not the same" check); --no-source-check skips reading the source
	 * for the codecs that do not need it. */
	c.use_src =
		!(h.flags & DELTA_FULL) && (!p->no_src_check || c.copts.mode == DELTA_MODE_BEST ||
					    delta_codec_get((u32)c.copts.mode)->differencing);
	rc = create_open_dev(p, &ch, ch.tgt_tag, &c.tgt, e);
	if (!rc && c.use_src)
		rc = create_open_dev(p, &ch, ch.src_tag, &c.src, e);
	if (rc)
		goto out;
	max_run = DELTA_MAX_EXTENT / ch.chunk_size;
	rc = create_pipeline_init(&c, p->threads, max_run);
	if (rc)
		goto out;
	xfer_rate_init(&o.rate, p->limit);
	xfer_progress_init(&o.prog, p->cmd, ch.count * ch.chunk_size, p->force_progress);
	c.o = &o;
	rc = delta_writer_new(&c.w, out_write, &o, &h);
	if (rc) {
		delta_error_add(e, "writing the delta header: %s", errmsg(rc));
		goto out;
	}
	rc = create_encode(&c, cr, h.start_chunk, max_run);
	if (!rc)
		rc = delta_writer_finish(c.w, &st->tr);
	xfer_progress_done(&o.prog);
	if (rc) {
		delta_error_add(e, "delta not created: %s",
				rc == -EILSEQ ? changelist_error(cr) : errmsg(rc));
		goto out;
	}
	st->codec = (struct delta_codec_stats){0};
	for (unsigned i = 0; i < c.nworkers; i++) {
		struct delta_codec_stats one;

		delta_codec_get_stats(c.dcs[i], &one);
		stats_add(&st->codec, &one);
	}
	st->data_bytes = c.data_bytes;
out:
	changelist_close(cr);
	delta_writer_free(c.w);
	create_pipeline_free(&c);
	delta_dev_close(&c.tgt);
	delta_dev_close(&c.src);
	delta_ioq_free(&c.ioq);
	return rc;
}
