/*
 * common/msg.c — encoding and validating the msgpack messages of msg.h.
 *
 * Encoding goes through msgpack-c's packer writing into a reusable MsgBuf. Decoding is in
 * three steps:
 *   1. msg_scan walks the raw bytes once with every length checked against the buffer
 *      and a cap on the number of objects, so that the exact failure (truncation at an
 *      offset, trailing bytes, a count larger than what is left) is reported, and so that
 *      a forged header claiming 4 billion elements cannot make msgpack-c allocate gigabytes;
 *   2. msgpack-c (msgpack_unpack into a zone reused across messages; str and bin objects
 *      point into the caller's buffer) builds the object tree;
 *   3. the tree is checked field by field against the per-type table and MsgLimits and
 *      copied into the Msg (bins converted from little-endian).
 * Does not: talk MPI, interpret scores, or accept anything not in msg.h's table.
 */
#include "msg.h"

#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#if !defined(__BYTE_ORDER__) || !defined(__ORDER_LITTLE_ENDIAN__)
#error "msg.c needs __BYTE_ORDER__ (gcc/clang) to know the host byte order"
#endif
#define HOST_IS_LE (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)

/* Our largest message (rollout + categories + a full extra map) has about 60 msgpack
 * objects; anything with more is not ours. Bounds what msgpack-c may allocate. */
#define MSG_MAX_OBJECTS 128
#define MSG_ZONE_CHUNK 8192

// ----------------------------------------------------------------------------------------
// MsgBuf

void msg_buf_init(MsgBuf *b) {
    b->data = NULL;
    b->len = b->cap = 0;
}

void msg_buf_free(MsgBuf *b) {
    if (!b) return;
    free(b->data);
    msg_buf_init(b);
}

void msg_buf_reserve(MsgBuf *b, size_t cap) {
    if (cap <= b->cap) return;
    size_t c = b->cap ? b->cap : 256;
    while (c < cap) c = c > SIZE_MAX / 2 ? cap : c * 2;
    b->data = xrealloc(b->data, c);
    b->cap = c;
}

