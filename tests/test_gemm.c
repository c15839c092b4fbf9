/*
 * tests/test_gemm.c — gemm.c's GEMM against its scalar reference and against double:
 *   - gemm_f32 == gemm_f32_naive bit for bit (one fused multiply-add chain per element) on
 *     every combination of transposes, on shapes that hit the edges of the 12-row tiles,
 *     32-column panels, 256-deep blocks, 16-panel groups and 192-row packed chunks, with
 *     leading dimensions larger than the rows, at 1, 2 and 3 threads (both ways of
 *     splitting the work), and for every epilogue: accumulate, bias, scale, GELU output,
 *     GELU gradient, column sums of B, bias + residual;
 *   - gemm_f32_serial on pool part 5 == gemm_f32; the causal shapes of attention (skipped
 *     panels and zero terms) == the reference where the caller reads C;
 *   - gemm_f32_naive against a double-precision triple loop (the reference itself);
 *   - the fused seams of ops.c (matmul_gelu_forward / _backward, matmul_residual_forward)
 *     == the separate calls,
 *     bit for bit, with the own GEMM and with OpenBLAS;
 *   - the own GEMM and OpenBLAS agree on matmul_forward / matmul_backward (tolerance).
 * Without AVX-512 (gemm_f32_available() == 0) only the reference checks and the
 * OpenBLAS half of the fused seams run; the rest prints SKIP lines (tests/test.h).
 */
#include <stdint.h>

#include "gemm.h"
#include "ops.h"
#include "rng.h"
#include "test.h"
#include "util.h"

static Rng g_rng;

/* Why the kernel's checks cannot run where gemm_f32_available() is 0. */
#define GEMM_SKIP_REASON                                                                  \
    "no own GEMM kernel in this build (it needs AVX-512; gemm_f32_available() == 0)"

static float *rand_buf(size_t n, float scale) {
    float *p = xalloc_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = scale * rng_normal(&g_rng);
    return p;
}

