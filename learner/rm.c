/*
 * learner/rm.c — stage 2 of the InstructGPT pipeline: the reward model. The GPT-2 trunk
 * with a scalar score head read at the last token (HF GPT2ForSequenceClassification
 * layout), initialised from an SFT or imported checkpoint (model.init), trained on
 * comparisons {"prompt","chosen","rejected"[,"category"]} with the Bradley–Terry loss
 * -log σ(r(x,y_w) - r(x,y_l) - margin) (Christiano et al. 2017; Ouyang et al. 2022, eq. 1),
 * data-parallel over the learner ranks.
 *
 *   build/learner rm CONFIG [section.key=value ...]
 *
 * Held-out evaluation (data.eval, or rm.eval_split of the training file held out by a
 * hash of the record index): accuracy, mean margin and loss, overall and per category,
 * at run.eval_every and at the end — as JSONL (metrics.jsonl, "eval" records) and in the
 * progress output. With rm.normalize the final checkpoint stores /reward_norm = (mean,
 * std) of the scores of the training responses, which the reward server uses to report
 * (score - mean) / std. Checkpoints (group /reward) and resume as for SFT.
 *
 * Rankings: when data.train is a ranking file (common/rankfile.h, detected by its first
 * line having "responses"), a record is one prompt with K ranked responses and the loss
 * is InstructGPT's eq. 1: every non-tied pair of the ranking weighted 1/C(K,2), all pairs
 * of a ranking in the same forward, one forward row per response (not per pair)
 * (loss_rank_forward). optim.batch_size then counts rankings; data.eval must be a ranking
 * file too; the held-out report counts pairs (pairwise accuracy over each ranking's
 * non-tied pairs) plus "eval_rankings". Pair files train exactly as before.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "dataset.h"
#include "learner.h"
#include "loss.h"
#include "rankfile.h"
#include "trainer.h"
#include "util.h"

#define RM_MAX_CATEGORIES 64

typedef struct {
    Trainer *t;
    PairData pd;
    DataSampler sampler;
    SeqBatch batch;          /* 2P rows: chosen 0..P-1, rejected P..2P-1 */
    int micro;               /* pairs per forward/backward */
    float *dscores;
    int64_t *idx;
    int n_cat;
    char *cat_names[RM_MAX_CATEGORIES];
    double norm[2];          /* mean, std of training scores (rm.normalize) */
    int has_norm;
    /* ranking data (rankfile.h); unused for pair files */
    RankFile rk, rk_eval;
    RankFile *rk_eval_src;
    int64_t *rk_train, n_rk_train, *rk_evidx, n_rk_eval;
    int rows;      /* batch rows: 2 * micro, or K_max if larger */
    int per_fwd;   /* rankings per forward: rows / K_max */
    int *rank_of;  /* (rows) place of each row's response */
    int *off;      /* (per_fwd + 1) first row of each ranking */
    int64_t *rk_idx; /* (per_fwd) record indices of one forward */
} Rm;

static int rm_category(Rm *s, const char *name) {
    const char *n = name && name[0] ? name : "none";
    for (int i = 0; i < s->n_cat; i++)
        if (strcmp(s->cat_names[i], n) == 0) return i;
    if (s->n_cat == RM_MAX_CATEGORIES) return RM_MAX_CATEGORIES - 1; /* "other" bucket */
    s->cat_names[s->n_cat] = xstrdup(s->n_cat == RM_MAX_CATEGORIES - 1 ? "other" : n);
    return s->n_cat++;
}

static int rm_category_cb(void *ctx, const char *name) { return rm_category(ctx, name); }

/* Scores of the current batch (2n rows). */
static const float *rm_scores(Rm *s) {
    GPT *m = &s->t->model;
    gpt_forward(m, s->batch.tokens, s->batch.B, s->batch.T);
    gpt_score_forward(m, s->batch.lengths, s->batch.B, s->batch.T);
    return m->scores;
}

static void rm_eval_report(Rm *s, double *acc, const char *extra);

/* Held-out metrics: per category [pairs, correct, margin sum, loss sum]; index n_cat is
 * the overall total. Categories are registered in file order on every rank (each rank
 * scans all eval categories first), so the arrays line up for the all-reduce. */