/* msgpack_packer write callback: append to a MsgBuf. */
static int buf_write(void *data, const char *p, size_t n) {
    MsgBuf *b = data;
    if (n == 0) return 0;
    msg_buf_reserve(b, b->len + n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

// ----------------------------------------------------------------------------------------
// MsgBatch

void msg_batch_init(MsgBatch *b) { memset(b, 0, sizeof *b); }

void msg_batch_free(MsgBatch *b) {
    if (!b) return;
    free(b->prompt_ids);
    free(b->sample_ids);
    free(b->prompt_lens);
    free(b->resp_lens);
    free(b->categories);
    free(b->tok_off);
    free(b->resp_off);
    free(b->tokens);
    free(b->logprobs);
    free(b->ref_logprobs);
    free(b->scores);
    free(b->finished);
    for (int k = 0; k < MSG_MAX_EXTRA; k++) free(b->extra[k]);
    msg_batch_init(b);
}

void msg_batch_clear(MsgBatch *b) {
    b->n = 0;
    b->n_tokens = b->n_resp = 0;
    b->has_categories = b->has_ref = 0;
    b->n_extra = 0;
    if (b->tok_off) b->tok_off[0] = 0;
    if (b->resp_off) b->resp_off[0] = 0;
}

static size_t grow_to(size_t have, size_t want) {
    size_t c = have ? have : 16;
    while (c < want) c = c > SIZE_MAX / 4 ? want : c * 2;
    return c;
}

void msg_batch_reserve(MsgBatch *b, int n_seq, size_t n_tokens, size_t n_resp) {
    ASSERT(n_seq >= 0);
    if (n_seq > b->cap_seq || !b->tok_off) {
        size_t c = grow_to((size_t)b->cap_seq, (size_t)n_seq);
        ASSERT(c < (size_t)INT32_MAX);
        b->prompt_ids = xrealloc(b->prompt_ids, c * sizeof(uint64_t));
        b->sample_ids = xrealloc(b->sample_ids, c * sizeof(uint64_t));
        b->prompt_lens = xrealloc(b->prompt_lens, c * sizeof(int32_t));
        b->resp_lens = xrealloc(b->resp_lens, c * sizeof(int32_t));
        b->categories = xrealloc(b->categories, c * sizeof(int32_t));
        b->tok_off = xrealloc(b->tok_off, (c + 1) * sizeof(size_t));
        b->resp_off = xrealloc(b->resp_off, (c + 1) * sizeof(size_t));
        b->scores = xrealloc(b->scores, c * sizeof(float));
        b->finished = xrealloc(b->finished, c);
        for (int k = 0; k < MSG_MAX_EXTRA; k++)
            if (b->extra[k]) b->extra[k] = xrealloc(b->extra[k], c * sizeof(float));
        if (b->cap_seq == 0) b->tok_off[0] = b->resp_off[0] = 0;
        b->cap_seq = (int)c;
    }
    if (n_tokens > b->cap_tokens || !b->tokens) {
        size_t c = grow_to(b->cap_tokens, n_tokens);
        b->tokens = xrealloc(b->tokens, c * sizeof(int32_t));
        b->cap_tokens = c;
    }
    if (n_resp > b->cap_resp || !b->logprobs) {
        size_t c = grow_to(b->cap_resp, n_resp);
        b->logprobs = xrealloc(b->logprobs, c * sizeof(float));
        b->ref_logprobs = xrealloc(b->ref_logprobs, c * sizeof(float));
        b->cap_resp = c;
    }
}

int msg_batch_append_seq(MsgBatch *b, uint64_t prompt_id, uint64_t sample_id,
                         const int32_t *prompt, int prompt_len, const int32_t *resp,
                         int resp_len) {
    ASSERT(prompt_len >= 0 && resp_len >= 0);
    ASSERT(b->n < INT32_MAX - 1);
    size_t pl = (size_t)prompt_len, rl = (size_t)resp_len;
    msg_batch_reserve(b, b->n + 1, b->n_tokens + pl + rl, b->n_resp + rl);
    int i = b->n;
    b->prompt_ids[i] = prompt_id;
    b->sample_ids[i] = sample_id;
    b->prompt_lens[i] = prompt_len;
    b->resp_lens[i] = resp_len;
    b->categories[i] = 0;
    b->scores[i] = 0.0f;
    b->finished[i] = 0;
    for (int k = 0; k < b->n_extra; k++) b->extra[k][i] = 0.0f;
    if (pl) memcpy(b->tokens + b->n_tokens, prompt, pl * sizeof(int32_t));
    if (rl) memcpy(b->tokens + b->n_tokens + pl, resp, rl * sizeof(int32_t));
    for (size_t t = 0; t < rl; t++) b->logprobs[b->n_resp + t] = b->ref_logprobs[b->n_resp + t] = 0.0f;
    b->n_tokens += pl + rl;
    b->n_resp += rl;
    b->n = i + 1;
    b->tok_off[i + 1] = b->n_tokens;
    b->resp_off[i + 1] = b->n_resp;
    return i;
}

/* Extra-score names are short identifiers, so they can be printed and used as keys. */
static int extra_name_ok(const char *s, size_t n) {
    if (n == 0 || n >= MSG_NAME_LEN) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

const float *msg_batch_find_extra(const MsgBatch *b, const char *name) {
    for (int k = 0; k < b->n_extra; k++)
        if (strcmp(b->extra_names[k], name) == 0) return b->extra[k];
    return NULL;
}

float *msg_batch_extra(MsgBatch *b, const char *name) {
    for (int k = 0; k < b->n_extra; k++)
        if (strcmp(b->extra_names[k], name) == 0) return b->extra[k];
    ASSERT(extra_name_ok(name, strlen(name)));
    ASSERT(b->n_extra < MSG_MAX_EXTRA);
    msg_batch_reserve(b, b->n, b->n_tokens, b->n_resp);
    int k = b->n_extra++;
    if (!b->extra[k]) b->extra[k] = xmalloc((size_t)b->cap_seq * sizeof(float));
    snprintf(b->extra_names[k], MSG_NAME_LEN, "%s", name);
    for (int i = 0; i < b->n; i++) b->extra[k][i] = 0.0f;
    return b->extra[k];
}

// ----------------------------------------------------------------------------------------
// Msg

void msg_init(Msg *m) {
    memset(m, 0, sizeof *m);
    msg_batch_init(&m->batch);
}

void msg_free(Msg *m) {
    if (!m) return;
    msg_batch_free(&m->batch);
    if (m->zone_) msgpack_zone_free((msgpack_zone *)m->zone_);
    memset(m, 0, sizeof *m);
}

static const char *const type_names[MSG_TYPE_COUNT] = {
    [MSG_TYPE_NONE] = "none",           [MSG_TYPE_SCORE_REQ] = "score_req",
    [MSG_TYPE_SCORE_REP] = "score_rep", [MSG_TYPE_ROLLOUT] = "rollout",
    [MSG_TYPE_WEIGHTS] = "weights",     [MSG_TYPE_STOP] = "stop",
};

const char *msg_type_name(MsgType t) {
    if ((int)t <= (int)MSG_TYPE_NONE || (int)t >= (int)MSG_TYPE_COUNT) return "?";
    return type_names[t];
}

// ----------------------------------------------------------------------------------------
// Encoding

static void pack_key(msgpack_packer *pk, const char *k) {
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

/* n values of `width` bytes (4 or 8) as one bin, little-endian on the wire. */
static void pack_bin_le(msgpack_packer *pk, const void *a, size_t n, size_t width) {
    ASSERT(n <= UINT32_MAX / width);
    size_t bytes = n * width;
    msgpack_pack_bin(pk, bytes);
    if (bytes == 0) return;
    if (HOST_IS_LE) {
        msgpack_pack_bin_body(pk, a, bytes);
        return;
    }
    const uint8_t *p = a;
    for (size_t i = 0; i < n; i++) {
        uint8_t tmp[8];
        for (size_t j = 0; j < width; j++) tmp[j] = p[i * width + width - 1 - j];
        msgpack_pack_bin_body(pk, tmp, width);
    }
}

static void pack_header(msgpack_packer *pk, size_t nfields, MsgType t) {
    msgpack_pack_map(pk, nfields);
    pack_key(pk, "v");
    msgpack_pack_uint32(pk, MSG_VERSION);
    pack_key(pk, "type");
    const char *name = msg_type_name(t);
    msgpack_pack_str_with_body(pk, name, strlen(name));
}

static void begin(MsgBuf *buf, msgpack_packer *pk) {
    buf->len = 0;
    msgpack_packer_init(pk, buf, buf_write);
}

/* The batch must be what msg_batch_append_seq builds: offsets matching lengths. */
static void assert_batch(const MsgBatch *b, int need_tokens) {
    ASSERT(b->n >= 1 && b->tok_off && b->resp_off);
    ASSERT(b->tok_off[0] == 0 && b->resp_off[0] == 0);
    for (int i = 0; i < b->n; i++) {
        ASSERT(b->resp_lens[i] >= 0 && b->prompt_lens[i] >= 0);
        ASSERT(b->resp_off[i + 1] - b->resp_off[i] == (size_t)b->resp_lens[i]);
        if (need_tokens)
            ASSERT(b->tok_off[i + 1] - b->tok_off[i] ==
                   (size_t)b->prompt_lens[i] + (size_t)b->resp_lens[i]);
    }
    ASSERT(b->resp_off[b->n] == b->n_resp);
    if (need_tokens) ASSERT(b->tok_off[b->n] == b->n_tokens);
    ASSERT(b->n_extra >= 0 && b->n_extra <= MSG_MAX_EXTRA);
}

/* n, prompt_ids, sample_ids, prompt_lens, resp_lens, tokens [, categories] */
static size_t seq_fields(const MsgBatch *b) { return 6 + (b->has_categories ? 1 : 0); }

static void pack_seqs(msgpack_packer *pk, const MsgBatch *b) {
    size_t n = (size_t)b->n;
    pack_key(pk, "n");
    msgpack_pack_int32(pk, b->n);
    pack_key(pk, "prompt_ids");
    pack_bin_le(pk, b->prompt_ids, n, 8);
    pack_key(pk, "sample_ids");
    pack_bin_le(pk, b->sample_ids, n, 8);
    pack_key(pk, "prompt_lens");
    pack_bin_le(pk, b->prompt_lens, n, 4);
    pack_key(pk, "resp_lens");
    pack_bin_le(pk, b->resp_lens, n, 4);
    pack_key(pk, "tokens");
    pack_bin_le(pk, b->tokens, b->n_tokens, 4);
    if (b->has_categories) {
        pack_key(pk, "categories");
        pack_bin_le(pk, b->categories, n, 4);
    }
}

static void pack_extra(msgpack_packer *pk, const MsgBatch *b) {
    pack_key(pk, "extra");
    msgpack_pack_map(pk, (size_t)b->n_extra);
    for (int k = 0; k < b->n_extra; k++) {
        pack_key(pk, b->extra_names[k]);
        pack_bin_le(pk, b->extra[k], (size_t)b->n, 4);
    }
}

void msg_encode_score_req(MsgBuf *buf, uint64_t req_id, int64_t policy_version,
                          int want_ref, const MsgBatch *b) {
    ASSERT(policy_version >= 0);
    assert_batch(b, 1);
    msgpack_packer pk;
    begin(buf, &pk);
    pack_header(&pk, 5 + seq_fields(b), MSG_TYPE_SCORE_REQ);
    pack_key(&pk, "req_id");
    msgpack_pack_uint64(&pk, req_id);
    pack_key(&pk, "policy_version");
    msgpack_pack_int64(&pk, policy_version);
    pack_key(&pk, "want_ref");
    if (want_ref) msgpack_pack_true(&pk);
    else msgpack_pack_false(&pk);
    pack_seqs(&pk, b);
}

void msg_encode_score_rep(MsgBuf *buf, uint64_t req_id, const MsgBatch *b) {
    assert_batch(b, 0);
    msgpack_packer pk;
    begin(buf, &pk);
    pack_header(&pk, 6 + (b->has_ref ? 1 : 0) + (b->n_extra ? 1 : 0), MSG_TYPE_SCORE_REP);
    pack_key(&pk, "req_id");
    msgpack_pack_uint64(&pk, req_id);
    pack_key(&pk, "n");
    msgpack_pack_int32(&pk, b->n);
    pack_key(&pk, "resp_lens");
    pack_bin_le(&pk, b->resp_lens, (size_t)b->n, 4);
    pack_key(&pk, "scores");
    pack_bin_le(&pk, b->scores, (size_t)b->n, 4);
    if (b->has_ref) {
        pack_key(&pk, "ref_logprobs");
        pack_bin_le(&pk, b->ref_logprobs, b->n_resp, 4);
    }
    if (b->n_extra) pack_extra(&pk, b);
}

void msg_encode_rollout(MsgBuf *buf, int64_t policy_version, const MsgRolloutInfo *info,
                        const MsgBatch *b) {
    ASSERT(policy_version >= 0 && info->actor_rank >= 0 && info->micro_batch >= 0);
    assert_batch(b, 1);
    msgpack_packer pk;
    begin(buf, &pk);
    pack_header(&pk, 12 + (b->has_ref ? 1 : 0) + seq_fields(b) + (b->n_extra ? 1 : 0),
                MSG_TYPE_ROLLOUT);
    pack_key(&pk, "policy_version");
    msgpack_pack_int64(&pk, policy_version);
    pack_key(&pk, "actor_rank");
    msgpack_pack_int32(&pk, info->actor_rank);
    pack_key(&pk, "batch_id");
    msgpack_pack_uint64(&pk, info->batch_id);
    pack_key(&pk, "micro_batch");
    msgpack_pack_int32(&pk, info->micro_batch);
    pack_seqs(&pk, b);
    pack_key(&pk, "logprobs");
    pack_bin_le(&pk, b->logprobs, b->n_resp, 4);
    if (b->has_ref) {
        pack_key(&pk, "ref_logprobs");
        pack_bin_le(&pk, b->ref_logprobs, b->n_resp, 4);
    }
    pack_key(&pk, "scores");
    pack_bin_le(&pk, b->scores, (size_t)b->n, 4);
    pack_key(&pk, "finished");
    msgpack_pack_bin_with_body(&pk, b->finished, (size_t)b->n);
    pack_key(&pk, "t_generate");
    msgpack_pack_double(&pk, info->t_generate);
    pack_key(&pk, "t_score");
    msgpack_pack_double(&pk, info->t_score);
    pack_key(&pk, "t_total");
    msgpack_pack_double(&pk, info->t_total);
    if (b->n_extra) pack_extra(&pk, b);
}

void msg_encode_weights(MsgBuf *buf, int64_t policy_version, uint64_t nbytes,
                        uint32_t crc32, const char *format) {
    ASSERT(policy_version >= 0 && nbytes > 0);
    ASSERT(strcmp(format, MSG_WEIGHTS_FORMAT) == 0 || strcmp(format, MSG_WEIGHTS_FORMAT_PARAMS) == 0 ||
           strcmp(format, MSG_WEIGHTS_FORMAT_PARAMS_P2P) == 0 ||
           strcmp(format, MSG_WEIGHTS_FORMAT_LORA) == 0);
    msgpack_packer pk;
    begin(buf, &pk);
    pack_header(&pk, 6, MSG_TYPE_WEIGHTS);
    pack_key(&pk, "policy_version");
    msgpack_pack_int64(&pk, policy_version);
    pack_key(&pk, "nbytes");
    msgpack_pack_uint64(&pk, nbytes);
    pack_key(&pk, "crc32");
    msgpack_pack_uint32(&pk, crc32);
    pack_key(&pk, "format");
    pack_key(&pk, format);
}

void msg_encode_stop(MsgBuf *buf, const char *reason) {
    char r[MSG_REASON_LEN];
    size_t n = strlen(reason);
    if (n >= MSG_REASON_LEN) {
        n = MSG_REASON_LEN - 1;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80) n--; /* char boundary */
    }
    memcpy(r, reason, n);
    /* the receiver insists on UTF-8: replace whatever is not */
    size_t bad;
    while (!utf8_valid(r, n, &bad)) r[bad] = '?';
    msgpack_packer pk;
    begin(buf, &pk);
    pack_header(&pk, 3, MSG_TYPE_STOP);
    pack_key(&pk, "reason");
    msgpack_pack_str_with_body(&pk, r, n);
}

void msg_encode(MsgBuf *buf, const Msg *m) {
    switch (m->type) {
    case MSG_TYPE_SCORE_REQ:
        msg_encode_score_req(buf, m->req_id, m->policy_version, m->want_ref, &m->batch);
        return;
    case MSG_TYPE_SCORE_REP: msg_encode_score_rep(buf, m->req_id, &m->batch); return;
    case MSG_TYPE_ROLLOUT:
        msg_encode_rollout(buf, m->policy_version, &m->rollout, &m->batch);
        return;
    case MSG_TYPE_WEIGHTS:
        msg_encode_weights(buf, m->policy_version, m->nbytes, m->crc32, m->format);
        return;
    case MSG_TYPE_STOP: msg_encode_stop(buf, m->reason); return;
    default: fatal("msg_encode: message type %d cannot be encoded", (int)m->type);
    }
}

// ----------------------------------------------------------------------------------------
// Decoding, step 1: a bounds-checked walk over the raw msgpack bytes.

static uint64_t read_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Check that buf holds exactly one msgpack object with at most MSG_MAX_OBJECTS objects
 * in all, every length inside the buffer. Returns 0 or -1 with err. */
static int msg_scan(const uint8_t *p, size_t len, char *err) {
    size_t off = 0;
    uint64_t pending = 1; /* objects still to read */
    int objects = 0;
    if (len == 0) return errf(err, "msg: empty message (0 bytes)");
    while (pending > 0) {
        if (off >= len)
            return errf(err,
                        "msg: truncated message: %zu bytes end with %llu msgpack object(s) "
                        "still to come",
                        len, (unsigned long long)pending);
        uint8_t t = p[off];
        size_t hdr = 1;   /* type byte + length bytes */
        int lenbytes = 0; /* big-endian length field after the type byte */
        uint64_t body = 0, children = 0;
        int kind = 0; /* 0 scalar, 1 str/bin/ext (body = length), 2 array, 3 map */
        if (t <= 0x7f || t >= 0xe0) {
        } else if (t <= 0x8f) {
            children = 2u * (t & 0x0fu);
        } else if (t <= 0x9f) {
            children = t & 0x0fu;
        } else if (t <= 0xbf) {
            body = t & 0x1fu;
        } else {
            switch (t) {
            case 0xc0: case 0xc2: case 0xc3: break;               /* nil, false, true */
            case 0xc4: case 0xd9: lenbytes = 1; kind = 1; break;  /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; kind = 1; break;  /* bin16, str16 */
            case 0xc6: case 0xdb: lenbytes = 4; kind = 1; break;  /* bin32, str32 */
            case 0xc7: lenbytes = 1; kind = 1; body = 1; break;   /* ext8: + type byte */
            case 0xc8: lenbytes = 2; kind = 1; body = 1; break;
            case 0xc9: lenbytes = 4; kind = 1; body = 1; break;
            case 0xca: body = 4; break;                           /* float32 */
            case 0xcb: body = 8; break;                           /* float64 */
            case 0xcc: case 0xd0: body = 1; break;                /* (u)int8 */
            case 0xcd: case 0xd1: body = 2; break;
            case 0xce: case 0xd2: body = 4; break;
            case 0xcf: case 0xd3: body = 8; break;
            case 0xd4: body = 2; break;                           /* fixext1: type + 1 */
            case 0xd5: body = 3; break;
            case 0xd6: body = 5; break;
            case 0xd7: body = 9; break;
            case 0xd8: body = 17; break;
            case 0xdc: lenbytes = 2; kind = 2; break;             /* array16 */
            case 0xdd: lenbytes = 4; kind = 2; break;
            case 0xde: lenbytes = 2; kind = 3; break;             /* map16 */
            case 0xdf: lenbytes = 4; kind = 3; break;
            default:
                return errf(err, "msg: byte 0x%02x at offset %zu is not a msgpack type", t,
                            off);
            }
        }
        hdr += (size_t)lenbytes;
        if (len - off < hdr)
            return errf(err,
                        "msg: truncated message: the msgpack header at offset %zu needs %zu "
                        "bytes, only %zu left",
                        off, hdr, len - off);
        if (lenbytes) {
            uint64_t l = read_be(p + off + 1, lenbytes);
            if (kind == 1) body += l;
            else if (kind == 2) children = l;
            else children = 2 * l;
        }
        if (++objects > MSG_MAX_OBJECTS)
            return errf(err, "msg: more than %d msgpack objects: not an rlhf-c message",
                        MSG_MAX_OBJECTS);
        size_t left = len - off - hdr;
        if (body > left)
            return errf(err,
                        "msg: truncated message: the value at offset %zu says %llu bytes "
                        "follow, only %zu left",
                        off, (unsigned long long)body, left);
        off += hdr + (size_t)body;
        pending = pending - 1 + children;
        /* every pending object needs at least one byte */
        if (pending > len - off)
            return errf(err,
                        "msg: truncated message of %zu bytes: %llu more msgpack objects "
                        "expected after offset %zu, only %zu bytes left",
                        len, (unsigned long long)pending, off, len - off);
    }
    if (off != len)
        return errf(err, "msg: %zu trailing bytes after the message end at offset %zu",
                    len - off, off);
    return 0;
}

// ----------------------------------------------------------------------------------------
// Decoding, step 3: field tables and typed getters over the msgpack object tree.

enum {
    K_V, K_TYPE, K_REQ_ID, K_POLICY_VERSION, K_WANT_REF, K_N, K_PROMPT_IDS, K_SAMPLE_IDS,
    K_PROMPT_LENS, K_RESP_LENS, K_TOKENS, K_CATEGORIES, K_SCORES, K_LOGPROBS,
    K_REF_LOGPROBS, K_FINISHED, K_EXTRA, K_ACTOR_RANK, K_BATCH_ID, K_MICRO_BATCH,
    K_T_GENERATE, K_T_SCORE, K_T_TOTAL, K_NBYTES, K_CRC32, K_FORMAT, K_REASON, K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "v", "type", "req_id", "policy_version", "want_ref", "n", "prompt_ids", "sample_ids",
    "prompt_lens", "resp_lens", "tokens", "categories", "scores", "logprobs",
    "ref_logprobs", "finished", "extra", "actor_rank", "batch_id", "micro_batch",
    "t_generate", "t_score", "t_total", "nbytes", "crc32", "format", "reason",
};

#define B(k) (1u << (k))
#define SEQ_KEYS                                                                          \
    (B(K_N) | B(K_PROMPT_IDS) | B(K_SAMPLE_IDS) | B(K_PROMPT_LENS) | B(K_RESP_LENS) |     \
     B(K_TOKENS))

/* required and optional keys of each type */
static const uint32_t keys_required[MSG_TYPE_COUNT] = {
    [MSG_TYPE_SCORE_REQ] = B(K_V) | B(K_TYPE) | B(K_REQ_ID) | B(K_POLICY_VERSION) |
                           B(K_WANT_REF) | SEQ_KEYS,
    [MSG_TYPE_SCORE_REP] = B(K_V) | B(K_TYPE) | B(K_REQ_ID) | B(K_N) | B(K_RESP_LENS) |
                           B(K_SCORES),
    [MSG_TYPE_ROLLOUT] = B(K_V) | B(K_TYPE) | B(K_POLICY_VERSION) | B(K_ACTOR_RANK) |
                         B(K_BATCH_ID) | B(K_MICRO_BATCH) | SEQ_KEYS | B(K_LOGPROBS) |
                         B(K_SCORES) | B(K_FINISHED) | B(K_T_GENERATE) | B(K_T_SCORE) |
                         B(K_T_TOTAL),
    [MSG_TYPE_WEIGHTS] = B(K_V) | B(K_TYPE) | B(K_POLICY_VERSION) | B(K_NBYTES) |
                         B(K_CRC32) | B(K_FORMAT),
    [MSG_TYPE_STOP] = B(K_V) | B(K_TYPE) | B(K_REASON),
};
static const uint32_t keys_optional[MSG_TYPE_COUNT] = {
    [MSG_TYPE_SCORE_REQ] = B(K_CATEGORIES),
    [MSG_TYPE_SCORE_REP] = B(K_REF_LOGPROBS) | B(K_EXTRA),
    [MSG_TYPE_ROLLOUT] = B(K_REF_LOGPROBS) | B(K_CATEGORIES) | B(K_EXTRA),
};

typedef struct {
    const char *type;          /* for error messages */
    const msgpack_object *f[K_COUNT];
    const MsgLimits *lim;
    char *err;
} Dec;

static const char *obj_kind(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "int";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "negative int";
    case MSGPACK_OBJECT_FLOAT32: return "float32";
    case MSGPACK_OBJECT_FLOAT64: return "float64";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "unknown";
}

static int dec_err(Dec *d, int k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int dec_err(Dec *d, int k, const char *fmt, ...) {
    char what[ERRBUF_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return errf(d->err, "msg: %s field '%s': %s", d->type, key_names[k], what);
}

static int get_bool(Dec *d, int k, int *out) {
    const msgpack_object *o = d->f[k];
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return dec_err(d, k, "expected bool, got %s", obj_kind(o));
    *out = o->via.boolean ? 1 : 0;
    return 0;
}

/* An integer in [lo, hi] (as int64). */
static int get_int(Dec *d, int k, int64_t lo, int64_t hi, int64_t *out) {
    const msgpack_object *o = d->f[k];
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)hi)
            return dec_err(d, k, "%llu is above the maximum %lld",
                           (unsigned long long)o->via.u64, (long long)hi);
        *out = (int64_t)o->via.u64;
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
    } else {
        return dec_err(d, k, "expected an integer, got %s", obj_kind(o));
    }
    if (*out < lo) return dec_err(d, k, "%lld is below the minimum %lld", (long long)*out, (long long)lo);
    if (*out > hi) return dec_err(d, k, "%lld is above the maximum %lld", (long long)*out, (long long)hi);
    return 0;
}

/* An unsigned integer in [lo, hi]. */
static int get_uint(Dec *d, int k, uint64_t lo, uint64_t hi, uint64_t *out) {
    const msgpack_object *o = d->f[k];
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return dec_err(d, k, "%lld is negative", (long long)o->via.i64);
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return dec_err(d, k, "expected an unsigned integer, got %s", obj_kind(o));
    *out = o->via.u64;
    if (*out < lo || *out > hi)
        return dec_err(d, k, "%llu is outside [%llu, %llu]", (unsigned long long)*out,
                       (unsigned long long)lo, (unsigned long long)hi);
    return 0;
}

/* A finite number >= lo (floats or integers). */
static int get_real(Dec *d, int k, double lo, double *out) {
    const msgpack_object *o = d->f[k];
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *out = o->via.f64; break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; break;
    default: return dec_err(d, k, "expected a number, got %s", obj_kind(o));
    }
    if (!isfinite(*out)) return dec_err(d, k, "%g is not finite", *out);
    if (*out < lo) return dec_err(d, k, "%g is below the minimum %g", *out, lo);
    return 0;
}

static int get_str(Dec *d, int k, const char **p, size_t *n) {
    const msgpack_object *o = d->f[k];
    if (o->type != MSGPACK_OBJECT_STR) return dec_err(d, k, "expected str, got %s", obj_kind(o));
    *p = o->via.str.ptr;
    *n = o->via.str.size;
    return 0;
}

/* A bin of exactly `bytes` bytes; `what` says where the expected size comes from. */
static int get_bin(Dec *d, int k, size_t bytes, const char *what, const uint8_t **p) {
    const msgpack_object *o = d->f[k];
    if (o->type != MSGPACK_OBJECT_BIN) return dec_err(d, k, "expected bin, got %s", obj_kind(o));
    if ((size_t)o->via.bin.size != bytes)
        return dec_err(d, k, "bin of %u bytes, expected %zu (%s)", o->via.bin.size, bytes,
                       what);
    *p = (const uint8_t *)o->via.bin.ptr;
    return 0;
}

/* little-endian wire -> host */
static void copy_le(void *dst, const uint8_t *src, size_t n, size_t width) {
    if (n == 0) return;
    if (HOST_IS_LE) {
        memcpy(dst, src, n * width);
        return;
    }
    uint8_t *q = dst;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < width; j++) q[i * width + j] = src[i * width + width - 1 - j];
}

