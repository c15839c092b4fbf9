/*
 * learner/dpo.c — Direct Preference Optimization (Rafailov et al. 2023): RLHF without a
 * reward model or sampling, on comparisons {"prompt","chosen","rejected"}. The policy and
 * the frozen reference both start from model.init (the SFT checkpoint); the loss is
 *   -log σ(β[(lp_θ(y_w) - lp_ref(y_w)) - (lp_θ(y_l) - lp_ref(y_l))])
 * with lp the summed log-probability of the response tokens (prompt tokens excluded),
 * or its conservative (label-smoothed, dpo.loss=cdpo) or IPO (Azar et al. 2023,
 * dpo.loss=ipo) variants — loss.h implements all three. IPO compares per-token means of
 * the log-probs by default (lp / response tokens, for policy and reference alike, as
 * TRL's loss_type="ipo" does); dpo.ipo_logps = sum gives it the sums.
 *
 *   build/learner dpo CONFIG [section.key=value ...]
 *
 * Reference log-probs: with dpo.ref_cache (default) they are computed once at start for
 * every training and held-out pair, in a fixed order of fixed chunks (so the values do
 * not depend on the rank count, the step or a resume), spread over the ranks and shared
 * with an all-reduce; the reference model is then freed. Without it the reference model
 * stays in memory and is run on every micro-batch.
 *
 * Logs per step (train) and at run.eval_every (held-out): loss, reward accuracy (implicit
 * reward of chosen > rejected), chosen / rejected implicit rewards β(lp_θ - lp_ref) and
 * their margin. Checkpoints (group /policy) and exact resume as for SFT.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "dataset.h"
#include "learner.h"
#include "loss.h"
#include "mpi_util.h"
#include "trainer.h"
#include "lora.h"
#include "util.h"

typedef struct {
    Trainer *t;
    PairData pd;
    DataSampler sampler;
    SeqBatch batch;
    int micro;
    GPT ref;            /* the frozen reference (freed after caching) */
    int have_ref_model;
    float *ref_train;   /* (2 * n_train): [w, l] per training pair, when cached */
    float *ref_eval;    /* (2 * n_eval) */
    LossDPOConfig lc;
    float *pi, *refs, *dpi, *dlogprobs; /* (2*micro) sums, (micro*T) */
    int mean_logps;     /* ipo with dpo.ipo_logps = mean: the loss sees per-token means */
    float *len;         /* (2*micro) response tokens of each row (chosen rows first) */
    float *piv, *refv, *dpiv; /* (2*micro) the loss's inputs and their gradient */
    int64_t *idx;
} Dpo;

/* Response token counts of the batch's rows into s->len (chosen rows 0..k-1 first). */
static void dpo_row_lengths(Dpo *s) {
    const SeqBatch *b = &s->batch;
    for (int j = 0; j < b->B; j++) {
        float n = 0;
        for (int t = 0; t < b->T; t++) n += b->mask[(size_t)j * b->T + t];
        s->len[j] = n;
    }
}

/* The loss's inputs for the batch's k pairs (s->pi, s->refs hold the sums): the sums
 * themselves, or the per-token means when mean_logps. */
static void dpo_loss_inputs(Dpo *s, int k, const float **pi, const float **ref) {
    *pi = s->pi;
    *ref = s->refs;
    if (!s->mean_logps) return;
    dpo_row_lengths(s);
    loss_seq_mean_forward(s->piv, s->pi, s->len, 2 * k);
    loss_seq_mean_forward(s->refv, s->refs, s->len, 2 * k);
    *pi = s->piv;
    *ref = s->refv;
}

/* Response log-prob sums of the 2n rows of the current batch under model m. */
static void dpo_sums(Dpo *s, GPT *m, float *out) {
    SeqBatch *b = &s->batch;
    gpt_forward(m, b->tokens, b->B, b->T);
    gpt_lm_forward(m, b->targets, b->B, b->T);
    loss_seq_sum_forward(out, m->logprobs, b->mask, b->B, b->T);
}

