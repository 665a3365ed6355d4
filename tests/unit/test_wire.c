// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_wire.c - the wire codec: round trips of every message type, canonical encoding,
 * framing of partial input, every malformed case the decoder must refuse (each with a valid
 * header so that only the rule under test is broken), reply matching, and random mutations
 * of valid messages (the decoder either refuses them or they re-encode to the same bytes).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "proto/wire.h"

static u8 buf[WIRE_MAX_MSG + 64];

/* A valid message of each type, built on a zeroed struct so memcmp compares them. */
static void make_msg(struct wire_msg *m, u16 type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->seq = 0x01020304u + type;
	switch (type) {
	case DDSNAP_MSG_IDENTIFY:
		m->identify.version = DDSNAP_WIRE_VERSION;
		m->identify.tag = 7;
		m->identify.dev_sectors = 131072;
		m->identify.chunk_bits = 16;
		break;
	case DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY:
		m->identify_reply.version = DDSNAP_WIRE_VERSION;
		m->identify_reply.chunk_bits = 12;
		m->identify_reply.state = DDSNAP_STATE_NORMAL;
		m->identify_reply.gen = 0x1122334455667788ull;
		m->identify_reply.dev_sectors = 131072;
		break;
	case DDSNAP_MSG_ORIGIN_WRITE:
	case DDSNAP_MSG_SNAPSHOT_READ:
	case DDSNAP_MSG_SNAPSHOT_WRITE:
		m->query.nr = 3;
		m->query.r[0] = (struct wire_range){.chunk = 5, .count = 1};
		m->query.r[1] = (struct wire_range){.chunk = 100, .count = 4};
		m->query.r[2] = (struct wire_range){.chunk = DDSNAP_WIRE_MAX_CHUNK - 2, .count = 2};
		if (type == DDSNAP_MSG_SNAPSHOT_WRITE)
			m->query.r[1].flags = DDSNAP_RANGE_WHOLE;
		if (type == DDSNAP_MSG_SNAPSHOT_READ)
			m->query.r[2].flags = DDSNAP_RANGE_AHEAD;
		break;
	case DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY:
		m->origin_reply.nr = 2;
		m->origin_reply.gen = 9;
		m->origin_reply.r[0] = (struct wire_range_status){.chunk = 5, .count = 1};
		m->origin_reply.r[1] =
			(struct wire_range_status){.chunk = 100, .count = 4, .error = -ENOSPC};
		break;
	case DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY:
	case DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY:
		m->map_reply.nr = 3;
		m->map_reply.m[0] =
			(struct wire_mapping){.chunk = 5, .addr = 77, .where = DDSNAP_MAP_PRIVATE};
		m->map_reply.m[1] =
			(struct wire_mapping){.chunk = 6, .where = DDSNAP_MAP_ERROR, .error = -EIO};
		if (type & DDSNAP_MSG_SNAPSHOT_READ & ~DDSNAP_MSG_SNAPSHOT_WRITE)
			m->map_reply.m[2] = (struct wire_mapping){
				.chunk = 7, .lock = 0xabcdef, .where = DDSNAP_MAP_ORIGIN};
		else
			m->map_reply.m[2] = (struct wire_mapping){
				.chunk = 7, .addr = 1, .where = DDSNAP_MAP_SHARED};
		break;
	case DDSNAP_MSG_FINISH:
		m->finish.nr = 2;
		m->finish.lock[0] = 1;
		m->finish.lock[1] = ~0ull;
		break;
	case DDSNAP_MSG_DROP_CACHE:
		m->drop.reason = DDSNAP_DROP_SNAPSHOT_GONE;
		m->drop.state = DDSNAP_STATE_INVALID;
		m->drop.gen = 42;
		break;
	case DDSNAP_MSG_DROP_CACHE | DDSNAP_MSG_REPLY:
		m->drop_reply.gen = 42;
		break;
	case DDSNAP_MSG_PING:
	case DDSNAP_MSG_PING | DDSNAP_MSG_REPLY:
		m->ping.nonce = 0xfeedface;
		m->ping.gen = type & DDSNAP_MSG_REPLY ? 3 : 0;
		m->ping.inflight = type & DDSNAP_MSG_REPLY ? 12 : 0;
		break;
	case DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY:
		m->error.error = -EPROTO;
		m->error.culprit = DDSNAP_MSG_ORIGIN_WRITE;
		m->error.len = 5;
		memcpy(m->error.text, "oops!", 6);
		break;
	default:
		fail_msg("no sample of type %#x", type);
	}
}

