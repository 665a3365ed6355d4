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
	for f in "$pid" "$dir/rpid" "$dir/dpid" "$dir/relpid" "$dir/v1pid" "$dir/kpid" \
		"$dir/bpid" "$dir/cpid" "$dir/xpid" "$dir/ypid"; do
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
# expect_json FILTER DESCRIPTION: the last command printed valid JSON (python3 -m json.tool)
# for which the jq FILTER is true.
expect_json()
{
	cp "$dir/out" "$dir/json"
	if python3 -m json.tool "$dir/json" >/dev/null && jq -e "$1" "$dir/json" >/dev/null; then
		passed=$((passed + 1))
		echo "ok   $2"
	else
		failed=$((failed + 1))
		echo "FAIL $2: not valid JSON, or '$1' is not true of:"
		sed 's/^/     /' "$dir/json"
	fi
}

# wait_gone FILE: waits up to 5 s for FILE (a stopping server's pid file) to go.
wait_gone()
{
	local _
	for _ in $(seq 50); do
		[[ -e $1 ]] || return 0
		sleep 0.1
	done
}
# wait_dead PID: waits up to 5 s for process PID to end (its store locks go with it).
wait_dead()
{
	local _
	for _ in $(seq 50); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
}

truncate -s 64M "$store"
truncate -s 16M "$origin"

expect 2 "no command" "$ddsnap"
expect 2 "unknown command" "$ddsnap" frobnicate
expect 0 "version" "$ddsnap" --version
expect 2 "initialize without arguments" "$ddsnap" initialize
expect 2 "initialize with a bad chunk size" "$ddsnap" initialize -c 3000 "$store" "$origin"
expect 2 "initialize with a chunk size that would wrap to 16k" "$ddsnap" initialize -c 18014398509482000k "$store" "$origin"
expect_out "chunk size '18014398509482000k'" "the refusal names the chunk size"
expect 0 "initialize" "$ddsnap" initialize "$store" "$origin"
expect 1 "initialize refuses an initialized store without -y" "$ddsnap" initialize "$store" "$origin"
expect 0 "initialize -y" "$ddsnap" initialize -y -c 16k "$store" "$origin"

expect 1 "server on a missing snapstore" "$ddsnap" server "$dir/nope" "$origin" "$sock"
expect_out "nope" "the error names the missing device"
expect 2 "server with a bad cache size" "$ddsnap" server -k 1x "$store" "$origin" "$sock"
expect 2 "server with a cache size that would wrap to 1G" "$ddsnap" server -k 17179869185G "$store" "$origin" "$sock"
expect_out "bad cache size '17179869185G'" "the refusal names the cache size"
expect 1 "a command with a relative socket path" "$ddsnap" list relative.sock
expect_out "relative.sock: a socket name is an absolute path or @name" "the client says it too"

# Misuse of paths (doc/misuse.md, "Paths"): nothing the server or a tool was not asked to
# write is touched; every refusal names what is wrong.
truncate -s 64M "$dir/mstore"
truncate -s 8M "$dir/meta"
expect 0 "initialize a store with a metadata device" "$ddsnap" initialize "$dir/mstore" "$origin" "$dir/meta"
cp "$dir/meta" "$dir/meta.copy"
expect 2 "server with the socket forgotten (metadev last) is refused" "$ddsnap" server "$dir/mstore" "$origin" "$dir/meta"
expect_out "meta is a regular file, not a socket" "the error says the last argument is not a socket"
expect 0 "the metadata device is untouched" cmp "$dir/meta" "$dir/meta.copy"
truncate -s 16M "$dir/o2"
expect 2 "server store o2 o2 is refused" "$ddsnap" server "$store" "$dir/o2" "$dir/o2"
expect 0 "o2 is still a regular file" test -f "$dir/o2" -a ! -S "$dir/o2"
echo precious >"$dir/victim"
ln -s "$dir/victim" "$dir/lsock"
expect 2 "server with a symlink as its socket is refused" "$ddsnap" server "$store" "$origin" "$dir/lsock"
expect 0 "the symlink and its target are untouched" test -L "$dir/lsock" -a "$(cat "$dir/victim")" = precious
expect 1 "server with the snapstore as its own origin" "$ddsnap" server "$store" "$store" "$dir/s1.sock"
expect_out "origin .*store is the same file as the snapstore" "the error names both roles"
expect 1 "a failed start" "$ddsnap" server "$dir/nope" "$origin" "$dir/fail.sock"
expect 1 "leaves no socket file" test -e "$dir/fail.sock"
mkfifo "$dir/fifo"
expect 1 "server with a FIFO origin fails at once" timeout 10 "$ddsnap" server "$store" "$dir/fifo" "$dir/s1.sock"
expect_out "fifo is a FIFO, not a regular file or block device" "the error says it is a FIFO"
expect 1 "initialize with a FIFO origin fails at once" timeout 10 "$ddsnap" initialize "$dir/o2" "$dir/fifo"
expect_out "fifo is a FIFO" "the error says it is a FIFO"
ln -s "$dir/victim" "$dir/plink"
expect 1 "server with a symlink as its pid file is refused" "$ddsnap" server -p "$dir/plink" "$store" "$origin" "$dir/s1.sock"
expect 1 "server with a symlink as its log file is refused" "$ddsnap" server -l "$dir/plink" "$store" "$origin" "$dir/s1.sock"
expect_out "symbolic link" "the error says it is a symbolic link"
expect 0 "the symlinks' target is untouched" test "$(cat "$dir/victim")" = precious
expect 1 "nor did they leave a socket" test -e "$dir/s1.sock"
truncate -s 17M "$dir/obig"
truncate -s 15M "$dir/osmall"
expect 1 "server with a larger origin than the label records" "$ddsnap" server "$store" "$dir/obig" "$dir/s1.sock"
expect_out "has 17825792 bytes but the store .* origin of 16777216 bytes" "the error names both sizes"
expect 1 "server with a smaller origin than the label records" "$ddsnap" server "$store" "$dir/osmall" "$dir/s1.sock"
(cd "$dir" && "$ddsnap" server -p "$dir/relpid" "$store" "$origin" rel.sock >"$dir/out" 2>&1)
expect 0 "a relative socket path works in daemon mode" test -S "$dir/rel.sock"
expect 0 "a command reaches it by its absolute path" "$ddsnap" status --size "$dir/rel.sock"
kill -TERM "$(cat "$dir/relpid")"
wait_gone "$dir/relpid"
expect 1 "it removed its socket on SIGTERM" test -e "$dir/rel.sock"

# What is on a device before initialize writes over it (libblkid), and swapped arguments.
truncate -s 32M "$dir/fs"
mkfs.ext4 -q -F "$dir/fs" >/dev/null 2>&1
truncate -s 16M "$dir/blank"
expect 1 "initialize over an ext4 filesystem is refused" "$ddsnap" initialize "$dir/fs" "$dir/blank"
expect_out "holds an ext4 filesystem: it looks like the origin \\(arguments swapped" "the error says the arguments look swapped"
expect 0 "the filesystem is untouched" bash -c "blkid -p -o value -s TYPE '$dir/fs' | grep -qx ext4"
expect 1 "initialize with a store as the origin is refused" "$ddsnap" initialize "$dir/blank" "$store"
expect 1 "even with -y" "$ddsnap" initialize -y "$dir/blank" "$store"
expect_out "origin .*store holds a ddsnap store: the arguments look swapped" "the error says the arguments look swapped"
expect 0 "initialize -y overwrites the filesystem" "$ddsnap" initialize -y "$dir/fs" "$dir/blank"
truncate -s 32M "$dir/fs2"
mkfs.ext4 -q -F "$dir/fs2" >/dev/null 2>&1
expect 1 "restore over an ext4 filesystem is refused" bash -c "'$ddsnap' dump '$dir/fs' | '$ddsnap' restore - '$dir/fs2'"
expect_out "snapstore .*fs2 holds an ext4 filesystem; -y overwrites it" "the error names what is there"

