/*
 * actor/actor.c — the rollout worker of the online stages (ppo, grpo, rloo):
 *
 *   mpirun -np 1 build/learner ppo cfg.ini : -np 1 build/reward_server cfg.ini \
 *          : -np N build/actor cfg.ini [section.key=value ...]
 *
 * An actor holds the current policy (received from learner rank 0 as an HDF5 weight
 * image, common/online.h) and serves work items: each is a micro-batch of prompts
 * (token ids, global prompt indices, sample indices). It generates the responses with
 * the KV cache ([gen] sampling; every sequence's RNG keyed by (run.seed, prompt index,
 * sample index), so an item's tokens do not depend on which actor runs it), sends them
 * to its reward server (actor i -> server i mod M) for scores and reference log-probs
 * (those only when the item asks: online_ref_on_learner, online.h), and sends the complete rollout to learner rank 0. New weights are taken only between
 * work items. A stop message from the learner ends it (exit 0).
 *
 * It holds no state that a checkpoint needs: sampling is keyed, the weights come from the
 * learner. It does not read data or the tokenizer (prompts come tokenised; the EOS id is
 * an attribute of the weight image). Any bad message or failure aborts the whole job with
 * this rank, its role and the reason (mpi_util.h).
 *
 * RLHF_GEN_BASELINE=1 in the environment (bench/bench_ppo.sh's before/after) decodes
 * without in-flight batching and without the shared prompt prefill: static batches of
 * gen.batch_size, every sequence prefilled on its own. The rollouts are the same bit for
 * bit (generate.h); only the time differs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "online.h"
#include "lora.h"
#include "ckpt.h"
#include "config.h"
#include "fault.h"
#include "generate.h"
#include "gpt.h"
#include "mpi_util.h"
#include "msg.h"
#include "ops.h"
#include "util.h"

#define ACTOR_RING 4

typedef struct {
    RlhfConfig cfg;
    MpiRoles *roles;
    MPI_Comm wcomm;
    GPT model;
    int have_model;
    int64_t version;        /* policy version of the weights held */
    int eos_id;
    MsgLimits lim;
    void *img;
    size_t img_cap;
    MsgBuf buf, out;
    Msg msg, rep;
    MsgBatch batch;         /* the item's sequences with responses */
    int *gen_tokens, *gen_lens;
    float *gen_lp;
    int cap_rows;
    int server;             /* world rank of this actor's reward server */
    MsgBuf ring[ACTOR_RING];         /* rollouts being sent to the learner */
    MPI_Request ring_req[ACTOR_RING];
    int ring_next;
    uint64_t next_req;
    double t_weights, t_idle;
    int gen_baseline;       /* RLHF_GEN_BASELINE set: no in-flight batching, no shared prefill */
} Actor;

/* GPT.decode_bf16 for gen.weights and gen.bf16_dot on this actor's CPU */
static int actor_decode_precision(const Actor *a) {
    if (strcmp(a->cfg.gen.weights, "bf16") != 0) return 0;
    int dot = ops_bf16_dot_supported();
    if (strcmp(a->cfg.gen.bf16_dot, "on") == 0 && !dot)
        mpi_fatal("gen.bf16_dot = on: this actor's CPU (or its copy of the library) has no "
                  "AVX512-BF16; set gen.bf16_dot = auto (it then widens the bf16 weights) or "
                  "off");
    return strcmp(a->cfg.gen.bf16_dot, "off") != 0 && dot ? 2 : 1;
}

