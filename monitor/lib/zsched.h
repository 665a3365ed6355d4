/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * zsched.h - the monitor's clock-driven logic: snapshot names, schedule periods, what is due,
 * retention with reasons, and the full-store priority of each snapshot.
 *
 * A snapshot is named by its UTC time to the second, the @GMT token Samba shows
 * ("@GMT-2026.12.06-10.00.00"); its ddsnap tag is the same time in seconds since the epoch,
 * so names, tags and creation order agree (the monitor never takes a snapshot at or before
 * its newest one).  Periods are in the box's local time (TZ): a K-period is a maximal stretch
 * of time over which the K-key of the local clock stays the same:
 *
 *	frequent (M minutes)	local date, hour, minute / M, UTC offset
 *	hourly			local date, hour, UTC offset
 *	daily			local date
 *	weekly			local date of the week's Monday (ISO weeks)
 *	monthly			local year and month
 *
 * The UTC offset in the sub-day keys makes the hour repeated when summer time ends two
 * hours, not one two-hour hour.
 *
 * Due: a snapshot is due when some scheduled kind has no snapshot in the period holding
 * "now" (one snapshot opens the periods of every kind at once: the midnight snapshot is
 * that hour's and that day's).  After downtime that is one snapshot, not one per missed
 * period.  Nothing is due while the clock is at or before the newest snapshot (a clock
 * stepped back, or a snapshot already taken this second).
 *
 * Retention: per kind with count N, group every snapshot by its K-key, order the groups by
 * their newest snapshot, and keep the newest snapshot of each of the first N groups: the
 * newest snapshot of each of the last N periods that hold one.  It does not depend on the
 * clock, so a box that was off prunes nothing for having been off.  A held snapshot, and a
 * replication base (zplan.h), is never pruned.  A snapshot kept by nothing is pruned.
 *
 * Pure functions of their arguments and of TZ (localtime_r); thread-safe once tzset() ran.
 */
#ifndef ZUMASTOR_ZSCHED_H
#define ZUMASTOR_ZSCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum zs_kind { ZS_FREQUENT, ZS_HOURLY, ZS_DAILY, ZS_WEEKLY, ZS_MONTHLY, ZS_KINDS };

/* Bounds of a schedule (config validation and the man page quote them). */
#define ZS_MAX_FREQUENT 1440 /* a day of one-minute snapshots */
#define ZS_MAX_HOURLY	8784 /* a leap year of hours */
#define ZS_MAX_DAILY	3660 /* ten years of days */
#define ZS_MAX_WEEKLY	520  /* ten years of weeks */
#define ZS_MAX_MONTHLY	1200 /* a hundred years of months */

/* "@GMT-YYYY.MM.DD-HH.MM.SS" plus NUL. */
#define ZS_NAME_LEN 25
/* The snapshot times a name can carry: ddsnap tags are u32, the name's year four digits. */
#define ZS_TIME_MIN 1 /* 1970-01-01T00:00:01Z: tag 0 is never a monitor snapshot */
#define ZS_TIME_MAX 4294967294LL

/* Full-store priorities (ddsnap priority): the server drops the lowest first. */
#define ZS_PRIO_NONE	 (-10) /* kept by no kind: held manual snapshots */
#define ZS_PRIO_FREQUENT 0
#define ZS_PRIO_HOURLY	 10
#define ZS_PRIO_DAILY	 20
#define ZS_PRIO_WEEKLY	 30
#define ZS_PRIO_MONTHLY	 40

struct zs_schedule {
	uint32_t count[ZS_KINDS]; /* periods to keep per kind; 0: the kind is off */
	uint32_t frequent_min;	  /* minutes per frequent period (divides 60); with count */
};

struct zs_snap {
	int64_t time; /* UTC seconds since the epoch: the name and the tag */
	bool held;    /* never pruned */
	bool base;    /* a replication base (zplan.h, zp_mark_bases): never pruned */
	/* zs_retain() fills: */
	uint32_t keep; /* bit (1 << kind) for each kind that keeps it */
	bool prune;    /* neither held, nor a base, nor kept by any kind */
};

/* "frequent", "hourly", ... */
const char *zs_kind_name(enum zs_kind k);

/* Is @min a valid frequent period (a divisor of 60)? */
bool zs_frequent_min_ok(uint32_t min);

/* Writes the @GMT name of @t into @buf (ZS_NAME_LEN).  Returns 0, -EINVAL out of range. */
int zs_name(int64_t t, char buf[ZS_NAME_LEN]);

/*
 * Device-mapper names (DESIGN.md 9.5): the origin device is "<vol>", snapshot @t's is
 * "<vol>@GMT-YYYY.MM.DD-HH.MM.SS".  Volume names are [A-Za-z0-9_.+-] (zconf.h) and the suffix
 * adds '@', '.', '-' and digits: characters dmsetup's default name mangling and udev's rules
 * leave unchanged (unlike Zumastor's "vol(7)"), and no '@' in a volume name makes the split
 * unambiguous.  At most ZS_DEVNAME_MAX characters, under device-mapper's 127.
 */
#define ZS_DEVNAME_MAX (64 + ZS_NAME_LEN - 1)

/*
 * Writes the device name of snapshot @t (0: the origin) of volume @vol into @buf
 * (ZS_DEVNAME_MAX + 1 bytes).  Returns 0, or -EINVAL for a volume name zconf refuses or a
 * time out of range.
 */
int zs_devname(const char *vol, int64_t t, char buf[ZS_DEVNAME_MAX + 1]);

/*
 * Parses an @GMT name (exactly the format zs_name writes, a real date and time) into *@t.
 * Returns 0 or -EINVAL.
 */
int zs_parse_name(const char *name, int64_t *t);

/* The K-key of local time @t (the table above), an integer; equal keys = same period. */
int64_t zs_key(enum zs_kind k, const struct zs_schedule *s, int64_t t);

/*
 * Is a snapshot due at @now, given the @n snapshots @snaps (any order)?  Returns the bit mask
 * of the kinds whose current period holds no snapshot (0: nothing due), or 0 whenever @now
 * is at or before the newest snapshot.  O(n * kinds).
 */
uint32_t zs_due(const struct zs_schedule *s, const struct zs_snap *snaps, size_t n, int64_t now);

/*
 * The first instant after @now at which zs_due() would say yes if no snapshot were taken
 * meanwhile (now itself if due now); -1 if the schedule is empty.  Walks the local clock
 * minute by minute near the boundary: O(hours in a month) localtime calls at worst.
 */
int64_t zs_next_due(const struct zs_schedule *s, const struct zs_snap *snaps, size_t n,
		    int64_t now);

/*
 * Retention: fills keep and prune of each of the @n snapshots (any order; times distinct).
 * O(n log n + n * sum of counts).  Returns 0, -EINVAL for duplicate times.
 */
int zs_retain(const struct zs_schedule *s, struct zs_snap *snaps, size_t n);

/* The full-store priority of a snapshot kept for the kinds in @keep (ZS_PRIO_*). */
int zs_priority(uint32_t keep);

/*
 * Why @snap is kept, one line for people into @buf: "held; replication base; daily ..."
 * naming each kind and the local period, or "pruned at the next tick".  Returns @buf.
 */
char *zs_why(const struct zs_snap *snap, const struct zs_schedule *s, char *buf, size_t len);

#endif