# Partial last chunk (doc/misuse.md): refused at initialize, naming the fix.
truncate -s $((16 * 1048576 + 4096)) "$dir/oodd"
expect 1 "initialize with an origin not a multiple of the chunk size" "$ddsnap" initialize -y "$dir/o2" "$dir/oodd"
expect_out "origin of 16781312 bytes is not a multiple of the chunk size 16384.*-c 4k" "the error names both sizes and the fix"
expect 0 "the suggested chunk size works" "$ddsnap" initialize -y -c 4k "$dir/o2" "$dir/oodd"

expect 0 "server starts and reports ready" "$ddsnap" server -l "$dir/log" -p "$pid" "$store" "$origin" "$sock"
# Its locked memory is the cache it was given (64 MiB by default, of which a fresh store
# uses little) plus fixed costs: thread stacks are THREAD_STACK_BYTES, not glibc's 8 MiB
# each (13 threads of those held 104 MiB whatever the store held).
expect 0 "the idle server holds under 48 MiB" test "$(awk '/^VmRSS/{print $2}' "/proc/$(cat "$pid")/status")" -lt $((48 << 10))
expect 1 "a second server on the same socket is refused" "$ddsnap" server "$dir/o2" "$dir/oodd" "$sock"
expect_out "another server" "the error says another server runs there"

# One process owns a store (doc/misuse.md, "Ownership").
expect 1 "a second server on the same store is refused" "$ddsnap" server "$store" "$origin" "$dir/s2.sock"
expect_out "snapstore .*store is in use by pid $(cat "$pid") \\(.*ddsnap server" "the error names the server's pid and command line"
expect 1 "and left no socket" test -e "$dir/s2.sock"
first=$(cat "$pid")
expect 1 "a second server on the same store with the same pid file" "$ddsnap" server -p "$pid" "$store" "$origin" "$dir/s2.sock"
expect 1 "a second server on the same socket with the same pid file" "$ddsnap" server -p "$pid" "$dir/o2" "$dir/oodd" "$sock"
expect 0 "the first server's pid file is intact" test "$(cat "$pid")" = "$first"
expect 1 "initialize -y on a served store is refused" "$ddsnap" initialize -y "$store" "$dir/o2"
expect_out "in use by pid $(cat "$pid")" "the error names the server"
expect 1 "initialize -y of a new store for a served origin is refused" "$ddsnap" initialize -y "$dir/blank" "$origin"
expect_out "origin .* is in use by pid" "the error names the origin's server"
expect 1 "check on a served store is refused" "$ddsnap" check "$store"
expect_out "stop it first" "the error says to stop the server"
expect 1 "dump on a served store is refused" "$ddsnap" dump "$store"
expect 1 "restore -y onto a served store is refused" bash -c "'$ddsnap' dump '$dir/o2' | '$ddsnap' restore -y - '$store'"

expect 0 "status --size" "$ddsnap" status --size "$sock"
expect_out "^32768$" "the size is the origin's in sectors"
expect 0 "create 1" "$ddsnap" create "$sock" 1
expect 1 "create 1 again" "$ddsnap" create "$sock" 1
expect_out "exists" "the refusal says the tag exists"
expect 2 "create with a bad tag" "$ddsnap" create "$sock" -5
expect 2 "create with a tag out of range" "$ddsnap" create "$sock" 4294967295
expect 2 "create with the reserved tag 4294967294" "$ddsnap" create "$sock" 4294967294
expect_out "bad snapshot tag '4294967294': a number from 0 to 4294967291" "the refusal states the tag range"
expect 2 "create with the revert marker's tag 4294967293 (the volume's own)" "$ddsnap" create "$sock" 4294967293
expect 2 "delete of the revert point's tag 4294967292" "$ddsnap" delete "$sock" 4294967292
expect 2 "usecount with a count that would wrap" "$ddsnap" usecount "$sock" 1 18446744073709551617
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
# --json (ddsnap(8) JSON OUTPUT): one valid object, the same facts as the text
expect 0 "list --json" "$ddsnap" list --json "$sock"
expect_json '[.snapshots[].tag] == [1, 2] and (.snapshots[0].created | test("^[0-9-]{10}T[0-9:]{8}Z$")) and (.uuid | test("^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$"))' \
	"list --json: valid, tags 1 and 2 oldest first, UTC times, the volume uuid"
expect 0 "status --json" "$ddsnap" status --json "$sock"
expect_json '(.snapshots[] | select(.tag == 2) | .priority) == -7 and .origin_bytes == 16777216 and .chunk_size == 16384 and .snapstore.total_bytes > 0 and .snapstore.used_bytes + .snapstore.free_bytes == .snapstore.total_bytes and (.snapshots | length) == 2' \
	"status --json: valid, snapshot 2's priority, the store's size and use"
expect 0 "status -j of one snapshot" "$ddsnap" status -j "$sock" 2
expect_json '[.snapshots[].tag] == [2] and .snapshots[0].usecount == 0 and .snapshots[0].state == "normal"' \
	"status -j of one snapshot: only that one"
expect 1 "status --json of a missing snapshot" "$ddsnap" status --json "$sock" 9
expect_out "no snapshot 9" "the refusal names the snapshot"
expect 2 "status --json with --size" "$ddsnap" status --json --size "$sock"
expect 2 "list with an unknown option" "$ddsnap" list --jsn "$sock"
expect 0 "delete 1" "$ddsnap" delete "$sock" 1
expect 1 "delete 1 again" "$ddsnap" delete "$sock" 1
expect_out "no such snapshot" "the refusal says there is no such snapshot"
expect 1 "a command against no server" "$ddsnap" list "$dir/nobody"
expect_out "cannot connect" "the error says it cannot connect"

