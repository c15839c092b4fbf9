/*
 * fuzz/fuzz_bpe.c — libFuzzer target for the tokenizer file loader, common/bpe.h
 * bpe_load_strings (GPT-2 encoder.json/vocab.bpe, HF vocab.json/merges.txt, and the two
 * strings a checkpoint stores).
 *
 * Input layout: vocab JSON text, one NUL byte, merges text (no NUL: the whole input is the
 * vocab and the merges are empty). When the pair loads, properties checked besides "no
 * crash, leak, UB or hang":
 *   - eos_id, pad_id and every byte_id are ids in range, and the token strings are laid
 *     out inside tok_data;
 *   - decode(encode(s)) == s for s = the input's bytes (any bytes encode) and for the
 *     same with BPE_ENCODE_SPECIAL;
 *   - bpe_save_strings writes files that load again and save to the same two strings.
 * A rejected pair must have an error message.
 * Seeds: fuzz/corpus/fuzz_bpe/, small tokenizers trained by bpe_train and written by
 * bpe_save_strings (seeds.c).
 * Not here: training (bpe_train takes text, not files a user hands in as a tokenizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "fuzz_util.h"
#include "util.h"

static void check_roundtrip(const BPE *t, const char *s, size_t n, unsigned flags) {
    int *ids = NULL;
    size_t cap = 0;
    size_t k = bpe_encode(t, s, n, flags, &ids, &cap);
    for (size_t i = 0; i < k; i++) FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < t->vocab_size);
    char *out = NULL;
    size_t out_len = 0;
    char err[ERRBUF_LEN] = "";
    FUZZ_REQUIRE(bpe_decode(t, ids, k, 0, &out, &out_len, err) == 0);
    if (out_len != n || memcmp(out, s, n) != 0) {
        fprintf(stderr, "decode(encode(s)) != s (flags %u, %zu bytes -> %zu ids -> %zu bytes)\n",
                flags, n, k, out_len);
        abort();
    }
    free(out);
    /* decoding with replacement always yields valid UTF-8 */
    FUZZ_REQUIRE(bpe_decode(t, ids, k, BPE_DECODE_REPLACE_INVALID, &out, &out_len, err) == 0);
    FUZZ_REQUIRE(utf8_valid(out, out_len, NULL));
    free(out);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t vlen = nul ? (size_t)(nul - data) : size;
    char *vocab = fuzz_cstr(data, vlen);
    char *merges = nul ? fuzz_cstr(nul + 1, size - vlen - 1) : fuzz_cstr(data, 0);
    BPE t;
    memset(&t, 0xAB, sizeof t); /* the loader must not rely on a zeroed struct */
    char err[ERRBUF_LEN] = "";
    if (bpe_load_strings(&t, vocab, merges, err) != 0) {
        FUZZ_REQUIRE(err[0] != '\0');
        /* "on failure leave it zeroed" (bpe.h) */
        FUZZ_REQUIRE(t.vocab_size == 0 && t.tok_off == NULL && t.merge_left == NULL);
    } else {
        FUZZ_REQUIRE(t.vocab_size > 0 && t.vocab_size <= BPE_MAX_VOCAB);
        FUZZ_REQUIRE(t.eos_id >= 0 && t.eos_id < t.vocab_size);
        FUZZ_REQUIRE(t.pad_id >= 0 && t.pad_id < t.vocab_size);
        for (int b = 0; b < 256; b++) {
            FUZZ_REQUIRE(t.byte_id[b] >= 0 && t.byte_id[b] < t.vocab_size);
            size_t len;
            const unsigned char *p = bpe_token_bytes(&t, t.byte_id[b], &len);
            FUZZ_REQUIRE(p && len == 1 && p[0] == b);
        }
        FUZZ_REQUIRE(t.tok_off[0] == 0);
        for (int i = 0; i < t.vocab_size; i++) FUZZ_REQUIRE(t.tok_off[i] <= t.tok_off[i + 1]);
        size_t n = size < 4096 ? size : 4096;
        check_roundtrip(&t, (const char *)data, n, 0);
        check_roundtrip(&t, (const char *)data, n, BPE_ENCODE_SPECIAL);

        char *v2 = NULL, *m2 = NULL, *v3 = NULL, *m3 = NULL;
        FUZZ_REQUIRE(bpe_save_strings(&t, &v2, &m2) == 0);
        BPE u;
        if (bpe_load_strings(&u, v2, m2, err) != 0) {
            fprintf(stderr, "saved tokenizer does not load again: %s\n", err);
            abort();
        }
        FUZZ_REQUIRE(u.vocab_size == t.vocab_size && u.num_merges == t.num_merges);
        FUZZ_REQUIRE(u.eos_id == t.eos_id && u.pad_id == t.pad_id);
        FUZZ_REQUIRE(bpe_save_strings(&u, &v3, &m3) == 0);
        FUZZ_REQUIRE(strcmp(v2, v3) == 0 && strcmp(m2, m3) == 0);
        bpe_free(&u);
        free(v2);
        free(m2);
        free(v3);
        free(m3);
        bpe_free(&t);
    }
    free(vocab);
    free(merges);
    return 0;
}
