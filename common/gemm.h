/*
 * common/gemm.h — our own fp32 GEMM for the training step's linear layers, with fused
 * epilogues (bias, accumulate, a per-row callback for GELU and its gradient).
 *
 * Why not OpenBLAS everywhere: on the small inner dimensions of the tiny model (K = 128 to
 * 512) OpenBLAS spends as long packing both operands as multiplying (perf: 15 % of a tiny
 * training step in its copy routines against 43 % in its kernel, a third as much), each
 * thread of our pool packs the operand it shares with the other threads again, and a
 * bias, GELU or residual add is a separate pass over the output. Here B is packed once
 * per (group of 32-column panels, 256-deep block) by the thread that owns the panels, A is
 * read in place (broadcast one element at a time), and the epilogue works on a finished
 * tile while it is in registers (GELU with vmath.h's formulas: the bits of ops.c's GELU
 * passes). Measured on an Intel Xeon VM: the tiny step 1.16-1.19x, 124M 1.03-1.06x.
 *
 * Arithmetic: every element of C is one chain of fused multiply-adds over k = 0..K-1 in
 * order, starting from C (accumulate), the bias, or 0 — whichever tile, panel or thread
 * computes it — so results do not depend on the thread count or the shape of the split.
 * Built only with AVX-512 (x86-64 -march with avx512f); elsewhere gemm_f32_available()
 * is 0 and ops.c keeps OpenBLAS.
 */
#ifndef RLHF_GEMM_H
#define RLHF_GEMM_H

#include <stddef.h>

typedef struct {
    int accumulate;             /* 1: C += A B (C read first); 0: C = A B (+ bias) */
    const float *bias;          /* (N) the chain's starting value; only with !accumulate */
    float *gelu_out;            /* optional: also gelu_out = gelu(C), laid out as C (ldc) */
    const float *gelu_grad_inp; /* optional: C = gelu'(gelu_grad_inp) * (A B), laid out as
                                 * C; only with !accumulate and no bias */
    float scale;                /* nonzero: C = scale * (A B) (the finished chain times
                                 * scale); only with !accumulate, no bias, no GELU */
    const float *residual;      /* optional: C = residual + (the chain), laid out as C
                                 * (a residual add); only with !accumulate, no scale */
    float *colsum_b;            /* optional (N): colsum_b[j] += sum_k op(B)(k, j), k in
                                 * order (a bias gradient); only with B not transposed */
    int causal, causal_off;     /* GEMM_CAUSAL_*: the causal structure of attention */
} GemmEpilogue;

/* Causal shapes (d = causal_off), all exact: a skipped term is a zero of A (fma(0, b, c)
 * = c for finite b), a skipped output is one the caller does not read.
 *   GEMM_CAUSAL_OUT:    only C(i, j) with j <= i + d are needed; whole 32-column panels
 *                       past that are skipped (left as they were), the rest computed;
 *   GEMM_CAUSAL_K_UPTO: op(A)(i, k) = 0 for k > i + d (row i of a causal P or dS);
 *   GEMM_CAUSAL_K_FROM: op(A)(i, k) = 0 for k < i + d (P or dS transposed). */
enum { GEMM_CAUSAL_NONE = 0, GEMM_CAUSAL_OUT, GEMM_CAUSAL_K_UPTO, GEMM_CAUSAL_K_FROM };

/* 1 when the kernel below was compiled in (AVX-512), 0 otherwise. */
int gemm_f32_available(void);

/* C (M,N) = op(A) op(B) [+ C | + bias], row-major, ldc >= N:
 * (The weight-gradient shape — A transposed, accumulate, no other epilogue but colsum_b,
 * K >= 1024 — is split over k in fixed chunks of 512 summed in order: each element is
 * C + P_0 + P_1 + ..., each P_c one FMA chain from zero; the column sums likewise.)
 *   op(A) (M,K) is A (M,K) with row stride lda, or A (K,M) transposed (trans_a);
 *   op(B) (K,N) is B (K,N) with row stride ldb, or B (N,K) transposed (trans_b).
 * Split over the ops.c pool by 12-row tiles when M >= N (each part then packs all of B)
 * or by 32-column panels otherwise (each part reads all of A). Without AVX-512 it runs
 * gemm_f32_naive (ops.c does not call it then). */
void gemm_f32(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
              const float *B, int ldb, float *C, int ldc, const GemmEpilogue *epi);

/* The same product on the calling thread only, with the packing buffers of pool part
 * `part` (0 <= part < 64): for kernels that already run one job per pool part (attention
 * runs one (batch, head) pair per call). It never splits over k, so on the split
 * weight-gradient shape (see gemm_f32) its bits are the unsplit chain's. */
void gemm_f32_serial(int part, int trans_a, int trans_b, int M, int N, int K, const float *A,
                     int lda, const float *B, int ldb, float *C, int ldc,
                     const GemmEpilogue *epi);

/* The scalar reference: the same chain per element (fmaf over k in order, from C, the
 * bias or 0), then the GELU epilogue with vmath.h's scalar formulas. Tests compare
 * gemm_f32 with it bit for bit. */
void gemm_f32_naive(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                    const float *B, int ldb, float *C, int ldc, const GemmEpilogue *epi);

#endif
