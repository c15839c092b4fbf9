/*
 * bench/bench_model.c — speed of the GPT-2 core: a training step (forward, LM head,
 * backward), generation with the KV cache, and OpenBLAS sgemm alone on the same GEMM
 * shapes as the training step (the ceiling the step is compared with).
 *
 *   build/bench/bench_model [tiny|gpt2|all|smol] [iters]
 *   build/bench/bench_model decode [iters]   fp32 vs bf16 decode copy (widened; and the
 *                                            AVX512-BF16 dot products where the CPU has
 *                                            them) (gpt2, smol), then long
 *   build/bench/bench_model decode N gpt2    (or smol) that preset's fp32 vs bf16 decode alone
 *   build/bench/bench_model long [iters]     decode step at cache positions 128 .. 2048
 *
 * Shapes (the project's reference points): tiny = V512 L4 NH4 C128 T128, train 16x128,
 * generate 16 prompts of 16 tokens + 112 new; gpt2 = 124M, train 4x64, generate 8
 * prompts of 16 + 48 new; smol (not in "all") = the Llama family at SmolLM2-135M's shape,
 * train 4x256, generate 8 prompts of 16 + 48 new (bench_smol). Each measurement is the best of `iters` runs (default 3) after
 * one warm-up. Threads: OPENBLAS_NUM_THREADS (also the thread count of the
 * batch-invariant generation kernels). The optimizer (grad-norm clip + AdamW) is timed on
 * its own after the step and added for the full-step figure. FLOPs are those of the
 * step's GEMMs, attention counted as the OpenBLAS path computes it (the causal query
 * blocks of OPS_ATT_BLOCK rows; gemm.c's causal shapes skip a further ~20 %), so GFLOP/s
 * compare like with like; the element-wise work is counted as overhead.
 * Where gemm.c is compiled in (AVX-512), the step runs with gemm.c's GEMM (ops_gemm_own(1))
 * and right after with OpenBLAS for the same products (ops_gemm_own(0)); both times are
 * printed with the faster marked, and the train.* figures are those of the path the
 * product takes by default (model.gemm_default). Elsewhere the step is OpenBLAS's alone
 * and the output says why gemm.c is missing (bench/gemm_path.h) instead of a ratio.
 * Output: a human summary and `RESULT <tab> model.<preset>.<what> <tab> value <tab> unit`
 * lines (the format of bench_sgemm), and model.core (the OpenBLAS core in use) and
 * model.gemm_c (1 when gemm.c ran). Not a test: nothing is checked.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adamw.h"
#include "gemm_path.h"
#include "generate.h"
#include "gpt.h"
#include "ops.h"
#include "rng.h"
#include "util.h"

typedef struct {
    const char *name;
    int train_B, train_T, gen_B, gen_prompt, gen_new;
} Shape;

/* Sum over the causal query blocks of ops.c of (rows x keys): the attention GEMMs run
 * on this many score entries per (batch, head) instead of T^2. */
static double att_entries(int T) {
    double n = 0;
    for (int t0 = 0; t0 < T; t0 += OPS_ATT_BLOCK) {
        int nt = T - t0 < OPS_ATT_BLOCK ? T - t0 : OPS_ATT_BLOCK;
        n += (double)nt * (t0 + nt);
    }
    return n;
}

/* GEMM FLOPs of one training step (forward + backward, LM head), as ops.c performs them. */
static double train_flops(const GPTConfig *c, int B, int T) {
    double L = c->n_layer, C = c->n_embd, V = c->vocab_size, BT = (double)B * T;
    double att = (double)B * att_entries(T) * C; /* x hs x NH */
    double fwd = L * (24.0 * BT * C * C + 4.0 * att) + 2.0 * BT * C * V;
    double bwd = L * (48.0 * BT * C * C + 8.0 * att) + 4.0 * BT * C * V;
    return fwd + bwd;
}

/* OpenBLAS alone on the GEMMs of one training step, in the same shapes. */
typedef struct {
    CBLAS_TRANSPOSE ta, tb;
    int M, N, K, count;
} Gemm;

#define MAX_GEMMS 128 /* 14 + 6 per attention block (T <= 1024) */
typedef struct {
    Gemm g[MAX_GEMMS];
    int ng;
    float *A, *B, *C;
    double flops;
} Replica;

/* Append the blocked attention GEMMs (count per (layer, batch, head)) of one step. */
static int add_attention(Gemm *g, int n, int T, int hs, int count) {
    for (int t0 = 0; t0 < T; t0 += OPS_ATT_BLOCK) {
        int nt = T - t0 < OPS_ATT_BLOCK ? T - t0 : OPS_ATT_BLOCK, nk = t0 + nt;
        ASSERT(n + 6 <= MAX_GEMMS);
        g[n++] = (Gemm){CblasNoTrans, CblasTrans, nt, nk, hs, count};   /* Q K^T */
        g[n++] = (Gemm){CblasNoTrans, CblasNoTrans, nt, hs, nk, count}; /* P V */
        g[n++] = (Gemm){CblasNoTrans, CblasTrans, nt, nk, hs, count};   /* dP */
        g[n++] = (Gemm){CblasTrans, CblasNoTrans, nk, hs, nt, count};   /* dV */
        g[n++] = (Gemm){CblasNoTrans, CblasNoTrans, nt, hs, nk, count}; /* dQ */
        g[n++] = (Gemm){CblasTrans, CblasNoTrans, nk, hs, nt, count};   /* dK */
    }
    return n;
}

