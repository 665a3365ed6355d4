#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# big-origin.sh - issue 22's big volume: a 14.6 TiB origin (sparse file; ext4 stops just
# short of 16 TiB) at 16 KiB chunks with 10^7 exceptions spread over it (one every 100
# chunks, 10 snapshots), made by `ddsnap restore` of generated dump text; then the server
# is started, answers a status, takes -w origin writes the kernel's way (bench/kwrite: each
# at a random chunk, most of them copy-outs, at most 16 in flight), is SIGKILLed right after
# the last is answered (so they are in the intent log, most not yet in a txg), and started
# again: the time from that start to its first answered origin write (the replay included)
# and to its first answered `ddsnap status`, its memory then, and the time of `ddsnap
# check` of the stopped store.
#
#   big-origin.sh [-n exceptions] [-k stride] [-w writes] [-d dir] <ddsnap>
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=10000000 k=100 w=20000 dir=/var/tmp/ddsnap-bench-big
while getopts "n:k:w:d:" o; do
	case $o in
	n) n=$OPTARG ;;
	k) k=$OPTARG ;;
	w) w=$OPTARG ;;
	d) dir=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
(($# == 1)) || {
	echo "usage: big-origin.sh [-n exceptions] [-k stride] [-w writes] [-d dir] <ddsnap>" >&2
	exit 2
}
d=$(realpath "$1")
kwrite=$here/../build/bench/kwrite
[[ -x $kwrite ]] || {
	echo "big-origin.sh: $kwrite is not built (make userspace)" >&2
	exit 2
}
mkdir -p "$dir"
f=$dir/big
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
rm -f "$f".*
truncate -s $(((n + 2 * 65536) * 16384 + n * 200 + (64 << 20))) "$f.s"
truncate -s $((n * k * 16384)) "$f.o"
"$d" initialize -y "$f.s" "$f.o" >/dev/null
label=$("$d" dump "$f.s" | sed -n 2p)
t0=$(now)
python3 "$here/gen-dump.py" "$n" 10 "$(grep -o ' data_start=[0-9]*' <<<"$label" | cut -d= -f2)" \
	"$(grep -o ' ms_shift=[0-9]*' <<<"$label" | cut -d= -f2)" 14 "$k" |
	"$d" restore -y - "$f.s" >/dev/null 2>&1
echo "origin $(du --apparent-size -h "$f.o" | cut -f1), $n exceptions: restore $(secs "$t0" "$(now)") s"
start() { # start: the server in the background, its pid in $pid, the seconds to a status in $t
	local t0
	rm -f "$f.sock"
	t0=$(now)
	"$d" server -f "$f.s" "$f.o" "$f.sock" 2>>"$f.log" &
	pid=$!
	until "$d" status "$f.sock" >/dev/null 2>&1; do sleep 0.01; done
	t=$(secs "$t0" "$(now)")
}
kw=(--socket "$f.sock" --chunks $((n * k)) --sectors $((n * k * 32)))
start
echo "first open: $t s"
echo "origin writes: $("$kwrite" "${kw[@]}" --count "$w" --seed 7 | tail -1)"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
rm -f "$f.sock"
t0=$(now)
"$d" server -f "$f.s" "$f.o" "$f.sock" 2>>"$f.log" &
pid=$!
first=$("$kwrite" "${kw[@]}" --count 1 --seed 9 --wait 600 | sed -n 's/^first //p')
echo "open after SIGKILL: first answered origin write $(secs "$t0" "$first") s"
until "$d" status "$f.sock" >/dev/null 2>&1; do sleep 0.01; done
echo "  first answered status $(secs "$t0" "$(now)") s, $(awk '/^VmHWM|^VmRSS/{printf "%s %s kB ", $1, $2}' "/proc/$pid/status")"
kill -TERM "$pid"
wait "$pid" || true
t0=$(now)
"$d" check "$f.s" | tail -1
echo "check: $(secs "$t0" "$(now)") s"
rm -f "$f".*
