// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_kproto.c - the kernel target's own codec (kernel/ddsnap-proto.c, compiled here through
 * tests/unit/kshim) against the rules of doc/protocol.md and against the server's codec
 * (server/proto/wire.c):
 *  - batching: which range or mapping entry answers each bio, merging of contained and
 *    continuing origin bios, separate entries for snapshot bios, the wire's bounds;
 *  - what the kernel encodes, the server decodes to the same query;
 *  - what the server encodes (every reply kind), the kernel decodes to the same values;
 *  - every malformation the kernel must refuse, each with its reason.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "ddsnap-proto.h"
#include "proto/wire.h"

#define HEAD sizeof(struct ddsnap_head_wire)

static void test_kproto__origin_batches_share_ranges(void **state)
{
	struct ddsnap_query q = {0};
	const u16 t = DDSNAP_MSG_ORIGIN_WRITE;

	assert_int_equal(ddsnap_proto_batch_add(&q, t, 10, 1, 0), 0);
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 11, 1, 0), 0); /* continues: extends */
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 10, 1, 0), 0); /* inside: shares */
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 50, 4, 0), 1);
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 51, 2, 0), 1);
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 11, 1, 0), 0); /* inside an older range */
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 12, 1, 0), 2); /* neither: a new range */
	assert_int_equal(q.nr, 3);
	assert_int_equal(q.r[0].chunk, 10);
	assert_int_equal(q.r[0].count, 2);
	assert_int_equal(q.r[1].chunk, 50);
	assert_int_equal(q.r[1].count, 4);
	assert_int_equal(q.total, 7);
	assert_int_equal(ddsnap_proto_batch_replies(&q, t), 3);
}

static void test_kproto__snapshot_batches_keep_own_entries(void **state)
{
	struct ddsnap_query q = {0};
	const u16 r = DDSNAP_MSG_SNAPSHOT_READ, w = DDSNAP_MSG_SNAPSHOT_WRITE;

	assert_int_equal(ddsnap_proto_batch_add(&q, r, 5, 1, 0), 0);
	assert_int_equal(ddsnap_proto_batch_add(&q, r, 6, 1, 0), 1); /* extends, own entry */
	assert_int_equal(ddsnap_proto_batch_add(&q, r, 5, 1, 0), 2); /* twice: own entry */
	assert_int_equal(q.nr, 2);
	assert_int_equal(q.r[0].count, 2);
	assert_int_equal(ddsnap_proto_batch_replies(&q, r), 3);

	memset(&q, 0, sizeof(q));
	assert_int_equal(ddsnap_proto_batch_add(&q, w, 8, 1, DDSNAP_RANGE_WHOLE), 0);
	assert_int_equal(ddsnap_proto_batch_add(&q, w, 9, 1, 0), 1); /* other flags: new range */
	assert_int_equal(ddsnap_proto_batch_add(&q, w, 10, 1, 0), 2);
	assert_int_equal(q.nr, 2);
	assert_int_equal(q.r[0].flags, DDSNAP_RANGE_WHOLE);
	assert_int_equal(q.r[1].count, 2);
}

static void test_kproto__batches_respect_the_wire_bounds(void **state)
{
	struct ddsnap_query q = {0};
	const u16 t = DDSNAP_MSG_ORIGIN_WRITE;

	for (u32 i = 0; i < DDSNAP_WIRE_MAX_RANGES; i++)
		assert_int_equal(ddsnap_proto_batch_add(&q, t, i * 10, 1, 0), (int)i);
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 5, 1, 0), -1);	/* a 65th range */
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 630, 1, 0), 63); /* already asked */
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 631, 1, 0), 63); /* extends the last */

	memset(&q, 0, sizeof(q));
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 0, 200, 0), 0);
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 300, 57, 0), -1); /* 257 chunks */
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 300, 56, 0), 1);
	assert_int_equal(q.total, DDSNAP_WIRE_MAX_CHUNKS);
	assert_int_equal(ddsnap_proto_batch_add(&q, t, 0, 0, 0), -1); /* an empty bio: refused */
}

