/*
 * tests/test_loss.c — every loss of loss.h three ways: hand-computed values on tiny inputs
 * (the arithmetic is written out next to each check), central finite differences in double
 * of the loss w.r.t. every input array element (masked-out ones included: their gradient
 * must be 0), and PyTorch autograd in float64 on random inputs (tests/ref/loss.txt,
 * written by tests/ref/gen_ref.py). Also: empty masks give 0 and never NaN, padding holding
 * NaN is ignored, backward accumulates, and splitting a batch with `denom` reproduces the
 * full-batch loss and gradient exactly.
 */
#include "loss.h"

#include <math.h>
#include <string.h>

#include "ref/fixture.h"
#include "rng.h"
#include "test.h"
#include "util.h"

// ----------------------------------------------------------------------------
// finite differences

/* One loss as a function of all its inputs; which input is perturbed is chosen by the
 * pointer handed to fd_check. */
typedef struct {
    int B, T, P;
    float *x1, *x2, *x3, *x4, *x5, *mask;
    LossAgg agg;
    double denom;
    const void *cfg;
} Ctx;

typedef double (*LossFn)(const Ctx *c);

/* Central differences of f w.r.t. each of the n values of x (a float input inside c): the
 * actually representable perturbation is used as the step, so the only errors are the
 * O(h^2) truncation and double rounding. Checks every analytic grad[i] against it. */
static void fd_check(const char *what, LossFn f, const Ctx *c, float *x, const float *grad,
                     int n) {
    const double h = 1e-3;
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        float save = x[i];
        float xp = (float)(save + h), xm = (float)(save - h);
        x[i] = xp;
        double lp = f(c);
        x[i] = xm;
        double lm = f(c);
        x[i] = save;
        double fd = (lp - lm) / ((double)xp - (double)xm);
        double err = fabs(fd - grad[i]);
        CHECK_MSG(err <= 1e-6 + 1e-4 * fabs(fd), "%s: d/dx[%d] analytic %.9g, numeric %.9g",
                  what, i, (double)grad[i], fd);
        if (err > worst) worst = err;
    }
    fprintf(stderr, "  fd %-28s max |analytic - numeric| = %.2e\n", what, worst);
}

static void fill_normal(Rng *r, float *x, int n, float mean, float sd) {
    for (int i = 0; i < n; i++) x[i] = mean + sd * rng_normal(r);
}

/* B = 4, T = 6: a full row, a short one, an empty one and one with a gap. */
static const float MASK46[24] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0,
                                 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0};

static void check_all_zero(const char *what, const float *g, int n) {
    for (int i = 0; i < n; i++) CHECK_MSG(g[i] == 0.0f, "%s[%d] = %g", what, i, (double)g[i]);
}

// ----------------------------------------------------------------------------
// sequence sums

static void test_seq_sum(void) {
    /* rows (1, 2, 3) and (4, 5, 6) with masks (1, 0, 1) and (0, 0, 0): sums 4 and 0 */
    float x[6] = {1, 2, 3, 4, 5, 6}, m[6] = {1, 0, 1, 0, 0, 0}, out[2];
    loss_seq_sum_forward(out, x, m, 2, 3);
    CHECK(out[0] == 4.0f && out[1] == 0.0f);
    float dx[6] = {1, 1, 1, 1, 1, 1}, dout[2] = {0.5f, 2.0f};
    loss_seq_sum_backward(dx, dout, m, 2, 3); /* accumulates: 1 + 0.5 where masked */
    CHECK(dx[0] == 1.5f && dx[1] == 1.0f && dx[2] == 1.5f && dx[3] == 1.0f && dx[5] == 1.0f);
}

// ----------------------------------------------------------------------------
// cross-entropy

static double ce_fn(const Ctx *c) {
    return loss_token_ce_forward(NULL, c->x1, c->mask, c->agg, c->denom, c->B, c->T);
}

static void test_ce_by_hand(void) {
    /* lp = (-1, -2, -3 | -0.5, -4, -9), mask (1, 1, 0 | 1, 0, 0)
     * TOKEN: (1 + 2 + 0.5) / 3 = 1.1666667, d/dlp = -1/3 on masked tokens
     * SEQ:   row means 1.5 and 0.5 -> (1.5 + 0.5) / 2 = 1, d/dlp = -1/(2*2), -1/(1*2)
     * TOKEN with denom 7: 3.5 / 7 = 0.5, d/dlp = -1/7 */
    float lp[6] = {-1, -2, -3, -0.5f, -4, -9}, m[6] = {1, 1, 0, 1, 0, 0}, g[6];
    LossCEStats st;
    CHECK_NEAR(loss_token_ce_forward(&st, lp, m, LOSS_AGG_TOKEN, 0, 2, 3), 3.5 / 3, 1e-12, 0);
    CHECK_NEAR(st.nll, 3.5 / 3, 1e-12, 0);
    CHECK_NEAR(st.n_tokens, 3, 0, 0);
    memset(g, 0, sizeof g);
    loss_token_ce_backward(g, m, LOSS_AGG_TOKEN, 0, 2, 3);
    CHECK_NEAR(g[0], -1.0 / 3, 1e-7, 0);
    CHECK_NEAR(g[3], -1.0 / 3, 1e-7, 0);
    CHECK(g[2] == 0.0f && g[4] == 0.0f && g[5] == 0.0f);
    CHECK_NEAR(loss_token_ce_forward(&st, lp, m, LOSS_AGG_SEQ, 0, 2, 3), 1.0, 1e-12, 0);
    CHECK_NEAR(st.nll, 3.5 / 3, 1e-12, 0); /* stats stay per-token means */
    memset(g, 0, sizeof g);
    loss_token_ce_backward(g, m, LOSS_AGG_SEQ, 0, 2, 3);
    CHECK_NEAR(g[0], -0.25, 1e-7, 0);
    CHECK_NEAR(g[1], -0.25, 1e-7, 0);
    CHECK_NEAR(g[3], -0.5, 1e-7, 0);
    CHECK_NEAR(loss_token_ce_forward(NULL, lp, m, LOSS_AGG_TOKEN, 7, 2, 3), 0.5, 1e-12, 0);
    memset(g, 0, sizeof g);
    loss_token_ce_backward(g, m, LOSS_AGG_TOKEN, 7, 2, 3);
    CHECK_NEAR(g[1], -1.0 / 7, 1e-7, 0);
}

static void test_ce_fd(void) {
    Rng r;
    rng_init(&r, 11);
    float lp[24], g[24], m[24];
    memcpy(m, MASK46, sizeof m);
    m[7] = 0.5f; /* a fractional weight */
    fill_normal(&r, lp, 24, -2.0f, 1.0f);
    for (int agg = 0; agg < 2; agg++) {
        Ctx c = {.B = 4, .T = 6, .x1 = lp, .mask = m, .agg = (LossAgg)agg, .denom = 0};
        memset(g, 0, sizeof g);
        loss_token_ce_backward(g, m, c.agg, 0, 4, 6);
        fd_check(agg ? "ce seq" : "ce token", ce_fn, &c, lp, g, 24);
    }
}

// ----------------------------------------------------------------------------
// Bradley–Terry

static double bt_fn(const Ctx *c) {
    return loss_bt_forward(NULL, c->x1, c->x2, c->x3, c->P, c->denom);
}

static void test_bt_by_hand(void) {
    /* r_w = (2, 0), r_l = (0, 1): d = (2, -1)
     * loss = (softplus(-2) + softplus(1)) / 2 = (0.1269280 + 1.3132617) / 2 = 0.7200948
     * d/dr_w = -sigmoid(-d) / 2 = (-0.1192029/2, -0.7310586/2); d/dr_l = the opposite */
    float rw[2] = {2, 0}, rl[2] = {0, 1}, dw[2] = {0}, dl[2] = {0};
    LossBTStats st;
    double expect = (log1p(exp(-2.0)) + log1p(exp(1.0))) / 2;
    CHECK_NEAR(loss_bt_forward(&st, rw, rl, NULL, 2, 0), expect, 1e-12, 0);
    CHECK_NEAR(expect, 0.7200948, 1e-7, 0);
    CHECK_NEAR(st.accuracy, 0.5, 0, 0);
    CHECK_NEAR(st.margin, 0.5, 1e-12, 0); /* (2 + (-1)) / 2 */
    CHECK_NEAR(st.chosen, 1.0, 1e-12, 0);
    CHECK_NEAR(st.rejected, 0.5, 1e-12, 0);
    loss_bt_backward(dw, dl, rw, rl, NULL, 2, 0);
    CHECK_NEAR(dw[0], -0.5 / (1 + exp(2.0)), 1e-8, 1e-6);  /* -sigmoid(-2)/2 = -0.0596015 */
    CHECK_NEAR(dw[1], -0.5 / (1 + exp(-1.0)), 1e-8, 1e-6); /* -sigmoid(1)/2 = -0.3655293 */
    CHECK_NEAR(dl[0], 0.0596015, 1e-7, 0);
    CHECK_NEAR(dl[1], 0.3655293, 1e-7, 0);
    /* margin (1, 0): d = (1, -1), loss = (softplus(-1) + softplus(1)) / 2 = 0.8132617 */
    float mg[2] = {1, 0};
    CHECK_NEAR(loss_bt_forward(NULL, rw, rl, mg, 2, 0), (log1p(exp(-1.0)) + log1p(exp(1.0))) / 2,
               1e-12, 0);
    /* far apart scores: no overflow; -log sigmoid(-1000) = 1000, -log sigmoid(1000) = 0 */
    float a[2] = {-500, 500}, b[2] = {500, -500};
    dw[0] = dw[1] = dl[0] = dl[1] = 0;
    CHECK_NEAR(loss_bt_forward(NULL, a, b, NULL, 2, 0), 500.0, 1e-9, 0);
    loss_bt_backward(dw, dl, a, b, NULL, 2, 0);
    CHECK_NEAR(dw[0], -0.5, 1e-12, 0);
    CHECK_NEAR(dw[1], 0.0, 1e-12, 0);
    /* ties count as wrong */
    float t[1] = {0.25f};
    CHECK_NEAR(loss_bt_forward(&st, t, t, NULL, 1, 0), log(2.0), 1e-12, 0);
    CHECK(st.accuracy == 0.0);
}

