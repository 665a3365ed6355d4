// SPDX-License-Identifier: GPL-2.0-only
/*
 * vcdiff.c - RFC 3284 (VCDIFF) parsing and rewriting for the xdelta3 codec (delta_codec.c):
 * base-128 integers, the file header, window headers, and vc_rewrite, which re-encodes a
 * window standalone when xdelta3 made it copy from another extent's source.
 *
 * Invariants.  Every decoder checks each length against the end of its buffer before use;
 * vc_rewrite's output is only a candidate: delta_codec.c decodes every differencing payload
 * and compares it with the target before it is returned.
 *
 * Locking.  The default code table is built once (pthread_once); everything else works on
 * the caller's memory only.  Nothing here touches a disk, so there is no crash argument.
 */
#include "delta/vcdiff.h"
#include <pthread.h>
#include <string.h>

/* The VCDIFF magic (RFC 3284 section 4.1) and the header indicator bits we handle. */
static const u8 vcdiff_magic[4] = {0xd6, 0xc3, 0xc4, 0x00};
#define VCD_DECOMPRESS 0x01
#define VCD_CODETABLE  0x02
#define VCD_APPHEADER  0x04
#define VCD_HDR_MAX    64 /* longest file header we keep (magic, indicator, id, app header) */

/* RFC 3284 integers: base 128, most significant digit first, high bit = more follow. */
static int vc_get(const u8 **p, const u8 *end, u64 *v)
{
	u64 x = 0;

	for (int i = 0; i < 9; i++) {
		if (*p >= end)
			return -EILSEQ;
		u8 b = *(*p)++;

		x = (x << 7) | (b & 0x7f);
		if (!(b & 0x80)) {
			*v = x;
			return x >> 62 ? -EILSEQ : 0;
		}
	}
	return -EILSEQ;
}

static size_t vc_put(u8 *p, u64 v)
{
	u8 tmp[10];
	size_t n = 0, k = 0;

	do {
		tmp[n++] = v & 0x7f;
		v >>= 7;
	} while (v);
	while (n--)
		p[k++] = tmp[n] | (n ? 0x80 : 0);
	return k;
}

/* Length of the VCDIFF file header at @p, or -EILSEQ. */
int vc_header_len(const u8 *p, size_t len)
{
	const u8 *q = p + 5, *end = p + len;
	u64 applen;

	if (len < 5 || memcmp(p, vcdiff_magic, 4))
		return -EILSEQ;
	if (p[4] & ~(VCD_DECOMPRESS | VCD_APPHEADER))
		return -EILSEQ; /* custom code tables are not accepted */
	if (p[4] & VCD_DECOMPRESS) {
		if (q >= end)
			return -EILSEQ;
		q++;
	}
	if (p[4] & VCD_APPHEADER) {
		if (vc_get(&q, end, &applen) || applen > (u64)(end - q))
			return -EILSEQ;
		q += applen;
	}
	return (q - p) > VCD_HDR_MAX ? -EILSEQ : (int)(q - p);
}

int vc_window_parse(const u8 *p, const u8 *end, struct vc_window *w)
{
	const u8 *q = p, *e;
	u64 v;

	if (q >= end)
		return -EILSEQ;
	w->ind = *q++;
	if (w->ind & ~(VCD_SOURCE | VCD_TARGET | VCD_ADLER32))
		return -EILSEQ;
	w->seg_len = w->seg_pos = 0;
	if (w->ind & (VCD_SOURCE | VCD_TARGET)) {
		if (vc_get(&q, end, &w->seg_len) || vc_get(&q, end, &w->seg_pos))
			return -EILSEQ;
	}
	if (vc_get(&q, end, &w->enc_len) || w->enc_len > (u64)(end - q))
		return -EILSEQ;
	w->enc = q;
	w->end = q + w->enc_len;
	e = q;
	if (vc_get(&e, w->end, &v))
		return -EILSEQ;
	w->tgt_len = v;
	return 0;
}

/* Writes window @w with its source segment moved to @pos; returns bytes written to @o. */
size_t vc_window_emit(u8 *o, const struct vc_window *w, u64 pos)
{
	size_t k = 0;

	o[k++] = w->ind;
	if (w->ind & (VCD_SOURCE | VCD_TARGET)) {
		k += vc_put(o + k, w->seg_len);
		k += vc_put(o + k, pos);
	}
	k += vc_put(o + k, w->enc_len);
	memcpy(o + k, w->enc, w->enc_len);
	return k + w->enc_len;
}

