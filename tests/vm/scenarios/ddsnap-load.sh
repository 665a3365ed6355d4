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
	# grep a copy: grep -q ending the pipe early would fail it under pipefail (SIGPIPE)
	if grep -qF -- "$expect" <<<"$(dmesg | tail -n +$((mark + 1)))"; then
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
refuse "0..4294967293 (snapshot)" "$store" "$origin" /run/ddsnap.sock 4294967294 # reserved
refuse "out of range" "$store" "$origin" /run/ddsnap.sock 99999999999999999999999
refuse "neither an absolute path" "$store" "$origin" relative.sock -1
refuse "names no abstract socket" "$store" "$origin" @ -1
refuse "longer than sun_path" "$store" "$origin" "$long" -1
refuse "longer than sun_path" "$store" "$origin" "@${long}" 3
refuse "cannot open snapstore device" /dev/ddsnap-missing "$origin" /run/ddsnap.sock -1
refuse "cannot open origin device" "$store" /dev/ddsnap-missing /run/ddsnap.sock -1
refuse "cannot connect to server socket" "$store" "$origin" /run/ddsnap-none.sock -1
refuse "cannot connect to server socket" "$store" "$origin" @ddsnap-none 0

# A listener that never answers IDENTIFY: the ctr gives up after the handshake timeout.
python3 -c 'import socket, time
s = socket.socket(socket.AF_UNIX)
s.bind("\0ddsnap-mute")
s.listen(4)
time.sleep(60)' &
mute=$!
for ((i = 0; i < 100; i++)); do
	grep -q '@ddsnap-mute$' /proc/net/unix && break
	sleep 0.2
done
refuse "server did not answer IDENTIFY in time" "$store" "$origin" @ddsnap-mute -1
kill "$mute" 2>/dev/null
wait "$mute" 2>/dev/null

# The wire TEST PEER (tests/vm/wirepeer.c, not the server): refuses an unknown snapshot,
# accepts the origin; the device then shows its status and unloads.
# shellcheck source=tests/vm/wirepeer.sh
. "$SRC/tests/vm/wirepeer.sh"
PEER_ORIGIN=$origin
PEER_STORE=$store
peer_build
peer_start lp
refuse "server refused IDENTIFY (error -61)" "$store" "$origin" /run/lp.sock 5
if dmsetup create ddsnap_ok --table "0 $sectors ddsnap $store $origin /run/lp.sock -1"; then
	st=$(dmsetup status ddsnap_ok)
	say "status: $st"
	[[ $st == *mode=normal*connected=1* ]] || fail "status of a fresh device: $st"
	dmsetup remove ddsnap_ok || fail "remove a valid device"
else
	fail "a valid table was refused"
fi
peer_cmd lp quit

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
