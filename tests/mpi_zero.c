/*
 * tests/mpi_zero.c — helper program for tests/t_zero.sh: the sharded optimizer (zero.h)
 * against the replicated one, over a real mpirun with K ranks:
 *     mpirun -np K build/tests/mpi_zero
 * On a buffer of N_PARAMS floats (not a multiple of K or of 16) with a decay table whose
 * rows straddle the shard boundaries, every rank makes its own deterministic gradients
 * (keyed by rank and step) and runs STEPS steps with optim.zero = 0, 1 and 2 from the same
 * start, clipping active and weight decay on. Checked:
 *   - after the reduction the gradient buffer holds the whole reduced gradient (stages 0,
 *     1) or this rank's shard of it (stage 2);
 *   - the collectives split in many rounds (Zero.round lowered) give the same result;
 *   - stages 1 and 2 give bit-identical parameters and moments; stage 0 agrees within
 *     TOL (the gradient sums may be added in another order; the norm is summed per shard);
 *   - every rank ends with the same parameters (the all-gather);
 *   - the shard's decay table marks element i exactly as the whole table marks lo + i;
 *   - optimizer bytes per rank: 2 * 4 * len with len <= ceil(N/K) rounded to 16, by
 *     zero_optimizer_bytes and by counting heap bytes (tests/heapcount.h; skipped with a
 *     note under a sanitizer's allocator);
 *   - one NaN on the last rank, in the first rank's shard, makes every rank's norm NaN;
 *   - the moments gathered on rank 0 and scattered back are the shard bit for bit.
 * Any failure prints "FAIL: ..." and exits 1 (MPI_Abort).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "heapcount.h"
#include "mpi_util.h"
#include "rng.h"
#include "util.h"
#include "zero.h"

#define N_PARAMS 100003
#define STEPS 6
/* 1% of one step's learning rate: summation order moves gradients near zero by ulps,
 * and AdamW's g / sqrt(v) amplifies that there (seen: up to 6.4e-7 with K = 4) */
#define TOL 1e-5f

static int g_rank;

static void check(int ok, const char *what) {
    if (ok) return;
    fprintf(stderr, "FAIL: [rank %d] %s\n", g_rank, what);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Rows of sizes that cross every shard boundary for K <= 8, decay alternating. */
static int decay_table(AdamWRange *r) {
    static const size_t sizes[] = {7, 40000, 3, 29993, 17, 26000, 3983};
    size_t off = 0;
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        r[n++] = (AdamWRange){.offset = off, .numel = sizes[i], .decay = (int)(i % 2 == 1)};
        off += sizes[i];
    }
    check(off == N_PARAMS, "decay table covers the buffer");
    return n;
}

