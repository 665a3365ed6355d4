// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_zplan.c - the replication planner against an independent model, over simulated weeks.
 *
 * The model states zplan.h's rules the slow, obvious way: identities are printed strings
 * ("time/uuid/gen"), the base is found by sorting the sender's snapshots newest first and
 * taking the first whose string the replica has, the backoff is a table, and the decision is
 * made by collecting every fact first and then reading them in the documented order.  The
 * implementation scans once, with no strings.  Both must agree on every plan.
 *
 * The world: four volumes, A (a master taking scheduled snapshots of an origin that changes
 * at every tick), B (A's replica, and the sender to C), C and D (A's second target), each with
 * retention of its own, over four simulated weeks of ticks a minute to days apart.  Links go
 * down and come back; transfers succeed, are cut (the receiver keeps a token) or fail before
 * the first byte; A's retention is hard, and the store's full-store policy now and then drops
 * every snapshot that is not held; replicas are written or snapshotted behind the monitor's
 * back and the admin answers with --force-full (a rewind to the common snapshot, which sets
 * the replica's own snapshots aside); B offers C only what it received (target_of).
 *
 * The receiver is modelled as ddsnap receive behaves (tools/replicate.c): it refuses a
 * stream whose target exists, whose base it lacks, or that would follow a write its token
 * does not explain, and a cut stream continues only from its token.  The sender's monitor
 * learns the receiver's state (`list`) only when the link is up.
 *
 * The checks: every plan equals the model's; nothing is received twice, and no stream is
 * refused by the receiver or starts anywhere but at the replica's state; no full stream
 * while a common snapshot exists, forced or not (so one full stream per target, plus forced
 * ones where nothing was in common); the real base of every target (computed from both
 * sides, not from the planner) and a cut stream's snapshots are never pruned, and the base
 * only moves forward while nobody diverges; a cut stream is never lost; retries after
 * failures wait at least the backoff; at the end, with the links up, B's, C's and D's newest
 * snapshot is their sender's newest with the same content, and C's is A's.  24 runs take
 * under a second; seeds print (ZPLAN_SEED replays one).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "util/base.h"
#include "lib/rng.h"
#include "zplan.h"

#define MIN_ 60
#define HOUR 3600
#define DAY  86400
#define T0   1796551200LL /* 2026-12-06 10:00:00 UTC */

/*----------------------------------------------------------------
 * The model
 *--------------------------------------------------------------*/

static void ident(const struct zp_snap *s, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%lld/", (long long)s->time);

	for (int i = 0; i < ZP_UUID_LEN; i++)
		n += snprintf(buf + n, len - (size_t)n, "%02x", s->uuid[i]);
	snprintf(buf + n, len - (size_t)n, "/%llu", (unsigned long long)s->gen);
}

static const int64_t backoff_table[] = {0, 60, 120, 240, 480, 960, 1920};

static int64_t model_backoff(uint32_t f)
{
	return f < ARRAY_SIZE(backoff_table) ? backoff_table[f] : 3600;
}

static int cmp_desc(const void *a, const void *b)
{
	int64_t x = ((const struct zp_snap *)a)->time, y = ((const struct zp_snap *)b)->time;

	return (x < y) - (x > y);
}

/* The replica's (non-aside) identity strings, and whether it has time @t at all. */
static bool model_has(const struct zp_target *t, const struct zp_snap *s)
{
	char want[128], have[128];

	ident(s, want, sizeof(want));
	for (size_t i = 0; i < t->nreplica; i++) {
		if (t->replica[i].aside)
			continue;
		ident(&t->replica[i], have, sizeof(have));
		if (!strcmp(want, have))
			return true;
	}
	return false;
}

static int64_t model_base(const struct zp_target *t)
{
	struct zp_snap *sorted = calloc(t->nsender + 1, sizeof(*sorted));
	int64_t base = 0;

	memcpy(sorted, t->sender, t->nsender * sizeof(*sorted));
	qsort(sorted, t->nsender, sizeof(*sorted), cmp_desc);
	for (size_t i = 0; i < t->nsender && !base; i++)
		if (!sorted[i].aside && model_has(t, &sorted[i]))
			base = sorted[i].time;
	free(sorted);
	return base;
}

static bool has_time(const struct zp_snap *s, size_t n, int64_t time)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].time == time)
			return true;
	return false;
}

struct mplan {
	enum zp_action action;
	enum zp_reason reason;
	int64_t base, from, to, next, conflict;
};

static struct mplan model_plan(const struct zp_target *t, int64_t now)
{
	struct mplan m = {.next = -1};
	int64_t newest = 0, oldest_newer = 0, replica_newest = 0, due;
	bool token_ok = false, lost, own, resume = false;

