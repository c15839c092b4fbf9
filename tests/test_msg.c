/*
 * tests/test_msg.c — the msgpack wire format (common/msg.c).
 *
 * Checks: every message type round-trips bit-exactly (decoded fields equal the encoded
 * ones, and re-encoding the decoded message gives the same bytes); the decoder rejects,
 * with an error naming the field, every hand-corrupted variant of valid messages —
 * truncation at every byte offset (into exactly-sized heap buffers, so ASan sees any
 * over-read), trailing bytes, each field replaced by every wrong msgpack type, each field
 * dropped / duplicated, bins one element short or long, forged lengths far beyond the
 * buffer, token ids outside the vocabulary, lengths above the model limits, NaN scores,
 * positive log-probs, a wrong schema version, an unknown type — and survives 100k random
 * byte strings and 100k random mutations of valid messages from a seeded RNG. Also
 * msg_max_bytes, msg_check_score_rep, and that steady-state decoding reuses memory.
 */
#include <msgpack.h>
#include <stdint.h>

#include "msg.h"
#include "rng.h"
#include "test.h"
#include "util.h"

static const MsgLimits LIM = {.vocab_size = 300, .max_seq_len = 40, .max_batch = 16};

/* A random batch within LIM: n sequences with prompt >= 1 and total <= max_seq_len. */
static void make_batch(MsgBatch *b, Rng *r, int n, int with_cat, int with_ref, int n_extra) {
    msg_batch_clear(b);
    int32_t prompt[64], resp[64];
    static const char *const extra_names[] = {"gold", "rule.len", "judge-2", "x"};
    for (int k = 0; k < n_extra; k++) msg_batch_extra(b, extra_names[k]);
    for (int i = 0; i < n; i++) {
        int pl = 1 + (int)rng_below(r, 20);
        int rl = (int)rng_below(r, (uint64_t)(LIM.max_seq_len - pl + 1));
        for (int t = 0; t < pl; t++) prompt[t] = (int32_t)rng_below(r, (uint64_t)LIM.vocab_size);
        for (int t = 0; t < rl; t++) resp[t] = (int32_t)rng_below(r, (uint64_t)LIM.vocab_size);
        int s = msg_batch_append_seq(b, rng_next_u64(r), rng_below(r, 8), prompt, pl, resp, rl);
        CHECK_EQ_INT(s, i);
        float *lp = b->logprobs + b->resp_off[s], *ref = b->ref_logprobs + b->resp_off[s];
        for (int t = 0; t < rl; t++) {
            lp[t] = -10.0f * rng_uniform(r);
            ref[t] = -10.0f * rng_uniform(r);
        }
        b->scores[s] = rng_normal(r);
        b->finished[s] = (uint8_t)rng_below(r, 2);
        b->categories[s] = (int32_t)rng_below(r, 5);
        for (int k = 0; k < n_extra; k++) b->extra[k][s] = rng_normal(r);
    }
    b->has_categories = with_cat;
    b->has_ref = with_ref;
}

/* Field-by-field equality of two batches for the arrays a message type carries. */
static void check_batch_equal(const MsgBatch *a, const MsgBatch *b, int tokens, int lp,
                              int ref, int scores) {
    CHECK_EQ_INT(a->n, b->n);
    if (a->n != b->n) return;
    size_t n = (size_t)a->n;
    CHECK_EQ_INT(a->n_resp, b->n_resp);
    CHECK(memcmp(a->resp_lens, b->resp_lens, n * 4) == 0);
    CHECK(memcmp(a->resp_off, b->resp_off, (n + 1) * sizeof(size_t)) == 0);
    if (scores) CHECK(memcmp(a->scores, b->scores, n * 4) == 0);
    if (tokens) {
        CHECK_EQ_INT(a->n_tokens, b->n_tokens);
        CHECK(memcmp(a->prompt_lens, b->prompt_lens, n * 4) == 0);
        CHECK(memcmp(a->prompt_ids, b->prompt_ids, n * 8) == 0);
        CHECK(memcmp(a->sample_ids, b->sample_ids, n * 8) == 0);
        CHECK(memcmp(a->tok_off, b->tok_off, (n + 1) * sizeof(size_t)) == 0);
        if (a->n_tokens == b->n_tokens)
            CHECK(memcmp(a->tokens, b->tokens, a->n_tokens * 4) == 0);
        CHECK_EQ_INT(a->has_categories, b->has_categories);
        if (a->has_categories && b->has_categories)
            CHECK(memcmp(a->categories, b->categories, n * 4) == 0);
    }
    if (lp && a->n_resp == b->n_resp) CHECK(memcmp(a->logprobs, b->logprobs, a->n_resp * 4) == 0);
    CHECK_EQ_INT(a->has_ref, b->has_ref);
    if (ref && a->has_ref && b->has_ref && a->n_resp == b->n_resp)
        CHECK(memcmp(a->ref_logprobs, b->ref_logprobs, a->n_resp * 4) == 0);
    CHECK_EQ_INT(a->n_extra, b->n_extra);
    for (int k = 0; k < a->n_extra && k < b->n_extra; k++) {
        CHECK(strcmp(a->extra_names[k], b->extra_names[k]) == 0);
        CHECK(memcmp(a->extra[k], b->extra[k], n * 4) == 0);
    }
}

/* Decoding the re-encoding of a decoded message must give back the same bytes. */
static void check_reencode(const MsgBuf *orig, const Msg *m) {
    MsgBuf again;
    msg_buf_init(&again);
    msg_encode(&again, m);
    CHECK_EQ_INT(again.len, orig->len);
    CHECK(again.len == orig->len && memcmp(again.data, orig->data, orig->len) == 0);
    msg_buf_free(&again);
}

