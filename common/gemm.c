/*
 * common/gemm.c — the fp32 GEMM of gemm.h: 12 x 32 register tiles on AVX-512.
 *
 * Blocking (Goto & van de Geijn 2008, "Anatomy of high-performance matrix
 * multiplication", with A left in place): C is cut into 32-column panels and 12-row
 * tiles. For each group of 16 panels and each 256-deep block of k, the group's block of B
 * (16 x 256 x 32 floats, 512 KB, in L2) is copied into a contiguous per-thread buffer;
 * then each tile runs against every panel of the group, its stretch of A staying in L1.
 * A tile keeps its 12 x 32 outputs in 24 zmm registers; per k it loads two vectors of B
 * and broadcasts 12 elements of A straight from A's rows (a transposed A is first copied,
 * 192 rows at a time, into 12-float groups per k). The tile's chain starts from C, the
 * bias or zero at the first block and from the stored partial sums at later blocks, so
 * each element is one fused multiply-add chain over k in order; the epilogue (scale,
 * residual, GELU or its gradient) runs on the registers after the last block.
 */
#include "gemm.h"

#include <math.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "ops.h"
#include "vmath.h"

#define GEMM_MR 12  /* rows of a register tile */
#define GEMM_NR 32  /* columns of a panel (two zmm) */
#define GEMM_KB 256 /* depth of a packed block of B */
#define GEMM_MAX_PARTS OPS_MAX_THREADS /* one packing buffer per pool thread */
#define GEMM_GROUP 16 /* panels whose packed B blocks are kept at once (512 KB) */
#define GEMM_MC (16 * GEMM_MR) /* rows of a transposed A packed at once (192 KB) */
/* The weight-gradient shape (A transposed, C += A^T B over many rows k, the tokens): split
 * over k in chunks of GEMM_KSPLIT, each chunk's product from zero into scratch, then
 * C + P_0 + P_1 + ... in chunk order. The chunks are fixed by K alone, so the bits do not
 * depend on the thread count, and with one part per run of chunks each thread reads the
 * tokens it produced (the row split of the ops before) instead of all of them. */
#define GEMM_KSPLIT 512
#define GEMM_KSPLIT_FLOATS (1 << 20) /* partial products and column sums, all chunks (4 MB) */
/* below this many multiply-adds, one thread: waking the pool costs more than it saves */
#define GEMM_MIN_WORK (1 << 20)

/* The element (i, k) of op(A) and (k, j) of op(B). */
static inline float gemm_a(const float *A, int lda, int trans_a, int i, int k) {
    return trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
}
static inline float gemm_b(const float *B, int ldb, int trans_b, int k, int j) {
    return trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
}

/* Chunks of a split weight-gradient product (see GEMM_KSPLIT), 0 when it is not split.
 * Chunk c is k in [c GEMM_KSPLIT, (c + 1) GEMM_KSPLIT), the last one to K. */
static int gemm_ksplit_chunks(int trans_a, int M, int N, int K, const GemmEpilogue *e) {
    if (!trans_a || !e->accumulate || e->causal || e->scale != 0.0f || e->residual ||
        e->gelu_out || e->gelu_grad_inp || e->bias)
        return 0;
    int chunks = K / GEMM_KSPLIT;
    if (chunks < 2 || (size_t)chunks * ((size_t)M * N + (size_t)N) > GEMM_KSPLIT_FLOATS) return 0;
    return chunks;
}

static void gemm_ksplit_range(int c, int chunks, int K, int *k0, int *k1) {
    *k0 = c * GEMM_KSPLIT;
    *k1 = c == chunks - 1 ? K : (c + 1) * GEMM_KSPLIT;
}

/* The reference of a split product: per chunk a chain from zero, then the chunks added to
 * C (and to the column sums) in order. */
