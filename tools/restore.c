// SPDX-License-Identifier: GPL-2.0-only
/*
 * restore.c - `ddsnap restore [-y] <dumpfile> <snapstore> [<metadev>]`: builds a store from
 * the text of `ddsnap dump` (doc/format.md, "Dump format"), so tests can write fixtures as
 * text and corrupt images can be made from edited dumps.
 *
 * The restore is logical: the new store has the same chunk size and origin size, the same
 * scalars, the same entries in its exception tree, snapshot table, provenance tree (and then
 * the label's feature bit for it) and overlay trees, and the same data chunks allocated; the
 * B+tree nodes, metadata addresses and txg numbers are new.  The persisted deadlists come
 * in a second txg, and then the label gets LABEL_FEATURE_INCOMPAT_DEADLISTS: from their
 * dump lines when the dumped store had them (its label's features), else (every dump made
 * before them) derived from the exception tree and the snapshot table as the server's
 * upgrade at open does.  -O leaves them out: a store of the format before them (without
 * the bit), which the first writable open upgrades (tests and benches of that upgrade).
 * Lines that describe physical layout (node, ptr, root, metaslab, uberblock) are read past;
 * a dump with "error" lines is refused (it describes a damaged store), and pending intent
 * log records are not restored (a warning says how many).  Like initialize, it refuses to
 * overwrite a store without -y.
 */
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>
#include "commands.h"
#include "blk/bdev.h"
#include "pdata/btree.h"
#include "snap/engine.h"
#include "blk/format.h"
#include "store/label.h"
#include "store/store.h"
#include "util/xfer.h"

/* Longest dump line we accept: an entry of the largest key and value, in hex. */
#define RESTORE_MAX_LINE     (2 * (BTREE_MAX_KEY_SIZE + BTREE_MAX_VALUE_SIZE) + 256)
#define RESTORE_MAX_OVERLAYS 4096

/* One entry of any of the engine's trees: room for the largest key and value (format.h). */
struct entry {
	u8 key[3 * sizeof(__le64)];
	u8 value[sizeof(struct snap_record_disk)];
};
static_assert(sizeof(struct exception_disk) <= sizeof(struct snap_record_disk) &&
		      sizeof(struct overlay_disk) <= sizeof(struct snap_record_disk) &&
		      sizeof(struct provenance_disk) <= sizeof(struct snap_record_disk) &&
		      sizeof(struct dl_piece_disk) <= sizeof(struct snap_record_disk),
	      "restore entry fits every engine value");
static_assert(sizeof(struct dl_piece_key_disk) <= 3 * sizeof(__le64) &&
		      sizeof(struct dl_entry_key_disk) <= 3 * sizeof(__le64),
	      "restore entry fits every engine key");

struct tree_text {
	const struct btree_type *type;
	u32 tag; /* overlays */
	struct entry *v;
	u64 n, cap;
};

struct restore {
	u32 chunk_shift;
	u64 origin_bytes, gen, next_snap, next_piece, log_records;
	bool have_label;
	bool dl_in_dump; /* the dumped store had persisted deadlists (label features) */
	bool old_format; /* -O: the format before them, for tests and benches of the upgrade */
	struct tree_text exc, snaps, prov, dlp, dle, overlays[RESTORE_MAX_OVERLAYS];
	unsigned noverlays;
	struct tree_text *cur;
	u64 (*data)[2];
	u64 ndata, data_cap;
	unsigned lineno;
};

static int bad_line(struct restore *rs, const char *what)
{
	cmd_error("restore", "line %u: %s", rs->lineno, what);
	return -EINVAL;
}

/* The value of "name=" in @line as u64 (decimal or 0x hex).  Returns 0 or -ENODATA. */
static int field_u64(const char *line, const char *name, u64 *out)
{
	char pat[64];
	const char *p;
	char *end;

	snprintf(pat, sizeof(pat), " %s=", name);
	p = strstr(line, pat);
	if (!p)
		return -ENODATA;
	*out = strtoull(p + strlen(pat), &end, 0);
	return (*end == ' ' || *end == '\0' || *end == '\n') ? 0 : -EINVAL;
}