static MsgRolloutInfo example_info(void) {
    MsgRolloutInfo info = {.actor_rank = 3, .batch_id = 1ull << 40, .micro_batch = 2,
                           .t_generate = 1.25, .t_score = 0.5, .t_total = 1.875};
    return info;
}

// ---------------------------------------------------------------------------------------
// The valid messages every corruption test starts from.

enum { EX_REQ, EX_REQ_CAT, EX_REP, EX_REP_REF_EXTRA, EX_ROLLOUT, EX_ROLLOUT_FULL, EX_WEIGHTS,
       EX_STOP, EX_COUNT };

static void make_example(int which, MsgBuf *buf) {
    Rng r;
    rng_init(&r, 1000 + (uint64_t)which);
    MsgBatch b;
    msg_batch_init(&b);
    MsgRolloutInfo info = example_info();
    switch (which) {
    case EX_REQ: make_batch(&b, &r, 3, 0, 0, 0); msg_encode_score_req(buf, 7, 4, 1, &b); break;
    case EX_REQ_CAT: make_batch(&b, &r, 5, 1, 0, 0); msg_encode_score_req(buf, 8, 0, 0, &b); break;
    case EX_REP: make_batch(&b, &r, 2, 0, 0, 0); msg_encode_score_rep(buf, 9, &b); break;
    case EX_REP_REF_EXTRA: make_batch(&b, &r, 4, 0, 1, 2); msg_encode_score_rep(buf, 10, &b); break;
    case EX_ROLLOUT: make_batch(&b, &r, 3, 0, 1, 0); msg_encode_rollout(buf, 5, &info, &b); break;
    case EX_ROLLOUT_FULL: make_batch(&b, &r, 4, 1, 1, 3); msg_encode_rollout(buf, 6, &info, &b); break;
    case EX_WEIGHTS: msg_encode_weights(buf, 12, 123456789, 0xDEADBEEFu, MSG_WEIGHTS_FORMAT); break;
    case EX_STOP: msg_encode_stop(buf, "done: 100 updates"); break;
    }
    msg_batch_free(&b);
}

// ---------------------------------------------------------------------------------------

static void test_roundtrip_score_req(void) {
    Rng r;
    rng_init(&r, 1);
    MsgBatch b;
    MsgBuf buf;
    Msg m;
    char err[ERRBUF_LEN];
    msg_batch_init(&b);
    msg_buf_init(&buf);
    msg_init(&m);
    for (int rep = 0; rep < 50; rep++) {
        int n = 1 + (int)rng_below(&r, (uint64_t)LIM.max_batch);
        int cat = rep % 2;
        make_batch(&b, &r, n, cat, 0, 0);
        uint64_t id = rng_next_u64(&r);
        int64_t pv = (int64_t)(rng_next_u64(&r) >> 1);
        msg_encode_score_req(&buf, id, pv, rep % 3 == 0, &b);
        int rc = msg_decode(buf.data, buf.len, &LIM, &m, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc) continue;
        CHECK_EQ_INT(m.type, MSG_TYPE_SCORE_REQ);
        CHECK(m.req_id == id);
        CHECK(m.policy_version == pv);
        CHECK_EQ_INT(m.want_ref, rep % 3 == 0);
        check_batch_equal(&b, &m.batch, 1, 0, 0, 0);
        /* what a request does not carry is zero */
        for (int i = 0; i < n; i++) CHECK(m.batch.scores[i] == 0.0f && m.batch.finished[i] == 0);
        for (size_t t = 0; t < m.batch.n_resp; t++)
            CHECK(m.batch.logprobs[t] == 0.0f && m.batch.ref_logprobs[t] == 0.0f);
        check_reencode(&buf, &m);
    }
    msg_free(&m);
    msg_buf_free(&buf);
    msg_batch_free(&b);
}

static void test_roundtrip_score_rep(void) {
    Rng r;
    rng_init(&r, 2);
    MsgBatch b;
    MsgBuf buf;
    Msg m;
    char err[ERRBUF_LEN];
    msg_batch_init(&b);
    msg_buf_init(&buf);
    msg_init(&m);
    for (int rep = 0; rep < 40; rep++) {
        int n = 1 + (int)rng_below(&r, (uint64_t)LIM.max_batch);
        int with_ref = rep % 2, n_extra = rep % 5;
        make_batch(&b, &r, n, 0, with_ref, n_extra);
        msg_encode_score_rep(&buf, (uint64_t)rep * 977, &b);
        int rc = msg_decode(buf.data, buf.len, &LIM, &m, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc) continue;
        CHECK_EQ_INT(m.type, MSG_TYPE_SCORE_REP);
        CHECK(m.req_id == (uint64_t)rep * 977);
        check_batch_equal(&b, &m.batch, 0, 0, 1, 1);
        CHECK_EQ_INT(m.batch.n_tokens, 0);
        CHECK(msg_check_score_rep(&m, (uint64_t)rep * 977, with_ref, &b, err) == 0);
        if (n_extra) CHECK(msg_batch_find_extra(&m.batch, "gold") != NULL);
        check_reencode(&buf, &m);
    }
    msg_free(&m);
    msg_buf_free(&buf);
    msg_batch_free(&b);
}

