/*
 * common/score.c — scoring sequences through the KV cache, each shared prompt once
 * (see score.h).
 */
#include "score.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void score_group_prompts(int n, const int *const *seqs, const int *plens, int *src) {
    for (int i = 0; i < n; i++) {
        src[i] = i;
        for (int j = 0; j < i && src[i] == i; j++)
            if (src[j] == j && plens[j] == plens[i] &&
                memcmp(seqs[j], seqs[i], (size_t)plens[i] * sizeof(int)) == 0)
                src[i] = j;
    }
}

long score_cache_rows(int n, const int *const *seqs, const int *lens, const int *plens) {
    int *src = xcalloc((size_t)(n > 0 ? n : 1), sizeof(int));
    score_group_prompts(n, seqs, plens, src);
    long rows = 0;
    for (int i = 0; i < n; i++) rows += lens[i] - (src[i] == i ? 0 : plens[i] - 1);
    free(src);
    return rows;
}

void score_shared_prompts(GPT *m, int n, const int *const *seqs, const int *lens,
                          const int *plens, const int *const *targets, float *const *lp,
                          float *scores) {
    if (n < 1) return;
    for (int i = 0; i < n; i++)
        if (plens[i] < 1 || lens[i] < plens[i])
            fatal("score_shared_prompts: sequence %d has %d tokens and a prompt of %d", i, lens[i],
                  plens[i]);
    int *src = xcalloc((size_t)n, sizeof(int));
    GPTCacheRun *runs = xcalloc((size_t)n, sizeof(GPTCacheRun));
    const int **tg = xcalloc((size_t)n, sizeof(int *));
    float **out = xcalloc((size_t)n, sizeof(float *));
    score_group_prompts(n, seqs, plens, src);
    gpt_cache_begin(m);
    /* each distinct prompt but its last token, once, in the slot of its first sequence */
    int nl = 0;
    for (int i = 0; i < n; i++)
        if (src[i] == i && plens[i] > 1) runs[nl++] = (GPTCacheRun){i, 0, plens[i] - 1, seqs[i]};
    if (nl > 0) gpt_cache_score(m, nl, runs, NULL, NULL, NULL);
    /* the others copy it; then every sequence from its prompt's last token to its end */
    for (int i = 0; i < n; i++) {
        int P = plens[i];
        if (src[i] != i && P > 1) gpt_cache_copy_slot(m, i, src[i], P - 1);
        runs[i] = (GPTCacheRun){i, P - 1, lens[i] - P + 1, seqs[i] + P - 1};
        if (targets) tg[i] = targets[i] + P - 1, out[i] = lp[i] + P - 1;
    }
    gpt_cache_score(m, n, runs, targets ? tg : NULL, targets ? out : NULL, scores);
    free(src), free(runs), free(tg), free(out);
}
