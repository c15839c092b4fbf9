/*
 * learner/sft.c — stage 1 of the InstructGPT pipeline (Ouyang et al. 2022, §3.5):
 * supervised fine-tuning on demonstrations {"prompt","response"}, the loss on response
 * tokens only (the mean negative log-likelihood over every response token of the global
 * batch), data-parallel over the learner ranks.
 *
 *   build/learner sft CONFIG [section.key=value ...]
 *
 * Writes run.out_dir/ckpt-<step>.h5 (group /policy), metrics.jsonl (train loss, eval loss
 * and perplexity), and prints a progress line. Resume with run.resume=auto.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "learner.h"
#include "loss.h"
#include "lora.h"
#include "trainer.h"
#include "util.h"

typedef struct {
    Trainer *t;
    Dataset train, eval;
    int has_eval;
    DataSampler sampler;
    SeqBatch batch;
    int micro;       /* rows per forward/backward */
    float *dlogprobs;
    int64_t *idx;    /* this rank's slice of the global batch */
    int *resp_tokens;
    int *conv_ids;           /* a chat-formatted record's tokens (chat_tokenize) */
    unsigned char *conv_mask;
    size_t conv_cap;
} Sft;

/* Add record rec of d as one row; returns its learned tokens. A chat-formatted record
 * learns every assistant turn (chat_tokenize's mask), a plain one its response + EOS. */
static int sft_add(Sft *s, const Dataset *d, const DataRecord *rec) {
    if (dataset_chat_formatted(d, rec) && rec->conv.n_spans > 0) {
        size_t n = chat_tokenize(&s->t->tok, &rec->conv, &s->conv_ids, &s->conv_mask,
                                 &s->conv_cap);
        return seq_batch_add_conv(&s->batch, s->t, s->conv_ids, s->conv_mask, (int)n);
    }
    return seq_batch_add(&s->batch, s->t, rec->prompt, rec->response);
}

/* Load record i of d; a bad record (possible only if the file changed since it was
 * indexed) ends the run with the dataset's message. */
static void get_record(Sft *s, Dataset *d, int64_t i, DataRecord *rec) {
    char err[ERRBUF_LEN];
    if (dataset_get(d, i, rec, err) != 0)
        trainer_fail(s->t, 1, "%s (was the file changed during the run?)", err);
}

/* Forward + backward over rows [0, B) of the prepared batch with the global denominator;
 * returns the summed token NLL of these rows. */
static double sft_micro_step(Sft *s, double denom, int backward) {
    GPT *m = &s->t->model;
    SeqBatch *b = &s->batch;
    gpt_forward(m, b->tokens, b->B, b->T);
    gpt_lm_forward(m, b->targets, b->B, b->T);
    LossCEStats st;
    loss_token_ce_forward(&st, m->logprobs, b->mask, LOSS_AGG_TOKEN, denom, b->B, b->T);
    if (backward) {
        memset(s->dlogprobs, 0, (size_t)b->B * b->T * sizeof(float));
        loss_token_ce_backward(s->dlogprobs, b->mask, LOSS_AGG_TOKEN, denom, b->B, b->T);
        gpt_lm_backward(m, s->dlogprobs, NULL, b->B, b->T);
    }
    return st.nll * st.n_tokens;
}

/* Mean response-token NLL over the whole eval set (sharded over ranks). */
static double sft_eval(Sft *s, double *n_tokens_out) {
    Trainer *t = s->t;
    DataRecord rec = {0};
    double sums[2] = {0, 0}; /* nll sum, tokens */
    int train = lora_eval_begin(t->model.lora); /* no LoRA dropout in evaluation */
    for (int64_t i = t->rank; i < s->eval.n;) {
        seq_batch_clear(&s->batch);
        for (; i < s->eval.n && s->batch.B < s->micro; i += t->nranks) {
            get_record(s, &s->eval, i, &rec);
            sums[1] += sft_add(s, &s->eval, &rec);
            data_record_free(&rec);
        }
        seq_batch_finish(&s->batch, t);
        sums[0] += sft_micro_step(s, 1.0, 0);
    }
    lora_eval_end(t->model.lora, train);
    trainer_allreduce_sum(t, sums, 2);
    *n_tokens_out = sums[1];
    return sums[1] > 0 ? sums[0] / sums[1] : 0.0;
}

static void sft_log_eval(Sft *s) {
    if (!s->has_eval) return;
    double ntok, nll = sft_eval(s, &ntok);
    char fields[256];
    snprintf(fields, sizeof fields, "\"eval_loss\": %.6f, \"eval_ppl\": %.4f, \"eval_tokens\": %.0f",
             nll, exp(nll), ntok);
    trainer_log_json(s->t, fields);
    if (s->t->rank == 0) {
        printf("sft eval at step %ld: loss %.4f, perplexity %.3f over %.0f response tokens\n",
               s->t->step, nll, exp(nll), ntok);
        fflush(stdout);
    }
}

