/*
 * common/loss.c — the losses of loss.h. Each loss has one static per-element helper that
 * returns the element's loss term and its derivative; `_forward` sums the terms with the
 * aggregation weights, `_backward` scatters the derivatives with the same weights. All
 * arithmetic is double, inputs and gradient outputs are float. Elements whose mask is 0
 * are skipped without being read, so padding may hold anything (even NaN).
 */
#include "loss.h"

#include <math.h>
#include <stddef.h>

#include "util.h"

// ----------------------------------------------------------------------------
// numerics shared by the losses

/* log(1 + exp(x)) without overflow for large |x| */
static inline double softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

/* 1 / (1 + exp(-x)) without overflow */
static inline double sigmoid(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

static inline double clampd(double x, double lo, double hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

// ----------------------------------------------------------------------------
// token aggregation (LossAgg): the weight of token (b,t) is mask[b,t] * row_scale(b)

static double row_sum(const float *mask, int b, int T) {
    double c = 0.0;
    for (int t = 0; t < T; t++) c += mask[(size_t)b * T + t];
    return c;
}

/* The denominator: denom if given, else the token count (TOKEN) or the number of
 * sequences with a non-empty mask (SEQ). */
static double agg_norm(const float *mask, LossAgg agg, double denom, int B, int T) {
    ASSERT(agg == LOSS_AGG_TOKEN || agg == LOSS_AGG_SEQ);
    if (denom > 0.0) return denom;
    double n = 0.0;
    for (int b = 0; b < B; b++) {
        double c = row_sum(mask, b, T);
        n += agg == LOSS_AGG_TOKEN ? c : (c > 0.0 ? 1.0 : 0.0);
    }
    return n;
}

static double agg_row_scale(const float *mask, LossAgg agg, double norm, int b, int T) {
    if (!(norm > 0.0)) return 0.0;
    if (agg == LOSS_AGG_TOKEN) return 1.0 / norm;
    double c = row_sum(mask, b, T);
    return c > 0.0 ? 1.0 / (c * norm) : 0.0;
}

static inline double safe_div(double a, double b) { return b > 0.0 ? a / b : 0.0; }

// ----------------------------------------------------------------------------
// per-sequence sums

void loss_seq_sum_forward(float *out, const float *x, const float *mask, int B, int T) {
    for (int b = 0; b < B; b++) {
        double s = 0.0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            if (mask[i] != 0.0f) s += (double)mask[i] * x[i];
        }
        out[b] = (float)s;
    }
}

void loss_seq_sum_backward(float *dx, const float *dout, const float *mask, int B, int T) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            if (mask[i] != 0.0f) dx[i] += dout[b] * mask[i];
        }
}

void loss_seq_mean_forward(float *out, const float *s, const float *len, int n) {
    for (int i = 0; i < n; i++) out[i] = len[i] > 0.0f ? (float)((double)s[i] / len[i]) : 0.0f;
}

void loss_seq_mean_backward(float *ds, const float *dout, const float *len, int n) {
    for (int i = 0; i < n; i++)
        if (len[i] > 0.0f) ds[i] += (float)((double)dout[i] / len[i]);
}

// ----------------------------------------------------------------------------
// masked token cross-entropy

double loss_token_ce_forward(LossCEStats *stats, const float *logprobs, const float *mask,
                             LossAgg agg, double denom, int B, int T) {
    double norm = agg_norm(mask, agg, denom, B, T);
    double loss = 0.0, nll = 0.0, nt = 0.0;
    for (int b = 0; b < B; b++) {
        double scale = agg_row_scale(mask, agg, norm, b, T);
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            double m = mask[i];
            if (m == 0.0) continue;
            loss -= m * scale * logprobs[i];
            nll -= m * logprobs[i];
            nt += m;
        }
    }
    if (stats) *stats = (LossCEStats){.loss = loss, .nll = safe_div(nll, nt), .n_tokens = nt};
    return loss;
}

