#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 128M
# vm-timeout: 240
#
# make demo: a narrated tour of what exists so far, run in the real-kernel guest by
# "tests/vm/run-one.sh demo tests/vm/demo.sh".  It shows the Debian kernel the guest runs,
# loads our dm-ddsnap.ko (if built) and lists the device-mapper targets, then takes a
# snapshot of a live ext4 file system with the kernel's stock dm-snapshot (the reference
# ddsnap is measured against) and shows that the snapshot keeps the old bytes while the
# origin moves on.  Every claim it prints is checked; any failed check fails the demo.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

# Kernel messages go to the saved log, not between the narrative's lines.
dmesg -n 1

say()
{
	echo "    $*"
}

chapter()
{
	echo
	echo "== $*"
}

chapter "1. A real Linux kernel"
say "This is a QEMU guest running Debian's stock kernel $(uname -r),"
say "booted in $(cut -d ' ' -f 1 /proc/uptime) s from a tiny busybox initramfs.  It sees this"
say "machine's programs read-only and has ${#DISKS[@]} empty disks: ${DISKS[*]}."

chapter "2. Our device-mapper target: dm-ddsnap.ko"
if have_ddsnap; then
	load_ddsnap
	ver=$(dmsetup targets | awk '$1 == "ddsnap" { print $2 }')
	[[ -n $ver ]] || fail "dm-ddsnap.ko loaded but dmsetup targets does not list ddsnap"
	say "insmod $SRC/kernel/dm-ddsnap.ko: loaded.  dmsetup targets now lists:"
	dmsetup targets | sed 's/^/      /'
	say "The ddsnap target ($ver) is registered with the kernel's device mapper."
else
	say "kernel/dm-ddsnap.ko is not built yet ('make kernel'); skipping."
fi

chapter "3. A snapshot of a live file system, the stock way (dm-snapshot)"
origin=${DISKS[0]}
cow=${DISKS[1]}
sectors=$(dev_sectors "$origin")
must modprobe dm-snapshot
dm_create origin "0 $sectors snapshot-origin $origin"
mkfs.ext4 -q -F /dev/mapper/origin
mkdir -p /mnt/origin /mnt/snap
must mount /dev/mapper/origin /mnt/origin
echo "Quarterly report: revenue 100" >/mnt/origin/report.txt
write_pattern /mnt/origin/data.bin demo-v1 0 $((8 * 1048576))
sync
say "ext4 on $origin (through a snapshot-origin device) holds report.txt:"
say "  \"$(cat /mnt/origin/report.txt)\"   and data.bin, 8 MiB, sha256 $(sha_of /mnt/origin/data.bin | cut -c 1-16)..."

fsfreeze -f /mnt/origin
must dmsetup suspend --nolockfs origin
dm_create snap "0 $sectors snapshot $origin $cow P 8"
must dmsetup resume origin
fsfreeze -u /mnt/origin
say "Froze the file system, took snapshot 'snap' (its exception store on $cow), thawed."

echo "Quarterly report: revenue 250 (restated)" >/mnt/origin/report.txt
write_pattern /mnt/origin/data.bin demo-v2 0 $((4 * 1048576))
sync
say "Then changed the live file system: report.txt rewritten, half of data.bin overwritten."

must mount -o ro,noload /dev/mapper/snap /mnt/snap
say "Now, side by side:"
printf '      %-10s %-44s %s\n' "" "report.txt" "data.bin sha256"
printf '      %-10s %-44s %s\n' origin "\"$(cat /mnt/origin/report.txt)\"" "$(sha_of /mnt/origin/data.bin | cut -c 1-16)..."
printf '      %-10s %-44s %s\n' snapshot "\"$(cat /mnt/snap/report.txt)\"" "$(sha_of /mnt/snap/data.bin | cut -c 1-16)..."
expect_eq "$(cat /mnt/snap/report.txt)" "Quarterly report: revenue 100" "report.txt in the snapshot"
expect_eq "$(cat /mnt/origin/report.txt)" "Quarterly report: revenue 250 (restated)" "report.txt on the origin"
check_pattern /mnt/snap/data.bin demo-v1 0 $((8 * 1048576))
check_pattern /mnt/origin/data.bin demo-v2 0 $((4 * 1048576))
check_pattern /mnt/origin/data.bin demo-v1 $((4 * 1048576)) $((4 * 1048576))
read -r usage meta <<<"$(dmsetup status snap | cut -d ' ' -f 4-)"
say "Checked byte for byte against the seeded patterns.  dm-snapshot copied the old chunks"
say "out before overwriting them: $(((${usage%/*} - meta) / 2)) KiB of data in its exception store."

umount /mnt/snap /mnt/origin
dm_remove snap
dm_remove origin

chapter "That is all for now"
say "Next: the ddsnap server and snapshots that share chunks between many snapshots."
say "Full guest log: build/vm/demo.log"
