/*
 * common/hftok.c — the tokenizer.json loader (see hftok.h): checks every field that
 * changes how text is tokenized, refuses what it does not implement, and hands the
 * vocabulary, merges and added tokens to bpe.h's builder.
 */
#include "hftok.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The Split patterns implemented by bpe_pretoken_end_llama3, as tokenizer.json spells them. */
static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* 1 if obj[key] is absent, null, false, "" or 0 (an option that is off). */
static int is_off(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v) || json_is_false(v)) return 1;
    if (json_is_string(v)) return json_string_length(v) == 0;
    return 0;
}

/* obj["type"] as a string, or "" */
static const char *type_of(const json_t *obj) {
    const char *s = json_string_value(json_object_get(obj, "type"));
    return s ? s : "";
}

static int check_model(const json_t *model, const char *name, int *ignore_merges, char *err) {
    const json_t *type = json_object_get(model, "type");
    if (type && !(json_is_string(type) && !strcmp(json_string_value(type), "BPE")))
        return errf(err, "%s: model.type is \"%s\"; only byte-level \"BPE\" models are supported",
                    name, json_is_string(type) ? json_string_value(type) : "(not a string)");
    static const char *off[] = {"dropout", "continuing_subword_prefix", "end_of_word_suffix",
                                "byte_fallback"};
    for (size_t k = 0; k < sizeof off / sizeof off[0]; k++)
        if (!is_off(model, off[k]))
            return errf(err, "%s: model.%s is set; only null/false/\"\" is supported", name, off[k]);
    const json_t *im = json_object_get(model, "ignore_merges");
    if (im && !json_is_boolean(im) && !json_is_null(im))
        return errf(err, "%s: model.ignore_merges must be true or false", name);
    *ignore_merges = json_is_true(im);
    if (!json_is_object(json_object_get(model, "vocab")))
        return errf(err, "%s: model.vocab must be an object {\"token\": id, ...}", name);
    if (!json_is_array(json_object_get(model, "merges")))
        return errf(err, "%s: model.merges must be an array of \"left right\" or [left, right]",
                    name);
    return 0;
}

static int check_normalizer(const json_t *root, const char *name, int *nfc, char *err) {
    const json_t *n = json_object_get(root, "normalizer");
    *nfc = 0;
    if (!n || json_is_null(n)) return 0;
    if (!strcmp(type_of(n), "NFC")) {
        *nfc = 1;
        return 0;
    }
    if (!strcmp(type_of(n), "Sequence")) {
        const json_t *list = json_object_get(n, "normalizers");
        size_t k;
        const json_t *e;
        json_array_foreach(list, k, e) {
            if (strcmp(type_of(e), "NFC") != 0)
                return errf(err, "%s: normalizer.normalizers[%zu].type \"%s\" is not supported "
                                 "(only NFC)", name, k, type_of(e));
            *nfc = 1;
        }
        return 0;
    }
    return errf(err, "%s: normalizer.type \"%s\" is not supported (only NFC or none)", name,
                type_of(n));
}

static int check_byte_level(const json_t *bl, const char *field, const char *name, int want_regex,
                            char *err) {
    if (!is_off(bl, "add_prefix_space"))
        return errf(err, "%s: %s.add_prefix_space is true; only false is supported", name, field);
    const json_t *ur = json_object_get(bl, "use_regex");
    int use_regex = !ur || json_is_true(ur); /* the library's default is true */
    if (use_regex != want_regex)
        return errf(err, "%s: %s.use_regex is %s; only %s is supported here", name, field,
                    use_regex ? "true" : "false", want_regex ? "true" : "false");
    return 0;
}

