// SPDX-License-Identifier: GPL-2.0-only
/*
 * snapmodel.c - full copies per snapshot: the model the engine is checked against.
 *
 * Invariant: snaps[0..nsnaps) is in creation order and each holds nchunks * chunk_size bytes
 * equal to the origin at its creation, changed since only by writes to that snapshot.
 */
#include "snapmodel.h"
#include <string.h>

struct model_snap {
	u32 tag;
	u8 *data;
};

struct snapmodel {
	u64 nchunks;
	u32 chunk_size;
	u8 *origin;
	struct model_snap *snaps;
	u32 nsnaps, cap;
};

struct snapmodel *snapmodel_create(u64 nchunks, u32 chunk_size)
{
	struct snapmodel *m = xzalloc(sizeof(*m));

	m->nchunks = nchunks;
	m->chunk_size = chunk_size;
	m->origin = xzalloc(nchunks * chunk_size);
	return m;
}

void snapmodel_destroy(struct snapmodel *m)
{
	if (!m)
		return;
	for (u32 i = 0; i < m->nsnaps; i++)
		free(m->snaps[i].data);
	free(m->snaps);
	free(m->origin);
	free(m);
}

static struct model_snap *model_find(struct snapmodel *m, u64 tag)
{
	for (u32 i = 0; i < m->nsnaps; i++)
		if (m->snaps[i].tag == tag)
			return &m->snaps[i];
	return NULL;
}

void snapmodel_origin_write(struct snapmodel *m, u64 chunk, u32 off, u32 len, const void *data)
{
	VERIFY(chunk < m->nchunks && off + len <= m->chunk_size);
	memcpy(m->origin + chunk * m->chunk_size + off, data, len);
}

int snapmodel_snap_write(struct snapmodel *m, u32 tag, u64 chunk, u32 off, u32 len,
			 const void *data)
{
	struct model_snap *s = model_find(m, tag);

	if (!s)
		return -ENODATA;
	VERIFY(chunk < m->nchunks && off + len <= m->chunk_size);
	memcpy(s->data + chunk * m->chunk_size + off, data, len);
	return 0;
}

int snapmodel_create_snap(struct snapmodel *m, u32 tag)
{
	if (model_find(m, tag))
		return -EEXIST;
	if (m->nsnaps == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 8;
		m->snaps = xrealloc(m->snaps, m->cap * sizeof(*m->snaps));
	}
	m->snaps[m->nsnaps].tag = tag;
	m->snaps[m->nsnaps].data = xmalloc(m->nchunks * m->chunk_size);
	memcpy(m->snaps[m->nsnaps].data, m->origin, m->nchunks * m->chunk_size);
	m->nsnaps++;
	return 0;
}

int snapmodel_delete_snap(struct snapmodel *m, u32 tag)
{
	struct model_snap *s = model_find(m, tag);
	u32 i;

	if (!s)
		return -ENODATA;
	i = (u32)(s - m->snaps);
	free(s->data);
	memmove(&m->snaps[i], &m->snaps[i + 1], (m->nsnaps - i - 1) * sizeof(*s));
	m->nsnaps--;
	return 0;
}

const u8 *snapmodel_read(struct snapmodel *m, u64 tag, u64 chunk)
{
	struct model_snap *s;

	VERIFY(chunk < m->nchunks);
	if (tag == SNAPMODEL_ORIGIN)
		return m->origin + chunk * m->chunk_size;
	s = model_find(m, tag);
	return s ? s->data + chunk * m->chunk_size : NULL;
}

u32 snapmodel_tags(struct snapmodel *m, u32 *tags, u32 max)
{
	for (u32 i = 0; i < m->nsnaps && i < max; i++)
		tags[i] = m->snaps[i].tag;
	return m->nsnaps;
}

u32 snapmodel_count(struct snapmodel *m)
{
	return m->nsnaps;
}

bool snapmodel_differs(struct snapmodel *m, u64 a, u64 b, u64 chunk)
{
	const u8 *pa = snapmodel_read(m, a, chunk), *pb = snapmodel_read(m, b, chunk);

	VERIFY(pa && pb);
	return memcmp(pa, pb, m->chunk_size) != 0;
}
