#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 3 256M
# vm-timeout: 900
# vm-boots: 2
#
# monitor-nas: the zumastor monitor runs a NAS volume on the real kernel with udev running, as
# on a real box, with its config database on a disk of its own mounted at /var/lib/zumastor
# (the guest's root is fresh at each boot; /var/lib survives on a real box).
#
# Boot 1: a volume is defined and started (server, origin device, ext4 mounted at
# /srv/home); six simulated days of ticks every 12 hours (ZUMASTOR_NOW), with a file
# changed before each, leave exactly the snapshots tests/monitor/model.py says, each
# mounted read-only under /run/zumastor/snapshot/home/@GMT-... with its own time's files,
# and no device or mount for a pruned one.  The real nfs-kernel-server exports every mount
# with the derived fsid (recorded in the database) and an NFSv3 client reads yesterday's
# file; the real smbd lists every snapshot as a previous version (smbclient allinfo) and
# serves a file deleted since.  stop refuses while a snapshot mount is busy and changes
# nothing; stop then removes every mount, device and export; start brings them back with
# the same fsids.  Before the last two ticks, NFS clients mount a snapshot and the origin
# and keep reading them (O_DIRECT, every read a server round trip) while the ticks add
# snapshots and prune one that another client has mounted and read: no read fails or
# returns other bytes, and the pruned snapshot's export, mount, device and fsid record are
# gone.  NFSv3 and NFSv4.2 clients both read (the reader across the rotation is v4.2, the
# origin's v3).  The boot ends with what zumastor.service runs at shutdown.
#
# Boot 2: the database disk is mounted, the NFS and Samba servers come up, and what
# zumastor.service runs at boot brings back every device, mount and export with the fsids of
# boot 1; NFS clients read yesterday's file and today's, smbd lists the same previous
# versions.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

step "udev, as on a real box (DESIGN.md 7)"
vm_udev_up
load_ddsnap # the module from the build tree (a packaged one would be modprobe'd by start)

mon_setup
store=${DISKS[0]} origin=${DISKS[1]} dbdisk=${DISKS[2]}
db=/var/lib/zumastor/volumes/home
snaps=/run/zumastor/snapshot/home
exports=/etc/exports.d/zumastor.exports
unit=$SRC/monitor/systemd/zumastor.service
mkdir -p /mnt/nfs /mnt/nfs-origin /mnt/reader /mnt/reader-origin /mnt/nfs-victim

