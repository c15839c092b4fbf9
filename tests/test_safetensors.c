/*
 * tests/test_safetensors.c — the safetensors reader/writer (common/safetensors.h): round
 * trips through memory and a file, the exact header the writer produces, F16/BF16/F64
 * conversion on hand-computed bit patterns, and every kind of malformed file refused with
 * a message naming the fault (bad JSON, offsets beyond the file, overlapping ranges, wrong
 * dtype sizes, holes, huge header lengths, ...), never a crash; the BF16 writer's rounding
 * (nearest, ties to even) and that every bfloat16 value survives float32 and back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"
#include "test.h"
#include "util.h"

static char tmpdir[512];

/* A file image: 8-byte length, header text as given (no padding), then data_len bytes
 * of pattern. */
static unsigned char *make_file(const char *header, size_t data_len, size_t *len) {
    size_t hl = strlen(header);
    *len = 8 + hl + data_len;
    unsigned char *b = xmalloc(*len + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(((uint64_t)hl >> (8 * i)) & 0xff);
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (unsigned char)(i * 37 + 1);
    return b;
}

static void expect_bad(const char *header, size_t data_len, const char *needle) {
    size_t len;
    unsigned char *b = make_file(header, data_len, &len);
    SafeTensors st;
    char err[ERRBUF_LEN] = "";
    int rc = safetensors_parse(&st, b, len, err);
    CHECK_MSG(rc == -1 && strstr(err, needle), "header %s: rc %d, err \"%s\" lacks \"%s\"",
              header, rc, err, needle);
    CHECK(st.num_tensors == 0 && st.buf == NULL); /* freed on failure */
    fprintf(stderr, "    (%s)\n", err);
    free(b);
}

static void test_roundtrip(void) {
    float a[6] = {1.5f, -2.0f, 0.0f, -0.0f, 3.25e-30f, 1e30f};
    float b[4] = {7, 8, 9, 10}, s = 42.0f;
    StWrite t[4] = {
        {.name = "z.weight", .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "a.bias", .ndim = 1, .shape = {4}, .data = b},
        {.name = "scalar", .ndim = 0, .data = &s},
        {.name = "empty", .ndim = 2, .shape = {0, 5}, .data = NULL},
    };
    const char *meta[] = {"format", "pt", "note", "h\u00e9llo"};
    unsigned char *buf = NULL;
    size_t len = 0;
    char err[ERRBUF_LEN] = "";
    CHECK_MSG(safetensors_serialize_f32(t, 4, meta, 2, &buf, &len, err) == 0, "%s", err);
    if (!buf) return;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | buf[i];
    CHECK(hl % 8 == 0 && 8 + hl + 4 * (6 + 4 + 1) == len);
    /* keys sorted, data in the same order, compact JSON, padded with spaces */
    const char *want = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"h\u00e9llo\"},"
                       "\"a.bias\":{\"data_offsets\":[0,16],\"dtype\":\"F32\",\"shape\":[4]},"
                       "\"empty\":{\"data_offsets\":[16,16],\"dtype\":\"F32\",\"shape\":[0,5]},"
                       "\"scalar\":{\"data_offsets\":[16,20],\"dtype\":\"F32\",\"shape\":[]},"
                       "\"z.weight\":{\"data_offsets\":[20,44],\"dtype\":\"F32\",\"shape\":[2,"
                       "3]}}";
    size_t wl = strlen(want);
    CHECK(hl >= wl && memcmp(buf + 8, want, wl) == 0);
    for (size_t i = wl; i < hl; i++) CHECK(buf[8 + i] == ' ');

    SafeTensors st;
    CHECK_MSG(safetensors_parse(&st, buf, len, err) == 0, "%s", err);
    CHECK_EQ_INT(st.num_tensors, 4);
    CHECK(st.meta_keys && strcmp(safetensors_meta(&st, "format"), "pt") == 0);
    CHECK(strcmp(safetensors_meta(&st, "note"), "h\u00e9llo") == 0);
    CHECK(safetensors_meta(&st, "nope") == NULL);
    const StTensor *z = safetensors_find(&st, "z.weight");
    CHECK(z && z->dtype == ST_F32 && z->ndim == 2 && z->shape[0] == 2 && z->shape[1] == 3);
    float back[6];
    CHECK(z && safetensors_read_f32(&st, z, back, err) == 0 && memcmp(back, a, sizeof a) == 0);
    const StTensor *sc = safetensors_find(&st, "scalar");
    CHECK(sc && sc->ndim == 0 && sc->numel == 1);
    CHECK(sc && safetensors_read_f32(&st, sc, back, err) == 0 && back[0] == 42.0f);
    const StTensor *e = safetensors_find(&st, "empty");
    CHECK(e && e->numel == 0 && e->begin == e->end);
    CHECK(safetensors_find(&st, "missing") == NULL);
    safetensors_free(&st);
    safetensors_free(&st); /* twice is fine */

    /* through a file */
    char path[600];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);
    CHECK_MSG(safetensors_write_f32(path, t, 4, meta, 2, err) == 0, "%s", err);
    size_t flen;
    char *file = file_read_all(path, &flen, err);
    CHECK(file && flen == len && memcmp(file, buf, len) == 0);
    CHECK_MSG(safetensors_load(&st, path, err) == 0, "%s", err);
    CHECK_EQ_INT(st.num_tensors, 4);
    safetensors_free(&st);
    /* truncated file */
    FILE *f = fopen(path, "wb");
    fwrite(file, 1, flen - 3, f);
    fclose(f);
    CHECK(safetensors_load(&st, path, err) == -1 && strstr(err, "beyond"));
    CHECK(safetensors_load(&st, "/nonexistent/x.safetensors", err) == -1 &&
          strstr(err, "cannot open"));
    CHECK(safetensors_load(&st, tmpdir, err) == -1);
    free(file);
    free(buf);

    /* writer refuses duplicates and reserved names */
    StWrite dup[2] = {{.name = "x", .ndim = 1, .shape = {1}, .data = a},
                      {.name = "x", .ndim = 1, .shape = {1}, .data = b}};
    CHECK(safetensors_serialize_f32(dup, 2, NULL, 0, &buf, &len, err) == -1 &&
          strstr(err, "twice"));
    StWrite res = {.name = "__metadata__", .ndim = 1, .shape = {1}, .data = a};
    CHECK(safetensors_serialize_f32(&res, 1, NULL, 0, &buf, &len, err) == -1);
}

