#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 6 32M
# vm-timeout: 1500
#
# replication-promote (issue 19, doc/replication.md "Promote and re-attach"): three NAS
# "boxes" a, b, c in one guest (box, ssh_box: each its own database, runtime and real sshd
# holding the line `define target` printed).  a's ahome (ext4) -> b's bhome -> c's chome
# after each snapshot.  b, a replica, read over NFS v4: its share's path shows the received
# snapshot, a's bytes, read-only (a write fails with EROFS).  A promote while a receive
# into b is running is refused with nothing changed.  a's next stream into b is cut (b
# keeps a token and a half-applied origin); then a is lost (its key line gone from b's
# sshd) and goes on writing and snapshotting.  b's promotion: refused once while its origin
# device is held open (exit 1, the intent kept, status and check say so, nothing mounted),
# finished by b's next tick, whose first snapshot is b's origin just after the revert: a's
# common snapshot by sha256 (the cut stream undone); b's origin then mounted read-write and
# exported over NFS, where a client writes; c gets b's snapshots as incrementals.  The old
# master a re-attached as b's target: `define source` refused while a's origin is mounted,
# then stop, define source, start; b's plain replicate refused naming a's diverged
# snapshot; --force-full rewinds a and sends one incremental from the common snapshot
# (never a full stream after the loss); a's snapshots after the common one are kept aside
# (held, named, in status --json, their devices unchanged), `forget aside` drops one and
# refuses a name not set aside; b's next snapshot, with the file written over NFS, reaches
# a and c incrementally, identical by sha256; none of b's transfers after the first day is
# full.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

# a -> b -> c, b's replica exported over NFS (read-only while it is a replica, read-write
# once promoted)
repl_chain_up --nfs '127.0.0.1:rw,no_root_squash'
# ssh whose receive stream can be cut at a byte count (a's link to b failing mid-transfer)
ssh_gate
# name T: the snapshot name of time T
name() { "$ZUMASTOR_HELPER" name "$1"; }
# tick BOX T [may-fail]: BOX's tick at time T, its output shown and kept in /run/box/BOX/ticks
tick()
{
	local out rc=0
	out=$(ZUMASTOR_NOW=$2 box "$1" tick 2>&1) || rc=$?
	echo "$out" | tee -a "/run/box/$1/ticks"
	((rc == 0)) || [[ ${3:-} == may-fail ]] || fail "$1's tick at $(name "$2") exited $rc"
	TICK_OUT=$out
}
# vjson BOX VOL: the volume's status --json
vjson() { box "$1" status --json "$2" | jq '.volumes[0]'; }
# sock BOX VOL: the volume's server socket
sock() { echo "/run/box/$1/run/servers/$2.sock"; }

step "day 0: a -> b -> c, the first transfers full"
mkdir /srv/a/d0
head -c 1M /dev/urandom >/srv/a/d0/data
echo "day 0" >/srv/a/today
tick a "$t0"
tick b $((t0 + 60))
tick c $((t0 + 120))
s0=$(name "$t0")
sha0=$(sha_of "/dev/mapper/ahome$s0")
expect_eq "$(sha_of "/dev/mapper/chome$s0")" "$sha0" "c's $s0 is a's"
expect_eq "$(cat "/run/box/b/run/snapshot/bhome/$s0/today")" "day 0" "b's read-only mount of $s0"
# b's users over NFS v4 (v3 and Samba: replication-chain): the share's path shows the
# received $s0, exported read-only though asked read-write
mkdir -p /mnt/nfs
must mount -t nfs -o vers=4.2 127.0.0.1:/srv/b /mnt/nfs
expect_eq "$(findmnt -n -o FSTYPE /mnt/nfs)" nfs4 "b's NFS v4 client's mount type"
expect_eq "$(sha_of /mnt/nfs/d0/data)" "$(sha_of "/run/box/a/run/snapshot/ahome/$s0/d0/data")" "$s0's data on b over NFS v4 against a's"
out=$(touch /mnt/nfs/written 2>&1) && fail "an NFS v4 client wrote to b's replica"
grep -q "Read-only file system" <<<"$out" || fail "the NFS v4 client's write did not fail with EROFS: $out"
umount /mnt/nfs
log "b's NFS v4.2 client read $s0 and could not write"
: >/run/box/b/ticks # b's transfers from here on: none full

step "promote refused while a receive into b is running (nothing changed)"
bdir=/run/box/b/db/volumes/bhome
t1=$((t0 + 3600)) s1=$(name $((t0 + 3600)))
mkfifo /run/stream
(
	rc=0
	SSH_ORIGINAL_COMMAND="receive bhome $s1" box b receive-from a </run/stream >/run/held.out 2>&1 || rc=$?
	echo "$rc" >/run/held.rc
) &
held=$!
exec 4>/run/stream
for _ in $(seq 100); do
	[[ ! -e $bdir/state/source/receiving ]] || break
	sleep 0.2
