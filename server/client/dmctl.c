// SPDX-License-Identifier: GPL-2.0-only
/*
 * dmctl.c - libdevmapper calls for the tools (dmctl.h).
 *
 * Listing walks every dm device and reads its table: there is no index from a socket path
 * to devices, and the number of dm devices on a NAS is small (one per live snapshot that is
 * mounted, a few hundred at most).  The tag filter is applied while walking, so a caller
 * that wants the origin finds it however many snapshot devices the socket has.  Resume goes through a udev
 * cookie so that on a system with udev the device nodes are settled when it returns.
 */
#include "client/dmctl.h"
#include "ddsnap_wire.h"
#include <libdevmapper.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The kernel's device-mapper control device; without it libdevmapper only prints errors. */
#define DM_MISC_DEVICE "/sys/class/misc/device-mapper"

int dmctl_parse_params(const char *params, char *sock, size_t socklen, s64 *tag)
{
	char a[64], b[64], s[256], t[32], extra[2];
	char *end;
	long long v;

	if (sscanf(params, "%63s %63s %255s %31s %1s", a, b, s, t, extra) != 4)
		return -EINVAL;
	errno = 0;
	v = strtoll(t, &end, 10);
	if (errno || *end || v < -1 || v > DDSNAP_TAG_MAX)
		return -EINVAL;
	if (strlen(s) >= socklen)
		return -ENAMETOOLONG;
	strcpy(sock, s);
	*tag = v;
	return 0;
}

static int read_table(const char *name, const char *sock, s64 want, struct dmctl_dev *dev)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_TABLE);
	struct dm_info info;
	void *next = NULL;
	int found = 0;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_name(dmt, name) || !dm_task_run(dmt) || !dm_task_get_info(dmt, &info) ||
	    !info.exists) {
		dm_task_destroy(dmt);
		return 0; /* vanished meanwhile */
	}
	do {
		u64 start, length;
		char *type = NULL, *params = NULL;
		char s[256];
		s64 tag;

		next = dm_get_next_target(dmt, next, &start, &length, &type, &params);
		if (type && !strcmp(type, "ddsnap") && params &&
		    !dmctl_parse_params(params, s, sizeof(s), &tag) && !strcmp(s, sock) &&
		    (want == DMCTL_TAG_ANY || tag == want)) {
			snprintf(dev->name, sizeof(dev->name), "%s", name);
			dev->tag = tag;
			dev->suspended = info.suspended;
			dev->open_count = info.open_count > 0 ? (u32)info.open_count : 0;
			found = 1;
			break;
		}
	} while (next);
	dm_task_destroy(dmt);
	return found;
}

int dmctl_find(const char *sock, s64 tag, struct dmctl_dev *devs, int max)
{
	struct dm_task *dmt;
	struct dm_names *names;
	unsigned next = 0;
	int n = 0;

	if (access(DM_MISC_DEVICE, F_OK))
		return -ENODEV;
	dmt = dm_task_create(DM_DEVICE_LIST);
	if (!dmt)
		return -ENOMEM;
	if (!dm_task_run(dmt)) {
		dm_task_destroy(dmt);
		return -ENODEV;
	}
	names = dm_task_get_names(dmt);
	if (names && names->dev) {
		do {
			names = (struct dm_names *)((char *)names + next);
			if (n < max) {
				int r = read_table(names->name, sock, tag, &devs[n]);

				if (r < 0) {
					n = r;
					break;
				}
				n += r;
			}
			next = names->next;
		} while (next);
	}
	dm_task_destroy(dmt);
	return n;
}

char *dmctl_dev_path(const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dm_dir(), name) < 0)
		abort();
	return p;
}

static int simple_task(int type, const char *name)
{
	struct dm_task *dmt = dm_task_create(type);
	uint32_t cookie = 0;
	int ok;

	if (!dmt)
		return -ENOMEM;
	ok = dm_task_set_name(dmt, name);
	if (ok && type == DM_DEVICE_RESUME)
		ok = dm_task_set_cookie(dmt, &cookie, 0);
	if (ok)
		ok = dm_task_run(dmt);
	if (type == DM_DEVICE_RESUME && cookie)
		dm_udev_wait(cookie);
	dm_task_destroy(dmt);
	return ok ? 0 : -EIO;
}

int dmctl_suspend(const char *name)
{
	return simple_task(DM_DEVICE_SUSPEND, name);
}

int dmctl_resume(const char *name)
{
	return simple_task(DM_DEVICE_RESUME, name);
}
