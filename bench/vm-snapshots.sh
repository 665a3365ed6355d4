#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 9 1G
# vm-timeout: 2400
#
# vm-snapshots (make bench): what snapshots cost, as ratios against the raw virtio disk, for
# the ddsnap target with the real server (ddsnapd), the kernel's dm-snapshot and dm-thin,
# all measured in this one guest run.  fio (libaio, O_DIRECT) on the first REGION bytes of
# each device, filled once before the first snapshot:
#   4 KiB random writes, iodepth 16, every block once (randrepeat, random map), and
#   1 MiB sequential writes, iodepth 4,
# each as the first write after a fresh snapshot ("first": copy-outs; the median of three
# passes, each after one more snapshot) and again ("rewrite": the median of three runs of
# LOOP_SECS each, as for the origin reads and the raw disk), with 1, 16, 256 and 1,000
# snapshots in existence (two more for the later passes; dm-snapshot: 1 and 16 only, each
# of its snapshots is a device that gets its own copy of every chunk); then 4 KiB random
# and 1 MiB sequential reads of the origin and of the oldest snapshot.  The raw disk is measured
# at the start, before each snapshot count and at the end; ratios are to the median of those
# runs, and the table shows their spread (the noise floor of the run).  Results:
# $RESULTS/vm-snapshots.results (the table) and $RESULTS/raw.txt (one line per run).
# Snapshots are created in a loop of 'ddsnap create' (with the origin device down when
# there are many to make) and, for dm-thin, of 'create_snap' messages; no snapshot devices
# except for the read runs.  A TCG guest on a shared host is noisy: only
# the ratios within one run mean anything.
#
# ddsnap runs twice, side by side: with its default 16 KiB chunks, and with 64 KiB chunks
# (dm-thin's block size here), so first writes can be compared at the same granularity: a
# 4 KiB first write copies a whole chunk or block, and a 64 KiB one covers 16 such writes.
#
# Knobs (host environment, passed in by run-one.sh): VM_ARG_COUNTS="1 16" (snapshot counts,
# default 1 16 256 1000), VM_ARG_SKIP="dmsnap thin dd64" (configurations to leave out).
set -euo pipefail
. "$SRC/tests/vm/lib.sh"
. "$SRC/bench/lib.sh"

REGION=32M
REGION_BYTES=$((32 * 1024 * 1024))
LOOP_SECS=2 # rewrites, origin reads and the raw disk loop this long (fio_run)
read -r -a COUNTS <<<"${VM_ARG_COUNTS:-1 16 256 1000}"
skip() { [[ " ${VM_ARG_SKIP:-} " == *" $1 "* ]]; }
install -m 0755 "$BUILD/bin/ddsnap" /tmp/ddsnap # the shared tree may rebuild its copy
ddsnap=/tmp/ddsnap
raw=${DISKS[0]}
dd_store=${DISKS[1]}
dd_origin=${DISKS[2]}
ds_origin=${DISKS[3]}
ds_cow=${DISKS[4]}
thin_data=${DISKS[5]}
thin_meta=${DISKS[6]}
dd64_store=${DISKS[7]}
dd64_origin=${DISKS[8]}
out=$RESULTS/raw.txt
: >"$out"

# first_med KEY LABEL DEV KIND SNAP...: R[KEY] becomes the median of three first writes,
# each after one more snapshot made by the command SNAP...  One first-write pass lasts
# 0.1-2 s, short enough for one hiccup of a TCG guest on a shared host to halve it (the
# same sequential pass measured 129 and 288 MiB/s in two rounds of one scratch run).  Not
# in a subshell: SNAP counts the snapshots it made in shell variables.
first_med()
{
	local key=$1 label=$2 dev=$3 kind=$4 v=""
	shift 4
	for _ in 1 2 3; do
		"$@"
		v+=" $(fio_run "$label" "$dev" "$kind")"
	done
	R[$key]=$(median <<<"$v")
}

declare -A R # R[config,workload,count] = value
declare -A RAWS # RAWS[workload] = "v1 v2 ...": every raw run

# raw_runs: one more measurement of the raw disk; R[raw,*,0] becomes the median so far.
raw_runs()
{
	local w v
	step "raw virtio disk"
	for w in rand:randwrite seq:write rread:randread sread:read; do
		v=$(FIO_SECS=$LOOP_SECS fio_run raw "$raw" "${w#*:}")
		RAWS[${w%%:*}]="${RAWS[${w%%:*}]:-} $v"
		R[raw,${w%%:*},0]=$(median <<<"${RAWS[${w%%:*}]}")
	done
}
# spread W: "min-max over N runs" of the raw runs of workload W.
spread()
{
	tr ' ' '\n' <<<"${RAWS[$1]}" | sed '/^$/d' | sort -g |
		awk '{ v[NR] = $1 } END { printf "%s-%s over %d runs", v[1], v[NR], NR }'
}

