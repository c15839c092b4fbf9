/*
 * common/dataset.c — streamed JSONL datasets (jansson), the per-epoch data order, shards,
 * cursor, held-out split and truncation. See dataset.h for the formats and contracts.
 *
 * The index pass reads the file in 64 KiB chunks with read(2), assembles one line at a
 * time in a buffer of at most max_line_bytes (a longer line is drained, not stored),
 * validates it exactly as dataset_get will, and keeps the byte offset of each valid
 * record. For raw rlhf-label logs (DATA_PREF) it also keeps, only while indexing, one
 * small entry per judgment and a hash map (annotator, id) -> latest live judgment, so an
 * undo is O(1); cancelled pairs are dropped from the offsets at the end of the pass.
 */
#include "dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat_record.h"
#include "rng.h"

const char *data_kind_name(DataKind k) {
    switch (k) {
    case DATA_SFT: return "sft";
    case DATA_PREF: return "pref";
    case DATA_PROMPT: return "prompt";
    }
    return "?";
}

DataOptions data_options_from_config(const RlhfConfig *c, FILE *log) {
    DataOptions o = {0};
    o.bad = strcmp(c->run.bad_data, "fail") == 0 ? DATA_BAD_FAIL : DATA_BAD_SKIP;
    o.max_line_bytes = (size_t)c->data.max_line_bytes;
    o.max_warnings = DATA_DEFAULT_MAX_WARNINGS;
    o.log = log;
    o.chat_template = c->chat.template;
    o.chat_date = c->chat.date;
    o.chat_no_thinking = !c->chat.enable_thinking;
    return o;
}

// ----------------------------------------------------------------------------
// validating one line

typedef enum { LINE_RECORD, LINE_NONPAIR, LINE_UNDO, LINE_BAD } LineClass;

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

static const char *kind_needs(DataKind k) {
    switch (k) {
    case DATA_SFT: return "an sft record needs \"prompt\" and \"response\"";
    case DATA_PREF: return "a preference record needs \"prompt\", \"chosen\" and \"rejected\"";
    case DATA_PROMPT: return "a prompt record needs \"prompt\"";
    }
    return "";
}

/* The string field name of o into *out (NULL when absent or null). -1 with what filled
 * when it is required and absent, or present with another type. */
static int get_str(json_t *o, const char *name, int required, DataKind kind, const char **out,
                   char *what, size_t cap) {
    json_t *v = json_object_get(o, name);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (!required) return 0;
        snprintf(what, cap, "missing field \"%s\" (%s)", name, kind_needs(kind));
        return -1;
    }
    if (!json_is_string(v)) {
        snprintf(what, cap, "field \"%s\" must be a string, found %s", name, json_kind(v));
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* An rlhf-label item id (string or integer) as text. 1 found, 0 absent, -1 bad. */
static int get_id(json_t *o, const char *name, char *buf, size_t cap, char *what, size_t wcap) {
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        return 1;
    }
    if (json_is_string(v)) {
        snprintf(buf, cap, "%s", json_string_value(v));
        return 1;
    }
    snprintf(what, wcap, "field \"%s\" must be a string or an integer, found %s", name,
             json_kind(v));
    return -1;
}

/* The optional soft label "p_chosen": a number in [0, 1] (null or absent = 1). */
static int get_p_chosen(json_t *o, double *p, char *what, size_t cap) {
    json_t *v = json_object_get(o, "p_chosen");
    *p = 1.0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) {
        snprintf(what, cap, "field \"p_chosen\" must be a number in [0, 1] (the probability "
                            "that chosen is preferred), found %s", json_kind(v));
        return 1;
    }
    double x = json_number_value(v);
    if (!(x >= 0.0 && x <= 1.0)) {
        snprintf(what, cap, "field \"p_chosen\" = %g: must be in [0, 1] (the probability that "
                            "chosen is preferred)", x);
        return 1;
    }
    *p = x;
    return 0;
}

/* 64-bit key of (annotator, id) for undo matching: FNV-1a then a mixer. */
static uint64_t judgment_key(const char *annotator, const char *id) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *s = annotator; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    h = (h ^ 0xffu) * 0x100000001b3ULL; /* separator no UTF-8 text contains */
    for (const char *s = id; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return rng_mix64(h);
}

