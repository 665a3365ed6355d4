#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# open.sh - activation time and memory of `ddsnap server` on big stores (issue 22), and the
# time of `ddsnap list` / `status` as the snapshot count grows.
#
#   open.sh [-n "1e5 1e6"] [-s "10 1000"] [-r runs] [-d dir] [-u] <ddsnap> [<ddsnap> ...]
#
# For each exception count n and snapshot count S, a store is made for each binary by its own
# `ddsnap restore` of the same generated dump text (bench/gen-dump.py: one exception per
# chunk, 16 KiB chunks, every snapshot owning n/S exceptions; sparse files, no data copied):
# so a binary from before persisted deadlists gets a store of its format, and a newer one a
# store with them (an older binary refuses a newer store, and a newer one would upgrade an
# older store at its first open).  Each binary then opens its store -r times (best kept):
# the time from `ddsnap server -f` starting to its first answered `ddsnap status`, the server's peak (VmHWM) and resident (VmRSS)
# memory at that moment, and the times of one `ddsnap list` and one `ddsnap status`.  The
# server reads its metadata with O_DIRECT, so every open is cold; the files' cached pages
# are dropped (POSIX_FADV_DONTNEED) before each open anyway.  With several binaries the
# last columns are the first binary's time and memory over each one's (old/new ratios).
# Stores are kept in <dir> (default /var/tmp/ddsnap-bench-open) between runs, one per binary
# position (remade when that binary changed): a store of 10^7 exceptions takes a few minutes
# to make and 460 MB of metadata (plus sparse files; about 0.3 GB more with persisted
# deadlists).
#
# -u measures the upgrade at open instead (doc/format.md, "Upgrade"): each binary's store is
# made by its `ddsnap restore -O` (the format before persisted deadlists), copied aside, and
# put back before every open, so every open upgrades it; the last column is the upgrade's
# own time from the server's log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sizes="1e5 1e6" snaps="10 1000" runs=3 dir=/var/tmp/ddsnap-bench-open upgrade=""
while getopts "n:s:r:d:u" o; do
	case $o in
	n) sizes=$OPTARG ;;
	s) snaps=$OPTARG ;;
	r) runs=$OPTARG ;;
	d) dir=$OPTARG ;;
	u) upgrade=-O ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
(($# >= 1)) || {
	echo "usage: open.sh [-n sizes] [-s snapshot counts] [-r runs] [-d dir] [-u] <ddsnap>..." >&2
	exit 2
}
bins=()
for b in "$@"; do bins+=("$(realpath "$b")"); done
mkdir -p "$dir"

num() { python3 -c "print(int(float('$1')))"; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
drop() { python3 -c "
import os, sys
for f in sys.argv[1:]:
    fd = os.open(f, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
" "$@"; }

# make <ddsnap> <n> <S> <name>: the store <name>.s with origin <name>.o made by <ddsnap>,
# unless that binary (same checksum) already made it.
make_store() {
	local d=$1 n=$2 s=$3 f=$4 label ds ms sum
	sum=$(sha256sum "$d" | cut -c1-16)$upgrade
	[[ -f $f.done && $(cat "$f.done") == "$sum" ]] && return 0
	rm -f "$f".*
	truncate -s $(((n + 2 * 65536) * 16384 + n * 200 + (64 << 20))) "$f.s"
	truncate -s $((n * 16384)) "$f.o"
	"$d" initialize -y "$f.s" "$f.o" >/dev/null
	label=$("$d" dump "$f.s" | sed -n 2p)
	ds=$(grep -o ' data_start=[0-9]*' <<<"$label" | cut -d= -f2)
	ms=$(grep -o ' ms_shift=[0-9]*' <<<"$label" | cut -d= -f2)
	python3 "$here/gen-dump.py" "$n" "$s" "$ds" "$ms" | "$d" restore $upgrade -y - "$f.s" >/dev/null
	[[ -z $upgrade ]] || cp --sparse=always "$f.s" "$f.s0"
	echo "$sum" >"$f.done"
}

# open_once <ddsnap> <name>: prints "secs hwm_kib rss_kib list_secs status_secs upgrade_ms".
open_once() {
	local d=$1 f=$2 sock=$2.sock pid t0 t1 mem t2 t3 t4 up=-
	rm -f "$sock"
	[[ -z $upgrade ]] || cp --sparse=always "$f.s0" "$f.s"
	drop "$f.s" "$f.o"
	t0=$(now)
	"$d" server -f "$f.s" "$f.o" "$sock" 2>"$f.log" &
	pid=$!
	until "$d" status "$sock" >/dev/null 2>&1; do
		kill -0 $pid 2>/dev/null || {
			echo "server died: $(cat "$f.log")" >&2
			return 1
		}
		sleep 0.01
	done
	t1=$(now)
	mem=$(awk '/^VmHWM|^VmRSS/{printf "%s ", $2}' /proc/$pid/status)
	t2=$(now)
	"$d" list "$sock" >/dev/null
	t3=$(now)
	"$d" status "$sock" >/dev/null
	t4=$(now)
	kill -TERM $pid
	wait $pid || true
	[[ -z $upgrade ]] || up=$(grep -o 'upgraded to persisted deadlists in [0-9]* ms' "$f.log" | grep -o '[0-9]* ms' | cut -d' ' -f1)
	echo "$(secs "$t0" "$t1") $mem $(secs "$t2" "$t3") $(secs "$t3" "$t4") $up"
}

printf "%-9s %-6s %-5s %9s %9s %9s %8s %8s %s\n" exceptions snaps bin "open s" "HWM MiB" "RSS MiB" "list s" "status s" "(first/this: time, HWM) upgrade ms"
for n in $sizes; do
	for s in $snaps; do
		nn=$(num "$n")
		first=""
		for i in "${!bins[@]}"; do
			f=$dir/e$nn-s$s-b$i
			make_store "${bins[$i]}" "$nn" "$s" "$f"
			best=""
			for ((r = 0; r < runs; r++)); do
				m=$(open_once "${bins[$i]}" "$f")
				if [[ -z $best ]] || (($(echo "${m%% *} < ${best%% *}" | bc))); then best=$m; fi
			done
			read -r t hwm rss lt st up <<<"$best"
			[[ -n $first ]] || first="$t $hwm"
			read -r ft fh <<<"$first"
			printf "%-9s %-6s %-5s %9.3f %9.1f %9.1f %8.3f %8.3f %s\n" "$n" "$s" "#$i" "$t" \
				"$(echo "$hwm / 1024" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$lt" "$st" \
				"$(echo "scale=2; $ft / $t" | bc)x $(echo "scale=2; $fh / $hwm" | bc)x $up"
		done
	done
done
