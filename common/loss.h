/*
 * common/loss.h — every training loss of rlhf-c as a pure function of the model heads'
 * outputs: masked token cross-entropy (SFT), Bradley–Terry and its ranking form (reward
 * model), the PPO clipped
 * policy and value losses, DPO / conservative DPO / IPO, and GRPO.
 *
 * How it is used: the model's LM head gives per-token `logprobs` and `entropy` (B,T), the
 * value head `values` (B,T), the score head `scores` (B) (gpt.h). A loss `_forward`
 * returns the loss (double) and fills a statistics struct; the matching `_backward` takes
 * the same inputs and ACCUMULATES (+=) dLoss/d(input) into its gradient outputs, which
 * the caller zeroes first (so several losses can add into one dlogprobs). The gradient
 * arrays then go to gpt_lm_backward / gpt_value_backward / gpt_score_backward. Forward
 * and backward recompute the same cheap O(B*T) per-token terms through one shared helper
 * in loss.c, so they cannot disagree.
 *
 * Masks are float (B,T) arrays, normally 0/1 (1 = a response token that counts). A mask
 * value multiplies its token's term, so fractional values act as token weights. Every
 * function handles empty masks: a loss over no tokens is 0, its gradient is 0, and every
 * statistic is 0 (never NaN).
 *
 * Token averaging (LossAgg), for the token-level losses:
 *   LOSS_AGG_TOKEN  sum over all masked tokens / number of masked tokens (TRL, DAPO);
 *   LOSS_AGG_SEQ    mean over sequences of (sum over the sequence's masked tokens / its
 *                   number of masked tokens); sequences with no masked token are left out
 *                   of the mean (DeepSeekMath GRPO, eq. 3).
 * `denom` overrides the denominator so gradient accumulation over micro-batches and
 * data-parallel ranks gives exactly the full-batch mean: with denom > 0 the TOKEN mode
 * divides by denom instead of this call's token count, the SEQ mode divides the sum of
 * per-sequence means by denom instead of this call's non-empty sequence count, and the
 * pair losses (BT, DPO) divide by denom instead of the number of pairs. denom <= 0 means
 * "this call is the whole batch". Statistics are always plain per-token (per-pair) means
 * over this call, independent of agg and denom; n_tokens / n_pairs say how many, so a
 * caller can combine them across calls.
 *
 * What it does not do: it never calls the model, allocates nothing, and does not check
 * inputs for NaN (non-finite inputs give a non-finite loss; the learner checks gradients
 * with adamw_grads_finite before stepping).
 */
#ifndef RLHF_LOSS_H
#define RLHF_LOSS_H

typedef enum { LOSS_AGG_TOKEN = 0, LOSS_AGG_SEQ = 1 } LossAgg;

// ----------------------------------------------------------------------------
// per-sequence sums of per-token values: the sequence log-prob sum_t mask * logprob
// that DPO and sequence-level scoring use.

/* out[b] = sum_t mask[b,t] * x[b,t] (double accumulation). out (B); x, mask (B,T). */
void loss_seq_sum_forward(float *out, const float *x, const float *mask, int B, int T);
/* dx[b,t] += dout[b] * mask[b,t]. */
void loss_seq_sum_backward(float *dx, const float *dout, const float *mask, int B, int T);

/* Per-token means from those sums: out[i] = s[i] / len[i] with len[i] the row's mask sum
 * (its response tokens); 0 where len[i] <= 0. The averaged sequence log-prob that TRL
 * gives IPO (loss_type="ipo": logps / loss_mask.sum). out may alias s. */
void loss_seq_mean_forward(float *out, const float *s, const float *len, int n);
/* ds[i] += dout[i] / len[i] (nothing where len[i] <= 0). */
void loss_seq_mean_backward(float *ds, const float *dout, const float *len, int n);

// ----------------------------------------------------------------------------
// masked token cross-entropy (SFT): loss = -agg(logprobs), the negative log-likelihood
// of the target tokens where mask = 1 (response tokens only).

typedef struct {
    double loss;     /* as returned */
    double nll;      /* per-token mean of -logprob over the mask (exp(nll) = perplexity) */
    double n_tokens; /* sum of the mask */
} LossCEStats;

double loss_token_ce_forward(LossCEStats *stats, const float *logprobs, const float *mask,
                             LossAgg agg, double denom, int B, int T);
