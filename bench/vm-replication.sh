#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 4 1G
# vm-timeout: 900
#
# vm-replication (make bench): replication throughput against a plain compressed copy over
# the same ssh, in one guest run (issue 19, "Speed").  Two volumes in the guest, a master
# and a replica, each with its own server and ddsnap devices; sshd on 127.0.0.1 with a key
# whose forced command runs what the client asks (the replication path the monitor uses is
# `ddsnap send | ssh box 'ddsnap receive'`; the forced command of a real box adds only a
# check of the command line).  The master's origin holds SIZE bytes of /usr/lib as tar (a
# NAS-like mix of text and binaries).
#
#   full:        ddsnap send <m> 1 | ssh box 'ddsnap receive <r> 1'
#   against      dd if=<master snapshot 1> bs=1M | zstd -1 -T0 |
#                  ssh box 'zstd -d | dd of=<replica origin> bs=1M oflag=direct'
#   incremental: 1% of the master's chunks rewritten (at random, from other /usr data)
#                between snapshots N-1 and N: ddsnap send <m> N-1 N | ssh box 'ddsnap
#                receive <r> N', against the same pipeline fed only the changed chunks'
#                bytes (a small reader of the changelist's chunk offsets, which `ddsnap delta
#                changelist` wrote, reading them from snapshot N's device).
#
# Each ratio is the plain pipeline's wall time over ddsnap's (>= 1: ddsnap is as fast).
# Every transfer starts with the page cache dropped.  The old binary ($BUILD/bench/ddsnap-old,
# when present: the previous release, for "old against new") takes turns with the new one.
# The full runs write the replica's origin with no snapshot on the replica (each received
# snapshot 1 is deleted again); the incremental runs write it with the base snapshot present
# (copy-outs), and so does the plain pipeline (the replica is reverted to its newest snapshot
# after it).  Results: $RESULTS/vm-replication.results (one line per run, then the ratios).
#
# Knobs (host environment, passed in by run-one.sh): VM_ARG_SIZE (bytes of volume data,
# default 1G: the whole disk), VM_ARG_ROUNDS (turns of each, default 2), VM_ARG_FULL (1, the
# default: time the full transfers; 0: only the new binary's full receive, once, untimed,
# which the incrementals need; saves about three minutes a round at 1G).  1G needs an idle
# host and VM_TIMEOUT above 900: at a host load of 17 on 2 cores its tar from 9p alone took
# 350 s and the first plain 1 GiB transfer more than 6 minutes; 128M-256M runs in 10-15.
# Each timed run also reports where the CPU went (below, $TM).
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

ROUNDS=${VM_ARG_ROUNDS:-2}
new=/run/ddsnap-new
old=/run/ddsnap-old
cp "$BUILD/bin/ddsnap" "$new"
bins=(new)
if [[ -x $BUILD/bench/ddsnap-old ]]; then
	cp "$BUILD/bench/ddsnap-old" "$old"
	bins=(old new)
fi
ddsnap=$new
mstore=${DISKS[0]} morigin=${DISKS[1]} rstore=${DISKS[2]} rorigin=${DISKS[3]}
msock=/run/mvol.sock rsock=/run/rvol.sock
size=$(numfmt --from=iec "${VM_ARG_SIZE:-1G}")
disk=$(blockdev --getsize64 "$morigin")
((size <= disk)) || fail "VM_ARG_SIZE $size is larger than the origin disk ($disk)"
out=$RESULTS/vm-replication.results
: >"$out"
report() { echo "$*" | tee -a "$out"; }
now() { date +%s.%N; }

step "the master's data: $size bytes of /usr/lib as tar"
# (a shell without pipefail: tar dies of SIGPIPE when head has enough)
bash -c 'tar -cf - /usr/lib 2>/dev/null | head -c "$1" | dd of="$2" bs=1M oflag=direct iflag=fullblock status=none' \
	_ "$size" "$morigin"
n=$((disk / 512))