# Peers and signals (doc/misuse.md): on an abstract socket (no file mode) only root gets
# in; with -g the group's members use the control protocol; a path socket is 0600/0660
# whatever the umask; signals sent by mistake do not kill the server.
pstore=$dir/pstore porigin=$dir/porigin ppid=$dir/ppid psock=@ddsnap-cli-$$
truncate -s 64M "$pstore"
truncate -s 16M "$porigin"
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
expect 0 "peers: initialize" "$ddsnap" initialize "$pstore" "$porigin"
expect 0 "peers: server on an abstract socket" "$ddsnap" server -l "$dir/plog" -p "$ppid" "$pstore" "$porigin" "$psock"
expect 1 "a user who is not root cannot list" "${nobody[@]}" "$ddsnap" list "$psock"
expect_out "permission denied: uid 65534 is not root" "the refusal says why"
expect 1 "a user who is not root cannot create" "${nobody[@]}" "$ddsnap" create "$psock" 7
expect 0 "root can" "$ddsnap" create "$psock" 7
for s in USR1 USR2 ALRM HUP PIPE VTALRM PROF IO; do kill -s "$s" "$(cat "$ppid")"; done
sleep 0.3
expect 0 "SIGUSR1, SIGUSR2, SIGALRM, SIGHUP, ... leave the server running" kill -0 "$(cat "$ppid")"
expect 0 "and serving" "$ddsnap" status "$psock" 7
kill -TERM "$(cat "$ppid")"
wait_gone "$ppid"
expect 0 "SIGTERM after them still stops it cleanly" grep -q "stopped cleanly" "$dir/plog"
expect 0 "the refusals were logged with pid and uid" grep -q "refused a connection from pid [0-9]*, uid 65534" "$dir/plog"
chmod 711 "$dir" # let nobody reach a path socket in it
expect 0 "peers: server with -g under umask 000" bash -c 'umask 000; exec "$@"' - "$ddsnap" server -g nogroup -p "$ppid" "$pstore" "$porigin" "$dir/psock"
expect 0 "its socket is 0660, group nogroup" stat -c %a:%G "$dir/psock"
expect_out "^660:nogroup$" "mode and group"
expect 0 "a member of the group can list" "${nobody[@]}" "$ddsnap" list "$dir/psock"
expect_out "^7 " "and sees snapshot 7"
expect 2 "-g with an unknown group" "$ddsnap" server -g no-such-group-here "$pstore" "$porigin" "$dir/psock2"
expect_out "no such group" "the error names the group"
kill -TERM "$(cat "$ppid")"
wait_gone "$ppid"
chmod 700 "$dir"

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
expect 1 "receive --listen on port 99999" "$ddsnap" receive --listen 99999 -d "$rorigin" "$sock" 9 </dev/null
expect_out "bad listen address '99999': \[addr:\]port, the port 1..65535" "the refusal states the port range"
expect 1 "send --to a port out of range" "$ddsnap" send --to 127.0.0.1:65536 -d "$dir/origin" "$sock" 2
expect_out "bad address '127.0.0.1:65536'" "the refusal names the address"
expect 0 "replica: initialize" "$ddsnap" initialize -c 16k "$rstore" "$rorigin"
expect 0 "replica: server" "$ddsnap" server -p "$rpid" "$rstore" "$rorigin" "$rsock"
head -c 5M /dev/urandom | dd of="$origin" bs=1M seek=2 conv=notrunc status=none
cp "$origin" "$dir/origin(2)"
expect 1 "send of a missing snapshot" "$ddsnap" send -d "$dir/origin" "$sock" 7
# without -d the devices are found by their dm table (socket and tag): here there are none
expect 1 "send without -d: no device shows the snapshot" "$ddsnap" send "$sock" 2
expect_out "no (device-mapper )?device shows snapshot 2 of $sock.*-d DEVSTEM" "the error names the snapshot and socket"
expect 1 "receive without -d: no device shows the origin" \
	bash -c "'$ddsnap' send -d '$dir/origin' '$sock' 2 | '$ddsnap' receive '$rsock' 2"
expect_out "no (device-mapper )?device shows the origin of $rsock.*-d DEVSTEM" "the error names the origin and socket"
expect 1 "receive into a FIFO origin is refused at once" timeout 20 \
	bash -c "'$ddsnap' send -d '$dir/origin' '$sock' 2 | '$ddsnap' receive -d '$dir/fifo' '$rsock' 2"
expect_out "fifo is a FIFO, not a regular file or block device" "the error says it is a FIFO"
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
# TCP misuse and faults (tools/xfer_tcp.c): a listening receive takes one stream, from
# --from's address, within --timeout; anything else is a clear error with nothing written,
# a cut connection keeps the token and a resumed stream over TCP completes.
listening() # PORT: waits up to 5 s until something listens on 127.0.0.1:PORT
{
	local hex _
	hex=$(printf '%04X' "$1")
	for _ in $(seq 50); do
		grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A" /proc/net/tcp && return 0
		sleep 0.1
	done
	return 1
}
expect 2 "receive --from without --listen" "$ddsnap" receive --from 127.0.0.1 -d "$rorigin" "$rsock" 6 </dev/null
expect_out "receive: --from and --timeout are options of --listen" "it says so"
expect 2 "receive --listen --timeout 0" "$ddsnap" receive --listen "127.0.0.1:$port" --timeout 0 -d "$rorigin" "$rsock" 6
expect_out "bad timeout '0': seconds, 1 to 86400" "the refusal states the range"
SECONDS=0
expect 1 "receive --listen: nobody connects within --timeout 1" "$ddsnap" receive --listen "127.0.0.1:$port" --timeout 1 -d "$rorigin" "$rsock" 6
expect_out "no sender connected to 127.0.0.1:$port within 1 seconds; nothing was written" "the error names the address and the wait"
expect 0 "it gave up after the timeout, not later" test "$SECONDS" -le 3
head -c 4M /dev/urandom | dd of="$origin" bs=1M seek=6 conv=notrunc status=none
expect 0 "master snapshot 6" "$ddsnap" create "$sock" 6
cp "$origin" "$dir/origin(6)"
cp "$rorigin" "$dir/rorigin.before"
# a connection from an address --from does not name is closed unread; the wait goes on
"$ddsnap" receive --listen "127.0.0.1:$port" --from 127.0.0.2 --timeout 3 -d "$rorigin" "$rsock" 6 2>"$dir/rerr" &
rcv=$!
listening "$port"
expect 1 "send from an address --from does not name fails" "$ddsnap" send -r --to "127.0.0.1:$port" -d "$dir/origin" "$sock" 6
expect 1 "and the receive times out" wait "$rcv"
expect 0 "it reported the refused connection" grep -q "refused a connection from 127.0.0.1 on 127.0.0.1:$port: only 127.0.0.2 may send here" "$dir/rerr"
expect 0 "nothing was written on the replica" cmp "$rorigin" "$dir/rorigin.before"
expect 1 "and no snapshot 6 there" "$ddsnap" status "$rsock" 6
# a stream cut mid-way over TCP: the token stays; meanwhile the port is taken
"$ddsnap" send -r -d "$dir/origin" "$sock" 6 | head -c 2000000 >"$dir/partial"
"$ddsnap" receive --listen "127.0.0.1:$port" --from 127.0.0.1 --timeout 20 -t "$dir/ttok" -d "$rorigin" "$rsock" 6 2>"$dir/rerr" &
rcv=$!
listening "$port"
expect 1 "a second receive on the same port is refused" "$ddsnap" receive --listen "127.0.0.1:$port" -d "$rorigin" "$rsock" 6
expect_out "cannot listen on 127.0.0.1:$port: Address already in use .*; nothing was written" "the error says the port is in use"
cut_tcp()
{
	exec 7<>"/dev/tcp/127.0.0.1/$port" && cat "$dir/partial" >&7
	exec 7>&-
}
expect 0 "a sender that stops after 2 MB" cut_tcp
expect 3 "the receive fails: the stream is truncated" wait "$rcv"
expect 0 "it says so" grep -q "truncated" "$dir/rerr"
expect 0 "and kept its resume token" test -s "$dir/ttok"
expect 1 "no snapshot 6 on the replica" "$ddsnap" status "$rsock" 6
len=$("$ddsnap" send -r -t "$dir/ttok" -d "$dir/origin" "$sock" 6 | wc -c)
"$ddsnap" receive --listen "127.0.0.1:$port" --from 127.0.0.1 -t "$dir/ttok" -d "$rorigin" "$rsock" 6 2>"$dir/rerr" &
rcv=$!
expect 0 "send -t TOKEN --to resumes over TCP" "$ddsnap" send -v -r -t "$dir/ttok" --to "127.0.0.1:$port" -d "$dir/origin" "$sock" 6
expect_out "^ddsnap send: $len bytes sent to 127.0.0.1:$port$" "send -v counts the bytes the receiver acknowledged: the stream's length"
expect 0 "the receive completes" wait "$rcv"
expect 0 "the replica's origin is snapshot 6" cmp "$rorigin" "$dir/origin(6)"
expect 0 "the replica took snapshot 6" "$ddsnap" status "$rsock" 6
expect 1 "the token is gone" test -e "$dir/ttok"
# a live endpoint on the port that is not a receive: send waits at most --timeout for the
# receiver's hello and sends nothing; one that answers something else fails at once
expect 2 "send --timeout without --to" "$ddsnap" send --timeout 5 -d "$dir/origin" "$sock" 6
expect_out "send: --timeout is an option of --to" "it says so"
expect 2 "send --to --timeout 0" "$ddsnap" send --to "127.0.0.1:$port" --timeout 0 -d "$dir/origin" "$sock" 6
expect_out "send: bad timeout '0': seconds, 1 to 86400" "the refusal states the range"
fake_peer() # PORT ANSWER OUT: accepts one connection, writes ANSWER (may be empty), never
{           # answers anything else, and writes to OUT how many bytes it was sent
	python3 - "$@" <<'PY' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
s.settimeout(30)
try:
    c, _ = s.accept()
except OSError:
    sys.exit("nobody connected")
c.sendall(sys.argv[2].encode())
c.settimeout(30)
n = 0
try:
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
except OSError:
    pass
open(sys.argv[3], "w").write("%d\n" % n)
PY
	peer=$!
	listening "$1"
}
fake_peer "$port" "" "$dir/peer.n"
SECONDS=0
expect 1 "send --to a live endpoint that never answers fails after --timeout" \
	timeout 60 "$ddsnap" send -r --to "127.0.0.1:$port" --timeout 2 -d "$dir/origin" "$sock" 6
