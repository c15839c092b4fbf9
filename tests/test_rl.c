/*
 * tests/test_rl.c — the RL estimators of rl.h against hand-computed values (the arithmetic
 * is written next to each check), GAE against the direct O(T^2) sum of discounted TD
 * errors and against TRL's loop (tests/ref/rl.txt, numpy/torch), whitening, the per-token
 * PPO reward, the KL controllers and their saved state, running statistics (push, merge,
 * normalise) and the GRPO / RLOO group advantages, including the empty and degenerate
 * cases that must give defined, finite results.
 */
#include "rl.h"

#include <math.h>
#include <string.h>

#include "ref/fixture.h"
#include "rng.h"
#include "test.h"
#include "util.h"

// ----------------------------------------------------------------------------
// GAE

static void test_gae_by_hand(void) {
    /* gamma 0.9, lambda 0.5 (gamma lambda = 0.45); three rows of T = 3.
     * row 0, mask (1,1,1), r = (1, 0, 2), V = (0.5, 1, 1.5):
     *   t2: delta = 2 + 0.9*0 - 1.5 = 0.5                 A = 0.5       R = 2.0
     *   t1: delta = 0 + 0.9*1.5 - 1 = 0.35                A = 0.35 + 0.45*0.5 = 0.575
     *                                                                   R = 1.575
     *   t0: delta = 1 + 0.9*1 - 0.5 = 1.4                 A = 1.4 + 0.45*0.575 = 1.65875
     *                                                                   R = 2.15875
     * row 1, mask (1,1,0) (a shorter response; the pad holds junk):
     *   t1: delta = 0 + 0 - 1 = -1 (the last token bootstraps 0)   A = -1, R = 0
     *   t0: delta = 1 + 0.9*1 - 0.5 = 1.4                 A = 1.4 - 0.45 = 0.95, R = 1.45
     * row 2, mask (1,0,1) (a gap: t0's next step is t2):
     *   t2: delta = 2 - 1.5 = 0.5                         A = 0.5, R = 2
     *   t0: delta = 1 + 0.9*1.5 - 0.5 = 1.85              A = 1.85 + 0.45*0.5 = 2.075 */
    float r[9] = {1, 0, 2, 1, 0, 99, 1, 99, 2};
    float v[9] = {0.5f, 1, 1.5f, 0.5f, 1, 77, 0.5f, 77, 1.5f};
    float m[9] = {1, 1, 1, 1, 1, 0, 1, 0, 1};
    float adv[9], ret[9];
    rl_gae(adv, ret, r, v, m, 0.9f, 0.5f, 3, 3);
    const double ea[9] = {1.65875, 0.575, 0.5, 0.95, -1, 0, 2.075, 0, 0.5};
    const double er[9] = {2.15875, 1.575, 2.0, 1.45, 0, 0, 2.575, 0, 2.0};
    for (int i = 0; i < 9; i++) {
        CHECK_NEAR(adv[i], ea[i], 1e-6, 1e-6);
        CHECK_NEAR(ret[i], er[i], 1e-6, 1e-6);
    }
}

/* The definition: A_t = sum_{k>=0} (gamma lambda)^k delta_{t+k} over the row's masked
 * steps, delta_t = r_t + gamma V_{next} - V_t (V_next = 0 after the last step). */
static void gae_direct(double *adv, const float *r, const float *v, const float *m, int T,
                       double gamma, double lam) {
    int idx[64], n = 0;
    for (int t = 0; t < T; t++) {
        adv[t] = 0.0;
        if (m[t] != 0.0f) idx[n++] = t;
    }
    double delta[64];
    for (int k = 0; k < n; k++) {
        double vnext = k + 1 < n ? v[idx[k + 1]] : 0.0;
        delta[k] = r[idx[k]] + gamma * vnext - v[idx[k]];
    }
    for (int k = 0; k < n; k++) {
        double s = 0.0;
        for (int j = k; j < n; j++) s += pow(gamma * lam, j - k) * delta[j];
        adv[idx[k]] = s;
    }
}

