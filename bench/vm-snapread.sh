#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 256M
# vm-timeout: 1800
#
# vm-snapread (make bench): snapshot reads against the origin's own reads, old build against
# new in one guest run (issue 21's snapshot-read rows).  Each turn loads one build's module
# and server on a fresh store, writes REGION of the origin, takes snapshot 1, and overwrites
# every other chunk of the origin ("half": half of snapshot 1 is copied out, half still on
# the origin), then the rest ("full": its copies interleaved in the snapstore); then it takes
# snapshot 2 and overwrites REGION in one sequential pass ("seqfull": copies in order).  At
# each stage a fresh snapshot device (its mapping
# cache empty: "cold") is read with fio at depth 16: 4 KiB random reads, one pass over
# REGION, then, with what the first one cached, looped for LOOP_SECS ("second pass"); and,
# on another fresh device, 1 MiB sequential reads (depth 4) the same two ways.  The origin
# device is read the same ways, looped and in single passes (median of three each), and
# every snapshot number is also given as a ratio to the origin's of the same turn measured
# the same way: a single 1 MiB sequential pass of 32 MiB lasts a few hundredths of a second,
# where fio's start costs weigh (before session 20 the cold and second passes were single
# passes against a looped origin: the sequential rows read 0.05-0.23 of the origin then).
# The builds take turns, ROUNDS rounds, every other round in the reverse order; the table
# shows the median of each.
#
# The old build: $BUILD/bench/old/ddsnap and $BUILD/bench/old/dm-ddsnap.ko, made by
# `bash bench/build-old.sh REV`; without them only the new build is measured.
# Knobs: VM_ARG_ROUNDS (default 2).  Results: $RESULTS/vm-snapread.results.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"
. "$SRC/bench/lib.sh"

REGION=32M
REGION_BYTES=$((32 * 1024 * 1024))
LOOP_SECS=2
ROUNDS=${VM_ARG_ROUNDS:-2}
store=${DISKS[0]}
origin=${DISKS[1]}
out=$RESULTS/raw.txt
: >"$out"
srv_setup bench # sock and pidfile; each turn sets its own ddsnap

builds=(new)
mkdir -p /run/builds/new
install -m 0755 "$BUILD/bin/ddsnap" /run/builds/new/ddsnap
cp "$SRC/kernel/dm-ddsnap.ko" /run/builds/new/
if [[ -x $BUILD/bench/old/ddsnap && -f $BUILD/bench/old/dm-ddsnap.ko ]]; then
	builds=(old new)
	mkdir -p /run/builds/old
	install -m 0755 "$BUILD/bench/old/ddsnap" /run/builds/old/ddsnap
	cp "$BUILD/bench/old/dm-ddsnap.ko" /run/builds/old/
	log "old build: $(cat "$BUILD/bench/old/REV" 2>/dev/null || echo unknown)"
else
	log "no old build in $BUILD/bench/old: measuring the new build only"
fi
modprobe dm_mod
lsmod | grep -q '^dm_ddsnap' && rmmod dm_ddsnap

declare -A V # V[build,workload] = "v1 v2 ..." (one per round)

# snap_reads BUILD STAGE TAG: the snapshot read runs of one stage on snapshot TAG, each
# kind on a fresh device.
snap_reads()
{
	local b=$1 stage=$2 t=$3 dev=/dev/mapper/vol@$3
	dm_create "vol@$t" "0 $n ddsnap $store $origin $sock $t"
	V[$b,$stage-rand]+=" $(fio_run "$b-$stage-cold" "$dev" randread)"
	V[$b,$stage-rand2]+=" $(FIO_SECS=$LOOP_SECS fio_run "$b-$stage-cached" "$dev" randread)"
	log "$b $stage: $(dmsetup status "vol@$t")"
	dm_remove "vol@$t"
	dm_create "vol@$t" "0 $n ddsnap $store $origin $sock $t"
	V[$b,$stage-seq]+=" $(fio_run "$b-$stage-cold" "$dev" read)"
	V[$b,$stage-seq2]+=" $(FIO_SECS=$LOOP_SECS fio_run "$b-$stage-cached" "$dev" read)"
	dm_remove "vol@$t"
}

# every_other OFFSET: overwrites every other 16 KiB chunk of the origin's REGION, the first
# at OFFSET (0: the even chunks, 16k: the odd ones).
every_other()
{
	fio --name=half --filename=/dev/mapper/vol --size=$REGION --offset="$1" --rw=write:16k \
		--bs=16k --direct=1 --ioengine=libaio --iodepth=16 --eta=never --output=/dev/null ||
		fail "overwriting every other chunk from $1"
}

