/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * format.h - every on-disk structure of a ddsnap store, in one place.
 *
 * All fields are little-endian (__le*), every struct has explicit padding and a static_assert
 * on its size, and nothing here is used in arithmetic directly: modules convert in their own
 * pack/unpack helpers.  doc/format.md describes the layout in prose and tables.
 *
 * Metadata blocks are DDSNAP_BLOCK_SIZE bytes and self-identifying: they begin with a
 * struct block_header_disk (checksum, magic, own address, txg).  The checksum is crc32c
 * over the whole block with the csum field taken as zero, seeded with the block type's
 * magic, so a block of one type never validates as another.
 *
 * Sections below are owned by the module named in their heading; add new structs in the
 * section of the module that reads and writes them.
 */
#ifndef DDSNAP_FORMAT_H
#define DDSNAP_FORMAT_H

#include <linux/types.h>
#include <assert.h>
#include <stddef.h>

#define DDSNAP_BLOCK_SHIFT 12
#define DDSNAP_BLOCK_SIZE  (1u << DDSNAP_BLOCK_SHIFT)

/*----------------------------------------------------------------
 * Block header and block pointer (block.c)
 *--------------------------------------------------------------*/

/*
 * Magic numbers, one per block type; each is also that type's crc32c seed.
 * Never reuse or renumber one.
 */
enum ddsnap_magic {
	MAGIC_LABEL = 0xdd5a1abe,
	MAGIC_UBERBLOCK = 0xdd5a0b10,
	MAGIC_BTREE_LEAF = 0xdd5a1eaf,
	MAGIC_BTREE_NODE = 0xdd5a40de,
	MAGIC_SPACE_MAP = 0xdd5a5ace,
	MAGIC_METASLAB_TABLE = 0xdd5a3e7a,
	MAGIC_INTENT_LOG = 0xdd5a1065,
	MAGIC_DEADLIST = 0xdd5adead,
};

struct block_header_disk {
	__le32 csum;	/* crc32c(seed = magic) of the block with this field zero */
	__le32 magic;	/* enum ddsnap_magic */
	__le64 blocknr; /* this block's own address, in blocks, on its device */
	__le64 txg;	/* the transaction group that wrote it */
	__le32 flags;	/* per block type */
	__le32 reserved;
};
static_assert(sizeof(struct block_header_disk) == 32, "block_header_disk size");
static_assert(offsetof(struct block_header_disk, csum) == 0, "csum first");

/*
 * A pointer to a metadata block.  birth_txg must equal the child's header txg (a lost or
 * misdirected write shows up as a mismatch); csum must equal the child's header csum; aggr is
 * a per-tree aggregate of everything below (for the exception tree: the maximum death), so a
 * walk can skip whole subtrees (DESIGN.md 3, changelist).
 */
struct blkptr_disk {
	__le64 blocknr;
	__le64 birth_txg;
	__le64 aggr;
	__le32 csum;
	__le32 reserved;
};
static_assert(sizeof(struct blkptr_disk) == 32, "blkptr_disk size");

/*----------------------------------------------------------------
 * B+tree nodes (btree.c)
 *--------------------------------------------------------------*/

/*
 * One node per metadata block; leaves carry MAGIC_BTREE_LEAF and level 0, internal nodes
 * MAGIC_BTREE_NODE and level >= 1.  The key and value sizes and the key order are recorded
 * so a node validates on its own; the capacity follows from them:
 *
 *	capacity = BTREE_NODE_PAYLOAD / (key_size + value_size)
 *
 *	+--------------------+ 0
 *	| block_header_disk  |   csum, magic, blocknr, txg, flags
 *	+--------------------+ 32
 *	| nr_entries  ksize  |
 *	| vsize level order  |
 *	| reserved           |
 *	+--------------------+ 48 = BTREE_NODE_HEADER_SIZE
 *	| key[0] .. key[capacity-1]       keys packed, ascending; unused slots zero
 *	+--------------------+ 48 + capacity * key_size
 *	| value[0] .. value[capacity-1]   leaf: the tree's values; internal: blkptr_disk
 *	+--------------------+
 *	| zero               |
 *	+--------------------+ 4096
 *
 * In an internal node key[i] is a lower bound of child i's keys and every key of child i is
 * below key[i + 1]; value[i] is the struct blkptr_disk of child i.
 */
