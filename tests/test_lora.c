/*
 * tests/test_lora.c — LoRA adapters (common/lora.h) on both families of gpt.c:
 *   - adapters off (lora.enabled = 0, any A and B) and fresh adapters (B = 0) give the
 *     base model's log-probs bit for bit;
 *   - the adapters' gradients (A and B, with and without dropout) against central
 *     differences of the whole model's log-prob loss, through every targeted projection
 *     (GPT-2's fused c_attn and GELU MLP; Llama's q|k|v and gate|up column blocks);
 *   - merging the adapters into the base weights gives the adapted model's log-probs (to
 *     fp32 rounding), and so does KV-cache generation with adapters applied on the fly;
 *   - the memory claim: with LoRA attached a backward allocates no base-size gradient
 *     (m->grads stays NULL and the heap grows by far less than the parameter count);
 *   - a LoRA critic (value head, frozen trunk): the gradients of its adapters and of its
 *     trainable value head (one buffer) against central differences through
 *     gpt_value_forward / gpt_value_backward, for a trunk borrowed from a policy (PPO's
 *     value_init = sft) and for a trunk of its own (reward), both families; the borrowed
 *     trunk is the policy's buffer, unchanged, and survives the critic's gpt_free;
 *   - the critic's memory: building a LoRA critic on the policy's trunk and running a
 *     value backward allocates no base-size buffer (no trunk copy, gradient or moments);
 *   - target lists: names, all-linear, and a clear error for a wrong name.
 */
#include <math.h>
#include <stdint.h>

#include "gpt.h"
#include "lora.h"
#include "ops.h"
#include "rng.h"
#include "test.h"
#include "util.h"
#include "gradcheck.h"
#include "heapcount.h"

#define B_ 2
#define T_ 6

static GPTConfig small_config(GPTFamily f) {
    GPTConfig c = {.vocab_size = 40, .max_seq_len = 16, .n_layer = 2, .n_head = 4, .n_embd = 16,
                   .head = GPT_HEAD_LM, .family = f};
    if (f == GPT_FAMILY_LLAMA) {
        c.n_kv_head = 2, c.d_ff = 24, c.qkv_bias = 1, c.qk_norm = 1, c.tie_embeddings = 1;
        c.rope_theta = 10000.0f, c.norm_eps = 1e-5f;
    }
    return c;
}

static void batch(int *tok, int *tgt) {
    for (int b = 0; b < B_; b++)
        for (int t = 0; t < T_; t++) tok[b * T_ + t] = (5 * b + 3 * t * t + 1) % 40;
    for (int i = 0; i < B_ * T_; i++) tgt[i] = (i + 1) % T_ ? tok[i + 1] : -1;
}

static void logprobs(GPT *m, const int *tok, const int *tgt, float *out) {
    gpt_forward(m, tok, B_, T_);
    gpt_lm_forward(m, tgt, B_, T_);
    memcpy(out, m->logprobs, sizeof(float) * B_ * T_);
}

static void model(GPT *m, GPTFamily f, int lora_rank) {
    GPTConfig c = small_config(f);
    gpt_init(m, &c);
    gpt_init_weights(m, 3);
    if (lora_rank) {
        unsigned all;
        char err[ERRBUF_LEN];
        CHECK(lora_targets_parse("all-linear", f, &all, err) == 0);
        lora_attach(m, lora_rank, 8.0f, all, 0.0f);
        lora_init_weights(m->lora, 9);
    }
    gpt_reserve(m, B_, T_);
}

static void test_off_is_base(void) {
    for (int f = 0; f < 2; f++) {
        GPT base, lo;
        model(&base, (GPTFamily)f, 0);
        model(&lo, (GPTFamily)f, 4);
        int tok[B_ * T_], tgt[B_ * T_];
        float a[B_ * T_], b[B_ * T_];
        batch(tok, tgt);
        logprobs(&base, tok, tgt, a);
        logprobs(&lo, tok, tgt, b); /* fresh: B = 0 */
        CHECK_MSG(memcmp(a, b, sizeof a) == 0, "%s: fresh adapters change the model",
                  gpt_family_name((GPTFamily)f));
        Rng rng;
        rng_init(&rng, 1);
        for (size_t i = 0; i < lo.lora->n; i++) lo.lora->params[i] = rng_normal(&rng);
        lo.lora->enabled = 0;
        logprobs(&lo, tok, tgt, b);
        CHECK_MSG(memcmp(a, b, sizeof a) == 0, "%s: adapters off differ from the base",
                  gpt_family_name((GPTFamily)f));
        lo.lora->enabled = 1;
        logprobs(&lo, tok, tgt, b);
        CHECK_MSG(memcmp(a, b, sizeof a) != 0, "%s: adapters on change nothing",
                  gpt_family_name((GPTFamily)f));
        gpt_free(&base);
        gpt_free(&lo);
    }
}