static int check_split(const json_t *sp, const char *name, int *pretok, char *err) {
    const char *field = "pre_tokenizer.pretokenizers[0]";
    const char *re = json_string_value(json_object_get(json_object_get(sp, "pattern"), "Regex"));
    if (!re)
        return errf(err, "%s: %s.pattern.Regex is missing (only regex Split is supported)", name,
                    field);
    if (!strcmp(re, LLAMA3_PATTERN))
        *pretok = BPE_PRETOK_LLAMA3;
    else if (!strcmp(re, QWEN2_PATTERN))
        *pretok = BPE_PRETOK_QWEN2;
    else
        return errf(err,
                    "%s: %s.pattern.Regex is an unknown pattern: %s (known: the Llama 3 and "
                    "Qwen2/Qwen3 patterns, see hftok.h)",
                    name, field, re);
    const char *beh = json_string_value(json_object_get(sp, "behavior"));
    if (!beh || strcmp(beh, "Isolated") != 0)
        return errf(err, "%s: %s.behavior is \"%s\"; only \"Isolated\" is supported", name, field,
                    beh ? beh : "(missing)");
    if (!is_off(sp, "invert"))
        return errf(err, "%s: %s.invert is true; only false is supported", name, field);
    return 0;
}

/* Digits with individual_digits true (SmolLM2); false (runs of digits) is not implemented. */
static int check_digits(const json_t *d, const char *name, char *err) {
    if (!json_is_true(json_object_get(d, "individual_digits")))
        return errf(err, "%s: pre_tokenizer.pretokenizers[0].individual_digits is not true; only "
                         "Digits with individual_digits true is supported", name);
    return 0;
}

static int check_pre_tokenizer(const json_t *root, const char *name, int *pretok, char *err) {
    const json_t *p = json_object_get(root, "pre_tokenizer");
    if (!p || json_is_null(p))
        return errf(err, "%s: pre_tokenizer is null; a byte-level BPE needs ByteLevel", name);
    if (!strcmp(type_of(p), "ByteLevel")) {
        *pretok = BPE_PRETOK_GPT2;
        return check_byte_level(p, "pre_tokenizer", name, 1, err);
    }
    const json_t *list = json_object_get(p, "pretokenizers");
    const char *first = type_of(json_array_get(list, 0));
    if (strcmp(type_of(p), "Sequence") != 0 || json_array_size(list) != 2 ||
        (strcmp(first, "Split") != 0 && strcmp(first, "Digits") != 0) ||
        strcmp(type_of(json_array_get(list, 1)), "ByteLevel") != 0)
        return errf(err,
                    "%s: pre_tokenizer (type \"%s\") is not supported; supported: Sequence of "
                    "[Split, ByteLevel] or [Digits, ByteLevel], or ByteLevel",
                    name, type_of(p));
    const char *bl = "pre_tokenizer.pretokenizers[1]";
    if (!strcmp(first, "Digits")) { /* then ByteLevel splits with GPT-2's pattern */
        *pretok = BPE_PRETOK_DIGITS;
        return check_digits(json_array_get(list, 0), name, err) ||
               check_byte_level(json_array_get(list, 1), bl, name, 1, err);
    }
    if (check_split(json_array_get(list, 0), name, pretok, err)) return -1;
    return check_byte_level(json_array_get(list, 1), bl, name, 0, err);
}

static int check_decoder(const json_t *root, const char *name, char *err) {
    const json_t *d = json_object_get(root, "decoder");
    if (!d || json_is_null(d) || !strcmp(type_of(d), "ByteLevel")) return 0;
    return errf(err, "%s: decoder.type \"%s\" is not supported (only ByteLevel)", name,
                type_of(d));
}

/* added_tokens -> array (malloc'd, *n entries; contents borrowed from root). */
static int read_added(const json_t *root, const char *name, BPEAddedToken **out, int *n,
                      char *err) {
    const json_t *list = json_object_get(root, "added_tokens");
    *out = NULL;
    *n = 0;
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list)) return errf(err, "%s: added_tokens must be an array", name);
    BPEAddedToken *a = xcalloc(json_array_size(list) + 1, sizeof *a);
    size_t k;
    const json_t *e;
    json_array_foreach(list, k, e) {
        const json_t *id = json_object_get(e, "id");
        const char *content = json_string_value(json_object_get(e, "content"));
        if (!json_is_integer(id) || !content || strlen(content) != json_string_length(json_object_get(e, "content"))) {
            free(a);
            return errf(err, "%s: added_tokens[%zu] needs an integer \"id\" and a string "
                             "\"content\" (without NUL)", name, k);
        }
        static const char *off[] = {"lstrip", "rstrip", "single_word"};
        for (size_t f = 0; f < sizeof off / sizeof off[0]; f++)
            if (!is_off(e, off[f])) {
                free(a);
                return errf(err, "%s: added_tokens[%zu].%s is true; not supported", name, k,
                            off[f]);
            }
        json_int_t v = json_integer_value(id);
        a[k].id = v < 0 || v > BPE_MAX_VOCAB ? -1 : (int)v;
        a[k].content = content;
        a[k].special = json_is_true(json_object_get(e, "special"));
    }
    *out = a;
    *n = (int)json_array_size(list);
    return 0;
}

