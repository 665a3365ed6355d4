#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 64M
# vm-timeout: 180
#
# ddsnap-load: the module loads, registers target type "ddsnap", refuses every malformed
# table line with the expected kernel log message (and creates no device), and unloads
# cleanly with no WARN/BUG/Oops in the log.
set -uo pipefail
export DM_DISABLE_UDEV=1
: "${SRC:?}" "${VM_DISKS:?}"
RESULTS=${RESULTS:-/tmp}
read -r -a disks <<<"$VM_DISKS"
store=${disks[0]}
origin=${disks[1]}
sectors=$(blockdev --getsz "$origin")
fails=0

say()
{
	echo "ddsnap-load: $*" | tee -a "$RESULTS/ddsnap-load.log"
}

fail()
{
	say "FAIL: $*"
	fails=$((fails + 1))
}

# refuse <expected dmesg text> <target args...>: the table must not load, and the kernel
# log must say why.
refuse()
{
	local expect=$1 table
	shift
	table="0 $sectors ddsnap $*"
	mark=$(dmesg | wc -l)
	if dmsetup create ddsnap_bad --table "$table" 2>>"$RESULTS/ddsnap-load.log"; then
		fail "table accepted: $table"
		dmsetup remove ddsnap_bad
		return
	fi
	if dmesg | tail -n +$((mark + 1)) | grep -qF -- "$expect"; then
		say "ok: refused '$*' ($expect)"
	else
		fail "no '$expect' in dmesg for: $table"
		dmesg | tail -n 5 | tee -a "$RESULTS/ddsnap-load.log"
	fi
	# a refused table must leave no device behind
	dmsetup info ddsnap_bad >/dev/null 2>&1 && dmsetup remove ddsnap_bad
}

modprobe dm-mod || true
insmod "$SRC/kernel/dm-ddsnap.ko" || {
	say "FAIL: insmod"
	exit 1
}
dmsetup targets | grep -q '^ddsnap ' || fail "dmsetup targets does not list ddsnap"

long=/$(printf 'x%.0s' {1..120})
refuse "expected 4 arguments" "$store" "$origin" /run/ddsnap.sock
refuse "expected 4 arguments" "$store" "$origin" /run/ddsnap.sock -1 extra
refuse "expected 4 arguments" ""
refuse "is not a number" "$store" "$origin" /run/ddsnap.sock abc
refuse "is not a number" "$store" "$origin" /run/ddsnap.sock 7x
refuse "out of range" "$store" "$origin" /run/ddsnap.sock -2
refuse "out of range" "$store" "$origin" /run/ddsnap.sock 4294967295
refuse "out of range" "$store" "$origin" /run/ddsnap.sock 99999999999999999999999
refuse "neither an absolute path" "$store" "$origin" relative.sock -1
refuse "names no abstract socket" "$store" "$origin" @ -1
refuse "longer than sun_path" "$store" "$origin" "$long" -1
refuse "longer than sun_path" "$store" "$origin" "@${long}" 3
refuse "cannot open snapstore device" /dev/ddsnap-missing "$origin" /run/ddsnap.sock -1
refuse "cannot open origin device" "$store" /dev/ddsnap-missing /run/ddsnap.sock -1
refuse "cannot connect to server socket" "$store" "$origin" /run/ddsnap-none.sock -1
refuse "cannot connect to server socket" "$store" "$origin" @ddsnap-none 0

rmmod dm_ddsnap || fail "rmmod dm_ddsnap"
lsmod | grep -q '^dm_ddsnap ' && fail "dm_ddsnap still loaded"
if dmesg | grep -E 'WARNING:|BUG:|Oops|kmemleak|general protection'; then
	fail "kernel complained"
fi
if ((fails)); then
	say "$fails failure(s)"
	exit 1
fi
say "all passed"
