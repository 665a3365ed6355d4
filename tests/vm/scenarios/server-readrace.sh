#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 128M
# vm-timeout: 600
# vm-cpus: 2
#
# server-readrace: the snapshot read race of DESIGN.md 5 on the real server (ddsnapd).  In
# each round a snapshot is taken of a 1 MiB region whose chunks the origin has not yet
# overwritten since, so reading them through the snapshot device goes to the origin.  Two
# readers then read the region through the snapshot device (O_DIRECT, whole chunks, pieces
# and spans across chunks, in seeded random order) while a writer overwrites the same
# chunks of the origin with the next pattern (O_DIRECT, random order, also spans).  Every
# read must equal the snapshot's saved image, byte for byte: never the newer data, never a
# mix.  After each round the origin holds exactly the new pattern, and at the end every
# snapshot still reads its image through a fresh device.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

store=${DISKS[0]}
srv_setup race
vol=/dev/mapper/vol
C=16384
NCH=64 # chunks in the racing region
R=$((NCH * C))
SIZE=$((4 * 1024 * 1024))
ROUNDS=${ROUNDS:-6}
seed=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
log "seed $seed"
echo "$seed" >"$RESULTS/seed"
RANDOM=$seed

dm_create origin0 "0 $((SIZE / 512)) linear ${DISKS[1]} 0"
origin=/dev/mapper/origin0

# shuffled N: 0..N-1 in a seeded random order, one per line.
shuffled()
{
	local i j x a=()
	for ((i = 0; i < $1; i++)); do a+=("$i"); done
	for ((i = $1 - 1; i > 0; i--)); do
		j=$((RANDOM % (i + 1)))
		x=${a[i]}
		a[i]=${a[j]}
		a[j]=$x
	done
	printf '%s\n' "${a[@]}"
}

step "initialize, server, origin"
must "$ddsnap" initialize "$store" "$origin"
srv_start
load_ddsnap
n=$("$ddsnap" status --size "$sock")
dm_create vol "0 $n ddsnap $store $origin $sock -1"
[[ $(dmsetup status vol) == *chunk=$C* ]] || fail "chunk size is not $C: $(dmsetup status vol)"
pattern "race-0" "$R" >/tmp/img.0
dd if=/tmp/img.0 of=$vol bs=$C oflag=direct status=none
kmsg_mark

# reader SNAPDEV IMAGE ID: reads pieces of the region until /tmp/stop exists; each read
# compared with the same bytes of IMAGE.  Prints the number of reads on exit.
reader()
{
	local dev=$1 image=$2 id=$3 reads=0 c off len what
	RANDOM=$((seed + id))
	while [[ ! -e /tmp/stop ]]; do
		c=$((RANDOM % NCH))
		case $((RANDOM % 4)) in
		0 | 1) off=$((c * C)) len=$C what="chunk $c" ;;
		2) off=$((c * C + (RANDOM % 4) * 4096)) len=4096 what="4k in chunk $c" ;;
		*)
			((c < NCH - 2)) || c=$((NCH - 3))
			off=$((c * C + 8192)) len=$((2 * C)) what="span from chunk $c"
			;;
		esac
		dd if="$dev" bs=4096 skip=$((off / 4096)) count=$((len / 4096)) iflag=direct \
			status=none >"/tmp/r.$id" || {
			echo "reader $id: read of $what failed" >&2
			return 1
		}
		if ! cmp -s "/tmp/r.$id" <(dd if="$image" bs=4096 skip=$((off / 4096)) \
			count=$((len / 4096)) status=none); then
			cmp "/tmp/r.$id" <(dd if="$image" bs=4096 skip=$((off / 4096)) \
				count=$((len / 4096)) status=none) >&2 || true
			echo "reader $id: $what (bytes $off+$len) differs from the snapshot's image" >&2
			return 1
		fi
		reads=$((reads + 1))
	done
	echo "$reads"
}

