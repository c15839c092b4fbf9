/*
 * common/generate.c — the generation loop: validate, prefill the prompts into the KV
 * cache, then one batched decode step per new token over the sequences still running,
 * sampling each from its own keyed RNG (see generate.h for the guarantees).
 * Allocates per call only the per-sequence bookkeeping and the sampler scratch; the
 * model's cache is reused across calls.
 */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "sample.h"
#include "util.h"

int gen_params_validate(const GenParams *p, int vocab_size, char *err) {
    if (p->max_new_tokens < 1)
        return errf(err, "max_new_tokens = %d: must be >= 1", p->max_new_tokens);
    if (p->eos_id < -1 || p->eos_id >= vocab_size)
        return errf(err, "eos_id = %d: must be -1 (none) or a token id in [0, %d)", p->eos_id,
                    vocab_size);
    SampleParams sp = {p->temperature, p->top_k, p->top_p};
    return sample_params_validate(&sp, err);
}

int generate(GPT *m, const GenParams *p, int B, const int *const *prompts,
             const int *prompt_lens, const uint64_t *prompt_ids, const uint64_t *sample_ids,
             int *out_tokens, float *out_logprobs, int *out_lens, char *err) {
    const GPTConfig *c = &m->config;
    int V = c->vocab_size, maxnew = p->max_new_tokens;
    if (m->config.head != GPT_HEAD_LM) return errf(err, "generate: the model has no LM head");
    if (B < 1) return errf(err, "generate: batch size %d must be >= 1", B);
    if (gen_params_validate(p, V, err) != 0) return -1;
    int longest = 0;
    for (int b = 0; b < B; b++) {
        int len = prompt_lens[b];
        if (len < 1) return errf(err, "generate: prompt %d is empty", b);
        if (len > c->max_seq_len - maxnew)
            return errf(err,
                        "generate: prompt %d has %d tokens; with max_new_tokens = %d it must "
                        "have at most %d (max_seq_len %d)",
                        b, len, maxnew, c->max_seq_len - maxnew, c->max_seq_len);
        for (int t = 0; t < len; t++)
            if (prompts[b][t] < 0 || prompts[b][t] >= V)
                return errf(err, "generate: prompt %d, position %d: token %d is outside [0, %d)",
                            b, t, prompts[b][t], V);
        if (len > longest) longest = len;
    }
    gpt_cache_reserve(m, B, longest + maxnew);
    SampleParams sp = {p->temperature, p->top_k, p->top_p};
    Sampler smp;
    sampler_init(&smp, V);
    Rng *rngs = xcalloc((size_t)B, sizeof(Rng));
    int *slots = xcalloc((size_t)B, sizeof(int)), *next = xcalloc((size_t)B, sizeof(int));
    for (int b = 0; b < B; b++) {
        rng_init_keyed(&rngs[b], p->seed, prompt_ids[b], sample_ids[b]);
        out_lens[b] = 0;
        for (int t = 0; t < maxnew; t++) {
            out_tokens[(size_t)b * maxnew + t] = -1;
            out_logprobs[(size_t)b * maxnew + t] = 0.0f;
        }
        slots[b] = b;
    }
    /* logits row i belongs to the sequence in slots[i] */
    const float *logits = gpt_cache_prefill(m, B, prompts, prompt_lens);
    int n = B;
    for (int step = 0; step < maxnew && n > 0; step++) {
        int still = 0;
        for (int i = 0; i < n; i++) {
            int b = slots[i];
            float lp;
            int tok = sample_token(&smp, logits + (size_t)i * V, &sp, &rngs[b], &lp);
            out_tokens[(size_t)b * maxnew + step] = tok;
            out_logprobs[(size_t)b * maxnew + step] = lp;
            out_lens[b] = step + 1;
            if (tok != p->eos_id) {
                slots[still] = b;
                next[still] = tok;
                still++;
            }
        }
        n = still;
        if (n > 0 && step + 1 < maxnew) logits = gpt_cache_decode(m, n, slots, next);
    }
    sampler_free(&smp);
    free(rngs);
    free(slots);
    free(next);
    return 0;
}