struct btree_node_disk {
	struct block_header_disk hdr;
	__le16 nr_entries;
	__le16 key_size;
	__le16 value_size; /* leaf: the tree's; internal: sizeof(struct blkptr_disk) */
	__u8 level;	   /* 0 = leaf */
	__u8 key_order;	   /* enum btree_key_order (btree.h) */
	__le64 reserved;   /* zero */
	__u8 payload[];	   /* keys, then values */
};
#define BTREE_NODE_HEADER_SIZE 48
#define BTREE_NODE_PAYLOAD     (DDSNAP_BLOCK_SIZE - BTREE_NODE_HEADER_SIZE)
static_assert(sizeof(struct btree_node_disk) == BTREE_NODE_HEADER_SIZE, "btree_node_disk size");
static_assert(offsetof(struct btree_node_disk, nr_entries) == 32,
	      "btree node fields follow header");
static_assert(offsetof(struct btree_node_disk, reserved) == 40, "btree node reserved");

/*----------------------------------------------------------------
 * Intent log (intent_log.c)
 *--------------------------------------------------------------*/

/*
 * A log block: the block header (magic MAGIC_INTENT_LOG, txg = the newest txg among its
 * records), this header, then @used bytes of records packed back to back, each 8-byte
 * aligned; the rest of the block is zero.  Block @seq lives at ring slot seq % nblocks.
 */
struct intent_log_block_disk {
	struct block_header_disk hdr;
	__le64 guid;	      /* the log's identity, from the store label */
	__le64 seq;	      /* block sequence number: +1 per block written, never reused */
	__le64 first_rec_seq; /* sequence number of the first record */
	__le16 nrecords;      /* >= 1 */
	__le16 used;	      /* bytes of records after this header */
	__le32 reserved;      /* zero */
};
static_assert(sizeof(struct intent_log_block_disk) == 64, "intent_log_block_disk size");
static_assert(offsetof(struct intent_log_block_disk, seq) == 40, "intent_log_block_disk seq");

/* crc32c seed of a record: distinct from every block magic. */
#define INTENT_LOG_RECORD_SEED 0x1065ec0du

/*
 * A record: this header, then @len payload bytes, then zeros up to a multiple of 8.  csum is
 * crc32c(INTENT_LOG_RECORD_SEED) of header (csum taken as zero) and payload.
 */
struct intent_log_record_disk {
	__le32 csum;
	__le16 type; /* 1..65535, defined by the engine */
	__le16 len;  /* payload bytes */
	__le64 seq;  /* record sequence number: +1 per record, no gaps */
	__le64 txg;  /* the txg open when it was logged */
};
static_assert(sizeof(struct intent_log_record_disk) == 24, "intent_log_record_disk size");
static_assert(offsetof(struct intent_log_record_disk, csum) == 0, "record csum first");

/*----------------------------------------------------------------
 * Space maps (space_map.c)
 *--------------------------------------------------------------*/

/*
 * A space map is the append-only log of one metaslab: ALLOC and FREE records of block runs,
 * relative to the metaslab's first block.  Replayed from an all-free metaslab in log order,
 * the records give the allocated set.  The log is a chain of blocks linked backwards: the
 * metaslab table holds the newest block (the tail), and each block points to the one
 * before it, so appending never rewrites an older block except the tail, which is copied
 * to a new address once per txg (copy-on-write).
 *
 *	+---------------------------+ 0
 *	| block_header_disk         |   magic MAGIC_SPACE_MAP
 *	+---------------------------+ 32
 *	| prev (blkptr_disk)        |   older block of this log; blocknr 0 = none
 *	+---------------------------+ 64
 *	| ms_start ms_size          |   the metaslab it describes (device blocks)
 *	| nr_recs reserved          |
 *	+---------------------------+ 96 = SPACE_MAP_BLOCK_HEADER_SIZE
 *	| rec[0] .. rec[nr_recs-1]  |   16 bytes each, in log order
 *	| zero                      |
 *	+---------------------------+ 4096
 */
