#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 256M
# vm-timeout: 900
#
# server-ext4: the whole stack for real: ddsnap initialize, the ddsnap server (ddsnapd),
# our kernel target, ext4.  Files are written, snapshot 1 taken, files changed and deleted,
# snapshot 2 taken; each snapshot device mounted ro,noload shows exactly the files of its
# time (snapshot 2 is taken with 64 more devices of the socket listed before the origin,
# which ddsnap create still finds and suspends).  Then fio rewrites the origin with verify=crc32c while the raw checksum of every
# snapshot device must not move.  A snapshot is deleted and the survivor re-verified; the
# server stops cleanly and 'ddsnap check' finds the store consistent.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

store=${DISKS[0]}
origin=${DISKS[1]}
srv_setup vol

step "initialize the store, start the server, load the target"
must "$ddsnap" initialize "$store" "$origin"
srv_start
load_ddsnap
n=$("$ddsnap" status --size "$sock")
expect_eq "$n" "$(dev_sectors "$origin")" "volume size reported by the server"
kmsg_mark
srv_dev_up -1

step "ext4 on the origin, files with known contents"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/vol
mkdir -p /mnt/vol /mnt/s1 /mnt/s2
mount /dev/mapper/vol /mnt/vol
for i in 1 2 3 4 5 6 7 8; do
	write_pattern "/mnt/vol/f$i" "one-$i" 0 $((256 * 1024 + i * 12288))
done
mkdir /mnt/vol/docs
cp -a /usr/share/common-licenses /mnt/vol/docs/
sync
tree_sums /mnt/vol >"$RESULTS/sums-1"

step "snapshot 1 (the origin is suspended by ddsnap create)"
must "$ddsnap" create "$sock" 1
srv_dev_up 1
mount -o ro,noload "$(srv_dev 1)" /mnt/s1
tree_sums /mnt/s1 >"$RESULTS/sums-s1"
expect_same "$RESULTS/sums-s1" "$RESULTS/sums-1" "snapshot 1 right after creation"

step "change the origin: rewrite in place, delete, append, create"
for i in 1 2 3; do
	write_pattern "/mnt/vol/f$i" "two-$i" 0 $((256 * 1024 + i * 12288))
done
rm /mnt/vol/f4 /mnt/vol/f5
write_pattern /mnt/vol/f6 "two-6-tail" $((256 * 1024 + 6 * 12288)) 65536
write_pattern /mnt/vol/g1 "two-g1" 0 $((2 * 1024 * 1024))
rm -r /mnt/vol/docs/common-licenses/G*
sync
tree_sums /mnt/vol >"$RESULTS/sums-2"
drop_caches
tree_sums /mnt/s1 >"$RESULTS/sums-s1b"
expect_same "$RESULTS/sums-s1b" "$RESULTS/sums-1" "snapshot 1 after the origin changed"

step "snapshot 2, with 64 more devices of snapshot 1 listed before the origin"
# ddsnap create finds the origin to suspend among the devices of its socket; the kernel
# lists devices by name, so a-0..a-63 come first (create once looked at 64 devices of any
# tag and missed the origin).  A resume sends a change uevent for the resumed device, read
# here from the kernel's uevent socket (udevadm monitor refuses to run in this guest).
for ((i = 0; i < 64; i++)); do dm_create "a-$i" "0 $n ddsnap $store $origin $sock 1"; done
blk=$(dmsetup info -c --noheadings -o blkdevname vol)
python3 -c '
import socket
s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)  # NETLINK_KOBJECT_UEVENT
s.bind((0, 1))
print("ready", flush=True)
while True:
    print(s.recv(65536).split(b"\0")[0].decode(errors="replace"), flush=True)
' >"$RESULTS/uevents" &
mon=$!
for _ in $(seq 100); do
	grep -q '^ready$' "$RESULTS/uevents" && break
	sleep 0.1
done
grep -q '^ready$' "$RESULTS/uevents" || fail "the uevent listener did not start"
must "$ddsnap" create "$sock" 2
sleep 1
kill "$mon"
wait "$mon" || true
grep -qx "change@/devices/virtual/block/$blk" "$RESULTS/uevents" ||
	fail "ddsnap create did not suspend and resume the origin ($blk) among 66 devices: $(cat "$RESULTS/uevents")"
for ((i = 0; i < 64; i++)); do dm_remove "a-$i"; done
srv_dev_up 2
mount -o ro,noload "$(srv_dev 2)" /mnt/s2
tree_sums /mnt/s2 >"$RESULTS/sums-s2"
expect_same "$RESULTS/sums-s2" "$RESULTS/sums-2" "snapshot 2 right after creation"
sha1=$(sha_of "$(srv_dev 1)")
sha2=$(sha_of "$(srv_dev 2)")

step "fio rewrites the origin with verify=crc32c; snapshot devices must not change"
fio --name=rewrite --filename=/mnt/vol/fio.dat --size=48M --rw=randwrite --bs=4k \
	--ioengine=psync --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--randseed=7 --output="$RESULTS/fio.txt" >/dev/null
grep -q "err= 0" "$RESULTS/fio.txt" || fail "fio reported errors: $(cat "$RESULTS/fio.txt")"
sync
drop_caches
expect_eq "$(sha_of "$(srv_dev 1)")" "$sha1" "snapshot 1 device after fio"
expect_eq "$(sha_of "$(srv_dev 2)")" "$sha2" "snapshot 2 device after fio"
tree_sums /mnt/s1 >"$RESULTS/sums-s1c"
expect_same "$RESULTS/sums-s1c" "$RESULTS/sums-1" "snapshot 1 files after fio"

step "status and list"
"$ddsnap" status "$sock" | tee "$RESULTS/status.txt"
expect_eq "$("$ddsnap" list "$sock" | awk '{print $1}' | tr '\n' ' ')" "1 2 " "snapshot list"

step "delete snapshot 1; snapshot 2 is unchanged"
umount /mnt/s1
dm_remove "vol@1"
must "$ddsnap" delete "$sock" 1
expect_eq "$("$ddsnap" list "$sock" | awk '{print $1}' | tr '\n' ' ')" "2 " "list after delete"
drop_caches
expect_eq "$(sha_of "$(srv_dev 2)")" "$sha2" "snapshot 2 device after deleting 1"
must_fail "$ddsnap" delete "$sock" 1

step "tear down, stop the server cleanly, check the store"
umount /mnt/s2
umount /mnt/vol
dm_remove "vol@2"
dm_remove vol
srv_stop
must "$ddsnap" check "$store"
expect_no_kmsg 'BUG|WARNING|Oops|ddsnap.*(error|fail)' "kernel log"
rmmod dm_ddsnap
log "server-ext4: every snapshot showed exactly its own time"