void loss_token_ce_backward(float *dlogprobs, const float *mask, LossAgg agg, double denom,
                            int B, int T) {
    double norm = agg_norm(mask, agg, denom, B, T);
    for (int b = 0; b < B; b++) {
        double scale = agg_row_scale(mask, agg, norm, b, T);
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            if (mask[i] != 0.0f) dlogprobs[i] += (float)(-(double)mask[i] * scale);
        }
    }
}

// ----------------------------------------------------------------------------
// Bradley–Terry

/* loss term softplus(-d) = -log sigmoid(d), d = r_w - r_l - margin; *dd = dloss/dd */
static inline double bt_pair(double d, double *dd) {
    *dd = -sigmoid(-d);
    return softplus(-d);
}

/* The soft-target term -[p log σ(d) + (1-p) log σ(-d)] and its derivative σ(d) - p. */
static inline double bt_soft_pair(double d, double p, double *dd) {
    *dd = sigmoid(d) - p;
    return p * softplus(-d) + (1.0 - p) * softplus(d);
}

double loss_bt_forward(LossBTStats *stats, const float *r_w, const float *r_l,
                       const float *margin, int P, double denom) {
    return loss_bt_soft_forward(stats, r_w, r_l, margin, NULL, P, denom);
}

void loss_bt_backward(float *dr_w, float *dr_l, const float *r_w, const float *r_l,
                      const float *margin, int P, double denom) {
    loss_bt_soft_backward(dr_w, dr_l, r_w, r_l, margin, NULL, P, denom);
}

double loss_bt_soft_forward(LossBTStats *stats, const float *r_w, const float *r_l,
                            const float *margin, const float *p, int P, double denom) {
    double norm = denom > 0.0 ? denom : (double)P;
    double loss = 0.0, acc = 0.0, mar = 0.0, ch = 0.0, rej = 0.0, dd;
    for (int i = 0; i < P; i++) {
        double d = (double)r_w[i] - r_l[i] - (margin ? margin[i] : 0.0);
        loss += p ? bt_soft_pair(d, p[i], &dd) : bt_pair(d, &dd);
        acc += r_w[i] > r_l[i] ? 1.0 : 0.0;
        mar += (double)r_w[i] - r_l[i];
        ch += r_w[i];
        rej += r_l[i];
    }
    loss = safe_div(loss, norm);
    if (stats)
        *stats = (LossBTStats){.loss = loss,
                               .accuracy = safe_div(acc, P),
                               .margin = safe_div(mar, P),
                               .chosen = safe_div(ch, P),
                               .rejected = safe_div(rej, P),
                               .n_pairs = P};
    return loss;
}

void loss_bt_soft_backward(float *dr_w, float *dr_l, const float *r_w, const float *r_l,
                           const float *margin, const float *p, int P, double denom) {
    double norm = denom > 0.0 ? denom : (double)P;
    if (!(norm > 0.0)) return;
    for (int i = 0; i < P; i++) {
        double d = (double)r_w[i] - r_l[i] - (margin ? margin[i] : 0.0), dd;
        if (p) bt_soft_pair(d, p[i], &dd);
        else bt_pair(d, &dd);
        dr_w[i] += (float)(dd / norm);
        dr_l[i] -= (float)(dd / norm);
    }
}

// ----------------------------------------------------------------------------
// rankings: Bradley–Terry over every non-tied pair of a group, weighted 1/C(K,2)

/* The loss of one group (already weighted) and, when dr is given, its gradient scaled
 * by 1/norm added to dr. st (may be NULL) accumulates pairs, correct pairs, margins. */
