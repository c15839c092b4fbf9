/*
 * tests/test_adamw.c — AdamW against hand-computed steps (the arithmetic is written out
 * below), a closed form over many steps, PyTorch's torch.optim.AdamW (tests/ref/adamw.txt),
 * the GPT decay convention, decay-table validation, checkpoint-style state restore,
 * gradient clipping, the finite check and the learning-rate schedule; the threaded,
 * vectorised passes bit-identical to a scalar loop and to themselves at 1, 2, 3 threads.
 */
#include "adamw.h"

#include <math.h>
#include <string.h>

#include "ops.h"
#include "ref/fixture.h"
#include "test.h"
#include "util.h"

static AdamWConfig cfg_095(void) {
    return (AdamWConfig){.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
}

/* Two hand-computed steps. params (1, -2, 0.5, 3); the first two decay, the last two do
 * not; beta1 0.9, beta2 0.95, eps 1e-8, wd 0.1, lr 0.01. */
static void test_two_steps_by_hand(void) {
    AdamWConfig c = cfg_095();
    AdamW o;
    adamw_init(&o, 4, &c);
    AdamWRange table[2] = {{.offset = 2, .numel = 2, .decay = 0},
                           {.offset = 0, .numel = 2, .decay = 1}};
    char err[ERRBUF_LEN];
    CHECK(adamw_set_decay_table(&o, table, 2, err) == 0);
    float p[4] = {1.0f, -2.0f, 0.5f, 3.0f};

    /* step 1, g = (0.1, -0.2, 0, 4):
     *   m = 0.1 g = (0.01, -0.02, 0, 0.4);  v = 0.05 g^2 = (0.0005, 0.002, 0, 0.8)
     *   bias corrections 1 - 0.9 = 0.1 and 1 - 0.95 = 0.05, so mhat = g, vhat = g^2 and
     *   mhat / (sqrt(vhat) + eps) = sign(g) (to 1e-7; 0 for g = 0):
     *   p0 = 1    - 0.01 (1  + 0.1 * 1)    = 0.989
     *   p1 = -2   - 0.01 (-1 + 0.1 * (-2)) = -1.988
     *   p2 = 0.5  - 0.01 (0)               = 0.5     (no decay, zero gradient)
     *   p3 = 3    - 0.01 (1)               = 2.99    (no decay) */
    float g1[4] = {0.1f, -0.2f, 0.0f, 4.0f};
    adamw_step(&o, p, g1, 0.01f);
    CHECK_EQ_INT(o.step, 1);
    CHECK_NEAR(o.m[0], 0.01, 1e-9, 1e-6);
    CHECK_NEAR(o.m[1], -0.02, 1e-9, 1e-6);
    CHECK_NEAR(o.m[3], 0.4, 1e-9, 1e-6);
    CHECK_NEAR(o.v[0], 0.0005, 1e-12, 1e-6);
    CHECK_NEAR(o.v[1], 0.002, 1e-12, 1e-6);
    CHECK_NEAR(o.v[3], 0.8, 1e-9, 1e-6);
    CHECK_NEAR(p[0], 0.989, 1e-7, 1e-6);
    CHECK_NEAR(p[1], -1.988, 1e-7, 1e-6);
    CHECK(p[2] == 0.5f);
    CHECK_NEAR(p[3], 2.99, 1e-7, 1e-6);

    /* step 2, g = (0.3, 0.2, 1, 4):
     *   m = 0.9 m + 0.1 g:   m0 = 0.009 + 0.03 = 0.039     m1 = -0.018 + 0.02 = 0.002
     *                        m2 = 0 + 0.1 = 0.1            m3 = 0.36 + 0.4 = 0.76
     *   v = 0.95 v + 0.05 g^2: v0 = 0.000475 + 0.0045 = 0.004975
     *                        v1 = 0.0019 + 0.002 = 0.0039  v2 = 0 + 0.05 = 0.05
     *                        v3 = 0.76 + 0.8 = 1.56
     *   bias corrections 1 - 0.9^2 = 0.19, 1 - 0.95^2 = 0.0975
     *   p_i <- p_i - 0.01 ((m_i / 0.19) / (sqrt(v_i / 0.0975) + 1e-8) + wd_i p_i) */
    float g2[4] = {0.3f, 0.2f, 1.0f, 4.0f};
    adamw_step(&o, p, g2, 0.01f);
    CHECK_EQ_INT(o.step, 2);
    const double m2[4] = {0.039, 0.002, 0.1, 0.76};
    const double v2[4] = {0.004975, 0.0039, 0.05, 1.56};
    const double p1[4] = {0.989, -1.988, 0.5, 2.99}, wd[4] = {0.1, 0.1, 0.0, 0.0};
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(o.m[i], m2[i], 1e-9, 1e-6);
        CHECK_NEAR(o.v[i], v2[i], 1e-12, 1e-6);
        double expect = p1[i] - 0.01 * ((m2[i] / 0.19) / (sqrt(v2[i] / 0.0975) + 1e-8) +
                                        wd[i] * p1[i]);
        CHECK_NEAR(p[i], expect, 1e-7, 1e-6);
    }
    /* the numbers, for the record: p0 = 0.989 - 0.01 (0.2052632 / 0.2258886 + 0.0989)
     *                                    = 0.989 - 0.01 (0.9086921 + 0.0989) = 0.9789241 */
    CHECK_NEAR(p[0], 0.9789241, 1e-6, 0);
    adamw_free(&o);
}

