#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The zumastor monitor on this machine, on plain files (no kernel needed): the config
# database (round trips, canonical values, every kind of bad value, hand edits, atomic
# writes), define volume's device recognition (swapped devices, a filesystem, a store given
# twice, a device of another volume), locks (a held lock, two ticks at once), start/stop,
# snapshot/hold/release, status --json, check's Nagios statuses, and three simulated weeks
# of ticks with the test clock (ZUMASTOR_NOW) against tests/monitor/model.py across the end
# of summer time.  Each case prints ok/FAIL; the last line is 'monitor: N passed, N failed'.
#   run.sh <build dir>
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
# shellcheck source=scripts/results.sh
. scripts/results.sh
src=$PWD
zumastor=$src/monitor/zumastor
dir=$(mktemp -d /tmp/zumastor-test-XXXXXX)
export ZUMASTOR_ROOT=$dir/db ZUMASTOR_RUN=$dir/run ZUMASTOR_LOG=$dir/log
export ZUMASTOR_HELPER=$src/$1/bin/zumastor-helper ZUMASTOR_DDSNAP=$src/$1/bin/ddsnap
export ZUMASTOR_LOCK_WAIT=20
ddsnap=$ZUMASTOR_DDSNAP
passed=0 failed=0
cleanup()
{
	local f
	for f in "$dir"/run/pid/*.pid "$dir"/box/*/run/pid/*.pid; do
		[[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null
	done
	sleep 0.5
	rm -rf "$dir"
}
trap cleanup EXIT

ok()
{
	passed=$((passed + 1))
	echo "ok   $1"
}
bad()
{
	failed=$((failed + 1))
	echo "FAIL $1"
	sed 's/^/     /' "$dir/out" "$dir/err" 2>/dev/null
}
# expect STATUS DESCRIPTION CMD...: runs CMD, checks its exit status.
expect()
{
	local want=$1 what=$2 rc
	shift 2
	"$@" >"$dir/out" 2>"$dir/err"
	rc=$?
	if ((rc == want)); then ok "$what"; else bad "$what: exit $rc, expected $want"; fi
}
# expect_out PATTERN DESCRIPTION: the last command's output matches PATTERN.
expect_out()
{
	if grep -Eq -- "$1" "$dir/out" "$dir/err"; then ok "$2"; else bad "$2: no match for '$1'"; fi
}
# expect_json FILTER DESCRIPTION: the last command printed valid JSON for which FILTER holds.
expect_json()
{
	cp "$dir/out" "$dir/json"
	if python3 -m json.tool "$dir/json" >/dev/null && jq -e "$1" "$dir/json" >/dev/null; then
		ok "$2"
	else
		bad "$2: not valid JSON, or '$1' is not true"
	fi
}
# same FILE VALUE DESCRIPTION
same()
{
	if [[ $(cat "$1" 2>/dev/null) == "$2" ]]; then ok "$3"; else bad "$3: '$(cat "$1" 2>&1)' is not '$2'"; fi
}
z()
{
	"$zumastor" "$@"
}

mkdir -p "$dir/dev"
for d in o1 s1 o2 s2 s3 fs; do truncate -s 64M "$dir/dev/$d"; done
truncate -s 16M "$dir/dev/o1" "$dir/dev/o2"
vol=$ZUMASTOR_ROOT/volumes/home

# --- the command line -------------------------------------------------------------------
expect 2 "no command" z
expect 2 "unknown command" z frobnicate
expect 0 "--help" z --help
for c in "define volume" "define schedule" "define export" "forget volume" show start stop \
	serve snapshot hold release tick status check "define target" "define source" "forget target" "forget aside" promote \
	replicate receive-from; do
	# shellcheck disable=SC2086 # the two-word commands split on purpose
	expect 0 "$c --help" z $c --help
	expect_out "^usage: zumastor" "$c --help prints its usage"
done
# man_clean PAGE: the page renders (man -l) with no warning from groff.
man_clean()
{
	local out
	out=$(MANWIDTH=80 man --warnings -l "$1" 2>&1 >/dev/null) && [[ -z $out ]]
}
expect 0 "zumastor(8) renders without warnings" man_clean tools/man/zumastor.8
expect 0 "ddsnap(8) renders without warnings" man_clean tools/man/ddsnap.8
expect 2 "define without what" z define
expect 2 "define volume with two arguments" z define volume home "$dir/dev/o1"

# --- define volume ------------------------------------------------------------------------
for name in "a/b" "my vol" "-rf" ".hidden" "vol(7)" "a1234567890123456789012345678901234567890123456789012345678901234"; do
	expect 2 "volume name '$name' is refused" z define volume --initialize -- "$name" "$dir/dev/o1" "$dir/dev/s1"
	expect_out "volume name: '.*' is not allowed: 1 to 64 characters" "the error names the value and the rule"
done
expect 1 "nothing was written for a bad name" test -e "$ZUMASTOR_ROOT/volumes"
expect 2 "a relative device path" z define volume home dev/o1 "$dir/dev/s1" --initialize
expect_out "origin: 'dev/o1' is not allowed: an absolute path" "the error names the setting, value and rule"
expect 1 "a missing device" z define volume home "$dir/dev/nope" "$dir/dev/s1" --initialize
expect_out "nope is not a block device" "the error names the device"
expect 1 "origin and snapstore the same" z define volume home "$dir/dev/o1" "$dir/dev/o1" --initialize
expect 1 "a blank snapstore without --initialize" z define volume home "$dir/dev/o1" "$dir/dev/s1"
expect_out "holds no ddsnap store: give --initialize" "the error says to give --initialize"
mkfs.ext4 -q -F "$dir/dev/fs" 2>/dev/null
expect 1 "--initialize over a filesystem" z define volume home "$dir/dev/o1" "$dir/dev/fs" --initialize
expect_out "holds a ext4 filesystem: initializing would destroy it" "the error names the filesystem"
expect 0 "the filesystem is intact" blkid -p "$dir/dev/fs"
expect 2 "--chunk without --initialize" z define volume home "$dir/dev/o1" "$dir/dev/s1" --chunk 16k
expect 2 "a bad chunk size" z define volume home "$dir/dev/o1" "$dir/dev/s1" --initialize --chunk 3000
expect 2 "a bad mountpoint" z define volume home "$dir/dev/o1" "$dir/dev/s1" --initialize --mountpoint /srv/a/../b
expect 1 "still nothing in the database" test -e "$vol"
expect 0 "define volume home --initialize" z define volume home "$dir/dev/o1" "$dir/dev/s1" --initialize \
	--chunk 16k --mountpoint /srv/home --fs-options noatime
expect_out "store uuid [0-9a-f-]{36}" "it reports the store uuid"
same "$vol/origin" "$dir/dev/o1" "origin recorded in its own file"
same "$vol/snapstore" "$dir/dev/s1" "snapstore recorded"
same "$vol/chunk" 16384 "chunk recorded in canonical form"
same "$vol/mountpoint" /srv/home "mountpoint recorded"
same "$ZUMASTOR_ROOT/format-version" 1 "format-version written"
expect 0 "the uuid recorded is the store's" \
	bash -c "[[ \$(cat '$vol/state/uuid') == \$('$ZUMASTOR_HELPER' identify '$dir/dev/s1' | cut -d' ' -f2) ]]"
expect 0 "define again with the same devices" z define volume home "$dir/dev/o1" "$dir/dev/s1"
expect_out "nothing to do" "it says there is nothing to do"
expect 1 "define again with other devices" z define volume home "$dir/dev/o2" "$dir/dev/s2" --initialize
"$ddsnap" initialize "$dir/dev/s3" "$dir/dev/o2" >/dev/null # a store no volume records
expect 1 "a swapped pair (the snapstore given as origin)" z define volume other "$dir/dev/s3" "$dir/dev/o2"
expect_out "is a snapstore, not an origin; the order is <origin> <snapstore>" "the error says they look swapped"
expect 1 "--initialize over a store" z define volume other "$dir/dev/o2" "$dir/dev/s1" --initialize
expect_out "already the snapstore of volume home" "the error names the volume that uses it"
expect 1 "another volume's origin" z define volume other "$dir/dev/o1" "$dir/dev/s2" --initialize
expect_out "already the origin of volume home" "the error names the role and volume"
expect 1 "a refused define leaves no volume" test -e "$ZUMASTOR_ROOT/volumes/other"
expect 0 "the snapstore s2 is still blank" bash -c "[[ \$('$ZUMASTOR_HELPER' identify '$dir/dev/s2') == none ]]"
expect 0 "show" z show
expect_out "^  snapstore +$dir/dev/s1$" "show prints each setting"

# --- schedule and export settings ---------------------------------------------------------
expect 0 "define schedule" z define schedule home --hourly 24 --daily 7 --frequent 15:4
same "$vol/schedule/hourly" 24 "hourly in its own file"
same "$vol/schedule/frequent" 15:4 "frequent as MIN:COUNT"
for v in -3 0x10 24h "" 8785; do
	expect 2 "define schedule --hourly '$v' is refused" z define schedule home --hourly "$v"
	same "$vol/schedule/hourly" 24 "the file is unchanged after '$v'"
done
expect_out "schedule/hourly: '8785' is not allowed: a whole number of hourly periods to keep, 1 to 8784" \
	"the error names the setting, the value and the bounds"
expect 2 "--frequent 7:4 (7 does not divide 60)" z define schedule home --frequent 7:4
expect 2 "a schedule for no volume" z define schedule --hourly 3
expect 1 "a schedule for an unknown volume" z define schedule nobody --hourly 3
expect 0 "--daily 0 removes the daily kind" z define schedule home --daily 0
expect 1 "schedule/daily is gone" test -e "$vol/schedule/daily"
expect 0 "define export" z define export home --nfs '192.168.1.0/24:rw,no_subtree_check' --samba 'home:ro'
same "$vol/export/nfs" "192.168.1.0/24:rw,no_subtree_check" "nfs export recorded"
same "$vol/export/samba" "home:ro" "samba export recorded"
expect 2 "an nfs export with its own fsid" z define export home --nfs 'host1:fsid=7'
expect_out "fsid is the monitor's own" "the error says why"
expect 2 "a samba share named global" z define export home --samba global
expect 0 "--no-nfs removes the nfs export" z define export home --no-nfs
expect 1 "export/nfs is gone" test -e "$vol/export/nfs"
leftovers=$(find "$ZUMASTOR_ROOT" -name '.*tmp*' -o -name '.new.*' | wc -l)
expect 0 "no temporary files are left behind" test "$leftovers" -eq 0

# --- values edited by hand are validated on every read -------------------------------------
cp "$vol/schedule/hourly" "$dir/hourly.save"
printf '2 4\n' >"$vol/schedule/hourly"
expect 3 "show with a corrupt schedule/hourly" z show home
expect_out "$vol/schedule/hourly: '2 4' is not allowed" "the error names the file, the value and the rule"
expect_out "volume home: repair or remove $vol/schedule/hourly \(" "the monitor names the file to repair (one helper run reads them all)"
expect 3 "tick with it" z tick home
printf '24\nextra\n' >"$vol/schedule/hourly"
expect 3 "a setting file of two lines" z show home
expect_out "more than one line" "the error says a setting is one line"
cp "$dir/hourly.save" "$vol/schedule/hourly"
printf '3\n' >"$vol/schedule/hourley"
expect 3 "a misspelt setting file" z show home
expect_out "schedule/hourley is not a setting" "the error names the file"
rm "$vol/schedule/hourley"
printf '/dev/sd b\n' >"$dir/origin.bad"
cp "$vol/origin" "$dir/origin.save"
cp "$dir/origin.bad" "$vol/origin"
expect 3 "a corrupt origin" z status home
expect_out "origin: '/dev/sd b' is not allowed" "the error names the value"
expect_out "volume home: repair or remove $vol/origin \(" "the monitor names the origin file"
cp "$dir/origin.save" "$vol/origin"
expect 0 "show after repair" z show home

# --- start, stop, snapshot, hold, release, status, check ----------------------------------
export ZUMASTOR_NOW=1796551200 # 2026-12-06T10:00:00Z
expect 1 "snapshot of a stopped volume" z snapshot home
expect_out "not running" "the error says it is not running"
expect 0 "start home" z start home
expect_out "started volume home" "start says so"
expect 0 "start home again" z start home
expect_out "already running: nothing to do" "start again does nothing and says so"
expect 0 "status --json" z status --json
expect_json '.volumes[0].name == "home" and .volumes[0].state == "running" and .volumes[0].store.total_bytes > 0 and .volumes[0].snapshots == [] and .volumes[0].schedule.hourly == 24 and .volumes[0].schedule.frequent == {minutes: 15, count: 4}' \
	"status --json: running, store, schedule, no snapshots"
expect 1 "check with no snapshot yet" z check
expect_out "^ZUMASTOR WARNING - home has no snapshot \|" "check warns: no snapshot"
expect 0 "snapshot" z snapshot home
expect_out "^@GMT-2026.12.06-10.00.00$" "snapshot prints its name: the test clock's UTC time"
expect 0 "and only its name on stdout" test "$(cat "$dir/out")" = "@GMT-2026.12.06-10.00.00"
expect 1 "a second snapshot in the same second (test clock)" z snapshot home
expect_out "is not older than now" "the refusal says why"
expect 0 "the server has it as tag = its UTC seconds" "$ddsnap" status --json "$ZUMASTOR_RUN/servers/home.sock" 1796551200
expect_json '.snapshots[0].priority == 10' "its priority is hourly's (it is this hour's newest)"
expect 0 "check" z check
expect_out "^ZUMASTOR OK - 1 volumes, snapshots fresh \| home_store=0%;80;95;0;100 home_age=0s;1200;2100$" \
	"check: OK, one line, perfdata"
expect 1 "check --warn-store 0" z check --warn-store 0
expect_out "^ZUMASTOR WARNING - home store 0% used" "check warns about the store"
expect 3 "check with a bad threshold" z check --warn-store lots
expect_out "^ZUMASTOR UNKNOWN" "check says UNKNOWN"
ZUMASTOR_NOW=$((1796551200 + 1500)) expect 1 "check 25 minutes later (frequent 15:4)" z check
expect_out "WARNING - home newest snapshot 1500s old" "the newest snapshot is older than its period"
ZUMASTOR_NOW=$((1796551200 + 2500)) expect 2 "check later still" z check
expect_out "CRITICAL - home newest snapshot 2500s old" "twice the period: CRITICAL"
expect 0 "hold" z hold home @GMT-2026.12.06-10.00.00
expect 0 "hold again" z hold home @GMT-2026.12.06-10.00.00
expect_out "already held: nothing to do" "hold again does nothing and says so"
expect 1 "hold of a missing snapshot" z hold home @GMT-2026.12.06-11.00.00
expect 2 "hold of a bad name" z hold home 2026-12-06
expect 0 "held: usecount 1 in the server" "$ddsnap" status --json "$ZUMASTOR_RUN/servers/home.sock" 1796551200
expect_json '.snapshots[0].usecount == 1' "the server holds it"
# two hours and a half later with hourly 1: the held one is kept, the one between pruned
z define schedule home --hourly 1 --frequent 0 >/dev/null
ZUMASTOR_NOW=$((1796551200 + 3600)) expect 0 "tick an hour later" z tick
expect_out "took @GMT-2026.12.06-11.00.00" "tick took the due snapshot"
ZUMASTOR_NOW=$((1796551200 + 7200)) expect 0 "tick two hours later" z tick
expect_out "pruned @GMT-2026.12.06-11.00.00" "the unheld one of the last hour is pruned"
expect 0 "status --json" z status --json home
expect_json '[.volumes[0].snapshots[].name] == ["@GMT-2026.12.06-10.00.00", "@GMT-2026.12.06-12.00.00"] and .volumes[0].snapshots[0].held and .volumes[0].snapshots[0].why == "held" and .volumes[0].snapshots[1].kinds == ["hourly"] and (.volumes[0].snapshots | all(.mounted == false and .exported == []))' \
	"status --json: the held snapshot kept and why, the newest kept for hourly, nothing mounted on plain files"
expect 0 "release" z release home @GMT-2026.12.06-10.00.00
ZUMASTOR_NOW=$((1796551200 + 7260)) expect 0 "tick after release" z tick
expect_out "pruned @GMT-2026.12.06-10.00.00" "the released snapshot is pruned"
# a hold recorded in the database whose server usecount was lost is set again by tick
touch "$vol/state/held/@GMT-2026.12.06-12.00.00"
ZUMASTOR_NOW=$((1796551200 + 7320)) expect 0 "tick with a hold only in the database" z tick
expect 0 "the server's usecount follows the database" "$ddsnap" status --json "$ZUMASTOR_RUN/servers/home.sock"
expect_json '.snapshots[0].usecount == 1' "usecount 1"
rm "$vol/state/held/@GMT-2026.12.06-12.00.00"

# --- locks --------------------------------------------------------------------------------
flock "$ZUMASTOR_RUN/lock/home" sleep 4 &
holder=$!
sleep 0.5
ZUMASTOR_LOCK_WAIT=1 expect 1 "tick while another holds the volume's lock" z tick
expect_out "volume home is busy" "the error says the volume is busy"
wait $holder
z define schedule home --frequent 1:5 >/dev/null
before=$("$ddsnap" list --json "$ZUMASTOR_RUN/servers/home.sock" | jq '.snapshots | length')
export ZUMASTOR_NOW=$((1796551200 + 9000))
z tick >"$dir/t1" 2>&1 &
t1=$!
z tick >"$dir/t2" 2>&1 &
t2=$!
wait $t1
r1=$?
wait $t2
r2=$?
expect 0 "two ticks at once both succeed" test $((r1 + r2)) -eq 0
after=$("$ddsnap" list --json "$ZUMASTOR_RUN/servers/home.sock" | jq '.snapshots | length')
expect 0 "and take one snapshot between them" test $((after - before)) -eq 1
expect 0 "one of them took it" test "$(cat "$dir/t1" "$dir/t2" | grep -c took)" -eq 1

# --- boot: the systemd units, the cron file, start --boot, stop --shutdown ------------------
expect 0 "install-units.sh" bash scripts/install-units.sh --enable "$src/monitor" "$dir/root"
units=$dir/root/lib/systemd/system
mkdir -p "$dir/root/share/man/man8"
cp tools/man/*.8 "$dir/root/share/man/man8/"
# verify also runs man for each Documentation= page: MANPATH finds ours
MANPATH=$dir/root/share/man expect 0 "systemd-analyze verify accepts the units" \
	systemd-analyze verify "$units/zumastor.service" "$units/zumastor-server@.service" \
	"$units/zumastor-tick.service" "$units/zumastor-tick.timer"
expect 0 "they run the installed zumastor" grep -q "^ExecStart=$src/monitor/zumastor tick$" "$units/zumastor-tick.service"
expect 0 "the timer is enabled" test -L "$dir/root/etc/systemd/system/timers.target.wants/zumastor-tick.timer"
expect 0 "zumastor.service is enabled" test -L "$dir/root/etc/systemd/system/multi-user.target.wants/zumastor.service"
cronline=$(grep -v '^#' "$dir/root/etc/cron.d/zumastor")
expect 0 "the cron file ticks every minute as root" grep -Eq '^\* \* \* \* \* root ' "$dir/root/etc/cron.d/zumastor"
mkdir -p "$dir/timer-on" "$dir/timer-off"
printf '#!/bin/sh\nexit 0\n' >"$dir/timer-on/systemctl"
printf '#!/bin/sh\nexit 3\n' >"$dir/timer-off/systemctl"
chmod +x "$dir/timer-on/systemctl" "$dir/timer-off/systemctl"
count()
{
	"$ddsnap" list --json "$ZUMASTOR_RUN/servers/home.sock" | jq '.snapshots | length'
}
before=$(count)
ZUMASTOR_NOW=$((ZUMASTOR_NOW + 120)) PATH=$dir/timer-on:$PATH expect 0 "cron while the timer is active" sh -c "${cronline#* root }"
expect 0 "it did not tick" test "$(count)" -eq "$before"
ZUMASTOR_NOW=$((ZUMASTOR_NOW + 120)) PATH=$dir/timer-off:$PATH expect 0 "cron without the timer" sh -c "${cronline#* root }"
expect 0 "it ticked: one snapshot taken" test "$(count)" -eq $((before + 1))
# After a package removal the cron file (a conffile) stays: it must stay silent.
removed=${cronline//"$src/monitor"/"$dir/removed"}
ZUMASTOR_NOW=$((ZUMASTOR_NOW + 120)) PATH=$dir/timer-off:$PATH expect 0 "cron with zumastor removed" sh -c "${removed#* root }"
expect 0 "says nothing" test ! -s "$dir/out" -a ! -s "$dir/err"
expect 0 "and does not tick" test "$(count)" -eq $((before + 1))
expect 0 "stop --all --shutdown" z stop --all --shutdown
expect 0 "the volume stays marked started" test -e "$vol/state/started"
expect 2 "stop --boot is not a thing" z stop --boot
expect 0 "start --boot" z start --boot
expect_out "started volume home" "start --boot starts the started volume"
expect 0 "it runs" "$ddsnap" status --size "$ZUMASTOR_RUN/servers/home.sock"

# --- a server killed under the monitor; the devices checked before a start; forget --------
after=$(count)
pid=$(cat "$ZUMASTOR_RUN/pid/home.pid")
kill -KILL "$pid"
sleep 0.3
expect 2 "check with the server killed" z check
expect_out "^ZUMASTOR CRITICAL - home is not running" "check says CRITICAL: not running"
expect 0 "status --json says failed" z status --json
expect_json '.volumes[0].state == "failed"' "state failed"
expect 0 "tick with the server killed restarts it" z tick
expect_out "volume home: its server \(pid $pid\) is gone \(killed or crashed; see $ZUMASTOR_LOG/home/server.log\): restarting it" \
	"tick reports the dead server, by pid, and where its log is"
expect_out "volume home: server restarted" "and that it restarted it"
expect 0 "the server answers again" "$ddsnap" status --size "$ZUMASTOR_RUN/servers/home.sock"
expect 0 "a new process" test "$(cat "$ZUMASTOR_RUN/pid/home.pid")" != "$pid"
expect 0 "the snapshots survived" "$ddsnap" list --json "$ZUMASTOR_RUN/servers/home.sock"
expect_json ".snapshots | length == $after" "same count"
expect 0 "check is OK again" z check
expect 0 "a tick with the server running says nothing about it" z tick
cp "$dir/err" "$dir/tick.err"
expect 1 "nothing restarted" grep -q restart "$dir/tick.err"
pid=$(cat "$ZUMASTOR_RUN/pid/home.pid")
kill -STOP "$pid"
ZUMASTOR_SERVER_WAIT=2 expect 1 "tick with a server that hangs (SIGSTOP) does not hang" timeout 60 "$zumastor" tick home
expect_out "volume home: its server \(pid $pid\) runs but does not answer on $ZUMASTOR_RUN/servers/home.sock within 2 s: left alone" \
	"tick reports the hung server and leaves it alone"
expect 0 "the same server is left in place" test "$(cat "$ZUMASTOR_RUN/pid/home.pid")" = "$pid"
ZUMASTOR_SERVER_WAIT=1x expect 2 "a bad ZUMASTOR_SERVER_WAIT" z tick
expect_out "ZUMASTOR_SERVER_WAIT='1x' is not allowed: seconds, 1 to 99999" "the error names the value and the rule"
# stop of the hung server: it gets SIGTERM, and stops once it runs again
(
	sleep 4
	kill -CONT "$pid"
) &
ZUMASTOR_SERVER_WAIT=2 expect 0 "stop with the server hung" z stop home
expect_out "volume home: its server \(pid $pid\) does not answer: stopping it" "stop says the server did not answer"
expect_out "^stopped volume home$" "and that it stopped it"
expect 1 "the process is gone" kill -0 "$pid"
wait
z start home >/dev/null
expect 0 "stop" z stop home
expect 0 "tick of a stopped volume does not start it" z tick
expect 1 "still stopped" "$ddsnap" status --size "$ZUMASTOR_RUN/servers/home.sock"
cp "$vol/origin" "$dir/origin.save"
cp "$vol/snapstore" "$dir/snapstore.save"
mv "$dir/dev/o1" "$dir/dev/o1.away"
expect 1 "start with its origin missing" z start home
expect_out "volume home: its origin $dir/dev/o1 is missing \(no such block device\)" "the error names the role and the device"
expect 1 "no server was started" test -e "$ZUMASTOR_RUN/pid/home.pid"
expect 1 "serve (the unit's command) refuses it too" z serve home
expect_out "volume home: its origin $dir/dev/o1 is missing" "with the same error"
mv "$dir/dev/o1.away" "$dir/dev/o1"
cp "$dir/snapstore.save" "$vol/origin"
cp "$dir/origin.save" "$vol/snapstore"
expect 1 "start with origin and snapstore swapped by an edit" z start home
expect_out "its snapstore $dir/dev/o1 holds no ddsnap store .*are origin and snapstore swapped\?" "the error says they look swapped"
cp "$dir/origin.save" "$vol/origin"
printf '%s\n' "$dir/dev/s3" >"$vol/snapstore"
expect 1 "start with another store as its snapstore" z start home
expect_out "its snapstore $dir/dev/s3 holds the store [0-9a-f-]{36}, not this volume's \($(cat "$vol/state/uuid")\)" \
	"the error names both stores"
cp "$dir/snapstore.save" "$vol/snapstore"
for d in o3 s4; do truncate -s 16M "$dir/dev/$d"; done
expect 0 "a volume named web-1+x" z define volume web-1+x "$dir/dev/o3" "$dir/dev/s4" --initialize
cp "$ZUMASTOR_ROOT/volumes/web-1+x/snapstore" "$dir/web.save"
ln -s "$dir/dev/s1" "$dir/dev/link-to-s1"
printf '%s\n' "$dir/dev/link-to-s1" >"$ZUMASTOR_ROOT/volumes/web-1+x/snapstore"
expect 1 "start with home's store (through a link) edited in" z start web-1+x
expect_out "$dir/dev/link-to-s1 is already the snapstore of volume home" "the error names the volume that has it"
cp "$dir/web.save" "$ZUMASTOR_ROOT/volumes/web-1+x/snapstore"
expect 1 "none of it started a server" test -e "$ZUMASTOR_RUN/pid/home.pid"
expect 0 "start home with its own devices back" z start home
expect 0 "its snapshots are all there" "$ddsnap" list --json "$ZUMASTOR_RUN/servers/home.sock"
expect_json ".snapshots | length == $after" "same count"

# --- a directory in the database that is not a volume ---------------------------------------
mkdir "$ZUMASTOR_ROOT/volumes/my vol"
cp "$vol/origin" "$vol/snapstore" "$ZUMASTOR_ROOT/volumes/my vol/"
before=$(count)
ZUMASTOR_NOW=$((ZUMASTOR_NOW + 600)) expect 3 "tick with a directory 'my vol' in the database" z tick
expect_out "volumes/my vol is not a volume \(volume name: 'my vol' is not allowed: 1 to 64 characters" \
	"the error names the directory and the rule"
expect 0 "the other volumes still ticked" test "$(count)" -eq $((before + 1))
expect 1 "no lock was taken for 'my' or 'vol'" test -e "$ZUMASTOR_RUN/lock/my" -o -e "$ZUMASTOR_RUN/lock/vol"
expect 3 "show says so too" z show
expect_out "^volume home$" "and shows the volumes"
rm -r "$ZUMASTOR_ROOT/volumes/my vol"

# --- the server under systemd: the unit zumastor-server@.service ----------------------------
# A stand-in systemctl records what it is asked and, for start, runs the installed unit's
# ExecStart with the instance unescaped as systemd's %I does.
mkdir -p "$dir/systemd"
cat >"$dir/systemd/systemctl" <<EOF
#!/usr/bin/env bash
echo "\$*" >>"$dir/systemctl.log"
[[ \$1 != --no-block ]] || shift
[[ \$1 == start ]] || exit 0
inst=\${2#zumastor-server@}
vol=\$(systemd-escape -u -- "\${inst%.service}")
line=\$(sed -n 's/^ExecStart=//p' "$units/zumastor-server@.service")
read -ra cmd <<<"\${line//%I/\$vol}"
exec "\${cmd[@]}"
EOF
chmod +x "$dir/systemd/systemctl"
expect 2 "zumastor serve without a volume" z serve
# zs: the monitor as under systemd, with the stand-in
zs()
{
	ZUMASTOR_SUPERVISOR=systemd PATH=$dir/systemd:$PATH "$zumastor" "$@"
}
expect 0 "start web-1+x under systemd" zs start web-1+x
expect 0 "it asked systemd to start the unit of web-1+x (escaped)" \
	grep -qxF 'start zumastor-server@web\x2d1\x2bx.service' "$dir/systemctl.log"
expect 0 "and the unit's command started the server" "$ddsnap" status --size "$ZUMASTOR_RUN/servers/web-1+x.sock"
kill -KILL "$(cat "$ZUMASTOR_RUN/pid/web-1+x.pid")"
sleep 0.3
expect 0 "tick restarts it through systemd" zs tick web-1+x
expect_out "volume web-1\+x: server restarted" "tick says so"
expect 0 "it cleared the unit's failed state and started it" \
	test "$(grep -c -e 'reset-failed zumastor-server@web' -e '^start zumastor-server@web' "$dir/systemctl.log")" -eq 4
expect 0 "stop under systemd" zs stop web-1+x
expect 0 "it asked systemd to stop the unit" grep -qxF -- '--no-block stop zumastor-server@web\x2d1\x2bx.service' "$dir/systemctl.log"
expect 1 "the server is gone" "$ddsnap" status --size "$ZUMASTOR_RUN/servers/web-1+x.sock"
ZUMASTOR_SUPERVISOR=upstart expect 2 "a supervisor that is not one" z start web-1+x
expect_out "ZUMASTOR_SUPERVISOR='upstart' is not allowed: systemd or self" "the error names the value and the rule"
expect 0 "forget web-1+x" z forget volume web-1+x
expect 1 "forget a running volume" z forget volume home
expect_out "is running" "forget says stop it first"
expect 0 "stop" z stop home
expect 0 "stop again" z stop home
expect_out "not running: nothing to do" "stop again does nothing and says so"
expect 0 "check with the volume stopped" z check
expect 0 "forget volume" z forget volume home
expect 1 "its directory is gone" test -e "$vol"
expect 0 "the store is untouched" bash -c "[[ \$('$ZUMASTOR_HELPER' identify '$dir/dev/s1') == snapstore* ]]"
expect 0 "define it again from the existing store" z define volume home "$dir/dev/o1" "$dir/dev/s1"
expect 0 "forget volume --wipe" z forget volume home --wipe
expect 0 "the store's labels are gone" bash -c "[[ \$('$ZUMASTOR_HELPER' identify '$dir/dev/s1') == none ]]"
unset ZUMASTOR_NOW

# --- three simulated weeks of ticks against the model --------------------------------------
# Every 4 simulated hours (with jitter, a day of downtime, a clock stepped back), across the
# end of summer time in Europe/Berlin; a manual held snapshot on the way.  After every tick
# the server's snapshots are exactly the model's.
export TZ=Europe/Berlin
z define volume sim "$dir/dev/o2" "$dir/dev/s2" --initialize >/dev/null
z define schedule sim --frequent 30:2 --hourly 3 --daily 4 --weekly 2 --monthly 2 >/dev/null
z start sim >/dev/null
sock=$ZUMASTOR_RUN/servers/sim.sock
: >"$dir/model"
t=$(date -d '2026-10-12 07:13:00 UTC' +%s)
end=$((t + 21 * 86400))
seed=12345 ticks=0 mism=0 kinds=""
while ((t < end)); do
	seed=$(((seed * 1103515245 + 12345) % 2147483648))
	r=$((seed % 100))
	if ((r < 3)); then
		t=$((t + 86400 + seed % 7200)) # a day of downtime
	elif ((r < 6)); then
		t=$((t - 3600)) # the clock steps back an hour
	else
		t=$((t + 4 * 3600 + seed % 1800 - 900))
	fi
	ticks=$((ticks + 1))
	if ((ticks == 20)); then
		name=$(ZUMASTOR_NOW=$((t - 1)) z snapshot sim --hold 2>/dev/null) &&
			echo "$((t - 1)) held" >>"$dir/model"
	fi
	python3 tests/monitor/model.py tick "$t" "frequent=30:2,hourly=3,daily=4,weekly=2,monthly=2" \
		"$dir/model" >"$dir/want"
	ZUMASTOR_NOW=$t z tick sim >"$dir/tick.out" 2>&1 || mism=$((mism + 1))
	kinds+=$(sed -n 's/.*took .* (\(.*\))$/\1,/p' "$dir/tick.out")
	"$ddsnap" list --json "$sock" | jq -r '.snapshots[].tag' >"$dir/have"
	if ! diff -q <(grep -v took "$dir/want") "$dir/have" >/dev/null; then
		mism=$((mism + 1))
		echo "     tick $ticks at $t: model and monitor differ:"
		diff <(grep -v took "$dir/want") "$dir/have" | sed 's/^/     /' | head -5
	fi
	# the model's state: what is left, held ones marked
	grep -v took "$dir/want" | while read -r s; do
		if grep -q "^$s held" "$dir/model"; then echo "$s held"; else echo "$s"; fi
	done >"$dir/model.new"
	mv "$dir/model.new" "$dir/model"
done
expect 0 "$ticks ticks over 3 simulated weeks: the snapshots are the model's after each" test "$mism" -eq 0
for k in frequent hourly daily weekly monthly; do
	expect 0 "the weeks took snapshots that opened a $k period" grep -q "$k" <<<"$kinds"
done
expect 0 "the held manual snapshot is still there" grep -q held "$dir/model"
z stop sim >/dev/null
unset TZ

# replication: three boxes on files, A -> B -> C (tests/monitor/replication.sh)
# shellcheck source=tests/monitor/replication.sh
. tests/monitor/replication.sh

results_record monitor "$passed" "$failed"
echo "monitor: $passed passed, $failed failed"
((failed == 0))
