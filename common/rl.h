/*
 * common/rl.h — the RL estimators around the losses: GAE advantages and returns, masked
 * whitening, the per-token PPO reward (docs/ppo.md), the fixed and adaptive
 * KL controllers, running score statistics (mergeable across ranks), and the
 * critic-free group advantages of GRPO and RLOO.
 *
 * How it is used (PPO, per rollout batch of B responses padded to T tokens, mask (B,T)
 * marking response tokens):
 *     rl_running_push(&score_stats, scores, B);  rl_running_normalize(scores, ...);  (opt.)
 *     rl_ppo_rewards(rewards, &rs, lp_old, lp_ref, scores, has_eos, mask, kl.beta, pen, B, T);
 *     rl_gae(adv, returns, rewards, values_old, mask, gamma, lam, B, T);
 *     rl_whiten(adv, mask, B * T, 0);
 *     ... epochs of loss_ppo_policy / loss_value ...
 *     rl_klctl_update(&kl, rs.kl_seq, B);
 * GRPO / RLOO: rl_group_advantages or rl_rloo_advantages on the scores of G samples per
 * prompt, then loss_grpo with one advantage per sequence.
 *
 * Masks are float (B,T) arrays; a token counts iff its mask is non-zero (here masks are
 * never weights). Outputs at masked-out positions are written as 0. Every function
 * defines its result for empty masks, empty groups and single samples (documented per
 * function): no NaN comes out of finite inputs. All accumulation is in double.
 *
 * What it does not do: no MPI (rl_running_merge combines per-rank triples the caller
 * gathers; the KL controller is updated identically on every learner rank from an
 * allreduced KL), no allocation, no model calls.
 */
#ifndef RLHF_RL_H
#define RLHF_RL_H

#include <stddef.h>

// ----------------------------------------------------------------------------
// GAE (Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized
// Advantage Estimation", eq. 16), per row over its masked tokens in order:
//     delta_t = r_t + gamma V_{t'} - V_t,   A_t = delta_t + gamma lambda A_{t'}
// where t' is the next masked token of the row; after the row's last masked token
// V_{t'} = 0 and A_{t'} = 0 (the episode ends: nothing to bootstrap). Unmasked positions
// are not time steps (a gap in the mask is skipped) and get adv = returns = 0.
// returns_t = A_t + V_t (the value target, TD(lambda)).
void rl_gae(float *adv, float *returns, const float *rewards, const float *values,
            const float *mask, float gamma, float lam, int B, int T);

// ----------------------------------------------------------------------------
// masked moments and whitening

typedef struct {
    double count; /* number of masked entries */
    double mean;
    double var;   /* unbiased (count - 1); 0 when count < 2 */
} RLMoments;

/* Mean and unbiased variance of x over entries with mask != 0 (mask may be NULL = all). */
RLMoments rl_masked_moments(const float *x, const float *mask, size_t n);

#define RL_WHITEN_EPS 1e-8
/* In place over the n entries with mask != 0 (mask may be NULL = all):
 *   x <- (x - mean) / sqrt(var + RL_WHITEN_EPS)     (+ mean again if keep_mean)
 * with the unbiased masked variance (TRL's `whiten`). Masked-out entries are set to 0.
 * An empty mask leaves nothing but zeros; a single entry becomes 0 (or its mean if
 * keep_mean). Returns the moments before whitening. */
RLMoments rl_whiten(float *x, const float *mask, size_t n, int keep_mean);

// ----------------------------------------------------------------------------
// per-token PPO reward (docs/ppo.md "PPO update"; Ziegler et al. 2019, eq. 2; Stiennon
// et al. 2020, eq. 1):
//     r_t = -beta (lp_old_t - lp_ref_t)                     for every masked t
//     r_T += score_b - (has_eos[b] ? 0 : no_eos_penalty)    at the row's last masked t
// The k1 KL estimate lp_old - lp_ref of the behaviour policy's samples. A row with an
// empty mask gets no reward at all (its score has no token to sit on). has_eos may be NULL
// (every row ended with EOS). Unmasked positions get 0.

typedef struct {
    double kl_seq;          /* mean over non-empty rows of sum_t (lp_old - lp_ref): the KL
                               the adaptive controller tracks */
    double kl_token;        /* mean over masked tokens of lp_old - lp_ref */
    double score;           /* mean score of non-empty rows, penalty included */
    double nonscore_reward; /* mean over non-empty rows of sum_t -beta (lp_old - lp_ref) */
    double total_reward;    /* mean over non-empty rows of sum_t r_t */
    double no_eos_frac;     /* fraction of non-empty rows without EOS */
    double n_seq;           /* rows with a non-empty mask */
    double n_tokens;
} RLRewardStats;

