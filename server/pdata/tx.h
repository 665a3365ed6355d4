/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * tx.h - the transaction context every persistent structure is modified in.
 *
 * A struct tx names the open transaction group and supplies metadata block allocation.
 * Modules that change persistent maps (btree, space maps) take a struct tx and
 * never talk to the txg machinery directly, so their unit tests can use a trivial allocator
 * and the store can use the space maps.
 *
 * Rules every implementation keeps (DESIGN.md 4):
 *  - alloc_meta returns an address no reachable block of the last synced txg uses;
 *  - free_meta of a block born in the open txg may make it reusable at once (it was never
 *    part of a durable state); any other free is deferred until the freeing txg is durable,
 *    so a crash before then still finds the block intact.
 */
#ifndef DDSNAP_TX_H
#define DDSNAP_TX_H

#include "util/base.h"

struct cache;
struct tx;

struct tx_ops {
	/* Allocates one metadata block for the open txg. Returns 0 or -ENOSPC. */
	int (*alloc_meta)(struct tx *tx, u64 *blocknr);
	/* Frees one metadata block that was born in @birth_txg. */
	void (*free_meta)(struct tx *tx, u64 blocknr, u64 birth_txg);
};

struct tx {
	u64 txg; /* the open txg; blocks born in it may be changed in place */
	struct cache *cache;
	const struct tx_ops *ops;
	void *priv; /* the implementation's */
};

static inline int tx_alloc_meta(struct tx *tx, u64 *blocknr)
{
	return tx->ops->alloc_meta(tx, blocknr);
}
static inline void tx_free_meta(struct tx *tx, u64 blocknr, u64 birth_txg)
{
	tx->ops->free_meta(tx, blocknr, birth_txg);
}

#endif
