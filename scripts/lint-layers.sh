#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The layers of server/, and the check that keeps them: a file in server/<layer>/ may include
# only headers of its own layer and of the layers this table lists below it, and names each
# project header by its folder ("pdata/btree.h", never "btree.h").  This table is the one
# statement of the layering; doc/HACKING.md explains it.
#
#   lint-layers.sh [<tree>]     check <tree> (default: this repository); prints each violation
#   lint-layers.sh --self-test  plants an upward include and a bare one in a copy, and checks
#                               that both are caught (make lint runs both)
set -uo pipefail

declare -A below=(
	[util]=""
	[blk]="util"
	[pdata]="util blk"
	[store]="util blk pdata"
	[snap]="util blk pdata store"
	[delta]="util"
	[proto]="util"
	[daemon]="util blk pdata store snap delta proto"
	[client]="util proto"
)
# include/ddsnap_wire.h is the kernel's ABI (message layouts, tags, states): it includes
# nothing of ours and sits below every layer.

# check <tree>: prints every violation; returns 1 if there is one.
check()
{
	local tree=$1 bad=0 f layer line inc target allowed
	local -A known=()
	for layer in "${!below[@]}"; do
		known[$layer]=1
	done
	for f in "$tree"/server/*; do
		[[ -d $f ]] && continue
		echo "$f: outside the layer folders (server/<layer>/)"
		bad=1
	done
	for f in "$tree"/server/*/*.[ch]; do
		[[ -f $f ]] || continue
		layer=$(basename "$(dirname "$f")")
		if [[ -z ${known[$layer]:-} ]]; then
			echo "$f: folder '$layer' is not a layer of scripts/lint-layers.sh"
			bad=1
			continue
		fi
		allowed=" $layer ${below[$layer]} "
		while IFS= read -r line; do
			inc=${line#*\"}
			inc=${inc%%\"*}
			if [[ $inc == ddsnap_wire.h ]]; then
				continue
			elif [[ $inc == */* ]]; then
				target=${inc%%/*}
				if [[ -z ${known[$target]:-} ]]; then
					echo "$f: includes \"$inc\", not a layer's header"
					bad=1
					continue
				fi
			else
				echo "$f: includes \"$inc\" without its folder"
				bad=1
				continue
			fi
			if [[ $allowed != *" $target "* ]]; then
				echo "$f: layer '$layer' includes \"$inc\" from the higher layer '$target'"
				bad=1
			fi
		done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
	done
	return $bad
}

self_test()
{
	local tmp out rc=0
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	cp -r "$repo/server" "$tmp/"
	if ! check "$tmp" >/dev/null; then
		echo "self-test: the unmodified copy does not pass"
		return 1
	fi
	echo '#include "daemon/server.h"' >>"$tmp/server/util/base.c"
	out=$(check "$tmp")
	grep -q "layer 'util' includes \"daemon/server.h\" from the higher layer 'daemon'" <<<"$out" ||
		{
			echo "self-test: a planted upward include was not caught"
			rc=1
		}
	cp "$repo/server/util/base.c" "$tmp/server/util/base.c"
	echo '#include "base.h"' >>"$tmp/server/blk/bdev.c"
	out=$(check "$tmp")
	grep -q 'includes "base.h" without its folder' <<<"$out" || {
		echo "self-test: an include without its folder was not caught"
		rc=1
	}
	return $rc
}

repo=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-} in
--self-test) self_test ;;
*) check "${1:-$repo}" ;;
esac
