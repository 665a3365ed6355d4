#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 1 64M
# vm-boots: 2
# vm-timeout: 120
#
# harness-powercut: what the harness's power cut keeps and loses, as crash scenarios rely on.
# Boot 1 writes three regions of disk 1 (synced; O_DIRECT, completed but never flushed; left
# dirty in the page cache with periodic writeback off) and asks for the cut.  Boot 2, on the
# same disk, requires the first two to be there, the third to be gone (the disk's old
# zeros), and $RESULTS from boot 1 to have come through.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

disk=${DISKS[0]}
KiB=1024
SYNCED=0 DIRECT=$((4096 * KiB)) DIRTY=$((8192 * KiB)) LEN=$((256 * KiB))

if ((VM_BOOT == 1)); then
	step "boot 1: write, then cut the power"
	write_pattern "$disk" synced $SYNCED $LEN
	sync
	pattern direct $LEN $DIRECT | dd of="$disk" bs=64k seek=$((DIRECT / 65536)) oflag=direct status=none
	# No periodic writeback, and an open descriptor so that dd's close does not write the
	# device back: these pages stay dirty until the cut.
	echo 0 >/proc/sys/vm/dirty_writeback_centisecs
	echo 360000 >/proc/sys/vm/dirty_expire_centisecs
	exec 3<>"$disk"
	write_pattern "$disk" dirty $DIRTY $LEN
	echo "boot 1 was here" >"$RESULTS/boot1"
	vm_power_cut
fi

step "boot 2: what survived"
expect_eq "$(cat "$RESULTS/boot1" 2>/dev/null)" "boot 1 was here" "\$RESULTS carried over from boot 1"
check_pattern "$disk" synced $SYNCED $LEN
log "synced write: kept"
check_pattern "$disk" direct $DIRECT $LEN
log "O_DIRECT write, completed but never flushed: kept"
zeros=$(head -c $LEN /dev/zero | sha256sum | cut -d ' ' -f 1)
expect_eq "$(sha_of "$disk" $DIRTY $LEN)" "$zeros" "page-cache-only write after the cut"
log "write left in the page cache: lost, as in a real power cut"