expect_out "send: 127.0.0.1:$port accepted the connection but did not answer as a ddsnap receive within 2 seconds \(is a 'ddsnap receive --listen' there\?\); nothing was sent" \
	"the error names the peer and the wait"
expect 0 "it gave up after the timeout, not later" test "$SECONDS" -le 5
expect 0 "the endpoint was sent nothing" wait "$peer"
expect 0 "the endpoint was sent 0 bytes" test "$(cat "$dir/peer.n")" = 0
fake_peer "$port" $'SSH-2.0-OpenSSH_9.2\r\n' "$dir/peer.n"
SECONDS=0
expect 1 "send --to an endpoint that answers something else fails" \
	timeout 60 "$ddsnap" send -r --to "127.0.0.1:$port" -d "$dir/origin" "$sock" 6
expect_out "send: 127.0.0.1:$port is not a ddsnap receive: it answered 'SSH-2\.0-OpenSSH_9[^']*'; nothing was sent" \
	"the error names the peer and what it said"
expect 0 "at once, not after the default timeout" test "$SECONDS" -le 5
expect 0 "and sent it nothing" wait "$peer"
expect 0 "that endpoint was sent 0 bytes" test "$(cat "$dir/peer.n")" = 0
expect 0 "master: delete 6" "$ddsnap" delete "$sock" 6
expect 0 "replica: delete 6" "$ddsnap" delete "$rsock" 6

# revert (ddsnap(8)): misuse refused with nothing changed; a revert leaves a hidden revert
# point that list never shows and status and --json report until the next snapshot.
expect 2 "revert without arguments" "$ddsnap" revert
expect 2 "revert with a bad tag" "$ddsnap" revert "$sock" x
expect 2 "revert to a tag of the volume's own" "$ddsnap" revert "$sock" 4294967292
expect_out "bad snapshot tag '4294967292': a number from 0 to 4294967291" "the refusal states the tag range"
expect 1 "revert against no server" "$ddsnap" revert "$dir/nobody.sock" 2
expect_out "cannot connect" "revert says it cannot connect"
expect 1 "revert to a missing snapshot" "$ddsnap" revert "$sock" 9
expect_out "snapshot 9: no such snapshot" "the refusal names the snapshot"
expect 0 "list --json: no revert yet" "$ddsnap" list --json "$sock"
expect_json '.revert == null and ([.snapshots[].tag] == [2, 3, 4])' "list --json: revert null"
expect 0 "revert to snapshot 2" "$ddsnap" revert "$sock" 2
expect_out "^origin reverted to snapshot 2: [0-9]+ chunks copied back$" "revert says what it did"
expect 0 "list after the revert" "$ddsnap" list "$sock"
expect 0 "list shows the snapshots only, the newer ones kept" test "$(cut -d' ' -f1 "$dir/out" | tr '\n' ' ')" = "2 3 4 "
expect 0 "status after the revert" "$ddsnap" status "$sock"
expect_out "^origin reverted to snapshot 2 " "status reports the revert"
expect_out "^3 snapshots," "status counts the snapshots only"
expect 0 "status --json after the revert" "$ddsnap" status --json "$sock"
expect_json '.revert == {"to": 2, "state": "done"} and (.snapshots | length) == 3' "status --json: the revert, three snapshots"
expect 0 "revert again (to 3)" "$ddsnap" revert "$sock" 3
expect 0 "list --json after it" "$ddsnap" list --json "$sock"
expect_json '.revert == {"to": 3, "state": "done"}' "list --json: the last revert"
expect 0 "a snapshot after the revert" "$ddsnap" create "$sock" 5
expect 0 "list --json after the snapshot" "$ddsnap" list --json "$sock"
expect_json '.revert == null and ([.snapshots[].tag] == [2, 3, 4, 5])' "the snapshot dropped the revert point"
expect 0 "delete 5" "$ddsnap" delete "$sock" 5

# list across pages (64 snapshots a reply): 150 more on the replica, all listed, in order.
for t in $(seq 1000 1149); do "$ddsnap" create "$rsock" "$t" >/dev/null || break; done
expect 0 "list of 152 snapshots" "$ddsnap" list "$rsock"
cut -d' ' -f1 "$dir/out" >"$dir/listed"
printf '%s\n' 2 4 $(seq 1000 1149) >"$dir/created"
expect 0 "list shows every snapshot once, oldest first" cmp "$dir/listed" "$dir/created"
expect 0 "list --json of 152 snapshots (three pages)" "$ddsnap" list --json "$rsock"
expect_json '.snapshots | length == 152' "list --json: valid, 152 snapshots"
jq -r '.snapshots[].tag' "$dir/json" >"$dir/listed"
expect 0 "list --json has every snapshot once, oldest first" cmp "$dir/listed" "$dir/created"
kill -TERM "$(cat "$rpid")"

# Provenance (issue 19): A (the master above) -> B -> C.  Each received snapshot keeps the
# identity A gave it (A's uuid, its gen there), on B and, passed on by B, on C; list --json
# shows it with origin_written and receive_token.  A replica whose base of the same tag is of
# another history is refused before a byte is written.  (On files no kernel reports origin
# writes, so a server's changelists are empty: B passes snapshots on in full streams here;
# the VM scenario replication sends incrementals through real devices.)
for v in b c x; do
	truncate -s 64M "$dir/${v}store"
	truncate -s 16M "$dir/${v}origin"
	"$ddsnap" initialize -c 16k "$dir/${v}store" "$dir/${v}origin" >/dev/null
	expect 0 "provenance: server $v" "$ddsnap" server -p "$dir/${v}pid" "$dir/${v}store" "$dir/${v}origin" "$dir/${v}vol.sock"
done
bsock=$dir/bvol.sock csock=$dir/cvol.sock xsock=$dir/xvol.sock
# hop FROM_SOCK FROM_STEM TO_SOCK TO_STEM [BASE] TAG: send | receive between two servers
hop()
{
	local fs=$1 fd=$2 ts=$3 td=$4
	shift 4
	"$ddsnap" send -d "$fd" "$fs" "$@" | "$ddsnap" receive -d "$td" "$ts" "${@: -1}"
}
expect 0 "A -> B full (snapshot 2)" hop "$sock" "$origin" "$bsock" "$dir/borigin" 2
cp "$dir/borigin" "$dir/borigin(2)"
expect 0 "A -> B full (snapshot 4)" hop "$sock" "$origin" "$bsock" "$dir/borigin" 4
cp "$dir/borigin" "$dir/borigin(4)"
expect 0 "B -> C full (snapshot 2)" hop "$bsock" "$dir/borigin" "$csock" "$dir/corigin" 2
expect 0 "C's origin is A's snapshot 2" cmp "$dir/corigin" "$dir/origin(2)"
cp "$dir/corigin" "$dir/corigin(2)"
expect 0 "B -> C incremental 2 -> 4: the base's identity (A's, passed on by B) matches" \
	hop "$bsock" "$dir/borigin" "$csock" "$dir/corigin" 2 4