static void replica_init(Replica *rp, const GPTConfig *c, int B, int T) {
    int C = c->n_embd, V = c->vocab_size, L = c->n_layer, hs = C / c->n_head, NH = c->n_head;
    int BT = B * T, BH = B * NH;
    Gemm g[] = {
        /* forward: qkv, attn proj, fc, fc proj (x L), LM head; attention added below */
        {CblasNoTrans, CblasNoTrans, BT, 3 * C, C, L},
        {CblasNoTrans, CblasNoTrans, BT, C, C, L},
        {CblasNoTrans, CblasNoTrans, BT, 4 * C, C, L},
        {CblasNoTrans, CblasNoTrans, BT, C, 4 * C, L},
        {CblasNoTrans, CblasTrans, BT, V, C, 1},
        /* backward: dinp and dweight of each linear, LM head */
        {CblasNoTrans, CblasTrans, BT, C, 3 * C, L},
        {CblasTrans, CblasNoTrans, C, 3 * C, BT, L},
        {CblasNoTrans, CblasTrans, BT, C, C, L},
        {CblasTrans, CblasNoTrans, C, C, BT, L},
        {CblasNoTrans, CblasTrans, BT, C, 4 * C, L},
        {CblasTrans, CblasNoTrans, C, 4 * C, BT, L},
        {CblasNoTrans, CblasTrans, BT, 4 * C, C, L},
        {CblasTrans, CblasNoTrans, 4 * C, C, BT, L},
        {CblasNoTrans, CblasNoTrans, BT, C, V, 1},
        {CblasTrans, CblasNoTrans, V, C, BT, 1},
    };
    rp->ng = (int)(sizeof g / sizeof g[0]);
    memcpy(rp->g, g, sizeof g);
    rp->ng = add_attention(rp->g, rp->ng, T, hs, L * BH);
    size_t maxa = 0, maxb = 0, maxc = 0;
    rp->flops = 0;
    for (int i = 0; i < rp->ng; i++) {
        const Gemm *gi = &rp->g[i];
        size_t a = (size_t)gi->M * gi->K, b = (size_t)gi->K * gi->N, cc = (size_t)gi->M * gi->N;
        maxa = a > maxa ? a : maxa, maxb = b > maxb ? b : maxb, maxc = cc > maxc ? cc : maxc;
        rp->flops += 2.0 * gi->M * (double)gi->N * gi->K * gi->count;
    }
    rp->A = xalloc_floats(maxa), rp->B = xalloc_floats(maxb), rp->C = xalloc_floats(maxc);
    Rng r;
    rng_init(&r, 1);
    for (size_t i = 0; i < maxa; i++) rp->A[i] = rng_normal(&r);
    for (size_t i = 0; i < maxb; i++) rp->B[i] = rng_normal(&r);
}

/* OpenBLAS alone, with its own threads (the kernels keep it single-threaded and split
 * the GEMMs over their pool instead). */
static double replica_run(const Replica *rp) {
    openblas_set_num_threads(ops_blas_threads());
    double t0 = time_now();
    for (int i = 0; i < rp->ng; i++) {
        const Gemm *g = &rp->g[i];
        int lda = g->ta == CblasNoTrans ? g->K : g->M;
        int ldb = g->tb == CblasNoTrans ? g->N : g->K;
        for (int k = 0; k < g->count; k++)
            cblas_sgemm(CblasRowMajor, g->ta, g->tb, g->M, g->N, g->K, 1.0f, rp->A, lda, rp->B, ldb,
                        0.0f, rp->C, g->N);
    }
    double t = time_now() - t0;
    openblas_set_num_threads(1);
    return t;
}

static void replica_free(Replica *rp) { free(rp->A), free(rp->B), free(rp->C); }

/* Read bandwidth: the sum of n floats split over the kernels' pool, each part reading
 * `streams` sequential runs side by side (a core keeps more misses in flight over several
 * streams than over one). The bound that decoding at small batch is held to. */
typedef struct {
    const float *x;
    size_t n;
    int streams; /* 1 or 4 */
    float sum[64];
} ReadJob;

typedef float v4f __attribute__((vector_size(16)));

/* the sum of one 64-byte line (four loads, no dependence on the previous line) */
static inline v4f read_line(const float *p) {
    v4f a, b, c, d;
    memcpy(&a, p, 16), memcpy(&b, p + 4, 16), memcpy(&c, p + 8, 16), memcpy(&d, p + 12, 16);
    return (a + b) + (c + d);
}

/* Every float of a part once, `streams` (1 or 4) runs side by side, left to the hardware
 * prefetchers (a software prefetch 1-6 KiB ahead measured the same or slower on a Zen 5:
 * 55-61 GB/s against 55-65). Independent sums in registers: a loop
 * whose sums live in memory (or whose adds form one chain) measures the core, not the
 * memory (it read 21 GB/s where the decode step streamed its weights at 47 on a Zen 5). */
static void read_part(void *p, int part, int nparts) {
    ReadJob *j = p;
    size_t lo = j->n * (size_t)part / (size_t)nparts, hi = j->n * (size_t)(part + 1) / (size_t)nparts;
    size_t len = (hi - lo) / (size_t)j->streams / 32 * 32;
    const float *x = j->x + lo;
    v4f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    if (j->streams == 1) {
        for (size_t i = 0; i < len; i += 32) {
            s0 += read_line(x + i), s1 += read_line(x + i + 16);
        }
    } else {
        for (size_t i = 0; i < len; i += 16) {
            s0 += read_line(x + i), s1 += read_line(x + len + i);
            s2 += read_line(x + 2 * len + i), s3 += read_line(x + 3 * len + i);
        }
    }
    v4f s = (s0 + s1) + (s2 + s3);
    j->sum[part % 64] = s[0] + s[1] + s[2] + s[3];
}

/* best of `reps` reads of x (n floats), GB/s */
static double read_gbs(const float *x, size_t n, int streams, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        ReadJob j = {x, n, streams, {0}};
        double t0 = time_now();
        ops_parallel(read_part, &j, 64);
        double dt = time_now() - t0;
        if (dt < best) best = dt;
    }
    return (double)n * sizeof(float) / best / 1e9;
}

