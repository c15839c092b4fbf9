/*
 * tests/test_ops.c — the kernels of ops.c against references:
 *   - the sgemm matmul and LM head and the batch-invariant `_rows` kernels against a
 *     scalar triple loop; the `_rows` kernels bit-for-bit independent of the batch;
 *   - sgemm attention against the scalar attention (outputs and probabilities);
 *   - layernorm, GELU, log-softmax/entropy forward against double-precision formulas;
 *   - every `_backward` against central finite differences of its `_forward`, with the
 *     scalar loss sum_i r_i out_i for a fixed random projection r, plus the check that
 *     backward accumulates (running it twice doubles the gradients).
 * Dimensions are small; prints the max errors it measured.
 */
#include <cblas.h>
#include <stdint.h>

#include "ops.h"
#include "rng.h"
#include "test.h"
#include "util.h"

static Rng g_rng;

static float *rand_buf(size_t n, float scale) {
    float *p = xalloc_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = scale * rng_normal(&g_rng);
    return p;
}

#include "gradcheck.h" /* norm_err and the finite-difference gradient check */

// ----------------------------------------------------------------------------
// references

static void test_matmul_reference(void) {
    int shapes[][3] = {{1, 1, 1}, {7, 13, 29}, {33, 64, 96}, {5, 128, 384}, {64, 70, 3},
                       {9, 40, 149}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *x = rand_buf((size_t)N * C, 1.0f), *w = rand_buf((size_t)C * OC, 0.2f);
        float *b = rand_buf((size_t)OC, 1.0f);
        float *ref = xalloc_floats((size_t)N * OC), *out = xalloc_floats((size_t)N * OC);
        float *rows = xalloc_floats((size_t)N * OC);
        matmul_forward_naive(ref, x, w, b, N, C, OC);
        matmul_forward(out, x, w, b, N, C, OC);
        matmul_forward_rows(rows, x, w, b, N, C, OC);
        double e1 = norm_err(out, ref, (size_t)N * OC, 1e-6);
        double e2 = norm_err(rows, ref, (size_t)N * OC, 1e-6);
        CHECK_MSG(e1 < 2e-6, "sgemm matmul %dx%dx%d err %.3g", N, C, OC, e1);
        CHECK_MSG(e2 < 2e-6, "rows matmul %dx%dx%d err %.3g", N, C, OC, e2);
        /* without bias */
        matmul_forward_naive(ref, x, w, NULL, N, C, OC);
        matmul_forward(out, x, w, NULL, N, C, OC);
        CHECK(norm_err(out, ref, (size_t)N * OC, 1e-6) < 2e-6);
        fprintf(stderr, "    matmul %dx%dx%d: sgemm err %.2e, rows err %.2e\n", N, C, OC, e1, e2);
        free(x), free(w), free(b), free(ref), free(out), free(rows);
    }
}

static void test_lmhead_reference(void) {
    int N = 11, C = 40, V = 57;
    float *x = rand_buf((size_t)N * C, 1.0f), *wte = rand_buf((size_t)V * C, 0.3f);
    float *ref = xalloc_floats((size_t)N * V), *out = xalloc_floats((size_t)N * V);
    float *rows = xalloc_floats((size_t)N * V);
    for (int n = 0; n < N; n++)
        for (int v = 0; v < V; v++)
            ref[n * V + v] = (float)dot_d(x + (size_t)n * C, wte + (size_t)v * C, (size_t)C);
    lmhead_forward(out, x, wte, N, C, V);
    lmhead_forward_rows(rows, x, wte, N, C, V);
    CHECK(norm_err(out, ref, (size_t)N * V, 1e-6) < 2e-6);
    CHECK(norm_err(rows, ref, (size_t)N * V, 1e-6) < 2e-6);
    free(x), free(wte), free(ref), free(out), free(rows);
}

/* The `_rows` kernels: a row's output is bit-identical whatever the batch around it.
 * (OpenBLAS sgemm is not: the same check on matmul_forward is printed, not required.) */
static void test_rows_batch_invariance(void) {
    /* OC = 200: 48-wide panels + an 8-column edge; 149 = 2 x 48 + 32 + 16 + 5
     * (every panel width of the kernel) */
    for (int oc = 0; oc < 2; oc++) {
        int C = 96, OC = oc ? 149 : 200, V = 300, NMAX = 19;
        float *x = rand_buf((size_t)NMAX * C, 1.0f), *w = rand_buf((size_t)C * OC, 0.2f);
        float *b = rand_buf((size_t)OC, 1.0f), *wte = rand_buf((size_t)V * C, 0.2f);
        float *alone = xalloc_floats((size_t)OC > (size_t)V ? (size_t)OC : (size_t)V);
        float *batch = xalloc_floats((size_t)NMAX * (OC > V ? OC : V));
        int bad_rows = 0, bad_lm = 0, bad_sgemm = 0;
        for (int N = 1; N <= NMAX; N++) {
            matmul_forward_rows(batch, x, w, b, N, C, OC);
            for (int r = 0; r < N; r++) {
                matmul_forward_rows(alone, x + (size_t)r * C, w, b, 1, C, OC);
                bad_rows += memcmp(alone, batch + (size_t)r * OC, (size_t)OC * sizeof(float)) != 0;
            }
            lmhead_forward_rows(batch, x, wte, N, C, V);
            for (int r = 0; r < N; r++) {
                lmhead_forward_rows(alone, x + (size_t)r * C, wte, 1, C, V);
                bad_lm += memcmp(alone, batch + (size_t)r * V, (size_t)V * sizeof(float)) != 0;
            }
            matmul_forward(batch, x, w, b, N, C, OC);
            for (int r = 0; r < N; r++) {
                matmul_forward(alone, x + (size_t)r * C, w, b, 1, C, OC);
                bad_sgemm += memcmp(alone, batch + (size_t)r * OC, (size_t)OC * sizeof(float)) != 0;
            }
        }
        CHECK_EQ_INT(bad_rows, 0);
        CHECK_EQ_INT(bad_lm, 0);
        fprintf(stderr,
                "    OC %d: sgemm rows differing from the row computed alone: %d "
                "of %d\n",
                OC, bad_sgemm, NMAX * (NMAX + 1) / 2);
        free(x), free(w), free(b), free(wte), free(alone), free(batch);
    }
}

/* The `_rows` kernels split columns over the OpenBLAS thread count: the results
 * must be bit-identical for 1, 2 and 3 threads (shapes above the pool's work
 * threshold). */
static void test_rows_thread_invariance(void) {
    int before = ops_blas_threads();
    int N = 9, C = 256, OC = 650, V = 3001;
    float *x = rand_buf((size_t)N * C, 1.0f), *w = rand_buf((size_t)C * OC, 0.1f);
    float *b = rand_buf((size_t)OC, 1.0f), *wte = rand_buf((size_t)V * C, 0.1f);
    float *ref = xalloc_floats((size_t)N * OC), *out = xalloc_floats((size_t)N * OC);
    float *lref = xalloc_floats((size_t)N * V), *lout = xalloc_floats((size_t)N * V);
    float *nv = xalloc_floats((size_t)N * OC);
    ops_blas_setup(1);
    matmul_forward_rows(ref, x, w, b, N, C, OC);
    lmhead_forward_rows(lref, x, wte, N, C, V);
    matmul_forward_naive(nv, x, w, b, N, C, OC);
    CHECK(norm_err(ref, nv, (size_t)N * OC, 1e-6) < 2e-6);
    for (int th = 2; th <= 3; th++) {
        ops_blas_setup(th);
        matmul_forward_rows(out, x, w, b, N, C, OC);
        lmhead_forward_rows(lout, x, wte, N, C, V);
        CHECK_MSG(memcmp(out, ref, (size_t)N * OC * sizeof(float)) == 0, "matmul, %d threads", th);
        CHECK_MSG(memcmp(lout, lref, (size_t)N * V * sizeof(float)) == 0, "lm head, %d threads",
                  th);
    }
    ops_blas_setup(before);
    free(x), free(w), free(b), free(wte), free(ref), free(out), free(lref), free(lout), free(nv);
}

