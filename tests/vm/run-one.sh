#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Runs one VM scenario on Debian's stock kernel under QEMU (TCG) and reports PASS or FAIL.
#
#   tests/vm/run-one.sh <name> <scenario-script>
#
# The guest: the newest /boot/vmlinuz-*-amd64 (or $VM_KERNEL), a small busybox initramfs
# built here and cached as build/vm/initramfs-<kver>.cpio (rebuilt when its inputs change),
# this machine's root read-only over 9p under a tmpfs overlay (every installed program and
# /lib/modules/<kver> are there), -m 2048, two vCPUs unless told otherwise, no network.  The
# scenario runs as root with bash, in $SRC, with these variables:
#
#   SRC              the source tree (bind-mounted at /src, wherever the host tree lives)
#   BUILD            $SRC/build (or $SRC/$BUILD when BUILD is a relative path on the host)
#   VM_DISKS         "/dev/vda /dev/vdb ..." fresh sparse disks, as declared below
#   RESULTS          a writable directory copied back to build/vm/<name>.results/
#   DM_DISABLE_UDEV  1 (no udev in the guest: dmsetup makes the /dev/mapper nodes itself)
#   KVER             the guest kernel's release (uname -r)
#   VM_NAME VM_BOOT VM_BOOTS   the scenario name, this boot's number (1..), the boot count
#
# /tmp, /run and /dev/shm are fresh tmpfs; everything else written outside $RESULTS is lost
# at power-off.  Helpers: ". $SRC/tests/vm/lib.sh".  Kernel modules auto-load (modprobe).
#
# Header lines of the scenario (all optional):
#
#   # vm-disks: N SIZE       N fresh sparse raw disks of SIZE (truncate(1) units: 256M, 1G)
#   # vm-timeout: SECS       per boot, counted from the script's start (booting has its own
#                            limit); then the VM is killed and the scenario fails (default 300)
#   # vm-boots: N            boot N times on the same disks (default 1); see power cuts below
#   # vm-memory: MB          guest RAM (default 2048)
#   # vm-cpus: N             vCPUs the guest must have (a scenario that races the kernel
#                            against itself on two CPUs says 2); without it: $VM_CPUS, or 2
#   # vm-qemu-args: ARGS     extra qemu arguments (word-split; also $VM_QEMU_ARGS)
#   # vm-allow-kernel-splats: yes   do not fail on kernel BUG/WARNING/Oops lines in the log
#
# PASS means: every boot's script exited 0 (or was power-cut on request), no boot timed out,
# the guest did not die on its own, and the kernel log shows no BUG:, WARNING: CPU:, Oops,
# general protection fault, kernel panic, UBSAN/KASAN report or hung task.
#
# Power cuts (vm-boots: 2 or more).  Boot 1 runs the script with VM_BOOT=1.  When the script
# creates $RESULTS/kill-now (lib.sh: vm_power_cut), the host kills QEMU with SIGKILL within
# ~0.1 s: no shutdown, no sync, guest RAM (page cache, dirty buffers, queued bios) is lost.
# Then boot 2 runs the same script with VM_BOOT=2 on the same disk images, and so on; the
# last boot's exit status decides.  A boot that exits 0 without asking for a kill just ends
# cleanly and the next boot follows.  Asking for a kill in the last boot is a failure.
# What survives a cut: every write the virtio disk had completed.  Disks use cache=unsafe:
# the guest sees a volatile write cache (so REQ_PREFLUSH/FUA reach the block devices and our
# target's flush paths run), QEMU writes straight into the image file and ignores flushes on
# the host; a killed QEMU process loses nothing it had written, whatever the cache mode.  So
# a cut here drops in-flight and unsubmitted I/O but never "completed but unflushed" writes:
# to test flush ordering, put dm-flakey or dm-log-writes under the device in the guest, or
# use the unit tests' RAM device that drops unflushed writes.
#
# Environment knobs:
#   VM_QUIET=1          do not stream the console; on failure print the scenario's last lines
#   VM_TIMEOUT=SECS     override the scenario's timeout
#   VM_BOOT_TIMEOUT=SECS  limit from QEMU's start to the scenario's start (default 120)
#   VM_KEEP_DISKS=DIR   create the disk images as DIR/<name>-vdX.img and keep them afterwards
#   VM_REUSE_DISKS=1    with VM_KEEP_DISKS: boot on the images already there (not fresh ones)
#   VM_KERNEL=PATH      another kernel image (its modules must be in /lib/modules/<release>)
#   VM_QEMU_ARGS=...    extra qemu arguments
#   VM_CPUS=N           vCPUs of a guest whose scenario has no vm-cpus line (default 2)
#   VM_ARG_<NAME>=...   passed into the guest under the same name, for the scenario's own knobs
#                       (bench/vm-snapshots.sh: VM_ARG_COUNTS, VM_ARG_SKIP)
#
# Two runs of the same scenario name in one tree take turns (a lock in build/vm/); runs of
# different scenarios may overlap, but each guest wants 2 CPUs.
#
# Output: the console of every boot (kernel messages at loglevel 5, the scenario's output,
# then the full dmesg) goes to build/vm/<name>.log; $RESULTS comes back as
# build/vm/<name>.results/.  The last line printed is "PASS <name> (N.N s)" or
# "FAIL <name> (N.N s): <reason>".  Exit status 0 on PASS, 1 on FAIL, 2 on bad usage.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VMDIR=$TOP/tests/vm
OUT=$TOP/build/vm
# Modules the initramfs loads, by name; dependencies are added from modules.dep.
INITRD_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
virtio_blk netfs fscache 9pnet 9pnet_virtio 9p overlay"
POLL=0.1 # seconds between looks at the guest (power-cut marker, timeout, console)