void loss_token_ce_backward(float *dlogprobs, const float *mask, LossAgg agg, double denom,
                            int B, int T);

// ----------------------------------------------------------------------------
// Bradley–Terry reward-model loss (Christiano et al. 2017; Ouyang et al. 2022, eq. 1):
//   loss = mean_i -log sigmoid(r_w[i] - r_l[i] - margin[i])
// over P pairs; margin may be NULL (0) — Llama 2's per-pair margin (Touvron et al. 2023).

typedef struct {
    double loss;
    double accuracy;      /* fraction of pairs with r_w > r_l (ties count as wrong) */
    double margin;        /* mean of r_w - r_l */
    double chosen;        /* mean r_w */
    double rejected;      /* mean r_l */
    double n_pairs;
} LossBTStats;

double loss_bt_forward(LossBTStats *stats, const float *r_w, const float *r_l,
                       const float *margin, int P, double denom);
/* dr_w[i] += -sigmoid(-(d_i)) / N, dr_l[i] += +sigmoid(-d_i) / N with d_i = r_w-r_l-m. */
void loss_bt_backward(float *dr_w, float *dr_l, const float *r_w, const float *r_l,
                      const float *margin, int P, double denom);
/* Soft targets (AI feedback, rlhf-cai label): p[i] in [0, 1] is the probability that w is
 * preferred, and the loss is the cross-entropy against it,
 *   -[p log sigmoid(d) + (1 - p) log sigmoid(-d)],  d = r_w - r_l - margin,
 * with dloss/dd = sigmoid(d) - p. p NULL is the hard label: exactly loss_bt_forward (the
 * same code, bit for bit). Statistics as there. */
double loss_bt_soft_forward(LossBTStats *stats, const float *r_w, const float *r_l,
                            const float *margin, const float *p, int P, double denom);
void loss_bt_soft_backward(float *dr_w, float *dr_l, const float *r_w, const float *r_l,
                           const float *margin, const float *p, int P, double denom);

// ----------------------------------------------------------------------------
// Ranking loss (InstructGPT, Ouyang et al. 2022, eq. 1): G groups, group g = rows
// off[g] .. off[g+1]-1 of scores r with places rank[i] (1 = best, equal = tie), K_g rows:
//   loss = (1/denom) sum_g (1/C(K_g,2)) sum_{i<j in g, rank_i != rank_j} -log σ(r_w - r_l)
// with w the better-placed row of the pair; a tied pair contributes nothing (the weight
// stays 1/C(K,2), so ties shrink the group's share as in eq. 1's normalisation). denom
// <= 0 means G. With every K_g = 2 and no ties this is loss_bt_forward with denom.

typedef struct {
    double loss;
    double accuracy; /* fraction of the non-tied pairs with r_w > r_l (unweighted) */
    double margin;   /* mean r_w - r_l over those pairs */
    double n_pairs;  /* non-tied pairs */
    double n_groups;
} LossRankStats;

double loss_rank_forward(LossRankStats *stats, const float *r, const int *rank, const int *off,
                         int G, double denom);
/* dr[i] += dloss/dr[i] for every row of the G groups. */
void loss_rank_backward(float *dr, const float *r, const int *rank, const int *off, int G,
                        double denom);

// ----------------------------------------------------------------------------
// PPO clipped surrogate policy loss (Schulman et al. 2017, eq. 7), with an optional
// entropy bonus (ibid. eq. 9):
//   rho = exp(lp_new - lp_old)
//   l_t = max(-A rho, -A clip(rho, 1 - clip_low, 1 + clip_high))
//   loss = agg(l_t) - ent_coef * agg(entropy_t)
// clip_low = clip_high = epsilon is the paper; clip_high > clip_low is DAPO's clip-higher.
// dl_t/dlp_new = -A rho, or 0 where the clipped term is strictly the larger (the token is
// "clipped": A > 0 and rho > 1 + clip_high, or A < 0 and rho < 1 - clip_low).

typedef struct {
    float clip_low, clip_high; /* epsilon, e.g. 0.2 and 0.2 */
    float ent_coef;            /* entropy bonus coefficient (0 = none) */
    LossAgg agg;
    double denom;              /* <= 0: this call's count (see the top of this file) */
} LossPPOConfig;

