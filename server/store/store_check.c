// SPDX-License-Identifier: GPL-2.0-only
/*
 * store_check.c - the offline checker (store_check.h).
 *
 * Order: labels (a store whose labels cannot be read cannot be checked further), the ring,
 * then the trees.  Every finding is one line "error: ..." or "warning: ..." so scripts can
 * grep them; the summary ends with "check: clean" or "check: N errors".  Nothing here
 * writes, so running it on a live store is safe but may report a txg in progress as newer
 * blocks than the uberblock it read (run it on a stopped store).
 *
 * Space accounting: one bitmap over the metadata device marks every block reached (tree
 * nodes, overlay tree nodes, the allocator's table and space map blocks), one over the
 * snapstore's chunks marks every data chunk named by an exception or an overlay entry.  A
 * second mark is a double reference; a mark on a block the space maps call free is "both
 * free and used"; an allocated run with unmarked blocks is a leak.  The allocator is loaded
 * with metaslab_open over a private cache, which cross-checks every space map on replay.
 *
 * The checker knows the engine's on-disk records (format.h: exception_disk, overlay_disk,
 * snap_record_disk) only as far as space goes; the engine's semantic checks (deadlist
 * totals, visibility of every exception) are engine_check's.
 */
#include "store/store_check.h"
#include <stdarg.h>
#include <string.h>
#include "blk/cache.h"
#include "store/label.h"
#include "pdata/metaslab.h"
#include "pdata/treewalk.h"
#include "store/uberblock.h"
#include "util/xfer.h"

/* Cache for reading the allocator's table and space maps: they are read once each. */
#define STORE_CHECK_CACHE_BYTES (16ULL << 20)

struct checker {
	FILE *out;
	struct store_check_report *rep;
	struct label label;
	struct bdev *snap, *meta;
	struct uberblock ub;
	struct cache *cache;
	struct metaslab_group *mg;
	u64 *seen;	 /* metadata blocks referenced, by device block: meta_blocks bits */
	u64 *data_seen;	 /* data chunks referenced, by chunk address: nchunks bits */
	u64 meta_blocks; /* the metadata device's blocks as the label says (block numbers too) */
	u64 region_start, region_blocks, chunk_blocks, nchunks;
	char tree[64];
	unsigned root; /* which uberblock root the walk came from */
	struct blkptr *overlays;
	u64 *overlay_tags;
	u64 noverlays, overlays_cap;
	u64 meta_leaks, data_leaks, first_meta_leak, first_data_leak;
	u64 damaged; /* subtrees that could not be read: what they hold looks leaked */
	struct xfer_progress prog; /* tree blocks walked of the uberblock's meta_alloc */
};

/* Callers check @i against the bitmap's source first: the VERIFY is the backstop. */
static bool bit_test_set(u64 *map, u64 nbits, u64 i)
{
	VERIFY(i < nbits);
	bool was = map[i / 64] & (1ULL << (i % 64));

	map[i / 64] |= 1ULL << (i % 64);
	return was;
}

static void __printf(3, 4) finding(struct checker *c, bool error, const char *fmt, ...)
{
	va_list ap;

	if (error)
		c->rep->errors++;
	else
		c->rep->warnings++;
	if (!c->out)
		return;
	fprintf(c->out, "%s: ", error ? "error" : "warning");
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
}

/* Both copies of @b's label: valid, equal to the reference, with the expected role. */
static void check_labels(struct checker *c, struct bdev *b, u32 role)
{
	for (int copy = 0; copy < 2; copy++) {
		struct label l;
		char why[160] = "";
		int r = label_read(b, copy, &l, why, sizeof(why));

		if (r) {
			finding(c, true, "%s", why); /* names the device and the copy */
			continue;
		}
		if (l.role != role || !label_same_store(&l, &c->label))
			finding(c, true, "%s: label copy %d differs from the store's label",
				b->name, copy);
	}
}

