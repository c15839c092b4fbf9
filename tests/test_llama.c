/*
 * tests/test_llama.c — the Llama family of gpt.c against an independent reference:
 *   - parity: tests/ref/llama_tiny.bin (tests/ref/make_llama_ref.py, float64 PyTorch written
 *     from transformers' Llama/Qwen2/Qwen3 modeling code; its layout is documented there)
 *     holds weights, a batch, and the reference logits, log-probs, entropies and every
 *     parameter gradient for one tiny config per family switch (GQA; MQA with q/k/v biases;
 *     per-head q/k norms with an explicit head_dim; an untied head with llama3 rope
 *     scaling). Each is loaded by Hugging Face name and compared;
 *   - the parameter table: names, shapes and counts of the presets (smol = SmolLM2-135M's
 *     134,515,008 parameters), and config validation of bad Llama configs;
 *   - the score and value heads on a Llama trunk against finite differences;
 *   - KV-cache generation (prefill, then decode with rotary positions continuing): logits
 *     equal the full forward's at every position, and are bit-identical whatever slot,
 *     batch companions, row order or thread count (1 or 3) a sequence is decoded with.
 */
#include <stdint.h>

#include "gpt.h"
#include "ops.h"
#include "rng.h"
#include "test.h"
#include "util.h"

// ----------------------------------------------------------------------------
// fixture reading

typedef struct {
    const unsigned char *p, *end;
    int bad;
} Rd;

static void rd_bytes(Rd *r, void *out, size_t n) {
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
}
static int rd_i32(Rd *r) {
    int32_t v;
    rd_bytes(r, &v, 4);
    return v;
}
static float rd_f32(Rd *r) {
    float v;
    rd_bytes(r, &v, 4);
    return v;
}

static unsigned char *read_all(const char *file, size_t *len) {
    char path[1024];
    const char *dir = getenv("RLHF_REF_DIR");
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "tests/ref", file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fixture %s: cannot open (run from the repo root or set RLHF_REF_DIR)\n",
                path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = xcalloc((size_t)n + 1, 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

/* max |a-b| / max(max|b|, floor) */
static double norm_err(const float *a, const float *b, size_t n, double floor) {
    double mx = floor, err = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > err) err = d;
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
    }
    return err / mx;
}

/* One case of the fixture: config from the header, weights by name into m->params, then
 * forward, LM head and backward compared with the reference. */
