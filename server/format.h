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

#endif /* DDSNAP_FORMAT_H */
