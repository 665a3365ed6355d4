#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make lint: clang-format (check only), cppcheck on userspace C, shellcheck on every shell
# script, sparse on the kernel module, an SPDX line on every source file, and the layers of
# server/ (scripts/lint-layers.sh, with its self-test: a planted upward include must fail).
#   lint.sh <KDIR>
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
# shellcheck source=scripts/results.sh
. scripts/results.sh
kdir=$1
passed=0 failed=0
step()
{
	local name=$1
	shift
	if "$@"; then
		echo "lint $name: clean"
		passed=$((passed + 1))
	else
		echo "lint $name: FAILED"
		failed=$((failed + 1))
	fi
}

mapfile -t csrc < <(git ls-files '*.c' '*.h')
mapfile -t shsrc < <(git ls-files '*.sh' .ci/run monitor/zumastor 'debian/*.prerm' 'debian/*.postrm' 'debian/*.postinst' 'debian/*.preinst' 2>/dev/null | sort -u)
mapfile -t usersrc < <(git ls-files 'server/*.c' 'tools/*.c' 'monitor/*.c' 'tests/*.c' 'bench/*.c')

spdx()
{
	local bad=0 f
	for f in "${csrc[@]}" "${shsrc[@]}" Makefile Kbuild kernel/Kbuild; do
		[[ -f $f ]] || continue
		head -n 3 "$f" | grep -q 'SPDX-License-Identifier' || {
			echo "$f: no SPDX line"
			bad=1
		}
	done
	return $bad
}

fmt()
{
	((${#csrc[@]} == 0)) || clang-format --dry-run -Werror "${csrc[@]}"
}

cpp()
{
	((${#usersrc[@]} == 0)) && return 0
	cppcheck -q --error-exitcode=1 --enable=warning,portability,performance \
		--inline-suppr --std=c11 -D_GNU_SOURCE -D__x86_64__ -Iinclude -Iserver -Itools -Imonitor/lib \
		--suppress=missingIncludeSystem --suppress=unknownMacro "${usersrc[@]}"
}

shc()
{
	((${#shsrc[@]} == 0)) || shellcheck -x "${shsrc[@]}"
}

kernel_sparse()
{
	[[ -d $kdir ]] || {
		echo "no kernel headers"
		return 1
	}
	local out
	out=$(make -s -C "$kdir" M="$PWD" C=2 CHECK="sparse -Wno-decl" modules 2>&1)
	local rc=$?
	# sparse reports as warnings; any warning about our files fails lint.
	if ((rc != 0)) || grep -E '^(/[^:]*/)?kernel/[^:]+:[0-9]+:[0-9]+: (warning|error)' <<<"$out"; then
		echo "$out"
		return 1
	fi
}

layers()
{
	bash scripts/lint-layers.sh && bash scripts/lint-layers.sh --self-test
}

step spdx spdx
step layers layers
step clang-format fmt
step cppcheck cpp
step shellcheck shc
step sparse kernel_sparse
results_record lint "$passed" "$failed"
echo "lint: $passed passed, $failed failed"
((failed == 0))
