# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
# tests/vm/header.sh: a scenario's header lines ("# vm-<key>: value", run-one.sh lists the
# keys), read by run-one.sh (the guest it boots) and run-all.sh (the order and the vCPUs it
# schedules by) from this one place.

# vm_header SCRIPT KEY: the value of SCRIPT's first "# vm-KEY: value" line, or nothing.
vm_header()
{
	sed -n -E "s/^#[[:space:]]*vm-$2:[[:space:]]*(.*[^[:space:]])[[:space:]]*\$/\\1/p" "$1" | head -n 1
}
