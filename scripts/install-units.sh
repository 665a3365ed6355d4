#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Installs the monitor's boot pieces with <sbindir> (where zumastor is installed) filled in
# for @SBINDIR@: every systemd unit in monitor/systemd/ (*.service, *.timer, *.socket,
# *.path, *.target) under <destdir>/lib/systemd/system, and each monitor/systemd/<name>.cron
# as <destdir>/etc/cron.d/<name> (for boxes without systemd).  With --enable the units are
# enabled as `systemctl enable` would (a link in <destdir>/etc/systemd/system/<T>.wants for
# each WantedBy=<T> of their [Install] section; the template zumastor-server@.service has
# none: `zumastor start` starts an instance per volume): make install does that; the Debian package
# does not (dh_installsystemd enables them in its maintainer scripts).
#   install-units.sh [--enable] <sbindir> <destdir>
# Run by make install-programs (so by make install and debian/rules) and tests/monitor/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
enable=0
if [[ ${1:-} == --enable ]]; then
	enable=1
	shift
fi
(($# == 2)) || {
	echo "usage: install-units.sh [--enable] <sbindir> <destdir>" >&2
	exit 2
}
sbindir=$1 dest=$2
units=$dest/lib/systemd/system
mkdir -p "$units" "$dest/etc/cron.d"
shopt -s nullglob
for f in monitor/systemd/*.service monitor/systemd/*.timer monitor/systemd/*.socket \
	monitor/systemd/*.path monitor/systemd/*.target; do
	u=$(basename "$f")
	sed "s|@SBINDIR@|$sbindir|g" "$f" >"$units/$u"
	chmod 0644 "$units/$u"
	((enable)) || continue
	sed -n 's/^WantedBy=//p' "$f" | tr ' ' '\n' | while read -r target; do
		[[ -n $target ]] || continue
		mkdir -p "$dest/etc/systemd/system/$target.wants"
		ln -sfn "/lib/systemd/system/$u" "$dest/etc/systemd/system/$target.wants/$u"
	done
done
for f in monitor/systemd/*.cron; do
	c=$dest/etc/cron.d/$(basename "$f" .cron)
	sed "s|@SBINDIR@|$sbindir|g" "$f" >"$c"
	chmod 0644 "$c"
done
