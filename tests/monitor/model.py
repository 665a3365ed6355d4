#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""The zumastor schedule, stated independently of monitor/lib/zsched.c (zumastor(8),
RETENTION), for tests/monitor/run.sh.

Periods are strftime strings of the local clock; due means some scheduled kind has no
snapshot whose period string equals now's (and now is after the newest snapshot); retention
keeps, per kind, the newest snapshot of each of the N periods whose newest snapshots are the
newest.  Held snapshots are never pruned.

    model.py tick NOW SCHEDULE STATE     prints the snapshot set after a tick at NOW
STATE is a file of "<seconds> [held]" lines (the snapshots before the tick); SCHEDULE is
"hourly=3,daily=2,frequent=30:2".  Output: the seconds of each snapshot left, sorted, and
"took" if one was taken.  TZ comes from the environment.
"""
import sys
import time


def key(kind, fmin, t):
    tm = time.localtime(t)
    if kind == "frequent":
        return time.strftime("%Y-%m-%d %H %z", tm) + "|%d" % (tm.tm_min // fmin)
    if kind == "hourly":
        return time.strftime("%Y-%m-%d %H %z", tm)
    if kind == "daily":
        return time.strftime("%Y-%m-%d", tm)
    if kind == "weekly":
        return time.strftime("%G-%V", tm)
    return time.strftime("%Y-%m", tm)


def main():
    _, cmd, now, schedule, state = sys.argv
    assert cmd == "tick"
    now = int(now)
    counts, fmin = {}, 60
    for item in schedule.split(","):
        kind, value = item.split("=")
        if kind == "frequent":
            fmin, value = (int(x) for x in value.split(":"))
        counts[kind] = int(value)
    snaps = {}
    with open(state) as f:
        for line in f:
            words = line.split()
            if words:
                snaps[int(words[0])] = len(words) > 1
    took = False
    if not snaps or now > max(snaps):
        for kind in counts:
            if all(key(kind, fmin, t) != key(kind, fmin, now) for t in snaps):
                snaps[now] = False
                took = True
                break
    keep = set(t for t, held in snaps.items() if held)
    for kind, n in counts.items():
        newest = {}
        for t in snaps:
            k = key(kind, fmin, t)
            newest[k] = max(newest.get(k, t), t)
        keep.update(sorted(newest.values(), reverse=True)[:n])
    for t in sorted(keep):
        print(t)
    if took:
        print("took")


main()
