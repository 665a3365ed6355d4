# shellcheck shell=bash disable=SC2154 # dir, ddsnap, zumastor and the helpers are run.sh's
# SPDX-License-Identifier: GPL-2.0-only
#
# Replication (doc/replication.md) on this machine, on plain files, sourced by run.sh (its
# expect, expect_out, expect_json, same, $dir, $src).  Three "boxes" a, b and c, each with
# its own database, runtime and log (ZUMASTOR_ROOT/RUN/LOG) and key directory:
#  - a fake ssh ($dir/bin/ssh, ZUMASTOR_SSH) that behaves as sshd with the receiver's
#    authorized_keys: it finds the line of the key given with -i (its public half), refuses
#    a key that is not there or a line without restrict and a forced command, and runs the
#    line's command with SSH_ORIGINAL_COMMAND set and the receiving box's environment: so
#    every transfer goes through `zumastor receive-from` and the line define target printed;
#  - a ddsnap wrapper ($dir/bin/ddsnap, ZUMASTOR_DDSNAP) that stands for the kernel's
#    snapshot devices: on files the monitor gives ddsnap send/receive -d <origin>, which
#    reads snapshot T from <origin>(T), so the wrapper copies the origin file to <origin>(T)
#    when a snapshot is taken (create, and receive's own), and removes it on delete.  The
#    server on files never sees an origin write (no kernel target), so an incremental's
#    changelist would be empty: the wrapper logs the stream the monitor asked for
#    ($SEND_LOG: "send FROM TO" or "send full TO") and sends the full stream of the same
#    snapshot, so the checksums compare real content.  The VM scenarios send real
#    incrementals.  Likewise a revert copies <origin>(T) back over the origin (the
#    server's copy-back, which sees no origin write on files), and fails while the count
#    in $REVERT_FAILS is above zero.
# A -> B -> C over simulated days (ZUMASTOR_NOW), a cut stream resumed, a link down while
# A's retention prunes hard, the forced command's refusals, status and check.

rbin=$dir/bin
mkdir -p "$rbin"
cat >"$rbin/ddsnap" <<'WRAP'
#!/usr/bin/env bash
# ddsnap, plus the snapshot "devices" of a volume on files: <origin>(T) copies.
real=${REAL_DDSNAP:?}
origin_of() # SOCK: the origin file of the monitor volume whose socket it is
{
	local vol
	vol=$(basename "$1" .sock)
	cat "$ZUMASTOR_ROOT/volumes/$vol/origin" 2>/dev/null
}
if [[ $1 == send ]]; then
	# What the monitor asked for, logged; on files the server never sees an origin write
	# (they bypass the kernel target), so an incremental's changelist would be empty: the
	# stream sent is the full one of the same snapshot, which carries the real content.
	args=("$@")
	n=${#args[@]}
	if [[ ${args[n - 2]} =~ ^[0-9]+$ && ${args[n - 3]} == *.sock ]]; then
		echo "send ${args[n - 2]} ${args[n - 1]}" >>"$SEND_LOG"
		unset 'args[n - 2]'
		set -- "${args[@]}"
	else
		echo "send full ${args[n - 1]}" >>"$SEND_LOG"
	fi
fi
# a receive killed by SIGKILL before it reads anything (a link cut, a crash): $KILL_RECEIVE
if [[ $1 == receive && -n ${KILL_RECEIVE:-} ]]; then
	kill -KILL $$
fi
# a receive that applies its stream and cannot take the snapshot (its server gone):
# $UNSNAP_RECEIVE; the snapshot the real receive took is deleted, receive's message printed
if [[ $1 == receive && -n ${UNSNAP_RECEIVE:-} ]]; then
	"$real" "$@" || exit
	sock=${*: -2:1} tag=${*: -1}
	prov=$("$real" list --json "$sock" | jq -r ".snapshots[] | select(.tag == $tag) | \"\(.origin_uuid):\(.origin_gen)\"")
	"$real" delete "$sock" "$tag" >/dev/null || exit
	echo "ddsnap receive: cannot connect to server socket $sock: Connection refused" >&2
	echo "ddsnap receive: the stream was applied but snapshot $tag was not taken: take it with 'ddsnap create -o $prov $sock $tag'" >&2
	exit 1
fi
# a revert that fails (the test's count of failures to come in $REVERT_FAILS)
if [[ $1 == revert && -s ${REVERT_FAILS:-/nonexistent} ]] && (($(cat "$REVERT_FAILS") > 0)); then
	echo $(($(cat "$REVERT_FAILS") - 1)) >"$REVERT_FAILS"
	echo "ddsnap revert: cannot connect to the server (a failure the test made)" >&2
	exit 1
fi
"$real" "$@"
rc=$?
((rc == 0)) || exit $rc
case $1 in
create) o=$(origin_of "${*: -2:1}") && [[ -f $o ]] && cp "$o" "$o(${*: -1})" ;;
delete) o=$(origin_of "$2") && rm -f "$o($3)" ;;
# the server's copy-back, which on files has no origin writes to undo
revert) o=$(origin_of "$2") && cp "$o($3)" "$o" ;;
receive)
	shift
	while [[ $1 == -* ]]; do
		case $1 in
		-d) stem=$2; shift ;;
		--listen) echo "receive --listen $2" >>"$TCP_LOG"; shift ;;
		--from | --timeout | -t | -l) shift ;;
		esac
		shift
	done
	[[ -n ${stem:-} ]] && cp "$stem" "$stem($2)"
	;;
esac
exit 0
WRAP
cat >"$rbin/ssh" <<'FAKE'
#!/usr/bin/env bash
# ssh to a test box: $BOXES/<host> holds its database, runtime, log and authorized_keys.
key="" host=""
while (($#)); do
	case $1 in
	-i) key=$2; shift 2 ;;
	-o | -p) shift 2 ;;
	--) shift; host=$1; shift; break ;;
	-*) shift ;;
	*) host=$1; shift; break ;;
	esac