"$ddsnap" list --json "$sock" >"$dir/a.json"
expect 0 "list --json on C" "$ddsnap" list --json "$csock"
expect_json '.origin_written == false and .receive_token == null and (.snapshots | length == 2)' "C: origin_written false, no token"
cp "$dir/json" "$dir/c.json"
expect_json '[.snapshots[] | .origin_uuid | test("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")] | all' "origin_uuid is a dashed uuid"
for t in 2 4; do
	q=".snapshots[] | select(.tag == $t) | [.origin_uuid, .origin_gen]"
	expect 0 "snapshot $t has one identity on A and C" test "$(jq -c "$q" "$dir/a.json")" = "$(jq -c "$q" "$dir/c.json")"
done
# shellcheck disable=SC2016 # jq variables
expect 0 "A's own snapshots carry A's uuid and their own gens" \
	jq -e '.uuid as $u | [.snapshots[] | .origin_uuid == $u] | all' "$dir/a.json"
# shellcheck disable=SC2016 # jq variables
expect 0 "C's carry A's uuid, not B's or C's" \
	jq -e --slurpfile a "$dir/a.json" '.uuid != $a[0].uuid and ([.snapshots[] | .origin_uuid == $a[0].uuid] | all)' "$dir/c.json"
expect 0 "status --json on B" "$ddsnap" status --json "$bsock" 4
expect 0 "shows the provenance too" test "$(jq -c '.snapshots[0] | [.origin_uuid, .origin_gen]' "$dir/out")" = \
	"$(jq -c '.snapshots[] | select(.tag == 4) | [.origin_uuid, .origin_gen]' "$dir/a.json")"
# the base check: X has a snapshot 4 of its own, with A's content except near the end
cp "$dir/origin(4)" "$dir/xorigin"
head -c 64k /dev/urandom | dd of="$dir/xorigin" bs=1M seek=14 conv=notrunc status=none
expect 0 "X takes its own snapshot 4" "$ddsnap" create "$xsock" 4
cp "$dir/xorigin" "$dir/xorigin(4)"
head -c 1M /dev/urandom | dd of="$origin" bs=1M seek=1 conv=notrunc status=none
head -c 1M /dev/urandom | dd of="$origin" bs=1M seek=14 conv=notrunc status=none
expect 0 "master snapshot 5" "$ddsnap" create "$sock" 5
cp "$origin" "$dir/origin(5)"
cp "$dir/xorigin" "$dir/xorigin.before"
expect 1 "an incremental 4 -> 5 onto X's own snapshot 4 is refused" hop "$sock" "$origin" "$xsock" "$dir/xorigin" 4 5
expect_out "wrong base: the stream is an incremental from snapshot 4 of volume [0-9a-f-]{36} gen [0-9]+, but this replica's snapshot 4 is of volume [0-9a-f-]{36} gen [0-9]+ \(another history\); nothing was written" \
	"the refusal names the tag and both uuid/gen pairs"
expect 0 "X's origin is unchanged, byte for byte" cmp "$dir/xorigin" "$dir/xorigin.before"
expect 1 "and X has no snapshot 5" "$ddsnap" status "$xsock" 5
# a cut transfer to B leaves receive's default token (<socket without .sock>.token)
cut_to_b()
{
	"$ddsnap" send -r -d "$origin" "$sock" 5 | head -c 600000 | "$ddsnap" receive -d "$dir/borigin" "$bsock" 5
}
expect 3 "a cut full transfer of 5 to B" cut_to_b
expect 0 "it left B's default token" test -s "$dir/bvol.token"
expect 0 "list --json on B" "$ddsnap" list --json "$bsock"
expect_json '.receive_token == {"from": null, "to": 5}' "receive_token names the cut transfer"
resume_to_b()
{
	"$ddsnap" send -r -t "$dir/bvol.token" -d "$origin" "$sock" 5 | "$ddsnap" receive -d "$dir/borigin" "$bsock" 5
}
expect 0 "resumed, it completes" resume_to_b
expect 0 "list --json on B" "$ddsnap" list --json "$bsock"
expect_json '.receive_token == null and (.snapshots | length == 3)' "no token once done"
q='.snapshots[] | select(.tag == 5) | [.origin_uuid, .origin_gen]'
expect 0 "the resumed snapshot 5 has A's identity" test "$(jq -c "$q" "$dir/json")" = "$("$ddsnap" list --json "$sock" | jq -c "$q")"
# a full stream from a replica's store: B sends C snapshot 5 in full to Y, provenance A's
truncate -s 64M "$dir/ystore"
truncate -s 16M "$dir/yorigin"
"$ddsnap" initialize -c 16k "$dir/ystore" "$dir/yorigin" >/dev/null
expect 0 "provenance: server y" "$ddsnap" server -p "$dir/ypid" "$dir/ystore" "$dir/yorigin" "$dir/yvol.sock"
cp "$dir/borigin" "$dir/borigin(5)"
expect 0 "B -> Y full (snapshot 5)" hop "$bsock" "$dir/borigin" "$dir/yvol.sock" "$dir/yorigin" 5
expect 0 "list --json on Y" "$ddsnap" list --json "$dir/yvol.sock"
expect 0 "Y's snapshot 5 has A's identity" test "$(jq -c "$q" "$dir/json")" = "$("$ddsnap" list --json "$sock" | jq -c "$q")"
# the repair path: a snapshot taken by hand with the provenance receive names
expect 2 "create -o with a bad origin" "$ddsnap" create -o nothex:1 "$dir/yvol.sock" 6
expect_out "bad origin 'nothex:1'" "the refusal names it"
expect 2 "create -o with gen 0" "$ddsnap" create -o 00112233445566778899aabbccddeeff:0 "$dir/yvol.sock" 6
expect 0 "create -o UUID:GEN" "$ddsnap" create -o 00112233-4455-6677-8899-aabbccddeeff:42 "$dir/yvol.sock" 6
expect 0 "list --json on Y" "$ddsnap" list --json "$dir/yvol.sock"
expect_json '.snapshots[] | select(.tag == 6) | .origin_uuid == "00112233-4455-6677-8899-aabbccddeeff" and .origin_gen == 42' "snapshot 6 carries the given provenance"
for v in b c x y; do
	kill -TERM "$(cat "$dir/${v}pid")"
	wait_gone "$dir/${v}pid"