/* A bin of n float32 into dst; every value finite, and <= hi. */
static int get_floats(Dec *d, int k, size_t n, const char *what, float hi, float *dst) {
    const uint8_t *p = NULL;
    if (get_bin(d, k, n * 4, what, &p)) return -1;
    copy_le(dst, p, n, 4);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(dst[i])) return dec_err(d, k, "value [%zu] is %g, not finite", i, dst[i]);
        if (dst[i] > hi) return dec_err(d, k, "value [%zu] = %g is above %g", i, dst[i], hi);
    }
    return 0;
}

/* n and the per-sequence response lengths (all batch types). */
static int dec_n_resp(Dec *d, MsgBatch *b) {
    int64_t n;
    if (get_int(d, K_N, 1, INT32_MAX - 1, &n)) return -1;
    if (n > d->lim->max_batch)
        return dec_err(d, K_N, "%lld sequences, above this receiver's max_batch %d",
                       (long long)n, d->lim->max_batch);
    msg_batch_reserve(b, (int)n, 0, 0);
    b->n = (int)n;
    const uint8_t *p = NULL;
    if (get_bin(d, K_RESP_LENS, (size_t)n * 4, "n x i32", &p)) return -1;
    copy_le(b->resp_lens, p, (size_t)n, 4);
    b->resp_off[0] = 0;
    for (int i = 0; i < b->n; i++) {
        if (b->resp_lens[i] < 0 || b->resp_lens[i] > d->lim->max_seq_len)
            return dec_err(d, K_RESP_LENS, "sequence %d: response length %d outside 0..%d "
                           "(max_seq_len)", i, b->resp_lens[i], d->lim->max_seq_len);
        b->resp_off[i + 1] = b->resp_off[i] + (size_t)b->resp_lens[i];
    }
    b->n_resp = b->resp_off[b->n];
    return 0;
}