usage()
{
	echo "usage: $0 <name> <scenario-script>" >&2
	exit 2
}

die()
{
	echo "run-one: $*" >&2
	exit 2
}

(($# == 2)) || usage
NAME=$1
SCRIPT=$2
[[ $NAME =~ ^[A-Za-z0-9._-]+$ ]] || die "bad scenario name '$NAME' (letters, digits, . _ - only)"
[[ -f $SCRIPT ]] || die "no such scenario script: $SCRIPT"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not installed (make deps)"
BUSYBOX=$(command -v busybox || true)
[[ -n $BUSYBOX ]] || die "busybox not installed (make deps: busybox-static)"
if ldd "$BUSYBOX" 2>&1 | grep -q '=>'; then
	die "$BUSYBOX is dynamically linked: the initramfs needs busybox-static"
fi

# shellcheck source=tests/vm/header.sh
. "$TOP/tests/vm/header.sh"
# header <key>: the value of the scenario's "# vm-<key>: value" line, or nothing.
header() { vm_header "$SCRIPT" "$1"; }

NDISKS=0
DISKSIZE=0
read -r NDISKS DISKSIZE _ <<<"$(header disks) 0 0" || true
TIMEOUT=${VM_TIMEOUT:-$(header timeout)}
TIMEOUT=${TIMEOUT:-300}
BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-120}
BOOTS=$(header boots)
BOOTS=${BOOTS:-1}
MEMORY=$(header memory)
MEMORY=${MEMORY:-2048}
CPUS=$(header cpus)
CPUS=${CPUS:-${VM_CPUS:-2}}
ALLOW_SPLATS=$(header allow-kernel-splats)
if ! [[ $NDISKS =~ ^[0-9]+$ ]] || ((NDISKS > 26)); then
	die "$SCRIPT: bad vm-disks count '$NDISKS' (0 to 26)"
fi
((NDISKS == 0)) || [[ $DISKSIZE =~ ^[0-9]+[KMGT]?$ ]] || die "$SCRIPT: bad vm-disks size '$DISKSIZE'"
if ! [[ $TIMEOUT =~ ^[0-9]+$ ]] || ((TIMEOUT == 0)); then
	die "$SCRIPT: bad vm-timeout '$TIMEOUT'"
fi
if ! [[ $BOOTS =~ ^[0-9]+$ ]] || ((BOOTS == 0)); then
	die "$SCRIPT: bad vm-boots '$BOOTS'"
fi
[[ $MEMORY =~ ^[0-9]+$ ]] || die "$SCRIPT: bad vm-memory '$MEMORY'"
if ! [[ $CPUS =~ ^[0-9]+$ ]] || ((CPUS == 0 || CPUS > 64)); then
	die "$SCRIPT: bad vm-cpus '$CPUS' (1 to 64)"
fi
read -r -a EXTRA_ARGS <<<"$(header qemu-args) ${VM_QEMU_ARGS:-}"

KERNEL=${VM_KERNEL:-$(find /boot -maxdepth 1 -name 'vmlinuz-*-amd64' 2>/dev/null | sort -V | tail -n 1)}
[[ -n $KERNEL && -r $KERNEL ]] || die "no readable kernel /boot/vmlinuz-*-amd64 (make deps: linux-image-amd64)"
KVER=${KERNEL##*/vmlinuz-}
MODDIR=/lib/modules/$KVER
[[ -f $MODDIR/modules.dep ]] || die "no $MODDIR/modules.dep for kernel $KERNEL"

BUILD_REL=build
if [[ -n ${BUILD:-} && $BUILD != /* ]]; then
	BUILD_REL=$BUILD
fi

mkdir -p "$OUT"
# Two runs of one scenario in one tree (a shared working tree) would write the same log and
# results: the second waits for the first.
exec 8>"$OUT/.$NAME.lock"
if ! flock -n 8; then
	echo "run-one: another run of $NAME in this tree is under way; waiting for it"
	flock 8
fi
LOG=$OUT/$NAME.log
RESDIR=$OUT/$NAME.results

# ---- the initramfs ----------------------------------------------------------------------

# mod_closure <name>...: module paths (relative to $MODDIR) in load order, dependencies
# first, each once; built-in modules are skipped.
declare -A MOD_SEEN=()
MOD_ORDER=()
mod_path()
{
	local pat=${1//[-_]/[-_]}
	sed -n -E "s#^(([^:]*/)?$pat\\.ko(\\.(xz|zst|gz))?):.*#\\1#p" "$MODDIR/modules.dep" | head -n 1
}
mod_add()
{
	local path=$1 dep line
	[[ -n ${MOD_SEEN[$path]:-} ]] && return 0
	MOD_SEEN[$path]=1
	line=$(grep -m 1 -F "$path:" "$MODDIR/modules.dep")
	# modules.dep lists a module's dependencies so that the last one loads first.
	read -r -a deps <<<"${line#*:}"
	local i
	for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
		dep=${deps[i]}
		mod_add "$dep"
	done
	MOD_ORDER+=("$path")
}
for m in $INITRD_MODULES; do
	p=$(mod_path "$m")
	if [[ -z $p ]]; then
		grep -q -E "/${m//[-_]/[-_]}\\.ko\$" "$MODDIR/modules.builtin" 2>/dev/null && continue
		die "kernel $KVER has no module $m"
	fi
	mod_add "$p"
done

INITRD=$OUT/initramfs-$KVER.cpio
initrd_key()
{
	{
		echo "$KVER"
		sha256sum "$VMDIR/initramfs-init.sh"
		stat -L -c '%n %s %Y' "$BUSYBOX"
		local p
		for p in "${MOD_ORDER[@]}"; do
			stat -L -c '%n %s %Y' "$MODDIR/$p"
		done
	} | sha256sum | cut -d ' ' -f 1
}

build_initrd()
{
	local root=$1 p ko a
	mkdir -p "$root"/{bin,sbin,dev,proc,sys,lib/modules,lower,rw,newroot}
	cp "$BUSYBOX" "$root/bin/busybox"
	for a in $("$BUSYBOX" --list); do
		[[ $a == busybox ]] || ln -s busybox "$root/bin/$a"
	done
	: >"$root/modules.list"
	for p in "${MOD_ORDER[@]}"; do
		ko=${p##*/}
		case $ko in
		*.ko.xz) xz -dc "$MODDIR/$p" >"$root/lib/modules/${ko%.xz}" ;;
		*.ko.zst) zstd -q -dc "$MODDIR/$p" >"$root/lib/modules/${ko%.zst}" ;;
		*.ko.gz) gzip -dc "$MODDIR/$p" >"$root/lib/modules/${ko%.gz}" ;;
		*) cp "$MODDIR/$p" "$root/lib/modules/$ko" ;;
		esac
		echo "${ko%.ko*}.ko" >>"$root/modules.list"
	done
	install -m 0755 "$VMDIR/initramfs-init.sh" "$root/init"
	printf '#!/bin/sh\nexec /bin/chroot /newroot /sbin/modprobe "$@"\n' >"$root/sbin/modprobe-chroot"
	chmod 0755 "$root/sbin/modprobe-chroot"
	# /init reopens /dev/console on devtmpfs; the node here only matters for its first lines.
	mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
	(cd "$root" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --quiet) >"$INITRD.tmp.$$"
	mv -f "$INITRD.tmp.$$" "$INITRD"
}

