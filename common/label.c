/*
 * common/label.c — candidate files, the append-only judgment log, agreement statistics,
 * export and word-wrapping for rlhf-label. The formats and rules are in label.h; the
 * user's guide is docs/labelling.md. Nothing here touches the terminal.
 */
#include "label.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// label kinds

static const char *const kind_names[LABEL_COUNT] = {"A",  "B",    "tie", "skip",
                                                     "up", "down", "rank"};

const char *label_kind_name(LabelKind k) {
    ASSERT((int)k >= 0 && k < LABEL_COUNT);
    return kind_names[k];
}

int label_kind_parse(const char *s) {
    for (int k = 0; k < LABEL_COUNT; k++)
        if (strcmp(s, kind_names[k]) == 0) return k;
    return -1;
}

int label_kind_in_mode(LabelKind k, LabelMode m) {
    if (k == LABEL_SKIP) return 1;
    if (m == LABEL_MODE_PAIR) return k == LABEL_A || k == LABEL_B || k == LABEL_TIE;
    if (m == LABEL_MODE_RANK) return k == LABEL_RANK;
    return k == LABEL_UP || k == LABEL_DOWN;
}

// ----------------------------------------------------------------------------
// a string -> int map (open addressing, linear probing); keys are copied

struct LabelMap {
    char **keys;
    int *vals;
    size_t cap, n;
};

/* FNV-1a 64 (Fowler, Noll, Vo): offset basis 14695981039346656037, prime 1099511628211 */
#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= FNV_PRIME;
    }
    return h;
}

static LabelMap *map_new(void) {
    LabelMap *m = xcalloc(1, sizeof(*m));
    m->cap = 64;
    m->keys = xcalloc(m->cap, sizeof(char *));
    m->vals = xcalloc(m->cap, sizeof(int));
    return m;
}

static void map_free(LabelMap *m) {
    if (!m) return;
    for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    free(m);
}

static size_t map_slot(const LabelMap *m, const char *key) {
    size_t i = (size_t)fnv1a(FNV_OFFSET, key, strlen(key)) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & (m->cap - 1);
    return i;
}

static int map_get(const LabelMap *m, const char *key) {
    size_t i = map_slot(m, key);
    return m->keys[i] ? m->vals[i] : -1;
}

static void map_put(LabelMap *m, const char *key, int val) {
    if (2 * (m->n + 1) > m->cap) {
        LabelMap old = *m;
        m->cap *= 2;
        m->n = 0;
        m->keys = xcalloc(m->cap, sizeof(char *));
        m->vals = xcalloc(m->cap, sizeof(int));
        for (size_t i = 0; i < old.cap; i++) {
            if (!old.keys[i]) continue;
            size_t s = map_slot(m, old.keys[i]);
            m->keys[s] = old.keys[i];
            m->vals[s] = old.vals[i];
            m->n++;
        }
        free(old.keys);
        free(old.vals);
    }
    size_t i = map_slot(m, key);
    if (!m->keys[i]) {
        m->keys[i] = xstrdup(key);
        m->n++;
    }
    m->vals[i] = val;
}

/* "<len(annotator)>:<annotator><id>": unambiguous whatever bytes the names hold */
static char *pair_key(const char *annotator, const char *id) {
    size_t na = strlen(annotator), ni = strlen(id);
    char *k = xmalloc(na + ni + 24);
    int p = snprintf(k, 24, "%zu:", na);
    memcpy(k + p, annotator, na);
    memcpy(k + p + na, id, ni + 1);
    return k;
}

// ----------------------------------------------------------------------------
// line iteration shared by both readers

typedef struct {
    const char *buf;
    size_t len, pos;
    int lineno;
} LineIter;

/* Next line (without '\n' and a trailing '\r'); *terminated says whether a '\n' ended
 * it. Returns 0 at the end. */
static int line_next(LineIter *it, const char **s, size_t *n, int *terminated) {
    if (it->pos >= it->len) return 0;
    const char *start = it->buf + it->pos;
    const char *nl = memchr(start, '\n', it->len - it->pos);
    size_t end = nl ? (size_t)(nl - it->buf) : it->len;
    *s = start;
    *n = end - it->pos;
    *terminated = nl != NULL;
    if (*n > 0 && start[*n - 1] == '\r') (*n)--;
    it->pos = nl ? end + 1 : end;
    it->lineno++;
    return 1;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* Parse a line as a JSON object; NULL with err ("not UTF-8 ...", "not valid JSON ...")
 * otherwise. err carries no location: callers prefix path:line. */
static json_t *parse_object(const char *s, size_t n, char *err) {
    size_t bad = 0;
    if (memchr(s, 0, n)) {
        errf(err, "contains a NUL byte");
        return NULL;
    }
    if (!utf8_valid(s, n, &bad)) {
        errf(err, "not valid UTF-8 (byte %zu of the line); files must be UTF-8 (convert "
                  "with e.g. iconv -f latin1 -t utf-8)",
             bad + 1);
        return NULL;
    }
    json_error_t jerr;
    json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        errf(err, "not valid JSON at column %d: %s", jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        errf(err, "expected a JSON object {...} on the line");
        return NULL;
    }
    return o;
}

/* The string value of key, NULL if absent; -1 (err) if present but not a string. */
static int get_string(json_t *o, const char *key, const char **out, char *err) {
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return errf(err, "field \"%s\" must be a string", key);
    *out = json_string_value(v);
    return 0;
}

#define LABEL_ID_MAX 1024

/* An id given as a string or an integer (many datasets number their lines). */
static int get_id(json_t *o, const char *key, char *buf, size_t cap, int *found, char *err) {
    json_t *v = json_object_get(o, key);
    *found = 0;
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!*s) return errf(err, "field \"%s\" is empty", key);
        if (strlen(s) >= cap)
            return errf(err, "field \"%s\" is longer than %zu bytes", key, cap - 1);
        strcpy(buf, s);
    } else {
        return errf(err, "field \"%s\" must be a string or an integer", key);
    }
    *found = 1;
    return 0;
}

// ----------------------------------------------------------------------------
// candidate items

void label_item_hash_id(char out[LABEL_HASH_ID_LEN], LabelMode mode, const char *prompt,
                        const char *a, const char *b) {
    const char *fields[3] = {prompt, a, b};
    unsigned char tag = mode == LABEL_MODE_PAIR ? 'P' : 'T';
    uint64_t h = fnv1a(FNV_OFFSET, &tag, 1);
    for (int f = 0; f < 3; f++) {
        if (!fields[f]) continue;
        uint64_t len = strlen(fields[f]);
        unsigned char le[8];
        for (int i = 0; i < 8; i++) le[i] = (unsigned char)(len >> (8 * i));
        h = fnv1a(h, le, 8);
        h = fnv1a(h, fields[f], (size_t)len);
    }
    snprintf(out, LABEL_HASH_ID_LEN, "h%016llx", (unsigned long long)h);
}

void label_item_hash_id_rank(char out[LABEL_HASH_ID_LEN], const char *prompt,
                             const char *const *resp, int k) {
    unsigned char tag = 'R';
    uint64_t h = fnv1a(FNV_OFFSET, &tag, 1);
    for (int f = -1; f < k; f++) {
        const char *s = f < 0 ? prompt : resp[f];
        uint64_t len = strlen(s);
        unsigned char le[8];
        for (int i = 0; i < 8; i++) le[i] = (unsigned char)(len >> (8 * i));
        h = fnv1a(h, le, 8);
        h = fnv1a(h, s, (size_t)len);
    }
    snprintf(out, LABEL_HASH_ID_LEN, "h%016llx", (unsigned long long)h);
}

