// SPDX-License-Identifier: GPL-2.0-only
/*
 * zplan.c - the replication planner: which stream a target gets, when, and what both sides
 * keep for it (the rules are in zplan.h and doc/replication.md; tests/unit/test_zplan.c
 * checks them against an independent model over simulated weeks of a chain A -> B -> C
 * and a second target A -> D, with cut links, failures and hard retention).
 *
 * Invariants the rules give, given that the monitor applies the holds they name:
 *  - never a full stream while the two sides have a snapshot in common, forced or not: the
 *    base is the newest common snapshot, rule 6 sends from it, and a forced run rewinds the
 *    replica to it instead;
 *  - the base is never pruned: zp_sender_needs and zp_replica_needs name it on both sides,
 *    and zs_retain keeps whatever zp_mark_bases marked.  So the base only moves forward
 *    (to the snapshot of the next successful transfer), and once a first transfer
 *    succeeded, a full resend is never needed again while the holds stand;
 *  - nothing is applied twice or skipped: a stream always starts at the replica's newest
 *    snapshot (a replica with a newer one of its own is refused, rule 3), a cut stream is
 *    resumed before anything else is sent (rule 2: its snapshots are held on the sender from
 *    before its first byte, as in flight, then through the token), and the snapshot sent
 *    is newer than every snapshot the replica has;
 *  - nothing the replica holds is overwritten without --force-full, and even then its own
 *    snapshots are set aside, not deleted.
 *
 * No state, no clock (now is an argument), no locking: the monitor plans under the volume's
 * lock from the state files and the receiver's report, and a crash between planning and
 * acting leaves nothing to repair: the next tick plans again from the same facts (an
 * in-flight transfer's snapshot stays held through state/, the receiver's token says how far
 * a cut stream got).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "zplan.h"

static const char *const action_names[] = {"idle", "wait", "send", "resume", "rewind", "refuse"};
static const char *const reason_names[] = {"ok",       "no-snapshot", "up-to-date",
					   "not-yet",  "backing-off", "token-lost",
					   "diverged", "written",     "no-common"};

const char *zp_action_name(enum zp_action a)
{
	return (unsigned)a < sizeof(action_names) / sizeof(*action_names) ? action_names[a] : "?";
}

const char *zp_reason_name(enum zp_reason r)
{
	return (unsigned)r < sizeof(reason_names) / sizeof(*reason_names) ? reason_names[r] : "?";
}

int64_t zp_backoff(uint32_t failures)
{
	int64_t wait = ZP_RETRY_FIRST;

	if (!failures)
		return 0;
	for (uint32_t i = 1; i < failures && wait < ZP_RETRY_MAX; i++)
		wait *= 2;
	return wait < ZP_RETRY_MAX ? wait : ZP_RETRY_MAX;
}

bool zp_period_ok(uint32_t period)
{
	return !period || (period >= ZP_PERIOD_MIN && period <= ZP_PERIOD_MAX);
}

bool zp_same(const struct zp_snap *a, const struct zp_snap *b)
{
	return a->time == b->time && a->gen == b->gen && !memcmp(a->uuid, b->uuid, ZP_UUID_LEN);
}

/* The snapshot of time @time in @s, or NULL. */
static const struct zp_snap *find(const struct zp_snap *s, size_t n, int64_t time)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].time == time)
			return &s[i];
	return NULL;
}

/* The replica's snapshot that is @s (same identity, not set aside), or NULL. */
static const struct zp_snap *on_replica(const struct zp_target *t, const struct zp_snap *s)
{
	const struct zp_snap *r = find(t->replica, t->nreplica, s->time);

	return r && !r->aside && zp_same(r, s) ? r : NULL;
}

/* The newest snapshot of @s (skipping set-aside ones), or NULL. */
static const struct zp_snap *newest_of(const struct zp_snap *s, size_t n)
{
	const struct zp_snap *best = NULL;

	for (size_t i = 0; i < n; i++)
		if (!s[i].aside && (!best || s[i].time > best->time))
			best = &s[i];
	return best;
}

/* Rule 1: the newest sender snapshot the replica has, or NULL. */
static const struct zp_snap *base_of(const struct zp_target *t)
{
	const struct zp_snap *best = NULL;

	for (size_t i = 0; i < t->nsender; i++)
		if (!t->sender[i].aside && (!best || t->sender[i].time > best->time) &&
		    on_replica(t, &t->sender[i]))
			best = &t->sender[i];
	return best;
}

/* The time of the first of two snapshots of one time in @s, or 0. */
static int64_t duplicate(const struct zp_snap *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (s[i].time == s[j].time)
				return s[i].time;
	return 0;
}