/*
 * Rewriting a window that strays out of its slot.  xdelta3 indexes the whole batch source,
 * so text with a shared vocabulary often copies from another extent's source.  We know the
 * target bytes, so such a window can be re-encoded standalone: copies from the extent's own
 * source slot stay copies (rebased), copies from earlier target bytes stay copies, runs stay
 * runs, and everything else becomes literal ADDs.  Parsing uses the RFC 3284 default code
 * table and address cache; emitting uses only single-instruction opcodes in VCD_SELF mode.
 * The result is verified by decoding like every other differencing payload.
 */
enum { VC_NOOP, VC_ADD, VC_RUN, VC_COPY };

struct vc_inst {
	u8 type, size, mode;
};

static struct vc_inst vc_table[256][2];
static pthread_once_t vc_table_once = PTHREAD_ONCE_INIT;

static void vc_table_init(void)
{
	unsigned i = 0;

	vc_table[i++][0] = (struct vc_inst){VC_RUN, 0, 0};
	for (u8 s = 0; s <= 17; s++)
		vc_table[i++][0] = (struct vc_inst){VC_ADD, s, 0};
	for (u8 m = 0; m <= 8; m++) {
		vc_table[i++][0] = (struct vc_inst){VC_COPY, 0, m};
		for (u8 s = 4; s <= 18; s++)
			vc_table[i++][0] = (struct vc_inst){VC_COPY, s, m};
	}
	for (u8 m = 0; m <= 5; m++)
		for (u8 a = 1; a <= 4; a++)
			for (u8 s = 4; s <= 6; s++) {
				vc_table[i][0] = (struct vc_inst){VC_ADD, a, 0};
				vc_table[i++][1] = (struct vc_inst){VC_COPY, s, m};
			}
	for (u8 m = 6; m <= 8; m++)
		for (u8 a = 1; a <= 4; a++) {
			vc_table[i][0] = (struct vc_inst){VC_ADD, a, 0};
			vc_table[i++][1] = (struct vc_inst){VC_COPY, 4, m};
		}
	for (u8 m = 0; m <= 8; m++) {
		vc_table[i][0] = (struct vc_inst){VC_COPY, 4, m};
		vc_table[i++][1] = (struct vc_inst){VC_ADD, 1, 0};
	}
	VERIFY(i == 256);
}

#define VC_NEAR 4
#define VC_SAME 3

/* One piece of the rewritten target window. */
struct vc_op {
	u8 type;      /* VC_ADD (literal from the target), VC_RUN, VC_COPY (source), VC_NOOP (copy
		    * from the target itself) */
	u8 byte;      /* RUN */
	bool foreign; /* an ADD that was a copy from another extent's source */
	u64 tpos;     /* where it lands in the target window */
	u64 len;
	u64 from; /* COPY: offset in the slot; target copy: offset in the target window */
};

struct vc_emit {
	u8 *data, *inst, *addr;
	size_t nd, ni, na, cap;
};

static bool em_room(const struct vc_emit *e, size_t d, size_t i, size_t a)
{
	return e->nd + d <= e->cap && e->ni + i <= e->cap && e->na + a <= e->cap;
}

