#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Installs the monitor's boot pieces with <sbindir> (where zumastor is installed) filled in:
# the systemd units under <destdir>/lib/systemd/system, enabled as `systemctl enable` would
# (the wants links under <destdir>/etc/systemd/system; the template zumastor-server@.service
# is not enabled: `zumastor start` starts an instance per volume), and the cron file for
# boxes without systemd as <destdir>/etc/cron.d/zumastor.  make install runs it; tests/monitor/run.sh too.
#   install-units.sh <sbindir> <destdir>
set -euo pipefail
cd "$(dirname "$0")/.."
sbindir=$1 dest=$2
units=$dest/lib/systemd/system
mkdir -p "$units" "$dest/etc/cron.d" "$dest/etc/systemd/system/multi-user.target.wants" \
	"$dest/etc/systemd/system/timers.target.wants"
for f in monitor/systemd/*.service monitor/systemd/*.timer; do
	sed "s|@SBINDIR@|$sbindir|g" "$f" >"$units/$(basename "$f")"
	chmod 0644 "$units/$(basename "$f")"
done
sed "s|@SBINDIR@|$sbindir|g" monitor/systemd/zumastor.cron >"$dest/etc/cron.d/zumastor"
chmod 0644 "$dest/etc/cron.d/zumastor"
ln -sfn /lib/systemd/system/zumastor.service "$dest/etc/systemd/system/multi-user.target.wants/zumastor.service"
ln -sfn /lib/systemd/system/zumastor-tick.timer "$dest/etc/systemd/system/timers.target.wants/zumastor-tick.timer"
