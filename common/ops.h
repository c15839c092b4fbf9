/*
 * common/ops.h — the kernels of GPT-2 in fp32 (gemm.c's GEMM or OpenBLAS): every op is a
 * `_forward`/`_backward` pair (outputs first, then inputs, then sizes), the llm.c way.
 *
 * Used by gpt.c (training path and KV-cache decoding) and by sample.c (the log-softmax
 * row). Shapes are given in comments; all tensors are dense row-major fp32.
 *
 * Conventions:
 *   - `_backward` functions ACCUMULATE (+=) into the weight gradients and into the input
 *     gradients of LayerNorm, the LM head, the embedding, residuals and row dots (the
 *     residual stream adds up there), so the caller zeroes those buffers explicitly (gpt.c
 *     does, per step); the input gradients of matmul, attention, GELU and the
 *     log-softmax are WRITTEN (each has one consumer in GPT-2; no memset needed);
 *   - linear weights are in Hugging Face Conv1D layout (in, out): y = x W + b;
 *   - a `_naive` function is the scalar reference of the optimised kernel of the same
 *     name: tests compare one against the other, the model never calls it;
 *   - no function allocates memory: scratch space is passed in by the caller.
 * Nothing here checks user input: sizes and token ids are the caller's invariants
 * (gpt.c validates them) and a violation is undefined behaviour, not an error code.
 */
#ifndef RLHF_OPS_H
#define RLHF_OPS_H

#include <stddef.h>
#include <stdint.h>

// ----------------------------------------------------------------------------
// BLAS set-up

/* Set the kernels' thread count (threads <= 0: keep it, or on the first call take what
 * OPENBLAS_NUM_THREADS or OpenBLAS's default chose) and return the name of the core
 * OpenBLAS dispatched to (e.g. "Haswell"; OPENBLAS_CORETYPE overrides the detection).
 * OpenBLAS itself is set to one thread: the kernels below split every GEMM, element-wise
 * op and attention over their own pool of that many threads (ops.c says why). */
const char *ops_blas_setup(int threads);
/* The most kernel threads per rank: the pool's size, and the per-thread packing buffers of
 * gemm.c (static, ~0.7 MB each, so a larger cap costs memory in every process). Counts
 * above it are clamped by ops_blas_setup; run.threads refuses them (config_keys.h) and
 * run.threads = 0 caps its choice with a note (mpi_util.c). More CPUs per node are used
 * by running more ranks per node. */
#define OPS_MAX_THREADS 64
/* The kernels' thread count. */
int ops_blas_threads(void);

/* Run fn(arg, part, nparts) for part = 0..nparts-1 on the kernels' thread pool and return
 * when all have finished: nparts = ops_blas_threads(), capped by max_parts; part 0 runs
 * on the caller, the workers sleep between jobs. Not reentrant: one job at a time, never
 * from inside fn. (Used by the kernels below and by adamw.c.) */
typedef void (*OpsPartFn)(void *arg, int part, int nparts);
void ops_parallel(OpsPartFn fn, void *arg, int max_parts);

/* Which GEMM the linear layers and the LM head use: gemm.c's own kernel (on > 0; only
 * where it was compiled in, AVX-512) or OpenBLAS (on == 0); on < 0 only asks. Returns the
 * setting before the call. Default: the "auto" rule of ops_gemm_choose. For benchmarks
 * and tests that compare the two; not thread-safe against running kernels. */
int ops_gemm_own(int on);

/* Apply run.gemm: "own" (gemm.c where compiled in), "openblas", or "auto" (gemm.c on
 * Intel CPUs with AVX-512, OpenBLAS elsewhere: the faster of the two as measured, see
 * ops.c). Returns a one-line description for logs, e.g. "OpenBLAS (auto: not an Intel
 * CPU)". Any other mode is taken as "auto" (config validation rejects it first). */
const char *ops_gemm_choose(const char *mode);

/* x[0..n) = 0, split over the pool (gradient buffers of 124M parameters are 0.5 GB). */
void ops_zero(float *x, size_t n);

// ----------------------------------------------------------------------------
// embedding: out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:]

void encoder_forward(float *out, const int *tokens, const float *wte, const float *wpe,
                     int B, int T, int C);
/* out (B,T,C); tokens (B,T) in [0,V); wte (V,C); wpe (>=T,C) */
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int B,
                      int T, int C);

// ----------------------------------------------------------------------------
// layer normalisation (Ba, Kiros & Hinton 2016), eps = GPT_LN_EPS, over the last dim

/* out (N,C), mean (N), rstd (N) = 1/sqrt(var + eps) (saved for the backward);
 * inp (N,C); weight, bias (C) */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C);

// ----------------------------------------------------------------------------
// linear layer, HF Conv1D layout: out (N,OC) = inp (N,C) @ weight (C,OC) + bias (OC)

