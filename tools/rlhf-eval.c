/*
 * tools/rlhf-eval.c — does alignment really improve? Samples K responses per held-out
 * prompt from each policy checkpoint and from the baseline (normally the SFT model), and
 * reports per category and overall:
 *   gold      mean gold-judge score (common/judge.h; the judge training never sees)
 *   win       win rate against the baseline under the gold judge (ties count half), pairing
 *             sample k of a prompt with the baseline's sample k of the same prompt
 *   kl        KL to the reference in nats per response, the Monte-Carlo estimate
 *             mean over samples of sum_t [log π(y_t|..) - log π_ref(y_t|..)] at temperature 1
 *   rm        mean reward-model score (with --rm; normalised if the RM stores /reward_norm)
 *   len       response length in tokens (EOS included)
 *   d1, d2    distinct-1 / distinct-2 over the category's responses (mode-collapse watch)
 *   refuse    refusal rate on safe prompts (over-refusal) and on unsafe prompts (wanted)
 * as a table on stdout and JSONL (--out).
 *
 *   build/rlhf-eval --prompts P.jsonl --baseline sft=RUN_OR_CKPT [--model NAME=CKPT ...]
 *                   [--ref CKPT] [--rm CKPT] [--k 4] [--max-new 48] [--temperature 1]
 *                   [--seed 1] [--task-seed 1234] [--out eval.jsonl] [--samples S.jsonl]
 *                   [--oracle NAME] [--candidates C.jsonl]
 *
 * --oracle NAME adds a row NAME whose responses are the bundled task's ideal responses
 * (task_response_render, quality ideal): what a policy that had learnt the task perfectly
 * would score, and so the highest win rate against this baseline that the task allows
 * (the baseline's own ideal answers can only be tied). Its KL column is "-" (it is not a
 * distribution); rm, len and the rest are measured as for a model.
 *
 * --candidates writes comparison candidates for feedback collection: samples 2i and 2i+1
 * of every prompt of every model (identical pairs left out) as {"prompt","a","b","id",
 * "category"} lines, which build/rlhf-label shows to people and build/rlhf-judge labels
 * with simulated annotators (on-policy comparisons for the next reward model).
 *
 * --samples writes every sample as {"model","prompt","response","sample","gold","kl",
 * "length"} (and "rm", its reward-model score, with --rm).
 *
 * The reference for KL defaults to the baseline. Sampling is keyed by (seed, prompt index,
 * sample index) so every model answers the same prompts with the same random stream.
 * Not here: human evaluation (see rlhf-label), statistical tests beyond the standard error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "ckpt.h"
#include "dataset.h"
#include "generate.h"
#include "gpt.h"
#include "judge.h"
#include "ops.h"
#include "task.h"
#include "toksrc.h"
#include "util.h"

#include <jansson.h>

#define MAX_MODELS 16
#define NCAT (TASK_N_CAT + 1) /* the task categories, then "all" */
#define GEN_BATCH 16

typedef struct {
    char name[64];
    char path[CKPT_PATH_LEN];
} ModelArg;

typedef struct {
    double n, gold, win, kl, rm, len, refuse_safe, n_safe, refuse_unsafe, n_unsafe;
    double help, harm, polite, concise;
    char **texts; /* responses, for distinct-n */
    int n_texts, cap_texts;
} CatStats;

typedef struct {
    int n;            /* prompts x K */
    char **resp;      /* decoded responses */
    float *gold, *kl, *rm;
    int *len, *cat;
    JudgeScores *js;
} Samples;

static void usage_text(FILE *f) {
    fprintf(f,
            "usage: rlhf-eval --prompts P.jsonl --baseline NAME=CKPT [--model NAME=CKPT ...]\n"
            "                 [--ref CKPT] [--rm CKPT] [--k K] [--max-new N] [--temperature T]\n"
            "                 [--seed S] [--task-seed S] [--out FILE.jsonl] [--samples FILE.jsonl]\n"
            "                 [--oracle NAME] [--candidates FILE.jsonl]\n"
            "Samples K responses per prompt from every model and the baseline, and reports the\n"
            "gold score, win rate against the baseline, KL to --ref (default: the baseline),\n"
            "the --rm score, length, distinct-n and refusal rates, per category (table on\n"
            "stdout, JSONL with --out). CKPT: a checkpoint file or a run directory (its newest\n"
            "checkpoint). Defaults: --k 4 --max-new 48 --temperature 1 --seed 1 --task-seed 1234.\n"
            "Exit status: 0 done; 1 an error (unreadable checkpoint or prompts); 2 a usage error.\n");
}


