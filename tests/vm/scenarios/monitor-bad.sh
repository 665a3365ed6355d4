#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 4 128M
# vm-timeout: 420
#
# monitor-bad: the zumastor monitor under misuse and failure, on the real kernel with udev
# running.  Each case gets an error that names what is wrong (the message is checked), and
# nothing is lost: the origin's files and a snapshot's are checksummed before and after, and
# the store passes `ddsnap check` at the end.  The cases: volume names with '/' or spaces;
# a missing device; a device already used by another volume (its origin or its store, also
# through a second device node, also edited into the config by hand); store and origin
# swapped (at define, and edited into the config); a corrupt config value (tick, status and
# stop refuse and change nothing); two ticks at once (exactly one snapshot); a busy mount at
# stop (refused, nothing changed; --force works); the server SIGKILLed under a filesystem
# being written (the next tick reports it and restarts it, the kernel target reconnects,
# the writes go on and every byte is there).
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

step "udev, as on a real box; the monitor"
vm_udev_up
load_ddsnap
mon_setup
sa=${DISKS[0]} oa=${DISKS[1]} sb=${DISKS[2]} ob=${DISKS[3]}
db=/var/lib/zumastor/volumes
snaps=/run/zumastor/snapshot/alpha
err=$RESULTS/err

# refused WHAT REGEX CMD...: CMD fails, and its stderr matches REGEX (ERE).
refused()
{
	local what=$1 re=$2
	shift 2
	if "$@" >"$RESULTS/out" 2>"$err"; then
		fail "$what: '$*' succeeded"
	fi
	sed 's/^/    /' "$err"
	grep -Eq -- "$re" "$err" || fail "$what: the error does not match '$re'"
}

# count: the number of alpha's snapshots in its server.
count()
{
	"$ZUMASTOR_DDSNAP" list --json /run/zumastor/servers/alpha.sock | jq '.snapshots | length'
}

# runtime: what alpha has in place (devices, mounts, exports lines, server), for comparing.
runtime()
{
	dmsetup info -c --noheadings -o name | grep '^alpha' | sort
	findmnt -rn -o TARGET | grep -e /srv/alpha -e "$snaps" | sort
	"$ZUMASTOR_DDSNAP" list --json /run/zumastor/servers/alpha.sock | jq -c '[.snapshots[].tag]'
	ls "$db/alpha/state"
}

step "volume names with '/' or spaces are refused; nothing is written"
for name in "a/b" "my vol" "../etc" "x y/z"; do
	refused "name '$name'" "volume name: '$name' is not allowed: 1 to 64 characters" \
		z define volume --initialize -- "$name" "$oa" "$sa"
	refused "start '$name'" "volume name: '$name' is not allowed" z start "$name"
done
[[ ! -e $db ]] || fail "a refused name left $db"
expect_eq "$("$ZUMASTOR_HELPER" identify "$sa")" none "the store disk after the refusals"

step "volume alpha: ext4, files, a snapshot"
t=$(date -d '2026-12-01 09:00:00 UTC' +%s)
must z define volume alpha "$oa" "$sa" --initialize --mountpoint /srv/alpha
must z define schedule alpha --hourly 6
ZUMASTOR_NOW=$t must z start alpha
wait_for_dev /dev/mapper/alpha
mkfs.ext4 -q -F /dev/mapper/alpha
ZUMASTOR_NOW=$t must z start alpha
mountpoint -q /srv/alpha || fail "start did not mount /srv/alpha"
for i in 1 2 3 4; do write_pattern "/srv/alpha/f$i" "f$i" 0 $((i * 65536)); done
sync
ZUMASTOR_NOW=$t must z tick
s1=$("$ZUMASTOR_HELPER" name "$t")
mountpoint -q "$snaps/$s1" || fail "no mount of $s1"
tree_sums /srv/alpha >"$RESULTS/origin.sums"
tree_sums "$snaps/$s1" >"$RESULTS/s1.sums"
expect_same "$RESULTS/s1.sums" "$RESULTS/origin.sums" "the snapshot holds the origin's files"
uuid_a=$(cat "$db/alpha/state/uuid")

step "a missing device"
refused "a missing origin" "/dev/nonexistent is not a block device" \
	z define volume beta /dev/nonexistent "$sb" --initialize
[[ ! -e $db/beta ]] || fail "a refused define left $db/beta"

step "a device already used by another volume"
refused "alpha's origin for beta" "$oa is already the origin of volume alpha" \
	z define volume beta "$oa" "$sb" --initialize
