/*
 * learner/trainer.c — the shared training harness of the offline learner stages: set-up,
 * data-parallel step, checkpoints and resume, metrics. See trainer.h.
 */
#include "trainer.h"
#include "lora.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "cpu.h"
#include "fault.h"
#include "metrics.h"
#include "mpi_util.h"
#include "ops.h"
#include "util.h"
#include "zero.h"

// ----------------------------------------------------------------------------
// errors

void trainer_fail(const Trainer *t, int all, const char *fmt, ...) {
    if (all || t->rank == 0) {
        va_list ap;
        fflush(stdout);
        fprintf(stderr, "rlhf-c: learner %s: error: ", t->stage ? t->stage : "");
        if (all && t->nranks > 1) fprintf(stderr, "[rank %d] ", t->rank);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        fflush(stderr);
    }
    /* Only this rank knows, or other roles (actors, reward servers) share the job and
     * would wait in MPI_Finalize for peers that never come: take the whole job down. */
    int world = 0, mine = 0;
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world));
    MPI_CHECK(MPI_Comm_size(t->comm, &mine));
    if (all || world != mine) mpi_abort_job(1);
    /* every learner rank reached the same verdict (a collective decision): leave together */
    MPI_CHECK(MPI_Barrier(t->comm));
    MPI_CHECK(MPI_Finalize());
    exit(1);
}

/* A decision one rank made (e.g. rank 0 read a file) becomes every rank's: returns the
 * maximum of ok-codes (0 ok, 1 failed) over ranks. */
static int any_failed(const Trainer *t, int failed) {
    int any = 0;
    MPI_CHECK(MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, t->comm));
    return any;
}

// ----------------------------------------------------------------------------
// set-up

/* tokenizer.train_files: rank 0 trains a byte-level BPE (deterministic) and broadcasts it
 * as text, so every rank holds the identical tokenizer. */
static int train_tokenizer(Trainer *t, char *err) {
    const RlhfConfig *c = &t->cfg;
    long lens[2] = {0, 0};
    int rc = 0;
    if (t->rank == 0) {
        char *list = xstrdup(c->tokenizer.train_files), *save = NULL;
        const char *paths[64];
        int n = 0;
        for (char *p = strtok_r(list, ",", &save); p && n < 64; p = strtok_r(NULL, ",", &save))
            paths[n++] = p;
        BPETrainConfig tc = {.vocab_size = c->tokenizer.train_vocab_size, .min_frequency = 1};
        double t0 = time_now();
        rc = bpe_train_files(&t->tok, paths, n, &tc, err);
        free(list);
        if (rc == 0) {
            bpe_save_strings(&t->tok, &t->tok_src.vocab, &t->tok_src.merges);
            lens[0] = (long)strlen(t->tok_src.vocab) + 1;
            lens[1] = (long)strlen(t->tok_src.merges) + 1;
            printf("learner %s: trained a %d-id BPE tokenizer on %s in %.2f s\n", t->stage,
                   t->tok.vocab_size, c->tokenizer.train_files, time_now() - t0);
        }
    }
    MPI_CHECK(MPI_Bcast(lens, 2, MPI_LONG, 0, t->comm));
    if (lens[0] == 0) return rc != 0 ? rc : errf(err, "tokenizer training failed");
    if (t->rank != 0) {
        t->tok_src.vocab = xmalloc((size_t)lens[0]);
        t->tok_src.merges = xmalloc((size_t)lens[1]);
    }
    MPI_CHECK(MPI_Bcast(t->tok_src.vocab, (int)lens[0], MPI_CHAR, 0, t->comm));
    MPI_CHECK(MPI_Bcast(t->tok_src.merges, (int)lens[1], MPI_CHAR, 0, t->comm));
    if (t->rank != 0)
        return bpe_load_strings(&t->tok, t->tok_src.vocab, t->tok_src.merges, err);
    return 0;
}

/* tokenizer.path, else the checkpoint of model.init, else training one; the texts are
 * kept (t->tok_src) for every checkpoint the run writes. */
static void load_tokenizer(Trainer *t, const char *init_path) {
    char err[ERRBUF_LEN] = "";
    const RlhfConfig *c = &t->cfg;
    int rc = 0;
    if (c->tokenizer.path[0] || init_path[0]) {
        rc = toksrc_load(&t->tok, &t->tok_src, c->tokenizer.path, init_path, err);
    } else if (c->tokenizer.train_files[0]) {
        rc = train_tokenizer(t, err);
    } else {
        rc = errf(err, "no tokenizer: set tokenizer.path=DIR (vocab.json + merges.txt, e.g. "
                       "from `build/rlhf-tokenize train`, or a tokenizer.json), "
                       "tokenizer.train_files=FILE,... or model.init=CKPT.h5");
    }
    if (rc != 0) trainer_fail(t, 0, "%s", err);
    /* a tokenizer folder without a chat template (tokenizer_config.json): chat.template =
     * auto takes the model.init checkpoint's */
    if (!t->tok_src.chat_template && c->tokenizer.path[0] && init_path[0]) {
        CkptReader *r = ckpt_reader_open(init_path, err);
        if (!r) trainer_fail(t, 0, "model.init: %s", err);
        const char *jinja = ckpt_reader_meta(r)->chat_template;
        if (jinja) t->tok_src.chat_template = xstrdup(jinja);
        ckpt_reader_free(r);
    }
}

