/*
 * tests/test_generate.c — KV-cache decoding, sampling and the generation loop:
 *   - prefill of prompts of different lengths + per-sequence decode: the logits equal
 *     the full forward pass's (normalised error <= 1e-5);
 *   - the log-probs returned with sampled tokens agree with gpt_lm_forward at the same
 *     temperature (bit-identical on the same logits row; to fp32 rounding end to end);
 *   - batch invariance: a (seed, prompt id, sample id) generates the identical tokens and
 *     log-probs alone and inside batches of other prompts of different lengths;
 *   - EOS stops a sequence, max_new_tokens bounds it, padding is -1 / 0;
 *   - sampling semantics on hand-made logits: greedy, top-k = 1 is greedy, top-k and
 *     top-p kept sets, ties, one RNG draw per token, empirical frequencies against the
 *     renormalised distribution, and agreement with a brute-force reference sampler;
 *   - bad input to generate() is an error, not a crash;
 *   - scheduling (both families, GPT-2 and Llama): a shared prefill (gpt_cache_copy_slot
 *     + the prompt's last token) gives the logits of a prefill of its own bit for bit;
 *     generate_scheduled with any batch size (1, 3, 8, all), with and without in-flight
 *     refill and shared prefill, with 1 and 2 threads, gives every sequence the tokens and
 *     log-probs it gets alone; a shared prefill runs fewer prompt tokens.
 */
#include <stdint.h>

#include "generate.h"
#include "gpt.h"
#include "ops.h"
#include "rng.h"
#include "sample.h"
#include "score.h"
#include "test.h"
#include "util.h"

static Rng g_rng;

static void make_model(GPT *m, int V, int maxT, uint64_t seed) {
    GPTConfig c = {.vocab_size = V, .max_seq_len = maxT, .n_layer = 2, .n_head = 2,
                   .n_embd = 24, .head = GPT_HEAD_LM};
    gpt_init(m, &c);
    gpt_init_weights(m, seed);
    Rng r;
    rng_init(&r, seed + 1);
    /* larger weights than GPT-2 init so the logits are far from uniform */
    for (size_t i = 0; i < m->num_params; i++) m->params[i] += 0.15f * rng_normal(&r);
}

static double row_err(const float *a, const float *ref, int V) {
    double e = 0, mx = 1e-6;
    for (int i = 0; i < V; i++) {
        e = fmax(e, fabs((double)a[i] - ref[i]));
        mx = fmax(mx, fabs(ref[i]));
    }
    return e / mx;
}

// ----------------------------------------------------------------------------
// KV cache against the training path

static void test_decode_matches_forward(void) {
    int V = 50, T = 14, B = 4;
    GPT m;
    make_model(&m, V, 16, 3);
    int seqs[4][14];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) seqs[b][t] = (int)rng_below(&g_rng, (uint64_t)V);
    int lens[4] = {3, 7, 1, 13};
    const int *prompts[4] = {seqs[0], seqs[1], seqs[2], seqs[3]};
    /* reference: full forward of every sequence */
    gpt_reserve(&m, B, T);
    int targets[4 * 14];
    for (int i = 0; i < B * T; i++) targets[i] = 0;
    gpt_forward(&m, &seqs[0][0], B, T);
    gpt_lm_forward(&m, targets, B, T);
    float *ref = xalloc_floats((size_t)B * T * V);
    memcpy(ref, m.logits, (size_t)B * T * V * sizeof(float));

    gpt_cache_reserve(&m, B, T);
    const float *lg = gpt_cache_prefill(&m, B, prompts, lens);
    double worst = 0;
    for (int b = 0; b < B; b++) {
        double e = row_err(lg + (size_t)b * V, ref + ((size_t)b * T + lens[b] - 1) * V, V);
        worst = fmax(worst, e);
        CHECK_EQ_INT(gpt_cache_len(&m, b), lens[b]);
    }
    /* teacher-forced decode; each sequence at its own position, finished ones drop out */
    for (;;) {
        int slots[4], toks[4], n = 0;
        for (int b = 0; b < B; b++) {
            int pos = gpt_cache_len(&m, b);
            if (pos < T) {
                slots[n] = b;
                toks[n] = seqs[b][pos];
                n++;
            }
        }
        if (n == 0) break;
        lg = gpt_cache_decode(&m, n, slots, toks);
        for (int i = 0; i < n; i++) {
            int b = slots[i], pos = gpt_cache_len(&m, b) - 1;
            double e = row_err(lg + (size_t)i * V, ref + ((size_t)b * T + pos) * V, V);
            worst = fmax(worst, e);
        }
    }
    fprintf(stderr, "    cache vs full forward: worst normalised logits error %.2e\n", worst);
    CHECK(worst <= 1e-5);
    free(ref);
    gpt_free(&m);
}

/* The cache decodes from a packed copy of the trunk weights made at each prefill: after
 * the parameters change (an optimizer step, a weight sync), the next prefill and its
 * decode steps must give exactly what a model loaded with the new weights gives. */
static void test_prefill_sees_new_weights(void) {
    int V = 40, B = 3;
    GPT m, fresh;
    make_model(&m, V, 16, 11);
    make_model(&fresh, V, 16, 12);
    int seqs[3][5] = {{1, 2, 3, 4, 5}, {7, 8, 9, 10, 11}, {30, 31, 32, 33, 34}};
    int lens[3] = {3, 5, 2};
    const int *prompts[3] = {seqs[0], seqs[1], seqs[2]};
    int slots[3] = {0, 1, 2}, toks[3] = {5, 6, 7};
    gpt_cache_reserve(&m, B, 8);
    gpt_cache_reserve(&fresh, B, 8);
    gpt_cache_prefill(&m, B, prompts, lens);
    gpt_cache_decode(&m, B, slots, toks);
    memcpy(m.params, fresh.params, m.num_params * sizeof(float));
    float *got = xalloc_floats((size_t)2 * B * V), *want = xalloc_floats((size_t)2 * B * V);
    memcpy(got, gpt_cache_prefill(&m, B, prompts, lens), (size_t)B * V * sizeof(float));
    memcpy(got + B * V, gpt_cache_decode(&m, B, slots, toks), (size_t)B * V * sizeof(float));
    memcpy(want, gpt_cache_prefill(&fresh, B, prompts, lens), (size_t)B * V * sizeof(float));
    memcpy(want + B * V, gpt_cache_decode(&fresh, B, slots, toks), (size_t)B * V * sizeof(float));
    CHECK(memcmp(got, want, (size_t)2 * B * V * sizeof(float)) == 0);
    /* labelled weights (the actor's policy versions): a new label packs the new weights;
     * the same label reuses the copy (so a caller that changes the weights must change the
     * label: here the copy still gives the labelled weights' logits) */
    GPT other;
    make_model(&other, V, 16, 13);
    m.weights_version = 7;
    memcpy(m.params, other.params, m.num_params * sizeof(float));
    gpt_cache_reserve(&other, B, 8);
    memcpy(want, gpt_cache_prefill(&other, B, prompts, lens), (size_t)B * V * sizeof(float));
    CHECK(memcmp(gpt_cache_prefill(&m, B, prompts, lens), want, (size_t)B * V * sizeof(float)) == 0);
    memcpy(m.params, fresh.params, m.num_params * sizeof(float)); /* label left at 7 */
    memcpy(want, gpt_cache_prefill(&fresh, B, prompts, lens), (size_t)B * V * sizeof(float));
    CHECK(memcmp(gpt_cache_prefill(&m, B, prompts, lens), want, (size_t)B * V * sizeof(float)) != 0);
    m.weights_version = 8;
    CHECK(memcmp(gpt_cache_prefill(&m, B, prompts, lens), want, (size_t)B * V * sizeof(float)) == 0);
    gpt_free(&other);
    free(got), free(want);
    gpt_free(&m);
    gpt_free(&fresh);
}

// ----------------------------------------------------------------------------
// generation

