/*
 * learner/ppo.c — the online RL stages of the learner: PPO (with a critic) and the
 * critic-free GRPO / RLOO, driving actors and reward servers over MPI.
 *
 *   mpirun -np K build/learner ppo CFG : -np M build/reward_server CFG : -np N build/actor CFG
 *   (stage grpo or rloo the same way; tools/rlhf-run builds this line)
 *
 * One update u (ppo.updates of them):
 *   1. learner rank 0 takes the next ppo.rollout_batch / G prompts from the prompt
 *      DataSampler (G = 1 for PPO, grpo.group_size otherwise), expands them to
 *      rollout_batch responses (response j: prompt j / G, sampling key
 *      sample_id = u * G + j % G) and cuts them into work items of ppo.actor_batch
 *      responses; item k of update u has the global id u * items_per_update + k;
 *   2. it hands items out to actors on demand (non-blocking sends; an actor holds at most
 *      `depth` items) and checks every rollout against its item (sender, version, ids,
 *      sizes); rollouts are kept by item id in the update's slot;
 *   3. the batch is assembled in CANONICAL order — item 0, 1, ... whatever order they
 *      arrived in — and broadcast to the other learner ranks (the raw messages; every
 *      rank decodes them the same way);
 *   4. the update (every learner rank, data parallel: rank r takes a fixed slice of every
 *      minibatch, gradients are summed with MPI_Allreduce on the learner communicator);
 *   5. rank 0 sends the new weights, version u + 1, to the actors (online.h: an HDF5 image
 *      the first time, then the parameter buffer, or an image every time with
 *      ppo.weight_sync = image).
 * Synchronous mode (ppo.max_staleness = 0, depth 1) is exactly this, so a run is a
 * deterministic function of the config and the number of learner ranks: sampling is keyed
 * per (seed, prompt, sample id), the work items do not depend on the number of actors, the
 * reward server computes each item on its own, and the batch order is canonical. Runs
 * with 1, 2 or 4 actors give bit-identical weights.
 * Asynchronous mode (S = ppo.max_staleness > 0, depth 2): item (w, k) may go out once the
 * actors hold version >= w - S, so while the learner trains update u the actors already
 * generate updates u + 1 .. u + S with the weights they hold. Rank 0 services the actors
 * between minibatches (ppo_service: rollouts in, items out, nothing blocks), the items
 * of the updates in flight live in S + 1 slots, every rollout's version is checked
 * against [w - S, latest], and PPO's ratio is taken against the behaviour log-probs the
 * actor sent (so the clipped objective corrects for the lag). Items name the oldest
 * version allowed to generate them; actors take new weights before anything else. The
 * staleness bound holds by construction, so no rollout is ever dropped. Not
 * reproducible (arrival order decides which version generates which item); resume
 * continues from the checkpoint's data cursor, past the prompts that were in flight.
 * Before the stop message the learner waits for every item still out (ppo_drain).
 *
 * PPO (docs/ppo.md "PPO update"; Ziegler et al. 2019; Ouyang et al. 2022): per-token
 * reward r_t = -beta (lp_old - lp_ref), + score at the last token (minus
 * ppo.no_eos_penalty without EOS; scores optionally normalised by running mean/std);
 * GAE (Schulman et al. 2016) with the critic's values; whitened advantages; ppo.epochs
 * passes over shuffled minibatches of the clipped policy loss (Schulman et al. 2017,
 * eq. 7, + ent_coef entropy bonus) and the clipped value loss; global-norm clipping and
 * AdamW for each of the two models; adaptive or fixed KL controller. The critic is a GPT
 * with a value head whose trunk comes from the reward model (ppo.value_init = reward) or
 * the SFT policy (sft). With lora.rank > 0 it is a LoRA critic: a frozen trunk (sft: the
 * policy's own frozen base buffer, no copy; reward: one frozen copy of the reward
 * model's), adapters like the policy's and a trainable value head, one buffer that its
 * optimizer (and optim.zero) covers; checkpoints add /value_lora and /optim/value_lora
 * (/value holds the frozen reward trunk and the head; none with sft).
 * The critic has its own AdamW (rate ppo.vf_lr) and its own global-norm clipping, so its
 * loss needs no weight against the policy's: there is no vf_coef.
 * GRPO / RLOO (Shao et al. 2024; Ahmadian et al. 2024): G samples per prompt, one
 * advantage per sequence from the group's scores (grpo.scale_by_std = false: Dr. GRPO's
 * unscaled s - mean), no critic, the KL to the reference as the per-token k3 loss term
 * (grpo.kl_in = loss) or as a per-sequence reward penalty -kl_coef * sum_t (lp_old -
 * lp_ref) on the score before the advantage (grpo.kl_in = reward: with one advantage per
 * sequence a per-token penalty could only act through its sum). Loss aggregation, PPO and
 * GRPO alike: every minibatch is one optimizer step, and its loss is the sum of the
 * per-token terms over every response token of the minibatch (all learner ranks) divided
 * by that token count (LOSS_AGG_TOKEN, denom = the minibatch's response tokens; DAPO's
 * token-level mean), so a long response weighs more than a short one.
 *
 * Logged per update (metrics.jsonl, rank 0): score, KL, beta, entropy, clip fraction,
 * approx-KL, value loss, explained variance, response length, version lag, the largest
 * |actor log-prob - learner log-prob| over the batch before the update, and the time
 * split. Checkpoints (stage ppo/grpo/rloo, group /policy, /value, /optim/{policy,value}, /kl_ctl,
 * /ppo/score_stats, /data/train cursor, every learner rank's RNG) resume exactly.
 *
 * Not here: generation (actor/), scoring (reward_server/), the wire format (common/msg.h).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adamw.h"
#include "ckpt.h"
#include "dataset.h"
#include "fault.h"
#include "learner.h"
#include "loss.h"
#include "mpi_util.h"
#include "msg.h"
#include "online.h"
#include "lora.h"
#include "rl.h"
#include "route.h"
#include "trainer.h"
#include "util.h"

typedef enum { ALGO_PPO = 0, ALGO_GRPO = 1, ALGO_RLOO = 2 } Algo;

/* The work items of one update and what came back (rank 0; on the other learner ranks only
 * roll[] is used, to receive the shared rollouts). */
typedef struct {
    int64_t update;         /* the update these items are for, -1: free */
    MsgBuf *req;            /* (n_items) encoded work items */
    MsgBuf *roll;           /* (n_items) the received rollouts, raw */
    MPI_Request *sreq;      /* (n_items) the item sends (MPI_Isend) */
    int *actor;             /* (n_items) world rank it was given to, -1 none */
    int *got;               /* (n_items) its rollout is in */
    int n_got;
} PpoSlot;

typedef struct {
    Trainer *t;
    MpiRoles *roles;
    MPI_Comm wcomm;
    Algo algo;
    int G;                  /* samples per prompt */
    GPT value;              /* PPO critic */
    size_t first_image_bytes; /* the first weight image's size (LoRA sync report) */
    AdamW vopt;             /* the critic's optimizer: its shard (vzero) */
    Zero vzero;             /* optim.zero over the critic's buffer */
    /* the critic optimizer's target: the value model's buffer, or with LoRA (lora.rank > 0)
     * the critic's adapters + value head (one buffer, lora_attach_value_head) */
    float *vparams, *vgrads;
    size_t vn;
    float *vm_full, *vv_full; /* rank 0, while saving: the critic's gathered moments */
    AdamWSchedule vsched;
    RLKLCtl kl;
    RLRunning sstats;       /* running score statistics (ppo.score_norm) */
    Dataset prompts;
    DataSampler sampler;
    MsgLimits lim;
    int maxT;               /* longest sequence: max_prompt_len + max_new_tokens */
    /* work items of one update */
    int B;                  /* responses per update */
    int n_items, ab;
    /* work items of the updates in flight: update w lives in slots[w % n_slots]; with
     * S = ppo.max_staleness there are S + 1 (the update being trained and the S after it
     * whose items may already be out) */
    int S, n_slots;
    PpoSlot *slots;
    int64_t version;        /* rank 0: the policy version last published to the actors */
    int64_t next_w;         /* rank 0: the next item to hand out is (next_w, next_k) */
    int next_k;
    int depth;              /* items an actor may hold at once (1 sync, 2 async) */
    int *outstanding;       /* per actor (role rank): items given, rollout not yet back */
    MsgBuf scratch, hdr;
    Msg msg;
    FILE *rollout_log;
    /* the batch (B, T) with row stride T = this update's longest sequence */
    int T;
    int *tok, *plen, *len, *has_eos;
    int *onpol;             /* (B) 1: the row was sampled by this update's policy version */
    /* lp_chk: the learner's fp32 log-probs of the behaviour tokens (ppo_prepass) */
    float *mask, *lp_old, *lp_ref, *values, *rewards, *adv, *ret, *lp_chk;
    /* gen.weights = bf16: the actors sample from bf16 weights, so the on-policy rows'
     * behaviour log-probs are replaced by the learner's fp32 ones (ppo_prepass) */
    int recompute_lp;
    /* online_ref_on_learner: lp_ref is the policy's with its adapters off (ppo_prepass),
     * not the reward server's; t_ref = that pass's seconds this update (this rank) */
    int ref_on_learner;
    double t_ref;
    FILE *ref_dump;         /* RLHF_REF_DUMP (rank 0): every update's lp_ref, as text */
    float *scores, *scores_raw, *seq_adv;
    double t_gen, t_score, t_server, t_actor_total;
    double gold_sum, gold_n; /* judge.monitor_gold scores of this update's rollouts */
    RouteTable route;        /* judge.kind = mix: names of the judges in the log */
    int use_route;
    double judge_sum[ROUTE_MAX], judge_n[ROUTE_MAX]; /* score and count per route entry */
    double rm_std_sum, rm_std_n; /* reward-model ensemble disagreement (K > 1) */
    int64_t version_lag_sum;
    /* micro-batch scratch (mb rows x maxT) */
    int micro;
    int *mtok, *mtgt;
    float *mmask, *mlp_old, *mlp_ref, *madv, *mvold, *mret, *mseq_adv, *dlogp, *dent, *dval;
    int *rows;              /* scratch row list */
    int *perm;
    int nonfinite_streak;
    long attempts;          /* minibatch steps tried by this process (fault injection) */
    CkptArena img_arena;    /* rank 0: the weight image, rebuilt in place every update */
    long skipped;
    int n_published;        /* weight publishes of this launch (the first is an image) */
    int bench_done;         /* RLHF_BCAST_BENCH ran */
    float *snap;            /* asynchronous mode: the published parameters being sent */
    MPI_Request *wreq;      /* (actors) their sends */
    int stop_id;            /* generation stops here: EOS, or the chat end-of-turn token */
} Ppo;

/* The token generation stops at: the chat template's end-of-turn token when the prompts
 * are chat-formatted (a model answering <|im_start|>assistant\n ends with <|im_end|>, not
 * EOS), else EOS. One id for the whole run: a file mixing plain and chat prompts stops
 * at the end-of-turn token. */
