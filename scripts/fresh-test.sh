#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make fresh-test: the README's two commands, on their first run, on a fresh Debian 12 root.
#
# A newcomer's box has nothing installed but what the image ships, and the first 'make demo'
# or 'make check' there must install the packages and then build: a Makefile that reads
# pkg-config flags or the kernel headers' folder before 'make deps' ran passes on every box
# that has run it once and fails only there.  This guard builds that box: a minbase Debian 12
# root made by debootstrap (cached under build/fresh/, about a minute the first time), copied
# afresh for each command, with a clean clone of this repository's HEAD (commit first: the
# work tree's changes are not in it) and nothing installed but 'make'.
#
# Cases, each on its own fresh copy of the root (a first run can only happen once):
#   nonroot  'make demo' as an ordinary user fails before building and names the exact
#            command to run as root
#   demo     'make demo' as root: deps, the build, the kernel module, the QEMU guest and the
#            demonstration itself (FRESH_DEMO=boot stops once the guest has booted)
#   check    'make check CHECK_STEPS=unit' as root: deps, the build, the unit tests
# The last line is 'fresh-test: N passed, N failed' with the failed cases named before it.
#
# Everything runs in a private mount namespace (unshare), so the chroot's /proc, /dev and
# /sys mounts vanish with it whatever happens.  Downloaded .deb files are kept between runs
# in build/fresh/apt-archives (a download cache; nothing is installed from it that apt
# would not install anyway).  Needs root and network access to a Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
top=$repo/build/fresh
base=$top/minbase
archives=$top/apt-archives
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}
read -ra cases <<<"${FRESH_CASES:-nonroot demo check}"

if [[ $(id -u) -ne 0 ]]; then
	echo "fresh-test: needs root (debootstrap, chroot, mounts); run as root: make fresh-test" >&2
	exit 1
fi
command -v debootstrap >/dev/null || {
	echo "fresh-test: debootstrap is missing; run: make deps" >&2
	exit 1
}

# Refuses to delete a folder that still has anything mounted under it (a bind of /dev would
# take the host's device nodes with it).
remove_root()
{
	local dir=$1
	[[ -e $dir ]] || return 0
	if awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
		echo "fresh-test: $dir still has mounts under it; not removing it" >&2
		return 1
	fi
	rm -rf --one-file-system "$dir"
}

make_base()
{
	[[ -f $base/.complete ]] && return 0
	remove_root "$base"
	echo "fresh-test: debootstrap --variant=minbase bookworm from $mirror (cached in $base)"
	mkdir -p "$top"
	debootstrap --variant=minbase bookworm "$base" "$mirror" >"$top/debootstrap.log" 2>&1 || {
		tail -20 "$top/debootstrap.log" >&2
		echo "fresh-test: debootstrap failed (log: $top/debootstrap.log)" >&2
		return 1
	}
	touch "$base/.complete"
}

# new_root <case>: a fresh copy of the base with a clean clone in /root/zumastor and in
# /home/newcomer/zumastor (owned by the ordinary user 'newcomer'), and 'make' installed.
new_root()
{
	local root=$top/root-$1
	remove_root "$root"
	cp -a "$base" "$root"
	rm -f "$root/.complete"
	cp /etc/resolv.conf "$root/etc/resolv.conf"
	git -c advice.detachedHead=false clone -q --no-hardlinks "$repo" "$root/root/zumastor"
	chroot "$root" useradd -m -s /bin/bash newcomer
	git -c advice.detachedHead=false clone -q --no-hardlinks "$repo" "$root/home/newcomer/zumastor"
	chroot "$root" chown -R newcomer: /home/newcomer/zumastor
	echo "$root"
}

# in_root <root> <command>: runs a shell command in the chroot with /proc, /sys, /dev and the
# archive cache mounted, inside a private mount namespace that takes the mounts with it.
in_root()
{
	local root=$1 cmd=$2
	mkdir -p "$archives"
	# shellcheck disable=SC2016 # the inner script expands its own positional arguments
	unshare --mount --propagation private bash -euo pipefail -c '
		root=$1 archives=$2 cmd=$3
		mount -t proc proc "$root/proc"
		mount -t sysfs sysfs "$root/sys"
		mount --bind /dev "$root/dev"
		mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
		mount -t tmpfs tmpfs "$root/dev/shm"
		mount --bind "$archives" "$root/var/cache/apt/archives"
		exec chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			bash -c "$cmd"' fresh "$root" "$archives" "$cmd"
}

passed=0
failed=0
failures=()
result()
{
	local name=$1 ok=$2 why=${3:-}
	if ((ok)); then
		passed=$((passed + 1))
		echo "fresh-test: PASS $name"
	else
		failed=$((failed + 1))
		failures+=("$name${why:+: $why}")
		echo "fresh-test: FAIL $name${why:+: $why}"
	fi
}

run_case()
{
	local name=$1 root log rc=0
	root=$(new_root "$name")
	log=$top/$name.log
	in_root "$root" 'export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq && apt-get install -y -qq --no-install-recommends make >/dev/null' \
		>"$log" 2>&1 || {
		result "$name" 0 "could not install make in the fresh root (log: $log)"
		return
	}
	case $name in
	nonroot)
		in_root "$root" 'cd /home/newcomer/zumastor && su newcomer -c "make demo"' >>"$log" 2>&1 || rc=$?
		if ((rc == 0)); then
			result nonroot 0 "make demo as an ordinary user exited 0 (log: $log)"
		elif ! grep -q 'run this as root' "$log" ||
			! grep -q 'apt-get install -y --no-install-recommends .*libtirpc-dev' "$log"; then
			result nonroot 0 "no exact root command in its output (log: $log)"
		elif [[ -d $root/home/newcomer/zumastor/build/obj ]]; then
			result nonroot 0 "it started building without the packages (log: $log)"
		else
			result nonroot 1
		fi
		;;
	demo)
		local cmd='cd /root/zumastor && make demo'
		[[ ${FRESH_DEMO:-} == boot ]] && cmd='cd /root/zumastor && VM_TIMEOUT=1 make demo'
		in_root "$root" "$cmd" >>"$log" 2>&1 || rc=$?
		if [[ ${FRESH_DEMO:-} == boot ]]; then
			if grep -qi 'a real Linux kernel' "$log"; then
				result demo 1
			else
				result demo 0 "make demo exited $rc before the guest booted into the demo (log: $log)"
			fi
		elif ((rc == 0)) && grep -q '^PASS demo' "$log"; then
			result demo 1
		else
			result demo 0 "make demo exited $rc (log: $log)"
		fi
		;;
	check)
		in_root "$root" 'cd /root/zumastor && make check CHECK_STEPS=unit' >>"$log" 2>&1 || rc=$?
		if ((rc == 0)) && grep -Eq '^check: [1-9][0-9]* passed, 0 failed' "$log"; then
			result check 1
		else
			result check 0 "make check CHECK_STEPS=unit exited $rc (log: $log)"
		fi
		;;
	*)
		result "$name" 0 "no such case (nonroot, demo, check)"
		;;
	esac
	tail -3 "$log" | sed 's/^/    /'
}

make_base
echo "fresh-test: clean clone of $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD || echo ' (uncommitted changes are not tested)')"
for c in "${cases[@]}"; do
	echo "fresh-test: case $c (log: $top/$c.log)"
	run_case "$c"
	remove_root "$top/root-$c" || true
done
for f in "${failures[@]}"; do
	echo "fresh-test: failed: $f"
done
echo "fresh-test: $passed passed, $failed failed"
((failed == 0))