KEY=$(initrd_key)
exec 9>"$OUT/.initramfs.lock"
flock 9
if [[ ! -f $INITRD || "$(cat "$INITRD.key" 2>/dev/null)" != "$KEY" ]]; then
	echo "run-one: building $INITRD (kernel $KVER, ${#MOD_ORDER[@]} modules)"
	ROOT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/zumastor-initrd.XXXXXX")
	if ! build_initrd "$ROOT_TMP"; then
		rm -rf "$ROOT_TMP"
		die "building the initramfs failed"
	fi
	rm -rf "$ROOT_TMP"
	echo "$KEY" >"$INITRD.key"
fi
exec 9>&-

# ---- one run ----------------------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/zumastor-vm-$NAME.XXXXXX")
QPID=""
TPID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup()
{
	if [[ -n $QPID ]]; then
		kill -KILL "$QPID" 2>/dev/null || true
		{ wait "$QPID"; } 2>/dev/null || true
	fi
	if [[ -n $TPID ]]; then
		kill "$TPID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SHARE=$TMP/share
mkdir -p "$SHARE/results"
cp "$VMDIR/guest.sh" "$SHARE/guest.sh"
SCRIPT_BASE=$(basename "$SCRIPT")
cp "$SCRIPT" "$SHARE/$SCRIPT_BASE"

DISKDIR=$TMP/disks
DISKPFX=""
if [[ -n ${VM_KEEP_DISKS:-} ]]; then
	DISKDIR=$VM_KEEP_DISKS
	DISKPFX=$NAME-
fi
mkdir -p "$DISKDIR"
DRIVE_ARGS=()
letters=abcdefghijklmnopqrstuvwxyz
for ((i = 0; i < NDISKS; i++)); do
	img=$DISKDIR/${DISKPFX}vd${letters:i:1}.img
	if [[ -n ${VM_REUSE_DISKS:-} && -n ${VM_KEEP_DISKS:-} ]]; then
		[[ -f $img ]] || die "VM_REUSE_DISKS: no $img"
	else
		rm -f "$img"
		truncate -s "$DISKSIZE" "$img"
	fi
	DRIVE_ARGS+=(-drive "file=$img,format=raw,if=virtio,cache=unsafe,aio=threads")
done

APPEND="console=ttyS0,115200 loglevel=5 log_buf_len=4M panic=-1 oops=panic rdinit=/init edd=off"
APPEND+=" mitigations=off tsc=reliable no_timer_check random.trust_cpu=on"
QEMU=(qemu-system-x86_64 -accel tcg -cpu max -m "$MEMORY" -smp "$CPUS"
	-nographic -nodefaults -no-user-config -monitor none -no-reboot
	-kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND"
	-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
	-virtfs "local,path=$SHARE,mount_tag=vmshare,security_model=none,multidevs=remap"
	"${DRIVE_ARGS[@]}" "${EXTRA_ARGS[@]}")

QUIET=${VM_QUIET:-}
now_ms() { date +%s%3N; }
START=$(now_ms)
{
	echo "zumastor vm: scenario $NAME ($SCRIPT), kernel $KERNEL, $(date -u '+%F %T UTC')"
	echo "zumastor vm: disks $NDISKS x $DISKSIZE, $CPUS vCPU(s), timeout ${TIMEOUT}s per boot, boots $BOOTS"
} >"$LOG"

# The serial console with carriage returns and the firmware's terminal escapes removed.
clean_console()
{
	sed -u -e 's/\r//g' -e 's/\x1bc//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g'
}

# What a person watching sees: from the guest's first line on, without the dmesg dump
# (it is in the log).
stream_filter()
{
	awk '/^(vm-guest|vm-init): / { on = 1 }
		/^vm-guest: ---- dmesg/ { print "vm-guest: (dmesg saved in the log)"; fflush(); skip = 1; next }
		/^vm-guest: ---- end of dmesg/ { skip = 0; next }
		/\] reboot: Power down$/ { next }
		on && !skip { print; fflush() }'
}

