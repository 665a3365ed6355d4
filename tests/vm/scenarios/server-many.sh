#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 256M
# vm-timeout: 1800
#
# server-many: 130 snapshots taken on the real server (ddsnapd) while a writer keeps
# writing, then all but 20 deleted in a seeded random order; after every delete the nearest
# newer survivor (which inherits the deleted one's deadlist; else the nearest older one)
# and, every 8th delete, one more at random still read exactly their image; at the end
# every survivor does, and the stopped store passes 'ddsnap check'.
#
# What needs many snapshots is where their number crosses a size: a LIST reply holds 64
# snapshots (CTL_LIST_PAGE), so 130 take three pages; a snapshot-table leaf holds 56 records
# and splits in halves of 28, so the creates split it into more than 3 leaves under an
# internal root (checked in the stopped store's dump), and the deletes merge them back into
# one root leaf of the 20 survivors (checked too).  An internal node holds 101 pointers: a
# third level would take thousands of snapshots (the 305 this scenario once took made none
# either).  NSNAP and NKEEP set other counts.
#
# The origin (1.25 MiB) has two parts.  Region A (the first MiB) is written between
# creates (seeded slices of a random pool, spans crossing chunk boundaries) and its checksum
# is taken right after each create, when it is also the snapshot's.  Region B (the last
# 256 KiB, 64 blocks of 4 KiB) is rewritten all the time by a background writer: write k
# puts the text "blk=<k mod 64> seq=<k>" in block k mod 64.  A snapshot's block i must hold
# the last write to i completed before its create started, or a write issued before the
# create returned (the writer notes k before issuing it and after it completed): neither
# older nor newer data, and never a block from another place.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

store=${DISKS[0]}
srv_setup many
vol=/dev/mapper/vol
NSNAP=${NSNAP:-130} # snapshots taken
NKEEP=${NKEEP:-20}  # survivors after the random deletes
MIB=$((1024 * 1024))
A_LEN=$MIB  # region A: [0, 1 MiB)
B_OFF=$A_LEN # region B: [1 MiB, 1.25 MiB), NB blocks of 4 KiB
NB=64
SIZE=$((B_OFF + NB * 4096))
seed=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
log "seed $seed (SEED=$seed to replay the create/write/delete choices)"
echo "$seed" >"$RESULTS/seed"
RANDOM=$seed

# The origin is a small slice of the second disk (small, so whole-image checks are cheap).
dm_create origin0 "0 $((SIZE / 512)) linear ${DISKS[1]} 0"
origin=/dev/mapper/origin0

# Process start-ups are what costs most in a TCG guest: writes copy slices of a random
# pool made once, and the writer's bookkeeping uses shell builtins only.
POOL_BLOCKS=1024
pattern "many-pool-$seed" $((POOL_BLOCKS * 4096)) >/tmp/pool
# put BLOCK COUNT: COUNT 4 KiB blocks of a random pool slice at block BLOCK, with O_DIRECT.
put()
{
	dd if=/tmp/pool of=$vol bs=4096 skip=$((RANDOM % (POOL_BLOCKS - $2))) seek="$1" count="$2" \
		oflag=direct status=none
}

# region_sha DEV OFF LEN: sha256 of LEN bytes at OFF read with O_DIRECT (64 KiB reads).
region_sha()
{
	dd if="$1" bs=65536 skip=$(($2 / 65536)) count=$(($3 / 65536)) iflag=direct status=none |
		sha256sum
}
# getnum FILE: the number in FILE (rewritten concurrently: retried until it reads whole).
getnum()
{
	local v=""
	until [[ $v =~ ^[0-9]+$ ]]; do
		read -r v <"$1" || true
	done
	echo "$v"
}

step "initialize, start the server, origin device"
must "$ddsnap" initialize "$store" "$origin"
srv_start
load_ddsnap
n=$("$ddsnap" status --size "$sock")
expect_eq "$n" $((SIZE / 512)) "volume size"
kmsg_mark
dm_create vol "0 $n ddsnap $store $origin $sock -1"

step "initial contents; the writer fills region B once, then keeps rewriting it"
dd if=/tmp/pool of=$vol bs=4096 count=$((A_LEN / 4096)) oflag=direct status=none
wdir=/tmp/writer
mkdir -p $wdir
mkfifo $wdir/never
for ((k = 0; k < NB; k++)); do
	printf '%-4095s\n' "blk=$k seq=$k"
