#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 64M
# vm-timeout: 300
#
# ddsnap-badpeer: the kernel target facing a misbehaving server, played by the wire TEST PEER
# (tests/vm/wirepeer.c).  Garbage replies fail the I/O they answer with EIO and a logged
# reason; a server that never answers makes I/O fail after the I/O timeout, and the read
# lock of a snapshot read answered too late is released; a server that is gone makes I/O
# fail after the timeout and then at once (mode failed); nothing hangs, no oops, and the
# device and module go away cleanly.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"
. "$SRC/tests/vm/wirepeer.sh"

peer_volume bad

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

step "a late reply to a timed-out snapshot read: its read lock is released"
# peer_locks N: wait up to 5 s until the peer holds N read locks
peer_locks()
{
	local i
	for ((i = 0; i < 25; i++)); do
		peer_cmd bad locks
		grep -qxF "locks $1" /run/bad.status && return 0
		sleep 0.2
	done
	fail "the peer holds $(grep '^locks' /run/bad.status), expected $1"
}
peer_cmd bad snap 1
dm_create snap1 "0 $n ddsnap $store $origin $sock 1"
dmsetup message snap1 0 timeout 3
peer_cmd bad mode hold
must_fail dd if=/dev/mapper/snap1 of=/dev/null bs=4096 count=1 skip=$((20 * 16)) iflag=direct \
	status=none
peer_locks 1 # granted with the reply the peer keeps
peer_cmd bad release
peer_locks 0 # the kernel sent FINISH for the lock of the late reply
st=$(dmsetup status snap1)
log "$st"
[[ $st == *" stale=1 "* && $st == *" lost_locks=0 "* ]] || fail "snapshot status: $st"
must wr 20 # an origin write to that chunk waits for no leaked lock
dm_remove snap1

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