static void test_bt_fd(void) {
    Rng r;
    rng_init(&r, 12);
    float rw[5], rl[5], mg[5], dw[5] = {0}, dl[5] = {0};
    fill_normal(&r, rw, 5, 0, 2);
    fill_normal(&r, rl, 5, 0, 2);
    fill_normal(&r, mg, 5, 0.5f, 0.2f);
    Ctx c = {.P = 5, .x1 = rw, .x2 = rl, .x3 = mg};
    loss_bt_backward(dw, dl, rw, rl, mg, 5, 0);
    fd_check("bt r_w", bt_fn, &c, rw, dw, 5);
    fd_check("bt r_l", bt_fn, &c, rl, dl, 5);
}

// ----------------------------------------------------------------------------
// rankings (InstructGPT eq. 1)

typedef struct {
    const int *rank, *off;
    int G;
} RankCase;

static double rank_fn(const Ctx *c) {
    const RankCase *rc = c->cfg;
    return loss_rank_forward(NULL, c->x1, rc->rank, rc->off, rc->G, c->denom);
}

static void test_rank_by_hand(void) {
    /* one ranking of K = 3, r = (1, 0, -1), places (1, 2, 3): pairs d = 1, 2, 1, each
     * weighted 1/C(3,2) = 1/3: loss = (2 softplus(-1) + softplus(-2)) / 3
     * = (2 * 0.3132617 + 0.1269280) / 3 = 0.2511505;
     * d/dr_0 = -(σ(-1) + σ(-2)) / 3 = -(0.2689414 + 0.1192029) / 3 = -0.1293814,
     * d/dr_1 = (σ(-1) - σ(-1)) / 3 = 0, d/dr_2 = +0.1293814 */
    float r[3] = {1, 0, -1}, dr[3] = {0};
    int rank[3] = {1, 2, 3}, off[2] = {0, 3};
    LossRankStats st;
    CHECK_NEAR(loss_rank_forward(&st, r, rank, off, 1, 0), 0.2511505, 1e-7, 0);
    CHECK_NEAR(st.n_pairs, 3, 0, 0);
    CHECK_NEAR(st.accuracy, 1.0, 0, 0);
    CHECK_NEAR(st.margin, 4.0 / 3.0, 1e-12, 0);
    loss_rank_backward(dr, r, rank, off, 1, 0);
    CHECK_NEAR(dr[0], -0.1293814, 1e-7, 0);
    CHECK_NEAR(dr[1], 0.0, 1e-7, 0);
    CHECK_NEAR(dr[2], 0.1293814, 1e-7, 0);
    /* the same order given in another row order: places (3, 1, 2) of r = (-1, 1, 0) */
    float r2[3] = {-1, 1, 0};
    int rank2[3] = {3, 1, 2};
    CHECK_NEAR(loss_rank_forward(NULL, r2, rank2, off, 1, 0), 0.2511505, 1e-7, 0);
    /* ties: places (1, 1, 2) at equal scores: the tied pair is left out but the weight
     * stays 1/3, so loss = 2 log 2 / 3; a pair at equal scores counts as wrong */
    float z[3] = {0, 0, 0};
    int tie[3] = {1, 1, 2};
    CHECK_NEAR(loss_rank_forward(&st, z, tie, off, 1, 0), 2 * log(2.0) / 3, 1e-12, 0);
    CHECK_NEAR(st.n_pairs, 2, 0, 0);
    CHECK(st.accuracy == 0.0);
    /* everything tied: no pair, no loss, no gradient */
    int all[3] = {2, 2, 2};
    float dz[3] = {0};
    CHECK(loss_rank_forward(&st, r, all, off, 1, 0) == 0.0);
    loss_rank_backward(dz, r, all, off, 1, 0);
    check_all_zero("all tied", dz, 3);
}

/* K = 2 rankings are Bradley–Terry pairs: the same loss and gradients, any denom. */
static void test_rank_pairs_are_bt(void) {
    Rng g;
    rng_init(&g, 31);
    float rw[4], rl[4], r[8], dw[4] = {0}, dl[4] = {0}, dr[8] = {0};
    fill_normal(&g, rw, 4, 0, 2);
    fill_normal(&g, rl, 4, 0, 2);
    int rank[8], off[5];
    for (int i = 0; i < 4; i++) { /* rejected first in even groups: row order is free */
        int sw = i % 2;
        r[2 * i + sw] = rw[i], rank[2 * i + sw] = 1;
        r[2 * i + 1 - sw] = rl[i], rank[2 * i + 1 - sw] = 2;
        off[i] = 2 * i;
    }
    off[4] = 8;
    CHECK_NEAR(loss_rank_forward(NULL, r, rank, off, 4, 7), loss_bt_forward(NULL, rw, rl, NULL, 4, 7),
               1e-12, 1e-12);
    loss_rank_backward(dr, r, rank, off, 4, 7);
    loss_bt_backward(dw, dl, rw, rl, NULL, 4, 7);
    for (int i = 0; i < 4; i++) {
        int sw = i % 2;
        CHECK_NEAR(dr[2 * i + sw], dw[i], 1e-9, 1e-6);
        CHECK_NEAR(dr[2 * i + 1 - sw], dl[i], 1e-9, 1e-6);
    }
}

static void test_rank_fd(void) {
    /* three rankings: K = 4 with a tie, K = 3, K = 2; denom 5 (a larger global batch) */
    Rng g;
    rng_init(&g, 13);
    float r[9], dr[9] = {0};
    fill_normal(&g, r, 9, 0, 2);
    int rank[9] = {2, 1, 2, 4, 3, 1, 2, 2, 1}, off[4] = {0, 4, 7, 9};
    RankCase rc = {rank, off, 3};
    Ctx c = {.x1 = r, .denom = 5, .cfg = &rc};
    loss_rank_backward(dr, r, rank, off, 3, 5);
    fd_check("rank r", rank_fn, &c, r, dr, 9);
    /* two calls with the global denom add up to the whole batch (data parallel) */
    float d1[9] = {0};
    int off_b[2] = {7, 9};
    double whole = loss_rank_forward(NULL, r, rank, off, 3, 0);
    double split = loss_rank_forward(NULL, r, rank, off, 2, 3) +
                   loss_rank_forward(NULL, r, rank, off_b, 1, 3);
    CHECK_NEAR(split, whole, 1e-12, 1e-12);
    loss_rank_backward(d1, r, rank, off, 2, 3);
    loss_rank_backward(d1, r, rank, off_b, 1, 3);
    float d0[9] = {0};
    loss_rank_backward(d0, r, rank, off, 3, 0);
    for (int i = 0; i < 9; i++) CHECK_NEAR(d1[i], d0[i], 1e-9, 1e-6);
}

// ----------------------------------------------------------------------------
// PPO policy loss

static double ppo_fn(const Ctx *c) {
    return loss_ppo_policy_forward(NULL, c->x1, c->x2, c->x3, c->x4, c->mask,
                                   (const LossPPOConfig *)c->cfg, c->B, c->T);
}

static void test_ppo_by_hand(void) {
    /* epsilon 0.2; lp_old = -1; four tokens (rho, A):
     *   (1.1,  1): in range: l = -1.1, dl/dlp = -A rho = -1.1
     *   (1.5,  2): max(-3, -2 * 1.2 = -2.4) = -2.4: clipped, gradient 0
     *   (0.5,  1): max(-0.5, -0.8) = -0.5: not clipped (pessimistic side), dl/dlp = -0.5
     *   (0.5, -1): max(0.5, 0.8) = 0.8: clipped, gradient 0
     * loss = (-1.1 - 2.4 - 0.5 + 0.8) / 4 = -0.8; gradient (-0.275, 0, -0.125, 0);
     * clipfrac 2/4; approx KL k3 = mean((rho - 1) - log rho)
     *   = ((0.1 - log 1.1) + (0.5 - log 1.5) + 2 (-0.5 + log 2)) / 4 = 0.1213798 */
    const double rho[4] = {1.1, 1.5, 0.5, 0.5};
    float old[4] = {-1, -1, -1, -1}, lp[4], A[4] = {1, 2, 1, -1}, m[4] = {1, 1, 1, 1};
    float ent[4] = {1, 2, 3, 4}, g[4] = {0}, ge[4] = {0};
    for (int i = 0; i < 4; i++) lp[i] = (float)(-1.0 + log(rho[i]));
    LossPPOConfig cfg = {.clip_low = 0.2f, .clip_high = 0.2f, .ent_coef = 0.0f};
    LossPPOStats st;
    CHECK_NEAR(loss_ppo_policy_forward(&st, lp, old, A, NULL, m, &cfg, 1, 4), -0.8, 1e-6, 0);
    CHECK_NEAR(st.clipfrac, 0.5, 0, 0);
    CHECK_NEAR(st.approx_kl, 0.1213798, 1e-6, 0);
    double k2 = 0.0;
    for (int i = 0; i < 4; i++) k2 += 0.5 * log(rho[i]) * log(rho[i]) / 4;
    CHECK_NEAR(st.approx_kl_k2, k2, 1e-6, 0);
    CHECK_NEAR(st.ratio_mean, (1.1 + 1.5 + 0.5 + 0.5) / 4, 1e-6, 0);
    CHECK_NEAR(st.ratio_max, 1.5, 1e-6, 0);
    CHECK(st.entropy == 0.0 && st.n_tokens == 4.0);
    loss_ppo_policy_backward(g, NULL, lp, old, A, m, &cfg, 1, 4);
    CHECK_NEAR(g[0], -0.275, 1e-6, 0);
    CHECK(g[1] == 0.0f);
    CHECK_NEAR(g[2], -0.125, 1e-6, 0);
    CHECK(g[3] == 0.0f);
    /* entropy bonus 0.1 with entropies (1, 2, 3, 4): loss -0.8 - 0.1 * 2.5 = -1.05,
     * d/dentropy = -0.1 / 4 = -0.025 */
    cfg.ent_coef = 0.1f;
    CHECK_NEAR(loss_ppo_policy_forward(&st, lp, old, A, ent, m, &cfg, 1, 4), -1.05, 1e-6, 0);
    CHECK_NEAR(st.entropy, 2.5, 1e-12, 0);
    CHECK_NEAR(st.policy_loss, -0.8, 1e-6, 0);
    loss_ppo_policy_backward(g, ge, lp, old, A, m, &cfg, 1, 4);
    for (int i = 0; i < 4; i++) CHECK_NEAR(ge[i], -0.025, 1e-9, 0);
    /* clip-higher 0.6: (1.5, 2) is now inside: l = -3; loss (-1.1 - 3 - 0.5 + 0.8) / 4 */
    cfg = (LossPPOConfig){.clip_low = 0.2f, .clip_high = 0.6f};
    CHECK_NEAR(loss_ppo_policy_forward(&st, lp, old, A, NULL, m, &cfg, 1, 4), -0.95, 1e-6, 0);
    CHECK_NEAR(st.clipfrac, 0.25, 0, 0);
}

