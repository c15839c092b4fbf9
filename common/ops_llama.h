/*
 * common/ops_llama.h — the kernels the Llama family adds to ops.h's (fp32): RMSNorm,
 * rotary position embeddings (with Llama 3's frequency scaling), the SwiGLU gate,
 * grouped-query causal attention (training and its single-row decode form), and the
 * position-free token embedding. Same conventions as ops.h: `_forward`/`_backward` pairs,
 * outputs first, shapes in comments, no allocation, no input checking (gpt.c validates),
 * work split over ops.h's pool so that every output element is computed by the same code
 * whatever the thread count (bit-identical results for any number of threads).
 *
 * Layout of the fused projection buffer `qkv` (one row per token, width
 * W = (NH + 2 NKV) hd): the NH query heads, then the NKV key heads, then the NKV value
 * heads, hd floats each — what one GEMM against the row-concatenation of Hugging Face's
 * q_proj, k_proj, v_proj weights produces. Query head h reads key/value head h / (NH/NKV)
 * (grouped-query attention; NKV = 1 is multi-query, NKV = NH ordinary multi-head).
 */
#ifndef RLHF_OPS_LLAMA_H
#define RLHF_OPS_LLAMA_H

#include <stddef.h>

// ----------------------------------------------------------------------------
// token embedding without positions: out[n,:] = wte[tokens[n],:]

/* out (N,C); tokens (N) in [0,V); wte (V,C) */
void embedding_forward(float *out, const int *tokens, const float *wte, int N, int C);
/* dwte (V,C) += dout rows at their tokens (accumulated, in row order) */
void embedding_backward(float *dwte, const float *dout, const int *tokens, int N, int C);

// ----------------------------------------------------------------------------
// RMSNorm (Zhang & Sennrich 2019): y = w x / sqrt(mean(x^2) + eps) over rows of C.
// Rows are (n, g) for n < N, g < G, at offset n*ld + g*C in both inp and out (G = 1,
// ld = C: a plain (N,C) tensor; G heads of C = hd inside a wider row: Qwen3's per-head
// q_norm / k_norm on the fused qkv buffer). out may equal inp.

/* out as inp; rstd (N,G) = 1/sqrt(mean(x^2) + eps), saved for the backward; weight (C) */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                     float eps, int N, int G, int C, int ld);
/* dinp (as inp) += dL/dx; dweight (C) += sum over rows of dout x rstd (accumulated) */
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, int N, int G, int C, int ld);

// ----------------------------------------------------------------------------
// rotary position embedding (Su et al. 2021), the half-split form of Hugging Face's
// `rotate_half`: for a head x of hd floats at position p and i < hd/2, with
// a = p inv_freq[i]:
//   y[i]        = x[i] cos a - x[i + hd/2] sin a
//   y[i + hd/2] = x[i + hd/2] cos a + x[i] sin a

/* inv_freq (hd/2) = theta^(-2i/hd); with factor > 0 rescaled as Llama 3 does
 * (transformers' _compute_llama3_parameters: wavelengths above orig_ctx / low_freq_factor
 * divided by factor, below orig_ctx / high_freq_factor kept, smoothly interpolated in
 * between). factor <= 0: no scaling. Double precision: the angles p inv_freq of long
 * contexts need it. */
void rope_inv_freq(double *inv_freq, int hd, double theta, double factor,
                   double low_freq_factor, double high_freq_factor, double orig_ctx);
/* Rows n < N hold nh heads of hd at n*ld + h*hd (in inp and out; out may equal inp);
 * row n is at position pos[n] (training: t; decoding: the cache position, so rotations
 * continue after the prefill). */
void rope_forward(float *out, const float *inp, const double *inv_freq, const int *pos, int N,
                  int nh, int hd, int ld);
/* dinp = the inverse rotation of dout (written; dinp may equal dout) */
void rope_backward(float *dinp, const float *dout, const double *inv_freq, const int *pos,
                   int N, int nh, int hd, int ld);

// ----------------------------------------------------------------------------
// SwiGLU (Shazeer 2020): out = silu(g) * u, silu(g) = g / (1 + e^-g), on the fused
// gate|up rows that one GEMM against gate_proj and up_proj stacked produces

/* out (N,F); inp (N,2F): row n is gate[0..F) then up[0..F) */
void swiglu_forward(float *out, const float *inp, int N, int F);
/* dinp (N,2F) written: dgate = dout u silu'(g), dup = dout silu(g) */
void swiglu_backward(float *dinp, const float *dout, const float *inp, int N, int F);

// ----------------------------------------------------------------------------
// grouped-query causal self-attention on the fused qkv buffer (see the top): scores
// scaled by 1/sqrt(hd), position t attends to 0..t.

/* out (B,T,NH*hd): head h writes columns h*hd..; att (B,NH,T,T) softmax probabilities
 * (zero above the diagonal), saved for the backward; qkv (B,T,(NH+2NKV)hd).
 * Split over (b, h) pairs. */
void gqa_attention_forward(float *out, float *att, const float *qkv, int B, int T, int NH,
                           int NKV, int hd);
/* scalar double-precision reference of gqa_attention_forward (tests) */
void gqa_attention_forward_naive(float *out, float *att, const float *qkv, int B, int T, int NH,
                                 int NKV, int hd);
/* dqkv (B,T,(NH+2NKV)hd) written (every element). Split over (b, kv head) pairs, the
 * NH/NKV query heads of a pair in order (their key/value gradients add up in that order),
 * each part using its own (T,T) block of scratch (`slots` of them). */
void gqa_attention_backward(float *dqkv, float *scratch, int slots, const float *dout,
                            const float *qkv, const float *att, int B, int T, int NH, int NKV,
                            int hd);
/* Decoding: one query row q (NH*hd) against a cache whose kv head j holds keys and values
 * as (T,hd) blocks at kc + j*T*hd, vc + j*T*hd; n <= T keys. out (NH*hd); scores (n)
 * scratch. Fixed-order loops: the result depends only on this row (batch-invariant). */
void gqa_attention_row_forward(float *out, float *scores, const float *q, const float *kc,
                               const float *vc, int n, int T, int NH, int NKV, int hd);

#endif
