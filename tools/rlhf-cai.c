/*
 * tools/rlhf-cai.c — Constitutional AI data (Bai et al. 2022) from a checkpoint's model
 * and a constitution (common/constitution.h; configs/constitution.jsonl; docs/cai.md).
 *
 *   rlhf-cai revise --model CKPT --constitution F --prompts P.jsonl --out SFT.jsonl
 *                   [--rounds 1] [--seed 1] [--max-new 64] [--temperature 0] [--template auto]
 *   rlhf-cai label  --model CKPT --constitution F --pairs C.jsonl --out PREFS.jsonl
 *                   [--seed 1] [--template auto]
 *
 * revise (SL-CAI): for every prompt the model answers; then, for each round, a principle
 * sampled from (seed, prompt index, round) is applied: the model is asked the
 * principle's critique request about its answer, then its revision request, and the
 * revision becomes the answer of the next round (a fresh conversation of prompt, answer,
 * request each round, so that it fits a small context). Records {"prompt", "response":
 * final revision, "initial", "rounds": [{"principle", "critique", "revision"}]} are SFT
 * data. Generation is batched over prompts; each text is sampled from the generator keyed
 * by (seed, prompt index, stage), so the output does not depend on the batching.
 *
 * label (RL-CAI): for every pair (prompt, a, b) the feedback model reads the paper's
 * multiple-choice question (the conversation, a sampled principle's comparison question,
 * "(A) a", "(B) b", then "The answer is:") and the log-probabilities of " (A)" and " (B)"
 * as the continuation are compared: p_A = softmax over the two. Position bias: the
 * question is asked again with a and b swapped and the two estimates of P(a preferred)
 * are averaged, which makes label(a, b) = 1 - label(b, a). Records {"prompt", "chosen",
 * "rejected", "p_chosen" (soft label, >= 0.5), "a", "b", "p_a", "p_a_ab", "p_a_ba",
 * "principle"} train `learner rm` / `learner dpo` with soft labels, and their
 * chosen/rejected give the hard label to any other consumer.
 *
 * Conversations are rendered with the checkpoint's chat template (--template auto) or a
 * named one; a checkpoint without a template falls back to plain, where the requests
 * carry the paper's "CritiqueRequest:" / "Critique:" labels instead of turn markup. A
 * rendering longer than the context keeps its end (the start is cut; counted on stderr).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "chat.h"
#include "ckpt.h"
#include "constitution.h"
#include "dataset.h"
#include "generate.h"
#include "gpt.h"
#include "ops.h"
#include "toksrc.h"
#include "util.h"

#define GEN_BATCH 16
#define OPT_A " (A)"
#define OPT_B " (B)"

typedef struct {
    const char *cmd, *model, *constitution, *prompts, *pairs, *out, *tmpl;
    int rounds, max_new;
    double temperature;
    uint64_t seed;
} Opts;

typedef struct {
    GPT m;
    BPE tok;
    ChatTemplate chat;
    long n_cut; /* renderings whose start was cut to fit the context */
} Model;

/* One text to generate or score: its token ids, and the generated text. */
typedef struct {
    int *ids;
    int n;
    uint64_t key1, key2;
    char *text;
} Job;

static void usage_text(FILE *f) {
    fprintf(f,
            "usage: rlhf-cai revise --model CKPT --constitution F --prompts P.jsonl --out SFT.jsonl\n"
            "                       [--rounds N] [--seed S] [--max-new N] [--temperature T]\n"
            "                       [--template auto|" CHAT_TEMPLATE_NAMES "]\n"
            "       rlhf-cai label  --model CKPT --constitution F --pairs C.jsonl --out PREFS.jsonl\n"
            "                       [--seed S] [--template ...]\n"
            "revise: the model answers each prompt, critiques and revises its answer under a\n"
            "sampled principle for N rounds (default 1); writes SFT records (final revision).\n"
            "label: the model compares the two responses of each pair {prompt, a, b} under a\n"
            "sampled principle by log p(\" (A)\") vs log p(\" (B)\"), both orders averaged; writes\n"
            "preference records with the soft label p_chosen.\n"
            "Defaults: --seed 1 --max-new 64 --temperature 0 (greedy) --template auto (the\n"
            "checkpoint's chat template, plain when it has none). See docs/cai.md.\n"
            "Exit status: 0 done; 1 an error (bad file, checkpoint); 2 a usage error.\n");
}

