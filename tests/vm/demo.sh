#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 256M
# vm-timeout: 600
#
# make demo: a narrated tour of Zumastor on two sparse disks inside a real-kernel guest
# ("tests/vm/run-one.sh demo tests/vm/demo.sh").  It makes a volume (snapstore + origin),
# starts ddsnapd, puts ext4 on the ddsnap origin device, takes snapshots while a report file
# changes, mounts each snapshot read-only beside the live file system, shows what each
# snapshot costs, deletes one, stops the server and checks the store.  Every claim it prints
# is checked; any failed check fails the demo.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"
export DM_DEFAULT_NAME_MANGLING_MODE=none

# Kernel messages go to the saved log, not between the narrative's lines.
dmesg -n 1
say() { echo "    $*"; }
chapter()
{
	echo
	echo "== $*"
}

store=${DISKS[0]}
origin=${DISKS[1]}
sock=/run/ddsnap-home.sock
ddsnap=/run/ddsnap
cp "$BUILD/bin/ddsnap" "$ddsnap" # a private copy: the build tree is shared live over 9p

chapter "1. A real Linux kernel"
say "A QEMU guest running Debian's stock kernel $(uname -r), with two empty disks:"
say "$origin will be the volume's origin (data stays in place), $store its snapstore."

chapter "2. A Zumastor volume"
init=$("$ddsnap" initialize "$store" "$origin")
say "ddsnap initialize $store $origin:${init#*:}"
must "$ddsnap" server -l "$RESULTS/ddsnapd.log" -p /run/ddsnapd.pid "$store" "$origin" "$sock"
say "ddsnap server ... $sock: ddsnapd is running (pid $(cat /run/ddsnapd.pid)), its log replayed."
load_ddsnap
n=$("$ddsnap" status --size "$sock")
dm_create home "0 $n ddsnap $store $origin $sock -1"
say "insmod dm-ddsnap.ko; dmsetup create home: '0 $n ddsnap $store $origin $sock -1'"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/home
mkdir -p /mnt/home /mnt/monday /mnt/tuesday
mount /dev/mapper/home /mnt/home
echo "Quarterly report: revenue 100" >/mnt/home/report.txt
write_pattern /mnt/home/photos.bin demo-v1 0 $((8 * 1048576))
sync
say "ext4 on /dev/mapper/home holds report.txt (\"$(cat /mnt/home/report.txt)\") and 8 MiB of photos."

chapter "3. Snapshots while the data changes"
must "$ddsnap" create "$sock" 1
say "Monday: ddsnap create $sock 1 (the origin is frozen and resumed around it)"
echo "Quarterly report: revenue 250 (restated)" >/mnt/home/report.txt
write_pattern /mnt/home/photos.bin demo-v2 0 $((2 * 1048576))
sync
must "$ddsnap" create "$sock" 2
say "Tuesday: report.txt restated, 2 MiB of photos edited; ddsnap create $sock 2"
echo "Quarterly report: revenue 250, approved" >/mnt/home/report.txt
rm /mnt/home/photos.bin
sync
say "Wednesday: report.txt approved, photos.bin deleted."

chapter "4. Yesterday's files, read-only, beside today's"
dm_create "home(1)" "0 $n ddsnap $store $origin $sock 1"
dm_create "home(2)" "0 $n ddsnap $store $origin $sock 2"
mount -o ro,noload "/dev/mapper/home(1)" /mnt/monday
mount -o ro,noload "/dev/mapper/home(2)" /mnt/tuesday
printf '      %-24s %-44s %s\n' "" "report.txt" "photos.bin"
for d in monday tuesday home; do
	photos=absent
	[[ -e /mnt/$d/photos.bin ]] && photos="sha256 $(sha_of "/mnt/$d/photos.bin" | cut -c 1-12)..."
	printf '      %-24s %-44s %s\n' "/mnt/$d" "\"$(cat "/mnt/$d/report.txt")\"" "$photos"
done
expect_eq "$(cat /mnt/monday/report.txt)" "Quarterly report: revenue 100" "Monday's report"
expect_eq "$(cat /mnt/tuesday/report.txt)" "Quarterly report: revenue 250 (restated)" "Tuesday's report"
check_pattern /mnt/monday/photos.bin demo-v1 0 $((8 * 1048576))
check_pattern /mnt/tuesday/photos.bin demo-v2 0 $((2 * 1048576))
check_pattern /mnt/tuesday/photos.bin demo-v1 $((2 * 1048576)) $((6 * 1048576))
[[ ! -e /mnt/home/photos.bin ]] || fail "photos.bin should be gone from the live volume"
say "Checked byte for byte: each snapshot shows exactly the files of its day."

chapter "5. What each snapshot costs"
"$ddsnap" status "$sock" | sed 's/^/      /'
say "'unique' is what deleting a snapshot would free; 'written' what changed before it."

chapter "6. Deleting Monday, stopping, checking"
umount /mnt/monday
dm_remove "home(1)"
must "$ddsnap" delete "$sock" 1
say "ddsnap delete $sock 1; snapshots left: $("$ddsnap" list "$sock" | awk '{print $1}' | tr '\n' ' ')"
tree_sums /mnt/tuesday >"$RESULTS/tuesday-after"
check_pattern /mnt/tuesday/photos.bin demo-v2 0 $((2 * 1048576))
say "Tuesday's snapshot still reads the same."
umount /mnt/tuesday /mnt/home
dm_remove "home(2)"
dm_remove home
kill -TERM "$(cat /run/ddsnapd.pid)"
for _ in $(seq 100); do
	[[ -e /run/ddsnapd.pid ]] || break
	sleep 0.2
done
say "ddsnapd stopped cleanly on SIGTERM (a final transaction group synced)."
"$ddsnap" check "$store" >"$RESULTS/check.txt" || fail "ddsnap check: $(cat "$RESULTS/check.txt")"
tail -n 3 "$RESULTS/check.txt" | sed 's/^/      /'
say "ddsnap check walked every block from the uberblock: the store is consistent."
echo
say "Full guest log: build/vm/demo.log"