static void actor_load_weights(Actor *a, const Msg *hdr) {
    char err[ERRBUF_LEN];
    double t0 = time_now();
    online_weights_recv(a->wcomm, hdr, &a->img, &a->img_cap);
    CkptReader *r = ckpt_reader_open_image(a->img, (size_t)hdr->nbytes, err);
    if (!r) mpi_fatal("weights version %lld: %s", (long long)hdr->policy_version, err);
    int64_t eos = -1;
    if (ckpt_read_attr_i64(r, ONLINE_ATTR_EOS, &eos, err) != 0)
        mpi_fatal("weights version %lld: %s", (long long)hdr->policy_version, err);
    int rc;
    if (!a->have_model) {
        rc = ckpt_load_model(r, "policy", &a->model, err);
        a->have_model = rc == 0;
    } else {
        rc = ckpt_read_model(r, "policy", &a->model, err);
    }
    /* a LoRA policy: the frozen base plus adapters, applied on the fly in generation */
    if (rc == 0 && lora_ckpt_has(r)) rc = lora_ckpt_read(r, &a->model, err);
    ckpt_reader_free(r);
    if (rc != 0) mpi_fatal("weights version %lld: %s", (long long)hdr->policy_version, err);
    if (a->model.config.head != GPT_HEAD_LM)
        mpi_fatal("weights version %lld: the policy has no LM head",
                  (long long)hdr->policy_version);
    if (eos < 0 || eos >= a->model.config.vocab_size)
        mpi_fatal("weights version %lld: eos_id %lld outside the vocabulary",
                  (long long)hdr->policy_version, (long long)eos);
    a->eos_id = (int)eos;
    a->version = hdr->policy_version;
    a->model.weights_version = a->version; /* the decode copy is packed once per version */
    a->model.temperature = (float)a->cfg.gen.temperature;
    a->model.decode_packed = a->cfg.gen.pack_weights;
    a->model.decode_bf16 = actor_decode_precision(a);
    a->lim.vocab_size = a->model.config.vocab_size;
    a->lim.max_seq_len = a->model.config.max_seq_len;
    a->t_weights += time_now() - t0;
}

/* Later weights as the raw parameter buffer (ppo.weight_sync = params, online.h): straight
 * into the model, which nothing reads between work items. */
static void actor_recv_params(Actor *a, const Msg *hdr) {
    double t0 = time_now();
    if (!a->have_model)
        mpi_fatal("weights version %lld came as %s before any weight image",
                  (long long)hdr->policy_version, hdr->format);
    /* weights_version labels the base (m->params) the decode copy was packed from: the
     * adapters alone leave the base and so the packed copy as they are (gpt.h) */
    int base_changed = 1;
    if (strcmp(hdr->format, MSG_WEIGHTS_FORMAT_PARAMS_P2P) == 0)
        online_weights_recv_params_p2p(online_learner_root(a->roles), hdr, &a->model);
    else if (strcmp(hdr->format, MSG_WEIGHTS_FORMAT_LORA) == 0)
        online_weights_recv_lora(a->wcomm, hdr, &a->model), base_changed = 0;
    else
        online_weights_recv_params(a->wcomm, hdr, &a->model);
    a->version = hdr->policy_version;
    if (base_changed) a->model.weights_version = a->version;
    a->t_weights += time_now() - t0;
}

/* Size the KV cache for the longest item the config allows (data.max_prompt_len +
 * gen.max_new_tokens) before generating: sized to each item's longest prompt, it grows
 * when a later item's is longer, and growing re-allocates and re-packs the decode copy,
 * which the adapters-only weight sync otherwise packs once per base image. */
static void actor_reserve_cache(Actor *a, int slots) {
    int t = a->cfg.data.max_prompt_len + a->cfg.gen.max_new_tokens;
    if (t > a->model.config.max_seq_len) t = a->model.config.max_seq_len;
    gpt_cache_reserve(&a->model, slots, t);
}

