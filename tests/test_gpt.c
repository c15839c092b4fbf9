/*
 * tests/test_gpt.c — the whole GPT-2 model of gpt.c:
 *   - gradient of every head's loss (LM log-probs + entropy, score, value) w.r.t. a
 *     sample of parameters from EVERY tensor, against central finite differences;
 *   - LM logits, log-probs, entropy and gradients against a PyTorch reference
 *     (tests/ref/gpt_tiny.bin, made by tests/ref/make_gpt_ref.py);
 *   - shape handling: reserve grows, results do not depend on the reserved size, a
 *     batch row does not depend on the other rows (up to sgemm rounding);
 *   - an overfit run: a tiny model with inline Adam drives the masked CE of one batch
 *     below 0.05;
 *   - gpt_free(NULL) and double free are no-ops.
 */
#include <stdint.h>

#include "gpt.h"
#include "ops.h"
#include "rng.h"
#include "test.h"
#include "util.h"

static Rng g_rng;

static GPTConfig tiny_config(GPTHead head) {
    return (GPTConfig){.vocab_size = 23, .max_seq_len = 8, .n_layer = 2, .n_head = 2,
                       .n_embd = 8, .head = head};
}

/* GPT-2 init plus noise, so every parameter matters at a visible scale */
static void init_noisy(GPT *m, uint64_t seed) {
    gpt_init_weights(m, seed);
    for (size_t i = 0; i < m->num_params; i++) m->params[i] += 0.1f * rng_normal(&g_rng);
}

// ----------------------------------------------------------------------------
// whole-model gradient check

typedef struct {
    GPT *m;
    int B, T;
    int *tokens, *targets, *lengths;
    float *r1, *r2; /* projections of the head outputs */
} ModelCase;

static double model_loss(ModelCase *mc) {
    GPT *m = mc->m;
    int B = mc->B, T = mc->T;
    gpt_forward(m, mc->tokens, B, T);
    double L = 0.0;
    if (m->config.head == GPT_HEAD_LM) {
        gpt_lm_forward(m, mc->targets, B, T);
        for (int i = 0; i < B * T; i++)
            L += (double)mc->r1[i] * m->logprobs[i] + (double)mc->r2[i] * m->entropy[i];
    } else if (m->config.head == GPT_HEAD_SCORE) {
        gpt_score_forward(m, mc->lengths, B, T);
        for (int b = 0; b < B; b++) L += (double)mc->r1[b] * m->scores[b];
    } else {
        gpt_value_forward(m, B, T);
        for (int i = 0; i < B * T; i++) L += (double)mc->r1[i] * m->values[i];
    }
    return L;
}

static void model_grad(ModelCase *mc) {
    GPT *m = mc->m;
    gpt_zero_grad(m);
    model_loss(mc);
    if (m->config.head == GPT_HEAD_LM) gpt_lm_backward(m, mc->r1, mc->r2, mc->B, mc->T);
    else if (m->config.head == GPT_HEAD_SCORE) gpt_score_backward(m, mc->r1, mc->B, mc->T);
    else gpt_value_backward(m, mc->r1, mc->B, mc->T);
}

/* Checks up to `per_tensor` entries of every tensor (the largest-gradient entry among
 * them, and random ones). Returns the worst error, normalised per tensor by the larger
 * of its max sampled |grad| and 1e-3 x the global max |grad|. The fp32 loss differs by
 * ~1e-6 between the two evaluations, i.e. ~1e-4 absolute in a difference quotient: for
 * tensors whose gradients are ~0.1 that is a normalised error ~1e-3, hence tol 3e-3 (a
 * 1% error in any gradient is still caught). */