/* The packed weight of the decode path: matmul_pack_rows lays each whole 16-column panel
 * out row after row, and matmul_forward_rows_packed gives the same bits as the (C,OC)
 * kernel for every batch size, with and without bias, with 1-3 threads, on widths with
 * every kind of edge (40 = 32 + 8; 149 = 3 x 48 + 5; 650 = 13 x 48 + 32 + 10, above the
 * pool threshold; 2304 the 124M QKV width). */
static void test_rows_packed(void) {
    int before = ops_blas_threads();
    int shapes[][2] = {{96, 40}, {96, 149}, {256, 650}, {64, 2304}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int C = shapes[s][0], OC = shapes[s][1], NMAX = 17;
        size_t np = matmul_packed_floats(C, OC);
        CHECK((int)np >= C * (OC / 16 * 16));
        float *x = rand_buf((size_t)NMAX * C, 1.0f), *w = rand_buf((size_t)C * OC, 0.2f);
        float *b = rand_buf((size_t)OC, 1.0f), *pk = xalloc_floats(np);
        float *ref = xalloc_floats((size_t)NMAX * OC), *out = xalloc_floats((size_t)NMAX * OC);
        matmul_pack_rows(pk, w, C, OC);
        int bad_layout = 0;
        for (int p = 0; p < OC / 16; p++)
            for (int k = 0; k < C; k++)
                for (int j = 0; j < 16; j++)
                    bad_layout += pk[((size_t)p * C + k) * 16 + j] != w[(size_t)k * OC + p * 16 + j];
        CHECK_EQ_INT(bad_layout, 0);
        int bad = 0;
        for (int th = 1; th <= 3; th++) {
            ops_blas_setup(th);
            for (int N = 1; N <= NMAX; N += (N < 9 ? 1 : 4))
                for (int bias = 0; bias < 2; bias++) {
                    matmul_forward_rows(ref, x, w, bias ? b : NULL, N, C, OC);
                    matmul_forward_rows_packed(out, x, pk, w, bias ? b : NULL, N, C, OC);
                    bad += memcmp(out, ref, (size_t)N * OC * sizeof(float)) != 0;
                }
        }
        CHECK_MSG(bad == 0, "packed matmul %dx%d: %d calls differ from the (C,OC) kernel", C, OC,
                  bad);
        free(x), free(w), free(b), free(pk), free(ref), free(out);
    }
    ops_blas_setup(before);
}

/* The decode copy's LM head: matmul_pack_cols of the (V,C) embedding read by the panel
 * kernel gives matmul_forward_rows's bits on wte^T for every logit, the V % 16 edge rows
 * included (read from wte), for every batch size and 1-3 threads; the bf16 copy gives the
 * fp32 copy's bits on the rounded embedding; and a row's logits do not depend on the rows
 * beside it. V = 16 x 40 + 7 (above the pool threshold at C 96), C 96 and 40 (C % 16 = 8). */
static void test_lmhead_packed(void) {
    int before = ops_blas_threads();
    int shapes[][2] = {{96, 647}, {40, 53}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int C = shapes[s][0], V = shapes[s][1], NMAX = 11;
        size_t np = matmul_packed_floats(C, V);
        float *x = rand_buf((size_t)NMAX * C, 1.0f), *wte = rand_buf((size_t)V * C, 0.2f);
        float *wr = xalloc_floats((size_t)V * C), *wt = xalloc_floats((size_t)C * V);
        float *wrt = xalloc_floats((size_t)C * V), *pk = xalloc_floats(np);
        float *pkr = xalloc_floats(np);
        uint16_t *ph = xcalloc(np, sizeof(uint16_t));
        float *ref = xalloc_floats((size_t)NMAX * V), *out = xalloc_floats((size_t)NMAX * V);
        float *one = xalloc_floats((size_t)V);
        for (int v = 0; v < V; v++)
            for (int k = 0; k < C; k++) {
                float w = wte[(size_t)v * C + k];
                wr[(size_t)v * C + k] = bf16_to_f32(bf16_from_f32(w));
                wt[(size_t)k * V + v] = w, wrt[(size_t)k * V + v] = wr[(size_t)v * C + k];
            }
        int bad = 0, bad_bf = 0, bad_row = 0;
        for (int th = 1; th <= 3; th++) {
            ops_blas_setup(th);
            matmul_pack_cols(pk, wte, C, V);
            matmul_pack_cols(pkr, wr, C, V);
            matmul_pack_cols_bf16(ph, wte, C, V);
            for (int N = 1; N <= NMAX; N += (N < 9 ? 1 : 2)) {
                matmul_forward_rows(ref, x, wt, NULL, N, C, V);
                lmhead_forward_rows_packed(out, x, pk, wte, N, C, V);
                bad += memcmp(out, ref, (size_t)N * V * sizeof(float)) != 0;
                lmhead_forward_rows_packed(ref, x, pkr, wr, N, C, V);
                lmhead_forward_rows_packed_bf16(out, x, ph, wte, N, C, V);
                bad_bf += memcmp(out, ref, (size_t)N * V * sizeof(float)) != 0;
                lmhead_forward_rows_packed(out, x, pk, wte, 1, C, V);
                matmul_forward_rows(one, x, wt, NULL, 1, C, V);
                bad_row += memcmp(out, one, (size_t)V * sizeof(float)) != 0;
            }
        }
        CHECK_MSG(bad == 0, "packed LM head C %d V %d: %d calls differ from the panel kernel on wte^T",
                  C, V, bad);
        CHECK_MSG(bad_bf == 0, "bf16 packed LM head C %d V %d: %d calls differ from fp32 on the "
                  "rounded weights", C, V, bad_bf);
        CHECK_EQ_INT(bad_row, 0);
        /* the bf16 rounding is real */
        lmhead_forward_rows_packed(ref, x, pk, wte, 1, C, V);
        lmhead_forward_rows_packed_bf16(out, x, ph, wte, 1, C, V);
        CHECK(memcmp(out, ref, (size_t)V * sizeof(float)) != 0);
        free(x), free(wte), free(wr), free(wt), free(wrt), free(pk), free(pkr), free(ph);
        free(ref), free(out), free(one);
    }
    ops_blas_setup(before);
}

/* The training kernels split rows, columns or (b, h) pairs over the pool: the forward
 * and backward of each must give the same bits with 1, 2 and 3 threads (shapes above the
 * pool's size threshold, widths that are not multiples of the 16-column groups, T over
 * one causal block). */
#define TI_N 300
#define TI_C 136
#define TI_B 3
#define TI_T 80
#define TI_AC 48
#define TI_NH 3
#define TI_V 400
typedef struct {
    float *ln, *mean, *rstd, *dln_in, *dlnw, *dlnb; /* layernorm */
    float *dmm_in, *dmmw, *dmmb;                     /* matmul_backward (OC = TI_C) */
    float *att_out, *att, *dqkv;                     /* attention */
    float *gelu, *dgelu, *res, *enc;                 /* flat ops, embedding */
    float *lp, *ent, *lse, *dlogits;                 /* log-softmax */
} TrainOut;