done
# check, dump and restore carry the provenance tree; the label has ro_compat bit 0
expect 0 "check B's store" "$ddsnap" check "$dir/bstore"
expect_out "clean" "it is clean"
expect 0 "dump B's store" "$ddsnap" dump "$dir/bstore"
expect_out "features=0x0:0x1:0x1$" "its label has feature_ro_compat bit 0 (and incompat bit 0, persisted deadlists)"
expect_out "^tree provenance$" "the dump has the provenance tree"
cp "$dir/out" "$dir/bdump"
expect 0 "X's store (no received snapshot) has no feature bit" "$ddsnap" dump "$dir/xstore"
expect_out "features=0x0:0x0:0x1$" "incompat bit 0 (persisted deadlists) only"
truncate -s 64M "$dir/b2store"
expect 0 "restore B's dump" "$ddsnap" restore "$dir/bdump" "$dir/b2store"
expect_out "restored .* 3 provenance records" "restore says it restored three provenance records"
expect 0 "check the restored store" "$ddsnap" check "$dir/b2store"
expect_out "clean" "it is clean"
expect 0 "dump the restored store" "$ddsnap" dump "$dir/b2store"
expect_out "features=0x0:0x1:0x1$" "the restored label has the bit"
cp "$dir/out" "$dir/b2dump"
grep -A99 '^tree provenance$' "$dir/bdump" | grep '^entry' >"$dir/bprov"
grep -A99 '^tree provenance$' "$dir/b2dump" | grep '^entry' >"$dir/b2prov"
expect 0 "the provenance entries are the same" cmp "$dir/bprov" "$dir/b2prov"
expect 0 "three of them" test "$(wc -l <"$dir/b2prov")" -eq 3
# a provenance record of a snapshot that does not exist: check reports it, no server serves it
awk '{print} /^tree provenance$/{p=1} p && /^entry /{sub(/key=[0-9]+/, "key=99"); print; p=0}' \
	"$dir/bdump" >"$dir/bdump-orphan"
truncate -s 64M "$dir/b3store"
expect 0 "restore a dump with a provenance record of no snapshot" "$ddsnap" restore "$dir/bdump-orphan" "$dir/b3store"
expect 3 "check reports it" "$ddsnap" check "$dir/b3store"
expect_out "provenance record of snapshot 99, which does not exist" "naming the tag"
truncate -s 16M "$dir/b3origin"
expect 1 "a server refuses the store" "$ddsnap" server -p "$dir/b3pid" "$dir/b3store" "$dir/b3origin" "$dir/b3vol.sock"
# a dump without a provenance tree (X's, as every dump before it) restores without the bit
expect 0 "dump X's store" "$ddsnap" dump "$dir/xstore"
cp "$dir/out" "$dir/xdump"
truncate -s 64M "$dir/x2store"
expect 0 "restore X's dump" "$ddsnap" restore "$dir/xdump" "$dir/x2store"
expect 0 "dump the restored X" "$ddsnap" dump "$dir/x2store"
expect_out "features=0x0:0x0:0x1$" "no provenance bit"

kill -TERM "$(cat "$pid")"
wait_gone "$pid"
expect 1 "the server removed its pid file on SIGTERM" test -e "$pid"
expect 0 "check the stopped store" "$ddsnap" check "$store"
expect_out "clean" "check reports the store clean"
# Progress lines (util/xfer.h) go to a terminal only: none in a file, one on a pty.
expect 0 "check draws no progress line when stderr is not a terminal" bash -c "! grep -q 'tree blocks\|deadlists from\|ETA' '$dir/err'"
expect 0 "restore draws none either" bash -c "truncate -s 64M '$dir/rstore' && '$ddsnap' dump '$store' | '$ddsnap' restore -y - '$dir/rstore' 2>'$dir/rerr' && ! grep -q 'restore: \|ETA' '$dir/rerr'"
expect_out "restored [0-9]+ exceptions" "and it restored the store"
rm -f "$dir/rstore"
expect 0 "check on a terminal draws its progress" script -qec "'$ddsnap' check '$store'" /dev/null
expect_out "check: tree blocks: [0-9]+ / [0-9]+ blocks .*ETA" "the line says what, how far and the time left"
expect 0 "dump" "$ddsnap" dump "$store"
expect_out "^label " "dump starts with the label"
expect 0 "dump draws no progress line off a terminal" bash -c "! grep -q 'dump: \\|ETA' '$dir/err'"
expect 0 "the server starts again on the same store" "$ddsnap" server -p "$pid" "$store" "$origin" "$sock"
expect 0 "the server's open drew no progress line (stderr not a terminal)" bash -c "! grep -q 'deadlists from\\|ETA' '$dir/err'"
expect 0 "snapshot 2 survived the restart" "$ddsnap" status "$sock" 2

kill -TERM "$(cat "$pid")"
wait_gone "$pid"

# Issue 16 defect 3: one flipped byte in a middle intent log block after 30 acknowledged
# creates and a SIGKILL.  The intact blocks after it prove damage, not a torn tail: the
# server refuses, check reports it (exit 3), and both keep saying so until the administrator
# accepts the loss with --discard-damaged-log.
dstore=$dir/dstore dsock=$dir/dsock dpid=$dir/dpid
truncate -s 64M "$dstore"
"$ddsnap" initialize "$dstore" "$origin" >/dev/null
"$ddsnap" server -l "$dir/dlog" -p "$dpid" "$dstore" "$origin" "$dsock"
for t in $(seq 1 30); do "$ddsnap" create "$dsock" "$t" >/dev/null; done
dpid_n=$(cat "$dpid")
kill -KILL "$dpid_n"
wait_dead "$dpid_n" # its store lock goes with it
rm -f "$dsock" "$dpid"
log_start=$("$ddsnap" dump "$dstore" | sed -n 's/^label .* log_start=\([0-9]*\) .*/\1/p')
seq0=$("$ddsnap" dump "$dstore" | sed -n 's/^uberblock .*newest.* log_block_seq=\([0-9]*\) .*/\1/p')
printf '\377' | dd of="$dstore" bs=1 seek=$(((log_start + seq0 + 10) * 4096 + 100)) conv=notrunc status=none
for pass in 1 2; do
	expect 1 "server refuses a store with a damaged intent log ($pass)" "$ddsnap" server -p "$dpid" "$dstore" "$origin" "$dsock"
	expect_out "intent log damaged: block seq $((seq0 + 10)) is unreadable .* 19 intact blocks follow" "the refusal says which block and how much follows"
	expect_out "discard-damaged-log" "the refusal says how to proceed"
	expect 3 "check reports the damaged intent log ($pass)" "$ddsnap" check "$dstore"
	expect_out "^error: intent log damaged: block seq $((seq0 + 10))" "check names the damaged block"
done
expect 0 "server --discard-damaged-log accepts the loss" "$ddsnap" server --discard-damaged-log -l "$dir/dlog" -p "$dpid" "$dstore" "$origin" "$dsock"
expect 0 "list after the discard" "$ddsnap" list "$dsock"
expect 0 "the 10 snapshots before the damage came back" test "$(wc -l <"$dir/out")" -eq 10
kill -TERM "$(cat "$dpid")"
wait_gone "$dpid"
expect 0 "check is clean after the discard" "$ddsnap" check "$dstore"

# Issue 16 defect 6: a store shorter than its label says (truncated to half) is reported
# clearly by check, dump and the server, with no crash; the same for a metadata device.
cp "$dstore" "$dir/tstore"
truncate -s 32M "$dir/tstore"
expect 3 "check of a snapstore truncated to half" "$ddsnap" check "$dir/tstore"
expect_out "^error: snapstore .*tstore is 33554432 bytes, its label says 67108864: truncated\?" "check says it is truncated"
expect 3 "dump of a truncated snapstore reports errors" "$ddsnap" dump "$dir/tstore"
expect_out "^error snapstore .*truncated\?" "dump says it is truncated"
expect 1 "server refuses a truncated snapstore" "$ddsnap" server -l "$dir/tlog" "$dir/tstore" "$origin" "$dir/tsock"
expect_out "its label says 67108864: truncated\?" "the server says it is truncated"
truncate -s 16M "$dir/tmeta"
expect 0 "initialize with a metadata device" "$ddsnap" initialize -y "$dir/tstore" "$origin" "$dir/tmeta"
truncate -s 8M "$dir/tmeta"
expect 3 "check of a truncated metadata device" "$ddsnap" check "$dir/tstore" "$dir/tmeta"
expect_out "^error: metadata device .*tmeta is 8388608 bytes, its label says 16777216: truncated\?" "check says the metadata device is truncated"

