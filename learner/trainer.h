/*
 * learner/trainer.h — the training harness every offline learner stage shares (SFT,
 * reward model, DPO): tokenizer and model set-up, data-parallel gradient all-reduce,
 * clipping + non-finite guard + AdamW with the warmup/cosine schedule, HDF5 checkpoints
 * with exact resume, metrics JSONL and the progress line.
 *
 * A stage (sft.c, rm.c, ...) calls trainer_init, opens its data, points t->sampler at
 * its DataSampler, calls trainer_resume, then loops: zero grads, forward/backward its
 * loss on this rank's slice of the global batch, trainer_step (all-reduce + update),
 * trainer_log / trainer_maybe_save. Ranks of the learner communicator are identical
 * replicas (data parallel): every rank holds the same weights; the optimizer state is
 * replicated too, or sharded 1/K per rank with optim.zero = 1 or 2 (zero.h). Rank 0
 * alone writes checkpoints (gathering every rank's RNG state and, sharded, the moments),
 * in the unsharded layout: a run resumes on any rank count and any optim.zero.
 *
 * What is guaranteed across rank counts: each optimizer step sees the same global batch
 * of records whatever the number of ranks (the data cursor is global; ranks take fixed
 * slices), and the loss is normalised by global counts, so runs with 1, 2 or 4 ranks
 * compute the same update up to float summation order (the all-reduce and the per-rank
 * partial sums); with a fixed rank count a run is bit-for-bit reproducible and a resumed
 * run is bit-identical to an uninterrupted one.
 *
 * Errors: a user's mistake (missing file, bad checkpoint, bad config) is reported by
 * rank 0 with what to do and the job exits non-zero on every rank (trainer_fail).
 */
#ifndef RLHF_LEARNER_TRAINER_H
#define RLHF_LEARNER_TRAINER_H

#include <mpi.h>
#include <stdio.h>

#include "adamw.h"
#include "bpe.h"
#include "config.h"
#include "dataset.h"
#include "gpt.h"
#include "rng.h"
#include "toksrc.h"
#include "zero.h"

struct CkptWriter;

typedef struct {
    RlhfConfig cfg;
    char *cfg_text;          /* config_to_text(&cfg): stored in every checkpoint */
    const char *stage;       /* "sft", "rm", "dpo", ... */
    const char *group;       /* checkpoint group of the trained model: policy, reward */
    MPI_Comm comm;
    int rank, nranks;
    BPE tok;
    TokSrc tok_src; /* the tokenizer as text (and chat template), for checkpoints */
    GPT model;
    /* The optimizer's target (params, grads, n): the model's buffers, or with lora.rank > 0
     * the adapters' (model.lora): what trainer_step reduces, clips and updates. */
    float *opt_params, *opt_grads;
    size_t opt_n;
    AdamW opt;               /* this rank's optimizer: its shard of the target (zero) */
    Zero zero;               /* optim.zero: how the optimizer is sharded over comm */
    AdamWSchedule sched;
    long step;               /* optimizer steps done */
    long total_steps;
    Rng rng;                 /* this rank's generator (checkpointed per rank) */
    DataSampler *sampler;    /* the stage's training-data cursor (checkpointed) */
    FILE *metrics;           /* rank 0: out_dir/metrics.jsonl */
    double t_start, t_last_log;
    long tokens_since_log;
    int nonfinite_streak;
    long skipped_steps;
    int stopped;             /* run.stop_at_step reached: checkpoint written, leave now */
    /* optional: rank 0 adds stage-specific datasets to every checkpoint it writes */
    int (*save_extra)(void *ctx, struct CkptWriter *w, char *err);
    /* optional: every rank, collectively, before rank 0 writes (e.g. gathering sharded
     * state that save_extra writes) */
    void (*pre_save)(void *ctx);
    void *extra_ctx;
} Trainer;

/* Print the message (rank 0 only, or any rank when `all` is set) as
 * "rlhf-c: learner <stage>: error: ..." and end the job with exit status 1 on every rank
 * (MPI_Abort when not every rank is known to fail together). */