static const u16 all_types[] = {
	DDSNAP_MSG_IDENTIFY,
	DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY,
	DDSNAP_MSG_ORIGIN_WRITE,
	DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY,
	DDSNAP_MSG_SNAPSHOT_READ,
	DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY,
	DDSNAP_MSG_SNAPSHOT_WRITE,
	DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY,
	DDSNAP_MSG_FINISH,
	DDSNAP_MSG_DROP_CACHE,
	DDSNAP_MSG_DROP_CACHE | DDSNAP_MSG_REPLY,
	DDSNAP_MSG_PING,
	DDSNAP_MSG_PING | DDSNAP_MSG_REPLY,
	DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY,
};

static size_t pack_ok(const struct wire_msg *m)
{
	const char *why = NULL;
	ssize_t n = wire_pack(m, buf, sizeof(buf), &why);

	if (n < 0)
		fail_msg("pack %s: %s", wire_type_name(m->type), why);
	return (size_t)n;
}

/* Expect wire_unpack of buf[0..n) to fail with -EPROTO and a reason containing @reason. */
static void expect_refused(size_t n, const char *reason)
{
	static struct wire_msg out;
	const char *why = NULL;
	int r = wire_unpack(buf, n, &out, &why);

	assert_int_equal(r, -EPROTO);
	assert_non_null(why);
	if (!strstr(why, reason))
		fail_msg("refused for '%s', expected '%s'", why, reason);
}

static void put32(size_t off, u32 v)
{
	__le32 w = cpu_to_le32(v);

	memcpy(buf + off, &w, 4);
}

static void put64(size_t off, u64 v)
{
	__le64 w = cpu_to_le64(v);

	memcpy(buf + off, &w, 8);
}

static void put16(size_t off, u16 v)
{
	__le16 w = cpu_to_le16(v);

	memcpy(buf + off, &w, 2);
}

#define H WIRE_HEAD_SIZE

/*----------------------------------------------------------------*/

static void test_wire__round_trip_every_type(void **state)
{
	static struct wire_msg in, out;
	static u8 again[WIRE_MAX_MSG];

	for (size_t i = 0; i < ARRAY_SIZE(all_types); i++) {
		const char *why = NULL;
		size_t n;

		make_msg(&in, all_types[i]);
		n = pack_ok(&in);
		if (wire_unpack(buf, n, &out, &why))
			fail_msg("unpack %s: %s", wire_type_name(in.type), why);
		assert_memory_equal(&in, &out, sizeof(in));
		assert_int_equal(wire_pack(&out, again, sizeof(again), &why), (ssize_t)n);
		assert_memory_equal(buf, again, n);
		assert_string_not_equal(wire_type_name(in.type), "UNKNOWN");
	}
}

static void test_wire__header_layout_is_little_endian(void **state)
{
	static struct wire_msg m;
	static const u8 expect[16] = {'D',  'D',  'S',	'N',  0x07, 0x80, 0, 0,
				      0x0b, 0x83, 0x02, 0x01, 24,   0,	  0, 0};

	make_msg(&m, DDSNAP_MSG_PING | DDSNAP_MSG_REPLY);
	assert_int_equal(pack_ok(&m), 16 + 24);
	assert_memory_equal(buf, expect, sizeof(expect));
}