/* Parses @w (delta encoding without secondary compression) into ops; see above. */
static int vc_parse_ops(const struct vc_window *w, u64 base, size_t slot, struct vc_op **opsp,
			size_t *nops)
{
	const u8 *p = w->enc, *end = w->end, *data, *inst, *addr, *dend, *iend, *aend;
	u64 tgt_len, dlen, ilen, alen, tpos = 0, near[VC_NEAR] = {0}, same[VC_SAME * 256];
	unsigned next = 0;
	size_t n = 0, cap = 64;
	struct vc_op *ops;

	pthread_once(&vc_table_once, vc_table_init);
	memset(same, 0, sizeof(same));
	if (vc_get(&p, end, &tgt_len) || p >= end)
		return -EILSEQ;
	if (*p++ != 0)
		return -EOPNOTSUPP; /* secondary compression: leave it alone */
	if (vc_get(&p, end, &dlen) || vc_get(&p, end, &ilen) || vc_get(&p, end, &alen))
		return -EILSEQ;
	if (w->ind & VCD_ADLER32)
		p += 4;
	if (p > end || dlen > (u64)(end - p) || ilen > (u64)(end - p) - dlen ||
	    alen != (u64)(end - p) - dlen - ilen)
		return -EILSEQ;
	data = p;
	dend = inst = data + dlen;
	iend = addr = inst + ilen;
	aend = addr + alen;
	ops = xmalloc(cap * sizeof(*ops));
	while (inst < iend) {
		u8 op = *inst++;

		for (int k = 0; k < 2; k++) {
			struct vc_inst in = vc_table[op][k];
			u64 size = in.size, a, here;
			struct vc_op o = {.type = VC_ADD};

			if (in.type == VC_NOOP)
				continue;
			if (!size && vc_get(&inst, iend, &size))
				goto bad;
			if (size > tgt_len - tpos)
				goto bad;
			o.len = size;
			o.from = tpos;
			o.tpos = tpos;
			if (in.type == VC_ADD) {
				if (size > (u64)(dend - data))
					goto bad;
				data += size;
			} else if (in.type == VC_RUN) {
				if (data >= dend)
					goto bad;
				o.type = VC_RUN;
				o.byte = *data++;
			} else {
				here = w->seg_len + tpos;
				if (in.mode == 0) {
					if (vc_get(&addr, aend, &a))
						goto bad;
				} else if (in.mode == 1) {
					if (vc_get(&addr, aend, &a) || a > here)
						goto bad;
					a = here - a;
				} else if (in.mode < 2 + VC_NEAR) {
					if (vc_get(&addr, aend, &a))
						goto bad;
					a += near[in.mode - 2];
				} else {
					if (addr >= aend)
						goto bad;
					a = same[(in.mode - 2 - VC_NEAR) * 256 + *addr++];
				}
				near[next] = a;
				next = (next + 1) % VC_NEAR;
				same[a % (VC_SAME * 256)] = a;
				if (a >= here)
					goto bad;
				if (a + size <= w->seg_len) {
					u64 abs = w->seg_pos + a;

					if (abs >= base && abs + size <= base + slot) {
						o.type = VC_COPY;
						o.from = abs - base;
					} else {
						o.foreign = true;
					}
				} else if (a >= w->seg_len) {
					o.type = VC_NOOP;
					o.from = a - w->seg_len;
				}
			}
			if (n == cap) {
				cap *= 2;
				ops = xrealloc(ops, cap * sizeof(*ops));
			}
			ops[n++] = o;
			tpos += size;
		}
	}
	if (tpos != tgt_len || data != dend || addr != aend)
		goto bad;
	*opsp = ops;
	*nops = n;
	return 0;
bad:
	free(ops);
	return -EILSEQ;
}

/* Whether @n bytes of @src at @s equal those of @tgt at @t (both zero beyond @len). */
static bool same_bytes(const u8 *src, const u8 *tgt, size_t len, u64 s, u64 t, u64 n)
{
	for (u64 i = 0; i < n; i++)
		if ((s + i < len ? src[s + i] : 0) != (t + i < len ? tgt[t + i] : 0))
			return false;
	return true;
}

/*
 * A copy from another extent's source often has the same bytes in this extent's source at
 * the offset the neighbouring copies use (an edit in place, or after an insert): turn it
 * back into a copy from our own slot when the bytes really are there.
 */
static void vc_reclaim(struct vc_op *ops, size_t nops, const u8 *src, const u8 *tgt, size_t len,
		       size_t slot)
{
	s64 shift = 0; /* source offset - target offset of the last own copy */

	for (size_t i = 0; i < nops; i++) {
		struct vc_op *op = &ops[i];
		s64 cand[2] = {shift, 0};

		if (op->type == VC_COPY) {
			shift = (s64)op->from - (s64)(op->tpos);
			continue;
		}
		if (!op->foreign)
			continue;
		for (int c = 0; c < 2; c++) {
			s64 from = (s64)op->tpos + cand[c];

			if (from < 0 || (u64)from + op->len > slot ||
			    !same_bytes(src, tgt, len, (u64)from, op->tpos, op->len))
				continue;
			op->type = VC_COPY;
			op->foreign = false;
			op->from = (u64)from;
			shift = cand[c];
			break;
		}
	}
}

