/*
 * common/online.c — the shared protocol helpers of the online stages; see online.h.
 */
#include <limits.h>

#include "online.h"
#include "lora.h"

#include "toksrc.h"

MPI_Comm online_weights_comm_create(const MpiRoles *r) {
    int in = r->role == ROLE_ACTOR || (r->role == ROLE_LEARNER && r->role_rank == 0);
    int key = r->role == ROLE_LEARNER ? 0 : 1 + r->role_rank;
    MPI_Comm c = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, in ? 0 : MPI_UNDEFINED, key, &c));
    if (c != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN));
    return c;
}

int online_learner_root(const MpiRoles *r) { return r->ranks[ROLE_LEARNER][0]; }

void online_traffic_report(const MpiRoles *r, const char *stage, long updates) {
    unsigned long long b[TAG_LAST_ - TAG_SCORE_REQ] = {0};
    int root = online_learner_root(r);
    mpi_bytes_total(MPI_COMM_WORLD, root, b);
    if (r->world_rank != root) return;
#define B_(tag) ((double)b[(tag) - TAG_SCORE_REQ] / (double)(updates > 0 ? updates : 1))
    double w = B_(TAG_WEIGHTS_HDR) + B_(TAG_WEIGHTS_DATA), total = 0;
    for (int t = TAG_SCORE_REQ; t < TAG_LAST_; t++) total += B_(t);
    char per[64] = "in all";
    if (updates > 0) snprintf(per, sizeof per, "per update (mean of %ld)", updates);
    printf("learner %s: bytes received %s, all ranks: weights %.0f (to %d actor%s), "
           "work items %.0f, rollouts %.0f, score requests %.0f, score replies %.0f, "
           "stop %.0f; total %.0f (%.3f MB)\n",
           stage, per, w, r->count[ROLE_ACTOR],
           r->count[ROLE_ACTOR] == 1 ? "" : "s", B_(TAG_CTRL), B_(TAG_ROLLOUT),
           B_(TAG_SCORE_REQ), B_(TAG_SCORE_REP), B_(TAG_STOP), total, total / 1e6);
#undef B_
    fflush(stdout);
}

void online_judge_spec(const RlhfConfig *c, char *out, size_t n) {
    if (strcmp(c->judge.kind, "rule") == 0)
        snprintf(out, n, "%s%s", strncmp(c->judge.rule, "rule:", 5) == 0 ? "" : "rule:",
                 c->judge.rule);
    else if (strcmp(c->judge.kind, "gold") == 0)
        snprintf(out, n, "gold");
    else
        out[0] = 0;
}

int online_ref_on_learner(const RlhfConfig *c) {
    if (strcmp(c->ppo.ref_on, "reward_server") == 0) return 0;
    return c->lora.rank > 0 && c->ppo.ref_ckpt[0] == 0;
}

int online_ref_check(const RlhfConfig *c, char *err) {
    if (strcmp(c->ppo.ref_on, "learner") != 0) return 0;
    if (c->lora.rank == 0)
        return errf(err, "ppo.ref_on = learner needs lora.rank > 0 (the reference is the "
                         "policy's frozen base with its adapters off); use auto or reward_server");
    if (c->ppo.ref_ckpt[0])
        return errf(err, "ppo.ref_on = learner: ppo.ref_ckpt (%s) names a reference other than "
                         "the policy's base, which only the reward server loads; empty "
                         "ppo.ref_ckpt or use auto", c->ppo.ref_ckpt);
    return 0;
}

int online_args(int argc, char **argv, const char *program, void (*usage)(FILE *)) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-') {
            fprintf(stderr, "rlhf-c: %s: unknown option '%s' (see %s --help)\n", program,
                    argv[i], program);
            return 2;
        }
    if (argc < 2) {
        fprintf(stderr, "rlhf-c: %s: missing CONFIG.ini (see %s --help)\n", program, program);
        return 2;
    }
    return -1;
}

int online_load_config(RlhfConfig *c, int argc, char **argv, char *err) {
    if (argc < 2) return errf(err, "usage: %s CONFIG.ini [section.key=value ...]", argv[0]);
    return config_load(c, argv[1], argc - 2, argv + 2, err);
}

