/*
 * tests/test_bpe.c — the byte-level BPE tokenizer (common/bpe.h) without network access:
 * bytes_to_unicode, the Unicode classes, GPT-2 pre-tokenization on hand-split cases,
 * training on a corpus whose merges were computed by hand (ties included), determinism
 * and vocabulary size, the naive and heap merge loops against each other and against a
 * hand-computed case where they must defer new pairs, round trips of arbitrary bytes,
 * special tokens, decode errors and U+FFFD replacement, save/load round trips, and the
 * loader's errors on malformed vocab/merges, and a tokenizer stored in an HDF5
 * checkpoint (ckpt.h) as its two strings coming back identical. GPT-2 parity with the real files is
 * tests/t_bpe_gpt2.sh. SmolLM2's pre-tokenizer (Digits, then ByteLevel's GPT-2 pattern):
 * hand-split cases, every number character alone on random text, and a tokenizer.json
 * with a "1 2" merge that the Digits step must keep from applying.
 */
#include <jansson.h>
#include <unistd.h>

#include "bpe.h"
#include "hftok.h"
#include "unicode_nfc.h"
#include "ckpt.h"
#include "rng.h"
#include "test.h"
#include "unicode_tables.h"
#include "util.h"

// ---- helpers -------------------------------------------------------------------------

/* Pre-tokens of s joined with '|' (inputs below contain no '|'). */
static char *split(const char *s, size_t n) {
    char *out = xmalloc(2 * n + 2);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t j = bpe_pretoken_end(s, n, i);
        if (i) out[o++] = '|';
        memcpy(out + o, s + i, j - i);
        o += j - i;
        i = j;
    }
    out[o] = 0;
    return out;
}