static Opts parse_args(int argc, char **argv) {
    Opts o = {.rounds = 1, .max_new = 64, .temperature = 0, .seed = 1, .tmpl = "auto"};
    if (argc < 2) usage_error("rlhf-cai", "give a command: revise or label");
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage_text(stdout);
            exit(0);
        }
    o.cmd = argv[1];
    if (strcmp(o.cmd, "revise") && strcmp(o.cmd, "label"))
        usage_error("rlhf-cai", "unknown command '%s' (revise or label)", o.cmd);
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage_error("rlhf-cai", "%s needs a value", a);
        if (!strcmp(a, "--model")) o.model = v;
        else if (!strcmp(a, "--constitution")) o.constitution = v;
        else if (!strcmp(a, "--prompts")) o.prompts = v;
        else if (!strcmp(a, "--pairs")) o.pairs = v;
        else if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--template")) o.tmpl = v;
        else if (!strcmp(a, "--rounds")) o.rounds = atoi(v);
        else if (!strcmp(a, "--max-new")) o.max_new = atoi(v);
        else if (!strcmp(a, "--temperature")) o.temperature = atof(v);
        else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 10);
        else usage_error("rlhf-cai", "unknown option '%s'", a);
    }
    if (!o.model || !o.constitution || !o.out)
        usage_error("rlhf-cai", "--model, --constitution and --out are required");
    int rev = !strcmp(o.cmd, "revise");
    if (rev && !o.prompts) usage_error("rlhf-cai", "revise needs --prompts");
    if (!rev && !o.pairs) usage_error("rlhf-cai", "label needs --pairs");
    if (o.rounds < 1 || o.rounds > 16) usage_error("rlhf-cai", "--rounds %d: must be in [1, 16]", o.rounds);
    if (o.max_new < 1) usage_error("rlhf-cai", "--max-new %d: must be >= 1", o.max_new);
    if (!(o.temperature >= 0) || o.temperature > 100)
        usage_error("rlhf-cai", "--temperature %g: must be in [0, 100]", o.temperature);
    return o;
}

/* Load the LM (policy, else reference) and tokenizer of a checkpoint, and its chat
 * template: --template auto takes the checkpoint's, or plain when it holds none. */
static void model_open(Model *md, const Opts *o) {
    char err[ERRBUF_LEN] = "", path[CKPT_PATH_LEN];
    memset(md, 0, sizeof *md);
    int rc = ckpt_resolve(o->model, "auto", path, sizeof path, err);
    if (rc == 1) fatal("%s: no checkpoint there", o->model);
    if (rc < 0) fatal("%s", err);
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) fatal("%s", err);
    const char *group = ckpt_has(r, "/policy") ? "policy" : ckpt_has(r, "/reference") ? "reference" : NULL;
    if (!group) fatal("%s: no language model (policy or reference group)", path);
    if (ckpt_load_model(r, group, &md->m, err) != 0) fatal("%s", err);
    if (md->m.config.head != GPT_HEAD_LM) fatal("%s: /%s is not a language model", path, group);
    TokSrc keep = {0};
    if (toksrc_load_meta(&md->tok, &keep, ckpt_reader_meta(r), path, err) != 0) fatal("%s", err);
    ckpt_reader_free(r);
    const char *name = o->tmpl;
    if (!strcmp(name, "auto") && !(keep.chat_template && keep.chat_template[0])) {
        fprintf(stderr, "rlhf-cai: %s has no chat template: using plain\n", path);
        name = "plain";
    }
    if (chat_template_resolve(&md->chat, name, keep.chat_template, err) != 0)
        fatal("--template %s: %s", name, err);
    toksrc_free(&keep);
    md->m.temperature = 1.0f;
}

static void model_free(Model *md) {
    gpt_free(&md->m);
    bpe_free(&md->tok);
    chat_template_free(&md->chat);
}

/* Render messages (with the generation prompt), then the assistant's opening words
 * `lead` (may be NULL), as token ids into job; keep at most `room` tokens (the end). */
