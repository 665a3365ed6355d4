// SPDX-License-Identifier: GPL-2.0-only
/*
 * dump.c - `ddsnap dump [-a] [-n] <snapstore> [<metadev>]`: the store as text, one record
 * per line, "<keyword> name=value ...", in a fixed order (doc/format.md, "Dump format"), so
 * tests can compare dumps and fixtures can be written as dumps.
 *
 *	-a  every valid uberblock slot, not only the newest
 *	-n  tree structure only, no entries
 *
 * Reads only; refuses nothing it can read (damaged parts are reported as "error" lines and
 * skipped), so it is also the tool for looking at a broken store.
 */
#include <getopt.h>
#include <string.h>
#include "commands.h"
#include "util/xfer.h"
#include "blk/bdev.h"
#include "blk/cache.h"
#include "snap/engine.h"
#include "blk/format.h"
#include "store/label.h"
#include "pdata/metaslab.h"
#include "store/store_check.h"
#include "pdata/treewalk.h"
#include "store/uberblock.h"

/* Cache for reading the metaslab table and space maps once. */
#define DUMP_CACHE_BYTES (16ULL << 20)

#define DUMP_VERSION	 1

static void print_hex(FILE *f, const u8 *p, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
}

/* LE64 keys print as their fields, decimal, joined by ':'; other keys as hex. */
static void print_key(FILE *f, const u8 *k, unsigned size, unsigned order)
{
	if (order == 2 && size % 8 == 0) {
		for (unsigned i = 0; i < size; i += 8) {
			u64 v;

			memcpy(&v, k + i, 8);
			fprintf(f, "%s%llu", i ? ":" : "", (unsigned long long)le64toh(v));
		}
		return;
	}
	print_hex(f, k, size);
}

static void dump_label(FILE *f, const char *dev, const struct label *l)
{
	fprintf(f, "label device=%s version=%u uuid=", dev, l->version);
	print_hex(f, l->uuid, sizeof(l->uuid));
	fprintf(f,
		" created=%llu chunk_shift=%u snapstore_blocks=%llu metadev_blocks=%llu "
		"origin_bytes=%llu ub_start=%llu ub_slots=%u log_start=%llu log_blocks=%llu "
		"log_guid=0x%016llx data_start=%llu data_blocks=%llu meta_start=%llu "
		"meta_blocks=%llu ms_shift=%u features=0x%llx:0x%llx:0x%llx\n",
		(unsigned long long)l->created, l->chunk_shift,
		(unsigned long long)l->snapstore_blocks, (unsigned long long)l->metadev_blocks,
		(unsigned long long)l->origin_bytes, (unsigned long long)l->ub_start, l->ub_slots,
		(unsigned long long)l->log_start, (unsigned long long)l->log_blocks,
		(unsigned long long)l->log_guid, (unsigned long long)l->data_start,
		(unsigned long long)l->data_blocks, (unsigned long long)l->meta_start,
		(unsigned long long)l->meta_blocks, l->ms_shift,
		(unsigned long long)l->feature_compat, (unsigned long long)l->feature_ro_compat,
		(unsigned long long)l->feature_incompat);
}

static void dump_ptr(FILE *f, const char *what, const struct blkptr *p)
{
	fprintf(f, "%s blocknr=%llu birth=%llu aggr=%llu csum=0x%08x\n", what,
		(unsigned long long)p->blocknr, (unsigned long long)p->birth_txg,
		(unsigned long long)p->aggr, p->csum);
}

static void dump_uberblock(FILE *f, const struct label *l, const struct uberblock *ub, bool newest)
{
	const struct metaslab_root_disk *m = &ub->metaslab;
	struct blkptr table;

	fprintf(f,
		"uberblock slot=%llu txg=%llu%s timestamp=%llu meta_alloc=%llu data_alloc=%llu "
		"log_block_seq=%llu log_rec_seq=%llu\n",
		(unsigned long long)(ub->txg % l->ub_slots), (unsigned long long)ub->txg,
		newest ? " newest" : "", (unsigned long long)ub->timestamp,
		(unsigned long long)ub->meta_alloc, (unsigned long long)ub->data_alloc,
		(unsigned long long)ub->log_block_seq, (unsigned long long)ub->log_rec_seq);
	for (unsigned i = 0; i < UB_NR_SCALARS; i++)
		if (uberblock_scalar_name(i))
			fprintf(f, "scalar %s=%llu\n", uberblock_scalar_name(i),
				(unsigned long long)ub->scalars[i]);
	for (unsigned i = 0; i < UB_NR_ROOTS; i++) {
		char what[64];

		if (!uberblock_root_name(i))
			continue;
		snprintf(what, sizeof(what), "root %s", uberblock_root_name(i));
		dump_ptr(f, what, &ub->roots[i]);
	}
	blkptr_unpack(&table, &m->table);
	fprintf(f,
		"metaslab table=%llu birth=%llu csum=0x%08x data_start=%llu data_blocks=%llu "
		"meta_start=%llu meta_blocks=%llu ms_shift=%u chunk_shift=%u\n",
		(unsigned long long)table.blocknr, (unsigned long long)table.birth_txg, table.csum,
		(unsigned long long)le64_to_cpu(m->data_start),
		(unsigned long long)le64_to_cpu(m->data_blocks),
		(unsigned long long)le64_to_cpu(m->meta_start),
		(unsigned long long)le64_to_cpu(m->meta_blocks), le32_to_cpu(m->ms_shift),
		le32_to_cpu(m->chunk_shift));
}