typedef struct {
    double loss;          /* policy_loss - ent_coef * entropy term, as returned */
    double policy_loss;   /* agg(l_t) */
    double entropy;       /* per-token mean entropy (0 if entropy is NULL) */
    double clipfrac;      /* fraction of masked tokens that are clipped (see above) */
    double approx_kl;     /* mean (rho - 1) - log rho: the k3 estimator of KL(old||new) */
    double approx_kl_k2;  /* 0.5 mean (log rho)^2 */
    double ratio_mean;    /* mean rho */
    double ratio_max;     /* max rho over masked tokens (0 if none) */
    double n_tokens;
} LossPPOStats;

/* clip_low in [0, 1), clip_high >= 0, ent_coef finite, agg known: 0 or -1 with err. */
int loss_ppo_config_validate(const LossPPOConfig *cfg, char *err);
/* adv, lp_new, lp_old, mask, entropy: (B,T); entropy may be NULL (no bonus). */
double loss_ppo_policy_forward(LossPPOStats *stats, const float *lp_new, const float *lp_old,
                               const float *adv, const float *entropy, const float *mask,
                               const LossPPOConfig *cfg, int B, int T);
/* dlp_new (B,T) += dloss/dlp_new; dentropy (B,T) += -ent_coef * weight (skipped if NULL). */
void loss_ppo_policy_backward(float *dlp_new, float *dentropy, const float *lp_new,
                              const float *lp_old, const float *adv, const float *mask,
                              const LossPPOConfig *cfg, int B, int T);

// ----------------------------------------------------------------------------
// PPO clipped value loss (the OpenAI baselines / InstructGPT form):
//   V_c = V_old + clip(V - V_old, -clip, +clip)
//   l_t = 0.5 max((V - R)^2, (V_c - R)^2),   loss = agg(l_t)
// clip <= 0 disables clipping: l_t = 0.5 (V - R)^2.
// dl_t/dV = V - R, or 0 where the clipped term is strictly the larger ("clipped").

typedef struct {
    float clip; /* epsilon_v, e.g. 0.2; <= 0 for no clipping */
    LossAgg agg;
    double denom;
} LossValueConfig;

typedef struct {
    double loss;
    double clipfrac;           /* fraction of masked tokens clipped */
    double value_mean;         /* mean V over the mask */
    double return_mean;        /* mean R over the mask */
    double explained_variance; /* loss_explained_variance(V, R, mask) */
    double n_tokens;
} LossValueStats;

double loss_value_forward(LossValueStats *stats, const float *values, const float *values_old,
                          const float *returns, const float *mask, const LossValueConfig *cfg,
                          int B, int T);
void loss_value_backward(float *dvalues, const float *values, const float *values_old,
                         const float *returns, const float *mask, const LossValueConfig *cfg,
                         int B, int T);

/* 1 - Var(R - V) / Var(R) over the masked entries of n (mask weights, population
 * variances, double). 0 when the mask is empty or Var(R) is 0 (nothing to explain). */
double loss_explained_variance(const float *values, const float *returns, const float *mask,
                               int n);

// ----------------------------------------------------------------------------
// DPO family, on per-sequence response log-prob sums (policy pi_*, reference ref_*; w =
// chosen, l = rejected) over P pairs:  h = (pi_w - ref_w) - (pi_l - ref_l)
//   LOSS_DPO_SIGMOID: -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)
//                     (Rafailov et al. 2023, eq. 7; eps > 0 is conservative DPO,
//                     Mitchell 2023 — labels flipped with probability eps)
//   LOSS_DPO_IPO:     (h - 1/(2 beta))^2   (Azar et al. 2023, eq. 17, on sums as written
//                     there; TRL feeds it per-token means — loss_seq_mean_forward — and
//                     so does the dpo stage by default, dpo.ipo_logps = mean)
// loss = mean over pairs; the gradient is w.r.t. the policy sums only (dpi_l = -dpi_w).

typedef enum { LOSS_DPO_SIGMOID = 0, LOSS_DPO_IPO = 1 } LossDPOType;

typedef struct {
    LossDPOType type;
    float beta;            /* > 0, e.g. 0.1 */
    float label_smoothing; /* eps in [0, 0.5]; sigmoid type only, ignored by ipo */
    double denom;          /* <= 0: P */
} LossDPOConfig;

typedef struct {
    double loss;
    double accuracy;        /* fraction with chosen reward > rejected reward (h > 0) */
    double chosen_reward;   /* mean beta (pi_w - ref_w): DPO's implicit reward */
    double rejected_reward; /* mean beta (pi_l - ref_l) */
    double margin;          /* mean beta h = chosen_reward - rejected_reward */
    double n_pairs;
} LossDPOStats;

