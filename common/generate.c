/*
 * common/generate.c — the generation loop: validate, prefill the prompts into the KV
 * cache, then one batched decode step per new token over the sequences still running,
 * sampling each from its own keyed RNG (see generate.h for the guarantees).
 * Allocates per call only the per-sequence bookkeeping and the sampler scratch (one per
 * thread: the rows of a step are sampled in parallel); the model's cache is reused
 * across calls.
 */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
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

/* One step's sampling: row i of logits for the sequence in slots[i], from that
 * sequence's own RNG, so the rows are independent and are split over the kernels' pool
 * (each part with its own Sampler scratch). At GPT-2's vocabulary a row costs several
 * passes over 50257 logits: serial, ~2 ms of each 124M decode step at batch 8. */
typedef struct {
    Sampler *smp; /* one per part */
    const float *logits;
    const SampleParams *sp;
    Rng *rngs;
    const int *slots;
    int *tok;
    float *lp;
    int n, V;
} SampleJob;

static void sample_part(void *arg, int part, int nparts) {
    const SampleJob *j = arg;
    int lo = (int)((long long)j->n * part / nparts), hi = (int)((long long)j->n * (part + 1) / nparts);
    for (int i = lo; i < hi; i++)
        j->tok[i] = sample_token(&j->smp[part], j->logits + (size_t)i * j->V, j->sp,
                                 &j->rngs[j->slots[i]], &j->lp[i]);
}

/* Below this many logits a step samples on the calling thread. */
#define SAMPLE_PAR_MIN (1 << 15)

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
    int nsmp = ops_blas_threads() < 1 ? 1 : ops_blas_threads();
    if (nsmp > B) nsmp = B;
    Sampler *smp = xcalloc((size_t)nsmp, sizeof(Sampler));
    for (int i = 0; i < nsmp; i++) sampler_init(&smp[i], V);
    Rng *rngs = xcalloc((size_t)B, sizeof(Rng));
    int *slots = xcalloc((size_t)B, sizeof(int)), *next = xcalloc((size_t)B, sizeof(int));
    int *tok = xcalloc((size_t)B, sizeof(int));
    float *lp = xalloc_floats((size_t)B);
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
        SampleJob sj = {smp, logits, &sp, rngs, slots, tok, lp, n, V};
        if ((size_t)n * V < SAMPLE_PAR_MIN || nsmp < 2) sample_part(&sj, 0, 1);
        else ops_parallel(sample_part, &sj, n < nsmp ? n : nsmp);
        int still = 0;
        for (int i = 0; i < n; i++) {
            int b = slots[i];
            out_tokens[(size_t)b * maxnew + step] = tok[i];
            out_logprobs[(size_t)b * maxnew + step] = lp[i];
            out_lens[b] = step + 1;
            if (tok[i] != p->eos_id) {
                slots[still] = b;
                next[still] = tok[i];
                still++;
            }
        }
        n = still;
        if (n > 0 && step + 1 < maxnew) logits = gpt_cache_decode(m, n, slots, next);
    }
    for (int i = 0; i < nsmp; i++) sampler_free(&smp[i]);
    free(smp);
    free(tok);
    free(lp);
    free(rngs);
    free(slots);
    free(next);
    return 0;
}