static void gemm_naive_ksplit(int chunks, int trans_b, int M, int N, int K, const float *A,
                              int lda, const float *B, int ldb, float *C, int ldc,
                              const GemmEpilogue *epi) {
    for (int j = 0; epi->colsum_b && j < N; j++) {
        float acc = epi->colsum_b[j];
        for (int c = 0; c < chunks; c++) {
            int k0, k1;
            gemm_ksplit_range(c, chunks, K, &k0, &k1);
            float part = 0.0f;
            for (int k = k0; k < k1; k++) part += gemm_b(B, ldb, trans_b, k, j);
            acc = acc + part;
        }
        epi->colsum_b[j] = acc;
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = C[(size_t)i * ldc + j];
            for (int c = 0; c < chunks; c++) {
                int k0, k1;
                gemm_ksplit_range(c, chunks, K, &k0, &k1);
                float part = 0.0f;
                for (int k = k0; k < k1; k++)
                    part = fmaf(gemm_a(A, lda, 1, i, k), gemm_b(B, ldb, trans_b, k, j), part);
                acc = acc + part;
            }
            C[(size_t)i * ldc + j] = acc;
        }
}

void gemm_f32_naive(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                    const float *B, int ldb, float *C, int ldc, const GemmEpilogue *epi) {
    int chunks = gemm_ksplit_chunks(trans_a, M, N, K, epi);
    if (chunks) {
        gemm_naive_ksplit(chunks, trans_b, M, N, K, A, lda, B, ldb, C, ldc, epi);
        return;
    }
    if (epi->colsum_b)
        for (int j = 0; j < N; j++)
            for (int k = 0; k < K; k++) epi->colsum_b[j] += gemm_b(B, ldb, trans_b, k, j);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            size_t at = (size_t)i * ldc + j;
            if (epi->causal == GEMM_CAUSAL_OUT && j > i + epi->causal_off) continue;
            float acc = epi->accumulate ? C[at] : epi->bias ? epi->bias[j] : 0.0f;
            for (int k = 0; k < K; k++)
                acc = fmaf(gemm_a(A, lda, trans_a, i, k), gemm_b(B, ldb, trans_b, k, j), acc);
            if (epi->scale != 0.0f) acc *= epi->scale;
            if (epi->residual) acc = epi->residual[at] + acc;
            if (epi->gelu_grad_inp) acc = vm_gelu_grad(epi->gelu_grad_inp[at], acc);
            C[at] = acc;
            if (epi->gelu_out) epi->gelu_out[at] = vm_gelu(acc);
        }
    }
}

#if defined(__AVX512F__)

int gemm_f32_available(void) { return 1; }

/* per-part packing buffers (part p of a job owns index p): B's block for a group of
 * panels and a transposed A's chunk of rows. Static: pages are touched only by parts that
 * run (not malloc'd per call: first touch costs ~12 us a page here). */
static float g_pack_b[GEMM_MAX_PARTS][GEMM_GROUP * GEMM_KB * GEMM_NR] __attribute__((aligned(64)));
static float g_pack_a[GEMM_MAX_PARTS][GEMM_MC * GEMM_KB] __attribute__((aligned(64)));

/* dst[r][c] = src[c][r] for a 16 x 16 block (row strides lds, ldd in floats). */
static inline void gemm_transpose16(float *dst, int ldd, const float *src, int lds) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (size_t)i * lds);
    /* interleave pairs of rows, then pairs of pairs, then 128-bit lanes twice */
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + (size_t)i * ldd, r[i]);
}

/* The block k in [k0, k0 + kc) of panels [g0, g1) of op(B), panel after panel:
 * bg[p - g0][k][jj] = op(B)(k0 + k, 32 p + jj), zero past column N.
 * With colsum (non-transposed B only): colsum[j] += op(B)(k, j) for every packed element,
 * k in order — the column sums ride along with the copy (the bias gradient of a linear
 * layer, summed in the order of ops.c's separate pass, so with the same bits). */
