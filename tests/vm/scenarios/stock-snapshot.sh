#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 64M
# vm-timeout: 400
#
# stock-snapshot: the harness and the real kernel's own dm-snapshot, as the reference our
# target is measured against.  ext4 on a snapshot-origin device over disk 1, files with
# seeded contents; a frozen, suspended origin gets a persistent snapshot (exception store on
# disk 2); then files on the origin are overwritten in place, appended, truncated, deleted
# and created.  Checks, all against expected contents computed from the seeds (never read
# back from the device under test):
#   - the origin holds the new contents, the snapshot (mounted ro,noload) the old ones;
#   - the whole snapshot device is bit-for-bit the origin disk as it was when frozen;
#   - dm-snapshot really copied chunks out, and both file systems pass e2fsck.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

origin_disk=${DISKS[0]}
cow_disk=${DISKS[1]}
sectors=$(dev_sectors "$origin_disk")
MiB=1048576
mkdir -p /mnt/origin /mnt/snap /tmp/ss

# entry NAME: one manifest line for stdin's bytes, in tree_sums' format.
entry()
{
	echo "$(sha256sum | cut -d ' ' -f 1)  ./$1"
}

# manifest FILE: sorts manifest lines (checksums first, then symlinks, as tree_sums does).
manifest()
{
	{
		grep -v '^link ' | LC_ALL=C sort -k 2
	} <"$1.unsorted" >"$1"
	grep '^link ' "$1.unsorted" >>"$1" || true
}

step "expected contents, from the seeds"
{
	pattern a1 $MiB | entry a.bin
	pattern b1 $((3 * MiB)) | entry b.bin
	printf 'hello snapshot\n' | entry c.txt
	pattern e1 $((5 * MiB + 12345)) | entry d/e.bin
	pattern big1 $((8 * MiB)) | entry big.bin
	{
		head -c $((16 * MiB)) /dev/zero
		pattern s1 $MiB $((16 * MiB))
	} | entry sparse.bin
	echo "link c.txt ./link"
} >/tmp/ss/before.unsorted
manifest /tmp/ss/before
{
	{
		pattern a2 $((256 * 1024))
		pattern a1 $((768 * 1024)) $((256 * 1024))
	} | entry a.bin
	printf 'hello snapshot\nchanged after the snapshot\n' | entry c.txt
	pattern e1 4096 | entry d/e.bin
	pattern big2 $((8 * MiB)) | entry big.bin
	{
		head -c $((16 * MiB)) /dev/zero
		pattern s2 $MiB $((16 * MiB))
	} | entry sparse.bin
	pattern n1 $((2 * MiB)) | entry new.bin
	echo "link c.txt ./link"
} >/tmp/ss/after.unsorted
manifest /tmp/ss/after
cmp -s /tmp/ss/before /tmp/ss/after && fail "the two manifests are equal: the test would prove nothing"
cp /tmp/ss/before /tmp/ss/after "$RESULTS/"
log "$(wc -l </tmp/ss/before) entries before, $(wc -l </tmp/ss/after) after"

step "ext4 on a snapshot-origin device over $origin_disk ($((sectors / 2048)) MiB)"
must modprobe dm-snapshot
must modprobe ext4
dm_create origin "0 $sectors snapshot-origin $origin_disk"
must mkfs.ext4 -q -F -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/origin
must mount -t ext4 /dev/mapper/origin /mnt/origin
mkdir /mnt/origin/d
write_pattern /mnt/origin/a.bin a1 0 $MiB
write_pattern /mnt/origin/b.bin b1 0 $((3 * MiB))
printf 'hello snapshot\n' >/mnt/origin/c.txt
write_pattern /mnt/origin/d/e.bin e1 0 $((5 * MiB + 12345))
write_pattern /mnt/origin/big.bin big1 0 $((8 * MiB))
write_pattern /mnt/origin/sparse.bin s1 $((16 * MiB)) $MiB
ln -s c.txt /mnt/origin/link
sync
tree_sums /mnt/origin >/tmp/ss/origin-before
expect_same /tmp/ss/origin-before /tmp/ss/before "origin contents before the snapshot"
log "origin written and verified: $(df -h --output=used /mnt/origin | tail -n 1 | tr -d ' ') used"

step "snapshot: freeze ext4, suspend the origin, create the snapshot on $cow_disk, resume"
must fsfreeze -f /mnt/origin
frozen_sha=$(sha_of "$origin_disk")
must dmsetup suspend --nolockfs origin
dm_create snap "0 $sectors snapshot $origin_disk $cow_disk P 8"
must dmsetup resume origin
must fsfreeze -u /mnt/origin
log "origin disk at snapshot time: sha256 ${frozen_sha:0:16}..."
log "dmsetup status snap: $(dmsetup status snap)"

step "change the origin: overwrite in place, append, truncate, delete, create"
write_pattern /mnt/origin/a.bin a2 0 $((256 * 1024))
printf 'changed after the snapshot\n' >>/mnt/origin/c.txt
truncate -s 4096 /mnt/origin/d/e.bin
rm /mnt/origin/b.bin
write_pattern /mnt/origin/big.bin big2 0 $((8 * MiB))
write_pattern /mnt/origin/sparse.bin s2 $((16 * MiB)) $MiB
write_pattern /mnt/origin/new.bin n1 0 $((2 * MiB))
sync
drop_caches
tree_sums /mnt/origin >/tmp/ss/origin-after
expect_same /tmp/ss/origin-after /tmp/ss/after "origin contents after the changes"
log "origin holds the new contents"

step "the snapshot still holds the old bytes"
# "<allocated>/<total> <metadata>" in sectors: chunks were copied out beyond the metadata.
read -r usage meta <<<"$(dmsetup status snap | cut -d ' ' -f 4-)"
allocated=${usage%/*}
log "exception store: $allocated of ${usage#*/} sectors used, $meta metadata"
((allocated > meta + 8 * 2048)) || fail "dm-snapshot copied out only $allocated sectors ($meta metadata); expected >8 MiB"
snap_sha=$(sha_of /dev/mapper/snap)
expect_eq "$snap_sha" "$frozen_sha" "sha256 of the whole snapshot device vs the origin disk when frozen"
log "snapshot device is bit-for-bit the frozen origin"
e2fsck -f -n /dev/mapper/snap >/tmp/ss/fsck-snap 2>&1 || {
	cat /tmp/ss/fsck-snap
	fail "e2fsck of the snapshot"
}
must mount -t ext4 -o ro,noload /dev/mapper/snap /mnt/snap
tree_sums /mnt/snap >/tmp/ss/snap-after
expect_same /tmp/ss/snap-after /tmp/ss/before "snapshot contents after the origin changed"
log "snapshot (ro,noload) holds every old file, byte for byte"

step "tear down, then e2fsck the origin"
must umount /mnt/snap
must umount /mnt/origin
dm_remove snap
dm_remove origin
e2fsck -f -n "$origin_disk" >/tmp/ss/fsck-origin 2>&1 || {
	cat /tmp/ss/fsck-origin
	fail "e2fsck of the origin"
}
log "stock-snapshot: all checks passed"
