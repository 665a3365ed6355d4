// SPDX-License-Identifier: GPL-2.0-only
/*
 * test_range_tree.c - the range tree against a bitmap model over long random sequences of
 * adds, removes and queries (seed printed; RT_SEED=<n> replays one), plus the edge cases:
 * merging both neighbours, splitting, refusal of overlapping adds and partial removes,
 * aligned best fit, cursor iteration.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "pdata/range_tree.h"
#include "lib/rng.h"

/*----------------------------------------------------------------*/
/* the bitmap model */

#define MODEL_UNITS 4096

struct model {
	u8 set[MODEL_UNITS];
};

static bool model_all(const struct model *m, u64 start, u64 size, u8 v)
{
	for (u64 i = start; i < start + size; i++)
		if (m->set[i] != v)
			return false;
	return true;
}

static void model_fill(struct model *m, u64 start, u64 size, u8 v)
{
	memset(m->set + start, v, size);
}

struct run_check {
	const struct model *m;
	u64 pos, count, space;
	bool ok;
};

/* Each segment the tree reports must be a maximal run of the model, in order. */
static int check_run(void *arg, u64 start, u64 size)
{
	struct run_check *rc = arg;

	for (u64 i = rc->pos; i < start; i++)
		if (rc->m->set[i])
			rc->ok = false;
	if (!model_all(rc->m, start, size, 1))
		rc->ok = false;
	if (start + size < MODEL_UNITS && rc->m->set[start + size])
		rc->ok = false;
	rc->pos = start + size;
	rc->count++;
	rc->space += size;
	return 0;
}

static void check_equal(const struct range_tree *rt, const struct model *m)
{
	struct run_check rc = {.m = m, .ok = true};

	assert_int_equal(range_tree_verify(rt), 0);
	range_tree_walk(rt, check_run, &rc);
	for (u64 i = rc.pos; i < MODEL_UNITS; i++)
		if (m->set[i])
			rc.ok = false;
	assert_true(rc.ok);
	assert_int_equal(rc.count, range_tree_count(rt));
	assert_int_equal(rc.space, range_tree_space(rt));
}

/* The model's answer to range_tree_find: smallest fitting run, lowest start on ties. */
static int model_find(const struct model *m, u64 size, u64 align, u64 *out)
{
	u64 best_size = UINT64_MAX, best_start = 0;

	for (u64 i = 0; i < MODEL_UNITS;) {
		u64 j = i, a;

		if (!m->set[i]) {
			i++;
			continue;
		}
		while (j < MODEL_UNITS && m->set[j])
			j++;
		a = ROUND_UP(i, align);
		if (a + size <= j && j - i < best_size) {
			best_size = j - i;
			best_start = a;
		}
		i = j;
	}
	if (best_size == UINT64_MAX)
		return -ENOSPC;
	*out = best_start;
	return 0;
}

static u64 seed_from_env(void)
{
	return rnd_seed("RT_SEED", rnd_clock_seed(), NULL);
}

/*----------------------------------------------------------------*/
/* tests */

static void test_range_tree__merge_and_split(void **state)
{
	struct range_tree *rt = range_tree_create();
	u64 s, n;

	assert_int_equal(range_tree_add(rt, 10, 5), 0);
	assert_int_equal(range_tree_add(rt, 20, 5), 0);
	assert_int_equal(range_tree_count(rt), 2);
	assert_int_equal(range_tree_add(rt, 15, 5), 0); /* joins both neighbours */
	assert_int_equal(range_tree_count(rt), 1);
	assert_int_equal(range_tree_space(rt), 15);
	assert_true(range_tree_contains(rt, 10, 15));
	assert_false(range_tree_contains(rt, 9, 2));
	assert_int_equal(range_tree_add(rt, 24, 2), -EEXIST);
	assert_int_equal(range_tree_add(rt, 5, 6), -EEXIST);
	assert_int_equal(range_tree_add(rt, 0, 0), -EINVAL);
	assert_int_equal(range_tree_add(rt, UINT64_MAX, 2), -EINVAL);
	assert_int_equal(range_tree_remove(rt, 12, 3), 0); /* splits */
	assert_int_equal(range_tree_count(rt), 2);
	assert_int_equal(range_tree_remove(rt, 11, 2), -ENODATA);
	assert_int_equal(range_tree_remove(rt, 20, 10), -ENODATA);
	assert_true(range_tree_intersects(rt, 0, 11));
	assert_false(range_tree_intersects(rt, 12, 3));
	assert_true(range_tree_intersects(rt, 12, 4));
	assert_int_equal(range_tree_next(rt, 0, &s, &n), 0);
	assert_true(s == 10 && n == 2);
	assert_int_equal(range_tree_next(rt, 12, &s, &n), 0);
	assert_true(s == 15 && n == 10);
	assert_int_equal(range_tree_next(rt, 25, &s, &n), -ENODATA);
	assert_int_equal(range_tree_largest(rt, &s, &n), 0);
	assert_true(s == 15 && n == 10);
	assert_int_equal(range_tree_verify(rt), 0);
	range_tree_clear(rt);
	assert_int_equal(range_tree_space(rt), 0);
	assert_int_equal(range_tree_largest(rt, &s, &n), -ENOSPC);
	range_tree_destroy(rt);
}

