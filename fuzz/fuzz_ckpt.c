/*
 * fuzz/fuzz_ckpt.c — libFuzzer target for the checkpoint loader, common/ckpt.h, on
 * in-memory HDF5 images (the bytes of a weight broadcast, and the same reader that opens
 * checkpoint files).
 *
 * Each input is an image given to ckpt_reader_open_image. When the root validates, every
 * model group (policy, value, reward, reference) present has its config read and, if the
 * model is small enough to allocate here (<= 2^20 parameters), is loaded with
 * ckpt_load_model; its AdamW state, rank 0's RNG state, the data cursors and the stored
 * tokenizer (toksrc_load_meta: vocab + merges or tokenizer.json, as every program loads
 * it) are read; ckpt_verify recomputes every checksum; ckpt_image_load loads the policy
 * again. Properties checked besides "no crash, leak, UB or hang": every failure has an
 * error message; the meta the reader returns is within the ranges it promises
 * (gpt_config_validate passes, step >= 0).
 *
 * Mutations (LLVMFuzzerCustomMutator): ckpt.h says HDF5 is not hardened against
 * deliberately crafted metadata, and byte-level mutation of HDF5 object headers crashes
 * libhdf5 1.10 within seconds (fuzz/crashes/fuzz_ckpt-hdf5-*, reported in
 * docs/reliability.md) — which would stop the fuzzer before it tests ckpt.c. So by default
 * the mutator changes what users' files really suffer: bit flips and special floats (NaN,
 * Inf, huge) inside the datasets' raw data (the ranges H5Dget_offset/H5Dget_storage_size
 * give), and truncation at any point. FUZZ_CKPT_ANY=1 in the environment lets libFuzzer
 * mutate every byte (to hunt libhdf5 bugs); libhdf5 is not instrumented, so ASan sees only
 * what its calls into libc do.
 * Seeds: fuzz/corpus/fuzz_ckpt/, images of a tiny model (policy with AdamW state, RNG,
 * data cursor and tokenizer; a reward model) written by ckpt_writer_open_image (seeds.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "bpe.h"
#include "ckpt.h"
#include "fuzz_util.h"
#include "gpt.h"
#include "toksrc.h"
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
    if (toksrc_meta_has(meta)) { /* either form, as every program loads it (toksrc.h) */
        BPE t;
        err[0] = '\0';
        if (toksrc_load_meta(&t, NULL, meta, "fuzz.h5", err) == 0) bpe_free(&t);
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

// ---- the mutator --------------------------------------------------------------------

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

typedef struct {
    size_t off[256], len[256];
    int n;
} Ranges;

static herr_t visit_link(hid_t g, const char *name, const H5L_info_t *info, void *op) {
    (void)info;
    Ranges *r = op;
    H5O_info_t oi;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET)
        return 0;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return 0;
    haddr_t off = H5Dget_offset(d);
    hsize_t len = H5Dget_storage_size(d);
    if (off != HADDR_UNDEF && len > 0 && r->n < 256) {
        r->off[r->n] = (size_t)off;
        r->len[r->n] = (size_t)len;
        r->n++;
    }
    H5Dclose(d);
    return 0;
}

/* Raw-data byte ranges of every dataset in the image (n = 0 if it does not open). */
static void raw_ranges(const uint8_t *data, size_t size, Ranges *r) {
    r->n = 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 1 << 16, 0);
    if (H5Pset_file_image(fapl, (void *)data, size) >= 0) {
        hid_t f = H5Fopen("fuzz-mutator", H5F_ACC_RDONLY, fapl);
        if (f >= 0) {
            H5Lvisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, visit_link, r);
            H5Fclose(f);
        }
    }
    H5Pclose(fapl);
}

static uint64_t mix(uint64_t *s) {
    *s += 0x9e3779b97f4a7c15ull;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed) {
    static int any = -1;
    if (any < 0) any = getenv("FUZZ_CKPT_ANY") && strcmp(getenv("FUZZ_CKPT_ANY"), "0") != 0;
    if (any) return LLVMFuzzerMutate(data, size, max_size);
    uint64_t s = seed;
    unsigned what = (unsigned)(mix(&s) % 8);
    if (size < 16 || what == 0) /* truncate */
        return size > 1 ? 1 + (size_t)(mix(&s) % (size - 1)) : size;
    Ranges r;
    raw_ranges(data, size, &r);
    if (r.n == 0) return size > 1 ? size - 1 - (size_t)(mix(&s) % (size / 2 + 1)) : size;
    int k = (int)(mix(&s) % (uint64_t)r.n);
    size_t off = r.off[k], len = r.len[k];
    if (off >= size) return size / 2; /* a truncated image: cut further */
    if (off + len > size) len = size - off;
    if (what <= 4) { /* flip 1..4 bits */
        int nflip = 1 + (int)(mix(&s) % 4);
        for (int i = 0; i < nflip; i++) data[off + mix(&s) % len] ^= (uint8_t)(1u << (mix(&s) % 8));
    } else if (len >= 4) { /* a special float at an aligned position */
        static const uint32_t special[] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x7f7fffffu,
                                           0x00000001u, 0x80000000u};
        size_t at = off + 4 * (mix(&s) % (len / 4));
        uint32_t v = special[mix(&s) % (sizeof special / sizeof special[0])];
        memcpy(data + at, &v, 4);
    }
    return size;
}