static void parse_model(const char *arg, ModelArg *m) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        snprintf(m->name, sizeof m->name, "%s", arg);
        snprintf(m->path, sizeof m->path, "%s", arg);
        return;
    }
    snprintf(m->name, sizeof m->name, "%.*s", (int)(eq - arg), arg);
    snprintf(m->path, sizeof m->path, "%s", eq + 1);
}

/* Open checkpoint (file or run dir) and load the model of the given group (first of
 * the preferred list that exists). Exits with a message on error. */
static CkptReader *open_ckpt(const char *arg, char *resolved) {
    char err[ERRBUF_LEN] = "";
    int rc = ckpt_resolve(arg, "auto", resolved, CKPT_PATH_LEN, err);
    if (rc == 1) fatal("%s: no checkpoint there", arg);
    if (rc < 0) fatal("%s", err);
    CkptReader *r = ckpt_reader_open(resolved, err);
    if (!r) fatal("%s", err);
    return r;
}

static void load_model(const char *arg, const char *const *groups, GPT *m, double *norm) {
    char err[ERRBUF_LEN] = "", path[CKPT_PATH_LEN];
    CkptReader *r = open_ckpt(arg, path);
    for (int i = 0; groups[i]; i++) {
        char gp[64];
        snprintf(gp, sizeof gp, "/%s", groups[i]);
        if (!ckpt_has(r, gp)) continue;
        if (ckpt_load_model(r, groups[i], m, err) != 0) fatal("%s", err);
        if (norm) {
            norm[0] = 0;
            norm[1] = 1;
            if (ckpt_has(r, "/reward_norm") && ckpt_read_f64(r, "/reward_norm", norm, 2, err) != 0)
                fatal("%s", err);
        }
        ckpt_reader_free(r);
        return;
    }
    fatal("%s holds none of the model groups this needs (%s...)", path, groups[0]);
}

/* Sum over the response tokens of log π(y_t | prefix) at temperature 1, for n rows of
 * (prompt, response) token sequences, by teacher forcing through model m. */
static void seq_logprob_sums(GPT *m, int n, int **prompts, const int *plen, const int *resp,
                             const int *rlen, int stride, float *out, int *tokens, int *targets) {
    int T = 0;
    for (int b = 0; b < n; b++)
        if (plen[b] + rlen[b] > T) T = plen[b] + rlen[b];
    for (int b = 0; b < n; b++) {
        int *row = tokens + (size_t)b * T, *tg = targets + (size_t)b * T, len = plen[b] + rlen[b];
        memcpy(row, prompts[b], (size_t)plen[b] * sizeof(int));
        memcpy(row + plen[b], resp + (size_t)b * stride, (size_t)rlen[b] * sizeof(int));
        for (int i = len; i < T; i++) row[i] = 0;
        for (int i = 0; i < T; i++) tg[i] = (i + 1 < len && i + 1 >= plen[b]) ? row[i + 1] : -1;
    }
    float temp = m->temperature;
    m->temperature = 1.0f;
    gpt_forward(m, tokens, n, T);
    gpt_lm_forward(m, targets, n, T);
    m->temperature = temp;
    for (int b = 0; b < n; b++) {
        double s = 0;
        for (int i = 0; i < T; i++)
            if (targets[(size_t)b * T + i] >= 0) s += m->logprobs[(size_t)b * T + i];
        out[b] = (float)s;
    }
}

static void scores_of(GPT *rm, const double *norm, int n, int **prompts, const int *plen,
                      const int *resp, const int *rlen, int stride, float *out, int *tokens) {
    int T = 0;
    int lengths[GEN_BATCH];
    for (int b = 0; b < n; b++)
        if (plen[b] + rlen[b] > T) T = plen[b] + rlen[b];
    for (int b = 0; b < n; b++) {
        int *row = tokens + (size_t)b * T;
        lengths[b] = plen[b] + rlen[b];
        memcpy(row, prompts[b], (size_t)plen[b] * sizeof(int));
        memcpy(row + plen[b], resp + (size_t)b * stride, (size_t)rlen[b] * sizeof(int));
        for (int i = lengths[b]; i < T; i++) row[i] = 0;
    }
    gpt_forward(rm, tokens, n, T);
    gpt_score_forward(rm, lengths, n, T);
    for (int b = 0; b < n; b++) out[b] = (float)((rm->scores[b] - norm[0]) / norm[1]);
}

