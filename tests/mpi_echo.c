/*
 * tests/mpi_echo.c — helper program for tests/t_mpi.sh: the PPO message flow of rlhf-c
 * with stand-in computations, over a real MPMD mpirun:
 *     mpirun -np 1 mpi_echo learner R : -np 3 mpi_echo actor R : -np 2 mpi_echo reward R
 *   1. the learner sends every other rank a weights header (msg "weights") and a payload
 *      of WEIGHT_BYTES bytes; each receiver checks size and CRC-32;
 *   2. each actor, for R rounds, builds a deterministic batch (keyed by its index and the
 *      round), sends a score_req to a reward rank, checks the score_rep (request id,
 *      lengths, scores, reference log-probs, the "gold" extra score), then sends the
 *      learner a rollout with its own behaviour log-probs;
 *   3. the learner recomputes every rollout from (actor, round) and compares every field
 *      bit-exactly, then sends stop to all; everyone exits 0.
 * A mismatch is an mpi_fatal (non-zero exit). With a 3rd argument the first actor
 * misbehaves in round 0, to test that the receiver names it and the job aborts:
 *   bad       a score_req with a token id outside the vocabulary
 *   wrongtag  a stop message sent with TAG_SCORE_REQ
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "mpi_util.h"
#include "msg.h"
#include "rng.h"
#include "util.h"

static const MsgLimits LIM = {.vocab_size = 500, .max_seq_len = 48, .max_batch = 8};
#define WEIGHT_BYTES ((size_t)(4u << 20) + 17u)

#define REQUIRE(cond)                                                                     \
    do {                                                                                  \
        if (!(cond)) mpi_fatal("check failed: %s", #cond);                                \
    } while (0)

// ---------------------------------------------------------------------------------------
// The deterministic stand-ins every role can recompute.

static void make_request(MsgBatch *bt, int actor, int round) {
    Rng r;
    rng_init_keyed(&r, 77, (uint64_t)actor, (uint64_t)round);
    msg_batch_clear(bt);
    int n = 1 + (actor + round) % LIM.max_batch;
    int32_t prompt[64], resp[64];
    for (int i = 0; i < n; i++) {
        int pl = 1 + (int)rng_below(&r, 10);
        int rl = (int)rng_below(&r, (uint64_t)(LIM.max_seq_len - pl + 1));
        for (int t = 0; t < pl; t++) prompt[t] = (int32_t)rng_below(&r, (uint64_t)LIM.vocab_size);
        for (int t = 0; t < rl; t++) resp[t] = (int32_t)rng_below(&r, (uint64_t)LIM.vocab_size);
        int s = msg_batch_append_seq(bt, (uint64_t)(actor * 1000 + round * 10 + i),
                                     (uint64_t)(i % 2), prompt, pl, resp, rl);
        bt->categories[s] = i % 3;
    }
    bt->has_categories = round % 2;
}

static const int32_t *response(const MsgBatch *b, int i) {
    return b->tokens + b->tok_off[i] + b->prompt_lens[i];
}

/* the "reward model": a function of the response tokens */
static float judge_score(const MsgBatch *b, int i) {
    long acc = 0;
    for (int t = 0; t < b->resp_lens[i]; t++) acc += (response(b, i)[t] * 31L + t) % 1000;
    return (float)(acc % 1000) / 100.0f - 5.0f;
}
static float ref_logprob(int32_t tok, int pos) { return -(float)((tok * 7 + pos) % 13) / 4.0f - 0.125f; }
static float behaviour_logprob(int32_t tok, int pos) { return -(float)((tok * 3 + pos) % 11) / 8.0f - 0.0625f; }
static uint8_t finished_flag(const MsgBatch *b, int i) {
    return b->resp_lens[i] > 0 && response(b, i)[b->resp_lens[i] - 1] % 2 == 0;
}

/* What the reward server writes into a request batch before sending it back. */
static void score_batch(MsgBatch *b, int want_ref) {
    float *gold = msg_batch_extra(b, "gold");
    for (int i = 0; i < b->n; i++) {
        b->scores[i] = judge_score(b, i);
        gold[i] = 2.0f * b->scores[i] + 1.0f;
        for (int t = 0; t < b->resp_lens[i]; t++)
            b->ref_logprobs[b->resp_off[i] + (size_t)t] = ref_logprob(response(b, i)[t], t);
    }
    b->has_ref = want_ref;
}

