/*
 * learner/ppo_proto.h — the protocol of the online stages (ppo, grpo, rloo) that the three
 * programs of a run share: build/learner, build/actor and build/reward_server include it
 * (actor/ and reward_server/ as "../learner/ppo_proto.h"). Header-only (static inline),
 * because each program folder links on its own and common/ belongs to the core.
 *
 * Messages (all validated with msg_decode, see common/msg.h), on MPI_COMM_WORLD:
 *   learner 0 -> actor     TAG_CTRL          a WORK ITEM: a score_req message whose
 *                                            sequences are prompts only (resp_lens all 0);
 *                                            req_id = the global work-item id,
 *                                            policy_version = the version it is for,
 *                                            prompt_ids = global prompt indices,
 *                                            sample_ids = sampling keys (see ppo.c).
 *   learner 0 -> actor     TAG_WEIGHTS_HDR   weights header (version, nbytes, crc32), then
 *                                            the HDF5 image bytes by MPI_Bcast on the
 *                                            weights communicator (below).
 *   actor -> reward        TAG_SCORE_REQ     score_req (prompt + response tokens, want_ref)
 *   reward -> actor        TAG_SCORE_REP     score_rep (scores, reference log-probs, extra
 *                                            "t_server": the server's seconds per sequence)
 *   actor -> learner 0     TAG_ROLLOUT       rollout (batch_id = work-item id)
 *   learner 0 -> everyone  TAG_STOP          stop (the run is over)
 *
 * The weights communicator holds learner rank 0 (its rank 0, the root) and every actor;
 * it is created by ppo_weights_comm_create, which EVERY rank of an online launch calls
 * right after mpi_roles_init (it is a collective over MPI_COMM_WORLD).
 *
 * Not here: what the learner does with rollouts (ppo.c), generation (actor.c), scoring
 * (reward_server.c).
 */
#ifndef RLHF_PPO_PROTO_H
#define RLHF_PPO_PROTO_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "ckpt.h"
#include "config.h"
#include "gpt.h"
#include "mpi_util.h"
#include "msg.h"
#include "util.h"

/* root attribute of a weight image: the tokenizer's EOS id (actors stop generation on it) */
#define PPO_ATTR_EOS "eos_id"
/* extra score array of a score_rep / rollout: the reward server's compute seconds, per
 * sequence (sum over the sequences = the request's time) */
#define PPO_EXTRA_T_SERVER "t_server"
/* repetitions of the RLHF_BCAST_BENCH comparison (learner/ppo.c, actor/actor.c) */
#define PPO_BCAST_REPS 5
/* weight images larger than this are refused (MPI counts are int) */
#define PPO_MAX_IMAGE_BYTES ((uint64_t)2147483647)

/* Learner rank 0 and every actor; MPI_COMM_NULL on the other ranks. Collective over
 * MPI_COMM_WORLD. */
static inline MPI_Comm ppo_weights_comm_create(const MpiRoles *r) {
    int in = r->role == ROLE_ACTOR || (r->role == ROLE_LEARNER && r->role_rank == 0);
    int key = r->role == ROLE_LEARNER ? 0 : 1 + r->role_rank;
    MPI_Comm c = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, in ? 0 : MPI_UNDEFINED, key, &c));
    if (c != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN));
    return c;
}

/* The world rank of learner rank 0 (the one that talks to actors and servers). */
static inline int ppo_learner_root(const MpiRoles *r) { return r->ranks[ROLE_LEARNER][0]; }

/* The judge spec of [judge]: "rule:<judge.rule>" (the "rule:" prefix optional in the
 * key), "gold", or "" for the reward model. */
static inline void ppo_judge_spec(const RlhfConfig *c, char *out, size_t n) {
    if (strcmp(c->judge.kind, "rule") == 0)
        snprintf(out, n, "%s%s", strncmp(c->judge.rule, "rule:", 5) == 0 ? "" : "rule:",
                 c->judge.rule);
    else if (strcmp(c->judge.kind, "gold") == 0)
        snprintf(out, n, "gold");
    else
        out[0] = 0;
}

/* Config for the actor and reward programs: argv[1] is the INI file, argv[2..] overrides
 * (the learner's argv has the stage first; theirs does not). 0, or -1 with err. */
static inline int ppo_load_config(RlhfConfig *c, int argc, char **argv, char *err) {
    if (argc < 2) return errf(err, "usage: %s CONFIG.ini [section.key=value ...]", argv[0]);
    return config_load(c, argv[1], argc - 2, argv + 2, err);
}

/* Send the weights (an HDF5 image of len bytes) as version `version` from learner rank 0:
 * a header to every actor (point to point: an actor waits for it without spinning, between
 * work items), then the bytes by MPI_Bcast on wcomm, guarded by the watchdog. By the time
 * the bytes go, every actor has seen the header and is entering the broadcast (in
 * synchronous mode every actor is idle when the learner publishes), so the blocking
 * broadcast does not wait long; an MPI_Ibcast polled with sleeps was measured 3-27x
 * slower than a plain MPI_Bcast for a 200 KB image (each pipeline segment waited for the
 * next poll). */
