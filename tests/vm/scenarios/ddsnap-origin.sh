#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 128M
# vm-timeout: 300
#
# ddsnap-origin: the kernel target against the wire TEST PEER (tests/vm/wirepeer.c, not the
# server).  ext4 on the origin, a snapshot taken with the origin suspended, the origin then
# rewritten: the snapshot device must read, byte for byte, the image saved at snapshot time
# (raw device and mounted tree), the origin the new data.  Then a write to the snapshot
# (writable snapshots) lands in the snapstore only, status counters move, deleting the
# snapshot makes its device fail I/O, and everything unloads cleanly.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"
. "$SRC/tests/vm/wirepeer.sh"

peer_volume peer

step "load the module, start the test peer"
load_ddsnap
peer_build
peer_start peer
kmsg_mark

step "origin device, ext4, files"
dm_create vol "0 $n ddsnap $store $origin $sock -1"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/vol
mkdir -p /mnt/vol /mnt/snap
mount /dev/mapper/vol /mnt/vol
for i in 1 2 3 4 5 6 7 8; do
	write_pattern "/mnt/vol/f$i" "old-$i" 0 $((512 * 1024 + i * 4096))
done
mkdir -p /mnt/vol/dir
cp -a /usr/share/common-licenses /mnt/vol/dir/ 2>/dev/null || true
sync
tree_sums /mnt/vol >"$RESULTS/sums-at-snap"

step "snapshot 1, with the origin suspended"
dmsetup suspend vol
peer_cmd peer snap 1
sha_at_snap=$(sha_of "$origin") # suspended: the raw origin is the snapshot's image
dmsetup resume vol
dm_create vol-1 "0 $n ddsnap $store $origin $sock 1"
expect_eq "$(sha_of /dev/mapper/vol-1)" "$sha_at_snap" "snapshot right after creation"

step "rewrite the origin"
for i in 1 2 3 4; do
	write_pattern "/mnt/vol/f$i" "new-$i" 0 $((512 * 1024 + i * 4096))
done
rm /mnt/vol/f5
write_pattern /mnt/vol/g1 "g-1" 0 $((3 * 1024 * 1024))
sync
drop_caches
for i in 1 2 3 4; do
	check_pattern "/mnt/vol/f$i" "new-$i" 0 $((512 * 1024 + i * 4096))
done
check_pattern /mnt/vol/g1 "g-1" 0 $((3 * 1024 * 1024))

step "the snapshot still reads the old image"
expect_eq "$(sha_of /dev/mapper/vol-1)" "$sha_at_snap" "snapshot device after origin writes"
mount -o ro,noload /dev/mapper/vol-1 /mnt/snap
tree_sums /mnt/snap >"$RESULTS/sums-snap"
expect_same "$RESULTS/sums-at-snap" "$RESULTS/sums-snap" "snapshot tree"
for i in 1 5 8; do
	check_pattern "/mnt/snap/f$i" "old-$i" 0 $((512 * 1024 + i * 4096))
done
umount /mnt/snap

step "status"
st=$(dmsetup status vol)
log "origin: $st"
log "snapshot: $(dmsetup status vol-1)"
[[ $st == *mode=normal* && $st == *connected=1* ]] || fail "origin status: $st"
hits=$(sed -n 's/.* hits=\([0-9]*\).*/\1/p' <<<"$st")
misses=$(sed -n 's/.* misses=\([0-9]*\).*/\1/p' <<<"$st")
((hits > 0 && misses > 0)) || fail "expected cache hits and misses: $st"
dmsetup table vol | grep -q "ddsnap .* $sock -1" || fail "table line: $(dmsetup table vol)"

step "write to the snapshot: lands in the snapstore, not on the origin"
before=$(sha_of /dev/mapper/vol 1048576 262144)
write_pattern /dev/mapper/vol-1 "snapw" 1048576 262144
drop_caches
check_pattern /dev/mapper/vol-1 "snapw" 1048576 262144
expect_eq "$(sha_of /dev/mapper/vol 1048576 262144)" "$before" "origin after a snapshot write"
# a partial-chunk write keeps the rest of the chunk's snapshot view
sha_rest=$(sha_of /dev/mapper/vol-1 $((40 * 65536 + 4096)) 61440)
write_pattern /dev/mapper/vol-1 "partial" $((40 * 65536)) 4096
drop_caches
check_pattern /dev/mapper/vol-1 "partial" $((40 * 65536)) 4096
expect_eq "$(sha_of /dev/mapper/vol-1 $((40 * 65536 + 4096)) 61440)" "$sha_rest" \
	"rest of a partially written snapshot chunk"

step "discard on the origin is a write for the copy-out rule"
if blkdiscard -o $((60 * 65536)) -l $((4 * 65536)) /dev/mapper/vol 2>/dev/null; then
	log "discard accepted"
else
	log "discard not supported by the disks; skipped"
fi

step "delete the snapshot: its device fails I/O"
kmsg_mark
peer_cmd peer delete 1
if dd if=/dev/mapper/vol-1 of=/dev/null bs=4096 count=1 skip=123 iflag=direct status=none 2>/dev/null; then
	fail "read from a deleted snapshot succeeded"
fi
expect_kmsg "snapshot deleted or invalidated" "snapshot deletion logged"
[[ $(dmsetup status vol-1) == *mode=failed* ]] || fail "status after delete: $(dmsetup status vol-1)"

step "clean up"
umount /mnt/vol
dm_remove vol-1
dm_remove vol
rmmod dm_ddsnap || fail "rmmod"
peer_cmd peer quit
expect_no_kmsg "WARNING|BUG|Oops" "kernel warnings"
log "all passed"