/* Inputs that visit every branch (A of both signs, rho inside and outside both clip
 * edges) but stay 0.05 away from the kinks rho = 1 - lo, 1 + hi where the max switches. */
static void ppo_inputs(Rng *r, float *lp_new, float *lp_old, float *adv, float *ent, int n,
                       double lo, double hi) {
    for (int i = 0; i < n; i++) {
        double rho;
        do {
            rho = exp(0.4 * rng_normal(r));
        } while (fabs(rho - (1 - lo)) < 0.05 || fabs(rho - (1 + hi)) < 0.05);
        lp_old[i] = -0.2f - fabsf(rng_normal(r));
        lp_new[i] = (float)(lp_old[i] + log(rho));
        adv[i] = rng_normal(r);
        if (ent) ent[i] = 0.5f + fabsf(rng_normal(r));
    }
}

static void test_ppo_fd(void) {
    Rng r;
    rng_init(&r, 13);
    enum { B = 4, T = 6, N = B * T };
    float lpn[N], lpo[N], A[N], H[N], g[N], ge[N];
    ppo_inputs(&r, lpn, lpo, A, H, N, 0.2, 0.28);
    LossPPOConfig cfg = {.clip_low = 0.2f, .clip_high = 0.28f, .ent_coef = 0.05f};
    for (int agg = 0; agg < 2; agg++) {
        cfg.agg = (LossAgg)agg;
        Ctx c = {.B = B, .T = T, .x1 = lpn, .x2 = lpo, .x3 = A, .x4 = H,
                 .mask = (float *)MASK46, .cfg = &cfg};
        memset(g, 0, sizeof g);
        memset(ge, 0, sizeof ge);
        loss_ppo_policy_backward(g, ge, lpn, lpo, A, MASK46, &cfg, B, T);
        LossPPOStats st;
        loss_ppo_policy_forward(&st, lpn, lpo, A, H, MASK46, &cfg, B, T);
        CHECK_MSG(st.clipfrac > 0.0 && st.clipfrac < 1.0, "clipfrac %g: both branches",
                  st.clipfrac);
        fd_check(agg ? "ppo seq d/dlp_new" : "ppo token d/dlp_new", ppo_fn, &c, lpn, g, N);
        fd_check(agg ? "ppo seq d/dentropy" : "ppo token d/dentropy", ppo_fn, &c, H, ge, N);
    }
}

// ----------------------------------------------------------------------------
// value loss

static double value_fn(const Ctx *c) {
    return loss_value_forward(NULL, c->x1, c->x2, c->x3, c->mask,
                              (const LossValueConfig *)c->cfg, c->B, c->T);
}

static void test_value_by_hand(void) {
    /* clip 0.2; (V, V_old, R):
     *   (1.0, 0.9, 2): V - V_old = 0.1 inside: l = 0.5 (1 - 2)^2 = 0.5, dl/dV = -1
     *   (1.5, 1.0, 2): V_c = 1.2; (V-R)^2 = 0.25 < (V_c-R)^2 = 0.64: clipped, l = 0.32, 0
     *   (1.5, 1.0, 0): V_c = 1.2; 2.25 > 1.44: not clipped, l = 1.125, dl/dV = 1.5
     * loss = (0.5 + 0.32 + 1.125) / 3 = 0.6483333; gradient (-1/3, 0, 0.5); clipfrac 1/3
     * explained variance: R - V = (1, 0.5, -1.5) (mean 0, variance 3.5/3 = 7/6),
     *   R mean 4/3 (variance (4/9 + 4/9 + 16/9) / 3 = 8/9): 1 - (7/6) / (8/9) = -0.3125 */
    float V[3] = {1.0f, 1.5f, 1.5f}, Vo[3] = {0.9f, 1.0f, 1.0f}, R[3] = {2, 2, 0};
    float m[3] = {1, 1, 1}, g[3] = {0};
    LossValueConfig cfg = {.clip = 0.2f};
    LossValueStats st;
    CHECK_NEAR(loss_value_forward(&st, V, Vo, R, m, &cfg, 1, 3), 1.945 / 3, 1e-6, 0);
    CHECK_NEAR(st.clipfrac, 1.0 / 3, 1e-12, 0);
    CHECK_NEAR(st.value_mean, 4.0 / 3, 1e-7, 0);
    CHECK_NEAR(st.return_mean, 4.0 / 3, 1e-7, 0);
    CHECK_NEAR(st.explained_variance, -0.3125, 1e-6, 0);
    loss_value_backward(g, V, Vo, R, m, &cfg, 1, 3);
    CHECK_NEAR(g[0], -1.0 / 3, 1e-7, 0);
    CHECK(g[1] == 0.0f);
    CHECK_NEAR(g[2], 0.5, 1e-7, 0);
    /* no clipping: (0.5 + 0.125 + 1.125) / 3 = 1.75 / 3, gradient (-1, -0.5, 1.5) / 3 */
    cfg.clip = 0.0f;
    CHECK_NEAR(loss_value_forward(&st, V, Vo, R, m, &cfg, 1, 3), 1.75 / 3, 1e-6, 0);
    CHECK(st.clipfrac == 0.0);
    memset(g, 0, sizeof g);
    loss_value_backward(g, V, Vo, R, m, &cfg, 1, 3);
    CHECK_NEAR(g[1], -0.5 / 3, 1e-7, 0);
    /* explained variance: perfect 1; constant returns (nothing to explain) 0 */
    CHECK_NEAR(loss_explained_variance(R, R, m, 3), 1.0, 1e-12, 0);
    float c3[3] = {2, 2, 2};
    CHECK(loss_explained_variance(V, c3, m, 3) == 0.0);
}

static void test_value_fd(void) {
    Rng r;
    rng_init(&r, 14);
    enum { B = 4, T = 6, N = B * T };
    float V[N], Vo[N], R[N], g[N];
    const double clip = 0.2;
    for (int i = 0; i < N; i++) {
        Vo[i] = rng_normal(&r);
        double d;
        do { /* V - V_old away from +-clip, where the clipped term's slope jumps */
            d = 0.4 * rng_normal(&r);
        } while (fabs(fabs(d) - clip) < 0.02);
        V[i] = (float)(Vo[i] + d);
        R[i] = rng_normal(&r);
    }
    LossValueConfig cfg = {.clip = (float)clip};
    for (int agg = 0; agg < 2; agg++) {
        cfg.agg = (LossAgg)agg;
        Ctx c = {.B = B, .T = T, .x1 = V, .x2 = Vo, .x3 = R, .mask = (float *)MASK46,
                 .cfg = &cfg};
        memset(g, 0, sizeof g);
        loss_value_backward(g, V, Vo, R, MASK46, &cfg, B, T);
        LossValueStats st;
        loss_value_forward(&st, V, Vo, R, MASK46, &cfg, B, T);
        CHECK_MSG(st.clipfrac > 0.0 && st.clipfrac < 1.0, "clipfrac %g", st.clipfrac);
        fd_check(agg ? "value seq" : "value token", value_fn, &c, V, g, N);
    }
}

// ----------------------------------------------------------------------------
// DPO family

static double dpo_fn(const Ctx *c) {
    return loss_dpo_forward(NULL, c->x1, c->x2, c->x3, c->x4, (const LossDPOConfig *)c->cfg,
                            c->P);
}