/* gemm.c (or cblas_sgemm); bias may be NULL. */
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int N, int C, int OC);
/* scalar triple loop (double accumulation): the reference for matmul_forward */
void matmul_forward_naive(float *out, const float *inp, const float *weight,
                          const float *bias, int N, int C, int OC);
/* Batch-invariant kernel for generation: each output element is accumulated in the
 * same fixed order (k = 0..C-1, one multiply then one add, starting from the bias)
 * whatever N is and whichever rows share the call, so a row's result depends only on
 * that row. OpenBLAS sgemm does not have this property (its micro-kernels round
 * differently for edge blocks of rows), which would make sampled tokens depend on the
 * batch a sequence was generated in. Rows are processed in register blocks; W is
 * streamed once per block of rows. */
void matmul_forward_rows(float *out, const float *inp, const float *weight,
                         const float *bias, int N, int C, int OC);
/* The same results, bit for bit, reading the weight from a panel-major copy made by
 * matmul_pack_rows. The kernel walks 48 columns of W down its C rows; in the (C,OC)
 * layout that is 192 bytes every OC floats (a page crossed every row); packed, each of the
 * three 16-column groups is one sequential stream that the prefetchers follow. Decoding at
 * small batch is bound by reading the weights, so this is the generation path's matmul
 * (gpt.c packs the trunk at a prefill, see GPT.weights_version). The columns past the last whole 16 (OC % 16)
 * are read from `weight`; packed NULL reads all of them there (matmul_forward_rows). */
void matmul_forward_rows_packed(float *out, const float *inp, const float *packed,
                                const float *weight, const float *bias, int N, int C, int OC);
/* floats of the packed copy of a (C,OC) weight: C x (OC rounded down to 16), then a few
 * KiB of slack that the kernel's prefetch may touch past the last panel */
size_t matmul_packed_floats(int C, int OC);
/* packed[p][k][0..16) = weight[k][16p .. 16p+16) for every whole 16-column panel p (split
 * over the pool), the slack zeroed; packed holds matmul_packed_floats(C, OC) floats. */
void matmul_pack_rows(float *packed, const float *weight, int C, int OC);
/* The same panel-major layout from a weight stored (OC,C) (Llama's (out, in) linear
 * layers): packed[p][k][j] = weight[16p + j][k]. */
void matmul_pack_cols(float *packed, const float *weight, int C, int OC);
/* bfloat16 copies (uint16_t elements, matmul_packed_floats(C, OC) of them), each weight
 * rounded to nearest even (bf16_from_f32), in the same panels; within a panel the
 * x86-64-v4 copy of the library stores W's rows in pairs (the layout of the AVX512-BF16
 * dot product), the others one after the other — read them only through the kernels below,
 * in the process that packed them. */
void matmul_pack_rows_bf16(uint16_t *packed, const float *weight, int C, int OC);
void matmul_pack_cols_bf16(uint16_t *packed, const float *weight, int C, int OC);
/* matmul_forward_rows_packed from a bf16 copy: each weight widened to fp32 exactly, then
 * the same fused multiply-adds in the same order, so the result equals, bit for bit,
 * matmul_forward_rows_packed on the weights rounded to bf16 — half the bytes streamed per
 * decode step. `weight` ((C,OC) fp32) serves the OC % 16 edge columns as there; NULL is
 * allowed when OC % 16 == 0. */
void matmul_forward_rows_packed_bf16(float *out, const float *inp, const uint16_t *packed,
                                     const float *weight, const float *bias, int N, int C,
                                     int OC);
/* The LM head logits (N,V) = inp (N,C) @ wte^T through the panel kernel, from
 * matmul_pack_cols's copy of the (V,C) embedding (fp32, or bf16 widened exactly): each
 * logit is matmul_forward_rows's chain (k = 0..C-1 in order from 0), so the results are
 * those of matmul_forward_rows on wte^T, bit for bit, and do not depend on the batch.
 * The V % 16 last vocabulary rows are read from `wte` itself (rounded to bf16 first for
 * the bf16 copy). The decode copy's head (gpt.c): the dot-product kernel below reads the
 * (V,C) rows in place but is held back by its loads of x and lane reductions. */
void lmhead_forward_rows_packed(float *logits, const float *inp, const float *packed,
                                const float *wte, int N, int C, int V);
void lmhead_forward_rows_packed_bf16(float *logits, const float *inp, const uint16_t *packed,
                                     const float *wte, int N, int C, int V);