/* One work item: generate, score, send the rollout. */
static void actor_run_item(Actor *a, const MPI_Status *st) {
    char err[ERRBUF_LEN], who[64];
    double t0 = time_now();
    const MsgBatch *w = &a->msg.batch;
    if (a->msg.type != MSG_TYPE_SCORE_REQ)
        mpi_fatal("work item from %s is a %s message, expected score_req",
                  mpi_describe_rank(st->MPI_SOURCE, who, sizeof who), msg_type_name(a->msg.type));
    if (!a->have_model) mpi_fatal("work item before any weights");
    for (int i = 0; i < w->n; i++)
        if (w->resp_lens[i] != 0)
            mpi_fatal("work item %llu: sequence %d has a response (%d tokens)",
                      (unsigned long long)a->msg.req_id, i, w->resp_lens[i]);
    /* the item names the oldest policy version allowed to generate it (the learner sent
     * any newer weights before it: messages from the learner are taken in order) */
    if (a->msg.policy_version > a->version)
        mpi_fatal("work item %llu needs policy version >= %lld, this actor holds %lld",
                  (unsigned long long)a->msg.req_id, (long long)a->msg.policy_version,
                  (long long)a->version);
    int n = w->n, maxnew = a->cfg.gen.max_new_tokens;
    if (n > a->cap_rows) {
        a->cap_rows = n;
        a->gen_tokens = xrealloc(a->gen_tokens, (size_t)n * (size_t)maxnew * sizeof(int));
        a->gen_lp = xrealloc(a->gen_lp, (size_t)n * (size_t)maxnew * sizeof(float));
        a->gen_lens = xrealloc(a->gen_lens, (size_t)n * sizeof(int));
    }
    const int **prompts = xmalloc((size_t)n * sizeof(int *));
    int *plens = xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) {
        prompts[i] = w->tokens + w->tok_off[i];
        plens[i] = w->prompt_lens[i];
    }
    GenParams gp = {.max_new_tokens = maxnew,
                    .eos_id = a->eos_id,
                    .temperature = (float)a->cfg.gen.temperature,
                    .top_k = a->cfg.gen.top_k,
                    .top_p = (float)a->cfg.gen.top_p,
                    .seed = (uint64_t)a->cfg.run.seed};
    /* in-flight batches of gen.batch_size slots; a group's identical prompts prefill once
     * (neither with RLHF_GEN_BASELINE: the comparison point of bench/bench_ppo.sh) */
    const int fast = !a->gen_baseline;
    GenSchedule gs = {.batch = a->cfg.gen.batch_size, .inflight = fast, .share_prefill = fast};
    actor_reserve_cache(a, gs.batch > 0 && gs.batch < n ? gs.batch : n);
    if (generate_scheduled(&a->model, &gp, &gs, n, (const int *const *)prompts, plens,
                           w->prompt_ids, w->sample_ids, a->gen_tokens, a->gen_lp, a->gen_lens,
                           err) != 0)
        mpi_fatal("work item %llu: generate: %s", (unsigned long long)a->msg.req_id, err);
    double t_gen = time_now() - t0;

    /* the sequences with their responses, behaviour log-probs and EOS flags */
    MsgBatch *b = &a->batch;
    msg_batch_clear(b);
    for (int i = 0; i < n; i++) {
        const int *resp = a->gen_tokens + (size_t)i * maxnew;
        int k = msg_batch_append_seq(b, w->prompt_ids[i], w->sample_ids[i], prompts[i],
                                     plens[i], resp, a->gen_lens[i]);
        memcpy(b->logprobs + b->resp_off[k], a->gen_lp + (size_t)i * maxnew,
               (size_t)a->gen_lens[i] * sizeof(float));
        b->finished[k] = a->gen_lens[i] > 0 && resp[a->gen_lens[i] - 1] == a->eos_id;
    }
    free(prompts);
    free(plens);

    /* scores and (unless the learner computes them: the item's want_ref = 0, online.h)
     * reference log-probs from the reward server */
    double t1 = time_now();
    uint64_t req = a->msg.req_id;
    int want_ref = a->msg.want_ref;
    msg_encode_score_req(&a->out, req, a->version, want_ref, b);
    mpi_send_bytes(MPI_COMM_WORLD, a->server, TAG_SCORE_REQ, a->out.data, a->out.len);
    MPI_Status rst;
    int tags[1] = {TAG_SCORE_REP};
    mpi_wait_any_message(MPI_COMM_WORLD, a->server, tags, 1, &rst);
    mpi_recv_msg(MPI_COMM_WORLD, &rst, &a->buf, &a->lim, &a->rep);
    if (msg_check_score_rep(&a->rep, req, want_ref, b, err) != 0)
        mpi_fatal("reply from %s: %s", mpi_describe_rank(rst.MPI_SOURCE, who, sizeof who), err);
    const MsgBatch *rb = &a->rep.batch;
    memcpy(b->scores, rb->scores, (size_t)n * sizeof(float));
    /* the rollout carries ref_logprobs iff the reward server computed them (otherwise
     * the learner does, and 4 bytes per response token stay off the wire) */
    if (want_ref) memcpy(b->ref_logprobs, rb->ref_logprobs, b->n_resp * sizeof(float));
    b->has_ref = want_ref && !fault_drop_point("rollout_ref");
    for (int e = 0; e < rb->n_extra; e++)
        memcpy(msg_batch_extra(b, rb->extra_names[e]), rb->extra[e], (size_t)n * sizeof(float));
    double t_score = time_now() - t1;

    MsgRolloutInfo info = {.actor_rank = a->roles->role_rank,
                           .batch_id = req,
                           .micro_batch = 0,
                           .t_generate = t_gen,
                           .t_score = t_score,
                           .t_total = time_now() - t0};
    /* non-blocking: the learner may be training (asynchronous mode) or broadcasting
     * weights and take the rollout later; this actor goes on to its next message. At most
     * ppo depth (2) items are out per actor, so a ring of ACTOR_RING sends never wraps onto
     * a pending one in practice (it would wait for it). */
    int slot = a->ring_next;
    a->ring_next = (a->ring_next + 1) % ACTOR_RING;
    mpi_wait_request(&a->ring_req[slot], NULL, "sending a rollout to the learner");
    msg_encode_rollout(&a->ring[slot], a->version, &info, b);
    MPI_CHECK(MPI_Isend(a->ring[slot].data, (int)a->ring[slot].len, MPI_BYTE,
                        online_learner_root(a->roles), TAG_ROLLOUT, MPI_COMM_WORLD,
                        &a->ring_req[slot]));
}