static void test_kproto__server_decodes_kernel_queries(void **state)
{
	struct ddsnap_query q = {0};
	u8 buf[4096];
	struct wire_msg *m = calloc(1, sizeof(*m));
	const char *why = NULL;
	size_t n;

	ddsnap_proto_batch_add(&q, DDSNAP_MSG_SNAPSHOT_WRITE, 7, 1, DDSNAP_RANGE_WHOLE);
	ddsnap_proto_batch_add(&q, DDSNAP_MSG_SNAPSHOT_WRITE, 1000, 1, 0);
	ddsnap_proto_batch_add(&q, DDSNAP_MSG_SNAPSHOT_WRITE, 1001, 1, 0);
	n = ddsnap_proto_query(buf, DDSNAP_MSG_SNAPSHOT_WRITE, 99, &q);
	if (wire_unpack(buf, n, m, &why))
		fail_msg("server refused the kernel's query: %s", why);
	assert_int_equal(m->type, DDSNAP_MSG_SNAPSHOT_WRITE);
	assert_int_equal(m->seq, 99);
	assert_int_equal(m->query.nr, 2);
	assert_int_equal(m->query.r[0].chunk, 7);
	assert_int_equal(m->query.r[0].flags, DDSNAP_RANGE_WHOLE);
	assert_int_equal(m->query.r[1].chunk, 1000);
	assert_int_equal(m->query.r[1].count, 2);
	free(m);
}

/* A read-ahead range follows the bios' ranges, is clipped to the wire, and the server takes it. */
static void test_kproto__read_ahead_range(void **state)
{
	const u16 r = DDSNAP_MSG_SNAPSHOT_READ;
	struct ddsnap_query q = {0};
	struct wire_msg *m = calloc(1, sizeof(*m));
	const char *why = NULL;
	u8 buf[4096];
	size_t n;

	assert_int_equal(ddsnap_proto_batch_ahead(&q, 10, 64), -1); /* no bio's range yet */
	assert_int_equal(ddsnap_proto_batch_add(&q, r, 5, 1, 0), 0);
	assert_int_equal(ddsnap_proto_batch_add(&q, r, 6, 200, 0), 1);
	assert_int_equal(ddsnap_proto_batch_ahead(&q, 206, 64), 201); /* 55 chunks fit */
	assert_int_equal(q.nr, 2);
	assert_int_equal(q.r[1].chunk, 206);
	assert_int_equal(q.r[1].count, DDSNAP_WIRE_MAX_CHUNKS - 201);
	assert_int_equal(q.r[1].flags, DDSNAP_RANGE_AHEAD);
	assert_int_equal(ddsnap_proto_batch_replies(&q, r), DDSNAP_WIRE_MAX_CHUNKS);
	assert_int_equal(ddsnap_proto_batch_ahead(&q, 300, 1), -1); /* the wire is full */

	n = ddsnap_proto_query(buf, r, 7, &q);
	if (wire_unpack(buf, n, m, &why))
		fail_msg("server refused the kernel's read-ahead query: %s", why);
	assert_int_equal(m->query.nr, 2);
	assert_int_equal(m->query.r[1].chunk, 206);
	assert_int_equal(m->query.r[1].flags, DDSNAP_RANGE_AHEAD);

	memset(&q, 0, sizeof(q));
	for (u32 i = 0; i < DDSNAP_WIRE_MAX_RANGES; i++)
		ddsnap_proto_batch_add(&q, r, i * 10, 1, 0);
	assert_int_equal(ddsnap_proto_batch_ahead(&q, 1000, 8), -1); /* no range left */
	free(m);
}

/* Server-encoded @m, decoded by the kernel: 0 or the kernel's -EPROTO with *why. */
static int kdecode(const u8 *buf, size_t n, struct ddsnap_msg *k, const char **why)
{
	u16 type;
	u32 seq, len;
	int r = ddsnap_proto_head((const struct ddsnap_head_wire *)buf, &type, &seq, &len, why);

	if (r)
		return r;
	assert_int_equal(HEAD + len, n);
	return ddsnap_proto_unpack(type, seq, buf + HEAD, len, k, why);
}

static size_t spack(const struct wire_msg *m, u8 *buf)
{
	const char *why = NULL;
	ssize_t n = wire_pack(m, buf, WIRE_MAX_MSG, &why);

	if (n < 0)
		fail_msg("wire_pack: %s", why);
	return (size_t)n;
}