/* The checkpoint group holding a model in file r: the preferred one if present, else
 * policy, reward, value in that order. */
static int has_group(CkptReader *r, const char *g) {
    char path[64];
    snprintf(path, sizeof path, "/%s", g);
    return ckpt_has(r, path);
}

static const char *init_group(CkptReader *r, const char *preferred) {
    static const char *groups[] = {"policy", "reward", "value", "reference"};
    if (preferred && has_group(r, preferred)) return preferred;
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        if (has_group(r, groups[i])) return groups[i];
    return NULL;
}

/* lora.rank > 0: adapters on the (now frozen) model, PEFT's init from the run seed; the
 * optimizer's target becomes the adapter buffer. */
static void attach_lora(Trainer *t, GPTHead head) {
    char err[ERRBUF_LEN] = "";
    GPT *m = &t->model;
    t->opt_params = m->params, t->opt_grads = NULL, t->opt_n = m->num_params;
    if (t->cfg.lora.rank == 0) return;
    if (head != GPT_HEAD_LM)
        trainer_fail(t, 0, "lora.rank = %d: LoRA trains language-model policies (sft, dpo, ppo, "
                           "grpo, rloo); the %s stage needs lora.rank = 0",
                     t->cfg.lora.rank, t->stage);
    unsigned targets;
    if (lora_targets_parse(t->cfg.lora.targets, m->config.family, &targets, err) != 0)
        trainer_fail(t, 0, "%s", err);
    lora_attach(m, t->cfg.lora.rank, (float)t->cfg.lora.alpha, targets,
                (float)t->cfg.lora.dropout);
    lora_init_weights(m->lora, (uint64_t)t->cfg.run.seed);
    trainer_lora_key(t);
    t->opt_params = m->lora->params, t->opt_grads = m->lora->grads, t->opt_n = m->lora->n;
    if (t->rank == 0)
        printf("learner %s: LoRA rank %d alpha %g on %s: %zu trainable parameters (base %zu "
               "frozen)\n", t->stage, m->lora->rank, (double)m->lora->alpha, t->cfg.lora.targets,
               m->lora->n, m->num_params);
}

void trainer_lora_key(Trainer *t) {
    Lora *l = t->model.lora;
    if (!l) return;
    l->train = l->dropout > 0.0f;
    l->drop_key = rng_mix64((uint64_t)t->cfg.run.seed * 0x9E3779B97F4A7C15ULL ^ (uint64_t)t->step);
}

static void build_model(Trainer *t, GPTHead head, const char *init_path) {
    char err[ERRBUF_LEN] = "";
    GPTConfig mc;
    if (init_path[0]) {
        CkptReader *r = ckpt_reader_open(init_path, err);
        if (!r) trainer_fail(t, 0, "model.init: %s", err);
        const char *grp = init_group(r, t->group);
        if (!grp) trainer_fail(t, 0, "model.init: %s holds no model group (policy/reward/value)",
                               init_path);
        if (ckpt_read_model_config(r, grp, &mc, err) != 0)
            trainer_fail(t, 0, "model.init: %s", err);
        GPTHead src_head = mc.head;
        mc.head = head;
        gpt_init(&t->model, &mc);
        int n_trunk = gpt_trunk_tensors(&t->model);
        int rc;
        if (src_head == head) {
            rc = ckpt_read_model(r, grp, &t->model, err);
            /* a LoRA run's checkpoint stands for base + adapters: start from the merge */
            int merged = rc == 0 ? lora_ckpt_merge(r, &t->model, err) : 0;
            if (merged < 0) rc = -1;
            if (merged == 1 && t->rank == 0)
                printf("learner %s: model.init's LoRA adapters merged into its weights\n",
                       t->stage);
        } else {
            /* a new head on a trained trunk: the trunk tensors come first in the table */
            gpt_init_weights(&t->model, (uint64_t)t->cfg.run.seed);
            rc = ckpt_read_table(r, grp, t->model.tensors, n_trunk, t->model.params, err);
        }
        ckpt_reader_free(r);
        if (rc != 0) trainer_fail(t, 0, "model.init: %s", err);
        if (t->rank == 0)
            printf("learner %s: model from %s (/%s, %s head%s)\n", t->stage, init_path, grp,
                   ckpt_head_name(src_head), src_head == head ? "" : ", new head initialised");
    } else {
        if (config_model(&t->cfg, t->tok.vocab_size, &mc, err) != 0)
            trainer_fail(t, 0, "%s", err);
        mc.head = head;
        if (gpt_config_validate(&mc, err) != 0) trainer_fail(t, 0, "model: %s", err);
        gpt_init(&t->model, &mc);
        gpt_init_weights(&t->model, (uint64_t)t->cfg.run.seed);
    }
    if (t->tok.vocab_size > t->model.config.vocab_size)
        trainer_fail(t, 0, "the tokenizer has %d ids but the model only %d (model.vocab_size)",
                     t->tok.vocab_size, t->model.config.vocab_size);
    int need = t->cfg.data.max_prompt_len + t->cfg.data.max_response_len;
    if (need > t->model.config.max_seq_len)
        trainer_fail(t, 0,
                     "data.max_prompt_len + data.max_response_len = %d exceeds the model's "
                     "max_seq_len %d: lower them",
                     need, t->model.config.max_seq_len);
    attach_lora(t, head);
    t->model.lm_chunk_bytes = (size_t)t->cfg.run.lm_chunk_mb << 20;
    t->model.recompute = t->cfg.train.recompute; /* before the stage's gpt_reserve */
    gpt_alloc_grads(&t->model);
}

