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
trap '[[ -f $pid ]] && kill "$(cat "$pid")" 2>/dev/null; sleep 0.5; rm -rf "$dir"' EXIT

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
