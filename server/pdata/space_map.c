// SPDX-License-Identifier: GPL-2.0-only
/*
 * space_map.c - the append-only ALLOC/FREE log of one metaslab.
 *
 * What.  A space map records, txg by txg, which runs of its metaslab were allocated and
 * freed.  Replaying it from "everything free" gives the allocated set; the allocator keeps
 * the complement in a range tree and never reads the log again until the next open.  The
 * log is a backward chain of blocks (format.h): the table entry points to the tail, each
 * block to its predecessor.
 *
 *	table entry --> [tail, txg 9] --prev--> [txg 7] --prev--> [txg 3] --prev--> 0
 *	                 newest records                            oldest records
 *
 * Invariants.
 *  - Only blocks born in the open txg are ever changed; they are the newest ones of the
 *    chain (sm->born[], referenced until space_map_seal).  The first append of a txg copies
 *    the old tail to a new address and frees the old one through struct tx, which defers
 *    the free until this txg is durable.
 *  - Every block holds 1..SPACE_MAP_RECS_PER_BLOCK records, each inside the metaslab with
 *    a non-zero run; the validator refuses anything else even with a valid checksum.
 *  - phys.nr_blocks, nr_recs and alloc always describe the chain as it will be after the
 *    txg's appends, so the loader can cross-check a replay against them.
 *  - Each block's prev pointer carries the predecessor's birth txg and checksum; blocks
 *    born in the same txg are sealed oldest first, so each checksum is final before its
 *    successor records it (a Merkle chain from the table entry down).
 *
 * Locking.  None here: the owning metaslab (metaslab.c) serialises every call under its
 * lock, and the txg layer keeps the open txg quiet while space maps are synced.
 *
 * Crash argument.  Appends and condensing write only new addresses, allocated in the open
 * txg; the old tail and, after a condense, the whole old chain are freed with deferral, so
 * they are not reused before this txg is durable.  If we crash before the uberblock of this
 * txg is written, the previous table entry still points to the old tail with its old
 * checksum, and every block of that chain is intact: the old map loads exactly as before.
 * If we crash after, the new entry points to the sealed new tail.  The records of a txg
 * therefore appear atomically with the txg that made the allocations they describe.
 */
#include "pdata/space_map.h"
#include <string.h>

struct sm_link {
	u64 blocknr, birth;
};

struct space_map {
	struct cache *cache;
	u64 ms_start, ms_size;
	struct space_map_phys phys;
	struct sm_link *chain; /* every block, oldest first */
	u64 nr_chain, cap_chain;
	struct cblock **born; /* the chain's blocks born in born_txg, oldest first */
	u64 nr_born, cap_born, born_txg;
};

static struct space_map_block_disk *smb(struct cblock *b)
{
	return b->data;
}

#define why_fail(why, whylen, ...) why_printf(why, whylen, -EILSEQ, __VA_ARGS__)

/*----------------------------------------------------------------*/
/* pack and validate */

void space_map_phys_pack(struct space_map_phys_disk *d, const struct space_map_phys *p)
{
	memset(d, 0, sizeof(*d));
	blkptr_pack(&d->tail, &p->tail);
	d->nr_blocks = cpu_to_le64(p->nr_blocks);
	d->nr_recs = cpu_to_le64(p->nr_recs);
	d->alloc = cpu_to_le64(p->alloc);
}

int space_map_phys_unpack(struct space_map_phys *p, const struct space_map_phys_disk *d)
{
	blkptr_unpack(&p->tail, &d->tail);
	p->nr_blocks = le64_to_cpu(d->nr_blocks);
	p->nr_recs = le64_to_cpu(d->nr_recs);
	p->alloc = le64_to_cpu(d->alloc);
	if (d->reserved || d->tail.reserved)
		return -EILSEQ;
	if (!p->tail.blocknr != !p->nr_blocks || !p->nr_blocks != !p->nr_recs)
		return -EILSEQ;
	if (!p->tail.blocknr && (p->tail.birth_txg || p->tail.csum || p->alloc))
		return -EILSEQ;
	/* A block holds at most SPACE_MAP_RECS_PER_BLOCK records and at least one. */
	if (p->nr_recs < p->nr_blocks ||
	    DIV_ROUND_UP(p->nr_recs, SPACE_MAP_RECS_PER_BLOCK) > p->nr_blocks)
		return -EILSEQ;
	return 0;
}

