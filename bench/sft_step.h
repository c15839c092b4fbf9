/*
 * bench/sft_step.h — one timed SFT learner step (masked token cross-entropy, grad-norm
 * clip at 1, AdamW), the unit the memory benchmarks (bench_lm_chunk, bench_recompute)
 * measure. Header-only: each bench is one program.
 */
#ifndef RLHF_BENCH_SFT_STEP_H
#define RLHF_BENCH_SFT_STEP_H

#include "adamw.h"
#include "gpt.h"
#include "loss.h"
#include "util.h"

/* Seconds for one step on tokens/targets (B,T) with loss mask `mask`; dlp is (B,T) scratch. */
static inline double sft_step(GPT *m, AdamW *opt, const int *tokens, const int *targets,
                              const float *mask, float *dlp, int B, int T) {
    double t0 = time_now();
    gpt_zero_grad(m);
    gpt_forward(m, tokens, B, T);
    gpt_lm_forward(m, targets, B, T);
    LossCEStats st;
    loss_token_ce_forward(&st, m->logprobs, mask, LOSS_AGG_TOKEN, 0.0, B, T);
    loss_token_ce_backward(dlp, mask, LOSS_AGG_TOKEN, 0.0, B, T);
    gpt_lm_backward(m, dlp, NULL, B, T);
    double norm = adamw_grad_norm(m->grads, m->num_params);
    adamw_step_scaled(opt, m->params, m->grads, 1e-4f, norm > 1.0 ? (float)(1.0 / norm) : 1.0f);
    return time_now() - t0;
}

#endif
