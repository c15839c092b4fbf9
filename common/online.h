/*
 * common/online.h — the protocol of the online stages (ppo, grpo, rloo) that the three
 * programs of a run share: build/learner, build/actor and build/reward_server.
 *
 * Messages (all validated with msg_decode, see common/msg.h), on MPI_COMM_WORLD:
 *   learner 0 -> actor     TAG_CTRL          a WORK ITEM: a score_req message whose
 *                                            sequences are prompts only (resp_lens all 0);
 *                                            req_id = the global work-item id,
 *                                            policy_version = the version it is for,
 *                                            prompt_ids = global prompt indices,
 *                                            sample_ids = sampling keys (see ppo.c),
 *                                            want_ref = the actor asks the reward server
 *                                            for reference log-probs (0: the learner
 *                                            computes them, online_ref_on_learner).
 *   learner 0 -> actor     TAG_WEIGHTS_HDR   weights header (version, nbytes, crc32,
 *                                            format), then the payload by MPI_Bcast on
 *                                            the weights communicator (below): an HDF5
 *                                            image (format hdf5-image: the first weights
 *                                            of a launch, and every update with
 *                                            ppo.weight_sync = image) or the raw
 *                                            parameter buffer (f32-params, later updates
 *                                            with ppo.weight_sync = params).
 *   actor -> reward        TAG_SCORE_REQ     score_req (prompt + response tokens, want_ref
 *                                            = the work item's: 0 when the learner computes
 *                                            the reference, online_ref_on_learner)
 *   reward -> actor        TAG_SCORE_REP     score_rep (scores, reference log-probs, extra
 *                                            "t_server": the server's seconds per sequence)
 *   actor -> learner 0     TAG_ROLLOUT       rollout (batch_id = work-item id)
 *   learner 0 -> everyone  TAG_STOP          stop (the run is over)
 *
 * The weights communicator holds learner rank 0 (its rank 0, the root) and every actor;
 * it is created by online_weights_comm_create, which EVERY rank of an online launch calls
 * right after mpi_roles_init (it is a collective over MPI_COMM_WORLD).
 *
 * Not here: what the learner does with rollouts (ppo.c), generation (actor.c), scoring
 * (reward_server.c).
 */
#ifndef RLHF_ONLINE_H
#define RLHF_ONLINE_H

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
#define ONLINE_ATTR_EOS "eos_id"
/* extra score array of a score_rep / rollout: the reward server's compute seconds, per
 * sequence (sum over the sequences = the request's time) */
#define ONLINE_EXTRA_T_SERVER "t_server"
/* extra score array with judge.monitor_gold: the gold judge's score of each sequence, in
 * [0, 1], or ONLINE_GOLD_NONE where the gold judge could not score it */
#define ONLINE_EXTRA_GOLD "gold"
#define ONLINE_GOLD_NONE (-1.0f)
/* extra score array with judge.kind = mix: the index of the judge.route entry (route.h)
 * that scored each sequence */
#define ONLINE_EXTRA_JUDGE "judge"
/* extra score array with K > 1 reward models (judge.rm_ckpts): the std of the K
 * normalised scores of each sequence (their disagreement), or ONLINE_GOLD_NONE where no
 * reward model scored it (a verifier did) */
#define ONLINE_EXTRA_RM_STD "rm_std"
/* repetitions of the RLHF_BCAST_BENCH comparison (learner/ppo.c, actor/actor.c) */
#define ONLINE_BCAST_REPS 5
/* weight images larger than this are refused (MPI counts are int) */
#define ONLINE_MAX_IMAGE_BYTES ((uint64_t)2147483647)

/* Learner rank 0 and every actor; MPI_COMM_NULL on the other ranks. Collective over
 * MPI_COMM_WORLD. */
MPI_Comm online_weights_comm_create(const MpiRoles *r);

/* The world rank of learner rank 0 (the one that talks to actors and servers). */
int online_learner_root(const MpiRoles *r);

/* The end of an online run, on EVERY rank of the launch (collective over MPI_COMM_WORLD):
 * the bytes every rank received (mpi_util.h, Traffic) are summed, and learner rank 0
 * prints them per update (`updates` done by this run; 0: totals only) by kind: weights
 * (headers and payload, to every actor), work items, rollouts, score requests and
 * replies. These are what the network carries between nodes when the roles are spread
 * over several (docs/cluster.md); the learners' own all-reduce is not counted. */
void online_traffic_report(const MpiRoles *r, const char *stage, long updates);

/* The judge spec of [judge]: "rule:<judge.rule>" (the "rule:" prefix optional in the
 * key), "gold", or "" for the reward model. */
void online_judge_spec(const RlhfConfig *c, char *out, size_t n);

/* Where the reference policy's log-probs are computed: 1 = on the learner, 0 = on the
 * reward servers. THE rule (learner and reward server both call it, so they cannot
 * disagree): with lora.rank > 0 and ppo.ref_ckpt empty the reference is model.init, which
 * is the frozen base the adapters sit on (a LoRA model.init is merged into it on load), so
 * the learner computes it with its adapters off and no reward server loads a copy;
 * ppo.ref_on = reward_server forces the server path. Work items then carry want_ref = 0,
 * actors ask the server for scores only and their rollouts carry zero ref_logprobs,
 * which the learner's pre-pass overwrites. */