static void test_dpo_by_hand(void) {
    /* pair 0: pi_w -10, ref_w -12, pi_l -15, ref_l -14: h = 2 - (-1) = 3
     * pair 1: pi_w -20, ref_w -19, pi_l -30, ref_l -31: h = -1 - 1 = -2
     * sigmoid, beta 0.1: loss_0 = softplus(-0.3) = 0.5543552, loss_1 = softplus(0.2)
     *   d/dpi_w = beta (-sigmoid(-beta h)) / 2, d/dpi_l = the opposite
     *   rewards: chosen mean 0.1 (2 + (-1)) / 2 = 0.05, rejected 0.1 (-1 + 1) / 2 = 0,
     *   margin 0.05, accuracy 1/2 */
    float pw[2] = {-10, -20}, rw[2] = {-12, -19}, pl[2] = {-15, -30}, rl[2] = {-14, -31};
    float dw[2] = {0}, dl[2] = {0};
    LossDPOConfig cfg = {.type = LOSS_DPO_SIGMOID, .beta = 0.1f, .label_smoothing = 0.0f};
    LossDPOStats st;
    double b = (double)0.1f;
    double expect = (log1p(exp(-3 * b)) + log1p(exp(2 * b))) / 2;
    CHECK_NEAR(loss_dpo_forward(&st, pw, pl, rw, rl, &cfg, 2), expect, 1e-9, 0);
    CHECK_NEAR(log1p(exp(-0.3)), 0.5543552, 1e-7, 0);
    CHECK_NEAR(st.chosen_reward, 0.05, 1e-8, 0);
    CHECK_NEAR(st.rejected_reward, 0.0, 1e-8, 0);
    CHECK_NEAR(st.margin, 0.05, 1e-8, 0);
    CHECK_NEAR(st.accuracy, 0.5, 0, 0);
    loss_dpo_backward(dw, dl, pw, pl, rw, rl, &cfg, 2);
    CHECK_NEAR(dw[0], -b / (1 + exp(3 * b)) / 2, 1e-9, 1e-6); /* -0.1 * 0.4255575 / 2 */
    CHECK_NEAR(dw[1], -b / (1 + exp(-2 * b)) / 2, 1e-9, 1e-6);
    CHECK_NEAR(dl[0], -dw[0], 1e-12, 0);
    /* conservative DPO, eps 0.1, pair 0 alone: 0.9 softplus(-0.3) + 0.1 softplus(0.3)
     *   = 0.9 * 0.5543552 + 0.1 * 0.8543552 = 0.5843552;
     *   d/dh = 0.1 (-0.9 sigmoid(-0.3) + 0.1 sigmoid(0.3)) = -0.0325557 */
    cfg.label_smoothing = 0.1f;
    CHECK_NEAR(loss_dpo_forward(NULL, pw, pl, rw, rl, &cfg, 1), 0.5843552, 1e-6, 0);
    dw[0] = dl[0] = 0;
    loss_dpo_backward(dw, dl, pw, pl, rw, rl, &cfg, 1);
    CHECK_NEAR(dw[0], -0.0325557, 1e-6, 0);
    CHECK_NEAR(dl[0], 0.0325557, 1e-6, 0);
    /* IPO, beta 0.5: 1/(2 beta) = 1; pair 0: (3 - 1)^2 = 4, d/dh = 2 (3 - 1) = 4;
     * pair 1: (-2 - 1)^2 = 9, d/dh = -6; mean loss 6.5, gradients halved */
    cfg = (LossDPOConfig){.type = LOSS_DPO_IPO, .beta = 0.5f};
    CHECK_NEAR(loss_dpo_forward(&st, pw, pl, rw, rl, &cfg, 2), 6.5, 1e-9, 0);
    dw[0] = dw[1] = dl[0] = dl[1] = 0;
    loss_dpo_backward(dw, dl, pw, pl, rw, rl, &cfg, 2);
    CHECK_NEAR(dw[0], 2.0, 1e-9, 0);
    CHECK_NEAR(dw[1], -3.0, 1e-9, 0);
    CHECK_NEAR(dl[1], 3.0, 1e-9, 0);
    /* config validation */
    char err[ERRBUF_LEN];
    LossDPOConfig bad = {.type = LOSS_DPO_SIGMOID, .beta = 0.0f};
    CHECK(loss_dpo_config_validate(&bad, err) == -1);
    CHECK_MSG(strstr(err, "beta") != NULL, "%s", err);
    bad = (LossDPOConfig){.type = LOSS_DPO_SIGMOID, .beta = 0.1f, .label_smoothing = 0.6f};
    CHECK(loss_dpo_config_validate(&bad, err) == -1);
    bad = (LossDPOConfig){.type = (LossDPOType)7, .beta = 0.1f};
    CHECK(loss_dpo_config_validate(&bad, err) == -1);
    CHECK(loss_dpo_config_validate(&cfg, err) == 0);
}

static void test_dpo_fd(void) {
    Rng r;
    rng_init(&r, 15);
    enum { P = 6 };
    float pw[P], pl[P], rw[P], rl[P], dw[P], dl[P];
    fill_normal(&r, pw, P, -20, 5);
    fill_normal(&r, pl, P, -20, 5);
    for (int i = 0; i < P; i++) {
        rw[i] = pw[i] + 3 * rng_normal(&r);
        rl[i] = pl[i] + 3 * rng_normal(&r);
    }
    const LossDPOConfig cfgs[3] = {{LOSS_DPO_SIGMOID, 0.1f, 0.0f, 0},
                                   {LOSS_DPO_SIGMOID, 0.5f, 0.2f, 0},
                                   {LOSS_DPO_IPO, 0.3f, 0.0f, 0}};
    const char *names[3][2] = {{"dpo d/dpi_w", "dpo d/dpi_l"},
                               {"cdpo d/dpi_w", "cdpo d/dpi_l"},
                               {"ipo d/dpi_w", "ipo d/dpi_l"}};
    for (int k = 0; k < 3; k++) {
        Ctx c = {.P = P, .x1 = pw, .x2 = pl, .x3 = rw, .x4 = rl, .cfg = &cfgs[k]};
        memset(dw, 0, sizeof dw);
        memset(dl, 0, sizeof dl);
        loss_dpo_backward(dw, dl, pw, pl, rw, rl, &cfgs[k], P);
        fd_check(names[k][0], dpo_fn, &c, pw, dw, P);
        fd_check(names[k][1], dpo_fn, &c, pl, dl, P);
    }
}

// ----------------------------------------------------------------------------
// soft preference labels (AI feedback, rlhf-cai label): BT and DPO against a target
// probability p = P(w preferred) in x5

static double bt_soft_fn(const Ctx *c) {
    return loss_bt_soft_forward(NULL, c->x1, c->x2, c->x3, c->x5, c->P, c->denom);
}

static double dpo_soft_fn(const Ctx *c) {
    return loss_dpo_soft_forward(NULL, c->x1, c->x2, c->x3, c->x4, c->x5,
                                 (const LossDPOConfig *)c->cfg, c->P);
}

static void test_soft_by_hand(void) {
    /* d = 1, p = 0.7: 0.7 softplus(-1) + 0.3 softplus(1); dloss/dd = sigmoid(1) - 0.7 */
    float rw[1] = {1.5f}, rl[1] = {0.5f}, p[1] = {0.7f}, dw[1] = {0}, dl[1] = {0};
    double expect = 0.7 * log1p(exp(-1.0)) + 0.3 * log1p(exp(1.0));
    CHECK_NEAR(loss_bt_soft_forward(NULL, rw, rl, NULL, p, 1, 0), expect, 1e-7, 0);
    loss_bt_soft_backward(dw, dl, rw, rl, NULL, p, 1, 0);
    CHECK_NEAR(dw[0], 1.0 / (1.0 + exp(-1.0)) - 0.7, 1e-7, 0);
    CHECK_NEAR(dl[0], -dw[0], 0, 0);
    /* p = 0.5 at d = 0: log 2, no gradient (the optimum of an undecided label) */
    float z[1] = {0.25f}, half[1] = {0.5f};
    dw[0] = dl[0] = 0;
    CHECK_NEAR(loss_bt_soft_forward(NULL, z, z, NULL, half, 1, 0), log(2.0), 1e-12, 0);
    loss_bt_soft_backward(dw, dl, z, z, NULL, half, 1, 0);
    CHECK_NEAR(dw[0], 0.0, 1e-12, 0);
    /* p = 0 is the hard label with w and l swapped */
    float a[3] = {2, -1, 0.5f}, b[3] = {0, 1, 3}, zero[3] = {0, 0, 0};
    CHECK_NEAR(loss_bt_soft_forward(NULL, a, b, NULL, zero, 3, 0), loss_bt_forward(NULL, b, a, NULL, 3, 0),
               1e-12, 0);
    /* DPO: p = 1 is the hard loss (sigmoid, conservative, IPO); IPO at p = 1/2 aims at h = 0 */
    float pw[2] = {-10, -12}, pl[2] = {-11, -9}, fw[2] = {-10.5f, -11}, fl[2] = {-10, -10},
          one[2] = {1, 1};
    const LossDPOConfig cfgs[3] = {{LOSS_DPO_SIGMOID, 0.1f, 0.0f, 0},
                                   {LOSS_DPO_SIGMOID, 0.5f, 0.2f, 0},
                                   {LOSS_DPO_IPO, 0.3f, 0.0f, 0}};
    for (int k = 0; k < 3; k++)
        CHECK_NEAR(loss_dpo_soft_forward(NULL, pw, pl, fw, fl, one, &cfgs[k], 2),
                   loss_dpo_forward(NULL, pw, pl, fw, fl, &cfgs[k], 2), 1e-12, 1e-12);
    float hw[1] = {-3}, hl[1] = {-3}, r0[1] = {0};
    CHECK_NEAR(loss_dpo_soft_forward(NULL, hw, hl, r0, r0, half, &cfgs[2], 1), 0.0, 1e-12, 0);
}

/* NULL soft labels take the hard code path: the same bits as loss_bt_* / loss_dpo_*. */
static void test_soft_null_is_hard(void) {
    Rng r;
    rng_init(&r, 21);
    enum { P = 7 };
    float a[P], b[P], c[P], d[P], g1[2 * P] = {0}, g2[2 * P] = {0};
    fill_normal(&r, a, P, 0, 3);
    fill_normal(&r, b, P, 0, 3);
    fill_normal(&r, c, P, 0, 3);
    fill_normal(&r, d, P, 0, 3);
    double l1 = loss_bt_forward(NULL, a, b, c, P, 5), l2 = loss_bt_soft_forward(NULL, a, b, c, NULL, P, 5);
    CHECK(memcmp(&l1, &l2, sizeof l1) == 0);
    loss_bt_backward(g1, g1 + P, a, b, c, P, 5);
    loss_bt_soft_backward(g2, g2 + P, a, b, c, NULL, P, 5);
    CHECK(memcmp(g1, g2, sizeof g1) == 0);
    LossDPOConfig cfg = {LOSS_DPO_SIGMOID, 0.1f, 0.1f, 0};
    l1 = loss_dpo_forward(NULL, a, b, c, d, &cfg, P);
    l2 = loss_dpo_soft_forward(NULL, a, b, c, d, NULL, &cfg, P);
    CHECK(memcmp(&l1, &l2, sizeof l1) == 0);
}

