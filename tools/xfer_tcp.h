/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * xfer_tcp.h - the TCP transport of `ddsnap send --to` and `ddsnap receive --listen`: one
 * connection carrying one delta stream, then one status byte back.
 *
 * The stream itself is the same as through a pipe (doc/delta-format.md); what TCP adds is
 * here: the sender's connect (retrying while the receiver starts), the receiver's accept
 * of exactly one connection from the expected address within a timeout, the receiver's
 * hello (XFER_TCP_HELLO, before the stream: the sender sends nothing until it has it, so
 * a peer that is not a receive, silent or talking something else, is found within the
 * sender's timeout with nothing sent), keepalives so a dead peer ends the transfer instead
 * of hanging it, and the status byte after the trailer (the receiver's exit status, so
 * `send` fails when the replica refused or failed).
 * There is no authentication and no encryption: trusted networks only.
 *
 * Every function prints its own error as "ddsnap <cmd>: ..." and returns a negative errno
 * (util/base.h) or, for the connecting and accepting ones, the connected socket.
 */
#ifndef DDSNAP_XFER_TCP_H
#define DDSNAP_XFER_TCP_H

#include "util/base.h"

/* send retries a refused connection this long: the receiver may still be starting. */
#define XFER_TCP_CONNECT_SECS 15
/* receive --listen waits this long for its sender by default (--timeout). */
#define XFER_TCP_ACCEPT_SECS 60
/* send --to waits this long for the receiver's hello by default (--timeout). */
#define XFER_TCP_HELLO_SECS 60
/* send waits this long for the receiver's status byte after the trailer (it syncs the
 * origin and takes a snapshot, which waits for copy-outs to drain). */
#define XFER_TCP_STATUS_SECS 600
/* What a listening receive sends first, as soon as it accepted its sender; its first byte
 * is not 0, so a sender that expects only the status byte reads a failure, not success. */
#define XFER_TCP_HELLO "ddsnap receive 1\n"

/* Parses a --timeout value: seconds, 1 to 86400.  0, or -EINVAL with the message printed. */
int xfer_tcp_parse_timeout(const char *cmd, const char *text, int *secs);

/*
 * Connects to "host:port" or "[v6]:port", retrying refusals for XFER_TCP_CONNECT_SECS, then
 * waits up to @timeout_secs for the receiver's hello.  Returns the socket, or -EINVAL (bad
 * address, unknown host), -ECONNREFUSED and the like, -ETIMEDOUT (connected, but no hello
 * within the timeout), -EPROTO (the peer closed, or said something else: not a receive).
 * On every error nothing of the stream was sent.
 */
int xfer_tcp_connect(const char *cmd, const char *hostport, int timeout_secs);

/*
 * Listens on "[addr:]port" (all addresses without addr) and accepts one connection within
 * @timeout_secs.  With @from (a host name or address), a connection from any other address
 * is closed at once and reported, and the wait goes on; the listening socket is closed
 * before returning, so no second stream is taken.  The hello is sent on the accepted
 * connection.  Returns the socket, or -EINVAL (bad address), -EADDRINUSE and the like
 * (cannot listen), -ETIMEDOUT (nobody connected), -EPIPE (the sender went away before the
 * hello).
 */
int xfer_tcp_accept(const char *cmd, const char *spec, const char *from, int timeout_secs);

/*
 * After the trailer, on the sender: ends the sending half and waits for the receiver's
 * status byte.  Returns 0 when the receiver reports success, with *@bytes the stream's
 * length as the receiver acknowledged it; else -EIO (it failed the transfer) or -EPIPE
 * (no answer), message printed.
 */
int xfer_tcp_wait_status(const char *cmd, int fd, const char *to, u64 *bytes);

/* On the receiver: sends its exit status back and closes the connection. */
void xfer_tcp_send_status(const char *cmd, int fd, int status, bool verbose);

#endif
