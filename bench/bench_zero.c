/*
 * bench/bench_zero.c — what the sharded optimizer (optim.zero, common/zero.h) saves and
 * costs with K learner ranks: optimizer bytes per rank, peak RSS per rank and the time of
 * the optimizer part of a step — gradient reduction + global norm + AdamW + parameter
 * all-gather — on a GPT of a given preset with random weights and gradients.
 *
 *   mpirun -np K build/bench/bench_zero [gpt2|smol|tiny] [stage 0|1|2] [steps]
 *
 * The forward and backward passes are the same work in every mode and are not run: the
 * gradient buffer is filled with random numbers once, and every step reduces it anew
 * (the reduction sums in place, so the values grow by K per step; timing only). One
 * OpenBLAS / kernel thread per rank (ranks share the cores). step_ms is the median over
 * the steps of the slowest rank's time. Output: `RESULT <tab> zero.<preset>.np<K>.z<S>.
 * <what> <tab> value <tab> unit` lines: opt_bytes (this rank's m + v, rank 0), opt_mb,
 * peak_rss_mb (the largest rank's), step_ms, params. Not a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "adamw.h"
#include "gpt.h"
#include "mpi_util.h"
#include "ops.h"
#include "rng.h"
#include "util.h"
#include "zero.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    MPI_CHECK(MPI_Init(&argc, &argv));
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    const char *preset = argc > 1 ? argv[1] : "gpt2";
    int stage = argc > 2 ? atoi(argv[2]) : 1, steps = argc > 3 ? atoi(argv[3]) : 5;
    if (stage < 0 || stage > 2 || steps < 1 || steps > 1000)
        fatal("usage: bench_zero [gpt2|smol|tiny] [stage 0|1|2] [steps 1..1000]");
    int rank, K;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &K));
    ops_blas_setup(1);
    GPTConfig c;
    if (gpt_config_preset(preset, &c) != 0) fatal("bench_zero: unknown preset %s", preset);
    GPT m;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 1);
    gpt_alloc_grads(&m);
    Rng r;
    rng_init_keyed(&r, 3, (uint64_t)rank, 0);
    for (size_t i = 0; i < m.num_params; i++) m.grads[i] = rng_normal(&r) * 1e-3f;

    char err[ERRBUF_LEN];
    Zero z;
    zero_init(&z, MPI_COMM_WORLD, stage, m.num_params);
    AdamWRange *rows = xcalloc((size_t)m.num_tensors, sizeof *rows);
    int nr = adamw_decay_table_gpt(rows, m.tensors, m.num_tensors);
    AdamWConfig ac = adamw_config_default();
    AdamW o;
    if (zero_adamw_init(&z, &o, &ac, rows, nr, err) != 0) fatal("bench_zero: %s", err);
    free(rows);

    double *dt = xmalloc((size_t)steps * sizeof(double));
    for (int s = 0; s < steps; s++) {
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        double t0 = time_now();
        double norm = zero_reduce_grads(&z, m.grads);
        zero_step(&z, &o, m.params, m.grads, 1e-4f, adamw_clip_scale(norm, 1.0f));
        double mine = time_now() - t0;
        MPI_CHECK(MPI_Allreduce(&mine, &dt[s], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    }
    qsort(dt, (size_t)steps, sizeof *dt, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = (double)ru.ru_maxrss / 1024.0, rss_max = 0;
    MPI_CHECK(MPI_Reduce(&rss, &rss_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD));
    if (rank == 0) {
        size_t ob = zero_optimizer_bytes(&o);
        char key[96];
        snprintf(key, sizeof key, "zero.%s.np%d.z%d", preset, K, stage);
        printf("zero %s: %zu parameters, %d rank%s, optim.zero=%d: optimizer %.1f MiB per rank, "
               "peak RSS %.0f MiB (largest rank), optimizer step %.1f ms (median of %d; "
               "measured on a shared machine)\n",
               preset, m.num_params, K, K == 1 ? "" : "s", stage, (double)ob / (1 << 20),
               rss_max, dt[steps / 2] * 1e3, steps);
        printf("RESULT\t%s.opt_bytes\t%zu\tbytes\n", key, ob);
        printf("RESULT\t%s.opt_mb\t%.1f\tMiB\n", key, (double)ob / (1 << 20));
        printf("RESULT\t%s.peak_rss_mb\t%.0f\tMiB\n", key, rss_max);
        printf("RESULT\t%s.step_ms\t%.2f\tms\n", key, dt[steps / 2] * 1e3);
        printf("RESULT\t%s.params\t%zu\tcount\n", key, m.num_params);
    }
    free(dt);
    adamw_free(&o);
    zero_free(&z);
    gpt_free(&m);
    MPI_CHECK(MPI_Finalize());
    return 0;
}