static void test_soft_fd(void) {
    Rng r;
    rng_init(&r, 17);
    enum { P = 6 };
    float rw[P], rl[P], mg[P], p[P], dw[P] = {0}, dl[P] = {0};
    fill_normal(&r, rw, P, 0, 2);
    fill_normal(&r, rl, P, 0, 2);
    fill_normal(&r, mg, P, 0.5f, 0.2f);
    for (int i = 0; i < P; i++) p[i] = rng_uniform(&r);
    p[0] = 0.0f, p[1] = 1.0f, p[2] = 0.5f;
    Ctx c = {.P = P, .x1 = rw, .x2 = rl, .x3 = mg, .x5 = p, .denom = 4};
    loss_bt_soft_backward(dw, dl, rw, rl, mg, p, P, 4);
    fd_check("bt soft r_w", bt_soft_fn, &c, rw, dw, P);
    fd_check("bt soft r_l", bt_soft_fn, &c, rl, dl, P);
    float pw[P], pl[P], fw[P], fl[P];
    fill_normal(&r, pw, P, -20, 5);
    fill_normal(&r, pl, P, -20, 5);
    for (int i = 0; i < P; i++) fw[i] = pw[i] + 3 * rng_normal(&r), fl[i] = pl[i] + 3 * rng_normal(&r);
    const LossDPOConfig cfgs[3] = {{LOSS_DPO_SIGMOID, 0.1f, 0.0f, 0},
                                   {LOSS_DPO_SIGMOID, 0.5f, 0.2f, 0},
                                   {LOSS_DPO_IPO, 0.3f, 0.0f, 0}};
    const char *names[3][2] = {{"dpo soft d/dpi_w", "dpo soft d/dpi_l"},
                               {"cdpo soft d/dpi_w", "cdpo soft d/dpi_l"},
                               {"ipo soft d/dpi_w", "ipo soft d/dpi_l"}};
    for (int k = 0; k < 3; k++) {
        Ctx q = {.P = P, .x1 = pw, .x2 = pl, .x3 = fw, .x4 = fl, .x5 = p, .cfg = &cfgs[k]};
        memset(dw, 0, sizeof dw);
        memset(dl, 0, sizeof dl);
        loss_dpo_soft_backward(dw, dl, pw, pl, fw, fl, p, &cfgs[k], P);
        fd_check(names[k][0], dpo_soft_fn, &q, pw, dw, P);
        fd_check(names[k][1], dpo_soft_fn, &q, pl, dl, P);
    }
}

// ----------------------------------------------------------------------------
// IPO on per-token mean log-probs (TRL's loss_type="ipo", dpo.ipo_logps = mean): the
// per-token log-probs -> masked sums -> means -> IPO chain the dpo stage runs.

typedef struct {
    int P, T;
    const float *mask; /* (2P, T): chosen rows, then rejected rows */
    const float *ref;  /* (2P) reference sums */
    const LossDPOConfig *cfg;
} IpoMean;

/* Response tokens of each of the 2P rows (as learner/dpo.c counts them). */
static void ipo_mean_lengths(const IpoMean *q, float *len) {
    for (int r = 0; r < 2 * q->P; r++) {
        double n = 0;
        for (int t = 0; t < q->T; t++) n += q->mask[(size_t)r * q->T + t];
        len[r] = (float)n;
    }
}

/* The loss through the library: per-token lp (2P, T) -> loss. */
static double ipo_mean_loss(const IpoMean *q, const float *lp) {
    enum { MAXR = 16 };
    float sum[MAXR], len[MAXR], pi[MAXR], ref[MAXR];
    int R = 2 * q->P;
    ASSERT(R <= MAXR);
    loss_seq_sum_forward(sum, lp, q->mask, R, q->T);
    ipo_mean_lengths(q, len);
    loss_seq_mean_forward(pi, sum, len, R);
    loss_seq_mean_forward(ref, q->ref, len, R);
    return loss_dpo_forward(NULL, pi, pi + q->P, ref, ref + q->P, q->cfg, q->P);
}

/* Its gradient w.r.t. lp, as learner/dpo.c chains the backward passes. */
static void ipo_mean_grad(const IpoMean *q, const float *lp, float *dlp) {
    enum { MAXR = 16 };
    float sum[MAXR], len[MAXR], pi[MAXR], ref[MAXR], dpi[MAXR] = {0}, ds[MAXR] = {0};
    int R = 2 * q->P;
    loss_seq_sum_forward(sum, lp, q->mask, R, q->T);
    ipo_mean_lengths(q, len);
    loss_seq_mean_forward(pi, sum, len, R);
    loss_seq_mean_forward(ref, q->ref, len, R);
    loss_dpo_backward(dpi, dpi + q->P, pi, pi + q->P, ref, ref + q->P, q->cfg, q->P);
    loss_seq_mean_backward(ds, dpi, len, R);
    memset(dlp, 0, (size_t)R * q->T * sizeof(float));
    loss_seq_sum_backward(dlp, ds, q->mask, R, q->T);
}

static void test_ipo_mean_by_hand(void) {
    /* one pair, T = 4, beta 0.25 (target margin 1/(2 beta) = 2):
     *   chosen   lp (-1, -2, -3, pad) mask 1 1 1 0: sum -6, 3 tokens, mean -2
     *   rejected lp (-4, -2, pad, pad) mask 1 1 0 0: sum -6, 2 tokens, mean -3
     *   reference sums -7.5 (mean -2.5) and -5 (mean -2.5)
     *   h = (-2 - -2.5) - (-3 - -2.5) = 1, loss = (1 - 2)^2 = 1, dloss/dh = 2 (1 - 2) = -2
     *   chosen tokens: -2 / 3 each; rejected tokens: +2 / 2 = +1 each; padding 0.
     * On sums instead: h = (-6 + 7.5) - (-6 + 5) = 2.5, loss (2.5 - 2)^2 = 0.25. */
    const float mask[8] = {1, 1, 1, 0, 1, 1, 0, 0};
    float lp[8] = {-1, -2, -3, NAN, -4, -2, NAN, NAN}, dlp[8];
    const float ref[2] = {-7.5f, -5.0f};
    LossDPOConfig cfg = {.type = LOSS_DPO_IPO, .beta = 0.25f};
    IpoMean q = {.P = 1, .T = 4, .mask = mask, .ref = ref, .cfg = &cfg};
    CHECK_NEAR(ipo_mean_loss(&q, lp), 1.0, 1e-12, 0);
    ipo_mean_grad(&q, lp, dlp);
    for (int t = 0; t < 3; t++) CHECK_NEAR(dlp[t], -2.0 / 3.0, 1e-7, 0);
    CHECK_NEAR(dlp[4], 1.0, 1e-7, 0);
    CHECK_NEAR(dlp[5], 1.0, 1e-7, 0);
    CHECK(dlp[3] == 0.0f && dlp[6] == 0.0f && dlp[7] == 0.0f);
    float sums[2] = {-6, -6};
    CHECK_NEAR(loss_dpo_forward(NULL, sums, sums + 1, ref, ref + 1, &cfg, 1), 0.25, 1e-12, 0);
    /* an empty row has mean 0 and passes no gradient */
    float s0[2] = {3.0f, -4.0f}, l0[2] = {0.0f, 2.0f}, m0[2], d0[2] = {0, 0}, one[2] = {1, 1};
    loss_seq_mean_forward(m0, s0, l0, 2);
    CHECK(m0[0] == 0.0f && m0[1] == -2.0f);
    loss_seq_mean_backward(d0, one, l0, 2);
    CHECK(d0[0] == 0.0f && d0[1] == 0.5f);
}

/* An independent float64 reference on random inputs (plain loops, nothing from loss.c),
 * and central differences of the whole chain w.r.t. every per-token log-prob. The loss
 * is exactly quadratic in each lp (means are linear in lp, IPO is a square), so central
 * differences have no truncation error at any step: a wide step h = 1/16 keeps the float
 * rounding of the sums and means (~6e-8 relative) far below the tolerance. */
static void test_ipo_mean_fd(void) {
    enum { P = 3, T = 6, R = 2 * P };
    Rng r;
    rng_init(&r, 77);
    float lp[R * T], dlp[R * T], ref[R];
    /* rows of 6, 2, 5, 1, 4 and 3 response tokens */
    const int n_tok[R] = {6, 2, 5, 1, 4, 3};
    float mask[R * T];
    for (int i = 0; i < R; i++)
        for (int t = 0; t < T; t++) mask[i * T + t] = t < n_tok[i] ? 1.0f : 0.0f;
    fill_normal(&r, lp, R * T, -2.0f, 1.0f);
    for (int i = 0; i < R; i++) ref[i] = (float)n_tok[i] * (-2.0f + 0.5f * rng_normal(&r));
    LossDPOConfig cfg = {.type = LOSS_DPO_IPO, .beta = 0.3f};
    IpoMean q = {.P = P, .T = T, .mask = mask, .ref = ref, .cfg = &cfg};
    double expect = 0;
    for (int i = 0; i < P; i++) {
        double m[2], mr[2];
        for (int side = 0; side < 2; side++) {
            int row = i + side * P;
            double s = 0;
            for (int t = 0; t < n_tok[row]; t++) s += lp[row * T + t];
            m[side] = s / n_tok[row];
            mr[side] = (double)ref[row] / n_tok[row];
        }
        double h = (m[0] - mr[0]) - (m[1] - mr[1]), d = h - 1.0 / (2.0 * (double)0.3f);
        expect += d * d / P;
    }
    CHECK_NEAR(ipo_mean_loss(&q, lp), expect, 1e-6, 1e-6);
    ipo_mean_grad(&q, lp, dlp);
    const double step = 1.0 / 16;
    double worst = 0;
    for (int i = 0; i < R * T; i++) {
        float save = lp[i];
        lp[i] = (float)(save + step);
        double up = ipo_mean_loss(&q, lp);
        lp[i] = (float)(save - step);
        double dn = ipo_mean_loss(&q, lp);
        lp[i] = save;
        double fd = (up - dn) / (2 * step), err = fabs(fd - dlp[i]);
        CHECK_MSG(err <= 2e-5 + 1e-4 * fabs(fd), "ipo mean d/dlp[%d] analytic %.9g numeric %.9g",
                  i, (double)dlp[i], fd);
        if (mask[i] == 0.0f) CHECK(dlp[i] == 0.0f);
        if (err > worst) worst = err;
    }
    fprintf(stderr, "  fd %-28s max |analytic - numeric| = %.2e\n", "ipo mean d/dlp", worst);
}