	/* the facts */
	m.base = model_base(t);
	for (size_t i = 0; i < t->nsender; i++)
		if (!t->sender[i].aside && t->sender[i].time > newest)
			newest = t->sender[i].time;
	for (size_t i = 0; i < t->nreplica; i++) {
		int64_t r = t->replica[i].time;

		if (t->replica[i].aside)
			continue;
		replica_newest = r > replica_newest ? r : replica_newest;
		if (r > m.base && (!oldest_newer || r < oldest_newer))
			oldest_newer = r;
	}
	if (t->token.to) {
		const struct zp_snap *f = NULL, *to = NULL;

		for (size_t i = 0; i < t->nsender; i++) {
			if (t->sender[i].aside)
				continue;
			if (t->sender[i].time == t->token.from)
				f = &t->sender[i];
			if (t->sender[i].time == t->token.to)
				to = &t->sender[i];
		}
		token_ok = to && !has_time(t->replica, t->nreplica, t->token.to) &&
			   (!t->token.from || (f && model_has(t, f)));
	}
	lost = t->token.to && !token_ok;
	own = oldest_newer || t->replica_written || lost;
	/* the order of zplan.h */
	if (t->token.to && token_ok) {
		resume = true;
		m.from = t->token.from;
		m.to = t->token.to;
	} else if (lost && !t->force_full) {
		m.action = ZP_REFUSE, m.reason = ZP_TOKEN_LOST, m.conflict = t->token.to;
		return m;
	} else if (own && !t->force_full) {
		m.action = ZP_REFUSE;
		if (oldest_newer && m.base)
			m.reason = ZP_DIVERGED, m.conflict = oldest_newer;
		else if (oldest_newer)
			m.reason = ZP_NO_COMMON, m.conflict = replica_newest;
		else
			m.reason = ZP_WRITTEN;
		return m;
	} else if (own && m.base) {
		m.action = ZP_REWIND, m.conflict = oldest_newer, m.next = now;
		return m;
	} else if (own && newest && has_time(t->replica, t->nreplica, newest)) {
		m.action = ZP_REFUSE, m.reason = ZP_DIVERGED, m.conflict = newest;
		return m;
	} else if (!newest) {
		m.reason = ZP_NO_SNAPSHOT;
		return m;
	} else if (m.base == newest) {
		m.reason = ZP_UP_TO_DATE;
		return m;
	} else {
		m.from = m.base, m.to = newest;
	}
	due = now;
	if (!t->manual && !t->force_full) {
		if (t->failures > 0)
			due = t->last_failure_at + model_backoff(t->failures);
		else if (!resume && t->period > 0 && t->last_good_at > 0)
			due = t->last_good_at + t->period;
	}
	if (due > now) {
		m.action = ZP_WAIT;
		m.reason = t->failures > 0 ? ZP_BACKING_OFF : ZP_NOT_YET;
		m.next = due;
	} else {
		m.action = resume ? ZP_RESUME : ZP_SEND;
		m.next = now;
	}
	return m;
}

/* Plans with both; fails with @ctx on any difference.  Returns the implementation's. */
static struct zp_plan plan_both(const struct zp_target *t, int64_t now, const char *ctx)
{
	struct zp_plan p;
	struct mplan m = model_plan(t, now);

	assert_int_equal(zp_plan(t, now, &p), 0);
	if (p.action != m.action || p.reason != m.reason || p.base != m.base || p.next != m.next ||
	    p.conflict != m.conflict ||
	    ((p.action == ZP_SEND || p.action == ZP_RESUME || p.action == ZP_WAIT) &&
	     (p.from != m.from || p.to != m.to)))
		fail_msg("%s: plan %s/%s base %lld %lld->%lld next %lld conflict %lld; model "
			 "%s/%s base %lld %lld->%lld next %lld conflict %lld (%s)",
			 ctx, zp_action_name(p.action), zp_reason_name(p.reason), (long long)p.base,
			 (long long)p.from, (long long)p.to, (long long)p.next,
			 (long long)p.conflict, zp_action_name(m.action), zp_reason_name(m.reason),
			 (long long)m.base, (long long)m.from, (long long)m.to, (long long)m.next,
			 (long long)m.conflict, p.why);
	assert_true(p.why[0] || p.action == ZP_IDLE);
	return p;
}

/*----------------------------------------------------------------
 * Fixed cases
 *--------------------------------------------------------------*/

static struct zp_snap S(int64_t time, uint8_t vol, uint64_t gen) {
	struct zp_snap s = {.time = time, .gen = gen};

	s.uuid[0] = vol;
	return s;
}

static void
test_zplan__backoff(void **state)
{
	static const int64_t want[] = {0, 60, 120, 240, 480, 960, 1920, 3600, 3600};

	for (uint32_t f = 0; f < ARRAY_SIZE(want); f++)
		assert_int_equal(zp_backoff(f), want[f]);
	assert_int_equal(zp_backoff(UINT32_MAX), ZP_RETRY_MAX);
	for (uint32_t f = 1; f < 100; f++) {
		assert_true(zp_backoff(f) >= zp_backoff(f - 1));
		assert_int_equal(zp_backoff(f), model_backoff(f));
	}
	assert_true(zp_period_ok(0) && zp_period_ok(60) && zp_period_ok(ZP_PERIOD_MAX));
	assert_false(zp_period_ok(59) || zp_period_ok(ZP_PERIOD_MAX + 1));
}

static void test_zplan__first_full_then_incremental(void **state)
{
	struct zp_snap a[] = {S(T0, 1, 1), S(T0 + HOUR, 1, 2), S(T0 + 2 * HOUR, 1, 3)};
	struct zp_snap r[3];
	struct zp_target t = {.sender = a, .nsender = 3, .replica = r};
	struct zp_plan p;

	/* an empty replica: the newest, in full */
	p = plan_both(&t, T0 + 3 * HOUR, "empty");
	assert_int_equal(p.action, ZP_SEND);
	assert_int_equal(p.from, 0);
	assert_int_equal(p.to, T0 + 2 * HOUR);
	assert_int_equal(p.lag, -1);
	assert_int_equal(p.behind, 3);
	assert_non_null(strstr(p.why, "@GMT-2026.12.06-12.00.00 in full"));
	/* it has the oldest: incremental from it to the newest (skipping the middle one) */
	r[0] = a[0];
	t.nreplica = 1;
	p = plan_both(&t, T0 + 3 * HOUR, "one");
	assert_int_equal(p.action, ZP_SEND);
	assert_int_equal(p.from, T0);
	assert_int_equal(p.to, T0 + 2 * HOUR);
	assert_int_equal(p.lag, 2 * HOUR);
	assert_int_equal(p.behind, 2);
	/* the same time from another history is no base: no common snapshot, refused */
	r[0] = S(T0, 9, 1);
	p = plan_both(&t, T0 + 3 * HOUR, "other uuid");
	assert_int_equal(p.action, ZP_REFUSE);
	assert_int_equal(p.reason, ZP_NO_COMMON);
	r[0] = S(T0, 1, 7);
	p = plan_both(&t, T0 + 3 * HOUR, "other gen");
	assert_int_equal(p.reason, ZP_NO_COMMON);
	/* ... unless set aside (a re-attach): then the replica is as good as empty */
	r[0].aside = true;
	p = plan_both(&t, T0 + 3 * HOUR, "aside");
	assert_int_equal(p.action, ZP_SEND);
	assert_int_equal(p.from, 0);
	/* up to date */
	r[0] = a[0], r[1] = a[2];
	t.nreplica = 2;
	p = plan_both(&t, T0 + 3 * HOUR, "up to date");
	assert_int_equal(p.action, ZP_IDLE);
	assert_int_equal(p.reason, ZP_UP_TO_DATE);
	assert_int_equal(p.base, T0 + 2 * HOUR);
	assert_int_equal(p.next, -1);
	/* a sender without snapshots */
	t.nsender = 0, t.nreplica = 0;
	p = plan_both(&t, T0, "nothing");
	assert_int_equal(p.reason, ZP_NO_SNAPSHOT);
}

