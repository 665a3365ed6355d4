// SPDX-License-Identifier: GPL-2.0-only
/*
 * zsched.c - snapshot names, periods, due, retention and priorities of the zumastor monitor
 * (the rules are stated in zsched.h; the tests check them against an independent model).
 *
 * Invariants: a key depends only on the local clock's fields at one instant, so grouping by
 * key needs no history; retention depends only on the snapshots, never on the clock, so a
 * tick that runs twice, or late, decides the same.  Nothing here keeps state: there is no
 * locking, and a crash between deciding and acting leaves nothing to repair (the next tick
 * decides again from the snapshots that exist).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "zconf.h"
#include "zsched.h"

static const char *const kind_names[ZS_KINDS] = {"frequent", "hourly", "daily", "weekly",
						 "monthly"};

const char *zs_kind_name(enum zs_kind k)
{
	return (unsigned)k < ZS_KINDS ? kind_names[k] : "?";
}

bool zs_frequent_min_ok(uint32_t min)
{
	return min >= 1 && min <= 60 && 60 % min == 0;
}

/* Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int zs_name(int64_t t, char buf[ZS_NAME_LEN])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t < ZS_TIME_MIN || t > ZS_TIME_MAX || !gmtime_r(&tt, &tm))
		return -EINVAL;
	if (strftime(buf, ZS_NAME_LEN, "@GMT-%Y.%m.%d-%H.%M.%S", &tm) != ZS_NAME_LEN - 1)
		return -EINVAL;
	return 0;
}

int zs_devname(const char *vol, int64_t t, char buf[ZS_DEVNAME_MAX + 1])
{
	char name[ZS_NAME_LEN];
	const char *allowed;

	if (zconf_volume_name(vol, &allowed) || (t && zs_name(t, name)))
		return -EINVAL;
	snprintf(buf, ZS_DEVNAME_MAX + 1, "%s%s", vol, t ? name : "");
	return 0;
}

/* Exactly @n decimal digits at @s into *@v. */
static bool digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

int zs_parse_name(const char *name, int64_t *t)
{
	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, se;
	int64_t v;

	if (strlen(name) != ZS_NAME_LEN - 1 || strncmp(name, "@GMT-", 5) || name[9] != '.' ||
	    name[12] != '.' || name[15] != '-' || name[18] != '.' || name[21] != '.')
		return -EINVAL;
	if (!digits(name + 5, 4, &y) || !digits(name + 10, 2, &mo) || !digits(name + 13, 2, &d) ||
	    !digits(name + 16, 2, &h) || !digits(name + 19, 2, &mi) || !digits(name + 22, 2, &se))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 59)
		return -EINVAL;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return -EINVAL;
	v = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	if (v < ZS_TIME_MIN || v > ZS_TIME_MAX)
		return -EINVAL;
	*t = v;
	return 0;
}

int64_t zs_key(enum zs_kind k, const struct zs_schedule *s, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	int64_t day, off;

	localtime_r(&tt, &tm);
	day = days_from_civil(tm.tm_year + 1900LL, tm.tm_mon + 1, tm.tm_mday);
	/* The offset in quarter minutes above the lowest real one (-14 h .. +14 h fits). */
	off = (tm.tm_gmtoff + 16 * 3600) / 15;
	switch (k) {
	case ZS_FREQUENT: {
		int64_t min = s->frequent_min ? s->frequent_min : 60;
		int64_t slot = (day * 24 + tm.tm_hour) * 60 + tm.tm_min / min * min;

		return slot * 8192 + off;
	}
	case ZS_HOURLY:
		return (day * 24 + tm.tm_hour) * 8192 + off;
	case ZS_DAILY:
		return day;
	case ZS_WEEKLY:
		return day - (tm.tm_wday + 6) % 7; /* the Monday */
	case ZS_MONTHLY:
		return (tm.tm_year + 1900LL) * 12 + tm.tm_mon;
	default:
		return 0;
	}
}

static bool kind_on(const struct zs_schedule *s, enum zs_kind k)
{
	return s->count[k] > 0 && (k != ZS_FREQUENT || zs_frequent_min_ok(s->frequent_min));
}

/* Which scheduled kinds have no snapshot in @now's period; 0 if @now <= the newest. */
static uint32_t due_mask(const struct zs_schedule *s, const struct zs_snap *snaps, size_t n,
			 int64_t now, int64_t newest)
{
	uint32_t mask = 0;

	if (n && now <= newest)
		return 0;
	for (int k = 0; k < ZS_KINDS; k++) {
		int64_t key;
		bool have = false;

		if (!kind_on(s, k))
			continue;
		key = zs_key(k, s, now);
		for (size_t i = 0; i < n && !have; i++)
			have = zs_key(k, s, snaps[i].time) == key;
		if (!have)
			mask |= 1u << k;
	}
	return mask;
}

static int64_t newest_time(const struct zs_snap *snaps, size_t n)
{
	int64_t newest = INT64_MIN;

	for (size_t i = 0; i < n; i++)
		if (snaps[i].time > newest)
			newest = snaps[i].time;
	return newest;
}

uint32_t zs_due(const struct zs_schedule *s, const struct zs_snap *snaps, size_t n, int64_t now)
{
	return due_mask(s, snaps, n, now, newest_time(snaps, n));
}