static void test_gae_direct_sum(void) {
    enum { B = 5, T = 40, N = B * T };
    Rng rg;
    rng_init(&rg, 21);
    float r[N], v[N], m[N], adv[N], ret[N];
    for (int i = 0; i < N; i++) {
        r[i] = rng_normal(&rg);
        v[i] = rng_normal(&rg);
    }
    /* lengths 40, 17, 1, 0 and a row with random holes */
    const int len[4] = {40, 17, 1, 0};
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            m[b * T + t] = b < 4 ? (t < len[b] ? 1.0f : 0.0f) : (rng_uniform(&rg) < 0.6f);
    const double params[4][2] = {{0.99, 0.95}, {1.0, 1.0}, {1.0, 0.0}, {0.9, 0.7}};
    for (int p = 0; p < 4; p++) {
        double g = params[p][0], l = params[p][1];
        rl_gae(adv, ret, r, v, m, (float)g, (float)l, B, T);
        double worst = 0.0;
        for (int b = 0; b < B; b++) {
            double ref[T];
            gae_direct(ref, r + b * T, v + b * T, m + b * T, T, (float)g, (float)l);
            for (int t = 0; t < T; t++) {
                int i = b * T + t;
                CHECK_NEAR(adv[i], ref[t], 1e-5, 1e-5);
                double rexp = m[i] != 0.0f ? ref[t] + v[i] : 0.0;
                CHECK_NEAR(ret[i], rexp, 1e-5, 1e-5);
                worst = fmax(worst, fabs(adv[i] - ref[t]));
            }
        }
        fprintf(stderr, "  gae gamma %.2f lambda %.2f vs direct sum: max |diff| = %.2e\n", g,
                l, worst);
    }
    /* gamma = lambda = 1: the return is the Monte-Carlo sum of the remaining rewards */
    rl_gae(adv, ret, r, v, m, 1.0f, 1.0f, B, T);
    double mc = 0.0;
    for (int t = 16; t >= 0; t--) mc += r[T + t];
    CHECK_NEAR(ret[T + 0], mc, 1e-5, 1e-5);
    /* lambda = 0: TD(0), A_t = delta_t */
    rl_gae(adv, ret, r, v, m, 0.9f, 0.0f, B, T);
    CHECK_NEAR(adv[5], r[5] + 0.9 * v[6] - v[5], 1e-6, 1e-6);
}

// ----------------------------------------------------------------------------
// whitening

static void test_whiten(void) {
    /* x = (1, 2, 3 | 100 masked out): mean 2, unbiased var (1 + 0 + 1) / 2 = 1
     * -> (-1, 0, 1) / sqrt(1 + 1e-8); the masked entry becomes 0 */
    float x[4] = {1, 2, 3, 100}, m[4] = {1, 1, 1, 0};
    RLMoments mo = rl_whiten(x, m, 4, 0);
    CHECK(mo.count == 3.0);
    CHECK_NEAR(mo.mean, 2.0, 1e-12, 0);
    CHECK_NEAR(mo.var, 1.0, 1e-12, 0);
    CHECK_NEAR(x[0], -1.0 / sqrt(1 + 1e-8), 1e-7, 0);
    CHECK(x[1] == 0.0f);
    CHECK_NEAR(x[2], 1.0 / sqrt(1 + 1e-8), 1e-7, 0);
    CHECK(x[3] == 0.0f);
    /* keep_mean: the mean is added back: (1, 2, 3) */
    float y[4] = {1, 2, 3, 100};
    rl_whiten(y, m, 4, 1);
    CHECK_NEAR(y[0], 1.0, 1e-6, 0);
    CHECK_NEAR(y[2], 3.0, 1e-6, 0);
    /* x = (0, 4): mean 2, var 8 -> (-2, 2) / sqrt(8) = (-0.7071068, 0.7071068) */
    float z[2] = {0, 4};
    rl_whiten(z, NULL, 2, 0);
    CHECK_NEAR(z[0], -0.7071068, 1e-6, 0);
    CHECK_NEAR(z[1], 0.7071068, 1e-6, 0);
    /* empty mask: zeros; one entry: 0 (its own mean); NaN in the padding is ignored */
    float e[3] = {5, NAN, 7}, em[3] = {0, 0, 0};
    mo = rl_whiten(e, em, 3, 0);
    CHECK(mo.count == 0.0 && mo.mean == 0.0 && mo.var == 0.0);
    CHECK(e[0] == 0.0f && e[1] == 0.0f && e[2] == 0.0f);
    float s[3] = {5, NAN, 7}, sm[3] = {1, 0, 0};
    rl_whiten(s, sm, 3, 0);
    CHECK(s[0] == 0.0f && s[1] == 0.0f && s[2] == 0.0f);
    float k[2] = {5, 9}, km[2] = {1, 0};
    rl_whiten(k, km, 2, 1);
    CHECK(k[0] == 5.0f && k[1] == 0.0f);
    /* whitened values have mean 0 and unbiased variance ~1 over the mask */
    Rng rg;
    rng_init(&rg, 22);
    float w[100], wm[100];
    for (int i = 0; i < 100; i++) {
        w[i] = 3.0f + 5.0f * rng_normal(&rg);
        wm[i] = (float)(i % 3 != 0);
    }
    rl_whiten(w, wm, 100, 0);
    RLMoments after = rl_masked_moments(w, wm, 100);
    CHECK_NEAR(after.mean, 0.0, 1e-6, 0);
    CHECK_NEAR(after.var, 1.0, 1e-5, 0);
}

