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
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

step "udev, the module, three boxes with their own sshd"
vm_udev_up
load_ddsnap
mon_setup
# shellcheck disable=SC2046 # one VAR=VALUE a word
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
grep '^restrict' /run/box/b/define.out >/run/ssh/c/authorized_keys
must box c define source chome b:bhome
ZUMASTOR_NOW=$t0 must box a start ahome
mkfs.ext4 -q /dev/mapper/ahome
ZUMASTOR_NOW=$t0 must box a start ahome
mountpoint -q /srv/a || fail "ahome's ext4 is not mounted"
must box b start bhome
must box c start chome

step "the restricted key: no shell, no master, no other volume"
out=$(ssh -i /run/box/a/ssh/id_ed25519 -o IdentitiesOnly=yes b 'sh -c id' 2>&1) && fail "a shell ran: $out"
grep -q "refused" <<<"$out" || fail "the shell request was not refused by the forced command: $out"
out=$(ssh -i /run/box/a/ssh/id_ed25519 -o IdentitiesOnly=yes b list chome 2>&1) && fail "list of another volume ran: $out"
grep -q "not a replica of a" <<<"$out" || fail "list chome: $out"
out=$(ssh -i /run/box/b/ssh/id_ed25519 -o IdentitiesOnly=yes c list chome 2>&1) || fail "b's key cannot list chome on c: $out"
grep -qx "token none" <<<"$out" || fail "list chome: $out"

step "three simulated days: a ticks and sends, b passes on, c keeps"
full=0
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
	log "day $day: c has $name, identical to a's"
done
expect_eq "$full" 1 "only the first day's transfers were full"
! grep -q took /run/tick.b /run/tick.c || fail "a replica took a snapshot"
! mountpoint -q /srv/b || fail "b's origin is mounted"
! mountpoint -q /srv/c || fail "c's origin is mounted"

step "status on a and c"
box a status --json ahome >/run/st.a
jq -e ".volumes[0].targets[0].last_good == \"$name\" and .volumes[0].targets[0].behind == 0 and .volumes[0].targets[0].failures == 0" /run/st.a >/dev/null ||
	fail "a's status: $(cat /run/st.a)"
box c status --json chome >/run/st.c
jq -e ".volumes[0].source.host == \"b\" and .volumes[0].source.newest_received == \"$name\" and .volumes[0].source.token == null" /run/st.c >/dev/null ||
	fail "c's status: $(cat /run/st.c)"
ZUMASTOR_NOW=$((t + 300)) must box a check ahome

step "stop"
for b in c b a; do must box "$b" stop "${b}home"; done
log "replication-chain: PASS"
