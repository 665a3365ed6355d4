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
 * Space accounting uses a bitmap over the whole metadata device: a block reached twice, or
 * a block outside the metadata region, is an error; so is a referenced count that differs
 * from the uberblock's meta_alloc.
 */
#include "store_check.h"
#include <stdarg.h>
#include <string.h>
#include "label.h"
#include "treewalk.h"
#include "uberblock.h"

struct checker {
	FILE *out;
	struct store_check_report *rep;
	struct label label;
	struct bdev *snap, *meta;
	struct uberblock ub;
	u64 *seen;
	u64 region_start, region_blocks;
	const char *tree;
};

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
			finding(c, true, "%s: label copy %d: %s", b->name, copy, why);
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

static int account_node(void *arg, const struct treewalk_node *n)
{
	struct checker *c = arg;

	if (n->blocknr < c->region_start || n->blocknr - c->region_start >= c->region_blocks) {
		finding(c, true, "%s tree: block %llu outside the metadata region", c->tree,
			(unsigned long long)n->blocknr);
		return 0;
	}
	if (n->txg > c->ub.txg)
		finding(c, true, "%s tree: block %llu born in txg %llu after the uberblock's %llu",
			c->tree, (unsigned long long)n->blocknr, (unsigned long long)n->txg,
			(unsigned long long)c->ub.txg);
	if (c->seen[n->blocknr / 64] & (1ULL << (n->blocknr % 64))) {
		finding(c, true, "%s tree: block %llu referenced twice", c->tree,
			(unsigned long long)n->blocknr);
		return -EILSEQ; /* a cycle or a shared block: stop this tree */
	}
	c->seen[n->blocknr / 64] |= 1ULL << (n->blocknr % 64);
	c->rep->meta_referenced++;
	return 0;
}

static void check_trees(struct checker *c)
{
	for (unsigned i = 0; i < UB_NR_ROOTS; i++) {
		struct treewalk w = {.node = account_node, .arg = c};
		char why[200] = "";
		int r;

		if (!uberblock_root_name(i))
			continue;
		c->tree = uberblock_root_name(i);
		r = treewalk(c->meta, &c->ub.roots[i], &w, why, sizeof(why));
		if (r && why[0])
			finding(c, true, "%s tree: %s", c->tree, why);
		else if (r && r != -EILSEQ)
			finding(c, true, "%s tree: error %d", c->tree, r);
		c->rep->trees[i] = (struct store_check_tree){.nodes = w.nodes,
							     .leaves = w.leaves,
							     .entries = w.entries,
							     .height = w.height};
	}
	c->rep->meta_alloc = c->ub.meta_alloc;
	if (c->rep->meta_referenced < c->ub.meta_alloc)
		finding(c, true, "%llu metadata blocks allocated but not referenced (leak)",
			(unsigned long long)(c->ub.meta_alloc - c->rep->meta_referenced));
	else if (c->rep->meta_referenced > c->ub.meta_alloc)
		finding(c, true, "%llu metadata blocks referenced but not allocated",
			(unsigned long long)(c->rep->meta_referenced - c->ub.meta_alloc));
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
	fprintf(c->out, "metadata: %llu blocks referenced, %llu allocated, region of %llu\n",
		(unsigned long long)rep->meta_referenced, (unsigned long long)rep->meta_alloc,
		(unsigned long long)rep->meta_region_blocks);
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
	check_labels(&c, snap, LABEL_ROLE_SNAPSTORE);
	if (meta)
		check_labels(&c, meta, LABEL_ROLE_METADEV);
	check_ring(&c);
	if (rep->ub_valid) {
		c.region_start = c.label.meta_blocks ? c.label.meta_start : c.label.data_start;
		c.region_blocks = c.label.meta_blocks ? c.label.meta_blocks : c.label.data_blocks;
		rep->meta_region_blocks = c.region_blocks;
		c.seen = xzalloc(DIV_ROUND_UP(c.meta->size / DDSNAP_BLOCK_SIZE, 64) * sizeof(u64));
		check_trees(&c);
		free(c.seen);
	}
	summary(&c);
	return 0;
}