static void test_roundtrip_rollout(void) {
    Rng r;
    rng_init(&r, 3);
    MsgBatch b;
    MsgBuf buf;
    Msg m;
    char err[ERRBUF_LEN];
    msg_batch_init(&b);
    msg_buf_init(&buf);
    msg_init(&m);
    for (int rep = 0; rep < 40; rep++) {
        int n = 1 + (int)rng_below(&r, (uint64_t)LIM.max_batch);
        int with_ref = rep % 4 != 3; /* absent when the learner computes them */
        make_batch(&b, &r, n, rep % 2, with_ref, rep % 3);
        MsgRolloutInfo info = {.actor_rank = rep, .batch_id = rng_next_u64(&r),
                               .micro_batch = rep / 3, .t_generate = rng_uniform_double(&r),
                               .t_score = 1e-9 * rep, .t_total = 3600.0 + rep};
        msg_encode_rollout(&buf, rep * 11, &info, &b);
        int rc = msg_decode(buf.data, buf.len, &LIM, &m, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc) continue;
        CHECK_EQ_INT(m.type, MSG_TYPE_ROLLOUT);
        CHECK_EQ_INT(m.policy_version, rep * 11);
        CHECK_EQ_INT(m.rollout.actor_rank, rep);
        CHECK(m.rollout.batch_id == info.batch_id);
        CHECK_EQ_INT(m.rollout.micro_batch, rep / 3);
        CHECK(m.rollout.t_generate == info.t_generate && m.rollout.t_score == info.t_score &&
              m.rollout.t_total == info.t_total);
        check_batch_equal(&b, &m.batch, 1, 1, 1, 1);
        CHECK(memcmp(m.batch.finished, b.finished, (size_t)n) == 0);
        check_reencode(&buf, &m);
    }
    msg_free(&m);
    msg_buf_free(&buf);
    msg_batch_free(&b);
}

static void test_roundtrip_weights_stop(void) {
    MsgBuf buf;
    Msg m;
    char err[ERRBUF_LEN];
    msg_buf_init(&buf);
    msg_init(&m);
    msg_encode_weights(&buf, INT64_MAX, UINT64_MAX, 0xFFFFFFFFu, MSG_WEIGHTS_FORMAT);
    CHECK_MSG(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0, "%s", err);
    CHECK_EQ_INT(m.type, MSG_TYPE_WEIGHTS);
    CHECK(m.policy_version == INT64_MAX && m.nbytes == UINT64_MAX && m.crc32 == 0xFFFFFFFFu);
    CHECK(strcmp(m.format, MSG_WEIGHTS_FORMAT) == 0);
    check_reencode(&buf, &m);
    msg_encode_weights(&buf, 3, 4 * 1000, 0x1234u, MSG_WEIGHTS_FORMAT_PARAMS);
    CHECK_MSG(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0, "%s", err);
    CHECK(m.policy_version == 3 && m.nbytes == 4000 && m.crc32 == 0x1234u);
    CHECK(strcmp(m.format, MSG_WEIGHTS_FORMAT_PARAMS) == 0);
    check_reencode(&buf, &m);
    msg_encode_weights(&buf, 4, 8, 0x5u, MSG_WEIGHTS_FORMAT_PARAMS_P2P);
    CHECK_MSG(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0, "%s", err);
    CHECK(strcmp(m.format, MSG_WEIGHTS_FORMAT_PARAMS_P2P) == 0);
    check_reencode(&buf, &m);

    msg_encode_stop(&buf, "learner finished: 10 updates, ½ done ✓");
    CHECK_MSG(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0, "%s", err);
    CHECK_EQ_INT(m.type, MSG_TYPE_STOP);
    CHECK(strcmp(m.reason, "learner finished: 10 updates, ½ done ✓") == 0);
    check_reencode(&buf, &m);

    /* a too-long reason is cut at a character boundary, invalid UTF-8 replaced */
    char longr[600];
    for (int i = 0; i < 599; i += 2) memcpy(longr + i, "\xc3\xa9", 2); /* é x 299.5 */
    longr[598] = 'z';
    longr[599] = '\0';
    msg_encode_stop(&buf, longr);
    CHECK_MSG(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0, "%s", err);
    CHECK(strlen(m.reason) == MSG_REASON_LEN - 2); /* 255 would split an é */
    CHECK(utf8_valid(m.reason, strlen(m.reason), NULL));
    msg_encode_stop(&buf, "bad \xff byte");
    CHECK_MSG(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0, "%s", err);
    CHECK(strcmp(m.reason, "bad ? byte") == 0);
    msg_free(&m);
    msg_buf_free(&buf);
}

/* Cut every example at every length: always an error, never a read past the cut. */
static void test_truncated(void) {
    MsgBuf buf;
    Msg m;
    char err[ERRBUF_LEN];
    msg_buf_init(&buf);
    msg_init(&m);
    int fails = 0, total = 0;
    for (int ex = 0; ex < EX_COUNT; ex++) {
        make_example(ex, &buf);
        CHECK_MSG(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0, "example %d: %s", ex, err);
        for (size_t k = 0; k < buf.len; k++) {
            uint8_t *cut = xmalloc(k); /* exactly k bytes: ASan catches over-reads */
            memcpy(cut, buf.data, k);
            err[0] = '\0';
            total++;
            if (msg_decode(cut, k, &LIM, &m, err) == 0) fails++;
            CHECK(err[0] != '\0');
            free(cut);
        }
        /* and one byte too many */
        uint8_t *longer = xmalloc(buf.len + 1);
        memcpy(longer, buf.data, buf.len);
        longer[buf.len] = 0xc0;
        CHECK(msg_decode(longer, buf.len + 1, &LIM, &m, err) == -1);
        CHECK_MSG(strstr(err, "trailing") != NULL, "%s", err);
        free(longer);
    }
    CHECK_MSG(fails == 0, "%d of %d truncated messages were accepted", fails, total);
    CHECK(msg_decode(NULL, 0, &LIM, &m, err) == -1);
    msg_free(&m);
    msg_buf_free(&buf);
}

// ---------------------------------------------------------------------------------------
// Re-packing a valid message with one field changed (msgpack-c's generic object tree).

