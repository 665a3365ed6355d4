/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * rng.h - the seeded generator of the model-based tests and stress programs: splitmix64, so
 * a printed seed replays the same sequence in every program that uses it.  Header only;
 * not thread-safe (one struct rnd per thread).  server/util/base.h's xorshift64 serves code
 * that only needs scattered bytes.  rnd_seed() is where every randomized test finds its
 * seed: an environment variable replays a printed one.
 */
#ifndef DDSNAP_TEST_RNG_H
#define DDSNAP_TEST_RNG_H

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "util/base.h"

struct rnd {
	u64 s;
};

/* The next value of the sequence seeded with r->s. */
static inline u64 rnd_next(struct rnd *r)
{
	u64 z = (r->s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* A value in [0, n), 0 if n is 0. */
static inline u64 rnd_below(struct rnd *r, u64 n)
{
	return n ? rnd_next(r) % n : 0;
}

/* A seed that differs between runs, and between test programs started in the same second. */
static inline u64 rnd_clock_seed(void)
{
	return (u64)time(NULL) ^ ((u64)getpid() << 16);
}

/*
 * The seed of a randomized test: environment variable @var's value when it is set (a failed
 * run replayed from the seed it printed), @dflt otherwise.  *@replay, when given, says which.
 */
static inline u64 rnd_seed(const char *var, u64 dflt, bool *replay)
{
	const char *s = getenv(var);

	if (replay)
		*replay = s != NULL;
	return s ? strtoull(s, NULL, 0) : dflt;
}

#endif