/* The first instant after @t whose K-key differs from @t's: a period boundary. */
static int64_t next_boundary(enum zs_kind k, const struct zs_schedule *s, int64_t t)
{
	int64_t key = zs_key(k, s, t), coarse = k >= ZS_DAILY ? 3600 : 60;
	int64_t same = t - t % 60, u;

	/* Boundaries fall on whole minutes (every zone's offset is whole minutes today): step
	 * coarsely while the key holds, then minute by minute from the last instant it held. */
	while (zs_key(k, s, same + coarse) == key)
		same += coarse;
	for (u = same + 60; zs_key(k, s, u) == key; u += 60)
		;
	return u;
}

int64_t zs_next_due(const struct zs_schedule *s, const struct zs_snap *snaps, size_t n, int64_t now)
{
	int64_t newest = newest_time(snaps, n), best = -1;

	if (n && now <= newest)
		now = newest + 1; /* nothing is due before the clock passes the newest */
	if (due_mask(s, snaps, n, now, newest))
		return now;
	for (int k = 0; k < ZS_KINDS; k++) {
		int64_t b;

		if (!kind_on(s, k))
			continue;
		b = next_boundary(k, s, now);
		if (best < 0 || b < best)
			best = b;
	}
	return best;
}

static int cmp_time_desc(const void *a, const void *b)
{
	const struct zs_snap *x = *(const struct zs_snap *const *)a;
	const struct zs_snap *y = *(const struct zs_snap *const *)b;

	return (x->time < y->time) - (x->time > y->time);
}

int zs_retain(const struct zs_schedule *s, struct zs_snap *snaps, size_t n)
{
	struct zs_snap **order;
	int64_t *seen;
	size_t maxn = 0;
	int err = 0;

	if (!n)
		return 0;
	order = malloc(n * sizeof(*order));
	for (int k = 0; k < ZS_KINDS; k++)
		if (kind_on(s, k) && s->count[k] > maxn)
			maxn = s->count[k];
	seen = malloc((maxn ? maxn : 1) * sizeof(*seen));
	if (!order || !seen) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < n; i++) {
		order[i] = &snaps[i];
		snaps[i].keep = 0;
	}
	qsort(order, n, sizeof(*order), cmp_time_desc);
	for (size_t i = 1; i < n; i++)
		if (order[i]->time == order[i - 1]->time) {
			err = -EINVAL;
			goto out_free;
		}
	for (int k = 0; k < ZS_KINDS; k++) {
		size_t nseen = 0;

		if (!kind_on(s, k))
			continue;
		/* Newest first: the first member of a group met is its newest. */
		for (size_t i = 0; i < n && nseen < s->count[k]; i++) {
			int64_t key = zs_key(k, s, order[i]->time);
			size_t j;

			for (j = 0; j < nseen && seen[j] != key; j++)
				;
			if (j < nseen)
				continue;
			seen[nseen++] = key;
			order[i]->keep |= 1u << k;
		}
	}
	for (size_t i = 0; i < n; i++)
		snaps[i].prune = !snaps[i].held && !snaps[i].base && !snaps[i].keep;
out_free:
	free(seen);
	free(order);
	return err;
}

int zs_priority(uint32_t keep)
{
	static const int prio[ZS_KINDS] = {ZS_PRIO_FREQUENT, ZS_PRIO_HOURLY, ZS_PRIO_DAILY,
					   ZS_PRIO_WEEKLY, ZS_PRIO_MONTHLY};
	int p = ZS_PRIO_NONE;

	for (int k = 0; k < ZS_KINDS; k++)
		if (keep & (1u << k))
			p = prio[k];
	return p;
}

/* The local period of kind @k holding @tm, for people. */
static void period_name(int k, const struct tm *tm, char *buf, size_t len)
{
	switch (k) {
	case ZS_FREQUENT:
		strftime(buf, len, "%Y-%m-%d %H:%M %z", tm);
		break;
	case ZS_HOURLY:
		strftime(buf, len, "%Y-%m-%d %Hh %z", tm);
		break;
	case ZS_DAILY:
		strftime(buf, len, "%Y-%m-%d", tm);
		break;
	case ZS_WEEKLY:
		strftime(buf, len, "week %G-W%V", tm);
		break;
	default:
		strftime(buf, len, "%Y-%m", tm);
	}
}

char *zs_why(const struct zs_snap *snap, const struct zs_schedule *s, char *buf, size_t len)
{
	time_t tt = (time_t)snap->time;
	struct tm tm;
	size_t used = 0;

	localtime_r(&tt, &tm);
	buf[0] = 0;
	if (snap->held)
		used += (size_t)snprintf(buf + used, len - used, "held");
	if (snap->base)
		used += (size_t)snprintf(buf + used, len - used, "%sreplication base",
					 used ? "; " : "");
	for (int k = ZS_MONTHLY; k >= 0 && used < len; k--) {
		char when[48];

		if (!(snap->keep & (1u << k)))
			continue;
		period_name(k, &tm, when, sizeof(when));
		if (k == ZS_FREQUENT)
			snprintf(when + strlen(when), sizeof(when) - strlen(when), " /%u min",
				 s->frequent_min);
		used += (size_t)snprintf(buf + used, len - used, "%s%s %s", used ? "; " : "",
					 zs_kind_name(k), when);
	}
	if (!used)
		snprintf(buf, len, "pruned at the next tick");
	return buf;
}
