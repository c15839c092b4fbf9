/*
 * tests/test_ops_llama.c — the Llama-family kernels of ops_llama.c (and ops.c's
 * nn.Linear-layout linear) against references written here:
 *   - RMSNorm, rotary positions (with and without Llama 3 scaling), SwiGLU forward against
 *     double-precision formulas computed independently in this file;
 *   - grouped-query attention against its scalar reference for GQA, MQA and MHA shapes,
 *     against ops.c's GPT-2 attention when NKV = NH, and its one-row decode form against
 *     the rows of the full attention;
 *   - every `_backward` against central finite differences (tests/gradcheck.h);
 *   - forward and backward bit-identical with 1, 2 and 3 threads.
 * Prints the errors it measured.
 */
#include <stdint.h>

#include "ops.h"
#include "ops_llama.h"
#include "rng.h"
#include "test.h"
#include "util.h"

static Rng g_rng;

static float *rand_buf(size_t n, float scale) {
    float *p = xalloc_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = scale * rng_normal(&g_rng);
    return p;
}

#include "gradcheck.h"

// ----------------------------------------------------------------------------
// forward references

/* rows (n, g) at n*ld + g*C */
static void test_rmsnorm_reference(void) {
    int N = 5, G = 3, C = 24, ld = G * C + 7;
    size_t sz = (size_t)N * ld;
    float *x = rand_buf(sz, 2.0f), *w = rand_buf(C, 1.0f), *out = xcalloc(sz, sizeof(float));
    float *rstd = xalloc_floats((size_t)N * G);
    rmsnorm_forward(out, rstd, x, w, 1e-6f, N, G, C, ld);
    double err = 0.0;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            const float *xr = x + (size_t)n * ld + (size_t)g * C;
            double ms = 0.0;
            for (int i = 0; i < C; i++) ms += (double)xr[i] * xr[i] / C;
            double r = 1.0 / sqrt(ms + 1e-6);
            for (int i = 0; i < C; i++)
                err = fmax(err, fabs(out[(size_t)n * ld + g * C + i] - xr[i] * r * w[i]));
            CHECK_NEAR(rstd[n * G + g], r, 0.0, 1e-6);
        }
    /* the gap past the G heads of a row is not touched */
    for (int n = 0; n < N; n++)
        for (int i = G * C; i < ld; i++) CHECK(out[(size_t)n * ld + i] == 0.0f);
    fprintf(stderr, "    rmsnorm max abs err %.2e\n", err);
    CHECK(err < 1e-5);
    free(x), free(w), free(out), free(rstd);
}

/* transformers' _compute_llama3_parameters, written as its torch.where form */
static void ref_llama3_inv_freq(double *f, int hd, double theta, double factor, double lo,
                                double hi, double ctx) {
    for (int i = 0; i < hd / 2; i++) {
        double inv = pow(theta, -(double)(2 * i) / hd);
        double wavelen = 2.0 * M_PI / inv;
        double scaled = wavelen > ctx / lo ? inv / factor : inv;
        double smooth = (ctx / wavelen - lo) / (hi - lo);
        double smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
        int medium = !(wavelen < ctx / hi) && !(wavelen > ctx / lo);
        f[i] = medium ? smoothed : scaled;
    }
}

