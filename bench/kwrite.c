// SPDX-License-Identifier: GPL-2.0-only
/*
 * kwrite.c - origin writes the kernel target's way, from the host, for benchmarks: connects
 * to a running `ddsnap server` as the origin device (IDENTIFY, tag DDSNAP_TAG_ORIGIN) and
 * sends ORIGIN_WRITE queries of one chunk each, at most --depth in flight, at chunks drawn
 * from a seeded generator over [0, --chunks), answering the server's DROP_CACHEs on the way.
 * It writes no data: the server's decision (and its copy-out of the chunk) is what is timed,
 * as the kernel would wait for it before writing the origin.
 *
 * Prints, in seconds since the Epoch, when the connection was identified and when the first
 * origin write was answered, then the count, the elapsed time and the rate.  With --wait it
 * retries the connection (a server still opening its store) for that many seconds, so that
 * a script can time a server's start to its first answered origin write.
 *
 *   kwrite --socket PATH --chunks N --sectors S [--count N] [--depth D] [--seed S] [--wait SECS]
 *
 * Exits 0 when every write was answered without error, 1 otherwise (the reason on stderr),
 * 2 on a usage error.
 */
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "proto/wire.h"
#include "util/unixsock.h"
#include "commands.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int die(const char *what, const char *why)
{
	fprintf(stderr, "kwrite: %s: %s\n", what, why);
	exit(1);
}

static void send_msg(int fd, const struct wire_msg *m)
{
	static u8 buf[WIRE_MAX_MSG];
	const char *why = NULL;
	ssize_t n = wire_pack(m, buf, sizeof(buf), &why);

	if (n < 0)
		die("packing a message", why);
	if (unixsock_write_full(fd, buf, (size_t)n))
		die("sending to the server", "the connection is gone");
}

static void recv_msg(int fd, struct wire_msg *m)
{
	static u8 buf[WIRE_MAX_MSG];
	const char *why = "the connection is gone";
	size_t total = WIRE_HEAD_SIZE;
	int r = unixsock_read_full(fd, buf, WIRE_HEAD_SIZE);

	if (!r) {
		r = wire_frame(buf, WIRE_HEAD_SIZE, &total, &why);
		if (r == -EWOULDBLOCK)
			r = unixsock_read_full(fd, buf + WIRE_HEAD_SIZE, total - WIRE_HEAD_SIZE);
	}
	if (!r)
		r = wire_unpack(buf, total, m, &why);
	if (r)
		die("receiving from the server", why);
}

/* xorshift64*: the chunks written, reproducible from --seed. */
static u64 next_chunk(u64 *s, u64 chunks)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (*s * 0x2545f4914f6cdd1dull) % chunks;
}

static int usage(void)
{
	fprintf(stderr, "usage: kwrite --socket PATH --chunks N --sectors S [--count N] "
			"[--depth D] [--seed S] [--wait SECS]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", 1, NULL, 's'}, {"chunks", 1, NULL, 'c'}, {"sectors", 1, NULL, 'S'},
		{"count", 1, NULL, 'n'},  {"depth", 1, NULL, 'd'},  {"seed", 1, NULL, 'r'},
		{"wait", 1, NULL, 'w'},	  {NULL, 0, NULL, 0},
	};
	const char *sock = NULL;
	u64 chunks = 0, sectors = 0, count = 1, seed = 1, sent = 0, answered = 0, depth = 16,
	    wait_s = 0;
	struct wire_msg m;
	double t_id, t_first = 0, t_end;
	int fd, o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		u64 v = 0;

		if (o == 's') {
			sock = optarg;
			continue;
		}
		if (o == '?' || cmd_parse_u64(optarg, o == 'r' ? 0 : 1, ~0ull, &v)) {
			fprintf(stderr, "kwrite: bad number for an option: %s\n",
				o == '?' ? "?" : optarg);
			return usage();
		}
		if (o == 'c')
			chunks = v;
		else if (o == 'S')
			sectors = v;
		else if (o == 'n')
			count = v;
		else if (o == 'd')
			depth = v;
		else if (o == 'r')
			seed = v | 1;
		else
			wait_s = v;
	}
	if (!sock || !chunks || !sectors || depth > 1024 || optind != argc)
		return usage();
	for (double give_up = now() + (double)wait_s;;) {
		fd = unixsock_connect(sock, 1000);
		if (fd >= 0 || now() >= give_up)
			break;
		usleep(2000);
	}
	if (fd < 0)
		die(sock, unixsock_errmsg(fd));
	memset(&m, 0, sizeof(m));
	m.type = DDSNAP_MSG_IDENTIFY;
	m.seq = 1;
	m.identify.version = DDSNAP_WIRE_VERSION;
	m.identify.tag = DDSNAP_TAG_ORIGIN;
	m.identify.dev_sectors = sectors;
	send_msg(fd, &m);
	recv_msg(fd, &m);
	if (m.type != (DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY) || m.identify_reply.error)
		die("IDENTIFY", m.type == (DDSNAP_MSG_IDENTIFY | DDSNAP_MSG_REPLY)
					? strerror(-m.identify_reply.error)
					: "the server answered something else");
	t_id = now();
	while (answered < count) {
		while (sent < count && sent - answered < depth) {
			memset(&m, 0, sizeof(m));
			m.type = DDSNAP_MSG_ORIGIN_WRITE;
			m.seq = (u32)(2 + sent++);
			m.query.nr = 1;
			m.query.r[0] = (struct wire_range){next_chunk(&seed, chunks), 1, 0};
			send_msg(fd, &m);
		}
		recv_msg(fd, &m);
		if (m.type == DDSNAP_MSG_DROP_CACHE) {
			m.type |= DDSNAP_MSG_REPLY;
			m.drop_reply.error = 0;
			send_msg(fd, &m);
			continue;
		}
		if (m.type != (DDSNAP_MSG_ORIGIN_WRITE | DDSNAP_MSG_REPLY))
			die("ORIGIN_WRITE", "the server answered something else");
		if (m.origin_reply.nr != 1 || m.origin_reply.r[0].error)
			die("ORIGIN_WRITE", m.origin_reply.nr != 1
						    ? "not one range in the reply"
						    : strerror(-m.origin_reply.r[0].error));
		if (!answered++)
			t_first = now();
	}
	t_end = now();
	close(fd);
	printf("identified %.6f\nfirst %.6f\nwrites %llu in %.3f s: %.0f/s\n", t_id, t_first,
	       (unsigned long long)count, t_end - t_id, (double)count / (t_end - t_id));
	return 0;
}