/* This rank's gradient of step s (the sum over ranks is the global gradient). */
static void make_grads(float *g, int rank, int s) {
    Rng r;
    rng_init_keyed(&r, 42, (uint64_t)rank, (uint64_t)s);
    for (size_t i = 0; i < N_PARAMS; i++) g[i] = rng_normal(&r) * 0.01f;
}

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float d = 0;
    for (size_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

typedef struct {
    float *params, *m_full, *v_full;
    double norms[STEPS];
    size_t bytes, len;
} RunOut;

static RunOut run_stage(int stage, const AdamWRange *rows, int nrows, size_t round) {
    char err[ERRBUF_LEN];
    Zero z;
    zero_init(&z, MPI_COMM_WORLD, stage, N_PARAMS);
    if (round > 0) z.round = round;
    AdamWConfig c = adamw_config_default();
    AdamW o;
    size_t before = heap_bytes();
    check(zero_adamw_init(&z, &o, &c, rows, nrows, err) == 0, err);
    RunOut out = {.bytes = heap_bytes() - before, .len = z.len};
    check(zero_optimizer_bytes(&o) == 2 * sizeof(float) * z.len, "zero_optimizer_bytes");
    /* the decay table cut to the shard */
    AdamW whole = {.n = N_PARAMS};
    check(adamw_set_decay_table(&whole, rows, nrows, err) == 0, err);
    for (size_t i = 0; i < z.len; i++)
        check(adamw_decays(&o, i) == adamw_decays(&whole, z.lo + i), "shard decay table");
    free(whole.ranges);

    float *p = xalloc_floats(N_PARAMS), *g = xalloc_floats(N_PARAMS);
    Rng r;
    rng_init_keyed(&r, 7, 0, 0); /* the same start on every rank */
    for (size_t i = 0; i < N_PARAMS; i++) p[i] = rng_normal(&r); /* weight decay moves them visibly */
    float *ref = xalloc_floats(N_PARAMS);
    for (int s = 0; s < STEPS; s++) {
        make_grads(g, g_rank, s);
        if (s == 0)
            MPI_CHECK(MPI_Allreduce(g, ref, N_PARAMS, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
        double norm = zero_reduce_grads(&z, g);
        if (s == 0) { /* what holds the reduced gradient: all of it (0, 1), the shard (2) */
            size_t a = stage == 2 ? z.lo : 0, b = stage == 2 ? z.lo + z.len : N_PARAMS;
            check(max_abs_diff(g + a, ref + a, b - a) <= 1e-7f, "the reduced gradient");
        }
        check(isfinite(norm) && norm > 0, "finite positive norm");
        out.norms[s] = norm;
        /* clipping active: the max norm is half the norm */
        zero_step(&z, &o, p, g, 1e-3f, adamw_clip_scale(norm, (float)(norm * 0.5)));
    }
    /* the non-finite guard: a NaN on the last rank in the first rank's shard */
    make_grads(g, g_rank, STEPS);
    if (g_rank == z.nranks - 1) g[1] = NAN;
    check(isnan(zero_reduce_grads(&z, g)), "a NaN gradient gives a NaN norm on every rank");

    /* the moments gathered in the unsharded layout, and back */
    out.m_full = xalloc_floats(N_PARAMS);
    out.v_full = xalloc_floats(N_PARAMS);
    zero_gather_moments(&z, &o, g_rank == 0 ? out.m_full : NULL, g_rank == 0 ? out.v_full : NULL);
    MPI_CHECK(MPI_Bcast(out.m_full, N_PARAMS, MPI_FLOAT, 0, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Bcast(out.v_full, N_PARAMS, MPI_FLOAT, 0, MPI_COMM_WORLD));
    AdamW back;
    check(zero_adamw_init(&z, &back, &c, rows, nrows, err) == 0, err);
    zero_scatter_moments(&z, &back, out.m_full, out.v_full);
    check(memcmp(back.m, o.m, z.len * sizeof(float)) == 0 &&
              memcmp(back.v, o.v, z.len * sizeof(float)) == 0,
          "gather + scatter of the moments is the identity");
    adamw_free(&back);
    adamw_free(&o);
    zero_free(&z);
    free(g);
    free(ref);
    out.params = p;
    return out;
}

int main(int argc, char **argv) {
    MPI_CHECK(MPI_Init(&argc, &argv));
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    int K;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &K));
    AdamWRange rows[16];
    int nrows = decay_table(rows);
    int counting = heap_counts();

    RunOut r0 = run_stage(0, rows, nrows, 0), r1 = run_stage(1, rows, nrows, 0),
           r2 = run_stage(2, rows, nrows, 0), r2s = run_stage(2, rows, nrows, 4000);
    /* the collectives in rounds (here ~25 of them) agree with one round: exactly where
     * every element is a sum of two (K <= 2), else within TOL (MPI may pick another
     * reduction order for smaller messages) */
    check(N_PARAMS > 20 * 4000, "the small round size gives many rounds");
    if (K <= 2)
        check(memcmp(r2.params, r2s.params, N_PARAMS * sizeof(float)) == 0,
              "rounds of 4000 floats: bit-identical parameters");
    check(max_abs_diff(r2.params, r2s.params, N_PARAMS) <= TOL, "rounds of 4000 floats");
    check(memcmp(r1.params, r2.params, N_PARAMS * sizeof(float)) == 0,
          "stages 1 and 2: bit-identical parameters");
    check(memcmp(r1.m_full, r2.m_full, N_PARAMS * sizeof(float)) == 0 &&
              memcmp(r1.v_full, r2.v_full, N_PARAMS * sizeof(float)) == 0,
          "stages 1 and 2: bit-identical moments");
    float dp = max_abs_diff(r0.params, r1.params, N_PARAMS);
    float dm = max_abs_diff(r0.m_full, r1.m_full, N_PARAMS);
    check(dp <= TOL && dm <= TOL, "stage 0 vs 1: parameters and moments within 1e-5");
    /* the norms differ by the gradients' float rounding (K > 2 may add them in another
     * order) and by the double sums' association: far below 1e-6 relative */
    double dn = 0;
    for (int s = 0; s < STEPS; s++) {
        dn = fmax(dn, fabs(r0.norms[s] - r1.norms[s]) / r0.norms[s]);
        check(r1.norms[s] == r2.norms[s], "stages 1 and 2: the same global norm");
    }
    check(dn <= 1e-6, "the global norm from the shards equals the whole gradient's (1e-6)");
    /* the all-gather: every rank holds rank 0's parameters */
    float *p0 = xalloc_floats(N_PARAMS);
    memcpy(p0, r1.params, N_PARAMS * sizeof(float));
    MPI_CHECK(MPI_Bcast(p0, N_PARAMS, MPI_FLOAT, 0, MPI_COMM_WORLD));
    check(memcmp(p0, r1.params, N_PARAMS * sizeof(float)) == 0, "ranks agree on parameters");
    free(p0);

    /* the saving: 1/K of the replicated optimizer state, shards in whole 64-byte lines */
    size_t shard_max = ((N_PARAMS + (size_t)K - 1) / (size_t)K + 15) / 16 * 16;
    check(r0.len == N_PARAMS, "stage 0 holds every moment");
    check(r1.len <= shard_max, "stage 1 shard is at most ceil(N/K) rounded to 16");
    uint64_t total = 0, mine = r1.len;
    MPI_CHECK(MPI_Allreduce(&mine, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD));
    check(total == N_PARAMS, "the shards cover the buffer once");
    if (counting) {
        /* adamw_init allocates m and v (plus a table row or few): the heap grows by that */
        check(r0.bytes >= 8 * (size_t)N_PARAMS && r0.bytes < 8 * (size_t)N_PARAMS + 4096,
              "stage 0 allocates 2 x 4 bytes per parameter");
        check(r1.bytes >= 8 * r1.len && r1.bytes < 8 * shard_max + 4096,
              "stage 1 allocates 2 x 4 bytes per shard element");
    }
    if (g_rank == 0) {
        printf("mpi_zero: K=%d: optimizer bytes per rank: stage 0 %zu, stage 1 %zu (heap %s: "
               "%zu, %zu); stage 0 vs 1: max |dparam| %.3g, max |dm| %.3g, norm rel. %.3g\n",
               K, 8 * r0.len, 8 * r1.len, counting ? "counted" : "not countable here",
               r0.bytes, r1.bytes, (double)dp, (double)dm, dn);
        if (!counting) printf("mpi_zero: note: heap counting unavailable (sanitizer allocator)\n");
    }
    RunOut *all[] = {&r0, &r1, &r2, &r2s};
    for (int i = 0; i < 4; i++) free(all[i]->params), free(all[i]->m_full), free(all[i]->v_full);
    MPI_CHECK(MPI_Finalize());
    return 0;
}