static void train_ops_run(TrainOut *o, int threads) {
    static float *x, *w, *b, *dout, *qkv, *datt_out, *scratch, *logits, *dlp, *dent;
    static int tokens[TI_N], targets[TI_N];
    size_t NC = (size_t)TI_N * TI_C, nq = (size_t)TI_B * TI_T * 3 * TI_AC;
    if (!x) {
        x = rand_buf(NC, 2.0f), w = rand_buf((size_t)TI_C * TI_C, 0.1f), b = rand_buf(TI_C, 1.0f);
        dout = rand_buf(NC, 1.0f), qkv = rand_buf(nq, 1.0f);
        datt_out = rand_buf((size_t)TI_B * TI_T * TI_AC, 1.0f);
        scratch = xalloc_floats((size_t)3 * TI_T * TI_T);
        logits = rand_buf((size_t)TI_N * TI_V, 3.0f);
        dlp = rand_buf(TI_N, 1.0f), dent = rand_buf(TI_N, 1.0f);
        for (int i = 0; i < TI_N; i++) {
            tokens[i] = (int)rng_below(&g_rng, TI_V);
            targets[i] = i % 7 == 3 ? -1 : (int)rng_below(&g_rng, TI_V);
        }
    }
    ops_blas_setup(threads);
    o->ln = xalloc_floats(NC), o->mean = xalloc_floats(TI_N), o->rstd = xalloc_floats(TI_N);
    o->dln_in = xcalloc(NC, sizeof(float)), o->dlnw = xcalloc(TI_C, sizeof(float));
    o->dlnb = xcalloc(TI_C, sizeof(float));
    layernorm_forward(o->ln, o->mean, o->rstd, x, w, b, TI_N, TI_C);
    layernorm_backward(o->dln_in, o->dlnw, o->dlnb, dout, x, w, o->mean, o->rstd, TI_N, TI_C);
    o->dmm_in = xalloc_floats(NC), o->dmmw = xcalloc((size_t)TI_C * TI_C, sizeof(float));
    o->dmmb = xcalloc(TI_C, sizeof(float));
    matmul_backward(o->dmm_in, o->dmmw, o->dmmb, dout, x, w, TI_N, TI_C, TI_C);
    o->att_out = xalloc_floats((size_t)TI_B * TI_T * TI_AC);
    o->att = xalloc_floats((size_t)TI_B * TI_NH * TI_T * TI_T), o->dqkv = xalloc_floats(nq);
    attention_forward(o->att_out, o->att, qkv, TI_B, TI_T, TI_AC, TI_NH);
    attention_backward(o->dqkv, scratch, threads, datt_out, qkv, o->att, TI_B, TI_T, TI_AC,
                       TI_NH);
    o->gelu = xalloc_floats(NC), o->dgelu = xalloc_floats(NC), o->res = xalloc_floats(NC);
    gelu_forward(o->gelu, x, NC);
    gelu_backward(o->dgelu, x, dout, NC);
    residual_forward(o->res, x, dout, NC);
    o->enc = xalloc_floats(NC);
    encoder_forward(o->enc, tokens, logits, x, 1, TI_N, TI_C); /* wte: logits as (V', C) */
    o->lp = xalloc_floats(TI_N), o->ent = xalloc_floats(TI_N), o->lse = xalloc_floats(TI_N);
    o->dlogits = xalloc_floats((size_t)TI_N * TI_V);
    logprob_forward(o->lp, o->ent, o->lse, logits, targets, 0.8f, TI_N, TI_V);
    logprob_backward(o->dlogits, dlp, dent, logits, o->lse, o->ent, targets, 0.8f, TI_N, TI_V);
}

static void train_out_free(TrainOut *o) {
    float **f = (float **)o;
    for (size_t i = 0; i < sizeof *o / sizeof(float *); i++) free(f[i]);
}

static void test_train_thread_invariance(void) {
    int before = ops_blas_threads();
    size_t NC = (size_t)TI_N * TI_C, nq = (size_t)TI_B * TI_T * 3 * TI_AC;
    size_t sizes[] = {NC, TI_N, TI_N, NC, TI_C, TI_C, NC, (size_t)TI_C * TI_C, TI_C,
                      (size_t)TI_B * TI_T * TI_AC, (size_t)TI_B * TI_NH * TI_T * TI_T, nq,
                      NC, NC, NC, NC, TI_N, TI_N, TI_N, (size_t)TI_N * TI_V};
    const char *names[] = {"ln out", "ln mean", "ln rstd", "ln dinp", "ln dweight", "ln dbias",
                           "mm dinp", "mm dweight", "mm dbias", "att out", "att probs",
                           "att dqkv", "gelu", "gelu dinp", "residual", "embedding",
                           "logprob", "entropy", "lse", "dlogits"};
    CHECK(sizeof sizes / sizeof sizes[0] == sizeof(TrainOut) / sizeof(float *));
    TrainOut ref, out;
    train_ops_run(&ref, 1);
    for (int th = 2; th <= 3; th++) {
        train_ops_run(&out, th);
        float **r = (float **)&ref, **o = (float **)&out;
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            CHECK_MSG(memcmp(r[i], o[i], sizes[i] * sizeof(float)) == 0, "%s, %d threads",
                      names[i], th);
        train_out_free(&out);
    }
    train_out_free(&ref);
    ops_blas_setup(before);
}

static void test_attention_reference(void) {
    /* T > OPS_ATT_BLOCK exercises the causal blocks (full, partial) */
    int shapes[][4] = {{2, 9, 24, 3}, {1, 1, 8, 2}, {3, 17, 32, 4}, {1, 150, 16, 2}, {2, 128, 8, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], C = shapes[s][2], NH = shapes[s][3];
        float *qkv = rand_buf((size_t)B * T * 3 * C, 1.0f);
        float *out = xalloc_floats((size_t)B * T * C), *ref = xalloc_floats((size_t)B * T * C);
        size_t na = (size_t)B * NH * T * T;
        float *att = xalloc_floats(na), *att_ref = xalloc_floats(na);
        attention_forward(out, att, qkv, B, T, C, NH);
        attention_forward_naive(ref, att_ref, qkv, B, T, C, NH);
        double eo = norm_err(out, ref, (size_t)B * T * C, 1e-6);
        double ea = norm_err(att, att_ref, na, 1e-6);
        CHECK_MSG(eo < 2e-6 && ea < 2e-6, "attention %dx%dx%dx%d: out err %.3g att err %.3g", B,
                  T, C, NH, eo, ea);
        /* rows of att sum to 1, zero above the diagonal */
        int ok = 1;
        for (size_t bh = 0; bh < (size_t)B * NH; bh++)
            for (int t = 0; t < T; t++) {
                double sum = 0;
                for (int u = 0; u < T; u++) {
                    float p = att[(bh * T + t) * T + u];
                    if (u > t && p != 0.0f) ok = 0;
                    sum += p;
                }
                if (fabs(sum - 1.0) > 1e-5) ok = 0;
            }
        CHECK(ok);
        fprintf(stderr, "    attention %dx%dx%dx%d: out err %.2e, att err %.2e\n", B, T, C, NH, eo, ea);
        free(qkv), free(out), free(ref), free(att), free(att_ref);
    }
}