/* A snapshot's @GMT name for messages (its number if out of range). */
static const char *name(int64_t t, char buf[ZS_NAME_LEN + 8])
{
	if (zs_name(t, buf))
		snprintf(buf, ZS_NAME_LEN + 8, "tag %lld", (long long)t);
	return buf;
}

/* Rule 2: can the token's stream still be sent and received?  (A snapshot the sender set
 * aside left its history: a stream to it is not resumed.) */
static bool token_usable(const struct zp_target *t)
{
	const struct zp_snap *to = find(t->sender, t->nsender, t->token.to), *from;

	if (!to || to->aside || find(t->replica, t->nreplica, t->token.to))
		return false;
	if (!t->token.from)
		return true;
	from = find(t->sender, t->nsender, t->token.from);
	return from && !from->aside && on_replica(t, from);
}

/* Rule 5: the first instant the transfer may start; @resume: a cut one (no period). */
static int64_t due_at(const struct zp_target *t, int64_t now, bool resume)
{
	if (t->manual || t->force_full)
		return now;
	if (t->failures)
		return t->last_failure_at + zp_backoff(t->failures);
	if (!resume && t->period && t->last_good_at)
		return t->last_good_at + t->period;
	return now;
}

/* Fills the stream and the timing of a SEND or RESUME; WAIT if it is not due yet. */
static int go(const struct zp_target *t, int64_t now, struct zp_plan *p, bool resume, int64_t from,
	      int64_t to)
{
	int64_t due = due_at(t, now, resume);
	char a[ZS_NAME_LEN + 8], b[ZS_NAME_LEN + 8];

	p->from = from;
	p->to = to;
	if (now < due) {
		p->action = ZP_WAIT;
		p->reason = t->failures && !t->manual ? ZP_BACKING_OFF : ZP_NOT_YET;
		p->next = due;
		if (p->reason == ZP_BACKING_OFF)
			snprintf(p->why, sizeof(p->why), "%u failed attempt%s: retrying in %llds",
				 t->failures, t->failures > 1 ? "s" : "", (long long)(due - now));
		else
			snprintf(p->why, sizeof(p->why), "next transfer in %llds (period %us)",
				 (long long)(due - now), t->period);
		return 0;
	}
	p->action = resume ? ZP_RESUME : ZP_SEND;
	p->reason = ZP_OK;
	p->next = now;
	if (from)
		snprintf(p->why, sizeof(p->why), "%s %s incremental from %s",
			 resume ? "resume" : "send", name(to, a), name(from, b));
	else
		snprintf(p->why, sizeof(p->why), "%s %s in full%s", resume ? "resume" : "send",
			 name(to, a), t->force_full && !resume ? " (forced)" : "");
	return 0;
}