/* Reference sums of the current batch: the reference model, or with LoRA the policy
 * itself with its adapters off (the base weights: no second copy of the model). */
static void dpo_ref_sums(Dpo *s, float *out) {
    GPT *m = &s->t->model;
    if (!m->lora) {
        dpo_sums(s, &s->ref, out);
        return;
    }
    m->lora->enabled = 0;
    dpo_sums(s, m, out);
    m->lora->enabled = 1;
}

/* Reference sums of records list[0..n) into out[2i], out[2i+1], chunked in a fixed way:
 * chunk c (list positions [c*micro, (c+1)*micro)) is computed by rank c % nranks. */
static void dpo_cache_refs(Dpo *s, Dataset *d, const int64_t *list, int64_t n, float *out) {
    Trainer *t = s->t;
    memset(out, 0, (size_t)(2 * n) * sizeof(float));
    float *sums = xmalloc((size_t)2 * s->micro * sizeof(float));
    int64_t nchunks = (n + s->micro - 1) / s->micro;
    for (int64_t c = t->rank; c < nchunks; c += t->nranks) {
        int64_t i0 = c * s->micro;
        int k = (int)(n - i0 < s->micro ? n - i0 : s->micro);
        pair_data_fill(&s->batch, t, d, list + i0, k, NULL, NULL, NULL);
        dpo_ref_sums(s, sums);
        for (int j = 0; j < k; j++) {
            out[2 * (i0 + j)] = sums[j];
            out[2 * (i0 + j) + 1] = sums[k + j];
        }
    }
    free(sums);
    /* every value was written by exactly one rank, the others hold 0: the sum is exact */
    if (t->nranks > 1)
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, out, (int)(2 * n), MPI_FLOAT, MPI_SUM, t->comm));
}

/* Reference sums for the current batch: from the cache (positions pos[] into the cache
 * array) or by running the reference model. */
static void dpo_ref_for_batch(Dpo *s, const float *cache, const int64_t *pos, int k) {
    if (cache) {
        for (int j = 0; j < k; j++) {
            s->refs[j] = cache[2 * pos[j]];
            s->refs[k + j] = cache[2 * pos[j] + 1];
        }
    } else {
        dpo_ref_sums(s, s->refs);
    }
}

static void dpo_eval(Dpo *s) {
    Trainer *t = s->t;
    double acc[6] = {0}; /* loss sum, correct, chosen reward, rejected reward, margin, n */
    int64_t *pos = xmalloc((size_t)s->micro * sizeof(int64_t));
    int64_t *rec = xmalloc((size_t)s->micro * sizeof(int64_t));
    int train = lora_eval_begin(t->model.lora); /* no LoRA dropout in evaluation */
    for (int64_t i = t->rank; i < s->pd.n_eval;) {
        int k = 0;
        for (; i < s->pd.n_eval && k < s->micro; i += t->nranks) {
            pos[k] = i;
            rec[k++] = s->pd.eval_idx[i];
        }
        pair_data_fill(&s->batch, t, s->pd.eval_src, rec, k, NULL, NULL, NULL);
        dpo_sums(s, &t->model, s->pi);
        dpo_ref_for_batch(s, s->ref_eval, pos, k);
        LossDPOConfig lc = s->lc;
        lc.denom = 0;
        LossDPOStats st;
        const float *pi, *ref;
        dpo_loss_inputs(s, k, &pi, &ref);
        loss_dpo_soft_forward(&st, pi, pi + k, ref, ref + k, s->batch.soft ? s->batch.p_chosen : NULL,
                              &lc, k);
        acc[0] += st.loss * k;
        acc[1] += st.accuracy * k;
        acc[2] += st.chosen_reward * k;
        acc[3] += st.rejected_reward * k;
        acc[4] += st.margin * k;
        acc[5] += k;
    }
    lora_eval_end(t->model.lora, train);
    free(pos);
    free(rec);
    trainer_allreduce_sum(t, acc, 6);
    double n = acc[5] > 0 ? acc[5] : 1;
    char fields[320];
    snprintf(fields, sizeof fields,
             "\"eval_loss\": %.6f, \"eval_accuracy\": %.6f, \"eval_chosen_reward\": %.6f, "
             "\"eval_rejected_reward\": %.6f, \"eval_margin\": %.6f, \"eval_pairs\": %.0f",
             acc[0] / n, acc[1] / n, acc[2] / n, acc[3] / n, acc[4] / n, acc[5]);
    trainer_log_json(t, fields);
    if (t->rank == 0) {
        printf("dpo eval at step %ld: loss %.4f | reward accuracy %.4f | chosen %.3f | "
               "rejected %.3f | margin %.3f | %.0f pairs\n",
               t->step, acc[0] / n, acc[1] / n, acc[2] / n, acc[3] / n, acc[4] / n, acc[5]);
        fflush(stdout);
    }
}