void rl_ppo_rewards(float *rewards, RLRewardStats *stats, const float *lp_old,
                    const float *lp_ref, const float *scores, const int *has_eos,
                    const float *mask, float beta, float no_eos_penalty, int B, int T);

// ----------------------------------------------------------------------------
// KL controllers (Ziegler et al. 2019, "Fine-Tuning Language Models from Human
// Preferences", section 2.2): fixed beta, or adaptive
//     e = clip(KL / target - 1, -0.2, 0.2),   beta <- beta (1 + e * n_steps / horizon)
// where KL is the batch's mean per-sequence KL (RLRewardStats.kl_seq) and n_steps the
// number of sequences in the batch (TRL's AdaptiveKLController).

typedef struct {
    double beta;
    double target;  /* adaptive only: target KL (nats per sequence), > 0 */
    double horizon; /* adaptive only: > 0, e.g. 10000 */
    int adaptive;   /* 0 fixed, 1 adaptive */
} RLKLCtl;

void rl_klctl_init_fixed(RLKLCtl *c, double beta);
void rl_klctl_init_adaptive(RLKLCtl *c, double beta, double target, double horizon);
/* beta >= 0 finite; if adaptive, target > 0 and horizon > 0: 0 or -1 with err. */
int rl_klctl_validate(const RLKLCtl *c, char *err);
/* No-op for a fixed controller, or when kl is not finite (beta is kept). */
void rl_klctl_update(RLKLCtl *c, double kl, double n_steps);

/* The state as RL_KLCTL_STATE_LEN doubles (beta, target, horizon, adaptive) for a
 * checkpoint; load validates (rl_klctl_validate) and leaves c unchanged on error. */
#define RL_KLCTL_STATE_LEN 4
void rl_klctl_save(const RLKLCtl *c, double out[RL_KLCTL_STATE_LEN]);
int rl_klctl_load(RLKLCtl *c, const double in[RL_KLCTL_STATE_LEN], char *err);

// ----------------------------------------------------------------------------
// running mean / variance (Welford 1962; merge of Chan, Golub & LeVeque 1979). The
// state is the triple (count, mean, M2 = sum of squared deviations): a rank gathers the
// other ranks' triples (3 doubles each) and merges them in rank order, so every rank
// ends with the same statistics.

typedef struct {
    double count, mean, m2;
} RLRunning;

void rl_running_init(RLRunning *s);
/* Add n values (the batch's own moments, then one merge: exact, order-independent up to
 * rounding). */
void rl_running_push(RLRunning *s, const float *x, size_t n);
/* a <- statistics of (a's values and b's values). */
void rl_running_merge(RLRunning *a, const RLRunning *b);
/* unbiased variance (m2 / (count - 1)); 0 when count < 2 */
double rl_running_var(const RLRunning *s);
double rl_running_std(const RLRunning *s);
/* count >= 0, m2 >= 0, all finite, count == 0 implies mean == m2 == 0: 0 or -1+err
 * (for a state read from a checkpoint). */
int rl_running_validate(const RLRunning *s, char *err);
/* Score normalisation in place: x <- (x - mean) / std when std > RL_WHITEN_EPS,
 * x <- x - mean when the std is (near) 0 but count >= 1, unchanged when count == 0. */
void rl_running_normalize(float *x, size_t n, const RLRunning *s);

// ----------------------------------------------------------------------------
// critic-free advantages, one per sequence. scores and adv are (n_groups * G), group-major
// (the G samples of prompt g at [g*G, (g+1)*G)).

/* GRPO (Shao et al. 2024, DeepSeekMath, section 4.1.2, outcome supervision):
 *   adv_i = (s_i - mean_G) / (std_G + eps)   with the unbiased group std (torch .std(),
 *   TRL); scale_by_std = 0 gives s_i - mean_G (Dr. GRPO, Liu et al. 2025). G = 1 gives 0. */
void rl_group_advantages(float *adv, const float *scores, int n_groups, int G, float eps,
                         int scale_by_std);
/* RLOO (Kool et al. 2019; Ahmadian et al. 2024): adv_i = s_i - (sum_G - s_i) / (G - 1),
 * the leave-one-out baseline. G = 1 gives 0 (no baseline can be formed: no signal). */
void rl_rloo_advantages(float *adv, const float *scores, int n_groups, int G);

/* out[b,t] = seq[b] where mask != 0, else 0: a per-sequence advantage as per-token one
 * (to feed loss_ppo_policy). out (B,T), seq (B). */
void rl_broadcast_seq(float *out, const float *seq, const float *mask, int B, int T);

#endif
