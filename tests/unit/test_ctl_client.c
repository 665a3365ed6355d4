// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_ctl_client.c - the control client against an in-test server thread: HELLO, paged
 * LIST and CHANGELIST, server refusals with reasons, and every way a bad server can fail
 * a call (garbage, wrong seq, silence, hang-up) reported as an error, never a crash.
 * Also unixsock: abstract and path names, bad names, a stale socket file replaced, a live
 * one kept.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "client/ctl_client.h"
#include "util/unixsock.h"

enum behaviour { GOOD, GARBAGE, WRONG_SEQ, SILENT, HANGUP, OLD_VERSION };

struct fake {
	int lfd;
	enum behaviour how;
	u32 nsnaps;  /* LIST serves tags 0..nsnaps-1 */
	u64 nchunks; /* CHANGELIST serves chunks 0, 2, 4, ... */
	pthread_t thread;
};

static u8 sbuf[sizeof(struct ddsnap_head_wire) + CTL_MAX_BODY];
static struct ctl_snap ssnaps[CTL_LIST_PAGE];
static u64 schunks[CTL_CHANGELIST_PAGE];

static void serve_one(struct fake *f, int fd)
{
	const size_t head = sizeof(struct ddsnap_head_wire);
	const char *why;
	size_t body;

	for (;;) {
		struct ctl_msg req = {0}, rep = {0};
		ssize_t n;

		if (unixsock_read_full(fd, sbuf, head) || ctl_frame(sbuf, &body, &why) ||
		    unixsock_read_full(fd, sbuf + head, body) ||
		    ctl_unpack(sbuf, head + body, &req, &why))
			return;
		rep.type = req.type | DDSNAP_MSG_REPLY;
		rep.seq = req.seq;
		switch (req.type) {
		case CTL_HELLO:
			rep.version = f->how == OLD_VERSION ? 0 : CTL_VERSION;
			rep.chunk_bits = 14;
			rep.origin_sectors = 2048;
			break;
		case CTL_DELETE:
			ctl_result_set(&rep.result, -EBUSY, "snapshot %u is held", req.tag);
			break;
		case CTL_LIST:
			rep.total = f->nsnaps;
			rep.snaps = ssnaps;
			for (u64 t = req.cursor; t < f->nsnaps && rep.count < CTL_LIST_PAGE; t++)
				ssnaps[rep.count++] = (struct ctl_snap){.tag = (u32)t, .gen = t};
			rep.next = req.cursor + rep.count < f->nsnaps ? req.cursor + rep.count
								      : CTL_CURSOR_END;
			break;
		case CTL_CHANGELIST:
			rep.chunks = schunks;
			rep.chunk_bits = 14;
			for (u64 i = req.cursor; i < f->nchunks && rep.count < CTL_CHANGELIST_PAGE;
			     i++)
				schunks[rep.count++] = 2 * i;
			rep.next = req.cursor + rep.count < f->nchunks ? req.cursor + rep.count
								       : CTL_CURSOR_END;
			break;
		default:
			break;
		}
		if (req.type != CTL_HELLO) {
			if (f->how == SILENT) {
				sleep(2);
				return;
			}
			if (f->how == HANGUP)
				return;
			if (f->how == WRONG_SEQ)
				rep.seq++;
		}
		n = ctl_pack(&rep, sbuf, sizeof(sbuf));
		if (req.type != CTL_HELLO && f->how == GARBAGE)
			memset(sbuf + 4, 0xee, 12);
		if (n < 0 || unixsock_write_full(fd, sbuf, (size_t)n))
			return;
	}
}

static void *fake_thread(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);

	if (fd >= 0) {
		serve_one(f, fd);
		close(fd);
	}
	return NULL;
}

/* Abstract names are machine-wide: the pid keeps concurrent runs (other checkouts) apart. */
static char sockname[64];

static void start(struct fake *f, enum behaviour how)
{
	f->how = how;
	snprintf(sockname, sizeof(sockname), "@ddsnap-test-ctl-client-%d", (int)getpid());
	f->lfd = unixsock_listen(sockname, 4);
	assert_true(f->lfd >= 0);
	pthread_create(&f->thread, NULL, fake_thread, f);
}

static void stop(struct fake *f)
{
	pthread_join(f->thread, NULL);
	close(f->lfd);
}

static int collect(const u64 *chunks, u32 n, void *arg)
{
	u64 *state = arg; /* [0] = count, [1] = next expected */

	for (u32 i = 0; i < n; i++) {
		if (chunks[i] != state[1])
			return -EILSEQ;
		state[1] += 2;
	}
	state[0] += n;
	return 0;
}

