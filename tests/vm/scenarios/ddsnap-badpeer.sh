#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 64M
# vm-timeout: 300
#
# ddsnap-badpeer: the kernel target facing a misbehaving server, played by the wire TEST PEER
# (tests/vm/wirepeer.c).  Garbage replies fail the I/O they answer with EIO and a logged
# reason; a server that never answers makes I/O fail after the I/O timeout; a server that is
# gone makes I/O fail after the timeout and then at once (mode failed); nothing hangs, no
# oops, and the device and module go away cleanly.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"
. "$SRC/tests/vm/wirepeer.sh"

store=${DISKS[0]}
origin=${DISKS[1]}
PEER_ORIGIN=$origin
PEER_STORE=$store
n=$(dev_sectors "$origin")
sock=$(peer_sock bad)

# wr CHUNK: one direct 4 KiB write into a 64 KiB chunk of the origin device.
wr()
{
	pattern "w$1" 4096 $(($1 * 65536)) |
		dd of=/dev/mapper/vol bs=4096 seek=$(($1 * 16)) iflag=fullblock oflag=direct \
			status=none 2>/dev/null
}

step "load, test peer, origin device"
load_ddsnap
peer_build
peer_start bad
dm_create vol "0 $n ddsnap $store $origin $sock -1"
must wr 1

step "garbage replies fail the I/O they answer"
kmsg_mark
peer_cmd bad mode garbage
must_fail wr 2
expect_kmsg "bad reply for chunk 2" "garbage reply logged"
must_fail wr 3
dd if=/dev/mapper/vol of=/dev/null bs=4096 count=16 iflag=direct status=none ||
	fail "origin reads need no server"

step "a server that never answers: I/O fails after the timeout"
peer_cmd bad mode silent
dmsetup message vol 0 timeout 3
kmsg_mark
t0=$(date +%s)
must_fail wr 4
t=$(($(date +%s) - t0))
log "write failed after $t s"
((t >= 2 && t <= 30)) || fail "timeout took $t s, expected about 3"
expect_kmsg "no reply from server .* within 3 s" "timeout logged"

step "a server back to normal: I/O flows again"
peer_cmd bad mode normal
must wr 5

step "bad magic: connection dropped, request re-sent, then timed out"
peer_cmd bad mode badmagic
kmsg_mark
must_fail wr 6
expect_kmsg "bad magic" "bad magic logged"
peer_cmd bad mode normal
must wr 7

step "server killed: I/O fails after the timeout, then at once"
peer_kill bad
kmsg_mark
t0=$(date +%s)
must_fail wr 8
t=$(($(date +%s) - t0))
log "write failed after $t s"
((t <= 30)) || fail "write with no server took $t s"
sleep 5
st=$(dmsetup status vol)
log "$st"
[[ $st == *mode=failed* ]] || fail "mode after the server stayed away: $st"
must_fail wr 9
expect_kmsg "I/O to chunk 9 failed: target is in failed mode" "failed mode fails at once"
expect_kmsg "no reply from server .* within 3 s \(disconnected\)" "timeout while disconnected logged"

step "the server returns: the target recovers"
peer_start bad
for ((i = 0; i < 50; i++)); do
	[[ $(dmsetup status vol) == *mode=normal* ]] && break
	sleep 0.2
done
must wr 10

step "clean up"
dm_remove vol
rmmod dm_ddsnap || fail "rmmod"
lsmod | grep -q '^dm_ddsnap ' && fail "module still loaded"
peer_cmd bad quit
log "all passed"