static void render_job(Model *md, const ChatMessage *msg, int n, const char *lead, int room, Job *job) {
    char err[ERRBUF_LEN] = "";
    ChatText ct = {0};
    if (chat_render(&md->chat, msg, n, 1, &ct, err) != 0) fatal("chat template: %s", err);
    int *ids = NULL, *more = NULL;
    unsigned char *mask = NULL;
    size_t cap = 0, mcap = 0;
    size_t len = chat_tokenize(&md->tok, &ct, &ids, &mask, &cap);
    if (lead) {
        size_t k = bpe_encode(&md->tok, lead, strlen(lead), 0, &more, &mcap);
        ids = xrealloc(ids, (len + k) * sizeof(int));
        memcpy(ids + len, more, k * sizeof(int));
        len += k;
    }
    if ((long)len > room) { /* keep the end: it leads into what is generated or scored */
        memmove(ids, ids + (len - (size_t)room), (size_t)room * sizeof(int));
        len = (size_t)room;
        md->n_cut++;
    }
    job->ids = ids;
    job->n = (int)len;
    free(more);
    free(mask);
    chat_text_free(&ct);
}

/* Generate the text of every job, GEN_BATCH at a time. */
static void generate_jobs(Model *md, const Opts *o, Job *jobs, int n) {
    char err[ERRBUF_LEN] = "";
    GenParams gp = {.max_new_tokens = o->max_new, .eos_id = md->tok.eos_id,
                    .temperature = (float)o->temperature, .top_k = 0, .top_p = 1.0f, .seed = o->seed};
    int *out = xmalloc((size_t)GEN_BATCH * o->max_new * sizeof(int));
    float *lp = xmalloc((size_t)GEN_BATCH * o->max_new * sizeof(float));
    for (int j0 = 0; j0 < n; j0 += GEN_BATCH) {
        int nb = n - j0 < GEN_BATCH ? n - j0 : GEN_BATCH;
        const int *pr[GEN_BATCH];
        int pl[GEN_BATCH], ol[GEN_BATCH];
        uint64_t k1[GEN_BATCH], k2[GEN_BATCH];
        for (int b = 0; b < nb; b++) {
            pr[b] = jobs[j0 + b].ids, pl[b] = jobs[j0 + b].n;
            k1[b] = jobs[j0 + b].key1, k2[b] = jobs[j0 + b].key2;
        }
        if (generate(&md->m, &gp, nb, pr, pl, k1, k2, out, lp, ol, err) != 0) fatal("generate: %s", err);
        for (int b = 0; b < nb; b++) {
            size_t tl;
            if (bpe_decode(&md->tok, out + (size_t)b * o->max_new, (size_t)ol[b],
                           BPE_DECODE_SKIP_SPECIAL | BPE_DECODE_REPLACE_INVALID, &jobs[j0 + b].text,
                           &tl, err) != 0)
                fatal("decode: %s", err);
        }
    }
    free(out);
    free(lp);
}

static void jobs_free_ids(Job *jobs, int n) {
    for (int i = 0; i < n; i++) free(jobs[i].ids), jobs[i].ids = NULL;
}

static ChatMessage msg(ChatRole r, const char *s) { return (ChatMessage){r, s, strlen(s)}; }

/* A request as the user turn: as is under a chat template; with the paper's labels
 * under plain, where no markup separates the turns. */
static char *request_text(const Model *md, const char *label, const char *req) {
    if (md->chat.format != CHAT_PLAIN) return xstrdup(req);
    size_t n = strlen(label) * 2 + strlen(req) + 16;
    char *s = xmalloc(n);
    snprintf(s, n, "\n\n%sRequest: %s\n%s:", label, req, label);
    return s;
}

static void write_line(FILE *f, json_t *o, const char *path) {
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    if (!line || fprintf(f, "%s\n", line) < 0) fatal("%s: write error", path);
    free(line);
    json_decref(o);
}

/* The texts of a revise run: per prompt i, and per (i, round r) at [i * rounds + r]. */
typedef struct {
    int P, R;
    char **prompt, **initial, **cur; /* cur: the answer the next round critiques (borrowed) */
    char **crit, **rev;
    int *pick; /* principle of (i, r) */
} Revise;

