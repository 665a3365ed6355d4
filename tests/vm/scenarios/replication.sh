#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 6 48M
# vm-timeout: 780
#
# replication: ddsnap send / receive between two volumes in one guest, a master and a
# replica, each with its own server, socket and ddsnap devices.  ext4 on the master and a
# series of snapshots with changes between them (in-place edits, appends, deletes, a file
# truncated and then rewritten past its old end: the ZFS hole-birth reproducer).  A full
# send through a pipe, incrementals through a pipe and over TCP on 127.0.0.1; after each,
# the replica's snapshot device has the sha256 of the master's.  A stream cut midway (head
# -c) and a receiver killed midway (SIGKILL) both resume from the receiver's token and end
# identical.  A stream for a base the replica does not have is refused and leaves the
# replica's origin and snapshots untouched; an incremental from an older base then works.
# A stray write on the replica's origin makes the next incremental refused.  Every received
# snapshot carries the master's identity (list --json origin_uuid and origin_gen, issue 19),
# and the replica's list --json says when its origin was written (origin_written).  A chain:
# the replica passes snapshots on to a third volume, the incremental from its own
# changelist (its origin written by receive through its device), and the third volume's
# snapshots carry the master's identity and the master's bytes.
# ddsnap revert: refused while the origin is mounted or open; the replica's own snapshot
# 100 and writes after it, a revert to 7 whose server is SIGKILLed midway (create, delete 7
# and receive refused until the same revert, run again, finishes), then origin = snapshot 7
# and snapshots 5, 7 and 100 unchanged; 7 -> 8 accepted although 100 is newer; after a
# revert to 8 and a raw write on the origin, 8 -> 9 refused.
#
# send and receive find their devices by the dm table (socket and tag), not by name: the
# master's are named by hand (home, home@N), the replica's as the monitor names them
# (offsite, offsite@GMT-...), neither after its socket.  A receive whose base snapshot has no
# device is refused with the socket and tag named, and writes nothing.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

# A private copy: the build tree is shared live over 9p and may be relinked meanwhile.
ddsnap=/run/ddsnap
cp "$BUILD/bin/ddsnap" "$ddsnap"
mstore=${DISKS[0]} morigin=${DISKS[1]} rstore=${DISKS[2]}
# The replica's origin is a linear dm device over its disk, so that the revert step can
# suspend it: the server then stops at the revert's first origin I/O, its marker durable.
load_ddsnap
dm_create rorigin "0 $(blockdev --getsz "${DISKS[3]}") linear ${DISKS[3]} 0"
rorigin=/dev/mapper/rorigin
msock=/run/mvol.sock rsock=/run/rvol.sock
# receive's default token for /run/rvol.sock
token=/run/rvol.token
port=7455
rcv_pid=
trap '[[ -n $rcv_pid ]] && kill -9 "$rcv_pid" 2>/dev/null; true' EXIT

# refused NAME FROM TO MESSAGE WHAT: the stream FROM -> TO from the master is refused by the
# replica (WHAT: what a success would mean), with MESSAGE on its stderr ($RESULTS/NAME.txt).
refused()
{
	local rc=0
	"$ddsnap" send "$msock" "$2" "$3" | "$ddsnap" receive "$rsock" "$3" 2>"$RESULTS/$1.txt" || rc=$?
	cat "$RESULTS/$1.txt"
	((rc != 0)) || fail "$5"
	grep -q -- "$4" "$RESULTS/$1.txt" || fail "the refusal does not say '$4'"
}

