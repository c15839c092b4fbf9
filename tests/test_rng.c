/* tests/test_rng.c — the RNG: known first outputs, save/restore, keyed streams, ranges. */
#include "rng.h"
#include "test.h"

static void test_restore(void) {
    Rng a, b;
    rng_init(&a, 1234);
    for (int i = 0; i < 10; i++) rng_next_u64(&a);
    b = a; /* the struct is the whole state */
    for (int i = 0; i < 100; i++) CHECK(rng_next_u64(&a) == rng_next_u64(&b));
}

static void test_keyed(void) {
    Rng a, b, c;
    rng_init_keyed(&a, 7, 3, 1);
    rng_init_keyed(&b, 7, 3, 1);
    rng_init_keyed(&c, 7, 1, 3);
    uint64_t x = rng_next_u64(&a);
    CHECK(x == rng_next_u64(&b));
    CHECK(x != rng_next_u64(&c));
}

static void test_ranges(void) {
    Rng r;
    rng_init(&r, 42);
    double sum = 0, sum2 = 0;
    int n = 200000, counts[7] = {0};
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&r);
        CHECK(u >= 0.0f && u < 1.0f);
        float z = rng_normal(&r);
        sum += z;
        sum2 += (double)z * z;
        counts[rng_below(&r, 7)]++;
    }
    CHECK_NEAR(sum / n, 0.0, 0.01, 0);
    CHECK_NEAR(sum2 / n, 1.0, 0.02, 0);
    for (int k = 0; k < 7; k++) CHECK_NEAR(counts[k], n / 7.0, n / 7.0 * 0.03, 0);
    int perm[50];
    for (int i = 0; i < 50; i++) perm[i] = i;
    rng_shuffle_ints(&r, perm, 50);
    int seen[50] = {0};
    for (int i = 0; i < 50; i++) seen[perm[i]]++;
    for (int i = 0; i < 50; i++) CHECK(seen[i] == 1);
}

/* splitmix64 reference values (Vigna's splitmix64.c with state 0: first output). */
static void test_mix_reference(void) {
    CHECK(rng_mix64(0) == 0xe220a8397b1dcdafULL);
}

int main(void) {
    TEST_RUN(test_restore);
    TEST_RUN(test_keyed);
    TEST_RUN(test_ranges);
    TEST_RUN(test_mix_reference);
    return TEST_EXIT();
}
