#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 128M
# vm-timeout: 600
# vm-boots: 2
#
# server-powercut: the guest loses power (QEMU killed, no shutdown) while the real server
# (ddsnapd) copies out for origin writes.
#
# Boot 1: three snapshots of an origin rewritten between them, each one's checksum saved in
# $RESULTS.  Then a stream of writes, each into its own 8 KiB slot (every one a first write
# to its chunk since snapshot 3, so each needs a copy-out), each followed by a flush
# (O_DIRECT or buffered, then fsync); a slot is noted in $RESULTS as issued before and as
# acknowledged after its write and flush returned.  Mid-stream: power cut.
# Boot 2, same disks: 'ddsnap check' on the stopped store is clean, the server starts (intent
# log replay), every snapshot reads exactly its saved checksum, and the origin is exactly
# snapshot 3 plus every acknowledged write (slots issued but not acknowledged may hold
# either; nothing else changed).  More writes and a snapshot work; the store checks clean
# after a clean stop.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

store=${DISKS[0]}
srv_setup cut
vol=/dev/mapper/vol
C=16384
SIZE=$((8 * 1024 * 1024))
SLOT0=64   # slot i is 8 KiB at 4 KiB into chunk SLOT0 + i
NSLOTS=400 # at most (chunks 64..463)
POOL_BLOCKS=1024

if ((VM_BOOT == 1)); then
	seed=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
	echo "$seed" >"$RESULTS/seed"
else
	seed=$(cat "$RESULTS/seed")
fi
log "boot $VM_BOOT, seed $seed"
RANDOM=$seed
pattern "cut-pool-$seed" $((POOL_BLOCKS * 4096)) >/tmp/pool

dm_create origin0 "0 $((SIZE / 512)) linear ${DISKS[1]} 0"
origin=/dev/mapper/origin0

# slot_write I: slot I's 8 KiB (pool blocks 2I mod ..), then a flush; O_DIRECT for even I,
# buffered for odd I.
slot_write()
{
	local direct=()
	(($1 % 2)) || direct=(oflag=direct)
	dd if=/tmp/pool of=$vol bs=4096 skip=$((2 * $1 % (POOL_BLOCKS - 2))) \
		seek=$(((SLOT0 + $1) * C / 4096 + 1)) count=2 "${direct[@]}" conv=fsync,notrunc \
		status=none
}
# slot_apply FILE I: the same write, applied to an image file.
slot_apply()
{
	dd if=/tmp/pool of="$1" bs=4096 skip=$((2 * $2 % (POOL_BLOCKS - 2))) \
		seek=$(((SLOT0 + $2) * C / 4096 + 1)) count=2 conv=notrunc status=none
}
snap_sha() { sha_of "/dev/mapper/vol@$1"; }

if ((VM_BOOT == 1)); then
	step "boot 1: initialize, server, origin, three snapshots"
	must "$ddsnap" initialize "$store" "$origin"
	srv_start
	load_ddsnap
	n=$("$ddsnap" status --size "$sock")
	dm_create vol "0 $n ddsnap $store $origin $sock -1"
	dd if=/tmp/pool of=$vol bs=1M oflag=direct status=none
	dd if=/tmp/pool of=$vol bs=1M seek=4 oflag=direct status=none
	for s in 1 2 3; do
		must "$ddsnap" create "$sock" "$s"
		sha_of $vol >"$RESULTS/s$s.sha"
		# Rewrite 24 random spans of chunks 0..63 (some across chunk boundaries).
		for _ in $(seq 24); do
			dd if=/tmp/pool of=$vol bs=4096 skip=$((RANDOM % (POOL_BLOCKS - 8))) \
				seek=$((RANDOM % (SLOT0 * C / 4096 - 8))) count=$((1 + RANDOM % 8)) \
				oflag=direct status=none
		done
	done
	# After snapshot 3 the origin changed again: keep the image the slots are checked on.
	dd if=$vol of="$RESULTS/origin-base.img" bs=1M iflag=direct status=none
	log "snapshots: $(cat "$RESULTS"/s?.sha | cut -c 1-12 | tr '\n' ' ')"

	step "boot 1: flushed writes into fresh slots, noted as acknowledged; then the power cut"
	: >"$RESULTS/issued"
	: >"$RESULTS/acked"
	(
		for ((i = 0; i < NSLOTS; i++)); do
			echo "$i" >>"$RESULTS/issued"
			slot_write "$i"
			echo "$i" >>"$RESULTS/acked"
		done
	) &
	writer=$!
	# Cut when the stream is well under way (copy-outs and group commits in flight).
	for _ in $(seq 600); do
		(($(wc -l <"$RESULTS/acked") >= 40)) && break
		kill -0 $writer 2>/dev/null || fail "the writer stopped early"
		sleep 0.1
	done
	log "$(wc -l <"$RESULTS/acked") writes acknowledged; $(timeout 10 dmsetup status vol)"
	vm_power_cut