static void test_zplan__refusals_and_force(void **state)
{
	struct zp_snap a[] = {S(T0, 1, 1), S(T0 + HOUR, 1, 2), S(T0 + 2 * HOUR, 1, 3)};
	struct zp_snap r[] = {S(T0, 1, 1), S(T0 + 90 * MIN_, 2, 1)};
	struct zp_target t = {.sender = a, .nsender = 3, .replica = r, .nreplica = 2};
	struct zp_plan p;

	/* the replica took a snapshot of its own after the common one */
	p = plan_both(&t, T0 + 3 * HOUR, "diverged");
	assert_int_equal(p.action, ZP_REFUSE);
	assert_int_equal(p.reason, ZP_DIVERGED);
	assert_int_equal(p.conflict, T0 + 90 * MIN_);
	assert_non_null(strstr(p.why, "@GMT-2026.12.06-11.30.00"));
	assert_non_null(strstr(p.why, "--force-full"));
	t.force_full = true;
	/* forced, with a common snapshot: rewound to it, never a full stream */
	p = plan_both(&t, T0 + 3 * HOUR, "diverged, forced");
	assert_int_equal(p.action, ZP_REWIND);
	assert_int_equal(p.base, T0);
	assert_int_equal(p.conflict, T0 + 90 * MIN_);
	assert_non_null(strstr(p.why, "rewind the replica to @GMT-2026.12.06-10.00.00"));
	/* forced, with nothing in common: the newest in full */
	r[0] = S(T0, 2, 0);
	p = plan_both(&t, T0 + 3 * HOUR, "no common, forced");
	assert_int_equal(p.action, ZP_SEND);
	assert_int_equal(p.from, 0);
	assert_int_equal(p.to, T0 + 2 * HOUR);
	assert_non_null(strstr(p.why, "(forced)"));
	/* ... unless the replica has another snapshot of that name */
	r[1] = S(T0 + 2 * HOUR, 2, 1);
	p = plan_both(&t, T0 + 3 * HOUR, "same name, forced");
	assert_int_equal(p.action, ZP_REFUSE);
	assert_int_equal(p.reason, ZP_DIVERGED);
	assert_int_equal(p.conflict, T0 + 2 * HOUR);
	t.force_full = false;
	p = plan_both(&t, T0 + 3 * HOUR, "no common");
	assert_int_equal(p.reason, ZP_NO_COMMON);
	assert_int_equal(p.conflict, T0 + 2 * HOUR);
	r[0] = S(T0, 1, 1);
	/* a write on the replica behind the monitor's back */
	t.force_full = false;
	t.nreplica = 1;
	t.replica_written = true;
	p = plan_both(&t, T0 + 3 * HOUR, "written");
	assert_int_equal(p.reason, ZP_WRITTEN);
	/* ... also on a replica that never received anything (a filesystem made on it) */
	t.nreplica = 0;
	p = plan_both(&t, T0 + 3 * HOUR, "written, empty");
	assert_int_equal(p.reason, ZP_WRITTEN);
	/* a cut transfer resumes even though its partial apply wrote the origin */
	t.nreplica = 1;
	t.token = (struct zp_token){T0, T0 + HOUR};
	p = plan_both(&t, T0 + 3 * HOUR, "resume");
	assert_int_equal(p.action, ZP_RESUME);
	assert_int_equal(p.from, T0);
	assert_int_equal(p.to, T0 + HOUR); /* the cut stream, not the newest */
	/* ... nor once the sender set its target aside (a rewind upstream of a chain) */
	a[1].aside = true;
	p = plan_both(&t, T0 + 3 * HOUR, "token aside");
	assert_int_equal(p.reason, ZP_TOKEN_LOST);
	a[1].aside = false;
	/* ... but not once its target is gone on the sender: refused, or forced, rewound */
	t.nsender = 1;
	t.replica_written = true;
	p = plan_both(&t, T0 + 3 * HOUR, "token lost");
	assert_int_equal(p.reason, ZP_TOKEN_LOST);
	assert_int_equal(p.conflict, T0 + HOUR);
	t.force_full = true;
	p = plan_both(&t, T0 + 3 * HOUR, "token lost, forced");
	assert_int_equal(p.action, ZP_REWIND);
	t.force_full = false;
	/* a cut full stream is resumed when forced again, not restarted */
	t.nsender = 3, t.nreplica = 0;
	t.token = (struct zp_token){0, T0 + HOUR};
	t.force_full = true;
	p = plan_both(&t, T0 + 3 * HOUR, "forced full resumed");
	assert_int_equal(p.action, ZP_RESUME);
	assert_int_equal(p.from, 0);
	assert_int_equal(p.to, T0 + HOUR);
	/* bad input */
	a[1].time = T0;
	assert_int_equal(zp_plan(&t, T0, &p), -EINVAL);
	assert_non_null(strstr(p.why, "two snapshots"));
	a[1].time = T0 + HOUR;
	t.period = 30;
	assert_int_equal(zp_plan(&t, T0, &p), -EINVAL);
	assert_non_null(strstr(p.why, "period 30s"));
}