// ----------------------------------------------------------------------------
// per-token PPO reward

static void test_ppo_rewards(void) {
    /* beta 0.1, no-EOS penalty 0.5; rows:
     *  0: lp_old (-1, -2, -3), lp_ref (-1.5, -2, -2), mask (1,1,1), score 2, EOS
     *     kl = (0.5, 0, -1); r = (-0.05, 0, 0.1 + 2 = 2.1); kl sum -0.5
     *  1: lp_old (-1, -1, x), lp_ref (-2, -2, x), mask (1,1,0), score -1, no EOS
     *     kl = (1, 1); r = (-0.1, -0.1 + (-1 - 0.5) = -1.6, 0); kl sum 2
     *  2: empty mask, score 5: no reward anywhere, left out of the statistics
     * kl_seq = (-0.5 + 2) / 2 = 0.75; kl_token = 1.5 / 5 = 0.3;
     * score = (2 - 1.5) / 2 = 0.25; nonscore = (0.05 - 0.2) / 2 = -0.075;
     * total = (0.05 + 2 - 0.2 - 1.5) / 2 = 0.175; no_eos_frac = 1/2 */
    float lo[9] = {-1, -2, -3, -1, -1, NAN, NAN, NAN, NAN};
    float lr[9] = {-1.5f, -2, -2, -2, -2, NAN, NAN, NAN, NAN};
    float m[9] = {1, 1, 1, 1, 1, 0, 0, 0, 0}, sc[3] = {2, -1, 5}, rw[9];
    int eos[3] = {1, 0, 1};
    RLRewardStats st;
    rl_ppo_rewards(rw, &st, lo, lr, sc, eos, m, 0.1f, 0.5f, 3, 3);
    const double e[9] = {-0.05, 0, 2.1, -0.1, -1.6, 0, 0, 0, 0};
    for (int i = 0; i < 9; i++) CHECK_NEAR(rw[i], e[i], 1e-6, 0);
    CHECK_NEAR(st.kl_seq, 0.75, 1e-9, 0);
    CHECK_NEAR(st.kl_token, 0.3, 1e-9, 0);
    CHECK_NEAR(st.score, 0.25, 1e-9, 0);
    CHECK_NEAR(st.nonscore_reward, -0.075, 1e-8, 0);
    CHECK_NEAR(st.total_reward, 0.175, 1e-8, 0);
    CHECK_NEAR(st.no_eos_frac, 0.5, 0, 0);
    CHECK(st.n_seq == 2.0 && st.n_tokens == 5.0);
    /* has_eos NULL: every row ended; the penalty never applies: r_4 = -0.1 - 1 = -1.1 */
    rl_ppo_rewards(rw, &st, lo, lr, sc, NULL, m, 0.1f, 0.5f, 3, 3);
    CHECK_NEAR(rw[4], -1.1, 1e-6, 0);
    CHECK(st.no_eos_frac == 0.0);
    /* nothing masked: all zero, stats zero */
    float z[9] = {0};
    rl_ppo_rewards(rw, &st, lo, lr, sc, eos, z, 0.1f, 0.5f, 3, 3);
    for (int i = 0; i < 9; i++) CHECK(rw[i] == 0.0f);
    CHECK(st.kl_seq == 0.0 && st.score == 0.0 && st.n_seq == 0.0);
    /* the rewards feed GAE: with gamma = lambda = 1 and V = 0 the return at t = 0 is the
     * row's total reward: row 0: -0.05 + 0 + 2.1 = 2.05 */
    rl_ppo_rewards(rw, NULL, lo, lr, sc, eos, m, 0.1f, 0.5f, 3, 3);
    float v0[9] = {0}, adv[9], ret[9];
    rl_gae(adv, ret, rw, v0, m, 1.0f, 1.0f, 3, 3);
    CHECK_NEAR(ret[0], 2.05, 1e-6, 0);
}

