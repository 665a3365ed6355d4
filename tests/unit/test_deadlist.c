// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_deadlist.c - deadlists against a naive model (a flat array of (key, chunk, death,
 * bytes) per deadlist) over random inserts, merges and splits; totals, per-sublist sums,
 * space ranges, walk order, that merges move chains rather than entries, and that a small
 * deadlist costs about its entries.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <malloc.h>
#include <cmocka.h>
#include "snap/deadlist.h"

#define NDL  4
#define MAXE 20000

struct ment {
	u64 key, chunk, death, bytes;
};

struct mdl {
	struct ment *e;
	u32 n;
};

static u64 rs = 12345;

static u64 rnd(u64 n)
{
	rs = rs * 6364136223846793005ull + 1442695040888963407ull;
	return (rs >> 33) % n;
}

static void m_insert(struct mdl *m, u64 key, u64 chunk, u64 death, u64 bytes)
{
	m->e[m->n++] = (struct ment){key, chunk, death, bytes};
}

static u64 m_range(const struct mdl *m, u64 lo, u64 hi)
{
	u64 s = 0;

	for (u32 i = 0; i < m->n; i++)
		if (m->e[i].key > lo && m->e[i].key <= hi)
			s += m->e[i].bytes;
	return s;
}

struct walk_ctx {
	const struct mdl *m;
	u64 seen, last_key;
	bool *used;
};

/* Every walked entry is in the model (once), keys ascend. */
static int walk_entry(void *arg, u64 key, const struct deadlist_entry *e)
{
	struct walk_ctx *w = arg;

	assert_true(key >= w->last_key);
	w->last_key = key;
	for (u32 i = 0; i < w->m->n; i++)
		if (!w->used[i] && w->m->e[i].key == key && w->m->e[i].chunk == e->chunk &&
		    w->m->e[i].death == e->death) {
			w->used[i] = true;
			w->seen++;
			return 0;
		}
	fail_msg("walked entry (%llu, %llu) key %llu not in the model",
		 (unsigned long long)e->chunk, (unsigned long long)e->death,
		 (unsigned long long)key);
	return -1;
}

static void compare(struct deadlist *dl, const struct mdl *m)
{
	struct walk_ctx w = {.m = m, .used = xzalloc(m->n + 1)};
	char why[128];
	u64 bytes = 0;

	assert_int_equal(deadlist_verify(dl, why, sizeof(why)), 0);
	assert_int_equal(deadlist_count(dl), m->n);
	for (u32 i = 0; i < m->n; i++)
		bytes += m->e[i].bytes;
	assert_int_equal(deadlist_bytes(dl), bytes);
	for (u32 i = 0; i < deadlist_nsublists(dl); i++) {
		u64 key, count, b, mc = 0;

		deadlist_sublist(dl, i, &key, &count, &b);
		for (u32 k = 0; k < m->n; k++)
			mc += m->e[k].key == key;
		assert_int_equal(count, mc);
		assert_int_equal(b, m_range(m, key - 1, key));
	}
	for (int t = 0; t < 8; t++) {
		u64 lo = rnd(40), hi = lo + rnd(40);

		assert_int_equal(deadlist_space_range(dl, lo, hi), m_range(m, lo, hi));
	}
	assert_int_equal(deadlist_walk(dl, walk_entry, &w), 0);
	assert_int_equal(w.seen, m->n);
	free(w.used);
}

static void test_deadlist__model(void **state)
{
	struct deadlist *dl[NDL];
	struct mdl m[NDL];

	for (int i = 0; i < NDL; i++) {
		dl[i] = deadlist_create();
		m[i].e = xmalloc(MAXE * sizeof(struct ment));
		m[i].n = 0;
	}
	for (int step = 0; step < 6000; step++) {
		int a = (int)rnd(NDL), b = (int)rnd(NDL), op = (int)rnd(40);

		if (op < 32) {
			u64 key = 1 + rnd(40), bytes = 4096 * (1 + rnd(2)), chunk = rnd(1000);

			if (m[a].n >= MAXE / 2)
				continue;
			deadlist_insert(dl[a], key, chunk, 100 + (u64)step, bytes);
			m_insert(&m[a], key, chunk, 100 + (u64)step, bytes);
		} else if (op < 39 && a != b) {
			if (m[a].n + m[b].n > MAXE)
				continue;
			deadlist_merge(dl[a], dl[b]);
			memcpy(m[a].e + m[a].n, m[b].e, m[b].n * sizeof(struct ment));
			m[a].n += m[b].n;
			m[b].n = 0;
			assert_int_equal(deadlist_count(dl[b]), 0);
			assert_int_equal(deadlist_nsublists(dl[b]), 0);
		} else {
			u64 key = 30 + rnd(11);
			struct deadlist *out = deadlist_split_above(dl[a], key);
			struct mdl mo = {xmalloc(MAXE * sizeof(struct ment)), 0};
			u32 keep = 0;

			for (u32 i = 0; i < m[a].n; i++)
				if (m[a].e[i].key > key)
					mo.e[mo.n++] = m[a].e[i];
				else
					m[a].e[keep++] = m[a].e[i];
			m[a].n = keep;
			compare(out, &mo);
			assert_int_equal(deadlist_space_range(dl[a], key, UINT64_MAX), 0);
			deadlist_destroy(out);
			free(mo.e);
		}
		if (step % 50 == 0)
			for (int i = 0; i < NDL; i++)
				compare(dl[i], &m[i]);
	}
	for (int i = 0; i < NDL; i++) {
		compare(dl[i], &m[i]);
		print_message("deadlist %d: %u entries in %u sublists\n", i, m[i].n,
			      deadlist_nsublists(dl[i]));
	}
	for (int i = 0; i < NDL; i++) {
		deadlist_destroy(dl[i]);
		free(m[i].e);
	}
}

/*
 * 10,000 snapshots owning 10 exceptions each (bench/open.sh's store): a deadlist of 10
 * entries costs about their 160 bytes plus its headers, not a whole segment of 252.
 */
static void test_deadlist__small_ones_are_small(void **state)
{
	enum { N = 10000, PER = 10 };
	struct deadlist **dl = xmalloc(N * sizeof(*dl));
	size_t before = mallinfo2().uordblks, per;

	for (u32 i = 0; i < N; i++) {
		dl[i] = deadlist_create();
		for (u32 k = 0; k < PER; k++)
			deadlist_insert(dl[i], i + 1, (u64)i * PER + k, i + 2, 4096);
		assert_int_equal(deadlist_count(dl[i]), PER);
	}
	per = (mallinfo2().uordblks - before) / N;
	print_message("a deadlist of %d entries: %zu bytes of heap\n", PER, per);
	assert_true(per < 1024);
	for (u32 i = 0; i < N; i++)
		deadlist_destroy(dl[i]);
	free(dl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deadlist__model),
		cmocka_unit_test(test_deadlist__small_ones_are_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