# The guest's disks are sparse files on the host, and the first write to any part of one
# makes the host allocate blocks: a copy-out or a dm-thin block landing on never-written
# space measured half the speed of one landing on space written before (1 MiB sequential
# first writes at 64 KiB chunks, 131-145 against 246-285 MiB/s in one scratch run).  So every
# device whose writes go to new places as snapshots accumulate is written through once
# first, as a real disk would not need; the raw disk and the origins are filled (their
# measured region) before they are measured anyway.
step "writing the snapshot stores and pools once (host allocation out of the numbers)"
write_through "$dd_store" "$dd64_store" "$ds_cow" "$thin_data"

fill "$raw"
raw_runs

# dm-linear over the raw disk: what any device-mapper target costs in this guest, the floor
# under every ratio below.
step "dm-linear over the raw disk"
dm_create lin "0 $((REGION_BYTES / 512)) linear $raw 0"
R[linear,rand_re,0]=$(FIO_SECS=$LOOP_SECS fio_med linear /dev/mapper/lin randwrite)
R[linear,seq_re,0]=$(FIO_SECS=$LOOP_SECS fio_med linear /dev/mapper/lin write)
R[linear,rread,0]=$(FIO_SECS=$LOOP_SECS fio_med linear /dev/mapper/lin randread)
R[linear,sread,0]=$(FIO_SECS=$LOOP_SECS fio_med linear /dev/mapper/lin read)
dm_remove lin

# ---- the table -------------------------------------------------------------------------
# cell CONFIG KEY COUNT RAWKEY: "value (ratio)" or "-".
cell()
{
	local v=${R[$1,$2,$3]:-} r=${R[raw,$4,0]}
	[[ -n $v ]] || {
		echo "-"
		return
	}
	awk -v v="$v" -v r="$r" 'BEGIN { printf "%s (%.2f)", v, v / r }'
}
# table: writes $RESULTS/vm-snapshots.results from what was measured so far.
table()
{
	echo "vm-snapshots: $(date -u '+%F %T UTC'), kernel $KVER, TCG guest, 2 vCPUs; region $REGION"
	echo "4 KiB random writes in IOPS, 1 MiB sequential in MiB/s; (ratio to the raw disk)"
	echo "raw disk (median; spread): rand write ${R[raw,rand,0]} IOPS ($(spread rand))," \
		"seq write ${R[raw,seq,0]} MiB/s ($(spread seq)), rand read ${R[raw,rread,0]} IOPS" \
		"($(spread rread)), seq read ${R[raw,sread,0]} MiB/s ($(spread sread))"
	echo "dm-linear over the raw disk (the device-mapper floor): rand write" \
		"$(cell linear rand_re 0 rand), seq write $(cell linear seq_re 0 seq), rand read" \
		"$(cell linear rread 0 rread), seq read $(cell linear sread 0 sread)"
	echo "no snapshot: ddsnap rand write $(cell ddsnap base 0 rand), dm-thin $(cell thin base 0 rand)"
	if [[ -n ${R[raw,irand,0]:-} ]]; then
		echo "taking turns (median of 3 rounds): 4 KiB random rewrites: raw ${R[raw,irand,0]}" \
			"IOPS, dm-linear $(cell linear irand 0 irand), ddsnap origin $(cell ddsnap irand 0 irand);" \
			"origin 4 KiB random reads: raw ${R[raw,iread,0]} IOPS, dm-linear" \
			"$(cell linear iread 0 iread), ddsnap $(cell ddsnap iread 0 iread); origin 1 MiB" \
			"sequential reads: raw ${R[raw,isread,0]} MiB/s, dm-linear" \
			"$(cell linear isread 0 isread), ddsnap $(cell ddsnap isread 0 isread)"
	fi
	echo
	echo "| workload | snapshots | ddsnap | ddsnap, 64 KiB chunks | dm-snapshot | dm-thin |"
	echo "|---|---:|---:|---:|---:|---:|"
	for w in "rand:4 KiB random, first write:rand" "rand_re:4 KiB random, rewrite:rand" \
		"seq:1 MiB sequential, first write:seq" "seq_re:1 MiB sequential, rewrite:seq"; do
		IFS=: read -r key name rawkey <<<"$w"
		for c in "${COUNTS[@]}"; do
			echo "| $name | $c | $(cell ddsnap "$key" "$c" "$rawkey") |" \
				"$(cell dd64 "$key" "$c" "$rawkey") |" \
				"$(cell dmsnap "$key" "$c" "$rawkey") | $(cell thin "$key" "$c" "$rawkey") |"
		done
	done
	echo "| 4 KiB random read, origin | all | $(cell ddsnap rread 0 rread) | - |" \
		"$(cell dmsnap rread 0 rread) | $(cell thin rread 0 rread) |"
	echo "| 1 MiB sequential read, origin | all | $(cell ddsnap sread 0 sread) | - |" \
		"$(cell dmsnap sread 0 sread) | $(cell thin sread 0 sread) |"
	echo "| 4 KiB random read, oldest snapshot | all | $(cell ddsnap snap_rread 0 rread) | - |" \
		"$(cell dmsnap snap_rread 0 rread) | $(cell thin snap_rread 0 rread) |"
	echo "| same, second pass (ddsnap: mappings cached) | all |" \
		"$(cell ddsnap snap_rread2 0 rread) | - | - | - |"
	echo "| 1 MiB sequential read, oldest snapshot | all | $(cell ddsnap snap_sread 0 sread) | - |" \
		"$(cell dmsnap snap_sread 0 sread) | $(cell thin snap_sread 0 sread) |"
	echo
	echo "dm-snapshot: persistent, 16 KiB chunks, one COW device per snapshot (1 and 16 only)."
	echo "dm-thin: 64 KiB data blocks, skip_block_zeroing.  ddsnap: 16 KiB chunks (the default)"
	echo "and 64 KiB chunks (a second store and server)."
} >"$RESULTS/vm-snapshots.results"