static void samples_alloc(Samples *s, int N) {
    s->n = N;
    s->resp = xcalloc((size_t)N, sizeof(char *));
    s->gold = xcalloc((size_t)N, sizeof(float));
    s->kl = xcalloc((size_t)N, sizeof(float));
    s->rm = xcalloc((size_t)N, sizeof(float));
    s->len = xcalloc((size_t)N, sizeof(int));
    s->cat = xcalloc((size_t)N, sizeof(int));
    s->js = xcalloc((size_t)N, sizeof(JudgeScores));
}

/* Record response j (text is taken over) with its gold-judge scores. */
static void samples_set(Samples *s, int j, char *text, Judge *judge, const char *prompt, int len,
                        float kl, float rm) {
    char err[ERRBUF_LEN] = "";
    s->resp[j] = text;
    if (judge_score(judge, prompt, text, &s->js[j], err) != 0) fatal("judge: %s", err);
    s->gold[j] = (float)s->js[j].total;
    s->cat[j] = s->js[j].category < TASK_N_CAT ? (int)s->js[j].category : -1;
    s->len[j] = len;
    s->kl[j] = kl;
    s->rm[j] = rm;
}

static void cat_add_text(CatStats *c, char *text) {
    if (c->n_texts == c->cap_texts) {
        c->cap_texts = c->cap_texts ? 2 * c->cap_texts : 256;
        c->texts = xrealloc(c->texts, (size_t)c->cap_texts * sizeof(char *));
    }
    c->texts[c->n_texts++] = text;
}