void trainer_init(Trainer *t, const char *stage, const char *group, GPTHead head,
                  const char *cfg_path, int n_over, char *const *overrides, MPI_Comm comm) {
    char err[ERRBUF_LEN] = "";
    memset(t, 0, sizeof *t);
    t->stage = stage;
    t->group = group;
    t->comm = comm;
    MPI_CHECK(MPI_Comm_rank(comm, &t->rank));
    MPI_CHECK(MPI_Comm_size(comm, &t->nranks));
    if (config_load(&t->cfg, cfg_path, n_over, overrides, err) != 0)
        trainer_fail(t, 0, "%s", err);
    mpi_config_peer_timeout(t->cfg.run.peer_timeout);
    t->cfg_text = config_to_text(&t->cfg);
    /* the learner and the actors take turns in a synchronous online job */
    int online = !strcmp(stage, "ppo") || !strcmp(stage, "grpo") || !strcmp(stage, "rloo");
    int phased = online && t->cfg.ppo.max_staleness == 0;
    int threads = mpi_threads(t->cfg.run.threads, phased);
    const char *core = ops_blas_setup(threads);
    const char *gemm = ops_gemm_choose(t->cfg.run.gemm);
    if (t->rank == 0)
        printf("learner %s: %d rank%s, kernels %s, GEMM %s, OpenBLAS core %s, %d thread%s per "
               "rank (%s)\n", stage, t->nranks, t->nranks == 1 ? "" : "s", cpu_build_arch(),
               gemm, core, threads, threads == 1 ? "" : "s",
               mpi_threads_why(t->cfg.run.threads, phased));
    rng_init_keyed(&t->rng, (uint64_t)t->cfg.run.seed, 0x6c6561726eULL, (uint64_t)t->rank);

    /* model.init may name a checkpoint file or a run directory (its newest good one) */
    char init[CKPT_PATH_LEN] = "";
    if (t->cfg.model.init[0]) {
        int rc = ckpt_resolve(t->cfg.model.init, "auto", init, sizeof init, err);
        if (rc == 1) trainer_fail(t, 0, "model.init = %s: no checkpoint there", t->cfg.model.init);
        if (rc < 0) trainer_fail(t, 0, "model.init: %s", err);
    }
    load_tokenizer(t, init);
    build_model(t, head, init);

    AdamWConfig ac = {.beta1 = (float)t->cfg.optim.beta1,
                      .beta2 = (float)t->cfg.optim.beta2,
                      .eps = (float)t->cfg.optim.eps,
                      .weight_decay = (float)t->cfg.optim.weight_decay};
    if (adamw_config_validate(&ac, err) != 0) trainer_fail(t, 0, "optim: %s", err);
    /* the optimizer covers the target's (params, grads) buffer; optim.zero shards it */
    zero_init(&t->zero, comm, t->cfg.optim.zero, t->opt_n);
    AdamWRange *ranges = xcalloc((size_t)t->model.num_tensors + 1, sizeof *ranges);
    int nr = 1; /* adapters: every A and B decays, one range */
    ranges[0] = (AdamWRange){.offset = 0, .numel = t->opt_n, .decay = 1};
    if (!t->model.lora)
        nr = adamw_decay_table_gpt(ranges, t->model.tensors, t->model.num_tensors);
    if (zero_adamw_init(&t->zero, &t->opt, &ac, ranges, nr, err) != 0)
        trainer_fail(t, 0, "%s", err);
    free(ranges);
    if (t->rank == 0 && t->zero.stage > 0)
        printf("learner %s: optim.zero = %d: optimizer state %.1f MiB per rank (%zu of %zu "
               "parameters)\n", stage, t->zero.stage,
               (double)zero_optimizer_bytes(&t->opt) / (1 << 20), t->zero.len, t->zero.n);

    if (t->rank == 0) {
        if (file_mkdirs(t->cfg.run.out_dir, err) != 0) trainer_fail(t, 0, "run.out_dir: %s", err);
        char path[CONFIG_STR_MAX + 32];
        snprintf(path, sizeof path, "%s/metrics.jsonl", t->cfg.run.out_dir);
        t->metrics = fopen(path, "a");
        if (!t->metrics) trainer_fail(t, 0, "cannot open %s for appending", path);
    }
    /* every rank looks for checkpoints in run.out_dir next (trainer_resume): not before
     * rank 0 has created it, or a rank would fail there while rank 0 starts fresh */
    if (t->nranks > 1) MPI_CHECK(MPI_Barrier(t->comm));
    t->t_start = t->t_last_log = time_now();
}

