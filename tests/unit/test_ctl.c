// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_ctl.c - control messages round-trip for every type, and every malformed form is
 * refused with -EPROTO: truncation at every length, wrong lengths, counts beyond the page or
 * the caller's capacity, unordered changelists, oversized text, reserved fields, bad errno.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "proto/ctl.h"

static u8 buf[sizeof(struct ddsnap_head_wire) + CTL_MAX_BODY];
static struct ctl_snap snaps_in[CTL_LIST_PAGE], snaps_out[CTL_LIST_PAGE];
static u64 chunks_in[CTL_CHANGELIST_PAGE], chunks_out[CTL_CHANGELIST_PAGE];

static size_t pack(const struct ctl_msg *m)
{
	ssize_t n = ctl_pack(m, buf, sizeof(buf));

	assert_true(n > 0);
	return (size_t)n;
}

static void unpack_ok(size_t n, struct ctl_msg *out)
{
	const char *why = NULL;

	memset(out, 0, sizeof(*out));
	out->snaps = snaps_out;
	out->chunks = chunks_out;
	out->cap = CTL_CHANGELIST_PAGE;
	assert_int_equal(ctl_unpack(buf, n, out, &why), 0);
}

static void refused(size_t n, u32 cap)
{
	struct ctl_msg out = {.snaps = snaps_out, .chunks = chunks_out, .cap = cap};
	const char *why = NULL;

	assert_int_equal(ctl_unpack(buf, n, &out, &why), -EPROTO);
	assert_non_null(why);
}