static void revise_load_prompts(Revise *v, const char *path, int rounds) {
    char err[ERRBUF_LEN] = "";
    Dataset ds;
    DataOptions dopt = {.bad = DATA_BAD_FAIL};
    if (dataset_open(&ds, path, DATA_PROMPT, &dopt, err) != 0) fatal("%s", err);
    v->P = (int)ds.n, v->R = rounds;
    size_t n = (size_t)v->P, nr = n * (size_t)rounds;
    v->prompt = xcalloc(n, sizeof(char *)), v->initial = xcalloc(n, sizeof(char *));
    v->cur = xcalloc(n, sizeof(char *));
    v->crit = xcalloc(nr, sizeof(char *)), v->rev = xcalloc(nr, sizeof(char *));
    v->pick = xcalloc(nr, sizeof(int));
    for (int i = 0; i < v->P; i++) {
        DataRecord rec = {0};
        if (dataset_get(&ds, i, &rec, err) != 0) fatal("%s", err);
        v->prompt[i] = xstrdup(rec.prompt);
        data_record_free(&rec);
    }
    dataset_free(&ds);
}

/* One generation over all prompts: stage 0 the first answer; in round r, stage 1 the
 * critique, stage 2 the revision. The text of prompt i goes to jobs[i].text. */
static void revise_stage(Model *md, const Opts *o, const Constitution *cons, Revise *v, int r,
                         int stage, Job *jobs) {
    int room = md->m.config.max_seq_len - o->max_new;
    for (int i = 0; i < v->P; i++) {
        size_t ir = (size_t)i * v->R + r;
        if (stage == 0) {
            ChatMessage m[1] = {msg(CHAT_USER, v->prompt[i])};
            render_job(md, m, 1, NULL, room, &jobs[i]);
        } else {
            int k = v->pick[ir] = constitution_pick(cons, o->seed, (uint64_t)i, (uint64_t)r);
            char *cq = request_text(md, "Critique", cons->p[k].critique);
            char *rq = request_text(md, "Revision", cons->p[k].revision);
            ChatMessage m[5] = {msg(CHAT_USER, v->prompt[i]), msg(CHAT_ASSISTANT, v->cur[i]),
                                msg(CHAT_USER, cq), {CHAT_ASSISTANT, "", 0}, msg(CHAT_USER, rq)};
            if (stage == 2) m[3] = msg(CHAT_ASSISTANT, v->crit[ir]);
            render_job(md, m, stage == 1 ? 3 : 5, NULL, room, &jobs[i]);
            free(cq);
            free(rq);
        }
        /* stage keys: 0 the answer, then 2r+1 and 2r+2 */
        jobs[i].key1 = (uint64_t)i, jobs[i].key2 = stage == 0 ? 0 : (uint64_t)(2 * r + stage);
    }
    generate_jobs(md, o, jobs, v->P);
    jobs_free_ids(jobs, v->P);
}

/* Writes the records; returns the number of empty final revisions. */
static int revise_write(const Revise *v, const Constitution *cons, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) fatal("%s: cannot write", path);
    int n_empty = 0;
    for (int i = 0; i < v->P; i++) {
        json_t *rounds = json_array();
        for (int r = 0; r < v->R; r++) {
            size_t ir = (size_t)i * v->R + r;
            json_array_append_new(rounds, json_pack("{s:s, s:s, s:s}", "principle",
                                                    cons->p[v->pick[ir]].name, "critique",
                                                    v->crit[ir], "revision", v->rev[ir]));
        }
        n_empty += v->cur[i][0] == '\0';
        write_line(f, json_pack("{s:s, s:s, s:s, s:o}", "prompt", v->prompt[i], "response",
                                v->cur[i], "initial", v->initial[i], "rounds", rounds), path);
    }
    if (fclose(f) != 0) fatal("%s: write error", path);
    return n_empty;
}

static void revise_free(Revise *v) {
    for (int i = 0; i < v->P; i++) free(v->prompt[i]), free(v->initial[i]);
    for (int i = 0; i < v->P * v->R; i++) free(v->crit[i]), free(v->rev[i]);
    free(v->prompt), free(v->initial), free(v->cur), free(v->crit), free(v->rev), free(v->pick);
}