static int buf_write_cb(void *data, const char *p, size_t n) {
    MsgBuf *b = data;
    msg_buf_reserve(b, b->len + n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

enum { EDIT_REPLACE, EDIT_DROP, EDIT_DUP };

/* Pack root (a map) into out with entry j replaced by val / dropped / duplicated, plus an
 * optional extra key=val entry appended when j < 0. Keys are written in reverse order (the
 * decoder must not care about order). */
static void repack(const msgpack_object *root, int j, int edit, const msgpack_object *val,
                   const char *add_key, MsgBuf *out) {
    msgpack_packer pk;
    out->len = 0;
    msgpack_packer_init(&pk, out, buf_write_cb);
    uint32_t n = root->via.map.size;
    size_t count = n + (edit == EDIT_DROP ? -1 : 0) + (edit == EDIT_DUP ? 1 : 0) +
                   (add_key ? 1 : 0);
    if (j < 0) count = n + (add_key ? 1 : 0);
    msgpack_pack_map(&pk, count);
    for (uint32_t i = n; i-- > 0;) {
        const msgpack_object_kv *kv = &root->via.map.ptr[i];
        if ((int)i == j && edit == EDIT_DROP) continue;
        msgpack_pack_object(&pk, kv->key);
        msgpack_pack_object(&pk, ((int)i == j && edit == EDIT_REPLACE) ? *val : kv->val);
        if ((int)i == j && edit == EDIT_DUP) {
            msgpack_pack_object(&pk, kv->key);
            msgpack_pack_object(&pk, kv->val);
        }
    }
    if (add_key) {
        msgpack_pack_str_with_body(&pk, add_key, strlen(add_key));
        msgpack_pack_object(&pk, *val);
    }
}

static int key_is(const msgpack_object *k, const char *s) {
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(s) &&
           memcmp(k->via.str.ptr, s, k->via.str.size) == 0;
}

static int required(MsgType t, const msgpack_object *key) {
    static const char *optional[] = {"categories", "ref_logprobs", "extra"};
    for (int i = 0; i < 3; i++) {
        if (!key_is(key, optional[i])) continue;
        (void)t;
        return 0;
    }
    return 1;
}

static void test_wrong_fields(void) {
    MsgBuf buf, edited;
    Msg m;
    char err[ERRBUF_LEN];
    msg_buf_init(&buf);
    msg_buf_init(&edited);
    msg_init(&m);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    static const char bin3[3] = {1, 2, 3};
    msgpack_object wrong[9];
    memset(wrong, 0, sizeof wrong);
    wrong[0].type = MSGPACK_OBJECT_NIL;
    wrong[1].type = MSGPACK_OBJECT_BOOLEAN, wrong[1].via.boolean = true;
    wrong[2].type = MSGPACK_OBJECT_POSITIVE_INTEGER, wrong[2].via.u64 = 5;
    wrong[3].type = MSGPACK_OBJECT_NEGATIVE_INTEGER, wrong[3].via.i64 = -5;
    wrong[4].type = MSGPACK_OBJECT_FLOAT64, wrong[4].via.f64 = 1.5;
    wrong[5].type = MSGPACK_OBJECT_STR, wrong[5].via.str.ptr = "x", wrong[5].via.str.size = 1;
    wrong[6].type = MSGPACK_OBJECT_BIN, wrong[6].via.bin.ptr = bin3, wrong[6].via.bin.size = 3;
    wrong[7].type = MSGPACK_OBJECT_ARRAY, wrong[7].via.array.size = 0;
    wrong[8].type = MSGPACK_OBJECT_MAP, wrong[8].via.map.size = 0;
    int accepted_wrong = 0, fields_tried = 0;
    for (int ex = 0; ex < EX_COUNT; ex++) {
        make_example(ex, &buf);
        CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0);
        MsgType t = m.type;
        msgpack_object root;
        size_t off = 0;
        msgpack_zone_clear(&zone);
        CHECK(msgpack_unpack((const char *)buf.data, buf.len, &off, &zone, &root) ==
              MSGPACK_UNPACK_SUCCESS);
        CHECK(root.type == MSGPACK_OBJECT_MAP);
        /* reversed key order is still fine */
        repack(&root, -1, EDIT_REPLACE, NULL, NULL, &edited);
        CHECK_MSG(msg_decode(edited.data, edited.len, &LIM, &m, err) == 0, "%s", err);
        for (uint32_t j = 0; j < root.via.map.size; j++) {
            const msgpack_object *key = &root.via.map.ptr[j].key;
            const msgpack_object *val = &root.via.map.ptr[j].val;
            char kname[40];
            snprintf(kname, sizeof kname, "'%.*s'", (int)key->via.str.size, key->via.str.ptr);
            fields_tried++;
            for (int w = 0; w < 9; w++) {
                int same = wrong[w].type == val->type;
                int t_field = key_is(key, "t_generate") || key_is(key, "t_score") ||
                              key_is(key, "t_total");
                /* numbers are accepted for times; same-type replacements are value edits */
                if (same || (t_field && (w == 2))) continue;
                repack(&root, (int)j, EDIT_REPLACE, &wrong[w], NULL, &edited);
                err[0] = '\0';
                if (msg_decode(edited.data, edited.len, &LIM, &m, err) == 0) {
                    accepted_wrong++;
                    fprintf(stderr, "accepted %s replaced by kind %d in example %d\n", kname,
                            w, ex);
                } else if (!key_is(key, "type") || w != 5) {
                    /* (a str "x" type is an unknown type, reported as such) */
                    CHECK_MSG(strstr(err, kname) != NULL, "error for %s: %s", kname, err);
                }
            }
            /* a bin one element longer, and one byte shorter */
            if (val->type == MSGPACK_OBJECT_BIN) {
                uint8_t big[2048];
                msgpack_object o = *val;
                if (o.via.bin.size + 8 <= sizeof big) {
                    memset(big, 0, sizeof big);
                    memcpy(big, o.via.bin.ptr, o.via.bin.size);
                    o.via.bin.ptr = (const char *)big;
                    o.via.bin.size += key_is(key, "prompt_ids") || key_is(key, "sample_ids") ? 8
                                      : key_is(key, "finished") ? 1 : 4;
                    repack(&root, (int)j, EDIT_REPLACE, &o, NULL, &edited);
                    CHECK(msg_decode(edited.data, edited.len, &LIM, &m, err) == -1);
                    CHECK_MSG(strstr(err, kname) != NULL, "longer %s: %s", kname, err);
                }
                if (val->via.bin.size > 0) {
                    o = *val;
                    o.via.bin.size -= 1;
                    repack(&root, (int)j, EDIT_REPLACE, &o, NULL, &edited);
                    CHECK(msg_decode(edited.data, edited.len, &LIM, &m, err) == -1);
                    CHECK_MSG(strstr(err, kname) != NULL, "shorter %s: %s", kname, err);
                }
            }
            /* dropped: an error iff required */
            repack(&root, (int)j, EDIT_DROP, NULL, NULL, &edited);
            int rc = msg_decode(edited.data, edited.len, &LIM, &m, err);
            CHECK_MSG(rc == (required(t, key) ? -1 : 0), "dropping %s in example %d: rc %d %s",
                      kname, ex, rc, rc ? err : "");
            if (rc && !key_is(key, "v") && !key_is(key, "type"))
                CHECK_MSG(strstr(err, "missing") && strstr(err, kname), "%s", err);
            /* given twice */
            repack(&root, (int)j, EDIT_DUP, NULL, NULL, &edited);
            CHECK(msg_decode(edited.data, edited.len, &LIM, &m, err) == -1);
            CHECK_MSG(strstr(err, "twice") != NULL, "%s", err);
        }
        /* an unknown key, and a known key that does not belong to this type */
        repack(&root, -1, EDIT_REPLACE, &wrong[2], "colour", &edited);
        CHECK(msg_decode(edited.data, edited.len, &LIM, &m, err) == -1);
        CHECK_MSG(strstr(err, "unknown field 'colour'") != NULL, "%s", err);
        const char *foreign = t == MSG_TYPE_STOP ? "nbytes" : "reason";
        repack(&root, -1, EDIT_REPLACE, &wrong[5], foreign, &edited);
        CHECK(msg_decode(edited.data, edited.len, &LIM, &m, err) == -1);
        CHECK_MSG(strstr(err, "does not belong") != NULL, "%s", err);
    }
    CHECK_MSG(accepted_wrong == 0, "%d wrong-typed fields accepted", accepted_wrong);
    CHECK(fields_tried > 60);
    msgpack_zone_destroy(&zone);
    msg_free(&m);
    msg_buf_free(&edited);
    msg_buf_free(&buf);
}

/* Replace the value of key in the example with val and return the decode error. */
static int decode_with(int ex, const char *keyname, const msgpack_object *val,
                       const MsgLimits *lim, char *err) {
    MsgBuf buf, edited;
    Msg m;
    msg_buf_init(&buf);
    msg_buf_init(&edited);
    msg_init(&m);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    make_example(ex, &buf);
    msgpack_object root;
    size_t off = 0;
    CHECK(msgpack_unpack((const char *)buf.data, buf.len, &off, &zone, &root) ==
          MSGPACK_UNPACK_SUCCESS);
    int j = -1;
    for (uint32_t i = 0; i < root.via.map.size; i++)
        if (key_is(&root.via.map.ptr[i].key, keyname)) j = (int)i;
    CHECK_MSG(j >= 0, "no key %s in example %d", keyname, ex);
    if (val) repack(&root, j, EDIT_REPLACE, val, NULL, &edited);
    else repack(&root, -1, EDIT_REPLACE, NULL, NULL, &edited);
    int rc = msg_decode(edited.data, edited.len, lim, &m, err);
    msgpack_zone_destroy(&zone);
    msg_free(&m);
    msg_buf_free(&edited);
    msg_buf_free(&buf);
    return rc;
}

static void test_bad_values(void) {
    char err[ERRBUF_LEN];
    msgpack_object o;
    memset(&o, 0, sizeof o);
    /* schema version and type */
    o.type = MSGPACK_OBJECT_POSITIVE_INTEGER, o.via.u64 = 2;
    CHECK(decode_with(EX_STOP, "v", &o, &LIM, err) == -1);
    CHECK_MSG(strstr(err, "version 2") != NULL, "%s", err);
    o.via.u64 = 0;
    CHECK(decode_with(EX_ROLLOUT, "v", &o, &LIM, err) == -1);
    o.type = MSGPACK_OBJECT_STR, o.via.str.ptr = "rollouts", o.via.str.size = 8;
    CHECK(decode_with(EX_ROLLOUT, "type", &o, &LIM, err) == -1);
    CHECK_MSG(strstr(err, "unknown message type 'rollouts'") != NULL, "%s", err);
    o.via.str.ptr = "score_rep", o.via.str.size = 9; /* a req's fields under a rep's type */
    CHECK(decode_with(EX_REQ, "type", &o, &LIM, err) == -1);
    o.via.str.ptr = "hdf5", o.via.str.size = 4;
    CHECK(decode_with(EX_WEIGHTS, "format", &o, &LIM, err) == -1);
    CHECK_MSG(strstr(err, "'format'") != NULL, "%s", err);
    o.via.str.ptr = "a\0b", o.via.str.size = 3;
    CHECK(decode_with(EX_STOP, "reason", &o, &LIM, err) == -1);
    o.via.str.ptr = "\xc3(", o.via.str.size = 2;
    CHECK(decode_with(EX_STOP, "reason", &o, &LIM, err) == -1);
    CHECK_MSG(strstr(err, "UTF-8") != NULL, "%s", err);
    /* integers out of range */
    o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER, o.via.i64 = -1;
    CHECK(decode_with(EX_REQ, "policy_version", &o, &LIM, err) == -1);
    CHECK(decode_with(EX_ROLLOUT, "micro_batch", &o, &LIM, err) == -1);
    o.type = MSGPACK_OBJECT_POSITIVE_INTEGER, o.via.u64 = 1ull << 32;
    CHECK(decode_with(EX_WEIGHTS, "crc32", &o, &LIM, err) == -1);
    CHECK(decode_with(EX_ROLLOUT, "actor_rank", &o, &LIM, err) == -1);
    o.via.u64 = 0;
    CHECK(decode_with(EX_WEIGHTS, "nbytes", &o, &LIM, err) == -1);
    o.via.u64 = 17; /* n no longer matches the bins */
    CHECK(decode_with(EX_REQ, "n", &o, &LIM, err) == -1);
    o.via.u64 = 0;
    CHECK(decode_with(EX_REQ, "n", &o, &LIM, err) == -1);
    /* non-finite and negative times */
    o.type = MSGPACK_OBJECT_FLOAT64, o.via.f64 = NAN;
    CHECK(decode_with(EX_ROLLOUT, "t_score", &o, &LIM, err) == -1);
    CHECK_MSG(strstr(err, "'t_score'") && strstr(err, "finite"), "%s", err);
    o.via.f64 = -1.0;
    CHECK(decode_with(EX_ROLLOUT, "t_total", &o, &LIM, err) == -1);
    /* limits of the receiving model */
    MsgLimits small = LIM;
    CHECK(decode_with(EX_REQ_CAT, "n", NULL, &small, err) == 0);
    small.max_batch = 4;
    CHECK(decode_with(EX_REQ_CAT, "n", NULL, &small, err) == -1); /* 5 sequences */
    CHECK_MSG(strstr(err, "max_batch 4") != NULL, "%s", err);
    small = LIM;
    small.vocab_size = 50;
    CHECK(decode_with(EX_ROLLOUT, "n", NULL, &small, err) == -1);
    CHECK_MSG(strstr(err, "'tokens'") && strstr(err, "vocab_size 50"), "%s", err);
    small = LIM;
    small.max_seq_len = 12;
    CHECK(decode_with(EX_ROLLOUT_FULL, "n", NULL, &small, err) == -1);
    CHECK_MSG(strstr(err, "max_seq_len") != NULL, "%s", err);
}

/* Bad values inside arrays, made with the encoder (which does not know limits). */
static void test_bad_arrays(void) {
    Rng r;
    rng_init(&r, 4);
    MsgBatch b;
    MsgBuf buf;
    Msg m;
    char err[ERRBUF_LEN];
    msg_batch_init(&b);
    msg_buf_init(&buf);
    msg_init(&m);
    MsgRolloutInfo info = example_info();

    make_batch(&b, &r, 3, 0, 1, 0);
    b.tokens[b.tok_off[1] + 1] = LIM.vocab_size; /* one past the vocabulary */
    msg_encode_rollout(&buf, 1, &info, &b);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == -1);
    CHECK_MSG(strstr(err, "sequence 1 position 1") && strstr(err, "300"), "%s", err);
    b.tokens[b.tok_off[1] + 1] = -7;
    msg_encode_score_req(&buf, 1, 1, 0, &b);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == -1);
    CHECK_MSG(strstr(err, "-7") != NULL, "%s", err);

    make_batch(&b, &r, 3, 0, 1, 1);
    b.scores[2] = NAN;
    msg_encode_rollout(&buf, 1, &info, &b);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == -1);
    CHECK_MSG(strstr(err, "'scores'") && strstr(err, "[2]"), "%s", err);
    msg_encode_score_rep(&buf, 1, &b);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == -1);
    b.scores[2] = 0.5f;
    b.extra[0][1] = INFINITY;
    msg_encode_score_rep(&buf, 1, &b);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == -1);
    CHECK_MSG(strstr(err, "'extra'") && strstr(err, "gold"), "%s", err);
    b.extra[0][1] = 0.0f;

    /* a positive log-prob, a flag of 2, a negative category, a 0-token prompt */
    make_batch(&b, &r, 4, 1, 1, 0);
    while (b.n_resp == 0) make_batch(&b, &r, 4, 1, 1, 0);
    b.logprobs[b.n_resp - 1] = 0.25f;
    msg_encode_rollout(&buf, 1, &info, &b);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == -1);
    CHECK_MSG(strstr(err, "'logprobs'") != NULL, "%s", err);
    b.logprobs[b.n_resp - 1] = -0.25f;
    b.ref_logprobs[0] = NAN;
    msg_encode_rollout(&buf, 1, &info, &b);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == -1);
    CHECK_MSG(strstr(err, "'ref_logprobs'") != NULL, "%s", err);
    b.ref_logprobs[0] = -1.0f;
    b.finished[3] = 2;
    msg_encode_rollout(&buf, 1, &info, &b);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == -1);
    CHECK_MSG(strstr(err, "'finished'") != NULL, "%s", err);
    b.finished[3] = 1;
    b.categories[0] = -1;
    msg_encode_rollout(&buf, 1, &info, &b);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == -1);
    CHECK_MSG(strstr(err, "'categories'") != NULL, "%s", err);
    b.categories[0] = 0;
    CHECK_MSG(msg_decode(buf.data, 0, &LIM, &m, err) == -1, "empty");
    msg_encode_rollout(&buf, 1, &info, &b);
    CHECK_MSG(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0, "%s", err);

    int32_t tok[2] = {1, 2};
    msg_batch_clear(&b);
    msg_batch_append_seq(&b, 0, 0, tok, 0, tok, 2);
    msg_encode_score_req(&buf, 1, 1, 0, &b);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == -1);
    CHECK_MSG(strstr(err, "prompt >= 1") != NULL, "%s", err);

    msg_free(&m);
    msg_buf_free(&buf);
    msg_batch_free(&b);
}