static void check_ring(struct checker *c)
{
	struct store_check_report *rep = c->rep;

	rep->ub_slots = c->label.ub_slots;
	for (u32 s = 0; s < c->label.ub_slots; s++) {
		struct uberblock ub;
		char why[160] = "";
		int r = uberblock_read_slot(c->meta, &c->label, s, &ub, why, sizeof(why));

		if (r == -ENODATA)
			continue;
		if (r) {
			/* A torn write of the newest uberblock is what a crash may leave: a warning. */
			finding(c, false, "uberblock slot %u: %s", s, why);
			continue;
		}
		if (!rep->ub_valid++ || ub.txg > c->ub.txg)
			c->ub = ub;
	}
	if (!rep->ub_valid)
		finding(c, true, "no valid uberblock");
	rep->txg = c->ub.txg;
}

/* One metadata block reached from the uberblock (a tree node or an allocator block). */
static void account_meta(struct checker *c, const char *what, u64 blocknr, u64 birth)
{
	if (blocknr < c->region_start || blocknr - c->region_start >= c->region_blocks) {
		finding(c, true, "%s: block %llu outside the metadata region", what,
			(unsigned long long)blocknr);
		return;
	}
	if (birth > c->ub.txg)
		finding(c, true, "%s: block %llu born in txg %llu after the uberblock's %llu", what,
			(unsigned long long)blocknr, (unsigned long long)birth,
			(unsigned long long)c->ub.txg);
	if (bit_test_set(c->seen, c->meta_blocks, blocknr)) {
		finding(c, true, "%s: block %llu referenced twice", what,
			(unsigned long long)blocknr);
		return;
	}
	c->rep->meta_referenced++;
	if (c->mg && !metaslab_is_allocated(c->mg, METASLAB_CLASS_META, blocknr, 1))
		finding(c, true, "%s: block %llu in use but free in the space maps", what,
			(unsigned long long)blocknr);
}

/* One data chunk referenced by an exception or an overlay entry. */
static void account_data(struct checker *c, u64 addr)
{
	u64 start = addr * c->chunk_blocks;

	if (addr >= c->nchunks || start < c->label.data_start ||
	    start + c->chunk_blocks > c->label.data_start + c->label.data_blocks) {
		finding(c, true, "%s: data chunk %llu outside the data region", c->tree,
			(unsigned long long)addr);
		return;
	}
	if (bit_test_set(c->data_seen, c->nchunks, addr)) {
		finding(c, true, "%s: data chunk %llu referenced twice", c->tree,
			(unsigned long long)addr);
		return;
	}
	c->rep->data_referenced += c->chunk_blocks;
	if (c->mg && !metaslab_is_allocated(c->mg, METASLAB_CLASS_DATA, start, c->chunk_blocks))
		finding(c, true, "%s: data chunk %llu in use but free in the space maps", c->tree,
			(unsigned long long)addr);
}

