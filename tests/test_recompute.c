/*
 * tests/test_recompute.c — activation recomputation (gpt.h, GPT.recompute):
 *   - the same training step with recompute off and on, for GPT-2 and Llama blocks (with
 *     q/k/v biases and q/k norms), the LM, value and score heads, 1, 2 and 3 kernel
 *     threads, a batch smaller than the reserved one, two steps in a row: outputs
 *     (log-probs, entropies, values, scores) and every gradient byte are equal;
 *   - switching the mode on a model that already trained (gpt_reserve resizes) gives the
 *     same bits again, and gpt_forward refuses a mode changed without gpt_reserve
 *     (checked in a child process: it aborts);
 *   - memory at a long sequence (C=64, 4 layers, NH=4, B=1, T=2048, both families): the
 *     bytes one training step allocates for activations (glibc mallinfo2, from
 *     gpt_reserve through the backward) with recompute are at most those of the same
 *     model cut to ONE layer without recompute plus the other layers' block inputs,
 *     (L-1)·B·T·C floats: one block of activations, whatever L. Skipped where mallinfo2
 *     does not see the allocations (sanitizer builds).
 */
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpt.h"
#include "ops.h"
#include "rng.h"
#include "heapcount.h"
#include "test.h"
#include "util.h"

static Rng g_rng;

static GPTConfig gpt2_config(int L, int T, GPTHead head) {
    return (GPTConfig){.vocab_size = 300, .max_seq_len = T, .n_layer = L, .n_head = 4,
                       .n_embd = 32, .head = head};
}

static GPTConfig llama_config(int L, int T, GPTHead head) {
    return (GPTConfig){.vocab_size = 300, .max_seq_len = T, .n_layer = L, .n_head = 4,
                       .n_embd = 32, .head = head, .family = GPT_FAMILY_LLAMA,
                       .n_kv_head = 2, .d_ff = 56, .qkv_bias = 1, .qk_norm = 1,
                       .tie_embeddings = 0, .rope_theta = 10000.0f, .norm_eps = 1e-5f};
}

/* One step's inputs: tokens, LM targets (some -1), score lengths, and the upstream
 * gradients of every head output. */
typedef struct {
    int B, T;
    int *tokens, *targets, *lengths;
    float *d1, *d2; /* (B,T): dlogprobs / dvalues / dscores, dentropy */
} Batch;

static Batch batch_make(int B, int T, int V) {
    Batch b = {B, T, xcalloc((size_t)B * T, sizeof(int)), xcalloc((size_t)B * T, sizeof(int)),
               xcalloc((size_t)B, sizeof(int)), xalloc_floats((size_t)B * T),
               xalloc_floats((size_t)B * T)};
    for (int i = 0; i < B * T; i++) {
        b.tokens[i] = (int)rng_below(&g_rng, (uint64_t)V);
        b.d1[i] = rng_normal(&g_rng), b.d2[i] = rng_normal(&g_rng);
    }
    for (int i = 0; i < B * T; i++)
        b.targets[i] = i % T >= T / 4 && i % T + 1 < T ? b.tokens[i + 1] : -1;
    for (int r = 0; r < B; r++) b.lengths[r] = T - 3 * r > 1 ? T - 3 * r : 1;
    return b;
}

static void batch_free(Batch *b) {
    free(b->tokens), free(b->targets), free(b->lengths), free(b->d1), free(b->d2);
}

/* zero_grad, forward, head forward and backward: a training step without the loss */
static void train_step(GPT *m, const Batch *b) {
    gpt_zero_grad(m);
    gpt_forward(m, b->tokens, b->B, b->T);
    switch (m->config.head) {
    case GPT_HEAD_LM:
        gpt_lm_forward(m, b->targets, b->B, b->T);
        gpt_lm_backward(m, b->d1, b->d2, b->B, b->T);
        break;
    case GPT_HEAD_VALUE:
        gpt_value_forward(m, b->B, b->T);
        gpt_value_backward(m, b->d1, b->B, b->T);
        break;
    case GPT_HEAD_SCORE:
        gpt_score_forward(m, b->lengths, b->B, b->T);
        gpt_score_backward(m, b->d1, b->B, b->T);
        break;
    }
}