static void test_rope_reference(void) {
    enum { N = 6, NH = 3, HD = 16, LD = NH * HD + 5 };
    double inv[HD / 2], ref_inv[HD / 2];
    int pos[N] = {0, 1, 2, 7, 100, 4095};
    float *x = rand_buf((size_t)N * LD, 1.0f), *y = xcalloc((size_t)N * LD, sizeof(float));
    float *back = xcalloc((size_t)N * LD, sizeof(float));
    for (int scaled = 0; scaled <= 1; scaled++) {
        /* theta 500000 with factor 8, 1, 4, ctx 64: hd 16 has all three frequency bands */
        double theta = scaled ? 500000.0 : 10000.0;
        rope_inv_freq(inv, HD, theta, scaled ? 8.0 : 0.0, 1.0, 4.0, 64.0);
        for (int i = 0; i < HD / 2; i++) ref_inv[i] = pow(theta, -(double)(2 * i) / HD);
        if (scaled) ref_llama3_inv_freq(ref_inv, HD, theta, 8.0, 1.0, 4.0, 64.0);
        for (int i = 0; i < HD / 2; i++) CHECK_NEAR(inv[i], ref_inv[i], 0.0, 1e-14);
        rope_forward(y, x, inv, pos, N, NH, HD, LD);
        double err = 0.0;
        for (int n = 0; n < N; n++)
            for (int h = 0; h < NH; h++) {
                const float *xr = x + (size_t)n * LD + h * HD;
                const float *yr = y + (size_t)n * LD + h * HD;
                for (int i = 0; i < HD; i++) {
                    /* x cos + rotate_half(x) sin, rotate_half = cat(-x2, x1) */
                    double a = pos[n] * ref_inv[i % (HD / 2)];
                    double rot = i < HD / 2 ? -xr[i + HD / 2] : xr[i - HD / 2];
                    err = fmax(err, fabs(yr[i] - (xr[i] * cos(a) + rot * sin(a))));
                }
            }
        fprintf(stderr, "    rope%s max abs err %.2e\n", scaled ? " (llama3)" : "", err);
        CHECK(err < 2e-6);
        /* the backward is the inverse rotation: it undoes the forward */
        rope_backward(back, y, inv, pos, N, NH, HD, LD);
        double rt = 0.0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < NH * HD; i++) rt = fmax(rt, fabs(back[n * LD + i] - x[n * LD + i]));
        CHECK(rt < 1e-5);
    }
    /* in place gives the same bits as out of place */
    float *xi = xalloc_floats((size_t)N * LD);
    memcpy(xi, x, (size_t)N * LD * sizeof(float));
    rope_forward(xi, xi, inv, pos, N, NH, HD, LD);
    int same = 1;
    for (int n = 0; n < N; n++) same &= memcmp(xi + n * LD, y + n * LD, NH * HD * sizeof(float)) == 0;
    CHECK(same);
    free(x), free(y), free(back), free(xi);
}

static void test_swiglu_reference(void) {
    int N = 4, F = 37;
    float *x = rand_buf((size_t)N * 2 * F, 3.0f), *y = xalloc_floats((size_t)N * F);
    x[0] = -120.0f, x[1] = 95.0f; /* saturated sigmoids stay finite */
    swiglu_forward(y, x, N, F);
    double err = 0.0;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < F; i++) {
            double g = x[n * 2 * F + i], u = x[n * 2 * F + F + i];
            double r = g / (1.0 + exp(-g)) * u;
            err = fmax(err, fabs(y[n * F + i] - r) / (1.0 + fabs(r)));
        }
    fprintf(stderr, "    swiglu max rel err %.2e\n", err);
    CHECK(err < 1e-6);
    free(x), free(y);
}

