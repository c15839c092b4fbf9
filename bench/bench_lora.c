/*
 * bench/bench_lora.c — LoRA against full fine-tuning at a real model's shape: peak RSS
 * and time of one SFT learner step (forward, LM head, masked token CE, backward,
 * grad-norm + AdamW over the optimizer's target) and the bytes of one weight-sync update
 * (ppo.weight_sync = params: the parameter buffer; LoRA: the adapter buffer).
 *
 *   build/bench/bench_lora full|lora [preset] [rank] [T] [targets]
 *
 * Defaults: preset smol (SmolLM2-135M's shape, random weights), rank 16, T 128 (one
 * sequence), targets all-linear, alpha = 2 x rank. One mode per process, since peak RSS
 * (getrusage ru_maxrss) only grows: bench/run.sh runs both. A first step touches every
 * page; step_ms is the fastest of the two that follow. It also prints the sync share of
 * the attention-only and PEFT-default (q_proj, v_proj) target sets at this rank, computed
 * from the adapter table. Output: `RESULT <tab> lora.<mode>.<what> <tab> value <tab> unit`.
 * Not a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "adamw.h"
#include "gpt.h"
#include "lora.h"
#include "loss.h"
#include "ops.h"
#include "rng.h"
#include "util.h"

static double step(GPT *m, AdamW *opt, float *params, float *grads, size_t n, const int *tokens,
                   const int *targets, const float *mask, float *dlp, int T) {
    double t0 = time_now();
    gpt_zero_grad(m);
    gpt_forward(m, tokens, 1, T);
    gpt_lm_forward(m, targets, 1, T);
    LossCEStats st;
    loss_token_ce_forward(&st, m->logprobs, mask, LOSS_AGG_TOKEN, 0.0, 1, T);
    loss_token_ce_backward(dlp, mask, LOSS_AGG_TOKEN, 0.0, 1, T);
    gpt_lm_backward(m, dlp, NULL, 1, T);
    double norm = adamw_grad_norm(grads, n);
    adamw_step_scaled(opt, params, grads, 1e-4f, norm > 1.0 ? (float)(1.0 / norm) : 1.0f);
    return time_now() - t0;
}

/* floats of the adapters of `targets` at rank r on config c (the table lora_attach builds) */
static size_t adapter_floats(const GPTConfig *c, int r, const char *targets) {
    GPT m;
    gpt_init(&m, c); /* params only: no activations */
    unsigned mask;
    char err[ERRBUF_LEN];
    if (lora_targets_parse(targets, c->family, &mask, err) != 0) fatal("%s", err);
    lora_attach(&m, r, 2.0f * r, mask, 0.0f);
    size_t n = m.lora->n;
    gpt_free(&m);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "full") != 0 && strcmp(argv[1], "lora") != 0)) {
        fprintf(stderr, "usage: bench_lora full|lora [preset] [rank] [T] [targets]\n");
        return 1;
    }
    const char *mode = argv[1], *preset = argc > 2 ? argv[2] : "smol";
    int r = argc > 3 ? atoi(argv[3]) : 16, T = argc > 4 ? atoi(argv[4]) : 128;
    const char *targets = argc > 5 ? argv[5] : "all-linear";
    GPTConfig c;
    if (gpt_config_preset(preset, &c) != 0) fatal("bench_lora: unknown preset %s", preset);
    if (r < 1 || r > 256 || T < 2 || T > c.max_seq_len) fatal("bench_lora: rank or T out of range");
    const char *core = ops_blas_setup(0);
    int lora = strcmp(mode, "lora") == 0;
    GPT m;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 1);
    float *params = m.params, *grads;
    size_t n = m.num_params;
    if (lora) {
        unsigned mask;
        char err[ERRBUF_LEN];
        if (lora_targets_parse(targets, c.family, &mask, err) != 0) fatal("%s", err);
        lora_attach(&m, r, 2.0f * r, mask, 0.0f);
        lora_init_weights(m.lora, 2);
        params = m.lora->params, grads = m.lora->grads, n = m.lora->n;
    } else {
        gpt_alloc_grads(&m);
        grads = m.grads;
    }
    AdamWConfig ac = adamw_config_default();
    AdamW opt;
    adamw_init(&opt, n, &ac);
    gpt_reserve(&m, 1, T);
    int *tokens = xcalloc((size_t)T, sizeof(int)), *tgt = xcalloc((size_t)T, sizeof(int));
    float *mask = xalloc_floats((size_t)T), *dlp = xalloc_floats((size_t)T);
    Rng rg;
    rng_init(&rg, 5);
    for (int i = 0; i < T; i++) tokens[i] = (int)rng_below(&rg, (uint64_t)c.vocab_size);
    for (int i = 0; i < T; i++) tgt[i] = i + 1 < T ? tokens[i + 1] : -1, mask[i] = i + 1 < T;
    step(&m, &opt, params, grads, n, tokens, tgt, mask, dlp, T);
    double dt = 1e30;
    for (int s = 0; s < 2; s++) {
        double d = step(&m, &opt, params, grads, n, tokens, tgt, mask, dlp, T);
        if (d < dt) dt = d;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    size_t full_bytes = m.num_params * sizeof(float), sync = n * sizeof(float);
    printf("lora bench %s: %s (%zu params), rank %d %s, 1 x %d tokens, OpenBLAS %s, %d threads: "
           "trainable %zu, peak RSS %.0f MB, step %.0f ms, sync %zu bytes per update (%.2f%% of "
           "the %zu-byte parameter buffer)\n", mode, preset, m.num_params, r, targets, T, core,
           ops_blas_threads(), n, ru.ru_maxrss / 1024.0, dt * 1e3, sync,
           100.0 * (double)sync / (double)full_bytes, full_bytes);
    printf("RESULT\tlora.core\t%s\tname\n", core);
    printf("RESULT\tlora.%s.peak_rss_mb\t%.1f\tMB\n", mode, ru.ru_maxrss / 1024.0);
    printf("RESULT\tlora.%s.step_ms\t%.1f\tms\n", mode, dt * 1e3);
    printf("RESULT\tlora.%s.trainable\t%zu\tcount\n", mode, n);
    printf("RESULT\tlora.%s.sync_bytes\t%zu\tbytes\n", mode, sync);
    if (lora) {
        const char *sets[] = {"all-linear", "q_proj,k_proj,v_proj,o_proj", "q_proj,v_proj"};
        for (int i = 0; i < 3 && c.family == GPT_FAMILY_LLAMA; i++) {
            size_t a = adapter_floats(&c, r, sets[i]);
            printf("  rank %d on %s: %zu adapter floats, sync %.2f%% of the parameters\n", r,
                   sets[i], a, 100.0 * (double)a / (double)m.num_params);
            printf("RESULT\tlora.sync_pct.%s\t%.3f\t%%\n", i == 0 ? "all_linear" : i == 1 ? "attn" : "qv",
                   100.0 * (double)a / (double)m.num_params);
        }
    }
    adamw_free(&opt);
    gpt_free(&m);
    free(tokens), free(tgt), free(mask), free(dlp);
    return 0;
}
