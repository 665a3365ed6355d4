#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 256M
# vm-timeout: 380
#
# monitor-nas: the zumastor monitor runs a NAS volume on the real kernel with udev running, as
# on a real box.  A volume is defined and started (server, origin device, ext4 mounted at
# /srv/home); eight simulated days of ticks every 8 hours (ZUMASTOR_NOW), with a file
# changed before each, leave exactly the snapshots tests/monitor/model.py says, each
# mounted read-only under /run/zumastor/snapshot/home/@GMT-... with its own time's files,
# and no device or mount for a pruned one.  The real nfs-kernel-server exports every mount
# with the derived fsid (recorded in the database) and an NFSv3 client reads yesterday's
# file; the real smbd lists every snapshot as a previous version (smbclient allinfo) and
# serves a file deleted since.  stop refuses while a snapshot mount is busy and changes
# nothing; stop then removes every mount, device and export; start brings them back with
# the same fsids.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

step "udev, as on a real box (DESIGN.md 7)"
vm_udev_up
load_ddsnap # the module from the build tree (a packaged one would be modprobe'd by start)

mon_setup
store=${DISKS[0]} origin=${DISKS[1]}
db=/var/lib/zumastor/volumes/home
snaps=/run/zumastor/snapshot/home
exports=/etc/exports.d/zumastor.exports

step "NFS and Samba servers (their config: /etc/exports.d and one include line in smb.conf)"
nas_servers_up

step "define and start the volume; ext4 on its origin device"
t=$(date -d '2026-11-28 20:00:00 UTC' +%s)
must z define volume home "$origin" "$store" --initialize --mountpoint /srv/home
must z define schedule home --hourly 2 --daily 3 --weekly 2 --monthly 2
must z define export home --nfs '127.0.0.1:rw,no_root_squash' --samba 'home:rw,guest'
ZUMASTOR_NOW=$t must z start home
wait_for_dev /dev/mapper/home
expect_eq "$(blockdev --getsz /dev/mapper/home)" "$(blockdev --getsz "$origin")" "origin device size"
mkfs.ext4 -q -F /dev/mapper/home
ZUMASTOR_NOW=$t must z start home
mountpoint -q /srv/home || fail "start did not mount the origin at /srv/home"
echo "this file is deleted on the third day" >/srv/home/gone.txt

step "6 simulated days across a month and a week boundary, a tick every 12 hours"
sched="hourly=2,daily=3,weekly=2,monthly=2"
: >"$RESULTS/model"
kinds=""
for ((i = 0; i < 12; i++)); do
	t=$((t + 12 * 3600))
	echo "$t" >/srv/home/today.txt
	echo "$t" >"/srv/home/file-$t.txt"
	((i != 5)) || rm /srv/home/gone.txt
	python3 "$SRC/tests/monitor/model.py" tick "$t" "$sched" "$RESULTS/model" | grep -v took >"$RESULTS/model.new"
	mv "$RESULTS/model.new" "$RESULTS/model"
	ZUMASTOR_NOW=$t z tick >"$RESULTS/tick.out" 2>&1 || {
		cat "$RESULTS/tick.out"
		fail "tick at $t failed"
	}
	kinds+=$(sed -n 's/.*took .* (\(.*\))$/\1,/p' "$RESULTS/tick.out")
	"$ZUMASTOR_DDSNAP" list --json /run/zumastor/servers/home.sock | jq -r '.snapshots[].tag' >"$RESULTS/have"
	expect_same "$RESULTS/have" "$RESULTS/model" "tick $i: the live snapshots are the model's"
done
# one device and one read-only mount per live snapshot, nothing for the pruned ones
while read -r s; do "$ZUMASTOR_HELPER" name "$s"; done <"$RESULTS/have" >"$RESULTS/names"
dmsetup info -c --noheadings -o name | sed -n 's/^home@/@/p' | sort >"$RESULTS/devs"
expect_same "$RESULTS/devs" "$RESULTS/names" "snapshot devices"
findmnt -rn -o TARGET | sed -n "s|^$snaps/||p" | sort >"$RESULTS/mnts"
expect_same "$RESULTS/mnts" "$RESULTS/names" "snapshot mounts"
for k in hourly daily weekly monthly; do
	grep -q "$k" <<<"$kinds" || fail "no snapshot opened a $k period"
done
mapfile -t names <"$RESULTS/names"
log "live snapshots: ${names[*]}"

step "each snapshot mount shows its own time's files, read-only"
for name in "${names[@]}"; do
	s=$("$ZUMASTOR_HELPER" time "$name")
	expect_eq "$(cat "$snaps/$name/today.txt")" "$s" "$name: today.txt"
	[[ -e $snaps/$name/file-$s.txt && ! -e $snaps/$name/file-$((s + 12 * 3600)).txt ]] ||
		fail "$name does not hold exactly the files of its time"
	findmnt -n -o OPTIONS "$snaps/$name" | grep -q '^ro,' || fail "$name is not mounted read-only"
done
# the newest daily before the last tick's day
yesterday=$(grep -v "$(date -u -d "@$t" +%Y.%m.%d)" "$RESULTS/names" | tail -n 1)
ytime=$("$ZUMASTOR_HELPER" time "$yesterday")
log "yesterday's snapshot: $yesterday"