/* The "responses" array of a rank line or record: n strings, lo <= n <= hi. Returns the
 * count with *out pointing into o (not copied), or -1 with err. */
static int get_responses(json_t *o, int lo, int hi, const char **out, char *err) {
    json_t *v = json_object_get(o, "responses");
    if (!v) return errf(err, "missing field \"responses\"");
    if (!json_is_array(v)) return errf(err, "field \"responses\" must be an array of strings");
    size_t n = json_array_size(v);
    if (n < (size_t)lo || n > (size_t)hi)
        return errf(err, "field \"responses\" holds %zu responses; %d to %d are needed", n, lo,
                    hi);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e))
            return errf(err, "responses[%zu] must be a string", i);
        out[i] = json_string_value(e);
    }
    return (int)n;
}

static void item_free(LabelItem *x) {
    for (int i = 0; i < x->n_resp; i++) free(x->resp[i]);
    free(x->resp);
    free(x->id);
    free(x->prompt);
    free(x->a);
    free(x->b);
    free(x->category);
}

/* One candidates line into *x; -1 with err (no location) when it is not a valid item. */
static int item_parse(LabelItem *x, json_t *o, LabelMode mode, char *err) {
    const char *prompt, *a = NULL, *b = NULL, *resp = NULL, *cat;
    if (get_string(o, "prompt", &prompt, err)) return -1;
    if (!prompt) return errf(err, "missing field \"prompt\"");
    if (mode != LABEL_MODE_RANK && json_object_get(o, "responses"))
        return errf(err, "this is a rank line {\"prompt\",\"responses\":[...]}; use --mode rank");
    const char *rs[LABEL_RANK_ITEM_MAX];
    int nr = 0;
    if (mode == LABEL_MODE_RANK) {
        if (!json_object_get(o, "responses") && (json_object_get(o, "a") || json_object_get(o, "response")))
            return errf(err, "missing field \"responses\": this is a %s line; use --mode %s",
                        json_object_get(o, "a") ? "pair" : "thumbs",
                        json_object_get(o, "a") ? "pair" : "thumbs");
        nr = get_responses(o, LABEL_RANK_ITEM_MIN, LABEL_RANK_ITEM_MAX, rs, err);
        if (nr < 0) return -1;
    } else if (mode == LABEL_MODE_PAIR) {
        if (get_string(o, "a", &a, err) || get_string(o, "b", &b, err)) return -1;
        if (!a || !b) {
            if (json_object_get(o, "response"))
                return errf(err, "missing field \"%s\": this is a thumbs line "
                                 "{\"prompt\",\"response\"}; use --mode thumbs",
                            a ? "b" : "a");
            return errf(err, "missing field \"%s\" (pair mode needs "
                             "{\"prompt\",\"a\",\"b\"})",
                        a ? "b" : "a");
        }
    } else {
        if (get_string(o, "response", &resp, err)) return -1;
        if (!resp) {
            if (json_object_get(o, "a"))
                return errf(err, "missing field \"response\": this is a pair line "
                                 "{\"prompt\",\"a\",\"b\"}; use --mode pair");
            return errf(err, "missing field \"response\" (thumbs mode needs "
                             "{\"prompt\",\"response\"})");
        }
        a = resp;
    }
    if (get_string(o, "category", &cat, err)) return -1;
    char idbuf[LABEL_ID_MAX];
    int has_id;
    if (get_id(o, "id", idbuf, sizeof(idbuf), &has_id, err)) return -1;
    if (!has_id && mode == LABEL_MODE_RANK) label_item_hash_id_rank(idbuf, prompt, rs, nr);
    else if (!has_id) label_item_hash_id(idbuf, mode, prompt, a, b);
    x->id = xstrdup(idbuf);
    x->prompt = xstrdup(prompt);
    x->a = a ? xstrdup(a) : NULL;
    if (nr > 0) {
        x->resp = xmalloc((size_t)nr * sizeof(char *));
        for (int i = 0; i < nr; i++) x->resp[i] = xstrdup(rs[i]);
        x->n_resp = nr;
    }
    x->b = b ? xstrdup(b) : NULL;
    x->category = cat ? xstrdup(cat) : NULL;
    return 0;
}

int label_items_load(LabelItems *it, const char *path, LabelMode mode, char *err) {
    memset(it, 0, sizeof(*it));
    it->mode = mode;
    size_t len;
    char *buf = file_read_all(path, &len, err);
    if (!buf) return -1;
    it->by_id = map_new();
    int cap = 0;
    LineIter li = {buf, len, 0, 0};
    const char *s;
    size_t n;
    int term;
    char why[ERRBUF_LEN];
    while (line_next(&li, &s, &n, &term)) {
        if (is_blank(s, n)) continue;
        json_t *o = parse_object(s, n, why);
        if (!o) {
            errf(err, "%s:%d: %s", path, li.lineno, why);
            goto fail;
        }
        if (it->n == cap) {
            cap = cap ? 2 * cap : 64;
            it->items = xrealloc(it->items, (size_t)cap * sizeof(LabelItem));
        }
        LabelItem *x = &it->items[it->n];
        memset(x, 0, sizeof(*x));
        int rc = item_parse(x, o, mode, why);
        json_decref(o);
        if (rc) {
            errf(err, "%s:%d: %s", path, li.lineno, why);
            goto fail;
        }
        x->line = li.lineno;
        int first = map_get(it->by_id, x->id);
        if (first >= 0) {
            errf(err, "%s:%d: duplicate item id \"%s\" (first at line %d); ids must be "
                      "unique: give each line its own \"id\" or remove the repeated line",
                 path, li.lineno, x->id, it->items[first].line);
            item_free(x);
            goto fail;
        }
        map_put(it->by_id, x->id, it->n);
        it->n++;
    }
    if (it->n == 0) {
        errf(err, "%s: no items (the file is empty); each line must be %s", path,
             mode == LABEL_MODE_PAIR     ? "{\"prompt\",\"a\",\"b\"}"
             : mode == LABEL_MODE_RANK ? "{\"prompt\",\"responses\":[...]}"
                                       : "{\"prompt\",\"response\"}");
        goto fail;
    }
    free(buf);
    return 0;
fail:
    free(buf);
    label_items_free(it);
    return -1;
}

void label_items_free(LabelItems *it) {
    if (!it) return;
    for (int i = 0; i < it->n; i++) item_free(&it->items[i]);
    free(it->items);
    map_free(it->by_id);
    memset(it, 0, sizeof(*it));
}

int label_items_find(const LabelItems *it, const char *id) {
    return it->by_id ? map_get(it->by_id, id) : -1;
}

// ----------------------------------------------------------------------------
// the judgment log

void label_log_init(LabelLog *log) {
    memset(log, 0, sizeof(*log));
    log->live = map_new();
}

void label_log_free(LabelLog *log) {
    if (!log) return;
    for (int i = 0; i < log->n; i++) {
        free(log->j[i].annotator);
        free(log->j[i].id);
        free(log->j[i].time);
        json_decref(log->j[i].rec);
        free(log->j[i].ranks);
    }
    free(log->j);
    for (int i = 0; i < log->n_files; i++) free(log->files[i]);
    free(log->files);
    for (int i = 0; i < log->n_warnings; i++) free(log->warnings[i]);
    free(log->warnings);
    map_free(log->live);
    memset(log, 0, sizeof(*log));
}