static void test_conversions(void) {
    /* IEEE half: exact values */
    CHECK(safetensors_f16_to_f32(0x3C00) == 1.0f);
    CHECK(safetensors_f16_to_f32(0xC000) == -2.0f);
    CHECK(safetensors_f16_to_f32(0x3800) == 0.5f);
    CHECK(safetensors_f16_to_f32(0x7BFF) == 65504.0f);
    CHECK(safetensors_f16_to_f32(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    CHECK(safetensors_f16_to_f32(0x03FF) == ldexpf(1023.0f, -24)); /* largest subnormal */
    CHECK(safetensors_f16_to_f32(0x0400) == ldexpf(1.0f, -14));    /* smallest normal */
    CHECK(safetensors_f16_to_f32(0x3555) == 0.25f * (1.0f + 341.0f / 1024.0f)); /* ~1/3 */
    float nz = safetensors_f16_to_f32(0x8000);
    CHECK(nz == 0.0f && signbit(nz));
    CHECK(isinf(safetensors_f16_to_f32(0x7C00)) && safetensors_f16_to_f32(0xFC00) < 0);
    CHECK(isnan(safetensors_f16_to_f32(0x7E00)));
    /* bfloat16 */
    CHECK(safetensors_bf16_to_f32(0x3F80) == 1.0f);
    CHECK(safetensors_bf16_to_f32(0xC040) == -3.0f);
    CHECK(safetensors_bf16_to_f32(0x3E20) == 0.15625f);

    /* through a file: F16, BF16, F64 tensors and a non-float one */
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]},"
                      "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]},"
                      "\"m\":{\"dtype\":\"BOOL\",\"shape\":[1,1,2,2],\"data_offsets\":[16,20]}}";
    size_t len;
    unsigned char *f = make_file(hdr, 20, &len);
    unsigned char *d = f + 8 + strlen(hdr);
    uint16_t vals[4] = {0x3C00, 0xC000, 0x3F80, 0xC040};
    memcpy(d, vals, 8);
    double dv = 0.1;
    memcpy(d + 8, &dv, 8);
    SafeTensors st;
    char err[ERRBUF_LEN] = "";
    CHECK_MSG(safetensors_parse(&st, f, len, err) == 0, "%s", err);
    float out[4];
    const StTensor *t = safetensors_find(&st, "h");
    CHECK(t && safetensors_read_f32(&st, t, out, err) == 0 && out[0] == 1.0f && out[1] == -2.0f);
    t = safetensors_find(&st, "b");
    CHECK(t && safetensors_read_f32(&st, t, out, err) == 0 && out[0] == 1.0f && out[1] == -3.0f);
    t = safetensors_find(&st, "d");
    CHECK(t && safetensors_read_f32(&st, t, out, err) == 0 && out[0] == 0.1f);
    t = safetensors_find(&st, "m");
    CHECK(t && t->dtype == ST_BOOL && t->ndim == 4);
    CHECK(t && safetensors_read_f32(&st, t, out, err) == -1 && strstr(err, "BOOL"));
    safetensors_free(&st);
    free(f);
}

