#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 6 32M
# vm-timeout: 1500
#
# replication-faults (issue 19, doc/replication.md): boxes a -> b -> c in one guest, each its
# own database, runtime and real sshd (box, ssh_box), on raw volumes (write_pattern data, no
# filesystem; the checks are sha256 of devices).  a's ahome goes to b's bhome after each
# snapshot at --rate 512k; a's ssh is lib.sh's ssh_gate, which holds a stream at 1.5M for a
# fault to be injected there (gate_wait, gate_open); b passes it on to
# c's chome once a simulated day (--period 1440), so c lags and the base b keeps for it
# pins b's store.  Each fault is followed by the next ordinary `zumastor tick`
# (ZUMASTOR_NOW), after which b's newest snapshot is a's newest, with a's bytes (b's origin
# against a's snapshot device); c is checked at the end.  Only the first transfer of each
# link is full (every tick's output is counted):
#   1. b's `ddsnap receive` killed mid-stream (the stream held at 1.5M of 2M): a's
#      tick fails with the snapshot in flight held; the next (after the backoff) resumes
#      from b's token;
#   2. a's `ddsnap send` killed mid-stream: the same;
#   3. b's server killed (SIGKILL) mid-transfer, its receive stopped meanwhile: b's tick
#      starts the server again; a's transfer goes on (the receive's writes waited for the
#      new server), or, if the receive ended while the server was away (the guest runs
#      met both), a's next tick resumes, or finds b's snapshot taken by snap_finish and
#      records the transfer as done;
#   4. b's store filled (12M, the base kept for c pinning 6M, a 5.5M change coming): a's
#      tick fails, status says the store is out of space; b's next tick sends on to c,
#      which releases the old base at once (holds_now), and a's next tick resumes;
#   5. a's retention cut to --hourly 1 while b is behind by two snapshots (the older one
#      pruned at once): the base is held, never pruned; the next tick sends one
#      incremental from it;
#   6. b's origin written behind the monitor's back: refused naming it, nothing on b
#      changed (sha256 before and after), status shows the error; `zumastor replicate
#      --force-full` rewinds b to the base (its data set aside) and sends the incremental,
#      no full stream.
# Faults 5 and 6 write 128K at a time: b's store, with c's base still pinning fault 4's
# 5.5M, has about 1.5M left (a first draft's three 512K writes in fault 5 filled it, and
# fault 6's write on b's origin was then lost to ENOSPC: nothing was refused).
# Then b's next daily tick passes a's newest on to c, incrementally: c's newest is a's.
# The faults used to be injected when a poll saw the sender's progress (SIGSTOP once a's send
# had written 1.5M), which with one vCPU once came after the sender's last byte (fault 2: b
# applied the whole stream), so the scenario ran alone on two vCPUs; the gate holds the
# stream at a byte count, whatever the guest's speed.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