static int ppo_stop_id(const Dataset *d, const BPE *tok) {
    if (d->n_conv > 0 && d->chat_ok && d->chat.format != CHAT_PLAIN) {
        int eot = chat_eot_id(&d->chat, tok);
        if (eot >= 0) return eot;
    }
    return tok->eos_id;
}

/* A user error in the online stage: the actors and reward servers of the launch would
 * wait for the learner until the peer timeout, so the whole job is aborted (rank 0
 * prints the message; the other learner ranks give it a moment to do so). */
static _Noreturn void ppo_fail(int rank, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static _Noreturn void ppo_fail(int rank, const char *stage, const char *fmt, ...) {
    if (rank == 0) {
        va_list ap;
        fflush(stdout);
        fprintf(stderr, "rlhf-c: learner %s: error: ", stage);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        fflush(stderr);
    } else {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
    mpi_abort_job(1);
}

static const char *algo_stage(Algo a) {
    return a == ALGO_PPO ? "ppo" : a == ALGO_GRPO ? "grpo" : "rloo";
}

// ----------------------------------------------------------------------------
// set-up

/* The critic's value model from a checkpoint: the reward model's trunk (value_init =
 * reward) or the SFT policy's (sft), a new value head. Returns the group it read. */
static const char *ppo_load_value(Ppo *p, int from_reward, char *path) {
    Trainer *t = p->t;
    const RlhfConfig *c = &t->cfg;
    char err[ERRBUF_LEN];
    const char *key = from_reward ? c->ppo.reward_ckpt : c->model.init;
    if (from_reward && !key[0])
        ppo_fail(t->rank, t->stage, "ppo.value_init = reward needs ppo.reward_ckpt (the reward model); "
                           "or set ppo.value_init = sft");
    if (online_resolve(key, from_reward ? "ppo.reward_ckpt" : "model.init", path, CKPT_PATH_LEN,
                    err) != 0)
        ppo_fail(t->rank, t->stage, "critic: %s", err);
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) ppo_fail(t->rank, t->stage, "critic: %s", err);
    const char *g = online_model_group(r, from_reward ? "reward" : "policy");
    GPTConfig mc;
    if (!g || ckpt_read_model_config(r, g, &mc, err) != 0) {
        ckpt_reader_free(r);
        ppo_fail(t->rank, t->stage, "critic: %s: %s", path, g ? err : "no model group");
    }
    GPTHead src = mc.head;
    mc.head = GPT_HEAD_VALUE;
    gpt_init(&p->value, &mc);
    gpt_init_weights(&p->value, (uint64_t)c->run.seed ^ 0x76616c7565ULL);
    int n_trunk = gpt_trunk_tensors(&p->value);
    int rc = ckpt_read_table(r, g, p->value.tensors,
                             src == GPT_HEAD_VALUE ? p->value.num_tensors : n_trunk,
                             p->value.params, err);
    ckpt_reader_free(r);
    if (rc != 0) ppo_fail(t->rank, t->stage, "critic from %s: %s", path, err);
    if (mc.vocab_size < t->tok.vocab_size || mc.max_seq_len < p->maxT)
        ppo_fail(t->rank, t->stage, "critic from %s: vocabulary %d / max_seq_len %d too small for the "
                           "policy's tokenizer (%d) and sequences (%d)",
                     path, mc.vocab_size, mc.max_seq_len, t->tok.vocab_size, p->maxT);
    return g;
}

/* LoRA dropout of the critic: its own stream, keyed by the step like the policy's
 * (trainer_lora_key), so a resumed run draws the same masks. */
static void ppo_critic_key(Ppo *p) {
    Lora *l = p->value.lora;
    if (!l) return;
    l->train = l->dropout > 0.0f;
    l->drop_key = rng_mix64(rng_mix64((uint64_t)p->t->cfg.run.seed * 0x9E3779B97F4A7C15ULL ^
                                      (uint64_t)p->t->step) ^ 0x63726974696343ULL);
}

/* lora.rank > 0: a LoRA critic. Its trunk is frozen: with value_init = sft it IS the
 * policy's frozen base buffer (gpt_init_borrowed: no copy); with reward, the one copy
 * ppo_load_value read. It trains its own adapters (the policy's rank, alpha, targets and
 * dropout; its own init stream) and its value head, one buffer (lora_attach_value_head). */
static void ppo_build_lora_value(Ppo *p, int from_reward) {
    Trainer *t = p->t;
    const RlhfConfig *c = &t->cfg;
    GPT *v = &p->value;
    float *head = NULL;
    if (!from_reward) {
        GPTConfig mc = t->model.config;
        mc.head = GPT_HEAD_VALUE;
        gpt_init_borrowed(v, &mc, &t->model);
        /* the head gpt_init_weights would give (N(0, 1/sqrt(C+1)), bias 0), keyed stream */
        size_t C = (size_t)mc.n_embd;
        head = xcalloc(C + 1, sizeof *head);
        Rng rng;
        rng_init_keyed(&rng, (uint64_t)c->run.seed, 0x76616c7565ULL, 1);
        for (size_t j = 0; j < C; j++) head[j] = rng_normal(&rng) / sqrtf((float)C + 1.0f);
    }
    const Lora *pl = t->model.lora;
    lora_attach(v, pl->rank, pl->alpha, pl->targets, pl->dropout);
    lora_init_weights(v->lora, (uint64_t)c->run.seed ^ 0x76616c7565ULL);
    lora_attach_value_head(v, head ? head : v->w.head_w); /* weight then bias: contiguous */
    free(head);
    ppo_critic_key(p);
}

/* The critic: a value head on the reward model's trunk or the SFT policy's trunk, trained
 * in full, or (lora.rank > 0) frozen with LoRA adapters and a trainable head. */
static void ppo_build_value(Ppo *p) {
    Trainer *t = p->t;
    const RlhfConfig *c = &t->cfg;
    char err[ERRBUF_LEN], path[CKPT_PATH_LEN] = "";
    int from_reward = strcmp(c->ppo.value_init, "reward") == 0;
    const char *g = NULL;
    if (from_reward || !t->model.lora) g = ppo_load_value(p, from_reward, path);
    if (t->model.lora) ppo_build_lora_value(p, from_reward);
    GPT *v = &p->value;
    /* A LoRA critic always recomputes its activations (gpt.h: the same bits as keeping
     * them): they are most of what it adds to the learner (about 300 MB at the smol shape,
     * 8 x 40 tokens), for one more critic trunk forward per backward. */
    v->recompute = c->train.recompute || v->lora;
    gpt_alloc_grads(v);
    p->vparams = v->lora ? v->lora->params : v->params;
    p->vgrads = v->lora ? v->lora->grads : v->grads;
    p->vn = v->lora ? v->lora->n : v->num_params;
    AdamWConfig ac = p->t->opt.cfg;
    zero_init(&p->vzero, t->comm, t->zero.stage, p->vn);
    AdamWRange *ranges = xcalloc((size_t)v->num_tensors, sizeof *ranges);
    int nr = 2; /* LoRA: the adapters and the head's weight decay, its bias does not */
    if (v->lora) {
        size_t nb = v->lora->head_off + v->lora->head_n - 1;
        ranges[0] = (AdamWRange){.offset = 0, .numel = nb, .decay = 1};
        ranges[1] = (AdamWRange){.offset = nb, .numel = 1, .decay = 0};
    } else {
        nr = adamw_decay_table_gpt(ranges, v->tensors, v->num_tensors);
    }
    if (zero_adamw_init(&p->vzero, &p->vopt, &ac, ranges, nr, err) != 0)
        ppo_fail(t->rank, t->stage, "%s", err);
    free(ranges);
    if (t->rank != 0) return;
    if (v->lora)
        printf("learner %s: critic: LoRA rank %d on %s, %zu trainable (adapters + value head)\n",
               t->stage, v->lora->rank,
               from_reward ? "a frozen copy of the reward model's trunk" : "the policy's frozen trunk",
               p->vn);
    if (g) printf("learner %s: critic from %s (/%s trunk, new value head)\n", t->stage, path, g);
}

/* Every rank, before rank 0 writes: the critic's moments gathered in the unsharded
 * layout (freed by ppo_save_extra, or here by the next save if that one failed early). */
static void ppo_pre_save(void *ctx) {
    Ppo *p = ctx;
    if (p->algo != ALGO_PPO) return;
    free(p->vm_full);
    free(p->vv_full);
    p->vm_full = p->vv_full = NULL;
    if (p->vzero.len == p->vzero.n) return; /* not sharded: rank 0 writes its own moments */
    size_t n = p->vzero.n > 0 ? p->vzero.n : 1;
    if (p->t->rank == 0) p->vm_full = xalloc_floats(n), p->vv_full = xalloc_floats(n);
    zero_gather_moments(&p->vzero, &p->vopt, p->vm_full, p->vv_full);
}

/* The critic's weights: /value (a full critic; or a LoRA critic's frozen copy of the
 * reward trunk, with the trained head, so the file alone restores the run) and, with
 * LoRA, /value_lora: its adapters and value head. A critic on the policy's trunk stores
 * no trunk: the policy's base (/policy) is that trunk. */
static int ppo_save_value(Ppo *p, struct CkptWriter *w, char *err) {
    GPT *v = &p->value;
    Lora *l = v->lora;
    if (l && !v->params_borrowed) { /* the trained head into the model's own head slot */
        const GPTTensor *hw = &v->tensors[v->num_tensors - 2];
        memcpy(v->params + hw->offset, l->params + l->head_off, l->head_n * sizeof(float));
    }
    if (!v->params_borrowed && ckpt_write_model(w, "value", v, err) != 0) return -1;
    if (!l) return 0;
    GPTTensor *tab = xcalloc((size_t)lora_table_len(l), sizeof *tab);
    int rc = ckpt_write_table(w, "value_lora", tab, lora_table(l, tab), l->params, err);
    free(tab);
    return rc;
}

static int ppo_save_extra(void *ctx, struct CkptWriter *w, char *err) {
    Ppo *p = ctx;
    double kl[RL_KLCTL_STATE_LEN], ss[3] = {p->sstats.count, p->sstats.mean, p->sstats.m2};
    rl_klctl_save(&p->kl, kl);
    int64_t ctr[2] = {p->skipped, p->nonfinite_streak};
    if (ckpt_write_f64(w, "/kl_ctl", kl, RL_KLCTL_STATE_LEN, err) != 0) return -1;
    if (ckpt_write_f64(w, "/ppo/score_stats", ss, 3, err) != 0) return -1;
    if (ckpt_write_i64(w, "/ppo/counters", ctr, 2, err) != 0) return -1;
    if (p->algo != ALGO_PPO) return 0;
    int rc = ppo_save_value(p, w, err);
    const int sharded = p->vzero.len < p->vzero.n; /* else no gathered copies (pre_save) */
    const char *og = p->value.lora ? "value_lora" : "value";
    if (rc == 0)
        rc = ckpt_write_adamw(w, og, sharded ? p->vm_full : p->vopt.m,
                              sharded ? p->vv_full : p->vopt.v, p->vzero.n, p->vopt.step, err);
    free(p->vm_full);
    free(p->vv_full);
    p->vm_full = p->vv_full = NULL;
    return rc;
}

/* The critic and its moments from checkpoint r; a critic of another kind (LoRA or full,
 * on the policy's or the reward model's trunk) than this run's is refused. */
static int ppo_resume_value(Ppo *p, const CkptReader *r, char *err) {
    GPT *v = &p->value;
    const RlhfConfig *c = &p->t->cfg;
    int has_lora = ckpt_has(r, "/value_lora"), has_trunk = ckpt_has(r, "/value");
    if (has_lora != !!v->lora)
        return errf(err, "the checkpoint's critic is %s but this run has lora.rank = %d: resume "
                         "with the checkpoint's lora settings",
                    has_lora ? "a LoRA critic" : "trained in full", c->lora.rank);
    if (v->lora && has_trunk == v->params_borrowed)
        return errf(err, "the checkpoint's LoRA critic is on %s but this run has ppo.value_init "
                         "= %s: resume with the checkpoint's ppo.value_init",
                    has_trunk ? "the reward model's trunk" : "the policy's trunk", c->ppo.value_init);
    int rc = v->params_borrowed ? 0 : ckpt_read_model(r, "value", v, err);
    if (rc == 0 && v->lora) {
        GPTTensor *tab = xcalloc((size_t)lora_table_len(v->lora), sizeof *tab);
        rc = ckpt_read_table(r, "value_lora", tab, lora_table(v->lora, tab), v->lora->params, err);
        free(tab);
    }
    int64_t st = 0;
    size_t n = p->vzero.n > 0 ? p->vzero.n : 1;
    float *m_full = xalloc_floats(n), *v_full = xalloc_floats(n);
    if (rc == 0)
        rc = ckpt_read_adamw(r, v->lora ? "value_lora" : "value", m_full, v_full, p->vzero.n, &st,
                             err);
    if (rc == 0) zero_scatter_moments(&p->vzero, &p->vopt, m_full, v_full);
    free(m_full);
    free(v_full);
    p->vopt.step = (long)st;
    return rc;
}

/* After trainer_resume restored the policy, its optimizer, the RNG, the data cursor and
 * the step: the critic, its optimizer, the KL controller and the score statistics from the
 * same checkpoint. */
static void ppo_resume_extra(Ppo *p) {
    Trainer *t = p->t;
    ppo_critic_key(p); /* the critic's dropout masks of the restored step */
    if (t->step == 0) return; /* fresh start */
    char err[ERRBUF_LEN], path[CKPT_PATH_LEN];
    const char *how = t->cfg.run.resume;
    int rc = ckpt_resolve(strcmp(how, "auto") == 0 ? t->cfg.run.out_dir : how, "auto", path,
                          sizeof path, err);
    if (rc != 0) ppo_fail(t->rank, t->stage, "resume: %s", err);
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) ppo_fail(t->rank, t->stage, "resume: %s", err);
    double kl[RL_KLCTL_STATE_LEN], ss[3];
    int64_t ctr[2];
    rc = ckpt_read_f64(r, "/kl_ctl", kl, RL_KLCTL_STATE_LEN, err);
    if (rc == 0) rc = rl_klctl_load(&p->kl, kl, err);
    if (rc == 0) rc = ckpt_read_f64(r, "/ppo/score_stats", ss, 3, err);
    if (rc == 0) {
        RLRunning s = {ss[0], ss[1], ss[2]};
        rc = rl_running_validate(&s, err);
        p->sstats = s;
    }
    if (rc == 0) rc = ckpt_read_i64(r, "/ppo/counters", ctr, 2, err);
    if (rc == 0 && p->algo == ALGO_PPO) rc = ppo_resume_value(p, r, err);
    ckpt_reader_free(r);
    if (rc != 0) ppo_fail(t->rank, t->stage, "resume from %s: %s", path, err);
    p->skipped = ctr[0];
    p->nonfinite_streak = (int)ctr[1];
}