static void test_logprobs_match_training_path(void) {
    int V = 40, maxT = 24, B = 3, maxnew = 10;
    GPT m;
    make_model(&m, V, maxT, 5);
    int p0[] = {1, 2, 3}, p1[] = {7}, p2[] = {4, 4, 9, 12, 0, 31};
    const int *prompts[] = {p0, p1, p2};
    int plens[] = {3, 1, 6};
    uint64_t pids[] = {0, 1, 2}, sids[] = {0, 0, 0};
    float temps[] = {0.7f, 1.0f, 0.0f};
    for (int ti = 0; ti < 3; ti++) {
        GenParams gp = {.max_new_tokens = maxnew, .eos_id = -1, .temperature = temps[ti],
                        .top_k = ti == 0 ? 10 : 0, .top_p = ti == 0 ? 0.9f : 1.0f, .seed = 42};
        int toks[3 * 10], lens[3];
        float lps[3 * 10];
        char err[ERRBUF_LEN];
        CHECK(generate(&m, &gp, B, prompts, plens, pids, sids, toks, lps, lens, err) == 0);
        m.temperature = temps[ti] > 0 ? temps[ti] : 1.0f;
        double worst = 0;
        for (int b = 0; b < B; b++) {
            CHECK_EQ_INT(lens[b], maxnew);
            int T = plens[b] + lens[b];
            int seq[24], tg[24];
            for (int t = 0; t < plens[b]; t++) seq[t] = prompts[b][t];
            for (int t = 0; t < lens[b]; t++) seq[plens[b] + t] = toks[b * maxnew + t];
            for (int t = 0; t < T; t++) tg[t] = t + 1 < T && t + 1 >= plens[b] ? seq[t + 1] : -1;
            gpt_reserve(&m, 1, T);
            gpt_forward(&m, seq, 1, T);
            gpt_lm_forward(&m, tg, 1, T);
            for (int t = 0; t < lens[b] - 1; t++) {
                float train = m.logprobs[plens[b] - 1 + t];
                worst = fmax(worst, fabs(train - lps[b * maxnew + t]));
            }
            /* the log-probs are those of the full distribution: <= 0 and finite */
            for (int t = 0; t < lens[b]; t++) CHECK(lps[b * maxnew + t] <= 0 && isfinite(lps[b * maxnew + t]));
        }
        fprintf(stderr, "    temperature %.1f: max |logprob generate - gpt_lm_forward| = %.2e\n",
                (double)temps[ti], worst);
        CHECK(worst < 2e-5);
    }
    gpt_free(&m);
}

static void test_batch_invariance(void) {
    int V = 60, maxT = 40, maxnew = 16;
    GPT m;
    make_model(&m, V, maxT, 9);
    int target[] = {5, 17, 3, 3, 40};
    int others[9][12];
    int olens[9];
    for (int i = 0; i < 9; i++) {
        olens[i] = 1 + (int)rng_below(&g_rng, 12);
        for (int t = 0; t < olens[i]; t++) others[i][t] = (int)rng_below(&g_rng, (uint64_t)V);
    }
    GenParams gp = {.max_new_tokens = maxnew, .eos_id = -1, .temperature = 1.0f, .top_k = 0,
                    .top_p = 0.95f, .seed = 1234};
    char err[ERRBUF_LEN];
    /* alone */
    const int *pa[1] = {target};
    int la[1] = {5}, tok_alone[16], len_alone;
    float lp_alone[16];
    uint64_t pid = 77, sid = 3;
    CHECK(generate(&m, &gp, 1, pa, la, &pid, &sid, tok_alone, lp_alone, &len_alone, err) == 0);
    /* an EOS the target never produces, so the other sequences may stop early around it */
    int used[60] = {0};
    for (int t = 0; t < len_alone; t++) used[tok_alone[t]] = 1;
    while (used[gp.eos_id + 1]) gp.eos_id++;
    gp.eos_id++;
    int early = 0;
    /* in batches of sizes 2..10, at different positions, with other prompt lengths */
    int mismatches = 0, runs = 0;
    for (int B = 2; B <= 10; B++) {
        int where = (B * 7) % B;
        const int *prompts[10];
        int plens[10];
        uint64_t pids[10], sids[10];
        for (int i = 0, o = 0; i < B; i++) {
            if (i == where) {
                prompts[i] = target, plens[i] = 5, pids[i] = pid, sids[i] = sid;
            } else {
                prompts[i] = others[o], plens[i] = olens[o], pids[i] = 100 + (uint64_t)o, sids[i] = 0;
                o++;
            }
        }
        int toks[10 * 16], lens[10];
        float lps[10 * 16];
        CHECK(generate(&m, &gp, B, prompts, plens, pids, sids, toks, lps, lens, err) == 0);
        runs++;
        for (int i = 0; i < B; i++) early += lens[i] < maxnew;
        if (lens[where] != len_alone ||
            memcmp(toks + where * maxnew, tok_alone, sizeof tok_alone) != 0 ||
            memcmp(lps + where * maxnew, lp_alone, sizeof lp_alone) != 0)
            mismatches++;
    }
    fprintf(stderr, "    sequence of %d tokens; identical in %d of %d batches (%d sequences "
            "stopped early at EOS %d)\n", len_alone, runs - mismatches, runs, early, gp.eos_id);
    CHECK_EQ_INT(mismatches, 0);
    /* and a different sample id gives a different stream */
    uint64_t sid2 = 4;
    int tok2[16], len2;
    float lp2[16];
    CHECK(generate(&m, &gp, 1, pa, la, &pid, &sid2, tok2, lp2, &len2, err) == 0);
    CHECK(len2 != len_alone || memcmp(tok2, tok_alone, sizeof tok2) != 0);
    gpt_free(&m);
}

/* Generation splits its kernels (matmul and LM-head columns, attention rows, element-wise
 * ops) over the kernel threads: 1, 2 and 3 threads must give the same tokens and
 * log-probs bit for bit (a model and batch large enough for every parallel path). */
static void test_thread_invariance(void) {
    enum { V = 300, MAXT = 64, NEW = 40, NB = 8 };
    int before = ops_blas_threads();
    int prompts_buf[NB][12], plens[NB];
    const int *prompts[NB];
    uint64_t pids[NB], sids[NB];
    for (int b = 0; b < NB; b++) {
        plens[b] = 8 + b % 5;
        for (int t = 0; t < plens[b]; t++) prompts_buf[b][t] = (int)rng_below(&g_rng, V);
        prompts[b] = prompts_buf[b], pids[b] = (uint64_t)b, sids[b] = 0;
    }
    GenParams gp = {.max_new_tokens = NEW, .eos_id = -1, .temperature = 1.0f, .top_k = 0,
                    .top_p = 1.0f, .seed = 99};
    static int toks[4][NB * NEW], lens[4][NB];
    static float lps[4][NB * NEW];
    char err[ERRBUF_LEN];
    for (int th = 1; th <= 3; th++) {
        ops_blas_setup(th); /* before the model: the cache sizes its scratch per thread */
        GPT m;
        GPTConfig c = {.vocab_size = V, .max_seq_len = MAXT, .n_layer = 2, .n_head = 4,
                       .n_embd = 128, .head = GPT_HEAD_LM};
        gpt_init(&m, &c);
        gpt_init_weights(&m, 5);
        CHECK(generate(&m, &gp, NB, prompts, plens, pids, sids, toks[th], lps[th], lens[th], err) == 0);
        gpt_free(&m);
        if (th == 1) continue;
        CHECK_MSG(memcmp(lens[th], lens[1], sizeof lens[1]) == 0 &&
                      memcmp(toks[th], toks[1], sizeof toks[1]) == 0 &&
                      memcmp(lps[th], lps[1], sizeof lps[1]) == 0,
                  "generation with %d threads differs from 1 thread", th);
    }
    /* and with the weights read in place instead of from the packed copy (gen.pack_weights
     * = false): the trunk gives the same bits, the LM head sums each logit in another order
     * (16 lanes and a tree in place, input order in the panels), so the same tokens and
     * log-probs within 1e-5 */
    ops_blas_setup(2);
    GPT m;
    GPTConfig c = {.vocab_size = V, .max_seq_len = MAXT, .n_layer = 2, .n_head = 4,
                   .n_embd = 128, .head = GPT_HEAD_LM};
    gpt_init(&m, &c);
    gpt_init_weights(&m, 5);
    m.decode_packed = 0;
    CHECK(generate(&m, &gp, NB, prompts, plens, pids, sids, toks[0], lps[0], lens[0], err) == 0);
    gpt_free(&m);
    double gap = 0;
    for (size_t i = 0; i < sizeof lps[0] / sizeof lps[0][0]; i++)
        gap = fmax(gap, fabs((double)lps[0][i] - lps[1][i]));
    fprintf(stderr, "    max |logprob packed - in place| = %.2e\n", gap);
    CHECK_MSG(memcmp(lens[0], lens[1], sizeof lens[1]) == 0 &&
                  memcmp(toks[0], toks[1], sizeof toks[1]) == 0 && gap < 1e-5,
              "generation from the unpacked weights differs from the packed (log-prob gap %.2e)", gap);
    ops_blas_setup(before);
}