static void test_gqa_reference(void) {
    /* GQA (6 query heads on 2 kv heads), MQA (1 kv head), MHA; T over one causal block */
    int shapes[][4] = {{2, 70, 6, 2}, {1, 20, 4, 1}, {2, 9, 3, 3}};
    int hd = 8;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], NH = shapes[s][2], NKV = shapes[s][3];
        int W = (NH + 2 * NKV) * hd, QW = NH * hd;
        float *qkv = rand_buf((size_t)B * T * W, 1.0f);
        float *out = xalloc_floats((size_t)B * T * QW), *ref = xalloc_floats((size_t)B * T * QW);
        float *att = xalloc_floats((size_t)B * NH * T * T), *aref = xalloc_floats((size_t)B * NH * T * T);
        gqa_attention_forward(out, att, qkv, B, T, NH, NKV, hd);
        gqa_attention_forward_naive(ref, aref, qkv, B, T, NH, NKV, hd);
        double e = norm_err(out, ref, (size_t)B * T * QW, 1e-6);
        double ea = norm_err(att, aref, (size_t)B * NH * T * T, 1e-6);
        fprintf(stderr, "    gqa B%d T%d NH%d NKV%d: out err %.2e, probs err %.2e\n", B, T, NH,
                NKV, e, ea);
        CHECK(e < 1e-5 && ea < 1e-5);
        if (NKV == NH) { /* the same as GPT-2's attention on the same [q|k|v] layout */
            attention_forward(ref, aref, qkv, B, T, QW, NH);
            CHECK(norm_err(out, ref, (size_t)B * T * QW, 1e-6) < 1e-5);
        }
        /* decode form: row t against a (kv head, position, hd) cache of rows 0..t */
        float *kc = xalloc_floats((size_t)NKV * T * hd), *vc = xalloc_floats((size_t)NKV * T * hd);
        float *row = xalloc_floats(QW), *sc = xalloc_floats(T);
        double er = 0.0;
        gqa_attention_forward_naive(ref, aref, qkv, B, T, NH, NKV, hd);
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++)
                for (int j = 0; j < NKV; j++) {
                    const float *r0 = qkv + ((size_t)b * T + t) * W + QW;
                    memcpy(kc + ((size_t)j * T + t) * hd, r0 + j * hd, hd * sizeof(float));
                    memcpy(vc + ((size_t)j * T + t) * hd, r0 + (NKV + j) * hd, hd * sizeof(float));
                }
            for (int t = 0; t < T; t++) {
                gqa_attention_row_forward(row, sc, qkv + ((size_t)b * T + t) * W, kc, vc, t + 1, T,
                                          NH, NKV, hd);
                er = fmax(er, norm_err(row, ref + ((size_t)b * T + t) * QW, QW, 1e-3));
            }
        }
        fprintf(stderr, "    gqa row form: err %.2e\n", er);
        CHECK(er < 1e-5);
        free(qkv), free(out), free(ref), free(att), free(aref), free(kc), free(vc), free(row), free(sc);
    }
}

static void test_linear_reference(void) {
    int N = 7, C = 13, OC = 19;
    float *x = rand_buf((size_t)N * C, 1.0f), *w = rand_buf((size_t)OC * C, 1.0f);
    float *b = rand_buf(OC, 1.0f), *out = xalloc_floats((size_t)N * OC);
    linear_forward(out, x, w, b, N, C, OC);
    double err = 0.0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b[o];
            for (int i = 0; i < C; i++) s += (double)x[n * C + i] * w[o * C + i];
            err = fmax(err, fabs(out[n * OC + o] - s));
        }
    CHECK(err < 1e-4);
    free(x), free(w), free(b), free(out);
}

// ----------------------------------------------------------------------------
// gradient checks

typedef struct {
    int N, G, C, ld, nh, hd, F, B, T, NH, NKV, OC;
    int *tokens, *pos;
    double inv[32];
    float *a, *b, *c, *da, *db, *dc, *out, *r, *s1, *s2;
} LCtx;

