#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 128M
# vm-timeout: 600
#
# server-writable: snapshots are writable, on the real server (ddsnapd).  Writes to a
# snapshot device (partial chunks, whole chunks, spans across chunk boundaries, a chunk
# the origin has already overwritten) read back from it, also through a fresh device (the
# server's mapping, not the kernel's cache) and after a server restart; the origin is not
# touched by them, and neither is an older or a newer snapshot; origin writes to the same
# chunks afterwards do not show in the snapshot.  A fresh device reading copied-out chunks
# 4 KiB at a time asks the server once and finds the rest in the cache (mapping read-ahead).
# Then the snapshot is deleted, the other snapshots still read their images, and the stopped
# store passes 'ddsnap check'.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

store=${DISKS[0]}
srv_setup wr
vol=/dev/mapper/vol
KIB=1024
MIB=$((1024 * KIB))
SIZE=$((8 * MIB))
C=16384 # chunk size (the initialize default, checked below)

dm_create origin0 "0 $((SIZE / 512)) linear ${DISKS[1]} 0"
origin=/dev/mapper/origin0

# put DEV SEED OFF LEN: seeded pattern bytes at OFF (512-byte aligned), O_DIRECT.
put()
{
	local bs=512
	(($3 % 4096 || $4 % 4096)) || bs=4096
	pattern "$2" "$4" "$3" |
		dd of="$1" bs=$bs seek=$(($3 / bs)) iflag=fullblock oflag=direct status=none
}
# img DEV FILE: the whole device, read with O_DIRECT, into FILE.
img() { dd if="$1" of="$2" bs=1M iflag=direct status=none; }
# same DEV FILE WHAT: the device reads exactly FILE; if not, the differing chunks are listed
# and both images kept in $RESULTS.
same()
{
	img "$1" /tmp/got
	cmp -s /tmp/got "$2" && return 0
	cmp -l /tmp/got "$2" | awk -v c=$C '{ print int(($1 - 1) / c) }' | uniq -c | head -n 20 |
		awk '{ printf "  chunk %d: %d bytes differ\n", $2, $1 }' >&2
	cp /tmp/got "$RESULTS/got.img"
	cp "$2" "$RESULTS/want.img"
	fail "$3: $1 does not read as expected (images in \$RESULTS/got.img, want.img)"
}
# splice FILE SEED OFF LEN: the same write as put, applied to an image file.
splice() { pattern "$2" "$4" "$3" | dd of="$1" bs=512 seek=$(($3 / 512)) iflag=fullblock conv=notrunc status=none; }

step "initialize, server, origin with a pattern"
must "$ddsnap" initialize "$store" "$origin"
srv_start
load_ddsnap
n=$("$ddsnap" status --size "$sock")
srv_dev_up -1
[[ $(dmsetup status vol) == *chunk=$C* ]] || fail "chunk size is not $C: $(dmsetup status vol)"
pattern "wr-base" "$SIZE" | dd of=$vol bs=1M iflag=fullblock oflag=direct status=none
img $vol /tmp/o0

step "snapshot 1; the origin overwrites a few chunks; snapshot 2"
must "$ddsnap" create "$sock" 1
cp /tmp/o0 /tmp/s1
put $vol "wr-o1" $((40 * C)) $((4 * C))
put $vol "wr-o1b" $((100 * C + 1024)) 2048
must "$ddsnap" create "$sock" 2
img $vol /tmp/s2
cp /tmp/s2 /tmp/o1
srv_dev_up 1
srv_dev_up 2
same "$(srv_dev 1)" /tmp/s1 "snapshot 1 before any snapshot write"
same "$(srv_dev 2)" /tmp/s2 "snapshot 2 before any snapshot write"

# The writes to snapshot 1, as "seed offset length": a partial chunk, a whole chunk, a
# span over three chunks, sub-4k pieces, chunks the origin rewrote after snapshot 1 (so
# snapshot 1 reads them from a copy-out, which must not change for anyone else), the first
# and last chunks of the volume, and a rewrite of a chunk written before.
writes=(
	"w1 $((3 * C + 4096)) 4096"
	"w2 $((7 * C)) $C"
	"w3 $((10 * C + 8192)) $((2 * C + 512))"
	"w4 $((20 * C + 512)) 1024"
	"w5 $((41 * C + 1024)) $((C / 2))"
	"w6 $((100 * C)) $C"
	"w7 0 4096"
	"w8 $((SIZE - C)) $C"
	"w9 $((7 * C + 4096)) 8192"
)
step "write to snapshot 1 (${#writes[@]} writes)"
for w in "${writes[@]}"; do
	read -r seed off len <<<"$w"
	put "$(srv_dev 1)" "wr-s1-$seed" "$off" "$len"
	splice /tmp/s1 "wr-s1-$seed" "$off" "$len"
done
sync
same "$(srv_dev 1)" /tmp/s1 "snapshot 1 after its writes"
same $vol /tmp/o1 "the origin after the snapshot writes"
same "$(srv_dev 2)" /tmp/s2 "snapshot 2 after snapshot 1's writes"