static void test_ctl__round_trips(void **state)
{
	struct ctl_msg m = {0}, out;
	size_t n;

	m.type = CTL_HELLO;
	m.seq = 9;
	m.version = CTL_VERSION;
	unpack_ok(pack(&m), &out);
	assert_int_equal(out.type, CTL_HELLO);
	assert_int_equal(out.seq, 9);
	assert_int_equal(out.version, CTL_VERSION);

	m = (struct ctl_msg){.type = CTL_HELLO | DDSNAP_MSG_REPLY,
			     .chunk_bits = 14,
			     .origin_sectors = 123456,
			     .gen = 77,
			     .version = 1};
	memset(m.uuid, 0xab, 16);
	unpack_ok(pack(&m), &out);
	assert_int_equal(out.chunk_bits, 14);
	assert_int_equal(out.origin_sectors, 123456);
	assert_int_equal(out.gen, 77);
	assert_memory_equal(out.uuid, m.uuid, 16);

	/* CREATE of a received snapshot carries its provenance; a plain one none */
	m = (struct ctl_msg){.type = CTL_CREATE, .tag = 8, .has_origin = true, .origin_gen = 31};
	memset(m.origin_uuid, 0x5c, 16);
	n = pack(&m);
	assert_int_equal(n, sizeof(struct ddsnap_head_wire) + sizeof(struct ctl_create_from_wire));
	unpack_ok(n, &out);
	assert_true(out.has_origin);
	assert_int_equal(out.tag, 8);
	assert_int_equal(out.origin_gen, 31);
	assert_memory_equal(out.origin_uuid, m.origin_uuid, 16);
	m = (struct ctl_msg){.type = CTL_CREATE, .tag = 8};
	unpack_ok(pack(&m), &out);
	assert_false(out.has_origin);

	m = (struct ctl_msg){.type = CTL_PRIORITY, .tag = 42, .arg = -5};
	unpack_ok(pack(&m), &out);
	assert_int_equal(out.tag, 42);
	assert_true(out.arg == -5);

	m = (struct ctl_msg){.type = CTL_REVERT, .tag = 7};
	unpack_ok(pack(&m), &out);
	assert_int_equal(out.type, CTL_REVERT);
	assert_int_equal(out.tag, 7);
	m = (struct ctl_msg){.type = CTL_REVERT | DDSNAP_MSG_REPLY};
	m.result.value = 12345;
	unpack_ok(pack(&m), &out);
	assert_int_equal(out.result.value, 12345);

	m = (struct ctl_msg){.type = CTL_DELETE | DDSNAP_MSG_REPLY};
	ctl_result_set(&m.result, -EBUSY, "snapshot %u is held (usecount %u)", 42u, 1u);
	unpack_ok(pack(&m), &out);
	assert_int_equal(out.result.error, -EBUSY);
	assert_string_equal(out.result.text, "snapshot 42 is held (usecount 1)");

	for (u32 i = 0; i < CTL_LIST_PAGE; i++)
		snaps_in[i] = (struct ctl_snap){.tag = i,
						.gen = 1000 + i,
						.priority = -(s32)i,
						.unique_bytes = (u64)i << 40,
						.ctime = 1700000000,
						.origin_gen = 7 * (u64)i + 1,
						.origin_uuid = {(u8)i, 1, 2, 3}};
	m = (struct ctl_msg){.type = CTL_LIST | DDSNAP_MSG_REPLY,
			     .total = 1000,
			     .count = CTL_LIST_PAGE,
			     .next = 64,
			     .snaps = snaps_in};
	unpack_ok(pack(&m), &out);
	assert_int_equal(out.count, CTL_LIST_PAGE);
	assert_int_equal(out.next, 64);
	assert_memory_equal(snaps_out, snaps_in, sizeof(snaps_in));

	m = (struct ctl_msg){.type = CTL_STATUS | DDSNAP_MSG_REPLY};
	m.status = (struct ctl_status){
		.gen = 3, .data_total = 100, .data_free = 40, .readlocks = 2, .log_size = 1024};
	unpack_ok(pack(&m), &out);
	assert_memory_equal(&out.status, &m.status, sizeof(m.status));

	m = (struct ctl_msg){.type = CTL_STATUS};
	n = pack(&m);
	assert_int_equal(n, sizeof(struct ddsnap_head_wire));
	unpack_ok(n, &out);

	for (u32 i = 0; i < CTL_CHANGELIST_PAGE; i++)
		chunks_in[i] = 3 * (u64)i + 1;
	m = (struct ctl_msg){.type = CTL_CHANGELIST | DDSNAP_MSG_REPLY,
			     .count = CTL_CHANGELIST_PAGE,
			     .chunk_bits = 14,
			     .next = CTL_CURSOR_END,
			     .chunks = chunks_in};
	unpack_ok(pack(&m), &out);
	assert_memory_equal(chunks_out, chunks_in, sizeof(chunks_in));
	assert_true(out.next == CTL_CURSOR_END);

	m = (struct ctl_msg){.type = CTL_CHANGELIST,
			     .from = DDSNAP_TAG_NONE,
			     .to = DDSNAP_TAG_HEAD,
			     .cursor = 5};
	unpack_ok(pack(&m), &out);
	assert_int_equal(out.from, DDSNAP_TAG_NONE);
	assert_int_equal(out.to, DDSNAP_TAG_HEAD);
}

static void test_ctl__pack_refuses_unencodable(void **state)
{
	struct ctl_msg m = {
		.type = CTL_LIST | DDSNAP_MSG_REPLY, .count = CTL_LIST_PAGE + 1, .snaps = snaps_in};

	assert_int_equal(ctl_pack(&m, buf, sizeof(buf)), -EINVAL);
	m = (struct ctl_msg){.type = 0x0042};
	assert_int_equal(ctl_pack(&m, buf, sizeof(buf)), -EINVAL);
	m = (struct ctl_msg){.type = CTL_HELLO};
	assert_int_equal(ctl_pack(&m, buf, 10), -ENOSPC);
}