static void rm_eval(Rm *s) {
    Trainer *t = s->t;
    DataRecord rec = {0};
    int *cats = xmalloc((size_t)s->micro * sizeof(int));
    char err[ERRBUF_LEN];
    for (int64_t i = 0; i < s->pd.n_eval; i++) { /* same category order on every rank */
        if (dataset_get(s->pd.eval_src, s->pd.eval_idx[i], &rec, err) != 0) trainer_fail(t, 1, "%s", err);
        rm_category(s, rec.category);
        data_record_free(&rec);
    }
    int nc = s->n_cat;
    double *acc = xcalloc((size_t)(nc + 1) * 4, sizeof(double));
    int64_t *idx = xmalloc((size_t)s->micro * sizeof(int64_t));
    for (int64_t i = t->rank; i < s->pd.n_eval;) {
        int n = 0;
        for (; i < s->pd.n_eval && n < s->micro; i += t->nranks) idx[n++] = s->pd.eval_idx[i];
        pair_data_fill(&s->batch, t, s->pd.eval_src, idx, n, rm_category_cb, s, cats);
        const float *sc = rm_scores(s);
        for (int k = 0; k < n; k++) {
            double d = (double)sc[k] - (double)sc[n + k] - t->cfg.rm.margin;
            double l = d > 0 ? log1p(exp(-d)) : -d + log1p(exp(d)); /* -log σ(d) */
            double p = s->batch.p_chosen[k]; /* soft label: -[p log σ(d) + (1-p) log σ(-d)] */
            if (p != 1.0) l = p * l + (1.0 - p) * (d < 0 ? log1p(exp(d)) : d + log1p(exp(-d)));
            double margin = (double)sc[k] - (double)sc[n + k];
            for (int which = 0; which < 2; which++) {
                double *a = acc + (size_t)(which ? nc : cats[k]) * 4;
                a[0] += 1;
                a[1] += margin > 0;
                a[2] += margin;
                a[3] += l;
            }
        }
    }
    rm_eval_report(s, acc, NULL);
    free(acc);
    free(idx);
    free(cats);
}

/* All-reduce the per-category sums acc [(n_cat + 1) * 4] and print and log them on rank
 * 0; extra (may be NULL) is one more JSON field for the record. */
static void rm_eval_report(Rm *s, double *acc, const char *extra) {
    Trainer *t = s->t;
    int nc = s->n_cat;
    trainer_allreduce_sum(t, acc, (nc + 1) * 4);
    if (t->rank == 0) {
        const double *o = acc + (size_t)nc * 4;
        double on = o[0] > 0 ? o[0] : 1;
        size_t cap = 256 + (size_t)nc * 160, len = 0;
        char *fields = xmalloc(cap);
        len += (size_t)snprintf(fields + len, cap - len,
                                "\"eval_accuracy\": %.6f, \"eval_margin\": %.6f, "
                                "\"eval_loss\": %.6f, \"eval_pairs\": %.0f, \"per_category\": {",
                                o[1] / on, o[2] / on, o[3] / on, o[0]);
        printf("rm eval at step %ld: accuracy %.4f | margin %.3f | loss %.4f | %.0f pairs\n",
               t->step, o[1] / on, o[2] / on, o[3] / on, o[0]);
        for (int c = 0; c < nc; c++) {
            const double *a = acc + (size_t)c * 4;
            if (a[0] == 0) continue;
            len += (size_t)snprintf(fields + len, cap - len,
                                    "%s\"%s\": {\"accuracy\": %.6f, \"margin\": %.6f, "
                                    "\"loss\": %.6f, \"pairs\": %.0f}",
                                    len > 0 && fields[len - 1] == '{' ? "" : ", ",
                                    s->cat_names[c], a[1] / a[0], a[2] / a[0], a[3] / a[0], a[0]);
            printf("    %-12s accuracy %.4f | margin %.3f | loss %.4f | %.0f pairs\n",
                   s->cat_names[c], a[1] / a[0], a[2] / a[0], a[3] / a[0], a[0]);
        }
        len += (size_t)snprintf(fields + len, cap - len, "}");
        if (extra) snprintf(fields + len, cap - len, ", %s", extra);
        trainer_log_json(t, fields);
        fflush(stdout);
        free(fields);
    }
}

/* rm.normalize's statistics: count, sum and sum of squares of the scores seen, summed
 * over the learner ranks, give the mean and std every score is then normalised by. */