/* "a:b:c" decimal le64 fields into @key of @size bytes. */
static int parse_key(const char *s, u8 *key, unsigned size)
{
	for (unsigned i = 0; i < size; i += 8) {
		char *end;
		u64 v = strtoull(s, &end, 10);

		if (end == s)
			return -EINVAL;
		btree_put_le64(key, i / 8, v);
		s = end;
		if (i + 8 < size) {
			if (*s != ':')
				return -EINVAL;
			s++;
		}
	}
	return (*s == ' ' || *s == '\0' || *s == '\n') ? 0 : -EINVAL;
}

static int parse_hex(const char *s, u8 *out, unsigned size)
{
	for (unsigned i = 0; i < size; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (u8)v;
	}
	return (s[2 * size] == ' ' || s[2 * size] == '\0' || s[2 * size] == '\n') ? 0 : -EINVAL;
}

static int add_entry(struct restore *rs, const char *line)
{
	struct tree_text *t = rs->cur;
	const char *k = strstr(line, " key="), *v = strstr(line, " value=");

	if (!t)
		return bad_line(rs, "entry outside a tree this version restores");
	if (!k || !v)
		return bad_line(rs, "entry without key and value");
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 256;
		t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	memset(&t->v[t->n], 0, sizeof(t->v[t->n]));
	if (parse_key(k + 5, t->v[t->n].key, t->type->key_size) ||
	    parse_hex(v + 7, t->v[t->n].value, t->type->value_size))
		return bad_line(rs, "malformed entry");
	t->n++;
	return 0;
}

static int parse_line(struct restore *rs, char *line)
{
	unsigned long long fc, fr, fi;
	const char *f;
	u64 a, b;

	line[strcspn(line, "\n")] = '\0';
	if (!strncmp(line, "error", 5))
		return bad_line(rs, "the dump describes a damaged store");
	if (!strncmp(line, "label device=snapstore ", 23)) {
		if (field_u64(line, "chunk_shift", &a) || field_u64(line, "origin_bytes", &b))
			return bad_line(rs, "label without chunk_shift and origin_bytes");
		rs->chunk_shift = (u32)a;
		rs->origin_bytes = b;
		rs->have_label = true;
		f = strstr(line, " features=");
		if (f && sscanf(f, " features=0x%llx:0x%llx:0x%llx", &fc, &fr, &fi) == 3)
			rs->dl_in_dump = fi & LABEL_FEATURE_INCOMPAT_DEADLISTS;
	} else if (!strncmp(line, "scalar gen=", 11)) {
		rs->gen = strtoull(line + 11, NULL, 10);
	} else if (!strncmp(line, "scalar next_snap=", 17)) {
		rs->next_snap = strtoull(line + 17, NULL, 10);
	} else if (!strncmp(line, "scalar next_piece=", 18)) {
		rs->next_piece = strtoull(line + 18, NULL, 10);
	} else if (!strncmp(line, "tree ", 5)) {
		const char *name = line + 5;

		rs->cur = NULL;
		if (!strcmp(name, "exceptions")) {
			rs->cur = &rs->exc;
		} else if (!strcmp(name, "snapshots")) {
			rs->cur = &rs->snaps;
		} else if (!strcmp(name, "provenance")) {
			rs->cur = &rs->prov;
		} else if (!strncmp(name, "overlay:", 8)) {
			if (rs->noverlays == RESTORE_MAX_OVERLAYS)
				return bad_line(rs, "too many overlays");
			rs->cur = &rs->overlays[rs->noverlays++];
			rs->cur->type = &engine_overlay_tree_type;
			rs->cur->tag = (u32)strtoul(name + 8, NULL, 10);
		} else if (!strcmp(name, "deadlists")) {
			rs->cur = &rs->dlp;
		} else if (!strcmp(name, "deadlist_entries")) {
			rs->cur = &rs->dle;
		} else {
			return bad_line(rs, "a tree this version does not restore");
		}
	} else if (!strncmp(line, "entry ", 6)) {
		return add_entry(rs, line);
	} else if (!strncmp(line, "space class=data ", 17)) {
		if (field_u64(line, "start", &a) || field_u64(line, "blocks", &b))
			return bad_line(rs, "space line without start and blocks");
		if (rs->ndata == rs->data_cap) {
			rs->data_cap = rs->data_cap ? 2 * rs->data_cap : 64;
			rs->data = xrealloc(rs->data, rs->data_cap * sizeof(*rs->data));
		}
		rs->data[rs->ndata][0] = a;
		rs->data[rs->ndata++][1] = b;
	} else if (!strncmp(line, "logrec ", 7)) {
		rs->log_records++;
	}
	/* Everything else describes the old physical layout, which is rebuilt, not copied. */
	return 0;
}

