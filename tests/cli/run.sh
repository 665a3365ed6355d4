#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The ddsnap command line on this machine, on plain files (no kernel needed): initialize,
# the server daemon and its start-up errors, every snapshot command with its exit status
# (0 ok, 1 refused, 2 usage; ddsnap(8)), the server's clean stop, then check and dump on
# the stopped store.  Each case prints ok/FAIL; the last line is 'cli: N passed, N failed'.
#   run.sh <build dir>
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
# shellcheck source=scripts/results.sh
. scripts/results.sh
ddsnap=$PWD/$1/bin/ddsnap
dir=$(mktemp -d /tmp/ddsnap-cli-XXXXXX)
store=$dir/store origin=$dir/origin sock=$dir/sock pid=$dir/pid
passed=0 failed=0
cleanup()
{
	local f
	for f in "$pid" "$dir/rpid"; do
		[[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null
	done
	sleep 0.5
	rm -rf "$dir"
}
trap cleanup EXIT

# expect STATUS DESCRIPTION CMD...: runs CMD, checks its exit status.
expect()
{
	local want=$1 what=$2 rc
	shift 2
	"$@" >"$dir/out" 2>"$dir/err"
	rc=$?
	if ((rc == want)); then
		passed=$((passed + 1))
		echo "ok   $what"
	else
		failed=$((failed + 1))
		echo "FAIL $what: exit $rc, expected $want"
		sed 's/^/     /' "$dir/out" "$dir/err"
	fi
}
# expect_out PATTERN DESCRIPTION: the last command's output matches PATTERN.
expect_out()
{
	if grep -Eq "$1" "$dir/out" "$dir/err"; then
		passed=$((passed + 1))
		echo "ok   $2"
	else
		failed=$((failed + 1))
		echo "FAIL $2: no match for '$1' in:"
		sed 's/^/     /' "$dir/out" "$dir/err"
	fi
}

truncate -s 64M "$store"
truncate -s 16M "$origin"

expect 2 "no command" "$ddsnap"
expect 2 "unknown command" "$ddsnap" frobnicate
expect 0 "version" "$ddsnap" --version
expect 2 "initialize without arguments" "$ddsnap" initialize
expect 2 "initialize with a bad chunk size" "$ddsnap" initialize -c 3000 "$store" "$origin"
expect 0 "initialize" "$ddsnap" initialize "$store" "$origin"
expect 1 "initialize refuses an initialized store without -y" "$ddsnap" initialize "$store" "$origin"
expect 0 "initialize -y" "$ddsnap" initialize -y -c 16k "$store" "$origin"

expect 1 "server on a missing snapstore" "$ddsnap" server "$dir/nope" "$origin" "$sock"
expect_out "nope" "the error names the missing device"
expect 2 "server with a bad cache size" "$ddsnap" server -k 1x "$store" "$origin" "$sock"
expect 1 "server with a relative socket path" "$ddsnap" server "$store" "$origin" relative.sock
expect_out "cannot listen on relative.sock" "the error names the socket"
expect 0 "server starts and reports ready" "$ddsnap" server -l "$dir/log" -p "$pid" "$store" "$origin" "$sock"
expect 1 "a second server on the same socket is refused" "$ddsnap" server "$store" "$origin" "$sock"
expect_out "another server" "the error says another server runs there"

expect 0 "status --size" "$ddsnap" status --size "$sock"
expect_out "^32768$" "the size is the origin's in sectors"
expect 0 "create 1" "$ddsnap" create "$sock" 1
expect 1 "create 1 again" "$ddsnap" create "$sock" 1
expect_out "exists" "the refusal says the tag exists"
expect 2 "create with a bad tag" "$ddsnap" create "$sock" -5
expect 2 "create with a tag out of range" "$ddsnap" create "$sock" 4294967295
expect 0 "create 2" "$ddsnap" create "$sock" 2
expect 0 "list" "$ddsnap" list "$sock"
expect_out "^1 .*Z$" "list shows tag 1 with its UTC time"
expect 0 "usecount +1" "$ddsnap" usecount "$sock" 1 1
expect_out "^1$" "usecount prints the new count"
expect 1 "delete of a held snapshot" "$ddsnap" delete "$sock" 1
expect_out "held" "the refusal says it is held"
expect 1 "usecount below zero" "$ddsnap" usecount "$sock" 2 -1
expect 0 "usecount -1" "$ddsnap" usecount "$sock" 1 -1
expect 0 "priority" "$ddsnap" priority "$sock" 2 -7
expect 2 "priority out of range" "$ddsnap" priority "$sock" 2 300
expect 0 "status" "$ddsnap" status "$sock"
expect_out " 2 .* -7 " "status shows snapshot 2's priority"
expect 0 "status of one snapshot" "$ddsnap" status -v "$sock" 2
expect 1 "status of a missing snapshot" "$ddsnap" status "$sock" 9
expect 0 "delete 1" "$ddsnap" delete "$sock" 1
expect 1 "delete 1 again" "$ddsnap" delete "$sock" 1
expect_out "no such snapshot" "the refusal says there is no such snapshot"
expect 1 "a command against no server" "$ddsnap" list "$dir/nobody"
expect_out "cannot connect" "the error says it cannot connect"

# send and receive on files (no kernel): a second server is the replica; <stem>(T) files
# stand for the snapshot devices.  Full, cut and resumed, TCP, and the refusals.
rstore=$dir/rstore rorigin=$dir/rorigin rsock=$dir/rvol.sock rpid=$dir/rpid
truncate -s 64M "$rstore"
truncate -s 16M "$rorigin"
expect 2 "send without arguments" "$ddsnap" send
expect 2 "receive without arguments" "$ddsnap" receive
expect 2 "send with a bad tag" "$ddsnap" send "$sock" x
expect 2 "send with a bad rate" "$ddsnap" send -l 5q "$sock" 2
# delta apply and receive share their option parser (delta_apply_option): same refusal
expect 2 "receive with a bad rate" "$ddsnap" receive -l 5q "$sock" 2 </dev/null
expect_out "ddsnap receive: bad rate '5q'" "receive names the bad rate"
expect 2 "delta apply with a bad rate" "$ddsnap" delta apply -l 5q "$dir/none" "$dir/origin"
expect_out "ddsnap delta: bad rate '5q'" "delta apply names the bad rate"
expect 2 "delta apply with both -n and -t" "$ddsnap" delta apply -n -t "$dir/tok" "$dir/none" "$dir/origin"
expect 1 "send against no server" "$ddsnap" send -d "$dir/origin" "$dir/nobody.sock" 2
expect_out "cannot connect" "send says it cannot connect"
expect 1 "receive against no server" "$ddsnap" receive "$dir/nobody.sock" 2 </dev/null
expect 0 "replica: initialize" "$ddsnap" initialize -c 16k "$rstore" "$rorigin"
expect 0 "replica: server" "$ddsnap" server -p "$rpid" "$rstore" "$rorigin" "$rsock"
head -c 5M /dev/urandom | dd of="$origin" bs=1M seek=2 conv=notrunc status=none
cp "$origin" "$dir/origin(2)"
expect 1 "send of a missing snapshot" "$ddsnap" send -d "$dir/origin" "$sock" 7
send_recv()
{
	"$ddsnap" send -d "$dir/origin" "$sock" "$@" | "$ddsnap" receive -d "$rorigin" "$rsock" "${@: -1}"
}
expect 0 "full send | receive" send_recv 2
expect 0 "the replica's origin is snapshot 2" cmp "$rorigin" "$dir/origin(2)"
expect 0 "the replica took snapshot 2" "$ddsnap" status "$rsock" 2
expect 1 "receiving snapshot 2 again is refused" send_recv 2
expect_out "exists" "the refusal says it exists"
head -c 3M /dev/urandom | dd of="$origin" bs=1M seek=9 conv=notrunc status=none
expect 0 "master snapshot 3" "$ddsnap" create "$sock" 3
cp "$origin" "$dir/origin(3)"
cut_send()
{
	"$ddsnap" send -r -d "$dir/origin" "$sock" 3 | head -c 2000000 |
		"$ddsnap" receive -t "$dir/tok" -d "$rorigin" "$rsock" 3
}
expect 3 "a stream cut midway fails" cut_send
expect 0 "it left a resume token" test -s "$dir/tok"
expect 1 "and no snapshot 3 on the replica" "$ddsnap" status "$rsock" 3
resume_send()
{
	"$ddsnap" send -r -t "$dir/tok" -d "$dir/origin" "$sock" 3 |
		"$ddsnap" receive -t "$dir/tok" -d "$rorigin" "$rsock" 3
}
expect 1 "a resumed stream without the token is refused" \
	bash -c "'$ddsnap' send -r -t '$dir/tok' -d '$dir/origin' '$sock' 3 | '$ddsnap' receive -t '$dir/none' -d '$rorigin' '$rsock' 3"
expect 0 "send -t TOKEN resumes and completes" resume_send
expect 0 "the replica's origin is snapshot 3" cmp "$rorigin" "$dir/origin(3)"
expect 1 "the token is gone" test -e "$dir/tok"
expect 0 "master snapshot 4" "$ddsnap" create "$sock" 4
cp "$origin" "$dir/origin(4)"
expect 1 "a stream carrying another tag is refused" \
	bash -c "'$ddsnap' send -d '$dir/origin' '$sock' 3 4 | '$ddsnap' receive -d '$rorigin' '$rsock' 5"
expect 0 "replica: delete 3" "$ddsnap" delete "$rsock" 3
expect 1 "a stream for a base the replica lacks is refused" send_recv 3 4
expect_out "wrong base" "the refusal says wrong base"
expect 0 "the replica's snapshots are unchanged" "$ddsnap" list "$rsock"
expect_out "^2 " "snapshot 2 is still there"
cp "$dir/origin(2)" "$dir/rorigin(2)" # the replica's snapshot 2 device
port=$((20000 + RANDOM % 20000))
"$ddsnap" receive --listen "127.0.0.1:$port" -d "$rorigin" "$rsock" 4 2>"$dir/rerr" &
rcv=$!
expect 0 "send --to 127.0.0.1:PORT (incremental 2 -> 4)" "$ddsnap" send --to "127.0.0.1:$port" -d "$dir/origin" "$sock" 2 4
expect 0 "receive --listen exits 0" wait "$rcv"
expect 0 "the replica's origin is snapshot 4" cmp "$rorigin" "$dir/origin(4)"

# list across pages (64 snapshots a reply): 150 more on the replica, all listed, in order.
for t in $(seq 1000 1149); do "$ddsnap" create "$rsock" "$t" >/dev/null || break; done
expect 0 "list of 152 snapshots" "$ddsnap" list "$rsock"
cut -d' ' -f1 "$dir/out" >"$dir/listed"
printf '%s\n' 2 4 $(seq 1000 1149) >"$dir/created"
expect 0 "list shows every snapshot once, oldest first" cmp "$dir/listed" "$dir/created"
kill -TERM "$(cat "$rpid")"

kill -TERM "$(cat "$pid")"
for _ in $(seq 50); do
	[[ -e $pid ]] || break
	sleep 0.1
done
expect 1 "the server removed its pid file on SIGTERM" test -e "$pid"
expect 0 "check the stopped store" "$ddsnap" check "$store"
expect_out "clean" "check reports the store clean"
expect 0 "dump" "$ddsnap" dump "$store"
expect_out "^label " "dump starts with the label"
expect 0 "the server starts again on the same store" "$ddsnap" server -p "$pid" "$store" "$origin" "$sock"
expect 0 "snapshot 2 survived the restart" "$ddsnap" status "$sock" 2

results_record cli "$passed" "$failed"
echo "cli: $passed passed, $failed failed"
((failed == 0))