static int outputs_equal(const GPT *x, const GPT *y, int B, int T) {
    size_t N = (size_t)B * T, f = sizeof(float);
    switch (x->config.head) {
    case GPT_HEAD_LM:
        return !memcmp(x->logprobs, y->logprobs, N * f) && !memcmp(x->entropy, y->entropy, N * f);
    case GPT_HEAD_VALUE:
        return !memcmp(x->values, y->values, N * f);
    default:
        return !memcmp(x->scores, y->scores, (size_t)B * f);
    }
}

/* The name of the first tensor whose gradient differs, or NULL when all are equal. */
static const char *first_grad_diff(const GPT *x, const GPT *y) {
    for (int k = 0; k < x->num_tensors; k++) {
        const GPTTensor *t = &x->tensors[k];
        if (memcmp(x->grads + t->offset, y->grads + t->offset, t->numel * sizeof(float)))
            return t->name;
    }
    return NULL;
}

static void init_pair(GPT *off, GPT *on, const GPTConfig *c, uint64_t seed) {
    gpt_init(off, c);
    gpt_init(on, c);
    gpt_init_weights(off, seed);
    Rng r;
    rng_init(&r, seed);
    for (size_t i = 0; i < off->num_params; i++) off->params[i] += 0.05f * rng_normal(&r);
    memcpy(on->params, off->params, off->num_params * sizeof(float));
    on->recompute = 1;
}

/* Recompute off and on, same weights and batches: two steps at the reserved shape and
 * one at a smaller batch, every output and gradient byte compared. */
static void compare_modes(const char *what, GPTConfig c, int B, int T, int threads) {
    int before = ops_blas_threads();
    ops_blas_setup(threads);
    GPT off, on;
    init_pair(&off, &on, &c, 17);
    gpt_reserve(&off, B, T);
    gpt_reserve(&on, B, T);
    Batch shapes[3] = {batch_make(B, T, c.vocab_size), batch_make(B, T, c.vocab_size),
                       batch_make(B > 1 ? B - 1 : 1, T - 5, c.vocab_size)};
    for (int s = 0; s < 3; s++) {
        train_step(&off, &shapes[s]);
        train_step(&on, &shapes[s]);
        const char *diff = first_grad_diff(&off, &on);
        CHECK_MSG(outputs_equal(&off, &on, shapes[s].B, shapes[s].T),
                  "%s, %d threads, step %d: head outputs differ with recompute", what, threads, s);
        CHECK_MSG(diff == NULL, "%s, %d threads, step %d: gradient of %s differs with recompute",
                  what, threads, s, diff ? diff : "");
    }
    fprintf(stderr, "    %-26s %d thread%s: outputs and gradients identical (3 steps)\n", what,
            threads, threads == 1 ? " " : "s");
    for (int s = 0; s < 3; s++) batch_free(&shapes[s]);
    gpt_free(&off), gpt_free(&on);
    ops_blas_setup(before);
}

static void test_bit_identical(void) {
    for (int th = 1; th <= 3; th++) {
        compare_modes("gpt2 lm", gpt2_config(3, 40, GPT_HEAD_LM), 3, 40, th);
        compare_modes("llama lm (bias, qk-norm)", llama_config(3, 40, GPT_HEAD_LM), 3, 40, th);
    }
    compare_modes("gpt2 score", gpt2_config(3, 33, GPT_HEAD_SCORE), 3, 33, 2);
    compare_modes("llama value", llama_config(2, 33, GPT_HEAD_VALUE), 2, 33, 2);
    compare_modes("gpt2 one layer", gpt2_config(1, 20, GPT_HEAD_LM), 2, 20, 2);
}

/* A model that trained without recompute switches it on (and off again) through
 * gpt_reserve at the same shape: the same bits as a model that never switched. */