# unit_run KEY: runs what zumastor.service's KEY line (ExecStart, ExecStop) runs.
unit_run()
{
	local args
	read -r -a args <<<"$(sed -n "s|^$1=@SBINDIR@/zumastor ||p" "$unit" | head -n 1)"
	((${#args[@]})) || fail "$unit has no $1=@SBINDIR@/zumastor line"
	log "zumastor.service $1: zumastor ${args[*]}"
	must z "${args[@]}"
}

# nfs_reads VERS PATH FILE WANT: an NFS client of version VERS mounts PATH and reads WANT
# from FILE.
nfs_reads()
{
	local opts=vers=$1
	[[ $1 != 3 ]] || opts+=,nolock
	must mount -t nfs -o "$opts" 127.0.0.1:"$2" /mnt/nfs
	expect_eq "$(cat "/mnt/nfs/$3")" "$4" "$2/$3 over NFS v$1"
	umount /mnt/nfs
}

if ((VM_BOOT == 1)); then
	step "the config database's own disk (ext4), mounted at /var/lib/zumastor"
	mkfs.ext4 -q -F "$dbdisk"
fi
mkdir -p /var/lib/zumastor
must mount "$dbdisk" /var/lib/zumastor

step "NFS and Samba servers (their config: /etc/exports.d and one include line in smb.conf)"
nas_servers_up

if ((VM_BOOT == 2)); then
	step "second boot: what zumastor.service runs at boot brings every mount and export back"
	# shellcheck source=/dev/null # written by boot 1
	. "$RESULTS/boot1.env" # t, yesterday, ytime
	mapfile -t names <"$RESULTS/names-boot1"
	unit_run ExecStart
	mountpoint -q /srv/home || fail "the origin is not mounted at /srv/home after the reboot"
	dmsetup info -c --noheadings -o name | sed -n 's/^home@/@/p' | sort >"$RESULTS/devs"
	expect_same "$RESULTS/devs" "$RESULTS/names-boot1" "snapshot devices after the reboot"
	findmnt -rn -o TARGET | sed -n "s|^$snaps/||p" | sort >"$RESULTS/mnts"
	expect_same "$RESULTS/mnts" "$RESULTS/names-boot1" "snapshot mounts after the reboot"
	cat "$exports"
	expect_same "$exports" "$RESULTS/exports-boot1" "the exports and their fsids after the reboot"
	nfs_reads 3 "$snaps/$yesterday" today.txt "$ytime"
	nfs_reads 3 /srv/home today.txt "$t"
	smbclient -N //127.0.0.1/home -c 'allinfo today.txt' >"$RESULTS/allinfo" 2>&1 ||
		fail "smbclient allinfo: $(cat "$RESULTS/allinfo")"
	grep -o '@GMT-[0-9.-]*' "$RESULTS/allinfo" | sort >"$RESULTS/versions"
	expect_same "$RESULTS/versions" "$RESULTS/names-boot1" "the previous versions after the reboot"
	unit_run ExecStop
	"$ZUMASTOR_DDSNAP" check "$store" >/dev/null || fail "ddsnap check after the second boot"
	umount /var/lib/zumastor
	log "monitor-nas: after a reboot every mount and export is back with the same fsids"
	exit 0
fi

step "define and start the volume; ext4 on its origin device"
t=$(date -d '2026-11-28 20:00:00 UTC' +%s)
must z define volume home "$origin" "$store" --initialize --mountpoint /srv/home
must z define schedule home --hourly 2 --daily 3 --weekly 2 --monthly 2
must z define export home --nfs '127.0.0.1:rw,no_root_squash' --samba 'home:rw,guest'
ZUMASTOR_NOW=$t must z start home
wait_for_dev /dev/mapper/home
expect_eq "$(blockdev --getsz /dev/mapper/home)" "$(blockdev --getsz "$origin")" "origin device size"
mkfs.ext4 -q -F /dev/mapper/home
out=$(ZUMASTOR_NOW=$t z start home) || fail "start after mkfs failed: $out"
[[ $out == *"already running: made the 1 missing mount(s)"* ]] || fail "start after mkfs says: $out"
mountpoint -q /srv/home || fail "start did not mount the origin at /srv/home"
echo "this file is deleted on the third day" >/srv/home/gone.txt

step "6 simulated days across a month and a week boundary, a tick every 12 hours"
sched="hourly=2,daily=3,weekly=2,monthly=2"
: >"$RESULTS/model"
kinds=""
# tick_next: 12 simulated hours on, a file changed, a tick; the live snapshots are the model's.
tick_next()
{
	t=$((t + 12 * 3600))
	echo "$t" >/srv/home/today.txt
	echo "$t" >"/srv/home/file-$t.txt"
	python3 "$SRC/tests/monitor/model.py" tick "$t" "$sched" "$RESULTS/model" | grep -v took >"$RESULTS/model.new"
	mv "$RESULTS/model.new" "$RESULTS/model"
	ZUMASTOR_NOW=$t z tick >"$RESULTS/tick.out" 2>&1 || {
		cat "$RESULTS/tick.out"
		fail "tick at $t failed"
	}
	cat "$RESULTS/tick.out" >>"$RESULTS/ticks.out"
	kinds+=$(sed -n 's/.*took .* (\(.*\))$/\1,/p' "$RESULTS/tick.out")
	"$ZUMASTOR_DDSNAP" list --json /run/zumastor/servers/home.sock | jq -r '.snapshots[].tag' >"$RESULTS/have"
	expect_same "$RESULTS/have" "$RESULTS/model" "tick at $t: the live snapshots are the model's"
}
for ((i = 0; i < 10; i++)); do
	((i != 5)) || rm /srv/home/gone.txt
	tick_next
done

step "NFS clients of a snapshot, of the origin and of a snapshot the next ticks prune"
echo "not changed by the ticks" >/srv/home/stable.txt
# Which snapshots the last two ticks prune (the model says): one of them is the victim; the
# reader reads one they keep.
cp "$RESULTS/model" "$RESULTS/model.after"
for s in $((t + 12 * 3600)) $((t + 24 * 3600)); do
	python3 "$SRC/tests/monitor/model.py" tick "$s" "$sched" "$RESULTS/model.after" | grep -v took >"$RESULTS/model.new"
	mv "$RESULTS/model.new" "$RESULTS/model.after"
done
victim="" reader=""
while read -r s; do
	if grep -qx "$s" "$RESULTS/model.after"; then
		reader=$("$ZUMASTOR_HELPER" name "$s")
	else
		[[ -n $victim ]] || victim=$("$ZUMASTOR_HELPER" name "$s")
	fi
done <"$RESULTS/have"
[[ -n $victim && -n $reader ]] || fail "the last two ticks should prune one snapshot and keep another"
rtime=$("$ZUMASTOR_HELPER" time "$reader")
log "the reader reads $reader; the ticks prune $victim"
# the reader's snapshot over NFSv4.2 and the origin over NFSv3: both versions across the rotation
must mount -t nfs -o vers=4.2 127.0.0.1:"$snaps/$reader" /mnt/reader
expect_eq "$(findmnt -n -o FSTYPE /mnt/reader)" nfs4 "the reader's mount type"
must mount -t nfs -o vers=3,nolock 127.0.0.1:/srv/home /mnt/reader-origin
expect_eq "$(cat /mnt/reader/today.txt)" "$rtime" "$reader's today.txt over NFSv4.2"
expect_eq "$(cat /mnt/reader-origin/today.txt)" "$t" "the origin's today.txt over NFSv3"
# the victim mounted by a v3 client that has read from it: nfsd holds its export
must mount -t nfs -o vers=3,nolock 127.0.0.1:"$snaps/$victim" /mnt/nfs-victim
expect_eq "$(cat /mnt/nfs-victim/today.txt)" "$("$ZUMASTOR_HELPER" time "$victim")" "the victim's today.txt over NFSv3"

step "the clients keep reading while the last two ticks add snapshots and prune $victim"
rm -f /tmp/stop-reader "$RESULTS/reader.err"
(
	n=0
	while [[ ! -e /tmp/stop-reader ]]; do
		got=$(dd if=/mnt/reader/today.txt iflag=direct bs=4096 status=none 2>&1) || got="read failed: $got"
		[[ $got == "$rtime" ]] || echo "read $n of $reader: '$got'" >>"$RESULTS/reader.err"
		got=$(dd if=/mnt/reader-origin/stable.txt iflag=direct bs=4096 status=none 2>&1) || got="read failed: $got"
		[[ $got == "not changed by the ticks" ]] || echo "read $n of the origin: '$got'" >>"$RESULTS/reader.err"
		n=$((n + 1))
	done
	echo "$n" >"$RESULTS/reader.count"
) &
rpid=$!
sleep 1
tick_next
tick_next
sleep 1
: >/tmp/stop-reader
wait "$rpid"
[[ ! -s $RESULTS/reader.err ]] || fail "the reader failed across the rotation: $(head -n 5 "$RESULTS/reader.err")"
(($(cat "$RESULTS/reader.count") >= 20)) || fail "the reader read only $(cat "$RESULTS/reader.count") times"
log "the reader read both files $(cat "$RESULTS/reader.count") times, every read right"
grep -q "pruned $victim" "$RESULTS/ticks.out" || fail "no tick pruned $victim"
grep -q "$victim" "$exports" && fail "$victim is still in $exports"
exportfs -v | grep -q "$victim" && fail "exportfs still lists $victim"
findmnt -rn -o TARGET | grep -q "$victim" && fail "$victim is still mounted"
dmsetup info -c --noheadings -o name | grep -q "$victim" && fail "$victim still has a device"
[[ ! -e $db/state/fsid/$victim ]] || fail "$victim's fsid record was left behind"
umount -f -l /mnt/nfs-victim
expect_eq "$(cat /mnt/reader/today.txt)" "$rtime" "$reader's today.txt after the rotation"
umount /mnt/reader /mnt/reader-origin

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

step "NFS: one file under /etc/exports.d, fsids derived and recorded, v3 and v4.2 mounts read yesterday"
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
must mount -t nfs -o vers=4.2 127.0.0.1:"$snaps/$yesterday" /mnt/nfs
expect_eq "$(cat /mnt/nfs/today.txt)" "$ytime" "yesterday's today.txt over NFSv4.2"
must mount -t nfs -o vers=4.2 127.0.0.1:/srv/home /mnt/nfs-origin
expect_eq "$(cat /mnt/nfs-origin/today.txt)" "$t" "today's file over NFSv4.2"
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

step "boot 1 ends: what zumastor.service runs at shutdown (the database disk keeps the marks)"
cp "$RESULTS/names" "$RESULTS/names-boot1"
cp "$exports" "$RESULTS/exports-boot1"
echo "t=$t yesterday=$yesterday ytime=$ytime" >"$RESULTS/boot1.env"
unit_run ExecStop
[[ -z $(findmnt -rn -o TARGET | grep -e /srv/home -e "$snaps" || true) ]] || fail "mounts left at shutdown"
"$ZUMASTOR_DDSNAP" check "$store" >/dev/null || fail "ddsnap check after stop"
umount /var/lib/zumastor
log "monitor-nas boot 1: snapshots as the model says, mounted, over NFS and Samba, a reader undisturbed by a rotation"
