/*
 * common/toksrc.c — a tokenizer from a folder or a checkpoint, in either of its two
 * forms (see toksrc.h).
 */
#include "toksrc.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "hftok.h"
#include "util.h"

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

void toksrc_free(TokSrc *s) {
    if (!s) return;
    free(s->vocab);
    free(s->merges);
    free(s->json);
    free(s->chat_template);
    memset(s, 0, sizeof *s);
}

void toksrc_copy(TokSrc *dst, const TokSrc *src) {
    dst->vocab = dup_or_null(src->vocab);
    dst->merges = dup_or_null(src->merges);
    dst->json = dup_or_null(src->json);
    dst->chat_template = dup_or_null(src->chat_template);
}

void toksrc_to_meta(const TokSrc *s, CkptMeta *meta) {
    meta->tok_vocab = s->vocab;
    meta->tok_merges = s->merges;
    meta->tok_json = s->json;
    meta->chat_template = s->chat_template;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Of a list of named templates [{"name": ..., "template": ...}] (transformers' form for
 * several), the template named "default"; the list itself when there is none (refused). */
static json_t *default_template(json_t *list) {
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        json_t *tmpl = json_object_get(e, "template");
        if (name && strcmp(name, "default") == 0 && json_is_string(tmpl)) return tmpl;
    }
    return list;
}

/* Hugging Face keeps the chat template in tokenizer_config.json, next to tokenizer.json. */
int toksrc_dir_chat_template(const char *dir, char **out, char *err) {
    size_t n = strlen(dir) + 32, len = 0;
    char *path = xmalloc(n);
    snprintf(path, n, "%s/tokenizer_config.json", dir);
    *out = NULL;
    if (!exists(path)) {
        free(path);
        return 0;
    }
    int rc = -1;
    char *text = file_read_all(path, &len, err);
    json_error_t je;
    json_t *root = text ? json_loadb(text, len, 0, &je) : NULL;
    json_t *ct = json_is_object(root) ? json_object_get(root, "chat_template") : NULL;
    ct = json_is_array(ct) ? default_template(ct) : ct;
    if (!text) {
        /* file_read_all's err */
    } else if (!json_is_object(root)) {
        errf(err, "%s:%d:%d: %s", path, root ? 1 : je.line, root ? 1 : je.column,
             root ? "not a JSON object" : je.text);
    } else if (ct && !json_is_null(ct) && !json_is_string(ct)) {
        errf(err, "%s: field \"chat_template\" must be a string, or a list of "
                  "{\"name\", \"template\"} objects with one named \"default\"",
             path);
    } else {
        if (json_is_string(ct)) *out = xstrdup(json_string_value(ct));
        rc = 0;
    }
    json_decref(root);
    free(text);
    free(path);
    return rc;
}

int toksrc_load_dir(BPE *t, TokSrc *keep, const char *dir, char *err) {
    size_t n = strlen(dir) + 32;
    char *vp = xmalloc(n), *mp = xmalloc(n), *jp = xmalloc(n);
    snprintf(vp, n, "%s/vocab.json", dir);
    snprintf(mp, n, "%s/merges.txt", dir);
    snprintf(jp, n, "%s/tokenizer.json", dir);
    int rc;
    if (exists(vp) || !exists(jp)) {
        /* vocab.json + merges.txt; a folder with neither gets bpe_load_files's message */
        rc = bpe_load_files(t, vp, mp, err);
        if (rc == 0 && keep) bpe_save_strings(t, &keep->vocab, &keep->merges);
    } else {
        size_t len = 0;
        char *text = file_read_all(jp, &len, err);
        rc = text ? hftok_load_string(t, text, len, jp, err) : -1;
        if (rc == 0 && keep) {
            keep->json = text;
            text = NULL;
        }
        free(text);
    }
    free(vp);
    free(mp);
    free(jp);
    if (rc == 0 && keep && toksrc_dir_chat_template(dir, &keep->chat_template, err) != 0) {
        bpe_free(t);
        toksrc_free(keep);
        rc = -1;
    }
    return rc;
}

int toksrc_meta_has(const CkptMeta *meta) {
    return (meta->tok_vocab && meta->tok_merges) || meta->tok_json;
}

const char *toksrc_meta_form(const CkptMeta *meta) {
    if (meta->tok_vocab && meta->tok_merges) return "vocab+merges";
    if (meta->tok_json) return "tokenizer.json";
    return "none";
}

int toksrc_load_meta(BPE *t, TokSrc *keep, const CkptMeta *meta, const char *path, char *err) {
    int rc;
    if (meta->tok_vocab && meta->tok_merges) {
        rc = bpe_load_strings(t, meta->tok_vocab, meta->tok_merges, err);
    } else if (meta->tok_json) {
        size_t n = strlen(path) + 32;
        char *name = xmalloc(n);
        snprintf(name, n, "%s:/tokenizer/json", path);
        rc = hftok_load_string(t, meta->tok_json, strlen(meta->tok_json), name, err);
        free(name);
    } else {
        return errf(err, "%s holds no tokenizer (neither /tokenizer/vocab + /tokenizer/merges "
                         "nor /tokenizer/json): set tokenizer.path=DIR (a folder with "
                         "vocab.json + merges.txt, or tokenizer.json)", path);
    }
    if (rc != 0) return rc;
    if (keep) { /* everything the checkpoint holds flows on, in its own form */
        keep->vocab = dup_or_null(meta->tok_vocab);
        keep->merges = dup_or_null(meta->tok_merges);
        keep->json = dup_or_null(meta->tok_json);
        keep->chat_template = dup_or_null(meta->chat_template);
    }
    return 0;
}

int toksrc_load_ckpt(BPE *t, TokSrc *keep, const char *path, char *err) {
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) return -1;
    int rc = toksrc_load_meta(t, keep, ckpt_reader_meta(r), path, err);
    ckpt_reader_free(r);
    return rc;
}

int toksrc_load(BPE *t, TokSrc *keep, const char *dir, const char *ckpt, char *err) {
    if (dir && dir[0]) return toksrc_load_dir(t, keep, dir, err);
    if (!ckpt || !ckpt[0])
        return errf(err, "no tokenizer: set tokenizer.path=DIR (vocab.json + merges.txt, or "
                         "tokenizer.json) or start from a checkpoint that holds one");
    return toksrc_load_ckpt(t, keep, ckpt, err);
}
