/*
 * common/label_req.c — form and JSON request bodies of the labelling web page into named
 * string fields, with every limit of label_req.h checked (the bodies come from the
 * network; tests/test_label_req.c and fuzz/fuzz_label_req.c exercise the refusals), and
 * the places of a rank judgment into checked ranks.
 */
#include "label_req.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

int label_req_format(const char *ct, char *err) {
    static const char want[] = "send Content-Type application/x-www-form-urlencoded or "
                               "application/json";
    if (!ct) return errf(err, "no Content-Type; %s", want);
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    int fmt = -1;
    if (n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", n) == 0)
        fmt = LABEL_REQ_FORM;
    else if (n == 16 && strncasecmp(ct, "application/json", n) == 0) fmt = LABEL_REQ_JSON;
    if (fmt < 0) return errf(err, "Content-Type %.64s is not accepted; %s", ct, want);
    const char *p = strchr(ct, ';');
    while (p) { /* parameters: only charset=utf-8 means something here */
        p++;
        while (*p == ' ' || *p == '\t') p++;
        size_t m = strcspn(p, ";");
        if (m >= 8 && strncasecmp(p, "charset=", 8) == 0) {
            const char *v = p + 8;
            size_t vn = m - 8;
            if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') v++, vn -= 2;
            if (!(vn == 5 && strncasecmp(v, "utf-8", 5) == 0))
                return errf(err, "charset %.*s is not accepted; send UTF-8 (charset=utf-8)",
                            (int)(vn > 32 ? 32 : vn), v);
        }
        p = strchr(p, ';');
    }
    return fmt;
}

static int name_ok(const char *s, size_t n) {
    if (n == 0 || n > LABEL_REQ_MAX_NAME) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return 0;
    }
    return 1;
}

/* Check name and value and append the field (copies both). */
static int req_add(LabelReq *r, const char *name, size_t nn, const char *val, size_t vn,
                   char *err) {
    if (!name_ok(name, nn))
        return errf(err,
                    "field name \"%.*s\" is not accepted: 1 to %d characters of a-z, "
                    "0-9, _",
                    (int)(nn > 40 ? 40 : nn), name, LABEL_REQ_MAX_NAME);
    if (r->n >= LABEL_REQ_MAX_FIELDS) return errf(err, "more than %d fields", LABEL_REQ_MAX_FIELDS);
    for (int i = 0; i < r->n; i++)
        if (strlen(r->f[i].name) == nn && memcmp(r->f[i].name, name, nn) == 0)
            return errf(err, "field %.*s given twice", (int)nn, name);
    if (vn > LABEL_REQ_MAX_VALUE)
        return errf(err, "field %.*s: value longer than %d bytes", (int)nn, name,
                    LABEL_REQ_MAX_VALUE);
    if (memchr(val, 0, vn)) return errf(err, "field %.*s: value contains NUL", (int)nn, name);
    if (!utf8_valid(val, vn, NULL))
        return errf(err, "field %.*s: value is not valid UTF-8", (int)nn, name);
    LabelReqField *f = &r->f[r->n++];
    f->name = xmalloc(nn + 1);
    memcpy(f->name, name, nn);
    f->name[nn] = 0;
    f->value = xmalloc(vn + 1);
    memcpy(f->value, val, vn);
    f->value[vn] = 0;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into out (room for n bytes); '+' is a space. Returns the
 * decoded length, or -1 at a bad escape. */
static long form_unescape(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return (long)o;
}

static int decode_form(LabelReq *r, const char *body, size_t len, char *err) {
    char *name = xmalloc(len + 1), *val = xmalloc(len + 1);
    int rc = 0;
    size_t i = 0;
    while (i < len && rc == 0) {
        size_t end = i;
        while (end < len && body[end] != '&') end++;
        if (end > i) { /* empty pieces ("a=1&&b=2", a trailing '&') carry nothing */
            const char *eq = memchr(body + i, '=', end - i);
            if (!eq) {
                rc = errf(err, "form field %zu has no '=' (name=value pairs joined by '&')",
                          (size_t)r->n + 1);
                break;
            }
            long nn = form_unescape(body + i, (size_t)(eq - body) - i, name);
            long vn = form_unescape(eq + 1, end - (size_t)(eq + 1 - body), val);
            if (nn < 0 || vn < 0)
                rc = errf(err,
                          "form field %zu: a bad %% escape (two hex digits must "
                          "follow %%)",
                          (size_t)r->n + 1);
            else rc = req_add(r, name, (size_t)nn, val, (size_t)vn, err);
        }
        i = end + 1;
    }
    free(name);
    free(val);
    return rc;
}

static int decode_json(LabelReq *r, const char *body, size_t len, char *err) {
    json_error_t je;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) return errf(err, "JSON body, position %d: %s", je.position, je.text);
    int rc = 0;
    if (!json_is_object(o)) rc = errf(err, "the JSON body must be an object of strings");
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (rc) break;
        if (!json_is_string(v)) {
            rc = errf(err, "JSON field \"%.40s\" must be a string", k);
            break;
        }
        rc = req_add(r, k, strlen(k), json_string_value(v), json_string_length(v), err);
    }
    json_decref(o);
    return rc;
}

