#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make vm-test [T=name]: runs every tests/vm/scenarios/*.sh (or only tests/vm/scenarios/<name>.sh)
# in its own guest through tests/vm/run-one.sh with VM_QUIET=1 (a failing scenario prints the
# end of its output; every full log is build/vm/<name>.log).  VM_JOBS guests run at once
# (default: one per two cores, at least one).  A guest has two vCPUs, and each is a host
# thread that keeps a core busy: two guests on two cores ran every scenario 2.5-4 times
# slower than it runs alone (server-many 933-1181 s against 302 s), so that the suite took
# longer than running the guests one after another.  Each scenario's report is printed whole
# when it ends, so reports never interleave.  Scenarios
# start longest first (by their vm-timeout), which keeps the wall time close to the longest.
# Records the counts as suite "vm" for scripts/summary.sh; the last line printed is
# "vm: N passed, N failed".  Exit status 0 only if every scenario passed.
#   run-all.sh [name]
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=scripts/results.sh
. scripts/results.sh

only=${1:-}
only=${only%.sh}
only=${only##*/}
if [[ -n $only ]]; then
	scenarios=(tests/vm/scenarios/"$only".sh)
	if [[ ! -f ${scenarios[0]} ]]; then
		known=""
		for s in tests/vm/scenarios/*.sh; do
			known+=" $(basename "$s" .sh)"
		done
		echo "vm: no scenario tests/vm/scenarios/$only.sh; there are:$known"
		results_record vm 0 1
		echo "vm: 0 passed, 1 failed"
		exit 1
	fi
else
	# Longest first (by declared timeout), so a long scenario overlaps the short ones
	# instead of starting last.
	mapfile -t scenarios < <(for s in tests/vm/scenarios/*.sh; do
		t=$(sed -n 's/^# vm-timeout: *\([0-9]*\).*/\1/p' "$s" | head -n1)
		echo "${t:-300} $s"
	done | sort -k1,1nr -k2 | cut -d' ' -f2-)
fi

passed=0 failed=0 failures=()
start=$SECONDS
jobs_max=${VM_JOBS:-$(($(nproc) >= 4 ? $(nproc) / 2 : 1))}
mkdir -p build/vm
for s in "${scenarios[@]}"; do
	name=$(basename "$s" .sh)
	while (($(jobs -rp | wc -l) >= jobs_max)); do
		wait -n
	done
	(
		VM_QUIET=1 bash tests/vm/run-one.sh "$name" "$s" >"build/vm/$name.report" 2>&1
		echo $? >"build/vm/$name.status"
		cat "build/vm/$name.report"
	) &
done
wait
for s in "${scenarios[@]}"; do
	name=$(basename "$s" .sh)
	if [[ $(cat "build/vm/$name.status" 2>/dev/null) == 0 ]]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$name")
	fi
done
results_record vm "$passed" "$failed"
echo "vm: ${#scenarios[@]} scenario(s) in $((SECONDS - start)) s; logs in build/vm/<name>.log"
((failed == 0)) || echo "vm: failed: ${failures[*]}"
echo "vm: $passed passed, $failed failed"
((failed == 0))