static double seq_nll_fn(const Ctx *c) {
    return loss_seq_nll_forward(c->x1, c->x2, 0.7f, 4.0, c->P);
}

static void test_seq_nll(void) {
    enum { P = 5 };
    float s[P] = {-12.0f, -3.5f, -40.0f, 0.0f, -7.0f}, len[P] = {6, 7, 20, 0, 2}, d[P] = {0};
    /* by hand: 0.7 * (2 + 0.5 + 2 + 0 + 3.5) / 4 = 1.4; the empty sequence adds nothing */
    CHECK_NEAR(loss_seq_nll_forward(s, len, 0.7f, 4.0, P), 1.4, 1e-6, 0);
    CHECK_NEAR(loss_seq_nll_forward(s, len, 0.7f, 0.0, P), 0.7 * 8.0 / 5, 1e-6, 0);
    loss_seq_nll_backward(d, len, 0.7f, 4.0, P);
    CHECK(d[3] == 0.0f);
    Ctx c = {.P = P, .x1 = s, .x2 = len};
    fd_check("seq_nll d/ds", seq_nll_fn, &c, s, d, P);
}

// ----------------------------------------------------------------------------
// GRPO

static double grpo_fn(const Ctx *c) {
    return loss_grpo_forward(NULL, c->x1, c->x2, c->x3, c->x4, c->mask,
                             (const LossGRPOConfig *)c->cfg, c->B, c->T);
}

static void test_grpo_by_hand(void) {
    /* B = 2, T = 2, rho = 1 everywhere (lp_new = lp_old), adv (1, -1), kl_coef 0.1,
     * mask (1, 1 | 1, 0); x = lp_ref - lp_new: row 0 (0, log 2), row 1 (-log 2, -).
     * k3 = e^x - x - 1: row 0 (0, 2 - log 2 - 1 = 0.3068528), row 1 (0.5 + log 2 - 1 =
     * 0.1931472). Per-token l = -A + 0.1 k3: row 0 (-1, -0.9693147), row 1 (1.0193147).
     * SEQ:   ((-1 - 0.9693147) / 2 + 1.0193147) / 2 = 0.0173287
     * TOKEN: (-1 - 0.9693147 + 1.0193147) / 3 = -0.95 / 3
     * dl/dlp_new = -A rho + 0.1 (1 - e^x): row 0 (-1, -1 + 0.1 (1 - 2) = -1.1), row 1
     * (1 + 0.1 (1 - 0.5) = 1.05); SEQ weights 1/(2*2), 1/(1*2): (-0.25, -0.275 | 0.525);
     * TOKEN weight 1/3. kl statistic (0 + 0.3068528 + 0.1931472) / 3 = 1/6. */
    float lp[4] = {-1, -2, -1, -3}, ref[4], A[2] = {1, -1}, m[4] = {1, 1, 1, 0}, g[4] = {0};
    const double x[4] = {0, log(2.0), -log(2.0), 0};
    for (int i = 0; i < 4; i++) ref[i] = (float)(lp[i] + x[i]);
    LossGRPOConfig cfg = {.clip_low = 0.2f, .clip_high = 0.2f, .kl_coef = 0.1f,
                          .agg = LOSS_AGG_SEQ};
    LossGRPOStats st;
    CHECK_NEAR(loss_grpo_forward(&st, lp, lp, ref, A, m, &cfg, 2, 2), 0.0173287, 2e-7, 0);
    CHECK_NEAR(st.kl, 1.0 / 6, 1e-7, 0);
    CHECK_NEAR(st.policy_loss, 0.0, 1e-12, 0); /* ((-1 - 1) / 2 + 1) / 2 */
    CHECK(st.clipfrac == 0.0 && st.ratio_mean == 1.0 && st.n_tokens == 3.0);
    loss_grpo_backward(g, lp, lp, ref, A, m, &cfg, 2, 2);
    CHECK_NEAR(g[0], -0.25, 1e-7, 0);
    CHECK_NEAR(g[1], -0.275, 1e-7, 0);
    CHECK_NEAR(g[2], 0.525, 1e-7, 0);
    CHECK(g[3] == 0.0f);
    cfg.agg = LOSS_AGG_TOKEN;
    CHECK_NEAR(loss_grpo_forward(&st, lp, lp, ref, A, m, &cfg, 2, 2), -0.95 / 3, 2e-7, 0);
    memset(g, 0, sizeof g);
    loss_grpo_backward(g, lp, lp, ref, A, m, &cfg, 2, 2);
    CHECK_NEAR(g[1], -1.1 / 3, 1e-7, 0);
    CHECK_NEAR(g[2], 1.05 / 3, 1e-7, 0);
    /* no KL term: the reference may be NULL */
    cfg.kl_coef = 0.0f;
    CHECK_NEAR(loss_grpo_forward(&st, lp, lp, NULL, A, m, &cfg, 2, 2), -1.0 / 3, 1e-9, 0);
    CHECK(st.kl == 0.0);
    char err[ERRBUF_LEN];
    LossGRPOConfig bad = {.clip_low = 1.0f, .clip_high = 0.2f, .kl_coef = 0.0f};
    CHECK(loss_grpo_config_validate(&bad, err) == -1);
    bad = (LossGRPOConfig){.clip_low = 0.2f, .clip_high = 0.2f, .kl_coef = -1.0f};
    CHECK(loss_grpo_config_validate(&bad, err) == -1);
    bad = (LossGRPOConfig){.clip_low = 0.2f, .clip_high = 0.2f, .agg = (LossAgg)3};
    CHECK(loss_grpo_config_validate(&bad, err) == -1);
    LossPPOConfig pbad = {.clip_low = 0.2f, .clip_high = -0.1f};
    CHECK(loss_ppo_config_validate(&pbad, err) == -1);
    pbad = (LossPPOConfig){.clip_low = 0.2f, .clip_high = 0.2f, .ent_coef = NAN};
    CHECK(loss_ppo_config_validate(&pbad, err) == -1);
}

static void test_grpo_fd(void) {
    Rng r;
    rng_init(&r, 16);
    enum { B = 4, T = 6, N = B * T };
    float lpn[N], lpo[N], ref[N], A[B], advtok[N], g[N];
    ppo_inputs(&r, lpn, lpo, advtok, NULL, N, 0.2, 0.2);
    for (int b = 0; b < B; b++) A[b] = rng_normal(&r);
    for (int i = 0; i < N; i++) ref[i] = lpn[i] + 0.3f * rng_normal(&r);
    LossGRPOConfig cfg = {.clip_low = 0.2f, .clip_high = 0.2f, .kl_coef = 0.3f};
    for (int agg = 0; agg < 2; agg++) {
        cfg.agg = (LossAgg)agg;
        Ctx c = {.B = B, .T = T, .x1 = lpn, .x2 = lpo, .x3 = ref, .x4 = A,
                 .mask = (float *)MASK46, .cfg = &cfg};
        memset(g, 0, sizeof g);
        loss_grpo_backward(g, lpn, lpo, ref, A, MASK46, &cfg, B, T);
        fd_check(agg ? "grpo seq" : "grpo token", grpo_fn, &c, lpn, g, N);
    }
}

// ----------------------------------------------------------------------------
// against PyTorch (tests/ref/loss.txt)

/* compare n values of got (float) with the fixture array name */
static void ref_cmp(const RefFile *f, const char *name, const float *got, int n,
                    double atol, double rtol) {
    const double *e = ref_get(f, name, n);
    CHECK_MSG(e != NULL, "fixture array %s", name);
    if (!e) return;
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        CHECK_MSG(fabs(got[i] - e[i]) <= atol + rtol * fabs(e[i]), "%s[%d] = %.9g, torch %.9g",
                  name, i, (double)got[i], e[i]);
        worst = fmax(worst, fabs(got[i] - e[i]));
    }
    fprintf(stderr, "  torch %-26s max |diff| = %.2e\n", name, worst);
}

static void ref_cmp1(const RefFile *f, const char *name, double got) {
    const double *e = ref_get(f, name, 1);
    CHECK_MSG(e != NULL, "fixture array %s", name);
    if (!e) return;
    CHECK_MSG(fabs(got - e[0]) <= 1e-9 + 1e-7 * fabs(e[0]), "%s = %.12g, torch %.12g", name,
              got, e[0]);
}

#define REF_IN(f, name, n, dst)                                                           \
    do {                                                                                  \
        const double *v_ = ref_get(f, name, n);                                           \
        CHECK_MSG(v_ != NULL, "fixture array %s", name);                                  \
        if (!v_) goto done;                                                               \
        ref_to_float(dst, v_, n);                                                         \
    } while (0)

