/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * zfsid.h - NFS fsids for the monitor's exports: a 128-bit name-based uuid (RFC 4122
 * version 5, SHA-1) of the volume's uuid and the snapshot, and a check against the fsids
 * every other export on the box already uses.
 *
 * Why: mountd identifies an export by its filesystem's uuid, and every snapshot of a volume
 * carries the origin's filesystem uuid; so each export needs its own fsid=, stable across
 * restarts and reboots (clients hold file handles) and unique on the box.  The original
 * monitor used cksum of "$vol$snap" (31 bits, ambiguous concatenation): collisions.  Here the
 * name hashed is fixed-length and unambiguous:
 *
 *	"zumastor-nfs-fsid" (17 bytes) | volume uuid (16 bytes) | snapshot (8 bytes, big-endian:
 *	its time, or ZFSID_ORIGIN for the origin)
 *
 * under the namespace ZFSID_NAMESPACE, so fsid = f(volume uuid, snapshot) and nothing else:
 * moving the mount path changes nothing.  SHA-1 is used as RFC 4122 section 4.3 prescribes
 * for version 5 (a name-based identifier, not a security property).
 *
 * Pure functions, thread-safe.
 */
#ifndef ZUMASTOR_ZFSID_H
#define ZUMASTOR_ZFSID_H

#include <stddef.h>
#include <stdint.h>

#define ZFSID_ORIGIN UINT64_MAX

/* The namespace uuid of zumastor fsids (random, fixed forever). */
extern const uint8_t ZFSID_NAMESPACE[16];

/* SHA-1 (FIPS 180-4) of @len bytes at @data into @out. */
void zfsid_sha1(const void *data, size_t len, uint8_t out[20]);

/* RFC 4122 version 5 uuid of @name under namespace @ns. */
void zfsid_uuid5(const uint8_t ns[16], const void *name, size_t len, uint8_t out[16]);

/* The fsid of snapshot @snap (its time; ZFSID_ORIGIN: the origin) of volume @vol_uuid. */
void zfsid_derive(const uint8_t vol_uuid[16], uint64_t snap, uint8_t out[16]);

/*
 * Scans @text, exports(5) lines (/etc/exports, /etc/exports.d/x.exports) or `exportfs -v`
 * output, for "fsid=" options and compares each with @fsid (a uuid: any 32 hex digits, any
 * dashes; numbers and "root" never equal a uuid).  Lines whose export path is @skip_path
 * are ignored (the export being rewritten).  Returns 0 if @fsid is free, -EEXIST if another
 * export uses it (the path into @clash, @clashlen bytes).  O(len).
 */
int zfsid_check_free(const char *text, const uint8_t fsid[16], const char *skip_path, char *clash,
		     size_t clashlen);

#endif