static void test_zplan__timing(void **state)
{
	struct zp_snap a[] = {S(T0, 1, 1), S(T0 + HOUR, 1, 2)};
	struct zp_snap r[] = {S(T0, 1, 1)};
	struct zp_target t = {.sender = a,
			      .nsender = 2,
			      .replica = r,
			      .nreplica = 1,
			      .period = DAY,
			      .last_good = T0,
			      .last_good_at = T0 + 60};
	struct zp_plan p;

	p = plan_both(&t, T0 + 2 * HOUR, "period");
	assert_int_equal(p.action, ZP_WAIT);
	assert_int_equal(p.reason, ZP_NOT_YET);
	assert_int_equal(p.next, T0 + 60 + DAY);
	p = plan_both(&t, T0 + 60 + DAY, "period over");
	assert_int_equal(p.action, ZP_SEND);
	t.manual = true;
	p = plan_both(&t, T0 + 2 * HOUR, "manual");
	assert_int_equal(p.action, ZP_SEND);
	t.manual = false;
	/* failures: the backoff rules, not the period */
	t.failures = 3;
	t.last_failure_at = T0 + 2 * HOUR;
	p = plan_both(&t, T0 + 2 * HOUR + 100, "backoff");
	assert_int_equal(p.action, ZP_WAIT);
	assert_int_equal(p.reason, ZP_BACKING_OFF);
	assert_int_equal(p.next, T0 + 2 * HOUR + 240);
	assert_non_null(strstr(p.why, "3 failed attempts"));
	p = plan_both(&t, T0 + 2 * HOUR + 240, "backoff over");
	assert_int_equal(p.action, ZP_SEND);
	/* a cut stream waits for the backoff, not for the period */
	t.failures = 0;
	t.token = (struct zp_token){T0, T0 + HOUR};
	p = plan_both(&t, T0 + 2 * HOUR, "resume, period");
	assert_int_equal(p.action, ZP_RESUME);
	/* after each snapshot: as soon as there is one */
	t.token = (struct zp_token){0, 0};
	t.period = 0;
	p = plan_both(&t, T0 + HOUR, "after each");
	assert_int_equal(p.action, ZP_SEND);
}

static void test_zplan__holds(void **state)
{
	struct zp_snap a[] = {S(T0, 1, 1), S(T0 + HOUR, 1, 2), S(T0 + 2 * HOUR, 1, 3),
			      S(T0 + 3 * HOUR, 1, 4)};
	struct zp_snap r[] = {S(T0, 1, 1), S(T0 + HOUR, 1, 2)};
	struct zp_target t = {.sender = a, .nsender = 4, .replica = r, .nreplica = 2};
	struct zs_schedule keep_one = {.count = {[ZS_HOURLY] = 1}};
	struct zs_snap z[4];
	int64_t need[ZP_NEEDS_MAX];
	size_t n;
	char why[128];

	/* the base only */
	n = zp_sender_needs(&t, need);
	assert_int_equal(n, 1);
	assert_int_equal(need[0], T0 + HOUR);
	/* plus a cut stream's snapshots and the one in flight, each once */
	t.token = (struct zp_token){T0 + HOUR, T0 + 2 * HOUR};
	t.inflight = T0 + 2 * HOUR;
	n = zp_sender_needs(&t, need);
	assert_int_equal(n, 2);
	assert_int_equal(need[1], T0 + 2 * HOUR);
	t.inflight = T0 + 3 * HOUR;
	assert_int_equal(zp_sender_needs(&t, need), 3);
	/* what the sender no longer has is not named */
	t.inflight = T0 + 5 * HOUR;
	assert_int_equal(zp_sender_needs(&t, need), 2);
	/* the replica: its newest, and its token's base */
	n = zp_replica_needs(r, 2, t.token, 0, need, ZP_NEEDS_MAX);
	assert_int_equal(n, 1);
	assert_int_equal(need[0], T0 + HOUR);
	n = zp_replica_needs(r, 2, (struct zp_token){T0, T0 + 2 * HOUR}, 0, need, ZP_NEEDS_MAX);
	assert_int_equal(n, 2);
	assert_int_equal(need[1], T0);
	/* a snapshot of the replica's own (diverged): the sender's newest stays too */
	struct zp_snap r3[] = {S(T0, 1, 1), S(T0 + HOUR, 1, 2), S(T0 + 90 * MIN_, 2, 1)};
	n = zp_replica_needs(r3, 3, (struct zp_token){0, 0}, 0, need, ZP_NEEDS_MAX);
	assert_int_equal(n, 2);
	assert_int_equal(need[0], T0 + HOUR);
	assert_int_equal(need[1], T0 + 90 * MIN_);
	/* the count is all of them even where @out is short */
	assert_int_equal(zp_replica_needs(r3, 3, (struct zp_token){T0, T0 + 2 * HOUR}, 0, need, 1),
			 3);
	assert_int_equal(need[0], T0 + HOUR);
	r[1].aside = true;
	n = zp_replica_needs(r, 2, (struct zp_token){0, 0}, 0, need, ZP_NEEDS_MAX);
	assert_int_equal(n, 1);
	assert_int_equal(need[0], T0);
	assert_int_equal(zp_replica_needs(r, 0, (struct zp_token){0, 0}, 0, need, ZP_NEEDS_MAX), 0);
	/* retention keeps what is marked, and says why */
	for (int i = 0; i < 4; i++)
		z[i] = (struct zs_snap){.time = a[i].time};
	need[0] = T0;
	zp_mark_bases(z, 4, need, 1);
	assert_int_equal(zs_retain(&keep_one, z, 4), 0);
	assert_false(z[0].prune);
	assert_true(z[1].prune && z[2].prune);
	assert_false(z[3].prune);
	assert_string_equal(zs_why(&z[0], &keep_one, why, sizeof(why)), "replication base");
	z[0].held = true;
	assert_string_equal(zs_why(&z[0], &keep_one, why, sizeof(why)), "held; replication base");
}