static double rank_group(const float *r, const int *rank, int lo, int hi, float *dr, double norm,
                         double st[3]) {
    int k = hi - lo;
    if (k < 2) return 0.0;
    double w = 2.0 / ((double)k * (double)(k - 1)), loss = 0.0, dd;
    for (int i = lo; i < hi; i++)
        for (int j = i + 1; j < hi; j++) {
            if (rank[i] == rank[j]) continue;
            int wi = rank[i] < rank[j] ? i : j, li = wi == i ? j : i;
            double d = (double)r[wi] - r[li];
            loss += w * bt_pair(d, &dd);
            if (dr) {
                dr[wi] += (float)(w * dd / norm);
                dr[li] -= (float)(w * dd / norm);
            }
            if (st) {
                st[0] += 1.0;
                st[1] += r[wi] > r[li] ? 1.0 : 0.0;
                st[2] += d;
            }
        }
    return loss;
}

double loss_rank_forward(LossRankStats *stats, const float *r, const int *rank, const int *off,
                         int G, double denom) {
    double norm = denom > 0.0 ? denom : (double)G, loss = 0.0, st[3] = {0, 0, 0};
    for (int g = 0; g < G; g++) loss += rank_group(r, rank, off[g], off[g + 1], NULL, 1.0, st);
    loss = safe_div(loss, norm);
    if (stats)
        *stats = (LossRankStats){.loss = loss,
                                 .accuracy = safe_div(st[1], st[0]),
                                 .margin = safe_div(st[2], st[0]),
                                 .n_pairs = st[0],
                                 .n_groups = G};
    return loss;
}

void loss_rank_backward(float *dr, const float *r, const int *rank, const int *off, int G,
                        double denom) {
    double norm = denom > 0.0 ? denom : (double)G;
    if (!(norm > 0.0)) return;
    for (int g = 0; g < G; g++) rank_group(r, rank, off[g], off[g + 1], dr, norm, NULL);
}

// ----------------------------------------------------------------------------
// PPO / GRPO clipped surrogate, one token

typedef struct {
    double loss;    /* max(-A rho, -A clip(rho)) */
    double dlp;     /* d loss / d lp_new */
    double ratio;   /* rho */
    double logr;    /* log rho */
    int clipped;    /* the clipped term is strictly the larger: zero gradient */
} ClipTerm;

static inline ClipTerm clip_token(double lp_new, double lp_old, double A, double lo,
                                  double hi) {
    ClipTerm c;
    c.logr = lp_new - lp_old;
    c.ratio = exp(c.logr);
    double l1 = -A * c.ratio;
    double l2 = -A * clampd(c.ratio, 1.0 - lo, 1.0 + hi);
    if (l2 > l1) {
        c.loss = l2;
        c.dlp = 0.0; /* clip(rho) is constant outside the interval, where this happens */
        c.clipped = 1;
    } else {
        c.loss = l1;
        c.dlp = -A * c.ratio; /* d rho / d lp_new = rho */
        c.clipped = 0;
    }
    return c;
}

static int clip_config_validate(const char *what, float lo, float hi, LossAgg agg, char *err) {
    if (!(isfinite(lo) && lo >= 0.0f && lo < 1.0f))
        return errf(err, "%s clip_low = %g: must be in [0, 1) (e.g. 0.2)", what, (double)lo);
    if (!(isfinite(hi) && hi >= 0.0f))
        return errf(err, "%s clip_high = %g: must be >= 0 (e.g. 0.2)", what, (double)hi);
    if (agg != LOSS_AGG_TOKEN && agg != LOSS_AGG_SEQ)
        return errf(err, "%s agg = %d: must be token (0) or seq (1)", what, (int)agg);
    return 0;
}

// ----------------------------------------------------------------------------
// PPO policy loss

int loss_ppo_config_validate(const LossPPOConfig *cfg, char *err) {
    if (clip_config_validate("ppo", cfg->clip_low, cfg->clip_high, cfg->agg, err)) return -1;
    if (!isfinite(cfg->ent_coef))
        return errf(err, "ppo ent_coef = %g: must be finite (e.g. 0 or 0.01)",
                    (double)cfg->ent_coef);
    return 0;
}

