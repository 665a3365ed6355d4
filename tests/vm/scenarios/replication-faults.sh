#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 6 32M
# vm-timeout: 1500
#
# replication-faults (issue 19, doc/replication.md): boxes a -> b -> c in one guest, each its
# own database, runtime and real sshd (box, ssh_box), on raw volumes (write_pattern data, no
# filesystem; the checks are sha256 of devices).  a's ahome goes to b's bhome after each
# snapshot at --rate 512k (after the rate limit's 1M burst a 2M change takes 2 s more: time
# to hold the stream mid-way, hold_stream, and inject the fault there); b passes it on to
# c's chome once a simulated day (--period 1440), so c is checked once, at the end.  Each
# fault is followed by the next ordinary `zumastor tick` (ZUMASTOR_NOW), after which b's
# newest snapshot is a's newest, with a's bytes (b's origin against a's snapshot device).
# Only the first transfer of each link is full (every tick's output is counted):
#   1. b's `ddsnap receive` killed mid-stream (the stream held after 1.5M): a's tick fails
#      with the snapshot in flight held; the next (after the backoff) resumes from b's
#      token, incrementally;
#   2. a's `ddsnap send` killed mid-stream: the same.
# Then b's next daily tick passes a's newest on to c, incrementally: c's newest is a's.
# Not here yet (doc/replication.md): b's server killed mid-transfer (the defect a draft of
# it found, every next tick refused, is fixed: snap_finish, with a host test), b's store
# filled, hard pruning on a, a diverged replica.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

MB=$((1 << 20))
step "udev, the module, boxes a -> b -> c, b and c with their own sshd; b's store is 12M"
vm_udev_up
load_ddsnap
mon_setup
# shellcheck disable=SC2046 # one VAR=VALUE a word
ssh_box b 2202 $(box_env b)
# shellcheck disable=SC2046
ssh_box c 2203 $(box_env c)
dm_create bstore "0 24576 linear ${DISKS[3]} 0"
must box a define volume ahome "${DISKS[0]}" "${DISKS[1]}" --initialize
must box b define volume bhome "${DISKS[2]}" /dev/mapper/bstore --initialize
must box c define volume chome "${DISKS[4]}" "${DISKS[5]}" --initialize
must box a define schedule ahome --hourly 2
for b in b c; do must box "$b" define schedule "${b}home" --hourly 3; done
box a define target ahome b:bhome --after-each-snapshot --rate 512k >/run/box/a/define.out || fail "define target on a"
grep '^restrict' /run/box/a/define.out >/run/ssh/b/authorized_keys
must box b define source bhome a:ahome
box b define target bhome c:chome --period 1440 >/run/box/b/define.out || fail "define target on b"
grep '^restrict' /run/box/b/define.out >/run/ssh/c/authorized_keys
must box c define source chome b:bhome
# the three boxes start at once, as three machines would
for b in a b c; do box "$b" start "${b}home" >"/run/start.$b" 2>&1 & done
for b in a b c; do wait -n || fail "a start failed: $(cat /run/start.?)"; done
t0=$(date -u -d 2026-12-01T10:00:00 +%s)