/* attention_qk_row / attention_pv_row (four keys, 32 outputs at a time) against the plain
 * per-key and per-output loops they replace: the same bits, for head sizes with and
 * without a multiple of 8 or 32 and any key count. */
static void test_attention_row_halves(void) {
    int hds[] = {4, 12, 64, 80, 128}, ns[] = {1, 3, 4, 5, 8, 37, 300};
    int same_qk = 1, same_pv = 1;
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++) {
            int hd = hds[a], n = ns[b];
            float *q = rand_buf((size_t)hd, 1.0f), *K = rand_buf((size_t)n * hd, 1.0f);
            float *V = rand_buf((size_t)n * hd, 1.0f), *p = rand_buf((size_t)n, 1.0f);
            float *got = xalloc_floats((size_t)(n > hd ? n : hd)), *want = xalloc_floats((size_t)n);
            float *o = xalloc_floats((size_t)hd), *ow = xalloc_floats((size_t)hd);
            float scale = 0.37f, inv = 0.81f;
            attention_qk_row(got, q, K, n, hd, scale);
            for (int s = 0; s < n; s++) {
                float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                for (int i = 0; i < hd; i++) acc[i % 8] += q[i] * K[(size_t)s * hd + i];
                want[s] = (((acc[0] + acc[4]) + (acc[2] + acc[6])) +
                           ((acc[1] + acc[5]) + (acc[3] + acc[7]))) * scale;
            }
            same_qk &= memcmp(got, want, (size_t)n * sizeof(float)) == 0;
            attention_pv_row(o, p, inv, V, n, hd);
            for (int i = 0; i < hd; i++) ow[i] = 0.0f;
            for (int s = 0; s < n; s++) {
                float ps = p[s] * inv;
                for (int i = 0; i < hd; i++) ow[i] += ps * V[(size_t)s * hd + i];
            }
            same_pv &= memcmp(o, ow, (size_t)hd * sizeof(float)) == 0;
            free(q), free(K), free(V), free(p), free(got), free(want), free(o), free(ow);
        }
    CHECK_MSG(same_qk, "attention_qk_row differs from the per-key loop");
    CHECK_MSG(same_pv, "attention_pv_row differs from the per-output loop");
}

/* the decode kernel: one query row against a (head, position, hs) cache */
static void test_attention_row_reference(void) {
    int T = 11, C = 24, NH = 3, hs = 8;
    float *qkv = rand_buf((size_t)T * 3 * C, 1.0f);
    float *ref = xalloc_floats((size_t)T * C), *att = xalloc_floats((size_t)NH * T * T);
    attention_forward_naive(ref, att, qkv, 1, T, C, NH);
    int Tc = 16; /* cache capacity larger than used */
    float *kc = xalloc_floats((size_t)NH * Tc * hs), *vc = xalloc_floats((size_t)NH * Tc * hs);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < hs; i++) {
                kc[((size_t)h * Tc + t) * hs + i] = qkv[(size_t)t * 3 * C + C + h * hs + i];
                vc[((size_t)h * Tc + t) * hs + i] = qkv[(size_t)t * 3 * C + 2 * C + h * hs + i];
            }
    float out[24], scores[16];
    double worst = 0;
    for (int t = 0; t < T; t++) {
        attention_row_forward(out, scores, qkv + (size_t)t * 3 * C, kc, vc, t + 1, Tc, C, NH);
        worst = fmax(worst, norm_err(out, ref + (size_t)t * C, (size_t)C, 1e-6));
    }
    CHECK_MSG(worst < 2e-6, "attention_row_forward err %.3g", worst);
    free(qkv), free(ref), free(att), free(kc), free(vc);
}

/* The GELU passes run vector lanes (16 with AVX-512, 8 with AVX2) and a scalar tail:
 * every element must get the bits of a one-element call (the scalar code), wherever it
 * falls, including NaN, infinities and both ends of exp's clamp. */
static void test_gelu_lanes(void) {
    enum { N = 77 };
    float *x = rand_buf(N, 4.0f), *d = rand_buf(N, 1.0f);
    float sp[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 60.0f, -60.0f, 1e-30f, -9.5f, 3e4f};
    for (int i = 0; i < (int)(sizeof sp / sizeof sp[0]); i++) x[5 * i + 3] = sp[i];
    float *y = xalloc_floats(N), *g = xalloc_floats(N);
    gelu_forward(y, x, N);
    gelu_backward(g, x, d, N);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        float y1, g1;
        gelu_forward(&y1, x + i, 1);
        gelu_backward(&g1, x + i, d + i, 1);
        bad += memcmp(&y1, y + i, sizeof y1) != 0 || memcmp(&g1, g + i, sizeof g1) != 0;
    }
    CHECK_MSG(bad == 0, "%d of %d GELU values differ between vector lanes and scalar", bad, N);
    free(x), free(d), free(y), free(g);
}

/* logprob_backward's rows run vector lanes and a scalar tail; an element's gradient
 * depends only on its logit and the row's lse / entropy, so each must match a one-logit
 * call on the same logit (which adds the target term: added here in the same float op). */
static void test_logprob_lanes(void) {
    enum { V = 45 };
    float *x = rand_buf(V, 30.0f), *dx = xalloc_floats(V);
    x[7] = -INFINITY, x[18] = -1e4f;
    float lse = 2.5f, H = 1.75f, temp = 0.7f, inv_t = 1.0f / temp;
    float dlps[2] = {-0.75f, 0.3f}, dents[2] = {0.0f, 0.4f};
    int bad = 0;
    for (int c = 0; c < 2; c++) {
        int t = V - 1;
        logprob_backward(dx, &dlps[c], &dents[c], x, &lse, &H, &t, temp, 1, V);
        for (int i = 0; i < V - 1; i++) {
            float one;
            int t1 = 0;
            logprob_backward(&one, &dlps[c], &dents[c], x + i, &lse, &H, &t1, temp, 1, 1);
            float want = dx[i] + dlps[c] * inv_t;
            bad += memcmp(&want, &one, sizeof one) != 0;
        }
    }
    CHECK_MSG(bad == 0, "%d logprob gradients differ between vector lanes and scalar", bad);
    free(x), free(dx);
}

static void test_pointwise_reference(void) {
    /* GELU against the formula in double */
    float xs[] = {-6.0f, -3.0f, -1.0f, -0.5f, 0.0f, 0.3f, 1.0f, 2.5f, 8.0f};
    float out[9];
    gelu_forward(out, xs, 9);
    for (int i = 0; i < 9; i++) {
        double x = xs[i];
        double ref = 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
        CHECK_NEAR(out[i], ref, 1e-6, 1e-6);
    }
    /* layernorm: output has mean 0 and variance ~1 before the affine part */
    int N = 3, C = 50;
    float *x = rand_buf((size_t)N * C, 3.0f), *y = xalloc_floats((size_t)N * C);
    float *w = xalloc_floats((size_t)C), *b = xalloc_floats((size_t)C);
    float mean[3], rstd[3];
    for (int i = 0; i < C; i++) w[i] = 1.0f;
    for (int i = 0; i < N * C; i++) x[i] += 5.0f;
    layernorm_forward(y, mean, rstd, x, w, b, N, C);
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0, ym = 0, yv = 0;
        for (int i = 0; i < C; i++) m += x[n * C + i];
        m /= C;
        for (int i = 0; i < C; i++) v += (x[n * C + i] - m) * (x[n * C + i] - m);
        v /= C;
        for (int i = 0; i < C; i++) ym += y[n * C + i];
        ym /= C;
        for (int i = 0; i < C; i++) yv += (y[n * C + i] - ym) * (y[n * C + i] - ym);
        yv /= C;
        CHECK_NEAR(mean[n], m, 1e-5, 1e-6);
        CHECK_NEAR(rstd[n], 1.0 / sqrt(v + 1e-5), 0, 1e-5);
        CHECK_NEAR(ym, 0.0, 1e-5, 0);
        CHECK_NEAR(yv, v / (v + 1e-5), 1e-5, 0);
    }
    free(x), free(y), free(w), free(b);
}