static void gemm_pack_b(float *restrict bg, const float *B, int ldb, int trans_b, int k0,
                        int kc, int g0, int g1, int N, float *colsum) {
    if (!trans_b) {
        /* row by row: each row of B is read once, contiguously, across the group */
        float cs[GEMM_GROUP * GEMM_NR] __attribute__((aligned(64)));
        if (colsum)
            for (int p = g0; p < g1; p++) {
                int j0 = p * GEMM_NR;
                for (int v = 0; v < 2; v++)
                    _mm512_store_ps(cs + (p - g0) * GEMM_NR + 16 * v,
                                    _mm512_maskz_loadu_ps(vm_mask16(N - j0 - 16 * v), colsum + j0 + 16 * v));
            }
        for (int k = 0; k < kc; k++) {
            const float *src = B + (size_t)(k0 + k) * ldb;
            for (int p = g0; p < g1; p++) {
                int j0 = p * GEMM_NR, nc = N - j0 < GEMM_NR ? N - j0 : GEMM_NR;
                float *dst = bg + ((size_t)(p - g0) * kc + k) * GEMM_NR;
                __m512 b0, b1;
                if (nc == GEMM_NR) {
                    b0 = _mm512_loadu_ps(src + j0);
                    b1 = _mm512_loadu_ps(src + j0 + 16);
                } else {
                    b0 = _mm512_maskz_loadu_ps(vm_mask16(nc), src + j0);
                    b1 = _mm512_maskz_loadu_ps(vm_mask16(nc - 16), src + j0 + 16);
                }
                _mm512_store_ps(dst, b0);
                _mm512_store_ps(dst + 16, b1);
                if (colsum) {
                    float *c = cs + (p - g0) * GEMM_NR;
                    _mm512_store_ps(c, _mm512_add_ps(_mm512_load_ps(c), b0));
                    _mm512_store_ps(c + 16, _mm512_add_ps(_mm512_load_ps(c + 16), b1));
                }
            }
        }
        if (colsum)
            for (int p = g0; p < g1; p++) {
                int j0 = p * GEMM_NR;
                for (int v = 0; v < 2; v++)
                    _mm512_mask_storeu_ps(colsum + j0 + 16 * v, vm_mask16(N - j0 - 16 * v),
                                          _mm512_load_ps(cs + (p - g0) * GEMM_NR + 16 * v));
            }
        return;
    }
    /* B is (N, K): 16 x 16 blocks transposed in registers; the ragged edges by hand */
    for (int p = g0; p < g1; p++) {
        int j0 = p * GEMM_NR, nc = N - j0 < GEMM_NR ? N - j0 : GEMM_NR;
        float *bp = bg + (size_t)(p - g0) * kc * GEMM_NR;
        int kv = kc - kc % 16, jv = nc - nc % 16;
        for (int jb = 0; jb < jv; jb += 16)
            for (int k = 0; k < kv; k += 16)
                gemm_transpose16(bp + (size_t)k * GEMM_NR + jb, GEMM_NR,
                                 B + (size_t)(j0 + jb) * ldb + k0 + k, ldb);
        for (int k = 0; k < kc; k++) {
            float *dst = bp + (size_t)k * GEMM_NR;
            int jstart = k < kv ? jv : 0;
            for (int jj = jstart; jj < nc; jj++) dst[jj] = B[(size_t)(j0 + jj) * ldb + k0 + k];
            for (int jj = nc; jj < GEMM_NR; jj++) dst[jj] = 0.0f;
        }
    }
}

/* One MR x 32 tile over kc values of k. a points at op(A)(i0, k0): element (r, k) is
 * a[r * ars + k * aks]. c points at C(i0, j0). init: 0 = zero, 1 = load C, 2 = bias.
 * gout / ginp (at the same offset as c, or NULL): the GELU epilogue, for the last block. */
/* The tile and its dispatcher are not instrumented by the sanitizers: ASan + UBSan made
 * the whole training step 8x slower (the tiny step 887 against 113 ms with OpenBLAS, which
 * is not instrumented either), and the sanitizer build trains in the fault and PPO suites.
 * Its accesses stay covered: the packing functions are instrumented, and gemm_block
 * touches the corners of every A stretch and C tile in an ASan build (gemm_check_tile). */
#define GEMM_NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))