static int insert_all(struct btree *t, struct tx *tx, const struct tree_text *tt,
		      struct xfer_progress *prog)
{
	for (u64 i = 0; i < tt->n; i++) {
		int err = btree_insert(t, tx, tt->v[i].key, tt->v[i].value, BTREE_NOOVERWRITE);

		if (err)
			return err;
		if (prog && i % 4096 == 0)
			xfer_progress_update(prog, i);
	}
	return 0;
}

struct built {
	struct store *s;
	struct btree *exc, *snaps, *prov;
};

static int built_pre_sync(void *arg, struct tx *tx)
{
	struct built *b = arg;
	struct blkptr root;
	int err = btree_sync(b->exc, tx);

	if (!err)
		err = btree_sync(b->snaps, tx);
	if (!err)
		err = btree_sync(b->prov, tx);
	if (err)
		return err;
	btree_root(b->prov, &root);
	store_set_root(b->s, UB_ROOT_PROVENANCE, &root);
	btree_root(b->exc, &root);
	store_set_root(b->s, UB_ROOT_EXCEPTIONS, &root);
	btree_root(b->snaps, &root);
	store_set_root(b->s, UB_ROOT_SNAPSHOTS, &root);
	return 0;
}

/* A tree of @text's entries in @tx, sealed: its root in *@root. */
static int restore_tree(struct store *s, struct tx *tx, struct tree_text *text, struct blkptr *root)
{
	struct blkptr empty = {0};
	struct btree *t = NULL;
	int err = btree_open(text->type, store_cache(s), &empty, &t);

	if (!err)
		err = insert_all(t, tx, text, NULL);
	if (!err)
		err = btree_sync(t, tx);
	if (!err)
		btree_root(t, root);
	if (t)
		btree_close(t);
	return err;
}

/*
 * The persisted deadlists of the trees just built and synced, in a second txg, then the
 * label's bit (as the server's upgrade at open does; a crash before the bit leaves a store of
 * the older format, which the next open upgrades).
 */
static int build_deadlists(struct restore *rs, struct store *s, struct built *b)
{
	struct engine_roots roots = {.gen = rs->gen};
	struct dldisk_roots dl = {.next_piece = rs->next_piece};
	struct tx *tx = store_tx_hold(s);
	int err = 0;

	if (!tx)
		return store_failed(s) ? store_failed(s) : -EROFS;
	if (rs->dl_in_dump) {
		/* as dumped (check compares them with the exceptions) */
		err = restore_tree(s, tx, &rs->dlp, &dl.pieces);
		if (!err)
			err = restore_tree(s, tx, &rs->dle, &dl.entries);
	} else {
		btree_root(b->exc, &roots.exceptions);
		btree_root(b->snaps, &roots.snapshots);
		btree_root(b->prov, &roots.provenance);
		err = engine_build_deadlists(store_cache(s), tx, &roots, 1u << rs->chunk_shift,
					     rs->origin_bytes >> rs->chunk_shift, &dl);
	}
	if (!err) {
		store_set_root(s, UB_ROOT_DEADLISTS, &dl.pieces);
		store_set_root(s, UB_ROOT_DEADLIST_ENTRIES, &dl.entries);
		store_set_scalar(s, UB_SCALAR_NEXT_PIECE, dl.next_piece);
	}
	store_tx_release(s, tx);
	if (!err)
		err = store_sync(s);
	if (!err)
		err = store_set_features(s, 0, LABEL_FEATURE_INCOMPAT_DEADLISTS);
	if (err)
		cmd_error("restore", "building the persisted deadlists: %s", errmsg(err));
	return err;
}

