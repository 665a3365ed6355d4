#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make bench: runs every userspace benchmark binary, then the VM benchmarks (if any), and
# prints each one's table.  Numbers are only meaningful as ratios within one run on one
# machine; BENCHMARKS.md records a run with the machine noted.
#   run.sh <build dir>
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
build=$1
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), $(date -u +%F)"
rc=0
for b in "$build"/bench/bench_*; do
	[[ -x $b ]] || continue
	echo
	echo "== $(basename "$b")"
	"$b" || rc=1
done
echo
echo "== open.sh (server activation time and memory, list/status; bigger: bench/open.sh -n 1e7 -s 10000)"
bash bench/open.sh -n "1e5 1e6" -s "10 1000" "$build/bin/ddsnap" || rc=1
for s in bench/vm-*.sh; do
	[[ -f $s ]] || continue
	echo
	echo "== $(basename "$s" .sh) (QEMU guest)"
	bash tests/vm/run-one.sh "$(basename "$s" .sh)" "$s" || rc=1
	name=$(basename "$s" .sh)
	cat "build/vm/$name.results/$name.results" 2>/dev/null || true
done
exit $rc