static void rm_norm_add(double acc[3], const float *sc, int n) {
    for (int j = 0; j < n; j++) {
        acc[0] += 1;
        acc[1] += sc[j];
        acc[2] += (double)sc[j] * sc[j];
    }
}

static void rm_norm_finish(Rm *s, double acc[3]) {
    Trainer *t = s->t;
    trainer_allreduce_sum(t, acc, 3);
    double mean = acc[1] / acc[0], var = acc[2] / acc[0] - mean * mean;
    s->norm[0] = mean;
    s->norm[1] = sqrt(var > 1e-12 ? var : 1e-12);
    s->has_norm = 1;
    if (t->rank == 0)
        printf("rm: score normalisation over %.0f training responses: mean %.4f, std %.4f\n",
               acc[0], s->norm[0], s->norm[1]);
}

/* rm.normalize: mean and std of the scores of up to 1024 training pairs' responses. */
static void rm_normalize(Rm *s) {
    Trainer *t = s->t;
    int64_t n = s->pd.n_train < 1024 ? s->pd.n_train : 1024;
    double acc[3] = {0, 0, 0}; /* count, sum, sum of squares */
    int64_t *idx = xmalloc((size_t)s->micro * sizeof(int64_t));
    for (int64_t i = t->rank; i < n;) {
        int k = 0;
        for (; i < n && k < s->micro; i += t->nranks) idx[k++] = s->pd.train_idx[i];
        pair_data_fill(&s->batch, t, &s->pd.data, idx, k, NULL, NULL, NULL);
        const float *sc = rm_scores(s);
        rm_norm_add(acc, sc, 2 * k);
    }
    free(idx);
    rm_norm_finish(s, acc);
}

// ----------------------------------------------------------------------------
// rankings

/* Open data.train (and data.eval) as ranking files, or split off rm.eval_split. */
static void rm_rank_open(Rm *s) {
    Trainer *t = s->t;
    const RlhfConfig *c = &t->cfg;
    char err[ERRBUF_LEN];
    if (c->rm.margin > 0)
        trainer_fail(t, 0, "rm.margin = %g applies to pair files only; data.train %s holds "
                           "rankings: set rm.margin=0",
                     c->rm.margin, c->data.train);
    if (rank_file_load(&s->rk, c->data.train, err) != 0) trainer_fail(t, 0, "%s", err);
    if (c->data.eval[0]) {
        if (!rank_file_sniff(c->data.eval) && access(c->data.eval, R_OK) == 0)
            trainer_fail(t, 0, "data.eval %s is not a ranking file, but data.train is: give "
                               "{\"prompt\",\"responses\",\"ranks\"} lines for both",
                         c->data.eval);
        if (rank_file_load(&s->rk_eval, c->data.eval, err) != 0) trainer_fail(t, 0, "%s", err);
        s->rk_eval_src = &s->rk_eval;
        s->n_rk_train = s->rk.n;
        s->rk_train = xmalloc((size_t)s->n_rk_train * sizeof(int64_t));
        for (int64_t i = 0; i < s->n_rk_train; i++) s->rk_train[i] = i;
        s->n_rk_eval = s->rk_eval.n;
        s->rk_evidx = xmalloc((size_t)s->n_rk_eval * sizeof(int64_t));
        for (int64_t i = 0; i < s->n_rk_eval; i++) s->rk_evidx[i] = i;
    } else {
        s->rk_eval_src = &s->rk;
        data_split(s->rk.n, c->rm.eval_split, (uint64_t)c->run.seed, &s->rk_train, &s->n_rk_train,
                   &s->rk_evidx, &s->n_rk_eval);
    }
    if (s->n_rk_train < 1) trainer_fail(t, 0, "no training rankings left after the held-out split");
    if (t->rank == 0 && (s->rk.n_other || (s->rk_eval_src == &s->rk_eval && s->rk_eval.n_other)))
        fprintf(stderr, "rm: %lld non-ranking line(s) (skips) left out\n",
                (long long)(s->rk.n_other + (s->rk_eval_src == &s->rk_eval ? s->rk_eval.n_other : 0)));
}

static void rm_rank_free(Rm *s) {
    rank_file_free(&s->rk);
    rank_file_free(&s->rk_eval);
    free(s->rk_train);
    free(s->rk_evidx);
    free(s->rank_of);
    free(s->off);
    free(s->rk_idx);
}

