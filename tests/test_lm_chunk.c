/*
 * tests/test_lm_chunk.c — the LM head run chunk by chunk (gpt.h, GPT.lm_chunk_bytes):
 *   - against the unchunked head on the same weights and batch (GPT-2 tied head, Llama
 *     untied lm_head and tied, temperature 1 and not, with and without an entropy term,
 *     runs of targets shorter and longer than a chunk): log-probs, entropies and every
 *     gradient except the head weight's are the same bits; the head weight's gradient
 *     equals to fp32 rounding; gpt_lm_logits gives the resident logits' bits; a budget
 *     changed between a forward and its backward does not change the backward;
 *   - a finite-difference check of the chunked head's gradients (tests/gradcheck.h):
 *     the head weight and the final norm's weight;
 *   - memory: a Qwen-sized vocabulary (151,936) at width 64, 2 layers, 4 x 512 tokens,
 *     one training step with AdamW: the bytes allocated (glibc mallinfo2) chunked are at
 *     most 25 % of those unchunked.
 */
#include <malloc.h>
#include <stdint.h>

#include "adamw.h"
#include "gpt.h"
#include "ops.h"
#include "rng.h"
#include "heapcount.h"
#include "test.h"
#include "util.h"

#include "gradcheck.h"

static Rng g_rng;

static GPTConfig gpt2_config(int V, int T) {
    return (GPTConfig){.vocab_size = V, .max_seq_len = T, .n_layer = 1, .n_head = 2,
                       .n_embd = 16, .head = GPT_HEAD_LM};
}

static GPTConfig llama_config(int V, int T, int tied) {
    return (GPTConfig){.vocab_size = V, .max_seq_len = T, .n_layer = 1, .n_head = 2,
                       .n_embd = 16, .head = GPT_HEAD_LM, .family = GPT_FAMILY_LLAMA,
                       .n_kv_head = 1, .d_ff = 24, .tie_embeddings = tied,
                       .rope_theta = 10000.0f, .norm_eps = 1e-5f};
}

/* A batch like a learner's: per row a prompt (-1 targets), a response, padding (-1);
 * row 2 has a short hole inside its response. Runs end up shorter and longer than 48. */
static void make_batch(int *tokens, int *targets, int B, int T, int V) {
    for (int i = 0; i < B * T; i++) tokens[i] = (int)(rng_below(&g_rng, (uint64_t)V));
    for (int b = 0; b < B; b++) {
        int p0 = (int)(0.1 * T) + 7 * b, e = b == 1 ? T : T - T / 5;
        for (int t = 0; t < T; t++) {
            int in = t >= p0 && t < e && !(b == 2 && t >= p0 + 20 && t < p0 + 23);
            targets[b * T + t] = in && t + 1 < T ? tokens[b * T + t + 1] : -1;
        }
    }
}

static void init_noisy(GPT *m, uint64_t seed) {
    gpt_init_weights(m, seed);
    Rng r;
    rng_init(&r, seed);
    for (size_t i = 0; i < m->num_params; i++) m->params[i] += 0.1f * rng_normal(&r);
}

static void step(GPT *m, const int *tokens, const int *targets, const float *dlp,
                 const float *dent, int B, int T) {
    gpt_zero_grad(m);
    gpt_forward(m, tokens, B, T);
    gpt_lm_forward(m, targets, B, T);
    gpt_lm_backward(m, dlp, dent, B, T);
}