/* Headers that claim far more than the buffer holds. */
static void test_forged_lengths(void) {
    Msg m;
    char err[ERRBUF_LEN];
    msg_init(&m);
    static const uint8_t forged[][12] = {
        {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 0x01},  /* map32 of 4G entries */
        {0xdd, 0x7f, 0xff, 0xff, 0xff, 0x00},              /* array32 of 2G */
        {0x81, 0xa1, 'v', 0xc6, 0x80, 0x00, 0x00, 0x00, 1}, /* bin32 of 2 GiB */
        {0x81, 0xa1, 'v', 0xdb, 0xff, 0xff, 0xff, 0xff},    /* str32 of 4 GiB */
        {0x81, 0xa1, 'v', 0xc9, 0xff, 0xff, 0xff, 0xff, 1}, /* ext32 */
        {0x81, 0xa1, 'v', 0xde, 0xff, 0xff},                /* map16 of 64k */
        {0x82, 0xa1, 'v', 0x01},                            /* map of 2, one given */
        {0x81, 0xa1, 'v', 0xcf, 0, 0, 0},                   /* uint64 cut short */
        {0xc1},                                             /* never-used byte */
        {0x91, 0x01},                                       /* an array, not a map */
    };
    static const size_t lens[] = {8, 6, 9, 8, 9, 6, 4, 7, 1, 2};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t *p = xmalloc(lens[i]);
        memcpy(p, forged[i], lens[i]);
        err[0] = '\0';
        CHECK_MSG(msg_decode(p, lens[i], &LIM, &m, err) == -1, "forged %zu accepted", i);
        CHECK(err[0] != '\0');
        free(p);
    }
    /* deep nesting: 200 nested arrays */
    uint8_t deep[201];
    memset(deep, 0x91, 200);
    deep[200] = 0x01;
    CHECK(msg_decode(deep, sizeof deep, &LIM, &m, err) == -1);
    msg_free(&m);
}