/* The bf16 dot-product kernels: matmul_forward_rows_packed_bf16 and
 * lmhead_forward_rows_packed_bf16 with the inputs rounded to bf16 as well, multiplied two
 * input rows at a time by AVX512-BF16's vdpbf16ps (acc + x[k] w[k] + x[k+1] w[k+1], the
 * products exact, fp32 accumulation) — half the instructions of widening each weight, for
 * the compute-bound part of a bf16 decode step. Each output's chain depends on its own
 * row only, so the results do not depend on the batch or the thread count; they differ
 * from the fp32 kernels' by the inputs' rounding (about 2^-9 relative per input) and may
 * differ between CPU makers in the last bit. xpairs: scratch of N * ((C + 1) / 2) words
 * (the inputs as bf16_pairs_from_f32 writes them). The OC % 16 (V % 16) edge columns are
 * computed as by the widening kernels (the LM head's with the inputs rounded too). Only
 * where ops_bf16_dot_supported() (the x86-64-v4 copy on a CPU with AVX512-BF16); a fatal
 * error elsewhere. */
int ops_bf16_dot_supported(void);
void matmul_forward_rows_packed_bf16dot(float *out, const float *inp, uint32_t *xpairs,
                                        const uint16_t *packed, const float *weight,
                                        const float *bias, int N, int C, int OC);
void lmhead_forward_rows_packed_bf16dot(float *logits, const float *inp, uint32_t *xpairs,
                                        const uint16_t *packed, const float *wte, int N, int C,
                                        int V);
/* each row of src (N,C) as (C + 1) / 2 words: bf16(x[2i]) | bf16(x[2i+1]) << 16, an odd
 * C's last word bf16(x[C-1]) alone (bf16_from_f32's rounding) */
void bf16_pairs_from_f32(uint32_t *dst, const float *src, int N, int C);
/* bfloat16: the top 16 bits of an IEEE float. Conversion rounds to nearest, ties to
 * even (NaN stays NaN); widening is exact. */
uint16_t bf16_from_f32(float x);
float bf16_to_f32(uint16_t h);
void bf16_from_f32_array(uint16_t *dst, const float *src, size_t n);
/* dinp (N,C) = dout @ weight^T (written: the input gradient of a linear layer has no
 * other contribution in GPT-2); dweight (C,OC) += inp^T @ dout; dbias (OC) += colsum
 * (accumulated, so micro-batches add up). dbias may be NULL (no bias). */
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int C, int OC);

/* The same in torch's nn.Linear layout, weight (OC,C): out (N,OC) = inp @ weight^T + bias
 * (bias may be NULL). linear_backward: dinp (N,C) = dout @ weight (written); dweight
 * (OC,C) += dout^T @ inp; dbias (OC) += colsum(dout) (dbias may be NULL). */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int N, int C, int OC);
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int C, int OC);

/* The MLP's two GELU seams fused into the GEMMs (gemm.c epilogues; with OpenBLAS, the
 * separate calls): matmul_gelu_forward = matmul_forward into out, then out_gelu =
 * gelu(out); matmul_gelu_backward = matmul_backward, then dinp = gelu'(gelu_inp) dinp.
 * Bit-identical to the separate calls: the GELU code is the same, run on each finished
 * tile while it is in cache instead of in a pass of its own over (N, 4C). */
/* out (N,OC) = residual + (inp @ weight + bias): c_proj and the residual add after it in
 * one pass (bit-identical to matmul_forward then residual_forward). */
void matmul_residual_forward(float *out, const float *inp, const float *weight,
                             const float *bias, const float *residual, int N, int C, int OC);
void matmul_gelu_forward(float *out, float *out_gelu, const float *inp, const float *weight,
                         const float *bias, int N, int C, int OC);
void matmul_gelu_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, const float *gelu_inp, int N,
                          int C, int OC);

// ----------------------------------------------------------------------------
// LM head tied to the token embedding: logits (N,V) = inp (N,C) @ wte (V,C)^T

void lmhead_forward(float *logits, const float *inp, const float *wte, int N, int C, int V);
/* batch-invariant variant for generation (see matmul_forward_rows): 16 lanes over k, then
 * a fixed tree, reading wte in place (the decode copy packs it: lmhead_forward_rows_packed) */
void lmhead_forward_rows(float *logits, const float *inp, const float *wte, int N, int C,
                         int V);
/* dinp (N,C) += dlogits @ wte; dwte (V,C) += dlogits^T @ inp */
void lmhead_backward(float *dinp, float *dwte, const float *dlogits, const float *inp,
                     const float *wte, int N, int C, int V);

// ----------------------------------------------------------------------------
// causal multi-head self-attention (Vaswani et al. 2017, eq. 1) on the fused qkv buffer
// qkv (B,T,3C): for token (b,t) the q, k, v of head h are the hs = C/NH floats at
// offsets h*hs, C + h*hs, 2C + h*hs. Scores are scaled by 1/sqrt(hs) and masked so that
// position t attends to positions 0..t only.

