// SPDX-License-Identifier: GPL-2.0-only
/*
 * ddsnap-target.c - the ddsnap device-mapper target: table parsing, ctr/dtr, module init.
 *
 * What.  A ddsnap device is either the origin of a snapshotted volume (tag -1) or one of its
 * snapshots (tag >= 0).  The data stays on <origin_dev>; copied-out chunks live on
 * <snapstore_dev>; every decision about which chunk lives where belongs to the userspace
 * metadata server ddsnapd, reached over the AF_UNIX stream socket <server_socket>.
 *
 * Invariants.  A constructed target holds a reference on both devices and a validated server
 * address.  The ctr refuses any table line it cannot fully validate, with ti->error set and a
 * kernel log line naming the culprit; a failed ctr leaves nothing allocated or referenced.
 *
 * Locking.  ctr and dtr are serialized by dm core (table load and destroy), so this file
 * needs no locks of its own.
 *
 * Crash argument.  This file keeps no state of its own across a crash: the table line is
 * re-read on the next load and the server owns all metadata.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/net.h>
#include <linux/socket.h>
#include <net/net_namespace.h>

#include "ddsnap.h"

/*----------------------------------------------------------------*/

/* Table argument parsing.  Each parser sets ti->error and logs the offending value. */

static int ddsnap_parse_tag(struct dm_target *ti, const char *arg, u32 *tag)
{
	s64 v;
	int r;

	r = kstrtos64(arg, 10, &v);
	if (r == -ERANGE || (!r && (v < -1 || v > DDSNAP_TAG_MAX))) {
		DMERR("tag '%s' out of range: -1 (origin) or 0..%u (snapshot)", arg,
		      DDSNAP_TAG_MAX);
		ti->error = "Snapshot tag out of range";
		return -ERANGE;
	}
	if (r) {
		DMERR("tag '%s' is not a number", arg);
		ti->error = "Snapshot tag is not a number";
		return -EINVAL;
	}
	*tag = v == -1 ? DDSNAP_TAG_ORIGIN : (u32)v;
	return 0;
}

/*
 * A server socket is an absolute path, or '@name' for the abstract namespace (the '@'
 * becomes the leading NUL of sun_path).  Either must fit sun_path.
 */
static int ddsnap_parse_socket(struct dm_target *ti, struct ddsnap_dev *dc, const char *arg)
{
	size_t len = strlen(arg);

	if (!len) {
		DMERR("server socket path is empty");
		ti->error = "Server socket path is empty";
		return -EINVAL;
	}
	if (arg[0] != '/' && arg[0] != '@') {
		DMERR("server socket '%s' is neither an absolute path nor '@abstract'", arg);
		ti->error = "Server socket path must be absolute or @abstract";
		return -EINVAL;
	}
	if (arg[0] == '@' && len == 1) {
		DMERR("server socket '@' names no abstract socket");
		ti->error = "Server socket path is empty";
		return -EINVAL;
	}
	/* A path needs its terminating NUL inside sun_path; an abstract name does not. */
	if (arg[0] == '/' ? len >= UNIX_PATH_MAX : len > UNIX_PATH_MAX) {
		DMERR("server socket path is %zu bytes, longer than sun_path (%d)", len,
		      UNIX_PATH_MAX);
		ti->error = "Server socket path too long";
		return -ENAMETOOLONG;
	}
	memset(&dc->addr, 0, sizeof(dc->addr));
	dc->addr.sun_family = AF_UNIX;
	memcpy(dc->addr.sun_path, arg, len);
	if (arg[0] == '@') {
		dc->addr.sun_path[0] = 0;
		dc->addrlen = offsetof(struct sockaddr_un, sun_path) + len;
	} else {
		dc->addrlen = sizeof(dc->addr);
	}
	strscpy(dc->sock_name, arg, sizeof(dc->sock_name));
	return 0;
}

static int ddsnap_get_dev(struct dm_target *ti, const char *path, fmode_t mode, const char *what,
			  struct dm_dev **dev)
{
	int r = dm_get_device(ti, path, mode, dev);