/* Leaf entries: exceptions and overlay entries name data chunks; snapshots name overlays. */
static void account_leaf(struct checker *c, const struct treewalk_node *n)
{
	const struct btree_node_disk *nd = n->block;
	unsigned cap = BTREE_NODE_PAYLOAD / (n->key_size + n->value_size);
	const u8 *keys = nd->payload, *vals = nd->payload + (size_t)cap * n->key_size;
	bool exc = c->root == UB_ROOT_EXCEPTIONS, snap = c->root == UB_ROOT_SNAPSHOTS;
	bool ovl = c->root == UB_ROOT_OVERLAYS;
	unsigned want_k = exc ? 16 : 8;
	unsigned want_v = exc	 ? sizeof(struct exception_disk)
			  : snap ? sizeof(struct snap_record_disk)
				 : sizeof(struct overlay_disk);

	if (!exc && !snap && !ovl)
		return; /* deadlists: no space of their own beyond their nodes */
	if (n->key_size != want_k || n->value_size != want_v) {
		finding(c, true, "%s: leaf %llu has %u/%u-byte keys/values, expected %u/%u",
			c->tree, (unsigned long long)n->blocknr, n->key_size, n->value_size, want_k,
			want_v);
		return;
	}
	for (unsigned i = 0; i < n->nr_entries; i++) {
		const u8 *v = vals + (size_t)i * n->value_size;

		if (exc) {
			const struct exception_disk *e = (const void *)v;

			account_data(c, le64_to_cpu(e->addr));
		} else if (ovl) {
			const struct overlay_disk *o = (const void *)v;

			account_data(c, le64_to_cpu(o->addr));
		} else {
			const struct snap_record_disk *r = (const void *)v;
			u64 tag;
			struct blkptr p;

			blkptr_unpack(&p, &r->overlay);
			if (!p.blocknr)
				continue;
			memcpy(&tag, keys + (size_t)i * n->key_size, 8);
			if (c->noverlays == c->overlays_cap) {
				c->overlays_cap = c->overlays_cap ? 2 * c->overlays_cap : 16;
				c->overlays = xrealloc(c->overlays,
						       c->overlays_cap * sizeof(*c->overlays));
				c->overlay_tags =
					xrealloc(c->overlay_tags, c->overlays_cap * sizeof(u64));
			}
			c->overlays[c->noverlays] = p;
			c->overlay_tags[c->noverlays++] = le64toh(tag);
		}
	}
}

static int account_node(void *arg, const struct treewalk_node *n)
{
	struct checker *c = arg;

	account_meta(c, c->tree, n->blocknr, n->txg);
	xfer_progress_update(&c->prog, c->prog.done + 1);
	if (n->level == 0)
		account_leaf(c, n);
	return 0;
}

static int report_damage(void *arg, u64 blocknr, int err, const char *why)
{
	struct checker *c = arg;

	finding(c, true, "%s tree: %s", c->tree, why[0] ? why : errmsg(err));
	/* Its pointer still holds the block: not a leak, only unreadable. */
	account_meta(c, c->tree, blocknr, 0);
	c->damaged++;
	return 0; /* go on with the rest of the tree */
}

static void walk_tree(struct checker *c, const struct blkptr *root, struct store_check_tree *t)
{
	struct treewalk w = {.node = account_node, .damage = report_damage, .arg = c};
	char why[200] = "";
	int r = treewalk(c->meta, root, &w, why, sizeof(why));

	if (r)
		finding(c, true, "%s tree: %s", c->tree, why[0] ? why : errmsg(r));
	if (t)
		*t = (struct store_check_tree){.nodes = w.nodes,
					       .leaves = w.leaves,
					       .entries = w.entries,
					       .height = w.height};
}

struct own_blocks {
	u64 (*v)[2];
	u64 n, cap;
};

/* Collects the allocator's blocks (the walk holds the allocator's lock: no queries here). */
static int collect_own(void *arg, u64 blocknr, u64 birth)
{
	struct own_blocks *o = arg;

	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 64;
		o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
	}
	o->v[o->n][0] = blocknr;
	o->v[o->n++][1] = birth;
	return 0;
}

static int account_allocated(void *arg, enum metaslab_class_disk cls, u64 start, u64 n)
{
	struct checker *c = arg;

	if (cls == METASLAB_CLASS_META) {
		c->rep->meta_allocated += n;
		for (u64 b = start; b < start + n; b++)
			if ((b >= c->meta_blocks || !(c->seen[b / 64] & (1ULL << (b % 64)))) &&
			    !c->meta_leaks++)
				c->first_meta_leak = b;
	} else if (cls == METASLAB_CLASS_DATA) {
		c->rep->data_allocated += n;
		for (u64 b = start; b < start + n; b += c->chunk_blocks) {
			u64 a = b / c->chunk_blocks;

			if ((a >= c->nchunks || !(c->data_seen[a / 64] & (1ULL << (a % 64)))) &&
			    !c->data_leaks++)
				c->first_data_leak = a;
		}
	}
	return 0;
}

