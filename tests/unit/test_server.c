// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_server.c - ddsnapd end to end on this machine: a real volume (store, engine, intent
 * log) on temporary files, the server on a thread, and the test playing the kernel over
 * the wire protocol and the CLI over the control protocol.
 *
 * What it pins down, each with the data checked byte for byte:
 *  - a copy-out lands where the server says: after an ORIGIN_WRITE reply, a snapshot read
 *    mapped to the snapstore returns the pre-write data there;
 *  - the read race: an ORIGIN_WRITE of a chunk a snapshot is reading from the origin is not
 *    answered until that read's FINISH;
 *  - a snapshot create waits for the origin device to acknowledge DROP_CACHE;
 *  - a revert has every version 3 snapshot device drop its cache (DROP_CACHE
 *    ORIGIN_CHANGED, acknowledged) before it writes the origin, and older ones not at all;
 *  - writable snapshots get private chunks, and the origin is untouched;
 *  - batched queries (many ranges, overlapping and repeated) get one answer per range or
 *    chunk, in order; many queries at once (coalesced by the server) each get their own;
 *  - malformed input closes only the offending connection;
 *  - everything survives a server stop and restart.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "blk/bdev.h"
#include "client/ctl_client.h"
#include "daemon/server.h"
#include "store/store.h"
#include "util/unixsock.h"
#include "snap/volume.h"
#include "proto/wire.h"
#include "lib/kpeer.h"
#include "lib/srvfix.h"

#define CHUNK_SHIFT  14
#define CHUNK	     (1u << CHUNK_SHIFT)
#define ORIGIN_BYTES (8u << 20)
#define STORE_BYTES  (48u << 20)

static char dir[] = "/tmp/ddsnap-test-server-XXXXXX";
static struct srvfix vf; /* the volume and its server, stopped and started by the tests */

static void start(void)
{
	assert_int_equal(srvfix_start(&vf), 0);
}

static void stop(void)
{
	srvfix_stop(&vf);
}

/*----------------------------------------------------------------
 * Playing the kernel
 *--------------------------------------------------------------*/

/* Connects as the device of @tag speaking @version; returns the IDENTIFY reply (caller frees). */
static struct wire_msg *kidentify(struct kconn *k, u32 tag, u32 version)
{
	struct wire_msg *m = kidentify_at(k, vf.sock, tag, version, ORIGIN_BYTES >> 9);

	assert_non_null(m);
	assert_int_equal(m->type, DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY);
	return m;
}

/* Connects as the device of @tag and returns the IDENTIFY reply's gen. */
static u64 kconnect(struct kconn *k, u32 tag)
{
	struct wire_msg *m = kidentify(k, tag, DDSNAP_WIRE_VERSION);
	u64 gen;

	assert_int_equal(m->identify_reply.error, 0);
	assert_int_equal(m->identify_reply.version, DDSNAP_WIRE_VERSION);
	assert_int_equal(m->identify_reply.chunk_bits, CHUNK_SHIFT);
	gen = m->identify_reply.gen;
	free(m);
	return gen;
}

/* Sends a query and returns its reply (caller frees), answering DROP_CACHEs on the way. */
static struct wire_msg *ask(struct kconn *k, u16 type, u64 chunk, u32 count, u32 flags)
{
	struct wire_msg *m = kmsg(0, 0);

	kquery(k, type, chunk, count, flags);
	for (;;) {
		assert_int_equal(krecv(k, m, 10000), 0);
		if (m->type != DDSNAP_MSG_DROP_CACHE)
			break;
		m->type |= DDSNAP_MSG_REPLY;
		m->drop_reply.error = 0;
		ksend(k, m);
	}
	assert_int_equal(m->type, type | DDSNAP_MSG_REPLY);
	assert_int_equal(m->seq, k->seq);
	return m;
}

static void origin_write(struct kconn *k, u64 chunk, u32 count)
{
	struct wire_msg *m = ask(k, DDSNAP_MSG_ORIGIN_WRITE, chunk, count, 0);

	assert_int_equal(m->origin_reply.nr, 1);
	assert_int_equal(m->origin_reply.r[0].error, 0);
	free(m);
}