enum space_map_rec_type {
	SPACE_MAP_ALLOC = 1,
	SPACE_MAP_FREE = 2,
};

struct space_map_rec_disk {
	__le64 start; /* first block, relative to the metaslab start */
	__le32 run;   /* blocks, >= 1; start + run <= ms_size */
	__u8 type;    /* enum space_map_rec_type */
	__u8 pad[3];  /* zero */
};
static_assert(sizeof(struct space_map_rec_disk) == 16, "space_map_rec_disk size");

struct space_map_block_disk {
	struct block_header_disk hdr;
	struct blkptr_disk prev;
	__le64 ms_start;
	__le64 ms_size;
	__le32 nr_recs; /* 1 .. SPACE_MAP_RECS_PER_BLOCK */
	__le32 reserved32;
	__le64 reserved; /* zero */
	struct space_map_rec_disk recs[];
};
#define SPACE_MAP_BLOCK_HEADER_SIZE 96
#define SPACE_MAP_RECS_PER_BLOCK \
	((DDSNAP_BLOCK_SIZE - SPACE_MAP_BLOCK_HEADER_SIZE) / sizeof(struct space_map_rec_disk))
static_assert(sizeof(struct space_map_block_disk) == SPACE_MAP_BLOCK_HEADER_SIZE,
	      "space_map_block_disk size");
static_assert(offsetof(struct space_map_block_disk, prev) == 32, "space map prev");
static_assert(offsetof(struct space_map_block_disk, nr_recs) == 80, "space map nr_recs");

/*
 * Where a space map is, kept in its metaslab table entry.  alloc and nr_recs let the loader
 * cross-check a replay; nr_blocks bounds the chain walk.
 */
struct space_map_phys_disk {
	struct blkptr_disk tail; /* newest block; blocknr 0 = empty log */
	__le64 nr_blocks;	 /* blocks in the chain */
	__le64 nr_recs;		 /* records in the log */
	__le64 alloc;		 /* blocks allocated after replay */
	__le64 reserved;	 /* zero */
};
static_assert(sizeof(struct space_map_phys_disk) == 64, "space_map_phys_disk size");

/*----------------------------------------------------------------
 * Metaslab table (metaslab.c)
 *--------------------------------------------------------------*/

/*
 * The metaslab table: one entry per metaslab, in leaf blocks of METASLAB_TABLE_PER_LEAF
 * entries, under one index block of leaf pointers.  The uberblock holds a struct
 * metaslab_root_disk (the geometry and a pointer to the index block).  Metaslab i covers
 * blocks [start + i * 2^ms_shift, ...) of its region; the data region's metaslabs come
 * first, then (with a separate metadata device) the metadata region's.
 *
 *	uberblock.metaslab_root --> index block: blkptr[leaf 0] blkptr[leaf 1] ...
 *	                                            |
 *	                                            v
 *	                            leaf: entry[i] = { space_map_phys, class } ...
 *
 * Both levels are MAGIC_METASLAB_TABLE blocks with this header; level says which.
 */
enum metaslab_class_disk {
	METASLAB_CLASS_NONE = 0, /* unclaimed: nothing allocated (shared device only) */
	METASLAB_CLASS_DATA = 1,
	METASLAB_CLASS_META = 2,
};

struct metaslab_entry_disk {
	struct space_map_phys_disk sm;
	__le32 class; /* enum metaslab_class_disk */
	__le32 flags; /* zero */
	__le64 reserved;
};
static_assert(sizeof(struct metaslab_entry_disk) == 80, "metaslab_entry_disk size");

