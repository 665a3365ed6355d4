// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_zsched.c - the monitor's schedule logic against an independent model.
 *
 * The model states the rules of zsched.h the slow, obvious way: periods are strftime()
 * strings of the local clock ("%Y-%m-%d %H %z", "%G-%V", ...), due means "some scheduled
 * kind has no snapshot whose string equals now's", and retention sorts every distinct
 * period string by its newest snapshot.  The implementation uses integer keys, one pass and
 * no strings.  A run simulates 30 days of ticks in seconds, with random schedules, random
 * tick gaps (a minute, hours, days of downtime), the clock stepping back, manual and held
 * snapshots, in zones with summer time (Europe/Berlin, America/New_York), a half-hour
 * one (Australia/Lord_Howe), one without (Asia/Kolkata) and across the 2028 leap day; after
 * every tick both must hold exactly the same snapshots with the same reasons.  Seeds print.
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
#include "zsched.h"

#define DAY 86400

static void set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

/* UTC seconds of a UTC calendar time. */
static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {.tm_year = y - 1900,
			.tm_mon = mo - 1,
			.tm_mday = d,
			.tm_hour = h,
			.tm_min = mi,
			.tm_sec = s};

	return (int64_t)timegm(&tm);
}

/*----------------------------------------------------------------
 * The model
 *--------------------------------------------------------------*/

static void model_key(int k, uint32_t fmin, int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	localtime_r(&tt, &tm);
	switch (k) {
	case ZS_FREQUENT: {
		char h[64];

		strftime(h, sizeof(h), "%Y-%m-%d %H %z", &tm);
		snprintf(buf, len, "%s|%d", h, tm.tm_min / (int)fmin);
		break;
	}
	case ZS_HOURLY:
		strftime(buf, len, "%Y-%m-%d %H %z", &tm);
		break;
	case ZS_DAILY:
		strftime(buf, len, "%Y-%m-%d", &tm);
		break;
	case ZS_WEEKLY:
		strftime(buf, len, "%G-%V", &tm);
		break;
	default:
		strftime(buf, len, "%Y-%m", &tm);
	}
}

struct msnap {
	int64_t time;
	bool held;
	uint32_t keep;
};

static uint32_t model_due(const struct zs_schedule *s, const struct msnap *m, size_t n, int64_t now)
{
	uint32_t mask = 0;

	for (size_t i = 0; i < n; i++)
		if (m[i].time >= now)
			return 0;
	for (int k = 0; k < ZS_KINDS; k++) {
		char want[80], have[80];
		bool found = false;

		if (!s->count[k])
			continue;
		model_key(k, s->frequent_min, now, want, sizeof(want));
		for (size_t i = 0; i < n && !found; i++) {
			model_key(k, s->frequent_min, m[i].time, have, sizeof(have));
			found = !strcmp(want, have);
		}
		if (!found)
			mask |= 1u << k;
	}
	return mask;
}

/* Per kind: every distinct period, its newest snapshot; the N periods with the newest win. */
static void model_retain(const struct zs_schedule *s, struct msnap *m, size_t n)
{
	char(*keys)[80] = calloc(n ? n : 1, sizeof(*keys));
	size_t *newest = calloc(n ? n : 1, sizeof(*newest));
	bool *taken = calloc(n ? n : 1, sizeof(*taken));

	for (size_t i = 0; i < n; i++)
		m[i].keep = 0;
	for (int k = 0; k < ZS_KINDS; k++) {
		size_t np = 0;

		if (!s->count[k])
			continue;
		for (size_t i = 0; i < n; i++)
			model_key(k, s->frequent_min, m[i].time, keys[i], sizeof(keys[i]));
		/* newest[p] = index of the newest snapshot of distinct period p */
		for (size_t i = 0; i < n; i++) {
			size_t p;

			for (p = 0; p < np && strcmp(keys[newest[p]], keys[i]); p++)
				;
			if (p == np)
				newest[np++] = i;
			else if (m[i].time > m[newest[p]].time)
				newest[p] = i;
		}
		memset(taken, 0, n * sizeof(*taken));
		for (uint32_t c = 0; c < s->count[k] && c < np; c++) {
			size_t best = SIZE_MAX;

			for (size_t p = 0; p < np; p++)
				if (!taken[p] &&
				    (best == SIZE_MAX || m[newest[p]].time > m[newest[best]].time))
					best = p;
			taken[best] = true;
			m[newest[best]].keep |= 1u << k;
		}
	}
	free(taken);
	free(newest);
	free(keys);
}