// ----------------------------------------------------------------------------
// weights to the actors

/* The RLHF_BCAST_BENCH comparison at the first publish of the steady-state format: the
 * publish path (header to each actor + broadcast) against a plain blocking MPI_Bcast of the
 * same bytes, each started after a barrier, alternating, ONLINE_BCAST_REPS times
 * (actor.c takes part). */
static void ppo_bcast_bench(Ppo *p, int64_t version, void *img, size_t len) {
    Trainer *t = p->t;
    double raw = 0, ours = 0;
    size_t bytes = img ? len : t->model.num_params * sizeof(float);
    for (int rep = 0; rep < ONLINE_BCAST_REPS; rep++) {
        MPI_CHECK(MPI_Barrier(p->wcomm));
        double t1 = time_now();
        if (img)
            MPI_CHECK(MPI_Bcast(img, (int)len, MPI_BYTE, 0, p->wcomm));
        else
            MPI_CHECK(MPI_Bcast(t->model.params, (int)t->model.num_params, MPI_FLOAT, 0, p->wcomm));
        raw += time_now() - t1;
        MPI_CHECK(MPI_Barrier(p->wcomm));
        t1 = time_now();
        if (img)
            online_weights_send(p->roles, p->wcomm, img, len, version, &p->hdr);
        else
            online_weights_send_params(p->roles, p->wcomm, &t->model, version, &p->hdr);
        ours += time_now() - t1;
    }
    printf("learner %s: weight broadcast (%s) of %zu bytes to %d actor(s), mean of %d: "
           "header + bcast %.3f ms, raw MPI_Bcast %.3f ms (ratio %.2f)\n",
           t->stage, img ? MSG_WEIGHTS_FORMAT : MSG_WEIGHTS_FORMAT_PARAMS, bytes,
           p->roles->count[ROLE_ACTOR], ONLINE_BCAST_REPS, 1e3 * ours / ONLINE_BCAST_REPS,
           1e3 * raw / ONLINE_BCAST_REPS, raw > 0 ? ours / raw : 0);
    fflush(stdout);
}

/* New weights (version `version`) to the actors: an HDF5 image the first time and with
 * ppo.weight_sync = image, otherwise the parameter buffer (online.h). */
static void ppo_publish(Ppo *p, int64_t version, double *t_sync) {
    Trainer *t = p->t;
    if (t->rank != 0) return;
    double t0 = time_now();
    int image_mode = strcmp(t->cfg.ppo.weight_sync, "image") == 0;
    int image = p->n_published == 0 || image_mode;
    /* the comparison at the first publish of the steady-state format */
    int bench = getenv("RLHF_BCAST_BENCH") && !p->bench_done && (image_mode || !image);
    /* LoRA: after the first image, the adapters alone (synchronous runs; an asynchronous
     * run sends images, whose snapshot the adapter format does not keep) */
    if (t->model.lora && !image && p->S > 0) image = 1;
    if (t->model.lora && !image) {
        online_weights_send_lora(p->roles, p->wcomm, &t->model, version, &p->hdr);
        if (p->n_published == 1) {
            size_t lb = t->model.lora->n * sizeof(float);
            printf("learner %s: LoRA weight sync: %zu bytes per update (the first image: %zu "
                   "bytes; %.3f%%)\n", t->stage, lb, p->first_image_bytes,
                   100.0 * (double)lb / (double)(p->first_image_bytes ? p->first_image_bytes : 1));
            fflush(stdout);
        }
    } else if (!image && p->S > 0) {
        /* asynchronous: point to point from a snapshot, completed in the background (the
         * previous publish's sends are long done by now: they are waited for first) */
        size_t n = t->model.num_params;
        mpi_wait_all(p->roles->count[ROLE_ACTOR], p->wreq, "sending weights to the actors");
        if (!p->snap) p->snap = xalloc_floats(n);
        memcpy(p->snap, t->model.params, n * sizeof(float));
        online_weights_post_params(p->roles, p->snap, n, &t->model.config, version, &p->hdr,
                                   p->wreq);
        if (bench) {
            mpi_wait_all(p->roles->count[ROLE_ACTOR], p->wreq, "sending weights to the actors");
            ppo_bcast_bench(p, version, NULL, 0);
        }
    } else if (!image) {
        online_weights_send_params(p->roles, p->wcomm, &t->model, version, &p->hdr);
        if (bench) ppo_bcast_bench(p, version, NULL, 0);
    } else {
        char err[ERRBUF_LEN];
        CkptMeta meta = {.step = version, .policy_version = version, .model = t->model.config};
        snprintf(meta.stage, sizeof meta.stage, "%s", t->stage);
        void *img = NULL;
        size_t len = 0;
        CkptWriter *w = ckpt_writer_open_image_in(&p->img_arena, err);
        int rc = w ? 0 : -1;
        if (rc == 0) rc = ckpt_write_meta(w, &meta, err);
        if (rc == 0) rc = ckpt_write_model(w, "policy", &t->model, err);
        if (rc == 0 && t->model.lora) rc = lora_ckpt_write(w, t->model.lora, err);
        if (rc == 0) rc = ckpt_write_attr_i64(w, ONLINE_ATTR_EOS, p->stop_id, err);
        if (rc == 0) {
            rc = ckpt_writer_take_image(w, &img, &len, err);
        } else {
            ckpt_writer_free(w);
        }
        if (rc != 0) mpi_fatal("building the weight image: %s", err);
        online_weights_send(p->roles, p->wcomm, img, len, version, &p->hdr);
        if (p->n_published == 0) p->first_image_bytes = len;
        if (bench) ppo_bcast_bench(p, version, img, len);
        /* LoRA, synchronous, params sync: every later update is the adapters alone, so the
         * image's buffer (the size of the model) is not needed again */
        if (t->model.lora && p->S == 0 && !image_mode) ckpt_arena_free(&p->img_arena);
    }
    if (bench) p->bench_done = 1;
    p->n_published++;
    p->version = version;
    *t_sync += time_now() - t0;
}

static void ppo_send_stop(Ppo *p, const char *why) {
    if (p->t->rank != 0) return;
    msg_encode_stop(&p->hdr, why);
    for (int role = ROLE_ACTOR; role <= ROLE_REWARD; role++)
        for (int i = 0; i < p->roles->count[role]; i++)
            mpi_send_bytes(MPI_COMM_WORLD, p->roles->ranks[role][i], TAG_STOP, p->hdr.data,
                           p->hdr.len);
}

// ----------------------------------------------------------------------------
// rollouts (rank 0)

static PpoSlot *ppo_slot(Ppo *p, int64_t w) { return &p->slots[w % p->n_slots]; }

/* Encode the work items of update w into its slot: the next rollout_batch / G prompts, G
 * samples each. The slot must be free (its previous update assembled). */
