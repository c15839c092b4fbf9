/*
 * common/rl.c — GAE, whitening, the per-token PPO reward, KL controllers, running
 * statistics and group advantages (rl.h has the formulas and their sources). Everything
 * accumulates in double and writes float.
 */
#include "rl.h"

#include <math.h>

#include "util.h"

// ----------------------------------------------------------------------------
// GAE

void rl_gae(float *adv, float *returns, const float *rewards, const float *values,
            const float *mask, float gamma, float lam, int B, int T) {
    const double g = gamma, gl = (double)gamma * (double)lam;
    for (int b = 0; b < B; b++) {
        double next_v = 0.0, next_a = 0.0; /* past the row's last token: terminal */
        for (int t = T - 1; t >= 0; t--) {
            size_t i = (size_t)b * T + t;
            if (mask[i] == 0.0f) {
                adv[i] = 0.0f;
                returns[i] = 0.0f;
                continue;
            }
            double v = values[i];
            double delta = (double)rewards[i] + g * next_v - v;
            double a = delta + gl * next_a;
            adv[i] = (float)a;
            returns[i] = (float)(a + v);
            next_v = v;
            next_a = a;
        }
    }
}

// ----------------------------------------------------------------------------
// moments and whitening

RLMoments rl_masked_moments(const float *x, const float *mask, size_t n) {
    RLMoments m = {0};
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (mask && mask[i] == 0.0f) continue;
        m.count += 1.0;
        s += x[i];
    }
    if (m.count == 0.0) return m;
    m.mean = s / m.count;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (mask && mask[i] == 0.0f) continue;
        double d = x[i] - m.mean;
        ss += d * d;
    }
    m.var = m.count >= 2.0 ? ss / (m.count - 1.0) : 0.0;
    return m;
}

RLMoments rl_whiten(float *x, const float *mask, size_t n, int keep_mean) {
    RLMoments m = rl_masked_moments(x, mask, n);
    double inv = 1.0 / sqrt(m.var + RL_WHITEN_EPS), add = keep_mean ? m.mean : 0.0;
    for (size_t i = 0; i < n; i++) {
        if (mask && mask[i] == 0.0f)
            x[i] = 0.0f;
        else
            x[i] = (float)((x[i] - m.mean) * inv + add);
    }
    return m;
}

// ----------------------------------------------------------------------------
// per-token PPO reward

void rl_ppo_rewards(float *rewards, RLRewardStats *stats, const float *lp_old,
                    const float *lp_ref, const float *scores, const int *has_eos,
                    const float *mask, float beta, float no_eos_penalty, int B, int T) {
    double n_seq = 0.0, n_tok = 0.0, kl_seq = 0.0, kl_tok = 0.0, sc = 0.0, nonscore = 0.0;
    double no_eos = 0.0;
    for (int b = 0; b < B; b++) {
        int last = -1;
        double kl_row = 0.0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            if (mask[i] == 0.0f) {
                rewards[i] = 0.0f;
                continue;
            }
            double kl = (double)lp_old[i] - lp_ref[i];
            rewards[i] = (float)(-(double)beta * kl);
            kl_row += kl;
            n_tok += 1.0;
            last = t;
        }
        if (last < 0) continue;
        int eos = has_eos ? has_eos[b] != 0 : 1;
        double s = (double)scores[b] - (eos ? 0.0 : (double)no_eos_penalty);
        size_t li = (size_t)b * T + last;
        rewards[li] = (float)((double)rewards[li] + s);
        n_seq += 1.0;
        kl_seq += kl_row;
        kl_tok += kl_row;
        nonscore += -(double)beta * kl_row;
        sc += s;
        no_eos += eos ? 0.0 : 1.0;
    }
    if (stats) {
        double inv_s = n_seq > 0.0 ? 1.0 / n_seq : 0.0;
        *stats = (RLRewardStats){.kl_seq = kl_seq * inv_s,
                                 .kl_token = n_tok > 0.0 ? kl_tok / n_tok : 0.0,
                                 .score = sc * inv_s,
                                 .nonscore_reward = nonscore * inv_s,
                                 .total_reward = (nonscore + sc) * inv_s,
                                 .no_eos_frac = no_eos * inv_s,
                                 .n_seq = n_seq,
                                 .n_tokens = n_tok};
    }
}

// ----------------------------------------------------------------------------
// KL controllers

void rl_klctl_init_fixed(RLKLCtl *c, double beta) {
    *c = (RLKLCtl){.beta = beta, .target = 0.0, .horizon = 0.0, .adaptive = 0};
}

void rl_klctl_init_adaptive(RLKLCtl *c, double beta, double target, double horizon) {
    *c = (RLKLCtl){.beta = beta, .target = target, .horizon = horizon, .adaptive = 1};
}