/* Builds the trees in the open txg of a freshly formatted store and syncs it. */
static int build(struct restore *rs, struct store *s)
{
	struct built b = {.s = s};
	struct store_hook h = {.pre_sync = built_pre_sync, .arg = &b};
	struct xfer_progress prog;
	struct blkptr empty = {0};
	u64 cb = label_chunk_blocks(store_label(s));
	struct tx *tx;
	int err;

	err = btree_open(&engine_exception_tree_type, store_cache(s), &empty, &b.exc);
	if (!err)
		err = btree_open(&engine_snapshot_table_type, store_cache(s), &empty, &b.snaps);
	if (!err)
		err = btree_open(&engine_provenance_tree_type, store_cache(s), &empty, &b.prov);
	/* the feature bit before the tree it guards, as the server does */
	if (!err && rs->prov.n)
		err = store_set_features(s, LABEL_FEATURE_RO_PROVENANCE, 0);
	if (err)
		goto out_close;
	store_add_hook(s, &h);
	tx = store_tx_hold(s);
	for (u64 i = 0; i < rs->ndata && !err; i++) {
		err = metaslab_claim_data(store_metaslab(s), rs->data[i][0], rs->data[i][1] / cb);
		if (err)
			cmd_error("restore", "data run at %llu: %s",
				  (unsigned long long)rs->data[i][0], errmsg(err));
	}
	/* The old overlay roots point into the old store: each is rebuilt below, or empty. */
	for (u64 j = 0; j < rs->snaps.n; j++)
		memset(&((struct snap_record_disk *)rs->snaps.v[j].value)->overlay, 0,
		       sizeof(struct blkptr_disk));
	/* Overlays first: each snapshot record names its overlay's (sealed) root. */
	for (unsigned i = 0; i < rs->noverlays && !err; i++) {
		struct blkptr root;

		err = restore_tree(s, tx, &rs->overlays[i], &root);
		if (!err) {
			for (u64 j = 0; j < rs->snaps.n; j++) {
				struct snap_record_disk *rec = (void *)rs->snaps.v[j].value;

				if (btree_get_le64(rs->snaps.v[j].key, 0) == rs->overlays[i].tag)
					blkptr_pack(&rec->overlay, &root);
			}
		}
	}
	xfer_progress_init_units(&prog, "restore: exception tree", "entries", rs->exc.n, false);
	if (!err)
		err = insert_all(b.exc, tx, &rs->exc, &prog);
	prog.done = rs->exc.n;
	xfer_progress_done(&prog);
	if (!err)
		err = insert_all(b.snaps, tx, &rs->snaps, NULL);
	if (!err)
		err = insert_all(b.prov, tx, &rs->prov, NULL);
	store_set_scalar(s, UB_SCALAR_GEN, rs->gen);
	store_set_scalar(s, UB_SCALAR_NEXT_SNAP, rs->next_snap);
	store_tx_release(s, tx);
	if (!err)
		err = store_sync(s);
	if (!err && !rs->old_format)
		err = build_deadlists(rs, s, &b);
out_close:
	if (b.exc)
		btree_close(b.exc);
	if (b.snaps)
		btree_close(b.snaps);
	if (b.prov)
		btree_close(b.prov);
	return err;
}

static void restore_free(struct restore *rs)
{
	free(rs->exc.v);
	free(rs->snaps.v);
	free(rs->prov.v);
	free(rs->dlp.v);
	free(rs->dle.v);
	for (unsigned i = 0; i < rs->noverlays; i++)
		free(rs->overlays[i].v);
	free(rs->data);
	free(rs);
}

