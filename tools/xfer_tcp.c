// SPDX-License-Identifier: GPL-2.0-only
/*
 * xfer_tcp.c - the TCP transport of `ddsnap send --to` and `ddsnap receive --listen`.
 *
 * What: one TCP connection carries one delta stream from send to receive, exactly the bytes
 * a pipe would carry, then one byte back, the receiver's exit status.  Before the stream the
 * receiver says who it is (XFER_TCP_HELLO), and the sender sends nothing until it has read
 * that.  replicate.c does the rest (the stream, the checks, the token) exactly as with a
 * pipe: a TCP receive differs from a piped one only in where its input comes from.
 *
 * Invariants:
 *  - A listening receive takes one stream: it accepts one connection, from the expected
 *    address when --from names one, and closes the listening socket before reading a byte,
 *    so a second sender finds the port closed.  A connection from another address is
 *    closed unread and reported; the wait goes on until the timeout, so a stray or hostile
 *    connection cannot take the replica's stream slot.
 *  - Nothing here writes to the volume: a listen that fails (port in use, bad address,
 *    timeout) returns before receive looks at its devices, so nothing was written.
 *  - A sender never waits on a peer that is not a receive: the connect succeeds with
 *    anything listening on the port, so send waits for the hello, at most its --timeout,
 *    before the first stream byte.  A silent peer (the socket buffers would take a small
 *    stream whole and the status byte would then never come; a large one would block the
 *    writer forever on a peer that never reads) or one that answers something else (an
 *    ssh or HTTP banner) is an error naming the peer, and nothing was sent.
 *  - A cut connection is a truncated stream: the delta engine's reader sees the end of
 *    input (or ETIMEDOUT from the keepalives when the peer vanished without a reset) and
 *    fails the way a cut pipe does, keeping the resume token of what was durably applied.
 *    Keepalives (60 s idle, then 6 probes 10 s apart) end a transfer whose peer is gone
 *    instead of letting it hang; a slow but live peer is never timed out.
 *  - The status byte is sent after the snapshot was taken (or the failure happened), so a
 *    sender that reads 0 knows the replica has the snapshot.
 *
 * Locking: none; one thread, one connection.  The crash argument is the stream's: a crash
 * of either side anywhere is a cut connection, handled by the token (replicate.c).
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "commands.h"
#include "xfer_tcp.h"

/* Linux's TCP states (include/net/tcp_states.h), as TCP_INFO reports them. */
enum { ST_FIN_WAIT2 = 5, ST_TIME_WAIT = 6, ST_CLOSE = 7 };

/* Splits "host:port", "[v6]:port" or (@host_optional) "port" into host and port. */
static int split_hostport(char *s, const char **host, const char **port, bool host_optional)
{
	char *colon = strrchr(s, ':');
	u16 num;

	/* getaddrinfo would take 99999 as port 34463, and a service name as a port */
	if (cmd_parse_port(colon ? colon + 1 : s, &num))
		return -EINVAL;
	if (!colon) {
		if (!host_optional)
			return -EINVAL;
		*host = NULL;
		*port = s;
		return 0;
	}
	*colon = 0;
	*port = colon + 1;
	*host = s;
	if (s[0] == '[' && colon > s + 1 && colon[-1] == ']') {
		colon[-1] = 0;
		*host = s + 1;
	}
	return **host ? 0 : -EINVAL;
}

/* A dead peer ends the transfer (ETIMEDOUT) after about two minutes of silence. */
static void keepalive(int fd)
{
	int one = 1, idle = 60, intvl = 10, cnt = 6;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static s64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (s64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int xfer_tcp_parse_timeout(const char *cmd, const char *text, int *secs)
{
	u64 v;

	if (cmd_parse_u64(text, 1, 86400, &v)) {
		cmd_error(cmd, "bad timeout '%s': seconds, 1 to 86400", text);
		return -EINVAL;
	}
	*secs = (int)v;
	return 0;
}

/* The peer's first bytes as text for a message: printable ASCII kept, the rest as '.'. */
static void peer_text(const char *got, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = got[i] >= 0x20 && got[i] < 0x7f ? got[i] : '.';
	out[n] = 0;
}

/* Reads the receiver's hello within @timeout_secs: 0, or the error, printed. */
static int await_hello(const char *cmd, int fd, const char *hostport, int timeout_secs)
{
	static const char hello[] = XFER_TCP_HELLO;
	const size_t want = sizeof(hello) - 1;
	s64 deadline = now_ms() + (s64)timeout_secs * 1000;
	char got[sizeof(hello)] = {0}, text[sizeof(hello)];
	size_t have = 0;

	while (have < want && !memcmp(got, hello, have)) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		s64 left = deadline - now_ms();
		ssize_t n;

		if (left <= 0) {
			cmd_error(cmd,
				  "%s accepted the connection but did not answer as a ddsnap "
				  "receive within %d seconds (is a 'ddsnap receive --listen' "
				  "there?); nothing was sent",
				  hostport, timeout_secs);
			return -ETIMEDOUT;
		}
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno != EINTR) {
			n = -errno;
			cmd_error(cmd, "waiting for %s: %s; nothing was sent", hostport,
				  strerror((int)-n));
			return (int)n;
		}
		if (n <= 0)
			continue;
		n = read(fd, got + have, want - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			cmd_error(cmd, "reading from %s: %s; nothing was sent", hostport,
				  strerror((int)-n));
			return (int)n;
		}
		if (!n)
			break;
		have += (size_t)n;
	}
	if (have == want && !memcmp(got, hello, want))
		return 0;
	if (!have) {
		cmd_error(cmd,
			  "%s closed the connection without answering as a ddsnap receive (is a "
			  "'ddsnap receive --listen' there?); nothing was sent",
			  hostport);
	} else {
		peer_text(got, have, text);
		cmd_error(cmd, "%s is not a ddsnap receive: it answered '%s'; nothing was sent",
			  hostport, text);
	}
	return -EPROTO;
}