/* Both GEMM paths of the step: gemm.c's time (0 when not compiled in) and OpenBLAS's,
 * the faster marked; or why gemm.c is missing, with no ratio. */
static void print_gemm_paths(const char *preset, double own, double blas, int own_default) {
    if (own > 0.0) {
        int own_faster = own < blas;
        printf("the step with gemm.c %.1f ms, with OpenBLAS for the same products %.1f ms: "
               "faster %s (%.2fx); the default: %s\n",
               own * 1e3, blas * 1e3, own_faster ? "gemm.c" : "OpenBLAS",
               own_faster ? blas / own : own / blas, own_default ? "gemm.c" : "OpenBLAS");
        printf("RESULT\tmodel.%s.train_gemm_c.ms\t%.3f\tms\n", preset, own * 1e3);
    } else {
        printf("the step with OpenBLAS for every product: %.1f ms; gemm.c: %s\n", blas * 1e3,
               bench_gemm_absent_reason());
    }
    printf("RESULT\tmodel.%s.train_openblas_gemm.ms\t%.3f\tms\n", preset, blas * 1e3);
}

/* Best of `iters` training steps (forward, LM head, backward) after one warm-up, back to
 * back as a trainer runs them; *fwd: the best forward + LM head part. */
static double time_steps(GPT *m, const int *tokens, const int *targets, const float *dlp, int B,
                         int T, int iters, double *fwd) {
    double best = 1e30;
    *fwd = 1e30;
    for (int it = 0; it <= iters; it++) {
        double t0 = time_now();
        gpt_zero_grad(m);
        gpt_forward(m, tokens, B, T);
        gpt_lm_forward(m, targets, B, T);
        double t1 = time_now();
        gpt_lm_backward(m, dlp, NULL, B, T);
        double t2 = time_now();
        if (it > 0 && t2 - t0 < best) best = t2 - t0;
        if (it > 0 && t1 - t0 < *fwd) *fwd = t1 - t0;
    }
    return best;
}

/* The step with gemm.c (where compiled in), then right after it with OpenBLAS for the same
 * products: *own (0 without gemm.c) and *blas. Returns the time of the path the product
 * takes by default (run.gemm = auto), *fwd its forward + LM head part. */
static double time_steps_paths(GPT *m, const int *tokens, const int *targets, const float *dlp,
                               int B, int T, int iters, double *fwd, double *own, double *blas) {
    int own_default = ops_gemm_own(-1);
    double fwd_own = 0.0, fwd_blas = 0.0;
    *own = 0.0;
    if (gemm_f32_available()) {
        ops_gemm_own(1);
        *own = time_steps(m, tokens, targets, dlp, B, T, iters, &fwd_own);
    }
    ops_gemm_own(0);
    *blas = time_steps(m, tokens, targets, dlp, B, T, iters, &fwd_blas);
    ops_gemm_own(own_default);
    *fwd = own_default ? fwd_own : fwd_blas;
    return own_default ? *own : *blas;
}

