// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_wire.c - libFuzzer target for the wire decoder.  The input is treated as a byte
 * stream, as the server reads it from a socket: frame a message, decode it, move on.  Any
 * message the decoder accepts must re-encode to the very same bytes, and checking it as a
 * reply to a fixed query must not misbehave.
 */
#include <stdint.h>
#include <string.h>
#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct wire_msg m, query;
	static u8 again[WIRE_MAX_MSG];
	const char *why = NULL;

	memset(&query, 0, sizeof(query));
	query.type = DDSNAP_MSG_SNAPSHOT_READ;
	query.query.nr = 2;
	query.query.r[0] = (struct wire_range){.chunk = 0, .count = 3};
	query.query.r[1] = (struct wire_range){.chunk = 100, .count = 2};

	while (size) {
		size_t total = 0;
		int r = wire_frame(data, size, &total, &why);

		if (r == -EWOULDBLOCK) {
			/* the whole tail must be refused as a truncated message */
			VERIFY(total >= WIRE_HEAD_SIZE);
			VERIFY(wire_unpack(data, size, &m, &why) == -EPROTO);
			return 0;
		}
		if (r)
			return 0;
		VERIFY(total <= WIRE_MAX_MSG && total <= size);
		if (wire_unpack(data, total, &m, &why) == 0) {
			ssize_t n = wire_pack(&m, again, sizeof(again), &why);

			VERIFY(n == (ssize_t)total);
			VERIFY(memcmp(again, data, total) == 0);
			query.seq = m.seq;
			(void)wire_check_reply(&query, &m, &why);
			(void)wire_query_chunks(&m);
		} else {
			VERIFY(why != NULL);
		}
		data += total;
		size -= total;
	}
	return 0;
}