# ---- dm-snapshot -----------------------------------------------------------------------
step "dm-snapshot (persistent, 16 KiB chunks)"
modprobe dm-snapshot
ds_sectors=$((REGION_BYTES / 512))
cow_sectors=$((40 * 1024 * 1024 / 512))
dm_create dsbase "0 $ds_sectors linear $ds_origin 0"
fill /dev/mapper/dsbase
dm_create dsorig "0 $ds_sectors snapshot-origin /dev/mapper/dsbase"
ds_snaps()
{
	local i
	for ((i = 0; i < $1; i++)); do
		dd if=/dev/zero of="$ds_cow" bs=4096 seek=$((i * cow_sectors / 8)) count=1 \
			oflag=direct status=none
		dm_create "dscow$i" "0 $cow_sectors linear $ds_cow $((i * cow_sectors))"
		dmsetup suspend dsorig
		dm_create "dssnap$i" "0 $ds_sectors snapshot /dev/mapper/dsbase /dev/mapper/dscow$i P 32"
		dmsetup resume dsorig
	done
}
ds_drop()
{
	local i
	for ((i = 0; i < $1; i++)); do
		dm_remove "dssnap$i"
		dm_remove "dscow$i"
	done
}
for c in 1 16; do
	skip dmsnap && break
	step "dm-snapshot with $c snapshots"
	ds_snaps "$c"
	R[dmsnap,rand,$c]=$(fio_run "dmsnap-$c-first" /dev/mapper/dsorig randwrite)
	R[dmsnap,rand_re,$c]=$(FIO_SECS=$LOOP_SECS fio_med "dmsnap-$c-rewrite" /dev/mapper/dsorig \
		randwrite)
	ds_drop "$c"
	ds_snaps "$c"
	R[dmsnap,seq,$c]=$(fio_run "dmsnap-$c-first" /dev/mapper/dsorig write)
	R[dmsnap,seq_re,$c]=$(FIO_SECS=$LOOP_SECS fio_med "dmsnap-$c-rewrite" /dev/mapper/dsorig write)
	if ((c == 16)); then
		R[dmsnap,rread,0]=$(FIO_SECS=$LOOP_SECS fio_med dmsnap-origin /dev/mapper/dsorig randread)
		R[dmsnap,sread,0]=$(FIO_SECS=$LOOP_SECS fio_med dmsnap-origin /dev/mapper/dsorig read)
		R[dmsnap,snap_rread,0]=$(fio_run dmsnap-snap /dev/mapper/dssnap0 randread)
		R[dmsnap,snap_sread,0]=$(fio_run dmsnap-snap /dev/mapper/dssnap0 read)
	fi
	ds_drop "$c"
done
dm_remove dsorig
dm_remove dsbase
table