void trainer_free(Trainer *t) {
    if (t->metrics) fclose(t->metrics);
    gpt_free(&t->model);
    adamw_free(&t->opt);
    zero_free(&t->zero);
    bpe_free(&t->tok);
    toksrc_free(&t->tok_src);
    free(t->cfg_text);
    memset(t, 0, sizeof *t);
}

// ----------------------------------------------------------------------------
// checkpoints

void trainer_save(Trainer *t) {
    char err[ERRBUF_LEN] = "";
    /* every rank's RNG state goes into the checkpoint */
    uint64_t *states = NULL;
    if (t->rank == 0) states = xmalloc(sizeof(uint64_t) * RNG_STATE_WORDS * (size_t)t->nranks);
    MPI_CHECK(MPI_Gather(t->rng.s, RNG_STATE_WORDS, MPI_UINT64_T, states, RNG_STATE_WORDS,
                         MPI_UINT64_T, 0, t->comm));
    if (t->pre_save) t->pre_save(t->extra_ctx);
    /* the checkpoint holds the unsharded moments: any rank count and stage resumes it
     * (sharded: gathered on rank 0 for the write) */
    const int sharded = t->zero.len < t->zero.n;
    float *m_full = NULL, *v_full = NULL;
    if (t->rank == 0 && sharded) {
        m_full = xalloc_floats(t->zero.n);
        v_full = xalloc_floats(t->zero.n);
    }
    if (sharded) zero_gather_moments(&t->zero, &t->opt, m_full, v_full);
    int failed = 0;
    if (t->rank == 0) {
        CkptWriter *w = ckpt_writer_open_dir(t->cfg.run.out_dir, t->step, t->cfg.run.keep_last,
                                             err);
        CkptMeta meta = {.step = t->step,
                         .policy_version = t->step,
                         .model = t->model.config,
                         .config = t->cfg_text};
        toksrc_to_meta(&t->tok_src, &meta);
        snprintf(meta.stage, sizeof meta.stage, "%s", t->stage);
        int rc = w ? 0 : -1;
        if (rc == 0) rc = ckpt_write_meta(w, &meta, err);
        if (rc == 0) rc = ckpt_write_model(w, t->group, &t->model, err);
        if (rc == 0 && t->model.lora) rc = lora_ckpt_write(w, t->model.lora, err);
        if (rc == 0)
            rc = ckpt_write_adamw(w, t->model.lora ? "lora" : t->group,
                                  sharded ? m_full : t->opt.m, sharded ? v_full : t->opt.v,
                                  t->zero.n, t->opt.step, err);
        for (int r = 0; rc == 0 && r < t->nranks; r++) {
            Rng g;
            memcpy(g.s, states + (size_t)r * RNG_STATE_WORDS, sizeof g.s);
            rc = ckpt_write_rng(w, r, &g, err);
        }
        if (rc == 0 && t->sampler) {
            int64_t cur[DATA_CURSOR_WORDS];
            data_cursor_save(t->sampler, cur);
            rc = ckpt_write_i64(w, "/data/train", cur, DATA_CURSOR_WORDS, err);
        }
        int64_t counters[2] = {t->skipped_steps, t->nonfinite_streak};
        if (rc == 0) rc = ckpt_write_i64(w, "/train/counters", counters, 2, err);
        if (rc == 0 && t->save_extra) rc = t->save_extra(t->extra_ctx, w, err);
        char path[CKPT_PATH_LEN] = "";
        if (w) snprintf(path, sizeof path, "%s", ckpt_writer_path(w));
        if (rc == 0) {
            rc = ckpt_writer_commit(w, err);
        } else if (w) {
            ckpt_writer_free(w);
        }
        if (rc != 0) {
            fprintf(stderr, "rlhf-c: learner %s: error: checkpoint at step %ld failed: %s "
                            "(the previous checkpoint is untouched)\n", t->stage, t->step, err);
            failed = 1;
        } else {
            printf("learner %s: checkpoint %s\n", t->stage, path);
            fflush(stdout);
        }
        free(states);
    }
    free(m_full);
    free(v_full);
    if (any_failed(t, failed)) trainer_fail(t, 0, "stopping: cannot write checkpoints");
}