/*----------------------------------------------------------------
 * Data
 *--------------------------------------------------------------*/

static void fill(u8 *buf, u64 chunk, char version)
{
	for (u32 i = 0; i < CHUNK; i++)
		buf[i] = (u8)(chunk * 131 + i * 7 + (u8)version);
}

static void write_chunk(const char *path, u64 addr, char version, u64 content_chunk)
{
	static u8 buf[CHUNK];
	int fd = open(path, O_WRONLY);

	fill(buf, content_chunk, version);
	assert_int_equal(pwrite(fd, buf, CHUNK, (off_t)(addr * CHUNK)), CHUNK);
	close(fd);
}

static void expect_chunk(const char *path, u64 addr, char version, u64 content_chunk)
{
	static u8 want[CHUNK], got[CHUNK];
	int fd = open(path, O_RDONLY);

	fill(want, content_chunk, version);
	assert_int_equal(pread(fd, got, CHUNK, (off_t)(addr * CHUNK)), CHUNK);
	close(fd);
	if (memcmp(want, got, CHUNK))
		fail_msg("%s chunk %llu does not hold version %c of chunk %llu", path,
			 (unsigned long long)addr, version, (unsigned long long)content_chunk);
}

/* Reads snapshot @tag's chunk through the server's mapping and checks its contents. */
static void expect_snap(struct kconn *snap, u64 chunk, char version)
{
	struct wire_msg *m = ask(snap, DDSNAP_MSG_SNAPSHOT_READ, chunk, 1, 0);

	assert_int_equal(m->map_reply.nr, 1);
	switch (m->map_reply.m[0].where) {
	case DDSNAP_MAP_ORIGIN:
		expect_chunk(vf.origin, chunk, version, chunk);
		kfinish(snap, m->map_reply.m[0].lock);
		break;
	case DDSNAP_MAP_SHARED:
	case DDSNAP_MAP_PRIVATE:
		expect_chunk(vf.store, m->map_reply.m[0].addr, version, chunk);
		break;
	default:
		fail_msg("chunk %llu mapped to error %d", (unsigned long long)chunk,
			 m->map_reply.m[0].error);
	}
	free(m);
}

static void cli(u16 type, u32 tag, s64 arg, s32 want_error)
{
	struct ctl_client *c;
	struct ctl_msg req = {.type = type, .tag = tag, .arg = arg}, reply = {0};
	char why[300];

	if (ctl_client_open(vf.sock, &c, why, sizeof(why)))
		fail_msg("ctl_client_open: %s", why);
	{
		u8 uuid[16], zero[16] = {0};

		ctl_client_uuid(c, uuid); /* the volume's identity, from the label */
		assert_memory_not_equal(uuid, zero, sizeof(uuid));
	}
	assert_int_equal(ctl_client_call(c, &req, &reply, why, sizeof(why)), 0);
	assert_int_equal(reply.result.error, want_error);
	ctl_client_close(c);
}

/*----------------------------------------------------------------
 * Tests
 *--------------------------------------------------------------*/

static int setup(void **state)
{
	if (!mkdtemp(dir) ||
	    srvfix_create(&vf, dir, "origin", CHUNK_SHIFT, ORIGIN_BYTES, STORE_BYTES, NULL))
		return -1;
	for (u64 c = 0; c < ORIGIN_BYTES / CHUNK; c++)
		write_chunk(vf.origin, c, 'A', c);
	return 0;
}

static int teardown(void **state)
{
	unlink(vf.store);
	unlink(vf.origin);
	unlink(vf.sock);
	rmdir(dir);
	return 0;
}

struct late_ack {
	struct kconn *k;
	int delay_ms;
	struct timespec acked;
};