void online_weights_send(const MpiRoles *r, MPI_Comm wcomm, const void *img,
                                    size_t len, int64_t version, MsgBuf *buf) {
    ASSERT((uint64_t)len <= ONLINE_MAX_IMAGE_BYTES);
    msg_encode_weights(buf, version, (uint64_t)len, ckpt_crc32(0, img, len), MSG_WEIGHTS_FORMAT);
    for (int a = 0; a < r->count[ROLE_ACTOR]; a++)
        mpi_send_bytes(MPI_COMM_WORLD, r->ranks[ROLE_ACTOR][a], TAG_WEIGHTS_HDR, buf->data,
                       buf->len);
    mpi_watch_begin("weight broadcast (learner -> actors)");
    MPI_CHECK(MPI_Bcast((void *)img, (int)len, MPI_BYTE, 0, wcomm));
    mpi_watch_end();
}

void online_weights_recv(MPI_Comm wcomm, const Msg *hdr, void **img, size_t *cap) {
    if (hdr->nbytes > ONLINE_MAX_IMAGE_BYTES)
        mpi_fatal("weights header announces %llu bytes (more than %llu)",
                  (unsigned long long)hdr->nbytes, (unsigned long long)ONLINE_MAX_IMAGE_BYTES);
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
    mpi_bytes_count(TAG_WEIGHTS_DATA, n);
    uint32_t crc = ckpt_crc32(0, *img, n);
    if (crc != hdr->crc32)
        mpi_fatal("weights version %lld: CRC-32 %08x of the received bytes, header says %08x",
                  (long long)hdr->policy_version, crc, hdr->crc32);
}

uint32_t online_layout_crc(const GPTConfig *c) {
    char s[400];
    int n = snprintf(s, sizeof s, "gpt V%d T%d L%d NH%d C%d head%d f32", c->vocab_size,
                     c->max_seq_len, c->n_layer, c->n_head, c->n_embd, (int)c->head);
    if (c->family == GPT_FAMILY_LLAMA) /* every field that changes the table or the math */
        n += snprintf(s + n, sizeof s - (size_t)n,
                      " llama KV%d hd%d F%d qb%d qn%d tie%d theta%a eps%a rope%a,%a,%a,%d",
                      c->n_kv_head, c->head_dim, c->d_ff, c->qkv_bias, c->qk_norm,
                      c->tie_embeddings, (double)c->rope_theta, (double)c->norm_eps,
                      (double)c->rope_factor, (double)c->rope_low_freq_factor,
                      (double)c->rope_high_freq_factor, c->rope_orig_max_pos);
    return ckpt_crc32(0, s, (size_t)n);
}

void online_params_bcast(MPI_Comm wcomm, float *x, size_t n) {
    const size_t piece = (size_t)1 << 28; /* 1 GiB */
    mpi_watch_begin("weight broadcast (learner -> actors)");
    for (size_t o = 0; o < n; o += piece) {
        size_t k = n - o < piece ? n - o : piece;
        MPI_CHECK(MPI_Bcast(x + o, (int)k, MPI_FLOAT, 0, wcomm));
    }
    mpi_watch_end();
}

void online_weights_send_params(const MpiRoles *r, MPI_Comm wcomm, const GPT *m,
                                int64_t version, MsgBuf *buf) {
    msg_encode_weights(buf, version, (uint64_t)m->num_params * sizeof(float),
                       online_layout_crc(&m->config), MSG_WEIGHTS_FORMAT_PARAMS);
    for (int a = 0; a < r->count[ROLE_ACTOR]; a++)
        mpi_send_bytes(MPI_COMM_WORLD, r->ranks[ROLE_ACTOR][a], TAG_WEIGHTS_HDR, buf->data,
                       buf->len);
    online_params_bcast(wcomm, m->params, m->num_params);
}

uint32_t online_lora_crc(const GPT *m) {
    char s[128];
    int n = snprintf(s, sizeof s, "lora r%d targets%u n%zu alpha%a", m->lora->rank,
                     m->lora->targets, m->lora->n, (double)m->lora->alpha);
    return ckpt_crc32(online_layout_crc(&m->config), s, (size_t)n);
}

void online_weights_send_lora(const MpiRoles *r, MPI_Comm wcomm, const GPT *m, int64_t version,
                              MsgBuf *buf) {
    msg_encode_weights(buf, version, (uint64_t)m->lora->n * sizeof(float), online_lora_crc(m),
                       MSG_WEIGHTS_FORMAT_LORA);
    for (int a = 0; a < r->count[ROLE_ACTOR]; a++)
        mpi_send_bytes(MPI_COMM_WORLD, r->ranks[ROLE_ACTOR][a], TAG_WEIGHTS_HDR, buf->data,
                       buf->len);
    online_params_bcast(wcomm, m->lora->params, m->lora->n);
}