int trainer_maybe_save(Trainer *t) {
    int every = t->cfg.run.ckpt_every;
    if (t->cfg.run.stop_at_step > 0 && t->step == t->cfg.run.stop_at_step &&
        t->step < t->total_steps) {
        trainer_save(t);
        t->stopped = 1;
        if (t->rank == 0) printf("learner %s: stopping at step %ld (run.stop_at_step)\n",
                                 t->stage, t->step);
    } else if (every > 0 && t->step % every == 0 && t->step < t->total_steps) {
        trainer_save(t);
    }
    return t->stopped;
}

void trainer_resume(Trainer *t) {
    char err[ERRBUF_LEN] = "", path[CKPT_PATH_LEN] = "";
    const char *how = t->cfg.run.resume;
    if (strcmp(how, "none") == 0) return;
    int rc;
    if (strcmp(how, "auto") == 0) {
        rc = ckpt_resolve(t->cfg.run.out_dir, "auto", path, sizeof path, err);
        if (rc == 1) {
            if (t->rank == 0) printf("learner %s: no checkpoint in %s: starting fresh\n",
                                     t->stage, t->cfg.run.out_dir);
            return;
        }
    } else {
        rc = ckpt_resolve(how, "auto", path, sizeof path, err);
        if (rc == 1) rc = errf(err, "run.resume = %s: no checkpoint there", how);
    }
    if (rc < 0) trainer_fail(t, 0, "resume: %s", err);
    if (err[0] && t->rank == 0) fprintf(stderr, "learner %s: warning: %s\n", t->stage, err);

    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) trainer_fail(t, 0, "resume: %s", err);
    const CkptMeta *meta = ckpt_reader_meta(r);
    if (strcmp(meta->stage, t->stage) != 0) {
        ckpt_reader_free(r);
        trainer_fail(t, 0, "resume: %s is a '%s' checkpoint, this is a '%s' run (use it as "
                           "model.init instead)", path, meta->stage, t->stage);
    }
    if (t->rank == 0 && meta->config) {
        RlhfConfig old;
        char diff[2048];
        if (config_from_text(&old, meta->config, path, err) == 0 &&
            config_diff(&old, &t->cfg, diff, sizeof diff) > 0)
            printf("learner %s: resuming with config changes:\n%s", t->stage, diff);
    }
    Rng g;
    int64_t counters[2] = {0, 0};
    int64_t cur[DATA_CURSOR_WORDS];
    rc = ckpt_read_model(r, t->group, &t->model, err);
    if (rc == 0 && !!t->model.lora != lora_ckpt_has(r))
        rc = errf(err, "the checkpoint %s LoRA adapters but this run has lora.rank = %d: "
                       "resume with the checkpoint's lora settings",
                  lora_ckpt_has(r) ? "holds" : "has no", t->cfg.lora.rank);
    if (rc == 0 && t->model.lora) rc = lora_ckpt_read(r, &t->model, err);
    long ostep = 0;
    if (rc == 0) {
        int64_t s64 = 0;
        const char *og = t->model.lora ? "lora" : t->group;
        if (t->zero.len == t->zero.n) { /* not sharded: straight into the moments */
            rc = ckpt_read_adamw(r, og, t->opt.m, t->opt.v, t->zero.n, &s64, err);
        } else {
            float *m_full = xalloc_floats(t->zero.n), *v_full = xalloc_floats(t->zero.n);
            rc = ckpt_read_adamw(r, og, m_full, v_full, t->zero.n, &s64, err);
            if (rc == 0) zero_scatter_moments(&t->zero, &t->opt, m_full, v_full);
            free(m_full);
            free(v_full);
        }
        ostep = (long)s64;
    }
    /* A checkpoint written by fewer ranks has no RNG state for this rank: it keeps the
     * stream keyed by its rank (no offline stage draws from it; the data order is global) */
    g = t->rng;
    int rng_missing = 0;
    if (rc == 0 && t->rank < 1024) {
        char path_rng[64];
        snprintf(path_rng, sizeof path_rng, "/rng/rank%d", t->rank);
        if (ckpt_has(r, path_rng)) rc = ckpt_read_rng(r, t->rank, &g, err);
        else rng_missing = 1;
    }
    if (any_failed(t, rng_missing) && t->rank == 0)
        printf("learner %s: %s was written by fewer learner ranks: the added ranks start "
               "fresh RNG streams\n", t->stage, path);
    if (rc == 0 && ckpt_has(r, "/train/counters"))
        rc = ckpt_read_i64(r, "/train/counters", counters, 2, err);
    if (rc == 0 && t->sampler) {
        rc = ckpt_read_i64(r, "/data/train", cur, DATA_CURSOR_WORDS, err);
        if (rc == 0) rc = data_cursor_restore(t->sampler, cur, err);
    }
    long step = (long)meta->step;
    ckpt_reader_free(r);
    if (rc != 0)
        trainer_fail(t, 0, "resume from %s: %s", path, err);
    t->opt.step = ostep;
    t->rng = g;
    t->step = step;
    trainer_lora_key(t);
    t->skipped_steps = counters[0];
    t->nonfinite_streak = (int)counters[1];
    if (t->rank == 0) printf("learner %s: resumed from %s at step %ld\n", t->stage, path, step);
}