static LCtx *lctx_new(void) { return xcalloc(1, sizeof(LCtx)); }
static void lctx_free(LCtx *x) {
    free(x->tokens), free(x->pos);
    float *bufs[] = {x->a, x->b, x->c, x->da, x->db, x->dc, x->out, x->r, x->s1, x->s2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(x);
}

/* rmsnorm: a = inp (N rows of ld), b = weight (C); s1 = rstd */
static double rms_loss(void *p) {
    LCtx *x = p;
    rmsnorm_forward(x->out, x->s1, x->a, x->b, 1e-5f, x->N, x->G, x->C, x->ld);
    return dot_d(x->out, x->r, (size_t)x->N * x->ld);
}
static void rms_grad(void *p) {
    LCtx *x = p;
    rms_loss(p);
    rmsnorm_backward(x->da, x->db, x->r, x->a, x->b, x->s1, x->N, x->G, x->C, x->ld);
}

/* rope: a = inp */
static double rope_loss(void *p) {
    LCtx *x = p;
    rope_forward(x->out, x->a, x->inv, x->pos, x->N, x->nh, x->hd, x->ld);
    return dot_d(x->out, x->r, (size_t)x->N * x->ld);
}
static void rope_grad(void *p) {
    LCtx *x = p;
    rope_loss(p);
    /* written: the gap past the heads stays as the caller left it */
    rope_backward(x->da, x->r, x->inv, x->pos, x->N, x->nh, x->hd, x->ld);
}

/* swiglu: a = inp (N,2F) */
static double swi_loss(void *p) {
    LCtx *x = p;
    swiglu_forward(x->out, x->a, x->N, x->F);
    return dot_d(x->out, x->r, (size_t)x->N * x->F);
}
static void swi_grad(void *p) {
    LCtx *x = p;
    swi_loss(p);
    swiglu_backward(x->da, x->r, x->a, x->N, x->F);
}

/* gqa: a = qkv; s1 = att, s2 = scratch */
static double gqa_loss(void *p) {
    LCtx *x = p;
    gqa_attention_forward(x->out, x->s1, x->a, x->B, x->T, x->NH, x->NKV, x->hd);
    return dot_d(x->out, x->r, (size_t)x->B * x->T * x->NH * x->hd);
}
static void gqa_grad(void *p) {
    LCtx *x = p;
    gqa_loss(p);
    gqa_attention_backward(x->da, x->s2, 1, x->r, x->a, x->s1, x->B, x->T, x->NH, x->NKV, x->hd);
}

/* linear: a = inp (N,C), b = weight (OC,C), c = bias */
static double lin_loss(void *p) {
    LCtx *x = p;
    linear_forward(x->out, x->a, x->b, x->c, x->N, x->C, x->OC);
    return dot_d(x->out, x->r, (size_t)x->N * x->OC);
}
static void lin_grad(void *p) {
    LCtx *x = p;
    lin_loss(p);
    linear_backward(x->da, x->db, x->dc, x->r, x->a, x->b, x->N, x->C, x->OC);
}

/* embedding: a = wte (7,C) */
static double emb_loss(void *p) {
    LCtx *x = p;
    embedding_forward(x->out, x->tokens, x->a, x->N, x->C);
    return dot_d(x->out, x->r, (size_t)x->N * x->C);
}
static void emb_grad(void *p) {
    LCtx *x = p;
    emb_loss(p);
    embedding_backward(x->da, x->r, x->tokens, x->N, x->C);
}

static double grad_rms(int G, int ld_extra) {
    LCtx *x = lctx_new();
    x->N = 3, x->G = G, x->C = 8, x->ld = G * 8 + ld_extra;
    size_t n = (size_t)x->N * x->ld;
    x->a = rand_buf(n, 1.5f), x->b = rand_buf(8, 1.0f);
    x->da = xalloc_floats(n), x->db = xalloc_floats(8);
    x->out = xcalloc(n, sizeof(float)), x->r = rand_buf(n, 1.0f), x->s1 = xalloc_floats(3 * G);
    GradCase gc = {G == 1 ? "rmsnorm" : "rmsnorm/h", 2, {x->a, x->b}, {x->da, x->db}, {n, 8},
                   rms_loss, rms_grad, x, 1e-2f, 5e-4, 0u};
    double e = grad_check(&gc);
    lctx_free(x);
    return e;
}

static void test_grad_ops(void) {
    double worst = fmax(grad_rms(1, 0), grad_rms(3, 5));
    {
        LCtx *x = lctx_new();
        x->N = 4, x->nh = 2, x->hd = 8, x->ld = 2 * 8 + 3;
        size_t n = (size_t)x->N * x->ld;
        x->pos = xcalloc(4, sizeof(int));
        int pos[4] = {0, 3, 17, 250};
        memcpy(x->pos, pos, sizeof pos);
        rope_inv_freq(x->inv, 8, 500000.0, 8.0, 1.0, 4.0, 32.0);
        x->a = rand_buf(n, 1.0f), x->da = xcalloc(n, sizeof(float));
        x->out = xcalloc(n, sizeof(float)), x->r = rand_buf(n, 1.0f);
        for (int i = 0; i < 4; i++)
            for (int j = 16; j < x->ld; j++) x->r[i * x->ld + j] = 0.0f; /* gap: no output */
        GradCase gc = {"rope", 1, {x->a}, {x->da}, {n}, rope_loss, rope_grad, x, 1e-2f, 1e-4, 1u};
        worst = fmax(worst, grad_check(&gc));
        lctx_free(x);
    }
    {
        LCtx *x = lctx_new();
        x->N = 3, x->F = 11;
        size_t n = (size_t)3 * 22;
        x->a = rand_buf(n, 2.0f), x->da = xalloc_floats(n);
        x->out = xalloc_floats(33), x->r = rand_buf(33, 1.0f);
        GradCase gc = {"swiglu", 1, {x->a}, {x->da}, {n}, swi_loss, swi_grad, x, 1e-2f, 1e-3, 1u};
        worst = fmax(worst, grad_check(&gc));
        lctx_free(x);
    }
    int gshapes[][4] = {{2, 5, 4, 2}, {1, 6, 3, 1}, {1, 4, 2, 2}};
    for (int s = 0; s < 3; s++) {
        LCtx *x = lctx_new();
        x->B = gshapes[s][0], x->T = gshapes[s][1], x->NH = gshapes[s][2], x->NKV = gshapes[s][3];
        x->hd = 4;
        size_t W = (size_t)(x->NH + 2 * x->NKV) * x->hd, n = (size_t)x->B * x->T * W;
        size_t no = (size_t)x->B * x->T * x->NH * x->hd;
        x->a = rand_buf(n, 1.0f), x->da = xalloc_floats(n);
        x->out = xalloc_floats(no), x->r = rand_buf(no, 1.0f);
        x->s1 = xalloc_floats((size_t)x->B * x->NH * x->T * x->T);
        x->s2 = xalloc_floats((size_t)x->T * x->T);
        GradCase gc = {"gqa", 1, {x->a}, {x->da}, {n}, gqa_loss, gqa_grad, x, 1e-2f, 1e-3, 1u};
        worst = fmax(worst, grad_check(&gc));
        lctx_free(x);
    }
    {
        LCtx *x = lctx_new();
        x->N = 5, x->C = 7, x->OC = 9;
        x->a = rand_buf(35, 1.0f), x->b = rand_buf(63, 1.0f), x->c = rand_buf(9, 1.0f);
        x->da = xalloc_floats(35), x->db = xalloc_floats(63), x->dc = xalloc_floats(9);
        x->out = xalloc_floats(45), x->r = rand_buf(45, 1.0f);
        GradCase gc = {"linear", 3, {x->a, x->b, x->c}, {x->da, x->db, x->dc}, {35, 63, 9},
                       lin_loss, lin_grad, x, 1e-2f, 1e-4, 1u};
        worst = fmax(worst, grad_check(&gc));
        lctx_free(x);
    }
    {
        LCtx *x = lctx_new();
        x->N = 6, x->C = 5;
        x->tokens = xcalloc(6, sizeof(int));
        int toks[6] = {1, 6, 1, 0, 3, 1};
        memcpy(x->tokens, toks, sizeof toks);
        x->a = rand_buf(35, 1.0f), x->da = xalloc_floats(35);
        x->out = xalloc_floats(30), x->r = rand_buf(30, 1.0f);
        GradCase gc = {"embedding", 1, {x->a}, {x->da}, {35}, emb_loss, emb_grad, x, 1e-2f, 1e-4, 0u};
        worst = fmax(worst, grad_check(&gc));
        lctx_free(x);
    }
    fprintf(stderr, "    worst normalised gradient error over the llama ops: %.2e\n", worst);
}

/* A deliberately wrong SwiGLU backward (the up gradient dropped) must fail the check:
 * the harness can tell. */
static void swi_grad_wrong(void *p) {
    LCtx *x = p;
    swi_grad(p);
    for (int n = 0; n < x->N; n++)
        for (int i = 0; i < x->F; i++) x->da[n * 2 * x->F + x->F + i] = 0.0f;
}

static void test_grad_check_can_fail(void) {
    LCtx *x = lctx_new();
    x->N = 2, x->F = 5;
    x->a = rand_buf(20, 1.0f), x->da = xalloc_floats(20);
    x->out = xalloc_floats(10), x->r = rand_buf(10, 1.0f);
    GradCase gc = {"swiglu-wrong", 1, {x->a}, {x->da}, {20}, swi_loss, swi_grad_wrong, x, 1e-2f,
                   1e-3, 1u};
    CHECK(grad_check_impl(&gc, 1) > 1e-2);
    lctx_free(x);
}

// ----------------------------------------------------------------------------
// thread-count invariance: shapes above the pool's threshold, widths not multiples of 16

#define TL_N 600
/* swiglu's vector lanes (16 or 8 at a time) give the bits of its scalar tail: each
 * column of a 37-wide row (lanes and tail) against the same column run as a row of one
 * (the tail alone), forward and backward */
static void test_swiglu_lanes(void) {
    int N = 3, F = 37, bad = 0;
    float *x = rand_buf((size_t)N * 2 * F, 4.0f), *d = rand_buf((size_t)N * F, 1.0f);
    float *y = xalloc_floats((size_t)N * F), *dx = xalloc_floats((size_t)N * 2 * F);
    x[5] = -100.0f, x[6] = 100.0f, x[7] = 0.0f, x[8] = -0.0f;
    swiglu_forward(y, x, N, F);
    swiglu_backward(dx, d, x, N, F);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < F; i++) {
            float gu[2] = {x[n * 2 * F + i], x[n * 2 * F + F + i]}, y1, dgu[2];
            swiglu_forward(&y1, gu, 1, 1);
            swiglu_backward(dgu, &d[n * F + i], gu, 1, 1);
            bad += memcmp(&y1, &y[n * F + i], sizeof y1) != 0;
            bad += memcmp(&dgu[0], &dx[n * 2 * F + i], sizeof(float)) != 0;
            bad += memcmp(&dgu[1], &dx[n * 2 * F + F + i], sizeof(float)) != 0;
        }
    CHECK_MSG(bad == 0, "%d swiglu outputs differ from the same column computed alone", bad);
    free(x), free(d), free(y), free(dx);
}