double loss_ppo_policy_forward(LossPPOStats *stats, const float *lp_new, const float *lp_old,
                               const float *adv, const float *entropy, const float *mask,
                               const LossPPOConfig *cfg, int B, int T) {
    double norm = agg_norm(mask, cfg->agg, cfg->denom, B, T);
    double pg = 0.0, ent_agg = 0.0;
    double nt = 0.0, s_ent = 0.0, s_clip = 0.0, s_k3 = 0.0, s_k2 = 0.0, s_ratio = 0.0;
    double rmax = 0.0;
    for (int b = 0; b < B; b++) {
        double scale = agg_row_scale(mask, cfg->agg, norm, b, T);
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            double m = mask[i];
            if (m == 0.0) continue;
            ClipTerm c = clip_token(lp_new[i], lp_old[i], adv[i], cfg->clip_low,
                                    cfg->clip_high);
            pg += m * scale * c.loss;
            if (entropy) {
                ent_agg += m * scale * entropy[i];
                s_ent += m * entropy[i];
            }
            nt += m;
            s_clip += m * c.clipped;
            s_k3 += m * ((c.ratio - 1.0) - c.logr);
            s_k2 += m * 0.5 * c.logr * c.logr;
            s_ratio += m * c.ratio;
            if (c.ratio > rmax) rmax = c.ratio;
        }
    }
    double loss = pg - (double)cfg->ent_coef * ent_agg;
    if (stats)
        *stats = (LossPPOStats){.loss = loss,
                                .policy_loss = pg,
                                .entropy = safe_div(s_ent, nt),
                                .clipfrac = safe_div(s_clip, nt),
                                .approx_kl = safe_div(s_k3, nt),
                                .approx_kl_k2 = safe_div(s_k2, nt),
                                .ratio_mean = safe_div(s_ratio, nt),
                                .ratio_max = rmax,
                                .n_tokens = nt};
    return loss;
}

void loss_ppo_policy_backward(float *dlp_new, float *dentropy, const float *lp_new,
                              const float *lp_old, const float *adv, const float *mask,
                              const LossPPOConfig *cfg, int B, int T) {
    double norm = agg_norm(mask, cfg->agg, cfg->denom, B, T);
    for (int b = 0; b < B; b++) {
        double scale = agg_row_scale(mask, cfg->agg, norm, b, T);
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            double m = mask[i];
            if (m == 0.0) continue;
            ClipTerm c = clip_token(lp_new[i], lp_old[i], adv[i], cfg->clip_low,
                                    cfg->clip_high);
            dlp_new[i] += (float)(m * scale * c.dlp);
            if (dentropy) dentropy[i] += (float)(-(double)cfg->ent_coef * m * scale);
        }
    }
}

// ----------------------------------------------------------------------------
// PPO value loss

typedef struct {
    double loss, dv;
    int clipped;
} ValueTerm;

static inline ValueTerm value_token(double V, double V_old, double R, double clip) {
    ValueTerm v;
    double d1 = V - R;
    double l1 = d1 * d1;
    v.clipped = 0;
    v.loss = 0.5 * l1;
    v.dv = d1;
    if (clip > 0.0) {
        double d2 = V_old + clampd(V - V_old, -clip, clip) - R;
        double l2 = d2 * d2;
        if (l2 > l1) { /* only possible when V - V_old is outside the clip: constant in V */
            v.loss = 0.5 * l2;
            v.dv = 0.0;
            v.clipped = 1;
        }
    }
    return v;
}

double loss_explained_variance(const float *values, const float *returns, const float *mask,
                               int n) {
    double w = 0.0, mr = 0.0, md = 0.0;
    for (int i = 0; i < n; i++) {
        if (mask[i] == 0.0f) continue;
        w += mask[i];
        mr += (double)mask[i] * returns[i];
        md += (double)mask[i] * ((double)returns[i] - values[i]);
    }
    if (!(w > 0.0)) return 0.0;
    mr /= w;
    md /= w;
    double vr = 0.0, vd = 0.0;
    for (int i = 0; i < n; i++) {
        if (mask[i] == 0.0f) continue;
        double r = returns[i] - mr, d = ((double)returns[i] - values[i]) - md;
        vr += mask[i] * r * r;
        vd += mask[i] * d * d;
    }
    if (!(vr > 0.0)) return 0.0;
    return 1.0 - vd / vr;
}