refused "alpha's store for beta (--initialize would erase it)" "$sa is already the snapstore of volume alpha" \
	z define volume beta "$ob" "$sa" --initialize
# a second node of alpha's origin disk: the same device by its number
read -r maj min < <(stat -c '%t %T' "$oa")
mknod /run/alias-of-origin b "0x$maj" "0x$min"
refused "alpha's origin through another node" "/run/alias-of-origin is already the origin of volume alpha" \
	z define volume beta /run/alias-of-origin "$sb" --initialize
rm /run/alias-of-origin
expect_eq "$("$ZUMASTOR_HELPER" identify "$sa")" "snapstore $uuid_a" "alpha's store after the refusals"
expect_eq "$("$ZUMASTOR_HELPER" identify "$sb")" none "beta's disk after the refusals"

step "store and origin swapped"
mkfs.ext4 -q -F "$ob" # beta's origin holds a filesystem already
refused "a new pair swapped (--initialize would erase the filesystem)" \
	"$ob holds a ext4 filesystem: initializing would destroy it; is it the origin\? \(the order is <origin> <snapstore>\)" \
	z define volume beta "$sb" "$ob" --initialize
expect_eq "$(blkid -p -o value -s TYPE "$ob")" ext4 "beta's origin after the refusal"
expect_eq "$("$ZUMASTOR_HELPER" identify "$sb")" none "beta's store disk after the refusal"
must z define volume beta "$ob" "$sb" --initialize
uuid_b=$(cat "$db/beta/state/uuid")
must z forget volume beta
refused "a defined pair swapped" \
	"$sb holds a ddsnap store \($uuid_b\): it is a snapstore, not an origin; the order is <origin> <snapstore> \(are they swapped\?\)" \
	z define volume beta "$sb" "$ob"
must z define volume beta "$ob" "$sb"
expect_eq "$(cat "$db/beta/state/uuid")" "$uuid_b" "beta defined again from its store"
# edited by hand: beta given alpha's store; then its own two swapped
cp "$db/beta/snapstore" "$RESULTS/beta.snapstore"
cp "$db/beta/origin" "$RESULTS/beta.origin"
echo "$sa" >"$db/beta/snapstore"
refused "start beta with alpha's store edited in" "$sa is already the snapstore of volume alpha" z start beta
cp "$RESULTS/beta.snapstore" "$db/beta/origin"
cp "$RESULTS/beta.origin" "$db/beta/snapstore"
refused "start beta with its devices swapped by an edit" \
	"its snapstore $ob holds no ddsnap store .*are origin and snapstore swapped\?" z start beta
[[ ! -S /run/zumastor/servers/beta.sock ]] || fail "a refused start left a server"
cp "$RESULTS/beta.snapstore" "$db/beta/snapstore"
cp "$RESULTS/beta.origin" "$db/beta/origin"
must z forget volume beta
expect_eq "$("$ZUMASTOR_HELPER" identify "$sb")" "snapstore $uuid_b" "beta's store after all that"
expect_eq "$(blkid -p -o value -s TYPE "$ob")" ext4 "beta's origin after all that"

step "a corrupt config value: tick, status and stop refuse it and change nothing"
runtime >"$RESULTS/runtime.before"
cp "$db/alpha/schedule/hourly" "$RESULTS/hourly"
echo "6 hours" >"$db/alpha/schedule/hourly"
ZUMASTOR_NOW=$((t + 3600)) refused "tick" "$db/alpha/schedule/hourly: '6 hours' is not allowed: a whole number of hourly periods to keep, 1 to 8784" z tick
refused "status" "$db/alpha/schedule/hourly: '6 hours' is not allowed" z status alpha
refused "stop" "$db/alpha/schedule/hourly: '6 hours' is not allowed" z stop alpha
runtime >"$RESULTS/runtime.after"
expect_same "$RESULTS/runtime.after" "$RESULTS/runtime.before" "alpha's runtime after the refusals"
cp "$RESULTS/hourly" "$db/alpha/schedule/hourly"

step "two ticks at once take exactly one snapshot"
before=$(count)
ZUMASTOR_NOW=$((t + 3600)) z tick >"$RESULTS/t1" 2>&1 &
p1=$!
ZUMASTOR_NOW=$((t + 3600)) z tick >"$RESULTS/t2" 2>&1 &
p2=$!
wait "$p1" || fail "the first tick failed: $(cat "$RESULTS/t1")"
wait "$p2" || fail "the second tick failed: $(cat "$RESULTS/t2")"
expect_eq "$(count)" $((before + 1)) "snapshots after two ticks at once"
expect_eq "$(cat "$RESULTS/t1" "$RESULTS/t2" | grep -c took)" 1 "ticks that took one"
s2=$("$ZUMASTOR_HELPER" name $((t + 3600)))
mountpoint -q "$snaps/$s2" || fail "no mount of $s2"