static void test_range_tree__aligned_best_fit(void **state)
{
	struct range_tree *rt = range_tree_create();
	u64 s;

	assert_int_equal(range_tree_add(rt, 3, 9), 0);	  /* [3,12): 8 aligned at 4 -> [4,12) */
	assert_int_equal(range_tree_add(rt, 100, 40), 0); /* big */
	assert_int_equal(range_tree_add(rt, 50, 6), 0);	  /* [50,56) */
	assert_int_equal(range_tree_find(rt, 6, 1, &s), 0);
	assert_int_equal(s, 50);
	assert_int_equal(range_tree_find(rt, 8, 4, &s), 0);
	assert_int_equal(s, 4);
	assert_int_equal(range_tree_find(rt, 8, 8, &s), 0); /* [3,12) has no 8-aligned 8 */
	assert_int_equal(s, 104);
	assert_int_equal(range_tree_find(rt, 41, 1, &s), -ENOSPC);
	assert_int_equal(range_tree_find(rt, 4, 3, &s), -EINVAL);
	assert_int_equal(range_tree_find(rt, 0, 1, &s), -EINVAL);
	range_tree_destroy(rt);
}

static void test_range_tree__huge_offsets(void **state)
{
	struct range_tree *rt = range_tree_create();
	u64 s;

	assert_int_equal(range_tree_add(rt, UINT64_MAX - 10, 10), 0);
	assert_true(range_tree_contains(rt, UINT64_MAX - 1, 1));
	assert_int_equal(range_tree_find(rt, 4, 1ull << 62, &s), -ENOSPC);
	assert_int_equal(range_tree_find(rt, 4, 4, &s), 0);
	assert_int_equal(s % 4, 0);
	assert_int_equal(range_tree_remove(rt, UINT64_MAX - 10, 10), 0);
	assert_int_equal(range_tree_count(rt), 0);
	range_tree_destroy(rt);
}

static void test_range_tree__random_vs_bitmap(void **state)
{
	u64 seed = seed_from_env();
	struct model *m = calloc(1, sizeof(*m));
	struct range_tree *rt = range_tree_create();
	const int ops = 500000;

	printf("test_range_tree: seed %llu (RT_SEED=%llu to replay)\n", (unsigned long long)seed,
	       (unsigned long long)seed);
	srandom((unsigned)seed);
	for (int i = 0; i < ops; i++) {
		/* Mostly small runs so the tree holds hundreds of segments. */
		u64 size = 1 + (u64)random() % (random() % 8 ? 16 : 300);
		u64 start = (u64)random() % (MODEL_UNITS - size + 1);
		u64 align = 1ull << (random() % 5), found, want;
		int op = (int)(random() % 10), r;

		if (op < 4) {
			bool ok = model_all(m, start, size, 0);

			r = range_tree_add(rt, start, size);
			assert_int_equal(r, ok ? 0 : -EEXIST);
			if (ok)
				model_fill(m, start, size, 1);
		} else if (op < 8) {
			bool ok = model_all(m, start, size, 1);

			r = range_tree_remove(rt, start, size);
			assert_int_equal(r, ok ? 0 : -ENODATA);
			if (ok)
				model_fill(m, start, size, 0);
		} else if (op < 9) {
			assert_int_equal(range_tree_contains(rt, start, size),
					 model_all(m, start, size, 1));
			assert_int_equal(range_tree_intersects(rt, start, size),
					 !model_all(m, start, size, 0));
		} else {
			/* Allocate with best fit, as the allocator does. */
			r = range_tree_find(rt, size, align, &found);
			assert_int_equal(r, model_find(m, size, align, &want));
			if (r == 0) {
				assert_int_equal(found, want);
				assert_int_equal(range_tree_remove(rt, found, size), 0);
				model_fill(m, found, size, 0);
			}
		}
		if (i % 5000 == 0)
			check_equal(rt, m);
	}
	check_equal(rt, m);
	range_tree_destroy(rt);
	free(m);
}

/* Cursor iteration visits the same segments as the walk. */
static int count_seg(void *arg, u64 start, u64 size)
{
	(*(u64 *)arg)++;
	return 0;
}

static void test_range_tree__cursor_and_large(void **state)
{
	struct range_tree *rt = range_tree_create();
	const u64 n = 100000;
	u64 pos = 0, s, sz, seen = 0, walked = 0;

	/* Every other unit: n segments, deep trees. */
	for (u64 i = 0; i < n; i++)
		assert_int_equal(range_tree_add(rt, 2 * i, 1), 0);
	assert_int_equal(range_tree_verify(rt), 0);
	while (range_tree_next(rt, pos, &s, &sz) == 0) {
		assert_int_equal(s, 2 * seen);
		seen++;
		pos = s + sz;
	}
	assert_int_equal(seen, n);
	range_tree_walk(rt, count_seg, &walked);
	assert_int_equal(walked, n);
	/* Fill the holes in a scrambled order: everything merges into one segment. */
	for (u64 i = 0; i < n - 1; i++)
		assert_int_equal(range_tree_add(rt, 2 * ((i * 7919) % (n - 1)) + 1, 1), 0);
	assert_int_equal(range_tree_count(rt), 1);
	assert_int_equal(range_tree_space(rt), 2 * n - 1);
	assert_int_equal(range_tree_verify(rt), 0);
	range_tree_destroy(rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range_tree__merge_and_split),
		cmocka_unit_test(test_range_tree__aligned_best_fit),
		cmocka_unit_test(test_range_tree__huge_offsets),
		cmocka_unit_test(test_range_tree__random_vs_bitmap),
		cmocka_unit_test(test_range_tree__cursor_and_large),
	};

	return cmocka_run_group_tests_name("range_tree", tests, NULL, NULL);
}