static inline __attribute__((always_inline)) GEMM_NO_SANITIZE void gemm_tile(
    const int MR, const float *restrict a, size_t ars, size_t aks, const float *restrict bp,
    int kc, float *c, int ldc, int nc, int init, const float *bias, float *gout,
    const float *ginp, float scale, const float *resid) {
    __m512 c0[GEMM_MR], c1[GEMM_MR];
    __mmask16 m0 = vm_mask16(nc), m1 = vm_mask16(nc - 16);
    if (init == 1) {
        for (int r = 0; r < MR; r++) {
            c0[r] = _mm512_maskz_loadu_ps(m0, c + (size_t)r * ldc);
            c1[r] = _mm512_maskz_loadu_ps(m1, c + (size_t)r * ldc + 16);
        }
    } else if (init == 2) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, bias), b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
        for (int r = 0; r < MR; r++) {
            c0[r] = b0;
            c1[r] = b1;
        }
    } else {
        for (int r = 0; r < MR; r++) {
            c0[r] = _mm512_setzero_ps();
            c1[r] = _mm512_setzero_ps();
        }
    }
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(bp + (size_t)k * GEMM_NR);
        __m512 b1 = _mm512_load_ps(bp + (size_t)k * GEMM_NR + 16);
        const float *ak = a + (size_t)k * aks;
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(ak[(size_t)r * ars]);
            c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        }
    }
    if (scale != 0.0f) {
        __m512 sv = _mm512_set1_ps(scale);
        for (int r = 0; r < MR; r++) {
            c0[r] = _mm512_mul_ps(c0[r], sv);
            c1[r] = _mm512_mul_ps(c1[r], sv);
        }
    }
    if (resid) {
        for (int r = 0; r < MR; r++) {
            const float *x = resid + (size_t)r * ldc;
            c0[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, x), c0[r]);
            c1[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, x + 16), c1[r]);
        }
    }
    if (ginp) {
        for (int r = 0; r < MR; r++) {
            const float *x = ginp + (size_t)r * ldc;
            c0[r] = vm_gelu_grad16(_mm512_maskz_loadu_ps(m0, x), c0[r]);
            c1[r] = vm_gelu_grad16(_mm512_maskz_loadu_ps(m1, x + 16), c1[r]);
        }
    }
    for (int r = 0; r < MR; r++) {
        _mm512_mask_storeu_ps(c + (size_t)r * ldc, m0, c0[r]);
        _mm512_mask_storeu_ps(c + (size_t)r * ldc + 16, m1, c1[r]);
    }
    if (gout) {
        for (int r = 0; r < MR; r++) {
            _mm512_mask_storeu_ps(gout + (size_t)r * ldc, m0, vm_gelu16(c0[r]));
            _mm512_mask_storeu_ps(gout + (size_t)r * ldc + 16, m1, vm_gelu16(c1[r]));
        }
    }
}

/* Dispatch on the tile height so that each instance is fully unrolled with its
 * accumulators in registers; A packed (ars = 1, aks = GEMM_MR) or in place (lda, 1). */
#define GEMM_TILE_CASE(n)                                                                    \
    case n:                                                                                  \
        if (aks == GEMM_MR)                                                                  \
            gemm_tile(n, a, 1, GEMM_MR, bp, kc, c, ldc, nc, init, bias, gout, ginp, scale,   \
                      resid);                                                                \
        else gemm_tile(n, a, ars, 1, bp, kc, c, ldc, nc, init, bias, gout, ginp, scale, resid); \
        break;

static GEMM_NO_SANITIZE void gemm_tile_any(int mr, const float *a, size_t ars, size_t aks, const float *bp,
                          int kc, float *c, int ldc, int nc, int init, const float *bias,
                          float *gout, const float *ginp, float scale,
                          const float *resid) {
    switch (mr) {
        GEMM_TILE_CASE(1)
        GEMM_TILE_CASE(2)
        GEMM_TILE_CASE(3)
        GEMM_TILE_CASE(4)
        GEMM_TILE_CASE(5)
        GEMM_TILE_CASE(6)
        GEMM_TILE_CASE(7)
        GEMM_TILE_CASE(8)
        GEMM_TILE_CASE(9)
        GEMM_TILE_CASE(10)
        GEMM_TILE_CASE(11)
        GEMM_TILE_CASE(12)
        default: break;
    }
}

typedef struct {
    int trans_a, trans_b, M, N, K, lda, ldb, ldc;
    const float *A, *B;
    float *C;
    const GemmEpilogue *epi;
    int split_rows; /* parts own row tiles (all panels) instead of panels (all rows) */
} GemmJob;

/* In an ASan build: read the first and last element of each row's stretch of A (when it
 * is read in place) and read-and-write the first and last element of each row of the C
 * tile, with instrumented accesses, so that an out-of-bounds tile is reported. */