#define TL_C 72
#define TL_G 3
#define TL_HD 24
#define TL_I 100
#define TL_B 3
#define TL_T 70
#define TL_NH 6
#define TL_NKV 2
enum { TL_RMS, TL_RSTD, TL_DRMS, TL_DRMSW, TL_RMSH, TL_DRMSH, TL_DRMSHW, TL_ROPE, TL_DROPE,
       TL_SWI, TL_DSWI, TL_ATT, TL_PROBS, TL_DQKV, TL_EMB, TL_NOUT };

static void tl_run(float **o, size_t *sz, int threads) {
    static float *x, *w, *d, *qkv, *dy, *g, *dsw;
    static int pos[TL_N], tok[TL_N];
    static double inv[TL_HD / 2];
    size_t NC = (size_t)TL_N * TL_C, W = (size_t)(TL_NH + 2 * TL_NKV) * TL_HD;
    size_t nq = (size_t)TL_B * TL_T * W, no = (size_t)TL_B * TL_T * TL_NH * TL_HD;
    if (!x) {
        x = rand_buf(NC, 2.0f), w = rand_buf(TL_C, 1.0f), d = rand_buf(NC, 1.0f);
        qkv = rand_buf(nq, 1.0f), dy = rand_buf(no, 1.0f), g = rand_buf((size_t)TL_N * 2 * TL_I, 2.0f);
        dsw = rand_buf((size_t)TL_N * TL_I, 1.0f);
        for (int i = 0; i < TL_N; i++) pos[i] = i % 97, tok[i] = (int)rng_below(&g_rng, TL_N / TL_C);
        rope_inv_freq(inv, TL_HD, 10000.0, 0.0, 0.0, 0.0, 0.0);
    }
    size_t sizes[TL_NOUT] = {NC, TL_N, NC, TL_C, NC, NC, TL_HD, NC, NC, (size_t)TL_N * TL_I,
                             (size_t)TL_N * 2 * TL_I, no, (size_t)TL_B * TL_NH * TL_T * TL_T, nq, NC};
    for (int i = 0; i < TL_NOUT; i++) o[i] = xcalloc(sizes[i], sizeof(float)), sz[i] = sizes[i];
    ops_blas_setup(threads);
    rmsnorm_forward(o[TL_RMS], o[TL_RSTD], x, w, 1e-5f, TL_N, 1, TL_C, TL_C);
    rmsnorm_backward(o[TL_DRMS], o[TL_DRMSW], d, x, w, o[TL_RSTD], TL_N, 1, TL_C, TL_C);
    /* per head: G = 3 heads of 24 in the 72-wide rows */
    float *rs = xalloc_floats((size_t)TL_N * TL_G);
    rmsnorm_forward(o[TL_RMSH], rs, x, w, 1e-6f, TL_N, TL_G, TL_HD, TL_C);
    rmsnorm_backward(o[TL_DRMSH], o[TL_DRMSHW], d, x, w, rs, TL_N, TL_G, TL_HD, TL_C);
    free(rs);
    rope_forward(o[TL_ROPE], x, inv, pos, TL_N, TL_C / TL_HD, TL_HD, TL_C);
    rope_backward(o[TL_DROPE], d, inv, pos, TL_N, TL_C / TL_HD, TL_HD, TL_C);
    swiglu_forward(o[TL_SWI], g, TL_N, TL_I);
    swiglu_backward(o[TL_DSWI], dsw, g, TL_N, TL_I);
    float *scratch = xalloc_floats((size_t)threads * TL_T * TL_T);
    gqa_attention_forward(o[TL_ATT], o[TL_PROBS], qkv, TL_B, TL_T, TL_NH, TL_NKV, TL_HD);
    gqa_attention_backward(o[TL_DQKV], scratch, threads, dy, qkv, o[TL_PROBS], TL_B, TL_T, TL_NH,
                           TL_NKV, TL_HD);
    free(scratch);
    embedding_forward(o[TL_EMB], tok, x, TL_N, TL_C);
}

