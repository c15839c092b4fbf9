/*
 * bench/bench_recompute.c — what activation recomputation (gpt.h, GPT.recompute;
 * train.recompute) saves and costs: peak RSS and time of one SFT learner step (forward,
 * LM head, masked token CE, backward, grad-norm + AdamW) at 2,048 tokens, with
 * recompute on or off, on a small model: GPT-2 "tiny"'s shape (V512 L4 NH4 C128) with
 * max_seq_len 2048, or "llama-tiny"'s (NKV 2, F 344), so the activations, not the
 * weights, are what the memory holds.
 *
 *   build/bench/bench_recompute on|off [gpt2|llama] [layers] [T]
 *
 * One mode per process, since peak RSS (getrusage ru_maxrss) only grows: bench/run.sh
 * runs both. A first step touches every page; step_ms is the fastest of the three that
 * follow (the least disturbed by other load on a shared machine). Output:
 * `RESULT <tab> recompute.<mode>.<what> <tab> value <tab> unit` lines (peak_rss_mb,
 * step_ms, acts_mb: the activation bytes the model's own formula gives) and
 * recompute.core, recompute.layers, recompute.tokens. Not a test.
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
    if (argc < 2 || (strcmp(argv[1], "on") != 0 && strcmp(argv[1], "off") != 0) ||
        (argc > 2 && strcmp(argv[2], "gpt2") != 0 && strcmp(argv[2], "llama") != 0)) {
        fprintf(stderr, "usage: bench_recompute on|off [gpt2|llama] [layers] [T]\n");
        return 1;
    }
    const char *mode = argv[1], *fam = argc > 2 ? argv[2] : "gpt2";
    int L = argc > 3 ? atoi(argv[3]) : 4, B = 1, T = argc > 4 ? atoi(argv[4]) : 2048;
    if (L < 1 || L > 256 || T < 2 || T > 65536)
        fatal("bench_recompute: layers in [1, 256], T in [2, 65536]");
    const char *core = ops_blas_setup(0);
    GPTConfig c;
    gpt_config_preset(strcmp(fam, "llama") == 0 ? "llama-tiny" : "tiny", &c);
    c.n_layer = L;
    c.max_seq_len = T;
    GPT m;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 1);
    m.recompute = strcmp(mode, "on") == 0;
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
        int resp = i % T + 1 < T;
        targets[i] = resp ? tokens[i + 1] : -1;
        mask[i] = resp ? 1.0f : 0.0f;
    }
    sft_step(&m, &opt, tokens, targets, mask, dlp, B, T);
    double dt = 1e30; /* the fastest of three: the least disturbed by other load */
    for (int s = 0; s < 3; s++) {
        double d = sft_step(&m, &opt, tokens, targets, mask, dlp, B, T);
        if (d < dt) dt = d;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* gpt.h's estimate: 16 C floats per token per kept layer + B NH T^2 per kept layer,
     * plus C floats per token per layer with recompute (the block inputs) */
    double kept = m.recompute ? 1.0 : L, tok = (double)N;
    double acts_mb = (kept * (16.0 * c.n_embd * tok + (double)B * c.n_head * T * T) +
                      (m.recompute ? (double)L * c.n_embd * tok : 0.0)) * sizeof(float) / 1e6;
    printf("recompute %s: %s C=%d L=%d NH=%d, %d x %d tokens, OpenBLAS %s, %d threads: peak RSS "
           "%.0f MB (activations ~%.0f MB), step %.0f ms\n", mode, fam, c.n_embd, L, c.n_head, B,
           T, core, ops_blas_threads(), ru.ru_maxrss / 1024.0, acts_mb, dt * 1e3);
    printf("RESULT\trecompute.core\t%s\tname\n", core);
    printf("RESULT\trecompute.%s.peak_rss_mb\t%.1f\tMB\n", mode, ru.ru_maxrss / 1024.0);
    printf("RESULT\trecompute.%s.acts_mb\t%.1f\tMB\n", mode, acts_mb);
    printf("RESULT\trecompute.%s.step_ms\t%.1f\tms\n", mode, dt * 1e3);
    printf("RESULT\trecompute.layers\t%d\tcount\n", L);
    printf("RESULT\trecompute.tokens\t%d\tcount\n", N);
    adamw_free(&opt);
    gpt_free(&m);
    free(tokens), free(targets), free(mask), free(dlp);
    return 0;
}