/* Answers the DROP_CACHE a create sends to the origin device, after a delay. */
static void *ack_drop_late(void *arg)
{
	struct late_ack *a = arg;
	struct wire_msg *m = kmsg(0, 0);

	assert_int_equal(krecv(a->k, m, 10000), 0);
	assert_int_equal(m->type, DDSNAP_MSG_DROP_CACHE);
	assert_int_equal(m->drop.reason, DDSNAP_DROP_NEW_SNAPSHOT);
	usleep((useconds_t)a->delay_ms * 1000);
	clock_gettime(CLOCK_MONOTONIC, &a->acked);
	m->type |= DDSNAP_MSG_REPLY;
	m->drop_reply.error = 0;
	m->drop_reply.gen = m->drop.gen;
	ksend(a->k, m);
	free(m);
	return NULL;
}

static void test_server__snapshots_see_their_time(void **state)
{
	struct kconn origin = {0}, snap1 = {0}, snap2 = {0};
	struct late_ack ack = {.k = &origin, .delay_ms = 300};
	struct timespec done;
	pthread_t t;
	u64 gen0, gen1;

	start();
	gen0 = kconnect(&origin, DDSNAP_TAG_ORIGIN);

	/* Create waits for the origin device's cache drop. */
	pthread_create(&t, NULL, ack_drop_late, &ack);
	cli(CTL_CREATE, 1, 0, 0);
	clock_gettime(CLOCK_MONOTONIC, &done);
	pthread_join(t, NULL);
	assert_true(done.tv_sec > ack.acked.tv_sec ||
		    (done.tv_sec == ack.acked.tv_sec && done.tv_nsec >= ack.acked.tv_nsec));
	cli(CTL_CREATE, 1, 0, -EEXIST);

	/* Overwrite chunks 0..9 the way the kernel does: ask, then write. */
	origin_write(&origin, 0, 10);
	for (u64 c = 0; c < 10; c++)
		write_chunk(vf.origin, c, 'B', c);
	/* A second write of the same chunks in this gen needs no copy (and must not make one). */
	origin_write(&origin, 0, 10);
	for (u64 c = 0; c < 5; c++)
		write_chunk(vf.origin, c, 'C', c);

	gen1 = kconnect(&snap1, 1);
	assert_int_equal(gen1, gen0);
	for (u64 c = 0; c < 16; c++)
		expect_snap(&snap1, c, 'A');

	/* Snapshot 2 sees B and C; snapshot 1 still A. */
	{
		struct late_ack ack2 = {.k = &origin, .delay_ms = 0};

		pthread_create(&t, NULL, ack_drop_late, &ack2);
		cli(CTL_CREATE, 2, 0, 0);
		pthread_join(t, NULL);
	}
	origin_write(&origin, 0, 20);
	for (u64 c = 0; c < 20; c++)
		write_chunk(vf.origin, c, 'D', c);
	kconnect(&snap2, 2);
	for (u64 c = 0; c < 20; c++) {
		expect_snap(&snap1, c, 'A');
		expect_snap(&snap2, c, c < 5 ? 'C' : c < 10 ? 'B' : 'A');
	}

	/* Survives a restart: stop, reopen, read again. */
	close(origin.fd);
	close(snap1.fd);
	close(snap2.fd);
	stop();
	start();
	kconnect(&snap1, 1);
	kconnect(&snap2, 2);
	for (u64 c = 0; c < 20; c++) {
		expect_snap(&snap1, c, 'A');
		expect_snap(&snap2, c, c < 5 ? 'C' : c < 10 ? 'B' : 'A');
	}
	close(snap1.fd);
	close(snap2.fd);
	stop();
}