static void ppo_make_items(Ppo *p, int64_t w) {
    Trainer *t = p->t;
    const RlhfConfig *c = &t->cfg;
    char err[ERRBUF_LEN];
    PpoSlot *sl = ppo_slot(p, w);
    ASSERT(sl->update < 0);
    /* the sends of the slot's previous items: complete (their rollouts came back) */
    mpi_wait_all(p->n_items, sl->sreq, "sending work items");
    int P = p->B / p->G;
    int64_t *idx = xmalloc((size_t)P * sizeof(int64_t));
    int n = data_sampler_next(&p->sampler, P, 0, 1, idx);
    ASSERT(n == P);
    DataRecord rec = {0};
    int **ptok = xcalloc((size_t)P, sizeof(int *));
    int *pn = xcalloc((size_t)P, sizeof(int));
    for (int i = 0; i < P; i++) {
        size_t cap = 0;
        if (dataset_get(&p->prompts, idx[i], &rec, err) != 0)
            mpi_fatal("%s (was the prompt file changed during the run?)", err);
        /* a chat-rendered prompt keeps its markup as special ids: it ends with the
         * generation prompt (the assistant header) */
        int np = dataset_chat_formatted(&p->prompts, &rec)
                     ? trainer_encode_chat(t, rec.prompt, &ptok[i], &cap)
                     : trainer_encode(t, rec.prompt, &ptok[i], &cap);
        data_truncate(ptok[i], &np, c->data.max_prompt_len,
                      strcmp(c->data.truncate_prompt, "left") == 0, NULL, NULL, 0);
        if (np == 0) { /* an empty prompt: the model starts from EOS (a document boundary) */
            if (cap < 1) ptok[i] = xrealloc(ptok[i], sizeof(int));
            ptok[i][0] = t->tok.eos_id;
            np = 1;
        }
        pn[i] = np;
        trainer_dump_row(t, ptok[i], NULL, np);
        data_record_free(&rec);
    }
    /* the oldest policy version that may generate them: w - S (w itself when synchronous) */
    int64_t min_version = w - p->S > 0 ? w - p->S : 0;
    MsgBatch b;
    msg_batch_init(&b);
    for (int k = 0; k < p->n_items; k++) {
        msg_batch_clear(&b);
        int j0 = k * p->ab, j1 = j0 + p->ab < p->B ? j0 + p->ab : p->B;
        for (int j = j0; j < j1; j++) {
            int pi = j / p->G;
            msg_batch_append_seq(&b, (uint64_t)idx[pi], (uint64_t)w * (uint64_t)p->G + (uint64_t)(j % p->G),
                                 ptok[pi], pn[pi], NULL, 0);
        }
        msg_encode_score_req(&sl->req[k], (uint64_t)w * (uint64_t)p->n_items + (uint64_t)k,
                             min_version, !p->ref_on_learner, &b);
        sl->actor[k] = -1;
        sl->got[k] = 0;
    }
    sl->update = w;
    sl->n_got = 0;
    msg_batch_free(&b);
    for (int i = 0; i < P; i++) free(ptok[i]);
    free(ptok);
    free(pn);
    free(idx);
}

/* Hand out every item that may go now, in canonical order: item (w, k) once the actors
 * hold version >= w - S, to the actor holding the fewest items (below the depth). The
 * sends are non-blocking: an actor busy generating does not stall the learner. */
static void ppo_hand_out(Ppo *p) {
    const MpiRoles *r = p->roles;
    int na = r->count[ROLE_ACTOR];
    while (p->next_w < p->t->cfg.ppo.updates && p->next_w <= p->version + p->S) {
        int best = -1;
        for (int a = 0; a < na; a++)
            if (p->outstanding[a] < p->depth && (best < 0 || p->outstanding[a] < p->outstanding[best]))
                best = a;
        if (best < 0) return;
        PpoSlot *sl = ppo_slot(p, p->next_w);
        if (sl->update != p->next_w) ppo_make_items(p, p->next_w);
        int k = p->next_k, dest = r->ranks[ROLE_ACTOR][best];
        sl->actor[k] = dest;
        MPI_CHECK(MPI_Isend(sl->req[k].data, (int)sl->req[k].len, MPI_BYTE, dest, TAG_CTRL,
                            MPI_COMM_WORLD, &sl->sreq[k]));
        p->outstanding[best]++;
        if (++p->next_k == p->n_items) {
            p->next_k = 0;
            p->next_w++;
        }
    }
}

/* Check a rollout against the work item it claims to answer; returns its slot and sets *k. */
static PpoSlot *ppo_check_rollout(Ppo *p, const MPI_Status *st, int *kout) {
    char who[64], err[ERRBUF_LEN];
    const Msg *m = &p->msg;
    const MsgBatch *b = &m->batch;
    mpi_describe_rank(st->MPI_SOURCE, who, sizeof who);
    if (p->roles->role_of[st->MPI_SOURCE] != ROLE_ACTOR)
        mpi_fatal("rollout from %s, which is not an actor", who);
    uint64_t id = m->rollout.batch_id;
    uint64_t wu = id / (uint64_t)p->n_items;
    int64_t w = wu > (uint64_t)INT64_MAX ? -1 : (int64_t)wu;
    int k = (int)(id % (uint64_t)p->n_items);
    PpoSlot *sl = w >= 0 ? ppo_slot(p, w) : NULL;
    if (!sl || sl->update != w)
        mpi_fatal("rollout from %s for work item %llu, which is not out (update %lld)", who,
                  (unsigned long long)id, (long long)w);
    if (sl->got[k]) mpi_fatal("rollout from %s for work item %llu a second time", who,
                              (unsigned long long)id);
    if (sl->actor[k] != st->MPI_SOURCE)
        mpi_fatal("rollout from %s for work item %llu, which was given to another rank", who,
                  (unsigned long long)id);
    if (m->policy_version < w - p->S || m->policy_version > p->version)
        mpi_fatal("rollout from %s for update %lld made by policy version %lld: allowed %lld to "
                  "%lld (ppo.max_staleness = %d)", who, (long long)w,
                  (long long)m->policy_version, (long long)(w - p->S > 0 ? w - p->S : 0),
                  (long long)p->version, p->S);
    /* the same sequences as the item, prompts included */
    Msg *req = xmalloc(sizeof *req);
    msg_init(req);
    if (msg_decode(sl->req[k].data, sl->req[k].len, &p->lim, req, err) != 0)
        mpi_fatal("re-reading work item %d: %s", k, err);
    const MsgBatch *wb = &req->batch;
    int ok = wb->n == b->n;
    for (int i = 0; ok && i < b->n; i++) {
        ok = wb->prompt_ids[i] == b->prompt_ids[i] && wb->sample_ids[i] == b->sample_ids[i] &&
             wb->prompt_lens[i] == b->prompt_lens[i] &&
             memcmp(wb->tokens + wb->tok_off[i], b->tokens + b->tok_off[i],
                    (size_t)wb->prompt_lens[i] * sizeof(int32_t)) == 0;
    }
    msg_free(req);
    free(req);
    if (!ok) mpi_fatal("rollout from %s does not match work item %llu (other prompts)", who,
                       (unsigned long long)id);
    for (int i = 0; i < b->n; i++) {
        if (b->resp_lens[i] < 1 || b->resp_lens[i] > p->t->cfg.gen.max_new_tokens)
            mpi_fatal("rollout from %s: response %d has %d tokens (gen.max_new_tokens = %d)",
                      who, i, b->resp_lens[i], p->t->cfg.gen.max_new_tokens);
    }
    *kout = k;
    return sl;
}

/* Receive the rollout that *st announces, check it, keep it in its slot (rank 0). */
static void ppo_receive(Ppo *p, const MPI_Status *st) {
    mpi_recv_msg(MPI_COMM_WORLD, st, &p->scratch, &p->lim, &p->msg);
    if (p->rollout_log) {
        uint32_t n = (uint32_t)p->scratch.len;
        unsigned char le[4] = {n & 255, (n >> 8) & 255, (n >> 16) & 255, n >> 24};
        if (fwrite(le, 1, 4, p->rollout_log) != 4 ||
            fwrite(p->scratch.data, 1, p->scratch.len, p->rollout_log) != p->scratch.len)
            mpi_fatal("writing ppo.rollout_log %s failed", p->t->cfg.ppo.rollout_log);
    }
    int k;
    PpoSlot *sl = ppo_check_rollout(p, st, &k);
    MsgBuf tmp = sl->roll[k];
    sl->roll[k] = p->scratch;
    p->scratch = tmp;
    sl->got[k] = 1;
    sl->n_got++;
    const MpiRoles *r = p->roles;
    for (int a = 0; a < r->count[ROLE_ACTOR]; a++)
        if (r->ranks[ROLE_ACTOR][a] == st->MPI_SOURCE) p->outstanding[a]--;
}

/* Between the learner's own steps (asynchronous mode, rank 0): take every rollout already
 * waiting and hand out what may go, without blocking. */
static void ppo_service(Ppo *p) {
    if (p->S == 0 || p->t->rank != 0) return;
    int tags[1] = {TAG_ROLLOUT};
    MPI_Status st;
    while (mpi_poll_any_message(MPI_COMM_WORLD, MPI_ANY_SOURCE, tags, 1, 0, &st) >= 0) {
        ppo_receive(p, &st);
        ppo_hand_out(p);
    }
    ppo_hand_out(p);
}

/* Collect every rollout of update u, handing out items as actors free up (rank 0). */
static void ppo_collect(Ppo *p, int64_t u, double *t_wait) {
    PpoSlot *sl = ppo_slot(p, u);
    int tags[1] = {TAG_ROLLOUT};
    ppo_hand_out(p);
    ASSERT(sl->update == u);
    while (sl->n_got < p->n_items) {
        MPI_Status st;
        double t0 = time_now();
        mpi_wait_any_message(MPI_COMM_WORLD, MPI_ANY_SOURCE, tags, 1, &st);
        *t_wait += time_now() - t0;
        ppo_receive(p, &st);
        ppo_hand_out(p);
    }
    if (p->rollout_log) fflush(p->rollout_log);
}

/* Before the stop message: wait for every rollout still out (asynchronous mode leaves
 * items of later updates with the actors), so that no send is left unmatched. */
static void ppo_drain(Ppo *p) {
    if (p->t->rank != 0) return;
    int tags[1] = {TAG_ROLLOUT}, left = 0;
    for (int a = 0; a < p->roles->count[ROLE_ACTOR]; a++) left += p->outstanding[a];
    for (; left > 0; left--) {
        MPI_Status st;
        mpi_wait_any_message(MPI_COMM_WORLD, MPI_ANY_SOURCE, tags, 1, &st);
        ppo_receive(p, &st);
    }
    for (int i = 0; i < p->n_slots; i++) mpi_wait_all(p->n_items, p->slots[i].sreq, "sending work items");
    mpi_wait_all(p->roles->count[ROLE_ACTOR], p->wreq, "sending weights to the actors");
}

/* Rank 0's raw rollouts of update u to every learner rank (sizes, then the bytes). */
static void ppo_share_rollouts(Ppo *p, int64_t u) {
    Trainer *t = p->t;
    if (t->nranks == 1) return;
    PpoSlot *sl = ppo_slot(p, u);
    uint64_t *sz = xmalloc((size_t)p->n_items * sizeof(uint64_t));
    for (int k = 0; k < p->n_items; k++) sz[k] = t->rank == 0 ? sl->roll[k].len : 0;
    MPI_CHECK(MPI_Bcast(sz, p->n_items, MPI_UINT64_T, 0, t->comm));
    for (int k = 0; k < p->n_items; k++) {
        if (t->rank != 0) {
            msg_buf_reserve(&sl->roll[k], sz[k]);
            sl->roll[k].len = sz[k];
        }
        MPI_CHECK(MPI_Bcast(sl->roll[k].data, (int)sz[k], MPI_BYTE, 0, t->comm));
    }
    free(sz);
}