static void gemm_check_tile(const float *a, size_t ars, size_t aks, int mr, int kn, float *c,
                            int ldc, int nc, int a_in_place) {
#if defined(__SANITIZE_ADDRESS__)
    for (int r = 0; r < mr; r++) {
        const volatile float *ar = a + r * ars;
        if (a_in_place && kn > 0) (void)ar[0], (void)ar[(size_t)(kn - 1) * aks];
        volatile float *row = c + (size_t)r * ldc;
        row[0] = row[0], row[nc - 1] = row[nc - 1];
    }
#else
    (void)a, (void)ars, (void)aks, (void)mr, (void)kn, (void)c, (void)ldc, (void)nc, (void)a_in_place;
#endif
}

/* A transposed (K, M): the rows [i0, i0 + rows) of op(A) for k in [k0, k0 + kc), as
 * tiles of GEMM_MR rows: ap[t][k][r] = op(A)(i0 + t * GEMM_MR + r, k0 + k). One pass over
 * A's rows (contiguous, every line read once), not one strided pass per tile. */
static void gemm_pack_a_trans(float *restrict ap, const float *A, int lda, int i0, int rows,
                              int k0, int kc, int k_from, int k_from_off) {
    int tiles = (rows + GEMM_MR - 1) / GEMM_MR;
    for (int k = 0; k < kc; k++) {
        const float *src = A + (size_t)(k0 + k) * lda + i0;
        /* GEMM_CAUSAL_K_FROM: tile t reads k >= its first row + off only; tiles t >= t1
         * need this k not at all */
        int t1 = tiles;
        if (k_from) {
            int lim = k0 + k - k_from_off - i0; /* rows i <= lim use this k */
            t1 = lim < 0 ? 0 : lim / GEMM_MR + 1;
            if (t1 > tiles) t1 = tiles;
        }
        for (int t = 0; t < t1; t++) {
            int mr = rows - t * GEMM_MR < GEMM_MR ? rows - t * GEMM_MR : GEMM_MR;
            float *dst = ap + ((size_t)t * kc + k) * GEMM_MR;
            if (mr == GEMM_MR) { /* 8 + 4 floats: masked 12-float loads were 5x slower */
                _mm256_storeu_ps(dst, _mm256_loadu_ps(src + t * GEMM_MR));
                _mm_storeu_ps(dst + 8, _mm_loadu_ps(src + t * GEMM_MR + 8));
            } else {
                __mmask16 m = vm_mask16(mr);
                _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src + t * GEMM_MR));
            }
        }
    }
}

/* Panels [p0, p1) x rows [i0, i1) of C, with this part's packing buffers. Per group of
 * GEMM_GROUP panels and block of k: B's block for the group is packed (L2); then each
 * 12-row tile of A (read in place, or from its packed chunk when A is transposed) runs
 * against every panel of the group. */
