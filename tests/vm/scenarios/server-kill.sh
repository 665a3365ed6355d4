#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 256M
# vm-timeout: 780
#
# server-kill: the real server (ddsnapd) killed with SIGKILL.
#
# 1. Killed twice during heavy origin writes (fio, libaio, 8 in flight, 4 KiB random writes
#    with crc32c verify; a snapshot taken between the kills so every chunk needs the server
#    again) and restarted with the same command each time: the target reports server-lost,
#    the writes wait and then complete with no error, fio's verify pass reads back every
#    block, snapshot 1 reads exactly its saved image, the rest of the origin is untouched.
# 2. Killed and not restarted: with the target's timeout set to 8 s, an origin write that
#    needs the server and a snapshot read both fail with EIO within the timeout (plus slack),
#    later ones fail at once, origin reads still work, the failed write changed nothing, and
#    the devices can be removed: nothing hangs (every command runs under timeout(1)).  The
#    server restarted, the target reconnects by itself and writes work again.
# The stopped store passes 'ddsnap check'.
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

store=${DISKS[0]}
srv_setup kill
vol=/dev/mapper/vol
MIB=$((1024 * 1024))
SIZE=$((48 * MIB))
FIO_LEN=$((32 * MIB)) # fio writes [0, 32 MiB); the rest is never written
C=16384

dm_create origin0 "0 $((SIZE / 512)) linear ${DISKS[1]} 0"
origin=/dev/mapper/origin0

