/*
 * fuzz/fuzz_msg.c — libFuzzer target for the wire decoder, common/msg.h msg_decode.
 *
 * Each input is one received message buffer. It is decoded under two receivers' limits:
 * a GPT-2-sized one (vocab 50257, 1024 positions, 64 sequences per message) and a tiny one
 * (vocab 32, 16 positions, 4 sequences) so that the range checks are reached by short
 * inputs. Properties checked besides "no crash, leak, UB or hang":
 *   - a rejected message has a non-empty error message;
 *   - an accepted one is no longer than msg_max_bytes(limits) (the receive-size cap the
 *     ranks allocate with must hold every valid message);
 *   - re-encoding an accepted message (msg_encode) gives bytes that decode again to the
 *     same content, and encoding those gives the same bytes (the encoder is canonical).
 * Seeds: fuzz/corpus/fuzz_msg/, messages of every type made by msg_encode_* (seeds.c).
 * Not here: MPI transport (mpi_util), the weights payload (fuzz_ckpt).
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "msg.h"
#include "util.h"

static int batch_equal(const MsgBatch *a, const MsgBatch *b) {
    if (a->n != b->n || a->n_tokens != b->n_tokens || a->n_resp != b->n_resp) return 0;
    if (a->has_ref != b->has_ref || a->has_categories != b->has_categories) return 0;
    if (a->n_extra != b->n_extra) return 0;
    size_t n = (size_t)a->n;
    if (n && (memcmp(a->prompt_lens, b->prompt_lens, n * 4) ||
              memcmp(a->resp_lens, b->resp_lens, n * 4)))
        return 0;
    if (a->n_tokens && memcmp(a->tokens, b->tokens, a->n_tokens * 4)) return 0;
    return 1;
}

static void check_one(const uint8_t *data, size_t size, const MsgLimits *lim) {
    Msg m, m2;
    msg_init(&m);
    msg_init(&m2);
    char err[ERRBUF_LEN] = "";
    if (msg_decode(data, size, lim, &m, err) != 0) {
        FUZZ_REQUIRE(err[0] != '\0');
    } else {
        FUZZ_REQUIRE(size <= msg_max_bytes(lim));
        FUZZ_REQUIRE(m.type > MSG_TYPE_NONE && m.type < MSG_TYPE_COUNT);
        MsgBuf b1, b2;
        msg_buf_init(&b1);
        msg_buf_init(&b2);
        msg_encode(&b1, &m);
        err[0] = '\0';
        if (msg_decode(b1.data, b1.len, lim, &m2, err) != 0) {
            fprintf(stderr, "re-encoded %s message does not decode: %s\n",
                    msg_type_name(m.type), err);
            abort();
        }
        FUZZ_REQUIRE(m2.type == m.type);
        FUZZ_REQUIRE(batch_equal(&m.batch, &m2.batch));
        msg_encode(&b2, &m2);
        FUZZ_REQUIRE(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
        msg_buf_free(&b1);
        msg_buf_free(&b2);
    }
    msg_free(&m);
    msg_free(&m2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const MsgLimits big = {.vocab_size = 50257, .max_seq_len = 1024, .max_batch = 64};
    static const MsgLimits tiny = {.vocab_size = 32, .max_seq_len = 16, .max_batch = 4};
    check_one(data, size, &big);
    check_one(data, size, &tiny);
    return 0;
}
