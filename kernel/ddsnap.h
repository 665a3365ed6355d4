/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ddsnap.h - state shared by the files of the ddsnap target (kernel only).
 *
 * One struct ddsnap_dev per dm target instance (one origin or one snapshot device).  The
 * table line is `<snapstore_dev> <origin_dev> <server_socket> <tag>`; tag -1 selects the
 * origin, any other u32 below DDSNAP_TAG_ORIGIN names a snapshot.
 */
#ifndef DDSNAP_KERNEL_H
#define DDSNAP_KERNEL_H

#include <linux/device-mapper.h>
#include <linux/un.h>

#include "ddsnap_wire.h"

#define DM_MSG_PREFIX "ddsnap"

struct ddsnap_dev {
	struct dm_target *ti;
	struct dm_dev *snapstore;
	struct dm_dev *origin;
	u32 tag;			   /* DDSNAP_TAG_ORIGIN for the origin device */
	struct sockaddr_un addr;	   /* server socket, abstract if sun_path[0] == 0 */
	int addrlen;			   /* bytes of addr actually used */
	char sock_name[UNIX_PATH_MAX + 1]; /* as written in the table, for status and logs */
};

static inline bool ddsnap_is_origin(const struct ddsnap_dev *dc)
{
	return dc->tag == DDSNAP_TAG_ORIGIN;
}

#endif /* DDSNAP_KERNEL_H */