/* One model unchunked, one in chunks of `rows`: compare everything the head produces. */
static void compare_chunked(const char *what, GPTConfig c, int B, int T, int rows, float temp,
                            int with_entropy) {
    int N = B * T, V = c.vocab_size;
    int *tokens = xcalloc((size_t)N, sizeof(int)), *targets = xcalloc((size_t)N, sizeof(int));
    make_batch(tokens, targets, B, T, V);
    float *dlp = xalloc_floats((size_t)N), *dent = xalloc_floats((size_t)N);
    for (int i = 0; i < N; i++) dlp[i] = rng_normal(&g_rng), dent[i] = rng_normal(&g_rng);
    GPT full, ch;
    gpt_init(&full, &c);
    gpt_init(&ch, &c);
    init_noisy(&full, 7);
    memcpy(ch.params, full.params, full.num_params * sizeof(float));
    full.lm_chunk_bytes = 0;
    ch.lm_chunk_bytes = (size_t)rows * (size_t)V * sizeof(float);
    full.temperature = ch.temperature = temp;
    gpt_reserve(&full, B, T);
    gpt_reserve(&ch, B, T);
    CHECK_EQ_INT(gpt_lm_chunk_rows(&ch), rows);
    CHECK(gpt_lm_logits_resident(&full));
    CHECK(!gpt_lm_logits_resident(&ch));
    step(&full, tokens, targets, dlp, with_entropy ? dent : NULL, B, T);
    step(&ch, tokens, targets, dlp, with_entropy ? dent : NULL, B, T);
    CHECK_MSG(memcmp(full.logprobs, ch.logprobs, (size_t)N * sizeof(float)) == 0,
              "%s: chunked log-probs differ", what);
    CHECK_MSG(memcmp(full.entropy, ch.entropy, (size_t)N * sizeof(float)) == 0,
              "%s: chunked entropies differ", what);
    size_t head_off = (size_t)(full.w.lm_head - full.params);
    double head_err = 0.0;
    int head_same = 1;
    for (int k = 0; k < full.num_tensors; k++) {
        const GPTTensor *t = &full.tensors[k];
        const float *a = full.grads + t->offset, *b = ch.grads + t->offset;
        if (t->offset == head_off) {
            head_err = norm_err(b, a, t->numel, 1e-6);
            head_same = memcmp(a, b, t->numel * sizeof(float)) == 0;
            CHECK_MSG(head_err <= 1e-5, "%s: %s gradient error %.2e", what, t->name, head_err);
        } else {
            CHECK_MSG(memcmp(a, b, t->numel * sizeof(float)) == 0,
                      "%s: gradient of %s differs chunked", what, t->name);
        }
    }
    /* the logits of the first run, computed alone, against the resident ones */
    int s0 = 0, n = 0;
    while (targets[s0] < 0) s0++;
    while (s0 + n < N && targets[s0 + n] >= 0) n++;
    float *lg = xalloc_floats((size_t)n * V);
    gpt_forward(&full, tokens, B, T);
    gpt_lm_forward(&full, targets, B, T);
    gpt_forward(&ch, tokens, B, T);
    gpt_lm_logits(&ch, s0, n, lg);
    CHECK_MSG(memcmp(lg, full.logits + (size_t)s0 * V, (size_t)n * V * sizeof(float)) == 0,
              "%s: gpt_lm_logits differs from the resident logits", what);
    fprintf(stderr, "    %-28s chunks of %3d rows: log-probs, entropy, trunk grads identical; "
            "head grad %s (normalised err %.1e)\n", what, rows,
            head_same ? "identical" : "differs", head_err);
    gpt_free(&full), gpt_free(&ch);
    free(tokens), free(targets), free(dlp), free(dent), free(lg);
}

static void test_chunked_equals_unchunked(void) {
    compare_chunked("gpt2 tied, t=1, entropy", gpt2_config(1000, 100), 3, 100, 48, 1.0f, 1);
    compare_chunked("gpt2 tied, t=0.7, no entropy", gpt2_config(1000, 300), 2, 300, 96, 0.7f, 0);
    compare_chunked("llama untied, t=1, entropy", llama_config(1000, 100, 0), 3, 100, 48, 1.0f, 1);
    compare_chunked("llama tied, t=1.3, entropy", llama_config(777, 400, 1), 3, 400, 144, 1.3f, 1);
}

/* A budget changed between a forward and its backward: the backward keeps the forward's
 * chunking (m->logits is sized for it), and the next forward takes the new budget. */
