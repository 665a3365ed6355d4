// SPDX-License-Identifier: GPL-2.0-only
/*
 * delta_apply.c - apply a delta stream to an origin (delta_xfer.h; `ddsnap delta apply` and
 * `ddsnap receive`).
 *
 * What.  Reads the stream, and for each extent checks the receiver's source extent against
 * the sender's source checksum (refusing on mismatch), decodes, checks the target checksum,
 * and only then writes the origin.  Extents with a source (every extent of an incremental
 * unless --no-source-check, and xdelta3's) are queued, up to a batch (DELTA_BATCH_BYTES,
 * DELTA_BATCH_EXTENTS): their source reads go out together (delta_ioq_run, up to
 * io_depth in flight: a base snapshot's chunk can cost a server round trip each), then the
 * checked prefix decodes in one batch (one xdelta3 process per batch); a read or checksum
 * failure stops the queue there, the extents before it applied first.  Any other record
 * first applies the queue, so the origin is written in stream order.
 *
 * The writer.  Reading the stream, checking sources and decoding happen on the caller's
 * thread; the origin writes (and the token saves that follow them) on a writer thread fed
 * by a bounded queue (WQ_MAX extents, WQ_BYTES of decoded data), in stream order, so the
 * next extents decode while the last ones are written.  The writer takes what is queued,
 * up to io_depth extents, and writes them all in flight together (each a first write
 * after the replica's base snapshot: a copy-out, which the server can batch); only when
 * every one has completed does the token advance, to the last extent of the written
 * prefix.  Only checked extents are queued.  Locking: the lock guards the queue and the
 * writer's result; the origin, a->applied, a->dirty and the token file belong to the
 * writer while it runs, and to the caller only after apply_drain() has seen the queue
 * empty (under the lock: happens-before).  A failed write stops the writer: nothing queued
 * after its group is written (dropped), and the caller fails at its next queueing or
 * drain; the writes in flight beside it in its group may land, past the token (as after a
 * crash, below).  With --check nothing is written and no writer runs.
 *
 * Invariants: a corrupt or mismatched extent is never written; the source snapshot is
 * opened read-only and never written; a.applied names the last record whose data is
 * written (the token never runs ahead of the origin: the writer sets it after the write).
 *
 * Crash and interruption argument: with a token file, apply fdatasyncs the origin before
 * each token save (once before the first write, then at most once per
 * DELTA_TOKEN_INTERVAL and at every exit), and a save happens only between the writer's
 * groups, when no write is in flight (delta_ioq_run returns after every request of a
 * group completed; the final save after the writer is joined), so the token never claims
 * an extent that is not durable, and a receiver killed after its first write always
 * leaves one.  Extents after the token may or may not be on disk; re-applying them writes
 * the same bytes (extents hold absolute target data decoded against the immutable source
 * snapshot, never against the origin), so nothing is lost and nothing is counted twice.  A
 * resumed stream (create with a resume token) starts exactly at the token and chains the
 * stream checksum from it; a full stream re-sent after an interruption is skipped up to
 * the token and checked to be the same stream.
 */
#include "delta/delta_xfer_internal.h"
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include "util/xfer.h"

/* Apply saves its resume token at most this often (plus at every exit). */
#define DELTA_TOKEN_INTERVAL 1.0

struct pending {
	struct delta_record rec;
	u8 *payload; /* own copy */
	struct delta_token tok;
};

struct apply {
	struct delta_reader *r;
	struct delta_codec *dc;
	struct delta_header h;
	struct delta_dev origin, src;
	const char *token_path;
	struct delta_token applied; /* everything up to here is written */
	bool dirty;		    /* written since the last sync */
	struct timespec last_save;
	u8 *zeros;
	/* xdelta3 extents waiting for one batched decode */
	struct pending *q;
	unsigned nq;
	size_t qbytes;
	u64 written_chunks;
	struct delta_error *e;
	bool check;	       /* --check: verify everything, write nothing */
	struct delta_ioq sioq; /* the caller's source reads */
	struct delta_ioq wioq; /* the writer's origin writes */
	/* the origin writer (not with --check): decoded extents queued in stream order */
	bool threaded;
	pthread_t writer;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct wjob *wq; /* ring of WQ_MAX */
	unsigned whead, wcount;
	size_t wbytes;
	bool wclose;	       /* no more jobs: the writer leaves once the queue is empty */
	int wrc;	       /* the writer's first failure; it writes nothing after it */
	struct delta_error we; /* its lines, added to e when the queue is drained */
};