static void actor_usage(FILE *f) {
    fprintf(f,
            "usage: build/actor CONFIG.ini [section.key=value ...]\n"
            "The rollout worker of an online job (ppo, grpo, rloo): it generates responses\n"
            "with the learner's current policy. It runs only inside ONE mpirun launch with\n"
            "the learner and the reward server(s), with the same config and overrides:\n"
            "  mpirun -np 1 build/learner ppo CONFIG.ini : -np 1 build/reward_server CONFIG.ini \\\n"
            "         : -np 2 build/actor CONFIG.ini\n"
            "  tools/rlhf-run CONFIG.ini -a 2        (builds that line)\n"
            "Overrides: section.key=value (e.g. run.threads=2 gen.temperature=0.8); every key:\n"
            "build/learner help-config.\n"
            "Exit status: 0 when the learner ends the run; 1 on an error (the whole job is\n"
            "aborted; the learner reports config errors); 2 on a usage error.\n");
}

int main(int argc, char **argv) {
    int arc = online_args(argc, argv, "build/actor", actor_usage);
    if (arc >= 0) return arc;
    MpiRoles roles;
    MpiRoleNeeds need = mpi_needs_online("ppo");
    mpi_roles_init(&argc, &argv, ROLE_ACTOR, &need, &roles);
    Actor a;
    memset(&a, 0, sizeof a);
    a.roles = &roles;
    a.wcomm = online_weights_comm_create(&roles);
    char err[ERRBUF_LEN];
    if (online_load_config(&a.cfg, argc, argv, err) != 0) {
        /* the learner reports config errors; an actor only leaves */
        if (roles.world_size == 1) fprintf(stderr, "rlhf-c: actor: %s\n", err);
        mpi_roles_free(&roles);
        return 1;
    }
    mpi_config_peer_timeout(a.cfg.run.peer_timeout);
    const char *gb = getenv("RLHF_GEN_BASELINE");
    a.gen_baseline = gb && gb[0] && strcmp(gb, "0") != 0;
    ops_blas_setup(mpi_threads(a.cfg.run.threads, a.cfg.ppo.max_staleness == 0));
    ops_gemm_choose(a.cfg.run.gemm);
    a.server = roles.ranks[ROLE_REWARD][roles.role_rank % roles.count[ROLE_REWARD]];
    /* until the first weights arrive the limits only bound sizes */
    a.lim = (MsgLimits){.vocab_size = BPE_MAX_VOCAB, .max_seq_len = 65536,
                        .max_batch = a.cfg.ppo.actor_batch};
    msg_buf_init(&a.buf);
    msg_buf_init(&a.out);
    msg_init(&a.msg);
    msg_init(&a.rep);
    msg_batch_init(&a.batch);

    int root = online_learner_root(&roles);
    for (int i = 0; i < ACTOR_RING; i++) {
        msg_buf_init(&a.ring[i]);
        a.ring_req[i] = MPI_REQUEST_NULL;
    }
    long items = 0;
    int bench_done = 0;
    for (;;) {
        MPI_Status st;
        double t0 = time_now();
        /* New weights first (the learner waits in the broadcast for every actor), then any
         * message in the order the learner sent it: an item sent after new weights is
         * never taken before them (MPI keeps one sender's messages in order), so it is
         * generated by a version it allows. Items sent before them may go either way. */
        int hdr_tag[1] = {TAG_WEIGHTS_HDR};
        int tag = mpi_poll_any_message(MPI_COMM_WORLD, root, hdr_tag, 1, 0, &st);
        if (tag < 0) tag = mpi_wait_any_message(MPI_COMM_WORLD, root, NULL, 0, &st);
        a.t_idle += time_now() - t0;
        if (tag != TAG_WEIGHTS_HDR && tag != TAG_CTRL && tag != TAG_STOP) {
            char who[64];
            mpi_fatal("unexpected %s message from %s", mpi_tag_name(tag),
                      mpi_describe_rank(st.MPI_SOURCE, who, sizeof who));
        }
        mpi_recv_msg(MPI_COMM_WORLD, &st, &a.buf, &a.lim, &a.msg);
        if (tag == TAG_STOP) break;
        if (tag == TAG_WEIGHTS_HDR) {
            int params = strcmp(a.msg.format, MSG_WEIGHTS_FORMAT_PARAMS) == 0 ||
                         strcmp(a.msg.format, MSG_WEIGHTS_FORMAT_PARAMS_P2P) == 0 ||
                         strcmp(a.msg.format, MSG_WEIGHTS_FORMAT_LORA) == 0;
            if (params)
                actor_recv_params(&a, &a.msg);
            else
                actor_load_weights(&a, &a.msg);
            /* the learner's RLHF_BCAST_BENCH comparison (ppo.c ppo_bcast_bench), at the
             * first weights of the steady-state format */
            if (getenv("RLHF_BCAST_BENCH") && !bench_done &&
                strcmp(a.msg.format, MSG_WEIGHTS_FORMAT_LORA) != 0 &&
                (params || strcmp(a.cfg.ppo.weight_sync, "image") == 0)) {
                bench_done = 1;
                for (int rep = 0; rep < ONLINE_BCAST_REPS; rep++) {
                    MPI_CHECK(MPI_Barrier(a.wcomm));
                    if (params)
                        MPI_CHECK(MPI_Bcast(a.model.params, (int)a.model.num_params, MPI_FLOAT,
                                            0, a.wcomm));
                    else
                        MPI_CHECK(MPI_Bcast(a.img, (int)a.msg.nbytes, MPI_BYTE, 0, a.wcomm));
                    MPI_CHECK(MPI_Barrier(a.wcomm));
                    MPI_Status hs;
                    int ht[1] = {TAG_WEIGHTS_HDR};
                    mpi_wait_any_message(MPI_COMM_WORLD, root, ht, 1, &hs);
                    mpi_recv_msg(MPI_COMM_WORLD, &hs, &a.buf, &a.lim, &a.msg);
                    if (params)
                        online_weights_recv_params(a.wcomm, &a.msg, &a.model);
                    else
                        online_weights_recv(a.wcomm, &a.msg, &a.img, &a.img_cap);
                }
            }
        } else {
            actor_run_item(&a, &st);
            items++;
        }
    }
    if (getenv("RLHF_ACTOR_VERBOSE"))
        fprintf(stderr,
                "actor %d: %ld work items, %.2f s idle, %.2f s loading weights, %lld decode "
                "copy packs (%s)\n",
                roles.role_rank, items, a.t_idle, a.t_weights,
                (long long)gpt_cache_packs(&a.model),
                a.model.decode_bf16 == 2   ? "bf16 weights, AVX512-BF16 dot products"
                : a.model.decode_bf16 == 1 ? "bf16 weights widened to fp32"
                                           : "fp32 weights");
    /* the learner took every rollout before it said stop */
    mpi_wait_all(ACTOR_RING, a.ring_req, "sending the last rollouts to the learner");
    online_traffic_report(&roles, "ppo", 0);
    for (int i = 0; i < ACTOR_RING; i++) msg_buf_free(&a.ring[i]);
    msg_batch_free(&a.batch);
    msg_free(&a.msg);
    msg_free(&a.rep);
    msg_buf_free(&a.buf);
    msg_buf_free(&a.out);
    free(a.img);
    free(a.gen_tokens);
    free(a.gen_lp);
    free(a.gen_lens);
    gpt_free(&a.model);
    if (a.wcomm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&a.wcomm));
    mpi_roles_free(&roles);
    return 0;
}