static void test_eos_and_padding(void) {
    int V = 30, maxnew = 12;
    GPT m;
    make_model(&m, V, 32, 13);
    int p0[] = {3, 4, 5};
    const int *prompts[] = {p0};
    int plen = 3, toks[12], len;
    float lps[12];
    uint64_t id = 0;
    char err[ERRBUF_LEN];
    GenParams gp = {.max_new_tokens = maxnew, .eos_id = -1, .temperature = 0.0f, .top_k = 0,
                    .top_p = 1.0f, .seed = 0};
    CHECK(generate(&m, &gp, 1, prompts, &plen, &id, &id, toks, lps, &len, err) == 0);
    CHECK_EQ_INT(len, maxnew);
    /* make the 4th greedy token the EOS: generation must stop there, EOS included */
    int eos = toks[3], first = 0;
    while (toks[first] != eos) first++;
    gp.eos_id = eos;
    int toks2[12], len2;
    float lps2[12];
    CHECK(generate(&m, &gp, 1, prompts, &plen, &id, &id, toks2, lps2, &len2, err) == 0);
    CHECK_EQ_INT(len2, first + 1);
    CHECK(memcmp(toks2, toks, (size_t)(first + 1) * sizeof(int)) == 0);
    CHECK(toks2[first] == eos);
    for (int t = first + 1; t < maxnew; t++) CHECK(toks2[t] == -1 && lps2[t] == 0.0f);
    gpt_free(&m);
}

static void test_bad_input(void) {
    int V = 20;
    GPT m;
    make_model(&m, V, 16, 1);
    int p0[] = {1, 2, 3}, bad[] = {1, 20}, neg[] = {-3};
    const int *prompts[] = {p0};
    int plen = 3, toks[16], len;
    float lps[16];
    uint64_t id = 0;
    char err[ERRBUF_LEN];
    GenParams gp = {.max_new_tokens = 8, .eos_id = -1, .temperature = 1.0f, .top_k = 0,
                    .top_p = 1.0f, .seed = 0};
    GenParams g2 = gp;
    g2.max_new_tokens = 14; /* 3 + 14 > 16 */
    CHECK(generate(&m, &g2, 1, prompts, &plen, &id, &id, toks, lps, &len, err) == -1);
    CHECK(strstr(err, "max_seq_len") != NULL);
    g2 = gp, g2.temperature = -1.0f;
    CHECK(generate(&m, &g2, 1, prompts, &plen, &id, &id, toks, lps, &len, err) == -1);
    g2 = gp, g2.top_p = 0.0f;
    CHECK(generate(&m, &g2, 1, prompts, &plen, &id, &id, toks, lps, &len, err) == -1);
    g2 = gp, g2.top_k = -2;
    CHECK(generate(&m, &g2, 1, prompts, &plen, &id, &id, toks, lps, &len, err) == -1);
    g2 = gp, g2.eos_id = V;
    CHECK(generate(&m, &g2, 1, prompts, &plen, &id, &id, toks, lps, &len, err) == -1);
    g2 = gp, g2.max_new_tokens = 0;
    CHECK(generate(&m, &g2, 1, prompts, &plen, &id, &id, toks, lps, &len, err) == -1);
    const int *pb[] = {bad};
    int lb = 2;
    CHECK(generate(&m, &gp, 1, pb, &lb, &id, &id, toks, lps, &len, err) == -1);
    CHECK(strstr(err, "token 20") != NULL);
    const int *pn[] = {neg};
    int ln = 1, l0 = 0;
    CHECK(generate(&m, &gp, 1, pn, &ln, &id, &id, toks, lps, &len, err) == -1);
    CHECK(generate(&m, &gp, 1, prompts, &l0, &id, &id, toks, lps, &len, err) == -1);
    CHECK(generate(&m, &gp, 0, prompts, &plen, &id, &id, toks, lps, &len, err) == -1);
    gpt_free(&m);
}

// ----------------------------------------------------------------------------
// scheduling: shared prefill and in-flight batching

/* A model of either family with weights large enough for peaked logits: GPT-2 as
 * make_model, or the llama-tiny preset (GQA, rotary) cut to vocabulary V and maxT. */
static void make_family_model(GPT *m, int llama, int V, int maxT, uint64_t seed) {
    if (!llama) {
        make_model(m, V, maxT, seed);
        return;
    }
    GPTConfig c;
    CHECK(gpt_config_preset("llama-tiny", &c) == 0);
    c.vocab_size = V, c.max_seq_len = maxT, c.n_layer = 2;
    gpt_init(m, &c);
    gpt_init_weights(m, seed);
    Rng r;
    rng_init(&r, seed + 1);
    for (size_t i = 0; i < m->num_params; i++) m->params[i] += 0.15f * rng_normal(&r);
}

/* Copying a prompt's cache rows and running its last token gives the logits of its own
 * prefill, and the two sequences decode identically after (rotary positions continue
 * after the copy for Llama); a mixed pass of a decode and a prefill changes neither. */
static void test_copy_slot(void) {
    for (int llama = 0; llama <= 1; llama++) {
        int V = 40;
        GPT m;
        make_family_model(&m, llama, V, 48, 21);
        int prompt[9], other[5] = {1, 2, 3, 4, 5};
        for (int t = 0; t < 9; t++) prompt[t] = (int)rng_below(&g_rng, (uint64_t)V);
        gpt_cache_reserve(&m, 4, 48);
        gpt_cache_begin(&m);
        GPTCacheRun r0 = {0, 0, 9, prompt};
        float *ref = xalloc_floats((size_t)V);
        memcpy(ref, gpt_cache_run(&m, 1, &r0), (size_t)V * sizeof(float));
        /* slot 3 copies 8 rows; its last prompt token rides in one pass with a prefill of
         * another prompt in slot 1 */
        gpt_cache_copy_slot(&m, 3, 0, 8);
        CHECK_EQ_INT(gpt_cache_len(&m, 3), 8);
        GPTCacheRun rs[2] = {{1, 0, 5, other}, {3, 8, 1, prompt + 8}};
        const float *lg = gpt_cache_run(&m, 2, rs);
        CHECK_MSG(memcmp(lg + V, ref, (size_t)V * sizeof(float)) == 0,
                  "%s: logits after a copied prompt differ from its own prefill",
                  llama ? "llama" : "gpt2");
        /* decode the same 6 tokens in slots 0 and 3: identical logits at every step */
        int same = 1;
        for (int step = 0; step < 6; step++) {
            int slots[2] = {0, 3}, toks[2] = {step + 7, step + 7};
            lg = gpt_cache_decode(&m, 2, slots, toks);
            same &= memcmp(lg, lg + V, (size_t)V * sizeof(float)) == 0;
        }
        CHECK_MSG(same, "%s: decode after a copied prompt differs", llama ? "llama" : "gpt2");
        CHECK_EQ_INT(gpt_cache_len(&m, 3), 15);
        free(ref);
        gpt_free(&m);
    }
}

// ----------------------------------------------------------------------------
// decode copies: Llama packed, bf16

/* llama-tiny with a variant: 0 plain (rotary, GQA, tied), 1 qk_norm, 2 qkv_bias, 3 untied
 * LM head. Weights perturbed as make_family_model's. */
static void make_llama_variant(GPT *m, int variant, int V, int maxT, uint64_t seed) {
    GPTConfig c;
    CHECK(gpt_config_preset("llama-tiny", &c) == 0);
    c.vocab_size = V, c.max_seq_len = maxT, c.n_layer = 2;
    c.qk_norm = variant == 1, c.qkv_bias = variant == 2, c.tie_embeddings = variant != 3;
    gpt_init(m, &c);
    gpt_init_weights(m, seed);
    Rng r;
    rng_init(&r, seed + 1);
    for (size_t i = 0; i < m->num_params; i++) m->params[i] += 0.15f * rng_normal(&r);
}

