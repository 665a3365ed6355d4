// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_ctl.c - libFuzzer target for the control-message decoder: any input either decodes
 * or is refused with -EPROTO and a reason, never reads out of bounds; a decoded message
 * re-encodes, and that encoding decodes to the same message.
 */
#include <string.h>
#include "proto/ctl.h"

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static struct ctl_snap snaps[2][CTL_LIST_PAGE];
	static u64 chunks[2][CTL_CHANGELIST_PAGE];
	static u8 out[sizeof(struct ddsnap_head_wire) + CTL_MAX_BODY];
	struct ctl_msg m = {.snaps = snaps[0], .chunks = chunks[0], .cap = CTL_CHANGELIST_PAGE};
	struct ctl_msg m2 = {.snaps = snaps[1], .chunks = chunks[1], .cap = CTL_CHANGELIST_PAGE};
	const char *why = NULL;
	ssize_t n;

	memset(snaps, 0, sizeof(snaps));
	memset(chunks, 0, sizeof(chunks));
	if (ctl_unpack(data, size, &m, &why)) {
		if (!why)
			__builtin_trap();
		return 0;
	}
	n = ctl_pack(&m, out, sizeof(out));
	if (n < 0 || ctl_unpack(out, (size_t)n, &m2, &why))
		__builtin_trap();
	if (m2.type != m.type || m2.seq != m.seq || m2.result.error != m.result.error ||
	    m2.count != m.count || strcmp(m2.result.text, m.result.text) ||
	    memcmp(snaps[0], snaps[1], m.count * sizeof(snaps[0][0])) ||
	    memcmp(chunks[0], chunks[1], m.count * sizeof(chunks[0][0])))
		__builtin_trap();
	return 0;
}
