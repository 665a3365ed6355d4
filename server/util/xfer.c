// SPDX-License-Identifier: GPL-2.0-only
/*
 * xfer.c - rate limit and progress line for data-moving operations.
 *
 * The rate limit keeps an absolute schedule from xfer_rate_init(): after B bytes the
 * transfer must not be earlier than B / limit seconds minus the burst allowance, so
 * rounding in individual sleeps never accumulates.  Nothing here touches data; a crash
 * leaves nothing behind.
 */
#include "util/xfer.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

double xfer_elapsed(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

void xfer_rate_init(struct xfer_rate *r, uint64_t limit)
{
	r->limit = limit;
	r->bytes = 0;
	clock_gettime(CLOCK_MONOTONIC, &r->start);
}

void xfer_rate_account(struct xfer_rate *r, uint64_t bytes)
{
	double due, ahead;

	r->bytes += bytes;
	if (!r->limit || r->bytes <= XFER_BURST)
		return;
	due = (double)(r->bytes - XFER_BURST) / (double)r->limit;
	ahead = due - xfer_elapsed(&r->start);
	if (ahead > 0) {
		struct timespec ts = {.tv_sec = (time_t)ahead,
				      .tv_nsec = (long)((ahead - (double)(time_t)ahead) * 1e9)};

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
}

void xfer_progress_init(struct xfer_progress *p, const char *what, uint64_t total, bool force)
{
	xfer_progress_init_units(p, what, NULL, total, force);
}

void xfer_progress_init_units(struct xfer_progress *p, const char *what, const char *unit,
			      uint64_t total, bool force)
{
	p->enabled = force || isatty(STDERR_FILENO);
	p->what = what;
	p->unit = unit;
	p->total = total;
	p->done = 0;
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	p->last = p->start;
}

static void draw(struct xfer_progress *p)
{
	double t = xfer_elapsed(&p->start), rate = t > 0 ? (double)p->done / t : 0;
	double mib = 1024.0 * 1024.0;

	if (p->unit) {
		double eta =
			rate > 0 && p->total > p->done ? (double)(p->total - p->done) / rate : 0;

		if (p->total)
			fprintf(stderr, "\r%s: %llu / %llu %s  %3.0f%%  ETA %d:%02d   ", p->what,
				(unsigned long long)p->done, (unsigned long long)p->total, p->unit,
				100.0 * (double)(p->done < p->total ? p->done : p->total) /
					(double)p->total,
				(int)eta / 60, (int)eta % 60);
		else
			fprintf(stderr, "\r%s: %llu %s  %.0f/s   ", p->what,
				(unsigned long long)p->done, p->unit, rate);
		return;
	}
	if (p->total && rate > 0) {
		double eta = (double)(p->total > p->done ? p->total - p->done : 0) / rate;

		fprintf(stderr, "\r%s: %.1f / %.1f MiB  %3.0f%%  %.1f MiB/s  ETA %d:%02d   ",
			p->what, (double)p->done / mib, (double)p->total / mib,
			100.0 * (double)p->done / (double)p->total, rate / mib, (int)eta / 60,
			(int)eta % 60);
	} else {
		fprintf(stderr, "\r%s: %.1f MiB  %.1f MiB/s   ", p->what, (double)p->done / mib,
			rate / mib);
	}
}

void xfer_progress_update(struct xfer_progress *p, uint64_t done)
{
	p->done = done;
	if (!p->enabled || xfer_elapsed(&p->last) < 1.0 / XFER_PROGRESS_HZ)
		return;
	clock_gettime(CLOCK_MONOTONIC, &p->last);
	draw(p);
}

void xfer_progress_done(struct xfer_progress *p)
{
	if (!p->enabled)
		return;
	draw(p);
	fputc('\n', stderr);
}
