// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_engine_replay.c - libFuzzer target for the snapshot engine's log replay
 * (engine_replay): the records a crash leaves in the intent log, here made up by the fuzzer.
 *
 * Each input runs on a fresh engine (tests/unit/lib/enginefix, 4 KiB chunks, 16 origin
 * chunks, 64 data chunks) that already holds three snapshots and some copy-outs.  The input
 * is a sequence of records of 1 + 56 bytes: a type selector (0x100 + byte % 8, so the seven
 * record types, ENGINE_LOG_CREATE_FROM with its provenance included, and one unknown one)
 * and a 56-byte payload (struct engine_logrec_disk, or engine_logrec_create_from_disk); a
 * selector with bit 7 set also shortens the payload by one byte.  Each record is replayed as open would.
 * Checks: no crash or sanitizer report; every replay returns 0 or a negative errno; and
 * whatever replay accepted leaves an engine that engine_check finds consistent, with every
 * data chunk it references allocated and no other, and that syncs and reopens.  Records a
 * crash leaves are only ever the engine's own, behind the log's checksums, but a record
 * from a buggy or foreign binary must be refused, not applied.  The fuzzer found two such
 * holes, both closed: a copy-out whose death or birth did not match the engine's state
 * (it corrupted the deadlists), and an address at the top of the range whose claim wrapped
 * around (the fixture's claim; the volume's multiplied it into blocks, which could wrap too).
 * Every input runs twice: with the deadlists rebuilt in memory and with persisted deadlists
 * (params.persist_deadlists, doc/format.md), which engine_check matches with the exceptions.
 */
#include <string.h>
#include "snap/engine.h"
#include "blk/format.h"
#include "util/log.h"
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

static void run_one(const u8 *data, size_t size, bool persist_deadlists)
{
	/* small devices and cache: a fresh engine per input must be cheap */
	const struct efix_opts opts = {.meta_bytes = 1u << 20,
				       .cache_bytes = 256u << 10,
				       .persist_deadlists = persist_deadlists};
	struct engine_check_report rep;
	struct efix f;
	char why[256];
	int err;

	efix_init_opts(&f, CS, ORIGIN, DATA, &opts);
	prologue(&f);
	for (size_t off = 0; off + REC_BYTES <= size; off += REC_BYTES) {
		u16 type = (u16)(0x100 + (data[off] & 0x7f) % 8);
		u16 len = (u16)(sizeof(struct engine_logrec_disk) - (data[off] >> 7));

		err = engine_replay(f.e, &f.tx, type, data + off + 1, len);
		if (err > 0)
			abort();
	}
	err = engine_check(f.e, NULL, &rep, why, sizeof(why));
	if (err || rep.problems) {
		fprintf(stderr, "engine_check after replay: %s (%d)\n", why, err);
		abort();
	}
	if (rep.data_chunks != f.databits.n - f.databits.nfree - f.databits.npending) {
		fprintf(stderr, "%llu data chunks referenced, %llu allocated\n",
			(unsigned long long)rep.data_chunks,
			(unsigned long long)(f.databits.n - f.databits.nfree -
					     f.databits.npending));
		abort();
	}
	if (!efix_sync(&f) && efix_reopen(&f) == 0) {
		/* what replay accepted persisted consistently, provenance records included */
		struct engine_check_report again;

		err = engine_check(f.e, NULL, &again, why, sizeof(why));
		if (err || again.provenance != rep.provenance || again.live != rep.live) {
			fprintf(stderr, "after sync and reopen: %s (%d), %llu/%llu provenance\n",
				why, err, (unsigned long long)again.provenance,
				(unsigned long long)rep.provenance);
			abort();
		}
	}
	efix_fini(&f);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static bool quiet;

	if (!quiet)
		quiet = log_open("/dev/null") == 0;
	run_one(data, size, false);
	run_one(data, size, true);
	return 0;
}