static struct wire_msg *origin_reply(void)
{
	struct wire_msg *m = calloc(1, sizeof(*m));

	m->type = DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY;
	m->seq = 5;
	m->origin_reply.nr = 3;
	m->origin_reply.gen = 42;
	m->origin_reply.r[0] = (struct wire_range_status){10, 2, 0};
	m->origin_reply.r[1] = (struct wire_range_status){50, 4, -ENOSPC};
	m->origin_reply.r[2] = (struct wire_range_status){12, 1, 0};
	return m;
}

static struct wire_msg *map_reply(void)
{
	struct wire_msg *m = calloc(1, sizeof(*m));

	m->type = DDSNAP_MSG_SNAPSHOT_READ | DDSNAP_MSG_REPLY;
	m->seq = 6;
	m->map_reply.nr = 4;
	m->map_reply.m[0] =
		(struct wire_mapping){.chunk = 1, .where = DDSNAP_MAP_ORIGIN, .lock = 77};
	m->map_reply.m[1] =
		(struct wire_mapping){.chunk = 2, .where = DDSNAP_MAP_SHARED, .addr = 9};
	m->map_reply.m[2] =
		(struct wire_mapping){.chunk = 3, .where = DDSNAP_MAP_PRIVATE, .addr = 8};
	m->map_reply.m[3] =
		(struct wire_mapping){.chunk = 4, .where = DDSNAP_MAP_ERROR, .error = -EIO};
	return m;
}

static void test_kproto__kernel_decodes_server_replies(void **state)
{
	u8 buf[WIRE_MAX_MSG];
	struct wire_msg *m = origin_reply();
	struct ddsnap_msg k;
	struct ddsnap_range r;
	struct ddsnap_mapping p;
	const char *why = NULL;
	size_t n = spack(m, buf);

	assert_int_equal(kdecode(buf, n, &k, &why), 0);
	assert_int_equal(k.seq, 5);
	assert_int_equal(k.origin.gen, 42);
	assert_int_equal(k.origin.nr, 3);
	ddsnap_proto_origin_range(&k, 1, &r);
	assert_int_equal(r.chunk, 50);
	assert_int_equal(r.count, 4);
	assert_int_equal(r.error, -ENOSPC);
	ddsnap_proto_origin_range(&k, 2, &r);
	assert_int_equal(r.chunk, 12);
	assert_int_equal(r.error, 0);
	free(m);

	m = map_reply();
	n = spack(m, buf);
	assert_int_equal(kdecode(buf, n, &k, &why), 0);
	assert_int_equal(k.map.nr, 4);
	ddsnap_proto_mapping(&k, 0, &p);
	assert_int_equal(p.where, DDSNAP_MAP_ORIGIN);
	assert_int_equal(p.lock, 77);
	ddsnap_proto_mapping(&k, 1, &p);
	assert_int_equal(p.where, DDSNAP_MAP_SHARED);
	assert_int_equal(p.addr, 9);
	ddsnap_proto_mapping(&k, 3, &p);
	assert_int_equal(p.where, DDSNAP_MAP_ERROR);
	assert_int_equal(p.error, -EIO);
	free(m);

	m = calloc(1, sizeof(*m));
	m->type = DDSNAP_MSG_DROP_CACHE;
	m->seq = 3;
	m->drop.reason = DDSNAP_DROP_SNAPSHOT_GONE;
	m->drop.gen = 17;
	n = spack(m, buf);
	assert_int_equal(kdecode(buf, n, &k, &why), 0);
	assert_int_equal(k.drop.reason, DDSNAP_DROP_SNAPSHOT_GONE);
	assert_int_equal(k.drop.gen, 17);
	/* Every reason the header defines (the decoder has no version context). */
	for (u32 reason = DDSNAP_DROP_NEW_SNAPSHOT; reason <= DDSNAP_DROP_ORIGIN_CHANGED;
	     reason++) {
		m->drop.reason = reason;
		n = spack(m, buf);
		assert_int_equal(kdecode(buf, n, &k, &why), 0);
		assert_int_equal(k.drop.reason, reason);
	}
	free(m);
}