static void bench_one(const Shape *s, int iters) {
    GPTConfig c;
    if (gpt_config_preset(s->name, &c) != 0) fatal("unknown preset %s", s->name);
    GPT m;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 1);
    gpt_alloc_grads(&m);
    Rng r;
    rng_init(&r, 2);
    printf("== %s: V=%d L=%d NH=%d C=%d, %.1fM parameters\n", s->name, c.vocab_size, c.n_layer,
           c.n_head, c.n_embd, (double)m.num_params / 1e6);

    /* training step */
    int B = s->train_B, T = s->train_T;
    gpt_reserve(&m, B, T);
    int *tokens = xcalloc((size_t)B * T, sizeof(int)), *targets = xcalloc((size_t)B * T, sizeof(int));
    float *dlp = xalloc_floats((size_t)B * T);
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int)rng_below(&r, (uint64_t)c.vocab_size);
        targets[i] = (int)rng_below(&r, (uint64_t)c.vocab_size);
        dlp[i] = -1.0f / (B * T);
    }
    /* the steps back to back, as a trainer runs them, then the sgemm replica as many
     * times (the best of the runs is kept for each). Alternating them one by one measured
     * neither: on a VM a step that follows an idle pause or OpenBLAS's own threads runs
     * differently (tiny: 80 ms back to back, 105 ms after a 0.3 s pause). */
    Replica rp;
    replica_init(&rp, &c, B, T);
    int own_default = ops_gemm_own(-1);
    double best_own, best_blas, best_fwd, sg = 1e30;
    double best = time_steps_paths(&m, tokens, targets, dlp, B, T, iters, &best_fwd, &best_own,
                                   &best_blas);
    for (int it = 0; it <= iters; it++) {
        double ts = replica_run(&rp);
        if (it > 0 && ts < sg) sg = ts;
    }
    double fl = train_flops(&c, B, T), sg_fl = rp.flops;
    replica_free(&rp);
    /* the optimizer part of a learner step (trainer.c): gradient-norm clipping and AdamW
     * with the GPT decay table, on the gradients of the step above */
    AdamWConfig ac = adamw_config_default();
    AdamW opt;
    adamw_init(&opt, m.num_params, &ac);
    AdamWRange *ranges = xcalloc((size_t)m.num_tensors, sizeof *ranges);
    char aerr[ERRBUF_LEN];
    int nr = adamw_decay_table_gpt(ranges, m.tensors, m.num_tensors);
    if (adamw_set_decay_table(&opt, ranges, nr, aerr) != 0) fatal("%s", aerr);
    double best_opt = 1e30, best_inplace = 1e30, best_fused = 1e30;
    for (int it = 0; it <= iters; it++) {
        double t0 = time_now();
        double norm = adamw_grad_norm(m.grads, m.num_params);
        adamw_step_scaled(&opt, m.params, m.grads, 1e-4f, adamw_clip_scale(norm, 1.0f));
        double dt = time_now() - t0;
        if (it > 0 && dt < best_opt) best_opt = dt;
    }
    /* with clipping active (max_norm half the norm), side by side: scaling the gradients
     * in a pass of their own then stepping, against the fused update the learners use;
     * alternated so both see the same machine state. (A max_norm far below the norm would
     * push m and v into subnormal floats, which slows both 2.5x and measures nothing.) */
    for (int it = 0; it <= iters; it++) {
        float half = (float)(adamw_grad_norm(m.grads, m.num_params) / 2);
        double t0 = time_now();
        adamw_clip_grad_norm(m.grads, m.num_params, half);
        adamw_step(&opt, m.params, m.grads, 1e-4f);
        double t1 = time_now();
        half = (float)(adamw_grad_norm(m.grads, m.num_params) / 2);
        double t1b = time_now();
        double norm = adamw_grad_norm(m.grads, m.num_params);
        adamw_step_scaled(&opt, m.params, m.grads, 1e-4f, adamw_clip_scale(norm, half));
        double t2 = time_now();
        if (it > 0 && t1 - t0 < best_inplace) best_inplace = t1 - t0;
        if (it > 0 && t2 - t1b < best_fused) best_fused = t2 - t1b;
    }
    adamw_free(&opt);
    free(ranges);
    double pct = 100.0 * (fl / best) / (sg_fl / sg);
    printf("train %dx%d: step %.1f ms (forward+head %.1f ms), %.0f tokens/s, %.1f GFLOP/s\n", B, T,
           best * 1e3, best_fwd * 1e3, B * T / best, fl / best / 1e9);
    printf("sgemm alone, same shapes: %.1f ms, %.1f GFLOP/s -> step at %.0f%% of the sgemm rate\n",
           sg * 1e3, sg_fl / sg / 1e9, pct);
    printf("RESULT\tmodel.%s.train.ms\t%.3f\tms\n", s->name, best * 1e3);
    printf("RESULT\tmodel.%s.train.tokens_per_s\t%.1f\ttokens/s\n", s->name, B * T / best);
    printf("RESULT\tmodel.%s.train.gflops\t%.3f\tGFLOP/s\n", s->name, fl / best / 1e9);
    printf("RESULT\tmodel.%s.train.sgemm_gflops\t%.3f\tGFLOP/s\n", s->name, sg_fl / sg / 1e9);
    printf("RESULT\tmodel.%s.train.pct_of_sgemm\t%.1f\t%%\n", s->name, pct);
    print_gemm_paths(s->name, best_own, best_blas, own_default);
    printf("optimizer (grad-norm clip + AdamW): %.1f ms; full step (fwd+bwd+optimizer) %.1f ms, "
           "%.0f tokens/s\n",
           best_opt * 1e3, (best + best_opt) * 1e3, B * T / (best + best_opt));
    printf("RESULT\tmodel.%s.optim.ms\t%.3f\tms\n", s->name, best_opt * 1e3);
    printf("optimizer with clipping active: scale pass + AdamW %.1f ms, fused %.1f ms (%.2fx)\n",
           best_inplace * 1e3, best_fused * 1e3, best_inplace / best_fused);
    printf("RESULT\tmodel.%s.optim_clip_inplace.ms\t%.3f\tms\n", s->name, best_inplace * 1e3);
    printf("RESULT\tmodel.%s.optim_clip_fused.ms\t%.3f\tms\n", s->name, best_fused * 1e3);
    printf("RESULT\tmodel.%s.step_full.ms\t%.3f\tms\n", s->name, (best + best_opt) * 1e3);
    printf("RESULT\tmodel.%s.step_full.tokens_per_s\t%.1f\ttokens/s\n", s->name,
           B * T / (best + best_opt));

    /* generation */
    int GB = s->gen_B, P = s->gen_prompt, NEW = s->gen_new;
    int *pbuf = xcalloc((size_t)GB * P, sizeof(int));
    const int **prompts = xcalloc((size_t)GB, sizeof(int *));
    int *plens = xcalloc((size_t)GB, sizeof(int)), *out = xcalloc((size_t)GB * NEW, sizeof(int));
    int *lens = xcalloc((size_t)GB, sizeof(int));
    float *lps = xalloc_floats((size_t)GB * NEW);
    uint64_t *ids = xcalloc((size_t)GB, sizeof(uint64_t));
    for (int b = 0; b < GB; b++) {
        for (int t = 0; t < P; t++) pbuf[b * P + t] = (int)rng_below(&r, (uint64_t)c.vocab_size);
        prompts[b] = pbuf + b * P;
        plens[b] = P;
        ids[b] = (uint64_t)b;
    }
    GenParams gp = {.max_new_tokens = NEW, .eos_id = -1, .temperature = 1.0f, .top_k = 0,
                    .top_p = 1.0f, .seed = 5};
    char err[ERRBUF_LEN];
    best = 1e30;
    for (int it = 0; it <= iters; it++) {
        double t0 = time_now();
        if (generate(&m, &gp, GB, prompts, plens, ids, ids, out, lps, lens, err) != 0) fatal("%s", err);
        double dt = time_now() - t0;
        if (it > 0 && dt < best) best = dt;
    }
    /* GEMM FLOPs: every token (prompt and new) through the trunk, logits for new ones */
    double Cd = c.n_embd, Ld = c.n_layer, Vd = c.vocab_size;
    double ntok = (double)GB * (P + NEW - 1), nlog = (double)GB * NEW;
    double avg_ctx = (P + NEW) / 2.0;
    double gfl = ntok * Ld * (24.0 * Cd * Cd + 4.0 * avg_ctx * Cd) + nlog * 2.0 * Cd * Vd;
    printf("generate %d x (%d prompt + %d new): %.1f ms, %.0f new tokens/s, %.1f GFLOP/s\n", GB, P,
           NEW, best * 1e3, GB * NEW / best, gfl / best / 1e9);
    printf("RESULT\tmodel.%s.generate.ms\t%.3f\tms\n", s->name, best * 1e3);
    printf("RESULT\tmodel.%s.generate.tokens_per_s\t%.1f\ttokens/s\n", s->name, GB * NEW / best);
    printf("RESULT\tmodel.%s.generate.gflops\t%.3f\tGFLOP/s\n", s->name, gfl / best / 1e9);

    /* the decode steps alone (prefill, then NEW - 1 steps feeding the sampled tokens back)
     * against the time to read the weights they read: the packed trunk and the LM head
     * (the KV cache, LayerNorms and biases are left out, so the bound is optimistic) */
    int *slots = xcalloc((size_t)GB, sizeof(int)), *toks = xcalloc((size_t)GB, sizeof(int));
    double step = 1e30;
    for (int it = 0; it <= iters; it++) {
        gpt_cache_prefill(&m, GB, prompts, plens);
        for (int b = 0; b < GB; b++) slots[b] = b, toks[b] = out[b * NEW];
        double t0 = time_now();
        for (int t = 1; t < NEW; t++) {
            gpt_cache_decode(&m, GB, slots, toks);
            for (int b = 0; b < GB; b++) toks[b] = out[b * NEW + t];
        }
        double dt = (time_now() - t0) / (NEW - 1);
        if (it > 0 && dt < step) step = dt;
    }
    double C2 = (double)c.n_embd * c.n_embd;
    double wbytes = 4.0 * (12.0 * c.n_layer * C2 + (double)c.vocab_size * c.n_embd);
    printf("RESULT\tmodel.%s.decode.step_ms\t%.3f\tms\n", s->name, step * 1e3);
    if (wbytes < 64e6) { /* the weights stay in the caches: no memory bound to compare with */
        printf("decode at batch %d: %.3f ms per token step (%.1f MB of weights: cache-resident)\n",
               GB, step * 1e3, wbytes / 1e6);
    } else {
        /* m.grads: 4 x num_params bytes, already touched by the training step above */
        double bw1 = read_gbs(m.grads, m.num_params, 1, 3);
        double bw4 = read_gbs(m.grads, m.num_params, 4, 3);
        double bw = bw1 > bw4 ? bw1 : bw4, bound = wbytes / (bw * 1e9);
        printf("decode at batch %d: %.2f ms per token step; weights read per step %.1f MB; read "
               "bandwidth %.1f GB/s (1 stream per thread), %.1f GB/s (4) -> bound %.2f ms, "
               "decode at %.0f%% of it\n",
               GB, step * 1e3, wbytes / 1e6, bw1, bw4, bound * 1e3, 100.0 * bound / step);
        printf("RESULT\tmodel.%s.decode.weight_mb\t%.1f\tMB\n", s->name, wbytes / 1e6);
        printf("RESULT\tmodel.%s.decode.read_gbs\t%.2f\tGB/s\n", s->name, bw);
        printf("RESULT\tmodel.%s.decode.pct_of_bandwidth\t%.1f\t%%\n", s->name,
               100.0 * bound / step);
    }
    free(slots), free(toks);
    free(tokens), free(targets), free(dlp), free(pbuf), free(prompts), free(plens), free(out);
    free(lens), free(lps), free(ids);
    gpt_free(&m);
}

