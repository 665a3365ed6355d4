#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Runs each libFuzzer target for the given number of seconds, starting from its seed corpus
# in tests/fuzz/corpus/<target>/ (when present) and keeping new inputs in build/fuzz/corpus.
# A crash, leak or sanitizer report fails the run and leaves the reproducer in build/fuzz/.
# The targets run as many at a time as there are CPUs.
#   run.sh <seconds> <fuzz binaries...>
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
# shellcheck source=scripts/results.sh
. scripts/results.sh
secs=$1
shift
passed=0 failed=0
jobs=$(nproc 2>/dev/null || echo 1)
# one_target BINARY: runs it for $secs seconds; its exit status is the target's.
one_target()
{
	local name corpus seeds=()
	name=$(basename "$1")
	corpus=build/fuzz/corpus/$name
	mkdir -p "$corpus"
	[[ -d tests/fuzz/corpus/$name ]] && seeds=("tests/fuzz/corpus/$name")
	"$1" -max_total_time="$secs" -artifact_prefix=build/fuzz/"$name"- -print_final_stats=0 \
		"$corpus" "${seeds[@]}" >build/fuzz/"$name".log 2>&1
}
# The targets run $jobs at a time (each is one process on one core, so each still gets its
# $secs seconds of a core); the results are reported in the order given.
declare -A pid
for f in "$@"; do
	while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
	one_target "$f" &
	pid[$f]=$!
done
for f in "$@"; do
	name=$(basename "$f")
	if wait "${pid[$f]}"; then
		echo "fuzz $name: ok ($(grep -c '^#' build/fuzz/"$name".log) status lines, ${secs}s)"
		passed=$((passed + 1))
	else
		echo "fuzz $name: FAILED"
		tail -n 40 build/fuzz/"$name".log
		failed=$((failed + 1))
	fi
done
results_record fuzz "$passed" "$failed"
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