static void test_server__read_race(void **state)
{
	struct kconn origin = {0}, snap = {0};
	struct wire_msg *m, *reply = kmsg(0, 0);
	u64 lock;

	start();
	kconnect(&origin, DDSNAP_TAG_ORIGIN);
	kconnect(&snap, 2);
	/* Chunk 30 was never written since snapshot 2: it reads from the origin, locked. */
	m = ask(&snap, DDSNAP_MSG_SNAPSHOT_READ, 30, 1, 0);
	assert_int_equal(m->map_reply.m[0].where, DDSNAP_MAP_ORIGIN);
	lock = m->map_reply.m[0].lock;
	assert_true(lock != 0);
	free(m);
	/* The origin write of chunk 30 copies it out but is not released while the read runs. */
	kquery(&origin, DDSNAP_MSG_ORIGIN_WRITE, 30, 1, 0);
	assert_int_equal(krecv(&origin, reply, 300), -EAGAIN);
	kfinish(&snap, lock);
	assert_int_equal(krecv(&origin, reply, 5000), 0);
	assert_int_equal(reply->type, DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY);
	assert_int_equal(reply->origin_reply.r[0].error, 0);
	write_chunk(vf.origin, 30, 'E', 30);
	expect_snap(&snap, 30, 'A');
	free(reply);
	close(origin.fd);
	close(snap.fd);
	stop();
}

static void test_server__writable_snapshot(void **state)
{
	struct kconn snap = {0};
	struct wire_msg *m;
	u64 addr;

	start();
	kconnect(&snap, 1);
	/* A partial first write: the server copies the snapshot's view (A) into a private chunk. */
	m = ask(&snap, DDSNAP_MSG_SNAPSHOT_WRITE, 40, 1, 0);
	assert_int_equal(m->map_reply.m[0].where, DDSNAP_MAP_PRIVATE);
	addr = m->map_reply.m[0].addr;
	free(m);
	expect_chunk(vf.store, addr, 'A', 40);
	write_chunk(vf.store, addr, 'W', 40);
	/* Later reads and writes map to the same private chunk; the origin is untouched. */
	m = ask(&snap, DDSNAP_MSG_SNAPSHOT_WRITE, 40, 1, DDSNAP_RANGE_WHOLE);
	assert_int_equal(m->map_reply.m[0].addr, addr);
	free(m);
	expect_snap(&snap, 40, 'W');
	expect_chunk(vf.origin, 40, 'A', 40);
	/* A first write covering the whole chunk is copied in too: until the kernel's data
	 * is durable the private chunk must read as the snapshot's, not as what the freed
	 * chunk held (engine.c, crash argument). */
	m = ask(&snap, DDSNAP_MSG_SNAPSHOT_WRITE, 41, 1, DDSNAP_RANGE_WHOLE);
	assert_int_equal(m->map_reply.m[0].where, DDSNAP_MAP_PRIVATE);
	addr = m->map_reply.m[0].addr;
	free(m);
	expect_chunk(vf.store, addr, 'A', 41);
	close(snap.fd);
	stop();
}

/* The connection speaks the older of the two versions; one older than the server's oldest is refused. */
static void test_server__version_negotiation(void **state)
{
	static const struct {
		u32 kernel, answer;
		s32 error;
	} cases[] = {
		{DDSNAP_WIRE_VERSION_MIN, DDSNAP_WIRE_VERSION_MIN, 0},
		{2, 2, 0}, /* read-ahead, no cached origin answers */
		{DDSNAP_WIRE_VERSION, DDSNAP_WIRE_VERSION, 0},
		{DDSNAP_WIRE_VERSION + 5, DDSNAP_WIRE_VERSION, 0},
		{DDSNAP_WIRE_VERSION_MIN - 1, DDSNAP_WIRE_VERSION_MIN - 1, -EPROTONOSUPPORT},
	};

	start();
	for (u32 i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kconn k = {0};
		struct wire_msg *m = kidentify(&k, 2, cases[i].kernel);

		assert_int_equal(m->identify_reply.error, cases[i].error);
		assert_int_equal(m->identify_reply.version, cases[i].answer);
		free(m);
		close(k.fd);
	}
	stop();
}

/* Sends a query of @n ranges (as the kernel batches bios) and returns its reply. */
static struct wire_msg *ask_ranges(struct kconn *k, u16 type, const struct wire_range *r, u32 n)
{
	struct wire_msg *m = kmsg(type, ++k->seq);

	m->query.nr = n;
	memcpy(m->query.r, r, n * sizeof(*r));
	ksend(k, m);
	assert_int_equal(krecv(k, m, 10000), 0);
	assert_int_equal(m->type, type | DDSNAP_MSG_REPLY);
	assert_int_equal(m->seq, k->seq);
	return m;
}