int online_ref_on_learner(const RlhfConfig *c);
/* ppo.ref_on = learner where the rule above does not hold: -1 with err (the learner
 * refuses the config); else 0. */
int online_ref_check(const RlhfConfig *c, char *err);

/* The command line of the actor and reward_server programs, read BEFORE mpi_roles_init
 * (so that --help needs neither mpirun nor MPI): -h or --help anywhere prints usage(stdout)
 * and returns 0; no CONFIG.ini, or an option that is not a config override, prints a
 * one-line hint on stderr and returns 2; otherwise -1 (go on). */
int online_args(int argc, char **argv, const char *program, void (*usage)(FILE *));

/* Config for the actor and reward programs: argv[1] is the INI file, argv[2..] overrides
 * (the learner's argv has the stage first; theirs does not). 0, or -1 with err. */
int online_load_config(RlhfConfig *c, int argc, char **argv, char *err);

/* Send the weights (an HDF5 image of len bytes) as version `version` from learner rank 0:
 * a header to every actor (point to point: an actor waits for it without spinning, between
 * work items), then the bytes by MPI_Bcast on wcomm, guarded by the watchdog. By the time
 * the bytes go, every actor has seen the header and is entering the broadcast (in
 * synchronous mode every actor is idle when the learner publishes), so the blocking
 * broadcast does not wait long; an MPI_Ibcast polled with sleeps was measured 3-27x
 * slower than a plain MPI_Bcast for a 200 KB image (each pipeline segment waited for the
 * next poll). */
void online_weights_send(const MpiRoles *r, MPI_Comm wcomm, const void *img,
                                    size_t len, int64_t version, MsgBuf *buf);

/* Actor side, after a weights header `hdr` was received: join the broadcast into *img
 * (grown as needed) and check size and CRC (a mismatch is fatal: the transport corrupted
 * the weights). */
void online_weights_recv(MPI_Comm wcomm, const Msg *hdr, void **img, size_t *cap);

/* Weight sync without the image (ppo.weight_sync = params). The first weights of a launch
 * always travel as an HDF5 image, through the same loader as a checkpoint file, which
 * checks every shape, checksum and value; after it, the learner and every actor hold the
 * same architecture and the payload of an update is the learner's parameter buffer itself:
 * no image to build, no copy, no checksum pass — the broadcast goes from the learner's
 * GPT.params straight into the actor's (the actor takes weights only between work items,
 * when nothing reads them). The header says how many bytes and which layout
 * (online_layout_crc); a mismatch is fatal before the broadcast. The payload is trusted as
 * MPI delivers it, like the gradients of MPI_Allreduce; the learner never publishes
 * non-finite weights (a non-finite step is skipped, ppo.c). */
uint32_t online_layout_crc(const GPTConfig *c);
void online_weights_send_params(const MpiRoles *r, MPI_Comm wcomm, const GPT *m,
                                int64_t version, MsgBuf *buf);
void online_weights_recv_params(MPI_Comm wcomm, const Msg *hdr, GPT *m);
/* Asynchronous mode (ppo.max_staleness > 0): the same payload point to point, so the
 * learner does not wait in a broadcast for actors that are generating. Learner rank 0
 * sends each actor the header (format f32-params-p2p) and posts an MPI_Isend of `snap` —
 * a copy of the parameters that must stay unchanged until reqs[0..actors) complete —
 * with TAG_WEIGHTS_DATA; the actor receives it straight into its model between work
 * items. */
void online_weights_post_params(const MpiRoles *r, const float *snap, size_t n,
                                const GPTConfig *c, int64_t version, MsgBuf *buf,
                                MPI_Request *reqs);
void online_weights_recv_params_p2p(int root, const Msg *hdr, GPT *m);
/* LoRA (lora.rank > 0): the first image carries the frozen base and the adapters (lora.h's
 * checkpoint layout); every later update is the adapter buffer alone (format
 * lora-adapters, bytes = 4 x adapter floats, crc = online_lora_crc), broadcast on wcomm
 * into the actor's adapters, which generation applies on the fly (gpt.c). */
uint32_t online_lora_crc(const GPT *m);
void online_weights_send_lora(const MpiRoles *r, MPI_Comm wcomm, const GPT *m, int64_t version,
                              MsgBuf *buf);
void online_weights_recv_lora(MPI_Comm wcomm, const Msg *hdr, GPT *m);
/* The broadcast itself (both ends; root 0 of wcomm): n floats in pieces of 1 GiB (MPI
 * counts are int), under the watchdog. */
void online_params_bcast(MPI_Comm wcomm, float *x, size_t n);

/* The tokenizer for a program that has no Trainer: tokenizer.path, else the one stored
 * in checkpoint `ckpt` (a resolved file path), in either form (toksrc.h). 0, or -1 with
 * err. */
int online_load_tokenizer(const RlhfConfig *c, const char *ckpt, BPE *tok, char *err);

/* The group holding a model in a checkpoint: `preferred` if present, else policy,
 * reward, value, reference. NULL if none. */
const char *online_model_group(const CkptReader *r, const char *preferred);

/* Resolve a checkpoint key (file or run directory) into out. 0, or -1 with err. */
int online_resolve(const char *key, const char *what, char *out, size_t n,
                              char *err);


#endif