static void log_warn(LabelLog *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_warn(LabelLog *log, const char *fmt, ...) {
    char buf[ERRBUF_LEN + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    log->warnings = xrealloc(log->warnings, (size_t)(log->n_warnings + 1) * sizeof(char *));
    log->warnings[log->n_warnings++] = xstrdup(buf);
}

int label_log_live(const LabelLog *log, const char *annotator, const char *id) {
    char *k = pair_key(annotator, id);
    int i = map_get(log->live, k);
    free(k);
    return i;
}

int label_log_is_live(const LabelLog *log, int i) {
    ASSERT(i >= 0 && i < log->n);
    return !log->j[i].undone && label_log_live(log, log->j[i].annotator, log->j[i].id) == i;
}

/* The fields a judgment of kind k must carry to be usable for training or export. */
/* The content id of the item a record without "id" judged (other tools, e.g. rlhf-judge,
 * may leave it out): the same hash label_items_load gives a candidates line without "id",
 * rebuilt from the record (A: a = chosen, b = rejected; B: the other way round; tie and
 * skip carry a and b; thumbs carry response). Returns 0, or -1 when the record lacks the
 * texts. */
static int derive_id(json_t *o, LabelKind k, char out[LABEL_HASH_ID_LEN]) {
    const char *p = json_string_value(json_object_get(o, "prompt"));
    const char *ch = json_string_value(json_object_get(o, "chosen"));
    const char *rj = json_string_value(json_object_get(o, "rejected"));
    const char *a = json_string_value(json_object_get(o, "a"));
    const char *b = json_string_value(json_object_get(o, "b"));
    const char *r = json_string_value(json_object_get(o, "response"));
    if (!p) return -1;
    const char *rs[LABEL_RANK_MAX];
    char tmp[ERRBUF_LEN];
    if ((k == LABEL_RANK || k == LABEL_SKIP) && json_object_get(o, "responses")) {
        int n = get_responses(o, 2, LABEL_RANK_MAX, rs, tmp);
        if (n < 0) return -1;
        label_item_hash_id_rank(out, p, rs, n);
    } else if (k == LABEL_A && ch && rj) {
        label_item_hash_id(out, LABEL_MODE_PAIR, p, ch, rj);
    } else if (k == LABEL_B && ch && rj) {
        label_item_hash_id(out, LABEL_MODE_PAIR, p, rj, ch);
    } else if ((k == LABEL_TIE || k == LABEL_SKIP) && a && b) {
        label_item_hash_id(out, LABEL_MODE_PAIR, p, a, b);
    } else if ((k == LABEL_UP || k == LABEL_DOWN || k == LABEL_SKIP) && r) {
        label_item_hash_id(out, LABEL_MODE_THUMBS, p, r, NULL);
    } else {
        return -1;
    }
    return 0;
}

/* The ranks of a "rank" record: K = len(responses) in 2..LABEL_RANK_MAX, "ranks" K
 * integers in 1..K. Returns K with *ranks malloc'd, or -1 with err. */
static int parse_ranks(json_t *o, int **ranks, char *err) {
    const char *rs[LABEL_RANK_MAX];
    const char *p;
    *ranks = NULL;
    if (get_string(o, "prompt", &p, err)) return -1;
    if (!p) return errf(err, "a \"rank\" judgment needs field \"prompt\"");
    int k = get_responses(o, 2, LABEL_RANK_MAX, rs, err);
    if (k < 0) return -1;
    json_t *v = json_object_get(o, "ranks");
    if (!json_is_array(v))
        return errf(err, "a \"rank\" judgment needs field \"ranks\", an array of integers");
    if (json_array_size(v) != (size_t)k)
        return errf(err, "field \"ranks\" has %zu entries for %d responses", json_array_size(v),
                    k);
    int *r = xmalloc((size_t)k * sizeof(int));
    for (int i = 0; i < k; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        json_int_t x = json_is_integer(e) ? json_integer_value(e) : 0;
        if (x < 1 || x > k) {
            free(r);
            return errf(err, "ranks[%d] must be an integer from 1 (best) to %d", i, k);
        }
        r[i] = (int)x;
    }
    *ranks = r;
    return k;
}

static int check_payload(json_t *o, LabelKind k, char *err) {
    const char *need[3] = {NULL, NULL, NULL};
    if (k == LABEL_A || k == LABEL_B) {
        need[0] = "prompt", need[1] = "chosen", need[2] = "rejected";
    } else if (k == LABEL_UP || k == LABEL_DOWN) {
        need[0] = "prompt", need[1] = "response";
    }
    for (int i = 0; i < 3 && need[i]; i++) {
        const char *s;
        if (get_string(o, need[i], &s, err)) return -1;
        if (!s) return errf(err, "a \"%s\" judgment needs field \"%s\"", label_kind_name(k),
                            need[i]);
    }
    return 0;
}

int label_log_apply(LabelLog *log, const char *text, size_t len, int file, int line,
                    char *err) {
    json_t *o = parse_object(text, len, err);
    if (!o) return -1;
    const char *annotator, *label, *tm;
    char id[LABEL_ID_MAX];
    int has_id;
    if (!json_object_get(o, "undo") && !json_object_get(o, "label")) {
        errf(err, "not a rlhf-label record (no \"label\" or \"undo\" field)");
        goto fail;
    }
    if (get_string(o, "annotator", &annotator, err)) goto fail;
    if (!annotator || !*annotator) {
        errf(err, "missing field \"annotator\"");
        goto fail;
    }
    if (json_object_get(o, "undo")) {
        if (get_id(o, "undo", id, sizeof(id), &has_id, err)) goto fail;
        if (!has_id) {
            errf(err, "field \"undo\" must name an item id");
            goto fail;
        }
        char *k = pair_key(annotator, id);
        int top = map_get(log->live, k);
        if (top < 0) {
            free(k);
            log->n_undo_unmatched++;
            errf(err, "undo of item \"%s\" by \"%s\" has no judgment before it to cancel",
                 id, annotator);
            goto fail;
        }
        log->j[top].undone = 1;
        map_put(log->live, k, log->j[top].prev);
        free(k);
        log->n_undo++;
        json_decref(o);
        return 0;
    }
    if (get_string(o, "label", &label, err)) goto fail;
    if (!label) {
        errf(err, "field \"label\" must be a string");
        goto fail;
    }
    int k = label_kind_parse(label);
    if (k < 0) {
        errf(err, "unknown label \"%s\" (expected A, B, tie, skip, up, down or rank)", label);
        goto fail;
    }
    if (check_payload(o, (LabelKind)k, err)) goto fail;
    int *ranks = NULL, n_ranks = 0;
    if (k == LABEL_RANK && (n_ranks = parse_ranks(o, &ranks, err)) < 0) goto fail;
    if (get_id(o, "id", id, sizeof(id), &has_id, err) ||
        get_string(o, "time", &tm, err)) {
        free(ranks);
        goto fail;
    }
    if (!has_id && derive_id(o, (LabelKind)k, id) != 0) {
        errf(err, "missing field \"id\" (and no \"a\"/\"b\", \"response\" or "
                  "\"responses\" to derive the content id from)");
        free(ranks);
        goto fail;
    }
    if (log->n == log->cap) {
        log->cap = log->cap ? 2 * log->cap : 256;
        log->j = xrealloc(log->j, (size_t)log->cap * sizeof(LabelJudgment));
    }
    LabelJudgment *j = &log->j[log->n];
    j->annotator = xstrdup(annotator);
    j->id = xstrdup(id);
    j->time = xstrdup(tm ? tm : "");
    j->label = (LabelKind)k;
    j->file = file;
    j->line = line;
    j->undone = 0;
    j->rec = o;
    j->ranks = ranks;
    j->n_ranks = n_ranks;
    char *key = pair_key(annotator, id);
    j->prev = map_get(log->live, key);
    map_put(log->live, key, log->n);
    free(key);
    log->n++;
    return 0;
fail:
    json_decref(o);
    return -1;
}

int label_log_read(LabelLog *log, const char *path, int missing_ok, char *err) {
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT && missing_ok) {
        log->files = xrealloc(log->files, (size_t)(log->n_files + 1) * sizeof(char *));
        log->files[log->n_files++] = xstrdup(path);
        return 0;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return errf(err, "%s: is a directory; give the path of a JSONL file", path);
    size_t len;
    char *buf = file_read_all(path, &len, err);
    if (!buf) return -1;
    int file = log->n_files;
    log->files = xrealloc(log->files, (size_t)(log->n_files + 1) * sizeof(char *));
    log->files[log->n_files++] = xstrdup(path);
    LineIter li = {buf, len, 0, 0};
    const char *s;
    size_t n;
    int term;
    char why[ERRBUF_LEN];
    while (line_next(&li, &s, &n, &term)) {
        if (is_blank(s, n)) continue;
        if (label_log_apply(log, s, n, file, li.lineno, why) == 0) continue;
        if (!term) {
            /* A complete record that only lost its newline parses fine above; what
             * fails here was cut short by a crash during the write. */
            log->n_torn++;
            log_warn(log, "%s:%d: torn last line (the writer was killed while writing "
                          "it?): ignored; the item was not recorded (%s)",
                     path, li.lineno, why);
        } else {
            log_warn(log, "%s:%d: %s (line skipped)", path, li.lineno, why);
        }
    }
    free(buf);
    return 0;
}

// ----------------------------------------------------------------------------
// writing records

void label_time_iso8601(char out[32], time_t t) {
    struct tm tmv;
    gmtime_r(&t, &tmv);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tmv);
}

static char *dump_line(json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ASSERT(s != NULL);
    size_t n = strlen(s);
    char *line = xmalloc(n + 2);
    memcpy(line, s, n);
    line[n] = '\n';
    line[n + 1] = 0;
    free(s);
    json_decref(o);
    return line;
}

char *label_record_judgment(const LabelItem *it, LabelMode mode, LabelKind k,
                            const char *annotator, const char *time_iso) {
    ASSERT(label_kind_in_mode(k, mode));
    json_t *o = json_object();
    json_object_set_new(o, "prompt", json_string(it->prompt));
    if (mode == LABEL_MODE_RANK) {
        json_t *arr = json_array();
        for (int i = 0; i < it->n_resp; i++) json_array_append_new(arr, json_string(it->resp[i]));
        json_object_set_new(o, "responses", arr);
    } else if (mode == LABEL_MODE_THUMBS) {
        json_object_set_new(o, "response", json_string(it->a));
    } else if (k == LABEL_A || k == LABEL_B) {
        json_object_set_new(o, "chosen", json_string(k == LABEL_A ? it->a : it->b));
        json_object_set_new(o, "rejected", json_string(k == LABEL_A ? it->b : it->a));
    } else {
        json_object_set_new(o, "a", json_string(it->a));
        json_object_set_new(o, "b", json_string(it->b));
    }
    json_object_set_new(o, "annotator", json_string(annotator));
    json_object_set_new(o, "time", json_string(time_iso));
    json_object_set_new(o, "label", json_string(label_kind_name(k)));
    json_object_set_new(o, "id", json_string(it->id));
    if (it->category) json_object_set_new(o, "category", json_string(it->category));
    return dump_line(o);
}

char *label_record_rank(const LabelItem *it, const int *ranks, const char *annotator,
                        const char *time_iso) {
    ASSERT(it->n_resp >= 2);
    json_t *o = json_object();
    json_object_set_new(o, "prompt", json_string(it->prompt));
    json_t *arr = json_array(), *rk = json_array();
    for (int i = 0; i < it->n_resp; i++) {
        ASSERT(ranks[i] >= 1 && ranks[i] <= it->n_resp);
        json_array_append_new(arr, json_string(it->resp[i]));
        json_array_append_new(rk, json_integer(ranks[i]));
    }
    json_object_set_new(o, "responses", arr);
    json_object_set_new(o, "ranks", rk);
    json_object_set_new(o, "annotator", json_string(annotator));
    json_object_set_new(o, "time", json_string(time_iso));
    json_object_set_new(o, "label", json_string("rank"));
    json_object_set_new(o, "id", json_string(it->id));
    if (it->category) json_object_set_new(o, "category", json_string(it->category));
    return dump_line(o);
}

char *label_record_undo(const char *id, const char *annotator, const char *time_iso) {
    json_t *o = json_object();
    json_object_set_new(o, "undo", json_string(id));
    json_object_set_new(o, "annotator", json_string(annotator));
    json_object_set_new(o, "time", json_string(time_iso));
    return dump_line(o);
}

int label_append_line(int fd, const char *line, const char *what, char *err) {
    size_t left = strlen(line);
    const char *p = line;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errf(err, "%s: write failed: %s", what, strerror(errno));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 && errno != EINVAL)
        return errf(err, "%s: fsync failed: %s", what, strerror(errno));
    return 0;
}