/* Decode the rollouts in item order into the padded batch. */
static void ppo_assemble(Ppo *p, int64_t u) {
    char err[ERRBUF_LEN];
    PpoSlot *sl = ppo_slot(p, u);
    p->T = 1;
    p->t_gen = p->t_score = p->t_server = p->t_actor_total = 0;
    p->gold_sum = p->gold_n = 0;
    memset(p->judge_sum, 0, sizeof p->judge_sum);
    memset(p->judge_n, 0, sizeof p->judge_n);
    p->rm_std_sum = p->rm_std_n = 0;
    p->version_lag_sum = 0;
    int row = 0;
    for (int pass = 0; pass < 2; pass++) {
        row = 0;
        for (int k = 0; k < p->n_items; k++) {
            if (msg_decode(sl->roll[k].data, sl->roll[k].len, &p->lim, &p->msg, err) != 0)
                mpi_fatal("rollout of item %d: %s", k, err);
            const MsgBatch *b = &p->msg.batch;
            if (!b->has_ref && !p->ref_on_learner)
                mpi_fatal("rollout of item %d carries no ref_logprobs, and this learner does "
                          "not compute them (ppo.ref_on): do the actors and reward servers "
                          "use the same config?", k);
            if (pass == 0) {
                for (int i = 0; i < b->n; i++) {
                    int l = b->prompt_lens[i] + b->resp_lens[i];
                    if (l > p->T) p->T = l;
                }
                p->t_gen += p->msg.rollout.t_generate;
                p->t_score += p->msg.rollout.t_score;
                p->t_actor_total += p->msg.rollout.t_total;
                const float *ts = msg_batch_find_extra(b, ONLINE_EXTRA_T_SERVER);
                for (int i = 0; ts && i < b->n; i++) p->t_server += ts[i];
                const float *gs = msg_batch_find_extra(b, ONLINE_EXTRA_GOLD);
                for (int i = 0; gs && i < b->n; i++)
                    if (gs[i] >= 0.0f) {
                        p->gold_sum += gs[i];
                        p->gold_n += 1;
                    }
                const float *sd = msg_batch_find_extra(b, ONLINE_EXTRA_RM_STD);
                for (int i = 0; sd && i < b->n; i++)
                    if (sd[i] >= 0.0f) {
                        p->rm_std_sum += sd[i];
                        p->rm_std_n += 1;
                    }
                const float *jr = msg_batch_find_extra(b, ONLINE_EXTRA_JUDGE);
                for (int i = 0; jr && p->use_route && i < b->n; i++) {
                    int e = (int)jr[i];
                    if (e < 0 || e >= p->route.n || (float)e != jr[i])
                        mpi_fatal("rollout of item %d: judge index %g is not an entry of "
                                  "judge.route (do the reward servers use the same config?)",
                                  k, (double)jr[i]);
                    p->judge_sum[e] += b->scores[i];
                    p->judge_n[e] += 1;
                }
                p->version_lag_sum += (u - p->msg.policy_version) * b->n;
                row += b->n;
                continue;
            }
            int T = p->T;
            for (int i = 0; i < b->n; i++, row++) {
                const int32_t *seq = b->tokens + b->tok_off[i];
                int np = b->prompt_lens[i], nr = b->resp_lens[i], l = np + nr;
                size_t o = (size_t)row * T;
                for (int x = 0; x < T; x++) {
                    p->tok[o + x] = x < l ? seq[x] : p->t->tok.pad_id;
                    p->mask[o + x] = 0;
                    p->lp_old[o + x] = p->lp_ref[o + x] = 0;
                }
                for (int j = 0; j < nr; j++) {
                    size_t at = o + (size_t)(np - 1 + j);
                    p->mask[at] = 1;
                    p->lp_old[at] = b->logprobs[b->resp_off[i] + (size_t)j];
                    p->lp_ref[at] = b->ref_logprobs[b->resp_off[i] + (size_t)j];
                }
                p->plen[row] = np;
                p->len[row] = l;
                p->onpol[row] = p->msg.policy_version == u;
                p->has_eos[row] = b->finished[i];
                p->scores_raw[row] = b->scores[i];
            }
        }
        if (pass == 0 && row != p->B)
            mpi_fatal("the rollouts hold %d responses, expected %d", row, p->B);
    }
}

// ----------------------------------------------------------------------------
// the update (every learner rank)

/* Gather rows[0..n) of the batch into the micro-batch scratch; returns its T. */
static int ppo_gather(Ppo *p, const int *rows, int n) {
    int Tm = 1;
    for (int i = 0; i < n; i++)
        if (p->len[rows[i]] > Tm) Tm = p->len[rows[i]];
    for (int i = 0; i < n; i++) {
        size_t s = (size_t)rows[i] * p->T, d = (size_t)i * Tm;
        for (int x = 0; x < Tm; x++) {
            p->mtok[d + x] = p->tok[s + x];
            int m = p->mask[s + x] != 0;
            p->mtgt[d + x] = m ? p->tok[s + x + 1] : -1;
            p->mmask[d + x] = p->mask[s + x];
            p->mlp_old[d + x] = p->lp_old[s + x];
            p->mlp_ref[d + x] = p->lp_ref[s + x];
            p->madv[d + x] = p->adv[s + x];
            p->mvold[d + x] = p->values[s + x];
            p->mret[d + x] = p->ret[s + x];
        }
        p->mseq_adv[i] = p->seq_adv[rows[i]];
    }
    return Tm;
}

/* The reference log-probs of micro-batch rows[0..n) (gathered, length Tm) into lp_ref:
 * the same model with its adapters off is the frozen base, i.e. the reference
 * (online_ref_on_learner). Called from ppo_prepass, which runs in eval mode (no LoRA
 * dropout: lora_eval_begin). */
static void ppo_ref_pass(Ppo *p, int n, int Tm) {
    GPT *m = &p->t->model;
    double t0 = time_now();
    m->lora->enabled = 0;
    gpt_forward(m, p->mtok, n, Tm);
    gpt_lm_forward(m, p->mtgt, n, Tm);
    m->lora->enabled = 1;
    for (int i = 0; i < n; i++)
        for (int x = 0; x < Tm; x++) {
            size_t d = (size_t)i * Tm + x;
            if (p->mmask[d] != 0) p->lp_ref[(size_t)p->rows[i] * p->T + x] = m->logprobs[d];
        }
    p->t_ref += time_now() - t0;
}

/* RLHF_REF_DUMP=FILE (rank 0): one line per update, "update U" and the lp_ref of every
 * response token in batch order (%.9g: the float's exact value), for tests that compare
 * where the reference is computed (tests/t_lora.sh). */
static void ppo_ref_dump(Ppo *p, int64_t u) {
    if (!p->ref_dump) return;
    fprintf(p->ref_dump, "update %lld", (long long)u);
    for (size_t i = 0; i < (size_t)p->B * p->T; i++)
        if (p->mask[i] != 0) fprintf(p->ref_dump, " %.9g", (double)p->lp_ref[i]);
    fprintf(p->ref_dump, "\n");
    if (fflush(p->ref_dump) != 0) mpi_fatal("writing RLHF_REF_DUMP failed");
}

/* Before the update: the critic's values (PPO), the reference log-probs when the learner
 * computes them (ppo_ref_pass) and the learner's own log-probs of the
 * behaviour tokens (a check that actor and learner agree: *lp_maxdiff), rows split over
 * ranks. With p->recompute_lp the learner's fp32 log-probs become lp_old of the rows the
 * current policy version sampled: they are that policy's, computed at the learner's
 * precision, so the first minibatch's ratio is exactly 1 as in fp32 sampling. Rows from
 * an older version (asynchronous runs) keep the actor's: the learner no longer holds
 * those weights, and their staleness outweighs the bf16 rounding. */
static void ppo_prepass(Ppo *p, double *lp_maxdiff, double *entropy) {
    Trainer *t = p->t;
    size_t BT = (size_t)p->B * p->T;
    /* LoRA dropout is for the training forwards: the behaviour log-probs, the entropy
     * and the critic's values of the pre-pass are the models' own (the actors sample
     * without dropout), so both run in eval mode here and get their flags back after */
    int pol_train = lora_eval_begin(t->model.lora);
    int val_train = p->algo == ALGO_PPO ? lora_eval_begin(p->value.lora) : 0;
    memset(p->values, 0, BT * sizeof(float));
    memset(p->lp_chk, 0, BT * sizeof(float));
    if (p->ref_on_learner) memset(p->lp_ref, 0, BT * sizeof(float));
    p->t_ref = 0;
    double ent = 0, md = 0;
    for (int r0 = t->rank * p->micro; r0 < p->B; r0 += t->nranks * p->micro) {
        int n = 0;
        for (int r = r0; r < p->B && r < r0 + p->micro; r++) p->rows[n++] = r;
        int Tm = ppo_gather(p, p->rows, n);
        gpt_forward(&t->model, p->mtok, n, Tm);
        gpt_lm_forward(&t->model, p->mtgt, n, Tm);
        for (int i = 0; i < n; i++)
            for (int x = 0; x < Tm; x++) {
                size_t d = (size_t)i * Tm + x;
                if (p->mmask[d] == 0) continue;
                double diff = fabs((double)t->model.logprobs[d] - (double)p->mlp_old[d]);
                if (!(diff <= md)) md = diff; /* NaN propagates */
                p->lp_chk[(size_t)p->rows[i] * p->T + x] = t->model.logprobs[d];
                ent += t->model.entropy[d];
            }
        if (p->ref_on_learner) ppo_ref_pass(p, n, Tm);
        ppo_service(p);
        if (p->algo == ALGO_PPO) {
            gpt_forward(&p->value, p->mtok, n, Tm);
            gpt_value_forward(&p->value, n, Tm);
            for (int i = 0; i < n; i++)
                for (int x = 0; x < Tm; x++)
                    if (p->mmask[(size_t)i * Tm + x] != 0)
                        p->values[(size_t)p->rows[i] * p->T + x] = p->value.values[(size_t)i * Tm + x];
        }
    }
    if (t->nranks > 1) {
        if (p->algo == ALGO_PPO)
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p->values, (int)BT, MPI_FLOAT, MPI_SUM, t->comm));
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &md, 1, MPI_DOUBLE, MPI_MAX, t->comm));
        if (p->recompute_lp) /* each position is one rank's, zero on the others */
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p->lp_chk, (int)BT, MPI_FLOAT, MPI_SUM, t->comm));
        if (p->ref_on_learner) /* the same: exact sums */
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p->lp_ref, (int)BT, MPI_FLOAT, MPI_SUM, t->comm));
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &ent, 1, MPI_DOUBLE, MPI_SUM, t->comm));
    }
    double ntok = 0;
    for (size_t i = 0; i < BT; i++) ntok += p->mask[i] != 0;
    for (int r = 0; p->recompute_lp && r < p->B; r++)
        for (int x = 0; p->onpol[r] && x < p->T; x++) {
            size_t at = (size_t)r * p->T + x;
            if (p->mask[at] != 0) p->lp_old[at] = p->lp_chk[at];
        }
    *lp_maxdiff = md;
    *entropy = ntok > 0 ? ent / ntok : 0;
    lora_eval_end(t->model.lora, pol_train);
    if (p->algo == ALGO_PPO) lora_eval_end(p->value.lora, val_train);
}