fulls=0
# tick BOX TIME [EXIT]: BOX's tick at TIME, which must exit EXIT (0); its output is kept in
# /run/tick.BOX and shown; a full stream is counted.
tick()
{
	local rc=0
	ZUMASTOR_NOW=$2 box "$1" tick >"/run/tick.$1" 2>&1 || rc=$?
	sed "s/^/  $1: /" "/run/tick.$1"
	((rc == ${3:-0})) || fail "$1's tick at $2 exited $rc, not ${3:-0}"
	if grep -q " in full" "/run/tick.$1"; then fulls=$((fulls + 1)); fi
	return 0
}
# newest BOX: the tag of BOX's newest snapshot (its server's list: no monitor run)
newest()
{
	"$ZUMASTOR_DDSNAP" list --json "/run/box/$1/run/servers/${1}home.sock" | jq -r '[.snapshots[].tag] | max // 0'
}
# on BOX WHAT: BOX's newest snapshot is a's newest, and BOX's origin (which a replica never
# writes after a receive) has the bytes of a's snapshot device.
on()
{
	local tag n
	tag=$(newest a)
	n=$("$ZUMASTOR_HELPER" name "$tag")
	expect_eq "$(newest "$1")" "$tag" "$2: $1's newest snapshot"
	expect_eq "$(sha_of "/dev/mapper/${1}home")" "$(sha_of "/dev/mapper/ahome$n")" "$2: $1's $n is a's"
	log "$2: $1 has $n, identical to a's"
}
ST=/run/box/a/db/volumes/ahome/state/targets/b
# was_cut WHAT: a's tick failed with the snapshot in flight recorded and one failure.
was_cut()
{
	grep -q "transfer of @GMT-[0-9.-]* failed" /run/tick.a || fail "$1: a's tick reported no failed transfer"
	[[ -s $ST/sending ]] || fail "$1: the snapshot in flight is not recorded"
	expect_eq "$(cat "$ST/failures")" 1 "$1: a's failures"
	log "$1: a's last error: $(cat "$ST/last-error")"
}
# resumed WHAT: a's tick resumed the cut stream, incrementally, and sent it.
resumed()
{
	grep -q "target b: resume @GMT-[0-9.-]* incremental from @GMT-" /run/tick.a ||
		fail "$1: a's tick did not resume an incremental: $(cat /run/tick.a)"
	grep -q "target b: sent " /run/tick.a || fail "$1: a's tick sent nothing"
}

step "the first transfers: a -> b, b -> c, in full"
write_pattern /dev/mapper/ahome base 0 $((2 * MB))
tick a "$t0"
on b "first"
tick b $((t0 + 30))
expect_eq "$fulls" 2 "the first transfer of each link is full"

RECV="ddsnap receive .*/box/b/run/servers/bhome.sock"
SEND="ddsnap send .*/box/a/run/servers/ahome.sock"
# fault TIME SEED OFFSET WHAT WHO: a writes 2M at OFFSET, its tick at TIME takes a snapshot
# and sends it; the stream is held (hold_stream) once a's ddsnap send has written 1.5M of
# it and b's receive has read 1M, and WHO (recv: b's ddsnap receive, send: a's ddsnap
# send) is killed there; the tick fails.
fault()
{
	local tp spid rpid pid pids
	write_pattern /dev/mapper/ahome "$2" "$3" $((2 * MB))
	ZUMASTOR_NOW=$1 box a tick >/run/tick.a 2>&1 &
	tp=$!
	pids=$(hold_stream "$SEND" $((3 * MB / 2)) "$RECV" "$MB")
	read -r spid rpid <<<"$pids"
	if [[ $5 == recv ]]; then pid=$rpid; else pid=$spid; fi
	kill -KILL "$pid"
	kill -CONT "$spid" 2>/dev/null || true
	log "$4: killed pid $pid mid-stream"
	if wait "$tp"; then
		cat /run/tick.a
		fail "$4: a's tick succeeded"
	fi
	sed "s/^/  a: /" /run/tick.a
	was_cut "$4"
}

step "1. b's ddsnap receive killed mid-stream; a's next tick resumes"
t=$((t0 + 3600))
fault "$t" one $((2 * MB)) "receiver killed" recv
tick a $((t + 61))
resumed "receiver killed"
on b "receiver killed"

step "2. a's ddsnap send killed mid-stream; a's next tick resumes"
t=$((t0 + 2 * 3600))
fault "$t" two $((4 * MB)) "sender killed" send
tick a $((t + 61))
resumed "sender killed"
on b "sender killed"

step "b's next daily tick passes a's newest on to c, incrementally"
tick b $((t0 + 86400 + 3600))
grep -q "target c: send @GMT-[0-9.-]* incremental from " /run/tick.b || fail "b did not send on to c"
on c "the end"

step "no full resend; no leftovers"
expect_eq "$fulls" 2 "full streams (the first of each link only)"
box a status --json ahome >/run/st.a
jq -e '.volumes[0].targets[0].failures == 0 and .volumes[0].targets[0].last_error == null and .volumes[0].targets[0].behind == 0' /run/st.a >/dev/null ||
	fail "a's status at the end: $(jq -c '.volumes[0].targets[0]' /run/st.a)"
for b in c b a; do must box "$b" stop "${b}home"; done
log "replication-faults: PASS"