// ----------------------------------------------------------------------------
// KL controllers

static void test_klctl(void) {
    /* adaptive: beta 0.1, target 6, horizon 10000
     *   KL 9,   n 256:  e = 9/6 - 1 = 0.5 -> 0.2;   beta = 0.1 (1 + 0.2*256/1e4) = 0.100512
     *   KL 3,   n 256:  e = -0.5 -> -0.2;           beta = 0.100512 (1 - 0.00512)
     *                                                    = 0.0999973786
     *   KL 6.6, n 1000: e = 0.1 (inside the clip);  beta *= 1 + 0.1*1000/1e4 = 1.01 */
    RLKLCtl c;
    rl_klctl_init_adaptive(&c, 0.1, 6.0, 10000.0);
    char err[ERRBUF_LEN];
    CHECK(rl_klctl_validate(&c, err) == 0);
    rl_klctl_update(&c, 9.0, 256);
    CHECK_NEAR(c.beta, 0.100512, 1e-12, 1e-12);
    rl_klctl_update(&c, 3.0, 256);
    CHECK_NEAR(c.beta, 0.0999973786, 1e-12, 1e-9);
    rl_klctl_update(&c, 6.6, 1000);
    CHECK_NEAR(c.beta, 0.0999973786 * 1.01, 1e-12, 1e-9);
    /* a non-finite KL leaves beta alone */
    double before = c.beta;
    rl_klctl_update(&c, NAN, 256);
    rl_klctl_update(&c, INFINITY, 256);
    CHECK(c.beta == before);
    /* fixed: never moves */
    RLKLCtl f;
    rl_klctl_init_fixed(&f, 0.05);
    CHECK(rl_klctl_validate(&f, err) == 0);
    rl_klctl_update(&f, 100.0, 256);
    CHECK(f.beta == 0.05);
    /* save / load round trip */
    double st[RL_KLCTL_STATE_LEN];
    rl_klctl_save(&c, st);
    RLKLCtl d;
    rl_klctl_init_fixed(&d, 0.0);
    CHECK(rl_klctl_load(&d, st, err) == 0);
    CHECK(d.beta == c.beta && d.target == c.target && d.horizon == c.horizon &&
          d.adaptive == c.adaptive);
    /* bad states are rejected and leave the controller unchanged */
    double bad1[4] = {0.1, 6, 10000, 2}, bad2[4] = {0.1, 0, 10000, 1};
    double bad3[4] = {-0.1, 6, 10000, 0}, bad4[4] = {NAN, 6, 10000, 1};
    double bad5[4] = {0.1, 6, 0, 1};
    CHECK(rl_klctl_load(&d, bad1, err) == -1);
    CHECK(rl_klctl_load(&d, bad2, err) == -1);
    CHECK_MSG(strstr(err, "target") != NULL, "%s", err);
    CHECK(rl_klctl_load(&d, bad3, err) == -1);
    CHECK(rl_klctl_load(&d, bad4, err) == -1);
    CHECK(rl_klctl_load(&d, bad5, err) == -1);
    CHECK(d.beta == c.beta && d.adaptive == 1);
    /* a fixed controller's unused target/horizon may be 0 */
    double okf[4] = {0.2, 0, 0, 0};
    CHECK(rl_klctl_load(&d, okf, err) == 0);
    CHECK(d.beta == 0.2 && d.adaptive == 0);
}