/* Fill the batch with the responses of n rankings (indices into f), one row each;
 * s->off / s->rank_of describe the groups. cats[i] (if given) = category of ranking i. */
static void rm_rank_fill(Rm *s, const RankFile *f, const int64_t *idx, int n, int *cats) {
    int row = 0;
    seq_batch_clear(&s->batch);
    for (int g = 0; g < n; g++) {
        const RankRecord *r = &f->rec[idx[g]];
        s->off[g] = row;
        for (int i = 0; i < r->k; i++, row++) {
            seq_batch_add(&s->batch, s->t, r->prompt, r->resp[i]);
            s->rank_of[row] = r->rank[i];
        }
        if (cats) cats[g] = rm_category(s, r->category);
    }
    s->off[n] = row;
    seq_batch_finish(&s->batch, s->t);
}

/* rankings in the forward that starts at i0 of n: at most per_fwd */
static int rm_rank_chunk(const Rm *s, int n, int i0) {
    return n - i0 < s->per_fwd ? n - i0 : s->per_fwd;
}

/* Held-out pairwise metrics over the rankings' non-tied pairs, per category. */
static void rm_rank_eval(Rm *s) {
    Trainer *t = s->t;
    const RankFile *f = s->rk_eval_src;
    for (int64_t i = 0; i < s->n_rk_eval; i++) rm_category(s, f->rec[s->rk_evidx[i]].category);
    int nc = s->n_cat;
    double *acc = xcalloc((size_t)(nc + 1) * 4, sizeof(double));
    int64_t *idx = xmalloc((size_t)s->per_fwd * sizeof(int64_t));
    int *cats = xmalloc((size_t)s->per_fwd * sizeof(int));
    double n_rankings = 0;
    for (int64_t i = t->rank; i < s->n_rk_eval;) {
        int n = 0;
        for (; i < s->n_rk_eval && n < s->per_fwd; i += t->nranks) idx[n++] = s->rk_evidx[i];
        rm_rank_fill(s, f, idx, n, cats);
        const float *sc = rm_scores(s);
        n_rankings += n;
        for (int g = 0; g < n; g++)
            for (int a = s->off[g]; a < s->off[g + 1]; a++)
                for (int b = a + 1; b < s->off[g + 1]; b++) {
                    if (s->rank_of[a] == s->rank_of[b]) continue;
                    int w = s->rank_of[a] < s->rank_of[b] ? a : b, l = w == a ? b : a;
                    double d = (double)sc[w] - (double)sc[l];
                    double loss = d > 0 ? log1p(exp(-d)) : -d + log1p(exp(d));
                    for (int which = 0; which < 2; which++) {
                        double *x = acc + (size_t)(which ? nc : cats[g]) * 4;
                        x[0] += 1;
                        x[1] += d > 0;
                        x[2] += d;
                        x[3] += loss;
                    }
                }
    }
    trainer_allreduce_sum(t, &n_rankings, 1);
    char extra[64];
    snprintf(extra, sizeof extra, "\"eval_rankings\": %.0f", n_rankings);
    rm_eval_report(s, acc, extra);
    free(acc);
    free(idx);
    free(cats);
}

/* One step's loss and gradient over this rank's n rankings (of G in the global batch):
 * st += {loss, correct pairs, tokens}; *pairs += non-tied pairs. */
static void rm_rank_step(Rm *s, int n, int G, double st[3], double *pairs) {
    Trainer *t = s->t;
    int64_t *idx = s->rk_idx;
    for (int i0 = 0; i0 < n;) {
        int k = rm_rank_chunk(s, n, i0);
        for (int g = 0; g < k; g++) idx[g] = s->rk_train[s->idx[i0 + g]];
        rm_rank_fill(s, &s->rk, idx, k, NULL);
        const float *sc = rm_scores(s);
        LossRankStats rs;
        double l = loss_rank_forward(&rs, sc, s->rank_of, s->off, k, (double)G);
        memset(s->dscores, 0, (size_t)s->off[k] * sizeof(float));
        loss_rank_backward(s->dscores, sc, s->rank_of, s->off, k, (double)G);
        gpt_score_backward(&t->model, s->dscores, s->batch.B, s->batch.T);
        st[0] += l;
        st[1] += rs.accuracy * rs.n_pairs;
        *pairs += rs.n_pairs;
        for (int r = 0; r < s->batch.B; r++) st[2] += s->batch.lengths[r];
        i0 += k;
    }
}