/*----------------------------------------------------------------
 * Fixed cases
 *--------------------------------------------------------------*/

static void test_zsched__names(void **state)
{
	char name[ZS_NAME_LEN];
	int64_t t;
	u64 seed = 0x5eed1234;

	assert_int_equal(zs_name(utc(2026, 12, 6, 10, 0, 0), name), 0);
	assert_string_equal(name, "@GMT-2026.12.06-10.00.00");
	assert_int_equal(zs_name(utc(2028, 2, 29, 23, 59, 59), name), 0);
	assert_string_equal(name, "@GMT-2028.02.29-23.59.59");
	assert_int_equal(zs_parse_name("@GMT-2028.02.29-23.59.59", &t), 0);
	assert_int_equal(t, utc(2028, 2, 29, 23, 59, 59));
	/* round trip over random times, in a zone with an offset (names stay UTC) */
	set_tz("America/New_York");
	for (int i = 0; i < 100000; i++) {
		int64_t v = 1 + (int64_t)(xorshift64(&seed) % ZS_TIME_MAX);

		assert_int_equal(zs_name(v, name), 0);
		assert_int_equal(zs_parse_name(name, &t), 0);
		assert_int_equal(t, v);
	}
	static const char *const bad[] = {
		"",
		"@GMT-2027.02.29-00.00.00", /* not a leap year */
		"@GMT-2100.02.29-00.00.00", /* nor is 2100 */
		"@GMT-2026.13.01-00.00.00",
		"@GMT-2026.00.01-00.00.00",
		"@GMT-2026.04.31-00.00.00",
		"@GMT-2026.12.06-24.00.00",
		"@GMT-2026.12.06-10.60.00",
		"@GMT-2026.12.06-10.00.60",
		"@GMT-2026.12.06-10.00.0",
		"@GMT-2026.12.06-10.00.000",
		"GMT-2026.12.06-10.00.00",
		"@GMT-2026-12-06-10.00.00",
		"@GMT-2026.12.06 10.00.00",
		"@gmt-2026.12.06-10.00.00",
		"@GMT-2026.12.06-1a.00.00",
		"@GMT-1969.12.31-23.59.59",
		"@GMT-2106.02.07-06.28.15",
		"@GMT-+026.12.06-10.00.00",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(zs_parse_name(bad[i], &t), -EINVAL);
	assert_int_equal(zs_name(0, name), -EINVAL);
	assert_int_equal(zs_name(ZS_TIME_MAX + 1, name), -EINVAL);
	assert_int_equal(zs_name(ZS_TIME_MAX, name), 0);
	assert_string_equal(name, "@GMT-2106.02.07-06.28.14");
	set_tz("UTC");
}

/* Device names use only the characters dmsetup's default mangling and udev pass unchanged. */
static void test_zsched__device_names(void **state)
{
	static const char vchars[] = "ABCZabcz0189_.+-";
	static const char safe[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789#+-.:=@_";
	char vol[ZS_DEVNAME_MAX + 1], dev[ZS_DEVNAME_MAX + 1], name[ZS_NAME_LEN];
	u64 seed = 0xdefaced;

	assert_int_equal(zs_devname("home", 0, dev), 0);
	assert_string_equal(dev, "home");
	assert_int_equal(zs_devname("home", utc(2026, 12, 6, 10, 0, 0), dev), 0);
	assert_string_equal(dev, "home@GMT-2026.12.06-10.00.00");
	assert_int_equal(zs_devname("vol(7)", 0, dev), -EINVAL);
	assert_int_equal(zs_devname("a/b", 5, dev), -EINVAL);
	assert_int_equal(zs_devname("home", -1, dev), -EINVAL);
	for (int i = 0; i < 10000; i++) {
		size_t len = 1 + xorshift64(&seed) % 64;
		int64_t t = (int64_t)(xorshift64(&seed) % (ZS_TIME_MAX + 1));
		const char *at;
		int64_t back;

		for (size_t j = 0; j < len; j++)
			vol[j] = vchars[j ? xorshift64(&seed) % (sizeof(vchars) - 1)
					  : xorshift64(&seed) % 12]; /* no leading . + - */
		vol[len] = 0;
		assert_int_equal(zs_devname(vol, t, dev), 0);
		assert_true(strlen(dev) <= ZS_DEVNAME_MAX && ZS_DEVNAME_MAX <= 127);
		assert_int_equal(strspn(dev, safe), strlen(dev));
		at = strchr(dev, '@');
		if (!t) {
			assert_null(at);
			assert_string_equal(dev, vol);
			continue;
		}
		assert_non_null(at); /* the split: the volume, then the @GMT name */
		assert_int_equal((size_t)(at - dev), len);
		assert_int_equal(strncmp(dev, vol, len), 0);
		assert_int_equal(zs_parse_name(at, &back), 0);
		assert_int_equal(back, t);
		assert_int_equal(zs_name(t, name), 0);
		assert_string_equal(at, name);
	}
}

/* Ticks every minute from @from to @to: which instants took a snapshot. */
static size_t minute_ticks(const struct zs_schedule *s, int64_t from, int64_t to,
			   struct zs_snap *snaps, size_t cap)
{
	size_t n = 0;

	for (int64_t t = from; t < to; t += 60)
		if (zs_due(s, snaps, n, t) && n < cap)
			snaps[n++] = (struct zs_snap){.time = t};
	return n;
}

static void test_zsched__dst_hours(void **state)
{
	struct zs_schedule s = {.count = {[ZS_HOURLY] = 100, [ZS_DAILY] = 10}};
	struct zs_snap snaps[16];
	size_t n;

	set_tz("Europe/Berlin");
	/* Summer time ends 2026-10-25 01:00Z: 02:00 CEST, 02:00 CET, 03:00 CET are three hours */
	n = minute_ticks(&s, utc(2026, 10, 24, 23, 30, 0), utc(2026, 10, 25, 2, 30, 0), snaps, 16);
	assert_int_equal(n, 4);
	assert_int_equal(snaps[0].time, utc(2026, 10, 24, 23, 30, 0)); /* 01:30 CEST, first */
	assert_int_equal(snaps[1].time, utc(2026, 10, 25, 0, 0, 0));
	assert_int_equal(snaps[2].time, utc(2026, 10, 25, 1, 0, 0));
	assert_int_equal(snaps[3].time, utc(2026, 10, 25, 2, 0, 0));
	/* Summer time starts 2026-03-29 01:00Z: 01:00 CET then 03:00 CEST */
	n = minute_ticks(&s, utc(2026, 3, 28, 23, 30, 0), utc(2026, 3, 29, 1, 30, 0), snaps, 16);
	assert_int_equal(n, 3);
	assert_int_equal(snaps[1].time, utc(2026, 3, 29, 0, 0, 0));
	assert_int_equal(snaps[2].time, utc(2026, 3, 29, 1, 0, 0));
	/* Daily only: local midnight, once a day, through both changes */
	s = (struct zs_schedule){.count = {[ZS_DAILY] = 10}};
	n = minute_ticks(&s, utc(2026, 10, 23, 22, 30, 0), utc(2026, 10, 27, 0, 0, 0), snaps, 16);
	assert_int_equal(n, 4);
	assert_int_equal(snaps[1].time, utc(2026, 10, 24, 22, 0, 0)); /* 25th 00:00 CEST */
	assert_int_equal(snaps[2].time, utc(2026, 10, 25, 23, 0, 0)); /* 26th 00:00 CET */
	set_tz("America/New_York");
	/* Monthly: local midnight of the 1st, EST (-5) */
	s = (struct zs_schedule){.count = {[ZS_MONTHLY] = 3}};
	n = minute_ticks(&s, utc(2026, 11, 30, 12, 0, 0), utc(2026, 12, 2, 0, 0, 0), snaps, 16);
	assert_int_equal(n, 2);
	assert_int_equal(snaps[1].time, utc(2026, 12, 1, 5, 0, 0));
	set_tz("UTC");
}

static void test_zsched__one_snapshot_serves_every_kind(void **state)
{
	struct zs_schedule s = {.count = {[ZS_FREQUENT] = 4,
					  [ZS_HOURLY] = 24,
					  [ZS_DAILY] = 7,
					  [ZS_WEEKLY] = 4,
					  [ZS_MONTHLY] = 12},
				.frequent_min = 15};
	struct zs_snap snaps[4];
	int64_t midnight = utc(2026, 11, 30, 23, 0, 0); /* Tue 2026-12-01 00:00 CET */

	set_tz("Europe/Berlin");
	/* Nothing yet: everything is due.  The midnight of a month's first opens all kinds. */
	assert_int_equal(zs_due(&s, snaps, 0, midnight), 0x1f);
	snaps[0] = (struct zs_snap){.time = midnight};
	assert_int_equal(zs_due(&s, snaps, 1, midnight + 60), 0);
	/* 00:15: only the frequent period is new */
	assert_int_equal(zs_due(&s, snaps, 1, midnight + 900), 1u << ZS_FREQUENT);
	/* After three days off, one snapshot is due (for every kind but the month) */
	assert_int_equal(zs_due(&s, snaps, 1, midnight + 3 * DAY + 7),
			 (1u << ZS_FREQUENT) | (1u << ZS_HOURLY) | (1u << ZS_DAILY));
	snaps[1] = (struct zs_snap){.time = midnight + 3 * DAY + 7};
	assert_int_equal(zs_due(&s, snaps, 2, midnight + 3 * DAY + 60), 0);
	/* A clock stepped back before the newest: nothing due, and next is after the newest */
	assert_int_equal(zs_due(&s, snaps, 2, midnight + DAY), 0);
	assert_true(zs_next_due(&s, snaps, 2, midnight + DAY) > snaps[1].time);
	/* Same second: waits */
	assert_int_equal(zs_due(&s, snaps, 2, snaps[1].time), 0);
	set_tz("UTC");
}

static void test_zsched__retention_rules(void **state)
{
	struct zs_schedule s = {.count = {[ZS_HOURLY] = 2, [ZS_DAILY] = 2}};
	int64_t d0 = utc(2026, 12, 1, 0, 0, 0);
	struct zs_snap snaps[] = {
		{.time = d0},			  /* day 1 00:00 */
		{.time = d0 + 3600},		  /* day 1 01:00: day 1's newest */
		{.time = d0 + DAY},		  /* day 2 00:00 */
		{.time = d0 + DAY + 1800},	  /* day 2 00:30: the hour's newest */
		{.time = d0 + DAY + 3600},	  /* day 2 01:00 */
		{.time = d0 - DAY, .held = true}, /* held, older than every period kept */
		{.time = d0 - 2 * DAY},		  /* kept by nothing */
	};
	char why[256];

	set_tz("UTC");
	assert_int_equal(zs_retain(&s, snaps, ARRAY_SIZE(snaps)), 0);
	assert_int_equal(snaps[0].keep, 0);
	assert_true(snaps[0].prune);
	assert_int_equal(snaps[1].keep, 1u << ZS_DAILY);
	assert_int_equal(snaps[2].keep, 0);
	assert_int_equal(snaps[3].keep, 1u << ZS_HOURLY);
	assert_int_equal(snaps[4].keep, (1u << ZS_HOURLY) | (1u << ZS_DAILY));
	assert_int_equal(snaps[5].keep, 0);
	assert_false(snaps[5].prune);
	assert_true(snaps[6].prune);
	assert_string_equal(zs_why(&snaps[5], &s, why, sizeof(why)), "held");
	assert_string_equal(zs_why(&snaps[4], &s, why, sizeof(why)),
			    "daily 2026-12-02; hourly 2026-12-02 01h +0000");
	assert_string_equal(zs_why(&snaps[6], &s, why, sizeof(why)), "pruned at the next tick");
	/* priorities follow the most lasting kind */
	assert_int_equal(zs_priority(snaps[4].keep), ZS_PRIO_DAILY);
	assert_int_equal(zs_priority(1u << ZS_MONTHLY | 1u << ZS_FREQUENT), ZS_PRIO_MONTHLY);
	assert_int_equal(zs_priority(0), ZS_PRIO_NONE);
	assert_true(ZS_PRIO_MONTHLY > ZS_PRIO_WEEKLY && ZS_PRIO_WEEKLY > ZS_PRIO_DAILY &&
		    ZS_PRIO_DAILY > ZS_PRIO_HOURLY && ZS_PRIO_HOURLY > ZS_PRIO_FREQUENT &&
		    ZS_PRIO_FREQUENT > ZS_PRIO_NONE);
	/* duplicate times are refused */
	snaps[1].time = snaps[0].time;
	assert_int_equal(zs_retain(&s, snaps, ARRAY_SIZE(snaps)), -EINVAL);
}

/* zs_next_due against stepping the clock minute by minute until the model says due. */
static void test_zsched__next_due(void **state)
{
	static const char *const zones[] = {"Europe/Berlin", "America/New_York",
					    "Australia/Lord_Howe"};
	u64 seed = 0x2e47d0e1;

	for (size_t z = 0; z < ARRAY_SIZE(zones); z++) {
		set_tz(zones[z]);
		for (int i = 0; i < 60; i++) {
			struct zs_schedule s = {{0}, 0};
			int k = (int)(xorshift64(&seed) % ZS_KINDS);
			int64_t base = utc(2026, 3, 1, 0, 0, 0) +
				       (int64_t)(xorshift64(&seed) % (300 * DAY));
			struct zs_snap snap = {.time = base};
			struct msnap m = {.time = base};
			int64_t next, t = base + 1 + (int64_t)(xorshift64(&seed) % 3600);

			s.count[k] = 3;
			s.frequent_min = k == ZS_FREQUENT ? 15 : 0;
			next = zs_next_due(&s, &snap, 1, t);
			while (!model_due(&s, &m, 1, t))
				t = t - t % 60 + 60;
			assert_int_equal(next, t);
		}
	}
	set_tz("UTC");
}

/*----------------------------------------------------------------
 * 30 simulated days against the model
 *--------------------------------------------------------------*/

#define SIM_MAX 4096

static void simulate(const char *tz, int64_t start, u64 seed)
{
	static struct zs_snap impl[SIM_MAX];
	static struct msnap model[SIM_MAX];
	static const uint32_t mins[] = {1, 5, 10, 15, 20, 30, 60};
	struct zs_schedule s = {{0}, 0};
	size_t n = 0, ticks = 0, taken = 0, back = 0;
	u64 first = seed;
	int64_t now = start;

	set_tz(tz);
	for (int k = 0; k < ZS_KINDS; k++)
		if (xorshift64(&seed) % 3)
			s.count[k] = 1 + (uint32_t)(xorshift64(&seed) % 8);
	if (!s.count[ZS_DAILY])
		s.count[ZS_DAILY] = 2;
	s.frequent_min = mins[xorshift64(&seed) % ARRAY_SIZE(mins)];
	while (now < start + 30 * DAY) {
		u64 r = xorshift64(&seed) % 100;
		uint32_t due, mdue;

		if (r < 45)
			now += 60 + (int64_t)(xorshift64(&seed) % 60);
		else if (r < 80)
			now += 120 + (int64_t)(xorshift64(&seed) % 1680);
		else if (r < 96)
			now += 1800 + (int64_t)(xorshift64(&seed) % 16200);
		else if (r < 97)
			now += 3600 + (int64_t)(xorshift64(&seed) % (2 * DAY)); /* downtime */
		else {
			now -= 60 + (int64_t)(xorshift64(&seed) % 7200); /* clock steps back */
			back++;
		}
		ticks++;
		due = zs_due(&s, impl, n, now);
		mdue = model_due(&s, model, n, now);
		if (due != mdue)
			fail_msg("%s seed %llu tick %zu at %lld: due %#x, model %#x", tz,
				 (unsigned long long)first, ticks, (long long)now, due, mdue);
		/* a manual snapshot now and then (held half the time), else the due one */
		if (due || (xorshift64(&seed) % 50 == 0 && model_due(&s, model, n, now) == 0 && n &&
			    now > impl[n - 1].time)) {
			bool held = xorshift64(&seed) % 10 == 0;

			VERIFY(n < SIM_MAX);
			impl[n] = (struct zs_snap){.time = now, .held = held};
			model[n] = (struct msnap){.time = now, .held = held};
			n++;
			taken++;
		}
		if (n && xorshift64(&seed) % 40 == 0) { /* release a random snapshot */
			size_t i = xorshift64(&seed) % n;

			impl[i].held = model[i].held = false;
		}
		assert_int_equal(zs_retain(&s, impl, n), 0);
		model_retain(&s, model, n);
		for (size_t i = 0; i < n; i++)
			if (impl[i].keep != model[i].keep ||
			    impl[i].prune != (!model[i].held && !model[i].keep))
				fail_msg("%s seed %llu tick %zu: snapshot %lld keep %#x, model %#x",
					 tz, (unsigned long long)first, ticks,
					 (long long)impl[i].time, impl[i].keep, model[i].keep);
		/* prune both alike, keeping the arrays in the same (creation) order */
		size_t w = 0;
		for (size_t i = 0; i < n; i++)
			if (!impl[i].prune) {
				impl[w] = impl[i];
				model[w] = model[i];
				w++;
			}
		n = w;
		/* what due promised: every scheduled kind now has a snapshot in its period */
		if (due)
			assert_int_equal(zs_due(&s, impl, n, now + 0), 0);
	}
	/* Sanity of the run itself: it took snapshots, pruned, and kept within the counts. */
	assert_true(taken >= 20);
	size_t unheld = 0, bound = 0;
	for (size_t i = 0; i < n; i++)
		unheld += !impl[i].held;
	for (int k = 0; k < ZS_KINDS; k++)
		bound += s.count[k];
	assert_true(unheld <= bound);
	print_message("  %-20s seed %-20llu %5zu ticks (%zu back), %4zu snapshots taken, %zu "
		      "left\n",
		      tz, (unsigned long long)first, ticks, back, taken, n);
}

static void test_zsched__thirty_days_against_model(void **state)
{
	static const char *const zones[] = {"Europe/Berlin", "America/New_York",
					    "Australia/Lord_Howe", "Asia/Kolkata", "UTC"};
	/* Starts that put a summer-time change, a month end and the 2028 leap day in the run */
	const int64_t starts[] = {utc(2026, 3, 10, 13, 17, 5), utc(2026, 10, 10, 2, 0, 0),
				  utc(2028, 2, 14, 23, 59, 1), utc(2026, 12, 20, 0, 0, 0)};
	u64 seed = (u64)time(NULL) | 1;

	if (getenv("ZSCHED_SEED"))
		seed = strtoull(getenv("ZSCHED_SEED"), NULL, 0) | 1;
	for (size_t z = 0; z < ARRAY_SIZE(zones); z++)
		for (size_t i = 0; i < ARRAY_SIZE(starts); i++)
			for (int run = 0; run < 3; run++)
				simulate(zones[z], starts[i],
					 (xorshift64(&seed) * 0x9e3779b97f4a7c15ull) | 1);
	set_tz("UTC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zsched__names),
		cmocka_unit_test(test_zsched__device_names),
		cmocka_unit_test(test_zsched__dst_hours),
		cmocka_unit_test(test_zsched__one_snapshot_serves_every_kind),
		cmocka_unit_test(test_zsched__retention_rules),
		cmocka_unit_test(test_zsched__next_due),
		cmocka_unit_test(test_zsched__thirty_days_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
