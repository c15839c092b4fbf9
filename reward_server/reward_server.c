/*
 * reward_server/reward_server.c — scores responses for the online stages (ppo, grpo,
 * rloo) and computes the frozen reference policy's log-probs of them:
 *
 *   mpirun -np 1 build/learner ppo cfg.ini : -np M build/reward_server cfg.ini \
 *          : -np N build/actor cfg.ini [section.key=value ...]
 *
 * It loads
 *   - the reference policy: ppo.ref_ckpt, default model.init (the SFT checkpoint), group
 *     /policy (LM head), evaluated at gen.temperature like the behaviour policy — unless
 *     the learner computes the reference (online_ref_on_learner: LoRA with the policy's
 *     base as the reference), in which case no reference model, activations or logits
 *     scratch exist here and a request with want_ref is refused;
 *   - the judge of [judge]: kind = rm — the reward model of ppo.reward_ckpt (group
 *     /reward, score head read at the last token; with /reward_norm (mean, std) stored by
 *     `learner rm` with rm.normalize the score is (s - mean) / std), or the K models of
 *     judge.rm_ckpts combined by judge.ensemble (mean - lambda * std, or min), each run
 *     over the whole batch in one pass; kind = rule or gold — common/judge.h on the
 *     decoded prompt and response text (special tokens dropped); kind = mix — per
 *     sequence the judge.route entry its prompt text selects (route.h: a verifier, the
 *     gold judge or the reward model(s), which then run only on the rows routed to them),
 *     with the entry's index sent back in the extra array "judge".
 * and answers score_req messages from any actor with a score_rep: one score per
 * sequence, the reference log-prob of every response token (when asked), and the extra
 * arrays "t_server" (its compute seconds per sequence) and, with judge.monitor_gold,
 * "gold" (the bundled task's gold judge: logged by the learner, never used as a reward). A stop message from learner rank
 * 0 ends it (exit 0).
 *
 * Batching: with ppo.max_staleness > 0 it drains every request already waiting (up to
 * 4 x ppo.actor_batch sequences) and runs them as one batch through the models. In
 * synchronous mode each request is computed on its own: the BLAS training path is not
 * guaranteed to give a row the same bits in batches of different shapes, and which
 * requests happen to wait together depends on timing — computing each work item alone
 * keeps runs with 1, 2 or 4 actors bit-identical.
 *
 * Shared prompts (ppo.shared_prompt, rs_plan_shared): when sequences of a batch share a
 * prompt (GRPO/RLOO groups) the reference and the reward model(s) run through their KV
 * caches instead (score.h): each prompt once, copied to the slots of its other
 * sequences, then only the responses, with the row-wise kernels of decoding (a row's
 * figures do not depend on the rest of the batch). Same results up to fp32 rounding.
 *
 * Any malformed message aborts the job naming its sender (mpi_recv_msg). It holds no
 * state a checkpoint needs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "online.h"
#include "lora.h"
#include "route.h"
#include "score.h"
#include "bpe.h"
#include "ckpt.h"
#include "ensemble.h"
#include "config.h"
#include "gpt.h"
#include "judge.h"
#include "mpi_util.h"
#include "msg.h"
#include "ops.h"
#include "util.h"

#define RS_MAX_PENDING 64
#define RS_MAX_RM 8

/* One reward model of the ensemble, with its /reward_norm (mean, std) if stored. */
typedef struct {
    GPT g;
    double norm_mean, norm_std;
    int has_norm;
} RsModel;