static void gemm_block(const GemmJob *j, float *bg, float *ap, int p0, int p1, int i0,
                       int i1) {
    const GemmEpilogue *e = j->epi;
    for (int g0 = p0; g0 < p1; g0 += GEMM_GROUP) {
        int g1 = p1 - g0 < GEMM_GROUP ? p1 : g0 + GEMM_GROUP;
        for (int k0 = 0; k0 < j->K; k0 += GEMM_KB) {
            int kc = j->K - k0 < GEMM_KB ? j->K - k0 : GEMM_KB;
            int init = k0 > 0 || e->accumulate ? 1 : e->bias ? 2 : 0;
            int last = k0 + kc == j->K;
            /* the column sums of B, by the part that owns row 0 (each column once) */
            gemm_pack_b(bg, j->B, j->ldb, j->trans_b, k0, kc, g0, g1, j->N,
                        i0 == 0 ? e->colsum_b : NULL);
            for (int ic = i0; ic < i1; ic += GEMM_MC) {
                int ic1 = i1 - ic < GEMM_MC ? i1 : ic + GEMM_MC;
                if (j->trans_a)
                    gemm_pack_a_trans(ap, j->A, j->lda, ic, ic1 - ic, k0, kc,
                                      e->causal == GEMM_CAUSAL_K_FROM, e->causal_off);
                for (int i = ic; i < ic1; i += GEMM_MR) {
                    int mr = ic1 - i < GEMM_MR ? ic1 - i : GEMM_MR;
                    const float *a;
                    size_t ars, aks;
                    if (j->trans_a) {
                        a = ap + (size_t)((i - ic) / GEMM_MR) * kc * GEMM_MR, ars = 1, aks = GEMM_MR;
                    } else {
                        a = j->A + (size_t)i * j->lda + k0, ars = (size_t)j->lda, aks = 1;
                    }
                    /* causal structure: the k range of this tile inside the block (the
                     * terms outside are zeros of A), and the last column it needs */
                    int ks = 0, ke = kc, jmax = j->N;
                    if (e->causal == GEMM_CAUSAL_K_UPTO) ke = i + mr + e->causal_off - k0;
                    if (e->causal == GEMM_CAUSAL_K_FROM) ks = i + e->causal_off - k0;
                    if (e->causal == GEMM_CAUSAL_OUT) jmax = i + mr + e->causal_off;
                    ke = ke < 0 ? 0 : ke > kc ? kc : ke;
                    ks = ks < 0 ? 0 : ks > ke ? ke : ks;
                    /* an empty range still writes the chain's start (first block) and
                     * finishes the tile (last block) */
                    if (ks == ke && init == 1 && !last) continue;
                    for (int p = g0; p < g1; p++) {
                        int j0 = p * GEMM_NR, nc = j->N - j0 < GEMM_NR ? j->N - j0 : GEMM_NR;
                        if (j0 >= jmax) break;
                        size_t at = (size_t)i * j->ldc + j0;
                        gemm_check_tile(a + (size_t)ks * aks, ars, aks, mr, ke - ks, j->C + at,
                                        j->ldc, nc, !j->trans_a);
                        gemm_tile_any(mr, a + (size_t)ks * aks, ars, aks,
                                      bg + ((size_t)(p - g0) * kc + ks) * GEMM_NR, ke - ks,
                                      j->C + at, j->ldc, nc, init, e->bias ? e->bias + j0 : NULL,
                                      last && e->gelu_out ? e->gelu_out + at : NULL,
                                      last && e->gelu_grad_inp ? e->gelu_grad_inp + at : NULL,
                                      last ? e->scale : 0.0f,
                                      last && e->residual ? e->residual + at : NULL);
                    }
                }
            }
        }
    }
}

static void gemm_part(void *arg, int part, int nparts) {
    const GemmJob *j = arg;
    int panels = (j->N + GEMM_NR - 1) / GEMM_NR;
    float *bg = g_pack_b[part], *ap = g_pack_a[part];
    if (j->split_rows) {
        int tiles = (j->M + GEMM_MR - 1) / GEMM_MR;
        int t0 = (int)((long long)tiles * part / nparts), t1 = (int)((long long)tiles * (part + 1) / nparts);
        int i1 = t1 * GEMM_MR < j->M ? t1 * GEMM_MR : j->M;
        if (t0 < t1) gemm_block(j, bg, ap, 0, panels, t0 * GEMM_MR, i1);
    } else {
        int p0 = (int)((long long)panels * part / nparts), p1 = (int)((long long)panels * (part + 1) / nparts);
        if (p0 < p1) gemm_block(j, bg, ap, p0, p1, 0, j->M);
    }
}

static float g_ksplit[GEMM_KSPLIT_FLOATS] __attribute__((aligned(64)));

typedef struct {
    const GemmJob *j; /* the whole product */
    int chunks;
} KSplitJob;

/* Part `part` computes its run of chunks, each into its slot of g_ksplit (from zero). */
static void gemm_ksplit_part(void *arg, int part, int nparts) {
    const KSplitJob *ks = arg;
    const GemmJob *j = ks->j;
    size_t mn = (size_t)j->M * j->N;
    int c0 = (int)((long long)ks->chunks * part / nparts);
    int c1 = (int)((long long)ks->chunks * (part + 1) / nparts);
    for (int c = c0; c < c1; c++) {
        int k0, k1;
        gemm_ksplit_range(c, ks->chunks, j->K, &k0, &k1);
        float *cs = j->epi->colsum_b ? g_ksplit + (size_t)ks->chunks * mn + (size_t)c * j->N : NULL;
        if (cs) memset(cs, 0, (size_t)j->N * sizeof(float));
        GemmEpilogue e = {.colsum_b = cs};
        GemmJob jc = {1, j->trans_b, j->M, j->N, k1 - k0, j->lda, j->ldb, j->N,
                      j->A + (size_t)k0 * j->lda,
                      j->B + (j->trans_b ? (size_t)k0 : (size_t)k0 * j->ldb),
                      g_ksplit + (size_t)c * mn, &e, 0};
        gemm_block(&jc, g_pack_b[part], g_pack_a[part], 0, (j->N + GEMM_NR - 1) / GEMM_NR, 0,
                   j->M);
    }
}

