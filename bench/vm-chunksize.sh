#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 1G
# vm-timeout: 2400
#
# vm-chunksize (make bench): the chunk size's trade, first-write speed against snapshot
# space, at 16, 32 and 64 KiB (issue 21: the default is chosen by this measurement;
# ddsnap(8) says what the choice costs).  Each turn initializes a fresh store with one chunk
# size, starts the server and the origin device, and runs four workloads; the snapstore's
# used bytes (ddsnap status --json) before and after each first-write pass are the space a
# snapshot keeps for it:
#   rand   4 KiB random first writes at depth 16 over RAND_REGION, RAND_IO of them (a
#          sixteenth of its blocks: scattered small changes, the NAS case where a larger
#          chunk keeps more old data per write), the same blocks in every turn (seeded);
#          three passes, each after one more snapshot: IOPS (median) and space per pass;
#   dense  4 KiB random first writes at depth 16 to every block of DENSE_REGION once
#          (vm-snapshots' first-write workload: a larger chunk's one copy-out covers the
#          writes that follow into it), three passes likewise;
#   seq    1 MiB sequential first writes over SEQ_REGION, depth 4: MiB/s (median of three
#          passes, each after one more snapshot); its space is what it wrote at any size;
#   files  ext4 on the origin, FILES files of 4-64 KiB written and synced; a snapshot; then
#          FILE_IO of 4 KiB random rewrites in random files (fio, one seed, an fsync at the
#          end), as users editing documents in place: the snapshot's space for it (the
#          filesystem's own metadata and journal writes included), one pass.
# The chunk sizes take turns, ROUNDS rounds (the second in the reverse order); the table
# shows medians over rounds, and every number is also given as a ratio to 16 KiB's.
# Knobs: VM_ARG_ROUNDS (default 2), VM_ARG_SIZES (default "16k 32k 64k").
# Results: $RESULTS/vm-chunksize.results.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"
. "$SRC/bench/lib.sh"

RAND_REGION=256M
RAND_IO=16M # 4096 writes of 4 KiB
SEQ_REGION=32M
DENSE_REGION=32M
FILES=2000
FILE_IO=8M # 2048 rewrites of 4 KiB
ROUNDS=${VM_ARG_ROUNDS:-2}
read -r -a SIZES <<<"${VM_ARG_SIZES:-16k 32k 64k}"
store=${DISKS[0]}
origin=${DISKS[1]}
out=$RESULTS/raw.txt
: >"$out"
srv_setup bench
modprobe dm_mod
load_ddsnap

step "writing the store and the origin through once"
write_through "$store" "$origin"

declare -A V # V[size,key] = "v1 v2 ..." (one per pass or round)

# used: the snapstore's used bytes now.
used() { "$ddsnap" status --json "$sock" | jq '.snapstore.used_bytes'; }

# first_pass SIZE KEY TAG: one more snapshot (TAG), then one first-write pass of KEY (rand
# dense or seq) on the origin device: V[SIZE,KEY] gets the speed, V[SIZE,KEY-space] the bytes the
# snapshot kept for it.
first_pass()
{
	local c=$1 key=$2 u0 v kept
	must "$ddsnap" create "$sock" "$3"
	u0=$(used)
	case $key in
	rand) v=$(REGION=$RAND_REGION FIO_IO_SIZE=$RAND_IO fio_run "$c-rand" /dev/mapper/vol randwrite) ;;
	dense) v=$(REGION=$DENSE_REGION fio_run "$c-dense" /dev/mapper/vol randwrite) ;;
	*) v=$(REGION=$SEQ_REGION fio_run "$c-seq" /dev/mapper/vol write) ;;
	esac
	kept=$(($(used) - u0))
	V[$c,$key]+=" $v"
	V[$c,$key-space]+=" $kept"
	log "$c $key pass: $v, snapshot $3 kept $kept bytes"
}

# file_bytes: the sum of the sizes of the files under /mnt/vol.
file_bytes() { find /mnt/vol -type f -printf '%s\n' | awk '{ s += $1 } END { print s }'; }