static int cmd_revise(const Opts *o, const Constitution *cons) {
    Model md;
    model_open(&md, o);
    if (md.m.config.max_seq_len - o->max_new < 1)
        fatal("--max-new %d leaves no room in the context of %d tokens", o->max_new,
              md.m.config.max_seq_len);
    Revise v;
    revise_load_prompts(&v, o->prompts, o->rounds);
    gpt_reserve(&md.m, GEN_BATCH, md.m.config.max_seq_len);
    double t0 = time_now();
    Job *jobs = xcalloc((size_t)v.P, sizeof(Job));
    revise_stage(&md, o, cons, &v, 0, 0, jobs);
    for (int i = 0; i < v.P; i++) v.initial[i] = v.cur[i] = jobs[i].text;
    for (int r = 0; r < v.R; r++) {
        revise_stage(&md, o, cons, &v, r, 1, jobs);
        for (int i = 0; i < v.P; i++) v.crit[(size_t)i * v.R + r] = jobs[i].text;
        revise_stage(&md, o, cons, &v, r, 2, jobs);
        for (int i = 0; i < v.P; i++) v.cur[i] = v.rev[(size_t)i * v.R + r] = jobs[i].text;
    }
    int n_empty = revise_write(&v, cons, o->out);
    fprintf(stderr, "rlhf-cai revise: %d prompts x %d round(s) in %.1f s -> %s (template %s; %d empty "
            "revisions; %ld renderings cut to the context)\n", v.P, v.R, time_now() - t0, o->out,
            md.chat.name, n_empty, md.n_cut);
    revise_free(&v);
    free(jobs);
    model_free(&md);
    return 0;
}

typedef struct {
    char *prompt, *a, *b;
    json_t *id, *category; /* passed through when present */
} Pair;

/* The pairs file: {"prompt", "a", "b"} (or "chosen"/"rejected" for a and b) per line,
 * optional "id" and "category" copied to the output. Exits with path:line on a bad line. */
