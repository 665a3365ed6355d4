// SPDX-License-Identifier: GPL-2.0-only
/*
 * engine_replay.c - engine_replay(): re-applies one intent-log record of the engine
 * (struct engine_logrec_disk, format.h) to the trees as of the last synced txg.
 *
 * Invariants.  Records come back in the order they were appended, so when a record is
 * replayed the engine is as it was when the record was made: a copy-out's death is the gen
 * counter and its birth the chunk's last death (batch_decide in engine.c).  A record that
 * does not fit that state is not one this engine wrote and is refused with -EPROTO rather
 * than applied.  A record whose effect a later, already synced record undid (a snapshot
 * dropped since, an exception already present) is skipped, so replaying twice is harmless.
 *
 * Locking.  None: called from the store's log replay at open, before anything else runs.
 *
 * Crash argument.  Replay changes only the open txg, like any other call; a crash during
 * replay leaves the last synced txg and the log as they were, and the next open replays the
 * same records again.  A copy-out whose data checksum does not match (its copy never became
 * durable, so its origin write was never released) is copied again from the origin.  That
 * its chunk holds nothing else, even if the record's snapshot was dropped since, rests on
 * the allocator: a freed chunk is not allocated again before its freeing txg is durable,
 * and then no record of that txg is replayed any more (metaslab.c, "Why a run allocated
 * and freed in the same open txg still waits").
 */
#include "snap/engine_internal.h"
#include <string.h>

/*
 * Re-applies a copy-out.  With @verify (ENGINE_LOG_COPYOUT) the saved data must match the
 * record's checksum, or the copy is redone from the origin.  A record without one
 * (ENGINE_LOG_COPYOUT_ORDERED, written by servers before 2026-12 only) is replayed as that
 * server meant it: the copy is trusted (test_engine replay_trusts_an_old_unchecked_copyout).
 */
static int replay_copyout(struct engine *e, struct tx *tx, const struct engine_logrec_disk *r,
			  bool verify)
{
	u64 chunk = le64_to_cpu(r->chunk), birth = le64_to_cpu(r->birth);
	u64 death = le64_to_cpu(r->death), addr = le64_to_cpu(r->addr), key, ld;
	u8 k[16], v[16];
	int err;

	if (chunk >= e->p.origin_chunks || birth >= death || death > e->gen)
		return -EPROTO;
	exc_key(k, chunk, death);
	err = btree_lookup(e->exc, k, NULL);
	if (!err)
		return 0;
	if (err != -ENODATA)
		return err;
	key = sublist_key(e, birth);
	if (!key || key >= death)
		return 0; /* every snapshot that saw it was dropped by a later record */
	/* Replayed in order, the engine is as it was when the record was made: the gen was
	 * its death, and its birth the chunk's last death (batch_decide).  Anything else is
	 * not a record this engine wrote, and applying it would corrupt the deadlists. */
	err = last_death(e, chunk, &ld);
	if (err)
		return err;
	if (death != e->gen || ld != birth)
		return -EPROTO;
	if (e->p.space->claim) {
		err = e->p.space->claim(e->p.space_priv, tx, addr, 1);
		if (err)
			return err;
	}
	if (verify && (chunk_csum(e, addr, &err) != le32_to_cpu(r->csum) || err)) {
		/* The copy never became durable, so its origin write was never released. */
		err = copy_one(e, chunk, addr);
		if (err)
			return err;
	}
	exc_val(v, birth, addr);
	err = btree_insert(e->exc, tx, k, v, BTREE_NOOVERWRITE);
	if (err)
		return err;
	return head_dl_add(e, tx, key, chunk);
}