static float *copy_buf(const float *x, size_t n) {
    float *p = xalloc_floats(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

enum { EPI_NONE, EPI_ACC, EPI_BIAS, EPI_SCALE, EPI_GELU, EPI_GELU_GRAD, EPI_COLSUM, EPI_RESID, EPI_COUNT };
static const char *epi_name[] = {"none", "accumulate", "bias", "scale", "gelu", "gelu grad", "colsum", "bias + residual"};

typedef struct {
    int ta, tb, M, N, K, extra; /* extra: added to every leading dimension */
} Shape;

/* One shape, one epilogue: the kernel at `threads` threads (or serial) against naive. */
static int run_case(const Shape *s, int epi_kind, int threads, int serial) {
    int lda = (s->ta ? s->M : s->K) + s->extra, ldb = (s->tb ? s->K : s->N) + s->extra;
    int ldc = s->N + s->extra;
    size_t na = (size_t)(s->ta ? s->K : s->M) * lda, nb = (size_t)(s->tb ? s->N : s->K) * ldb;
    size_t nc = (size_t)s->M * ldc;
    float *A = rand_buf(na, 1.0f), *B = rand_buf(nb, 1.0f), *C0 = rand_buf(nc, 1.0f);
    float *bias = rand_buf((size_t)s->N, 1.0f), *ginp = rand_buf(nc, 1.5f);
    float *cs0 = rand_buf((size_t)s->N, 1.0f);
    float *C1 = copy_buf(C0, nc), *C2 = copy_buf(C0, nc);
    float *g1 = copy_buf(C0, nc), *g2 = copy_buf(C0, nc);
    float *cs1 = copy_buf(cs0, (size_t)s->N), *cs2 = copy_buf(cs0, (size_t)s->N);
    GemmEpilogue e1 = {0}, e2 = {0};
    switch (epi_kind) {
    case EPI_ACC: e1.accumulate = e2.accumulate = 1; break;
    case EPI_BIAS: e1.bias = e2.bias = bias; break;
    case EPI_SCALE: e1.scale = e2.scale = 0.17677669f; break;
    case EPI_GELU: e1.gelu_out = g1, e2.gelu_out = g2; break;
    case EPI_GELU_GRAD: e1.gelu_grad_inp = e2.gelu_grad_inp = ginp; break;
    case EPI_COLSUM: e1.colsum_b = cs1, e2.colsum_b = cs2, e1.accumulate = e2.accumulate = 1; break;
    case EPI_RESID: e1.bias = e2.bias = bias, e1.residual = e2.residual = ginp; break;
    default: break;
    }
    int before = ops_blas_threads();
    ops_blas_setup(threads);
    if (serial)
        gemm_f32_serial(5, s->ta, s->tb, s->M, s->N, s->K, A, lda, B, ldb, C1, ldc, &e1);
    else
        gemm_f32(s->ta, s->tb, s->M, s->N, s->K, A, lda, B, ldb, C1, ldc, &e1);
    ops_blas_setup(before);
    gemm_f32_naive(s->ta, s->tb, s->M, s->N, s->K, A, lda, B, ldb, C2, ldc, &e2);
    int ok = memcmp(C1, C2, nc * sizeof(float)) == 0 && memcmp(g1, g2, nc * sizeof(float)) == 0 &&
             memcmp(cs1, cs2, (size_t)s->N * sizeof(float)) == 0;
    CHECK_MSG(ok, "ta %d tb %d M %d N %d K %d ld+%d, epilogue %s, %d threads%s", s->ta, s->tb,
              s->M, s->N, s->K, s->extra, epi_name[epi_kind], threads, serial ? " (serial)" : "");
    free(A), free(B), free(C0), free(bias), free(ginp), free(cs0);
    free(C1), free(C2), free(g1), free(g2), free(cs1), free(cs2);
    return ok;
}

static void test_kernel_equals_naive(void) {
    if (!gemm_f32_available()) {
        TEST_SKIP("%s", GEMM_SKIP_REASON);
        return;
    }
    /* M: 1, a tile's edge (11, 12, 13), a packed chunk's edge (193), a long split (2048);
     * N: < 16, one panel +- 1, a group of 16 panels + 1 (545); K: 1, 16 +- 1 (transpose
     * blocks), a block's edge (255..257, 513) */
    const Shape shapes[] = {
        {0, 0, 1, 1, 1, 0},      {0, 0, 13, 31, 17, 0},  {0, 1, 12, 33, 15, 3},
        {1, 0, 11, 32, 257, 0},  {1, 1, 25, 47, 16, 5},  {0, 1, 193, 545, 33, 0},
        {1, 0, 193, 40, 513, 2}, {0, 0, 37, 96, 256, 0}, {1, 1, 7, 100, 255, 1},
        {0, 0, 2048, 128, 64, 0}, {1, 0, 130, 384, 600, 0}, {0, 1, 64, 1100, 40, 0},
        /* weight-gradient shapes long enough in k to be split in chunks (accumulate and
         * colsum epilogues): 4 chunks; 2 chunks + a remainder, B transposed */
        {1, 0, 128, 384, 2048, 0}, {1, 1, 37, 70, 1500, 3},
    };
    int n = (int)(sizeof shapes / sizeof shapes[0]), bad = 0, cases = 0;
    for (int i = 0; i < n; i++)
        for (int e = 0; e < EPI_COUNT; e++) {
            if (e == EPI_COLSUM && shapes[i].tb) continue; /* colsum needs B in place */
            for (int th = 1; th <= 3; th++) bad += !run_case(&shapes[i], e, th, 0), cases++;
            /* the serial entry never splits over k: compared where nothing splits */
            if (shapes[i].K < 1024) bad += !run_case(&shapes[i], e, 2, 1), cases++;
        }
    fprintf(stderr, "    %d cases (shapes x epilogues x threads), %d differ from the reference\n",
            cases, bad);
}

/* The causal shapes: the kernel skips panels and zero terms; the results equal the
 * reference (which runs every term) where the caller reads them. */
static void test_causal(void) {
    if (!gemm_f32_available()) {
        TEST_SKIP("%s", GEMM_SKIP_REASON);
        return;
    }
    const int Ts[] = {1, 13, 64, 130, 300};
    int bad = 0;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        int T = Ts[ti], hs = 32;
        for (int mode = GEMM_CAUSAL_OUT; mode <= GEMM_CAUSAL_K_FROM; mode++)
            for (int off = -1; off <= 1; off++) {
                /* OUT: S (T,T) = Q K^T; K_UPTO: O (T,hs) = P V, P(i,k) = 0 for k > i + off;
                 * K_FROM: dV (T,hs) = P^T dY with op(A)(i,k) = P(k,i) = 0 for k < i + off */
                int M = T, N = mode == GEMM_CAUSAL_OUT ? T : hs, K = mode == GEMM_CAUSAL_OUT ? hs : T;
                int ta = mode == GEMM_CAUSAL_K_FROM, tb = mode == GEMM_CAUSAL_OUT;
                float *A = rand_buf((size_t)M * K, 1.0f), *B = rand_buf((size_t)K * N, 1.0f);
                for (int i = 0; i < M; i++)
                    for (int k = 0; k < K; k++) {
                        int zero = mode == GEMM_CAUSAL_K_UPTO ? k > i + off
                                 : mode == GEMM_CAUSAL_K_FROM ? k < i + off : 0;
                        if (zero) A[ta ? (size_t)k * M + i : (size_t)i * K + k] = 0.0f;
                    }
                float *C1 = rand_buf((size_t)M * N, 1.0f), *C2 = copy_buf(C1, (size_t)M * N);
                GemmEpilogue e = {.causal = mode, .causal_off = off,
                                  .scale = mode == GEMM_CAUSAL_OUT ? 0.5f : 0.0f,
                                  .accumulate = mode == GEMM_CAUSAL_K_FROM};
                gemm_f32_serial(3, ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, C1, N, &e);
                gemm_f32_naive(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, C2, N, &e);
                int diff = 0;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        if (mode == GEMM_CAUSAL_OUT && j > i + off) continue;
                        diff += memcmp(&C1[(size_t)i * N + j], &C2[(size_t)i * N + j], sizeof(float)) != 0;
                    }
                CHECK_MSG(diff == 0, "causal mode %d off %d T %d: %d elements differ", mode, off, T, diff);
                bad += diff != 0;
                free(A), free(B), free(C1), free(C2);
            }
    }
    fprintf(stderr, "    causal shapes: %d of %d cases differ\n", bad, 5 * 3 * 3);
}