/* A model of family `llama` (0: GPT-2 with n_embd 32, every linear a multiple of 16
 * columns; 1..4: llama-tiny variant llama - 1). */
static void make_copy_model(GPT *m, int llama, int V, int maxT, uint64_t seed) {
    if (llama) {
        make_llama_variant(m, llama - 1, V, maxT, seed);
        return;
    }
    GPTConfig c = {.vocab_size = V, .max_seq_len = maxT, .n_layer = 2, .n_head = 2,
                   .n_embd = 32, .head = GPT_HEAD_LM};
    gpt_init(m, &c);
    gpt_init_weights(m, seed);
    Rng r;
    rng_init(&r, seed + 1);
    for (size_t i = 0; i < m->num_params; i++) m->params[i] += 0.15f * rng_normal(&r);
}

static const char *copy_model_name(int k) {
    static const char *names[] = {"gpt2", "llama", "llama qk_norm", "llama qkv_bias",
                                  "llama untied"};
    return names[k];
}

/* gpt_cache_score: the reward server's scoring through the cache */

/* Three sequences of 12 tokens, the first two sharing a 7-token prompt: log-probs of
 * tokens 7..11 and the score at the last token. gpt_cache_score after one prefill of the
 * shared prompt (copied to the second slot) gives bit for bit what each sequence's own
 * cache pass gives (gpt_cache_run's logits through logprob_forward; a score model's head
 * on the same rows), and so does score_shared_prompts (score.h) on them in another order;
 * the training path's figures within fp32 rounding; for both families, the packed copy
 * and in place, at a temperature. */
static void test_cache_score(void) {
    enum { N = 3, T = 12, P = 7 };
    int V = 40;
    for (int k = 0; k < 5; k++)
        for (int packed = 0; packed <= 1; packed++) {
            GPT m, sm; /* a policy (LM head) and a score model of the same family */
            make_copy_model(&m, k, V, 16, 31 + (uint64_t)k);
            make_copy_model(&sm, k, V, 16, 41 + (uint64_t)k);
            GPTConfig sc = sm.config;
            gpt_free(&sm);
            sc.head = GPT_HEAD_SCORE;
            gpt_init(&sm, &sc);
            gpt_init_weights(&sm, 43);
            for (size_t i = 0; i < sm.num_params; i++) sm.params[i] += 0.15f * rng_normal(&g_rng);
            m.temperature = 0.7f;
            m.decode_packed = sm.decode_packed = packed;
            int seq[N][T], tg[N][T];
            for (int b = 0; b < N; b++)
                for (int t = 0; t < T; t++)
                    seq[b][t] = b == 1 && t < P ? seq[0][t] : (int)rng_below(&g_rng, (uint64_t)V);
            /* own passes: sequence b's prefix 0..t in slot 0, logits of its last row */
            float want[N][T], got[N][T], wscore[N], gscore[N];
            for (int b = 0; b < N; b++) {
                gpt_cache_reserve(&m, N, T);
                for (int t = P - 1; t < T - 1; t++) {
                    gpt_cache_begin(&m);
                    GPTCacheRun r = {0, 0, t + 1, seq[b]};
                    float ent, lse;
                    logprob_forward(&want[b][t], &ent, &lse, gpt_cache_run(&m, 1, &r),
                                    &seq[b][t + 1], m.temperature, 1, V);
                }
                for (int t = 0; t < T; t++) tg[b][t] = t >= P - 1 && t + 1 < T ? seq[b][t + 1] : -1;
            }
            /* shared: the prompt's first P - 1 tokens once in slot 0, copied to slot 1; the
             * third sequence from position 0 in slot 2 */
            gpt_cache_begin(&m);
            GPTCacheRun pre = {0, 0, P - 1, seq[0]};
            gpt_cache_score(&m, 1, &pre, NULL, NULL, NULL);
            gpt_cache_copy_slot(&m, 1, 0, P - 1);
            GPTCacheRun runs[N] = {{0, P - 1, T - P + 1, seq[0] + P - 1},
                                   {1, P - 1, T - P + 1, seq[1] + P - 1},
                                   {2, 0, T, seq[2]}};
            const int *tgs[N] = {tg[0] + P - 1, tg[1] + P - 1, tg[2]};
            float *lps[N] = {got[0] + P - 1, got[1] + P - 1, got[2]};
            gpt_cache_score(&m, N, runs, tgs, lps, NULL);
            int same = 1;
            for (int b = 0; b < N; b++)
                for (int t = P - 1; t < T - 1; t++)
                    same &= memcmp(&got[b][t], &want[b][t], sizeof(float)) == 0;
            CHECK_MSG(same, "%s packed %d: shared-prompt log-probs differ from own passes",
                      copy_model_name(k), packed);
            /* score_shared_prompts on the same three in another order (the shared prompt's
             * first sequence now in slot 1): the same bits */
            {
                const int *sq[N] = {seq[2], seq[0], seq[1]}, *tq[N] = {tg[2], tg[0], tg[1]};
                float lq[N][T];
                float *lo[N] = {lq[0], lq[1], lq[2]};
                int lens[N] = {T, T, T}, pl[N] = {P, P, P}, order[N] = {2, 0, 1};
                score_shared_prompts(&m, N, sq, lens, pl, tq, lo, NULL);
                int same2 = 1;
                for (int i = 0; i < N; i++)
                    for (int t = P - 1; t < T - 1; t++)
                        same2 &= memcmp(&lq[i][t], &want[order[i]][t], sizeof(float)) == 0;
                CHECK_MSG(same2, "%s packed %d: score_shared_prompts differs from own passes",
                          copy_model_name(k), packed);
                CHECK(score_cache_rows(N, sq, lens, pl) == 3L * T - (P - 1));
            }
            /* the training path */
            gpt_reserve(&m, N, T);
            gpt_forward(&m, &seq[0][0], N, T);
            gpt_lm_forward(&m, &tg[0][0], N, T);
            double worst = 0;
            for (int b = 0; b < N; b++)
                for (int t = P - 1; t < T - 1; t++)
                    worst = fmax(worst, fabs((double)got[b][t] - m.logprobs[b * T + t]));
            CHECK_MSG(worst < 2e-5, "%s: cache log-probs vs gpt_lm_forward %.2e",
                      copy_model_name(k), worst);
            /* scores: own full pass per sequence vs the shared prompt, then the training path */
            gpt_cache_reserve(&sm, N, T);
            for (int b = 0; b < N; b++) {
                gpt_cache_begin(&sm);
                GPTCacheRun r = {0, 0, T, seq[b]};
                gpt_cache_score(&sm, 1, &r, NULL, NULL, &wscore[b]);
            }
            gpt_cache_begin(&sm);
            gpt_cache_score(&sm, 1, &pre, NULL, NULL, NULL);
            gpt_cache_copy_slot(&sm, 1, 0, P - 1);
            gpt_cache_score(&sm, N, runs, NULL, NULL, gscore);
            CHECK_MSG(memcmp(gscore, wscore, sizeof gscore) == 0,
                      "%s packed %d: shared-prompt scores differ", copy_model_name(k), packed);
            int lens[N] = {T, T, T};
            gpt_reserve(&sm, N, T);
            gpt_forward(&sm, &seq[0][0], N, T);
            gpt_score_forward(&sm, lens, N, T);
            for (int b = 0; b < N; b++)
                CHECK_MSG(fabs((double)gscore[b] - sm.scores[b]) < 1e-5 * fmax(1.0, fabs(sm.scores[b])),
                          "%s: cache score %g vs gpt_score_forward %g", copy_model_name(k),
                          (double)gscore[b], (double)sm.scores[b]);
            gpt_free(&m);
            gpt_free(&sm);
        }
}

/* Teacher-forced cache logits: toks[0..T) through one slot (a 3-token prefill, then one
 * decode step per token); logits (T - 2, V) of positions 2..T-1. */