typedef struct {
    RlhfConfig cfg;
    MpiRoles *roles;
    BPE tok;
    GPT ref;
    int has_ref;      /* 0: the learner computes the reference (online_ref_on_learner) */
    RsModel rm[RS_MAX_RM];
    int n_rm; /* reward models loaded (0: no route needs one) */
    float *ens;       /* (n_rm, max_rows) normalised scores of the RM rows */
    float *rm_std;    /* per row: the K models' std, ONLINE_GOLD_NONE where none scored */
    int *rm_rows;     /* the batch rows the reward models score */
    int *rm_tokens, *rm_lengths;
    Judge judge;
    int use_judge;
    RouteTable route; /* judge.kind = mix */
    int use_route;
    Judge route_judge[ROUTE_MAX];
    int *row_route;   /* route entry of each row */
    Judge gold;         /* judge.monitor_gold: scored for the metrics, never the reward */
    int use_gold;
    float *gold_scores;
    MsgLimits lim;
    int max_rows, max_T;
    /* a padded batch of the pending requests' sequences */
    int *tokens, *targets, *lengths, *plens;
    float *scores;
    /* ppo.shared_prompt: this batch goes through the models' KV caches, each prompt
     * shared by several rows once (rs_cache_rows) */
    int shared;
    const int **seq_ptr, **tg_ptr; /* (max_rows) rs_cache_rows' sequences and targets */
    float **lp_ptr;
    int *sub_len, *sub_plen;
    float *ref_lp;        /* (max_rows, max_T) the reference log-probs, s->ref.logprobs' layout */
    float *cache_scores;  /* (max_rows) */
    /* the pending requests */
    int n_req;
    Msg req[RS_MAX_PENDING];
    int src[RS_MAX_PENDING];
    MsgBuf buf, out;
    MsgBatch rep;
    char *ptext_buf;
    double t_busy, t_idle;
    long n_seqs, n_cached; /* sequences scored; of them through the KV caches */
} Server;

static void rs_fail_setup(const Server *s, const char *what, const char *err) {
    (void)s;
    mpi_fatal("reward server set-up: %s: %s", what, err);
}

/* A frozen model's KV-cache settings (ppo.shared_prompt): a panel-major decode copy of
 * its weights, made by the first cache pass and kept (the weights never change here). */
static void rs_frozen_for_cache(GPT *g) {
    g->decode_packed = 1;
    g->weights_version = 0;
}

/* Load one reward model (group /reward, optional /reward_norm) from path into m. */
static void rs_load_rm(Server *s, const char *path, RsModel *m) {
    char err[ERRBUF_LEN];
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) rs_fail_setup(s, "reward model", err);
    if (!ckpt_has(r, "/reward")) rs_fail_setup(s, path, "no /reward group (train one with `learner rm`)");
    if (ckpt_load_model(r, "reward", &m->g, err) != 0) rs_fail_setup(s, "reward model", err);
    rs_frozen_for_cache(&m->g);
    if (ckpt_has(r, "/reward_norm")) {
        double nm[2];
        if (ckpt_read_f64(r, "/reward_norm", nm, 2, err) != 0) rs_fail_setup(s, "reward model", err);
        if (!isfinite(nm[0]) || !(nm[1] > 0) || !isfinite(nm[1]))
            rs_fail_setup(s, path, "/reward_norm holds a bad (mean, std)");
        m->norm_mean = nm[0];
        m->norm_std = nm[1];
        m->has_norm = 1;
    }
    ckpt_reader_free(r);
    if (m->g.config.head != GPT_HEAD_SCORE) rs_fail_setup(s, path, "the reward model needs a score head");
    if (m->g.config.vocab_size < s->lim.vocab_size) s->lim.vocab_size = m->g.config.vocab_size;
    if (m->g.config.max_seq_len < s->max_T) s->max_T = m->g.config.max_seq_len;
}

/* The reward models: judge.rm_ckpts (comma-separated), else ppo.reward_ckpt. */
static void rs_load_ensemble(Server *s) {
    char err[ERRBUF_LEN], path[CKPT_PATH_LEN], key[CONFIG_STR_MAX];
    const RlhfConfig *c = &s->cfg;
    if (!c->judge.rm_ckpts[0]) {
        if (online_resolve(c->ppo.reward_ckpt, "ppo.reward_ckpt", path, sizeof path, err) != 0)
            rs_fail_setup(s, "reward model (judge.kind = rm, or a judge.route entry rm)", err);
        rs_load_rm(s, path, &s->rm[s->n_rm++]);
        return;
    }
    for (const char *p = c->judge.rm_ckpts; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) p++, len--;
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (len == 0) rs_fail_setup(s, "judge.rm_ckpts", "an empty entry (write PATH,PATH,...)");
        if (s->n_rm == RS_MAX_RM) rs_fail_setup(s, "judge.rm_ckpts", "at most 8 reward models");
        memcpy(key, p, len);
        key[len] = 0;
        if (online_resolve(key, "judge.rm_ckpts", path, sizeof path, err) != 0)
            rs_fail_setup(s, "reward model ensemble", err);
        rs_load_rm(s, path, &s->rm[s->n_rm++]);
        if (!comma) break;
        p = comma + 1;
    }
}