int label_log_open(const char *path, char *err) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return errf(err, "%s: cannot open for appending: %s; choose a writable --out path",
                    path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return errf(err, "%s: another rlhf-label is writing this file; one writer (a "
                             "labelling session or a server) per output file",
                        path);
        return errf(err, "%s: cannot lock: %s", path, strerror(e));
    }
    struct stat st;
    char last = '\n';
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        if (rfd >= 0) {
            if (pread(rfd, &last, 1, st.st_size - 1) != 1) last = '\n';
            close(rfd);
        }
    }
    if (last != '\n' && label_append_line(fd, "\n", path, err)) {
        close(fd);
        return -1;
    }
    return fd;
}

// ----------------------------------------------------------------------------
// agreement statistics

double label_cohen_kappa(const long *conf, int k, double *p_o, double *p_e) {
    double n = 0, diag = 0, pe = 0;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) n += (double)conf[i * k + j];
    if (p_o) *p_o = NAN;
    if (p_e) *p_e = NAN;
    if (n == 0) return NAN;
    for (int i = 0; i < k; i++) {
        double row = 0, col = 0;
        for (int j = 0; j < k; j++) {
            row += (double)conf[i * k + j];
            col += (double)conf[j * k + i];
        }
        diag += (double)conf[i * k + i];
        pe += (row / n) * (col / n);
    }
    double po = diag / n;
    if (p_o) *p_o = po;
    if (p_e) *p_e = pe;
    if (1.0 - pe <= 1e-12) return NAN;
    return (po - pe) / (1.0 - pe);
}