static void test_wire__largest_messages_fit(void **state)
{
	static struct wire_msg m, out;
	const char *why = NULL;

	memset(&m, 0, sizeof(m));
	m.type = DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY;
	m.map_reply.nr = DDSNAP_WIRE_MAX_CHUNKS;
	for (u32 i = 0; i < m.map_reply.nr; i++)
		m.map_reply.m[i] = (struct wire_mapping){.chunk = i, .addr = i, .where = 2};
	assert_int_equal(pack_ok(&m), WIRE_MAX_MSG);
	assert_int_equal(wire_unpack(buf, WIRE_MAX_MSG, &out, &why), 0);

	memset(&m, 0, sizeof(m));
	m.type = DDSNAP_MSG_FINISH;
	m.finish.nr = DDSNAP_WIRE_MAX_LOCKS;
	for (u32 i = 0; i < m.finish.nr; i++)
		m.finish.lock[i] = i + 1;
	assert_int_equal(wire_unpack(buf, pack_ok(&m), &out, &why), 0);

	memset(&m, 0, sizeof(m));
	m.type = DDSNAP_MSG_ORIGIN_WRITE;
	m.query.nr = DDSNAP_WIRE_MAX_RANGES;
	for (u32 i = 0; i < m.query.nr; i++)
		m.query.r[i] = (struct wire_range){.chunk = 10 * i, .count = 4};
	assert_int_equal(wire_query_chunks(&m), DDSNAP_WIRE_MAX_CHUNKS);
	assert_int_equal(wire_unpack(buf, pack_ok(&m), &out, &why), 0);
}

static void test_wire__frame_partial_input(void **state)
{
	static struct wire_msg m;
	const char *why = NULL;
	size_t n, total = 0;

	make_msg(&m, DDSNAP_MSG_ORIGIN_WRITE);
	n = pack_ok(&m);
	for (size_t len = 0; len < H; len++) {
		assert_int_equal(wire_frame(buf, len, &total, &why), -EWOULDBLOCK);
		assert_int_equal(total, H);
	}
	for (size_t len = H; len < n; len++) {
		assert_int_equal(wire_frame(buf, len, &total, &why), -EWOULDBLOCK);
		assert_int_equal(total, n);
	}
	assert_int_equal(wire_frame(buf, n, &total, &why), 0);
	assert_int_equal(total, n);
	/* two messages back to back: the frame is the first one */
	memcpy(buf + n, buf, n);
	assert_int_equal(wire_frame(buf, 2 * n, &total, &why), 0);
	assert_int_equal(total, n);
	expect_refused(n - 1, "truncated");
	expect_refused(n + 1, "bytes after");
}

static void test_wire__bad_headers(void **state)
{
	static struct wire_msg m;
	size_t n, total;
	const char *why;

	make_msg(&m, DDSNAP_MSG_PING);
	n = pack_ok(&m);
	put32(0, 0x4e534445);
	expect_refused(n, "magic");
	assert_int_equal(wire_frame(buf, 4, &total, &why), -EWOULDBLOCK);

	n = pack_ok(&m);
	put16(6, 1);
	expect_refused(n, "flags");

	static const u16 bad_types[] = {0,
					0x0009,
					0x7fff,
					DDSNAP_MSG_ERROR,
					DDSNAP_MSG_FINISH | DDSNAP_MSG_REPLY,
					DDSNAP_MSG_REPLY,
					0xffff};
	for (size_t i = 0; i < ARRAY_SIZE(bad_types); i++) {
		n = pack_ok(&m);
		put16(4, bad_types[i]);
		expect_refused(n, "unknown message type");
		assert_string_equal(wire_type_name(bad_types[i]), "UNKNOWN");
	}

	/* a huge announced length is refused from the header alone */
	n = pack_ok(&m);
	put32(12, 0xffffffffu);
	assert_int_equal(wire_frame(buf, H, &total, &why), -EPROTO);
	put32(12, DDSNAP_WIRE_MAX_BODY + 1);
	assert_int_equal(wire_frame(buf, H, &total, &why), -EPROTO);

	/* fixed-size bodies must have exactly their size */
	n = pack_ok(&m);
	put32(12, 23);
	expect_refused(n - 1, "shorter than");
	put32(12, 25);
	buf[n] = 0;
	expect_refused(n + 1, "does not match its type");
}