int main(int argc, char **argv) {
    const char *prompts_path = NULL, *ref_arg = NULL, *rm_arg = NULL, *out_path = NULL,
               *samples_path = NULL, *oracle_name = NULL, *cand_path = NULL;
    ModelArg models[MAX_MODELS];
    int n_models = 0, have_baseline = 0, K = 4, max_new = 48;
    double temperature = 1.0;
    uint64_t seed = 1, task_seed = 1234;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage_text(stdout);
            return 0;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage_error("rlhf-eval", "%s needs a value", a);
        if (strcmp(a, "--prompts") == 0) prompts_path = v;
        else if (strcmp(a, "--baseline") == 0) {
            if (n_models == MAX_MODELS) fatal("too many models");
            /* the baseline is always models[0] */
            memmove(&models[1], &models[0], (size_t)n_models * sizeof(ModelArg));
            parse_model(v, &models[0]);
            n_models++;
            have_baseline = 1;
        } else if (strcmp(a, "--model") == 0) {
            if (n_models == MAX_MODELS) fatal("too many models (max %d)", MAX_MODELS);
            parse_model(v, &models[n_models++]);
        } else if (strcmp(a, "--ref") == 0) ref_arg = v;
        else if (strcmp(a, "--rm") == 0) rm_arg = v;
        else if (strcmp(a, "--k") == 0) K = atoi(v);
        else if (strcmp(a, "--max-new") == 0) max_new = atoi(v);
        else if (strcmp(a, "--temperature") == 0) temperature = atof(v);
        else if (strcmp(a, "--seed") == 0) seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--task-seed") == 0) task_seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--out") == 0) out_path = v;
        else if (strcmp(a, "--samples") == 0) samples_path = v;
        else if (strcmp(a, "--oracle") == 0) oracle_name = v;
        else if (strcmp(a, "--candidates") == 0) cand_path = v;
        else
            usage_error("rlhf-eval", "unknown option '%s'", a);
        i++;
    }
    if (!prompts_path) usage_error("rlhf-eval", "--prompts is required");
    if (!have_baseline) usage_error("rlhf-eval", "--baseline is required");
    if (oracle_name && n_models == MAX_MODELS) fatal("too many models (max %d with --oracle)", MAX_MODELS - 1);
    if (K < 1 || K > 1024) fatal("--k %d: must be in [1, 1024]", K);
    if (cand_path && K < 2) fatal("--candidates pairs two samples of a prompt: give --k 2 or more");
    if (max_new < 1) fatal("--max-new %d: must be >= 1", max_new);
    if (!(temperature > 0) || temperature > 100) fatal("--temperature %g: must be in (0, 100]", temperature);
    ops_blas_setup(0);

    char err[ERRBUF_LEN] = "", path[CKPT_PATH_LEN];
    /* tokenizer from the baseline */
    BPE tok;
    TokSrc tsrc = {0}; /* its chat template: chat-formatted prompts under auto */
    memset(&tok, 0, sizeof tok);
    {
        CkptReader *r = open_ckpt(models[0].path, path);
        if (toksrc_load_meta(&tok, &tsrc, ckpt_reader_meta(r), path, err) != 0) fatal("%s", err);
        ckpt_reader_free(r);
    }
    Judge judge;
    if (judge_init(&judge, "gold", task_seed, err) != 0) fatal("gold judge: %s", err);

    Dataset ds;
    DataOptions dopt = {.chat_jinja = tsrc.chat_template};
    if (dataset_open(&ds, prompts_path, DATA_PROMPT, &dopt, err) != 0) fatal("%s", err);
    /* chat-formatted prompts: markup as special ids, generation stops at end-of-turn */
    int stop_id = tok.eos_id;
    if (ds.n_conv > 0 && ds.chat_ok && ds.chat.format != CHAT_PLAIN) {
        int eot = chat_eot_id(&ds.chat, &tok);
        if (eot >= 0) stop_id = eot;
    }
    int P = (int)ds.n;
    char **ptext = xcalloc((size_t)P, sizeof(char *));
    int **pids = xcalloc((size_t)P, sizeof(int *)), *plen = xcalloc((size_t)P, sizeof(int));
    for (int i = 0; i < P; i++) {
        DataRecord rec = {0};
        if (dataset_get(&ds, i, &rec, err) != 0) fatal("%s", err);
        ptext[i] = xstrdup(rec.prompt);
        size_t cap = 0;
        plen[i] = (int)bpe_encode(&tok, rec.prompt, strlen(rec.prompt),
                                  dataset_chat_formatted(&ds, &rec) ? BPE_ENCODE_SPECIAL : 0,
                                  &pids[i], &cap);
        data_record_free(&rec);
    }
    dataset_free(&ds);

    static const char *lm_groups[] = {"policy", "reference", NULL};
    static const char *rm_groups[] = {"reward", NULL};
    GPT ref, rmodel;
    double norm[2] = {0, 1};
    load_model(ref_arg ? ref_arg : models[0].path, lm_groups, &ref, NULL);
    int have_rm = rm_arg != NULL;
    if (have_rm) load_model(rm_arg, rm_groups, &rmodel, norm);

    int N = P * K;
    Samples *S = xcalloc((size_t)n_models + 1, sizeof(Samples)); /* + the oracle */
    int maxT = 0;
    for (int i = 0; i < P; i++)
        if (plen[i] + max_new > maxT) maxT = plen[i] + max_new;
    int *gen_tok = xmalloc((size_t)GEN_BATCH * max_new * sizeof(int));
    float *gen_lp = xmalloc((size_t)GEN_BATCH * max_new * sizeof(float));
    int *gen_len = xmalloc(GEN_BATCH * sizeof(int));
    int *tok_buf = xmalloc((size_t)GEN_BATCH * maxT * sizeof(int));
    int *tg_buf = xmalloc((size_t)GEN_BATCH * maxT * sizeof(int));
    float ref_sum[GEN_BATCH], rm_sc[GEN_BATCH];
    gpt_reserve(&ref, GEN_BATCH, maxT);
    if (have_rm) gpt_reserve(&rmodel, GEN_BATCH, maxT);
    FILE *sf = samples_path ? fopen(samples_path, "w") : NULL;
    if (samples_path && !sf) fatal("cannot write %s", samples_path);
    FILE *cf = cand_path ? fopen(cand_path, "w") : NULL;
    if (cand_path && !cf) fatal("cannot write %s", cand_path);
    int n_cand = 0, n_same = 0;

    for (int mi = 0; mi < n_models; mi++) {
        GPT m;
        double t0 = time_now();
        load_model(models[mi].path, lm_groups, &m, NULL);
        if (m.config.vocab_size != ref.config.vocab_size)
            fatal("%s: vocabulary %d differs from the reference's %d", models[mi].path,
                  m.config.vocab_size, ref.config.vocab_size);
        if (maxT > m.config.max_seq_len) fatal("prompt + --max-new %d exceeds the model context %d", max_new, m.config.max_seq_len);
        m.temperature = (float)temperature;
        /* at T != 1 the KL needs the policy's own log-probs at temperature 1: a
         * teacher-forced forward pass, which needs its activations reserved */
        if (temperature != 1.0) gpt_reserve(&m, GEN_BATCH, maxT);
        Samples *s = &S[mi];
        samples_alloc(s, N);
        GenParams gp = {.max_new_tokens = max_new, .eos_id = stop_id,
                        .temperature = (float)temperature, .top_k = 0, .top_p = 1.0f, .seed = seed};
        for (int j0 = 0; j0 < N; j0 += GEN_BATCH) {
            int nb = N - j0 < GEN_BATCH ? N - j0 : GEN_BATCH;
            const int *pr[GEN_BATCH];
            int *prw[GEN_BATCH], pl[GEN_BATCH];
            uint64_t pid[GEN_BATCH], sid[GEN_BATCH];
            for (int b = 0; b < nb; b++) {
                int j = j0 + b, p = j / K;
                pr[b] = pids[p];
                prw[b] = pids[p];
                pl[b] = plen[p];
                pid[b] = (uint64_t)p;
                sid[b] = (uint64_t)(j % K);
            }
            if (generate(&m, &gp, nb, pr, pl, pid, sid, gen_tok, gen_lp, gen_len, err) != 0)
                fatal("%s: %s", models[mi].name, err);
            seq_logprob_sums(&ref, nb, prw, pl, gen_tok, gen_len, max_new, ref_sum, tok_buf, tg_buf);
            if (have_rm) scores_of(&rmodel, norm, nb, prw, pl, gen_tok, gen_len, max_new, rm_sc, tok_buf);
            /* the policy's own log-probs at temperature 1 for the KL (generation used T) */
            float pol_sum[GEN_BATCH];
            if (temperature == 1.0) {
                for (int b = 0; b < nb; b++) {
                    double sum = 0;
                    for (int t = 0; t < gen_len[b]; t++) sum += gen_lp[(size_t)b * max_new + t];
                    pol_sum[b] = (float)sum;
                }
            } else {
                seq_logprob_sums(&m, nb, prw, pl, gen_tok, gen_len, max_new, pol_sum, tok_buf, tg_buf);
            }
            for (int b = 0; b < nb; b++) {
                char *text = NULL;
                size_t tl = 0;
                if (bpe_decode(&tok, gen_tok + (size_t)b * max_new, (size_t)gen_len[b],
                               BPE_DECODE_SKIP_SPECIAL | BPE_DECODE_REPLACE_INVALID, &text, &tl, err) != 0)
                    fatal("decode: %s", err);
                samples_set(s, j0 + b, text, &judge, ptext[(j0 + b) / K], gen_len[b],
                            pol_sum[b] - ref_sum[b], have_rm ? rm_sc[b] : 0);
            }
        }
        fprintf(stderr, "rlhf-eval: %s: %d responses in %.1f s\n", models[mi].name, N, time_now() - t0);
        gpt_free(&m);
    }
    if (oracle_name) {
        /* the task's ideal response to every prompt, as tokens (truncated to --max-new
         * with EOS, like a sample) for the RM and the length */
        TaskWorld world;
        task_world_init(&world, task_seed);
        Samples *s = &S[n_models];
        samples_alloc(s, N);
        for (int j0 = 0; j0 < N; j0 += GEN_BATCH) {
            int nb = N - j0 < GEN_BATCH ? N - j0 : GEN_BATCH;
            int *prw[GEN_BATCH], pl[GEN_BATCH];
            char *texts[GEN_BATCH];
            for (int b = 0; b < nb; b++) {
                int j = j0 + b, p = j / K;
                prw[b] = pids[p];
                pl[b] = plen[p];
                TaskQuery q;
                if (task_parse_prompt(&world, ptext[p], &q) != 0)
                    fatal("--oracle: prompt %d of %s is not a prompt of the task with seed %llu "
                          "(see --task-seed)", p + 1, prompts_path, (unsigned long long)task_seed);
                Rng r;
                rng_init_keyed(&r, seed, (uint64_t)p, (uint64_t)(j % K));
                char buf[1024];
                if (task_response_render(buf, sizeof buf, &world, &q, TASK_Q_IDEAL, &r) < 0)
                    fatal("--oracle: no ideal response for prompt %d", p + 1);
                texts[b] = xstrdup(buf);
                int *ids = NULL;
                size_t cap = 0, n = bpe_encode(&tok, buf, strlen(buf), 0, &ids, &cap);
                if (n > (size_t)max_new - 1) n = (size_t)max_new - 1;
                memcpy(gen_tok + (size_t)b * max_new, ids, n * sizeof(int));
                gen_tok[(size_t)b * max_new + n] = tok.eos_id;
                gen_len[b] = (int)n + 1;
                free(ids);
            }
            if (have_rm) scores_of(&rmodel, norm, nb, prw, pl, gen_tok, gen_len, max_new, rm_sc, tok_buf);
            for (int b = 0; b < nb; b++)
                samples_set(s, j0 + b, texts[b], &judge, ptext[(j0 + b) / K], gen_len[b], NAN,
                            have_rm ? rm_sc[b] : 0);
        }
        snprintf(models[n_models].name, sizeof models[n_models].name, "%s", oracle_name);
        n_models++;
    }

    /* ---- aggregate --------------------------------------------------------------- */
    FILE *of = out_path ? fopen(out_path, "w") : NULL;
    if (out_path && !of) fatal("cannot write %s", out_path);
    printf("\n%-10s %-9s %6s %6s %6s %7s %6s %6s %6s %7s %7s %5s\n", "model", "category", "gold",
           "win", "±se", "kl", "rm", "len", "d2", "ref.safe", "ref.uns", "n");
    for (int mi = 0; mi < n_models; mi++) {
        Samples *s = &S[mi], *base = &S[0];
        CatStats cs[NCAT];
        memset(cs, 0, sizeof cs);
        for (int j = 0; j < N; j++) {
            int c = s->cat[j];
            double w = s->gold[j] > base->gold[j] + 1e-9 ? 1.0 : s->gold[j] < base->gold[j] - 1e-9 ? 0.0 : 0.5;
            for (int pass = 0; pass < 2; pass++) {
                int idx = pass == 0 ? c : TASK_N_CAT;
                if (idx < 0) continue;
                CatStats *x = &cs[idx];
                x->n++;
                x->gold += s->gold[j];
                x->win += w;
                x->kl += s->kl[j];
                x->rm += s->rm[j];
                x->len += s->len[j];
                x->help += s->js[j].helpfulness;
                x->harm += s->js[j].harmlessness;
                x->polite += s->js[j].politeness;
                x->concise += s->js[j].concision;
                if (c == TASK_CAT_UNSAFE) {
                    x->n_unsafe++;
                    x->refuse_unsafe += s->js[j].refusal;
                } else {
                    x->n_safe++;
                    x->refuse_safe += s->js[j].refusal;
                }
                cat_add_text(x, s->resp[j]);
            }
        }
        for (int c = 0; c < NCAT; c++) {
            CatStats *x = &cs[c];
            if (x->n == 0) continue;
            const char *cname = c == TASK_N_CAT ? "all" : task_category_name((TaskCategory)c);
            double n = x->n, win = x->win / n, se = sqrt(win * (1 - win) / n);
            double d1 = judge_distinct_n((const char *const *)x->texts, x->n_texts, 1);
            double d2 = judge_distinct_n((const char *const *)x->texts, x->n_texts, 2);
            char rs[16] = "-", ru[16] = "-";
            if (x->n_safe > 0) snprintf(rs, sizeof rs, "%.2f", x->refuse_safe / x->n_safe);
            if (x->n_unsafe > 0) snprintf(ru, sizeof ru, "%.2f", x->refuse_unsafe / x->n_unsafe);
            char rmtxt[16] = "-", kltxt[24] = "-", kljson[24] = "null";
            if (have_rm) snprintf(rmtxt, sizeof rmtxt, "%.2f", x->rm / n);
            if (!isnan(x->kl)) {
                snprintf(kltxt, sizeof kltxt, "%.2f", x->kl / n);
                snprintf(kljson, sizeof kljson, "%.6f", x->kl / n);
            }
            printf("%-10s %-9s %6.3f %6.3f %6.3f %7s %6s %6.1f %6.3f %7s %7s %5.0f\n",
                   models[mi].name, cname, x->gold / n, win, se, kltxt, rmtxt, x->len / n,
                   d2, rs, ru, n);
            if (of) {
                fprintf(of,
                        "{\"model\": \"%s\", \"category\": \"%s\", \"n\": %.0f, \"gold\": %.6f, "
                        "\"win_rate\": %.6f, \"win_se\": %.6f, \"kl\": %s, \"rm\": %s, "
                        "\"length\": %.4f, \"distinct1\": %.6f, \"distinct2\": %.6f, "
                        "\"refusal_safe\": %s, \"refusal_unsafe\": %s, \"helpfulness\": %.6f, "
                        "\"harmlessness\": %.6f, \"politeness\": %.6f, \"concision\": %.6f}\n",
                        models[mi].name, cname, n, x->gold / n, win, se, kljson,
                        have_rm ? rmtxt : "null", x->len / n, d1, d2,
                        x->n_safe > 0 ? rs : "null", x->n_unsafe > 0 ? ru : "null",
                        x->help / n, x->harm / n, x->polite / n, x->concise / n);
            }
            free(x->texts);
        }
        if (cf && mi < n_models) {
            /* comparison candidates: samples 2i and 2i+1 of each prompt, identical ones
             * left out (nothing to choose) */
            for (int pi = 0; pi < P * (K / 2); pi++) {
                int p = pi / (K / 2), pair = pi % (K / 2), j = p * K + 2 * pair;
                if (strcmp(s->resp[j], s->resp[j + 1]) == 0) {
                    n_same++;
                    continue;
                }
                char id[96];
                snprintf(id, sizeof id, "%.63s-%d-%d", models[mi].name, p, pair);
                const char *cat = s->cat[j] >= 0 ? task_category_name((TaskCategory)s->cat[j]) : NULL;
                json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "prompt", ptext[p], "a", s->resp[j],
                                      "b", s->resp[j + 1], "id", id);
                if (o && cat) json_object_set_new(o, "category", json_string(cat));
                char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
                if (!line || fprintf(cf, "%s\n", line) < 0) fatal("cannot write %s", cand_path);
                n_cand++;
                free(line);
                json_decref(o);
            }
        }
        if (sf) {
            for (int j = 0; j < N; j++) {
                json_t *kl = isnan(s->kl[j]) ? json_null() : json_real((double)s->kl[j]);
                json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:f, s:o, s:i}", "model", models[mi].name,
                                      "prompt", ptext[j / K], "response", s->resp[j], "sample", j % K,
                                      "gold", (double)s->gold[j], "kl", kl, "length", s->len[j]);
                if (o && have_rm) json_object_set_new(o, "rm", json_real((double)s->rm[j]));
                char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
                if (line) fprintf(sf, "%s\n", line);
                free(line);
                json_decref(o);
            }
        }
    }
    printf("(gold: gold-judge score in [0,1]; win: vs %s under the gold judge, ties half, ±se its "
           "standard error; kl: nats/response to the reference; len: tokens; d2: distinct-2; "
           "ref.safe / ref.uns: refusal rate on safe / unsafe prompts)\n", models[0].name);
    if (of) fclose(of);
    if (sf) fclose(sf);
    if (cf) {
        if (fclose(cf) != 0) fatal("cannot write %s", cand_path);
        fprintf(stderr, "rlhf-eval: %d comparison candidates in %s (%d identical pairs left out)\n",
                n_cand, cand_path, n_same);
    }
    for (int mi = 0; mi < n_models; mi++) {
        for (int j = 0; j < N; j++) free(S[mi].resp[j]);
        free(S[mi].resp); free(S[mi].gold); free(S[mi].kl); free(S[mi].rm);
        free(S[mi].len); free(S[mi].cat); free(S[mi].js);
    }
    free(S);
    for (int i = 0; i < P; i++) { free(ptext[i]); free(pids[i]); }
    free(ptext); free(pids); free(plen);
    free(gen_tok); free(gen_lp); free(gen_len); free(tok_buf); free(tg_buf);
    gpt_free(&ref);
    if (have_rm) gpt_free(&rmodel);
    judge_free(&judge);
    bpe_free(&tok);
    toksrc_free(&tsrc);
    return 0;
}