double loss_value_forward(LossValueStats *stats, const float *values, const float *values_old,
                          const float *returns, const float *mask, const LossValueConfig *cfg,
                          int B, int T) {
    double norm = agg_norm(mask, cfg->agg, cfg->denom, B, T);
    double loss = 0.0, nt = 0.0, s_clip = 0.0, s_v = 0.0, s_r = 0.0;
    for (int b = 0; b < B; b++) {
        double scale = agg_row_scale(mask, cfg->agg, norm, b, T);
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            double m = mask[i];
            if (m == 0.0) continue;
            ValueTerm v = value_token(values[i], values_old[i], returns[i], cfg->clip);
            loss += m * scale * v.loss;
            nt += m;
            s_clip += m * v.clipped;
            s_v += m * values[i];
            s_r += m * returns[i];
        }
    }
    if (stats)
        *stats = (LossValueStats){
            .loss = loss,
            .clipfrac = safe_div(s_clip, nt),
            .value_mean = safe_div(s_v, nt),
            .return_mean = safe_div(s_r, nt),
            .explained_variance = loss_explained_variance(values, returns, mask, B * T),
            .n_tokens = nt};
    return loss;
}

void loss_value_backward(float *dvalues, const float *values, const float *values_old,
                         const float *returns, const float *mask, const LossValueConfig *cfg,
                         int B, int T) {
    double norm = agg_norm(mask, cfg->agg, cfg->denom, B, T);
    for (int b = 0; b < B; b++) {
        double scale = agg_row_scale(mask, cfg->agg, norm, b, T);
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            double m = mask[i];
            if (m == 0.0) continue;
            ValueTerm v = value_token(values[i], values_old[i], returns[i], cfg->clip);
            dvalues[i] += (float)(m * scale * v.dv);
        }
    }
}

// ----------------------------------------------------------------------------
// DPO, conservative DPO, IPO

int loss_dpo_config_validate(const LossDPOConfig *cfg, char *err) {
    if (cfg->type != LOSS_DPO_SIGMOID && cfg->type != LOSS_DPO_IPO)
        return errf(err, "dpo loss type = %d: must be sigmoid (0) or ipo (1)", (int)cfg->type);
    if (!(isfinite(cfg->beta) && cfg->beta > 0.0f))
        return errf(err, "dpo beta = %g: must be > 0 (e.g. 0.1)", (double)cfg->beta);
    if (!(isfinite(cfg->label_smoothing) && cfg->label_smoothing >= 0.0f &&
          cfg->label_smoothing <= 0.5f))
        return errf(err, "dpo label_smoothing = %g: must be in [0, 0.5]",
                    (double)cfg->label_smoothing);
    return 0;
}

/* loss term of one pair as a function of h, and dloss/dh */
static inline double dpo_pair(double h, const LossDPOConfig *cfg, double *dh) {
    double beta = cfg->beta;
    if (cfg->type == LOSS_DPO_IPO) {
        double e = h - 1.0 / (2.0 * beta);
        *dh = 2.0 * e;
        return e * e;
    }
    double eps = cfg->label_smoothing, z = beta * h;
    /* -log sigmoid(z) = softplus(-z);  d/dz softplus(-z) = -sigmoid(-z) */
    *dh = beta * (-(1.0 - eps) * sigmoid(-z) + eps * sigmoid(z));
    return (1.0 - eps) * softplus(-z) + eps * softplus(z);
}

/* The same with a soft label p = P(w preferred): sigmoid with the target probability
 * q = p (1 - eps) + (1 - p) eps; IPO with the target margin (2p - 1) / (2 beta), Azar et
 * al.'s (p - 1/2) / tau. */
