#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make deb: the Debian packages ddsnap, ddsnap-dkms and zumastor (doc/packaging.md).
# dpkg-buildpackage writes its results into the parent of the tree it builds, so it runs on a
# copy of the files git knows of (tracked and new, not ignored; as in the working tree) in build/deb/src/zumastor-<v>/;
# the .deb, .buildinfo and .changes files end in build/deb/, with the build's log
# build/deb/build.log.  The version is scripts/version.sh's; unless it is the release at the
# top of debian/changelog, the copy's changelog gets an entry for it (the source tree's is
# never edited).  Touches build/deb/stamp when done (make's record).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/deb
for tool in dpkg-buildpackage dh dh_dkms; do
	command -v "$tool" >/dev/null ||
		{ echo "deb: $tool is missing; run make deps (build-essential, debhelper, dh-dkms)" >&2; exit 1; }
done
version=$(bash scripts/version.sh)
top=$(dpkg-parsechangelog -l debian/changelog -S Version)
src=$out/src/zumastor-$version

rm -rf "$out"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
	[[ -e $f || -L $f ]] && printf '%s\0' "$f"
done | cpio --null -pdm --quiet "$src"

if [[ $version != "$top" ]]; then
	# The commit's time (UTC) and author line: the same tree gives the same changelog.
	when=$(TZ=UTC date -R -d "@$(git log -1 --format=%ct HEAD)")
	who=$(dpkg-parsechangelog -l debian/changelog -S Maintainer)
	desc=$(git describe --tags --always --dirty 2>/dev/null)
	{
		printf 'zumastor (%s) UNRELEASED; urgency=medium\n\n' "$version"
		printf '  * Development build of %s (not a release; doc/packaging.md).\n\n' "$desc"
		printf ' -- %s  %s\n\n' "$who" "$when"
		if [[ $version == "$top~"* ]]; then
			# A build before the release at the top: that entry is not released yet, so
			# it goes (an entry below must be older and lower).
			awk 'done { print; next } /^ -- / { done = 1; getline; next }' debian/changelog
		else
			cat debian/changelog
		fi
	} >"$src/debian/changelog"
fi

echo "deb: building $version in $src (log: $out/build.log)"
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
	dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1; then
	tail -n 30 "$out/build.log" >&2
	echo "deb: dpkg-buildpackage failed (whole log: $out/build.log)" >&2
	exit 1
fi
mv "$out"/src/*.deb "$out"/src/*.buildinfo "$out"/src/*.changes "$out/"
rm -rf "$out/src"
ls "$out"/*.deb
touch "$out/stamp"