_Noreturn void trainer_fail(const Trainer *t, int all, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Load the config (path + overrides), set OpenBLAS threads, load the tokenizer
 * (tokenizer.path, else the model.init checkpoint's), build the model with the given head
 * (from model.init — whose trunk is loaded, and whose head too when it has the same kind —
 * or a fresh GPT-2 initialisation) and the optimizer. Exits through trainer_fail on any
 * user error. */
void trainer_init(Trainer *t, const char *stage, const char *group, GPTHead head,
                  const char *cfg_path, int n_over, char *const *overrides, MPI_Comm comm);
void trainer_free(Trainer *t);

/* run.resume: none (fresh), auto (newest good checkpoint in run.out_dir, if any) or a
 * path. Restores weights, optimizer, step, this rank's RNG and the sampler cursor. */
void trainer_resume(Trainer *t);

/* Sum gradients over ranks, check they are finite (a non-finite step is skipped and
 * counted; run.max_nonfinite in a row stop the run), clip to optim.grad_clip, apply
 * AdamW at the scheduled rate. Returns 1 if the step was applied, 0 if skipped; *gnorm
 * gets the pre-clip global norm and *lr the rate used. */
int trainer_step(Trainer *t, double *gnorm, float *lr);

/* LoRA: the adapters' dropout key for the current step (a hash of run.seed and t->step,
 * so a resumed run draws the same masks); called by trainer_step and trainer_resume. */
void trainer_lora_key(Trainer *t);

/* Sum doubles over ranks in place. */
void trainer_allreduce_sum(Trainer *t, double *x, int n);

/* Write a checkpoint now (rank 0 writes; collective). */
void trainer_save(Trainer *t);
/* Save when run.ckpt_every divides the step (collective). At run.stop_at_step it saves
 * and sets t->stopped: the stage leaves its loop and skips its end-of-run work, as a job
 * killed by its time limit would (resume with run.resume=auto). Returns t->stopped. */
int trainer_maybe_save(Trainer *t);

/* Rank 0: append one JSON object line {"stage":..,"step":..,<fields>} to metrics.jsonl;
 * fields is the inside of a JSON object ("\"loss\": 1.2, ..."). Non-finite numbers are
 * written as null and reported on stderr with the metric and the step (metrics.h). */
void trainer_log_json(Trainer *t, const char *fields);
/* Rank 0: the progress line "<stage> step s/total | <text> | tok/s | eta". */
void trainer_progress(Trainer *t, const char *text);

/* Encode text with the run's tokenizer into a growable buffer; returns the count.
 * Special-token strings stay plain text (plain records). */
int trainer_encode(const Trainer *t, const char *text, int **ids, size_t *cap);
/* The same with special-token strings as their single ids (BPE_ENCODE_SPECIAL): for
 * chat-rendered texts only (dataset_chat_formatted). */
int trainer_encode_chat(const Trainer *t, const char *text, int **ids, size_t *cap);

/* RLHF_DUMP_ROWS=FILE (for tests): rank 0 appends one JSON line per token row the stage
 * builds, {"tokens": [ids], "learn": [0|1 per token]} (learn[i] = 1 when token i is a
 * loss target; seq_batch_finish) or {"prompt": [ids]} (PPO/GRPO prompts, learn NULL). */
void trainer_dump_row(const Trainer *t, const int *ids, const unsigned char *learn, int n);

/* A padded batch of (prompt, response) token sequences, reused across steps. */
typedef struct {
    int B, T;                 /* rows, padded length */
    int cap_B, cap_T;
    int *tokens;              /* (B,T) */
    int *targets;             /* (B,T) next token where it is a response token, else -1 */
    float *mask;              /* (B,T) 1 where targets >= 0 */
    int *lengths;             /* (B) tokens in row b (prompt + response) */
    int *prompt_len;          /* (B) */
    unsigned char *lmask;     /* (B,cap_T) 1 where token i is learned (a target of i-1) */
    int *scratch_p, *scratch_r;
    size_t cap_p, cap_r;
    float *p_chosen;          /* (B) pair_data_fill: pair i's soft label (1 = hard) */
    int soft;                 /* pair_data_fill: some pair has p_chosen != 1 */
} SeqBatch;

void seq_batch_init(SeqBatch *b, int max_B, int max_T);
void seq_batch_free(SeqBatch *b);
void seq_batch_clear(SeqBatch *b);
/* Append prompt + response (+ EOS) as one row, truncated by the [data] policy; returns
 * the number of response tokens (targets) in the row. */
int seq_batch_add(SeqBatch *b, const Trainer *t, const char *prompt, const char *response);
/* A chat-rendered prompt + response (dataset_chat_formatted): special-token strings are
 * single ids, and the response ends at its last end-of-turn token eot_id (chat_eot_id;
 * what the template writes after it is not learned) with no EOS added; EOS is added only
 * when the response holds no eot_id (eot_id -1 or a tokenizer without it). Truncated
 * and counted as seq_batch_add. */
int seq_batch_add_chat(SeqBatch *b, const Trainer *t, const char *prompt, const char *response,
                       int eot_id);
/* A whole tokenized conversation (chat_tokenize): every token with mask 1 (every
 * assistant turn and its end-of-turn token) is learned. The row ends after the last
 * assistant token; the [data] policy truncates as if the prompt were everything before
 * the last assistant turn and the response that turn. Returns the learned tokens. */
int seq_batch_add_conv(SeqBatch *b, const Trainer *t, const int *ids, const unsigned char *mask,
                       int n);
/* Pad every row to the longest (pad id = tokenizer pad); call before using the batch. */
void seq_batch_finish(SeqBatch *b, const Trainer *t);

/* ---- comparison data (rm, dpo) ---------------------------------------------------
 * The training file data.train of {"prompt","chosen","rejected"} records and a held-out
 * set: data.eval if given, else rm.eval_split of the training records chosen by a hash
 * of the record index (data_split). Records are addressed through train_idx / eval_idx. */
typedef struct {
    Dataset data, eval_data;
    Dataset *eval_src; /* &eval_data, or &data when split */
    int64_t *train_idx, n_train;
    int64_t *eval_idx, n_eval;
} PairData;

/* Opens the files; fails the run with the dataset's message on error. */
void pair_data_open(PairData *p, Trainer *t);
void pair_data_free(PairData *p);
/* Fill b with n pairs (record indices idx into d): chosen rows 0..n-1 then rejected rows
 * n..2n-1, and b->p_chosen[0..n) with their soft labels (b->soft when any is not 1). If cat_of is given, cats[i] = cat_of(ctx, category of record i). */
void pair_data_fill(SeqBatch *b, Trainer *t, Dataset *d, const int64_t *idx, int n,
                    int (*cat_of)(void *ctx, const char *category), void *ctx, int *cats);

#endif