static void test_torch_reference(void) {
    RefFile f;
    CHECK(ref_load(&f, "loss.txt") == 0);
    enum { B = 4, T = 6, N = B * T, P = 5 };
    float m[N], a[N], b[N], c[N], d[N], g[N], g2[N], adv[B];
    float pw[P], pl[P], rw[P], rl[P], dw[P], dl[P], mg[P];
    const char *modes[2] = {"token", "seq"};
    char name[64];
    REF_IN(&f, "mask", N, m);
    CHECK(memcmp(m, MASK46, sizeof m) == 0);

    REF_IN(&f, "ce.lp", N, a);
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "ce.%s.loss", modes[k]);
        ref_cmp1(&f, name, loss_token_ce_forward(NULL, a, m, (LossAgg)k, 0, B, T));
        memset(g, 0, sizeof g);
        loss_token_ce_backward(g, m, (LossAgg)k, 0, B, T);
        snprintf(name, sizeof name, "ce.%s.dlp", modes[k]);
        ref_cmp(&f, name, g, N, 1e-8, 1e-6);
    }

    REF_IN(&f, "bt.rw", P, pw);
    REF_IN(&f, "bt.rl", P, pl);
    REF_IN(&f, "bt.margin", P, mg);
    for (int k = 0; k < 2; k++) {
        const float *mm = k ? mg : NULL;
        const char *tag = k ? "margin" : "nomargin";
        snprintf(name, sizeof name, "bt.%s.loss", tag);
        LossBTStats bs;
        ref_cmp1(&f, name, loss_bt_forward(&bs, pw, pl, mm, P, 0));
        memset(dw, 0, sizeof dw);
        memset(dl, 0, sizeof dl);
        loss_bt_backward(dw, dl, pw, pl, mm, P, 0);
        snprintf(name, sizeof name, "bt.%s.drw", tag);
        ref_cmp(&f, name, dw, P, 1e-8, 1e-6);
        snprintf(name, sizeof name, "bt.%s.drl", tag);
        ref_cmp(&f, name, dl, P, 1e-8, 1e-6);
        ref_cmp1(&f, "bt.accuracy", bs.accuracy);
    }

    {
        REF_IN(&f, "ppo.lp_new", N, a);
        REF_IN(&f, "ppo.lp_old", N, b);
        REF_IN(&f, "ppo.adv", N, c);
        REF_IN(&f, "ppo.ent", N, d);
        const double *pc = ref_get(&f, "ppo.cfg", 3);
        CHECK(pc != NULL);
        if (!pc) goto done;
        LossPPOConfig cfg = {.clip_low = (float)pc[0], .clip_high = (float)pc[1],
                             .ent_coef = (float)pc[2]};
        for (int k = 0; k < 2; k++) {
            cfg.agg = (LossAgg)k;
            LossPPOStats st;
            snprintf(name, sizeof name, "ppo.%s.loss", modes[k]);
            ref_cmp1(&f, name, loss_ppo_policy_forward(&st, a, b, c, d, m, &cfg, B, T));
            ref_cmp1(&f, "ppo.clipfrac", st.clipfrac);
            ref_cmp1(&f, "ppo.approx_kl", st.approx_kl);
            ref_cmp1(&f, "ppo.approx_kl_k2", st.approx_kl_k2);
            memset(g, 0, sizeof g);
            memset(g2, 0, sizeof g2);
            loss_ppo_policy_backward(g, g2, a, b, c, m, &cfg, B, T);
            snprintf(name, sizeof name, "ppo.%s.dlp", modes[k]);
            ref_cmp(&f, name, g, N, 1e-8, 1e-6);
            snprintf(name, sizeof name, "ppo.%s.dent", modes[k]);
            ref_cmp(&f, name, g2, N, 1e-9, 1e-6);
        }
    }

    {
        REF_IN(&f, "value.v", N, a);
        REF_IN(&f, "value.vold", N, b);
        REF_IN(&f, "value.ret", N, c);
        const double *vc = ref_get(&f, "value.clip", 1);
        CHECK(vc != NULL);
        if (!vc) goto done;
        LossValueConfig cfg = {.clip = (float)vc[0]};
        for (int k = 0; k < 2; k++) {
            cfg.agg = (LossAgg)k;
            LossValueStats st;
            snprintf(name, sizeof name, "value.%s.loss", modes[k]);
            ref_cmp1(&f, name, loss_value_forward(&st, a, b, c, m, &cfg, B, T));
            ref_cmp1(&f, "value.clipfrac", st.clipfrac);
            ref_cmp1(&f, "value.ev", st.explained_variance);
            memset(g, 0, sizeof g);
            loss_value_backward(g, a, b, c, m, &cfg, B, T);
            snprintf(name, sizeof name, "value.%s.dv", modes[k]);
            ref_cmp(&f, name, g, N, 1e-8, 1e-6);
        }
    }

    {
        REF_IN(&f, "dpo.pi_w", P, pw);
        REF_IN(&f, "dpo.pi_l", P, pl);
        REF_IN(&f, "dpo.ref_w", P, rw);
        REF_IN(&f, "dpo.ref_l", P, rl);
        const char *kinds[3] = {"sigmoid", "cdpo", "ipo"};
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof name, "dpo.%s.cfg", kinds[k]);
            const double *dc = ref_get(&f, name, 2);
            CHECK(dc != NULL);
            if (!dc) goto done;
            LossDPOConfig cfg = {.type = k == 2 ? LOSS_DPO_IPO : LOSS_DPO_SIGMOID,
                                 .beta = (float)dc[0], .label_smoothing = (float)dc[1]};
            LossDPOStats st;
            snprintf(name, sizeof name, "dpo.%s.loss", kinds[k]);
            ref_cmp1(&f, name, loss_dpo_forward(&st, pw, pl, rw, rl, &cfg, P));
            snprintf(name, sizeof name, "dpo.%s.chosen", kinds[k]);
            ref_cmp1(&f, name, st.chosen_reward);
            snprintf(name, sizeof name, "dpo.%s.rejected", kinds[k]);
            ref_cmp1(&f, name, st.rejected_reward);
            snprintf(name, sizeof name, "dpo.%s.accuracy", kinds[k]);
            ref_cmp1(&f, name, st.accuracy);
            memset(dw, 0, sizeof dw);
            memset(dl, 0, sizeof dl);
            loss_dpo_backward(dw, dl, pw, pl, rw, rl, &cfg, P);
            snprintf(name, sizeof name, "dpo.%s.dpi_w", kinds[k]);
            ref_cmp(&f, name, dw, P, 1e-8, 1e-6);
            snprintf(name, sizeof name, "dpo.%s.dpi_l", kinds[k]);
            ref_cmp(&f, name, dl, P, 1e-8, 1e-6);
        }
    }

    {
        REF_IN(&f, "grpo.lp_new", N, a);
        REF_IN(&f, "grpo.lp_old", N, b);
        REF_IN(&f, "grpo.lp_ref", N, c);
        REF_IN(&f, "grpo.adv", B, adv);
        const double *gc = ref_get(&f, "grpo.cfg", 3);
        CHECK(gc != NULL);
        if (!gc) goto done;
        LossGRPOConfig cfg = {.clip_low = (float)gc[0], .clip_high = (float)gc[1],
                              .kl_coef = (float)gc[2]};
        for (int k = 0; k < 2; k++) {
            cfg.agg = (LossAgg)k;
            LossGRPOStats st;
            snprintf(name, sizeof name, "grpo.%s.loss", modes[k]);
            ref_cmp1(&f, name, loss_grpo_forward(&st, a, b, c, adv, m, &cfg, B, T));
            ref_cmp1(&f, "grpo.kl", st.kl);
            memset(g, 0, sizeof g);
            loss_grpo_backward(g, a, b, c, adv, m, &cfg, B, T);
            snprintf(name, sizeof name, "grpo.%s.dlp", modes[k]);
            ref_cmp(&f, name, g, N, 1e-8, 1e-6);
        }
    }
done:
    ref_free(&f);
}

// ----------------------------------------------------------------------------
// edge cases and the aggregation contract

/* An all-zero mask and zero pairs: every loss, gradient and statistic is exactly 0. */
static void test_empty(void) {
    enum { B = 2, T = 3, N = B * T };
    float z[N] = {0}, x[N] = {-1, -2, -3, -4, -5, -6}, g[N] = {0}, g2[N] = {0};
    float A[B] = {1, -1};
    for (int agg = 0; agg < 2; agg++) {
        LossCEStats ce;
        CHECK(loss_token_ce_forward(&ce, x, z, (LossAgg)agg, 0, B, T) == 0.0);
        CHECK(ce.nll == 0.0 && ce.n_tokens == 0.0);
        loss_token_ce_backward(g, z, (LossAgg)agg, 0, B, T);
        LossPPOConfig pc = {.clip_low = 0.2f, .clip_high = 0.2f, .ent_coef = 0.1f,
                            .agg = (LossAgg)agg};
        LossPPOStats ps;
        CHECK(loss_ppo_policy_forward(&ps, x, x, x, x, z, &pc, B, T) == 0.0);
        CHECK(ps.clipfrac == 0.0 && ps.approx_kl == 0.0 && ps.entropy == 0.0 &&
              ps.ratio_mean == 0.0 && ps.ratio_max == 0.0 && ps.n_tokens == 0.0);
        loss_ppo_policy_backward(g, g2, x, x, x, z, &pc, B, T);
        LossValueConfig vc = {.clip = 0.2f, .agg = (LossAgg)agg};
        LossValueStats vs;
        CHECK(loss_value_forward(&vs, x, x, x, z, &vc, B, T) == 0.0);
        CHECK(vs.clipfrac == 0.0 && vs.explained_variance == 0.0 && vs.value_mean == 0.0);
        loss_value_backward(g, x, x, x, z, &vc, B, T);
        LossGRPOConfig gc = {.clip_low = 0.2f, .clip_high = 0.2f, .kl_coef = 0.1f,
                             .agg = (LossAgg)agg};
        LossGRPOStats gs;
        CHECK(loss_grpo_forward(&gs, x, x, x, A, z, &gc, B, T) == 0.0);
        CHECK(gs.kl == 0.0 && gs.clipfrac == 0.0 && gs.n_tokens == 0.0);
        loss_grpo_backward(g, x, x, x, A, z, &gc, B, T);
    }
    check_all_zero("dlogprobs", g, N);
    check_all_zero("dentropy", g2, N);
    LossBTStats bs;
    CHECK(loss_bt_forward(&bs, NULL, NULL, NULL, 0, 0) == 0.0);
    CHECK(bs.accuracy == 0.0 && bs.margin == 0.0);
    loss_bt_backward(NULL, NULL, NULL, NULL, NULL, 0, 0);
    LossDPOConfig dc = {.type = LOSS_DPO_SIGMOID, .beta = 0.1f};
    LossDPOStats ds;
    CHECK(loss_dpo_forward(&ds, NULL, NULL, NULL, NULL, &dc, 0) == 0.0);
    CHECK(ds.accuracy == 0.0 && ds.margin == 0.0 && ds.chosen_reward == 0.0);
    loss_dpo_backward(NULL, NULL, NULL, NULL, NULL, NULL, &dc, 0);
}

