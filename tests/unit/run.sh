#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Runs each cmocka unit-test binary given on the command line, shows cmocka's summary for
# each, and fails if any test failed or any binary crashed.  VALGRIND=1 runs each under
# valgrind's memcheck with leak checking (slower).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
# shellcheck source=scripts/results.sh
. scripts/results.sh

passed=0 failed=0 bad=()
for t in "$@"; do
	log=$(mktemp)
	if [[ ${VALGRIND:-0} == 1 ]]; then
		valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
			"$t" >"$log" 2>&1
	else
		"$t" >"$log" 2>&1
	fi
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
	p=${p:-0} f=${f:-0}
	if ((rc != 0 && f == 0)); then
		f=1 # crashed, or valgrind found errors
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if ((f > 0)); then
		bad+=("$(basename "$t")")
		cat "$log"
	else
		printf '%-28s %s\n' "$(basename "$t")" "$(grep -E '^\[  PASSED  \]' "$log" | tail -n1)"
	fi
	rm -f "$log"
done
results_record unit "$passed" "$failed"
((${#bad[@]})) && echo "failing: ${bad[*]}"
echo "unit: $passed passed, $failed failed"
((failed == 0))