static void test_server__batched_queries(void **state)
{
	/* Overlapping and repeated ranges, as the kernel sends for bios of one chunk. */
	static const struct wire_range ow[] = {{50, 2, 0}, {60, 1, 0}, {50, 1, 0}, {51, 3, 0}};
	static const struct wire_range sw[] = {{70, 2, DDSNAP_RANGE_WHOLE}, {72, 1, 0}};
	static const struct wire_range sr[] = {{80, 1, 0}, {80, 1, 0}};
	struct kconn origin = {0}, snap = {0};
	struct wire_msg *m;

	start();
	kconnect(&origin, DDSNAP_TAG_ORIGIN);
	kconnect(&snap, 2);
	/* One origin reply per range, in order, each echoing its range. */
	m = ask_ranges(&origin, DDSNAP_MSG_ORIGIN_WRITE, ow, 4);
	assert_int_equal(m->origin_reply.nr, 4);
	for (u32 i = 0; i < 4; i++) {
		assert_int_equal(m->origin_reply.r[i].chunk, ow[i].chunk);
		assert_int_equal(m->origin_reply.r[i].count, ow[i].count);
		assert_int_equal(m->origin_reply.r[i].error, 0);
	}
	free(m);
	for (u64 c = 50; c < 54; c++)
		write_chunk(vf.origin, c, 'F', c);
	write_chunk(vf.origin, 60, 'F', 60);
	for (u64 c = 50; c < 61; c++)
		expect_snap(&snap, c, 'A');
	/* Snapshot writes: a mapping per chunk, all private and distinct; the partial one
	 * was copied in from the snapshot's view. */
	m = ask_ranges(&snap, DDSNAP_MSG_SNAPSHOT_WRITE, sw, 2);
	assert_int_equal(m->map_reply.nr, 3);
	for (u32 i = 0; i < 3; i++) {
		assert_int_equal(m->map_reply.m[i].chunk, 70 + i);
		assert_int_equal(m->map_reply.m[i].where, DDSNAP_MAP_PRIVATE);
		for (u32 j = 0; j < i; j++)
			assert_int_not_equal(m->map_reply.m[i].addr, m->map_reply.m[j].addr);
	}
	expect_chunk(vf.store, m->map_reply.m[2].addr, 'A', 72);
	free(m);
	/* The same chunk twice in a read: two mappings, each with its own read lock. */
	m = ask_ranges(&snap, DDSNAP_MSG_SNAPSHOT_READ, sr, 2);
	assert_int_equal(m->map_reply.nr, 2);
	assert_int_equal(m->map_reply.m[0].where, DDSNAP_MAP_ORIGIN);
	assert_int_equal(m->map_reply.m[1].where, DDSNAP_MAP_ORIGIN);
	assert_true(m->map_reply.m[0].lock && m->map_reply.m[1].lock);
	assert_int_not_equal(m->map_reply.m[0].lock, m->map_reply.m[1].lock);
	kfinish(&snap, m->map_reply.m[0].lock);
	kfinish(&snap, m->map_reply.m[1].lock);
	free(m);
	close(origin.fd);
	close(snap.fd);
	stop();
}

/*
 * Read-ahead: chunks of a RANGE_AHEAD range are mapped like any other, but an origin mapping
 * comes without a read lock, so an origin write there is not held up.
 */