/* The promote case: A lost, B promoted, A re-attached as B's target: a rewind and an
 * incremental from the newest common snapshot, never a full stream; A keeps that base. */
static void test_zplan__promote_and_reattach(void **state)
{
	struct zp_snap a[] = {S(T0, 1, 1), S(T0 + HOUR, 1, 2), S(T0 + 2 * HOUR, 1, 3), {0}};
	struct zp_snap b[] = {S(T0, 1, 1), S(T0 + HOUR, 1, 2), S(T0 + 3 * HOUR, 2, 1),
			      S(T0 + 4 * HOUR, 2, 2)};
	struct zp_target t = {
		.sender = b, .nsender = 4, .replica = a, .nreplica = 3, .replica_written = true};
	struct zs_schedule keep_one = {.count = {[ZS_HOURLY] = 1}};
	struct zs_snap z[3];
	int64_t need[8];
	struct zp_plan p;
	size_t n;

	/* B had a1 and a2 from A, then took b1 and b2 of its own; A took a3 and kept writing */
	p = plan_both(&t, T0 + 5 * HOUR, "re-attached");
	assert_int_equal(p.action, ZP_REFUSE);
	assert_int_equal(p.reason, ZP_DIVERGED);
	assert_int_equal(p.base, T0 + HOUR);
	assert_int_equal(p.conflict, T0 + 2 * HOUR);
	/* A's a2 and a3 are of one history: its newest alone would leave a2 to retention; the
	 * base B names in its request keeps it */
	n = zp_replica_needs(a, 3, (struct zp_token){0, 0}, 0, need, 8);
	assert_int_equal(n, 1);
	assert_int_equal(need[0], T0 + 2 * HOUR);
	assert_int_equal(zp_base(&t), T0 + HOUR);
	n = zp_replica_needs(a, 3, (struct zp_token){0, 0}, zp_base(&t), need, 8);
	assert_int_equal(n, 2);
	assert_int_equal(need[1], T0 + HOUR);
	for (int i = 0; i < 3; i++)
		z[i] = (struct zs_snap){.time = a[i].time};
	zp_mark_bases(z, 3, need, n);
	assert_int_equal(zs_retain(&keep_one, z, 3), 0);
	assert_false(z[1].prune);
	assert_true(z[0].prune);
	/* the admin forces: a rewind to a2, not a full stream */
	t.force_full = true;
	p = plan_both(&t, T0 + 5 * HOUR, "forced");
	assert_int_equal(p.action, ZP_REWIND);
	assert_int_equal(p.base, T0 + HOUR);
	/* A set a3 (and a snapshot of its unsnapshotted writes) aside and reverted to a2 */
	a[2].aside = true;
	a[3] = S(T0 + 5 * HOUR, 1, 4);
	a[3].aside = true;
	t.nreplica = 4;
	t.replica_written = false;
	t.force_full = false;
	p = plan_both(&t, T0 + 5 * HOUR, "after the rewind");
	assert_int_equal(p.action, ZP_SEND);
	assert_int_equal(p.from, T0 + HOUR);
	assert_int_equal(p.to, T0 + 4 * HOUR);
	assert_int_equal(p.behind, 2);
	/* received: up to date, and A keeps b2 (and a2, the newest of its old history) */
	a[0] = b[3];
	p = plan_both(&t, T0 + 5 * HOUR, "received");
	assert_int_equal(p.reason, ZP_UP_TO_DATE);
	n = zp_replica_needs(a, 4, (struct zp_token){0, 0}, zp_base(&t), need, 8);
	assert_int_equal(n, 2);
	assert_int_equal(need[0], T0 + 4 * HOUR);
	assert_int_equal(need[1], T0 + HOUR);
}

/*----------------------------------------------------------------
 * The world
 *--------------------------------------------------------------*/

#define NODES	  4
#define LINKS	  3
#define MAXSNAP	  256
#define SIM_WEEKS 4

struct wsnap {
	struct zp_snap id;
	u64 content;
};

struct node {
	struct wsnap snap[MAXSNAP];
	size_t n;
	u64 origin;	     /* the origin's content; meaningless while partial */
	bool written;	     /* origin != newest snapshot's content (a partial apply, a write) */
	struct zp_token tok; /* a cut transfer's token (ddsnap receive -t) */
	int64_t named;	     /* the base its sender named in the last request */
	uint64_t gen;	     /* generation counter of the snapshots it takes */
	struct zs_schedule keep;
};

struct link {
	int src, dst;
	bool up;
	/* the sender's state files */
	struct zp_snap report[MAXSNAP];
	size_t nreport;
	bool rep_written;
	struct zp_token rep_tok;
	int64_t last_good, last_good_at, last_failure_at, inflight;
	uint32_t failures, period;
	bool force; /* the admin said --force-full (one-shot) */
	/* checks */
	int64_t prev_base;
	unsigned fulls, forced, sent, cut, failed, refused, rewound;
};

struct world {
	struct node node[NODES];
	struct link link[LINKS];
	struct rnd rnd;
	int64_t now;
	u64 next_content;
	u64 seed;
};

static const char *const node_names = "ABCD";

static struct wsnap *wfind(struct node *v, int64_t time)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->snap[i].id.time == time)
			return &v->snap[i];
	return NULL;
}

/* The newest snapshot of @v not set aside. */
static struct wsnap *wnewest(struct node *v)
{
	struct wsnap *best = NULL;

	for (size_t i = 0; i < v->n; i++)
		if (!v->snap[i].id.aside && (!best || v->snap[i].id.time > best->id.time))
			best = &v->snap[i];
	return best;
}

/* A snapshot on a replica behind the monitor's back, a few seconds before now. */
static void take_local(struct world *w, int vi)
{
	struct node *v = &w->node[vi];
	int64_t t = w->now - 1 - (int64_t)rnd_below(&w->rnd, 30);

	for (size_t i = 0; i < v->n; i++)
		if (v->snap[i].id.time >= t)
			return;
	VERIFY(v->n < MAXSNAP);
	v->snap[v->n++] =
		(struct wsnap){.id = S(t, (uint8_t)(vi + 1), ++v->gen), .content = v->origin};
	v->written = false;
}

