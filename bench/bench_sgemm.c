/*
 * bench/bench_sgemm.c — OpenBLAS cblas_sgemm alone on every GEMM shape of a GPT-2
 * training step: the ceiling that the model's own step (bench_model) is measured against.
 *
 *   build/bench/bench_sgemm [tiny|gpt2|all] [reps] [label]
 *
 * For each preset (tiny: V512 L4 NH4 C128, step of 16x128 tokens; gpt2: 124M, V50257
 * L12 NH12 C768, step of 4x64 tokens) it times, in the orientations ops.c calls them:
 *   linear layers (qkv C->3C, attn proj C->C, fc C->4C, fc proj 4C->C):
 *     fwd   out (N,OC) = inp (N,C) W (C,OC)          NN
 *     dinp  (N,C)  += dout (N,OC) W^T                NT
 *     dW    (C,OC) += inp^T dout                     TN
 *   LM head tied to wte (V,C):
 *     fwd   logits (N,V) = inp (N,C) wte^T           NT
 *     dinp  (N,C) += dlogits (N,V) wte               NN
 *     dwte  (V,C) += dlogits^T inp                   TN
 *   attention, per (batch, head), T x T x hs: the two forward and four backward products.
 * Every shape: one warm-up call, then `reps` samples (default 5, at least 5), each sample
 * enough back-to-back calls to last >= 20 ms; the MEDIAN sample is reported as ms per call
 * and GFLOP/s (2 M N K flops per call). Then the FLOP-weighted rate of the whole step's
 * GEMMs (each shape counted as often as a step calls it): total flops / total median time.
 * Where gemm.c's kernel is compiled in (AVX-512), every shape is timed again with it, same
 * thread count (its pool instead of OpenBLAS's threads), as a second column, and the
 * step's total says which is faster; elsewhere the output says why gemm.c is missing
 * (bench/gemm_path.h) and prints no gemm.c figure.
 *
 * Output: a human table, and one machine line per number
 *   RESULT <tab> sgemm.<label>.<preset>.<shape>.gflops <tab> value <tab> GFLOP/s
 * that bench/run.sh collects. `label` (default: the OpenBLAS core name) names the run, so
 * run.sh can run it once with the environment's OPENBLAS_CORETYPE and once without.
 * Threads: OPENBLAS_NUM_THREADS (OpenBLAS reads the core type and thread count at load).
 * Not a test and checks nothing about results; never run by `make test`.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "gemm_path.h"
#include "gpt.h"
#include "ops.h"
#include "rng.h"
#include "util.h"

#define MIN_REPS 5
#define MIN_SAMPLE_S 0.02

typedef struct {
    const char *name;
    CBLAS_TRANSPOSE ta, tb;
    int M, N, K;
    double count; /* calls per training step */
    float beta;
} Shape;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One call of the shape: OpenBLAS, or gemm.c's kernel (own) on the ops.c pool. */
static void call_shape(const Shape *s, int own, const float *A, const float *B, float *C) {
    int lda = s->ta == CblasNoTrans ? s->K : s->M;
    int ldb = s->tb == CblasNoTrans ? s->N : s->K;
    if (own) {
        GemmEpilogue e = {.accumulate = s->beta != 0.0f};
        gemm_f32(s->ta == CblasTrans, s->tb == CblasTrans, s->M, s->N, s->K, A, lda, B, ldb, C,
                 s->N, &e);
    } else {
        cblas_sgemm(CblasRowMajor, s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, s->beta,
                    C, s->N);
    }
}

/* Median seconds per call of one shape. A, B, C are large enough for every shape. */
static double time_shape(const Shape *s, int own, const float *A, const float *B, float *C,
                         int reps) {
    double t0 = time_now();
    call_shape(s, own, A, B, C);
    double one = time_now() - t0;
    int inner = one > 0 ? (int)(MIN_SAMPLE_S / one) + 1 : 1000;
    if (inner < 1) inner = 1;
    double *samples = xcalloc((size_t)reps, sizeof(double));
    for (int r = 0; r < reps; r++) {
        t0 = time_now();
        for (int i = 0; i < inner; i++) call_shape(s, own, A, B, C);
        samples[r] = (time_now() - t0) / inner;
    }
    double med = median(samples, reps);
    free(samples);
    return med;
}