step "the origin rewrites the chunks snapshot 1 wrote"
put $vol "wr-o2" $((3 * C)) $((12 * C))
put $vol "wr-o2b" $((100 * C)) $((2 * C))
splice /tmp/o1 "wr-o2" $((3 * C)) $((12 * C))
splice /tmp/o1 "wr-o2b" $((100 * C)) $((2 * C))
same $vol /tmp/o1 "the origin after its rewrite"
same "$(srv_dev 1)" /tmp/s1 "snapshot 1 after the origin rewrite"
same "$(srv_dev 2)" /tmp/s2 "snapshot 2 after the origin rewrite"

step "mapping read-ahead: 4 KiB reads of snapshot 2 over chunks the origin rewrote"
# Chunks 3..14 of snapshot 2 are copy-outs now.  A fresh device reads them 4 KiB at a time:
# the first read asks the server, and its query also asks where the chunks after it are
# (RANGE_AHEAD), so the reads of the other eleven chunks hit the cache.
dm_remove "vol@2"
srv_dev_up 2
dd if="$(srv_dev 2)" of=/tmp/ra bs=4096 skip=$((3 * C / 4096)) count=$((12 * C / 4096)) \
	iflag=direct status=none
cmp -s /tmp/ra <(dd if=/tmp/s2 bs=4096 skip=$((3 * C / 4096)) count=$((12 * C / 4096)) \
	status=none) || fail "snapshot 2's chunks 3..14 read through read-ahead mappings differ"
st=$(dmsetup status "vol@2")
log "vol@2: $st"
misses=$(sed -n 's/.* misses=\([0-9]*\).*/\1/p' <<<"$st")
ahead=$(sed -n 's/.* ahead=\([0-9]*\).*/\1/p' <<<"$st")
((misses <= 2)) || fail "$misses of 48 reads asked the server (read-ahead should leave 1 or 2)"
((ahead >= 11)) || fail "read-ahead cached $ahead mappings, fewer than the 11 chunks after the first"

step "fresh devices (mappings from the server, not the kernel's cache), then a server restart"
dm_remove "vol@1"
dmsetup message vol 0 drop_cache
srv_dev_up 1
same "$(srv_dev 1)" /tmp/s1 "snapshot 1 through a fresh device"
dm_remove "vol@1"
dm_remove "vol@2"
dm_remove vol
srv_stop
srv_start
srv_dev_up -1
srv_dev_up 1
srv_dev_up 2
same "$(srv_dev 1)" /tmp/s1 "snapshot 1 after a server restart"
same "$(srv_dev 2)" /tmp/s2 "snapshot 2 after a server restart"
same $vol /tmp/o1 "the origin after a server restart"

step "more snapshot writes after the restart, and snapshot 3 taken after them"
put "$(srv_dev 1)" "wr-s1-late" $((7 * C + 2048)) 4096
splice /tmp/s1 "wr-s1-late" $((7 * C + 2048)) 4096
put "$(srv_dev 2)" "wr-s2" $((40 * C)) $((2 * C))
splice /tmp/s2 "wr-s2" $((40 * C)) $((2 * C))
must "$ddsnap" create "$sock" 3
cp /tmp/o1 /tmp/s3
put $vol "wr-o3" $((7 * C)) $((2 * C))
splice /tmp/o1 "wr-o3" $((7 * C)) $((2 * C))
srv_dev_up 3
same "$(srv_dev 1)" /tmp/s1 "snapshot 1"
same "$(srv_dev 2)" /tmp/s2 "snapshot 2"
same "$(srv_dev 3)" /tmp/s3 "snapshot 3"
same $vol /tmp/o1 "the origin"
"$ddsnap" status "$sock" | tee "$RESULTS/status.txt"

step "delete snapshot 1 (refused while its device is up); the others are intact"
if "$ddsnap" delete "$sock" 1 2>"$RESULTS/delete-busy.txt"; then
	log "note: delete of a snapshot with its device up was accepted"
	dm_remove "vol@1"
else
	log "refused while in use: $(cat "$RESULTS/delete-busy.txt")"
	dm_remove "vol@1"
	must "$ddsnap" delete "$sock" 1
fi
expect_eq "$("$ddsnap" list "$sock" | awk '{print $1}' | tr '\n' ' ')" "2 3 " "snapshots after the delete"
drop_caches
same "$(srv_dev 2)" /tmp/s2 "snapshot 2 after deleting 1"
same "$(srv_dev 3)" /tmp/s3 "snapshot 3 after deleting 1"
same $vol /tmp/o1 "the origin after deleting 1"
if dmsetup create "vol@1" --table "0 $n ddsnap $store $origin $sock 1" 2>/dev/null; then
	fail "a device for the deleted snapshot 1 was created"
fi

step "tear down, check the store"
dm_remove "vol@2"
dm_remove "vol@3"
dm_remove vol
srv_stop
must "$ddsnap" check "$store"
rmmod dm_ddsnap
dm_remove origin0
log "server-writable: snapshot writes stay in their snapshot"