static void test_server__read_ahead(void **state)
{
	static const struct wire_range sr[] = {{300, 1, 0}, {301, 4, DDSNAP_RANGE_AHEAD}};
	struct kconn origin = {0}, snap = {0};
	struct wire_msg *m, *reply = kmsg(0, 0);

	start();
	kconnect(&origin, DDSNAP_TAG_ORIGIN);
	kconnect(&snap, 2);
	origin_write(&origin, 302, 2); /* copies 302 and 303 out for the snapshots */
	write_chunk(vf.origin, 302, 'H', 302);
	write_chunk(vf.origin, 303, 'H', 303);
	m = ask_ranges(&snap, DDSNAP_MSG_SNAPSHOT_READ, sr, 2);
	assert_int_equal(m->map_reply.nr, 5);
	for (u32 i = 0; i < 5; i++)
		assert_int_equal(m->map_reply.m[i].chunk, 300 + i);
	assert_int_equal(m->map_reply.m[0].where, DDSNAP_MAP_ORIGIN);
	assert_true(m->map_reply.m[0].lock != 0); /* the bio's own chunk: locked */
	for (u32 i = 1; i < 5; i++) {
		u32 where = i == 2 || i == 3 ? DDSNAP_MAP_SHARED : DDSNAP_MAP_ORIGIN;

		assert_int_equal(m->map_reply.m[i].where, where);
		assert_int_equal(m->map_reply.m[i].lock, 0);
		if (where == DDSNAP_MAP_SHARED)
			expect_chunk(vf.store, m->map_reply.m[i].addr, 'A', 300 + i);
	}
	/* An origin write to a read-ahead chunk on the origin goes at once... */
	kquery(&origin, DDSNAP_MSG_ORIGIN_WRITE, 304, 1, 0);
	assert_int_equal(krecv(&origin, reply, 5000), 0);
	assert_int_equal(reply->type, DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY);
	assert_int_equal(reply->origin_reply.r[0].error, 0);
	/* ...and one to the bio's chunk waits for its FINISH. */
	kquery(&origin, DDSNAP_MSG_ORIGIN_WRITE, 300, 1, 0);
	assert_int_equal(krecv(&origin, reply, 300), -EAGAIN);
	kfinish(&snap, m->map_reply.m[0].lock);
	assert_int_equal(krecv(&origin, reply, 5000), 0);
	assert_int_equal(reply->origin_reply.r[0].error, 0);
	free(m);
	free(reply);
	close(origin.fd);
	close(snap.fd);
	stop();
}

/*
 * Many ORIGIN_WRITEs at once, as a busy origin device sends them: the server may serve those
 * queued together with one volume call, yet every reply answers its own query, and a query
 * naming chunks beyond the volume fails alone.
 */
static void test_server__coalesced_origin_writes(void **state)
{
	enum { N = 40, BAD = 17 };
	struct kconn origin = {0}, snap = {0};
	struct wire_msg *m = kmsg(0, 0);
	u32 first_seq;
	bool seen[N] = {false};

	start();
	kconnect(&origin, DDSNAP_TAG_ORIGIN);
	kconnect(&snap, 2);
	first_seq = origin.seq + 1;
	for (u32 k = 0; k < N; k++)
		kquery(&origin, DDSNAP_MSG_ORIGIN_WRITE,
		       k == BAD ? ORIGIN_BYTES / CHUNK + 5 : 100 + k, 1, 0);
	for (u32 got = 0; got < N; got++) {
		u32 k;

		assert_int_equal(krecv(&origin, m, 10000), 0);
		assert_int_equal(m->type, DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY);
		k = m->seq - first_seq;
		assert_true(k < N && !seen[k]);
		seen[k] = true;
		assert_int_equal(m->origin_reply.nr, 1);
		assert_int_equal(m->origin_reply.r[0].chunk,
				 k == BAD ? ORIGIN_BYTES / CHUNK + 5 : 100 + k);
		assert_int_equal(m->origin_reply.r[0].error, k == BAD ? -EINVAL : 0);
	}
	for (u64 c = 100; c < 100 + N; c++)
		write_chunk(vf.origin, c, 'G', c);
	for (u64 c = 100; c < 100 + N; c++)
		expect_snap(&snap, c, c == 100 + BAD ? 'G' : 'A');
	free(m);
	close(origin.fd);
	close(snap.fd);
	stop();
}