static int bench_preset(const char *preset, int B, int T, int reps, const char *label) {
    GPTConfig c;
    if (gpt_config_preset(preset, &c) != 0) {
        fprintf(stderr, "bench_sgemm: unknown preset '%s' (use tiny, gpt2 or all)\n", preset);
        return -1;
    }
    int C = c.n_embd, V = c.vocab_size, L = c.n_layer, NH = c.n_head, hs = C / NH, N = B * T;
    double lin = L, att = (double)L * B * NH;
    Shape sh[] = {
        {"qkv_fwd", CblasNoTrans, CblasNoTrans, N, 3 * C, C, lin, 1.0f},
        {"qkv_dinp", CblasNoTrans, CblasTrans, N, C, 3 * C, lin, 1.0f},
        {"qkv_dw", CblasTrans, CblasNoTrans, C, 3 * C, N, lin, 1.0f},
        {"attproj_fwd", CblasNoTrans, CblasNoTrans, N, C, C, lin, 1.0f},
        {"attproj_dinp", CblasNoTrans, CblasTrans, N, C, C, lin, 1.0f},
        {"attproj_dw", CblasTrans, CblasNoTrans, C, C, N, lin, 1.0f},
        {"fc_fwd", CblasNoTrans, CblasNoTrans, N, 4 * C, C, lin, 1.0f},
        {"fc_dinp", CblasNoTrans, CblasTrans, N, C, 4 * C, lin, 1.0f},
        {"fc_dw", CblasTrans, CblasNoTrans, C, 4 * C, N, lin, 1.0f},
        {"fcproj_fwd", CblasNoTrans, CblasNoTrans, N, C, 4 * C, lin, 1.0f},
        {"fcproj_dinp", CblasNoTrans, CblasTrans, N, 4 * C, C, lin, 1.0f},
        {"fcproj_dw", CblasTrans, CblasNoTrans, 4 * C, C, N, lin, 1.0f},
        {"lmhead_fwd", CblasNoTrans, CblasTrans, N, V, C, 1, 0.0f},
        {"lmhead_dinp", CblasNoTrans, CblasNoTrans, N, C, V, 1, 1.0f},
        {"lmhead_dwte", CblasTrans, CblasNoTrans, V, C, N, 1, 1.0f},
        {"att_qk_fwd", CblasNoTrans, CblasTrans, T, T, hs, att, 0.0f},
        {"att_pv_fwd", CblasNoTrans, CblasNoTrans, T, hs, T, att, 0.0f},
        {"att_dp_bwd", CblasNoTrans, CblasTrans, T, T, hs, att, 0.0f},
        {"att_dv_bwd", CblasTrans, CblasNoTrans, T, hs, T, att, 1.0f},
        {"att_dq_bwd", CblasNoTrans, CblasNoTrans, T, hs, T, att, 1.0f},
        {"att_dk_bwd", CblasTrans, CblasNoTrans, T, hs, T, att, 1.0f},
    };
    int ns = (int)(sizeof sh / sizeof sh[0]);
    size_t maxa = 0, maxb = 0, maxc = 0;
    for (int i = 0; i < ns; i++) {
        size_t a = (size_t)sh[i].M * sh[i].K, b = (size_t)sh[i].K * sh[i].N;
        size_t cc = (size_t)sh[i].M * sh[i].N;
        maxa = a > maxa ? a : maxa, maxb = b > maxb ? b : maxb, maxc = cc > maxc ? cc : maxc;
    }
    float *A = xalloc_floats(maxa), *Bm = xalloc_floats(maxb), *Cm = xalloc_floats(maxc);
    Rng r;
    rng_init(&r, 7);
    for (size_t i = 0; i < maxa; i++) A[i] = 0.02f * rng_normal(&r);
    for (size_t i = 0; i < maxb; i++) Bm[i] = 0.02f * rng_normal(&r);

    printf("== %s (%s): V=%d L=%d NH=%d C=%d, step of %dx%d = %d tokens, median of %d\n",
           preset, label, V, L, NH, C, B, T, N, reps);
    int own = gemm_f32_available();
    printf("  %-13s %2s %6s %6s %6s %7s %10s %9s %9s\n", "gemm", "op", "M", "N", "K", "calls",
           "ms/call", "GFLOP/s", own ? "gemm.c" : "");
    double step_flops = 0, step_time = 0, own_time = 0;
    /* gemm.c first, every shape, then OpenBLAS: OpenBLAS's threads spin (sched_yield) for
     * ~0.1 s after each of its calls and would take a core from the pool's threads */
    double osecs[32] = {0};
    for (int i = 0; own && i < ns; i++) call_shape(&sh[i], 1, A, Bm, Cm); /* warm-up */
    for (int i = 0; own && i < ns; i++) osecs[i] = time_shape(&sh[i], 1, A, Bm, Cm, reps);
    for (int i = 0; i < ns; i++) {
        const Shape *s = &sh[i];
        double sec = time_shape(s, 0, A, Bm, Cm, reps);
        double osec = osecs[i];
        double fl = 2.0 * s->M * (double)s->N * s->K;
        double gf = fl / sec / 1e9;
        step_flops += fl * s->count;
        step_time += sec * s->count;
        own_time += osec * s->count;
        printf("  %-13s %c%c %6d %6d %6d %7.0f %10.4f %9.1f", s->name,
               s->ta == CblasNoTrans ? 'N' : 'T', s->tb == CblasNoTrans ? 'N' : 'T', s->M, s->N,
               s->K, s->count, sec * 1e3, gf);
        if (own) printf(" %9.1f", fl / osec / 1e9);
        printf("\n");
        printf("RESULT\tsgemm.%s.%s.%s.gflops\t%.3f\tGFLOP/s\n", label, preset, s->name, gf);
        if (own)
            printf("RESULT\tsgemm.%s.%s.%s.own_gflops\t%.3f\tGFLOP/s\n", label, preset, s->name,
                   fl / osec / 1e9);
    }
    printf("  step GEMMs: %.3f GFLOP in %.1f ms of sgemm -> %.1f GFLOP/s (FLOP-weighted)\n",
           step_flops / 1e9, step_time * 1e3, step_flops / step_time / 1e9);
    if (!own) printf("  gemm.c: %s\n", bench_gemm_absent_reason());
    if (own) {
        int own_faster = own_time < step_time;
        printf("  the same calls with gemm.c: %.1f ms -> %.1f GFLOP/s; faster %s (%.2fx)\n",
               own_time * 1e3, step_flops / own_time / 1e9, own_faster ? "gemm.c" : "OpenBLAS",
               own_faster ? step_time / own_time : own_time / step_time);
        printf("RESULT\tsgemm.%s.%s.step.own_gflops\t%.3f\tGFLOP/s\n", label, preset,
               step_flops / own_time / 1e9);
    }
    printf("RESULT\tsgemm.%s.%s.step.gflops\t%.3f\tGFLOP/s\n", label, preset,
           step_flops / step_time / 1e9);
    printf("RESULT\tsgemm.%s.%s.step.ms\t%.3f\tms\n", label, preset, step_time * 1e3);
    free(A), free(Bm), free(Cm);
    return 0;
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    int reps = argc > 2 ? atoi(argv[2]) : MIN_REPS;
    if (argc > 4 || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: bench_sgemm [tiny|gpt2|all] [reps >= %d] [label]\n", MIN_REPS);
        return 2;
    }
    if (reps < MIN_REPS) reps = MIN_REPS;
    const char *core = ops_blas_setup(0);
    openblas_set_num_threads(ops_blas_threads()); /* OpenBLAS alone, with its own threads */
    const char *ct = getenv("OPENBLAS_CORETYPE");
    const char *label = argc > 3 ? argv[3] : core;
    for (const char *p = label; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-')) {
            fprintf(stderr, "bench_sgemm: label '%s' must be [A-Za-z0-9_-]\n", label);
            return 2;
        }
    printf("OpenBLAS %s, core %s (%s), %d threads\n", openblas_get_config(), core,
           ct ? "OPENBLAS_CORETYPE preset" : "OpenBLAS's own detection", ops_blas_threads());
    const char *absent = bench_gemm_absent_reason();
    if (absent) printf("gemm.c: %s; OpenBLAS alone\n", absent);
    printf("RESULT\tsgemm.%s.gemm_c\t%d\tflag\n", label, absent ? 0 : 1);
    if (absent) printf("RESULT\tsgemm.%s.gemm_c_absent\t%s\ttext\n", label, absent);
    printf("RESULT\tsgemm.%s.core\t%s\tname\n", label, core);
    printf("RESULT\tsgemm.%s.threads\t%d\tthreads\n", label, ops_blas_threads());
    int ran = 0;
    if (!strcmp(which, "all") || !strcmp(which, "tiny")) {
        if (bench_preset("tiny", 16, 128, reps, label) != 0) return 1;
        ran++;
    }
    if (!strcmp(which, "all") || !strcmp(which, "gpt2")) {
        if (bench_preset("gpt2", 4, 64, reps, label) != 0) return 1;
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "bench_sgemm: unknown preset '%s' (use tiny, gpt2 or all)\n", which);
        return 2;
    }
    fflush(stdout);
    return 0;
}