# Messages say what is wrong in the project's words (issue 16): tree damage is "metadata
# damaged", not libc's multibyte-character text; a missing label copy does not run into the
# next message.
cp "$dstore" "$dir/mstore"
root=$("$ddsnap" dump "$dir/mstore" | sed -n 's/^root snapshots blocknr=\([0-9]*\) .*/\1/p')
printf '\377' | dd of="$dir/mstore" bs=1 seek=$((root * 4096 + 200)) conv=notrunc status=none
expect 1 "server on a store with a damaged tree node" "$ddsnap" server -l "$dir/mlog" "$dir/mstore" "$origin" "$dir/msock"
expect_out "cannot open the snapshot metadata: metadata damaged \(checksum, magic or structure\)" "the refusal says metadata damaged"
expect 3 "check of the damaged tree node" "$ddsnap" check "$dir/mstore"
expect_out "^error: snapshots tree: btree leaf: checksum" "check names the tree and the checksum"
expect 1 "no multibyte-character text for tree damage" grep -rq "multibyte" "$dir/out" "$dir/err" "$dir/mlog"
cp "$dstore" "$dir/mstore"
printf 'XXXX' | dd of="$dir/mstore" bs=1 seek=4 conv=notrunc status=none
expect 3 "check of a store whose first label copy lost its magic" "$ddsnap" check "$dir/mstore"
expect_out "^error: .*mstore: no label copy 0$" "check says which label copy is missing"
truncate -s 64M "$dir/blank"
expect 1 "server on a file that holds no store" "$ddsnap" server -l "$dir/blog" "$dir/blank" "$origin" "$dir/bsock"
expect_out "blank: no label$" "the refusal says there is no label"
expect 1 "and does not run into the next message" grep -q "labellabel" "$dir/out" "$dir/err"

# A store in format 1 as the code before issue 16 wrote it (store-v1.img.gz: 8 MiB, 4 KiB
# chunks, a 1 MiB origin, snapshots 1 and 3, one exception): every later ddsnap opens it as
# it is or upgrades it (doc/format.md, "Versions and upgrades").
gunzip -c tests/cli/store-v1.img.gz >"$dir/v1"
truncate -s 1M "$dir/v1origin"
expect 0 "check a format-1 store" "$ddsnap" check "$dir/v1"
expect_out "engine: 1 exceptions, .* 2 live snapshots" "it holds its exception and snapshots"
expect 0 "dump a format-1 store" "$ddsnap" dump "$dir/v1"
expect_out "^label device=snapstore version=1 .*features=0x0:0x0:0x0$" "its label is version 1 without features"
"$ddsnap" dump "$dir/v1" | sed -n '/^tree exceptions$/,/^tree [^e]/p' | grep '^entry' >"$dir/v1exc"
expect 0 "a server opens a format-1 store" "$ddsnap" server -l "$dir/v1log" -p "$dir/v1pid" "$dir/v1" "$dir/v1origin" "$dir/v1.sock"
expect 0 "and upgrades it to persisted deadlists at open" grep -q "upgraded to persisted deadlists" "$dir/v1log"
expect 0 "list its snapshots" "$ddsnap" list "$dir/v1.sock"
expect_out "^3 " "snapshot 3 is there"
expect 0 "list --json of a format-1 store" "$ddsnap" list --json "$dir/v1.sock"
# shellcheck disable=SC2016 # jq variables
expect_json '.uuid as $u | (.snapshots | length == 2) and ([.snapshots[] | .origin_uuid == $u and .origin_gen > 0] | all)' "its snapshots are its own (its uuid, their gens)"
kill -TERM "$(cat "$dir/v1pid")"
wait_gone "$dir/v1pid"
expect 0 "it still checks clean after the server" "$ddsnap" check "$dir/v1"
expect 0 "dump it again" "$ddsnap" dump "$dir/v1"
expect_out "features=0x0:0x0:0x1$" "serving it upgraded it to persisted deadlists (incompat bit 0), no other bit"
expect_out "^tree deadlist_entries$" "the dump has the persisted deadlists"
sed -n '/^tree exceptions$/,/^tree [^e]/p' "$dir/out" | grep '^entry' >"$dir/v1exc2"
expect 0 "its exceptions are those it had" cmp "$dir/v1exc" "$dir/v1exc2"
expect 0 "a server opens it again" "$ddsnap" server -p "$dir/v1pid" "$dir/v1" "$dir/v1origin" "$dir/v1.sock"
expect 0 "it takes a received snapshot (create -o)" "$ddsnap" create -o 0123456789abcdef0123456789abcdef:7 "$dir/v1.sock" 5
kill -TERM "$(cat "$dir/v1pid")"
wait_gone "$dir/v1pid"
expect 0 "dump it after" "$ddsnap" dump "$dir/v1"
expect_out "features=0x0:0x1:0x1$" "only then it gets feature_ro_compat bit 0"
expect 0 "it checks clean" "$ddsnap" check "$dir/v1"
expect_out "engine: 1 exceptions, .* 3 live snapshots" "with its three snapshots"

# The upgrade at open, killed (SIGKILL) at points in it: a store of the older format made by
# restore -O from generated dump text (200,000 exceptions, 10 snapshots, about 0.1 s of
# upgrade), the server killed once the upgrade started, after 0 to 200 ms.  After each kill
# the store checks clean and holds the same exceptions; the next open finishes the upgrade.
gtot=200000
truncate -s $(((gtot + 2 * 65536) * 16384 + gtot * 200 + (64 << 20))) "$dir/g.s"
truncate -s $((gtot * 16384)) "$dir/g.o"
"$ddsnap" initialize -y "$dir/g.s" "$dir/g.o" >/dev/null
glabel=$("$ddsnap" dump "$dir/g.s" | sed -n 2p)
python3 bench/gen-dump.py $gtot 10 "$(grep -o ' data_start=[0-9]*' <<<"$glabel" | cut -d= -f2)" \
	"$(grep -o ' ms_shift=[0-9]*' <<<"$glabel" | cut -d= -f2)" >"$dir/g.dump"
expect 0 "restore -O makes a store of the format before persisted deadlists" "$ddsnap" restore -O -y "$dir/g.dump" "$dir/g.s"
cp --sparse=always "$dir/g.s" "$dir/g.s0"
expect 0 "dump it" "$ddsnap" dump "$dir/g.s"
expect_out "features=0x0:0x0:0x0$" "without the bit"
sed -n '/^tree exceptions$/,/^tree [^e]/p' "$dir/out" | grep '^entry' >"$dir/gexc"
gcut=0
for d in 0 0.02 0.04 0.06 0.08 0.2; do
	cp --sparse=always "$dir/g.s0" "$dir/g.s"
	rm -f "$dir/g.log"
	"$ddsnap" server -f -l "$dir/g.log" "$dir/g.s" "$dir/g.o" "$dir/g.sock" 2>/dev/null &
	gpid=$!
	until grep -q "upgrading to persisted deadlists" "$dir/g.log" 2>/dev/null; do sleep 0.005; done
	sleep "$d"
	kill -KILL "$gpid"
	wait "$gpid" 2>/dev/null
	grep -q "upgraded to persisted deadlists" "$dir/g.log" || gcut=$((gcut + 1))
	expect 0 "killed $d s into the upgrade: check is clean" "$ddsnap" check "$dir/g.s"
	expect_out "engine: $gtot exceptions, .* 10 live snapshots, 0 invalidated, 0 problems" "with every exception"
	expect 0 "the next open upgrades it (or has)" "$ddsnap" server -p "$dir/gpid" "$dir/g.s" "$dir/g.o" "$dir/g.sock"
	expect 0 "status answers" "$ddsnap" status "$dir/g.sock"
	kill -TERM "$(cat "$dir/gpid")"
	wait_gone "$dir/gpid"
	expect 0 "then check is clean" "$ddsnap" check "$dir/g.s"
	expect 0 "dump it" "$ddsnap" dump "$dir/g.s"
	expect_out "features=0x0:0x0:0x1$" "it is upgraded"
	sed -n '/^tree exceptions$/,/^tree [^e]/p' "$dir/out" | grep '^entry' >"$dir/gexc2"
	expect 0 "its exceptions are the same" cmp "$dir/gexc" "$dir/gexc2"