int learner_dpo(int argc, char **argv, MpiRoles *roles) {
    MPI_Comm comm = roles->role_comm;
    char err[ERRBUF_LEN];
    Trainer tr;
    Dpo s;
    memset(&s, 0, sizeof s);
    s.t = &tr;
    if (argc < 1) {
        fprintf(stderr, "usage: learner dpo CONFIG.ini [section.key=value ...]\n");
        return 2;
    }
    trainer_init(&tr, "dpo", "policy", GPT_HEAD_LM, argv[0], argc - 1, argv + 1, comm);
    const RlhfConfig *c = &tr.cfg;
    if (!c->model.init[0])
        trainer_fail(&tr, 0, "dpo needs model.init: the SFT checkpoint (policy and reference)");
    s.lc = (LossDPOConfig){.type = strcmp(c->dpo.loss, "ipo") == 0 ? LOSS_DPO_IPO : LOSS_DPO_SIGMOID,
                           .beta = (float)c->dpo.beta,
                           .label_smoothing = strcmp(c->dpo.loss, "cdpo") == 0
                                                  ? (float)c->dpo.label_smoothing
                                                  : 0.0f};
    if (loss_dpo_config_validate(&s.lc, err) != 0) trainer_fail(&tr, 0, "dpo: %s", err);
    s.mean_logps = s.lc.type == LOSS_DPO_IPO && strcmp(c->dpo.ipo_logps, "mean") == 0;
    pair_data_open(&s.pd, &tr);

    /* the reference: the same weights as the policy starts with */
    if (!tr.model.lora) {
        gpt_init(&s.ref, &tr.model.config);
        s.ref.lm_chunk_bytes = tr.model.lm_chunk_bytes;
        memcpy(s.ref.params, tr.model.params, tr.model.num_params * sizeof(float));
        s.have_ref_model = 1;
    }

    int G = c->optim.batch_size;
    int share = data_shard_size(G, 0, tr.nranks);
    s.micro = c->optim.micro_batch_size > 0 ? c->optim.micro_batch_size : share;
    if (s.micro > share) s.micro = share;
    if (s.micro < 1) s.micro = 1;
    int maxT = c->data.max_prompt_len + c->data.max_response_len;
    seq_batch_init(&s.batch, 2 * s.micro, maxT);
    gpt_reserve(&tr.model, 2 * s.micro, maxT);
    if (s.have_ref_model) gpt_reserve(&s.ref, 2 * s.micro, maxT);
    s.pi = xalloc_floats((size_t)2 * s.micro);
    s.refs = xalloc_floats((size_t)2 * s.micro);
    s.dpi = xalloc_floats((size_t)2 * s.micro);
    s.len = xalloc_floats((size_t)2 * s.micro);
    s.piv = xalloc_floats((size_t)2 * s.micro);
    s.refv = xalloc_floats((size_t)2 * s.micro);
    s.dpiv = xalloc_floats((size_t)2 * s.micro);
    s.dlogprobs = xalloc_floats((size_t)2 * s.micro * maxT);
    s.idx = xmalloc((size_t)(share > 0 ? share : 1) * sizeof(int64_t));

    if (c->dpo.ref_cache) {
        double t0 = time_now();
        s.ref_train = xmalloc((size_t)(2 * s.pd.n_train) * sizeof(float));
        s.ref_eval = xmalloc((size_t)(2 * (s.pd.n_eval > 0 ? s.pd.n_eval : 1)) * sizeof(float));
        dpo_cache_refs(&s, &s.pd.data, s.pd.train_idx, s.pd.n_train, s.ref_train);
        dpo_cache_refs(&s, s.pd.eval_src, s.pd.eval_idx, s.pd.n_eval, s.ref_eval);
        gpt_free(&s.ref);
        s.have_ref_model = 0;
        if (tr.rank == 0)
            printf("dpo: reference log-probs of %lld + %lld pairs cached in %.1f s\n",
                   (long long)s.pd.n_train, (long long)s.pd.n_eval, time_now() - t0);
    }

    data_sampler_init(&s.sampler, s.pd.n_train, (uint64_t)c->run.seed, c->data.shuffle);
    tr.sampler = &s.sampler;
    tr.total_steps = c->optim.epochs > 0
                         ? (long)((s.pd.n_train * (int64_t)c->optim.epochs + G - 1) / G)
                         : (long)c->optim.steps;
    tr.sched = (AdamWSchedule){.max_lr = (float)c->optim.lr,
                               .min_lr = (float)c->optim.min_lr,
                               .warmup = c->optim.warmup_steps,
                               .total = tr.total_steps > c->optim.warmup_steps ? tr.total_steps : 0};
    if (adamw_schedule_validate(&tr.sched, err) != 0) trainer_fail(&tr, 0, "optim: %s", err);
    trainer_resume(&tr);
    if (tr.rank == 0)
        printf("dpo: %lld training pairs, %lld held-out, beta %.3g, loss %s%s, global batch "
               "%d, %ld steps\n", (long long)s.pd.n_train, (long long)s.pd.n_eval, c->dpo.beta,
               c->dpo.loss, s.lc.type != LOSS_DPO_IPO ? ""
                            : s.mean_logps ? " on per-token mean log-probs"
                                           : " on summed log-probs",
               G, tr.total_steps);

    int64_t *rec = xmalloc((size_t)s.micro * sizeof(int64_t));
    int64_t *pos = xmalloc((size_t)s.micro * sizeof(int64_t));
    double gnorm = 0;
    float lr = 0;
    double run[3] = {0, 0, 0}; /* loss, accuracy, margin since the last progress line */
    int run_n = 0;
    LossDPOConfig lc = s.lc;
    lc.denom = G; /* every pair of the global batch weighs 1/G */
    while (tr.step < tr.total_steps) {
        int n = data_sampler_next(&s.sampler, G, tr.rank, tr.nranks, s.idx);
        gpt_zero_grad(&tr.model);
        /* loss (already /G, with the NLL term), correct, chosen, rejected, margin, tokens,
         * chosen per-token NLL (/G) */
        double st[7] = {0};
        for (int i0 = 0; i0 < n; i0 += s.micro) {
            int k = 0;
            for (int i = i0; i < n && i < i0 + s.micro; i++) {
                pos[k] = s.idx[i];
                rec[k++] = s.pd.train_idx[s.idx[i]];
            }
            pair_data_fill(&s.batch, &tr, &s.pd.data, rec, k, NULL, NULL, NULL);
            if (!s.ref_train) dpo_ref_sums(&s, s.refs);
            dpo_sums(&s, &tr.model, s.pi);
            if (s.ref_train) dpo_ref_for_batch(&s, s.ref_train, pos, k);
            LossDPOStats ds;
            const float *pi, *ref;
            dpo_loss_inputs(&s, k, &pi, &ref);
            const float *soft = s.batch.soft ? s.batch.p_chosen : NULL; /* AI feedback */
            st[0] += loss_dpo_soft_forward(&ds, pi, pi + k, ref, ref + k, soft, &lc, k);
            st[1] += ds.accuracy * k;
            st[2] += ds.chosen_reward * k;
            st[3] += ds.rejected_reward * k;
            st[4] += ds.margin * k;
            /* dpi: the gradient w.r.t. the sums, through the means when the loss saw them */
            memset(s.dpi, 0, (size_t)2 * k * sizeof(float));
            if (s.mean_logps) {
                memset(s.dpiv, 0, (size_t)2 * k * sizeof(float));
                loss_dpo_soft_backward(s.dpiv, s.dpiv + k, pi, pi + k, ref, ref + k, soft, &lc, k);
                loss_seq_mean_backward(s.dpi, s.dpiv, s.len, 2 * k);
            } else {
                loss_dpo_soft_backward(s.dpi, s.dpi + k, pi, pi + k, ref, ref + k, soft, &lc, k);
            }
            if (c->dpo.sft_coef > 0) {
                dpo_row_lengths(&s);
                float a = (float)c->dpo.sft_coef;
                double nll = loss_seq_nll_forward(s.pi, s.len, a, G, k);
                st[0] += nll;
                st[6] += nll / a;
                loss_seq_nll_backward(s.dpi, s.len, a, G, k);
            }
            memset(s.dlogprobs, 0, (size_t)s.batch.B * s.batch.T * sizeof(float));
            loss_seq_sum_backward(s.dlogprobs, s.dpi, s.batch.mask, s.batch.B, s.batch.T);
            gpt_lm_backward(&tr.model, s.dlogprobs, NULL, s.batch.B, s.batch.T);
            for (int r = 0; r < s.batch.B; r++) st[5] += s.batch.lengths[r];
        }
        trainer_allreduce_sum(&tr, st, 7);
        tr.tokens_since_log += (long)st[5];
        trainer_step(&tr, &gnorm, &lr);
        char fields[384];
        int nf = snprintf(fields, sizeof fields,
                 "\"loss\": %.6f, \"accuracy\": %.6f, \"chosen_reward\": %.6f, "
                 "\"rejected_reward\": %.6f, \"margin\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g",
                 st[0], st[1] / G, st[2] / G, st[3] / G, st[4] / G, lr, gnorm);
        if (c->dpo.sft_coef > 0 && nf > 0 && (size_t)nf < sizeof fields)
            snprintf(fields + nf, sizeof fields - (size_t)nf, ", \"chosen_nll\": %.6f", st[6]);
        trainer_log_json(&tr, fields);
        run[0] += st[0];
        run[1] += st[1] / G;
        run[2] += st[4] / G;
        run_n++;
        if (tr.step % c->run.log_every == 0 || tr.step == tr.total_steps) {
            char text[192];
            snprintf(text, sizeof text, "loss %.4f | reward acc %.3f | margin %.3f | lr %.2e",
                     run[0] / run_n, run[1] / run_n, run[2] / run_n, lr);
            trainer_progress(&tr, text);
            run[0] = run[1] = run[2] = 0;
            run_n = 0;
        }
        if (c->run.eval_every > 0 && tr.step % c->run.eval_every == 0 &&
            tr.step < tr.total_steps && s.pd.n_eval > 0)
            dpo_eval(&s);
        if (trainer_maybe_save(&tr)) break;
    }
    if (!tr.stopped) {
        if (s.pd.n_eval > 0) dpo_eval(&s);
        trainer_save(&tr);
    }
    free(rec);
    free(pos);
    free(s.pi);
    free(s.refs);
    free(s.dpi);
    free(s.len);
    free(s.piv);
    free(s.refv);
    free(s.dpiv);
    free(s.dlogprobs);
    free(s.idx);
    free(s.ref_train);
    free(s.ref_eval);
    if (s.have_ref_model) gpt_free(&s.ref);
    seq_batch_free(&s.batch);
    data_sampler_free(&s.sampler);
    pair_data_free(&s.pd);
    trainer_free(&tr);
    return 0;
}
