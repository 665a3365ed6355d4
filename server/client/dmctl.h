/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dmctl.h - the device-mapper operations the tools need, through libdevmapper: find the
 * ddsnap devices served by a server socket (all of them, or those of one tag), and
 * suspend/resume them around a snapshot.
 *
 * Devices are found by their table, never by their name: a device's name is whatever its
 * maker chose (the monitor's <vol>@GMT-..., <vol>@N by hand, anything else), its table says
 * which server and snapshot it shows.
 *
 * A ddsnap device's table parameters read "<snapstore maj:min> <origin maj:min> <socket>
 * <tag>" (the table line, with devices as numbers), tag -1 for the origin.  Suspending a
 * dm device flushes and freezes the filesystem on it and waits for in-flight I/O, which is
 * what makes a snapshot consistent.
 *
 * All functions block on device-mapper ioctls; none keeps state between calls.  They need
 * CAP_SYS_ADMIN.  Without udev, set DM_DISABLE_UDEV=1 (libdevmapper then makes the nodes).
 */
#ifndef DDSNAP_DMCTL_H
#define DDSNAP_DMCTL_H

#include "util/base.h"

#define DMCTL_NAME_MAX	 128
#define DMCTL_TAG_ORIGIN (-1LL)
#define DMCTL_TAG_ANY	 (-2LL) /* dmctl_find: every tag */

struct dmctl_dev {
	char name[DMCTL_NAME_MAX];
	s64 tag; /* DMCTL_TAG_ORIGIN or a snapshot tag */
	bool suspended;
	u32 open_count; /* opens of the device node (mounts, processes) when it was found */
};

/*
 * Lists the dm devices that have a ddsnap target talking to @sock (the socket path exactly as
 * in the table) with tag @tag: DMCTL_TAG_ORIGIN, a snapshot tag, or DMCTL_TAG_ANY for origin
 * and snapshots.  Returns the number found (the first @max, in *@devs) or -errno (-ENODEV:
 * the kernel has no device-mapper, so no device can be using the socket).
 */
int dmctl_find(const char *sock, s64 tag, struct dmctl_dev *devs, int max);

/* The device node of dm device @name, "<dm_dir()>/<name>" (/dev/mapper/<name>); malloc'ed. */
char *dmctl_dev_path(const char *name);

/* Suspends (flushing and freezing the filesystem) or resumes device @name. Returns 0/-errno. */
int dmctl_suspend(const char *name);
int dmctl_resume(const char *name);

/*
 * Parses ddsnap table parameters.  Returns 0 and the socket and tag, or -EINVAL.
 * Pure; exposed for tests.
 */
int dmctl_parse_params(const char *params, char *sock, size_t socklen, s64 *tag);

#endif