/* Bytes of the weights one decode step streams at fp32: the blocks' four linear layers
 * and the LM head (the KV cache, norms and biases left out: the bound is optimistic). */
static double decode_weight_floats(const GPTConfig *c) {
    double C = c->n_embd, L = c->n_layer, V = c->vocab_size;
    if (c->family != GPT_FAMILY_LLAMA) return 12.0 * L * C * C + V * C;
    double hd = c->head_dim ? c->head_dim : C / c->n_head;
    double qw = c->n_head * hd, kw = c->n_kv_head * hd, F = c->d_ff;
    return L * (C * (qw + 2 * kw) + qw * C + 3.0 * C * F) + V * C;
}

/* CPU time of the process: on a shared machine a step's wall time includes the slices
 * other processes ran; with one kernel thread this is the time the step itself ran
 * (memory stalls included) */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A model of `preset` with its cache reserved for GB slots and prefilled with 16-token
 * prompts, decoding from the fp32 (bf16 = 0) or the bf16 copy (GPT.decode_bf16). */
static void decode_model(GPT *m, const char *preset, int bf16, int GB, int steps, Rng *r) {
    GPTConfig c;
    if (gpt_config_preset(preset, &c) != 0) fatal("unknown preset %s", preset);
    gpt_init(m, &c);
    gpt_init_weights(m, 1);
    m->decode_bf16 = bf16;
    enum { P = 16 };
    gpt_cache_reserve(m, GB, P + steps + 1);
    int *pbuf = xcalloc((size_t)GB * P, sizeof(int)), *plens = xcalloc((size_t)GB, sizeof(int));
    const int **prompts = xcalloc((size_t)GB, sizeof(int *));
    for (int b = 0; b < GB; b++) {
        for (int t = 0; t < P; t++) pbuf[b * P + t] = (int)rng_below(r, (uint64_t)c.vocab_size);
        prompts[b] = pbuf + b * P, plens[b] = P;
    }
    gpt_cache_prefill(m, GB, prompts, plens);
    free(pbuf), free(plens), free(prompts);
}

/* Decode at batch 8 from the fp32 and the bf16 copy of the same model, in one process
 * (bf16 with each weight widened to fp32; and, where ops_bf16_dot_supported(), with the
 * AVX512-BF16 dot products that gen.bf16_dot = auto then picks): single steps timed in
 * turn (fp32, bf16, ...), so all see the same machine state; the fastest step of each is
 * the figure (on a shared machine a step that kept its cores throughout), the median
 * printed beside it. Each is compared with the bound of reading its copy's bytes once per
 * step at the measured read bandwidth (bf16: half). "bf16" in the RESULT keys is what
 * gen.weights = bf16 runs by default on this CPU. */
