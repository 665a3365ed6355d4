#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# bench/build-old.sh REV: builds the ddsnap binary and the kernel module of git revision REV
# (in a temporary worktree) into build/bench/old/, for the benchmarks that measure an old
# build against the new one in one guest run (bench/vm-snapread.sh).  build/bench/old/REV
# names what was built.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/build-old.sh REV}
sha=$(git rev-parse --verify "$rev^{commit}") || {
	echo "build-old: '$rev' is not a commit of this repository" >&2
	exit 2
}
wt=$(mktemp -d /tmp/ddsnap-old.XXXXXX)
trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"' EXIT
git worktree add -q --detach "$wt" "$sha" # its errors are shown: a failure here ends the script
make -C "$wt" -j"$(nproc)" build/bin/ddsnap kernel >/dev/null
mkdir -p build/bench/old
install -m 0755 "$wt/build/bin/ddsnap" build/bench/old/ddsnap
cp "$wt/kernel/dm-ddsnap.ko" build/bench/old/dm-ddsnap.ko
git log -1 --format='%h %s' "$sha" | cut -c1-100 >build/bench/old/REV
echo "build-old: build/bench/old/ holds $(cat build/bench/old/REV)"
