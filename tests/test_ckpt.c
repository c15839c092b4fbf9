/*
 * tests/test_ckpt.c — HDF5 checkpoints (common/ckpt.h): bit-exact round trips of a file
 * and of an in-memory image; every kind of bad file refused with a message that names the
 * problem (truncated, flipped bit, missing tensor, wrong shape, other model size, wrong
 * format, newer version, text file, no file); a Llama-family model's config and weights;
 * keep-last-K, `latest` and ckpt_resolve; and failed writes (no room for the temp file, a file-size limit hit mid-write, an abandoned
 * writer) leaving the previous checkpoint byte-for-byte intact.
 *
 * Files are modified behind ckpt.c's back with the raw HDF5 API (delete a dataset, rewrite
 * an attribute) and by flipping bytes at H5Dget_offset, so every check can fail.
 */
#include <errno.h>
#include <hdf5.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt.h"
#include "gpt.h"
#include "rng.h"
#include "test.h"
#include "util.h"

#ifndef FLIP_TRIALS
#define FLIP_TRIALS 300 /* more with -DFLIP_TRIALS=N for a longer fuzz run */
#endif

/* HDF5 1.10 itself leaks small blocks on some error paths while parsing deliberately
 * corrupted metadata (test_random_flips). Under ASan, LeakSanitizer is told to ignore
 * allocations made inside libhdf5, in this test program only; leaks in rlhf-c's own code
 * are still reported. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libhdf5\n"; }

static char tmpdir[512];

static GPTConfig small_config(GPTHead head) {
    return (GPTConfig){.vocab_size = 64, .max_seq_len = 16, .n_layer = 2, .n_head = 2,
                       .n_embd = 16, .head = head};
}

/* Weights with no structure at all (every bit pattern matters for bit-exactness). */
static void fill_random(float *p, size_t n, uint64_t seed) {
    Rng r;
    rng_init(&r, seed);
    for (size_t i = 0; i < n; i++) p[i] = rng_normal(&r) * 0.37f;
}

