/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * btree.h - the copy-on-write B+tree behind every persistent map of a store: the exception
 * tree ((chunk, death) -> (birth, address)), the per-snapshot overlays (chunk -> address),
 * the snapshot table.  (Deadlists are not trees on disk: the engine rebuilds them in memory
 * from the exception tree at open, engine.c and deadlist.h.)
 *
 * A tree is described by a struct btree_type (fixed key and value sizes, a key order, an
 * optional aggregate) and named by its root, a struct blkptr that the owner keeps wherever
 * it keeps things (the uberblock, another tree's value).  An empty tree has root blocknr 0.
 *
 * Every block pointer inside the tree carries the child's address, the txg that wrote it
 * (birth), its checksum, and the aggregate of everything below it: the maximum over the
 * entries of type->aggr(key, value).  For the exception tree that is the largest death, so
 * a changelist walk (btree_walk) skips every subtree that holds nothing dead after a given
 * gen, and a send-style walk skips every subtree not rewritten since a given txg.
 *
 * Transactions.  Changes are made in the open txg of a struct tx.  A node written in an
 * earlier txg is never changed: it is shadowed into a new block and the old one freed with
 * its birth txg (tx_free_meta defers the reuse).  Nodes born in the open txg are changed in
 * place.  Child checksums are final only once the children are sealed, so the owner calls
 * btree_sync() for each tree it changed after the txg's last change and before cache_sync():
 *
 *	btree_insert(t, tx, ...); btree_delete(t, tx, ...);	   any number, in txg T
 *	btree_sync(t, tx);		seals T's nodes bottom-up, fills child csums
 *	btree_root(t, &ub->root);	the root pointer to persist
 *	cache_sync(cache, T); flush; write uberblock
 *
 * Until btree_sync the unsealed nodes and the pointers to them hold checksum 0; the read
 * path accepts that only where both sides agree, so a missed btree_sync shows up as -EILSEQ
 * on the next read after the blocks left the cache, never as silently wrong data.
 *
 * Errors (base.h): -ENODATA not found / end of iteration, -EEXIST insert of a present key
 * without BTREE_OVERWRITE, -ENOSPC no metadata block (the tree is unchanged), -EILSEQ a
 * corrupt node (bad checksum, structure, level, aggregate), -ENOTBLK a misplaced node,
 * -ESTALE a node of the wrong txg at the pointer's address, -EIO, -EINVAL bad arguments.
 * A modifying call that fails leaves the tree exactly as it was: every block it reads and
 * allocates is obtained before the first byte changes.
 *
 * Locking.  A struct btree has no lock of its own.  The caller serializes: at most one
 * modifying call (insert, delete, destroy, sync) at a time per tree, and no read of the same
 * handle concurrently with one.  Reads (find, cursor, walk, stats, verify) may run in any
 * number of threads at once on a handle nobody is modifying (they only take cache
 * references, and the cache has its own lock).  A reader that must run concurrently with a
 * writer opens its own handle on a synced root (btree_open with the root of the last synced
 * txg): the writer never changes a block born before its open txg, and a block it frees is
 * not reused before the freeing txg is on disk, so that handle stays valid until the txg
 * after the writer's current one is synced.
 *
 * Costs: n entries, fanout f (leaf capacity is (4096 - 48) / (key + value size): 126 for the
 * exception tree, internal capacity (4096 - 48) / (key size + 32): 84), height log_f(n).
 */
#ifndef DDSNAP_BTREE_H
#define DDSNAP_BTREE_H

#include "util/base.h"
#include "blk/block.h"
#include "blk/cache.h"
#include "pdata/tx.h"

struct iopool;

/* Key and value size limits: enough for a snapshot record, small enough for >= 4 per node. */
#define BTREE_MAX_KEY_SIZE   128
#define BTREE_MAX_VALUE_SIZE 512
/* Deepest tree accepted; with the minimum fanouts above, far beyond any device size. */
#define BTREE_MAX_DEPTH 16

/*
 * How keys compare.  The order is recorded in every node so the block validators can check
 * key order without knowing whose tree a block belongs to; so it is one of a fixed set.
 */
enum btree_key_order {
	/* Bytewise, unsigned (memcmp). */
	BTREE_KEY_MEMCMP = 1,
	/*
	 * The key is an array of __le64 (key_size a multiple of 8), compared field by field as
	 * unsigned integers: (chunk, death) for the exception tree, a bare chunk or tag elsewhere.
	 */
	BTREE_KEY_LE64 = 2,
};

struct btree_type {
	const char *name;	    /* "exceptions", for messages */
	u16 key_size;		    /* 1..BTREE_MAX_KEY_SIZE bytes */
	u16 value_size;		    /* 0..BTREE_MAX_VALUE_SIZE bytes */
	enum btree_key_order order; /* how keys compare */
	/*
	 * Optional: a u64 per entry, combined by max into every block pointer (the exception
	 * tree's is the death).  NULL: every aggregate is 0.  Must be a pure function of the
	 * entry's bytes.  Called with the on-disk key and value bytes (possibly unaligned).
	 */
	u64 (*aggr)(const void *key, const void *value);
};

/* The block types of the nodes (for validators, fuzzers and the checker). */
extern const struct block_type btree_leaf_block_type;
extern const struct block_type btree_node_block_type;

struct btree;

/*
 * Opens a handle on the tree rooted at @root (blocknr 0: empty) of @type over @cache.
 * Reads and validates the root node (which also tells the tree height).  Returns 0 and
 * *out, -EINVAL for an unusable @type, or a read error.  Blocks on a cache miss.
 * The handle holds no cache reference between calls.
 */
int btree_open(const struct btree_type *type, struct cache *cache, const struct blkptr *root,
	       struct btree **out);

/* Frees the handle (not the tree).  Unsynced changes stay in the cache as dirty blocks. */
void btree_close(struct btree *t);

/* The current root pointer (its csum is final only after btree_sync). O(1). */
void btree_root(const struct btree *t, struct blkptr *out);

/* True iff the tree has no entries. O(1). */
bool btree_empty(const struct btree *t);

/* The tree's type. O(1). */
const struct btree_type *btree_type_of(const struct btree *t);

/*
 * Bumped by every successful modification of this handle; cursors use it to notice that
 * their copy of a leaf is out of date.  O(1).
 */
u64 btree_generation(const struct btree *t);

/*------------------------------------------------------------------------------------------
 * Point and bound lookups
 *----------------------------------------------------------------------------------------*/

enum btree_seek {
	BTREE_EQ,    /* the entry with key == k */
	BTREE_GE,    /* the first entry with key >= k (lower bound) */
	BTREE_GT,    /* the first entry with key > k (upper bound) */
	BTREE_LE,    /* the last entry with key <= k */
	BTREE_LT,    /* the last entry with key < k */
	BTREE_FIRST, /* the smallest entry (k ignored, may be NULL) */
	BTREE_LAST,  /* the largest entry (k ignored, may be NULL) */
};

/*
 * Finds the entry @how relative to @key and copies its key to @key_out and its value to
 * @value_out (either may be NULL).  Returns 0, -ENODATA if there is none, or a read error.
 * O(log n); reads at most two root-to-leaf paths (one when the answer is in the leaf the
 * key leads to).  Blocks on cache misses.  Read-side locking (see top).
 */
int btree_find(struct btree *t, const void *key, enum btree_seek how, void *key_out,
	       void *value_out);

/* btree_find(BTREE_EQ): 0 and the value, or -ENODATA. */
static inline int btree_lookup(struct btree *t, const void *key, void *value_out)
{
	return btree_find(t, key, BTREE_EQ, NULL, value_out);
}

/* The first entry with key >= @key. */
static inline int btree_lower_bound(struct btree *t, const void *key, void *key_out,
				    void *value_out)
{
	return btree_find(t, key, BTREE_GE, key_out, value_out);
}

/* The first entry with key > @key. */
static inline int btree_upper_bound(struct btree *t, const void *key, void *key_out,
				    void *value_out)
{
	return btree_find(t, key, BTREE_GT, key_out, value_out);
}

/*------------------------------------------------------------------------------------------
 * Modification (all in @tx's open txg; tx->cache must be the tree's cache)
 *----------------------------------------------------------------------------------------*/

enum btree_insert_mode {
	BTREE_NOOVERWRITE = 0, /* a present key fails with -EEXIST */
	BTREE_OVERWRITE = 1,   /* a present key gets the new value */
};

/*
 * Inserts @key -> @value.  Returns 0, -EEXIST (present, BTREE_NOOVERWRITE; nothing
 * changed), -ENOSPC, or a read error; on any error the tree is unchanged.  O(log n): shadows
 * the root-to-leaf path (blocks born before tx->txg) and splits full nodes on it, so it
 * allocates at most 2 * height + 1 blocks.  Blocks on cache misses and in tx_alloc_meta.
 * Writer locking (see top).
 */
int btree_insert(struct btree *t, struct tx *tx, const void *key, const void *value,
		 enum btree_insert_mode mode);

/*
 * Inserts @n entries whose keys strictly increase (@keys and @values each @n packed keys or
 * values of the tree's sizes; @values may be NULL when the value size is 0), none already
 * present.  Returns 0, or -EEXIST (a key present), -ENOSPC or a read error after inserting
 * exactly the first *@done entries (the tree holds those, as if each had been inserted
 * alone).  Entries that land in one leaf go in with one descent: a run of keys appended at
 * a piece's right edge costs O(log n) per leaf filled, not per entry (each descent then
 * fills the leaf's free slots with the keys below its upper bound).  Allocates at most
 * 2 * height + 1 blocks per descent.  Writer locking.
 */
int btree_insert_sorted(struct btree *t, struct tx *tx, const void *keys, const void *values, u32 n,
			u32 *done);

/*
 * Deletes @key, copying its value to @value_out (may be NULL) first.  Returns 0, -ENODATA
 * (absent; nothing changed), -ENOSPC, or a read error; on error the tree is unchanged.
 * O(log n): shadows the path, and where a node falls below half full, merges it with or
 * borrows from a sibling (which is then shadowed too); collapses a root left with one
 * child.  Allocates at most 2 * height blocks.  Writer locking.
 */
int btree_delete(struct btree *t, struct tx *tx, const void *key, void *value_out);

/*
 * Deletes every entry with @lo <= key <= @hi, counting them in *@deleted (set to 0 first).
 * Returns 0, or -ENOSPC or a read error with the first *@deleted entries of the range
 * deleted and the rest present (a valid tree either way).  Each descent removes at once
 * every entry of the range its leaf can lose while staying half full, then one entry
 * through btree_delete's rebalancing (merge or borrow), so a range of m entries costs
 * about 2m / (leaf capacity) descents, not m.  Writer locking.
 */
int btree_delete_range(struct btree *t, struct tx *tx, const void *lo, const void *hi,
		       u64 *deleted);

/*
 * Deletes the @n entries whose keys are @keys (strictly increasing, packed), copying their
 * values to @values_out (n values, may be NULL).  Returns 0, or -ENODATA (a key absent),
 * -ENOSPC or a read error with the first *@done deleted (their values copied) and the rest
 * present.  Each descent removes every listed key its leaf holds and can spare, so keys
 * that share leaves (a piece's exceptions, ascending) cost a descent per leaf, not per key.
 * Writer locking.
 */
int btree_delete_sorted(struct btree *t, struct tx *tx, const void *keys, u32 n, void *values_out,
			u32 *done);

/*
 * Frees every block of the tree (tx_free_meta with each block's birth txg) and makes it
 * empty.  Returns 0 or a read error (blocks freed before the error stay freed, and the
 * tree is then empty in memory: the caller should treat the txg as failed).  O(number of
 * nodes) reads; do not call it on a latency-sensitive path.  Writer locking.
 */
int btree_destroy(struct btree *t, struct tx *tx);

/*
 * Seals every node of the tree born in tx->txg, children before parents, writing each
 * child's final checksum into its parent's pointer, and finally into the root pointer.
 * Call after the last change of the txg and before cache_sync(); calling it again after
 * more changes in the same txg is fine.  Returns 0 or a read error.  O(nodes changed in the
 * txg) (it descends only pointers with birth == tx->txg).  Writer locking.
 */
int btree_sync(struct btree *t, struct tx *tx);

/*------------------------------------------------------------------------------------------
 * Ordered iteration
 *----------------------------------------------------------------------------------------*/

/*
 * A cursor keeps a private copy of the current leaf, so it holds no cache reference
 * between calls and survives changes to the tree: when the tree's generation moved since
 * the cursor last read a leaf, next/prev re-seek from the current key (so deleting the
 * current entry while iterating is fine).  Fields are private.
 */
struct btree_cursor {
	struct btree *tree;
	u64 gen;		    /* btree_generation() when @leaf was copied */
	void *leaf;		    /* copy of the current leaf node (DDSNAP_BLOCK_SIZE bytes) */
	int idx;		    /* current entry in @leaf */
	bool valid;		    /* positioned on an entry */
	u8 key[BTREE_MAX_KEY_SIZE]; /* the current key, to re-seek from */
	struct iopool *ra;	    /* btree_cursor_readahead's pool, or NULL */
	u64 ra_parent;		    /* the last parent whose leaves were read ahead */
};

/* Prepares @c on @t (allocates the leaf buffer); unpositioned.  O(1). */
void btree_cursor_init(struct btree_cursor *c, struct btree *t);
void btree_cursor_fini(struct btree_cursor *c);

/*
 * Makes @c read leaves ahead for a walk in key order: on entering a leaf whose parent it has
 * not entered before, it reads the parent's later leaves into the cache in parallel on
 * @pool's threads (one parent's worth, at most 128 leaves and a quarter of the cache, at a time) and waits
 * for them.  A walk of a tree that is not cached then waits for one round of parallel
 * reads per parent instead of one read per leaf (the server's open, bench/open.sh).  A
 * read error of a leaf read ahead is ignored there and met again when the walk reaches
 * it.  @pool NULL turns it off; a pool of no threads would read serially and is ignored.
 * The pool must be free: the caller serialises iopool_run itself.
 */
void btree_cursor_readahead(struct btree_cursor *c, struct iopool *pool);

/*
 * Positions @c on the entry btree_find(@key, @how) would return.  Returns 0, -ENODATA
 * (no such entry; @c unpositioned) or a read error.  O(log n).  Read-side locking.
 */
int btree_cursor_seek(struct btree_cursor *c, const void *key, enum btree_seek how);

/*
 * Moves to the next (prev: previous) entry in key order.  Returns 0, -ENODATA at the end
 * (@c becomes unpositioned), -EINVAL if unpositioned, or a read error.  O(1) within a leaf,
 * O(log n) when crossing to the next leaf or after the tree changed.  Read-side locking.
 */
int btree_cursor_next(struct btree_cursor *c);
int btree_cursor_prev(struct btree_cursor *c);

/* The block number of the leaf holding the current entry, for messages (0 unpositioned). */
u64 btree_cursor_blocknr(const struct btree_cursor *c);

/* The current entry's key and value bytes (valid until the next cursor call). */
const void *btree_cursor_key(const struct btree_cursor *c);
const void *btree_cursor_value(const struct btree_cursor *c);

/*------------------------------------------------------------------------------------------
 * Pruned walks, statistics and checking
 *----------------------------------------------------------------------------------------*/

enum btree_walk_flags {
	/* Visit only subtrees with pointer birth_txg > min_birth (changed since that txg). */
	BTREE_WALK_BIRTH = 1 << 0,
	/* Visit only subtrees with aggregate > min_aggr, and only entries with aggr > min_aggr. */
	BTREE_WALK_AGGR = 1 << 1,
};

/*
 * A pruned, in-order walk.  With both flags a subtree must pass both tests.  Birth pruning
 * is per node: every entry of a leaf rewritten after min_birth is reported (a superset of
 * the changed entries, as a ZFS send is).  @entry returning non-zero stops the walk and
 * btree_walk returns that value.  @entry may read any tree but must not modify this one
 * (collect the keys and change the tree afterwards, or use a cursor, which tolerates it).
 * The counters are filled in on return.
 */
struct btree_walk {
	unsigned flags;
	u64 min_birth;
	u64 min_aggr;
	int (*entry)(void *arg, const void *key, const void *value);
	void *arg;
	/* out */
	u64 nodes_visited; /* nodes read, leaves included */
	u64 leaves_visited;
	u64 entries_reported;
};

/*
 * Runs @w over @t.  Returns 0, the callback's non-zero value, or a read error.
 * O(visited nodes * fanout): a changelist over c changed entries visits about
 * c * height nodes, not the whole tree.  Read-side locking.
 */
int btree_walk(struct btree *t, struct btree_walk *w);

struct btree_stats {
	u64 entries;
	u64 leaves, internal; /* node counts */
	u32 height;	      /* 0 for an empty tree, 1 for a lone leaf */
	u64 bytes;	      /* on-disk bytes: (leaves + internal) * DDSNAP_BLOCK_SIZE */
	u64 leaf_slots;	      /* leaves * leaf capacity, for a fill ratio */
};

/* Counts entries and nodes.  Returns 0 or a read error.  O(nodes).  Read-side locking. */
int btree_stats(struct btree *t, struct btree_stats *out);

/*
 * Called by btree_verify for every block the tree references (each once), so a checker can
 * account space: the address, its birth txg, and its level (0 = leaf).  Non-zero stops.
 */
typedef int (*btree_block_fn)(void *arg, u64 blocknr, u64 birth_txg, unsigned level);

/*
 * The full check for `ddsnap check`: reads every node (each validates: checksum, own
 * address, structure), and checks what no single block can show: levels decrease by one
 * per step, every pointer's birth txg and checksum match the child's header, every
 * pointer's aggregate is the maximum over the child, keys are strictly increasing across
 * nodes and inside each child's separator range, every non-root node is at least half full,
 * the root is not a single-child internal node, key and value sizes match @t's type.
 * Returns 0, -EILSEQ with a reason in @why, another read error, or @fn's non-zero return.
 * Fills @stats (may be NULL).  O(nodes * fanout).  Read-side locking.
 */
int btree_verify(struct btree *t, btree_block_fn fn, void *arg, struct btree_stats *stats,
		 char *why, size_t whylen);

/*------------------------------------------------------------------------------------------
 * Key helpers for BTREE_KEY_LE64 trees
 *----------------------------------------------------------------------------------------*/

/* Compares two keys of @type (negative, zero, positive).  O(key size). */
int btree_key_cmp(const struct btree_type *type, const void *a, const void *b);

/* Stores/loads field @i of a BTREE_KEY_LE64 key (or any packed __le64 array). */
static inline void btree_put_le64(void *buf, unsigned i, u64 v)
{
	__le64 le = cpu_to_le64(v);

	__builtin_memcpy((u8 *)buf + 8 * i, &le, sizeof(le));
}

static inline u64 btree_get_le64(const void *buf, unsigned i)
{
	__le64 le;

	__builtin_memcpy(&le, (const u8 *)buf + 8 * i, sizeof(le));
	return le64_to_cpu(le);
}

#endif /* DDSNAP_BTREE_H */