static void cache_logits(GPT *m, const int *toks, int T, float *logits) {
    int V = m->config.vocab_size;
    gpt_cache_reserve(m, 1, T);
    const int *pp[1] = {toks};
    int pl = 3, slot = 0;
    memcpy(logits, gpt_cache_prefill(m, 1, pp, &pl), (size_t)V * sizeof(float));
    for (int t = 3; t < T; t++)
        memcpy(logits + (size_t)(t - 2) * V, gpt_cache_decode(m, 1, &slot, &toks[t]),
               (size_t)V * sizeof(float));
}

/* max over rows of max |log_softmax(a) - log_softmax(b)|, over the tokens whose
 * probability under b is at least pmin (0: every token) */
static double logprob_gap_min(const float *a, const float *b, int rows, int V, double pmin) {
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        const float *x = a + (size_t)r * V, *y = b + (size_t)r * V;
        double mx = -INFINITY, my = -INFINITY, sx = 0, sy = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, x[v]), my = fmax(my, y[v]);
        for (int v = 0; v < V; v++) sx += exp(x[v] - mx), sy += exp(y[v] - my);
        for (int v = 0; v < V; v++) {
            double ly = y[v] - my - log(sy);
            if (exp(ly) >= pmin) worst = fmax(worst, fabs((x[v] - mx - log(sx)) - ly));
        }
    }
    return worst;
}

static double logprob_gap(const float *a, const float *b, int rows, int V) {
    return logprob_gap_min(a, b, rows, V, 0);
}

/* Round every weight the bf16 decode copy holds (the four linears of each block, and
 * the LM head) to bf16 in place. */
static void round_decode_weights(GPT *m) {
    const GPTConfig *c = &m->config;
    int C = c->n_embd, llama = c->family == GPT_FAMILY_LLAMA;
    /* q/k/v and gate/up are contiguous, so each weight is one (in x out) block */
    int F = llama ? c->d_ff : 4 * C, H = llama ? (c->head_dim ? c->head_dim : C / c->n_head) : 0;
    int QKVW = llama ? (c->n_head + 2 * c->n_kv_head) * H : 3 * C, QW = llama ? c->n_head * H : C;
    for (int l = 0; l < c->n_layer; l++) {
        GPTBlock *w = &m->w.h[l];
        float *ws[4];
        size_t n[4] = {(size_t)C * QKVW, (size_t)QW * C, (size_t)C * F * (llama ? 2 : 1),
                       (size_t)F * C};
        if (llama) ws[0] = w->qkv_w, ws[1] = w->o_w, ws[2] = w->gate_up_w, ws[3] = w->down_w;
        else ws[0] = w->attn_w, ws[1] = w->attn_proj_w, ws[2] = w->fc_w, ws[3] = w->fc_proj_w;
        for (int i = 0; i < 4; i++)
            for (size_t j = 0; j < n[i]; j++) ws[i][j] = bf16_to_f32(bf16_from_f32(ws[i][j]));
    }
    size_t nh = (size_t)c->vocab_size * C;
    for (size_t j = 0; j < nh; j++) m->w.lm_head[j] = bf16_to_f32(bf16_from_f32(m->w.lm_head[j]));
}

/* Llama decodes from a panel-major copy (the panel kernel: each output summed in order
 * over its inputs) or in place (the (out, in) row kernel: 16 lanes, then a tree). The
 * two orders give the same log-probs to within 1e-4 (fp32 rounding; measured gaps are
 * printed), for every variant. */
static void test_llama_packed_matches_inplace(void) {
    enum { V = 64, T = 40 };
    int toks[T];
    for (int t = 0; t < T; t++) toks[t] = (int)rng_below(&g_rng, V);
    static float a[T * V], b[T * V];
    for (int var = 0; var < 4; var++) {
        GPT m;
        make_llama_variant(&m, var, V, T, 40 + (uint64_t)var);
        cache_logits(&m, toks, T, a);
        gpt_free(&m);
        make_llama_variant(&m, var, V, T, 40 + (uint64_t)var);
        m.decode_packed = 0;
        cache_logits(&m, toks, T, b);
        gpt_free(&m);
        double gap = logprob_gap(a, b, T - 2, V);
        fprintf(stderr, "    %s: max |logprob packed - in place| = %.2e\n", copy_model_name(var + 1), gap);
        CHECK_MSG(gap < 1e-4, "%s: packed and in-place decode differ by %.2e", copy_model_name(var + 1), gap);
    }
}

/* The bf16 decode copy gives, bit for bit, the fp32 copy's results on the rounded weights
 * (the same kernels, widened exactly), and log-probs within 0.2 of the fp32 weights' for
 * every token a sampler could plausibly draw (probability >= 1e-3), for both families.
 * bf16 keeps 8 bits of mantissa (a relative error of at most 2^-9 per weight); the error
 * of a logit grows with its size, and these models are deliberately peaked (weights
 * N(0, 0.15^2) added to the init): measured 0.018 (GPT-2) to 0.10 (Llama qkv_bias).
 * and every Llama variant. The tied embedding is rounded in both models (the bf16 LM head
 * rounds it; the fp32 embedding lookup would not). */
static void test_bf16_decode(void) {
    enum { V = 64, T = 40 };
    int toks[T];
    for (int t = 0; t < T; t++) toks[t] = (int)rng_below(&g_rng, V);
    static float f32[T * V], bf[T * V], rounded[T * V];
    for (int k = 0; k < 5; k++) {
        GPT m;
        uint64_t seed = 50 + (uint64_t)k;
        make_copy_model(&m, k, V, T, seed);
        cache_logits(&m, toks, T, f32);
        gpt_free(&m);
        make_copy_model(&m, k, V, T, seed);
        m.decode_bf16 = 1;
        cache_logits(&m, toks, T, bf);
        double gap = logprob_gap_min(bf, f32, T - 2, V, 1e-3), all = logprob_gap(bf, f32, T - 2, V);
        fprintf(stderr, "    %s: max |logprob bf16 - fp32| = %.2e (tokens with p >= 1e-3), %.2e (all)\n",
                copy_model_name(k), gap, all);
        CHECK_MSG(gap < 0.2, "%s: bf16 decode log-probs %.2e from fp32", copy_model_name(k), gap);
        CHECK_MSG(gap > 0, "%s: bf16 decode equals fp32: the copy is not bf16", copy_model_name(k));
        /* now both models with the rounded weights: the bf16 copy (round again: a no-op)
         * and the fp32 copy agree bit for bit */
        round_decode_weights(&m);
        m.weights_version = -1;
        cache_logits(&m, toks, T, bf);
        gpt_free(&m);
        make_copy_model(&m, k, V, T, seed);
        round_decode_weights(&m);
        cache_logits(&m, toks, T, rounded);
        gpt_free(&m);
        CHECK_MSG(memcmp(bf, rounded, sizeof bf) == 0,
                  "%s: bf16 decode differs from fp32 decode of the rounded weights",
                  copy_model_name(k));
    }
}

/* gen.bf16_dot: the AVX512-BF16 dot products (the inputs of every linear and the LM head
 * rounded to bf16 too) give log-probs within 0.2 of the fp32 weights' for tokens with
 * probability >= 1e-3 (the bound of the widening kernels above; printed beside theirs),
 * and not the widening kernels' bits. */
static void test_bf16_dot_decode(void) {
    if (!ops_bf16_dot_supported()) {
        TEST_SKIP("no AVX512-BF16 here: the dot-product decode runs in the x86-64-v4 copy "
                  "of the library on a CPU that has it");
        return;
    }
    enum { V = 64, T = 40 };
    int toks[T];
    for (int t = 0; t < T; t++) toks[t] = (int)rng_below(&g_rng, V);
    static float f32[T * V], wid[T * V], dot[T * V];
    for (int k = 0; k < 5; k++) {
        float *out[3] = {f32, wid, dot};
        for (int prec = 0; prec < 3; prec++) {
            GPT m;
            make_copy_model(&m, k, V, T, 70 + (uint64_t)k);
            m.decode_bf16 = prec;
            cache_logits(&m, toks, T, out[prec]);
            gpt_free(&m);
        }
        double gd = logprob_gap_min(dot, f32, T - 2, V, 1e-3);
        double gw = logprob_gap_min(wid, f32, T - 2, V, 1e-3);
        fprintf(stderr, "    %s: max |logprob - fp32| (p >= 1e-3): bf16 dot %.2e, widened %.2e\n",
                copy_model_name(k), gd, gw);
        CHECK_MSG(gd < 0.2, "%s: bf16 dot decode log-probs %.2e from fp32", copy_model_name(k), gd);
        CHECK_MSG(memcmp(dot, wid, sizeof dot) != 0,
                  "%s: the dot products gave the widening kernels' bits", copy_model_name(k));
    }
}