struct dump_ctx {
	FILE *f;
	const char *tree;
	bool entries;
	struct xfer_progress *prog; /* tree blocks dumped, of the uberblock's meta_alloc */
};

static int dump_node(void *arg, const struct treewalk_node *n)
{
	struct dump_ctx *d = arg;
	const struct btree_node_disk *nd = n->block;
	unsigned cap = BTREE_NODE_PAYLOAD / (n->key_size + n->value_size);
	const u8 *keys = nd->payload, *vals = nd->payload + (size_t)cap * n->key_size;

	fprintf(d->f,
		"node tree=%s blocknr=%llu txg=%llu level=%u entries=%u key_size=%u "
		"value_size=%u\n",
		d->tree, (unsigned long long)n->blocknr, (unsigned long long)n->txg, n->level,
		n->nr_entries, n->key_size, n->value_size);
	xfer_progress_update(d->prog, d->prog->done + 1);
	for (unsigned i = 0; i < n->nr_entries; i++) {
		const u8 *k = keys + (size_t)i * n->key_size;
		const u8 *v = vals + (size_t)i * n->value_size;

		if (n->level) {
			struct blkptr p;

			blkptr_unpack(&p, (const struct blkptr_disk *)v);
			fprintf(d->f, "ptr key=");
			print_key(d->f, k, n->key_size, nd->key_order);
			fprintf(d->f, " blocknr=%llu birth=%llu aggr=%llu csum=0x%08x\n",
				(unsigned long long)p.blocknr, (unsigned long long)p.birth_txg,
				(unsigned long long)p.aggr, p.csum);
		} else if (d->entries) {
			fprintf(d->f, "entry key=");
			print_key(d->f, k, n->key_size, nd->key_order);
			fprintf(d->f, " value=");
			print_hex(d->f, v, n->value_size);
			fputc('\n', d->f);
		}
	}
	return 0;
}

/* A damaged subtree: say so in its place and go on with the rest of the tree. */
static int dump_damage(void *arg, u64 blocknr, int err, const char *why)
{
	struct dump_ctx *d = arg;

	fprintf(d->f, "error tree %s: %s\n", d->tree, why[0] ? why : errmsg(err));
	return 0;
}

static int dump_tree(FILE *f, struct bdev *meta, const char *name, const struct blkptr *root,
		     bool entries, struct xfer_progress *prog)
{
	struct dump_ctx d = {.f = f, .tree = name, .entries = entries, .prog = prog};
	struct treewalk w = {.node = dump_node, .damage = dump_damage, .arg = &d};
	char why[200] = "";
	int r;

	fprintf(f, "tree %s\n", name);
	r = treewalk(meta, root, &w, why, sizeof(why));
	if (r)
		fprintf(f, "error tree %s: %s\n", name, why[0] ? why : errmsg(r));
	return r || w.damaged ? -EILSEQ : 0;
}

struct overlay_ctx {
	FILE *f;
	struct bdev *meta;
	bool entries;
	int errors;
	struct xfer_progress *prog;
};

static int dump_overlay(void *arg, u32 tag, const struct blkptr *root)
{
	struct overlay_ctx *o = arg;
	char name[32];

	snprintf(name, sizeof(name), "overlay:%u", tag);
	if (dump_tree(o->f, o->meta, name, root, o->entries, o->prog))
		o->errors++;
	return 0;
}

static int dump_run(void *arg, enum metaslab_class_disk cls, u64 start, u64 n)
{
	fprintf(arg, "space class=%s start=%llu blocks=%llu\n",
		cls == METASLAB_CLASS_META   ? "meta"
		: cls == METASLAB_CLASS_DATA ? "data"
					     : "none",
		(unsigned long long)start, (unsigned long long)n);
	return 0;
}

static int dump_logrec(void *arg, const struct intent_log_record *rec)
{
	FILE *f = arg;

	fprintf(f,
		"logrec seq=%llu txg=%llu type=0x%x len=%u payload=", (unsigned long long)rec->seq,
		(unsigned long long)rec->txg, rec->type, rec->len);
	print_hex(f, rec->payload, rec->len);
	fputc('\n', f);
	return 0;
}