static void take_snapshot(struct world *w, int vi)
{
	struct node *v = &w->node[vi];
	struct wsnap *s;

	if (v->n && v->snap[v->n - 1].id.time >= w->now)
		return;
	VERIFY(v->n < MAXSNAP);
	s = &v->snap[v->n++];
	*s = (struct wsnap){.id = S(w->now, (uint8_t)(vi + 1), ++v->gen), .content = v->origin};
	v->written = false; /* the snapshot is of the origin as it is */
}

/*
 * The link's target as the monitor on its sender sees it.  A sender that is itself a
 * replica (B) offers only what it received: a snapshot of its own (taken by hand) is not
 * part of the replicated history, and passed on it would leave C's base with B unheld once
 * A's --force-full sets it aside on B (the base would fall back to an older snapshot that
 * neither side holds: ZPLAN_SEED=13778895413178922641 before this rule).
 */
static void target_of(struct world *w, struct link *l, struct zp_snap *buf, struct zp_target *t)
{
	struct node *s = &w->node[l->src];
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		if (l->src == 0 || s->snap[i].id.uuid[0] != l->src + 1)
			buf[n++] = s->snap[i].id;
	*t = (struct zp_target){.sender = buf,
				.nsender = n,
				.replica = l->report,
				.nreplica = l->nreport,
				.replica_written = l->rep_written,
				.token = l->rep_tok,
				.inflight = l->inflight,
				.last_good = l->last_good,
				.last_good_at = l->last_good_at,
				.failures = l->failures,
				.last_failure_at = l->last_failure_at,
				.period = l->period,
				.force_full = l->force};
}

/* The sender asks `list`, naming the base it knows; the receiver answers with its snapshots,
 * its token, whether its origin was written. */
static void refresh(struct world *w, struct link *l)
{
	struct node *d = &w->node[l->dst];
	struct zp_snap buf[MAXSNAP];
	struct zp_target t;

	target_of(w, l, buf, &t);
	d->named = zp_base(&t);

	for (size_t i = 0; i < d->n; i++)
		l->report[i] = d->snap[i].id;
	l->nreport = d->n;
	l->rep_written = d->written;
	l->rep_tok = d->tok; /* holds what a cut stream needs from now on */
	l->inflight = 0;
}

/* The newest snapshot both sides really have (the truth, not the report), or 0. */
static int64_t true_base(struct world *w, struct link *l)
{
	struct node *s = &w->node[l->src], *d = &w->node[l->dst];
	int64_t best = 0;

	for (size_t i = 0; i < s->n; i++) {
		struct wsnap *r = wfind(d, s->snap[i].id.time);

		if (r && !r->id.aside && !s->snap[i].id.aside && zp_same(&r->id, &s->snap[i].id) &&
		    s->snap[i].id.time > best)
			best = s->snap[i].id.time;
	}
	return best;
}

/*
 * ddsnap receive, as tools/replicate.c does it: the target must not exist, an incremental's
 * base must (same identity), and a written origin is accepted only when the token says the
 * stream continues the cut transfer.  Then the stream is applied completely or cut.
 */
static void transfer(struct world *w, struct link *l, const struct zp_plan *p, const char *ctx)
{
	struct node *s = &w->node[l->src], *d = &w->node[l->dst];
	struct wsnap *to = wfind(s, p->to), *from = p->from ? wfind(s, p->from) : NULL;
	bool continues = d->tok.to == p->to && d->tok.from == p->from;
	u64 roll = rnd_below(&w->rnd, 100);

	if (!l->up) { /* no connection: the receiver's `list` failed, nothing was sent */
		l->failures++;
		l->failed++;
		l->last_failure_at = w->now;
		return;
	}
	l->inflight = p->to; /* recorded before the stream starts */
	if (roll < 10) {     /* the sender died before the first byte */
		l->failures++;
		l->failed++;
		l->last_failure_at = w->now;
		return; /* still in flight until the receiver reports */
	}
	assert_non_null(to);
	if (wfind(d, p->to))
		fail_msg("%s: %c already has %lld: received twice", ctx, node_names[l->dst],
			 (long long)p->to);
	if (p->from) {
		struct wsnap *base = wfind(d, p->from);

		assert_non_null(from);
		if (!base || !zp_same(&base->id, &from->id))
			fail_msg("%s: the replica lacks the base %lld", ctx, (long long)p->from);
		if (d->written && !continues)
			fail_msg("%s: incremental onto a written origin (stale chunks)", ctx);
		/* the stream starts where the replica is: its newest snapshot is the base */
		if (!continues && !d->written && d->origin != base->content)
			fail_msg("%s: a stream skips from the replica's state", ctx);
		for (size_t i = 0; i < d->n; i++)
			if (!d->snap[i].id.aside && d->snap[i].id.time > p->from &&
			    d->snap[i].id.time != p->to)
				fail_msg("%s: incremental from %lld below the replica's newer %lld",
					 ctx, (long long)p->from, (long long)d->snap[i].id.time);
	} else if (!continues) {
		/* a new full stream: only where nothing is in common, forced or not */
		if (true_base(w, l))
			fail_msg("%s: full resend while a common snapshot exists", ctx);
		if (l->force)
			l->forced++;
		else
			l->fulls++;
	}
	if (p->action == ZP_RESUME)
		assert_true(continues);
	l->sent++;
	if (roll < 30) { /* cut mid-stream: the receiver keeps its token, the origin is written */
		d->tok = (struct zp_token){p->from, p->to};
		d->written = true;
		l->failures++;
		l->cut++;
		l->last_failure_at = w->now;
		return; /* still in flight until the receiver reports */
	}
	/* a forced full stream sets aside what the replica had after it */
	for (size_t i = 0; i < d->n && !p->from; i++)
		if (d->snap[i].id.time > p->to)
			d->snap[i].id.aside = true;
	VERIFY(d->n < MAXSNAP);
	d->snap[d->n] = (struct wsnap){.id = to->id, .content = to->content};
	d->snap[d->n++].id.aside = false;
	d->origin = to->content;
	d->written = false;
	d->tok = (struct zp_token){0, 0};
	l->failures = 0;
	l->force = false;
	l->last_good = p->to;
	l->last_good_at = w->now;
	l->inflight = 0;
	refresh(w, l);
}

