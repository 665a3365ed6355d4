#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Prints the totals of every suite that ran in this 'make check' and fails if any failed.
set -euo pipefail
passed=0 failed=0
for f in build/results/*; do
	[[ -f $f ]] || continue
	read -r p fl <"$f"
	printf '  %-12s %4d passed, %d failed\n' "$(basename "$f")" "$p" "$fl"
	passed=$((passed + p))
	failed=$((failed + fl))
done
echo "check: $passed passed, $failed failed"
((failed == 0))