double label_fleiss_kappa(const long *counts, int n_items, int k, double *p_bar,
                          double *p_e) {
    if (p_bar) *p_bar = NAN;
    if (p_e) *p_e = NAN;
    if (n_items <= 0 || k <= 0) return NAN;
    long nr = 0;
    for (int j = 0; j < k; j++) nr += counts[j];
    if (nr < 2) return NAN;
    double *pj = xcalloc((size_t)k, sizeof(double));
    double sum_pi = 0;
    for (int i = 0; i < n_items; i++) {
        long row = 0, sq = 0;
        for (int j = 0; j < k; j++) {
            long c = counts[(size_t)i * k + j];
            row += c;
            sq += c * c;
            pj[j] += (double)c;
        }
        if (row != nr) {
            free(pj);
            return NAN;
        }
        sum_pi += (double)(sq - nr) / ((double)nr * (double)(nr - 1));
    }
    double pe = 0;
    for (int j = 0; j < k; j++) {
        double p = pj[j] / ((double)n_items * (double)nr);
        pe += p * p;
    }
    free(pj);
    double pb = sum_pi / n_items;
    if (p_bar) *p_bar = pb;
    if (p_e) *p_e = pe;
    if (1.0 - pe <= 1e-12) return NAN;
    return (pb - pe) / (1.0 - pe);
}

static int cmp_str(const void *x, const void *y) {
    return strcmp(*(char *const *)x, *(char *const *)y);
}

typedef struct {
    const char *id;
    int ann;
    LabelKind label;
} Vote;

static int cmp_vote(const void *x, const void *y) {
    const Vote *a = x, *b = y;
    int c = strcmp(a->id, b->id);
    if (c) return c;
    return (a->ann > b->ann) - (a->ann < b->ann);
}

double label_kendall_tau_b(const int *x, const int *y, int n) {
    if (n < 2) return NAN;
    long n0 = (long)n * (n - 1) / 2, n1 = 0, n2 = 0, nc = 0, nd = 0;
    for (int i = 0; i < n; i++)
        for (int k = i + 1; k < n; k++) {
            int dx = (x[i] > x[k]) - (x[i] < x[k]), dy = (y[i] > y[k]) - (y[i] < y[k]);
            n1 += dx == 0;
            n2 += dy == 0;
            if (dx * dy > 0) nc++;
            if (dx * dy < 0) nd++;
        }
    if (n1 == n0 || n2 == n0) return NAN;
    return (double)(nc - nd) / sqrt((double)(n0 - n1) * (double)(n0 - n2));
}

/* d2(c, k) of the metric; nv[g] the marginal count of value g (ordinal). */
static double alpha_d2(int c, int k, const double *nv, LabelAlphaMetric metric) {
    if (metric == LABEL_ALPHA_NOMINAL) return c != k;
    if (metric == LABEL_ALPHA_INTERVAL) return (double)(c - k) * (c - k);
    int lo = c < k ? c : k, hi = c < k ? k : c;
    double s = 0;
    for (int g = lo; g <= hi; g++) s += nv[g];
    s -= (nv[lo] + nv[hi]) / 2;
    return s * s;
}

double label_krippendorff_alpha(const int *v, int n_units, int m, LabelAlphaMetric metric) {
    int V = 0;
    for (long i = 0; i < (long)n_units * m; i++)
        if (v[i] > V) V = v[i];
    if (V < 1) return NAN;
    size_t W = (size_t)V + 1;
    double *o = xcalloc(W * W, sizeof(double)), *nv = xcalloc(W, sizeof(double));
    for (int u = 0; u < n_units; u++) {
        const int *row = v + (size_t)u * m;
        int mu = 0;
        for (int c = 0; c < m; c++) mu += row[c] > 0;
        if (mu < 2) continue;
        for (int a = 0; a < m; a++)
            for (int b = 0; b < m; b++)
                if (a != b && row[a] > 0 && row[b] > 0)
                    o[(size_t)row[a] * W + row[b]] += 1.0 / (mu - 1);
    }
    double n = 0, dobs = 0, dexp = 0;
    for (size_t c = 1; c < W; c++)
        for (size_t k = 1; k < W; k++) nv[c] += o[c * W + k];
    for (size_t c = 1; c < W; c++) n += nv[c];
    for (size_t c = 1; c < W; c++)
        for (size_t k = 1; k < W; k++) {
            double d2 = alpha_d2((int)c, (int)k, nv, metric);
            dobs += o[c * W + k] * d2;
            dexp += nv[c] * nv[k] * d2;
        }
    free(o);
    free(nv);
    if (n < 2 || dexp <= 0) return NAN;
    return 1.0 - (n - 1) * dobs / dexp;
}

typedef struct {
    const char *id;
    int ann, j; /* annotator index, judgment index */
} RankVote;

static int cmp_rank_vote(const void *x, const void *y) {
    const RankVote *a = x, *b = y;
    int c = strcmp(a->id, b->id);
    if (c) return c;
    return (a->ann > b->ann) - (a->ann < b->ann);
}

/* Krippendorff's alpha (ordinal) of sorted rank votes v[0..nv): one unit per response
 * of an item ranked by >= 2 annotators, its value the place each annotator gave it. */
static double rank_alpha(const LabelLog *log, const RankVote *v, int nv, int nl) {
    int *vals = NULL;
    int nu = 0;
    for (int s = 0; s < nv;) {
        int e = s + 1;
        while (e < nv && strcmp(v[e].id, v[s].id) == 0) e++;
        int k = log->j[v[s].j].n_ranks;
        if (e - s >= 2) {
            vals = xrealloc(vals, (size_t)(nu + k) * (size_t)nl * sizeof(int));
            memset(vals + (size_t)nu * nl, 0, (size_t)k * (size_t)nl * sizeof(int));
            for (int x = s; x < e; x++) {
                const LabelJudgment *j = &log->j[v[x].j];
                for (int i = 0; i < k && i < j->n_ranks; i++)
                    vals[(size_t)(nu + i) * nl + v[x].ann] = j->ranks[i];
            }
            nu += k;
        }
        s = e;
    }
    double a = nu > 0 ? label_krippendorff_alpha(vals, nu, nl, LABEL_ALPHA_ORDINAL) : NAN;
    free(vals);
    return a;
}

/* Kendall tau-b between every two annotators' live rankings of the same id (same K). */
static void rank_stats_compute(LabelStats *st, const LabelLog *log) {
    int nl = st->n_annotators;
    RankVote *v = xmalloc((size_t)(log->n ? log->n : 1) * sizeof(RankVote));
    int nv = 0;
    for (int i = 0; i < log->n; i++) {
        if (log->j[i].label != LABEL_RANK || !label_log_is_live(log, i)) continue;
        int a = 0;
        while (a < nl && strcmp(st->annotators[a], log->j[i].annotator) != 0) a++;
        v[nv++] = (RankVote){log->j[i].id, a, i};
    }
    if (nv > 1) qsort(v, (size_t)nv, sizeof(RankVote), cmp_rank_vote);
    double *sum = xcalloc((size_t)nl * (size_t)nl + 1, sizeof(double));
    long *common = xcalloc((size_t)nl * (size_t)nl + 1, sizeof(long));
    long *defined = xcalloc((size_t)nl * (size_t)nl + 1, sizeof(long));
    double pooled = 0;
    for (int s = 0; s < nv;) {
        int e = s + 1;
        while (e < nv && strcmp(v[e].id, v[s].id) == 0) e++;
        st->n_rank_items++;
        for (int x = s; x < e; x++)
            for (int y = x + 1; y < e; y++) {
                const LabelJudgment *jx_ = &log->j[v[x].j], *jy = &log->j[v[y].j];
                if (jx_->n_ranks != jy->n_ranks) continue;
                size_t c = (size_t)v[x].ann * (size_t)nl + (size_t)v[y].ann;
                common[c]++;
                double t = label_kendall_tau_b(jx_->ranks, jy->ranks, jx_->n_ranks);
                if (isnan(t)) continue;
                defined[c]++;
                sum[c] += t;
                pooled += t;
                st->rank_pooled_defined++;
            }
        s = e;
    }
    for (int a = 0; a < nl; a++)
        for (int b = a + 1; b < nl; b++) {
            size_t c = (size_t)a * (size_t)nl + (size_t)b;
            if (!common[c]) continue;
            st->rank_pairs = xrealloc(st->rank_pairs,
                                      (size_t)(st->n_rank_pairs + 1) * sizeof(LabelRankPairStat));
            st->rank_pairs[st->n_rank_pairs++] = (LabelRankPairStat){
                a, b, common[c], defined[c], defined[c] ? sum[c] / (double)defined[c] : NAN};
        }
    st->rank_pooled_tau = st->rank_pooled_defined ? pooled / (double)st->rank_pooled_defined : NAN;
    st->rank_alpha = rank_alpha(log, v, nv, nl);
    free(sum);
    free(common);
    free(defined);
    free(v);
}

