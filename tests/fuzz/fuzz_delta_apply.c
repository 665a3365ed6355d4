// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_delta_apply.c - libFuzzer target for the delta library's apply (delta_xfer.h): any
 * input applied to an origin file must end in success or a clean -errno with a message,
 * never a crash, a leak, an overrun or a write outside the origin.  The devices are files
 * in a private temporary folder: the origin "o" and the snapshots "o(1)".."o(3)", 1 MiB
 * each; the resume token is removed before every input so runs stay independent.  Built
 * with -DFUZZING (the stream's own checksums are skipped, so the reader's structural checks
 * and apply's resume, skip and write paths are reached); apply's source and target
 * checksums still hold, so no xdelta3 process is started for a random payload.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "delta/delta_xfer.h"

#define VOL_BYTES (1u << 20)

static char dir[] = "/tmp/fuzz_delta_applyXXXXXX";
static char stem[64], token[64];

static void put(const char *path)
{
	static u8 buf[VOL_BYTES];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (u8)(i * 131 + (i >> 12));
	if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		abort();
	close(fd);
}

static void cleanup(void)
{
	char path[96];

	for (int t = 1; t <= 3; t++) {
		snprintf(path, sizeof(path), "%s(%d)", stem, t);
		unlink(path);
	}
	unlink(stem);
	unlink(token);
	rmdir(dir);
}

static void setup(void)
{
	char path[96];

	if (!mkdtemp(dir))
		abort();
	snprintf(stem, sizeof(stem), "%s/o", dir);
	snprintf(token, sizeof(token), "%s/token", dir);
	put(stem);
	for (int t = 1; t <= 3; t++) {
		snprintf(path, sizeof(path), "%s(%d)", stem, t);
		put(path);
	}
	atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	struct delta_apply_params p = {.cmd = "delta", .name = "input", .devstem = stem};
	struct delta_apply_stats st;
	struct delta_error e;
	int fd, rc;

	if (!*stem)
		setup();
	unlink(token);
	fd = memfd_create("delta", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET))
		abort();
	p.in_fd = fd;
	/* the first byte chooses --check or a token, as the CLI allows */
	p.check = size && (data[0] & 1);
	p.token = size && !(data[0] & 1) && (data[0] & 2) ? token : NULL;
	rc = delta_apply_stream(&p, &st, &e);
	close(fd);
	if (rc > 0 || (rc < 0 && !e.len && rc != -ECANCELED) || e.len >= sizeof(e.msg) ||
	    strlen(e.msg) != e.len)
		abort(); /* the contract: a failure always says why */
	return 0;
}