/* A constant gradient g makes m_t = g (1 - b1^t) and v_t = g^2 (1 - b2^t), so the bias
 * corrections cancel exactly: every step moves by lr sign(g), plus the decay. With
 * a = 1 - lr wd:   p_t = a p_{t-1} - lr  =>  p_T = a^T p_0 - lr (1 - a^T) / (1 - a). */
static void test_constant_gradient_closed_form(void) {
    AdamWConfig c = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f};
    AdamW o;
    adamw_init(&o, 3, &c);
    float p[3] = {1.0f, 1.0f, 1.0f}, g[3] = {0.5f, 0.5f, 0.5f};
    const int T = 200;
    const double lr = 1e-3;
    for (int t = 0; t < T; t++) adamw_step(&o, p, g, (float)lr);
    double a = 1.0 - lr * 0.1, aT = pow(a, T);
    double expect = aT * 1.0 - lr * (1.0 - aT) / (1.0 - a);
    for (int i = 0; i < 3; i++) CHECK_NEAR(p[i], expect, 2e-6, 0);
    CHECK_NEAR(o.m[0], 0.5 * (1.0 - pow(0.9, T)), 1e-6, 1e-5);
    CHECK_NEAR(o.v[0], 0.25 * (1.0 - pow(0.999, T)), 1e-7, 1e-5);
    CHECK_EQ_INT(o.step, T);
    adamw_free(&o);
}

/* torch.optim.AdamW, two groups (12 decayed, 5 not), 6 steps with a changing lr. */
static void test_torch_reference(void) {
    RefFile f;
    CHECK(ref_load(&f, "adamw.txt") == 0);
    if (f.count == 0) return;
    const double *nd = ref_get(&f, "n_decay", 1), *nn = ref_get(&f, "n_nodecay", 1);
    const double *ns = ref_get(&f, "steps", 1);
    CHECK(nd && nn && ns);
    if (!nd || !nn || !ns) {
        ref_free(&f);
        return;
    }
    int n = (int)(nd[0] + nn[0]), steps = (int)ns[0];
    const double *p0 = ref_get(&f, "params0", n), *gr = ref_get(&f, "grads", steps * n);
    const double *lrs = ref_get(&f, "lrs", steps), *pe = ref_get(&f, "params", n);
    const double *me = ref_get(&f, "m", n), *ve = ref_get(&f, "v", n);
    CHECK(p0 && gr && lrs && pe && me && ve);
    if (p0 && gr && lrs && pe && me && ve) {
        AdamWConfig c = cfg_095();
        AdamW o;
        adamw_init(&o, (size_t)n, &c);
        AdamWRange t[2] = {{0, (size_t)nd[0], 1}, {(size_t)nd[0], (size_t)nn[0], 0}};
        CHECK(adamw_set_decay_table(&o, t, 2, NULL) == 0);
        float *p = xalloc_floats((size_t)n), *g = xalloc_floats((size_t)n);
        ref_to_float(p, p0, n);
        for (int s = 0; s < steps; s++) {
            ref_to_float(g, gr + (size_t)s * n, n);
            adamw_step(&o, p, g, (float)lrs[s]);
        }
        double worst = 0.0;
        for (int i = 0; i < n; i++) {
            CHECK_NEAR(p[i], pe[i], 1e-6, 1e-5);
            CHECK_NEAR(o.m[i], me[i], 1e-7, 1e-5);
            CHECK_NEAR(o.v[i], ve[i], 1e-8, 1e-5);
            worst = fmax(worst, fabs(p[i] - pe[i]));
        }
        fprintf(stderr, "  adamw vs torch: max |dparam| = %.3g over %d steps\n", worst, steps);
        free(p);
        free(g);
        adamw_free(&o);
    }
    ref_free(&f);
}

