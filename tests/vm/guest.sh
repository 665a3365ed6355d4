#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Guest side of the VM harness: run by the initramfs's /init as root, chrooted into the
# overlay of the host's root, with the harness share at /vm.  tests/vm/run-one.sh copies this
# file, the scenario and /vm/env (exported variables, one boot's worth) into the share.
#
# It sets up the scenario's world: tmpfs on /tmp, /run and /dev/shm, devpts, the source tree
# bind-mounted at /src (and, if the host tree lives under /tmp, again at its host path), the
# environment (SRC BUILD VM_DISKS RESULTS DM_DISABLE_UDEV KVER VM_BOOT ...), waits for the
# disks, then runs the scenario with bash (stdin /dev/null), its output on the serial
# console.  Afterwards it prints the kernel log (dmesg) between markers the host side looks
# for, syncs (for at most SYNC_WAIT s) and writes the exit status to /vm/status.<boot>.
# /init powers the guest off when this returns.

set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
umask 022
SYNC_WAIT=20 # seconds the final sync may take before the guest powers off anyway

vm_guest_die()
{
	echo "vm-guest: $*"
	echo 1 >"/vm/status.${VM_BOOT:-1}"
	exit 1
}

[[ -f /vm/env ]] || vm_guest_die "no /vm/env"
# shellcheck source=/dev/null
. /vm/env

# The host's tree is visible through the overlay at its own path; give it a stable name
# before /tmp (where a CI clone may live) is hidden under a tmpfs.
mkdir -p /src
mount --bind "$VM_HOST_SRC" /src || vm_guest_die "cannot bind the source tree $VM_HOST_SRC"
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
case $VM_HOST_SRC in
/tmp/* | /run/* | /dev/shm/*)
	mkdir -p "$VM_HOST_SRC" && mount --bind /src "$VM_HOST_SRC"
	;;
esac
ln -sf /proc/self/fd /dev/fd 2>/dev/null
mkdir -p /run/lock
hostname "vm-$VM_NAME" 2>/dev/null

export SRC=/src
export BUILD=$SRC/${VM_BUILD_REL:-build}
export RESULTS=/vm/results
export DM_DISABLE_UDEV=1
KVER=$(uname -r)
export KVER
mkdir -p "$RESULTS"

VM_DISKS=""
letters=abcdefghijklmnopqrstuvwxyz
# shellcheck disable=SC2153 # VM_NDISKS comes from /vm/env
for ((i = 0; i < VM_NDISKS; i++)); do
	d=/dev/vd${letters:i:1}
	for ((t = 0; t < 100; t++)); do
		[[ -b $d ]] && break
		sleep 0.1
	done
	[[ -b $d ]] || vm_guest_die "disk $d did not appear"
	VM_DISKS+="${VM_DISKS:+ }$d"
done
export VM_DISKS

echo "vm-guest: scenario $VM_NAME, boot $VM_BOOT of $VM_BOOTS, kernel $KVER, disks: ${VM_DISKS:-none}"
echo "vm-guest: ---- scenario output ----"
cd "$SRC" || vm_guest_die "cannot cd to $SRC"
bash "/vm/$VM_SCRIPT" </dev/null
rc=$?
cd /
echo "vm-guest: ---- scenario exited with status $rc ----"
echo "vm-guest: ---- dmesg (boot $VM_BOOT) ----"
dmesg
echo "vm-guest: ---- end of dmesg ----"
# Write back the disks (for VM_KEEP_DISKS), but never hang here on a device the scenario
# left stuck (a suspended dm device, say): that would turn a pass into a timeout.
sync &
sync_pid=$!
for ((t = 0; t < SYNC_WAIT * 10; t++)); do
	kill -0 "$sync_pid" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$sync_pid" 2>/dev/null; then
	echo "vm-guest: sync did not finish within ${SYNC_WAIT}s (a device left suspended or stuck?); powering off anyway"
fi
echo "$rc" >"/vm/status.$VM_BOOT"
exit 0