static void path_in(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static char *big_text(size_t n, uint64_t seed) {
    char *s = xmalloc(n + 1);
    Rng r;
    rng_init(&r, seed);
    for (size_t i = 0; i < n; i++) s[i] = (char)(' ' + (int)rng_below(&r, 94));
    s[n] = 0;
    return s;
}

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = file_read_all(a, &na, NULL), *y = file_read_all(b, &nb, NULL);
    int eq = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

/* Write a simple checkpoint with an LM policy of config c (weights from seed). */
static int write_simple(const char *path, const GPTConfig *c, uint64_t seed, char *err) {
    GPT m;
    gpt_init(&m, c);
    fill_random(m.params, m.num_params, seed);
    CkptMeta meta = {.stage = "sft", .step = 3, .policy_version = 3, .model = *c,
                     .config = "[model]\npreset = small\n"};
    CkptWriter *w = ckpt_writer_open(path, err);
    int rc = -1;
    if (w && ckpt_write_meta(w, &meta, err) == 0 && ckpt_write_model(w, "policy", &m, err) == 0)
        rc = ckpt_writer_commit(w, err);
    else
        ckpt_writer_free(w);
    gpt_free(&m);
    return rc;
}

/* Load /policy of path into a model of config c; returns 0 or -1 with err. */
static int load_simple(const char *path, const GPTConfig *c, char *err) {
    GPT m;
    gpt_init(&m, c);
    CkptReader *r = ckpt_reader_open(path, err);
    int rc = r ? ckpt_read_model(r, "policy", &m, err) : -1;
    ckpt_reader_free(r);
    gpt_free(&m);
    return rc;
}

// ----------------------------------------------------------------------------

static void test_crc32(void) {
    CHECK_EQ_INT(ckpt_crc32(0, "123456789", 9), 0xCBF43926u); /* the standard check value */
    CHECK_EQ_INT(ckpt_crc32(0, "", 0), 0);
    char buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (char)(i * 7 + 3);
    uint32_t whole = ckpt_crc32(0, buf, 1000);
    uint32_t parts = ckpt_crc32(ckpt_crc32(0, buf, 333), buf + 333, 667);
    CHECK_EQ_INT(whole, parts);
    buf[500] ^= 4;
    CHECK(ckpt_crc32(0, buf, 1000) != whole);
}

/* CRC-32 one bit at a time, straight from the definition (the independent reference) */
static uint32_t crc32_bitwise(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* The folded path (>= 128 bytes, where the host has PCLMULQDQ) and the table path give
 * the definition's value: every length 0..700 at 3 alignments and from a non-zero start,
 * split points around the 64- and 16-byte steps, and 1 MB + 13 bytes. */
static void test_crc32_fast(void) {
    size_t big = ((size_t)1 << 20) + 13;
    unsigned char *buf = xmalloc(big + 8);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < big + 8; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
    int bad = 0;
    for (size_t n = 0; n <= 700; n++)
        for (int off = 0; off < 3; off++) {
            bad += ckpt_crc32(0, buf + off, n) != crc32_bitwise(0, buf + off, n);
            bad += ckpt_crc32(0xdeadbeefu, buf + off, n) != crc32_bitwise(0xdeadbeefu, buf + off, n);
        }
    CHECK_EQ_INT(bad, 0);
    uint32_t want = crc32_bitwise(0, buf, big);
    CHECK_EQ_INT(ckpt_crc32(0, buf, big), want);
    size_t cuts[] = {1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 191, 4096, big - 127, big - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++)
        CHECK_EQ_INT(ckpt_crc32(ckpt_crc32(0, buf, cuts[c]), buf + cuts[c], big - cuts[c]), want);
    buf[big / 2] ^= 0x10; /* one flipped bit in the middle changes it */
    CHECK(ckpt_crc32(0, buf, big) != want);
    free(buf);
}

static void test_roundtrip(void) {
    char err[ERRBUF_LEN] = "", path[700], dir[600];
    path_in(dir, sizeof dir, "rt");
    GPTConfig cp = small_config(GPT_HEAD_LM), cv = small_config(GPT_HEAD_VALUE);
    GPT pol, val;
    gpt_init(&pol, &cp);
    gpt_init(&val, &cv);
    fill_random(pol.params, pol.num_params, 1);
    fill_random(val.params, val.num_params, 2);
    pol.params[5] = -0.0f; /* sign of zero survives */
    size_t n = pol.num_params;
    float *am = xmalloc(n * sizeof(float)), *av = xmalloc(n * sizeof(float));
    fill_random(am, n, 3);
    fill_random(av, n, 4);
    Rng rngs[3];
    for (int i = 0; i < 3; i++) {
        rng_init(&rngs[i], 100 + (uint64_t)i);
        rng_next_u64(&rngs[i]);
    }
    int64_t cursor[3] = {7, -1, INT64_MAX};
    double klc[2] = {0.05, 1.0 / 3.0};
    char *vocab = big_text(200000, 9); /* > 64 KiB: beyond compact attribute storage */
    char *config = big_text(70000, 10);
    const char *merges = "#version: 0.2\n\xc4\xa0 t\nh e\n";
    CkptMeta meta = {.stage = "ppo", .step = 42, .policy_version = 41, .model = cp,
                     .config = config, .tok_vocab = vocab, .tok_merges = merges};
    CkptWriter *w = ckpt_writer_open_dir(dir, 42, 3, err);
    CHECK_MSG(w != NULL, "%s", err);
    if (!w) goto done;
    CHECK_MSG(ckpt_write_meta(w, &meta, err) == 0, "%s", err);
    CHECK_MSG(ckpt_write_model(w, "policy", &pol, err) == 0, "%s", err);
    CHECK_MSG(ckpt_write_model(w, "value", &val, err) == 0, "%s", err);
    CHECK_MSG(ckpt_write_adamw(w, "policy", am, av, n, 1234, err) == 0, "%s", err);
    for (int i = 0; i < 3; i++) CHECK_MSG(ckpt_write_rng(w, i, &rngs[i], err) == 0, "%s", err);
    CHECK_MSG(ckpt_write_i64(w, "/data/sft", cursor, 3, err) == 0, "%s", err);
    CHECK_MSG(ckpt_write_i64(w, "/data/empty", NULL, 0, err) == 0, "%s", err);
    CHECK_MSG(ckpt_write_f64(w, "/kl_ctl", klc, 2, err) == 0, "%s", err);
    CHECK_MSG(ckpt_write_attr_str(w, "run_id", "abc-123", err) == 0, "%s", err);
    CHECK_MSG(ckpt_write_attr_i64(w, "world_size", 3, err) == 0, "%s", err);
    /* misuse is refused, not written */
    CHECK(ckpt_write_attr_str(w, "step", "x", err) == -1 && strstr(err, "reserved"));
    CHECK(ckpt_write_model(w, "policy", &pol, err) == -1);
    CHECK(ckpt_write_i64(w, "relative/path", cursor, 1, err) == -1);
    CHECK(ckpt_write_i64(w, "/bad//path", cursor, 1, err) == -1);
    CHECK(ckpt_write_meta(w, &meta, err) == -1 && strstr(err, "twice"));
    CHECK_MSG(ckpt_writer_commit(w, err) == 0, "%s", err);

    snprintf(path, sizeof path, "%s/ckpt-00000042.h5", dir);
    CkptReader *r = ckpt_reader_open(path, err);
    CHECK_MSG(r != NULL, "%s", err);
    if (!r) goto done;
    const CkptMeta *mm = ckpt_reader_meta(r);
    CHECK(strcmp(mm->stage, "ppo") == 0);
    CHECK_EQ_INT(mm->step, 42);
    CHECK_EQ_INT(mm->policy_version, 41);
    CHECK(memcmp(&mm->model, &cp, sizeof cp) == 0);
    CHECK(mm->config && strcmp(mm->config, config) == 0);
    CHECK(mm->tok_vocab && strcmp(mm->tok_vocab, vocab) == 0);
    CHECK(mm->tok_merges && strcmp(mm->tok_merges, merges) == 0);

    GPT pol2, val2;
    CHECK_MSG(ckpt_load_model(r, "policy", &pol2, err) == 0, "%s", err);
    CHECK_MSG(ckpt_load_model(r, "value", &val2, err) == 0, "%s", err);
    CHECK(pol2.params && memcmp(pol2.params, pol.params, n * sizeof(float)) == 0);
    CHECK(val2.params && val2.num_params == val.num_params &&
          memcmp(val2.params, val.params, val.num_params * sizeof(float)) == 0);
    CHECK(val2.config.head == GPT_HEAD_VALUE);
    /* the trunk of the value model read into an LM's table (its head tensors ignored) */
    float *trunk = xmalloc(n * sizeof(float));
    CHECK_MSG(ckpt_read_table(r, "value", pol.tensors, pol.num_tensors, trunk, err) == 0, "%s",
              err);
    CHECK(memcmp(trunk, val.params, n * sizeof(float)) == 0);
    free(trunk);
    float *am2 = xmalloc(n * sizeof(float)), *av2 = xmalloc(n * sizeof(float));
    int64_t st = 0;
    CHECK_MSG(ckpt_read_adamw(r, "policy", am2, av2, n, &st, err) == 0, "%s", err);
    CHECK(memcmp(am, am2, n * sizeof(float)) == 0 && memcmp(av, av2, n * sizeof(float)) == 0);
    CHECK_EQ_INT(st, 1234);
    CHECK(ckpt_read_adamw(r, "policy", am2, av2, n - 1, &st, err) == -1 &&
          strstr(err, "elements"));
    for (int i = 0; i < 3; i++) {
        Rng back;
        CHECK_MSG(ckpt_read_rng(r, i, &back, err) == 0, "%s", err);
        CHECK(memcmp(&back, &rngs[i], sizeof back) == 0);
    }
    Rng none;
    CHECK(ckpt_read_rng(r, 3, &none, err) == -1 && strstr(err, "rank 3"));
    int64_t c2[3];
    size_t len = 0;
    CHECK(ckpt_read_len(r, "/data/sft", &len, err) == 0 && len == 3);
    CHECK_MSG(ckpt_read_i64(r, "/data/sft", c2, 3, err) == 0, "%s", err);
    CHECK(memcmp(c2, cursor, sizeof cursor) == 0);
    CHECK(ckpt_read_len(r, "/data/empty", &len, err) == 0 && len == 0);
    CHECK_MSG(ckpt_read_i64(r, "/data/empty", c2, 0, err) == 0, "%s", err);
    double k2[2];
    CHECK_MSG(ckpt_read_f64(r, "/kl_ctl", k2, 2, err) == 0, "%s", err);
    CHECK(memcmp(k2, klc, sizeof klc) == 0);
    /* the wrong type is refused */
    CHECK(ckpt_read_i64(r, "/kl_ctl", c2, 2, err) == -1 && strstr(err, "float64"));
    CHECK(ckpt_read_f64(r, "/data/missing", k2, 1, err) == -1 && strstr(err, "missing"));
    char *s = NULL;
    int64_t ws = 0;
    CHECK(ckpt_read_attr_str(r, "run_id", &s, err) == 0 && s && strcmp(s, "abc-123") == 0);
    free(s);
    CHECK(ckpt_read_attr_i64(r, "world_size", &ws, err) == 0 && ws == 3);
    CHECK(ckpt_read_attr_i64(r, "no_such", &ws, err) == -1 && strstr(err, "no_such"));
    CHECK(ckpt_has(r, "/policy/wte.weight") == 1);
    CHECK(ckpt_has(r, "/reward") == 0);
    CHECK(ckpt_has(r, "/nope/deeper") == 0);
    CHECK_MSG(ckpt_verify(r, err) == 0, "%s", err);
    /* the value group is not an LM */
    CHECK(ckpt_read_model(r, "value", &pol, err) == -1 && strstr(err, "head"));
    GPT none_m;
    CHECK(ckpt_load_model(r, "reward", &none_m, err) == -1 && strstr(err, "/reward"));
    CHECK(none_m.params == NULL);
    gpt_free(&none_m);
    ckpt_reader_free(r);
    gpt_free(&pol2);
    gpt_free(&val2);
    free(am2);
    free(av2);
done:
    gpt_free(&pol);
    gpt_free(&val);
    free(am);
    free(av);
    free(vocab);
    free(config);
}

/* A Llama-family model (Qwen3-style switches: q/k/v biases, q/k norms, its own head_dim,
 * untied head, llama3 rope scaling) round-trips config and weights bit-exactly; a model of
 * another family or another Llama field is refused, naming the field. */
static void test_llama_roundtrip(void) {
    char err[ERRBUF_LEN] = "", path[700], dir[600];
    path_in(dir, sizeof dir, "llama");
    GPTConfig c = {.vocab_size = 64, .max_seq_len = 16, .n_layer = 2, .n_head = 4,
                   .n_embd = 16, .head = GPT_HEAD_LM, .family = GPT_FAMILY_LLAMA,
                   .n_kv_head = 2, .head_dim = 8, .d_ff = 24, .qkv_bias = 1, .qk_norm = 1,
                   .tie_embeddings = 0, .rope_theta = 500000.0f, .norm_eps = 1e-6f,
                   .rope_factor = 8.0f, .rope_low_freq_factor = 1.0f,
                   .rope_high_freq_factor = 4.0f, .rope_orig_max_pos = 8};
    GPTConfig cs = c;
    cs.head = GPT_HEAD_SCORE;
    CHECK_MSG(gpt_config_validate(&c, err) == 0, "%s", err);
    GPT pol, rm;
    gpt_init(&pol, &c);
    gpt_init(&rm, &cs);
    CHECK(gpt_find_tensor(&pol, "lm_head.weight") != NULL);
    fill_random(pol.params, pol.num_params, 21);
    fill_random(rm.params, rm.num_params, 22);
    const char *tj = "{\"model\": {\"type\": \"BPE\"}}", *tmpl = "{% for m in messages %}{{ m.content }}{% endfor %}";
    CkptMeta meta = {.stage = "sft", .step = 3, .model = c, .tok_json = tj, .chat_template = tmpl};
    CkptWriter *w = ckpt_writer_open_dir(dir, 3, 1, err);
    CHECK_MSG(w != NULL, "%s", err);
    if (!w) goto done;
    CHECK_MSG(ckpt_write_meta(w, &meta, err) == 0, "%s", err);
    CHECK_MSG(ckpt_write_model(w, "policy", &pol, err) == 0, "%s", err);
    CHECK_MSG(ckpt_write_model(w, "reward", &rm, err) == 0, "%s", err);
    CHECK_MSG(ckpt_writer_commit(w, err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/ckpt-00000003.h5", dir);
    CkptReader *r = ckpt_reader_open(path, err);
    CHECK_MSG(r != NULL, "%s", err);
    if (!r) goto done;
    CHECK(memcmp(&ckpt_reader_meta(r)->model, &c, sizeof c) == 0);
    CHECK(ckpt_reader_meta(r)->tok_json && strcmp(ckpt_reader_meta(r)->tok_json, tj) == 0);
    CHECK(ckpt_reader_meta(r)->chat_template &&
          strcmp(ckpt_reader_meta(r)->chat_template, tmpl) == 0);
    CHECK(ckpt_reader_meta(r)->tok_vocab == NULL);
    GPT p2, r2;
    CHECK_MSG(ckpt_load_model(r, "policy", &p2, err) == 0, "%s", err);
    CHECK_MSG(ckpt_load_model(r, "reward", &r2, err) == 0, "%s", err);
    CHECK(memcmp(&p2.config, &c, sizeof c) == 0 && memcmp(&r2.config, &cs, sizeof cs) == 0);
    CHECK(p2.num_params == pol.num_params &&
          memcmp(p2.params, pol.params, pol.num_params * sizeof(float)) == 0);
    CHECK(r2.num_params == rm.num_params &&
          memcmp(r2.params, rm.params, rm.num_params * sizeof(float)) == 0);
    CHECK(ckpt_has(r, "/policy/model.layers.1.self_attn.k_norm.weight") == 1);
    /* another Llama field, another family: refused with the field's name */
    GPTConfig c3 = c;
    c3.n_kv_head = 1;
    GPT other;
    gpt_init(&other, &c3);
    CHECK(ckpt_read_model(r, "policy", &other, err) == -1 && strstr(err, "n_kv_head"));
    gpt_free(&other);
    c3 = c;
    c3.rope_theta = 10000.0f;
    gpt_init(&other, &c3);
    CHECK(ckpt_read_model(r, "policy", &other, err) == -1 && strstr(err, "rope_theta"));
    gpt_free(&other);
    GPTConfig g2 = small_config(GPT_HEAD_LM);
    gpt_init(&other, &g2);
    CHECK(ckpt_read_model(r, "policy", &other, err) == -1 && strstr(err, "family"));
    gpt_free(&other);
    CHECK_MSG(ckpt_verify(r, err) == 0, "%s", err);
    ckpt_reader_free(r);
    gpt_free(&p2);
    gpt_free(&r2);
done:
    gpt_free(&pol);
    gpt_free(&rm);
}

static void test_deterministic_bytes(void) {
    char err[ERRBUF_LEN] = "", a[600], b[600];
    GPTConfig c = small_config(GPT_HEAD_SCORE);
    path_in(a, sizeof a, "det_a.h5");
    path_in(b, sizeof b, "det_b.h5");
    CHECK_MSG(write_simple(a, &c, 5, err) == 0, "%s", err);
    CHECK_MSG(write_simple(b, &c, 5, err) == 0, "%s", err);
    CHECK(files_equal(a, b));
}

static void test_image(void) {
    char err[ERRBUF_LEN] = "";
    GPTConfig c = small_config(GPT_HEAD_LM);
    GPT m, m2, m3;
    gpt_init(&m, &c);
    gpt_init(&m2, &c);
    gpt_init(&m3, &c);
    fill_random(m.params, m.num_params, 11);
    CkptMeta meta = {.stage = "ppo", .step = 9, .policy_version = 17, .model = c};
    void *img = NULL, *img2 = NULL;
    size_t len = 0, len2 = 0;
    CHECK_MSG(ckpt_image_build(&meta, "policy", &m, NULL, &img, &len, err) == 0, "%s", err);
    CHECK(img != NULL && len > m.num_params * sizeof(float));
    /* built in an arena, again and again (a bigger model in between): the same bytes */
    CkptArena arena = {0};
    GPTConfig cb = c;
    cb.vocab_size = c.vocab_size + 4096; /* a few 64 KiB driver increments more */
    GPT mb;
    gpt_init(&mb, &cb);
    for (int k = 0; k < 3; k++) {
        void *ai = NULL;
        size_t al = 0;
        const GPT *src = k == 1 ? &mb : &m;
        CkptMeta mk = meta;
        mk.model = src->config;
        CHECK_MSG(ckpt_image_build(&mk, "policy", src, &arena, &ai, &al, err) == 0, "%s", err);
        CHECK(ai == arena.ptr && al <= arena.cap);
        if (k != 1) CHECK(al == len && memcmp(ai, img, len) == 0);
        if (k == 1) CHECK(al > len);
    }
    gpt_free(&mb);
    ckpt_arena_free(&arena);
    fill_random(m.params, m.num_params, 12);
    CHECK_MSG(ckpt_image_build(&meta, "policy", &m, NULL, &img2, &len2, err) == 0, "%s", err);
    /* two images open at once are two files */
    CkptMeta got;
    CHECK_MSG(ckpt_image_load(img2, len2, "policy", &m2, &got, err) == 0, "%s", err);
    CHECK(memcmp(m2.params, m.params, m.num_params * sizeof(float)) == 0);
    CHECK_EQ_INT(got.policy_version, 17);
    CHECK(got.config == NULL && strcmp(got.stage, "ppo") == 0);
    CHECK_MSG(ckpt_image_load(img, len, "policy", &m3, NULL, err) == 0, "%s", err);
    CHECK(memcmp(m3.params, m2.params, m.num_params * sizeof(float)) != 0);
    /* a file written from the image bytes is an ordinary checkpoint */
    char path[600];
    path_in(path, sizeof path, "from_image.h5");
    CHECK(write_bytes(path, img2, len2) == 0);
    CHECK_MSG(load_simple(path, &c, err) == 0, "%s", err);
    /* truncated images fail cleanly (the image may end in up to 64 KiB of zero padding
     * after the HDF5 file proper, so cut inside the tensor bytes) */
    size_t pb = m.num_params * sizeof(float);
    size_t cuts[] = {0, 7, 64, 512, pb / 2, pb};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        err[0] = 0;
        int rc = ckpt_image_load(img2, cuts[i], "policy", &m3, NULL, err);
        CHECK_MSG(rc == -1 && err[0], "cut at %zu: rc %d", cuts[i], rc);
    }
    CHECK(ckpt_image_load(img2, len2, "value", &m3, NULL, err) == -1 && strstr(err, "/value"));
    free(img);
    free(img2);
    gpt_free(&m);
    gpt_free(&m2);
    gpt_free(&m3);
}

/* Modify a checkpoint with raw HDF5 (fn gets the open file). */
static int h5_edit(const char *path, void (*fn)(hid_t f)) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return -1;
    fn(f);
    return H5Fclose(f) < 0 ? -1 : 0;
}

static void edit_drop_tensor(hid_t f) { H5Ldelete(f, "/policy/h.1.ln_1.weight", H5P_DEFAULT); }

static void edit_wrong_shape(hid_t f) {
    H5Ldelete(f, "/policy/ln_f.bias", H5P_DEFAULT);
    hsize_t d = 17;
    float z[17] = {0};
    hid_t sp = H5Screate_simple(1, &d, NULL);
    hid_t ds = H5Dcreate2(f, "/policy/ln_f.bias", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z);
    H5Dclose(ds);
    H5Sclose(sp);
}

static void edit_extra_tensor(hid_t f) {
    hsize_t d = 1;
    hid_t sp = H5Screate_simple(1, &d, NULL);
    hid_t ds = H5Dcreate2(f, "/policy/lm_head.weight", H5T_IEEE_F32LE, sp, H5P_DEFAULT,
                          H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(sp);
}

static void set_str_attr(hid_t f, const char *name, const char *val) {
    H5Adelete(f, name);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(val) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, val);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

static void edit_format(hid_t f) { set_str_attr(f, "format", "pytorch"); }

static void edit_version(hid_t f) {
    H5Adelete(f, "format_version");
    int64_t v = 99;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "format_version", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Sclose(sp);
}

static void edit_no_step(hid_t f) { H5Adelete(f, "step"); }

static void edit_head(hid_t f) {
    hid_t g = H5Gopen2(f, "/policy", H5P_DEFAULT);
    set_str_attr(g, "head", "banana");
    H5Gclose(g);
}

/* File offset of a dataset's raw data. */
static long long data_offset(const char *path, const char *ds_path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return -1;
    hid_t ds = H5Dopen2(f, ds_path, H5P_DEFAULT);
    haddr_t off = ds >= 0 ? H5Dget_offset(ds) : HADDR_UNDEF;
    if (ds >= 0) H5Dclose(ds);
    H5Fclose(f);
    return off == HADDR_UNDEF ? -1 : (long long)off;
}

static int flip_bit(const char *path, long long off, int bit) {
    size_t n;
    char *b = file_read_all(path, &n, NULL);
    if (!b || off < 0 || (size_t)off >= n) {
        free(b);
        return -1;
    }
    b[off] ^= (char)(1 << bit);
    int rc = write_bytes(path, b, n);
    free(b);
    return rc;
}

static void expect_load_error(const char *path, const GPTConfig *c, const char *needle,
                              const char *what) {
    char err[ERRBUF_LEN] = "";
    int rc = load_simple(path, c, err);
    CHECK_MSG(rc == -1 && strstr(err, needle) != NULL, "%s: rc %d, err \"%s\" lacks \"%s\"",
              what, rc, err, needle);
    if (rc == -1) fprintf(stderr, "    (%s -> %s)\n", what, err);
}

static void test_corrupt(void) {
    char err[ERRBUF_LEN] = "", good[600], bad[600];
    GPTConfig c = small_config(GPT_HEAD_LM);
    path_in(good, sizeof good, "good.h5");
    path_in(bad, sizeof bad, "bad.h5");
    CHECK_MSG(write_simple(good, &c, 21, err) == 0, "%s", err);
    CHECK_MSG(load_simple(good, &c, err) == 0, "%s", err);
    size_t n;
    char *bytes = file_read_all(good, &n, err);
    CHECK(bytes != NULL);
    if (!bytes) return;

    /* truncated at several sizes */
    size_t cuts[] = {0, 1, 8, 100, 1000, n / 3, n / 2, n - 100, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(bad, bytes, cuts[i]);
        err[0] = 0;
        int rc = load_simple(bad, &c, err);
        CHECK_MSG(rc == -1 && err[0], "truncated at %zu of %zu: rc %d", cuts[i], n, rc);
        if (i == 6) fprintf(stderr, "    (truncated -> %s)\n", err);
    }

    /* a flipped bit in tensor data: caught by the checksum */
    const char *tensors[] = {"/policy/wte.weight", "/policy/h.1.mlp.c_fc.bias",
                             "/policy/ln_f.weight"};
    for (int i = 0; i < 3; i++) {
        write_bytes(bad, bytes, n);
        long long off = data_offset(bad, tensors[i]);
        CHECK(off > 0);
        CHECK(flip_bit(bad, off + 4 * i + 1, i) == 0);
        expect_load_error(bad, &c, "checksum mismatch", tensors[i]);
        CkptReader *r = ckpt_reader_open(bad, err);
        CHECK(r && ckpt_verify(r, err) == -1 && strstr(err, tensors[i]));
        ckpt_reader_free(r);
    }

    /* a flipped bit in the metadata (the config text attribute) */
    write_bytes(bad, bytes, n);
    char *hit = memmem(bytes, n, "preset = small", 14);
    CHECK(hit != NULL);
    if (hit) {
        flip_bit(bad, hit - bytes + 3, 1);
        err[0] = 0;
        CHECK_MSG(load_simple(bad, &c, err) == -1, "flipped metadata bit went unnoticed");
        fprintf(stderr, "    (metadata bit -> %s)\n", err);
    }

    /* a missing tensor, a wrong shape, an extra tensor */
    write_bytes(bad, bytes, n);
    CHECK(h5_edit(bad, edit_drop_tensor) == 0);
    expect_load_error(bad, &c, "missing tensor /policy/h.1.ln_1.weight", "missing tensor");
    write_bytes(bad, bytes, n);
    CHECK(h5_edit(bad, edit_wrong_shape) == 0);
    expect_load_error(bad, &c, "/policy/ln_f.bias has shape (17) in the file, (16) expected",
                      "wrong shape");
    write_bytes(bad, bytes, n);
    CHECK(h5_edit(bad, edit_extra_tensor) == 0);
    expect_load_error(bad, &c, "lm_head.weight is not a tensor", "extra tensor");

    /* another model size, another head */
    GPTConfig other = c;
    other.n_layer = 3;
    expect_load_error(good, &other, "n_layer = 2 in the checkpoint, 3 expected", "n_layer");
    other = c;
    other.vocab_size = 65;
    expect_load_error(good, &other, "vocab_size = 64 in the checkpoint, 65 expected", "vocab");
    other = c;
    other.head = GPT_HEAD_SCORE;
    expect_load_error(good, &other, "head = lm in the checkpoint, score expected", "head");

    /* root attributes */
    write_bytes(bad, bytes, n);
    CHECK(h5_edit(bad, edit_format) == 0);
    expect_load_error(bad, &c, "format = \"pytorch\"", "format");
    write_bytes(bad, bytes, n);
    CHECK(h5_edit(bad, edit_version) == 0);
    expect_load_error(bad, &c, "format_version 99 is not supported", "version");
    write_bytes(bad, bytes, n);
    CHECK(h5_edit(bad, edit_no_step) == 0);
    expect_load_error(bad, &c, "attribute 'step' is missing", "no step");
    write_bytes(bad, bytes, n);
    CHECK(h5_edit(bad, edit_head) == 0);
    expect_load_error(bad, &c, "head = \"banana\"", "bad head");

    /* an HDF5 file that is not a checkpoint, a text file, nothing, a directory */
    hid_t f = H5Fcreate(bad, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    expect_load_error(bad, &c, "no 'format' attribute", "plain HDF5");
    const char *txt = "[model]\npreset = tiny\n";
    write_bytes(bad, txt, strlen(txt));
    expect_load_error(bad, &c, "not an HDF5 file", "text file");
    unlink(bad);
    expect_load_error(bad, &c, "No such file", "no file");
    expect_load_error(tmpdir, &c, "is a directory", "directory");
    free(bytes);
}

/* Random single-byte corruptions anywhere in the file: each load either fails with a
 * message or yields exactly the original model (a flip in unused bytes) — never a
 * silently different model, never a crash. */
static void test_random_flips(void) {
    char err[ERRBUF_LEN] = "", good[600], bad[600];
    GPTConfig c = small_config(GPT_HEAD_LM);
    path_in(good, sizeof good, "flip_good.h5");
    path_in(bad, sizeof bad, "flip_bad.h5");
    CHECK_MSG(write_simple(good, &c, 77, err) == 0, "%s", err);
    GPT ref, m;
    gpt_init(&ref, &c);
    gpt_init(&m, &c);
    fill_random(ref.params, ref.num_params, 77);
    size_t n;
    char *bytes = file_read_all(good, &n, err);
    CHECK(bytes != NULL);
    Rng r;
    rng_init(&r, 2024);
    int refused = 0, same = 0, trials = FLIP_TRIALS;
    for (int i = 0; bytes && i < trials; i++) {
        size_t off = (size_t)rng_below(&r, n);
        char saved = bytes[off];
        bytes[off] ^= (char)(1 + rng_below(&r, 255));
        write_bytes(bad, bytes, n);
        bytes[off] = saved;
        err[0] = 0;
        CkptReader *rd = ckpt_reader_open(bad, err);
        int rc = rd ? ckpt_read_model(rd, "policy", &m, err) : -1;
        ckpt_reader_free(rd);
        if (rc != 0) {
            CHECK_MSG(err[0] != 0, "byte %zu: refused without a message", off);
            refused++;
        } else {
            int eq = memcmp(m.params, ref.params, ref.num_params * sizeof(float)) == 0;
            CHECK_MSG(eq, "byte %zu of %zu: loaded a different model without an error", off, n);
            same += eq;
        }
    }
    fprintf(stderr, "    (%d random corruptions: %d refused, %d harmless)\n", trials, refused,
            same);
    /* the same for weight images */
    CkptMeta meta = {.stage = "ppo", .step = 1, .policy_version = 1, .model = c};
    void *img = NULL;
    size_t len = 0;
    CHECK_MSG(ckpt_image_build(&meta, "policy", &ref, NULL, &img, &len, err) == 0, "%s", err);
    refused = same = 0;
    for (int i = 0; img && i < trials; i++) {
        unsigned char *p = img;
        size_t off = (size_t)rng_below(&r, len);
        unsigned char saved = p[off];
        p[off] ^= (unsigned char)(1 + rng_below(&r, 255));
        err[0] = 0;
        int rc = ckpt_image_load(img, len, "policy", &m, NULL, err);
        p[off] = saved;
        if (rc != 0) {
            CHECK_MSG(err[0] != 0, "image byte %zu: refused without a message", off);
            refused++;
        } else {
            int eq = memcmp(m.params, ref.params, ref.num_params * sizeof(float)) == 0;
            CHECK_MSG(eq, "image byte %zu of %zu: a different model without an error", off, len);
            same += eq;
        }
    }
    fprintf(stderr, "    (%d random image corruptions: %d refused, %d harmless)\n", trials,
            refused, same);
    free(img);
    free(bytes);
    gpt_free(&ref);
    gpt_free(&m);
}

static long long count_files(const char *dir, const char *suffix) {
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -1 '%s' 2>/dev/null | grep -c -- '%s$'", dir, suffix);
    FILE *p = popen(cmd, "r");
    long long k = -1;
    if (p) {
        if (fscanf(p, "%lld", &k) != 1) k = -1;
        pclose(p);
    }
    return k;
}

static int write_step(const char *dir, int64_t step, int keep, const GPT *m, char *err) {
    CkptMeta meta = {.stage = "sft", .step = step, .policy_version = step, .model = m->config};
    CkptWriter *w = ckpt_writer_open_dir(dir, step, keep, err);
    if (!w) return -1;
    if (ckpt_write_meta(w, &meta, err) != 0 || ckpt_write_model(w, "policy", m, err) != 0) {
        ckpt_writer_free(w);
        return -1;
    }
    return ckpt_writer_commit(w, err);
}

static int read_latest_name(const char *dir, char *out, size_t n) {
    char p[700];
    snprintf(p, sizeof p, "%s/latest", dir);
    char *s = file_read_all(p, NULL, NULL);
    if (!s) return -1;
    snprintf(out, n, "%s", s);
    free(s);
    return 0;
}

static void test_run_dir(void) {
    char err[ERRBUF_LEN] = "", dir[600], out[700], name[64], p[700];
    path_in(dir, sizeof dir, "run");
    GPTConfig c = small_config(GPT_HEAD_LM);
    GPT m;
    gpt_init(&m, &c);
    fill_random(m.params, m.num_params, 31);
    CHECK(ckpt_resolve(dir, "auto", out, sizeof out, err) == -1); /* no such directory */
    CHECK(file_mkdirs(dir, err) == 0);
    CHECK_EQ_INT(ckpt_resolve(dir, "auto", out, sizeof out, err), 1); /* empty: fresh start */
    for (int64_t s = 1; s <= 5; s++) CHECK_MSG(write_step(dir, s * 10, 2, &m, err) == 0, "%s", err);
    CHECK_EQ_INT(count_files(dir, ".h5"), 2);
    CHECK_EQ_INT(count_files(dir, ".tmp"), 0);
    snprintf(p, sizeof p, "%s/ckpt-00000040.h5", dir);
    CHECK(access(p, F_OK) == 0);
    CHECK(read_latest_name(dir, name, sizeof name) == 0 &&
          strcmp(name, "ckpt-00000050.h5\n") == 0);
    CHECK_EQ_INT(ckpt_resolve(dir, "auto", out, sizeof out, err), 0);
    CHECK(strstr(out, "ckpt-00000050.h5") != NULL && err[0] == 0);
    CHECK_EQ_INT(ckpt_resolve(dir, "40", out, sizeof out, err), 0);
    CHECK(strstr(out, "ckpt-00000040.h5") != NULL);
    CHECK(ckpt_resolve(dir, "30", out, sizeof out, err) == -1); /* pruned */
    CHECK(ckpt_resolve(dir, "banana", out, sizeof out, err) == -1 && strstr(err, "selector"));

    /* corrupt the newest: auto falls back to the previous one and says so */
    snprintf(p, sizeof p, "%s/ckpt-00000050.h5", dir);
    size_t n;
    char *saved = file_read_all(p, &n, err);
    CHECK(flip_bit(p, data_offset(p, "/policy/wpe.weight") + 2, 3) == 0);
    CHECK_EQ_INT(ckpt_resolve(dir, "auto", out, sizeof out, err), 0);
    CHECK(strstr(out, "ckpt-00000040.h5") != NULL);
    CHECK_MSG(strstr(err, "ckpt-00000050.h5") && strstr(err, "checksum"), "warning: %s", err);
    CHECK(ckpt_resolve(dir, "latest", out, sizeof out, err) == -1 && strstr(err, "checksum"));
    CHECK(ckpt_resolve(p, "auto", out, sizeof out, err) == -1);
    if (saved) write_bytes(p, saved, n);
    free(saved);
    CHECK_EQ_INT(ckpt_resolve(p, "auto", out, sizeof out, err), 0);

    /* keep_last <= 0 keeps everything */
    CHECK_MSG(write_step(dir, 60, 0, &m, err) == 0, "%s", err);
    CHECK_EQ_INT(count_files(dir, ".h5"), 3);
    gpt_free(&m);
}

static void test_failed_writes(void) {
    char err[ERRBUF_LEN] = "", dir[600], p[700], keep[700], name[64];
    path_in(dir, sizeof dir, "fail");
    GPTConfig c = small_config(GPT_HEAD_LM);
    GPT m;
    gpt_init(&m, &c);
    fill_random(m.params, m.num_params, 41);
    CHECK_MSG(write_step(dir, 5, 3, &m, err) == 0, "%s", err);
    snprintf(keep, sizeof keep, "%s/ckpt-00000005.h5", dir);
    size_t n0;
    char *before = file_read_all(keep, &n0, err);
    CHECK(before != NULL);

    /* 1: the temp file cannot be created (a directory is in the way; tests run as root, so
     * permissions would not stop the write) */
    snprintf(p, sizeof p, "%s/ckpt-00000006.h5.tmp", dir);
    CHECK(mkdir(p, 0755) == 0);
    CHECK(write_step(dir, 6, 3, &m, err) == -1 && strstr(err, "cannot create"));
    rmdir(p);

    /* 2: a file-size limit hit in the middle of writing the tensors (EFBIG) */
    GPTConfig big = c;
    big.vocab_size = 4096; /* ~260 KiB of wte */
    GPT mb;
    gpt_init(&mb, &big);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = 64 * 1024, .rlim_max = 64 * 1024};
        setrlimit(RLIMIT_FSIZE, &rl);
        char cerr[ERRBUF_LEN] = "";
        int rc = write_step(dir, 7, 3, &mb, cerr);
        fprintf(stderr, "    (size limit -> %s)\n", cerr);
        _exit(rc == -1 ? 0 : 1);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the limited write did not fail");
    gpt_free(&mb);

    /* 3: a writer abandoned halfway */
    CkptMeta meta = {.stage = "sft", .step = 8, .model = c};
    CkptWriter *w = ckpt_writer_open_dir(dir, 8, 3, err);
    CHECK(w != NULL);
    CHECK(ckpt_write_meta(w, &meta, err) == 0);
    ckpt_writer_free(w);
    ckpt_writer_free(NULL);

    /* 4: commit without meta is refused */
    w = ckpt_writer_open_dir(dir, 9, 3, err);
    CHECK(w != NULL && ckpt_writer_commit(w, err) == -1 && strstr(err, "never called"));

    /* 5: a NaN or Inf never reaches a checkpoint (weights, then AdamW moments) */
    float keep0 = m.params[7];
    m.params[7] = NAN;
    CHECK(write_step(dir, 10, 3, &m, err) == -1 && strstr(err, "not finite") &&
          strstr(err, "[7]"));
    m.params[7] = keep0;
    meta.step = 11;
    w = ckpt_writer_open_dir(dir, 11, 3, err);
    float *mom = xalloc_floats(m.num_params);
    mom[3] = INFINITY;
    CHECK(w && ckpt_write_meta(w, &meta, err) == 0 && ckpt_write_model(w, "policy", &m, err) == 0);
    CHECK(ckpt_write_adamw(w, "policy", mom, mom, m.num_params, 1, err) == -1 &&
          strstr(err, "/optim/policy/m[3]") && strstr(err, "not finite"));
    ckpt_writer_free(w);
    /* the last element, past the first 4096-element block of the check */
    CHECK(m.num_params > 4096);
    mom[3] = 0.0f;
    mom[m.num_params - 1] = -INFINITY;
    char want[64];
    snprintf(want, sizeof want, "/optim/policy/m[%zu]", m.num_params - 1);
    w = ckpt_writer_open_dir(dir, 11, 3, err);
    CHECK(w && ckpt_write_meta(w, &meta, err) == 0 && ckpt_write_model(w, "policy", &m, err) == 0);
    CHECK(ckpt_write_adamw(w, "policy", mom, mom, m.num_params, 1, err) == -1 &&
          strstr(err, want) && strstr(err, "not finite"));
    ckpt_writer_free(w);
    free(mom);

    /* the previous checkpoint and `latest` are untouched, no debris left */
    CHECK(files_equal(keep, keep) && before);
    size_t n1;
    char *after = file_read_all(keep, &n1, err);
    CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0);
    CHECK(read_latest_name(dir, name, sizeof name) == 0 &&
          strcmp(name, "ckpt-00000005.h5\n") == 0);
    CHECK_EQ_INT(count_files(dir, ".h5"), 1);
    CHECK_EQ_INT(count_files(dir, ".tmp"), 0);
    char out[700];
    CHECK_EQ_INT(ckpt_resolve(dir, "auto", out, sizeof out, err), 0);
    CHECK(strstr(out, "ckpt-00000005.h5") != NULL);
    free(before);
    free(after);
    gpt_free(&m);
}

int main(void) {
    const char *base = getenv("RLHF_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_ckpt.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(test_crc32);
    TEST_RUN(test_crc32_fast);
    TEST_RUN(test_roundtrip);
    TEST_RUN(test_llama_roundtrip);
    TEST_RUN(test_deterministic_bytes);
    TEST_RUN(test_image);
    TEST_RUN(test_corrupt);
    TEST_RUN(test_random_flips);
    TEST_RUN(test_run_dir);
    TEST_RUN(test_failed_writes);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_EXIT();
}
