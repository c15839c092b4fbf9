/*
 * tests/test_toksrc.c — common/toksrc.h: a tokenizer from a folder or a checkpoint in
 * either form (vocab + merges, tokenizer.json) encodes the same ids; the texts (and the
 * chat template) it keeps are what a checkpoint written from them holds; missing or broken
 * tokenizers give errors naming the file and the way out.
 *
 * The tokenizer.json is built here from a BPE trained on a short text (its vocab and
 * merges with GPT-2's pre-tokenizer), so both forms describe the same tokenizer.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpe.h"
#include "ckpt.h"
#include "gpt.h"
#include "test.h"
#include "toksrc.h"
#include "util.h"

static char tmpdir[512];
static char err[ERRBUF_LEN];
static const char TEXT[] = "hug hug hug pug pun, the pun hugs a pug";
static const char TEMPLATE[] = "{% for m in messages %}{{ m.content }}{% endfor %}";

/* vocab.json + merges.txt text of a BPE trained on TEXT, and the tokenizer.json of it */
static char *vocab, *merges, *json;

static void make_texts(void) {
    const char *texts[] = {TEXT};
    BPETrainConfig cfg = {.vocab_size = 300, .min_frequency = 1};
    BPE t;
    if (bpe_train(&t, texts, NULL, 1, &cfg, err) != 0) fatal("bpe_train: %s", err);
    bpe_save_strings(&t, &vocab, &merges);
    json_t *v = json_loads(vocab, 0, NULL), *ms = json_array();
    char *lines = xstrdup(merges), *save = NULL;
    for (char *l = strtok_r(lines, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (strncmp(l, "#version", 8) != 0) json_array_append_new(ms, json_string(l));
    free(lines);
    json_t *root = json_pack(
        "{s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}], s:n, s:{s:s, s:b, s:b, s:b}, s:{s:s}, "
        "s:{s:s, s:n, s:s, s:s, s:b, s:o, s:o}}",
        "added_tokens", "id", t.eos_id, "content", BPE_EOS_TOKEN, "special", 1, "lstrip", 0,
        "rstrip", 0, "single_word", 0, "normalized", 0, "normalizer", "pre_tokenizer", "type",
        "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1, "decoder",
        "type", "ByteLevel", "model", "type", "BPE", "dropout", "continuing_subword_prefix", "",
        "end_of_word_suffix", "", "byte_fallback", 0, "vocab", v, "merges", ms);
    if (!root) fatal("json_pack failed");
    json = json_dumps(root, 0);
    json_decref(root);
    bpe_free(&t);
}

/* The ids of TEXT under t, as a string "1 2 3 ..." (malloc'd). */
static char *ids_of(const BPE *t) {
    int *ids = NULL;
    size_t cap = 0, n = bpe_encode(t, TEXT, strlen(TEXT), 0, &ids, &cap);
    char *s = xmalloc(n * 12 + 1);
    s[0] = 0;
    for (size_t i = 0; i < n; i++) sprintf(s + strlen(s), "%d ", ids[i]);
    free(ids);
    return s;
}

static void write_file(const char *dir, const char *name, const char *text) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (file_write_atomic(p, text, strlen(text), err) != 0) fatal("%s", err);
}

/* The same ids from vocab + merges and from tokenizer.json, in a checkpoint's metadata. */
static void test_meta_forms(void) {
    CkptMeta a = {.tok_vocab = vocab, .tok_merges = merges};
    CkptMeta b = {.tok_json = json, .chat_template = TEMPLATE};
    BPE ta, tb;
    TokSrc ka = {0}, kb = {0};
    CHECK(toksrc_load_meta(&ta, &ka, &a, "a.h5", err) == 0);
    CHECK(toksrc_load_meta(&tb, &kb, &b, "b.h5", err) == 0);
    char *ia = ids_of(&ta), *ib = ids_of(&tb);
    CHECK_MSG(strcmp(ia, ib) == 0, "vocab+merges: %s; tokenizer.json: %s", ia, ib);
    CHECK_EQ_INT(ta.eos_id, tb.eos_id);
    CHECK_EQ_INT(ta.vocab_size, tb.vocab_size);
    CHECK(ka.vocab && !strcmp(ka.vocab, vocab) && ka.merges && !ka.json && !ka.chat_template);
    CHECK(!kb.vocab && !kb.merges && kb.json && !strcmp(kb.json, json));
    CHECK(kb.chat_template && !strcmp(kb.chat_template, TEMPLATE));
    CHECK(!strcmp(toksrc_meta_form(&a), "vocab+merges"));
    CHECK(!strcmp(toksrc_meta_form(&b), "tokenizer.json"));
    CkptMeta none = {0};
    CHECK(!toksrc_meta_has(&none) && !strcmp(toksrc_meta_form(&none), "none"));
    BPE tn;
    CHECK(toksrc_load_meta(&tn, NULL, &none, "none.h5", err) == -1);
    CHECK_MSG(strstr(err, "none.h5 holds no tokenizer") && strstr(err, "tokenizer.path"), "%s",
              err);
    CkptMeta bad = {.tok_json = "{\"model\": {\"type\": \"Unigram\"}}"};
    CHECK(toksrc_load_meta(&tn, NULL, &bad, "bad.h5", err) == -1);
    CHECK_MSG(strstr(err, "bad.h5:/tokenizer/json") && strstr(err, "model.type"), "%s", err);
    free(ia);
    free(ib);
    bpe_free(&ta);
    bpe_free(&tb);
    toksrc_free(&ka);
    toksrc_free(&kb);
}

/* The kept texts written into a checkpoint come back, and load the same tokenizer. */
static void test_ckpt_flow(void) {
    CkptMeta src = {.tok_json = json, .chat_template = TEMPLATE};
    BPE t0, t1;
    TokSrc keep = {0}, back = {0};
    CHECK(toksrc_load_meta(&t0, &keep, &src, "src.h5", err) == 0);
    GPTConfig c;
    gpt_config_preset("llama-tiny", &c);
    c.vocab_size = t0.vocab_size;
    c.n_layer = 1;
    GPT m;
    gpt_init(&m, &c);
    char path[700];
    snprintf(path, sizeof path, "%s/flow.h5", tmpdir);
    CkptMeta meta = {.stage = "sft", .model = c};
    toksrc_to_meta(&keep, &meta);
    CkptWriter *w = ckpt_writer_open(path, err);
    CHECK(w != NULL);
    CHECK(ckpt_write_meta(w, &meta, err) == 0);
    CHECK(ckpt_write_model(w, "policy", &m, err) == 0);
    CHECK(ckpt_writer_commit(w, err) == 0);
    CHECK_MSG(toksrc_load_ckpt(&t1, &back, path, err) == 0, "%s", err);
    CHECK(back.json && !strcmp(back.json, json));
    CHECK(back.chat_template && !strcmp(back.chat_template, TEMPLATE));
    CHECK(!back.vocab && !back.merges);
    char *i0 = ids_of(&t0), *i1 = ids_of(&t1);
    CHECK(!strcmp(i0, i1));
    TokSrc copy = {0};
    toksrc_copy(&copy, &back);
    CHECK(copy.json && copy.json != back.json && !strcmp(copy.json, back.json));
    free(i0);
    free(i1);
    toksrc_free(&copy);
    toksrc_free(&keep);
    toksrc_free(&back);
    bpe_free(&t0);
    bpe_free(&t1);
    gpt_free(&m);
}

/* A folder: vocab.json + merges.txt first, else tokenizer.json; neither is an error. */
static void test_dir(void) {
    char d1[600], d2[600], d3[600];
    snprintf(d1, sizeof d1, "%s/vm", tmpdir);
    snprintf(d2, sizeof d2, "%s/tj", tmpdir);
    snprintf(d3, sizeof d3, "%s/empty", tmpdir);
    CHECK(mkdir(d1, 0755) == 0 && mkdir(d2, 0755) == 0 && mkdir(d3, 0755) == 0);
    write_file(d1, "vocab.json", vocab);
    write_file(d1, "merges.txt", merges);
    write_file(d1, "tokenizer.json", "not read");
    write_file(d2, "tokenizer.json", json);
    BPE a, b, c;
    TokSrc ka = {0}, kb = {0};
    CHECK_MSG(toksrc_load(&a, &ka, d1, "", err) == 0, "%s", err);
    CHECK_MSG(toksrc_load(&b, &kb, d2, "ignored.h5", err) == 0, "%s", err);
    CHECK(ka.vocab && ka.merges && !ka.json);
    CHECK(kb.json && !strcmp(kb.json, json) && !kb.vocab);
    char *ia = ids_of(&a), *ib = ids_of(&b);
    CHECK(!strcmp(ia, ib));
    CHECK(toksrc_load_dir(&c, NULL, d3, err) == -1);
    CHECK_MSG(strstr(err, "vocab.json"), "%s", err);
    CHECK(toksrc_load(&c, NULL, "", "", err) == -1);
    CHECK_MSG(strstr(err, "no tokenizer"), "%s", err);
    free(ia);
    free(ib);
    bpe_free(&a);
    bpe_free(&b);
    toksrc_free(&ka);
    toksrc_free(&kb);
}

int main(void) {
    const char *base = getenv("RLHF_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_toksrc.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    make_texts();
    TEST_RUN(test_meta_forms);
    TEST_RUN(test_ckpt_flow);
    TEST_RUN(test_dir);
    free(vocab);
    free(merges);
    free(json);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_EXIT();
}
