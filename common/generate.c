/*
 * common/generate.c — the generation loop: validate, then one cache pass per new token
 * over the sequences running in the cache's slots, sampling each from its own keyed RNG
 * (see generate.h for the guarantees). A slot freed by a finished sequence is refilled
 * from the pending ones in the same pass (in-flight batching), and sequences with the
 * same prompt prefill it once (the others copy its cache rows).
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
    Rng *rngs;        /* one per sequence */
    const int *seqs;  /* the sequence of each logits row */
    int *tok;
    float *lp;
    int n, V;
} SampleJob;

static void sample_part(void *arg, int part, int nparts) {
    const SampleJob *j = arg;
    int lo = (int)((long long)j->n * part / nparts), hi = (int)((long long)j->n * (part + 1) / nparts);
    for (int i = lo; i < hi; i++)
        j->tok[i] = sample_token(&j->smp[part], j->logits + (size_t)i * j->V, j->sp,
                                 &j->rngs[j->seqs[i]], &j->lp[i]);
}

/* Below this many logits a step samples on the calling thread. */
#define SAMPLE_PAR_MIN (1 << 15)

/* Check the parameters, schedule and prompts; 0 or -1 with err. *longest: the longest
 * prompt. */
static int gen_check(const GPT *m, const GenParams *p, const GenSchedule *s, int N,
                     const int *const *prompts, const int *prompt_lens, int *longest, char *err) {
    const GPTConfig *c = &m->config;
    int V = c->vocab_size, maxnew = p->max_new_tokens;
    if (c->head != GPT_HEAD_LM) return errf(err, "generate: the model has no LM head");
    if (N < 1) return errf(err, "generate: batch size %d must be >= 1", N);
    if (gen_params_validate(p, V, err) != 0) return -1;
    if (s->batch < 0) return errf(err, "generate: schedule batch %d must be >= 0", s->batch);
    *longest = 0;
    for (int b = 0; b < N; b++) {
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
        if (s->max_new && (s->max_new[b] < 1 || s->max_new[b] > maxnew))
            return errf(err, "generate: max_new[%d] = %d: must be in [1, max_new_tokens = %d]",
                        b, s->max_new[b], maxnew);
        if (len > *longest) *longest = len;
    }
    return 0;
}

static uint64_t prompt_hash(const int *toks, int len) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over the token ids */
    for (int t = 0; t < len; t++) h = (h ^ (uint32_t)toks[t]) * 1099511628211ULL;
    return h;
}

/* group[b]: the first sequence whose prompt equals b's (b itself when none or !share). */
static void group_prompts(int N, const int *const *prompts, const int *lens, int share,
                          int *group) {
    uint64_t *h = xcalloc((size_t)N, sizeof *h);
    for (int b = 0; b < N; b++) {
        group[b] = b;
        if (!share) continue;
        h[b] = prompt_hash(prompts[b], lens[b]);
        for (int a = 0; a < b; a++)
            if (group[a] == a && h[a] == h[b] && lens[a] == lens[b] &&
                memcmp(prompts[a], prompts[b], (size_t)lens[b] * sizeof(int)) == 0) {
                group[b] = a;
                break;
            }
    }
    free(h);
}

/* The state of one generate_scheduled call. Slots hold running sequences; a slot also
 * remembers which prompt group's keys and values sit in its first rows (they stay valid
 * after its sequence ends, until the slot takes another prompt), so a later sequence of
 * that group copies them instead of prefilling. */
typedef struct {
    GPT *m;
    const int *const *prompts;
    const int *plens, *group;
    int N, S, V, pending; /* pending: the next sequence to start */
    int *slot_seq;        /* (S) running sequence, or -1 */
    int *slot_group;      /* (S) prompt group cached in the slot's first rows, or -1 */
    int *dest;            /* (S) the slot starts a sequence in this step */
    int *leader;          /* (N) per group: the slot prefilling it in this step, or -1 */
    GPTCacheRun *runs;    /* (S) this step's runs */
    int *row_seq;         /* (S) sequence of each logits row (runs first, then followers) */
    int *next_tok;        /* (S) the token each decode run appends */
    int *fdst, *fsrc;     /* (S) followers: slot copying a prompt prefilled in this step */
    int *adm_seq, *adm_slot, *slot_of; /* (S) scratch of sched_admit, sched_record */
    int nrun, nfollow;
    float *lg;            /* (S, V) the step's logits when there are followers */
} Sched;

/* A free slot for a sequence of group gr: one already holding gr's prompt, else the
 * first free one. */
static int sched_pick_slot(const Sched *g, int gr) {
    int first = -1;
    for (int s = 0; s < g->S; s++) {
        if (g->slot_seq[s] >= 0 || g->dest[s]) continue;
        if (g->slot_group[s] == gr) return s;
        if (first < 0) first = s;
    }
    return first;
}