static void test_wire__bad_body_lengths(void **state)
{
	static struct wire_msg m;
	size_t n;

	make_msg(&m, DDSNAP_MSG_ORIGIN_WRITE);
	n = pack_ok(&m);
	put32(12, 4); /* shorter than the fixed part */
	expect_refused(H + 4, "shorter than");
	n = pack_ok(&m);
	put32(12, (u32)(n - H - 1)); /* not a whole number of ranges */
	expect_refused(n - 1, "whole number");
	n = pack_ok(&m);
	put32(H, 2); /* count says 2, body holds 3 */
	expect_refused(n, "count does not match");
	n = pack_ok(&m);
	put32(H, 0);
	put32(12, 8); /* a query of zero ranges */
	expect_refused(H + 8, "out of bounds");

	make_msg(&m, DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY);
	n = pack_ok(&m);
	put16(H + 6, 4);
	expect_refused(n, "text length");

	make_msg(&m, DDSNAP_MSG_FINISH);
	n = pack_ok(&m);
	put32(H, 3);
	expect_refused(n, "count does not match");

	make_msg(&m, DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY);
	n = pack_ok(&m);
	put32(H, 1);
	expect_refused(n, "count does not match");

	make_msg(&m, DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY);
	n = pack_ok(&m);
	put32(H, 5);
	expect_refused(n, "count does not match");
}

static void test_wire__reserved_fields_refused(void **state)
{
	static struct wire_msg m;
	static const struct {
		u16 type;
		size_t off;
	} cases[] = {
		{DDSNAP_MSG_IDENTIFY, 20},
		{DDSNAP_MSG_ORIGIN_WRITE, 4},
		{DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY, 4},
		{DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY, 4},
		{DDSNAP_MSG_FINISH, 4},
		{DDSNAP_MSG_DROP_CACHE | DDSNAP_MSG_REPLY, 4},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t n;

		make_msg(&m, cases[i].type);
		n = pack_ok(&m);
		put32(H + cases[i].off, 1);
		expect_refused(n, "reserved");
	}
}