static void test_logprob_reference(void) {
    int N = 4, V = 37;
    float *logits = rand_buf((size_t)N * V, 3.0f);
    int targets[4] = {0, 36, -1, 11};
    float lp[4], ent[4], lse[4];
    float temps[] = {1.0f, 0.7f, 2.0f};
    for (int ti = 0; ti < 3; ti++) {
        float temp = temps[ti];
        logprob_forward(lp, ent, lse, logits, targets, temp, N, V);
        for (int n = 0; n < N; n++) {
            if (targets[n] < 0) {
                CHECK(lp[n] == 0.0f && ent[n] == 0.0f);
                continue;
            }
            double mx = -INFINITY, s = 0, h = 0;
            for (int i = 0; i < V; i++) mx = fmax(mx, (double)logits[n * V + i] / temp);
            for (int i = 0; i < V; i++) s += exp((double)logits[n * V + i] / temp - mx);
            double l = mx + log(s);
            for (int i = 0; i < V; i++) {
                double lpi = (double)logits[n * V + i] / temp - l;
                h -= exp(lpi) * lpi;
            }
            CHECK_NEAR(lp[n], (double)logits[n * V + targets[n]] / temp - l, 1e-5, 1e-6);
            CHECK_NEAR(ent[n], h, 1e-5, 1e-5);
            CHECK_NEAR(lse[n], l, 1e-5, 1e-6);
        }
    }
    /* a -inf logit (a banned token) has probability 0 and leaves everything finite */
    float row[5] = {1.0f, -INFINITY, 0.5f, 2.0f, -1.0f}, dl[5] = {0, 0, 0, 0, 0};
    int tg = 3;
    float l1, e1, s1, one = 1.0f;
    logprob_forward(&l1, &e1, &s1, row, &tg, 1.0f, 1, 5);
    double ref_s = exp(1.0) + exp(0.5) + exp(2.0) + exp(-1.0);
    CHECK_NEAR(l1, 2.0 - log(ref_s), 1e-6, 1e-6);
    CHECK(isfinite(e1) && e1 > 0.0f);
    logprob_backward(dl, &one, &one, row, &s1, &e1, &tg, 1.0f, 1, 5);
    for (int i = 0; i < 5; i++) CHECK(isfinite(dl[i]));
    CHECK(fabsf(dl[1]) < 1e-30f);
    free(logits);
}

// ----------------------------------------------------------------------------
// gradient checks, one context struct per op

typedef struct {
    int B, T, C, V, N, OC, NH;
    float temp;
    int *tokens, *targets;
    float *a, *b, *c, *d;         /* inputs (meaning per op) */
    float *da, *db, *dc, *dd;     /* their gradients */
    float *out, *out2, *r, *r2;   /* outputs and projections */
    float *s1, *s2, *s3;          /* saved intermediates / scratch */
} OpCtx;

static OpCtx *ctx_new(void) { return xcalloc(1, sizeof(OpCtx)); }
static void ctx_free(OpCtx *x) {
    free(x->tokens), free(x->targets);
    float *bufs[] = {x->a, x->b, x->c, x->d, x->da, x->db, x->dc, x->dd,
                     x->out, x->out2, x->r, x->r2, x->s1, x->s2, x->s3};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(x);
}

/* encoder: a = wte (V,C), b = wpe (T,C) */
static double enc_loss(void *p) {
    OpCtx *x = p;
    encoder_forward(x->out, x->tokens, x->a, x->b, x->B, x->T, x->C);
    return dot_d(x->out, x->r, (size_t)x->B * x->T * x->C);
}
static void enc_grad(void *p) {
    OpCtx *x = p;
    enc_loss(p);
    encoder_backward(x->da, x->db, x->r, x->tokens, x->B, x->T, x->C);
}

/* layernorm: a = inp (N,C), b = weight, c = bias */
static double ln_loss(void *p) {
    OpCtx *x = p;
    layernorm_forward(x->out, x->s1, x->s2, x->a, x->b, x->c, x->N, x->C);
    return dot_d(x->out, x->r, (size_t)x->N * x->C);
}
static void ln_grad(void *p) {
    OpCtx *x = p;
    ln_loss(p);
    layernorm_backward(x->da, x->db, x->dc, x->r, x->a, x->b, x->s1, x->s2, x->N, x->C);
}

/* matmul: a = inp (N,C), b = weight (C,OC), c = bias (OC) */
static double mm_loss(void *p) {
    OpCtx *x = p;
    matmul_forward(x->out, x->a, x->b, x->c, x->N, x->C, x->OC);
    return dot_d(x->out, x->r, (size_t)x->N * x->OC);
}
static void mm_grad(void *p) {
    OpCtx *x = p;
    mm_loss(p);
    matmul_backward(x->da, x->db, x->dc, x->r, x->a, x->b, x->N, x->C, x->OC);
}

/* lm head: a = inp (N,C), b = wte (V,C) */
static double lmh_loss(void *p) {
    OpCtx *x = p;
    lmhead_forward(x->out, x->a, x->b, x->N, x->C, x->V);
    return dot_d(x->out, x->r, (size_t)x->N * x->V);
}
static void lmh_grad(void *p) {
    OpCtx *x = p;
    lmh_loss(p);
    lmhead_backward(x->da, x->db, x->r, x->a, x->b, x->N, x->C, x->V);
}

/* attention: a = qkv (B,T,3C); s1 = att, s2 = scratch */
static double att_loss(void *p) {
    OpCtx *x = p;
    attention_forward(x->out, x->s1, x->a, x->B, x->T, x->C, x->NH);
    return dot_d(x->out, x->r, (size_t)x->B * x->T * x->C);
}
static void att_grad(void *p) {
    OpCtx *x = p;
    att_loss(p);
    attention_backward(x->da, x->s2, 1, x->r, x->a, x->s1, x->B, x->T, x->C, x->NH);
}

/* gelu: a = inp (N) */
static double gelu_loss(void *p) {
    OpCtx *x = p;
    gelu_forward(x->out, x->a, (size_t)x->N);
    return dot_d(x->out, x->r, (size_t)x->N);
}
static void gelu_grad(void *p) {
    OpCtx *x = p;
    gelu_loss(p);
    gelu_backward(x->da, x->a, x->r, (size_t)x->N);
}

/* residual: a, b (N) */
static double res_loss(void *p) {
    OpCtx *x = p;
    residual_forward(x->out, x->a, x->b, (size_t)x->N);
    return dot_d(x->out, x->r, (size_t)x->N);
}
static void res_grad(void *p) {
    OpCtx *x = p;
    res_loss(p);
    residual_backward(x->da, x->db, x->r, (size_t)x->N);
}

/* rowdot: a = inp (N,C), b = w (C), c = bias (1) */
static double rd_loss(void *p) {
    OpCtx *x = p;
    rowdot_forward(x->out, x->a, x->b, x->c, x->N, x->C);
    return dot_d(x->out, x->r, (size_t)x->N);
}
static void rd_grad(void *p) {
    OpCtx *x = p;
    rd_loss(p);
    rowdot_backward(x->da, x->db, x->dc, x->r, x->a, x->b, x->N, x->C);
}

