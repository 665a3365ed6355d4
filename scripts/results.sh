# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0-only
# Sourced by the test runners: record a suite's pass/fail counts for scripts/summary.sh.
# results_record <suite> <passed> <failed>
results_record()
{
	mkdir -p build/results
	echo "$2 $3" >"build/results/$1"
}
