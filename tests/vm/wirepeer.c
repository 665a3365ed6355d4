// SPDX-License-Identifier: GPL-2.0-only
/*
 * wirepeer.c - a TEST PEER for the ddsnap kernel target, not the metadata server.
 *
 * It speaks version 1 of the wire protocol (include/ddsnap_wire.h, through server/proto/wire.c:
 * no read-ahead, which it refuses by dropping the connection) with a naive
 * in-memory policy, so that VM scenarios can drive the real kernel target before ddsnapd
 * exists and can make the server misbehave on purpose.  Nothing is persistent: a killed peer
 * forgets every snapshot.
 *
 * Policy.  Per snapshot, an array chunk -> snapstore address (0 = still on the origin).  An
 * origin write to chunk L copies L (O_DIRECT read of the origin, O_DIRECT|O_DSYNC write to the
 * snapstore) for every live snapshot that still shares L with the origin, then replies "safe";
 * if a snapshot read holds a read lock on L, the reply waits for the FINISH.  Snapshot reads
 * get the snapshot's address or ORIGIN with a read lock; snapshot writes get a private chunk,
 * filled with the snapshot's view unless the write covers the whole chunk.
 *
 * Misbehaviour (--mode, or "mode M" on the command FIFO):
 *	normal		as above
 *	garbage		replies to queries with the right seq but a wrong or malformed body
 *	badmagic	replies to queries with 16 bytes of garbage
 *	silent		never replies to queries
 *	die-after:N	exits abruptly (no goodbye) after N query replies
 *	hold		keeps query replies (read locks granted) until "release"
 *
 * Commands, one per line on the FIFO given by --cmd (results appended to --status):
 *	snap TAG	create snapshot TAG; DROP_CACHE(NEW_SNAPSHOT) to origin clients;
 *			"done snap TAG" once every client acknowledged
 *	delete TAG	DROP_CACHE(SNAPSHOT_GONE) to TAG's clients, then forget it; "done delete TAG"
 *	mode M		switch misbehaviour; "done mode M"
 *	release		mode normal, then send the replies "hold" kept; "done release"
 *	locks		"locks N": read locks granted and not yet released; "done locks"
 *	quit		exit
 *
 * usage: wirepeer --socket PATH --origin DEV --store DEV [--chunk-bits N] [--mode M]
 *	  [--cmd FIFO] [--status FILE]
 */
#include <fcntl.h>
#include <stdarg.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/fs.h>
#include "proto/wire.h"

#define MAX_CLIENTS 16
#define MAX_SNAPS   16
#define MAX_LOCKS   4096
#define MAX_DEFER   1024
#define PRIV_BIT    (1ull << 63)

struct client {
	int fd;
	bool identified;
	u32 tag;
	u32 seq; /* for our own requests (DROP_CACHE) */
	size_t have;
	u8 rx[2 * WIRE_MAX_MSG];
};

struct snap {
	bool live;
	u32 tag;
	u64 gen;
	u64 *map; /* chunk -> addr + 1, | PRIV_BIT if private */
};

struct lock {
	u64 id, chunk;
	int client;
};

struct deferred {
	int client;
	struct wire_msg reply;
	u64 chunk;
	u32 count;
};

static struct client clients[MAX_CLIENTS];
static struct snap snaps[MAX_SNAPS];
static struct lock locks[MAX_LOCKS];
static struct deferred deferred[MAX_DEFER];
static unsigned int nr_locks, nr_deferred;
static u64 next_lock = 1, gen = 1, next_addr = 1, nr_chunks, store_chunks, dev_sectors;
static u32 chunk_bits = 16;
static size_t chunk_size;
static int origin_fd, store_fd;
static u8 *copybuf;
static char mode[32] = "normal";
static unsigned long die_after, replies_sent;
static FILE *status;
static char pending_cmd[64];
static unsigned int pending_acks;

#define MAX_HELD 256
static struct held {
	int client;
	struct wire_msg *reply;
} held[MAX_HELD];
static unsigned int nr_held;

static void say(const char *fmt, ...) __printf(1, 2);
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "wirepeer: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static void status_line(const char *line)
{
	say("%s", line);
	if (status) {
		fprintf(status, "%s\n", line);
		fflush(status);
	}
}