/* Long responses: the tiny presets (GPT-2 and llama-tiny) with max_seq_len raised to
 * 1,280 (as model.max_seq_len would) generate 1,260 tokens after 20-token prompts,
 * three sequences at once with gen.weights f32 and bf16 (and bf16 dot products where the
 * CPU has them); each matches, token and log-prob bit for bit, the same sequence
 * generated alone. */
static void test_long_responses(void) {
    enum { MAXT = 1280, P = 20, NEW = MAXT - P, NB = 3 };
    static int prompts_buf[NB][P], toks[NB * NEW], lens[NB], tok1[NEW];
    static float lps[NB * NEW], lp1[NEW];
    const int *prompts[NB];
    int plens[NB];
    uint64_t pids[NB], sids[NB];
    char err[ERRBUF_LEN];
    for (int fam = 0; fam < 2; fam++)
        for (int bf16 = 0; bf16 <= (ops_bf16_dot_supported() ? 2 : 1); bf16++) {
            GPTConfig c;
            CHECK(gpt_config_preset(fam ? "llama-tiny" : "tiny", &c) == 0);
            c.max_seq_len = MAXT;
            GPT m;
            gpt_init(&m, &c);
            gpt_init_weights(&m, 60 + (uint64_t)fam);
            m.decode_bf16 = bf16;
            for (int b = 0; b < NB; b++) {
                for (int t = 0; t < P; t++) prompts_buf[b][t] = (int)rng_below(&g_rng, (uint64_t)c.vocab_size);
                prompts[b] = prompts_buf[b], plens[b] = P, pids[b] = 10 + (uint64_t)b, sids[b] = 1;
            }
            GenParams gp = {.max_new_tokens = NEW, .eos_id = -1, .temperature = 1.0f, .top_k = 0,
                            .top_p = 1.0f, .seed = 8};
            CHECK(generate(&m, &gp, NB, prompts, plens, pids, sids, toks, lps, lens, err) == 0);
            int bad = 0;
            for (int b = 0; b < NB; b++) {
                int len1;
                CHECK(generate(&m, &gp, 1, &prompts[b], &plens[b], &pids[b], &sids[b], tok1, lp1,
                               &len1, err) == 0);
                bad += lens[b] != NEW || len1 != NEW ||
                       memcmp(tok1, toks + (size_t)b * NEW, sizeof tok1) != 0 ||
                       memcmp(lp1, lps + (size_t)b * NEW, sizeof lp1) != 0;
            }
            CHECK_MSG(bad == 0, "%s %s: %d of %d long responses differ from the unbatched path",
                      fam ? "llama-tiny" : "tiny", bf16 == 2 ? "bf16 dot" : bf16 ? "bf16" : "f32",
                      bad, NB);
            gpt_free(&m);
        }
}