done
[[ -e $bdir/state/source/receiving ]] || fail "the held receive did not start: $(cat /run/held.out)"
out=$(box b promote bhome 2>&1) && fail "promote ran while a receive was running: $out"
echo "$out"
grep -q "is receiving a transfer from a" <<<"$out" || fail "the refusal does not say why: $out"
[[ -d $bdir/source && ! -e $bdir/state/promoting ]] || fail "the refused promote changed the volume"
exec 4>&-
wait "$held"
[[ $(cat /run/held.rc) != 0 ]] || fail "the held receive succeeded on an empty stream"

step "a's next stream into b cut: b keeps a token and a half-applied origin"
head -c 4M /dev/urandom >/srv/a/cut.bin
echo "hour 1" >/srv/a/today
ZUMASTOR_SSH=/run/bin/ssh-gate SSH_GATE=cut SSH_GATE_AFTER=$((2 << 20)) tick a "$t1" may-fail
grep -q "transfer of $s1 failed" <<<"$TICK_OUT" || fail "a's cut transfer did not fail"
vjson b bhome >/run/st.b
jq -e ".source.token != null" /run/st.b >/dev/null || fail "b has no token after the cut: $(jq -c .source /run/st.b)"
[[ $(sha_of /dev/mapper/bhome) != "$sha0" ]] || fail "the cut stream applied nothing to b's origin"

step "a is lost for b (its key line gone); a writes and takes another snapshot"
: >/run/ssh/b/authorized_keys
ssh -O exit b 2>/dev/null || true
echo "after the loss" >/srv/a/lost.txt
tick a $((t0 + 7200)) may-fail
s3=$(name $((t0 + 7200)))
grep -q "took $s3" <<<"$TICK_OUT" || fail "a took no snapshot while b was unreachable"
grep -q "list on b failed: .*Permission denied" <<<"$TICK_OUT" || fail "a's transfer to b did not fail on b's sshd"
sha3=$(sha_of "/dev/mapper/ahome$s3")

step "b's promotion: its revert refused while its origin is held open, then finished by a tick"
exec 3</dev/mapper/bhome
out=$(box b promote bhome 2>&1) && fail "promote succeeded with the origin held open: $out"
echo "$out"
grep -q "ddsnap revert to $s0 failed (3 attempt(s))" <<<"$out" || fail "promote does not name the failed revert: $out"
expect_eq "$(cat "$bdir/state/promoting")" "$t0" "the promotion's recorded intent"
vjson b bhome >/run/st.b
jq -e ".promotion.state == \"in-progress\" and .promotion.to == \"$s0\"" /run/st.b >/dev/null ||
	fail "status --json promotion: $(jq -c .promotion /run/st.b)"
rc=0
out=$(box b check bhome) || rc=$?
echo "$out"
expect_eq "$rc" 2 "check on an unfinished promotion (CRITICAL)"
grep -q "promotion unfinished" <<<"$out" || fail "check does not say the promotion is unfinished: $out"
# (its mountpoint may show its newest received snapshot, read-only: a replica's users' view)
[[ $(findmnt -n -o SOURCE /srv/b) != /dev/mapper/bhome ]] || fail "b's origin is mounted while its promotion is unfinished"
exec 3<&-
t2=$((t0 + 86400)) s2=$(name $((t0 + 86400)))
tick b "$t2"
grep -q "promoted: a master now, its origin is $s0" <<<"$TICK_OUT" || fail "the tick did not finish the promotion"
grep -q "took $s2" <<<"$TICK_OUT" || fail "b's first tick as a master took no snapshot"
grep -q "target c: send $s2 incremental from $s0" <<<"$TICK_OUT" || fail "c did not get $s2 as an incremental from $s0"
# the snapshot was taken before the mount: it is b's origin as the revert left it
expect_eq "$(sha_of "/dev/mapper/bhome$s2")" "$sha0" "b's origin after the revert (its snapshot $s2) against a's $s0"
[[ ! -e $bdir/source && ! -e $bdir/state/promoting ]] || fail "b is still a replica or promoting"
"$ZUMASTOR_DDSNAP" list --json "$(sock b bhome)" >/run/list.b
jq -e '.receive_token == null and (.revert == null or .revert.state == "done")' /run/list.b >/dev/null ||
	fail "b's server after the promotion: $(jq -c '{receive_token, revert}' /run/list.b)"