# run_boot <n>: boots once; sets BOOT_END to exited|killed|timeout.
run_boot()
{
	local boot=$1 t0 now elapsed=0 started=0 t_start=0
	local console=$TMP/console.$boot
	{
		printf 'export %s=%q\n' VM_NAME "$NAME" VM_BOOT "$boot" VM_BOOTS "$BOOTS" \
			VM_HOST_SRC "$TOP" VM_BUILD_REL "$BUILD_REL" VM_NDISKS "$NDISKS" \
			VM_SCRIPT "$SCRIPT_BASE"
		local arg
		for arg in $(compgen -v VM_ARG_ || true); do
			printf 'export %s=%q\n' "$arg" "${!arg}"
		done
	} >"$SHARE/env"
	rm -f "$SHARE/status.$boot" "$SHARE/results/kill-now"
	: >"$console"
	echo "zumastor vm: ==== boot $boot of $BOOTS ====" >>"$LOG"
	[[ -n $QUIET ]] || echo "run-one: $NAME: boot $boot of $BOOTS (kernel $KVER, TCG)"
	"${QEMU[@]}" -serial "file:$console" </dev/null >"$TMP/qemu.out" 2>&1 &
	QPID=$!
	# The log grows as the guest runs (look at it during a long scenario); a watcher sees
	# the scenario's part of it.
	if [[ -z $QUIET ]]; then
		tail -c +1 -s 0.1 -f --pid="$QPID" "$console" | clean_console | tee -a "$LOG" | stream_filter &
	else
		tail -c +1 -s 0.1 -f --pid="$QPID" "$console" | clean_console >>"$LOG" &
	fi
	TPID=$!
	# The scenario's clock starts when the guest says it starts the script; booting has its
	# own limit, so a slow (shared, loaded) host does not eat the scenario's time.
	t0=$(now_ms)
	BOOT_END=exited
	while kill -0 "$QPID" 2>/dev/null; do
		now=$(now_ms)
		elapsed=$((now - t0))
		if [[ -e $SHARE/results/kill-now ]]; then
			kill -KILL "$QPID" 2>/dev/null || true
			date +%s.%N >"$TMP/cut-time"
			BOOT_END=killed
			break
		fi
		if ((!started)); then
			if grep -q -F 'vm-guest: ---- scenario output' "$console"; then
				started=1
				t_start=$now
			elif ((elapsed > BOOT_TIMEOUT * 1000)); then
				kill -KILL "$QPID" 2>/dev/null || true
				BOOT_END=boot_timeout
				break
			fi
		elif ((now - t_start > TIMEOUT * 1000)); then
			kill -KILL "$QPID" 2>/dev/null || true
			BOOT_END=timeout
			break
		fi
		sleep "$POLL"
	done
	{ wait "$QPID"; } 2>/dev/null || true
	QPID=""
	wait "$TPID" 2>/dev/null || true
	TPID=""
	# A guest that never reached the scenario: show its whole console.
	if [[ -z $QUIET ]] && ! grep -q 'vm-guest: ' "$console"; then
		clean_console <"$console"
	fi
	if [[ -s $TMP/qemu.out ]]; then
		{
			echo "zumastor vm: ---- qemu said ----"
			cat "$TMP/qemu.out"
		} | tee -a "$LOG"
	fi
	local msg=""
	case $BOOT_END in
	killed) msg="power cut: QEMU killed $((elapsed / 1000)).$((elapsed % 1000 / 100)) s after it started (host clock $(cat "$TMP/cut-time"))" ;;
	timeout) msg="TIMEOUT: the scenario ran ${TIMEOUT}s, QEMU killed" ;;
	boot_timeout) msg="the guest did not start the scenario within ${BOOT_TIMEOUT}s, QEMU killed" ;;
	esac
	if [[ -n $msg ]]; then
		echo "zumastor vm: ==== boot $boot: $msg ====" >>"$LOG"
		[[ -n $QUIET ]] || echo "run-one: $NAME: boot $boot: $msg"
	fi
	return 0
}