static void bench_decode_precision(const char *preset, int iters) {
    enum { GB = 8, STEPS = 40 };
    static const char *const name[3] = {"fp32", "bf16 widened", "bf16 dot (AVX512-BF16)"};
    Rng r;
    rng_init(&r, 3);
    GPT m[3];
    int K = ops_bf16_dot_supported() ? 3 : 2;
    for (int k = 0; k < K; k++) decode_model(&m[k], preset, k, GB, STEPS, &r);
    int slots[GB], toks[GB], V = m[0].config.vocab_size;
    double ts[3][STEPS], cs[3][STEPS];
    for (int b = 0; b < GB; b++) slots[b] = b;
    (void)iters;
    for (int t = 0; t < STEPS; t++)
        for (int k = 0; k < K; k++) {
            for (int b = 0; b < GB; b++) toks[b] = (int)rng_below(&r, (uint64_t)V);
            double t0 = time_now(), c0 = cpu_now();
            gpt_cache_decode(&m[k], GB, slots, toks);
            ts[k][t] = time_now() - t0, cs[k][t] = cpu_now() - c0;
        }
    /* the first step of each pays for first touches: left out */
    for (int k = 0; k < K; k++) {
        qsort(ts[k] + 1, STEPS - 1, sizeof(double), cmp_double);
        qsort(cs[k] + 1, STEPS - 1, sizeof(double), cmp_double);
    }
    double wb = 4.0 * decode_weight_floats(&m[0].config);
    size_t np = m[0].num_params;
    double bw1 = read_gbs(m[0].params, np, 1, 3), bw4 = read_gbs(m[0].params, np, 4, 3);
    double bw = bw1 > bw4 ? bw1 : bw4, b32 = wb / (bw * 1e9), b16 = b32 / 2;
    printf("== decode %s at batch %d (%.1fM parameters), fastest of %d steps (median), %d "
           "kernel thread(s); the bound: reading the copy once per step at %.1f GB/s\n",
           preset, GB, (double)np / 1e6, STEPS - 1, ops_blas_threads(), bw);
    for (int k = 0; k < K; k++) {
        double bound = k ? b16 : b32;
        printf("   %-24s %6.2f ms (%6.2f) = %3.0f%% of %.2f ms (%.0f MB); %.2fx fp32 (medians "
               "%.2fx); CPU time %.2f ms\n",
               name[k], ts[k][1] * 1e3, ts[k][STEPS / 2] * 1e3, 100 * bound / ts[k][1],
               bound * 1e3, (k ? wb / 2 : wb) / 1e6, ts[0][1] / ts[k][1],
               ts[0][STEPS / 2] / ts[k][STEPS / 2], cs[k][1] * 1e3);
    }
    int d = K - 1; /* gen.bf16_dot = auto */
    printf("RESULT\tdecode.%s.bf16_kernel\t%s\tname\n", preset, d == 2 ? "dot" : "widen");
    printf("RESULT\tdecode.%s.f32.step_ms\t%.3f\tms\n", preset, ts[0][1] * 1e3);
    printf("RESULT\tdecode.%s.bf16.step_ms\t%.3f\tms\n", preset, ts[d][1] * 1e3);
    if (d == 2) printf("RESULT\tdecode.%s.bf16_widen.step_ms\t%.3f\tms\n", preset, ts[1][1] * 1e3);
    printf("RESULT\tdecode.%s.bf16_speedup\t%.3f\tx\n", preset, ts[0][1] / ts[d][1]);
    printf("RESULT\tdecode.%s.bf16_speedup_median\t%.3f\tx\n", preset,
           ts[0][STEPS / 2] / ts[d][STEPS / 2]);
    printf("RESULT\tdecode.%s.f32.pct_of_bound\t%.1f\t%%\n", preset, 100 * b32 / ts[0][1]);
    printf("RESULT\tdecode.%s.bf16.pct_of_bound\t%.1f\t%%\n", preset, 100 * b16 / ts[d][1]);
    printf("RESULT\tdecode.%s.f32.cpu_ms\t%.3f\tms\n", preset, cs[0][1] * 1e3);
    printf("RESULT\tdecode.%s.bf16.cpu_ms\t%.3f\tms\n", preset, cs[d][1] * 1e3);
    printf("RESULT\tdecode.%s.f32.weight_mb\t%.1f\tMB\n", preset, wb / 1e6);
    printf("RESULT\tdecode.%s.read_gbs\t%.2f\tGB/s\n", preset, bw);
    for (int k = 0; k < K; k++) gpt_free(&m[k]);
}

/* The decode step of GPT-2 124M at batch 8 with the cache at positions 128 .. 2048
 * (max_seq_len raised to 2048, the fp32 copy): one slot is prefilled to 2044 tokens once,
 * its first p - 4 rows copied into the 8 decode slots, then 4 steps to position p (the
 * fastest single step of iters runs after a warm-up). The
 * weights cost the same at every position; attention grows linearly with it, so the
 * step time is an affine function of the position (the slope per 1k positions printed
 * between successive points should be about constant). */