#define CHECK_SPLIT(in, want)                                                             \
    do {                                                                                  \
        char *got_ = split(in, sizeof(in) - 1);                                          \
        CHECK_MSG(strcmp(got_, want) == 0, "split(\"%s\") = \"%s\", want \"%s\"", in, got_, \
                  want);                                                                  \
        free(got_);                                                                       \
    } while (0)

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static void buf_add(Buf *b, const char *s) {
    size_t l = strlen(s);
    if (b->n + l + 1 > b->cap) {
        b->cap = (b->n + l + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, l + 1);
    b->n += l;
}

/* The byte-level spelling of byte b as a JSON string body ('"' and '\' escaped). */
static void byte_key(unsigned char b, char out[8]) {
    uint32_t cp = bpe_byte_to_unicode(b);
    if (cp == '"' || cp == '\\') {
        out[0] = '\\', out[1] = (char)cp, out[2] = 0;
    } else if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else { /* all byte-level code points are < 0x800: two UTF-8 bytes */
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

/* A vocab JSON: the 256 bytes at ids = byte value (skipping byte `skip` if 0..255), then
 * the extra keys (already in byte-level JSON form), then "<|endoftext|>" unless no_eos. */
static char *make_vocab(const char *const *extra, int n_extra, int skip, int no_eos) {
    Buf b = {0};
    char tmp[64];
    int id = 0;
    buf_add(&b, "{");
    for (int c = 0; c < 256; c++) {
        if (c == skip) continue;
        char k[8];
        byte_key((unsigned char)c, k);
        snprintf(tmp, sizeof tmp, "%s\"%s\": %d", id ? ", " : "", k, id);
        buf_add(&b, tmp);
        id++;
    }
    for (int k = 0; k < n_extra; k++) {
        snprintf(tmp, sizeof tmp, ", \"%s\": %d", extra[k], id++);
        buf_add(&b, tmp);
    }
    if (!no_eos) {
        snprintf(tmp, sizeof tmp, ", \"<|endoftext|>\": %d", id++);
        buf_add(&b, tmp);
    }
    buf_add(&b, "}");
    return b.p;
}

static int token_id(const BPE *t, const char *s) {
    size_t l = strlen(s);
    for (int id = 0; id < t->vocab_size; id++) {
        size_t tl;
        const unsigned char *p = bpe_token_bytes(t, id, &tl);
        if (tl == l && memcmp(p, s, l) == 0) return id;
    }
    return -1;
}

/* encode then decode; 1 if the bytes come back */
static int round_trips(const BPE *t, const char *s, size_t n, unsigned eflags) {
    int *ids = NULL;
    size_t cap = 0, m = bpe_encode(t, s, n, eflags, &ids, &cap);
    char *out = NULL, err[ERRBUF_LEN];
    size_t ol = 0;
    int ok = bpe_decode(t, ids, m, 0, &out, &ol, err) == 0 && ol == n && memcmp(out, s, n) == 0;
    for (size_t k = 0; k < m && ok; k++) ok = ids[k] >= 0 && ids[k] < t->vocab_size;
    free(ids);
    free(out);
    return ok;
}

static const char *MIXED[] = {
    "",
    "a",
    "Hello world",
    "I'm sure they've said we'll see; it's 2024!",
    "  leading and trailing  ",
    "tabs\tand\nnew\n\nlines\r\n",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88", /* 日本語のテキスト */
    "\xf0\x9f\x98\x80 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9", /* emoji */
    "e\xcc\x81 a\xcc\x88 \xcc\x81", /* combining marks */
    "\xff\xfe\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80 invalid \xe2\x82", /* invalid UTF-8 */
    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80", /* Привет мир */
    "<|endoftext|> in text",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
};

/* A small corpus with repetition, mixed scripts and some random bytes. */
static char **make_corpus(int n, uint64_t seed, size_t **lens) {
    static const char *words[] = {"the", " the", " cat", " sat", " on", " mat", "'s", " hat",
                                  " 42", " 7", "!", "\n", "  ", " caf\xc3\xa9",
                                  " \xe6\x97\xa5\xe6\x9c\xac", " mat.", " that", " these"};
    Rng r;
    rng_init(&r, seed);
    char **texts = xcalloc((size_t)n, sizeof(char *));
    *lens = xcalloc((size_t)n, sizeof(size_t));
    for (int k = 0; k < n; k++) {
        Buf b = {0};
        buf_add(&b, "");
        int m = 5 + (int)rng_below(&r, 30);
        for (int j = 0; j < m; j++) {
            if (rng_below(&r, 20) == 0) {
                char rb[3] = {(char)(1 + rng_below(&r, 255)), (char)(1 + rng_below(&r, 255)), 0};
                buf_add(&b, rb);
            } else {
                buf_add(&b, words[rng_below(&r, sizeof words / sizeof words[0])]);
            }
        }
        texts[k] = b.p;
        (*lens)[k] = b.n;
    }
    return texts;
}

static void free_corpus(char **texts, size_t *lens, int n) {
    for (int k = 0; k < n; k++) free(texts[k]);
    free(texts);
    free(lens);
}

// ---- tests ---------------------------------------------------------------------------

static void test_byte_mapping(void) {
    CHECK_EQ_INT(bpe_byte_to_unicode(' '), 0x120); /* 'Ġ' */
    CHECK_EQ_INT(bpe_byte_to_unicode('\n'), 0x10A); /* 'Ċ' */
    CHECK_EQ_INT(bpe_byte_to_unicode(0), 0x100);
    CHECK_EQ_INT(bpe_byte_to_unicode('a'), 'a');
    CHECK_EQ_INT(bpe_byte_to_unicode(127), 0x121);
    CHECK_EQ_INT(bpe_byte_to_unicode(160), 0x142);
    CHECK_EQ_INT(bpe_byte_to_unicode(173), 0x143);
    CHECK_EQ_INT(bpe_byte_to_unicode(255), 255);
    int seen[324] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t cp = bpe_byte_to_unicode((unsigned char)b);
        CHECK(cp > 32 && cp < 324);
        if (cp < 324) seen[cp]++;
        CHECK_EQ_INT(bpe_unicode_to_byte(cp), b);
    }
    int distinct = 0;
    for (int c = 0; c < 324; c++) distinct += seen[c] == 1;
    CHECK_EQ_INT(distinct, 256);
    CHECK_EQ_INT(bpe_unicode_to_byte(' '), -1);
    CHECK_EQ_INT(bpe_unicode_to_byte(0x144), -1);
    CHECK_EQ_INT(bpe_unicode_to_byte(173), -1);
}

static void test_char_class(void) {
    /* the table is sorted and disjoint; the ASCII fast path agrees with it */
    for (int k = 1; k < unicode_num_ranges; k++)
        CHECK(unicode_ranges[k - 1].hi < unicode_ranges[k].lo);
    for (uint32_t cp = 0; cp < 0x80; cp++) {
        UnicodeClass want = UNI_OTHER;
        for (int k = 0; k < unicode_num_ranges; k++)
            if (cp >= unicode_ranges[k].lo && cp <= unicode_ranges[k].hi)
                want = (UnicodeClass)unicode_ranges[k].cls;
        CHECK_MSG(bpe_char_class(cp) == want, "U+%04X", cp);
    }
    struct {
        uint32_t cp;
        UnicodeClass cls;
    } cases[] = {
        {'A', UNI_LETTER},    {'z', UNI_LETTER},     {0xE9, UNI_LETTER},   {0x416, UNI_LETTER},
        {0x65E5, UNI_LETTER}, {0xAC00, UNI_LETTER},  {0x2C6, UNI_LETTER},  {0x1D400, UNI_LETTER},
        {'0', UNI_NUMBER},    {0x663, UNI_NUMBER},   {0xBD, UNI_NUMBER},   {0xB2, UNI_NUMBER},
        {0x216B, UNI_NUMBER}, {0x2460, UNI_NUMBER},  {0x3007, UNI_NUMBER}, {0x1D7D8, UNI_NUMBER},
        {' ', UNI_SPACE},     {'\t', UNI_SPACE},     {'\n', UNI_SPACE},    {0x0B, UNI_SPACE},
        {0xA0, UNI_SPACE},    {0x1680, UNI_SPACE},   {0x2003, UNI_SPACE},  {0x2028, UNI_SPACE},
        {0x3000, UNI_SPACE},  {0xFEFF, UNI_SPACE},   {0x85, UNI_OTHER},    {0x1C, UNI_OTHER},
        {0x200B, UNI_OTHER},  {0x301, UNI_OTHER},    {0x1F600, UNI_OTHER}, {'!', UNI_OTHER},
        {0xD800, UNI_OTHER},  {0x10FFFF, UNI_OTHER}, {0x110000, UNI_OTHER}, {0xAD, UNI_OTHER},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        CHECK_MSG(bpe_char_class(cases[k].cp) == cases[k].cls, "U+%04X class %d, want %d",
                  cases[k].cp, bpe_char_class(cases[k].cp), cases[k].cls);
    CHECK(strlen(unicode_tables_version) >= 3);
}

static void test_pretokenize(void) {
    CHECK_SPLIT("Hello world", "Hello| world");
    CHECK_SPLIT("I'm here", "I|'m| here");
    CHECK_SPLIT("they'll've it'd", "they|'ll|'ve| it|'d");
    CHECK_SPLIT("'s't're've'm'll'd", "'s|'t|'re|'ve|'m|'ll|'d");
    CHECK_SPLIT("DON'T 'S", "DON|'|T| '|S"); /* contractions are case-sensitive */
    CHECK_SPLIT(" 's", " '|s");
    CHECK_SPLIT("'sup 'x", "'s|up| '|x");
    CHECK_SPLIT("a  b", "a| | b");
    CHECK_SPLIT("a   b", "a|  | b");
    CHECK_SPLIT("x\n\ny", "x|\n|\n|y");
    CHECK_SPLIT("x \n y", "x| \n| y");
    CHECK_SPLIT("a\tb", "a|\t|b");
    CHECK_SPLIT("a \tb", "a| |\t|b");
    CHECK_SPLIT("end   ", "end|   ");
    CHECK_SPLIT("  ", "  ");
    CHECK_SPLIT(" ", " ");
    CHECK_SPLIT("\n", "\n");
    CHECK_SPLIT("123abc 45 6.7", "123|abc| 45| 6|.|7");
    CHECK_SPLIT("hi!!! ?? ", "hi|!!!| ??| ");
    CHECK_SPLIT("  !x", " | !|x");
    CHECK_SPLIT("\xe6\x97\xa5\xe6\x9c\xac \xe8\xaa\x9e", "\xe6\x97\xa5\xe6\x9c\xac| \xe8\xaa\x9e");
    CHECK_SPLIT("e\xcc\x81t\xc3\xa9", "e|\xcc\x81|t\xc3\xa9"); /* combining mark is not \p{L} */
    CHECK_SPLIT("\xf0\x9f\x98\x80!? a", "\xf0\x9f\x98\x80!?| a");
    CHECK_SPLIT("a\xc2\xa0" "b", "a|\xc2\xa0|b");          /* NBSP is \s, not " " */
    CHECK_SPLIT("a \xc2\xa0" "b", "a| |\xc2\xa0|b");
    CHECK_SPLIT("a\xef\xbb\xbf" "b", "a|\xef\xbb\xbf|b"); /* U+FEFF is \s in JS */
    CHECK_SPLIT("a\xc2\x85" "b", "a|\xc2\x85|b");         /* U+0085 is not */
    CHECK_SPLIT("\xc2\xbd" "3x", "\xc2\xbd" "3|x");       /* ½ is \p{N} */
    CHECK_SPLIT("ab\xff\xfe" "cd \xff", "ab|\xff\xfe|cd| \xff"); /* invalid bytes: other */
    CHECK_SPLIT("a\xe2\x82", "a|\xe2\x82");                    /* truncated sequence */
    CHECK_SPLIT("\xed\xa0\x80x", "\xed\xa0\x80|x");            /* encoded surrogate */

    /* any bytes: pre-tokens cover the input exactly, each non-empty */
    Rng r;
    rng_init(&r, 11);
    char s[64];
    for (int it = 0; it < 2000; it++) {
        size_t n = 1 + rng_below(&r, sizeof s);
        for (size_t k = 0; k < n; k++) {
            static const char pool[] = " \t\n'sa1!\xc3\xa9\xe6\x97\xa5\xff";
            s[k] = rng_below(&r, 4) ? pool[rng_below(&r, sizeof pool - 1)] : (char)rng_below(&r, 256);
        }
        size_t i = 0, pieces = 0;
        int ok = 1;
        while (i < n && ok) {
            size_t j = bpe_pretoken_end(s, n, i);
            ok = j > i && j <= n;
            i = j;
            pieces++;
        }
        CHECK(ok && i == n && pieces <= n);
    }
}

static const char HUG[] = "hug hug hug pug pun";

/* Words "hug" x1, " hug" x2, " pug", " pun". By hand: (u,g) 4 -> ug; (h,ug) 3 -> hug;
 * (" ",hug) 2 ties (" ",p) 2, "hug" < "p" -> " hug"; then " p"; then three pairs of
 * count 1: (" p",u) < (" p",ug) < (u,n) by bytes -> " pu"; then (" p",ug) < (" pu",n) ->
 * " pug"; then " pun". */
static void test_train_hand(void) {
    const char *texts[] = {HUG};
    BPETrainConfig cfg = {.vocab_size = 300, .min_frequency = 1};
    BPE t;
    char err[ERRBUF_LEN];
    CHECK(bpe_train(&t, texts, NULL, 1, &cfg, err) == 0);
    CHECK_EQ_INT(t.num_merges, 7);
    CHECK_EQ_INT(t.vocab_size, 256 + 7 + 1); /* the corpus runs out of pairs first */
    CHECK_EQ_INT(t.eos_id, 263);
    CHECK_EQ_INT(t.pad_id, t.eos_id);
    char *vocab, *merges;
    bpe_save_strings(&t, &vocab, &merges);
    CHECK_MSG(strcmp(merges, "#version: 0.2\nu g\nh ug\n\xc4\xa0 hug\n\xc4\xa0 p\n\xc4\xa0p u\n"
                             "\xc4\xa0p ug\n\xc4\xa0pu n\n") == 0,
              "merges:\n%s", merges);
    CHECK(strstr(vocab, "\"\\u0120pun\": 262") || strstr(vocab, "\"\xc4\xa0pun\": 262"));
    CHECK(strstr(vocab, "\"<|endoftext|>\": 263") != NULL);
    /* GPT-2's byte ids: "!" is 0, " " is 220, "s" is 82 */
    CHECK_EQ_INT(t.byte_id['!'], 0);
    CHECK_EQ_INT(t.byte_id[' '], 220);
    CHECK_EQ_INT(t.byte_id['s'], 82);
    int *ids = NULL;
    size_t cap = 0, n = bpe_encode(&t, "hug pun hugs", 12, 0, &ids, &cap);
    CHECK_EQ_INT(n, 4);
    if (n == 4) {
        CHECK_EQ_INT(ids[0], 257);
        CHECK_EQ_INT(ids[1], 262);
        CHECK_EQ_INT(ids[2], 258);
        CHECK_EQ_INT(ids[3], 82);
    }
    free(ids);
    free(vocab);
    free(merges);
    bpe_free(&t);

    /* a smaller target stops there; min_frequency stops at the first rare pair */
    cfg.vocab_size = 260;
    CHECK(bpe_train(&t, texts, NULL, 1, &cfg, err) == 0);
    CHECK_EQ_INT(t.vocab_size, 260);
    CHECK_EQ_INT(t.num_merges, 3);
    bpe_free(&t);
    cfg.vocab_size = 300;
    cfg.min_frequency = 2;
    CHECK(bpe_train(&t, texts, NULL, 1, &cfg, err) == 0);
    CHECK_EQ_INT(t.num_merges, 4);
    bpe_free(&t);

    /* a pad token: after EOS, recognised with BPE_ENCODE_SPECIAL, cut out of the corpus */
    const char *texts2[] = {"hug<pad>hug hug"};
    cfg = (BPETrainConfig){.vocab_size = 300, .pad_token = "<pad>"};
    CHECK(bpe_train(&t, texts2, NULL, 1, &cfg, err) == 0);
    CHECK_EQ_INT(t.pad_id, t.eos_id + 1);
    CHECK_EQ_INT(t.vocab_size, t.pad_id + 1);
    CHECK(token_id(&t, "pad") < 0 && token_id(&t, "<p") < 0);
    ids = NULL, cap = 0;
    n = bpe_encode(&t, "<pad>", 5, BPE_ENCODE_SPECIAL, &ids, &cap);
    CHECK(n == 1 && ids[0] == t.pad_id);
    n = bpe_encode(&t, "<pad>", 5, 0, &ids, &cap);
    CHECK(n > 1);
    free(ids);
    char *v2, *m2;
    bpe_save_strings(&t, &v2, &m2);
    BPE u;
    CHECK(bpe_load_strings(&u, v2, m2, err) == 0);
    CHECK_EQ_INT(u.pad_id, t.pad_id);
    CHECK_EQ_INT(u.eos_id, t.eos_id);
    free(v2);
    free(m2);
    bpe_free(&u);
    bpe_free(&t);

    /* bad configurations are errors, not crashes */
    cfg = (BPETrainConfig){.vocab_size = 256};
    CHECK(bpe_train(&t, texts, NULL, 1, &cfg, err) == -1 && strstr(err, "vocab_size"));
    cfg = (BPETrainConfig){.vocab_size = 300, .pad_token = ""};
    CHECK(bpe_train(&t, texts, NULL, 1, &cfg, err) == -1 && strstr(err, "empty"));
    cfg = (BPETrainConfig){.vocab_size = 300, .pad_token = BPE_EOS_TOKEN};
    CHECK(bpe_train(&t, texts, NULL, 1, &cfg, err) == -1);
    /* "\xc4\xa0p" is how vocab.json spells the learned token " p" */
    cfg = (BPETrainConfig){.vocab_size = 300, .pad_token = "\xc4\xa0p"};
    CHECK(bpe_train(&t, texts, NULL, 1, &cfg, err) == -1 && strstr(err, "pad token"));
    CHECK_EQ_INT(t.vocab_size, 0);
    bpe_free(&t);
    bpe_free(NULL);
}

static void test_train_determinism(void) {
    size_t *lens;
    int n = 300;
    char **texts = make_corpus(n, 5, &lens);
    BPETrainConfig cfg = {.vocab_size = 420};
    BPE a, b, c;
    char err[ERRBUF_LEN];
    CHECK(bpe_train(&a, (const char *const *)texts, lens, (size_t)n, &cfg, err) == 0);
    CHECK(bpe_train(&b, (const char *const *)texts, lens, (size_t)n, &cfg, err) == 0);
    /* reversed order of texts: the same multiset of pre-tokens, the same result */
    for (int k = 0; k < n / 2; k++) {
        char *x = texts[k];
        texts[k] = texts[n - 1 - k], texts[n - 1 - k] = x;
        size_t y = lens[k];
        lens[k] = lens[n - 1 - k], lens[n - 1 - k] = y;
    }
    CHECK(bpe_train(&c, (const char *const *)texts, lens, (size_t)n, &cfg, err) == 0);
    CHECK_EQ_INT(a.vocab_size, 420); /* reached */
    char *va, *ma, *vb, *mb, *vc, *mc;
    bpe_save_strings(&a, &va, &ma);
    bpe_save_strings(&b, &vb, &mb);
    bpe_save_strings(&c, &vc, &mc);
    CHECK(strcmp(va, vb) == 0 && strcmp(ma, mb) == 0);
    CHECK(strcmp(va, vc) == 0 && strcmp(ma, mc) == 0);

    /* through files, as rlhf-tokenize train does: the same as one text per file */
    char dir[] = "/tmp/test_bpe.XXXXXX";
    const char *tmp = getenv("RLHF_TEST_TMP");
    char path[4096];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/corpus.txt", tmp ? tmp : dir);
    size_t total = 0;
    for (int k = 0; k < n; k++) total += lens[k];
    Buf all = {0};
    buf_add(&all, "");
    for (int k = 0; k < n; k++) buf_add(&all, texts[k]);
    CHECK(file_write_atomic(path, all.p, all.n, err) == 0);
    const char *paths[] = {path};
    const char *one[] = {all.p};
    size_t one_len[] = {all.n};
    BPE f, g;
    CHECK(bpe_train_files(&f, paths, 1, &cfg, err) == 0);
    CHECK(bpe_train(&g, one, one_len, 1, &cfg, err) == 0);
    char *vf, *mf, *vg, *mg;
    bpe_save_strings(&f, &vf, &mf);
    bpe_save_strings(&g, &vg, &mg);
    CHECK(strcmp(vf, vg) == 0 && strcmp(mf, mg) == 0);
    const char *missing[] = {"/nonexistent/corpus.txt"};
    BPE h;
    CHECK(bpe_train_files(&h, missing, 1, &cfg, err) == -1 && strstr(err, "/nonexistent/corpus.txt"));
    unlink(path);
    rmdir(dir);
    (void)total;

    /* every text of the corpus round-trips */
    int all_ok = 1;
    for (int k = 0; k < n; k++) all_ok &= round_trips(&a, texts[k], lens[k], 0);
    CHECK(all_ok);
    free(all.p);
    free(va), free(ma), free(vb), free(mb), free(vc), free(mc);
    free(vf), free(mf), free(vg), free(mg);
    bpe_free(&a), bpe_free(&b), bpe_free(&c), bpe_free(&f), bpe_free(&g);
    free_corpus(texts, lens, n);
}

/* Merges where a later merge re-creates an existing token: b c -> bc (0), a b -> ab (1),
 * ab c -> abc (2), abc a -> abca (3), a bc -> abc (4). On "abcabc" GPT-2 does: rank 0
 * twice -> a bc a bc; rank 4 at both places in one pass -> abc abc; no pair left. A loop
 * that pushed the new pair (abc, a) of rank 3 before finishing rank 4 would give abca bc. */
static void test_merge_order(void) {
    const char *extra[] = {"bc", "ab", "abc", "abca"};
    char *vocab = make_vocab(extra, 4, -1, 0);
    const char *merges = "#version: 0.2\nb c\na b\nab c\nabc a\na bc\n";
    BPE t;
    char err[ERRBUF_LEN];
    CHECK_MSG(bpe_load_strings(&t, vocab, merges, err) == 0, "%s", err);
    if (t.vocab_size == 0) {
        free(vocab);
        return;
    }
    int abc = token_id(&t, "abc"), abca = token_id(&t, "abca");
    CHECK_EQ_INT(abc, 258);
    CHECK_EQ_INT(abca, 259);
    for (int naive = 0; naive < 2; naive++) {
        int w[6];
        for (int k = 0; k < 6; k++) w[k] = t.byte_id[(unsigned char)"abcabc"[k]];
        int n = bpe_merge_ids(&t, w, 6, naive);
        CHECK_EQ_INT(n, 2);
        CHECK(w[0] == abc && w[1] == abc);
    }
    /* long pre-token (heap path inside bpe_encode) */
    char s[61];
    for (int k = 0; k < 20; k++) memcpy(s + 3 * k, "abc", 3);
    int *ids = NULL;
    size_t cap = 0, n = bpe_encode(&t, s, 60, 0, &ids, &cap);
    CHECK_EQ_INT(n, 20);
    int all = 1;
    for (size_t k = 0; k < n; k++) all &= ids[k] == abc;
    CHECK(all);
    free(ids);

    /* naive and heap agree on random words over {a,b,c,d} (lengths past the stack size) */
    Rng r;
    rng_init(&r, 3);
    int agree = 1;
    for (int it = 0; it < 3000; it++) {
        int len = 1 + (int)rng_below(&r, it < 2900 ? 40 : 400);
        int *x = xmalloc((size_t)len * sizeof(int)), *y = xmalloc((size_t)len * sizeof(int));
        for (int k = 0; k < len; k++) x[k] = y[k] = t.byte_id['a' + rng_below(&r, 4)];
        int nx = bpe_merge_ids(&t, x, len, 1), ny = bpe_merge_ids(&t, y, len, 0);
        agree &= nx == ny && memcmp(x, y, (size_t)nx * sizeof(int)) == 0;
        free(x);
        free(y);
    }
    CHECK(agree);
    bpe_free(&t);
    free(vocab);
}

/* naive vs heap on a trained tokenizer with many merges, over corpus-like words */
static void test_merge_naive_vs_heap(void) {
    size_t *lens;
    int n = 200;
    char **texts = make_corpus(n, 9, &lens);
    BPETrainConfig cfg = {.vocab_size = 600};
    BPE t;
    char err[ERRBUF_LEN];
    CHECK(bpe_train(&t, (const char *const *)texts, lens, (size_t)n, &cfg, err) == 0);
    int agree = 1;
    for (int k = 0; k < n; k++) {
        int m = (int)lens[k];
        int *x = xmalloc((size_t)(m + 1) * sizeof(int)), *y = xmalloc((size_t)(m + 1) * sizeof(int));
        for (int i = 0; i < m; i++) x[i] = y[i] = t.byte_id[(unsigned char)texts[k][i]];
        int nx = bpe_merge_ids(&t, x, m, 1), ny = bpe_merge_ids(&t, y, m, 0);
        agree &= nx == ny && memcmp(x, y, (size_t)nx * sizeof(int)) == 0;
        free(x);
        free(y);
    }
    CHECK(agree);
    bpe_free(&t);
    free_corpus(texts, lens, n);
}

static void test_roundtrip(void) {
    size_t *lens;
    int nc = 100;
    char **texts = make_corpus(nc, 21, &lens);
    BPETrainConfig cfg = {.vocab_size = 500};
    BPE t, u;
    char err[ERRBUF_LEN];
    CHECK(bpe_train(&t, (const char *const *)texts, lens, (size_t)nc, &cfg, err) == 0);
    /* and the same tokenizer through save -> load */
    char *v, *m;
    bpe_save_strings(&t, &v, &m);
    CHECK_MSG(bpe_load_strings(&u, v, m, err) == 0, "%s", err);
    char *v2, *m2;
    bpe_save_strings(&u, &v2, &m2);
    CHECK(strcmp(v, v2) == 0 && strcmp(m, m2) == 0);
    const BPE *toks[2] = {&t, &u};
    for (int w = 0; w < 2; w++) {
        for (size_t k = 0; k < sizeof MIXED / sizeof MIXED[0]; k++) {
            CHECK_MSG(round_trips(toks[w], MIXED[k], strlen(MIXED[k]), 0), "text %zu", k);
            CHECK_MSG(round_trips(toks[w], MIXED[k], strlen(MIXED[k]), BPE_ENCODE_SPECIAL),
                      "text %zu (special)", k);
        }
        CHECK(round_trips(toks[w], "a\0b\0\0c", 6, 0)); /* NUL bytes */
        Rng r;
        rng_init(&r, 77 + (uint64_t)w);
        int ok = 1;
        char s[300];
        for (int it = 0; it < 1000; it++) {
            size_t n = rng_below(&r, sizeof s);
            for (size_t k = 0; k < n; k++) s[k] = (char)rng_below(&r, 256);
            ok &= round_trips(toks[w], s, n, 0);
        }
        CHECK(ok);
    }
    /* the same ids from the original and the reloaded tokenizer */
    int same = 1;
    for (int k = 0; k < nc; k++) {
        int *a = NULL, *b = NULL;
        size_t ca = 0, cb = 0;
        size_t na = bpe_encode(&t, texts[k], lens[k], 0, &a, &ca);
        size_t nb = bpe_encode(&u, texts[k], lens[k], 0, &b, &cb);
        same &= na == nb && memcmp(a, b, na * sizeof(int)) == 0;
        free(a);
        free(b);
    }
    CHECK(same);
    free(v), free(m), free(v2), free(m2);
    bpe_free(&t);
    bpe_free(&u);
    free_corpus(texts, lens, nc);
}

static void test_special_and_decode(void) {
    const char *extra[] = {"ab"};
    char *vocab = make_vocab(extra, 1, -1, 0);
    BPE t;
    char err[ERRBUF_LEN];
    CHECK_MSG(bpe_load_strings(&t, vocab, "#version: 0.2\na b\n", err) == 0, "%s", err);
    free(vocab);
    if (t.vocab_size == 0) return;
    CHECK_EQ_INT(t.eos_id, 257);
    CHECK_EQ_INT(t.pad_id, 257);
    CHECK(bpe_is_special(&t, 257) && !bpe_is_special(&t, 256) && !bpe_is_special(&t, 300));
    int *ids = NULL;
    size_t cap = 0;
    size_t n = bpe_encode(&t, "ab<|endoftext|>ab", 17, BPE_ENCODE_SPECIAL, &ids, &cap);
    CHECK(n == 3 && ids[0] == 256 && ids[1] == 257 && ids[2] == 256);
    n = bpe_encode(&t, "<|endoftext|>", 13, 0, &ids, &cap);
    int has_eos = 0;
    for (size_t k = 0; k < n; k++) has_eos |= ids[k] == t.eos_id;
    CHECK(n > 1 && !has_eos);
    n = bpe_encode(&t, "<|endoftext|><|endoftext|>", 26, BPE_ENCODE_SPECIAL, &ids, &cap);
    CHECK(n == 2 && ids[0] == 257 && ids[1] == 257);
    n = bpe_encode(&t, "", 0, BPE_ENCODE_SPECIAL, &ids, &cap);
    CHECK_EQ_INT(n, 0);

    char *out;
    size_t ol;
    int seq[] = {256, 257, 'c'};
    CHECK(bpe_decode(&t, seq, 3, 0, &out, &ol, err) == 0 && strcmp(out, "ab<|endoftext|>c") == 0);
    free(out);
    CHECK(bpe_decode(&t, seq, 3, BPE_DECODE_SKIP_SPECIAL, &out, &ol, err) == 0 &&
          strcmp(out, "abc") == 0 && ol == 3);
    free(out);
    CHECK(bpe_decode(&t, seq, 0, 0, &out, &ol, err) == 0 && ol == 0 && out[0] == 0);
    free(out);
    int bad[] = {1, 258};
    CHECK(bpe_decode(&t, bad, 2, 0, &out, &ol, err) == -1 && out == NULL);
    CHECK_MSG(strstr(err, "258") && strstr(err, "position 1"), "%s", err);
    int neg[] = {-1};
    CHECK(bpe_decode(&t, neg, 1, 0, &out, &ol, err) == -1);
    CHECK(bpe_token_bytes(&t, 258, NULL) == NULL && bpe_token_bytes(&t, -1, NULL) == NULL);

    /* U+FFFD for each maximal invalid subpart (WHATWG), valid text untouched */
    struct {
        const char *in, *want;
    } rep[] = {
        {"ok \xc3\xa9", "ok \xc3\xa9"},
        {"\xff", "\xef\xbf\xbd"},
        {"\xe2\x82", "\xef\xbf\xbd"},
        {"\xe2\x82" "A", "\xef\xbf\xbd" "A"},
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf0\x9f\x98", "\xef\xbf\xbd"},
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"a\xf0\x9f\x98\x80" "b\xe2", "a\xf0\x9f\x98\x80" "b\xef\xbf\xbd"},
    };
    for (size_t k = 0; k < sizeof rep / sizeof rep[0]; k++) {
        size_t l = strlen(rep[k].in);
        int *b = xmalloc(l * sizeof(int) + 1);
        for (size_t i = 0; i < l; i++) b[i] = t.byte_id[(unsigned char)rep[k].in[i]];
        CHECK(bpe_decode(&t, b, l, BPE_DECODE_REPLACE_INVALID, &out, &ol, err) == 0);
        CHECK_MSG(strcmp(out, rep[k].want) == 0 && ol == strlen(rep[k].want), "case %zu", k);
        free(out);
        free(b);
    }
    free(ids);
    bpe_free(&t);
}

/* GPT-2's own layout: \u escapes in the JSON, "#version" header, CRLF, trailing blank. */
static void test_load_formats(void) {
    const char *extra[] = {"\\u0120t", "\\u0120th", "he", "\\u0120the"};
    char *vocab = make_vocab(extra, 4, -1, 0);
    const char *merges = "#version: 0.2\r\n\xc4\xa0 t\r\n\xc4\xa0t h\r\nh e\r\n\xc4\xa0th e\r\n\r\n";
    BPE t;
    char err[ERRBUF_LEN];
    CHECK_MSG(bpe_load_strings(&t, vocab, merges, err) == 0, "%s", err);
    if (t.vocab_size) {
        CHECK_EQ_INT(t.vocab_size, 261);
        CHECK_EQ_INT(t.num_merges, 4);
        int *ids = NULL;
        size_t cap = 0, n = bpe_encode(&t, " the theme", 10, 0, &ids, &cap);
        /* " the" -> 259; " theme": " the" + "m" + "e" */
        CHECK(n == 4 && ids[0] == 259 && ids[1] == 259 && ids[2] == 'm' && ids[3] == 'e');
        free(ids);
        /* files: the same, and the name of the file in errors */
        char dir[] = "/tmp/test_bpe.XXXXXX";
        CHECK(mkdtemp(dir) != NULL);
        char vp[256], mp[256];
        snprintf(vp, sizeof vp, "%s/vocab.json", dir);
        snprintf(mp, sizeof mp, "%s/merges.txt", dir);
        CHECK(bpe_save_files(&t, vp, mp, err) == 0);
        BPE u;
        CHECK_MSG(bpe_load_files(&u, vp, mp, err) == 0, "%s", err);
        CHECK_EQ_INT(u.vocab_size, 261);
        bpe_free(&u);
        CHECK(file_write_atomic(mp, "#version: 0.2\n\xc4\xa0 t\nq q q\n", 22, err) == 0);
        CHECK(bpe_load_files(&u, vp, mp, err) == -1);
        CHECK_MSG(strstr(err, mp) && strstr(err, ":3:"), "%s", err);
        CHECK(bpe_load_files(&u, "/nonexistent/vocab.json", mp, err) == -1 &&
              strstr(err, "/nonexistent/vocab.json"));
        unlink(vp);
        unlink(mp);
        rmdir(dir);
    }
    bpe_free(&t);
    free(vocab);
}

#define CHECK_LOAD_ERR(vocab, merges, want)                                               \
    do {                                                                                  \
        BPE t_;                                                                           \
        char e_[ERRBUF_LEN] = "";                                                         \
        int rc_ = bpe_load_strings(&t_, vocab, merges, e_);                                \
        CHECK_MSG(rc_ == -1 && strstr(e_, want) != NULL, "want error with \"%s\", got rc %d: %s", \
                  want, rc_, e_);                                                         \
        CHECK(t_.vocab_size == 0 && t_.tok_data == NULL);                                 \
        bpe_free(&t_);                                                                    \
    } while (0)

static void test_loader_errors(void) {
    const char *ab[] = {"ab"};
    char *good = make_vocab(ab, 1, -1, 0);
    const char *gm = "#version: 0.2\na b\n";
    /* JSON syntax: line and column */
    CHECK_LOAD_ERR("{\"a\": 1,", gm, "vocab:1:");
    CHECK_LOAD_ERR("{\n\"a\": 1,\n\"b\" 2\n}", gm, "vocab:3:");
    CHECK_LOAD_ERR("[1, 2]", gm, "expected a JSON object");
    CHECK_LOAD_ERR("{\"a\": 0, \"b\": 1}", gm, "at least 257");
    /* ids: integers, dense, unique; keys unique */
    char *v = xstrdup(good);
    char *p = strstr(v, "\"ab\": 256");
    memcpy(p, "\"ab\": 2.5", 9);
    CHECK_LOAD_ERR(v, gm, "must be an integer");
    memcpy(p, "\"ab\": 999", 9);
    CHECK_LOAD_ERR(v, gm, "outside 0..257");
    memcpy(p, "\"ab\": 255", 9);
    CHECK_LOAD_ERR(v, gm, "both have id 255");
    memcpy(p, "\"a\" : 256", 9);
    CHECK_LOAD_ERR(v, gm, "duplicate object key");
    free(v);
    /* a byte missing: replace byte 'z' by a multi-byte token, keeping the size */
    const char *two[] = {"ab", "zz"};
    char *nz = make_vocab(two, 2, 'z', 0);
    CHECK_LOAD_ERR(nz, gm, "no token for byte 0x7A");
    free(nz);
    /* EOS: missing; extra specials */
    const char *ab_pad[] = {"ab", "<pad>"};
    char *noeos = make_vocab(ab_pad, 2, -1, 1);
    CHECK_LOAD_ERR(noeos, gm, "no special token \"<|endoftext|>\"");
    free(noeos);
    const char *pads[] = {"ab", "<pad>", "<sep>"};
    char *twopad = make_vocab(pads, 3, -1, 0);
    CHECK_LOAD_ERR(twopad, gm, "only <|endoftext|> and one pad");
    free(twopad);
    char *onepad = make_vocab(ab_pad, 2, -1, 0);
    BPE t;
    char err[ERRBUF_LEN];
    CHECK_MSG(bpe_load_strings(&t, onepad, gm, err) == 0, "%s", err);
    CHECK(t.pad_id == 257 && t.eos_id == 258 && bpe_is_special(&t, 257));
    bpe_free(&t);
    free(onepad);
    /* merges: fields, parts, results, order, duplicates, symbols */
    CHECK_LOAD_ERR(good, "#version: 0.2\na b c\n", "merges:2: expected two tokens");
    CHECK_LOAD_ERR(good, "#version: 0.2\nab\n", "merges:2: expected two tokens");
    CHECK_LOAD_ERR(good, "#version: 0.2\na b\nab zz\n", "merges:3: \"zz\" is not in the vocabulary");
    CHECK_LOAD_ERR(good, "#version: 0.2\na c\n", "merges:2: the merge result \"ac\"");
    CHECK_LOAD_ERR(good, "#version: 0.2\na b\na b\n", "merges:3: duplicate merge \"a b\" (first on line 2)");
    CHECK_LOAD_ERR(good, "#version: 0.2\n\xd0\x80 b\n", "U+0400");
    CHECK_LOAD_ERR(good, "#version: 0.2\n\xff b\n", "not valid UTF-8");
    const char *abc[] = {"ab", "abc"};
    char *vabc = make_vocab(abc, 2, -1, 0);
    CHECK_LOAD_ERR(vabc, "#version: 0.2\nab c\na b\n", "merges:2: \"ab\" is neither a byte nor the result of an earlier merge");
    /* the special token as a merge part: it is no byte and no earlier result */
    CHECK_LOAD_ERR(vabc, "#version: 0.2\na b\nab c\n<|endoftext|> a\n", "merges:4:");
    free(vabc);
    /* tokens no merge produces are specials: one is the pad token, a second is an error */
    const char *abcd[] = {"ab", "abc", "abcd"};
    char *vabcd = make_vocab(abcd, 3, -1, 0);
    CHECK_LOAD_ERR(vabcd, "#version: 0.2\na b\n", "\"abc\" (id 257) and \"abcd\" (id 258)");
    CHECK_MSG(bpe_load_strings(&t, vabcd, "#version: 0.2\na b\nab c\n", err) == 0, "%s", err);
    CHECK(t.pad_id == 258 && t.eos_id == 259);
    bpe_free(&t);
    free(vabcd);
    /* no header line is fine too */
    CHECK_MSG(bpe_load_strings(&t, good, "a b\n", err) == 0, "%s", err);
    CHECK_EQ_INT(t.num_merges, 1);
    bpe_free(&t);
    free(good);
}

/* The checkpoint stores a tokenizer as the two strings of bpe_save_strings; loading them
 * back gives the same tokenizer (the same strings when saved again, the same ids). */
static void test_ckpt_roundtrip(void) {
    size_t *lens;
    int nc = 60;
    char **texts = make_corpus(nc, 33, &lens);
    BPETrainConfig cfg = {.vocab_size = 400, .pad_token = "<|pad|>"};
    BPE t, u;
    char err[ERRBUF_LEN];
    CHECK(bpe_train(&t, (const char *const *)texts, lens, (size_t)nc, &cfg, err) == 0);
    char *v, *m;
    bpe_save_strings(&t, &v, &m);
    const char *tmp = getenv("RLHF_TEST_TMP");
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "%s/test_bpe_ckpt.XXXXXX", tmp ? tmp : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/tok.h5", dir);
    GPTConfig gc;
    CHECK(gpt_config_preset("tiny", &gc) == 0);
    gc.vocab_size = t.vocab_size;
    CkptMeta meta = {.stage = "init", .model = gc, .config = "", .tok_vocab = v, .tok_merges = m};
    GPT model;
    gpt_init(&model, &gc);
    CkptWriter *w = ckpt_writer_open(path, err);
    CHECK_MSG(w && ckpt_write_meta(w, &meta, err) == 0 &&
                  ckpt_write_model(w, "policy", &model, err) == 0 && ckpt_writer_commit(w, err) == 0,
              "%s", err);
    gpt_free(&model);
    CkptReader *r = ckpt_reader_open(path, err);
    CHECK_MSG(r != NULL, "%s", err);
    if (r) {
        const CkptMeta *mm = ckpt_reader_meta(r);
        CHECK(mm->tok_vocab && mm->tok_merges);
        if (mm->tok_vocab && mm->tok_merges) {
            CHECK_MSG(bpe_load_strings(&u, mm->tok_vocab, mm->tok_merges, err) == 0, "%s", err);
            char *v2, *m2;
            bpe_save_strings(&u, &v2, &m2);
            CHECK(strcmp(v, v2) == 0 && strcmp(m, m2) == 0);
            CHECK(u.pad_id == t.pad_id && u.eos_id == t.eos_id && u.pad_id != u.eos_id);
            int same = 1;
            for (int k = 0; k < nc; k++) {
                int *a = NULL, *b = NULL;
                size_t ca = 0, cb = 0;
                size_t na = bpe_encode(&t, texts[k], lens[k], 0, &a, &ca);
                size_t nb = bpe_encode(&u, texts[k], lens[k], 0, &b, &cb);
                same &= na == nb && memcmp(a, b, na * sizeof(int)) == 0;
                free(a);
                free(b);
            }
            CHECK(same);
            free(v2);
            free(m2);
            bpe_free(&u);
        }
        ckpt_reader_free(r);
    }
    unlink(path);
    rmdir(dir);
    free(v);
    free(m);
    bpe_free(&t);
    free_corpus(texts, lens, nc);
}

/* Mutated files never crash the loader: each load either fails with a message and a
 * zeroed BPE, or gives a tokenizer that round-trips. */
static void test_loader_fuzz(void) {
    const char *extra[] = {"\\u0120t", "\\u0120th", "he", "\\u0120the", "<pad>"};
    char *vocab = make_vocab(extra, 5, -1, 0);
    const char *merges = "#version: 0.2\n\xc4\xa0 t\n\xc4\xa0t h\nh e\n\xc4\xa0th e\n";
    size_t vl = strlen(vocab), ml = strlen(merges);
    char *v = xmalloc(vl + 16), *m = xmalloc(ml + 16);
    Rng r;
    rng_init(&r, 99);
    int ok_loads = 0, consistent = 1;
    static const char junk[] = "{}[]\":, 0123456789\\\n#\xc4\xa0" "abc";
    for (int it = 0; it < 400; it++) {
        memcpy(v, vocab, vl + 1);
        memcpy(m, merges, ml + 1);
        char *target = rng_below(&r, 2) ? v : m;
        size_t tl = target == v ? vl : ml;
        int muts = 1 + (int)rng_below(&r, 3);
        for (int k = 0; k < muts; k++) {
            size_t at = rng_below(&r, tl);
            switch (rng_below(&r, 3)) {
            case 0: target[at] = junk[rng_below(&r, sizeof junk - 1)]; break;
            case 1: target[at] = (char)(1 + rng_below(&r, 255)); break;
            default: target[at] = 0, tl = at > 0 ? at : 1; break; /* truncate */
            }
        }
        BPE t;
        char err[ERRBUF_LEN] = "";
        if (bpe_load_strings(&t, v, m, err) == 0) {
            ok_loads++;
            consistent &= round_trips(&t, " the theme<pad>\xff", 17, BPE_ENCODE_SPECIAL);
        } else {
            consistent &= err[0] != 0 && t.vocab_size == 0 && t.tok_off == NULL;
        }
        bpe_free(&t);
    }
    CHECK(consistent);
    CHECK(ok_loads < 400 && ok_loads > 0); /* some mutations break files, some not */
    fprintf(stderr, "  (fuzz: %d of 400 mutated files loaded)\n", ok_loads);
    free(v);
    free(m);
    free(vocab);
}

/* The Llama 3 / Qwen2 pattern (hand-derived from the regex; t_hf_tokenizer.sh checks the
 * same splits against the JavaScript implementation on real files). */
static char *split_llama3(const char *s, size_t n, int digits) {
    char *out = xmalloc(2 * n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t j = bpe_pretoken_end_llama3(s, n, i, digits);
        if (i) out[o++] = '|';
        memcpy(out + o, s + i, j - i);
        o += j - i;
        i = j;
    }
    out[o] = 0;
    return out;
}

#define CHECK_SPLIT3(in, digits, want)                                                     \
    do {                                                                                  \
        char *got_ = split_llama3(in, sizeof(in) - 1, digits);                           \
        CHECK_MSG(strcmp(got_, want) == 0, "llama3 split(\"%s\") = \"%s\", want \"%s\"", in, \
                  got_, want);                                                            \
        free(got_);                                                                       \
    } while (0)

static void test_pretokenize_llama3(void) {
    CHECK_SPLIT3("DON'T It'S we'Re", 3, "DON|'T| It|'S| we|'Re");
    CHECK_SPLIT3("1234567", 3, "123|456|7");
    CHECK_SPLIT3("1234567", 1, "1|2|3|4|5|6|7");
    CHECK_SPLIT3("x\n\n  y", 3, "x|\n\n| | y");
    CHECK_SPLIT3("a\tb $c", 3, "a|\tb| $|c"); /* " $" is alternative 4: "$c" is not " ?\\p{L}+" */
    CHECK_SPLIT3("hi!!\n\nok", 3, "hi|!!\n\n|ok");
    CHECK_SPLIT3("end   ", 3, "end|   ");
    CHECK_SPLIT3("a  1", 3, "a| | |1");
    CHECK_SPLIT3(" \n x", 3, " \n| x");
}

/* SmolLM2's Sequence [Digits (individual_digits), ByteLevel (use_regex)] (hand-derived:
 * each \p{N} character alone, GPT-2's pattern on each run between them as a text of its
 * own, so a run's trailing spaces end it as at the end of a text). */
static char *split_digits(const char *s, size_t n) {
    char *out = xmalloc(2 * n + 1);
    size_t o = 0, run_end = 0;
    for (size_t i = 0; i < n;) {
        size_t j = bpe_pretoken_end_digits(s, n, i, &run_end);
        if (i) out[o++] = '|';
        memcpy(out + o, s + i, j - i);
        o += j - i;
        i = j;
    }
    out[o] = 0;
    return out;
}

#define CHECK_SPLITD(in, want)                                                            \
    do {                                                                                  \
        char *got_ = split_digits(in, sizeof(in) - 1);                                   \
        CHECK_MSG(strcmp(got_, want) == 0, "digits split(\"%s\") = \"%s\", want \"%s\"", in, \
                  got_, want);                                                            \
        free(got_);                                                                       \
    } while (0)

static void test_pretokenize_digits(void) {
    CHECK_SPLITD("Hello world", "Hello| world");
    CHECK_SPLITD("abc123 def", "abc|1|2|3| def");
    CHECK_SPLITD("a 12", "a| |1|2");       /* " 1" is not one pre-token: the space ends a run */
    CHECK_SPLITD("x  45y", "x|  |4|5|y");  /* "  " ends its run: \s+(?!\S) takes both */
    CHECK_SPLITD("it's 2024!", "it|'s| |2|0|2|4|!");
    CHECK_SPLITD("\xc2\xbd" "3x", "\xc2\xbd|3|x"); /* ½ is \p{N} too */
    CHECK_SPLITD("7", "7");
    CHECK_SPLITD("v1.2 ok", "v|1|.|2| ok");
    /* random text: every number character is a pre-token of its own, the rest are GPT-2's
     * pre-tokens of the digit-free runs, and together they cover the input */
    Rng r;
    rng_init(&r, 12);
    char s[64];
    for (int it = 0; it < 2000; it++) {
        size_t n = 1 + rng_below(&r, sizeof s - 2);
        for (size_t k = 0; k < n; k++) {
            static const char pool[] = " \t\n'sa19!.";
            s[k] = pool[rng_below(&r, sizeof pool - 1)];
        }
        size_t i = 0, run_end = 0;
        int ok = 1;
        while (i < n && ok) {
            size_t j = bpe_pretoken_end_digits(s, n, i, &run_end), e = i;
            int digit = s[i] >= '0' && s[i] <= '9';
            while (!digit && e < n && !(s[e] >= '0' && s[e] <= '9')) e++;
            ok = digit ? j == i + 1 : j == bpe_pretoken_end(s, e, i);
            i = j;
        }
        CHECK_MSG(ok && i == n, "digits split of random text %d", it);
    }
}

/* A byte-level tokenizer.json with merges "1 2" and "Ġ 1", an end-of-text token (the
 * loader needs one) and the given pre-tokenizer. */
static int load_digit_tokenizer(BPE *b, json_t *pre, char *e) {
    json_t *vocab = json_object();
    for (int c = 0; c < 256; c++) {
        char key[8];
        uint32_t cp = bpe_byte_to_unicode((unsigned char)c);
        int k = cp < 0x80 ? (key[0] = (char)cp, 1)
                          : (key[0] = (char)(0xC0 | (cp >> 6)), key[1] = (char)(0x80 | (cp & 0x3F)), 2);
        key[k] = 0;
        json_object_set_new(vocab, key, json_integer(c));
    }
    json_object_set_new(vocab, "12", json_integer(256));
    json_object_set_new(vocab, "\xc4\xa0" "1", json_integer(257));
    json_t *eot = json_pack("[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}]", "id", 258, "content",
                            "<|endoftext|>", "single_word", 0, "lstrip", 0, "rstrip", 0,
                            "normalized", 0, "special", 1);
    json_t *root = json_pack("{s:o, s:n, s:o, s:{s:s}, s:{s:s, s:o, s:[s, s]}}", "added_tokens",
                             eot, "normalizer", "pre_tokenizer", pre, "decoder", "type", "ByteLevel",
                             "model", "type", "BPE", "vocab", vocab, "merges", "1 2",
                             "\xc4\xa0 1");
    ASSERT(root != NULL);
    char *text = json_dumps(root, JSON_COMPACT);
    int rc = hftok_load_string(b, text, strlen(text), "digits tokenizer.json", e);
    free(text);
    json_decref(root);
    return rc;
}

static json_t *digits_pre(int individual, int use_regex) {
    return json_pack("{s:s, s:[{s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "type", "Sequence",
                     "pretokenizers", "type", "Digits", "individual_digits", individual, "type",
                     "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", use_regex);
}

static void test_hftok_digits(void) {
    char e[ERRBUF_LEN];
    BPE t;
    int *ids = NULL;
    size_t cap = 0;
    /* with Digits: "x", " ", "1", "2" -- the merges never see "1" next to "2" */
    CHECK_MSG(load_digit_tokenizer(&t, digits_pre(1, 1), e) == 0, "%s", e);
    size_t n = bpe_encode(&t, "x 12", 4, 0, &ids, &cap);
    CHECK_EQ_INT((int)n, 4);
    if (n == 4) CHECK(ids[0] == 'x' && ids[2] == '1' && ids[3] == '2');
    char *back = NULL;
    size_t blen = 0;
    CHECK(bpe_decode(&t, ids, n, 0, &back, &blen, e) == 0 && back && strcmp(back, "x 12") == 0);
    free(back);
    bpe_free(&t);
    /* the same vocabulary with ByteLevel alone: " 12" is one pre-token, "1 2" merges */
    json_t *bl = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                           "trim_offsets", 1, "use_regex", 1);
    CHECK_MSG(load_digit_tokenizer(&t, bl, e) == 0, "%s", e);
    n = bpe_encode(&t, "x 12", 4, 0, &ids, &cap);
    CHECK_EQ_INT((int)n, 3);
    if (n == 3) CHECK_EQ_INT(ids[2], 256);
    bpe_free(&t);
    /* what is not implemented is refused, naming the field */
    CHECK(load_digit_tokenizer(&t, digits_pre(0, 1), e) != 0);
    CHECK_MSG(strstr(e, "individual_digits") != NULL, "%s", e);
    CHECK(load_digit_tokenizer(&t, digits_pre(1, 0), e) != 0);
    CHECK_MSG(strstr(e, "pretokenizers[1].use_regex") != NULL, "%s", e);
    free(ids);
}

static char *nfc_of(const char *s) {
    size_t n;
    char *r = unicode_nfc(s, strlen(s), &n);
    return r ? r : xstrdup(s);
}

static void test_nfc(void) {
    static const char *cases[][2] = {
        {"cafe\xcc\x81", "caf\xc3\xa9"},                    /* e + U+0301 -> U+00E9 */
        {"A\xcc\x8a", "\xc3\x85"},                          /* A + ring -> U+00C5 */
        {"o\xcc\x82\xcc\x81", "\xe1\xbb\x91"},              /* o + circumflex + acute -> U+1ED1 */
        {"\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81"}, /* Hangul L V T -> U+AC01 */
        {"a\xcc\xa3\xcc\x87", "\xe1\xba\xa1\xcc\x87"},      /* dot below sorts first, composes */
        {"a\xcc\x87\xcc\xa3", "\xe1\xba\xa1\xcc\x87"},      /* same after canonical reordering */
        {"\xe2\x84\xab", "\xc3\x85"},                      /* U+212B ANGSTROM SIGN (singleton) */
        {"\xcd\x84", "\xcc\x88\xcc\x81"},                  /* U+0344 is excluded from composition */
        {"plain ascii", "plain ascii"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *got = nfc_of(cases[k][0]);
        CHECK_MSG(strcmp(got, cases[k][1]) == 0, "NFC case %zu", k);
        free(got);
    }
    size_t n;
    CHECK(unicode_nfc("abc", 3, &n) == NULL); /* the quick check: nothing to do */
    CHECK_EQ_INT((int)unicode_ccc(0x301), 230);
    CHECK_EQ_INT((int)unicode_ccc('a'), 0);
}

int main(void) {
    TEST_RUN(test_byte_mapping);
    TEST_RUN(test_char_class);
    TEST_RUN(test_pretokenize);
    TEST_RUN(test_pretokenize_llama3);
    TEST_RUN(test_pretokenize_digits);
    TEST_RUN(test_hftok_digits);
    TEST_RUN(test_nfc);
    TEST_RUN(test_train_hand);
    TEST_RUN(test_train_determinism);
    TEST_RUN(test_merge_order);
    TEST_RUN(test_merge_naive_vs_heap);
    TEST_RUN(test_roundtrip);
    TEST_RUN(test_special_and_decode);
    TEST_RUN(test_load_formats);
    TEST_RUN(test_loader_errors);
    TEST_RUN(test_loader_fuzz);
    TEST_RUN(test_ckpt_roundtrip);
    return TEST_EXIT();
}