/* Forced: the replica sets aside its snapshots newer than the base, reverts to the base. */
static void rewind_replica(struct world *w, struct link *l, const struct zp_plan *p,
			   const char *ctx)
{
	struct node *d = &w->node[l->dst];
	struct wsnap *base = wfind(d, p->base);

	if (!base || base->id.aside)
		fail_msg("%s: rewind to %lld, which the replica lacks", ctx, (long long)p->base);
	for (size_t i = 0; i < d->n; i++)
		if (d->snap[i].id.time > p->base)
			d->snap[i].id.aside = true;
	d->origin = base->content;
	d->written = false;
	d->tok = (struct zp_token){0, 0};
	l->force = false;
	l->rewound++;
	refresh(w, l);
}

/* Every link's plan at this tick, checked against the model and acted on; @drain: the admin
 * forces every refusal at once. */
static void replicate(struct world *w, bool manual, bool drain, const char *why)
{
	for (int i = 0; i < LINKS; i++) {
		struct link *l = &w->link[i];
		struct zp_snap buf[MAXSNAP];
		struct zp_target t;
		struct zp_plan p;
		char ctx[160];

		snprintf(ctx, sizeof(ctx), "seed %llu %s at +%llds link %c->%c",
			 (unsigned long long)w->seed, why, (long long)(w->now - T0),
			 node_names[l->src], node_names[l->dst]);
		if (l->up)
			refresh(w, l);
		target_of(w, l, buf, &t);
		t.manual = manual;
		p = plan_both(&t, w->now, ctx);
		/* the base only moves forward, and is never lost, while nobody diverges */
		if (p.action == ZP_REFUSE || p.action == ZP_REWIND) {
			l->prev_base = 0;
		} else if (l->up) {
			if (p.base < l->prev_base)
				fail_msg("%s: base went back from %lld to %lld", ctx,
					 (long long)l->prev_base, (long long)p.base);
			l->prev_base = p.base;
		}
		/* a cut stream is lost only when a rewind upstream set its snapshot aside */
		if (p.reason == ZP_TOKEN_LOST && l->up) {
			struct wsnap *to = wfind(&w->node[l->src], t.token.to);

			if (!to || !to->id.aside)
				fail_msg("%s: the cut stream to %lld was lost", ctx,
					 (long long)t.token.to);
		}
		if (p.action == ZP_REFUSE) {
			l->refused++;
			/* the admin reads the reason and forces, now and then */
			if (drain || rnd_below(&w->rnd, 4) == 0)
				l->force = true;
			continue;
		}
		if (p.action == ZP_REWIND) {
			if (l->up)
				rewind_replica(w, l, &p, ctx);
			continue;
		}
		if (p.action != ZP_SEND && p.action != ZP_RESUME)
			continue;
		/* retries back off */
		if (l->failures && !manual && !l->force)
			assert_true(w->now - l->last_failure_at >= zp_backoff(l->failures));
		transfer(w, l, &p, ctx);
	}
}

/* Retention on every volume, with the planner's bases marked; checks none goes. */
static void retain(struct world *w, bool store_full)
{
	for (int vi = 0; vi < NODES; vi++) {
		struct node *v = &w->node[vi];
		struct zs_snap z[MAXSNAP];
		int64_t need[LINKS * ZP_NEEDS_MAX + MAXSNAP + 2];
		size_t nneed = 0, k = 0;

		for (size_t i = 0; i < v->n; i++)
			z[i] = (struct zs_snap){.time = v->snap[i].id.time,
						.held = v->snap[i].id.aside};
		for (int li = 0; li < LINKS; li++) {
			struct link *l = &w->link[li];
			struct zp_snap buf[MAXSNAP];
			struct zp_target t;

			if (l->src == vi) {
				target_of(w, l, buf, &t);
				nneed += zp_sender_needs(&t, need + nneed);
			}
		}
		if (vi != 0) { /* a replica: its own monitor knows its snapshots and token */
			struct zp_snap buf[MAXSNAP];

			for (size_t i = 0; i < v->n; i++)
				buf[i] = v->snap[i].id;
			nneed += zp_replica_needs(buf, v->n, v->tok, v->named, need + nneed,
						  MAXSNAP + 2);
		}
		zp_mark_bases(z, v->n, need, nneed);
		assert_int_equal(zs_retain(&v->keep, z, v->n), 0);
		for (size_t i = 0; i < v->n; i++) {
			/* the full-store policy drops whatever is not held (ddsnap(8) priority) */
			bool gone = z[i].prune || (store_full && !z[i].held && !z[i].base);

			for (size_t j = 0; j < nneed; j++)
				if (gone && need[j] == z[i].time)
					fail_msg("seed %llu: %c prunes base %lld",
						 (unsigned long long)w->seed, node_names[vi],
						 (long long)need[j]);
			/* whatever the planner named: the real base of each link stays, and so
			 * do the snapshots of a cut stream on its sender */
			for (int li = 0; li < LINKS; li++)
				if (gone && (w->link[li].src == vi || w->link[li].dst == vi) &&
				    (true_base(w, &w->link[li]) == z[i].time ||
				     (w->link[li].src == vi && w->node[w->link[li].dst].tok.to &&
				      (w->node[w->link[li].dst].tok.to == z[i].time ||
				       w->node[w->link[li].dst].tok.from == z[i].time))))
					fail_msg("seed %llu: %c prunes %lld, the base or a cut "
						 "stream of %c->%c",
						 (unsigned long long)w->seed, node_names[vi],
						 (long long)z[i].time, node_names[w->link[li].src],
						 node_names[w->link[li].dst]);
			if (!gone)
				v->snap[k++] = v->snap[i];
		}
		v->n = k;
	}
}