// ---------------------------------------------------------------------------------------

static void receive_weights(const MpiRoles *r, MsgBuf *buf, Msg *m) {
    MPI_Status st;
    int learner = r->ranks[ROLE_LEARNER][0], tag = TAG_WEIGHTS_HDR;
    mpi_wait_any_message(MPI_COMM_WORLD, learner, &tag, 1, &st);
    mpi_recv_msg(MPI_COMM_WORLD, &st, buf, &LIM, m);
    uint64_t nbytes = m->nbytes;
    uint32_t crc = m->crc32;
    tag = TAG_WEIGHTS_DATA;
    mpi_wait_any_message(MPI_COMM_WORLD, learner, &tag, 1, &st);
    size_t got = mpi_recv_bytes(MPI_COMM_WORLD, &st, buf, (size_t)nbytes);
    REQUIRE(got == nbytes && nbytes == WEIGHT_BYTES);
    REQUIRE(ckpt_crc32(0, buf->data, got) == crc);
}

static void run_actor(const MpiRoles *r, int rounds, const char *misbehave) {
    MsgBuf buf;
    Msg m;
    MsgBatch req;
    msg_buf_init(&buf);
    msg_init(&m);
    msg_batch_init(&req);
    receive_weights(r, &buf, &m);
    int a = r->role_rank, learner = r->ranks[ROLE_LEARNER][0];
    char err[ERRBUF_LEN];
    for (int round = 0; round < rounds; round++) {
        double t0 = time_now();
        make_request(&req, a, round);
        int server = r->ranks[ROLE_REWARD][(a + round) % r->count[ROLE_REWARD]];
        uint64_t req_id = ((uint64_t)a << 32) | (uint64_t)round;
        if (misbehave && a == 0 && round == 0) {
            if (strcmp(misbehave, "bad") == 0) {
                req.tokens[req.tok_off[0]] = LIM.vocab_size; /* outside the vocabulary */
                msg_encode_score_req(&buf, req_id, round, 1, &req);
            } else {
                msg_encode_stop(&buf, "a stop message on the wrong tag");
            }
            mpi_send_bytes(MPI_COMM_WORLD, server, TAG_SCORE_REQ, buf.data, buf.len);
            /* the reward rank aborts the job; wait for a reply that never comes */
        } else {
            msg_encode_score_req(&buf, req_id, round, 1, &req);
            mpi_send_bytes(MPI_COMM_WORLD, server, TAG_SCORE_REQ, buf.data, buf.len);
        }
        double t1 = time_now();
        MPI_Status st;
        int tag = TAG_SCORE_REP;
        mpi_wait_any_message(MPI_COMM_WORLD, server, &tag, 1, &st);
        mpi_recv_msg(MPI_COMM_WORLD, &st, &buf, &LIM, &m);
        if (msg_check_score_rep(&m, req_id, 1, &req, err)) mpi_fatal("%s", err);
        const float *gold = msg_batch_find_extra(&m.batch, "gold");
        REQUIRE(gold != NULL);
        /* the rollout: the request's sequences + behaviour log-probs + the reply's values */
        float *gold_out = msg_batch_extra(&req, "gold");
        for (int i = 0; i < req.n; i++) {
            REQUIRE(m.batch.scores[i] == judge_score(&req, i));
            req.scores[i] = m.batch.scores[i];
            gold_out[i] = gold[i];
            req.finished[i] = finished_flag(&req, i);
            for (int t = 0; t < req.resp_lens[i]; t++) {
                size_t at = req.resp_off[i] + (size_t)t;
                req.logprobs[at] = behaviour_logprob(response(&req, i)[t], t);
                req.ref_logprobs[at] = m.batch.ref_logprobs[at];
            }
        }
        req.has_ref = 1;
        double t2 = time_now();
        MsgRolloutInfo info = {.actor_rank = a, .batch_id = (uint64_t)round, .micro_batch = 0,
                               .t_generate = t1 - t0, .t_score = t2 - t1, .t_total = t2 - t0};
        msg_encode_rollout(&buf, round, &info, &req);
        mpi_send_bytes(MPI_COMM_WORLD, learner, TAG_ROLLOUT, buf.data, buf.len);
    }
    MPI_Status st;
    int tag = TAG_STOP;
    mpi_wait_any_message(MPI_COMM_WORLD, learner, &tag, 1, &st);
    mpi_recv_msg(MPI_COMM_WORLD, &st, &buf, &LIM, &m);
    msg_batch_free(&req);
    msg_free(&m);
    msg_buf_free(&buf);
}