# dev mvol|rvol TAG: the device of snapshot TAG (-1: the origin), master or replica.
dev()
{
	local name=home
	[[ $1 == mvol ]] || name=offsite
	if [[ $2 == -1 ]]; then
		echo "/dev/mapper/$name"
	elif [[ $1 == mvol ]]; then
		echo "/dev/mapper/$name@$2"
	else
		echo "/dev/mapper/$name$(date -u -d "@$2" +@GMT-%Y.%m.%d-%H.%M.%S)"
	fi
}
# same TAG: the replica's snapshot device TAG has the bytes of the master's.
same()
{
	local m r
	drop_caches
	m=$(sha_of "$(dev mvol "$1")")
	r=$(sha_of "$(dev rvol "$1")")
	expect_eq "$r" "$m" "replica snapshot $1 (sha256 of the device)"
	log "snapshot $1 identical on the replica: ${m:0:16}"
}
snap_dev() # snap_dev VOL TAG: makes the device of snapshot TAG (-1: the origin)
{
	local store origin sock
	if [[ $1 == mvol ]]; then
		store=$mstore origin=$morigin sock=$msock
	else
		store=$rstore origin=$rorigin sock=$rsock
	fi
	dm_create "$(basename "$(dev "$1" "$2")")" "0 $n ddsnap $store $origin $sock $2"
}
master_snap() # master_snap TAG
{
	sync
	must "$ddsnap" create "$msock" "$1"
	snap_dev mvol "$1"
}
replica_tags()
{
	"$ddsnap" list "$rsock" | awk '{print $1}' | tr '\n' ' '
}

step "two volumes: master and replica, each with its own server and devices"
must "$ddsnap" initialize "$mstore" "$morigin"
must "$ddsnap" initialize "$rstore" "$rorigin"
must "$ddsnap" server -l "$RESULTS/master.log" -p /run/mvol.pid "$mstore" "$morigin" "$msock"
must "$ddsnap" server -l "$RESULTS/replica.log" -p /run/rvol.pid "$rstore" "$rorigin" "$rsock"
load_ddsnap
ip link set lo up # the guest has no network; TCP mode runs on loopback
n=$("$ddsnap" status --size "$msock")
expect_eq "$("$ddsnap" status --size "$rsock")" "$n" "replica volume size"
kmsg_mark
snap_dev mvol -1
snap_dev rvol -1
log "devices: $(dmsetup info -c --noheadings -o name | sort | tr '\n' ' ')"

step "ext4 on the master, files, snapshot 1, full send through a pipe"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$(dev mvol -1)"
mkdir -p /mnt/m /mnt/r
mount "$(dev mvol -1)" /mnt/m
for i in 1 2 3 4 5 6; do
	write_pattern "/mnt/m/f$i" "one-$i" 0 $((300 * 1024 + i * 7000))
done
write_pattern /mnt/m/hole "hole-1" 0 $((1024 * 1024))
cp -a /usr/share/common-licenses /mnt/m/
master_snap 1
"$ddsnap" send "$msock" 1 | "$ddsnap" receive -v "$rsock" 1
expect_eq "$(replica_tags)" "1 " "replica snapshots after the full send"
snap_dev rvol 1
same 1

step "edits, appends, deletes, hole-birth; snapshot 2; incremental 1 -> 2 through a pipe"
write_pattern /mnt/m/f1 "two-1" 4096 20000
write_pattern /mnt/m/f2 "two-2-tail" $((300 * 1024 + 2 * 7000)) 100000
rm /mnt/m/f3 /mnt/m/common-licenses/G*
# hole birth: the file shrinks to 4 KiB, then is written 512 KiB past its old end; the
# blocks in between were freed and are a hole that must read as zeros on the replica
truncate -s 4096 /mnt/m/hole
sync
write_pattern /mnt/m/hole "hole-2" $((1536 * 1024)) 65536
write_pattern /mnt/m/g1 "two-g1" 0 $((3 * 1024 * 1024))
master_snap 2
"$ddsnap" send "$msock" 1 2 | "$ddsnap" receive -v "$rsock" 2
snap_dev rvol 2
same 2

