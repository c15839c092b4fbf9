/*
 * common/msg.h — the wire format between the ranks of an rlhf-c job (msgpack, msgpack-c).
 *
 * Every message is ONE msgpack map. Two keys are always present:
 *   "v"    positive int, the schema version (MSG_VERSION; both ends must agree)
 *   "type" str, one of "score_req", "score_rep", "rollout", "weights", "stop"
 * Scalars are msgpack numbers; arrays travel as msgpack bin of little-endian values:
 *   i32[]  token ids, lengths, category ids (4 bytes each)
 *   f32[]  scores, log-probs (IEEE-754 binary32, 4 bytes each)
 *   u64[]  prompt / sample ids (8 bytes each)
 *   u8[]   flags (1 byte each, 0 or 1)
 * A batch of n sequences (score_req, score_rep, rollout) is laid out flat: per-sequence
 * arrays have n entries; "tokens" holds, for each sequence in order, its prompt tokens
 * then its response tokens (sum(prompt_lens + resp_lens) entries); per-response-token
 * arrays ("logprobs", "ref_logprobs") hold each response's values in order
 * (sum(resp_lens) entries).
 *
 * Fields per type (R required, O optional; anything else is rejected):
 *   score_req  R req_id u64, policy_version int>=0, want_ref bool, n int,
 *                prompt_ids u64[n], sample_ids u64[n], prompt_lens i32[n],
 *                resp_lens i32[n], tokens i32[sum(prompt_lens+resp_lens)]
 *              O categories i32[n] (>= 0)
 *   score_rep  R req_id u64, n int, resp_lens i32[n] (echo of the request, so the
 *                reply can be checked on its own), scores f32[n]
 *              O ref_logprobs f32[sum(resp_lens)] (present iff the request had
 *                want_ref), extra map {name str -> f32[n]} (other judges, e.g. "gold")
 *   rollout    R policy_version int>=0, actor_rank int>=0, batch_id u64,
 *                micro_batch int>=0, n, prompt_ids, sample_ids, prompt_lens, resp_lens,
 *                tokens (as score_req), logprobs f32[sum(resp_lens)] (behaviour policy),
 *                scores f32[n], finished u8[n] (1 if the response ended with EOS),
 *                t_generate, t_score, t_total (float seconds >= 0: generating, waiting
 *                for scores, whole batch)
 *              O ref_logprobs f32[sum(resp_lens)] (present iff the reward server computed
 *                them; absent when the learner does, online.h), categories i32[n], extra
 *                map {name -> f32[n]}
 *   weights    R policy_version int>=0, nbytes u64 (> 0), crc32 u32, format str, one of
 *                "hdf5-image": the payload is a checkpoint image (ckpt.h) and crc32 is
 *                  the CRC-32/IEEE of the payload, ckpt_crc32(0, payload, nbytes);
 *                "f32-params": the payload is the policy's parameter buffer (GPT.params,
 *                  little-endian binary32, the order of gpt_tensors_build) and crc32 is
 *                  the CRC-32 of the model's layout (online_layout_crc), so a receiver
 *                  holding another model shape refuses it before any byte moves;
 *                "f32-params-p2p": the same payload and crc32, sent to each receiver
 *                  point to point (TAG_WEIGHTS_DATA) instead of by broadcast.
 *                This is only the header: the nbytes payload follows as a separate
 *                MPI message / broadcast.
 *   stop       R reason str (valid UTF-8, < MSG_REASON_LEN bytes)
 * Keys may come in any order; a key given twice is an error.
 *
 * Validation (msg_decode) checks everything against the buffer and MsgLimits: version,
 * type, every field present with the right msgpack type and range, every bin length
 * (n x 4, n x 8, 4 x the sums of lengths), 1 <= n <= max_batch, prompt_len >= 1,
 * resp_len >= 0, prompt_len + resp_len <= max_seq_len, 0 <= token < vocab_size, finite
 * floats (scores, log-probs, times), no trailing bytes. A malformed message is an error
 * naming the field and what was wrong — never a crash, never a read out of bounds.
 *
 * Memory: MsgBuf and MsgBatch grow and are reused; in steady state encoding and decoding
 * allocate nothing. Decoded arrays are copied out of the receive buffer (aligned, host
 * order), so the buffer can be reused at once.
 *
 * Not here: MPI (mpi_util.h carries the bytes), the weight payload format (ckpt), what a
 * score means (reward_server).
 */