static void simulate(u64 seed)
{
	static const uint32_t periods[] = {0, 0, 10 * MIN_, HOUR, DAY};
	static const int topo[LINKS][2] = {{0, 1}, {1, 2}, {0, 3}};
	struct world *w = calloc(1, sizeof(*w));
	int64_t end;
	size_t ticks = 0;

	w->seed = seed;
	w->rnd.s = seed;
	w->now = T0 + (int64_t)rnd_below(&w->rnd, DAY);
	end = w->now + SIM_WEEKS * 7 * DAY;
	/* A's retention is hard: a few hourlies; the replicas keep more, or less */
	w->node[0].keep = (struct zs_schedule){.count = {[ZS_HOURLY] = 1 + rnd_below(&w->rnd, 4),
							 [ZS_DAILY] = rnd_below(&w->rnd, 3)}};
	for (int vi = 1; vi < NODES; vi++)
		w->node[vi].keep =
			(struct zs_schedule){.count = {[ZS_HOURLY] = rnd_below(&w->rnd, 6),
						       [ZS_DAILY] = 1 + rnd_below(&w->rnd, 7)}};
	for (int i = 0; i < LINKS; i++)
		w->link[i] =
			(struct link){.src = topo[i][0],
				      .dst = topo[i][1],
				      .up = true,
				      .period = periods[rnd_below(&w->rnd, ARRAY_SIZE(periods))]};
	while (w->now < end) {
		u64 r = rnd_below(&w->rnd, 100);

		ticks++;
		/* time passes: mostly minutes, sometimes a day or three of downtime */
		w->now += r < 1 ? (int64_t)(1 + rnd_below(&w->rnd, 3)) * DAY
				: (int64_t)(1 + rnd_below(&w->rnd, 120)) * MIN_;
		/* A's users write, A takes its scheduled (hourly) snapshot */
		w->node[0].origin = ++w->next_content;
		w->node[0].written = true;
		if (!w->node[0].n || w->now - w->node[0].snap[w->node[0].n - 1].id.time >= HOUR ||
		    rnd_below(&w->rnd, 10) == 0)
			take_snapshot(w, 0);
		/* links go down and come back */
		for (int i = 0; i < LINKS; i++) {
			struct link *l = &w->link[i];

			if (l->up ? rnd_below(&w->rnd, 100) < 5 : rnd_below(&w->rnd, 100) < 25)
				l->up = !l->up;
		}
		/* behind the monitor's back, rarely: a replica written, or snapshotted itself */
		if (rnd_below(&w->rnd, 400) == 0) {
			struct node *v = &w->node[1 + rnd_below(&w->rnd, NODES - 1)];

			if (!v->tok.to) {
				v->origin = ++w->next_content;
				v->written = true;
				if (rnd_below(&w->rnd, 2))
					take_local(w, (int)(v - w->node));
			}
		}
		replicate(w, rnd_below(&w->rnd, 50) == 0, false, "tick");
		retain(w, rnd_below(&w->rnd, 30) == 0);
	}
	/* the end: links up, replicate by hand until nothing is left to send */
	for (int i = 0; i < LINKS; i++)
		w->link[i].up = true;
	for (int round = 0; round < 200; round++) {
		w->now += MIN_;
		replicate(w, true, true, "drain");
		retain(w, false);
	}
	for (int i = 0; i < LINKS; i++) {
		struct link *l = &w->link[i];
		struct node *s = &w->node[l->src], *d = &w->node[l->dst];
		struct wsnap *sn = wnewest(s);
		struct wsnap *dn = sn ? wfind(d, sn->id.time) : NULL;

		if (!sn || !dn || dn->id.aside || !zp_same(&dn->id, &sn->id) ||
		    dn->content != sn->content || d->origin != sn->content || d->written)
			fail_msg("seed %llu: %c does not end as %c's newest",
				 (unsigned long long)seed, node_names[l->dst], node_names[l->src]);
		/* one full stream per target (its first), plus the ones the admin forced */
		assert_true(l->fulls <= 1);
		assert_true(l->fulls + l->forced >= 1);
	}
	/* the chain: C's newest is A's newest */
	assert_int_equal(wnewest(&w->node[2])->content, wnewest(&w->node[0])->content);
	print_message(
		"  seed %-20llu %4zu ticks; A->B %3u sent %3u cut %3u failed; B->C %3u "
		"sent; A->D %3u sent; refused %u/%u/%u rewound %u/%u/%u forced full %u/%u/%u\n",
		(unsigned long long)seed, ticks, w->link[0].sent, w->link[0].cut, w->link[0].failed,
		w->link[1].sent, w->link[2].sent, w->link[0].refused, w->link[1].refused,
		w->link[2].refused, w->link[0].rewound, w->link[1].rewound, w->link[2].rewound,
		w->link[0].forced, w->link[1].forced, w->link[2].forced);
	free(w);
}

static void test_zplan__weeks_against_model(void **state)
{
	u64 seed = (u64)time(NULL) | 1;
	struct rnd r;
	int runs = 24;

	if (getenv("ZPLAN_SEED")) {
		seed = strtoull(getenv("ZPLAN_SEED"), NULL, 0);
		runs = 1;
	}
	r.s = seed;
	for (int i = 0; i < runs; i++)
		simulate(runs == 1 ? seed : rnd_next(&r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zplan__backoff),
		cmocka_unit_test(test_zplan__first_full_then_incremental),
		cmocka_unit_test(test_zplan__refusals_and_force),
		cmocka_unit_test(test_zplan__timing),
		cmocka_unit_test(test_zplan__holds),
		cmocka_unit_test(test_zplan__promote_and_reattach),
		cmocka_unit_test(test_zplan__weeks_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