step "more changes; snapshot 3; incremental 2 -> 3 over TCP on 127.0.0.1"
write_pattern /mnt/m/f4 "three-4" 8192 50000
rm /mnt/m/f5
write_pattern /mnt/m/g2 "three-g2" 0 $((2 * 1024 * 1024))
master_snap 3
timeout 120 "$ddsnap" receive -v --listen "127.0.0.1:$port" "$rsock" 3 &
rcv_pid=$!
must timeout 120 "$ddsnap" send -v --to "127.0.0.1:$port" "$msock" 2 3
wait "$rcv_pid" || fail "receive --listen exited with status $?"
rcv_pid=
snap_dev rvol 3
same 3

step "snapshot 4 (8 MiB of new data); a stream cut midway resumes from the token"
write_pattern /mnt/m/big "four-big" 0 $((8 * 1024 * 1024))
write_pattern /mnt/m/f6 "four-6" 0 30000
master_snap 4
rm -f "$token"
sha_r3=$(sha_of "$(dev rvol 3)")
rc=0
"$ddsnap" send "$msock" 3 4 | head -c 3000000 | "$ddsnap" receive "$rsock" 4 || rc=$?
((rc != 0)) || fail "a stream cut at 3 MB was received"
[[ -s $token ]] || fail "the cut transfer left no resume token in $token"
expect_eq "$(replica_tags)" "1 2 3 " "no snapshot 4 on the replica after the cut"
cp "$token" /run/token-copy # what the sender gets (scp, ssh cat) in real life
"$ddsnap" send -t /run/token-copy "$msock" 3 4 | "$ddsnap" receive -v "$rsock" 4
[[ ! -e $token ]] || fail "the token survived a completed transfer"
snap_dev rvol 4
same 4
expect_eq "$(sha_of "$(dev rvol 3)")" "$sha_r3" "replica snapshot 3 after receiving 4"

step "snapshot 5; the receiver is killed midway (SIGKILL) and the transfer resumes"
write_pattern /mnt/m/big "five-big" 0 $((6 * 1024 * 1024))
master_snap 5
"$ddsnap" receive --listen "127.0.0.1:$port" "$rsock" 5 &
rcv_pid=$!
# a slow sender, so the receiver dies with part of the stream applied
"$ddsnap" send -r -l 1M --to "127.0.0.1:$port" "$msock" 4 5 &
snd_pid=$!
sleep 2.5
kill -9 "$rcv_pid"
wait "$rcv_pid" 2>/dev/null || true
rcv_pid=
rc=0
wait "$snd_pid" || rc=$?
((rc != 0)) || fail "send succeeded although its receiver was killed"
[[ -s $token ]] || fail "the killed receiver left no resume token"
expect_eq "$(replica_tags)" "1 2 3 4 " "no snapshot 5 on the replica after the kill"
cp "$token" /run/token-copy
"$ddsnap" send -r -t /run/token-copy "$msock" 4 5 | "$ddsnap" receive -v "$rsock" 5
snap_dev rvol 5
same 5

step "a stream for a base the replica does not have is refused; an older base works"
write_pattern /mnt/m/f1 "six-1" 0 40000
master_snap 6
write_pattern /mnt/m/f2 "seven-2" 0 40000
master_snap 7
drop_caches
sha_origin=$(sha_of "$(dev rvol -1)")
sha_r5=$(sha_of "$(dev rvol 5)")
refused wrongbase 6 7 "wrong base" "a stream based on snapshot 6 was received by a replica without it"
expect_eq "$(replica_tags)" "1 2 3 4 5 " "replica snapshots after the refusal"
drop_caches
expect_eq "$(sha_of "$(dev rvol -1)")" "$sha_origin" "replica origin after the refusal"
expect_eq "$(sha_of "$(dev rvol 5)")" "$sha_r5" "replica snapshot 5 after the refusal"