/* logprob: a = logits (N,V); out = logprobs, out2 = entropy, s1 = lse; r, r2 */
static double lp_loss(void *p) {
    OpCtx *x = p;
    logprob_forward(x->out, x->out2, x->s1, x->a, x->targets, x->temp, x->N, x->V);
    return dot_d(x->out, x->r, (size_t)x->N) + (x->r2 ? dot_d(x->out2, x->r2, (size_t)x->N) : 0.0);
}
static void lp_grad(void *p) {
    OpCtx *x = p;
    lp_loss(p);
    logprob_backward(x->da, x->r, x->r2, x->a, x->s1, x->out2, x->targets, x->temp, x->N, x->V);
}

/* a gradient that is 1% off: the checker must see it */
static void gelu_grad_wrong(void *p) {
    OpCtx *x = p;
    gelu_grad(p);
    for (int i = 0; i < x->N; i++) x->da[i] *= 1.01f;
}

/* ops_zero, small (plain memset) and large (streaming stores from the first 64-byte
 * line, a plain head and tail): every element in range zero, the neighbours untouched. */
static void test_zero(void) {
    size_t sizes[] = {1, 4097, (size_t)5 << 21};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        float *buf = xalloc_floats(n + 8);
        for (size_t k = 0; k < n + 8; k++) buf[k] = 1.0f;
        ops_zero(buf + 3, n); /* 12 bytes off a 64-byte line */
        size_t nonzero = 0;
        for (size_t k = 3; k < n + 3; k++) nonzero += buf[k] != 0.0f;
        CHECK_MSG(nonzero == 0, "%zu floats: %zu not zeroed", n, nonzero);
        CHECK(buf[0] == 1.0f && buf[1] == 1.0f && buf[2] == 1.0f);
        for (size_t k = n + 3; k < n + 8; k++) CHECK(buf[k] == 1.0f);
        free(buf);
    }
}

static void test_grad_check_can_fail(void) {
    OpCtx *x = ctx_new();
    x->N = 40;
    x->a = rand_buf(40, 2.0f), x->da = xalloc_floats(40);
    x->out = xalloc_floats(40), x->r = rand_buf(40, 1.0f);
    GradCase gc = {"gelu-1%", 1, {x->a}, {x->da}, {40}, gelu_loss, gelu_grad_wrong, x, 1e-2f, 5e-4, 1u};
    double e = grad_check_impl(&gc, 1);
    CHECK_MSG(e > 5e-3, "a 1%% gradient error was measured as %.3g", e);
    ctx_free(x);
}

static void test_grad_ops(void) {
    double worst = 0.0;
    {
        OpCtx *x = ctx_new();
        x->B = 2, x->T = 3, x->C = 5, x->V = 7;
        x->tokens = xcalloc(6, sizeof(int));
        int toks[6] = {1, 6, 1, 0, 3, 1};
        memcpy(x->tokens, toks, sizeof toks);
        x->a = rand_buf(35, 1.0f), x->b = rand_buf(15, 1.0f);
        x->da = xalloc_floats(35), x->db = xalloc_floats(15);
        x->out = xalloc_floats(30), x->r = rand_buf(30, 1.0f);
        GradCase gc = {"encoder", 2, {x->a, x->b}, {x->da, x->db}, {35, 15}, enc_loss, enc_grad, x,
                       1e-2f, 1e-4, 0u};
        worst = fmax(worst, grad_check(&gc));
        ctx_free(x);
    }
    {
        OpCtx *x = ctx_new();
        x->N = 4, x->C = 16;
        x->a = rand_buf(64, 2.0f), x->b = rand_buf(16, 1.0f), x->c = rand_buf(16, 1.0f);
        x->da = xalloc_floats(64), x->db = xalloc_floats(16), x->dc = xalloc_floats(16);
        x->out = xalloc_floats(64), x->r = rand_buf(64, 1.0f);
        x->s1 = xalloc_floats(4), x->s2 = xalloc_floats(4);
        GradCase gc = {"layernorm", 3, {x->a, x->b, x->c}, {x->da, x->db, x->dc}, {64, 16, 16},
                       ln_loss, ln_grad, x, 1e-2f, 5e-4, 0u};
        worst = fmax(worst, grad_check(&gc));
        ctx_free(x);
    }
    {
        OpCtx *x = ctx_new();
        x->N = 5, x->C = 7, x->OC = 9;
        x->a = rand_buf(35, 1.0f), x->b = rand_buf(63, 1.0f), x->c = rand_buf(9, 1.0f);
        x->da = xalloc_floats(35), x->db = xalloc_floats(63), x->dc = xalloc_floats(9);
        x->out = xalloc_floats(45), x->r = rand_buf(45, 1.0f);
        GradCase gc = {"matmul", 3, {x->a, x->b, x->c}, {x->da, x->db, x->dc}, {35, 63, 9},
                       mm_loss, mm_grad, x, 1e-2f, 1e-4, 1u};
        worst = fmax(worst, grad_check(&gc));
        ctx_free(x);
    }
    {
        OpCtx *x = ctx_new();
        x->N = 4, x->C = 6, x->V = 11;
        x->a = rand_buf(24, 1.0f), x->b = rand_buf(66, 1.0f);
        x->da = xalloc_floats(24), x->db = xalloc_floats(66);
        x->out = xalloc_floats(44), x->r = rand_buf(44, 1.0f);
        GradCase gc = {"lmhead", 2, {x->a, x->b}, {x->da, x->db}, {24, 66}, lmh_loss, lmh_grad, x,
                       1e-2f, 1e-4, 0u};
        worst = fmax(worst, grad_check(&gc));
        ctx_free(x);
    }
    {
        OpCtx *x = ctx_new();
        x->B = 2, x->T = 5, x->C = 8, x->NH = 2;
        size_t nq = 2 * 5 * 24;
        x->a = rand_buf(nq, 1.0f), x->da = xalloc_floats(nq);
        x->out = xalloc_floats(80), x->r = rand_buf(80, 1.0f);
        x->s1 = xalloc_floats(2 * 2 * 25), x->s2 = xalloc_floats(25);
        GradCase gc = {"attention", 1, {x->a}, {x->da}, {nq}, att_loss, att_grad, x, 1e-2f, 5e-4, 1u};
        worst = fmax(worst, grad_check(&gc));
        ctx_free(x);
    }
    {
        /* T = 70 > OPS_ATT_BLOCK: a full and a partial causal query block */
        OpCtx *x = ctx_new();
        x->B = 1, x->T = 70, x->C = 8, x->NH = 2;
        size_t nq = 70 * 24;
        x->a = rand_buf(nq, 1.0f), x->da = xalloc_floats(nq);
        x->out = xalloc_floats(70 * 8), x->r = rand_buf(70 * 8, 1.0f);
        x->s1 = xalloc_floats(2 * 70 * 70), x->s2 = xalloc_floats(70 * 70);
        GradCase gc = {"attn T=70", 1, {x->a}, {x->da}, {nq}, att_loss, att_grad, x, 1e-2f, 5e-4, 1u};
        worst = fmax(worst, grad_check(&gc));
        ctx_free(x);
    }
    {
        OpCtx *x = ctx_new();
        x->N = 40;
        x->a = rand_buf(40, 2.0f), x->da = xalloc_floats(40);
        x->out = xalloc_floats(40), x->r = rand_buf(40, 1.0f);
        GradCase gc = {"gelu", 1, {x->a}, {x->da}, {40}, gelu_loss, gelu_grad, x, 1e-2f, 5e-4, 1u};
        worst = fmax(worst, grad_check(&gc));
        ctx_free(x);
    }
    {
        OpCtx *x = ctx_new();
        x->N = 12;
        x->a = rand_buf(12, 1.0f), x->b = rand_buf(12, 1.0f);
        x->da = xalloc_floats(12), x->db = xalloc_floats(12);
        x->out = xalloc_floats(12), x->r = rand_buf(12, 1.0f);
        GradCase gc = {"residual", 2, {x->a, x->b}, {x->da, x->db}, {12, 12}, res_loss, res_grad, x,
                       1e-2f, 1e-4, 0u};
        worst = fmax(worst, grad_check(&gc));
        ctx_free(x);
    }
    {
        OpCtx *x = ctx_new();
        x->N = 3, x->C = 10;
        x->a = rand_buf(30, 1.0f), x->b = rand_buf(10, 1.0f), x->c = rand_buf(1, 1.0f);
        x->da = xalloc_floats(30), x->db = xalloc_floats(10), x->dc = xalloc_floats(1);
        x->out = xalloc_floats(3), x->r = rand_buf(3, 1.0f);
        GradCase gc = {"rowdot", 3, {x->a, x->b, x->c}, {x->da, x->db, x->dc}, {30, 10, 1},
                       rd_loss, rd_grad, x, 1e-2f, 1e-4, 0u};
        worst = fmax(worst, grad_check(&gc));
        ctx_free(x);
    }
    /* log-prob + entropy at temperature 0.7 and 1, with and without the entropy term */
    for (int variant = 0; variant < 3; variant++) {
        OpCtx *x = ctx_new();
        x->N = 4, x->V = 13, x->temp = variant == 1 ? 1.0f : 0.7f;
        x->targets = xcalloc(4, sizeof(int));
        int tg[4] = {3, -1, 12, 0};
        memcpy(x->targets, tg, sizeof tg);
        x->a = rand_buf(52, 2.0f), x->da = xalloc_floats(52);
        x->out = xalloc_floats(4), x->out2 = xalloc_floats(4), x->s1 = xalloc_floats(4);
        x->r = rand_buf(4, 1.0f);
        x->r2 = variant == 2 ? NULL : rand_buf(4, 1.0f);
        GradCase gc = {"logprob", 1, {x->a}, {x->da}, {52}, lp_loss, lp_grad, x, 1e-2f, 5e-4, 1u};
        worst = fmax(worst, grad_check(&gc));
        /* masked row: no gradient */
        for (int i = 0; i < 13; i++) CHECK(x->da[13 + i] == 0.0f);
        ctx_free(x);
    }
    fprintf(stderr, "    worst normalised gradient error over all ops: %.2e\n", worst);
}