typedef struct {
    GPT *m;
    int tok[B_ * T_], tgt[B_ * T_];
    float r[B_ * T_];
} GradCtx;

static double gc_loss(void *p) {
    GradCtx *g = p;
    gpt_forward(g->m, g->tok, B_, T_);
    gpt_lm_forward(g->m, g->tgt, B_, T_);
    return dot_d(g->r, g->m->logprobs, B_ * T_);
}

static void gc_grad(void *p) {
    GradCtx *g = p;
    gc_loss(p);
    gpt_lm_backward(g->m, g->r, NULL, B_, T_);
}

static void test_gradcheck(void) {
    for (int f = 0; f < 2; f++)
        for (int drop = 0; drop < 2; drop++) {
            GPT m;
            model(&m, (GPTFamily)f, 2);
            Lora *l = m.lora;
            l->dropout = drop ? 0.3f : 0.0f;
            l->train = 1, l->drop_key = 77;
            l->cap_rows = 0; /* the dropout scratch is sized on the next call */
            Rng rng;
            rng_init(&rng, 2);
            for (size_t i = 0; i < l->n; i++) l->params[i] = 0.1f * rng_normal(&rng);
            GradCtx g = {.m = &m};
            batch(g.tok, g.tgt);
            for (int i = 0; i < B_ * T_; i++) g.r[i] = rng_normal(&rng);
            char name[32];
            snprintf(name, sizeof name, "%s%s", gpt_family_name((GPTFamily)f), drop ? "+drop" : "");
            GradCase gc = {.name = name, .nin = 1, .in = {l->params}, .din = {l->grads},
                           .n = {l->n}, .loss = gc_loss, .grad = gc_grad, .ctx = &g,
                           .eps = 1e-3f, .tol = 5e-3};
            grad_check(&gc);
            CHECK(m.grads == NULL);
            gpt_free(&m);
        }
}

static void test_merge_and_generate(void) {
    for (int f = 0; f < 2; f++) {
        GPT lo, merged;
        model(&lo, (GPTFamily)f, 4);
        model(&merged, (GPTFamily)f, 0);
        Rng rng;
        rng_init(&rng, 4);
        for (size_t i = 0; i < lo.lora->n; i++) lo.lora->params[i] = 0.3f * rng_normal(&rng);
        int tok[B_ * T_], tgt[B_ * T_];
        float a[B_ * T_], b[B_ * T_], c0[B_ * T_];
        batch(tok, tgt);
        logprobs(&merged, tok, tgt, c0);
        lora_merge(lo.lora, &lo, merged.params, 1.0f);
        logprobs(&lo, tok, tgt, a);
        logprobs(&merged, tok, tgt, b);
        double e = norm_err(b, a, B_ * T_, 1e-3);
        fprintf(stderr, "    %s merged vs adapters: normalised err %.2e\n",
                gpt_family_name((GPTFamily)f), e);
        CHECK(e < 1e-4);
        CHECK_MSG(norm_err(c0, a, B_ * T_, 1e-3) > 1e-3, "the adapters barely change the model");
        /* generation: the last position's logits of row 0 from a prefill */
        gpt_cache_reserve(&lo, 1, T_);
        const int *prompts[1] = {tok};
        int lens[1] = {T_};
        const float *gl = gpt_cache_prefill(&lo, 1, prompts, lens);
        float full[40];
        gpt_forward(&lo, tok, B_, T_);
        gpt_lm_forward(&lo, tgt, B_, T_);
        gpt_lm_logits(&lo, T_ - 1, 1, full);
        e = norm_err(gl, full, 40, 1e-3);
        fprintf(stderr, "    %s generation with adapters vs training forward: %.2e\n",
                gpt_family_name((GPTFamily)f), e);
        CHECK(e < 1e-4);
        gpt_free(&lo);
        gpt_free(&merged);
    }
}