static int replay_overlay(struct engine *e, struct tx *tx, const struct engine_logrec_disk *r)
{
	struct snap *s = snap_find(e, le32_to_cpu(r->tag));
	u64 chunk = le64_to_cpu(r->chunk), addr = le64_to_cpu(r->addr);
	struct btree *ov;
	u8 k[8], v[8];
	int err;

	if (!s || s->state == ENGINE_SNAP_INVALID)
		return 0; /* dropped by a later record that was already synced */
	if (chunk >= e->p.origin_chunks)
		return -EPROTO;
	err = snap_overlay(e, s, &ov);
	if (err)
		return err;
	btree_put_le64(k, 0, chunk);
	err = btree_lookup(ov, k, NULL);
	if (err != -ENODATA)
		return err;
	if (e->p.space->claim) {
		err = e->p.space->claim(e->p.space_priv, tx, addr, 1);
		if (err)
			return err;
	}
	btree_put_le64(v, 0, addr);
	err = btree_insert(ov, tx, k, v, BTREE_NOOVERWRITE);
	if (err)
		return err;
	s->overlay_chunks++;
	mark_overlay_dirty(e, s);
	return 0;
}

/*
 * Re-applies the create of a received snapshot with its provenance: the same checks as
 * ENGINE_LOG_CREATE, then the provenance record.  Already applied (the snapshot with that
 * gen exists): its provenance is put again, which changes nothing.
 */
static int replay_create_from(struct engine *e, struct tx *tx, const void *payload)
{
	struct engine_logrec_create_from_disk r;
	struct engine_provenance prov;
	struct snap *s;
	u32 tag;
	int err;

	memcpy(&r, payload, sizeof(r));
	tag = le32_to_cpu(r.tag);
	memcpy(prov.uuid, r.uuid, sizeof(prov.uuid));
	prov.gen = le64_to_cpu(r.origin_gen);
	if (!prov.gen || r.reserved || r.pad[0] || r.pad[1] || r.pad[2] || tag == ENGINE_HEAD)
		return -EPROTO;
	s = snap_find(e, tag);
	if (s && s->gen == le64_to_cpu(r.gen))
		return prov_put(e, tx, s, &prov);
	if (s || le64_to_cpu(r.gen) != e->gen)
		return -EPROTO;
	err = snap_create(e, tx, tag, le64_to_cpu(r.ctime), (int8_t)r.priority);
	if (!err)
		err = prov_put(e, tx, snap_find(e, tag), &prov);
	return err;
}

int engine_replay(struct engine *e, struct tx *tx, u16 type, const void *payload, u16 len)
{
	struct engine_logrec_disk r;
	struct snap *s;

	if (e->p.read_only)
		return -EROFS;
	if (len != sizeof(r))
		return -EPROTO;
	memcpy(&r, payload, sizeof(r));
	switch (type) {
	case ENGINE_LOG_COPYOUT:
		return replay_copyout(e, tx, &r, true);
	case ENGINE_LOG_COPYOUT_ORDERED:
		return replay_copyout(e, tx, &r, false);
	case ENGINE_LOG_OVERLAY:
		return replay_overlay(e, tx, &r);
	case ENGINE_LOG_CREATE:
		s = snap_find(e, le32_to_cpu(r.tag));
		if (s && s->gen == le64_to_cpu(r.death))
			return 0;
		if (s || le64_to_cpu(r.death) != e->gen || le32_to_cpu(r.tag) == ENGINE_HEAD)
			return -EPROTO;
		return snap_create(e, tx, le32_to_cpu(r.tag), le64_to_cpu(r.ctime),
				   (int8_t)r.priority);
	case ENGINE_LOG_CREATE_FROM:
		return replay_create_from(e, tx, payload);
	case ENGINE_LOG_SETATTR:
		s = snap_find(e, le32_to_cpu(r.tag));
		if (!s)
			return 0; /* deleted by a later record */
		if (le64_to_cpu(r.chunk) > UINT16_MAX)
			return -EPROTO;
		return snap_setattr(e, tx, s, (u16)le64_to_cpu(r.chunk), (int8_t)r.priority, true);
	case ENGINE_LOG_DROP:
		s = snap_find(e, le32_to_cpu(r.tag));
		if (!s || (r.flags && s->state == ENGINE_SNAP_INVALID))
			return 0;
		return snap_drop(e, tx, s, r.flags & 1);
	default:
		return -EPROTO;
	}
}