/* bf16_from_f32 rounds to nearest, ties to even, and keeps NaN and infinities */
static void test_bf16_rounding(void) {
    CHECK(bf16_from_f32(1.0f) == 0x3f80);
    CHECK(bf16_to_f32(0x3f80) == 1.0f);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1.0 */
    CHECK(bf16_from_f32(1.0f + 0x1p-8f) == 0x3f80);
    /* 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up */
    CHECK(bf16_from_f32(1.0f + 3 * 0x1p-8f) == 0x3f82);
    CHECK(bf16_from_f32(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81); /* above the tie: up */
    CHECK(bf16_from_f32(-2.0f) == 0xc000);
    CHECK(bf16_from_f32(INFINITY) == 0x7f80);
    CHECK(isnan(bf16_to_f32(bf16_from_f32(NAN))));
    /* the largest float rounds to infinity (past bf16's largest finite value) */
    CHECK(bf16_from_f32(3.4028235e38f) == 0x7f80);
}

enum { SC_N = 14, SC_NEW = 20, SC_MAXP = 11 };

typedef struct {
    int toks[SC_N * SC_NEW], lens[SC_N];
    float lps[SC_N * SC_NEW];
} SchedOut;

/* Prompts for SC_N sequences: groups of 1..4 identical prompts of different lengths,
 * interleaved when `mix` (a group's members are not consecutive then). */
static void sched_prompts(int V, int mix, int buf[SC_N][SC_MAXP], const int **prompts,
                          int *plens, uint64_t *pids, uint64_t *sids, int *caps) {
    int g = 0, b = 0;
    while (b < SC_N) {
        int k = 1 + g % 4, len = 1 + (int)rng_below(&g_rng, SC_MAXP);
        int first = b;
        for (int j = 0; j < k && b < SC_N; j++, b++) {
            plens[b] = len, pids[b] = (uint64_t)g, sids[b] = (uint64_t)j;
            for (int t = 0; t < len; t++)
                buf[b][t] = b == first ? (int)rng_below(&g_rng, (uint64_t)V) : buf[first][t];
            caps[b] = 1 + (int)rng_below(&g_rng, SC_NEW);
        }
        g++;
    }
    for (int b = 0; b < SC_N; b++) prompts[b] = buf[b];
    if (!mix) return;
    /* a fixed shuffle of the sequences (with their ids and caps) */
    for (int b = SC_N - 1; b > 0; b--) {
        int a = (int)rng_below(&g_rng, (uint64_t)b + 1);
        const int *tp = prompts[a];
        prompts[a] = prompts[b], prompts[b] = tp;
        int tl = plens[a]; plens[a] = plens[b], plens[b] = tl;
        uint64_t ti = pids[a]; pids[a] = pids[b], pids[b] = ti;
        ti = sids[a]; sids[a] = sids[b], sids[b] = ti;
        int tc = caps[a]; caps[a] = caps[b], caps[b] = tc;
    }
}

/* Every sequence alone (batch 1, nothing to share), then every schedule against it. */
static void sched_check_family(int llama, int threads, int mix) {
    int before = ops_blas_threads();
    ops_blas_setup(threads);
    int V = 40;
    GPT m;
    make_family_model(&m, llama, V, SC_MAXP + SC_NEW, 31);
    static int buf[SC_N][SC_MAXP];
    const int *prompts[SC_N];
    int plens[SC_N], caps[SC_N];
    uint64_t pids[SC_N], sids[SC_N];
    sched_prompts(V, mix, buf, prompts, plens, pids, sids, caps);
    GenParams gp = {.max_new_tokens = SC_NEW, .eos_id = 7, .temperature = 1.0f, .top_k = 0,
                    .top_p = 1.0f, .seed = 4242};
    char err[ERRBUF_LEN];
    static SchedOut ref, got;
    int early = 0;
    for (int b = 0; b < SC_N; b++) {
        GenSchedule one = {.batch = 1, .inflight = 0, .share_prefill = 0, .max_new = &caps[b]};
        int t[SC_NEW];
        float l[SC_NEW];
        CHECK(generate_scheduled(&m, &gp, &one, 1, &prompts[b], &plens[b], &pids[b], &sids[b],
                                 t, l, &ref.lens[b], err) == 0);
        memcpy(ref.toks + b * SC_NEW, t, sizeof t);
        memcpy(ref.lps + b * SC_NEW, l, sizeof l);
        early += ref.lens[b] < caps[b];
    }
    int batches[] = {1, 3, 8, 0}, bad = 0, runs = 0;
    int64_t rows_shared = 0, rows_unshared = 0;
    for (int bi = 0; bi < 4; bi++)
        for (int inflight = 0; inflight <= 1; inflight++)
            for (int share = 0; share <= 1; share++) {
                GenSchedule s = {batches[bi], inflight, share, caps};
                CHECK(generate_scheduled(&m, &gp, &s, SC_N, prompts, plens, pids, sids,
                                         got.toks, got.lps, got.lens, err) == 0);
                runs++;
                if (memcmp(&got, &ref, sizeof ref) != 0) {
                    bad++;
                    fprintf(stderr, "    differs: batch %d, inflight %d, share %d\n",
                            batches[bi], inflight, share);
                }
                if (batches[bi] == 0 && share) rows_shared = gpt_cache_rows(&m);
                if (batches[bi] == 0 && !share) rows_unshared = gpt_cache_rows(&m);
            }
    /* all at once: the groups' prompts run once, each decode row once */
    int64_t expect_shared = 0, expect_unshared = 0;
    for (int b = 0; b < SC_N; b++) {
        int lead = 1;
        for (int a = 0; a < b; a++)
            lead &= !(plens[a] == plens[b] &&
                      memcmp(prompts[a], prompts[b], (size_t)plens[b] * sizeof(int)) == 0);
        expect_shared += (lead ? plens[b] : 0) + ref.lens[b] - 1;
        expect_unshared += plens[b] + ref.lens[b] - 1;
    }
    fprintf(stderr, "    %s, %d thread(s), %s groups: %d of %d schedules identical to alone "
            "(%d sequences ended at EOS); rows run %lld shared vs %lld not\n",
            llama ? "llama" : "gpt2", threads, mix ? "interleaved" : "consecutive", runs - bad,
            runs, early, (long long)rows_shared, (long long)rows_unshared);
    CHECK_EQ_INT(bad, 0);
    CHECK(rows_shared == expect_shared);
    CHECK(rows_unshared == expect_unshared);
    CHECK(rows_shared < rows_unshared);
    gpt_free(&m);
    ops_blas_setup(before);
}

static void test_schedules_bit_identical(void) {
    for (int llama = 0; llama <= 1; llama++)
        for (int threads = 1; threads <= 2; threads++)
            for (int mix = 0; mix <= 1; mix++) sched_check_family(llama, threads, mix);
}

static void test_schedule_bad_input(void) {
    GPT m;
    make_model(&m, 20, 16, 1);
    int p0[] = {1, 2, 3}, plen = 3, toks[8], len, cap = 9;
    const int *prompts[] = {p0};
    float lps[8];
    uint64_t id = 0;
    char err[ERRBUF_LEN];
    GenParams gp = {.max_new_tokens = 8, .eos_id = -1, .temperature = 1.0f, .top_k = 0,
                    .top_p = 1.0f, .seed = 0};
    GenSchedule s = {.batch = -1, .inflight = 1, .share_prefill = 1, .max_new = NULL};
    CHECK(generate_scheduled(&m, &gp, &s, 1, prompts, &plen, &id, &id, toks, lps, &len, err) == -1);
    CHECK(strstr(err, "batch") != NULL);
    s.batch = 0, s.max_new = &cap;
    CHECK(generate_scheduled(&m, &gp, &s, 1, prompts, &plen, &id, &id, toks, lps, &len, err) == -1);
    CHECK(strstr(err, "max_new[0] = 9") != NULL);
    cap = 0;
    CHECK(generate_scheduled(&m, &gp, &s, 1, prompts, &plen, &id, &id, toks, lps, &len, err) == -1);
    cap = 2;
    CHECK(generate_scheduled(&m, &gp, &s, 1, prompts, &plen, &id, &id, toks, lps, &len, err) == 0);
    CHECK_EQ_INT(len, 2);
    gpt_free(&m);
}

// ----------------------------------------------------------------------------
// sampling semantics on hand-made logits

static const float *g_ref_logits;
static float g_ref_inv_t;
static int ref_cmp(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    float zi = g_ref_logits[i] * g_ref_inv_t, zj = g_ref_logits[j] * g_ref_inv_t;
    if (zi != zj) return zi > zj ? -1 : 1;
    return i < j ? -1 : 1;
}

/* brute force: order all tokens by (prob desc, id asc), apply top-k then top-p, draw
 * with the given uniform */
static int reference_sample(const float *logits, int V, const SampleParams *p, double u) {
    float inv_t = 1.0f / p->temperature;
    double *w = xcalloc((size_t)V, sizeof(double));
    int *ord = xcalloc((size_t)V, sizeof(int));
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = fmaxf(mx, logits[i] * inv_t);
    for (int i = 0; i < V; i++) {
        w[i] = expf(logits[i] * inv_t - mx);
        ord[i] = i;
    }
    g_ref_logits = logits;
    g_ref_inv_t = inv_t;
    qsort(ord, (size_t)V, sizeof(int), ref_cmp);
    int k = p->top_k > 0 && p->top_k < V ? p->top_k : V;
    double mass = 0;
    for (int j = 0; j < k; j++) mass += w[ord[j]];
    int kept = k;
    if (p->top_p < 1.0f) {
        double cum = 0;
        for (int j = 0; j < k; j++) {
            cum += w[ord[j]];
            if (cum >= (double)p->top_p * mass) {
                kept = j + 1;
                break;
            }
        }
    }
    double km = 0;
    for (int j = 0; j < kept; j++) km += w[ord[j]];
    double target = u * km, cum = 0;
    int tok = ord[0];
    for (int j = 0; j < kept; j++) {
        cum += w[ord[j]];
        tok = ord[j];
        if (cum > target) break;
    }
    free(w);
    free(ord);
    return tok;
}

/* The unfiltered draw (top-k 0, top-p 1, the RL default) walks the vocabulary in id
 * order: brute force in double with exp(), against sample_token's block-skipping walk of
 * vectorised weights, at a vocabulary of many blocks and an odd tail; with masked (-inf)
 * logits, which must never be drawn; and with one logit far above the rest. */
static void test_sample_unfiltered(void) {
    int V = 1000 + 37;
    Sampler s;
    sampler_init(&s, V);
    float *logits = xalloc_floats((size_t)V);
    double *w = xcalloc((size_t)V, sizeof(double));
    float temps[3] = {1.0f, 0.6f, 1.7f};
    int mismatches = 0, total = 0, masked_drawn = 0;
    for (int trial = 0; trial < 600; trial++) {
        float t = temps[trial % 3];
        for (int i = 0; i < V; i++) logits[i] = 3.0f * rng_normal(&g_rng);
        if (trial % 5 == 1)
            for (int i = 0; i < V; i += 2) logits[i] = -INFINITY;
        if (trial % 5 == 2) logits[trial % V] = 60.0f;
        Rng r;
        rng_init_keyed(&r, 4, 7, (uint64_t)trial);
        Rng copy = r;
        double u = rng_uniform_double(&copy);
        float lp;
        int tok = sample_token(&s, logits, &(SampleParams){t, 0, 1.0f}, &r, &lp);
        float inv_t = 1.0f / t, mx = -INFINITY;
        for (int i = 0; i < V; i++) mx = fmaxf(mx, logits[i] * inv_t);
        double sum = 0.0;
        for (int i = 0; i < V; i++) sum += w[i] = exp((double)(logits[i] * inv_t - mx));
        double cum = 0.0;
        int ref = -1;
        for (int i = 0; i < V && ref < 0; i++)
            if ((cum += w[i]) > u * sum) ref = i;
        mismatches += tok != ref;
        masked_drawn += logits[tok] == -INFINITY;
        total++;
        CHECK(memcmp(&r, &copy, sizeof r) == 0);
        float lp2, ent, lse;
        logprob_forward(&lp2, &ent, &lse, logits, &tok, t, 1, V);
        CHECK(lp == lp2);
    }
    fprintf(stderr, "    unfiltered draw vs brute force in double: %d of %d differ\n", mismatches,
            total);
    CHECK_EQ_INT(mismatches, 0);
    CHECK_EQ_INT(masked_drawn, 0);
    free(logits);
    free(w);
    sampler_free(&s);
}

static void test_sample_against_reference(void) {
    int V = 300;
    Sampler s;
    sampler_init(&s, V);
    float *logits = xalloc_floats((size_t)V);
    SampleParams cases[] = {{1.0f, 0, 0.9f}, {0.7f, 20, 1.0f}, {1.3f, 50, 0.5f},
                            {1.0f, 0, 0.3f}, {0.5f, 1, 1.0f},  {2.0f, 299, 0.99f}};
    int mismatches = 0, total = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (int trial = 0; trial < 40; trial++) {
            for (int i = 0; i < V; i++) logits[i] = 2.0f * rng_normal(&g_rng);
            if (trial % 4 == 0) /* ties */
                for (int i = 0; i < V; i += 3) logits[i] = 1.5f;
            Rng r;
            rng_init_keyed(&r, 9, ci, (uint64_t)trial);
            Rng copy = r;
            double u = rng_uniform_double(&copy);
            float lp;
            int tok = sample_token(&s, logits, &cases[ci], &r, &lp);
            int ref = reference_sample(logits, V, &cases[ci], u);
            mismatches += tok != ref;
            total++;
            /* exactly one draw */
            CHECK(memcmp(&r, &copy, sizeof r) == 0);
            /* the log-prob is the full distribution's, bit-identical to logprob_forward */
            float lp2, ent, lse;
            logprob_forward(&lp2, &ent, &lse, logits, &tok, cases[ci].temperature, 1, V);
            CHECK(lp == lp2);
        }
    }
    fprintf(stderr, "    sampler vs brute-force reference: %d of %d draws differ\n", mismatches, total);
    CHECK_EQ_INT(mismatches, 0);
    free(logits);
    sampler_free(&s);
}