// ----------------------------------------------------------------------------
// running statistics

static void test_running(void) {
    /* push (1, 2, 3) then (4, 5): mean 3, unbiased var (4 + 1 + 0 + 1 + 4) / 4 = 2.5.
     * The second push is a merge of a = (3, 2, 2) and b = (2, 4.5, 0.5):
     *   delta = 2.5, mean = 2 + 2.5 * 2/5 = 3, M2 = 2 + 0.5 + 2.5^2 * 3 * 2 / 5 = 10 */
    RLRunning s;
    rl_running_init(&s);
    CHECK(rl_running_var(&s) == 0.0 && rl_running_std(&s) == 0.0);
    float a[3] = {1, 2, 3}, b[2] = {4, 5};
    rl_running_push(&s, a, 3);
    CHECK(s.count == 3.0);
    CHECK_NEAR(s.mean, 2.0, 1e-12, 0);
    CHECK_NEAR(s.m2, 2.0, 1e-12, 0);
    rl_running_push(&s, b, 2);
    CHECK(s.count == 5.0);
    CHECK_NEAR(s.mean, 3.0, 1e-12, 0);
    CHECK_NEAR(s.m2, 10.0, 1e-12, 0);
    CHECK_NEAR(rl_running_var(&s), 2.5, 1e-12, 0);
    rl_running_push(&s, NULL, 0); /* nothing */
    CHECK(s.count == 5.0);
    /* merging: rank-style, two halves vs. all at once vs. the other order */
    RLRunning x, y, all, yx;
    rl_running_init(&x);
    rl_running_init(&y);
    rl_running_init(&all);
    float v[50];
    Rng rg;
    rng_init(&rg, 23);
    for (int i = 0; i < 50; i++) v[i] = 10.0f + 3.0f * rng_normal(&rg);
    rl_running_push(&x, v, 13);
    rl_running_push(&y, v + 13, 37);
    rl_running_push(&all, v, 50);
    yx = y;
    rl_running_merge(&x, &y);
    RLRunning empty = {0};
    rl_running_merge(&yx, &empty); /* merging an empty state changes nothing */
    CHECK(yx.count == y.count && yx.mean == y.mean && yx.m2 == y.m2);
    CHECK_NEAR(x.count, all.count, 0, 0);
    CHECK_NEAR(x.mean, all.mean, 1e-12, 1e-12);
    CHECK_NEAR(x.m2, all.m2, 1e-10, 1e-12);
    RLRunning e;
    rl_running_init(&e);
    rl_running_merge(&e, &all); /* empty <- all */
    CHECK(e.count == all.count && e.mean == all.mean && e.m2 == all.m2);
    /* normalisation */
    float n1[2] = {3, 5};
    rl_running_normalize(n1, 2, &s); /* (x - 3) / sqrt(2.5) */
    CHECK_NEAR(n1[0], 0.0, 1e-7, 0);
    CHECK_NEAR(n1[1], 2.0 / sqrt(2.5), 1e-6, 0);
    RLRunning one;
    rl_running_init(&one);
    float seven = 7.0f;
    rl_running_push(&one, &seven, 1); /* one sample: std 0, only the mean is removed */
    float n2[2] = {7, 9};
    rl_running_normalize(n2, 2, &one);
    CHECK(n2[0] == 0.0f && n2[1] == 2.0f);
    RLRunning none;
    rl_running_init(&none);
    float n3[1] = {4};
    rl_running_normalize(n3, 1, &none);
    CHECK(n3[0] == 4.0f);
    /* validation of a loaded state */
    char err[ERRBUF_LEN];
    CHECK(rl_running_validate(&s, err) == 0);
    CHECK(rl_running_validate(&none, err) == 0);
    RLRunning bad = {.count = -1};
    CHECK(rl_running_validate(&bad, err) == -1);
    bad = (RLRunning){.count = 3, .mean = NAN, .m2 = 1};
    CHECK(rl_running_validate(&bad, err) == -1);
    bad = (RLRunning){.count = 0, .mean = 1, .m2 = 0};
    CHECK(rl_running_validate(&bad, err) == -1);
    bad = (RLRunning){.count = 4, .mean = 1, .m2 = -2};
    CHECK(rl_running_validate(&bad, err) == -1);
}