struct metaslab_table_disk {
	struct block_header_disk hdr;
	__le32 level;	     /* 0: leaf of entries, 1: index of leaf blkptrs */
	__le32 nr;	     /* entries (leaf) or leaf pointers (index) in use */
	__le64 first;	     /* leaf: index of its first metaslab; index: 0 */
	__le64 nr_metaslabs; /* in the whole table */
	__le64 reserved;     /* zero */
	__u8 payload[];	     /* struct metaslab_entry_disk[] or struct blkptr_disk[] */
};
#define METASLAB_TABLE_HEADER_SIZE 64
#define METASLAB_TABLE_PER_LEAF \
	((DDSNAP_BLOCK_SIZE - METASLAB_TABLE_HEADER_SIZE) / sizeof(struct metaslab_entry_disk))
#define METASLAB_TABLE_PER_INDEX \
	((DDSNAP_BLOCK_SIZE - METASLAB_TABLE_HEADER_SIZE) / sizeof(struct blkptr_disk))
#define METASLAB_MAX (METASLAB_TABLE_PER_LEAF * METASLAB_TABLE_PER_INDEX)
static_assert(sizeof(struct metaslab_table_disk) == METASLAB_TABLE_HEADER_SIZE,
	      "metaslab_table_disk size");

/* What the uberblock keeps for the allocator (metaslab_root_pack in metaslab.h). */
struct metaslab_root_disk {
	struct blkptr_disk table; /* the index block; blocknr 0 = never synced */
	__le64 data_start;	  /* DATA region on the snapstore: first block */
	__le64 data_blocks;	  /* and length */
	__le64 meta_start;	  /* METADATA region on the metadata device, if separate */
	__le64 meta_blocks;	  /* 0 = one device: both classes share the data region */
	__le32 ms_shift;	  /* log2 of the metaslab size in blocks */
	__le32 chunk_shift;	  /* log2 of the data chunk size in blocks */
	__le32 flags;		  /* zero */
	__le32 reserved;
};
static_assert(sizeof(struct metaslab_root_disk) == 80, "metaslab_root_disk size");

/*----------------------------------------------------------------
 * Snapshot engine (engine.c)
 *--------------------------------------------------------------*/

/*
 * The exception tree: key (chunk, death) as two __le64 (BTREE_KEY_LE64), value
 * struct exception_disk; the block pointer aggregate is the maximum death.
 */
struct exception_disk {
	__le64 birth; /* gen from which the saved version was current */
	__le64 addr;  /* snapstore data address, in chunks */
};
static_assert(sizeof(struct exception_disk) == 16, "exception_disk size");

/*
 * Persisted deadlists (label feature LABEL_FEATURE_INCOMPAT_DEADLISTS; doc/format.md,
 * "Persisted deadlists").  A *piece* is a set of deadlist entries (chunk, death) that share
 * a sublist key and an owner; it is named by a piece id, unique in the store.  Two trees:
 *
 *  - the piece table (UB_ROOT_DEADLISTS): key struct dl_piece_key_disk (BTREE_KEY_LE64),
 *    value struct dl_piece_disk.  The piece's owner is not stored: it is the oldest live
 *    snapshot with gen >= death (the head if none), so a snapshot create or delete moves
 *    pieces between deadlists without writing anything.
 *  - the entry tree (UB_ROOT_DEADLIST_ENTRIES): key struct dl_entry_key_disk
 *    (BTREE_KEY_LE64), no value: one entry per exception, grouped by piece so a piece's
 *    entries are one key range.
 *
 * Invariants (engine_check): every exception (chunk, death) has exactly one entry, in a
 * piece whose death has the same owner as the exception's death and is >= it; a piece's
 * count is the number of its entries and is >= 1; piece ids are < UB_SCALAR_NEXT_PIECE.
 */
struct dl_piece_key_disk {
	__le64 death; /* a gen owned by the same deadlist as every entry's death (>= each) */
	__le64 key;   /* the sublist key (engine.c: oldest live snapshot gen >= birth) */
	__le64 piece; /* the piece id, >= 1 */
};
static_assert(sizeof(struct dl_piece_key_disk) == 24, "dl_piece_key_disk size");

