// SPDX-License-Identifier: GPL-2.0-only
/*
 * zfsid.c - SHA-1, version 5 uuids and the fsid collision check (zfsid.h).
 *
 * SHA-1 is written out here (FIPS 180-4, about sixty lines) rather than linked from a crypto
 * library: the monitor needs it for one name-based identifier and nothing else, and the unit
 * test pins it to the standard's test vectors.  No state, no locking, no I/O.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "zconf.h"
#include "zfsid.h"

/* Drawn at random once (uuid4) for this purpose; changing it changes every fsid. */
const uint8_t ZFSID_NAMESPACE[16] = {0x62, 0xfc, 0x0b, 0xe2, 0xff, 0xb5, 0x44, 0x47,
				     0xaa, 0x66, 0x50, 0x23, 0x96, 0xb2, 0x6a, 0xe8};

static uint32_t rol(uint32_t v, int n)
{
	return (v << n) | (v >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		uint32_t f, k, t;

		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

void zfsid_sha1(const void *data, size_t len, uint8_t out[20])
{
	uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
	const uint8_t *p = data;
	uint8_t tail[128] = {0};
	size_t full = len / 64 * 64, rest = len - full, tlen;
	uint64_t bits = (uint64_t)len * 8;

	for (size_t i = 0; i < full; i += 64)
		sha1_block(h, p + i);
	memcpy(tail, p + full, rest);
	tail[rest] = 0x80;
	tlen = rest + 1 + 8 <= 64 ? 64 : 128;
	for (int i = 0; i < 8; i++)
		tail[tlen - 1 - i] = (uint8_t)(bits >> (8 * i));
	for (size_t i = 0; i < tlen; i += 64)
		sha1_block(h, tail + i);
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 4; j++)
			out[4 * i + j] = (uint8_t)(h[i] >> (24 - 8 * j));
}

void zfsid_uuid5(const uint8_t ns[16], const void *name, size_t len, uint8_t out[16])
{
	uint8_t buf[16 + 256], sum[20];

	/* Names here are short and fixed; a longer one is a caller bug. */
	if (len > 256)
		len = 256;
	memcpy(buf, ns, 16);
	memcpy(buf + 16, name, len);
	zfsid_sha1(buf, 16 + len, sum);
	memcpy(out, sum, 16);
	out[6] = (uint8_t)((out[6] & 0x0f) | 0x50); /* version 5 */
	out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

void zfsid_derive(const uint8_t vol_uuid[16], uint64_t snap, uint8_t out[16])
{
	static const char tag[17] = "zumastor-nfs-fsid"; /* exactly 17 bytes, no NUL */
	uint8_t name[17 + 16 + 8];

	memcpy(name, tag, 17);
	memcpy(name + 17, vol_uuid, 16);
	for (int i = 0; i < 8; i++)
		name[33 + i] = (uint8_t)(snap >> (56 - 8 * i));
	zfsid_uuid5(ZFSID_NAMESPACE, name, sizeof(name), out);
}

/* The export path of the line starting at @line (up to whitespace or end of line). */
static size_t path_len(const char *line)
{
	return strcspn(line, " \t\n");
}

int zfsid_check_free(const char *text, const uint8_t fsid[16], const char *skip_path, char *clash,
		     size_t clashlen)
{
	const char *path = NULL;

	for (const char *line = text; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);

		/* A line starting in column 0 with a path opens an export; an indented one
		 * continues the previous (exportfs -v puts long paths on a line of their own). */
		if (line[0] == '/' || line[0] == '"')
			path = line;
		else if (line[0] == '#')
			goto next;
		for (const char *p = line; p < line + len; p++) {
			char val[64];
			size_t vlen;
			uint8_t u[16];

			if (strncmp(p, "fsid=", 5) || (p > line && !strchr("(,- \t", p[-1])))
				continue;
			vlen = strcspn(p + 5, ",) \t\n");
			if (vlen >= sizeof(val) || !path)
				continue;
			memcpy(val, p + 5, vlen);
			val[vlen] = 0;
			if (zconf_parse_uuid(val, u) || memcmp(u, fsid, 16))
				continue;
			if (skip_path && path_len(path) == strlen(skip_path) &&
			    !strncmp(path, skip_path, path_len(path)))
				continue;
			if (clash && clashlen)
				snprintf(clash, clashlen, "%.*s", (int)path_len(path), path);
			return -EEXIST;
		}
	next:
		line += len + (end != NULL);
	}
	return 0;
}