static void test_malformed(void) {
    SafeTensors st;
    char err[ERRBUF_LEN] = "";
    unsigned char tiny[5] = {1, 0, 0, 0, 0};
    CHECK(safetensors_parse(&st, tiny, 5, err) == -1 && strstr(err, "too short"));
    CHECK(safetensors_parse(&st, tiny, 0, err) == -1);
    /* huge header lengths */
    unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    CHECK(safetensors_parse(&st, huge, 16, err) == -1 && strstr(err, "100 MB"));
    uint64_t big = 150000000ull;
    memcpy(huge, &big, 8);
    CHECK(safetensors_parse(&st, huge, 16, err) == -1 && strstr(err, "100 MB"));
    uint64_t past = 9;
    memcpy(huge, &past, 8);
    CHECK(safetensors_parse(&st, huge, 16, err) == -1 && strstr(err, "beyond the end"));

    const char *F = "\"dtype\":\"F32\"";
    char h[512];
    expect_bad("{\"a\":", 0, "header JSON");
    expect_bad("[1,2]  ", 0, "start with '{'");
    expect_bad("{\"a\":1} junk", 0, "header JSON");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "header JSON");                                       /* duplicate key */
    expect_bad("{\"\xff\":1}", 0, "UTF-8");
    expect_bad("[]", 0, "start with '{'");
    expect_bad("{\"a\":[1]}", 0, "expected an object");
    expect_bad("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "no string dtype");
    expect_bad("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "unknown dtype \"F33\"");
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[-1],\"data_offsets\":[0,4]}}", F);
    expect_bad(h, 4, "shape[0]");
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[1.5],\"data_offsets\":[0,4]}}", F);
    expect_bad(h, 4, "shape[0]");
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":3,\"data_offsets\":[0,4]}}", F);
    expect_bad(h, 4, "not an array");
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
             F);
    expect_bad(h, 4, "dimensions");
    snprintf(h, sizeof h,
             "{\"a\":{%s,\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", F);
    expect_bad(h, 4, "overflow");
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[1],\"data_offsets\":[0]}}", F);
    expect_bad(h, 4, "[begin, end]");
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[1],\"data_offsets\":[0,-4]}}", F);
    expect_bad(h, 4, "non-negative");
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[1],\"data_offsets\":[8,4]}}", F);
    expect_bad(h, 8, "end before they begin");
    /* offsets beyond the file */
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[250],\"data_offsets\":[0,1000]}}", F);
    expect_bad(h, 16, "beyond the 16 bytes");
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[1],\"data_offsets\":[9223372036854775800,"
                          "9223372036854775804]}}", F);
    expect_bad(h, 16, "beyond");
    /* wrong dtype size for the byte range */
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[3],\"data_offsets\":[0,8]}}", F);
    expect_bad(h, 8, "needs 12");
    expect_bad("{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
               "needs 8");
    /* overlapping, hole, trailing bytes */
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{%s,\"shape\":[2],\"data_offsets\":[4,12]}}", F, F);
    expect_bad(h, 12, "overlap");
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{%s,\"shape\":[2],\"data_offsets\":[0,8]}}", F, F);
    expect_bad(h, 8, "overlap");
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[1],\"data_offsets\":[0,4]},"
                          "\"b\":{%s,\"shape\":[1],\"data_offsets\":[8,12]}}", F, F);
    expect_bad(h, 12, "hole");
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[1],\"data_offsets\":[0,4]}}", F);
    expect_bad(h, 8, "trailing");
    /* metadata */
    expect_bad("{\"__metadata__\":{\"format\":1}}", 0, "not a string");
    expect_bad("{\"__metadata__\":[]}", 0, "not an object");
    /* and the valid neighbours of these cases parse */
    size_t len;
    snprintf(h, sizeof h, "{\"a\":{%s,\"shape\":[1],\"data_offsets\":[0,4]},"
                          "\"b\":{%s,\"shape\":[1],\"data_offsets\":[4,8]},"
                          "\"__metadata__\":{}}   ", F, F);
    unsigned char *b = make_file(h, 8, &len);
    CHECK_MSG(safetensors_parse(&st, b, len, err) == 0, "%s", err);
    safetensors_free(&st);
    free(b);
    b = make_file("{}", 0, &len);
    CHECK_MSG(safetensors_parse(&st, b, len, err) == 0, "%s", err);
    CHECK_EQ_INT(st.num_tensors, 0);
    safetensors_free(&st);
    free(b);
}

