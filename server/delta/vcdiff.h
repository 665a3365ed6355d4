/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vcdiff.h - the parts of RFC 3284 (VCDIFF) the xdelta3 codec needs to cut xdelta3's output
 * into one standalone window per extent: the file header, window headers, and a re-encoder
 * for a window whose copies stray outside its extent's source slot.  Used by delta_codec.c
 * only.  Pure functions on memory: no I/O, no locks, no allocation except in vc_rewrite.
 *
 * Errors: -EILSEQ malformed bytes (every length is checked against @end before use),
 * -EOPNOTSUPP a window vc_rewrite cannot or need not re-encode (the caller falls back).
 */
#ifndef DDSNAP_VCDIFF_H
#define DDSNAP_VCDIFF_H

#include "util/base.h"
#include <sys/types.h>

/* Window indicator bits (RFC 3284 section 4.2, plus xdelta3's checksum). */
#define VCD_SOURCE  0x01
#define VCD_TARGET  0x02
#define VCD_ADLER32 0x04 /* xdelta3 extension: checksum in the delta encoding */

/* One parsed window. */
struct vc_window {
	u8 ind;
	u64 seg_len, seg_pos;
	u64 tgt_len;
	const u8 *enc; /* delta encoding (after its length) */
	u64 enc_len;
	const u8 *end; /* first byte after the window */
};

/* Length of the VCDIFF file header at @p (@len bytes), or -EILSEQ. */
int vc_header_len(const u8 *p, size_t len);
/* Parses the window at @p (before @end) into @w.  Returns 0 or -EILSEQ.  O(1). */
int vc_window_parse(const u8 *p, const u8 *end, struct vc_window *w);
/* Writes window @w with its source segment moved to @pos; returns bytes written to @o. */
size_t vc_window_emit(u8 *o, const struct vc_window *w, u64 pos);
/*
 * Re-encodes window @w of the extent whose source slot starts at @base as a standalone
 * window into @o (at most @cap bytes); @tgt is the target (len bytes, zeros beyond).
 * Returns the window length, or a negative errno (-EOPNOTSUPP: not worth it or unsupported).
 * The result must still be verified by decoding (delta_codec.c does, for every payload).
 */
ssize_t vc_rewrite(const struct vc_window *w, u64 base, size_t slot, const u8 *src, const u8 *tgt,
		   size_t len, u8 *o, size_t cap);

#endif