// ----------------------------------------------------------------------------
// group advantages

static void test_group_advantages(void) {
    /* group 0 = (1, 2, 3, 6): mean 3, unbiased std sqrt((4 + 1 + 0 + 9) / 3) = 2.1602469
     *   GRPO: (s - 3) / (2.1602469 + 1e-4): (-0.9258, -0.4629, 0, 1.3887)
     *   Dr. GRPO: s - 3 = (-2, -1, 0, 3)
     *   RLOO: s_i - (12 - s_i) / 3 = (1 - 11/3, 2 - 10/3, 3 - 3, 6 - 2)
     *                              = (-2.6666667, -1.3333333, 0, 4)
     * group 1 = (0.5, 0.5, 0.5, 0.5): all equal: 0 everywhere (no NaN even with eps 0) */
    float s[8] = {1, 2, 3, 6, 0.5f, 0.5f, 0.5f, 0.5f}, a[8];
    double sd = sqrt(14.0 / 3.0);
    rl_group_advantages(a, s, 2, 4, 1e-4f, 1);
    const double d[4] = {-2, -1, 0, 3};
    for (int i = 0; i < 4; i++) CHECK_NEAR(a[i], d[i] / (sd + (double)1e-4f), 1e-6, 0);
    CHECK_NEAR(sd, 2.1602469, 1e-7, 0);
    for (int i = 4; i < 8; i++) CHECK(a[i] == 0.0f);
    rl_group_advantages(a, s, 2, 4, 0.0f, 1);
    for (int i = 4; i < 8; i++) CHECK(a[i] == 0.0f);
    rl_group_advantages(a, s, 2, 4, 1e-4f, 0);
    for (int i = 0; i < 4; i++) CHECK_NEAR(a[i], d[i], 1e-6, 0);
    rl_rloo_advantages(a, s, 2, 4);
    const double lo[4] = {1 - 11.0 / 3, 2 - 10.0 / 3, 0, 4};
    for (int i = 0; i < 4; i++) CHECK_NEAR(a[i], lo[i], 1e-6, 0);
    for (int i = 4; i < 8; i++) CHECK(a[i] == 0.0f);
    /* RLOO is the group-mean baseline scaled by G / (G - 1) */
    for (int i = 0; i < 4; i++) CHECK_NEAR(a[i], d[i] * 4.0 / 3.0, 1e-6, 0);
    /* G = 1: no baseline: 0 */
    float one[3] = {3, -2, 8}, ao[3];
    rl_group_advantages(ao, one, 3, 1, 1e-4f, 1);
    for (int i = 0; i < 3; i++) CHECK(ao[i] == 0.0f);
    rl_rloo_advantages(ao, one, 3, 1);
    for (int i = 0; i < 3; i++) CHECK(ao[i] == 0.0f);
    /* G = 2: (s - mean) / (std + eps) = +-(d/2) / (|d| / sqrt 2) = +-0.7071 for eps -> 0 */
    float two[2] = {1, 4}, at[2];
    rl_group_advantages(at, two, 1, 2, 0.0f, 1);
    CHECK_NEAR(at[0], -1.0 / sqrt(2.0), 1e-6, 0);
    CHECK_NEAR(at[1], 1.0 / sqrt(2.0), 1e-6, 0);
    /* broadcast to tokens */
    float seq[2] = {1.5f, -2}, mk[6] = {1, 1, 0, 0, 1, 0}, out[6];
    rl_broadcast_seq(out, seq, mk, 2, 3);
    const float eo[6] = {1.5f, 1.5f, 0, 0, -2, 0};
    CHECK(memcmp(out, eo, sizeof out) == 0);
}