static void bench_long_context(int iters) {
    GPTConfig c;
    if (gpt_config_preset("gpt2", &c) != 0) fatal("unknown preset gpt2");
    c.max_seq_len = 2048;
    GPT m;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 1);
    Rng r;
    rng_init(&r, 4);
    enum { GB = 8, STEPS = 4, TMAX = 2048 };
    gpt_cache_reserve(&m, GB + 1, TMAX);
    int *src = xcalloc(TMAX, sizeof(int));
    for (int t = 0; t < TMAX; t++) src[t] = (int)rng_below(&r, (uint64_t)c.vocab_size);
    const int *pp[1] = {src};
    int plen = TMAX - STEPS;
    double t0 = time_now();
    gpt_cache_prefill(&m, 1, pp, &plen); /* slot 0 */
    printf("== decode GPT-2 124M at batch %d, cache positions 128..2048 (prefill of %d tokens: "
           "%.1f s)\n", GB, plen, time_now() - t0);
    int pos[] = {128, 512, 1024, 2048}, slots[GB], toks[GB];
    double prev = 0;
    for (int k = 0; k < 4; k++) {
        int start = pos[k] - STEPS;
        double best = 1e30;
        for (int it = 0; it <= iters; it++) {
            for (int b = 0; b < GB; b++) gpt_cache_copy_slot(&m, b + 1, 0, start), slots[b] = b + 1;
            for (int s = 0; s < STEPS; s++) {
                for (int b = 0; b < GB; b++) toks[b] = src[start + s];
                double t1 = time_now();
                gpt_cache_decode(&m, GB, slots, toks);
                double dt = time_now() - t1;
                if (it > 0 && dt < best) best = dt; /* the fastest single step */
            }
        }
        if (k == 0) printf("position %4d: %.2f ms per step\n", pos[k], best * 1e3);
        else
            printf("position %4d: %.2f ms per step (+%.2f ms per 1k positions since %d)\n", pos[k],
                   best * 1e3, (best - prev) * 1e3 * 1000.0 / (pos[k] - pos[k - 1]), pos[k - 1]);
        printf("RESULT\tdecode.gpt2.pos%d.step_ms\t%.3f\tms\n", pos[k], best * 1e3);
        prev = best;
    }
    free(src);
}

// ----------------------------------------------------------------------------
// smol: the Llama family at SmolLM2-135M's shape (gpt.c's preset "smol"; random weights),
// against bench/torch_llama.py at the same shapes: train 4 x 256, generate 8 prompts of
// 16 + 48 new tokens. One measurement per figure (the best of `iters` after a warm-up).

enum { SMOL_TRAIN_B = 4, SMOL_TRAIN_T = 256, SMOL_GEN_B = 8, SMOL_GEN_P = 16, SMOL_GEN_NEW = 48 };

/* GEMM FLOPs of one Llama layer's projections per token: q, k, v, o and the SwiGLU MLP. */
static double smol_layer_flops(const GPTConfig *c) {
    double C = c->n_embd, hd = c->head_dim ? c->head_dim : c->n_embd / c->n_head;
    double q = c->n_head * hd, kv = c->n_kv_head * hd;
    return 2.0 * (C * q + 2.0 * C * kv + q * C + 3.0 * C * c->d_ff);
}

/* Bytes of weights one decode step reads: the trunk's projections and the LM head (the
 * KV cache and the norms are left out, as in bench_one, so the bound is optimistic). */
static double smol_weight_bytes(const GPTConfig *c) {
    return 4.0 * (c->n_layer * smol_layer_flops(c) / 2.0 + (double)c->vocab_size * c->n_embd);
}

static void smol_train(GPT *m, Rng *r, int iters) {
    const GPTConfig *c = &m->config;
    int B = SMOL_TRAIN_B, T = SMOL_TRAIN_T;
    gpt_reserve(m, B, T);
    int *tokens = xcalloc((size_t)B * T, sizeof(int)), *targets = xcalloc((size_t)B * T, sizeof(int));
    float *dlp = xalloc_floats((size_t)B * T);
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int)rng_below(r, (uint64_t)c->vocab_size);
        targets[i] = (int)rng_below(r, (uint64_t)c->vocab_size);
        dlp[i] = -1.0f / (B * T);
    }
    double fwd, own, blas;
    double best = time_steps_paths(m, tokens, targets, dlp, B, T, iters, &fwd, &own, &blas);
    double hd = c->head_dim ? c->head_dim : c->n_embd / c->n_head;
    double att = (double)B * att_entries(T) * c->n_head * hd, BT = (double)B * T;
    double fl = 3.0 * (c->n_layer * (BT * smol_layer_flops(c) + 4.0 * att) +
                       2.0 * BT * c->n_embd * c->vocab_size);
    printf("train %dx%d: step %.1f ms (forward+head %.1f ms), %.0f tokens/s, %.1f GFLOP/s\n", B, T,
           best * 1e3, fwd * 1e3, B * T / best, fl / best / 1e9);
    printf("RESULT\tmodel.smol.train.ms\t%.3f\tms\n", best * 1e3);
    printf("RESULT\tmodel.smol.train.tokens_per_s\t%.1f\ttokens/s\n", B * T / best);
    printf("RESULT\tmodel.smol.train.gflops\t%.3f\tGFLOP/s\n", fl / best / 1e9);
    print_gemm_paths("smol", own, blas, ops_gemm_own(-1));
    free(tokens), free(targets), free(dlp);
}

/* generate() as a sampler runs it, then the decode steps alone against the time to read
 * the weights once per step at the measured read bandwidth */