/* The sequences of a score_req / rollout: ids, lengths, tokens, categories. */
static int dec_seqs(Dec *d, MsgBatch *b) {
    if (dec_n_resp(d, b)) return -1;
    size_t n = (size_t)b->n;
    const uint8_t *p = NULL;
    if (get_bin(d, K_PROMPT_LENS, n * 4, "n x i32", &p)) return -1;
    copy_le(b->prompt_lens, p, n, 4);
    b->tok_off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t pl = b->prompt_lens[i], rl = b->resp_lens[i];
        if (pl < 1 || pl > d->lim->max_seq_len || pl + rl > d->lim->max_seq_len)
            return dec_err(d, K_PROMPT_LENS,
                           "sequence %zu: prompt length %d + response length %d: need "
                           "prompt >= 1 and a total <= max_seq_len %d",
                           i, pl, rl, d->lim->max_seq_len);
        b->tok_off[i + 1] = b->tok_off[i] + (size_t)pl + (size_t)rl;
    }
    b->n_tokens = b->tok_off[n];
    msg_batch_reserve(b, b->n, b->n_tokens, b->n_resp);
    if (get_bin(d, K_PROMPT_IDS, n * 8, "n x u64", &p)) return -1;
    copy_le(b->prompt_ids, p, n, 8);
    if (get_bin(d, K_SAMPLE_IDS, n * 8, "n x u64", &p)) return -1;
    copy_le(b->sample_ids, p, n, 8);
    if (get_bin(d, K_TOKENS, b->n_tokens * 4, "4 bytes x sum(prompt_lens + resp_lens)", &p))
        return -1;
    copy_le(b->tokens, p, b->n_tokens, 4);
    for (size_t i = 0; i < n; i++)
        for (size_t t = b->tok_off[i]; t < b->tok_off[i + 1]; t++)
            if (b->tokens[t] < 0 || b->tokens[t] >= d->lim->vocab_size)
                return dec_err(d, K_TOKENS,
                               "sequence %zu position %zu: token id %d outside 0..%d "
                               "(vocab_size %d)",
                               i, t - b->tok_off[i], b->tokens[t], d->lim->vocab_size - 1,
                               d->lim->vocab_size);
    if (d->f[K_CATEGORIES]) {
        if (get_bin(d, K_CATEGORIES, n * 4, "n x i32", &p)) return -1;
        copy_le(b->categories, p, n, 4);
        for (size_t i = 0; i < n; i++)
            if (b->categories[i] < 0)
                return dec_err(d, K_CATEGORIES, "sequence %zu: category %d is negative", i,
                               b->categories[i]);
        b->has_categories = 1;
    }
    return 0;
}