int cmd_restore(int argc, char **argv)
{
	struct restore *rs = xzalloc(sizeof(*rs));
	struct bdev *snap = NULL, *meta = NULL;
	struct store_format_params p = {0};
	struct store_config cfg = {.no_sync_thread = true};
	struct store *s = NULL;
	char line[RESTORE_MAX_LINE], why[256] = "";
	struct xfer_progress prog;
	struct stat st;
	u64 read_bytes = 0;
	bool yes = false;
	FILE *in;
	int c, err, ret = EXIT_FAIL;

	rs->exc.type = &engine_exception_tree_type;
	rs->snaps.type = &engine_snapshot_table_type;
	rs->prov.type = &engine_provenance_tree_type;
	rs->dlp.type = &dldisk_piece_tree_type;
	rs->dle.type = &dldisk_entry_tree_type;
	optind = 1;
	while ((c = getopt(argc, argv, "hyO")) != -1) {
		if (c != 'y' && c != 'O') {
			restore_free(rs);
			return cmd_usage("restore");
		}
		if (c == 'y')
			yes = true;
		else
			rs->old_format = true;
	}
	if (argc - optind < 2 || argc - optind > 3) {
		restore_free(rs);
		return cmd_usage("restore");
	}
	in = strcmp(argv[optind], "-") ? fopen(argv[optind], "r") : stdin;
	if (!in) {
		cmd_error("restore", "%s: %s", argv[optind], strerror(errno));
		goto out;
	}
	/* Reading shows bytes of a file (its size known) or of standard input. */
	xfer_progress_init(&prog, "restore: reading",
			   fstat(fileno(in), &st) || !S_ISREG(st.st_mode) ? 0 : (u64)st.st_size,
			   false);
	while (fgets(line, sizeof(line), in)) {
		rs->lineno++;
		read_bytes += strlen(line);
		if (parse_line(rs, line)) {
			ret = EXIT_CORRUPT;
			break;
		}
		if (rs->lineno % 4096 == 0)
			xfer_progress_update(&prog, read_bytes);
	}
	if (prog.total)
		prog.done = prog.total;
	xfer_progress_done(&prog);
	if (in != stdin)
		fclose(in);
	if (ret == EXIT_CORRUPT)
		goto out;
	if (!rs->have_label) {
		cmd_error("restore", "%s: no snapstore label line", argv[optind]);
		ret = EXIT_CORRUPT;
		goto out;
	}
	if (rs->log_records)
		fprintf(stderr, "ddsnap restore: %llu intent log records not restored\n",
			(unsigned long long)rs->log_records);

	if (cmd_open_store("restore", argv[optind + 1],
			   argc - optind == 3 ? argv[optind + 2] : NULL, true, &snap, &meta))
		goto out;
	if (!cmd_may_overwrite("restore", snap, argv[optind + 1], "snapstore", yes, false) ||
	    (meta &&
	     !cmd_may_overwrite("restore", meta, argv[optind + 2], "metadata device", yes, false)))
		goto out;
	p.chunk_shift = rs->chunk_shift;
	p.origin_bytes = rs->origin_bytes;
	p.old_format = true; /* until the deadlists are built (build_deadlists) */
	err = store_format(snap, meta, &p, why, sizeof(why));
	if (err) {
		cmd_error("restore", "%s", why);
		goto out;
	}
	cfg.snapstore = snap;
	cfg.metadev = meta;
	err = store_open(&cfg, &s, why, sizeof(why));
	if (err) {
		cmd_error("restore", "%s", why);
		goto out;
	}
	err = build(rs, s);
	if (err) {
		cmd_error("restore", "building the trees: %s", errmsg(err));
		store_abandon(s);
		goto out;
	}
	err = store_close(s);
	if (err) {
		cmd_error("restore", "syncing: %s", errmsg(err));
		goto out;
	}
	printf("restored %llu exceptions, %llu snapshots, %u overlays, %llu data runs, %llu "
	       "provenance records\n",
	       (unsigned long long)rs->exc.n, (unsigned long long)rs->snaps.n, rs->noverlays,
	       (unsigned long long)rs->ndata, (unsigned long long)rs->prov.n);
	ret = EXIT_OK;
out:
	bdev_close(meta);
	bdev_close(snap);
	restore_free(rs);
	return ret;
}