static void test_no_base_grads(void) {
    if (!heap_counts()) {
        TEST_SKIP("the heap is not glibc's (sanitizer): allocations cannot be counted");
        return;
    }
    GPTConfig c = small_config(GPT_FAMILY_LLAMA);
    c.n_embd = 128, c.d_ff = 512, c.vocab_size = 2000, c.n_layer = 4;
    GPT m;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 3);
    unsigned all;
    char err[ERRBUF_LEN];
    lora_targets_parse("all-linear", c.family, &all, err);
    lora_attach(&m, 2, 4.0f, all, 0.0f);
    gpt_reserve(&m, B_, T_);
    int tok[B_ * T_], tgt[B_ * T_];
    float r[B_ * T_];
    batch(tok, tgt);
    for (int i = 0; i < B_ * T_; i++) r[i] = 1.0f;
    size_t before = heap_bytes();
    gpt_forward(&m, tok, B_, T_);
    gpt_lm_forward(&m, tgt, B_, T_);
    gpt_lm_backward(&m, r, NULL, B_, T_);
    size_t grown = heap_bytes() - before;
    fprintf(stderr, "    backward grew the heap by %zu bytes; base params %zu bytes, adapters %zu\n",
            grown, m.num_params * sizeof(float), m.lora->n * sizeof(float));
    CHECK(m.grads == NULL);
    CHECK(grown < m.num_params * sizeof(float) / 4);
    gpt_free(&m);
}

/* A LoRA critic of family f: a trunk borrowed from *policy (own = 0) or its own copy,
 * rank-2 all-linear adapters (dropout p) and a value head, every trainable value random. */
static void critic(GPT *v, GPT *policy, GPTFamily f, int own, float p) {
    GPTConfig c = small_config(f);
    c.head = GPT_HEAD_VALUE;
    if (own) {
        gpt_init(v, &c);
        gpt_init_weights(v, 5);
    } else {
        gpt_init_borrowed(v, &c, policy);
    }
    unsigned all;
    char err[ERRBUF_LEN];
    CHECK(lora_targets_parse("all-linear", f, &all, err) == 0);
    lora_attach(v, 2, 4.0f, all, p);
    float head[17];
    Rng rng;
    rng_init(&rng, 6);
    for (int i = 0; i < 17; i++) head[i] = 0.3f * rng_normal(&rng);
    lora_attach_value_head(v, head);
    Lora *l = v->lora;
    for (size_t i = 0; i < l->head_off; i++) l->params[i] = 0.1f * rng_normal(&rng);
    l->train = 1, l->drop_key = 91;
    gpt_reserve(v, B_, T_);
}

static double vc_loss(void *p) {
    GradCtx *g = p;
    gpt_forward(g->m, g->tok, B_, T_);
    gpt_value_forward(g->m, B_, T_);
    return dot_d(g->r, g->m->values, B_ * T_);
}

static void vc_grad(void *p) {
    GradCtx *g = p;
    vc_loss(p);
    gpt_value_backward(g->m, g->r, B_, T_);
}

static void test_critic_gradcheck(void) {
    for (int f = 0; f < 2; f++)
        for (int own = 0; own < 2; own++) {
            GPT pol, v;
            model(&pol, (GPTFamily)f, 2); /* a LoRA policy, as in PPO */
            float *keep = xalloc_floats(pol.num_params);
            memcpy(keep, pol.params, pol.num_params * sizeof(float));
            critic(&v, &pol, (GPTFamily)f, own, own ? 0.0f : 0.25f);
            CHECK(own || v.params == pol.params); /* the policy's buffer, no copy */
            GradCtx g = {.m = &v};
            batch(g.tok, g.tgt);
            Rng rng;
            rng_init(&rng, 8);
            for (int i = 0; i < B_ * T_; i++) g.r[i] = rng_normal(&rng);
            char name[48];
            snprintf(name, sizeof name, "critic %s %s", gpt_family_name((GPTFamily)f),
                     own ? "own trunk" : "borrowed trunk+drop");
            Lora *l = v.lora;
            GradCase gc = {.name = name, .nin = 1, .in = {l->params}, .din = {l->grads},
                           .n = {l->n}, .loss = vc_loss, .grad = vc_grad, .ctx = &g,
                           .eps = 1e-3f, .tol = 5e-3};
            grad_check(&gc);
            /* the head's gradient is real (not a sink): a nonzero weight and bias gradient */
            double hg = 0;
            for (size_t i = l->head_off; i < l->n; i++) hg += fabs(l->grads[i]);
            CHECK_MSG(hg > 1e-3 && l->grads[l->n - 1] != 0.0f, "the value head got no gradient");
            CHECK(v.grads == NULL);
            CHECK_MSG(memcmp(keep, pol.params, pol.num_params * sizeof(float)) == 0,
                      "the critic changed the policy's frozen base");
            gpt_free(&v);
            /* the policy still owns and reads its buffer after the critic is gone */
            int tok[B_ * T_], tgt[B_ * T_];
            float lp[B_ * T_];
            batch(tok, tgt);
            logprobs(&pol, tok, tgt, lp);
            CHECK(isfinite(lp[1]));
            free(keep);
            gpt_free(&pol);
        }
}