static bool all_zero(const void *p, size_t n)
{
	const u8 *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static int space_map_block_validate(const void *block, char *why, size_t whylen)
{
	const struct space_map_block_disk *d = block;
	u64 self = le64_to_cpu(d->hdr.blocknr), ms_size = le64_to_cpu(d->ms_size);
	u64 ms_start = le64_to_cpu(d->ms_start), prev = le64_to_cpu(d->prev.blocknr);
	u32 nr = le32_to_cpu(d->nr_recs);

	if (nr == 0 || nr > SPACE_MAP_RECS_PER_BLOCK)
		return why_fail(why, whylen, "space map: %u records", nr);
	if (ms_size == 0 || ms_start + ms_size < ms_start)
		return why_fail(why, whylen, "space map: bad metaslab [%llu +%llu)",
				(unsigned long long)ms_start, (unsigned long long)ms_size);
	if (d->reserved || d->reserved32 || d->prev.reserved)
		return why_fail(why, whylen, "space map: reserved field set");
	if (prev == self && prev)
		return why_fail(why, whylen, "space map: block points to itself");
	if (!prev && !all_zero(&d->prev, sizeof(d->prev)))
		return why_fail(why, whylen, "space map: null prev pointer with fields set");
	if (prev && le64_to_cpu(d->prev.birth_txg) > le64_to_cpu(d->hdr.txg))
		return why_fail(why, whylen, "space map: prev born after this block");
	for (u32 i = 0; i < nr; i++) {
		const struct space_map_rec_disk *r = &d->recs[i];
		u64 start = le64_to_cpu(r->start), run = le32_to_cpu(r->run);

		if (r->type != SPACE_MAP_ALLOC && r->type != SPACE_MAP_FREE)
			return why_fail(why, whylen, "space map: record %u type %u", i, r->type);
		if (run == 0 || r->pad[0] || r->pad[1] || r->pad[2])
			return why_fail(why, whylen, "space map: record %u empty or padded", i);
		if (start >= ms_size || run > ms_size - start)
			return why_fail(why, whylen,
					"space map: record %u [%llu +%llu) outside %llu", i,
					(unsigned long long)start, (unsigned long long)run,
					(unsigned long long)ms_size);
	}
	if (!all_zero(&d->recs[nr], (SPACE_MAP_RECS_PER_BLOCK - nr) * sizeof(d->recs[0])))
		return why_fail(why, whylen, "space map: data after the last record");
	return 0;
}

const struct block_type space_map_block_type = {
	.name = "space map",
	.magic = MAGIC_SPACE_MAP,
	.validate = space_map_block_validate,
};

/*----------------------------------------------------------------*/
/* handle */

struct space_map *space_map_open(struct cache *cache, u64 ms_start, u64 ms_size,
				 const struct space_map_phys *phys)
{
	struct space_map *sm = xzalloc(sizeof(*sm));

	sm->cache = cache;
	sm->ms_start = ms_start;
	sm->ms_size = ms_size;
	sm->phys = *phys;
	return sm;
}

static void put_born(struct space_map *sm)
{
	for (u64 i = 0; i < sm->nr_born; i++)
		cache_put(sm->cache, sm->born[i]);
	sm->nr_born = 0;
}

void space_map_close(struct space_map *sm)
{
	if (!sm)
		return;
	put_born(sm);
	free(sm->born);
	free(sm->chain);
	free(sm);
}

static void chain_push(struct space_map *sm, u64 blocknr, u64 birth)
{
	if (sm->nr_chain == sm->cap_chain) {
		sm->cap_chain = MAX(16, 2 * sm->cap_chain);
		sm->chain = xrealloc(sm->chain, sm->cap_chain * sizeof(*sm->chain));
	}
	sm->chain[sm->nr_chain++] = (struct sm_link){blocknr, birth};
}

static void born_push(struct space_map *sm, struct cblock *b)
{
	if (sm->nr_born == sm->cap_born) {
		sm->cap_born = MAX(4, 2 * sm->cap_born);
		sm->born = xrealloc(sm->born, sm->cap_born * sizeof(*sm->born));
	}
	sm->born[sm->nr_born++] = b;
}

/*----------------------------------------------------------------*/
/* load */

int space_map_load(struct space_map *sm, struct range_tree *free_rt, char *why, size_t whylen)
{
	struct space_map_rec_disk *recs = NULL; /* every record, newest block first */
	u32 *nr_in = NULL;			/* records per block, same order */
	struct blkptr p = sm->phys.tail;
	u64 n = 0, cap = 0, total = 0, pos;
	int r = 0;

	VERIFY(range_tree_space(free_rt) == 0 && sm->nr_chain == 0 && sm->nr_born == 0);
	/* Arrays grow with the blocks actually read, never with a count from disk. */
	while (p.blocknr) {
		struct cblock *b;
		const struct space_map_block_disk *d;
		u32 nr;

		if (n == sm->phys.nr_blocks) {
			r = why_fail(why, whylen, "space map: chain longer than %llu blocks",
				     (unsigned long long)sm->phys.nr_blocks);
			goto out_free;
		}
		r = cache_read(sm->cache, &space_map_block_type, p.blocknr, p.birth_txg, &b, why,
			       whylen);
		if (r)
			goto out_free;
		d = smb(b);
		nr = le32_to_cpu(d->nr_recs);
		if (block_csum(b->data) != p.csum)
			r = why_fail(why, whylen,
				     "space map block %llu: checksum differs from parent",
				     (unsigned long long)p.blocknr);
		else if (le64_to_cpu(d->ms_start) != sm->ms_start ||
			 le64_to_cpu(d->ms_size) != sm->ms_size)
			r = why_fail(why, whylen,
				     "space map block %llu: belongs to another metaslab",
				     (unsigned long long)p.blocknr);
		if (r) {
			cache_put(sm->cache, b);
			goto out_free;
		}
		if (n == cap) {
			cap = MAX(8, 2 * cap);
			recs = xrealloc(recs, cap * SPACE_MAP_RECS_PER_BLOCK * sizeof(*recs));
			nr_in = xrealloc(nr_in, cap * sizeof(*nr_in));
		}
		memcpy(&recs[total], d->recs, nr * sizeof(*recs));
		nr_in[n] = nr;
		chain_push(sm, p.blocknr, p.birth_txg);
		total += nr;
		n++;
		blkptr_unpack(&p, &d->prev);
		cache_put(sm->cache, b);
	}
	if (n != sm->phys.nr_blocks || total != sm->phys.nr_recs) {
		r = why_fail(why, whylen,
			     "space map: %llu blocks, %llu records; table says %llu, %llu",
			     (unsigned long long)n, (unsigned long long)total,
			     (unsigned long long)sm->phys.nr_blocks,
			     (unsigned long long)sm->phys.nr_recs);
		goto out_free;
	}

	/* Replay oldest block first; within a block, in order. */
	range_tree_add(free_rt, 0, sm->ms_size);
	pos = total;
	for (u64 i = n; i-- > 0;) {
		pos -= nr_in[i];
		for (u32 j = 0; j < nr_in[i]; j++) {
			const struct space_map_rec_disk *rec = &recs[pos + j];
			u64 start = le64_to_cpu(rec->start), run = le32_to_cpu(rec->run);

			if (rec->type == SPACE_MAP_ALLOC)
				r = range_tree_remove(free_rt, start, run);
			else
				r = range_tree_add(free_rt, start, run);
			if (r) {
				r = why_fail(why, whylen, "space map: %s of [%llu +%llu) %s",
					     rec->type == SPACE_MAP_ALLOC ? "alloc" : "free",
					     (unsigned long long)start, (unsigned long long)run,
					     rec->type == SPACE_MAP_ALLOC
						     ? "not free (double alloc)"
						     : "already free (double free)");
				goto out_clear;
			}
		}
	}
	if (sm->ms_size - range_tree_space(free_rt) != sm->phys.alloc) {
		r = why_fail(why, whylen, "space map: %llu blocks allocated, table says %llu",
			     (unsigned long long)(sm->ms_size - range_tree_space(free_rt)),
			     (unsigned long long)sm->phys.alloc);
		goto out_clear;
	}
	/* The chain was collected newest first. */
	for (u64 i = 0; i < n / 2; i++) {
		struct sm_link t = sm->chain[i];

		sm->chain[i] = sm->chain[n - 1 - i];
		sm->chain[n - 1 - i] = t;
	}
	goto out_free;

out_clear:
	range_tree_clear(free_rt);
out_free:
	if (r)
		sm->nr_chain = 0;
	free(recs);
	free(nr_in);
	return r;
}

/*----------------------------------------------------------------*/
/* append */

/* A fresh, empty log block at a new address whose predecessor is @prev. */
static int new_block(struct space_map *sm, struct tx *tx, const struct blkptr *prev,
		     struct cblock **out)
{
	struct space_map_block_disk *d;
	struct cblock *b;
	u64 blocknr;
	int r;

	r = tx_alloc_meta(tx, &blocknr);
	if (r)
		return r;
	b = cache_new(sm->cache, &space_map_block_type, blocknr);
	d = smb(b);
	blkptr_pack(&d->prev, prev);
	d->ms_start = cpu_to_le64(sm->ms_start);
	d->ms_size = cpu_to_le64(sm->ms_size);
	chain_push(sm, blocknr, tx->txg);
	born_push(sm, b);
	sm->phys.nr_blocks++;
	*out = b;
	return 0;
}

/* Returns the block to append to: born in this txg and not full. */
static int writable_tail(struct space_map *sm, struct tx *tx, struct cblock **out)
{
	struct blkptr none = {0}, prev;
	struct cblock *old, *b;
	u64 blocknr;
	int r;

	if (sm->nr_born) {
		VERIFY(sm->born_txg == tx->txg);
		b = sm->born[sm->nr_born - 1];
		if (le32_to_cpu(smb(b)->nr_recs) < SPACE_MAP_RECS_PER_BLOCK) {
			*out = b;
			return 0;
		}
		/* The successor's prev checksum is filled in by space_map_seal. */
		prev = (struct blkptr){.blocknr = b->blocknr, .birth_txg = tx->txg};
		return new_block(sm, tx, &prev, out);
	}
	sm->born_txg = tx->txg;
	if (!sm->phys.tail.blocknr)
		return new_block(sm, tx, &none, out);

	/* The tail is from an earlier txg: read it back (it must be the version we wrote). */
	r = cache_read(sm->cache, &space_map_block_type, sm->phys.tail.blocknr,
		       sm->phys.tail.birth_txg, &old, NULL, 0);
	if (r)
		return r;
	if (block_csum(old->data) != sm->phys.tail.csum) {
		cache_put(sm->cache, old);
		return -EILSEQ;
	}
	if (le32_to_cpu(smb(old)->nr_recs) == SPACE_MAP_RECS_PER_BLOCK) {
		cache_put(sm->cache, old);
		return new_block(sm, tx, &sm->phys.tail, out);
	}
	/* Copy-on-write of a partly filled tail: same predecessor, new address. */
	r = tx_alloc_meta(tx, &blocknr);
	if (r) {
		cache_put(sm->cache, old);
		return r;
	}
	b = cache_shadow(sm->cache, old, blocknr);
	cache_put(sm->cache, old);
	tx_free_meta(tx, sm->phys.tail.blocknr, sm->phys.tail.birth_txg);
	VERIFY(sm->nr_chain > 0);
	sm->chain[sm->nr_chain - 1] = (struct sm_link){blocknr, tx->txg};
	born_push(sm, b);
	*out = b;
	return 0;
}

static int append_one(struct space_map *sm, struct tx *tx, enum space_map_rec_type type, u64 start,
		      u32 run)
{
	struct space_map_block_disk *d;
	struct space_map_rec_disk *rec;
	struct cblock *b;
	u32 nr;
	int r;

	r = writable_tail(sm, tx, &b);
	if (r)
		return r;
	d = smb(b);
	nr = le32_to_cpu(d->nr_recs);
	rec = &d->recs[nr];
	rec->start = cpu_to_le64(start);
	rec->run = cpu_to_le32(run);
	rec->type = (u8)type;
	d->nr_recs = cpu_to_le32(nr + 1);
	sm->phys.nr_recs++;
	if (type == SPACE_MAP_ALLOC)
		sm->phys.alloc += run;
	else
		sm->phys.alloc -= run;
	return 0;
}

int space_map_append(struct space_map *sm, struct tx *tx, enum space_map_rec_type type, u64 start,
		     u64 run)
{
	VERIFY(type == SPACE_MAP_ALLOC || type == SPACE_MAP_FREE);
	VERIFY(run > 0 && start < sm->ms_size && run <= sm->ms_size - start);
	VERIFY(type == SPACE_MAP_FREE || sm->phys.alloc + run <= sm->ms_size);
	VERIFY(type == SPACE_MAP_ALLOC || sm->phys.alloc >= run);
	while (run) {
		u32 n = (u32)MIN(run, (u64)SPACE_MAP_RUN_MAX);
		int r = append_one(sm, tx, type, start, n);

		if (r)
			return r;
		start += n;
		run -= n;
	}
	return 0;
}

struct append_arg {
	struct space_map *sm;
	struct tx *tx;
	enum space_map_rec_type type;
};

static int append_seg(void *arg, u64 start, u64 size)
{
	struct append_arg *a = arg;

	return space_map_append(a->sm, a->tx, a->type, start, size);
}

int space_map_append_tree(struct space_map *sm, struct tx *tx, enum space_map_rec_type type,
			  const struct range_tree *rt)
{
	struct append_arg a = {sm, tx, type};

	return range_tree_walk(rt, append_seg, &a);
}

/*----------------------------------------------------------------*/
/* condense */

u64 space_map_condensed_recs(const struct space_map *sm, const struct range_tree *free_rt)
{
	/* Allocated runs are the gaps between free segments: at most one more than those. */
	return MIN(range_tree_count(free_rt) + 1, sm->ms_size - range_tree_space(free_rt));
}

bool space_map_should_condense(const struct space_map *sm, const struct range_tree *free_rt)
{
	u64 optimal = space_map_condensed_recs(sm, free_rt);

	return sm->phys.nr_blocks > SPACE_MAP_CONDENSE_MIN_BLOCKS &&
	       sm->phys.nr_recs * 100 >= optimal * SPACE_MAP_CONDENSE_PCT;
}

int space_map_condense(struct space_map *sm, struct tx *tx, const struct range_tree *free_rt)
{
	struct alloc_run {
		u64 start, len;
	} * runs;
	u64 n = 0, pos = 0, cap = range_tree_count(free_rt) + 1, sstart, ssize;
	int r = 0;

	/* Snapshot the allocated runs before any allocation below can change @free_rt. */
	runs = xmalloc(cap * sizeof(*runs));
	while (range_tree_next(free_rt, pos, &sstart, &ssize) == 0 && sstart < sm->ms_size) {
		if (sstart > pos)
			runs[n++] = (struct alloc_run){pos, sstart - pos};
		pos = sstart + ssize;
	}
	if (pos < sm->ms_size)
		runs[n++] = (struct alloc_run){pos, sm->ms_size - pos};
	VERIFY(n <= cap);

	/* The old chain goes (deferred, unless born in this txg). */
	put_born(sm);
	for (u64 i = 0; i < sm->nr_chain; i++)
		tx_free_meta(tx, sm->chain[i].blocknr, sm->chain[i].birth);
	sm->nr_chain = 0;
	memset(&sm->phys, 0, sizeof(sm->phys));

	for (u64 i = 0; i < n && !r; i++)
		r = space_map_append(sm, tx, SPACE_MAP_ALLOC, runs[i].start, runs[i].len);
	free(runs);
	return r;
}

/*----------------------------------------------------------------*/
/* seal and walk */

void space_map_seal(struct space_map *sm, struct tx *tx, struct space_map_phys *out)
{
	u32 csum = 0;

	for (u64 i = 0; i < sm->nr_born; i++) {
		struct space_map_block_disk *d = smb(sm->born[i]);

		if (i > 0) {
			struct blkptr prev = {.blocknr = sm->born[i - 1]->blocknr,
					      .birth_txg = tx->txg,
					      .csum = csum};

			VERIFY(le64_to_cpu(d->prev.blocknr) == prev.blocknr);
			blkptr_pack(&d->prev, &prev);
		}
		csum = cache_seal(sm->cache, sm->born[i], tx->txg);
	}
	if (sm->nr_born) {
		struct cblock *tail = sm->born[sm->nr_born - 1];

		sm->phys.tail = (struct blkptr){
			.blocknr = tail->blocknr, .birth_txg = tx->txg, .csum = csum};
	}
	put_born(sm);
	*out = sm->phys;
}

void space_map_get_phys(const struct space_map *sm, struct space_map_phys *out)
{
	*out = sm->phys;
}

int space_map_walk_blocks(const struct space_map *sm,
			  int (*fn)(void *arg, u64 blocknr, u64 birth_txg), void *arg)
{
	for (u64 i = 0; i < sm->nr_chain; i++) {
		int r = fn(arg, sm->chain[i].blocknr, sm->chain[i].birth);

		if (r)
			return r;
	}
	return 0;
}
