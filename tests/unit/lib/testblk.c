// SPDX-License-Identifier: GPL-2.0-only
/*
 * testblk.c - the unit tests' block type (testblk.h).
 */
#include "testblk.h"
#include <string.h>

static int testblk_validate(const void *block, char *why, size_t whylen)
{
	const struct testblk_disk *b = block;
	u32 n = le32_to_cpu(b->count);

	if (n > TESTBLK_CAP) {
		snprintf(why, whylen, "count %u beyond capacity %zu", n, (size_t)TESTBLK_CAP);
		return -EILSEQ;
	}
	for (u32 i = 1; i < n; i++)
		if (le64_to_cpu(b->items[i - 1]) >= le64_to_cpu(b->items[i])) {
			snprintf(why, whylen, "items %u and %u out of order", i - 1, i);
			return -EILSEQ;
		}
	return 0;
}

const struct block_type testblk_type = {
	.name = "test block",
	.magic = TESTBLK_MAGIC,
	.validate = testblk_validate,
};

const struct block_type testblk_other_type = {
	.name = "other test block",
	.magic = TESTBLK_MAGIC ^ 0x00ff0000,
	.validate = testblk_validate,
};

void testblk_fill(void *block, u32 count, u64 base)
{
	struct testblk_disk *b = block;

	b->count = cpu_to_le32(count);
	for (u32 i = 0; i < count && i < TESTBLK_CAP; i++)
		b->items[i] = cpu_to_le64(base + i);
}

u64 testblk_first(const void *block)
{
	const struct testblk_disk *b = block;

	return b->count ? le64_to_cpu(b->items[0]) : ~0ULL;
}