void label_stats_compute(LabelStats *st, const LabelLog *log) {
    memset(st, 0, sizeof(*st));
    /* annotators, sorted */
    LabelMap *names = map_new();
    char **list = NULL;
    int nl = 0;
    for (int i = 0; i < log->n; i++) {
        if (map_get(names, log->j[i].annotator) >= 0) continue;
        map_put(names, log->j[i].annotator, 0);
        list = xrealloc(list, (size_t)(nl + 1) * sizeof(char *));
        list[nl++] = xstrdup(log->j[i].annotator);
    }
    if (nl > 1) qsort(list, (size_t)nl, sizeof(char *), cmp_str);
    for (int a = 0; a < nl; a++) map_put(names, list[a], a);
    st->n_annotators = nl;
    st->annotators = list;
    st->counts = xcalloc((size_t)(nl ? nl : 1), sizeof(*st->counts));
    st->undone = xcalloc((size_t)(nl ? nl : 1), sizeof(long));

    /* per-annotator counts and the votes that enter agreement */
    Vote *votes = xmalloc((size_t)(log->n ? log->n : 1) * sizeof(Vote));
    int nv = 0;
    for (int i = 0; i < log->n; i++) {
        const LabelJudgment *j = &log->j[i];
        int a = map_get(names, j->annotator);
        if (j->undone) {
            st->undone[a]++;
            continue;
        }
        if (!label_log_is_live(log, i)) { /* re-judged later: the last one counts */
            st->n_superseded++;
            continue;
        }
        st->counts[a][j->label]++;
        if (j->label == LABEL_SKIP || j->label == LABEL_RANK) continue;
        votes[nv++] = (Vote){j->id, a, j->label};
    }
    map_free(names);
    if (nv > 1) qsort(votes, (size_t)nv, sizeof(Vote), cmp_vote);
    rank_stats_compute(st, log);

    /* pairwise confusion matrices, created on first use */
    enum { K = LABEL_COUNT };
    LabelMap *pair_ix = map_new();
    long (*conf)[K * K] = NULL;
    int max_m = 0;
    for (int s = 0; s < nv;) {
        int e = s + 1;
        while (e < nv && strcmp(votes[e].id, votes[s].id) == 0) e++;
        int m = e - s;
        st->n_items++;
        if (m == 1) st->n_items_single++;
        if (m > max_m) max_m = m;
        for (int x = s; x < e; x++)
            for (int y = x + 1; y < e; y++) {
                char key[48];
                snprintf(key, sizeof(key), "%d,%d", votes[x].ann, votes[y].ann);
                int p = map_get(pair_ix, key);
                if (p < 0) {
                    p = st->n_pairs++;
                    map_put(pair_ix, key, p);
                    st->pairs = xrealloc(st->pairs, (size_t)st->n_pairs * sizeof(LabelPairStat));
                    conf = xrealloc(conf, (size_t)st->n_pairs * sizeof(*conf));
                    memset(conf[p], 0, sizeof(conf[p]));
                    st->pairs[p] = (LabelPairStat){votes[x].ann, votes[y].ann, 0, 0, NAN};
                }
                conf[p][votes[x].label * K + votes[y].label]++;
                st->pairs[p].n_common++;
                if (votes[x].label == votes[y].label) st->pairs[p].n_agree++;
            }
        s = e;
    }
    map_free(pair_ix);
    for (int p = 0; p < st->n_pairs; p++) {
        st->pairs[p].kappa = label_cohen_kappa(conf[p], K, NULL, NULL);
        st->pooled_common += st->pairs[p].n_common;
        st->pooled_agree += st->pairs[p].n_agree;
    }
    free(conf);
    /* order pairs by (a, b) for a stable report */
    for (int p = 1; p < st->n_pairs; p++) {
        LabelPairStat t = st->pairs[p];
        int q = p - 1;
        while (q >= 0 && (st->pairs[q].a > t.a || (st->pairs[q].a == t.a && st->pairs[q].b > t.b))) {
            st->pairs[q + 1] = st->pairs[q];
            q--;
        }
        st->pairs[q + 1] = t;
    }

    /* Fleiss' kappa per group of items with the same number of raters m >= 2 */
    for (int m = 2; m <= max_m; m++) {
        long *rows = NULL;
        int nrow = 0;
        for (int s = 0; s < nv;) {
            int e = s + 1;
            while (e < nv && strcmp(votes[e].id, votes[s].id) == 0) e++;
            if (e - s == m) {
                rows = xrealloc(rows, (size_t)(nrow + 1) * K * sizeof(long));
                memset(rows + (size_t)nrow * K, 0, K * sizeof(long));
                for (int x = s; x < e; x++) rows[(size_t)nrow * K + votes[x].label]++;
                nrow++;
            }
            s = e;
        }
        if (nrow > 0) {
            st->groups = xrealloc(st->groups, (size_t)(st->n_groups + 1) * sizeof(LabelFleissGroup));
            st->groups[st->n_groups++] =
                (LabelFleissGroup){m, nrow, label_fleiss_kappa(rows, nrow, K, NULL, NULL)};
        }
        free(rows);
    }
    free(votes);
}

static void print_kappa(FILE *f, double k) {
    if (isnan(k))
        fprintf(f, "%12s", "undefined");
    else
        fprintf(f, "%12.3f", k);
}

static void print_nominal_agreement(FILE *f, const LabelStats *st);
static void print_rank_agreement(FILE *f, const LabelStats *st);

