#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Installs the Debian packages the build, the tests, the demo and the benchmarks need.
# Idempotent and quiet when nothing is missing; runs apt-get update only when it must install.
set -euo pipefail

PACKAGES=(
	# build
	gcc make pkg-config libc6-dev zlib1g-dev libzstd-dev libtirpc-dev libdevmapper-dev libblkid-dev
	linux-headers-amd64
	# unit tests, fuzzing, lint
	libcmocka-dev clang libclang-rt-14-dev valgrind clang-format cppcheck shellcheck sparse
	# the real-kernel harness and what scenarios run in the guest
	qemu-system-x86 busybox-static linux-image-amd64 cpio kmod dmsetup e2fsprogs
	thin-provisioning-tools fio util-linux openssl
	# deltas
	xdelta3 zstd
	# make fresh-test: a minimal Debian root to run the first steps of the README in
	debootstrap
	# the CLI and monitor tests check JSON output (tests/cli, tests/monitor); the monitor
	# reads ddsnap's JSON with jq at run time
	jq python3
	# the monitor's runtime and the monitor-nas scenario: NFS, Samba, udev in the guest, xfs
	# snapshot mounts, fuser (what keeps a mount busy); vfs_shadow_copy2 is in samba-vfs-modules;
	# ip brings the guest's loopback up for the NFS and Samba clients (nas_servers_up)
	nfs-kernel-server rpcbind samba samba-vfs-modules smbclient udev xfsprogs psmisc iproute2
	# replication between boxes over ssh: the scenarios run a real sshd per box in the guest
	# (tests/vm/lib.sh ssh_box) and the monitor's transfers run ssh
	openssh-server openssh-client
	# the monitor tests render the man pages and check the systemd units
	man-db systemd
	# make deb and deb-check: dpkg-buildpackage (build-essential is its implicit build
	# dependency), debhelper with the dkms addon, lintian; the packages VM scenario installs
	# ddsnap-dkms, whose scripts run dkms in the guest
	build-essential debhelper dh-dkms dkms lintian
)

missing=()
for p in "${PACKAGES[@]}"; do
	[[ $p == \#* ]] && continue
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
	{
		echo "deps: these Debian packages are missing: ${missing[*]}"
		echo "deps: installing them needs root; run this as root, then run make again:"
		echo "    apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
	} >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