#ifndef RLHF_MSG_H
#define RLHF_MSG_H

#include <stddef.h>
#include <stdint.h>

#define MSG_VERSION 1
#define MSG_NAME_LEN 32     /* extra-score names, weights format: < 32 bytes */
#define MSG_REASON_LEN 256  /* stop reason: < 256 bytes */
#define MSG_MAX_EXTRA 8     /* extra (per-judge) score arrays per message */
#define MSG_WEIGHTS_FORMAT "hdf5-image"
#define MSG_WEIGHTS_FORMAT_PARAMS "f32-params"
#define MSG_WEIGHTS_FORMAT_PARAMS_P2P "f32-params-p2p"
#define MSG_WEIGHTS_FORMAT_LORA "lora-adapters"

typedef enum {
    MSG_TYPE_NONE = 0,
    MSG_TYPE_SCORE_REQ,
    MSG_TYPE_SCORE_REP,
    MSG_TYPE_ROLLOUT,
    MSG_TYPE_WEIGHTS,
    MSG_TYPE_STOP,
    MSG_TYPE_COUNT
} MsgType;

/* What the receiver's model allows; every field must be > 0. */
typedef struct {
    int vocab_size;  /* token ids must be < vocab_size */
    int max_seq_len; /* prompt_len + resp_len <= max_seq_len */
    int max_batch;   /* sequences per message */
} MsgLimits;

/* A growable byte buffer: one encoded message (or a received one). */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} MsgBuf;

void msg_buf_init(MsgBuf *b);
void msg_buf_free(MsgBuf *b); /* NULL-safe; leaves an empty buffer */
/* make room for cap bytes in total (keeps len and contents) */
void msg_buf_reserve(MsgBuf *b, size_t cap);

/* ---------------------------------------------------------------------------------------
 * The sequence batch shared by score_req, score_rep and rollout. It owns its arrays.
 * Append sequences with msg_batch_append_seq; the per-response and per-sequence value
 * arrays (logprobs, ref_logprobs, scores, finished, categories, extra) are zeroed for a new
 * sequence and filled by the caller through the pointers below. The has_* flags say which
 * optional arrays are meaningful (the encoders send them iff set).
 */
typedef struct {
    int n;           /* sequences */
    size_t n_tokens; /* sum(prompt_lens + resp_lens) */
    size_t n_resp;   /* sum(resp_lens) */
    uint64_t *prompt_ids;  /* (n) index of the prompt in its prompt set */
    uint64_t *sample_ids;  /* (n) which sample of that prompt (GRPO groups) */
    int32_t *prompt_lens;  /* (n) >= 1 */
    int32_t *resp_lens;    /* (n) >= 0 */
    int32_t *categories;   /* (n) meaningful iff has_categories */
    size_t *tok_off;       /* (n+1) sequence i is tokens[tok_off[i] .. tok_off[i+1]) */
    size_t *resp_off;      /* (n+1) response i is logprobs[resp_off[i] .. resp_off[i+1]) */
    int32_t *tokens;       /* (n_tokens) prompt then response, sequence after sequence */
    float *logprobs;       /* (n_resp) behaviour-policy log-probs of response tokens */
    float *ref_logprobs;   /* (n_resp) reference-model log-probs, iff has_ref */
    float *scores;         /* (n) */
    uint8_t *finished;     /* (n) 1 if the response ended with EOS */
    int has_categories;
    int has_ref;
    int n_extra;                               /* extra score arrays in use */
    char extra_names[MSG_MAX_EXTRA][MSG_NAME_LEN];
    float *extra[MSG_MAX_EXTRA];               /* (n) each */
    int cap_seq;                               /* capacity, in sequences */
    size_t cap_tokens, cap_resp;               /* capacity, in tokens */
} MsgBatch;

void msg_batch_init(MsgBatch *b);
void msg_batch_free(MsgBatch *b); /* NULL-safe */
/* Empty the batch (n = 0, no optional arrays) keeping its memory. */
void msg_batch_clear(MsgBatch *b);
/* Capacity for at least n_seq sequences, n_tokens tokens, n_resp response tokens. */
void msg_batch_reserve(MsgBatch *b, int n_seq, size_t n_tokens, size_t n_resp);
/* Append one sequence (copies the tokens); returns its index. Values in logprobs,
 * ref_logprobs, scores, finished, categories and the extra arrays start at 0. Lengths
 * must be >= 0 (invariant: aborts otherwise). */