# files SIZE TAG: the files workload; snapshot TAG is taken between the tree and the edits.
files()
{
	local c=$1 u0 bytes kept
	mkfs.ext4 -q -F -E nodiscard /dev/mapper/vol
	mkdir -p /mnt/vol
	mount /dev/mapper/vol /mnt/vol
	fio --name=tree --directory=/mnt/vol --nrfiles=$FILES --openfiles=64 --filesize=4k-64k --rw=write \
		--bs=4k --randseed=7 --end_fsync=1 --eta=never --output=/dev/null || fail "fio tree at $c"
	sync
	must "$ddsnap" create "$sock" "$2" # its suspend of the origin freezes the filesystem
	u0=$(used)
	bytes=$(file_bytes)
	# the same seed as the tree's: fio draws each file's size from it, and a size drawn
	# larger than the file's would grow the file, which is not an edit in place
	fio --name=tree --directory=/mnt/vol --nrfiles=$FILES --openfiles=64 --filesize=4k-64k --rw=randwrite \
		--bs=4k --io_size=$FILE_IO --file_service_type=random --randrepeat=1 --randseed=7 \
		--end_fsync=1 --eta=never --output=/dev/null || fail "fio edits at $c"
	sync
	[[ $(file_bytes) == "$bytes" ]] ||
		fail "the edits at $c changed the files' sizes: not edits in place"
	umount /mnt/vol
	kept=$(($(used) - u0))
	V[$c,files-space]+=" $kept"
	log "$c files: snapshot $2 kept $kept bytes"
}

# turn SIZE: one chunk size's measurements, on a fresh store.
turn()
{
	local c=$1
	step "chunk size $c"
	must "$ddsnap" initialize -y -c "$c" "$store" "$origin"
	srv_start
	n=$("$ddsnap" status --size "$sock")
	srv_dev_up -1
	for t in 1 2 3; do first_pass "$c" rand "$t"; done
	for t in 4 5 6; do first_pass "$c" dense "$t"; done
	for t in 7 8 9; do first_pass "$c" seq "$t"; done
	files "$c" 10
	dm_remove vol
	srv_stop
}

for ((r = 1; r <= ROUNDS; r++)); do
	mapfile -t order < <(round_order "$r" "${SIZES[@]}")
	for c in "${order[@]}"; do turn "$c"; done
done

# row LABEL KEY [MiB]: one table row, each size's median (in MiB for space) and its ratio to
# the first size's.
row()
{
	local line="| $1 |" m b="" c
	for c in "${SIZES[@]}"; do
		m=$(median <<<"${V[$c,$2]}")
		[[ -z ${3:-} ]] || m=$(awk -v v="$m" 'BEGIN { printf "%.1f", v / 1048576 }')
		[[ -n $b ]] || b=$m
		line+=" $m ($(awk -v v="$m" -v b="$b" 'BEGIN { printf "%.2f", b ? v / b : 0 }')) |"
	done
	echo "$line"
}

{
	echo "vm-chunksize: $(date -u '+%F %T UTC'), kernel $KVER, TCG guest, $(nproc) vCPUs;" \
		"medians over $ROUNDS rounds of three passes (files: one pass a round)"
	echo "rand: $RAND_IO of 4 KiB random first writes over $RAND_REGION, depth 16;" \
		"dense: every 4 KiB block of $DENSE_REGION once, depth 16;" \
		"seq: 1 MiB first writes over $SEQ_REGION, depth 4; files: ext4, $FILES files of" \
		"4-64 KiB, then $FILE_IO of 4 KiB rewrites in place"
	echo "(ratio to ${SIZES[0]})"
	echo
	echo "| workload |$(printf ' %s chunks |' "${SIZES[@]}")"
	echo "|---|$(printf -- '---|%.0s' "${SIZES[@]}")"
	row "4 KiB random first writes, IOPS" rand
	row "same, snapshot space per pass, MiB" rand-space MiB
	row "4 KiB random first writes, every block once, IOPS" dense
	row "same, snapshot space per pass, MiB" dense-space MiB
	row "1 MiB sequential first writes, MiB/s" seq
	row "same, snapshot space per pass, MiB" seq-space MiB
	row "file edits, snapshot space, MiB" files-space MiB
} >"$RESULTS/vm-chunksize.results"
cat "$RESULTS/vm-chunksize.results"