findmnt -n -o OPTIONS /srv/b | grep -q '^rw' || fail "b's origin is not mounted read-write"
expect_eq "$(cat /srv/b/today)" "day 0" "b's origin's today (a's common snapshot)"
[[ ! -e /srv/b/cut.bin ]] || fail "the cut stream's file is on b's origin"
exportfs -v | grep -A1 '^/srv/b' | grep -q '[(,]rw[,)]' || fail "b's origin is not exported read-write: $(exportfs -v)"
must mount -t nfs -o vers=3,nolock 127.0.0.1:/srv/b /mnt/nfs
echo "written on b over NFS" >/mnt/nfs/promoted.txt
umount /mnt/nfs

step "re-attach a as b's target: refused while a's origin is mounted, then by an incremental"
adir=/run/box/a/db/volumes/ahome
out=$(box a define source ahome b:bhome 2>&1) && fail "define source ran with a's origin mounted: $out"
echo "$out"
grep -q "'zumastor stop ahome' first" <<<"$out" || fail "the refusal does not say to stop first: $out"
[[ -d $adir/targets/b && ! -e $adir/source ]] || fail "the refused define source changed a's config"
must box a stop ahome
must box a define source ahome b:bhome
must box a start ahome
[[ $(findmnt -n -o SOURCE /srv/a) != /dev/mapper/ahome ]] || fail "a's origin is mounted as a replica"
box b define target bhome a:ahome --after-each-snapshot >/run/box/b/define-a.out || fail "define target a on b"
grep '^restrict' /run/box/b/define-a.out >/run/ssh/a/authorized_keys
out=$(ZUMASTOR_NOW=$((t2 + 300)) box b replicate bhome a 2>&1) && fail "replicate to the diverged a ran: $out"
echo "$out"
grep -q "refused: the replica has $s1, newer than the newest snapshot both sides have" <<<"$out" ||
	fail "the refusal does not name a's snapshot $s1: $out"
out=$(ZUMASTOR_NOW=$((t2 + 360)) box b replicate --force-full bhome a 2>&1) || fail "replicate --force-full: $out"
echo "$out" | tee -a /run/box/b/ticks
grep -q "rewound the replica to $s0" <<<"$out" || fail "a was not rewound to $s0"
grep -q "target a: send $s2 incremental from $s0" <<<"$out" || fail "a did not get $s2 as an incremental from $s0"
vjson a ahome >/run/st.a
for s in "$s1" "$s3"; do
	jq -e --arg s "$s" '.aside | index($s)' /run/st.a >/dev/null || fail "a's $s is not set aside: $(jq -c .aside /run/st.a)"
done
jq -e '.source.host == "b"' /run/st.a >/dev/null || fail "a's source: $(jq -c .source /run/st.a)"
expect_eq "$(sha_of "/dev/mapper/ahome$s3")" "$sha3" "a's set-aside $s3 (what a wrote after the loss)"

step "forget aside: refused for a snapshot not set aside, then one dropped"
out=$(box a forget aside ahome "$s0" 2>&1) && fail "forget aside dropped $s0: $out"
grep -q "$s0 is not set aside" <<<"$out" || fail "the refusal: $out"
must box a forget aside ahome "$s1"
"$ZUMASTOR_DDSNAP" list --json "$(sock a ahome)" >/run/list.a
jq -e --argjson t "$t1" 'all(.snapshots[]; .tag != $t)' /run/list.a >/dev/null || fail "$s1 is still on a's server"
vjson a ahome | jq -e --arg s "$s3" '.aside | index($s)' >/dev/null || fail "a's other set-aside snapshots went too"

step "b's next snapshot (the file written over NFS) reaches a and c incrementally"
t3=$((t2 + 3600)) s4=$(name $((t2 + 3600)))
tick b "$t3"
for r in a c; do
	grep -q "target $r: send $s4 incremental from $s2" <<<"$TICK_OUT" || fail "$r did not get $s4 as an incremental"
done
tick c $((t3 + 60))
tick a $((t3 + 120))
sha4=$(sha_of "/dev/mapper/bhome$s4")
expect_eq "$(sha_of "/dev/mapper/chome$s2")" "$sha0" "c's $s2 is b's"
expect_eq "$(sha_of "/dev/mapper/chome$s4")" "$sha4" "c's $s4 is b's"
expect_eq "$(sha_of "/dev/mapper/ahome$s4")" "$sha4" "a's $s4 is b's"
expect_eq "$(cat "/run/box/b/run/snapshot/bhome/$s4/promoted.txt")" "written on b over NFS" "b's $s4 holds the NFS client's file"
! grep -q " in full" /run/box/b/ticks || fail "b sent a full stream: $(grep ' in full' /run/box/b/ticks)"
vjson a ahome | jq -e --arg s "$s4" '.source.newest_received == $s' >/dev/null || fail "a's newest received is not $s4"
log "replication-promote: PASS"
