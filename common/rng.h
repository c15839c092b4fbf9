/*
 * common/rng.h — the seeded, serialisable random number generator of rlhf-c.
 *
 * xoshiro256** (Blackman & Vigna 2018) seeded through splitmix64. The whole state is the
 * four 64-bit words of Rng, so saving/restoring a generator is copying the struct (the
 * checkpoint stores it as 4 uint64). rng_init_keyed derives an independent stream from a
 * (seed, key1, key2) triple: sampling keys it by (seed, prompt index, sample index) so the
 * tokens drawn for a sequence never depend on which batch or rank generated it.
 */
#ifndef RLHF_RNG_H
#define RLHF_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

#define RNG_STATE_WORDS 4

void rng_init(Rng *r, uint64_t seed);
void rng_init_keyed(Rng *r, uint64_t seed, uint64_t key1, uint64_t key2);
uint64_t rng_next_u64(Rng *r);
/* uniform in [0, 1) with 24 random bits (float) / 53 random bits (double) */
float rng_uniform(Rng *r);
double rng_uniform_double(Rng *r);
/* standard normal (Box–Muller, two uniforms per call; no cached second value) */
float rng_normal(Rng *r);
/* uniform integer in [0, n), unbiased (n > 0) */
uint64_t rng_below(Rng *r, uint64_t n);
/* Fisher–Yates shuffle of an int array */
void rng_shuffle_ints(Rng *r, int *a, int n);
/* splitmix64 finaliser: a good 64-bit mixing function, also used for hashing keys */
uint64_t rng_mix64(uint64_t x);

#endif