/* Returns -1 and fills err on a bad config (beta <= 0, eps outside [0, 0.5], unknown
 * type); callers validate once at start-up; forward/backward abort (fatal) on one. */
int loss_dpo_config_validate(const LossDPOConfig *cfg, char *err);
double loss_dpo_forward(LossDPOStats *stats, const float *pi_w, const float *pi_l,
                        const float *ref_w, const float *ref_l, const LossDPOConfig *cfg,
                        int P);
void loss_dpo_backward(float *dpi_w, float *dpi_l, const float *pi_w, const float *pi_l,
                       const float *ref_w, const float *ref_l, const LossDPOConfig *cfg,
                       int P);
/* Soft labels p[i] = P(w preferred) in [0, 1] on the implicit reward margin: sigmoid type
 * -q log sigmoid(beta h) - (1 - q) log sigmoid(-beta h) with q = p (1 - eps) + (1 - p) eps;
 * IPO (h - (2p - 1) / (2 beta))^2, the IPO target for a preference probability p (Azar
 * et al. 2023). p NULL is exactly loss_dpo_forward / loss_dpo_backward. */
double loss_dpo_soft_forward(LossDPOStats *stats, const float *pi_w, const float *pi_l,
                             const float *ref_w, const float *ref_l, const float *p,
                             const LossDPOConfig *cfg, int P);
void loss_dpo_soft_backward(float *dpi_w, float *dpi_l, const float *pi_w, const float *pi_l,
                            const float *ref_w, const float *ref_l, const float *p,
                            const LossDPOConfig *cfg, int P);

// Length-normalised negative log-likelihood of P sequences from their log-prob sums s_i
// and token counts len_i: loss = coef * sum_i (-s_i / len_i) / denom (denom <= 0: P).
// Added to DPO on the chosen responses it is the NLL term of RPO (Pang et al. 2024,
// "Iterative Reasoning Preference Optimization", eq. 2), which keeps DPO from lowering
// the likelihood of the chosen answers while it widens the margin. Sequences with
// len_i <= 0 contribute nothing.
double loss_seq_nll_forward(const float *s, const float *len, float coef, double denom, int P);
void loss_seq_nll_backward(float *ds, const float *len, float coef, double denom, int P);

// ----------------------------------------------------------------------------
// GRPO (Shao et al. 2024, DeepSeekMath, eq. 3 and 4): the PPO clipped surrogate with one
// advantage per sequence plus a KL penalty to the reference with the k3 estimator
//   x_t = lp_ref - lp_new,   k3_t = exp(x_t) - x_t - 1  (>= 0, unbiased for KL(new||ref))
//   l_t = max(-A_b rho, -A_b clip(rho, 1 - clip_low, 1 + clip_high)) + kl_coef * k3_t
//   loss = agg(l_t)      (the paper is LOSS_AGG_SEQ; LOSS_AGG_TOKEN is DAPO's)
// dk3_t/dlp_new = 1 - exp(x_t).

typedef struct {
    float clip_low, clip_high; /* e.g. 0.2, 0.2 */
    float kl_coef;             /* beta, e.g. 0.04; 0 = no KL term (lp_ref may be NULL) */
    LossAgg agg;
    double denom;
} LossGRPOConfig;

typedef struct {
    double loss;         /* as returned */
    double policy_loss;  /* agg of the clipped surrogate part */
    double kl;           /* per-token mean k3 (0 if lp_ref is NULL) */
    double clipfrac;
    double ratio_mean;
    double n_tokens;
} LossGRPOStats;

/* clip_low in [0, 1), clip_high >= 0, kl_coef >= 0, agg known: 0 or -1 with err. */
int loss_grpo_config_validate(const LossGRPOConfig *cfg, char *err);
/* adv (B): one advantage per sequence (rl_group_advantages); lp_* and mask (B,T). */
double loss_grpo_forward(LossGRPOStats *stats, const float *lp_new, const float *lp_old,
                         const float *lp_ref, const float *adv, const float *mask,
                         const LossGRPOConfig *cfg, int B, int T);
void loss_grpo_backward(float *dlp_new, const float *lp_new, const float *lp_old,
                        const float *lp_ref, const float *adv, const float *mask,
                        const LossGRPOConfig *cfg, int B, int T);

#endif