# Kernel log lines that fail a scenario (and explain a guest that died).
SPLAT_RE='\] (BUG: |WARNING: CPU: |Oops|general protection fault|Kernel panic|kernel BUG at|UBSAN: |KASAN: |INFO: task .* blocked for more than)'
REASON=""
for ((boot = 1; boot <= BOOTS; boot++)); do
	run_boot "$boot"
	status=$(cat "$SHARE/status.$boot" 2>/dev/null || true)
	case $BOOT_END in
	timeout)
		REASON="timed out after ${TIMEOUT}s in boot $boot"
		break
		;;
	boot_timeout)
		REASON="the guest did not boot to the scenario within ${BOOT_TIMEOUT}s (boot $boot)"
		break
		;;
	killed)
		if ((boot == BOOTS)); then
			REASON="the script asked for a power cut in the last boot ($boot of $BOOTS)"
			break
		fi
		continue
		;;
	esac
	if [[ -z $status ]]; then
		REASON="guest stopped in boot $boot without reporting a status"
		why=$(clean_console <"$TMP/console.$boot" | grep -m 1 -o -E "$SPLAT_RE.*" | cut -c 3-100 || true)
		REASON+=${why:+: $why}
		break
	fi
	if [[ $status != 0 ]]; then
		REASON="scenario exited with status $status in boot $boot"
		break
	fi