/* A slot (not starting a sequence in this step) whose first rows hold gr's prompt. */
static int sched_find_source(const Sched *g, int gr) {
    for (int s = 0; s < g->S; s++)
        if (g->slot_group[s] == gr && !g->dest[s]) return s;
    return -1;
}

/* Start sequence b in slot s: reuse or copy its prompt's cache rows when some slot has
 * them (then only the prompt's last token runs, for the first logits), follow a prefill
 * of the same prompt in this step, or prefill it. */
static void sched_start(Sched *g, int b, int s) {
    int gr = g->group[b], len = g->plens[b];
    const int *pr = g->prompts[b];
    int src = g->slot_group[s] == gr ? s : sched_find_source(g, gr);
    if (src >= 0) {
        if (src != s) gpt_cache_copy_slot(g->m, s, src, len - 1);
        g->runs[g->nrun] = (GPTCacheRun){s, len - 1, 1, pr + len - 1};
        g->row_seq[g->nrun++] = b;
    } else if (g->leader[gr] >= 0) {
        g->fdst[g->nfollow] = s, g->fsrc[g->nfollow++] = g->leader[gr];
    } else {
        g->leader[gr] = s;
        g->runs[g->nrun] = (GPTCacheRun){s, 0, len, pr};
        g->row_seq[g->nrun++] = b;
    }
    g->slot_seq[s] = b;
    g->slot_group[s] = gr;
}

/* Start pending sequences in the free slots (slots first, then sources: every copy
 * happens before the pass writes anything, from a slot that no sequence takes over). */
static void sched_admit(Sched *g) {
    int *adm_seq = g->adm_seq, *adm_slot = g->adm_slot, na = 0;
    for (int s = 0; s < g->S; s++) g->dest[s] = 0;
    while (g->pending < g->N) {
        int b = g->pending, s = sched_pick_slot(g, g->group[b]);
        if (s < 0) break;
        g->dest[s] = 1;
        adm_seq[na] = b, adm_slot[na++] = s;
        g->pending++;
    }
    for (int k = 0; k < na; k++) sched_start(g, adm_seq[k], adm_slot[k]);
    for (int k = 0; k < na; k++) g->leader[g->group[adm_seq[k]]] = -1;
}

/* Run this step's pass; followers copy their leader's rows and logits. Returns the
 * logits, row i for the sequence row_seq[i]. */
static const float *sched_pass(Sched *g) {
    const float *lg = gpt_cache_run(g->m, g->nrun, g->runs);
    if (g->nfollow == 0) return lg;
    memcpy(g->lg, lg, (size_t)g->nrun * g->V * sizeof(float));
    for (int f = 0; f < g->nfollow; f++) {
        int leader_row = -1, b = g->slot_seq[g->fdst[f]];
        for (int i = 0; i < g->nrun && leader_row < 0; i++)
            if (g->runs[i].slot == g->fsrc[f]) leader_row = i;
        gpt_cache_copy_slot(g->m, g->fdst[f], g->fsrc[f], g->plens[b]);
        memcpy(g->lg + (size_t)(g->nrun + f) * g->V, g->lg + (size_t)leader_row * g->V,
               (size_t)g->V * sizeof(float));
        g->row_seq[g->nrun + f] = b;
    }
    return g->lg;
}

static void sched_init(Sched *g, GPT *m, int N, int S, const int *const *prompts,
                       const int *plens, const int *group) {
    *g = (Sched){.m = m, .prompts = prompts, .plens = plens, .group = group, .N = N, .S = S,
                 .V = m->config.vocab_size};
    g->slot_seq = xcalloc((size_t)S, sizeof(int));
    g->slot_group = xcalloc((size_t)S, sizeof(int));
    g->dest = xcalloc((size_t)S, sizeof(int));
    g->leader = xcalloc((size_t)N, sizeof(int));
    g->runs = xcalloc((size_t)S, sizeof(GPTCacheRun));
    g->row_seq = xcalloc((size_t)S, sizeof(int));
    g->next_tok = xcalloc((size_t)S, sizeof(int));
    g->fdst = xcalloc((size_t)S, sizeof(int));
    g->fsrc = xcalloc((size_t)S, sizeof(int));
    g->adm_seq = xcalloc((size_t)S, sizeof(int));
    g->adm_slot = xcalloc((size_t)S, sizeof(int));
    g->slot_of = xcalloc((size_t)S, sizeof(int));
    for (int s = 0; s < S; s++) g->slot_seq[s] = g->slot_group[s] = -1;
    for (int b = 0; b < N; b++) g->leader[b] = -1;
}

static void sched_free(Sched *g) {
    int *bufs[] = {g->slot_seq, g->slot_group, g->dest, g->leader, g->row_seq, g->next_tok,
                   g->fdst, g->fsrc, g->adm_seq, g->adm_slot, g->slot_of};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(g->runs);
    free(g->lg);
}