/* judge.kind = mix: the routing table and a judge for each entry that is not the RM. */
static void rs_init_route(Server *s) {
    char err[ERRBUF_LEN];
    if (route_parse(&s->route, s->cfg.judge.route, err) != 0) rs_fail_setup(s, "judge.route", err);
    for (int i = 0; i < s->route.n; i++)
        if (!s->route.e[i].is_rm &&
            judge_init(&s->route_judge[i], s->route.e[i].spec, (uint64_t)s->cfg.judge.task_seed,
                       err) != 0)
            rs_fail_setup(s, "judge.route", err);
    s->use_route = 1;
}

/* The reference policy from `path`, or (the learner computes the reference) only its
 * config, which bounds the messages: vocabulary and sequence length. */
static void rs_load_ref(Server *s, const char *path) {
    char err[ERRBUF_LEN];
    const RlhfConfig *c = &s->cfg;
    s->has_ref = !online_ref_on_learner(c);
    printf("reward server %d: reference log-probs computed on the %s\n", s->roles->role_rank,
           s->has_ref ? "reward server (a full reference copy loaded here)"
                      : "learner (policy with adapters off; no reference copy here)");
    fflush(stdout);
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) rs_fail_setup(s, "reference policy", err);
    const char *g = online_model_group(r, "policy");
    if (!g) rs_fail_setup(s, path, "no model group in this checkpoint");
    GPTConfig mc;
    if (s->has_ref) {
        if (ckpt_load_model(r, g, &s->ref, err) != 0) rs_fail_setup(s, "reference policy", err);
        /* a LoRA checkpoint stands for its base + adapters: the reference is their merge */
        if (lora_ckpt_merge(r, &s->ref, err) < 0) rs_fail_setup(s, "reference policy", err);
        rs_frozen_for_cache(&s->ref);
        mc = s->ref.config;
    } else if (ckpt_read_model_config(r, g, &mc, err) != 0) {
        rs_fail_setup(s, "model.init", err);
    }
    ckpt_reader_free(r);
    if (mc.head != GPT_HEAD_LM)
        rs_fail_setup(s, path, "the reference model needs an LM head (an SFT checkpoint)");
    s->ref.temperature = (float)c->gen.temperature;
    s->ref.lm_chunk_bytes = (size_t)c->run.lm_chunk_mb << 20;
    s->lim.vocab_size = mc.vocab_size;
    s->max_T = c->data.max_prompt_len + c->gen.max_new_tokens;
    if (s->max_T > mc.max_seq_len) s->max_T = mc.max_seq_len;
}