done

if [[ -z $REASON && $ALLOW_SPLATS != yes ]] && grep -q -E "$SPLAT_RE" "$LOG"; then
	REASON="kernel log shows a BUG/WARNING/Oops: $(grep -m 1 -o -E "$SPLAT_RE.*" "$LOG" | cut -c 3-100)"
fi

rm -f "$SHARE/results/kill-now"
rm -rf "$RESDIR"
mv "$SHARE/results" "$RESDIR"

DUR=$(($(now_ms) - START))
DURS=$((DUR / 1000)).$(((DUR % 1000) / 100))
if [[ -z $REASON ]]; then
	echo "zumastor vm: PASS $NAME (${DURS} s)" >>"$LOG"
	echo "PASS $NAME (${DURS} s)"
	exit 0
fi
echo "zumastor vm: FAIL $NAME (${DURS} s): $REASON" >>"$LOG"
if [[ -n $QUIET ]]; then
	echo "---- $NAME: last lines of the scenario's output (full log: ${LOG#"$TOP"/}) ----"
	awk '/vm-guest: ---- scenario output ----/ { n = 0; delete l; on = 1; next }
		/^(vm-guest: ---- scenario exited|vm-init: |zumastor vm: )/ { on = 0 }
		on { l[n++] = $0 }
		END { for (i = (n > 40 ? n - 40 : 0); i < n; i++) print l[i] }' "$LOG"
	grep -E "$SPLAT_RE" "$LOG" | head -n 5 || true
	echo "----"
else
	echo "run-one: full log: ${LOG#"$TOP"/}"
fi
echo "FAIL $NAME (${DURS} s): $REASON"
exit 1