/* Per-call outputs and sampling state shared by the steps. */
typedef struct {
    const GenParams *p;
    const int *cap; /* (N) or NULL */
    int *out_tokens, *out_lens;
    float *out_logprobs;
} GenOut;

/* Record the sampled token of every row; the sequences that go on get a decode run for
 * the next pass, the finished ones free their slot. */
static void sched_record(Sched *g, const GenOut *o, const int *tok, const float *lp, int nrows) {
    int maxnew = o->p->max_new_tokens, nrun = 0;
    /* the slots of the rows, read before any run is rewritten */
    int *slot_of = g->slot_of;
    for (int i = 0; i < g->nrun; i++) slot_of[i] = g->runs[i].slot;
    for (int f = 0; f < g->nfollow; f++) slot_of[g->nrun + f] = g->fdst[f];
    for (int i = 0; i < nrows; i++) {
        int b = g->row_seq[i], s = slot_of[i], n = o->out_lens[b];
        o->out_tokens[(size_t)b * maxnew + n] = tok[i];
        o->out_logprobs[(size_t)b * maxnew + n] = lp[i];
        o->out_lens[b] = ++n;
        int cap = o->cap ? o->cap[b] : maxnew;
        if (tok[i] == o->p->eos_id || n >= cap) {
            g->slot_seq[s] = -1;
            continue;
        }
        g->next_tok[nrun] = tok[i];
        g->runs[nrun] = (GPTCacheRun){s, gpt_cache_len(g->m, s), 1, &g->next_tok[nrun]};
        g->row_seq[nrun++] = b;
    }
    g->nrun = nrun, g->nfollow = 0;
}

int generate_scheduled(GPT *m, const GenParams *p, const GenSchedule *s, int N,
                       const int *const *prompts, const int *prompt_lens,
                       const uint64_t *prompt_ids, const uint64_t *sample_ids, int *out_tokens,
                       float *out_logprobs, int *out_lens, char *err) {
    int longest = 0, maxnew = p->max_new_tokens, V = m->config.vocab_size;
    if (gen_check(m, p, s, N, prompts, prompt_lens, &longest, err) != 0) return -1;
    int S = s->batch > 0 && s->batch < N ? s->batch : N;
    gpt_cache_reserve(m, S, longest + maxnew);
    gpt_cache_begin(m);
    SampleParams sp = {p->temperature, p->top_k, p->top_p};
    int nsmp = ops_blas_threads() < 1 ? 1 : ops_blas_threads();
    if (nsmp > S) nsmp = S;
    Sampler *smp = xcalloc((size_t)nsmp, sizeof(Sampler));
    for (int i = 0; i < nsmp; i++) sampler_init(&smp[i], V);
    Rng *rngs = xcalloc((size_t)N, sizeof(Rng));
    int *group = xcalloc((size_t)N, sizeof(int)), *tok = xcalloc((size_t)S, sizeof(int));
    float *lp = xalloc_floats((size_t)S);
    for (int b = 0; b < N; b++) {
        rng_init_keyed(&rngs[b], p->seed, prompt_ids[b], sample_ids[b]);
        out_lens[b] = 0;
        for (int t = 0; t < maxnew; t++) {
            out_tokens[(size_t)b * maxnew + t] = -1;
            out_logprobs[(size_t)b * maxnew + t] = 0.0f;
        }
    }
    group_prompts(N, prompts, prompt_lens, s->share_prefill, group);
    Sched g;
    sched_init(&g, m, N, S, prompts, prompt_lens, group);
    g.lg = xalloc_floats((size_t)S * V);
    GenOut o = {p, s->max_new, out_tokens, out_lens, out_logprobs};
    sched_admit(&g);
    while (g.nrun > 0) {
        const float *logits = sched_pass(&g);
        int nrows = g.nrun + g.nfollow;
        SampleJob sj = {smp, logits, &sp, rngs, g.row_seq, tok, lp, nrows, V};
        if ((size_t)nrows * V < SAMPLE_PAR_MIN || nsmp < 2) sample_part(&sj, 0, 1);
        else ops_parallel(sample_part, &sj, nrows < nsmp ? nrows : nsmp);
        sched_record(&g, &o, tok, lp, nrows);
        if (s->inflight || g.nrun == 0) sched_admit(&g);
    }
    sched_free(&g);
    for (int i = 0; i < nsmp; i++) sampler_free(&smp[i]);
    free(smp);
    free(tok);
    free(lp);
    free(rngs);
    free(group);
    return 0;
}

int generate(GPT *m, const GenParams *p, int B, const int *const *prompts,
             const int *prompt_lens, const uint64_t *prompt_ids, const uint64_t *sample_ids,
             int *out_tokens, float *out_logprobs, int *out_lens, char *err) {
    GenSchedule s = {.batch = 0, .inflight = 1, .share_prefill = 1, .max_new = NULL};
    return generate_scheduled(m, p, &s, B, prompts, prompt_lens, prompt_ids, sample_ids,
                              out_tokens, out_logprobs, out_lens, err);
}
