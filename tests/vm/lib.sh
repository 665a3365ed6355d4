# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Helpers for VM scenarios (tests/vm/scenarios/*.sh, tests/vm/demo.sh), sourced inside the
# guest after "set -euo pipefail":
#
#   . "$SRC/tests/vm/lib.sh"
#
# Reporting:     log MSG | step MSG | fail MSG | must CMD... | must_fail CMD...
#                expect_eq ACTUAL EXPECTED WHAT | expect_same FILE1 FILE2 WHAT
# Data:          sha_of PATH [OFFSET LEN] | tree_sums DIR | pattern SEED LEN [POS]
#                write_pattern PATH SEED OFFSET LEN | check_pattern PATH SEED OFFSET LEN
#                drop_caches
# Devices:       DISKS (array of $VM_DISKS) | wait_for_dev PATH [SECS] | dev_sectors DEV
#                dm_create NAME TABLE | dm_remove NAME
# Our module:    have_ddsnap | load_ddsnap
# Kernel log:    kmsg_mark | kmsg_since_mark | expect_kmsg REGEX WHAT | expect_no_kmsg REGEX WHAT
# Power cuts:    vm_power_cut  (see tests/vm/run-one.sh; $RESULTS survives every boot)
# Real server:   srv_setup NAME | srv_start | srv_stop | srv_kill
#                srv_dev TAG | srv_dev_up TAG  (the ddsnap devices of $store/$origin/$sock)
# A NAS box:     vm_udev_up | nas_servers_up (NFS v3+v4, smbd) | mon_setup | z ARGS...
#                ssh_box NAME PORT [VAR=VALUE...] (an sshd per box, for replication)
#                box NAME ARGS... | box_env NAME  (several boxes' monitors in one guest)
# Replication:   repl_chain_up EXPORT-OPTION...  (boxes a -> b -> c over ssh, volumes started)
#
# A failing "set -e" command is reported with its line and status before the script exits.
# Offsets and lengths are in bytes.  Nothing here needs more than coreutils, util-linux,
# dmsetup, kmod and openssl (for pattern).

[[ -n ${VM_LIB_LOADED:-} ]] && return 0
VM_LIB_LOADED=1

: "${SRC:?lib.sh runs inside the VM guest (run-one.sh sets SRC)}"
: "${BUILD:=$SRC/build}"
: "${RESULTS:=/tmp/results}"
export DM_DISABLE_UDEV=1
# shellcheck disable=SC2034 # for the scenarios
read -r -a DISKS <<<"${VM_DISKS:-}"
VM_LIB_T0=$(date +%s%N)
DDSNAP_KO=$SRC/kernel/dm-ddsnap.ko

# log MSG...: a line prefixed with the seconds since the scenario started.
log()
{
	local ns=$(($(date +%s%N) - VM_LIB_T0))
	printf '[%3d.%01ds] %s\n' $((ns / 1000000000)) $((ns / 100000000 % 10)) "$*"
}

# step MSG...: a heading for the next part of the scenario.
step()
{
	echo
	log "== $*"
}

# fail MSG...: reports the failure and ends the scenario with status 1.  (Inside a $(...)
# or a pipeline only that subshell ends; "set -e" then ends the script.)
fail()
{
	echo "FAIL: $*" >&2
	exit 1
}

vm_lib_err()
{
	local where="${BASH_SOURCE[1]##*/} line $1"
	if [[ $4 == *" "* ]]; then
		echo "FAIL: $where: a pipeline ending in '$2' failed (statuses: $4)" >&2
	else
		echo "FAIL: $where: '$2' exited with status $3" >&2
	fi
}
if [[ $- == *e* ]]; then
	trap 'vm_lib_err "$LINENO" "$BASH_COMMAND" "$?" "${PIPESTATUS[*]}"' ERR
fi

# must CMD...: runs CMD, fails the scenario (with the command line) if it does not exit 0.
must()
{
	local rc=0
	"$@" || rc=$?
	((rc == 0)) || fail "command failed with status $rc: $*"
}