struct dl_piece_disk {
	__le64 count;	 /* entries in the piece, >= 1 (bytes = count * chunk size) */
	__le64 reserved; /* zero */
};
static_assert(sizeof(struct dl_piece_disk) == 16, "dl_piece_disk size");

struct dl_entry_key_disk {
	__le64 piece; /* the piece id */
	__le64 chunk; /* the exception's key (chunk, death) */
	__le64 death;
};
static_assert(sizeof(struct dl_entry_key_disk) == 24, "dl_entry_key_disk size");

/* An overlay (writable snapshot) entry: key chunk (__le64), value the data address. */
struct overlay_disk {
	__le64 addr;
};
static_assert(sizeof(struct overlay_disk) == 8, "overlay_disk size");

/* The snapshot table: key tag (__le64), value struct snap_record_disk. */
struct snap_record_disk {
	__le64 gen;
	__le64 ctime;		    /* seconds since the epoch, as the creator gave it */
	struct blkptr_disk overlay; /* root of the snapshot's overlay tree (blocknr 0: empty) */
	__le64 overlay_chunks;	    /* entries in the overlay */
	__le16 holds;		    /* persistent holds (Zumastor usecount) */
	__u8 priority;		    /* s8; ENGINE_PRIO_KEEP and above: never dropped */
	__u8 state;		    /* enum engine_snap_state */
	__le32 reserved;	    /* zero */
};
static_assert(sizeof(struct snap_record_disk) == 64, "snap_record_disk size");
static_assert(offsetof(struct snap_record_disk, overlay) == 16, "snap_record overlay");

/*
 * The payload of the engine's intent log records (enum engine_logrec_type): a copy-out
 * {chunk, birth, death, addr, csum of the copied data}, an overlay insert {tag, chunk,
 * addr}, a create {tag, gen, ctime, priority}, a delete/invalidate {tag, flags} or a
 * hold/priority change {tag, holds (in chunk), priority}.
 */
struct engine_logrec_disk {
	__le64 chunk;
	__le64 birth;
	__le64 death; /* copy-out: the gen of the write; create: the new snapshot's gen */
	__le64 addr;
	__le64 ctime;
	__le32 tag;
	__le32 csum; /* copy-out: crc32c(0) of the copied chunk */
	__u8 priority;
	__u8 flags; /* delete: 1 = invalidate (keep the table entry, state invalid) */
	__u8 pad[6];
};
static_assert(sizeof(struct engine_logrec_disk) == 56, "engine_logrec_disk size");

/*
 * Snapshot provenance (label feature LABEL_FEATURE_RO_PROVENANCE): the volume that took a
 * received snapshot and the snapshot's generation there.  The provenance tree (uberblock root
 * UB_ROOT_PROVENANCE): key tag (__le64), value struct provenance_disk; a snapshot without a
 * record was taken here (its provenance is this store's uuid and its own gen).  Every record
 * names a snapshot of the snapshot table; deleting the snapshot deletes its record.
 */
struct provenance_disk {
	__u8 uuid[16];	 /* the store that took the snapshot */
	__le64 gen;	 /* the snapshot's gen in that store (>= 1) */
	__le64 reserved; /* zero */
};
static_assert(sizeof(struct provenance_disk) == 32, "provenance_disk size");

/*
 * The payload of ENGINE_LOG_CREATE_FROM (0x106): the create of a received snapshot together
 * with its provenance, in one record, so replay never finds one without the other.  Same
 * size as every engine record.
 */
struct engine_logrec_create_from_disk {
	__le64 gen; /* the new snapshot's gen here (as death in ENGINE_LOG_CREATE) */
	__le64 ctime;
	__le32 tag;
	__u8 priority;
	__u8 pad[3];	   /* zero */
	__u8 uuid[16];	   /* provenance: the store that took it */
	__le64 origin_gen; /* and its gen there (>= 1) */
	__le64 reserved;   /* zero */
};
static_assert(sizeof(struct engine_logrec_create_from_disk) == sizeof(struct engine_logrec_disk),
	      "engine_logrec_create_from_disk size");