/* The reference is what it claims: double triple loop, tolerance of K ulps. */
static void test_naive_against_double(void) {
    int M = 9, N = 21, K = 300;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = ta ? M : K, ldb = tb ? K : N;
            float *A = rand_buf((size_t)M * K, 1.0f), *B = rand_buf((size_t)K * N, 1.0f);
            float *C = xalloc_floats((size_t)M * N), *bias = rand_buf((size_t)N, 1.0f);
            GemmEpilogue e = {.bias = bias};
            gemm_f32_naive(ta, tb, M, N, K, A, lda, B, ldb, C, N, &e);
            double worst = 0.0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double ref = bias[j], mag = fabs(bias[j]);
                    for (int k = 0; k < K; k++) {
                        double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                        double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                        ref += a * b, mag += fabs(a * b);
                    }
                    double err = fabs(C[(size_t)i * N + j] - ref) / mag;
                    if (err > worst) worst = err;
                }
            CHECK_MSG(worst < 1e-6, "ta %d tb %d: error %.3g of the magnitude", ta, tb, worst);
            free(A), free(B), free(C), free(bias);
        }
}

/* ops.c's fused MLP seams equal the separate calls, whichever GEMM runs them. */
static void test_fused_seams(void) {
    int N = 70, C = 48, OC = 4 * 48;
    float *x = rand_buf((size_t)N * C, 1.0f), *w = rand_buf((size_t)C * OC, 0.2f);
    float *b = rand_buf((size_t)OC, 0.5f), *dout = rand_buf((size_t)N * C, 1.0f);
    float *w2 = rand_buf((size_t)OC * C, 0.2f);
    int was = ops_gemm_own(-1);
    for (int own = 0; own <= gemm_f32_available(); own++) {
        ops_gemm_own(own);
        /* forward: fch, gelu(fch) */
        float *h1 = xalloc_floats((size_t)N * OC), *g1 = xalloc_floats((size_t)N * OC);
        float *h2 = xalloc_floats((size_t)N * OC), *g2 = xalloc_floats((size_t)N * OC);
        matmul_gelu_forward(h1, g1, x, w, b, N, C, OC);
        matmul_forward(h2, x, w, b, N, C, OC);
        gelu_forward(g2, h2, (size_t)N * OC);
        CHECK_MSG(memcmp(h1, h2, (size_t)N * OC * sizeof(float)) == 0, "fused forward, own %d", own);
        CHECK_MSG(memcmp(g1, g2, (size_t)N * OC * sizeof(float)) == 0, "fused gelu, own %d", own);
        /* backward through c_proj (OC -> C) and the GELU */
        float *d1 = xalloc_floats((size_t)N * OC), *d2 = xalloc_floats((size_t)N * OC);
        float *dw1 = xcalloc((size_t)OC * C, sizeof(float)), *dw2 = xcalloc((size_t)OC * C, sizeof(float));
        float *db1 = xcalloc((size_t)C, sizeof(float)), *db2 = xcalloc((size_t)C, sizeof(float));
        matmul_gelu_backward(d1, dw1, db1, dout, g1, w2, h1, N, OC, C);
        matmul_backward(d2, dw2, db2, dout, g1, w2, N, OC, C);
        gelu_backward(d2, h1, d2, (size_t)N * OC);
        CHECK_MSG(memcmp(d1, d2, (size_t)N * OC * sizeof(float)) == 0, "fused backward, own %d", own);
        CHECK_MSG(memcmp(dw1, dw2, (size_t)OC * C * sizeof(float)) == 0, "dweight, own %d", own);
        CHECK_MSG(memcmp(db1, db2, (size_t)C * sizeof(float)) == 0, "dbias, own %d", own);
        /* c_proj + residual */
        float *r1 = xalloc_floats((size_t)N * C), *r2 = xalloc_floats((size_t)N * C);
        matmul_residual_forward(r1, g1, w2, b, x, N, OC, C);
        matmul_forward(r2, g1, w2, b, N, OC, C);
        residual_forward(r2, x, r2, (size_t)N * C);
        CHECK_MSG(memcmp(r1, r2, (size_t)N * C * sizeof(float)) == 0, "fused residual, own %d", own);
        free(r1), free(r2);
        free(h1), free(g1), free(h2), free(g2), free(d1), free(d2);
        free(dw1), free(dw2), free(db1), free(db2);
    }
    ops_gemm_own(was);
    if (!gemm_f32_available())
        TEST_SKIP("the own GEMM's half (the OpenBLAS half ran): %s", GEMM_SKIP_REASON);
    free(x), free(w), free(b), free(dout), free(w2);
}