typedef struct {
    const char *prompt, *response, *chosen, *rejected, *category, *annotator;
    int conversational; /* the texts above point into conv (rendered message lists) */
    ChatRecord conv;
    double p_chosen; /* PREF: "p_chosen", 1 when absent */
    int is_judgment; /* PREF: the line carries "label" and "id" (rlhf-label log) */
    uint64_t key;    /* PREF: judgment or undo key */
    char undo_id[128], undo_ann[128];
} LineInfo;

/* 1 if the record's fields are message lists (a conversational record). */
static int is_conversational(json_t *o, DataKind kind) {
    if (kind == DATA_SFT) {
        json_t *m = json_object_get(o, "messages");
        return m && !json_is_null(m);
    }
    if (chat_record_is_list(json_object_get(o, "prompt"))) return 1;
    return kind == DATA_PREF && (chat_record_is_list(json_object_get(o, "chosen")) ||
                                 chat_record_is_list(json_object_get(o, "rejected")));
}

/* Render a conversational record with d's template; info's texts point into info->conv. */
static LineClass classify_conv(json_t *o, const Dataset *d, LineInfo *info, char *what,
                               size_t cap) {
    if (!d->chat_ok) {
        snprintf(what, cap, "a conversational record (message lists) needs a chat template: %.400s",
                 d->chat_err);
        return LINE_BAD;
    }
    ChatRecord *r = &info->conv;
    int rc;
    if (d->kind == DATA_SFT) {
        rc = chat_record_sft(&d->chat, json_object_get(o, "messages"), r, what, cap);
    } else if (d->kind == DATA_PREF) {
        json_t *p = json_object_get(o, "prompt");
        json_t *c = json_object_get(o, "chosen"), *j = json_object_get(o, "rejected");
        if (!c || !j) {
            snprintf(what, cap, "missing field \"%s\" (%s)", c ? "rejected" : "chosen",
                     kind_needs(d->kind));
            return LINE_BAD;
        }
        rc = chat_record_pref(&d->chat, json_is_null(p) ? NULL : p, c, j, r, what, cap);
    } else {
        rc = chat_record_prompt(&d->chat, json_object_get(o, "prompt"), r, what, cap);
    }
    if (rc) return LINE_BAD;
    info->conversational = 1;
    info->prompt = r->prompt, info->response = r->response;
    info->chosen = r->chosen, info->rejected = r->rejected;
    return LINE_RECORD;
}

/* Classify a parsed object; strings in info point into o (or info->conv). */
static LineClass classify(json_t *o, const Dataset *d, LineInfo *info, char *what,
                          size_t cap) {
    DataKind kind = d->kind;
    memset(info, 0, sizeof *info);
    if (!json_is_object(o)) {
        snprintf(what, cap, "expected a JSON object {...}, found %s", json_kind(o));
        return LINE_BAD;
    }
    if (kind == DATA_PREF) {
        char id[128];
        const char *ann;
        if (get_str(o, "annotator", 0, kind, &ann, what, cap)) return LINE_BAD;
        json_t *undo = json_object_get(o, "undo");
        if (undo) {
            int r = get_id(o, "undo", id, sizeof id, what, cap);
            if (r < 0) return LINE_BAD;
            if (r == 0) {
                snprintf(what, cap, "field \"undo\" must name an item id");
                return LINE_BAD;
            }
            info->key = judgment_key(ann ? ann : "", id);
            snprintf(info->undo_id, sizeof info->undo_id, "%s", id);
            snprintf(info->undo_ann, sizeof info->undo_ann, "%s", ann ? ann : "");
            return LINE_UNDO;
        }
        json_t *label = json_object_get(o, "label");
        if (label && json_is_string(label)) {
            int r = get_id(o, "id", id, sizeof id, what, cap);
            if (r < 0) return LINE_BAD;
            if (r == 1) {
                info->is_judgment = 1;
                info->key = judgment_key(ann ? ann : "", id);
            }
            const char *l = json_string_value(label);
            if (!strcmp(l, "tie") || !strcmp(l, "skip") || !strcmp(l, "up") || !strcmp(l, "down"))
                return LINE_NONPAIR;
        }
    }
    if (is_conversational(o, kind)) {
        if (classify_conv(o, d, info, what, cap) != LINE_RECORD) return LINE_BAD;
    } else {
        if (get_str(o, "prompt", 1, kind, &info->prompt, what, cap)) return LINE_BAD;
        if (kind == DATA_SFT && get_str(o, "response", 1, kind, &info->response, what, cap))
            return LINE_BAD;
        if (kind == DATA_PREF) {
            if (get_str(o, "chosen", 1, kind, &info->chosen, what, cap)) return LINE_BAD;
            if (get_str(o, "rejected", 1, kind, &info->rejected, what, cap)) return LINE_BAD;
        }
    }
    if (kind == DATA_PREF && get_str(o, "annotator", 0, kind, &info->annotator, what, cap))
        return LINE_BAD;
    if (kind == DATA_PREF && get_p_chosen(o, &info->p_chosen, what, cap)) return LINE_BAD;
    if (get_str(o, "category", 0, kind, &info->category, what, cap)) return LINE_BAD;
    return LINE_RECORD;
}