static Pair *pairs_load(const char *path, int *n_out) {
    FILE *f = fopen(path, "r");
    if (!f) fatal("%s: cannot open", path);
    Pair *v = NULL;
    int n = 0, cap = 0, line = 0;
    char *buf = NULL;
    size_t bcap = 0;
    ssize_t got;
    while ((got = getline(&buf, &bcap, f)) != -1) {
        line++;
        size_t i = 0;
        while (i < (size_t)got && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n')) i++;
        if (i == (size_t)got) continue;
        json_error_t je;
        json_t *o = json_loadb(buf, (size_t)got, 0, &je);
        if (!o) fatal("%s:%d: invalid JSON at column %d: %s", path, line, je.column, je.text);
        const char *names[2][3] = {{"prompt", "a", "b"}, {"prompt", "chosen", "rejected"}};
        int form = json_object_get(o, "a") ? 0 : 1;
        const char *s[3];
        for (int k = 0; k < 3; k++) {
            json_t *x = json_is_object(o) ? json_object_get(o, names[form][k]) : NULL;
            if (!json_is_string(x))
                fatal("%s:%d: field \"%s\" must be a string (a pair is {\"prompt\", \"a\", \"b\"} "
                      "or {\"prompt\", \"chosen\", \"rejected\"})", path, line, names[form][k]);
            s[k] = json_string_value(x);
        }
        if (n == cap) v = xrealloc(v, (size_t)(cap = cap ? 2 * cap : 64) * sizeof(Pair));
        v[n] = (Pair){xstrdup(s[0]), xstrdup(s[1]), xstrdup(s[2]), json_incref(json_object_get(o, "id")),
                      json_incref(json_object_get(o, "category"))};
        n++;
        json_decref(o);
    }
    free(buf);
    fclose(f);
    if (n == 0) fatal("%s: no pair", path);
    *n_out = n;
    return v;
}

/* The paper's multiple-choice question with `first` as (A) and `second` as (B). */
static char *comparison_text(const char *prompt, const char *question, const char *first,
                             const char *second) {
    const char *fmt = "Consider the following conversation between a human and an assistant:\n\n"
                      "Human: %s\n\n%s\nOptions:\n(A) %s\n(B) %s\n";
    size_t n = strlen(fmt) + strlen(prompt) + strlen(question) + strlen(first) + strlen(second);
    char *s = xmalloc(n);
    snprintf(s, n, fmt, prompt, question, first, second);
    return s;
}

/* out[r] = sum of log p(option tokens | context) for rows r of jobs (ids = context +
 * option; opt_len[r] option tokens at the end), by teacher forcing, GEN_BATCH rows at a
 * time. */
static void score_rows(Model *md, Job *rows, const int *opt_len, int n, double *out) {
    int T = md->m.config.max_seq_len;
    int *tok = xmalloc((size_t)GEN_BATCH * T * sizeof(int)), *tg = xmalloc((size_t)GEN_BATCH * T * sizeof(int));
    for (int j0 = 0; j0 < n; j0 += GEN_BATCH) {
        int nb = n - j0 < GEN_BATCH ? n - j0 : GEN_BATCH, Tb = 0;
        for (int b = 0; b < nb; b++)
            if (rows[j0 + b].n > Tb) Tb = rows[j0 + b].n;
        for (int b = 0; b < nb; b++) {
            const Job *r = &rows[j0 + b];
            int *row = tok + (size_t)b * Tb, *t = tg + (size_t)b * Tb, first = r->n - opt_len[j0 + b];
            for (int i = 0; i < Tb; i++) {
                row[i] = i < r->n ? r->ids[i] : md->tok.pad_id;
                t[i] = (i + 1 < r->n && i + 1 >= first) ? r->ids[i + 1] : -1;
            }
        }
        gpt_forward(&md->m, tok, nb, Tb);
        gpt_lm_forward(&md->m, tg, nb, Tb);
        for (int b = 0; b < nb; b++) {
            double s = 0;
            for (int i = 0; i < Tb; i++)
                if (tg[(size_t)b * Tb + i] >= 0) s += md->m.logprobs[(size_t)b * Tb + i];
            out[j0 + b] = s;
        }
    }
    free(tok);
    free(tg);
}

/* The pair's responses in a fixed order (x, y) whatever their order in the file (1 if
 * that is (b, a)): the same four sequences are scored for (a, b) and (b, a), so that
 * label(a, b) = 1 - label(b, a) to the last bit. */
static int canonical(const Pair *p, const char **x, const char **y) {
    int swap = strcmp(p->a, p->b) > 0;
    *x = swap ? p->b : p->a;
    *y = swap ? p->a : p->b;
    return swap;
}

/* P(first option) from the two log-probs, softmax over the pair. */
static double p_first(double l_first, double l_second) { return 1.0 / (1.0 + exp(l_second - l_first)); }

/* Rows 4i..4i+3 of pair i: the question with (x, y) then (y, x) as (A), (B) (x, y the
 * canonical order), each continued by " (A)" and by " (B)"; olen[row] option tokens. */
static void label_rows(Model *md, const Opts *o, const Constitution *cons, const Pair *pairs,
                       int n, Job *rows, int *olen, int *pick) {
    int *opt[2] = {NULL, NULL}, ol[2];
    size_t cap[2] = {0, 0};
    ol[0] = (int)bpe_encode(&md->tok, OPT_A, strlen(OPT_A), 0, &opt[0], &cap[0]);
    ol[1] = (int)bpe_encode(&md->tok, OPT_B, strlen(OPT_B), 0, &opt[1], &cap[1]);
    int room = md->m.config.max_seq_len - (ol[0] > ol[1] ? ol[0] : ol[1]);
    if (room < 1) fatal("the model's context (%d tokens) cannot hold the options", md->m.config.max_seq_len);
    for (int i = 0; i < n; i++) {
        int k = pick[i] = constitution_pick(cons, o->seed, (uint64_t)i, 0);
        const char *x, *y;
        canonical(&pairs[i], &x, &y);
        for (int order = 0; order < 2; order++) {
            char *q = comparison_text(pairs[i].prompt, cons->p[k].comparison, order ? y : x,
                                      order ? x : y);
            ChatMessage m[1] = {msg(CHAT_USER, q)};
            Job ctx;
            render_job(md, m, 1, "The answer is:", room, &ctx);
            for (int c = 0; c < 2; c++) {
                Job *r = &rows[4 * i + 2 * order + c];
                r->ids = xmalloc((size_t)(ctx.n + ol[c]) * sizeof(int));
                memcpy(r->ids, ctx.ids, (size_t)ctx.n * sizeof(int));
                memcpy(r->ids + ctx.n, opt[c], (size_t)ol[c] * sizeof(int));
                r->n = ctx.n + ol[c];
                olen[4 * i + 2 * order + c] = ol[c];
            }
            free(ctx.ids);
            free(q);
        }
    }
    free(opt[0]);
    free(opt[1]);
}

/* The records from the four log-probs of each pair; returns how many pairs both orders
 * decide the same way. */
static int label_write(const Pair *pairs, int n, const double *lp, const int *pick,
                       const Constitution *cons, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) fatal("%s: cannot write", path);
    int agree = 0;
    for (int i = 0; i < n; i++) {
        const double *l = lp + 4 * i;
        const char *x, *y;
        int swap = canonical(&pairs[i], &x, &y);
        double px_1 = p_first(l[0], l[1]);       /* x shown as (A) */
        double px_2 = 1.0 - p_first(l[2], l[3]); /* x shown as (B) */
        double px = 0.5 * (px_1 + px_2);
        double p = swap ? 1.0 - px : px;
        double p_ab = swap ? 1.0 - px_2 : px_1, p_ba = swap ? 1.0 - px_1 : px_2;
        agree += (p_ab >= 0.5) == (p_ba >= 0.5);
        int a_wins = p >= 0.5;
        json_t *rec = json_pack("{s:s, s:s, s:s, s:f, s:s, s:s, s:f, s:f, s:f, s:s}", "prompt",
                                pairs[i].prompt, "chosen", a_wins ? pairs[i].a : pairs[i].b,
                                "rejected", a_wins ? pairs[i].b : pairs[i].a, "p_chosen",
                                a_wins ? p : 1.0 - p, "a", pairs[i].a, "b", pairs[i].b, "p_a", p,
                                "p_a_ab", p_ab, "p_a_ba", p_ba, "principle", cons->p[pick[i]].name);
        if (rec && pairs[i].id) json_object_set(rec, "id", pairs[i].id);
        if (rec && pairs[i].category) json_object_set(rec, "category", pairs[i].category);
        write_line(f, rec, path);
    }
    if (fclose(f) != 0) fatal("%s: write error", path);
    return agree;
}

