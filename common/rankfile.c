/*
 * common/rankfile.c — reading the ranking training file (format in rankfile.h): every
 * line is validated, and the first bad one is reported as path:line with the fix.
 */
#include "rankfile.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "label.h"
#include "util.h"

/* The first non-blank line of buf[0..len) starting at *pos: its start and length (no
 * '\n' or trailing '\r'); *pos moves past it; *line counts lines. 0 at the end. */
static int next_line(const char *buf, size_t len, size_t *pos, int *line, const char **s,
                     size_t *n) {
    while (*pos < len) {
        const char *start = buf + *pos;
        const char *nl = memchr(start, '\n', len - *pos);
        size_t m = nl ? (size_t)(nl - start) : len - *pos;
        *pos += nl ? m + 1 : m;
        (*line)++;
        if (m > 0 && start[m - 1] == '\r') m--;
        size_t k = 0;
        while (k < m && (start[k] == ' ' || start[k] == '\t')) k++;
        if (k == m) continue;
        *s = start;
        *n = m;
        return 1;
    }
    return 0;
}

int rank_file_sniff(const char *path) {
    char err[ERRBUF_LEN];
    size_t len, pos = 0, n;
    int line = 0, yes = 0;
    const char *s;
    char *buf = file_read_all(path, &len, err);
    if (!buf) return 0;
    if (next_line(buf, len, &pos, &line, &s, &n)) {
        json_t *o = json_loadb(s, n, 0, NULL);
        yes = json_is_object(o) && json_object_get(o, "responses") != NULL;
        json_decref(o);
    }
    free(buf);
    return yes;
}

static void record_free(RankRecord *r) {
    for (int i = 0; i < r->k; i++) free(r->resp[i]);
    free(r->resp);
    free(r->rank);
    free(r->prompt);
    free(r->category);
}

/* One parsed line into r; -1 with err (no location); 1 when the line is left out. */
static int record_parse(RankRecord *r, json_t *o, char *err) {
    memset(r, 0, sizeof *r);
    if (json_object_get(o, "undo"))
        return errf(err, "an undo record: this is a raw rlhf-label log; train on "
                         "`rlhf-label export --rankings LOG` instead");
    json_t *lab = json_object_get(o, "label");
    if (json_is_string(lab) && strcmp(json_string_value(lab), "rank") != 0) return 1;
    json_t *p = json_object_get(o, "prompt"), *rs = json_object_get(o, "responses");
    json_t *rk = json_object_get(o, "ranks"), *cat = json_object_get(o, "category");
    if (!json_is_string(p)) return errf(err, "field \"prompt\" must be a string");
    if (!json_is_array(rs)) return errf(err, "field \"responses\" must be an array of strings");
    size_t k = json_array_size(rs);
    if (k < 2 || k > LABEL_RANK_MAX)
        return errf(err, "field \"responses\" holds %zu responses; 2 to %d are needed", k,
                    LABEL_RANK_MAX);
    if (!json_is_array(rk) || json_array_size(rk) != k)
        return errf(err, "field \"ranks\" must be an array of %zu integers, one per response", k);
    if (cat && !json_is_null(cat) && !json_is_string(cat))
        return errf(err, "field \"category\" must be a string");
    for (size_t i = 0; i < k; i++) {
        json_t *x = json_array_get(rk, i);
        if (!json_is_string(json_array_get(rs, i)))
            return errf(err, "responses[%zu] must be a string", i);
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > (json_int_t)k)
            return errf(err, "ranks[%zu] must be an integer from 1 (best) to %zu", i, k);
    }
    r->k = (int)k;
    r->prompt = xstrdup(json_string_value(p));
    r->category = json_is_string(cat) ? xstrdup(json_string_value(cat)) : NULL;
    r->resp = xmalloc(k * sizeof(char *));
    r->rank = xmalloc(k * sizeof(int));
    for (size_t i = 0; i < k; i++) {
        r->resp[i] = xstrdup(json_string_value(json_array_get(rs, i)));
        r->rank[i] = (int)json_integer_value(json_array_get(rk, i));
    }
    return 0;
}

int rank_file_load(RankFile *f, const char *path, char *err) {
    memset(f, 0, sizeof *f);
    size_t len, pos = 0, n, bad;
    int line = 0;
    int64_t cap = 0;
    const char *s;
    char why[ERRBUF_LEN];
    char *buf = file_read_all(path, &len, err);
    if (!buf) return -1;
    while (next_line(buf, len, &pos, &line, &s, &n)) {
        if (!utf8_valid(s, n, &bad) || memchr(s, 0, n)) {
            errf(err, "%s:%d: not valid UTF-8 (or a NUL byte); files must be UTF-8", path, line);
            goto fail;
        }
        json_error_t je;
        json_t *o = json_loadb(s, n, 0, &je);
        if (!json_is_object(o)) {
            errf(err, "%s:%d: %s", path, line,
                 o ? "expected a JSON object {\"prompt\",\"responses\",\"ranks\"}" : je.text);
            json_decref(o);
            goto fail;
        }
        if (f->n == cap) {
            cap = cap ? 2 * cap : 64;
            f->rec = xrealloc(f->rec, (size_t)cap * sizeof(RankRecord));
        }
        int rc = record_parse(&f->rec[f->n], o, why);
        json_decref(o);
        if (rc < 0) {
            errf(err, "%s:%d: %s", path, line, why);
            goto fail;
        }
        if (rc > 0) {
            f->n_other++;
            continue;
        }
        const RankRecord *r = &f->rec[f->n++];
        if (r->k > f->k_max) f->k_max = r->k;
        for (int i = 0; i < r->k; i++)
            for (int j = i + 1; j < r->k; j++) f->n_pairs += r->rank[i] != r->rank[j];
    }
    free(buf);
    if (f->n == 0) {
        errf(err, "%s: no ranking records (each line is {\"prompt\",\"responses\",\"ranks\"})",
             path);
        rank_file_free(f);
        return -1;
    }
    return 0;
fail:
    free(buf);
    rank_file_free(f);
    return -1;
}

void rank_file_free(RankFile *f) {
    for (int64_t i = 0; i < f->n; i++) record_free(&f->rec[i]);
    free(f->rec);
    memset(f, 0, sizeof *f);
}
