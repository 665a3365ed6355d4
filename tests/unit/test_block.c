// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_block.c - sealing and validation of self-identifying blocks: every single-byte change
 * is caught, the seed separates types, a misplaced block is -ENOTBLK, a block with a valid
 * checksum but impossible contents is refused by the structure validator, and block pointers
 * survive pack/unpack.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "blk/block.h"
#include "util/crc32c.h"
#include "lib/testblk.h"

static struct testblk_disk *sealed_block(u64 blocknr, u64 txg)
{
	struct testblk_disk *b = calloc(1, sizeof(*b));

	testblk_fill(b, 100, 1000);
	block_set_flags(b, 0x5);
	block_seal(b, &testblk_type, blocknr, txg);
	return b;
}

static void test_block__seal_validate(void **state)
{
	struct testblk_disk *b = calloc(1, sizeof(*b));
	char why[128];
	u32 csum;

	testblk_fill(b, 3, 7);
	block_set_flags(b, 0x1234);
	csum = block_seal(b, &testblk_type, 42, 9);
	assert_int_equal(csum, block_csum(b));
	assert_int_equal(block_validate(b, &testblk_type, 42, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(block_txg(b), 9);
	assert_int_equal(block_flags(b), 0x1234);
	/* Sealing is deterministic: same contents, same checksum. */
	assert_int_equal(block_seal(b, &testblk_type, 42, 9), csum);
	assert_int_not_equal(block_seal(b, &testblk_type, 42, 10), csum);
	free(b);
}

static void test_block__every_byte_flip_is_caught(void **state)
{
	struct testblk_disk *b = sealed_block(5, 3);
	char why[128];

	for (size_t i = 0; i < DDSNAP_BLOCK_SIZE; i++) {
		u8 *p = (u8 *)b + i;
		int r;

		*p ^= 0x10;
		r = block_validate(b, &testblk_type, 5, why, sizeof(why));
		assert_int_equal(r, -EILSEQ);
		assert_true(strlen(why) > 0);
		*p ^= 0x10;
	}
	assert_int_equal(block_validate(b, &testblk_type, 5, NULL, 0), 0);
	free(b);
}

static void test_block__misplaced_is_enotblk(void **state)
{
	struct testblk_disk *b = sealed_block(5, 3);
	char why[128];

	assert_int_equal(block_validate(b, &testblk_type, 6, why, sizeof(why)), -ENOTBLK);
	assert_non_null(strstr(why, "block 5 read from 6"));
	free(b);
}

static void test_block__type_seed_separates_types(void **state)
{
	struct testblk_disk *b = sealed_block(5, 3);

	/* Read as another type: wrong magic. */
	assert_int_equal(block_validate(b, &testblk_other_type, 5, NULL, 0), -EILSEQ);
	/* Even with the magic forged to the other type, the seeded checksum refuses it. */
	b->hdr.magic = cpu_to_le32(testblk_other_type.magic);
	assert_int_equal(block_validate(b, &testblk_other_type, 5, NULL, 0), -EILSEQ);
	free(b);
}

static void test_block__valid_checksum_bad_structure(void **state)
{
	struct testblk_disk *b = sealed_block(5, 3);
	char why[128];

	/* An impossible count, checksum recomputed: only the structure validator can catch it. */
	b->count = cpu_to_le32(TESTBLK_CAP + 1);
	block_seal(b, &testblk_type, 5, 3);
	assert_int_equal(block_validate(b, &testblk_type, 5, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "beyond capacity"));

	/* Items out of order. */
	testblk_fill(b, 10, 0);
	b->items[4] = cpu_to_le64(100);
	block_seal(b, &testblk_type, 5, 3);
	assert_int_equal(block_validate(b, &testblk_type, 5, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "out of order"));

	/* A reserved header field set, checksum recomputed. */
	testblk_fill(b, 10, 0);
	block_seal(b, &testblk_type, 5, 3);
	b->hdr.reserved = cpu_to_le32(1);
	b->hdr.csum = 0;
	b->hdr.csum = cpu_to_le32(crc32c(testblk_type.magic, b, DDSNAP_BLOCK_SIZE));
	assert_int_equal(block_validate(b, &testblk_type, 5, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "reserved"));
	assert_int_equal(block_validate(b, &testblk_type, 5, NULL, 0), -EILSEQ);
	free(b);
}

static void test_block__why_is_bounded(void **state)
{
	struct testblk_disk *b = sealed_block(5, 3);
	char why[8];

	memset(why, 'x', sizeof(why));
	assert_int_equal(block_validate(b, &testblk_type, 77, why, sizeof(why)), -ENOTBLK);
	assert_int_equal(strlen(why), sizeof(why) - 1);
	free(b);
}

static void test_block__zero_block_is_corrupt(void **state)
{
	void *z = calloc(1, DDSNAP_BLOCK_SIZE);

	assert_int_equal(block_validate(z, &testblk_type, 0, NULL, 0), -EILSEQ);
	free(z);
}

static void test_block__blkptr_roundtrip(void **state)
{
	struct blkptr p = {
		.blocknr = 0x123456789aULL, .birth_txg = 77, .aggr = ~0ULL - 1, .csum = 0xdeadbeef};
	struct blkptr q;
	struct blkptr_disk d;

	memset(&d, 0xff, sizeof(d));
	blkptr_pack(&d, &p);
	assert_int_equal(d.reserved, 0);
	blkptr_unpack(&q, &d);
	assert_int_equal(q.blocknr, p.blocknr);
	assert_int_equal(q.birth_txg, p.birth_txg);
	assert_int_equal(q.aggr, p.aggr);
	assert_int_equal(q.csum, p.csum);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block__seal_validate),
		cmocka_unit_test(test_block__every_byte_flip_is_caught),
		cmocka_unit_test(test_block__misplaced_is_enotblk),
		cmocka_unit_test(test_block__type_seed_separates_types),
		cmocka_unit_test(test_block__valid_checksum_bad_structure),
		cmocka_unit_test(test_block__why_is_bounded),
		cmocka_unit_test(test_block__zero_block_is_corrupt),
		cmocka_unit_test(test_block__blkptr_roundtrip),
	};

	return cmocka_run_group_tests_name("block", tests, NULL, NULL);
}