/* Overlay trees (they hang off the snapshot table), allocated space, pending log records. */
static int dump_more(FILE *f, struct bdev *meta, const struct label *l, const struct uberblock *ub,
		     bool entries, struct xfer_progress *prog)
{
	struct cache *cache = cache_create(meta, DUMP_CACHE_BYTES);
	struct overlay_ctx o = {.f = f, .meta = meta, .entries = entries, .prog = prog};
	struct metaslab_group *mg;
	struct intent_log_damage d;
	char why[200] = "", msg[600];
	int r, errors = 0;

	cache_set_synced_txg(cache, ub->txg);
	if (ub->roots[UB_ROOT_SNAPSHOTS].blocknr) {
		r = engine_overlay_roots(cache, &ub->roots[UB_ROOT_SNAPSHOTS], dump_overlay, &o);
		if (r) {
			fprintf(f, "error overlays: %s\n", errmsg(r));
			errors++;
		}
		errors += o.errors;
	}
	r = metaslab_open(cache, &ub->metaslab, ub->txg, &mg, why, sizeof(why));
	if (r) {
		fprintf(f, "error metaslab table: %s\n", why[0] ? why : errmsg(r));
		errors++;
	} else {
		metaslab_walk_allocated(mg, dump_run, f);
		metaslab_close(mg);
	}
	cache_destroy(cache);
	r = store_log_walk(meta, l, ub, dump_logrec, f, NULL, &d);
	if (r) {
		fprintf(f, "error intent log: %s\n", errmsg(r));
		errors++;
	} else if (d.damaged) {
		fprintf(f, "error intent log %s\n",
			intent_log_damage_describe(&d, msg, sizeof(msg)));
		errors++;
	}
	return errors;
}

static int dump_store(FILE *f, struct bdev *snap, struct bdev *meta, bool all, bool entries)
{
	struct label l, ml;
	struct uberblock newest, ub;
	struct xfer_progress prog;
	char why[200] = "";
	int r, errors = 0;

	r = label_read(snap, -1, &l, why, sizeof(why));
	if (r) {
		fprintf(f, "error %s\n", why);
		return r;
	}
	fprintf(f, "ddsnap-dump version=%d\n", DUMP_VERSION);
	dump_label(f, "snapstore", &l);
	if (meta) {
		r = label_read(meta, -1, &ml, why, sizeof(why));
		if (r) {
			fprintf(f, "error %s\n", why);
			return r;
		}
		dump_label(f, "metadev", &ml);
	} else if (l.metadev_blocks) {
		fprintf(f, "error store has a metadata device: name it\n");
		return -EINVAL;
	}
	/* A short device: say so, then dump what can be read (reads past its end fail). */
	if (label_fits(&l, snap, LABEL_ROLE_SNAPSTORE, why, sizeof(why)) ||
	    (meta && label_fits(&l, meta, LABEL_ROLE_METADEV, why, sizeof(why)))) {
		fprintf(f, "error %s\n", why);
		errors++;
	}
	meta = meta ? meta : snap;
	r = uberblock_read_newest(meta, &l, &newest, NULL, why, sizeof(why));
	if (r) {
		fprintf(f, "error %s\n", why);
		return r;
	}
	for (u32 s = 0; s < l.ub_slots; s++) {
		why[0] = '\0';
		r = uberblock_read_slot(meta, &l, s, &ub, why, sizeof(why));
		if (r == -ENODATA)
			continue;
		if (r) {
			fprintf(f, "error uberblock slot %u: %s\n", s, why);
			continue;
		}
		if (all || ub.txg == newest.txg)
			dump_uberblock(f, &l, &ub, ub.txg == newest.txg);
	}
	xfer_progress_init_units(&prog, "dump: tree blocks", "blocks", newest.meta_alloc, false);
	for (unsigned i = 0; i < UB_NR_ROOTS; i++)
		if (uberblock_root_name(i) && newest.roots[i].blocknr &&
		    dump_tree(f, meta, uberblock_root_name(i), &newest.roots[i], entries, &prog))
			errors++;
	errors += dump_more(f, meta, &l, &newest, entries, &prog);
	xfer_progress_done(&prog);
	fprintf(f, "end\n");
	return errors ? -EILSEQ : 0;
}

int cmd_dump(int argc, char **argv)
{
	struct bdev *snap = NULL, *meta = NULL;
	bool all = false, entries = true;
	int c, r, ret = EXIT_FAIL;

	optind = 1;
	while ((c = getopt(argc, argv, "ahn")) != -1) {
		switch (c) {
		case 'a':
			all = true;
			break;
		case 'n':
			entries = false;
			break;
		default:
			return cmd_usage("dump");
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		return cmd_usage("dump");
	if (cmd_open_store("dump", argv[optind], argc - optind == 2 ? argv[optind + 1] : NULL,
			   false, &snap, &meta))
		goto out;
	r = dump_store(stdout, snap, meta, all, entries);
	ret = !r ? EXIT_OK : (r == -EILSEQ || r == -ENOTBLK) ? EXIT_CORRUPT : EXIT_FAIL;
out:
	bdev_close(meta);
	bdev_close(snap);
	return ret;
}
