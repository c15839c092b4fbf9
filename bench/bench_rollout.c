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
 *       the longest of the batch ends).
 * Each variant runs once after one warm-up call (the cache is reserved and the weights
 * packed there). Both variants of a pair must give identical tokens and log-probs; the
 * program says so and exits 1 if not. Also printed: the time of the 7 cache copies of (a)
 * (what sharing the rows instead of copying them could save at most).
 *
 *   build/bench/bench_rollout [gpt2|tiny] [group8|randlen|all]
 *
 * Each comparison runs its two schedules BENCH_ROLLOUT_REPS times (default 3), alternating,
 * and reports the median rates and the median ratio of the pairs.
 * Threads: OPENBLAS_NUM_THREADS. Output: a human summary and `RESULT <tab>
 * rollout.<preset>.<what> <tab> value <tab> unit` lines. Not a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "gpt.h"
#include "ops.h"
#include "rng.h"
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
            for (int k = i; k < N && k < i + S; k++) longest = caps[k] > longest ? caps[k] : longest;
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

/* (b) N distinct P-token prompts (BENCH_ROLLOUT_PROMPTS, default 24), responses stopped at
 * random lengths in 16..maxlen, 8 slots: in-flight vs static batches. */
static int bench_randlen(GPT *m, const char *preset, int P, int maxlen, Rng *r) {
    Job b;
    const char *env = getenv("BENCH_ROLLOUT_PROMPTS");
    int N = env && atoi(env) >= 8 ? atoi(env) : 24;
    job_init(&b, N, P, maxlen, m->config.vocab_size, 0, r);
    int *caps = xcalloc((size_t)N, sizeof(int));
    for (int i = 0; i < N; i++) caps[i] = 16 + (int)rng_below(r, (uint64_t)(maxlen - 16 + 1));
    GenSchedule inflight = {.batch = 8, .inflight = 1, .share_prefill = 1, .max_new = caps};
    GenSchedule stat = {.batch = 8, .inflight = 0, .share_prefill = 1, .max_new = caps};
    int pi = sched_passes(caps, N, 8, 1), ps = sched_passes(caps, N, 8, 0);
    printf("randlen: %d prompts, 8 slots: in-flight runs %d passes, static %d (%.2fx fewer: the "
           "speed-up if a pass cost the same at any occupancy)\n", N, pi, ps, (double)ps / pi);
    printf("RESULT\trollout.%s.randlen.pass_ratio\t%.3f\tx\n", preset, (double)ps / pi);
    int bad = bench_pair(m, &b, preset, "randlen", "inflight", &inflight, "static", &stat);
    free(caps);
    job_free(&b);
    return bad;
}

int main(int argc, char **argv) {
    const char *preset = argc > 1 ? argv[1] : "gpt2", *part = argc > 2 ? argv[2] : "all";
    int do_a = strcmp(part, "all") == 0 || strcmp(part, "group8") == 0;
    int do_b = strcmp(part, "all") == 0 || strcmp(part, "randlen") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0); /* a figure shows as soon as it is measured */
    GPTConfig c;
    if (gpt_config_preset(preset, &c) != 0 || c.family != GPT_FAMILY_GPT2)
        fatal("usage: bench_rollout [gpt2|tiny] [group8|randlen|all]");
    if (!do_a && !do_b) fatal("usage: bench_rollout [gpt2|tiny] [group8|randlen|all]");
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
    if (do_b) bad |= bench_randlen(&m, preset, P2, MAXLEN, &r);
    gpt_free(&m);
    return bad;
}
