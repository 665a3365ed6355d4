#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 320M
# vm-timeout: 260
#
# monitor-full: a zumastor volume with xfs on its origin and a small store (64 MiB) is
# written until the server drops snapshots by its full-store policy, with the priorities the
# monitor set by kind.  Five hourly ticks across a month boundary: the November snapshot and
# the newest December one are the monthlies (priority 40), the three between them only
# hourlies (priority 10); each snapshot holds its own version of an 8 MiB file.
# Each snapshot is mounted read-only by the monitor (xfs: ro,norecovery,nouuid) and reads
# its own version.  Then a large file shared by every snapshot is overwritten, 4 MiB at a
# time, until two snapshots are dropped: they are the two oldest hourlies, while the older
# November monthly stays.  The next tick reports both and leaves nothing broken: the dropped ones
# are gone from findmnt, dmsetup, the NFS exports (file and exportfs) and Samba's previous
# versions, their fsid records are gone, every remaining mount reads its own version, over
# NFS too, and the store checks clean after stop.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

step "udev, the NFS and Samba servers, a 64 MiB store on the first disk"
vm_udev_up
load_ddsnap
mon_setup
nas_servers_up
dm_create fullstore "0 $((64 * 2048)) linear ${DISKS[0]} 0"
store=/dev/mapper/fullstore origin=${DISKS[1]}
db=/var/lib/zumastor/volumes/tank
snaps=/run/zumastor/snapshot/tank
exports=/etc/exports.d/zumastor.exports
sock=/run/zumastor/servers/tank.sock

step "define and start the volume; xfs on its origin; a 96 MiB file every snapshot shares"
must z define volume tank "$origin" "$store" --initialize --mountpoint /srv/tank
must z define schedule tank --hourly 4 --monthly 2
must z define export tank --nfs '127.0.0.1:rw,no_root_squash' --samba 'tank:rw,guest'
t=$(date -d '2026-11-30 23:00:00 UTC' +%s)
ZUMASTOR_NOW=$t must z start tank
mkfs.xfs -q -f /dev/mapper/tank
ZUMASTOR_NOW=$t must z start tank
expect_eq "$(findmnt -n -o FSTYPE /srv/tank)" xfs "the origin's filesystem"
head -c 96M /dev/urandom >/srv/tank/shared.bin
sync

step "five ticks, each after a new version of r.bin: monthly, three hourlies, monthly"
declare -A sum=()
names=()
for ((i = 0; i < 5; i++)); do
	head -c 8M /dev/urandom >/tmp/r.bin
	dd if=/tmp/r.bin of=/srv/tank/r.bin bs=1M conv=notrunc,fsync status=none
	ZUMASTOR_NOW=$t z tick >"$RESULTS/tick.out" 2>&1 || {
		cat "$RESULTS/tick.out"
		fail "tick at $t failed"
	}
	cat "$RESULTS/tick.out"
	name=$("$ZUMASTOR_HELPER" name "$t")
	grep -q "took $name" "$RESULTS/tick.out" || fail "the tick at $t took no snapshot"
	sum[$name]=$(sha_of /tmp/r.bin)
	names+=("$name")
	t=$((t + 3600))
done
t=$((t - 3600))
"$ZUMASTOR_DDSNAP" status --json "$sock" | jq -c '.snapstore'
"$ZUMASTOR_DDSNAP" status --json "$sock" | jq -r '.snapshots[] | "\(.priority) \(.state)"' >"$RESULTS/prios"
printf '%s\n' "40 normal" "10 normal" "10 normal" "10 normal" "40 normal" >"$RESULTS/prios.want"
expect_same "$RESULTS/prios" "$RESULTS/prios.want" "the priorities the monitor set by kind"

step "each snapshot mounted by the monitor as xfs ro,norecovery,nouuid, with its own r.bin"
for name in "${names[@]}"; do
	expect_eq "$(findmnt -n -o FSTYPE "$snaps/$name")" xfs "$name: filesystem"
	opts=$(findmnt -n -o OPTIONS "$snaps/$name")
	[[ $opts == ro,* && $opts == *norecovery* && $opts == *nouuid* ]] ||
		fail "$name is mounted with '$opts', not ro,norecovery,nouuid"
	expect_eq "$(sha_of "$snaps/$name/r.bin")" "${sum[$name]}" "$name: r.bin"
done