static void test_server__bad_input_closes_only_that_connection(void **state)
{
	struct kconn bad = {0}, good = {0}, origin = {0};
	struct wire_msg *m = kmsg(0, 0);
	u8 garbage[64];
	ssize_t n;
	char c;

	start();
	kconnect(&good, 1);
	/* Garbage instead of a message. */
	bad.fd = unixsock_connect(vf.sock, 2000);
	memset(garbage, 0x5a, sizeof(garbage));
	assert_int_equal(unixsock_write_full(bad.fd, garbage, sizeof(garbage)), 0);
	assert_int_equal(krecv(&bad, m, 5000), 0);
	assert_int_equal(m->type, DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY);
	/* Closed: EOF, or a reset because our garbage was still unread when it closed. */
	n = read(bad.fd, &c, 1);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	close(bad.fd);
	/* A snapshot query on the origin's connection. */
	kconnect(&origin, DDSNAP_TAG_ORIGIN);
	kquery(&origin, DDSNAP_MSG_SNAPSHOT_READ, 0, 1, 0);
	assert_int_equal(krecv(&origin, m, 5000), 0);
	assert_int_equal(m->type, DDSNAP_MSG_ERROR | DDSNAP_MSG_REPLY);
	close(origin.fd);
	/* IDENTIFY of a snapshot that does not exist is refused. */
	{
		struct kconn none = {.fd = unixsock_connect(vf.sock, 2000)};
		struct wire_msg *id = kmsg(DDSNAP_MSG_IDENTIFY, 1);

		id->identify.version = DDSNAP_WIRE_VERSION;
		id->identify.tag = 77;
		id->identify.dev_sectors = ORIGIN_BYTES >> 9;
		ksend(&none, id);
		assert_int_equal(krecv(&none, id, 5000), 0);
		assert_int_equal(id->identify_reply.error, -ENODATA);
		free(id);
		close(none.fd);
	}
	/* The good connection still works. */
	expect_snap(&good, 0, 'A');
	free(m);
	close(good.fd);
	stop();
}

struct revert_run {
	u32 tag;
	s32 error;
	u64 value;
	char why[300];
};

/* Runs a REVERT over the control protocol (it blocks until the revert is done). */
static void *revert_thread(void *arg)
{
	struct revert_run *r = arg;
	struct ctl_client *c;
	struct ctl_msg req = {.type = CTL_REVERT, .tag = r->tag}, reply = {0};

	if (ctl_client_open(vf.sock, &c, r->why, sizeof(r->why))) {
		r->error = -ECONNREFUSED;
		return NULL;
	}
	if (ctl_client_call(c, &req, &reply, r->why, sizeof(r->why)))
		r->error = -EPIPE;
	else
		r->error = reply.result.error;
	r->value = reply.result.value;
	ctl_client_close(c);
	return NULL;
}

/* Receives a DROP_CACHE ORIGIN_CHANGED on @k carrying @gen; returns it to be acknowledged. */
static struct wire_msg *expect_origin_changed(struct kconn *k, u64 gen)
{
	struct wire_msg *m = kmsg(0, 0);

	assert_int_equal(krecv(k, m, 10000), 0);
	assert_int_equal(m->type, DDSNAP_MSG_DROP_CACHE);
	assert_int_equal(m->drop.reason, DDSNAP_DROP_ORIGIN_CHANGED);
	assert_int_equal(m->drop.state, DDSNAP_STATE_NORMAL);
	assert_int_equal(m->drop.gen, gen);
	return m;
}

static void ack_drop(struct kconn *k, struct wire_msg *m)
{
	m->type |= DDSNAP_MSG_REPLY;
	m->drop_reply.error = 0;
	m->drop_reply.gen = m->drop.gen;
	ksend(k, m);
	free(m);
}

/*
 * A revert writes the origin behind the kernel's back: each snapshot device of version 3
 * (which may cache "read the origin" answers), whatever its tag, gets DROP_CACHE
 * ORIGIN_CHANGED after the copy-outs and before the origin changes, and the revert waits
 * for every acknowledgement; a version 2 device gets nothing; the origin device gets its
 * NEW_SNAPSHOT drop afterwards, as after a create.
 */