static void rs_init(Server *s) {
    char err[ERRBUF_LEN], path[CKPT_PATH_LEN];
    const RlhfConfig *c = &s->cfg;
    const char *refkey = c->ppo.ref_ckpt[0] ? c->ppo.ref_ckpt : c->model.init;
    if (online_resolve(refkey, c->ppo.ref_ckpt[0] ? "ppo.ref_ckpt" : "model.init", path,
                    sizeof path, err) != 0)
        rs_fail_setup(s, "reference policy", err);
    if (online_load_tokenizer(c, path, &s->tok, err) != 0) rs_fail_setup(s, "tokenizer", err);
    rs_load_ref(s, path);

    if (strcmp(c->judge.kind, "mix") == 0) {
        rs_init_route(s);
        if (route_uses_rm(&s->route)) rs_load_ensemble(s);
    } else if (strcmp(c->judge.kind, "rm") == 0) {
        rs_load_ensemble(s);
    } else {
        char spec[CONFIG_STR_MAX + 8];
        online_judge_spec(c, spec, sizeof spec);
        if (judge_init(&s->judge, spec, (uint64_t)c->judge.task_seed, err) != 0)
            rs_fail_setup(s, "judge", err);
        s->use_judge = 1;
    }
    if (c->judge.monitor_gold) {
        if (judge_init(&s->gold, "gold", (uint64_t)c->judge.task_seed, err) != 0)
            rs_fail_setup(s, "gold judge (judge.monitor_gold)", err);
        s->use_gold = 1;
    }
    s->lim.max_seq_len = s->max_T;
    s->lim.max_batch = c->ppo.actor_batch;
    s->max_rows = c->ppo.max_staleness > 0 ? 4 * c->ppo.actor_batch : c->ppo.actor_batch;
    size_t nt = (size_t)s->max_rows * (size_t)s->max_T;
    s->tokens = xmalloc(nt * sizeof(int));
    s->targets = xmalloc(nt * sizeof(int));
    s->lengths = xmalloc((size_t)s->max_rows * sizeof(int));
    s->scores = xmalloc((size_t)s->max_rows * sizeof(float));
    s->gold_scores = xmalloc((size_t)s->max_rows * sizeof(float));
    s->row_route = xmalloc((size_t)s->max_rows * sizeof(int));
    s->rm_rows = xmalloc((size_t)s->max_rows * sizeof(int));
    s->rm_std = xmalloc((size_t)s->max_rows * sizeof(float));
    s->rm_tokens = xmalloc(nt * sizeof(int));
    s->rm_lengths = xmalloc((size_t)s->max_rows * sizeof(int));
    s->ens = xmalloc((size_t)(s->n_rm > 0 ? s->n_rm : 1) * (size_t)s->max_rows * sizeof(float));
    s->plens = xmalloc((size_t)s->max_rows * sizeof(int));
    s->seq_ptr = xmalloc((size_t)s->max_rows * sizeof(int *));
    s->tg_ptr = xmalloc((size_t)s->max_rows * sizeof(int *));
    s->lp_ptr = xmalloc((size_t)s->max_rows * sizeof(float *));
    s->sub_len = xmalloc((size_t)s->max_rows * sizeof(int));
    s->sub_plen = xmalloc((size_t)s->max_rows * sizeof(int));
    s->cache_scores = xmalloc((size_t)s->max_rows * sizeof(float));
    s->ref_lp = strcmp(c->ppo.shared_prompt, "off") != 0 && s->has_ref ? xalloc_floats(nt) : NULL;
    if (s->has_ref) gpt_reserve(&s->ref, s->max_rows, s->max_T);
    for (int k = 0; k < s->n_rm; k++) gpt_reserve(&s->rm[k].g, s->max_rows, s->max_T);
}

static void rs_free(Server *s) {
    for (int i = 0; i < RS_MAX_PENDING; i++) msg_free(&s->req[i]);
    msg_buf_free(&s->buf);
    msg_buf_free(&s->out);
    msg_batch_free(&s->rep);
    free(s->tokens);
    free(s->targets);
    free(s->lengths);
    free(s->scores);
    free(s->gold_scores);
    free(s->plens), free(s->seq_ptr), free(s->tg_ptr), free(s->lp_ptr), free(s->sub_len);
    free(s->sub_plen), free(s->cache_scores), free(s->ref_lp);
    if (s->has_ref) gpt_free(&s->ref);
    for (int k = 0; k < s->n_rm; k++) gpt_free(&s->rm[k].g);
    free(s->ens);
    free(s->rm_rows);
    free(s->rm_std);
    free(s->rm_tokens);
    free(s->rm_lengths);
    free(s->row_route);
    if (s->use_judge) judge_free(&s->judge);
    for (int i = 0; s->use_route && i < s->route.n; i++) judge_free(&s->route_judge[i]);
    if (s->use_gold) judge_free(&s->gold);
    bpe_free(&s->tok);
}

/* Decode tokens to text without special tokens (invalid UTF-8 replaced). */
static char *rs_text(Server *s, const int32_t *ids, int n) {
    char err[ERRBUF_LEN], *out = NULL;
    size_t len = 0;
    int *tmp = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    for (int i = 0; i < n; i++) tmp[i] = ids[i];
    if (bpe_decode(&s->tok, tmp, (size_t)n, BPE_DECODE_SKIP_SPECIAL | BPE_DECODE_REPLACE_INVALID,
                   &out, &len, err) != 0)
        mpi_fatal("decoding a response: %s (is the tokenizer the policy's?)", err);
    free(tmp);
    return out;
}