/* Check and parse one line (without '\n'; a trailing '\r' is dropped). Returns the
 * class; *out gets the object (caller json_decref's it) unless LINE_BAD or blank. blank
 * is set for whitespace-only lines (then the class is LINE_NONPAIR and nothing else). */
static LineClass parse_line(char *line, size_t len, const Dataset *d, json_t **out,
                            LineInfo *info, int *blank, char *what, size_t cap) {
    *out = NULL;
    *blank = 0;
    memset(info, 0, sizeof *info);
    if (len > 0 && line[len - 1] == '\r') len--;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
    if (i == len) {
        *blank = 1;
        return LINE_NONPAIR;
    }
    size_t bad;
    if (!utf8_valid(line, len, &bad)) {
        snprintf(what, cap, "invalid UTF-8 at byte %zu of the line (the file must be UTF-8)",
                 bad + 1);
        return LINE_BAD;
    }
    json_error_t jerr;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!o) {
        snprintf(what, cap, "malformed JSON at column %d: %s", jerr.column, jerr.text);
        return LINE_BAD;
    }
    LineClass c = classify(o, d, info, what, cap);
    if (c == LINE_BAD) {
        chat_record_free(&info->conv);
        json_decref(o);
        return c;
    }
    *out = o;
    return c;
}

// ----------------------------------------------------------------------------
// the index pass

typedef struct {
    Dataset *d;
    DataBadPolicy policy;
    int max_warnings;
    FILE *log;
    int64_t cap;
    /* rlhf-label judgments (PREF only), alive only during the pass */
    int64_t nj, capj;
    uint64_t *jkey;
    int64_t *jprev, *jrec; /* previous live judgment of the key; record index or -1 */
    uint64_t *mkey;
    int64_t *mval; /* map key -> latest live judgment, -1 = empty slot */
    int64_t mcap, mused;
} Indexer;

static int64_t *map_slot(Indexer *ix, uint64_t key) {
    int64_t mask = ix->mcap - 1;
    for (int64_t s = (int64_t)(key & (uint64_t)mask);; s = (s + 1) & mask) {
        if (ix->mval[s] == -1 || ix->mkey[s] == key) {
            ix->mkey[s] = key;
            return &ix->mval[s];
        }
    }
}

static void map_grow(Indexer *ix) {
    int64_t old = ix->mcap;
    uint64_t *ok = ix->mkey;
    int64_t *ov = ix->mval;
    ix->mcap = old ? 2 * old : 1024;
    ix->mkey = xcalloc((size_t)ix->mcap, sizeof(uint64_t));
    ix->mval = xmalloc((size_t)ix->mcap * sizeof(int64_t));
    for (int64_t i = 0; i < ix->mcap; i++) ix->mval[i] = -1;
    for (int64_t i = 0; i < old; i++)
        if (ov[i] != -1) *map_slot(ix, ok[i]) = ov[i];
    free(ok);
    free(ov);
}

/* Push a judgment (record index rec, or -1 for a non-pair) on its key's stack. */
static void judgment_push(Indexer *ix, uint64_t key, int64_t rec) {
    if (ix->nj == ix->capj) {
        ix->capj = ix->capj ? 2 * ix->capj : 1024;
        ix->jkey = xrealloc(ix->jkey, (size_t)ix->capj * sizeof(uint64_t));
        ix->jprev = xrealloc(ix->jprev, (size_t)ix->capj * sizeof(int64_t));
        ix->jrec = xrealloc(ix->jrec, (size_t)ix->capj * sizeof(int64_t));
    }
    if (2 * (ix->mused + 1) > ix->mcap) map_grow(ix);
    int64_t *slot = map_slot(ix, key);
    if (*slot == -1) ix->mused++;
    int64_t j = ix->nj++;
    ix->jkey[j] = key;
    ix->jprev[j] = *slot;
    ix->jrec[j] = rec;
    *slot = j;
}

