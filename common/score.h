/*
 * common/score.h — teacher-forced scoring of whole sequences through the KV cache of
 * gpt.h, a prompt shared by several of them run once: what the reward server does for
 * the reference log-probs and the reward-model scores of a GRPO/RLOO group.
 *
 * A group's G sequences share their prompt of P tokens. The batched training forward
 * (gpt_forward) runs G x (P + R) rows; here the prompt's first P - 1 tokens run once in
 * one slot, G - 1 slots copy those keys and values (gpt_cache_copy_slot), and each
 * sequence runs from its prompt's last token on: P - 1 + G x (R + 1) rows. Every row goes
 * through the cache's row-wise kernels, so a sequence's figures do not depend on the
 * other sequences of the call, and equal the training path's up to fp32 rounding
 * (tests/test_generate.c, tests/t_verify.sh).
 */
#ifndef RLHF_SCORE_H
#define RLHF_SCORE_H

#include "gpt.h"

/* src[i] = the first j <= i whose prompt (seqs[j][0..plens[j])) equals sequence i's. */
void score_group_prompts(int n, const int *const *seqs, const int *plens, int *src);

/* The rows score_shared_prompts runs for these n sequences (lens[i] tokens each, the
 * first plens[i] the prompt, 1 <= plens[i] <= lens[i]). */
long score_cache_rows(int n, const int *const *seqs, const int *lens, const int *plens);

/* Sequence i (lens[i] tokens, the first plens[i] its prompt) into cache slot i of m (the
 * cache reserved for >= n slots of >= max lens[i] tokens; gpt_cache_begin is called
 * here), each distinct prompt once. targets/lp (both or neither): for each position t
 * of sequence i with targets[i][t] >= 0 (t >= plens[i] - 1), lp[i][t] = log p(targets[i][t]
 * | seqs[i][0..t]) at m->temperature — the layout of gpt_lm_forward's targets and
 * logprobs rows. scores (NULL: none): scores[i] = the score head at sequence i's last
 * token (gpt_score_forward's). */
void score_shared_prompts(GPT *m, int n, const int *const *seqs, const int *lens,
                          const int *plens, const int *const *targets, float *const *lp,
                          float *scores);

#endif
