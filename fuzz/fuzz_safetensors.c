/*
 * fuzz/fuzz_safetensors.c — libFuzzer target for the safetensors reader,
 * common/safetensors.h (the path of a user's model.safetensors through rlhf-hf import).
 *
 * Each input is a whole file. safetensors_parse validates it; when it is accepted, every
 * tensor is looked up by name and converted with safetensors_read_f32 (dtypes it cannot
 * convert must fail with a message), every metadata key is looked up, and the accepted
 * F32/F16/BF16/F64 tensors are written again with safetensors_serialize_f32 and parsed
 * back (same names, shapes and float values). Also the same bytes go through
 * safetensors_load from a memfd path, which must agree with safetensors_parse.
 * Seeds: fuzz/corpus/fuzz_safetensors/, files made by safetensors_serialize_f32 (seeds.c)
 * and hand-made F16/BF16/I64 ones.
 * Not here: the GPT-2 key mapping of rlhf-hf (tests/t_badinput.sh covers that path).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "safetensors.h"
#include "util.h"

#define MAX_CONVERT ((size_t)1 << 22) /* floats converted per input: bounds memory */

static int convertible(StDtype d) {
    return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F64;
}

static void roundtrip(const SafeTensors *st) {
    StWrite *w = calloc((size_t)st->num_tensors + 1, sizeof *w);
    float **bufs = calloc((size_t)st->num_tensors + 1, sizeof *bufs);
    if (!w || !bufs) abort();
    int n = 0;
    size_t total = 0;
    char err[ERRBUF_LEN];
    for (int i = 0; i < st->num_tensors; i++) {
        const StTensor *t = &st->tensors[i];
        FUZZ_REQUIRE(safetensors_find(st, t->name) == t);
        if (t->ndim > ST_MAX_DIMS || t->ndim < 0) abort();
        float *out = malloc((t->numel ? t->numel : 1) * sizeof(float));
        if (!out) abort();
        if (!convertible(t->dtype) || total + t->numel > MAX_CONVERT) {
            err[0] = '\0';
            if (!convertible(t->dtype)) {
                FUZZ_REQUIRE(safetensors_read_f32(st, t, out, err) != 0 && err[0]);
            }
            free(out);
            continue;
        }
        total += t->numel;
        FUZZ_REQUIRE(safetensors_read_f32(st, t, out, err) == 0);
        bufs[n] = out;
        w[n].name = t->name;
        w[n].ndim = t->ndim;
        memcpy(w[n].shape, t->shape, sizeof w[n].shape);
        w[n].data = out;
        n++;
    }
    const char **kv = calloc(2 * (size_t)st->num_meta + 1, sizeof *kv);
    if (!kv) abort();
    for (int i = 0; i < st->num_meta; i++) {
        FUZZ_REQUIRE(safetensors_meta(st, st->meta_keys[i]) != NULL);
        kv[2 * i] = st->meta_keys[i];
        kv[2 * i + 1] = st->meta_vals[i];
    }
    unsigned char *bytes = NULL;
    size_t len = 0;
    err[0] = '\0';
    if (safetensors_serialize_f32(w, n, kv, st->num_meta, &bytes, &len, err) == 0) {
        SafeTensors back;
        if (safetensors_parse(&back, bytes, len, err) != 0) {
            fprintf(stderr, "serialized file does not parse: %s\n", err);
            abort();
        }
        FUZZ_REQUIRE(back.num_tensors == n);
        for (int i = 0; i < n; i++) {
            const StTensor *t = safetensors_find(&back, w[i].name);
            FUZZ_REQUIRE(t && t->dtype == ST_F32 && t->ndim == w[i].ndim);
            float *x = malloc((t->numel ? t->numel : 1) * sizeof(float));
            if (!x) abort();
            FUZZ_REQUIRE(safetensors_read_f32(&back, t, x, err) == 0);
            /* compare bit patterns: NaN payloads must survive F32 -> F32 too */
            FUZZ_REQUIRE(memcmp(x, w[i].data, t->numel * sizeof(float)) == 0);
            free(x);
        }
        safetensors_free(&back);
        free(bytes);
    } else {
        FUZZ_REQUIRE(err[0] != '\0');
    }
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(w);
    free(kv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    SafeTensors st;
    char err[ERRBUF_LEN] = "";
    int rc = safetensors_parse(&st, data, size, err);
    if (rc != 0) {
        FUZZ_REQUIRE(err[0] != '\0');
    } else {
        roundtrip(&st);
    }
    safetensors_free(&st);

    FuzzFile f;
    fuzz_memfile(&f, data, size);
    SafeTensors st2;
    char err2[ERRBUF_LEN] = "";
    int rc2 = safetensors_load(&st2, f.path, err2);
    FUZZ_REQUIRE(rc2 == rc);
    if (rc2 != 0) FUZZ_REQUIRE(err2[0] != '\0');
    safetensors_free(&st2);
    fuzz_memfile_close(&f);
    return 0;
}