static int dec_extra(Dec *d, MsgBatch *b) {
    const msgpack_object *o = d->f[K_EXTRA];
    if (!o) return 0;
    if (o->type != MSGPACK_OBJECT_MAP) return dec_err(d, K_EXTRA, "expected map, got %s", obj_kind(o));
    if (o->via.map.size > MSG_MAX_EXTRA)
        return dec_err(d, K_EXTRA, "%u entries, at most %d", o->via.map.size, MSG_MAX_EXTRA);
    for (uint32_t j = 0; j < o->via.map.size; j++) {
        const msgpack_object *key = &o->via.map.ptr[j].key, *val = &o->via.map.ptr[j].val;
        if (key->type != MSGPACK_OBJECT_STR)
            return dec_err(d, K_EXTRA, "key %u is %s, expected str", j, obj_kind(key));
        if (!extra_name_ok(key->via.str.ptr, key->via.str.size))
            return dec_err(d, K_EXTRA, "key %u is not a name of 1..%d characters [A-Za-z0-9_.-]",
                           j, MSG_NAME_LEN - 1);
        char name[MSG_NAME_LEN];
        memcpy(name, key->via.str.ptr, key->via.str.size);
        name[key->via.str.size] = '\0';
        if (msg_batch_find_extra(b, name))
            return dec_err(d, K_EXTRA, "name '%s' given twice", name);
        if (val->type != MSGPACK_OBJECT_BIN || val->via.bin.size != (uint32_t)b->n * 4u)
            return dec_err(d, K_EXTRA, "'%s' must be a bin of n x 4 = %d bytes", name, b->n * 4);
        float *dst = msg_batch_extra(b, name);
        copy_le(dst, (const uint8_t *)val->via.bin.ptr, (size_t)b->n, 4);
        for (int i = 0; i < b->n; i++)
            if (!isfinite(dst[i]))
                return dec_err(d, K_EXTRA, "'%s'[%d] is %g, not finite", name, i, dst[i]);
    }
    return 0;
}

