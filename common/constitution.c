/*
 * common/constitution.c — reading a constitution file (see constitution.h). Each line
 * is decoded with jansson on its own so that an error names its line; the checks are
 * strict (unknown fields, empty strings, duplicate names are errors) because a typo in
 * a principle otherwise silently changes every critique the model writes.
 */
#include "constitution.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rng.h"
#include "util.h"

static const char *const FIELDS[4] = {"name", "critique", "revision", "comparison"};

void constitution_free(Constitution *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        free(c->p[i].name), free(c->p[i].critique);
        free(c->p[i].revision), free(c->p[i].comparison);
    }
    free(c->p);
    c->p = NULL;
    c->n = 0;
}

/* One non-blank, non-comment line into *p. 0, or -1 with err (path:line prefixed). */
static int parse_principle(const char *s, size_t len, const char *path, int line, Principle *p,
                           char *err) {
    json_error_t je;
    json_t *o = json_loadb(s, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return errf(err, "%s:%d: invalid JSON at column %d: %s", path, line, je.column, je.text);
    int rc = -1;
    memset(p, 0, sizeof *p);
    p->line = line;
    if (!json_is_object(o)) {
        errf(err, "%s:%d: expected a JSON object {\"name\", \"critique\", \"revision\", "
                  "\"comparison\"}", path, line);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        int known = 0;
        for (int f = 0; f < 4; f++) known |= strcmp(key, FIELDS[f]) == 0;
        if (!known) {
            errf(err, "%s:%d: unknown field \"%.64s\" (a principle has name, critique, revision, "
                      "comparison)", path, line, key);
            goto done;
        }
    }
    char **dst[4] = {&p->name, &p->critique, &p->revision, &p->comparison};
    for (int f = 0; f < 4; f++) {
        json_t *x = json_object_get(o, FIELDS[f]);
        if (!x) {
            errf(err, "%s:%d: missing field \"%s\"", path, line, FIELDS[f]);
            goto done;
        }
        if (!json_is_string(x) || json_string_length(x) == 0) {
            errf(err, "%s:%d: field \"%s\" must be a non-empty string", path, line, FIELDS[f]);
            goto done;
        }
        if (json_string_length(x) > CONSTITUTION_MAX_FIELD ||
            strlen(json_string_value(x)) != json_string_length(x)) {
            errf(err, "%s:%d: field \"%s\" is longer than %d bytes or holds a NUL", path, line,
                 FIELDS[f], CONSTITUTION_MAX_FIELD);
            goto done;
        }
        *dst[f] = xstrdup(json_string_value(x));
    }
    rc = 0;
done:
    if (rc) free(p->name), free(p->critique), free(p->revision), free(p->comparison);
    json_decref(o);
    return rc;
}

static int is_skipped(const char *s, size_t len) {
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
    return i == len || s[i] == '#';
}

int constitution_parse(Constitution *c, const char *text, size_t len, const char *path, char *err) {
    memset(c, 0, sizeof *c);
    int cap = 0, line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        line++;
        const char *s = text + pos;
        size_t n = end - pos;
        pos = end + 1;
        if (is_skipped(s, n)) continue;
        if (c->n == CONSTITUTION_MAX) {
            errf(err, "%s:%d: more than %d principles", path, line, CONSTITUTION_MAX);
            goto fail;
        }
        if (c->n == cap) {
            cap = cap ? 2 * cap : 16;
            c->p = xrealloc(c->p, (size_t)cap * sizeof *c->p);
        }
        if (parse_principle(s, n, path, line, &c->p[c->n], err) != 0) goto fail;
        c->n++;
        for (int i = 0; i + 1 < c->n; i++)
            if (strcmp(c->p[i].name, c->p[c->n - 1].name) == 0) {
                errf(err, "%s:%d: duplicate principle name \"%.64s\" (first on line %d)", path,
                     line, c->p[i].name, c->p[i].line);
                goto fail;
            }
    }
    if (c->n == 0) {
        errf(err, "%s: no principle (one JSON object per line: name, critique, revision, "
                  "comparison)", path);
        goto fail;
    }
    return 0;
fail:
    constitution_free(c);
    return -1;
}

int constitution_load(Constitution *c, const char *path, char *err) {
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f) return errf(err, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 65536;
            if (cap > ((size_t)64 << 20)) {
                fclose(f);
                free(buf);
                return errf(err, "%s: larger than 64 MiB, not a constitution", path);
            }
            buf = xrealloc(buf, cap);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    int rc = bad ? errf(err, "%s: read error", path) : constitution_parse(c, buf, len, path, err);
    free(buf);
    return rc;
}

int constitution_pick(const Constitution *c, uint64_t seed, uint64_t key1, uint64_t key2) {
    Rng r;
    rng_init_keyed(&r, seed ^ 0x43414900u /* "CAI": apart from the sampler's streams */, key1,
                   key2);
    return (int)rng_below(&r, (uint64_t)c->n);
}