/* 100k random byte strings and 100k random mutations of valid messages. */
static void test_fuzz(void) {
    Rng r;
    rng_init(&r, 20240607);
    Msg m;
    MsgBuf ex[EX_COUNT], again;
    char err[ERRBUF_LEN];
    msg_init(&m);
    msg_buf_init(&again);
    for (int i = 0; i < EX_COUNT; i++) {
        msg_buf_init(&ex[i]);
        make_example(i, &ex[i]);
    }
    int accepted_random = 0, accepted_mut = 0, reencode_bad = 0;
    for (int it = 0; it < 100000; it++) {
        size_t len = (size_t)rng_below(&r, 300);
        uint8_t *p = xmalloc(len);
        /* biased towards msgpack-looking bytes half the time */
        for (size_t i = 0; i < len; i++) {
            uint64_t x = rng_next_u64(&r);
            p[i] = (it & 1) && i == 0 ? (uint8_t)(0x80 | (x & 0x1f)) : (uint8_t)x;
        }
        if (msg_decode(p, len, &LIM, &m, err) == 0) accepted_random++;
        free(p);
    }
    for (int it = 0; it < 100000; it++) {
        const MsgBuf *src = &ex[rng_below(&r, EX_COUNT)];
        size_t len = src->len;
        int how = (int)rng_below(&r, 3);
        if (how == 1) len = (size_t)rng_below(&r, src->len + 1);      /* cut */
        if (how == 2) len = src->len + 1 + (size_t)rng_below(&r, 8);  /* grown */
        uint8_t *p = xmalloc(len);
        memcpy(p, src->data, len < src->len ? len : src->len);
        for (size_t i = src->len; i < len; i++) p[i] = (uint8_t)rng_next_u64(&r);
        int flips = 1 + (int)rng_below(&r, 4);
        for (int f = 0; f < flips && len > 0; f++) {
            size_t at = (size_t)rng_below(&r, len);
            p[at] = rng_below(&r, 2) ? (uint8_t)rng_next_u64(&r)
                                     : (uint8_t)(p[at] ^ (1u << rng_below(&r, 8)));
        }
        if (msg_decode(p, len, &LIM, &m, err) == 0) {
            /* something valid: it must survive a round trip through the encoder */
            accepted_mut++;
            msg_encode(&again, &m);
            Msg m2;
            msg_init(&m2);
            if (msg_decode(again.data, again.len, &LIM, &m2, err) != 0) reencode_bad++;
            msg_free(&m2);
        }
        free(p);
    }
    CHECK_MSG(accepted_random == 0, "%d random strings accepted", accepted_random);
    CHECK_MSG(reencode_bad == 0, "%d accepted mutations did not re-encode", reencode_bad);
    fprintf(stderr, "  fuzz: %d of 100000 mutations were still valid messages\n", accepted_mut);
    for (int i = 0; i < EX_COUNT; i++) msg_buf_free(&ex[i]);
    msg_buf_free(&again);
    msg_free(&m);
}