/* rm.normalize over rankings: the scores of every response of up to 256 rankings. */
static void rm_rank_normalize(Rm *s) {
    Trainer *t = s->t;
    int64_t n = s->n_rk_train < 256 ? s->n_rk_train : 256;
    double acc[3] = {0, 0, 0};
    int64_t *idx = xmalloc((size_t)s->per_fwd * sizeof(int64_t));
    for (int64_t i = t->rank; i < n;) {
        int k = 0;
        for (; i < n && k < s->per_fwd; i += t->nranks) idx[k++] = s->rk_train[i];
        rm_rank_fill(s, &s->rk, idx, k, NULL);
        const float *sc = rm_scores(s);
        rm_norm_add(acc, sc, s->off[k]);
    }
    free(idx);
    rm_norm_finish(s, acc);
}

static int rm_save_extra(void *ctx, struct CkptWriter *w, char *err) {
    Rm *s = ctx;
    if (!s->has_norm) return 0;
    return ckpt_write_f64(w, "/reward_norm", s->norm, 2, err);
}

int learner_rm(int argc, char **argv, MpiRoles *roles) {
    MPI_Comm comm = roles->role_comm;
    char err[ERRBUF_LEN];
    Trainer tr;
    Rm s;
    memset(&s, 0, sizeof s);
    s.t = &tr;
    if (argc < 1) {
        fprintf(stderr, "usage: learner rm CONFIG.ini [section.key=value ...]\n");
        return 2;
    }
    trainer_init(&tr, "rm", "reward", GPT_HEAD_SCORE, argv[0], argc - 1, argv + 1, comm);
    tr.save_extra = rm_save_extra;
    tr.extra_ctx = &s;
    const RlhfConfig *c = &tr.cfg;
    const int ranking = rank_file_sniff(c->data.train);
    if (ranking)
        rm_rank_open(&s);
    else
        pair_data_open(&s.pd, &tr);
    const int64_t n_train = ranking ? s.n_rk_train : s.pd.n_train;
    const int64_t n_eval = ranking ? s.n_rk_eval : s.pd.n_eval;

    int G = c->optim.batch_size;
    int share = data_shard_size(G, 0, tr.nranks);
    s.micro = c->optim.micro_batch_size > 0 ? c->optim.micro_batch_size : share;
    if (s.micro > share) s.micro = share;
    if (s.micro < 1) s.micro = 1;
    int maxT = c->data.max_prompt_len + c->data.max_response_len;
    s.rows = 2 * s.micro;
    if (ranking) { /* the same row budget, at least one whole ranking per forward */
        int kmax = s.rk.k_max > s.rk_eval.k_max ? s.rk.k_max : s.rk_eval.k_max;
        if (s.rows < kmax) s.rows = kmax;
        s.per_fwd = s.rows / kmax;
        s.rank_of = xmalloc((size_t)s.rows * sizeof(int));
        s.off = xmalloc((size_t)(s.per_fwd + 1) * sizeof(int));
        s.rk_idx = xmalloc((size_t)s.per_fwd * sizeof(int64_t));
    }
    seq_batch_init(&s.batch, s.rows, maxT);
    gpt_reserve(&tr.model, s.rows, maxT);
    s.dscores = xalloc_floats((size_t)s.rows);
    s.idx = xmalloc((size_t)(share > 0 ? share : 1) * sizeof(int64_t));
    data_sampler_init(&s.sampler, n_train, (uint64_t)c->run.seed, c->data.shuffle);
    tr.sampler = &s.sampler;
    tr.total_steps = c->optim.epochs > 0 ? (long)((n_train * (int64_t)c->optim.epochs + G - 1) / G)
                                         : (long)c->optim.steps;
    tr.sched = (AdamWSchedule){.max_lr = (float)c->optim.lr,
                               .min_lr = (float)c->optim.min_lr,
                               .warmup = c->optim.warmup_steps,
                               .total = tr.total_steps > c->optim.warmup_steps ? tr.total_steps : 0};
    if (adamw_schedule_validate(&tr.sched, err) != 0) trainer_fail(&tr, 0, "optim: %s", err);
    trainer_resume(&tr);
    if (tr.rank == 0 && ranking)
        printf("rm: %lld training rankings (%lld pairs in the file), %lld held-out rankings, "
               "global batch %d rankings, %ld steps\n",
               (long long)n_train, (long long)s.rk.n_pairs, (long long)n_eval, G, tr.total_steps);
    else if (tr.rank == 0)
        printf("rm: %lld training pairs, %lld held-out pairs, global batch %d, %ld steps\n",
               (long long)n_train, (long long)n_eval, G, tr.total_steps);

    double gnorm = 0, acc_sum = 0, loss_sum = 0;
    int acc_n = 0;
    float lr = 0;
    int64_t *rec_idx = xmalloc((size_t)s.micro * sizeof(int64_t));
    float *margins = NULL; /* rm.margin, the same for every pair */
    if (c->rm.margin > 0) {
        margins = xmalloc((size_t)s.micro * sizeof(float));
        for (int j = 0; j < s.micro; j++) margins[j] = (float)c->rm.margin;
    }
    while (tr.step < tr.total_steps) {
        int n = data_sampler_next(&s.sampler, G, tr.rank, tr.nranks, s.idx);
        gpt_zero_grad(&tr.model);
        double st[4] = {0, 0, 0, G}; /* loss sum (already / G), correct, tokens, pairs */
        if (ranking) {
            st[3] = 0;
            rm_rank_step(&s, n, G, st, &st[3]);
        }
        for (int i0 = 0; !ranking && i0 < n; i0 += s.micro) {
            int k = 0;
            for (int i = i0; i < n && i < i0 + s.micro; i++) rec_idx[k++] = s.pd.train_idx[s.idx[i]];
            pair_data_fill(&s.batch, &tr, &s.pd.data, rec_idx, k, NULL, NULL, NULL);
            const float *sc = rm_scores(&s);
            LossBTStats bs;
            const float *soft = s.batch.soft ? s.batch.p_chosen : NULL; /* AI feedback */
            double l = loss_bt_soft_forward(&bs, sc, sc + k, margins, soft, k, (double)G);
            memset(s.dscores, 0, (size_t)2 * k * sizeof(float));
            loss_bt_soft_backward(s.dscores, s.dscores + k, sc, sc + k, margins, soft, k, (double)G);
            gpt_score_backward(&tr.model, s.dscores, s.batch.B, s.batch.T);
            st[0] += l;
            st[1] += bs.accuracy * k;
            for (int r = 0; r < s.batch.B; r++) st[2] += s.batch.lengths[r];
        }
        trainer_allreduce_sum(&tr, st, ranking ? 4 : 3);
        tr.tokens_since_log += (long)st[2];
        trainer_step(&tr, &gnorm, &lr);
        loss_sum += st[0];
        double acc = st[3] > 0 ? st[1] / st[3] : 0; /* pairs: st[3] = G */
        acc_sum += acc;
        acc_n++;
        char fields[256];
        snprintf(fields, sizeof fields,
                 "\"loss\": %.6f, \"accuracy\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g", st[0],
                 acc, lr, gnorm);
        trainer_log_json(&tr, fields);
        if (tr.step % c->run.log_every == 0 || tr.step == tr.total_steps) {
            char text[160];
            snprintf(text, sizeof text, "loss %.4f | train acc %.3f | lr %.2e | gnorm %.3f",
                     loss_sum / acc_n, acc_sum / acc_n, lr, gnorm);
            trainer_progress(&tr, text);
            loss_sum = acc_sum = 0;
            acc_n = 0;
        }
        if (c->run.eval_every > 0 && tr.step % c->run.eval_every == 0 && tr.step < tr.total_steps &&
            n_eval > 0)
            ranking ? rm_rank_eval(&s) : rm_eval(&s);
        if (trainer_maybe_save(&tr)) break;
    }
    if (!tr.stopped) {
        if (n_eval > 0) ranking ? rm_rank_eval(&s) : rm_eval(&s);
        if (c->rm.normalize) ranking ? rm_rank_normalize(&s) : rm_normalize(&s);
        trainer_save(&tr);
    }

    free(rec_idx);
    free(margins);
    for (int i = 0; i < s.n_cat; i++) free(s.cat_names[i]);
    free(s.dscores);
    free(s.idx);
    seq_batch_free(&s.batch);
    data_sampler_free(&s.sampler);
    if (ranking)
        rm_rank_free(&s);
    else
        pair_data_free(&s.pd);
    trainer_free(&tr);
    return 0;
}
