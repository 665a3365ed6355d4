// SPDX-License-Identifier: GPL-2.0-only
/*
 * testfiles.c - see testfiles.h.  No state but pathf's rotating buffers.
 */
#include "testfiles.h"
#include <stdarg.h>
#include <stdio.h>
#include "commands.h"

char *pathf(const char *fmt, ...)
{
	static char bufs[4][256];
	static int k;
	char *b = bufs[k++ % 4];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, 256, fmt, ap);
	va_end(ap);
	return b;
}

int run_delta(const char *first, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	argv[argc++] = "delta";
	argv[argc++] = (char *)first;
	va_start(ap, first);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	return cmd_delta(argc, argv);
}