/* Connects, retrying refusals for XFER_TCP_CONNECT_SECS: the socket, or the error. */
static int connect_retry(const char *cmd, const char *hostport)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *a;
	char *s = xstrdup(hostport);
	const char *host, *port;
	int fd = -1, err;

	if (split_hostport(s, &host, &port, false)) {
		cmd_error(cmd, "bad address '%s': host:port, the port 1..65535", hostport);
		free(s);
		return -EINVAL;
	}
	err = getaddrinfo(host, port, &hints, &ai);
	if (err) {
		cmd_error(cmd, "%s: %s", hostport, gai_strerror(err));
		free(s);
		return -EINVAL;
	}
	err = 0;
	for (int tries = 0; fd < 0 && tries < XFER_TCP_CONNECT_SECS * 10; tries++) {
		bool refused = false;

		for (a = ai; a && fd < 0; a = a->ai_next) {
			fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
			if (fd < 0) {
				err = errno;
				continue;
			}
			if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
				break;
			err = errno;
			refused |= err == ECONNREFUSED;
			close(fd);
			fd = -1;
		}
		if (fd < 0 && !refused)
			break;
		if (fd < 0)
			usleep(100000);
	}
	freeaddrinfo(ai);
	free(s);
	if (fd < 0) {
		cmd_error(cmd, "cannot connect to %s: %s%s; nothing was sent", hostport,
			  strerror(err),
			  err == ECONNREFUSED ? " (no receive --listen there after 15 seconds)"
					      : "");
		return -err;
	}
	keepalive(fd);
	return fd;
}

int xfer_tcp_connect(const char *cmd, const char *hostport, int timeout_secs)
{
	int fd = connect_retry(cmd, hostport), err;

	if (fd < 0)
		return fd;
	err = await_hello(cmd, fd, hostport, timeout_secs);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/* The address of @sa as text, an IPv4-mapped IPv6 address as IPv4. */
static void addr_text(const struct sockaddr_storage *sa, char *out, size_t len)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

	if (sa->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)len);
	else if (sa->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)len);
	else if (sa->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
			  (socklen_t)len);
	else
		snprintf(out, len, "(family %d)", sa->ss_family);
}

/* Whether the peer @sa is one of @from's addresses (compared as text, so an IPv4 peer on
 * an IPv6 socket matches its IPv4 address). */
static bool addr_allowed(const struct sockaddr_storage *sa, const struct addrinfo *from)
{
	char peer[INET6_ADDRSTRLEN], want[INET6_ADDRSTRLEN];

	addr_text(sa, peer, sizeof(peer));
	for (const struct addrinfo *a = from; a; a = a->ai_next) {
		struct sockaddr_storage ss = {0};

		memcpy(&ss, a->ai_addr, a->ai_addrlen);
		addr_text(&ss, want, sizeof(want));
		if (!strcmp(peer, want))
			return true;
	}
	return false;
}

/* Accepts on @lfd until a connection from @from (any without) or the deadline. */
static int accept_one(const char *cmd, int lfd, const char *spec, const char *fromspec,
		      const struct addrinfo *from, int timeout_secs)
{
	s64 deadline = now_ms() + (s64)timeout_secs * 1000;

	for (;;) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		char text[INET6_ADDRSTRLEN];
		s64 left = deadline - now_ms();
		int n, fd;

		if (left <= 0) {
			cmd_error(cmd,
				  "no sender connected to %s within %d seconds; nothing was "
				  "written",
				  spec, timeout_secs);
			return -ETIMEDOUT;
		}
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			cmd_error(cmd, "waiting on %s: %s", spec, strerror(-n));
			return n;
		}
		if (!n)
			continue;
		fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN))
			continue;
		if (fd < 0) {
			fd = -errno;
			cmd_error(cmd, "accepting on %s: %s", spec, strerror(-fd));
			return fd;
		}
		if (!from || addr_allowed(&peer, from)) {
			keepalive(fd);
			return fd;
		}
		addr_text(&peer, text, sizeof(text));
		cmd_error(cmd,
			  "refused a connection from %s on %s: only %s may send here (still "
			  "waiting)",
			  text, spec, fromspec);
		close(fd);
	}
}