# wait_mode DEV MODE SECS: waits for "mode=MODE" in the target's status.
wait_mode()
{
	local i st
	for ((i = 0; i < $3 * 5; i++)); do
		st=$(timeout 10 dmsetup status "$1")
		[[ $st == *"mode=$2 "* ]] && return 0
		sleep 0.2
	done
	fail "$1 did not reach mode $2 within $3 s: $st"
}
# direct_check DEV OFF LEN SEED WHAT: the bytes at OFF (read with O_DIRECT) are SEED's
# pattern (pattern bytes POS..  at offset POS, like write_pattern); if not, says for each
# 16 KiB piece which of the patterns used here it holds.
direct_check()
{
	local got want o s found
	got=$(dd if="$1" bs=4096 skip=$(($2 / 4096)) count=$(($3 / 4096)) iflag=direct status=none |
		sha256sum)
	want=$(pattern "$4" "$3" "$2" | sha256sum)
	[[ $got == "$want" ]] && return 0
	for ((o = $2; o < $2 + $3; o += C)); do
		found=unknown
		for s in kill-base kill-late kill-later kill-back; do
			if [[ $(dd if="$1" bs=4096 skip=$((o / 4096)) count=4 iflag=direct status=none |
				sha256sum) == "$(pattern "$s" $C "$o" | sha256sum)" ]]; then
				found=$s
			fi
		done
		echo "  bytes $o+$C: $found" >&2
	done
	echo "  $(timeout 10 dmsetup status "$1")" >&2
	fail "$5: $1 bytes $2+$3 are not pattern '$4'"
}
status_field() { timeout 10 dmsetup status "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

step "initialize, server, origin with a pattern, snapshot 1"
must "$ddsnap" initialize "$store" "$origin"
srv_start
load_ddsnap
n=$("$ddsnap" status --size "$sock")
dm_create vol "0 $n ddsnap $store $origin $sock -1"
[[ $(dmsetup status vol) == *chunk=$C* ]] || fail "chunk size is not $C: $(dmsetup status vol)"
pattern "kill-base" "$SIZE" | dd of=$vol bs=1M iflag=fullblock oflag=direct status=none
sha_rest=$(sha_of $vol "$FIO_LEN" $((SIZE - FIO_LEN)))
must "$ddsnap" create "$sock" 1
sha_s1=$(sha_of $vol)
kmsg_mark

step "fio writes the origin; the server is killed and restarted twice"
timeout 600 fio --name=kill --filename=$vol --size=$FIO_LEN --rw=randwrite --bs=4k \
	--ioengine=libaio --iodepth=8 --direct=1 --verify=crc32c --do_verify=1 \
	--verify_fatal=1 --randseed=5 --output="$RESULTS/fio.txt" >/dev/null &
fio_pid=$!
for kill_no in 1 2; do
	m0=$(status_field vol misses)
	for _ in $(seq 100); do
		(($(status_field vol misses) > m0 + 40)) && break
		kill -0 $fio_pid 2>/dev/null || fail "fio ended before kill $kill_no: $(cat "$RESULTS/fio.txt")"
		sleep 0.2
	done
	srv_kill
	sleep 3
	kill -0 $fio_pid 2>/dev/null || fail "fio ended while the server was dead"
	st=$(timeout 10 dmsetup status vol)
	log "server dead: $st"
	[[ $st == *mode=server-lost* ]] || fail "status while the server is dead: $st"
	srv_start
	wait_mode vol normal 30
	log "kill $kill_no: back to normal: $(timeout 10 dmsetup status vol)"
	if ((kill_no == 1)); then
		# Every chunk needs the server again (the target's safe cache is dropped).
		must timeout 120 "$ddsnap" create "$sock" 2
		log "snapshot 2 taken during the writes"
	fi
done
wait $fio_pid || fail "fio failed: $(cat "$RESULTS/fio.txt")"
grep -q "err= 0" "$RESULTS/fio.txt" || fail "fio reported errors: $(cat "$RESULTS/fio.txt")"
grep -E 'IOPS|verify' "$RESULTS/fio.txt" | head -n 3 || true
st=$(timeout 10 dmsetup status vol)
log "$st"
[[ $st == *errors=0*timeouts=0* ]] || fail "the target counted errors: $st"
expect_kmsg "reconnected to server|connected to server" "the reconnect is logged"

step "the data: snapshot 1 is its image, the origin beyond fio's range untouched"
expect_eq "$(sha_of $vol "$FIO_LEN" $((SIZE - FIO_LEN)))" "$sha_rest" "origin beyond fio's range"
dm_create "vol@1" "0 $n ddsnap $store $origin $sock 1"
expect_eq "$(sha_of "/dev/mapper/vol@1")" "$sha_s1" "snapshot 1"
dm_create "vol@2" "0 $n ddsnap $store $origin $sock 2"
expect_eq "$(sha_of "/dev/mapper/vol@2" "$FIO_LEN" $((SIZE - FIO_LEN)))" "$sha_rest" \
	"snapshot 2 beyond fio's range"
dm_remove "vol@2"

step "the server killed and not restarted: I/O fails after the timeout"
must timeout 120 "$ddsnap" create "$sock" 3
sha_s3=$(sha_of $vol)
dm_create "vol@3" "0 $n ddsnap $store $origin $sock 3"
dmsetup message vol 0 timeout 8
dmsetup message "vol@3" 0 timeout 8
[[ $(dmsetup status vol) == *timeout=8* ]] || fail "timeout not set: $(dmsetup status vol)"
kmsg_mark
srv_kill
t=$SECONDS
rc=0
pattern "kill-late" 65536 $((100 * 65536)) | timeout 120 dd of=$vol bs=65536 seek=100 iflag=fullblock \
	oflag=direct status=none || rc=$?
el=$((SECONDS - t))
log "origin write: status $rc after $el s"
((rc != 0)) || fail "an origin write needing the dead server succeeded"
((rc != 124)) || fail "an origin write hung for 120 s (the target's timeout is 8 s)"
((el >= 6 && el <= 40)) || fail "the write failed after $el s, not after the 8 s timeout"
wait_mode vol failed 30
t=$SECONDS
rc=0
timeout 60 dd if="/dev/mapper/vol@3" of=/dev/null bs=$C skip=5 count=1 iflag=direct \
	status=none || rc=$?
log "snapshot read: status $rc after $((SECONDS - t)) s"
((rc != 0 && rc != 124)) || fail "a snapshot read with the server dead: status $rc"
t=$SECONDS
rc=0
pattern "kill-later" 65536 $((120 * 65536)) | timeout 60 dd of=$vol bs=65536 seek=120 iflag=fullblock \
	oflag=direct status=none || rc=$?
log "a second origin write in mode failed: status $rc after $((SECONDS - t)) s"
((rc != 0 && rc != 124)) || fail "second origin write: status $rc"
((SECONDS - t <= 5)) || fail "in mode failed a write should fail at once, took $((SECONDS - t)) s"
expect_kmsg "failed: no reply from server" "the timeout is logged"
log "$(timeout 10 dmsetup status vol)"
expect_eq "$(timeout 60 dd if=$vol bs=1M iflag=direct status=none | sha256sum | cut -d ' ' -f 1)" \
	"$sha_s3" "origin reads with the server dead (the failed writes changed nothing)"
must timeout 30 dmsetup remove "vol@3"

step "the server back: the target reconnects, writes work again"
srv_start
wait_mode vol normal 30
pattern "kill-back" 65536 $((100 * 65536)) | timeout 60 dd of=$vol bs=65536 seek=100 \
	iflag=fullblock oflag=direct status=none
direct_check $vol $((100 * 65536)) 65536 "kill-back" "a write after the server came back"
dm_create "vol@3" "0 $n ddsnap $store $origin $sock 3"
expect_eq "$(sha_of "/dev/mapper/vol@3")" "$sha_s3" "snapshot 3 after the server came back"
expect_eq "$(sha_of "/dev/mapper/vol@1")" "$sha_s1" "snapshot 1 at the end"

step "tear down, check the store"
dm_remove "vol@3"
dm_remove "vol@1"
dm_remove vol
srv_stop
must "$ddsnap" check "$store"
rmmod dm_ddsnap
dm_remove origin0
log "server-kill: no write lost across kills; a dead server fails I/O after the timeout"
