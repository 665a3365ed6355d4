#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Runs every stress program for DURATION seconds each (default 60).  Each program forks,
# SIGKILLs and reopens on its own and prints its seed; a non-zero exit fails the run.
#   run.sh <build dir> [seconds]
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
# shellcheck source=scripts/results.sh
. scripts/results.sh
build=$1 secs=${2:-60}
passed=0 failed=0
for s in "$build"/tests/stress_*; do
	[[ -x $s ]] || continue
	if "$s" --duration "$secs"; then
		passed=$((passed + 1))
	else
		echo "stress $(basename "$s"): FAILED"
		failed=$((failed + 1))
	fi
done
results_record stress "$passed" "$failed"
echo "stress: $passed passed, $failed failed"
((failed == 0))