/* nanoGPT convention on a real GPT table: with zero gradients the Adam term is 0/(0+eps)
 * = 0, so only the decay acts: decayed parameters become p (1 - lr wd), others stay. */
static void test_gpt_decay_convention(void) {
    GPTConfig gc = {.vocab_size = 10, .max_seq_len = 4, .n_layer = 2, .n_head = 1,
                    .n_embd = 2, .head = GPT_HEAD_VALUE};
    GPTTensor tab[64];
    int nt = gpt_tensors_build(&gc, tab, 64);
    size_t n = gpt_config_num_params(&gc);
    AdamWRange r[64];
    CHECK_EQ_INT(adamw_decay_table_gpt(r, tab, nt), nt);
    AdamWConfig c = cfg_095();
    AdamW o;
    adamw_init(&o, n, &c);
    char err[ERRBUF_LEN];
    CHECK_MSG(adamw_set_decay_table(&o, r, nt, err) == 0, "%s", err);
    float *p = xalloc_floats(n), *g = xalloc_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = 1.0f;
    adamw_step(&o, p, g, 0.5f); /* decay factor 1 - 0.5 * 0.1 = 0.95 */
    const char *decayed[] = {"wte.weight", "wpe.weight", "h.0.attn.c_attn.weight",
                             "h.1.attn.c_proj.weight", "h.0.mlp.c_fc.weight",
                             "h.1.mlp.c_proj.weight", "v_head.summary.weight"};
    const char *kept[] = {"h.0.ln_1.weight", "h.0.ln_1.bias", "h.1.attn.c_attn.bias",
                          "h.0.ln_2.weight", "h.1.mlp.c_fc.bias", "ln_f.weight", "ln_f.bias",
                          "v_head.summary.bias"};
    int seen = 0;
    for (int k = 0; k < nt; k++) {
        int want = -1;
        for (size_t j = 0; j < sizeof decayed / sizeof *decayed; j++)
            if (strcmp(tab[k].name, decayed[j]) == 0) want = 1;
        for (size_t j = 0; j < sizeof kept / sizeof *kept; j++)
            if (strcmp(tab[k].name, kept[j]) == 0) want = 0;
        /* every tensor: decayed iff 2-D, each element */
        for (size_t i = 0; i < tab[k].numel; i++) {
            float expect = tab[k].ndim == 2 ? 0.95f : 1.0f;
            if (p[tab[k].offset + i] != expect) {
                CHECK_MSG(0, "%s[%zu] = %g, expected %g", tab[k].name, i,
                          (double)p[tab[k].offset + i], (double)expect);
                break;
            }
        }
        if (want >= 0) {
            seen++;
            CHECK_MSG(adamw_decays(&o, tab[k].offset) == want, "%s", tab[k].name);
        }
    }
    CHECK_EQ_INT(seen, 15);
    free(p);
    free(g);
    adamw_free(&o);
}