static void run_reward(const MpiRoles *r) {
    MsgBuf buf, out;
    Msg m;
    msg_buf_init(&buf);
    msg_buf_init(&out);
    msg_init(&m);
    receive_weights(r, &buf, &m);
    int served = 0;
    for (;;) {
        MPI_Status st;
        int tags[2] = {TAG_SCORE_REQ, TAG_STOP};
        int tag = mpi_wait_any_message(MPI_COMM_WORLD, MPI_ANY_SOURCE, tags, 2, &st);
        mpi_recv_msg(MPI_COMM_WORLD, &st, &buf, &LIM, &m);
        if (tag == TAG_STOP) break;
        score_batch(&m.batch, m.want_ref);
        msg_encode_score_rep(&out, m.req_id, &m.batch);
        mpi_send_bytes(MPI_COMM_WORLD, st.MPI_SOURCE, TAG_SCORE_REP, out.data, out.len);
        served++;
    }
    printf("reward %d served %d requests\n", r->role_rank, served);
    msg_free(&m);
    msg_buf_free(&out);
    msg_buf_free(&buf);
}

/* Compare a received rollout with its recomputation, field by field. */
static void verify_rollout(const Msg *m, MsgBatch *want, int rounds, int n_actors) {
    const MsgBatch *got = &m->batch;
    int a = m->rollout.actor_rank, round = (int)m->rollout.batch_id;
    REQUIRE(a >= 0 && a < n_actors && m->rollout.batch_id < (uint64_t)rounds);
    REQUIRE(m->policy_version == round && m->rollout.micro_batch == 0);
    REQUIRE(m->rollout.t_total >= m->rollout.t_generate);
    make_request(want, a, round);
    score_batch(want, 1);
    REQUIRE(got->n == want->n && got->n_tokens == want->n_tokens && got->n_resp == want->n_resp);
    size_t n = (size_t)want->n;
    REQUIRE(memcmp(got->tokens, want->tokens, want->n_tokens * 4) == 0);
    REQUIRE(memcmp(got->prompt_lens, want->prompt_lens, n * 4) == 0);
    REQUIRE(memcmp(got->resp_lens, want->resp_lens, n * 4) == 0);
    REQUIRE(memcmp(got->prompt_ids, want->prompt_ids, n * 8) == 0);
    REQUIRE(memcmp(got->sample_ids, want->sample_ids, n * 8) == 0);
    REQUIRE(got->has_categories == want->has_categories);
    if (want->has_categories) REQUIRE(memcmp(got->categories, want->categories, n * 4) == 0);
    REQUIRE(memcmp(got->scores, want->scores, n * 4) == 0);
    REQUIRE(memcmp(got->ref_logprobs, want->ref_logprobs, want->n_resp * 4) == 0);
    const float *gold = msg_batch_find_extra(got, "gold");
    REQUIRE(gold && memcmp(gold, msg_batch_find_extra(want, "gold"), n * 4) == 0);
    for (int i = 0; i < want->n; i++) {
        REQUIRE(got->finished[i] == finished_flag(want, i));
        for (int t = 0; t < want->resp_lens[i]; t++)
            REQUIRE(got->logprobs[want->resp_off[i] + (size_t)t] ==
                    behaviour_logprob(response(want, i)[t], t));
    }
}