static void test_ctl_client__paging(void **state)
{
	struct fake f = {.nsnaps = 150, .nchunks = 10000};
	struct ctl_client *c;
	struct ctl_snap *snaps;
	struct ctl_result res;
	char why[200];
	u64 got[2] = {0, 0};
	u32 n;

	start(&f, GOOD);
	assert_int_equal(ctl_client_open(sockname, &c, why, sizeof(why)), 0);
	assert_int_equal(ctl_client_chunk_bits(c), 14);
	assert_int_equal(ctl_client_origin_sectors(c), 2048);
	assert_int_equal(ctl_client_list(c, &snaps, &n, &res, why, sizeof(why)), 0);
	assert_int_equal(n, 150);
	for (u32 i = 0; i < n; i++)
		assert_int_equal(snaps[i].tag, i);
	free(snaps);
	assert_int_equal(
		ctl_client_changelist(c, 1, DDSNAP_TAG_HEAD, collect, got, &res, why, sizeof(why)),
		0);
	assert_int_equal(got[0], 10000);
	{
		struct ctl_msg req = {.type = CTL_DELETE, .tag = 7}, rep = {0};

		assert_int_equal(ctl_client_call(c, &req, &rep, why, sizeof(why)), 0);
		assert_int_equal(rep.result.error, -EBUSY);
		assert_string_equal(rep.result.text, "snapshot 7 is held");
	}
	ctl_client_close(c);
	stop(&f);
}

static void bad_server(enum behaviour how, int want)
{
	struct fake f = {0};
	struct ctl_client *c;
	struct ctl_msg req = {.type = CTL_SYNC}, rep = {0};
	char why[200] = "";

	start(&f, how);
	if (how == OLD_VERSION) {
		assert_int_equal(ctl_client_open(sockname, &c, why, sizeof(why)), want);
		assert_non_null(strstr(why, "version"));
		stop(&f);
		return;
	}
	assert_int_equal(ctl_client_open(sockname, &c, why, sizeof(why)), 0);
	if (how == SILENT)
		ctl_client_set_timeout(c, 200);
	assert_int_equal(ctl_client_call(c, &req, &rep, why, sizeof(why)), want);
	assert_true(strlen(why) > 0);
	ctl_client_close(c);
	stop(&f);
}

static void test_ctl_client__bad_servers(void **state)
{
	bad_server(GARBAGE, -EPROTO);
	bad_server(WRONG_SEQ, -EPROTO);
	bad_server(HANGUP, -EPIPE);
	bad_server(SILENT, -ETIMEDOUT);
	bad_server(OLD_VERSION, -EPROTONOSUPPORT);
}

static void test_ctl_client__no_server(void **state)
{
	struct ctl_client *c;
	char why[200];

	assert_int_equal(ctl_client_open("@ddsnap-test-nobody-here", &c, why, sizeof(why)),
			 -ECONNREFUSED);
	assert_non_null(strstr(why, "cannot connect"));
	assert_int_equal(ctl_client_open("/nonexistent/dir/sock", &c, why, sizeof(why)), -ENOENT);
}

static void test_unixsock__names_and_stale_files(void **state)
{
	char path[] = "/tmp/ddsnap-test-sock-XXXXXX";
	char sock[64];
	struct sockaddr_un sa;
	socklen_t len;
	char longname[200];
	int l1, l2;

	assert_int_equal(unixsock_addr("", &sa, &len), -EINVAL);
	assert_int_equal(unixsock_addr("relative", &sa, &len), -EINVAL);
	assert_int_equal(unixsock_addr("@", &sa, &len), -EINVAL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = 0;
	assert_int_equal(unixsock_addr(longname, &sa, &len), -ENAMETOOLONG);

	assert_non_null(mkdtemp(path));
	snprintf(sock, sizeof(sock), "%s/s", path);
	l1 = unixsock_listen(sock, 1);
	assert_true(l1 >= 0);
	assert_int_equal(unixsock_listen(sock, 1), -EADDRINUSE); /* live: kept */
	close(l1);						 /* the file stays behind */
	l2 = unixsock_listen(sock, 1);				 /* stale: replaced */
	assert_true(l2 >= 0);
	close(l2);
	unlink(sock);
	rmdir(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctl_client__paging),
		cmocka_unit_test(test_ctl_client__bad_servers),
		cmocka_unit_test(test_ctl_client__no_server),
		cmocka_unit_test(test_unixsock__names_and_stale_files),
	};

	return cmocka_run_group_tests_name("ctl_client", tests, NULL, NULL);
}