step "overwrite the shared file 4 MiB at a time until the server drops two snapshots"
dropped=()
for ((mb = 0; mb < 96 && ${#dropped[@]} < 2; mb += 4)); do
	dd if=/dev/urandom of=/srv/tank/shared.bin bs=1M seek=$mb count=4 iflag=fullblock \
		conv=notrunc,fsync status=none ||
		fail "a write to the origin failed at $mb MiB (the store should have made room)"
	normal=$("$ZUMASTOR_DDSNAP" status --json "$sock" | jq -r '.snapshots[] | select(.state == "normal") | .tag')
	dropped=()
	for name in "${names[@]}"; do
		grep -qx "$("$ZUMASTOR_HELPER" time "$name")" <<<"$normal" || dropped+=("$name")
	done
done
log "after $mb MiB: dropped ${dropped[*]}"
"$ZUMASTOR_DDSNAP" status --json "$sock" | jq -c '.snapstore'
((${#dropped[@]} == 2)) || fail "the server dropped ${#dropped[@]} snapshots, expected 2"
expect_eq "${dropped[*]}" "${names[1]} ${names[2]}" "the dropped snapshots (the oldest hourlies, not the older monthly)"
kept=("${names[0]}" "${names[3]}" "${names[4]}")

step "the next tick reports them and leaves no broken mount, device or export"
ZUMASTOR_NOW=$((t + 60)) z tick >"$RESULTS/tick.out" 2>&1 || {
	cat "$RESULTS/tick.out"
	fail "the tick after the drop failed"
}
cat "$RESULTS/tick.out"
for name in "${dropped[@]}"; do
	grep -q "snapshot $name was dropped by the server" "$RESULTS/tick.out" || fail "the tick did not report $name"
	grep -q "$name" "$exports" && fail "$name is still in $exports"
	exportfs -v | grep -q "$name" && fail "exportfs still lists $name"
	[[ ! -e $db/state/fsid/$name ]] || fail "$name's fsid record is left"
	[[ ! -e $snaps/$name ]] || fail "$snaps/$name is left"
done
printf '%s\n' "${kept[@]}" >"$RESULTS/kept"
"$ZUMASTOR_DDSNAP" status --json "$sock" | jq -r '.snapshots[] | "\(.tag) \(.state)"' |
	while read -r s state; do echo "$("$ZUMASTOR_HELPER" name "$s") $state"; done >"$RESULTS/live"
sed 's/$/ normal/' "$RESULTS/kept" >"$RESULTS/live.want"
expect_same "$RESULTS/live" "$RESULTS/live.want" "the server's snapshots after the tick"
dmsetup info -c --noheadings -o name | sed -n 's/^tank@/@/p' | sort >"$RESULTS/devs"
expect_same "$RESULTS/devs" "$RESULTS/kept" "snapshot devices after the tick"
findmnt -rn -o TARGET | sed -n "s|^$snaps/||p" | sort >"$RESULTS/mnts"
expect_same "$RESULTS/mnts" "$RESULTS/kept" "snapshot mounts after the tick"
sed -n "s|^$snaps/\([^ ]*\) .*|\1|p" "$exports" | sort >"$RESULTS/exported"
expect_same "$RESULTS/exported" "$RESULTS/kept" "snapshot exports after the tick"
grep -q "^/srv/tank " "$exports" || fail "the origin's export is gone"
smbclient -N //127.0.0.1/tank -c 'allinfo r.bin' >"$RESULTS/allinfo" 2>&1 ||
	fail "smbclient allinfo: $(cat "$RESULTS/allinfo")"
grep -o '@GMT-[0-9.-]*' "$RESULTS/allinfo" | sort >"$RESULTS/versions"
expect_same "$RESULTS/versions" "$RESULTS/kept" "Samba's previous versions after the tick"
for name in "${kept[@]}"; do
	expect_eq "$(sha_of "$snaps/$name/r.bin")" "${sum[$name]}" "$name: r.bin after the drop"
done
mkdir -p /mnt/nfs
must mount -t nfs -o vers=3,nolock 127.0.0.1:"$snaps/${kept[0]}" /mnt/nfs
expect_eq "$(sha_of /mnt/nfs/r.bin)" "${sum[${kept[0]}]}" "${kept[0]}: r.bin over NFSv3"
umount /mnt/nfs

step "tear down"
must z stop tank
"$ZUMASTOR_DDSNAP" check "$store" >/dev/null || fail "ddsnap check after stop"
log "monitor-full: the store filled, the hourlies went first, nothing was left broken"