# ---- ddsnap and dm-thin, side by side, count by count ---------------------------------
# The ddsnap configurations: KEY -> store and origin disks.
declare -A DSTORE=([ddsnap]=$dd_store [dd64]=$dd64_store)
declare -A DORIGIN=([ddsnap]=$dd_origin [dd64]=$dd64_origin)
declare -A DSOCK DDEV DTAG DSECT
# dd_start KEY CHUNK: a store with CHUNK-sized chunks on KEY's disks, its server on socket
# DSOCK[KEY], and its origin device DDEV[KEY] (a name in /dev/mapper), filled once.
dd_start()
{
	local key=$1 chunk=$2
	step "ddsnap ($chunk chunks): initialize, server, origin device"
	DSOCK[$key]=/run/ddsnap-bench-$key.sock
	DDEV[$key]=vol-$key
	DTAG[$key]=0
	must "$ddsnap" initialize -c "$chunk" "${DSTORE[$key]}" "${DORIGIN[$key]}"
	must "$ddsnap" server -l "$RESULTS/server-$key.log" -p "/run/ddsnapd-$key.pid" \
		"${DSTORE[$key]}" "${DORIGIN[$key]}" "${DSOCK[$key]}"
	DSECT[$key]=$("$ddsnap" status --size "${DSOCK[$key]}")
	dd_table "$key"
	fill "/dev/mapper/${DDEV[$key]}"
}
# dd_table KEY: creates KEY's origin device.
dd_table()
{
	dm_create "${DDEV[$1]}" "0 ${DSECT[$1]} ddsnap ${DSTORE[$1]} ${DORIGIN[$1]} ${DSOCK[$1]} -1"
}
load_ddsnap
dd_start ddsnap 16k
vol=/dev/mapper/${DDEV[ddsnap]}
sock=${DSOCK[ddsnap]}
n=${DSECT[ddsnap]}
R[ddsnap,base,0]=$(fio_run ddsnap-nosnap "$vol" randwrite)
skip dd64 || dd_start dd64 64k
# dd_snap_to KEY N: KEY's snapshots up to tag N.  With many to make, the origin device is
# taken down first, so 'ddsnap create' has no device to suspend and resume (the server's
# work is the same; the target's cache is empty after it reconnects, as after any create).
dd_snap_to()
{
	local key=$1 t0=$SECONDS down=0
	if (($2 - DTAG[$key] > 4)); then
		dm_remove "${DDEV[$key]}"
		down=1
	fi
	while ((DTAG[$key] < $2)); do
		DTAG[$key]=$((DTAG[$key] + 1))
		"$ddsnap" create "${DSOCK[$key]}" "${DTAG[$key]}" >/dev/null ||
			fail "ddsnap create ${DTAG[$key]} on $key"
	done
	((down == 0)) || dd_table "$key"
	log "ddsnap $key: ${DTAG[$key]} snapshots ($((SECONDS - t0)) s for the last ones)"
}
dd_snap_next() { dd_snap_to "$1" $((DTAG[$1] + 1)); }

if ! skip thin; then
	step "dm-thin (64 KiB data blocks)"
	modprobe dm-thin-pool
	dd if=/dev/zero of="$thin_meta" bs=4096 count=1 oflag=direct status=none
	meta_sectors=$((128 * 1024 * 1024 / 512))
	dm_create tmeta "0 $meta_sectors linear $thin_meta 0"
	pool_table="0 $(dev_sectors "$thin_data") thin-pool /dev/mapper/tmeta $thin_data 128 0 1"
	dm_create pool "$pool_table skip_block_zeroing"
	dmsetup message pool 0 "create_thin 0"
	dm_create thin "0 $((REGION_BYTES / 512)) thin /dev/mapper/pool 0"
	fill /dev/mapper/thin
	R[thin,base,0]=$(fio_run thin-nosnap /dev/mapper/thin randwrite)
fi
tid=0
thin_snap_to()
{
	local t0=$SECONDS
	while ((tid < $1)); do
		tid=$((tid + 1))
		# No I/O is in flight here, so the origin need not be suspended for each one.
		dmsetup message pool 0 "create_snap $tid 0" || fail "create_snap $tid"
	done
	log "dm-thin: $tid snapshots ($((SECONDS - t0)) s for the last ones)"
}
thin_snap_next() { thin_snap_to $((tid + 1)); }

