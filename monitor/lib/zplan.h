/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * zplan.h - the replication planner of the zumastor monitor (issue 19, doc/replication.md):
 * given what one target's sender and receiver hold, decide whether a transfer is due, which
 * stream to send (full or incremental, from which base, to which snapshot, resumed or not),
 * what the sender and the replica must keep, when to retry after failures, and when to refuse.
 *
 * Identity.  A snapshot is known by its time (the @GMT name and ddsnap tag, zsched.h) and by
 * its provenance: the uuid of the volume that took it and its generation there.  A replica
 * records the provenance of each snapshot it receives and passes it on down a chain, so the
 * same snapshot has the same identity on A, B and C, and after a promotion.  Two snapshots
 * are "the same" when time, uuid and generation all match; a same-time snapshot of another
 * history is not a base.
 *
 * The rules, in order (each later rule applies only when no earlier one decided):
 *
 *  1. Base: the newest snapshot the sender and the replica both have (same identity, set
 *     aside on neither side).
 *  2. Resume: a resume token (a cut transfer from -> to, from 0 for a full stream) whose
 *     snapshots still exist (to on the sender and not on the replica, from on both sides)
 *     is resumed: the same stream again, the receiver skips what it applied.  A token whose
 *     snapshots are gone left a half-applied origin that no incremental may follow: refused
 *     (ZP_TOKEN_LOST).
 *  3. The replica has data of its own: a snapshot newer than the base (ZP_DIVERGED; ZP_NO_COMMON
 *     without a base), or an origin written since its newest snapshot (ZP_WRITTEN).
 *     Refused, so that nothing on it is overwritten.
 *  4. Nothing to send: the sender has no snapshot (ZP_NO_SNAPSHOT), or the base is its
 *     newest (ZP_UP_TO_DATE).
 *  5. Timing: after a failure, not before last_failure_at + zp_backoff(failures)
 *     (ZP_BACKING_OFF); else, for a new stream with a period, not before last_good_at +
 *     period (ZP_NOT_YET).  A manual or forced run skips both.
 *  6. Send the sender's newest snapshot, incremental from the base, full without one.
 *
 * Forced (zumastor replicate --force-full), the refusals of 2 and 3 turn into: with a base,
 * ZP_REWIND (the replica sets aside its snapshots newer than the base and rolls its origin
 * back to the base; the next plan sends the incremental); without one, a full stream of the
 * newest snapshot (the replica sets aside its snapshots newer than the one received).  So
 * there is never a full stream while a common snapshot exists, forced or not.
 *
 * Holds.  The sender keeps, for each target: the base, the resume token's snapshots and the
 * snapshot of a transfer in flight (zp_sender_needs).  The replica keeps the newest snapshot
 * of each history (the base of the sender's next incremental, or of a rewind), the base the
 * sender last named, its token's base, and what was set aside (zp_replica_needs).  Mark them with zp_mark_bases() before
 * zs_retain(): retention never prunes a base, and the monitor sets their usecount like a
 * hold, so the server's full-store policy does not delete them either.
 *
 * Pure functions of their arguments; no clock, no state, thread-safe.
 */
#ifndef ZUMASTOR_ZPLAN_H
#define ZUMASTOR_ZPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "zsched.h"

/* Retries after failures: the first after this many seconds, each next one twice as late,
 * never later than ZP_RETRY_MAX after the last failure. */
#define ZP_RETRY_FIRST 60
#define ZP_RETRY_MAX   3600
/* Bounds of a target's period in seconds (config validation quotes them); 0: after each
 * snapshot. */
#define ZP_PERIOD_MIN 60
#define ZP_PERIOD_MAX (31 * 86400)

#define ZP_UUID_LEN   16

struct zp_snap {
	int64_t time;		   /* the @GMT name and ddsnap tag (zsched.h) */
	uint8_t uuid[ZP_UUID_LEN]; /* provenance: the volume that took it */
	uint64_t gen;		   /* its generation in that volume */
	bool aside;		   /* replica only: set aside at a re-attach (never a base) */
};

/* A receiver's resume token as the planner needs it: the stream from -> to (from 0: full)
 * was cut; to == 0: no token. */
struct zp_token {
	int64_t from, to;
};

struct zp_target {
	const struct zp_snap *sender; /* the sender's live snapshots, any order */
	size_t nsender;
	const struct zp_snap *replica; /* the receiver's, as it last reported them */
	size_t nreplica;
	bool replica_written;  /* its origin was written since its newest snapshot (or holds
				* data without any snapshot), as last reported */
	struct zp_token token; /* its resume token, as last reported */
	int64_t inflight;      /* the snapshot of a transfer started and not known to have
				* ended (until success, or the receiver's next report), 0 */
	int64_t last_good;     /* the snapshot of the last successful transfer, 0 */
	int64_t last_good_at;  /* when it ended */
	uint32_t failures;     /* failed attempts since the last success */
	int64_t last_failure_at;
	uint32_t period; /* seconds between transfers; 0: after each snapshot */
	bool manual;	 /* zumastor replicate: now, whatever the period and backoff */
	bool force_full; /* --force-full: overwrite a replica that has data */
};

enum zp_action {
	ZP_IDLE,   /* nothing to send */
	ZP_WAIT,   /* something to send, at plan.next */
	ZP_SEND,   /* send from -> to now (from 0: full) */
	ZP_RESUME, /* send the token's stream from -> to now, resuming */
	ZP_REWIND, /* forced: the replica goes back to the base (set aside, revert) */
	ZP_REFUSE, /* the replica would lose data: tell the admin (plan.why) */
};

enum zp_reason {
	ZP_OK,		/* SEND or RESUME */
	ZP_NO_SNAPSHOT, /* IDLE: the sender has no snapshot */
	ZP_UP_TO_DATE,	/* IDLE: the replica has the sender's newest */
	ZP_NOT_YET,	/* WAIT: the period has not passed */
	ZP_BACKING_OFF, /* WAIT: retrying after failures */
	ZP_TOKEN_LOST,	/* REFUSE: a cut transfer's snapshots are gone */
	ZP_DIVERGED,	/* REFUSE: the replica has a newer snapshot not from the sender (or,
			 * forced, another snapshot of the newest one's time) */
	ZP_WRITTEN,	/* REFUSE: the replica's origin was written behind the monitor's back */
	ZP_NO_COMMON,	/* REFUSE: the replica has snapshots, none in common */
};

struct zp_plan {
	enum zp_action action;
	enum zp_reason reason;
	int64_t base;	  /* the newest common snapshot, 0: none */
	int64_t from, to; /* the stream (SEND, RESUME; WAIT: what would be sent) */
	int64_t next;	  /* when to act: now, the WAIT time; -1: not before something changes */
	int64_t conflict; /* REFUSE, REWIND: the snapshot in the way (the oldest), 0 */
	uint32_t behind;  /* sender snapshots newer than the base */
	int64_t lag;	  /* seconds from the base to the sender's newest; -1: no base */
	char why[200];	  /* one line for people */
};

/* "idle", "wait", ... and "ok", "up-to-date", ... for status and the helper. */
const char *zp_action_name(enum zp_action a);
const char *zp_reason_name(enum zp_reason r);

/* Seconds to wait after the @failures-th consecutive failure (>= 1): ZP_RETRY_FIRST doubled
 * per failure, at most ZP_RETRY_MAX.  0 for 0 failures. */
int64_t zp_backoff(uint32_t failures);

/* Is @period a valid target period (0, or ZP_PERIOD_MIN..ZP_PERIOD_MAX)? */
bool zp_period_ok(uint32_t period);

/* Do @a and @b have the same identity (time, uuid, generation)? */
bool zp_same(const struct zp_snap *a, const struct zp_snap *b);

/*
 * Plans @t at @now into *@p (the rules above).  Returns 0, or -EINVAL (with p->why saying
 * what) for two snapshots of the same time on one side or a period out of bounds.
 * O(nsender * nreplica).
 */
int zp_plan(const struct zp_target *t, int64_t now, struct zp_plan *p);

/* The most snapshots one target needs kept on its sender. */
#define ZP_NEEDS_MAX 4

/*
 * The sender's snapshots target @t needs kept (rule Holds), each once, into @out; returns
 * how many.  Only snapshots the sender has are named.
 */
size_t zp_sender_needs(const struct zp_target *t, int64_t out[ZP_NEEDS_MAX]);

/* The base of @t (rule 1): the time of the newest common snapshot, 0 if none.  The sender
 * names it in each request to the receiver (doc/replication.md). */
int64_t zp_base(const struct zp_target *t);

/*
 * The replica's snapshots that must be kept: the newest snapshot of each history (uuid) it
 * holds, not set aside; its token's base; and @named, the base the sender named in its last
 * request (0: none yet).  The newest received snapshot is the base of the sender's next
 * incremental; when the replica took snapshots of its own, the newest received one is still
 * the base a rewind goes back to; and @named covers an old master re-attached as a replica,
 * whose base and newer snapshots are of one history.  Writes up to @max times into @out and
 * returns how many there are (@n + 2 always suffices).  Set-aside snapshots are held by the
 * monitor like the admin's holds until the admin drops them; they are not named here.
 */
size_t zp_replica_needs(const struct zp_snap *replica, size_t n, struct zp_token token,
			int64_t named, int64_t *out, size_t max);

/* Sets zs_snap.base on each of the @n snapshots whose time is one of the @ntimes @times
 * (it never clears one: call it once per target, after clearing them). */
void zp_mark_bases(struct zs_snap *snaps, size_t n, const int64_t *times, size_t ntimes);

#endif