static double model_grad_check(ModelCase *mc, int per_tensor, float eps, double tol) {
    GPT *m = mc->m;
    gpt_alloc_grads(m);
    model_grad(mc);
    double gmax = 0.0;
    for (size_t i = 0; i < m->num_params; i++) gmax = fmax(gmax, fabs(m->grads[i]));
    CHECK(gmax > 0.0);
    double worst = 0.0;
    for (int ti = 0; ti < m->num_tensors; ti++) {
        const GPTTensor *t = &m->tensors[ti];
        double err = 0.0, mx = 1e-3 * gmax;
        size_t argmax = 0;
        for (size_t j = 0; j < t->numel; j++)
            if (fabs(m->grads[t->offset + j]) > fabs(m->grads[t->offset + argmax])) argmax = j;
        for (int s = 0; s < per_tensor; s++) {
            size_t j = s == 0 ? argmax : (size_t)rng_below(&g_rng, t->numel);
            /* central differences at eps and eps/2, Richardson-extrapolated: the
             * truncation error drops from O(eps^2) to O(eps^4), which matters where the
             * random model is strongly curved */
            double d[2];
            for (int h = 0; h < 2; h++) {
                float e = h == 0 ? eps : 0.5f * eps;
                float *p = m->params + t->offset + j;
                float x0 = *p;
                *p = x0 + e;
                double lp = model_loss(mc);
                *p = x0 - e;
                double lm = model_loss(mc);
                *p = x0;
                d[h] = (lp - lm) / ((double)(x0 + e) - (double)(x0 - e));
            }
            double num = (4.0 * d[1] - d[0]) / 3.0;
            double ana = m->grads[t->offset + j];
            err = fmax(err, fabs(num - ana));
            mx = fmax(mx, fmax(fabs(num), fabs(ana)));
        }
        double e = err / mx;
        CHECK_MSG(e <= tol, "tensor %s: normalised gradient error %.3g > %.3g", t->name, e, tol);
        worst = fmax(worst, e);
    }
    return worst;
}

static void run_model_grad_mask(GPTHead head, int with_entropy, int long_gap, const char *label);
static void run_model_grad(GPTHead head, int with_entropy, const char *label) {
    run_model_grad_mask(head, with_entropy, 0, label);
}

/* long_gap: rows 4..13 of the 18 have no target, so the LM head runs on two separate
 * row ranges (gpt.c merges ranges closer than 8 rows) */
static void run_model_grad_mask(GPTHead head, int with_entropy, int long_gap, const char *label) {
    GPTConfig c = tiny_config(head);
    GPT m;
    gpt_init(&m, &c);
    init_noisy(&m, 11);
    int B = 3, T = 6;
    gpt_reserve(&m, B, T);
    if (head == GPT_HEAD_LM) m.temperature = 0.8f;
    ModelCase mc = {.m = &m, .B = B, .T = T};
    mc.tokens = xcalloc((size_t)B * T, sizeof(int));
    mc.targets = xcalloc((size_t)B * T, sizeof(int));
    mc.lengths = xcalloc((size_t)B, sizeof(int));
    mc.r1 = xalloc_floats((size_t)B * T);
    mc.r2 = xalloc_floats((size_t)B * T);
    for (int i = 0; i < B * T; i++) {
        mc.tokens[i] = (int)rng_below(&g_rng, (uint64_t)c.vocab_size);
        int masked = long_gap ? (i >= 4 && i < 14) : (i % 5 == 2);
        mc.targets[i] = masked ? -1 : (int)rng_below(&g_rng, (uint64_t)c.vocab_size);
        mc.r1[i] = rng_normal(&g_rng);
        mc.r2[i] = with_entropy ? rng_normal(&g_rng) : 0.0f;
    }
    int lens[3] = {6, 1, 4};
    memcpy(mc.lengths, lens, sizeof lens);
    double worst = model_grad_check(&mc, 6, 2e-2f, 3e-3);
    fprintf(stderr, "    %s: worst normalised gradient error over %d tensors: %.2e\n", label,
            m.num_tensors, worst);
    free(mc.tokens), free(mc.targets), free(mc.lengths), free(mc.r1), free(mc.r2);
    gpt_free(&m);
}

static void test_grad_lm(void) { run_model_grad(GPT_HEAD_LM, 0, "lm logprobs"); }
static void test_grad_lm_entropy(void) { run_model_grad(GPT_HEAD_LM, 1, "lm logprobs+entropy"); }
static void test_grad_lm_split_runs(void) {
    run_model_grad_mask(GPT_HEAD_LM, 1, 1, "lm, two target ranges");
}
static void test_grad_score(void) { run_model_grad(GPT_HEAD_SCORE, 0, "score"); }
static void test_grad_value(void) { run_model_grad(GPT_HEAD_VALUE, 0, "value"); }

// ----------------------------------------------------------------------------
// PyTorch reference

/* tests/ref/gpt_tiny.bin (little-endian), written by tests/ref/make_gpt_ref.py:
 *   int32 magic 0x47505431 ("GPT1"), V, maxT, L, NH, C, B, T; float32 temperature
 *   float32 params[num_params]  (our table order)
 *   int32 tokens[B*T], targets[B*T]
 *   float32 dlogprobs[B*T], dentropy[B*T]
 *   float32 logits[B*T*V], logprobs[B*T], entropy[B*T]
 *   float32 grads[num_params]   (of sum dlogprobs*logprobs + dentropy*entropy) */
