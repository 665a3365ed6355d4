/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * xfer.h - what every data-moving operation shares (the delta streams of delta/delta_xfer.h
 * behind `ddsnap delta create/apply`, send and receive): a bytes-per-second rate limit and a
 * progress line on a terminal.  Every other long operation (the server's open and replay,
 * check, dump, restore) draws the same progress line, counting its own units.
 *
 * The rate limit sleeps the caller so that the bytes accounted since xfer_rate_init() never
 * run ahead of limit * elapsed by more than XFER_BURST bytes (Zumastor's -l, without its
 * drift: the schedule is absolute, not per call).  The progress line goes to stderr only if
 * stderr is a terminal, at most XFER_PROGRESS_HZ times a second, with rate and ETA.
 * Single-threaded; the rate limit blocks (nanosleep), nothing else does.
 */
#ifndef DDSNAP_XFER_H
#define DDSNAP_XFER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Bytes that may go out ahead of schedule: one extent, so pacing does not split bursts. */
#define XFER_BURST (1u << 20)
/* Progress redraws per second: enough to look alive, cheap on slow terminals. */
#define XFER_PROGRESS_HZ 4

struct xfer_rate {
	uint64_t limit; /* bytes per second; 0 = unlimited */
	uint64_t bytes;
	struct timespec start;
};

struct xfer_progress {
	bool enabled;
	const char *what;
	const char *unit; /* NULL: bytes, drawn in MiB; else counted, e.g. "exceptions" */
	uint64_t total, done;
	struct timespec start, last;
};

/* Starts the schedule now.  limit 0 disables the limit. */
void xfer_rate_init(struct xfer_rate *r, uint64_t limit);
/* Accounts @bytes just sent and sleeps as long as the transfer is ahead of the limit. */
void xfer_rate_account(struct xfer_rate *r, uint64_t bytes);

/* Enables the progress line iff stderr is a terminal (or @force). @total 0 = unknown. */
void xfer_progress_init(struct xfer_progress *p, const char *what, uint64_t total, bool force);
/* The same, counting @unit ("blocks", "lines", ...) instead of bytes. */
void xfer_progress_init_units(struct xfer_progress *p, const char *what, const char *unit,
			      uint64_t total, bool force);
/* Sets the amount done and redraws if due. */
void xfer_progress_update(struct xfer_progress *p, uint64_t done);
/* Final redraw and newline. */
void xfer_progress_done(struct xfer_progress *p);

/* Seconds since @t (CLOCK_MONOTONIC). */
double xfer_elapsed(const struct timespec *t);

#endif