static int dec_score_req(Dec *d, Msg *m) {
    int64_t pv;
    if (get_uint(d, K_REQ_ID, 0, UINT64_MAX, &m->req_id)) return -1;
    if (get_int(d, K_POLICY_VERSION, 0, INT64_MAX, &pv)) return -1;
    m->policy_version = pv;
    if (get_bool(d, K_WANT_REF, &m->want_ref)) return -1;
    MsgBatch *b = &m->batch;
    if (dec_seqs(d, b)) return -1;
    /* the values a request does not carry start at 0, as after msg_batch_append_seq, so
     * a reward server can fill this batch in and send it back as the reply */
    memset(b->scores, 0, (size_t)b->n * sizeof(float));
    memset(b->finished, 0, (size_t)b->n);
    if (b->n_resp) {
        memset(b->logprobs, 0, b->n_resp * sizeof(float));
        memset(b->ref_logprobs, 0, b->n_resp * sizeof(float));
    }
    return 0;
}

static int dec_score_rep(Dec *d, Msg *m) {
    MsgBatch *b = &m->batch;
    if (get_uint(d, K_REQ_ID, 0, UINT64_MAX, &m->req_id)) return -1;
    if (dec_n_resp(d, b)) return -1;
    /* a reply carries no prompts or tokens: keep the batch's offsets consistent */
    for (int i = 0; i < b->n; i++) {
        b->prompt_lens[i] = 0;
        b->tok_off[i + 1] = 0;
        b->prompt_ids[i] = b->sample_ids[i] = 0;
        b->finished[i] = 0;
    }
    b->n_tokens = 0;
    msg_batch_reserve(b, b->n, 0, b->n_resp);
    if (get_floats(d, K_SCORES, (size_t)b->n, "n x f32", INFINITY, b->scores)) return -1;
    if (b->n_resp) {
        memset(b->logprobs, 0, b->n_resp * sizeof(float));
        memset(b->ref_logprobs, 0, b->n_resp * sizeof(float));
    }
    if (d->f[K_REF_LOGPROBS]) {
        if (get_floats(d, K_REF_LOGPROBS, b->n_resp, "4 bytes x sum(resp_lens)", 0.0f,
                       b->ref_logprobs))
            return -1;
        b->has_ref = 1;
    }
    return dec_extra(d, b);
}