void online_weights_recv_lora(MPI_Comm wcomm, const Msg *hdr, GPT *m) {
    if (!m->lora)
        mpi_fatal("weights version %lld: LoRA adapters announced, but the actor's weight image "
                  "had none", (long long)hdr->policy_version);
    if (hdr->nbytes != (uint64_t)m->lora->n * sizeof(float) || hdr->crc32 != online_lora_crc(m))
        mpi_fatal("weights version %lld: adapters of %llu bytes, layout %08x announced; this "
                  "actor's adapters hold %zu bytes, layout %08x",
                  (long long)hdr->policy_version, (unsigned long long)hdr->nbytes, hdr->crc32,
                  m->lora->n * sizeof(float), online_lora_crc(m));
    online_params_bcast(wcomm, m->lora->params, m->lora->n);
    mpi_bytes_count(TAG_WEIGHTS_DATA, m->lora->n * sizeof(float));
}

/* The header of a parameter-buffer payload against this receiver's model: fatal on a
 * mismatch, before any byte moves. */
static void online_params_check(const Msg *hdr, const GPT *m, const char *format) {
    const GPTConfig *c = &m->config;
    if (strcmp(hdr->format, format) != 0)
        mpi_fatal("weights header has format '%s', expected '%s'", hdr->format, format);
    if (hdr->nbytes != (uint64_t)m->num_params * sizeof(float))
        mpi_fatal("weights version %lld: %llu parameter bytes announced, this actor's model "
                  "(L%d C%d V%d) holds %zu",
                  (long long)hdr->policy_version, (unsigned long long)hdr->nbytes, c->n_layer,
                  c->n_embd, c->vocab_size, m->num_params * sizeof(float));
    if (hdr->crc32 != online_layout_crc(c))
        mpi_fatal("weights version %lld: layout %08x announced, this actor's model (L%d NH%d "
                  "C%d V%d T%d) has %08x: learner and actor hold different architectures",
                  (long long)hdr->policy_version, hdr->crc32, c->n_layer, c->n_head, c->n_embd,
                  c->vocab_size, c->max_seq_len, online_layout_crc(c));
}

void online_weights_recv_params(MPI_Comm wcomm, const Msg *hdr, GPT *m) {
    online_params_check(hdr, m, MSG_WEIGHTS_FORMAT_PARAMS);
    online_params_bcast(wcomm, m->params, m->num_params);
    mpi_bytes_count(TAG_WEIGHTS_DATA, m->num_params * sizeof(float));
}

void online_weights_post_params(const MpiRoles *r, const float *snap, size_t n,
                                const GPTConfig *c, int64_t version, MsgBuf *buf,
                                MPI_Request *reqs) {
    if (n > (size_t)INT_MAX)
        mpi_fatal("%zu parameters: more than one point-to-point message carries (MPI counts "
                  "are int); use ppo.max_staleness = 0 or ppo.weight_sync = image", n);
    msg_encode_weights(buf, version, (uint64_t)n * sizeof(float), online_layout_crc(c),
                       MSG_WEIGHTS_FORMAT_PARAMS_P2P);
    for (int a = 0; a < r->count[ROLE_ACTOR]; a++) {
        int dest = r->ranks[ROLE_ACTOR][a];
        mpi_send_bytes(MPI_COMM_WORLD, dest, TAG_WEIGHTS_HDR, buf->data, buf->len);
        MPI_CHECK(MPI_Isend(snap, (int)n, MPI_FLOAT, dest, TAG_WEIGHTS_DATA, MPI_COMM_WORLD,
                            &reqs[a]));
    }
}

void online_weights_recv_params_p2p(int root, const Msg *hdr, GPT *m) {
    online_params_check(hdr, m, MSG_WEIGHTS_FORMAT_PARAMS_P2P);
    if (m->num_params > (size_t)INT_MAX)
        mpi_fatal("%zu parameters: more than one point-to-point message carries", m->num_params);
    MPI_Request rq;
    MPI_CHECK(MPI_Irecv(m->params, (int)m->num_params, MPI_FLOAT, root, TAG_WEIGHTS_DATA,
                        MPI_COMM_WORLD, &rq));
    mpi_wait_request(&rq, NULL, "receiving weights from the learner");
    mpi_bytes_count(TAG_WEIGHTS_DATA, m->num_params * sizeof(float));
}

int online_load_tokenizer(const RlhfConfig *c, const char *ckpt, BPE *tok, char *err) {
    return toksrc_load(tok, NULL, c->tokenizer.path, ckpt, err);
}

const char *online_model_group(const CkptReader *r, const char *preferred) {
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

int online_resolve(const char *key, const char *what, char *out, size_t n,
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