/* Cancel the latest live judgment of key: 1 done, 0 nothing to cancel. */
static int judgment_undo(Indexer *ix, uint64_t key) {
    if (ix->mcap == 0) return 0;
    /* a missing key lands on an empty slot whose value stays -1 (still empty) */
    int64_t *slot = map_slot(ix, key);
    if (*slot < 0) return 0; /* -1: never judged; -2: every judgment already undone */
    int64_t top = *slot;
    if (ix->jrec[top] >= 0) {
        ix->d->offset[ix->jrec[top]] = -1; /* dropped at the end of the pass */
        ix->d->n_undone++;
    }
    *slot = ix->jprev[top] >= 0 ? ix->jprev[top] : -2; /* -2: key known, stack empty */
    return 1;
}

/* Report a bad line. Returns -1 when the policy is fail (err filled), else 0. */
static int bad_line(Indexer *ix, int64_t lineno, const char *what, char *err) {
    Dataset *d = ix->d;
    char msg[ERRBUF_LEN];
    snprintf(msg, sizeof msg, "%s:%lld: %s", d->path, (long long)lineno, what);
    if (d->n_bad == 0) snprintf(d->first_bad, sizeof d->first_bad, "%s", msg);
    if (ix->policy == DATA_BAD_FAIL)
        return errf(err,
                    "%s (run.bad_data = fail stops at the first bad line: fix it, or set "
                    "run.bad_data = skip)",
                    msg);
    if (ix->log) {
        if (d->n_bad < ix->max_warnings)
            fprintf(ix->log, "warning: %s; line skipped\n", msg);
        else if (d->n_bad == ix->max_warnings)
            fprintf(ix->log, "warning: %s: more bad lines; only their count is reported\n",
                    d->path);
    }
    d->n_bad++;
    return 0;
}

static int index_line(Indexer *ix, char *line, size_t len, int too_long, int64_t lineno,
                      int64_t offset, char *err) {
    Dataset *d = ix->d;
    char what[ERRBUF_LEN];
    d->n_lines++;
    if (too_long) {
        snprintf(what, sizeof what,
                 "line longer than %zu bytes (data.max_line_bytes; raise it if the line is "
                 "meant to be this long)",
                 d->max_line_bytes);
        return bad_line(ix, lineno, what, err);
    }
    json_t *o;
    LineInfo info;
    int blank;
    LineClass c = parse_line(line, len, d, &o, &info, &blank, what, sizeof what);
    if (blank) {
        d->n_blank++;
        return 0;
    }
    if (c == LINE_BAD) return bad_line(ix, lineno, what, err);
    json_decref(o);
    d->n_conv += info.conversational;
    chat_record_free(&info.conv);
    if (c == LINE_UNDO) {
        if (!judgment_undo(ix, info.key)) {
            snprintf(what, sizeof what,
                     "undo of item \"%s\" by \"%s\" has no judgment before it to cancel",
                     info.undo_id, info.undo_ann);
            return bad_line(ix, lineno, what, err);
        }
        d->n_undo++;
        return 0;
    }
    if (c == LINE_NONPAIR) {
        d->n_nonpair++;
        if (info.is_judgment) judgment_push(ix, info.key, -1);
        return 0;
    }
    if (d->n == ix->cap) {
        ix->cap = ix->cap ? 2 * ix->cap : 4096;
        d->offset = xrealloc(d->offset, (size_t)ix->cap * sizeof(int64_t));
    }
    if (info.is_judgment) judgment_push(ix, info.key, d->n);
    d->offset[d->n++] = offset;
    return 0;
}

/* The chat template of conversational records, or why there is none (reported only when
 * such a record appears: plain files never need one). */
static void open_chat(Dataset *d, const DataOptions *o) {
    const char *name = o->chat_template ? o->chat_template : "auto";
    d->chat_ok = chat_template_resolve(&d->chat, name, o->chat_jinja, d->chat_err) == 0;
    if (!d->chat_ok) return;
    d->chat.enable_thinking = !o->chat_no_thinking;
    if (o->chat_date) snprintf(d->chat.date, sizeof d->chat.date, "%s", o->chat_date);
}