step "a busy mount at stop: refused, nothing changed; then --force"
runtime >"$RESULTS/runtime.before"
(cd /srv/alpha && exec sleep 300) &
busy_o=$!
(cd "$snaps/$s1" && exec sleep 300) &
busy_s=$!
sleep 0.5
refused "stop with two busy mounts" "/srv/alpha is busy \(used by pids .*$busy_o" z stop alpha
grep -Eq "$snaps/$s1 is busy \(used by pids .*$busy_s" "$err" || fail "stop did not name the busy snapshot mount"
runtime >"$RESULTS/runtime.after"
expect_same "$RESULTS/runtime.after" "$RESULTS/runtime.before" "alpha's runtime after a refused stop"
kill "$busy_o"
wait "$busy_o" || true
must z stop alpha --force
kill "$busy_s"
wait "$busy_s" || true
for ((i = 0; i < 50; i++)); do
	[[ -n $(dmsetup info -c --noheadings -o name | grep '^alpha' || true) ]] || break
	sleep 0.2
done
expect_eq "$(dmsetup info -c --noheadings -o name | grep -c '^alpha' || true)" 0 "alpha's devices after stop --force"
expect_eq "$(findmnt -rn -o TARGET | grep -c -e /srv/alpha -e "$snaps" || true)" 0 "alpha's mounts after stop --force"
ZUMASTOR_NOW=$((t + 3600)) must z start alpha
tree_sums /srv/alpha >"$RESULTS/now.sums"
expect_same "$RESULTS/now.sums" "$RESULTS/origin.sums" "the origin's files after stop --force and start"
tree_sums "$snaps/$s1" >"$RESULTS/now.sums"
expect_same "$RESULTS/now.sums" "$RESULTS/s1.sums" "$s1's files after stop --force and start"

step "the server killed under a filesystem being written; the next tick restarts it"
(
	for i in $(seq 1 24); do
		write_pattern "/srv/alpha/w$i" "w$i" 0 131072
		sync "/srv/alpha/w$i"
	done
) &
writer=$!
sleep 1
pid=$(cat /run/zumastor/pid/alpha.pid)
kmsg_mark
kill -KILL "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
log "server $pid killed"
sleep 2
kill -0 "$writer" 2>/dev/null || fail "the writer finished while the server was dead: too few writes to test"
ZUMASTOR_NOW=$((t + 7200)) z tick >"$RESULTS/out" 2>"$err" || fail "the tick after the kill failed: $(cat "$err")"
cat "$RESULTS/out" "$err"
grep -q "volume alpha: its server (pid $pid) is gone (killed or crashed; see /var/log/zumastor/alpha/server.log): restarting it" "$err" ||
	fail "the tick did not report the dead server"
grep -q "volume alpha: server restarted" "$err" || fail "the tick did not say it restarted the server"
grep -q "volume alpha: took" "$RESULTS/out" || fail "the tick did not go on to take the due snapshot"
wait "$writer" || fail "the writer failed across the server's death"
expect_kmsg "reconnected to server" "the kernel target reconnected"
[[ $(dmsetup status alpha) == *mode=normal* ]] || fail "alpha's device: $(dmsetup status alpha)"
must z stop alpha
ZUMASTOR_NOW=$((t + 7200)) must z start alpha
for i in $(seq 1 24); do check_pattern "/srv/alpha/w$i" "w$i" 0 131072; done
tree_sums /srv/alpha | grep -v ' ./w[0-9]*$' >"$RESULTS/now.sums"
expect_same "$RESULTS/now.sums" "$RESULTS/origin.sums" "the origin's first files after the kill"
tree_sums "$snaps/$s1" >"$RESULTS/now.sums"
expect_same "$RESULTS/now.sums" "$RESULTS/s1.sums" "$s1's files after the kill"

step "tear down: ddsnap check is clean"
must z stop alpha
"$ZUMASTOR_DDSNAP" check "$sa" >"$RESULTS/check" 2>&1 || fail "ddsnap check: $(cat "$RESULTS/check")"
log "monitor-bad: every misuse refused with its reason, nothing lost, a killed server brought back by tick"