static void test_switch_mode(void) {
    GPTConfig c = llama_config(3, 30, GPT_HEAD_LM);
    GPT ref, sw;
    init_pair(&ref, &sw, &c, 23);
    ref.recompute = 0, sw.recompute = 0;
    gpt_reserve(&ref, 2, 30);
    gpt_reserve(&sw, 2, 30);
    Batch b = batch_make(2, 30, c.vocab_size);
    train_step(&ref, &b);
    train_step(&sw, &b);
    for (int mode = 1; mode >= 0; mode--) {
        sw.recompute = mode;
        gpt_reserve(&sw, 2, 30);
        train_step(&sw, &b);
        CHECK_MSG(outputs_equal(&ref, &sw, 2, 30) && !first_grad_diff(&ref, &sw),
                  "recompute switched to %d: results differ", mode);
    }
    /* a mode changed without gpt_reserve: gpt_forward aborts (in a child) */
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(3);
        sw.recompute = 1;
        gpt_forward(&sw, b.tokens, 2, 30);
        _exit(0);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(!(WIFEXITED(st) && WEXITSTATUS(st) == 0),
              "gpt_forward accepted a recompute mode the activations were not reserved for");
    batch_free(&b);
    gpt_free(&ref), gpt_free(&sw);
}

// ----------------------------------------------------------------------------
// memory at 2048 tokens

/* Bytes allocated from gpt_reserve through one training step's backward: the activations,
 * the head outputs and the activation-gradient scratch (parameters and gradients are
 * allocated before and not counted). */
static size_t activation_bytes(const GPTConfig *c, int recompute, const Batch *b) {
    GPT m;
    gpt_init(&m, c);
    gpt_init_weights(&m, 5);
    gpt_alloc_grads(&m);
    m.recompute = recompute;
    size_t before = heap_bytes();
    gpt_reserve(&m, b->B, b->T);
    train_step(&m, b);
    size_t used = heap_bytes() - before;
    gpt_free(&m);
    return used;
}

static void memory_case(const char *what, GPTConfig c) {
    int B = 1, T = c.max_seq_len, L = c.n_layer;
    Batch b = batch_make(B, T, c.vocab_size);
    size_t off = activation_bytes(&c, 0, &b);
    size_t on = activation_bytes(&c, 1, &b);
    GPTConfig c1 = c;
    c1.n_layer = 1;
    size_t one_block = activation_bytes(&c1, 0, &b);
    size_t res = (size_t)B * T * c.n_embd * sizeof(float);
    size_t att = (size_t)B * c.n_head * T * T * sizeof(float);
    size_t bound = one_block + (size_t)(L - 1) * res + ((size_t)64 << 10);
    fprintf(stderr, "    %-6s C=%d L=%d NH=%d, %d x %d tokens: activations off %.1f MB, on %.1f MB "
            "(%.1f %%), bound (1 layer off + %d block inputs) %.1f MB\n", what, c.n_embd, L,
            c.n_head, B, T, off / 1e6, on / 1e6, 100.0 * on / off, L - 1, bound / 1e6);
    /* the measurement sees the per-layer attention probabilities without recompute */
    CHECK_MSG(off >= one_block + (size_t)(L - 1) * att,
              "%s: off %zu bytes < one layer %zu + %d x attention %zu", what, off, one_block,
              L - 1, att);
    CHECK_MSG(on <= bound, "%s: recompute allocated %zu bytes > bound %zu", what, on, bound);
    batch_free(&b);
}

static void test_memory_2k(void) {
    if (!heap_counts()) {
        TEST_SKIP("mallinfo2 does not count this allocator's blocks (a sanitizer build)");
        return;
    }
    GPTConfig g = {.vocab_size = 512, .max_seq_len = 2048, .n_layer = 4, .n_head = 4,
                   .n_embd = 64, .head = GPT_HEAD_LM};
    memory_case("gpt2", g);
    GPTConfig l = {.vocab_size = 512, .max_seq_len = 2048, .n_layer = 4, .n_head = 4,
                   .n_embd = 64, .head = GPT_HEAD_LM, .family = GPT_FAMILY_LLAMA,
                   .n_kv_head = 2, .d_ff = 172, .tie_embeddings = 1, .rope_theta = 1e4f,
                   .norm_eps = 1e-5f};
    memory_case("llama", l);
}

int main(void) {
    rng_init(&g_rng, 77);
    TEST_RUN(test_bit_identical);
    TEST_RUN(test_switch_mode);
    TEST_RUN(test_memory_2k);
    return TEST_EXIT();
}