MB=$((1 << 20))
KB=$((1 << 10))
step "udev, the module, boxes a -> b -> c, b and c with their own sshd; b's store is 12M"
vm_udev_up
load_ddsnap
mon_setup
ssh_gate
export ZUMASTOR_SSH=/run/bin/ssh-gate
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
	local rc=0 s=$SECONDS
	ZUMASTOR_NOW=$2 box "$1" tick >"/run/tick.$1" 2>&1 || rc=$?
	sed "s/^/  $1: /" "/run/tick.$1"
	log "$1's tick: $((SECONDS - s)) s"
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
# and sends it; the stream is held at 1.5M (gate_wait) once b's receive has read 1M, and WHO
# (recv: b's ddsnap receive, send: a's ddsnap send) is killed there; the tick fails.
fault()
{
	local tp spid rpid pid pids
	write_pattern /dev/mapper/ahome "$2" "$3" $((2 * MB))
	SSH_GATE_AFTER=$((3 * MB / 2)) ZUMASTOR_NOW=$1 box a tick >/run/tick.a 2>&1 &
	tp=$!
	pids=$(gate_wait "$SEND" "$RECV" "$MB")
	read -r spid rpid <<<"$pids"
	if [[ $5 == recv ]]; then pid=$rpid; else pid=$spid; fi
	kill -KILL "$pid"
	gate_open
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

step "3. b's server killed (SIGKILL) mid-transfer; b's tick starts it, a's goes on"
t=$((t0 + 3 * 3600))
write_pattern /dev/mapper/ahome three $((6 * MB)) $((2 * MB))
SSH_GATE_AFTER=$((3 * MB / 2)) ZUMASTOR_NOW=$t box a tick >/run/tick.a 2>&1 &
tp=$!
# the stream held mid-way, and b's receive stopped while its server is killed
pids=$(gate_wait "$SEND" "$RECV" "$MB")
read -r _ rpid <<<"$pids"
kill -STOP "$rpid"
bpid=$(cat /run/box/b/run/pid/bhome.pid)
kill -KILL "$bpid"
while kill -0 "$bpid" 2>/dev/null; do sleep 0.1; done
kill -CONT "$rpid" || true
gate_open
log "b's server $bpid killed mid-stream"
# b's own tick (every minute on a real box); c is not due (daily)
tick b $((t + 30))
grep -q "restarting it\|restarted" /run/tick.b || fail "b's tick did not start its server again"
for ((i = 0; i < 600; i++)); do kill -0 "$tp" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$tp" 2>/dev/null; then
	ps axf >&2 || true
	fail "a's tick hangs 60 s after b's server was started again"
fi
rc=0
wait "$tp" || rc=$?
sed "s/^/  a: /" /run/tick.a
if ((rc == 0)); then
	log "the transfer went on with b's new server"
else
	# the receive either stopped (its token: resumed) or applied the whole stream and could
	# not take the snapshot (b's tick or the next list takes it: nothing left to send)
	was_cut "server killed"
	tick a $((t + 61))
	if grep -q "target b: resume " /run/tick.a; then
		resumed "server killed"
	else
		grep -q "target b: the replica has @GMT-[0-9.-]*, the newest" /run/tick.a ||
			fail "server killed: a's next tick neither resumed nor found b up to date"
		expect_eq "$(cat "$ST/failures" 2>/dev/null || echo 0)" 0 "server killed: a's failures once b has the snapshot"
	fi
fi
on b "server killed"

step "4. b's store filled (c a day behind pins 6M): a clear error; b sends on, a resumes"
t=$((t0 + 86400 + 3600))
write_pattern /dev/mapper/ahome four $((8 * MB)) $((11 * MB / 2))
tick a "$t" 1
was_cut "store full"
box a status --json ahome | jq -r '.volumes[0].targets[0].last_error' >/run/store-full.err
log "store full: a's status says: $(cat /run/store-full.err)"
grep -qi "space" /run/store-full.err || fail "the last error does not say the store is out of space: $(cat /run/store-full.err)"
# b's next tick: c is due, b sends it its newest; the base it replaced is released at once
tick b $((t + 30))
grep -q "target c: send @GMT-[0-9.-]* incremental from " /run/tick.b || fail "b did not send on to c"
tick a $((t + 61))
resumed "store full"
on b "store full"

step "5. a prunes hard (hourly 1) while b is behind: the base stays, one incremental"
must box a define schedule ahome --hourly 1
base=$("$ZUMASTOR_HELPER" name "$(newest b)")
for i in 1 2; do
	t=$((t + 3600))
	write_pattern /dev/mapper/ahome "five$i" $((14 * MB + (i - 1) * 128 * KB)) $((128 * KB))
	ZUMASTOR_NOW=$t must box a snapshot ahome >/dev/null
done
box a status --json ahome >/run/st.a
jq -e --arg b "$base" '.volumes[0].snapshots | map(select(.name == $b and (.why | test("replication base")))) | length == 1' /run/st.a >/dev/null ||
	fail "a did not keep b's base $base as a replication base: $(jq -c '.volumes[0].snapshots' /run/st.a)"
expect_eq "$(jq '.volumes[0].snapshots | length' /run/st.a)" 2 "a keeps its newest and the base"
tick a $((t + 60))
grep -q "target b: send @GMT-[0-9.-]* incremental from $base" /run/tick.a || fail "a did not send one incremental from the base"
on b "hard pruning"

step "6. b's origin written behind the monitor's back: refused, nothing on b overwritten"
t=$((t + 3600))
write_pattern /dev/mapper/bhome rogue $((20 * MB)) $((128 * KB))
"$ZUMASTOR_DDSNAP" list --json /run/box/b/run/servers/bhome.sock | jq -e .origin_written >/dev/null ||
	fail "the write on b's origin did not reach it"
bn=$(newest b)
before="$(sha_of /dev/mapper/bhome) $(newest b)"
write_pattern /dev/mapper/ahome six $((20 * MB)) $((128 * KB))
tick a "$t" 1
grep -q "refused: .*written" /run/tick.a || fail "a's tick did not refuse the written replica"
expect_eq "$(sha_of /dev/mapper/bhome) $(newest b)" "$before" "b's origin and newest snapshot after the refusal"
box a status --json ahome | jq -r '.volumes[0].targets[0].last_error' >/run/refused.err
grep -q "^refused: .*written" /run/refused.err || fail "a's status: $(cat /run/refused.err)"
log "refused: $(cat /run/refused.err)"
ZUMASTOR_NOW=$((t + 10)) box a replicate ahome --force-full >/run/force.out 2>&1 || fail "replicate --force-full: $(cat /run/force.out)"
sed "s/^/  a: /" /run/force.out
grep -q "rewound the replica to @GMT-" /run/force.out || fail "--force-full did not rewind b"
! grep -q " in full" /run/force.out || fail "--force-full sent a full stream although b and a have a common snapshot"
box b status --json bhome >/run/st.b
jq -e '.volumes[0].source.aside | length == 1' /run/st.b >/dev/null || fail "b's own data is not kept set aside: $(jq -c '.volumes[0].source' /run/st.b)"
n=$("$ZUMASTOR_HELPER" name "$(newest a)")
# (b's own snapshot of its written origin, set aside, is newer: b's clock)
expect_eq "$(jq -r '.volumes[0].source.newest_received' /run/st.b)" "$n" "forced: b's newest received snapshot"
expect_eq "$(sha_of /dev/mapper/bhome)" "$(sha_of "/dev/mapper/ahome$n")" "forced: b's origin is a's $n"
log "forced: b has a's $n on top of $("$ZUMASTOR_HELPER" name "$bn"); what was written on b is set aside"

step "b's next daily tick passes a's newest on to c, incrementally"
tick b $((t0 + 2 * 86400 + 7200))
grep -q "target c: send @GMT-[0-9.-]* incremental from " /run/tick.b || fail "b did not send on to c"
on c "the end"

step "no full resend; no leftovers"
expect_eq "$fulls" 2 "full streams (the first of each link only)"
box a status --json ahome >/run/st.a
jq -e '.volumes[0].targets[0].failures == 0 and .volumes[0].targets[0].last_error == null and .volumes[0].targets[0].behind == 0' /run/st.a >/dev/null ||
	fail "a's status at the end: $(jq -c '.volumes[0].targets[0]' /run/st.a)"
for b in c b a; do must box "$b" stop "${b}home"; done
log "replication-faults: PASS"