fi

step "boot 2: the stopped store checks clean before any replay"
must "$ddsnap" check "$store" | tail -n 5
log "boot 1 acknowledged $(wc -l <"$RESULTS/acked") writes, issued $(wc -l <"$RESULTS/issued")"

step "boot 2: the server starts (log replay); the target on the same disks"
srv_start
grep -E 'replayed|opened' "$RESULTS/server.log" | tail -n 2
load_ddsnap
n=$("$ddsnap" status --size "$sock")
dm_create vol "0 $n ddsnap $store $origin $sock -1"
expect_eq "$("$ddsnap" list "$sock" | awk '{print $1}' | tr '\n' ' ')" "1 2 3 " "snapshots after the cut"

step "boot 2: every snapshot reads its saved image"
for s in 1 2 3; do
	dm_create "vol@$s" "0 $n ddsnap $store $origin $sock $s"
	expect_eq "$(snap_sha "$s")" "$(cat "$RESULTS/s$s.sha")" "snapshot $s after the power cut"
done

step "boot 2: the origin is the base plus every acknowledged write"
cp "$RESULTS/origin-base.img" /tmp/expect
while read -r i; do
	slot_apply /tmp/expect "$i"
done <"$RESULTS/acked"
dd if=$vol of=/tmp/now bs=1M iflag=direct status=none
# Slots issued but not acknowledged may hold old or new data: take them as found.
unacked=$(comm -23 <(sort "$RESULTS/issued") <(sort "$RESULTS/acked") | tr '\n' ' ')
log "issued but not acknowledged: ${unacked:-none}"
for i in $unacked; do
	dd if=/tmp/now of=/tmp/expect bs=4096 skip=$(((SLOT0 + i) * C / 4096 + 1)) \
		seek=$(((SLOT0 + i) * C / 4096 + 1)) count=2 conv=notrunc status=none
done
if ! cmp /tmp/now /tmp/expect; then
	fail "the origin is not the base plus the acknowledged writes (first difference above)"
fi
log "all $(wc -l <"$RESULTS/acked") acknowledged writes are on the origin, nothing else changed"

step "boot 2: more writes, snapshot 4, clean stop, check"
dd if=/tmp/pool of=$vol bs=4096 skip=7 seek=$(((SLOT0 + 1) * C / 4096)) count=64 oflag=direct \
	status=none
must "$ddsnap" create "$sock" 4
s4=$(sha_of $vol)
dd if=/tmp/pool of=$vol bs=4096 skip=99 seek=$(((SLOT0 + 1) * C / 4096)) count=64 \
	oflag=direct status=none
dm_create "vol@4" "0 $n ddsnap $store $origin $sock 4"
expect_eq "$(snap_sha 4)" "$s4" "snapshot 4"
expect_eq "$(snap_sha 1)" "$(cat "$RESULTS/s1.sha")" "snapshot 1 at the end"
for s in 1 2 3 4; do
	dm_remove "vol@$s"
done
dm_remove vol
srv_stop
must "$ddsnap" check "$store"
rmmod dm_ddsnap
dm_remove origin0
log "server-powercut: snapshots and acknowledged writes survived the cut"
