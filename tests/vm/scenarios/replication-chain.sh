#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 6 48M
# vm-timeout: 1200
#
# replication-chain (issue 19, doc/replication.md): three NAS "boxes" a, b, c in one guest,
# each with its own config database, runtime and log (ZUMASTOR_ROOT/RUN/LOG) and its own real
# sshd (ssh_box: key auth, root only through a forced command).  a's volume ahome (ext4) is
# replicated to b's bhome after each snapshot, and b passes it on to c's chome.  The
# authorized_keys line on b and c is exactly the one `zumastor define target` printed, so
# every transfer is ssh -> sshd -> `zumastor receive-from`.  Three simulated days of ticks
# (ZUMASTOR_NOW), a file tree changed before each: after each day c's newest snapshot is a's
# newest, its snapshot device has the sha256 of a's, and its read-only mount holds the same
# files; only the first transfer of each link is full.  On the last day b -> c uses transport
# tcp:7456: the requests over sshd and the forced command, the stream over TCP to the
# address sshd saw.  The restricted key cannot run a
# shell or list a master; b and c take no snapshot of their own and their origins are never
# mounted; status --json shows the targets and sources.
#
# b's users (Replica use): the real NFS server and smbd (nas_servers_up) export b's replica
# as the monitor would on a master, asked read-write and made read-only.  b's mountpoint
# shows its newest received snapshot; an NFS v3 client mounted once on day 0 reads each
# day's files there (sha256 equal to a's) after every transfer without remounting, and
# cannot write; the previous day's snapshot is its own NFS export; smbclient lists the
# received snapshots as previous versions of a file, reads today's file, a @GMT path of
# yesterday's and a day's data (sha256 equal to a's), and cannot write.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

# a -> b -> c, b's replica exported over NFS and Samba as a master's would be, asked read-write
repl_chain_up --nfs '127.0.0.1:rw,no_root_squash' --samba 'bhome:rw,guest'

step "the restricted key: no shell, no master, no other volume"
out=$(ssh -i /run/box/a/ssh/id_ed25519 -o IdentitiesOnly=yes b 'sh -c id' 2>&1) && fail "a shell ran: $out"
grep -q "refused" <<<"$out" || fail "the shell request was not refused by the forced command: $out"
out=$(ssh -i /run/box/a/ssh/id_ed25519 -o IdentitiesOnly=yes b list chome 2>&1) && fail "list of another volume ran: $out"
grep -q "not a replica of a" <<<"$out" || fail "list chome: $out"
out=$(ssh -i /run/box/b/ssh/id_ed25519 -o IdentitiesOnly=yes c list chome 2>&1) || fail "b's key cannot list chome on c: $out"
grep -qx "token none" <<<"$out" || fail "list chome: $out"