static void run_learner(const MpiRoles *r, int rounds) {
    MsgBuf buf;
    Msg m;
    MsgBatch want;
    msg_buf_init(&buf);
    msg_init(&m);
    msg_batch_init(&want);
    /* weights to every actor and reward rank */
    uint8_t *payload = xmalloc(WEIGHT_BYTES);
    for (size_t i = 0; i < WEIGHT_BYTES; i++) payload[i] = (uint8_t)(i * 2654435761u >> 13);
    uint32_t crc = ckpt_crc32(0, payload, WEIGHT_BYTES);
    double t0 = time_now();
    int peers = 0;
    for (int w = 0; w < r->world_size; w++) {
        if (r->role_of[w] == ROLE_LEARNER) continue;
        msg_encode_weights(&buf, 0, WEIGHT_BYTES, crc, MSG_WEIGHTS_FORMAT);
        mpi_send_bytes(MPI_COMM_WORLD, w, TAG_WEIGHTS_HDR, buf.data, buf.len);
        mpi_send_bytes(MPI_COMM_WORLD, w, TAG_WEIGHTS_DATA, payload, WEIGHT_BYTES);
        peers++;
    }
    double t_weights = time_now() - t0;
    free(payload);

    int n_actors = r->count[ROLE_ACTOR], expected = n_actors * rounds, seqs = 0;
    size_t tokens = 0;
    char *seen = xcalloc((size_t)expected, 1);
    for (int k = 0; k < expected; k++) {
        MPI_Status st;
        int tag = TAG_ROLLOUT;
        mpi_wait_any_message(MPI_COMM_WORLD, MPI_ANY_SOURCE, &tag, 1, &st);
        mpi_recv_msg(MPI_COMM_WORLD, &st, &buf, &LIM, &m);
        verify_rollout(&m, &want, rounds, n_actors);
        /* the sender is the actor it claims to be, and each (actor, round) comes once */
        REQUIRE(r->ranks[ROLE_ACTOR][m.rollout.actor_rank] == st.MPI_SOURCE);
        int slot = m.rollout.actor_rank * rounds + (int)m.rollout.batch_id;
        REQUIRE(!seen[slot]);
        seen[slot] = 1;
        seqs += m.batch.n;
        tokens += m.batch.n_tokens;
    }
    free(seen);
    msg_encode_stop(&buf, "all rollouts verified");
    MPI_Request *reqs = xmalloc((size_t)r->world_size * sizeof(MPI_Request));
    int n = 0;
    for (int w = 0; w < r->world_size; w++)
        if (r->role_of[w] != ROLE_LEARNER)
            MPI_CHECK(MPI_Isend(buf.data, (int)buf.len, MPI_BYTE, w, TAG_STOP, MPI_COMM_WORLD,
                                &reqs[n++]));
    mpi_wait_all(n, reqs, "sending stop to every actor and reward rank");
    free(reqs);
    printf("learner verified %d rollouts (%d sequences, %zu tokens) from %d actors via %d "
           "reward ranks; weights (%zu bytes) to %d ranks in %.3f s\n",
           expected, seqs, tokens, n_actors, r->count[ROLE_REWARD], WEIGHT_BYTES, peers,
           t_weights);
    msg_batch_free(&want);
    msg_free(&m);
    msg_buf_free(&buf);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: mpi_echo learner|actor|reward ROUNDS [bad|wrongtag]\n");
        return 2;
    }
    Role role;
    if (mpi_role_parse(argv[1], &role)) {
        fprintf(stderr, "mpi_echo: unknown role '%s'\n", argv[1]);
        return 2;
    }
    int rounds = atoi(argv[2]);
    const char *misbehave = argc > 3 ? argv[3] : NULL;
    MpiRoles r;
    MpiRoleNeeds need = mpi_needs_online("ppo");
    mpi_roles_init(&argc, &argv, role, &need, &r);
    if (rounds < 1) mpi_fatal("ROUNDS must be >= 1, got '%s'", argv[2]);
    double t0 = time_now();
    if (role == ROLE_ACTOR) run_actor(&r, rounds, misbehave);
    else if (role == ROLE_REWARD) run_reward(&r);
    else if (r.role_rank == 0) run_learner(&r, rounds);
    double t = mpi_max_double(MPI_COMM_WORLD, time_now() - t0);
    if (mpi_is_root(MPI_COMM_WORLD)) printf("echo done in %.3f s (slowest rank)\n", t);
    fflush(stdout);
    mpi_roles_free(&r);
    return 0;
}