step "a receive whose base snapshot has no device is refused, naming the socket and tag"
dm_remove "$(basename "$(dev rvol 5)")"
refused nodev 5 7 "no device-mapper device shows snapshot 5 of $rsock" "a stream was received although the base snapshot 5 has no device"
expect_eq "$(replica_tags)" "1 2 3 4 5 " "replica snapshots after the refusal"
drop_caches
expect_eq "$(sha_of "$(dev rvol -1)")" "$sha_origin" "replica origin after the refusal"
snap_dev rvol 5
"$ddsnap" send "$msock" 5 7 | "$ddsnap" receive -v "$rsock" 7
snap_dev rvol 7
same 7
same 1

step "list --json: each received snapshot has the master's uuid and gen; no token, not written"
"$ddsnap" list --json "$msock" >"$RESULTS/master.json"
"$ddsnap" list --json "$rsock" >"$RESULTS/replica.json"
cat "$RESULTS/replica.json"
for t in 1 2 3 4 5 7; do
	q=".snapshots[] | select(.tag == $t) | [.origin_uuid, .origin_gen]"
	expect_eq "$(jq -c "$q" "$RESULTS/replica.json")" "$(jq -c "$q" "$RESULTS/master.json")" \
		"identity of snapshot $t on the replica"
done
expect_eq "$(jq -r '.snapshots[0].origin_uuid' "$RESULTS/replica.json")" \
	"$(jq -r .uuid "$RESULTS/master.json")" "the replica's snapshots are the master's"
expect_eq "$(jq -c '[.origin_written, .receive_token]' "$RESULTS/replica.json")" "[false,null]" \
	"the replica's origin_written and receive_token"

step "a chain: the replica sends 1 in full and 1 -> 7 incrementally to a third volume"
cstore=${DISKS[4]} corigin=${DISKS[5]} csock=/run/cvol.sock
must "$ddsnap" initialize "$cstore" "$corigin"
must "$ddsnap" server -l "$RESULTS/third.log" -p /run/cvol.pid "$cstore" "$corigin" "$csock"
dm_create third "0 $n ddsnap $cstore $corigin $csock -1"
"$ddsnap" send "$rsock" 1 | "$ddsnap" receive -v "$csock" 1
dm_create third@1 "0 $n ddsnap $cstore $corigin $csock 1"
"$ddsnap" send -v "$rsock" 1 7 | "$ddsnap" receive -v "$csock" 7
dm_create third@7 "0 $n ddsnap $cstore $corigin $csock 7"
drop_caches
for t in 1 7; do
	expect_eq "$(sha_of "/dev/mapper/third@$t")" "$(sha_of "$(dev mvol "$t")")" \
		"the third volume's snapshot $t (sha256 of the device)"
done
"$ddsnap" list --json "$csock" >"$RESULTS/third.json"
cat "$RESULTS/third.json"
for t in 1 7; do
	q=".snapshots[] | select(.tag == $t) | [.origin_uuid, .origin_gen]"
	expect_eq "$(jq -c "$q" "$RESULTS/third.json")" "$(jq -c "$q" "$RESULTS/master.json")" \
		"identity of snapshot $t on the third volume"
done

step "the replica's snapshot 7 mounts and shows the master's files"
mount -o ro,noload "$(dev rvol 7)" /mnt/r
tree_sums /mnt/m >"$RESULTS/sums-master"
tree_sums /mnt/r >"$RESULTS/sums-replica"
expect_same "$RESULTS/sums-replica" "$RESULTS/sums-master" "files of replica snapshot 7"
expect_eq "$(stat -c %s /mnt/r/hole)" $((1536 * 1024 + 65536)) "size of the hole-birth file"
expect_eq "$(sha_of /mnt/r/hole 4096 $((1532 * 1024)))" \
	"$(head -c $((1532 * 1024)) /dev/zero | sha256sum | cut -d ' ' -f 1)" "the hole reads as zeros"