/* One decoded extent (or zero record) for the writer: written at its place, then its token
 * is the applied one. */
struct wjob {
	u64 chunk, count;
	const u8 *data; /* a->zeros (not freed) or an own aligned buffer */
	bool own;
	size_t len;
	struct delta_token tok;
};

/* Syncs the origin and saves the applied token; problems go to @e. */
static int apply_save(struct apply *a, struct delta_error *e)
{
	int rc;

	if (!a->token_path)
		return 0;
	if (a->dirty && fdatasync(a->origin.fd)) {
		rc = -errno;
		delta_error_add(e, "sync %s: %s", a->origin.path, errmsg(rc));
		return rc;
	}
	a->dirty = false;
	rc = delta_token_save(a->token_path, &a->applied);
	if (rc)
		delta_error_add(e, "saving resume token %s: %s", a->token_path, errmsg(rc));
	clock_gettime(CLOCK_MONOTONIC, &a->last_save);
	return rc;
}

static int apply_done_record(struct apply *a, const struct delta_token *tok, struct delta_error *e)
{
	a->applied = *tok;
	if (a->token_path && xfer_elapsed(&a->last_save) >= DELTA_TOKEN_INTERVAL)
		return apply_save(a, e);
	return 0;
}

/* The writer queue holds at most this many extents and bytes (decoded, waiting). */
#define WQ_MAX	 64u
#define WQ_BYTES (32u << 20)

/*
 * Writes jobs @j[0..@n) to the origin, their requests all in flight together (a job of
 * more than DELTA_MAX_EXTENT bytes in pieces), and once every one has completed makes the
 * token of the last job of the written prefix the applied one (whichever thread owns the
 * origin now: the writer, or the caller with the queue drained).  So a token saved here
 * (its fdatasync first) never covers a write still in flight.  Returns 0 or the first
 * failing job's errno, its line in @e; the jobs before it count as written.
 */
static int apply_put(struct apply *a, const struct wjob *j, unsigned n, struct delta_error *e)
{
	struct delta_io *io = NULL;
	unsigned nio = 0, done = 0;
	int rc = 0, trc;

	if (!a->check) {
		for (unsigned i = 0; i < n; i++)
			nio += (unsigned)((j[i].len + DELTA_MAX_EXTENT - 1) / DELTA_MAX_EXTENT);
		io = xmalloc(sizeof(*io) * (nio ? nio : 1));
		nio = 0;
		for (unsigned i = 0; i < n; i++) {
			for (size_t off = 0; off < j[i].len; off += DELTA_MAX_EXTENT) {
				/* a zero record of any length is written from the one zero
				 * extent */
				const u8 *buf = j[i].data == a->zeros ? a->zeros : j[i].data + off;

				io[nio++] = (struct delta_io){
					.d = &a->origin,
					.buf = (u8 *)buf, /* only read: a write */
					.len = MIN(j[i].len - off, (size_t)DELTA_MAX_EXTENT),
					.off = j[i].chunk * a->h.chunk_size + off};
			}
		}
		rc = delta_ioq_run(&a->wioq, io, nio, true, e);
	}
	for (unsigned x = 0; done < n; done++) {
		bool ok = true;

		for (size_t off = 0; io && off < j[done].len; off += DELTA_MAX_EXTENT)
			ok = !io[x++].rc && ok;
		if (!ok)
			break;
		__atomic_add_fetch(&a->written_chunks, j[done].len / a->h.chunk_size,
				   __ATOMIC_RELAXED);
	}
	free(io);
	if (!done)
		return rc;
	a->dirty = !a->check;
	trc = apply_done_record(a, &j[done - 1].tok, e);
	return rc ? rc : trc;
}