static void test_wire__bad_ranges(void **state)
{
	static struct wire_msg m;
	size_t n;

	make_msg(&m, DDSNAP_MSG_SNAPSHOT_READ);
	n = pack_ok(&m);
	put32(H + 8 + 8, 0); /* first range count 0 */
	expect_refused(n, "zero chunks");

	n = pack_ok(&m);
	put64(H + 8 + 32, DDSNAP_WIRE_MAX_CHUNK - 1); /* last range runs past the end */
	expect_refused(n, "beyond the largest chunk");

	n = pack_ok(&m);
	put64(H + 8 + 32, ~0ull - 1); /* chunk + count wraps around */
	expect_refused(n, "beyond the largest chunk");

	n = pack_ok(&m);
	put32(H + 8 + 12, DDSNAP_RANGE_WHOLE); /* WHOLE outside SNAPSHOT_WRITE */
	expect_refused(n, "RANGE_WHOLE");

	n = pack_ok(&m);
	put32(H + 8 + 12, DDSNAP_RANGE_AHEAD); /* a read-ahead range first */
	expect_refused(n, "starts with a RANGE_AHEAD range");

	n = pack_ok(&m);
	put32(H + 8 + 16 + 12, DDSNAP_RANGE_AHEAD); /* read-ahead, then a range without it */
	put32(H + 8 + 32 + 12, 0);
	expect_refused(n, "RANGE_AHEAD range before a range without it");

	n = pack_ok(&m);
	put32(H + 8 + 32 + 12, DDSNAP_RANGE_AHEAD | DDSNAP_RANGE_WHOLE);
	expect_refused(n, "unknown or combined flags");

	make_msg(&m, DDSNAP_MSG_SNAPSHOT_WRITE);
	n = pack_ok(&m);
	put32(H + 8 + 12, 4);
	expect_refused(n, "unknown or combined flags");

	n = pack_ok(&m);
	put32(H + 8 + 32 + 12, DDSNAP_RANGE_AHEAD); /* read-ahead in a write */
	expect_refused(n, "RANGE_AHEAD outside SNAPSHOT_READ");

	make_msg(&m, DDSNAP_MSG_ORIGIN_WRITE);
	n = pack_ok(&m);
	put32(H + 8 + 32 + 12, DDSNAP_RANGE_AHEAD);
	expect_refused(n, "RANGE_AHEAD outside SNAPSHOT_READ");

	make_msg(&m, DDSNAP_MSG_SNAPSHOT_WRITE);

	n = pack_ok(&m);
	put32(H + 8 + 8, DDSNAP_WIRE_MAX_CHUNKS); /* 256 + 4 + 2 chunks in all */
	expect_refused(n, "too many chunks");

	make_msg(&m, DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY);
	n = pack_ok(&m);
	put32(H + 16 + 12, 5); /* a positive error */
	expect_refused(n, "negative errno");
	n = pack_ok(&m);
	put32(H + 16 + 12, (u32)-5000);
	expect_refused(n, "negative errno");
	n = pack_ok(&m);
	put32(H + 16 + 8, 0);
	expect_refused(n, "zero chunks");
}

static void test_wire__bad_mappings(void **state)
{
	static struct wire_msg m;
	/* offsets inside mapping entry 0 (PRIVATE), 1 (ERROR) and 2 (ORIGIN for reads) */
	const size_t e0 = H + 8, e1 = e0 + 32, e2 = e1 + 32;
	const u16 rd = DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY;
	const u16 wr = DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY;
	size_t n;

	make_msg(&m, rd);
	n = pack_ok(&m);
	put32(e0 + 24, 0);
	expect_refused(n, "kind unknown");
	n = pack_ok(&m);
	put32(e0 + 24, 5);
	expect_refused(n, "kind unknown");
	n = pack_ok(&m);
	put64(e0 + 16, 3); /* snapstore mapping with a lock */
	expect_refused(n, "with lock or error");
	n = pack_ok(&m);
	put64(e0 + 8, DDSNAP_WIRE_MAX_CHUNK);
	expect_refused(n, "snapstore address beyond");
	n = pack_ok(&m);
	put32(e1 + 28, 0); /* error mapping without errno */
	expect_refused(n, "without a negative errno");
	n = pack_ok(&m);
	put64(e1 + 8, 9);
	expect_refused(n, "error mapping with address");
	n = pack_ok(&m);
	put64(e2 + 8, 9); /* origin mapping with an address */
	expect_refused(n, "origin mapping with address");
	n = pack_ok(&m);
	put64(e2, DDSNAP_WIRE_MAX_CHUNK);
	expect_refused(n, "mapping chunk beyond");

	make_msg(&m, wr);
	n = pack_ok(&m);
	put32(e2 + 24, DDSNAP_MAP_ORIGIN);
	put64(e2 + 8, 0);
	expect_refused(n, "origin mapping in a write reply");
}

