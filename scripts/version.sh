#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Prints the version the packages get, derived from git and debian/changelog
# (doc/packaging.md, "Versions and releases"):
#   - HEAD is tagged vX.Y.Z: X.Y.Z, which must be debian/changelog's top version (a release);
#   - the top version is above the newest tag vX.Y.Z (or there is no tag): the release being
#     prepared, so <top>~git<UTC commit time>.<hash> (sorts below <top>);
#   - else (commits after a release, changelog not bumped yet): X.Y.Z+git<time>.<hash>.
# A working tree that differs from HEAD (changed or new files) adds ".dirty".
#   version.sh
set -euo pipefail
cd "$(dirname "$0")/.."
die()
{
	echo "version.sh: $*" >&2
	exit 1
}
if ! command -v git >/dev/null || ! git rev-parse --git-dir >/dev/null 2>&1; then
	die "not a git checkout: the version is derived from git (doc/packaging.md)"
fi
top=$(dpkg-parsechangelog -l debian/changelog -S Version) || die "cannot read debian/changelog"
tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)
tagver=${tag#v}
exact=$(git describe --tags --exact-match --match 'v[0-9]*' HEAD 2>/dev/null || true)
if [[ -n $exact ]]; then
	[[ ${exact#v} == "$top" ]] ||
		die "HEAD is tagged $exact but debian/changelog's top version is $top: make them agree"
	version=$top
else
	stamp=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S HEAD)
	hash=$(git rev-parse --short=7 HEAD)
	if [[ -z $tagver ]] || dpkg --compare-versions "$top" gt "$tagver"; then
		version=$top~git$stamp.$hash
	else
		version=$tagver+git$stamp.$hash
	fi
fi
[[ -z $(git status --porcelain 2>/dev/null) ]] || version+=.dirty
echo "$version"