static int dec_rollout(Dec *d, Msg *m) {
    MsgBatch *b = &m->batch;
    int64_t v;
    uint64_t u;
    if (get_int(d, K_POLICY_VERSION, 0, INT64_MAX, &v)) return -1;
    m->policy_version = v;
    if (get_int(d, K_ACTOR_RANK, 0, INT32_MAX, &v)) return -1;
    m->rollout.actor_rank = (int32_t)v;
    if (get_uint(d, K_BATCH_ID, 0, UINT64_MAX, &u)) return -1;
    m->rollout.batch_id = u;
    if (get_int(d, K_MICRO_BATCH, 0, INT32_MAX, &v)) return -1;
    m->rollout.micro_batch = (int32_t)v;
    if (get_real(d, K_T_GENERATE, 0.0, &m->rollout.t_generate)) return -1;
    if (get_real(d, K_T_SCORE, 0.0, &m->rollout.t_score)) return -1;
    if (get_real(d, K_T_TOTAL, 0.0, &m->rollout.t_total)) return -1;
    if (dec_seqs(d, b)) return -1;
    const char *per_tok = "4 bytes x sum(resp_lens)";
    if (get_floats(d, K_LOGPROBS, b->n_resp, per_tok, 0.0f, b->logprobs)) return -1;
    /* absent when the learner computes the reference log-probs itself: zeros */
    b->has_ref = d->f[K_REF_LOGPROBS] != NULL;
    if (b->has_ref) {
        if (get_floats(d, K_REF_LOGPROBS, b->n_resp, per_tok, 0.0f, b->ref_logprobs)) return -1;
    } else if (b->n_resp) {
        memset(b->ref_logprobs, 0, b->n_resp * sizeof(float));
    }
    if (get_floats(d, K_SCORES, (size_t)b->n, "n x f32", INFINITY, b->scores)) return -1;
    const uint8_t *p = NULL;
    if (get_bin(d, K_FINISHED, (size_t)b->n, "n x u8", &p)) return -1;
    for (int i = 0; i < b->n; i++) {
        if (p[i] > 1) return dec_err(d, K_FINISHED, "value [%d] = %u, expected 0 or 1", i, p[i]);
        b->finished[i] = p[i];
    }
    return dec_extra(d, b);
}

static int dec_weights(Dec *d, Msg *m) {
    int64_t v;
    uint64_t u;
    const char *s = NULL;
    size_t n = 0;
    if (get_int(d, K_POLICY_VERSION, 0, INT64_MAX, &v)) return -1;
    m->policy_version = v;
    if (get_uint(d, K_NBYTES, 1, UINT64_MAX, &m->nbytes)) return -1;
    if (get_uint(d, K_CRC32, 0, UINT32_MAX, &u)) return -1;
    m->crc32 = (uint32_t)u;
    if (get_str(d, K_FORMAT, &s, &n)) return -1;
    static const char *formats[] = {MSG_WEIGHTS_FORMAT, MSG_WEIGHTS_FORMAT_PARAMS,
                                    MSG_WEIGHTS_FORMAT_PARAMS_P2P, MSG_WEIGHTS_FORMAT_LORA};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (n == strlen(formats[i]) && memcmp(s, formats[i], n) == 0) {
            snprintf(m->format, sizeof m->format, "%s", formats[i]);
            return 0;
        }
    return dec_err(d, K_FORMAT, "expected \"%s\", \"%s\", \"%s\" or \"%s\" (%zu bytes given)",
                   MSG_WEIGHTS_FORMAT, MSG_WEIGHTS_FORMAT_PARAMS, MSG_WEIGHTS_FORMAT_PARAMS_P2P,
                   MSG_WEIGHTS_FORMAT_LORA, n);
}

static int dec_stop(Dec *d, Msg *m) {
    const char *s = NULL;
    size_t n = 0, bad = 0;
    if (get_str(d, K_REASON, &s, &n)) return -1;
    if (n >= MSG_REASON_LEN) return dec_err(d, K_REASON, "%zu bytes, at most %d", n, MSG_REASON_LEN - 1);
    if (memchr(s, '\0', n)) return dec_err(d, K_REASON, "contains a NUL byte");
    if (!utf8_valid(s, n, &bad)) return dec_err(d, K_REASON, "invalid UTF-8 at byte %zu", bad);
    memcpy(m->reason, s, n);
    m->reason[n] = '\0';
    return 0;
}

/* Forget the previous message but keep the batch's memory and the zone. */
static void msg_reset(Msg *m) {
    MsgBatch b = m->batch;
    void *zone = m->zone_;
    memset(m, 0, sizeof *m);
    m->batch = b;
    m->zone_ = zone;
    msg_batch_clear(&m->batch);
}