for ((round = 1; round <= ROUNDS; round++)); do
	step "round $round: snapshot $round, readers on it, the origin overwritten"
	must "$ddsnap" create "$sock" "$round"
	dm_create "vol@$round" "0 $n ddsnap $store $origin $sock $round"
	snap="/dev/mapper/vol@$round"
	prev=/tmp/img.$((round - 1))
	pattern "race-$round" "$R" >/tmp/img.$round
	rm -f /tmp/stop
	reader "$snap" "$prev" 1 >/tmp/reads.1 &
	r1=$!
	reader "$snap" "$prev" 2 >/tmp/reads.2 &
	r2=$!
	sleep 1
	# The writer: every chunk once, in random order; every third write a span of two
	# chunks starting mid-chunk (the chunk after it is then written again, which is fine).
	w=0
	for c in $(shuffled $NCH); do
		if ((w % 3 == 2 && c < NCH - 1)); then
			off=$((c * C + 8192)) len=$C
		else
			off=$((c * C)) len=$C
		fi
		dd if=/tmp/img.$round of=$vol bs=4096 skip=$((off / 4096)) seek=$((off / 4096)) \
			count=$((len / 4096)) oflag=direct status=none
		w=$((w + 1))
		if ! kill -0 $r1 2>/dev/null || ! kill -0 $r2 2>/dev/null; then
			break
		fi
	done
	# Chunks only half-written by a span: write them whole now.
	dd if=/tmp/img.$round of=$vol bs=$C oflag=direct status=none
	: >/tmp/stop
	wait $r1 || fail "round $round: reader 1 saw data that is not snapshot $round's"
	wait $r2 || fail "round $round: reader 2 saw data that is not snapshot $round's"
	log "round $round: $(cat /tmp/reads.1) + $(cat /tmp/reads.2) snapshot reads raced $w origin writes"
	expect_same <(dd if=$vol bs=$C count=$NCH iflag=direct status=none) /tmp/img.$round \
		"round $round: the origin after the overwrite"
	expect_same <(dd if="$snap" bs=$C count=$NCH iflag=direct status=none) "$prev" \
		"round $round: snapshot $round after the overwrite"
	st=$(dmsetup status "vol@$round")
	log "vol@$round: $st"
	[[ $st == *errors=0* ]] || fail "snapshot device counted errors: $st"
	dm_remove "vol@$round"
done

step "every snapshot through a fresh device"
for ((round = 1; round <= ROUNDS; round++)); do
	dm_create "vol@$round" "0 $n ddsnap $store $origin $sock $round"
	expect_same <(dd if="/dev/mapper/vol@$round" bs=$C count=$NCH iflag=direct status=none) \
		/tmp/img.$((round - 1)) "snapshot $round"
	dm_remove "vol@$round"
done
step "more snapshot reads in flight than the FINISH ring holds"
# 1 MiB reads of a fresh snapshot whose chunks are all on the origin, 32 at once: 2048
# chunk reads would each want a read lock, twice the 1024 releases the target can queue.
# The target sends a snapshot read only with a lock credit, so the server never holds more
# than 1024 locks, no release is lost, and an origin write of every chunk afterwards does
# not wait forever for a lock nobody will release.
last=$((ROUNDS + 1))
must "$ddsnap" create "$sock" "$last"
dm_create "vol@$last" "0 $n ddsnap $store $origin $sock $last"
dd if=$vol bs=1M count=$((SIZE / 1048576)) iflag=direct status=none >/tmp/img.last
fio --name=flood --filename="/dev/mapper/vol@$last" --rw=randread --bs=1M --iodepth=32 \
	--ioengine=libaio --direct=1 --time_based --runtime=6 --eta=never --output=/tmp/flood.txt &
fp=$!
peak=0
while kill -0 $fp 2>/dev/null; do
	l=$("$ddsnap" status "$sock" | sed -n 's/.* \([0-9]*\) read locks.*/\1/p')
	((${l:-0} > peak)) && peak=$l
	sleep 0.2
done
wait $fp || fail "fio flood of snapshot $last failed: $(tail -5 /tmp/flood.txt)"
log "snapshot reads in flight: at most $peak read locks held by the server at once"
((peak <= 1024)) || fail "the server held $peak read locks, more than the target's 1024 credits"
st=$(dmsetup status "vol@$last")
log "vol@$last: $st"
[[ $st == *lost_locks=0* && $st == *errors=0* ]] || fail "snapshot device lost locks: $st"
timeout 60 dd if=/dev/urandom of=$vol bs=1M count=$((SIZE / 1048576)) oflag=direct \
	status=none || fail "overwriting the origin after the flood did not finish in 60 s"
expect_same <(dd if="/dev/mapper/vol@$last" bs=1M iflag=direct status=none) /tmp/img.last \
	"snapshot $last after the flood and the overwrite"
dm_remove "vol@$last"
expect_no_kmsg 'ddsnap.*(error|fail|bad reply)' "kernel log"

step "tear down, check the store"
dm_remove vol
srv_stop
must "$ddsnap" check "$store"
rmmod dm_ddsnap
dm_remove origin0
log "server-readrace: no snapshot read returned newer data"