static void test_server__revert_drops_snapshot_caches(void **state)
{
	enum { FIRST = 400, N = 4, T = 3 };
	struct kconn origin = {0}, snapt = {0}, snap1 = {0}, old = {0};
	struct late_ack ack = {.k = &origin, .delay_ms = 0};
	struct revert_run run = {.tag = T, .error = 1};
	struct wire_msg *m, *dt, *d1;
	u64 gent, gen1;
	pthread_t t;

	start();
	kconnect(&origin, DDSNAP_TAG_ORIGIN);
	pthread_create(&t, NULL, ack_drop_late, &ack);
	cli(CTL_CREATE, T, 0, 0);
	pthread_join(t, NULL);
	/* The origin moves on from T: FIRST.. hold R there, T (and 1, 2) still A. */
	origin_write(&origin, FIRST, N);
	for (u64 c = FIRST; c < FIRST + N; c++)
		write_chunk(vf.origin, c, 'R', c);

	gent = kconnect(&snapt, T);
	gen1 = kconnect(&snap1, 1);
	m = kidentify(&old, 2, 2);
	assert_int_equal(m->identify_reply.error, 0);
	assert_int_equal(m->identify_reply.version, 2);
	free(m);
	for (u64 c = FIRST; c < FIRST + N; c++) {
		expect_snap(&snapt, c, 'A');
		expect_snap(&old, c, 'A');
	}

	pthread_create(&t, NULL, revert_thread, &run);
	/* Each version 3 snapshot device is told, the revert waits, the origin is untouched. */
	dt = expect_origin_changed(&snapt, gent);
	d1 = expect_origin_changed(&snap1, gen1);
	usleep(300 * 1000);
	assert_int_equal(__atomic_load_n(&run.error, __ATOMIC_ACQUIRE), 1);
	for (u64 c = FIRST; c < FIRST + N; c++)
		expect_chunk(vf.origin, c, 'R', c);
	ack_drop(&snapt, dt);
	usleep(200 * 1000);
	for (u64 c = FIRST; c < FIRST + N; c++)
		expect_chunk(vf.origin, c, 'R', c); /* snapshot 1 has not answered yet */
	ack_drop(&snap1, d1);

	/* Then the origin device's usual drop, and the revert is done: the origin is T's. */
	m = kmsg(0, 0);
	assert_int_equal(krecv(&origin, m, 10000), 0);
	assert_int_equal(m->type, DDSNAP_MSG_DROP_CACHE);
	assert_int_equal(m->drop.reason, DDSNAP_DROP_NEW_SNAPSHOT);
	ack_drop(&origin, m);
	pthread_join(t, NULL);
	if (run.error)
		fail_msg("revert: %d %s", run.error, run.why);
	assert_int_equal(run.value, N);
	for (u64 c = FIRST; c < FIRST + N; c++)
		expect_chunk(vf.origin, c, 'A', c);

	/* One drop each, none for the version 2 device; every snapshot reads as before. */
	m = kmsg(0, 0);
	assert_int_equal(krecv(&old, m, 100), -EAGAIN);
	assert_int_equal(krecv(&snapt, m, 0), -EAGAIN);
	assert_int_equal(krecv(&snap1, m, 0), -EAGAIN);
	free(m);
	for (u64 c = FIRST; c < FIRST + N; c++) {
		expect_snap(&snapt, c, 'A');
		expect_snap(&snap1, c, 'A');
		expect_snap(&old, c, 'A');
	}
	close(origin.fd);
	close(snapt.fd);
	close(snap1.fd);
	close(old.fd);
	stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server__snapshots_see_their_time),
		cmocka_unit_test(test_server__read_race),
		cmocka_unit_test(test_server__writable_snapshot),
		cmocka_unit_test(test_server__batched_queries),
		cmocka_unit_test(test_server__version_negotiation),
		cmocka_unit_test(test_server__read_ahead),
		cmocka_unit_test(test_server__coalesced_origin_writes),
		cmocka_unit_test(test_server__bad_input_closes_only_that_connection),
		cmocka_unit_test(test_server__revert_drops_snapshot_caches),
	};

	return cmocka_run_group_tests_name("server", tests, setup, teardown);
}
