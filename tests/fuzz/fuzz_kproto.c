// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_kproto.c - libFuzzer target for the kernel target's own codec (kernel/ddsnap-proto.c,
 * compiled through tests/unit/kshim): what a hostile server can make the kernel read.
 *
 * The input is a byte stream, as the receive thread reads it: header, then body, then the
 * next message.  An origin or snapshot-read reply the kernel accepts, the server's codec must
 * accept too, and reading every range or mapping of a message must stay in bounds (ASan).  The first input byte also drives a sequence of batch adds,
 * whose slots must always name an entry of the reply that answers them.
 */
#include <stdint.h>
#include <string.h>
#include "ddsnap-proto.h"
#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void batches(const uint8_t *data, size_t size)
{
	struct ddsnap_query q = {0};
	u16 type = size && (data[0] & 1) ? DDSNAP_MSG_ORIGIN_WRITE : DDSNAP_MSG_SNAPSHOT_READ;

	for (size_t i = 1; i + 2 <= size && i < 400; i += 2) {
		u64 chunk = data[i] % 64;
		u32 count = type == DDSNAP_MSG_ORIGIN_WRITE ? data[i + 1] % 8 : 1;
		u32 flags = data[i + 1] & 0x80 ? DDSNAP_RANGE_WHOLE : 0;
		int slot = ddsnap_proto_batch_add(&q, type, chunk, count, flags);

		VERIFY(q.nr <= DDSNAP_WIRE_MAX_RANGES && q.total <= DDSNAP_WIRE_MAX_CHUNKS);
		if (slot < 0)
			continue;
		VERIFY((u32)slot < ddsnap_proto_batch_replies(&q, type));
		if (type == DDSNAP_MSG_ORIGIN_WRITE) {
			VERIFY(chunk >= q.r[slot].chunk &&
			       chunk + count <= q.r[slot].chunk + q.r[slot].count);
		} else {
			/* the mapping entry at slot is for this chunk */
			u32 k = (u32)slot, r = 0;

			while (k >= q.r[r].count)
				k -= q.r[r++].count;
			VERIFY(q.r[r].chunk + k == chunk);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct wire_msg w;
	const char *why = NULL;

	batches(data, size);
	while (size >= sizeof(struct ddsnap_head_wire)) {
		struct ddsnap_msg m;
		u16 type;
		u32 seq, len;

		if (ddsnap_proto_head((const void *)data, &type, &seq, &len, &why)) {
			VERIFY(why != NULL);
			return 0;
		}
		VERIFY(len <= DDSNAP_WIRE_MAX_BODY);
		data += sizeof(struct ddsnap_head_wire);
		size -= sizeof(struct ddsnap_head_wire);
		if (len > size)
			return 0;
		if (ddsnap_proto_unpack(type, seq, data, len, &m, &why) == 0) {
			struct ddsnap_mapping p;
			struct ddsnap_range r;

			if (type == (DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY))
				for (u32 i = 0; i < m.origin.nr; i++)
					ddsnap_proto_origin_range(&m, i, &r);
			if (type == (DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY) ||
			    type == (DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY))
				for (u32 i = 0; i < m.map.nr; i++)
					ddsnap_proto_mapping(&m, i, &p);
			/* A reply the kernel acts on, the server's own decoder accepts too (for
			 * ERROR, PING and the like the server checks fields the kernel only logs). */
			if (type == (DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY) ||
			    type == (DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY))
				VERIFY(wire_unpack(data - sizeof(struct ddsnap_head_wire),
						   sizeof(struct ddsnap_head_wire) + len, &w,
						   &why) == 0);
		} else {
			VERIFY(why != NULL);
		}
		data += len;
		size -= len;
	}
	return 0;
}