static void test_greedy_and_topk1(void) {
    int V = 100;
    Sampler s;
    sampler_init(&s, V);
    float logits[100];
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < V; i++) logits[i] = rng_normal(&g_rng);
        int am = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[am]) am = i;
        Rng r, before;
        rng_init(&r, (uint64_t)trial);
        before = r;
        float lp;
        SampleParams greedy = {0.0f, 0, 1.0f}, k1 = {0.5f + 0.1f * (float)(trial % 10), 1, 1.0f};
        CHECK_EQ_INT(sample_token(&s, logits, &greedy, &r, &lp), am);
        CHECK(memcmp(&r, &before, sizeof r) == 0); /* greedy draws nothing */
        float lp1, ent, lse;
        logprob_forward(&lp1, &ent, &lse, logits, &am, 1.0f, 1, V);
        CHECK(lp == lp1);
        CHECK_EQ_INT(sample_token(&s, logits, &k1, &r, &lp), am);
    }
    /* ties: lowest id wins */
    for (int i = 0; i < V; i++) logits[i] = 0.0f;
    logits[10] = logits[60] = 3.0f;
    Rng r;
    rng_init(&r, 1);
    float lp;
    SampleParams greedy = {0.0f, 0, 1.0f}, k1 = {1.0f, 1, 1.0f};
    CHECK_EQ_INT(sample_token(&s, logits, &greedy, &r, &lp), 10);
    CHECK_EQ_INT(sample_token(&s, logits, &k1, &r, &lp), 10);
    sampler_free(&s);
}

/* Empirical frequencies against the renormalised kept distribution (4.5 sigma bound). */
static void freq_check(const float *logits, int V, SampleParams p, const double *expect,
                       const char *label) {
    Sampler s;
    sampler_init(&s, V);
    int N = 100000, *counts = xcalloc((size_t)V, sizeof(int));
    Rng r;
    rng_init(&r, 2024);
    float lp;
    for (int i = 0; i < N; i++) counts[sample_token(&s, logits, &p, &r, &lp)]++;
    double worst = 0;
    for (int i = 0; i < V; i++) {
        double f = (double)counts[i] / N, sd = sqrt(expect[i] * (1 - expect[i]) / N);
        if (expect[i] == 0.0) CHECK_MSG(counts[i] == 0, "%s: token %d drawn %d times, outside the kept set", label, i, counts[i]);
        else CHECK_MSG(fabs(f - expect[i]) <= 4.5 * sd, "%s: token %d freq %.4f expected %.4f", label, i, f, expect[i]);
        worst = fmax(worst, fabs(f - expect[i]));
    }
    fprintf(stderr, "    %-28s max |freq - p| = %.4f\n", label, worst);
    free(counts);
    sampler_free(&s);
}

static void test_frequencies(void) {
    /* probabilities 0.4 0.25 0.15 0.1 0.06 0.04 */
    double p[6] = {0.4, 0.25, 0.15, 0.1, 0.06, 0.04};
    float logits[6];
    for (int i = 0; i < 6; i++) logits[i] = (float)log(p[i]) + 1.0f;
    double e_all[6], e[6];
    for (int i = 0; i < 6; i++) e_all[i] = p[i];
    freq_check(logits, 6, (SampleParams){1.0f, 0, 1.0f}, e_all, "plain");
    /* top-k 3: renormalised over {0,1,2} */
    for (int i = 0; i < 6; i++) e[i] = i < 3 ? p[i] / 0.8 : 0.0;
    freq_check(logits, 6, (SampleParams){1.0f, 3, 1.0f}, e, "top-k 3");
    /* top-p 0.6: 0.4 < 0.6 <= 0.65 -> {0,1} */
    for (int i = 0; i < 6; i++) e[i] = i < 2 ? p[i] / 0.65 : 0.0;
    freq_check(logits, 6, (SampleParams){1.0f, 0, 0.6f}, e, "top-p 0.6");
    /* top-p 0.85: 0.8 < 0.85 <= 0.9 -> {0,1,2,3} */
    for (int i = 0; i < 6; i++) e[i] = i < 4 ? p[i] / 0.9 : 0.0;
    freq_check(logits, 6, (SampleParams){1.0f, 0, 0.85f}, e, "top-p 0.85");
    /* top-k 4 then top-p 0.7 of the top-4 mass 0.9: need 0.63 -> {0,1} (0.65) */
    for (int i = 0; i < 6; i++) e[i] = i < 2 ? p[i] / 0.65 : 0.0;
    freq_check(logits, 6, (SampleParams){1.0f, 4, 0.7f}, e, "top-k 4 + top-p 0.7");
    /* temperature 0.5: p^2 renormalised; temperature 2: sqrt(p) renormalised */
    double s2 = 0, sh = 0;
    for (int i = 0; i < 6; i++) s2 += p[i] * p[i], sh += sqrt(p[i]);
    for (int i = 0; i < 6; i++) e[i] = p[i] * p[i] / s2;
    freq_check(logits, 6, (SampleParams){0.5f, 0, 1.0f}, e, "temperature 0.5");
    for (int i = 0; i < 6; i++) e[i] = sqrt(p[i]) / sh;
    freq_check(logits, 6, (SampleParams){2.0f, 0, 1.0f}, e, "temperature 2");
}

/* Big vocabulary: the nucleus prefilter and the full-sort fallback give the reference's
 * token. */
static void test_large_vocab_nucleus(void) {
    int V = 50257;
    Sampler s;
    sampler_init(&s, V);
    float *logits = xalloc_floats((size_t)V);
    int mismatches = 0;
    for (int trial = 0; trial < 6; trial++) {
        /* peaked (prefilter path) or flat (fallback path) */
        float scale = trial % 2 ? 0.01f : 4.0f;
        for (int i = 0; i < V; i++) logits[i] = scale * rng_normal(&g_rng);
        SampleParams p = {1.0f, trial >= 4 ? 1000 : 0, 0.9f};
        Rng r;
        rng_init(&r, (uint64_t)trial);
        Rng copy = r;
        double u = rng_uniform_double(&copy);
        float lp;
        int tok = sample_token(&s, logits, &p, &r, &lp);
        mismatches += tok != reference_sample(logits, V, &p, u);
    }
    CHECK_EQ_INT(mismatches, 0);
    free(logits);
    sampler_free(&s);
}

int main(void) {
    rng_init(&g_rng, 4242);
    ops_blas_setup(0);
    TEST_RUN(test_decode_matches_forward);
    TEST_RUN(test_prefill_sees_new_weights);
    TEST_RUN(test_logprobs_match_training_path);
    TEST_RUN(test_batch_invariance);
    TEST_RUN(test_thread_invariance);
    TEST_RUN(test_eos_and_padding);
    TEST_RUN(test_bad_input);
    TEST_RUN(test_copy_slot);
    TEST_RUN(test_cache_score);
    TEST_RUN(test_bf16_rounding);
    TEST_RUN(test_llama_packed_matches_inplace);
    TEST_RUN(test_bf16_decode);
    TEST_RUN(test_bf16_dot_decode);
    TEST_RUN(test_long_responses);
    TEST_RUN(test_schedules_bit_identical);
    TEST_RUN(test_schedule_bad_input);
    TEST_RUN(test_sample_against_reference);
    TEST_RUN(test_sample_unfiltered);
    TEST_RUN(test_greedy_and_topk1);
    TEST_RUN(test_frequencies);
    TEST_RUN(test_large_vocab_nucleus);
    return TEST_EXIT();
}