# must_fail CMD...: runs CMD, fails the scenario if it exits 0.
must_fail()
{
	if "$@"; then
		fail "command succeeded but should have failed: $*"
	fi
	return 0
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq()
{
	[[ $1 == "$2" ]] || fail "$3: got '$1', expected '$2'"
}

# expect_same FILE1 FILE2 WHAT: the two files have the same bytes (a diff is shown if not).
expect_same()
{
	cmp -s "$1" "$2" && return 0
	diff -u "$1" "$2" | head -n 40 >&2 || true
	fail "$3: $1 and $2 differ"
}

# sha_of PATH [OFFSET LEN]: the sha256 of a file or device, or of LEN bytes at OFFSET.  A
# whole block device is read with O_DIRECT (what is on it, not a stale page cache); for a
# region, call drop_caches first if the device was written through another path.
sha_of()
{
	if (($# == 1)) && [[ -b $1 ]]; then
		dd if="$1" bs=1M iflag=direct status=none | sha256sum | cut -d ' ' -f 1
	elif (($# == 1)); then
		sha256sum <"$1" | cut -d ' ' -f 1
	else
		dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none |
			sha256sum | cut -d ' ' -f 1
	fi
}

# tree_sums DIR: "sha256  path" for every regular file under DIR, sorted, paths relative to
# DIR; plus "link target path" for symlinks.  Compare two with expect_same.
tree_sums()
{
	(
		cd "$1" || exit 1
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
		find . -type l -printf 'link %l %p\n' | LC_ALL=C sort
	)
}

# pattern SEED LEN [POS]: bytes POS..POS+LEN-1 (POS defaults to 0) of SEED's stream, an
# endless deterministic pseudo-random byte stream (AES-128-CTR keyed by SEED, any string).
# write_pattern and check_pattern put stream byte X at offset X, so a block that lands at
# a wrong offset, or comes from another seed, is caught.
pattern()
{
	command -v openssl >/dev/null || fail "pattern needs openssl"
	local key pos=${3:-0} iv
	key=$(printf 'zumastor-pattern %s' "$1" | sha256sum | cut -c 1-32)
	iv=$(printf '%032x' $((pos / 16)))
	head -c $(($2 + pos % 16)) /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K "$key" -iv "$iv" 2>/dev/null |
		tail -c "+$((pos % 16 + 1))"
}

# write_pattern PATH SEED OFFSET LEN: writes SEED's stream bytes OFFSET..OFFSET+LEN-1 at
# OFFSET (no truncation).
write_pattern()
{
	pattern "$2" "$4" "$3" |
		dd of="$1" bs=1M iflag=fullblock oflag=seek_bytes seek="$3" conv=notrunc status=none ||
		fail "write_pattern $*: dd failed"
}

# check_pattern PATH SEED OFFSET LEN: fails unless those bytes are what write_pattern with
# the same arguments wrote.
check_pattern()
{
	local want got
	want=$(pattern "$2" "$4" "$3" | sha256sum | cut -d ' ' -f 1)
	got=$(sha_of "$1" "$3" "$4")
	[[ $got == "$want" ]] || fail "$1: bytes $3+$4 are not pattern '$2'"
}

# drop_caches: writes back and drops the page cache, so reads come from the devices.
drop_caches()
{
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# wait_for_dev PATH [SECS]: waits (default 10 s) for a block device node.
wait_for_dev()
{
	local i n=$((${2:-10} * 10))
	for ((i = 0; i < n; i++)); do
		[[ -b $1 ]] && return 0
		sleep 0.1
	done
	fail "device $1 did not appear within ${2:-10} s"
}

# dev_sectors DEV: size in 512-byte sectors.
dev_sectors()
{
	blockdev --getsz "$1"
}

# dm_create NAME TABLE: creates a device-mapper device (udev-less) and waits for its node.
dm_create()
{
	local out
	out=$(dmsetup create "$1" --table "$2" 2>&1) || fail "dmsetup create $1 '$2': $out"
	wait_for_dev "/dev/mapper/$1"
}

# dm_remove NAME: removes a device-mapper device, retrying briefly while it is busy.
dm_remove()
{
	local i out
	for ((i = 0; i < 20; i++)); do
		out=$(dmsetup remove "$1" 2>&1) && return 0
		sleep 0.2
	done
	fail "dmsetup remove $1: $out"
}

# have_ddsnap: true if our module was built.
have_ddsnap()
{
	[[ -f $DDSNAP_KO ]]
}

# load_ddsnap: loads $SRC/kernel/dm-ddsnap.ko (and the stock modules it depends on) unless
# it is loaded already.
load_ddsnap()
{
	have_ddsnap || fail "$DDSNAP_KO is not built (make kernel)"
	[[ -d /sys/module/dm_ddsnap ]] && return 0
	local deps d out
	deps=$(modinfo -F depends "$DDSNAP_KO" 2>/dev/null || true)
	modprobe dm-mod || fail "modprobe dm-mod failed"
	for d in ${deps//,/ }; do
		modprobe "$d" || fail "modprobe $d (needed by dm-ddsnap) failed"
	done
	out=$(insmod "$DDSNAP_KO" 2>&1) || fail "insmod $DDSNAP_KO: $out"
}

# kmsg_mark: remembers the end of the kernel log; the kmsg helpers below look past it.
VM_KMSG_MARK=0
kmsg_mark()
{
	VM_KMSG_MARK=$(dmesg | wc -l)
}

# kmsg_since_mark: the kernel log lines since the last kmsg_mark (all, without one).
kmsg_since_mark()
{
	dmesg | tail -n "+$((VM_KMSG_MARK + 1))"
}

# The two checks below grep a copy of the log, not a pipe from dmesg: a grep that stops
# at its first match would kill the writer with SIGPIPE, and under pipefail the pipeline
# would then report failure for a match (expect_kmsg failed, expect_no_kmsg passed).

# expect_kmsg REGEX WHAT: fails unless a kernel log line since the mark matches REGEX (ERE).
expect_kmsg()
{
	local log
	log=$(kmsg_since_mark)
	grep -q -E -- "$1" <<<"$log" && return 0
	tail -n 20 <<<"$log" >&2
	fail "$2: no kernel message matching '$1'"
}

# expect_no_kmsg REGEX WHAT: fails if a kernel log line since the mark matches REGEX.
expect_no_kmsg()
{
	local log hit
	log=$(kmsg_since_mark)
	hit=$(grep -m 1 -E -- "$1" <<<"$log") || return 0
	fail "$2: unexpected kernel message: $hit"
}

# vm_power_cut: asks the host to kill the VM now (SIGKILL to QEMU: no sync, no shutdown;
# guest RAM is lost, completed disk writes stay).  Only valid when the scenario declares
# "# vm-boots: 2" (or more) and this is not the last boot.  Never returns.
vm_power_cut()
{
	((${VM_BOOT:-1} < ${VM_BOOTS:-1})) || fail "vm_power_cut in boot ${VM_BOOT:-1} of ${VM_BOOTS:-1} (declare '# vm-boots: N')"
	log "power cut requested"
	: >"$RESULTS/kill-now"
	sleep 60
	fail "the host did not cut the power within 60 s"
}

# ---- The real server (ddsnapd), for the server-* scenarios -------------------------------

# srv_setup NAME: sets ddsnap (a private copy of build/bin/ddsnap: the shared tree may rebuild
# its own while a scenario runs), sock and pidfile for a server called NAME.  The scenario
# sets store and origin before srv_start.
srv_setup()
{
	install -m 0755 "$BUILD/bin/ddsnap" /tmp/ddsnap
	# shellcheck disable=SC2034 # used by the scenarios
	ddsnap=/tmp/ddsnap sock=/run/ddsnap-$1.sock pidfile=/run/ddsnapd-$1.pid
}

# srv_start: starts the server on $store and $origin, listening on $sock, logging to
# $RESULTS/server.log; a start that hangs fails after 120 s.
srv_start()
{
	# shellcheck disable=SC2154 # the scenario sets store and origin
	must timeout 120 "$ddsnap" server -l "$RESULTS/server.log" -p "$pidfile" \
		"$store" "$origin" "$sock"
}

# srv_stop: SIGTERM, then waits (30 s at most) until the server has removed its pid file
# (its final txg is synced by then).
srv_stop()
{
	kill -TERM "$(cat "$pidfile")"
	for _ in $(seq 150); do
		[[ -e $pidfile ]] || return 0
		sleep 0.2
	done
	fail "the server did not stop on SIGTERM within 30 s"
}

# srv_dev TAG: the path of the ddsnap device of TAG: /dev/mapper/vol for the origin (-1),
# /dev/mapper/vol@TAG for a snapshot (names dmsetup's default mangling and udev leave alone).
srv_dev()
{
	if [[ $1 == -1 ]]; then echo /dev/mapper/vol; else echo "/dev/mapper/vol@$1"; fi
}

# srv_dev_up TAG: creates that device, $n sectors of the ddsnap target on $store, $origin
# and $sock (the scenario sets n).
srv_dev_up()
{
	# shellcheck disable=SC2154 # the scenario sets n, store, origin and sock
	dm_create "$(basename "$(srv_dev "$1")")" "0 $n ddsnap $store $origin $sock $1"
}

# srv_kill: SIGKILL, and waits until the process is gone.
srv_kill()
{
	local pid
	pid=$(cat "$pidfile")
	kill -KILL "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	log "server $pid killed"
}

# ---- A NAS box: udev, the NFS server and smbd, for the monitor scenarios and the demo ------

# vm_udev_up: starts udevd and replays the kernel's add events, as on a real box (DESIGN.md 7);
# from then on dmsetup leaves node creation to udev.
vm_udev_up()
{
	# The guest's root is entered with chroot (initramfs-init.sh), and systemd's tools refuse
	# to act in a chroot ("Running in chroot, ignoring request") unless told it is fine.
	export SYSTEMD_IGNORE_CHROOT=1
	/lib/systemd/systemd-udevd --daemon
	udevadm trigger --action=add 2>&1 | tee /tmp/udev-trigger.out
	! grep -q chroot /tmp/udev-trigger.out || fail "udevadm trigger refused to replay the add events"
	udevadm settle
	[[ -e /dev/disk/by-id || -e /dev/disk/by-path ]] || fail "udev made no /dev/disk links"
	unset DM_DISABLE_UDEV
}

# nas_servers_up: the real nfs-kernel-server (rpcbind, mountd, NFS v3 and v4) and smbd on the
# loopback interface.  Their config is what an admin's box has plus what zumastor adds: an
# empty /etc/exports (zumastor writes /etc/exports.d/zumastor.exports) and one include line
# in smb.conf's [global] section (zumastor writes /etc/samba/zumastor.conf).
#
# NFSv4 clients see one tree, whose root mountd makes from "/" and whose directories above
# each export are pseudo exports: every filesystem on those paths must be exportable.  A
# real box's root (ext4, xfs) is; the guest's root, an overlay on 9p, is not (a v4 mount is
# refused with "No such file or directory").  So here /srv is a tmpfs, and mountd runs
# chrooted in /run/nfsroot, a tmpfs holding the same tree (every top-level directory bound
# there recursively, with shared propagation, so that mounts made later under /srv and /run
# appear there too): the paths it resolves are the paths zumastor exports.  What the tests
# prove is unchanged by this: the exports, the fsids and the mounts are zumastor's.  The v4
# grace period is cut to 10 s (the minimum), so a v4 open does not wait 90 s after the start.
nas_servers_up()
{
	local e
	ip link set lo up
	modprobe -a nfsd nfs nfsv3 nfsv4
	mountpoint -q /proc/fs/nfsd || mount -t nfsd nfsd /proc/fs/nfsd
	rpcbind -w
	mkdir -p /etc/exports.d /var/lib/samba/private /var/cache/samba /run/samba /var/log/samba
	: >/etc/exports
	cat >/etc/samba/smb.conf <<'SMB'
[global]
	server role = standalone server
	map to guest = bad user
	disable netbios = yes
	smb ports = 445
	log file = /var/log/samba/log.%m
	include = /etc/samba/zumastor.conf
SMB
	mountpoint -q /srv || mount -t tmpfs -o mode=0755 srv /srv
	mount --make-rshared /srv
	mount --make-rshared /run
	mkdir -p /run/nfsroot
	mount -t tmpfs -o mode=0755 nfsroot /run/nfsroot
	mount --make-private /run/nfsroot
	for e in /*; do
		if [[ -L $e ]]; then
			cp -P "$e" "/run/nfsroot$e"
		elif [[ -d $e ]]; then
			mkdir "/run/nfsroot$e"
			# /run itself: without the binds under it (/run/nfsroot would hold itself)
			if [[ $e == /run ]]; then
				mount --bind /run /run/nfsroot/run
			else
				mount --rbind "$e" "/run/nfsroot$e"
			fi
		fi
	done
	rpc.nfsd -G 10 -L 10 2
	chroot /run/nfsroot rpc.mountd
	smbd -D
}

# ssh_box NAME PORT [VAR=VALUE ...]: a real sshd for the "box" NAME on 127.0.0.1:PORT, so
# one guest can hold several NAS boxes that replicate to each other over ssh (issue 19).  Each
# box's sshd has its own authorized_keys, /run/ssh/NAME/authorized_keys, where a scenario puts
# the exact line `zumastor define target` printed on the sending box, and passes its
# sessions the VAR=VALUE pairs (SetEnv: the box's ZUMASTOR_ROOT, ZUMASTOR_RUN, ...), which is
# what makes a forced command act on that box's config database.  Root logs in with keys and
# only to run a forced command (PermitRootLogin forced-commands-only), as on a real receiver.
# The client side: `ssh NAME` reaches that sshd (/root/.ssh/config), checking the host key
# against /root/.ssh/known_hosts (no accept-new: a wrong key fails as it would on a box),
# through one shared connection per box (ControlMaster), as an admin's ssh config would.
ssh_box()
{
	local name=$1 port=$2 d=/run/ssh/$1
	shift 2
	ip link set lo up
	mkdir -p /run/sshd "$d" /root/.ssh
	chmod 0755 /run/ssh "$d"
	chmod 0700 /root/.ssh
	[[ -f /etc/ssh/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
	# sshd runs each forced command with root's shell, and bash -c reads ~/.bashrc when sshd
	# started it.  The guest's /root is the host's: a development machine's .bashrc (pyenv
	# init: about 7 s a session under TCG, two sessions a transfer) is no NAS box's.  The
	# guest gets Debian's stock root .bashrc, in its overlay only.
	cp /usr/share/base-files/dot.bashrc /root/.bashrc
	touch "$d/authorized_keys"
	chmod 0600 "$d/authorized_keys"
	{
		echo "ListenAddress 127.0.0.1"
		echo "Port $port"
		echo "HostKey /etc/ssh/ssh_host_ed25519_key"
		echo "PidFile $d/sshd.pid"
		echo "AuthorizedKeysFile $d/authorized_keys"
		echo "PermitRootLogin forced-commands-only"
		echo "PasswordAuthentication no"
		echo "KbdInteractiveAuthentication no"
		echo "UsePAM no"
		echo "LogLevel VERBOSE"
		(($# == 0)) || echo "SetEnv $*"
	} >"$d/sshd_config"
	/usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log" || fail "sshd for box $name did not start (see $d/sshd.log)"
	{
		echo "Host $name"
		echo "	HostName 127.0.0.1"
		echo "	Port $port"
		echo "	HostKeyAlias $name"
		echo "	StrictHostKeyChecking yes"
		echo "	BatchMode yes"
		# One connection per box, shared by the sessions that follow (key exchange costs
		# seconds under TCG); each session still runs the forced command.
		echo "	ControlMaster auto"
		echo "	ControlPath /run/ssh/cm-%n"
		echo "	ControlPersist 600"
	} >>/root/.ssh/config
	echo "$name $(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)" >>/root/.ssh/known_hosts
	log "sshd for box $name on 127.0.0.1:$port"
}

# mon_setup: the zumastor monitor from the source tree with private copies of ddsnap and
# zumastor-helper (the build tree is shared live and may be relinked while a scenario runs);
# z runs it.  Times are UTC unless the scenario sets TZ after this.
mon_setup()
{
	mkdir -p /run/bin
	cp "$BUILD/bin/ddsnap" "$BUILD/bin/zumastor-helper" /run/bin/
	export ZUMASTOR_DDSNAP=/run/bin/ddsnap ZUMASTOR_HELPER=/run/bin/zumastor-helper TZ=UTC
}
z() { "$SRC/monitor/zumastor" "$@"; }

# box_env NAME: the VAR=VALUE words (one a word) that make the monitor act as the NAS box
# NAME, when a scenario holds several boxes in one guest (replication): its own config
# database, runtime, log, replication key directory and host name under /run/box/NAME, and
# its own export files, /etc/exports.d/zumastor-NAME.exports (exportfs reads them all) and
# /etc/samba/zumastor-NAME.conf (not included by nas_servers_up's smb.conf: a scenario that
# serves a box's Samba shares includes it), so that one box's runtime never rewrites
# another's exports.  After mon_setup; ssh_box NAME PORT $(box_env NAME) gives the box's
# forced commands the same environment.
box_env()
{
	echo "ZUMASTOR_ROOT=/run/box/$1/db ZUMASTOR_RUN=/run/box/$1/run ZUMASTOR_LOG=/run/box/$1/log" \
		"ZUMASTOR_SSH_DIR=/run/box/$1/ssh ZUMASTOR_HOSTNAME=$1 ZUMASTOR_DDSNAP=$ZUMASTOR_DDSNAP" \
		"ZUMASTOR_HELPER=$ZUMASTOR_HELPER ZUMASTOR_EXPORTS=/etc/exports.d/zumastor-$1.exports" \
		"ZUMASTOR_SMB_CONF=/etc/samba/zumastor-$1.conf TZ=UTC"
}

# box NAME ARGS...: the monitor as box NAME (box_env); /run/box/NAME is made for the
# scenario's own files too.
box()
{
	local b=$1
	shift
	mkdir -p "/run/box/$b"
	# shellcheck disable=SC2046 # one VAR=VALUE a word
	env $(box_env "$b") "$SRC/monitor/zumastor" "$@"
}

# ---- Replication: three boxes in a chain, for replication-chain and replication-promote ----

# repl_chain_up EXPORT-OPTION...: the NAS boxes a, b and c of the replication scenarios in one
# guest: udev, the NFS server and smbd (b's Samba include added to smb.conf), the module,
# mon_setup, and an sshd per box (ssh_box: a on 127.0.0.1:2201, b on 2202, c on 2203, each
# with its box_env).  a's ahome (on DISKS 0 and 1, ext4 made here, mounted at /srv/a) is
# replicated after each snapshot to b's bhome (DISKS 2 and 3, /srv/b), which passes it on to
# c's chome (DISKS 4 and 5, /srv/c); all three keep hourly 4, daily 7.  b's authorized_keys
# holds exactly the line `define target` printed on a (checked to be a forced
# `zumastor receive-from a` with an ed25519 key), c's the one printed on b.
# EXPORT-OPTION... are bhome's `define export` options.  Sets t0 (2026-12-01 10:00 UTC), the
# time a was started at.
repl_chain_up()
{
	local b
	step "udev, the module, the NFS server and smbd, three boxes with their own sshd"
	vm_udev_up
	nas_servers_up
	load_ddsnap
	mon_setup
	sed -i 's|^\tinclude = /etc/samba/zumastor.conf$|&\n\tinclude = /etc/samba/zumastor-b.conf|' /etc/samba/smb.conf
	grep -q zumastor-b.conf /etc/samba/smb.conf || fail "b's Samba include is not in smb.conf"
	# shellcheck disable=SC2046 # one VAR=VALUE a word
	ssh_box a 2201 $(box_env a)
	# shellcheck disable=SC2046
	ssh_box b 2202 $(box_env b)
	# shellcheck disable=SC2046
	ssh_box c 2203 $(box_env c)
	t0=$(date -u -d 2026-12-01T10:00:00 +%s)

	step "volumes: ahome on a (ext4), its replicas bhome on b and chome on c"
	must box a define volume ahome "${DISKS[0]}" "${DISKS[1]}" --initialize --mountpoint /srv/a
	must box b define volume bhome "${DISKS[2]}" "${DISKS[3]}" --initialize --mountpoint /srv/b
	must box c define volume chome "${DISKS[4]}" "${DISKS[5]}" --initialize --mountpoint /srv/c
	for b in a b c; do must box "$b" define schedule "${b}home" --hourly 4 --daily 7; done
	box a define target ahome b:bhome --after-each-snapshot >/run/box/a/define.out || fail "define target on a"
	grep -q "^restrict,command=\"[^\"]*/zumastor receive-from a\" ssh-ed25519 " /run/box/a/define.out ||
		fail "define target printed no key line: $(cat /run/box/a/define.out)"
	grep '^restrict' /run/box/a/define.out >/run/ssh/b/authorized_keys
	must box b define source bhome a:ahome
	box b define target bhome c:chome --after-each-snapshot >/run/box/b/define.out || fail "define target on b"
	grep -q "^restrict,command=\"[^\"]*/zumastor receive-from b\" ssh-ed25519 " /run/box/b/define.out ||
		fail "define target printed no key line: $(cat /run/box/b/define.out)"
	grep '^restrict' /run/box/b/define.out >/run/ssh/c/authorized_keys
	must box c define source chome b:bhome
	must box b define export bhome "$@"
	ZUMASTOR_NOW=$t0 must box a start ahome
	mkfs.ext4 -q /dev/mapper/ahome
	ZUMASTOR_NOW=$t0 must box a start ahome
	mountpoint -q /srv/a || fail "ahome's ext4 is not mounted"
	must box b start bhome
	must box c start chome
}

# wait_moved PATTERN BYTES [FIELD]: waits (60 s at most) for the newest process whose command
# line matches PATTERN (pgrep -f) to have moved BYTES (FIELD of /proc/PID/io: rchar, the
# default, what it read, or wchar, what it wrote; behind a rate-limited pipe, the bytes of
# the stream) and prints its pid.  A fault injected on progress, not on time: however slow
# the guest, the stream is under way then.  A process that ends before moving BYTES fails
# the scenario (the stream was too short for the fault).
wait_moved()
{
	local pat=$1 bytes=$2 field=${3:-rchar} pid="" n k v i tick
	# the poll forks nothing once the process is found (a read with a timeout on a fifo
	# that never has data is the sleep): a loaded guest still sees the stream mid-way
	[[ -p /run/wait_moved.fifo ]] || mkfifo /run/wait_moved.fifo
	exec {tick}<>/run/wait_moved.fifo
	for ((i = 0; i < 3000; i++)); do
		if [[ -z $pid ]]; then
			pid=$(pgrep -n -f "$pat") || pid=""
		elif [[ ! -e /proc/$pid ]]; then
			fail "wait_moved: $pid ($pat) ended before it moved $bytes bytes"
		fi
		if [[ -n $pid ]]; then
			n=0
			while read -r k v; do [[ $k != "$field:" ]] || n=$v; done <"/proc/$pid/io" 2>/dev/null || n=0
			if ((n >= bytes)); then
				exec {tick}>&-
				echo "$pid"
				return 0
			fi
		fi
		read -r -t 0.02 -u "$tick" _ || true
	done
	fail "wait_moved: no process matching '$pat' moved $bytes bytes ($field) within 60 s"
}

# ssh_gate: /run/bin/ssh-gate, an ssh for the monitor (ZUMASTOR_SSH=/run/bin/ssh-gate) whose
# receive requests' stream is cut or held at a byte count, not at a time: a fault injected
# there cannot come too late, however slow the guest.  Other requests, and a receive
# without SSH_GATE_AFTER set, are plain ssh.  With SSH_GATE_AFTER=BYTES the receiver gets
# the stream's first BYTES (GNU head -c reads no more than it writes), then:
#   SSH_GATE=cut   the end of the stream (the link failing mid-transfer);
#   SSH_GATE=hold  nothing until the scenario releases it (gate_wait, gate_open): the
#                  sender is blocked on its pipe meanwhile, at most the pipes' buffers
#                  (tee's and the gate's, 64K each) past BYTES.
ssh_gate()
{
	mkdir -p /run/bin /run/gate
	cat >/run/bin/ssh-gate <<'EOF'
#!/bin/bash
[[ " $* " == *" receive "* && -n ${SSH_GATE_AFTER:-} ]] || exec ssh "$@"
if [[ ${SSH_GATE:-hold} == cut ]]; then
	head -c "$SSH_GATE_AFTER" | ssh "$@"
	exit
fi
{
	head -c "$SSH_GATE_AFTER"
	touch /run/gate/held
	while [[ ! -e /run/gate/open ]]; do sleep 0.05; done
	rm -f /run/gate/held /run/gate/open
	cat
} | ssh "$@"
EOF
	chmod +x /run/bin/ssh-gate
}

# gate_wait SENDER-PATTERN RECEIVER-PATTERN RBYTES: waits (60 s at most) until a held gate
# (ssh_gate) has passed its bytes, then until the receiver, the newest process matching
# RECEIVER-PATTERN, has read RBYTES (rchar; no more than the gate passed), and prints
# "SENDER-PID RECEIVER-PID" (the sender: the newest matching SENDER-PATTERN).  The scenario
# injects its fault, then gate_open.
gate_wait()
{
	local i spid rpid
	for ((i = 0; i < 600; i++)); do
		[[ -e /run/gate/held ]] && break
		sleep 0.1
	done
	[[ -e /run/gate/held ]] || fail "gate_wait: the stream did not reach the gate within 60 s"
	spid=$(pgrep -n -f "$1") || fail "gate_wait: no sender matching '$1' at the gate"
	rpid=$(wait_moved "$2" "$3" rchar) || exit 1
	echo "$spid $rpid"
}

# gate_open: the held stream goes on (what is left of it); returns once the gate has let go,
# ready for the next stream.
gate_open()
{
	local i
	touch /run/gate/open
	for ((i = 0; i < 600; i++)); do
		[[ -e /run/gate/open ]] || return 0
		sleep 0.1
	done
	fail "gate_open: the gate did not let go within 60 s"
}