step "two volumes, their servers and devices"
must "$ddsnap" initialize "$mstore" "$morigin"
must "$ddsnap" initialize "$rstore" "$rorigin"
must "$ddsnap" server -l "$RESULTS/master.log" -p /run/mvol.pid "$mstore" "$morigin" "$msock"
must "$ddsnap" server -l "$RESULTS/replica.log" -p /run/rvol.pid "$rstore" "$rorigin" "$rsock"
load_ddsnap
dm_create mvol "0 $n ddsnap $mstore $morigin $msock -1"
dm_create rvol "0 $n ddsnap $rstore $rorigin $rsock -1"
msnap() # msnap TAG: master snapshot TAG and its device
{
	sync
	must "$ddsnap" create "$msock" "$1"
	dm_create "mvol@$1" "0 $n ddsnap $mstore $morigin $msock $1"
}
rsnap_dev() # rsnap_dev TAG: the replica's device of its snapshot TAG (receive's base)
{
	dm_create "rvol@$1" "0 $n ddsnap $rstore $rorigin $rsock $1"
}
msnap 1

step "sshd on 127.0.0.1:2222, a key whose forced command runs the client's command"
ssh_box box 2222
ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519
# shellcheck disable=SC2016 # expanded by the forced command, not here
printf '#!/bin/sh\nexec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n' >/run/ssh-run
chmod 0755 /run/ssh-run
echo "command=\"/run/ssh-run\" $(cat /root/.ssh/id_ed25519.pub)" >/run/ssh/box/authorized_keys
must ssh box true
log "ssh cipher: $(ssh -G box | awk '$1 == "ciphers" {print $2}')"

# Where the CPU goes: every stage of a timed pipeline runs under $TM (time(1) appending
# "user:sys:wall:command" to /run/cpu.log), and the guest's busy CPU time (/proc/stat, both
# vCPUs) is taken around it; what the stages do not account for is ssh and sshd (the
# cipher on both ends), the kernel's block and dm work and the servers.
TM="/usr/bin/time -a -o /run/cpu.log -f %U:%S:%e:%C"
busy() { awk '$1 == "cpu" { print ($2 + $3 + $4 + $7 + $8 + $9) / 100; exit }' /proc/stat; }