static void *apply_writer(void *arg)
{
	struct apply *a = arg;
	struct wjob js[DELTA_IO_DEPTH];

	pthread_mutex_lock(&a->lock);
	for (;;) {
		unsigned n;
		int rc;

		while (!a->wcount && !a->wclose)
			pthread_cond_wait(&a->cond, &a->lock);
		if (!a->wcount)
			break;
		/* what is queued, up to the depth: written together */
		n = MIN(a->wcount, a->wioq.depth);
		for (unsigned i = 0; i < n; i++)
			js[i] = a->wq[(a->whead + i) % WQ_MAX];
		pthread_mutex_unlock(&a->lock);
		rc = a->wrc;
		if (!rc)
			rc = apply_put(a, js, n, &a->we);
		for (unsigned i = 0; i < n; i++)
			if (js[i].own)
				free((void *)js[i].data);
		pthread_mutex_lock(&a->lock);
		if (rc && !a->wrc)
			a->wrc = rc;
		a->whead = (a->whead + n) % WQ_MAX;
		a->wcount -= n;
		for (unsigned i = 0; i < n; i++)
			a->wbytes -= js[i].own ? js[i].len : 0;
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* Waits until the writer has written everything queued; then the caller owns the origin
 * and the token.  Returns the writer's failure (its lines moved to a->e), or 0. */
static int apply_drain(struct apply *a)
{
	int rc;

	if (!a->threaded)
		return 0;
	pthread_mutex_lock(&a->lock);
	while (a->wcount)
		pthread_cond_wait(&a->cond, &a->lock);
	rc = a->wrc;
	pthread_mutex_unlock(&a->lock);
	if (a->we.len) {
		delta_error_add(a->e, "%s", a->we.msg);
		delta_error_init(&a->we);
	}
	return rc;
}

/*
 * Hands a checked extent (or zero record) to the writer; with --check or without the
 * writer, applies it here.  @data is @own (freed after the write) or a->zeros.  Returns 0,
 * or the writer's failure (the queue then drained, its lines in a->e).
 */
static int apply_emit(struct apply *a, u64 chunk, const u8 *data, bool own, size_t len,
		      const struct delta_token *tok)
{
	int rc;

	if (!a->threaded) {
		struct wjob j = {.chunk = chunk, .data = data, .len = len, .tok = *tok};

		rc = apply_put(a, &j, 1, a->e);
		if (own)
			free((void *)data);
		return rc;
	}
	pthread_mutex_lock(&a->lock);
	while (!a->wrc && (a->wcount == WQ_MAX || (a->wcount && a->wbytes + len > WQ_BYTES)))
		pthread_cond_wait(&a->cond, &a->lock);
	rc = a->wrc;
	if (!rc) {
		a->wq[(a->whead + a->wcount) % WQ_MAX] =
			(struct wjob){.chunk = chunk,
				      .count = len / a->h.chunk_size,
				      .data = data,
				      .own = own,
				      .len = len,
				      .tok = *tok};
		a->wcount++;
		a->wbytes += own ? len : 0;
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
	if (rc) {
		if (own)
			free((void *)data);
		return apply_drain(a);
	}
	return 0;
}

/* Starts the writer (not with --check). */
static void apply_writer_start(struct apply *a)
{
	if (a->check)
		return;
	a->wq = xmalloc(sizeof(*a->wq) * WQ_MAX);
	delta_error_init(&a->we);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	if (pthread_create(&a->writer, NULL, apply_writer, a))
		abort();
	a->threaded = true;
}

/* Drains and stops the writer; returns its failure or 0.  Idempotent. */
static int apply_writer_stop(struct apply *a)
{
	int rc;

	if (!a->threaded)
		return 0;
	rc = apply_drain(a);
	pthread_mutex_lock(&a->lock);
	a->wclose = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->writer, NULL);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a->wq);
	a->wq = NULL;
	a->threaded = false;
	return rc;
}

/* Compares the receiver's source extent @buf (read) with the sender's checksum; a
 * mismatch's line goes to @e. */
static int apply_source(struct apply *a, const struct delta_record *rec, const u8 *buf, size_t len,
			struct delta_error *e)
{
	if (delta_csum(buf, len) == rec->src_csum)
		return 0;
	delta_error_add(e,
			"source snapshot %s differs from the sender's at chunks %llu..%llu: "
			"refusing this delta",
			a->src.path, (unsigned long long)rec->chunk,
			(unsigned long long)(rec->chunk + rec->count - 1));
	return -ESTALE;
}

/* Checks a decoded extent against its target checksum and hands it to the writer (@data:
 * an own aligned buffer, freed whatever happens). */
static int apply_write(struct apply *a, const struct delta_record *rec, u8 *data, size_t len,
		       const struct delta_token *tok)
{
	if (delta_csum(data, len) != rec->tgt_csum) {
		delta_error_add(
			a->e,
			"extent at chunk %llu (record %llu) decodes to data with a wrong checksum: "
			"corrupt delta; nothing of it was written",
			(unsigned long long)rec->chunk, (unsigned long long)rec->seq);
		a->e->corrupt = true;
		free(data);
		return -EILSEQ;
	}
	return apply_emit(a, rec->chunk, data, true, len, tok);
}

/*
 * Applies the queued extents: reads their sources (all in flight together, the depth
 * permitting), checks each against the sender's source checksum, decodes the checked
 * prefix in one batch (one xdelta3 run) and hands its extents to the writer in stream
 * order.  A source that fails its read or check stops the queue there: the extents before
 * it are still applied, nothing at or after it is.
 */
static int apply_flush(struct apply *a)
{
	struct delta_error *se; /* [0] the first failing read's line, [1] a mismatch's */
	struct delta_djob *dj;
	struct delta_io *io;
	u8 *src;
	size_t off = 0;
	unsigned ok;
	int rc = 0, src_rc = 0;

	if (!a->nq)
		return 0;
	se = xmalloc(2 * sizeof(*se));
	delta_error_init(&se[0]);
	delta_error_init(&se[1]);
	dj = xzalloc(sizeof(*dj) * a->nq);
	io = xmalloc(sizeof(*io) * a->nq);
	src = delta_abuf(a->qbytes);
	for (unsigned i = 0; i < a->nq; i++) {
		struct delta_record *rec = &a->q[i].rec;
		size_t len = (size_t)rec->count * a->h.chunk_size;

		dj[i] = (struct delta_djob){.codec = rec->codec,
					    .payload = a->q[i].payload,
					    .payload_len = rec->payload_len,
					    .src = src + off,
					    .src_len = len,
					    .len = len};
		io[i] = (struct delta_io){.d = &a->src,
					  .buf = src + off,
					  .len = len,
					  .off = rec->chunk * a->h.chunk_size};
		off += len;
	}
	delta_ioq_run(&a->sioq, io, a->nq, false, &se[0]);
	for (ok = 0; ok < a->nq; ok++) {
		src_rc = io[ok].rc;
		if (!src_rc)
			src_rc = apply_source(a, &a->q[ok].rec, io[ok].buf, io[ok].len, &se[1]);
		if (src_rc)
			break;
		dj[ok].tgt = delta_abuf(dj[ok].len); /* the writer's: O_DIRECT aligned */
	}
	if (ok) {
		rc = delta_codec_decode_batch(a->dc, dj, ok);
		if (rc == -ENOENT || rc == -EIO) {
			delta_error_add(a->e, "%s", delta_codec_error(a->dc));
			a->e->corrupt = false;
			goto out;
		}
		rc = 0;
	}
	for (unsigned i = 0; i < ok && !rc; i++) {
		if (dj[i].err) {
			delta_error_add(
				a->e,
				"extent at chunk %llu (record %llu): %s; nothing of it was written",
				(unsigned long long)a->q[i].rec.chunk,
				(unsigned long long)a->q[i].rec.seq, delta_codec_error(a->dc));
			a->e->corrupt = true;
			rc = -EILSEQ;
			break;
		}
		rc = apply_write(a, &a->q[i].rec, dj[i].tgt, dj[i].len, &a->q[i].tok);
		dj[i].tgt = NULL; /* apply_write's now */
	}
	if (!rc && src_rc) {
		/* the source's problem, after the extents before it are applied */
		delta_error_add(a->e, "%s", io[ok].rc ? se[0].msg : se[1].msg);
		a->e->corrupt = false;
		rc = src_rc;
	}
out:
	for (unsigned i = 0; i < a->nq; i++) {
		free(a->q[i].payload);
		free(dj[i].tgt);
	}
	a->nq = 0;
	a->qbytes = 0;
	free(dj);
	free(io);
	free(src);
	free(se);
	return rc;
}

/*
 * Applies one record.  An extent with a source to check (or xdelta3's, which decodes
 * against it) joins the queue, whose sources are read together (apply_flush); any other
 * record applies the queue first, so the origin is written in stream order.
 */
static int apply_record(struct apply *a, const struct delta_record *rec,
			const struct delta_token *tok)
{
	size_t len = (size_t)rec->count * a->h.chunk_size;
	struct delta_djob dj;
	u8 *tgt;
	int rc;

	if (rec->type == DELTA_REC_ZERO) {
		rc = apply_flush(a);
		return rc ? rc : apply_emit(a, rec->chunk, a->zeros, false, len, tok);
	}
	if ((rec->flags & DELTA_EXTENT_SRC_CSUM) || rec->codec == DELTA_CODEC_XDELTA3) {
		struct pending *p;

		if (a->qbytes + len > DELTA_BATCH_BYTES || a->nq == DELTA_BATCH_EXTENTS) {
			rc = apply_flush(a);
			if (rc)
				return rc;
		}
		p = &a->q[a->nq++];
		p->rec = *rec;
		p->payload = xmalloc(rec->payload_len ? rec->payload_len : 1);
		memcpy(p->payload, rec->payload, rec->payload_len);
		p->rec.payload = p->payload;
		p->tok = *tok;
		a->qbytes += len;
		return 0;
	}
	rc = apply_flush(a);
	if (rc)
		return rc;
	tgt = delta_abuf(len);
	dj = (struct delta_djob){.codec = rec->codec,
				 .payload = rec->payload,
				 .payload_len = rec->payload_len,
				 .tgt = tgt,
				 .len = len};
	rc = delta_codec_decode(a->dc, &dj);
	if (rc) {
		delta_error_add(a->e,
				"extent at chunk %llu (record %llu): %s; nothing of it was written",
				(unsigned long long)rec->chunk, (unsigned long long)rec->seq,
				delta_codec_error(a->dc));
		a->e->corrupt = rc == -EILSEQ;
		free(tgt);
		return rc;
	}
	return apply_write(a, rec, tgt, len, tok);
}

/* The records skipped from a re-sent full stream must be the ones applied before. */
static int check_skipped(struct apply *a, const struct delta_token *saved)
{
	if (a->applied.next_seq == saved->next_seq &&
	    a->applied.stream_csum == saved->stream_csum &&
	    a->applied.next_chunk == saved->next_chunk)
		return 0;
	delta_error_add(a->e,
			"this stream differs from the interrupted one before record %llu: apply it "
			"without the token, or resume from the token",
			(unsigned long long)saved->next_seq);
	a->e->corrupt = false;
	return -ESTALE;
}

/*
 * apply, phase 1: where this receiver resumes.  Loads the token (if -t) into *@saved; a
 * resumed stream must start exactly at it, and a full stream re-sent after an interruption
 * is skipped up to it (*@skip_until, 0 if nothing is skipped).  Returns 0, or -ESTALE
 * (a damaged token, or a resumed stream that does not start at it).
 */
static int apply_resume_point(struct apply *a, struct delta_token *saved, u64 *skip_until)
{
	bool have_saved = false;
	int rc;

	*skip_until = 0;
	if (a->token_path) {
		rc = delta_token_load(a->token_path, saved);
		if (rc == -EILSEQ) {
			delta_error_add(a->e, "resume token %s is corrupt", a->token_path);
			return -ESTALE;
		}
		have_saved = !rc && delta_token_matches(saved, &a->h);
	}
	if (a->h.start_seq) {
		/* a resumed stream must continue exactly where this receiver stopped */
		if (!have_saved || saved->next_seq != a->h.start_seq ||
		    saved->next_chunk != a->h.start_chunk ||
		    saved->stream_csum != a->h.start_csum) {
			delta_error_add(a->e,
					"this stream resumes at record %llu, chunk %llu, but %s",
					(unsigned long long)a->h.start_seq,
					(unsigned long long)a->h.start_chunk,
					have_saved ? "the resume token says otherwise"
						   : "there is no matching resume token (-t)");
			return -ESTALE;
		}
	} else if (have_saved && saved->next_seq) {
		*skip_until = saved->next_seq; /* a full stream re-sent: skip what is on disk */
	}
	return 0;
}

/*
 * apply, phase 2: opens the origin <devstem> (read-only with --check), which must cover the
 * delta's volume, and for an incremental delta the source snapshot <devstem>(src).
 * Returns 0 or a negative errno (-ENOSPC: the origin is too small).
 */
static int apply_open_devs(const struct delta_apply_params *p, struct apply *a)
{
	char *name = delta_dev_name(p->devstem, DDSNAP_TAG_HEAD);
	int rc = delta_dev_open(&a->origin, name, !a->check, a->e);

	free(name);
	if (rc)
		return rc;
	if (a->origin.size < a->h.volume_chunks * a->h.chunk_size) {
		delta_error_add(a->e, "%s is smaller than the delta's volume (%llu bytes)",
				a->origin.path,
				(unsigned long long)(a->h.volume_chunks * a->h.chunk_size));
		return -ENOSPC;
	}
	if (!(a->h.flags & DELTA_FULL)) {
		name = delta_dev_name(p->devstem, a->h.src_tag);
		rc = delta_dev_open(&a->src, name, false, a->e);
		free(name);
		return rc;
	}
	return 0;
}

/* apply, phase 3: the raw codec, the zero extent and the queue every record needs. */
static void apply_buffers(struct apply *a)
{
	struct delta_codec_opts co = {.mode = DELTA_CODEC_RAW};

	a->dc = delta_codec_new(&co);
	a->zeros = delta_abuf(DELTA_MAX_EXTENT);
	memset(a->zeros, 0, DELTA_MAX_EXTENT);
	a->q = xmalloc(sizeof(*a->q) * DELTA_BATCH_EXTENTS);
}

/*
 * apply, phase 4: reads and applies every record up to the trailer (skipping those before
 * *@skip_until, then checking the skipped part against @saved), at the rate limit, with
 * progress.  Returns 0 once the trailer validated and everything queued is applied, or a
 * negative errno (a->e->corrupt says the stream is corrupt).
 */
static int apply_records(const struct delta_apply_params *p, struct apply *a,
			 const struct delta_token *saved, u64 *skip_until)
{
	struct delta_record rec;
	struct delta_trailer tr;
	struct xfer_rate rate;
	struct xfer_progress prog;
	int rc;

	xfer_rate_init(&rate, p->limit);
	xfer_progress_init(&prog, strcmp(p->cmd, "delta") ? p->cmd : "apply", 0, p->force_progress);
	for (;;) {
		struct delta_token tok;

		rc = delta_reader_next(a->r, &rec);
		if (rc < 0) {
			/* a bad record: what is queued was read intact, apply it first */
			delta_error_add(a->e, "%s: %s", p->name, delta_reader_error(a->r));
			a->e->corrupt = rc == -EILSEQ;
			if (*skip_until)
				break;
			apply_flush(a);
			apply_drain(a); /* a->applied is the writer's until its queue is empty */
			if (delta_reader_csum_mismatch(a->r, &tr) &&
			    a->applied.next_seq == tr.end_seq) {
				/* each extent matched its tgt_csum: the data on disk is the sender's */
				delta_error_add(
					a->e, "every extent passed its own checks and is applied; "
					      "the damaged bytes decoded to the same data");
				a->applied.stream_csum = tr.stream_csum;
			}
			break;
		}
		if (rc == 0) {
			/* trailer validated: apply what is queued; the transfer is complete */
			rc = apply_flush(a);
			if (!rc)
				rc = apply_drain(a);
			break;
		}
		delta_reader_token(a->r, &tok);
		if (rec.seq < *skip_until) {
			a->applied = tok;
			continue;
		}
		if (*skip_until) {
			rc = check_skipped(a, saved);
			if (rc)
				break;
			*skip_until = 0;
		}
		rc = apply_record(a, &rec, &tok);
		if (rc)
			break;
		xfer_rate_account(&rate, rec.payload_len);
		xfer_progress_update(&prog, __atomic_load_n(&a->written_chunks, __ATOMIC_RELAXED) *
						    a->h.chunk_size);
	}
	if (!rc && *skip_until)
		rc = check_skipped(a, saved);
	xfer_progress_done(&prog);
	return rc;
}

int delta_apply_stream(const struct delta_apply_params *p, struct delta_apply_stats *st,
		       struct delta_error *e)
{
	struct apply a = {
		.origin.fd = -1, .src.fd = -1, .e = e, .token_path = p->token, .check = p->check};
	struct delta_token saved;
	u64 skip_until = 0;
	int in = p->in_fd, rc, wrc;

	delta_error_init(e);
	delta_ioq_init(&a.sioq, p->io_depth);
	delta_ioq_init(&a.wioq, p->io_depth);
	a.r = delta_reader_new(delta_fd_read, &in);
	rc = delta_reader_header(a.r, &a.h);
	if (rc) {
		delta_error_add(e, "%s: %s", p->name, delta_reader_error(a.r));
		e->corrupt = rc == -EILSEQ;
		goto out;
	}
	if (p->on_header && p->on_header(&a.h, p->arg)) {
		rc = -ECANCELED;
		goto out;
	}
	rc = apply_resume_point(&a, &saved, &skip_until);
	if (!rc)
		rc = apply_open_devs(p, &a);
	if (rc)
		goto out;
	apply_buffers(&a);
	delta_reader_token(a.r, &a.applied);
	clock_gettime(CLOCK_MONOTONIC, &a.last_save);
	/* a token from before the first write: a receiver killed at any moment leaves one, so
	 * what it wrote is the interrupted part of this transfer (a re-sent stream skipping to
	 * an existing token keeps that one); saved before the writer owns the token */
	if (a.token_path && a.origin.fd >= 0 && !a.check && !skip_until)
		rc = apply_save(&a, e);
	if (!rc) {
		apply_writer_start(&a);
		rc = apply_records(p, &a, &saved, &skip_until);
		wrc = apply_writer_stop(&a); /* what was queued before a failure is written */
		if (!rc)
			rc = wrc;
	}
	/* make durable what was applied, and record where to resume */
	if (a.origin.fd >= 0 && !a.check) {
		if (fdatasync(a.origin.fd) && !rc) {
			delta_error_add(e, "sync %s: %s", a.origin.path, strerror(errno));
			rc = -EIO;
		}
		a.dirty = false;
	}
	if (rc) {
		/* skipping a re-sent stream that was never matched to the token: keep the token */
		if (skip_until && a.token_path)
			delta_error_add(e, "resume token %s unchanged", a.token_path);
		else if (a.token_path && a.origin.fd >= 0 && apply_save(&a, e) == 0)
			delta_error_add(e,
					"resume token saved in %s (next record %llu, chunk %llu)",
					a.token_path, (unsigned long long)a.applied.next_seq,
					(unsigned long long)a.applied.next_chunk);
		goto out;
	}
	if (a.token_path)
		unlink(a.token_path);
	delta_reader_trailer(a.r, &st->tr);
	st->written_chunks = a.written_chunks;
out:
	if (a.q)
		for (unsigned i = 0; i < a.nq; i++)
			free(a.q[i].payload);
	free(a.q);
	free(a.zeros);
	delta_codec_free(a.dc);
	delta_reader_free(a.r);
	delta_dev_close(&a.origin);
	delta_dev_close(&a.src);
	delta_ioq_free(&a.sioq);
	delta_ioq_free(&a.wioq);
	return rc;
}