/* Sum gradients over learner ranks (optim.zero: this rank's shard only, zero.h); returns
 * their global norm (clipping happens in the update: zero_step with adamw_clip_scale). */
static double ppo_grad_reduce(const Zero *z, float *grads) {
    return zero_reduce_grads(z, grads);
}

typedef struct {
    double n_tok;           /* token weights of the sums below */
    double pol_loss, clipfrac, approx_kl, ratio, grpo_kl;
    double v_loss, v_clipfrac;
    double gnorm_p, gnorm_v, n_steps;
    float lr;
} UpdStats;

static void ppo_train(Ppo *p, int64_t u, UpdStats *us) {
    Trainer *t = p->t;
    const RlhfConfig *c = &t->cfg;
    int mb = c->ppo.minibatch;
    LossPPOConfig pc = {.clip_low = (float)c->ppo.clip, .clip_high = (float)c->ppo.clip,
                        .ent_coef = (float)c->ppo.ent_coef, .agg = LOSS_AGG_TOKEN};
    LossValueConfig vc = {.clip = (float)c->ppo.vf_clip, .agg = LOSS_AGG_TOKEN};
    int kl_loss = p->algo != ALGO_PPO && strcmp(c->grpo.kl_in, "loss") == 0;
    LossGRPOConfig gc = {.clip_low = (float)c->ppo.clip, .clip_high = (float)c->ppo.clip,
                         .kl_coef = kl_loss ? (float)c->grpo.kl_coef : 0.0f,
                         .agg = LOSS_AGG_TOKEN};
    memset(us, 0, sizeof *us);
    for (int e = 0; e < c->ppo.epochs; e++) {
        Rng rng;
        rng_init_keyed(&rng, (uint64_t)c->run.seed, 0x70706f7368ULL,
                       (uint64_t)u * (uint64_t)c->ppo.epochs + (uint64_t)e);
        for (int i = 0; i < p->B; i++) p->perm[i] = i;
        rng_shuffle_ints(&rng, p->perm, p->B);
        for (int m0 = 0; m0 < p->B; m0 += mb) {
            int msz = m0 + mb <= p->B ? mb : p->B - m0;
            const int *mrows = p->perm + m0;
            double denom = 0;
            for (int i = 0; i < msz; i++) denom += p->len[mrows[i]] - p->plen[mrows[i]];
            pc.denom = vc.denom = gc.denom = denom;
            int s0, s1;
            data_shard(msz, t->rank, t->nranks, &s0, &s1);
            gpt_zero_grad(&t->model);
            if (p->algo == ALGO_PPO) gpt_zero_grad(&p->value);
            for (int i0 = s0; i0 < s1; i0 += p->micro) {
                int n = i0 + p->micro <= s1 ? p->micro : s1 - i0;
                int Tm = ppo_gather(p, mrows + i0, n);
                size_t nt = (size_t)n * Tm;
                GPT *pm = &t->model;
                gpt_forward(pm, p->mtok, n, Tm);
                gpt_lm_forward(pm, p->mtgt, n, Tm);
                memset(p->dlogp, 0, nt * sizeof(float));
                double ntk;
                if (p->algo == ALGO_PPO) {
                    LossPPOStats ps;
                    loss_ppo_policy_forward(&ps, pm->logprobs, p->mlp_old, p->madv,
                                            pc.ent_coef > 0 ? pm->entropy : NULL, p->mmask, &pc,
                                            n, Tm);
                    memset(p->dent, 0, nt * sizeof(float));
                    loss_ppo_policy_backward(p->dlogp, pc.ent_coef > 0 ? p->dent : NULL,
                                             pm->logprobs, p->mlp_old, p->madv, p->mmask, &pc, n,
                                             Tm);
                    ntk = ps.n_tokens;
                    us->pol_loss += ps.policy_loss; /* already / the minibatch's tokens */
                    us->clipfrac += ps.clipfrac * ntk;
                    us->approx_kl += ps.approx_kl * ntk;
                    us->ratio += ps.ratio_mean * ntk;
                    gpt_lm_backward(pm, p->dlogp, pc.ent_coef > 0 ? p->dent : NULL, n, Tm);

                    GPT *vm = &p->value;
                    gpt_forward(vm, p->mtok, n, Tm);
                    gpt_value_forward(vm, n, Tm);
                    LossValueStats vs;
                    loss_value_forward(&vs, vm->values, p->mvold, p->mret, p->mmask, &vc, n, Tm);
                    memset(p->dval, 0, nt * sizeof(float));
                    loss_value_backward(p->dval, vm->values, p->mvold, p->mret, p->mmask, &vc, n,
                                        Tm);
                    gpt_value_backward(vm, p->dval, n, Tm);
                    us->v_loss += vs.loss;
                    us->v_clipfrac += vs.clipfrac * ntk;
                } else {
                    LossGRPOStats gs;
                    const float *lref = gc.kl_coef > 0 ? p->mlp_ref : NULL;
                    loss_grpo_forward(&gs, pm->logprobs, p->mlp_old, lref, p->mseq_adv, p->mmask,
                                      &gc, n, Tm);
                    loss_grpo_backward(p->dlogp, pm->logprobs, p->mlp_old, lref, p->mseq_adv,
                                       p->mmask, &gc, n, Tm);
                    ntk = gs.n_tokens;
                    us->pol_loss += gs.policy_loss;
                    us->clipfrac += gs.clipfrac * ntk;
                    us->ratio += gs.ratio_mean * ntk;
                    us->grpo_kl += gs.kl * ntk;
                    gpt_lm_backward(pm, p->dlogp, NULL, n, Tm);
                }
                us->n_tok += ntk;
            }
            /* the policy optimizer's target: the model, or its LoRA adapters (trainer.h) */
            float *pgrads = t->opt_grads ? t->opt_grads : t->model.grads;
            if (t->rank == 0 && fault_nonfinite_at(++p->attempts)) pgrads[0] = NAN;
            double gp = ppo_grad_reduce(&t->zero, pgrads);
            double gv = p->algo == ALGO_PPO ? ppo_grad_reduce(&p->vzero, p->vgrads) : 0;
            us->lr = adamw_schedule_lr(&t->sched, t->opt.step);
            /* policy and value step together or not at all */
            if (isfinite(gp) && isfinite(gv)) {
                const float clip = (float)t->cfg.optim.grad_clip;
                zero_step(&t->zero, &t->opt, t->opt_params, pgrads, us->lr,
                          adamw_clip_scale(gp, clip));
                if (p->algo == ALGO_PPO)
                    zero_step(&p->vzero, &p->vopt, p->vparams, p->vgrads,
                              adamw_schedule_lr(&p->vsched, p->vopt.step),
                              adamw_clip_scale(gv, clip));
            }
            if (!isfinite(gp) || !isfinite(gv)) {
                p->skipped++;
                p->nonfinite_streak++;
                if (t->rank == 0)
                    fprintf(stderr, "learner %s: warning: non-finite gradient in update %lld: "
                                    "minibatch step skipped (%d in a row)\n",
                            t->stage, (long long)u + 1, p->nonfinite_streak);
                if (p->nonfinite_streak > c->run.max_nonfinite)
                    ppo_fail(t->rank, t->stage, "%d consecutive non-finite gradients (run.max_nonfinite "
                                       "= %d): lower optim.lr; the last checkpoint is intact",
                                 p->nonfinite_streak, c->run.max_nonfinite);
            } else {
                p->nonfinite_streak = 0;
            }
            us->gnorm_p += gp;
            us->gnorm_v += gv;
            us->n_steps += 1;
            ppo_service(p); /* asynchronous mode: rollouts in, items out */
        }
    }
    double s[9] = {us->n_tok, us->pol_loss, us->clipfrac, us->approx_kl, us->ratio,
                   us->grpo_kl, us->v_loss, us->v_clipfrac, 0};
    trainer_allreduce_sum(t, s, 8);
    us->n_tok = s[0];
    double w = s[0] > 0 ? s[0] : 1;
    /* the losses are sums of per-minibatch means (denominator: the minibatch's tokens) */
    double nst = us->n_steps > 0 ? us->n_steps : 1;
    us->pol_loss = s[1] / nst;
    us->clipfrac = s[2] / w;
    us->approx_kl = s[3] / w;
    us->ratio = s[4] / w;
    us->grpo_kl = s[5] / w;
    us->v_loss = s[6] / nst;
    us->v_clipfrac = s[7] / w;
    if (us->n_steps > 0) {
        us->gnorm_p /= us->n_steps;
        us->gnorm_v /= us->n_steps;
    }
}

// ----------------------------------------------------------------------------
// the stage

/* The user errors that trainer_init would report by leaving the learner alone (which
 * would leave the other roles waiting): checked first, failing the whole job. */
static void ppo_precheck(const MpiRoles *roles, const char *stage, Algo algo,
                         const char *cfg_path, int n, char *const *over) {
    int rank = roles->role_rank;
    RlhfConfig c;
    char err[ERRBUF_LEN], path[CKPT_PATH_LEN];
    if (config_load(&c, cfg_path, n, over, err) != 0) ppo_fail(rank, stage, "%s", err);
    if (!c.model.init[0])
        ppo_fail(rank, stage, "model.init is empty: online RL starts from the SFT policy (a "
                              "checkpoint or run directory of `learner sft`)");
    if (online_resolve(c.model.init, "model.init", path, sizeof path, err) != 0)
        ppo_fail(rank, stage, "%s", err);
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) ppo_fail(rank, stage, "model.init: %s", err);
    int has_tok = toksrc_meta_has(ckpt_reader_meta(r));
    /* chat.template = auto: the tokenizer folder's template, else the checkpoint's (as
     * trainer_init finds it) */
    char *chat_jinja = NULL;
    if (c.tokenizer.path[0] && toksrc_dir_chat_template(c.tokenizer.path, &chat_jinja, err) != 0)
        ppo_fail(rank, stage, "%s", err);
    const char *jinja = ckpt_reader_meta(r)->chat_template;
    if (!chat_jinja && jinja) chat_jinja = xstrdup(jinja);
    ckpt_reader_free(r);
    if (!c.tokenizer.path[0] && !has_tok)
        ppo_fail(rank, stage, "%s holds no tokenizer: set tokenizer.path=DIR (vocab.json + "
                              "merges.txt, or tokenizer.json)", path);
    RouteTable rt;
    if (strcmp(c.judge.kind, "mix") == 0 && route_parse(&rt, c.judge.route, err) != 0)
        ppo_fail(rank, stage, "%s", err);
    if (algo == ALGO_PPO && strcmp(c.ppo.value_init, "reward") == 0 && !c.ppo.reward_ckpt[0])
        ppo_fail(rank, stage, "ppo.value_init = reward needs ppo.reward_ckpt (the reward "
                              "model); or set ppo.value_init = sft");
    if (!c.data.train[0]) ppo_fail(rank, stage, "data.train is empty: give the prompts JSONL");
    Dataset d;
    if (rank == 0) {
        DataOptions opt = data_options_from_config(&c, NULL);
        opt.chat_jinja = chat_jinja;
        if (dataset_open(&d, c.data.train, DATA_PROMPT, &opt, err) != 0)
            ppo_fail(rank, stage, "%s", err);
        dataset_free(&d);
    }
    free(chat_jinja);
}