# timed LABEL CMD...: runs CMD (a shell line) after dropping the caches; prints the seconds.
# Each stage's CPU seconds (user+sys) and the guest's busy seconds go to $out.
timed()
{
	local label=$1 t0 t1 b0 b1
	shift
	drop_caches
	: >/run/cpu.log
	b0=$(busy)
	t0=$(now)
	bash -c "set -o pipefail; $*" 2>"$RESULTS/$label.err" || {
		cat "$RESULTS/$label.err"
		fail "$label failed"
	}
	t1=$(now)
	b1=$(busy)
	awk -F: -v l="$label" -v w="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" -v bz="$(awk -v a="$b0" -v b="$b1" 'BEGIN { print b - a }')" '
		NF >= 4 { split($4, c, " "); n = c[1]; sub(".*/", "", n); if (n == "dd") n = n "(" (c[2] ~ /^if=/ ? "read" : "write") ")"; else if (n != "python3") n = n " " c[2]
			  st = st sprintf(" %s %.1f", n, $1 + $2); tot += $1 + $2 }
		END { printf "  cpu %s: %.1f s wall, guest busy %.1f s of %.1f (2 vCPUs); stages%s; the rest (ssh, sshd, kernel, servers) %.1f s\n",
			l, w, bz, 2 * w, st, bz - tot }' /run/cpu.log | tee -a "$out" >&2
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

# The plain pipeline: stdin's bytes compressed, over ssh, written to the replica's origin.
plain_tail="$TM zstd -1 -T0 -q | ssh box '$TM zstd -d -q | $TM dd of=/dev/mapper/rvol bs=1M oflag=direct iflag=fullblock status=none'"

declare -A full_t incr_t
full_t=() incr_t=()
full_rounds=$ROUNDS
if [[ ${VM_ARG_FULL:-1} == 0 ]]; then
	full_rounds=0
	step "full: the new binary's receive only (VM_ARG_FULL=0, untimed)"
	drop_caches
	must bash -c "set -o pipefail; $new send $msock 1 | ssh box '$new receive $rsock 1'"
fi
step "full: $full_rounds rounds of the plain pipeline and ${bins[*]}, taking turns"
for r in $(seq "$full_rounds"); do
	# the replica has no snapshot here: the plain pipeline writes its origin as a full
	# receive does
	s=$(timed "full-plain-$r" "$TM dd if=/dev/mapper/mvol@1 bs=1M status=none | $plain_tail")
	report "full plain round $r: $s s"
	full_t[plain]+="$s "
	for b in "${bins[@]}"; do
		bin=/run/ddsnap-$b
		s=$(timed "full-$b-$r" "$TM $bin send $msock 1 | ssh box '$TM $bin receive $rsock 1'")
		report "full $b round $r: $s s"
		full_t[$b]+="$s "
		[[ $r == "$full_rounds" && $b == new ]] || must "$ddsnap" delete "$rsock" 1
	done
done
drop_caches
expect_eq "$(sha_of /dev/mapper/rvol)" "$(sha_of /dev/mapper/mvol@1)" "the replica's origin after the full receive"

# The 1% changes, one per incremental run: 1% of the chunks, at random, rewritten with other
# /usr data (a different offset of the same tar stream).
cs=$("$ddsnap" status --json "$msock" | jq -r .chunk_size 2>/dev/null || echo 16384)
[[ $cs =~ ^[0-9]+$ ]] || cs=16384
chunks=$((size / cs))
change()
{
	python3 - "$1" "$cs" "$chunks" /dev/mapper/mvol <<'EOF'
import os, random, sys
seed, cs, chunks, dev = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rnd = random.Random(seed)
pick = sorted(rnd.sample(range(chunks), max(1, chunks // 100)))
fd = os.open(dev, os.O_RDWR)
for c in pick:
    data = os.pread(fd, cs, rnd.randrange(chunks) * cs)
    mark = b"change %d of chunk %d" % (seed, c)
    os.pwrite(fd, mark + data[len(mark):], c * cs)
os.fsync(fd)
os.close(fd)
EOF
}
nincr=$((ROUNDS * ${#bins[@]}))
step "incremental: $nincr snapshots of 1% changes each ($((chunks / 100)) of $chunks chunks of $cs bytes)"
for t in $(seq 2 $((nincr + 1))); do
	change "$t"
	msnap "$t"
done
# the changed chunks' bytes of snapshot TAG (from TAG-1), in chunk order
cat >/run/changed.py <<'EOF'
import os, struct, sys
cl, dev = sys.argv[1], sys.argv[2]
with open(cl, "rb") as f:
    head = f.read(80)
    cs, = struct.unpack(">I", head[24:28])
    count, = struct.unpack(">Q", head[60:68])
    offs = struct.unpack(">%dQ" % count, f.read(8 * count))
fd = os.open(dev, os.O_RDONLY)
out = sys.stdout.buffer
for c in offs:
    out.write(os.pread(fd, cs, c * cs))
out.flush()
EOF
t=2
rsnap_dev 1
for r in $(seq "$ROUNDS"); do
	for b in "${bins[@]}"; do
		bin=/run/ddsnap-$b
		s=$(timed "incr-$b-$t" "$TM $bin send $msock $((t - 1)) $t | ssh box '$TM $bin receive $rsock $t'")
		report "incremental $b $((t - 1)) -> $t: $s s"
		incr_t[$b]+="$s "
		rsnap_dev "$t"
		# the plain pipeline with the same change's bytes, then the replica back to $t
		must "$ddsnap" delta changelist "$msock" "/run/cl-$t" $((t - 1)) "$t"
		s=$(timed "incr-plain-$t" "$TM python3 /run/changed.py /run/cl-$t /dev/mapper/mvol@$t | $plain_tail")
		report "incremental plain $((t - 1)) -> $t: $s s ($(stat -c %s "/run/cl-$t") bytes of changelist)"
		incr_t[plain]+="$s "
		must "$ddsnap" revert "$rsock" "$t"
		t=$((t + 1))
	done
done
drop_caches
last=$((t - 1))
expect_eq "$(sha_of "/dev/mapper/rvol@$last")" "$(sha_of "/dev/mapper/mvol@$last")" "the replica's snapshot $last"

# the plain incremental pipeline's reader is a python3 process: its start, for the record
s=$(timed python-start "python3 -c pass")
report "python3 start (part of each plain incremental): $s s"

# best (smallest) of a list of seconds
best() { tr ' ' '\n' <<<"$1" | grep . | sort -g | head -1; }
report "size $size bytes, $chunks chunks of $cs, 1%: $((chunks / 100)) chunks"
kinds=(incr)
((full_rounds == 0)) || kinds=(full incr)
for kind in "${kinds[@]}"; do
	declare -n tt=${kind}_t
	p=$(best "${tt[plain]}")
	for b in "${bins[@]}"; do
		s=$(best "${tt[$b]}")
		report "$kind $b: best $s s, plain best $p s, ratio $(awk -v p="$p" -v s="$s" 'BEGIN { printf "%.2f", p / s }')"
	done
	unset -n tt
done