// ----------------------------------------------------------------------------
// against the reference implementation (tests/ref/rl.txt)

static void cmp_arr(const RefFile *f, const char *name, const float *got, int n, double tol) {
    const double *e = ref_get(f, name, n);
    CHECK_MSG(e != NULL, "fixture array %s", name);
    if (!e) return;
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        CHECK_MSG(fabs(got[i] - e[i]) <= tol + tol * fabs(e[i]), "%s[%d] = %.9g, ref %.9g",
                  name, i, (double)got[i], e[i]);
        worst = fmax(worst, fabs(got[i] - e[i]));
    }
    fprintf(stderr, "  ref %-16s max |diff| = %.2e\n", name, worst);
}

static void test_reference(void) {
    RefFile f;
    CHECK(ref_load(&f, "rl.txt") == 0);
    enum { B = 3, T = 7, N = B * T };
    float m[N], r[N], v[N], adv[N], ret[N], x[N], sc[12], a[12], xs[37];
    const double *pm = ref_get(&f, "gae.mask", N), *pr = ref_get(&f, "gae.rewards", N);
    const double *pv = ref_get(&f, "gae.values", N), *pc = ref_get(&f, "gae.cfg", 2);
    const double *px = ref_get(&f, "whiten.x", N), *ps = ref_get(&f, "group.scores", 12);
    const double *pxs = ref_get(&f, "running.x", 37);
    const double *pmean = ref_get(&f, "running.mean", 1), *pvar = ref_get(&f, "running.var", 1);
    CHECK(pm && pr && pv && pc && px && ps && pxs && pmean && pvar);
    if (pm && pr && pv && pc && px && ps && pxs && pmean && pvar) {
        ref_to_float(m, pm, N);
        ref_to_float(r, pr, N);
        ref_to_float(v, pv, N);
        rl_gae(adv, ret, r, v, m, (float)pc[0], (float)pc[1], B, T);
        cmp_arr(&f, "gae.adv", adv, N, 1e-6);
        cmp_arr(&f, "gae.returns", ret, N, 1e-6);
        ref_to_float(x, px, N);
        rl_whiten(x, m, N, 0);
        cmp_arr(&f, "whiten.out", x, N, 1e-6);
        ref_to_float(x, px, N);
        rl_whiten(x, m, N, 1);
        cmp_arr(&f, "whiten.out_keep", x, N, 1e-6);
        ref_to_float(sc, ps, 12);
        rl_group_advantages(a, sc, 3, 4, 1e-4f, 1);
        cmp_arr(&f, "group.grpo", a, 12, 1e-6);
        rl_group_advantages(a, sc, 3, 4, 1e-4f, 0);
        cmp_arr(&f, "group.drgrpo", a, 12, 1e-6);
        rl_rloo_advantages(a, sc, 3, 4);
        cmp_arr(&f, "group.rloo", a, 12, 1e-6);
        /* running statistics over uneven chunks 5, 0, 11, 21 */
        ref_to_float(xs, pxs, 37);
        RLRunning s;
        rl_running_init(&s);
        rl_running_push(&s, xs, 5);
        rl_running_push(&s, xs + 5, 0);
        rl_running_push(&s, xs + 5, 11);
        rl_running_push(&s, xs + 16, 21);
        CHECK(s.count == 37.0);
        CHECK_NEAR(s.mean, pmean[0], 1e-12, 1e-12);
        CHECK_NEAR(rl_running_var(&s), pvar[0], 1e-12, 1e-10);
    }
    ref_free(&f);
}

int main(void) {
    TEST_RUN(test_gae_by_hand);
    TEST_RUN(test_gae_direct_sum);
    TEST_RUN(test_whiten);
    TEST_RUN(test_ppo_rewards);
    TEST_RUN(test_klctl);
    TEST_RUN(test_running);
    TEST_RUN(test_group_advantages);
    TEST_RUN(test_reference);
    return TEST_EXIT();
}