static void smol_generate(GPT *m, Rng *r, int iters) {
    const GPTConfig *c = &m->config;
    int GB = SMOL_GEN_B, P = SMOL_GEN_P, NEW = SMOL_GEN_NEW;
    int *pbuf = xcalloc((size_t)GB * P, sizeof(int)), *plens = xcalloc((size_t)GB, sizeof(int));
    const int **prompts = xcalloc((size_t)GB, sizeof(int *));
    int *out = xcalloc((size_t)GB * NEW, sizeof(int)), *lens = xcalloc((size_t)GB, sizeof(int));
    int *slots = xcalloc((size_t)GB, sizeof(int)), *toks = xcalloc((size_t)GB, sizeof(int));
    float *lps = xalloc_floats((size_t)GB * NEW);
    uint64_t *ids = xcalloc((size_t)GB, sizeof(uint64_t));
    for (int b = 0; b < GB; b++) {
        for (int t = 0; t < P; t++) pbuf[b * P + t] = (int)rng_below(r, (uint64_t)c->vocab_size);
        prompts[b] = pbuf + b * P, plens[b] = P, ids[b] = (uint64_t)b;
    }
    GenParams gp = {.max_new_tokens = NEW, .eos_id = -1, .temperature = 1.0f, .top_k = 0,
                    .top_p = 1.0f, .seed = 5};
    char err[ERRBUF_LEN];
    double best = 1e30, step = 1e30;
    for (int it = 0; it <= iters; it++) {
        double t0 = time_now();
        if (generate(m, &gp, GB, prompts, plens, ids, ids, out, lps, lens, err) != 0) fatal("%s", err);
        double dt = time_now() - t0;
        if (it > 0 && dt < best) best = dt;
    }
    for (int it = 0; it <= iters; it++) {
        gpt_cache_prefill(m, GB, prompts, plens);
        for (int b = 0; b < GB; b++) slots[b] = b, toks[b] = out[b * NEW];
        double t0 = time_now();
        for (int t = 1; t < NEW; t++) {
            gpt_cache_decode(m, GB, slots, toks);
            for (int b = 0; b < GB; b++) toks[b] = out[b * NEW + t];
        }
        double dt = (time_now() - t0) / (NEW - 1);
        if (it > 0 && dt < step) step = dt;
    }
    /* m->grads: 4 x num_params bytes, touched by the training step before */
    double bw1 = read_gbs(m->grads, m->num_params, 1, 3), bw4 = read_gbs(m->grads, m->num_params, 4, 3);
    double bw = bw1 > bw4 ? bw1 : bw4, wbytes = smol_weight_bytes(c), bound = wbytes / (bw * 1e9);
    printf("generate %d x (%d prompt + %d new): %.1f ms, %.0f new tokens/s\n", GB, P, NEW,
           best * 1e3, GB * NEW / best);
    printf("decode at batch %d: %.2f ms per token step; weights read per step %.1f MB; read "
           "bandwidth %.1f GB/s (1 stream per thread), %.1f GB/s (4) -> bound %.2f ms, decode at "
           "%.0f%% of it\n",
           GB, step * 1e3, wbytes / 1e6, bw1, bw4, bound * 1e3, 100.0 * bound / step);
    printf("RESULT\tmodel.smol.generate.ms\t%.3f\tms\n", best * 1e3);
    printf("RESULT\tmodel.smol.generate.tokens_per_s\t%.1f\ttokens/s\n", GB * NEW / best);
    printf("RESULT\tmodel.smol.decode.step_ms\t%.3f\tms\n", step * 1e3);
    printf("RESULT\tmodel.smol.decode.weight_mb\t%.1f\tMB\n", wbytes / 1e6);
    printf("RESULT\tmodel.smol.decode.read_gbs\t%.2f\tGB/s\n", bw);
    printf("RESULT\tmodel.smol.decode.pct_of_bandwidth\t%.1f\t%%\n", 100.0 * bound / step);
    free(pbuf), free(plens), free(prompts), free(out), free(lens), free(slots), free(toks);
    free(lps), free(ids);
}

static void bench_smol(int iters) {
    GPTConfig c;
    if (gpt_config_preset("smol", &c) != 0) fatal("no preset smol");
    GPT m;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 1);
    gpt_alloc_grads(&m);
    Rng r;
    rng_init(&r, 2);
    printf("== smol (llama): V=%d L=%d NH=%d NKV=%d C=%d F=%d, %.1fM parameters\n", c.vocab_size,
           c.n_layer, c.n_head, c.n_kv_head, c.n_embd, c.d_ff, (double)m.num_params / 1e6);
    smol_train(&m, &r, iters);
    smol_generate(&m, &r, iters);
    gpt_free(&m);
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    int iters = argc > 2 ? atoi(argv[2]) : 3;
    if (iters < 1) iters = 1;
    const char *core = ops_blas_setup(0);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("OpenBLAS core %s (%s), %d threads\n", core,
           ct ? "OPENBLAS_CORETYPE preset" : "OpenBLAS's own detection", ops_blas_threads());
    const char *absent = bench_gemm_absent_reason();
    if (absent) printf("gemm.c: %s; the training step runs OpenBLAS for every product\n", absent);
    else printf("the training step's GEMMs by default: %s\n", ops_gemm_own(-1) ? "gemm.c" : "OpenBLAS");
    printf("RESULT\tmodel.core\t%s\tname\n", core);
    printf("RESULT\tmodel.gemm_c\t%d\tflag\n", absent ? 0 : 1);
    printf("RESULT\tmodel.gemm_default\t%s\tname\n", ops_gemm_own(-1) ? "gemm.c" : "OpenBLAS");
    if (absent) printf("RESULT\tmodel.gemm_c_absent\t%s\ttext\n", absent);
    if (strcmp(which, "decode") == 0 || strcmp(which, "long") == 0) {
        /* decode [iters] [gpt2|smol]: that preset's fp32 vs bf16 step alone (no long run) */
        const char *only = argc > 3 && strcmp(which, "decode") == 0 ? argv[3] : NULL;
        if (strcmp(which, "decode") == 0) {
            if (!only || strcmp(only, "gpt2") == 0) bench_decode_precision("gpt2", iters);
            if (!only || strcmp(only, "smol") == 0) bench_decode_precision("smol", iters);
        }
        if (!only) bench_long_context(iters);
        return 0;
    }
    if (strcmp(which, "smol") == 0) { /* the Llama shape: its own function, not in "all" */
        bench_smol(iters);
        return 0;
    }
    Shape shapes[] = {{"tiny", 16, 128, 16, 16, 112}, {"gpt2", 4, 64, 8, 16, 48}};
    int ran = 0;
    for (int i = 0; i < 2; i++) {
        if (strcmp(which, "all") != 0 && strcmp(which, shapes[i].name) != 0) continue;
        bench_one(&shapes[i], iters);
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "usage: bench_model [tiny|gpt2|all|smol|decode|long] [iters]\n");
        return 1;
    }
    return 0;
}
