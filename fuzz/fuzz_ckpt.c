/*
 * fuzz/fuzz_ckpt.c — libFuzzer target for the checkpoint loader, common/ckpt.h, on
 * in-memory HDF5 images (the bytes of a weight broadcast, and the same reader that opens
 * checkpoint files).
 *
 * Each input is an image given to ckpt_reader_open_image. When the root validates, every
 * model group (policy, value, reward, reference) present has its config read and, if the
 * model is small enough to allocate here (<= 2^20 parameters), is loaded with
 * ckpt_load_model; its AdamW state, rank 0's RNG state, the data cursors and the stored
 * tokenizer (through bpe_load_strings, as rlhf-tokenize --ckpt does) are read; ckpt_verify
 * recomputes every checksum; ckpt_image_load loads the policy again. Properties checked
 * besides "no crash, leak, UB or hang": every failure has an error message; the meta the
 * reader returns is within the ranges it promises (gpt_config_validate passes, step >= 0).
 *
 * A crash inside libhdf5 itself is reported too, but ckpt.h says HDF5 is not hardened
 * against deliberately crafted metadata: such findings go to the HDF5 project, not to
 * ckpt.c (docs/reliability.md lists them). libhdf5 is not instrumented, so ASan sees only
 * what its calls into our code and libc do.
 * Seeds: fuzz/corpus/fuzz_ckpt/, images of a tiny model (policy with AdamW state, RNG,
 * data cursor and tokenizer; a reward model) written by ckpt_writer_open_image (seeds.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "ckpt.h"
#include "fuzz_util.h"
#include "gpt.h"
#include "util.h"

#define MAX_PARAMS ((size_t)1 << 20)

static void read_group(const CkptReader *r, const char *g) {
    char path[128], err[ERRBUF_LEN] = "";
    snprintf(path, sizeof path, "/%s", g);
    if (!ckpt_has(r, path)) return;
    GPTConfig c;
    if (ckpt_read_model_config(r, g, &c, err) != 0) {
        FUZZ_REQUIRE(err[0] != '\0');
        return;
    }
    FUZZ_REQUIRE(gpt_config_validate(&c, NULL) == 0);
    size_t np = gpt_config_num_params(&c);
    if (np > MAX_PARAMS) return;
    GPT m;
    err[0] = '\0';
    if (ckpt_load_model(r, g, &m, err) != 0) {
        FUZZ_REQUIRE(err[0] != '\0');
        gpt_free(&m); /* "left freed (gpt_free-able, all zero)" */
        return;
    }
    FUZZ_REQUIRE(m.num_params == np);
    snprintf(path, sizeof path, "/optim/%s/m", g);
    if (ckpt_has(r, path)) {
        float *mm = xmalloc(np * sizeof(float)), *vv = xmalloc(np * sizeof(float));
        int64_t step;
        err[0] = '\0';
        if (ckpt_read_adamw(r, g, mm, vv, np, &step, err) != 0) FUZZ_REQUIRE(err[0] != '\0');
        free(mm);
        free(vv);
    }
    gpt_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[ERRBUF_LEN] = "";
    CkptReader *r = ckpt_reader_open_image(data, size, err);
    if (!r) {
        FUZZ_REQUIRE(err[0] != '\0');
        return 0;
    }
    const CkptMeta *meta = ckpt_reader_meta(r);
    FUZZ_REQUIRE(meta != NULL);
    FUZZ_REQUIRE(meta->step >= 0 && meta->policy_version >= 0);
    FUZZ_REQUIRE(gpt_config_validate(&meta->model, NULL) == 0);
    static const char *groups[] = {"policy", "value", "reward", "reference"};
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) read_group(r, groups[g]);

    Rng rng;
    err[0] = '\0';
    if (ckpt_has(r, "/rng/rank0") && ckpt_read_rng(r, 0, &rng, err) != 0)
        FUZZ_REQUIRE(err[0] != '\0');
    size_t n = 0;
    err[0] = '\0';
    if (ckpt_has(r, "/data/sft")) {
        if (ckpt_read_len(r, "/data/sft", &n, err) == 0 && n <= 64) {
            int64_t cur[64];
            if (ckpt_read_i64(r, "/data/sft", cur, n, err) != 0) FUZZ_REQUIRE(err[0] != '\0');
        }
    }
    if (meta->tok_vocab && meta->tok_merges) {
        BPE t;
        err[0] = '\0';
        if (bpe_load_strings(&t, meta->tok_vocab, meta->tok_merges, err) == 0) bpe_free(&t);
        else FUZZ_REQUIRE(err[0] != '\0');
    }
    err[0] = '\0';
    if (ckpt_verify(r, err) != 0) FUZZ_REQUIRE(err[0] != '\0');

    if (gpt_config_num_params(&meta->model) <= MAX_PARAMS && ckpt_has(r, "/policy")) {
        GPT m;
        gpt_init(&m, &meta->model);
        CkptMeta out;
        err[0] = '\0';
        if (ckpt_image_load(data, size, "policy", &m, &out, err) != 0)
            FUZZ_REQUIRE(err[0] != '\0');
        gpt_free(&m);
    }
    ckpt_reader_free(r);
    return 0;
}