step "NFS: one file under /etc/exports.d, fsids derived and recorded, v3 mount reads yesterday"
cat "$exports"
uuid=$(cat "$db/state/uuid")
for name in origin "${names[@]}"; do
	want=$("$ZUMASTOR_HELPER" fsid "$uuid" "$name")
	expect_eq "$(cat "$db/state/fsid/$name")" "$want" "$name: the fsid recorded in the database"
	path=/srv/home
	opts=rw
	[[ $name == origin ]] || path=$snaps/$name opts=ro
	grep -qx "$path 127.0.0.1($opts,no_root_squash,no_subtree_check,fsid=$want)" "$exports" ||
		fail "$name is not exported as it should be"
done
expect_eq "$(grep -c . /etc/exports)" 0 "/etc/exports is untouched"
exportfs -v | grep -q "$snaps/$yesterday" || fail "exportfs does not list $yesterday"
mkdir -p /mnt/nfs /mnt/nfs-origin
must mount -t nfs -o vers=3,nolock 127.0.0.1:"$snaps/$yesterday" /mnt/nfs
expect_eq "$(cat /mnt/nfs/today.txt)" "$ytime" "yesterday's today.txt over NFSv3"
must mount -t nfs -o vers=3,nolock 127.0.0.1:/srv/home /mnt/nfs-origin
expect_eq "$(cat /mnt/nfs-origin/today.txt)" "$t" "today's file over NFSv3"
umount /mnt/nfs /mnt/nfs-origin

step "Samba: every snapshot a previous version; a deleted file served from one"
cat /etc/samba/zumastor.conf
grep -q "shadow:snapdir = $snaps" /etc/samba/zumastor.conf || fail "no shadow_copy2 share written"
smbclient -N //127.0.0.1/home -c 'allinfo today.txt' >"$RESULTS/allinfo" 2>&1 ||
	fail "smbclient allinfo: $(cat "$RESULTS/allinfo")"
cat "$RESULTS/allinfo"
grep -o '@GMT-[0-9.-]*' "$RESULTS/allinfo" | sort >"$RESULTS/versions"
expect_same "$RESULTS/versions" "$RESULTS/names" "the previous versions are the live snapshots"
oldest=$(head -n 1 "$RESULTS/names")
[[ -e $snaps/$oldest/gone.txt ]] || fail "the oldest snapshot should still hold gone.txt"
rm -f /tmp/gone.txt
smbclient -N //127.0.0.1/home -c "get $oldest/gone.txt /tmp/gone.txt" >"$RESULTS/get" 2>&1 ||
	fail "smbclient get: $(cat "$RESULTS/get")"
expect_eq "$(cat /tmp/gone.txt)" "this file is deleted on the third day" "the deleted file from $oldest"

step "status --json: every snapshot mounted and exported over NFS and Samba"
z status --json home >"$RESULTS/status.json"
jq -e --argjson n "${#names[@]}" '.volumes[0].snapshots | length == $n and
	all(.mounted and .exported == ["nfs", "samba"])' "$RESULTS/status.json" >/dev/null ||
	fail "status --json: $(cat "$RESULTS/status.json")"

step "stop refuses while a snapshot mount is busy, and changes nothing"
cp "$exports" "$RESULTS/exports-before"
(cd "$snaps/$yesterday" && exec sleep 300) &
busy=$!
sleep 0.5
must_fail z stop home 2>"$RESULTS/stop.err"
cat "$RESULTS/stop.err"
grep -q "busy" "$RESULTS/stop.err" || fail "stop did not say what is busy"
mountpoint -q "$snaps/$yesterday" || fail "the busy mount was taken away"
mountpoint -q /srv/home || fail "the origin was unmounted by a refused stop"
expect_same "$exports" "$RESULTS/exports-before" "exports after a refused stop"
kill "$busy"
wait "$busy" || true

step "stop removes every export, mount and device; start brings them back with the same fsids"
must z stop home
[[ -z $(findmnt -rn -o TARGET | grep -e /srv/home -e "$snaps" || true) ]] || fail "mounts left after stop"
[[ -z $(dmsetup info -c --noheadings -o name | grep '^home' || true) ]] || fail "devices left after stop"
expect_eq "$(grep -vc '^#' "$exports" || true)" 0 "export lines after stop"
exportfs -v | grep -q /srv/home && fail "still exported after stop"
out=$(z stop home)
[[ $out == *"not running: nothing to do"* ]] || fail "a second stop is not a no-op: $out"
ZUMASTOR_NOW=$t must z start home
expect_same "$exports" "$RESULTS/exports-before" "the exports (and fsids) after start"
findmnt -rn -o TARGET | sed -n "s|^$snaps/||p" | sort >"$RESULTS/mnts"
expect_same "$RESULTS/mnts" "$RESULTS/names" "snapshot mounts after start"
must mount -t nfs -o vers=3,nolock 127.0.0.1:"$snaps/$yesterday" /mnt/nfs
expect_eq "$(cat /mnt/nfs/today.txt)" "$ytime" "yesterday's file over NFS after the restart"
umount /mnt/nfs
out=$(ZUMASTOR_NOW=$t z start home)
[[ $out == *"already running: nothing to do"* ]] || fail "a second start is not a no-op: $out"

step "tear down"
must z stop home
"$ZUMASTOR_DDSNAP" check "$store" >/dev/null || fail "ddsnap check after stop"
log "monitor-nas: snapshots as the model says, mounted, over NFS and Samba, back after a restart"