/* The bf16 kernels equal the fp32 ones on the rounded weights bit for bit: the panel
 * matmul from a bf16 copy of a (C,OC) weight (its OC % 16 edge columns from the fp32
 * weight passed along) and of an (OC,C) one, and the LM head with a C % 16 tail; the
 * (OC,C) fp32 pack equals the (C,OC) pack of the transpose. 1 and 2 threads. */
static void test_bf16_kernels_at(int N, int C) {
    enum { OC = 53, V = 37 };
    int before = ops_blas_threads();
    float *w = xalloc_floats((size_t)C * OC), *wr = xalloc_floats((size_t)C * OC);
    float *wt = xalloc_floats((size_t)C * OC), *bias = xalloc_floats(OC);
    float *x = xalloc_floats((size_t)N * C), *a = xalloc_floats((size_t)N * OC);
    float *b = xalloc_floats((size_t)N * OC), *lg = xalloc_floats((size_t)N * V);
    float *lr = xalloc_floats((size_t)N * V);
    for (size_t i = 0; i < (size_t)C * OC; i++) w[i] = rng_normal(&g_rng);
    for (int i = 0; i < OC; i++) bias[i] = rng_normal(&g_rng);
    for (int i = 0; i < N * C; i++) x[i] = rng_normal(&g_rng);
    for (int k = 0; k < C; k++)
        for (int o = 0; o < OC; o++) {
            wr[(size_t)k * OC + o] = bf16_to_f32(bf16_from_f32(w[(size_t)k * OC + o]));
            wt[(size_t)o * C + k] = w[(size_t)k * OC + o];
        }
    size_t np = matmul_packed_floats(C, OC);
    uint16_t *ph = xcalloc(np, sizeof(uint16_t));
    float *pf = xalloc_floats(np), *pg = xalloc_floats(np);
    for (int th = 1; th <= 2; th++) {
        ops_blas_setup(th);
        matmul_pack_rows_bf16(ph, w, C, OC);
        /* edge columns: the rounded weight, so the whole row is bf16 */
        matmul_forward_rows_packed_bf16(a, x, ph, wr, bias, N, C, OC);
        matmul_forward_rows(b, x, wr, bias, N, C, OC);
        CHECK_MSG(memcmp(a, b, (size_t)N * OC * sizeof(float)) == 0,
                  "%d threads: bf16 panel matmul differs from fp32 on the rounded weights", th);
        matmul_pack_cols_bf16(ph, wt, C, OC);
        matmul_forward_rows_packed_bf16(a, x, ph, wr, bias, N, C, OC);
        CHECK(memcmp(a, b, (size_t)N * OC * sizeof(float)) == 0);
        matmul_pack_rows(pf, w, C, OC);
        matmul_pack_cols(pg, wt, C, OC);
        CHECK(memcmp(pf, pg, np * sizeof(float)) == 0);
        /* the LM head: V rows of C (V % 16 = 5 edge rows); w and wr
         * read as (V,C) prefixes, wr being w rounded */
        size_t nh = matmul_packed_floats(C, V);
        uint16_t *hh = xcalloc(nh, sizeof(uint16_t));
        float *hf = xalloc_floats(nh);
        matmul_pack_cols_bf16(hh, w, C, V);
        matmul_pack_cols(hf, wr, C, V);
        lmhead_forward_rows_packed_bf16(lg, x, hh, w, N, C, V);
        lmhead_forward_rows_packed(lr, x, hf, wr, N, C, V);
        CHECK_MSG(memcmp(lg, lr, (size_t)N * V * sizeof(float)) == 0,
                  "%d threads: bf16 LM head differs from fp32 on the rounded weights", th);
        free(hh), free(hf);
    }
    /* and the rounding is real: the bf16 result differs from the fp32 weights' */
    matmul_forward_rows(b, x, w, bias, N, C, OC);
    CHECK(memcmp(a, b, (size_t)N * OC * sizeof(float)) != 0);
    ops_blas_setup(before);
    free(w), free(wr), free(wt), free(bias), free(x), free(a), free(b), free(lg), free(lr);
    free(ph), free(pf), free(pg);
}

/* bf16_pairs_from_f32 packs bf16_from_f32's rounding of each input two to a word, the
 * vector loop (16 at a time) and the tail alike: ties, NaN, infinities, odd C */