/* Text judge scores of every sequence of the pending requests [r0, r1), in row order. A
 * judge error aborts the job, except for the monitor (monitor = 1): a sequence the gold
 * judge cannot score (a prompt not from the bundled task, or cut by data.max_prompt_len)
 * gets ONLINE_GOLD_NONE and is left out of the learner's mean. */
static void rs_judge_rows(Server *s, Judge *j, int r0, int r1, float *out, int monitor) {
    int row = 0;
    for (int q = r0; q < r1; q++) {
        const MsgBatch *b = &s->req[q].batch;
        for (int i = 0; i < b->n; i++, row++) {
            const int32_t *seq = b->tokens + b->tok_off[i];
            char err[ERRBUF_LEN];
            char *pt = rs_text(s, seq, b->prompt_lens[i]);
            char *rt = rs_text(s, seq + b->prompt_lens[i], b->resp_lens[i]);
            JudgeScores js;
            if (judge_score(j, pt, rt, &js, err) == 0)
                out[row] = (float)js.total;
            else if (monitor)
                out[row] = ONLINE_GOLD_NONE;
            else
                mpi_fatal("judge %s: %s", j->spec, err);
            free(pt);
            free(rt);
        }
    }
}

/* ppo.shared_prompt: whether this batch of B rows of stride T goes through the KV caches
 * (score.h): on; or auto, when a prompt is shared and the caches run fewer rows than the
 * padded forward by the cache kernels' rate (~0.8x the forward's on GPT-2 124M). */
#define RS_CACHE_COST 1.25
static int rs_plan_shared(Server *s, int B, int T) {
    const char *mode = s->cfg.ppo.shared_prompt;
    if (strcmp(mode, "off") == 0) return 0;
    if (strcmp(mode, "on") == 0) return 1;
    for (int i = 0; i < B; i++) s->seq_ptr[i] = s->tokens + (size_t)i * T;
    long rows = score_cache_rows(B, s->seq_ptr, s->lengths, s->plens), all = 0;
    for (int i = 0; i < B; i++) all += s->lengths[i];
    return rows < all && (double)rows * RS_CACHE_COST <= (double)B * T;
}

/* Model g over the n batch rows rows[0..n) through its KV cache, each shared prompt once
 * (score_shared_prompts): lp = the log-probs of s->targets (row stride T, gpt_lm_forward's
 * layout), scores[i] = the score of rows[i]; either may be NULL. */
static void rs_cache_rows(Server *s, GPT *g, const int *rows, int n, int T, float *lp,
                          float *scores) {
    gpt_cache_reserve(g, s->max_rows, s->max_T);
    for (int i = 0; i < n; i++) {
        int r = rows[i];
        s->seq_ptr[i] = s->tokens + (size_t)r * T;
        s->sub_len[i] = s->lengths[r], s->sub_plen[i] = s->plens[r];
        s->tg_ptr[i] = s->targets + (size_t)r * T;
        s->lp_ptr[i] = lp ? lp + (size_t)r * T : NULL;
    }
    score_shared_prompts(g, n, s->seq_ptr, s->sub_len, s->sub_plen, lp ? s->tg_ptr : NULL,
                         lp ? s->lp_ptr : NULL, scores);
}

/* The reward model(s) on the n batch rows listed in rm_rows (padded batch of row
 * stride T in s->tokens): out[rm_rows[i]] = the ensemble's combined score. Each model
 * runs once over all n rows; rows are gathered only when they are not the whole batch. */
