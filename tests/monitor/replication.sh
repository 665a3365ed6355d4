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
#    incrementals.
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
"$real" "$@"
rc=$?
((rc == 0)) || exit $rc
case $1 in
create) o=$(origin_of "$2") && [[ -f $o ]] && cp "$o" "$o($3)" ;;
delete) o=$(origin_of "$2") && rm -f "$o($3)" ;;
receive)
	shift
	while [[ $1 == -* ]]; do
		[[ $1 == -d ]] && { stem=$2; shift; }
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
export ZUMASTOR_ROOT=$box/db ZUMASTOR_RUN=$box/run ZUMASTOR_LOG=$box/log
export ZUMASTOR_HOSTNAME=$host ZUMASTOR_SSH_DIR=$box/ssh
if [[ -n ${SSH_CUT_AFTER:-} && $1 == receive ]]; then
	head -c "$SSH_CUT_AFTER" | sh -c "$cmd"
else
	sh -c "$cmd"
fi
FAKE
chmod +x "$rbin/ddsnap" "$rbin/ssh"
export REAL_DDSNAP=$ddsnap BOXES=$dir/box SEND_LOG=$dir/sends
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
expect 1 "--transport tcp is not built" box a define target home b --transport tcp:9000
expect_out "not built yet" "it says so"
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
	SSH_ORIGINAL_COMMAND=$1 box b receive-from "${2:-a}"
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
expect 0 "b took no snapshot of its own (a replica only receives)" bash -c "! grep -q took '$dir/tick.b'"
expect 0 "b pruned received snapshots with its own counts" bash -c "[[ \$('$ddsnap' list --json '$BOXES/b/run/servers/home.sock' | jq '.snapshots | length') -le 4 ]]"

# status and check
ZUMASTOR_NOW=$((t + 300)) expect 0 "a: status --json" box a status --json
expect_json ".volumes[0].targets[0].name == \"b\" and .volumes[0].targets[0].last_good == \"$(box a status --json | jq -r '.volumes[0].snapshots | map(.name) | max')\"" \
	"targets[].last_good is A's newest snapshot"
expect_json '.volumes[0].targets[0].behind == 0 and .volumes[0].targets[0].failures == 0 and .volumes[0].targets[0].last_error == null and .volumes[0].targets[0].mode == "after-each-snapshot" and .volumes[0].targets[0].action == "idle" and (.volumes[0].targets[0].bytes_sent > 0) and (.volumes[0].targets[0].rate > 0)' \
	"and behind 0, no failures, idle, bytes sent and a rate"
expect_json '.volumes[0].source == null' "a master has no source"
expect_json '[.volumes[0].snapshots[] | select(.why | test("replication base"))] | length == 1' \
	"exactly one of A's snapshots is kept as the replication base"
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
expect 0 "forget target b" box a forget target home b
ZUMASTOR_NOW=$((t + 60)) box a tick >/dev/null 2>&1
expect 0 "its holds went with it: the old base is pruned" bash -c "! '$ddsnap' status '$BOXES/a/run/servers/home.sock' $base >/dev/null 2>&1"
expect 0 "forget source on c" box c forget source home
for b in a b c; do box "$b" stop home >/dev/null 2>&1; done
box b stop other >/dev/null 2>&1
box b stop fromx >/dev/null 2>&1