	if (r) {
		DMERR("cannot open %s device '%s': error %d", what, path, r);
		ti->error = !strcmp(what, "origin") ? "Cannot open origin device"
						    : "Cannot open snapstore device";
	}
	return r;
}

/*----------------------------------------------------------------*/

/* Server connection: step one only proves the socket is reachable. */

static int ddsnap_connect_once(struct ddsnap_dev *dc, struct socket **res)
{
	struct socket *sock;
	int r;

	r = sock_create_kern(&init_net, AF_UNIX, SOCK_STREAM, 0, &sock);
	if (r)
		return r;
	r = kernel_connect(sock, (struct sockaddr *)&dc->addr, dc->addrlen, 0);
	if (r) {
		sock_release(sock);
		return r;
	}
	*res = sock;
	return 0;
}

/*----------------------------------------------------------------*/

/* Target methods. */

/*
 * <snapstore_dev> <origin_dev> <server_socket> <tag>
 */
static int ddsnap_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct ddsnap_dev *dc;
	struct socket *sock;
	fmode_t mode = dm_table_get_mode(ti->table);
	int r;

	if (argc != 4) {
		DMERR("expected 4 arguments <snapstore_dev> <origin_dev> <server_socket> <tag>, "
		      "got %u",
		      argc);
		ti->error = "Wrong argument count: usage <snapstore_dev> <origin_dev> "
			    "<server_socket> <tag>";
		return -EINVAL;
	}

	dc = kzalloc(sizeof(*dc), GFP_KERNEL);
	if (!dc) {
		ti->error = "Cannot allocate ddsnap context";
		return -ENOMEM;
	}
	dc->ti = ti;

	r = ddsnap_parse_tag(ti, argv[3], &dc->tag);
	if (r)
		goto out_free_dc;
	r = ddsnap_parse_socket(ti, dc, argv[2]);
	if (r)
		goto out_free_dc;
	r = ddsnap_get_dev(ti, argv[0], mode, "snapstore", &dc->snapstore);
	if (r)
		goto out_free_dc;
	r = ddsnap_get_dev(ti, argv[1], mode, "origin", &dc->origin);
	if (r)
		goto out_put_snapstore;

	r = ddsnap_connect_once(dc, &sock);
	if (r) {
		DMERR("cannot connect to server socket '%s': error %d", dc->sock_name, r);
		ti->error = "Cannot connect to server socket";
		goto out_put_origin;
	}
	sock_release(sock);
	DMERR("server socket '%s' reachable but the protocol is not implemented yet",
	      dc->sock_name);
	ti->error = "Server protocol not implemented yet";
	r = -EOPNOTSUPP;

out_put_origin:
	dm_put_device(ti, dc->origin);
out_put_snapstore:
	dm_put_device(ti, dc->snapstore);
out_free_dc:
	kfree(dc);
	return r;
}

static void ddsnap_dtr(struct dm_target *ti)
{
	struct ddsnap_dev *dc = ti->private;

	dm_put_device(ti, dc->origin);
	dm_put_device(ti, dc->snapstore);
	kfree(dc);
}

static int ddsnap_map(struct dm_target *ti, struct bio *bio)
{
	return DM_MAPIO_KILL;
}

static struct target_type ddsnap_target = {
	.name = "ddsnap",
	.version = {0, 1, 0},
	.module = THIS_MODULE,
	.ctr = ddsnap_ctr,
	.dtr = ddsnap_dtr,
	.map = ddsnap_map,
};

static int __init dm_ddsnap_init(void)
{
	int r = dm_register_target(&ddsnap_target);

	if (r)
		DMERR("register failed %d", r);
	return r;
}

static void __exit dm_ddsnap_exit(void)
{
	dm_unregister_target(&ddsnap_target);
}

module_init(dm_ddsnap_init);
module_exit(dm_ddsnap_exit);

MODULE_DESCRIPTION(DM_NAME " ddsnap snapshot target (userspace metadata server)");
MODULE_AUTHOR("Zumastor developers");
MODULE_LICENSE("GPL");