int learner_sft(int argc, char **argv, MpiRoles *roles) {
    MPI_Comm comm = roles->role_comm;
    char err[ERRBUF_LEN];
    Trainer tr;
    Sft s;
    memset(&s, 0, sizeof s);
    s.t = &tr;
    if (argc < 1) {
        fprintf(stderr, "usage: learner sft CONFIG.ini [section.key=value ...]\n");
        return 2;
    }
    trainer_init(&tr, "sft", "policy", GPT_HEAD_LM, argv[0], argc - 1, argv + 1, comm);
    const RlhfConfig *c = &tr.cfg;
    if (!c->data.train[0]) trainer_fail(&tr, 0, "data.train is empty: give the SFT JSONL");
    DataOptions opt = data_options_from_config(c, tr.rank == 0 ? stderr : NULL);
    opt.chat_jinja = tr.tok_src.chat_template; /* chat.template = auto */
    if (dataset_open(&s.train, c->data.train, DATA_SFT, &opt, err) != 0)
        trainer_fail(&tr, 0, "%s", err);
    if (c->data.eval[0]) {
        if (dataset_open(&s.eval, c->data.eval, DATA_SFT, &opt, err) != 0)
            trainer_fail(&tr, 0, "%s", err);
        s.has_eval = 1;
    }
    int G = c->optim.batch_size;
    int share = data_shard_size(G, 0, tr.nranks); /* rank 0 has the largest slice */
    s.micro = c->optim.micro_batch_size > 0 ? c->optim.micro_batch_size : share;
    if (s.micro > share) s.micro = share;
    if (s.micro < 1) s.micro = 1;
    int maxT = c->data.max_prompt_len + c->data.max_response_len;
    seq_batch_init(&s.batch, s.micro, maxT);
    gpt_reserve(&tr.model, s.micro, maxT);
    s.dlogprobs = xalloc_floats((size_t)s.micro * maxT);
    s.idx = xmalloc((size_t)(share > 0 ? share : 1) * sizeof(int64_t));
    data_sampler_init(&s.sampler, s.train.n, (uint64_t)c->run.seed, c->data.shuffle);
    tr.sampler = &s.sampler;

    tr.total_steps = c->optim.epochs > 0
                         ? (long)((s.train.n * (int64_t)c->optim.epochs + G - 1) / G)
                         : (long)c->optim.steps;
    tr.sched = (AdamWSchedule){.max_lr = (float)c->optim.lr,
                               .min_lr = (float)c->optim.min_lr,
                               .warmup = c->optim.warmup_steps,
                               .total = tr.total_steps > c->optim.warmup_steps ? tr.total_steps : 0};
    if (adamw_schedule_validate(&tr.sched, err) != 0) trainer_fail(&tr, 0, "optim: %s", err);
    trainer_resume(&tr);
    if (tr.rank == 0)
        printf("sft: %lld training records%s, global batch %d (%d per forward on each of %d "
               "rank%s), %ld steps, model %zu parameters\n",
               (long long)s.train.n, s.has_eval ? ", eval set loaded" : "", G, s.micro,
               tr.nranks, tr.nranks == 1 ? "" : "s", tr.total_steps, tr.model.num_params);

    DataRecord rec = {0};
    double loss_acc = 0, gnorm = 0;
    int loss_n = 0;
    float lr = 0;
    while (tr.step < tr.total_steps) {
        int n = data_sampler_next(&s.sampler, G, tr.rank, tr.nranks, s.idx);
        /* pass 1: the global number of response tokens (the loss denominator) */
        double counts[2] = {0, 0}; /* tokens, nll sum */
        gpt_zero_grad(&tr.model);
        /* tokenising twice is cheaper than keeping every row of a large share */
        for (int i = 0; i < n; i++) {
            get_record(&s, &s.train, s.idx[i], &rec);
            seq_batch_clear(&s.batch);
            counts[0] += sft_add(&s, &s.train, &rec);
            data_record_free(&rec);
        }
        double global_tokens = counts[0], step_tokens = 0;
        trainer_allreduce_sum(&tr, &global_tokens, 1);
        double denom = global_tokens > 0 ? global_tokens : 1.0;
        for (int i0 = 0; i0 < n; i0 += s.micro) {
            seq_batch_clear(&s.batch);
            for (int i = i0; i < n && i < i0 + s.micro; i++) {
                get_record(&s, &s.train, s.idx[i], &rec);
                sft_add(&s, &s.train, &rec);
                data_record_free(&rec);
            }
            seq_batch_finish(&s.batch, &tr);
            counts[1] += sft_micro_step(&s, denom, 1);
            for (int r = 0; r < s.batch.B; r++) step_tokens += s.batch.lengths[r];
        }
        double sums[2] = {counts[1], step_tokens};
        trainer_allreduce_sum(&tr, sums, 2);
        double nll_sum = sums[0];
        tr.tokens_since_log += (long)sums[1];
        trainer_step(&tr, &gnorm, &lr);
        double loss = nll_sum / denom;
        loss_acc += loss;
        loss_n++;
        char fields[256];
        snprintf(fields, sizeof fields,
                 "\"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"tokens\": %.0f, "
                 "\"epoch\": %lld",
                 loss, lr, gnorm, global_tokens, (long long)s.sampler.cur.epoch);
        trainer_log_json(&tr, fields);
        if (tr.step % c->run.log_every == 0 || tr.step == tr.total_steps) {
            char text[160];
            snprintf(text, sizeof text, "loss %.4f | lr %.2e | gnorm %.3f", loss_acc / loss_n,
                     lr, gnorm);
            trainer_progress(&tr, text);
            loss_acc = 0;
            loss_n = 0;
        }
        if (c->run.eval_every > 0 && tr.step % c->run.eval_every == 0 && tr.step < tr.total_steps)
            sft_log_eval(&s);
        if (trainer_maybe_save(&tr)) break;
    }
    if (!tr.stopped) {
        sft_log_eval(&s);
        trainer_save(&tr);
    }
    if (tr.rank == 0 && (s.train.n_bad > 0 || tr.skipped_steps > 0))
        printf("sft: %lld bad training lines skipped, %ld non-finite steps skipped\n",
               (long long)s.train.n_bad, tr.skipped_steps);

    free(s.conv_ids);
    free(s.conv_mask);
    free(s.dlogprobs);
    free(s.idx);
    seq_batch_free(&s.batch);
    data_sampler_free(&s.sampler);
    dataset_free(&s.train);
    if (s.has_eval) dataset_free(&s.eval);
    trainer_free(&tr);
    return 0;
}
