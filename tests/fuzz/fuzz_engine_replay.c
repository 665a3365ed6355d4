// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_engine_replay.c - libFuzzer target for the snapshot engine's log replay
 * (engine_replay): the records a crash leaves in the intent log, here made up by the fuzzer.
 *
 * Each input runs on a fresh engine (tests/unit/lib/enginefix, 4 KiB chunks, 16 origin
 * chunks, 64 data chunks) that already holds three snapshots and some copy-outs.  The input
 * is a sequence of records of 1 + 56 bytes: a type selector (0x100 + byte % 7, so the six
 * record types and one unknown one) and a struct engine_logrec_disk; a selector with bit 7
 * set also shortens the payload by one byte.  Each record is replayed as open would.
 * Checks: no crash or sanitizer report; every replay returns 0 or a negative errno; and
 * engine_check, a txg sync and a reopen of whatever state replay left fail cleanly if they
 * fail.  Consistency is not asserted: replay refuses a chunk out of range, a birth after
 * its death, a death or create beyond the current gen, an address the allocator will not
 * give, a short payload and an unknown type, but it trusts a copy-out's birth, which only
 * the engine that wrote the record knew (a made-up birth leaves a deadlist that engine_check
 * reports as damage).  The log's block and record checksums keep foreign records out.
 */
#include <string.h>
#include "engine.h"
#include "format.h"
#include "log.h"
#include "lib/enginefix.h"

#define CS	  4096u
#define ORIGIN	  16u
#define DATA	  64u
#define REC_BYTES (1 + sizeof(struct engine_logrec_disk))

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

/* Three snapshots, with origin writes between them (copy-outs for the first two). */
static void prologue(struct efix *f)
{
	static u8 buf[CS];

	for (u32 tag = 1; tag <= 3; tag++) {
		VERIFY(!engine_create(f->e, &f->tx, tag, tag, 0));
		for (u64 c = tag; c < ORIGIN; c += 3) {
			memset(buf, (int)(tag * 16 + c), sizeof(buf));
			VERIFY(!efix_origin_write(f, c, 0, CS, buf));
		}
	}
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static bool quiet;
	/* small devices and cache: a fresh engine per input must be cheap */
	static const struct efix_opts opts = {.meta_bytes = 1u << 20, .cache_bytes = 256u << 10};
	struct engine_check_report rep;
	struct efix f;
	char why[256];
	int err;

	if (!quiet)
		quiet = log_open("/dev/null") == 0;
	efix_init_opts(&f, CS, ORIGIN, DATA, &opts);
	prologue(&f);
	for (size_t off = 0; off + REC_BYTES <= size; off += REC_BYTES) {
		u16 type = (u16)(0x100 + (data[off] & 0x7f) % 7);
		u16 len = (u16)(sizeof(struct engine_logrec_disk) - (data[off] >> 7));

		err = engine_replay(f.e, &f.tx, type, data + off + 1, len);
		if (err > 0)
			abort();
	}
	/* The state replay left may be inconsistent (see above), but checking it, syncing it
	 * and reopening it must fail cleanly, not crash. */
	(void)engine_check(f.e, NULL, &rep, why, sizeof(why));
	if (!efix_sync(&f))
		(void)efix_reopen(&f);
	efix_fini(&f);
	return 0;
}
