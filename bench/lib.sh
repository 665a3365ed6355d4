# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
# bench/lib.sh: fio runs for the VM benchmarks (bench/vm-*.sh), sourced after
# tests/vm/lib.sh.  The benchmark sets REGION (fio's --size, e.g. 32M), REGION_BYTES (the
# same in bytes) and out (a file that gets one "LABEL KIND VALUE" line per run).

# fio_run LABEL DEV KIND: one fio run over REGION of DEV; KIND is randwrite|write|randread|
# read.  Prints IOPS (4 KiB random) or MiB/s (1 MiB sequential) and logs it.  With FIO_SECS
# set, the run loops over the region for that many seconds instead of one pass: for runs
# that leave the device as they found it (rewrites, reads, the raw disk), where one pass of
# 32 MiB lasts a tenth of a second or less (a 1 MiB sequential rewrite, 0.03 s), too short
# to measure.  With FIO_IO_SIZE set, one pass moves that many bytes (fio's --io_size) over
# REGION instead of all of it: scattered writes to part of a region's blocks.
fio_run()
{
	local label=$1 dev=$2 kind=$3 bs=4k depth=16 json v timed=()
	case $kind in
	write | read) bs=1M depth=4 ;;
	esac
	[[ -z ${FIO_SECS:-} ]] || timed=(--time_based --runtime="$FIO_SECS")
	[[ -z ${FIO_IO_SIZE:-} ]] || timed+=(--io_size="$FIO_IO_SIZE")
	fio --name=b --filename="$dev" --size="$REGION" --rw="$kind" --bs=$bs \
		--ioengine=libaio --iodepth=$depth --direct=1 --randrepeat=1 --randseed=11 \
		"${timed[@]}" --output-format=json --output=/tmp/fio.json >/dev/null 2>&1 ||
		fail "fio $label $kind on $dev failed"
	json=$(cat /tmp/fio.json)
	case $kind in
	randwrite | write) v=$(jq '.jobs[0].write' <<<"$json") ;;
	*) v=$(jq '.jobs[0].read' <<<"$json") ;;
	esac
	[[ $(jq '.jobs[0].error' <<<"$json") == 0 ]] || fail "fio $label $kind: error"
	case $kind in
	randwrite | randread) v=$(jq '.iops | floor' <<<"$v") ;;
	*) v=$(jq '.bw_bytes / 1048576 | . * 10 | floor / 10' <<<"$v") ;;
	esac
	# shellcheck disable=SC2154 # the benchmark sets out (above)
	echo "$label $kind $v" >>"$out"
	log "$label $kind: $v" >&2
	echo "$v"
}

# fill DEV: writes REGION once (so first writes below are copy-outs, not allocations).
fill() { dd if=/dev/zero of="$1" bs=1M count=$((REGION_BYTES / 1048576)) oflag=direct status=none; }

# median: the median of the numbers on stdin (whitespace separated).
median()
{
	tr ' ' '\n' | sed '/^$/d' | sort -g |
		awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# fio_med LABEL DEV KIND: the median of three fio_run (for runs that leave the device as
# they found it: rewrites and reads, where one noisy run would decide a ratio).
fio_med()
{
	local a b c
	a=$(fio_run "$@")
	b=$(fio_run "$@")
	c=$(fio_run "$@")
	echo "$a $b $c" | median
}

# write_through DEV...: writes every byte of each DEV once.  The guest's disks are sparse
# files on the host, and the first write to any part of one makes the host allocate: a
# device whose writes go to new places as snapshots accumulate (a snapstore, a pool) would
# otherwise measure the host's allocation (BENCHMARKS.md, vm-snapshots).
write_through()
{
	local d
	for d in "$@"; do
		dd if=/dev/zero of="$d" bs=1M count=$(($(dev_sectors "$d") / 2048)) oflag=direct \
			status=none || fail "writing $d through"
	done
}

# round_order R ITEM...: the ITEMs one a line, reversed in even rounds R, so that taking
# turns in that order no item always goes first (the guest drifts within a run).
round_order()
{
	local r=$1
	shift
	if ((r % 2)); then printf '%s\n' "$@"; else printf '%s\n' "$@" | tac; fi
}