done
host=${host#*@}
box=$BOXES/$host
[[ -d $box && -z ${SSH_DOWN_TO:-} || ${SSH_DOWN_TO:-} != "$host" && -d $box ]] || {
	echo "ssh: connect to host $host port 22: No route to host" >&2
	exit 255
}
blob=$(cut -d' ' -f2 "$key.pub")
line=$(grep -F " $blob " "$box/authorized_keys" 2>/dev/null | head -n1)
[[ -n $line ]] || { echo "$host: Permission denied (publickey)." >&2; exit 255; }
[[ $line =~ ^restrict,command=\"([^\"]*)\"\  ]] || { echo "fake ssh: only restricted forced-command keys are allowed here" >&2; exit 255; }
cmd=${BASH_REMATCH[1]}
export SSH_ORIGINAL_COMMAND="$*"
# sshd's "client-address client-port server-address server-port"
export SSH_CONNECTION="127.0.0.1 40000 127.0.0.1 22"
export ZUMASTOR_ROOT=$box/db ZUMASTOR_RUN=$box/run ZUMASTOR_LOG=$box/log
export ZUMASTOR_HOSTNAME=$host ZUMASTOR_SSH_DIR=$box/ssh
if [[ -n ${SSH_CUT_AFTER:-} && $1 == receive ]]; then
	head -c "$SSH_CUT_AFTER" | sh -c "$cmd"
else
	sh -c "$cmd"
fi
FAKE
chmod +x "$rbin/ddsnap" "$rbin/ssh"
export REAL_DDSNAP=$ddsnap BOXES=$dir/box SEND_LOG=$dir/sends TCP_LOG=$dir/tcplog
# box X: run the monitor as box X
box()
{
	local b=$1
	shift
	ZUMASTOR_ROOT=$BOXES/$b/db ZUMASTOR_RUN=$BOXES/$b/run ZUMASTOR_LOG=$BOXES/$b/log \
		ZUMASTOR_HOSTNAME=$b ZUMASTOR_SSH_DIR=$BOXES/$b/ssh ZUMASTOR_SSH=$rbin/ssh \
		ZUMASTOR_DDSNAP=$rbin/ddsnap "$zumastor" "$@"
}
for b in a b c; do
	mkdir -p "$BOXES/$b/dev"
	truncate -s 16M "$BOXES/$b/dev/origin"
	truncate -s 64M "$BOXES/$b/dev/store"
	box "$b" define volume home "$BOXES/$b/dev/origin" "$BOXES/$b/dev/store" --initialize >/dev/null
done
bdev=$BOXES/b/dev c_dev=$BOXES/c/dev a_dev=$BOXES/a/dev
rt=$(date -u -d 2026-12-01T10:00:00 +%s)

# --- define/forget target and source: validation -------------------------------------------
expect 2 "define target without a host" box a define target home
expect 2 "define target to an ssh option as host" box a define target home -oProxyCommand=sh
expect 2 "define target with a host that is no name" box a define target home 'b;reboot'
expect_out "host: 'b;reboot' is not allowed: an ssh destination" "the error names the value and the rule"
expect 2 "define target with a bad remote volume" box a define target home b:a/b
expect 2 "--period 0" box a define target home b --period 0
expect_out "'0' is not allowed: minutes between transfers, 1 to 44640" "the error gives the period's rule"
expect 2 "--period and --after-each-snapshot together" box a define target home b --period 5 --after-each-snapshot
expect 2 "--rate 5q" box a define target home b --rate 5q
expect 2 "--codec lz4" box a define target home b --codec lz4
expect_out "raw, zlib\[:1-9\], zstd\[:1-19\]" "the error lists the codecs"
expect 2 "--transport tcp:0" box a define target home b --transport tcp:0
expect_out "'tcp:0' is not allowed: ssh, or tcp:PORT \(PORT 1 to 65535" "the error gives the transport's rule"
expect 2 "--transport udp:9000" box a define target home b --transport udp:9000
expect 1 "--ssh-key that does not exist" box a define target home b --ssh-key "$dir/nokey"
expect 1 "a target of an undefined volume" box a define target nobody b
expect 1 "nothing was written" test -e "$BOXES/a/db/volumes/home/targets"
expect 1 "no key was made by a refused define" test -e "$BOXES/a/ssh/id_ed25519"
expect 0 "define target home b --after-each-snapshot --codec raw" box a define target home b --after-each-snapshot --codec raw
expect_out "made this box's replication key" "the first define target makes the key"
expect_out "^restrict,command=\"$zumastor receive-from a\" ssh-ed25519 [A-Za-z0-9+/=]+ zumastor@a$" \
	"it prints the exact authorized_keys line"
grep '^restrict' "$dir/out" >"$BOXES/b/authorized_keys"
expect_out "'zumastor define source home a'" "and the receiver's define source"
expect 0 "the key is there" test -f "$BOXES/a/ssh/id_ed25519"
same "$BOXES/a/db/volumes/home/targets/b/period" after-each-snapshot "the period is recorded"
same "$BOXES/a/db/volumes/home/targets/b/volume" home "the remote volume defaults to the same name"
expect 0 "define target again with a rate" box a define target home b --rate 20m
same "$BOXES/a/db/volumes/home/targets/b/rate" 20971520 "the rate is recorded in bytes"
expect 1 "the second define made no new key" grep -q "made this box" "$dir/out"
expect 0 "b: define target home c (a chain)" box b define target home c --after-each-snapshot
grep '^restrict' "$dir/out" >"$BOXES/c/authorized_keys"
expect 2 "define source with a user@ host" box b define source home root@a
expect 0 "b: define source home a" box b define source home a
expect 0 "c: define source home b" box c define source home b
echo frob >"$BOXES/a/db/volumes/home/targets/b/colour"
expect 3 "a misspelt target setting is refused at load" box a status
expect_out "targets/b/colour" "the error names the file"
rm "$BOXES/a/db/volumes/home/targets/b/colour"
expect 2 "forget target without a name" box a forget target home
expect 1 "forget an unknown target" box a forget target home zz
expect 1 "forget source of a master" box a forget source home
for b in a b c; do box "$b" define schedule home --hourly 2 --daily 3 >/dev/null; done
for b in a b c; do expect 0 "$b: start home" box "$b" start home; done

# --- the forced command refuses what is not a replication request --------------------------
rf()
{
	SSH_ORIGINAL_COMMAND=$1 SSH_CONNECTION=${SSH_CONNECTION-127.0.0.1 40000 127.0.0.1 22} box b receive-from "${2:-a}"
}
truncate -s 16M "$BOXES/b/dev/o2"
truncate -s 64M "$BOXES/b/dev/s2"
box b define volume other "$BOXES/b/dev/o2" "$BOXES/b/dev/s2" --initialize >/dev/null
box b start other >/dev/null
truncate -s 16M "$BOXES/b/dev/o3"
truncate -s 64M "$BOXES/b/dev/s3"
box b define volume fromx "$BOXES/b/dev/o3" "$BOXES/b/dev/s3" --initialize >/dev/null
box b define source fromx x >/dev/null
box b start fromx >/dev/null
expect 2 "a shell is refused" rf "sh -c 'touch $dir/pwned'"
expect_out "refused: .* is not a replication request" "it says so"
expect 1 "and it ran nothing" test -e "$dir/pwned"
expect 2 "no request at all (an interactive login) is refused" rf ""
expect 2 "receive into a volume that is not a replica" rf "receive other @GMT-2026.12.01-10.00.00"
expect_out "volume other is not a replica of a" "the refusal names the volume"
expect 2 "list of a volume whose source is another host" rf "list fromx"
expect 2 "receive into it" rf "receive fromx @GMT-2026.12.01-10.00.00"
expect 2 "the same request from host x's line is accepted past the check, but a bad name is not" rf "list fromx ../x" x
expect 2 "an unknown verb" rf "delete home @GMT-2026.12.01-10.00.00"
expect 2 "an extra word" rf "receive home @GMT-2026.12.01-10.00.00 now"
expect 2 "a dangerous character" rf 'list home;id'
expect 2 "receive over TCP on port 0" rf "receive home @GMT-2026.12.01-10.00.00 tcp:0"
expect_out "'tcp:0' is not tcp:PORT \(PORT 1 to 65535\)" "the refusal names the port"
expect 2 "receive over TCP on port 99999" rf "receive home @GMT-2026.12.01-10.00.00 tcp:99999"
expect 2 "a fourth word that is not tcp:PORT" rf "receive home @GMT-2026.12.01-10.00.00 ssh:22"
expect 2 "list with a tcp:PORT" rf "list home @GMT-2026.12.01-10.00.00 tcp:9000"
expect 2 "rewind with a tcp:PORT" rf "rewind home @GMT-2026.12.01-10.00.00 tcp:9000"
expect 2 "receive over TCP into a volume that is not a replica of a" rf "receive other @GMT-2026.12.01-10.00.00 tcp:9000"
expect_out "volume other is not a replica of a" "the refusal names the volume"
SSH_CONNECTION="" expect 2 "receive over TCP without SSH_CONNECTION (not run by sshd)" rf "receive home @GMT-2026.12.01-10.00.00 tcp:9000"
expect_out "needs SSH_CONNECTION" "the refusal says why"
expect 1 "no refused request started a receive" test -s "$TCP_LOG"
expect 0 "list home from a" rf "list home"
expect_out "^token none$" "list answers the token"
expect_out "^written no$" "and whether the origin was written"
expect 1 "rewind to a snapshot the replica does not have" rf "rewind home @GMT-2026.12.01-10.00.00"
expect_out "has no snapshot @GMT-2026.12.01-10.00.00 to rewind to: nothing was changed" "it says so"
expect 1 "and recorded no rewind" test -e "$BOXES/b/db/volumes/home/state/source/rewinding"
# ssh with a key not in the line: denied before any command
ssh-keygen -q -t ed25519 -N "" -f "$dir/otherkey"
expect 255 "a key not in authorized_keys is denied" "$rbin/ssh" -i "$dir/otherkey" -- b list home

# --- A -> B -> C over simulated days ----------------------------------------------------
# tick_all T: a tick on each box, a minute apart (a takes and sends, b passes on, c prunes)
tick_all()
{
	ZUMASTOR_NOW=$1 box a tick >"$dir/tick.a" 2>&1 &&
		ZUMASTOR_NOW=$(($1 + 60)) box b tick >"$dir/tick.b" 2>&1 &&
		ZUMASTOR_NOW=$(($1 + 120)) box c tick >"$dir/tick.c" 2>&1
}
sums_equal() # T: C's snapshot T and its origin equal A's snapshot T
{
	cmp -s "$a_dev/origin($1)" "$c_dev/origin($1)" && cmp -s "$a_dev/origin($1)" "$c_dev/origin" &&
		cmp -s "$a_dev/origin($1)" "$bdev/origin($1)"
}
newest_of() # BOX
{
	"$ddsnap" list --json "$BOXES/$1/run/servers/home.sock" | jq '[.snapshots[].tag] | max // 0'
}
mism=0 full=0
for day in 0 1 2 3 4 5 6; do
	t=$((rt + day * 86400))
	head -c 1M /dev/urandom | dd of="$a_dev/origin" bs=64k seek=$(((day * 37) % 200)) conv=notrunc status=none
	if ! tick_all "$t"; then
		mism=$((mism + 1))
		echo "     day $day: a tick failed:"
		sed 's/^/     /' "$dir"/tick.?
	fi
	grep -q "full" "$dir/tick.a" "$dir/tick.b" && full=$((full + 1))
	if [[ $(newest_of c) != "$t" ]] || ! sums_equal "$t"; then
		mism=$((mism + 1))
		echo "     day $day: C's newest is $(newest_of c), not A's $t, or differs"
		sed 's/^/     /' "$dir"/tick.?
	fi
done
expect 0 "7 simulated days: after each, C's newest snapshot is A's newest, same checksum" test "$mism" -eq 0
expect 0 "only the first transfer of each link was full" test "$full" -eq 1
expect 0 "the monitor asked ddsnap send for 2 full streams and 12 incrementals" \
	test "$(grep -c 'send full' "$SEND_LOG"):$(grep -vc 'send full' "$SEND_LOG")" = 2:12
# held_of BOX: the tags BOX's server holds (usecount above 0), sorted, on one line
held_of()
{
	"$ddsnap" status --json "$BOXES/$1/run/servers/home.sock" | jq -r '[.snapshots[] | select(.usecount > 0) | .tag] | sort | join(" ")'
}
expect 0 "the hold moved to the new base as soon as a's transfer succeeded (the one it replaced released)" test "$(held_of a)" = "$t"
expect 0 "b's too, after its transfer to c (its previous newest no longer held)" test "$(held_of b)" = "$t"
expect 0 "b took no snapshot of its own (a replica only receives)" bash -c "! grep -q took '$dir/tick.b'"
expect 0 "b pruned received snapshots with its own counts" bash -c "[[ \$('$ddsnap' list --json '$BOXES/b/run/servers/home.sock' | jq '.snapshots | length') -le 4 ]]"

# status and check
ZUMASTOR_NOW=$((t + 300)) expect 0 "a: status --json" box a status --json
expect_json ".volumes[0].targets[0].name == \"b\" and .volumes[0].targets[0].last_good == \"$(box a status --json | jq -r '.volumes[0].snapshots | map(.name) | max')\"" \
	"targets[].last_good is A's newest snapshot"
expect_json '.volumes[0].targets[0].behind == 0 and .volumes[0].targets[0].failures == 0 and .volumes[0].targets[0].last_error == null and .volumes[0].targets[0].mode == "after-each-snapshot" and .volumes[0].targets[0].action == "idle" and (.volumes[0].targets[0].bytes_sent > 0) and (.volumes[0].targets[0].rate > 0)' \
	"and behind 0, no failures, idle, bytes sent and a rate"
expect_json '.volumes[0].targets[0].transport == "ssh"' "the target's transport is ssh (the default)"
expect_json '.volumes[0].source == null' "a master has no source"
expect_json '[.volumes[0].snapshots[] | select(.why | test("replication base"))] | length == 1' \
	"exactly one of A's snapshots is kept as the replication base"
ZUMASTOR_NOW=$((t + 300)) expect 0 "a: status" box a status
expect_out "^  target b -> b:home over ssh: idle \(up-to-date\), last good @GMT-[0-9.-]+, 0 behind$" \
	"the text status has the target's line: transport, plan, last good, behind"
ZUMASTOR_NOW=$((t + 300)) expect 0 "c: status --json" box c status --json
expect_json ".volumes[0].source.host == \"b\" and .volumes[0].source.newest_received == \"$("$ZUMASTOR_HELPER" name "$t")\" and .volumes[0].source.token == null and .volumes[0].targets == []" \
	"source: host, newest received, no token"
ZUMASTOR_NOW=$((t + 300)) expect 0 "check on a: OK" box a check
ZUMASTOR_NOW=$((t + 3 * 86400)) expect 2 "check on c three days later: the newest received is too old" box c check
expect_out "home newest from b [0-9]+s old" "check names the replica's age"

# --- a cut stream resumes; nothing applied twice ------------------------------------------
t=$((t + 86400))
head -c 6M /dev/urandom | dd of="$a_dev/origin" bs=1M seek=4 conv=notrunc status=none
SSH_CUT_AFTER=2000000 ZUMASTOR_NOW=$t expect 1 "a tick whose stream is cut fails" box a tick
expect_out "transfer of @GMT.* failed" "it reports the failed transfer"
ZUMASTOR_NOW=$t expect 0 "a: status --json after the cut" box a status --json
expect_json '.volumes[0].targets[0].failures == 1 and (.volumes[0].targets[0].last_error | test("failed")) and .volumes[0].targets[0].sending != null' \
	"status shows one failure, the last error and the snapshot in flight"
expect_json '.volumes[0].targets[0].last_error | test("stream truncated")' \
	"the last error is the receiver's cause (the cut stream), not its resume note or the sender's broken pipe"
expect_json "[.volumes[0].snapshots[] | select(.why | test(\"replication base\")) | .time] | index($t) != null" \
	"the snapshot in flight is held"
ZUMASTOR_NOW=$((t + 30)) expect 0 "the next tick within the backoff waits" box a tick
expect_out "backing off|retry" "it says it backs off"
ZUMASTOR_NOW=$((t + 61)) expect 0 "after the backoff the tick resumes" box a tick
expect_out "resume" "from the receiver's token"
expect 0 "B's origin and snapshot are A's" cmp "$a_dev/origin($t)" "$bdev/origin($t)"
expect 0 "B's origin equals it too" cmp "$a_dev/origin($t)" "$bdev/origin"
ZUMASTOR_NOW=$((t + 120)) box b tick >/dev/null 2>&1
expect 0 "and C got it from B" cmp "$a_dev/origin($t)" "$c_dev/origin($t)"

# --- the receiving ddsnap killed by a signal: the last error says so ----------------------
t=$((t + 3600))
head -c 1M /dev/urandom | dd of="$a_dev/origin" bs=1M seek=2 conv=notrunc status=none
KILL_RECEIVE=1 ZUMASTOR_NOW=$t expect 1 "a tick whose receiving ddsnap is killed fails" box a tick
ZUMASTOR_NOW=$t expect 0 "a: status --json after the kill" box a status --json
expect_json '.volumes[0].targets[0].last_error | test("ddsnap receive was killed by signal 9 \\(KILL\\): the stream was cut")' \
	"the last error says the receiver was killed, and by what"
expect_json '.volumes[0].targets[0].last_error | test("line [0-9]+:|Killed") | not' \
	"the last error is not the shell's job report of the receive-from script"
ZUMASTOR_NOW=$((t + 61)) expect 0 "after the backoff the tick sends it" box a tick
expect 0 "B's snapshot is A's" cmp "$a_dev/origin($t)" "$bdev/origin($t)"
ZUMASTOR_NOW=$((t + 120)) box b tick >/dev/null 2>&1
expect 0 "c holds only what it just received, before its own tick (the receive released the previous one)" test "$(held_of c)" = "$t"
expect 0 "and C got it from B" cmp "$a_dev/origin($t)" "$c_dev/origin($t)"

# --- the receiving server gone after the apply: the snapshot is taken by the next list ------
t=$((t + 3600))
head -c 1M /dev/urandom | dd of="$a_dev/origin" bs=1M seek=3 conv=notrunc status=none
UNSNAP_RECEIVE=1 ZUMASTOR_NOW=$t expect 1 "a tick whose receive applied the stream but could not take the snapshot fails" box a tick
expect 0 "b recorded the snapshot to take, with a's provenance" grep -q "^[0-9a-f-]*:[0-9]* $t\$" "$BOXES/b/db/volumes/home/state/source/unsnapped"
expect 1 "b has no snapshot $t yet" "$ddsnap" status "$BOXES/b/run/servers/home.sock" "$t"
nsent=$(wc -l <"$SEND_LOG")
ZUMASTOR_NOW=$((t + 61)) expect 0 "the next tick: b's list takes it first" box a tick
expect_out "the replica has @GMT-[0-9.-]+, the newest" "a sees it received: nothing to send"
expect 0 "nothing was sent again" test "$(wc -l <"$SEND_LOG")" = "$nsent"
ZUMASTOR_NOW=$((t + 62)) expect 0 "a: status --json once b took it" box a status --json
expect_json ".volumes[0].targets[0].failures == 0 and .volumes[0].targets[0].last_error == null and .volumes[0].targets[0].last_good == \"$("$ZUMASTOR_HELPER" name "$t")\" and .volumes[0].targets[0].sending == null" \
	"the transfer counts as done: no failure, no last error, last good is the snapshot b took"
expect 0 "b's snapshot has a's provenance" test "$("$ddsnap" list --json "$BOXES/b/run/servers/home.sock" | jq -r ".snapshots[] | select(.tag == $t) | .origin_uuid")" = "$("$ddsnap" list --json "$BOXES/a/run/servers/home.sock" | jq -r .uuid)"
expect 0 "B's snapshot is A's" cmp "$a_dev/origin($t)" "$bdev/origin($t)"
expect 1 "nothing left to take" test -e "$BOXES/b/db/volumes/home/state/source/unsnapped"
ZUMASTOR_NOW=$((t + 120)) box b tick >/dev/null 2>&1
expect 0 "and C got it from B" cmp "$a_dev/origin($t)" "$c_dev/origin($t)"

# --- the link down while A prunes hard: the base is never pruned, no full resend ------------
base=$t
box a define schedule home --hourly 1 --daily 1 >/dev/null
for h in 1 2 3 4 5; do
	t=$((t + 3600))
	head -c 64k /dev/urandom | dd of="$a_dev/origin" bs=64k seek=$((h * 3)) conv=notrunc status=none
	SSH_DOWN_TO=b ZUMASTOR_NOW=$t box a tick >"$dir/tick.a" 2>&1
done
expect 0 "while b is down, A still has the base (retention keeps 1 hourly and 1 daily)" \
	"$ddsnap" status "$BOXES/a/run/servers/home.sock" "$base"
ZUMASTOR_NOW=$t expect 0 "a: status" box a status
expect_out "replication base" "status says why it is kept"
ZUMASTOR_NOW=$t expect 0 "a: status --json while b is down" box a status --json
expect_json ".volumes[0].targets[0].failures >= 1 and (.volumes[0].targets[0].last_error | test(\"No route\")) and .volumes[0].targets[0].base == \"$("$ZUMASTOR_HELPER" name "$base")\" and .volumes[0].targets[0].behind >= 1" \
	"status: the failures, the last error (ssh's), the base, snapshots behind"
t=$((t + 3600))
ZUMASTOR_NOW=$t expect 0 "b back: replicate now" box a replicate home
expect_out "incremental from $("$ZUMASTOR_HELPER" name "$base")" "one incremental from the held base, not a full stream"
expect 0 "B has A's newest" cmp "$a_dev/origin($(newest_of a))" "$bdev/origin($(newest_of a))"
expect 1 "replicate to an unknown target" box a replicate home zz

# --- a replica written behind the monitor's back: refused, then rewound on --force-full ------
base=$(newest_of a)
own=$((base + 10))
ZUMASTOR_ROOT=$BOXES/b/db ZUMASTOR_RUN=$BOXES/b/run "$rbin/ddsnap" create "$BOXES/b/run/servers/home.sock" "$own" >/dev/null
t=$((t + 3600))
ZUMASTOR_NOW=$((t - 60)) box b tick >/dev/null 2>&1
expect 0 "b's tick does not pass its own snapshot on to c (not A's history)" \
	bash -c "! '$ddsnap' status '$BOXES/c/run/servers/home.sock' $own >/dev/null 2>&1"
head -c 64k /dev/urandom | dd of="$a_dev/origin" bs=64k seek=40 conv=notrunc status=none
ZUMASTOR_NOW=$t expect 1 "a's tick: b has a snapshot of its own after the base: refused" box a tick
expect_out "refused: .*$("$ZUMASTOR_HELPER" name "$own")" "the refusal names b's snapshot"
expect 0 "nothing was sent" cmp "$a_dev/origin($base)" "$bdev/origin($base)"
ZUMASTOR_NOW=$t expect 0 "b: status --json with a snapshot of its own" box b status --json home
expect_json ".volumes[0].source.current == \"$("$ZUMASTOR_HELPER" name "$base")\"" \
	"b's mountpoint would show its newest received snapshot, not its own"
ZUMASTOR_NOW=$t expect 1 "check on a: WARNING" box a check
expect_out "home -> b refused" "check names the refusal"
ZUMASTOR_NOW=$((t + 60)) expect 0 "replicate --force-full: b rewinds to the base, then the incremental" box a replicate home --force-full
expect_out "rewound the replica to $("$ZUMASTOR_HELPER" name "$base")" "the replica was rewound to the newest common snapshot"
expect_out "incremental from $("$ZUMASTOR_HELPER" name "$base")" "then one incremental from it, no full stream"
expect 0 "b has A's newest" cmp "$a_dev/origin($t)" "$bdev/origin($t)"
expect 0 "b's own snapshot is kept" "$ddsnap" status "$BOXES/b/run/servers/home.sock" "$own"
ZUMASTOR_NOW=$((t + 120)) box b tick >/dev/null 2>&1
expect 0 "and its retention does not prune it" "$ddsnap" status "$BOXES/b/run/servers/home.sock" "$own"
ZUMASTOR_NOW=$((t + 120)) expect 0 "b: status --json home" box b status --json home
expect_json ".volumes[0].source.aside == [\"$("$ZUMASTOR_HELPER" name "$own")\"]" "status lists it as set aside"
expect 0 "and C got A's newest through B, not b's own" cmp "$a_dev/origin($t)" "$c_dev/origin($t)"
expect 1 "the force was one shot" test -e "$BOXES/a/db/volumes/home/state/targets/b/force"

# --- transport tcp:PORT: the requests over ssh (the forced command), the stream over TCP ---
port=$((20000 + RANDOM % 20000))
expect 0 "define target home b --transport tcp:PORT" box a define target home b --transport "tcp:$port"
same "$BOXES/a/db/volumes/home/targets/b/transport" "tcp:$port" "the transport is recorded"
t=$((t + 3600))
head -c 256k /dev/urandom | dd of="$a_dev/origin" bs=64k seek=50 conv=notrunc status=none
ZUMASTOR_NOW=$t expect 0 "a's tick sends over TCP" box a tick
expect_out "incremental from" "an incremental, as over ssh"
expect_out "the stream goes over TCP to 127.0.0.1:$port" "over TCP, to the address a's ssh reached"
expect_out "sent @GMT-[0-9.-]+ \([1-9][0-9]* bytes\)" "with the bytes the receiver acknowledged"
expect 0 "b's forced command listened on the address a's ssh reached, port PORT" grep -qx "receive --listen 127.0.0.1:$port" "$TCP_LOG"
expect 0 "b has A's newest" cmp "$a_dev/origin($t)" "$bdev/origin($t)"
expect 0 "b's origin is it" cmp "$a_dev/origin($t)" "$bdev/origin"
ZUMASTOR_NOW=$((t + 60)) expect 0 "a: status --json after the TCP transfer" box a status --json
expect_json ".volumes[0].targets[0].last_good == \"$("$ZUMASTOR_HELPER" name "$t")\" and .volumes[0].targets[0].failures == 0 and .volumes[0].targets[0].last_error == null and .volumes[0].targets[0].bytes_sent > 0 and .volumes[0].targets[0].sending == null" \
	"status: the last good snapshot, no failure, the bytes sent"
expect_json ".volumes[0].targets[0].transport == \"tcp:$port\"" "status --json: the transport tcp:PORT"
ZUMASTOR_NOW=$((t + 60)) expect 0 "a: status after the TCP transfer" box a status
expect_out "^  target b -> b:home over tcp:$port: " "the text status names the transport tcp:PORT"
ZUMASTOR_NOW=$((t + 120)) box b tick >/dev/null 2>&1
expect 0 "C got it from B (over ssh)" cmp "$a_dev/origin($t)" "$c_dev/origin($t)"
c_newest=$t # the newest c received (b does not tick again below)
# the port held by another program on b: the transfer fails with b's reason, nothing is
# received, and the next tick after the backoff sends it
# (SO_REUSEADDR, as servers set it: the connections it closes first stay in TIME_WAIT for a
# minute, which the backoff outlasts on a real box but not in this test's simulated time)
python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
while True:
    s.accept()[0].close()' "$port" &
holder=$!
t=$((t + 3600))
head -c 64k /dev/urandom | dd of="$a_dev/origin" bs=64k seek=60 conv=notrunc status=none
ZUMASTOR_NOW=$t expect 1 "a's tick while b's port is held by another program fails" box a tick
expect_out "failed: ddsnap receive: cannot listen on 127.0.0.1:$port: Address already in use" "the error is b's: the port is in use"
expect 1 "b did not take the snapshot" test -e "$bdev/origin($t)"
kill "$holder"
wait "$holder" 2>/dev/null
ZUMASTOR_NOW=$((t + 61)) expect 0 "the port free again, the tick after the backoff sends it" box a tick
expect 0 "b has A's newest" cmp "$a_dev/origin($t)" "$bdev/origin($t)"
expect 0 "forget target b" box a forget target home b
ZUMASTOR_NOW=$((t + 60)) box a tick >/dev/null 2>&1
expect 0 "its holds went with it: the old base is pruned" bash -c "! '$ddsnap' status '$BOXES/a/run/servers/home.sock' $base >/dev/null 2>&1"
ZUMASTOR_NOW=$((t + 120)) expect 0 "c: status --json after the rewind upstream" box c status --json home
expect_json ".volumes[0].source.current == \"$("$ZUMASTOR_HELPER" name "$c_newest")\" and .volumes[0].source.mountpoint == null" \
	"c's mountpoint would show the newest it received (c has no mountpoint set)"

# --- a replica's exports are read-only, whatever the admin asked -----------------------------
# (its mountpoint shows a received snapshot, its origin is never exported; the VM scenario
# replication-chain mounts and exports them under a real kernel, NFS server and smbd)
# exports_of BOX: the NFS line of the volume's mountpoint and its Samba share, as the monitor
# writes them on BOX (its functions, the script sourced with the box's environment).
exports_of()
{
	(
		export ZUMASTOR_ROOT=$BOXES/$1/db ZUMASTOR_RUN=$BOXES/$1/run ZUMASTOR_LOG=$BOXES/$1/log \
			ZUMASTOR_EXPORTS=$BOXES/$1/exports/zumastor.exports ZUMASTOR_SMB_CONF=$BOXES/$1/smb.conf
		# shellcheck source=/dev/null # (its functions only: following it would see its globals)
		. "$zumastor"
		load home
		nfs_lines home /srv/home origin 0
		samba_share home
	)
}
for b in a c; do box "$b" define export home --nfs '10.0.0.0/8:rw,sync' --samba "${b}home:rw,guest" >/dev/null; done
expect 0 "the exports of a master" exports_of a
expect_out "^/srv/home 10.0.0.0/8\(rw,sync,no_subtree_check,fsid=" "a master's mountpoint is exported read-write over NFS"
expect_out "read only = no" "and over Samba"
expect 0 "the exports of c, a replica asked for rw" exports_of c
expect_out "^/srv/home 10.0.0.0/8\(ro,sync,no_subtree_check,fsid=" "a replica's mountpoint is exported read-only over NFS"
expect_out "read only = yes" "and over Samba"
expect 0 "forget source on c" box c forget source home
expect 0 "the exports of c, no longer a replica" exports_of c
expect_out "^/srv/home 10.0.0.0/8\(rw,sync,no_subtree_check,fsid=" "after forget source its mountpoint is exported read-write"
# --- promote a replica whose master is lost, re-attach the old master (volume proj) --------
# A -> B -> C again on a second volume; A is lost after a stream into B was cut; B is
# promoted (its chain to C goes on); A comes back, becomes B's replica and is rewound to the
# snapshot both have, then receives incrementals: never a full stream.
for b in a b c; do
	truncate -s 16M "$BOXES/$b/dev/po"
	truncate -s 64M "$BOXES/$b/dev/ps"
	box "$b" define volume proj "$BOXES/$b/dev/po" "$BOXES/$b/dev/ps" --initialize >/dev/null
	box "$b" define schedule proj --hourly 2 --daily 3 >/dev/null
done
box a define target proj b --after-each-snapshot >/dev/null
box b define target proj c --after-each-snapshot >/dev/null
box b define source proj a >/dev/null
box c define source proj b >/dev/null
for b in a b c; do box "$b" start proj >/dev/null; done
pa=$BOXES/a/dev/po pb=$BOXES/b/dev/po pc=$BOXES/c/dev/po
psock() # BOX: proj's socket there
{
	echo "$BOXES/$1/run/servers/proj.sock"
}
ptick() # T BOX...: a tick of proj on each box, a minute apart
{
	local t=$1 b
	shift
	for b in "$@"; do
		ZUMASTOR_NOW=$t box "$b" tick proj >"$dir/tick.$b" 2>&1 || return 1
		t=$((t + 60))
	done
}
pt=$((t + 86400))
for day in 0 1; do
	head -c 1M /dev/urandom | dd of="$pa" bs=64k seek=$((day * 20)) conv=notrunc status=none
	ptick $((pt + day * 86400)) a b c
done
common=$((pt + 86400))
expect 0 "proj: C has A's second snapshot through B" cmp "$pa($common)" "$pc($common)"
# A's last snapshot before it is lost reaches B cut: B holds a token and a half-applied origin
t=$((common + 3600))
head -c 6M /dev/urandom | dd of="$pa" bs=1M conv=notrunc status=none
SSH_CUT_AFTER=2000000 ZUMASTOR_NOW=$t box a tick proj >/dev/null 2>&1
expect 0 "the cut stream left a token on B" bash -c "'$ddsnap' list --json '$(psock b)' | jq -e '.receive_token != null' >/dev/null"
expect 1 "and B's origin half written" cmp -s "$pb" "$pa($common)"
t=$((t + 3600))
head -c 64k /dev/urandom | dd of="$pa" bs=64k seek=60 conv=notrunc status=none
SSH_DOWN_TO=b ZUMASTOR_NOW=$t box a tick proj >/dev/null 2>&1
a_own1=$((common + 3600)) a_own2=$t
fulls_before=$(grep -c 'send full' "$SEND_LOG")

# A is lost.  The refusals first, each changing nothing.
expect 1 "promote a volume that is not a replica" box a promote proj
expect_out "volume proj is not a replica" "it says so"
exec {plock}>"$BOXES/b/run/lock/proj.receive"
flock "$plock"
expect 1 "promote while a transfer is being received" box b promote proj
expect_out "is receiving a transfer from a" "it says so"
exec {plock}>&-
expect 1 "and nothing was recorded" test -e "$BOXES/b/db/volumes/proj/state/promoting"
# the revert keeps failing: the promotion is recorded, the volume neither receives nor snapshots
echo 4 >"$dir/revert-fails"
t=$((t + 3600))
REVERT_FAILS=$dir/revert-fails ZUMASTOR_NOW=$t expect 1 "promote when the revert keeps failing" box b promote proj
expect_out "ddsnap revert to $("$ZUMASTOR_HELPER" name "$common") failed \(3 attempt" "it says the revert failed, three times, and to which snapshot"
expect_out "the next 'zumastor promote proj' or tick runs the revert again" "and that it will be run again"
expect 0 "the intent is recorded" test -e "$BOXES/b/db/volumes/proj/state/promoting"
SSH_ORIGINAL_COMMAND="list proj" expect 1 "a promoting volume lists nothing to its old master" box b receive-from a
expect_out "is being promoted" "it says why"
REVERT_FAILS=$dir/revert-fails ZUMASTOR_NOW=$t expect 1 "a tick while the revert still fails" box b tick proj
expect 1 "took no snapshot" grep -q took "$dir/out"
expect 0 "and the volume is still not a master" test -d "$BOXES/b/db/volumes/proj/source"
ZUMASTOR_NOW=$t expect 2 "check on b: CRITICAL while the promotion is unfinished" box b check proj
expect_out "proj promotion unfinished \(its revert to $("$ZUMASTOR_HELPER" name "$common")\): zumastor promote proj" "it says what to run"
ZUMASTOR_NOW=$t expect 0 "b: status --json proj while promoting" box b status --json proj
ZUMASTOR_NOW=$t expect 0 "b: status proj while promoting" box b status proj
expect_out "^volume proj: running, .*promotion unfinished \(revert to $("$ZUMASTOR_HELPER" name "$common")\): zumastor promote proj" "status says the promotion is unfinished"
ZUMASTOR_NOW=$t box b status --json proj >"$dir/out" 2>"$dir/err"
expect_json ".volumes[0].promotion == {\"state\": \"in-progress\", \"to\": \"$("$ZUMASTOR_HELPER" name "$common")\", \"old_source\": null}" "status --json: the promotion in progress"
t=$((t + 60))
REVERT_FAILS=$dir/revert-fails ZUMASTOR_NOW=$t expect 0 "the next tick finishes the promotion" box b tick proj
expect_out "promoted: a master now, its origin is $("$ZUMASTOR_HELPER" name "$common")" "rolled back to the newest complete snapshot"
expect_out "took @GMT" "and its schedule took a snapshot"
b_own1=$t
expect 1 "source/ is gone" test -e "$BOXES/b/db/volumes/proj/source"
expect 1 "and the intent" test -e "$BOXES/b/db/volumes/proj/state/promoting"
ZUMASTOR_NOW=$t expect 0 "b: status --json proj once promoted" box b status --json proj
expect_json ".volumes[0].promotion == {\"state\": \"done\", \"to\": \"$("$ZUMASTOR_HELPER" name "$common")\", \"old_source\": \"a:proj\"} and .volumes[0].source == null" \
	"status --json: promoted, the snapshot kept for a's re-attach"
ZUMASTOR_NOW=$t expect 0 "b: status proj once promoted" box b status proj
expect_out "promoted from a:proj \(keeps $("$ZUMASTOR_HELPER" name "$common") to re-attach it\)" "status says what it keeps for a"
expect 0 "the cut stream's token is gone" bash -c "'$ddsnap' list --json '$(psock b)' | jq -e '.receive_token == null' >/dev/null"
expect 0 "B's newest snapshot has the reverted origin: A's common snapshot, not the half-applied stream" cmp "$pb($b_own1)" "$pa($common)"
expect 0 "the chain goes on: C got B's own snapshot" cmp "$pb($b_own1)" "$pc($b_own1)"
expect 0 "incrementally from the common snapshot" test "$(tail -n1 "$SEND_LOG")" = "send $common $b_own1"
SSH_ORIGINAL_COMMAND="list proj" expect 2 "B receives nothing more from A" box b receive-from a
expect 1 "promote again: it is a master now" box b promote proj
# four days on B: its retention (2 hourly, 3 daily) would prune the common snapshot, which
# the old master's re-attach needs: the promotion keeps it
for day in 1 2 3 4; do
	head -c 64k /dev/urandom | dd of="$pb" bs=64k seek=$((day * 3)) conv=notrunc status=none
	ptick $((t + day * 86400)) b c
done
t=$((t + 4 * 86400))
b_new=$(jq -r '[.snapshots[].tag] | max' < <("$ddsnap" list --json "$(psock b)"))
expect 0 "four days later B still has the common snapshot" "$ddsnap" status "$(psock b)" "$common"
ZUMASTOR_NOW=$t expect 0 "b: status proj" box b status proj
expect_out "$("$ZUMASTOR_HELPER" name "$common").*replication base" "kept as a replication base"

# A comes back and is re-attached as B's replica; its origin mounted first (/proc stands for
# the mount: files have none), which a replica's never is
echo /proc >"$BOXES/a/db/volumes/proj/mountpoint"
expect 1 "a: define source proj b while its origin is mounted" box a define source proj b
expect_out "its origin is mounted on /proc: .*'zumastor stop proj' first" "it says to stop it first"
expect 0 "nothing changed: a still has its target b" test -d "$BOXES/a/db/volumes/proj/targets/b"
expect 1 "and no source" test -e "$BOXES/a/db/volumes/proj/source"
rm "$BOXES/a/db/volumes/proj/mountpoint"
expect 0 "a: define source proj b (its target b becomes its source)" box a define source proj b
expect_out "forgot its target b .*$("$ZUMASTOR_HELPER" name "$common") is kept as the base" "it says so, and which base it keeps"
expect 1 "a has no target b any more" test -e "$BOXES/a/db/volumes/proj/targets/b"
ZUMASTOR_NOW=$t box a tick proj >/dev/null 2>&1
expect 0 "a's retention keeps the common snapshot" "$ddsnap" status "$(psock a)" "$common"
expect 0 "b: define target proj a" box b define target proj a --after-each-snapshot
grep '^restrict' "$dir/out" >"$BOXES/a/authorized_keys"
t=$((t + 60))
sends_before=$(wc -l <"$SEND_LOG")
ZUMASTOR_NOW=$t expect 1 "b: replicate proj a: A has snapshots of its own after the common one" box b replicate proj a
expect_out "refused: .*$("$ZUMASTOR_HELPER" name "$a_own1")" "the refusal names A's snapshot"
expect 0 "nothing was sent" test "$(wc -l <"$SEND_LOG")" -eq "$sends_before"
ZUMASTOR_NOW=$t expect 0 "b: replicate --force-full proj a: a rewind, then the incremental" box b replicate --force-full proj a
expect_out "rewound the replica to $("$ZUMASTOR_HELPER" name "$common")" "A was rewound to the common snapshot"
expect_out "incremental from $("$ZUMASTOR_HELPER" name "$common")" "then one incremental from it"
expect 0 "the stream asked for was the incremental from the common snapshot to B's newest" test "$(tail -n1 "$SEND_LOG")" = "send $common $b_new"
expect 0 "and no full stream was sent since the loss" test "$(grep -c 'send full' "$SEND_LOG")" -eq "$fulls_before"
expect 0 "A has B's newest" cmp "$pb($b_new)" "$pa($b_new)"
expect 0 "A's origin is B's newest" cmp "$pb($b_new)" "$pa"
expect 0 "A still has what it snapshotted after the common one" "$ddsnap" status "$(psock a)" "$a_own2"
expect 1 "B no longer keeps the promotion point" test -e "$BOXES/b/db/volumes/proj/state/promoted"
box b status --json proj >"$dir/out" 2>"$dir/err"
expect_json ".volumes[0].promotion == null" "status --json: promotion null again"
ZUMASTOR_NOW=$((t + 60)) box a tick proj >/dev/null 2>&1
ZUMASTOR_NOW=$((t + 60)) expect 0 "a: status --json proj" box a status --json proj
expect_json ".volumes[0].aside == [\"$("$ZUMASTOR_HELPER" name "$a_own1")\", \"$("$ZUMASTOR_HELPER" name "$a_own2")\"] and .volumes[0].source.aside == .volumes[0].aside" \
	"status --json lists A's two snapshots after the common one as set aside"
expect_json "[.volumes[0].snapshots[] | select(.aside) | .name] == .volumes[0].aside" "and marks them among the snapshots"
ZUMASTOR_NOW=$((t + 60)) expect 0 "a: status proj" box a status proj
expect_out "$("$ZUMASTOR_HELPER" name "$a_own1").*set aside" "status says set aside"

# forget aside
expect 2 "forget aside without a name" box a forget aside proj
expect 2 "forget aside of a name that is no snapshot name" box a forget aside proj yesterday
expect 1 "forget aside of a snapshot that is not set aside" box a forget aside proj "$("$ZUMASTOR_HELPER" name "$common")"
expect_out "is not set aside" "it says so"
expect 0 "which is still there" "$ddsnap" status "$(psock a)" "$common"
expect 0 "forget aside the first one" box a forget aside proj "$("$ZUMASTOR_HELPER" name "$a_own1")"
expect_out "dropped $("$ZUMASTOR_HELPER" name "$a_own1")" "it says so"
expect_out "\\(set aside by a rewind to $("$ZUMASTOR_HELPER" name "$common") asked by b at [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\\)" \
	"and why and when (UTC) it was set aside"
expect 1 "it is deleted" "$ddsnap" status "$(psock a)" "$a_own1"
expect 0 "the other one stays" "$ddsnap" status "$(psock a)" "$a_own2"
ZUMASTOR_NOW=$((t + 60)) box a status --json proj >"$dir/out" 2>"$dir/err"
expect_json ".volumes[0].aside == [\"$("$ZUMASTOR_HELPER" name "$a_own2")\"]" "status lists only the other one"
expect 1 "forget aside the same one again" box a forget aside proj "$("$ZUMASTOR_HELPER" name "$a_own1")"
# the next transfers are plain incrementals
t=$((t + 3600))
head -c 64k /dev/urandom | dd of="$pb" bs=64k seek=50 conv=notrunc status=none
ptick "$t" b a c
expect 0 "B's next snapshot went to A incrementally" grep -qx "send $b_new $t" "$SEND_LOG"
expect 0 "A has it" cmp "$pb($t)" "$pa($t)"
expect 0 "and C" cmp "$pb($t)" "$pc($t)"
# c promoted in turn (b lost): forget source says b will not be re-attached
ZUMASTOR_NOW=$((t + 300)) expect 0 "c: promote proj" box c promote proj
expect_out "promoted: a master now, its origin is $("$ZUMASTOR_HELPER" name "$t")" "to its newest snapshot"
expect 0 "c keeps its promotion point" test -f "$BOXES/c/db/volumes/proj/state/promoted"
expect 0 "c: forget source proj" box c forget source proj
expect_out "forgot its old source b; $("$ZUMASTOR_HELPER" name "$t") is no longer kept to re-attach it" "it says which snapshot is let go"
expect 1 "the promotion point is no longer kept" test -e "$BOXES/c/db/volumes/proj/state/promoted"
expect 1 "forget source again: nothing to forget" box c forget source proj
for b in a b c; do box "$b" stop proj >/dev/null 2>&1; done
# --- check: a store full with only held snapshots left (--crit-store 0 stands for full) -----
truncate -s 16M "$BOXES/c/dev/ho"
truncate -s 64M "$BOXES/c/dev/hs"
box c define volume held "$BOXES/c/dev/ho" "$BOXES/c/dev/hs" --initialize >/dev/null
box c define schedule held --daily 3 >/dev/null
box c start held >/dev/null
t=$((t + 86400))
hname=$(ZUMASTOR_NOW=$t box c snapshot held 2>/dev/null)
ZUMASTOR_NOW=$t expect 2 "check held: the store is past --crit-store" box c check --crit-store 0 held
expect 1 "with a snapshot that is not held, the full-store policy can still free space" grep -q "only held" "$dir/out"
box c hold held "$hname" >/dev/null
ZUMASTOR_NOW=$t expect 2 "check held: every snapshot held" box c check --crit-store 0 held
expect_out "held store full with only held snapshots: snapshots held or set aside by the admin" "CRITICAL says only held snapshots are left, held by the admin"
box c define target held b >/dev/null
# a transfer in flight to b (state/targets/b/sending, as replicate writes it before the
# first byte) holds the snapshot for b; the admin's hold released
mkdir -p "$BOXES/c/db/volumes/held/state/targets/b"
echo "$t" >"$BOXES/c/db/volumes/held/state/targets/b/sending"
box c release held "$hname" >/dev/null
ZUMASTOR_NOW=$t expect 2 "check held: the only snapshot is held for target b" box c check --crit-store 0 held
expect_out "held store full with only held snapshots: the bases of targets b" "CRITICAL names the target whose base holds the space"
box c stop held >/dev/null 2>&1
for b in a b c; do box "$b" stop home >/dev/null 2>&1; done
box b stop other >/dev/null 2>&1
box b stop fromx >/dev/null 2>&1
