#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make deb-check (a step of make check): lintian over the packages make deb left in
# build/deb/ (the .changes file names them all), pedantic and experimental tags shown.  An
# error or a warning fails it; informational tags are printed only.  Overrides live in
# debian/<package>.lintian-overrides, each with its reason (doc/packaging.md).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
# shellcheck source=scripts/results.sh
. scripts/results.sh
shopt -s nullglob
changes=(build/deb/*.changes)
if ((${#changes[@]} != 1)); then
	echo "deb-check: expected one build/deb/*.changes, found ${#changes[@]} (make deb)"
	results_record deb-check 0 1
	exit 1
fi
debs=(build/deb/*.deb)
echo "deb-check: lintian over ${debs[*]##*/}"
if lintian --info --display-experimental --pedantic --tag-display-limit 0 \
	--fail-on error,warning "${changes[0]}"; then
	echo "deb-check: lintian: no error or warning"
	results_record deb-check 1 0
else
	echo "deb-check: lintian found errors or warnings (above)"
	results_record deb-check 0 1
	exit 1
fi