static void test_budget_change_midstep(void) {
    GPTConfig c = llama_config(1000, 100, 0);
    int B = 3, T = 100, N = B * T;
    int *tokens = xcalloc((size_t)N, sizeof(int)), *targets = xcalloc((size_t)N, sizeof(int));
    make_batch(tokens, targets, B, T, c.vocab_size);
    float *dlp = xalloc_floats((size_t)N);
    for (int i = 0; i < N; i++) dlp[i] = rng_normal(&g_rng);
    GPT a, b;
    gpt_init(&a, &c);
    gpt_init(&b, &c);
    init_noisy(&a, 5);
    memcpy(b.params, a.params, a.num_params * sizeof(float));
    a.lm_chunk_bytes = b.lm_chunk_bytes = (size_t)48 * c.vocab_size * sizeof(float);
    gpt_reserve(&a, B, T);
    gpt_reserve(&b, B, T);
    step(&a, tokens, targets, dlp, NULL, B, T);
    gpt_zero_grad(&b);
    gpt_forward(&b, tokens, B, T);
    gpt_lm_forward(&b, targets, B, T);
    b.lm_chunk_bytes = 0; /* now: all rows at once */
    gpt_lm_backward(&b, dlp, NULL, B, T);
    CHECK(memcmp(a.grads, b.grads, a.num_params * sizeof(float)) == 0);
    CHECK(gpt_lm_logits_resident(&b));
    step(&b, tokens, targets, dlp, NULL, B, T); /* resident now: m->logits regrown */
    CHECK(memcmp(a.logprobs, b.logprobs, (size_t)N * sizeof(float)) == 0);
    CHECK(norm_err(b.grads, a.grads, a.num_params, 1e-6) <= 1e-5);
    gpt_free(&a), gpt_free(&b);
    free(tokens), free(targets), free(dlp);
}

// ----------------------------------------------------------------------------
// finite differences through the chunked head

typedef struct {
    GPT *m;
    int B, T;
    int *tokens, *targets;
    float *r1, *r2;
} HeadCase;

static double head_loss(void *p) {
    HeadCase *h = p;
    gpt_forward(h->m, h->tokens, h->B, h->T);
    gpt_lm_forward(h->m, h->targets, h->B, h->T);
    size_t N = (size_t)h->B * h->T;
    return dot_d(h->r1, h->m->logprobs, N) + dot_d(h->r2, h->m->entropy, N);
}

static void head_grad(void *p) {
    HeadCase *h = p;
    gpt_forward(h->m, h->tokens, h->B, h->T);
    gpt_lm_forward(h->m, h->targets, h->B, h->T);
    gpt_lm_backward(h->m, h->r1, h->r2, h->B, h->T);
}

static void gradcheck_chunked(const char *what, GPTConfig c) {
    int B = 2, T = c.max_seq_len, N = B * T, V = c.vocab_size, C = c.n_embd;
    GPT m;
    gpt_init(&m, &c);
    init_noisy(&m, 11);
    m.lm_chunk_bytes = (size_t)GPT_LM_CHUNK_GRAIN * V * sizeof(float);
    m.temperature = 0.9f;
    gpt_reserve(&m, B, T);
    gpt_alloc_grads(&m);
    CHECK(!gpt_lm_logits_resident(&m));
    HeadCase h = {&m, B, T, xcalloc((size_t)N, sizeof(int)), xcalloc((size_t)N, sizeof(int)),
                  xalloc_floats((size_t)N), xalloc_floats((size_t)N)};
    make_batch(h.tokens, h.targets, B, T, V);
    for (int i = 0; i < N; i++) h.r1[i] = rng_normal(&g_rng), h.r2[i] = 0.5f * rng_normal(&g_rng);
    GradCase gc = {.name = what, .nin = 2, .in = {m.w.lm_head, m.w.ln_f_w},
                   .din = {m.g.lm_head, m.g.ln_f_w}, .n = {(size_t)V * C, (size_t)C},
                   .loss = head_loss, .grad = head_grad, .ctx = &h, .eps = 1e-2f, .tol = 2e-2};
    grad_check(&gc);
    gpt_free(&m);
    free(h.tokens), free(h.targets), free(h.r1), free(h.r2);
}

