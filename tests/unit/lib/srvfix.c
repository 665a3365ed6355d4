// SPDX-License-Identifier: GPL-2.0-only
/*
 * srvfix.c - a volume served by a real server on a test thread (srvfix.h).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>
#include "srvfix.h"
#include "blk/bdev.h"
#include "daemon/server.h"
#include "store/store.h"
#include "snap/volume.h"

static int make_file(const char *path, u64 bytes, const void *data)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	int r = fd < 0 || ftruncate(fd, (off_t)bytes) ? -1 : 0;

	if (!r && data && pwrite(fd, data, bytes, 0) != (ssize_t)bytes)
		r = -1;
	if (fd >= 0)
		close(fd);
	return r;
}

int srvfix_create(struct srvfix *f, const char *dir, const char *name, u32 chunk_shift,
		  u64 origin_bytes, u64 store_bytes, const void *data)
{
	struct store_format_params fp = {.chunk_shift = chunk_shift, .origin_bytes = origin_bytes};
	struct bdev *b;
	char why[300];
	int r;

	snprintf(f->store, sizeof(f->store), "%s/%s-store", dir, name);
	snprintf(f->origin, sizeof(f->origin), "%s/%s", dir, name);
	snprintf(f->sock, sizeof(f->sock), "%s/%s.sock", dir, name);
	f->chunk_size = 1u << chunk_shift;
	f->origin_bytes = origin_bytes;
	if (make_file(f->store, store_bytes, NULL) || make_file(f->origin, origin_bytes, data))
		return -1;
	if (bdev_open(f->store, 0, &b))
		return -1;
	r = store_format(b, NULL, &fp, why, sizeof(why));
	bdev_close(b);
	if (r)
		fprintf(stderr, "store_format %s: %s\n", f->store, why);
	return r ? -1 : 0;
}

static void *serve(void *arg)
{
	server_run(((struct srvfix *)arg)->srv);
	return NULL;
}

int srvfix_start(struct srvfix *f)
{
	struct volume_params p = {.snapstore = f->store, .origin = f->origin};
	char why[300];

	if (server_create(f->sock, &f->srv, why, sizeof(why))) {
		fprintf(stderr, "server_create %s: %s\n", f->sock, why);
		return -1;
	}
	p.invalidate = server_invalidate;
	p.invalidate_priv = f->srv;
	if (volume_open(&p, &f->vol, why, sizeof(why))) {
		fprintf(stderr, "volume_open: %s\n", why);
		server_destroy(f->srv);
		return -1;
	}
	if (f->limits)
		server_set_limits(f->srv, f->limits);
	if (f->allow_group && server_allow_group(f->srv, f->group, why, sizeof(why))) {
		fprintf(stderr, "server_allow_group: %s\n", why);
		return -1;
	}
	server_attach(f->srv, f->vol);
	return pthread_create(&f->thread, NULL, serve, f) ? -1 : 0;
}

void srvfix_stop(struct srvfix *f)
{
	server_stop(f->srv);
	pthread_join(f->thread, NULL);
	assert_int_equal(volume_close(f->vol), 0);
	server_destroy(f->srv);
}

void srvfix_origin_write(struct srvfix *f, u64 chunk, u32 n, const void *data)
{
	struct volume_range r = {chunk, n};
	size_t len = (size_t)n * f->chunk_size;
	u64 gen;
	int fd = open(f->origin, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(volume_origin_write(f->vol, &r, 1, &gen), 0);
	assert_int_equal(pwrite(fd, data, len, (off_t)(chunk * f->chunk_size)), (ssize_t)len);
	close(fd);
}

void srvfix_export(struct srvfix *f, u32 tag, const char *out)
{
	int ofd = open(f->origin, O_RDONLY), sfd = open(f->store, O_RDONLY);
	int wfd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	u8 *buf = malloc(f->chunk_size);

	assert_true(ofd >= 0 && sfd >= 0 && wfd >= 0 && buf);
	for (u64 c = 0; c < f->origin_bytes / f->chunk_size; c++) {
		bool from_origin;
		u64 addr;

		assert_int_equal(volume_snap_read(f->vol, tag, c, &from_origin, &addr), 0);
		assert_int_equal(pread(from_origin ? ofd : sfd, buf, f->chunk_size,
				       (off_t)((from_origin ? c : addr) * f->chunk_size)),
				 (ssize_t)f->chunk_size);
		assert_int_equal(pwrite(wfd, buf, f->chunk_size, (off_t)(c * f->chunk_size)),
				 (ssize_t)f->chunk_size);
	}
	free(buf);
	close(ofd);
	close(sfd);
	close(wfd);
}

u8 *srvfix_slurp(const char *path, size_t len)
{
	u8 *p = malloc(len);
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0 && p);
	assert_int_equal(pread(fd, p, len, 0), (ssize_t)len);
	close(fd);
	return p;
}
