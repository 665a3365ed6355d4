#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 256M
# vm-timeout: 900
#
# make demo: a narrated tour of a Zumastor NAS box on two sparse disks inside a real-kernel
# guest ("tests/vm/run-one.sh demo tests/vm/demo.sh"), driven by the zumastor monitor as an
# admin would drive it.  udev, the NFS server and smbd run as on a real box.  A volume is
# defined (origin, snapstore, schedule, exports) and started, ext4 goes on it, and a
# simulated week of ticks (ZUMASTOR_NOW, a tick every 12 hours, files changed before each)
# takes and prunes snapshots, each mounted read-only and exported.  Then zumastor status,
# yesterday's file read through a real NFS mount from the guest, and the same file and one
# deleted since read as Samba previous versions (smbclient allinfo and get).  The volume is
# stopped and its store checked.  Every claim it prints is checked; any failed check fails
# the demo.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

# Kernel messages go to the saved log, not between the narrative's lines.
dmesg -n 1
say() { echo "    $*"; }
chapter()
{
	echo
	echo "== $*"
}
# zumastor ARGS...: shows the command as the admin types it, then its output, indented.
zumastor()
{
	echo "    # zumastor $*"
	z "$@" 2>&1 | sed 's/^/      /'
}
day() { date -u -d "@$1" '+%a %Y-%m-%d %H:%M'; }

store=${DISKS[0]} origin=${DISKS[1]}
snaps=/run/zumastor/snapshot/home

chapter "1. A NAS box: a real Linux kernel, udev, an NFS server and Samba"
say "A QEMU guest running Debian's stock kernel $(uname -r), with two empty disks:"
say "$origin will hold the volume's data (in place), $store its snapshots."
vm_udev_up
load_ddsnap # from the build tree (an installed one is modprobe'd by zumastor start)
nas_servers_up
mon_setup
say "udevd, nfs-kernel-server (rpc.nfsd, mountd) and smbd are up; smb.conf has one line"
say "for zumastor: 'include = /etc/samba/zumastor.conf'.  The clock is simulated (ZUMASTOR_NOW)."

chapter "2. Describe the volume: devices, schedule, exports"
t=$(date -u -d '2026-11-29 18:00' +%s) # a Sunday evening
zumastor define volume home "$origin" "$store" --initialize --mountpoint /srv/home
zumastor define schedule home --hourly 3 --daily 7 --weekly 2
zumastor define export home --nfs '127.0.0.1:rw,no_root_squash' --samba 'home:rw,guest'
say "The config is a directory of one-line files, read by cat, written atomically:"
(cd /var/lib/zumastor/volumes/home && grep -r . origin snapstore mountpoint schedule export) |
	sed 's/^/      /'

chapter "3. Start it, put ext4 on it"
export ZUMASTOR_NOW=$t
zumastor start home
say "# mkfs.ext4 /dev/mapper/home"
mkfs.ext4 -q -F /dev/mapper/home
zumastor start home
mountpoint -q /srv/home || fail "start did not mount /dev/mapper/home at /srv/home"
say "ddsnapd serves the volume, /dev/mapper/home is mounted at /srv/home."
echo "the plan for next year (deleted on Friday)" >/srv/home/plan.txt

chapter "4. A simulated week: a tick every 12 hours, files changed before each"
say "(a real box runs 'zumastor tick' every minute from a systemd timer or cron)"
for ((i = 0; i < 14; i++)); do
	t=$((t + 12 * 3600))
	export ZUMASTOR_NOW=$t
	echo "report as of $(day "$t")" >/srv/home/report.txt
	mkdir -p /srv/home/diary
	echo "what happened on $(date -u -d "@$t" +%A)" >"/srv/home/diary/$(date -u -d "@$t" +%F).txt"
	[[ $(date -u -d "@$t" +%a%H) != Fri06 ]] || rm /srv/home/plan.txt
	z tick >"$RESULTS/tick.out" 2>&1 || {
		cat "$RESULTS/tick.out"
		fail "the tick at $(day "$t") failed"
	}
	grep -q ": took @GMT-" "$RESULTS/tick.out" || fail "the tick at $(day "$t") took no snapshot"
	printf '      %s  %s\n' "$(day "$t")" \
		"$(sed -n 's/^volume home: //p' "$RESULTS/tick.out" | paste -sd ';' | sed 's/;/; /g')"
done
mapfile -t names < <("$ZUMASTOR_DDSNAP" list --json /run/zumastor/servers/home.sock |
	jq -r '.snapshots[].tag' | while read -r s; do "$ZUMASTOR_HELPER" name "$s"; done)