static inline double dpo_soft_pair(double h, const LossDPOConfig *cfg, double p, double *dh) {
    double beta = cfg->beta;
    if (cfg->type == LOSS_DPO_IPO) {
        double e = h - (2.0 * p - 1.0) / (2.0 * beta);
        *dh = 2.0 * e;
        return e * e;
    }
    double eps = cfg->label_smoothing, q = p * (1.0 - eps) + (1.0 - p) * eps, z = beta * h;
    *dh = beta * (-q * sigmoid(-z) + (1.0 - q) * sigmoid(z));
    return q * softplus(-z) + (1.0 - q) * softplus(z);
}

static void dpo_check(const LossDPOConfig *cfg) {
    char err[ERRBUF_LEN];
    if (loss_dpo_config_validate(cfg, err)) fatal("%s", err);
}

double loss_dpo_forward(LossDPOStats *stats, const float *pi_w, const float *pi_l,
                        const float *ref_w, const float *ref_l, const LossDPOConfig *cfg,
                        int P) {
    return loss_dpo_soft_forward(stats, pi_w, pi_l, ref_w, ref_l, NULL, cfg, P);
}

void loss_dpo_backward(float *dpi_w, float *dpi_l, const float *pi_w, const float *pi_l,
                       const float *ref_w, const float *ref_l, const LossDPOConfig *cfg,
                       int P) {
    loss_dpo_soft_backward(dpi_w, dpi_l, pi_w, pi_l, ref_w, ref_l, NULL, cfg, P);
}

double loss_dpo_soft_forward(LossDPOStats *stats, const float *pi_w, const float *pi_l,
                             const float *ref_w, const float *ref_l, const float *p,
                             const LossDPOConfig *cfg, int P) {
    dpo_check(cfg);
    double norm = cfg->denom > 0.0 ? cfg->denom : (double)P;
    double loss = 0.0, acc = 0.0, cr = 0.0, rr = 0.0, dh;
    for (int i = 0; i < P; i++) {
        double dw = (double)pi_w[i] - ref_w[i], dl = (double)pi_l[i] - ref_l[i];
        double h = dw - dl;
        loss += p ? dpo_soft_pair(h, cfg, p[i], &dh) : dpo_pair(h, cfg, &dh);
        acc += h > 0.0 ? 1.0 : 0.0;
        cr += cfg->beta * dw;
        rr += cfg->beta * dl;
    }
    loss = safe_div(loss, norm);
    if (stats)
        *stats = (LossDPOStats){.loss = loss,
                                .accuracy = safe_div(acc, P),
                                .chosen_reward = safe_div(cr, P),
                                .rejected_reward = safe_div(rr, P),
                                .margin = safe_div(cr - rr, P),
                                .n_pairs = P};
    return loss;
}

void loss_dpo_soft_backward(float *dpi_w, float *dpi_l, const float *pi_w, const float *pi_l,
                            const float *ref_w, const float *ref_l, const float *p,
                            const LossDPOConfig *cfg, int P) {
    dpo_check(cfg);
    double norm = cfg->denom > 0.0 ? cfg->denom : (double)P;
    if (!(norm > 0.0)) return;
    for (int i = 0; i < P; i++) {
        double h = ((double)pi_w[i] - ref_w[i]) - ((double)pi_l[i] - ref_l[i]), dh;
        if (p) dpo_soft_pair(h, cfg, p[i], &dh);
        else dpo_pair(h, cfg, &dh);
        dpi_w[i] += (float)(dh / norm);
        dpi_l[i] -= (float)(dh / norm);
    }
}

double loss_seq_nll_forward(const float *s, const float *len, float coef, double denom, int P) {
    double norm = denom > 0.0 ? denom : (double)P, loss = 0.0;
    for (int i = 0; i < P; i++)
        if (len[i] > 0.0f) loss -= (double)s[i] / len[i];
    return safe_div(coef * loss, norm);
}