static void test_thread_invariance(void) {
    static const char *names[TL_NOUT] = {"rms out", "rms rstd", "rms dinp", "rms dweight",
                                         "rms/h out", "rms/h dinp", "rms/h dweight", "rope",
                                         "rope dinp", "swiglu", "swiglu dinp", "gqa out",
                                         "gqa probs", "gqa dqkv", "embedding"};
    int before = ops_blas_threads();
    float *ref[TL_NOUT], *out[TL_NOUT];
    size_t sz[TL_NOUT];
    tl_run(ref, sz, 1);
    for (int th = 2; th <= 3; th++) {
        tl_run(out, sz, th);
        for (int i = 0; i < TL_NOUT; i++) {
            CHECK_MSG(memcmp(ref[i], out[i], sz[i] * sizeof(float)) == 0, "%s, %d threads",
                      names[i], th);
            free(out[i]);
        }
    }
    for (int i = 0; i < TL_NOUT; i++) free(ref[i]);
    ops_blas_setup(before);
}

int main(void) {
    rng_init(&g_rng, 20260118);
    ops_blas_setup(0);
    TEST_RUN(test_rmsnorm_reference);
    TEST_RUN(test_rope_reference);
    TEST_RUN(test_swiglu_reference);
    TEST_RUN(test_swiglu_lanes);
    TEST_RUN(test_gqa_reference);
    TEST_RUN(test_linear_reference);
    TEST_RUN(test_grad_ops);
    TEST_RUN(test_grad_check_can_fail);
    TEST_RUN(test_thread_invariance);
    return TEST_EXIT();
}