step "a stray write on the replica's origin: the next incremental is refused"
write_pattern /mnt/m/f4 "eight-4" 0 20000
master_snap 8
sha_r7=$(sha_of "$(dev rvol 7)")
write_pattern "$(dev rvol -1)" "stray" $((1024 * 1024)) 16384
sync
expect_eq "$("$ddsnap" list --json "$rsock" | jq .origin_written)" true \
	"origin_written after the stray write"
refused diverged 7 8 "written since its snapshot 7" "an incremental was received onto a replica origin written since snapshot 7"
expect_eq "$(replica_tags)" "1 2 3 4 5 7 " "replica snapshots after the refusal"
drop_caches
expect_eq "$(sha_of "$(dev rvol 7)")" "$sha_r7" "replica snapshot 7 after the stray write"

step "ddsnap revert: refused while the origin is mounted or open, nothing changed"
drop_caches
sha_m8=$(sha_of "$(dev mvol 8)")
rc=0
"$ddsnap" revert "$msock" 7 2>"$RESULTS/revert-mounted.txt" || rc=$?
cat "$RESULTS/revert-mounted.txt"
((rc == 1)) || fail "revert of a mounted origin: exit $rc, expected 1"
grep -q "origin device /dev/mapper/home is in use" "$RESULTS/revert-mounted.txt" ||
	fail "the refusal does not name the mounted origin device"
expect_eq "$("$ddsnap" list --json "$msock" | jq -c .revert)" "null" "no revert recorded on the master"
expect_eq "$(sha_of "$(dev mvol 8)")" "$sha_m8" "master snapshot 8 after the refusal"
exec 9<"$(dev rvol -1)"
rc=0
"$ddsnap" revert "$rsock" 7 2>"$RESULTS/revert-open.txt" || rc=$?
exec 9<&-
cat "$RESULTS/revert-open.txt"
((rc == 1)) || fail "revert of an open origin: exit $rc, expected 1"
grep -q "is open by another process" "$RESULTS/revert-open.txt" ||
	fail "the refusal does not say the origin is open"

step "the replica's own snapshot 100 and more writes; revert to 7 with the server killed midway"
# the replica's origin holds the stray write (16 KiB); snapshot 100, then 6 MiB more (the
# revert copies 390 chunks back; the store has room for that twice, the marker's copies)
must "$ddsnap" create "$rsock" 100
snap_dev rvol 100
write_pattern "$(dev rvol -1)" "after-100" $((4 * 1024 * 1024)) $((6 * 1024 * 1024))
sync
drop_caches
sha_r100=$(sha_of "$(dev rvol 100)")
sha_r5=$(sha_of "$(dev rvol 5)")
must_fail cmp -s "$(dev rvol -1)" "$(dev rvol 7)"
# The origin's disk suspended: the revert records its marker, then blocks at its first
# origin read (a copy-out); the server is killed there, then the disk resumed.  The devices'
# lost connections are logged: the kernel log is checked up to here and marked again below.
expect_no_kmsg 'BUG|WARNING|Oops|ddsnap.*(error|fail)' "kernel log before the server kill"
dmsetup suspend rorigin
"$ddsnap" revert "$rsock" 7 >"$RESULTS/revert-killed.txt" 2>&1 &
rev_pid=$!
for _ in $(seq 300); do
	grep -q "revert to snapshot 7 started" "$RESULTS/replica.log" && break
	sleep 0.1
done
sleep 3
rpid=$(cat /run/rvol.pid)
kill -KILL "$rpid"
dmsetup resume rorigin
while kill -0 "$rpid" 2>/dev/null; do sleep 0.1; done
rc=0
wait "$rev_pid" || rc=$?
cat "$RESULTS/revert-killed.txt"
((rc != 0)) || fail "the revert succeeded although its server was killed"
log "replica server killed during the revert"
must "$ddsnap" server -l "$RESULTS/replica.log" -p /run/rvol.pid "$rstore" "$rorigin" "$rsock"
"$ddsnap" list --json "$rsock" >"$RESULTS/revert-state.json"
expect_eq "$(jq -c .revert "$RESULTS/revert-state.json")" '{"to":7,"state":"in-progress"}' \
	"the restarted server reports the unfinished revert"