int label_req_decode(LabelReq *r, LabelReqFormat fmt, const char *body, size_t len, char *err) {
    memset(r, 0, sizeof(*r));
    if (len > LABEL_REQ_MAX_BODY) return errf(err, "body longer than %d bytes", LABEL_REQ_MAX_BODY);
    int rc =
        fmt == LABEL_REQ_JSON ? decode_json(r, body, len, err) : decode_form(r, body, len, err);
    if (rc) label_req_free(r);
    return rc;
}

const char *label_req_get(const LabelReq *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->f[i].name, name) == 0) return r->f[i].value;
    return NULL;
}

const char *label_req_need(const LabelReq *r, const char *name, char *err) {
    const char *v = label_req_get(r, name);
    if (!v) errf(err, "missing field %s", name);
    return v;
}

int label_req_only(const LabelReq *r, const char *const *known, char *err) {
    for (int i = 0; i < r->n; i++) {
        int ok = 0;
        for (int k = 0; known[k] && !ok; k++) ok = strcmp(r->f[i].name, known[k]) == 0;
        if (!ok) return errf(err, "unknown field %s", r->f[i].name);
    }
    return 0;
}

// ----------------------------------------------------------------------------
// the places of a ranking

/* The response number of a field name "r<digits>" (no sign, no leading zero; numbers
 * past 100000 count as 100000), or 0 for any other name. */
static long rank_field_number(const char *name) {
    if (name[0] != 'r' || name[1] < '1' || name[1] > '9') return 0;
    long v = 0;
    for (const char *p = name + 1; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v >= 100000 ? 100000 : v * 10 + (*p - '0');
    }
    return v;
}

int label_req_has_rank_field(const LabelReq *r) {
    for (int i = 0; i < r->n; i++)
        if (rank_field_number(r->f[i].name) > 0) return 1;
    return 0;
}

/* A place: decimal digits only, 1..k. */
static int place_parse(const char *v, int k) {
    if (!v[0] || strlen(v) > 3) return -1;
    int p = 0;
    for (; *v; v++) {
        if (*v < '0' || *v > '9') return -1;
        p = p * 10 + (*v - '0');
    }
    return p >= 1 && p <= k ? p : -1;
}

int label_req_ranks(const LabelReq *r, int k, int *ranks, char *err) {
    if (k < 1 || k > LABEL_REQ_RANK_MAX)
        return errf(err, "a ranking has 1 to %d responses, not %d", LABEL_REQ_RANK_MAX, k);
    for (int i = 0; i < r->n; i++) {
        long no = rank_field_number(r->f[i].name);
        if (no > k)
            return errf(err, "field %s: this item has %d responses (fields r1 to r%d)",
                        r->f[i].name, k, k);
    }
    for (int i = 0; i < k; i++) {
        char name[8];
        snprintf(name, sizeof(name), "r%d", i + 1);
        const char *v = label_req_get(r, name);
        if (!v || !v[0])
            return errf(err,
                        "field %s: response %d has no place; give each of the %d responses "
                        "a place from 1 (best) to %d",
                        name, i + 1, k, k);
        if ((ranks[i] = place_parse(v, k)) < 0)
            return errf(err, "field %s: \"%.20s\" is not a place from 1 (best) to %d", name, v, k);
    }
    for (int i = 0; i < k; i++) {
        int better = 0;
        for (int j = 0; j < k; j++) better += ranks[j] < ranks[i];
        if (ranks[i] != better + 1)
            return errf(err,
                        "field r%d: place %d does not follow from the others: %d response%s "
                        "placed better, so this one is place %d (tied responses share a place "
                        "and the places they take are skipped: 1, 1, 3)",
                        i + 1, ranks[i], better, better == 1 ? " is" : "s are", better + 1);
    }
    return 0;
}

void label_req_free(LabelReq *r) {
    for (int i = 0; i < r->n; i++) {
        free(r->f[i].name);
        free(r->f[i].value);
    }
    r->n = 0;
}