# turn BUILD: one build's measurements, from a fresh store.
turn()
{
	local b=$1 ddsnap=/run/builds/$1/ddsnap
	step "$b build"
	insmod "/run/builds/$b/dm-ddsnap.ko"
	must "$ddsnap" initialize -y "$store" "$origin"
	srv_start
	n=$("$ddsnap" status --size "$sock")
	dm_create vol "0 $n ddsnap $store $origin $sock -1"
	dd if=/dev/urandom of=/dev/mapper/vol bs=1M count=$((REGION_BYTES / 1048576)) \
		oflag=direct status=none
	V[$b,orig-rand]+=" $(FIO_SECS=$LOOP_SECS fio_med "$b-origin" /dev/mapper/vol randread)"
	V[$b,orig-seq]+=" $(FIO_SECS=$LOOP_SECS fio_med "$b-origin" /dev/mapper/vol read)"
	V[$b,orig-rand1]+=" $(fio_med "$b-origin-pass" /dev/mapper/vol randread)"
	V[$b,orig-seq1]+=" $(fio_med "$b-origin-pass" /dev/mapper/vol read)"
	must "$ddsnap" create "$sock" 1
	every_other 0
	snap_reads "$b" half 1
	every_other 16k
	snap_reads "$b" full 1
	must "$ddsnap" create "$sock" 2
	dd if=/dev/urandom of=/dev/mapper/vol bs=1M count=$((REGION_BYTES / 1048576)) \
		oflag=direct status=none
	snap_reads "$b" seqfull 2
	dm_remove vol
	srv_stop
	rmmod dm_ddsnap
}

# row LABEL KEY: one table row: each build's median and its ratio to that build's origin,
# measured the same way: a looped run (a second pass, KEY ending in 2, or the origin's looped
# rows) against the origin's looped runs, a single pass (cold) against its single passes.
row()
{
	local line="| $1 |" b m o kind=seq base=1
	[[ $2 != *rand* ]] || kind=rand
	[[ $2 != *2 && $2 != orig-rand && $2 != orig-seq ]] || base=""
	for b in "${builds[@]}"; do
		m=$(median <<<"${V[$b,$2]}")
		o=$(median <<<"${V[$b,orig-$kind$base]}")
		line+=" $m ($(awk -v v="$m" -v o="$o" 'BEGIN { printf "%.2f", v / o }')) |"
	done
	echo "$line"
}

# The builds take turns, the second round in the reverse order (and so on), so that neither
# always runs first in a round (the guest drifts within a run).
for ((r = 1; r <= ROUNDS; r++)); do
	mapfile -t order < <(round_order "$r" "${builds[@]}")
	for b in "${order[@]}"; do
		turn "$b"
	done
done

{
	echo "vm-snapread: $(date -u '+%F %T UTC'), kernel $KVER, TCG guest, $(nproc) vCPUs;" \
		"region $REGION, 16 KiB chunks, medians of $ROUNDS rounds; builds: ${builds[*]}"
	echo "4 KiB random reads in IOPS (depth 16), 1 MiB sequential in MiB/s (depth 4);" \
		"(ratio to the same build's origin reads)"
	echo
	echo "| workload |$(printf ' %s |' "${builds[@]}")"
	echo "|---|$(printf -- '---|%.0s' "${builds[@]}")"
	row "origin, 4 KiB random, looped" orig-rand
	row "origin, 4 KiB random, one pass" orig-rand1
	row "origin, 1 MiB sequential, looped" orig-seq
	row "origin, 1 MiB sequential, one pass" orig-seq1
	row "snapshot half copied out, 4 KiB random, cold" half-rand
	row "same, second pass" half-rand2
	row "snapshot half copied out, 1 MiB sequential, cold" half-seq
	row "same, second pass" half-seq2
	row "snapshot all copied out, 4 KiB random, cold" full-rand
	row "same, second pass" full-rand2
	row "snapshot all copied out, 1 MiB sequential, cold" full-seq
	row "same, second pass" full-seq2
	row "snapshot copied out by one sequential pass, 4 KiB random, cold" seqfull-rand
	row "same, second pass" seqfull-rand2
	row "snapshot copied out by one sequential pass, 1 MiB sequential, cold" seqfull-seq
	row "same, second pass" seqfull-seq2
} >"$RESULTS/vm-snapread.results"
cat "$RESULTS/vm-snapread.results"