int xfer_tcp_accept(const char *cmd, const char *spec, const char *fromspec, int timeout_secs)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE},
			*ai, *from = NULL;
	char *s = xstrdup(spec);
	const char *host, *port;
	int lfd, fd, one = 1, err;

	if (split_hostport(s, &host, &port, true)) {
		cmd_error(cmd, "bad listen address '%s': [addr:]port, the port 1..65535", spec);
		free(s);
		return -EINVAL;
	}
	err = getaddrinfo(host, port, &hints, &ai);
	if (err) {
		cmd_error(cmd, "%s: %s", spec, gai_strerror(err));
		free(s);
		return -EINVAL;
	}
	if (fromspec) {
		struct addrinfo fh = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};

		err = getaddrinfo(fromspec, NULL, &fh, &from);
		if (err) {
			cmd_error(cmd, "bad sender address '%s': %s", fromspec, gai_strerror(err));
			freeaddrinfo(ai);
			free(s);
			return -EINVAL;
		}
	}
	lfd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, ai->ai_addr, ai->ai_addrlen) || listen(lfd, 1)) {
		fd = -errno;
		cmd_error(cmd, "cannot listen on %s: %s%s; nothing was written", spec,
			  strerror(-fd),
			  fd == -EADDRINUSE ? " (another program, or another receive, holds it)"
					    : "");
	} else {
		fd = accept_one(cmd, lfd, spec, fromspec, from, timeout_secs);
	}
	/* a 17-byte send on a fresh connection goes whole unless the peer is gone */
	if (fd >= 0 && send(fd, XFER_TCP_HELLO, sizeof(XFER_TCP_HELLO) - 1, MSG_NOSIGNAL) !=
			       (ssize_t)sizeof(XFER_TCP_HELLO) - 1) {
		cmd_error(cmd,
			  "the sender on %s went away before the transfer began: %s; "
			  "nothing was written",
			  spec, strerror(errno));
		close(fd);
		fd = -EPIPE;
	}
	if (lfd >= 0)
		close(lfd);
	if (from)
		freeaddrinfo(from);
	freeaddrinfo(ai);
	free(s);
	return fd;
}

/*
 * The stream's length, from the receiver's acknowledgements: TCP_INFO's bytes_acked counts
 * sequence numbers, so it includes our SYN (acknowledged by the SYN-ACK) and, once it was
 * acknowledged (FIN_WAIT2 and after), our FIN.  Called after the receiver's status byte,
 * which it sends after reading the whole stream, so every data byte was acknowledged.
 * 0 when the kernel does not say.
 */
static u64 acked_bytes(int fd)
{
	struct tcp_info ti = {0};
	socklen_t len = sizeof(ti);
	u64 n;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked) ||
	    !ti.tcpi_bytes_acked)
		return 0;
	n = ti.tcpi_bytes_acked - 1;
	if (n && (ti.tcpi_state == ST_FIN_WAIT2 || ti.tcpi_state == ST_TIME_WAIT ||
		  ti.tcpi_state == ST_CLOSE))
		n--;
	return n;
}

int xfer_tcp_wait_status(const char *cmd, int fd, const char *to, u64 *bytes)
{
	struct timeval tv = {.tv_sec = XFER_TCP_STATUS_SECS};
	u8 status;
	ssize_t n;

	shutdown(fd, SHUT_WR);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	do
		n = read(fd, &status, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1) {
		cmd_error(cmd, "the receiver at %s did not confirm the transfer%s%s", to,
			  n < 0 ? ": " : " (connection closed)", n < 0 ? strerror(errno) : "");
		return -EPIPE;
	}
	if (status != EXIT_OK) {
		cmd_error(cmd,
			  "the receiver at %s failed the transfer (exit status %u; its "
			  "message says why)",
			  to, status);
		return -EIO;
	}
	*bytes = acked_bytes(fd);
	return 0;
}

void xfer_tcp_send_status(const char *cmd, int fd, int status, bool verbose)
{
	u8 b = (u8)status;

	if (write(fd, &b, 1) != 1 && verbose)
		cmd_error(cmd, "the sender went away before the status was sent");
	close(fd);
}