void loss_seq_nll_backward(float *ds, const float *len, float coef, double denom, int P) {
    double norm = denom > 0.0 ? denom : (double)P;
    if (!(norm > 0.0)) return;
    for (int i = 0; i < P; i++)
        if (len[i] > 0.0f) ds[i] += (float)(-coef / (len[i] * norm));
}

// ----------------------------------------------------------------------------
// GRPO

int loss_grpo_config_validate(const LossGRPOConfig *cfg, char *err) {
    if (clip_config_validate("grpo", cfg->clip_low, cfg->clip_high, cfg->agg, err)) return -1;
    if (!(isfinite(cfg->kl_coef) && cfg->kl_coef >= 0.0f))
        return errf(err, "grpo kl_coef = %g: must be >= 0 (e.g. 0.04)", (double)cfg->kl_coef);
    return 0;
}

/* k3 = exp(x) - x - 1 with x = lp_ref - lp_new, via expm1 (exact near x = 0);
 * *dlp = dk3/dlp_new = -(exp(x) - 1) */
static inline double k3_term(double lp_new, double lp_ref, double *dlp) {
    double x = lp_ref - lp_new, em1 = expm1(x);
    *dlp = -em1;
    return em1 - x;
}

double loss_grpo_forward(LossGRPOStats *stats, const float *lp_new, const float *lp_old,
                         const float *lp_ref, const float *adv, const float *mask,
                         const LossGRPOConfig *cfg, int B, int T) {
    ASSERT(lp_ref != NULL || cfg->kl_coef == 0.0f);
    double norm = agg_norm(mask, cfg->agg, cfg->denom, B, T);
    double pg = 0.0, kl_agg = 0.0, nt = 0.0, s_kl = 0.0, s_clip = 0.0, s_ratio = 0.0, dk;
    for (int b = 0; b < B; b++) {
        double scale = agg_row_scale(mask, cfg->agg, norm, b, T);
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            double m = mask[i];
            if (m == 0.0) continue;
            ClipTerm c = clip_token(lp_new[i], lp_old[i], adv[b], cfg->clip_low,
                                    cfg->clip_high);
            pg += m * scale * c.loss;
            if (lp_ref) {
                double k3 = k3_term(lp_new[i], lp_ref[i], &dk);
                kl_agg += m * scale * k3;
                s_kl += m * k3;
            }
            nt += m;
            s_clip += m * c.clipped;
            s_ratio += m * c.ratio;
        }
    }
    double loss = pg + (double)cfg->kl_coef * kl_agg;
    if (stats)
        *stats = (LossGRPOStats){.loss = loss,
                                 .policy_loss = pg,
                                 .kl = safe_div(s_kl, nt),
                                 .clipfrac = safe_div(s_clip, nt),
                                 .ratio_mean = safe_div(s_ratio, nt),
                                 .n_tokens = nt};
    return loss;
}

void loss_grpo_backward(float *dlp_new, const float *lp_new, const float *lp_old,
                        const float *lp_ref, const float *adv, const float *mask,
                        const LossGRPOConfig *cfg, int B, int T) {
    ASSERT(lp_ref != NULL || cfg->kl_coef == 0.0f);
    double norm = agg_norm(mask, cfg->agg, cfg->denom, B, T);
    for (int b = 0; b < B; b++) {
        double scale = agg_row_scale(mask, cfg->agg, norm, b, T);
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            double m = mask[i];
            if (m == 0.0) continue;
            ClipTerm c = clip_token(lp_new[i], lp_old[i], adv[b], cfg->clip_low,
                                    cfg->clip_high);
            double d = c.dlp;
            if (lp_ref && cfg->kl_coef != 0.0f) {
                double dk;
                k3_term(lp_new[i], lp_ref[i], &dk);
                d += (double)cfg->kl_coef * dk;
            }
            dlp_new[i] += (float)(m * scale * d);
        }
    }
}