/* Every prefix of a valid file is refused (never read past the end). */
static void test_all_truncations(void) {
    float a[3] = {1, 2, 3};
    StWrite t[2] = {{.name = "w", .ndim = 1, .shape = {3}, .data = a},
                    {.name = "v", .ndim = 1, .shape = {2}, .data = a}};
    unsigned char *buf;
    size_t len;
    char err[ERRBUF_LEN];
    CHECK(safetensors_serialize_f32(t, 2, NULL, 0, &buf, &len, err) == 0);
    int refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        SafeTensors st;
        if (safetensors_parse(&st, buf, cut, err) == -1) refused++;
        else safetensors_free(&st);
    }
    CHECK_EQ_INT(refused, (long long)len);
    free(buf);
}

static uint16_t bf16_of(float f) { return safetensors_f32_to_bf16(f); }

static void test_bf16_write(void) {
    CHECK(bf16_of(1.0f) == 0x3F80 && bf16_of(-3.0f) == 0xC040 && bf16_of(-0.0f) == 0x8000);
    CHECK(bf16_of(1.0f + ldexpf(1, -8)) == 0x3F80);                   /* tie -> even */
    CHECK(bf16_of(1.0f + 3 * ldexpf(1, -8)) == 0x3F82);               /* tie -> even */
    CHECK(bf16_of(1.0f + ldexpf(1, -8) + ldexpf(1, -20)) == 0x3F81);  /* above the tie */
    CHECK(bf16_of(3.4e38f) == 0x7F80);                                /* overflow -> inf */
    CHECK(isnan(safetensors_bf16_to_f32(bf16_of(NAN))));
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = safetensors_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && bf16_of(f) != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* a BF16 file: the header says BF16, the values read back are the rounded ones */
    float a[3] = {1.0f, 1.0f + 3 * ldexpf(1, -8), -0.15625f};
    StWrite t = {.name = "w", .ndim = 1, .shape = {3}, .data = a};
    unsigned char *buf;
    size_t len;
    char err[ERRBUF_LEN];
    CHECK_MSG(safetensors_serialize(&t, 1, ST_BF16, NULL, 0, &buf, &len, err) == 0, "%s", err);
    SafeTensors st;
    CHECK_MSG(safetensors_parse(&st, buf, len, err) == 0, "%s", err);
    const StTensor *w = safetensors_find(&st, "w");
    float back[3];
    CHECK(w && w->dtype == ST_BF16 && w->end - w->begin == 6);
    CHECK(w && safetensors_read_f32(&st, w, back, err) == 0 && back[0] == 1.0f &&
          back[1] == 1.0f + ldexpf(1, -6) && back[2] == -0.15625f);
    safetensors_free(&st);
    free(buf);
    CHECK(safetensors_serialize(&t, 1, ST_F16, NULL, 0, &buf, &len, err) == -1 &&
          strstr(err, "F16") != NULL);
}

int main(void) {
    const char *base = getenv("RLHF_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_st.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(test_roundtrip);
    TEST_RUN(test_conversions);
    TEST_RUN(test_malformed);
    TEST_RUN(test_all_truncations);
    TEST_RUN(test_bf16_write);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_EXIT();
}