/* judge.kind = mix: which judge scored this update's rollouts, appended to the JSON
 * fields in f: "judge_n": {"arith": 12, ...} and "judge_score": {"arith": 0.75, ...}
 * (mean score per route entry; null where it scored none). */
static void ppo_log_judges(const Ppo *p, char *f, size_t cap) {
    for (int pass = 0; pass < 2; pass++) {
        size_t n = strlen(f);
        n += (size_t)snprintf(f + n, cap - n, ", \"%s\": {", pass ? "judge_score" : "judge_n");
        for (int e = 0; e < p->route.n && n < cap; e++) {
            const char *sep = e ? ", " : "";
            if (pass == 0)
                n += (size_t)snprintf(f + n, cap - n, "%s\"%s\": %.0f", sep, p->route.e[e].cat,
                                      p->judge_n[e]);
            else if (p->judge_n[e] > 0)
                n += (size_t)snprintf(f + n, cap - n, "%s\"%s\": %.6f", sep, p->route.e[e].cat,
                                      p->judge_sum[e] / p->judge_n[e]);
            else
                n += (size_t)snprintf(f + n, cap - n, "%s\"%s\": null", sep, p->route.e[e].cat);
        }
        if (n < cap) snprintf(f + n, cap - n, "}");
    }
}

static int learner_online(int argc, char **argv, MpiRoles *roles, Algo algo) {
    const char *stage = algo_stage(algo);
    if (argc < 1) {
        fprintf(stderr, "usage: learner %s CONFIG.ini [section.key=value ...]\n", stage);
        return 2;
    }
    Ppo p;
    memset(&p, 0, sizeof p);
    p.roles = roles;
    p.algo = algo;
    p.wcomm = online_weights_comm_create(roles);
    Trainer tr;
    p.t = &tr;
    ppo_precheck(roles, stage, algo, argv[0], argc - 1, argv + 1);
    trainer_init(&tr, stage, "policy", GPT_HEAD_LM, argv[0], argc - 1, argv + 1,
                 roles->role_comm);
    tr.save_extra = ppo_save_extra;
    tr.pre_save = ppo_pre_save;
    tr.extra_ctx = &p;
    const RlhfConfig *c = &tr.cfg;
    char err[ERRBUF_LEN];
    if (!c->model.init[0])
        ppo_fail(tr.rank, tr.stage, "model.init is empty: PPO starts from the SFT policy (a checkpoint "
                             "or run directory of `learner sft`)");
    if (strcmp(c->judge.kind, "mix") == 0) {
        if (route_parse(&p.route, c->judge.route, err) != 0) ppo_fail(tr.rank, tr.stage, "%s", err);
        p.use_route = 1;
    }
    p.G = algo == ALGO_PPO ? 1 : c->grpo.group_size;
    p.B = c->ppo.rollout_batch;
    if (p.B % p.G != 0)
        ppo_fail(tr.rank, tr.stage, "ppo.rollout_batch (%d) must be a multiple of grpo.group_size (%d)",
                     p.B, p.G);
    if (algo == ALGO_GRPO && strcmp(c->grpo.advantage, "rloo") == 0) p.algo = algo = ALGO_RLOO;
    p.maxT = c->data.max_prompt_len + c->gen.max_new_tokens;
    if (p.maxT > tr.model.config.max_seq_len) p.maxT = tr.model.config.max_seq_len;
    p.ab = c->ppo.actor_batch < p.B ? c->ppo.actor_batch : p.B;
    if (p.ab >= p.G) p.ab -= p.ab % p.G; /* whole groups per item: scored together */
    p.n_items = (p.B + p.ab - 1) / p.ab;
    p.lim = (MsgLimits){.vocab_size = tr.model.config.vocab_size, .max_seq_len = p.maxT,
                        .max_batch = c->ppo.actor_batch};
    tr.model.temperature = (float)c->gen.temperature;
    if (online_ref_check(c, err) != 0) ppo_fail(tr.rank, tr.stage, "%s", err);
    p.ref_on_learner = online_ref_on_learner(c);
    if (tr.rank == 0)
        printf("learner %s: reference log-probs computed on the %s\n", tr.stage,
               p.ref_on_learner ? "learner (policy with adapters off)" : "reward server");
    if (tr.rank == 0 && getenv("RLHF_REF_DUMP")) {
        p.ref_dump = fopen(getenv("RLHF_REF_DUMP"), "w");
        if (!p.ref_dump) ppo_fail(tr.rank, tr.stage, "cannot open RLHF_REF_DUMP %s", getenv("RLHF_REF_DUMP"));
    }
    if (!c->data.train[0]) ppo_fail(tr.rank, tr.stage, "data.train is empty: give the prompts JSONL");
    DataOptions dopt = data_options_from_config(c, tr.rank == 0 ? stderr : NULL);
    dopt.chat_jinja = tr.tok_src.chat_template; /* chat.template = auto */
    if (dataset_open(&p.prompts, c->data.train, DATA_PROMPT, &dopt, err) != 0)
        ppo_fail(tr.rank, tr.stage, "%s", err);
    p.stop_id = ppo_stop_id(&p.prompts, &tr.tok);
    if (tr.rank == 0 && p.stop_id != tr.tok.eos_id) {
        size_t sl = 0;
        const unsigned char *s = bpe_token_bytes(&tr.tok, p.stop_id, &sl);
        printf("%s: chat-formatted prompts: generation stops at token %d (%.*s)\n", tr.stage,
               p.stop_id, (int)sl, (const char *)s);
    }
    data_sampler_init(&p.sampler, p.prompts.n, (uint64_t)c->run.seed, c->data.shuffle);
    tr.sampler = &p.sampler;
    if (algo == ALGO_PPO) ppo_build_value(&p);
    if (c->ppo.adaptive_kl && algo == ALGO_PPO)
        rl_klctl_init_adaptive(&p.kl, c->ppo.kl_coef, c->ppo.kl_target, c->ppo.kl_horizon);
    else
        rl_klctl_init_fixed(&p.kl, algo == ALGO_PPO ? c->ppo.kl_coef : c->grpo.kl_coef);
    rl_running_init(&p.sstats);

    int mbs = c->ppo.minibatch;
    int n_mb = (p.B + mbs - 1) / mbs;
    tr.total_steps = c->ppo.updates;
    long opt_steps = (long)c->ppo.updates * c->ppo.epochs * n_mb;
    tr.sched = (AdamWSchedule){.max_lr = (float)c->optim.lr, .min_lr = (float)c->optim.min_lr,
                               .warmup = c->optim.warmup_steps,
                               .total = opt_steps > c->optim.warmup_steps ? opt_steps : 0};
    if (adamw_schedule_validate(&tr.sched, err) != 0) ppo_fail(tr.rank, tr.stage, "optim: %s", err);
    float vlr = c->ppo.vf_lr > 0 ? (float)c->ppo.vf_lr : (float)c->optim.lr;
    p.vsched = tr.sched;
    p.vsched.max_lr = vlr;
    if (p.vsched.min_lr > vlr) p.vsched.min_lr = vlr;
    trainer_resume(&tr);
    ppo_resume_extra(&p);

    /* buffers */
    int share = data_shard_size(mbs, 0, tr.nranks);
    p.micro = c->optim.micro_batch_size > 0 && c->optim.micro_batch_size < share
                  ? c->optim.micro_batch_size : share;
    if (p.micro < 1) p.micro = 1;
    size_t BT = (size_t)p.B * p.maxT, MT = (size_t)p.micro * p.maxT;
    p.tok = xmalloc(BT * sizeof(int));
    p.plen = xmalloc((size_t)p.B * sizeof(int));
    p.len = xmalloc((size_t)p.B * sizeof(int));
    p.has_eos = xmalloc((size_t)p.B * sizeof(int));
    p.onpol = xcalloc((size_t)p.B, sizeof(int));
    p.recompute_lp = strcmp(c->gen.weights, "bf16") == 0;
    p.rows = xmalloc((size_t)p.B * sizeof(int));
    p.perm = xmalloc((size_t)p.B * sizeof(int));
    float **fb[] = {&p.mask, &p.lp_old, &p.lp_ref, &p.values, &p.rewards, &p.adv, &p.ret, &p.lp_chk};
    for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++) *fb[i] = xalloc_floats(BT);
    p.scores = xalloc_floats((size_t)p.B);
    p.scores_raw = xalloc_floats((size_t)p.B);
    p.seq_adv = xalloc_floats((size_t)p.B);
    p.mtok = xmalloc(MT * sizeof(int));
    p.mtgt = xmalloc(MT * sizeof(int));
    float **mf[] = {&p.mmask, &p.mlp_old, &p.mlp_ref, &p.madv, &p.mvold, &p.mret, &p.dlogp, &p.dent, &p.dval};
    for (size_t i = 0; i < sizeof mf / sizeof mf[0]; i++) *mf[i] = xalloc_floats(MT);
    p.mseq_adv = xalloc_floats((size_t)p.micro);
    gpt_reserve(&tr.model, p.micro, p.maxT);
    if (algo == ALGO_PPO) gpt_reserve(&p.value, p.micro, p.maxT);
    p.S = c->ppo.max_staleness;
    p.n_slots = p.S + 1;
    p.slots = xcalloc((size_t)p.n_slots, sizeof(PpoSlot));
    for (int i = 0; i < p.n_slots; i++) {
        PpoSlot *sl = &p.slots[i];
        sl->update = -1;
        sl->req = xcalloc((size_t)p.n_items, sizeof(MsgBuf));
        sl->roll = xcalloc((size_t)p.n_items, sizeof(MsgBuf));
        sl->sreq = xmalloc((size_t)p.n_items * sizeof(MPI_Request));
        for (int k = 0; k < p.n_items; k++) sl->sreq[k] = MPI_REQUEST_NULL;
        sl->actor = xcalloc((size_t)p.n_items, sizeof(int));
        sl->got = xcalloc((size_t)p.n_items, sizeof(int));
    }
    p.depth = p.S > 0 ? 2 : 1;
    p.outstanding = xcalloc((size_t)roles->count[ROLE_ACTOR], sizeof(int));
    p.wreq = xmalloc((size_t)roles->count[ROLE_ACTOR] * sizeof(MPI_Request));
    for (int a = 0; a < roles->count[ROLE_ACTOR]; a++) p.wreq[a] = MPI_REQUEST_NULL;
    p.version = p.next_w = tr.step;
    msg_buf_init(&p.scratch);
    msg_buf_init(&p.hdr);
    msg_init(&p.msg);
    if (tr.rank == 0 && c->ppo.rollout_log[0]) {
        p.rollout_log = fopen(c->ppo.rollout_log, "ab");
        if (!p.rollout_log) ppo_fail(tr.rank, tr.stage, "cannot open ppo.rollout_log %s", c->ppo.rollout_log);
    }
    if (tr.rank == 0)
        printf("learner %s: %d actor(s), %d reward server(s), %d learner rank(s); %d responses "
               "per update (%d prompts x %d) in %d work items; %d updates\n",
               stage, roles->count[ROLE_ACTOR], roles->count[ROLE_REWARD], tr.nranks, p.B,
               p.B / p.G, p.G, p.n_items, c->ppo.updates);

    double t_sync = 0;
    int64_t first_update = tr.step; /* of this process (a resumed run starts later) */
    ppo_publish(&p, tr.step, &t_sync);
    for (int64_t u = tr.step; u < c->ppo.updates; u++) {
        double t_u0 = time_now(), t_wait = 0;
        t_sync = 0;
        if (tr.rank == 0) ppo_collect(&p, u, &t_wait);
        double t_c = time_now();
        ppo_share_rollouts(&p, u);
        ppo_assemble(&p, u);
        ppo_slot(&p, u)->update = -1; /* free for update u + S + 1 */
        ppo_service(&p);
        double t_collect = t_c - t_u0;
        size_t BT2 = (size_t)p.B * p.T;
        int T = p.T;

        double lp_md = 0, entropy = 0;
        ppo_prepass(&p, &lp_md, &entropy); /* before the rewards: it may fill lp_ref */
        if (tr.rank == 0) ppo_ref_dump(&p, u);
        /* scores: normalised by the running statistics (ppo.score_norm) */
        memcpy(p.scores, p.scores_raw, (size_t)p.B * sizeof(float));
        if (c->ppo.score_norm) {
            rl_running_push(&p.sstats, p.scores_raw, (size_t)p.B);
            rl_running_normalize(p.scores, (size_t)p.B, &p.sstats);
        }
        RLRewardStats rs;
        double ev = 0;
        if (algo == ALGO_PPO) {
            rl_ppo_rewards(p.rewards, &rs, p.lp_old, p.lp_ref, p.scores, p.has_eos, p.mask,
                           (float)p.kl.beta, (float)c->ppo.no_eos_penalty, p.B, T);
            rl_gae(p.adv, p.ret, p.rewards, p.values, p.mask, (float)c->ppo.gamma,
                   (float)c->ppo.lam, p.B, T);
            ev = loss_explained_variance(p.values, p.ret, p.mask, (int)BT2);
            if (c->ppo.whiten) rl_whiten(p.adv, p.mask, BT2, 0);
        } else {
            /* KL statistics (and the reward-side penalty of kl_in = reward) */
            rl_ppo_rewards(p.rewards, &rs, p.lp_old, p.lp_ref, p.scores, p.has_eos, p.mask,
                           (float)p.kl.beta, (float)c->ppo.no_eos_penalty, p.B, T);
            float *s = p.rewards; /* reuse: per-sequence shaped score (B) */
            for (int b = 0; b < p.B; b++) {
                double kl = 0;
                for (int x = 0; x < T; x++) {
                    size_t i = (size_t)b * T + x;
                    if (p.mask[i] != 0) kl += (double)p.lp_old[i] - (double)p.lp_ref[i];
                }
                double sc = p.scores[b] - (p.has_eos[b] ? 0.0 : c->ppo.no_eos_penalty);
                if (strcmp(c->grpo.kl_in, "reward") == 0) sc -= c->grpo.kl_coef * kl;
                s[b] = (float)sc;
            }
            if (algo == ALGO_RLOO)
                rl_rloo_advantages(p.seq_adv, s, p.B / p.G, p.G);
            else
                rl_group_advantages(p.seq_adv, s, p.B / p.G, p.G, (float)c->grpo.eps,
                                    c->grpo.scale_by_std);
        }
        double t_t0 = time_now();
        UpdStats us;
        ppo_train(&p, u, &us);
        if (algo == ALGO_PPO) rl_klctl_update(&p.kl, rs.kl_seq, p.B);
        double t_train = time_now() - t_t0 + (t_t0 - t_c);
        tr.step = u + 1;
        trainer_lora_key(&tr); /* LoRA dropout: this update's masks */
        ppo_critic_key(&p);
        if (tr.rank == 0) fault_kill_point("ppo_update");

        /* metrics */
        double resp_len = 0, raw = 0;
        for (int b = 0; b < p.B; b++) {
            resp_len += p.len[b] - p.plen[b];
            raw += p.scores_raw[b];
        }
        resp_len /= p.B;
        raw /= p.B;
        tr.tokens_since_log += (long)(resp_len * p.B);
        int saved = 0;
        if (trainer_maybe_save(&tr)) saved = 1;
        if (!saved && tr.step < c->ppo.updates) {
            ppo_publish(&p, tr.step, &t_sync);
            ppo_service(&p);
        }
        double wall = time_now() - t_u0;
        if (tr.rank == 0) {
            double na = roles->count[ROLE_ACTOR], nsv = roles->count[ROLE_REWARD];
            char f[2048];
            snprintf(f, sizeof f,
                     "\"score\": %.6f, \"score_used\": %.6f, \"kl\": %.6f, \"kl_token\": %.6f, "
                     "\"beta\": %.6g, \"entropy\": %.6f, \"clipfrac\": %.6f, \"approx_kl\": %.6g, "
                     "\"ratio\": %.6f, \"policy_loss\": %.6g, \"value_loss\": %.6g, "
                     "\"vf_clipfrac\": %.6f, \"explained_var\": %.6f, \"grpo_kl\": %.6g, "
                     "\"resp_len\": %.3f, \"no_eos_frac\": %.4f, \"version_lag\": %.3f, "
                     "\"lp_check_maxdiff\": %.3g, \"grad_norm\": %.6g, \"vgrad_norm\": %.6g, "
                     "\"lr\": %.6g, \"t_update\": %.4f, \"t_collect\": %.4f, \"t_train\": %.4f, "
                     "\"t_sync\": %.4f, \"t_learner_idle\": %.4f, \"t_actor_generate\": %.4f, "
                     "\"t_actor_score_wait\": %.4f, \"t_actor_idle\": %.4f, \"t_server_busy\": %.4f, "
                     "\"t_server_idle\": %.4f, \"tokens_per_s\": %.1f, \"t_ref\": %.4f",
                     raw, rs.score, rs.kl_seq, rs.kl_token, p.kl.beta, entropy, us.clipfrac,
                     us.approx_kl, us.ratio, us.pol_loss, us.v_loss, us.v_clipfrac, ev,
                     us.grpo_kl, resp_len, rs.no_eos_frac,
                     (double)p.version_lag_sum / p.B, lp_md, us.gnorm_p, us.gnorm_v, us.lr,
                     wall, t_collect, t_train, t_sync, t_wait, p.t_gen, p.t_score,
                     na * t_collect - p.t_actor_total > 0 ? na * t_collect - p.t_actor_total : 0,
                     p.t_server,
                     nsv * t_collect - p.t_server > 0 ? nsv * t_collect - p.t_server : 0,
                     wall > 0 ? resp_len * p.B / wall : 0, p.t_ref);
            if (p.gold_n > 0) {
                size_t nf = strlen(f);
                snprintf(f + nf, sizeof f - nf, ", \"gold_score\": %.6f, \"gold_scored\": %.0f",
                         p.gold_sum / p.gold_n, p.gold_n);
            }
            if (p.use_route) ppo_log_judges(&p, f, sizeof f);
            if (p.rm_std_n > 0) {
                size_t nf = strlen(f);
                snprintf(f + nf, sizeof f - nf, ", \"rm_std\": %.6f", p.rm_std_sum / p.rm_std_n);
            }
            trainer_log_json(&tr, f);
            if (tr.step % c->run.log_every == 0 || tr.step == c->ppo.updates || u == 0) {
                char text[512];
                snprintf(text, sizeof text,
                         "score %.4f | kl %.4f | beta %.4f | clip %.3f | %s %.4f | len %.1f | "
                         "lpdiff %.1e | gen %.1fs train %.1fs",
                         raw, rs.kl_seq, p.kl.beta, us.clipfrac,
                         algo == ALGO_PPO ? "vloss" : "kl3", algo == ALGO_PPO ? us.v_loss : us.grpo_kl,
                         resp_len, lp_md, t_collect, t_train);
                if (p.gold_n > 0) {
                    size_t nt = strlen(text);
                    snprintf(text + nt, sizeof text - nt, " | gold %.3f", p.gold_sum / p.gold_n);
                }
                for (int e = 0; p.use_route && e < p.route.n; e++) {
                    size_t nt = strlen(text);
                    snprintf(text + nt, sizeof text - nt, " | %s %.0f:%.3f", p.route.e[e].cat,
                             p.judge_n[e], p.judge_n[e] > 0 ? p.judge_sum[e] / p.judge_n[e] : 0.0);
                }
                trainer_progress(&tr, text);
            }
        }
        if (saved) break;
    }
    if (!tr.stopped) trainer_save(&tr);
    ppo_drain(&p);
    ppo_send_stop(&p, tr.stopped ? "run.stop_at_step reached" : "training finished");
    online_traffic_report(roles, stage, (long)(tr.step - first_update));

    if (p.rollout_log) fclose(p.rollout_log);
    if (p.ref_dump) fclose(p.ref_dump);
    for (int i = 0; i < p.n_slots; i++) {
        PpoSlot *sl = &p.slots[i];
        for (int k = 0; k < p.n_items; k++) {
            msg_buf_free(&sl->req[k]);
            msg_buf_free(&sl->roll[k]);
        }
        free(sl->req);
        free(sl->roll);
        free(sl->sreq);
        free(sl->actor);
        free(sl->got);
    }
    free(p.slots);
    free(p.outstanding);
    free(p.wreq);
    free(p.snap);
    msg_buf_free(&p.scratch);
    msg_buf_free(&p.hdr);
    ckpt_arena_free(&p.img_arena);
    msg_free(&p.msg);
    free(p.tok);
    free(p.plen);
    free(p.len);
    free(p.has_eos), free(p.onpol);
    free(p.rows);
    free(p.perm);
    for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++) free(*fb[i]);
    for (size_t i = 0; i < sizeof mf / sizeof mf[0]; i++) free(*mf[i]);
    free(p.scores);
    free(p.scores_raw);
    free(p.seq_adv);
    free(p.mtok);
    free(p.mtgt);
    free(p.mseq_adv);
    gpt_free(&p.value);
    adamw_free(&p.vopt);
    zero_free(&p.vzero);
    free(p.vm_full);
    free(p.vv_full);
    data_sampler_free(&p.sampler);
    dataset_free(&p.prompts);
    if (p.wcomm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&p.wcomm));
    trainer_free(&tr);
    return 0;
}

int learner_ppo(int argc, char **argv, MpiRoles *roles) {
    return learner_online(argc, argv, roles, ALGO_PPO);
}
int learner_grpo(int argc, char **argv, MpiRoles *roles) {
    return learner_online(argc, argv, roles, ALGO_GRPO);
}
int learner_rloo(int argc, char **argv, MpiRoles *roles) {
    return learner_online(argc, argv, roles, ALGO_RLOO);
}