static void check_space(struct checker *c)
{
	char why[200] = "";
	int r;

	c->cache = cache_create(c->meta, STORE_CHECK_CACHE_BYTES);
	cache_set_synced_txg(c->cache, c->ub.txg);
	r = metaslab_open(c->cache, &c->ub.metaslab, c->ub.txg, &c->mg, why, sizeof(why));
	if (r) {
		finding(c, true, "metaslab table: %s", why[0] ? why : errmsg(r));
		c->mg = NULL;
		return;
	}
	{
		struct own_blocks o = {0};

		metaslab_walk_own_blocks(c->mg, collect_own, &o);
		for (u64 i = 0; i < o.n; i++) {
			c->rep->allocator_blocks++;
			account_meta(c, "allocator", o.v[i][0], o.v[i][1]);
		}
		free(o.v);
	}
}

/* One finding for @n allocated but unreferenced @what (none if @n is 0). */
static void report_leaks(struct checker *c, u64 n, const char *what, u64 first)
{
	if (n)
		finding(c, true, "%llu %s allocated but not referenced (leak%s), first %llu",
			(unsigned long long)n, what, c->damaged ? ", or below a damaged block" : "",
			(unsigned long long)first);
}

static void check_trees(struct checker *c)
{
	for (unsigned i = 0; i < UB_NR_ROOTS; i++) {
		if (!uberblock_root_name(i))
			continue;
		c->root = i;
		snprintf(c->tree, sizeof(c->tree), "%s", uberblock_root_name(i));
		walk_tree(c, &c->ub.roots[i], &c->rep->trees[i]);
	}
	c->root = UB_ROOT_OVERLAYS;
	for (u64 i = 0; i < c->noverlays; i++) {
		snprintf(c->tree, sizeof(c->tree), "overlay of snapshot %llu",
			 (unsigned long long)c->overlay_tags[i]);
		walk_tree(c, &c->overlays[i], NULL);
		c->rep->overlays++;
	}
	if (!c->mg)
		return;
	metaslab_walk_allocated(c->mg, account_allocated, c);
	report_leaks(c, c->meta_leaks, "metadata blocks", c->first_meta_leak);
	report_leaks(c, c->data_leaks, "data chunks", c->first_data_leak);
}

int store_log_walk(struct bdev *meta, const struct label *l, const struct uberblock *ub,
		   int (*fn)(void *arg, const struct intent_log_record *rec), void *arg,
		   u64 *pending, struct intent_log_damage *damage)
{
	struct intent_log_config cfg = {
		.bdev = meta,
		.start = l->log_start,
		.nblocks = l->log_blocks,
		.guid = l->log_guid,
		.synced_txg = ub->txg,
		.replay_from = {ub->log_block_seq, ub->log_rec_seq},
		.replay = fn,
		.replay_arg = arg,
		.damage = damage,
	};

	return intent_log_scan(&cfg, pending);
}

/* The records the next open replays, and damage that would make it refuse (intent_log.h). */
static void check_log(struct checker *c)
{
	struct intent_log_damage d;
	char msg[600];
	int r = store_log_walk(c->meta, &c->label, &c->ub, NULL, NULL, &c->rep->log_pending, &d);

	if (r)
		finding(c, true, "intent log: %s", errmsg(r));
	else if (d.damaged)
		finding(c, true, "intent log %s", intent_log_damage_describe(&d, msg, sizeof(msg)));
}