int rl_klctl_validate(const RLKLCtl *c, char *err) {
    if (c->adaptive != 0 && c->adaptive != 1)
        return errf(err, "kl controller: adaptive = %d must be 0 (fixed) or 1", c->adaptive);
    if (!(isfinite(c->beta) && c->beta >= 0.0))
        return errf(err, "kl controller: beta = %g must be a finite number >= 0", c->beta);
    if (c->adaptive) {
        if (!(isfinite(c->target) && c->target > 0.0))
            return errf(err, "adaptive kl controller: target = %g must be > 0 (e.g. 6)",
                        c->target);
        if (!(isfinite(c->horizon) && c->horizon > 0.0))
            return errf(err, "adaptive kl controller: horizon = %g must be > 0 (e.g. 10000)",
                        c->horizon);
    }
    return 0;
}

void rl_klctl_update(RLKLCtl *c, double kl, double n_steps) {
    if (!c->adaptive || !isfinite(kl) || !isfinite(n_steps)) return;
    double e = kl / c->target - 1.0;
    e = e < -0.2 ? -0.2 : e > 0.2 ? 0.2 : e;
    c->beta *= 1.0 + e * n_steps / c->horizon;
}

void rl_klctl_save(const RLKLCtl *c, double out[RL_KLCTL_STATE_LEN]) {
    out[0] = c->beta;
    out[1] = c->target;
    out[2] = c->horizon;
    out[3] = c->adaptive;
}

int rl_klctl_load(RLKLCtl *c, const double in[RL_KLCTL_STATE_LEN], char *err) {
    if (in[3] != 0.0 && in[3] != 1.0)
        return errf(err, "kl controller state: adaptive flag = %g must be 0 or 1", in[3]);
    RLKLCtl t = {.beta = in[0], .target = in[1], .horizon = in[2], .adaptive = (int)in[3]};
    if (rl_klctl_validate(&t, err)) return -1;
    *c = t;
    return 0;
}

// ----------------------------------------------------------------------------
// running statistics

void rl_running_init(RLRunning *s) { *s = (RLRunning){0}; }

void rl_running_merge(RLRunning *a, const RLRunning *b) {
    double n = a->count + b->count;
    if (b->count == 0.0) return;
    if (a->count == 0.0) {
        *a = *b;
        return;
    }
    double delta = b->mean - a->mean;
    a->mean += delta * b->count / n;
    a->m2 += b->m2 + delta * delta * a->count * b->count / n;
    a->count = n;
}

void rl_running_push(RLRunning *s, const float *x, size_t n) {
    if (n == 0) return;
    RLMoments m = rl_masked_moments(x, NULL, n);
    RLRunning b = {.count = m.count, .mean = m.mean, .m2 = m.var * (m.count - 1.0)};
    if (m.count < 2.0) b.m2 = 0.0;
    rl_running_merge(s, &b);
}

double rl_running_var(const RLRunning *s) {
    return s->count >= 2.0 ? s->m2 / (s->count - 1.0) : 0.0;
}

double rl_running_std(const RLRunning *s) { return sqrt(rl_running_var(s)); }

int rl_running_validate(const RLRunning *s, char *err) {
    if (!(isfinite(s->count) && isfinite(s->mean) && isfinite(s->m2)))
        return errf(err, "running stats (count %g, mean %g, m2 %g): not finite", s->count,
                    s->mean, s->m2);
    if (s->count < 0.0 || s->m2 < 0.0)
        return errf(err, "running stats (count %g, m2 %g): both must be >= 0", s->count,
                    s->m2);
    if (s->count == 0.0 && (s->mean != 0.0 || s->m2 != 0.0))
        return errf(err, "running stats: count is 0 but mean = %g, m2 = %g", s->mean, s->m2);
    return 0;
}

void rl_running_normalize(float *x, size_t n, const RLRunning *s) {
    if (s->count <= 0.0) return;
    double sd = rl_running_std(s);
    double inv = sd > RL_WHITEN_EPS ? 1.0 / sd : 1.0;
    for (size_t i = 0; i < n; i++) x[i] = (float)((x[i] - s->mean) * inv);
}

// ----------------------------------------------------------------------------
// group advantages

void rl_group_advantages(float *adv, const float *scores, int n_groups, int G, float eps,
                         int scale_by_std) {
    for (int g = 0; g < n_groups; g++) {
        const float *s = scores + (size_t)g * G;
        float *a = adv + (size_t)g * G;
        RLMoments m = rl_masked_moments(s, NULL, (size_t)G);
        double div = scale_by_std ? sqrt(m.var) + (double)eps : 1.0;
        for (int i = 0; i < G; i++) {
            double d = (double)s[i] - m.mean;
            /* G = 1: d = 0; a zero-spread group with eps = 0: d = 0 as well, keep 0 */
            a[i] = d == 0.0 ? 0.0f : (float)(d / div);
        }
    }
}

void rl_rloo_advantages(float *adv, const float *scores, int n_groups, int G) {
    for (int g = 0; g < n_groups; g++) {
        const float *s = scores + (size_t)g * G;
        float *a = adv + (size_t)g * G;
        double sum = 0.0;
        for (int i = 0; i < G; i++) sum += s[i];
        for (int i = 0; i < G; i++)
            a[i] = G > 1 ? (float)((double)s[i] - (sum - s[i]) / (G - 1)) : 0.0f;
    }
}

void rl_broadcast_seq(float *out, const float *seq, const float *mask, int B, int T) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            out[i] = mask[i] != 0.0f ? seq[b] : 0.0f;
        }
}
