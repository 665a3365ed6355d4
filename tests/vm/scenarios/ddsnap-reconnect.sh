#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 64M
# vm-timeout: 300
#
# ddsnap-reconnect: the server (played by the wire TEST PEER, tests/vm/wirepeer.c) dies and
# comes back within the I/O timeout.  A write issued while it is gone waits, is re-sent after
# the reconnect and completes without error; a peer that dies in the middle of a stream of
# writes (die-after:N) and is restarted loses none of them; the data on the origin is right.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"
. "$SRC/tests/vm/wirepeer.sh"

peer_volume rc

step "load, test peer, origin device"
load_ddsnap
peer_build
peer_start rc
dm_create vol "0 $n ddsnap $store $origin $sock -1"
dmsetup message vol 0 timeout 30
write_pattern /dev/mapper/vol "first" 0 65536

step "server killed; a write waits for it"
kmsg_mark
peer_kill rc
pattern "during" 65536 $((5 * 65536)) |
	dd of=/dev/mapper/vol bs=65536 seek=5 iflag=fullblock oflag=direct status=none &
writer=$!
sleep 3
kill -0 "$writer" 2>/dev/null || fail "the write did not wait for the server"
[[ $(dmsetup status vol) == *mode=server-lost* ]] || fail "status: $(dmsetup status vol)"

step "server back: the write completes"
peer_start rc
wait "$writer" || fail "the write issued while the server was away failed"
expect_kmsg "reconnected to server" "reconnect logged"
[[ $(dmsetup status vol) == *mode=normal* ]] || fail "status: $(dmsetup status vol)"

step "server dies mid-stream, again and again: no write lost"
peer_kill rc
peer_start rc die-after:4
(
	for c in $(seq 10 25); do
		pattern "stream-$c" 65536 $((c * 65536)) |
			dd of=/dev/mapper/vol bs=65536 seek="$c" iflag=fullblock oflag=direct \
				status=none || exit 1
	done
) &
writer=$!
restarts=0
while kill -0 "$writer" 2>/dev/null; do
	if ! kill -0 "$(cat /run/rc.pid)" 2>/dev/null; then
		peer_start rc die-after:4
		restarts=$((restarts + 1))
	fi
	sleep 0.2
done
wait "$writer" || fail "a write failed while the server kept dying"
log "peer restarted $restarts times"
((restarts >= 3)) || fail "the peer should have died several times"

step "the data is on the origin"
drop_caches
check_pattern "$origin" "first" 0 65536
check_pattern "$origin" "during" $((5 * 65536)) 65536
for c in $(seq 10 25); do
	check_pattern "$origin" "stream-$c" $((c * 65536)) 65536
done
st=$(dmsetup status vol)
log "$st"
[[ $st == *errors=0* ]] || fail "errors counted: $st"

step "clean up"
dm_remove vol
rmmod dm_ddsnap || fail "rmmod"
peer_kill rc
log "all passed"