static void test_decay_table_errors(void) {
    AdamWConfig c = cfg_095();
    AdamW o;
    adamw_init(&o, 10, &c);
    char err[ERRBUF_LEN];
    AdamWRange gap[2] = {{0, 4, 1}, {5, 5, 0}};
    err[0] = 0;
    CHECK(adamw_set_decay_table(&o, gap, 2, err) == -1);
    CHECK_MSG(strstr(err, "gap") != NULL, "%s", err);
    AdamWRange overlap[2] = {{0, 6, 1}, {5, 5, 0}};
    CHECK(adamw_set_decay_table(&o, overlap, 2, err) == -1);
    CHECK_MSG(strstr(err, "overlap") != NULL, "%s", err);
    AdamWRange outside[1] = {{0, 11, 1}};
    CHECK(adamw_set_decay_table(&o, outside, 1, err) == -1);
    AdamWRange shortr[1] = {{0, 9, 1}};
    CHECK(adamw_set_decay_table(&o, shortr, 1, err) == -1);
    AdamWRange zero[2] = {{0, 0, 1}, {0, 10, 1}};
    CHECK(adamw_set_decay_table(&o, zero, 2, err) == -1);
    CHECK(adamw_set_decay_table(&o, NULL, 0, err) == -1);
    /* the failed calls left the default table (all decay) in place */
    CHECK_EQ_INT(o.num_ranges, 1);
    CHECK(adamw_decays(&o, 9) == 1);
    AdamWRange ok[3] = {{7, 3, 1}, {0, 2, 1}, {2, 5, 0}};
    CHECK(adamw_set_decay_table(&o, ok, 3, err) == 0);
    CHECK(adamw_decays(&o, 1) == 1 && adamw_decays(&o, 2) == 0 && adamw_decays(&o, 6) == 0 &&
          adamw_decays(&o, 7) == 1);
    AdamWConfig bad = c;
    bad.beta2 = 1.0f;
    CHECK(adamw_config_validate(&bad, err) == -1);
    bad = c;
    bad.eps = 0.0f;
    CHECK(adamw_config_validate(&bad, err) == -1);
    bad = c;
    bad.weight_decay = NAN;
    CHECK(adamw_config_validate(&bad, err) == -1);
    CHECK(adamw_config_validate(&c, err) == 0);
    adamw_free(&o);
    adamw_free(&o); /* a freed (zeroed) optimizer frees again as a no-op */
    adamw_free(NULL);
}

/* Saving (m, v, step) and loading them into a fresh optimizer continues bit for bit. */
static void test_state_restore(void) {
    AdamWConfig c = cfg_095();
    enum { N = 7 };
    AdamW a, b;
    adamw_init(&a, N, &c);
    float pa[N], g[N];
    for (int i = 0; i < N; i++) pa[i] = 0.1f * (float)(i + 1);
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < N; i++) g[i] = sinf((float)(s * N + i));
        adamw_step(&a, pa, g, 1e-2f);
    }
    adamw_init(&b, N, &c);
    memcpy(b.m, a.m, sizeof(float) * N);
    memcpy(b.v, a.v, sizeof(float) * N);
    b.step = a.step;
    float pb[N];
    memcpy(pb, pa, sizeof pb);
    for (int s = 3; s < 6; s++) {
        for (int i = 0; i < N; i++) g[i] = sinf((float)(s * N + i));
        adamw_step(&a, pa, g, 1e-2f);
        adamw_step(&b, pb, g, 1e-2f);
    }
    CHECK(memcmp(pa, pb, sizeof pa) == 0);
    adamw_reset(&b);
    CHECK(b.step == 0 && b.m[3] == 0.0f && b.v[6] == 0.0f);
    adamw_free(&a);
    adamw_free(&b);
}