int msg_batch_append_seq(MsgBatch *b, uint64_t prompt_id, uint64_t sample_id,
                         const int32_t *prompt, int prompt_len, const int32_t *resp,
                         int resp_len);
/* The extra score array called name (n entries, zeroed), added if not there yet; at most
 * MSG_MAX_EXTRA names of < MSG_NAME_LEN bytes (invariant). */
float *msg_batch_extra(MsgBatch *b, const char *name);
/* The extra score array called name, or NULL. */
const float *msg_batch_find_extra(const MsgBatch *b, const char *name);

/* ---------------------------------------------------------------------------------------
 * A decoded message. Which fields are meaningful depends on type (see the table above).
 */
typedef struct {
    int32_t actor_rank;  /* the actor's rank within the actor role */
    uint64_t batch_id;   /* per actor, counting from 0 */
    int32_t micro_batch; /* index within the batch */
    double t_generate, t_score, t_total; /* seconds */
} MsgRolloutInfo;

typedef struct {
    MsgType type;
    int64_t policy_version;      /* score_req, rollout, weights */
    uint64_t req_id;             /* score_req, score_rep */
    int want_ref;                /* score_req */
    MsgRolloutInfo rollout;      /* rollout */
    uint64_t nbytes;             /* weights: payload size */
    uint32_t crc32;              /* weights: CRC-32 of the payload (ckpt_crc32) */
    char format[MSG_NAME_LEN];   /* weights: MSG_WEIGHTS_FORMAT */
    char reason[MSG_REASON_LEN]; /* stop */
    MsgBatch batch;              /* score_req, score_rep, rollout */
    void *zone_;                 /* private: the decoder's reusable msgpack zone */
} Msg;

void msg_init(Msg *m);
void msg_free(Msg *m); /* NULL-safe */

const char *msg_type_name(MsgType t); /* "score_req", ...; "?" for anything else */

/* ---------------------------------------------------------------------------------------
 * Encoders: each replaces the contents of buf with one message. They abort (invariant)
 * on an internally inconsistent batch (offsets not matching lengths, n = 0, a negative
 * version); they do not know the receiver's limits — msg_decode checks those.
 */
void msg_encode_score_req(MsgBuf *buf, uint64_t req_id, int64_t policy_version,
                          int want_ref, const MsgBatch *b);
/* Sends scores, resp_lens, ref_logprobs iff b->has_ref, the extra arrays. */
void msg_encode_score_rep(MsgBuf *buf, uint64_t req_id, const MsgBatch *b);
/* Sends every array of b (ref_logprobs iff b->has_ref). */
void msg_encode_rollout(MsgBuf *buf, int64_t policy_version, const MsgRolloutInfo *info,
                        const MsgBatch *b);
/* format: MSG_WEIGHTS_FORMAT, MSG_WEIGHTS_FORMAT_PARAMS, MSG_WEIGHTS_FORMAT_PARAMS_P2P or
 * MSG_WEIGHTS_FORMAT_LORA */
void msg_encode_weights(MsgBuf *buf, int64_t policy_version, uint64_t nbytes,
                        uint32_t crc32, const char *format);
/* reason: printable text (UTF-8), truncated to MSG_REASON_LEN-1 bytes at a character
 * boundary. */
void msg_encode_stop(MsgBuf *buf, const char *reason);
/* Encode a message held in a Msg (e.g. one that was decoded): dispatches on m->type. */
void msg_encode(MsgBuf *buf, const Msg *m);

/* ---------------------------------------------------------------------------------------
 * Decode and validate the len bytes at buf (one whole message) into out, reusing out's
 * memory. Returns 0, or -1 with err (ERRBUF_LEN bytes) naming the field and the problem;
 * on error out's contents are unspecified but it stays valid for reuse and msg_free.
 */
int msg_decode(const void *buf, size_t len, const MsgLimits *lim, Msg *out, char *err);

/* Check that a decoded score_rep answers the request (req_id, n, resp_lens, ref
 * log-probs present iff want_ref). Returns 0 or -1 with err. */
int msg_check_score_rep(const Msg *rep, uint64_t req_id, int want_ref,
                        const MsgBatch *req, char *err);

/* An upper bound on the encoded size of any message valid under lim (a receive-size cap). */
size_t msg_max_bytes(const MsgLimits *lim);

#endif