static void test_bf16_pairs(void) {
    enum { N = 3 };
    const int Cs[] = {1, 2, 15, 16, 17, 33, 64};
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++) {
        int C = Cs[ci], P = (C + 1) / 2, bad = 0;
        float *x = xalloc_floats((size_t)N * C);
        uint32_t *d = xcalloc((size_t)N * P, sizeof(uint32_t));
        for (int i = 0; i < N * C; i++) x[i] = rng_normal(&g_rng) * 100.0f;
        x[0] = 1.0f + 0x1p-8f; /* a tie: to even (down) */
        if (N * C > 1) x[1] = NAN;
        if (N * C > 2) x[2] = -INFINITY;
        if (N * C > 3) x[3] = 1.0f + 3 * 0x1p-8f; /* a tie: to even (up) */
        if (N * C > 20) x[20] = 3.4028235e38f;     /* past bf16's largest: infinity */
        bf16_pairs_from_f32(d, x, N, C);
        for (int n = 0; n < N; n++)
            for (int k = 0; k < C; k++) {
                uint32_t w = d[(size_t)n * P + k / 2];
                uint16_t got = (uint16_t)(k % 2 ? w >> 16 : w & 0xffff);
                if (got != bf16_from_f32(x[(size_t)n * C + k])) bad++;
                if (k == C - 1 && C % 2 && (w >> 16) != 0) bad++;
            }
        CHECK_MSG(bad == 0, "C %d: %d inputs packed differently from bf16_from_f32", C, bad);
        free(x), free(d);
    }
}

/* The bf16 dot-product kernels (AVX512-BF16): every row's outputs the same bits whatever
 * the batch and thread count; each within 2^-16 x (sum of |terms|) of the exact sum of
 * the bf16-rounded products (a double reference); and (the inputs are rounded) not the
 * widening kernel's result. */
static void test_bf16_dot_at(int C, int OC, int lmhead) {
    enum { N = 11 };
    int before = ops_blas_threads(), P = (C + 1) / 2;
    float *w = xalloc_floats((size_t)C * OC), *bias = xalloc_floats(OC);
    float *x = xalloc_floats((size_t)N * C), *a = xalloc_floats((size_t)N * OC);
    float *b = xalloc_floats((size_t)N * OC), *one = xalloc_floats(OC);
    uint32_t *xp = xcalloc((size_t)N * P, sizeof(uint32_t));
    for (size_t i = 0; i < (size_t)C * OC; i++) w[i] = rng_normal(&g_rng);
    for (int i = 0; i < OC; i++) bias[i] = rng_normal(&g_rng);
    for (int i = 0; i < N * C; i++) x[i] = rng_normal(&g_rng);
    uint16_t *ph = xcalloc(matmul_packed_floats(C, OC), sizeof(uint16_t));
    /* lmhead: w read as the (V,C) embedding; else as a (C,OC) linear, its edge columns
     * (OC % 16) from w in place */
    if (lmhead) matmul_pack_cols_bf16(ph, w, C, OC);
    else matmul_pack_rows_bf16(ph, w, C, OC);
#define DOT(out, in, n)                                                                  \
    (lmhead ? lmhead_forward_rows_packed_bf16dot(out, in, xp, ph, w, n, C, OC)           \
            : matmul_forward_rows_packed_bf16dot(out, in, xp, ph, w, bias, n, C, OC))
    int bad = 0, far = 0;
    double worst = 0;
    for (int th = 1; th <= 2; th++) {
        ops_blas_setup(th);
        DOT(a, x, N);
        for (int n = 0; n < N; n++) {
            DOT(one, x + (size_t)n * C, 1);
            if (memcmp(one, a + (size_t)n * OC, (size_t)OC * sizeof(float))) bad++;
        }
    }
    int edge0 = OC - OC % 16; /* the linear's edge columns are fp32 (w in place) */
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double ref = lmhead ? 0 : bias[o], mag = fabs(ref);
            for (int k = 0; k < C; k++) {
                float wk = lmhead ? w[(size_t)o * C + k] : w[(size_t)k * OC + o];
                double xr = bf16_to_f32(bf16_from_f32(x[(size_t)n * C + k]));
                double wr = bf16_to_f32(bf16_from_f32(wk));
                if (!lmhead && o >= edge0) xr = x[(size_t)n * C + k], wr = wk;
                ref += xr * wr, mag += fabs(xr * wr);
            }
            double e = fabs(a[(size_t)n * OC + o] - ref) / (mag + 1e-30);
            if (e > worst) worst = e;
            if (e > 0x1p-16) far++;
        }
    fprintf(stderr, "    bf16 dot %s C %d OC %d: worst error %.2e of the sum of |terms|\n",
            lmhead ? "LM head" : "linear", C, OC, worst);
    CHECK_MSG(bad == 0, "C %d OC %d: %d rows differ from the row computed alone", C, OC, bad);
    CHECK_MSG(far == 0, "C %d OC %d: %d outputs far from the bf16 products' sum", C, OC, far);
    /* the inputs are really rounded: not the widening kernel's result */
    if (lmhead) lmhead_forward_rows_packed_bf16(b, x, ph, w, N, C, OC);
    else matmul_forward_rows_packed_bf16(b, x, ph, w, bias, N, C, OC);
    CHECK(memcmp(a, b, (size_t)N * OC * sizeof(float)) != 0);
#undef DOT
    ops_blas_setup(before);
    free(w), free(bias), free(x), free(a), free(b), free(one), free(xp), free(ph);
}

static void test_bf16_dot_kernels(void) {
    if (!ops_bf16_dot_supported()) {
        TEST_SKIP("no AVX512-BF16 here: these kernels run in the x86-64-v4 copy of the "
                  "library on a CPU that has it (AMD Zen 4 and 5, Intel Sapphire Rapids on)");
        return;
    }
    test_bf16_dot_at(40, 53, 0);  /* one 48-column panel, the edge */
    test_bf16_dot_at(41, 96, 0);  /* odd C: the last row alone; two panels */
    test_bf16_dot_at(131, 80, 0); /* a 48 and a 32 panel */
    test_bf16_dot_at(130, 37, 1); /* the LM head, V % 16 = 5 edge rows */
    test_bf16_dot_at(33, 160, 1);
}

/* C even and odd (the bf16 copy stores rows in pairs, an odd C's last row alone), within
 * one block of W's rows and across several (the AVX2 kernel's 64-row blocks); batches
 * within one row tile and across two */
static void test_bf16_kernels(void) {
    test_bf16_kernels_at(7, 40);
    test_bf16_kernels_at(7, 41);
    test_bf16_kernels_at(11, 131);
    test_bf16_kernels_at(3, 130);
}

int main(void) {
    rng_init(&g_rng, 20240601);
    ops_blas_setup(0);
    TEST_RUN(test_matmul_reference);
    TEST_RUN(test_lmhead_reference);
    TEST_RUN(test_rows_batch_invariance);
    TEST_RUN(test_rows_thread_invariance);
    TEST_RUN(test_bf16_kernels);
    TEST_RUN(test_bf16_pairs);
    TEST_RUN(test_bf16_dot_kernels);
    TEST_RUN(test_rows_packed);
    TEST_RUN(test_lmhead_packed);
    TEST_RUN(test_train_thread_invariance);
    TEST_RUN(test_attention_reference);
    TEST_RUN(test_attention_row_halves);
    TEST_RUN(test_attention_row_reference);
    TEST_RUN(test_pointwise_reference);
    TEST_RUN(test_gelu_lanes);
    TEST_RUN(test_logprob_lanes);
    TEST_RUN(test_logprob_reference);
    TEST_RUN(test_zero);
    TEST_RUN(test_grad_check_can_fail);
    TEST_RUN(test_grad_ops);
    return TEST_EXIT();
}
