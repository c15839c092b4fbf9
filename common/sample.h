/*
 * common/sample.h — drawing the next token from a row of logits: temperature, top-k,
 * top-p (nucleus), greedy.
 *
 * Semantics (the order of Hugging Face's logits processors):
 *   - temperature t > 0: z = logits / t (computed as logits * (1/t), exactly as
 *     gpt_lm_forward does), p = softmax(z);
 *   - top_k k > 0: keep the k most probable tokens (all of them when k >= V); 0 = off;
 *   - top_p in (0, 1): of what top-k kept, keep the smallest set of most probable tokens
 *     whose probability mass, renormalised over the top-k set, is >= top_p; 1 = off;
 *   - the token is drawn from p renormalised over the kept set, with ONE uniform draw
 *     (rng_uniform_double) per token, whatever the filters;
 *   - temperature 0: greedy — the argmax (lowest id on ties), no random draw, top-k/top-p
 *     ignored.
 * Ties in probability are ordered by lower token id first, so the kept set is always
 * well defined. The returned log-prob is that of the drawn token under the FULL
 * softmax(logits / t) — not the truncated distribution — i.e. bit-identical to what
 * gpt_lm_forward reports with m->temperature = t for the same logits row. For greedy
 * (t = 0) it is the log-prob at temperature 1 (gpt_lm_forward with m->temperature = 1).
 *
 * A Sampler holds the scratch of one vocabulary size (allocated once by sampler_init);
 * sample_token never allocates.
 */
#ifndef RLHF_SAMPLE_H
#define RLHF_SAMPLE_H

#include "rng.h"

typedef struct {
    float temperature; /* >= 0; 0 = greedy */
    int top_k;         /* >= 0; 0 = off */
    float top_p;       /* (0, 1]; 1 = off */
} SampleParams;

typedef struct {
    int V;
    int *idx;    /* (V) candidate token ids */
    float *z;    /* (V) scaled logits, or the unfiltered draw's weights */
    double *block; /* (V / SOFTMAX_BLOCK rounded up) the weights' block sums */
} Sampler;

/* 0, or -1 with err naming the bad field (temperature < 0 or not finite, top_k < 0,
 * top_p outside (0, 1]). */
int sample_params_validate(const SampleParams *p, char *err);
void sampler_init(Sampler *s, int V);
void sampler_free(Sampler *s); /* NULL-safe */
/* Draw a token from logits (V); *logprob gets its log-prob (see above). p must be valid. */
int sample_token(Sampler *s, const float *logits, const SampleParams *p, Rng *rng,
                 float *logprob);

#endif