say "${#names[@]} snapshots live, each mounted read-only under $snaps/:"
findmnt -rn -o TARGET,SOURCE,OPTIONS | grep "^$snaps/" | awk '{split($3, o, ","); print "      " $2 "  " o[1]}'
for name in "${names[@]}"; do
	findmnt -n -o OPTIONS "$snaps/$name" | grep -q '^ro,' || fail "$name is not mounted read-only"
	expect_eq "$(cat "$snaps/$name/report.txt")" "report as of $(day "$("$ZUMASTOR_HELPER" time "$name")")" \
		"$name: report.txt"
done
say "Checked: each snapshot's report.txt is the one of its own time."

chapter "5. zumastor status"
zumastor status home
say "'unique' is what deleting a snapshot would free, 'written' what changed before it;"
say "the last column says which kinds of the schedule keep it."

chapter "6. Yesterday's file over NFS"
yesterday=$(printf '%s\n' "${names[@]}" | grep "@GMT-$(date -u -d "@$((t - 86400))" +%Y.%m.%d)-" | tail -n 1) ||
	fail "no snapshot from yesterday"
ytime=$("$ZUMASTOR_HELPER" time "$yesterday")
say "Every snapshot mount is exported read-only (/etc/exports.d/zumastor.exports, fsids derived and kept):"
grep "$yesterday" /etc/exports.d/zumastor.exports | sed 's/^/      /'
mkdir -p /mnt/yesterday
say "# mount -t nfs 127.0.0.1:$snaps/$yesterday /mnt/yesterday"
must mount -t nfs -o vers=3,nolock "127.0.0.1:$snaps/$yesterday" /mnt/yesterday
say "today's     /srv/home/report.txt:      $(cat /srv/home/report.txt)"
say "yesterday's /mnt/yesterday/report.txt: $(cat /mnt/yesterday/report.txt)"
expect_eq "$(cat /mnt/yesterday/report.txt)" "report as of $(day "$ytime")" "yesterday's report over NFS"
must_fail touch /mnt/yesterday/report.txt 2>/dev/null
say "and the mount is read-only (touch fails)."
umount /mnt/yesterday

chapter "7. The same as Samba previous versions (what Windows' Previous Versions tab shows)"
say "# smbclient //127.0.0.1/home -c 'allinfo report.txt'"
smbclient -N //127.0.0.1/home -c 'allinfo report.txt' >"$RESULTS/allinfo" 2>&1 ||
	fail "smbclient allinfo: $(cat "$RESULTS/allinfo")"
grep '@GMT-' "$RESULTS/allinfo" | sed 's/^/      /'
grep -o '@GMT-[0-9.-]*' "$RESULTS/allinfo" | sort >"$RESULTS/versions"
printf '%s\n' "${names[@]}" | sort >"$RESULTS/names"
expect_same "$RESULTS/versions" "$RESULTS/names" "the previous versions are the live snapshots"
say "# smbclient //127.0.0.1/home -c 'get $yesterday/report.txt'"
smbclient -N //127.0.0.1/home -c "get $yesterday/report.txt /tmp/report.txt" >"$RESULTS/get" 2>&1 ||
	fail "smbclient get: $(cat "$RESULTS/get")"
say "      $(cat /tmp/report.txt)"
expect_eq "$(cat /tmp/report.txt)" "report as of $(day "$ytime")" "yesterday's report over Samba"
[[ ! -e /srv/home/plan.txt ]] || fail "plan.txt should be gone from the live volume"
thursday=$(printf '%s\n' "${names[@]}" | grep "@GMT-2026.12.03-" | tail -n 1) ||
	fail "no snapshot from Thursday"
say "plan.txt was deleted on Friday; Thursday's version still has it:"
say "# smbclient //127.0.0.1/home -c 'get $thursday/plan.txt'"
smbclient -N //127.0.0.1/home -c "get $thursday/plan.txt /tmp/plan.txt" >"$RESULTS/get" 2>&1 ||
	fail "smbclient get: $(cat "$RESULTS/get")"
say "      $(cat /tmp/plan.txt)"
expect_eq "$(cat /tmp/plan.txt)" "the plan for next year (deleted on Friday)" "the deleted file over Samba"

chapter "8. Stop, and check the store"
zumastor stop home
[[ -z $(dmsetup info -c --noheadings -o name | grep '^home' || true) ]] || fail "devices left after stop"
"$ZUMASTOR_DDSNAP" check "$store" >"$RESULTS/check.txt" || fail "ddsnap check: $(cat "$RESULTS/check.txt")"
say "Every mount, export and device is gone; 'ddsnap check' walked every block of the store:"
tail -n 1 "$RESULTS/check.txt" | sed 's/^/      /'
echo
say "Full guest log: build/vm/demo.log"
echo "demo OK: zumastor kept a week of snapshots of /srv/home; yesterday's file came back over NFS and as a Samba previous version."