// ----------------------------------------------------------------------------
// the data-parallel step

void trainer_allreduce_sum(Trainer *t, double *x, int n) {
    if (t->nranks > 1) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, t->comm));
}

int trainer_step(Trainer *t, double *gnorm, float *lr) {
    /* the optimizer's target: the model, or the adapters (opt_grads set by attach_lora) */
    float *params = t->opt_params, *grads = t->opt_grads ? t->opt_grads : t->model.grads;
    if (t->rank == 0 && fault_nonfinite_at(t->step + 1)) grads[0] = NAN;
    fault_fatal_point("train_step");
    /* sum over ranks (optim.zero: only this rank's shard, zero.h); clipping is applied
     * inside the update: one pass over the gradients fewer, the same numbers */
    double norm = zero_reduce_grads(&t->zero, grads);
    *gnorm = norm;
    *lr = adamw_schedule_lr(&t->sched, t->opt.step);
    if (!isfinite(norm)) {
        /* every rank sees the same global norm, so every rank skips together */
        t->nonfinite_streak++;
        t->skipped_steps++;
        if (t->rank == 0)
            fprintf(stderr, "learner %s: warning: non-finite gradient at step %ld: update "
                            "skipped (%d in a row)\n", t->stage, t->step + 1, t->nonfinite_streak);
        if (t->nonfinite_streak > t->cfg.run.max_nonfinite)
            trainer_fail(t, 0, "%d consecutive non-finite gradients (run.max_nonfinite = %d): "
                               "lower optim.lr or check the data; the last checkpoint is intact",
                         t->nonfinite_streak, t->cfg.run.max_nonfinite);
        t->step++;
        trainer_lora_key(t);
        return 0;
    }
    t->nonfinite_streak = 0;
    zero_step(&t->zero, &t->opt, params, grads, *lr,
              adamw_clip_scale(norm, (float)t->cfg.optim.grad_clip));
    t->step++;
    trainer_lora_key(t);
    if (t->rank == 0) fault_kill_point("train_step");
    return 1;
}

// ----------------------------------------------------------------------------
// metrics and progress

void trainer_log_json(Trainer *t, const char *fields) {
    if (t->rank != 0 || !t->metrics) return;
    /* a NaN or inf metric goes in as null, with a notice on stderr (metrics.h) */
    metrics_write_line(t->metrics, stderr, t->stage, t->step, time_now() - t->t_start, fields);
}

void trainer_progress(Trainer *t, const char *text) {
    if (t->rank != 0) return;
    double now = time_now(), dt = now - t->t_last_log;
    double tps = dt > 0 ? (double)t->tokens_since_log / dt : 0;
    double elapsed = now - t->t_start;
    long done = t->step, total = t->total_steps;
    double eta = done > 0 && total > done ? elapsed / (double)done * (double)(total - done) : 0;
    printf("%s step %ld/%ld | %s | %.0f tok/s | eta %dm%02ds\n", t->stage, done, total, text,
           tps, (int)(eta / 60), (int)eta % 60);
    fflush(stdout);
    t->t_last_log = now;
    t->tokens_since_log = 0;
}

int trainer_encode(const Trainer *t, const char *text, int **ids, size_t *cap) {
    return (int)bpe_encode(&t->tok, text, strlen(text), 0, ids, cap);
}

int trainer_encode_chat(const Trainer *t, const char *text, int **ids, size_t *cap) {
    return (int)bpe_encode(&t->tok, text, strlen(text), BPE_ENCODE_SPECIAL, ids, cap);
}

void trainer_dump_row(const Trainer *t, const int *ids, const unsigned char *learn, int n) {
    const char *path = getenv("RLHF_DUMP_ROWS");
    if (t->rank != 0 || !path || !path[0]) return;
    FILE *f = fopen(path, "a");
    if (!f) fatal("RLHF_DUMP_ROWS=%s: cannot open for appending", path);
    fprintf(f, "{\"%s\": [", learn ? "tokens" : "prompt");
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", ids[i]);
    if (learn) {
        fprintf(f, "], \"learn\": [");
        for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", learn[i]);
    }
    fprintf(f, "]}\n");
    if (fclose(f) != 0) fatal("RLHF_DUMP_ROWS=%s: write failed", path);
}

// ----------------------------------------------------------------------------
// padded (prompt, response) batches

void seq_batch_init(SeqBatch *b, int max_B, int max_T) {
    memset(b, 0, sizeof *b);
    b->cap_B = max_B;
    b->cap_T = max_T;
    size_t n = (size_t)max_B * (size_t)max_T;
    b->tokens = xmalloc(n * sizeof(int));
    b->targets = xmalloc(n * sizeof(int));
    b->mask = xalloc_floats(n);
    b->lengths = xmalloc((size_t)max_B * sizeof(int));
    b->prompt_len = xmalloc((size_t)max_B * sizeof(int));
    b->lmask = xmalloc(n);
    b->p_chosen = xalloc_floats((size_t)max_B);
}