/* NaN in the padding (masked-out positions) never reaches the loss or the gradient. */
static void test_padding_ignored(void) {
    enum { B = 4, T = 6, N = B * T };
    Rng r;
    rng_init(&r, 17);
    float lpn[N], lpo[N], A[N], H[N], V[N], R[N], g[N] = {0}, ge[N] = {0}, gv[N] = {0};
    float advs[B] = {1, -1, NAN, 0.5f}; /* row 2 is empty: its advantage is never read */
    ppo_inputs(&r, lpn, lpo, A, H, N, 0.2, 0.2);
    fill_normal(&r, V, N, 0, 1);
    fill_normal(&r, R, N, 0, 1);
    for (int i = 0; i < N; i++)
        if (MASK46[i] == 0.0f) lpn[i] = lpo[i] = A[i] = H[i] = V[i] = R[i] = NAN;
    LossPPOConfig pc = {.clip_low = 0.2f, .clip_high = 0.2f, .ent_coef = 0.01f};
    CHECK(isfinite(loss_ppo_policy_forward(NULL, lpn, lpo, A, H, MASK46, &pc, B, T)));
    loss_ppo_policy_backward(g, ge, lpn, lpo, A, MASK46, &pc, B, T);
    LossValueConfig vc = {.clip = 0.2f};
    LossValueStats vs;
    CHECK(isfinite(loss_value_forward(&vs, V, V, R, MASK46, &vc, B, T)));
    CHECK(isfinite(vs.explained_variance));
    loss_value_backward(gv, V, V, R, MASK46, &vc, B, T);
    LossGRPOConfig gc = {.clip_low = 0.2f, .clip_high = 0.2f, .kl_coef = 0.1f};
    CHECK(isfinite(loss_grpo_forward(NULL, lpn, lpo, lpo, advs, MASK46, &gc, B, T)));
    loss_grpo_backward(g, lpn, lpo, lpo, advs, MASK46, &gc, B, T);
    CHECK(isfinite(loss_token_ce_forward(NULL, lpn, MASK46, LOSS_AGG_TOKEN, 0, B, T)));
    for (int i = 0; i < N; i++) {
        CHECK(isfinite(g[i]) && isfinite(ge[i]) && isfinite(gv[i]));
        if (MASK46[i] == 0.0f) CHECK(g[i] == 0.0f && ge[i] == 0.0f && gv[i] == 0.0f);
    }
}

/* Backward adds into its output: calling it twice doubles the gradient. */
static void test_backward_accumulates(void) {
    enum { B = 4, T = 6, N = B * T };
    Rng r;
    rng_init(&r, 18);
    float lpn[N], lpo[N], A[N], g1[N] = {0}, g2[N] = {0};
    ppo_inputs(&r, lpn, lpo, A, NULL, N, 0.2, 0.2);
    LossPPOConfig pc = {.clip_low = 0.2f, .clip_high = 0.2f};
    loss_ppo_policy_backward(g1, NULL, lpn, lpo, A, MASK46, &pc, B, T);
    loss_ppo_policy_backward(g2, NULL, lpn, lpo, A, MASK46, &pc, B, T);
    loss_ppo_policy_backward(g2, NULL, lpn, lpo, A, MASK46, &pc, B, T);
    for (int i = 0; i < N; i++) CHECK(g2[i] == 2.0f * g1[i]);
}

/* Two micro-batches (rows 0-1 and rows 2-3) with denom = the full batch's count give the
 * full-batch loss (summed) and the same gradient. Full batch: 6 + 3 + 0 + 4 = 13 masked
 * tokens in 3 non-empty rows. */
static void test_denom_splits_batch(void) {
    enum { B = 4, T = 6, N = B * T, H = N / 2 };
    Rng r;
    rng_init(&r, 19);
    float lpn[N], lpo[N], A[N], ref[N], adv[B], V[N], Vo[N], R[N];
    ppo_inputs(&r, lpn, lpo, A, NULL, N, 0.2, 0.2);
    fill_normal(&r, ref, N, -1, 0.5f);
    fill_normal(&r, adv, B, 0, 1);
    fill_normal(&r, V, N, 0, 1);
    fill_normal(&r, Vo, N, 0, 1);
    fill_normal(&r, R, N, 0, 1);
    const double denoms[2] = {13.0, 3.0};
    for (int agg = 0; agg < 2; agg++) {
        double den = denoms[agg];
        float gf[N] = {0}, gs[N] = {0};
        /* GRPO */
        LossGRPOConfig full = {.clip_low = 0.2f, .clip_high = 0.2f, .kl_coef = 0.1f,
                               .agg = (LossAgg)agg};
        LossGRPOConfig part = full;
        part.denom = den;
        double lf = loss_grpo_forward(NULL, lpn, lpo, ref, adv, MASK46, &full, B, T);
        double ls = loss_grpo_forward(NULL, lpn, lpo, ref, adv, MASK46, &part, 2, T) +
                    loss_grpo_forward(NULL, lpn + H, lpo + H, ref + H, adv + 2, MASK46 + H,
                                      &part, 2, T);
        CHECK_NEAR(ls, lf, 1e-12, 1e-12);
        loss_grpo_backward(gf, lpn, lpo, ref, adv, MASK46, &full, B, T);
        loss_grpo_backward(gs, lpn, lpo, ref, adv, MASK46, &part, 2, T);
        loss_grpo_backward(gs + H, lpn + H, lpo + H, ref + H, adv + 2, MASK46 + H, &part, 2,
                           T);
        for (int i = 0; i < N; i++) CHECK_NEAR(gs[i], gf[i], 1e-9, 1e-6);
        /* PPO value and CE through the same helper */
        LossValueConfig vf = {.clip = 0.2f, .agg = (LossAgg)agg}, vp = vf;
        vp.denom = den;
        lf = loss_value_forward(NULL, V, Vo, R, MASK46, &vf, B, T);
        ls = loss_value_forward(NULL, V, Vo, R, MASK46, &vp, 2, T) +
             loss_value_forward(NULL, V + H, Vo + H, R + H, MASK46 + H, &vp, 2, T);
        CHECK_NEAR(ls, lf, 1e-12, 1e-12);
        lf = loss_token_ce_forward(NULL, lpn, MASK46, (LossAgg)agg, 0, B, T);
        ls = loss_token_ce_forward(NULL, lpn, MASK46, (LossAgg)agg, den, 2, T) +
             loss_token_ce_forward(NULL, lpn + H, MASK46 + H, (LossAgg)agg, den, 2, T);
        CHECK_NEAR(ls, lf, 1e-12, 1e-12);
    }
    /* pairs: DPO over 6 pairs = two halves with denom 6 */
    float pw[6], pl[6], rw[6], rl[6];
    fill_normal(&r, pw, 6, -10, 3);
    fill_normal(&r, pl, 6, -10, 3);
    fill_normal(&r, rw, 6, -10, 3);
    fill_normal(&r, rl, 6, -10, 3);
    LossDPOConfig df = {.type = LOSS_DPO_SIGMOID, .beta = 0.2f}, dp = df;
    dp.denom = 6;
    double lf = loss_dpo_forward(NULL, pw, pl, rw, rl, &df, 6);
    double ls = loss_dpo_forward(NULL, pw, pl, rw, rl, &dp, 3) +
                loss_dpo_forward(NULL, pw + 3, pl + 3, rw + 3, rl + 3, &dp, 3);
    CHECK_NEAR(ls, lf, 1e-12, 1e-12);
    CHECK_NEAR(loss_bt_forward(NULL, pw, pl, NULL, 3, 6) +
                   loss_bt_forward(NULL, pw + 3, pl + 3, NULL, 3, 6),
               loss_bt_forward(NULL, pw, pl, NULL, 6, 0), 1e-12, 1e-12);
}

int main(void) {
    TEST_RUN(test_seq_sum);
    TEST_RUN(test_ce_by_hand);
    TEST_RUN(test_ce_fd);
    TEST_RUN(test_bt_by_hand);
    TEST_RUN(test_bt_fd);
    TEST_RUN(test_rank_by_hand);
    TEST_RUN(test_rank_pairs_are_bt);
    TEST_RUN(test_rank_fd);
    TEST_RUN(test_ppo_by_hand);
    TEST_RUN(test_ppo_fd);
    TEST_RUN(test_value_by_hand);
    TEST_RUN(test_value_fd);
    TEST_RUN(test_dpo_by_hand);
    TEST_RUN(test_dpo_fd);
    TEST_RUN(test_soft_by_hand);
    TEST_RUN(test_soft_null_is_hard);
    TEST_RUN(test_soft_fd);
    TEST_RUN(test_ipo_mean_by_hand);
    TEST_RUN(test_ipo_mean_fd);
    TEST_RUN(test_seq_nll);
    TEST_RUN(test_grpo_by_hand);
    TEST_RUN(test_grpo_fd);
    TEST_RUN(test_torch_reference);
    TEST_RUN(test_empty);
    TEST_RUN(test_padding_ignored);
    TEST_RUN(test_backward_accumulates);
    TEST_RUN(test_denom_splits_batch);
    return TEST_EXIT();
}