/* Own GEMM and OpenBLAS: the same linear layer up to rounding. */
static void test_own_vs_openblas(void) {
    if (!gemm_f32_available()) {
        TEST_SKIP("%s", GEMM_SKIP_REASON);
        return;
    }
    int N = 100, C = 128, OC = 300;
    float *x = rand_buf((size_t)N * C, 1.0f), *w = rand_buf((size_t)C * OC, 0.1f);
    float *b = rand_buf((size_t)OC, 1.0f), *dout = rand_buf((size_t)N * OC, 1.0f);
    float *out[2], *dinp[2], *dw[2], *db[2];
    int was = ops_gemm_own(-1);
    for (int own = 0; own < 2; own++) {
        ops_gemm_own(own);
        out[own] = xalloc_floats((size_t)N * OC), dinp[own] = xalloc_floats((size_t)N * C);
        dw[own] = xcalloc((size_t)C * OC, sizeof(float)), db[own] = xcalloc((size_t)OC, sizeof(float));
        matmul_forward(out[own], x, w, b, N, C, OC);
        matmul_backward(dinp[own], dw[own], db[own], dout, x, w, N, C, OC);
    }
    ops_gemm_own(was);
    struct { const char *name; float **p; size_t n; } t[] = {
        {"out", out, (size_t)N * OC}, {"dinp", dinp, (size_t)N * C},
        {"dweight", dw, (size_t)C * OC}, {"dbias", db, (size_t)OC}};
    for (int i = 0; i < 4; i++) {
        double err = 0.0, mx = 1e-6;
        for (size_t k = 0; k < t[i].n; k++) {
            err = fmax(err, fabs((double)t[i].p[0][k] - t[i].p[1][k]));
            mx = fmax(mx, fabs((double)t[i].p[0][k]));
        }
        CHECK_MSG(err / mx < 1e-5, "%s: own vs OpenBLAS differ by %.3g of the largest", t[i].name,
                  err / mx);
        free(t[i].p[0]), free(t[i].p[1]);
    }
    free(x), free(w), free(b), free(dout);
}

int main(void) {
    rng_init(&g_rng, 20261205);
    ops_blas_setup(0);
    TEST_RUN(test_kernel_equals_naive);
    TEST_RUN(test_causal);
    TEST_RUN(test_naive_against_double);
    TEST_RUN(test_fused_seams);
    TEST_RUN(test_own_vs_openblas);
    return TEST_EXIT();
}