static void test_clipping(void) {
    /* (3, 4): norm 5; clipping to 1 scales by 1/5 -> (0.6, 0.8) */
    float g[2] = {3.0f, 4.0f};
    CHECK_NEAR(adamw_clip_grad_norm(g, 2, 1.0f), 5.0, 0, 1e-12);
    CHECK_NEAR(g[0], 0.6, 1e-7, 0);
    CHECK_NEAR(g[1], 0.8, 1e-7, 0);
    CHECK_NEAR(adamw_grad_norm(g, 2), 1.0, 1e-7, 0);
    /* under the limit, or limit 0: untouched, norm still returned */
    float h[2] = {3.0f, 4.0f};
    CHECK_NEAR(adamw_clip_grad_norm(h, 2, 10.0f), 5.0, 0, 1e-12);
    CHECK(h[0] == 3.0f && h[1] == 4.0f);
    CHECK_NEAR(adamw_clip_grad_norm(h, 2, 0.0f), 5.0, 0, 1e-12);
    CHECK(h[0] == 3.0f && h[1] == 4.0f);
    /* the norm is accumulated in double: 4e6 values of 1e-3 have norm sqrt(4) = 2; a
     * float accumulator gives 1.967 here (1.6% low) */
    size_t n = 4000000;
    float *big = xalloc_floats(n);
    for (size_t i = 0; i < n; i++) big[i] = 1e-3f;
    double expect = sqrt((double)n * (double)1e-3f * (double)1e-3f);
    CHECK_NEAR(adamw_grad_norm(big, n), expect, 0, 1e-9);
    free(big);
    /* non-finite: returned as such, nothing scaled */
    float bad[3] = {1.0f, NAN, 2.0f};
    CHECK(isnan(adamw_clip_grad_norm(bad, 3, 1.0f)));
    CHECK(bad[0] == 1.0f && bad[2] == 2.0f);
    float inf[2] = {INFINITY, 1.0f};
    CHECK(isinf(adamw_clip_grad_norm(inf, 2, 1.0f)));
    CHECK(inf[1] == 1.0f);
    CHECK(adamw_clip_grad_norm(NULL, 0, 1.0f) == 0.0);
}

/* The update and the norm run split over the thread pool and vectorised (adamw.c): the
 * update must equal a plain scalar loop bit for bit and, like the norm and the clipping,
 * must not depend on the thread count. n is above the size where the pool is used, not a
 * multiple of 16, and the decay table's rows cross the threads' chunk boundaries. */