# b_users DAY NAME PREV: what b's NFS and Samba clients see after b's tick of DAY, whose
# snapshot is NAME (PREV: the day before's, or nothing).
mkdir -p /mnt/nb /mnt/nbprev
b_users()
{
	local day=$1 name=$2 prev=$3 snap=/run/box/a/run/snapshot/ahome/$2 out
	expect_eq "$(findmnt -n -o SOURCE --mountpoint /srv/b)" "/dev/mapper/bhome$name" "day $day: b's mountpoint shows its newest received snapshot"
	findmnt -n -o OPTIONS --mountpoint /srv/b | grep -q '^ro,' || fail "day $day: /srv/b is not read-only"
	[[ -z $(findmnt -n -S /dev/mapper/bhome) ]] || fail "day $day: b's origin is mounted"
	((day > 0)) || must mount -t nfs -o vers=3,nolock,noac,lookupcache=none 127.0.0.1:/srv/b /mnt/nb
	expect_eq "$(cat /mnt/nb/today)" "day $day" "day $day: b's NFS client (mounted on day 0) reads the day's file"
	expect_eq "$(sha_of "/mnt/nb/d$day/data")" "$(sha_of "$snap/d$day/data")" "day $day: the day's data over NFS is a's"
	out=$(smbclient -N //127.0.0.1/bhome -c "allinfo today; get today /run/smb.today; get d$day/data /run/smb.data${prev:+; get $prev/today /run/smb.prev}" 2>&1) ||
		fail "day $day: smbclient on b: $out"
	expect_eq "$(grep -o '@GMT-[0-9.-]*' <<<"$out" | sort -u | paste -sd' ')" "$(find /run/box/b/run/snapshot/bhome -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | paste -sd' ')" \
		"day $day: Samba's previous versions of today are b's received snapshots"
	expect_eq "$(cat /run/smb.today)" "day $day" "day $day: today's file over Samba"
	expect_eq "$(sha_of /run/smb.data)" "$(sha_of "$snap/d$day/data")" "day $day: the day's data over Samba is a's"
	[[ -z $prev ]] || expect_eq "$(cat /run/smb.prev)" "day $((day - 1))" "day $day: $prev/today over Samba"
	log "day $day: b's NFS and Samba clients see $name"
	((day == 2)) || return 0
	# once: the previous snapshot's own export; no client can write
	must mount -t nfs -o vers=3,nolock 127.0.0.1:"/run/box/b/run/snapshot/bhome/$prev" /mnt/nbprev
	expect_eq "$(cat /mnt/nbprev/today)" "day $((day - 1))" "day $day: the previous snapshot's own NFS export"
	umount /mnt/nbprev
	[[ ! -e /mnt/nb/d0 ]] || fail "d0, deleted on a, still shows to b's NFS client"
	! touch /mnt/nb/written 2>/dev/null || fail "an NFS client wrote to b's replica"
	out=$(smbclient -N //127.0.0.1/bhome -c "put /etc/hostname written" 2>&1) || true
	{ grep -q NT_STATUS_ <<<"$out" && [[ ! -e /srv/b/written ]]; } || fail "a Samba client could write to b's replica: $out"
}

step "three simulated days: a ticks and sends, b passes on, c keeps"
full=0 prev=
for day in 0 1 2; do
	t=$((t0 + day * 86400))
	mkdir -p /srv/a/d$day
	head -c $((1 + day))M /dev/urandom >/srv/a/d$day/data
	echo "day $day" >/srv/a/today
	((day < 2)) || rm -rf /srv/a/d$((day - 2))
	# the last day b -> c goes over TCP (transport tcp:PORT; the requests stay on ssh)
	((day < 2)) || must box b define target bhome c:chome --transport tcp:7456
	ZUMASTOR_NOW=$t box a tick >/run/tick.a 2>&1 || fail "a's tick, day $day: $(cat /run/tick.a)"
	ZUMASTOR_NOW=$((t + 60)) box b tick >/run/tick.b 2>&1 || fail "b's tick, day $day: $(cat /run/tick.b)"
	ZUMASTOR_NOW=$((t + 120)) box c tick >/run/tick.c 2>&1 || fail "c's tick, day $day: $(cat /run/tick.c)"
	cat /run/tick.a /run/tick.b /run/tick.c
	! grep -q " full" /run/tick.a /run/tick.b || full=$((full + 1))
	((day < 2)) || grep -q "the stream goes over TCP to 127.0.0.1:7456" /run/tick.b || fail "b -> c did not go over TCP"
	name=$("$ZUMASTOR_HELPER" name "$t")
	newest=$(box c status --json chome | jq -r '.volumes[0].snapshots | map(.name) | max')
	expect_eq "$newest" "$name" "day $day: c's newest snapshot"
	expect_eq "$(sha_of "/dev/mapper/chome$name")" "$(sha_of "/dev/mapper/ahome$name")" "day $day: c's snapshot device is a's"
	expect_eq "$(tree_sums "/run/box/c/run/snapshot/chome/$name")" "$(tree_sums "/run/box/a/run/snapshot/ahome/$name")" \
		"day $day: c's read-only mount holds a's files"
	expect_eq "$(cat "/run/box/b/run/snapshot/bhome/$name/today")" "day $day" "day $day: b's mount of it"
	b_users "$day" "$name" "$prev"
	prev=$name
	log "day $day: c has $name, identical to a's"
done
expect_eq "$full" 1 "only the first day's transfers were full"
! grep -q took /run/tick.b /run/tick.c || fail "a replica took a snapshot"
[[ -z $(findmnt -n -S /dev/mapper/bhome) ]] || fail "b's origin is mounted"
[[ -z $(findmnt -n -S /dev/mapper/chome) ]] || fail "c's origin is mounted"
expect_eq "$(findmnt -n -o SOURCE --mountpoint /srv/c)" "/dev/mapper/chome$name" "c's mountpoint shows its newest received snapshot"
grep -q "^/srv/b 127.0.0.1(ro,no_root_squash,no_subtree_check,fsid=$(cat /run/box/b/db/volumes/bhome/state/fsid/origin))\$" \
	/etc/exports.d/zumastor-b.exports || fail "b's mountpoint line: $(cat /etc/exports.d/zumastor-b.exports)"
grep -q "read only = yes" /etc/samba/zumastor-b.conf || fail "b's share is not read-only: $(cat /etc/samba/zumastor-b.conf)"
must box b define source bhome a:ahome # again, with its snapshot at the mountpoint: not its origin
umount /mnt/nb

step "status on a and c"
box a status --json ahome >/run/st.a
jq -e ".volumes[0].targets[0].last_good == \"$name\" and .volumes[0].targets[0].behind == 0 and .volumes[0].targets[0].failures == 0" /run/st.a >/dev/null ||
	fail "a's status: $(cat /run/st.a)"
box c status --json chome >/run/st.c
jq -e ".volumes[0].source.host == \"b\" and .volumes[0].source.newest_received == \"$name\" and .volumes[0].source.token == null and .volumes[0].source.current == \"$name\"" /run/st.c >/dev/null ||
	fail "c's status: $(cat /run/st.c)"
ZUMASTOR_NOW=$((t + 300)) must box a check ahome

step "stop"
for b in c b a; do must box "$b" stop "${b}home"; done
log "replication-chain: PASS"