done | dd of=$vol bs=65536 seek=$((B_OFF / 65536)) iflag=fullblock oflag=direct status=none
echo $((NB - 1)) >$wdir/issued
echo $((NB - 1)) >$wdir/done
(
	exec 5<>$wdir/never
	k=$NB
	while [[ ! -e $wdir/stop ]]; do
		echo "$k" >$wdir/issued
		printf '%-4095s\n' "blk=$((k % NB)) seq=$k" |
			dd of=$vol bs=4096 seek=$((B_OFF / 4096 + k % NB)) iflag=fullblock oflag=direct \
				status=none || {
			echo "writer: write $k failed" >&2
			exit 1
		}
		echo "$k" >$wdir/done
		k=$((k + 1))
		read -r -t 0.1 -u 5 _ || true # a pause without a process
	done
) &
writer=$!

# check_b FILE LO HI: FILE is a snapshot's region B; see the header for the rule.
check_b()
{
	awk -v lo="$2" -v hi="$3" -v nb=$NB '
		{
			i = NR - 1
			if ($1 != "blk=" i || $2 !~ /^seq=[0-9]+$/ || NF != 2) {
				printf "block %d holds \"%s %s\"\n", i, $1, $2; bad = 1; exit
			}
			s = substr($2, 5) + 0
			base = lo - ((lo - i) % nb + nb) % nb
			if (s % nb != i || s < base || s > hi) {
				printf "block %d: seq %d, expected %d or a write in (%d, %d]\n", i, s, base, lo, hi
				bad = 1; exit
			}
		}
		END { if (!bad && NR != nb) { printf "%d lines, expected %d\n", NR, nb; bad = 1 }
			exit bad }' "$1"
}

declare -A SHA_A LO HI
step "take $NSNAP snapshots while writing"
t0=$SECONDS
for ((t = 1; t <= NSNAP; t++)); do
	cnt=$((1 + RANDOM % 12))
	put $((RANDOM % (A_LEN / 4096 - cnt))) $cnt
	LO[$t]=$(getnum $wdir/done)
	must "$ddsnap" create "$sock" "$t"
	HI[$t]=$(getnum $wdir/issued)
	SHA_A[$t]=$(region_sha $vol 0 "$A_LEN")
	echo "$t ${LO[$t]} ${HI[$t]} ${SHA_A[$t]}" >>"$RESULTS/snapshots"
	kill -0 $writer 2>/dev/null || fail "the writer died"
	((t % 50)) || log "$t snapshots, writer at write $(getnum $wdir/done), $((SECONDS - t0)) s"
done
: >$wdir/stop
wait $writer || fail "the writer failed"
final_k=$(getnum $wdir/done)
log "$NSNAP snapshots in $((SECONDS - t0)) s; the writer made $((final_k - NB + 1)) writes"
expect_eq "$("$ddsnap" list "$sock" | wc -l)" "$NSNAP" "snapshots listed"

# table_shape: the snapshot table's nodes in the stopped store, "level entries" each.
table_shape()
{
	"$ddsnap" dump -n "$store" | sed -n 's/^node tree=snapshots .* level=\([0-9]*\) entries=\([0-9]*\) .*/\1 \2/p'
}

step "the snapshot table split: the server stopped, its dump read, started again"
dm_remove vol
srv_stop
table_shape >"$RESULTS/table.created"
cat "$RESULTS/table.created"
leaves=$(grep -c '^0 ' "$RESULTS/table.created" || true)
expect_eq "$(head -n 1 "$RESULTS/table.created")" "1 $leaves" "the table's root: an internal node over its $leaves leaves"
((leaves > 3)) || fail "$NSNAP snapshots fill only $leaves snapshot-table leaves"
srv_start
dm_create vol "0 $n ddsnap $store $origin $sock -1"

