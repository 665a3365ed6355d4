/* SPDX-License-Identifier: GPL-2.0-only */
/* kshim/asm/unaligned.h - get_unaligned for kernel/ddsnap-proto.c: a packed struct read. */
#ifndef KSHIM_ASM_UNALIGNED_H
#define KSHIM_ASM_UNALIGNED_H

#define get_unaligned(p)                                                \
	({                                                              \
		const struct {                                          \
			__typeof__(*(p)) v;                             \
		} __attribute__((packed)) *kshim_p = (const void *)(p); \
		kshim_p->v;                                             \
	})
#endif