/* Index of 8-byte strings of the target window, for vc_self_copies(). */
#define VC_HASH_BITS 14
#define VC_MIN_MATCH 8

static u8 tbyte(const u8 *tgt, size_t len, u64 i)
{
	return i < len ? tgt[i] : 0;
}

static u32 vc_hash(const u8 *tgt, size_t len, u64 p)
{
	u64 v = 0;

	for (int i = 0; i < VC_MIN_MATCH; i++)
		v = (v << 8) | tbyte(tgt, len, p + (u64)i);
	return (u32)(hash_golden64(v) >> (64 - VC_HASH_BITS));
}

/*
 * The foreign copies that vc_reclaim() could not return to our own source would become
 * literals; many of them (common words of new text) repeat earlier bytes of the same target
 * window, which VCDIFF can copy.  Rebuilds the op list with those pieces as target copies.
 * O(window) time, a 64 KiB table.
 */
static struct vc_op *vc_self_copies(struct vc_op *ops, size_t *nops, const u8 *tgt, size_t len,
				    u64 wlen)
{
	u32 *head = xmalloc(sizeof(u32) << VC_HASH_BITS);
	size_t n = 0, cap = *nops + 16;
	struct vc_op *out = xmalloc(cap * sizeof(*out));
	u64 indexed = 0;

	memset(head, 0xff, sizeof(u32) << VC_HASH_BITS);
	for (size_t i = 0; i < *nops; i++) {
		struct vc_op op = ops[i];
		u64 end = op.tpos + op.len, u = op.tpos, ls = op.tpos;

		for (; indexed < op.tpos && indexed + VC_MIN_MATCH <= wlen; indexed++)
			head[vc_hash(tgt, len, indexed)] = (u32)indexed;
		if (op.type != VC_ADD || !op.foreign || op.len < VC_MIN_MATCH) {
			op.foreign = false;
			if (n + 1 > cap)
				out = xrealloc(out, (cap *= 2) * sizeof(*out));
			out[n++] = op;
			continue;
		}
		while (u + VC_MIN_MATCH <= end) {
			u32 c = head[vc_hash(tgt, len, u)];
			u64 m = 0;

			if (c != UINT32_MAX && c < u)
				while (u + m < end &&
				       tbyte(tgt, len, c + m) == tbyte(tgt, len, u + m))
					m++;
			if (m >= VC_MIN_MATCH) {
				if (n + 2 > cap)
					out = xrealloc(out, (cap *= 2) * sizeof(*out));
				if (u > ls)
					out[n++] = (struct vc_op){.type = VC_ADD,
								  .tpos = ls,
								  .from = ls,
								  .len = u - ls};
				out[n++] = (struct vc_op){
					.type = VC_NOOP, .tpos = u, .from = c, .len = m};
				for (u64 q = u; q < u + m && q + VC_MIN_MATCH <= wlen; q++)
					head[vc_hash(tgt, len, q)] = (u32)q;
				u += m;
				ls = u;
				continue;
			}
			head[vc_hash(tgt, len, u)] = (u32)u;
			u++;
		}
		if (end > ls) {
			if (n + 1 > cap)
				out = xrealloc(out, (cap *= 2) * sizeof(*out));
			out[n++] = (struct vc_op){
				.type = VC_ADD, .tpos = ls, .from = ls, .len = end - ls};
		}
		indexed = MAX(indexed, u);
	}
	free(head);
	free(ops);
	*nops = n;
	return out;
}

/*
 * Re-encodes window @w of the extent whose source slot starts at @base as a standalone
 * window into @o (at most @cap bytes); @tgt is the target (len bytes, zeros beyond).
 * Returns the window length, or a negative errno (-EOPNOTSUPP: not worth it or unsupported).
 */
