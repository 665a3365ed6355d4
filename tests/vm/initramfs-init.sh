#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# /init of the VM harness's busybox initramfs (packed by tests/vm/run-one.sh; not run on the
# host).  It loads the virtio, 9p and overlay modules listed in /modules.list (already in
# dependency order), mounts the host's root read-only through 9p (tag "hostroot") under a
# tmpfs overlay at /newroot, mounts the writable harness share (tag "vmshare") at
# /newroot/vm, and runs the harness's guest side, /vm/guest.sh, under the host's bash in a
# chroot.  Whatever happens, it ends with "poweroff -n -f": the host side reads the scenario's
# exit status from the share, never from here.
#
# Kernel module auto-loading (request_module) runs /proc/sys/kernel/modprobe in the
# initramfs's root, not the chroot: /sbin/modprobe-chroot forwards it into the chroot so
# that e.g. "dmsetup create" with a snapshot table loads dm-snapshot by itself.

PATH=/bin:/sbin
export PATH

die()
{
	echo "vm-init: $*" >&2
	echo "vm-init: powering off" >&2
	poweroff -n -f
	sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

while read -r ko; do
	insmod "/lib/modules/$ko" || die "insmod $ko failed"
done </modules.list

P9OPTS=trans=virtio,version=9p2000.L,msize=262144
mkdir -p /lower /rw /newroot
# cache=loose: programs start many times faster than with cache=none (which made a loaded
# host time out); the price is that files rewritten in place on the host during a run may
# be seen half old, half new (compilers and linkers replace files, so rebuilding is safe).
mount -t 9p -o "$P9OPTS,ro,cache=loose" hostroot /lower || die "cannot mount the host root (9p tag hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /rw || die "cannot mount the overlay's tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
	die "cannot mount the overlay root"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/vm
mount -t 9p -o "$P9OPTS" vmshare /newroot/vm || die "cannot mount the harness share (9p tag vmshare)"
echo /sbin/modprobe-chroot >/proc/sys/kernel/modprobe

[ -f /newroot/vm/guest.sh ] || die "no /vm/guest.sh in the harness share"
chroot /newroot /bin/bash /vm/guest.sh </dev/console >/dev/console 2>&1
echo "vm-init: guest.sh exited with status $?"
# guest.sh synced already (with a time limit); -n: do not sync again, it could hang.
poweroff -n -f
sleep 10