static void test_parallel_passes(void) {
    int before = ops_blas_threads();
    size_t n = (1u << 20) + 37;
    AdamWConfig c = cfg_095();
    AdamWRange rows[3] = {{0, 300001, 1}, {300001, 500000, 0}, {800001, n - 800001, 1}};
    float *p0 = xalloc_floats(n), *g = xalloc_floats(n), *ref = xalloc_floats(n);
    float *rm = xalloc_floats(n), *rv = xalloc_floats(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p0[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
        g[i] = ((float)((x >> 4) & 0xffff) / 65536.0f - 0.5f) * 1e-2f;
    }
    /* scalar reference: three steps of the formula in adamw.h */
    memcpy(ref, p0, n * sizeof(float));
    memset(rm, 0, n * sizeof(float)), memset(rv, 0, n * sizeof(float));
    for (int t = 1; t <= 3; t++) {
        float ib1 = (float)(1.0 / (1.0 - pow((double)c.beta1, t)));
        float ib2 = (float)(1.0 / (1.0 - pow((double)c.beta2, t)));
        for (size_t i = 0; i < n; i++) {
            float wd = (i < 300001 || i >= 800001) ? c.weight_decay : 0.0f;
            rm[i] = c.beta1 * rm[i] + (1.0f - c.beta1) * g[i];
            rv[i] = c.beta2 * rv[i] + (1.0f - c.beta2) * g[i] * g[i];
            float mh = rm[i] * ib1, vh = rv[i] * ib2;
            ref[i] -= 1e-3f * (mh / (sqrtf(vh) + c.eps) + wd * ref[i]);
        }
    }
    double norm1 = 0.0;
    for (int th = 1; th <= 3; th++) {
        char err[ERRBUF_LEN];
        ops_blas_setup(th);
        AdamW o;
        adamw_init(&o, n, &c);
        CHECK(adamw_set_decay_table(&o, rows, 3, err) == 0);
        float *p = xalloc_floats(n);
        memcpy(p, p0, n * sizeof(float));
        for (int t = 0; t < 3; t++) adamw_step(&o, p, g, 1e-3f);
        CHECK_MSG(memcmp(p, ref, n * sizeof(float)) == 0, "%d threads: params differ", th);
        CHECK_MSG(memcmp(o.m, rm, n * sizeof(float)) == 0 && memcmp(o.v, rv, n * sizeof(float)) == 0,
                  "%d threads: moments differ", th);
        double nm = adamw_grad_norm(g, n);
        if (th == 1) norm1 = nm;
        CHECK_MSG(nm == norm1, "%d threads: norm %.17g vs %.17g", th, nm, norm1);
        /* clipping scales every element by the same float */
        memcpy(p, g, n * sizeof(float));
        CHECK(adamw_clip_grad_norm(p, n, 0.5f) == norm1);
        float scale = (float)(0.5 / norm1);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += p[i] != g[i] * scale;
        CHECK_EQ_INT((long long)bad, 0);
        free(p);
        adamw_free(&o);
    }
    /* and the norm is right: against a long double sum */
    long double s = 0.0L;
    for (size_t i = 0; i < n; i++) s += (long double)g[i] * g[i];
    CHECK_NEAR(norm1, (double)sqrtl(s), 0, 1e-13);
    ops_blas_setup(before);
    free(p0), free(g), free(ref), free(rm), free(rv);
}

static void test_finite(void) {
    float g[5] = {0.0f, -1.0f, 3.0f, 1e30f, -1e-30f};
    size_t bad = 99;
    CHECK(adamw_grads_finite(g, 5, &bad) == 1);
    CHECK_EQ_INT(bad, 99);
    g[3] = INFINITY;
    CHECK(adamw_grads_finite(g, 5, &bad) == 0);
    CHECK_EQ_INT(bad, 3);
    g[1] = NAN;
    CHECK(adamw_grads_finite(g, 5, &bad) == 0);
    CHECK_EQ_INT(bad, 1);
    CHECK(adamw_grads_finite(g, 5, NULL) == 0);
    CHECK(adamw_grads_finite(g, 0, NULL) == 1);
}

/* max 6e-4, min 6e-5, warmup 10, total 110 (100 decay steps). */
static void test_schedule(void) {
    AdamWSchedule s = {.max_lr = 6e-4f, .min_lr = 6e-5f, .warmup = 10, .total = 110};
    char err[ERRBUF_LEN];
    CHECK(adamw_schedule_validate(&s, err) == 0);
    /* warmup: 6e-4 (s + 1) / 10 */
    CHECK_NEAR(adamw_schedule_lr(&s, 0), 6e-5, 1e-12, 1e-6);
    CHECK_NEAR(adamw_schedule_lr(&s, 4), 3e-4, 1e-12, 1e-6);
    CHECK_NEAR(adamw_schedule_lr(&s, 9), 6e-4, 1e-12, 1e-6);
    /* s = 10: r = 0, cos 0 = 1: max_lr */
    CHECK_NEAR(adamw_schedule_lr(&s, 10), 6e-4, 1e-12, 1e-6);
    /* s = 35: r = 25/100, 0.5 (1 + cos(pi/4)) = 0.5 (1 + 0.70710678) = 0.85355339,
     *         6e-5 + 0.85355339 * 5.4e-4 = 5.2091883e-4 */
    CHECK_NEAR(adamw_schedule_lr(&s, 35), 5.2091883e-4, 1e-11, 1e-6);
    /* s = 60: r = 1/2, coefficient 0.5: 6e-5 + 2.7e-4 = 3.3e-4 */
    CHECK_NEAR(adamw_schedule_lr(&s, 60), 3.3e-4, 1e-12, 1e-6);
    /* s = 85: r = 3/4, 0.5 (1 - 0.70710678) = 0.14644661: 6e-5 + 7.9081170e-5 = 1.3908117e-4 */
    CHECK_NEAR(adamw_schedule_lr(&s, 85), 1.3908117e-4, 1e-11, 1e-6);
    /* s >= total: min_lr */
    CHECK_NEAR(adamw_schedule_lr(&s, 110), 6e-5, 1e-13, 1e-6);
    CHECK_NEAR(adamw_schedule_lr(&s, 100000), 6e-5, 1e-13, 1e-6);
    /* monotone after warmup */
    for (long k = 10; k < 120; k++)
        CHECK(adamw_schedule_lr(&s, k + 1) <= adamw_schedule_lr(&s, k));
    /* no warmup, no decay */
    AdamWSchedule flat = {.max_lr = 1e-3f, .min_lr = 0.0f, .warmup = 0, .total = 0};
    CHECK(adamw_schedule_validate(&flat, err) == 0);
    CHECK_NEAR(adamw_schedule_lr(&flat, 0), 1e-3, 0, 1e-6);
    CHECK_NEAR(adamw_schedule_lr(&flat, 12345), 1e-3, 0, 1e-6);
    /* warmup then constant */
    AdamWSchedule wc = {.max_lr = 1e-3f, .min_lr = 0.0f, .warmup = 4, .total = 0};
    CHECK_NEAR(adamw_schedule_lr(&wc, 1), 5e-4, 0, 1e-6);
    CHECK_NEAR(adamw_schedule_lr(&wc, 50), 1e-3, 0, 1e-6);
    /* invalid */
    AdamWSchedule b1 = {.max_lr = 1e-3f, .min_lr = 2e-3f, .warmup = 0, .total = 10};
    CHECK(adamw_schedule_validate(&b1, err) == -1);
    AdamWSchedule b2 = {.max_lr = 1e-3f, .min_lr = 0.0f, .warmup = 10, .total = 10};
    CHECK(adamw_schedule_validate(&b2, err) == -1);
    CHECK_MSG(strstr(err, "warmup") != NULL, "%s", err);
    AdamWSchedule b3 = {.max_lr = NAN, .min_lr = 0.0f, .warmup = 0, .total = 10};
    CHECK(adamw_schedule_validate(&b3, err) == -1);
    AdamWSchedule b4 = {.max_lr = 1e-3f, .min_lr = 0.0f, .warmup = -1, .total = 10};
    CHECK(adamw_schedule_validate(&b4, err) == -1);
}

/* Clipping fused into the update: adamw_step_scaled(.., adamw_clip_scale(norm, max)) gives
 * bit for bit what adamw_clip_grad_norm (in place) + adamw_step give, on the serial and the
 * parallel path, over several steps; and the scale's edge cases. */
static void test_fused_clip(void) {
    const size_t sizes[] = {1000, (1u << 18) + 37};
    for (int si = 0; si < 2; si++) {
        size_t n = sizes[si];
        AdamWConfig c = cfg_095();
        AdamW a, b;
        adamw_init(&a, n, &c);
        adamw_init(&b, n, &c);
        float *pa = xalloc_floats(n), *pb = xalloc_floats(n), *g = xalloc_floats(n),
              *gc = xalloc_floats(n);
        for (size_t i = 0; i < n; i++) pa[i] = pb[i] = 0.01f * sinf((float)i);
        int clipped = 0;
        for (int s = 0; s < 3; s++) {
            for (size_t i = 0; i < n; i++) g[i] = (s == 1 ? 1e-4f : 0.3f) * cosf((float)(i * 7 + s));
            memcpy(gc, g, n * sizeof(float));
            double na = adamw_clip_grad_norm(gc, n, 1.0f);
            adamw_step(&a, pa, gc, 1e-3f);
            double nb = adamw_grad_norm(g, n);
            float sc = adamw_clip_scale(nb, 1.0f);
            clipped += sc != 1.0f;
            adamw_step_scaled(&b, pb, g, 1e-3f, sc);
            CHECK(na == nb);
        }
        CHECK_EQ_INT(clipped, 2); /* steps 0 and 2 clip, step 1 does not */
        CHECK(memcmp(pa, pb, n * sizeof(float)) == 0);
        CHECK(memcmp(a.m, b.m, n * sizeof(float)) == 0 && memcmp(a.v, b.v, n * sizeof(float)) == 0);
        free(pa), free(pb), free(g), free(gc);
        adamw_free(&a);
        adamw_free(&b);
    }
    CHECK(adamw_clip_scale(2.0, 1.0f) == 0.5f);
    CHECK(adamw_clip_scale(0.5, 1.0f) == 1.0f);
    CHECK(adamw_clip_scale(2.0, 0.0f) == 1.0f);
    CHECK(adamw_clip_scale(NAN, 1.0f) == 1.0f);
    CHECK(adamw_clip_scale(INFINITY, 1.0f) == 1.0f);
}

int main(void) {
    TEST_RUN(test_two_steps_by_hand);
    TEST_RUN(test_constant_gradient_closed_form);
    TEST_RUN(test_torch_reference);
    TEST_RUN(test_gpt_decay_convention);
    TEST_RUN(test_decay_table_errors);
    TEST_RUN(test_state_restore);
    TEST_RUN(test_clipping);
    TEST_RUN(test_fused_clip);
    TEST_RUN(test_parallel_passes);
    TEST_RUN(test_finite);
    TEST_RUN(test_schedule);
    return TEST_EXIT();
}
