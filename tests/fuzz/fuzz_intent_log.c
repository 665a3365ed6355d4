// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_intent_log.c - libFuzzer target for the intent log block and record decoder, and for
 * replay over a ring made of fuzzed blocks.
 *
 * Input: byte 0 selects a mode, the rest is up to FUZZ_BLOCKS blocks of DDSNAP_BLOCK_SIZE
 * (the last one zero-padded).  With mode bit 0 each block is sealed at its ring address
 * first, so the fuzzer gets past the checksum to the structure and record checks; with bit
 * 1 the blocks are also laid into a RAM device and the log is opened on them, replaying
 * from block 0 (bit 2: with synced txg 1, filtering old records).
 * Checks: no crash or sanitizer report; decode returns 0, -EILSEQ or -ENOTBLK with a
 * NUL-terminated reason; every decoded record lies inside its block, in sequence, with a
 * type other than 0; replay hands out records in strictly increasing sequence, never more
 * than the valid blocks hold, and the reopened log accepts an append; an open refused for
 * damage (-EILSEQ) has replayed nothing, and opens with the discard override.
 */
#include <string.h>
#include "store/intent_log.h"
#include "util/log.h"

#define FUZZ_BLOCKS 4
#define FUZZ_RING   INTENT_LOG_MIN_BLOCKS
#define FUZZ_GUID   0x5eed

static volatile u8 sink;

struct replay_check {
	u64 next, count;
};

static int on_replay(void *arg, const struct intent_log_record *rec)
{
	struct replay_check *c = arg;

	if (c->count && rec->seq < c->next)
		abort();
	if (rec->type == 0 || rec->len > INTENT_LOG_MAX_PAYLOAD)
		abort();
	/* Touch the payload so the sanitizer sees any out-of-bounds pointer. */
	for (u16 i = 0; i < rec->len; i++)
		sink ^= ((const u8 *)rec->payload)[i];
	c->next = rec->seq + 1;
	c->count++;
	return 0;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static u8 blocks[FUZZ_BLOCKS][DDSNAP_BLOCK_SIZE] __attribute__((aligned(4096)));
	static struct intent_log_record recs[INTENT_LOG_MAX_RECORDS_PER_BLOCK];
	static bool quiet;
	u64 valid_records = 0;
	unsigned nblocks;
	char why[96];
	u8 mode;

	if (!quiet)
		quiet = log_open("/dev/null") == 0;
	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	nblocks = (unsigned)MIN((size_t)FUZZ_BLOCKS, DIV_ROUND_UP(size, DDSNAP_BLOCK_SIZE));
	memset(blocks, 0, sizeof(blocks));
	memcpy(blocks, data, MIN(size, sizeof(blocks)));

	for (unsigned b = 0; b < nblocks; b++) {
		struct intent_log_block_info info;
		int r;

		if (mode & 1)
			block_seal(blocks[b], &intent_log_block_type, b, block_txg(blocks[b]));
		memset(why, 'x', sizeof(why));
		r = intent_log_block_decode(blocks[b], b, &info, recs, ARRAY_SIZE(recs), why,
					    sizeof(why));
		if (r != 0 && r != -EILSEQ && r != -ENOTBLK)
			abort();
		if (r) {
			if (!memchr(why, '\0', sizeof(why)))
				abort();
			continue;
		}
		if (info.nrecords == 0 || info.nrecords > INTENT_LOG_MAX_RECORDS_PER_BLOCK)
			abort();
		for (unsigned i = 0; i < info.nrecords; i++) {
			const u8 *p = recs[i].payload;

			if (recs[i].seq != info.first_rec_seq + i || recs[i].type == 0 ||
			    recs[i].txg > info.max_txg)
				abort();
			if (p < blocks[b] + sizeof(struct intent_log_block_disk) ||
			    p + recs[i].len > blocks[b] + DDSNAP_BLOCK_SIZE)
				abort();
		}
		valid_records += info.nrecords;
	}

	if (mode & 2) {
		struct bdev *dev = bdev_ram_create(FUZZ_RING * DDSNAP_BLOCK_SIZE);
		struct replay_check c = {0};
		struct intent_log_damage d = {0};
		struct intent_log_config cfg = {
			.bdev = dev,
			.start = 0,
			.nblocks = FUZZ_RING,
			.guid = FUZZ_GUID,
			.synced_txg = (mode & 4) ? 1 : 0,
			.replay = on_replay,
			.replay_arg = &c,
			.damage = &d,
		};
		struct intent_log *log;
		u64 seq;
		int r;

		if (bdev_write(dev, blocks, sizeof(blocks), 0))
			abort();
		r = intent_log_open(&cfg, &log);
		/* Proven damage refuses before replaying anything; the override then opens. */
		if (r == -EILSEQ && d.damaged && !c.count) {
			cfg.discard_damaged = true;
			r = intent_log_open(&cfg, &log);
		}
		if (r)
			abort();
		if (c.count > valid_records)
			abort();
		if (intent_log_commit(log, 1, 2, "z", 1, 0, &seq))
			abort();
		if (c.count && seq < c.next)
			abort();
		intent_log_close(log);
		bdev_close(dev);
	}
	return 0;
}