static void test_check_score_rep(void) {
    Rng r;
    rng_init(&r, 5);
    MsgBatch req, rep;
    MsgBuf buf;
    Msg m;
    char err[ERRBUF_LEN];
    msg_batch_init(&req);
    msg_batch_init(&rep);
    msg_buf_init(&buf);
    msg_init(&m);
    make_batch(&req, &r, 4, 0, 0, 0);
    /* the reply built from the request's response lengths */
    for (int i = 0; i < req.n; i++) {
        int32_t dummy[64] = {0};
        msg_batch_append_seq(&rep, 0, 0, dummy, 1, dummy, req.resp_lens[i]);
        rep.scores[i] = (float)i;
    }
    rep.has_ref = 1;
    msg_encode_score_rep(&buf, 42, &rep);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0);
    CHECK_MSG(msg_check_score_rep(&m, 42, 1, &req, err) == 0, "%s", err);
    CHECK(msg_check_score_rep(&m, 43, 1, &req, err) == -1);
    CHECK(strstr(err, "43") != NULL);
    CHECK(msg_check_score_rep(&m, 42, 0, &req, err) == -1);
    req.resp_lens[2]++;
    CHECK(msg_check_score_rep(&m, 42, 1, &req, err) == -1);
    CHECK(strstr(err, "sequence 2") != NULL);
    req.n--;
    CHECK(msg_check_score_rep(&m, 42, 1, &req, err) == -1);
    msg_free(&m);
    msg_buf_free(&buf);
    msg_batch_free(&rep);
    msg_batch_free(&req);
}