/*----------------------------------------------------------------
 * Label and uberblock ring (label.c, uberblock.c)
 *--------------------------------------------------------------*/

/*
 * Every device of a store (the snapstore, and the metadata device if there is one) starts
 * with a label and keeps a second copy in its last block, so an overwrite of the first
 * blocks (a stray mkfs, dd) leaves one.  Both devices' labels carry the same uuid; @role
 * says which device a label belongs to.  The label is written once, at initialize, and
 * describes the fixed layout; everything that changes lives in the uberblock ring.
 *
 *	metadata device (the snapstore when there is no separate one), in 4 KiB blocks:
 *	+-------+--------------------+-----------------+--------------------------+-------+
 *	| label | uberblock ring     | intent log ring | metadata region          | label |
 *	|   0   | ub_start, ub_slots | log_start, ...  | meta_start, meta_blocks  | last  |
 *	+-------+--------------------+-----------------+--------------------------+-------+
 *	snapstore:  label 0, then the data region [data_start, +data_blocks), label at its end
 *	(without a metadata device the data region follows the intent log and holds both).
 *
 * Feature words: a reader must refuse a store with an unknown incompat bit, may only read
 * one with an unknown ro_compat bit, and may ignore unknown compat bits.
 */
#define LABEL_VERSION 1

/*
 * Format feature bits (doc/format.md, "Versions and upgrades"): each bit one format change,
 * in one of the label's three words, never reused or renumbered.
 */
enum label_feature {
	/* feature_ro_compat bit 0: the snapshot provenance tree (UB_ROOT_PROVENANCE) and
	 * ENGINE_LOG_CREATE_FROM records.  Set before the first provenance record is logged. */
	LABEL_FEATURE_RO_PROVENANCE = 1ULL << 0,
	/* feature_incompat bit 0: persisted deadlists (UB_ROOT_DEADLISTS,
	 * UB_ROOT_DEADLIST_ENTRIES, UB_SCALAR_NEXT_PIECE).  Set by initialize and restore, or
	 * by ddsnap upgrade as its commit point.  Not yet known to any binary (label.h). */
	LABEL_FEATURE_INCOMPAT_DEADLISTS = 1ULL << 0,
};

enum label_role {
	LABEL_ROLE_SNAPSTORE = 1,
	LABEL_ROLE_METADEV = 2,
};

struct label_disk {
	struct block_header_disk hdr; /* MAGIC_LABEL; blocknr 0 or the device's last block */
	__le32 version;		      /* LABEL_VERSION */
	__le32 role;		      /* enum label_role */
	__le64 feature_compat;
	__le64 feature_ro_compat;
	__le64 feature_incompat;
	__u8 uuid[16];		 /* the store's identity, in every label and uberblock */
	__le64 log_guid;	 /* the intent log's guid (intent_log_config.guid) */
	__le64 created;		 /* unix seconds */
	__le32 chunk_shift;	 /* log2 of the data chunk size in bytes, 12..20 */
	__le32 block_shift;	 /* log2 of the metadata block size, DDSNAP_BLOCK_SHIFT */
	__le64 snapstore_blocks; /* device sizes at initialize, in blocks */
	__le64 metadev_blocks;	 /* 0: no separate metadata device */
	__le64 origin_bytes;	 /* origin size at initialize */
	__le64 ub_start;	 /* uberblock ring, on the metadata device */
	__le32 ub_slots;
	__le32 ms_shift;  /* log2 of the metaslab size in blocks */
	__le64 log_start; /* intent log ring, on the metadata device */
	__le64 log_blocks;
	__le64 data_start; /* data region, on the snapstore */
	__le64 data_blocks;
	__le64 meta_start; /* metadata region, on the metadata device; 0 blocks = shared */
	__le64 meta_blocks;
	__u8 reserved[3904]; /* zero */
};
static_assert(sizeof(struct label_disk) == DDSNAP_BLOCK_SIZE, "label_disk size");
static_assert(offsetof(struct label_disk, version) == 32, "label version");
static_assert(offsetof(struct label_disk, uuid) == 64, "label uuid");
static_assert(offsetof(struct label_disk, reserved) == 192, "label reserved");

