/*
 * bench/bench_rollout.c — speed of the rollout scheduling of generate.h on the GPT-2 core
 * (random weights: speed does not depend on them):
 *   (a) one GRPO group: 8 samples of one prompt of 256 tokens, 64 new tokens each, all 8
 *       decoded together; rollouts/s with the shared prefill (the prompt runs once, 7
 *       slots copy its cache rows) vs every sequence prefilling it;
 *   (b) responses of random lengths: 24 distinct prompts of 32 tokens, each response
 *       stopped at its own length drawn uniformly from 16..256 (GenSchedule.max_new, as
 *       an EOS at that step would), 8 slots; in-flight batching (a finished sequence's
 *       slot takes the next prompt at once) vs static batches of 8 (the next 8 start when
 *       the longest of the batch ends). BENCH_ROLLOUT_PROMPTS sets the number of prompts
 *       (>= 8). Also printed: the passes over the weights the two schedules run (their
 *       ratio is the speed-up if a pass cost the same at any occupancy).
 * Each variant runs once after one warm-up call (the cache is reserved and the weights
 * packed there). Both variants of a pair must give identical tokens and log-probs; the
 * program says so and exits 1 if not. Also printed: the time of the 7 cache copies of (a)
 * (what sharing the rows instead of copying them could save at most).
 *
 *   (c) the reward server's side of (a): the reference log-probs of the 8 responses and a
 *       reward model's score of each (two models of the preset's shape), through the KV
 *       caches with the prompt once (score.h, ppo.shared_prompt = on) vs the batched
 *       training forward over the 8 full sequences (off); the two must agree to 1e-3.
 *
 *   build/bench/bench_rollout [gpt2|tiny|smol] [group8|randlen|score8|all]
 *
 * (smol: the Llama family at SmolLM2-135M's shape, with the 124M shapes of each part.)
 *
 * Each comparison runs its two schedules BENCH_ROLLOUT_REPS times (default 3), alternating,
 * and reports the median rates and the median ratio of the pairs.
 * Threads: OPENBLAS_NUM_THREADS. Output: a human summary and `RESULT <tab>
 * rollout.<preset>.<what> <tab> value <tab> unit` lines. Not a test.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "gpt.h"
#include "ops.h"
#include "rng.h"
#include "score.h"
#include "util.h"

typedef struct {
    int N, P, NEW;
    int *pbuf, *plens, *out, *lens;
    const int **prompts;
    float *lps;
    uint64_t *pids, *sids;
} Job;

/* N sequences of prompts of P tokens: one prompt for all when `group`, else one each. */
static void job_init(Job *j, int N, int P, int NEW, int V, int group, Rng *r) {
    *j = (Job){.N = N, .P = P, .NEW = NEW};
    j->pbuf = xcalloc((size_t)N * P, sizeof(int));
    j->plens = xcalloc((size_t)N, sizeof(int));
    j->out = xcalloc((size_t)N * NEW, sizeof(int));
    j->lens = xcalloc((size_t)N, sizeof(int));
    j->prompts = xcalloc((size_t)N, sizeof(int *));
    j->lps = xalloc_floats((size_t)N * NEW);
    j->pids = xcalloc((size_t)N, sizeof(uint64_t));
    j->sids = xcalloc((size_t)N, sizeof(uint64_t));
    for (int b = 0; b < N; b++) {
        for (int t = 0; t < P; t++)
            j->pbuf[b * P + t] = group && b > 0 ? j->pbuf[t] : (int)rng_below(r, (uint64_t)V);
        j->prompts[b] = j->pbuf + (size_t)b * P;
        j->plens[b] = P;
        j->pids[b] = group ? 0 : (uint64_t)b;
        j->sids[b] = group ? (uint64_t)b : 0;
    }
}

static void job_free(Job *j) {
    free(j->pbuf), free(j->plens), free(j->out), free(j->lens), free(j->prompts), free(j->lps);
    free(j->pids), free(j->sids);
}

/* One timed generate_scheduled; the outputs stay in j. Returns seconds. */
static double job_run(GPT *m, Job *j, const GenSchedule *s) {
    GenParams gp = {.max_new_tokens = j->NEW, .eos_id = -1, .temperature = 1.0f, .top_k = 0,
                    .top_p = 1.0f, .seed = 5};
    char err[ERRBUF_LEN];
    double t0 = time_now();
    if (generate_scheduled(m, &gp, s, j->N, j->prompts, j->plens, j->pids, j->sids, j->out,
                           j->lps, j->lens, err) != 0)
        fatal("generate: %s", err);
    return time_now() - t0;
}