static void parity_case(Rd *r) {
    int V = rd_i32(r), maxT = rd_i32(r), L = rd_i32(r), NH = rd_i32(r), NKV = rd_i32(r);
    int C = rd_i32(r), hd = rd_i32(r), F = rd_i32(r), qkv_bias = rd_i32(r), qk_norm = rd_i32(r);
    int tie = rd_i32(r), B = rd_i32(r), T = rd_i32(r), ntens = rd_i32(r), nlen = rd_i32(r);
    char name[64] = {0};
    if (nlen < 0 || nlen > 63) r->bad = 1;
    rd_bytes(r, name, (size_t)(nlen > 0 && nlen < 64 ? nlen : 0));
    float temp = rd_f32(r), theta = rd_f32(r), eps = rd_f32(r), factor = rd_f32(r);
    float lo = rd_f32(r), hi = rd_f32(r), orig = rd_f32(r);
    CHECK(!r->bad);
    if (r->bad) return;
    GPTConfig c = {.vocab_size = V, .max_seq_len = maxT, .n_layer = L, .n_head = NH, .n_embd = C,
                   .head = GPT_HEAD_LM, .family = GPT_FAMILY_LLAMA, .n_kv_head = NKV,
                   .head_dim = hd, .d_ff = F, .qkv_bias = qkv_bias, .qk_norm = qk_norm,
                   .tie_embeddings = tie, .rope_theta = theta, .norm_eps = eps,
                   .rope_factor = factor, .rope_low_freq_factor = lo,
                   .rope_high_freq_factor = hi, .rope_orig_max_pos = (int)orig};
    GPT m;
    gpt_init(&m, &c);
    m.temperature = temp;
    CHECK_MSG(m.num_tensors == ntens, "%s: %d tensors in the table, %d in the fixture", name,
              m.num_tensors, ntens);
    const GPTTensor **order = xcalloc((size_t)ntens, sizeof *order);
    for (int i = 0; i < ntens && !r->bad; i++) {
        char tn[GPT_NAME_LEN] = {0};
        int len = rd_i32(r);
        if (len < 1 || len >= GPT_NAME_LEN) { r->bad = 1; break; }
        rd_bytes(r, tn, (size_t)len);
        int numel = rd_i32(r);
        const GPTTensor *t = gpt_find_tensor(&m, tn);
        CHECK_MSG(t && (int)t->numel == numel, "%s: tensor %s missing or of another size", name, tn);
        if (!t || (int)t->numel != numel) { r->bad = 1; break; }
        order[i] = t;
        rd_bytes(r, m.params + t->offset, t->numel * sizeof(float));
    }
    int N = B * T;
    int *tokens = xcalloc((size_t)N, sizeof(int)), *targets = xcalloc((size_t)N, sizeof(int));
    float *dlp = xalloc_floats(N), *dent = xalloc_floats(N), *logits = xalloc_floats((size_t)N * V);
    float *lp = xalloc_floats(N), *ent = xalloc_floats(N);
    for (int i = 0; i < N; i++) tokens[i] = rd_i32(r);
    for (int i = 0; i < N; i++) targets[i] = rd_i32(r);
    rd_bytes(r, dlp, (size_t)N * 4), rd_bytes(r, dent, (size_t)N * 4);
    rd_bytes(r, logits, (size_t)N * V * 4), rd_bytes(r, lp, (size_t)N * 4), rd_bytes(r, ent, (size_t)N * 4);
    CHECK(!r->bad);
    if (!r->bad) {
        gpt_reserve(&m, B, T);
        gpt_zero_grad(&m);
        gpt_forward(&m, tokens, B, T);
        gpt_lm_forward(&m, targets, B, T);
        double el = 0.0;
        for (int i = 0; i < N; i++)
            if (targets[i] >= 0)
                el = fmax(el, norm_err(m.logits + (size_t)i * V, logits + (size_t)i * V, V, 1e-3));
        double elp = norm_err(m.logprobs, lp, N, 1e-3), een = norm_err(m.entropy, ent, N, 1e-3);
        gpt_lm_backward(&m, dlp, dent, B, T);
        double eg = 0.0;
        const char *worst = "";
        for (int i = 0; i < ntens; i++) {
            float *g = xalloc_floats(order[i]->numel);
            rd_bytes(r, g, order[i]->numel * 4);
            double e = norm_err(m.grads + order[i]->offset, g, order[i]->numel, 1e-3);
            if (e > eg) eg = e, worst = order[i]->name;
            free(g);
        }
        CHECK(!r->bad);
        fprintf(stderr, "    %-17s logits %.2e  logprobs %.2e  entropy %.2e  grads %.2e (%s)\n",
                name, el, elp, een, eg, worst);
        CHECK_MSG(el < 1e-5 && elp < 1e-5 && een < 1e-5, "%s: forward differs", name);
        CHECK_MSG(eg < 1e-4, "%s: gradient of %s differs by %.3g", name, worst, eg);
    }
    free(order), free(tokens), free(targets), free(dlp), free(dent), free(logits), free(lp), free(ent);
    gpt_free(&m);
}

static void test_parity(void) {
    size_t len = 0;
    unsigned char *buf = read_all("llama_tiny.bin", &len);
    CHECK(buf != NULL);
    if (!buf) return;
    Rd r = {buf, buf + len, 0};
    CHECK_EQ_INT(rd_i32(&r), 0x4C4C4D31);
    int cases = rd_i32(&r);
    CHECK(cases >= 4);
    for (int i = 0; i < cases && !r.bad; i++) parity_case(&r);
    CHECK(!r.bad && r.p == r.end);
    free(buf);
}

// ----------------------------------------------------------------------------
// parameter table and config

