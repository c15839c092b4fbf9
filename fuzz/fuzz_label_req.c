/*
 * fuzz/fuzz_label_req.c — libFuzzer target for the request decoder of the labelling web
 * page (common/label_req.h: form and JSON bodies of `rlhf-label serve`), and the HTML
 * escaping its answers rely on (label_page_text).
 *
 * The first byte of an input picks the format (even: form, odd: JSON); the rest is the
 * body. Properties checked besides "no crash, leak, UB or hang":
 *   - a refusal has a message; an accepted body has at most LABEL_REQ_MAX_FIELDS fields,
 *     each with a valid name (a-z 0-9 _, 1..LABEL_REQ_MAX_NAME), no duplicate, and a
 *     value that is valid UTF-8 without NUL, at most LABEL_REQ_MAX_VALUE bytes, found
 *     again by label_req_get;
 *   - a decoded form, encoded again (every byte %XX), decodes to the same fields;
 *   - label_req_format never crashes on the input as a header value;
 *   - the escaped input has no < > " ' and every & starts an entity.
 * Seeds: fuzz/corpus/fuzz_label_req/ (a judgment, an undo and a login in both formats).
 * Not here: HTTP itself (libmicrohttpd) and the handlers (tests/t_label_web.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "label_page.h"
#include "label_req.h"
#include "util.h"

static int name_valid(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > LABEL_REQ_MAX_NAME) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return 0;
    return 1;
}

static void check_fields(const LabelReq *r) {
    FUZZ_REQUIRE(r->n >= 0 && r->n <= LABEL_REQ_MAX_FIELDS);
    for (int i = 0; i < r->n; i++) {
        const char *v = r->f[i].value;
        FUZZ_REQUIRE(name_valid(r->f[i].name));
        FUZZ_REQUIRE(strlen(v) <= LABEL_REQ_MAX_VALUE && utf8_valid(v, strlen(v), NULL));
        FUZZ_REQUIRE(label_req_get(r, r->f[i].name) == v); /* so no duplicate before i */
    }
}

/* every byte as %XX: the decoder must give the same fields back */
static void check_form_roundtrip(const LabelReq *r) {
    size_t cap = 1;
    for (int i = 0; i < r->n; i++) cap += 3 * (strlen(r->f[i].name) + strlen(r->f[i].value)) + 2;
    char *body = malloc(cap), *o = body;
    for (int i = 0; i < r->n; i++) {
        if (i) *o++ = '&';
        for (const char *p = r->f[i].name; *p; p++) o += sprintf(o, "%%%02X", (unsigned char)*p);
        *o++ = '=';
        for (const char *p = r->f[i].value; *p; p++) o += sprintf(o, "%%%02x", (unsigned char)*p);
    }
    LabelReq again;
    char err[ERRBUF_LEN];
    FUZZ_REQUIRE(label_req_decode(&again, LABEL_REQ_FORM, body, (size_t)(o - body), err) == 0);
    FUZZ_REQUIRE(again.n == r->n);
    for (int i = 0; i < r->n; i++) {
        FUZZ_REQUIRE(strcmp(again.f[i].name, r->f[i].name) == 0);
        FUZZ_REQUIRE(strcmp(again.f[i].value, r->f[i].value) == 0);
    }
    label_req_free(&again);
    free(body);
}

static void check_escape(const char *text) {
    LabelPage p = {0};
    label_page_text(&p, text);
    label_page_add(&p, ""); /* an empty input leaves no buffer otherwise */
    for (const char *s = p.s; *s; s++) {
        FUZZ_REQUIRE(*s != '<' && *s != '>' && *s != '"' && *s != '\'');
        if (*s == '&')
            FUZZ_REQUIRE(strncmp(s, "&amp;", 5) == 0 || strncmp(s, "&lt;", 4) == 0 ||
                         strncmp(s, "&gt;", 4) == 0 || strncmp(s, "&quot;", 6) == 0 ||
                         strncmp(s, "&#39;", 5) == 0);
    }
    label_page_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    LabelReqFormat fmt = (data[0] & 1) ? LABEL_REQ_JSON : LABEL_REQ_FORM;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    LabelReq r;
    char err[ERRBUF_LEN] = "";
    if (label_req_decode(&r, fmt, body, n, err) == 0) {
        check_fields(&r);
        if (fmt == LABEL_REQ_FORM) check_form_roundtrip(&r);
        label_req_free(&r);
    } else {
        FUZZ_REQUIRE(err[0] != 0);
    }
    char *text = fuzz_cstr(data + 1, n);
    err[0] = 0;
    int f = label_req_format(text, err);
    FUZZ_REQUIRE(f == LABEL_REQ_FORM || f == LABEL_REQ_JSON || (f == -1 && err[0]));
    check_escape(text);
    free(text);
    return 0;
}