static void test_critic_no_base_alloc(void) {
    if (!heap_counts()) {
        TEST_SKIP("the heap is not glibc's (sanitizer): allocations cannot be counted");
        return;
    }
    GPTConfig c = small_config(GPT_FAMILY_LLAMA);
    c.n_embd = 128, c.d_ff = 512, c.vocab_size = 2000, c.n_layer = 4;
    GPT pol, v;
    gpt_init(&pol, &c);
    gpt_init_weights(&pol, 3);
    unsigned all;
    char err[ERRBUF_LEN];
    lora_targets_parse("all-linear", c.family, &all, err);
    lora_attach(&pol, 2, 4.0f, all, 0.0f);
    int tok[B_ * T_], tgt[B_ * T_];
    float r[B_ * T_];
    batch(tok, tgt);
    for (int i = 0; i < B_ * T_; i++) r[i] = 1.0f;
    size_t before = heap_bytes();
    GPTConfig vc = c;
    vc.head = GPT_HEAD_VALUE;
    gpt_init_borrowed(&v, &vc, &pol);
    lora_attach(&v, 2, 4.0f, all, 0.0f);
    float *head = xcalloc((size_t)c.n_embd + 1, sizeof *head);
    lora_attach_value_head(&v, head);
    free(head);
    gpt_reserve(&v, B_, T_);
    gpt_forward(&v, tok, B_, T_);
    gpt_value_forward(&v, B_, T_);
    gpt_value_backward(&v, r, B_, T_);
    size_t grown = heap_bytes() - before;
    fprintf(stderr, "    LoRA critic build + value backward grew the heap by %zu bytes; trunk %zu "
            "bytes, critic trainable %zu floats\n", grown, pol.num_params * sizeof(float), v.lora->n);
    CHECK(v.grads == NULL);
    CHECK(v.params == pol.params);
    CHECK(grown < pol.num_params * sizeof(float) / 4);
    gpt_free(&v);
    gpt_free(&pol);
}

static void test_targets(void) {
    unsigned mask;
    char err[ERRBUF_LEN], out[256];
    CHECK(lora_targets_parse("q_proj,v_proj", GPT_FAMILY_LLAMA, &mask, err) == 0);
    CHECK_EQ_INT(mask, 5);
    lora_targets_format(mask, GPT_FAMILY_LLAMA, out, sizeof out);
    CHECK(strcmp(out, "q_proj,v_proj") == 0);
    CHECK(lora_targets_parse("all-linear", GPT_FAMILY_GPT2, &mask, err) == 0);
    CHECK_EQ_INT(mask, 15);
    CHECK(lora_targets_parse("default", GPT_FAMILY_LLAMA, &mask, err) == 0);
    CHECK_EQ_INT(mask, 5); /* PEFT's Llama default: q_proj, v_proj */
    CHECK(lora_targets_parse("default", GPT_FAMILY_GPT2, &mask, err) == 0);
    CHECK_EQ_INT(mask, 1); /* PEFT's GPT-2 default: c_attn */
    CHECK(lora_targets_parse("c_attn,q_proj", GPT_FAMILY_GPT2, &mask, err) == -1);
    CHECK(strstr(err, "'q_proj'") != NULL);
    /* adapter names: PEFT's module paths */
    GPT m;
    model(&m, GPT_FAMILY_GPT2, 2);
    CHECK(lora_find(m.lora, "h.1.mlp.c_fc") != NULL);
    CHECK_EQ_INT(lora_find(m.lora, "h.0.attn.c_attn")->out, 48);
    gpt_free(&m);
}

int main(void) {
    ops_blas_setup(1);
    TEST_RUN(test_targets);
    TEST_RUN(test_off_is_base);
    TEST_RUN(test_gradcheck);
    TEST_RUN(test_merge_and_generate);
    TEST_RUN(test_no_base_grads);
    TEST_RUN(test_critic_gradcheck);
    TEST_RUN(test_critic_no_base_alloc);
    return TEST_EXIT();
}