/* Copies of j's outputs, to compare two schedules. */
static int same_outputs(const Job *j, const int *out, const float *lps, const int *lens) {
    return memcmp(out, j->out, (size_t)j->N * j->NEW * sizeof(int)) == 0 &&
           memcmp(lps, j->lps, (size_t)j->N * j->NEW * sizeof(float)) == 0 &&
           memcmp(lens, j->lens, (size_t)j->N * sizeof(int)) == 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Run s1 then s2 on j, REPS times alternating (BENCH_ROLLOUT_REPS, default 3: a shared VM's
 * speed drifts between runs, so one pair is not a ratio); print every pair and report the
 * median rates and the median of the per-pair ratios. 0, or 1 when any outputs differ. */
static int bench_pair(GPT *m, Job *j, const char *preset, const char *what, const char *n1,
                      const GenSchedule *s1, const char *n2, const GenSchedule *s2) {
    const char *env = getenv("BENCH_ROLLOUT_REPS");
    int reps = env && atoi(env) > 0 ? atoi(env) : 3;
    double *t1 = xcalloc((size_t)reps, sizeof(double)), *t2 = xcalloc((size_t)reps, sizeof(double));
    double *ratio = xcalloc((size_t)reps, sizeof(double));
    int *out = xcalloc((size_t)j->N * j->NEW, sizeof(int)), *lens = xcalloc((size_t)j->N, sizeof(int));
    float *lps = xalloc_floats((size_t)j->N * j->NEW);
    int same = 1;
    long long ntok = 0;
    for (int r = 0; r < reps; r++) {
        t1[r] = job_run(m, j, s1);
        int64_t rows1 = gpt_cache_rows(m);
        memcpy(out, j->out, (size_t)j->N * j->NEW * sizeof(int));
        memcpy(lps, j->lps, (size_t)j->N * j->NEW * sizeof(float));
        memcpy(lens, j->lens, (size_t)j->N * sizeof(int));
        t2[r] = job_run(m, j, s2);
        int64_t rows2 = gpt_cache_rows(m);
        same &= same_outputs(j, out, lps, lens);
        ratio[r] = t2[r] / t1[r];
        ntok = 0;
        for (int b = 0; b < j->N; b++) ntok += j->lens[b];
        printf("%s %d/%d: %s %.2f s (%.2f rollouts/s, %lld rows run), %s %.2f s (%.2f rollouts/s, "
               "%lld rows run): %.2fx\n",
               what, r + 1, reps, n1, t1[r], j->N / t1[r], (long long)rows1, n2, t2[r],
               j->N / t2[r], (long long)rows2, ratio[r]);
    }
    qsort(t1, (size_t)reps, sizeof(double), cmp_double);
    qsort(t2, (size_t)reps, sizeof(double), cmp_double);
    qsort(ratio, (size_t)reps, sizeof(double), cmp_double);
    double m1 = t1[reps / 2], m2 = t2[reps / 2], mr = ratio[reps / 2];
    printf("%s: median %s %.2f rollouts/s, %s %.2f rollouts/s, ratio %.2fx (pairs %.2f-%.2fx); "
           "%lld response tokens; outputs %s\n",
           what, n1, j->N / m1, n2, j->N / m2, mr, ratio[0], ratio[reps - 1], ntok,
           same ? "identical" : "DIFFER");
    printf("RESULT\trollout.%s.%s.%s.rollouts_per_s\t%.4f\trollouts/s\n", preset, what, n1, j->N / m1);
    printf("RESULT\trollout.%s.%s.%s.rollouts_per_s\t%.4f\trollouts/s\n", preset, what, n2, j->N / m2);
    printf("RESULT\trollout.%s.%s.speedup\t%.3f\tx\n", preset, what, mr);
    free(out), free(lens), free(lps), free(t1), free(t2), free(ratio);
    return same ? 0 : 1;
}

/* (a) one GRPO group of 8 samples of a P-token prompt, NEW tokens each. */
static int bench_group8(GPT *m, const char *preset, int P, int NEW, Rng *r) {
    Job a;
    job_init(&a, 8, P, NEW, m->config.vocab_size, 1, r);
    GenSchedule shared = {.batch = 0, .inflight = 1, .share_prefill = 1};
    GenSchedule unshared = {.batch = 0, .inflight = 1, .share_prefill = 0};
    int bad = bench_pair(m, &a, preset, "group8", "shared", &shared, "unshared", &unshared);
    double t0 = time_now();
    for (int s = 1; s < 8; s++) gpt_cache_copy_slot(m, s, 0, P - 1);
    double tc = time_now() - t0;
    printf("the 7 cache copies of a %d-token prompt: %.1f ms\n", P, tc * 1e3);
    printf("RESULT\trollout.%s.group8.copy_ms\t%.3f\tms\n", preset, tc * 1e3);
    job_free(&a);
    return bad;
}

/* The passes (weight streams) a schedule of S slots runs for N sequences of caps[i] new
 * tokens each: every pass gives each running sequence one token, the first from its
 * prompt's prefill. Static: a batch runs for its longest member. In-flight: a freed slot
 * takes the next sequence in the following pass. */
static int sched_passes(const int *caps, int N, int S, int inflight) {
    int passes = 0;
    if (!inflight) {
        for (int i = 0; i < N; i += S) {
            int longest = 0;
            for (int k = i; k < N && k < i + S; k++)
                if (caps[k] > longest) longest = caps[k];
            passes += longest;
        }
        return passes;
    }
    int *end = xcalloc((size_t)S, sizeof(int)); /* pass after which each slot is free */
    for (int i = 0; i < N; i++) {
        int s = 0;
        for (int k = 1; k < S; k++) if (end[k] < end[s]) s = k;
        end[s] += caps[i];
        passes = end[s] > passes ? end[s] : passes;
    }
    free(end);
    return passes;
}

/* (b) N distinct P-token prompts, responses stopped at random lengths in 16..maxlen,
 * 8 slots: in-flight vs static batches; reported as `what`. */
static int bench_randlen(GPT *m, const char *preset, const char *what, int N, int P, int maxlen,
                         Rng *r) {
    Job b;
    job_init(&b, N, P, maxlen, m->config.vocab_size, 0, r);
    int *caps = xcalloc((size_t)N, sizeof(int));
    for (int i = 0; i < N; i++) caps[i] = 16 + (int)rng_below(r, (uint64_t)(maxlen - 16 + 1));
    GenSchedule inflight = {.batch = 8, .inflight = 1, .share_prefill = 1, .max_new = caps};
    GenSchedule stat = {.batch = 8, .inflight = 0, .share_prefill = 1, .max_new = caps};
    int pi = sched_passes(caps, N, 8, 1), ps = sched_passes(caps, N, 8, 0);
    printf("%s: %d prompts, 8 slots: in-flight runs %d passes, static %d (%.2fx fewer: the "
           "speed-up if a pass cost the same at any occupancy)\n",
           what, N, pi, ps, (double)ps / pi);
    printf("RESULT\trollout.%s.%s.pass_ratio\t%.3f\tx\n", preset, what, (double)ps / pi);
    int bad = bench_pair(m, &b, preset, what, "inflight", &inflight, "static", &stat);
    free(caps);
    job_free(&b);
    return bad;
}

/* (c) the reward server's work for one GRPO group of 8 (prompt P, responses NEW): the
 * reference log-probs of the responses and a reward model's score, through the KV caches
 * with the prompt once (score_shared_prompts, ppo.shared_prompt = on) vs the batched
 * training forward over the 8 full sequences (off). Times alternate BENCH_ROLLOUT_REPS
 * times; the log-probs and scores of the two must agree to fp32 rounding. */
static int bench_score8(GPT *ref, const char *preset, int P, int NEW, Rng *r) {
    enum { G = 8 };
    GPTConfig sc = ref->config;
    sc.head = GPT_HEAD_SCORE;
    GPT rm;
    gpt_init(&rm, &sc);
    gpt_init_weights(&rm, 3);
    rm.weights_version = 0;
    int T = P + NEW, V = ref->config.vocab_size;
    int *tok = xcalloc((size_t)G * T, sizeof(int)), *tg = xcalloc((size_t)G * T, sizeof(int));
    for (int b = 0; b < G; b++)
        for (int t = 0; t < T; t++)
            tok[b * T + t] = b > 0 && t < P ? tok[t] : (int)rng_below(r, (uint64_t)V);
    for (int i = 0; i < G * T; i++) tg[i] = i % T >= P - 1 && i % T < T - 1 ? tok[i + 1] : -1;
    const int *seqs[G], *tgs[G];
    float *lp = xalloc_floats((size_t)G * T), *lps[G], scores[G];
    int lens[G], plens[G];
    for (int b = 0; b < G; b++) {
        seqs[b] = tok + b * T, tgs[b] = tg + b * T, lps[b] = lp + (size_t)b * T;
        lens[b] = T, plens[b] = P;
    }
    gpt_reserve(ref, G, T);
    gpt_reserve(&rm, G, T);
    gpt_cache_reserve(ref, G, T);
    gpt_cache_reserve(&rm, G, T);
    const char *env = getenv("BENCH_ROLLOUT_REPS");
    int reps = env && atoi(env) > 0 ? atoi(env) : 3;
    double *tc = xcalloc((size_t)reps + 1, sizeof(double));
    double *tf = xcalloc((size_t)reps + 1, sizeof(double));
    double *ratio = xcalloc((size_t)reps, sizeof(double)), lp_gap = 0, sc_gap = 0;
    for (int k = 0; k <= reps; k++) { /* k = 0: warm-up (the decode copies are packed there) */
        double t0 = time_now();
        score_shared_prompts(ref, G, seqs, lens, plens, tgs, lps, NULL);
        score_shared_prompts(&rm, G, seqs, lens, plens, NULL, NULL, scores);
        double t1 = time_now();
        gpt_forward(ref, tok, G, T);
        gpt_lm_forward(ref, tg, G, T);
        gpt_forward(&rm, tok, G, T);
        gpt_score_forward(&rm, lens, G, T);
        double t2 = time_now();
        tc[k] = t1 - t0, tf[k] = t2 - t1;
        if (k == 0) continue;
        ratio[k - 1] = tf[k] / tc[k];
        printf("score8 %d/%d: shared prompt %.2f s, forward %.2f s: %.2fx\n", k, reps, tc[k],
               tf[k], ratio[k - 1]);
    }
    for (int i = 0; i < G * T; i++)
        if (tg[i] >= 0) lp_gap = fmax(lp_gap, fabs((double)lp[i] - ref->logprobs[i]));
    for (int b = 0; b < G; b++) sc_gap = fmax(sc_gap, fabs((double)scores[b] - rm.scores[b]));
    qsort(tc + 1, (size_t)reps, sizeof(double), cmp_double);
    qsort(tf + 1, (size_t)reps, sizeof(double), cmp_double);
    qsort(ratio, (size_t)reps, sizeof(double), cmp_double);
    double mc = tc[1 + reps / 2], mf = tf[1 + reps / 2], mr = ratio[reps / 2];
    int ok = lp_gap < 1e-3 && sc_gap < 1e-3;
    printf("score8: reference log-probs + reward-model score of a group of 8 (prompt %d + %d): "
           "median shared prompt %.2f s, forward %.2f s, ratio %.2fx (pairs %.2f-%.2fx); max gap "
           "log-prob %.1e, score %.1e%s\n", P, NEW, mc, mf, mr, ratio[0], ratio[reps - 1], lp_gap,
           sc_gap, ok ? "" : " (TOO LARGE)");
    printf("RESULT\trollout.%s.score8.shared.rollouts_per_s\t%.4f\trollouts/s\n", preset, G / mc);
    printf("RESULT\trollout.%s.score8.forward.rollouts_per_s\t%.4f\trollouts/s\n", preset, G / mf);
    printf("RESULT\trollout.%s.score8.speedup\t%.3f\tx\n", preset, mr);
    free(tok), free(tg), free(lp), free(tc), free(tf), free(ratio);
    gpt_free(&rm);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *preset = argc > 1 ? argv[1] : "gpt2", *part = argc > 2 ? argv[2] : "all";
    int do_a = strcmp(part, "all") == 0 || strcmp(part, "group8") == 0;
    int do_b = strcmp(part, "all") == 0 || strcmp(part, "randlen") == 0;
    int do_c = strcmp(part, "all") == 0 || strcmp(part, "score8") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0); /* a figure shows as soon as it is measured */
    GPTConfig c;
    if (gpt_config_preset(preset, &c) != 0 || (!do_a && !do_b && !do_c))
        fatal("usage: bench_rollout [gpt2|tiny|smol] [group8|randlen|score8|all]");
    const char *core = ops_blas_setup(0);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("bench_rollout %s: OpenBLAS core %s (OPENBLAS_CORETYPE %s), %d threads\n", preset, core,
           ct ? ct : "unset", ops_blas_threads());
    int tiny = strcmp(preset, "tiny") == 0;
    int P = tiny ? 64 : 256, NEW = tiny ? 32 : 64, P2 = tiny ? 16 : 32, MAXLEN = tiny ? 96 : 256;
    GPT m;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 1);
    m.weights_version = 0; /* pack once, as an actor does per policy version */
    Rng r;
    rng_init(&r, 7);
    /* warm-up: the largest cache of both parts, the packed weights (short prompts: the
     * prefill itself is not what is warmed) */
    Job w;
    job_init(&w, 8, 8, 2, c.vocab_size, 0, &r);
    gpt_cache_reserve(&m, 8, P + NEW > P2 + MAXLEN ? P + NEW : P2 + MAXLEN);
    GenSchedule all = {.batch = 0, .inflight = 1, .share_prefill = 1};
    job_run(&m, &w, &all);
    job_free(&w);
    int bad = 0;

    if (do_a) bad |= bench_group8(&m, preset, P, NEW, &r);
    const char *np = getenv("BENCH_ROLLOUT_PROMPTS");
    int N2 = np && atoi(np) >= 8 ? atoi(np) : 24;
    if (do_b) bad |= bench_randlen(&m, preset, "randlen", N2, P2, MAXLEN, &r);
    if (do_c) bad |= bench_score8(&m, preset, P, NEW, &r);
    gpt_free(&m);
    return bad;
}