static int cmd_label(const Opts *o, const Constitution *cons) {
    Model md;
    model_open(&md, o);
    int n;
    Pair *pairs = pairs_load(o->pairs, &n);
    Job *rows = xcalloc((size_t)4 * n, sizeof(Job));
    int *olen = xmalloc((size_t)4 * n * sizeof(int)), *pick = xmalloc((size_t)n * sizeof(int));
    double *lp = xmalloc((size_t)4 * n * sizeof(double)), t0 = time_now();
    gpt_reserve(&md.m, GEN_BATCH, md.m.config.max_seq_len);
    label_rows(&md, o, cons, pairs, n, rows, olen, pick);
    score_rows(&md, rows, olen, 4 * n, lp);
    int agree = label_write(pairs, n, lp, pick, cons, o->out);
    fprintf(stderr, "rlhf-cai label: %d pairs in %.1f s -> %s (template %s; both orders agree on "
            "%d of the pairs; %ld renderings cut to the context)\n", n, time_now() - t0, o->out,
            md.chat.name, agree, md.n_cut);
    for (int i = 0; i < 4 * n; i++) free(rows[i].ids);
    for (int i = 0; i < n; i++) {
        free(pairs[i].prompt), free(pairs[i].a), free(pairs[i].b);
        json_decref(pairs[i].id), json_decref(pairs[i].category);
    }
    free(pairs), free(rows), free(olen), free(pick), free(lp);
    model_free(&md);
    return 0;
}

int main(int argc, char **argv) {
    Opts o = parse_args(argc, argv);
    char err[ERRBUF_LEN] = "";
    Constitution cons;
    if (constitution_load(&cons, o.constitution, err) != 0) fatal("%s", err);
    ops_blas_setup(0);
    int rc = !strcmp(o.cmd, "revise") ? cmd_revise(&o, &cons) : cmd_label(&o, &cons);
    constitution_free(&cons);
    return rc;
}