ssize_t vc_rewrite(const struct vc_window *w, u64 base, size_t slot, const u8 *src, const u8 *tgt,
		   size_t len, u8 *o, size_t cap)
{
	struct vc_op *ops;
	size_t nops, k = 0;
	u64 lo = UINT64_MAX, hi = 0, seg;
	struct vc_emit e = {.cap = cap};
	int err = vc_parse_ops(w, base, slot, &ops, &nops);

	if (err)
		return err;
	vc_reclaim(ops, nops, src, tgt, len, slot);
	ops = vc_self_copies(ops, &nops, tgt, len, w->tgt_len);
	for (size_t i = 0; i < nops; i++)
		if (ops[i].type == VC_COPY) {
			lo = MIN(lo, ops[i].from);
			hi = MAX(hi, ops[i].from + ops[i].len);
		}
	seg = hi > lo ? hi - lo : 0;
	e.data = xmalloc(cap);
	e.inst = xmalloc(cap);
	e.addr = xmalloc(cap);
	for (size_t i = 0; i < nops && !err; i++) {
		struct vc_op *op = &ops[i];
		u8 v[10];
		size_t vl;

		if (op->type == VC_ADD) {
			/* merge neighbouring literals */
			u64 from = op->from, l = op->len;

			while (i + 1 < nops && ops[i + 1].type == VC_ADD)
				l += ops[++i].len;
			if (!em_room(&e, l, 11, 0)) {
				err = -EOPNOTSUPP;
				break;
			}
			for (u64 t = 0; t < l; t++)
				e.data[e.nd++] = from + t < len ? tgt[from + t] : 0;
			if (l <= 17) {
				e.inst[e.ni++] = (u8)(1 + l);
			} else {
				e.inst[e.ni++] = 1;
				e.ni += vc_put(e.inst + e.ni, l);
			}
			continue;
		}
		if (!em_room(&e, 1, 11, 10)) {
			err = -EOPNOTSUPP;
			break;
		}
		if (op->type == VC_RUN) {
			e.data[e.nd++] = op->byte;
			e.inst[e.ni++] = 0;
			e.ni += vc_put(e.inst + e.ni, op->len);
			continue;
		}
		/* copies, VCD_SELF addresses: source first, then the target window */
		while (op->type == VC_COPY && i + 1 < nops && ops[i + 1].type == VC_COPY &&
		       ops[i + 1].from == op->from + op->len) {
			op->len += ops[i + 1].len; /* contiguous source copies: one instruction */
			i++;
		}
		vl = vc_put(v, op->type == VC_COPY ? op->from - lo : seg + op->from);
		memcpy(e.addr + e.na, v, vl);
		e.na += vl;
		if (op->len >= 4 && op->len <= 18) {
			e.inst[e.ni++] = (u8)(19 + op->len - 3);
		} else {
			e.inst[e.ni++] = 19;
			e.ni += vc_put(e.inst + e.ni, op->len);
		}
	}
	if (!err) {
		u8 hdr[64];
		size_t hl = 0, enc_len;

		hl += vc_put(hdr + hl, w->tgt_len);
		hdr[hl++] = 0;
		hl += vc_put(hdr + hl, e.nd);
		hl += vc_put(hdr + hl, e.ni);
		hl += vc_put(hdr + hl, e.na);
		enc_len = hl + ((w->ind & VCD_ADLER32) ? 4 : 0) + e.nd + e.ni + e.na;
		if (enc_len + 32 > cap) {
			err = -EOPNOTSUPP;
		} else {
			o[k++] = (u8)((seg ? VCD_SOURCE : 0) | (w->ind & VCD_ADLER32));
			if (seg) {
				k += vc_put(o + k, seg);
				k += vc_put(o + k, lo);
			}
			k += vc_put(o + k, enc_len);
			memcpy(o + k, hdr, hl);
			k += hl;
			if (w->ind & VCD_ADLER32) {
				/* same target bytes, same checksum: after the three lengths */
				const u8 *q = w->enc;
				u64 dummy;

				(void)vc_get(&q, w->end, &dummy);
				q++;
				for (int f = 0; f < 3; f++)
					(void)vc_get(&q, w->end, &dummy);
				memcpy(o + k, q, 4);
				k += 4;
			}
			memcpy(o + k, e.data, e.nd);
			k += e.nd;
			memcpy(o + k, e.inst, e.ni);
			k += e.ni;
			memcpy(o + k, e.addr, e.na);
			k += e.na;
		}
	}
	free(e.data);
	free(e.inst);
	free(e.addr);
	free(ops);
	return err ? err : (ssize_t)k;
}