static void test_wire__bad_small_messages(void **state)
{
	static struct wire_msg m;
	size_t n;

	make_msg(&m, DDSNAP_MSG_FINISH);
	n = pack_ok(&m);
	put64(H + 8, 0);
	expect_refused(n, "lock id 0");

	make_msg(&m, DDSNAP_MSG_DROP_CACHE);
	for (u32 reason = DDSNAP_DROP_NEW_SNAPSHOT; reason <= DDSNAP_DROP_ORIGIN_CHANGED;
	     reason++) {
		static struct wire_msg out;
		const char *why = NULL;

		m.drop.reason = reason;
		assert_int_equal(wire_unpack(buf, pack_ok(&m), &out, &why), 0);
		assert_int_equal(out.drop.reason, reason);
	}
	n = pack_ok(&m);
	put32(H, 0);
	expect_refused(n, "reason unknown");
	n = pack_ok(&m);
	put32(H, DDSNAP_DROP_ORIGIN_CHANGED + 1);
	expect_refused(n, "reason unknown");
	n = pack_ok(&m);
	put32(H + 4, 2);
	expect_refused(n, "state unknown");

	make_msg(&m, DDSNAP_MSG_DROP_CACHE | DDSNAP_MSG_REPLY);
	n = pack_ok(&m);
	put32(H, 1);
	expect_refused(n, "negative errno");

	make_msg(&m, DDSNAP_MSG_IDENTIFY);
	n = pack_ok(&m);
	put64(H + 8, 0);
	expect_refused(n, "empty device");
	n = pack_ok(&m);
	put32(H + 16, 11);
	expect_refused(n, "chunk size");
	n = pack_ok(&m);
	put32(H + 16, 0); /* 0 = take the server's: fine */
	{
		static struct wire_msg out;
		const char *why;

		assert_int_equal(wire_unpack(buf, n, &out, &why), 0);
	}

	make_msg(&m, DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY);
	n = pack_ok(&m);
	put32(H + 8, 21);
	expect_refused(n, "chunk size");
	n = pack_ok(&m);
	put32(H + 12, 2);
	expect_refused(n, "state unknown");
	n = pack_ok(&m);
	put32(H, 7);
	expect_refused(n, "negative errno");
	n = pack_ok(&m);
	put32(H, (u32)-ENOENT); /* an error reply needs no chunk size */
	put32(H + 8, 0);
	{
		static struct wire_msg out;
		const char *why;

		assert_int_equal(wire_unpack(buf, n, &out, &why), 0);
		assert_int_equal(out.identify_reply.error, -ENOENT);
	}

	make_msg(&m, DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY);
	n = pack_ok(&m);
	put32(H, 0);
	expect_refused(n, "negative errno");
	n = pack_ok(&m);
	put16(H + 4, 0x0042);
	expect_refused(n, "culprit");
}

static void test_wire__pack_refuses_invalid(void **state)
{
	static struct wire_msg m;
	const char *why = NULL;

	make_msg(&m, DDSNAP_MSG_ORIGIN_WRITE);
	m.query.nr = DDSNAP_WIRE_MAX_RANGES + 1;
	assert_int_equal(wire_pack(&m, buf, sizeof(buf), &why), -EINVAL);
	assert_non_null(why);
	make_msg(&m, DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY);
	m.error.len = DDSNAP_WIRE_MAX_TEXT + 1;
	assert_int_equal(wire_pack(&m, buf, sizeof(buf), &why), -EINVAL);
	m.type = DDSNAP_MSG_ERROR;
	assert_int_equal(wire_pack(&m, buf, sizeof(buf), &why), -EINVAL);
	make_msg(&m, DDSNAP_MSG_PING);
	assert_int_equal(wire_pack(&m, buf, H + 23, &why), -ENOSPC);
	assert_int_equal(wire_pack(&m, buf, H + 24, &why), H + 24);
}

