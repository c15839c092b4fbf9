/*
 * common/adamw.h — AdamW over one contiguous parameter buffer, gradient clipping, the
 * learning-rate schedule, and a finite-gradient check.
 *
 * How it is used: the model keeps parameters and gradients as two contiguous float
 * buffers laid out by one table (gpt.h); the optimizer owns two more of the same length,
 * m and v, plus the step counter. A learner step is
 *     norm = adamw_grad_norm(grads, n);                         // after the allreduce
 *     if (!isfinite(norm)) skip the step;                       // or adamw_grads_finite
 *     adamw_step_scaled(&opt, params, grads, adamw_schedule_lr(&sched, opt.step),
 *                       adamw_clip_scale(norm, max_norm));   // clipping fused in
 * The checkpoint saves/restores opt.m, opt.v (n floats each) and opt.step directly: they
 * are the whole state (the decay table is rebuilt from the model's table at start-up).
 *
 * The update (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Alg. 2;
 * Kingma & Ba 2015 for the moments and their bias correction), with t = step after
 * incrementing, g the gradient, lr the learning rate of this step:
 *     m <- b1 m + (1 - b1) g                 v <- b2 v + (1 - b2) g^2
 *     mhat = m / (1 - b1^t)                  vhat = v / (1 - b2^t)
 *     theta <- theta - lr * ( mhat / (sqrt(vhat) + eps) + wd * theta )   (wd only where
 *                                                                         the mask says)
 * The decay is multiplied by lr (the PyTorch torch.optim.AdamW / llm.c convention, so a
 * schedule scales both terms; the paper's eta_t multiplier plays that role). The decay term
 * uses theta before this step's update.
 *
 * Weight-decay convention (nanoGPT / GPT-2 practice, adamw_decay_table_gpt): every 2-D
 * tensor decays — all linear weights, the token and position embeddings (wte, wpe), and
 * the (1,C) score/value head weights; every 1-D tensor (biases, LayerNorm gains and
 * biases) does not.
 *
 * What it does not do: no MPI (the caller allreduces gradients first, then every rank
 * runs the same deterministic update), no mixed precision, no per-group learning rates.
 */
#ifndef RLHF_ADAMW_H
#define RLHF_ADAMW_H

#include <stddef.h>

#include "gpt.h"

typedef struct {
    float beta1;        /* 0.9 */
    float beta2;        /* 0.95 (GPT-2 / nanoGPT) or 0.999 */
    float eps;          /* 1e-8 */
    float weight_decay; /* lambda, e.g. 0.1; applied where the decay table says */
} AdamWConfig;

/* One row of the decay table: params[offset, offset+numel) decay (1) or not (0). */
typedef struct {
    size_t offset, numel;
    int decay;
} AdamWRange;

typedef struct {
    AdamWConfig cfg;
    size_t n;             /* number of parameters */
    float *m, *v;         /* (n) first and second moments; checkpointed */
    long step;            /* number of updates applied so far; checkpointed */
    int num_ranges;
    AdamWRange *ranges;   /* sorted, covering [0, n) exactly */
} AdamW;

/* Defaults: beta1 0.9, beta2 0.95, eps 1e-8, weight_decay 0.1. */
AdamWConfig adamw_config_default(void);
/* Check a user-given config (0 <= beta < 1, eps > 0, wd >= 0, all finite): 0 or -1+err. */
int adamw_config_validate(const AdamWConfig *c, char *err);

/* Allocate m, v (zeroed) for n parameters; step 0; one range: everything decays.
 * Aborts only on out-of-memory. */
void adamw_init(AdamW *o, size_t n, const AdamWConfig *c);
void adamw_free(AdamW *o); /* NULL or zeroed struct: no-op */

/* Replace the decay table. The ranges may come in any order; they must have numel > 0,
 * not overlap, and cover [0, n) exactly. Returns 0, or -1 with err naming the bad row
 * (the optimizer is left unchanged). */