for c in "${COUNTS[@]}"; do
	raw_runs
	for key in ddsnap dd64; do
		[[ $key == ddsnap ]] || ! skip "$key" || continue
		step "ddsnap $key with $c snapshots"
		dev=/dev/mapper/${DDEV[$key]}
		dd_snap_to "$key" $((c - 1))
		first_med "$key,rand,$c" "$key-$c-first" "$dev" randwrite dd_snap_next "$key"
		R[$key,rand_re,$c]=$(FIO_SECS=$LOOP_SECS fio_med "$key-$c-rewrite" "$dev" randwrite)
		first_med "$key,seq,$c" "$key-$c-first" "$dev" write dd_snap_next "$key"
		R[$key,seq_re,$c]=$(FIO_SECS=$LOOP_SECS fio_med "$key-$c-rewrite" "$dev" write)
	done
	skip thin && {
		table
		continue
	}
	step "dm-thin with $c snapshots"
	thin_snap_to $((c - 1))
	first_med "thin,rand,$c" "thin-$c-first" /dev/mapper/thin randwrite thin_snap_next
	R[thin,rand_re,$c]=$(FIO_SECS=$LOOP_SECS fio_med "thin-$c-rewrite" /dev/mapper/thin randwrite)
	first_med "thin,seq,$c" "thin-$c-first" /dev/mapper/thin write thin_snap_next
	R[thin,seq_re,$c]=$(FIO_SECS=$LOOP_SECS fio_med "thin-$c-rewrite" /dev/mapper/thin write)
	table
done

# Rewrites once more, the three devices taking turns, three rounds: what the target's
# cache-hit path costs with the noise of time taken out (every origin chunk is safe now).
# Origin reads the same way, LOOP_SECS each.
step "interleaved 4 KiB random rewrites and origin reads: raw, dm-linear, ddsnap origin"
dm_create lin "0 $((REGION_BYTES / 512)) linear $raw 0"
declare -A T # T[config,workload] = "v1 v2 v3"
for _ in 1 2 3; do
	for w in irand:randwrite:$LOOP_SECS iread:randread:$LOOP_SECS isread:read:$LOOP_SECS; do
		IFS=: read -r key kind secs <<<"$w"
		T[raw,$key]+=" $(FIO_SECS=$secs fio_run raw-turn "$raw" "$kind")"
		T[linear,$key]+=" $(FIO_SECS=$secs fio_run linear-turn /dev/mapper/lin "$kind")"
		T[ddsnap,$key]+=" $(FIO_SECS=$secs fio_run ddsnap-turn "$vol" "$kind")"
	done
done
dm_remove lin
for k in "${!T[@]}"; do
	R[$k,0]=$(median <<<"${T[$k]}")
done

step "reads: origins and oldest snapshots"
R[ddsnap,rread,0]=$(FIO_SECS=$LOOP_SECS fio_med ddsnap-origin "$vol" randread)
R[ddsnap,sread,0]=$(FIO_SECS=$LOOP_SECS fio_med ddsnap-origin "$vol" read)
dm_create "vol@1" "0 $n ddsnap $dd_store $dd_origin $sock 1"
R[ddsnap,snap_rread,0]=$(fio_run ddsnap-snap1 "/dev/mapper/vol@1" randread)
R[ddsnap,snap_rread2,0]=$(fio_run ddsnap-snap1-cached "/dev/mapper/vol@1" randread)
R[ddsnap,snap_sread,0]=$(fio_run ddsnap-snap1 "/dev/mapper/vol@1" read)
"$ddsnap" status "$sock" | head -n 12 >"$RESULTS/ddsnap-status.txt" || true
log "$(dmsetup status "${DDEV[ddsnap]}")"
dm_remove "vol@1"
dm_remove "${DDEV[ddsnap]}"
kill -TERM "$(cat /run/ddsnapd-ddsnap.pid)"
if ! skip dd64; then
	dm_remove "${DDEV[dd64]}"
	kill -TERM "$(cat /run/ddsnapd-dd64.pid)"
fi
raw_runs
if ! skip thin; then
	R[thin,rread,0]=$(FIO_SECS=$LOOP_SECS fio_med thin-origin /dev/mapper/thin randread)
	R[thin,sread,0]=$(FIO_SECS=$LOOP_SECS fio_med thin-origin /dev/mapper/thin read)
	dm_create tsnap "0 $((REGION_BYTES / 512)) thin /dev/mapper/pool 1"
	R[thin,snap_rread,0]=$(fio_run thin-snap1 /dev/mapper/tsnap randread)
	R[thin,snap_sread,0]=$(fio_run thin-snap1 /dev/mapper/tsnap read)
	log "$(dmsetup status pool)"
	dm_remove tsnap
	dm_remove thin
	dm_remove pool
	dm_remove tmeta
fi
table
cat "$RESULTS/vm-snapshots.results"