static void test_wire__reply_matching(void **state)
{
	static struct wire_msg q, r;
	const char *why = NULL;

	make_msg(&q, DDSNAP_MSG_SNAPSHOT_READ);
	memset(&r, 0, sizeof(r));
	r.type = DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY;
	r.seq = q.seq;
	for (u32 i = 0; i < q.query.nr; i++)
		for (u32 c = 0; c < q.query.r[i].count; c++)
			r.map_reply.m[r.map_reply.nr++] = (struct wire_mapping){
				.chunk = q.query.r[i].chunk + c, .where = DDSNAP_MAP_ORIGIN};
	assert_int_equal(wire_query_chunks(&q), 7);
	assert_int_equal(wire_validate(&r, &why), 0);
	assert_int_equal(wire_check_reply(&q, &r, &why), 0);
	r.map_reply.m[3].chunk++;
	assert_int_equal(wire_check_reply(&q, &r, &why), -EPROTO);
	r.map_reply.m[3].chunk--;
	r.map_reply.nr--;
	assert_int_equal(wire_check_reply(&q, &r, &why), -EPROTO);
	r.map_reply.nr++;
	r.seq++;
	assert_int_equal(wire_check_reply(&q, &r, &why), -EPROTO);
	r.seq--;
	r.type = DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY;
	assert_int_equal(wire_check_reply(&q, &r, &why), -EPROTO);
	make_msg(&r, DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY);
	r.seq = q.seq;
	assert_int_equal(wire_check_reply(&q, &r, &why), 0);

	make_msg(&q, DDSNAP_MSG_ORIGIN_WRITE);
	memset(&r, 0, sizeof(r));
	r.type = DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY;
	r.seq = q.seq;
	r.origin_reply.nr = q.query.nr;
	for (u32 i = 0; i < q.query.nr; i++)
		r.origin_reply.r[i] = (struct wire_range_status){.chunk = q.query.r[i].chunk,
								 .count = q.query.r[i].count};
	assert_int_equal(wire_check_reply(&q, &r, &why), 0);
	r.origin_reply.r[1].count++;
	assert_int_equal(wire_check_reply(&q, &r, &why), -EPROTO);
}

/*
 * Random mutations of valid messages: the decoder must never crash, and whatever it accepts
 * must re-encode to exactly the same bytes (one encoding per message).
 */
static void test_wire__mutations_are_refused_or_canonical(void **state)
{
	static struct wire_msg m, out;
	static u8 again[WIRE_MAX_MSG];
	unsigned int seed = 12345, accepted = 0, refused = 0;

	srandom(seed);
	for (int trial = 0; trial < 200000; trial++) {
		const char *why = NULL;
		size_t n;
		int flips;

		make_msg(&m, all_types[(size_t)random() % ARRAY_SIZE(all_types)]);
		n = pack_ok(&m);
		flips = 1 + (int)(random() % 3);
		for (int f = 0; f < flips; f++)
			buf[(size_t)random() % n] ^= (u8)(1u << (random() % 8));
		if (random() % 8 == 0)
			n = (size_t)random() % (n + 1);
		if (wire_unpack(buf, n, &out, &why) == 0) {
			accepted++;
			if (wire_pack(&out, again, sizeof(again), &why) != (ssize_t)n ||
			    memcmp(buf, again, n))
				fail_msg("seed %u trial %d: accepted message is not canonical",
					 seed, trial);
		} else {
			assert_non_null(why);
			refused++;
		}
	}
	assert_true(accepted > 1000);
	assert_true(refused > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire__round_trip_every_type),
		cmocka_unit_test(test_wire__header_layout_is_little_endian),
		cmocka_unit_test(test_wire__largest_messages_fit),
		cmocka_unit_test(test_wire__frame_partial_input),
		cmocka_unit_test(test_wire__bad_headers),
		cmocka_unit_test(test_wire__bad_body_lengths),
		cmocka_unit_test(test_wire__reserved_fields_refused),
		cmocka_unit_test(test_wire__bad_ranges),
		cmocka_unit_test(test_wire__bad_mappings),
		cmocka_unit_test(test_wire__bad_small_messages),
		cmocka_unit_test(test_wire__pack_refuses_invalid),
		cmocka_unit_test(test_wire__reply_matching),
		cmocka_unit_test(test_wire__mutations_are_refused_or_canonical),
	};

	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