/* model.merges[k] -> its two parts (pointers into the JSON strings). */
static int merge_parts(const json_t *m, const char **l, size_t *ll, const char **r, size_t *rl) {
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ') || sp == s || sp[1] == 0) return -1;
        *l = s, *ll = (size_t)(sp - s), *r = sp + 1, *rl = strlen(sp + 1);
        return 0;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *l = json_string_value(json_array_get(m, 0)), *ll = json_string_length(json_array_get(m, 0));
        *r = json_string_value(json_array_get(m, 1)), *rl = json_string_length(json_array_get(m, 1));
        return *ll && *rl ? 0 : -1;
    }
    return -1;
}

static int build(BPE *t, const json_t *root, const char *name, char *err) {
    const json_t *model = json_object_get(root, "model");
    int ignore_merges = 0, nfc = 0, pretok = 0, n_added = 0, rc = -1;
    if (!json_is_object(model))
        return errf(err, "%s: no \"model\" object; not a Hugging Face tokenizer.json", name);
    if (check_model(model, name, &ignore_merges, err) || check_normalizer(root, name, &nfc, err) ||
        check_pre_tokenizer(root, name, &pretok, err) || check_decoder(root, name, err))
        return -1;
    BPEAddedToken *added = NULL;
    if (read_added(root, name, &added, &n_added, err)) return -1;
    char vname[ERRBUF_LEN / 2], where[ERRBUF_LEN / 2], aname[ERRBUF_LEN / 2];
    snprintf(vname, sizeof vname, "%s: model.vocab", name);
    snprintf(aname, sizeof aname, "%s: added_tokens", name);
    json_t *vocab = json_object_get(model, "vocab");
    const json_t *merges = json_object_get(model, "merges");
    const char **keys = bpe_vocab_keys(vocab, vname, 256, err);
    BPEBuilder *b = keys ? bpe_builder_new(keys, json_object_size(vocab), vname, err) : NULL;
    if (!b) goto done;
    bpe_builder_reserve_merges(b, json_array_size(merges));
    bpe_builder_any_order(b);
    size_t k;
    const json_t *m;
    json_array_foreach(merges, k, m) {
        const char *l, *r;
        size_t ll, rl;
        snprintf(where, sizeof where, "%s: model.merges[%zu]", name, k);
        if (merge_parts(m, &l, &ll, &r, &rl)) {
            errf(err, "%s: expected \"left right\" or [\"left\", \"right\"]", where);
            goto done;
        }
        if (bpe_builder_merge(b, l, ll, r, rl, where, "index", (int)k, err)) goto done;
    }
    if (bpe_builder_finish_hf(b, added, n_added, aname, t, err)) goto done;
    t->pretok = pretok;
    t->nfc = nfc;
    t->ignore_merges = ignore_merges;
    rc = 0;
done:
    bpe_builder_free(b);
    free(keys);
    free(added);
    return rc;
}

int hftok_load_string(BPE *t, const char *json, size_t len, const char *name, char *err) {
    memset(t, 0, sizeof *t);
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!root) return errf(err, "%s:%d:%d: invalid JSON: %s", name, je.line, je.column, je.text);
    int rc = json_is_object(root)
                 ? build(t, root, name, err)
                 : errf(err, "%s: expected a JSON object (a Hugging Face tokenizer.json)", name);
    json_decref(root);
    if (rc) memset(t, 0, sizeof *t);
    return rc;
}

int hftok_load_file(BPE *t, const char *path, char *err) {
    memset(t, 0, sizeof *t);
    size_t len;
    char *text = file_read_all(path, &len, err);
    if (!text) return -1;
    int rc = hftok_load_string(t, text, len, path, err);
    free(text);
    return rc;
}