void seq_batch_free(SeqBatch *b) {
    free(b->tokens);
    free(b->targets);
    free(b->mask);
    free(b->lengths);
    free(b->prompt_len);
    free(b->lmask);
    free(b->scratch_p);
    free(b->scratch_r);
    free(b->p_chosen);
    memset(b, 0, sizeof *b);
}

void seq_batch_clear(SeqBatch *b) {
    b->B = 0;
    b->T = 0;
}

/* Room for n tokens in the response scratch buffer. */
static void scratch_r_reserve(SeqBatch *b, int n) {
    if ((size_t)n > b->cap_r) {
        b->cap_r = (size_t)n;
        b->scratch_r = xrealloc(b->scratch_r, b->cap_r * sizeof(int));
    }
}

/* The row scratch_p[0..np) + scratch_r[0..nr), truncated by the [data] policy, learned
 * on the response; returns the response tokens kept. */
static int add_pair_row(SeqBatch *b, const Trainer *t, int np, int nr) {
    ASSERT(b->B < b->cap_B);
    const RlhfConfig *c = &t->cfg;
    data_truncate(b->scratch_p, &np, c->data.max_prompt_len,
                  strcmp(c->data.truncate_prompt, "left") == 0, b->scratch_r, &nr,
                  c->data.max_response_len);
    int len = np + nr;
    ASSERT(len <= b->cap_T);
    int *row = b->tokens + (size_t)b->B * b->cap_T;
    unsigned char *lm = b->lmask + (size_t)b->B * b->cap_T;
    memcpy(row, b->scratch_p, (size_t)np * sizeof(int));
    memcpy(row + np, b->scratch_r, (size_t)nr * sizeof(int));
    memset(lm, 0, (size_t)np);
    memset(lm + np, 1, (size_t)nr);
    b->lengths[b->B] = len;
    b->prompt_len[b->B] = np;
    b->B++;
    if (len > b->T) b->T = len;
    return nr;
}

int seq_batch_add(SeqBatch *b, const Trainer *t, const char *prompt, const char *response) {
    int np = trainer_encode(t, prompt, &b->scratch_p, &b->cap_p);
    int nr = trainer_encode(t, response, &b->scratch_r, &b->cap_r);
    scratch_r_reserve(b, nr + 1);
    b->scratch_r[nr++] = t->tok.eos_id; /* the model learns to stop */
    return add_pair_row(b, t, np, nr);
}

int seq_batch_add_chat(SeqBatch *b, const Trainer *t, const char *prompt, const char *response,
                       int eot_id) {
    int np = trainer_encode_chat(t, prompt, &b->scratch_p, &b->cap_p);
    int nr = trainer_encode_chat(t, response, &b->scratch_r, &b->cap_r);
    int end = -1; /* the last end-of-turn token: the model learns to stop there */
    for (int i = nr - 1; i >= 0 && eot_id >= 0 && end < 0; i--)
        if (b->scratch_r[i] == eot_id) end = i + 1;
    if (end >= 0) {
        nr = end;
    } else {
        scratch_r_reserve(b, nr + 1);
        b->scratch_r[nr++] = t->tok.eos_id;
    }
    return add_pair_row(b, t, np, nr);
}

int seq_batch_add_conv(SeqBatch *b, const Trainer *t, const int *ids, const unsigned char *mask,
                       int n) {
    ASSERT(b->B < b->cap_B);
    const RlhfConfig *c = &t->cfg;
    int end = n, start;
    while (end > 0 && !mask[end - 1]) end--; /* nothing after the last turn is learned */
    for (start = end; start > 0 && mask[start - 1];) start--;
    /* truncate positions, not tokens, so that each mask bit follows its token */
    int np = start, nr = end - start;
    if ((size_t)np > b->cap_p) {
        b->cap_p = (size_t)np;
        b->scratch_p = xrealloc(b->scratch_p, b->cap_p * sizeof(int));
    }
    scratch_r_reserve(b, nr);
    for (int i = 0; i < np; i++) b->scratch_p[i] = i;
    for (int i = 0; i < nr; i++) b->scratch_r[i] = start + i;
    data_truncate(b->scratch_p, &np, c->data.max_prompt_len,
                  strcmp(c->data.truncate_prompt, "left") == 0, b->scratch_r, &nr,
                  c->data.max_response_len);
    int len = np + nr, learned = 0;
    ASSERT(len <= b->cap_T);
    int *row = b->tokens + (size_t)b->B * b->cap_T;
    unsigned char *lm = b->lmask + (size_t)b->B * b->cap_T;
    for (int i = 0; i < len; i++) {
        int at = i < np ? b->scratch_p[i] : b->scratch_r[i - np];
        row[i] = ids[at];
        lm[i] = mask[at] != 0;
        learned += i > 0 && lm[i]; /* token 0 has no position that predicts it */
    }
    b->lengths[b->B] = len;
    b->prompt_len[b->B] = np;
    b->B++;
    if (len > b->T) b->T = len;
    return learned;
}

