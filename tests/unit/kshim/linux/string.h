/* SPDX-License-Identifier: GPL-2.0-only */
/* kshim/linux/string.h - memset and friends for kernel/ddsnap-proto.c. */
#include <string.h>