static void test_gradcheck_chunked(void) {
    gradcheck_chunked("gpt2 head", gpt2_config(300, 60));
    gradcheck_chunked("llama head", llama_config(300, 60, 0));
}

// ----------------------------------------------------------------------------
// memory at a Qwen-sized vocabulary

/* Bytes allocated by a model and its optimizer through one training step. */
static size_t step_bytes(const GPTConfig *c, size_t chunk_bytes, int B, int T) {
    size_t before = heap_bytes();
    GPT m;
    gpt_init(&m, c);
    gpt_init_weights(&m, 3);
    m.lm_chunk_bytes = chunk_bytes;
    gpt_alloc_grads(&m);
    AdamWConfig ac = adamw_config_default();
    AdamW opt;
    adamw_init(&opt, m.num_params, &ac);
    gpt_reserve(&m, B, T);
    int N = B * T;
    int *tokens = xcalloc((size_t)N, sizeof(int)), *targets = xcalloc((size_t)N, sizeof(int));
    float *dlp = xalloc_floats((size_t)N);
    for (int i = 0; i < N; i++) tokens[i] = (int)(rng_below(&g_rng, (uint64_t)c->vocab_size));
    /* the last 250 tokens of each sequence are the response (two chunks each) */
    for (int i = 0; i < N; i++)
        targets[i] = i % T >= T - 251 && i % T + 1 < T ? tokens[i + 1] : -1, dlp[i] = -1.0f / N;
    step(&m, tokens, targets, dlp, NULL, B, T);
    adamw_step(&opt, m.params, m.grads, 1e-3f);
    size_t used = heap_bytes() - before;
    adamw_free(&opt);
    gpt_free(&m);
    free(tokens), free(targets), free(dlp);
    return used;
}

static void test_memory_qwen_vocab(void) {
    if (!heap_counts()) {
        TEST_SKIP("mallinfo2 does not count this allocator's blocks (a sanitizer build)");
        return;
    }
    GPTConfig c = {.vocab_size = 151936, .max_seq_len = 512, .n_layer = 2, .n_head = 4,
                   .n_embd = 64, .head = GPT_HEAD_LM, .family = GPT_FAMILY_LLAMA,
                   .n_kv_head = 2, .d_ff = 192, .tie_embeddings = 1,
                   .rope_theta = 1e6f, .norm_eps = 1e-6f};
    int B = 4, T = 512;
    size_t full = step_bytes(&c, 0, B, T);
    size_t chunked = step_bytes(&c, GPT_LM_CHUNK_BYTES, B, T);
    size_t logits = (size_t)B * T * c.vocab_size * sizeof(float);
    fprintf(stderr, "    V=151936 C=64 L=2, 4 x 512 tokens, step + AdamW: unchunked %.1f MB, "
            "chunked (%d rows) %.1f MB = %.1f %%\n", full / 1e6,
            gpt_lm_chunk_rows(&(GPT){.config = c, .lm_chunk_bytes = GPT_LM_CHUNK_BYTES}),
            chunked / 1e6, 100.0 * chunked / full);
    CHECK_MSG(full >= logits, "the unchunked step allocated %zu bytes, less than its logits",
              full);
    CHECK_MSG(chunked * 4 <= full, "chunked %zu bytes > 25 %% of unchunked %zu", chunked, full);
}

int main(void) {
    rng_init(&g_rng, 2024);
    TEST_RUN(test_chunked_equals_unchunked);
    TEST_RUN(test_budget_change_midstep);
    TEST_RUN(test_gradcheck_chunked);
    TEST_RUN(test_memory_qwen_vocab);
    return TEST_EXIT();
}