/* A refusal because of @conflict (0: none), p->why from @fmt. */
static void refuse(struct zp_plan *p, enum zp_reason r, int64_t conflict, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void refuse(struct zp_plan *p, enum zp_reason r, int64_t conflict, const char *fmt, ...)
{
	va_list ap;

	p->action = ZP_REFUSE;
	p->reason = r;
	p->conflict = conflict;
	p->next = -1;
	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
}

int zp_plan(const struct zp_target *t, int64_t now, struct zp_plan *p)
{
	const struct zp_snap *newest, *base, *conflict = NULL;
	char a[ZS_NAME_LEN + 8];
	bool lost = false;
	int64_t dup;

	memset(p, 0, sizeof(*p));
	p->next = -1;
	p->lag = -1;
	if (!zp_period_ok(t->period)) {
		snprintf(p->why, sizeof(p->why), "period %us is neither 0 nor %d to %d", t->period,
			 ZP_PERIOD_MIN, ZP_PERIOD_MAX);
		return -EINVAL;
	}
	if ((dup = duplicate(t->sender, t->nsender)) ||
	    (dup = duplicate(t->replica, t->nreplica))) {
		snprintf(p->why, sizeof(p->why), "two snapshots of time %lld on one side",
			 (long long)dup);
		return -EINVAL;
	}
	newest = newest_of(t->sender, t->nsender);
	base = base_of(t);
	p->base = base ? base->time : 0;
	for (size_t i = 0; i < t->nsender; i++)
		p->behind += !t->sender[i].aside && t->sender[i].time > p->base;
	if (base)
		p->lag = newest->time - base->time;

	/* 2: a cut stream first */
	if (t->token.to) {
		if (token_usable(t))
			return go(t, now, p, true, t->token.from, t->token.to);
		if (!t->force_full) {
			refuse(p, ZP_TOKEN_LOST, t->token.to,
			       "the cut transfer of %s cannot be resumed (its snapshots are "
			       "gone or set aside) and left the replica half-applied: "
			       "replicate --force-full",
			       name(t->token.to, a));
			return 0;
		}
		lost = true;
	}
	/* 3: a replica with data of its own */
	for (size_t i = 0; i < t->nreplica; i++) {
		const struct zp_snap *r = &t->replica[i];

		if (!r->aside && r->time > p->base && (!conflict || r->time < conflict->time))
			conflict = r;
	}
	if (base && (conflict || t->replica_written || lost)) {
		if (!t->force_full) {
			if (conflict) {
				refuse(p, ZP_DIVERGED, conflict->time,
				       "the replica has %s, newer than the newest snapshot both "
				       "sides have and not the sender's: replicate --force-full",
				       name(conflict->time, a));
			} else {
				refuse(p, ZP_WRITTEN, 0,
				       "the replica's origin was written since its newest "
				       "snapshot: replicate --force-full");
			}
			return 0;
		}
		p->action = ZP_REWIND;
		p->conflict = conflict ? conflict->time : 0;
		p->next = now;
		snprintf(p->why, sizeof(p->why),
			 "rewind the replica to %s: set its newer snapshots aside, roll its origin "
			 "back",
			 name(p->base, a));
		return 0;
	}
	if (!base && (conflict || t->replica_written || lost)) {
		if (!t->force_full) {
			if (conflict) {
				int64_t c = newest_of(t->replica, t->nreplica)->time;

				refuse(p, ZP_NO_COMMON, c,
				       "the replica has snapshots (the newest %s) but none in "
				       "common with the sender: replicate --force-full",
				       name(c, a));
			} else {
				refuse(p, ZP_WRITTEN, 0,
				       "the replica holds data but no snapshot of the sender's: "
				       "replicate --force-full");
			}
			return 0;
		}
		if (newest && find(t->replica, t->nreplica, newest->time)) {
			refuse(p, ZP_DIVERGED, newest->time,
			       "the replica has another snapshot named %s: delete it there first",
			       name(newest->time, a));
			return 0;
		}
	}
	/* 4: nothing to send */
	if (!newest) {
		p->reason = ZP_NO_SNAPSHOT;
		snprintf(p->why, sizeof(p->why), "the sender has no snapshot");
		return 0;
	}
	if (base == newest) {
		p->reason = ZP_UP_TO_DATE;
		snprintf(p->why, sizeof(p->why), "the replica has %s, the newest",
			 name(newest->time, a));
		return 0;
	}
	/* 5, 6 */
	return go(t, now, p, false, p->base, newest->time);
}

/* Appends @time to the @k times of @out (room for @max) unless there already; returns k. */
static size_t add_capped(int64_t *out, size_t k, size_t max, int64_t time)
{
	for (size_t i = 0; i < k && i < max; i++)
		if (out[i] == time)
			return k;
	if (k < max)
		out[k] = time;
	return k + 1;
}

size_t zp_sender_needs(const struct zp_target *t, int64_t out[ZP_NEEDS_MAX])
{
	const int64_t want[] = {zp_base(t), t->token.to ? t->token.from : 0, t->token.to,
				t->inflight};
	size_t n = 0;

	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++)
		if (find(t->sender, t->nsender, want[i]))
			n = add_capped(out, n, ZP_NEEDS_MAX, want[i]);
	return n;
}

int64_t zp_base(const struct zp_target *t)
{
	const struct zp_snap *base = base_of(t);

	return base ? base->time : 0;
}

size_t zp_replica_needs(const struct zp_snap *replica, size_t n, struct zp_token token,
			int64_t named, int64_t *out, size_t max)
{
	const struct zp_snap *s;
	size_t k = 0;

	/* the newest of each history: no other snapshot of its uuid (not set aside) is newer */
	for (size_t i = 0; i < n; i++) {
		bool newest = !replica[i].aside;

		for (size_t j = 0; j < n && newest; j++)
			if (j != i && !replica[j].aside && replica[j].time > replica[i].time &&
			    !memcmp(replica[j].uuid, replica[i].uuid, ZP_UUID_LEN))
				newest = false;
		if (newest)
			k = add_capped(out, k, max, replica[i].time);
	}
	if (token.to && token.from && find(replica, n, token.from))
		k = add_capped(out, k, max, token.from);
	if (named && (s = find(replica, n, named)) && !s->aside)
		k = add_capped(out, k, max, named);
	return k;
}

void zp_mark_bases(struct zs_snap *snaps, size_t n, const int64_t *times, size_t ntimes)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < ntimes; j++)
			if (snaps[i].time == times[j])
				snaps[i].base = true;
}
