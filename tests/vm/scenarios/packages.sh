#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vm-disks: 2 256M
# vm-timeout: 900
#
# The Debian packages (make deb, doc/packaging.md) on a box: dpkg -i of ddsnap, ddsnap-dkms
# and zumastor into the guest's overlay root; DKMS builds dm-ddsnap for the guest's kernel and
# modprobe loads it; a volume by hand from the installed programs (store, server, origin
# device, a snapshot read back); the monitor (/usr/sbin/zumastor) defines and starts it; then
# removal: dpkg -r zumastor stops the volume cleanly and keeps the conffile and the config
# database, dpkg -P removes the conffile and keeps a database that still defines volumes;
# after the admin removes it, dpkg -P of the other two leaves the listing of every place a
# package or its maintainer scripts write as it was before the install, and the volume's
# data is intact (checksums, and read back with the build tree's ddsnap).
set -euo pipefail
. "$SRC/tests/vm/lib.sh"

store=${DISKS[0]} origin=${DISKS[1]}
MiB=1048576
shopt -s nullglob
debs=()
for p in ddsnap ddsnap-dkms zumastor; do
	f=("$BUILD"/deb/"${p}"_*.deb)
	((${#f[@]} == 1)) || fail "want one $BUILD/deb/${p}_*.deb, found ${#f[@]}: run make deb first (make vm-test T=packages does)"
	debs+=("${f[0]}")
done
shopt -u nullglob

# Every place the packages' files and their maintainer scripts (ours, dkms's, debhelper's)
# write; check_covered proves the packages install nothing elsewhere.  /usr/src is listed
# one level deep (the kernel headers below it are read-only to all of this).
ROOTS=(/etc /var /usr/sbin /usr/libexec /usr/lib/systemd /usr/share/doc /usr/share/man/man8
	"/usr/lib/modules/$KVER")
listing()
{
	{
		find "${ROOTS[@]}" -printf '%y %p\n'
		find /usr/src -maxdepth 1 -printf '%y %p\n'
	} | LC_ALL=C sort
}
# under_roots PATH: PATH is in the listing (a root, below one, or an entry of /usr/src).
under_roots()
{
	local root
	for root in "${ROOTS[@]}"; do
		[[ $1 == "$root" || $1 == "$root"/* ]] && return 0
	done
	[[ $1 == /usr/src/* && $1 != /usr/src/*/* ]]
}
# What the listing leaves out after a purge, and why (doc/packaging.md):
#   /var/lib/dpkg/     dpkg's own database: it may keep status-old, triggers, backups
#   /var/log/{dpkg,apt,alternatives}*  logs of what dpkg did
#   /var/lib/dkms/mok.key, mok.pub  the signing key pair dkms makes at its first build and
#                      keeps for every module it will build (dkms's, not ours)
ignore()
{
	grep -v -E "^. (/var/lib/dpkg(/|$)|/var/log/(dpkg|apt|alternatives)|/var/lib/dkms/mok\.(key|pub)$)"
}

# No terminal here: debconf (dkms's scripts load it) asks nothing.  man-db's trigger would
# rebuild the manual's index over the 9p root, TCG time spent on no package of ours: off, as
# "man-db/auto-update false" does (before the listing, so it is the same in both).
export DEBIAN_FRONTEND=noninteractive
rm -f /var/lib/man-db/auto-update
# depmod, which DKMS runs at the install and at the removal, reads every module of the
# kernel: 44 s at the install under TCG.  More than half the modules are in driver trees no
# box of this test loads (no network, graphics, sound, USB, sensors or input devices here).
# Those trees are hidden under empty read-only tmpfs mounts in this guest before the first
# listing, so depmod, the listings and modprobe all see the same smaller kernel.
for d in drivers/net drivers/gpu drivers/media sound drivers/infiniband drivers/usb \
	drivers/iio drivers/hwmon drivers/staging drivers/hid drivers/input; do
	[[ ! -d /usr/lib/modules/$KVER/kernel/$d ]] ||
		mount -t tmpfs -o ro,size=4k,mode=0755 none "/usr/lib/modules/$KVER/kernel/$d"
done

step "before: a listing of ${ROOTS[*]} /usr/src"
listing >"$RESULTS/before.list"
log "$(wc -l <"$RESULTS/before.list") entries"

step "dpkg -i ${debs[*]##*/}"
t0=$SECONDS
# Each line of dpkg's output timestamped (log): where the time goes.
{ dpkg -i "${debs[@]}" 2>&1 && echo "dpkg-ok"; } | while IFS= read -r line; do log "$line"; done >"$RESULTS/dpkg-install.log"
grep -q 'dpkg-ok$' "$RESULTS/dpkg-install.log" || {
	tail -n 40 "$RESULTS/dpkg-install.log"
	fail "dpkg -i failed (whole output: build/vm/packages.results/dpkg-install.log)"
}
grep -E 'Setting up|Building|Installing to|depmod|Processing triggers|dpkg-ok' "$RESULTS/dpkg-install.log"
log "dpkg -i (DKMS build and install for $KVER included) took $((SECONDS - t0)) s"
dpkg-query -W -f '${Package} ${Version} ${Status}\n' ddsnap ddsnap-dkms zumastor | tee "$RESULTS/installed"
expect_eq "$(grep -c 'install ok installed' "$RESULTS/installed")" 3 "installed packages"
dpkg -L ddsnap ddsnap-dkms zumastor | grep . | LC_ALL=C sort -u >"$RESULTS/package-files"
# Each file of the packages lies under a listed root, or is a parent of one (/usr, /lib...).
while read -r f; do
	r=$(readlink -m "$f")
	under_roots "$r" && continue
	# Below a new entry of /usr/src (the module's source): that entry is in the listing.
	if [[ $r == /usr/src/*/* ]]; then
		top=${r#/usr/src/}
		top=/usr/src/${top%%/*}
		grep -q -F -x "d $top" "$RESULTS/before.list" && fail "$f: the packages write into $top, which they did not make"
		continue
	fi
	for root in "${ROOTS[@]}" /usr/src; do
		[[ $root == "$r" || $root == "$r"/* || $r == / ]] && continue 2
	done
	fail "package file $f is outside the listed roots: add its place to ROOTS"
done <"$RESULTS/package-files"
dkms status | tee "$RESULTS/dkms-status"
grep -q "^dm-ddsnap/.*, $KVER, .*: installed" "$RESULTS/dkms-status" || fail "DKMS did not install dm-ddsnap for $KVER"
ko=$(modinfo -n dm-ddsnap) || fail "modinfo finds no dm-ddsnap for $KVER"
[[ $ko == */updates/dkms/dm-ddsnap.ko* ]] || fail "modprobe would load $ko, not DKMS's build"
must modprobe dm-ddsnap
[[ -d /sys/module/dm_ddsnap ]] || fail "dm_ddsnap is not loaded after modprobe"
log "modprobe dm-ddsnap loaded $ko"
expect_eq "$(command -v ddsnap)" /usr/sbin/ddsnap "ddsnap on PATH"
expect_eq "$(command -v zumastor)" /usr/sbin/zumastor "zumastor on PATH"
[[ -s /etc/cron.d/zumastor && -f /lib/systemd/system/zumastor.service && -d /var/lib/zumastor ]] ||
	fail "the cron file, the units or /var/lib/zumastor are missing"
grep -q ' /usr/sbin/zumastor tick' /etc/cron.d/zumastor || fail "the cron file does not run /usr/sbin/zumastor"

step "a volume by hand, from /usr/sbin/ddsnap"
sock=/run/ddsnap-vol.sock
must ddsnap initialize "$store" "$origin"
must ddsnap server -l "$RESULTS/server.log" -p /run/ddsnapd-vol.pid "$store" "$origin" "$sock"
n=$(ddsnap status --size "$sock")
dm_create vol "0 $n ddsnap $store $origin $sock -1"
write_pattern /dev/mapper/vol v1 0 $((8 * MiB))
must ddsnap create "$sock" 1
write_pattern /dev/mapper/vol v2 0 $((2 * MiB))
dm_create vol@1 "0 $n ddsnap $store $origin $sock 1"
drop_caches
check_pattern /dev/mapper/vol@1 v1 0 $((8 * MiB))
check_pattern /dev/mapper/vol v2 0 $((2 * MiB))
check_pattern /dev/mapper/vol v1 $((2 * MiB)) $((6 * MiB))
log "snapshot 1 reads the first pattern back; the origin the second over it"
dm_remove vol@1
dm_remove vol
kill -TERM "$(cat /run/ddsnapd-vol.pid)"
for _ in $(seq 150); do
	[[ -e /run/ddsnapd-vol.pid ]] || break
	sleep 0.2
done
[[ ! -e /run/ddsnapd-vol.pid ]] || fail "the server did not stop on SIGTERM"

step "the monitor from /usr/sbin/zumastor: define and start the volume"
must zumastor define volume home "$origin" "$store"
must zumastor start home
[[ -b /dev/mapper/home ]] || fail "zumastor start made no /dev/mapper/home"
check_pattern /dev/mapper/home v2 0 $((2 * MiB))
pid=$(cat /run/zumastor/pid/home.pid)
kill -0 "$pid" || fail "the volume's server is not running"
origin_sum=$(sha_of "$origin")

step "dpkg -r zumastor: stops the volume, keeps the conffile and the database"
dpkg -r zumastor >"$RESULTS/dpkg-r.log" 2>&1 || {
	cat "$RESULTS/dpkg-r.log"
	fail "dpkg -r zumastor failed"
}
[[ ! -e /dev/mapper/home ]] || fail "/dev/mapper/home is still there after dpkg -r"
! kill -0 "$pid" 2>/dev/null || fail "the volume's server still runs after dpkg -r"
[[ ! -e /usr/sbin/zumastor && ! -e /usr/libexec/zumastor ]] || fail "dpkg -r left the programs"
[[ -f /etc/cron.d/zumastor ]] || fail "dpkg -r removed the conffile /etc/cron.d/zumastor"
[[ -e /var/lib/zumastor/volumes/home/state/started ]] || fail "dpkg -r changed the database"
sh -c "$(sed -n 's/^\* \* \* \* \* root //p' /etc/cron.d/zumastor)" >"$RESULTS/cron.out" 2>&1 ||
	fail "the kept cron line fails without zumastor: $(cat "$RESULTS/cron.out")"
[[ ! -s $RESULTS/cron.out ]] || fail "the kept cron line says something: $(cat "$RESULTS/cron.out")"
store_sum=$(sha_of "$store")
log "the volume stopped, the server is gone; conffile and database kept; the cron line is silent"

step "dpkg -P zumastor: the conffile goes, the database that defines 'home' stays"
dpkg -P zumastor >"$RESULTS/dpkg-P-zumastor.log" 2>&1 || {
	cat "$RESULTS/dpkg-P-zumastor.log"
	fail "dpkg -P zumastor failed"
}
[[ ! -e /etc/cron.d/zumastor ]] || fail "dpkg -P kept /etc/cron.d/zumastor"
[[ -d /var/lib/zumastor/volumes/home ]] || fail "dpkg -P removed the database that defines home"
grep -q 'kept /var/lib/zumastor: it defines the volumes home' "$RESULTS/dpkg-P-zumastor.log" ||
	fail "dpkg -P did not say it kept /var/lib/zumastor"
rm -rf /var/lib/zumastor # the admin no longer wants the definition
log "cron file purged; the database kept with a notice (then removed by hand)"

step "dpkg -P ddsnap ddsnap-dkms"
dpkg -P ddsnap ddsnap-dkms >"$RESULTS/dpkg-P.log" 2>&1 || {
	cat "$RESULTS/dpkg-P.log"
	fail "dpkg -P failed"
}
listing >"$RESULTS/after.list"
ignore <"$RESULTS/before.list" >"$RESULTS/before.cmp"
ignore <"$RESULTS/after.list" >"$RESULTS/after.cmp"
expect_same "$RESULTS/before.cmp" "$RESULTS/after.cmp" "the listing before the install and after the purge"
while read -r f; do
	r=$(readlink -m "$f")
	[[ -e $r ]] || continue
	# Still there: only a directory that was there before (or a parent of a root: /usr...).
	if under_roots "$r"; then
		grep -q -x -F "d $r" "$RESULTS/before.list" || fail "$f of the packages is still there"
	else
		[[ -d $r ]] || fail "$f of the packages is still there"
	fi
done <"$RESULTS/package-files"
log "nothing of the packages is left"

step "the volume's data is intact"
expect_eq "$(sha_of "$origin")" "$origin_sum" "the origin's checksum"
expect_eq "$(sha_of "$store")" "$store_sum" "the store's checksum"
srv_setup vol2
srv_start
n=$("$ddsnap" status --size "$sock")
dm_create vol@1 "0 $n ddsnap $store $origin $sock 1"
check_pattern /dev/mapper/vol@1 v1 0 $((8 * MiB))
dm_remove vol@1
srv_stop
log "the store's snapshot 1 still reads back (build tree's ddsnap, the module still loaded)"