/*
 * The uberblock of txg T is written, after everything T wrote is durable, to ring slot
 * T % ub_slots (block ub_start + that).  Open takes the valid uberblock with the highest
 * txg whose uuid matches the label, so a torn or lost uberblock write leaves T - 1.
 *
 * The roots are the persistent structures of the engine; the store keeps them but does
 * not interpret them except to walk them (check, and the allocator's recovery walk): each
 * names a COW B+tree (btree.h), blocknr 0 = empty.
 */
enum uberblock_root {
	UB_ROOT_EXCEPTIONS = 0, /* (chunk, death) -> (birth, address) */
	UB_ROOT_SNAPSHOTS = 1,	/* the snapshot table */
	UB_ROOT_DEADLISTS = 2,	/* the deadlist piece table (LABEL_FEATURE_INCOMPAT_DEADLISTS) */
	UB_ROOT_OVERLAYS = 3,	/* writable snapshots' private overlays */
	UB_ROOT_PROVENANCE = 4, /* tag -> struct provenance_disk (LABEL_FEATURE_RO_PROVENANCE) */
	UB_ROOT_DEADLIST_ENTRIES = 5, /* (piece, chunk, death) (LABEL_FEATURE_INCOMPAT_DEADLISTS) */
	UB_NR_ROOTS = 8,	      /* 6..7 spare, zero */
};

/* Engine scalars, persisted with each txg. */
enum uberblock_scalar {
	UB_SCALAR_GEN = 0,	  /* the gen counter (DESIGN.md 3) */
	UB_SCALAR_NEXT_SNAP = 1,  /* next snapshot tag to hand out */
	UB_SCALAR_NEXT_PIECE = 2, /* next deadlist piece id (LABEL_FEATURE_INCOMPAT_DEADLISTS) */
	/* The upgrade to persisted deadlists under way, on a store without that bit (zero on
	 * every other store; on one with the bit, stale until its next txg clears them):
	 * entries written plus 1, and the larger root birth of the exception tree and the
	 * snapshot table the walk was of (doc/format.md, "Upgrade"). */
	UB_SCALAR_UPGRADE_CURSOR = 3,
	UB_SCALAR_UPGRADE_BIRTH = 4,
	UB_NR_SCALARS = 8, /* 5..7 spare, zero */
};

#define UBERBLOCK_VERSION 1

struct uberblock_disk {
	struct block_header_disk hdr; /* MAGIC_UBERBLOCK; txg = this uberblock's txg */
	__le32 version;		      /* UBERBLOCK_VERSION */
	__le32 flags;		      /* zero */
	__u8 uuid[16];		      /* must match the label's */
	__le64 timestamp;	      /* unix seconds at sync */
	__le64 scalars[UB_NR_SCALARS];
	__le64 log_block_seq; /* intent log replay position (struct intent_log_pos) */
	__le64 log_rec_seq;
	__le64 meta_alloc; /* metadata blocks allocated, for status */
	__le64 data_alloc; /* data blocks allocated */
	struct blkptr_disk roots[UB_NR_ROOTS];
	struct metaslab_root_disk metaslab;
	__u8 reserved[3600]; /* zero */
};
static_assert(sizeof(struct uberblock_disk) == DDSNAP_BLOCK_SIZE, "uberblock_disk size");
static_assert(offsetof(struct uberblock_disk, scalars) == 64, "uberblock scalars");
static_assert(offsetof(struct uberblock_disk, roots) == 160, "uberblock roots");
static_assert(offsetof(struct uberblock_disk, metaslab) == 416, "uberblock metaslab root");
static_assert(offsetof(struct uberblock_disk, reserved) == 496, "uberblock reserved");

#endif /* DDSNAP_FORMAT_H */
