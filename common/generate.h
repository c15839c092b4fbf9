/*
 * common/generate.h — batched autoregressive generation with the KV cache of gpt.h and
 * the sampler of sample.h: what an actor calls to turn prompts into responses.
 *
 * Every sequence b draws from its own generator rng_init_keyed(seed, prompt_ids[b],
 * sample_ids[b]) (one uniform per token, none when greedy), and the cache path computes
 * a sequence's logits independently of the other sequences bit for bit; so the tokens
 * and log-probs of a (seed, prompt id, sample id) are identical whether it is generated
 * alone or in any batch, on any rank with the same build and CPU kernels. (The results
 * are NOT bit-identical to a different build or instruction set, and the training-path
 * logits of gpt_forward differ from the cache path's by fp32 rounding.)
 *
 * Generation of sequence b stops after eos_id is produced (the EOS token is included in
 * the response and counted in out_lens) or after max_new_tokens tokens.
 *
 * Scheduling (generate_scheduled), none of which changes a sequence's results:
 *   - shared prefill: sequences whose prompts are identical (GRPO/RLOO's K samples of a
 *     prompt) prefill it once; the others copy its cached keys and values
 *     (gpt_cache_copy_slot) and run only the prompt's last token, which gives them the
 *     first-token logits bit for bit;
 *   - in-flight batching: at most `batch` sequences decode together (the cache's slots);
 *     when one ends, its slot takes the next pending sequence in the same step (the new
 *     prompt's prefill rides in the decode pass of the others, gpt_cache_run) instead of
 *     idling until the longest sequence of the batch ends.
 * Not here: batching of prompts across calls, stopping strings, repetition penalties.
 */
#ifndef RLHF_GENERATE_H
#define RLHF_GENERATE_H

#include <stdint.h>

#include "gpt.h"

typedef struct {
    int max_new_tokens; /* >= 1 */
    int eos_id;         /* token that ends a response, or -1 for none */
    float temperature;  /* 0 = greedy; see sample.h */
    int top_k;          /* 0 = off */
    float top_p;        /* 1 = off */
    uint64_t seed;
} GenParams;

/* 0, or -1 with err naming the bad field. */
int gen_params_validate(const GenParams *p, int vocab_size, char *err);

/* Generate B responses. prompts[b][0..prompt_lens[b]) are the prompt tokens;
 * prompt_lens[b] >= 1 and prompt_lens[b] + max_new_tokens <= max_seq_len.
 * Outputs, row-major with row stride max_new_tokens:
 *   out_tokens (B, max_new): the response tokens; -1 past out_lens[b];
 *   out_logprobs (B, max_new): log-prob of each token under softmax(logits/temperature)
 *     of the full distribution (see sample.h), 0 past out_lens[b];
 *   out_lens (B): the number of response tokens (EOS included).
 * The cache is (re)sized with gpt_cache_reserve for B x the longest sequence (once for
 * a steady shape). Identical prompts share one prefill (see above). Returns 0, or -1 with err (bad parameters, a prompt that is empty,
 * too long, or holds a token outside the vocabulary); nothing is generated then. */
int generate(GPT *m, const GenParams *p, int B, const int *const *prompts,
             const int *prompt_lens, const uint64_t *prompt_ids, const uint64_t *sample_ids,
             int *out_tokens, float *out_logprobs, int *out_lens, char *err);

/* How generate_scheduled runs N sequences; generate() uses {0, 1, 1, NULL}. */
typedef struct {
    int batch;          /* sequences decoded together (cache slots): 0 = all N at once */
    int inflight;       /* 1: a finished sequence's slot takes the next pending one at
                         * once; 0: static batches (the next `batch` sequences start when
                         * every sequence of the current batch has ended) */
    int share_prefill;  /* 1: identical prompts prefill once; 0: every sequence its own */
    const int *max_new; /* (N) per-sequence cap on response tokens in [1, max_new_tokens]
                         * (a sequence that reaches it ends like one at max_new_tokens),
                         * or NULL: max_new_tokens for all */
} GenSchedule;

/* generate() for N sequences under schedule s; the same arguments, outputs and errors
 * (plus a bad batch or max_new entry), and for every sequence the same tokens and
 * log-probs bit for bit, whatever the schedule. The cache is sized for min(batch, N)
 * slots. */
int generate_scheduled(GPT *m, const GenParams *p, const GenSchedule *s, int N,
                       const int *const *prompts, const int *prompt_lens,
                       const uint64_t *prompt_ids, const uint64_t *sample_ids, int *out_tokens,
                       float *out_logprobs, int *out_lens, char *err);

#endif