done
expect 0 "some kill landed inside the upgrade ($gcut of 6)" test "$gcut" -gt 0
# The upgrade in bounded txgs (a quarter of a 4 MiB cache dirty ends one: about ten txgs
# here), killed every 30 ms until it is done: each open continues from the cursor the last
# synced txg left (check notes it and is clean), and the store ends upgraded, the same.
cp --sparse=always "$dir/g.s0" "$dir/g.s"
gkills=0
gcont=0
gnoted=0
gbad=0
while [ "$gkills" -lt 40 ]; do
	rm -f "$dir/g.log"
	"$ddsnap" server -f -k 4M -l "$dir/g.log" "$dir/g.s" "$dir/g.o" "$dir/g.sock" 2>/dev/null &
	gpid=$!
	until grep -q "upgrading to persisted deadlists\|upgraded to" "$dir/g.log" 2>/dev/null; do sleep 0.005; done
	sleep 0.03
	kill -KILL "$gpid"
	wait "$gpid" 2>/dev/null
	grep -q "continuing an interrupted upgrade" "$dir/g.log" && gcont=$((gcont + 1))
	grep -q "upgraded to persisted deadlists" "$dir/g.log" && break
	gkills=$((gkills + 1))
	if ! "$ddsnap" check "$dir/g.s" >"$dir/gcheck" 2>&1; then
		gbad=$((gbad + 1))
		sed 's/^/     /' "$dir/gcheck"
	fi
	grep -q "note: persisted deadlists of an interrupted upgrade, [0-9]* entries written" "$dir/gcheck" && gnoted=$((gnoted + 1))
done
expect 0 "the bounded upgrade, killed $gkills times, completed" grep -q "upgraded to persisted deadlists in .* ms, [0-9]* txgs" "$dir/g.log"
expect 0 "check was clean after every kill ($gbad not)" test "$gbad" -eq 0
expect 0 "check named a cursor left by a kill ($gnoted times)" test "$gnoted" -gt 0
expect 0 "opens continued from the cursor ($gcont times)" test "$gcont" -gt 0
expect 0 "then check is clean" "$ddsnap" check "$dir/g.s"
expect_out "engine: $gtot exceptions, .* 10 live snapshots, 0 invalidated, 0 problems" "with every exception"
expect 0 "dump it" "$ddsnap" dump "$dir/g.s"
expect_out "features=0x0:0x0:0x1$" "it is upgraded"
sed -n '/^tree exceptions$/,/^tree [^e]/p' "$dir/out" | grep '^entry' >"$dir/gexc2"
expect 0 "its exceptions are the same" cmp "$dir/gexc" "$dir/gexc2"
# the upgrade shows its progress on a terminal, and only there
cp --sparse=always "$dir/g.s0" "$dir/g.s"
expect 0 "an upgrading server on a terminal" script -qec "'$ddsnap' server -p '$dir/gpid' '$dir/g.s' '$dir/g.o' '$dir/g.sock'" /dev/null
expect_out "persisting the deadlists: $gtot / $gtot entries" "draws the upgrade's progress"
kill -TERM "$(cat "$dir/gpid")"
wait_gone "$dir/gpid"
cp --sparse=always "$dir/g.s0" "$dir/g.s"
expect 0 "an upgrading server off a terminal" "$ddsnap" server -p "$dir/gpid" "$dir/g.s" "$dir/g.o" "$dir/g.sock"
expect 0 "draws none" bash -c "! grep -q 'persisting\\|ETA' '$dir/err'"
kill -TERM "$(cat "$dir/gpid")"
wait_gone "$dir/gpid"
# check compares the persisted deadlists with the exception tree: one entry gone from a dump
# (its piece's count now too high) restores into a store check calls damaged
"$ddsnap" dump "$dir/g.s" >"$dir/gdump"
awk '/^tree deadlist_entries$/{p=1} p && /^entry /{p=0; next} {print}' "$dir/gdump" >"$dir/gdump-bad"
expect 1 "one deadlist entry fewer" cmp -s "$dir/gdump" "$dir/gdump-bad"
expect 0 "restores" "$ddsnap" restore -y "$dir/gdump-bad" "$dir/g.s"
expect 3 "check finds the persisted deadlists damaged" "$ddsnap" check "$dir/g.s"
expect_out "deadlist" "naming the deadlists"
rm -f "$dir/g.s" "$dir/g.s0" "$dir/g.o" "$dir/g.dump" "$dir/gdump" "$dir/gdump-bad" "$dir"/gexc*

# A killed server leaves no lock behind: the kernel drops it with the process.
expect 0 "a server on the 4k store" "$ddsnap" server -p "$dir/kpid" "$dir/o2" "$dir/oodd" "$dir/k.sock"
kpid=$(cat "$dir/kpid")
kill -KILL "$kpid"
wait_dead "$kpid"
expect 0 "after kill -9 a new server opens the store" "$ddsnap" server -p "$dir/kpid" "$dir/o2" "$dir/oodd" "$dir/k.sock"
# Snapshots taken and the server killed before its txg synced: the next open replays them,
# with a progress line on a terminal only.
for t in 71 72 73; do "$ddsnap" create "$dir/k.sock" $t >/dev/null; done
kpid=$(cat "$dir/kpid")
kill -KILL "$kpid"
wait_dead "$kpid"
expect 0 "a server replaying on a terminal" script -qec "'$ddsnap' server -p '$dir/kpid' '$dir/o2' '$dir/oodd' '$dir/k.sock'" /dev/null
expect_out "open: replaying the intent log: [0-9]+ records" "it draws the replay's progress"
expect_out "[1-9][0-9]* log records replayed|open: replaying the intent log: [1-9]" "and records were replayed"
expect 0 "snapshot 73 was replayed" "$ddsnap" status "$dir/k.sock" 73
for t in 74 75; do "$ddsnap" create "$dir/k.sock" $t >/dev/null; done
kpid=$(cat "$dir/kpid")
kill -KILL "$kpid"
wait_dead "$kpid"
expect 0 "a server replaying off a terminal" "$ddsnap" server -p "$dir/kpid" "$dir/o2" "$dir/oodd" "$dir/k.sock"
expect 0 "draws no progress line" bash -c "! grep -q 'replaying\\|ETA' '$dir/err'"
expect 0 "snapshot 75 was replayed" "$ddsnap" status "$dir/k.sock" 75
kill -TERM "$(cat "$dir/kpid")"
wait_gone "$dir/kpid"

# A grown snapstore keeps its last label copy where initialize put it.
cp "$dir/o2" "$dir/grown"
truncate -s +16M "$dir/grown"
expect 0 "check a grown snapstore" "$ddsnap" check "$dir/grown"
expect_out "clean" "it is clean (both label copies found)"

results_record cli "$passed" "$failed"
echo "cli: $passed passed, $failed failed"
((failed == 0))