int dataset_open(Dataset *d, const char *path, DataKind kind, const DataOptions *opt, char *err) {
    memset(d, 0, sizeof *d);
    d->fd = -1;
    d->path = xstrdup(path);
    d->kind = kind;
    DataOptions o = opt ? *opt : (DataOptions){0};
    d->max_line_bytes = o.max_line_bytes ? o.max_line_bytes : DATA_DEFAULT_MAX_LINE;
    open_chat(d, &o);
    Indexer ix = {.d = d,
                  .policy = o.bad,
                  .max_warnings = o.max_warnings ? o.max_warnings : DATA_DEFAULT_MAX_WARNINGS,
                  .log = o.log};
    char *chunk = NULL, *line = NULL;
    struct stat st;
    d->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (d->fd < 0) {
        errf(err, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(d->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        errf(err, "%s: not a regular file (a JSONL dataset must be a file)", path);
        goto fail;
    }
    if (st.st_size == 0) {
        errf(err, "%s: empty file (0 bytes); expected one JSON object per line (%s)", path,
             kind_needs(kind));
        goto fail;
    }
    enum { CHUNK = 1 << 16 };
    chunk = xmalloc(CHUNK);
    /* the line buffer grows with the longest line seen, up to max_line_bytes */
    size_t line_cap = 4096, line_len = 0;
    line = xmalloc(line_cap);
    int too_long = 0;
    int64_t lineno = 1, line_start = 0, file_pos = 0;
    for (;;) {
        ssize_t got = read(d->fd, chunk, CHUNK);
        if (got < 0) {
            if (errno == EINTR) continue;
            errf(err, "%s: read error: %s", path, strerror(errno));
            goto fail;
        }
        if (got == 0) break;
        size_t i = 0;
        while (i < (size_t)got) {
            char *nl = memchr(chunk + i, '\n', (size_t)got - i);
            size_t seg = nl ? (size_t)(nl - (chunk + i)) : (size_t)got - i;
            if (!too_long) {
                if (line_len + seg > d->max_line_bytes) {
                    too_long = 1;
                } else {
                    if (line_len + seg > line_cap) {
                        while (line_len + seg > line_cap) line_cap *= 2;
                        line = xrealloc(line, line_cap);
                    }
                    memcpy(line + line_len, chunk + i, seg);
                    line_len += seg;
                }
            }
            i += seg;
            if (nl) {
                i++;
                if (index_line(&ix, line, line_len, too_long, lineno, line_start, err) != 0)
                    goto fail;
                lineno++;
                line_start = file_pos + (int64_t)i;
                line_len = 0;
                too_long = 0;
            }
        }
        file_pos += got;
    }
    if (line_len > 0 || too_long)
        if (index_line(&ix, line, line_len, too_long, lineno, line_start, err) != 0) goto fail;

    /* drop pairs cancelled by an undo */
    if (d->n_undone > 0) {
        int64_t w = 0;
        for (int64_t r = 0; r < d->n; r++)
            if (d->offset[r] >= 0) d->offset[w++] = d->offset[r];
        d->n = w;
    }
    if (d->n == 0) {
        if (d->n_bad > 0)
            errf(err, "%s: no valid %s record in %lld lines (%lld bad; the first: %s)", path,
                 data_kind_name(kind), (long long)d->n_lines, (long long)d->n_bad, d->first_bad);
        else
            errf(err, "%s: no valid %s record in %lld lines (%s)", path, data_kind_name(kind),
                 (long long)d->n_lines, kind_needs(kind));
        goto fail;
    }
    if (d->n > INT32_MAX) {
        errf(err, "%s: %lld records; at most %d are supported", path, (long long)d->n, INT32_MAX);
        goto fail;
    }
    if (ix.log && d->n_bad > 0)
        fprintf(ix.log, "warning: %s: skipped %lld bad line%s of %lld (first: %s)\n", path,
                (long long)d->n_bad, d->n_bad == 1 ? "" : "s", (long long)d->n_lines, d->first_bad);
    free(chunk);
    free(line);
    free(ix.jkey), free(ix.jprev), free(ix.jrec), free(ix.mkey), free(ix.mval);
    d->offset = xrealloc(d->offset, (size_t)d->n * sizeof(int64_t));
    return 0;
fail:
    free(chunk);
    free(line);
    free(ix.jkey), free(ix.jprev), free(ix.jrec), free(ix.mkey), free(ix.mval);
    dataset_free(d);
    return -1;
}

void dataset_free(Dataset *d) {
    if (!d) return;
    if (d->fd >= 0 && d->path) close(d->fd);
    free(d->path);
    free(d->offset);
    free(d->buf);
    chat_template_free(&d->chat);
    memset(d, 0, sizeof *d);
    d->fd = -1;
}

int dataset_chat_formatted(const Dataset *d, const DataRecord *r) {
    return r->conversational && d->chat_ok && d->chat.format != CHAT_PLAIN;
}

void data_record_free(DataRecord *r) {
    if (!r) return;
    free(r->prompt), free(r->response), free(r->chosen), free(r->rejected);
    free(r->category), free(r->annotator);
    chat_text_free(&r->conv);
    memset(r, 0, sizeof *r);
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

int dataset_get(Dataset *d, int64_t i, DataRecord *r, char *err) {
    ASSERT(d->path != NULL && i >= 0 && i < d->n);
    int64_t off = d->offset[i];
    size_t limit = d->max_line_bytes + 1, len = 0;
    char *nl = NULL;
    while (!nl) {
        if (len == d->buf_cap) {
            if (d->buf_cap >= limit + 1) break;
            d->buf_cap = d->buf_cap ? 2 * d->buf_cap : 4096;
            if (d->buf_cap > limit + 1) d->buf_cap = limit + 1;
            d->buf = xrealloc(d->buf, d->buf_cap);
        }
        ssize_t got = pread(d->fd, d->buf + len, d->buf_cap - len, (off_t)(off + (int64_t)len));
        if (got < 0) {
            if (errno == EINTR) continue;
            return errf(err, "%s: read error at byte %lld: %s", d->path, (long long)off,
                        strerror(errno));
        }
        if (got == 0) break;
        nl = memchr(d->buf + len, '\n', (size_t)got);
        len += (size_t)got;
    }
    if (nl) len = (size_t)(nl - d->buf);
    if (len > d->max_line_bytes || len == 0)
        return errf(err,
                    "%s: record %lld at byte %lld is gone (the file changed since it was "
                    "opened; reopen it)",
                    d->path, (long long)i, (long long)off);
    json_t *o;
    LineInfo info;
    int blank;
    char what[ERRBUF_LEN];
    LineClass c = parse_line(d->buf, len, d, &o, &info, &blank, what, sizeof what);
    if (c != LINE_RECORD) {
        chat_record_free(&info.conv);
        if (o) json_decref(o);
        return errf(err,
                    "%s: record %lld at byte %lld no longer parses (the file changed "
                    "since it was opened; reopen it)%s%s",
                    d->path, (long long)i, (long long)off, c == LINE_BAD ? ": " : "",
                    c == LINE_BAD ? what : "");
    }
    data_record_free(r);
    r->prompt = dup_or_null(info.prompt);
    r->response = dup_or_null(info.response);
    r->chosen = dup_or_null(info.chosen);
    r->rejected = dup_or_null(info.rejected);
    r->category = dup_or_null(info.category);
    r->annotator = dup_or_null(info.annotator);
    r->conversational = info.conversational;
    r->p_chosen = d->kind == DATA_PREF ? info.p_chosen : 1.0;
    r->conv = info.conv.conv; /* moves to the record */
    info.conv.conv = (ChatText){0};
    chat_record_free(&info.conv);
    json_decref(o);
    return 0;
}

// ----------------------------------------------------------------------------
// data order

void data_sampler_init(DataSampler *s, int64_t n, uint64_t seed, bool shuffle) {
    ASSERT(n >= 1 && n <= INT32_MAX);
    memset(s, 0, sizeof *s);
    s->cur = (DataCursor){.seed = (int64_t)seed, .epoch = 0, .pos = 0, .n = n};
    s->shuffle = shuffle;
    s->perm_epoch = -1;
}

void data_sampler_free(DataSampler *s) {
    if (!s) return;
    free(s->perm);
    s->perm = NULL;
    s->perm_epoch = -1;
}

int64_t data_sampler_at(DataSampler *s, int64_t epoch, int64_t pos) {
    ASSERT(pos >= 0 && pos < s->cur.n && epoch >= 0);
    if (!s->shuffle) return pos;
    if (s->perm_epoch != epoch) {
        int n = (int)s->cur.n;
        if (!s->perm) s->perm = xmalloc((size_t)n * sizeof(int));
        for (int i = 0; i < n; i++) s->perm[i] = i;
        Rng r;
        rng_init_keyed(&r, (uint64_t)s->cur.seed, (uint64_t)epoch, 0);
        rng_shuffle_ints(&r, s->perm, n);
        s->perm_epoch = epoch;
    }
    return s->perm[pos];
}

void data_shard(int G, int rank, int nranks, int *begin, int *end) {
    ASSERT(G >= 0 && nranks >= 1 && rank >= 0 && rank < nranks);
    *begin = (int)((int64_t)G * rank / nranks);
    *end = (int)((int64_t)G * (rank + 1) / nranks);
}

int data_shard_size(int G, int rank, int nranks) {
    int b, e;
    data_shard(G, rank, nranks, &b, &e);
    return e - b;
}

int data_sampler_next(DataSampler *s, int G, int rank, int nranks, int64_t *idx) {
    int b, e;
    data_shard(G, rank, nranks, &b, &e);
    int64_t epoch = s->cur.epoch, pos = s->cur.pos;
    for (int g = 0; g < G; g++) {
        if (g >= b && g < e) idx[g - b] = data_sampler_at(s, epoch, pos);
        if (++pos == s->cur.n) {
            pos = 0;
            epoch++;
        }
    }
    s->cur.epoch = epoch;
    s->cur.pos = pos;
    return e - b;
}

void data_cursor_save(const DataSampler *s, int64_t out[DATA_CURSOR_WORDS]) {
    out[0] = s->cur.seed;
    out[1] = s->cur.epoch;
    out[2] = s->cur.pos;
    out[3] = s->cur.n;
}

int data_cursor_restore(DataSampler *s, const int64_t in[DATA_CURSOR_WORDS], char *err) {
    if (in[3] != s->cur.n)
        return errf(err,
                    "data cursor: saved for %lld records, the dataset now has %lld (the "
                    "data file changed since the checkpoint; restore the file or start "
                    "a fresh run)",
                    (long long)in[3], (long long)s->cur.n);
    if (in[1] < 0 || in[2] < 0 || in[2] >= in[3])
        return errf(err,
                    "data cursor: invalid (epoch %lld, position %lld of %lld); the "
                    "checkpoint is damaged",
                    (long long)in[1], (long long)in[2], (long long)in[3]);
    s->cur = (DataCursor){.seed = in[0], .epoch = in[1], .pos = in[2], .n = in[3]};
    s->perm_epoch = -1;
    return 0;
}

// ----------------------------------------------------------------------------
// split and truncation

int data_split_is_eval(int64_t i, double frac, uint64_t seed) {
    uint64_t h = rng_mix64(seed ^ rng_mix64((uint64_t)i));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) < frac;
}

void data_split(int64_t n, double frac, uint64_t seed, int64_t **train, int64_t *n_train,
                int64_t **eval, int64_t *n_eval) {
    ASSERT(n >= 0);
    int64_t ne = 0;
    for (int64_t i = 0; i < n; i++) ne += data_split_is_eval(i, frac, seed);
    *train = xmalloc((size_t)(n - ne) * sizeof(int64_t));
    *eval = xmalloc((size_t)ne * sizeof(int64_t));
    *n_train = n - ne;
    *n_eval = ne;
    int64_t a = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        if (data_split_is_eval(i, frac, seed))
            (*eval)[b++] = i;
        else
            (*train)[a++] = i;
    }
}

int data_truncate(int *prompt, int *n_prompt, int max_prompt, bool cut_left, int *response,
                  int *n_response, int max_response) {
    ASSERT(max_prompt >= 0 && max_response >= 0);
    int cut = 0;
    if (*n_prompt > max_prompt) {
        if (cut_left)
            memmove(prompt, prompt + (*n_prompt - max_prompt), (size_t)max_prompt * sizeof(int));
        *n_prompt = max_prompt;
        cut |= DATA_CUT_PROMPT;
    }
    if (response && *n_response > max_response) {
        *n_response = max_response;
        cut |= DATA_CUT_RESPONSE;
    }
    return cut;
}
