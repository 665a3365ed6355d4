#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make vm-test [T=name]: runs every tests/vm/scenarios/*.sh (or only tests/vm/scenarios/<name>.sh)
# in its own guest through tests/vm/run-one.sh with VM_QUIET=1 (a failing scenario prints the
# end of its output; every full log is build/vm/<name>.log).  Guests run side by side while
# their vCPUs add up to at most the host's cores (VM_HOST_CPUS, default nproc).  A guest gets
# one vCPU unless its scenario declares more (vm-cpus: 2 where the kernel must race itself on
# two CPUs; VM_CPUS changes the default).  Each vCPU is a host thread that keeps a core busy
# under TCG: two guests of two vCPUs each on two cores ran every scenario 2.5-4 times slower
# than alone (server-many 933-1181 s against 302 s), more than the suite took one guest after
# another; two guests of one vCPU each ran monitor-full in 205 s against 189 s alone (and
# 183 s alone with two vCPUs); in two CI runs the suite took 2492 s this way (the three
# scenarios that declare two vCPUs alone, first) against 4212 s one guest after another.
# A scenario that needs every core starts first, alone; the rest start longest first (by
# their vm-timeout), which keeps the wall time close to the longest.  Each scenario's report
# is printed whole when it ends, so reports never interleave.
# Records the counts as suite "vm" for scripts/summary.sh; the last line printed is
# "vm: N passed, N failed".  Exit status 0 only if every scenario passed.
#   run-all.sh [name]
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=scripts/results.sh
. scripts/results.sh

# shellcheck source=tests/vm/header.sh
. tests/vm/header.sh

# scenario_cpus SCRIPT: the vCPUs its guest gets (run-one.sh's rule: vm-cpus, else VM_CPUS).
scenario_cpus()
{
	local c
	c=$(vm_header "$1" cpus)
	echo "${c:-${VM_CPUS:-1}}"
}

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
	# Those that need the most vCPUs first (they run alone), then longest first (by declared
	# timeout), so a long scenario overlaps the short ones instead of starting last.
	mapfile -t scenarios < <(for s in tests/vm/scenarios/*.sh; do
		t=$(vm_header "$s" timeout)
		echo "$(scenario_cpus "$s") ${t:-300} $s"
	done | sort -k1,1nr -k2,2nr -k3 | cut -d' ' -f3-)
fi

passed=0 failed=0 failures=()
start=$SECONDS
host_cpus=${VM_HOST_CPUS:-$(nproc)}
export VM_CPUS=${VM_CPUS:-1}
declare -A guest_cpus=() # pid of a running scenario's job -> its guest's vCPUs
mkdir -p build/vm
for s in "${scenarios[@]}"; do
	name=$(basename "$s" .sh)
	need=$(scenario_cpus "$s")
	# Wait until the guest fits beside the running ones (one larger than the host runs alone).
	while :; do
		used=0
		for pid in $(jobs -rp); do
			used=$((used + ${guest_cpus[$pid]:-0}))
		done
		((used == 0 || used + need <= host_cpus)) && break
		wait -n
	done
	(
		VM_QUIET=1 bash tests/vm/run-one.sh "$name" "$s" >"build/vm/$name.report" 2>&1
		echo $? >"build/vm/$name.status"
		cat "build/vm/$name.report"
	) &
	guest_cpus[$!]=$need
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
