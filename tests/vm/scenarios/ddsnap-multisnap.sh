#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 96M
# vm-timeout: 420
# vm-cpus: 2
#
# ddsnap-multisnap: three snapshots of an origin under concurrent random writes, with the
# wire TEST PEER (tests/vm/wirepeer.c) as server.  Each snapshot is taken with the origin
# suspended and the raw origin's checksum saved then; every snapshot device must keep reading
# exactly that image while two writers rewrite the origin and, at the same time, a reader
# streams snapshot 1 (snapshot reads served from the origin race with origin writes: the read
# lock / FINISH path).  Deleting the middle snapshot leaves the others intact.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"
. "$SRC/tests/vm/wirepeer.sh"

peer_volume ms
# Only the first 24 MiB of the disk: the test peer never frees snapstore chunks, and three
# generations of a 24 MiB origin fit the 96 MiB store.
n=49152

# scribble SEED COUNT: COUNT direct writes of 4 KiB..128 KiB of random bytes at random
# 4 KiB-aligned offsets of the origin device (a seeded, replayable sequence).
scribble()
{
	python3 - "$1" "$2" "$((n * 512))" <<'PY'
import mmap, os, random, sys
seed, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
fd = os.open("/dev/mapper/vol", os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 128 * 1024)
for _ in range(count):
    length = 4096 * rng.randint(1, 32)
    off = 4096 * rng.randrange((size - length) // 4096)
    buf.seek(0)
    buf.write(rng.randbytes(length))
    if os.pwritev(fd, [memoryview(buf)[:length]], off) != length:
        sys.exit("short write")
os.close(fd)
PY
}

step "load, test peer, origin device with a first image"
load_ddsnap
peer_build
peer_start ms
dm_create vol "0 $n ddsnap $store $origin $sock -1"
scribble base 200

declare -A image
for s in 1 2 3; do
	step "snapshot $s (origin suspended), then concurrent rewrites"
	dmsetup suspend vol
	peer_cmd ms snap "$s"
	blockdev --flushbufs "$origin" # read the disk, not a stale page cache
	image[$s]=$(sha_of "$origin" 0 $((n * 512)))
	dmsetup resume vol
	dm_create "vol-$s" "0 $n ddsnap $store $origin $sock $s"
	scribble "a$s" 150 &
	w1=$!
	scribble "b$s" 150 &
	w2=$!
	got=$(sha_of /dev/mapper/vol-1)
	wait "$w1" || fail "writer a$s failed"
	wait "$w2" || fail "writer b$s failed"
	expect_eq "$got" "${image[1]}" "snapshot 1 read during origin writes (round $s)"
	for t in $(seq 1 "$s"); do
		expect_eq "$(sha_of "/dev/mapper/vol-$t")" "${image[$t]}" "snapshot $t after round $s"
	done
	log "origin: $(dmsetup status vol)"
done

step "delete snapshot 2: 1 and 3 unchanged, 2 fails"
peer_cmd ms delete 2
scribble after-delete 100
expect_eq "$(sha_of /dev/mapper/vol-1)" "${image[1]}" "snapshot 1 after deleting 2"
expect_eq "$(sha_of /dev/mapper/vol-3)" "${image[3]}" "snapshot 3 after deleting 2"
must_fail dd if=/dev/mapper/vol-2 of=/dev/null bs=4096 count=1 iflag=direct status=none
for s in 1 3; do
	st=$(dmsetup status "vol-$s")
	[[ $st == *mode=normal*errors=0* ]] || fail "snapshot $s status: $st"
done
st=$(dmsetup status vol)
[[ $st == *errors=0* ]] || fail "origin status: $st"

step "clean up"
for s in 1 2 3; do
	dm_remove "vol-$s"
done
dm_remove vol
rmmod dm_ddsnap || fail "rmmod"
peer_cmd ms quit
log "all passed"