/* Corrupt one little-endian u32 of a server message at byte @off and expect a refusal. */
static void refuse_u32(struct wire_msg *m, size_t off, u32 v, const char *want)
{
	u8 buf[WIRE_MAX_MSG];
	struct ddsnap_msg k;
	const char *why = NULL;
	size_t n = spack(m, buf);
	__le32 le = htole32(v);

	memcpy(buf + off, &le, 4);
	assert_int_equal(kdecode(buf, n, &k, &why), -EPROTO);
	if (!why || !strstr(why, want))
		fail_msg("refused for \"%s\", expected \"%s\"", why ? why : "(none)", want);
}

static void test_kproto__kernel_refuses_malformed_replies(void **state)
{
	struct wire_msg *o = origin_reply(), *mp = map_reply();
	/* Origin reply body: nr, reserved, gen, then ranges of chunk(8) count(4) error(4). */
	const size_t ob = HEAD, r0 = HEAD + 16;
	/* Map reply body: nr, reserved, then mappings of chunk, addr, lock (8 each), where,
	 * error (4 each). */
	const size_t m0 = HEAD + 8;

	refuse_u32(o, 0, 0x12345678, "bad magic");
	refuse_u32(o, 4, DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY | (1u << 16), "flags");
	refuse_u32(o, 4, 0x7777, "does not accept");
	refuse_u32(o, 12, 5000000, "length");
	refuse_u32(o, ob, 2, "range count does not match");
	refuse_u32(o, ob + 4, 1, "reserved");
	refuse_u32(o, r0 + 8, 0, "out of bounds");	   /* count 0 */
	refuse_u32(o, r0 + 4, 0x10000, "out of bounds");   /* chunk >= 2^48 */
	refuse_u32(o, r0 + 12, 5, "not a negative errno"); /* positive error */
	refuse_u32(mp, m0 + 24, 9, "mapping kind unknown");
	refuse_u32(mp, m0 + 8, 1, "origin mapping with address"); /* addr on ORIGIN: low word */
	refuse_u32(mp, m0 + 32 + 16, 5, "snapstore mapping with lock");
	refuse_u32(mp, 3 * 32 + m0 + 28, 0, "malformed error mapping"); /* ERROR without errno */
	refuse_u32(mp, HEAD, 5, "mapping count does not match");
	/* An origin mapping in a write reply. */
	mp->type = DDSNAP_MSG_SNAPSHOT_WRITE | DDSNAP_MSG_REPLY;
	mp->map_reply.nr = 1;
	mp->map_reply.m[0] = mp->map_reply.m[2]; /* PRIVATE, which the server's codec packs */
	{
		u8 buf[WIRE_MAX_MSG];
		struct ddsnap_msg k;
		const char *why = NULL;
		size_t n = spack(mp, buf); /* then forced to ORIGIN, which it would not pack */
		__le32 le = htole32(DDSNAP_MAP_ORIGIN);

		memcpy(buf + m0 + 24, &le, 4);
		memset(buf + m0 + 8, 0, 8); /* no address */
		assert_int_equal(kdecode(buf, n, &k, &why), -EPROTO);
		assert_non_null(strstr(why, "origin mapping in a write reply"));
	}
	{
		struct wire_msg *d = calloc(1, sizeof(*d));

		d->type = DDSNAP_MSG_DROP_CACHE;
		d->drop.reason = DDSNAP_DROP_ORIGIN_CHANGED;
		refuse_u32(d, HEAD, 0, "reason unknown");
		refuse_u32(d, HEAD, DDSNAP_DROP_ORIGIN_CHANGED + 1, "reason unknown");
		refuse_u32(d, HEAD + 4, DDSNAP_STATE_INVALID + 1, "state unknown");
		free(d);
	}
	free(o);
	free(mp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kproto__origin_batches_share_ranges),
		cmocka_unit_test(test_kproto__snapshot_batches_keep_own_entries),
		cmocka_unit_test(test_kproto__batches_respect_the_wire_bounds),
		cmocka_unit_test(test_kproto__server_decodes_kernel_queries),
		cmocka_unit_test(test_kproto__read_ahead_range),
		cmocka_unit_test(test_kproto__kernel_decodes_server_replies),
		cmocka_unit_test(test_kproto__kernel_refuses_malformed_replies),
	};

	return cmocka_run_group_tests_name("kproto", tests, NULL, NULL);
}
