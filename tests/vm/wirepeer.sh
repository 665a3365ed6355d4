# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Helpers for the ddsnap VM scenarios: build and drive tests/vm/wirepeer.c, the TEST PEER
# that stands in for the metadata server (it is not the server).  Sourced after lib.sh:
#
#   peer_build                  compile the peer into /tmp/wirepeer
#   peer_start NAME [MODE]      start it: socket /run/NAME.sock, commands /run/NAME.cmd,
#                               status /run/NAME.status, log $RESULTS/NAME.log
#   peer_cmd NAME CMD...        send a command and wait for its "done" line
#   peer_kill NAME              SIGKILL it (no goodbye) and wait until it is gone
#   peer_sock NAME              the socket path
#   peer_volume NAME            the scenario's volume for peer NAME: store=DISKS[0],
#                               origin=DISKS[1], PEER_STORE, PEER_ORIGIN, n (sectors), sock

PEER_BIN=/tmp/wirepeer

peer_build()
{
	[[ -x $PEER_BIN ]] && return 0
	gcc -O2 -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE \
		-I"$SRC/include" -I"$SRC/server" -o "$PEER_BIN" "$SRC/tests/vm/wirepeer.c" \
		"$SRC/server/proto/wire.c" "$SRC/server/util/base.c" || fail "cannot build the test peer"
}

peer_sock()
{
	echo "/run/$1.sock"
}

peer_volume()
{
	# shellcheck disable=SC2034 # used by the scenarios and peer_start
	store=${DISKS[0]} origin=${DISKS[1]} PEER_STORE=${DISKS[0]} PEER_ORIGIN=${DISKS[1]}
	# shellcheck disable=SC2034
	n=$(dev_sectors "$origin") sock=$(peer_sock "$1")
}

peer_start()
{
	local name=$1 mode=${2:-normal} i
	[[ -p /run/$name.cmd ]] || mkfifo "/run/$name.cmd"
	: >"/run/$name.status"
	"$PEER_BIN" --socket "/run/$name.sock" --origin "${PEER_ORIGIN:?}" --store "${PEER_STORE:?}" \
		--mode "$mode" --cmd "/run/$name.cmd" --status "/run/$name.status" \
		2>>"$RESULTS/$name.log" &
	echo $! >"/run/$name.pid"
	for ((i = 0; i < 100; i++)); do
		grep -q '^ready' "/run/$name.status" && return 0
		sleep 0.1
	done
	fail "test peer $name did not start (see $name.log)"
}

peer_cmd()
{
	local name=$1 i
	shift
	kill -0 "$(cat "/run/$name.pid")" 2>/dev/null || fail "test peer $name is not running"
	: >"/run/$name.status"
	# opening a FIFO blocks until its reader is there: never wait for a dead peer forever
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 10 bash -c 'echo "$1" >"$2"' _ "$*" "/run/$name.cmd" ||
		fail "cannot send '$*' to test peer $name"
	for ((i = 0; i < 200; i++)); do
		grep -qxF "done $*" "/run/$name.status" && return 0
		grep -qxF "fail $*" "/run/$name.status" && fail "test peer $name refused '$*'"
		sleep 0.1
	done
	fail "test peer $name did not finish '$*' in 20 s"
}

peer_kill()
{
	local pid
	pid=$(cat "/run/$1.pid")
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