# verify TAG: snapshot TAG's device reads its image (regions A and B, and nothing beyond).
# The first time, by region A's checksum and region B's rule; the image that passed is
# remembered (FULL), and later checks compare the whole device with it: a snapshot never
# changes, and one pipeline costs a TCG guest far less than the five processes of a check.
declare -A FULL
verify()
{
	local t=$1 dev="/dev/mapper/vol@$1" sum
	dm_create "vol@$t" "0 $n ddsnap $store $origin $sock $t"
	if [[ -n ${FULL[$t]:-} ]]; then
		sum=$(dd if="$dev" bs=65536 iflag=direct status=none | sha256sum)
		dm_remove "vol@$t"
		expect_eq "$sum" "${FULL[$t]}" "snapshot $t image (as verified before)"
		return 0
	fi
	dd if="$dev" of=/tmp/snap bs=65536 iflag=direct status=none
	dm_remove "vol@$t"
	expect_eq "$(head -c "$A_LEN" /tmp/snap | sha256sum)" "${SHA_A[$t]}" "snapshot $t region A"
	tail -c +$((B_OFF + 1)) /tmp/snap >/tmp/b
	check_b /tmp/b "${LO[$t]}" "${HI[$t]}" || fail "snapshot $t region B (writes ${LO[$t]}..${HI[$t]})"
	FULL[$t]=$(sha256sum </tmp/snap)
}

step "the origin holds the last writes"
dd if=$vol bs=65536 skip=$((B_OFF / 65536)) count=$(((SIZE - B_OFF) / 65536)) iflag=direct \
	status=none >/tmp/b
check_b /tmp/b "$final_k" "$final_k" || fail "origin region B"

step "a first look at a few snapshots"
for t in 1 2 $((NSNAP / 2)) $((NSNAP - 1)) "$NSNAP"; do
	verify "$t"
done

step "delete $((NSNAP - NKEEP)) snapshots in random order (seed $seed)"
order=()
for ((t = 1; t <= NSNAP; t++)); do
	order+=("$t")
done
for ((i = NSNAP - 1; i > 0; i--)); do
	j=$((RANDOM % (i + 1)))
	x=${order[i]}
	order[i]=${order[j]}
	order[j]=$x
done
declare -A LIVE
for ((t = 1; t <= NSNAP; t++)); do
	LIVE[$t]=1
done
t0=$SECONDS
checks=0
for ((i = 0; i < NSNAP - NKEEP; i++)); do
	t=${order[i]}
	must "$ddsnap" delete "$sock" "$t"
	echo "$t" >>"$RESULTS/deleted"
	unset "LIVE[$t]"
	# The nearest survivors on either side inherit or free what $t held.
	for ((p = t - 1; p >= 1; p--)); do
		[[ -n ${LIVE[$p]:-} ]] && break
	done
	for ((q = t + 1; q <= NSNAP; q++)); do
		[[ -n ${LIVE[$q]:-} ]] && break
	done
	# Each check costs seconds in a TCG guest: one neighbour per delete (the newer one, which
	# inherits the deleted one's deadlist), and every 8th delete one survivor at random.
	want=()
	if ((q <= NSNAP)); then
		want+=("$q")
	elif ((p >= 1)); then
		want+=("$p")
	fi
	if ((i % 8 == 7)); then
		mapfile -t live < <(printf '%s\n' "${!LIVE[@]}")
		want+=("${live[RANDOM % ${#live[@]}]}")
	fi
	for v in "${want[@]}"; do
		verify "$v"
		checks=$((checks + 1))
	done
	(((i + 1) % 50)) || log "$((i + 1)) deleted, $checks snapshot checks, $((SECONDS - t0)) s"
done
must_fail "$ddsnap" delete "$sock" "${order[0]}"
expect_eq "$("$ddsnap" list "$sock" | wc -l)" "$NKEEP" "snapshots listed after the deletes"
"$ddsnap" status "$sock" >"$RESULTS/status.txt"

step "every survivor reads its image"
for t in $(printf '%s\n' "${!LIVE[@]}" | sort -n); do
	verify "$t"
done
log "the $NKEEP survivors are intact"

step "stop the server, check the store"
dm_remove vol
srv_stop
must "$ddsnap" check "$store"
expect_eq "$(table_shape)" "0 $NKEEP" "the snapshot table after the deletes (one root leaf of the survivors)"
expect_no_kmsg 'BUG|WARNING|Oops|ddsnap.*(error|fail)' "kernel log"
rmmod dm_ddsnap
dm_remove origin0
log "server-many: $NSNAP snapshots, $((NSNAP - NKEEP)) deleted, every survivor intact"
