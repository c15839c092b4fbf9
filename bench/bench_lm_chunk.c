/*
 * bench/bench_lm_chunk.c — what the chunked LM head (gpt.h, GPT.lm_chunk_bytes) saves:
 * peak RSS and time of one SFT learner step (forward, LM head, masked token CE, backward,
 * grad-norm + AdamW) at Qwen's vocabulary (151,936) and SmolLM2's width (576, NH 9,
 * NKV 3, F 1536, tied head), 4 x 512 tokens, with the head in chunks (the default budget,
 * GPT_LM_CHUNK_BYTES) or all at once (lm_chunk_bytes = 0, the full tokens x vocab logits).
 *
 *   build/bench/bench_lm_chunk chunked|full [layers] [B] [T]
 *
 * One mode per process, since peak RSS (getrusage ru_maxrss) only grows: bench/run.sh
 * runs both. Depth defaults to 4 layers (SmolLM2 has 30): the head's share of memory and
 * time is what chunking changes, and a 30-layer step at this vocabulary takes minutes on
 * a small machine. Two steps run; the second is timed (the first touches every page).
 * Output: `RESULT <tab> lmchunk.<mode>.<what> <tab> value <tab> unit` lines (peak_rss_mb,
 * step_ms, logits_mb: the bytes of m->logits) and lmchunk.core. Not a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "adamw.h"
#include "gpt.h"
#include "loss.h"
#include "ops.h"
#include "rng.h"
#include "util.h"

#include "sft_step.h"

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "chunked") != 0 && strcmp(argv[1], "full") != 0)) {
        fprintf(stderr, "usage: bench_lm_chunk chunked|full [layers] [B] [T]\n");
        return 1;
    }
    const char *mode = argv[1];
    int L = argc > 2 ? atoi(argv[2]) : 4, B = argc > 3 ? atoi(argv[3]) : 4,
        T = argc > 4 ? atoi(argv[4]) : 512;
    if (L < 1 || B < 1 || T < 2 || T > 2048) fatal("bench_lm_chunk: layers, B >= 1, 2 <= T <= 2048");
    const char *core = ops_blas_setup(0);
    GPTConfig c;
    gpt_config_preset("smol", &c);
    c.vocab_size = 151936;
    c.n_layer = L;
    GPT m;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 1);
    m.lm_chunk_bytes = strcmp(mode, "full") == 0 ? 0 : GPT_LM_CHUNK_BYTES;
    gpt_alloc_grads(&m);
    AdamWConfig ac = adamw_config_default();
    AdamW opt;
    adamw_init(&opt, m.num_params, &ac);
    gpt_reserve(&m, B, T);
    int N = B * T;
    int *tokens = xcalloc((size_t)N, sizeof(int)), *targets = xcalloc((size_t)N, sizeof(int));
    float *mask = xalloc_floats((size_t)N), *dlp = xalloc_floats((size_t)N);
    Rng r;
    rng_init(&r, 5);
    for (int i = 0; i < N; i++) tokens[i] = (int)rng_below(&r, (uint64_t)c.vocab_size);
    for (int i = 0; i < N; i++) {
        int resp = i % T + 1 < T; /* every next token (no prompt mask: the worst case) */
        targets[i] = resp ? tokens[i + 1] : -1;
        mask[i] = resp ? 1.0f : 0.0f;
    }
    sft_step(&m, &opt, tokens, targets, mask, dlp, B, T);
    double dt = sft_step(&m, &opt, tokens, targets, mask, dlp, B, T);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int rows = gpt_lm_logits_resident(&m) ? N : gpt_lm_chunk_rows(&m);
    double logits_mb = (double)rows * c.vocab_size * sizeof(float) / 1e6;
    printf("lm head %s: V=%d C=%d L=%d, %d x %d tokens (%d targets), OpenBLAS %s, %d threads: "
           "peak RSS %.0f MB (logits %.0f MB, %d rows), step %.0f ms\n", mode, c.vocab_size,
           c.n_embd, L, B, T, N - B, core, ops_blas_threads(), ru.ru_maxrss / 1024.0, logits_mb,
           rows, dt * 1e3);
    printf("RESULT\tlmchunk.core\t%s\tname\n", core);
    printf("RESULT\tlmchunk.%s.peak_rss_mb\t%.1f\tMB\n", mode, ru.ru_maxrss / 1024.0);
    printf("RESULT\tlmchunk.%s.logits_mb\t%.1f\tMB\n", mode, logits_mb);
    printf("RESULT\tlmchunk.%s.step_ms\t%.1f\tms\n", mode, dt * 1e3);
    printf("RESULT\tlmchunk.layers\t%d\tcount\n", L);
    adamw_free(&opt);
    gpt_free(&m);
    free(tokens), free(targets), free(mask), free(dlp);
    return 0;
}