static void test_ctl__malformed(void **state)
{
	struct ctl_msg m = {
		.type = CTL_LIST | DDSNAP_MSG_REPLY, .total = 10, .count = 3, .snaps = snaps_in};
	struct ddsnap_head_wire *h = (void *)buf;
	struct ctl_result_wire *res = (void *)(buf + sizeof(*h));
	size_t n = pack(&m);

	/* Truncated anywhere, or with trailing bytes. */
	for (size_t k = 0; k < n; k++)
		refused(k, CTL_LIST_PAGE);
	refused(n + 8, CTL_LIST_PAGE);
	/* More entries than the caller can hold. */
	refused(n, 2);
	/* Count larger than total. */
	n = pack(&m);
	((struct ctl_list_reply_wire *)res)->total = cpu_to_le32(2);
	refused(n, CTL_LIST_PAGE);
	/* Text longer than its field, reserved bits, a positive "errno", bad magic, flags. */
	n = pack(&m);
	res->text_len = cpu_to_le16(CTL_MAX_TEXT + 1);
	refused(n, CTL_LIST_PAGE);
	n = pack(&m);
	res->reserved = cpu_to_le16(1);
	refused(n, CTL_LIST_PAGE);
	n = pack(&m);
	res->error = cpu_to_le32(5);
	refused(n, CTL_LIST_PAGE);
	n = pack(&m);
	h->magic ^= 1;
	refused(n, CTL_LIST_PAGE);
	n = pack(&m);
	h->flags = cpu_to_le16(1);
	refused(n, CTL_LIST_PAGE);
	/* A header announcing a huge body. */
	n = pack(&m);
	h->length = cpu_to_le32(CTL_MAX_BODY + 1);
	refused(n, CTL_LIST_PAGE);
	/* A kernel message type on the control path. */
	n = pack(&m);
	h->type = cpu_to_le16(DDSNAP_MSG_ORIGIN_WRITE);
	refused(n, CTL_LIST_PAGE);

	/* Changelist chunks must strictly increase. */
	chunks_in[0] = 5;
	chunks_in[1] = 5;
	m = (struct ctl_msg){.type = CTL_CHANGELIST | DDSNAP_MSG_REPLY,
			     .count = 2,
			     .chunk_bits = 14,
			     .chunks = chunks_in};
	refused(pack(&m), CTL_CHANGELIST_PAGE);
	/* A tag beyond the tag space: both reserved values (issue 16: 4294967294 was taken). */
	m = (struct ctl_msg){.type = CTL_CREATE, .tag = DDSNAP_TAG_ORIGIN};
	refused(pack(&m), 0);
	m = (struct ctl_msg){.type = CTL_CREATE, .tag = DDSNAP_TAG_HEAD};
	refused(pack(&m), 0);
	/* a received snapshot's provenance with gen 0 */
	m = (struct ctl_msg){.type = CTL_CREATE, .tag = 3, .has_origin = true, .origin_gen = 0};
	refused(pack(&m), 0);
	m = (struct ctl_msg){.type = CTL_DELETE, .tag = DDSNAP_TAG_MAX + 1};
	refused(pack(&m), 0);
	/* A changelist whose target is 'none', or whose source is the live origin. */
	m = (struct ctl_msg){.type = CTL_CHANGELIST, .from = 1, .to = DDSNAP_TAG_NONE};
	refused(pack(&m), 0);
	m = (struct ctl_msg){.type = CTL_CHANGELIST, .from = DDSNAP_TAG_HEAD, .to = 1};
	refused(pack(&m), 0);
	/* A hello reply with an impossible chunk size. */
	m = (struct ctl_msg){.type = CTL_HELLO | DDSNAP_MSG_REPLY, .chunk_bits = 40};
	refused(pack(&m), 0);
}

static void test_ctl__names(void **state)
{
	assert_string_equal(ctl_type_name(CTL_CREATE), "CREATE");
	assert_string_equal(ctl_type_name(CTL_SYNC | DDSNAP_MSG_REPLY), "SYNC|REPLY");
	assert_string_equal(ctl_type_name(CTL_REVERT), "REVERT");
	assert_string_equal(ctl_type_name(CTL_REVERT | DDSNAP_MSG_REPLY), "REVERT|REPLY");
	assert_string_equal(ctl_type_name(0x7777), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctl__round_trips),
		cmocka_unit_test(test_ctl__pack_refuses_unencodable),
		cmocka_unit_test(test_ctl__malformed),
		cmocka_unit_test(test_ctl__names),
	};

	return cmocka_run_group_tests_name("ctl", tests, NULL, NULL);
}