void label_stats_print(FILE *f, const LabelStats *st) {
    long live = 0, undone = 0;
    for (int a = 0; a < st->n_annotators; a++) {
        for (int k = 0; k < LABEL_COUNT; k++) live += st->counts[a][k];
        undone += st->undone[a];
    }
    fprintf(f, "%ld live judgments (%ld undone", live, undone);
    if (st->n_superseded)
        fprintf(f, ", %ld superseded by a later judgment of the same annotator and item",
                st->n_superseded);
    fprintf(f, "), %d annotators, %ld items judged (skips excluded), %ld of them by one "
               "annotator only\n\n",
            st->n_annotators, st->n_items, st->n_items_single);
    int nk = LABEL_RANK; /* the rank column only where there are rankings */
    for (int a = 0; a < st->n_annotators; a++)
        if (st->counts[a][LABEL_RANK]) nk = LABEL_COUNT;
    fprintf(f, "per annotator (live judgments, after undo)\n");
    fprintf(f, "%-24s", "annotator");
    for (int k = 0; k < nk; k++) fprintf(f, "%7s", label_kind_name((LabelKind)k));
    fprintf(f, "%8s%8s\n", "total", "undone");
    for (int a = 0; a < st->n_annotators; a++) {
        long tot = 0;
        fprintf(f, "%-24s", st->annotators[a]);
        for (int k = 0; k < LABEL_COUNT; k++) {
            if (k < nk) fprintf(f, "%7ld", st->counts[a][k]);
            tot += st->counts[a][k];
        }
        fprintf(f, "%8ld%8ld\n", tot, st->undone[a]);
    }
    fprintf(f, "\n");
    if (st->n_pairs > 0 || st->n_rank_items == 0) print_nominal_agreement(f, st);
    if (st->n_rank_items > 0) print_rank_agreement(f, st);
}

static void print_rank_agreement(FILE *f, const LabelStats *st) {
    fprintf(f, "%sranking agreement: Kendall tau-b between annotators on the items both "
               "ranked (%ld ranked items)\n",
            st->n_pairs > 0 ? "\n" : "", st->n_rank_items);
    if (st->n_rank_pairs == 0) {
        fprintf(f, "no item was ranked by two or more annotators\n");
        return;
    }
    fprintf(f, "%-40s%8s%9s%12s\n", "pair", "items", "defined", "mean tau-b");
    for (int p = 0; p < st->n_rank_pairs; p++) {
        const LabelRankPairStat *ps = &st->rank_pairs[p];
        char name[256];
        snprintf(name, sizeof(name), "%s / %s", st->annotators[ps->a], st->annotators[ps->b]);
        fprintf(f, "%-40s%8ld%9ld", name, ps->n_common, ps->n_defined);
        print_kappa(f, ps->tau_mean);
        fprintf(f, "\n");
    }
    fprintf(f, "%-40s%8s%9ld", "all pairs pooled", "", st->rank_pooled_defined);
    print_kappa(f, st->rank_pooled_tau);
    fprintf(f, "\n");    fprintf(f, "Krippendorff's alpha (ordinal) over the places of every response:");
    print_kappa(f, st->rank_alpha);
    fprintf(f, "\n");
}

static void print_nominal_agreement(FILE *f, const LabelStats *st) {
    if (st->n_pairs == 0) {
        fprintf(f, "agreement: no item was judged by two or more annotators (give several "
                   "annotators the same candidates file to measure agreement)\n");
        return;
    }
    fprintf(f, "agreement between annotator pairs (items both judged; skips excluded)\n");
    fprintf(f, "%-40s%8s%8s%9s%12s\n", "pair", "items", "agree", "percent", "Cohen kappa");
    for (int p = 0; p < st->n_pairs; p++) {
        const LabelPairStat *ps = &st->pairs[p];
        char name[256];
        snprintf(name, sizeof(name), "%s / %s", st->annotators[ps->a], st->annotators[ps->b]);
        fprintf(f, "%-40s%8ld%8ld%8.1f%%", name, ps->n_common, ps->n_agree,
                100.0 * (double)ps->n_agree / (double)ps->n_common);
        print_kappa(f, ps->kappa);
        fprintf(f, "\n");
    }
    fprintf(f, "%-40s%8ld%8ld%8.1f%%\n\n", "all pairs pooled", st->pooled_common,
            st->pooled_agree, 100.0 * (double)st->pooled_agree / (double)st->pooled_common);
    fprintf(f, "Fleiss kappa, per group of items with the same number of raters (items "
               "judged by one annotator are left out)\n");
    fprintf(f, "%8s%8s%14s\n", "raters", "items", "Fleiss kappa");
    for (int g = 0; g < st->n_groups; g++) {
        fprintf(f, "%8d%8ld  ", st->groups[g].n_raters, st->groups[g].n_items);
        print_kappa(f, st->groups[g].kappa);
        fprintf(f, "\n");
    }
}

void label_stats_free(LabelStats *st) {
    if (!st) return;
    for (int a = 0; a < st->n_annotators; a++) free(st->annotators[a]);
    free(st->annotators);
    free(st->counts);
    free(st->undone);
    free(st->pairs);
    free(st->groups);
    free(st->rank_pairs);
    memset(st, 0, sizeof(*st));
}

// ----------------------------------------------------------------------------
// export

/* Write o (consumed) as one line; -1 on a write error. */
static int put_line(FILE *f, json_t *o) {
    char *line = dump_line(o);
    int rc = fputs(line, f);
    free(line);
    return rc == EOF ? -1 : 0;
}

/* The non-tied pairs of live ranking j, each weighted 1/C(K,2); lines written or -1. */
static long export_rank_pairs(FILE *f, const LabelJudgment *j) {
    int k = j->n_ranks;
    double w = 2.0 / ((double)k * (double)(k - 1));
    json_t *resp = json_object_get(j->rec, "responses");
    json_t *cat = json_object_get(j->rec, "category");
    size_t gl = strlen(j->annotator) + strlen(j->id) + 2;
    char *group = xmalloc(gl);
    snprintf(group, gl, "%s/%s", j->annotator, j->id);
    long written = 0;
    for (int x = 0; x < k; x++)
        for (int y = x + 1; y < k; y++) {
            if (j->ranks[x] == j->ranks[y]) continue; /* a tie is no pair */
            int wi = j->ranks[x] < j->ranks[y] ? x : y, li = wi == x ? y : x;
            json_t *o = json_object();
            json_object_set(o, "prompt", json_object_get(j->rec, "prompt"));
            json_object_set(o, "chosen", json_array_get(resp, (size_t)wi));
            json_object_set(o, "rejected", json_array_get(resp, (size_t)li));
            if (json_is_string(cat)) json_object_set(o, "category", cat);
            json_object_set_new(o, "annotator", json_string(j->annotator));
            json_object_set_new(o, "id", json_string(j->id));
            json_object_set_new(o, "weight", json_real(w));
            json_object_set_new(o, "group", json_string(group));
            if (put_line(f, o)) {
                free(group);
                return -1;
            }
            written++;
        }
    free(group);
    return written;
}

long label_export_rankings(FILE *f, const LabelLog *log) {
    long written = 0;
    for (int i = 0; i < log->n; i++) {
        const LabelJudgment *j = &log->j[i];
        if (j->label != LABEL_RANK || !label_log_is_live(log, i)) continue;
        json_t *o = json_object();
        json_object_set(o, "prompt", json_object_get(j->rec, "prompt"));
        json_object_set(o, "responses", json_object_get(j->rec, "responses"));
        json_object_set(o, "ranks", json_object_get(j->rec, "ranks"));
        json_t *cat = json_object_get(j->rec, "category");
        if (json_is_string(cat)) json_object_set(o, "category", cat);
        json_object_set_new(o, "annotator", json_string(j->annotator));
        json_object_set_new(o, "id", json_string(j->id));
        if (put_line(f, o)) return -1;
        written++;
    }
    if (fflush(f) != 0) return -1;
    return written;
}