static void rs_ensemble_rows(Server *s, int n, int T, float *out) {
    if (n == 0) return;
    const int *tok = s->tokens, *len = s->lengths;
    int whole = 1; /* the forward needs the rows gathered; the caches read them in place */
    for (int i = 0; i < n && whole; i++) whole = s->shared || s->rm_rows[i] == i;
    if (!whole) {
        for (int i = 0; i < n; i++) {
            memcpy(s->rm_tokens + (size_t)i * T, s->tokens + (size_t)s->rm_rows[i] * T,
                   (size_t)T * sizeof(int));
            s->rm_lengths[i] = s->lengths[s->rm_rows[i]];
        }
        tok = s->rm_tokens;
        len = s->rm_lengths;
    }
    for (int k = 0; k < s->n_rm; k++) {
        RsModel *m = &s->rm[k];
        const float *raw = s->cache_scores;
        if (s->shared) {
            rs_cache_rows(s, &m->g, s->rm_rows, n, T, NULL, s->cache_scores);
        } else {
            gpt_forward(&m->g, tok, n, T);
            gpt_score_forward(&m->g, len, n, T);
            raw = m->g.scores;
        }
        for (int i = 0; i < n; i++) {
            double v = raw[i];
            if (m->has_norm) v = (v - m->norm_mean) / m->norm_std;
            s->ens[(size_t)i * s->n_rm + k] = (float)v;
        }
    }
    EnsembleRule rule = (EnsembleRule)ensemble_rule_from_name(s->cfg.judge.ensemble);
    for (int i = 0; i < n; i++)
        s->rm_std[s->rm_rows[i]] = (float)ensemble_std(s->ens + (size_t)i * s->n_rm, s->n_rm);
    for (int i = 0; i < n; i++)
        out[s->rm_rows[i]] = (float)ensemble_combine(s->ens + (size_t)i * s->n_rm, s->n_rm, rule,
                                                     s->cfg.judge.ensemble_lambda);
}

/* judge.kind = mix: each row's route entry from its prompt text; text judges score their
 * rows here, the reward model(s) the rows routed to "rm" in one pass; then the entry's
 * scale and offset. */
static void rs_route_rows(Server *s, int r0, int r1, int B, int T) {
    int row = 0, n_rm = 0;
    for (int q = r0; q < r1; q++) {
        const MsgBatch *b = &s->req[q].batch;
        for (int i = 0; i < b->n; i++, row++) {
            const int32_t *seq = b->tokens + b->tok_off[i];
            char *pt = rs_text(s, seq, b->prompt_lens[i]);
            int e = route_pick(&s->route, pt);
            s->row_route[row] = e;
            if (s->route.e[e].is_rm) {
                s->rm_rows[n_rm++] = row;
            } else {
                char err[ERRBUF_LEN];
                char *rt = rs_text(s, seq + b->prompt_lens[i], b->resp_lens[i]);
                JudgeScores js;
                if (judge_score(&s->route_judge[e], pt, rt, &js, err) != 0)
                    mpi_fatal("judge %s (judge.route entry %s): %s", s->route.e[e].spec,
                              s->route.e[e].cat, err);
                s->scores[row] = (float)js.total;
                free(rt);
            }
            free(pt);
        }
    }
    ASSERT(row == B);
    rs_ensemble_rows(s, n_rm, T, s->scores);
    for (int i = 0; i < B; i++) {
        const RouteEntry *e = &s->route.e[s->row_route[i]];
        s->scores[i] = (float)(e->scale * s->scores[i] + e->offset);
    }
}

/* Score and reference log-probs of the pending requests [r0, r1), whose sequences fit in
 * max_rows; replies to each. */
