/* SPDX-License-Identifier: GPL-2.0-only */
/* kshim/linux/kernel.h - byte order helpers and MAX_ERRNO for kernel/ddsnap-proto.c. */
#ifndef KSHIM_LINUX_KERNEL_H
#define KSHIM_LINUX_KERNEL_H
#include <endian.h>
#include <errno.h>
#include <linux/types.h>

#define MAX_ERRNO      4095
#define le16_to_cpu(x) le16toh(x)
#define le32_to_cpu(x) le32toh(x)
#define le64_to_cpu(x) le64toh(x)
#define cpu_to_le16(x) htole16(x)
#define cpu_to_le32(x) htole32(x)
#define cpu_to_le64(x) htole64(x)
#endif