static int read_exact(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

static void test_torch_reference(void) {
    const char *path = "tests/ref/gpt_tiny.bin";
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s (run from the repository root)", path);
    if (!f) return;
    int32_t hdr[8];
    float temp;
    CHECK(read_exact(f, hdr, sizeof hdr) && read_exact(f, &temp, sizeof temp));
    CHECK(hdr[0] == 0x47505431);
    GPTConfig c = {.vocab_size = hdr[1], .max_seq_len = hdr[2], .n_layer = hdr[3],
                   .n_head = hdr[4], .n_embd = hdr[5], .head = GPT_HEAD_LM};
    int B = hdr[6], T = hdr[7], V = c.vocab_size;
    GPT m;
    gpt_init(&m, &c);
    size_t BT = (size_t)B * T, P = m.num_params;
    int *tokens = xcalloc(BT, sizeof(int)), *targets = xcalloc(BT, sizeof(int));
    float *dlp = xalloc_floats(BT), *dent = xalloc_floats(BT), *logits = xalloc_floats(BT * V);
    float *lp = xalloc_floats(BT), *ent = xalloc_floats(BT), *grads = xalloc_floats(P);
    int ok = read_exact(f, m.params, P * 4) && read_exact(f, tokens, BT * 4) &&
             read_exact(f, targets, BT * 4) && read_exact(f, dlp, BT * 4) &&
             read_exact(f, dent, BT * 4) && read_exact(f, logits, BT * V * 4) &&
             read_exact(f, lp, BT * 4) && read_exact(f, ent, BT * 4) &&
             read_exact(f, grads, P * 4);
    CHECK_MSG(ok, "%s is truncated", path);
    fclose(f);
    if (ok) {
        m.temperature = temp;
        gpt_reserve(&m, B, T);
        gpt_forward(&m, tokens, B, T);
        gpt_lm_forward(&m, targets, B, T);
        double e_logits = 0, e_lp = 0, e_ent = 0, e_grad = 0, gmax = 0;
        /* rows without a target are not computed by the LM head */
        for (size_t i = 0; i < BT * V; i++)
            if (targets[i / V] >= 0) e_logits = fmax(e_logits, fabs(m.logits[i] - logits[i]));
        for (size_t i = 0; i < BT; i++) {
            e_lp = fmax(e_lp, fabs(m.logprobs[i] - lp[i]));
            e_ent = fmax(e_ent, fabs(m.entropy[i] - ent[i]));
        }
        gpt_alloc_grads(&m);
        gpt_zero_grad(&m);
        gpt_lm_backward(&m, dlp, dent, B, T);
        for (size_t i = 0; i < P; i++) {
            e_grad = fmax(e_grad, fabs(m.grads[i] - grads[i]));
            gmax = fmax(gmax, fabs(grads[i]));
        }
        fprintf(stderr, "    vs torch: max |dlogits| %.2e, |dlogprob| %.2e, |dentropy| %.2e, "
                "max |dgrad| %.2e (max |grad| %.2e)\n", e_logits, e_lp, e_ent, e_grad, gmax);
        CHECK(e_logits < 1e-5);
        CHECK(e_lp < 1e-5);
        CHECK(e_ent < 1e-5);
        CHECK(e_grad < 1e-5 * fmax(1.0, gmax));
        /* per tensor, relative to the tensor's largest gradient */
        for (int ti = 0; ti < m.num_tensors; ti++) {
            const GPTTensor *t = &m.tensors[ti];
            double e = 0, mx = 1e-8;
            for (size_t j = 0; j < t->numel; j++) {
                e = fmax(e, fabs(m.grads[t->offset + j] - grads[t->offset + j]));
                mx = fmax(mx, fabs(grads[t->offset + j]));
            }
            CHECK_MSG(e / mx < 1e-4, "tensor %s: gradient differs from torch by %.3g (rel %.3g)",
                      t->name, e, e / mx);
        }
    }
    free(tokens), free(targets), free(dlp), free(dent), free(logits), free(lp), free(ent), free(grads);
    gpt_free(&m);
}

// ----------------------------------------------------------------------------
// shapes

static void test_shapes(void) {
    GPTConfig c = tiny_config(GPT_HEAD_LM);
    GPT a, b;
    gpt_init(&a, &c);
    gpt_init(&b, &c);
    gpt_init_weights(&a, 5);
    gpt_init_weights(&b, 5);
    gpt_reserve(&a, 2, 5);
    gpt_reserve(&b, 1, 3);
    gpt_reserve(&b, 4, 2); /* grows to 4 x 3 */
    CHECK_EQ_INT(b.max_B, 4);
    CHECK_EQ_INT(b.max_T, 3);
    gpt_reserve(&b, 3, 8);
    CHECK_EQ_INT(b.max_B, 4);
    CHECK_EQ_INT(b.max_T, 8);
    int tokens[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, targets[10] = {2, 3, 4, 5, -1, 7, 8, 9, 10, 11};
    gpt_forward(&a, tokens, 2, 5);
    gpt_lm_forward(&a, targets, 2, 5);
    gpt_forward(&b, tokens, 2, 5);
    gpt_lm_forward(&b, targets, 2, 5);
    /* the same computation whatever was reserved */
    CHECK(memcmp(a.logits, b.logits, 10 * 23 * sizeof(float)) == 0);
    CHECK(memcmp(a.logprobs, b.logprobs, 10 * sizeof(float)) == 0);
    CHECK(a.logprobs[4] == 0.0f && a.entropy[4] == 0.0f);
    /* row 1 alone vs in the batch (sgemm rounding may differ) */
    gpt_forward(&b, tokens + 5, 1, 5);
    gpt_lm_forward(&b, targets + 5, 1, 5);
    for (int i = 0; i < 5; i++) CHECK_NEAR(b.logprobs[i], a.logprobs[5 + i], 1e-5, 1e-5);
    /* causal: changing a later token does not change earlier outputs */
    int tok2[5] = {1, 2, 3, 4, 22};
    gpt_forward(&b, tok2, 1, 5);
    gpt_lm_forward(&b, targets, 1, 5);
    for (int i = 0; i < 4; i++) CHECK_NEAR(b.logprobs[i], a.logprobs[i], 1e-5, 1e-5);
    gpt_free(&a);
    gpt_free(&b);
    gpt_free(&b); /* zeroed by the first free: a no-op */
    gpt_free(NULL);
}

// ----------------------------------------------------------------------------
// overfit one batch with inline Adam

static void test_overfit(void) {
    GPTConfig c = {.vocab_size = 64, .max_seq_len = 16, .n_layer = 2, .n_head = 2, .n_embd = 32,
                   .head = GPT_HEAD_LM};
    GPT m;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 3);
    gpt_alloc_grads(&m);
    int B = 4, T = 16;
    gpt_reserve(&m, B, T);
    int tokens[64], targets[64];
    for (int i = 0; i < B * T; i++) tokens[i] = (int)rng_below(&g_rng, 64);
    int count = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            /* the first 3 positions are the "prompt": masked */
            targets[i] = (t < 3 || t == T - 1) ? -1 : tokens[i + 1];
            count += targets[i] >= 0;
        }
    float dlp[64];
    for (int i = 0; i < B * T; i++) dlp[i] = targets[i] >= 0 ? -1.0f / count : 0.0f;
    float *mom = xalloc_floats(m.num_params), *vel = xalloc_floats(m.num_params);
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f;
    double loss = 0, first = 0;
    int step;
    for (step = 1; step <= 300; step++) {
        gpt_zero_grad(&m);
        gpt_forward(&m, tokens, B, T);
        gpt_lm_forward(&m, targets, B, T);
        loss = 0;
        for (int i = 0; i < B * T; i++) loss -= targets[i] >= 0 ? m.logprobs[i] : 0.0f;
        loss /= count;
        if (step == 1) first = loss;
        if (loss < 0.01) break;
        gpt_lm_backward(&m, dlp, NULL, B, T);
        float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
        for (size_t i = 0; i < m.num_params; i++) {
            float g = m.grads[i];
            mom[i] = b1 * mom[i] + (1 - b1) * g;
            vel[i] = b2 * vel[i] + (1 - b2) * g * g;
            m.params[i] -= lr * (mom[i] / c1) / (sqrtf(vel[i] / c2) + 1e-8f);
        }
    }
    fprintf(stderr, "    overfit: masked CE %.4f -> %.4f after %d steps\n", first, loss, step);
    CHECK_NEAR(first, log(64.0), 0.3, 0);
    CHECK(loss < 0.05);
    free(mom), free(vel);
    gpt_free(&m);
}

int main(void) {
    rng_init(&g_rng, 777);
    ops_blas_setup(0);
    TEST_RUN(test_grad_lm);
    TEST_RUN(test_grad_lm_entropy);
    TEST_RUN(test_grad_lm_split_runs);
    TEST_RUN(test_grad_score);
    TEST_RUN(test_grad_value);
    TEST_RUN(test_torch_reference);
    TEST_RUN(test_shapes);
    TEST_RUN(test_overfit);
    return TEST_EXIT();
}