static void rs_process(Server *s, int r0, int r1) {
    double t0 = time_now();
    int B = 0, T = 1;
    for (int q = r0; q < r1; q++) {
        const MsgBatch *b = &s->req[q].batch;
        for (int i = 0; i < b->n; i++) {
            int len = b->prompt_lens[i] + b->resp_lens[i];
            if (len > T) T = len;
        }
        B += b->n;
    }
    ASSERT(B <= s->max_rows && T <= s->max_T);
    int row = 0;
    for (int q = r0; q < r1; q++) {
        const MsgBatch *b = &s->req[q].batch;
        for (int i = 0; i < b->n; i++, row++) {
            const int32_t *seq = b->tokens + b->tok_off[i];
            int np = b->prompt_lens[i], len = np + b->resp_lens[i];
            int *tk = s->tokens + (size_t)row * T, *tg = s->targets + (size_t)row * T;
            for (int t = 0; t < T; t++) {
                tk[t] = t < len ? seq[t] : s->tok.pad_id;
                tg[t] = (t >= np - 1 && t + 1 < len) ? seq[t + 1] : -1;
            }
            s->lengths[row] = len;
            s->plens[row] = np;
        }
    }
    s->shared = rs_plan_shared(s, B, T);
    if (s->has_ref && s->shared) {
        for (int i = 0; i < B; i++) s->rm_rows[i] = i;
        rs_cache_rows(s, &s->ref, s->rm_rows, B, T, s->ref_lp, NULL);
    } else if (s->has_ref) {
        gpt_forward(&s->ref, s->tokens, B, T);
        gpt_lm_forward(&s->ref, s->targets, B, T);
    }
    for (int i = 0; i < B; i++) s->rm_std[i] = ONLINE_GOLD_NONE;
    if (s->use_route)
        rs_route_rows(s, r0, r1, B, T);
    else if (s->n_rm > 0) {
        for (int i = 0; i < B; i++) s->rm_rows[i] = i;
        rs_ensemble_rows(s, B, T, s->scores);
    } else {
        rs_judge_rows(s, &s->judge, r0, r1, s->scores, 0);
    }
    if (s->use_gold) rs_judge_rows(s, &s->gold, r0, r1, s->gold_scores, 1);
    double per_seq = (time_now() - t0) / (double)B;
    row = 0;
    for (int q = r0; q < r1; q++) {
        const Msg *m = &s->req[q];
        const MsgBatch *b = &m->batch;
        MsgBatch *rp = &s->rep;
        msg_batch_clear(rp);
        for (int i = 0; i < b->n; i++) {
            int k = msg_batch_append_seq(rp, b->prompt_ids[i], b->sample_ids[i],
                                         b->tokens + b->tok_off[i], b->prompt_lens[i],
                                         b->tokens + b->tok_off[i] + b->prompt_lens[i],
                                         b->resp_lens[i]);
            rp->scores[k] = s->scores[row + i];
            if (m->want_ref) {
                const float *ref_lp = s->shared ? s->ref_lp : s->ref.logprobs;
                const float *lp = ref_lp + (size_t)(row + i) * T + b->prompt_lens[i] - 1;
                memcpy(rp->ref_logprobs + rp->resp_off[k], lp,
                       (size_t)b->resp_lens[i] * sizeof(float));
            }
        }
        rp->has_ref = m->want_ref;
        float *ts = msg_batch_extra(rp, ONLINE_EXTRA_T_SERVER);
        for (int i = 0; i < b->n; i++) ts[i] = (float)per_seq;
        if (s->n_rm > 1)
            memcpy(msg_batch_extra(rp, ONLINE_EXTRA_RM_STD), s->rm_std + row,
                   (size_t)b->n * sizeof(float));
        if (s->use_route) {
            float *jr = msg_batch_extra(rp, ONLINE_EXTRA_JUDGE);
            for (int i = 0; i < b->n; i++) jr[i] = (float)s->row_route[row + i];
        }
        if (s->use_gold)
            memcpy(msg_batch_extra(rp, ONLINE_EXTRA_GOLD), s->gold_scores + row,
                   (size_t)b->n * sizeof(float));
        row += b->n;
        msg_encode_score_rep(&s->out, m->req_id, rp);
        mpi_send_bytes(MPI_COMM_WORLD, s->src[q], TAG_SCORE_REP, s->out.data, s->out.len);
        s->n_seqs += b->n;
        if (s->shared) s->n_cached += b->n;
    }
    s->t_busy += time_now() - t0;
}

static void rs_usage(FILE *f) {
    fprintf(f,
            "usage: build/reward_server CONFIG.ini [section.key=value ...]\n"
            "Scores the actors' responses (the judge of [judge]: reward model, rule or gold)\n"
            "and computes the reference policy's log-probs, for an online job (ppo, grpo,\n"
            "rloo). It runs only inside ONE mpirun launch with the learner and the actors,\n"
            "with the same config and overrides:\n"
            "  mpirun -np 1 build/learner ppo CONFIG.ini : -np 1 build/reward_server CONFIG.ini \\\n"
            "         : -np 2 build/actor CONFIG.ini\n"
            "  tools/rlhf-run CONFIG.ini -r 1        (builds that line)\n"
            "Overrides: section.key=value (e.g. ppo.reward_ckpt=runs/rm); every key:\n"
            "build/learner help-config.\n"
            "Exit status: 0 when the learner ends the run; 1 on an error (the whole job is\n"
            "aborted; the learner reports config errors); 2 on a usage error.\n");
}