void seq_batch_finish(SeqBatch *b, const Trainer *t) {
    int T = b->T;
    /* repack rows from stride cap_T to stride T (rows move towards the front: safe) */
    for (int r = 0; r < b->B; r++) {
        int *src = b->tokens + (size_t)r * b->cap_T, *dst = b->tokens + (size_t)r * T;
        memmove(dst, src, (size_t)b->lengths[r] * sizeof(int));
        memmove(b->lmask + (size_t)r * T, b->lmask + (size_t)r * b->cap_T, (size_t)b->lengths[r]);
    }
    for (int r = 0; r < b->B; r++) {
        int *row = b->tokens + (size_t)r * T, *tg = b->targets + (size_t)r * T;
        float *mk = b->mask + (size_t)r * T;
        const unsigned char *lm = b->lmask + (size_t)r * T;
        int len = b->lengths[r];
        for (int i = len; i < T; i++) row[i] = t->tok.pad_id;
        for (int i = 0; i < T; i++) {
            /* position i predicts token i+1; only learned (response) tokens are targets */
            int is_target = i + 1 < len && lm[i + 1];
            tg[i] = is_target ? row[i + 1] : -1;
            mk[i] = is_target ? 1.0f : 0.0f;
        }
        if (getenv("RLHF_DUMP_ROWS")) { /* learn[i] = 1: token i is some position's target */
            unsigned char *learn = xmalloc((size_t)len + 1);
            for (int i = 0; i < len; i++) learn[i] = i > 0 && lm[i];
            trainer_dump_row(t, row, learn, len);
            free(learn);
        }
    }
}

// ----------------------------------------------------------------------------
// comparison data

void pair_data_open(PairData *p, Trainer *t) {
    char err[ERRBUF_LEN];
    const RlhfConfig *c = &t->cfg;
    memset(p, 0, sizeof *p);
    if (!c->data.train[0]) trainer_fail(t, 0, "data.train is empty: give the comparisons JSONL");
    DataOptions opt = data_options_from_config(c, t->rank == 0 ? stderr : NULL);
    opt.chat_jinja = t->tok_src.chat_template; /* chat.template = auto */
    if (dataset_open(&p->data, c->data.train, DATA_PREF, &opt, err) != 0)
        trainer_fail(t, 0, "%s", err);
    if (c->data.eval[0]) {
        if (dataset_open(&p->eval_data, c->data.eval, DATA_PREF, &opt, err) != 0)
            trainer_fail(t, 0, "%s", err);
        p->eval_src = &p->eval_data;
        p->n_train = p->data.n;
        p->train_idx = xmalloc((size_t)p->n_train * sizeof(int64_t));
        for (int64_t i = 0; i < p->n_train; i++) p->train_idx[i] = i;
        p->n_eval = p->eval_data.n;
        p->eval_idx = xmalloc((size_t)(p->n_eval > 0 ? p->n_eval : 1) * sizeof(int64_t));
        for (int64_t i = 0; i < p->n_eval; i++) p->eval_idx[i] = i;
    } else {
        p->eval_src = &p->data;
        data_split(p->data.n, c->rm.eval_split, (uint64_t)c->run.seed, &p->train_idx, &p->n_train,
                   &p->eval_idx, &p->n_eval);
    }
    if (p->n_train < 1) trainer_fail(t, 0, "no training pairs left after the held-out split");
}

void pair_data_free(PairData *p) {
    free(p->train_idx);
    free(p->eval_idx);
    dataset_free(&p->data);
    if (p->eval_src == &p->eval_data) dataset_free(&p->eval_data);
    memset(p, 0, sizeof *p);
}

void pair_data_fill(SeqBatch *b, Trainer *t, Dataset *d, const int64_t *idx, int n,
                    int (*cat_of)(void *ctx, const char *category), void *ctx, int *cats) {
    char err[ERRBUF_LEN];
    DataRecord rec = {0};
    seq_batch_clear(b);
    b->soft = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            if (dataset_get(d, idx[i], &rec, err) != 0)
                trainer_fail(t, 1, "%s (was the file changed during the run?)", err);
            const char *resp = pass == 0 ? rec.chosen : rec.rejected;
            if (dataset_chat_formatted(d, &rec))
                seq_batch_add_chat(b, t, rec.prompt, resp, chat_eot_id(&d->chat, &t->tok));
            else
                seq_batch_add(b, t, rec.prompt, resp);
            if (pass == 0 && cat_of) cats[i] = cat_of(ctx, rec.category);
            if (pass == 0) b->p_chosen[i] = (float)rec.p_chosen, b->soft |= rec.p_chosen != 1.0;
            data_record_free(&rec);
        }
    }
    seq_batch_finish(b, t);
}