expect_eq "$(jq -c '[.snapshots[].tag]' "$RESULTS/revert-state.json")" "[1,2,3,4,5,7,100]" \
	"only the user's snapshots are listed"
must_fail "$ddsnap" create "$rsock" 101
must_fail "$ddsnap" delete "$rsock" 7
refused revert-recv 7 8 "a revert to snapshot 7 is in progress" "a stream was received during an unfinished revert"
step "the same revert again finishes it: origin = snapshot 7, every snapshot as before"
must "$ddsnap" revert "$rsock" 7
for _ in $(seq 100); do # every device reconnected to the new server
	! dmsetup status | grep -q "mode=server-lost" && break
	sleep 0.2
done
kmsg_mark
drop_caches
expect_eq "$(sha_of "$(dev rvol -1)")" "$(sha_of "$(dev rvol 7)")" "replica origin = its snapshot 7"
expect_eq "$(sha_of "$(dev rvol -1)")" "$(sha_of "$(dev mvol 7)")" "replica origin = master snapshot 7"
expect_eq "$(sha_of "$(dev rvol 7)")" "$sha_r7" "replica snapshot 7 after the revert"
expect_eq "$(sha_of "$(dev rvol 100)")" "$sha_r100" "replica snapshot 100 (newer) after the revert"
expect_eq "$(sha_of "$(dev rvol 5)")" "$sha_r5" "replica snapshot 5 (older) after the revert"
expect_eq "$("$ddsnap" list --json "$rsock" | jq -c .revert)" '{"to":7,"state":"done"}' "the revert is done"

step "an incremental based on the reverted-to snapshot is accepted (100 is newer: set aside)"
"$ddsnap" send "$msock" 7 8 | "$ddsnap" receive -v "$rsock" 8
snap_dev rvol 8
same 8
expect_eq "$(sha_of "$(dev rvol 100)")" "$sha_r100" "replica snapshot 100 after receiving 8"
expect_eq "$("$ddsnap" list --json "$rsock" | jq -c .revert)" "null" "receiving 8 dropped the revert point"

step "revert to 8 again, a raw write on the reverted origin: the next incremental is refused"
write_pattern /mnt/m/f6 "nine-6" 0 20000
master_snap 9
must "$ddsnap" revert "$rsock" 8
write_pattern "$(dev rvol -1)" "after-revert" $((2 * 1024 * 1024)) 16384
sync
refused revert-written 8 9 "written since its revert to snapshot 8" "an incremental was received onto an origin written after the revert"
expect_eq "$(replica_tags)" "1 2 3 4 5 7 100 8 " "replica snapshots after the refusal"

step "tear down; both stores check clean"
umount /mnt/r /mnt/m
for t in 1 2 3 4 5 7 100 8 -1; do dm_remove "$(basename "$(dev rvol "$t")")"; done
for d in third@7 third@1 third; do dm_remove "$d"; done
for t in 1 2 3 4 5 6 7 8 9 -1; do dm_remove "$(basename "$(dev mvol "$t")")"; done
for v in mvol rvol cvol; do
	kill -TERM "$(cat /run/$v.pid)"
	for _ in $(seq 100); do
		[[ -e /run/$v.pid ]] || break
		sleep 0.2
	done
	[[ ! -e /run/$v.pid ]] || fail "the $v server did not stop on SIGTERM"
done
dm_remove rorigin
must "$ddsnap" check "$mstore"
must "$ddsnap" check "$rstore"
must "$ddsnap" check "$cstore"
expect_no_kmsg 'BUG|WARNING|Oops|ddsnap.*(error|fail)' "kernel log"
rmmod dm_ddsnap
log "replication: every received snapshot was identical to the master's"