static void test_presets(void) {
    GPTConfig c;
    CHECK(gpt_config_preset("smol", &c) == 0);
    CHECK(c.family == GPT_FAMILY_LLAMA && c.n_kv_head == 3 && c.tie_embeddings == 1);
    /* SmolLM2-135M: 30 x (4 attention + 3 MLP projections + 2 norms) + embedding + norm */
    CHECK_EQ_INT(gpt_config_num_params(&c), 134515008);
    CHECK(gpt_config_preset("llama-tiny", &c) == 0);
    GPT m;
    gpt_init(&m, &c);
    CHECK_EQ_INT(m.num_tensors, 1 + 4 * 9 + 1);
    const GPTTensor *t = gpt_find_tensor(&m, "model.layers.3.self_attn.k_proj.weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == 64 && t->shape[1] == 128);
    t = gpt_find_tensor(&m, "model.layers.0.mlp.down_proj.weight");
    CHECK(t && t->shape[0] == 128 && t->shape[1] == 344);
    CHECK(gpt_find_tensor(&m, "lm_head.weight") == NULL); /* tied */
    CHECK(m.w.lm_head == m.w.wte && m.w.wpe == NULL);
    /* q, k, v consecutive: the fused projection is one (QW + 2KW, C) matrix */
    const GPTTensor *q = gpt_find_tensor(&m, "model.layers.1.self_attn.q_proj.weight");
    const GPTTensor *v = gpt_find_tensor(&m, "model.layers.1.self_attn.v_proj.weight");
    CHECK(q && v && v->offset == q->offset + q->numel + 64 * 128);
    CHECK(m.w.h[1].qkv_w == m.params + q->offset);
    gpt_init_weights(&m, 7);
    t = gpt_find_tensor(&m, "model.layers.2.post_attention_layernorm.weight");
    CHECK(t && m.params[t->offset] == 1.0f && m.params[t->offset + 127] == 1.0f);
    gpt_free(&m);
    /* untied Qwen3-like score model: no lm_head, a score row */
    c.qk_norm = 1, c.head_dim = 48, c.tie_embeddings = 0, c.head = GPT_HEAD_SCORE;
    gpt_init(&m, &c);
    CHECK(gpt_find_tensor(&m, "lm_head.weight") == NULL && gpt_find_tensor(&m, "score.weight"));
    t = gpt_find_tensor(&m, "model.layers.0.self_attn.o_proj.weight");
    CHECK(t && t->shape[0] == 128 && t->shape[1] == 4 * 48);
    CHECK(gpt_find_tensor(&m, "model.layers.0.self_attn.k_norm.weight")->numel == 48);
    gpt_free(&m);
}

static void test_validate(void) {
    GPTConfig ok, c;
    char err[ERRBUF_LEN];
    gpt_config_preset("llama-tiny", &ok);
    CHECK(gpt_config_validate(&ok, err) == 0);
    c = ok, c.n_kv_head = 3;
    CHECK(gpt_config_validate(&c, err) != 0 && strstr(err, "n_kv_head"));
    c = ok, c.head_dim = 7;
    CHECK(gpt_config_validate(&c, err) != 0 && strstr(err, "head_dim"));
    c = ok, c.d_ff = 0;
    CHECK(gpt_config_validate(&c, err) != 0 && strstr(err, "d_ff"));
    c = ok, c.rope_theta = 0.0f;
    CHECK(gpt_config_validate(&c, err) != 0 && strstr(err, "rope_theta"));
    c = ok, c.norm_eps = 0.0f;
    CHECK(gpt_config_validate(&c, err) != 0 && strstr(err, "norm_eps"));
    c = ok, c.rope_factor = 8.0f, c.rope_low_freq_factor = 4.0f, c.rope_high_freq_factor = 1.0f;
    c.rope_orig_max_pos = 8192;
    CHECK(gpt_config_validate(&c, err) != 0 && strstr(err, "llama3"));
    c.rope_low_freq_factor = 1.0f, c.rope_high_freq_factor = 4.0f;
    CHECK(gpt_config_validate(&c, err) == 0);
    c = ok, c.family = (GPTFamily)5;
    CHECK(gpt_config_validate(&c, err) != 0 && strstr(err, "family"));
}

// ----------------------------------------------------------------------------
// score and value heads on the Llama trunk: backward against central differences

static double head_loss(GPT *m, const int *tok, const int *len, const float *r, int B, int T) {
    gpt_forward(m, tok, B, T);
    double s = 0.0;
    if (m->config.head == GPT_HEAD_SCORE) {
        gpt_score_forward(m, len, B, T);
        for (int b = 0; b < B; b++) s += (double)r[b] * m->scores[b];
    } else {
        gpt_value_forward(m, B, T);
        for (int i = 0; i < B * T; i++) s += (double)r[i] * m->values[i];
    }
    return s;
}

static void test_heads_grad(void) {
    for (int head = GPT_HEAD_SCORE; head <= GPT_HEAD_VALUE; head++) {
        GPTConfig c = {.vocab_size = 20, .max_seq_len = 8, .n_layer = 2, .n_head = 4,
                       .n_embd = 16, .head = (GPTHead)head, .family = GPT_FAMILY_LLAMA,
                       .n_kv_head = 2, .d_ff = 24, .qkv_bias = 1, .qk_norm = 1,
                       .rope_theta = 10000.0f, .norm_eps = 1e-5f};
        GPT m;
        gpt_init(&m, &c);
        gpt_init_weights(&m, 11);
        Rng rng;
        rng_init(&rng, 5);
        for (size_t i = 0; i < m.num_params; i++) m.params[i] += 0.2f * rng_normal(&rng);
        int B = 2, T = 5, tok[10], len[2] = {5, 3};
        float r[10];
        for (int i = 0; i < 10; i++) tok[i] = (int)rng_below(&rng, 20), r[i] = rng_normal(&rng);
        gpt_reserve(&m, B, T);
        gpt_zero_grad(&m);
        head_loss(&m, tok, len, r, B, T);
        if (head == GPT_HEAD_SCORE) gpt_score_backward(&m, r, B, T);
        else gpt_value_backward(&m, r, B, T);
        /* every 7th parameter: every tensor kind is hit */
        double worst = 0.0, gmax = 1e-3;
        for (size_t i = 0; i < m.num_params; i += 7) {
            float x0 = m.params[i], eps = 1e-2f;
            m.params[i] = x0 + eps;
            double lp = head_loss(&m, tok, len, r, B, T);
            m.params[i] = x0 - eps;
            double lm = head_loss(&m, tok, len, r, B, T);
            m.params[i] = x0;
            double num = (lp - lm) / ((double)(x0 + eps) - (double)(x0 - eps));
            worst = fmax(worst, fabs(num - m.grads[i]));
            gmax = fmax(gmax, fabs(num));
        }
        fprintf(stderr, "    %s head: normalised gradient err %.2e\n",
                head == GPT_HEAD_SCORE ? "score" : "value", worst / gmax);
        CHECK(worst / gmax < 2e-3);
        gpt_free(&m);
    }
}

// ----------------------------------------------------------------------------
// KV-cache generation: prefill + decode against the full forward, batch and thread
// invariance

static GPTConfig gen_config(int variant) {
    GPTConfig c = {.vocab_size = 40, .max_seq_len = 24, .n_layer = 2, .n_head = 4, .n_embd = 32,
                   .head = GPT_HEAD_LM, .family = GPT_FAMILY_LLAMA, .n_kv_head = 2, .d_ff = 48,
                   .tie_embeddings = 1, .rope_theta = 10000.0f, .norm_eps = 1e-5f};
    if (variant == 1) { /* MQA, Qwen3-like: biases, q/k norms, own head_dim, untied, llama3 */
        c.n_kv_head = 1, c.qkv_bias = 1, c.qk_norm = 1, c.head_dim = 12, c.tie_embeddings = 0;
        c.rope_factor = 8.0f, c.rope_low_freq_factor = 1.0f, c.rope_high_freq_factor = 4.0f;
        c.rope_orig_max_pos = 16;
    }
    return c;
}

#define GEN_B 3
#define GEN_NEW 6
static const int gen_lens[GEN_B] = {5, 9, 1};

static int gen_token(int b, int t) { return (7 * b + 3 * t * t + 1) % 40; }

/* Logits of every prefill and decode step of the GEN_B sequences, (GEN_B, 1 + GEN_NEW, V),
 * with the sequences in slots `slot_of` and decoded in the order given (each step decodes
 * all sequences in one call). */
static void gen_run(GPT *m, const int *slot_of, float *out) {
    int V = m->config.vocab_size;
    int seq[GEN_B][32];
    for (int b = 0; b < GEN_B; b++)
        for (int t = 0; t < gen_lens[b] + GEN_NEW; t++) seq[b][t] = gen_token(b, t);
    /* prefill: slot s holds the sequence b with slot_of[b] = s */
    const int *prompts[GEN_B];
    int lens[GEN_B], who[GEN_B];
    for (int b = 0; b < GEN_B; b++) who[slot_of[b]] = b;
    for (int s = 0; s < GEN_B; s++) prompts[s] = seq[who[s]], lens[s] = gen_lens[who[s]];
    gpt_cache_reserve(m, GEN_B, 24);
    const float *lg = gpt_cache_prefill(m, GEN_B, prompts, lens);
    for (int s = 0; s < GEN_B; s++)
        memcpy(out + ((size_t)who[s] * (1 + GEN_NEW)) * V, lg + (size_t)s * V, V * sizeof(float));
    for (int k = 0; k < GEN_NEW; k++) {
        int slots[GEN_B], toks[GEN_B];
        for (int i = 0; i < GEN_B; i++) {
            int b = (i + k) % GEN_B; /* a different row order every step */
            slots[i] = slot_of[b], toks[i] = seq[b][gen_lens[b] + k];
        }
        lg = gpt_cache_decode(m, GEN_B, slots, toks);
        for (int i = 0; i < GEN_B; i++) {
            int b = who[slots[i]];
            memcpy(out + ((size_t)b * (1 + GEN_NEW) + 1 + k) * V, lg + (size_t)i * V,
                   V * sizeof(float));
        }
    }
}

static void test_generate_cache(void) {
    int before = ops_blas_threads();
    for (int variant = 0; variant <= 1; variant++) {
        GPTConfig c = gen_config(variant);
        GPT m;
        gpt_init(&m, &c);
        gpt_init_weights(&m, 3 + variant);
        Rng rng;
        rng_init(&rng, 17);
        for (size_t i = 0; i < m.num_params; i++) m.params[i] += 0.1f * rng_normal(&rng);
        int V = c.vocab_size;
        size_t n = (size_t)GEN_B * (1 + GEN_NEW) * V;
        float *a = xalloc_floats(n), *b2 = xalloc_floats(n), *th = xalloc_floats(n);
        int order_a[GEN_B] = {0, 1, 2}, order_b[GEN_B] = {2, 0, 1};
        ops_blas_setup(1);
        gen_run(&m, order_a, a);
        gen_run(&m, order_b, b2); /* other slots, other companions in each call */
        ops_blas_setup(3);
        gen_run(&m, order_a, th);
        CHECK_MSG(memcmp(a, b2, n * sizeof(float)) == 0, "variant %d: logits depend on the slot "
                  "and the batch", variant);
        CHECK_MSG(memcmp(a, th, n * sizeof(float)) == 0, "variant %d: logits depend on the thread "
                  "count", variant);
        /* one sequence alone in the cache: the same bits as in the batch */
        {
            int seq[32];
            for (int t = 0; t < gen_lens[1] + GEN_NEW; t++) seq[t] = gen_token(1, t);
            const int *pr[1] = {seq};
            int len = gen_lens[1], slot = 0;
            const float *lg = gpt_cache_prefill(&m, 1, pr, &len);
            CHECK(memcmp(lg, a + (size_t)1 * (1 + GEN_NEW) * V, V * sizeof(float)) == 0);
            lg = gpt_cache_decode(&m, 1, &slot, &seq[len]);
            CHECK(memcmp(lg, a + ((size_t)1 * (1 + GEN_NEW) + 1) * V, V * sizeof(float)) == 0);
        }
        /* against the training path's logits of each whole sequence */
        double worst = 0.0;
        for (int b = 0; b < GEN_B; b++) {
            int T = gen_lens[b] + GEN_NEW, tok[32], tg[32];
            for (int t = 0; t < T; t++) tok[t] = gen_token(b, t), tg[t] = 0;
            gpt_reserve(&m, 1, 24);
            gpt_forward(&m, tok, 1, T);
            gpt_lm_forward(&m, tg, 1, T);
            for (int k = 0; k <= GEN_NEW; k++) {
                int t = gen_lens[b] - 1 + k;
                if (t >= T) break;
                worst = fmax(worst, norm_err(a + ((size_t)b * (1 + GEN_NEW) + k) * V,
                                             m.logits + (size_t)t * V, V, 1e-3));
            }
        }
        fprintf(stderr, "    variant %d: cache logits vs full forward: normalised err %.2e\n",
                variant, worst);
        CHECK(worst < 1e-5);
        free(a), free(b2), free(th);
        gpt_free(&m);
    }
    ops_blas_setup(before);
}

int main(void) {
    ops_blas_setup(0);
    TEST_RUN(test_parity);
    TEST_RUN(test_presets);
    TEST_RUN(test_validate);
    TEST_RUN(test_heads_grad);
    TEST_RUN(test_generate_cache);
    return TEST_EXIT();
}