int msg_decode(const void *buf, size_t len, const MsgLimits *lim, Msg *out, char *err) {
    ASSERT(lim && lim->vocab_size > 0 && lim->max_seq_len > 0 && lim->max_batch > 0);
    msg_reset(out);
    if (!buf && len) return errf(err, "msg: NULL buffer");
    if (msg_scan(buf, len, err)) return -1;

    if (!out->zone_) {
        out->zone_ = msgpack_zone_new(MSG_ZONE_CHUNK);
        if (!out->zone_) fatal("out of memory creating a msgpack zone");
    }
    msgpack_zone *zone = out->zone_;
    msgpack_zone_clear(zone);
    msgpack_object root;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack(buf, len, &off, zone, &root);
    if (r != MSGPACK_UNPACK_SUCCESS)
        return errf(err, "msg: msgpack-c cannot parse the message (code %d)", (int)r);
    if (root.type != MSGPACK_OBJECT_MAP)
        return errf(err, "msg: a message must be a msgpack map, got %s", obj_kind(&root));

    Dec d = {.type = "message", .lim = lim, .err = err};
    const msgpack_object_map *map = &root.via.map;
    /* every key is a str naming a known field, given once */
    uint32_t seen = 0;
    for (uint32_t j = 0; j < map->size; j++) {
        const msgpack_object *key = &map->ptr[j].key;
        if (key->type != MSGPACK_OBJECT_STR)
            return errf(err, "msg: key %u of the message map is %s, expected str", j,
                        obj_kind(key));
        int k = 0;
        while (k < K_COUNT && (strlen(key_names[k]) != key->via.str.size ||
                               memcmp(key_names[k], key->via.str.ptr, key->via.str.size)))
            k++;
        if (k == K_COUNT) {
            char shown[40];
            size_t n = key->via.str.size < 32 ? key->via.str.size : 32;
            for (size_t i = 0; i < n; i++) {
                char c = key->via.str.ptr[i];
                shown[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
            }
            shown[n] = '\0';
            return errf(err, "msg: unknown field '%s%s'", shown, n < key->via.str.size ? "..." : "");
        }
        if (seen & B(k)) return errf(err, "msg: field '%s' given twice", key_names[k]);
        seen |= B(k);
        d.f[k] = &map->ptr[j].val;
    }
    /* version first: a peer from another build gets told so, whatever else differs */
    if (!d.f[K_V]) return errf(err, "msg: no schema version field 'v'");
    uint64_t v;
    if (get_uint(&d, K_V, 0, UINT64_MAX, &v)) return -1;
    if (v != MSG_VERSION)
        return errf(err,
                    "msg: schema version %llu, but this build speaks version %d: run the same "
                    "rlhf-c build on every rank",
                    (unsigned long long)v, MSG_VERSION);
    if (!d.f[K_TYPE]) return errf(err, "msg: no message 'type' field");
    const char *ts = NULL;
    size_t tn = 0;
    if (get_str(&d, K_TYPE, &ts, &tn)) return -1;
    MsgType t = MSG_TYPE_NONE;
    for (int i = MSG_TYPE_NONE + 1; i < MSG_TYPE_COUNT; i++)
        if (strlen(type_names[i]) == tn && memcmp(type_names[i], ts, tn) == 0) t = (MsgType)i;
    if (t == MSG_TYPE_NONE) {
        char shown[40];
        size_t n = tn < 32 ? tn : 32;
        for (size_t i = 0; i < n; i++) shown[i] = (ts[i] >= 0x20 && ts[i] < 0x7f) ? ts[i] : '?';
        shown[n] = '\0';
        return errf(err,
                    "msg: unknown message type '%s' (expected score_req, score_rep, rollout, "
                    "weights or stop)",
                    shown);
    }
    d.type = type_names[t];
    uint32_t allowed = keys_required[t] | keys_optional[t];
    for (int k = 0; k < K_COUNT; k++) {
        if ((seen & B(k)) && !(allowed & B(k)))
            return errf(err, "msg: %s: field '%s' does not belong in this message type",
                        d.type, key_names[k]);
        if ((keys_required[t] & B(k)) && !(seen & B(k)))
            return errf(err, "msg: %s: required field '%s' is missing", d.type, key_names[k]);
    }
    out->type = t;
    int rc = -1;
    switch (t) {
    case MSG_TYPE_SCORE_REQ: rc = dec_score_req(&d, out); break;
    case MSG_TYPE_SCORE_REP: rc = dec_score_rep(&d, out); break;
    case MSG_TYPE_ROLLOUT: rc = dec_rollout(&d, out); break;
    case MSG_TYPE_WEIGHTS: rc = dec_weights(&d, out); break;
    case MSG_TYPE_STOP: rc = dec_stop(&d, out); break;
    default: break;
    }
    if (rc) out->type = MSG_TYPE_NONE;
    return rc;
}

int msg_check_score_rep(const Msg *rep, uint64_t req_id, int want_ref, const MsgBatch *req,
                        char *err) {
    if (rep->type != MSG_TYPE_SCORE_REP)
        return errf(err, "msg: expected a score_rep, got %s", msg_type_name(rep->type));
    if (rep->req_id != req_id)
        return errf(err, "msg: score_rep answers request %llu, expected %llu",
                    (unsigned long long)rep->req_id, (unsigned long long)req_id);
    if (rep->batch.n != req->n)
        return errf(err, "msg: score_rep for request %llu has %d scores, the request had %d "
                    "sequences", (unsigned long long)req_id, rep->batch.n, req->n);
    for (int i = 0; i < req->n; i++)
        if (rep->batch.resp_lens[i] != req->resp_lens[i])
            return errf(err, "msg: score_rep for request %llu: sequence %d has response "
                        "length %d, the request had %d", (unsigned long long)req_id, i,
                        rep->batch.resp_lens[i], req->resp_lens[i]);
    if (!!rep->batch.has_ref != !!want_ref)
        return errf(err, "msg: score_rep for request %llu %s reference log-probs but the "
                    "request %s them", (unsigned long long)req_id,
                    rep->batch.has_ref ? "carries" : "lacks",
                    want_ref ? "asked for" : "did not ask for");
    return 0;
}

size_t msg_max_bytes(const MsgLimits *lim) {
    /* per sequence: ids 16, lengths 8, category 4, score 4, finished 1, extras 4 each;
     * per token: 4 (tokens) + 8 (two log-prob arrays) at most; plus keys, scalars, bin
     * headers and a stop reason, well under 4 KiB */
    size_t per_seq = 33 + 4 * MSG_MAX_EXTRA + 12 * (size_t)lim->max_seq_len;
    return 4096 + (size_t)lim->max_batch * per_seq;
}
