/*
 * fuzz/fuzz_label_req.c — libFuzzer target for the request decoder of the labelling web
 * page (common/label_req.h: form and JSON bodies of `rlhf-label serve`), and the HTML
 * escaping its answers rely on (label_page_text).
 *
 * The first byte of an input picks the format (even: form, odd: JSON) and, with its
 * other bits, the number of responses K = (byte >> 1) % 10 of a rank judgment; the rest
 * is the body. Properties checked besides "no crash, leak, UB or hang":
 *   - a refusal has a message; an accepted body has at most LABEL_REQ_MAX_FIELDS fields,
 *     each with a valid name (a-z 0-9 _, 1..LABEL_REQ_MAX_NAME), no duplicate, and a
 *     value that is valid UTF-8 without NUL, at most LABEL_REQ_MAX_VALUE bytes, found
 *     again by label_req_get;
 *   - a decoded form, encoded again (every byte %XX), decodes to the same fields;
 *   - the rank form fields (label_req_ranks with K): a refusal has a message naming a
 *     field r<N> (or K); accepted places are each in 1..K and consistent (a place is 1 +
 *     the number of better ones), every r1..rK was given and no r<N> beyond K; the
 *     places, written again as a form r1..rK, are accepted and read back the same;
 *   - label_req_format never crashes on the input as a header value;
 *   - the escaped input has no < > " ' and every & starts an entity.
 * Seeds: fuzz/corpus/fuzz_label_req/ (a judgment, an undo and a login in both formats;
 * rankings of 4 with a tie, and a refused one).
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

/* The places of a rank judgment of k responses: checked as label_req.h promises. */
static void check_ranks(const LabelReq *r, int k) {
    int ranks[LABEL_REQ_RANK_MAX];
    char err[ERRBUF_LEN] = "";
    if (label_req_ranks(r, k, ranks, err) != 0) {
        FUZZ_REQUIRE(strncmp(err, "field r", 7) == 0 || (k == 0 && err[0]));
        return;
    }
    FUZZ_REQUIRE(k >= 1 && k <= LABEL_REQ_RANK_MAX);
    for (int i = 0; i < r->n; i++) { /* no place field beyond k */
        const char *nm = r->f[i].name;
        if (nm[0] == 'r' && nm[1] >= '1' && nm[1] <= '9' &&
            strspn(nm + 1, "0123456789") == strlen(nm + 1))
            FUZZ_REQUIRE(strlen(nm) <= 3 && atoi(nm + 1) <= k);
    }
    char body[LABEL_REQ_RANK_MAX * 8 + 1], *o = body;
    for (int i = 0; i < k; i++) {
        int better = 0;
        for (int j = 0; j < k; j++) better += ranks[j] < ranks[i];
        FUZZ_REQUIRE(ranks[i] >= 1 && ranks[i] <= k && ranks[i] == better + 1);
        o += sprintf(o, "%sr%d=%d", i ? "&" : "", i + 1, ranks[i]);
    }
    LabelReq again;
    int back[LABEL_REQ_RANK_MAX];
    FUZZ_REQUIRE(label_req_decode(&again, LABEL_REQ_FORM, body, (size_t)(o - body), err) == 0);
    FUZZ_REQUIRE(label_req_has_rank_field(&again));
    FUZZ_REQUIRE(label_req_ranks(&again, k, back, err) == 0);
    FUZZ_REQUIRE(memcmp(back, ranks, (size_t)k * sizeof(int)) == 0);
    label_req_free(&again);
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
        check_ranks(&r, (data[0] >> 1) % 10);
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