static inline void ppo_weights_send(const MpiRoles *r, MPI_Comm wcomm, const void *img,
                                    size_t len, int64_t version, MsgBuf *buf) {
    ASSERT((uint64_t)len <= PPO_MAX_IMAGE_BYTES);
    msg_encode_weights(buf, version, (uint64_t)len, ckpt_crc32(0, img, len));
    for (int a = 0; a < r->count[ROLE_ACTOR]; a++)
        mpi_send_bytes(MPI_COMM_WORLD, r->ranks[ROLE_ACTOR][a], TAG_WEIGHTS_HDR, buf->data,
                       buf->len);
    mpi_watch_begin("weight broadcast (learner -> actors)");
    MPI_CHECK(MPI_Bcast((void *)img, (int)len, MPI_BYTE, 0, wcomm));
    mpi_watch_end();
}

/* Actor side, after a weights header `hdr` was received: join the broadcast into *img
 * (grown as needed) and check size and CRC (a mismatch is fatal: the transport corrupted
 * the weights). */
static inline void ppo_weights_recv(MPI_Comm wcomm, const Msg *hdr, void **img, size_t *cap) {
    if (hdr->nbytes > PPO_MAX_IMAGE_BYTES)
        mpi_fatal("weights header announces %llu bytes (more than %llu)",
                  (unsigned long long)hdr->nbytes, (unsigned long long)PPO_MAX_IMAGE_BYTES);
    if (strcmp(hdr->format, MSG_WEIGHTS_FORMAT) != 0)
        mpi_fatal("weights header has format '%s', expected '%s'", hdr->format,
                  MSG_WEIGHTS_FORMAT);
    size_t n = (size_t)hdr->nbytes;
    if (n > *cap) {
        free(*img);
        *img = xmalloc(n);
        *cap = n;
    }
    mpi_watch_begin("weight broadcast (learner -> actors)");
    MPI_CHECK(MPI_Bcast(*img, (int)n, MPI_BYTE, 0, wcomm));
    mpi_watch_end();
    uint32_t crc = ckpt_crc32(0, *img, n);
    if (crc != hdr->crc32)
        mpi_fatal("weights version %lld: CRC-32 %08x of the received bytes, header says %08x",
                  (long long)hdr->policy_version, crc, hdr->crc32);
}

/* The tokenizer for a program that has no Trainer: tokenizer.path, else the one stored
 * in checkpoint `ckpt` (a resolved file path). 0, or -1 with err. */
static inline int ppo_load_tokenizer(const RlhfConfig *c, const char *ckpt, BPE *tok,
                                     char *err) {
    if (c->tokenizer.path[0]) {
        char vp[CONFIG_STR_MAX + 32], mp[CONFIG_STR_MAX + 32];
        snprintf(vp, sizeof vp, "%s/vocab.json", c->tokenizer.path);
        snprintf(mp, sizeof mp, "%s/merges.txt", c->tokenizer.path);
        return bpe_load_files(tok, vp, mp, err);
    }
    CkptReader *r = ckpt_reader_open(ckpt, err);
    if (!r) return -1;
    const CkptMeta *meta = ckpt_reader_meta(r);
    int rc = 0;
    if (!meta->tok_vocab || !meta->tok_merges)
        rc = errf(err, "%s holds no tokenizer: set tokenizer.path=DIR", ckpt);
    else
        rc = bpe_load_strings(tok, meta->tok_vocab, meta->tok_merges, err);
    ckpt_reader_free(r);
    return rc;
}

/* The group holding a model in a checkpoint: `preferred` if present, else policy,
 * reward, value, reference. NULL if none. */
static inline const char *ppo_model_group(const CkptReader *r, const char *preferred) {
    static const char *groups[] = {"policy", "reward", "value", "reference"};
    char p[64];
    if (preferred) {
        snprintf(p, sizeof p, "/%s", preferred);
        if (ckpt_has(r, p)) return preferred;
    }
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        snprintf(p, sizeof p, "/%s", groups[i]);
        if (ckpt_has(r, p)) return groups[i];
    }
    return NULL;
}

/* Resolve a checkpoint key (file or run directory) into out. 0, or -1 with err. */
static inline int ppo_resolve(const char *key, const char *what, char *out, size_t n,
                              char *err) {
    if (!key[0]) return errf(err, "%s is empty: name a checkpoint file or run directory", what);
    int rc = ckpt_resolve(key, "auto", out, n, err);
    if (rc == 1) return errf(err, "%s = %s: no checkpoint there", what, key);
    if (rc < 0) {
        char e2[ERRBUF_LEN];
        snprintf(e2, sizeof e2, "%s", err);
        return errf(err, "%s: %s", what, e2);
    }
    return 0;
}

#endif