/* After the first message, decoding the same-sized message again allocates nothing:
 * the batch arrays and the encode buffer keep their addresses. */
static void test_steady_state(void) {
    Rng r;
    rng_init(&r, 6);
    MsgBatch b;
    MsgBuf buf;
    Msg m;
    char err[ERRBUF_LEN];
    msg_batch_init(&b);
    msg_buf_init(&buf);
    msg_init(&m);
    make_batch(&b, &r, LIM.max_batch, 1, 1, 2);
    MsgRolloutInfo info = example_info();
    msg_encode_rollout(&buf, 1, &info, &b);
    CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0);
    const void *tokens = m.batch.tokens, *lp = m.batch.logprobs, *data = buf.data;
    const void *extra = m.batch.extra[1], *zone = m.zone_;
    for (int it = 0; it < 20; it++) {
        make_batch(&b, &r, 1 + it % LIM.max_batch, it % 2, 1, it % 3);
        msg_encode_rollout(&buf, 1, &info, &b);
        CHECK(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0);
    }
    CHECK(m.batch.tokens == tokens && m.batch.logprobs == lp && buf.data == data);
    CHECK(m.batch.extra[1] == extra && m.zone_ == zone);
    msg_free(&m);
    msg_free(NULL);
    msg_buf_free(&buf);
    msg_buf_free(NULL);
    msg_batch_free(&b);
    msg_batch_free(NULL);
}

/* msg_max_bytes really bounds the largest messages the limits allow. */
static void test_max_bytes(void) {
    MsgBatch b;
    MsgBuf buf;
    Msg m;
    char err[ERRBUF_LEN];
    msg_batch_init(&b);
    msg_buf_init(&buf);
    msg_init(&m);
    int32_t tok[64];
    for (int t = 0; t < 64; t++) tok[t] = LIM.vocab_size - 1;
    for (int i = 0; i < LIM.max_batch; i++)
        msg_batch_append_seq(&b, UINT64_MAX, UINT64_MAX, tok, 1, tok, LIM.max_seq_len - 1);
    b.has_ref = b.has_categories = 1;
    for (int k = 0; k < MSG_MAX_EXTRA; k++) {
        char name[MSG_NAME_LEN];
        snprintf(name, sizeof name, "judge_%c_%s", '0' + k, "abcdefghijklmnopqrstuvw");
        CHECK_EQ_INT(strlen(name), MSG_NAME_LEN - 1); /* the longest name allowed */
        msg_batch_extra(&b, name);
    }
    MsgRolloutInfo info = example_info();
    info.actor_rank = INT32_MAX;
    info.batch_id = UINT64_MAX;
    msg_encode_rollout(&buf, INT64_MAX, &info, &b);
    CHECK_MSG(msg_decode(buf.data, buf.len, &LIM, &m, err) == 0, "%s", err);
    CHECK_MSG(buf.len <= msg_max_bytes(&LIM), "%zu > %zu", buf.len, msg_max_bytes(&LIM));
    msg_encode_score_req(&buf, UINT64_MAX, INT64_MAX, 1, &b);
    CHECK(buf.len <= msg_max_bytes(&LIM));
    msg_encode_score_rep(&buf, UINT64_MAX, &b);
    CHECK(buf.len <= msg_max_bytes(&LIM));
    char reason[MSG_REASON_LEN + 10];
    memset(reason, 'r', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    msg_encode_stop(&buf, reason);
    CHECK(buf.len <= msg_max_bytes(&LIM));
    msg_free(&m);
    msg_buf_free(&buf);
    msg_batch_free(&b);
}

int main(void) {
    TEST_RUN(test_roundtrip_score_req);
    TEST_RUN(test_roundtrip_score_rep);
    TEST_RUN(test_roundtrip_rollout);
    TEST_RUN(test_roundtrip_weights_stop);
    TEST_RUN(test_truncated);
    TEST_RUN(test_wrong_fields);
    TEST_RUN(test_bad_values);
    TEST_RUN(test_bad_arrays);
    TEST_RUN(test_forged_lengths);
    TEST_RUN(test_fuzz);
    TEST_RUN(test_check_score_rep);
    TEST_RUN(test_steady_state);
    TEST_RUN(test_max_bytes);
    return TEST_EXIT();
}