long label_export(FILE *f, const LabelLog *log, int thumbs) {
    long written = 0;
    for (int i = 0; i < log->n; i++) {
        const LabelJudgment *j = &log->j[i];
        if (!label_log_is_live(log, i)) continue;
        if (!thumbs && j->label == LABEL_RANK) {
            long w = export_rank_pairs(f, j);
            if (w < 0) return -1;
            written += w;
            continue;
        }
        int pair = j->label == LABEL_A || j->label == LABEL_B;
        int thumb = j->label == LABEL_UP || j->label == LABEL_DOWN;
        if (thumbs ? !thumb : !pair) continue;
        json_t *o = json_object();
        json_object_set(o, "prompt", json_object_get(j->rec, "prompt"));
        if (pair) {
            json_object_set(o, "chosen", json_object_get(j->rec, "chosen"));
            json_object_set(o, "rejected", json_object_get(j->rec, "rejected"));
        } else {
            json_object_set(o, "completion", json_object_get(j->rec, "response"));
            json_object_set_new(o, "label", json_boolean(j->label == LABEL_UP));
        }
        json_t *cat = json_object_get(j->rec, "category");
        if (json_is_string(cat)) json_object_set(o, "category", cat);
        json_object_set_new(o, "annotator", json_string(j->annotator));
        json_object_set_new(o, "id", json_string(j->id));
        char *line = dump_line(o);
        int rc = fputs(line, f);
        free(line);
        if (rc == EOF) return -1;
        written++;
    }
    if (fflush(f) != 0) return -1;
    return written;
}

// ----------------------------------------------------------------------------
// display helpers

int label_cp_width(unsigned cp) {
    static const unsigned zero[][2] = {
        {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061A},
        {0x064B, 0x065F}, {0x0E31, 0x0E31}, {0x0E34, 0x0E3A}, {0x1AB0, 0x1AFF},
        {0x1DC0, 0x1DFF}, {0x200B, 0x200F}, {0x20D0, 0x20FF}, {0xFE00, 0xFE0F},
        {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF}, {0xE0100, 0xE01EF}};
    static const unsigned wide[][2] = {
        {0x1100, 0x115F},   {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},
        {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},
        {0xFE30, 0xFE4F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x1F300, 0x1F64F},
        {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD}};
    for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
        if (cp >= zero[i][0] && cp <= zero[i][1]) return 0;
    for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++)
        if (cp >= wide[i][0] && cp <= wide[i][1]) return 2;
    return 1;
}

/* One display cell: a code point's UTF-8 bytes (or U+FFFD for anything unsafe). */
typedef struct {
    char b[4];
    int nb;
    int w;
    int kind; /* 0 text, 1 space, 2 newline */
} Cell;

/* Decode s[*i..] into c; replaces control characters, bidi overrides and invalid bytes
 * by U+FFFD so a response cannot move the cursor or reorder the screen. */
static void cell_next(const unsigned char *s, size_t n, size_t *i, Cell *c) {
    static const char repl[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    unsigned x = s[*i];
    size_t len = 1;
    unsigned cp = x;
    if (x >= 0x80) {
        len = (x & 0xE0) == 0xC0 ? 2 : (x & 0xF0) == 0xE0 ? 3 : (x & 0xF8) == 0xF0 ? 4 : 0;
        if (len == 0 || *i + len > n || !utf8_valid((const char *)s + *i, len, NULL)) {
            (*i)++;
            goto replace;
        }
        cp = x & (0x7F >> len);
        for (size_t k = 1; k < len; k++) cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    c->kind = 0;
    if (cp == '\n') {
        *i += 1;
        c->kind = 2, c->nb = 0, c->w = 0;
        return;
    }
    if (cp == ' ') {
        *i += 1;
        c->kind = 1, c->nb = 1, c->b[0] = ' ', c->w = 1;
        return;
    }
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || (cp >= 0x202A && cp <= 0x202E) ||
        (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029) {
        *i += len;
        goto replace;
    }
    memcpy(c->b, s + *i, len);
    c->nb = (int)len;
    c->w = label_cp_width(cp);
    *i += len;
    return;
replace:
    memcpy(c->b, repl, 3);
    c->nb = 3;
    c->w = 1;
    c->kind = 0;
}

typedef struct {
    char *buf;
    size_t n, cap;
    int w;
} LineBuf;

static void lb_put(LineBuf *lb, const Cell *c) {
    if (lb->n + (size_t)c->nb + 1 > lb->cap) {
        lb->cap = (lb->cap + (size_t)c->nb + 1) * 2;
        lb->buf = xrealloc(lb->buf, lb->cap);
    }
    memcpy(lb->buf + lb->n, c->b, (size_t)c->nb);
    lb->n += (size_t)c->nb;
    lb->w += c->w;
}

static void lines_emit(LabelLines *out, LineBuf *lb) {
    if (out->n == out->cap) {
        out->cap = out->cap ? 2 * out->cap : 16;
        out->line = xrealloc(out->line, (size_t)out->cap * sizeof(char *));
        out->width = xrealloc(out->width, (size_t)out->cap * sizeof(int));
    }
    char *s = xmalloc(lb->n + 1);
    memcpy(s, lb->buf ? lb->buf : "", lb->n);
    s[lb->n] = 0;
    out->line[out->n] = s;
    out->width[out->n] = lb->w;
    out->n++;
    lb->n = 0;
    lb->w = 0;
}

void label_wrap(LabelLines *out, const char *text, int width) {
    ASSERT(width >= 1);
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text);
    /* decode once; tabs become four spaces, '\r' is dropped (CRLF text) */
    size_t tabs = 0;
    for (size_t i = 0; i < n; i++) tabs += s[i] == '\t';
    Cell *cells = xmalloc((n + 3 * tabs + 1) * sizeof(Cell));
    size_t nc = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '\t' || s[i] == '\r') {
            for (int k = 0; s[i] == '\t' && k < 4; k++) cells[nc++] = (Cell){{' '}, 1, 1, 1};
            i++;
            continue;
        }
        cell_next(s, n, &i, &cells[nc]);
        if (cells[nc].w > width) cells[nc] = (Cell){{'?'}, 1, 1, 0};
        nc++;
    }
    LineBuf lb = {0};
    int n_before = out->n;
    for (size_t i = 0; i < nc;) {
        if (cells[i].kind == 2) {
            lines_emit(out, &lb);
            i++;
            continue;
        }
        size_t j = i;
        int rw = 0;
        while (j < nc && cells[j].kind == cells[i].kind) rw += cells[j++].w;
        if (cells[i].kind == 1) { /* a run of spaces */
            if (lb.w + rw <= width) {
                for (size_t k = i; k < j; k++) lb_put(&lb, &cells[k]);
            } else if (lb.w > 0) {
                lines_emit(out, &lb); /* the spaces at the wrap point are dropped */
            }
        } else if (lb.w + rw <= width) {
            for (size_t k = i; k < j; k++) lb_put(&lb, &cells[k]);
        } else if (lb.w > 0 && rw <= width) {
            lines_emit(out, &lb);
            for (size_t k = i; k < j; k++) lb_put(&lb, &cells[k]);
        } else { /* longer than a line: split it */
            for (size_t k = i; k < j; k++) {
                if (lb.w + cells[k].w > width) lines_emit(out, &lb);
                lb_put(&lb, &cells[k]);
            }
        }
        i = j;
    }
    if (lb.n > 0 || out->n == n_before) lines_emit(out, &lb);
    free(lb.buf);
    free(cells);
}

void label_lines_free(LabelLines *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->line[i]);
    free(l->line);
    free(l->width);
    memset(l, 0, sizeof(*l));
}