static void summary(struct checker *c)
{
	struct store_check_report *rep = c->rep;

	if (!c->out)
		return;
	fprintf(c->out, "txg %llu, %u of %u uberblock slots valid\n", (unsigned long long)rep->txg,
		rep->ub_valid, rep->ub_slots);
	for (unsigned i = 0; i < UB_NR_ROOTS; i++) {
		const struct store_check_tree *t = &rep->trees[i];

		if (!uberblock_root_name(i))
			continue;
		fprintf(c->out, "tree %s: %llu entries, %llu leaves, %llu internal, height %u\n",
			uberblock_root_name(i), (unsigned long long)t->entries,
			(unsigned long long)t->leaves, (unsigned long long)(t->nodes - t->leaves),
			t->height);
	}
	fprintf(c->out, "overlays: %llu\n", (unsigned long long)rep->overlays);
	fprintf(c->out,
		"intent log: %llu records newer than txg %llu (replayed on the next open)\n",
		(unsigned long long)rep->log_pending, (unsigned long long)rep->txg);
	fprintf(c->out,
		"metadata: %llu blocks referenced (%llu by the allocator), %llu allocated\n",
		(unsigned long long)rep->meta_referenced, (unsigned long long)rep->allocator_blocks,
		(unsigned long long)rep->meta_allocated);
	fprintf(c->out, "data: %llu blocks referenced, %llu allocated\n",
		(unsigned long long)rep->data_referenced, (unsigned long long)rep->data_allocated);
	if (rep->errors)
		fprintf(c->out, "check: %llu errors, %llu warnings\n",
			(unsigned long long)rep->errors, (unsigned long long)rep->warnings);
	else
		fprintf(c->out, "check: clean (%llu warnings)\n",
			(unsigned long long)rep->warnings);
}

int store_check(struct bdev *snap, struct bdev *meta, FILE *out, struct store_check_report *rep)
{
	struct checker c = {.out = out, .rep = rep, .snap = snap};
	char why[200] = "";
	int r;

	memset(rep, 0, sizeof(*rep));
	r = label_read(snap, -1, &c.label, why, sizeof(why));
	if (r) {
		if (out)
			fprintf(out, "error: %s\n", why);
		return r;
	}
	if (c.label.role != LABEL_ROLE_SNAPSTORE || !c.label.metadev_blocks != !meta) {
		if (out)
			fprintf(out, "error: %s\n",
				c.label.role != LABEL_ROLE_SNAPSTORE ? "not the snapstore"
				: meta ? "store has no metadata device"
				       : "store has a metadata device: name it");
		return -EINVAL;
	}
	c.meta = meta ? meta : snap;
	/* Block numbers below come from the label and the trees: the devices must hold them. */
	if (label_fits(&c.label, snap, LABEL_ROLE_SNAPSTORE, why, sizeof(why)) ||
	    (meta && label_fits(&c.label, meta, LABEL_ROLE_METADEV, why, sizeof(why)))) {
		finding(&c, true, "%s", why);
		if (out)
			fprintf(out, "check: %llu errors (nothing else checked)\n",
				(unsigned long long)rep->errors);
		return 0;
	}
	check_labels(&c, snap, LABEL_ROLE_SNAPSTORE);
	if (meta)
		check_labels(&c, meta, LABEL_ROLE_METADEV);
	check_ring(&c);
	if (rep->ub_valid) {
		c.region_start = c.label.meta_blocks ? c.label.meta_start : c.label.data_start;
		c.region_blocks = c.label.meta_blocks ? c.label.meta_blocks : c.label.data_blocks;
		c.chunk_blocks = label_chunk_blocks(&c.label);
		c.nchunks = c.label.snapstore_blocks / c.chunk_blocks;
		c.meta_blocks = meta ? c.label.metadev_blocks : c.label.snapstore_blocks;
		c.seen = xzalloc(DIV_ROUND_UP(c.meta_blocks, 64) * sizeof(u64));
		c.data_seen = xzalloc(DIV_ROUND_UP(c.nchunks, 64) * sizeof(u64));
		check_space(&c);
		xfer_progress_init_units(&c.prog, "check: tree blocks", "blocks", c.ub.meta_alloc,
					 false);
		check_trees(&c);
		xfer_progress_done(&c.prog);
		check_log(&c);
		metaslab_close(c.mg);
		cache_destroy(c.cache);
		free(c.seen);
		free(c.data_seen);
		free(c.overlays);
		free(c.overlay_tags);
	}
	summary(&c);
	return 0;
}