/* C += P_0 + P_1 + ... (in chunk order), rows split over the parts; part 0 also the
 * column sums */
static void gemm_ksplit_reduce(void *arg, int part, int nparts) {
    const KSplitJob *ks = arg;
    const GemmJob *j = ks->j;
    size_t mn = (size_t)j->M * j->N;
    int i0 = (int)((long long)j->M * part / nparts), i1 = (int)((long long)j->M * (part + 1) / nparts);
    for (int i = i0; i < i1; i++) {
        float *restrict c = j->C + (size_t)i * j->ldc;
        for (int k = 0; k < ks->chunks; k++) {
            const float *p = g_ksplit + (size_t)k * mn + (size_t)i * j->N;
            for (int x = 0; x < j->N; x++) c[x] = c[x] + p[x];
        }
    }
    if (part == 0 && j->epi->colsum_b)
        for (int k = 0; k < ks->chunks; k++) {
            const float *p = g_ksplit + (size_t)ks->chunks * mn + (size_t)k * j->N;
            for (int x = 0; x < j->N; x++) j->epi->colsum_b[x] = j->epi->colsum_b[x] + p[x];
        }
}

void gemm_f32(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
              const float *B, int ldb, float *C, int ldc, const GemmEpilogue *epi) {
    if (M <= 0 || N <= 0) return;
    GemmJob j = {trans_a, trans_b, M, N, K, lda, ldb, ldc, A, B, C, epi, 0};
    int chunks = gemm_ksplit_chunks(trans_a, M, N, K, epi);
    if (chunks) {
        KSplitJob ks = {&j, chunks};
        int threads = ops_blas_threads();
        ops_parallel(gemm_ksplit_part, &ks, threads < chunks ? threads : chunks);
        ops_parallel(gemm_ksplit_reduce, &ks, threads < M ? threads : M);
        return;
    }
    if (K <= 0) { /* no products: C keeps C or takes the bias (or 0), then the epilogue */
        gemm_f32_naive(trans_a, trans_b, M, N, 0, A, lda, B, ldb, C, ldc, epi);
        return;
    }
    int threads = ops_blas_threads(), panels = (N + GEMM_NR - 1) / GEMM_NR;
    int tiles = (M + GEMM_MR - 1) / GEMM_MR;
    int parts = (double)M * N * K < GEMM_MIN_WORK ? 1 : threads;
    if (parts > GEMM_MAX_PARTS) parts = GEMM_MAX_PARTS;
    /* Split the larger dimension: parts that share all rows each read all of A, parts
     * that share all panels each pack all of B. */
    if (parts > 1 && (M >= N || panels < parts) && tiles >= parts) {
        j.split_rows = 1;
    } else if (parts > panels) {
        parts = panels;
    }
    ops_parallel(gemm_part, &j, parts);
}

void gemm_f32_serial(int part, int trans_a, int trans_b, int M, int N, int K, const float *A,
                     int lda, const float *B, int ldb, float *C, int ldc,
                     const GemmEpilogue *epi) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        gemm_f32_naive(trans_a, trans_b, M, N, 0, A, lda, B, ldb, C, ldc, epi);
        return;
    }
    GemmJob j = {trans_a, trans_b, M, N, K, lda, ldb, ldc, A, B, C, epi, 0};
    gemm_block(&j, g_pack_b[part], g_pack_a[part], 0, (N + GEMM_NR - 1) / GEMM_NR, 0, M);
}

#else /* no AVX-512: ops.c keeps OpenBLAS */

int gemm_f32_available(void) { return 0; }

void gemm_f32_serial(int part, int trans_a, int trans_b, int M, int N, int K, const float *A,
                     int lda, const float *B, int ldb, float *C, int ldc,
                     const GemmEpilogue *epi) {
    (void)part;
    gemm_f32_naive(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, epi);
}

void gemm_f32(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
              const float *B, int ldb, float *C, int ldc, const GemmEpilogue *epi) {
    gemm_f32_naive(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, epi);
}

#endif
