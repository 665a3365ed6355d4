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
# snapshot still reads its image through a fresh device.  Then more snapshot reads in flight
# than the target's read-lock credits, and three rounds at depth (tests/vm/snaprace.c: 16
# reader and 16 writer threads over 4 MiB) where the snapshot's chunks are read from the
# kernel's cache of "on the origin" answers, which the kernel alone keeps apart from the
# origin's first writes (kernel/ddsnap-volume.c).
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
# The device would cache "on the origin" answers (wire version 3) and ask only once per
# chunk: the module is told not to, for this step.
echo N >/sys/module/dm_ddsnap/parameters/origin_cache
dmsetup message "vol@$last" 0 drop_cache
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
((peak > 0)) || fail "the flood never held a read lock: its reads did not ask the server"
echo Y >/sys/module/dm_ddsnap/parameters/origin_cache
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

step "at depth: snapshot reads from the kernel's cache against first writes"
# The snapshot device caches "on the origin" answers and reads those chunks without asking
# the server; the kernel itself must then hold an origin write that copies such a chunk out
# until the snapshot reads of it in flight have ended (kernel/ddsnap-volume.c).  Each round:
# the whole origin gets a new generation of snaprace's pattern, a snapshot is taken, read
# once whole (its answers cached), then 16 threads read it while 16 threads overwrite every
# chunk of the origin once (whole, in 4 KiB pieces, or in halves), every block checked.
racer=$BUILD/tests/snaprace
[[ -x $racer ]] || fail "$racer is missing: make all builds it"
for ((r = 1; r <= 3; r++)); do
	tag=$((100 + r))
	must "$racer" fill $vol "$SIZE" "$tag"
	must "$ddsnap" create "$sock" "$tag"
	dm_create "vol@$tag" "0 $n ddsnap $store $origin $sock $tag"
	must "$racer" check "/dev/mapper/vol@$tag" "$SIZE" "$tag"
	h0=$(dmsetup status "vol@$tag" | sed -n 's/.* hits=\([0-9]*\).*/\1/p')
	out=$("$racer" race $vol "/dev/mapper/vol@$tag" "$SIZE" $C "$tag" $((tag + 1)) 16 \
		"$((seed + r))" 2>&1) || fail "round $r: $out"
	st=$(dmsetup status "vol@$tag")
	h1=$(sed -n 's/.* hits=\([0-9]*\).*/\1/p' <<<"$st")
	ost=$(dmsetup status vol)
	log "round $r: $out; snapshot hits $((h1 - h0)); origin: $ost"
	((h1 > h0)) || fail "round $r: no snapshot read came from the kernel's cache: $st"
	[[ $st == *errors=0* ]] || fail "round $r: snapshot device counted errors: $st"
	must "$racer" check $vol "$SIZE" $((tag + 1))
	must "$racer" check "/dev/mapper/vol@$tag" "$SIZE" "$tag"
	dm_remove "vol@$tag"
	dm_create "vol@$tag" "0 $n ddsnap $store $origin $sock $tag"
	must "$racer" check "/dev/mapper/vol@$tag" "$SIZE" "$tag"
	dm_remove "vol@$tag"
done
held=$(dmsetup status vol | sed -n 's/.* held=\([0-9]*\).*/\1/p')
log "origin writes held for snapshot reads from the cache, all rounds: $held"

step "a revert under a snapshot device with a warm cache"
# The server writes the origin itself in a revert: a snapshot device that cached "on the
# origin" for its chunks must forget that (DROP_CACHE ORIGIN_CHANGED) before the origin
# changes under it.  Snapshot 110 shares generation 104 with the origin and is read whole
# (cached); the revert to 101 copies 104 out for it and writes 101 into the origin.
must "$ddsnap" create "$sock" 110
dm_create vol@110 "0 $n ddsnap $store $origin $sock 110"
must "$racer" check /dev/mapper/vol@110 "$SIZE" 104
st0=$(dmsetup status vol@110)
must "$racer" check /dev/mapper/vol@110 "$SIZE" 104
st1=$(dmsetup status vol@110)
# every bio of the second read a hit (a run of cached chunks is one bio), none asked
[[ ${st1#* misses=} == "${st0#* misses=}" && $st1 != "$st0" ]] ||
	fail "a second read of snapshot 110 asked the server: before: $st0; after: $st1"
must "$ddsnap" revert "$sock" 101
must "$racer" check $vol "$SIZE" 101
must "$racer" check /dev/mapper/vol@110 "$SIZE" 104
log "after the revert: vol@110: $(dmsetup status vol@110)"
dm_remove vol@110
expect_no_kmsg 'ddsnap.*(error|fail|bad reply)' "kernel log"

step "tear down, check the store"
dm_remove vol
srv_stop
must "$ddsnap" check "$store"
rmmod dm_ddsnap
dm_remove origin0
log "server-readrace: no snapshot read returned newer data"