/* out (B,T,C): head h writes columns h*hs..; att (B,NH,T,T): the softmax probabilities
 * (zero above the diagonal), saved for the backward. Per (b,h) and per block of
 * OPS_ATT_BLOCK query rows: cblas_sgemm for Q K^T and P V reading q, k, v in place with
 * leading dimension 3C, over the keys up to the block's last row only (causal) — or, with
 * gemm.c's kernel, the whole T x T per pair, skipping the panels above the diagonal and
 * the zero terms of P (GEMM_CAUSAL_*). */
#define OPS_ATT_BLOCK 64
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                       int NH);
/* scalar reference (double accumulation) of attention_forward */
void attention_forward_naive(float *out, float *att, const float *qkv, int B, int T, int C,
                             int NH);
/* dqkv (B,T,3C) is written (every element). scratch holds `slots` (T,T) blocks, all
 * overwritten: the (b,h) pairs are split over up to `slots` threads (see ops.c). */
void attention_backward(float *dqkv, float *scratch, int slots, const float *dout,
                        const float *qkv, const float *att, int B, int T, int C, int NH);

/* Generation (forward only, no backward): one query row against a KV cache. For each
 * head h, with K_h, V_h the (T,hs) blocks at kc + h*T*hs and vc + h*T*hs:
 *   out[h*hs..] = softmax(q_h K_h[0..n)^T / sqrt(hs)) V_h[0..n)
 * out (C); scores (n) scratch; q (C); n <= T keys. Fixed-order loops (batch-invariant). */
void attention_row_forward(float *out, float *scores, const float *q, const float *kc,
                           const float *vc, int n, int T, int C, int NH);
/* Its two halves, shared with Llama's grouped-query row (ops_llama.h):
 * scores[s] = scale * (q . K[s]) for s < n (K (n,hd)), each dot summed in 8 lanes
 * (element i into lane i % 8, in order) then ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7));
 * o[i] = sum over s in order of (p[s] * inv) * V[s][i] (V (n,hd)), from 0.
 * Products and sums rounded separately (no contraction): the same bits as the plain
 * loops, for any n. */
void attention_qk_row(float *scores, const float *q, const float *K, int n, int hd, float scale);
void attention_pv_row(float *o, const float *p, float inv, const float *V, int n, int hd);

// ----------------------------------------------------------------------------
// GELU, tanh approximation (Hendrycks & Gimpel 2016, sec. 2):
// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))

void gelu_forward(float *out, const float *inp, size_t N);
/* dinp = gelu'(inp) dout (written) */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t N);

// ----------------------------------------------------------------------------
// residual: out = a + b

void residual_forward(float *out, const float *a, const float *b, size_t N);
void residual_backward(float *da, float *db, const float *dout, size_t N);

// ----------------------------------------------------------------------------
// scalar projection of rows (score and value heads): out[n] = inp[n,:] . w + (b ? *b : 0)

void rowdot_forward(float *out, const float *inp, const float *w, const float *b, int N,
                    int C);
/* dinp (N,C) += dout[n] w; dw (C) += sum_n dout[n] inp[n]; db (1) += sum dout (if not NULL) */
void rowdot_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C);

// ----------------------------------------------------------------------------
// fused log-softmax at a temperature: with z = logits / temperature,
//   lse = logsumexp(z), logprob = z[target] - lse, entropy = -sum p log p = lse - sum p z.
// One pass over each row (after its max); rows whose target is < 0 are skipped
// (logprob = entropy = 0, lse = 0, no gradient). temperature > 0.

/* Sampling weights of one row x (n): e[i] = exp(x[i] * inv_t - mx) with mx the row's max
 * of x * inv_t (0 where that is below -87: e^-87 is under the float resolution of a sum
 * that holds a 1), the vectorised exp of the log-softmax; block[b] (double) = the sum of
 * e over block b of SOFTMAX_BLOCK elements; returns the sum of the blocks. sample.c draws
 * from these without a serial pass over the row. */
#define SOFTMAX_BLOCK 64
double softmax_row_weights(float *e, double *block, const float *x, int n, float inv_t);
/* logprobs, entropy, lse (N); logits (N,V); targets (N) */
void logprob_forward(float *logprobs, float *entropy, float *lse, const float *logits,
                     const int *targets, float temperature, int N, int V);
/* dlogits (N,V) = d/dlogits of sum_n dlogprobs[n] logprob[n] + dentropy[n] entropy[n]:
 *   dz_i = dlogprob (1[i = target] - p_i) - dentropy p_i (log p_i + entropy),
 *   dlogits = dz / temperature
 * (written; rows whose target is < 0 are zeroed). dlogprobs or dentropy may be NULL.
 * dlogits may be the logits themselves (in place). lse and entropy are the outputs of
 * logprob_forward on the same inputs. */
void logprob_backward(float *dlogits, const float *dlogprobs, const float *dentropy,
                      const float *logits, const float *lse, const float *entropy,
                      const int *targets, float temperature, int N, int V);

#endif