static void drop_client(int i, const char *why)
{
	say("client %d (tag %d) dropped: %s", i, (int)clients[i].tag, why);
	close(clients[i].fd);
	clients[i].fd = -1;
	/* its read locks die with it */
	for (unsigned int k = 0; k < nr_locks;)
		if (locks[k].client == i)
			locks[k] = locks[--nr_locks];
		else
			k++;
	for (unsigned int k = 0; k < nr_deferred;)
		if (deferred[k].client == i)
			deferred[k] = deferred[--nr_deferred];
		else
			k++;
	for (unsigned int k = 0; k < nr_held;)
		if (held[k].client == i) {
			free(held[k].reply);
			held[k] = held[--nr_held];
		} else {
			k++;
		}
}

static int send_raw(int i, const void *buf, size_t n)
{
	const u8 *p = buf;

	while (n) {
		ssize_t w = write(clients[i].fd, p, n);

		if (w <= 0) {
			drop_client(i, "write failed");
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_msg(int i, const struct wire_msg *m)
{
	static u8 buf[WIRE_MAX_MSG];
	const char *why = "";
	ssize_t n = wire_pack(m, buf, sizeof(buf), &why);

	if (n < 0) {
		say("cannot pack %s: %s", wire_type_name(m->type), why);
		exit(2);
	}
	return send_raw(i, buf, (size_t)n);
}

/*----------------------------------------------------------------*/

static int copy_chunk(int from_fd, u64 from, u64 to)
{
	if (pread(from_fd, copybuf, chunk_size, (off_t)(from * chunk_size)) != (ssize_t)chunk_size)
		return -EIO;
	if (pwrite(store_fd, copybuf, chunk_size, (off_t)(to * chunk_size)) != (ssize_t)chunk_size)
		return -EIO;
	return 0;
}

static int alloc_chunk(u64 *addr)
{
	if (next_addr >= store_chunks)
		return -ENOSPC;
	*addr = next_addr++;
	return 0;
}

static struct snap *find_snap(u32 tag)
{
	for (int s = 0; s < MAX_SNAPS; s++)
		if (snaps[s].live && snaps[s].tag == tag)
			return &snaps[s];
	return NULL;
}

/* Copy-out for an origin write to chunk L.  0 or negative errno. */
static int origin_copyout(u64 l)
{
	u64 addr = 0;
	bool copied = false;

	for (int s = 0; s < MAX_SNAPS; s++) {
		if (!snaps[s].live || snaps[s].map[l])
			continue;
		if (!copied) {
			int r = alloc_chunk(&addr);

			if (!r)
				r = copy_chunk(origin_fd, l, addr);
			if (r)
				return r;
			copied = true;
		}
		snaps[s].map[l] = addr + 1;
	}
	return 0;
}

static bool chunk_locked(u64 chunk, u32 count)
{
	for (unsigned int k = 0; k < nr_locks; k++)
		if (locks[k].chunk >= chunk && locks[k].chunk < chunk + count)
			return true;
	return false;
}

static bool misbehave(int i, const struct wire_msg *reply)
{
	static u8 buf[WIRE_MAX_MSG];
	const char *why = "";
	ssize_t n;

	if (!strcmp(mode, "silent"))
		return true;
	if (!strcmp(mode, "hold") && nr_held < MAX_HELD) {
		held[nr_held].client = i;
		held[nr_held].reply = xmalloc(sizeof(*reply));
		*held[nr_held++].reply = *reply;
		return true;
	}
	if (!strcmp(mode, "badmagic")) {
		memset(buf, 0x5a, 16);
		send_raw(i, buf, 16);
		return true;
	}
	if (!strcmp(mode, "garbage")) {
		struct wire_msg bad = *reply;

		if (bad.type == (DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY)) {
			/* well formed, but for another chunk than asked */
			bad.origin_reply.r[0].chunk++;
			send_msg(i, &bad);
		} else {
			/* malformed: an unknown mapping kind */
			n = wire_pack(&bad, buf, sizeof(buf), &why);
			if (n > 0) {
				buf[WIRE_HEAD_SIZE + 8 + 24] = 9;
				send_raw(i, buf, (size_t)n);
			}
		}
		return true;
	}
	return false;
}

static void send_reply(int i, const struct wire_msg *reply)
{
	if (misbehave(i, reply))
		return;
	if (send_msg(i, reply))
		return;
	replies_sent++;
	if (die_after && replies_sent >= die_after) {
		say("dying abruptly after %lu replies, as asked", replies_sent);
		_exit(3);
	}
}

static void handle_origin_write(int i, const struct wire_msg *q)
{
	static struct wire_msg r;
	bool wait = false;

	memset(&r, 0, sizeof(r));
	r.type = q->type | DDSNAP_MSG_REPLY;
	r.seq = q->seq;
	r.origin_reply.nr = q->query.nr;
	r.origin_reply.gen = gen;
	for (u32 k = 0; k < q->query.nr; k++) {
		const struct wire_range *g = &q->query.r[k];
		int err = 0;

		for (u32 c = 0; c < g->count && !err; c++)
			err = g->chunk + c < nr_chunks ? origin_copyout(g->chunk + c) : -EINVAL;
		r.origin_reply.r[k] = (struct wire_range_status){
			.chunk = g->chunk, .count = g->count, .error = err};
		wait |= chunk_locked(g->chunk, g->count);
	}
	if (wait && nr_deferred < MAX_DEFER) {
		deferred[nr_deferred++] = (struct deferred){.client = i,
							    .reply = r,
							    .chunk = q->query.r[0].chunk,
							    .count = q->query.r[0].count};
		return;
	}
	send_reply(i, &r);
}

static void handle_snapshot_io(int i, const struct wire_msg *q)
{
	static struct wire_msg r;
	struct snap *s = find_snap(clients[i].tag);

	memset(&r, 0, sizeof(r));
	r.type = q->type | DDSNAP_MSG_REPLY;
	r.seq = q->seq;
	for (u32 k = 0; k < q->query.nr; k++) {
		const struct wire_range *g = &q->query.r[k];

		for (u32 c = 0; c < g->count; c++) {
			struct wire_mapping *p = &r.map_reply.m[r.map_reply.nr++];
			u64 l = g->chunk + c, addr, v;
			int err = 0;

			p->chunk = l;
			if (!s || l >= nr_chunks) {
				p->where = DDSNAP_MAP_ERROR;
				p->error = s ? -EINVAL : -ENOENT;
				continue;
			}
			v = s->map[l];
			if (q->type == DDSNAP_MSG_SNAPSHOT_READ) {
				if (v) {
					p->where = v & PRIV_BIT ? DDSNAP_MAP_PRIVATE
								: DDSNAP_MAP_SHARED;
					p->addr = (v & ~PRIV_BIT) - 1;
				} else if (nr_locks < MAX_LOCKS) {
					p->where = DDSNAP_MAP_ORIGIN;
					p->lock = next_lock++;
					locks[nr_locks++] = (struct lock){
						.id = p->lock, .chunk = l, .client = i};
				} else {
					p->where =
						DDSNAP_MAP_ORIGIN; /* unlocked: test peer limit */
				}
				continue;
			}
			if (!(v & PRIV_BIT)) {
				err = alloc_chunk(&addr);
				if (!err && !(g->flags & DDSNAP_RANGE_WHOLE))
					err = v ? copy_chunk(store_fd, v - 1, addr)
						: copy_chunk(origin_fd, l, addr);
				if (!err)
					s->map[l] = v = (addr + 1) | PRIV_BIT;
			}
			if (err) {
				p->where = DDSNAP_MAP_ERROR;
				p->error = err;
			} else {
				p->where = DDSNAP_MAP_PRIVATE;
				p->addr = (v & ~PRIV_BIT) - 1;
			}
		}
	}
	send_reply(i, &r);
}

static void handle_finish(const struct wire_msg *q)
{
	for (u32 k = 0; k < q->finish.nr; k++)
		for (unsigned int j = 0; j < nr_locks; j++)
			if (locks[j].id == q->finish.lock[k]) {
				locks[j] = locks[--nr_locks];
				break;
			}
	for (unsigned int k = 0; k < nr_deferred;) {
		if (!chunk_locked(deferred[k].chunk, deferred[k].count)) {
			struct deferred d = deferred[k];

			deferred[k] = deferred[--nr_deferred];
			if (clients[d.client].fd >= 0)
				send_reply(d.client, &d.reply);
		} else {
			k++;
		}
	}
}

static void handle_identify(int i, const struct wire_msg *q)
{
	static struct wire_msg r;
	struct snap *s = NULL;

	memset(&r, 0, sizeof(r));
	r.type = DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY;
	r.seq = q->seq;
	r.identify_reply.version = DDSNAP_WIRE_VERSION_MIN; /* a version 1 peer: no read-ahead */
	r.identify_reply.chunk_bits = chunk_bits;
	r.identify_reply.dev_sectors = dev_sectors;
	r.identify_reply.gen = gen;
	if (q->identify.version < DDSNAP_WIRE_VERSION_MIN)
		r.identify_reply.error = -EPROTONOSUPPORT;
	else if (q->identify.tag != DDSNAP_TAG_ORIGIN && !(s = find_snap(q->identify.tag)))
		r.identify_reply.error = -ENODATA; /* what the server sends (ddsnap_wire.h) */
	else if (q->identify.dev_sectors > dev_sectors)
		r.identify_reply.error = -EINVAL;
	if (s)
		r.identify_reply.gen = s->gen;
	clients[i].identified = !r.identify_reply.error;
	clients[i].tag = q->identify.tag;
	say("client %d: IDENTIFY tag %d sectors %llu -> %d", i, (int)q->identify.tag,
	    (unsigned long long)q->identify.dev_sectors, r.identify_reply.error);
	send_msg(i, &r);
}

static void handle_msg(int i, const struct wire_msg *m)
{
	if (!clients[i].identified && m->type != DDSNAP_MSG_IDENTIFY) {
		drop_client(i, "message before IDENTIFY");
		return;
	}
	switch (m->type) {
	case DDSNAP_MSG_IDENTIFY:
		handle_identify(i, m);
		return;
	case DDSNAP_MSG_ORIGIN_WRITE:
		if (clients[i].tag != DDSNAP_TAG_ORIGIN)
			drop_client(i, "origin write from a snapshot");
		else
			handle_origin_write(i, m);
		return;
	case DDSNAP_MSG_SNAPSHOT_READ:
	case DDSNAP_MSG_SNAPSHOT_WRITE:
		/* Version 1 has no read-ahead: a kernel must not send it after that answer. */
		for (u32 k = 0; k < m->query.nr; k++)
			if (m->query.r[k].flags & DDSNAP_RANGE_AHEAD) {
				drop_client(i, "RANGE_AHEAD on a version 1 connection");
				return;
			}
		handle_snapshot_io(i, m);
		return;
	case DDSNAP_MSG_FINISH:
		handle_finish(m);
		return;
	case DDSNAP_MSG_DROP_CACHE | DDSNAP_MSG_REPLY:
		if (pending_acks && !--pending_acks) {
			char line[96];

			snprintf(line, sizeof(line), "done %s", pending_cmd);
			status_line(line);
		}
		return;
	case DDSNAP_MSG_PING | DDSNAP_MSG_REPLY:
		return;
	default:
		say("client %d: unexpected %s", i, wire_type_name(m->type));
	}
}

static void read_client(int i)
{
	struct client *c = &clients[i];
	static struct wire_msg m;
	ssize_t n = read(c->fd, c->rx + c->have, sizeof(c->rx) - c->have);
	size_t off = 0;

	if (n <= 0) {
		drop_client(i, n ? "read error" : "closed");
		return;
	}
	c->have += (size_t)n;
	while (c->fd >= 0) {
		const char *why = "";
		size_t total;
		int r = wire_frame(c->rx + off, c->have - off, &total, &why);

		if (r == -EWOULDBLOCK)
			break;
		if (!r)
			r = wire_unpack(c->rx + off, total, &m, &why);
		if (r) {
			drop_client(i, why);
			return;
		}
		off += total;
		handle_msg(i, &m);
	}
	if (c->fd >= 0) {
		memmove(c->rx, c->rx + off, c->have - off);
		c->have -= off;
	}
}

/*----------------------------------------------------------------*/

static void drop_cache_to(bool origin, u32 tag, u32 reason, u32 state)
{
	static struct wire_msg m;

	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd < 0 || !clients[i].identified)
			continue;
		if (origin ? clients[i].tag != DDSNAP_TAG_ORIGIN : clients[i].tag != tag)
			continue;
		memset(&m, 0, sizeof(m));
		m.type = DDSNAP_MSG_DROP_CACHE;
		m.seq = ++clients[i].seq;
		m.drop.reason = reason;
		m.drop.state = state;
		m.drop.gen = gen;
		if (!send_msg(i, &m))
			pending_acks++;
	}
}

static void command(char *line)
{
	char msg[96];
	unsigned int tag;
	struct snap *s;

	line[strcspn(line, "\r\n")] = 0;
	if (!*line)
		return;
	snprintf(pending_cmd, sizeof(pending_cmd), "%.60s", line);
	pending_acks = 0;
	if (sscanf(line, "snap %u", &tag) == 1) {
		int k;

		for (k = 0; k < MAX_SNAPS && snaps[k].live; k++)
			;
		if (k == MAX_SNAPS || find_snap(tag)) {
			snprintf(msg, sizeof(msg), "fail %.60s", line);
			status_line(msg);
			return;
		}
		memset(snaps[k].map, 0, nr_chunks * sizeof(u64));
		snaps[k].live = true;
		snaps[k].tag = tag;
		snaps[k].gen = gen++;
		drop_cache_to(true, 0, DDSNAP_DROP_NEW_SNAPSHOT, DDSNAP_STATE_NORMAL);
	} else if (sscanf(line, "delete %u", &tag) == 1) {
		s = find_snap(tag);
		if (!s) {
			snprintf(msg, sizeof(msg), "fail %.60s", line);
			status_line(msg);
			return;
		}
		drop_cache_to(false, tag, DDSNAP_DROP_SNAPSHOT_GONE, DDSNAP_STATE_INVALID);
		s->live = false; /* the test peer never reuses chunks, so no need to wait */
	} else if (!strncmp(line, "mode ", 5)) {
		snprintf(mode, sizeof(mode), "%.30s", line + 5);
		die_after = 0;
		if (sscanf(mode, "die-after:%lu", &die_after) == 1)
			replies_sent = 0;
	} else if (!strcmp(line, "release")) {
		strcpy(mode, "normal");
		for (unsigned int k = 0; k < nr_held; k++) {
			if (clients[held[k].client].fd >= 0)
				send_reply(held[k].client, held[k].reply);
			free(held[k].reply);
		}
		say("released %u held replies", nr_held);
		nr_held = 0;
	} else if (!strcmp(line, "locks")) {
		snprintf(msg, sizeof(msg), "locks %u", nr_locks);
		status_line(msg);
	} else if (!strcmp(line, "quit")) {
		status_line("done quit");
		exit(0);
	} else {
		snprintf(msg, sizeof(msg), "fail unknown command %.60s", line);
		status_line(msg);
		return;
	}
	if (!pending_acks) {
		snprintf(msg, sizeof(msg), "done %.60s", line);
		status_line(msg);
	}
}

static u64 dev_bytes(int fd)
{
	u64 size = 0;
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		return (u64)st.st_size;
	if (ioctl(fd, BLKGETSIZE64, &size))
		return 0;
	return size;
}

static int open_dev(const char *path, int flags)
{
	int fd = open(path, flags | O_DIRECT);

	if (fd < 0) {
		perror(path);
		exit(2);
	}
	return fd;
}

static void usage(void)
{
	fprintf(stderr, "usage: wirepeer --socket PATH --origin DEV --store DEV [--chunk-bits N] "
			"[--mode M] [--cmd FIFO] [--status FILE]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"origin", required_argument, NULL, 'o'},
		{"store", required_argument, NULL, 'S'},
		{"chunk-bits", required_argument, NULL, 'c'},
		{"mode", required_argument, NULL, 'm'},
		{"cmd", required_argument, NULL, 'C'},
		{"status", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0},
	};
	const char *sock_path = NULL, *origin = NULL, *store = NULL, *cmd = NULL;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int opt, lfd, cfd = -1;
	char cmdbuf[256];
	size_t cmdhave = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock_path = optarg;
			break;
		case 'o':
			origin = optarg;
			break;
		case 'S':
			store = optarg;
			break;
		case 'c':
			chunk_bits = (u32)atoi(optarg);
			break;
		case 'm':
			snprintf(mode, sizeof(mode), "%s", optarg);
			if (sscanf(mode, "die-after:%lu", &die_after) != 1)
				die_after = 0;
			break;
		case 'C':
			cmd = optarg;
			break;
		case 't':
			status = fopen(optarg, "a");
			break;
		default:
			usage();
		}
	}
	if (!sock_path || !origin || !store || chunk_bits < DDSNAP_CHUNK_BITS_MIN ||
	    chunk_bits > DDSNAP_CHUNK_BITS_MAX || strlen(sock_path) >= sizeof(addr.sun_path))
		usage();
	signal(SIGPIPE, SIG_IGN);
	chunk_size = (size_t)1 << chunk_bits;
	origin_fd = open_dev(origin, O_RDONLY);
	store_fd = open_dev(store, O_RDWR | O_DSYNC);
	dev_sectors = dev_bytes(origin_fd) >> 9;
	nr_chunks = (dev_sectors << 9) >> chunk_bits;
	store_chunks = dev_bytes(store_fd) >> chunk_bits;
	if (posix_memalign((void **)&copybuf, 4096, chunk_size))
		exit(2);
	for (int s = 0; s < MAX_SNAPS; s++)
		snaps[s].map = xzalloc(nr_chunks * sizeof(u64));
	for (int i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;

	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	memcpy(addr.sun_path, sock_path, strlen(sock_path));
	if (sock_path[0] == '@')
		addr.sun_path[0] = 0;
	else
		unlink(sock_path);
	if (lfd < 0 ||
	    bind(lfd, (struct sockaddr *)&addr,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sock_path))) ||
	    listen(lfd, 16)) {
		perror(sock_path);
		exit(2);
	}
	if (cmd) {
		cfd = open(cmd, O_RDWR | O_NONBLOCK);
		if (cfd < 0) {
			perror(cmd);
			exit(2);
		}
	}
	say("TEST PEER listening on %s: %llu chunks of %zu bytes, store %llu chunks, mode %s",
	    sock_path, (unsigned long long)nr_chunks, chunk_size, (unsigned long long)store_chunks,
	    mode);
	status_line("ready");

	for (;;) {
		struct pollfd pfd[MAX_CLIENTS + 2];
		int idx[MAX_CLIENTS], n = 0;

		pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = cfd, .events = POLLIN};
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (clients[i].fd >= 0) {
				idx[n - 2] = i;
				pfd[n++] = (struct pollfd){.fd = clients[i].fd, .events = POLLIN};
			}
		if (poll(pfd, (nfds_t)n, -1) < 0)
			continue;
		if (pfd[0].revents & POLLIN) {
			int fd = accept(lfd, NULL, NULL);
			int i;

			for (i = 0; i < MAX_CLIENTS && clients[i].fd >= 0; i++)
				;
			if (fd >= 0 && i < MAX_CLIENTS) {
				memset(&clients[i], 0, sizeof(clients[i]));
				clients[i].fd = fd;
			} else if (fd >= 0) {
				close(fd);
			}
		}
		if (cfd >= 0 && (pfd[1].revents & POLLIN)) {
			ssize_t r = read(cfd, cmdbuf + cmdhave, sizeof(cmdbuf) - 1 - cmdhave);
			char *nl;

			if (r > 0)
				cmdhave += (size_t)r;
			cmdbuf[cmdhave] = 0;
			while ((nl = strchr(cmdbuf, '\n'))) {
				*nl = 0;
				command(cmdbuf);
				memmove(cmdbuf, nl + 1, cmdhave - (size_t)(nl + 1 - cmdbuf) + 1);
				cmdhave -= (size_t)(nl + 1 - cmdbuf);
			}
			if (cmdhave == sizeof(cmdbuf) - 1)
				cmdhave = 0;
		}
		for (int k = 2; k < n; k++)
			if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
				if (clients[idx[k - 2]].fd == pfd[k].fd)
					read_client(idx[k - 2]);
	}
}