int main(int argc, char **argv) {
    int arc = online_args(argc, argv, "build/reward_server", rs_usage);
    if (arc >= 0) return arc;
    MpiRoles roles;
    MpiRoleNeeds need = mpi_needs_online("ppo");
    mpi_roles_init(&argc, &argv, ROLE_REWARD, &need, &roles);
    MPI_Comm wcomm = online_weights_comm_create(&roles); /* not a member: MPI_COMM_NULL */
    Server s;
    memset(&s, 0, sizeof s);
    s.roles = &roles;
    char err[ERRBUF_LEN];
    if (online_load_config(&s.cfg, argc, argv, err) != 0) {
        mpi_roles_free(&roles); /* the learner reports config errors */
        return 1;
    }
    mpi_config_peer_timeout(s.cfg.run.peer_timeout);
    ops_blas_setup(mpi_threads(s.cfg.run.threads, s.cfg.ppo.max_staleness == 0));
    ops_gemm_choose(s.cfg.run.gemm);
    rs_init(&s);
    for (int i = 0; i < RS_MAX_PENDING; i++) msg_init(&s.req[i]);
    msg_buf_init(&s.buf);
    msg_buf_init(&s.out);
    msg_batch_init(&s.rep);
    int root = online_learner_root(&roles);
    int tags[2] = {TAG_SCORE_REQ, TAG_STOP};
    int batching = s.cfg.ppo.max_staleness > 0;
    for (;;) {
        MPI_Status st;
        double t0 = time_now();
        int tag = mpi_wait_any_message(MPI_COMM_WORLD, MPI_ANY_SOURCE, tags, 2, &st);
        s.t_idle += time_now() - t0;
        if (tag == TAG_STOP) {
            char who[64];
            mpi_recv_msg(MPI_COMM_WORLD, &st, &s.buf, &s.lim, &s.req[0]);
            if (st.MPI_SOURCE != root)
                mpi_fatal("stop message from %s: only learner rank 0 may stop the run",
                          mpi_describe_rank(st.MPI_SOURCE, who, sizeof who));
            break;
        }
        s.n_req = 0;
        int rows = 0;
        for (;;) {
            mpi_recv_msg(MPI_COMM_WORLD, &st, &s.buf, &s.lim, &s.req[s.n_req]);
            s.src[s.n_req] = st.MPI_SOURCE;
            if (s.req[s.n_req].want_ref && !s.has_ref) {
                char who[64];
                mpi_fatal("score request from %s asks for reference log-probs, but this "
                          "server loaded no reference (lora.rank > 0, ppo.ref_ckpt empty: "
                          "the learner computes them); give every program the same config",
                          mpi_describe_rank(st.MPI_SOURCE, who, sizeof who));
            }
            rows += s.req[s.n_req].batch.n;
            s.n_req++;
            if (!batching || s.n_req == RS_MAX_PENDING) break;
            /* more requests already waiting that still fit: take them too */
            int flag = 0;
            MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, TAG_SCORE_REQ, MPI_COMM_WORLD, &flag, &st));
            if (!flag || rows + s.cfg.ppo.actor_batch > s.max_rows) break;
        }
        rs_process(&s, 0, s.n_req);
    }
    if (getenv("RLHF_ACTOR_VERBOSE"))
        fprintf(stderr,
                "reward %d: %ld sequences (%ld through the KV caches, ppo.shared_prompt), "
                "%.2f s busy, %.2f s idle\n",
                roles.role_rank, s.n_seqs, s.n_cached, s.t_busy, s.t_idle);
    online_traffic_report(&roles, "ppo", 0);
    rs_free(&s);
    if (wcomm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&wcomm));
    mpi_roles_free(&roles);
    return 0;
}