int adamw_set_decay_table(AdamW *o, const AdamWRange *ranges, int num_ranges, char *err);
/* Build the decay table of a GPT parameter table by the convention above: decay iff
 * ndim == 2. out must hold n rows; returns n. */
int adamw_decay_table_gpt(AdamWRange *out, const GPTTensor *tensors, int n);
/* 1 if parameter i is decayed under the current table. */
int adamw_decays(const AdamW *o, size_t i);

/* One AdamW update of params (n) with grads (n) at learning rate lr; increments step.
 * Reads grads only; params and grads must not overlap each other or m, v. Non-finite
 * gradients propagate into m, v, params: check first (adamw_clip_grad_norm's return). */
void adamw_step(AdamW *o, float *params, const float *grads, float lr);
/* adamw_step on grads multiplied by grad_scale (g * grad_scale, one float multiply: bit for
 * bit what scaling the gradients in place and then stepping computes). Global-norm
 * clipping fused into the update: adamw_step_scaled(o, p, g, lr, adamw_clip_scale(norm,
 * max)) reads the gradients once instead of scaling them in a pass of their own. */
void adamw_step_scaled(AdamW *o, float *params, const float *grads, float lr, float grad_scale);

/* Reset m, v to zero and step to 0 (e.g. a new stage starting from loaded weights). */
void adamw_reset(AdamW *o);

// ----------------------------------------------------------------------------
// gradients

/* sqrt(sum g_i^2), accumulated in double: sqrt(adamw_grad_sumsq(grads, n)). */
double adamw_grad_norm(const float *grads, size_t n);
/* sum g_i^2 in double (fixed association, see adamw.c): the part of a global norm one
 * shard contributes (zero.h adds the ranks' parts). */
double adamw_grad_sumsq(const float *grads, size_t n);
/* Global-norm clipping: computes the L2 norm (double) and, if max_norm > 0 and the norm
 * exceeds it, multiplies every gradient by max_norm / norm, so the new norm is max_norm.
 * Returns the norm BEFORE clipping. If the norm is not finite (a NaN or Inf gradient)
 * nothing is scaled and the non-finite norm is returned: the caller must skip the step. */
double adamw_clip_grad_norm(float *grads, size_t n, float max_norm);
/* The factor global-norm clipping multiplies gradients by: max_norm / norm if max_norm > 0
 * and a finite norm exceeds it, else 1 (also for a non-finite norm: skip that step). */
float adamw_clip_scale(double norm, float max_norm);
/* 1 if all n values are finite; else 0 and *first_bad (if not NULL) = the first index. */
int adamw_grads_finite(const float *grads, size_t n, size_t *first_bad);

// ----------------------------------------------------------------------------
// learning-rate schedule

/* Linear warmup then cosine decay to min_lr (Loshchilov & Hutter 2017, SGDR, without
 * restarts; the nanoGPT / llm.c schedule). For the 0-based index s of the update about
 * to be applied (pass opt.step):
 *     s <  warmup:           lr = max_lr * (s + 1) / warmup
 *     warmup <= s < total:   r  = (s - warmup) / (total - warmup)
 *                            lr = min_lr + 0.5 * (1 + cos(pi * r)) * (max_lr - min_lr)
 *     s >= total:            lr = min_lr
 * So the first update uses max_lr/warmup, update `warmup` uses max_lr exactly, and the
 * rate approaches min_lr as s -> total. warmup = 0 means no warmup; total = 0 means a
 * constant max_lr (no decay). */
typedef struct {
    float max_lr;
    float min_lr;
    long warmup; /* updates */
    long total;  /* updates; 0 = constant max_lr after warmup */
} AdamWSchedule;

/* 0 <= min_lr <= max_lr, finite; warmup >= 0; total == 0 or total > warmup. */
int adamw_schedule_validate(const AdamWSchedule *s, char *err);
float adamw_schedule_lr(const AdamWSchedule *s, long step);

#endif
